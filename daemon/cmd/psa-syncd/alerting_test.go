package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// alertsFile is the example alerting rules, loaded as they ship.
const alertsFile = "../../../examples/prometheus/alerts.yml"

// prometheusBinary returns the Prometheus server to run: the one on PATH,
// else Debian's (make test installs the prometheus package when missing).
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	const debian = "/usr/bin/prometheus"
	if _, err := os.Stat(debian); err != nil {
		t.Fatalf("no Prometheus server: install Debian's prometheus package (make test does): %v", err)
	}
	return debian
}

// promServer is a Prometheus server run by a test.
type promServer struct {
	url string
}

// startPrometheus runs a Prometheus server of its own (own port, own data
// directory, own configuration; a packaged service is irrelevant) that
// scrapes the psa-syncd at target every second as job "psa-syncd" and
// evaluates the example alerting rules every second. It is stopped at the
// end of the test.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: psa-syncd
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfgPath, cfg)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prometheusBinary(t),
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			if data, err := os.ReadFile(logPath); err == nil {
				t.Logf("prometheus log:\n%s", data)
			}
		}
	})
	p := &promServer{url: "http://" + addr}
	waitUntil(t, "Prometheus to be ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited at start-up (see its log)")
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// waitUntil polls cond until it holds, failing the test after a generous
// bound; the bound only stops a broken test, it measures nothing.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// api GETs a Prometheus HTTP API path and decodes its data into v.
func (p *promServer) api(t *testing.T, path string, query url.Values, v any) error {
	t.Helper()
	u := p.url + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, v)
}

// promAlert is an active alert in GET /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// alert returns the active alert with the name, if any.
func (p *promServer) alert(t *testing.T, name string) (promAlert, bool) {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	if err := p.api(t, "/api/v1/alerts", nil, &data); err != nil {
		t.Fatal(err)
	}
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == name {
			return a, true
		}
	}
	return promAlert{}, false
}

// syncAndWait asks the daemon at base for a pass over all customers and
// waits for it to finish; it returns the run's result.
func syncAndWait(t *testing.T, base string) string {
	t.Helper()
	api := &apiClient{base: base, token: "test-token"}
	var tk struct {
		ID string `json:"run_id"`
	}
	ctx := context.WithoutCancel(t.Context())
	if err := api.post(ctx, "/api/v1/sync", map[string]any{}, &tk); err != nil {
		t.Fatal(err)
	}
	_, run, err := api.waitRun(ctx, tk.ID)
	if err != nil || run == nil {
		t.Fatalf("waiting for sync request %s: %v (run %v)", tk.ID, err, run)
	}
	return run.Result
}

// TestAlertingE2E runs psa-syncd and a real Prometheus server that scrapes
// it and evaluates examples/prometheus/alerts.yml: when the PSA refuses the
// credentials the failure alert fires, and once they work again it
// resolves. Then every query of the Grafana dashboard in examples/grafana
// must return data from that Prometheus.
func TestAlertingE2E(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	base := startDaemon(t, e.cfgPath)
	prom := startPrometheus(t, strings.TrimPrefix(base, "http://"))
	waitUntil(t, "Prometheus to scrape psa-syncd", func() bool {
		var data struct {
			Result []json.RawMessage `json:"result"`
		}
		err := prom.api(t, "/api/v1/query", url.Values{"query": {`psa_sync_build_info{job="psa-syncd"} == 1`}}, &data)
		return err == nil && len(data.Result) == 1
	})
	if a, ok := prom.alert(t, "PsaSyncFailing"); ok {
		t.Fatalf("PsaSyncFailing is %s before any pass", a.State)
	}

	// The PSA refuses the credentials: every customer fails.
	e.sim.AddFault(psatest.Fault{Status: http.StatusUnauthorized,
		Body: `{"errors":["Authentication failed: the user name or secret is incorrect."]}`})
	if got := syncAndWait(t, base); got != "failure" {
		t.Fatalf("pass with refused credentials: %s, want failure", got)
	}
	var firing promAlert
	waitUntil(t, "PsaSyncFailing to fire", func() bool {
		a, ok := prom.alert(t, "PsaSyncFailing")
		firing = a
		return ok && a.State == "firing"
	})
	if firing.Labels["system"] != "autotask" || firing.Labels["severity"] != "warning" || firing.Labels["job"] != "psa-syncd" {
		t.Errorf("PsaSyncFailing labels = %v", firing.Labels)
	}
	if !strings.Contains(firing.Annotations["description"], "psa-syncd check") {
		t.Errorf("PsaSyncFailing description = %q, want the advice", firing.Annotations["description"])
	}

	// The credentials work again: the next pass succeeds and the alert
	// resolves.
	e.sim.ClearFaults()
	if got := syncAndWait(t, base); got != "success" {
		t.Fatalf("pass with working credentials: %s, want success", got)
	}
	waitUntil(t, "PsaSyncFailing to resolve", func() bool {
		_, ok := prom.alert(t, "PsaSyncFailing")
		return !ok
	})
	e.checkUnits(t)

	// The Grafana dashboard's queries all return data from this Prometheus
	// once it has scraped a few times since the last pass.
	waitUntil(t, "Prometheus to scrape after the pass", func() bool {
		var data struct {
			Result []json.RawMessage `json:"result"`
		}
		err := prom.api(t, "/api/v1/query", url.Values{"query": {`count_over_time(psa_sync_last_run_result{result="success"}[1m]) >= 3 and psa_sync_last_run_result{result="success"} == 1`}}, &data)
		return err == nil && len(data.Result) == 1
	})
	checkDashboardData(t, prom)
}
