package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// Sizes of TestFailover.
const (
	failoverCustomers = 40
	failoverProducts  = 2
	failoverRounds    = 10
	// failoverTakeover is how soon the standby must become active after
	// the active instance is killed (issue: within 15 s).
	failoverTakeover = 15 * time.Second
)

// TestFailover runs two psa-syncd processes on one PostgreSQL database
// against the Autotask simulator. In each round every line's usage changes,
// a pass is requested from the active instance, and the active instance is
// killed with SIGKILL in the middle of it; the standby must take over
// within 15 s, settle the killed one's open intents (those whose lines still
// show the quantity from before after policies.settle_time, by the pass it
// queues for then), and finish the round so
// that every quantity is exact and no line got two adjustments. The killed
// one is restarted as the new standby for the next round.
func TestFailover(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sim := psatest.Start(t, psatest.WithSystem(psa.SystemAutotask), psatest.WithLatency(15*time.Millisecond),
		psatest.WithThreadLimit(psatest.DefaultThreadLimit), psatest.WithHourlyLimit(1_000_000))
	at := sim.Autotask()
	doc := export.New(psa.SystemAutotask, strings.TrimPrefix(sim.URL(), "http://"))
	doc.Revision = 1
	services := make([]int64, failoverProducts)
	for j := range services {
		services[j] = at.AddService(fmt.Sprintf("Service %d", j), 1)
		doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: itoa(services[j]), SyncEnabled: true})
	}
	contracts := make([]int64, failoverCustomers)
	for i := range contracts {
		company := at.AddCompany(fmt.Sprintf("Customer %02d", i))
		contracts[i] = at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed Services"})
		doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%02d", i), CompanyID: itoa(company), ContractID: itoa(contracts[i]), UsageSync: true})
	}
	dir := t.TempDir()
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "mappings.json"), string(data))
	user, secret, code := at.Credentials()
	const token = "failover-token"
	cfg := filepath.Join(dir, "psa-syncd.yml")
	writeFile(t, cfg, fmt.Sprintf(`export_path: mappings.json
state:
  driver: postgres
  url: %q
  lock_interval: 250ms
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
schedule: monthly last-day 23:00
# A killed instance's writes to the local simulator end within
# milliseconds; the default 2m would make each round wait that long
# before the lines left unconfirmed are written.
policies:
  settle_time: 1s
  # Every round raises every line by 3 at once, a surge the guard would
  # hold for review: this test is of the writes across a takeover.
  surge_lines_percent: 0
web:
  api_token: %q
`, url, user, secret, code, sim.AutotaskBaseURL(), token))
	desired := func(round, i, j int) int64 { return int64(2 + (i+j)%7 + round*3) }
	writeUsage := func(round int) {
		var b strings.Builder
		b.WriteString("customer_id,product,quantity\n")
		for i := range contracts {
			for j := range services {
				fmt.Fprintf(&b, "cust-%02d,PROD-%d,%d\n", i, j, desired(round, i, j))
			}
		}
		writeFile(t, filepath.Join(dir, "usage.csv"), b.String())
	}

	active := startSyncd(t, cfg)
	active.waitLog(t, "This psa-syncd is the active instance")
	standby := startSyncd(t, cfg)
	standby.waitLog(t, "Standby: serving the read-only API and metrics until the active instance's lock is gone")

	// A one-off sync on the shared database is refused while an instance
	// is active; status reads the shared database (no file lock to hit).
	writeUsage(0)
	if code, _, stderr := runCmd(t, "sync", "-config.file", cfg); code != 1 || !strings.Contains(stderr, "standby") {
		t.Errorf("sync while another instance is active: exit %d, stderr %q; want 1 saying it is a standby", code, stderr)
	}
	if code, stdout, stderr := runCmd(t, "status", "-config.file", cfg); code != 0 {
		t.Errorf("status on the shared database: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(at.Adjustments()); n != 0 {
		t.Fatalf("%d adjustments before the first round", n)
	}

	lines := failoverCustomers * failoverProducts
	var doubled, settled int
	var slowest time.Duration
	for round := range failoverRounds {
		writeUsage(round)
		before := len(at.Adjustments())
		active.post(t, "/api/v1/sync", token, http.StatusAccepted)
		// Kill the active instance once a third of the round's writes are in.
		deadline := time.Now().Add(time.Minute)
		for len(at.Adjustments())-before < lines/3 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the pass made %d adjustments in a minute", round, len(at.Adjustments())-before)
			}
			time.Sleep(2 * time.Millisecond)
		}
		// Mark the standby's log before the kill: it may take over before
		// kill returns (kill waits for the process to exit).
		mark := standby.mark()
		active.kill(t)
		killed := time.Now()
		standby.waitLogSince(t, "This psa-syncd is the active instance", mark, failoverTakeover)
		if took := time.Since(killed); took > slowest {
			slowest = took
		}
		// The new active instance settles the killed one's open intents
		// (by re-reading the PSA) before anything else.
		var open struct {
			Intents []json.RawMessage `json:"intents"`
		}
		for {
			standby.getJSON(t, "/api/v1/intents", &open)
			if len(open.Intents) == 0 {
				break
			}
			if time.Since(killed) > failoverTakeover {
				t.Fatalf("round %d: %d intents still open %s after the kill", round, len(open.Intents), failoverTakeover)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if m := standby.findSince("Reconciled open intents from an interrupted pass", mark); m != nil {
			n, ok := m["intents"].(float64)
			if !ok {
				t.Fatalf("the takeover line's intents is %v, want a number", m["intents"])
			}
			settled += int(n)
		}
		mark = standby.mark()
		ticket := standby.post(t, "/api/v1/sync", token, http.StatusAccepted)
		// The pass queued for the settled intents may finish first.
		requested := func(m map[string]any) bool { return m["request"] == ticket }
		if m := standby.waitLogWhere(t, "Finished pass", mark, time.Minute, requested); m["result"] != "success" {
			t.Errorf("round %d: the new active instance's pass ended %v, want success", round, m["result"])
		}

		perLine := map[[2]int64]int{}
		for _, a := range at.Adjustments()[before:] {
			perLine[[2]int64{a.ContractID, a.ServiceID}]++
		}
		for i, c := range contracts {
			for j, s := range services {
				n := perLine[[2]int64{c, s}]
				if n > 1 {
					doubled += n - 1
					t.Errorf("round %d: contract %d service %d got %d adjustments, want 1", round, c, s, n)
				}
				if got, _ := at.Units(c, s, time.Now()); got != desired(round, i, j) {
					t.Errorf("round %d: contract %d service %d holds %d units, want %d", round, c, s, got, desired(round, i, j))
				}
			}
		}
		// The killed instance comes back as the standby.
		active, standby = standby, startSyncd(t, cfg)
		standby.waitLog(t, "Standby: serving the read-only API and metrics until the active instance's lock is gone")
	}
	t.Logf("%d rounds of %d lines: %d intents settled after kills, slowest takeover %s, %d doubled adjustments",
		failoverRounds, lines, settled, slowest.Round(10*time.Millisecond), doubled)
}

// syncdProc is a `psa-syncd run` process whose JSON logs are collected.
type syncdProc struct {
	cmd  *exec.Cmd
	base string

	mu   sync.Mutex
	cond *sync.Cond
	logs []map[string]any
	done bool
}

func startSyncd(t *testing.T, cfg string) *syncdProc {
	t.Helper()
	return startSyncdEnv(t, cfg, nil)
}

// startSyncdEnv is startSyncd with the process's environment env (nil: the
// test's).
func startSyncdEnv(t *testing.T, cfg string, env []string) *syncdProc {
	t.Helper()
	p := &syncdProc{cmd: exec.Command(binary, "run", "-config.file", cfg, "-web.listen-address", "127.0.0.1:0", "-log.format", "json")}
	p.cmd.Env = env
	p.cond = sync.NewCond(&p.mu)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	go p.collect(stderr)
	addr, _ := p.waitLog(t, "Listening")["address"].(string)
	p.base = "http://" + addr
	return p
}

func (p *syncdProc) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			p.mu.Lock()
			p.logs = append(p.logs, m)
			p.cond.Broadcast()
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	p.done = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// mark returns the number of log records so far.
func (p *syncdProc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.logs)
}

func (p *syncdProc) findSince(msg string, since int) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.logs[since:] {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

// waitLog waits up to startWait for the first record with message msg.
func (p *syncdProc) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	return p.waitLogSince(t, msg, 0, startWait)
}

// startWait is how long a psa-syncd process may take to log that it
// listens, or which instance it is.
const startWait = 30 * time.Second

// waitLogSince waits for a record with message msg after the first since.
func (p *syncdProc) waitLogSince(t *testing.T, msg string, since int, timeout time.Duration) map[string]any {
	t.Helper()
	return p.waitLogWhere(t, msg, since, timeout, nil)
}

// waitLogWhere waits for a record with message msg after the first since
// for which match (nil: any) is true.
func (p *syncdProc) waitLogWhere(t *testing.T, msg string, since int, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	start := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := since; ; {
		for ; i < len(p.logs); i++ {
			if p.logs[i]["msg"] == msg && (match == nil || match(p.logs[i])) {
				return p.logs[i]
			}
		}
		if p.done || time.Since(start) >= timeout {
			var tail []string
			for _, m := range p.logs[max(0, len(p.logs)-10):] {
				b, _ := json.Marshal(m)
				tail = append(tail, string(b))
			}
			t.Fatalf("psa-syncd did not log %q within %s; last records:\n%s", msg, timeout, strings.Join(tail, "\n"))
		}
		p.cond.Wait()
	}
}

func (p *syncdProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// post POSTs to path and returns the answer's run_id (a sync request's
// ticket), if any.
func (p *syncdProc) post(t *testing.T, path, token string, want int) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s = %d %s, want %d", path, resp.StatusCode, body, want)
	}
	var tk struct {
		ID string `json:"run_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tk)
	return tk.ID
}

func (p *syncdProc) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
