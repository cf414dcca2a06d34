package daemon

import (
	"io/fs"
	"syscall"
	"time"
)

// statChange returns what, besides the size and the modification time,
// tells that a file changed: its inode change time, device and inode (a
// file replaced by a rename).
func statChange(fi fs.FileInfo) (ctime time.Time, dev, ino uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}, 0, 0
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec), uint64(st.Dev), st.Ino //nolint:unconvert // Dev is not uint64 on every architecture
}
