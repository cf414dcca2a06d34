//go:build !unix

package durable

// SyncDir does nothing where a directory cannot be opened for syncing
// (Windows refuses to flush a directory handle).
func SyncDir(dir string) error { return nil }
