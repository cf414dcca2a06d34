package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"
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

// startDaemon runs `psa-syncd run` on cfgPath as a process on a loopback
// port, waits until it listens and returns its base URL. Every log line is
// checked for repeated keys. The process is killed at the end of the test.
func startDaemon(t *testing.T, cfgPath string) string {
	t.Helper()
	return startDaemonEnv(t, cfgPath, nil)
}

// startDaemonEnv is startDaemon with the process's environment env (nil:
// the test's) and more arguments of run.
func startDaemonEnv(t *testing.T, cfgPath string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"run", "-config.file", cfgPath, "-web.listen-address", "127.0.0.1:0", "-log.format", "json"}, args...)...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if dup := duplicateKeys(sc.Bytes()); len(dup) > 0 {
				t.Errorf("log line repeats keys %v: %s", dup, sc.Bytes())
			}
			var m struct {
				Msg     string `json:"msg"`
				Address string `json:"address"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "Listening" {
				addr <- m.Address
			}
		}
		close(addr)
	}()
	a, ok := <-addr
	if !ok {
		t.Fatal("psa-syncd run ended before it listened")
	}
	return "http://" + a
}

// Every operator command works against a running daemon through its API:
// plan prints the same table as without a daemon, sync runs and approves,
// status filters, ledger lists; commands that need the locked database say
// how to reach the daemon.
func TestRun_remoteCommands(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	writeFile(t, e.cfgPath, string(must(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	cfg := "-config.file=" + e.cfgPath
	tokenFile := filepath.Join(e.dir, "token")
	writeFile(t, tokenFile, "test-token\n")

	code, localPlan, stderr := runCmd(t, "plan", cfg, "-all")
	if code != 0 {
		t.Fatalf("plan without a daemon: exit %d\n%s", code, stderr)
	}
	base := startDaemon(t, e.cfgPath)
	web := "-web.url=" + base

	code, remotePlan, stderr := runCmd(t, "plan", web, "-all", "-web.token-file", tokenFile)
	// The two plans are computed at different times: the line that says
	// when is compared for its form only.
	computedAt := regexp.MustCompile(`(?m)^Computed at \S+$`)
	if code != 0 || computedAt.ReplaceAllString(remotePlan, "Computed at T") != computedAt.ReplaceAllString(localPlan, "Computed at T") ||
		!computedAt.MatchString(remotePlan) {
		t.Errorf("plan -web.url: exit %d %s\n%s\nwant the table plan prints without a daemon:\n%s", code, stderr, remotePlan, localPlan)
	}
	if code, _, stderr := runCmd(t, "plan", cfg); code != 1 || !strings.Contains(stderr, "psa-syncd plan -web.url http://127.0.0.1:") {
		t.Errorf("plan on the locked database: exit %d, stderr %q; want 1 and how to reach the daemon", code, stderr)
	}
	if code, _, stderr := runCmd(t, "ledger", cfg); code != 1 || !strings.Contains(stderr, "psa-syncd ledger -web.url") {
		t.Errorf("ledger on the locked database: exit %d, stderr %q; want 1 and how to reach the daemon", code, stderr)
	}
	// rebind has no API: the hint says to stop the daemon, not to ask it.
	if code, _, stderr := runCmd(t, "rebind", cfg); code != 1 || !strings.Contains(stderr, "stop it first, run rebind") || strings.Contains(stderr, "-web.url") ||
		strings.Contains(stderr, "through its HTTP API") {
		t.Errorf("rebind on the locked database: exit %d, stderr %q; want 1 and to stop the daemon first", code, stderr)
	}

	if code, _, stderr := runCmd(t, "sync", web); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("sync -web.url without a token: exit %d, stderr %q; want 1 and 401", code, stderr)
	}
	code, stdout, stderr := runCmd(t, "sync", web, "-web.token-file", tokenFile)
	if code != 0 || !strings.Contains(stdout, ": success") || !strings.Contains(stdout, "cust-acme") {
		t.Fatalf("sync -web.url: exit %d\n%s\n%s", code, stdout, stderr)
	}
	e.checkUnits(t)

	// Acme drops from 11 to 1 seat: held for review.
	writeFile(t, filepath.Join(e.dir, "usage.csv"), strings.Replace(testUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,11", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,1", 1))
	if code, stdout, stderr := runCmd(t, "sync", web, "-web.token-file", tokenFile, "-customer", "cust-acme"); code != 0 || !strings.Contains(stdout, "held") {
		t.Fatalf("sync -web.url of the decrease: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, "status", web, "-status", "held")
	if code != 0 || !strings.Contains(stdout, "cust-acme") || strings.Contains(stdout, "cust-globex") || !strings.Contains(stdout, "sync --approve --customer cust-acme") {
		t.Errorf("status -web.url -status held: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := runCmd(t, "sync", web, "-web.token-file", tokenFile, "-approve"); code != 2 || !strings.Contains(stderr, "-approve needs -customer") {
		t.Errorf("sync -approve without -customer: exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{{"-approve", "-customer", "cust-acme", "-units", "1"}, {"-customer", "cust-acme", "-units", "1"}} {
		if code, _, stderr := runCmd(t, append([]string{"sync", web, "-web.token-file", tokenFile}, args...)...); code != 2 || !strings.Contains(stderr, "-units needs -approve, -customer and -service") {
			t.Errorf("sync %v: exit %d, stderr %q", args, code, stderr)
		}
	}
	svc := itoa(e.services[0])
	if code, _, stderr := runCmd(t, "sync", web, "-web.token-file", tokenFile, "-approve", "-customer", "cust-acme", "-service", svc, "-units", "-1"); code != 2 || !strings.Contains(stderr, "must not be negative") {
		t.Errorf("sync -units -1: exit %d, stderr %q", code, stderr)
	}
	// An approval of units other than the pass computes (5, where usage
	// is now 1) is not applied, and says so.
	if code, stdout, stderr := runCmd(t, "sync", web, "-web.token-file", tokenFile, "-approve", "-customer", "cust-acme", "-service", svc, "-units", "5"); code != 1 ||
		!strings.Contains(stderr, "the approval was not applied") || !strings.Contains(stderr, "reviewed 5, now 1") {
		t.Errorf("sync -web.url -approve -units 5: exit %d\n%s\n%s\nwant 1 and the approval not applied", code, stdout, stderr)
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 11 {
		t.Errorf("acme units = %d after approving other units, want 11 (still held)", got)
	}
	if code, stdout, stderr := runCmd(t, "sync", web, "-web.token-file", tokenFile, "-approve", "-customer", "cust-acme", "-service", svc, "-units", "1"); code != 0 || !strings.Contains(stdout, "success") {
		t.Fatalf("sync -web.url -approve -units 1: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 1 {
		t.Errorf("acme units = %d after the approval, want 1", got)
	}
	code, stdout, _ = runCmd(t, "status", web, "-status", "held")
	if code != 0 || !strings.Contains(stdout, "No customer has status held.") {
		t.Errorf("status -status held after the approval: exit %d\n%s", code, stdout)
	}

	code, stdout, _ = runCmd(t, "ledger", web, "-customer", "cust-acme", "-service", itoa(e.services[0]), "-format", "csv")
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if code != 0 || err != nil || len(rows) != 3 || rows[0][0] != "seq" || rows[1][8] != "11" || rows[1][9] != "1" || rows[1][10] != "-10" {
		t.Errorf("ledger -format csv: exit %d, %v\n%s\nwant a header, 11→1 then 0→11", code, err, stdout)
	}
	code, stdout, _ = runCmd(t, "ledger", web, "-contract", itoa(e.contracts[1]))
	if code != 0 || !strings.Contains(stdout, "cust-globex") || strings.Contains(stdout, "cust-acme") {
		t.Errorf("ledger -contract: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "ledger", web, "-period", "1999-01", "-format", "json")
	if code != 0 || !strings.Contains(stdout, `"ledger": []`) {
		t.Errorf("ledger -period 1999-01 -format json: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := runCmd(t, "ledger", web, "-period", "Dec"); code != 2 || !strings.Contains(stderr, "-period") || !strings.Contains(stderr, "YYYY-MM") {
		t.Errorf("ledger -period Dec: exit %d, stderr %q", code, stderr)
	}
}

// Without a daemon, sync -approve -units releases a held line only at the
// reviewed units, and exits 1 when the pass computes others.
func TestRun_syncApproveUnits(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	writeFile(t, e.cfgPath, string(must(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	cfg := "-config.file=" + e.cfgPath
	if code, stdout, stderr := runCmd(t, "sync", cfg); code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	writeFile(t, filepath.Join(e.dir, "usage.csv"), strings.Replace(testUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,11", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,1", 1))
	svc := itoa(e.services[0])
	approve := func(units string) (int, string, string) {
		return runCmd(t, "sync", cfg, "-approve", "-customer", "cust-acme", "-service", svc, "-units", units)
	}
	if code, stdout, stderr := approve("5"); code != 1 || !strings.Contains(stderr, "the approval was not applied") || !strings.Contains(stderr, "reviewed 5, now 1") {
		t.Errorf("sync -approve -units 5: exit %d\n%s\n%s\nwant 1 and the approval not applied", code, stdout, stderr)
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 11 {
		t.Errorf("acme units = %d after approving other units, want 11 (still held)", got)
	}
	if code, stdout, stderr := approve("1"); code != 0 {
		t.Errorf("sync -approve -units 1: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 1 {
		t.Errorf("acme units = %d after approving 1, want 1", got)
	}
}

// With policies.max_increase_percent, a usage glitch (Acme's 11 seats
// reported as 110) is held: plan shows it with the command that approves
// it, sync writes nothing to the PSA, and sync -approve at the reviewed
// units writes it.
func TestRun_increaseHeldUntilApproved(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	writeFile(t, e.cfgPath, string(must(os.ReadFile(e.cfgPath)))+"policies:\n  max_increase_percent: 200\n")
	cfg := "-config.file=" + e.cfgPath
	// The first pass posts new lines, which the guard does not hold.
	if code, stdout, stderr := runCmd(t, "sync", cfg); code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	e.checkUnits(t)
	writeFile(t, filepath.Join(e.dir, "usage.csv"), strings.Replace(testUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,11", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,110", 1))
	svc := itoa(e.services[0])
	want := "increase of 900% (from 11 to 110) held for review: more than max_increase_percent 200; apply with sync --approve --customer cust-acme --service " + svc + " --units 110"
	if code, stdout, stderr := runCmd(t, "plan", cfg); code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("plan: exit %d\n%s\n%s\nwant %q", code, stdout, stderr, want)
	}
	code, stdout, stderr := runCmd(t, "plan", cfg, "-json")
	var plan struct {
		Changes []map[string]any `json:"changes"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); code != 0 || err != nil {
		t.Fatalf("plan -json: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	found := false
	for _, c := range plan.Changes {
		if c["customer_id"] == "cust-acme" && c["service_id"] == svc {
			found = true
			if c["action"] != "held" || c["hold"] != "approval" {
				t.Errorf("plan -json: Acme's Intercept X: action %v, hold %v; want held, hold approval", c["action"], c["hold"])
			}
		}
	}
	if !found {
		t.Errorf("plan -json has no change for Acme's Intercept X:\n%s", stdout)
	}

	e.sim.ResetRequests()
	if code, stdout, stderr := runCmd(t, "sync", cfg); code != 0 || !strings.Contains(stdout, "held") {
		t.Errorf("sync: exit %d\n%s\n%s\nwant 0 and the line held", code, stdout, stderr)
	}
	for _, r := range e.sim.Requests() {
		if r.Method != http.MethodGet && !strings.HasSuffix(strings.ToLower(r.Path), "/query") {
			t.Errorf("sync of a held increase sent %s %s", r.Method, r.Path)
		}
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 11 {
		t.Errorf("acme units = %d while held, want 11", got)
	}

	if code, stdout, stderr := runCmd(t, "sync", cfg, "-approve", "-customer", "cust-acme", "-service", svc, "-units", "110"); code != 0 {
		t.Errorf("sync -approve -units 110: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 110 {
		t.Errorf("acme units = %d after approving 110, want 110", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// sync -web.url prints what sync prints without a daemon: after the run
// and its customers, the lines the pass changed and the usage it could
// not bill (unmapped customers and products, usage with no customer), so
// that unbilled usage is not missed when the daemon runs the pass.
func TestRun_remoteSyncShowsUnbilledUsage(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	tokenFile := filepath.Join(e.dir, "token")
	writeFile(t, tokenFile, "test-token\n")
	base := startDaemon(t, e.cfgPath)
	code, stdout, stderr := runCmd(t, "sync", "-web.url", base, "-web.token-file", tokenFile)
	for _, want := range []string{": success", "DESIRED", "3 to update,", "Unmapped customers", "cust-initech",
		"Unmapped products", "XGS-FW", "Usage with no customer"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("sync -web.url: exit %d, output lacks %q:\n%s\n%s", code, want, stdout, stderr)
		}
	}
}

// A surge (every count doubles) is held by default; plan gives the review
// code that approves every line held for it, and sync -approve -surge
// writes them only when the pass holds exactly the lines and units
// reviewed: after usage moved, it writes none and exits 1.
func TestRun_syncApproveSurge(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	writeFile(t, e.cfgPath, string(must(os.ReadFile(e.cfgPath)))+"policies:\n  surge_min_lines: 2\n")
	cfg := "-config.file=" + e.cfgPath
	if code, stdout, stderr := runCmd(t, "sync", cfg); code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	doubled := strings.NewReplacer("Advanced,11", "Advanced,22", "Server,2", "Server,4", "Advanced,5", "Advanced,10", "Advanced,4", "Advanced,8").Replace(testUsage)
	writeFile(t, filepath.Join(e.dir, "usage.csv"), doubled)
	review := regexp.MustCompile(`held for a surge .*review code ([0-9a-f]{12})\.`)
	code, stdout, stderr := runCmd(t, "plan", cfg)
	m := review.FindStringSubmatch(stdout)
	if code != 0 || m == nil || !strings.Contains(stdout, "psa-syncd sync -approve -surge "+m[1]+" -period ") {
		t.Fatalf("plan: exit %d\n%s\n%s\nwant the lines held for a surge with a review code", code, stdout, stderr)
	}
	code1 := m[1]
	for _, args := range [][]string{
		{"-surge", code1},
		{"-approve", "-surge", "not-a-code"},
		{"-approve", "-surge", code1, "-customer", "cust-acme"},
	} {
		if code, stdout, stderr := runCmd(t, append([]string{"sync", cfg}, args...)...); code != 2 {
			t.Errorf("sync %v: exit %d, want 2\n%s\n%s", args, code, stdout, stderr)
		}
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 11 {
		t.Errorf("acme units = %d while held, want 11", got)
	}

	// Usage moves after the review: nothing is written.
	writeFile(t, filepath.Join(e.dir, "usage.csv"), strings.Replace(doubled, "Advanced,22", "Advanced,23", 1))
	code, stdout, stderr = runCmd(t, "sync", cfg, "-approve", "-surge", code1)
	if code != 1 || !strings.Contains(stderr, "the approval was not applied: the lines held for the surge changed since the review") || !strings.Contains(stdout, "Surge NOT approved") {
		t.Errorf("sync -approve -surge after usage moved: exit %d\n%s\n%s\nwant 1, not applied", code, stdout, stderr)
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 11 {
		t.Errorf("acme units = %d after a stale surge approval, want 11", got)
	}

	code, stdout, stderr = runCmd(t, "plan", cfg)
	if m = review.FindStringSubmatch(stdout); code != 0 || m == nil || m[1] == code1 {
		t.Fatalf("plan after usage moved: exit %d\n%s\n%s\nwant another review code than %s", code, stdout, stderr, code1)
	}
	// A dry run says what the approval would do, and writes nothing: exit
	// code 1 when it would not be applied, as the pass's.
	code, stdout, stderr = runCmd(t, "sync", cfg, "-dry-run", "-approve", "-surge", code1)
	if code != 1 || !strings.Contains(stdout, "Surge would NOT be approved (dry run: nothing written)") ||
		!strings.Contains(stderr, "the approval would not be applied (dry run: nothing written): the lines held for the surge changed since the review (their review code is now "+m[1]) {
		t.Errorf("sync -dry-run -approve -surge with a stale code: exit %d\n%s\n%s\nwant 1, would not be applied", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "sync", cfg, "-dry-run", "-approve", "-surge", m[1])
	if code != 0 || !strings.Contains(stdout, "Surge would be approved with review code "+m[1]+" (dry run: nothing written)") || strings.Contains(stdout, "Surge approved") {
		t.Errorf("sync -dry-run -approve -surge %s: exit %d\n%s\n%s\nwant 0, would be approved", m[1], code, stdout, stderr)
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 11 {
		t.Errorf("acme units = %d after a dry run's surge approval, want 11", got)
	}
	if code, stdout, stderr := runCmd(t, "sync", cfg, "-approve", "-surge", m[1]); code != 0 || !strings.Contains(stdout, "Surge approved with review code "+m[1]) {
		t.Errorf("sync -approve -surge %s: exit %d\n%s\n%s", m[1], code, stdout, stderr)
	}
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 23 {
		t.Errorf("acme units = %d after approving the surge, want 23", got)
	}
}
