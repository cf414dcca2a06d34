package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"testing"
)

// duplicateKeys returns the keys that appear more than once at the top
// level of a JSON log line (slog's JSON handler writes a key again when a
// logger's With and a call both set it).
func duplicateKeys(line []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	var dup []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return dup
		}
		key, _ := tok.(string)
		if seen[key] {
			dup = append(dup, key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return dup
		}
	}
	return dup
}

func TestDuplicateKeys(t *testing.T) {
	t.Parallel()
	if got := duplicateKeys([]byte(`{"msg":"x","system":"autotask","a":{"system":1},"system":"autotask"}`)); len(got) != 1 || got[0] != "system" {
		t.Errorf("duplicateKeys = %v, want [system]", got)
	}
	if got := duplicateKeys([]byte(`{"msg":"x","system":"autotask"}`)); len(got) != 0 {
		t.Errorf("duplicateKeys = %v, want none", got)
	}
}

func TestVCSRevision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, ""},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "false"}}, "abc123"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: "abc123"}}, "abc123-dirty"},
	} {
		if got := vcsRevision(tc.settings); got != tc.want {
			t.Errorf("vcsRevision(%v) = %q, want %q", tc.settings, got, tc.want)
		}
	}
}

// TestBuildInfoRevision checks that the binary built like make daemon
// builds it reports its commit in psa_sync_build_info instead of "unknown".
func TestBuildInfoRevision(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	metrics := filepath.Join(e.dir, "metrics.prom")
	if code, _, stderr := runBinary(t, "sync", "-config.file", e.cfgPath, "-metrics.file", metrics); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`psa_sync_build_info\{[^}]*revision="([^"]*)"`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no psa_sync_build_info in\n%s", data)
	}
	if string(m[1]) != testRevision {
		t.Errorf("psa_sync_build_info revision = %q, want the git commit %q", m[1], testRevision)
	}
}

// runBinary runs the psa-syncd binary built by TestMain and returns its exit
// code, stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}
