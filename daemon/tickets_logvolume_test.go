package daemon

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A ticket pass in which the PSA refuses every customer's tickets logs a
// bounded number of warnings, as a usage pass does: one per customer would
// drown the journal of an MSP with hundreds of them. The others are logged
// at debug, a warning says how many there were, and each customer's ticket
// status keeps its error.
func TestDaemon_ticketPassLogsBoundedFailedCustomers(t *testing.T) {
	t.Parallel()
	// At most 20 warnings, as for the customers a usage pass did not sync.
	const customers, maxWarned = 60, 20
	logs := &lockedLog{}
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, sop := ttSetupOptions(t, routing, true, "", Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ttLoad(t, d, func(doc *export.Document) {
		acme := doc.CustomerMappings[0]
		for i := range customers {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			m := acme
			m.CustomerID, m.CustomerName, m.TicketSync = id, fmt.Sprintf("Customer %d", i), true
			doc.PutCustomer(m)
			sop.AddTenant(sophostest.Tenant{ID: id, Name: m.CustomerName})
			sop.AddAlert(id, sophostest.Alert{Severity: "high", Description: "Malware"})
		}
	})
	sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusInternalServerError,
		Body: `{"errors":["Value does not exist for [queueID]."]}`})
	d.scheduledTicketPass(t.Context())

	logs.mu.Lock()
	out := logs.buf.String()
	logs.mu.Unlock()
	var warned, all int
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, `msg="Ticket pass failed for a customer"`) {
			all++
			if strings.Contains(l, "level=WARN") {
				warned++
			}
		}
	}
	if all < customers {
		t.Fatalf("%d failed customers logged, want each of the %d; logs:\n%s", all, customers, out)
	}
	if warned > maxWarned {
		t.Errorf("%d failed customers logged at warn, want at most %d", warned, maxWarned)
	}
	if !strings.Contains(out, `msg="More customers failed the ticket pass`) {
		t.Errorf("no warning says that more customers failed; logs:\n%s", out)
	}
}
