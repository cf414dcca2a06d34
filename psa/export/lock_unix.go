//go:build unix

package export

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock (flock) on path, creating the
// file if needed, and returns the function that releases it. The lock is
// released by the kernel if the process dies, so a crashed apply never
// leaves the export locked.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, fs.ErrPermission) {
		// The lock file of another user who writes the export too (its
		// group's member): flock needs it open, not writable.
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		// Closing f releases the lock too, so a failed unlock changes nothing.
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// keepGroup gives f the group of model, when the writer may: root, or a
// member of that group; else f keeps the writer's.
func keepGroup(f *os.File, model fs.FileInfo) {
	if st, ok := model.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(-1, int(st.Gid))
	}
}

// keepOwner gives f, the file about to replace old, old's owner and group,
// as far as the writer may: root may give both, another user only a group
// it is a member of. What it may not give stays the writer's, as it was.
func keepOwner(f *os.File, old fs.FileInfo) {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	if f.Chown(int(st.Uid), int(st.Gid)) != nil {
		_ = f.Chown(-1, int(st.Gid))
	}
}
