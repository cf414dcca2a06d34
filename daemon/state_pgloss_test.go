package daemon

import (
	"bytes"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// dtCutOnWrite is a proxy in front of the simulator that ends the
// session holding the leadership lock when the first adjustment arrives,
// before passing it on: the intents were committed, and the writes reach
// the PSA and are answered, but their closes find the lock's connection
// gone.
type dtCutOnWrite struct {
	t     *testing.T
	sim   *psatest.Server
	url   string
	once  sync.Once
	posts atomic.Int64
}

func (h *dtCutOnWrite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments") {
		h.once.Do(func() {
			if err := dtTerminateLeadership(h.url); err != nil {
				h.t.Error(err)
			}
		})
		h.posts.Add(1)
	}
	h.sim.Handler().ServeHTTP(w, r)
}

// dtTerminateLeadership is dtCutLeadership for a goroutine other than the
// test's.
func dtTerminateLeadership(url string) error {
	conn, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var held int
		if err := conn.QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&held); err != nil {
			return err
		}
		if held == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d advisory locks still held 10s after their sessions were terminated", held)
		}
	}
}

// TestDaemon_lostLockConnectionRecordsKnownOutcomes: the connection that
// holds the leadership lock (and through which every state write of the
// active instance goes) is lost after a pass committed its intents and
// before it sent their writes. The writes are sent inside the lease and
// answered, but their closes fail with the connection. The instance exits
// so that a standby takes over; before it does, it records the outcomes
// it knows through a new connection, so that the instance that takes over
// finds no open intent to settle (no line held for an operator, for
// Kaseya BMS, whose lines cannot be read back; no wait of settle_time
// for Autotask): one ledger entry per write, no line written twice.
func TestDaemon_lostLockConnectionRecordsKnownOutcomes(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cut := &dtCutOnWrite{t: t, url: url}
	front := httptest.NewServer(cut)
	t.Cleanup(front.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A lock interval long enough that the closes reach the dead
	// connection before the watch notices the loss.
	e := dtSetup(t, dtOptions{daemonOpts: Options{Listener: ln, WatchInterval: time.Hour},
		state:   fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 5s\n", url),
		baseURL: func(s *psatest.Server) string { cut.sim = s; return front.URL + "/ATServicesRest/" }})
	a := e.d
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context()) }()
	for deadline := time.Now().Add(30 * time.Second); !a.Active(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the only instance did not become active")
		}
	}
	a.RequestSync("", usage.TriggerAPI)
	if err := runReturned(t, done, 60*time.Second, "its leadership lock was lost"); err == nil ||
		!strings.Contains(err.Error(), "lost the state database's leadership lock") {
		t.Errorf("Run returned %v, want the lost leadership", err)
	}
	posts := cut.posts.Load()
	if posts != 3 {
		t.Fatalf("%d adjustments sent before the loss, want the pass's 3", posts)
	}

	b := dtSecondInstance(t, e, time.Now)
	open, err := b.State().OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 0 {
		t.Errorf("%d intents left open by the instance that lost its lock, want none: it knew how each write ended", len(open))
	}
	ledger, err := b.State().Ledger(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 3 {
		t.Errorf("%d ledger entries, want 3: one per write answered", len(ledger))
	}
	// The end of its run is not recorded once the lock is lost (it would
	// replace the mark of an instance that took over already): the run is
	// left running, for the instance that takes over to mark interrupted.
	runs, err := b.State().Runs(1)
	if err != nil || len(runs) != 1 || runs[0].Result != state.RunRunning {
		t.Fatalf("runs = %+v, %v; want the pass of the instance that lost its lock left running", runs, err)
	}
	lostRun := runs[0].ID

	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatalf("taking over: %v", err)
	}
	// The API serves it without credentials: it does not name the state
	// database.
	if r, ok, err := b.State().Run(lostRun); err != nil || !ok || !r.Interrupted() || strings.Contains(r.Error, b.State().Path()) {
		t.Errorf("the pass of the instance that lost its lock after the takeover = %+v, %t, %v; want it marked interrupted, naming no database", r, ok, err)
	}
	res, err := b.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 0 {
		t.Errorf("pass of the instance that took over = %+v, want a success that writes nothing", res.Run)
	}
	if n := cut.posts.Load(); n != posts {
		t.Errorf("%d adjustments after the takeover, want none more (no doubled line)", n-posts)
	}
	for _, l := range []struct {
		customer, service int
		want              int64
	}{{0, 0, 11}, {0, 1, 2}, {1, 0, 5}} {
		if u := e.units(l.customer, l.service); u != l.want {
			t.Errorf("units of contract %d service %d = %d, want %d", l.customer, l.service, u, l.want)
		}
	}
}

// withStatementTimeout sets a statement timeout of 500 ms on the
// database at url, for the connections opened after it, and returns a
// connection to it of its own, to lock its tables with.
func withStatementTimeout(t *testing.T, url string) *sql.DB {
	t.Helper()
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	if _, err := admin.ExecContext(t.Context(), `DO $$ BEGIN EXECUTE 'ALTER DATABASE ' || quote_ident(current_database()) || ' SET statement_timeout = 500'; END $$`); err != nil {
		t.Fatal(err)
	}
	return admin
}

// TestDaemon_statementTimeoutOnIntentsSendsNothing: the statement that
// records a pass's intents runs past the server's statement_timeout (the
// intents table is locked by another session: a DBA's maintenance, a
// migration). The pass sends no write, since no intent was recorded, and
// fails with an error naming the database and the timeout; the instance
// stays active (the server refused a statement, the session lives on), and
// once the table is free the next pass writes each line once.
func TestDaemon_statementTimeoutOnIntentsSendsNothing(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	admin := withStatementTimeout(t, url)
	var logs syncBuffer
	e := dtSetup(t, dtOptions{daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url)})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A first pass, which prepares the state writes' statements: Globex
	// at 4.
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-globex,Globex,CIXA-MSP,Intercept X Advanced,5", "cust-globex,Globex,CIXA-MSP,Intercept X Advanced,4", 1))
	if res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI}); err != nil || res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, %v; want success", res, err)
	}
	dtWrite(t, e.usagePath, dtUsage)
	e.sim.ResetRequests()
	lock, err := admin.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(t.Context(), `SET LOCAL statement_timeout = 0; LOCK TABLE intents IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI})
	msg := ""
	if err != nil {
		msg = err.Error()
	} else if res != nil {
		msg = res.Run.Error
		for _, c := range res.Customers {
			msg += "; " + c.Error
		}
	}
	if err == nil && res.Run.Result == state.RunSuccess {
		t.Errorf("pass with the intents table locked = %+v, want it to fail", res.Run)
	}
	// What is stored is served without credentials: it says that the
	// database did not answer in time without naming it, and the log
	// has the database's error.
	if !strings.Contains(msg, "the state database did not answer in time") || strings.Contains(msg, a.State().Path()) {
		t.Errorf("error of the pass whose intents timed out = %q, want one saying the state database did not answer in time, without naming it", msg)
	}
	if !strings.Contains(logs.String(), "PostgreSQL database") || !strings.Contains(logs.String(), "statement timeout") {
		t.Errorf("the log does not name the database and the statement timeout:\n%s", logs.String())
	}
	if n := e.writes(); n != 0 {
		t.Fatalf("%d writes sent without a recorded intent", n)
	}
	// Removing old history after the pass timed out too (it deletes
	// closed intents): logged, and the pass's result is its own.
	if err != nil || res.Run.Result != state.RunPartial {
		t.Errorf("pass = %+v, %v; want partial (Acme's lines unchanged, Globex's failed), whatever the pruning after it did", res, err)
	}
	if !strings.Contains(logs.String(), "Could not remove old history from the state database") {
		t.Error("no log of the pruning that timed out")
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	if !a.State().IsLeader() {
		t.Fatal("the instance gave up the leadership over a statement the server cancelled")
	}
	res, err = a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Result != state.RunSuccess {
		t.Errorf("pass once the table was free = %s (%s), want success", res.Run.Result, res.Run.Error)
	}
	if n := e.writes(); n != 1 {
		t.Errorf("%d writes, want 1: Globex's line, once", n)
	}
	if u := e.units(1, 0); u != 5 {
		t.Errorf("Globex's units = %d, want 5", u)
	}
	if open, err := a.State().OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents = %d (%v), want none", len(open), err)
	}
	if ledger, err := a.State().Ledger(0); err != nil || len(ledger) != 4 {
		t.Errorf("ledger entries = %d (%v), want 4", len(ledger), err)
	}
}

// TestDaemon_queryTimeoutOnIntentsSendsNothing: the statement that records
// a pass's intents would run past state.query_timeout (the intents table is
// locked by another session). The server cancels it first (the lock's
// session has a statement_timeout a fifth below query_timeout), so the
// session, and the leadership, live on; had psa-syncd given the statement
// up itself, pgx would have closed that connection and the instance would
// have lost the leadership for one slow statement. The pass sends no write;
// the customer's error names the database and its hint says that nothing
// was sent and where to look, not that the PSA left a change unconfirmed.
// The same instance's next pass writes the line once.
func TestDaemon_queryTimeoutOnIntentsSendsNothing(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	var logs syncBuffer
	e := dtSetup(t, dtOptions{daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		// 5 s, not 1 s: a CPU-starved test process (nice 19 beside busy
		// loops) took more than 1 s to record the first pass's intents
		// with nothing locked, and a fifth of it is what the server's
		// cancel has before psa-syncd gives the statement up.
		state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  query_timeout: 5s\n", url)})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-globex,Globex,CIXA-MSP,Intercept X Advanced,5", "cust-globex,Globex,CIXA-MSP,Intercept X Advanced,4", 1))
	if res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI}); err != nil || res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, %v; want success", res, err)
	}
	dtWrite(t, e.usagePath, dtUsage)
	e.sim.ResetRequests()
	lock, err := admin.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(t.Context(), `LOCK TABLE intents IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI}); err == nil && res.Run.Result == state.RunSuccess {
		t.Errorf("pass with the intents table locked = %+v, want it to fail", res.Run)
	}
	if n := e.writes(); n != 0 {
		t.Fatalf("%d writes sent without a recorded intent", n)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="Customer not synced"`) && strings.Contains(l, "customer=cust-globex") {
			line = l
		}
	}
	if !strings.Contains(line, "PostgreSQL database") || !strings.Contains(line, "recording the intent failed") {
		t.Errorf("Globex's log line = %q, want its error naming the database", line)
	}
	// The hint is stored in the customer's status, which the API serves
	// without credentials: it points at the state database without
	// naming it; the line's state_err does.
	if _, hint, _ := strings.Cut(line, "hint="); strings.Contains(hint, "did not confirm") || !strings.Contains(hint, "nothing was sent") ||
		!strings.Contains(hint, "check the state database") || strings.Contains(hint, "PostgreSQL database") {
		t.Errorf("Globex's hint = %s, want one saying nothing was sent and pointing at the state database without naming it", hint)
	}

	// The server cancels the statement, at its statement_timeout or, when
	// the transaction's statements waited longer in all (a busy machine
	// starts the statement late), at psa-syncd's request: either way the
	// error says the statement waited for a lock.
	if !strings.Contains(line, "statement timeout") && !strings.Contains(line, "for locks that another session holds") {
		t.Errorf("Globex's log line = %q, want the server's statement timeout or the lock wait that cancelled it", line)
	}
	if !a.State().IsLeader() || strings.Contains(logs.String(), "Lost the state database's leadership lock") {
		t.Fatal("the instance lost the leadership for one statement that waited for a lock")
	}
	res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Result != state.RunSuccess {
		t.Errorf("next pass = %s (%s), want success", res.Run.Result, res.Run.Error)
	}
	if n := e.writes(); n != 1 {
		t.Errorf("%d writes, want 1: Globex's line, once", n)
	}
	if u := e.units(1, 0); u != 5 {
		t.Errorf("Globex's units = %d, want 5", u)
	}
	if open, err := a.State().OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents = %d (%v), want none", len(open), err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDaemon_syncCommandRecordsKnownOutcomesAtClose: as
// TestDaemon_lostLockConnectionRecordsKnownOutcomes, for a pass run by
// `psa-syncd sync` (BecomeActive, SyncOnce, Close), which exits after the
// pass: Close records the outcomes the lost connection kept from being
// recorded, through a new connection once the lock is released.
func TestDaemon_syncCommandRecordsKnownOutcomesAtClose(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cut := &dtCutOnWrite{t: t, url: url}
	front := httptest.NewServer(cut)
	t.Cleanup(front.Close)
	e := dtSetup(t, dtOptions{state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 5s\n", url),
		baseURL: func(s *psatest.Server) string { cut.sim = s; return front.URL + "/ATServicesRest/" }})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI}); err == nil && res.Run.Result == state.RunSuccess {
		t.Errorf("pass that lost the lock's connection = %+v, want it not to succeed", res.Run)
	}
	_ = a.Close() // releasing a lock whose session is gone fails
	if n := cut.posts.Load(); n != 3 {
		t.Fatalf("%d adjustments sent, want the pass's 3", n)
	}
	b := dtSecondInstance(t, e, time.Now)
	if open, err := b.State().OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents after the sync command exited = %d (%v), want none", len(open), err)
	}
	if ledger, err := b.State().Ledger(0); err != nil || len(ledger) != 3 {
		t.Errorf("ledger entries = %d (%v), want 3", len(ledger), err)
	}
}

// dtRestartOnWrite is a proxy in front of the simulator that stops the
// PostgreSQL server when the first adjustment arrives, before passing it
// on, and starts it again after down: a restart, or a managed database's
// failover, while the active instance's pass writes.
type dtRestartOnWrite struct {
	t       *testing.T
	sim     *psatest.Server
	cluster *pgtest.Cluster
	down    time.Duration
	once    sync.Once
	up      chan struct{}
	posts   atomic.Int64
}

func (h *dtRestartOnWrite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments") {
		h.once.Do(func() {
			if err := h.cluster.Down(); err != nil {
				h.t.Error(err)
			}
			go func() {
				defer close(h.up)
				time.Sleep(h.down)
				if err := h.cluster.Up(); err != nil {
					h.t.Error(err)
				}
			}()
		})
		h.posts.Add(1)
	}
	h.sim.Handler().ServeHTTP(w, r)
}

// TestDaemon_restartedPostgresRecordsKnownOutcomes: PostgreSQL restarts
// (a minor upgrade, a managed database's failover) while the active
// instance's pass writes: its intents were committed, its writes are sent
// inside the lease and answered, but their closes find the server gone, and
// it is still down when the instance notices the lost lock. The instance
// must not give up the outcomes it knows at the first refused connection:
// it records them once the server is back, before it exits, so that the
// instance that takes over finds no intent to settle (for Kaseya BMS, no
// line held for an operator) and writes nothing twice.
func TestDaemon_restartedPostgresRecordsKnownOutcomes(t *testing.T) {
	t.Parallel()
	cluster := pgtest.New(t)
	url, err := cluster.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	restart := &dtRestartOnWrite{t: t, cluster: cluster, down: 4 * time.Second, up: make(chan struct{})}
	front := httptest.NewServer(restart)
	t.Cleanup(front.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	e := dtSetup(t, dtOptions{daemonOpts: Options{Listener: ln, WatchInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		state:   fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 1s\n", url),
		baseURL: func(s *psatest.Server) string { restart.sim = s; return front.URL + "/ATServicesRest/" }})
	a := e.d
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context()) }()
	for deadline := time.Now().Add(30 * time.Second); !a.Active(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the only instance did not become active")
		}
	}
	a.RequestSync("", usage.TriggerAPI)
	if err := runReturned(t, done, 90*time.Second, "its leadership lock was lost"); err == nil ||
		!strings.Contains(err.Error(), "lost the state database's leadership lock") {
		t.Errorf("Run returned %v, want the lost leadership", err)
	}
	<-restart.up
	posts := restart.posts.Load()
	if posts == 0 {
		t.Fatal("no adjustment sent before the restart")
	}
	b := dtSecondInstance(t, e, time.Now)
	open, err := b.State().OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 0 {
		t.Errorf("%d intents left open by the instance whose server restarted, want none: it knew how each write ended (%d sent)\n%s",
			len(open), posts, logs.String())
	}
	if ledger, err := b.State().Ledger(0); err != nil || int64(len(ledger)) != posts {
		t.Errorf("ledger entries = %d (%v), want %d: one per write answered", len(ledger), err, posts)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatalf("taking over: %v", err)
	}
	res, err := b.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Result != state.RunSuccess {
		t.Errorf("pass of the instance that took over = %+v, want a success", res.Run)
	}
	for _, l := range []struct {
		customer, service int
		want              int64
	}{{0, 0, 11}, {0, 1, 2}, {1, 0, 5}} {
		if u := e.units(l.customer, l.service); u != l.want {
			t.Errorf("units of contract %d service %d = %d, want %d", l.customer, l.service, u, l.want)
		}
	}
	if n := restart.posts.Load(); n != 3 {
		t.Errorf("%d adjustments in all, want 3: one per line, none doubled", n)
	}
}

// TestDaemon_closeAfterAFullDiskRecordsTheRunsEnd: on PostgreSQL, a pass
// of `psa-syncd sync` whose end the database refuses to record (a full
// disk: the lock's session stays usable) is recorded by Close once the
// disk has room again, through the lock's session before Close releases
// the lock: on PostgreSQL only the lock's holder records a run, so once
// released the end was refused and the run left running, as if the
// instance had been killed, for the next start to mark interrupted.
func TestDaemon_closeAfterAFullDiskRecordsTheRunsEnd(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 5s\n", url)})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	if _, err := raw.Exec(`CREATE FUNCTION test_full_disk() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$;
		CREATE TRIGGER test_full_disk BEFORE UPDATE ON runs FOR EACH ROW WHEN (NEW.result <> 'running') EXECUTE FUNCTION test_full_disk()`); err != nil {
		t.Fatal(err)
	}
	res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI})
	if err == nil || !strings.Contains(err.Error(), "No space left on device") {
		t.Fatalf("pass whose end the full disk refused: err = %v, want the refusal", err)
	}
	if run, ok, err := a.State().Run(res.Run.ID); err != nil || !ok || run.Result != state.RunRunning {
		t.Fatalf("run %d after the full disk = %+v, %v, %v; want it still running", res.Run.ID, run, ok, err)
	}
	// The disk has room again when the sync command exits.
	if _, err := raw.Exec(`DROP TRIGGER test_full_disk ON runs`); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := dtSecondInstance(t, e, time.Now)
	run, ok, err := b.State().Run(res.Run.ID)
	if err != nil || !ok {
		t.Fatalf("run %d: %v, %v", res.Run.ID, ok, err)
	}
	if run.Result != res.Run.Result || run.Updated != 3 || run.Interrupted() {
		t.Errorf("run %d after Close = %+v, want its end recorded (%s, 3 updated)", res.Run.ID, run, res.Run.Result)
	}
}
