package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// -log.format json writes one JSON object per line, a multi-line error
// included, and durations as logfmt shows them ("1.5s"), not as a count of
// nanoseconds that Loki or kubectl logs leave the reader to convert;
// logfmt quotes a value with spaces or a line break on its one line.
func TestLogger_formats(t *testing.T) {
	t.Parallel()
	errText := errors.New("first line\nsecond line")
	for _, tc := range []struct {
		format string
		check  func(t *testing.T, out string)
	}{
		{"json", func(t *testing.T, out string) {
			var r map[string]any
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("not one JSON object: %v\n%s", err, out)
			}
			if r["wait"] != "1.5s" {
				t.Errorf("wait = %v, want \"1.5s\"", r["wait"])
			}
			if r["err"] != errText.Error() {
				t.Errorf("err = %q, want %q", r["err"], errText.Error())
			}
		}},
		{"logfmt", func(t *testing.T, out string) {
			for _, want := range []string{`wait=1.5s`, `err="first line\nsecond line"`} {
				if !strings.Contains(out, want) {
					t.Errorf("no %s in %s", want, out)
				}
			}
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			cf := commonFlags{logLevel: "info", logFormat: tc.format}
			logger, err := cf.logger(&env{stderr: &buf})
			if err != nil {
				t.Fatal(err)
			}
			logger.Warn("Retrying request", "wait", 1500*time.Millisecond, "err", errText)
			out := buf.String()
			if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
				t.Fatalf("want one line, got %q", out)
			}
			tc.check(t, strings.TrimSuffix(out, "\n"))
		})
	}
}
