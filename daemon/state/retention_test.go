package state

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestPruneHistory: a year of hourly passes leaves only the history the
// retention keeps, in more than one batch, and never what the engine
// still needs: open intents and their runs, the newest finished and the
// newest successful full pass, intents held for review, the ledger, and
// the current export's body.
func TestPruneHistory(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		old := t0.AddDate(-1, 0, 0)
		run := func(r Run) Run {
			t.Helper()
			r, err := db.BeginRun(r)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		// Old runs, more than a batch: the oldest is the last success, the
		// next one's pass has an intent still open.
		success := run(Run{Trigger: "schedule", Started: old, Finished: old, Result: RunSuccess})
		pending := run(Run{Trigger: "schedule", Started: old, Finished: old, Result: RunPartial})
		var doomed []int64
		for i := range pruneBatch + 20 {
			at := old.Add(time.Duration(i+1) * time.Minute)
			doomed = append(doomed, run(Run{Trigger: "schedule", Started: at, Finished: at, Result: RunFailure, Customer: "718b"}).ID)
		}
		lastFull := run(Run{Trigger: "schedule", Started: old.Add(time.Hour), Finished: old.Add(time.Hour), Result: RunFailure})
		doomed = append(doomed, run(Run{Trigger: "schedule", Started: old.Add(time.Hour), Result: RunFailure, Error: interruptedPrefix + "stopped"}).ID)
		running := run(Run{Trigger: "schedule", Started: old.Add(time.Hour)})
		recent := run(Run{Trigger: "api", Started: t0, Finished: t0, Result: RunSuccess, Customer: "718b"})

		in := func(runID int64, created time.Time, state string) Intent {
			t.Helper()
			got, err := db.OpenIntent(Intent{RunID: runID, System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b",
				ContractID: "29684183", ServiceID: "30000012", Before: 1, After: 2, BeforeKnown: true, Created: created})
			if err != nil {
				t.Fatal(err)
			}
			if state != IntentOpen {
				if err := db.CompleteIntent(got.ID, state, "", created); err != nil {
					t.Fatal(err)
				}
			}
			return got
		}
		open := in(pending.ID, old, IntentOpen)
		done := in(doomed[0], old, IntentDone)
		failed := in(doomed[0], old, IntentFailed)
		review := in(doomed[0], old, IntentReview)
		fresh := in(recent.ID, t0, IntentDone)

		for i := range 5 {
			if err := db.PutExport(ExportVersion{Revision: int64(i + 1), At: old}, fmt.Appendf(nil, "export %d", i+1)); err != nil {
				t.Fatal(err)
			}
		}

		p, err := db.PruneHistory(t.Context(), Retention{Before: t0.AddDate(0, 0, -1), ExportBodies: 2})
		if err != nil {
			t.Fatalf("PruneHistory returned error: %v", err)
		}
		if want := (Pruned{Runs: int64(len(doomed)), Intents: 2, ExportBodies: 3}); p != want {
			t.Errorf("PruneHistory = %+v, want %+v", p, want)
		}
		runs, err := db.Runs(0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		if want := []int64{recent.ID, running.ID, lastFull.ID, pending.ID, success.ID}; !slices.Equal(ids, want) {
			t.Errorf("runs after PruneHistory = %v, want %v (recent, running, last full pass, open intent's, last success)", ids, want)
		}
		var intents []int64
		rows, err := db.sql.QueryContext(t.Context(), `SELECT id FROM intents ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			intents = append(intents, id)
		}
		_ = rows.Close()
		if want := []int64{open.ID, review.ID, fresh.ID}; !slices.Equal(intents, want) {
			t.Errorf("intents after PruneHistory = %v, want %v (open, review, recent); done %d and failed %d go", intents, want, done.ID, failed.ID)
		}
		if l, err := db.Ledger(0); err != nil || len(l) != 2 {
			t.Errorf("ledger after PruneHistory = %d entries, %v; want both kept", len(l), err)
		}
		h, err := db.ExportHistory(0)
		if err != nil || len(h) != 5 {
			t.Fatalf("export history after PruneHistory = %+v, %v; want the 5 records kept", h, err)
		}
		for rev := int64(1); rev <= 5; rev++ {
			var n int
			if err := db.sql.QueryRowContext(t.Context(), db.q(`SELECT length(body) FROM export_versions WHERE revision = ?`), rev).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 0, false: len("export 1")}[rev <= 3]; n != want {
				t.Errorf("export revision %d has a body of %d bytes after PruneHistory keeping 2, want %d", rev, n, want)
			}
		}
		if _, body, err := db.CurrentExport(); err != nil || string(body) != "export 5" {
			t.Errorf("CurrentExport after PruneHistory = %q, %v; want export 5", body, err)
		}
		if v, body, err := db.PreviousExport(5); err != nil || v.Revision != 4 || string(body) != "export 4" {
			t.Errorf("PreviousExport(5) after PruneHistory = revision %d %q, %v; want revision 4", v.Revision, body, err)
		}
		if v, body, err := db.PreviousExport(4); !errors.Is(err, ErrNoExport) {
			t.Errorf("PreviousExport(4) after PruneHistory = revision %d %q, %v; want ErrNoExport: the older bodies are emptied", v.Revision, body, err)
		}

		again, err := db.PruneHistory(t.Context(), Retention{Before: t0.AddDate(0, 0, -1), ExportBodies: 2})
		if err != nil || again.Total() != 0 {
			t.Errorf("second PruneHistory = %+v, %v; want nothing left to remove", again, err)
		}
		if p, err := db.PruneHistory(t.Context(), Retention{}); err != nil || p.Total() != 0 {
			t.Errorf("PruneHistory with no retention = %+v, %v; want nothing removed", p, err)
		}
	})
}

// TestPruneHistory_keepPeriods: the newest finished pass over all
// customers of each kept billing month stays whatever its age (the failed
// month-end pass of November, for the status page's offer and
// psa_sync_ended_period_last_run_result after a restart), while an older
// pass of that month, a dry run, a pass for one customer and a month not
// kept go.
func TestPruneHistory_keepPeriods(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		old := t0.AddDate(0, 0, -5)
		run := func(r Run) int64 {
			t.Helper()
			r.Trigger, r.Started, r.Finished = "schedule", old, old
			got, err := db.BeginRun(r)
			if err != nil {
				t.Fatal(err)
			}
			return got.ID
		}
		octLast := run(Run{Period: "2026-10", Result: RunFailure})
		novEarlier := run(Run{Period: "2026-11", Result: RunSuccess})
		novLast := run(Run{Period: "2026-11", Result: RunFailure})
		novDry := run(Run{Period: "2026-11", Result: RunFailure, DryRun: true})
		novOne := run(Run{Period: "2026-11", Result: RunFailure, Customer: "718b"})
		// December's passes: the newest of them is the newest full pass,
		// kept anyway.
		decFirst := run(Run{Period: "2026-12", Result: RunFailure})
		decLast := run(Run{Period: "2026-12", Result: RunSuccess})

		if _, err := db.PruneHistory(t.Context(), Retention{Before: t0, KeepPeriods: []string{"2026-12", "2026-11"}}); err != nil {
			t.Fatal(err)
		}
		runs, err := db.Runs(0)
		if err != nil {
			t.Fatal(err)
		}
		var kept []int64
		for _, r := range runs {
			kept = append(kept, r.ID)
		}
		slices.Sort(kept)
		if want := []int64{novLast, decLast}; !slices.Equal(kept, want) {
			t.Errorf("runs kept = %v, want %v (November's last %d, December's last %d; gone: October's %d, November's earlier %d, dry %d and one customer's %d, December's first %d)",
				kept, want, novLast, decLast, octLast, novEarlier, novDry, novOne, decFirst)
		}
	})
}
