package state

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of size bytes (mount's size= option) on a new
// temporary directory, which needs root; the test is skipped otherwise.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("mounting a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// freeBytes is what an unprivileged writer may still write in dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fillTo leaves about free bytes free in dir's file system by writing the
// file fill; it reports false when less than that is free already.
func fillTo(t *testing.T, dir string, free int64) bool {
	t.Helper()
	n := freeBytes(t, dir) - free
	if n < 0 {
		return false
	}
	if err := os.WriteFile(filepath.Join(dir, "fill"), make([]byte, n), 0o600); err != nil {
		t.Fatalf("filling the file system: %v", err)
	}
	return true
}

// TestOpen_nearlyFullDiskNeverPutsAHalfMadeDatabaseInPlace: the first
// start, and the import of a bbolt state file, on a file system with a
// little space left. The new database's schema (and the imported state)
// first land in its -wal file; when the checkpoint that copies them into
// the file fails for want of space, Open must fail and leave the state
// directory as it was (no database, or the bbolt file unchanged), and the
// next start with space must succeed with everything in it. Without the
// check of that checkpoint, a half-copied file was renamed into place,
// its -wal left under the temporary name, and every later start called it
// corrupt.
func TestOpen_nearlyFullDiskNeverPutsAHalfMadeDatabaseInPlace(t *testing.T) {
	bolt, err := os.ReadFile("testdata/bbolt-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bolt   bool
		from   int64
		to     int64
		ledger int
	}{
		// Free space from "too little to start" to "enough", in steps
		// small enough to hit a checkpoint that fails part-way. Each
		// migration makes the schema bigger: the ledger's customer index
		// (version 10) moved the import's "enough" above 320 KB.
		{name: "create", from: 64 << 10, to: 320 << 10},
		{name: "bbolt import", bolt: true, from: 64 << 10, to: 384 << 10, ledger: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := mountTmpfs(t, "1M")
			failed, succeeded := 0, 0
			for free := tc.from; free <= tc.to; free += 4 << 10 {
				dir := filepath.Join(fs, "state")
				file := filepath.Join(dir, FileName)
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				_ = os.Remove(filepath.Join(fs, "fill"))
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if tc.bolt {
					if err := os.WriteFile(file, bolt, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if !fillTo(t, fs, free) {
					continue
				}
				db, err := Open(dir)
				if err == nil {
					succeeded++
					closeDB(t, db)
				} else {
					failed++
					left := names(t, dir)
					switch {
					case !tc.bolt && len(left) != 0:
						t.Errorf("%d KB free: Open failed (%v) but left %v in the state directory; want nothing", free>>10, err, left)
					case tc.bolt && (len(left) != 1 || left[0] != FileName):
						t.Errorf("%d KB free: Open failed (%v) but left %v in the state directory; want only the bbolt file", free>>10, err, left)
					}
					if tc.bolt {
						if got, _ := os.ReadFile(file); !bytes.Equal(got, bolt) {
							t.Errorf("%d KB free: Open failed (%v) and the bbolt file is no longer the original", free>>10, err)
						}
						if !strings.Contains(err.Error(), "was left as it was") {
							t.Errorf("%d KB free: Open's error does not say the bbolt file is unchanged: %v", free>>10, err)
						}
					}
				}
				// The operator frees space and starts again.
				if err := os.Remove(filepath.Join(fs, "fill")); err != nil {
					t.Fatal(err)
				}
				db, err = Open(dir)
				if err != nil {
					t.Errorf("%d KB free, then space freed: Open = %v; want the database", free>>10, err)
					continue
				}
				if v, err := db.Version(); v != SchemaVersion || err != nil {
					t.Errorf("%d KB free, then space freed: schema version %d, %v", free>>10, v, err)
				}
				if l, err := db.Ledger(0); len(l) != tc.ledger || err != nil {
					t.Errorf("%d KB free, then space freed: %d ledger entries, %v; want %d", free>>10, len(l), err, tc.ledger)
				}
				closeDB(t, db)
				if tc.bolt {
					if got, _ := os.ReadFile(boltBackupName(file)); !bytes.Equal(got, bolt) {
						t.Errorf("%d KB free, then space freed: %s is not the original bbolt file", free>>10, boltBackupName(file))
					}
				}
			}
			// The sweep must cross from failing to succeeding, or it tested
			// nothing.
			if failed == 0 || succeeded == 0 {
				t.Errorf("Open failed %d times and succeeded %d times; want both", failed, succeeded)
			}
		})
	}
}

// TestOpen_readOnlyStateDirectoryNamed: a state directory psa-syncd cannot
// write in (here a read-only file system) is refused with an error that
// names the directory and says it must be writable, not only SQLite's
// "unable to open database file (14)".
func TestOpen_readOnlyStateDirectoryNamed(t *testing.T) {
	fs := mountTmpfs(t, "8M")
	dir := filepath.Join(fs, "state")
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginRun(Run{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	closeDB(t, db)
	other := filepath.Join(fs, "new")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", fs, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=8M"); err != nil {
		t.Fatalf("remounting read-only: %v", err)
	}
	// An existing database, and the first start.
	for _, d := range []string{dir, other} {
		db, err := Open(d)
		if err == nil {
			closeDB(t, db)
			t.Fatalf("Open(%s) on a read-only file system succeeded", d)
		}
		for _, want := range []string{"state directory " + `"` + d + `"`, "must be writable by psa-syncd's user", "read-only file system"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open(%s) on a read-only file system = %v; want it to say %q", d, err, want)
			}
		}
	}
}

// TestBackup_fullDestinationSaysWhichDiskIsFull: a backup written to a file
// system that fills during the copy fails, leaves nothing in the
// destination's directory (no partial copy, no journal), and says that the
// copy's file system is full and the state database unaffected. It used to
// say "writing a backup to ... in <state database>: database or disk is
// full: not an error", which reads as the live database's disk being full.
// The state database stays usable, and a backup with room succeeds.
func TestBackup_fullDestinationSaysWhichDiskIsFull(t *testing.T) {
	fs := mountTmpfs(t, "256k")
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.PutExport(ExportVersion{Revision: 1, Digest: "sha256:x"}, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(fs, "nightly.db")
	err = db.Backup(file)
	if err == nil {
		t.Fatal("a 1 MiB backup into 256 KiB succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, file) || !strings.Contains(msg, "is full") || !strings.Contains(msg, "state database is unaffected") ||
		strings.Contains(msg, "in "+db.Path()+":") || strings.Contains(msg, "not an error") {
		t.Errorf("backup into a full file system: %v; want the copy named as the one whose file system is full, the state database as unaffected", err)
	}
	if entries, err := os.ReadDir(fs); err != nil || len(entries) != 0 {
		t.Errorf("the full file system holds %v (%v) after the failed backup, want nothing", entries, err)
	}
	if _, err := db.BeginRun(Run{Trigger: "test"}); err != nil {
		t.Errorf("the state database after a failed backup: %v", err)
	}
	if err := db.Backup(filepath.Join(t.TempDir(), "nightly.db")); err != nil {
		t.Errorf("backup with room: %v", err)
	}
}
