//go:build unix

package export

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileBackend_namedPipe: an export path that names a named pipe is
// refused at once: opened to read, it would block until something writes
// to it, and psa-syncd's export watch with it.
func TestFileBackend_namedPipe(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "export.json")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, etag := range []string{"", "sha256:00"} {
		done := make(chan error, 1)
		go func() {
			_, err := NewFileBackend(path).Load(t.Context(), etag)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "is a named pipe, not a regular file") {
				t.Errorf("Load(%q) of a named pipe = %v, want an error saying it is a named pipe", etag, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%q) of a named pipe blocked", etag)
		}
	}
	if _, err := NewStore(path).Read(); err == nil || !strings.Contains(err.Error(), "is a named pipe") {
		t.Errorf("Store.Read of a named pipe = %v, want an error saying it is a named pipe", err)
	}
}
