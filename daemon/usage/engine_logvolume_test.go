package usage

import (
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// count returns how many records with the message were logged at level or
// above.
func (h *recordHandler) count(msg string, level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.records {
		if r.Message == msg && r.Level >= level {
			n++
		}
	}
	return n
}

// newVolumeHarness maps customers customers with two products each and
// returns the harness with usage for every line and an engine logging to
// the returned handler.
func newVolumeHarness(t *testing.T, customers int) (*etHarness, *Engine, *recordHandler) {
	t.Helper()
	h := newETHarness(t, psatest.WithHourlyLimit(1_000_000))
	var rows []string
	for i := range customers {
		company := h.at.AddCompany(fmt.Sprintf("Volume %d", i))
		contract := h.at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
		cust := fmt.Sprintf("vol-%d", i)
		h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: cust, CompanyID: etID(company), ContractID: etID(contract), UsageSync: true})
		rows = append(rows, fmt.Sprintf("%s,,CIXA-MSP,%d", cust, i+1), fmt.Sprintf("%s,,MDR,%d", cust, i+2))
	}
	h.writeUsage(rows...)
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		t.Fatal(err)
	}
	logs := newRecordHandler()
	e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
		Logger: slog.New(logs), Location: time.UTC, Now: h.clock, Unsaved: &h.unsaved})
	return h, e, logs
}

// A pass over many customers logs a bounded number of lines at info and
// above, whatever it writes and however many customers the PSA fails: one
// line per written line or per failed customer would drown the journal of
// an MSP with thousands of lines. The run and GET /api/v1/customers hold
// every one of them.
func TestEngine_Sync_logVolumeBounded(t *testing.T) {
	t.Parallel()
	const customers = 3 * maxLoggedProblems
	for _, tc := range []struct {
		name  string
		fault *psatest.Fault
		// own makes the fault one per contract, whose message names it.
		own bool
	}{
		{"every line written", nil, false},
		// Refused credentials fail every customer's read.
		{"PSA refuses the reads", &psatest.Fault{Status: 401}, false},
		// The same 500 to each write stops the writes after a few.
		{"PSA fails every write", &psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Status: 500}, false},
		// A 500 naming its contract to each write is taken as the
		// line's own failure, so the writes are not stopped: every line
		// fails.
		{"PSA refuses every write for its contract", &psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Status: 500}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, e, logs := newVolumeHarness(t, customers)
			switch {
			case tc.own:
				for _, cm := range h.doc.CustomerMappings {
					f := *tc.fault
					f.BodyContains = `"contractID":` + cm.ContractID + `,`
					f.Body = `{"errors":["Contract ` + cm.ContractID + ` is not active."]}`
					h.sim.AddFault(f)
				}
			case tc.fault != nil:
				h.sim.AddFault(*tc.fault)
			}
			res, err := e.Sync(t.Context(), h.doc, PassOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.fault == nil && res.Run.Updated != 2*customers {
				t.Fatalf("pass updated %d lines, want %d", res.Run.Updated, 2*customers)
			}
			if tc.fault != nil && res.Run.Result != "failure" && res.Run.Failed != 2*customers {
				t.Fatalf("pass %s with %d failed lines, want every line failed", res.Run.Result, res.Run.Failed)
			}
			logs.mu.Lock()
			var n int
			byMsg := map[string]int{}
			for _, r := range *logs.records {
				if r.Level >= slog.LevelInfo {
					n++
					byMsg[r.Message]++
				}
			}
			logs.mu.Unlock()
			// Up to maxLoggedProblems failed customers and as many failed
			// lines, one line each for what was left out, and the pass's
			// start, end and settling.
			if limit := 2*maxLoggedProblems + 10; n > limit {
				t.Errorf("pass over %d customers logged %d lines at info or above, want at most %d: %v", customers, n, limit, byMsg)
			}
			// Every failed customer is still logged, the others at debug,
			// and a line says how many were left out.
			if tc.fault != nil {
				if got := logs.count("Customer not synced", slog.LevelDebug); got < customers {
					t.Errorf("%d customers not synced logged, want each of the %d", got, customers)
				}
				if logs.count("More customers not synced; GET /api/v1/customers?status=failed lists them all", slog.LevelWarn) != 1 {
					t.Errorf("no warning says that more customers were not synced: %v", byMsg)
				}
				if logs.count("Failed to update contract line", slog.LevelDebug) > maxLoggedProblems &&
					logs.count("More contract lines failed to update; GET /api/v1/plan lists them all", slog.LevelWarn) != 1 {
					t.Errorf("no warning says that more lines failed: %v", byMsg)
				}
				if tc.own && logs.count("Failed to update contract line", slog.LevelDebug) != 2*customers {
					t.Errorf("%d lines failed to update logged, want each of the %d", logs.count("Failed to update contract line", slog.LevelDebug), 2*customers)
				}
			}
		})
	}
}
