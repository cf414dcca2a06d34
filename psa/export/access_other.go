//go:build !unix

package export

// SystemAccess allows everything where access(2) is unavailable: a
// directory's permissions are then found out by the write.
func SystemAccess(string, uint32) error { return nil }
