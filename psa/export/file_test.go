package export

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileBackend_Save_removesStaleTemps: a writer killed between creating
// its temporary file and renaming it leaves the file behind; the next Save,
// which holds the lock, removes it, and nothing else in the directory, even
// when it loses the compare-and-swap.
func TestFileBackend_Save_removesStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "export.json")
	stale := filepath.Join(dir, ".export.json.tmp-1234567")
	other := filepath.Join(dir, ".other.json.tmp-1234567")
	b := NewFileBackend(path)
	for i, ifMatch := range []string{"", "sha256:stale"} {
		for _, f := range []string{stale, other} {
			if err := os.WriteFile(f, []byte(`{"half`), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := b.Save(t.Context(), []byte("{}"), ifMatch)
		if (i == 0) != (err == nil) {
			t.Fatalf("Save with ifMatch %q returned %v", ifMatch, err)
		}
		if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Save with ifMatch %q left the stale temporary file %s: %v", ifMatch, stale, err)
		}
		if _, err := os.Stat(other); err != nil {
			t.Errorf("Save with ifMatch %q removed another export's file %s: %v", ifMatch, other, err)
		}
	}
}

// TestReadExportFile_changedWhileRead: an export file rewritten in place
// while it is read (a copy by hand, not the provider's rename) fails,
// saying so, rather than decoding one version's start and the other's
// rest, which may be a valid export that never existed.
func TestReadExportFile_changedWhileRead(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "export.json")
	if err := os.WriteFile(path, []byte(`{"revision": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := readExportFileHooked(path, 4, func() {
		if err := os.WriteFile(path, []byte(`{"revision": 2, "more": true}`), 0o600); err != nil {
			t.Error(err)
		}
	})
	if err == nil || !strings.HasPrefix(err.Error(), "the file changed while it was read (15 bytes and modified at ") ||
		!strings.Contains(err.Error(), "renamed over it") {
		t.Errorf("readExportFile of a file written while read = %v, want it refused, saying why", err)
	}
	if data, err := readExportFile(path); err != nil || string(data) != `{"revision": 2, "more": true}` {
		t.Errorf("readExportFile afterwards = %q, %v; want the file whole", data, err)
	}
}

// TestFileBackend_CheckWritable: the directory asked is the export's, or
// the nearest that exists when it is missing (Save creates the rest), or
// the symbolic link's target's; with write and search permission both. A
// refusal names the directory; a directory that is a file is an error
// without asking. Tests run as root here, for whom access(2) allows
// everything, so the refusal comes from the access function given.
func TestFileBackend_CheckWritable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "target.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "target.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, asked string
	}{
		{filepath.Join(dir, "export.json"), dir},
		{filepath.Join(dir, "a", "b", "export.json"), dir},
		{filepath.Join(dir, "link.json"), other},
	} {
		var asked []string
		var modes []uint32
		deny := func(path string, mode uint32) error {
			asked, modes = append(asked, path), append(modes, mode)
			return fs.ErrPermission
		}
		err := NewFileBackend(tc.path).CheckWritable(deny)
		if len(asked) != 1 || asked[0] != tc.asked || modes[0] != AccessWrite|AccessSearch {
			t.Errorf("CheckWritable(%s) asked %q for %v, want %s for write and search", tc.path, asked, modes, tc.asked)
		}
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "cannot create files in "+tc.asked) {
			t.Errorf("CheckWritable(%s) = %v, want a permission error naming %s", tc.path, err, tc.asked)
		}
		if err := NewFileBackend(tc.path).CheckWritable(SystemAccess); err != nil {
			t.Errorf("CheckWritable(%s) with access(2) = %v, want nil", tc.path, err)
		}
	}
	under := filepath.Join(dir, "file", "export.json")
	err := NewFileBackend(under).CheckWritable(func(string, uint32) error {
		t.Errorf("CheckWritable(%s) asked access(2)", under)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("CheckWritable(%s) = %v, want a not-a-directory error", under, err)
	}
}
