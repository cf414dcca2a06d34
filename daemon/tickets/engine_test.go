package tickets_test

import (
	"context"
	"fmt"
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
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

const acme = "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b"

// env is one PSA simulator, a Sophos simulator with the example tenants,
// a state database and an engine over them.
type env struct {
	t       *testing.T
	system  psa.System
	psaSim  *psatest.Server
	sophos  *sophostest.Server
	db      *state.DB
	backend psa.Ticketer
	company string
	now     time.Time
	// budget, when set, is the engines' Config.Budget.
	budget tickets.Budget
	// resolveAfter is the engines' Config.ResolveAfter.
	resolveAfter time.Duration
	// startWith is the engines' Config.StartWith.
	startWith tickets.CustomerKey
	// settleTime is the engines' Config.SettleTime.
	settleTime time.Duration
	// retention is the engines' Config.Retention.
	retention time.Duration
	// psaSkew is how far the PSA simulator's clock is ahead of now
	// (psa-syncd's clock); negative: behind.
	psaSkew time.Duration
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

// routings are realistic routings per PSA with the simulators' ids.
var routings = map[psa.System]export.Tickets{
	psa.SystemAutotask: {Enabled: true, QueueID: id(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: id(psatest.AutotaskTicketStatusComplete),
		ReopenStatusID: id(psatest.AutotaskTicketStatusInProgress), Priorities: map[string]string{"high": id(psatest.AutotaskTicketPriorityHigh)},
		SourceID: id(psatest.AutotaskSourceSophosCentral), MinSeverity: "medium", OnResolve: export.OnResolveClose, OnReturn: export.OnReturnNew},
	psa.SystemConnectWise: {Enabled: true, QueueID: id(psatest.ConnectWiseBoardAlerts), ClosedStatusID: id(psatest.ConnectWiseStatusResolved),
		ReopenStatusID: id(psatest.ConnectWiseStatusNew), Priorities: map[string]string{"high": id(psatest.ConnectWisePriorityHigh)},
		TicketTypeID: id(psatest.ConnectWiseTypeSecurity), MinSeverity: "medium", OnResolve: export.OnResolveClose, OnReturn: export.OnReturnNew},
	psa.SystemKaseyaBMS: {Enabled: true, QueueID: id(psatest.KaseyaBMSQueueSecurity), NewStatusID: id(psatest.KaseyaBMSStatusNew),
		ClosedStatusID: id(psatest.KaseyaBMSStatusCompleted), ReopenStatusID: id(psatest.KaseyaBMSStatusInProgress),
		TicketTypeID: id(psatest.KaseyaBMSTypeAlert), SourceID: id(psatest.KaseyaBMSSourceMonitoring), MinSeverity: "medium",
		OnResolve: export.OnResolveClose, OnReturn: export.OnReturnNew},
}

func newEnv(t *testing.T, system psa.System) *env {
	t.Helper()
	e := &env{t: t, system: system, now: time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)}
	e.psaSim = psatest.Start(t, psatest.WithSystem(system), psatest.WithClock(func() time.Time { return e.now.Add(e.psaSkew) }))
	e.sophos = sophostest.Start(t, sophostest.WithFixtureFile("../source/sophostest/testdata/fixture.json"))
	db, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	e.db = db
	switch system {
	case psa.SystemAutotask:
		user, secret, code := e.psaSim.Autotask().Credentials()
		c, err := autotask.NewClient(autotask.WithBaseURL(e.psaSim.AutotaskBaseURL()), autotask.WithCredentials(user, secret, code),
			autotask.WithBackoff(time.Millisecond, 2*time.Millisecond), autotask.WithMaxRetries(1))
		if err != nil {
			t.Fatal(err)
		}
		e.backend = autotask.NewBackend(c)
		e.company = id(e.psaSim.Autotask().AddCompany("Acme"))
	case psa.SystemConnectWise:
		company, pub, priv, clientID := e.psaSim.ConnectWise().Credentials()
		c, err := connectwise.NewClient(connectwise.WithSite(e.psaSim.ConnectWiseSite()), connectwise.WithBaseURL(e.psaSim.ConnectWiseBaseURL()),
			connectwise.WithCompanyID(company), connectwise.WithKeys(pub, priv), connectwise.WithClientID(clientID),
			connectwise.WithBackoff(time.Millisecond, 2*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		e.backend = connectwise.NewBackend(c)
		e.company = id(e.psaSim.ConnectWise().AddCompany("Acme"))
	case psa.SystemKaseyaBMS:
		c, err := kaseyabms.NewClient(kaseyabms.WithBaseURL(e.psaSim.KaseyaBMSBaseURL()),
			kaseyabms.WithCredentials(psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
			kaseyabms.WithBackoff(time.Millisecond, 2*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		e.backend = kaseyabms.NewBackend(c)
		e.company = id(int64(e.psaSim.KaseyaBMS().AddAccount("Acme")))
	}
	return e
}

// sophosAlerts is the engines' alert source: a client of the Sophos
// simulator.
func (e *env) sophosAlerts() *tickets.SophosAlerts {
	e.t.Helper()
	c, err := sophos.NewClient(sophos.WithCredentials(e.sophos.ClientID(), e.sophos.ClientSecret()), sophos.WithAuthURL(e.sophos.AuthURL()),
		sophos.WithBaseURL(e.sophos.APIURL()), sophos.WithBackoff(time.Millisecond, 2*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	return tickets.NewSophosAlerts(c)
}

func (e *env) engine(routing export.Tickets) *tickets.Engine {
	e.t.Helper()
	eng, err := tickets.New(tickets.Config{System: e.system, PSA: e.backend, Store: e.db, Alerts: e.sophosAlerts(), Routing: routing,
		Now: func() time.Time { return e.now }, Budget: e.budget, ResolveAfter: e.resolveAfter,
		StartWith: e.startWith, SettleTime: e.settleTime, Retention: e.retention})
	if err != nil {
		e.t.Fatal(err)
	}
	return eng
}

// engineWith is e.engine over the system's routing as set changes it.
func (e *env) engineWith(set func(r *export.Tickets)) *tickets.Engine {
	e.t.Helper()
	r := routings[e.system]
	set(&r)
	return e.engine(r)
}

func (e *env) customers() []tickets.Customer {
	return []tickets.Customer{{Source: "sophos", CustomerID: acme, CustomerName: "Acme Corporation", CompanyID: e.company}}
}

func (e *env) pass(eng *tickets.Engine) tickets.Report {
	e.t.Helper()
	rep, err := eng.Pass(e.t.Context(), e.customers(), false)
	if err != nil {
		e.t.Fatalf("Pass: %v", err)
	}
	// The simulator logs each request under its lock once handled, before
	// it answers or drops the answer: taking the lock here orders its
	// handlers' reads of now before the test's next change of it. A
	// dropped answer (psatest.Fault.DropAfterHandling) is no
	// synchronisation the race detector sees.
	e.psaSim.Requests()
	return rep
}

// forEachSystem runs test as a parallel subtest per PSA system, each on an
// env of its own.
func forEachSystem(t *testing.T, test func(t *testing.T, e *env)) {
	t.Helper()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			test(t, newEnv(t, sys))
		})
	}
}

// ticketed raises alert for Acme and runs a pass of eng, which must file
// the alert's ticket.
func (e *env) ticketed(eng *tickets.Engine, alert sophostest.Alert) sophostest.Alert {
	e.t.Helper()
	a := e.sophos.AddAlert(acme, alert)
	if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Err != nil {
		e.t.Fatalf("pass = %+v, want the alert's ticket", tot)
	}
	return a
}

// dryPass runs a dry-run pass over the customers.
func (e *env) dryPass(eng *tickets.Engine) tickets.Report {
	e.t.Helper()
	rep, err := eng.Pass(e.t.Context(), e.customers(), true)
	if err != nil {
		e.t.Fatalf("dry-run Pass: %v", err)
	}
	return rep
}

// resolvedHealthCheck raises a "Health check" alert, whose ticket a pass
// files and the next one resolves (closes it, or notes it with on_resolve
// "note"), and returns the alert: the start of a return.
func (e *env) resolvedHealthCheck(eng *tickets.Engine) sophostest.Alert {
	e.t.Helper()
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
	e.pass(eng)
	e.sophos.ResolveAlert(acme, a.ID)
	e.pass(eng)
	return a
}

// raiseAgain raises alert a again with its id, as Sophos raises a snoozed
// health check again; its raisedAt is the simulator's now, as of an alert
// raised anew.
func (e *env) raiseAgain(a sophostest.Alert) {
	e.sophos.AddAlert(acme, sophostest.Alert{ID: a.ID, Severity: a.Severity, Description: a.Description})
}

// raiseSeries raises high alerts "<name> from" to "<name> to-1", alert i
// raised at 09:0i, and returns them.
func (e *env) raiseSeries(name string, from, to int) []sophostest.Alert {
	var alerts []sophostest.Alert
	for i := from; i < to; i++ {
		alerts = append(alerts, e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("%s %d", name, i),
			RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)}))
	}
	return alerts
}

// stormBack raises alerts of a storm again with their ids, listed as they
// were first: with their raisedAt.
func (e *env) stormBack(alerts ...sophostest.Alert) {
	for _, a := range alerts {
		e.sophos.AddAlert(acme, sophostest.Alert{ID: a.ID, Severity: a.Severity, Description: a.Description, RaisedAt: a.RaisedAt})
	}
}

// alertStorm sets up a summary ticket with alerts waiting for its note: with
// one ticket per customer a pass (max_per_customer 1), two alerts make one
// alert's ticket and the "Alert storm" summary at a pass, and two more
// alerts are raised, which the next pass notes on the summary (one more
// ticket, one alert for the summary's note). It returns the engine and the
// summary's ticket id.
func (e *env) alertStorm() (*tickets.Engine, int64) {
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	e.raiseSeries("Threat", 0, 2)
	e.pass(eng) // one alert's ticket, one summary
	var summary int64
	for _, tk := range e.tickets() {
		if strings.Contains(tk.title, "Alert storm") {
			summary = tk.id
		}
	}
	e.raiseSeries("Threat", 2, 4)
	return eng, summary
}

// psaTicket is a ticket as the PSA simulator holds it.
type psaTicket struct {
	id     int64
	title  string
	closed bool
	notes  []string
}

func (e *env) tickets() []psaTicket {
	var out []psaTicket
	switch e.system {
	case psa.SystemAutotask:
		for _, t := range e.psaSim.Autotask().Tickets() {
			var notes []string
			for _, n := range e.psaSim.Autotask().TicketNotes(t.ID) {
				notes = append(notes, n.Description)
			}
			if t.Resolution != "" {
				notes = append(notes, t.Resolution)
			}
			out = append(out, psaTicket{t.ID, t.Title, t.Status == "Complete", notes})
		}
	case psa.SystemConnectWise:
		for _, t := range e.psaSim.ConnectWise().Tickets() {
			var notes []string
			for _, n := range e.psaSim.ConnectWise().TicketNotes(t.ID) {
				if n.Internal {
					notes = append(notes, n.Text)
				}
			}
			out = append(out, psaTicket{t.ID, t.Summary, t.Closed, notes})
		}
	case psa.SystemKaseyaBMS:
		for _, t := range e.psaSim.KaseyaBMS().Tickets() {
			var notes []string
			for _, n := range e.psaSim.KaseyaBMS().TicketNotes(t.ID) {
				notes = append(notes, n.Details)
			}
			out = append(out, psaTicket{int64(t.ID), t.Title, t.CompletedDate != nil, notes})
		}
	}
	return out
}

// Each PSA end to end: an alert becomes one ticket, passes are idempotent,
// a low alert below the floor gets none, and a resolved alert closes its
// ticket with a note.
func TestEngine_lifecycle(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			eng := e.engine(routings[sys])
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Type: "Event::Endpoint::Threat::CleanupFailed",
				Description: "Manual cleanup required: 'EICAR-AV-Test' on PC-042", ManagedAgent: &sophostest.ManagedAgent{ID: "bb90527d", Type: "computer"}})
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "low", Description: "Low noise"})

			rep := e.pass(eng)
			if tot := rep.Totals(); tot.Created != 1 || tot.Err != nil {
				t.Fatalf("first pass = %+v", rep.Customers)
			}
			got := e.tickets()
			if len(got) != 1 || !strings.HasPrefix(got[0].title, "[Sophos] High: Manual cleanup required") || got[0].closed {
				t.Fatalf("tickets after the first pass = %+v", got)
			}
			rep = e.pass(eng)
			if tot := rep.Totals(); tot.Created != 0 || tot.Adopted != 0 || len(e.tickets()) != 1 {
				t.Fatalf("second pass created again: %+v, tickets %+v", rep.Customers, e.tickets())
			}

			e.sophos.ResolveAlert(acme, a.ID)
			rep = e.pass(eng)
			if tot := rep.Totals(); tot.Closed != 1 {
				t.Fatalf("pass after resolving = %+v", rep.Customers)
			}
			got = e.tickets()
			if len(got) != 1 || !got[0].closed || !strings.Contains(strings.Join(got[0].notes, "\n"), "resolved in Sophos Central") {
				t.Errorf("tickets after resolving = %+v", got)
			}
			if rep = e.pass(eng); rep.Totals().Closed != 0 {
				t.Errorf("a closed ticket was closed again: %+v", rep.Customers)
			}
		})
	}
}

// A title is one line, and never blank: with a title format of only
// "{description}", an alert without a description gets the default
// format's title rather than a create every PSA refuses (and no ticket
// until the routing changed), and one whose description has line breaks
// a title without them.
func TestEngine_titleOneLineNeverBlank(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			r := routings[sys]
			r.TitleFormat = "{description}"
			eng := e.engine(r)
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "", RaisedAt: "2026-11-15T09:00:00.000"})
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware\r\n  on PC-1\n", RaisedAt: "2026-11-15T09:01:00.000"})
			if cr := e.pass(eng).Customers[0]; cr.Created != 2 || cr.Failed != 0 || cr.Err != nil {
				t.Fatalf("pass = %+v, want both alerts filed", cr)
			}
			var titles []string
			for _, tk := range e.tickets() {
				titles = append(titles, tk.title)
			}
			slices.Sort(titles)
			if len(titles) != 2 || !strings.HasPrefix(titles[0], "Malware on PC-1") || !strings.HasPrefix(titles[1], "[Sophos] High:") {
				t.Errorf("titles = %q, want the one-line description and the default format's", titles)
			}
		})
	}
}

// A lost answer to a create is settled by searching the PSA: the ticket is
// adopted, never created a second time.
func TestEngine_lostAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", DropAfterHandling: true, Times: 1})

	rep := e.pass(eng)
	if tot, err := rep.Totals(), rep.Customers[0].Err; tot.Created != 0 || err == nil || !strings.Contains(err.Error(), "settled by searching") {
		t.Fatalf("pass with a lost answer = %+v", rep.Customers)
	}
	intents, _ := e.db.TicketIntents()
	if len(intents) != 1 {
		t.Fatalf("intents after the lost answer = %+v, want the one open intent", intents)
	}
	rep = e.pass(eng)
	if rep.Settled != 1 || rep.Totals().Created != 0 || rep.Customers[0].Adopted != 1 {
		t.Fatalf("next pass = settled %d, %+v; want the ticket adopted, and counted for its customer", rep.Settled, rep.Customers)
	}
	if n := len(e.tickets()); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
	posts := 0
	for _, r := range e.psaSim.Requests() {
		if r.Method == http.MethodPost && strings.EqualFold(r.Path, "/ATServicesRest/V1.0/Tickets") {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("%d ticket creates sent, want 1", posts)
	}
}

// A read the Autotask create needs first (the status picklist's default)
// failing with a 500 that carries errors[] is not Autotask refusing the
// ticket: nothing was sent, and the next pass files the alert. It was
// recorded as a refused create, sent again only when the routing changed.
func TestEngine_autotaskReadBeforeCreateFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/ATServicesRest/V1.0/Tickets/entityInformation/fields", Status: http.StatusInternalServerError,
		Body: `{"errors":["An unexpected error has occurred."]}`, Times: 1})

	if cr := e.pass(eng).Customers[0]; cr.Created != 0 || cr.Failed != 0 || cr.Err == nil {
		t.Fatalf("pass whose read failed = %+v, want the customer failed and no create refused", cr)
	}
	if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Err != nil || len(e.tickets()) != 1 {
		t.Errorf("next pass = %+v, %d tickets; want the ticket created", cr, len(e.tickets()))
	}
}

// A ticket settled after its create's answer was lost counts as adopted
// for its customer, and one of a customer no longer in the pass (ticket
// sync turned off) in OtherAdopted; a summary ticket, which is not one of
// the customer's alert tickets, counts as neither.
func TestEngine_settledAdoptionsCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	e.raiseSeries("Storm", 0, 3)
	// The answers to the first alert's create and to the summary's are
	// lost; the second alert's ticket is created.
	for _, body := range []string{"Storm 0", "Alert storm"} {
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", BodyContains: body, DropAfterHandling: true, Times: 1})
	}
	if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Adopted != 0 || cr.Err == nil {
		t.Fatalf("pass with two answers lost = %+v, want one ticket created and the customer failed", cr)
	}
	if n := len(e.tickets()); n != 3 {
		t.Fatalf("%d tickets in the PSA, want two alerts' and the summary", n)
	}
	rep := e.pass(eng)
	if cr := rep.Customers[0]; rep.Settled != 2 || cr.Created != 0 || cr.Adopted != 1 || cr.Err != nil {
		t.Errorf("settling pass = settled %d, %+v; want both settled and the one alert ticket adopted", rep.Settled, cr)
	}

	// Another alert whose create answer is lost; then ticket sync is
	// turned off for the customer: the next pass has no customers.
	e2 := newEnv(t, psa.SystemAutotask)
	eng2 := e2.engine(routings[psa.SystemAutotask])
	e2.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware"})
	e2.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", DropAfterHandling: true, Times: 1})
	e2.pass(eng2)
	rep, err := eng2.Pass(t.Context(), nil, false)
	if err != nil || rep.Settled != 1 || rep.OtherAdopted != 1 || len(rep.Customers) != 0 {
		t.Errorf("pass without the customer = %+v, %v; want its ticket settled and counted in OtherAdopted", rep, err)
	}
}

// A PSA that throttles stops the pass's creates; the next pass makes them.
func TestEngine_rateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemConnectWise)
	eng := e.engine(routings[psa.SystemConnectWise])
	for i := range 3 {
		e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat %d", i)})
	}
	base := strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL())
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: base + "service/tickets", Status: http.StatusTooManyRequests, RetryAfter: time.Hour})

	rep := e.pass(eng)
	if !rep.RateLimited || rep.Totals().Created != 0 || len(e.tickets()) != 0 {
		t.Fatalf("throttled pass = %+v (rate limited %v), tickets %+v", rep.Customers, rep.RateLimited, e.tickets())
	}
	posts := 0
	for _, r := range e.psaSim.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/service/tickets") {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("%d creates sent while throttled, want 1 (the pass stops at the first 429)", posts)
	}
	e.psaSim.ClearFaults()
	rep = e.pass(eng)
	if got := len(e.tickets()); got != 3 {
		t.Fatalf("after the throttle: %d tickets (%+v), want 3", got, rep.Customers)
	}
}

// budgetLeft is a Budget that allows left writes and refuses the rest, as
// the daemon's does once the PSA's hourly budget reaches the reserve.
type budgetLeft struct{ left, asked int }

func (b *budgetLeft) Allow(context.Context) (bool, string) {
	b.asked++
	if b.left <= 0 {
		return false, "the PSA's hourly API budget reached the reserve (500)"
	}
	b.left--
	return true, ""
}

// At the budget reserve a pass stops writing: the alerts still to file and
// the tickets of resolved alerts still to close wait, with a notice, for a
// later pass, which does them. The customer is not failed, and the report
// says the pass was budget-limited.
func TestEngine_budgetReserve(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	budget := &budgetLeft{left: 1}
	e.budget = budget
	eng := e.engine(routings[psa.SystemAutotask])
	alerts := e.raiseSeries("Threat", 0, 3)

	rep := e.pass(eng)
	cr := rep.Customers[0]
	if cr.Created != 1 || cr.Deferred != 2 || len(e.tickets()) != 1 {
		t.Fatalf("first pass = %+v, %d tickets; want 1 created and 2 deferred", cr, len(e.tickets()))
	}
	if !rep.BudgetLimited || rep.RateLimited || cr.Err != nil {
		t.Errorf("first pass: budget limited %v, rate limited %v, customer error %v; want budget limited and no failure", rep.BudgetLimited, rep.RateLimited, cr.Err)
	}
	if len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "2 alerts wait for a later pass") || !strings.Contains(cr.Notices[0], "reached the reserve (500)") {
		t.Errorf("notices = %q, want one saying 2 alerts wait for the budget", cr.Notices)
	}
	if budget.asked != 2 {
		t.Errorf("the budget was asked %d times, want 2: once refused, the pass asks no more", budget.asked)
	}
	if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 {
		t.Errorf("records = %+v, want only the created ticket's: the deferred alerts are not recorded", recs)
	}

	// The alert with a ticket is resolved; the budget is still spent: its
	// ticket stays open until a pass has the budget to close it.
	e.sophos.ResolveAlert(acme, alerts[0].ID)
	budget.left = 0
	rep = e.pass(eng)
	if cr := rep.Customers[0]; cr.Closed != 0 || cr.Created != 0 || cr.Deferred != 3 || cr.Err != nil || !rep.BudgetLimited {
		t.Errorf("pass at the reserve = %+v (budget limited %v); want nothing closed or created, 3 deferred, no failure", cr, rep.BudgetLimited)
	}
	if tks := e.tickets(); len(tks) != 1 || tks[0].closed {
		t.Errorf("tickets = %+v, want the one ticket still open", tks)
	}

	budget.left = 10
	rep = e.pass(eng)
	if cr := rep.Customers[0]; cr.Closed != 1 || cr.Created != 2 || cr.Deferred != 0 || len(cr.Notices) != 0 || rep.BudgetLimited {
		t.Errorf("pass with budget = %+v (budget limited %v); want the ticket closed and the 2 alerts filed", cr, rep.BudgetLimited)
	}

	// A dry run asks no budget.
	budget.asked, budget.left = 0, 0
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Threat 4"})
	if rep, err := eng.Pass(t.Context(), e.customers(), true); err != nil || len(rep.Totals().WouldCreate) != 1 || budget.asked != 0 {
		t.Errorf("dry run = %+v, %v, budget asked %d times; want 1 would-create and no budget asked", rep.Totals(), err, budget.asked)
	}
}

// An alert storm is capped: the alerts over the per-customer cap share one
// summary ticket, which later passes extend instead of duplicating, and
// which closes when every alert it covers is resolved.
func TestEngine_storm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 5 })
	var ids []string
	for i := range 30 {
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "medium", Type: "Event::Endpoint::OutOfDate",
			Description: fmt.Sprintf("PC-%03d is out of date", i), RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)})
		ids = append(ids, a.ID)
	}
	rep := e.pass(eng)
	tot := rep.Totals()
	if tot.Created != 5 || tot.Summarised != 25 || len(e.tickets()) != 6 {
		t.Fatalf("storm pass = %+v, %d tickets", tot, len(e.tickets()))
	}
	var summary psaTicket
	for _, tk := range e.tickets() {
		if strings.Contains(tk.title, "Alert storm") {
			summary = tk
		}
	}
	if summary.id == 0 {
		t.Fatalf("no summary ticket among %+v", e.tickets())
	}
	rep = e.pass(eng)
	if tot := rep.Totals(); tot.Created != 0 || tot.Summarised != 0 || len(e.tickets()) != 6 {
		t.Fatalf("second pass = %+v, %d tickets; want nothing new", tot, len(e.tickets()))
	}
	for _, a := range ids {
		e.sophos.ResolveAlert(acme, a)
	}
	rep = e.pass(eng)
	if tot := rep.Totals(); tot.Closed != 6 {
		t.Fatalf("pass after the storm = %+v, want 6 closed", tot)
	}
}

// Customers without ticket sync are left alone: their open tickets stay
// open even when the alerts are resolved.
func TestEngine_ticketSyncOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high"})
	e.pass(eng)
	e.sophos.ResolveAlert(acme, a.ID)
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high"})
	rep, err := eng.Pass(t.Context(), nil, false)
	if err != nil || len(rep.Customers) != 0 {
		t.Fatalf("Pass without customers = %+v, %v", rep, err)
	}
	if got := e.tickets(); len(got) != 1 || got[0].closed {
		t.Errorf("tickets = %+v, want the one ticket still open", got)
	}
}

// A resolved alert that comes back reopens its ticket within the window;
// a ticket a technician closed is never reopened for its alert.
func TestEngine_reopen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
	b := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Other"})
	e.pass(eng)
	e.sophos.ResolveAlert(acme, a.ID)
	e.pass(eng)
	// The alert is raised again with its id (a snoozed health alert).
	e.raiseAgain(a)
	e.now = e.now.Add(time.Hour)
	// A dry run says which ticket the pass reopens, and reopens nothing.
	dry := e.dryPass(eng)
	var aTicket, aStatus string
	for _, tk := range e.psaSim.Autotask().Tickets() {
		if strings.Contains(tk.Title, "Health check") {
			aTicket, aStatus = strconv.FormatInt(tk.ID, 10), tk.Status
		}
	}
	if tot := dry.Totals(); !slices.Equal(tot.WouldReopen, []string{aTicket}) || len(tot.WouldCreate) != 0 || tot.Reopened != 0 {
		t.Errorf("dry run after the return: would reopen %v, create %v, reopened %d; want ticket %s reopened", tot.WouldReopen, tot.WouldCreate, tot.Reopened, aTicket)
	}
	if aStatus != "Complete" {
		t.Errorf("ticket %s is %q after the dry run, want it still Complete", aTicket, aStatus)
	}
	rep := e.pass(eng)
	if tot := rep.Totals(); tot.Reopened != 1 || tot.Created != 0 || len(tot.WouldReopen) != 0 {
		t.Fatalf("pass after the return = %+v", tot)
	}
	// A technician closes b's ticket (having fixed the device); b clears,
	// and psa-syncd finds the ticket closed when it resolves b. b comes
	// back: it cleared and came back, and its ticket is reopened as one
	// psa-syncd closed would be. (A close psa-syncd sees while the alert
	// is open is never reopened: TestEngine_reopenUnsettled.)
	var bTicket int64
	for _, tk := range e.psaSim.Autotask().Tickets() {
		if strings.Contains(tk.Title, "Other") {
			bTicket = tk.ID
		}
	}
	e.psaSim.Autotask().SetTicketStatus(bTicket, "Complete")
	e.sophos.ResolveAlert(acme, b.ID)
	if tot := e.pass(eng).Totals(); tot.Closed != 0 || tot.Err != nil {
		t.Fatalf("pass after b cleared = %+v, want its ticket found closed, not closed again", tot)
	}
	if rec := e.record(b.ID); rec.State != tickets.StateClosed || rec.ClosedBy != tickets.ClosedByPSAResolved {
		t.Fatalf("record of b = %+v, want closed in the PSA when b was resolved", rec)
	}
	e.raiseAgain(b)
	rep = e.pass(eng)
	if tot := rep.Totals(); tot.Reopened != 1 || tot.Created != 0 || tot.Err != nil || len(tot.Notices) != 0 {
		t.Errorf("pass after b came back = %+v, want its ticket reopened", tot)
	}
	for _, tk := range e.psaSim.Autotask().Tickets() {
		if tk.ID == bTicket && tk.Status == "Complete" {
			t.Errorf("b's ticket %d is still Complete, want it reopened", bTicket)
		}
	}
	if rec := e.record(b.ID); rec.State != tickets.StateOpen || rec.Generation != 1 {
		t.Errorf("record of b = %+v, want its ticket followed again", rec)
	}
}

// psa-syncd's own close whose answer was lost is settled next pass as
// psa-syncd's, not a technician's: the alert coming back within the reopen
// window reopens its ticket.
func TestEngine_lostCloseAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	r := routings[psa.SystemAutotask]
	r.OnReturn = export.OnReturnReopen
	eng := e.engine(r)
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
	e.pass(eng)
	e.sophos.ResolveAlert(acme, a.ID)
	// Every answer to the close is lost (the client may retry a PATCH).
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", DropAfterHandling: true})
	rep := e.pass(eng)
	if cr := rep.Customers[0]; cr.Closed != 0 || cr.Err == nil || !e.tickets()[0].closed {
		t.Fatalf("pass with the close's answer lost = %+v, ticket %+v; want the customer failed and the ticket closed in the PSA", cr, e.tickets()[0])
	}
	e.psaSim.ClearFaults()
	rep = e.pass(eng)
	if cr := rep.Customers[0]; cr.Closed != 1 || cr.Err != nil {
		t.Errorf("settling pass = %+v, want the close recorded", cr)
	}
	recs, err := e.db.TicketRecords("sophos", acme)
	if err != nil || len(recs) != 1 || recs[0].State != tickets.StateClosed || recs[0].ClosedBy != tickets.ClosedBySync {
		t.Fatalf("records = %+v, %v; want the ticket closed by psa-syncd", recs, err)
	}
	patches := 0
	for _, r := range e.psaSim.Requests() {
		if r.Method == http.MethodPatch && !r.Dropped {
			patches++
		}
	}
	if patches != 0 {
		t.Errorf("%d answered PATCHes: the closed ticket was closed again", patches)
	}
	e.raiseAgain(a)
	e.now = e.now.Add(time.Hour)
	rep = e.pass(eng)
	if tot := rep.Totals(); tot.Reopened != 1 || tot.Created != 0 || len(tot.Notices) != 0 {
		t.Errorf("alert back within the window: %+v; want its ticket reopened", tot)
	}
	if got := e.tickets(); len(got) != 1 || got[0].closed {
		t.Errorf("tickets = %+v, want the one ticket open again", got)
	}
}

func TestEngine_dryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemKaseyaBMS)
	eng := e.engine(routings[psa.SystemKaseyaBMS])
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high"})
	rep := e.dryPass(eng)
	if w := rep.Totals().WouldCreate; len(w) != 1 || w[0] != "sc:"+a.ID {
		t.Errorf("WouldCreate = %v", w)
	}
	if n := len(e.tickets()); n != 0 {
		t.Errorf("a dry run created %d tickets", n)
	}
	if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 0 {
		t.Errorf("a dry run stored records: %+v", recs)
	}
}

// A dry run reports alerts over the customer's cap that the pass would
// note on the open summary ticket as such, not as a summary ticket it
// would create: the pass creates none.
func TestEngine_dryRunSummaryExtended(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemConnectWise)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	e.raiseSeries("Threat", 0, 3)
	e.pass(eng)
	var summary string
	for _, tk := range e.tickets() {
		if strings.Contains(tk.title, "Alert storm") {
			summary = id(tk.id)
		}
	}
	e.raiseSeries("Threat", 3, 5)
	rep := e.dryPass(eng)
	cr := rep.Customers[0]
	if len(cr.WouldCreate) != 1 || !strings.HasPrefix(cr.WouldCreate[0], "sc:") {
		t.Errorf("WouldCreate = %q, want only the ticket of the alert under the cap", cr.WouldCreate)
	}
	if len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "summary ticket "+summary) || !strings.Contains(cr.Notices[0], "1 more alert") {
		t.Errorf("notices = %q, want one saying 1 more alert would be noted on summary ticket %s", cr.Notices, summary)
	}
	if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Summarised != 1 || e.summaryTickets() != 1 {
		t.Errorf("the pass = %+v, %d summary tickets; want one ticket created and one alert noted on the summary", cr, e.summaryTickets())
	}
}

// With on_resolve = "note" a dry run reports the ticket of a resolved
// alert as one it would add a note to, not close, as the pass then does;
// with "close", as one it would close.
func TestEngine_dryRunOnResolve(t *testing.T) {
	t.Parallel()
	for _, onResolve := range []string{export.OnResolveNote, export.OnResolveClose} {
		t.Run(onResolve, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, psa.SystemAutotask)
			eng := e.engineWith(func(r *export.Tickets) { r.OnResolve = onResolve })
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware"})
			e.pass(eng)
			ticket := id(e.tickets()[0].id)
			e.sophos.ResolveAlert(acme, a.ID)
			rep := e.dryPass(eng)
			dry := rep.Totals()
			tot := e.pass(eng).Totals()
			switch {
			case !rep.DryRun:
				t.Errorf("dry run report has DryRun false")
			case onResolve == export.OnResolveNote && (!slices.Equal(dry.WouldNote, []string{ticket}) || len(dry.WouldClose) != 0 || tot.Noted != 1 || tot.Closed != 0):
				t.Errorf("dry run would close %v and note %v; the pass closed %d and noted %d: want ticket %s noted in both", dry.WouldClose, dry.WouldNote, tot.Closed, tot.Noted, ticket)
			case onResolve == export.OnResolveClose && (!slices.Equal(dry.WouldClose, []string{ticket}) || len(dry.WouldNote) != 0 || tot.Closed != 1 || tot.Noted != 0):
				t.Errorf("dry run would close %v and note %v; the pass closed %d and noted %d: want ticket %s closed in both", dry.WouldClose, dry.WouldNote, tot.Closed, tot.Noted, ticket)
			}
		})
	}
}

// Tenants that deny alert access fail their customer, not the pass.
func TestEngine_alertsDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	e.sophos.DenyAlerts(acme, true)
	rep := e.pass(eng)
	if len(rep.Customers) != 1 || !sophos.IsAccessDenied(rep.Customers[0].Err) {
		t.Errorf("report = %+v, want the customer's access-denied error", rep.Customers)
	}
}

// summaryTickets counts the summary ("Alert storm") tickets in the PSA.
func (e *env) summaryTickets() int {
	n := 0
	for _, tk := range e.tickets() {
		if strings.Contains(tk.title, "Alert storm") {
			n++
		}
	}
	return n
}

// A summary create whose answer was lost, and whose settling search then
// fails, blocks the customer's summary until it is settled: no second
// summary ticket, and its alerts get no tickets of their own meanwhile.
// Once settled, the one summary closes with its alerts.
func TestEngine_summaryCreateUnsettled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	var ids []string
	for i := range 3 {
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat %d", i),
			RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)})
		ids = append(ids, a.ID)
	}
	const create, search = "/ATServicesRest/V1.0/Tickets", "/ATServicesRest/V1.0/Tickets/query"
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: create, BodyContains: `"scs:`, DropAfterHandling: true, Times: 1})
	e.pass(eng)
	if n := len(e.tickets()); n != 2 {
		t.Fatalf("first pass: %d tickets, want the first alert's and the summary (its answer lost)", n)
	}
	// The summary's settling search fails for a whole pass.
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: search, BodyContains: `"scs:`, Status: http.StatusServiceUnavailable})
	rep := e.pass(eng)
	cr := rep.Customers[0]
	if cr.Created != 0 || cr.Summarised != 0 || cr.Err == nil || !strings.Contains(cr.Err.Error(), "unsettled") {
		t.Errorf("pass with the summary unsettled = %+v, want nothing created and the customer failed naming the unsettled create", cr)
	}
	if cr.Err != nil && !strings.Contains(cr.Err.Error(), "503") {
		t.Errorf("customer error = %q, want it to say why the search failed (503)", cr.Err)
	}
	if n, s := len(e.tickets()), e.summaryTickets(); n != 2 || s != 1 {
		t.Fatalf("after the pass: %d tickets, %d summaries; want 2 and 1 (%+v)", n, s, e.tickets())
	}
	e.psaSim.ClearFaults()
	rep = e.pass(eng)
	if cr := rep.Customers[0]; rep.Settled != 1 || cr.Created != 0 || cr.Err != nil || len(e.tickets()) != 2 {
		t.Fatalf("settling pass = settled %d, %+v, %d tickets; want the summary adopted and nothing new", rep.Settled, cr, len(e.tickets()))
	}
	for _, id := range ids {
		e.sophos.ResolveAlert(acme, id)
	}
	if rep = e.pass(eng); rep.Totals().Closed != 2 {
		t.Errorf("pass after resolving = %+v, want both tickets closed", rep.Customers)
	}
	for _, tk := range e.tickets() {
		if !tk.closed {
			t.Errorf("ticket %d %q still open after every alert resolved", tk.id, tk.title)
		}
	}
}

// A close whose answer was lost is settled even when its alert is back by
// the next pass: the ticket psa-syncd closed is reopened in that pass.
func TestEngine_lostCloseAnswerAlertBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
	e.pass(eng)
	e.sophos.ResolveAlert(acme, a.ID)
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", DropAfterHandling: true})
	e.pass(eng)
	e.psaSim.ClearFaults()
	e.raiseAgain(a)
	rep := e.pass(eng)
	if cr := rep.Customers[0]; cr.Reopened != 1 || cr.Created != 0 || cr.Err != nil || len(cr.Notices) != 0 {
		t.Errorf("pass with the alert back = %+v, want the ticket psa-syncd closed reopened", cr)
	}
	if got := e.tickets(); len(got) != 1 || got[0].closed {
		t.Errorf("tickets = %+v, want the one ticket open again", got)
	}
}

// A ticket deleted in the PSA is recorded as gone, with a notice, instead of
// failing its customer every pass; its alert, back or open, gets a new
// ticket (the next generation) rather than a reopen of a ticket that is
// not there.
func TestEngine_deletedTicket(t *testing.T) {
	t.Parallel()
	// deleteTicket makes Autotask answer the ticket's GET with 404, as it
	// does for a ticket deleted in its UI.
	deleteTicket := func(e *env, id int64) {
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d", id), Status: http.StatusNotFound})
	}
	t.Run("beforeResolve", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, psa.SystemAutotask)
		r := routings[psa.SystemAutotask]
		r.OnReturn = export.OnReturnReopen
		eng := e.engine(r)
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high"})
		e.pass(eng)
		deleteTicket(e, e.tickets()[0].id)
		e.sophos.ResolveAlert(acme, a.ID)
		for i := range 3 {
			cr := e.pass(eng).Customers[0]
			if cr.Err != nil || cr.Closed != 0 {
				t.Errorf("pass %d = %+v, want the customer not failed and nothing closed", i, cr)
			}
			if want := 1 - min(i, 1); len(cr.Notices) != want || want == 1 && !strings.Contains(cr.Notices[0], "deleted in the PSA") {
				t.Errorf("pass %d notices = %q, want %d naming the deleted ticket", i, cr.Notices, want)
			}
		}
		recs, _ := e.db.TicketRecords("sophos", acme)
		if len(recs) != 1 || recs[0].State != tickets.StateClosed || recs[0].ClosedBy != tickets.ClosedByDeleted {
			t.Fatalf("records = %+v, want the ticket recorded as deleted", recs)
		}
		// The alert comes back within the reopen window: a new ticket.
		e.sophos.AddAlert(acme, sophostest.Alert{ID: a.ID, Severity: "high"})
		if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Reopened != 0 || cr.Err != nil {
			t.Errorf("pass with the alert back = %+v, want a new ticket", cr)
		}
		if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 || recs[0].Ref != "sc:"+a.ID+"/2" || recs[0].State != tickets.StateOpen {
			t.Errorf("records = %+v, want the alert's second generation open", recs)
		}
	})
	t.Run("beforeReopen", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, psa.SystemAutotask)
		eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high"})
		e.pass(eng)
		e.sophos.ResolveAlert(acme, a.ID)
		e.pass(eng)
		deleteTicket(e, e.tickets()[0].id)
		e.sophos.AddAlert(acme, sophostest.Alert{ID: a.ID, Severity: "high"})
		cr := e.pass(eng).Customers[0]
		if cr.Created != 1 || cr.Reopened != 0 || cr.Err != nil || len(cr.Notices) != 1 {
			t.Errorf("pass with the alert back = %+v, want a new ticket and a notice", cr)
		}
		if n := len(e.tickets()); n != 2 {
			t.Errorf("%d tickets in the PSA, want the deleted one (still in the simulator) and the new one", n)
		}
	})
}

// A note the PSA refuses as "not found" right after psa-syncd read the
// ticket (Kaseya BMS answers that of whatever its request names that is
// missing, such as a note type) does not make the ticket deleted: a ticket
// is deleted when reading it says so. A summary ticket took a second one
// for the alerts it was to be noted with, and the first was no longer
// followed, never closed; a resolve note's ticket was reported deleted.
func TestEngine_noteNotFoundIsNotADeletedTicket(t *testing.T) {
	t.Parallel()
	notFound := func(e *env, ticket int64) {
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: fmt.Sprintf("/v2/servicedesk/tickets/%d/notes", ticket), Times: 1,
			Status: http.StatusOK, Body: `{"success":false,"error":{"code":404,"message":"Note type 3 not found","subErrors":[]}}`})
	}
	t.Run("summary", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, psa.SystemKaseyaBMS)
		r := routings[psa.SystemKaseyaBMS]
		r.MaxPerCustomer = 1
		eng := e.engine(r)
		e.raiseSeries("Threat", 0, 3)
		e.pass(eng)
		var summary int64
		for _, tk := range e.tickets() {
			if strings.Contains(tk.title, "Alert storm") {
				summary = tk.id
			}
		}
		// Two more: one gets a ticket, one goes over the cap.
		e.raiseSeries("Threat", 3, 5)
		notFound(e, summary)
		if cr := e.pass(eng).Customers[0]; cr.Err == nil || len(cr.Notices) != 0 || cr.Summarised != 0 {
			t.Errorf("pass whose summary note was refused = %+v, want the customer failed, no alert summarised and no notice of a deleted ticket", cr)
		}
		// The caps are per pass: the alert gets a ticket of its own.
		if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Err != nil {
			t.Errorf("next pass = %+v, want the alert filed", cr)
		}
		recs, _ := e.db.TicketRecords("sophos", acme)
		if i := slices.IndexFunc(recs, func(r tickets.Record) bool { return r.AlertKey == tickets.SummaryKey }); i < 0 ||
			recs[i].State != tickets.StateOpen || recs[i].TicketID != id(summary) || recs[i].Generation != 1 {
			t.Errorf("records = %+v, want summary ticket %d still followed", recs, summary)
		}
		if n := e.summaryTickets(); n != 1 {
			t.Errorf("%d summary tickets, want 1", n)
		}
	})
	t.Run("resolveNote", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, psa.SystemKaseyaBMS)
		eng := e.engineWith(func(r *export.Tickets) { r.OnResolve = export.OnResolveNote })
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Threat"})
		e.pass(eng)
		e.sophos.ResolveAlert(acme, a.ID)
		notFound(e, e.tickets()[0].id)
		if cr := e.pass(eng).Customers[0]; cr.Err == nil || len(cr.Notices) != 0 {
			t.Errorf("pass whose resolve note was refused = %+v, want the customer failed and no notice of a deleted ticket", cr)
		}
		if cr := e.pass(eng).Customers[0]; cr.Noted != 1 || cr.Err != nil {
			t.Errorf("next pass = %+v, want the resolve note added", cr)
		}
		recs, _ := e.db.TicketRecords("sophos", acme)
		if len(recs) != 1 || recs[0].ClosedBy != tickets.ClosedBySync {
			t.Errorf("records = %+v, want the ticket noted by psa-syncd, not deleted", recs)
		}
	})
}

// countNotes counts the notes on the PSA's tickets that contain s.
func (e *env) countNotes(s string) int {
	n := 0
	for _, tk := range e.tickets() {
		for _, note := range tk.notes {
			if strings.Contains(note, s) {
				n++
			}
		}
	}
	return n
}

// wantNotes checks that want notes on the PSA's tickets hold s.
func (e *env) wantNotes(s string, want int) {
	e.t.Helper()
	if n := e.countNotes(s); n != want {
		e.t.Errorf("%d notes holding %q on the tickets, want %d", n, s, want)
	}
}

// A note whose answer was lost is never sent twice: the resolve note
// (on_resolve "note") is looked for on the ticket next pass, and sent only
// when it is not there (TestEngine_lostResolveNoteIsLookedFor: on every
// PSA); so is the summary's note naming more alerts
// (TestEngine_lostSummaryNoteIsLookedFor).
func TestEngine_lostNoteAnswer(t *testing.T) {
	t.Parallel()
	notes := func(id int64) string { return fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d/Notes", id) }
	t.Run("resolve", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, psa.SystemAutotask)
		r := routings[psa.SystemAutotask]
		r.OnResolve = export.OnResolveNote
		eng := e.engine(r)
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high"})
		e.pass(eng)
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: notes(e.tickets()[0].id), DropAfterHandling: true})
		e.sophos.ResolveAlert(acme, a.ID)
		cr := e.pass(eng).Customers[0]
		if len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "looks for the note") {
			t.Errorf("pass with the note's answer lost = %+v, want a notice that the next pass looks for the note", cr)
		}
		e.psaSim.ClearFaults()
		if cr := e.pass(eng).Customers[0]; cr.Noted != 1 || cr.Err != nil {
			t.Errorf("next pass = %+v, want the note found on the ticket", cr)
		}
		e.wantNotes("resolved in Sophos Central", 1)
		if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 || recs[0].State != tickets.StateClosed || recs[0].ClosedBy != tickets.ClosedBySync {
			t.Errorf("records = %+v, want the alert's ticket done (closed by psa-syncd)", recs)
		}
	})
	t.Run("crash", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, psa.SystemAutotask)
		eng := e.engineWith(func(r *export.Tickets) { r.OnResolve = export.OnResolveNote })
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high"})
		e.pass(eng)
		e.sophos.ResolveAlert(acme, a.ID)
		// psa-syncd recorded the note's intent and died before sending
		// it: the next pass looks for it, and sends it.
		recs, _ := e.db.TicketRecords("sophos", acme)
		recs[0].State, recs[0].ClosedAt = tickets.StateNoting, e.now
		if err := e.db.PutTicketRecord(recs[0]); err != nil {
			t.Fatal(err)
		}
		e.now = e.now.Add(5 * time.Minute)
		cr := e.pass(eng).Customers[0]
		if cr.Noted != 1 || cr.Err != nil || len(cr.Notices) != 0 || e.countNotes("resolved in Sophos Central") != 1 {
			t.Errorf("pass after the crash = %+v, want the note sent once", cr)
		}
		if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 || recs[0].State != tickets.StateClosed {
			t.Errorf("records = %+v, want the alert's ticket done", recs)
		}
	})
	t.Run("summary", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, psa.SystemAutotask)
		eng, summary := e.alertStorm()
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: notes(summary), DropAfterHandling: true})
		cr := e.pass(eng).Customers[0] // one more ticket, one more alert for the summary: its note is lost
		if cr.Created != 1 || cr.Summarised != 1 || len(cr.Notices) != 1 {
			t.Errorf("pass with the summary note's answer lost = %+v, want 1 created, 1 summarised and a notice", cr)
		}
		e.psaSim.ClearFaults()
		if cr := e.pass(eng).Customers[0]; cr.Summarised != 0 || cr.Created != 0 {
			t.Errorf("next pass = %+v, want nothing summarised or created again", cr)
		}
		if n := e.countNotes("summarised here"); n != 1 {
			t.Errorf("%d notes on the summary naming more alerts, want 1", n)
		}
	})
}

// A create the PSA refused is not sent again while nothing it depends on
// changed, but every pass reports the alert without a ticket; fixing the
// customer's mapping (here its contract) sends it again.
func TestEngine_refusedCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high"})
	// The mapping names a contract the company does not have: Autotask
	// refuses the create.
	cs := e.customers()
	cs[0].ContractID = "29684183"
	pass := func() tickets.CustomerReport {
		t.Helper()
		rep, err := eng.Pass(t.Context(), cs, false)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Customers[0]
	}
	creates := func() int {
		n := 0
		for _, r := range e.psaSim.Requests() {
			if r.Method == http.MethodPost && strings.EqualFold(r.Path, "/ATServicesRest/V1.0/Tickets") {
				n++
			}
		}
		return n
	}
	if cr := pass(); cr.Failed != 1 || cr.Err == nil {
		t.Fatalf("refused pass = %+v, want the create failed", cr)
	}
	for i := range 2 {
		cr := pass()
		if cr.Failed != 0 || cr.Err == nil || !strings.Contains(cr.Err.Error(), "29684183") || creates() != 1 {
			t.Errorf("pass %d with the mapping unchanged = %+v, %d creates sent; want the refusal reported and not sent again", i, cr, creates())
		}
	}
	// A day after the refusal it is sent again, in case its cause was
	// fixed in the PSA; refused again, it waits another day.
	e.now = e.now.Add(25 * time.Hour)
	if cr := pass(); cr.Failed != 1 || creates() != 2 {
		t.Errorf("pass a day later = %+v, %d creates sent; want the create sent again and refused", cr, creates())
	}
	if cr := pass(); cr.Failed != 0 || cr.Err == nil || creates() != 2 {
		t.Errorf("pass after the second refusal = %+v, %d creates sent; want it not sent again", cr, creates())
	}
	// The operator fixes the mapping: the company's own contract.
	company, _ := strconv.ParseInt(e.company, 10, 64)
	cs[0].ContractID = id(e.psaSim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed security"}))
	if cr := pass(); cr.Created != 1 || cr.Err != nil || len(e.tickets()) != 1 {
		t.Errorf("pass after the mapping was fixed = %+v, %d tickets; want the ticket created", cr, len(e.tickets()))
	}
}

// A refused summary ticket is not sent again every pass either (the caps
// are per pass, so the next alerts get tickets of their own); the alerts
// over the caps are reported each pass.
func TestEngine_refusedSummary(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	r := routings[psa.SystemAutotask]
	r.MaxPerCustomer = 1
	eng := e.engine(r)
	e.raiseSeries("Threat", 0, 3)
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", BodyContains: `"scs:`,
		Status: http.StatusInternalServerError, Body: `{"errors":["Value does not exist for [queueID]."]}`})
	if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Failed != 1 {
		t.Fatalf("first pass = %+v, want one ticket and the summary refused", cr)
	}
	summaryPosts := func() int {
		n := 0
		for _, r := range e.psaSim.Requests() {
			if r.Method == http.MethodPost && strings.EqualFold(r.Path, "/ATServicesRest/V1.0/Tickets") && strings.Contains(string(r.Body), `"scs:`) {
				n++
			}
		}
		return n
	}
	cr := e.pass(eng).Customers[0]
	if cr.Created != 1 || cr.Failed != 0 || cr.Err == nil || !strings.Contains(cr.Err.Error(), "summary") || summaryPosts() != 1 {
		t.Errorf("second pass = %+v, %d summary creates sent; want the next alert's ticket, and the refused summary reported and not sent again",
			cr, summaryPosts())
	}
}

// An alert listed twice (Central's pages may overlap while alerts come and
// go) is one alert; an alert whose severity is none the engine knows is
// reported, not dropped silently.
func TestEngine_alertListingOddities(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "First", RaisedAt: "2026-11-15T09:00:00.000"})
	twice := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Listed twice", RaisedAt: "2026-11-15T09:01:00.000"})
	e.sophos.AddAlert(acme, sophostest.Alert{ID: twice.ID, Severity: "high", Description: "Listed twice", RaisedAt: "2026-11-15T09:01:00.000"})
	odd := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "critical", Description: "New severity"})
	cr := e.pass(eng).Customers[0]
	if cr.Created != 1 || cr.Summarised != 1 {
		t.Errorf("pass = %+v, want one ticket and one alert (listed twice) summarised", cr)
	}
	if len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], odd.ID) || !strings.Contains(cr.Notices[0], `"critical"`) {
		t.Errorf("notices = %q, want one naming alert %s and its severity", cr.Notices, odd.ID)
	}
}

// An alert whose raisedAt Sophos Central writes in a form psa-syncd cannot
// read neither fails the customer's listing nor is dropped from it: every
// alert of the customer gets its ticket, the odd one without a raised
// time and with a notice, and its ticket is neither closed as resolved nor
// given a note with a made-up time when it is raised again.
func TestEngine_unreadableRaisedAt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
	ransom := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected on PC-7"})
	// An ISO 8601 offset without a colon: read.
	noColon := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "medium", Description: "Offset without colon", RaisedAt: "2026-11-15T09:00:00.000+0100"})
	odd := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "medium", Description: "Odd timestamp", RaisedAt: "15/11/2026 09:00"})
	cr := e.pass(eng).Customers[0]
	if cr.Err != nil || cr.Created != 3 {
		t.Fatalf("pass = %+v, want the three alerts filed", cr)
	}
	if len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], odd.ID) || !strings.Contains(cr.Notices[0], `"15/11/2026 09:00"`) {
		t.Errorf("notices = %q, want one naming alert %s and its raised time", cr.Notices, odd.ID)
	}
	byAlert := map[string]psatest.AutotaskTicket{}
	for _, tk := range e.psaSim.Autotask().Tickets() {
		for _, a := range []sophostest.Alert{ransom, noColon, odd} {
			if strings.Contains(tk.Description, a.ID) {
				byAlert[a.ID] = tk
			}
		}
	}
	if d := byAlert[noColon.ID].Description; !strings.Contains(d, "Raised: 2026-11-15T08:00:00Z") {
		t.Errorf("ticket of the alert with offset +0100: description %q, want it raised at 08:00 UTC", d)
	}
	if d := byAlert[odd.ID].Description; d == "" || strings.Contains(d, "Raised:") {
		t.Errorf("ticket of the alert with the odd time: description %q, want one without a raised time", d)
	}
	// Still listed: its ticket stays open while the others' close.
	e.sophos.ResolveAlert(acme, ransom.ID)
	e.sophos.ResolveAlert(acme, noColon.ID)
	if cr := e.pass(eng).Customers[0]; cr.Err != nil || cr.Closed != 2 {
		t.Errorf("pass after two alerts were resolved = %+v, want their two tickets closed", cr)
	}
	for _, tk := range e.tickets() {
		if strings.Contains(tk.title, "Odd timestamp") && tk.closed {
			t.Errorf("the ticket of alert %s, still open in Sophos Central, was closed", odd.ID)
		}
	}
	// Resolved and raised again: the reopen note says when psa-syncd saw
	// it, not the zero time.
	e.sophos.ResolveAlert(acme, odd.ID)
	e.pass(eng)
	e.sophos.AddAlert(acme, sophostest.Alert{ID: odd.ID, Severity: "medium", Description: "Odd timestamp", RaisedAt: "15/11/2026 09:00"})
	e.now = e.now.Add(time.Hour)
	if tot := e.pass(eng).Totals(); tot.Reopened != 1 || tot.Err != nil {
		t.Fatalf("pass after the odd alert came back = %+v, want its ticket reopened", tot)
	}
	var notes []string
	for _, n := range e.psaSim.Autotask().TicketNotes(byAlert[odd.ID].ID) {
		notes = append(notes, n.Description)
	}
	if !slices.ContainsFunc(notes, func(n string) bool {
		return strings.Contains(n, "raised again") && strings.Contains(n, "(seen 2026-11-15T11:00:00Z)")
	}) {
		t.Errorf("notes of the reopened ticket = %q, want one saying when psa-syncd saw the alert again", notes)
	}
}

// The notes psa-syncd adds with a status, the "raised again" note of a
// reopen and the "resolved" note of a closed status that does not close
// the ticket, have the routing's note type and a title, as the resolve
// and summary notes do: on an Autotask category that requires note titles
// or a Kaseya BMS without a default note type they would be refused.
func TestEngine_statusNotesHaveRoutingNoteType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		system psa.System
		// open is a status that does not close tickets, for a
		// closed_status_id set to one.
		open int64
	}{
		{psa.SystemAutotask, 7}, // Waiting Customer
		{psa.SystemKaseyaBMS, psatest.KaseyaBMSStatusInProgress},
	} {
		t.Run(string(tc.system), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.system)
			r := routings[tc.system]
			r.OnReturn = export.OnReturnReopen
			r.NoteTypeID = "2"
			if tc.system == psa.SystemAutotask {
				e.psaSim.Autotask().RequireNoteTitles(psatest.AutotaskTicketCategoryStandard)
			}
			eng := e.engine(r)
			a := e.resolvedHealthCheck(eng)
			e.raiseAgain(a)
			e.now = e.now.Add(time.Hour)
			if tot := e.pass(eng).Totals(); tot.Reopened != 1 || tot.Err != nil || len(tot.Notices) != 0 {
				t.Fatalf("pass after the return = %+v, want a reopen with its note", tot)
			}
			// A closed_status_id that does not close tickets: the resolve
			// note goes as a note.
			r.ClosedStatusID = id(tc.open)
			e.sophos.ResolveAlert(acme, a.ID)
			if tot := e.pass(e.engine(r)).Totals(); tot.Closed != 1 || tot.Err != nil {
				t.Fatalf("pass after the second resolve = %+v, want the ticket given the closed status", tot)
			}
			type note struct {
				title, text string
				typ         int64
			}
			var notes []note
			switch tc.system {
			case psa.SystemAutotask:
				tk := e.psaSim.Autotask().Tickets()[0]
				for _, n := range e.psaSim.Autotask().TicketNotes(tk.ID) {
					notes = append(notes, note{n.Title, n.Description, n.NoteType})
				}
			case psa.SystemKaseyaBMS:
				tk := e.psaSim.KaseyaBMS().Tickets()[0]
				// The first note is the comment of the first close's
				// resolve, which has neither type nor title in the API.
				for _, n := range e.psaSim.KaseyaBMS().TicketNotes(tk.ID)[1:] {
					title, text, _ := strings.Cut(n.Details, "\n\n")
					notes = append(notes, note{title, text, int64(n.TypeID)})
				}
			}
			if len(notes) != 2 {
				t.Fatalf("notes = %+v, want the reopen's and the resolve's", notes)
			}
			for i, want := range []struct{ title, text string }{{"Alert raised again", "raised again"}, {"Alert resolved", "was resolved"}} {
				if n := notes[i]; n.typ != 2 || n.title != want.title || !strings.Contains(n.text, want.text) {
					t.Errorf("note %d = %+v, want note type 2 (the routing's), title %q and a text saying it %s", i, n, want.title, want.text)
				}
			}
		})
	}
}

// A summary whose close is unsettled when a new storm needs it (the close
// failed earlier in the same pass, or its answer was lost) is settled
// first: a summary still open takes the new alerts with a note, a closed
// one is followed by the next generation. The new alerts are never
// recorded as covered by a ticket that does not name them.
func TestEngine_summaryCloseUnsettledNewStorm(t *testing.T) {
	t.Parallel()
	// storm files A1 with a ticket and A2 in a summary, then resolves A2
	// (the summary is to close) and raises A3 and A4 (A4 is over the cap)
	// with the summary's close failing as fault says.
	storm := func(t *testing.T, fault psatest.Fault) (*env, *tickets.Engine, string) {
		e := newEnv(t, psa.SystemAutotask)
		eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
		e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "A1", RaisedAt: "2026-11-15T09:01:00.000"})
		a2 := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "A2", RaisedAt: "2026-11-15T09:02:00.000"})
		if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Summarised != 1 {
			t.Fatalf("first pass = %+v, want one ticket and one alert summarised", tot)
		}
		e.sophos.ResolveAlert(acme, a2.ID)
		e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "A3", RaisedAt: "2026-11-15T09:03:00.000"})
		a4 := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "A4", RaisedAt: "2026-11-15T09:04:00.000"})
		e.psaSim.AddFault(fault)
		cr := e.pass(eng).Customers[0]
		if cr.Created != 1 || cr.Summarised != 1 {
			t.Errorf("storm pass = %+v, want A3's ticket and A4 summarised", cr)
		}
		e.psaSim.ClearFaults()
		return e, eng, a4.ID
	}
	// summaryWith returns the summary tickets, and the one whose text
	// (description and notes) names the alert.
	summaryWith := func(e *env, alert string) (n int, with *psatest.AutotaskTicket) {
		for _, tk := range e.psaSim.Autotask().Tickets() {
			if !strings.Contains(tk.Title, "Alert storm") {
				continue
			}
			n++
			text := tk.Description
			for _, note := range e.psaSim.Autotask().TicketNotes(tk.ID) {
				text += "\n" + note.Description
			}
			if strings.Contains(text, alert) {
				with = &tk
			}
		}
		return n, with
	}
	t.Run("closeRefused", func(t *testing.T) {
		t.Parallel()
		e, eng, a4 := storm(t, psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusInternalServerError, Times: 1})
		n, with := summaryWith(e, a4)
		if n != 1 || with == nil || with.Status == "Complete" {
			t.Fatalf("%d summary tickets, the one naming A4 %+v; want the one summary, open, with a note naming A4", n, with)
		}
		recs, _ := e.db.TicketRecords("sophos", acme)
		sum := recs[len(recs)-1]
		if sum.AlertKey != tickets.SummaryKey || sum.State != tickets.StateOpen || !slices.Contains(sum.Covered, a4) {
			t.Fatalf("summary record = %+v, want it open and covering A4", sum)
		}
		// A4 resolves: the summary closes, once.
		e.sophos.ResolveAlert(acme, a4)
		if cr := e.pass(eng).Customers[0]; cr.Closed != 1 || cr.Err != nil {
			t.Errorf("pass after A4 resolved = %+v, want the summary closed", cr)
		}
		if _, with = summaryWith(e, a4); with == nil || with.Status != "Complete" {
			t.Errorf("summary naming A4 = %+v, want it closed", with)
		}
	})
	t.Run("closeAnswerLost", func(t *testing.T) {
		t.Parallel()
		e, eng, a4 := storm(t, psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", DropAfterHandling: true})
		n, with := summaryWith(e, a4)
		if n != 2 || with == nil || with.Status == "Complete" || !strings.HasSuffix(with.ExternalID, "/2") {
			t.Fatalf("%d summary tickets, the one naming A4 %+v; want the closed one and a new open one (generation 2) naming A4", n, with)
		}
		if cr := e.pass(eng).Customers[0]; cr.Created != 0 || cr.Summarised != 0 || cr.Err != nil {
			t.Errorf("next pass = %+v, want nothing new", cr)
		}
	})
}

// A reopen is an intent: recorded before the status and its note are
// sent, and settled by reading the ticket, so that a reopen whose answer
// was lost is never sent again over a technician's close (a reopen loop,
// tickets.md 5.6), nor with a second "raised again" note.
func TestEngine_reopenUnsettled(t *testing.T) {
	t.Parallel()
	// returned files an alert, closes its ticket (resolved) and raises the
	// alert again within the reopen window.
	returned := func(t *testing.T) (*env, *tickets.Engine, int64) {
		e := newEnv(t, psa.SystemAutotask)
		eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
		a := e.resolvedHealthCheck(eng)
		e.raiseAgain(a)
		e.now = e.now.Add(time.Hour)
		return e, eng, e.tickets()[0].id
	}
	// crashed records the reopen's intent as a psa-syncd that died after it
	// (before or after the reopen was applied) would have left it.
	crashed := func(t *testing.T, e *env) {
		recs, _ := e.db.TicketRecords("sophos", acme)
		recs[0].State = tickets.StateReopening
		if err := e.db.PutTicketRecord(recs[0]); err != nil {
			t.Fatal(err)
		}
	}
	status := func(e *env, id int64) string {
		for _, tk := range e.psaSim.Autotask().Tickets() {
			if tk.ID == id {
				return tk.Status
			}
		}
		return ""
	}
	t.Run("noteAnswerLost", func(t *testing.T) {
		t.Parallel()
		e, eng, tk := returned(t)
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d/Notes", tk), BodyContains: "raised again",
			DropAfterHandling: true, Times: 1})
		cr := e.pass(eng).Customers[0]
		if cr.Reopened != 1 || cr.Err != nil || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "looks for its \"raised again\" note") {
			t.Errorf("pass with the reopen note's answer lost = %+v, want the ticket reopened and a notice that the next pass looks for the note", cr)
		}
		// A technician closes the reopened ticket while the alert is open.
		e.psaSim.Autotask().SetTicketStatus(tk, "Complete")
		e.now = e.now.Add(time.Minute)
		if cr := e.pass(eng).Customers[0]; cr.Reopened != 0 || cr.Err != nil {
			t.Errorf("next pass = %+v, want nothing reopened", cr)
		}
		if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 || recs[0].State != tickets.StateClosed || recs[0].ClosedBy != tickets.ClosedByPSA {
			t.Errorf("records = %+v, want the ticket taken as closed in the PSA", recs)
		}
		if s := status(e, tk); s != "Complete" {
			t.Errorf("ticket status %q: the ticket a technician closed was reopened", s)
		}
		e.wantNotes("raised again", 1)
	})
	t.Run("statusRefused", func(t *testing.T) {
		t.Parallel()
		e, eng, tk := returned(t)
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusInternalServerError, Times: 1})
		cr := e.pass(eng).Customers[0]
		if cr.Reopened != 0 || cr.Err == nil || !strings.Contains(cr.Err.Error(), "sent again next pass") || status(e, tk) != "Complete" {
			t.Errorf("pass with the reopen refused = %+v, ticket %q; want the customer failed and the ticket still closed", cr, status(e, tk))
		}
		if cr := e.pass(eng).Customers[0]; cr.Reopened != 1 || cr.Err != nil || status(e, tk) == "Complete" {
			t.Errorf("next pass = %+v, ticket %q; want the ticket reopened", cr, status(e, tk))
		}
		e.wantNotes("raised again", 1)
	})
	t.Run("statusAndReadThrottled", func(t *testing.T) {
		t.Parallel()
		e, eng, tk := returned(t)
		path := fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d", tk)
		// The read before the reopen goes through; the status change and
		// every read after it are throttled.
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Times: 1})
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Status: http.StatusTooManyRequests})
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusTooManyRequests})
		rep := e.pass(eng)
		if cr := rep.Customers[0]; cr.Reopened != 0 || cr.Err == nil || !strings.Contains(cr.Err.Error(), "sent again next pass") || !rep.RateLimited {
			t.Errorf("pass with the reopen throttled = %+v, want the customer failed, the reopen to be sent again next pass", cr)
		}
		e.psaSim.ClearFaults()
		e.now = e.now.Add(time.Minute)
		if cr := e.pass(eng).Customers[0]; cr.Reopened != 1 || cr.Err != nil || status(e, tk) == "Complete" {
			t.Errorf("next pass = %+v, ticket %q; want the ticket reopened, not taken as closed in the PSA", cr, status(e, tk))
		}
		e.wantNotes("raised again", 1)
	})
	t.Run("statusServerErrorThenThrottled", func(t *testing.T) {
		t.Parallel()
		e, eng, tk := returned(t)
		path := fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d", tk)
		// The status change may have been applied (a 500 before the 429):
		// unread, the reopen is left for the next pass to settle.
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Times: 1})
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Status: http.StatusTooManyRequests})
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusServiceUnavailable, Times: 1})
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusTooManyRequests})
		if cr := e.pass(eng).Customers[0]; cr.Err == nil || !strings.Contains(cr.Err.Error(), "checks whether it reopened") {
			t.Errorf("pass with the reopen failed = %+v, want the next pass to check it", cr)
		}
		if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 || recs[0].State != tickets.StateReopening {
			t.Errorf("records = %+v, want the reopen unsettled", recs)
		}
	})
	t.Run("crashAfterReopen", func(t *testing.T) {
		t.Parallel()
		e, eng, tk := returned(t)
		crashed(t, e)
		e.psaSim.Autotask().SetTicketStatus(tk, "In Progress")
		cr := e.pass(eng).Customers[0]
		// The note is looked for, and, not there, sent (once).
		if cr.Reopened != 1 || cr.Err != nil || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "sent again") || e.countNotes("raised again") != 1 {
			t.Errorf("pass after the crash = %+v, want the reopen taken as applied, its note sent once and a notice", cr)
		}
		if recs, _ := e.db.TicketRecords("sophos", acme); len(recs) != 1 || recs[0].State != tickets.StateOpen {
			t.Errorf("records = %+v, want the ticket followed (open)", recs)
		}
	})
	t.Run("crashTicketClosed", func(t *testing.T) {
		t.Parallel()
		e, eng, tk := returned(t)
		// The intent is recorded at the time of the ticket's last change
		// in the PSA (crashed keeps the close's time): within the clocks'
		// skew, so the ticket may have changed after it, and is taken as
		// closed in the PSA. (A ticket unchanged since the intent is
		// reopened: TestEngine_unsettledReopenOfAnUnchangedTicketIsSentAgain.)
		crashed(t, e)
		cr := e.pass(eng).Customers[0]
		if cr.Reopened != 0 || cr.Err != nil || len(cr.Notices) != 2 || !strings.Contains(cr.Notices[0], "unconfirmed") ||
			!strings.Contains(cr.Notices[1], "closed in the PSA") {
			t.Errorf("pass after the crash = %+v, want nothing reopened, a notice that the reopen is unconfirmed and the alert reported", cr)
		}
		recs, _ := e.db.TicketRecords("sophos", acme)
		if len(recs) != 1 || recs[0].State != tickets.StateClosed || recs[0].ClosedBy != tickets.ClosedByPSA {
			t.Errorf("records = %+v, want the ticket taken as closed in the PSA", recs)
		}
		if cr := e.pass(eng).Customers[0]; cr.Reopened != 0 || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "closed in the PSA") {
			t.Errorf("next pass = %+v, want nothing reopened and the alert reported", cr)
		}
		if s := status(e, tk); s != "Complete" {
			t.Errorf("ticket status %q, want it still closed", s)
		}
	})
}

// max_per_pass is a budget for the whole pass, summary tickets included:
// once a pass created that many tickets, the alerts still without one are
// neither summarised nor recorded but left, with a notice, for a later
// pass, which files them. Only a customer over its own cap gets a summary.
func TestEngine_passCap(t *testing.T) {
	t.Parallel()
	const globex = "2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a"
	setup := func(t *testing.T, maxPerPass, maxPerCustomer int64) (*env, func() tickets.Report) {
		e := newEnv(t, psa.SystemAutotask)
		eng := e.engineWith(func(r *export.Tickets) { r.MaxPerPass, r.MaxPerCustomer = maxPerPass, maxPerCustomer })
		cs := append(e.customers(), tickets.Customer{Source: "sophos", CustomerID: globex, CustomerName: "Globex",
			CompanyID: id(e.psaSim.Autotask().AddCompany("Globex"))})
		return e, func() tickets.Report {
			t.Helper()
			rep, err := eng.Pass(t.Context(), cs, false)
			if err != nil {
				t.Fatal(err)
			}
			return rep
		}
	}
	alerts := func(e *env, customer string, n int) {
		for i := range n {
			e.sophos.AddAlert(customer, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat %d", i),
				RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)})
		}
	}
	t.Run("laterCustomers", func(t *testing.T) {
		t.Parallel()
		e, pass := setup(t, 2, 10)
		alerts(e, acme, 2)
		alerts(e, globex, 1)
		rep := pass()
		if tot := rep.Totals(); tot.Created != 2 || tot.Summarised != 0 || tot.Deferred != 1 || len(e.tickets()) != 2 {
			t.Fatalf("first pass = %+v, %d tickets; want 2 created and Globex's alert deferred", tot, len(e.tickets()))
		}
		if n := rep.Customers[1].Notices; len(n) != 1 || !strings.Contains(n[0], "wait for a later pass") {
			t.Errorf("Globex notices = %q, want one saying its alert waits for a later pass", n)
		}
		if recs, _ := e.db.TicketRecords("sophos", globex); len(recs) != 0 {
			t.Errorf("Globex records = %+v, want none: the deferred alert is not covered by anything", recs)
		}
		rep = pass()
		if tot := rep.Totals(); tot.Created != 1 || tot.Deferred != 0 || len(tot.Notices) != 0 || len(e.tickets()) != 3 || e.summaryTickets() != 0 {
			t.Errorf("second pass = %+v, %d tickets; want Globex's alert filed and no summary", tot, len(e.tickets()))
		}
	})
	t.Run("summaryCounts", func(t *testing.T) {
		t.Parallel()
		e, pass := setup(t, 2, 1)
		alerts(e, acme, 3)
		alerts(e, globex, 2)
		// Acme: one ticket and a summary of two alerts: the pass's two
		// creates. Globex waits.
		if tot := pass().Totals(); tot.Created != 1 || tot.Summarised != 2 || tot.Deferred != 2 || len(e.tickets()) != 2 {
			t.Fatalf("first pass = %+v, %d tickets; want Acme's ticket and summary, Globex's alerts deferred", tot, len(e.tickets()))
		}
		if tot := pass().Totals(); tot.Created != 1 || tot.Summarised != 1 || tot.Deferred != 0 || len(e.tickets()) != 4 || e.summaryTickets() != 2 {
			t.Errorf("second pass = %+v, %d tickets; want Globex's ticket and summary", tot, len(e.tickets()))
		}
	})
	t.Run("summaryOverPassCap", func(t *testing.T) {
		t.Parallel()
		e, pass := setup(t, 1, 1)
		alerts(e, acme, 2)
		if tot := pass().Totals(); tot.Created != 1 || tot.Summarised != 0 || tot.Deferred != 1 || e.summaryTickets() != 0 {
			t.Fatalf("first pass = %+v, want one ticket and the second alert deferred, not summarised", tot)
		}
		if tot := pass().Totals(); tot.Created != 1 || tot.Deferred != 0 || len(e.tickets()) != 2 || e.summaryTickets() != 0 {
			t.Errorf("second pass = %+v, %d tickets; want the second alert's own ticket", tot, len(e.tickets()))
		}
	})
}

// A create whose outcome is unknown is not sent again at the first search
// that misses it: the ticket may still appear (applied late, or not yet
// searchable). Within the settle time the intent stays open and is
// searched for again each pass; after it, the create is sent again
// (tickets.md 5.2 step 5).
func TestEngine_lostCreateSettleTime(t *testing.T) {
	t.Parallel()
	const create, search = "/ATServicesRest/V1.0/Tickets", "/ATServicesRest/V1.0/Tickets/query"
	setup := func(t *testing.T) (*env, *tickets.Engine) {
		e := newEnv(t, psa.SystemAutotask)
		e.settleTime = 2 * time.Minute
		eng := e.engine(routings[psa.SystemAutotask])
		e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
		return e, eng
	}
	creates := func(e *env) int {
		n := 0
		for _, r := range e.psaSim.Requests() {
			if r.Method == http.MethodPost && strings.EqualFold(r.Path, create) {
				n++
			}
		}
		return n
	}
	t.Run("notSearchableYet", func(t *testing.T) {
		t.Parallel()
		e, eng := setup(t)
		// The create is applied and its answer lost; then, for a pass, the
		// search does not find the new ticket yet.
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: create, DropAfterHandling: true, Times: 1})
		e.pass(eng)
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: search, Status: http.StatusOK,
			Body: `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`})
		e.now = e.now.Add(30 * time.Second)
		rep := e.pass(eng)
		if cr := rep.Customers[0]; rep.Settled != 0 || cr.Created != 0 || cr.Err != nil || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "not in the PSA yet") {
			t.Errorf("pass with the ticket not searchable = settled %d, %+v; want nothing sent and a notice", rep.Settled, cr)
		}
		e.psaSim.ClearFaults()
		e.now = e.now.Add(30 * time.Second)
		if rep = e.pass(eng); rep.Settled != 1 || rep.Totals().Created != 0 {
			t.Errorf("pass with the ticket searchable = settled %d, %+v; want it adopted", rep.Settled, rep.Customers)
		}
		if n, c := len(e.tickets()), creates(e); n != 1 || c != 1 {
			t.Errorf("%d tickets, %d creates sent; want 1 and 1", n, c)
		}
	})
	t.Run("neverApplied", func(t *testing.T) {
		t.Parallel()
		e, eng := setup(t)
		// The connection drops before the create is handled.
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: create, Drop: true, Times: 1})
		e.pass(eng)
		sent := creates(e)
		e.now = e.now.Add(time.Minute)
		if cr := e.pass(eng).Customers[0]; cr.Created != 0 || creates(e) != sent {
			t.Errorf("pass within the settle time = %+v, %d creates sent; want none sent again", cr, creates(e)-sent)
		}
		// The customer has no other ticket to check the search with: the
		// create waits for an operator who finds no ticket in the PSA.
		e.now = e.now.Add(2 * time.Minute)
		if cr := e.pass(eng).Customers[0]; cr.Created != 0 || creates(e) != sent || cr.Err == nil {
			t.Errorf("pass after the settle time = %+v, %d creates sent; want none sent again, and the customer failed", cr, creates(e)-sent)
		}
		e.notPosted("sc:" + e.sophos.Alerts(acme)[0].ID)
		if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Err != nil || len(e.tickets()) != 1 {
			t.Errorf("pass after the operator's answer = %+v, %d tickets; want the create sent again", cr, len(e.tickets()))
		}
	})
}

// A technician moves a ConnectWise ticket to another board: the close and
// the reopen set the status of the routing's name on that board (each
// board has its own statuses, and ConnectWise refuses another board's),
// and a board without such a status fails the customer with an error
// naming it, not a bare 400 every pass.
func TestEngine_connectWiseTicketMovedToAnotherBoard(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemConnectWise)
	cw := e.psaSim.ConnectWise()
	r := routings[psa.SystemConnectWise]
	r.ClosedStatusID = id(psatest.ConnectWiseStatusClosed) // "Closed", which Help Desk has too
	r.OnReturn = export.OnReturnReopen
	eng := e.engine(r)
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
	e.pass(eng)
	tk := cw.Tickets()[0]
	cw.MoveTicket(tk.ID, psatest.ConnectWiseBoardHelpDesk, psatest.ConnectWiseStatusHDNew)

	e.sophos.ResolveAlert(acme, a.ID)
	rep := e.pass(eng)
	if tot := rep.Totals(); tot.Closed != 1 || tot.Err != nil {
		t.Fatalf("pass after resolving = %+v", rep.Customers)
	}
	if got := cw.Tickets()[0]; !got.Closed || got.StatusID != psatest.ConnectWiseStatusHDClosed {
		t.Errorf("ticket after the close = %+v, want Help Desk's Closed (%d)", got, psatest.ConnectWiseStatusHDClosed)
	}
	e.raiseAgain(a)
	e.now = e.now.Add(time.Hour)
	rep = e.pass(eng)
	if tot := rep.Totals(); tot.Reopened != 1 || tot.Created != 0 || tot.Err != nil {
		t.Fatalf("pass after the return = %+v", rep.Customers)
	}
	if got := cw.Tickets()[0]; got.Closed || got.StatusID != psatest.ConnectWiseStatusHDNew {
		t.Errorf("ticket after the reopen = %+v, want Help Desk's New (%d)", got, psatest.ConnectWiseStatusHDNew)
	}

	// The routing's ">Resolved" has no match on Help Desk.
	r.ClosedStatusID = id(psatest.ConnectWiseStatusResolved)
	eng = e.engine(r)
	e.sophos.ResolveAlert(acme, a.ID)
	rep = e.pass(eng)
	err := rep.Customers[0].Err
	if err == nil || !strings.Contains(err.Error(), `board "Help Desk"`) || !strings.Contains(err.Error(), `no status named ">Resolved"`) {
		t.Errorf("close to a status Help Desk lacks: %v, want an error naming the board and the status", err)
	}
	if got := cw.Tickets()[0]; got.Closed {
		t.Errorf("ticket closed: %+v", got)
	}
}

// A create refused for a cause fixed in the PSA (a queue made active
// again), with the routing and the mapping unchanged, is sent again a day
// after the refusal (TestEngine_refusedCreate for an alert's ticket; here
// a summary ticket's), so that the alerts get their tickets. So are
// creates refused before a psa-syncd upgrade that sends them differently
// (a blank title).
func TestEngine_refusedSummaryRetriedADayLater(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	// The caps are per pass: each pass files one alert, and the rest go
	// over the cap.
	e.raiseSeries("Threat", 0, 4)
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", BodyContains: `"scs:`,
		Status: http.StatusInternalServerError, Body: `{"errors":["Value does not exist for [queueID]."]}`})
	if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Failed != 1 {
		t.Fatalf("first pass = %+v, want one ticket and the summary refused", cr)
	}
	e.psaSim.ClearFaults()
	e.now = e.now.Add(12 * time.Hour)
	if cr := e.pass(eng).Customers[0]; cr.Err == nil || e.summaryTickets() != 0 {
		t.Errorf("pass half a day later = %+v, %d summary tickets; want the refusal reported, not sent again", cr, e.summaryTickets())
	}
	e.now = e.now.Add(12 * time.Hour)
	if cr := e.pass(eng).Customers[0]; cr.Summarised != 1 || cr.Err != nil || e.summaryTickets() != 1 {
		t.Errorf("pass a day later = %+v, %d summary tickets; want the summary ticket created", cr, e.summaryTickets())
	}
}
