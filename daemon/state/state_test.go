package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// testDriver is one database the table-driven tests run against.
type testDriver struct {
	name string
	// config returns the Config of a new, empty database.
	config func(t *testing.T) Config
}

var testDrivers = []testDriver{
	{DriverSQLite, func(t *testing.T) Config { return Config{Driver: DriverSQLite, Path: t.TempDir()} }},
	{DriverPostgres, func(t *testing.T) Config { return Config{Driver: DriverPostgres, URL: pgtest.NewDatabase(t)} }},
}

// forEachDriver runs fn as a parallel subtest per driver.
func forEachDriver(t *testing.T, fn func(t *testing.T, d testDriver)) {
	t.Helper()
	t.Parallel()
	for _, d := range testDrivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// closeDB closes db, failing the test if that fails.
func closeDB(t *testing.T, db *DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Errorf("Close returned error: %v", err)
	}
}

// openConfig opens cfg and makes the process the active instance, as the
// daemon does before it writes.
func openConfig(t *testing.T, cfg Config) *DB {
	t.Helper()
	db, err := OpenConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenConfig returned error: %v", err)
	}
	// A killed holder's lock is freed as soon as PostgreSQL sees its
	// connection close, which may take a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := db.TryLead(t.Context(), LeaderInfo{Holder: t.Name()}, time.Second)
		if err == nil && l != nil {
			return db
		}
		if err != nil || time.Now().After(deadline) {
			_ = db.Close()
			t.Fatalf("TryLead = %v, %v; want the leadership", l, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openTest opens a new database of driver d, closed when the test ends.
func openTest(t *testing.T, d testDriver) *DB {
	t.Helper()
	db := openConfig(t, d.config(t))
	t.Cleanup(func() { closeDB(t, db) })
	return db
}

var t0 = time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)

func TestMigrations_sameInEveryDialect(t *testing.T) {
	t.Parallel()
	lite, err := migrations(dialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := migrations(dialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != SchemaVersion || len(pg) != SchemaVersion {
		t.Fatalf("%d SQLite and %d PostgreSQL migrations, want SchemaVersion = %d of each", len(lite), len(pg), SchemaVersion)
	}
	for i := range lite {
		if lite[i].version != pg[i].version || lite[i].name != pg[i].name {
			t.Errorf("migration %d is %d_%s for SQLite but %d_%s for PostgreSQL", i+1, lite[i].version, lite[i].name, pg[i].version, pg[i].name)
		}
	}
}

func TestOpen_reopenKeepsData(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		cs := CustomerStatus{Source: "sophos", CustomerID: "718b", Result: CustomerSucceeded, LastAttempt: t0}
		if err := db.PutCustomerStatus(cs); err != nil {
			t.Fatal(err)
		}
		r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		db = openConfig(t, cfg)
		defer closeDB(t, db)
		got, ok, err := db.CustomerStatus("sophos", "718b")
		if err != nil || !ok || !cmp.Equal(got, cs) {
			t.Errorf("CustomerStatus after reopen = %+v, %v, %v; want %+v", got, ok, err, cs)
		}
		r2, err := db.BeginRun(Run{Trigger: "manual", Started: t0})
		if err != nil {
			t.Fatal(err)
		}
		if r2.ID != r.ID+1 {
			t.Errorf("run id after reopen = %d, want %d", r2.ID, r.ID+1)
		}
		if v, err := db.Version(); err != nil || v != SchemaVersion {
			t.Errorf("Version = %d, %v; want %d", v, err, SchemaVersion)
		}
	})
}

func TestOpen_newerSchemaRefused(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		if _, err := db.sql.Exec(db.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 'now')`), SchemaVersion+1); err != nil {
			t.Fatal(err)
		}
		where := db.quotedPath()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := OpenConfig(t.Context(), cfg)
		want := fmt.Sprintf("state: state database %s has schema version %d, but this psa-syncd supports up to %d: "+
			"upgrade psa-syncd or use another state directory", where, SchemaVersion+1, SchemaVersion)
		if err == nil || err.Error() != want {
			t.Errorf("OpenConfig error = %v, want %q", err, want)
		}
	})
}

func TestCustomerStatus_roundTripAndOrder(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		in := []CustomerStatus{
			{Source: "sophos", CustomerID: "b", CustomerName: "Beta", CompanyID: "174", ContractID: "29684183",
				UsageSync: true, TicketSync: true, LastAttempt: t0, LastSuccess: t0.Add(-time.Hour),
				Result: CustomerFailed, Error: "autotask: 403", Hint: "check the API user's security level",
				RunID: "7", Updated: 1, Unchanged: 2, Held: 3, Failed: 4},
			{Source: "sophos", CustomerID: "a", Result: CustomerSucceeded, LastAttempt: t0},
			{Source: "file", CustomerID: "z", Result: CustomerSkipped},
			// "sophos" must sort before "sophos2" whatever the customer ids,
			// and "B" before "a" (byte order, whatever the locale).
			{Source: "sophos2", CustomerID: "0", Result: CustomerHeld},
			{Source: "sophos", CustomerID: "B", Result: CustomerHeld},
		}
		for _, cs := range in {
			if err := db.PutCustomerStatus(cs); err != nil {
				t.Fatalf("PutCustomerStatus(%+v) returned error: %v", cs, err)
			}
		}
		got, ok, err := db.CustomerStatus("sophos", "b")
		if err != nil || !ok {
			t.Fatalf("CustomerStatus returned %v, %v", ok, err)
		}
		if !cmp.Equal(got, in[0]) {
			t.Errorf("CustomerStatus round trip: %s", cmp.Diff(in[0], got))
		}
		// Put replaces.
		upd := in[1]
		upd.Result = CustomerFailed
		upd.Error = "boom"
		if err := db.PutCustomerStatus(upd); err != nil {
			t.Fatal(err)
		}
		all, err := db.CustomerStatuses()
		if err != nil {
			t.Fatal(err)
		}
		want := []CustomerStatus{in[2], in[4], upd, in[0], in[3]}
		if !cmp.Equal(all, want) {
			t.Errorf("CustomerStatuses mismatch (-want +got):\n%s", cmp.Diff(want, all))
		}
		if _, ok, err := db.CustomerStatus("sophos", "missing"); ok || err != nil {
			t.Errorf("CustomerStatus(missing) = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestCustomerStatus_badKeys(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		for _, cs := range []CustomerStatus{
			{Source: "", CustomerID: "a"},
			{Source: "sophos", CustomerID: ""},
			{Source: "sop\x00hos", CustomerID: "a"},
		} {
			if err := db.PutCustomerStatus(cs); err == nil {
				t.Errorf("PutCustomerStatus(%q, %q) returned nil error", cs.Source, cs.CustomerID)
			}
		}
		if all, err := db.CustomerStatuses(); err != nil || len(all) != 0 {
			t.Errorf("CustomerStatuses = %v, %v; want none", all, err)
		}
	})
}

// A run left "running" by a process that was killed or lost the leadership
// is marked as an interrupted failure; finished runs are left alone.
func TestRuns_interruptRunningRuns(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		done, err := db.BeginRun(Run{Trigger: "schedule", Started: t0, Finished: t0.Add(time.Minute), Result: RunSuccess, Updated: 3})
		if err != nil {
			t.Fatal(err)
		}
		failed, err := db.BeginRun(Run{Trigger: "api", Started: t0.Add(time.Hour), Finished: t0.Add(61 * time.Minute), Result: RunFailure, Error: "autotask: 500"})
		if err != nil {
			t.Fatal(err)
		}
		var running []Run
		for _, r := range []Run{{Trigger: "schedule", Started: t0.Add(2 * time.Hour)}, {Trigger: "cli", DryRun: true, Customer: "718b", Started: t0.Add(3 * time.Hour)}} {
			r, err := db.BeginRun(r)
			if err != nil {
				t.Fatal(err)
			}
			running = append(running, r)
		}
		at := t0.Add(5*time.Hour + 123456789)
		n, err := db.InterruptRunningRuns(at, "psa-syncd stopped")
		if err != nil || n != 2 {
			t.Fatalf("InterruptRunningRuns = %d, %v; want 2, nil", n, err)
		}
		for _, want := range running {
			want.Result, want.Error, want.Finished = RunFailure, "pass interrupted: psa-syncd stopped", db.stored(at)
			got, _, err := db.Run(want.ID)
			if err != nil || !cmp.Equal(got, want) {
				t.Errorf("run %d after InterruptRunningRuns = %+v, %v; want %+v", want.ID, got, err, want)
			}
			if !got.Interrupted() {
				t.Errorf("run %d: Interrupted() = false, want true", want.ID)
			}
		}
		for _, want := range []Run{done, failed} {
			got, _, err := db.Run(want.ID)
			if err != nil || !cmp.Equal(got, want) {
				t.Errorf("finished run %d after InterruptRunningRuns = %+v, %v; want it unchanged: %+v", want.ID, got, err, want)
			}
			if got.Interrupted() {
				t.Errorf("finished run %d (%s): Interrupted() = true, want false", want.ID, want.Result)
			}
		}
		if n, err := db.InterruptRunningRuns(at, "again"); err != nil || n != 0 {
			t.Errorf("second InterruptRunningRuns = %d, %v; want 0, nil", n, err)
		}
	})
}

// TestRuns_note: a run's note (psa-syncd set-by-hand's record of
// quantities set by hand) is stored by BeginRun and read back by every
// read of runs.
func TestRuns_note(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		want := Run{Trigger: "by_hand", Started: t0, Finished: t0, Result: RunSuccess, Period: "2026-11",
			Note: "user jane: additions set in ConnectWise before invoicing"}
		r, err := db.BeginRun(want)
		if err != nil {
			t.Fatal(err)
		}
		want.ID = r.ID
		got, ok, err := db.Run(r.ID)
		if err != nil || !ok || !cmp.Equal(got, want) {
			t.Errorf("Run = %+v, %v, %v; want %+v", got, ok, err, want)
		}
		if last, ok, err := db.LastFullRunOfPeriod("2026-11"); err != nil || !ok || !cmp.Equal(last, want) {
			t.Errorf("LastFullRunOfPeriod(2026-11) = %+v, %v, %v; want %+v", last, ok, err, want)
		}
		if _, err := db.BeginRun(Run{Trigger: "schedule", Started: t0, Period: "2026-11", DryRun: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.BeginRun(Run{Trigger: "schedule", Started: t0, Period: "2026-11", Customer: "718b"}); err != nil {
			t.Fatal(err)
		}
		if last, ok, err := db.LastFullRunOfPeriod("2026-11"); err != nil || !ok || last.ID != want.ID {
			t.Errorf("LastFullRunOfPeriod(2026-11) after a dry run and a pass for one customer = %+v, %v, %v; want run %d", last, ok, err, want.ID)
		}
		if _, ok, err := db.LastFullRunOfPeriod("2026-10"); ok || err != nil {
			t.Errorf("LastFullRunOfPeriod(2026-10) = %v, %v; want none", ok, err)
		}
		for name, read := range map[string]func() ([]Run, error){"Runs": func() ([]Run, error) { return db.Runs(0) },
			"FullRuns": func() ([]Run, error) { return db.FullRuns(0) }} {
			runs, err := read()
			if err != nil || len(runs) == 0 || runs[len(runs)-1].Note != want.Note {
				t.Errorf("%s = %+v, %v; want the run with its note", name, runs, err)
			}
		}
	})
}

// TestRuns_existingOlderSchema: a database of schema version 7 (without
// the runs' note, nor the ticket records' missing_since) opened as it is (Config.Existing: psa-syncd ledger or
// check of a newer psa-syncd than the daemon that left it) reads its runs,
// with an empty note, and stays at version 7.
func TestRuns_existingOlderSchema(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0, Finished: t0, Result: RunSuccess, Period: "2026-11"})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a", Ref: "sc:a", State: tickets.StateOpen}); err != nil {
			t.Fatal(err)
		}
		for _, v := range []int{10, 9, 8} {
			if _, err := db.sql.Exec(undoMigration[v]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.sql.Exec(`DELETE FROM schema_migrations WHERE version >= 8`); err != nil {
			t.Fatal(err)
		}
		closeDB(t, db)
		cfg.Existing = true
		db, err = OpenConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer closeDB(t, db)
		got, ok, err := db.Run(r.ID)
		if err != nil || !ok || got.Period != "2026-11" || got.Note != "" {
			t.Errorf("Run on schema version 7 = %+v, %v, %v; want the run without a note", got, ok, err)
		}
		if runs, err := db.FullRuns(0); err != nil || len(runs) != 1 {
			t.Errorf("FullRuns on schema version 7 = %+v, %v", runs, err)
		}
		// Nor the ticket records' missing_since (version 9).
		if recs, err := db.TicketRecords("sophos", "c1"); err != nil || len(recs) != 1 || !recs[0].MissingSince.IsZero() {
			t.Errorf("TicketRecords on schema version 7 = %+v, %v; want the record without missing_since", recs, err)
		}
		if v, err := db.Version(); err != nil || v != 7 {
			t.Errorf("Version = %d, %v; want 7, as it was", v, err)
		}
	})
}

func TestRuns_lifecycleOrderAndLimit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		if runs, err := db.Runs(10); err != nil || len(runs) != 0 {
			t.Fatalf("Runs on empty db = %v, %v", runs, err)
		}
		var ids []int64
		for i := range 5 {
			r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0.Add(time.Duration(i) * time.Hour), Period: "2026-11"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Result != RunRunning {
				t.Errorf("BeginRun Result = %q, want %q", r.Result, RunRunning)
			}
			ids = append(ids, r.ID)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("run ids not increasing: %v", ids)
			}
		}
		r, ok, err := db.Run(ids[2])
		if err != nil || !ok {
			t.Fatalf("Run(%d) = %v, %v", ids[2], ok, err)
		}
		r.Finished = r.Started.Add(90*time.Second + 123456789*time.Nanosecond)
		r.Result = RunPartial
		r.Error = "hourly budget nearly used"
		r.Updated, r.Unchanged, r.Held, r.Failed, r.Requests, r.Customers = 3, 40, 1, 2, 57, 12
		r.DryRun = true
		r.Customer = "718b"
		r.Note = "jane: set in the PSA by hand"
		if err := db.SaveRun(r); err != nil {
			t.Fatalf("SaveRun returned error: %v", err)
		}
		got, ok, err := db.Run(ids[2])
		// Times are kept to the nanosecond, on PostgreSQL to the microsecond.
		r.Finished = db.stored(r.Finished)
		if err != nil || !ok || !cmp.Equal(got, r) {
			t.Errorf("Run after SaveRun = %+v, %v, %v; want %+v", got, ok, err, r)
		}
		if err := db.SaveRun(Run{ID: 999}); err == nil {
			t.Error("SaveRun of an unknown run returned nil error")
		}
		if _, ok, err := db.Run(999); ok || err != nil {
			t.Errorf("Run(999) = %v, %v; want false, nil", ok, err)
		}
		runs, err := db.Runs(3)
		if err != nil {
			t.Fatal(err)
		}
		var gotIDs []int64
		for _, r := range runs {
			gotIDs = append(gotIDs, r.ID)
		}
		if want := []int64{ids[4], ids[3], ids[2]}; !cmp.Equal(gotIDs, want) {
			t.Errorf("Runs(3) ids = %v, want %v", gotIDs, want)
		}
		all, err := db.Runs(0)
		if err != nil || len(all) != 5 || all[0].ID != ids[4] || all[4].ID != ids[0] {
			t.Errorf("Runs(0) = %d runs, %v; want all 5 newest first", len(all), err)
		}
		for _, c := range []struct {
			before int64
			limit  int
			want   []int64
		}{
			{ids[3], 2, []int64{ids[2], ids[1]}},
			{ids[1], 0, []int64{ids[0]}},
			{ids[0], 10, nil},
			{0, 2, []int64{ids[4], ids[3]}},
		} {
			page, err := db.RunsBefore(c.before, c.limit)
			var got []int64
			for _, r := range page {
				got = append(got, r.ID)
			}
			if err != nil || !cmp.Equal(got, c.want) {
				t.Errorf("RunsBefore(%d, %d) ids = %v, %v; want %v", c.before, c.limit, got, err, c.want)
			}
		}
		// Run ids[2] became a dry run for one customer.
		full, err := db.FullRuns(0)
		if err != nil || len(full) != 4 || full[0].ID != ids[4] || full[1].ID != ids[3] || full[2].ID != ids[1] {
			t.Errorf("FullRuns(0) = %+v, %v; want the 4 runs over all customers that were not dry runs, newest first", full, err)
		}
		if full, err := db.FullRuns(2); err != nil || len(full) != 2 || full[1].ID != ids[3] {
			t.Errorf("FullRuns(2) = %+v, %v; want runs %d and %d", full, err, ids[4], ids[3])
		}
	})
}

func testIntent() Intent {
	return Intent{
		RunID: 3, System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b",
		ContractID: "29684183", ServiceID: "30000012",
		Before: 40, After: 42, BeforeKnown: true,
		EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC),
		Created:       t0,
	}
}

func TestIntent_lifecycleDoneAppendsLedger(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		in, err := db.OpenIntent(testIntent())
		if err != nil {
			t.Fatalf("OpenIntent returned error: %v", err)
		}
		if in.ID == 0 || in.State != IntentOpen {
			t.Errorf("OpenIntent = ID %d State %q, want an id and %q", in.ID, in.State, IntentOpen)
		}
		open, err := db.OpenIntents()
		if err != nil {
			t.Fatal(err)
		}
		if want := []Intent{in}; !cmp.Equal(open, want) {
			t.Errorf("OpenIntents mismatch (-want +got):\n%s", cmp.Diff(want, open))
		}
		if _, ok, _ := db.LastSet(in.ContractID, in.ServiceID); ok {
			t.Error("LastSet found an entry before the intent was done")
		}
		at := t0.Add(time.Minute)
		if err := db.CompleteIntent(in.ID, IntentDone, "adjustment posted", at); err != nil {
			t.Fatalf("CompleteIntent returned error: %v", err)
		}
		if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
			t.Errorf("OpenIntents after done = %v, %v; want none", open, err)
		}
		want := LedgerEntry{
			Seq: 1, RunID: 3, System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b",
			ContractID: "29684183", ServiceID: "30000012", Before: 40, After: 42,
			EffectiveDate: in.EffectiveDate, Time: at, IntentID: in.ID,
		}
		got, ok, err := db.LastSet("29684183", "30000012")
		if err != nil || !ok {
			t.Fatalf("LastSet = %v, %v", ok, err)
		}
		if !cmp.Equal(got, want) {
			t.Errorf("LastSet mismatch (-want +got):\n%s", cmp.Diff(want, got))
		}
		// A closed intent cannot be completed again, whatever the new state.
		for _, s := range []string{IntentDone, IntentFailed, IntentReview} {
			err := db.CompleteIntent(in.ID, s, "", at)
			if err == nil || !strings.Contains(err.Error(), "already done") {
				t.Errorf("CompleteIntent(%s) on a done intent = %v, want an 'already done' error", s, err)
			}
		}
		if l, err := db.Ledger(0); err != nil || len(l) != 1 {
			t.Errorf("Ledger after repeated completion = %d entries, %v; want 1", len(l), err)
		}
	})
}

func TestIntent_failedAndReviewWriteNoLedger(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		for _, s := range []string{IntentFailed, IntentReview} {
			in, err := db.OpenIntent(testIntent())
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CompleteIntent(in.ID, s, "autotask: 500", t0); err != nil {
				t.Fatalf("CompleteIntent(%s) returned error: %v", s, err)
			}
			if err := db.CompleteIntent(in.ID, IntentDone, "", t0); err == nil {
				t.Errorf("CompleteIntent(done) after %s returned nil error", s)
			}
		}
		if l, err := db.Ledger(0); err != nil || len(l) != 0 {
			t.Errorf("Ledger = %v, %v; want empty", l, err)
		}
		if _, ok, err := db.LastSet("29684183", "30000012"); ok || err != nil {
			t.Errorf("LastSet = %v, %v; want false, nil", ok, err)
		}
		if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
			t.Errorf("OpenIntents = %v, %v; want none", open, err)
		}
	})
}

func TestIntent_errors(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		if err := db.CompleteIntent(42, IntentDone, "", t0); err == nil || !strings.Contains(err.Error(), "no such intent") || !errors.Is(err, ErrRefused) {
			t.Errorf("CompleteIntent(unknown) = %v, want a 'no such intent' error matching ErrRefused", err)
		}
		in, err := db.OpenIntent(testIntent())
		if err != nil {
			t.Fatal(err)
		}
		// Completing an intent that is closed already is refused, and
		// says so through ErrRefused (the API's 409 for a race with the
		// pass that settled it).
		closed, err := db.OpenIntent(testIntent())
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteIntent(closed.ID, IntentFailed, "", t0); err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteIntent(closed.ID, IntentDone, "", t0); !errors.Is(err, ErrRefused) {
			t.Errorf("CompleteIntent(closed) = %v, want an error matching ErrRefused", err)
		}
		if err := db.CompleteIntent(in.ID, "open", "", t0); err == nil {
			t.Error("CompleteIntent(state open) returned nil error")
		}
		if err := db.CompleteIntent(in.ID, "bogus", "", t0); err == nil {
			t.Error("CompleteIntent(state bogus) returned nil error")
		}
		bad := testIntent()
		bad.ServiceID = ""
		if _, err := db.OpenIntent(bad); err == nil {
			t.Error("OpenIntent without a service id returned nil error")
		}
		if open, err := db.OpenIntents(); err != nil || len(open) != 1 || open[0].ID != in.ID {
			t.Errorf("OpenIntents = %v, %v; want only %d", open, err, in.ID)
		}
	})
}

func TestIntent_stateIsForcedOpenAndCreatedDefaulted(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		req := testIntent()
		req.State = IntentDone
		req.Created = time.Time{}
		in, err := db.OpenIntent(req)
		if err != nil {
			t.Fatal(err)
		}
		if in.State != IntentOpen || in.Created.IsZero() {
			t.Errorf("OpenIntent = State %q Created %v, want open and a time", in.State, in.Created)
		}
		open, err := db.OpenIntents()
		if err != nil || len(open) != 1 || !cmp.Equal(open[0], in) {
			t.Errorf("OpenIntents = %+v, %v; want exactly what OpenIntent returned, %+v", open, err, in)
		}
	})
}

func TestIntent_concurrentWriters(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		const writers, each = 8, 10
		errs := make(chan error, writers)
		for w := range writers {
			go func() {
				for i := range each {
					req := testIntent()
					req.ServiceID = fmt.Sprintf("s%d-%d", w, i)
					in, err := db.OpenIntent(req)
					if err != nil {
						errs <- err
						return
					}
					if err := db.CompleteIntent(in.ID, IntentDone, "", t0); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range writers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		ledger, err := db.Ledger(0)
		if err != nil {
			t.Fatal(err)
		}
		seqs := map[int64]bool{}
		intents := map[int64]bool{}
		for _, e := range ledger {
			seqs[e.Seq] = true
			intents[e.IntentID] = true
		}
		if len(ledger) != writers*each || len(seqs) != writers*each || len(intents) != writers*each {
			t.Errorf("ledger has %d entries, %d distinct seqs, %d distinct intents; want %d of each",
				len(ledger), len(seqs), len(intents), writers*each)
		}
	})
}

func TestLedger_appendOrderAndLastSet(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		type line struct{ contract, service string }
		steps := []struct {
			line          line
			before, after int64
		}{
			{line{"c1", "s1"}, 0, 10},
			{line{"c1", "s2"}, 5, 6},
			{line{"c1", "s1"}, 10, 12},
			{line{"c2", "s1"}, 0, 1},
			{line{"c1", "s1"}, 12, 7},
		}
		for i, s := range steps {
			req := testIntent()
			req.ContractID, req.ServiceID = s.line.contract, s.line.service
			req.Before, req.After = s.before, s.after
			in, err := db.OpenIntent(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CompleteIntent(in.ID, IntentDone, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		all, err := db.Ledger(0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(steps) {
			t.Fatalf("Ledger(0) has %d entries, want %d", len(all), len(steps))
		}
		for i, e := range all {
			s := steps[len(steps)-1-i]
			if e.Seq != int64(len(steps)-i) || e.ContractID != s.line.contract || e.After != s.after {
				t.Errorf("Ledger(0)[%d] = seq %d %s/%s after %d; want seq %d %s/%s after %d",
					i, e.Seq, e.ContractID, e.ServiceID, e.After, len(steps)-i, s.line.contract, s.line.service, s.after)
			}
		}
		two, err := db.Ledger(2)
		if err != nil || len(two) != 2 || two[0].Seq != 5 || two[1].Seq != 4 {
			t.Errorf("Ledger(2) = %+v, %v; want seqs 5, 4", two, err)
		}
		for _, tc := range []struct {
			line  line
			after int64
			seq   int64
		}{
			{line{"c1", "s1"}, 7, 5},
			{line{"c1", "s2"}, 6, 2},
			{line{"c2", "s1"}, 1, 4},
		} {
			e, ok, err := db.LastSet(tc.line.contract, tc.line.service)
			if err != nil || !ok || e.After != tc.after || e.Seq != tc.seq {
				t.Errorf("LastSet(%s, %s) = %+v, %v, %v; want after %d seq %d", tc.line.contract, tc.line.service, e, ok, err, tc.after, tc.seq)
			}
		}
		if _, ok, err := db.LastSet("c1s", "1"); ok || err != nil {
			t.Errorf("LastSet(c1s, 1) = %v, %v; want false, nil", ok, err)
		}
	})
}

// TestLedger_setBefore: the entry in force before a time is the one with
// the latest effective date before it (the newest among equals), not the
// one posted last.
func TestLedger_setBefore(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
		// Posted in this order: October 30, December 42, November 45
		// (the effective date moved earlier), November 46.
		for i, e := range []struct {
			effective time.Time
			after     int64
		}{{day(10, 1), 30}, {day(12, 1), 42}, {day(11, 1), 45}, {day(11, 1), 46}} {
			req := testIntent()
			req.ContractID, req.ServiceID, req.EffectiveDate, req.After = "c1", "s1", e.effective, e.after
			in, err := db.OpenIntent(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CompleteIntent(in.ID, IntentDone, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			before time.Time
			ok     bool
			after  int64
		}{
			{day(10, 1), false, 0},
			{day(10, 2), true, 30},
			{day(11, 2), true, 46},
			{day(12, 2), true, 42},
			{day(12, 31), true, 42},
		} {
			e, ok, err := db.SetBefore("c1", "s1", tc.before)
			if err != nil || ok != tc.ok || e.After != tc.after {
				t.Errorf("SetBefore(c1, s1, %s) = %+v, %v, %v; want %v, after %d", tc.before.Format(time.DateOnly), e, ok, err, tc.ok, tc.after)
			}
		}
		if e, ok, err := db.LastSet("c1", "s1"); err != nil || !ok || e.After != 46 {
			t.Errorf("LastSet(c1, s1) = %+v, %v, %v; want the entry posted last (46)", e, ok, err)
		}
		if _, ok, err := db.SetBefore("c2", "s1", day(12, 31)); ok || err != nil {
			t.Errorf("SetBefore(c2, s1) = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestExport_putCurrentHistory(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		if _, _, err := db.CurrentExport(); !errors.Is(err, ErrNotFound) {
			t.Errorf("CurrentExport on an empty database = %v, want ErrNotFound", err)
		}
		bodies := []string{`{"revision":1}`, `{"revision":2}`, `{"revision":3,"x":"\u0000"}`}
		for i, b := range bodies {
			v := ExportVersion{Revision: int64(i + 1), Digest: fmt.Sprintf("sha256:%d", i), At: t0.Add(time.Duration(i) * time.Minute), Source: "terraform"}
			if err := db.PutExport(v, []byte(b)); err != nil {
				t.Fatalf("PutExport(%d) returned error: %v", v.Revision, err)
			}
		}
		for _, rev := range []int64{3, 2} {
			err := db.PutExport(ExportVersion{Revision: rev, Digest: "other"}, []byte("{}"))
			if !errors.Is(err, ErrConflict) {
				t.Errorf("PutExport(revision %d again) = %v, want ErrConflict", rev, err)
			}
		}
		v, body, err := db.CurrentExport()
		want := ExportVersion{Revision: 3, Digest: "sha256:2", Size: int64(len(bodies[2])), At: t0.Add(2 * time.Minute), Source: "terraform"}
		if err != nil || !cmp.Equal(v, want) || string(body) != bodies[2] {
			t.Errorf("CurrentExport = %+v, %q, %v; want %+v, %q", v, body, err, want, bodies[2])
		}
		h, err := db.ExportHistory(2)
		if err != nil || len(h) != 2 || h[0].Revision != 3 || h[1].Revision != 2 || h[1].Size != int64(len(bodies[1])) {
			t.Errorf("ExportHistory(2) = %+v, %v; want revisions 3, 2", h, err)
		}
		if all, err := db.ExportHistory(0); err != nil || len(all) != 3 {
			t.Errorf("ExportHistory(0) = %d versions, %v; want 3", len(all), err)
		}
	})
}

// TestExport_concurrentWritersOnOneDatabase: two psa-syncd processes on one
// database (replicas on PostgreSQL), each storing the exports that
// concurrent applies send it, compare-and-swap on the revision: every
// write is stored once, with its own revision, and none replaces another's.
func TestExport_concurrentWritersOnOneDatabase(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		const writers, each = 2, 10
		// A SQLite database is one process's (its lock refuses a second):
		// its writers share one handle.
		dbs := make([]*DB, 2)
		for i := range dbs {
			if i > 0 && d.name == DriverSQLite {
				dbs[i] = dbs[0]
				continue
			}
			db, err := OpenConfig(t.Context(), cfg)
			if err != nil {
				t.Fatalf("OpenConfig returned error: %v", err)
			}
			t.Cleanup(func() { closeDB(t, db) })
			dbs[i] = db
		}
		var wg sync.WaitGroup
		for i, db := range dbs {
			for w := range writers {
				wg.Go(func() {
					for n := 0; n < each; {
						rev := int64(1)
						if cur, _, err := db.CurrentExport(); err == nil {
							rev = cur.Revision + 1
						} else if !errors.Is(err, ErrNoExport) {
							t.Error(err)
							return
						}
						body := fmt.Sprintf("process %d writer %d write %d", i, w, n)
						switch err := db.PutExport(ExportVersion{Revision: rev, Digest: body}, []byte(body)); {
						case errors.Is(err, ErrConflict):
							// Lost the race: read again, as the export client does on 412.
						case err != nil:
							t.Error(err)
							return
						default:
							n++
						}
					}
				})
			}
		}
		wg.Wait()
		h, err := dbs[0].ExportHistory(0)
		if err != nil {
			t.Fatal(err)
		}
		want := len(dbs) * writers * each
		bodies := map[string]bool{}
		for _, v := range h {
			bodies[v.Digest] = true
		}
		if len(h) != want || len(bodies) != want || h[0].Revision != int64(want) {
			t.Errorf("history has %d versions (%d distinct, newest revision %d), want %d, each stored once", len(h), len(bodies), h[0].Revision, want)
		}
	})
}

func TestWriteHistory_emptyStart(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		// Runs and statuses alone (a dry run, say) are no write history.
		if _, err := db.BeginRun(Run{Trigger: "cli", DryRun: true}); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.HasWriteHistory(); ok || err != nil {
			t.Errorf("HasWriteHistory on a new database = %v, %v; want false", ok, err)
		}
		if err := db.AllowEmptyStart(t0); err != nil {
			t.Fatal(err)
		}
		if err := db.AllowEmptyStart(t0); err != nil {
			t.Fatalf("second AllowEmptyStart: %v", err)
		}
		if ok, err := db.HasWriteHistory(); !ok || err != nil {
			t.Errorf("HasWriteHistory after AllowEmptyStart = %v, %v; want true", ok, err)
		}
		other := openTest(t, d)
		if _, err := other.OpenIntent(testIntent()); err != nil {
			t.Fatal(err)
		}
		if ok, err := other.HasWriteHistory(); !ok || err != nil {
			t.Errorf("HasWriteHistory with an intent = %v, %v; want true", ok, err)
		}
	})
}

func TestJSONFieldNames(t *testing.T) {
	t.Parallel()
	// Records are served as JSON with snake_case names.
	data, err := json.Marshal(LedgerEntry{Seq: 1, ContractID: "c", EffectiveDate: t0, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":1,"run_id":0,"system":"","source":"","customer_id":"","contract_id":"c","service_id":"",` +
		`"before":0,"after":0,"effective_date":"2026-11-21T10:00:00Z","time":"2026-11-21T10:00:00Z","intent_id":0}`
	if string(data) != want {
		t.Errorf("LedgerEntry JSON = %s, want %s", data, want)
	}
}

// The crash-safety test runs a child copy of this test binary that opens an
// intent and dies without closing the database, the way a SIGKILL or a
// power cut would leave it.
const (
	crashEnvDriver = "PSA_SYNC_STATE_CRASH_CHILD_DRIVER"
	crashEnvPath   = "PSA_SYNC_STATE_CRASH_CHILD_PATH"
	crashEnvURL    = "PSA_SYNC_STATE_CRASH_CHILD_URL"
	// crashEnvMode "group" makes the child write from many goroutines
	// without end (groupCrashChild).
	crashEnvMode = "PSA_SYNC_STATE_CRASH_CHILD_MODE"
)

// TestMain turns this test binary into the crash child when crashEnvDriver
// is set, before any test runs; otherwise it runs the tests and stops the
// PostgreSQL cluster they shared.
func TestMain(m *testing.M) {
	if drv := os.Getenv(crashEnvDriver); drv != "" {
		crashChild(Config{Driver: drv, Path: os.Getenv(crashEnvPath), URL: os.Getenv(crashEnvURL)})
	}
	os.Exit(pgtest.Main(m))
}

// crashChild completes one intent, opens another, reports its id and then
// blocks until the parent kills it, exactly where a daemon would be
// sending the write. It never closes the database.
func crashChild(cfg Config) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	db, err := OpenConfig(context.Background(), cfg)
	if err != nil {
		fail(err)
	}
	if _, err := db.TryLead(context.Background(), LeaderInfo{Holder: "crash child"}, time.Second); err != nil {
		fail(err)
	}
	if os.Getenv(crashEnvMode) == "group" {
		groupCrashChild(db, fail)
	}
	done, err := db.OpenIntent(testIntent())
	if err != nil {
		fail(err)
	}
	if err := db.CompleteIntent(done.ID, IntentDone, "", t0); err != nil {
		fail(err)
	}
	in, err := db.OpenIntent(testIntent())
	if err != nil {
		fail(err)
	}
	fmt.Printf("intent %d\n", in.ID) // os.Stdout is unbuffered: the parent reads it now
	select {}
}

// startCrashChild starts the crash child on cfg in mode ("" or "group")
// and returns it with its stdout and what it writes to stderr.
func startCrashChild(t *testing.T, cfg Config, mode string) (*exec.Cmd, io.Reader, *strings.Builder) {
	t.Helper()
	// TestMain diverts the child before any test runs; -test.run=^$
	// makes sure it would run none even if it did not.
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDriver+"="+cfg.Driver, crashEnvPath+"="+cfg.Path, crashEnvURL+"="+cfg.URL,
		crashEnvMode+"="+mode)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(strings.Builder)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, stderr
}

func TestIntent_survivesCrash(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		cmd, stdout, stderr := startCrashChild(t, cfg, "")
		var id int64
		if _, err := fmt.Fscanf(stdout, "intent %d\n", &id); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("reading the child's intent id: %v (stderr: %s)", err, stderr.String())
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred Close, no clean exit
			t.Fatal(err)
		}
		if err := cmd.Wait(); err == nil {
			t.Fatal("child exited cleanly, want killed")
		}

		// Reopening (and, on PostgreSQL, taking the lock the dead child
		// held) succeeds at once.
		db := openConfig(t, cfg)
		defer closeDB(t, db)
		open, err := db.OpenIntents()
		if err != nil {
			t.Fatal(err)
		}
		if len(open) != 1 || open[0].ID != id || open[0].State != IntentOpen || open[0].After != 42 {
			t.Fatalf("OpenIntents after crash = %+v, want intent %d open", open, id)
		}
		if l, err := db.Ledger(0); err != nil || len(l) != 1 || l[0].IntentID == id {
			t.Errorf("Ledger after crash = %+v, %v; want only the completed intent's entry", l, err)
		}
		if err := db.CompleteIntent(id, IntentDone, "reconciled: PSA shows 42", t0); err != nil {
			t.Errorf("CompleteIntent after crash returned error: %v", err)
		}
	})
}

// TestQueryLedger checks that the database selects ledger entries by
// line, customer, effective month and seq cursor, newest first, so that a
// page of the API costs the page.
func TestQueryLedger(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		oct := time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC)
		nov := time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
		dec := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)
		var ins []Intent
		for i, e := range []struct {
			customer, contract string
			effective          time.Time
		}{
			{"a", "c1", oct}, {"b", "c2", nov}, {"a", "c1", nov.Add(29*24*time.Hour + 23*time.Hour)}, {"a", "c2", dec}, {"b", "c2", nov},
		} {
			in := testIntent()
			in.CustomerID, in.ContractID, in.EffectiveDate, in.After = e.customer, e.contract, e.effective, int64(i)
			ins = append(ins, in)
		}
		opened, err := db.OpenIntentBatch(t.Context(), ins)
		if err != nil {
			t.Fatal(err)
		}
		var cs []IntentCompletion
		for _, in := range opened {
			cs = append(cs, IntentCompletion{ID: in.ID, State: IntentDone, At: t0})
		}
		if err := db.CompleteIntentBatch(t.Context(), cs); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			q    LedgerQuery
			want []int64
		}{
			{"all", LedgerQuery{}, []int64{5, 4, 3, 2, 1}},
			{"customer", LedgerQuery{CustomerID: "a"}, []int64{4, 3, 1}},
			{"line", LedgerQuery{ContractID: "c2", ServiceID: "30000012"}, []int64{5, 4, 2}},
			{"other service", LedgerQuery{ServiceID: "1"}, nil},
			{"november", LedgerQuery{EffectiveFrom: nov, EffectiveTo: dec}, []int64{5, 3, 2}},
			{"first page", LedgerQuery{Limit: 2}, []int64{5, 4}},
			{"next page", LedgerQuery{Before: 4, Limit: 2}, []int64{3, 2}},
			{"newer than", LedgerQuery{After: 3}, []int64{5, 4}},
			{"between", LedgerQuery{CustomerID: "b", Before: 5, After: 1}, []int64{2}},
		} {
			got, err := db.QueryLedger(tc.q)
			var seqs []int64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if err != nil || !slices.Equal(seqs, tc.want) {
				t.Errorf("%s: QueryLedger(%+v) = seqs %v, %v; want %v", tc.name, tc.q, seqs, err, tc.want)
			}
		}
	})
}

// TestLedger_linesSet: LinesSet names the lines of the given contracts
// that psa-syncd set above 0 for the system, once each, whatever they were
// set to last; a line only ever set to 0, another system's line and
// another contract's are not named.
func TestLedger_linesSet(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		for i, s := range []struct {
			sys               psa.System
			contract, service string
			after             int64
		}{
			{psa.SystemConnectWise, "800", "700", 42},
			{psa.SystemConnectWise, "800", "700", 0},
			{psa.SystemConnectWise, "800", "701", 0},
			{psa.SystemConnectWise, "801", "700", 3},
			{psa.SystemConnectWise, "802", "700", 5},
			{psa.SystemAutotask, "800", "702", 9},
		} {
			req := testIntent()
			req.System, req.ContractID, req.ServiceID, req.After = s.sys, s.contract, s.service, s.after
			in, err := db.OpenIntent(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CompleteIntent(in.ID, IntentDone, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.LinesSet(psa.SystemConnectWise, []string{"800", "801", "803"})
		want := map[psa.LineKey]bool{{ContractID: "800", ServiceID: "700"}: true, {ContractID: "801", ServiceID: "700"}: true}
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("LinesSet = %v, %v; want %v", got, err, want)
		}
	})
}

// TestLedger_customerLinesSet: CustomerLinesSet gives, by customer, the
// lines of any contract that psa-syncd set above 0 for the customers
// asked, of the system and source asked, each with the seq of its newest
// entry above 0: not a line only ever set to 0, another system's or
// source's, nor another customer's.
func TestLedger_customerLinesSet(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		for i, s := range []struct {
			sys               psa.System
			source, customer  string
			contract, service string
			after             int64
		}{
			{psa.SystemConnectWise, "sophos", "c1", "800", "700", 42},
			{psa.SystemConnectWise, "sophos", "c1", "800", "700", 0},
			{psa.SystemConnectWise, "sophos", "c1", "801", "700", 7},
			{psa.SystemConnectWise, "sophos", "c1", "801", "701", 0},
			{psa.SystemConnectWise, "file", "c1", "802", "700", 3},
			{psa.SystemAutotask, "sophos", "c1", "803", "700", 3},
			{psa.SystemConnectWise, "sophos", "c2", "804", "700", 5},
			{psa.SystemConnectWise, "sophos", "c3", "805", "700", 5},
		} {
			req := testIntent()
			req.System, req.Source, req.CustomerID, req.ContractID, req.ServiceID, req.After = s.sys, s.source, s.customer, s.contract, s.service, s.after
			in, err := db.OpenIntent(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CompleteIntent(in.ID, IntentDone, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.CustomerLinesSet(psa.SystemConnectWise, "sophos", []string{"c1", "c2", "c9"})
		want := map[string][]CustomerLine{
			"c1": {{psa.LineKey{ContractID: "800", ServiceID: "700"}, 1}, {psa.LineKey{ContractID: "801", ServiceID: "700"}, 3}},
			"c2": {{psa.LineKey{ContractID: "804", ServiceID: "700"}, 7}},
		}
		if err != nil || !cmp.Equal(got, want) {
			t.Errorf("CustomerLinesSet = %v, %v; want %v", got, err, want)
		}
		if db.dialect != dialectSQLite {
			return
		}
		// The lookup by customer reads the ledger's customer index, not
		// the whole ledger.
		rows, err := db.sql.Query(`EXPLAIN QUERY PLAN SELECT customer_id, contract_id, service_id, MAX(seq) FROM ledger
			WHERE system = ? AND source = ? AND qty_after > 0 AND customer_id IN (?, ?)
			GROUP BY customer_id, contract_id, service_id`, "connectwise", "sophos", "c1", "c2")
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(plan, "; "), "INDEX ledger_customer") {
			t.Errorf("query plan of the lookup by customer = %q, want it to use the index ledger_customer", plan)
		}
	})
}

// TestLedger_linesInForce: LinesInForce gives, for each line of the given
// contracts, the entry SetBefore gives: the latest effective date before
// the time, the newest among equals; a line changed only from that date on,
// and another contract's, are not named.
func TestLedger_linesInForce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
		for i, s := range []struct {
			contract, service string
			before, after     int64
			eff               time.Time
		}{
			{"800", "700", 0, 40, day(time.October, 1)},
			{"800", "700", 40, 45, day(time.November, 1)},
			{"800", "700", 45, 44, day(time.November, 1)},
			{"800", "700", 44, 50, day(time.December, 1)},
			{"800", "701", 0, 3, day(time.December, 1)},
			{"801", "700", 0, 7, day(time.October, 1)},
			{"802", "700", 0, 9, day(time.October, 1)},
		} {
			req := testIntent()
			req.ContractID, req.ServiceID, req.Before, req.After, req.EffectiveDate = s.contract, s.service, s.before, s.after, s.eff
			in, err := db.OpenIntent(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CompleteIntent(in.ID, IntentDone, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.LinesInForce([]string{"800", "801", "803"}, day(time.November, 2))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Errorf("LinesInForce = %+v, want 2 lines", got)
		}
		for _, k := range []psa.LineKey{{ContractID: "800", ServiceID: "700"}, {ContractID: "801", ServiceID: "700"}} {
			want, ok, err := db.SetBefore(k.ContractID, k.ServiceID, day(time.November, 2))
			if err != nil || !ok {
				t.Fatalf("SetBefore %v = %v, %v", k, ok, err)
			}
			if g := got[k]; g.Seq != want.Seq || g.Before != want.Before || g.After != want.After {
				t.Errorf("LinesInForce[%v] = %+v, want %+v", k, g, want)
			}
		}
		if g := got[psa.LineKey{ContractID: "800", ServiceID: "700"}]; g.Before != 45 || g.After != 44 {
			t.Errorf("line 800/700 = %+v, want the newest entry of 2026-11-01 (45 -> 44)", g)
		}
	})
}

// TestIntentByID: an intent is found by its id whatever its state, with
// whether the line's quantity before it was known; an unknown id is not
// found.
func TestIntentByID(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		req := testIntent()
		req.Before, req.After, req.BeforeKnown = 0, 42, false
		in, err := db.OpenIntent(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteIntent(in.ID, IntentDone, "", t0); err != nil {
			t.Fatal(err)
		}
		got, ok, err := db.IntentByID(in.ID)
		if err != nil || !ok || got.ID != in.ID || got.State != IntentDone || got.BeforeKnown || got.After != 42 {
			t.Errorf("IntentByID(%d) = %+v, %v, %v; want the done intent, before not known", in.ID, got, ok, err)
		}
		if _, ok, err := db.IntentByID(in.ID + 100); ok || err != nil {
			t.Errorf("IntentByID(unknown) = %v, %v; want not found", ok, err)
		}
	})
}
