package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// backupConfig writes a config whose state section is stateCfg and
// returns its path.
func backupConfig(t *testing.T, stateCfg string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "psa-syncd.yml")
	writeFile(t, cfg, fmt.Sprintf(`export_path: mappings.json
%s
psa:
  system: autotask
  autotask: {username: u, secret: s3cr3t, integration_code: c0de, base_url: "http://127.0.0.1:1/ATServicesRest/"}
source: {type: file, file: {path: usage.csv}}
`, stateCfg))
	return cfg
}

// newStateDB creates the SQLite state database in dir, which fill writes
// to, and closes it, as a daemon leaves it.
func newStateDB(t *testing.T, dir string, fill func(*state.DB)) {
	t.Helper()
	db, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fill(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// aRun is a newStateDB fill: one run recorded.
func aRun(t *testing.T) func(*state.DB) {
	return func(db *state.DB) {
		if _, err := db.BeginRun(state.Run{Trigger: "test"}); err != nil {
			t.Fatal(err)
		}
	}
}

// anExport is a newStateDB fill: an export of size bytes stored.
func anExport(t *testing.T, size int) func(*state.DB) {
	return func(db *state.DB) {
		if err := db.PutExport(state.ExportVersion{Revision: 1, Digest: "sha256:x"}, make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackup_noDatabaseRefused: psa-syncd backup with a state_dir that holds
// no database (a typo, or a lost file) fails, creates nothing, and writes
// no backup; it used to create an empty database there, copy it and report
// success. With PostgreSQL it refuses before connecting, so migrates
// nothing.
func TestBackup_noDatabaseRefused(t *testing.T) {
	t.Parallel()
	stateDir := filepath.Join(t.TempDir(), "stat-typo")
	cfg := backupConfig(t, "state_dir: "+stateDir)
	out := filepath.Join(t.TempDir(), "nightly.db")
	code, stdout, stderr := runCmd(t, "backup", "-config.file", cfg, "-output", out)
	if code != 1 || !strings.Contains(stderr, "there is no state database") || !strings.Contains(stderr, stateDir) || strings.Contains(stdout, "Wrote") {
		t.Errorf("backup of a missing state database: exit %d, stdout %q, stderr %q; want 1 saying there is none", code, stdout, stderr)
	}
	for _, f := range []string{stateDir, out} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("backup of a missing state database left %s: %v", f, err)
		}
	}

	// An existing database is backed up, and stays as it was.
	newStateDB(t, stateDir, aRun(t))
	code, stdout, stderr = runCmd(t, "backup", "-config.file", cfg, "-output", out)
	if code != 0 || !strings.Contains(stdout, "Wrote a backup") {
		t.Fatalf("backup of a state database: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	cp, err := state.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if runs, err := cp.Runs(10); len(runs) != 1 || err != nil {
		t.Errorf("the backup holds %d runs, %v; want 1", len(runs), err)
	}

	// PostgreSQL: refused without connecting (nothing listens on port 1).
	cfg = backupConfig(t, "state:\n  driver: postgres\n  url: postgres://psa@127.0.0.1:1/psa_syncd\n  connect_timeout: 1m")
	out = filepath.Join(t.TempDir(), "pg.db")
	code, _, stderr = runCmd(t, "backup", "-config.file", cfg, "-output", out)
	if code != 1 || !strings.Contains(stderr, "pg_dump") || strings.Contains(stderr, "connecting") {
		t.Errorf("backup of a PostgreSQL state database: exit %d, stderr %q; want 1 pointing at pg_dump, before connecting", code, stderr)
	}
}

// TestLedger_readsTheDaemonsDatabase: psa-syncd ledger without -web.url
// reads the database the daemon uses, as it is: with a state_dir that holds
// none it fails and creates nothing (it used to create an empty database
// and print an empty ledger), and with the state section's PostgreSQL it
// reads that database (it used to open an SQLite file in state_dir).
func TestLedger_readsTheDaemonsDatabase(t *testing.T) {
	t.Parallel()
	stateDir := filepath.Join(t.TempDir(), "stat-typo")
	cfg := backupConfig(t, "state_dir: "+stateDir)
	code, stdout, stderr := runCmd(t, "ledger", "-config.file", cfg)
	if code != 1 || !strings.Contains(stderr, "there is no state database") || !strings.Contains(stderr, stateDir) {
		t.Errorf("ledger of a missing state database: exit %d, stdout %q, stderr %q; want 1 saying there is none", code, stdout, stderr)
	}
	if _, err := os.Stat(stateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ledger of a missing state database left %s: %v", stateDir, err)
	}

	url := pgtest.NewDatabase(t)
	db, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := db.TryLead(t.Context(), state.LeaderInfo{Holder: "active.example"}, time.Second); err != nil || l == nil {
		t.Fatalf("TryLead = %v, %v", l, err)
	}
	in, err := db.OpenIntent(state.Intent{RunID: 1, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-pg", ContractID: "29684000",
		ServiceID: "30000001", Before: 3, After: 7, BeforeKnown: true, EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteIntent(in.ID, state.IntentDone, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg = backupConfig(t, fmt.Sprintf("state_dir: %s\nstate:\n  driver: postgres\n  url: %q", t.TempDir(), url))
	code, stdout, stderr = runCmd(t, "ledger", "-config.file", cfg, "-format", "csv")
	if code != 0 || !strings.Contains(stdout, "cust-pg") || !strings.Contains(stdout, "29684000") {
		t.Errorf("ledger on PostgreSQL: exit %d, stdout %q, stderr %q; want the change to cust-pg's contract", code, stdout, stderr)
	}
}

// TestBackup_outputAppearsComplete: psa-syncd backup without -web.url
// writes the copy beside -output and gives it that name only once it is
// complete, as a backup from a running daemon is: a backup killed midway (a
// cron job's timeout, a reboot) leaves no half-written file under the name
// of the night's backup. It used to copy straight into -output, which
// existed, empty and then partial, for the whole copy.
func TestBackup_outputAppearsComplete(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	// 16 MiB take 64 steps of the online copy, with a pause after each.
	newStateDB(t, stateDir, anExport(t, 16<<20))
	cfg := backupConfig(t, "state_dir: "+stateDir)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "nightly.db")

	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, stdout, stderr := runCmd(t, "backup", "-config.file", cfg, "-output", out)
		done <- result{code, stdout, stderr}
	}()
	// The size of -output when it was first seen, while the command ran.
	var seen int64 = -1
	var r result
poll:
	for {
		select {
		case r = <-done:
			break poll
		default:
		}
		if fi, err := os.Stat(out); err == nil && seen < 0 {
			seen = fi.Size()
		}
		time.Sleep(100 * time.Microsecond)
	}
	if r.code != 0 {
		t.Fatalf("backup: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if seen >= 0 && seen != fi.Size() {
		t.Errorf("-output existed with %d bytes during the backup, %d once complete: a backup killed then leaves a half-written file under its name", seen, fi.Size())
	}
	if entries, err := os.ReadDir(outDir); err != nil || len(entries) != 1 {
		t.Errorf("the backup's directory holds %v, %v; want only nightly.db", entries, err)
	}

	// A directory that does not exist is named as -output's.
	missing := filepath.Join(outDir, "no-such-dir", "nightly.db")
	code, _, stderr := runCmd(t, "backup", "-config.file", cfg, "-output", missing)
	if code != 1 || !strings.Contains(stderr, "-output "+missing+": ") {
		t.Errorf("backup into a missing directory: exit %d, stderr %q; want 1 naming -output", code, stderr)
	}
}

// TestPublish_withoutHardLinks: a backup sent to a file system without hard
// links (a CIFS share without Unix extensions, vfat) still gets its name,
// and still never replaces a file of that name. It used to fail after the
// whole copy was made. Not parallel: it replaces link.
func TestPublish_withoutHardLinks(t *testing.T) {
	defer func(l func(string, string) error) { link = l }(link)
	link = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
	}
	dir := t.TempDir()
	tmp, out := filepath.Join(dir, ".psa-syncd-backup-1"), filepath.Join(dir, "nightly.db")
	if err := os.WriteFile(tmp, []byte("backup 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := publish(tmp, out); err != nil {
		t.Fatalf("publish without hard links = %v, want the backup renamed", err)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "backup 1" {
		t.Errorf("-output holds %q, %v; want the backup", b, err)
	}

	tmp2 := filepath.Join(dir, ".psa-syncd-backup-2")
	if err := os.WriteFile(tmp2, []byte("backup 2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := publish(tmp2, out); !errors.Is(err, os.ErrExist) {
		t.Errorf("publish onto an existing -output = %v, want an error saying it exists", err)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "backup 1" {
		t.Errorf("-output holds %q, %v after a refused publish; want the first backup", b, err)
	}
}

// TestBackup_systemdStoppedByHand: with the systemd example stopped (its
// credentials under /run/credentials/ exist only while it runs), backup and
// ledger, run by hand with its configuration, read the state database: they
// use no secret but the state's. They used to fail on the first credential
// the configuration names, so that README's backup "while psa-syncd is
// stopped" could not be taken.
func TestBackup_systemdStoppedByHand(t *testing.T) {
	t.Parallel()
	path := systemdStoppedConfig(t, aRun(t))
	out := filepath.Join(t.TempDir(), "stopped.db")
	code, stdout, stderr := runCmd(t, "backup", "-config.file", path, "-output", out)
	if code != 0 || !strings.Contains(stdout, "Wrote a backup") {
		t.Errorf("backup with the systemd configuration, stopped: exit %d, stdout %q, stderr %q; want 0", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "ledger", "-config.file", path)
	if code != 0 {
		t.Errorf("ledger with the systemd configuration, stopped: exit %d, stdout %q, stderr %q; want 0", code, stdout, stderr)
	}
}
