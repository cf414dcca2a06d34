package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// lockedBuffer is a bytes.Buffer for a logger that several goroutines use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMigrate_endsTheOlderActiveInstancesSession: a rolling upgrade from
// schema version 10 (version 11 gave ticket records note_alerts and
// reopen_activity). The active instance runs the older psa-syncd (here: a
// database of version 10, whose instance checks the lock once an hour, as
// one whose check meets maintenance's lock on schema_migrations reads no
// version until the lock goes). The newer psa-syncd migrates the shared
// schema when it starts. The older instance went on committing intents and
// ticket records of a schema it does not know until its next check read
// the new version, or, with schema_migrations locked meanwhile, until the
// lock went. Now the migrating instance ends the older one's lock session:
// its writes are refused at once, the lock is free for the newer instance,
// and the log says whose session was ended.
func TestMigrate_endsTheOlderActiveInstancesSession(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	old, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = old.Close() })
	// Back to schema version 10, as the older psa-syncd left it
	// (migrations 12 and 13 changed no table; 14 added moved_note and
	// held_since).
	if _, err := old.sql.Exec(`ALTER TABLE tickets DROP COLUMN note_alerts, DROP COLUMN reopen_activity, DROP COLUMN moved_note, DROP COLUMN held_since;
		DELETE FROM schema_migrations WHERE version >= 11`); err != nil {
		t.Fatal(err)
	}
	lo, err := old.TryLead(t.Context(), LeaderInfo{Holder: "old-host pid 1"}, time.Hour)
	if err != nil || lo == nil {
		t.Fatalf("old.TryLead = %v, %v; want the leadership", lo, err)
	}
	t.Cleanup(func() { _ = lo.Release() })
	rec := func(key string) tickets.Record {
		return tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: key, Ref: "sc:" + key, Generation: 1,
			State: tickets.StateCreating, Created: t0, Updated: t0}
	}
	if _, err := old.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err != nil {
		t.Fatalf("old.OpenIntentBatch before the upgrade = %v", err)
	}

	var logs lockedBuffer
	newer, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = newer.Close() })
	if v, err := newer.Version(); err != nil || v != SchemaVersion {
		t.Fatalf("newer.Version = %d, %v; want %d", v, err, SchemaVersion)
	}

	if err := old.CreateTicketIntent(rec("after")); err == nil || !errors.Is(err, tickets.ErrNotLeader) {
		t.Errorf("old.CreateTicketIntent after the newer psa-syncd migrated the schema = %v; want refused (tickets.ErrNotLeader)", err)
	}
	if _, err := old.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err == nil {
		t.Error("old.OpenIntentBatch after the newer psa-syncd migrated the schema = nil; want refused")
	}
	var n int
	if err := newer.sql.QueryRow(`SELECT COUNT(*) FROM tickets WHERE alert_key = 'after'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("ticket records of the older instance after the migration = %d, %v; want 0", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for leaderLocks(t, newer) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the older instance still holds the leadership lock 5s after the newer psa-syncd migrated the schema")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ln, err := newer.TryLead(t.Context(), LeaderInfo{Holder: "newer"}, time.Hour)
	if err != nil || ln == nil {
		t.Fatalf("newer.TryLead = %v, %v; want the leadership", ln, err)
	}
	t.Cleanup(func() { _ = ln.Release() })
	if err := newer.CreateTicketIntent(rec("newer")); err != nil {
		t.Errorf("newer.CreateTicketIntent = %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "Ended the session of the active instance, an older psa-syncd") ||
		!strings.Contains(l, `holder="old-host pid 1"`) || !strings.Contains(l, fmt.Sprintf("from_version=10 to_version=%d", SchemaVersion)) {
		t.Errorf("log of the migrating instance = %q; want the ended session of old-host pid 1, from 10 to %d", l, SchemaVersion)
	}
}

// TestMigrate_endsNoSessionWithoutAMigration: an instance that starts on a
// database of its own schema version migrates nothing and leaves the
// active instance's session alone.
func TestMigrate_endsNoSessionWithoutAMigration(t *testing.T) {
	t.Parallel()
	a, _ := openSharedPostgres(t)
	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, time.Hour)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v", la, err)
	}
	t.Cleanup(func() { _ = la.Release() })
	url := a.cfg.URL
	c, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := a.OpenIntentBatch(t.Context(), []Intent{testIntent()}); err != nil {
		t.Errorf("a.OpenIntentBatch after another instance of its version started = %v", err)
	}
}

// TestMigrate_olderActiveInstanceSaysWhy: the older active instance whose
// lock session a migrating one ended says, in Lost's error, that a newer
// psa-syncd migrated the schema (upgrade it), not only that its connection
// was terminated.
func TestMigrate_olderActiveInstanceSaysWhy(t *testing.T) {
	t.Parallel()
	old, newer := openSharedPostgres(t)
	lo, err := old.TryLead(t.Context(), LeaderInfo{Holder: "old"}, 100*time.Millisecond)
	if err != nil || lo == nil {
		t.Fatalf("old.TryLead = %v, %v; want the leadership", lo, err)
	}
	t.Cleanup(func() { _ = lo.Release() })
	// The newer psa-syncd migrates past this one's version and ends the
	// lock's session before the older instance's next check.
	old.fenceMu.Lock()
	if _, err := newer.sql.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 'now')`, SchemaVersion+1); err != nil {
		old.fenceMu.Unlock()
		t.Fatal(err)
	}
	newer.endOlderLeader(SchemaVersion, SchemaVersion+1)
	old.fenceMu.Unlock()
	select {
	case <-lo.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the older instance still leads 5s after its session was ended")
	}
	if err := lo.Err(); err == nil || !strings.Contains(err.Error(), "migrated by a newer psa-syncd while this one ran") ||
		!strings.Contains(err.Error(), "it is no longer the active instance; upgrade it") {
		t.Errorf("Lost's error = %v; want that a newer psa-syncd migrated the schema", err)
	}
}

// TestLeadership_migrationJustBeforeALockOnSchemaMigrationsIsSeen: a newer
// psa-syncd migrates the shared schema (and cannot end the active
// instance's session: another role, without pg_signal_backend), and
// maintenance locks schema_migrations before the active instance's next
// check. The check, which keeps the leadership when that table is locked,
// missed the migration until the lock went; it reads the version from the
// table's comment, which the migration sets, and steps down.
func TestLeadership_migrationJustBeforeALockOnSchemaMigrationsIsSeen(t *testing.T) {
	t.Parallel()
	// A query_timeout of 10 s: with 1 s, a CPU-starved test process's
	// check of the lock timed out before it read the comment, and the
	// leadership was lost for that timeout rather than the newer schema.
	a, la, dba := openLeaderWithDBA(t, 10*time.Second)
	var c string
	if err := dba.sql.QueryRow(`SELECT obj_description('schema_migrations'::regclass, 'pg_class')`).Scan(&c); err != nil || c != schemaVersionComment(SchemaVersion) {
		t.Fatalf("comment of schema_migrations after Open = %q, %v; want %q", c, err, schemaVersionComment(SchemaVersion))
	}
	newer := SchemaVersion + 1
	a.fenceMu.Lock() // no check until the table is locked
	if _, err := dba.sql.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 'now')`, newer); err != nil {
		a.fenceMu.Unlock()
		t.Fatal(err)
	}
	if _, err := dba.sql.Exec(`COMMENT ON TABLE schema_migrations IS '` + schemaVersionComment(newer) + `'`); err != nil {
		a.fenceMu.Unlock()
		t.Fatal(err)
	}
	lockTable(t, dba, "schema_migrations", "ACCESS EXCLUSIVE")
	a.fenceMu.Unlock()
	select {
	case <-la.Lost():
	case <-time.After(time.Minute):
		t.Fatal("the active instance still leads a minute after a newer psa-syncd migrated the schema and schema_migrations was locked")
	}
	if err := la.Err(); err == nil || !strings.Contains(err.Error(), "migrated by a newer psa-syncd while this one ran") {
		t.Errorf("Lost's error = %v; want the newer schema", err)
	}
	if err := a.CheckFence(); !errors.Is(err, ErrNotLeader) {
		t.Errorf("CheckFence after the step-down = %v; want ErrNotLeader", err)
	}
}
