package tickets_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A reopen found unsettled is judged by the PSA's clock alone: the record
// keeps the ticket's last change read just before the intent
// (Record.ReopenActivity), and the ticket is "unchanged" only when it has
// not changed since, however far the PSA's clock is from psa-syncd's.
// Before, the PSA's time was compared with psa-syncd's intent time minus 2
// minutes: with the PSA's clock 10 minutes behind, a technician's close
// after an applied reopen looked older than the reopen and the ticket was
// reopened over it; with the PSA's clock 2 hours ahead, a reopen that was
// never applied looked changed and was never sent again.
func TestEngine_unsettledReopenJudgedByThePSAClock(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		// reopened files an alert, closes its ticket, raises the alert
		// again an hour later and lets a pass reopen it; then it records
		// the reopen as unsettled, as a lost answer and a failed read
		// after it (or a crash) would have left it.
		reopened := func(t *testing.T, skew time.Duration) (*env, *tickets.Engine, int64) {
			e := newEnv(t, sys)
			e.psaSkew = skew
			eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
			e.pass(eng)
			e.sophos.ResolveAlert(acme, a.ID)
			e.now = e.now.Add(time.Minute)
			if cr := e.pass(eng).Customers[0]; cr.Closed != 1 || !e.tickets()[0].closed {
				t.Fatalf("pass after the alert was resolved = %+v, want its ticket closed", cr)
			}
			e.raiseAgain(a)
			e.now = e.now.Add(time.Hour)
			return e, eng, e.tickets()[0].id
		}
		unsettle := func(t *testing.T, e *env) {
			recs, err := e.db.TicketRecords("sophos", acme)
			if err != nil || len(recs) != 1 {
				t.Fatalf("records = %+v, %v", recs, err)
			}
			recs[0].State = tickets.StateReopening
			if err := e.db.PutTicketRecord(recs[0]); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(string(sys)+"/psaBehind/closedByATechnician", func(t *testing.T) {
			t.Parallel()
			e, eng, tk := reopened(t, -10*time.Minute)
			if cr := e.pass(eng).Customers[0]; cr.Reopened != 1 || e.tickets()[0].closed {
				t.Fatalf("pass after the alert came back = %+v, want its ticket reopened", cr)
			}
			if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 || recs[0].ReopenActivity.IsZero() {
				t.Fatalf("records = %+v, want the ticket's last change read before the reopen", recs)
			}
			unsettle(t, e)
			// A technician closes the reopened ticket.
			e.now = e.now.Add(time.Minute)
			e.setStatus(tk, true)
			e.now = e.now.Add(4 * time.Minute)
			cr := e.pass(eng).Customers[0]
			if cr.Reopened != 0 || cr.Err != nil || !slicesContain(cr.Notices, "unconfirmed") || !e.tickets()[0].closed {
				t.Errorf("pass after the unsettled reopen = %+v, ticket %+v; want the technician's close kept, with a notice", cr, e.tickets()[0])
			}
			e.wantNotes("raised again", 1)
		})
		t.Run(string(sys)+"/psaAhead/notApplied", func(t *testing.T) {
			t.Parallel()
			e, eng, tk := reopened(t, 2*time.Hour)
			// The intent as reopen records it, the reopen never sent.
			read, err := e.backend.GetTicket(t.Context(), id(tk))
			if err != nil || read.LastActivity.IsZero() {
				t.Fatalf("GetTicket = %+v, %v", read, err)
			}
			recs, _ := e.db.TicketRecords("sophos", acme)
			recs[0].State, recs[0].Updated, recs[0].ReopenActivity = tickets.StateReopening, e.now, read.LastActivity
			if err := e.db.PutTicketRecord(recs[0]); err != nil {
				t.Fatal(err)
			}
			e.now = e.now.Add(5 * time.Minute)
			cr := e.pass(eng).Customers[0]
			if cr.Reopened != 1 || cr.Err != nil || !slicesContain(cr.Notices, "was not applied") || e.tickets()[0].closed {
				t.Errorf("pass after the unsettled reopen = %+v, ticket %+v; want the ticket reopened, with a notice", cr, e.tickets()[0])
			}
			e.wantNotes("raised again", 1)
		})
	}
}

// A reopen's "raised again" note whose answer was lost (the status
// applied) is looked for on the ticket by the next pass: found (it was
// applied), nothing more is sent; not there (the request never reached
// the PSA), it is sent then, once. Before, it was taken as added, and a
// reopen the PSA showed with no word of why was left so.
func TestEngine_lostReopenNoteIsLookedFor(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		for _, applied := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/applied=%v", sys, applied), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
				a := e.resolvedHealthCheck(eng)
				e.raiseAgain(a)
				e.now = e.now.Add(time.Hour)
				tk := e.tickets()[0].id
				e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), BodyContains: "raised again",
					DropAfterHandling: applied, Drop: !applied, Times: 1})
				cr := e.pass(eng).Customers[0]
				if cr.Reopened != 1 || e.tickets()[0].closed || !slicesContain(cr.Notices, "looks for its") {
					t.Errorf("pass with the note's answer lost = %+v, want the ticket reopened and a notice that the next pass looks for the note", cr)
				}
				e.now = e.now.Add(5 * time.Minute)
				cr = e.pass(eng).Customers[0]
				if cr.Reopened != 0 || cr.Err != nil || slicesContain(cr.Notices, "sent again") == applied {
					t.Errorf("next pass = %+v; want the note sent again only when it was not on the ticket, nothing counted twice", cr)
				}
				e.wantNotes("raised again", 1)
				if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 || recs[0].State != tickets.StateOpen {
					t.Errorf("records = %+v, want the ticket followed (open)", recs)
				}
				if cr := e.pass(eng).Customers[0]; cr.Reopened != 0 || len(cr.Notices) != 0 || e.countNotes("raised again") != 1 {
					t.Errorf("third pass = %+v, want nothing more", cr)
				}
			})
		}
	}
}

// A reopen an older psa-syncd recorded (no ReopenActivity), whose ticket
// is open with that psa-syncd's "raised again" note (which named only the
// alert's raised time), is settled without a second note.
func TestEngine_unsettledReopenOfAnOlderPsaSyncdKeepsItsNote(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemConnectWise)
	eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
	a := e.resolvedHealthCheck(eng)
	e.raiseAgain(a)
	e.now = e.now.Add(time.Hour)
	tk := e.tickets()[0].id
	recs, _ := e.db.TicketRecords("sophos", acme)
	recs[0].State, recs[0].Updated = tickets.StateReopening, e.now
	if err := e.db.PutTicketRecord(recs[0]); err != nil {
		t.Fatal(err)
	}
	// The older psa-syncd's reopen, applied with its note.
	e.setStatus(tk, false)
	if err := e.backend.AddTicketNote(t.Context(), psa.TicketNote{TicketID: id(tk), Title: "Alert raised again",
		Text: "The alert was raised again in Sophos Central (2026-11-15T10:59:00Z)."}); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(5 * time.Minute)
	if cr := e.pass(eng).Customers[0]; cr.Reopened != 1 || cr.Err != nil || e.countNotes("raised again") != 1 {
		t.Errorf("pass = %+v, %d 'raised again' notes; want the reopen settled, no second note", cr, e.countNotes("raised again"))
	}
}
