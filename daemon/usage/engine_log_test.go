package usage

import (
	"context"
	"log/slog"
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

// values returns the values of key in the records with the message.
func (h *recordHandler) values(msg, key string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var vs []string
	for _, r := range *h.records {
		if r.Message != msg {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				vs = append(vs, a.Value.String())
			}
			return true
		})
	}
	return vs
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
