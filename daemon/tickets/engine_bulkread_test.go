package tickets_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// The tickets of a customer's resolved alerts are read in one request
// where the PSA reads tickets by id in bulk (Autotask, ConnectWise), not one
// request each: a storm of alerts that clears at once (an update that
// fixed them all) costs one read and a close per ticket of the PSA's
// hourly budget, not a read and a close each. What the read finds decides
// as before: the ticket a technician closed is only recorded, the others
// are closed, once.
func TestEngine_resolvedTicketsReadInBulk(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 20 })
			var alerts []sophostest.Alert
			for i := range 12 {
				alerts = append(alerts, e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Out of date %d", i)}))
			}
			if cr := e.pass(eng).Customers[0]; cr.Created != 12 || cr.Err != nil {
				t.Fatalf("first pass = %+v, want 12 tickets", cr)
			}
			// A technician closed one ticket of the alerts that clear (the
			// tickets are created concurrently, in no set order).
			var tech int64
			for _, tk := range e.tickets() {
				if strings.HasSuffix(tk.title, ": "+alerts[0].Description) {
					tech = tk.id
				}
			}
			if tech == 0 {
				t.Fatalf("no ticket of the alert %q among %+v", alerts[0].Description, e.tickets())
			}
			switch sys {
			case psa.SystemAutotask:
				e.psaSim.Autotask().SetTicketStatus(tech, "Complete")
			case psa.SystemConnectWise:
				e.psaSim.ConnectWise().SetTicketStatus(tech, psatest.ConnectWiseStatusResolved)
			}
			for _, a := range alerts[:10] {
				e.sophos.ResolveAlert(acme, a.ID)
			}
			e.psaSim.ResetRequests()
			cr := e.pass(eng).Customers[0]
			if cr.Closed != 9 || cr.Err != nil {
				t.Fatalf("pass after 10 alerts cleared = %+v, want 9 tickets closed (one was closed by a technician)", cr)
			}
			var single, bulk int
			for _, req := range e.psaSim.Requests() {
				switch {
				case req.Method == http.MethodGet && strings.Contains(req.Path, "/Tickets/"), // Autotask
					req.Method == http.MethodGet && strings.Contains(req.Path, "/service/tickets/"): // ConnectWise
					single++
				case req.Method == http.MethodPost && strings.HasSuffix(req.Path, "/Tickets/query"),
					req.Method == http.MethodGet && strings.HasSuffix(req.Path, "/service/tickets"):
					bulk++
				}
			}
			if single != 0 || bulk != 1 {
				t.Errorf("the tickets of 10 resolved alerts were read with %d single reads and %d bulk reads, want one bulk read", single, bulk)
			}
			closed := 0
			for _, tk := range e.tickets() {
				if tk.closed {
					closed++
				}
			}
			if closed != 10 {
				t.Errorf("%d tickets closed in the PSA, want 10", closed)
			}
			if cr := e.pass(eng).Customers[0]; cr.Closed != 0 || cr.Err != nil {
				t.Errorf("next pass = %+v, want nothing closed again", cr)
			}
		})
	}
}
