package tickets_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A create whose answer was lost, not found by its reference once the
// settle time has passed, was taken as not applied and filed again. But a
// search that cannot see the ticket (an Autotask security level, a
// ConnectWise security role without the queue or board, an index that
// lags more than the settle time) finds nothing for a ticket that is
// there, and the alert got a second ticket. The create is filed again only
// when the same search finds the customer's other followed ticket; when it
// does not, the intent stays open, the customer fails with a message
// naming both tickets, and the report counts it (Report.UnseenCreates),
// until the search sees the tickets again. (audit-doubles4, not fixed 1.)
func TestEngine_lostCreateNotFiledAgainByABlindSearch(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		setup := func(t *testing.T, lost func(e *env) psatest.Fault) *env {
			e := newEnv(t, sys)
			e.settleTime = 2 * time.Minute
			eng := e.engine(routings[sys])
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
			if cr := e.pass(eng).Customers[0]; cr.Created != 1 {
				t.Fatalf("first pass = %+v, want the first alert's ticket created", cr)
			}
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware detected"})
			e.psaSim.AddFault(lost(e))
			e.pass(eng)
			return e
		}
		t.Run(string(sys)+"/searchCannotSee", func(t *testing.T) {
			t.Parallel()
			e := setup(t, func(e *env) psatest.Fault {
				return psatest.Fault{Method: http.MethodPost, Path: e.createPath(), DropAfterHandling: true, Times: 1}
			})
			eng := e.engine(routings[sys])
			e.psaSim.HideTicketSearches(true)
			e.now = e.now.Add(3 * time.Minute)
			for range 2 {
				rep := e.pass(eng)
				cr := rep.Customers[0]
				if n := len(e.tickets()); n != 2 || cr.Created != 0 {
					t.Fatalf("%d tickets after a pass whose search sees none (%+v); want 2: the lost create was filed again", n, cr)
				}
				if cr.Err == nil || !strings.Contains(cr.Err.Error(), "is not found by its reference either") || rep.UnseenCreates != 1 {
					t.Errorf("pass = unseen %d, %+v; want the customer failed naming the other ticket, one create kept", rep.UnseenCreates, cr)
				}
			}
			if open, err := e.db.TicketIntents(); err != nil || len(open) != 1 {
				t.Errorf("open ticket intents = %+v, %v; want the lost create's, open", open, err)
			}

			// The search sees the tickets again: the ticket is adopted.
			e.psaSim.HideTicketSearches(false)
			rep := e.pass(eng)
			if cr := rep.Customers[0]; rep.Settled != 1 || cr.Created != 0 || cr.Err != nil || rep.UnseenCreates != 0 || len(e.tickets()) != 2 {
				t.Errorf("pass once the search sees the tickets = settled %d, %+v, %d tickets; want the ticket adopted", rep.Settled, cr, len(e.tickets()))
			}
		})
		t.Run(string(sys)+"/searchSeesTheOtherTicket", func(t *testing.T) {
			t.Parallel()
			// The connection drops before the create is handled; the search
			// finds the customer's first ticket, so the create was not applied.
			e := setup(t, func(e *env) psatest.Fault {
				return psatest.Fault{Method: http.MethodPost, Path: e.createPath(), Drop: true, Times: 1}
			})
			eng := e.engine(routings[sys])
			e.now = e.now.Add(3 * time.Minute)
			rep := e.pass(eng)
			if cr := rep.Customers[0]; cr.Created != 1 || cr.Err != nil || rep.UnseenCreates != 0 || len(e.tickets()) != 2 {
				t.Errorf("pass after the settle time = %+v, %d tickets; want the create sent again", cr, len(e.tickets()))
			}
		})
	}
}

// notPosted is an operator's `psa-syncd resolve -ticket ref -not-posted`:
// no ticket with reference ref is in the PSA.
func (e *env) notPosted(ref string) {
	e.t.Helper()
	if _, err := e.db.ReleaseTicketCreate(ref, "jane: no such ticket in the PSA", e.now); err != nil {
		e.t.Fatalf("resolve -ticket %s -not-posted: %v", ref, err)
	}
}

// A lost create of a customer that has no other ticket to check the
// search with was filed again as soon as the search missed it after the
// settle time: the first (or only open) alert of a customer whose tickets
// go to a queue the API user cannot see got two tickets. It waits for the
// search to find it, or for an operator's answer, which the customer's
// error names. (audit-doubles5, not fixed 1.)
func TestEngine_lostCreateOfTheOnlyTicketWaitsForAnOperator(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		lostCreate(t, sys)
	}
}

func lostCreate(t *testing.T, sys psa.System) {
	setup := func(t *testing.T, drop bool) (*env, *tickets.Engine, string) {
		e := newEnv(t, sys)
		e.settleTime = 2 * time.Minute
		eng := e.engine(routings[sys])
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.createPath(), Drop: drop, DropAfterHandling: !drop, Times: 1})
		e.pass(eng)
		// Within the settle time: open, not held (psa-syncd status shows
		// no command for it).
		if open, err := e.db.TicketIntents(); err != nil || len(open) != 1 || !open[0].HeldSince.IsZero() {
			t.Fatalf("TicketIntents within the settle time = %+v, %v; want one create, not held", open, err)
		}
		e.now = e.now.Add(3 * time.Minute)
		return e, eng, "sc:" + a.ID
	}
	held := func(t *testing.T, e *env, eng *tickets.Engine, tickets int) {
		t.Helper()
		first := e.now
		for range 2 {
			rep := e.pass(eng)
			// Held since the first pass that held it.
			if open, err := e.db.TicketIntents(); err != nil || len(open) != 1 || !open[0].HeldSince.Equal(first) {
				t.Errorf("TicketIntents of the held create = %+v, %v; want it held since %s", open, err, first)
			}
			e.now = e.now.Add(time.Minute)
			cr := rep.Customers[0]
			if n := len(e.tickets()); n != tickets || cr.Created != 0 {
				t.Fatalf("%d tickets after a pass whose search finds none (%+v); want %d: the lost create was filed again", n, cr, tickets)
			}
			if cr.Err == nil || !strings.Contains(cr.Err.Error(), "no other ticket to check the search with") ||
				!strings.Contains(cr.Err.Error(), "psa-syncd resolve -ticket REF -not-posted") || rep.UnseenCreates != 1 {
				t.Errorf("pass = unseen %d, %+v; want the customer failed naming the resolve command, one create kept", rep.UnseenCreates, cr)
			}
		}
	}

	t.Run(string(sys)+"/searchCannotSee", func(t *testing.T) {
		t.Parallel()
		e, eng, _ := setup(t, false)
		e.psaSim.HideTicketSearches(true)
		held(t, e, eng, 1)
		e.psaSim.HideTicketSearches(false)
		if rep := e.pass(eng); rep.Settled != 1 || rep.Customers[0].Err != nil || len(e.tickets()) != 1 {
			t.Errorf("pass once the search sees the ticket = settled %d, %+v; want it adopted", rep.Settled, rep.Customers[0])
		}
	})
	t.Run(string(sys)+"/notPosted", func(t *testing.T) {
		t.Parallel()
		// The connection dropped before the create was handled.
		e, eng, ref := setup(t, true)
		held(t, e, eng, 0)
		e.notPosted(ref)
		if rep := e.pass(eng); rep.Customers[0].Created != 1 || rep.Customers[0].Err != nil || len(e.tickets()) != 1 {
			t.Errorf("pass after the operator's answer = %+v, %d tickets; want the create sent again", rep.Customers[0], len(e.tickets()))
		}
		// The answer holds only while the create is open.
		if _, err := e.db.ReleaseTicketCreate(ref, "", e.now); !errors.Is(err, tickets.ErrCreateNotOpen) {
			t.Errorf("second answer = %v, want ErrCreateNotOpen", err)
		}
	})
}
