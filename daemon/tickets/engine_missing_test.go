package tickets_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// emptyListing makes the next listing of Acme's open alerts a complete,
// empty one, as a glitch of Central's listing would: the alerts are still
// open, and the listing after it has them again.
func (e *env) emptyListing() {
	e.sophos.AddFault(sophostest.Fault{Method: http.MethodGet, Path: "/common/v1/alerts", Status: http.StatusOK,
		Body: `{"items":[],"pages":{"items":0,"size":50,"maxSize":1000}}`, Times: 1})
}

// An alert missing from one complete listing (a glitch of Central's
// listing) and back in the next keeps its ticket, on every PSA: with
// on_return "new" it got a second ticket, its first one closed. One still
// missing ResolveAfter after the first listing that left it out is
// resolved; each listing that leaves it out before that only says so.
func TestEngine_alertMissingFromOneListingKeepsItsTicket(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			e.resolveAfter = 10 * time.Minute
			eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnNew })
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected on PC-7"})
			if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Err != nil {
				t.Fatalf("first pass = %+v", cr)
			}

			e.emptyListing()
			e.now = e.now.Add(5 * time.Minute)
			cr := e.pass(eng).Customers[0]
			if cr.Closed != 0 || cr.Err != nil || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "1 open tickets' alerts are not in this listing") ||
				!strings.Contains(cr.Notices[0], "alert "+a.ID) || !strings.Contains(cr.Notices[0], "at least 10m0s after") {
				t.Fatalf("pass whose listing left the alert out = %+v; want nothing closed and a notice", cr)
			}
			e.now = e.now.Add(5 * time.Minute)
			cr = e.pass(eng).Customers[0]
			if cr.Created != 0 || cr.Closed != 0 || cr.Err != nil || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "are listed again") {
				t.Fatalf("pass with the alert listed again = %+v; want no ticket created or closed, and a notice", cr)
			}
			if got := e.tickets(); len(got) != 1 || got[0].closed {
				t.Fatalf("tickets after the glitch = %+v, want the one ticket, open", got)
			}

			// Resolved for real: missing at 10:10, still at 10:15 (before
			// ResolveAfter), closed at 10:20.
			e.sophos.ResolveAlert(acme, a.ID)
			for i, want := range []int{0, 0, 1} {
				if i > 0 {
					e.now = e.now.Add(5 * time.Minute)
				}
				cr = e.pass(eng).Customers[0]
				if cr.Closed != want || cr.Err != nil {
					t.Fatalf("pass %d after resolving (at %s) = %+v; want %d closed", i, e.now.Format(time.TimeOnly), cr, want)
				}
			}
			if got := e.tickets(); len(got) != 1 || !got[0].closed {
				t.Errorf("tickets after resolving = %+v, want the one ticket, closed", got)
			}
			if cr = e.pass(eng).Customers[0]; len(cr.Notices) != 0 || cr.Closed != 0 {
				t.Errorf("pass after the close = %+v, want nothing to say or do", cr)
			}
		})
	}
}

// A summary ticket whose alerts are all missing from one listing is not
// closed: closed, its alerts, listed again, would each get a ticket of
// their own and a new summary ticket the rest (a storm of tickets for a
// glitch). A dry run says so and would close nothing.
func TestEngine_summaryMissingFromOneListingKeepsItsTicket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	e.resolveAfter = 10 * time.Minute
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 2 })
	e.raiseSeries("Storm", 0, 5)
	if cr := e.pass(eng).Customers[0]; cr.Created != 2 || cr.Summarised != 3 || cr.Err != nil {
		t.Fatalf("first pass = %+v", cr)
	}
	e.emptyListing()
	e.now = e.now.Add(5 * time.Minute)
	if cr := e.pass(eng).Customers[0]; cr.Closed != 0 || cr.Err != nil {
		t.Fatalf("pass whose listing left every alert out = %+v; want nothing closed", cr)
	}
	e.emptyListing()
	rep, err := eng.Pass(t.Context(), e.customers(), true)
	if cr := rep.Customers[0]; err != nil || len(cr.WouldClose) != 0 {
		t.Errorf("dry run whose listing leaves the alerts out again, before ResolveAfter = %+v, %v; want nothing it would close", cr, err)
	}
	e.now = e.now.Add(5 * time.Minute)
	if cr := e.pass(eng).Customers[0]; cr.Created != 0 || cr.Summarised != 0 || cr.Closed != 0 || cr.Err != nil {
		t.Fatalf("pass with the alerts listed again = %+v; want no ticket created, summarised or closed", cr)
	}
	got := e.tickets()
	if len(got) != 3 {
		t.Fatalf("%d tickets after the glitch, want 3 (two alerts' and the summary)", len(got))
	}
	for _, tk := range got {
		if tk.closed {
			t.Errorf("ticket %d %q closed by the glitch", tk.id, tk.title)
		}
	}
}
