//go:build unix

package export

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

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
