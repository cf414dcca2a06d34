//go:build !unix

package export

import (
	"io/fs"
	"os"
)

// lockFile is a no-op where flock is unavailable: writers in one process are
// still serialised by the per-path mutex, but two processes are not.
func lockFile(path string) (unlock func(), err error) {
	return func() {}, nil
}

// keepGroup does nothing where files have no Unix group.
func keepGroup(f *os.File, model fs.FileInfo) {}

// keepOwner does nothing where files have no Unix owner and group.
func keepOwner(f *os.File, old fs.FileInfo) {}
