package sizecap

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	at := filepath.Join(dir, "at-cap")
	over := filepath.Join(dir, "over-cap")
	if err := os.WriteFile(at, []byte(strings.Repeat("x", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, []byte(strings.Repeat("x", 1025)), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(at, 1024, "a test file"); err != nil || len(data) != 1024 {
		t.Errorf("ReadFile of a file at the cap = %d bytes, %v; want all of it", len(data), err)
	}
	_, err := ReadFile(over, 1024, "a test file")
	var tl *TooLargeError
	if !errors.As(err, &tl) || err.Error() != over+" is larger than 1 KiB, the most psa-sync reads of a test file" {
		t.Errorf("ReadFile of a file one byte over the cap = %v; want a *TooLargeError naming the file and the cap", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 1024, ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a missing file = %v, want fs.ErrNotExist", err)
	}
}

// TestReadFile_endless: a file whose size says nothing (a device) is read
// only up to the cap, not until memory runs out.
func TestReadFile_endless(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/zero")
	}
	_, err := ReadFile("/dev/zero", 1<<20, "")
	if err == nil || err.Error() != "/dev/zero is larger than 1 MiB" {
		t.Errorf("ReadFile(/dev/zero) = %v, want it refused at the cap", err)
	}
}

// TestReadFile_directory: a directory in a file's place fails with the
// error of the read, naming the path once ("read P: is a directory"), as
// os.ReadFile does. Before, the path was named twice.
func TestReadFile_directory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := ReadFile(dir, 1<<10, "a test file")
	if want := "read " + dir + ": is a directory"; err == nil || err.Error() != want {
		t.Errorf("ReadFile of a directory = %v, want %q", err, want)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{64 << 20: "64 MiB", 64 << 10: "64 KiB", 1 << 30: "1 GiB", 1000: "1000 bytes", 1: "1 byte", 1536: "1536 bytes"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestReadOpenStable: a file written in place while it is read is a
// *ChangedError saying what its stat said before and after, whether the
// writer appended or rewrote it with as many bytes; a file left alone, or
// replaced by a rename meanwhile (the open file is the old one), is read
// whole.
func TestReadOpenStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	later := time.Now().Add(time.Minute)
	for name, tc := range map[string]struct {
		writer func()
		want   string
	}{
		"appended":         {func() { write("0123456789+more") }, ""},
		"same size, later": {func() { write("9876543210"); _ = os.Chtimes(path, later, later) }, ""},
		"renamed over": {func() {
			_ = os.WriteFile(path+".tmp", []byte("new content, longer"), 0o600)
			_ = os.Rename(path+".tmp", path)
		}, "0123456789"},
		"left alone": {func() {}, "0123456789"},
	} {
		write("0123456789")
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		data, err := ReadOpenStable(OnFirstRead(f, 4, tc.writer), path, 1024, "")
		f.Close()
		var ce *ChangedError
		switch {
		case tc.want != "" && (err != nil || string(data) != tc.want):
			t.Errorf("%s: ReadOpenStable = %q, %v; want %q", name, data, err, tc.want)
		case tc.want == "" && (!errors.As(err, &ce) || ce.Path != path || ce.Before.Size() != 10 ||
			!strings.HasPrefix(err.Error(), path+" changed while it was read (10 bytes and modified at ")):
			t.Errorf("%s: ReadOpenStable = %q, %v; want a *ChangedError naming the file", name, data, err)
		}
	}
}
