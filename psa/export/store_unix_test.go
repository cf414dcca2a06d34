//go:build unix

package export

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestStore_Update_newFileHonoursUmask: a new export is created with mode
// 0644 less the writer's umask, as any other file it creates. The export
// names every customer and its contract: an operator whose umask is 077
// keeps it private. It used to be 0644 whatever the umask. The test is not
// parallel: the umask belongs to the process, and the parallel tests only
// start once it has put it back.
func TestStore_Update_newFileHonoursUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, tt := range []struct {
		name  string
		write func(path string) error
	}{
		{"Store.Update", func(path string) error {
			_, err := NewStore(path).Update(psa.SystemAutotask, "", func(d *Document) error {
				d.PutCustomer(acme())
				return nil
			})
			return err
		}},
		{"FileBackend.Save", func(path string) error {
			data, err := testDocument().Encode()
			if err == nil {
				_, err = NewFileBackend(path).Save(t.Context(), data, "")
			}
			return err
		}},
	} {
		path := filepath.Join(t.TempDir(), "psa-mappings.json")
		if err := tt.write(path); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s with umask 077: new export mode = %v, %v; want 0600", tt.name, fi.Mode(), err)
		}
	}
}

// TestPublishReaders_newFileReadableLikeTheExport: psa-syncd's readers
// file beside an export file is read by the export's readers (the CI's
// plan), which psa-syncd's umask must not lock out: a new one gets the
// export's read bits and group, whatever the umask. With umask 077 it was
// 0600 and psa-syncd's group, and every plan warned that it could not read
// it. Not parallel: the umask belongs to the process.
func TestPublishReaders_newFileReadableLikeTheExport(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the export a group the test user is not in")
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	const group = 54321
	for _, mode := range []os.FileMode{0o640, 0o644, 0o600} {
		path := filepath.Join(t.TempDir(), "psa-mappings.json")
		writeDoc(t, path, testDocument())
		if err := os.Chown(path, 0, group); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := PublishReaders(t.Context(), NewFileBackend(path), "1.9.0", time.Now()); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path + ReadersSuffix)
		if err != nil {
			t.Fatal(err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Fatalf("Stat gave %T, not a *syscall.Stat_t", fi.Sys())
		}
		if fi.Mode().Perm() != mode || st.Gid != group {
			t.Errorf("export of mode %v, group %d: new readers file of mode %v, group %d; want the export's", mode, group, fi.Mode().Perm(), st.Gid)
		}
	}
}

// TestStore_Update_keepsOwnerAndGroup: the export replaced keeps its group
// (and, written by root, its owner) as well as its mode. An export of mode
// 0640 whose group is psa-syncd's stays readable by psa-syncd after an apply
// by a member of that group, and one of psa-syncd's own stays its after an
// apply by root; both used to become the writer's.
func TestStore_Update_keepsOwnerAndGroup(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "psa-mappings.json")
	writeDoc(t, path, testDocument())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("Stat gave %T, not a *syscall.Stat_t", fi.Sys())
	}
	uid, gid := int(st.Uid), int(st.Gid)
	// Another owner and group the file may be given: any, as root; else
	// the writer's own and one of its supplementary groups.
	otherUID, otherGID := uid, -1
	if os.Geteuid() == 0 {
		otherUID, otherGID = uid+12345, gid+1
	} else if groups, err := os.Getgroups(); err == nil {
		if i := slices.IndexFunc(groups, func(g int) bool { return g != gid }); i >= 0 {
			otherGID = groups[i]
		}
	}
	if otherGID < 0 {
		t.Skip("needs root or a supplementary group to give the export another group")
	}
	if err := os.Chown(path, otherUID, otherGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(path).Update(psa.SystemAutotask, "", func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fi, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st, ok = fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("Stat gave %T, not a *syscall.Stat_t", fi.Sys())
	}
	if int(st.Uid) != otherUID || int(st.Gid) != otherGID || fi.Mode().Perm() != 0o640 {
		t.Errorf("after Update: owner %d, group %d, mode %v; want owner %d, group %d, mode 0640 as before",
			st.Uid, st.Gid, fi.Mode().Perm(), otherUID, otherGID)
	}
}

// TestCreateTemp_mode: the temporary file that becomes the export is
// created with the export's mode, less the umask, so that it is never more
// open than the export while it is written: a file of mode 0600 is not
// replaced through a temporary file of mode 0644.
func TestCreateTemp_mode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o600, 0o640} {
		f, err := createTemp(dir, tempPattern(filepath.Join(dir, "psa-mappings.json")), perm)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^perm != 0 {
			t.Errorf("createTemp(%v) made a file of mode %v", perm, got)
		}
	}
}

const otherWriterEnv = "PSA_EXPORT_TEST_OTHER_WRITER"

// TestFileBackend_Save_otherWritersLockFile: two users who both write the
// export (members of its group, in a set-group-ID directory that group may
// write, as README describes) share its lock file, which the first of them
// created and the second may read but not write. flock needs no more; the
// second user's writes used to fail with "locking: permission denied".
// It needs root, to run the second writer as another user.
func TestFileBackend_Save_otherWritersLockFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a writer as another user")
	}
	t.Parallel()
	const nobody, group = 65534, 54321
	dir := t.TempDir()
	// The second writer must reach the directory and run the test binary.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, group); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o2775); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "psa-mappings.json")
	b := NewFileBackend(path)
	data, err := New(psa.SystemAutotask, "").Encode()
	if err != nil {
		t.Fatal(err)
	}
	// The first writer (root here) creates the export and its lock file.
	if _, err := b.Save(t.Context(), data, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, group); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "export.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// A process another test forks while the copy is open for writing
	// holds it until that process execs, and exec then fails with "text
	// file busy" (ETXTBSY; golang.org/issue/22315): try again a moment later.
	for try := 0; ; try++ {
		cmd := exec.Command(exe, "-test.run=^TestFileBackend_Save_otherWriterProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), otherWriterEnv+"="+path)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{group}}}
		out, err := cmd.CombinedOutput()
		if errors.Is(err, syscall.ETXTBSY) && try < 100 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("the second writer: %v\n%s", err, out)
		}
		break
	}
	doc, _, err := NewClient(b).Read(t.Context())
	if err != nil || len(doc.CustomerMappings) != 1 {
		t.Errorf("after the second writer's write: %v, %v; want its customer mapping", doc, err)
	}
}

// TestFileBackend_Save_otherWriterProcess is the second writer of
// TestFileBackend_Save_otherWritersLockFile. Run normally, it does nothing.
func TestFileBackend_Save_otherWriterProcess(t *testing.T) {
	path := os.Getenv(otherWriterEnv)
	if path == "" {
		return
	}
	if _, err := NewClient(NewFileBackend(path)).Update(t.Context(), psa.SystemAutotask, "", func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPublishReaders_oldFileGainsTheExportsReadBits: a readers file written
// 0600 by an earlier psa-syncd (under a umask of 077) gains the export's
// read bits it lacks when psa-syncd writes it again, and the export's
// group when its own had no access; it loses no bit, and a group that could
// read it stays.
func TestPublishReaders_oldFileGainsTheExportsReadBits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the files a group the test user is not in")
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	const exportGroup, readersGroup = 54321, 54322
	for _, tt := range []struct {
		export, readers, want os.FileMode
		wantGroup             uint32
	}{
		{0o640, 0o600, 0o640, exportGroup},
		{0o644, 0o600, 0o644, exportGroup},
		{0o644, 0o640, 0o644, readersGroup},
		{0o600, 0o660, 0o660, readersGroup},
		{0o604, 0o600, 0o604, readersGroup},
	} {
		path := filepath.Join(t.TempDir(), "psa-mappings.json")
		writeDoc(t, path, testDocument())
		if err := os.Chown(path, 0, exportGroup); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.export); err != nil {
			t.Fatal(err)
		}
		// An earlier psa-syncd's entry: this one writes the list again.
		if err := os.WriteFile(path+ReadersSuffix, []byte(`{"readers":[{"version":"1.8.0","fields":["schema"],"confirmed":"2026-01-01T00:00:00Z"}]}`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path+ReadersSuffix, 0, readersGroup); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path+ReadersSuffix, tt.readers); err != nil {
			t.Fatal(err)
		}
		if err := PublishReaders(t.Context(), NewFileBackend(path), "1.9.0", time.Now()); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path + ReadersSuffix)
		if err != nil {
			t.Fatal(err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Fatalf("Stat gave %T, not a *syscall.Stat_t", fi.Sys())
		}
		if fi.Mode().Perm() != tt.want || st.Gid != tt.wantGroup {
			t.Errorf("export of mode %v, readers file of mode %v: written again with mode %v, group %d; want %v, group %d",
				tt.export, tt.readers, fi.Mode().Perm(), st.Gid, tt.want, tt.wantGroup)
		}
	}
}
