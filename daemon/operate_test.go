package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// snakeKeys returns every object key in v (decoded JSON) that is not
// snake_case, with its path.
func snakeKeys(path string, v any) []string {
	var bad []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !snakeCase.MatchString(k) {
				bad = append(bad, path+"."+k)
			}
			bad = append(bad, snakeKeys(path+"."+k, x)...)
		}
	case []any:
		for i, x := range v {
			bad = append(bad, snakeKeys(fmt.Sprintf("%s[%d]", path, i), x)...)
		}
	}
	return bad
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Every answer of the API uses snake_case keys, and periods are "YYYY-MM".
func TestHandler_snakeCaseJSON(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	// A malformed row gives the plan a problem to show.
	dtWrite(t, e.usagePath, dtUsage+"cust-acme,Acme,CIXA-MSP,Intercept X Advanced,lots\n")
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/v1/plan", "/api/v1/customers", "/api/v1/runs", "/api/v1/runs/1", "/api/v1/intents"} {
		rec := dtServe(t, e.d, http.MethodGet, target, "", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", target, rec.Code, rec.Body)
		}
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if bad := snakeKeys("", v); len(bad) > 0 {
			t.Errorf("GET %s has keys that are not snake_case: %v", target, bad)
		}
		if target == "/api/v1/plan" {
			var p struct {
				Period   string `json:"period"`
				Problems []struct {
					Where string `json:"where"`
					Error string `json:"error"`
				} `json:"problems"`
				Unmapped struct {
					Unassigned []struct {
						Product  string `json:"product"`
						Quantity int64  `json:"quantity"`
					} `json:"unassigned"`
				} `json:"unmapped"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^\d{4}-\d{2}$`).MatchString(p.Period) {
				t.Errorf("plan period = %q, want YYYY-MM", p.Period)
			}
			if len(p.Unmapped.Unassigned) != 1 || p.Unmapped.Unassigned[0].Product != "CIXA-MSP" || p.Unmapped.Unassigned[0].Quantity != 3 {
				t.Errorf("plan unassigned = %+v", p.Unmapped.Unassigned)
			}
			// The bad row and the notice of acme's two rows of one product,
			// added up (duplicate_rows: sum).
			if len(p.Problems) != 2 || !strings.Contains(p.Problems[0].Where, "usage.csv") || p.Problems[0].Error == "" ||
				!strings.Contains(p.Problems[1].Error, "(duplicate_rows: sum)") {
				t.Errorf("plan problems = %+v", p.Problems)
			}
		}
	}
}

// reopen closes e's daemon and opens a new one on the same config file and
// state directory with a fresh registry, as a restart does, with the export
// loaded.
func (e *dtEnv) reopen(t *testing.T) { e.reopenWith(t, Options{}) }

// reopenWith is reopen with the new daemon's options (but its registry).
func (e *dtEnv) reopenWith(t *testing.T, o Options) {
	t.Helper()
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	o.Registry = e.reg
	d, err := New(c, e.cfgPath, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	e.d = d
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
}

// restorableGauges reads the gauges that a restart restores.
func restorableGauges(m *Metrics) map[string]float64 {
	return map[string]float64{
		"customers{held}":      testutil.ToFloat64(m.Usage.Customers.WithLabelValues("held")),
		"customers{succeeded}": testutil.ToFloat64(m.Usage.Customers.WithLabelValues("succeeded")),
		"unmapped{customer}":   testutil.ToFloat64(m.Usage.Unmapped.WithLabelValues("customer")),
		"unmapped{unassigned}": testutil.ToFloat64(m.Usage.Unmapped.WithLabelValues("unassigned")),
		"last_success":         testutil.ToFloat64(m.Usage.LastSuccessTimestamp),
		"last_run":             testutil.ToFloat64(m.Usage.LastRunTimestamp),
		"held_lines":           testutil.ToFloat64(m.Usage.HeldLines),
		"held_since":           testutil.ToFloat64(m.Usage.HeldSince),
		"integration_enabled":  testutil.ToFloat64(m.IntegrationEnabled),
		"last_run{success}":    testutil.ToFloat64(m.Usage.LastRunResult.WithLabelValues("success")),
	}
}

// TestDaemon_exportReloadRecomputesCustomerGauges: a customer removed from
// the export leaves the customer gauges when the export is reloaded, not at
// the next pass (a day later with the default schedule): its held lines
// must not keep PsaSyncLinesHeld firing. Likewise a customer the pass
// found unmapped and the reloaded export maps leaves psa_sync_unmapped:
// PsaSyncUnmappedUsage must not fire on until the next pass.
func TestDaemon_exportReloadRecomputesCustomerGauges(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	e.reloadAndSync(t)
	// Acme drops from 11 to 1 seat: held by the decrease guard.
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1))
	if res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Held != 1 {
		t.Fatalf("second pass = %+v, %v; want one line held", res, err)
	}
	m := e.d.metrics
	if got := testutil.ToFloat64(m.Usage.HeldLines); got != 1 {
		t.Fatalf("held lines after the pass = %v, want 1", got)
	}

	if got := restorableGauges(m)["unmapped{customer}"]; got != 1 {
		t.Fatalf("unmapped customers after the pass = %v, want 1", got)
	}

	e.doc.Revision++
	e.doc.DeleteCustomer("file", "cust-acme")
	initech, _ := e.doc.Customer("file", "cust-globex")
	initech.CustomerID, initech.CustomerName, initech.UsageSync = "cust-unmapped", "Initech", false
	e.doc.PutCustomer(initech)
	e.writeExport(t, e.doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"held_lines":           0,
		"held_since":           0,
		"customers{held}":      0,
		"customers{succeeded}": 1,
		"unmapped{customer}":   0,
		"unmapped{unassigned}": 1,
	} {
		if got := restorableGauges(m)[name]; got != want {
			t.Errorf("%s after the reload without Acme = %v, want %v", name, got, want)
		}
	}
}

// TestDaemon_exportReloadDropsMappedFromUnmappedList: a customer and a
// product the pass found unmapped and the reloaded export maps leave GET
// /api/v1/unmapped and the status page's "Usage that is not billed" at
// once, as they leave psa_sync_unmapped: before, both listed them until the
// next pass while the gauge (and its alert) had already dropped them. The
// usage of no customer, which no mapping bills, stays.
func TestDaemon_exportReloadDropsMappedFromUnmappedList(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	e.reloadAndSync(t)
	// listed checks that cust-unmapped and XGS-FW are in the unmapped
	// lists (want) and in the sync-off lists (wantOff).
	listed := func(step string, want, wantOff bool) {
		t.Helper()
		api := dtServe(t, e.d, http.MethodGet, "/api/v1/unmapped", "", "").Body.String()
		page := newUIClient(t, e.d).do(http.MethodGet, "/", nil).Body.String()
		var rep usage.UnmappedReport
		if err := json.Unmarshal([]byte(api), &rep); err != nil {
			t.Fatalf("%s: GET /api/v1/unmapped: %v\n%s", step, err, api)
		}
		u := rep.Unmapped
		for _, c := range []struct {
			list string
			got  bool
			want bool
		}{
			{"customers", slices.ContainsFunc(u.Customers, func(c usage.UnmappedCustomer) bool { return c.CustomerID == "cust-unmapped" }), want},
			{"products", slices.ContainsFunc(u.Products, func(p usage.UnmappedProduct) bool { return p.Product == "XGS-FW" }), want},
			{"sync_off_customers", slices.ContainsFunc(u.SyncOffCustomers, func(c usage.UnmappedCustomer) bool { return c.CustomerID == "cust-unmapped" }), wantOff},
			{"sync_off", slices.ContainsFunc(u.SyncOff, func(p usage.UnmappedProduct) bool { return p.Product == "XGS-FW" }), wantOff},
		} {
			if c.got != c.want {
				t.Errorf("%s: GET /api/v1/unmapped lists it in %s = %v, want %v\n%s", step, c.list, c.got, c.want, api)
			}
		}
		// Initech is among the customers once mapped: the page's
		// unmapped sections are what counts.
		for _, section := range []string{`id="unmapped-customers"`, `id="unmapped-products"`} {
			if got := strings.Contains(page, section); got != want {
				t.Errorf("%s: GET / has %s = %v, want %v", step, section, got, want)
			}
		}
		if !strings.Contains(page, `id="unassigned"`) || !strings.Contains(api, `"unassigned": [`) {
			t.Errorf("%s: the usage of no customer is not listed", step)
		}
		gauge := e.d.metrics.Usage.Unmapped
		if c, p := testutil.ToFloat64(gauge.WithLabelValues("customer")), testutil.ToFloat64(gauge.WithLabelValues("product")); (c == 1 && p == 1) != want || c != p {
			t.Errorf("%s: psa_sync_unmapped customer %v, product %v; listed %v", step, c, p, want)
		}
	}
	listed("after the pass", true, false)
	reload := func(t *testing.T) {
		t.Helper()
		e.doc.Revision++
		e.writeExport(t, e.doc)
		if err := e.d.Reload(); err != nil {
			t.Fatal(err)
		}
	}

	e.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-unmapped", CustomerName: "Initech", CompanyID: "1", ContractID: "1", UsageSync: false})
	e.doc.PutProduct(export.ProductMapping{Source: "file", Product: "XGS-FW", ServiceID: "1", ServiceName: "Firewall", SyncEnabled: false})
	reload(t)
	// Mapped with sync off: ignored on purpose, listed as such at once.
	listed("after the reload of an export that maps them with sync off", false, true)

	e.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-unmapped", CustomerName: "Initech", CompanyID: "1", ContractID: "1", UsageSync: true})
	e.doc.PutProduct(export.ProductMapping{Source: "file", Product: "XGS-FW", ServiceID: "1", ServiceName: "Firewall", SyncEnabled: true})
	reload(t)
	listed("after the reload of an export that switches their sync on", false, false)

	e.doc.CustomerMappings = slices.DeleteFunc(e.doc.CustomerMappings, func(cm export.CustomerMapping) bool { return cm.CustomerID == "cust-unmapped" })
	e.doc.ProductMappings = slices.DeleteFunc(e.doc.ProductMappings, func(pm export.ProductMapping) bool { return pm.Product == "XGS-FW" })
	reload(t)
	listed("after the reload of an export that no longer maps them", true, false)
}

// A restart restores from the state database what the last passes found, so
// that alerts neither resolve nor fire on a deploy.
func TestDaemon_RestoreMetrics_afterRestart(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	e.reopen(t)
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if run, _, _ := e.d.Progress(); run != 0 {
		t.Errorf("Progress after the first pass names run %d, want none running", run)
	}
	if got := testutil.ToFloat64(e.d.metrics.Usage.PassLinesDone); got != 3 {
		t.Errorf("psa_sync_pass_lines_done = %v, want 3", got)
	}
	// Acme drops from 11 to 1 seat: held by the decrease guard.
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1))
	res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Held != 1 {
		t.Fatalf("second pass held %d lines, want 1: %+v", res.Run.Held, res.Run)
	}
	m := e.d.metrics
	before := restorableGauges(m)
	want := map[string]float64{"last_run{success}": 1, "customers{held}": 1, "customers{succeeded}": 1, "unmapped{customer}": 1, "unmapped{unassigned}": 1, "held_lines": 1, "integration_enabled": 1}
	for k, v := range want {
		if before[k] != v {
			t.Errorf("before the restart %s = %v, want %v", k, before[k], v)
		}
	}
	for _, k := range []string{"last_success", "last_run", "held_since"} {
		if before[k] <= 0 {
			t.Errorf("before the restart %s = %v, want a time", k, before[k])
		}
	}

	e.reopen(t)
	m = e.d.metrics
	if got := testutil.ToFloat64(m.Usage.Customers.WithLabelValues("held")); got != 0 {
		t.Fatalf("customers{held} = %v before RestoreMetrics, want 0 (the test would prove nothing)", got)
	}
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	after := restorableGauges(m)
	if !reflect.DeepEqual(after, before) {
		t.Errorf("after the restart the gauges are\n%v\nwant\n%v", after, before)
	}

	// A third pass that still holds the line keeps the time it was first held.
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.Usage.HeldSince); got != before["held_since"] {
		t.Errorf("held_since = %v after another holding pass, want %v (unchanged)", got, before["held_since"])
	}
}

// TestDaemon_RestoreMetrics_exportLoadedLater: psa-syncd restarts while
// its mapping export cannot be loaded (a missing or invalid file, an
// unreachable store with nothing kept), so RestoreMetrics cannot tell
// which customers count. When the export loads a moment later, the
// customer gauges must show the stored statuses of its customers (a
// failed customer and held lines stored before the restart), and the open
// tickets only those of its customers with ticket sync on: left alone
// until the next pass, a day or a month away, PsaSyncCustomersFailing and
// PsaSyncLinesHeldForReview resolved on the restart.
func TestDaemon_RestoreMetrics_exportLoadedLater(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{noExport: true, daemonOpts: Options{Listener: ln, WatchInterval: 50 * time.Millisecond}})
	now := time.Now().UTC()
	for _, cs := range []state.CustomerStatus{
		{Source: "file", CustomerID: "cust-acme", UsageSync: true, LastAttempt: now, Result: state.CustomerFailed, Error: "contract 1 is expired", Failed: 1},
		{Source: "file", CustomerID: "cust-globex", UsageSync: true, LastAttempt: now, Result: state.CustomerHeld, Held: 2},
	} {
		if err := e.d.State().PutCustomerStatus(cs); err != nil {
			t.Fatal(err)
		}
	}
	// Tickets of a customer that is not in the export.
	rec := ticketRecord{Customers: map[string]*TicketStatus{ticketStatusKey(SourceSophos, "cust-gone"): {Result: "succeeded", OpenTickets: 3}}}
	if err := e.d.State().PutSnapshot(snapshotTickets, rec); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.d.Run(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Run restores the metrics before it serves HTTP: once /-/healthy
	// answers, the start-up (without an export) is over.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + ln.Addr().String() + "/-/healthy")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("psa-syncd did not start serving")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.d.Export() != nil {
		t.Fatal("an export loaded at start-up; the test needs none")
	}
	if got := testutil.ToFloat64(e.d.metrics.OpenTickets); got != 3 {
		t.Fatalf("psa_sync_open_tickets restored without an export = %v, want 3 (every stored customer's)", got)
	}

	// The export becomes readable (the store is back, the file fixed).
	e.writeExport(t, e.doc)
	for e.d.Export() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the export did not load")
		}
		time.Sleep(20 * time.Millisecond)
	}
	failed := e.d.metrics.Usage.Customers.WithLabelValues(state.CustomerFailed)
	held := e.d.metrics.Usage.HeldLines
	open := e.d.metrics.OpenTickets
	// useExport sets the gauges just after it stores the export.
	for settled := time.Now().Add(5 * time.Second); time.Now().Before(settled); time.Sleep(20 * time.Millisecond) {
		if testutil.ToFloat64(failed) == 1 && testutil.ToFloat64(held) == 2 && testutil.ToFloat64(open) == 0 {
			break
		}
	}
	if got := testutil.ToFloat64(failed); got != 1 {
		t.Errorf("psa_sync_customers{status=\"failed\"} once the export loaded = %v, want 1 (cust-acme's stored status)", got)
	}
	if got := testutil.ToFloat64(held); got != 2 {
		t.Errorf("psa_sync_held_lines once the export loaded = %v, want 2 (cust-globex's stored status)", got)
	}
	if got := testutil.ToFloat64(open); got != 0 {
		t.Errorf("psa_sync_open_tickets once the export loaded = %v, want 0 (cust-gone is not in it)", got)
	}
}

// TestDaemon_RestoreMetrics_interruptedPass: a pass killed after a success
// is restored, once the restart has marked it interrupted, as the last
// run: a failure, finished at the restart, so that PsaSyncFailing and
// PsaSyncNotReadyForInvoicing fire; the success stays the last success.
func TestDaemon_RestoreMetrics_interruptedPass(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := dtSetup(t, dtOptions{})
	db := e.d.State()
	done, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-90 * time.Minute), Finished: now.Add(-89 * time.Minute), Result: state.RunSuccess})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-30 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	e.reopenWith(t, Options{Now: func() time.Time { return now }})
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	m := e.d.metrics.Usage
	for result, want := range map[string]float64{"success": 0, "partial": 0, "failure": 1} {
		if got := testutil.ToFloat64(m.LastRunResult.WithLabelValues(result)); got != want {
			t.Errorf("psa_sync_last_run_result{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got, want := testutil.ToFloat64(m.LastRunTimestamp), float64(now.UnixNano())/1e9; got != want {
		t.Errorf("psa_sync_last_run_timestamp_seconds = %v, want the restart's time %v", got, want)
	}
	if got, want := testutil.ToFloat64(m.LastSuccessTimestamp), float64(done.Finished.UnixNano())/1e9; got != want {
		t.Errorf("psa_sync_last_success_timestamp_seconds = %v, want the success's %v", got, want)
	}
}

// The next scheduled pass is exported for every kind of schedule, including
// the month-end one whose nominal interval says nothing about when it runs.
func TestDaemon_nextRunMetric(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{daemonOpts: Options{Now: func() time.Time { return now }}})
	doc := e.doc.Clone()
	doc.Integration.Schedule = "monthly last-day 18:00"
	doc.Integration.Timezone = "Europe/Rome"
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.d.scheduleLoop(ctx)
	waitFor(t, "the next run", func() bool { return !e.d.NextRun().IsZero() })
	rome, _ := schedule.LoadLocation("Europe/Rome")
	want := time.Date(2026, 12, 31, 18, 0, 0, 0, rome)
	if got := e.d.NextRun(); !got.Equal(want) {
		t.Fatalf("NextRun = %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(e.d.metrics.NextRunTimestamp); got != float64(want.Unix()) {
		t.Errorf("psa_sync_next_run_timestamp_seconds = %v, want %v", got, want.Unix())
	}
}

// An approving request is never folded into a plain one (it would not
// approve) nor a plain one into it (it would approve what nobody asked to).
func TestSyncQueue_approveIsNotCoalesced(t *testing.T) {
	t.Parallel()
	q := newSyncQueue()
	now := time.Now()
	all := q.add(SyncRequest{Trigger: "api"}, now)
	approve := q.add(SyncRequest{Customer: "cust-1", Approve: true, Trigger: "api"}, now)
	again := q.add(SyncRequest{Customer: "cust-1", Approve: true, Trigger: "cli"}, now)
	line := q.add(SyncRequest{Customer: "cust-1", Approve: true, Service: "30000012", Trigger: "api"}, now)
	plain := q.add(SyncRequest{Customer: "cust-1", Trigger: "api"}, now)
	if approve.ID == all.ID || again.ID != approve.ID || line.ID == approve.ID || plain.ID != all.ID {
		t.Errorf("tickets all=%s approve=%s again=%s line=%s plain=%s; want approve=again, plain=all, the rest apart",
			all.ID, approve.ID, again.ID, line.ID, plain.ID)
	}
	if !approve.Approve || line.Service != "30000012" {
		t.Errorf("tickets lost their approval: %+v %+v", approve, line)
	}
}

// Approvals of one line at different units are never coalesced: the one
// folded away would approve units nobody reviewed in place of its own.
func TestSyncQueue_approvedUnitsAreNotCoalesced(t *testing.T) {
	t.Parallel()
	q := newSyncQueue()
	now := time.Now()
	forty, five, fortyAgain := int64(40), int64(5), int64(40)
	line := func(units *int64) SyncTicket {
		return q.add(SyncRequest{Customer: "cust-1", Approve: true, Service: "30000012", Units: units, Trigger: "api"}, now)
	}
	a, b, c, anyUnits := line(&forty), line(&five), line(&fortyAgain), line(nil)
	if a.ID == b.ID || c.ID != a.ID || anyUnits.ID == a.ID || anyUnits.ID == b.ID {
		t.Errorf("tickets 40=%s 5=%s 40 again=%s any=%s; want 40=40 again, the rest apart", a.ID, b.ID, c.ID, anyUnits.ID)
	}
	if a.Units == nil || *a.Units != 40 || b.Units == nil || *b.Units != 5 || anyUnits.Units != nil {
		t.Errorf("tickets lost their units: %+v %+v %+v", a, b, anyUnits)
	}
}

// While a pass writes, the run shows its progress in the API and the
// metrics say a pass is in progress.
func TestHandler_runProgress(t *testing.T) {
	t.Parallel()
	hold := &dtHold{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	front := httptest.NewServer(hold)
	t.Cleanup(front.Close)
	e := dtSetup(t, dtOptions{baseURL: func(s *psatest.Server) string { hold.sim = s; return front.URL + "/ATServicesRest/" }})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := e.d.SyncOnce(context.WithoutCancel(t.Context()), usage.PassOptions{}); done <- err }()
	<-hold.arrived // the first of three writes is in flight
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/runs", "", "")
	var runs struct {
		Runs []RunView `json:"runs"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &runs); err != nil {
		t.Fatal(err)
	}
	if len(runs.Runs) != 1 || runs.Runs[0].Result != "running" || runs.Runs[0].Progress == nil || runs.Runs[0].Progress.LinesTotal != 3 {
		t.Errorf("GET /api/v1/runs during the pass = %s, want one running run with progress of 3 lines", rec.Body)
	}
	if got := testutil.ToFloat64(e.d.metrics.Usage.PassInProgress); got != 1 {
		t.Errorf("psa_sync_pass_in_progress = %v during the pass, want 1", got)
	}
	if got := testutil.ToFloat64(e.d.metrics.Usage.PassLinesTotal); got != 3 {
		t.Errorf("psa_sync_pass_lines_total = %v during the pass, want 3", got)
	}
	close(hold.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.d.metrics.Usage.PassInProgress); got != 0 {
		t.Errorf("psa_sync_pass_in_progress = %v after the pass, want 0", got)
	}
	if got := testutil.ToFloat64(e.d.metrics.Usage.PassLinesDone); got != 3 {
		t.Errorf("psa_sync_pass_lines_done = %v after the pass, want 3", got)
	}
	rec = dtServe(t, e.d, http.MethodGet, "/api/v1/runs", "", "")
	if strings.Contains(rec.Body.String(), "progress") {
		t.Errorf("finished run still shows progress: %s", rec.Body)
	}
}

// A dry run writes nothing: it leaves psa_sync_pass_in_progress at 0 and
// psa_sync_pass_lines_done and _total at the last pass's counts, which
// it reset to 0 before.
func TestDaemon_dryRunLeavesPassGauges(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	e.reloadAndSync(t)
	m := e.d.metrics.Usage
	if done, total := testutil.ToFloat64(m.PassLinesDone), testutil.ToFloat64(m.PassLinesTotal); done != 3 || total != 3 {
		t.Fatalf("pass_lines_done, _total after the pass = %v, %v; want 3, 3", done, total)
	}
	m.PassInProgress.Set(7) // to see whether the dry run sets it at all
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if done, total := testutil.ToFloat64(m.PassLinesDone), testutil.ToFloat64(m.PassLinesTotal); done != 3 || total != 3 {
		t.Errorf("pass_lines_done, _total after a dry run = %v, %v; want the last pass's 3, 3", done, total)
	}
	if got := testutil.ToFloat64(m.PassInProgress); got != 7 {
		t.Errorf("a dry run set psa_sync_pass_in_progress (now %v)", got)
	}
}

// A pass for one customer in a process that has not restored the last
// plan (psa-syncd sync -customer) replaces that customer's lines in the
// stored plan, and leaves the other customers' there for the next
// psa-syncd run to show.
func TestRecordPlan_oneCustomerInAFreshProcess(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,12", 1))
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true, Customer: "cust-acme"}); err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	p, ok := e.d.LastPlan("")
	if !ok {
		t.Fatal("after a one-customer pass and a restart, no plan for every customer")
	}
	var customers, acme []string
	for _, c := range p.Changes {
		customers = append(customers, c.CustomerID)
		if c.CustomerID == "cust-acme" {
			acme = append(acme, c.Reason)
		}
	}
	if !slices.Contains(customers, "cust-globex") || len(p.Changes) != 3 {
		t.Errorf("restored plan has the lines of %v, want 3 lines, globex's among them", customers)
	}
	// The full pass saw 10 + 1 of CIXA-MSP for acme, the one-customer pass 12 + 1.
	if !slices.Contains(acme, "usage 13 (CIXA-MSP 13)") {
		t.Errorf("acme's restored lines say %q, want the one-customer pass's usage of 13", acme)
	}
}

// Customers can be listed by every status, held and never included.
func TestHandler_customersStatusFilters(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	e.reopen(t)
	doc := e.doc.Clone()
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-new", CustomerName: "Newco", CompanyID: "1", ContractID: "424242", UsageSync: true})
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	e.writeExport(t, doc)
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1))
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{Customer: "cust-acme"}); err != nil {
		t.Fatal(err)
	}
	for filter, want := range map[string]string{"held": "cust-acme", "succeeded": "cust-globex", "never": "cust-new", "failed": "", "": "cust-acme,cust-globex,cust-new"} {
		rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers?status="+filter, "", "")
		var out struct {
			Customers []struct {
				CustomerID string `json:"customer_id"`
				Status     string `json:"status"`
			} `json:"customers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("status=%s: %v: %s", filter, err, rec.Body)
		}
		var ids []string
		for _, c := range out.Customers {
			ids = append(ids, c.CustomerID)
		}
		if got := strings.Join(ids, ","); got != want {
			t.Errorf("GET /api/v1/customers?status=%s = %q, want %q", filter, got, want)
		}
	}
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers?status=broken", "", "")
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "succeeded, failed, partial, held, skipped, never") {
		t.Errorf("unknown status filter: %d %s", rec.Code, rec.Body)
	}
}

// An increase larger than max_increase_percent is held beside a held
// decrease of the same customer: the hint names both guards, and the API's
// approve releases the increase at the reviewed units, alone.
func TestHandler_approveHeldIncrease(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Listener: ln, WatchInterval: time.Hour}})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n  max_increase_percent: 200\n")
	e.reloadAndSync(t)
	// Acme's Intercept X jumps from 11 to 101 seats (a vendor glitch), and
	// its servers drop from 2 to 0.
	glitch := strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,100", 1)
	glitch = strings.Replace(glitch, "cust-acme,Acme,CIXA-SRV,Intercept X Server,2\n", "", 1)
	dtWrite(t, e.usagePath, glitch)
	if res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Held != 2 {
		t.Fatalf("second pass: %+v, %v; want 2 held lines", res, err)
	}
	if u := e.units(0, 0); u != 11 {
		t.Errorf("acme Intercept X units = %d while held, want 11", u)
	}
	if cs, ok, err := e.d.db.CustomerStatus("file", "cust-acme"); err != nil || !ok ||
		!strings.Contains(cs.Hint, "a decrease larger than policies.max_decrease_percent and an increase larger than policies.max_increase_percent are held for review") {
		t.Errorf("acme status with both guards holding = %+v, %v", cs, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, `{"customer": "cust-acme", "approve": true, "service": "`+dtID(e.services[0])+`", "units": 101}`)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/sync approve = %d %s", rec.Code, rec.Body)
	}
	var tk SyncTicket
	if err := json.Unmarshal(rec.Body.Bytes(), &tk); err != nil {
		t.Fatal(err)
	}
	if got, err := e.d.WaitTicket(t.Context(), tk.ID); err != nil || got.Status != "done" {
		t.Fatalf("approve ticket = %+v, %v", got, err)
	}
	if u := e.units(0, 0); u != 101 {
		t.Errorf("acme Intercept X units = %d after approving 101, want 101", u)
	}
	if u := e.units(0, 1); u != 2 {
		t.Errorf("acme server units = %d, want 2 (still held: only the increase was approved)", u)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A decrease held for review is released through the API, for one line of
// one customer, and the change shows in the ledger.
func TestHandler_approveAndLedger(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Listener: ln, WatchInterval: time.Hour}})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	e.reloadAndSync(t)
	// Acme drops from 11 to 1 Intercept X seat and from 2 to 0 servers:
	// both are held.
	lower := strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1)
	lower = strings.Replace(lower, "cust-acme,Acme,CIXA-SRV,Intercept X Server,2\n", "", 1)
	dtWrite(t, e.usagePath, lower)
	if res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Held != 2 {
		t.Fatalf("second pass: %+v, %v; want 2 held lines", res, err)
	}

	for body, want := range map[string]string{
		`{"approve": true}`:                                                        "approve needs a customer",
		`{"customer": "cust-acme", "service": "1"}`:                                "service is only used with approve",
		`{"customer": "cust-acme", "approve": true, "units": 1}`:                   "units need approve, a customer and a service",
		`{"customer": "cust-acme", "service": "1", "units": 1}`:                    "service is only used with approve",
		`{"customer": "cust-acme", "approve": true, "service": "1", "units": -1}`:  "units must not be negative",
		`{"customer": "cust-acme", "approve": true, "service": "1", "units": "1"}`: "units",
	} {
		if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, body); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("POST /api/v1/sync %s = %d %s, want 400 %q", body, rec.Code, rec.Body, want)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	svc := dtID(e.services[0])
	approve := func(units string) {
		t.Helper()
		rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, `{"customer": "cust-acme", "approve": true, "service": "`+svc+`", "units": `+units+`}`)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("POST /api/v1/sync approve = %d %s", rec.Code, rec.Body)
		}
		var tk SyncTicket
		if err := json.Unmarshal(rec.Body.Bytes(), &tk); err != nil {
			t.Fatal(err)
		}
		if tk.Units == nil || strconv.FormatInt(*tk.Units, 10) != units {
			t.Errorf("approve ticket units = %v, want %s", tk.Units, units)
		}
		if got, err := e.d.WaitTicket(t.Context(), tk.ID); err != nil || got.Status != "done" {
			t.Fatalf("approve ticket = %+v, %v", got, err)
		}
	}
	// An approval of 5 seats, which is not what the pass computes (1):
	// usage changed since that review, and the line stays held.
	approve("5")
	if u := e.units(0, 0); u != 11 {
		t.Errorf("acme Intercept X units = %d after approving other units, want 11 (still held)", u)
	}
	if cs, ok, err := e.d.db.CustomerStatus("file", "cust-acme"); err != nil || !ok || !strings.Contains(cs.Error, "reviewed 5, now 1") {
		t.Errorf("acme status after approving other units = %+v, %v", cs, err)
	}
	approve("1")
	if u := e.units(0, 0); u != 1 {
		t.Errorf("acme Intercept X units = %d after approving that line, want 1", u)
	}
	if u := e.units(0, 1); u != 2 {
		t.Errorf("acme server units = %d, want 2 (still held: only the other line was approved)", u)
	}

	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/ledger?customer=cust-acme&service="+svc, "", "")
	var out struct {
		Ledger []LedgerView `json:"ledger"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Ledger) != 2 || out.Ledger[0].Before != 11 || out.Ledger[0].After != 1 || out.Ledger[1].After != 11 {
		t.Errorf("ledger of acme's Intercept X line = %+v, want 11→1 then 0→11, newest first", out.Ledger)
	}
	period := out.Ledger[0].EffectiveDate[:7]
	for query, want := range map[string]int{
		"": 4, "?contract=" + dtID(e.contracts[1]): 1, "?period=" + period: 4, "?period=1999-01": 0, "?limit=1": 1,
	} {
		rec := dtServe(t, e.d, http.MethodGet, "/api/v1/ledger"+query, "", "")
		out.Ledger = nil
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Ledger) != want {
			t.Errorf("GET /api/v1/ledger%s = %d entries (%v), want %d", query, len(out.Ledger), err, want)
		}
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/ledger?period=12-2026", "", ""); rec.Code != http.StatusBadRequest {
		t.Errorf("bad period: %d %s, want 400", rec.Code, rec.Body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// bound; it orders the test after a goroutine, it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A scheduled pass that was queued but has not finished keeps the next-run
// metric at its due time, so the missed-run alert sees it overdue; once it
// finishes, the next run moves on.
func TestDaemon_nextRunStaysDueUntilThePassEnds(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := dtSetup(t, dtOptions{daemonOpts: Options{Now: func() time.Time { return now }}})
	doc := e.doc.Clone()
	doc.Integration.Schedule = "every 1h"
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	started := now.Add(-3 * time.Hour)
	if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: started, Result: "success"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.d.scheduleLoop(ctx)
	tk, ok := e.d.queue.next(ctx) // the catch-up pass, queued at once
	if !ok {
		t.Fatal("no pass queued")
	}
	due := started.Add(time.Hour)
	waitFor(t, "the next run to be the overdue one", func() bool { return e.d.NextRun().Equal(due) })
	e.d.queue.finish(tk.ID, state.Run{ID: 2, Result: "success"}, nil, now)
	waitFor(t, "the next run to move on", func() bool { return e.d.NextRun().After(now) })
	if got := testutil.ToFloat64(e.d.metrics.NextRunTimestamp); got != float64(e.d.NextRun().UnixNano())/1e9 {
		t.Errorf("psa_sync_next_run_timestamp_seconds = %v, want %v", got, e.d.NextRun())
	}
}

// TestDaemon_RestoreMetrics_endedPeriod: at start-up the result of the
// month-end pass of the month that has ended is restored, in the
// export's timezone: at 01:00 on 1 December in Auckland (still 30 November
// in UTC) November has ended, and its failed last pass shows, although
// December's first pass succeeded since (last_run_result says success).
func TestDaemon_RestoreMetrics_endedPeriod(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) // 1 Dec 01:00 in Auckland
	e := dtSetup(t, dtOptions{})
	doc := e.doc.Clone()
	doc.Integration.Timezone = "Pacific/Auckland"
	e.writeExport(t, doc)
	db := e.d.State()
	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Period: "2026-11", Started: now.Add(-6 * time.Hour),
		Finished: now.Add(-5 * time.Hour), Result: state.RunFailure}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Period: "2026-12", Started: now.Add(-30 * time.Minute),
		Finished: now.Add(-20 * time.Minute), Result: state.RunSuccess}); err != nil {
		t.Fatal(err)
	}
	e.reopenWith(t, Options{Now: func() time.Time { return now }})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	m := e.d.metrics.Usage
	for result, want := range map[string]float64{"success": 0, "partial": 0, "failure": 1} {
		if got := testutil.ToFloat64(m.EndedPeriodLastRunResult[result]); got != want {
			t.Errorf("psa_sync_ended_period_last_run_result{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got := testutil.ToFloat64(m.LastRunResult.WithLabelValues("success")); got != 1 {
		t.Errorf("psa_sync_last_run_result{result=\"success\"} = %v, want 1 (December's pass)", got)
	}
}

// TestDaemon_pruneHistory_keepsTheEndedMonthsLastPass: with a short
// state.history_retention, pruning after December's passes keeps
// November's failed month-end pass (older than the retention), so that a
// restart still restores psa_sync_ended_period_last_run_result and the
// status page still offers the re-run; an older December pass goes.
func TestDaemon_pruneHistory_keepsTheEndedMonthsLastPass(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{state: "state:\n  history_retention: 24h\n", daemonOpts: Options{Now: func() time.Time { return now }}})
	db := e.d.State()
	run := func(period string, started time.Time, result string) int64 {
		t.Helper()
		r, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Period: period, Started: started, Finished: started.Add(time.Minute), Result: result})
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	nov := run("2026-11", time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC), state.RunFailure)
	dec1 := run("2026-12", time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), state.RunSuccess)
	dec2 := run("2026-12", time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC), state.RunSuccess)
	e.d.pruneHistory(t.Context())
	for _, c := range []struct {
		id   int64
		want bool
	}{{nov, true}, {dec1, false}, {dec2, true}} {
		if _, ok, err := db.Run(c.id); err != nil || ok != c.want {
			t.Errorf("run %d kept = %t, %v; want %t", c.id, ok, err, c.want)
		}
	}
}
