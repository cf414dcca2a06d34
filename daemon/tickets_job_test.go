package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

const ttAcme = "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b"

// ttSetup is a daemon with the Sophos source and an Autotask simulator,
// and an export with a ticket routing when routing is set.
func ttSetup(t *testing.T, routing *export.Tickets, enabled bool) (*Daemon, *psatest.Server, *sophostest.Server) {
	t.Helper()
	return ttSetupWith(t, routing, enabled, "")
}

// ttSetupWith is ttSetup with more configuration (YAML) appended, such as
// a state section.
func ttSetupWith(t *testing.T, routing *export.Tickets, enabled bool, extra string) (*Daemon, *psatest.Server, *sophostest.Server) {
	t.Helper()
	return ttSetupOptions(t, routing, enabled, extra, Options{})
}

// ttLoad has d load its export changed by change (its revision one up),
// as the provider writes it: the mapping export is rewritten and d
// reloaded.
func ttLoad(t *testing.T, d *Daemon, change func(doc *export.Document)) {
	t.Helper()
	doc := d.exp.Load().doc.Clone()
	doc.Revision++
	change(doc)
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, filepath.Join(filepath.Dir(d.configPath), "mappings.json"), string(data))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
}

// ttPutCustomer has d load its export with customer mapping m put in it
// (see ttLoad).
func ttPutCustomer(t *testing.T, d *Daemon, m export.CustomerMapping) {
	t.Helper()
	ttLoad(t, d, func(doc *export.Document) { doc.PutCustomer(m) })
}

// ttSetupOptions is ttSetupWith with the daemon's Options (its Registry is
// a new one).
func ttSetupOptions(t *testing.T, routing *export.Tickets, enabled bool, extra string, opts Options) (*Daemon, *psatest.Server, *sophostest.Server) {
	t.Helper()
	sim := psatest.Start(t)
	sop := sophostest.Start(t, sophostest.WithFixtureFile("source/sophostest/testdata/fixture.json"))
	dir := t.TempDir()
	user, secret, code := sim.Autotask().Credentials()
	dtWrite(t, filepath.Join(dir, "psa-syncd.yml"), fmt.Sprintf(`export_path: mappings.json
state_dir: state
psa:
  system: autotask
  autotask:
    username: %q
    secret: %q
    integration_code: %q
    base_url: %q
source:
  type: sophos
  sophos:
    client_id: %q
    client_secret: %q
    auth_url: %q
    api_url: %q
web:
  listen_address: 127.0.0.1:0
`, user, secret, code, sim.AutotaskBaseURL(), sop.ClientID(), sop.ClientSecret(), sop.AuthURL(), sop.APIURL())+extra)
	company := dtID(sim.Autotask().AddCompany("Acme"))
	contract := dtID(sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: sim.Autotask().Companies()[0].ID, Name: "Managed"}))
	doc := export.New(psa.SystemAutotask, strings.TrimPrefix(sim.URL(), "http://"))
	doc.Revision = 1
	doc.Integration = &export.Integration{Enabled: enabled}
	doc.Tickets = routing
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: ttAcme, CustomerName: "Acme", CompanyID: company, ContractID: contract, TicketSync: true})
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a", CustomerName: "Globex", CompanyID: company, ContractID: contract})
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, filepath.Join(dir, "mappings.json"), string(data))
	c, err := Load(filepath.Join(dir, "psa-syncd.yml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Registry = prometheus.NewRegistry()
	d, err := New(c, filepath.Join(dir, "psa-syncd.yml"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	return d, sim, sop
}

func TestDaemon_TicketPass(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	var mu sync.Mutex
	now := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d, sim, sop := ttSetupOptions(t, routing, true, "", Options{Now: clock})
	a := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	sop.AddAlert("2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a", sophostest.Alert{Severity: "high", Description: "Globex has ticket sync off"})

	rep, err := d.TicketPass(t.Context(), true)
	if err != nil || len(rep.Totals().WouldCreate) != 1 || len(sim.Autotask().Tickets()) != 0 {
		t.Fatalf("dry run = %+v, %v; tickets %+v", rep.Totals(), err, sim.Autotask().Tickets())
	}
	rep, err = d.TicketPass(t.Context(), false)
	if err != nil || rep.Totals().Created != 1 {
		t.Fatalf("TicketPass = %+v, %v", rep.Customers, err)
	}
	got := sim.Autotask().Tickets()
	if len(got) != 1 || got[0].ExternalID != "sc:"+a.ID {
		t.Fatalf("tickets = %+v, want one for Acme's alert", got)
	}
	// The ticket closes once the alert has been missing for
	// policies.ticket_resolve_after (10m by default), not at the first
	// listing that leaves it out.
	sop.ResolveAlert(ttAcme, a.ID)
	if rep, err = d.TicketPass(t.Context(), false); err != nil || rep.Totals().Closed != 0 || len(rep.Totals().Notices) != 1 {
		t.Fatalf("first pass after resolving = %+v, %v; want nothing closed yet, and a notice", rep.Totals(), err)
	}
	mu.Lock()
	now = now.Add(10 * time.Minute)
	mu.Unlock()
	if rep, err = d.TicketPass(t.Context(), false); err != nil || rep.Totals().Closed != 1 {
		t.Fatalf("pass 10m after resolving = %+v, %v", rep.Totals(), err)
	}
}

// TestDaemon_ticketPassKeepsTheBudgetReserve: the Autotask tenant has 100
// requests left of its 10,000 per hour, below policies.budget_reserve
// (500), at which a usage pass writes nothing, and below
// policies.ticket_budget_reserve (by default 2,500). A ticket pass creates
// no ticket either: its alerts wait for a later pass, with a notice, and the
// pass is budget-limited, not failed (its customer's status is not
// failed; the last success does not move, as for a throttled pass).
// psa_sync_api_budget_remaining shows the budget the pass read, and
// psa_sync_api_budget_checked_timestamp_seconds when.
func TestDaemon_ticketPassKeepsTheBudgetReserve(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, sop := ttSetup(t, routing, true)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-2"})
	sim.Autotask().SetHourlyCount(psatest.DefaultHourlyLimit - 100)
	if reserve := d.Config().Policies.BudgetReserve; reserve != 500 {
		t.Fatalf("budget_reserve = %d, want the default 500", reserve)
	}
	rep, err := d.recordedTicketPass(t.Context(), d.exp.Load().doc, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sim.Autotask().Tickets()); n != 0 {
		t.Errorf("ticket pass created %d tickets with 100 requests left and a budget_reserve of 500 (report %+v); want none", n, rep.Totals())
	}
	tot := rep.Totals()
	if !rep.BudgetLimited || tot.Deferred != 2 || len(tot.Notices) != 1 || !strings.Contains(tot.Notices[0], "reached the reserve, policies.ticket_budget_reserve (2500)") {
		t.Errorf("report: budget limited %v, %+v; want budget limited, 2 alerts deferred with a notice naming the reserve", rep.BudgetLimited, tot)
	}
	st, err := d.TicketStatuses()
	if err != nil {
		t.Fatal(err)
	}
	if s := st[ticketStatusKey("sophos", ttAcme)]; s.Result != "succeeded" || s.Error != "" || len(s.Notices) != 1 {
		t.Errorf("Acme's ticket status = %+v, want not failed, with the notice", s)
	}
	if got := testutil.ToFloat64(d.metrics.TicketLastSuccessTimestamp); got != 0 {
		t.Errorf("last ticket success = %v, want unset after a budget-limited pass", got)
	}
	if got := testutil.ToFloat64(d.metrics.Usage.APIBudgetRemaining.WithLabelValues("")); got <= 0 || got > 100 {
		t.Errorf("psa_sync_api_budget_remaining = %v, want the budget the pass read (at most 100)", got)
	}
	// A ticket pass's check counts for PsaSyncAPIBudgetLow as a usage
	// pass's does: the usage passes may run once a day.
	if got := testutil.ToFloat64(d.metrics.Usage.APIBudgetChecked); time.Since(time.Unix(int64(got), 0)) > time.Minute {
		t.Errorf("psa_sync_api_budget_checked_timestamp_seconds = %v, want the time the pass read the budget", got)
	}
	if v := NewTicketPassView(rep, false); !v.BudgetLimited || !v.Report().BudgetLimited {
		t.Errorf("API view %+v, want budget_limited", v)
	}

	// The next pass starts with Acme, the customer this one stopped at.
	var resume tickets.CustomerKey
	if ok, err := d.db.Snapshot(snapshotTicketResume, &resume); err != nil || !ok || resume != (tickets.CustomerKey{Source: "sophos", CustomerID: ttAcme}) {
		t.Errorf("stored resume = %+v, %v, %v; want Acme", resume, ok, err)
	}

	// With the budget back, the next pass files both alerts.
	sim.Autotask().SetHourlyCount(0)
	if rep, err = d.recordedTicketPass(t.Context(), d.exp.Load().doc, false); err != nil || rep.Totals().Created != 2 || rep.BudgetLimited {
		t.Errorf("pass with the budget back = %+v (budget limited %v), %v; want both alerts filed", rep.Totals(), rep.BudgetLimited, err)
	}
	resume = tickets.CustomerKey{}
	if _, err := d.db.Snapshot(snapshotTicketResume, &resume); err != nil || resume != (tickets.CustomerKey{}) {
		t.Errorf("stored resume after a pass that left nothing = %+v, %v; want none", resume, err)
	}
}

// A ticket whose create answer was lost, found in the PSA and adopted by a
// later pass, counts as created: in psa_sync_tickets_total and in the
// customer's ticket status. psa-syncd created it.
func TestDaemon_ticketPassCountsAdoptedAsCreated(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, sop := ttSetup(t, routing, true)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", DropAfterHandling: true, Times: 1})
	d.scheduledTicketPass(t.Context()) // the create is applied, its answer lost
	d.scheduledTicketPass(t.Context()) // settled: the ticket is adopted
	if n := len(sim.Autotask().Tickets()); n != 1 {
		t.Fatalf("%d tickets in the PSA, want 1", n)
	}
	if got := testutil.ToFloat64(d.metrics.TicketsTotal.WithLabelValues("created")); got != 1 {
		t.Errorf("psa_sync_tickets_total{outcome=\"created\"} = %v, want 1: psa-syncd created the one ticket in the PSA", got)
	}
	st, err := d.TicketStatuses()
	if err != nil {
		t.Fatal(err)
	}
	if s := st[ticketStatusKey("sophos", ttAcme)]; s.Created != 1 || s.OpenTickets != 1 || s.Result != "succeeded" {
		t.Errorf("Acme's ticket status = %+v, want the adopted ticket counted as created", s)
	}
}

func TestDaemon_TicketPass_off(t *testing.T) {
	t.Parallel()
	d, _, _ := ttSetup(t, nil, true)
	if _, err := d.TicketPass(t.Context(), false); !errors.Is(err, ErrNoTicketRouting) {
		t.Errorf("TicketPass without routing: error = %v", err)
	}
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	d, sim, sop := ttSetup(t, routing, false)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high"})
	rep, err := d.TicketPass(t.Context(), false)
	if err != nil || len(rep.Totals().WouldCreate) != 1 || len(sim.Autotask().Tickets()) != 0 {
		t.Errorf("pass with the integration off = %+v, %v; want a dry run", rep.Totals(), err)
	}
}

// waitTicketStatus waits until the ticket scheduler has recorded a pass
// for Acme, or the test's context ends.
func waitTicketStatus(t *testing.T, d *Daemon, ok func(TicketStatus) bool) TicketStatus {
	t.Helper()
	for {
		st, err := d.TicketStatuses()
		if err != nil {
			t.Fatal(err)
		}
		if s, found := st[ticketStatusKey("sophos", ttAcme)]; found && ok(s) {
			return s
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("no ticket pass recorded; statuses %+v", st)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The ticket scheduler runs passes on its own schedule, catching up at
// start when the last pass is older than the interval, and records the
// metrics and each customer's ticket status, which survive a restart.
func TestDaemon_ticketLoop(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, Schedule: "every 1h", QueueID: dtID(psatest.AutotaskQueueMonitoringAlert),
		ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, sop := ttSetup(t, routing, true)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	if err := d.db.PutSnapshot(snapshotTickets, ticketRecord{LastPass: time.Now().Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.ticketLoop(ctx, ctx) }()
	st := waitTicketStatus(t, d, func(TicketStatus) bool { return true })
	cancel()
	<-done
	if st.Result != "succeeded" || st.Created != 1 || st.OpenTickets != 1 {
		t.Errorf("ticket status = %+v, want succeeded with 1 created and 1 open", st)
	}
	if n := len(sim.Autotask().Tickets()); n != 1 {
		t.Errorf("%d tickets in the PSA, want 1", n)
	}
	if got := testutil.ToFloat64(d.metrics.TicketsTotal.WithLabelValues("created")); got != 1 {
		t.Errorf("psa_sync_tickets_total{outcome=created} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(d.metrics.OpenTickets); got != 1 {
		t.Errorf("psa_sync_open_tickets = %v, want 1", got)
	}
	if testutil.ToFloat64(d.metrics.TicketLastSuccessTimestamp) == 0 {
		t.Error("psa_sync_ticket_last_success_timestamp_seconds not set after a successful pass")
	}
	cs, err := d.Customers()
	if err != nil {
		t.Fatal(err)
	}
	var acme *CustomerView
	for i := range cs {
		if cs[i].CustomerID == ttAcme {
			acme = &cs[i]
		}
	}
	if acme == nil || acme.Tickets == nil || acme.Tickets.OpenTickets != 1 {
		t.Errorf("customer view of Acme = %+v, want its ticket status with 1 open ticket", acme)
	}

	ui := newUIClient(t, d)
	for _, page := range []string{"/", "/customers/sophos/" + ttAcme} {
		body := ui.do(http.MethodGet, page, nil).Body.String()
		if !strings.Contains(body, "1 open") {
			t.Errorf("status page %s does not show Acme's open ticket:\n%s", page, body)
		}
	}

	// A restart restores the ticket metrics from the state database.
	cfg := d.Config()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := New(cfg, d.configPath, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d2.Close() })
	if err := d2.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := d2.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(d2.metrics.TicketsTotal.WithLabelValues("created")); got != 1 {
		t.Errorf("restored psa_sync_tickets_total{outcome=created} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(d2.metrics.OpenTickets); got != 1 {
		t.Errorf("restored psa_sync_open_tickets = %v, want 1", got)
	}
	if testutil.ToFloat64(d2.metrics.TicketLastSuccessTimestamp) == 0 {
		t.Error("psa_sync_ticket_last_success_timestamp_seconds not restored")
	}
}

// A failing ticket pass is recorded as such: the customer's status says
// why, and the last success stays unset, which the alert rule sees.
func TestDaemon_ticketPassFailureRecorded(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	d, _, sop := ttSetup(t, routing, true)
	sop.Close() // Sophos Central unreachable: the alerts cannot be listed
	d.scheduledTicketPass(t.Context())
	st, err := d.TicketStatuses()
	if err != nil {
		t.Fatal(err)
	}
	s := st[ticketStatusKey("sophos", ttAcme)]
	if s.Result != "failed" || s.Error == "" {
		t.Errorf("ticket status after a failing pass = %+v, want failed with an error", s)
	}
	if testutil.ToFloat64(d.metrics.TicketLastPassTimestamp) == 0 || testutil.ToFloat64(d.metrics.TicketLastSuccessTimestamp) != 0 {
		t.Errorf("last pass %v, last success %v; want a last pass and no success",
			testutil.ToFloat64(d.metrics.TicketLastPassTimestamp), testutil.ToFloat64(d.metrics.TicketLastSuccessTimestamp))
	}
}

// A customer whose tickets a scheduled pass could not file is logged with
// the reason, as a usage pass logs a customer not synced: the pass's
// summary line gives only the totals.
func TestDaemon_ticketPassLogsFailedCustomer(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, sop := ttSetupOptions(t, routing, true, "", Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusInternalServerError,
		Body: `{"errors":["Value does not exist for [queueID]."]}`})
	d.scheduledTicketPass(t.Context())
	named := func(l string) bool {
		return strings.Contains(l, "level=WARN") && strings.Contains(l, "customer="+ttAcme) && strings.Contains(l, "name=Acme") &&
			strings.Contains(l, "Value does not exist for [queueID].")
	}
	if !slices.ContainsFunc(strings.Split(logs.String(), "\n"), named) {
		t.Errorf("no warning names the failed customer and why; logs:\n%s", logs.String())
	}
}

// A ticket pass that fails as a whole (here: the usage source is a file,
// so there are no alerts to read) fails every customer with ticket sync on,
// with the reason.
func TestDaemon_ticketPassErrorFailsCustomers(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	doc := e.doc.Clone()
	doc.Tickets = &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: ttAcme, CustomerName: "Acme", CompanyID: dtID(e.companies[0]),
		ContractID: dtID(e.contracts[0]), TicketSync: true})
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	e.d.scheduledTicketPass(t.Context())
	st, err := e.d.TicketStatuses()
	if err != nil {
		t.Fatal(err)
	}
	s := st[ticketStatusKey("sophos", ttAcme)]
	if s.Result != "failed" || !strings.Contains(s.Error, "Sophos Central alerts") {
		t.Errorf("ticket status = %+v, want failed with the pass's error", s)
	}
	if testutil.ToFloat64(e.d.metrics.TicketLastPassTimestamp) == 0 || testutil.ToFloat64(e.d.metrics.TicketLastSuccessTimestamp) != 0 {
		t.Error("a failed pass must set the last pass time and not the last success")
	}
}

// TestDaemon_ticketPassNotices: what a pass leaves alone and why (here an
// alert of a severity the routing does not know) is kept in the customer's
// ticket status, which the API and the status page show, not only logged;
// the open tickets count those whose close is not settled yet.
func TestDaemon_ticketPassNotices(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, sop := ttSetup(t, routing, true)
	a := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "critical", Description: "Unknown severity"})
	d.scheduledTicketPass(t.Context())
	st, err := d.TicketStatuses()
	if err != nil {
		t.Fatal(err)
	}
	s := st[ticketStatusKey("sophos", ttAcme)]
	if len(s.Notices) != 1 || !strings.Contains(s.Notices[0], a.ID) || !strings.Contains(s.Notices[0], `"critical"`) {
		t.Errorf("notices = %q, want one naming alert %s and its severity", s.Notices, a.ID)
	}
	for i, state := range []string{tickets.StateOpen, tickets.StateClosing, tickets.StateNoting, tickets.StateReopening, tickets.StateClosed} {
		if err := d.db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: ttAcme, AlertKey: fmt.Sprint("alert-", i), Ref: fmt.Sprint("sc:alert-", i),
			Generation: 1, System: "autotask", CompanyID: "1", TicketID: fmt.Sprint(7000 + i), State: state}); err != nil {
			t.Fatal(err)
		}
	}
	// Recorded as a pass that touched none of them would be.
	rep := tickets.Report{Customers: []tickets.CustomerReport{{Customer: tickets.Customer{Source: "sophos", CustomerID: ttAcme}}}}
	if err := d.recordTicketPass(rep, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st, err = d.TicketStatuses(); err != nil {
		t.Fatal(err)
	}
	if got := st[ticketStatusKey("sophos", ttAcme)].OpenTickets; got != 4 {
		t.Errorf("open tickets = %d, want 4 (open, closing, noting, reopening)", got)
	}
}

// The open-tickets gauge counts the customers with ticket sync on in the
// loaded export: turning a customer's ticket sync off takes its tickets
// out of the gauge when the export is loaded, not at a ticket pass that
// never comes for it; turning it on again brings them back.
func TestDaemon_exportReloadRecomputesOpenTickets(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, sop := ttSetup(t, routing, true)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	d.scheduledTicketPass(t.Context())
	if got := testutil.ToFloat64(d.metrics.OpenTickets); got != 1 {
		t.Fatalf("psa_sync_open_tickets after the pass = %v, want 1", got)
	}

	load := func(ticketSync bool) {
		t.Helper()
		ttLoad(t, d, func(doc *export.Document) {
			acme, _ := doc.Customer("sophos", ttAcme)
			acme.TicketSync = ticketSync
			doc.PutCustomer(acme)
		})
	}
	load(false)
	if got := testutil.ToFloat64(d.metrics.OpenTickets); got != 0 {
		t.Errorf("psa_sync_open_tickets with Acme's ticket sync off = %v, want 0", got)
	}
	load(true)
	if got := testutil.ToFloat64(d.metrics.OpenTickets); got != 1 {
		t.Errorf("psa_sync_open_tickets with Acme's ticket sync on again = %v, want 1", got)
	}
}

// psa_sync_ticket_sync_enabled says whether the loaded export makes ticket
// passes run, so that PsaSyncTicketSyncFailing resolves once ticket sync
// is switched off: no pass runs then, and the last failed pass's
// timestamps would keep it firing for ever.
func TestDaemon_ticketSyncEnabledGauge(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, _ := ttSetup(t, routing, true)
	gauge := func() float64 { return testutil.ToFloat64(d.metrics.TicketSyncEnabled.WithLabelValues("autotask")) }
	if got := gauge(); got != 1 {
		t.Fatalf("psa_sync_ticket_sync_enabled with ticket routing on = %v, want 1", got)
	}
	for _, tc := range []struct {
		name   string
		change func(doc *export.Document)
		want   float64
	}{
		{"routing disabled", func(doc *export.Document) { doc.Tickets.Enabled = false }, 0},
		{"routing enabled again", func(doc *export.Document) { doc.Tickets.Enabled = true }, 1},
		{"no customer with ticket sync", func(doc *export.Document) {
			acme, _ := doc.Customer("sophos", ttAcme)
			acme.TicketSync = false
			doc.PutCustomer(acme)
		}, 0},
		{"ticket sync on again", func(doc *export.Document) {
			acme, _ := doc.Customer("sophos", ttAcme)
			acme.TicketSync = true
			doc.PutCustomer(acme)
		}, 1},
		{"integration off", func(doc *export.Document) { doc.Integration.Enabled = false }, 0},
		{"no routing", func(doc *export.Document) { doc.Integration.Enabled, doc.Tickets = true, nil }, 0},
	} {
		ttLoad(t, d, tc.change)
		if got := gauge(); got != tc.want {
			t.Errorf("%s: psa_sync_ticket_sync_enabled = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDaemon_ticketPassRefusedOnRestoredBackup: the ticket records of a
// restored backup lack what psa-syncd did since the backup (a resolve note
// sent, a ticket closed), so a ticket pass on it would send the note again
// or take its own close for a technician's: it writes nothing until the
// operator confirms the restore, while a dry run still runs. (audit-state,
// finding 1.)
func TestDaemon_ticketPassRefusedOnRestoredBackup(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, sop := ttSetupOptions(t, routing, true, "policies:\n  ticket_resolve_after: 0s\n", Options{})
	a := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
		t.Fatalf("TicketPass = %+v, %v", rep.Customers, err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := d.db.Backup(backup); err != nil {
		t.Fatal(err)
	}
	sop.ResolveAlert(ttAcme, a.ID)
	if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Closed != 1 {
		t.Fatalf("pass after resolving = %+v, %v", rep.Totals(), err)
	}
	cfgPath := d.configPath
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// The README's restore: stop, remove -wal and -shm, put the backup in
	// place, start.
	db := filepath.Join(filepath.Dir(cfgPath), "state", state.FileName)
	for _, f := range []string{db + "-wal", db + "-shm"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	open := func(allowRestore bool) *Daemon {
		c, err := Load(cfgPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(c, cfgPath, Options{Registry: prometheus.NewRegistry(), AllowRestore: allowRestore})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		if err := d.Reload(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d = open(false)
	before := len(sim.Requests())
	if _, err := d.TicketPass(t.Context(), false); !errors.Is(err, ErrRestoredBackup) {
		t.Errorf("TicketPass on a restored backup = %v; want ErrRestoredBackup", err)
	}
	d.scheduledTicketPass(t.Context())
	st, err := d.TicketStatuses()
	if err != nil {
		t.Fatal(err)
	}
	if s := st[ticketStatusKey("sophos", ttAcme)]; s.Result != "failed" || !strings.Contains(s.Error, "-state.allow-restore") {
		t.Errorf("Acme's ticket status after a refused pass = %+v; want failed, naming -state.allow-restore", s)
	}
	// GET /api/v1/customers serves it without the API token: it names
	// no file of the state directory.
	if rec := dtServe(t, d, http.MethodGet, "/api/v1/customers", "", ""); !strings.Contains(rec.Body.String(), "-state.allow-restore") ||
		strings.Contains(rec.Body.String(), filepath.Dir(db)) {
		t.Errorf("GET /api/v1/customers on a restored backup = %s; want Acme's ticket error, without the state directory %s", rec.Body, filepath.Dir(db))
	}
	if rep, err := d.TicketPass(t.Context(), true); err != nil || !rep.DryRun || !strings.Contains(rep.WritesHeld, "-state.allow-restore") {
		t.Errorf("a dry run on a restored backup = %+v, %v; want it run, saying why writes are held", rep, err)
	} else if v := NewTicketPassView(rep, true); v.WritesHeld != rep.WritesHeld || v.Report().WritesHeld != rep.WritesHeld {
		t.Errorf("the API view of the dry run says writes_held %q (back: %q), want %q", v.WritesHeld, v.Report().WritesHeld, rep.WritesHeld)
	}
	for _, r := range sim.Requests()[before:] {
		if r.Method != http.MethodGet && !strings.HasSuffix(r.Path, "/query") {
			t.Errorf("a %s %s reached the PSA while writes are held", r.Method, r.Path)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(true)
	if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.WritesHeld != "" {
		t.Errorf("TicketPass after -state.allow-restore = %v (writes held %q)", err, rep.WritesHeld)
	}
}

// TestDaemon_removedTicketOnlyCustomerListed: a customer with ticket sync
// only has no usage status; once its mapping was removed it disappeared
// from GET /api/v1/customers and the status page, while the tickets
// psa-syncd created for it stay open in the PSA. It is listed as removed,
// by the name and company of its last ticket pass, its ticket result
// "off", with its open tickets.
func TestDaemon_removedTicketOnlyCustomerListed(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, sop := ttSetup(t, routing, true)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	d.scheduledTicketPass(t.Context())
	mapping, _ := d.exp.Load().doc.Customer("sophos", ttAcme)
	ttLoad(t, d, func(doc *export.Document) { doc.DeleteCustomer("sophos", ttAcme) })
	rec := dtServe(t, d, http.MethodGet, "/api/v1/customers?status="+StatusRemoved, "", "")
	var got struct {
		Customers []CustomerView `json:"customers"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("GET /api/v1/customers?status=removed = %d %s", rec.Code, rec.Body)
	}
	if len(got.Customers) != 1 || got.Customers[0].CustomerID != ttAcme || got.Customers[0].Status != StatusRemoved ||
		got.Customers[0].CustomerName != "Acme" || got.Customers[0].CompanyID != mapping.CompanyID || got.Customers[0].ContractID != mapping.ContractID ||
		got.Customers[0].Tickets == nil || got.Customers[0].Tickets.Result != TicketResultOff || got.Customers[0].Tickets.LeftOpen != 1 {
		t.Errorf("GET /api/v1/customers?status=removed after the ticket-only customer's mapping was removed = %s; want Acme, removed, with its company, ticket result off, 1 ticket left open", rec.Body)
	}
	page := dtServe(t, d, http.MethodGet, "/?filter="+StatusRemoved, "", "").Body.String()
	row := regexp.MustCompile(`(?s)data-customer="` + ttAcme + `" data-status="removed".*?(<td class="tickets">.*?</td>)`).FindStringSubmatch(page)
	if row == nil || !strings.Contains(row[0], "Acme") || !strings.Contains(row[1], "1 left open") {
		t.Errorf("the Not in the export tab does not list the removed customer by name with the ticket left open:\n%s", page)
	}
}

// TestDaemon_ticketSyncOffTicketsLeftOpen: a customer whose ticket sync
// was turned off kept its last pass's open_tickets in GET
// /api/v1/customers and on the status page ("1 open"), as if psa-syncd
// still followed them: they are no longer closed when their alerts are
// resolved, and nothing told the operator to close them. Its open_tickets
// is 0; left_open counts the tickets it left open at its last pass, and a
// notice says what to do. Turned on again, they are open tickets again.
func TestDaemon_ticketSyncOffTicketsLeftOpen(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, sop := ttSetup(t, routing, true)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	d.scheduledTicketPass(t.Context())
	mapping, _ := d.exp.Load().doc.Customer("sophos", ttAcme)
	acme := func() TicketStatus {
		t.Helper()
		rec := dtServe(t, d, http.MethodGet, "/api/v1/customers", "", "")
		var got struct {
			Customers []CustomerView `json:"customers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("GET /api/v1/customers = %d %s", rec.Code, rec.Body)
		}
		for _, c := range got.Customers {
			if c.CustomerID == ttAcme && c.Tickets != nil {
				return *c.Tickets
			}
		}
		t.Fatalf("GET /api/v1/customers = %s, want Acme with its ticket status", rec.Body)
		return TicketStatus{}
	}
	ticketCell := func() string {
		t.Helper()
		index := dtServe(t, d, http.MethodGet, "/", "", "").Body.String()
		cell := regexp.MustCompile(`(?s)data-customer="` + ttAcme + `".*?(<td class="tickets">.*?</td>)`).FindStringSubmatch(index)
		if cell == nil {
			t.Fatalf("the status page lists no Acme:\n%s", index)
		}
		return cell[1]
	}

	off := mapping
	off.TicketSync = false
	ttPutCustomer(t, d, off)
	st := acme()
	if st.OpenTickets != 0 || st.LeftOpen != 1 || len(st.Notices) != 1 || !strings.Contains(st.Notices[0], "1 ticket") ||
		!strings.Contains(st.Notices[0], "no longer follows") || !strings.Contains(st.Notices[0], "close") {
		t.Errorf("ticket status with ticket sync off = %+v; want open_tickets 0, left_open 1 and a notice saying psa-syncd no longer follows it", st)
	}
	if cell := ticketCell(); !strings.Contains(cell, "1 left open") || strings.Contains(cell, "1 open") {
		t.Errorf("status page ticket cell with ticket sync off = %s; want the ticket left open, not an open one", cell)
	}
	if page := dtServe(t, d, http.MethodGet, "/customers/sophos/"+ttAcme, "", "").Body.String(); !strings.Contains(page, "no longer follows") {
		t.Errorf("the customer's status page does not say psa-syncd no longer follows its ticket:\n%s", page)
	}

	ttPutCustomer(t, d, mapping)
	if st := acme(); st.OpenTickets != 1 || st.LeftOpen != 0 || len(st.Notices) != 0 {
		t.Errorf("ticket status with ticket sync on again = %+v; want its open ticket back, nothing left open", st)
	}
	if cell := ticketCell(); !strings.Contains(cell, "1 open") {
		t.Errorf("status page ticket cell with ticket sync on again = %s; want 1 open", cell)
	}
}

// TestDaemon_customersTicketSyncOff: a customer whose ticket sync was
// turned off, or whose mapping was removed, kept its last ticket pass's
// result in GET /api/v1/customers and on the status page: "failed" for
// ever, with notices telling the operator what to do (run
// -forget-other-psa, which passes no such customer). No ticket pass runs
// for it: its tickets' result is "off", without the notices; its last
// pass's error, counts and open tickets stay. Turned on again, the last
// pass's result shows again.
func TestDaemon_customersTicketSyncOff(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, _ := ttSetup(t, routing, true)
	notice := "2 ticket records belong to connectwise ... run `psa-syncd tickets -forget-other-psa`"
	rep := tickets.Report{Customers: []tickets.CustomerReport{{Customer: tickets.Customer{Source: "sophos", CustomerID: ttAcme},
		Err: errors.New("listing open alerts: sophos: 403 forbidden"), Notices: []string{notice}}}}
	if err := d.recordTicketPass(rep, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	// A usage status, so that the customer is listed once its mapping is
	// removed.
	if err := d.db.PutCustomerStatus(state.CustomerStatus{Source: "sophos", CustomerID: ttAcme, Result: "succeeded", LastAttempt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	acme := func() TicketStatus {
		t.Helper()
		all, err := d.Customers()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range all {
			if c.CustomerID == ttAcme && c.Tickets != nil {
				return *c.Tickets
			}
		}
		t.Fatalf("customers = %+v, want Acme with its ticket status", all)
		return TicketStatus{}
	}
	if st := acme(); st.Result != "failed" || len(st.Notices) != 1 {
		t.Fatalf("ticket status with ticket sync on = %+v, want the failed pass and its notice", st)
	}
	mapping, _ := d.exp.Load().doc.Customer("sophos", ttAcme)
	for _, tc := range []struct {
		name   string
		change func(doc *export.Document)
		result string
	}{
		{"ticket sync off", func(doc *export.Document) {
			m := mapping
			m.TicketSync = false
			doc.PutCustomer(m)
		}, TicketResultOff},
		{"mapping removed", func(doc *export.Document) { doc.DeleteCustomer("sophos", ttAcme) }, TicketResultOff},
		{"ticket sync on again", func(doc *export.Document) { doc.PutCustomer(mapping) }, "failed"},
	} {
		ttLoad(t, d, tc.change)
		st := acme()
		if st.Result != tc.result || (len(st.Notices) == 0) != (tc.result == TicketResultOff) || st.Error == "" {
			t.Errorf("%s: ticket status = %+v, want result %q, the last error, and notices only while ticket sync is on", tc.name, st, tc.result)
		}
		index := dtServe(t, d, http.MethodGet, "/", "", "").Body.String()
		cell := regexp.MustCompile(`(?s)data-customer="` + ttAcme + `".*?(<td class="tickets">.*?</td>)`).FindStringSubmatch(index)
		if cell == nil {
			t.Fatalf("%s: the status page lists no Acme:\n%s", tc.name, index)
		}
		page := dtServe(t, d, http.MethodGet, "/customers/sophos/"+ttAcme, "", "").Body.String()
		if failed := strings.Contains(cell[1], "s-failed") || strings.Contains(page, "flash bad"); failed != (tc.result == "failed") {
			t.Errorf("%s: the status page shows the ticket sync failing: %t, want %t; ticket cell %s", tc.name, failed, tc.result == "failed", cell[1])
		}
	}
}

// TestDaemon_ticketPassLeavesTheUsagePassItsBudget: a storm of alerts
// clears at once with the Autotask tenant's hourly budget a little above
// policies.budget_reserve. The ticket pass must not spend it down to the
// reserve on closes: a usage pass in that hour (month end) would then
// write nothing and end partial, the invoices short. The ticket pass stops
// at policies.ticket_budget_reserve, above budget_reserve: its closes wait
// for a later pass, their records kept, and the usage pass writes its
// lines.
func TestDaemon_ticketPassLeavesTheUsagePassItsBudget(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose,
		MaxPerCustomer: 50}
	now := time.Date(2026, time.October, 30, 12, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	d, sim, sop := ttSetupOptions(t, routing, true, "policies:\n  ticket_resolve_after: 0s\n", Options{Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	service := sim.Autotask().AddService("Sophos Intercept X Advanced", 4.5)
	ttLoad(t, d, func(doc *export.Document) {
		doc.PutProduct(export.ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: dtID(service), ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
		m, _ := doc.Customer("sophos", ttAcme)
		m.UsageSync = true
		doc.PutCustomer(m)
	})

	var ids []string
	for i := range 30 {
		ids = append(ids, sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Malware on PC-%d", i)}).ID)
	}
	if rep, err := d.recordedTicketPass(t.Context(), d.exp.Load().doc, false); err != nil || rep.Totals().Created != 30 {
		t.Fatalf("first ticket pass = %+v, %v; want 30 tickets", rep.Totals(), err)
	}
	for _, id := range ids {
		sop.ResolveAlert(ttAcme, id)
	}
	// 60 requests above budget_reserve (500): enough for the usage pass,
	// not for the usage pass after 30 closes.
	sim.Autotask().SetHourlyCount(psatest.DefaultHourlyLimit - 560)
	rep, err := d.recordedTicketPass(t.Context(), d.exp.Load().doc, false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.SyncOnce(t.Context(), usage.PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Result != state.RunSuccess {
		t.Errorf("usage pass after the ticket pass (closed %d, deferred %d, budget limited %v) = %+v, want succeeded: "+
			"the ticket pass spent the budget the usage pass needs", rep.Totals().Closed, rep.Totals().Deferred, rep.BudgetLimited, res.Run)
	}
	if !rep.BudgetLimited || rep.Totals().Deferred != 30 || rep.Totals().Closed != 0 {
		t.Errorf("ticket pass = %+v (budget limited %v), want every close deferred for the budget", rep.Totals(), rep.BudgetLimited)
	}
	// The operator sees why the closes are late: the log names the
	// setting and its value.
	if !regexp.MustCompile(`level=WARN msg="Ticket pass stopped writing: the PSA's hourly API budget reached policies.ticket_budget_reserve, [^"]*" reserve=2500 .*closed=0 .*deferred=30`).MatchString(logs.String()) {
		t.Errorf("no warn line naming policies.ticket_budget_reserve (2500) for the budget-limited pass:\n%s", logs.String())
	}

	// With the budget back, the next pass sends every close.
	sim.Autotask().SetHourlyCount(0)
	if rep, err = d.recordedTicketPass(t.Context(), d.exp.Load().doc, false); err != nil || rep.Totals().Closed != 30 || rep.BudgetLimited {
		t.Errorf("pass with the budget back = %+v (budget limited %v), %v; want the 30 closes sent", rep.Totals(), rep.BudgetLimited, err)
	}
}

// TestDaemon_ticketPassesKeepTheTenantList: the daemon built a Sophos
// alert source for every ticket pass, which read the partner's tenant list
// (pages of 100 tenants) every pass, every 5 minutes, to find the
// tenants' apiHosts. It keeps one across passes: the list is read by the
// first pass and again once it is an hour old (or a tenant is unknown, or
// seems to have moved: package tickets).
func TestDaemon_ticketPassesKeepTheTenantList(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	var mu sync.Mutex
	now := time.Date(2026, time.November, 2, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	d, _, sop := ttSetupOptions(t, routing, true, "", Options{Now: clock})
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	for i, want := range []int{1, 0, 0, 1, 0} {
		sop.ResetRequests()
		if rep, err := d.recordedTicketPass(t.Context(), d.exp.Load().doc, false); err != nil || rep.Customers[0].Err != nil {
			t.Fatalf("pass %d: %+v, %v", i+1, rep.Customers, err)
		}
		if n := sop.CountRequests(http.MethodGet, "/partner/v1/tenants"); n != want {
			t.Errorf("pass %d (%s) read the tenant list %d times, want %d", i+1, clock().Format(time.TimeOnly), n, want)
		}
		mu.Lock()
		now = now.Add(20 * time.Minute)
		mu.Unlock()
	}
}

// psa_sync_ticket_deferred shows the alerts the last ticket pass left for
// a later one: a pass that created its max_per_pass tickets succeeds (its
// customers did not fail), so without it tickets filed passes late show
// nowhere but in notices. The backlog shrinks as later passes file it,
// is in the customer's tickets.deferred and on its status page, and is
// restored at start-up.
func TestDaemon_ticketDeferredGauge(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose,
		MaxPerPass: 1}
	d, sim, sop := ttSetup(t, routing, true)
	for i := range 3 {
		sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Malware on PC-%d", i)})
	}
	for pass, want := range []float64{2, 1, 0} {
		d.scheduledTicketPass(t.Context())
		if got := testutil.ToFloat64(d.metrics.TicketDeferred); got != want {
			t.Errorf("pass %d: psa_sync_ticket_deferred = %v, want %v", pass+1, got, want)
		}
		st, err := d.TicketStatuses()
		if err != nil {
			t.Fatal(err)
		}
		if got := st[ticketStatusKey("sophos", ttAcme)].Deferred; float64(got) != want {
			t.Errorf("pass %d: Acme's tickets.deferred = %d, want %v", pass+1, got, want)
		}
		// The customer's status page shows them with the other counts.
		body := newUIClient(t, d).do(http.MethodGet, "/customers/sophos/"+ttAcme, nil).Body.String()
		if shown := strings.Contains(body, fmt.Sprintf("%v deferred to a later pass", want)); shown != (want > 0) {
			t.Errorf("pass %d: Acme's status page shows %v deferred alerts: %t, want %t:\n%s", pass+1, want, shown, want > 0, body)
		}
		// So does its row on the index, beside the open tickets.
		index := newUIClient(t, d).do(http.MethodGet, "/", nil).Body.String()
		cell := regexp.MustCompile(`(?s)data-customer="` + ttAcme + `".*?(<td class="tickets">.*?</td>)`).FindStringSubmatch(index)
		if cell == nil {
			t.Fatalf("pass %d: the status page lists no Acme:\n%s", pass+1, index)
		}
		if shown := strings.Contains(cell[1], fmt.Sprintf("%v deferred", want)); shown != (want > 0) {
			t.Errorf("pass %d: Acme's row on the status page shows %v deferred alerts: %t, want %t:\n%s", pass+1, want, shown, want > 0, cell[1])
		}
		if pass == 0 {
			// Restored at start-up, as the other ticket gauges.
			d.metrics.TicketDeferred.Set(0)
			if err := d.restoreTicketMetrics(); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(d.metrics.TicketDeferred); got != 2 {
				t.Errorf("psa_sync_ticket_deferred restored = %v, want 2", got)
			}
		}
	}
	if got := len(sim.Autotask().Tickets()); got != 3 {
		t.Errorf("tickets = %d, want 3 (one a pass)", got)
	}
}

// psa_sync_ticket_next_run_timestamp_seconds keeps the time of a due
// ticket pass until the pass has ended, so that a pass that never ends
// (here: held behind another pass) shows as overdue; PsaSyncTicketSyncFailing
// compares the last pass with the last success and sees no pass at all.
// Once the pass ends it moves to the next one; a stopped loop (a standby)
// sets it to 0.
func TestDaemon_ticketNextRunMetric(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, Schedule: "every 1h", QueueID: dtID(psatest.AutotaskQueueMonitoringAlert),
		ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, sop := ttSetup(t, routing, true)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	last := time.Now().Add(-2 * time.Hour)
	if err := d.db.PutSnapshot(snapshotTickets, ticketRecord{LastPass: last}); err != nil {
		t.Fatal(err)
	}
	d.ticketMu.Lock()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.ticketLoop(ctx, ctx) }()
	due := unixSeconds(last.Add(time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(d.metrics.TicketNextRunTimestamp) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := testutil.ToFloat64(d.metrics.TicketNextRunTimestamp); got != due {
		t.Errorf("psa_sync_ticket_next_run_timestamp_seconds while the due pass has not ended = %v, want its time %v", got, due)
	}
	d.ticketMu.Unlock()
	waitTicketStatus(t, d, func(TicketStatus) bool { return true })
	for testutil.ToFloat64(d.metrics.TicketNextRunTimestamp) == due && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(d.metrics.TicketNextRunTimestamp); got < unixSeconds(time.Now().Add(50*time.Minute)) {
		t.Errorf("psa_sync_ticket_next_run_timestamp_seconds after the pass = %v, want the next pass, an hour on", got)
	}
	cancel()
	<-done
	if got := testutil.ToFloat64(d.metrics.TicketNextRunTimestamp); got != 0 {
		t.Errorf("psa_sync_ticket_next_run_timestamp_seconds once the loop stopped = %v, want 0", got)
	}
}

// A customer out of ticket sync has no alert waiting for a later pass:
// no pass runs for it, so the backlog its last pass left is not counted
// as deferred (psa_sync_ticket_deferred leaves it out too).
func TestTicketSyncOff_nothingDeferred(t *testing.T) {
	t.Parallel()
	st := ticketSyncOff(TicketStatus{Result: "succeeded", OpenTickets: 2, Deferred: 3})
	if st.Deferred != 0 || st.LeftOpen != 2 || st.OpenTickets != 0 {
		t.Errorf("ticketSyncOff = deferred %d, left open %d, open %d; want 0, 2, 0", st.Deferred, st.LeftOpen, st.OpenTickets)
	}
}

// TestDaemon_ticketPassBudgetUnknown: Autotask answers ThresholdInformation
// 500 all pass long. The ticket pass's gate reads the budget again every 50
// writes and stops the writes after 3 failed reads, as the usage passes'
// does; its notices, report, API view and log used to word that as the
// budget having "reached the reserve, policies.ticket_budget_reserve
// (2500)", which sends the operator to lower the request load. They now
// say that the budget could not be read.
func TestDaemon_ticketPassBudgetUnknown(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5",
		OnResolve: export.OnResolveClose, MaxPerPass: 500, MaxPerCustomer: 500}
	var logs bytes.Buffer
	d, sim, sop := ttSetupOptions(t, routing, true, "", Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for i := range 120 {
		sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Malware on PC-%d", i)})
	}
	sim.AddFault(psatest.Fault{Path: "/ATServicesRest/V1.0/ThresholdInformation", Status: http.StatusInternalServerError})
	rep, err := d.recordedTicketPass(t.Context(), d.exp.Load().doc, false)
	if err != nil {
		t.Fatal(err)
	}
	tot := rep.Totals()
	if !rep.BudgetLimited || !rep.BudgetUnknown || tot.Deferred == 0 || tot.Created == 0 {
		t.Fatalf("report: budget limited %v, unknown %v, %+v; want budget limited and unknown, some alerts filed and some deferred",
			rep.BudgetLimited, rep.BudgetUnknown, tot)
	}
	if len(tot.Notices) != 1 || !strings.Contains(tot.Notices[0], "budget could not be read: 3 reads of it in a row failed") ||
		strings.Contains(tot.Notices[0], "reached the reserve") {
		t.Errorf("notices = %q, want one saying the budget could not be read, not that it reached the reserve", tot.Notices)
	}
	if v := NewTicketPassView(rep, false); !v.BudgetUnknown || !v.Report().BudgetUnknown {
		t.Errorf("API view %+v, want budget_unknown", v)
	}
	if !strings.Contains(logs.String(), `msg="Ticket pass stopped writing: the PSA's hourly API budget could not be read`) ||
		strings.Contains(logs.String(), "budget reached policies.ticket_budget_reserve") {
		t.Errorf("no warn line saying the budget could not be read:\n%s", logs.String())
	}
}

// A customer whose mapping names a renewal (next_contract_id) gets its
// tickets filed on the renewal from the day it takes over, as the last
// usage pass planned it (ContractRenewal.TakesOver), also while that pass
// still bills the month before on contract_id (usage_period "previous");
// on contract_id before that day, and when no usage pass planned the
// renewal. Filed on the ended contract, the labour on the ticket would roll
// up to it.
func TestDaemon_ticketsFiledOnTheContractInForce(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	now := time.Date(2027, 1, 5, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		takesOver time.Time // zero: no renewal in the last plan
		billsNext bool
		// stored: the plan is only in the state database, as for
		// psa-syncd tickets, a process of its own.
		stored bool
		want   string // "old" or "next"
	}{
		{"takenOver", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), false, false, "next"},
		{"takenOverStored", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), false, true, "next"},
		{"takesOverToday", time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC), false, false, "next"},
		{"notYet", time.Date(2027, 1, 6, 0, 0, 0, 0, time.UTC), false, false, "old"},
		{"billedWithoutDates", time.Time{}, true, false, "next"},
		{"notPlanned", time.Time{}, false, false, "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, sim, sop := ttSetupOptions(t, routing, true, "", Options{Now: func() time.Time { return now }})
			acme, _ := d.exp.Load().doc.Customer("sophos", ttAcme)
			old := acme.ContractID
			acme.NextContractID = dtID(sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: sim.Autotask().Companies()[0].ID, Name: "Managed 2027"}))
			// Usage-synced: the usage passes' plan decides (see
			// TestDaemon_ticketsOfACustomerWithoutUsageSync for the others).
			acme.UsageSync = true
			ttPutCustomer(t, d, acme)
			if !tc.takesOver.IsZero() || tc.billsNext {
				r := usage.ContractRenewal{Source: "sophos", CustomerID: ttAcme, ContractID: old, NextContractID: acme.NextContractID,
					BillsTo: old, TakesOver: tc.takesOver}
				if tc.billsNext {
					r.BillsTo = acme.NextContractID
				}
				d.recordPlan(&usage.Plan{Period: source.Period{Year: 2026, Month: 12}, EffectiveDate: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
					ComputedAt: now, Renewals: []usage.ContractRenewal{r}}, "")
				if tc.stored {
					d.plans = planMemory{}
				}
			}
			sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
			if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
				t.Fatalf("TicketPass = %+v, %v", rep.Totals(), err)
			}
			want := map[string]string{"old": old, "next": acme.NextContractID}[tc.want]
			if tk := sim.Autotask().Tickets(); len(tk) != 1 || dtID(tk[0].ContractID) != want {
				t.Errorf("tickets = %+v, want one on contract %s (%s)", tk, want, tc.want)
			}
		})
	}
}

// psa_sync_ticket_unseen_creates, the lost creates kept because the search
// could not be trusted, is restored at start-up from the last pass, as
// the other ticket gauges are: it read 0 until the first ticket pass after
// a restart, while the creates were still held (audit-doubles5, not fixed
// 4).
func TestDaemon_ticketUnseenCreatesRestored(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, _ := ttSetup(t, routing, true)
	for _, want := range []float64{2, 0} {
		if err := d.recordTicketPass(tickets.Report{UnseenCreates: int(want)}, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		d.metrics.TicketUnseenCreates.Set(7)
		if err := d.restoreTicketMetrics(); err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(d.metrics.TicketUnseenCreates); got != want {
			t.Errorf("psa_sync_ticket_unseen_creates restored = %v, want %v", got, want)
		}
	}
}
