package main

import (
	"bytes"
	"io"
)

// priorityWriter writes log lines to the systemd journal's stream (stderr
// under systemd), each prefixed with the syslog priority of its level
// ("<4>" for warn), which journald takes from the line (SyslogLevelPrefix=,
// on by default): without it every line is stored at info, and
// `journalctl -p warning` shows none of psa-syncd's warnings and errors.
// Each Write is one record, as the slog handlers write them; levelKey is
// how the format starts the level's value: `level=` or `"level":"`.
type priorityWriter struct {
	w        io.Writer
	levelKey []byte
}

func (pw priorityWriter) Write(p []byte) (int, error) {
	line := make([]byte, 0, len(p)+3)
	line = append(line, '<', pw.priority(p), '>')
	if _, err := pw.w.Write(append(line, p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// priority returns the syslog priority digit of a line's level: the first
// level key's, which the handlers write after the time and before the
// message.
func (pw priorityWriter) priority(p []byte) byte {
	i := bytes.Index(p, pw.levelKey)
	if i < 0 {
		return '6'
	}
	level := p[i+len(pw.levelKey):]
	switch {
	case bytes.HasPrefix(level, []byte("ERROR")):
		return '3'
	case bytes.HasPrefix(level, []byte("WARN")):
		return '4'
	case bytes.HasPrefix(level, []byte("DEBUG")):
		return '7'
	}
	return '6'
}
