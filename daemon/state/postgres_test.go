package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// openSharedPostgres opens two state databases on one new PostgreSQL
// database, as two psa-syncd sharing it would.
func openSharedPostgres(t *testing.T) (a, b *DB) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	open := func() *DB {
		db, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	return open(), open()
}

// openBehindBlackhole opens a state database on a new PostgreSQL database
// through a proxy that can stop forwarding (the holder's host dying, a
// network cut), with queryTimeout, and returns it with the proxy and the
// database's direct URL, for a second instance.
func openBehindBlackhole(t *testing.T, queryTimeout time.Duration) (*DB, *pgtest.Blackhole, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewBlackhole(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.Addr()
	db, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: viaProxy.String(), QueryTimeout: queryTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, proxy, url
}

// leadBehindBlackhole makes a, whose connections go through the returned
// proxy (query timeout 500 ms), the active instance, and opens b, a
// standby connected directly.
func leadBehindBlackhole(t *testing.T) (a *DB, la *Leadership, proxy *pgtest.Blackhole, b *DB) {
	t.Helper()
	a, proxy, url := openBehindBlackhole(t, 500*time.Millisecond)
	b, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	la, err = a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, 100*time.Millisecond)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v; want the leadership", la, err)
	}
	return a, la, proxy, b
}

// takesOverWithin20s tries to make b the active instance until it is, and
// fails the test with stillHeld() when 20 s have passed.
func takesOverWithin20s(t *testing.T, b *DB, stillHeld func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		lb, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if lb != nil {
			_ = lb.Release()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(stillHeld())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestLeadership_oneActiveFencedAndTakenOver(t *testing.T) {
	t.Parallel()
	a, b := openSharedPostgres(t)

	// Before either leads, neither may open an intent.
	if _, err := a.OpenIntent(testIntent()); !errors.Is(err, ErrNotLeader) {
		t.Errorf("OpenIntent without the lock = %v, want ErrNotLeader", err)
	}
	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a", URL: "http://a:9810"}, 100*time.Millisecond)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v; want the leadership", la, err)
	}
	if lb, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, time.Second); lb != nil || err != nil {
		t.Fatalf("b.TryLead while a leads = %v, %v; want nil, nil", lb, err)
	}
	if !a.IsLeader() || b.IsLeader() {
		t.Errorf("IsLeader = %v, %v; want true, false", a.IsLeader(), b.IsLeader())
	}
	if _, err := a.OpenIntent(testIntent()); err != nil {
		t.Errorf("a.OpenIntent = %v", err)
	}
	if _, err := b.OpenIntent(testIntent()); !errors.Is(err, ErrNotLeader) {
		t.Errorf("b.OpenIntent = %v, want ErrNotLeader", err)
	}
	info, held, err := b.Leader()
	if err != nil || !held || info.Holder != "a" || info.URL != "http://a:9810" || info.Since.IsZero() {
		t.Errorf("b.Leader = %+v, %v, %v; want a, held", info, held, err)
	}

	// Ending a's lock session (as a crash or a broken network would) is
	// noticed by its watch, after which a can open no intent, and b takes
	// over.
	if _, err := b.sql.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		leaderLockKey&0xffffffff); err != nil {
		t.Fatal(err)
	}
	select {
	case <-la.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("a's leadership was not reported lost within 10s of its session ending")
	}
	if _, err := a.OpenIntent(testIntent()); err == nil {
		t.Error("a.OpenIntent after losing the lock returned nil error")
	}
	if _, held, err := b.Leader(); held || err != nil {
		t.Errorf("b.Leader after a's session ended: held = %v, %v; want false", held, err)
	}
	lb, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, time.Second)
	if err != nil || lb == nil {
		t.Fatalf("b.TryLead after a lost the lock = %v, %v", lb, err)
	}
	if open, err := b.OpenIntents(); err != nil || len(open) != 1 {
		t.Errorf("b.OpenIntents = %v, %v; want a's intent, to settle", open, err)
	}
	// Release hands over at once.
	if err := lb.Release(); err != nil {
		t.Fatal(err)
	}
	if la2, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, time.Second); err != nil || la2 == nil {
		t.Errorf("a.TryLead after b released = %v, %v", la2, err)
	}
}

func TestOpenPostgres_importsBboltState(t *testing.T) {
	t.Parallel()
	orig, err := os.ReadFile("testdata/bbolt-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, FileName)
	if err := os.WriteFile(file, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Driver: DriverPostgres, URL: pgtest.NewDatabase(t), Path: dir}
	db := openConfig(t, cfg)
	checkFixtureState(t, db)
	closeDB(t, db)
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after the import: %v", file, err)
	}
	if got, err := os.ReadFile(boltBackupName(file)); err != nil || !bytes.Equal(got, orig) {
		t.Errorf("bbolt backup: %v; want the original file", err)
	}

	// A bbolt file beside a database that already holds other state is
	// refused rather than merged.
	if err := os.WriteFile(file, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	other := Config{Driver: DriverPostgres, URL: pgtest.NewDatabase(t), Path: dir}
	db = openConfig(t, Config{Driver: DriverPostgres, URL: other.URL})
	if _, err := db.BeginRun(Run{Trigger: "cli"}); err != nil {
		t.Fatal(err)
	}
	closeDB(t, db)
	if _, err := OpenConfig(t.Context(), other); err == nil || !strings.Contains(err.Error(), "already holds state") {
		t.Errorf("OpenConfig with a bbolt file and a non-empty database = %v, want an 'already holds state' error", err)
	}
}

func TestOpenPostgres_errorsHideTheURL(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"postgres://psa:s3cr3t-pw@127.0.0.1:1/psa?sslmode=disable&connect_timeout=1",
		"postgres://psa:s3cr3t-pw@[::1:bad/psa",
		"host=127.0.0.1 port=1 password=s3cr3t-pw dbname=psa connect_timeout=1 sslmode=bogus",
		"host=127.0.0.1 port=1 password=s3cr3t-pw dbname=psa connect_timeout=1 sslmode=disable",
	} {
		_, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url, ConnectTimeout: 2 * time.Second})
		if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("OpenConfig(bad URL) = %v; want an error without the password", err)
		}
		// Nor in the error value, printed in full (pgx's ConnectError
		// keeps the configuration it was tried with).
		for _, leak := range psatest.Leaks(err, "s3cr3t-pw") {
			t.Errorf("OpenConfig(bad URL): the error value holds the password: %s", leak)
		}
	}
	if _, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres}); err == nil || !strings.Contains(err.Error(), "state.url") {
		t.Errorf("OpenConfig without a URL = %v, want an error naming state.url", err)
	}
}

func TestBackup_postgresSaysPgDump(t *testing.T) {
	t.Parallel()
	db := openConfig(t, Config{Driver: DriverPostgres, URL: pgtest.NewDatabase(t)})
	defer closeDB(t, db)
	if err := db.Backup(filepath.Join(t.TempDir(), "b.db")); !errors.Is(err, ErrBackupUnsupported) || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("Backup on PostgreSQL = %v, want ErrBackupUnsupported naming pg_dump", err)
	}
}

// TestLeader_otherDatabaseOfTheCluster: two psa-syncd deployments may use
// two databases of one PostgreSQL cluster; the leadership lock of one is
// not the other's (advisory locks belong to a database, but pg_locks lists
// every database's).
func TestLeader_otherDatabaseOfTheCluster(t *testing.T) {
	t.Parallel()
	a := openConfig(t, Config{Driver: DriverPostgres, URL: pgtest.NewDatabase(t)})
	defer closeDB(t, a)
	b, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: pgtest.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, b)
	if _, held, err := b.Leader(); held || err != nil {
		t.Errorf("Leader of a database nobody leads, while another database of the cluster has a leader = held %v, %v; want false", held, err)
	}
	l, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, time.Second)
	if err != nil || l == nil {
		t.Errorf("TryLead on the other database = %v, %v; want the leadership", l, err)
	}
}

// TestOpenPostgres_readOnly: a read-only open (the billing-impact report on
// a CI runner) reads the active instance's ledger, never migrates, refuses
// another schema version and cannot write.
func TestOpenPostgres_readOnly(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ro := Config{Driver: DriverPostgres, URL: url, ReadOnly: true}
	if _, err := OpenConfig(t.Context(), ro); err == nil || !strings.Contains(err.Error(), "no psa-syncd state yet") {
		t.Errorf("read-only OpenConfig of an empty database = %v, want a 'no psa-syncd state yet' error", err)
	}

	db := openConfig(t, Config{Driver: DriverPostgres, URL: url})
	in, err := db.OpenIntent(testIntent())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteIntent(in.ID, IntentDone, "", t0); err != nil {
		t.Fatal(err)
	}

	r, err := OpenConfig(t.Context(), ro)
	if err != nil {
		t.Fatalf("read-only OpenConfig while the active instance runs returned error: %v", err)
	}
	if e, ok, err := r.LastSet(in.ContractID, in.ServiceID); err != nil || !ok || e.After != in.After {
		t.Errorf("LastSet through the read-only open = %+v, %v, %v; want the entry setting %d", e, ok, err, in.After)
	}
	if _, err := r.sql.ExecContext(t.Context(), `DELETE FROM ledger`); err == nil || !strings.Contains(err.Error(), "read-only transaction") {
		t.Errorf("DELETE through the read-only open = %v, want a read-only transaction error", err)
	}
	closeDB(t, r)

	if _, err := db.sql.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 'now')`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	closeDB(t, db)
	want := fmt.Sprintf("has schema version %d, but this psa-syncd reads version %d", SchemaVersion+1, SchemaVersion)
	if _, err := OpenConfig(t.Context(), ro); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("read-only OpenConfig of a newer schema = %v, want an error saying %q", err, want)
	}
	if _, err := OpenConfig(t.Context(), Config{Driver: DriverSQLite, Path: t.TempDir(), ReadOnly: true}); err == nil {
		t.Error("read-only OpenConfig of SQLite succeeded, want an error")
	}
}

// TestLeadership_failedTryLeadLeavesNoLockBehind: when recording the
// active instance fails after the lock was taken (any ERROR that leaves the
// session usable: a full disk, a statement timeout; here a CHECK
// constraint), the session holding the lock must end, not go back to the
// pool: there it kept the lock from every other instance (for up to
// conn_max_lifetime), and a retry that got it back took the lock a second
// time, which Release then did not free.
func TestLeadership_failedTryLeadLeavesNoLockBehind(t *testing.T) {
	t.Parallel()
	a, b := openSharedPostgres(t)
	if _, err := a.sql.Exec(`ALTER TABLE leader ADD CONSTRAINT test_no_bad CHECK (holder <> 'bad')`); err != nil {
		t.Fatal(err)
	}
	if l, err := a.TryLead(t.Context(), LeaderInfo{Holder: "bad"}, time.Second); l != nil || err == nil {
		t.Fatalf("a.TryLead with a failing record = %v, %v; want an error", l, err)
	}
	if a.IsLeader() {
		t.Error("a.IsLeader after its TryLead failed")
	}
	// The lock is free: b can lead (once the server has ended a's
	// session), and no session of a holds it.
	lb := waitLead(t, b, "b")
	if lb == nil {
		t.Fatal("b cannot lead after a's TryLead failed: a's session still holds the leadership lock")
	}
	if err := lb.Release(); err != nil {
		t.Fatal(err)
	}
	if n := leaderLocks(t, b); n != 0 {
		t.Errorf("%d sessions hold the leadership lock after b released it; want 0", n)
	}

	// a fails again, then leads, and releases: the lock is free again
	// (no session of a's pool holds it a second time).
	if l, err := a.TryLead(t.Context(), LeaderInfo{Holder: "bad"}, time.Second); l != nil || err == nil {
		t.Fatalf("a.TryLead with a failing record = %v, %v; want an error", l, err)
	}
	if _, err := a.sql.Exec(`ALTER TABLE leader DROP CONSTRAINT test_no_bad`); err != nil {
		t.Fatal(err)
	}
	la := waitLead(t, a, "a")
	if la == nil {
		t.Fatal("a cannot lead after its failed TryLead")
	}
	if err := la.Release(); err != nil {
		t.Fatal(err)
	}
	if _, held, err := b.Leader(); held || err != nil {
		t.Errorf("after a.Release, Leader says the lock is held = %v (%v); want free", held, err)
	}
	if lb := waitLead(t, b, "b"); lb == nil {
		t.Error("b cannot lead after a released the leadership")
	} else if err := lb.Release(); err != nil {
		t.Error(err)
	}
}

// TestLeadership_sharedSessionRefused: a connection pooler in transaction
// (or statement) mode, as managed PostgreSQL services offer, hands one
// server session to several clients in turn. The session in which one
// psa-syncd took the leadership lock then serves the other's TryLead, and
// pg_try_advisory_lock, which a session holding the lock is granted
// again, made both of them active: both synced, and every change was
// written twice. Here b's pool holds the session that took the lock, as
// the pooler's would; its TryLead must refuse the leadership, saying why,
// and leave the lock as it was.
func TestLeadership_sharedSessionRefused(t *testing.T) {
	t.Parallel()
	_, b := openSharedPostgres(t)
	b.sql.SetMaxIdleConns(1)
	conn, err := b.sql.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), `SELECT pg_advisory_lock($1)`, leaderLockKey); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close() // back to the pool, holding the lock
	l, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, time.Second)
	if l != nil {
		_ = l.Release()
		t.Fatal("b.TryLead in a session that another client's lock holds made b the active instance too")
	}
	if err == nil || !strings.Contains(err.Error(), "pooler") || !strings.Contains(err.Error(), "session mode") {
		t.Errorf("b.TryLead in a session that already holds the lock = %v; want an error naming the connection pooler and its session mode", err)
	}
	if b.IsLeader() {
		t.Error("IsLeader after the refused TryLead")
	}
	if n := leaderLocks(t, b); n != 1 {
		t.Errorf("%d sessions hold the leadership lock after the refused TryLead; want 1, the other client's", n)
	}
}

// waitLead tries db.TryLead until it leads, for a while: a session that
// ends frees its locks as soon as the server has seen it end.
func waitLead(t *testing.T, db *DB, holder string) *Leadership {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := db.TryLead(t.Context(), LeaderInfo{Holder: holder}, time.Second)
		if err != nil {
			t.Fatalf("%s.TryLead = %v", holder, err)
		}
		if l != nil || time.Now().After(deadline) {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaderLocks counts the granted leadership locks of db's database.
func leaderLocks(t *testing.T, db *DB) int {
	t.Helper()
	var n int
	err := db.sql.QueryRow(`SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`, leaderLockKey>>32, leaderLockKey&0xffffffff).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOpenPostgres_existingMigratesNothing: Config.Existing on a database
// without psa-syncd's schema refuses it and creates no table.
func TestOpenPostgres_existingMigratesNothing(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	cfg := Config{Driver: DriverPostgres, URL: url, Existing: true}
	if db, err := OpenConfig(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "holds no psa-syncd state") || !errors.Is(err, ErrNoState) {
		if db != nil {
			closeDB(t, db)
		}
		t.Fatalf("Existing open of an empty database = %v; want it refused, matching ErrNoState", err)
	}
	db := openConfig(t, Config{Driver: DriverPostgres, URL: url})
	var tables int
	if err := db.sql.QueryRow(`SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	closeDB(t, db)
	if tables == 0 {
		t.Fatal("no tables after a normal open")
	}
	db, err := OpenConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Existing open of a psa-syncd database = %v", err)
	}
	closeDB(t, db)
}

// TestLeadership_silentHolderLosesTheLock: the leadership lock is a
// session advisory lock, which the server frees only when it ends the
// session. A holder whose host dies sends no FIN: without limits of its
// own, the server's session stays, idle, until the server's TCP keepalive
// gives up on it (Linux defaults: 2 h 11 min), and with it the lock, while
// no instance syncs. Here the proxy stands for the dead host; a standby
// must take over within a bound that follows from the lock interval
// (idle_session_timeout: 10 s here), not the server's TCP settings.
// (audit-state, finding 3.)
func TestLeadership_silentHolderLosesTheLock(t *testing.T) {
	t.Parallel()
	_, la, proxy, b := leadBehindBlackhole(t)
	proxy.Freeze() // a's host dies
	select {
	case <-la.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("a never noticed that it lost its connection")
	}
	takesOverWithin20s(t, b, func() string {
		info, held, _ := b.Leader()
		return fmt.Sprintf("20 s after the active instance's host went silent (and it gave the leadership up itself), the lock is still held "+
			"(held = %v, by %v): the server keeps the dead session until its TCP keepalive gives up, and no instance syncs meanwhile", held, info)
	})
}

// TestLeadership_silentHolderInTransactionLosesTheLock: the active
// instance commits its intents and ticket records through the lock's
// session, so its host may die in the middle of one of those
// transactions. The server then sees the session idle in a transaction,
// which idle_session_timeout does not end: behind a network path that
// still acknowledges TCP (the proxy here), the lock stayed held until the
// server's TCP gave up, hours, as with no limits at all. It must be freed
// within the same bound as an idle session's.
func TestLeadership_silentHolderInTransactionLosesTheLock(t *testing.T) {
	t.Parallel()
	a, _, proxy, b := leadBehindBlackhole(t)
	// A group commit through the lock's session has begun when a's host
	// dies.
	a.fenceMu.Lock()
	_, err := a.fence.ExecContext(t.Context(), `BEGIN`)
	if err == nil {
		_, err = a.fence.ExecContext(t.Context(), `SELECT COUNT(*) FROM intents`)
	}
	a.fenceMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	proxy.Freeze() // a's host dies
	takesOverWithin20s(t, b, func() string {
		return "20 s after the active instance's host went silent in a transaction on the lock's session, the lock is still held: " +
			"the server keeps a session idle in a transaction until its TCP gives up, and no instance syncs meanwhile"
	})
}

// TestLeadership_refusedSessionSettingSkipped: a session setting the
// server refuses (as an older PostgreSQL refuses idle_session_timeout) is
// skipped, logged at debug with the server's reason under err, and the
// others still apply; the lock's session gets its limits.
func TestLeadership_refusedSessionSettingSkipped(t *testing.T) {
	t.Parallel()
	a, b := openSharedPostgres(t)
	var logs bytes.Buffer
	a.cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	conn, err := a.sql.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer discard(conn)
	err = a.limitSession(t.Context(), conn, []sessionSetting{{"psa_no_such_setting_anywhere", "1"}, {"idle_session_timeout", "12345"}})
	if err != nil {
		t.Fatalf("limitSession with a setting the server does not know = %v; want it skipped", err)
	}
	if !strings.Contains(logs.String(), "setting=psa_no_such_setting_anywhere") || !strings.Contains(logs.String(), " err=") {
		t.Errorf("the refused setting is not logged with the server's reason under err: %s", logs.String())
	}
	var v string
	if err := conn.QueryRowContext(t.Context(), `SHOW idle_session_timeout`).Scan(&v); err != nil || v != "12345ms" {
		t.Errorf("idle_session_timeout after limitSession = %q, %v; want 12345ms", v, err)
	}

	lb, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, 2*time.Second)
	if err != nil || lb == nil {
		t.Fatalf("b.TryLead = %v, %v", lb, err)
	}
	defer func() { _ = lb.Release() }()
	b.fenceMu.Lock()
	defer b.fenceMu.Unlock()
	for name, want := range map[string]string{"idle_session_timeout": "10s", "idle_in_transaction_session_timeout": "10s", "tcp_user_timeout": "10000"} {
		if err := b.fence.QueryRowContext(t.Context(), `SHOW `+name).Scan(&v); err != nil || v != want {
			t.Errorf("%s of the leadership lock's session = %q, %v; want %s", name, v, err, want)
		}
	}
}

// TestLeadership_newerSchemaNotTakenOver: during a rolling upgrade of
// instances sharing one PostgreSQL database, the new psa-syncd migrates the
// schema at its start while the old ones run. An old standby must not then
// take the leadership over (and sync on records it does not understand),
// as Open would refuse the database had it started now: it says why, holds
// no lock, and the new instance leads. (audit-upgrade, finding 1.)
func TestLeadership_newerSchemaNotTakenOver(t *testing.T) {
	t.Parallel()
	old, _ := openSharedPostgres(t)
	newer := SchemaVersion + 1
	if _, err := old.sql.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 'now')`, newer); err != nil {
		t.Fatal(err)
	}
	l, err := old.TryLead(t.Context(), LeaderInfo{Holder: "old"}, time.Second)
	want := fmt.Sprintf("state: %s has schema version %d, migrated by a newer psa-syncd while this one ran, but this psa-syncd supports up to %d: "+
		"it does not become the active instance; upgrade it", old.quotedPath(), newer, SchemaVersion)
	if l != nil || err == nil || err.Error() != want {
		t.Fatalf("TryLead of the old instance = %v, %v; want nil and %q", l, err, want)
	}
	if old.IsLeader() {
		t.Error("IsLeader after the refused TryLead")
	}
	if n := leaderLocks(t, old); n != 0 {
		t.Errorf("%d sessions hold the leadership lock after the refused TryLead; want 0", n)
	}
	if _, held, err := old.Leader(); held || err != nil {
		t.Errorf("Leader after the refused TryLead: held = %v, %v; want free for the new instance", held, err)
	}
}

// TestLeadership_newerSchemaStepsDown: the active instance of a rolling
// upgrade steps down, at its next check of the lock, once a newer
// psa-syncd has migrated the shared schema past its own: it would write
// records the newer one misreads. Its Lost says why, CheckFence refuses
// and the lock is free for the newer instance.
func TestLeadership_newerSchemaStepsDown(t *testing.T) {
	t.Parallel()
	old, newer := openSharedPostgres(t)
	l, err := old.TryLead(t.Context(), LeaderInfo{Holder: "old"}, 100*time.Millisecond)
	if err != nil || l == nil {
		t.Fatalf("old.TryLead = %v, %v; want the leadership", l, err)
	}
	t.Cleanup(func() { _ = l.Release() })
	v := SchemaVersion + 1
	if _, err := newer.sql.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 'now')`, v); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the old instance still leads 10s after a newer psa-syncd migrated the schema")
	}
	want := fmt.Sprintf("state: %s has schema version %d, migrated by a newer psa-syncd while this one ran, but this psa-syncd supports up to %d: "+
		"it is no longer the active instance; upgrade it", old.quotedPath(), v, SchemaVersion)
	if err := l.Err(); err == nil || err.Error() != want {
		t.Errorf("Err after the step-down = %v; want %q", err, want)
	}
	if err := old.CheckFence(); !errors.Is(err, ErrNotLeader) {
		t.Errorf("CheckFence after the step-down = %v; want ErrNotLeader", err)
	}
	if old.IsLeader() {
		t.Error("IsLeader after the step-down")
	}
	if n := leaderLocks(t, newer); n != 0 {
		t.Errorf("%d sessions hold the leadership lock after the step-down; want 0", n)
	}
}

// TestLeadership_leaseRunsOutBeforeTheWatchGivesUp: when the database no
// longer answers (a network cut), the check of the lock waits
// query_timeout before this instance knows it lost the lock, while the
// server ends the silent session, and a standby takes over, after the
// session's bound (10 s here). CheckFence must refuse once the session has
// not answered for half that bound, while the check still hangs, so that
// the engines stop sending writes before another instance can take over.
func TestLeadership_leaseRunsOutBeforeTheWatchGivesUp(t *testing.T) {
	t.Parallel()
	a, proxy, url := openBehindBlackhole(t, 8*time.Second)
	if err := a.CheckFence(); err != nil {
		t.Fatalf("CheckFence before leading = %v, want nil (the fenced intents refuse)", err)
	}
	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, 100*time.Millisecond)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v; want the leadership", la, err)
	}
	// The checks answer: the lease stays fresh past its first term.
	bound := leaderSessionBound(100 * time.Millisecond)
	for start := time.Now(); time.Since(start) < bound/2+time.Second; time.Sleep(100 * time.Millisecond) {
		if err := a.CheckFence(); err != nil {
			t.Fatalf("CheckFence while the lock's session answers = %v, want nil", err)
		}
	}

	proxy.Freeze() // the network to the database drops everything
	cut := time.Now()
	var fenceErr error
	for fenceErr == nil {
		if time.Since(cut) > bound {
			t.Fatalf("CheckFence still nil %s after the database stopped answering: the server may have ended the lock's "+
				"session, and a standby taken over, while this instance keeps sending writes", time.Since(cut).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
		fenceErr = a.CheckFence()
	}
	if waited := time.Since(cut); waited > bound/2+time.Second {
		t.Errorf("CheckFence refused %s after the cut, want within about %s", waited.Round(time.Millisecond), bound/2)
	}
	if !errors.Is(fenceErr, ErrNotLeader) || !errors.Is(fenceErr, tickets.ErrNotLeader) ||
		!strings.Contains(fenceErr.Error(), "has not answered for") || !strings.Contains(fenceErr.Error(), "may no longer be the active instance") {
		t.Errorf("CheckFence = %v; want an ErrNotLeader (and tickets.ErrNotLeader) saying the lock's session has not answered", fenceErr)
	}
	select {
	case <-la.Lost():
		t.Fatal("the watch gave up before the lease ran out; the test shows nothing")
	default:
	}
	if u, err := neturl.Parse(url); err != nil {
		t.Fatal(err)
	} else if pw, ok := u.User.Password(); ok && strings.Contains(fenceErr.Error(), pw) {
		t.Errorf("CheckFence = %v; want no credentials", fenceErr)
	}
}

// TestLeadership_checkFenceAfterRelease: once the leadership is released,
// CheckFence refuses; on SQLite it never does.
func TestLeadership_checkFenceAfterRelease(t *testing.T) {
	t.Parallel()
	a, _ := openSharedPostgres(t)
	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, 100*time.Millisecond)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v; want the leadership", la, err)
	}
	if err := a.CheckFence(); err != nil {
		t.Fatalf("CheckFence of the active instance = %v, want nil", err)
	}
	if err := la.Release(); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckFence(); !errors.Is(err, ErrNotLeader) || !errors.Is(err, tickets.ErrNotLeader) {
		t.Errorf("CheckFence after Release = %v, want ErrNotLeader", err)
	}

	db := openTest(t, testDrivers[0])
	if err := db.CheckFence(); err != nil {
		t.Errorf("CheckFence on SQLite = %v, want nil", err)
	}
}

// TestLeadership_lockedIntentsTableKeepsTheLeadership: maintenance holds a
// lock on the intents table (VACUUM FULL, an ALTER TABLE, a long LOCK
// TABLE) for longer than state.query_timeout while the active instance
// records intents. The statement fails, so nothing is sent, but the server
// cancels it (statement_timeout, a little below query_timeout) before the
// client gives it up: the session that holds the lock lives on, and the
// instance stays active and records intents again once the lock is gone.
// When the client gave the statement up, pgx closed that connection and the
// instance lost the leadership for one slow statement (and the standby met
// the same lock).
func TestLeadership_lockedIntentsTableKeepsTheLeadership(t *testing.T) {
	t.Parallel()
	// A query_timeout of 5 s, not 1 s: a CPU-starved test process (nice 19
	// beside busy loops) took more than 1 s for an unhindered commit, and
	// the statement bound's fifth (1 s) is what the server's cancel has
	// before the client gives the statement up.
	a, la, dba := openLeaderWithDBA(t, 5*time.Second)
	a.fenceMu.Lock()
	var v string
	err := a.fence.QueryRowContext(t.Context(), `SHOW statement_timeout`).Scan(&v)
	a.fenceMu.Unlock()
	if err != nil || v != "4s" {
		t.Errorf("statement_timeout of the lock's session = %q, %v; want 4s (a fifth below query_timeout)", v, err)
	}

	if _, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err != nil {
		t.Fatal(err)
	}
	release := lockTable(t, dba, "intents", "EXCLUSIVE")
	_, err = a.OpenIntentBatch(t.Context(), []Intent{testIntent()})
	if err == nil || !strings.Contains(err.Error(), "statement timeout") || !strings.Contains(err.Error(), "PostgreSQL database") {
		t.Errorf("OpenIntentBatch with the intents table locked = %v; want the server's statement timeout, naming the database", err)
	}
	// A check of the lock sent after the statement failed is answered
	// through the lock's session (it renews the lease): the session, and
	// with it the leadership, outlived the statement.
	failed := monoNow()
	for deadline := time.Now().Add(time.Minute); a.leaseAnswered.Load() <= failed; time.Sleep(10 * time.Millisecond) {
		select {
		case <-la.Lost():
			t.Fatalf("the leadership was lost for one statement that waited for a lock: %v", la.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no check of the leadership lock answered within a minute after the statement failed")
		}
	}
	select {
	case <-la.Lost():
		t.Fatalf("the leadership was lost for one statement that waited for a lock: %v", la.Err())
	default:
	}
	if err := a.CheckFence(); err != nil || !a.IsLeader() {
		t.Errorf("after the statement timed out: CheckFence = %v, IsLeader = %v; want nil, true", err, a.IsLeader())
	}
	release()
	if _, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err != nil {
		t.Errorf("OpenIntentBatch once the lock is gone = %v", err)
	}
	if open, err := dba.OpenIntents(); err != nil || len(open) != 2 {
		t.Errorf("open intents = %d, %v; want the ones recorded before and after the lock", len(open), err)
	}
}

// TestLeadership_shorterServerStatementTimeoutKept: a statement_timeout
// the server already gives psa-syncd's sessions (ALTER ROLE or DATABASE
// ... SET) that is shorter than the lock session's bound is kept, not
// raised.
func TestLeadership_shorterServerStatementTimeoutKept(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery += "&options=-c%20statement_timeout%3D700"
	a, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: u.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, time.Second)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v; want the leadership", la, err)
	}
	defer func() { _ = la.Release() }()
	a.fenceMu.Lock()
	defer a.fenceMu.Unlock()
	var v string
	if err := a.fence.QueryRowContext(t.Context(), `SHOW statement_timeout`).Scan(&v); err != nil || v != "700ms" {
		t.Errorf("statement_timeout of the lock's session = %q, %v; want the server's 700ms kept", v, err)
	}
}

// TestPostgres_firstWriteWithIntentsLockedStoresStatuses: the first group
// commit of a process on PostgreSQL ran a prepare of the intent statements
// on a pooled connection first; while maintenance held a lock on intents,
// that prepare waited, and its timeout was given to every operation of the
// group: the customer statuses of a just-started psa-syncd were not stored,
// blamed on a table they do not touch. They are stored; an intent fails
// with the server's statement timeout, on its own.
func TestPostgres_firstWriteWithIntentsLockedStoresStatuses(t *testing.T) {
	t.Parallel()
	a, _, dba := openLeaderWithDBA(t, time.Second)
	release := lockTable(t, dba, "intents", "EXCLUSIVE")
	cs := CustomerStatus{Source: "sophos", CustomerID: "718b", Result: CustomerSucceeded, LastAttempt: time.Now()}
	if err := a.PutCustomerStatusBatch(t.Context(), []CustomerStatus{cs}); err != nil {
		t.Errorf("storing a status, the first write of the process, with intents locked = %v; want it stored", err)
	}
	if _, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Errorf("OpenIntentBatch with intents locked = %v; want the server's statement timeout", err)
	} else if !strings.Contains(err.Error(), "recording 1 intent in ") {
		t.Errorf("OpenIntentBatch's error = %v; want it to say \"recording 1 intent in\"", err)
	}
	release()
	if _, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err != nil {
		t.Errorf("OpenIntentBatch once the lock is gone = %v", err)
	}
}

// TestLeadership_instancesStartedAtOnce: several psa-syncd started at the
// same time on a new database (a Deployment's replicas) each migrate the
// schema and try the lock at once: every open succeeds, on one schema, and
// exactly one instance leads.
func TestLeadership_instancesStartedAtOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	const n = 4
	dbs := make([]*DB, n)
	leads := make([]*Leadership, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			dbs[i], errs[i] = OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url})
			if errs[i] == nil {
				leads[i], errs[i] = dbs[i].TryLead(t.Context(), LeaderInfo{Holder: fmt.Sprint("instance-", i)}, time.Second)
			}
		}()
	}
	close(start)
	wg.Wait()
	leaders := 0
	for i := range n {
		if dbs[i] != nil {
			t.Cleanup(func() { _ = dbs[i].Close() })
		}
		if errs[i] != nil {
			t.Errorf("instance %d: %v", i, errs[i])
		}
		if leads[i] != nil {
			leaders++
			t.Cleanup(func() { _ = leads[i].Release() })
		}
	}
	if leaders != 1 {
		t.Errorf("%d instances lead, want exactly 1", leaders)
	}
	var migrations int
	if err := dbs[0].sql.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&migrations); err != nil || migrations != SchemaVersion {
		t.Errorf("schema_migrations rows = %d, %v; want %d, each applied once", migrations, err, SchemaVersion)
	}
}

// TestRestoredBackup_postgresDumpRestored: a PostgreSQL state database
// restored from a pg_dump with pg_restore, into the same database or
// another one, is a restored backup (RestoredBackup) until an operator
// confirms the restore, with the time of the last pass or intent the dump
// holds: writes made after it are what the restored ledger lacks. Opened
// again, the live database is not one, nor is a database whose tables were
// rewritten in place (VACUUM FULL).
func TestRestoredBackup_postgresDumpRestored(t *testing.T) {
	t.Parallel()
	for _, into := range []string{"same", "other"} {
		t.Run(into, func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewDatabase(t)
			db := openConfig(t, Config{Driver: DriverPostgres, URL: url})
			started := time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)
			r, err := db.BeginRun(Run{Trigger: "schedule", Started: started, Result: RunRunning})
			if err != nil {
				t.Fatal(err)
			}
			created := started.Add(time.Minute)
			if _, err := db.OpenIntent(Intent{RunID: r.ID, System: "kaseyabms", Source: "file", CustomerID: "cust-a", ContractID: "2001", ServiceID: "300",
				After: 42, EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC), Created: created}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.sql.ExecContext(t.Context(), `VACUUM FULL meta`); err != nil {
				t.Fatal(err)
			}
			if _, marked, err := db.RestoredBackup(); marked || err != nil {
				t.Fatalf("the live database: RestoredBackup = %v, %v; want unmarked", marked, err)
			}
			closeDB(t, db)
			db = openConfig(t, Config{Driver: DriverPostgres, URL: url})
			if _, marked, err := db.RestoredBackup(); marked || err != nil {
				t.Fatalf("the live database opened again: RestoredBackup = %v, %v; want unmarked", marked, err)
			}
			closeDB(t, db)

			target := url
			if into == "other" {
				target = pgtest.NewDatabase(t)
			}
			pgtest.Restore(t, pgtest.Dump(t, url), target)
			db = openConfig(t, Config{Driver: DriverPostgres, URL: target})
			if at, marked, err := db.RestoredBackup(); !marked || err != nil || !at.Equal(created) {
				t.Fatalf("the restored database: RestoredBackup = %v, %v, %v; want marked at %v, the dump's last intent", at, marked, err, created)
			}
			if err := db.ConfirmRestore(); err != nil {
				t.Fatal(err)
			}
			if _, marked, err := db.RestoredBackup(); marked || err != nil {
				t.Errorf("after ConfirmRestore: RestoredBackup = %v, %v; want unmarked", marked, err)
			}
			closeDB(t, db)
			db = openConfig(t, Config{Driver: DriverPostgres, URL: target})
			defer closeDB(t, db)
			if _, marked, err := db.RestoredBackup(); marked || err != nil {
				t.Errorf("opened again after ConfirmRestore: RestoredBackup = %v, %v; want unmarked", marked, err)
			}
		})
	}
}

// kaseyaIntents begins a run in db and returns its start and a function
// that opens an intent of it (a Kaseya BMS line) created at a given time:
// the writes whose copies the promotion tests compare.
func kaseyaIntents(t *testing.T, db *DB) (started time.Time, intent func(created time.Time)) {
	t.Helper()
	started = time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)
	r, err := db.BeginRun(Run{Trigger: "schedule", Started: started, Result: RunRunning})
	if err != nil {
		t.Fatal(err)
	}
	return started, func(created time.Time) {
		t.Helper()
		if _, err := db.OpenIntent(Intent{RunID: r.ID, System: "kaseyabms", Source: "file", CustomerID: "cust-a", ContractID: "2001", ServiceID: "300",
			After: 42, EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC), Created: created}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoredBackup_postgresPromotedCopy: a physical copy of a PostgreSQL
// state database (a replica promoted after it missed the last commits, a
// point-in-time recovery) keeps the meta table's OID, but runs on a new
// timeline: it is a restored backup (RestoredBackup) until an operator
// confirms the restore, with the time of the last intent it holds, not the
// one committed after the copy was taken. The live database is not one.
func TestRestoredBackup_postgresPromotedCopy(t *testing.T) {
	t.Parallel()
	live := pgtest.New(t)
	url, err := live.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db := openConfig(t, Config{Driver: DriverPostgres, URL: url})
	defer closeDB(t, db)
	started, intent := kaseyaIntents(t, db)
	copied := started.Add(time.Minute)
	intent(copied)
	cp := live.PromotedCopy(t)
	// Committed on the live server only: what the copy lacks.
	intent(started.Add(2 * time.Minute))
	if _, marked, err := db.RestoredBackup(); marked || err != nil {
		t.Fatalf("the live database: RestoredBackup = %v, %v; want unmarked", marked, err)
	}

	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	cdb := openConfig(t, Config{Driver: DriverPostgres, URL: cp.URL(name)})
	if at, marked, err := cdb.RestoredBackup(); !marked || err != nil || !at.Equal(copied) {
		t.Fatalf("the promoted copy: RestoredBackup = %v, %v, %v; want marked at %v, its last intent", at, marked, err, copied)
	}
	if rec, cur, err := cdb.Timelines(); rec != "1" || cur != "2" || err != nil {
		t.Errorf("the promoted copy: Timelines = %q, %q, %v; want 1, 2", rec, cur, err)
	}
	if err := cdb.ConfirmRestore(); err != nil {
		t.Fatal(err)
	}
	if _, marked, err := cdb.RestoredBackup(); marked || err != nil {
		t.Errorf("after ConfirmRestore: RestoredBackup = %v, %v; want unmarked", marked, err)
	}
	closeDB(t, cdb)
	cdb = openConfig(t, Config{Driver: DriverPostgres, URL: cp.URL(name)})
	defer closeDB(t, cdb)
	if _, marked, err := cdb.RestoredBackup(); marked || err != nil {
		t.Errorf("opened again after ConfirmRestore: RestoredBackup = %v, %v; want unmarked", marked, err)
	}
}
