package state

import (
	"errors"
	"testing"
	"time"
)

// TestFenced_writesNeedTheLeadership: on a shared PostgreSQL database, the
// fenced operator writes (an intent completed by an operator's answer, a
// run recorded by hand) commit only through the session that holds the
// leadership lock: refused with ErrNotLeader before any instance leads and
// on the standby, and by the instance whose lock session ended, before its
// watch noticed (through the lock's broken connection) and after; nothing
// of them is stored. The instance that takes over writes as usual.
func TestFenced_writesNeedTheLeadership(t *testing.T) {
	t.Parallel()
	a, b := openSharedPostgres(t)
	run := Run{Trigger: "by_hand", Result: RunSuccess, Started: t0, Finished: t0, Period: "2026-10", Note: "jane"}
	refused := func(when string, db *DB, id int64) {
		t.Helper()
		if err := db.Fenced().CompleteIntent(id, IntentFailed, "resolved by an operator: not posted", t0); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Fenced().CompleteIntent %s = %v, want an error matching ErrNotLeader", when, err)
		}
		if r, err := db.Fenced().BeginRun(run); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Fenced().BeginRun %s = %+v, %v, want an error matching ErrNotLeader", when, r, err)
		}
		if err := db.Fenced().PutSnapshot("cleared", []string{when}); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Fenced().PutSnapshot %s = %v, want an error matching ErrNotLeader", when, err)
		}
		if stored, err := db.Fenced().ReplaceSnapshot("listed", `["a"]`, true, []string{when}); stored || !errors.Is(err, ErrNotLeader) {
			t.Errorf("Fenced().ReplaceSnapshot %s = %t, %v, want an error matching ErrNotLeader", when, stored, err)
		}
	}

	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, time.Hour)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v", la, err)
	}
	var ins [2]Intent
	for i := range ins {
		in := testIntent()
		in.ServiceID = string(rune('1' + i))
		if ins[i], err = a.OpenIntent(in); err != nil {
			t.Fatal(err)
		}
	}
	refused("by the standby", b, ins[0].ID)
	if err := a.Fenced().CompleteIntent(ins[0].ID, IntentDone, "resolved by an operator: posted", t0); err != nil {
		t.Errorf("a.Fenced().CompleteIntent while leading = %v", err)
	}
	if r, err := a.Fenced().BeginRun(run); err != nil || r.ID == 0 || r.Trigger != "by_hand" {
		t.Errorf("a.Fenced().BeginRun while leading = %+v, %v", r, err)
	}
	if err := a.Fenced().PutSnapshot("listed", []string{"a"}); err != nil {
		t.Errorf("a.Fenced().PutSnapshot while leading = %v", err)
	}
	if stored, err := a.Fenced().ReplaceSnapshot("listed", `["a"]`, true, []string{"b"}); !stored || err != nil {
		t.Errorf("a.Fenced().ReplaceSnapshot while leading = %t, %v; want it stored", stored, err)
	}
	if err := a.Fenced().PutSnapshot("listed", []string{"a"}); err != nil {
		t.Errorf("a.Fenced().PutSnapshot while leading = %v", err)
	}

	// a's lock session ends while its pool still works; its watch checks
	// once an hour, so a does not know yet.
	if _, err := b.sql.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, leaderLockKey&0xffffffff); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, held, err := b.Leader(); err != nil || !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's lock was not freed within 10s of its session ending")
		}
		time.Sleep(20 * time.Millisecond)
	}
	refused("after the lock's session ended, before the loss is noticed", a, ins[1].ID)
	lb, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, time.Hour)
	if err != nil || lb == nil {
		t.Fatalf("b.TryLead after a lost the lock = %v, %v", lb, err)
	}
	refused("after the takeover", a, ins[1].ID)

	if err := b.Fenced().CompleteIntent(ins[1].ID, IntentFailed, "resolved by an operator: not posted", t0); err != nil {
		t.Errorf("b.Fenced().CompleteIntent after the takeover = %v", err)
	}
	var cleared []string
	if found, err := b.Snapshot("cleared", &cleared); found || err != nil {
		t.Errorf("snapshot written by the refused Fenced().PutSnapshot = %v (%t, %v); want none", cleared, found, err)
	}
	var listed []string
	if _, err := b.Snapshot("listed", &listed); err != nil || len(listed) != 1 || listed[0] != "a" {
		t.Errorf("snapshot after the refused Fenced().ReplaceSnapshot = %v, %v; want [a], as the leader stored it", listed, err)
	}
	open, err := b.OpenIntents()
	if err != nil || len(open) != 0 {
		t.Errorf("open intents = %+v, %v; want none", open, err)
	}
	runs, err := b.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Errorf("runs = %+v; want only the one a recorded while it led: the refused ones stored nothing", runs)
	}
}

// TestFenced_sqliteNeedsNoLeadership: on SQLite, whose file lock makes the
// process the only one, the fenced writes are ordinary ones.
func TestFenced_sqliteNeedsNoLeadership(t *testing.T) {
	t.Parallel()
	db, err := OpenConfig(t.Context(), Config{Driver: DriverSQLite, Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	in, err := db.OpenIntent(testIntent())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Fenced().CompleteIntent(in.ID, IntentDone, "resolved by an operator: posted", t0); err != nil {
		t.Errorf("Fenced().CompleteIntent = %v", err)
	}
	if _, ok, err := db.LastSet(in.ContractID, in.ServiceID); err != nil || !ok {
		t.Errorf("ledger after the fenced completion as done: %t, %v; want its entry", ok, err)
	}
	r, err := db.Fenced().BeginRun(Run{Trigger: "by_hand", Result: RunSuccess, Started: t0, Finished: t0, Period: "2026-10", Note: "jane"})
	if err != nil || r.ID == 0 {
		t.Fatalf("Fenced().BeginRun = %+v, %v", r, err)
	}
	if got, ok, err := db.Run(r.ID); err != nil || !ok || got.Note != "jane" || got.Result != RunSuccess || !got.Started.Equal(t0) {
		t.Errorf("Run(%d) = %+v, %t, %v; want the run as recorded", r.ID, got, ok, err)
	}
}

// TestPassRecords_needTheLeadershipOnceLed: on a shared PostgreSQL
// database, a pass's records (its run, customer statuses, the snapshots it
// stores through PassWrites) go through the
// pool on an instance that never led (a standby's dry run), and through the
// leadership lock's session once it led: an instance that lost the lock,
// and noticed, commits none of them, so that neither its run's end
// replaces the interrupted mark of the instance that took over nor its
// statuses those of the new active instance's pass.
func TestPassRecords_needTheLeadershipOnceLed(t *testing.T) {
	t.Parallel()
	a, b := openSharedPostgres(t)
	status := func(result string) CustomerStatus {
		return CustomerStatus{Source: "sophos", CustomerID: "cust-1", Result: result, LastAttempt: t0}
	}
	dry, err := b.BeginRun(Run{Trigger: "api", DryRun: true, Started: t0})
	if err != nil {
		t.Fatalf("BeginRun on an instance that never led = %v", err)
	}
	dry.Result, dry.Finished = RunSuccess, t0
	if err := b.SaveRun(dry); err != nil {
		t.Errorf("SaveRun on an instance that never led = %v", err)
	}
	if err := b.PassWrites().PutSnapshot("lines_doubted", []string{"standby"}); err != nil {
		t.Errorf("PassWrites().PutSnapshot on an instance that never led = %v", err)
	}

	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, 100*time.Millisecond)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v", la, err)
	}
	run, err := a.BeginRun(Run{Trigger: "api", Started: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutCustomerStatusBatch(t.Context(), []CustomerStatus{status(CustomerSucceeded)}); err != nil {
		t.Fatal(err)
	}
	if err := a.PassWrites().PutSnapshot("lines_doubted", []string{"a"}); err != nil {
		t.Errorf("PassWrites().PutSnapshot while leading = %v", err)
	}
	if _, err := b.sql.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, leaderLockKey&0xffffffff); err != nil {
		t.Fatal(err)
	}
	<-la.Lost()
	for {
		lb, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, time.Hour)
		if err != nil {
			t.Fatalf("b.TryLead after a lost the lock = %v", err)
		}
		if lb != nil {
			break
		}
		// The lock is freed once a's server process has exited.
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := b.InterruptRunningRuns(t0.Add(time.Minute), "taken over"); n != 1 || err != nil {
		t.Fatalf("b.InterruptRunningRuns = %d, %v; want a's run", n, err)
	}
	if err := b.PutCustomerStatus(status(CustomerFailed)); err != nil {
		t.Fatal(err)
	}
	if err := b.PassWrites().PutSnapshot("lines_doubted", []string{"b"}); err != nil {
		t.Fatal(err)
	}

	run.Result, run.Finished = RunSuccess, t0.Add(2*time.Minute)
	if err := a.SaveRun(run); !errors.Is(err, ErrNotLeader) {
		t.Errorf("SaveRun of the deposed instance = %v, want an error matching ErrNotLeader", err)
	}
	if r, err := a.BeginRun(Run{Trigger: "api", Started: t0}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("BeginRun of the deposed instance = %+v, %v, want an error matching ErrNotLeader", r, err)
	}
	if err := a.PutCustomerStatusBatch(t.Context(), []CustomerStatus{status(CustomerSucceeded)}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("PutCustomerStatusBatch of the deposed instance = %v, want an error matching ErrNotLeader", err)
	}
	if err := a.PutCustomerStatus(status(CustomerSucceeded)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("PutCustomerStatus of the deposed instance = %v, want an error matching ErrNotLeader", err)
	}
	if err := a.PassWrites().PutSnapshot("lines_doubted", []string{"a"}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("PassWrites().PutSnapshot of the deposed instance = %v, want an error matching ErrNotLeader", err)
	}
	if stored, err := a.PassWrites().ReplaceSnapshot("lines_doubted", `["b"]`, true, []string{"a"}); stored || !errors.Is(err, ErrNotLeader) {
		t.Errorf("PassWrites().ReplaceSnapshot of the deposed instance = %t, %v, want an error matching ErrNotLeader", stored, err)
	}
	if err := a.PutCustomerStatusDeferred(status(CustomerSucceeded)); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(t.Context()); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Flush of the deposed instance's deferred status = %v, want an error matching ErrNotLeader", err)
	}

	if got, ok, err := b.Run(run.ID); err != nil || !ok || !got.Interrupted() || !got.Finished.Equal(t0.Add(time.Minute)) {
		t.Errorf("a's run = %+v, %t, %v; want it as the takeover marked it interrupted", got, ok, err)
	}
	if cs, _, err := b.CustomerStatus("sophos", "cust-1"); err != nil || cs.Result != CustomerFailed {
		t.Errorf("status = %+v, %v; want the one the new active instance stored", cs, err)
	}
	var doubted []string
	if _, err := b.Snapshot("lines_doubted", &doubted); err != nil || len(doubted) != 1 || doubted[0] != "b" {
		t.Errorf("lines_doubted = %v, %v; want the one the new active instance stored", doubted, err)
	}
	if runs, err := b.Runs(0); err != nil || len(runs) != 2 {
		t.Errorf("runs = %+v, %v; want the standby's dry run and a's", runs, err)
	}
}
