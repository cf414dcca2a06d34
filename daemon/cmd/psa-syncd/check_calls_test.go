package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestCheck_throughDaemonCountsKaseyaBMSCalls: Kaseya BMS allows 1,500
// calls per hour per endpoint, which psa-syncd's passes count in the state
// database. psa-syncd check run by the daemon (check -web.url, POST
// /api/v1/check) signs in and reads a page of accounts with a client of
// its own, whose calls were counted in memory only: while passes ran, the
// checks an operator or a probe runs could take an endpoint over the limit
// unseen. Its calls are in the daemon's count now, as a pass's are, and
// its requests in psa_sync_api_requests_total: as many, endpoint by
// endpoint, as the simulator got.
func TestCheck_throughDaemonCountsKaseyaBMSCalls(t *testing.T) {
	t.Parallel()
	e := newSystemEnv(t, psa.SystemKaseyaBMS)
	writeFile(t, e.cfgPath, string(must(os.ReadFile(e.cfgPath)))+"web:\n  listen_address: 127.0.0.1:0\n  api_token: test-token\n")
	cfg, err := daemon.Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, err := daemon.New(cfg, e.cfgPath, daemon.Options{Registry: reg,
		Check: checker(e.cfgPath, slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	before := callsNow(t, e.sim.KaseyaBMS(), d, reg)

	req := httptest.NewRequest(http.MethodPost, "/api/v1/check", nil)
	req.Header.Set("Authorization", "Bearer test-token")
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, req)
	var r daemon.CheckReport
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &r) != nil || !r.OK {
		t.Fatalf("POST /api/v1/check = %d %s; want every test passed", rec.Code, rec.Body.String())
	}

	callsNow(t, e.sim.KaseyaBMS(), d, reg).countedAsSent(t, "the check", before)
}

// countedCalls returns the Kaseya BMS calls per endpoint in the rolling
// hour that d's state database counts.
func countedCalls(t *testing.T, d *daemon.Daemon) map[string]int {
	t.Helper()
	calls, err := d.State().APICalls().Calls(time.Now(), time.Hour, 1500)
	if err != nil {
		t.Fatal(err)
	}
	return calls
}

// requests returns the sum of psa_sync_api_requests_total in reg.
func requests(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() == "psa_sync_api_requests_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// TestCheck_localSaysKaseyaBMSCallsSent: psa-syncd check without -web.url
// may not write the daemon's count of Kaseya BMS calls per endpoint (the
// daemon holds an SQLite file; the daemon alone keeps the count), so its
// calls were left out of it unseen. It now logs how many it sent, per
// endpoint, as BMS counted them.
func TestCheck_localSaysKaseyaBMSCallsSent(t *testing.T) {
	t.Parallel()
	e := newSystemEnv(t, psa.SystemKaseyaBMS)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"check", "-config.file", e.cfgPath}, &stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("check: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	k := e.sim.KaseyaBMS()
	auth, lookup := k.HourlyCount("/v2/security/authenticate"), k.HourlyCount("/v2/crm/accounts/lookup")
	want := []string{"Kaseya BMS calls of this command are not in psa-syncd's count of calls per endpoint",
		fmt.Sprintf("/v2/security/authenticate=%d", auth), fmt.Sprintf("/v2/crm/accounts/lookup=%d", lookup)}
	for _, w := range want {
		if auth == 0 || lookup == 0 || !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr:\n%s\nwant %q (BMS counted %d sign-ins, %d account lookups)", stderr.String(), w, auth, lookup)
		}
	}
}

// sentAndCounted is, at one time, the calls per endpoint that the Kaseya
// BMS simulator got in its rolling hour, the daemon's count of them
// (api_calls) and the daemon's psa_sync_api_requests_total.
type sentAndCounted struct {
	sent, counted map[string]int
	requests      float64
}

func callsNow(t *testing.T, bms *psatest.KaseyaBMS, d *daemon.Daemon, reg *prometheus.Registry) sentAndCounted {
	t.Helper()
	return sentAndCounted{sent: bms.State().Hourly, counted: countedCalls(t, d), requests: requests(t, reg)}
}

// countedAsSent fails t unless every endpoint's calls that the simulator
// got since before are the daemon's count of them since before, and its
// requests in psa_sync_api_requests_total are as many in all.
func (now sentAndCounted) countedAsSent(t *testing.T, what string, before sentAndCounted) {
	t.Helper()
	sent, counted := map[string]int{}, map[string]int{}
	all := 0
	for ep, n := range now.sent {
		if n -= before.sent[ep]; n != 0 {
			sent[ep] = n
			all += n
		}
	}
	for ep, n := range now.counted {
		if n -= before.counted[ep]; n != 0 {
			counted[ep] = n
		}
	}
	if all == 0 {
		t.Fatalf("%s: the simulator got no call", what)
	}
	if !maps.Equal(sent, counted) {
		t.Errorf("%s: Kaseya BMS got %v calls per endpoint; the daemon counted %v (api_calls)", what, sent, counted)
	}
	if n := now.requests - before.requests; n != float64(all) {
		t.Errorf("%s: Kaseya BMS got %d requests; psa_sync_api_requests_total counted %v", what, all, n)
	}
}

// TestSync_requestsCountedAsSentWithARetriedServerError: on Autotask and
// ConnectWise (their limits are not per endpoint, and their credentials
// go with every request: no token to re-sign-in for), a pass one of whose
// reads the PSA answered 503 retries it, and psa_sync_api_requests_total
// counts every request the simulator got, the refused one and its retry
// included.
func TestSync_requestsCountedAsSentWithARetriedServerError(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			var sim *psatest.Server
			var cfgPath string
			if sys == psa.SystemAutotask {
				e := newTestEnv(t, nil)
				sim, cfgPath = e.sim, e.cfgPath
			} else {
				e := newSystemEnv(t, sys)
				sim, cfgPath = e.sim, e.cfgPath
			}
			cfg, err := daemon.Load(cfgPath, nil)
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			d, err := daemon.New(cfg, cfgPath, daemon.Options{Registry: reg, AllowEmptyState: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			if err := d.Reload(); err != nil {
				t.Fatal(err)
			}
			var faulted atomic.Int64
			sim.AddFault(psatest.Fault{Method: http.MethodGet, Status: http.StatusServiceUnavailable, Times: 1, Received: func() { faulted.Add(1) }})
			logged, counted := len(sim.Requests()), requests(t, reg)
			res, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerCLI})
			if err != nil || res.Run.Result != "success" {
				t.Fatalf("sync pass: %v %+v", err, res)
			}
			got := sim.Requests()[logged:]
			if faulted.Load() != 1 {
				t.Fatalf("the fault answered %d requests, want 1", faulted.Load())
			}
			i := slices.IndexFunc(got, func(r psatest.Request) bool { return r.Status == http.StatusServiceUnavailable })
			if i < 0 || !slices.ContainsFunc(got[i+1:], func(r psatest.Request) bool {
				return r.Method == got[i].Method && r.Path == got[i].Path && r.RawQuery == got[i].RawQuery && r.Status == http.StatusOK
			}) {
				t.Errorf("%s: the read answered 503 was not sent again", sys)
			}
			if n := requests(t, reg) - counted; n != float64(len(got)) {
				t.Errorf("%s got %d requests in the pass (a 503 among them); psa_sync_api_requests_total counted %v", sys, len(got), n)
			}
		})
	}
}
