//go:build !unix

package export

// lockFile is a no-op where flock is unavailable: writers in one process are
// still serialised by the per-path mutex, but two processes are not.
func lockFile(path string) (unlock func(), err error) {
	return func() {}, nil
}

// syncDir is a no-op where directories cannot be opened for syncing.
func syncDir(dir string) error { return nil }
