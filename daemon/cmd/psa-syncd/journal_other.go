//go:build !unix

package main

import "io"

// onJournal reports whether w is systemd's journal stream: never here.
func onJournal(io.Writer, func(string) string) bool { return false }
