package daemon

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestDaemon_operatorWritesOfADeposedInstanceAreRefused: the active
// instance of two on PostgreSQL loses its leadership lock (its session is
// ended) and the other takes over; before the first notices, an operator
// resolves an intent, records November as set by hand and clears an
// orphaned line through its API. None is recorded: each answers 503 saying the instance is no longer
// the active one, the intent stays open for the new active instance, and
// no by_hand run of November joins the runs that its passes of November
// record (one would become the month's last full run). Before, the run
// went through the pool and was recorded (200), and so was the resolve
// once the state layer had noticed the loss but the daemon not yet.
//
// "unnoticed": state.lock_interval is an hour, so no check of the lock
// notices the ended session during the test; the writes meet the lock's
// dead connection. "noticed by the lock's watch": the watch has found the
// session gone (Leadership.Lost) while the daemon, whose Run is not
// running here, still takes requests as the active instance: the window
// between the state layer's notice and the daemon's.
func TestDaemon_operatorWritesOfADeposedInstanceAreRefused(t *testing.T) {
	t.Parallel()
	cluster := pgtest.New(t)
	for _, tc := range []struct {
		name         string
		lockInterval time.Duration
		waitForWatch bool
	}{
		{"unnoticed", time.Hour, false},
		{"noticed by the lock's watch", 100 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, err := cluster.CreateDatabase(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
			e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }},
				state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: %s\n", url, tc.lockInterval)})
			a := e.d
			if err := a.Reload(); err != nil {
				t.Fatal(err)
			}
			if err := a.BecomeActive(t.Context()); err != nil {
				t.Fatal(err)
			}
			db := a.State()
			if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Period: "2026-11", Started: now.Add(-12 * time.Hour),
				Finished: now.Add(-11 * time.Hour), Result: state.RunPartial}); err != nil {
				t.Fatal(err)
			}
			var intents [2]state.Intent
			for i := range intents {
				if intents[i], err = db.OpenIntent(state.Intent{RunID: 7, System: "kaseya_bms", Source: "file", CustomerID: "cust-acme",
					ContractID: dtID(e.contracts[i]), ServiceID: dtID(e.services[i]), After: 42,
					EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
					t.Fatal(err)
				}
			}
			// An orphaned line the last pass listed, for an operator to clear.
			if err := db.PutSnapshot(usage.SnapshotUnmapped, usage.UnmappedReport{Time: now, RunID: 7, Source: "sophos",
				Unmapped: usage.Unmapped{Orphaned: []usage.OrphanedLine{{Reason: usage.OrphanCustomer, CustomerID: "cust-a",
					ContractID: "800", ServiceID: "700", Quantity: 3, Since: "2026-11-01", RunID: 5, Seq: 11}}}}); err != nil {
				t.Fatal(err)
			}
			resolve := func(in state.Intent) string {
				return "/api/v1/intents/" + strconv.FormatInt(in.ID, 10) + "/resolve"
			}
			// While it leads, an operator's answer is recorded (through
			// the lock's session).
			if rec := dtServe(t, a, http.MethodPost, resolve(intents[0]), dtToken, `{"posted": false, "note": "jane"}`); rec.Code != http.StatusOK {
				t.Fatalf("resolve while active = %d %s, want 200", rec.Code, rec.Body)
			}

			dtCutLeadership(t, url)
			if tc.waitForWatch {
				select {
				case <-a.lead.Lost():
				case <-time.After(30 * time.Second):
					t.Fatal("the lock's watch did not notice the ended session")
				}
			}
			b := dtSecondInstance(t, e, func() time.Time { return now })
			if err := b.BecomeActive(t.Context()); err != nil {
				t.Fatalf("the other instance did not take over: %v", err)
			}
			if !a.Active() {
				t.Fatal("the deposed instance's daemon noticed the loss: the test needs it not to")
			}

			for _, req := range []struct{ target, body string }{
				{resolve(intents[1]), `{"posted": true, "note": "jane: found in BMS"}`},
				{"/api/v1/periods/2026-11/set-by-hand", `{"note": "jane: additions set in ConnectWise before invoicing"}`},
				{"/api/v1/orphans/clear", `{"contract_id": "800", "service_id": "700", "note": "jane: contract ended"}`},
			} {
				rec := dtServe(t, a, http.MethodPost, req.target, dtToken, req.body)
				if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no longer the active instance") ||
					!strings.Contains(rec.Body.String(), "recorded nothing") || rec.Header().Get("Retry-After") == "" {
					t.Errorf("POST %s on the deposed instance = %d %s; want 503 saying it is no longer the active instance", req.target, rec.Code, rec.Body)
				}
			}
			open, err := b.State().OpenIntents()
			if err != nil {
				t.Fatal(err)
			}
			if len(open) != 1 || open[0].ID != intents[1].ID {
				t.Errorf("open intents after the deposed instance's resolve: %+v; want intent %d still open for the active instance", open, intents[1].ID)
			}
			if _, ok, err := b.State().LastSet(dtID(e.contracts[1]), dtID(e.services[1])); err != nil || ok {
				t.Errorf("ledger of the intent's line: %t, %v; want no entry", ok, err)
			}
			runs, err := b.State().Runs(0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				if r.Trigger == usage.TriggerByHand {
					t.Errorf("run %d of %s recorded as set by hand by the deposed instance: %+v", r.ID, r.Period, r)
				}
			}
			var cleared []usage.ClearedOrphan
			if _, err := b.State().Snapshot("orphans_cleared", &cleared); err != nil || len(cleared) != 0 {
				t.Errorf("cleared orphaned lines after the deposed instance's clear = %+v, %v; want none", cleared, err)
			}
			// The active instance takes all three.
			if rec := dtServe(t, b, http.MethodPost, resolve(intents[1]), dtToken, `{"posted": true}`); rec.Code != http.StatusOK {
				t.Errorf("resolve on the active instance = %d %s, want 200", rec.Code, rec.Body)
			}
			if rec := dtServe(t, b, http.MethodPost, "/api/v1/periods/2026-11/set-by-hand", dtToken, `{"note": "jane"}`); rec.Code != http.StatusOK {
				t.Errorf("set-by-hand on the active instance = %d %s, want 200", rec.Code, rec.Body)
			}
			if rec := dtServe(t, b, http.MethodPost, "/api/v1/orphans/clear", dtToken, `{"contract_id": "800", "service_id": "700"}`); rec.Code != http.StatusOK {
				t.Errorf("orphan clear on the active instance = %d %s, want 200", rec.Code, rec.Body)
			}
		})
	}
}
