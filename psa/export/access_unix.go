//go:build unix

package export

import "syscall"

// SystemAccess is access(2): nil when the process's real user may use path
// in mode (AccessWrite, AccessSearch), as FileBackend.CheckWritable asks.
func SystemAccess(path string, mode uint32) error { return syscall.Access(path, mode) }
