package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// etNow is the clock of every engine test: the billing period is
// November 2026 and period_start changes take effect on 2026-11-01.
var (
	etNow        = time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)
	etPeriodDay  = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
	etAdjustPath = "/ATServicesRest/V1.0/ContractServiceAdjustments"
	etUnitsPath  = "/ATServicesRest/V1.0/ContractServiceUnits/*"
)

// etHarness is one simulated Autotask tenant, a usage file, a state database,
// a registry and an export, wired into an Engine.
type etHarness struct {
	t     testing.TB
	sim   *psatest.Server
	at    *psatest.Autotask
	be    psa.Backend
	db    *state.DB
	reg   *prometheus.Registry
	m     *Metrics
	rt    *countingTransport
	usage string
	// dup is the usage file's duplicate_rows; "" means its default.
	dup file.DuplicateRows
	// logs, when set, receives the engine's log.
	logs *recordHandler
	doc  *export.Document
	pol  Policies
	// now is the engine's clock; nil means etNow.
	now func() time.Time
	// unsaved is shared by the harness's engines, as psa-syncd shares
	// its own across the Engine it builds for each pass.
	unsaved UnsavedRuns

	// The tenant: two customers with one contract each, and two services.
	contractA, contractB int64
	svcIntercept, svcMDR int64
}

func newETHarness(t testing.TB, opts ...psatest.Option) *etHarness {
	t.Helper()
	opts = append([]psatest.Option{psatest.WithClock(func() time.Time { return etNow })}, opts...)
	sim := psatest.Start(t, opts...)
	h := &etHarness{t: t, sim: sim, at: sim.Autotask(), reg: prometheus.NewRegistry(), pol: DefaultPolicies}
	h.m = NewMetrics(h.reg, psa.SystemAutotask)
	h.rt = newCountingTransport(h.m)
	user, secret, code := h.at.Credentials()
	be, err := backends.New(backends.Config{
		System: psa.SystemAutotask,
		Autotask: &backends.AutotaskConfig{
			Username: user, Secret: secret, IntegrationCode: code,
			BaseURL: sim.AutotaskBaseURL(),
		},
		HTTPClient: &http.Client{Transport: h.rt, Timeout: 30 * time.Second},
		MaxRetries: backends.DefaultMaxRetries,
	})
	if err != nil {
		t.Fatalf("backends.New: %v", err)
	}
	h.be = be
	db, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatalf("state.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing the state database: %v", err)
		}
	})
	h.db = db
	h.usage = filepath.Join(t.TempDir(), "usage.csv")

	acme := h.at.AddCompany("Acme")
	globex := h.at.AddCompany("Globex")
	h.contractA = h.at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Acme Managed Services"})
	h.contractB = h.at.AddContract(psatest.AutotaskContract{CompanyID: globex, Name: "Globex Managed Services"})
	h.svcIntercept = h.at.AddService("Sophos Intercept X Advanced", 4.5)
	h.svcMDR = h.at.AddService("Sophos MDR", 9)

	h.doc = export.New(psa.SystemAutotask, "sim")
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: etID(h.svcIntercept), ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-SRV", ServiceID: etID(h.svcIntercept), ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "MDR", ServiceID: etID(h.svcMDR), ServiceName: "Sophos MDR", SyncEnabled: true})
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "OLD", ServiceID: etID(h.svcMDR), ServiceName: "Sophos MDR", SyncEnabled: false})
	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-a", CustomerName: "Acme", CompanyID: etID(acme), ContractID: etID(h.contractA), UsageSync: true})
	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-b", CustomerName: "Globex", CompanyID: etID(globex), ContractID: etID(h.contractB), UsageSync: true})
	return h
}

// countingTransport counts the requests sent to the PSA and feeds
// Metrics.Requests with the count, as psa-syncd's instrumented transport
// does; rateLimited counts the 429 answers.
type countingTransport struct {
	requests, rateLimited atomic.Int64
	// beforeSend, when set before the pass, sees every request before it
	// is sent.
	beforeSend func(*http.Request)
}

func newCountingTransport(m *Metrics) *countingTransport {
	rt := &countingTransport{}
	m.Requests = rt.requests.Load
	return rt
}

func (rt *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.requests.Add(1)
	if rt.beforeSend != nil {
		rt.beforeSend(r)
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		rt.rateLimited.Add(1)
	}
	return resp, err
}

func etID(n int64) string { return strconv.FormatInt(n, 10) }

// writeUsage replaces the usage file (header added).
func (h *etHarness) writeUsage(rows ...string) {
	h.t.Helper()
	content := "customer_id,customer_name,product,quantity\n" + strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// firstPass writes rows as the usage and runs the pass a scenario starts
// from, which must update want lines; anything else ends the test.
func (h *etHarness) firstPass(want int, rows ...string) {
	h.t.Helper()
	h.writeUsage(rows...)
	if res := h.sync(PassOptions{}); res.Run.Updated != want {
		h.t.Fatalf("first pass = %+v, want %d updated", res.Run, want)
	}
}

func (h *etHarness) engine() *Engine {
	h.t.Helper()
	return h.engineWith(h.be, nil)
}

// engineWith is the harness's engine on backend be (a wrapper of h.be, say)
// and usage source src, or the harness's usage file when src is nil.
func (h *etHarness) engineWith(be psa.Backend, src source.Source) *Engine {
	h.t.Helper()
	if src == nil {
		var err error
		if src, err = file.New(file.Config{Path: h.usage, DuplicateRows: h.dup}); err != nil {
			h.t.Fatal(err)
		}
	}
	var log *slog.Logger
	if h.logs != nil {
		log = slog.New(h.logs)
	}
	return NewEngine(EngineOptions{
		Backend: be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
		Logger: log, Location: time.UTC, Now: h.clock, Unsaved: &h.unsaved,
	})
}

func (h *etHarness) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return etNow
}

func (h *etHarness) sync(o PassOptions) *Result {
	h.t.Helper()
	res, err := h.engine().Sync(h.t.Context(), h.doc, o)
	if err != nil {
		h.t.Fatalf("Sync returned error: %v", err)
	}
	return res
}

// plan runs Plan against the harness's export; an error ends the test.
func (h *etHarness) plan(o PassOptions) *Plan {
	h.t.Helper()
	p, err := h.engine().Plan(h.t.Context(), h.doc, o)
	if err != nil {
		h.t.Fatalf("Plan: %v", err)
	}
	return p
}

// units returns the quantity of a line in the simulator for November.
func (h *etHarness) units(contract, service int64) int64 {
	h.t.Helper()
	n, _ := h.at.Units(contract, service, etPeriodDay)
	return n
}

func (h *etHarness) wantUnits(contract, service, want int64) {
	h.t.Helper()
	if got := h.units(contract, service); got != want {
		h.t.Errorf("units of contract %d service %d = %d, want %d", contract, service, got, want)
	}
}

// adjustmentPosts counts the adjustment POSTs the simulator received since
// the last ResetRequests.
func (h *etHarness) adjustmentPosts() int {
	n := 0
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodPost && strings.Contains(strings.ToLower(r.Path), "serviceadjustments") {
			n++
		}
	}
	return n
}

func (h *etHarness) metric(c prometheus.Collector) float64 {
	h.t.Helper()
	return testutil.ToFloat64(c)
}

func (h *etHarness) status(customer string) state.CustomerStatus {
	h.t.Helper()
	cs, ok, err := h.db.CustomerStatus("file", customer)
	if err != nil || !ok {
		h.t.Fatalf("CustomerStatus(%s) = %v, %v", customer, ok, err)
	}
	return cs
}

func etFindChange(p *Plan, customer string, service int64) *Change {
	for i := range p.Changes {
		if p.Changes[i].CustomerID == customer && p.Changes[i].ServiceID == etID(service) {
			return &p.Changes[i]
		}
	}
	return nil
}

func TestEngine_Sync_endToEnd(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP,40",
		"cust-a,Acme,CIXA-SRV,2",
		"cust-a,Acme,MDR,5",
		"cust-a,Acme,ZTNA,7", // no product mapping
		"cust-a,Acme,OLD,9",  // mapping with sync_enabled = false
		"cust-b,Globex,CIXA-MSP,6",
		"cust-b,Globex,CIXA-MSP,4",  // adds up with the row above
		"cust-x,Initech,CIXA-MSP,3", // no customer mapping
		",,FW-XGS,1",                // no customer at all
	)

	res := h.sync(PassOptions{Trigger: TriggerCLI})

	h.wantUnits(h.contractA, h.svcIntercept, 42) // 40 + 2 on one service
	h.wantUnits(h.contractA, h.svcMDR, 5)        // OLD (sync off) is not added
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	if n := len(h.at.Adjustments()); n != 3 {
		t.Errorf("simulator has %d adjustments, want 3", n)
	}
	for _, a := range h.at.Adjustments() {
		if !a.EffectiveDate.Equal(etPeriodDay) {
			t.Errorf("adjustment %d effective %s, want %s", a.ID, a.EffectiveDate, etPeriodDay)
		}
	}

	run := res.Run
	if run.Result != state.RunSuccess || run.Updated != 3 || run.Unchanged != 0 || run.Failed != 0 || run.Customers != 2 || run.DryRun {
		t.Errorf("run = %+v, want success with 3 updated for 2 customers", run)
	}
	if run.Period != "2026-11" || run.Trigger != TriggerCLI || run.Requests == 0 || run.Finished.IsZero() {
		t.Errorf("run = %+v, want period 2026-11, trigger cli, requests counted, finished", run)
	}
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Reason != "usage 42 (CIXA-MSP 40 + CIXA-SRV 2)" ||
		c.Current != 30 || !c.CurrentKnown || c.Desired != 42 || c.Action != ActionUpdate {
		t.Errorf("change for cust-a intercept = %+v", c)
	}
	u := res.Plan.Unmapped
	if len(u.Customers) != 1 || u.Customers[0].CustomerID != "cust-x" || u.Customers[0].Quantity != 3 {
		t.Errorf("unmapped customers = %+v, want cust-x with 3", u.Customers)
	}
	if len(u.Products) != 1 || u.Products[0].Product != "ZTNA" || u.Products[0].Quantity != 7 {
		t.Errorf("unmapped products = %+v, want ZTNA with 7", u.Products)
	}
	if len(u.Unassigned) != 1 || u.Unassigned[0].Product != "FW-XGS" || u.Unassigned[0].Quantity != 1 {
		t.Errorf("unassigned = %+v, want FW-XGS with 1", u.Unassigned)
	}
	if len(u.SyncOff) != 1 || u.SyncOff[0].Product != "OLD" {
		t.Errorf("sync off = %+v, want OLD", u.SyncOff)
	}

	for _, c := range []string{"cust-a", "cust-b"} {
		cs := h.status(c)
		if cs.Result != state.CustomerSucceeded || cs.LastSuccess.IsZero() || cs.RunID != etID(run.ID) || cs.Error != "" {
			t.Errorf("status of %s = %+v, want succeeded", c, cs)
		}
	}
	ledger, err := h.db.Ledger(0)
	if err != nil || len(ledger) != 3 {
		t.Fatalf("ledger = %+v, %v; want 3 entries", ledger, err)
	}
	if open, _ := h.db.OpenIntents(); len(open) != 0 {
		t.Errorf("open intents after a clean pass: %+v", open)
	}

	for _, tc := range []struct {
		// Counters and gauges are also Metrics, whose Desc names them.
		c interface {
			prometheus.Collector
			prometheus.Metric
		}
		want float64
	}{
		{h.m.RunsTotal.WithLabelValues("success"), 1},
		{h.m.LinesTotal.WithLabelValues(LineUpdated), 3},
		{h.m.Customers.WithLabelValues("succeeded"), 2},
		{h.m.Customers.WithLabelValues("failed"), 0},
		{h.m.Unmapped.WithLabelValues("customer"), 1},
		{h.m.Unmapped.WithLabelValues("product"), 1},
		{h.m.Unmapped.WithLabelValues("unassigned"), 1},
		{h.m.LastSuccessTimestamp, float64(etNow.Unix())},
	} {
		if got := h.metric(tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.c.Desc(), got, tc.want)
		}
	}

	// The second pass finds everything in place and writes nothing.
	h.sim.ResetRequests()
	res = h.sync(PassOptions{})
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("second pass posted %d adjustments, want 0", n)
	}
	if res.Run.Updated != 0 || res.Run.Unchanged != 3 || res.Run.Result != state.RunSuccess {
		t.Errorf("second run = %+v, want 3 unchanged", res.Run)
	}
	if n := len(h.at.Adjustments()); n != 3 {
		t.Errorf("simulator has %d adjustments after the second pass, want 3", n)
	}
	if got := h.metric(h.m.LinesTotal.WithLabelValues(LineUnchanged)); got != 3 {
		t.Errorf("lines unchanged = %v, want 3", got)
	}
	// The current quantities were read in bulk, not line by line.
	reads := 0
	for _, r := range h.sim.Requests() {
		if strings.Contains(strings.ToLower(r.Path), "contractserviceunits") {
			reads++
		}
	}
	if reads != 1 {
		t.Errorf("second pass made %d ContractServiceUnits requests, want 1 bulk read", reads)
	}
}

// TestEngine_Sync_usageSyncOffCustomerListed: a customer mapped with
// usage_sync = false is left alone, and its usage, which nothing bills, is
// listed as sync off (Unmapped.SyncOffCustomers, kept for GET
// /api/v1/unmapped), as a product mapped with sync_enabled = false is; like
// that product it is mapped on purpose and does not count in
// psa_sync_unmapped.
func TestEngine_Sync_usageSyncOffCustomerListed(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	cm, _ := h.doc.Customer("file", "cust-b")
	cm.UsageSync = false
	h.doc.PutCustomer(cm)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,6", "cust-b,Globex,MDR,4")

	res := h.sync(PassOptions{})
	h.wantUnits(h.contractB, h.svcIntercept, 0)
	u := res.Plan.Unmapped
	if len(u.SyncOffCustomers) != 1 || u.SyncOffCustomers[0].CustomerID != "cust-b" || u.SyncOffCustomers[0].Quantity != 10 ||
		strings.Join(u.SyncOffCustomers[0].Products, ",") != "CIXA-MSP,MDR" {
		t.Errorf("sync off customers = %+v, want cust-b with 10 of CIXA-MSP and MDR", u.SyncOffCustomers)
	}
	if len(u.Customers) != 0 {
		t.Errorf("unmapped customers = %+v, want none: cust-b is mapped", u.Customers)
	}
	if got := h.metric(h.m.Unmapped.WithLabelValues("customer")); got != 0 {
		t.Errorf("psa_sync_unmapped{kind=\"customer\"} = %v, want 0", got)
	}
	var rep UnmappedReport
	if ok, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil || !ok || len(rep.Unmapped.SyncOffCustomers) != 1 {
		t.Errorf("stored unmapped usage = %+v, %v, %v; want cust-b as sync off", rep.Unmapped, ok, err)
	}
}

// TestEngine_Sync_unmappedReportSource: the unmapped usage kept for GET
// /api/v1/unmapped names the usage source the pass read, whose ids it
// lists: the source of the mappings that would bill them (the provider's
// psa_unmapped_usage checks it against the source it expects).
func TestEngine_Sync_unmappedReportSource(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-new,Initech,CIXA-MSP,3")
	h.sync(PassOptions{})
	var rep UnmappedReport
	if ok, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil || !ok {
		t.Fatalf("stored unmapped usage: %v, %v", ok, err)
	}
	if rep.Source != "file" || len(rep.Unmapped.Customers) != 1 {
		t.Errorf("stored unmapped usage: source %q, customers %+v; want source \"file\" and cust-new", rep.Source, rep.Unmapped.Customers)
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"source":"file"`) {
		t.Errorf("UnmappedReport JSON = %s, want \"source\":\"file\"", raw)
	}
	// Before any pass (and in a report an older psa-syncd kept) there is
	// no source, and no field: older clients see what they saw.
	raw, err = json.Marshal(UnmappedReport{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "source") {
		t.Errorf("UnmappedReport{} JSON = %s, want no source field", raw)
	}
}

// TestEngine_Sync_newUnmappedCounted: psa_sync_unmapped_new_total counts
// the unmapped items a pass finds that the pass before it did not have. A
// new unmapped product that replaces another leaves psa_sync_unmapped at 1
// but counts; the same items again do not; and a restart continues the
// count from the state database, so that the next new item counts on top
// of it.
func TestEngine_Sync_newUnmappedCounted(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	newTotal := func(kind string) float64 { return h.metric(h.m.UnmappedNew[kind]) }
	want := func(step string, customers, products float64) {
		t.Helper()
		if c, p := newTotal("customer"), newTotal("product"); c != customers || p != products {
			t.Errorf("%s: psa_sync_unmapped_new_total customer %v, product %v; want %v, %v", step, c, p, customers, products)
		}
	}

	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,ZTNA,7")
	h.sync(PassOptions{})
	want("first pass", 0, 1)
	h.sync(PassOptions{})
	want("same usage", 0, 1)

	// ZTNA's usage ends and XDR appears unmapped: still one unmapped
	// product, but a new one.
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,XDR,3")
	h.sync(PassOptions{})
	if got := h.metric(h.m.Unmapped.WithLabelValues("product")); got != 1 {
		t.Fatalf("psa_sync_unmapped{kind=\"product\"} = %v, want 1", got)
	}
	want("product replaced", 0, 2)

	// A restart: new metrics, restored from the state database.
	h.m = NewMetrics(prometheus.NewRegistry(), psa.SystemAutotask)
	h.m.Requests = h.rt.requests.Load
	if err := h.engine().RestoreMetrics(h.doc); err != nil {
		t.Fatal(err)
	}
	want("restored", 0, 2)
	h.sync(PassOptions{})
	want("same usage after the restart", 0, 2)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,XDR,3", "cust-x,Initech,CIXA-MSP,2")
	h.sync(PassOptions{})
	want("new customer after the restart", 1, 2)
}

func TestEngine_Sync_dryRunAndDisabledWriteNothing(t *testing.T) {
	t.Parallel()
	for _, o := range []PassOptions{{DryRun: true}, {WritesDisabled: true}} {
		t.Run(fmt.Sprintf("dry=%v,disabled=%v", o.DryRun, o.WritesDisabled), func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,MDR,2", "cust-x,,MDR,1")
			res := h.sync(o)
			if n := h.adjustmentPosts(); n != 0 {
				t.Errorf("posted %d adjustments, want 0", n)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 0)
			if !res.Run.DryRun || res.Run.Updated != 2 || res.Run.Result != state.RunSuccess {
				t.Errorf("run = %+v, want a dry run that would update 2 lines", res.Run)
			}
			if o.WritesDisabled && !strings.Contains(res.Run.Error, "integration disabled") {
				t.Errorf("run error = %q, want it to say the integration is disabled", res.Run.Error)
			}
			if sts, _ := h.db.CustomerStatuses(); len(sts) != 0 {
				t.Errorf("a dry run stored statuses: %+v", sts)
			}
			if len(res.Customers) != 2 {
				t.Errorf("result has %d customer statuses, want 2", len(res.Customers))
			}
			if runs, _ := h.db.Runs(0); len(runs) != 1 || !runs[0].DryRun {
				t.Errorf("runs = %+v, want one dry run", runs)
			}
			if got := h.metric(h.m.RunsTotal.WithLabelValues("success")); got != 0 {
				t.Errorf("runs_total{success} = %v after a dry run, want 0", got)
			}
			if got := h.metric(h.m.Unmapped.WithLabelValues("customer")); got != 1 {
				t.Errorf("unmapped{customer} = %v, want 1", got)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 0 {
				t.Errorf("a dry run opened intents: %+v", open)
			}
		})
	}
}

func TestEngine_Plan_writesNothing(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40")
	p := h.plan(PassOptions{})
	if len(p.Changes) != 1 || p.Changes[0].Action != ActionUpdate || p.Changes[0].Desired != 40 || p.Changes[0].CurrentKnown {
		t.Errorf("plan changes = %+v", p.Changes)
	}
	if p.Period.String() != "2026-11" || !p.EffectiveDate.Equal(etPeriodDay) || p.Customers != 2 {
		t.Errorf("plan = period %s, effective %s, %d customers", p.Period, p.EffectiveDate, p.Customers)
	}
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("Plan posted %d adjustments", n)
	}
	if runs, _ := h.db.Runs(0); len(runs) != 0 {
		t.Errorf("Plan recorded runs: %+v", runs)
	}
}

func TestEngine_Sync_customerLimitsThePass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	res := h.sync(PassOptions{Customer: "cust-b"})
	h.wantUnits(h.contractA, h.svcIntercept, 0)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	if res.Run.Customers != 1 || res.Run.Customer != "cust-b" || len(res.Customers) != 1 {
		t.Errorf("run = %+v, want one customer", res.Run)
	}
	if _, ok, _ := h.db.CustomerStatus("file", "cust-a"); ok {
		t.Error("a pass for cust-b stored a status for cust-a")
	}

	_, err := h.engine().Sync(t.Context(), h.doc, PassOptions{Customer: "nobody"})
	if err == nil || err.Error() != "daemon: no customer mapping for file/nobody in the mapping export" {
		t.Errorf("Sync for an unknown customer: %v", err)
	}
	if runs, _ := h.db.Runs(0); len(runs) != 1 {
		t.Errorf("runs = %+v, want only the first pass recorded (a mistyped customer is no run)", runs)
	}
	if got := h.metric(h.m.RunsTotal.WithLabelValues("failure")); got != 0 {
		t.Errorf("runs_total{failure} = %v after a mistyped customer, want 0", got)
	}
}

func TestEngine_Sync_missingUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy string
		want   int64
		action string
	}{
		{MissingUsageZero, 0, ActionUpdate},
		{MissingUsageKeep, 8, ActionUnchanged},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.pol.MissingUsage = tc.policy
			h.pol.MaxDecreasePercent = 0
			h.at.SetUnits(h.contractA, h.svcMDR, 8, etPeriodDay)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40") // no MDR usage this month
			res := h.sync(PassOptions{})
			h.wantUnits(h.contractA, h.svcMDR, tc.want)
			h.wantUnits(h.contractA, h.svcIntercept, 40)
			c := etFindChange(res.Plan, "cust-a", h.svcMDR)
			if c == nil || c.Action != tc.action || !strings.Contains(c.Reason, "missing_usage: "+tc.policy) {
				t.Errorf("change = %+v, want %s", c, tc.action)
			}
			// Customer b has no usage and no lines: nothing to do.
			if c := etFindChange(res.Plan, "cust-b", h.svcMDR); c != nil {
				t.Errorf("change for a line that does not exist: %+v", c)
			}
		})
	}
}

// TestEngine_Sync_decreaseJustOverTheLimit: a decrease just over
// max_decrease_percent is held with its percentage as it is, not rounded
// down to the limit ("decrease of 50%: more than 50").
func TestEngine_Sync_decreaseJustOverTheLimit(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 1000, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,496")

	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 1000)
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, "decrease of 50.4% (from 1000 to 496) held for review: more than max_decrease_percent 50") {
		t.Errorf("change = %+v, want held as a decrease of 50.4%%", c)
	}
}

func TestPercentText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pct, limit float64
		want       string
	}{
		{60, 50, "60"}, {60.00000000000001, 50, "60"}, {50.4, 50, "50.4"}, {33.333333, 20, "33.33"},
		{50.001, 50, "50.001"}, {49.996, 50, "50"}, {100, 50, "100"},
	} {
		if got := percentText(tt.pct, tt.limit); got != tt.want {
			t.Errorf("percentText(%v, %v) = %q, want %q", tt.pct, tt.limit, got, tt.want)
		}
	}
}

func TestEngine_Sync_decreaseGuard(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 10, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,4")

	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 10)
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, "decrease of 60% (from 10 to 4) held for review") {
		t.Errorf("change = %+v, want held", c)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || cs.Held != 1 || !strings.Contains(cs.Hint, "--approve") {
		t.Errorf("status = %+v, want held with a hint", cs)
	}
	if res.Run.Result != state.RunSuccess || res.Run.Held != 1 {
		t.Errorf("run = %+v", res.Run)
	}
	if got := h.metric(h.m.Customers.WithLabelValues("held")); got != 1 {
		t.Errorf("customers{held} = %v, want 1", got)
	}
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("posted %d adjustments while held", n)
	}

	res = h.sync(PassOptions{Approve: true})
	h.wantUnits(h.contractA, h.svcIntercept, 4)
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionUpdate || !strings.Contains(c.Reason, "approved") {
		t.Errorf("approved change = %+v", c)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status after approve = %+v", cs)
	}
}

// TestEngine_Sync_increaseGuard: max_increase_percent holds a large
// increase of a known, non-zero quantity for review as the decrease guard
// holds a decrease, and an approval releases it (at the reviewed units
// only, when it names them). It is off by default, and an increase from
// no line or a line at 0 is never held.
func TestEngine_Sync_increaseGuard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		limit     float64
		current   int64 // -1: no line on the contract
		usage     int64
		wantHeld  bool
		wantUnits int64
	}{
		{name: "off by default", current: 40, usage: 40000, wantUnits: 40000},
		{name: "held", limit: 200, current: 40, usage: 40000, wantHeld: true, wantUnits: 40},
		{name: "3x is not more than 200%", limit: 200, current: 40, usage: 120, wantUnits: 120},
		{name: "from 0", limit: 200, current: 0, usage: 40000, wantUnits: 40000},
		{name: "new line", limit: 200, current: -1, usage: 40000, wantUnits: 40000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.pol.MaxIncreasePercent = tc.limit
			if tc.current >= 0 {
				h.at.SetUnits(h.contractA, h.svcIntercept, tc.current, etPeriodDay)
			}
			h.writeUsage(fmt.Sprintf("cust-a,Acme,CIXA-MSP,%d", tc.usage))
			res := h.sync(PassOptions{})
			h.wantUnits(h.contractA, h.svcIntercept, tc.wantUnits)
			c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
			if !tc.wantHeld {
				if c == nil || c.Action != ActionUpdate {
					t.Errorf("change = %+v, want update", c)
				}
				return
			}
			svc := strconv.FormatInt(h.svcIntercept, 10)
			if c == nil || c.Action != ActionHeld || c.Hold() != HoldApproval || !strings.Contains(c.Reason,
				"increase of 99900% (from 40 to 40000) held for review: more than max_increase_percent 200; apply with sync --approve --customer cust-a --service "+svc+" --units 40000") {
				t.Errorf("change = %+v, want held for approval", c)
			}
			if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || cs.Held != 1 ||
				!strings.Contains(cs.Hint, "an increase larger than policies.max_increase_percent is held for review") {
				t.Errorf("status = %+v, want held with a hint naming the increase guard", cs)
			}
			if got := h.metric(h.m.LinesTotal.WithLabelValues(LineHeld)); got != 1 {
				t.Errorf("lines{held} = %v, want 1", got)
			}
			if got := h.metric(h.m.HeldLines); got != 1 {
				t.Errorf("held_lines = %v, want 1", got)
			}
			if n := h.adjustmentPosts(); n != 0 {
				t.Errorf("posted %d adjustments while held", n)
			}

			// The usage moves after the review: an approval of the
			// reviewed 40000 leaves the line held, naming both.
			h.writeUsage("cust-a,Acme,CIXA-MSP,50000")
			reviewed := int64(40000)
			res = h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svc, ApproveUnits: &reviewed})
			h.wantUnits(h.contractA, h.svcIntercept, 40)
			if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Hold() != HoldStaleApproval ||
				!strings.Contains(c.Reason, "increase of 124900% (from 40 to 50000) still held for review: the usage changed since the review (reviewed 40000, now 50000)") {
				t.Errorf("change after a stale approval = %+v, want held naming 40000 and 50000", c)
			}
			now := int64(50000)
			res = h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svc, ApproveUnits: &now})
			h.wantUnits(h.contractA, h.svcIntercept, 50000)
			if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionUpdate ||
				!strings.Contains(c.Reason, "increase of 124900% to the reviewed 50000 approved") {
				t.Errorf("change after approving 50000 = %+v, want update", c)
			}

			// An approval without units applies whatever increase the
			// pass computes.
			h.writeUsage("cust-a,Acme,CIXA-MSP,200000")
			res = h.sync(PassOptions{Approve: true, Customer: "cust-a"})
			h.wantUnits(h.contractA, h.svcIntercept, 200000)
			if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionUpdate || !strings.Contains(c.Reason, "increase of 300% approved") {
				t.Errorf("change after an approval without units = %+v, want update", c)
			}
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Errorf("status after approve = %+v, want succeeded", cs)
			}
		})
	}
}

// An approval that names units releases the hold only at the quantity the
// operator reviewed: when usage falls again between the review and the
// approving pass, the larger, unreviewed decrease stays held.
func TestEngine_Sync_approveUnits(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	svc := strconv.FormatInt(h.svcIntercept, 10)
	h.at.SetUnits(h.contractA, h.svcIntercept, 100, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40")
	res := h.sync(PassOptions{})
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionHeld ||
		!strings.Contains(c.Reason, "--customer cust-a --service "+svc+" --units 40") {
		t.Fatalf("reviewed change = %+v, want held with the command that approves 40", c)
	}

	// The operator approves the reviewed 40; usage has dropped to 5 since.
	h.writeUsage("cust-a,Acme,CIXA-MSP,5")
	h.sim.ResetRequests()
	reviewed := int64(40)
	res = h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svc, ApproveUnits: &reviewed})
	h.wantUnits(h.contractA, h.svcIntercept, 100)
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("posted %d adjustments for an approval of other units", n)
	}
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, "usage changed since the review (reviewed 40, now 5)") ||
		!strings.Contains(c.Reason, "--units 5") {
		t.Errorf("change after a stale approval = %+v, want held naming 40 and 5", c)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Error, "reviewed 40, now 5") ||
		!strings.Contains(cs.Hint, "--service "+svc+" --units 5") {
		t.Errorf("status after a stale approval = %+v, want held with the error and a hint", cs)
	}

	// Approving the quantity now shown applies it.
	now := int64(5)
	res = h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svc, ApproveUnits: &now})
	h.wantUnits(h.contractA, h.svcIntercept, 5)
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionUpdate || !strings.Contains(c.Reason, "reviewed 5 approved") {
		t.Errorf("change after approving 5 = %+v, want update", c)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded || cs.Error != "" {
		t.Errorf("status after approving 5 = %+v, want succeeded", cs)
	}
}

// The command a held line's reason and its customer's hint give names the
// billing month the pass synced (with usage_period: previous, the month
// before the pass's), so that run after that month has ended it approves
// the month reviewed rather than the next one; the command, run as given,
// applies the change.
func TestEngine_Sync_approveCommandNamesPeriod(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.UsagePeriod = UsagePeriodPrevious
	svc := strconv.FormatInt(h.svcIntercept, 10)
	h.at.SetUnits(h.contractA, h.svcIntercept, 100, etPeriodDay.AddDate(0, -1, 0))
	content := "customer_id,customer_name,product,quantity,period\n" +
		"cust-a,Acme,CIXA-MSP,40,2026-10\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	res := h.sync(PassOptions{})
	cmd := "sync --approve --customer cust-a --service " + svc + " --units 40 --period 2026-10"
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, cmd) {
		t.Fatalf("held change = %+v, want the command %q", c, cmd)
	}
	if cs := h.status("cust-a"); !strings.Contains(cs.Hint, "--units N --period 2026-10") {
		t.Errorf("hint of the held customer = %q, want it to name the period 2026-10", cs.Hint)
	}
	reviewed := int64(40)
	res = h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svc, ApproveUnits: &reviewed,
		Period: source.Period{Year: 2026, Month: time.October}})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	if res.Run.Period != "2026-10" || res.Run.Updated != 1 {
		t.Errorf("the approving pass: %+v, want October's line updated", res.Run)
	}

	// Usage moves after the review: the stale approval's reason and hint
	// give the command for the new units, of the same month.
	content = "customer_id,customer_name,product,quantity,period\n" +
		"cust-a,Acme,CIXA-MSP,4,2026-10\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	res = h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svc, ApproveUnits: &reviewed})
	cmd = "sync --approve --customer cust-a --service " + svc + " --units 4 --period 2026-10"
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, cmd) {
		t.Errorf("stale approval = %+v, want the command %q", c, cmd)
	}
	if cs := h.status("cust-a"); !strings.Contains(cs.Hint, cmd) {
		t.Errorf("hint after a stale approval = %q, want %q", cs.Hint, cmd)
	}
}

// An approval of one line at the reviewed units that meets a hold no
// approval releases (here November invoiced between the review and the
// approval) writes nothing, and the customer's status says that the
// approval was not applied, and why: psa-syncd sync -units then exits 1,
// rather than 0 with the line still held.
func TestEngine_Sync_approvalRefusedByPostedPeriod(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	svc := strconv.FormatInt(h.svcIntercept, 10)
	h.at.SetUnits(h.contractA, h.svcIntercept, 100, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40")
	if c := etFindChange(h.sync(PassOptions{}).Plan, "cust-a", h.svcIntercept); c == nil || c.Hold() != HoldApproval {
		t.Fatalf("reviewed change = %+v, want held by the guard", c)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || cs.Error != "" {
		t.Errorf("status of a line held by the guard = %+v, want held without an error", cs)
	}
	h.at.PostPeriod(h.contractA, etPeriodDay)
	reviewed := int64(40)
	res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svc, ApproveUnits: &reviewed})
	h.wantUnits(h.contractA, h.svcIntercept, 100)
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Hold() != HoldPosted {
		t.Fatalf("approved change = %+v, want held as posted", c)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Error, "service "+svc+": the approval was not applied") ||
		!strings.Contains(cs.Error, "approved and posted") {
		t.Errorf("status after an approval of a posted line = %+v, want held, saying the approval was not applied and why", cs)
	}
	// A pass that approves nothing says nothing of an approval.
	h.sync(PassOptions{})
	if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || cs.Error != "" {
		t.Errorf("status after a pass without approval = %+v, want held without an error", cs)
	}
}

func TestEngine_Sync_approveUnitsNeedsLine(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	svc := strconv.FormatInt(h.svcIntercept, 10)
	units, negative := int64(4), int64(-1)
	for _, tc := range []struct {
		o    PassOptions
		want string
	}{
		{PassOptions{Approve: true, Customer: "cust-a", ApproveUnits: &units}, "approving units needs the customer, the service and approve"},
		{PassOptions{Customer: "cust-a", ApproveService: svc, ApproveUnits: &units}, "approving one line needs the customer and approve"},
		{PassOptions{Approve: true, Customer: "cust-a", ApproveService: svc, ApproveUnits: &negative}, "approved units -1 are negative"},
	} {
		if _, err := h.engine().Sync(t.Context(), h.doc, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Sync(%+v) error = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestEngine_Sync_readsRetried(t *testing.T) {
	t.Parallel()
	h := newETHarness(t,
		psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: etUnitsPath, Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 1}),
		psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: etUnitsPath, Status: http.StatusServiceUnavailable, Times: 1}),
	)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40")
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	if res.Run.Result != state.RunSuccess {
		t.Errorf("run = %+v, want success after retries", res.Run)
	}
	statuses := map[int]int{}
	for _, r := range h.sim.Requests() {
		if strings.Contains(strings.ToLower(r.Path), "contractserviceunits") {
			statuses[r.Status]++
		}
	}
	if statuses[429] != 1 || statuses[503] != 1 || statuses[200] < 1 {
		t.Errorf("ContractServiceUnits answers = %v, want one 429, one 503, then 200", statuses)
	}
	if got := h.rt.rateLimited.Load(); got != 1 {
		t.Errorf("429 answers seen by the client's transport = %v, want 1", got)
	}
}

func TestEngine_Sync_lostAdjustmentResponseIsNotReposted(t *testing.T) {
	t.Parallel()
	h := newETHarness(t, psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, DropAfterHandling: true, Times: 1}))
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")

	res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := h.adjustmentPosts(); n != 1 {
		t.Errorf("posted %d adjustments, want exactly 1", n)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)

	// Whether the backend confirmed the write by re-reading or left the
	// outcome unknown, the next pass settles it and never posts again.
	res2 := h.sync(PassOptions{})
	if n := h.adjustmentPosts(); n != 1 {
		t.Errorf("after the second pass: %d adjustment POSTs, want 1", n)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	if n := len(h.at.Adjustments()); n != 1 {
		t.Errorf("simulator has %d adjustments, want 1", n)
	}
	if open, _ := h.db.OpenIntents(); len(open) != 0 {
		t.Errorf("open intents left: %+v", open)
	}
	ledger, _ := h.db.Ledger(0)
	if len(ledger) != 1 || ledger[0].Before != 30 || ledger[0].After != 42 {
		t.Errorf("ledger = %+v, want one change 30 -> 42", ledger)
	}
	if res2.Run.Result != state.RunSuccess {
		t.Errorf("second run = %+v (first: %+v)", res2.Run, res.Run)
	}
}

func TestEngine_Sync_openIntentFromACrashIsReconciled(t *testing.T) {
	t.Parallel()
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42")

			// A pass opened the intent and was killed an hour ago (longer
			// than policies.settle_time): either after the adjustment
			// reached Autotask or before.
			in, err := h.db.OpenIntent(state.Intent{RunID: 99, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-a",
				ContractID: etID(h.contractA), ServiceID: etID(h.svcIntercept), Before: 30, After: 42, BeforeKnown: true, EffectiveDate: etPeriodDay,
				Created: etNow.Add(-time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if applied {
				h.at.SetUnits(h.contractA, h.svcIntercept, 42, etPeriodDay)
			}

			res := h.sync(PassOptions{})
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			wantPosts := 0
			if !applied {
				wantPosts = 1
			}
			if n := h.adjustmentPosts(); n != wantPosts {
				t.Errorf("posted %d adjustments, want %d", n, wantPosts)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 0 {
				t.Errorf("open intents left: %+v", open)
			}
			ledger, _ := h.db.Ledger(0)
			if len(ledger) != 1 || ledger[0].IntentID == 0 {
				t.Fatalf("ledger = %+v, want one entry", ledger)
			}
			if applied && ledger[0].IntentID != in.ID {
				t.Errorf("ledger entry is for intent %d, want the reconciled intent %d", ledger[0].IntentID, in.ID)
			}
			if res.Run.Result != state.RunSuccess {
				t.Errorf("run = %+v", res.Run)
			}
		})
	}
}

// TestEngine_Sync_unconfirmedWriteSettles: a write whose answer was lost
// (or whose sender was killed, or lost the active instance's lock) may
// reach the PSA after the next pass read the line. An intent whose line
// still shows the quantity from before is closed as not applied only
// policies.settle_time after its pass ended; until then its line is not
// written, so a late Autotask adjustment (a delta) and its retry never
// add up.
func TestEngine_Sync_unconfirmedWriteSettles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// late is whether the earlier write reaches the PSA while the
		// intent waits.
		late bool
		// running is whether the intent's pass is still recorded as
		// running (another process may be sending its writes).
		running bool
		// changed is whether someone else set the line to 35 before the
		// pass read it: neither the quantity from before nor the one
		// written, and the write (+12) may still land on top of it.
		changed bool
	}{
		{name: "late write arrives", late: true},
		{name: "write never arrives"},
		{name: "pass of another process still running", running: true},
		{name: "line changed by someone else, late write arrives", changed: true, late: true},
		{name: "line changed by someone else, write never arrives", changed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			now := etNow
			h.now = func() time.Time { return now }
			h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42")

			// The pass that opened the intent ended 30 s ago, its write
			// unanswered.
			r := state.Run{Trigger: TriggerSchedule, Started: etNow.Add(-time.Minute), Finished: etNow.Add(-30 * time.Second), Result: state.RunPartial}
			if tc.running {
				r.Finished, r.Result = time.Time{}, state.RunRunning
			}
			run, err := h.db.BeginRun(r)
			if err != nil {
				t.Fatal(err)
			}
			in, err := h.db.OpenIntent(state.Intent{RunID: run.ID, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-a",
				ContractID: etID(h.contractA), ServiceID: etID(h.svcIntercept), Before: 30, After: 42, BeforeKnown: true,
				EffectiveDate: etPeriodDay, Created: etNow.Add(-50 * time.Second)})
			if err != nil {
				t.Fatal(err)
			}

			if tc.changed {
				h.at.SetUnits(h.contractA, h.svcIntercept, 35, etPeriodDay)
			}
			e := h.engine()
			res, err := e.Sync(t.Context(), h.doc, PassOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n := h.adjustmentPosts(); n != 0 {
				t.Fatalf("the pass posted %d adjustments while the earlier write may still arrive", n)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 1 || open[0].ID != in.ID {
				t.Fatalf("open intents = %+v, want intent %d still open", open, in.ID)
			}
			cs := h.status("cust-a")
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "may still arrive") {
				t.Errorf("status of cust-a = %+v, want failed saying the earlier write may still arrive", cs)
			}
			if tc.changed && !strings.Contains(cs.Error, "shows 35, changed by someone else since 30") {
				t.Errorf("status of cust-a = %+v, want the error to say the line was changed by someone else", cs)
			}
			if res.Run.Result == state.RunSuccess {
				t.Errorf("run = %+v, want partial or failed", res.Run)
			}
			at, customers := e.Settling()
			wantAt := etNow.Add(-30 * time.Second).Add(DefaultSettleTime)
			if tc.running {
				wantAt = farFuture
			}
			if !at.Equal(wantAt) || !slices.Equal(customers, []string{"cust-a"}) {
				t.Errorf("Settling() = %v, %q; want %v, [cust-a]", at, customers, wantAt)
			}

			if tc.late {
				// The adjustment of +12 lands on what the line shows.
				h.at.SetUnits(h.contractA, h.svcIntercept, h.units(h.contractA, h.svcIntercept)+12, etPeriodDay)
			}
			now = etNow.Add(DefaultSettleTime)
			e = h.engine()
			if _, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.running {
				if n := h.adjustmentPosts(); n != 0 {
					t.Errorf("posted %d adjustments while the intent's pass is still running elsewhere", n)
				}
				if open, _ := h.db.OpenIntents(); len(open) != 1 {
					t.Errorf("open intents = %+v, want the intent still open", open)
				}
				return
			}
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			wantPosts := 1
			if tc.late && !tc.changed {
				wantPosts = 0
			}
			if n := h.adjustmentPosts(); n != wantPosts {
				t.Errorf("posted %d adjustments after the settle time, want %d", n, wantPosts)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 0 {
				t.Errorf("open intents left: %+v", open)
			}
			if at, customers := e.Settling(); !at.IsZero() || len(customers) != 0 {
				t.Errorf("Settling() = %v, %q after the intent settled", at, customers)
			}
			ledger, _ := h.db.Ledger(0)
			if len(ledger) != 1 || ledger[0].After != 42 {
				t.Errorf("ledger = %+v, want one change to 42", ledger)
			}
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Errorf("status of cust-a = %+v, want succeeded", cs)
			}
		})
	}
}

// lostWriteHarness is an etHarness whose first adjustment post is
// dropped before Autotask handles it (its outcome unknown), cust-a's
// Intercept line at 30 and its usage 42, on a clock that reads *now,
// etNow until the test moves it.
func lostWriteHarness(t *testing.T) (*etHarness, *time.Time) {
	h := newETHarness(t, psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Drop: true, Times: 1}))
	now := etNow
	h.now = func() time.Time { return now }
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	return h, &now
}

// TestEngine_Sync_lostWriteSettlesAfterThePass: a write whose connection
// dropped before the PSA handled it leaves its intent open; the pass says
// when it can be settled (Settling: settle_time after the pass), and the
// pass then writes the line once.
func TestEngine_Sync_lostWriteSettlesAfterThePass(t *testing.T) {
	t.Parallel()
	h, now := lostWriteHarness(t)

	e := h.engine()
	if _, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil {
		t.Fatal(err)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 30)
	open, _ := h.db.OpenIntents()
	if len(open) != 1 {
		t.Fatalf("open intents after the lost write = %+v, want one", open)
	}
	at, customers := e.Settling()
	if !at.Equal(etNow.Add(DefaultSettleTime)) || !slices.Equal(customers, []string{"cust-a"}) {
		t.Errorf("Settling() = %v, %q; want %v, [cust-a]", at, customers, etNow.Add(DefaultSettleTime))
	}

	*now = at
	h.sync(PassOptions{Customer: "cust-a"})
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	if n := len(h.at.Adjustments()); n != 1 {
		t.Errorf("simulator has %d adjustments, want 1", n)
	}
	if open, _ := h.db.OpenIntents(); len(open) != 0 {
		t.Errorf("open intents left: %+v", open)
	}
}

// TestEngine_Sync_unsavedRunSettles: when the state database fails to
// record a pass's end, the run still says "running", which would keep the
// intent of its lost answer (and the line) waiting for ever. The process
// keeps the run, settles by it, and records it at a later pass; psa-syncd
// builds a new Engine for each pass, so every step here uses a new one.
func TestEngine_Sync_unsavedRunSettles(t *testing.T) {
	t.Parallel()
	h, now := lostWriteHarness(t)

	broken := func(int64) bool { return true }
	engine := func() *Engine {
		e := h.engine()
		e.saveRun = func(r state.Run) error {
			if broken(r.ID) {
				return errors.New("disk I/O error")
			}
			return h.db.SaveRun(r)
		}
		return e
	}
	res, err := engine().Sync(t.Context(), h.doc, PassOptions{})
	if err == nil || !strings.Contains(err.Error(), "recording the end of run") {
		t.Fatalf("Sync with the run's record failing = %v, want the error", err)
	}
	first := res.Run.ID
	if r, _, _ := h.db.Run(first); r.Result != state.RunRunning {
		t.Fatalf("run %d recorded as %q, want still running", first, r.Result)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 30)

	// At the settle time the line is written, although the database still
	// records the first pass as running (its record keeps failing).
	broken = func(id int64) bool { return id == first }
	*now = now.Add(DefaultSettleTime)
	if _, err := engine().Sync(t.Context(), h.doc, PassOptions{Customer: "cust-a"}); err != nil {
		t.Fatal(err)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	if n := len(h.at.Adjustments()); n != 1 {
		t.Errorf("simulator has %d adjustments, want 1", n)
	}
	if r, _, _ := h.db.Run(first); r.Result != state.RunRunning {
		t.Errorf("run %d = %q, want still running while its record fails", first, r.Result)
	}

	// Once the database takes it, the next Reconcile records the run.
	broken = func(int64) bool { return false }
	if _, err := engine().Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := h.db.Run(res.Run.ID); r.Result != res.Run.Result || !r.Finished.Equal(res.Run.Finished) {
		t.Errorf("run %d recorded as %q finished %v, want %q finished %v", r.ID, r.Result, r.Finished, res.Run.Result, res.Run.Finished)
	}
}

// TestEngine_Sync_unsavedRunCountsInMetrics: a pass whose end the state
// database fails to record still wrote its lines: it counts in
// psa_sync_runs_total and psa_sync_lines_total and sets the last-run
// gauges, as a failed pass does, instead of showing in no metric.
func TestEngine_Sync_unsavedRunCountsInMetrics(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	e := h.engine()
	e.saveRun = func(state.Run) error { return errors.New("disk I/O error") }
	res, err := e.Sync(t.Context(), h.doc, PassOptions{})
	if err == nil || !strings.Contains(err.Error(), "recording the end of run") {
		t.Fatalf("Sync with the run's record failing = %v, want the error", err)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	if got := testutil.ToFloat64(h.m.RunsTotal.WithLabelValues(res.Run.Result)); got != 1 {
		t.Errorf("runs_total{result=%q} = %v, want 1", res.Run.Result, got)
	}
	if got := testutil.ToFloat64(h.m.LinesTotal.WithLabelValues(LineUpdated)); got != 1 {
		t.Errorf("lines_total{outcome=updated} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.m.LastRunResult.WithLabelValues(res.Run.Result)); got != 1 {
		t.Errorf("last_run_result{result=%q} = %v, want 1", res.Run.Result, got)
	}
	if got := testutil.ToFloat64(h.m.LastRunTimestamp); got != unixSeconds(res.Run.Finished) {
		t.Errorf("last_run_timestamp_seconds = %v, want the run's end %v", got, unixSeconds(res.Run.Finished))
	}
}

// TestEngine_Plan_openIntent: a plan, a dry run and a pass at the same
// moment agree on a line whose earlier write's answer was lost: while the
// write may still arrive, all three fail the line with the time it
// settles; after that, all three update it.
func TestEngine_Plan_openIntent(t *testing.T) {
	t.Parallel()
	// changed: someone else sets the line to 35 after the lost write (of
	// +12, which may still land on top of it).
	for _, changed := range []bool{false, true} {
		t.Run(fmt.Sprintf("changed=%v", changed), func(t *testing.T) {
			t.Parallel()
			h, now := lostWriteHarness(t)
			if _, err := h.engine().Sync(t.Context(), h.doc, PassOptions{}); err != nil {
				t.Fatal(err)
			}
			if changed {
				h.at.SetUnits(h.contractA, h.svcIntercept, 35, etPeriodDay)
			}

			check := func(when string, want string, reason string) {
				t.Helper()
				p := h.plan(PassOptions{})
				dry := h.sync(PassOptions{DryRun: true})
				for name, plan := range map[string]*Plan{"plan": p, "dry run": dry.Plan} {
					c := etFindChange(plan, "cust-a", h.svcIntercept)
					if c == nil || c.Action != want || !strings.Contains(c.Reason, reason) {
						t.Errorf("%s: %s = %+v, want %s with %q", when, name, c, want, reason)
					}
				}
				if n := len(h.at.Adjustments()); n != 0 {
					t.Fatalf("%s: %d adjustments after a plan and a dry run, want none", when, n)
				}
			}
			settles := etNow.Add(DefaultSettleTime).UTC().Format(time.RFC3339)
			shows := "still shows 30,"
			if changed {
				shows = "shows 35, changed by someone else since 30,"
			}
			*now = etNow.Add(30 * time.Second)
			check("before the settle time", ActionFailed, shows+" and the write of 42 may still arrive until "+settles)
			res := h.sync(PassOptions{})
			if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c.Action != ActionFailed || !strings.Contains(c.Reason, "may still arrive until "+settles) {
				t.Errorf("pass before the settle time = %+v, want failed as the plan said", c)
			}

			*now = etNow.Add(DefaultSettleTime)
			check("at the settle time", ActionUpdate, "usage 42")
			res = h.sync(PassOptions{})
			if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c.Action != ActionUpdate {
				t.Errorf("pass at the settle time = %+v, want update as the plan said", c)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 42)
		})
	}
}

func TestEngine_Reconcile(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 42, etPeriodDay) // applied
	h.at.SetUnits(h.contractA, h.svcMDR, 5, etPeriodDay)        // not applied
	h.at.SetUnits(h.contractB, h.svcIntercept, 7, etPeriodDay)  // changed by someone else
	open := func(contract, service, before, after int64) state.Intent {
		in, err := h.db.OpenIntent(state.Intent{RunID: 1, System: psa.SystemAutotask, Source: "file", CustomerID: "c",
			ContractID: etID(contract), ServiceID: etID(service), Before: before, After: after, BeforeKnown: true, EffectiveDate: etPeriodDay})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	open(h.contractA, h.svcIntercept, 30, 42)
	open(h.contractA, h.svcMDR, 5, 9)
	open(h.contractB, h.svcIntercept, 3, 4)

	n, err := NewEngine(EngineOptions{Backend: h.be, State: h.db}).Reconcile(t.Context())
	if err != nil || n != 3 {
		t.Fatalf("Reconcile = %d, %v; want 3, nil", n, err)
	}
	ledger, _ := h.db.Ledger(0)
	if len(ledger) != 1 || ledger[0].ContractID != etID(h.contractA) || ledger[0].After != 42 {
		t.Errorf("ledger = %+v, want only the applied change", ledger)
	}
	if left, _ := h.db.OpenIntents(); len(left) != 0 {
		t.Errorf("open intents left: %+v", left)
	}
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("Reconcile posted %d adjustments", n)
	}

	// A read failure leaves the intent open and says so.
	open(h.contractA, h.svcIntercept, 42, 50)
	h.sim.AddFault(psatest.Fault{Path: etUnitsPath, Status: http.StatusUnauthorized})
	n, err = NewEngine(EngineOptions{Backend: h.be, State: h.db}).Reconcile(t.Context())
	if err == nil || n != 0 {
		t.Errorf("Reconcile with the PSA failing = %d, %v; want 0 and an error", n, err)
	}
	if left, _ := h.db.OpenIntents(); len(left) != 1 {
		t.Errorf("open intents = %+v, want the unread one still open", left)
	}
}

func TestEngine_Sync_badContractFailsOnlyThatCustomer(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-c", CustomerName: "Hooli", CompanyID: "1", ContractID: "999999", UsageSync: true})
	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-e", CustomerName: "Umbrella", CompanyID: "1", ContractID: "C-17", UsageSync: true})
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10", "cust-c,Hooli,CIXA-MSP,5", "cust-e,Umbrella,CIXA-MSP,5")

	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}
	cs := h.status("cust-c")
	wantHint := "contract 999999 not found in autotask: check contract_id of customer mapping file/cust-c or re-run terraform apply"
	if cs.Result != state.CustomerFailed || cs.Hint != wantHint || !strings.Contains(cs.Error, "999999") {
		t.Errorf("status of cust-c = %+v\nwant failed with hint %q", cs, wantHint)
	}
	for _, c := range []string{"cust-a", "cust-b"} {
		if cs := h.status(c); cs.Result != state.CustomerSucceeded {
			t.Errorf("status of %s = %+v, want succeeded", c, cs)
		}
	}
	cs = h.status("cust-e")
	wantHint = `autotask refused to read contract C-17 (invalid contract id "C-17": Autotask ids are non-negative integers): check contract_id of customer mapping file/cust-e or re-run terraform apply`
	if cs.Result != state.CustomerFailed || cs.Hint != wantHint {
		t.Errorf("status of cust-e = %+v\nwant failed with hint %q", cs, wantHint)
	}
	if got := h.metric(h.m.Customers.WithLabelValues("failed")); got != 2 {
		t.Errorf("customers{failed} = %v, want 2", got)
	}
	if got := h.metric(h.m.RunsTotal.WithLabelValues("partial")); got != 1 {
		t.Errorf("runs_total{partial} = %v, want 1", got)
	}
	if len(res.Plan.Failures) != 2 || res.Plan.Failures[0].CustomerID != "cust-c" {
		t.Errorf("plan failures = %+v", res.Plan.Failures)
	}
}

func TestEngine_Sync_twoCustomersOnOneContract(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-d", CustomerName: "Acme East", CompanyID: "1", ContractID: etID(h.contractA), UsageSync: true})
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10", "cust-d,Acme East,CIXA-MSP,5")
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 0)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	for _, c := range []string{"cust-a", "cust-d"} {
		if cs := h.status(c); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "is mapped to 2 customers") {
			t.Errorf("status of %s = %+v, want failed", c, cs)
		}
	}
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}
}

// TestEngine_Sync_twoCustomersOnOneContractSpelledTwoWays checks that a
// contract id with a leading zero counts as the contract it names when two
// customers share a contract: both would write its line.
func TestEngine_Sync_twoCustomersOnOneContractSpelledTwoWays(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-d", CustomerName: "Acme East", CompanyID: "1", ContractID: "0" + etID(h.contractA), UsageSync: true})
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10", "cust-d,Acme East,CIXA-MSP,5")
	h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 0)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	for _, c := range []string{"cust-a", "cust-d"} {
		if cs := h.status(c); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "is mapped to 2 customers") {
			t.Errorf("status of %s = %+v, want failed", c, cs)
		}
	}
}

func TestEngine_Sync_budgetReserveStopsWriting(t *testing.T) {
	t.Parallel()
	h := newETHarness(t, psatest.WithHourlyLimit(10000))
	h.at.SetHourlyCount(9600)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	res := h.sync(PassOptions{})
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("posted %d adjustments with the budget at the reserve", n)
	}
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}
	for _, c := range []string{"cust-a", "cust-b"} {
		if cs := h.status(c); cs.Result != state.CustomerSkipped || !strings.Contains(cs.Error, "budget") {
			t.Errorf("status of %s = %+v, want skipped", c, cs)
		}
	}
	for _, c := range res.Plan.Changes {
		if c.Action != ActionSkipped {
			t.Errorf("change %+v, want skipped", c)
		}
	}
	if got := h.metric(h.m.APIBudgetRemaining.WithLabelValues("")); got <= 0 || got > 500 {
		t.Errorf("api_budget_remaining = %v, want the remaining budget (at most 500)", got)
	}
	if got := h.metric(h.m.Customers.WithLabelValues("skipped")); got != 2 {
		t.Errorf("customers{skipped} = %v, want 2", got)
	}
}

// TestEngine_Sync_unreadableUsageRowFailsItsCustomer is the issue's
// reproduction: with max_decrease_percent 0, a row "2c9f…,CIXA-MSP,4x2" was
// skipped with a warning, the line went from 42 to 0 and the run was a
// success. Now the customer of the row fails with the file and row named,
// its line keeps 42, the other customer is synced, and the run is partial.
func TestEngine_Sync_unreadableUsageRowFailsItsCustomer(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.MaxDecreasePercent = 0
	h.at.SetUnits(h.contractB, h.svcIntercept, 42, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,4x2", "cust-b,Globex,ZTNA,y")
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 42)
	if len(res.Plan.Problems) != 2 || !strings.Contains(res.Plan.Problems[0].String(), "usage.csv:3") {
		t.Errorf("problems = %v, want usage.csv:3 and usage.csv:4", res.Plan.Problems)
	}
	if res.Run.Result == state.RunSuccess {
		t.Errorf("run result = %s, want not success: %+v", res.Run.Result, res.Run)
	}
	cs := h.status("cust-b")
	if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, `usage.csv:3: quantity "4x2" is not a whole number`) {
		t.Errorf("cust-b status = %s %q, want failed naming usage.csv:3", cs.Result, cs.Error)
	}
	// ZTNA is not mapped: its bad row cannot change a quantity.
	if strings.Contains(cs.Error, "usage.csv:4") {
		t.Errorf("cust-b error names the row of an unmapped product: %q", cs.Error)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
		t.Errorf("cust-a status = %s %q, want succeeded", cs.Result, cs.Error)
	}
}

// TestEngine_Sync_nearMissIDsFailTheCustomer: usage under a customer id or
// a product code that differs from a mapped one only in case, spaces or
// invisible characters ("CUST-B", a zero-width space before "cust-b",
// "cixa-msp") matches no mapping, yet is almost certainly the mapped
// customer's or product's: billing the mapped customer without it would
// lower its lines (to 0 here, with the decrease guard off). That customer
// fails instead, naming both spellings, and its lines keep their quantity;
// the usage is still listed as unmapped. A row under such an id that
// cannot be read fails that customer too, whether the customer id or the
// product is spelled otherwise (the product's was taken for an unmapped
// product's, and cust-b's line went to 0). An id that differs otherwise
// ("cust-bb") is only unmapped, as before.
func TestEngine_Sync_nearMissIDsFailTheCustomer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, row, want, hint string
		unmapped              int
	}{
		{"customer case", "CUST-B,Globex,CIXA-MSP,40", `usage.csv:3: customer id "CUST-B" matches no customer mapping but differs from the mapped customer "cust-b" only in case, spaces, invisible characters or leading zeros`, "fix the id", 2},
		{"customer invisible", "\u200bcust-b,Globex,CIXA-MSP,40", `usage.csv:3: customer id "\u200bcust-b" matches no customer mapping but differs from the mapped customer "cust-b" only in case, spaces, invisible characters or leading zeros`, "fix the id", 2},
		{"product case", "cust-b,Globex,cixa-msp,40", `usage.csv:3: product "cixa-msp" matches no product mapping but differs from the mapped product "CIXA-MSP" only in case, spaces, invisible characters or leading zeros`, "fix the id", 2},
		{"unreadable row", "CUST-B,Globex,CIXA-MSP,4x", `usage.csv:3: quantity "4x" is not a whole number (customer id "CUST-B", which differs from the mapped customer "cust-b" only in case, spaces, invisible characters or leading zeros)`, "fix the usage rows", 1},
		{"unreadable row of a product", "cust-b,Globex,cixa-msp,4x", `usage.csv:3: quantity "4x" is not a whole number (product "cixa-msp", which differs from the mapped product "CIXA-MSP" only in case, spaces, invisible characters or leading zeros)`, "fix the usage rows", 1},
		// A spreadsheet reads a code of digits as a number, and saves it
		// without its leading zeros.
		{"product leading zeros", "cust-b,Globex,42,40", `usage.csv:3: product "42" matches no product mapping but differs from the mapped product "0042" only in case, spaces, invisible characters or leading zeros`, "fix the id", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "0042", ServiceID: etID(h.svcIntercept), ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
			h.pol.MaxDecreasePercent = 0
			h.at.SetUnits(h.contractB, h.svcIntercept, 42, etPeriodDay)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", tc.row, "cust-bb,Initech,CIXA-MSP,7")
			res := h.sync(PassOptions{})
			h.wantUnits(h.contractA, h.svcIntercept, 40)
			h.wantUnits(h.contractB, h.svcIntercept, 42)
			cs := h.status("cust-b")
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, tc.want) || !strings.Contains(cs.Hint, tc.hint) {
				t.Errorf("cust-b status = %s %q (hint %q), want failed with %q", cs.Result, cs.Error, cs.Hint, tc.want)
			}
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Errorf("cust-a status = %s %q, want succeeded", cs.Result, cs.Error)
			}
			if res.Run.Result == state.RunSuccess {
				t.Errorf("run result = %s, want not success", res.Run.Result)
			}
			u := res.Plan.Unmapped
			if len(u.Customers)+len(u.Products) != tc.unmapped {
				t.Errorf("unmapped = %+v, want %d listed (cust-bb, and the near miss when it could be read)", u, tc.unmapped)
			}
			if strings.Contains(cs.Error, "cust-bb") {
				t.Errorf("cust-b error names cust-bb, which is not a near miss: %q", cs.Error)
			}
		})
	}
}

// TestNearIDs: the ids an unmapped one differs from only in spelling; of
// digits only, a spreadsheet drops their leading zeros ("00731" saved as
// 731), which billed the mapped customer without that usage.
func TestNearIDs(t *testing.T) {
	t.Parallel()
	near := nearIDs{ids: slices.Values([]string{"00731", "cust-b", "0", "0x10", "A-0042"})}
	for id, want := range map[string][]string{
		"731":        {"00731"},
		"0731":       {"00731"},
		" 731\u200b": {"00731"},
		"7310":       nil,
		"000":        {"0"},
		"CUST-B":     {"cust-b"},
		"0X10":       {"0x10"},
		"x10":        nil,
		"a-42":       nil,
	} {
		if got := near.of(id); !slices.Equal(got, want) {
			t.Errorf("near ids of %q = %q, want %q", id, got, want)
		}
	}
}

// TestEngine_Sync_unreadableRowOfUnknownCustomerFailsThePass: a row that
// cannot even be split into columns may be anyone's usage, so nothing is
// written and the pass fails naming the row. Here a comma not quoted in a
// name shifts the customer_id after it.
func TestEngine_Sync_unreadableRowOfUnknownCustomerFailsThePass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.MaxDecreasePercent = 0
	h.at.SetUnits(h.contractB, h.svcIntercept, 42, etPeriodDay)
	content := "customer_name,customer_id,product,quantity\nAcme,cust-a,CIXA-MSP,40\nGlobex, Inc.,cust-b,CIXA-MSP,7\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
	if err == nil || !strings.Contains(err.Error(), "usage.csv:3: row has 5 columns, the header has 4") {
		t.Fatalf("Sync error = %v, want the pass to fail naming usage.csv:3", err)
	}
	if res == nil || res.Run.Result != state.RunFailure {
		t.Errorf("Sync result = %+v, want a failed run", res)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 0)
	h.wantUnits(h.contractB, h.svcIntercept, 42)
}

// TestEngine_Sync_rowOfOtherColumnsFailsItsCustomer: a row that splits into
// another number of columns than the header's (a comma not quoted in a
// name, a column left out) failed the whole pass, though its customer_id,
// the first column, is what it says: nothing before it can shift it. It
// fails that customer alone; the others are written.
func TestEngine_Sync_rowOfOtherColumnsFailsItsCustomer(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.MaxDecreasePercent = 0
	h.at.SetUnits(h.contractB, h.svcIntercept, 42, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex, Inc.,CIXA-MSP,7")
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 42)
	if cs := h.status("cust-b"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "usage.csv:3: row has 5 columns, the header has 4") {
		t.Errorf("cust-b status = %s %q, want failed naming usage.csv:3", cs.Result, cs.Error)
	}
	if res.Run.Result != state.RunPartial {
		t.Errorf("run result = %s, want partial", res.Run.Result)
	}
}

// TestEngine_Sync_badRowOfAnotherPeriodIsOnlyReported: the file source
// checked a row's quantity before its period, so a typo in October's row
// ("3O") failed cust-a's November pass and its line stayed at 30. A row of
// another period is not this period's usage, whatever else is wrong with
// it: it is reported and the line is written.
func TestEngine_Sync_badRowOfAnotherPeriodIsOnlyReported(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	content := "customer_id,product,quantity,period\ncust-a,CIXA-MSP,3O,2026-10\ncust-a,CIXA-MSP,42,2026-11\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
		t.Errorf("cust-a status = %s %q, want succeeded", cs.Result, cs.Error)
	}
	if len(res.Plan.Problems) != 1 || res.Plan.Problems[0].String() != "usage.csv:2: period 2026-10 is not the requested period 2026-11" {
		t.Errorf("problems = %v, want usage.csv:2 reported as another period", res.Plan.Problems)
	}
}

// TestEngine_Sync_csvStrayQuoteFailsItsCustomer: a CSV row that cannot be
// split into columns for a quote in its customer name failed the whole
// pass, every customer of the file, until the file was fixed. Its customer,
// the first column, read before the fault, fails alone; the others sync.
func TestEngine_Sync_csvStrayQuoteFailsItsCustomer(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", `cust-b,"Globex "Intl"",CIXA-MSP,5`)
	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %s %q, want partial", res.Run.Result, res.Run.Error)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 30)
	if cs := h.status("cust-b"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "usage.csv:3") {
		t.Errorf("cust-b status = %s %q, want failed naming usage.csv:3", cs.Result, cs.Error)
	}
}

// TestEngine_Sync_csvSwallowedRowsFailTheirCustomers: a quote left open in
// cust-b's name and closed by a stray one in its next row read the two rows
// as one, with the header's number of columns; the record failed the whole
// pass, cust-a's line was not written. Each line the record runs over, split
// on its own, fails the customer of its first column; cust-a syncs.
func TestEngine_Sync_csvSwallowedRowsFailTheirCustomers(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage(`cust-b,"Globex,CIXA-MSP,5`, `cust-b,Globex",CIXA-MSP,6`, "cust-a,Acme,CIXA-MSP,40")
	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %s %q, want partial", res.Run.Result, res.Run.Error)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 30)
	if cs := h.status("cust-b"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "usage.csv:2: the quoted customer_name field runs from line 2 to line 3") {
		t.Errorf("cust-b status = %s %q, want failed naming usage.csv:2", cs.Result, cs.Error)
	}
}

// TestEngine_Sync_csvQuoteLeftOpenFailsTheCustomersOfItsLines: a quote left
// open in cust-b's name and closed in its next row so that the record has
// another number of columns than the header, or not closed where a field
// ends (a parse error), failed the whole pass: cust-a's line was not
// written. Each line the record runs over fails the customer of its first
// column; cust-a syncs.
func TestEngine_Sync_csvQuoteLeftOpenFailsTheCustomersOfItsLines(t *testing.T) {
	t.Parallel()
	for _, next := range []string{`cust-b,Globex",x,CIXA-MSP,6`, `cust-b,"Globex, Inc",CIXA-MSP,6`} {
		h := newETHarness(t)
		h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
		h.at.SetUnits(h.contractB, h.svcIntercept, 30, etPeriodDay)
		h.writeUsage(`cust-b,"Globex,CIXA-MSP,5`, next, "cust-a,Acme,CIXA-MSP,40")
		res := h.sync(PassOptions{})
		if res.Run.Result != state.RunPartial {
			t.Errorf("%s: run = %s %q, want partial", next, res.Run.Result, res.Run.Error)
		}
		h.wantUnits(h.contractA, h.svcIntercept, 40)
		h.wantUnits(h.contractB, h.svcIntercept, 30)
		if cs := h.status("cust-b"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "usage.csv:2: ") || !strings.Contains(cs.Error, "runs from line 2 to line 3") {
			t.Errorf("%s: cust-b status = %s %q, want failed naming usage.csv:2 and its lines", next, cs.Result, cs.Error)
		}
	}
}

// TestEngine_Sync_csvOfSemicolons: Excel where a comma is the decimal
// separator saves "CSV" with ";" between the columns, and may start it
// with a "sep=;" line; a sheet with sep=; typed into cell A1 and saved as
// "CSV (Macintosh)" starts with sep=;;; and ends every line in a carriage
// return alone. Such files were refused whole (the pass failed); each is
// read as a file of commas and line feeds: a name in quotes holds a ";",
// and a decimal comma fails its customer only, named at its line of the
// file.
func TestEngine_Sync_csvOfSemicolons(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"excel":     "\ufeffsep=;\r\ncustomer_id;customer_name;product;quantity\r\ncust-a;\"Acme; Inc.\";CIXA-MSP;40\r\ncust-b;Globex;CIXA-MSP;5,5\r\n",
		"mac sheet": "sep=;;;\rcustomer_id;customer_name;product;quantity\rcust-a;\"Acme; Inc.\";CIXA-MSP;40\rcust-b;Globex;CIXA-MSP;5,5\r",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
			h.at.SetUnits(h.contractB, h.svcIntercept, 30, etPeriodDay)
			if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			res := h.sync(PassOptions{})
			if res.Run.Result != state.RunPartial {
				t.Errorf("run = %s %q, want partial", res.Run.Result, res.Run.Error)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 40)
			h.wantUnits(h.contractB, h.svcIntercept, 30)
			if cs := h.status("cust-b"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, `usage.csv:4: quantity "5,5" is not a whole number`) {
				t.Errorf("cust-b status = %s %q, want failed naming usage.csv:4", cs.Result, cs.Error)
			}
		})
	}
}

// TestEngine_Sync_idInScientificNotation: a spreadsheet wrote a long id as
// "1.23457E+15", its last digits lost. Read as an unmapped id, its usage
// was missing from the mapped customer's (or product's) sum, whose line
// went to 0. A customer_id so fails the pass (whose usage it is cannot be
// told), a product so fails the row's customer.
func TestEngine_Sync_idInScientificNotation(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.MaxDecreasePercent = 0
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 42, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "1.23457E+15,Globex,CIXA-MSP,5")
	res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
	if err == nil || !strings.Contains(err.Error(), `usage.csv:3: customer_id "1.23457E+15" is a number a spreadsheet wrote in scientific notation`) {
		t.Fatalf("Sync error = %v, want the pass to fail naming usage.csv:3", err)
	}
	if res == nil || res.Run.Result != state.RunFailure {
		t.Errorf("Sync result = %+v, want a failed run", res)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 30)
	h.wantUnits(h.contractB, h.svcIntercept, 42)

	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,4.2E+11,5")
	h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 42)
	if cs := h.status("cust-b"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, `usage.csv:3: product "4.2E+11" is a number`) {
		t.Errorf("cust-b status = %s %q, want failed naming usage.csv:3", cs.Result, cs.Error)
	}
}

// TestEngine_Sync_jsonRepeatedCustomerIDFailsThePass: encoding/json keeps
// the last of a key given twice, so a row with "customer_id" twice billed
// the second customer. Whose usage such a row is cannot be told, so it is
// treated as a row that cannot be split into columns: nothing is written
// and the pass fails naming the row. A key other than customer_id repeated
// fails the row's customer only.
func TestEngine_Sync_jsonRepeatedCustomerIDFailsThePass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.usage = filepath.Join(t.TempDir(), "usage.json")
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 30, etPeriodDay)
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`[{"customer_id": "cust-a", "product": "CIXA-MSP", "quantity": 40},
{"customer_id": "cust-a", "customer_id": "cust-b", "product": "CIXA-MSP", "quantity": 5}]`)
	res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
	if err == nil || !strings.Contains(err.Error(), `usage.json:2: key "customer_id" appears twice`) {
		t.Fatalf("Sync error = %v, want the pass to fail naming usage.json:2", err)
	}
	if res == nil || res.Run.Result != state.RunFailure {
		t.Errorf("Sync result = %+v, want a failed run", res)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 30)
	h.wantUnits(h.contractB, h.svcIntercept, 30)

	write(`[{"customer_id": "cust-a", "product": "CIXA-MSP", "quantity": 40},
{"customer_id": "cust-b", "product": "CIXA-MSP", "quantity": 5, "quantity": 500}]`)
	h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 30)
	if cs := h.status("cust-b"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, `usage.json:2: key "quantity" appears twice`) {
		t.Errorf("cust-b status = %s %q, want failed naming usage.json:2", cs.Result, cs.Error)
	}
}

// TestEngine_Sync_usageOverflowFails: two rows of the largest int64 for one
// line gave a desired quantity of -2. Now the customer fails; so does a
// customer whose products on one service add up past it.
func TestEngine_Sync_usageOverflowFails(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 42, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 42, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,9223372036854775807", "cust-a,Acme,CIXA-MSP,9223372036854775807",
		"cust-b,Globex,CIXA-MSP,9223372036854775807", "cust-b,Globex,CIXA-SRV,1")
	res := h.sync(PassOptions{Approve: true})
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	h.wantUnits(h.contractB, h.svcIntercept, 42)
	for _, c := range res.Plan.Changes {
		if c.Desired < 0 || c.Action == ActionUpdate {
			t.Errorf("change %+v, want no update and no negative quantity", c)
		}
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "usage.csv:2") || !strings.Contains(cs.Error, "usage.csv:3") {
		t.Errorf("cust-a status = %s %q, want failed naming usage.csv:2 and 3", cs.Result, cs.Error)
	}
	if cs := h.status("cust-b"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "adds up to more than") {
		t.Errorf("cust-b status = %s %q, want failed for the overflow", cs.Result, cs.Error)
	}
	if res.Run.Result == state.RunSuccess {
		t.Errorf("run result = %s, want not success", res.Run.Result)
	}
}

func TestEngine_Sync_emptyUsageKeepsLines(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.MaxDecreasePercent = 0
	h.at.SetUnits(h.contractA, h.svcIntercept, 12, etPeriodDay)
	h.writeUsage()
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 12)
	if len(res.Plan.Problems) != 1 || !strings.Contains(res.Plan.Problems[0].String(), "no usage at all") {
		t.Errorf("problems = %v", res.Plan.Problems)
	}
}

// TestEngine_Sync_noMappedUsageKeepsLines: a report whose rows feed no
// mapped line (rows of no customer, of an unknown customer, of an unmapped
// product) is a problem with the report, like an empty one: lines are
// kept, not set to 0 (here with the decrease guard off).
func TestEngine_Sync_noMappedUsageKeepsLines(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.MaxDecreasePercent = 0
	h.at.SetUnits(h.contractA, h.svcIntercept, 12, etPeriodDay)
	h.writeUsage(",,CIXA-MSP,40", "cust-renamed,Acme,CIXA-MSP,12", "cust-a,Acme,NEW-CODE,12")
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 12)
	found := false
	for _, p := range res.Plan.Problems {
		found = found || strings.Contains(p.String(), "feeds a mapped line (3 rows")
	}
	if !found {
		t.Errorf("problems = %v, want one saying no row feeds a mapped line", res.Plan.Problems)
	}

	// One row for a mapped line is enough: the others are set to 0.
	h.writeUsage("cust-b,Globex,CIXA-MSP,5")
	h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 0)
	h.wantUnits(h.contractB, h.svcIntercept, 5)
}

// TestEngine_Sync_usageMissingMetric: a pass over all customers whose
// report sets no mapped line (no usage at all, as for a month whose
// report the vendor has not published, or rows only of ids the export
// does not map) leaves every line as it was. It succeeded, and nothing
// said that the month's invoices would carry the quantities of before:
// it is partial now, with an error saying why (so PsaSyncPartial fires,
// and PsaSyncEndedMonthNotSynced once the month has ended), and
// psa_sync_last_run_usage_missing says so. A dry run and a pass for one
// customer leave the gauge; a pass whose usage sets a line clears it, and
// so does one while the export maps nothing to bill, which succeeds.
func TestEngine_Sync_usageMissingMetric(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 12, etPeriodDay)
	step := func(name string, o PassOptions, want float64) {
		t.Helper()
		res := h.sync(o)
		switch {
		case want == 1 && o.Customer == "" && !o.DryRun:
			if res.Run.Result != state.RunPartial || !strings.Contains(res.Run.Error, "no usage sets a mapped line") {
				t.Errorf("%s: run = %s %q, want partial, saying that no usage sets a line", name, res.Run.Result, res.Run.Error)
			}
		case res.Run.Result != state.RunSuccess:
			t.Errorf("%s: run result = %s %q, want success", name, res.Run.Result, res.Run.Error)
		}
		if got := h.metric(h.m.UsageMissing); got != want {
			t.Errorf("%s: psa_sync_last_run_usage_missing = %v, want %v", name, got, want)
		}
	}
	// restored is the gauge a restart sets from the state database: the
	// value of the last pass that set it, so that PsaSyncUsageMissing,
	// not PsaSyncPartial, goes on speaking for a partial result restored.
	restored := func(name string, want float64) {
		t.Helper()
		m := NewMetrics(prometheus.NewRegistry(), psa.SystemAutotask)
		if err := NewEngine(EngineOptions{Backend: h.be, State: h.db, Metrics: m, Now: func() time.Time { return etNow }}).RestoreMetrics(nil); err != nil {
			t.Fatal(err)
		}
		if got := h.metric(m.UsageMissing); got != want {
			t.Errorf("%s: psa_sync_last_run_usage_missing restored at start-up = %v, want %v", name, got, want)
		}
	}
	restored("before any pass", 0)
	h.writeUsage()
	step("no usage at all", PassOptions{}, 1)
	restored("no usage at all", 1)
	h.writeUsage("cust-a,Acme,CIXA-MSP,12")
	step("dry run", PassOptions{DryRun: true}, 1)
	step("one customer", PassOptions{Customer: "cust-a"}, 1)
	restored("one customer", 1)
	step("usage", PassOptions{}, 0)
	restored("usage", 0)
	h.writeUsage("cust-renamed,Acme,CIXA-MSP,12", "cust-a,Acme,NEW-CODE,12")
	step("only unmapped usage", PassOptions{}, 1)
	// A pass that fails (the source unreadable) sets 0: PsaSyncFailing
	// speaks for it, and a 1 kept from the pass before would fire
	// PsaSyncUsageMissing beside it and silence PsaSyncStale. A pass for
	// one customer that fails leaves it.
	failed := func(name string, o PassOptions, want float64) {
		t.Helper()
		if res, err := h.engine().Sync(t.Context(), h.doc, o); err == nil || res == nil || res.Run.Result != state.RunFailure {
			t.Fatalf("%s: Sync = %+v, %v; want a recorded failure", name, res, err)
		}
		if got := h.metric(h.m.UsageMissing); got != want {
			t.Errorf("%s: psa_sync_last_run_usage_missing = %v, want %v", name, got, want)
		}
		restored(name, want)
	}
	if err := os.Remove(h.usage); err != nil {
		t.Fatal(err)
	}
	failed("one customer, source unreadable", PassOptions{Customer: "cust-a"}, 1)
	failed("source unreadable", PassOptions{}, 0)
	h.writeUsage()
	step("no usage again", PassOptions{}, 1)
	for i := range h.doc.CustomerMappings {
		h.doc.CustomerMappings[i].UsageSync = false
	}
	h.writeUsage()
	step("nothing mapped to bill", PassOptions{}, 0)
	h.wantUnits(h.contractA, h.svcIntercept, 12)
}

// TestMetrics_PassRefusedUsageMissing: a scheduled pass refused before it
// recorded a run is a failed pass for the gauges, psa_sync_last_run_usage_missing
// included, as TestEngine_Sync_usageMissingMetric's failed pass.
func TestMetrics_PassRefusedUsageMissing(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry(), psa.SystemAutotask)
	m.UsageMissing.Set(1)
	m.PassRefused(etNow)
	if got := testutil.ToFloat64(m.LastRunResult.WithLabelValues(state.RunFailure)); got != 1 {
		t.Errorf("psa_sync_last_run_result{result=failure} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.UsageMissing); got != 0 {
		t.Errorf("psa_sync_last_run_usage_missing = %v after a refused pass, want 0", got)
	}
}

func TestEngine_Sync_sourceFailureFailsThePass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t) // the usage file is never written
	res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
	if err == nil || res == nil || res.Run.Result != state.RunFailure || res.Run.ID == 0 {
		t.Fatalf("Sync without usage = %+v, %v; want a recorded failure", res, err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
	if got := h.metric(h.m.RunsTotal.WithLabelValues("failure")); got != 1 {
		t.Errorf("runs_total{failure} = %v, want 1", got)
	}
	if got := h.metric(h.m.LastSuccessTimestamp); got != 0 {
		t.Errorf("last_success_timestamp_seconds = %v after a failure, want 0", got)
	}
}

// TestEngine_Sync_previousUsagePeriod: with usage_period: previous a pass
// on 21 November syncs October's usage (the rows of November are another
// period), dated on 1 November with next_period_start, and records the
// run's period as October.
func TestEngine_Sync_previousUsagePeriod(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.UsagePeriod = UsagePeriodPrevious
	h.pol.EffectiveDate = EffectiveNextPeriodStart
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	content := "customer_id,customer_name,product,quantity,period\n" +
		"cust-a,Acme,CIXA-MSP,42,2026-10\n" +
		"cust-a,Acme,CIXA-MSP,99,2026-11\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	if res.Run.Period != "2026-10" || res.Plan.Period.String() != "2026-10" || !res.Plan.EffectiveDate.Equal(etPeriodDay) {
		t.Errorf("run period %s, plan period %s, effective %s; want 2026-10, 2026-10, %s", res.Run.Period, res.Plan.Period, res.Plan.EffectiveDate, etPeriodDay)
	}
}

func TestEngine_effectiveDate(t *testing.T) {
	t.Parallel()
	rome, err := schedule.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	// 23:30 UTC on 31 October is already 1 November in Rome.
	now := time.Date(2026, time.October, 31, 23, 30, 0, 0, time.UTC).In(rome)
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		usage, effective string
		period           source.Period
		want             time.Time
	}{
		{UsagePeriodCurrent, EffectivePeriodStart, source.Period{Year: 2026, Month: time.November}, day(time.November, 1)},
		{UsagePeriodCurrent, EffectiveToday, source.Period{Year: 2026, Month: time.November}, day(time.November, 1)},
		{UsagePeriodCurrent, EffectiveNextPeriodStart, source.Period{Year: 2026, Month: time.November}, day(time.December, 1)},
		// October's usage, synced on 1 November: dated in October, on
		// the day of the pass, or from November (billing in arrears on
		// the next invoice).
		{UsagePeriodPrevious, EffectivePeriodStart, source.Period{Year: 2026, Month: time.October}, day(time.October, 1)},
		{UsagePeriodPrevious, EffectiveToday, source.Period{Year: 2026, Month: time.October}, day(time.November, 1)},
		{UsagePeriodPrevious, EffectiveNextPeriodStart, source.Period{Year: 2026, Month: time.October}, day(time.November, 1)},
	} {
		e := NewEngine(EngineOptions{Policies: Policies{UsagePeriod: tc.usage, EffectiveDate: tc.effective}, Location: rome})
		p := e.period(now)
		if p != tc.period {
			t.Errorf("%s/%s: period = %s, want %s", tc.usage, tc.effective, p, tc.period)
		}
		if got := e.effectiveDate(now, p); !got.Equal(tc.want) {
			t.Errorf("%s/%s: effectiveDate = %s, want %s", tc.usage, tc.effective, got, tc.want)
		}
	}
}

// unknownOutcome is a backend whose writes reach the PSA but whose callers
// never learn it: SetQuantity applies the change and then reports
// psa.ErrOutcomeUnknown, as a backend must when even its re-read fails.
type unknownOutcome struct{ psa.Backend }

func (b unknownOutcome) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	if _, err := b.Backend.SetQuantity(ctx, req); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("autotask: adjusting contract %s: %w", req.ContractID, psa.ErrOutcomeUnknown)
}

func TestEngine_Sync_outcomeUnknownLeavesIntentOpen(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
	inner := h.be
	h.be = unknownOutcome{inner}

	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	if res.Run.Result != state.RunFailure || res.Run.Failed != 2 {
		t.Errorf("run = %+v, want failure with 2 failed lines", res.Run)
	}
	cs := h.status("cust-a")
	if cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, "never posted twice") {
		t.Errorf("status = %+v, want failed with the reconcile hint", cs)
	}
	open, _ := h.db.OpenIntents()
	if len(open) != 2 {
		t.Fatalf("open intents = %+v, want 2", open)
	}
	if ledger, _ := h.db.Ledger(0); len(ledger) != 0 {
		t.Errorf("ledger = %+v before reconciliation, want empty", ledger)
	}

	// The next pass (with a backend that answers again) settles both
	// intents by reading and posts nothing.
	h.be = inner
	h.sim.ResetRequests()
	res = h.sync(PassOptions{})
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("the pass after an unknown outcome posted %d adjustments, want 0", n)
	}
	if n := len(h.at.Adjustments()); n != 2 {
		t.Errorf("simulator has %d adjustments, want 2", n)
	}
	if open, _ := h.db.OpenIntents(); len(open) != 0 {
		t.Errorf("open intents left: %+v", open)
	}
	if ledger, _ := h.db.Ledger(0); len(ledger) != 2 {
		t.Errorf("ledger = %+v, want the 2 reconciled changes", ledger)
	}
	if res.Run.Result != state.RunSuccess || res.Run.Unchanged != 2 {
		t.Errorf("run = %+v, want success with 2 unchanged", res.Run)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status = %+v, want succeeded", cs)
	}
}

// failingReads fails every ReadLines call while fail is true.
type failingReads struct {
	psa.Backend
	fail *bool
}

func (b failingReads) ReadLines(ctx context.Context, ids []string, asOf time.Time) ([]psa.ContractLine, error) {
	if *b.fail {
		*b.fail = false
		return nil, fmt.Errorf("autotask: reading contract service units: %w", &psa.RateLimitError{System: psa.SystemAutotask, Hourly: true})
	}
	return b.Backend.ReadLines(ctx, ids, asOf)
}

func TestEngine_Sync_refusesLineWithOpenIntent(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
	if _, err := h.db.OpenIntent(state.Intent{RunID: 1, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-a",
		ContractID: etID(h.contractA), ServiceID: etID(h.svcIntercept), Before: 30, After: 35, BeforeKnown: true, EffectiveDate: etPeriodDay}); err != nil {
		t.Fatal(err)
	}
	// Reconciliation's read fails once; the pass's own read works.
	fail := true
	h.be = failingReads{h.be, &fail}

	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 30) // not written: its intent is unsettled
	h.wantUnits(h.contractB, h.svcIntercept, 10) // other customers go on
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "is not confirmed yet") {
		t.Errorf("change = %+v, want failed because of the open intent", c)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, "never posted twice") {
		t.Errorf("status = %+v", cs)
	}
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}
	if open, _ := h.db.OpenIntents(); len(open) != 1 {
		t.Errorf("open intents = %+v, want the unsettled one", open)
	}
}

func TestEngine_Sync_budgetReachedMidPass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t, psatest.WithHourlyLimit(10000))
	h.pol.WriteConcurrency = 1
	h.pol.BudgetReserve = 500
	h.writeUsage("cust-a,Acme,CIXA-MSP,1", "cust-a,Acme,MDR,2", "cust-b,Globex,CIXA-MSP,3", "cust-b,Globex,MDR,4")
	// Room for the bulk reads (lines, then the contracts, which have no
	// line yet), one budget check and a few writes.
	h.at.SetHourlyCount(10000 - 500 - 11)

	res := h.sync(PassOptions{})
	var written, skipped int
	for _, c := range res.Plan.Changes {
		got := h.units(mustInt(t, c.ContractID), mustInt(t, c.ServiceID))
		switch c.Action {
		case ActionUpdate:
			written++
			if got != c.Desired {
				t.Errorf("updated line %s/%s has %d units, want %d", c.ContractID, c.ServiceID, got, c.Desired)
			}
		case ActionSkipped:
			skipped++
			if got != 0 {
				t.Errorf("skipped line %s/%s has %d units, want 0", c.ContractID, c.ServiceID, got)
			}
		default:
			t.Errorf("change %+v, want updated or skipped", c)
		}
	}
	if written == 0 || skipped == 0 {
		t.Errorf("written %d, skipped %d; want some of each", written, skipped)
	}
	if n := len(h.at.Adjustments()); n != written {
		t.Errorf("simulator has %d adjustments, want %d", n, written)
	}
	if res.Run.Result != state.RunPartial || res.Run.Updated != written {
		t.Errorf("run = %+v, want partial with %d updated", res.Run, written)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEngine_RestoreMetrics(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	h.sync(PassOptions{})
	h.sync(PassOptions{DryRun: true})

	// A restarted daemon has a fresh registry but the same state.
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, psa.SystemAutotask)
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Metrics: m})
	if err := e.RestoreMetrics(h.doc); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.LastSuccessTimestamp); got != float64(etNow.Unix()) {
		t.Errorf("last_success_timestamp_seconds = %v, want %v", got, float64(etNow.Unix()))
	}
	if got := testutil.ToFloat64(m.LastRunTimestamp); got != float64(etNow.Unix()) {
		t.Errorf("last_run_timestamp_seconds = %v, want %v", got, float64(etNow.Unix()))
	}
	if got := testutil.ToFloat64(m.Customers.WithLabelValues("succeeded")); got != 2 {
		t.Errorf("customers{succeeded} = %v, want 2", got)
	}
}

// TestEngine_Sync_laterWriteHeld: a pass that dates its changes before a
// change psa-syncd already made (here: next_period_start wrote December,
// then period_start dates November's change on the 1st) must not post an
// Autotask adjustment, which would carry into December and add to it (42 +
// 12 = 54). Its read of November cannot see December; the ledger can. The
// line is held, also with --approve, a plan shows the same, and once the
// effective date reaches December the line is written again.
func TestEngine_Sync_laterWriteHeld(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	now := etNow
	h.now = func() time.Time { return now }
	dec1 := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.at.SetUnits(h.contractA, h.svcMDR, 5, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,5")
	units := func(at time.Time) int64 {
		t.Helper()
		n, _ := h.at.Units(h.contractA, h.svcIntercept, at)
		return n
	}

	h.pol.EffectiveDate = EffectiveNextPeriodStart
	h.sync(PassOptions{})
	if nov, dec := units(etPeriodDay), units(dec1); nov != 30 || dec != 42 {
		t.Fatalf("after the next_period_start pass: November %d, December %d; want 30, 42", nov, dec)
	}

	h.pol.EffectiveDate = EffectivePeriodStart
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,7")
	now = etNow.Add(24 * time.Hour)
	h.sim.ResetRequests()
	plan := h.plan(PassOptions{})
	for name, opts := range map[string]PassOptions{"pass": {}, "approving pass": {Approve: true, Customer: "cust-a"}} {
		res := h.sync(opts)
		for what, p := range map[string]*Plan{name: res.Plan, "plan": plan} {
			c := etFindChange(p, "cust-a", h.svcIntercept)
			if c == nil || c.Action != ActionHeld || c.Approvable() ||
				!strings.Contains(c.Reason, "psa-syncd already set this line to 42 from 2026-12-01") ||
				!strings.Contains(c.Reason, "written again once the effective date reaches 2026-12-01") {
				t.Errorf("%s: Acme Intercept X = %+v, want held for the change from December", what, c)
			}
		}
		if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, "later date than this pass's effective date") {
			t.Errorf("%s: status of cust-a = %+v, want held with the later-write hint", name, cs)
		}
	}
	// Only MDR, which psa-syncd never dated later, is written (5 -> 7).
	if n := h.adjustmentPosts(); n != 1 {
		t.Errorf("posted %d adjustments, want 1 (MDR)", n)
	}
	if nov, dec := units(etPeriodDay), units(dec1); nov != 30 || dec != 42 {
		t.Errorf("after the period_start passes: November %d, December %d; want 30, 42 (nothing added to December)", nov, dec)
	}

	// In December the effective date reaches the change: nothing to hold.
	now = time.Date(2026, time.December, 2, 10, 0, 0, 0, time.UTC)
	h.writeUsage("cust-a,Acme,CIXA-MSP,44", "cust-a,Acme,MDR,7")
	res := h.sync(PassOptions{})
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Current != 42 || c.Desired != 44 {
		t.Errorf("December pass: Acme Intercept X = %+v, want 42 -> 44", c)
	}
	if dec := units(dec1); dec != 44 {
		t.Errorf("December units = %d, want 44", dec)
	}
}

func TestEngine_Sync_laterChangeHeld(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	nov := func(d int) time.Time { return time.Date(2026, time.November, d, 0, 0, 0, 0, time.UTC) }
	// Someone adjusted two lines by hand in mid-November: Acme's Intercept
	// X +2 from the 15th, Globex's MDR +2 from the 20th. Globex's
	// Intercept X row is split on the 15th without a change of units.
	h.at.SetUnits(h.contractA, h.svcIntercept, 10, etPeriodDay)
	h.at.SetUnits(h.contractA, h.svcIntercept, 12, nov(15))
	h.at.SetUnits(h.contractA, h.svcMDR, 3, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 10, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 10, nov(15))
	h.at.SetUnits(h.contractB, h.svcMDR, 2, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcMDR, 4, nov(20))
	h.writeUsage("cust-a,Acme,CIXA-MSP,15", "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,15", "cust-b,Globex,MDR,2")
	units := func(contract, service int64, at time.Time) int64 {
		t.Helper()
		n, _ := h.at.Units(contract, service, at)
		return n
	}

	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Action != ActionHeld || c.Current != 10 || c.Desired != 15 ||
		!strings.Contains(c.Reason, "units change again on 2026-11-15 (to 12: a mid-period adjustment in Autotask)") ||
		!strings.Contains(c.Reason, "writing a delta from 2026-11-01 would mis-bill the rest of the period") ||
		!strings.Contains(c.Reason, "sync --approve does not release it") {
		t.Errorf("Acme Intercept X change = %+v, want held for the later change", c)
	}
	c = etFindChange(res.Plan, "cust-b", h.svcMDR)
	if c == nil || c.Action != ActionHeld || c.Desired != 2 || c.Current != 2 ||
		!strings.Contains(c.Reason, "units change again on 2026-11-20 (to 4") ||
		!strings.Contains(c.Reason, "the rest of the period is not billed at 2") {
		t.Errorf("Globex MDR change = %+v, want held although 2 = 2 on the 1st", c)
	}
	for _, k := range []struct {
		customer string
		service  int64
	}{{"cust-a", h.svcMDR}, {"cust-b", h.svcIntercept}} {
		if c := etFindChange(res.Plan, k.customer, k.service); c == nil || c.Action != ActionUpdate {
			t.Errorf("%s service %d change = %+v, want update", k.customer, k.service, c)
		}
	}
	if n := h.adjustmentPosts(); n != 2 {
		t.Errorf("posted %d adjustments, want 2 (the lines without later changes)", n)
	}
	for _, tc := range []struct {
		contract, service int64
		at                time.Time
		want              int64
	}{
		{h.contractA, h.svcIntercept, nov(1), 10}, {h.contractA, h.svcIntercept, nov(15), 12},
		{h.contractA, h.svcMDR, nov(1), 5},
		{h.contractB, h.svcIntercept, nov(1), 15}, {h.contractB, h.svcIntercept, nov(30), 15},
		{h.contractB, h.svcMDR, nov(1), 2}, {h.contractB, h.svcMDR, nov(20), 4},
	} {
		if got := units(tc.contract, tc.service, tc.at); got != tc.want {
			t.Errorf("units of contract %d service %d on %s = %d, want %d", tc.contract, tc.service, tc.at.Format(time.DateOnly), got, tc.want)
		}
	}
	for _, customer := range []string{"cust-a", "cust-b"} {
		if cs := h.status(customer); cs.Result != state.CustomerHeld || cs.Held != 1 || cs.Updated != 1 ||
			!strings.Contains(cs.Hint, "mid-period adjustment in Autotask") || strings.Contains(cs.Hint, "--approve --customer") {
			t.Errorf("status of %s = %+v, want held with the mid-period hint only", customer, cs)
		}
	}
	if res.Run.Held != 2 || res.Run.Updated != 2 {
		t.Errorf("run = %+v, want 2 held and 2 updated", res.Run)
	}

	// --approve releases decrease-guard holds only: a big decrease on the
	// adjusted line stays held, and nothing is written to it.
	h.writeUsage("cust-a,Acme,CIXA-MSP,4", "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,15", "cust-b,Globex,MDR,2")
	h.sim.ResetRequests()
	res = h.sync(PassOptions{Approve: true})
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionHeld ||
		!strings.Contains(c.Reason, "units change again on 2026-11-15") || strings.Contains(c.Reason, "approved") {
		t.Errorf("approved pass: Acme Intercept X change = %+v, want still held", c)
	}
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("approved pass posted %d adjustments, want 0", n)
	}
	if a, b := units(h.contractA, h.svcIntercept, nov(1)), units(h.contractA, h.svcIntercept, nov(15)); a != 10 || b != 12 {
		t.Errorf("Acme Intercept X units after an approved pass = %d then %d, want 10 then 12", a, b)
	}

	// With effective_date: today, the pass reads the line on the 21st, after
	// the hand adjustment, and may write it from then on.
	h.pol.EffectiveDate = EffectiveToday
	res = h.sync(PassOptions{Approve: true})
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Current != 12 {
		t.Errorf("effective today: Acme Intercept X change = %+v, want an update from 12", c)
	}
	if a, b := units(h.contractA, h.svcIntercept, nov(20)), units(h.contractA, h.svcIntercept, nov(21)); a != 12 || b != 4 {
		t.Errorf("Acme Intercept X units = %d on the 20th and %d on the 21st, want 12 and 4", a, b)
	}
}

// TestEngine_hintForbiddenNamesThePermission: a 403 that does not speak of
// the credentials (psa.ErrForbidden) is the API user's missing permission
// for the contract, not refused credentials.
func TestEngine_hintForbiddenNamesThePermission(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	e := NewEngine(EngineOptions{Backend: h.be, State: h.db})
	err := fmt.Errorf("autotask: POST ContractServiceAdjustments: 403: %w", psa.ErrForbidden)
	hint := e.hint(err, export.CustomerMapping{Source: "file", CustomerID: "cust-a", ContractID: "800"}, "")
	if strings.Contains(hint, "refused the credentials") || !strings.Contains(hint, "contract 800") || !strings.Contains(hint, "permission") {
		t.Errorf("hint for %v = %q, want the API user's permission for contract 800, not the credentials", err, hint)
	}
}

// TestEngine_permission500IsTheContractsOwn: Autotask's 500 for a missing
// permission (a validation error that matches psa.ErrForbidden too) fails
// its line, not the whole PSA, and hints at the permission.
func TestEngine_permission500IsTheContractsOwn(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	e := NewEngine(EngineOptions{Backend: h.be, State: h.db})
	err := fmt.Errorf("autotask: adjusting contract 800: %w", errors.Join(
		&psa.ValidationError{System: psa.SystemAutotask, Messages: []string{"The logged in Resource does not have the adequate permissions to create this entity type."}},
		psa.ErrForbidden))
	if psaFailure(err) || errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Errorf("psaFailure(%v) = true, want the line's own failure", err)
	}
	if hint := e.hint(err, export.CustomerMapping{Source: "file", CustomerID: "cust-a", ContractID: "800"}, ""); !strings.Contains(hint, "permissions") {
		t.Errorf("hint for %v = %q, want the API user's permissions", err, hint)
	}
}

// TestEngine_hintChecksThroughTheDaemon: the hints that send the
// operator to psa-syncd check, shown while psa-syncd runs (status, the
// status page), name -web.url: run by hand without it, check cannot read
// the secrets of a service (systemd credentials, a Secret in a pod).
func TestEngine_hintChecksThroughTheDaemon(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	e := NewEngine(EngineOptions{Backend: h.be, State: h.db})
	for _, err := range []error{fmt.Errorf("reading contract: %w", psa.ErrUnauthorized), errors.New("connection reset by peer")} {
		if hint := e.hint(err, export.CustomerMapping{Source: "file", CustomerID: "cust-a"}, ""); !strings.Contains(hint, "psa-syncd check -web.url") {
			t.Errorf("hint for %v = %q, want psa-syncd check -web.url", err, hint)
		}
	}
}

// TestEngine_Sync_unreadableUnmappedUsageCounted: a row that cannot be read
// of a customer or a product with no mapping failed no customer, as it
// should, but was listed nowhere: psa_sync_unmapped stayed 0 and the pass
// succeeded, so a new customer or product whose rows the vendor garbled
// went unnoticed. They are listed (Unmapped.UnreadableCustomers,
// UnreadableProducts), counted in psa_sync_unmapped and as new unmapped
// usage; a customer mapped with usage_sync = false is not.
func TestEngine_Sync_unreadableUnmappedUsageCounted(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	cm, _ := h.doc.Customer("file", "cust-b")
	cm.UsageSync = false
	h.doc.PutCustomer(cm)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "newco,New,CIXA-MSP,4x0", "cust-a,Acme,NEWPROD,x", "cust-b,Globex,CIXA-MSP,y")
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	u := res.Plan.Unmapped
	if strings.Join(u.UnreadableCustomers, ",") != "newco" || strings.Join(u.UnreadableProducts, ",") != "NEWPROD" {
		t.Errorf("unreadable unmapped = customers %q, products %q; want newco and NEWPROD", u.UnreadableCustomers, u.UnreadableProducts)
	}
	for _, kind := range []string{"customer", "product"} {
		if got := h.metric(h.m.Unmapped.WithLabelValues(kind)); got != 1 {
			t.Errorf("psa_sync_unmapped{kind=%q} = %v, want 1", kind, got)
		}
		if got := h.metric(h.m.UnmappedNew[kind]); got != 1 {
			t.Errorf("psa_sync_unmapped_new_total{kind=%q} = %v, want 1", kind, got)
		}
	}
	// Once readable, the same customer and product are listed as
	// unmapped with their quantity, and are not new again.
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "newco,New,CIXA-MSP,4", "cust-a,Acme,NEWPROD,1")
	res = h.sync(PassOptions{})
	if u := res.Plan.Unmapped; len(u.Customers) != 1 || len(u.Products) != 1 || len(u.UnreadableCustomers)+len(u.UnreadableProducts) != 0 {
		t.Errorf("unmapped = %+v, want newco and NEWPROD with their quantities", u)
	}
	for _, kind := range []string{"customer", "product"} {
		if got := h.metric(h.m.UnmappedNew[kind]); got != 1 {
			t.Errorf("psa_sync_unmapped_new_total{kind=%q} = %v after the rows were fixed, want 1", kind, got)
		}
	}
}
