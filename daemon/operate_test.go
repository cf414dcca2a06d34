package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// recordHandler keeps every log record it handles.
type recordHandler struct {
	mu      *sync.Mutex
	records *[]slog.Record
}

func newRecordHandler() *recordHandler {
	return &recordHandler{mu: new(sync.Mutex), records: new([]slog.Record)}
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, r.Clone())
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// level returns the level of the first record with the message, and
// whether there was one.
func (h *recordHandler) level(msg string) (slog.Level, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.records {
		if r.Message == msg {
			return r.Level, true
		}
	}
	return 0, false
}

// A failed pass is logged at error level and a partial one at warn, so that
// log-based alerting sees them; a good pass stays at info.
func TestEngine_Sync_logLevelFollowsResult(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		setup  func(h *etHarness)
		result string
		level  slog.Level
	}{
		{"success", func(*etHarness) {}, state.RunSuccess, slog.LevelInfo},
		{"partial", func(h *etHarness) {
			h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-c", CustomerName: "Hooli", CompanyID: "1", ContractID: "999999", UsageSync: true})
		}, state.RunPartial, slog.LevelWarn},
		{"failure", func(h *etHarness) {
			h.sim.AddFault(psatest.Fault{Status: 401})
		}, state.RunFailure, slog.LevelError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10", "cust-c,Hooli,CIXA-MSP,5")
			tc.setup(h)
			src, err := file.New(file.Config{Path: h.usage})
			if err != nil {
				t.Fatal(err)
			}
			logs := newRecordHandler()
			e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
				Logger: slog.New(logs), Now: func() time.Time { return etNow }})
			res, err := e.Sync(t.Context(), h.doc, PassOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Run.Result != tc.result {
				t.Fatalf("run result = %q, want %q", res.Run.Result, tc.result)
			}
			if lvl, ok := logs.level("Finished sync pass"); !ok || lvl != tc.level {
				t.Errorf("Finished sync pass logged at %v (found %t), want %v", lvl, ok, tc.level)
			}
		})
	}
}

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
	e := dtSetup(t, dtOptions{token: "tok"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	// A malformed row gives the plan a problem to show.
	dtWrite(t, e.usagePath, dtUsage+"cust-acme,Acme,CIXA-MSP,Intercept X Advanced,lots\n")
	if _, err := e.d.SyncOnce(t.Context(), PassOptions{}); err != nil {
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
			if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Where, "usage.csv") || p.Problems[0].Error == "" {
				t.Errorf("plan problems = %+v", p.Problems)
			}
		}
	}
}

// dtReopen closes e's daemon and opens a new one on the same config file and
// state directory with a fresh registry, as a restart does, with the export
// loaded.
func (e *dtEnv) reopen(t *testing.T) {
	t.Helper()
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	d, err := New(c, e.cfgPath, Options{Registry: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	e.d = d
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
}

// A restart restores from the state database what the last passes found, so
// that alerts neither resolve nor fire on a deploy.
func TestDaemon_RestoreMetrics_afterRestart(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	e.reopen(t)
	if _, err := e.d.SyncOnce(t.Context(), PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if running, done, total := e.d.Progress(); running || done != 3 || total != 3 {
		t.Errorf("Progress after the first pass = %t, %d, %d; want false, 3, 3", running, done, total)
	}
	if got := testutil.ToFloat64(e.d.metrics.PassLinesDone); got != 3 {
		t.Errorf("psa_sync_pass_lines_done = %v, want 3", got)
	}
	// Acme drops from 11 to 1 seat: held by the decrease guard.
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1))
	res, err := e.d.SyncOnce(t.Context(), PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Held != 1 {
		t.Fatalf("second pass held %d lines, want 1: %+v", res.Run.Held, res.Run)
	}
	m := e.d.metrics
	before := map[string]float64{
		"customers{held}":      testutil.ToFloat64(m.Customers.WithLabelValues("held")),
		"customers{succeeded}": testutil.ToFloat64(m.Customers.WithLabelValues("succeeded")),
		"unmapped{customer}":   testutil.ToFloat64(m.Unmapped.WithLabelValues("customer")),
		"unmapped{unassigned}": testutil.ToFloat64(m.Unmapped.WithLabelValues("unassigned")),
		"last_success":         testutil.ToFloat64(m.LastSuccessTimestamp),
		"last_run":             testutil.ToFloat64(m.LastRunTimestamp),
		"held_lines":           testutil.ToFloat64(m.HeldLines),
		"held_since":           testutil.ToFloat64(m.HeldSince),
		"integration_enabled":  testutil.ToFloat64(m.IntegrationEnabled),
	}
	want := map[string]float64{"customers{held}": 1, "customers{succeeded}": 1, "unmapped{customer}": 1, "unmapped{unassigned}": 1, "held_lines": 1, "integration_enabled": 1}
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
	if got := testutil.ToFloat64(m.Customers.WithLabelValues("held")); got != 0 {
		t.Fatalf("customers{held} = %v before RestoreMetrics, want 0 (the test would prove nothing)", got)
	}
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	after := map[string]float64{
		"customers{held}":      testutil.ToFloat64(m.Customers.WithLabelValues("held")),
		"customers{succeeded}": testutil.ToFloat64(m.Customers.WithLabelValues("succeeded")),
		"unmapped{customer}":   testutil.ToFloat64(m.Unmapped.WithLabelValues("customer")),
		"unmapped{unassigned}": testutil.ToFloat64(m.Unmapped.WithLabelValues("unassigned")),
		"last_success":         testutil.ToFloat64(m.LastSuccessTimestamp),
		"last_run":             testutil.ToFloat64(m.LastRunTimestamp),
		"held_lines":           testutil.ToFloat64(m.HeldLines),
		"held_since":           testutil.ToFloat64(m.HeldSince),
		"integration_enabled":  testutil.ToFloat64(m.IntegrationEnabled),
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("after the restart the gauges are\n%v\nwant\n%v", after, before)
	}

	// A third pass that still holds the line keeps the time it was first held.
	if _, err := e.d.SyncOnce(t.Context(), PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.HeldSince); got != before["held_since"] {
		t.Errorf("held_since = %v after another holding pass, want %v (unchanged)", got, before["held_since"])
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
	deadline := time.Now().Add(10 * time.Second)
	for e.d.NextRun().IsZero() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	rome, _ := time.LoadLocation("Europe/Rome")
	want := time.Date(2026, 12, 31, 18, 0, 0, 0, rome)
	if got := e.d.NextRun(); !got.Equal(want) {
		t.Fatalf("NextRun = %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(e.d.metrics.NextRunTimestamp); got != float64(want.Unix()) {
		t.Errorf("psa_sync_next_run_timestamp_seconds = %v, want %v", got, want.Unix())
	}
}
