package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// TestRun_checkStateOfNewerSchema: a state database that a newer
// psa-syncd has migrated (a rollback without the backup taken before the
// upgrade) is refused by run, sync and plan; check, the pre-flight, fails
// it in the same words instead of reporting it ok. (audit-upgrade,
// finding 2.)
func TestRun_checkStateOfNewerSchema(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	flag := "-config.file=" + e.cfgPath
	if code, stdout, stderr := runCmd(t, "sync", flag); code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	file := filepath.Join(e.dir, "state", state.FileName)
	raw, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 'now')`, state.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	refusal := fmt.Sprintf(`state database %q has schema version %d, but this psa-syncd supports up to %d: upgrade psa-syncd`,
		file, state.SchemaVersion+1, state.SchemaVersion)
	newer := fmt.Sprintf("has schema version %d, but this psa-syncd supports up to %d: upgrade psa-syncd", state.SchemaVersion+1, state.SchemaVersion)
	if code, stdout, stderr := runCmd(t, "sync", flag); code != 1 || !strings.Contains(stderr, newer) {
		t.Errorf("sync on the newer schema: exit %d, want 1 and %q:\n%s\n%s", code, newer, stdout, stderr)
	}
	code, stdout, stderr := runCmd(t, "check", flag)
	if want := "FAIL state database: state: " + refusal; code != 1 || !strings.Contains(flat(stdout), want) {
		t.Errorf("check on the newer schema: exit %d, want 1 and %q:\n%s\n%s", code, want, stdout, stderr)
	}
}

// TestOpenLedger_sqliteOfAnotherVersion: the billing-impact report reads
// the ledger of an SQLite state file (on the daemon's host, with the daemon
// stopped) as it is: one of an earlier schema, which the installed daemon
// uses, is refused with the reason, not migrated to the report's version,
// which the daemon would then refuse to start on. (audit-upgrade, finding 4.)
func TestOpenLedger_sqliteOfAnotherVersion(t *testing.T) {
	t.Parallel()
	cfg := &daemon.Config{StateDir: t.TempDir(), State: daemon.StateConfig{Driver: state.DriverSQLite}}
	db, err := state.OpenConfig(t.Context(), cfg.State.Database(cfg.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The current schema is read.
	db, err = openLedger(t.Context(), cfg)
	if err != nil {
		t.Fatalf("openLedger of the current schema: %v", err)
	}
	if _, err := db.Ledger(0); err != nil {
		t.Errorf("reading the ledger: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The schema of the psa-syncd before: refused, and left as it is.
	file := filepath.Join(cfg.StateDir, state.FileName)
	raw, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	older := state.SchemaVersion - 1
	if _, err := raw.Exec(`ALTER TABLE tickets DROP COLUMN held_since; ALTER TABLE tickets DROP COLUMN moved_note; DELETE FROM schema_migrations WHERE version > ?`, older); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("has schema version %d, but this psa-syncd reads version %d without migrating", older, state.SchemaVersion)
	if db, err := openLedger(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), want) {
		if db != nil {
			_ = db.Close()
		}
		t.Errorf("openLedger of schema version %d = %v; want an error saying %q", older, err, want)
	}
	db, err = state.OpenConfig(t.Context(), state.Config{Path: cfg.StateDir, Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if v, err := db.Version(); err != nil || v != older {
		t.Errorf("schema version after the report = %d, %v; want %d, as the daemon left it", v, err, older)
	}
}
