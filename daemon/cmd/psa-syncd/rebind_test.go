package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Pointed at another tenant with the state directory of the first, sync
// and plan are refused with an error that names both instances and the
// ways out, and write nothing; after psa-syncd rebind they run.
func TestRun_rebindAfterAnotherInstance(t *testing.T) {
	t.Parallel()
	sandbox := newTestEnv(t, nil)
	if code, stdout, stderr := runCmd(t, "sync", "-config.file="+sandbox.cfgPath); code != 0 {
		t.Fatalf("sandbox sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	sandboxHost := strings.TrimPrefix(sandbox.sim.URL(), "http://")

	// Production: another simulator with the same ids, and the sandbox's
	// state directory.
	prod := newTestEnv(t, nil)
	cfg, err := os.ReadFile(prod.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, prod.cfgPath, strings.Replace(string(cfg), "state_dir: state\n", "state_dir: "+filepath.Join(sandbox.dir, "state")+"\n", 1))
	prodHost := strings.TrimPrefix(prod.sim.URL(), "http://")
	flag := "-config.file=" + prod.cfgPath

	for _, cmd := range [][]string{{"sync"}, {"sync", "-dry-run"}, {"plan"}} {
		code, stdout, stderr := runCmd(t, append(cmd, flag)...)
		for _, want := range []string{
			"the state database holds the usage of autotask instance", sandboxHost,
			"but psa-syncd is connected to autotask instance", prodHost, "psa-syncd rebind",
		} {
			if code != 1 || !strings.Contains(stdout+stderr, want) {
				t.Errorf("%s: exit %d, want 1 and %q in the output:\n%s\n%s", strings.Join(cmd, " "), code, want, stdout, stderr)
			}
		}
	}
	// The refused pass is recorded as a failed run.
	metrics := filepath.Join(prod.dir, "metrics.prom")
	if code, _, _ := runCmd(t, "sync", flag, "-metrics.file", metrics); code != 1 {
		t.Errorf("sync -metrics.file: exit %d, want 1", code)
	}
	if prom, err := os.ReadFile(metrics); err != nil || !strings.Contains(string(prom), `psa_sync_runs_total{result="failure",system="autotask"} 1`) {
		t.Errorf("metrics file of the refused pass: %v\n%s", err, prom)
	}
	if n := len(prod.sim.Autotask().Adjustments()); n != 0 {
		t.Fatalf("the refused passes posted %d adjustments", n)
	}

	code, stdout, stderr := runCmd(t, "rebind", flag)
	want := `The state database now holds the usage of autotask instance "` + prodHost + `" (was "` + sandboxHost + `"`
	if code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("rebind: exit %d, want %q:\n%s\n%s", code, want, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(t, "sync", flag); code != 0 {
		t.Fatalf("sync after rebind: exit %d\n%s\n%s", code, stdout, stderr)
	}
	prod.checkUnits(t)
}
