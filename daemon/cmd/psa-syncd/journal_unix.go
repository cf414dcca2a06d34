//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// onJournal reports whether w is the stream systemd connected to its
// journal: JOURNAL_STREAM names its device and inode, which a stderr
// redirected elsewhere (a pipe, a file) does not have.
func onJournal(w io.Writer, getenv func(string) string) bool {
	f, ok := w.(*os.File)
	if !ok || getenv == nil || getenv("JOURNAL_STREAM") == "" {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(getenv("JOURNAL_STREAM"), "%d:%d", &dev, &ino); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
