package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// binary is psa-syncd built by TestMain, for the tests that need a process
// of their own (signals, SIGKILL).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "psa-syncd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "psa-syncd")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building psa-syncd: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testEnv is a config, a mapping export and a usage file in a temporary
// directory, pointing at an Autotask simulator.
type testEnv struct {
	dir        string
	sim        *psatest.Server
	cfgPath    string
	exportPath string
	doc        *export.Document
	contracts  []int64
	services   []int64
}

const testUsage = `customer_id,customer_name,product,product_name,quantity
cust-acme,Acme,CIXA-MSP,Intercept X Advanced,11
cust-acme,Acme,CIXA-SRV,Intercept X Server,2
cust-globex,Globex,CIXA-MSP,Intercept X Advanced,5
cust-initech,Initech,CIXA-MSP,Intercept X Advanced,4
,,CIXA-MSP,Intercept X Advanced,3
cust-acme,Acme,XGS-FW,XGS Firewall,1
`

// newTestEnv seeds a simulator and writes the files. baseURL, when not
// empty, replaces the simulator's URL in the config (a proxy in front of it).
func newTestEnv(t *testing.T, baseURL func(*psatest.Server) string) *testEnv {
	t.Helper()
	sim := psatest.Start(t)
	a := sim.Autotask()
	e := &testEnv{dir: t.TempDir(), sim: sim}
	acme, globex := a.AddCompany("Acme Corp"), a.AddCompany("Globex")
	e.contracts = []int64{
		a.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Acme Managed Security"}),
		a.AddContract(psatest.AutotaskContract{CompanyID: globex, Name: "Globex Managed Security"}),
	}
	e.services = []int64{a.AddService("Sophos Intercept X Advanced", 4.5), a.AddService("Sophos Intercept X Server", 9)}

	base := sim.AutotaskBaseURL()
	if baseURL != nil {
		base = baseURL(sim)
	}
	e.cfgPath = filepath.Join(e.dir, "psa-syncd.yml")
	e.exportPath = filepath.Join(e.dir, "mappings.json")
	writeFile(t, filepath.Join(e.dir, "usage.csv"), testUsage)
	user, secret, code := a.Credentials()
	writeFile(t, e.cfgPath, fmt.Sprintf(`export_path: mappings.json
state_dir: state
psa:
  system: autotask
  autotask:
    username: %q
    secret: %q
    integration_code: %q
    base_url: %q
source:
  type: file
  file:
    path: usage.csv
web:
  listen_address: 127.0.0.1:0
  api_token: test-token
`, user, secret, code, base))

	doc := export.New(psa.SystemAutotask, "sim")
	doc.Revision = 1
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: itoa(e.services[0]), ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-SRV", ServiceID: itoa(e.services[1]), ServiceName: "Sophos Intercept X Server", SyncEnabled: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-acme", CustomerName: "Acme", CompanyID: itoa(acme), ContractID: itoa(e.contracts[0]), UsageSync: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-globex", CustomerName: "Globex", CompanyID: itoa(globex), ContractID: itoa(e.contracts[1]), UsageSync: true})
	e.doc = doc
	e.writeExport(t, doc)
	return e
}

func (e *testEnv) writeExport(t *testing.T, doc *export.Document) {
	t.Helper()
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.exportPath, string(data))
}

// wantUnits is what testUsage must produce: contract index, service index, units.
var wantUnits = [][3]int64{{0, 0, 11}, {0, 1, 2}, {1, 0, 5}}

func (e *testEnv) checkUnits(t *testing.T) {
	t.Helper()
	for _, w := range wantUnits {
		got, _ := e.sim.Autotask().Units(e.contracts[w[0]], e.services[w[1]], time.Now())
		if got != w[2] {
			t.Errorf("units of contract %d service %d = %d, want %d", e.contracts[w[0]], e.services[w[1]], got, w[2])
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runCmd runs psa-syncd in-process and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr, func(string) string { return "" })
	return code, stdout.String(), stderr.String()
}

func TestRun_usage(t *testing.T) {
	t.Parallel()
	if code, _, stderr := runCmd(t); code != 2 || !strings.Contains(stderr, "Usage: psa-syncd <command>") {
		t.Errorf("no arguments: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCmd(t, "--help"); code != 0 || !strings.Contains(stdout, "simulate") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout)
	}
	for _, c := range commands {
		for _, h := range []string{"--help", "-help", "-h"} {
			code, stdout, _ := runCmd(t, c.name, h)
			if code != 0 || !strings.Contains(stdout, "Usage: psa-syncd "+c.name) {
				t.Errorf("%s %s: exit %d, stdout %q", c.name, h, code, stdout)
			}
		}
	}
	if code, _, stderr := runCmd(t, "sync", "--no-such-flag"); code != 2 || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("sync --no-such-flag: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "plan", "-log.level", "loud"); code != 2 || !strings.Contains(stderr, "log.level") {
		t.Errorf("plan -log.level loud: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCmd(t, "version"); code != 0 || !strings.HasPrefix(stdout, "psa-syncd ") {
		t.Errorf("version: exit %d, stdout %q", code, stdout)
	}
}

func TestRun_validate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	code, stdout, stderr := runCmd(t, "validate", "--config.file", e.cfgPath)
	if code != 0 || !strings.Contains(stdout, "mapping export "+e.exportPath+": valid (revision 1, 2 product mappings, 2 customer mappings") {
		t.Fatalf("validate: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	bad := e.doc.Clone()
	bad.CustomerMappings[1].ContractID = ""
	data, _ := json.Marshal(bad) // Encode would refuse the invalid document
	writeFile(t, e.exportPath, string(data))
	code, _, stderr = runCmd(t, "validate", "-config.file", e.cfgPath)
	if code != 1 || !strings.Contains(stderr, e.exportPath) || !strings.Contains(stderr, "customer_mappings[1]") || !strings.Contains(stderr, "contract_id is required") {
		t.Errorf("validate with a bad export: exit %d, stderr %q; want 1 naming the file, entry and field", code, stderr)
	}
	writeFile(t, e.cfgPath, "export_path: x.json\nstate_dir: s\nbogus: 1\n")
	code, _, stderr = runCmd(t, "validate", "-config.file", e.cfgPath)
	if code != 1 || !strings.Contains(stderr, e.cfgPath) || !strings.Contains(stderr, "bogus") {
		t.Errorf("validate with a bad config: exit %d, stderr %q", code, stderr)
	}
}

func TestRun_planSyncStatus(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cfg := "-config.file=" + e.cfgPath

	code, stdout, stderr := runCmd(t, "plan", cfg)
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"CUSTOMER", "CONTRACT", "SERVICE", "CURRENT", "DESIRED", "EFFECTIVE", "REASON",
		"Acme (cust-acme)", "Unmapped customers", "cust-initech", "Unmapped products", "XGS-FW",
		"Usage with no customer", "3 to update",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = runCmd(t, "plan", cfg, "--json")
	var plan struct {
		Changes []struct {
			Action  string `json:"action"`
			Desired int64  `json:"desired"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); code != 0 || err != nil || len(plan.Changes) != 3 {
		t.Errorf("plan --json: exit %d, %v, %d changes:\n%s", code, err, len(plan.Changes), stdout)
	}

	code, stdout, stderr = runCmd(t, "sync", cfg, "--dry-run")
	if code != 0 || !strings.Contains(stdout, "dry run") {
		t.Errorf("sync --dry-run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(e.sim.Autotask().Adjustments()); n != 0 {
		t.Fatalf("dry run posted %d adjustments", n)
	}

	metrics := filepath.Join(e.dir, "metrics.prom")
	code, stdout, stderr = runCmd(t, "sync", cfg, "-metrics.file", metrics)
	if code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{": success", "3 updated", "cust-acme", "succeeded"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("sync output lacks %q:\n%s", want, stdout)
		}
	}
	e.checkUnits(t)
	prom, err := os.ReadFile(metrics)
	if err != nil || !strings.Contains(string(prom), `psa_sync_lines_total{outcome="updated",system="autotask"} 3`) {
		t.Errorf("metrics file: %v\n%s", err, prom)
	}

	code, stdout, _ = runCmd(t, "sync", cfg)
	if code != 0 || !strings.Contains(stdout, "0 updated, 3 unchanged") {
		t.Errorf("second sync: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "sync", cfg, "-json")
	var res struct {
		Run struct {
			Result    string `json:"result"`
			Unchanged int    `json:"unchanged"`
		} `json:"run"`
		Customers []struct {
			CustomerID string `json:"customer_id"`
			Status     string `json:"status"`
		} `json:"customers"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || res.Run.Result != "success" || res.Run.Unchanged != 3 || len(res.Customers) != 2 {
		t.Errorf("sync -json: exit %d, %v, %+v\n%s", code, err, res, stdout)
	}
	if n := len(e.sim.Autotask().Adjustments()); n != 3 {
		t.Errorf("%d adjustments after two passes, want 3", n)
	}

	code, stdout, _ = runCmd(t, "status", cfg)
	if code != 0 || !strings.Contains(stdout, "LAST SUCCESS") || !strings.Contains(stdout, "cust-globex") {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "status", cfg, "--failed")
	if code != 0 || !strings.Contains(stdout, "No customer's last sync failed.") {
		t.Errorf("status --failed: exit %d\n%s", code, stdout)
	}

	// A customer mapped to a contract that does not exist fails; the others
	// still sync, the pass is partial and the exit code says so.
	broken := e.doc.Clone()
	broken.Revision = 2
	broken.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-initech", CustomerName: "Initech", CompanyID: "1", ContractID: "987654", UsageSync: true})
	e.writeExport(t, broken)
	code, stdout, _ = runCmd(t, "sync", cfg)
	if code != 1 || !strings.Contains(stdout, "partial") {
		t.Errorf("sync with a broken customer: exit %d, want 1 and partial\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "status", cfg, "--failed", "--json")
	if code != 0 || !strings.Contains(stdout, `"customer_id": "cust-initech"`) || strings.Contains(stdout, "cust-acme") {
		t.Errorf("status --failed --json: exit %d\n%s", code, stdout)
	}
}

func TestRun_check(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	code, stdout, stderr := runCmd(t, "check", "-config.file", e.cfgPath)
	if code != 0 || !strings.Contains(stdout, "ok   psa autotask") || !strings.Contains(stdout, "ok   source file") {
		t.Errorf("check: exit %d\n%s\n%s", code, stdout, stderr)
	}
	cfg, _ := os.ReadFile(e.cfgPath)
	writeFile(t, e.cfgPath, strings.Replace(string(cfg), `secret: "`+psatest.DefaultAutotaskSecret+`"`, `secret: "wrong-secret"`, 1))
	code, stdout, _ = runCmd(t, "check", "-config.file", e.cfgPath)
	if code != 1 || !strings.Contains(stdout, "FAIL psa autotask") || strings.Contains(stdout, "wrong-secret") {
		t.Errorf("check with a wrong secret: exit %d\n%s", code, stdout)
	}
}

func TestRun_simulate(t *testing.T) {
	t.Parallel()
	fixture := filepath.Join(t.TempDir(), "autotask.json")
	writeFile(t, fixture, `{"autotask": {"username": "demo@msp.example", "companies": [{"name": "Acme"}]}}`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"simulate", "-autotask.fixture", fixture}, pw, io.Discard, nil)
		pw.Close()
	}()
	vars := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vars[k] = v
		if k == "READY" {
			break
		}
	}
	if vars["AUTOTASK_USERNAME"] != "demo@msp.example" || vars["SOPHOS_CLIENT_ID"] == "" || !strings.HasPrefix(vars["AUTOTASK_BASE_URL"], "http://127.0.0.1:") {
		t.Errorf("simulate printed %v", vars)
	}
	resp, err := http.Get(vars["AUTOTASK_STATE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Acme") {
		t.Errorf("GET %s = %d %s", vars["AUTOTASK_STATE_URL"], resp.StatusCode, body)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Errorf("simulate exited %d after cancel, want 0", code)
	}
}

// TestRun_daemonSignals runs the daemon as a process: it becomes ready,
// answers the API, reloads on SIGHUP and exits 0 on SIGTERM.
func TestRun_daemonSignals(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cmd := exec.Command(binary, "run", "-config.file", e.cfgPath, "-web.listen-address", "127.0.0.1:0", "-log.format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				logs <- m
			}
		}
		close(logs)
	}()
	waitLog := func(msg string) map[string]any {
		t.Helper()
		for m := range logs {
			if m["msg"] == msg {
				return m
			}
		}
		t.Fatalf("process ended before logging %q", msg)
		return nil
	}
	if m := waitLog("Starting psa-syncd"); m["version"] == "" {
		t.Errorf("start log has no version: %v", m)
	}
	addr, _ := waitLog("Listening")["address"].(string)
	base := "http://" + addr

	resp, err := http.Get(base + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/-/ready = %d, want 200", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/sync", strings.NewReader(`{"customer": "cust-globex"}`))
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync = %d, want 202", resp.StatusCode)
	}
	waitLog("Finished pass")
	if got, _ := e.sim.Autotask().Units(e.contracts[1], e.services[0], time.Now()); got != 5 {
		t.Errorf("globex units = %d after sync now, want 5", got)
	}
	// status asks the running daemon, whose state database is locked.
	code, stdout, errOut := runCmd(t, "status", "-web.url", base)
	if code != 0 || !strings.Contains(stdout, "cust-globex") || !strings.Contains(stdout, "succeeded") {
		t.Errorf("status -web.url: exit %d\n%s\n%s", code, stdout, errOut)
	}
	if code, _, stderr := runCmd(t, "status", "-config.file", e.cfgPath); code != 1 || !strings.Contains(stderr, "locked") {
		t.Errorf("status on the locked database: exit %d, stderr %q; want 1 saying it is locked", code, stderr)
	}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("Received SIGHUP, reloading")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog("Received SIGTERM, exiting gracefully")
	if err := cmd.Wait(); err != nil {
		t.Errorf("psa-syncd run exited with %v after SIGTERM, want 0", err)
	}
}

// holdingProxy sits in front of the simulator. Adjustment POSTs are held:
// either after the simulator applied them (the response is never sent) or
// before they reach it (they are never applied), until the client goes away.
type holdingProxy struct {
	sim        *psatest.Server
	applyFirst bool
	arrived    chan struct{} // one value per held request
	wg         sync.WaitGroup
	mu         sync.Mutex
	hold       bool
}

func (p *holdingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	hold := p.hold
	p.mu.Unlock()
	isAdjustment := r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments")
	if !hold || !isAdjustment {
		p.sim.Handler().ServeHTTP(w, r)
		return
	}
	p.wg.Add(1)
	defer p.wg.Done()
	if p.applyFirst {
		p.sim.Handler().ServeHTTP(httptest.NewRecorder(), r)
	}
	// The server notices a closed connection only once the body is read.
	_, _ = io.Copy(io.Discard, r.Body)
	p.arrived <- struct{}{}
	<-r.Context().Done() // the killed client closes the connection
}

// TestSync_killedBetweenIntentAndCompletion kills `psa-syncd sync` with
// SIGKILL while an adjustment POST is in flight (after its intent was
// recorded), then syncs again: every line ends at its exact quantity with
// exactly one adjustment, whether the PSA had applied the killed write or not.
func TestSync_killedBetweenIntentAndCompletion(t *testing.T) {
	t.Parallel()
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied=%t", applied), func(t *testing.T) {
			t.Parallel()
			proxy := &holdingProxy{applyFirst: applied, arrived: make(chan struct{}, 16), hold: true}
			front := httptest.NewServer(proxy)
			t.Cleanup(front.Close)
			e := newTestEnv(t, func(s *psatest.Server) string {
				proxy.sim = s
				return front.URL + "/ATServicesRest/"
			})

			cmd := exec.Command(binary, "sync", "-config.file", e.cfgPath)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-proxy.arrived:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("no adjustment POST arrived:\n%s", out.String())
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			proxy.wg.Wait() // every held request has seen the connection close
			before := len(e.sim.Autotask().Adjustments())
			if applied && before == 0 {
				t.Fatal("the held adjustment was not applied")
			}
			proxy.mu.Lock()
			proxy.hold = false
			proxy.mu.Unlock()

			code, stdout, stderr := runCmd(t, "sync", "-config.file", e.cfgPath)
			if code != 0 {
				t.Fatalf("sync after the kill: exit %d\n%s\n%s", code, stdout, stderr)
			}
			e.checkUnits(t)
			perLine := map[[2]int64]int{}
			for _, a := range e.sim.Autotask().Adjustments() {
				perLine[[2]int64{a.ContractID, a.ServiceID}]++
			}
			for _, w := range wantUnits {
				k := [2]int64{e.contracts[w[0]], e.services[w[1]]}
				if perLine[k] != 1 {
					t.Errorf("contract %d service %d has %d adjustments, want exactly 1", k[0], k[1], perLine[k])
				}
			}
			if len(perLine) != len(wantUnits) {
				t.Errorf("adjustments on %d lines, want %d: %v", len(perLine), len(wantUnits), perLine)
			}
		})
	}
}

// TestDemoFiles loads the demo's fixtures and its psa-syncd.yml (with the
// placeholders run.sh fills in), so that `make demo` cannot rot unnoticed.
func TestDemoFiles(t *testing.T) {
	t.Parallel()
	demo := filepath.Join("..", "..", "..", "examples", "demo")
	if _, err := psatest.LoadFixture(filepath.Join(demo, "autotask.json")); err != nil {
		t.Error(err)
	}
	raw, err := os.ReadFile(filepath.Join(demo, "sophos.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sophostest.ParseFixture(bytes.ReplaceAll(raw, []byte("CURRENT-MONTH"), []byte(time.Now().UTC().Format("2006-01")))); err != nil {
		t.Errorf("sophos.json: %v", err)
	}
	cfg, err := os.ReadFile(filepath.Join(demo, "psa-syncd.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rendered := strings.NewReplacer("@SOPHOS_AUTH_URL@", "http://127.0.0.1:1/api/v2/oauth2/token", "@SOPHOS_API_URL@", "http://127.0.0.1:1/").Replace(string(cfg))
	writeFile(t, filepath.Join(dir, "psa-syncd.yml"), rendered)
	writeFile(t, filepath.Join(dir, "api-token"), "token\n")
	env := map[string]string{
		"PSA_AUTOTASK_USERNAME": "u", "PSA_AUTOTASK_SECRET": "s", "PSA_AUTOTASK_INTEGRATION_CODE": "c",
		"PSA_AUTOTASK_BASE_URL": "http://127.0.0.1:1/ATServicesRest/", "PSA_SOPHOS_CLIENT_ID": "id", "PSA_SOPHOS_CLIENT_SECRET": "secret",
	}
	c, err := daemon.Load(filepath.Join(dir, "psa-syncd.yml"), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.Type != daemon.SourceSophos || string(c.Web.APIToken) != "token" {
		t.Errorf("demo config: source %q, token set %t", c.Source.Type, c.Web.APIToken != "")
	}
}
