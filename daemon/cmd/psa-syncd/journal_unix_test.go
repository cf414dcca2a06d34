//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Under systemd, each log line starts with its level's syslog priority, so
// that journalctl -p warning shows psa-syncd's warnings and errors; a
// stderr that is not the journal's stream (JOURNAL_STREAM inherited by a
// command whose stderr is redirected) gets no prefix.
func TestLogger_journalPriorities(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"logfmt", "json"} {
		for _, journal := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s journal=%t", format, journal), func(t *testing.T) {
				t.Parallel()
				path := filepath.Join(t.TempDir(), "stderr")
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					t.Fatal(err)
				}
				st, ok := fi.Sys().(*syscall.Stat_t)
				if !ok {
					t.Fatalf("stat of %s is a %T", path, fi.Sys())
				}
				stream := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
				if !journal {
					stream = fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)
				}
				getenv := func(k string) string {
					if k == "JOURNAL_STREAM" {
						return stream
					}
					return ""
				}
				cf := commonFlags{logLevel: "debug", logFormat: format}
				logger, err := cf.logger(&env{stderr: f, getenv: getenv})
				if err != nil {
					t.Fatal(err)
				}
				logger.Debug("Debug line", "note", "level=ERROR in a value")
				logger.Info("Info line")
				logger.Warn("Warn line")
				logger.Error("Error line", "err", "first\nsecond")
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
				want := []string{"<7>", "<6>", "<4>", "<3>"}
				if len(lines) != len(want) {
					t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), data)
				}
				for i, l := range lines {
					if has := strings.HasPrefix(l, want[i]); has != journal {
						t.Errorf("line %q: starts with %s = %t, want %t", l, want[i], has, journal)
					}
				}
			})
		}
	}
}
