//go:build unix

package durable

import "os"

// SyncDir makes a rename, a link or a new file in dir durable: fsync on a
// file makes its content durable, fsync on its directory its name.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
