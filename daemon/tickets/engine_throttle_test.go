package tickets_test

import (
	"errors"
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

// A PSA that throttles a close or a resolve note stops every ticket write
// of the pass, as a throttled create does: the closes, notes and creates
// still to send wait for the next pass (deferred, not failed, for this
// customer and the next), which sends them.
func TestEngine_rateLimitedUpdateStopsWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		onResolve string
		method    string
	}{
		{"close", export.OnResolveClose, http.MethodPatch},
		{"note", export.OnResolveNote, http.MethodPost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, psa.SystemConnectWise)
			r := routings[psa.SystemConnectWise]
			r.OnResolve = tc.onResolve
			eng := e.engine(r)
			other := tickets.Customer{Source: "sophos", CustomerID: globex, CustomerName: "Globex", CompanyID: id(e.psaSim.ConnectWise().AddCompany("Globex"))}
			customers := append(e.customers(), other)
			alerts := e.raiseSeries("Threat", 0, 3)
			if _, err := eng.Pass(t.Context(), customers, false); err != nil || len(e.tickets()) != 3 {
				t.Fatalf("first pass: %v, %d tickets, want 3", err, len(e.tickets()))
			}
			for _, a := range alerts {
				e.sophos.ResolveAlert(acme, a.ID)
			}
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Threat 3"})
			e.sophos.AddAlert(globex, sophostest.Alert{Severity: "high", Description: "Globex threat"})
			base := strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL())
			e.psaSim.AddFault(psatest.Fault{Method: tc.method, Path: base + "service/tickets/*", Status: http.StatusTooManyRequests, RetryAfter: time.Hour})
			before := len(e.psaSim.Requests())

			rep, err := eng.Pass(t.Context(), customers, false)
			if err != nil {
				t.Fatal(err)
			}
			writes := 0
			for _, r := range e.psaSim.Requests()[before:] {
				if r.Method != http.MethodGet {
					writes++
				}
			}
			if writes != 1 {
				t.Errorf("%d writes sent in the throttled pass, want 1: the pass stops writing at the first 429", writes)
			}
			acmeRep, globexRep := rep.Customers[0], rep.Customers[1]
			if !rep.RateLimited || acmeRep.Closed+acmeRep.Noted != 0 || acmeRep.Created != 0 || acmeRep.Deferred != 3 {
				t.Errorf("throttled pass: rate limited %v, acme %+v; want nothing closed, noted or created and 3 deferred", rep.RateLimited, acmeRep)
			}
			if acmeRep.Err == nil || !strings.Contains(acmeRep.Err.Error(), "rate limited") {
				t.Errorf("acme's error = %v, want the throttled write named", acmeRep.Err)
			}
			if globexRep.Err != nil || globexRep.Deferred != 1 || globexRep.Created != 0 {
				t.Errorf("globex = %+v, want its alert deferred, not failed", globexRep)
			}
			if len(globexRep.Notices) != 1 || !strings.Contains(globexRep.Notices[0], "throttled") {
				t.Errorf("globex notices = %q, want one saying the PSA throttled the pass", globexRep.Notices)
			}

			e.psaSim.ClearFaults()
			rep, err = eng.Pass(t.Context(), customers, false)
			if err != nil {
				t.Fatal(err)
			}
			if tot := rep.Totals(); tot.Closed+tot.Noted != 3 || tot.Created != 2 || tot.Deferred != 0 || rep.RateLimited {
				t.Errorf("pass after the throttle = %+v, want the 3 tickets closed or noted and 2 created", tot)
			}
		})
	}
}

// Each backend's SetTicketStatus says that a status change was not applied
// (psa.ErrNotApplied) only when the PSA processed none of its attempts:
// throttled at every one. A server error before the throttling may have
// applied it, and then it does not say so.
func TestBackends_setTicketStatusNotApplied(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		for _, serverErrorFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/serverErrorFirst=%t", sys, serverErrorFirst), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				rt := routings[sys]
				req := psa.CreateTicketRequest{CompanyID: e.company, Title: "Malware on PC-1", ExternalRef: "sc:1",
					Routing: psa.TicketRouting{QueueID: rt.QueueID, StatusID: rt.NewStatusID, SourceID: rt.SourceID, TicketTypeID: rt.TicketTypeID}}
				tk, err := e.backend.CreateTicket(t.Context(), req)
				if err != nil {
					t.Fatal(err)
				}
				var path string
				switch sys {
				case psa.SystemAutotask:
					path = "/ATServicesRest/V1.0/Tickets"
				case psa.SystemConnectWise:
					path = strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL()) + "service/tickets/" + tk.ID
				case psa.SystemKaseyaBMS:
					path = "/v2/servicedesk/tickets/" + tk.ID
				}
				if serverErrorFirst {
					e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: path, Status: http.StatusServiceUnavailable, Times: 1})
				}
				e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: path, Status: http.StatusTooManyRequests})
				_, err = e.backend.SetTicketStatus(t.Context(), psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: rt.ReopenStatusID, QueueID: rt.QueueID,
					Note: "Raised again.", NoteTitle: "Alert raised again"})
				switch {
				case serverErrorFirst && (err == nil || errors.Is(err, psa.ErrNotApplied)):
					t.Errorf("SetTicketStatus error = %v after a server error, want one not taken as not applied", err)
				case !serverErrorFirst && (!errors.Is(err, psa.ErrRateLimited) || !errors.Is(err, psa.ErrNotApplied)):
					t.Errorf("SetTicketStatus error = %v, want it throttled and taken as not applied", err)
				}
			})
		}
	}
}

// A create the PSA throttled at every attempt, or that a read it needs
// first was throttled before it was sent, made no ticket: the next pass
// searches and sends it again, without waiting policies.settle_time as
// for a create whose outcome is unknown (TestEngine_lostCreateSettleTime).
func TestEngine_throttledCreateSentAgainNextPass(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		system psa.System
		fault  func(e *env) psatest.Fault
	}{
		{"autotask/create", psa.SystemAutotask, func(*env) psatest.Fault {
			return psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusTooManyRequests}
		}},
		{"autotask/statusPicklist", psa.SystemAutotask, func(*env) psatest.Fault {
			return psatest.Fault{Method: http.MethodGet, Path: "/ATServicesRest/V1.0/Tickets/entityInformation/fields", Status: http.StatusTooManyRequests}
		}},
		{"connectwise/create", psa.SystemConnectWise, func(e *env) psatest.Fault {
			return psatest.Fault{Method: http.MethodPost, Path: strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL()) + "service/tickets",
				Status: http.StatusTooManyRequests, RetryAfter: time.Hour}
		}},
		// A 429 with a short Retry-After: one without makes the client
		// refuse the endpoint for an hour, which the next pass would meet.
		{"kaseyabms/create", psa.SystemKaseyaBMS, func(*env) psatest.Fault {
			return psatest.Fault{Method: http.MethodPost, Path: "/v2/servicedesk/tickets", Status: http.StatusTooManyRequests, RetryAfter: time.Second}
		}},
		{"kaseyabms/locations", psa.SystemKaseyaBMS, func(e *env) psatest.Fault {
			return psatest.Fault{Method: http.MethodGet, Path: "/v2/crm/accounts/" + e.company + "/locations/lookup", Status: http.StatusTooManyRequests,
				RetryAfter: time.Second}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.system)
			e.settleTime = 2 * time.Minute
			eng := e.engine(routings[tc.system])
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
			e.psaSim.AddFault(tc.fault(e))
			rep := e.pass(eng)
			if cr := rep.Customers[0]; !rep.RateLimited || cr.Created != 0 || cr.Err == nil || !strings.Contains(cr.Err.Error(), "sent again next pass") {
				t.Fatalf("throttled pass = rate limited %v, %+v; want the create throttled and said to be sent again next pass", rep.RateLimited, cr)
			}
			if intents, err := e.db.TicketIntents(); err != nil || len(intents) != 0 {
				t.Errorf("open create intents after the throttled create = %+v, %v; want none", intents, err)
			}
			e.psaSim.ClearFaults()
			e.now = e.now.Add(30 * time.Second)
			rep = e.pass(eng)
			if cr := rep.Customers[0]; cr.Created != 1 || cr.Err != nil || len(cr.Notices) != 0 || len(e.tickets()) != 1 {
				t.Errorf("next pass, within the settle time = %+v, %d tickets; want the ticket created", cr, len(e.tickets()))
			}
		})
	}
}

// A refused create sent again a day later that the PSA throttles, or whose
// search before it fails, is sent again next pass: the refused record put
// back keeps the time of its refusal. Stamped with the time it was put
// back, it waited another day.
func TestEngine_refusedCreateRetryThrottled(t *testing.T) {
	t.Parallel()
	const create, search = "/ATServicesRest/V1.0/Tickets", "/ATServicesRest/V1.0/Tickets/query"
	for name, path := range map[string]string{"create": create, "searchBeforeCreate": search} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, psa.SystemAutotask)
			eng := e.engine(routings[psa.SystemAutotask])
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: create, Status: http.StatusInternalServerError,
				Body: `{"errors":["The queue is inactive."]}`, Times: 1})
			if cr := e.pass(eng).Customers[0]; cr.Failed != 1 {
				t.Fatalf("refused pass = %+v, want the create refused", cr)
			}
			e.now = e.now.Add(25 * time.Hour)
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusTooManyRequests})
			if rep := e.pass(eng); !rep.RateLimited || rep.Customers[0].Created != 0 {
				t.Fatalf("pass a day later = rate limited %v, %+v; want it throttled", rep.RateLimited, rep.Customers[0])
			}
			e.psaSim.ClearFaults()
			e.now = e.now.Add(time.Minute)
			if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Err != nil || len(e.tickets()) != 1 {
				t.Errorf("next pass = %+v, %d tickets; want the ticket created", cr, len(e.tickets()))
			}
		})
	}
}
