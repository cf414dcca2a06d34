package tickets_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngine_returnAfterRetentionForgotTheRecord: an alert whose record
// retention removed (its ticket closed longer ago than the retention, the
// alert cleared) and that comes back gets a new ticket, the next
// generation, rather than the old closed ticket adopted as closed in the
// PSA and a notice every pass until the alert clears again. So it does
// when the record removed was of a later generation (each earlier ticket
// is searched for, and passed over), when the ticket was closed in the PSA
// while the alert was open ("psa"), and when the first search after the
// return fails (the create put back is taken up by the next pass).
func TestEngine_returnAfterRetentionForgotTheRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// returns is how often the alert clears and comes back before its
		// record is forgotten: each return gets the next generation.
		returns int
		// closedInPSA records the last ticket as closed in the PSA while
		// its alert was open.
		closedInPSA bool
		// searchFails fails the first search after the return.
		searchFails bool
	}{
		{name: "closedByPsaSyncd"},
		{name: "laterGeneration", returns: 2},
		{name: "closedInThePSA", closedInPSA: true},
		{name: "searchFailed", searchFails: true},
	} {
		for _, sys := range psa.Systems {
			if tc.searchFails && sys != psa.SystemAutotask {
				continue
			}
			t.Run(tc.name+"/"+string(sys), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				c, err := sophos.NewClient(sophos.WithCredentials(e.sophos.ClientID(), e.sophos.ClientSecret()), sophos.WithAuthURL(e.sophos.AuthURL()),
					sophos.WithBaseURL(e.sophos.APIURL()), sophos.WithBackoff(time.Millisecond, 2*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				eng, err := tickets.New(tickets.Config{System: e.system, PSA: e.backend, Store: e.db, Alerts: tickets.NewSophosAlerts(c),
					Routing: routings[sys], Retention: 400 * 24 * time.Hour, Now: func() time.Time { return e.now }})
				if err != nil {
					t.Fatal(err)
				}
				a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
				back := func() {
					e.sophos.AddAlert(acme, sophostest.Alert{ID: a.ID, Severity: "high", Description: "Malware on PC-1"})
				}
				e.pass(eng)
				for range tc.returns {
					e.sophos.ResolveAlert(acme, a.ID)
					e.pass(eng)
					e.now = e.now.Add(48 * time.Hour)
					back()
					if tot := e.pass(eng).Customers[0]; tot.Created != 1 || tot.Err != nil {
						t.Fatalf("pass after a return = %+v, want the next generation's ticket", tot)
					}
				}
				gen := tc.returns + 1
				if tc.closedInPSA {
					// A technician closed it while the alert was open,
					// which psa-syncd saw (at a reopen, say).
					for _, tk := range e.tickets() {
						if !tk.closed {
							e.setStatus(tk.id, true)
						}
					}
					r := e.record(a.ID)
					now := e.now.UTC()
					r.State, r.ClosedBy, r.ClosedAt, r.Updated = tickets.StateClosed, tickets.ClosedByPSA, now, now
					if err := e.db.PutTicketRecord(r); err != nil {
						t.Fatal(err)
					}
				}
				e.sophos.ResolveAlert(acme, a.ID)
				e.pass(eng)
				if r := e.record(a.ID); r.State != tickets.StateClosed || r.Generation != gen {
					t.Fatalf("record after the resolve = %+v, want generation %d closed", r, gen)
				}
				e.now = e.now.AddDate(1, 2, 0)
				e.pass(eng)
				if records, err := e.db.TicketRecords("sophos", acme); err != nil || len(records) != 0 {
					t.Fatalf("records 14 months later = %+v, %v; want the closed ticket's forgotten", records, err)
				}

				back()
				if tc.searchFails {
					e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets/query", Status: http.StatusBadRequest,
						Body: `{"errors":["The search is refused."]}`, Times: 1})
					if tot := e.pass(eng).Customers[0]; tot.Created != 0 || tot.Err == nil || !strings.Contains(tot.Err.Error(), "searching for") {
						t.Fatalf("pass after the return, its search failing = %+v, want the customer failed on the search", tot)
					}
				}
				// A dry run names the ticket the pass files, not the first
				// one's reference again.
				dry := e.dryPass(eng).Customers[0]
				tot := e.pass(eng).Customers[0]
				if tot.Created != 1 || tot.Adopted != 0 || tot.Err != nil || len(tot.Notices) != 0 {
					t.Errorf("pass after the return = %+v, want a new ticket and no notice", tot)
				}
				r := e.record(a.ID)
				if !slices.Equal(dry.WouldCreate, []string{r.Ref}) || dry.Err != nil || len(dry.Notices) != 0 {
					t.Errorf("dry run before that pass = %+v, want it to name %s, the ticket the pass filed", dry, r.Ref)
				}
				if want := gen + 1; r.State != tickets.StateOpen || r.Generation != want || r.ClosedBy != "" || !strings.HasSuffix(r.Ref, "/"+string(rune('0'+want))) {
					t.Errorf("record after the return = %+v, want generation %d open", r, want)
				}
				var open []psaTicket
				for _, tk := range e.tickets() {
					if !tk.closed {
						open = append(open, tk)
					}
				}
				if got := len(e.tickets()); got != gen+1 || len(open) != 1 || r.TicketID != id(open[0].id) {
					t.Errorf("tickets after the return = %+v, want the %d closed ones and the record's new one open", e.tickets(), gen)
				}
				if tot := e.pass(eng).Customers[0]; tot.Created != 0 || tot.Adopted != 0 || len(tot.Notices) != 0 || tot.Err != nil {
					t.Errorf("the pass after = %+v, want nothing more", tot)
				}
			})
		}
	}
}

// TestEngine_summaryWithNoRecordFoundClosed: a storm at a customer whose
// earlier summary tickets are closed, of which psa-syncd keeps no record (a
// new state database), gets a new summary ticket, the next generation's,
// rather than the old closed one adopted as closed in the PSA, its alerts
// getting only a notice until they clear. So it does when the earlier
// summaries are several (each is searched for, and passed over), and when
// the first search for the summary fails (the create put back is taken up
// by the next pass).
func TestEngine_summaryWithNoRecordFoundClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// storms is how many summary tickets are filed and closed before
		// the state database is new.
		storms int
		// searchFails fails the first search for the summary after it.
		searchFails bool
	}{
		{name: "firstSummary", storms: 1},
		{name: "laterGeneration", storms: 2},
		{name: "searchFailed", storms: 1, searchFails: true},
	} {
		for _, sys := range psa.Systems {
			if tc.searchFails && sys != psa.SystemAutotask {
				continue
			}
			t.Run(tc.name+"/"+string(sys), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
				storm := e.raiseSeries("Threat", 0, 2)
				for i := range tc.storms {
					if i > 0 {
						e.stormBack(storm...)
					}
					if tot := e.pass(eng).Customers[0]; tot.Created != 1 || tot.Summarised != 1 || tot.Err != nil {
						t.Fatalf("storm %d = %+v, want one ticket and a summary", i, tot)
					}
					for _, a := range storm {
						e.sophos.ResolveAlert(acme, a.ID)
					}
					e.pass(eng)
					if r := e.record(tickets.SummaryKey); r.State != tickets.StateClosed || r.Generation != i+1 {
						t.Fatalf("summary record after storm %d resolved = %+v, want generation %d closed", i, r, i+1)
					}
				}
				e.db = newStateDB(t)
				eng = e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })

				e.stormBack(storm...)
				if tc.searchFails {
					e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets/query", BodyContains: `"scs:`,
						Status: http.StatusBadRequest, Body: `{"errors":["The search is refused."]}`, Times: 1})
					if tot := e.pass(eng).Customers[0]; tot.Summarised != 1 || tot.Err == nil || !strings.Contains(tot.Err.Error(), "searching for scs:") {
						t.Fatalf("storm pass, the summary's search failing = %+v, want the customer failed on the search", tot)
					}
					// Threat 0's ticket is filed, so the next pass files
					// Threat 1 on its own: a third alert is over the cap.
					e.raiseSeries("Threat", 2, 3)
				}
				if tot := e.pass(eng).Customers[0]; tot.Summarised != 1 || tot.Err != nil || len(tot.Notices) != 0 {
					t.Errorf("storm pass with a new state database = %+v, want a new summary and no notice", tot)
				}
				want := tc.storms + 1
				r := e.record(tickets.SummaryKey)
				if r.State != tickets.StateOpen || r.Generation != want || r.ClosedBy != "" || !strings.HasSuffix(r.Ref, "/"+strconv.Itoa(want)) {
					t.Errorf("summary record = %+v, want generation %d open", r, want)
				}
				var open []psaTicket
				for _, tk := range e.tickets() {
					if !tk.closed && strings.Contains(tk.title, "Alert storm") {
						open = append(open, tk)
					}
				}
				if len(open) != 1 || r.TicketID != id(open[0].id) || e.summaryTickets() != want {
					t.Errorf("tickets = %+v, want the %d closed summaries and the record's new one open", e.tickets(), tc.storms)
				}
				if tot := e.pass(eng).Customers[0]; tot.Created != 0 || tot.Summarised != 0 || len(tot.Notices) != 0 || tot.Err != nil {
					t.Errorf("the pass after = %+v, want nothing more", tot)
				}
			})
		}
	}
}

// newStateDB is a new, empty state database, as psa-syncd started afresh
// has: engines made after e.db is set to it use it.
func newStateDB(t *testing.T) *state.DB {
	t.Helper()
	db, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// TestEngine_dryRunNamesATicketFoundOpen: with a new state database, an
// open alert whose ticket is open in the PSA is not one a dry run would
// create: the pass's search finds the ticket, and the pass follows it, as
// the dry run's notice says.
func TestEngine_dryRunNamesATicketFoundOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	e.pass(e.engine(routings[e.system]))
	e.db = newStateDB(t)
	eng := e.engine(routings[e.system])
	ticket := id(e.tickets()[0].id)

	dry := e.dryPass(eng).Customers[0]
	want := "alert " + a.ID + " has a ticket in the PSA with its reference sc:" + a.ID + ", ticket "
	if len(dry.WouldCreate) != 0 || len(dry.Notices) != 1 || !strings.Contains(dry.Notices[0], want) ||
		!strings.HasSuffix(dry.Notices[0], "the next pass follows it rather than filing another") || dry.Err != nil {
		t.Errorf("dry run = %+v, want no create and a notice: %s...", dry, want)
	}
	if tot := e.pass(eng).Customers[0]; tot.Created != 0 || tot.Adopted != 1 || tot.Err != nil {
		t.Errorf("the pass = %+v, want the ticket adopted", tot)
	}
	if r := e.record(a.ID); r.State != tickets.StateOpen || r.TicketID != ticket {
		t.Errorf("record = %+v, want ticket %s followed", r, ticket)
	}
}

// TestEngine_dryRunSearchFails: a dry run whose search before a create
// fails names no create, and the customer fails with the search's error,
// as the pass would.
func TestEngine_dryRunSearchFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[e.system])
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets/query", Status: http.StatusBadRequest,
		Body: `{"errors":["The search is refused."]}`, Times: 1})
	if dry := e.dryPass(eng).Customers[0]; len(dry.WouldCreate) != 0 || dry.Err == nil || !strings.Contains(dry.Err.Error(), "searching for sc:"+a.ID) {
		t.Errorf("dry run, its search failing = %+v, want no create and the customer failed on the search", dry)
	}
	if dry := e.dryPass(eng).Customers[0]; !slices.Equal(dry.WouldCreate, []string{"sc:" + a.ID}) || dry.Err != nil {
		t.Errorf("dry run after = %+v, want sc:%s to be created", dry, a.ID)
	}
}
