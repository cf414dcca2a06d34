package usage

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// The engine tests in this file run against every PSA simulator where the
// behaviour is shared; engine_connectwise_test.go and
// engine_kaseyabms_test.go hold what only one PSA does.

// sysHarness is one simulated PSA tenant of any system, with two customers
// (contract A for Acme, contract B for Globex) and two services (Intercept
// X, mapped from CIXA-MSP and CIXA-SRV, and MDR), a usage file, a state
// database and metrics, wired into an Engine.
type sysHarness struct {
	t      testing.TB
	system psa.System
	sim    *psatest.Server
	be     psa.Backend
	cfg    backends.Config // of be: backends.New(cfg) is another process's
	db     *state.DB
	reg    *prometheus.Registry
	m      *Metrics
	rt     *countingTransport
	usage  string
	doc    *export.Document
	pol    Policies
	// failing is shared by the harness's engines, one per pass, as
	// psa-syncd shares its own.
	failing FailingContracts
	// unsaved is shared by the harness's engines too.
	unsaved UnsavedRuns
	// terms is shared the same way.
	terms ContractTerms

	contractA, contractB string
	svcIntercept, svcMDR string
	// clock, when set, is the time of the harness's passes in place of
	// etNow (a month's last pass, the next month's first).
	clock time.Time

	// units returns the quantity of a line in the simulator for November
	// 2026, false when there is no line.
	units func(contract, service string) (int64, bool)
	// isWrite reports whether a logged request changes a contract line.
	isWrite func(r psatest.Request) bool
}

// sysSystems are the systems the shared engine tests run against.
var sysSystems = []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS}

func newSysHarness(t testing.TB, system psa.System, opts ...psatest.Option) *sysHarness {
	t.Helper()
	opts = append([]psatest.Option{psatest.WithSystem(system), psatest.WithClock(func() time.Time { return etNow })}, opts...)
	sim := psatest.Start(t, opts...)
	h := &sysHarness{t: t, system: system, sim: sim, reg: prometheus.NewRegistry(), pol: DefaultPolicies}
	h.m = NewMetrics(h.reg, system)
	h.rt = newCountingTransport(h.m)
	cfg := backends.Config{
		System:     system,
		HTTPClient: &http.Client{Transport: h.rt, Timeout: 30 * time.Second},
		MaxRetries: backends.DefaultMaxRetries,
	}
	var companyA, companyB string
	switch system {
	case psa.SystemAutotask:
		at := sim.Autotask()
		user, secret, code := at.Credentials()
		cfg.Autotask = &backends.AutotaskConfig{Username: user, Secret: secret, IntegrationCode: code, BaseURL: sim.AutotaskBaseURL()}
		a, b := at.AddCompany("Acme"), at.AddCompany("Globex")
		companyA, companyB = etID(a), etID(b)
		h.contractA = etID(at.AddContract(psatest.AutotaskContract{CompanyID: a, Name: "Acme Managed Services"}))
		h.contractB = etID(at.AddContract(psatest.AutotaskContract{CompanyID: b, Name: "Globex Managed Services"}))
		h.svcIntercept = etID(at.AddService("Sophos Intercept X Advanced", 4.5))
		h.svcMDR = etID(at.AddService("Sophos MDR", 9))
		h.units = func(contract, service string) (int64, bool) {
			return at.Units(mustParse(t, contract), mustParse(t, service), etPeriodDay)
		}
		h.isWrite = func(r psatest.Request) bool {
			return r.Method == http.MethodPost && strings.Contains(strings.ToLower(r.Path), "serviceadjustments")
		}
	case psa.SystemConnectWise:
		cw := sim.ConnectWise()
		company, pub, priv, client := cw.Credentials()
		cfg.ConnectWise = &backends.ConnectWiseConfig{Site: sim.ConnectWiseSite(), CompanyID: company, PublicKey: pub, PrivateKey: priv, ClientID: client}
		a, b := cw.AddCompany("Acme"), cw.AddCompany("Globex")
		companyA, companyB = etID(a), etID(b)
		h.contractA = etID(cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: a, Name: "Acme Managed Services"}))
		h.contractB = etID(cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: b, Name: "Globex Managed Services"}))
		h.svcIntercept = etID(cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Sophos Intercept X Advanced", Price: 4.5}))
		h.svcMDR = etID(cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Sophos MDR", Price: 9}))
		h.units = func(contract, service string) (int64, bool) {
			q, ok := cw.Quantity(mustParse(t, contract), mustParse(t, service))
			return int64(q), ok
		}
		h.isWrite = func(r psatest.Request) bool {
			return (r.Method == http.MethodPost || r.Method == http.MethodPatch) && strings.Contains(strings.ToLower(r.Path), "/additions")
		}
	case psa.SystemKaseyaBMS:
		k := sim.KaseyaBMS()
		user, password, tenant := k.Credentials()
		cfg.KaseyaBMS = &backends.KaseyaBMSConfig{BaseURL: sim.KaseyaBMSBaseURL(), Username: user, Password: password, Tenant: tenant}
		a, b := k.AddAccount("Acme"), k.AddAccount("Globex")
		companyA, companyB = strconv.Itoa(a), strconv.Itoa(b)
		h.contractA = strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: "Acme Managed Services"}))
		h.contractB = strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: b, Name: "Globex Managed Services"}))
		h.svcIntercept = strconv.Itoa(k.AddService("Sophos Intercept X Advanced", 4.5))
		h.svcMDR = strconv.Itoa(k.AddService("Sophos MDR", 9))
		h.units = func(contract, service string) (int64, bool) {
			n, ok := k.Units(int(mustParse(t, contract)), int(mustParse(t, service)), etPeriodDay)
			return int64(n), ok
		}
		h.isWrite = func(r psatest.Request) bool {
			p := strings.ToLower(r.Path)
			return r.Method == http.MethodPost && strings.Contains(p, "/recurringservices/") && strings.HasSuffix(p, "/services")
		}
	default:
		t.Fatalf("no harness for %s", system)
	}
	be, err := backends.New(cfg)
	if err != nil {
		t.Fatalf("backends.New: %v", err)
	}
	h.be, h.cfg = be, cfg
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

	h.doc = export.New(system, "sim")
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: h.svcIntercept, ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-SRV", ServiceID: h.svcIntercept, ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "MDR", ServiceID: h.svcMDR, ServiceName: "Sophos MDR", SyncEnabled: true})
	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-a", CustomerName: "Acme", CompanyID: companyA, ContractID: h.contractA, UsageSync: true})
	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-b", CustomerName: "Globex", CompanyID: companyB, ContractID: h.contractB, UsageSync: true})
	return h
}

// day is midnight UTC of a date, as contracts' start and end dates are.
func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func mustParse(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", s, err)
	}
	return n
}

func (h *sysHarness) writeUsage(rows ...string) {
	h.t.Helper()
	content := "customer_id,customer_name,product,quantity\n" + strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// firstPass writes rows as the usage and runs the pass a scenario starts
// from, which must update want lines; anything else ends the test.
func (h *sysHarness) firstPass(want int, rows ...string) {
	h.t.Helper()
	h.writeUsage(rows...)
	if res := h.sync(PassOptions{}); res.Run.Updated != want {
		h.t.Fatalf("first pass = %+v, want %d updated", res.Run, want)
	}
}

func (h *sysHarness) engine() *Engine {
	h.t.Helper()
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		h.t.Fatal(err)
	}
	return NewEngine(EngineOptions{
		Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
		Location: time.UTC, Now: h.now, Failing: &h.failing, Unsaved: &h.unsaved, Terms: &h.terms,
	})
}

// usePostgres replaces the harness's state database, SQLite, with a fresh
// PostgreSQL database of the package's shared cluster.
func (h *sysHarness) usePostgres() {
	h.t.Helper()
	db, err := state.OpenConfig(h.t.Context(), state.Config{Driver: state.DriverPostgres, URL: pgtest.NewDatabase(h.t)})
	if err != nil {
		h.t.Fatalf("opening the PostgreSQL state database: %v", err)
	}
	h.t.Cleanup(func() {
		if err := db.Close(); err != nil {
			h.t.Errorf("closing the state database: %v", err)
		}
	})
	// Only the active instance writes (state.DB.CheckFence).
	if l, err := db.TryLead(h.t.Context(), state.LeaderInfo{Holder: "usage-test"}, time.Second); err != nil || l == nil {
		h.t.Fatalf("becoming the active instance: %v, %v", l, err)
	}
	h.db = db
}

// now is the time of the harness's passes.
func (h *sysHarness) now() time.Time {
	if h.clock.IsZero() {
		return etNow
	}
	return h.clock
}

func (h *sysHarness) sync(o PassOptions) *Result {
	h.t.Helper()
	res, err := h.engine().Sync(h.t.Context(), h.doc, o)
	if err != nil {
		h.t.Fatalf("Sync returned error: %v", err)
	}
	return res
}

// plan runs Plan, with no options, against the harness's export; an
// error ends the test.
func (h *sysHarness) plan() *Plan {
	h.t.Helper()
	p, err := h.engine().Plan(h.t.Context(), h.doc, PassOptions{})
	if err != nil {
		h.t.Fatalf("Plan: %v", err)
	}
	return p
}

func (h *sysHarness) wantUnits(contract, service string, want int64) {
	h.t.Helper()
	if got, _ := h.units(contract, service); got != want {
		h.t.Errorf("%s: units of contract %s service %s = %d, want %d", h.system, contract, service, got, want)
	}
}

// writes counts the line-changing requests since the last ResetRequests.
func (h *sysHarness) writes() int {
	n := 0
	for _, r := range h.sim.Requests() {
		if h.isWrite(r) {
			n++
		}
	}
	return n
}

func (h *sysHarness) status(customer string) state.CustomerStatus {
	h.t.Helper()
	cs, ok, err := h.db.CustomerStatus("file", customer)
	if err != nil || !ok {
		h.t.Fatalf("CustomerStatus(%s) = %v, %v", customer, ok, err)
	}
	return cs
}

// sysFindChange returns the change in p for cust-a's line of service, or
// nil. The tests follow cust-a; cust-b is there to be left alone.
func sysFindChange(p *Plan, service string) *Change {
	for i := range p.Changes {
		if p.Changes[i].CustomerID == "cust-a" && p.Changes[i].ServiceID == service {
			return &p.Changes[i]
		}
	}
	return nil
}

// TestEngineSystems_passes runs the life of a tenant in every simulator:
// a first pass sets exact quantities from usage, a second pass with the
// same usage writes nothing (for Kaseya BMS because the ledger says so), a
// dry run writes nothing, and a change writes exactly one line.
func TestEngineSystems_passes(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.writeUsage(
				"cust-a,Acme,CIXA-MSP,40",
				"cust-a,Acme,CIXA-SRV,2",
				"cust-a,Acme,MDR,5",
				"cust-b,Globex,CIXA-MSP,10",
			)

			plan := h.plan()
			if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Desired != 42 || c.CurrentKnown {
				t.Errorf("planned change = %+v, want an update to 42 from an unknown or missing line", c)
			}

			res := h.sync(PassOptions{Trigger: TriggerCLI})
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			h.wantUnits(h.contractA, h.svcMDR, 5)
			h.wantUnits(h.contractB, h.svcIntercept, 10)
			if n := h.writes(); n != 3 {
				t.Errorf("first pass: %d line writes, want 3", n)
			}
			if res.Run.Result != state.RunSuccess || res.Run.Updated != 3 {
				t.Errorf("first run = %+v, want success with 3 updated", res.Run)
			}
			for _, c := range []string{"cust-a", "cust-b"} {
				if cs := h.status(c); cs.Result != state.CustomerSucceeded {
					t.Errorf("status of %s = %+v, want succeeded", c, cs)
				}
			}
			if ledger, _ := h.db.Ledger(0); len(ledger) != 3 {
				t.Errorf("ledger = %+v, want 3 entries", ledger)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 0 {
				t.Errorf("open intents left: %+v", open)
			}
			if sys != psa.SystemAutotask {
				// Budget() is not supported: no budget information, no
				// error, no gauge.
				if got := testutil.ToFloat64(h.m.APIBudgetRemaining.WithLabelValues("")); got != 0 {
					t.Errorf("api_budget_remaining = %v, want 0 (not reported by %s)", got, sys)
				}
			}

			// The same usage again: nothing to write.
			h.sim.ResetRequests()
			res = h.sync(PassOptions{})
			if n := h.writes(); n != 0 {
				t.Errorf("second pass: %d line writes, want 0", n)
			}
			if res.Run.Result != state.RunSuccess || res.Run.Unchanged != 3 || res.Run.Updated != 0 {
				t.Errorf("second run = %+v, want success with 3 unchanged", res.Run)
			}
			if sys == psa.SystemKaseyaBMS {
				for _, r := range h.sim.Requests() {
					if r.Method == http.MethodPost && !strings.Contains(strings.ToLower(r.Path), "/security/") {
						t.Errorf("second BMS pass sent POST %s", r.Path)
					}
				}
				if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || !c.CurrentKnown || c.Current != 42 ||
					!strings.Contains(c.Reason, "current 42 as psa-syncd last set it") {
					t.Errorf("BMS change = %+v, want current 42 from the ledger", c)
				}
			}

			// A dry run with changed usage writes nothing.
			h.writeUsage("cust-a,Acme,CIXA-MSP,50", "cust-a,Acme,CIXA-SRV,2", "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,12")
			h.sim.ResetRequests()
			res = h.sync(PassOptions{DryRun: true})
			if n := h.writes(); n != 0 {
				t.Errorf("dry run: %d line writes, want 0", n)
			}
			if res.Run.Updated != 2 || !res.Run.DryRun {
				t.Errorf("dry run = %+v, want 2 lines that would be updated", res.Run)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 42)

			// One changed line: exactly one write.
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,CIXA-SRV,2", "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,12")
			h.sim.ResetRequests()
			res = h.sync(PassOptions{})
			if n := h.writes(); n != 1 {
				t.Errorf("third pass: %d line writes, want 1", n)
			}
			h.wantUnits(h.contractB, h.svcIntercept, 12)
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			if res.Run.Result != state.RunSuccess || res.Run.Updated != 1 || res.Run.Unchanged != 2 {
				t.Errorf("third run = %+v, want success with 1 updated", res.Run)
			}
			if le, ok, _ := h.db.LastSet(h.contractB, h.svcIntercept); !ok || le.Before != 10 || le.After != 12 || !le.EffectiveDate.Equal(etPeriodDay) {
				t.Errorf("ledger entry = %+v, want 10 -> 12 effective %s", le, etPeriodDay)
			}
		})
	}
}

// hourlyLimited lets n writes through and then fails every write with the
// hourly rate limit, as a PSA whose hourly budget ran out does.
type hourlyLimited struct {
	psa.Backend
	left *atomic.Int32
}

func (b hourlyLimited) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	if b.left.Add(-1) < 0 {
		return nil, &psa.RateLimitError{System: b.System(), Hourly: true, Message: "hourly limit reached"}
	}
	return b.Backend.SetQuantity(ctx, req)
}

// TestEngineSystems_hourlyRateLimitStopsWriting checks that a write refused
// by the hourly limit stops the pass from writing (the rest is skipped) and
// the run ends as partial, in every system.
func TestEngineSystems_hourlyRateLimitStopsWriting(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.WriteConcurrency = 1
			h.writeUsage("cust-a,Acme,CIXA-MSP,1", "cust-a,Acme,MDR,2", "cust-b,Globex,CIXA-MSP,3", "cust-b,Globex,MDR,4")
			left := &atomic.Int32{}
			left.Store(1)
			h.be = hourlyLimited{h.be, left}

			res := h.sync(PassOptions{})
			var actions []string
			for _, c := range res.Plan.Changes {
				actions = append(actions, c.CustomerID+"/"+c.Action)
			}
			want := "cust-a/update cust-a/failed cust-b/skipped cust-b/skipped"
			if got := strings.Join(actions, " "); got != want {
				t.Errorf("actions = %s, want %s", got, want)
			}
			if n := h.writes(); n != 1 {
				t.Errorf("%d line writes, want 1", n)
			}
			if res.Run.Result != state.RunPartial {
				t.Errorf("run = %+v, want partial", res.Run)
			}
			if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, "rate limited") {
				t.Errorf("status of cust-a = %+v, want failed, rate limited", cs)
			}
			if cs := h.status("cust-b"); cs.Result != state.CustomerSkipped {
				t.Errorf("status of cust-b = %+v, want skipped", cs)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 0 {
				t.Errorf("open intents left: %+v (a refused write is certainly not applied)", open)
			}
		})
	}
}

// TestEngineSystems_throttledWritesStopWriting: every line write is
// answered 429 with a short Retry-After and no hourly wording (the
// references document neither Autotask's hourly status and text nor
// ConnectWise's limits). Once the client's retries of the first write are
// used up, the pass stops writing: the other lines are skipped with the
// PSA's answer as the reason, instead of each being sent into the refusal
// 1 + max_retries times, and the run ends as partial, not failed.
func TestEngineSystems_throttledWritesStopWriting(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.cfg.MaxRetries = 1
			be, err := backends.New(h.cfg)
			if err != nil {
				t.Fatal(err)
			}
			h.be = be
			h.pol.WriteConcurrency = 1
			h.writeUsage("cust-a,Acme,CIXA-MSP,1", "cust-a,Acme,MDR,2", "cust-b,Globex,CIXA-MSP,3", "cust-b,Globex,MDR,4")
			var paths []string
			switch sys {
			case psa.SystemAutotask:
				paths = []string{etAdjustPath}
			case psa.SystemConnectWise:
				base, err := url.Parse(h.sim.ConnectWiseBaseURL())
				if err != nil {
					t.Fatal(err)
				}
				paths = []string{base.Path + "finance/agreements/" + h.contractA + "/additions*", base.Path + "finance/agreements/" + h.contractB + "/additions*"}
			case psa.SystemKaseyaBMS:
				paths = []string{bmsServicesPath}
			}
			for _, p := range paths {
				for _, method := range []string{http.MethodPost, http.MethodPatch} {
					h.sim.AddFault(psatest.Fault{Method: method, Path: p, Status: http.StatusTooManyRequests, RetryAfter: time.Second,
						Body: `{"errors":["Too many requests"],"code":"TooManyRequests","message":"Too many requests"}`})
				}
			}
			h.sim.ResetRequests()

			res := h.sync(PassOptions{})
			if n := h.writes(); n != 2 {
				t.Errorf("%d line writes reached the PSA, want 2 (the first write and its one retry)", n)
			}
			var actions []string
			for _, c := range res.Plan.Changes {
				actions = append(actions, c.CustomerID+"/"+c.Action)
				if c.Action == ActionSkipped && !strings.Contains(c.Reason, "rate limited") {
					t.Errorf("skipped line reason = %q, want the PSA's rate-limit answer", c.Reason)
				}
			}
			want := "cust-a/failed cust-a/skipped cust-b/skipped cust-b/skipped"
			if got := strings.Join(actions, " "); got != want {
				t.Errorf("actions = %s, want %s", got, want)
			}
			if res.Run.Result != state.RunPartial || !strings.Contains(res.Run.Error, "rate limit") {
				t.Errorf("run = %s (%q), want partial, saying the PSA's rate limit stopped the writes", res.Run.Result, res.Run.Error)
			}
			if cs := h.status("cust-b"); cs.Result != state.CustomerSkipped || !strings.Contains(cs.Error, "rate limit") {
				t.Errorf("status of cust-b = %s (%q), want skipped for the PSA's rate limit", cs.Result, cs.Error)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 0 {
				t.Errorf("open intents left: %+v (a refused write is certainly not applied)", open)
			}
		})
	}
}

// TestEngineSystems_connectWiseThrottledBatchReadWaits: ConnectWise
// answers the reads of the agreements' additions 429 without Retry-After
// three times as often as the client retries other failures (ConnectWise
// documents neither its limit nor how long it throttles). The pass waits
// and writes every line, where the batch read failed after the client's
// four retries and with it every customer of the batch.
func TestEngineSystems_connectWiseThrottledBatchReadWaits(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	// The harness's backend, with retries that do not sleep for seconds.
	cc := h.cfg.ConnectWise
	c, err := connectwise.NewClient(connectwise.WithSite(cc.Site), connectwise.WithCompanyID(cc.CompanyID), connectwise.WithKeys(cc.PublicKey, cc.PrivateKey),
		connectwise.WithClientID(cc.ClientID), connectwise.WithHTTPClient(&http.Client{Transport: h.rt}), connectwise.WithBackoff(time.Millisecond, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	h.be = connectwise.NewBackend(c)
	h.writeUsage("cust-a,Acme,CIXA-MSP,1", "cust-a,Acme,MDR,2", "cust-b,Globex,CIXA-MSP,3", "cust-b,Globex,MDR,4")
	base, err := url.Parse(h.sim.ConnectWiseBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	refusals := 3 * connectwise.DefaultMaxRetries
	h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements/*", Status: http.StatusTooManyRequests, Times: refusals,
		Body: `{"code":"TooManyRequests","message":"Too many requests"}`})
	h.sim.ResetRequests()

	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunSuccess || res.Run.Failed != 0 {
		t.Errorf("run = %s (%q) with %d failed lines, want success with none", res.Run.Result, res.Run.Error, res.Run.Failed)
	}
	for _, c := range res.Plan.Changes {
		if c.Action != ActionUpdate {
			t.Errorf("line %s/%s = %s (%s), want written", c.ContractID, c.ServiceID, c.Action, c.Reason)
		}
	}
	h.wantUnits(h.contractB, h.svcMDR, 4)
}

// TestEngineSystems_contractIDSpelledOtherwise checks that a contract id
// written with a leading zero finds the contract's lines, which the PSA
// reports under its own spelling. psa-syncd refuses such an export
// (daemon.CheckExport), but the engine must not depend on it: on Autotask,
// whose write is a delta, a pass that found no line posted the whole
// quantity again on every pass (42 → 84 → 126).
func TestEngineSystems_contractIDSpelledOtherwise(t *testing.T) {
	t.Parallel()
	for _, system := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(system), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, system)
			switch system {
			case psa.SystemAutotask:
				h.sim.Autotask().SetUnits(mustParse(t, h.contractA), mustParse(t, h.svcIntercept), 42, etPeriodDay)
			case psa.SystemConnectWise:
				h.sim.ConnectWise().AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcIntercept), Quantity: 42})
			}
			cm, _ := h.doc.Customer("file", "cust-a")
			cm.ContractID = "0" + h.contractA
			h.doc.PutCustomer(cm)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42")

			for pass := range 2 {
				res := h.sync(PassOptions{})
				h.wantUnits(h.contractA, h.svcIntercept, 42)
				switch c := sysFindChange(res.Plan, h.svcIntercept); {
				case c == nil:
					t.Errorf("pass %d: no change for the line", pass+1)
				case c.Action != ActionUnchanged || !c.CurrentKnown || c.Current != 42:
					t.Errorf("pass %d: change %s, current %d (known %t), want unchanged at the 42 units read", pass+1, c.Action, c.Current, c.CurrentKnown)
				}
			}
			if n := h.writes(); n != 0 {
				t.Errorf("%d writes, want none", n)
			}
		})
	}
}

// TestEngineSystems_failingWritesStopThePass checks that a PSA that fails
// every write of a pass (credentials revoked once the reads are done, the
// PSA going down) stops the writes after a few, rather than sending each
// customer's into the same failure: a pass of thousands of lines would
// otherwise spend a timeout on each, and on Kaseya BMS leave each post for
// an operator's review. The lines not sent fail their customers, naming
// the failure that stopped the writes; once the PSA works again the next
// pass writes every line exactly once.
func TestEngineSystems_failingWritesStopThePass(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		for name, fault := range map[string]psatest.Fault{
			"credentials revoked": {Status: http.StatusUnauthorized},
			"PSA down":            {Status: http.StatusServiceUnavailable, Body: "<html><body>503 Service Unavailable</body></html>"},
			// A broken tenant answering every write the same error:
			// Autotask reads a 500 with errors[] as a refusal of the
			// write's own record.
			"500 with an error body": {Status: http.StatusInternalServerError, Body: `{"errors":["Object reference not set to an instance of an object."]}`},
		} {
			t.Run(string(sys)+"/"+name, func(t *testing.T) {
				t.Parallel()
				h := newSysHarness(t, sys)
				h.pol.WriteConcurrency = 2
				const n = 30
				customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
				h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
				fault.Method = http.MethodPost
				switch sys {
				case psa.SystemAutotask:
					fault.Path = etAdjustPath
				case psa.SystemConnectWise:
					base, err := url.Parse(h.sim.ConnectWiseBaseURL())
					if err != nil {
						t.Fatal(err)
					}
					fault.Path = base.Path + "finance/agreements/*"
				case psa.SystemKaseyaBMS:
					fault.Path = bmsServicesPath
				}
				h.sim.AddFault(fault)

				res := h.sync(PassOptions{})
				// The two lines of each contract written when the PSA
				// started failing and of two more, the writes in flight
				// beside the last of them, and (Kaseya BMS) a retry of
				// each after a new token.
				sent := 2*(h.pol.WriteConcurrency+2) + h.pol.WriteConcurrency - 1
				if got, most := h.writes(), 2*sent; got > most {
					t.Errorf("%d line writes sent into the failure, want at most %d", got, most)
				}
				if res.Run.Result != state.RunFailure {
					t.Errorf("run = %+v, want failure", res.Run)
				}
				// The reason is one an alert can use.
				if got := testutil.ToFloat64(h.m.PassStopsTotal.WithLabelValues(StopWritesFailed)); got != 1 {
					t.Errorf("pass_stops_total{reason=%q} = %v, want 1", StopWritesFailed, got)
				}
				last := customers[n-1].CustomerID
				if cs := h.status(last); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "not written") ||
					!strings.Contains(cs.Error, strconv.Itoa(fault.Status)) {
					t.Errorf("status of %s = %s (%q), want failed naming the failure that stopped the writes", last, cs.Result, cs.Error)
				}
				open, err := h.db.OpenIntents()
				if err != nil {
					t.Fatal(err)
				}
				if len(open) > sent {
					t.Errorf("%d intents left open, want at most %d", len(open), sent)
				}

				// The PSA works again. The writes whose outcome the
				// failure left unknown did not reach the simulator: they
				// are closed as an operator (Kaseya BMS) or the settling
				// window would close them. Every line is then written once.
				// A second pass into the same failure, whose first
				// contracts are those that failed at the first pass,
				// stops as soon.
				h.sim.ResetRequests()
				h.sync(PassOptions{})
				if got, most := h.writes(), 2*sent; got > most {
					t.Errorf("second pass: %d line writes sent into the failure, want at most %d", got, most)
				}
				if open, err = h.db.OpenIntents(); err != nil {
					t.Fatal(err)
				}

				h.sim.ClearFaults()
				for _, in := range open {
					if err := h.db.CompleteIntent(in.ID, state.IntentFailed, "test: not applied", etNow); err != nil {
						t.Fatal(err)
					}
				}
				h.sim.ResetRequests()
				res = h.sync(PassOptions{})
				if res.Run.Result != state.RunSuccess {
					t.Errorf("run after the fault = %+v, want success", res.Run)
				}
				for i, cm := range customers {
					if got, _ := h.units(cm.ContractID, h.svcIntercept); got != int64(2+i%7) {
						t.Errorf("%s: units of %s = %d, want %d", cm.CustomerID, h.svcIntercept, got, 2+i%7)
					}
				}
			})
		}
	}
}

// TestEngineAutotask_serverRefusalsOfTheirOwnStopNoWrites checks that
// Autotask's refusals of a write's own record, which it answers with a 500
// and errors[] naming the record, fail only their customers, however many
// come in a row: only the same answer to the writes to several contracts
// stops the writes (TestEngineSystems_failingWritesStopThePass).
func TestEngineAutotask_serverRefusalsOfTheirOwnStopNoWrites(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.WriteConcurrency = 2
	const n, bad = 16, 8
	customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
	h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
	for _, cm := range customers[:bad] {
		body := `{"errors":["Contract ` + cm.ContractID + ` is not active on the adjustment's effective date."]}`
		h.sim.AddFault(contractWriteFault(h, psatest.Fault{Status: http.StatusInternalServerError, Body: body}, cm.ContractID))
	}
	res := h.sync(PassOptions{})
	if strings.Contains(res.Run.Error, "writes stopped") {
		t.Errorf("run error %q, want the writes not stopped", res.Run.Error)
	}
	for i, cm := range customers {
		cs := h.status(cm.CustomerID)
		if i < bad {
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "Contract "+cm.ContractID+" is not active") {
				t.Errorf("status of %s = %s (%q), want failed with its contract's refusal", cm.CustomerID, cs.Result, cs.Error)
			}
			continue
		}
		if got, _ := h.units(cm.ContractID, h.svcIntercept); got != int64(2+i%7) {
			t.Errorf("%s: units of %s = %d, want %d (status %q)", cm.CustomerID, h.svcIntercept, got, 2+i%7, cs.Error)
		}
	}
}

// addSysContract adds customer i's company and contract to h's simulator
// and returns their ids.
func addSysContract(h *sysHarness, i int) (company, contract string) {
	switch h.system {
	case psa.SystemAutotask:
		at := h.sim.Autotask()
		c := at.AddCompany(fmt.Sprintf("Customer %04d", i))
		return etID(c), etID(at.AddContract(psatest.AutotaskContract{CompanyID: c, Name: "Managed Services"}))
	case psa.SystemConnectWise:
		cw := h.sim.ConnectWise()
		c := cw.AddCompany(fmt.Sprintf("Customer %04d", i))
		return etID(c), etID(cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: c, Name: "Managed Services"}))
	default:
		k := h.sim.KaseyaBMS()
		a := k.AddAccount(fmt.Sprintf("Customer %04d", i))
		return strconv.Itoa(a), strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: fmt.Sprintf("Managed Services %04d", i)}))
	}
}

// contractWriteFault returns fault limited to the line writes of one
// contract.
func contractWriteFault(h *sysHarness, fault psatest.Fault, contract string) psatest.Fault {
	h.t.Helper()
	switch h.system {
	case psa.SystemAutotask:
		fault.Method, fault.Path, fault.BodyContains = http.MethodPost, etAdjustPath, `"contractID":`+contract+`,`
	case psa.SystemConnectWise:
		base, err := url.Parse(h.sim.ConnectWiseBaseURL())
		if err != nil {
			h.t.Fatal(err)
		}
		// A new line is a POST of an addition.
		fault.Method, fault.Path = http.MethodPost, base.Path+"finance/agreements/"+contract+"/additions"
	default:
		fault.Method, fault.Path = http.MethodPost, "/v2/finance/contracts/recurringservices/"+contract+"/services"
	}
	return fault
}

// TestEngineSystems_contractsFailingEveryPassStopNoOtherCustomer checks that
// a few contracts whose writes always fail with an error that looks
// PSA-wide (a record that makes the PSA answer 403 or an HTML 500), first in
// the write order and more of them than stop the writes of a pass, do not
// stop the other customers' writes pass after pass, also when each pass is
// a process of its own (`psa-syncd sync` run by a timer, a restarted
// daemon), which learns them from the state database.
func TestEngineSystems_contractsFailingEveryPassStopNoOtherCustomer(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		for name, fault := range map[string]psatest.Fault{
			"forbidden": {Status: http.StatusForbidden},
			"HTML 500":  {Status: http.StatusInternalServerError, Body: "<html><body>500 Internal Server Error</body></html>"},
		} {
			for _, process := range []string{"one process", "a process per pass"} {
				t.Run(string(sys)+"/"+name+"/"+process, func(t *testing.T) {
					t.Parallel()
					h := newSysHarness(t, sys)
					h.pol.WriteConcurrency = 2
					// Twice as many failing contracts as stop the writes.
					const n, bad = 16, 8
					customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
					h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
					for _, cm := range customers[:bad] {
						h.sim.AddFault(contractWriteFault(h, fault, cm.ContractID))
					}
					for range 4 {
						if process != "one process" {
							h.failing = FailingContracts{}
						}
						h.sync(PassOptions{})
					}
					for i, cm := range customers[bad:] {
						i += bad
						if got, _ := h.units(cm.ContractID, h.svcIntercept); got != int64(2+i%7) {
							t.Errorf("%s: units of %s = %d after 4 passes, want %d (status %q)", cm.CustomerID, h.svcIntercept, got, 2+i%7, h.status(cm.CustomerID).Error)
						}
					}
					if cs := h.status(customers[0].CustomerID); cs.Result != state.CustomerFailed {
						t.Errorf("status of %s = %s, want failed", customers[0].CustomerID, cs.Result)
					}
				})
			}
		}
	}
}

// TestEngineSystems_runErrorNamesTheCauseOfAPassWideFailure checks that a
// pass whose customers all failed for one cause (the credentials refused,
// the writes stopped) names that cause once in its run error, which the
// status page, `psa-syncd sync` and the alerts show.
func TestEngineSystems_runErrorNamesTheCauseOfAPassWideFailure(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		for _, tc := range []struct {
			name   string
			writes bool // the fault is on the line writes only
			want   []string
		}{
			{name: "credentials refused", want: []string{"8 of 8 customers failed: ", "401"}},
			{name: "writes failing", writes: true, want: []string{"8 of 8 customers failed", "writes stopped", "4 contracts in a row", "403"}},
		} {
			t.Run(string(sys)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				h := newSysHarness(t, sys)
				h.pol.WriteConcurrency = 2
				customers := h.manyCustomers(8, func(i int) (string, string) { return addSysContract(h, i) })
				h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
				if tc.writes {
					f := psatest.Fault{Status: http.StatusForbidden, Method: http.MethodPost}
					switch sys {
					case psa.SystemAutotask:
						f.Path = etAdjustPath
					case psa.SystemConnectWise:
						base, err := url.Parse(h.sim.ConnectWiseBaseURL())
						if err != nil {
							t.Fatal(err)
						}
						f.Path = base.Path + "finance/agreements/*"
					default:
						f.Path = bmsServicesPath
					}
					h.sim.AddFault(f)
				} else {
					h.sim.AddFault(psatest.Fault{Status: http.StatusUnauthorized})
				}
				res := h.sync(PassOptions{})
				if res.Run.Result != state.RunFailure {
					t.Fatalf("run = %+v, want failure", res.Run)
				}
				for _, w := range tc.want {
					if !strings.Contains(res.Run.Error, w) {
						t.Errorf("run error %q does not say %q", res.Run.Error, w)
					}
				}
				// The cause once, not each customer's error.
				if last := h.status(customers[7].CustomerID).Error; len(res.Run.Error) > len(last)+100 {
					t.Errorf("run error %q is longer than a customer's error (%q) and the count", res.Run.Error, last)
				}
			})
		}
	}
}
