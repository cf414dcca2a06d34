package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// TestBackup_fullOrUnwritableOutput: psa-syncd backup into a file system
// that fills during the copy (a tmpfs, which needs root: skipped
// otherwise) exits 1 naming -output and saying its file system is full,
// and leaves nothing there; /dev/full, a file that exists, is refused
// before anything is written.
func TestBackup_fullOrUnwritableOutput(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	newStateDB(t, stateDir, anExport(t, 1<<20))
	cfg := backupConfig(t, "state_dir: "+stateDir)

	code, stdout, stderr := runCmd(t, "backup", "-config.file", cfg, "-output", "/dev/full")
	if code != 1 || !strings.Contains(stderr, "-output /dev/full exists") || strings.Contains(stdout, "Wrote") {
		t.Errorf("backup to /dev/full: exit %d, stdout %q, stderr %q; want 1 saying it exists", code, stdout, stderr)
	}

	fs := t.TempDir()
	if err := syscall.Mount("tmpfs", fs, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Skipf("mounting a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(fs, syscall.MNT_DETACH) })
	out := filepath.Join(fs, "nightly.db")
	code, stdout, stderr = runCmd(t, "backup", "-config.file", cfg, "-output", out)
	if code != 1 || !strings.Contains(stderr, "-output "+out+": ") || !strings.Contains(stderr, "is full") ||
		!strings.Contains(stderr, "state database is unaffected") || strings.Contains(stdout, "Wrote") {
		t.Errorf("backup into a full file system: exit %d, stdout %q, stderr %q; want 1 naming -output and saying its file system is full", code, stdout, stderr)
	}
	if entries, err := os.ReadDir(fs); err != nil || len(entries) != 0 {
		t.Errorf("the full file system holds %v (%v) after the failed backup, want nothing", entries, err)
	}
}

// TestBackup_systemdRestoreCommands runs README's restore commands for the
// systemd example (but systemctl) on a state directory owned, as the
// DynamicUser's is, by another user than root: the restored file must be
// that user's, mode 0600, with the old -wal and -shm gone. systemd gives
// the directory's files to the service's user at start only when the
// directory is not its, so a file copied in by root stayed root's and the
// service could not open it. Run as another user than root, the directory
// is the test's own and only the mode and the files are checked.
func TestBackup_systemdRestoreCommands(t *testing.T) {
	t.Parallel()
	readme := string(must(os.ReadFile("../../../README.md")))
	const dir = "/var/lib/psa-syncd"
	m := regexp.MustCompile("(?s)\n  ```sh\n(  systemctl stop psa-syncd\n  cd " + regexp.QuoteMeta(dir) + "\n.*?)  ```\n").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no restore commands for the systemd example")
	}
	stateDir := t.TempDir()
	newStateDB(t, stateDir, aRun(t))
	cfg := backupConfig(t, "state_dir: "+stateDir)
	backup := filepath.Join(t.TempDir(), "psa-syncd-2026-12-01.db")
	if code, _, stderr := runCmd(t, "backup", "-config.file", cfg, "-output", backup); code != 0 {
		t.Fatalf("backup: exit %d, %s", code, stderr)
	}
	for _, f := range []string{"psa-syncd.db-wal", "psa-syncd.db-shm"} {
		writeFile(t, filepath.Join(stateDir, f), "left by the lost database")
	}
	owner := os.Getuid()
	if owner == 0 {
		owner = 65532
		if err := os.Chown(stateDir, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
	var script []string
	for _, l := range strings.Split(strings.TrimRight(m[1], "\n"), "\n") {
		l = strings.TrimPrefix(l, "  ")
		if strings.HasPrefix(l, "systemctl ") {
			continue
		}
		l = strings.ReplaceAll(l, dir, stateDir)
		script = append(script, regexp.MustCompile(`/backup/\S+\.db`).ReplaceAllString(l, backup))
	}
	cmd := exec.Command("sh", "-e", "-c", strings.Join(script, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README's restore commands: %v\n%s\n%s", err, strings.Join(script, "\n"), out)
	}
	fi, err := os.Stat(filepath.Join(stateDir, state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no owner in %T", fi.Sys())
	}
	if int(st.Uid) != owner || int(st.Gid) != owner || fi.Mode().Perm() != 0o600 {
		t.Errorf("the restored database is %d:%d mode %v, want %d:%d 0600, the state directory's owner", st.Uid, st.Gid, fi.Mode().Perm(), owner, owner)
	}
	for _, f := range []string{"psa-syncd.db-wal", "psa-syncd.db-shm"} {
		if _, err := os.Stat(filepath.Join(stateDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after the restore: %v", f, err)
		}
	}
	restored, err := state.Open(stateDir)
	if err != nil {
		t.Fatalf("the restored database: %v", err)
	}
	if runs, err := restored.Runs(10); len(runs) != 1 || err != nil {
		t.Errorf("the restored database holds %d runs, %v; want 1", len(runs), err)
	}
	_ = restored.Close()
}
