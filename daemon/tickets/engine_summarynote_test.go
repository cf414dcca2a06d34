package tickets_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// stormWithSummary files two alerts at a cap of one a customer: one
// alert's ticket and a summary ticket, whose id it returns.
func stormWithSummary(t *testing.T, e *env, eng *tickets.Engine) int64 {
	t.Helper()
	e.raiseSeries("Threat", 0, 2)
	e.pass(eng)
	for _, tk := range e.tickets() {
		if strings.Contains(tk.title, "Alert storm") {
			return tk.id
		}
	}
	t.Fatalf("no summary ticket among %+v", e.tickets())
	return 0
}

// A "More alerts" note on a summary ticket whose answer was lost is looked
// for on the ticket next pass: found (it was applied), nothing is sent
// again; not there (the request never reached the PSA), it is sent then,
// once, naming the alerts it carried. Before, a lost note was taken as
// added: its alerts, covered by the summary, got no ticket of their own
// and could be named nowhere in the PSA.
func TestEngine_lostSummaryNoteIsLookedFor(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		for _, applied := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/applied=%v", sys, applied), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
				summary := stormWithSummary(t, e, eng)
				var late []string
				for i := 2; i < 4; i++ {
					a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat %d", i),
						RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)})
					late = append(late, a.ID)
				}
				e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(summary), DropAfterHandling: applied, Drop: !applied, Times: 1})
				cr := e.pass(eng).Customers[0] // one more ticket; the last alert goes to the summary's note, whose answer is lost
				if cr.Created != 1 || cr.Summarised != 1 || !slicesContain(cr.Notices, "looks for the note") {
					t.Errorf("pass with the note's answer lost = %+v, want 1 created, 1 summarised and a notice that the next pass looks for the note", cr)
				}
				e.now = e.now.Add(5 * time.Minute)
				cr = e.pass(eng).Customers[0]
				if cr.Created != 0 || cr.Summarised != 0 || cr.Err != nil {
					t.Errorf("next pass = %+v, want nothing created or summarised", cr)
				}
				if got := slicesContain(cr.Notices, "sent again"); got == applied {
					t.Errorf("next pass notices = %q; want a notice that the note was sent again only when it was not on the ticket", cr.Notices)
				}
				if n := e.countNotes("(alert " + late[1] + ")"); n != 1 {
					t.Errorf("%d notes on the summary naming alert %s, want 1", n, late[1])
				}
				recs, _ := e.db.TicketRecords("sophos", acme)
				for _, rec := range recs {
					if rec.AlertKey == tickets.SummaryKey && (rec.NoteAlerts != nil || len(rec.Covered) != 2) {
						t.Errorf("summary record = %+v, want no note under way and 2 alerts covered", rec)
					}
				}
				if cr := e.pass(eng).Customers[0]; cr.Created != 0 || cr.Summarised != 0 || e.countNotes("summarised here") != 1 {
					t.Errorf("third pass = %+v, %d summary notes; want nothing more", cr, e.countNotes("summarised here"))
				}
			})
		}
	}
}

// A "More alerts" note whose intent was recorded by a psa-syncd that died
// before sending it, and whose alerts were resolved meanwhile, is not sent:
// there is nothing left to name; the summary is closed with its alerts.
func TestEngine_lostSummaryNoteAlertsResolved(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemKaseyaBMS)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	stormWithSummary(t, e, eng)
	recs, _ := e.db.TicketRecords("sophos", acme)
	var alerts []string
	for _, rec := range recs {
		alerts = append(alerts, rec.Covered...)
		if rec.AlertKey == tickets.SummaryKey {
			rec.NoteAlerts = rec.Covered
			if err := e.db.PutTicketRecord(rec); err != nil {
				t.Fatal(err)
			}
		} else {
			alerts = append(alerts, rec.AlertKey)
		}
	}
	for _, a := range alerts {
		e.sophos.ResolveAlert(acme, a)
	}
	e.now = e.now.Add(time.Hour)
	cr := e.pass(eng).Customers[0]
	if cr.Closed != 2 || cr.Err != nil || e.countNotes("summarised here") != 0 {
		t.Errorf("pass = %+v, %d summary notes; want both tickets closed and no note", cr, e.countNotes("summarised here"))
	}
}

// An alert type longer than a note (a listing's oddity) is cut in the
// summary's list, so that a "More alerts" note still names its first
// alert, by which a note whose answer was lost is looked for; before, the
// list left out every line and the note could never be found.
func TestEngine_summaryNoteNamesItsFirstAlert(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	summary := stormWithSummary(t, e, eng)
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Type: "Event::" + strings.Repeat("x", psa.MaxTicketNote), Description: "Threat 9",
		RaisedAt: "2026-11-15T09:09:00.000"})
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Threat 8", RaisedAt: "2026-11-15T09:08:00.000"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(summary), DropAfterHandling: true, Times: 1})
	e.pass(eng)
	e.now = e.now.Add(5 * time.Minute)
	if cr := e.pass(eng).Customers[0]; cr.Err != nil || slicesContain(cr.Notices, "sent again") {
		t.Errorf("next pass = %+v, want the note found, not sent again", cr)
	}
	if n := e.countNotes("(alert " + a.ID + ")"); n != 1 {
		t.Errorf("%d notes naming alert %s, want 1", n, a.ID)
	}
}
