package tickets_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A close whose note failed after the status was set (ConnectWise adds the
// note by a request of its own; psa.ErrStatusSetNoteFailed) leaves the
// note to look for: the next pass finds it on the ticket (applied, its
// answer lost) or sends it (never applied, or refused), once. It used to
// find the ticket closed and never add the note. On Autotask and Kaseya
// BMS the note goes with the status change (the resolution, the resolve
// comment), and the fault on the notes' path changes nothing.
func TestEngine_closeNoteFailedIsLookedFor(t *testing.T) {
	t.Parallel()
	faults := map[string]psatest.Fault{
		"applied, answer lost": {DropAfterHandling: true},
		"not applied":          {Drop: true},
		"refused":              {Status: http.StatusInternalServerError},
	}
	for _, sys := range psa.Systems {
		for name, f := range faults {
			t.Run(string(sys)+"/"+name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				e.settleTime = 2 * time.Minute
				eng := e.engine(routings[sys])
				a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
				e.pass(eng)
				tk := e.tickets()[0].id
				f.Method, f.Path, f.Times = http.MethodPost, e.notesPath(tk), 1
				e.psaSim.AddFault(f)
				e.sophos.ResolveAlert(acme, a.ID)
				if cr := e.pass(eng).Customers[0]; cr.Closed != 1 {
					t.Errorf("pass closing the ticket = %+v, want it closed", cr)
				}
				e.now = e.now.Add(5 * time.Minute)
				if cr := e.pass(eng).Customers[0]; cr.Closed != 0 || cr.Err != nil {
					t.Errorf("next pass = %+v, want the close note settled, nothing counted twice", cr)
				}
				e.wantNotes("resolved in Sophos Central", 1)
				recs, _ := e.db.TicketRecords("sophos", acme)
				if len(recs) != 1 || recs[0].State != tickets.StateClosed || recs[0].ClosedBy != tickets.ClosedBySync || !e.tickets()[0].closed {
					t.Errorf("records = %+v, want the ticket closed by psa-syncd", recs)
				}
				e.now = e.now.Add(5 * time.Minute)
				if cr := e.pass(eng).Customers[0]; cr.Closed != 0 || e.countNotes("resolved in Sophos Central") != 1 {
					t.Errorf("third pass = %+v, want nothing more", cr)
				}
			})
		}
	}
}

// A close whose own answer was lost (every attempt's), applied: on
// ConnectWise the client never sent the note after it, and the next pass,
// which finds the ticket closed, looks for the note and sends it, once
// (psa.TicketCloseNoteSeparate). On Autotask and Kaseya BMS the note went
// with the status.
func TestEngine_closeAnswerLostNoteIsLookedFor(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			e.settleTime = 2 * time.Minute
			eng := e.engine(routings[sys])
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
			e.pass(eng)
			tk := e.tickets()[0].id
			status := psatest.Fault{Method: http.MethodPatch, Path: e.createPath() + "/" + id(tk), DropAfterHandling: true}
			switch sys {
			case psa.SystemAutotask:
				status.Path = e.createPath()
			case psa.SystemKaseyaBMS:
				status.Method, status.Path = http.MethodPost, e.createPath()+"/"+id(tk)+"/resolve"
			}
			e.psaSim.AddFault(status)
			e.sophos.ResolveAlert(acme, a.ID)
			if cr := e.pass(eng).Customers[0]; cr.Closed != 0 || cr.Err == nil {
				t.Errorf("pass whose close's answers were lost = %+v, want it failed", cr)
			}
			e.psaSim.ClearFaults()
			if got := e.tickets(); len(got) != 1 || !got[0].closed {
				t.Fatalf("tickets = %+v, want the close applied", got)
			}
			e.now = e.now.Add(5 * time.Minute)
			if cr := e.pass(eng).Customers[0]; cr.Closed != 1 || cr.Err != nil {
				t.Errorf("next pass = %+v, want psa-syncd's close recorded", cr)
			}
			e.wantNotes("resolved in Sophos Central", 1)
			e.now = e.now.Add(5 * time.Minute)
			if cr := e.pass(eng).Customers[0]; cr.Closed != 0 || e.countNotes("resolved in Sophos Central") != 1 {
				t.Errorf("third pass = %+v, want nothing more", cr)
			}
		})
	}
}
