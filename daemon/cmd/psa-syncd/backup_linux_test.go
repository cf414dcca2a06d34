package main

import (
	"os"
	"path/filepath"
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
	db, err := state.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutExport(state.ExportVersion{Revision: 1, Digest: "sha256:x"}, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
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
