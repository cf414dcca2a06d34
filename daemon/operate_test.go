package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

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
