package tickets_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngine_summaryCloseUnsettledReadOnce: a summary whose close failed
// earlier in the pass, settled before it takes the alerts over the cap, is
// read once for that: found open, the read that settles it is the read
// before the note, not followed by a second one.
func TestEngine_summaryCloseUnsettledReadOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	r := routings[psa.SystemAutotask]
	r.MaxPerCustomer = 1
	eng := e.engine(r)
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "A1", RaisedAt: "2026-11-15T09:01:00.000"})
	a2 := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "A2", RaisedAt: "2026-11-15T09:02:00.000"})
	if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Summarised != 1 || cr.Err != nil {
		t.Fatalf("first pass = %+v, want one ticket and one alert summarised", cr)
	}
	var summary int64
	for _, tk := range e.psaSim.Autotask().Tickets() {
		if strings.Contains(tk.Title, "Alert storm") {
			summary = tk.ID
		}
	}
	// A2 resolves, so the summary is to close, and the close is refused;
	// A3 and A4 are raised, A4 over the cap.
	e.sophos.ResolveAlert(acme, a2.ID)
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "A3", RaisedAt: "2026-11-15T09:03:00.000"})
	a4 := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "A4", RaisedAt: "2026-11-15T09:04:00.000"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusInternalServerError, Times: 1})
	before := len(e.psaSim.Requests())
	if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Summarised != 1 {
		t.Fatalf("storm pass = %+v, want A3's ticket and A4 noted on the summary", cr)
	}
	refused, reads := -1, 0
	for i, req := range e.psaSim.Requests()[before:] {
		switch {
		case req.Method == http.MethodPatch && req.Status == http.StatusInternalServerError:
			refused = i
		case refused >= 0 && req.Method == http.MethodGet && req.Path == "/ATServicesRest/V1.0/Tickets/"+strconv.FormatInt(summary, 10):
			reads++
		}
	}
	if refused < 0 || reads != 1 {
		t.Errorf("reads of the summary ticket after its close was refused = %d (close refused: %t), want 1", reads, refused >= 0)
	}
	notes := e.psaSim.Autotask().TicketNotes(summary)
	if len(notes) == 0 || !strings.Contains(notes[len(notes)-1].Description, a4.ID) {
		t.Errorf("summary ticket's notes = %+v, want the last one naming A4", notes)
	}
}
