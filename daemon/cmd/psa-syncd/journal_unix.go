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
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino) == getenv("JOURNAL_STREAM")
}
