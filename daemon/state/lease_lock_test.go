package state

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// openLeaderWithDBA opens a state database on a new PostgreSQL database with
// queryTimeout, makes it the active instance (checking the lock every
// 100 ms), and opens a second one for the DBA's sessions.
func openLeaderWithDBA(t *testing.T, queryTimeout time.Duration) (a *DB, la *Leadership, dba *DB) {
	t.Helper()
	return openLeader(t, Config{QueryTimeout: queryTimeout})
}

// openLeader is openLeaderWithDBA with the active instance's database
// opened with cfg, whose Driver it sets, and its URL when empty.
func openLeader(t *testing.T, cfg Config) (a *DB, la *Leadership, dba *DB) {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = pgtest.NewDatabase(t)
	}
	url := cfg.URL
	cfg.Driver = DriverPostgres
	a, err := OpenConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	dba, err = OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dba.Close() })
	la, err = a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, 100*time.Millisecond)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v; want the leadership", la, err)
	}
	t.Cleanup(func() { _ = la.Release() })
	return a, la, dba
}

// stillLeading stops the test when la has been lost.
func stillLeading(t *testing.T, la *Leadership) {
	t.Helper()
	select {
	case <-la.Lost():
		t.Fatalf("leadership lost: %v", la.Err())
	default:
	}
}

// lockTable locks table in mode in a transaction of db's pool, which the
// returned function (also called at the test's end) rolls back.
func lockTable(t *testing.T, db *DB, table, mode string) func() {
	t.Helper()
	tx, err := db.sql.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(t.Context(), `LOCK TABLE `+table+` IN `+mode+` MODE`); err != nil {
		t.Fatal(err)
	}
	// At the test's end t.Context is done, which fails the ROLLBACK (and
	// closes the connection, ending the transaction all the same).
	t.Cleanup(func() { _ = tx.Rollback() })
	return func() {
		if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			t.Errorf("releasing the lock on %s: %v", table, err)
		}
	}
}

// lockWaitSQL gives, through the DBA's connection, how long session $1 has
// run the statement that waits for a lock on table $2, by the server's
// clock; no row while it waits for none.
const lockWaitSQL = `SELECT EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float8 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.pid = $1 AND NOT l.granted AND l.locktype = 'relation' AND l.relation = $2::regclass`

// waitForLockWait waits until the server shows session pid waiting for a
// lock on table, for at least least: the tests below go on from what the
// server shows, not from how long they slept, which a loaded machine
// stretches.
func waitForLockWait(t *testing.T, dba *DB, pid int64, table string, least time.Duration) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var waited float64
		err := dba.sql.QueryRowContext(t.Context(), lockWaitSQL, pid, table).Scan(&waited)
		switch {
		case err == nil && time.Duration(waited*float64(time.Second)) >= least:
			return
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			t.Fatal(err)
		case time.Now().After(deadline):
			t.Fatalf("session %d did not wait %s for a lock on %s within a minute", pid, least, table)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// completeWaitingForTwoLocks completes intent id through a's lock session
// (a commit that writes intents, then ledger) while the DBA holds a lock on
// each table, and returns the commit's error. The lock on intents is
// released once the server shows the commit waiting a quarter of
// queryTimeout for it, the lock on ledger once the commit returned: the
// two waits together outlast the transaction bound (a tenth below
// queryTimeout) whatever the machine's load, and neither alone reaches the
// statement bound (a fifth below).
func completeWaitingForTwoLocks(t *testing.T, a, dba *DB, id int64, queryTimeout time.Duration) error {
	t.Helper()
	releaseIntents := lockTable(t, dba, "intents", "EXCLUSIVE")
	releaseLedger := lockTable(t, dba, "ledger", "EXCLUSIVE")
	done := make(chan error, 1)
	go func() {
		done <- a.CompleteIntentBatch(context.Background(), []IntentCompletion{{ID: id, State: IntentDone}})
	}()
	waitForLockWait(t, dba, a.fenceSession.pid, "intents", queryTimeout/4)
	releaseIntents()
	waitForLockWait(t, dba, a.fenceSession.pid, "ledger", 0)
	err := <-done
	releaseLedger()
	return err
}

// TestLeadership_leaseKeptWhileACommitWaitsForALock: a commit through the
// lock's session waits for a lock that maintenance holds on intents (less
// than the statement bound). The watch could not check the lock meanwhile
// (the commit holds the session), so the lease ran out after 5 s and every
// write of the pass whose intent was recorded earlier was refused and
// closed as not sent, though this instance led all along. The lease is kept
// while the server shows the session holding the lock and running the
// statement; the commit succeeds once the lock is gone.
func TestLeadership_leaseKeptWhileACommitWaitsForALock(t *testing.T) {
	t.Parallel()
	a, la, dba := openLeaderWithDBA(t, 10*time.Second)
	pid := a.fenceSession.pid
	release := lockTable(t, dba, "intents", "EXCLUSIVE")
	done := make(chan error, 1)
	go func() {
		_, err := a.OpenIntentBatch(context.Background(), []Intent{testIntent()})
		done <- err
	}()
	waitForLockWait(t, dba, pid, "intents", 0)
	term := time.Duration(a.leaseTerm.Load())
	for start := time.Now(); time.Since(start) < term+time.Second; time.Sleep(100 * time.Millisecond) {
		if err := a.CheckFence(); err != nil {
			t.Fatalf("CheckFence %s into a commit that waits for a lock = %v, want nil: the session holds the lock and answers",
				time.Since(start).Round(time.Millisecond), err)
		}
	}
	release()
	if err := <-done; err != nil {
		t.Errorf("OpenIntentBatch once the lock is gone = %v", err)
	}
	stillLeading(t, la)
}

// TestLeadership_leaseNotKeptForASessionThatEnded: the lease kept while a
// commit waits (above) needs the server to show the session holding the
// lock: once it has ended (pg_terminate_backend), CheckFence refuses at
// once, and the leadership is lost.
func TestLeadership_leaseNotKeptForASessionThatEnded(t *testing.T) {
	t.Parallel()
	a, la, dba := openLeaderWithDBA(t, 10*time.Second)
	pid := a.fenceSession.pid
	release := lockTable(t, dba, "intents", "EXCLUSIVE")
	defer release()
	done := make(chan error, 1)
	go func() {
		_, err := a.OpenIntentBatch(context.Background(), []Intent{testIntent()})
		done <- err
	}()
	waitForLockWait(t, dba, pid, "intents", 0)
	if _, err := dba.sql.ExecContext(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("OpenIntentBatch through a session that was ended = nil, want an error")
	}
	select {
	case <-la.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("leadership not lost 5s after its session ended")
	}
	if err := a.CheckFence(); !errors.Is(err, ErrNotLeader) {
		t.Errorf("CheckFence after the session ended = %v, want ErrNotLeader", err)
	}
}

// TestLeadership_lockedSchemaMigrationsKeepsTheLeadership: maintenance holds
// (or waits for, behind a long pg_dump) an ACCESS EXCLUSIVE lock on
// schema_migrations, which the watch reads at every check. The check
// waited for it until the statement timeout and then gave the leadership
// up; the standby met the same lock, so no instance synced. The check
// waits a short lock_timeout; the session answered, so the leadership and
// the lease are kept, and the schema version is read again at the next
// check.
func TestLeadership_lockedSchemaMigrationsKeepsTheLeadership(t *testing.T) {
	t.Parallel()
	// A query_timeout of 10 s: with 1 s, a CPU-starved test process (nice
	// 19 beside busy loops) gave up the intent's commit below, or a check,
	// before the server answered, and that lost the leadership.
	a, la, dba := openLeaderWithDBA(t, 10*time.Second)
	release := lockTable(t, dba, "schema_migrations", "ACCESS EXCLUSIVE")
	for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(100 * time.Millisecond) {
		select {
		case <-la.Lost():
			t.Fatalf("leadership lost while schema_migrations is locked: %v", la.Err())
		default:
		}
		if err := a.CheckFence(); err != nil {
			t.Fatalf("CheckFence while schema_migrations is locked = %v, want nil", err)
		}
	}
	if _, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err != nil {
		t.Errorf("OpenIntentBatch while schema_migrations is locked = %v; intents are not", err)
	}
	release()
	// A check of the lock after the lock on schema_migrations is gone
	// answered (it renews the lease).
	released := monoNow()
	for deadline := time.Now().Add(time.Minute); a.leaseAnswered.Load() <= released; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no check of the leadership lock answered within a minute after schema_migrations was unlocked")
		}
	}
	if err := a.CheckFence(); err != nil || !a.IsLeader() {
		t.Errorf("after the lock: CheckFence = %v, IsLeader = %v; want nil, true", err, a.IsLeader())
	}
}

// TestLeadership_twoLockWaitsInOneCommitKeepTheLeadership: one commit
// through the lock's session waits for two locks in turn (a VACUUM FULL of
// the whole database goes table by table), each shorter than the
// statement bound but together longer than state.query_timeout. The client
// gave the transaction up at query_timeout, which closed the lock's
// connection: the leadership was lost. The server cancels the transaction's
// statement at the transaction bound; the session, and the leadership,
// live on.
//
// The test goes on from the waits the server shows, not from sleeps: the
// first lock is released once the commit has waited a quarter of
// query_timeout for it (5 s; the statement bound is 16 s), the second is
// held until the commit returns, so that the two waits together outlast
// the transaction bound (18 s) whatever the machine's load, and neither
// alone reaches the statement bound. The cancel has the last tenth of
// query_timeout to reach the server before the client gives up: 2 s here
// (with a twentieth, the test's earlier 3 s left it 150 ms, which a load
// of 15 outlasted; audit-tickets6).
func TestLeadership_twoLockWaitsInOneCommitKeepTheLeadership(t *testing.T) {
	t.Parallel()
	const queryTimeout = 20 * time.Second
	a, la, dba := openLeaderWithDBA(t, queryTimeout)
	pid := a.fenceSession.pid
	ins, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()})
	if err != nil {
		t.Fatal(err)
	}
	err = completeWaitingForTwoLocks(t, a, dba, ins[0].ID, queryTimeout)
	if err == nil || !strings.Contains(err.Error(), "canceling statement") || !strings.Contains(err.Error(), "waited 18s in all, for locks that another session holds") {
		t.Errorf("CompleteIntentBatch waiting for two locks = %v; want the statement cancelled by the server at the transaction bound (18 s, "+
			"a tenth below query_timeout), saying why", err)
	}
	// The lock's session lives on, holding the lock: an intent, which is
	// committed only through that session, is recorded (through a session
	// that ended, it fails at once).
	var holder int64
	if err := dba.sql.QueryRowContext(t.Context(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`, leaderLockKey>>32, leaderLockKey&0xffffffff).Scan(&holder); err != nil || holder != pid {
		t.Errorf("the leadership lock's holder = %d, %v; want session %d, which held it before the commit", holder, err, pid)
	}
	other := testIntent()
	other.ServiceID = "30000013"
	if _, err := a.OpenIntentBatch(t.Context(), []Intent{other}); err != nil {
		t.Errorf("OpenIntentBatch once the locks are gone = %v", err)
	}
	if err := a.CompleteIntentBatch(t.Context(), []IntentCompletion{{ID: ins[0].ID, State: IntentDone}}); err != nil {
		t.Errorf("CompleteIntentBatch once the locks are gone = %v", err)
	}
	stillLeading(t, la)
}

// TestLeadership_checkInAnAbortedTransactionKeepsTheLeadership: the lock's
// session is left inside an aborted transaction (a statement of it failed
// and its ROLLBACK was not sent). The next check of the lock then failed
// with "current transaction is aborted" (25P02), and the instance gave the
// leadership up although the session, and its lock, were alive (a
// CPU-starved run, audit-fence5 finding 2). The check now rolls back and
// checks again first.
func TestLeadership_checkInAnAbortedTransactionKeepsTheLeadership(t *testing.T) {
	t.Parallel()
	a, la, _ := openLeaderWithDBA(t, 10*time.Second)
	a.fenceMu.Lock()
	if _, err := a.fence.ExecContext(t.Context(), `BEGIN`); err != nil {
		a.fenceMu.Unlock()
		t.Fatal(err)
	}
	_, err := a.fence.ExecContext(t.Context(), `SELECT 1/0`)
	a.fenceMu.Unlock()
	if err == nil {
		t.Fatal("SELECT 1/0 succeeded; want the transaction aborted")
	}
	// A check sent after the transaction was aborted answered.
	aborted := monoNow()
	for deadline := time.Now().Add(time.Minute); a.leaseAnswered.Load() <= aborted; time.Sleep(10 * time.Millisecond) {
		select {
		case <-la.Lost():
			t.Fatalf("leadership lost by a check in an aborted transaction: %v", la.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no check of the leadership lock answered within a minute after the transaction was aborted")
		}
	}
	if err := a.CheckFence(); err != nil || !a.IsLeader() {
		t.Errorf("after the check: CheckFence = %v, IsLeader = %v; want nil, true", err, a.IsLeader())
	}
	if _, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err != nil {
		t.Errorf("OpenIntentBatch after the check = %v, want it committed through the lock's session", err)
	}
}

// TestLeadership_twoLockWaitsWithThePoolInUseKeepTheLeadership: as
// TestLeadership_twoLockWaitsInOneCommitKeepTheLeadership, while every
// pooled connection is in use (a pass's reads at state.max_open_conns).
// The server's cancel at the transaction bound went through a pooled
// connection: it waited for one, never reached the server, the client gave
// the transaction up at query_timeout, which closed the lock's connection,
// and the leadership was lost (as a CPU-starved machine's late cancel did,
// audit-fence5 finding 1). It is now a cancel request of the session's
// own, which needs no pooled connection.
func TestLeadership_twoLockWaitsWithThePoolInUseKeepTheLeadership(t *testing.T) {
	t.Parallel()
	const queryTimeout = 8 * time.Second
	a, la, dba := openLeader(t, Config{QueryTimeout: queryTimeout, MaxOpenConns: 2})
	ins, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()})
	if err != nil {
		t.Fatal(err)
	}
	// The lock's session is one of the two; the other is taken.
	busy, err := a.sql.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	err = completeWaitingForTwoLocks(t, a, dba, ins[0].ID, queryTimeout)
	_ = busy.Close()
	if err == nil || !strings.Contains(err.Error(), "canceling statement") || !strings.Contains(err.Error(), "for locks that another session holds") {
		t.Errorf("CompleteIntentBatch waiting for two locks with the pool in use = %v; want the statement cancelled by the server at the "+
			"transaction bound, saying why", err)
	}
	stillLeading(t, la)
	if err := a.CompleteIntentBatch(t.Context(), []IntentCompletion{{ID: ins[0].ID, State: IntentDone}}); err != nil {
		t.Errorf("CompleteIntentBatch once the locks are gone = %v", err)
	}
	stillLeading(t, la)
}

// TestCancelAfter_stopTwice: stopping the cancels of a transaction through
// the lock's session twice returns, and sends nothing, when the bound never
// passed: a second call found the timer stopped and waited for a cancel
// loop that never ran.
func TestCancelAfter_stopTwice(t *testing.T) {
	t.Parallel()
	var db DB
	requested := false
	stop, cancelled := db.cancelAfter(t.Context(), backendID{}, func(context.Context) error { requested = true; return nil }, time.Hour)
	done := make(chan struct{})
	go func() {
		stop()
		stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("a second stop did not return")
	}
	if cancelled() || requested {
		t.Error("a cancel was sent before the bound passed")
	}
}

// TestCancelAfter_aRequestUnderWayIsWaitedForUntilTheTransactionEnds: a
// cancel request that the server has not answered yet (a postmaster short
// of CPU forks the process that reads it late) is waited for by stop for
// as long as the transaction may run, and given up with the transaction.
// It was given up after 1 s, a deadline of its own: stop then returned
// while the request was still on its way, and it could reach the ROLLBACK
// or COMMIT that follows stop (pgx closes the lock's connection: the
// leadership lost) or the session's next statement (audit-fence7, not
// fixed 1).
func TestCancelAfter_aRequestUnderWayIsWaitedForUntilTheTransactionEnds(t *testing.T) {
	t.Parallel()
	var db DB
	// The transaction's context: no deadline, the test ends it.
	txCtx, endTx := context.WithCancel(t.Context())
	defer endTx()
	underWay := make(chan context.Context, 1)
	request := func(ctx context.Context) error {
		select {
		case underWay <- ctx:
		default:
		}
		// Never answered: only the end of ctx ends the request.
		<-ctx.Done()
		return ctx.Err()
	}
	stop, cancelled := db.cancelAfter(txCtx, backendID{}, request, time.Millisecond)
	rctx := <-underWay
	if d, ok := rctx.Deadline(); ok {
		t.Errorf("the cancel request under way is given up at a deadline of its own (in %s) while the transaction goes on",
			time.Until(d).Round(time.Second))
	}
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	// The transaction ends (its deadline, or the client's): the request
	// is given up with it, and stop returns.
	endTx()
	<-stopped
	if rctx.Err() == nil {
		t.Error("stop returned while the cancel request was still under way")
	}
	if !cancelled() {
		t.Error("cancelled() = false after a cancel request was made")
	}
}

// TestLeadership_noCancelAfterAStatementFailed: a transaction through the
// lock's session waits for two locks in turn (as
// TestLeadership_twoLockWaitsInOneCommitKeepTheLeadership), and its
// statement is cancelled at the transaction bound. The cancels went on
// every 100 ms until the committer's deferred stop, after its ROLLBACK: one
// that reached the ROLLBACK failed it, pgx closes a connection whose
// ROLLBACK failed, and the leadership was lost with the lock's session
// (audit-fence6, not fixed 1). The cancels now stop once a statement
// failed, before the ROLLBACK is sent.
func TestLeadership_noCancelAfterAStatementFailed(t *testing.T) {
	t.Parallel()
	const queryTimeout = 10 * time.Second
	a, la, dba := openLeaderWithDBA(t, queryTimeout)
	ins, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()})
	if err != nil {
		t.Fatal(err)
	}
	a.fenceMu.Lock()
	request := a.fenceCancel
	a.fenceMu.Unlock()
	requests, late := cancelsAtTheEnd(t, a, false, func(ctx context.Context, _ int32) error { return request(ctx) })

	err = completeWaitingForTwoLocks(t, a, dba, ins[0].ID, queryTimeout)
	if err == nil || !strings.Contains(err.Error(), "canceling statement due to user request") {
		t.Fatalf("CompleteIntentBatch waiting for two locks = %v; want its statement cancelled at the transaction bound", err)
	}
	if requests.Load() == 0 {
		t.Fatal("no cancel request was sent; want the statement cancelled by one")
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d cancel request(s) sent after the transaction's statement failed; want none: one that reaches the ROLLBACK "+
			"fails it, and pgx then closes the lock's connection", n)
	}
	stillLeading(t, la)
	if _, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err != nil {
		t.Errorf("OpenIntentBatch after the cancelled transaction = %v, want it committed through the lock's session", err)
	}
}

// TestLeadership_noCancelWhileCommitting: a transaction through the lock's
// session passes the transaction bound, but its last statement gets its
// lock in time and succeeds. The cancels went on through its COMMIT: one
// that reached the COMMIT before it committed left the session in a failed
// transaction, which pgx closes, and the leadership was lost for a
// transaction that committed nothing. The cancels now stop before the
// COMMIT. (The requests are counted, not sent, so that the statement is not
// cancelled; the first releases the lock it waits for.)
func TestLeadership_noCancelWhileCommitting(t *testing.T) {
	t.Parallel()
	const queryTimeout = 10 * time.Second
	a, la, dba := openLeaderWithDBA(t, queryTimeout)
	ins, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()})
	if err != nil {
		t.Fatal(err)
	}
	releaseIntents := lockTable(t, dba, "intents", "EXCLUSIVE")
	releaseLedger := lockTable(t, dba, "ledger", "EXCLUSIVE")
	requests, late := cancelsAtTheEnd(t, a, true, func(_ context.Context, n int32) error {
		if n == 1 {
			releaseLedger()
		}
		return nil
	})
	done := make(chan error, 1)
	go func() {
		done <- a.CompleteIntentBatch(context.Background(), []IntentCompletion{{ID: ins[0].ID, State: IntentDone}})
	}()
	waitForLockWait(t, dba, a.fenceSession.pid, "intents", queryTimeout/4)
	releaseIntents()
	if err := <-done; err != nil {
		t.Fatalf("CompleteIntentBatch whose lock waits ended after the transaction bound = %v, want it committed", err)
	}
	if requests.Load() == 0 {
		t.Fatal("no cancel request was made; want the transaction bound passed while the statement waited")
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d cancel request(s) made while the transaction was committing; want none: one that reaches the COMMIT "+
			"before it commits fails it, and pgx then closes the lock's connection", n)
	}
	stillLeading(t, la)
	if got, err := dba.Ledger(10); err != nil || len(got) != 1 {
		t.Errorf("ledger = %d entries, %v; want the committed completion's", len(got), err)
	}
}

// TestLeadership_commitWaitingForAGoneSynchronousStandby pins what a
// COMMIT through the lock's session does when synchronous replication is
// configured and its standby is gone (synchronous_standby_names names
// none that is connected), a case where every COMMIT of the database
// waits. It is not cancelled at the transaction bound (a cancel would end
// the wait with a WARNING and a local commit that database/sql reports as
// a success, though the operator asked for commits a standby confirmed);
// it fails at state.query_timeout with an error that names the wait, the
// client closes the lock's connection and the leadership is lost, as no
// instance can record anything then (audit-fence8, item 2): another's
// TryLead fails as its record of the active instance waits too, and says
// so. pgx's cancel as it closes the connection commits the transaction
// locally.
func TestLeadership_commitWaitingForAGoneSynchronousStandby(t *testing.T) {
	t.Parallel()
	const queryTimeout = 10 * time.Second
	// A cluster of its own (the setting is the server's), whose commits
	// wait for the WAL flush and the standby as a production server's.
	c := pgtest.New(t, pgtest.Durable)
	url, err := c.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a, la, dba := openLeader(t, Config{QueryTimeout: queryTimeout, URL: url})
	var requests atomic.Int32
	a.fenceMu.Lock()
	session, request := a.fenceSession, a.fenceCancel
	a.fenceCancel = func(ctx context.Context) error {
		requests.Add(1)
		return request(ctx)
	}
	a.fenceMu.Unlock()
	setStandbys := func(ctx context.Context, names string) {
		t.Helper()
		if _, err := dba.sql.ExecContext(ctx, `ALTER SYSTEM SET synchronous_standby_names = '`+names+`'`); err != nil {
			t.Fatal(err)
		}
		if _, err := dba.sql.ExecContext(ctx, `SELECT pg_reload_conf()`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dba.sql.ExecContext(t.Context(), `CREATE TABLE sync_probe (n int)`); err != nil {
		t.Fatal(err)
	}
	setStandbys(t.Context(), "nosuch")
	t.Cleanup(func() { setStandbys(context.Background(), "") })
	// The server's processes read the reloaded setting each in its own
	// time: wait until a commit waits for the standby.
	for !pgtest.CommitWaitsForAStandby(t, dba.sql) {
	}

	_, err = a.OpenIntentBatch(t.Context(), []Intent{testIntent()})
	if err == nil {
		t.Fatal("OpenIntentBatch with the synchronous standby gone = nil; want its COMMIT failed at state.query_timeout")
	}
	if !errors.Is(err, errFenceFailed) || !strings.Contains(err.Error(), "did not finish within state.query_timeout (10s)") ||
		!strings.Contains(err.Error(), "synchronous standby") {
		t.Errorf("OpenIntentBatch = %v; want the COMMIT's timeout, which names the synchronous standby, through the lock's connection", err)
	}
	if !errors.Is(err, ErrMaybeCommitted) {
		t.Errorf("OpenIntentBatch = %v; want it to match ErrMaybeCommitted: the server may have committed it", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d cancel request(s) made while the transaction was committing; want none", n)
	}
	<-la.Lost()
	// pgx closes the connection with a cancel request and a Terminate,
	// asynchronously: the session ends once the cancel ended its wait.
	for {
		var ended bool
		if err := dba.sql.QueryRowContext(t.Context(), `SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)`, session.pid).Scan(&ended); err != nil {
			t.Fatal(err)
		}
		if ended {
			break
		}
	}
	var open int
	if err := dba.sql.QueryRowContext(t.Context(), `SELECT count(*) FROM intents`).Scan(&open); err != nil || open != 1 {
		t.Errorf("intents the other sessions see = %d, %v; want the one committed locally", open, err)
	}
	// The instance knows it sent nothing for that intent: closing it as
	// not sent waits for no standby, which is still gone.
	ins, err := dba.OpenIntents()
	if err != nil || len(ins) != 1 {
		t.Fatalf("open intents = %+v, %v; want the one committed locally", ins, err)
	}
	closed, err := dba.FailUnsentIntentsStillOpen(t.Context(), []IntentCompletion{{ID: ins[0].ID, State: IntentFailed, Note: "not sent"}})
	if err != nil || len(closed) != 0 {
		t.Errorf("FailUnsentIntentsStillOpen with the synchronous standby gone = %v, %v; want the intent closed", closed, err)
	}
	if ins, err := dba.OpenIntents(); err != nil || len(ins) != 0 {
		t.Errorf("open intents after FailUnsentIntentsStillOpen = %+v, %v; want none", ins, err)
	}
	// No instance becomes active meanwhile: recording the active instance
	// waits for the standby too, and says so.
	const connectTimeout = 5 * time.Second
	b, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url, ConnectTimeout: connectTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	lb, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, 100*time.Millisecond)
	if lb != nil {
		_ = lb.Release()
	}
	if lb != nil || err == nil || !strings.Contains(err.Error(), "recording the active instance") ||
		!strings.Contains(err.Error(), "did not finish within state.connect_timeout (5s)") || !strings.Contains(err.Error(), "synchronous standby") {
		t.Errorf("b.TryLead with the synchronous standby gone = %v, %v; want no leadership and the record's timeout, which names the synchronous standby",
			lb != nil, err)
	}
}

// cancelsAtTheEnd makes the cancels of a's next transaction through its
// lock's session observable, whatever the machine's load: each request
// goes to send (with its number, from 1), and between two requests the
// cancel loop waits (cancelPause) until the committer is about to end the
// transaction (COMMIT when commit, else ROLLBACK), which then waits
// (beforeEnd) until the loop either made one request more or ended. It
// returns the number of requests, and of those made once the committer was
// about to end the transaction.
func cancelsAtTheEnd(t *testing.T, a *DB, commit bool, send func(ctx context.Context, n int32) error) (requests, late *atomic.Int32) {
	t.Helper()
	requests, late = new(atomic.Int32), new(atomic.Int32)
	ending, ended, lateMade := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var endingOnce, endedOnce, lateOnce sync.Once
	a.fenceMu.Lock()
	defer a.fenceMu.Unlock()
	a.fenceCancel = func(ctx context.Context) error {
		n := requests.Add(1)
		select {
		case <-ending:
			late.Add(1)
			lateOnce.Do(func() { close(lateMade) })
		default:
		}
		return send(ctx, n)
	}
	a.cancelPause = func(ctx context.Context) {
		select {
		case <-ctx.Done():
			endedOnce.Do(func() { close(ended) })
		case <-ending:
			// One request more, then none until stop.
			select {
			case <-lateMade:
				<-ctx.Done()
				endedOnce.Do(func() { close(ended) })
			default:
			}
		}
	}
	a.beforeEnd = func(c bool) {
		if c != commit {
			return
		}
		endingOnce.Do(func() {
			close(ending)
			select {
			case <-lateMade:
			case <-ended:
			case <-time.After(time.Minute):
				t.Error("the cancel loop neither made a request nor ended within a minute after the committer began to end the transaction")
			}
		})
	}
	return requests, late
}
