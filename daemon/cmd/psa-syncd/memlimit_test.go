package main

import (
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// TestSetMemoryLimit checks that psa-syncd sets its default soft memory
// limit, and leaves the one GOMEMLIMIT sets alone. It changes the test
// process's limit, so it does not run in parallel.
func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	debug.SetMemoryLimit(math.MaxInt64)
	if got := setMemoryLimit(func(string) string { return "" }); got != defaultMemoryLimit {
		t.Errorf("without GOMEMLIMIT: setMemoryLimit = %d, want %d", got, defaultMemoryLimit)
	}
	if got := debug.SetMemoryLimit(-1); got != defaultMemoryLimit {
		t.Errorf("without GOMEMLIMIT: the runtime's limit is %d, want %d", got, defaultMemoryLimit)
	}

	// The runtime applied GOMEMLIMIT at start-up: psa-syncd keeps it.
	const set = 300 << 20
	debug.SetMemoryLimit(set)
	getenv := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "300MiB"
		}
		return ""
	}
	if got := setMemoryLimit(getenv); got != set {
		t.Errorf("with GOMEMLIMIT=300MiB: setMemoryLimit = %d, want %d", got, set)
	}
	if got := debug.SetMemoryLimit(-1); got != set {
		t.Errorf("with GOMEMLIMIT=300MiB: the runtime's limit is %d, want %d", got, set)
	}
}

// TestRun_memoryLimitInMetrics checks, on the process, that the default
// limit and one from GOMEMLIMIT are what the Go runtime applies, as the
// daemon's go_gc_gomemlimit_bytes reports them.
func TestRun_memoryLimitInMetrics(t *testing.T) {
	t.Parallel()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	env = slices.Clip(env) // each case appends its own GOMEMLIMIT
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{env, "go_gc_gomemlimit_bytes 6.291456e+07\n"},
		{append(env, "GOMEMLIMIT=300MiB"), "go_gc_gomemlimit_bytes 3.145728e+08\n"},
		{append(env, "GOMEMLIMIT=off"), "go_gc_gomemlimit_bytes 9.223372036854776e+18\n"},
	} {
		metrics := daemonMetrics(t, tc.env)
		if !strings.Contains(metrics, tc.want) {
			t.Errorf("%v: /metrics has no %q", tc.env[len(env):], strings.TrimSpace(tc.want))
		}
	}
}

// daemonMetrics starts psa-syncd run with env and returns its /metrics.
func daemonMetrics(t *testing.T, env []string) string {
	t.Helper()
	e := newTestEnv(t, nil)
	return getBody(t, startDaemonEnv(t, e.cfgPath, env)+"/metrics")
}
