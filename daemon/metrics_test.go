package daemon

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func TestNewMetrics_seriesExistAtStart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	NewMetrics(reg, psa.SystemAutotask)

	// Every labelled series an alert may use exists (at 0) before the
	// first pass.
	want := `
# HELP psa_sync_customers Customers with usage sync on, by the status of their last sync (succeeded, failed, held or skipped).
# TYPE psa_sync_customers gauge
psa_sync_customers{status="failed",system="autotask"} 0
psa_sync_customers{status="held",system="autotask"} 0
psa_sync_customers{status="skipped",system="autotask"} 0
psa_sync_customers{status="succeeded",system="autotask"} 0
# HELP psa_sync_lines_total Contract lines handled by sync passes, by outcome (updated, unchanged, held or failed).
# TYPE psa_sync_lines_total counter
psa_sync_lines_total{outcome="failed",system="autotask"} 0
psa_sync_lines_total{outcome="held",system="autotask"} 0
psa_sync_lines_total{outcome="unchanged",system="autotask"} 0
psa_sync_lines_total{outcome="updated",system="autotask"} 0
# HELP psa_sync_runs_total Sync passes that wrote to the PSA, by result (success, partial or failure). Dry runs are not counted.
# TYPE psa_sync_runs_total counter
psa_sync_runs_total{result="failure",system="autotask"} 0
psa_sync_runs_total{result="partial",system="autotask"} 0
psa_sync_runs_total{result="success",system="autotask"} 0
# HELP psa_sync_unmapped Usage the last pass could not bill: customers and products without a mapping, and usage rows with no customer (unassigned).
# TYPE psa_sync_unmapped gauge
psa_sync_unmapped{kind="customer",system="autotask"} 0
psa_sync_unmapped{kind="product",system="autotask"} 0
psa_sync_unmapped{kind="unassigned",system="autotask"} 0
# HELP psa_sync_last_success_timestamp_seconds Time the last successful sync pass over all customers finished, as a Unix timestamp.
# TYPE psa_sync_last_success_timestamp_seconds gauge
psa_sync_last_success_timestamp_seconds{system="autotask"} 0
# HELP psa_sync_rate_limited_total PSA API answers that refused the request for the PSA's rate limit: HTTP 429, or the refusal's message with another status (Autotask's thread or hourly threshold, Kaseya BMS's limit in an error envelope).
# TYPE psa_sync_rate_limited_total counter
psa_sync_rate_limited_total{system="autotask"} 0
`
	names := []string{"psa_sync_customers", "psa_sync_lines_total", "psa_sync_runs_total", "psa_sync_unmapped",
		"psa_sync_last_success_timestamp_seconds", "psa_sync_rate_limited_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// Every pinned metric name is registered.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"psa_sync_runs_total", "psa_sync_last_run_timestamp_seconds", "psa_sync_last_success_timestamp_seconds",
		"psa_sync_run_duration_seconds", "psa_sync_lines_total", "psa_sync_customers", "psa_sync_unmapped",
		"psa_sync_rate_limited_total", "psa_sync_api_budget_remaining", "psa_sync_schedule_interval_seconds",
		"psa_sync_export_last_reload_successful",
		"psa_sync_export_last_reload_success_timestamp_seconds", "psa_sync_config_last_reload_successful",
		"psa_sync_config_last_reload_success_timestamp_seconds", "psa_sync_build_info",
		"psa_sync_api_budget_limit", "psa_sync_next_run_timestamp_seconds", "psa_sync_pass_in_progress",
		"psa_sync_pass_lines_done", "psa_sync_pass_lines_total", "psa_sync_pass_progress_timestamp_seconds", "psa_sync_held_lines", "psa_sync_held_since_timestamp_seconds", "psa_sync_last_run_result",
		"psa_sync_unmapped_new_total", "psa_sync_ticket_deferred", "psa_sync_customers_unreported",
		"psa_sync_http_refused_total", "psa_sync_pass_stops_total",
		"psa_sync_api_budget_checked_timestamp_seconds", "psa_sync_ticket_next_run_timestamp_seconds",
	} {
		if !got[name] {
			t.Errorf("metric %s is not registered", name)
		}
	}
	// Whether the integration is on is not known before an export has
	// loaded: a 0 would silence the alerts about passes (their "unless
	// integration_enabled == 0") after a restart without a valid export.
	if got["psa_sync_integration_enabled"] {
		t.Error("psa_sync_integration_enabled is exported before any export has loaded, want it absent")
	}
	// The same holds for ticket sync (PsaSyncTicketSyncFailing's "unless
	// ticket_sync_enabled == 0").
	if got["psa_sync_ticket_sync_enabled"] {
		t.Error("psa_sync_ticket_sync_enabled is exported before any export has loaded, want it absent")
	}
}

func TestMetrics_InstrumentRoundTripper(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, psa.SystemAutotask)
	hc := &http.Client{Transport: m.InstrumentRoundTripper(nil)}
	for _, p := range []string{"/ok", "/ok", "/busy"} {
		resp, err := hc.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := hc.Post(srv.URL+"/ok", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	want := `
# HELP psa_sync_api_requests_total ` + apiRequestsHelp + `
# TYPE psa_sync_api_requests_total counter
psa_sync_api_requests_total{code="200",method="get",system="autotask"} 2
psa_sync_api_requests_total{code="200",method="post",system="autotask"} 1
psa_sync_api_requests_total{code="429",method="get",system="autotask"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "psa_sync_api_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.APIRequestDuration); n != 2 {
		t.Errorf("psa_sync_api_request_duration_seconds has %d series, want 2 (get, post)", n)
	}
	if got := m.Requests(); got != 4 {
		t.Errorf("Requests() = %d, want 4", got)
	}
}

const apiRequestsHelp = `HTTP requests sent to the PSA API, by method and status code; code="error" for a request that got no answer (connection, TLS or timeout).`

// TestMetrics_InstrumentRoundTripper_transportErrors: a request that gets
// no answer (here, to a closed port) is counted in
// psa_sync_api_requests_total with code="error" under its method, and
// timed, as an answered one is. promhttp alone counts answers only, so an
// unreachable PSA showed as no requests at all.
func TestMetrics_InstrumentRoundTripper_transportErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, psa.SystemAutotask)
	hc := &http.Client{Transport: m.InstrumentRoundTripper(nil)}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for range 2 {
		if resp, err := hc.Get(closed.URL + "/v1.0/Companies"); err == nil {
			resp.Body.Close()
			t.Fatal("GET to a closed port succeeded")
		}
	}
	if resp, err := hc.Post(closed.URL, "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		t.Fatal("POST to a closed port succeeded")
	}
	req, err := http.NewRequest("PROPFIND", closed.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("PROPFIND to a closed port succeeded")
	}

	want := `
# HELP psa_sync_api_requests_total ` + apiRequestsHelp + `
# TYPE psa_sync_api_requests_total counter
psa_sync_api_requests_total{code="200",method="get",system="autotask"} 1
psa_sync_api_requests_total{code="error",method="get",system="autotask"} 2
psa_sync_api_requests_total{code="error",method="post",system="autotask"} 1
psa_sync_api_requests_total{code="error",method="unknown",system="autotask"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "psa_sync_api_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.APIRequestDuration); n != 3 {
		t.Errorf("psa_sync_api_request_duration_seconds has %d series, want 3 (get, post, unknown)", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "psa_sync_api_request_duration_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			if method := s.GetLabel()[0].GetValue(); method == "get" && s.GetHistogram().GetSampleCount() != 3 {
				t.Errorf("psa_sync_api_request_duration_seconds_count{method=\"get\"} = %d, want 3: the failed GETs are timed", s.GetHistogram().GetSampleCount())
			}
		}
	}
	if got := m.Requests(); got != 5 {
		t.Errorf("Requests() = %d, want 5", got)
	}
}

func TestMetrics_reloadAndSettings(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, psa.SystemAutotask)
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

	m.ConfigReloaded(true, at)
	m.ExportReloaded(true, at)
	m.ExportReloaded(false, at.Add(time.Hour))
	m.SetIntegrationEnabled(true)
	m.SetScheduleInterval(24 * time.Hour)

	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"config_last_reload_successful", m.ConfigLastReloadSuccessful, 1},
		{"config_last_reload_success_timestamp_seconds", m.ConfigLastReloadSuccessTimestamp, float64(at.Unix())},
		{"export_last_reload_successful", m.ExportLastReloadSuccessful, 0},
		{"export_last_reload_success_timestamp_seconds", m.ExportLastReloadSuccessTimestamp, float64(at.Unix())},
		{"integration_enabled", m.IntegrationEnabled, 1},
		{"schedule_interval_seconds", m.ScheduleInterval, 86400},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("psa_sync_%s = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDaemon_rateLimitedCountsRefusalsOfAnyStatus: every answer the PSA
// client reads as a refusal for the rate limit is counted in
// psa_sync_rate_limited_total, whatever its status: Autotask's thread
// threshold may come as a 500, which the transport counted as an
// ordinary server error only, so that PsaSyncRateLimited missed it. Each
// is counted once: a 429 is counted by the client, no longer by the
// transport too.
func TestDaemon_rateLimitedCountsRefusalsOfAnyStatus(t *testing.T) {
	t.Parallel()
	const thread = `{"errors":["Thread Threshold Exceeded - The Autotask API thread threshold of 3 threads has been exceeded for the Companies endpoint of this integration. Internal code: Itgenatr005"]}`
	e := dtSetup(t, dtOptions{})
	e.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/ATServicesRest/V1.0/Companies/*", Status: http.StatusInternalServerError, Body: thread, Times: 1})
	e.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/ATServicesRest/V1.0/Companies/*", Status: http.StatusTooManyRequests, Body: thread, Times: 1})
	be, err := e.d.NewBackend(e.d.cfg.Load())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := be.GetCompany(t.Context(), dtID(e.companies[0])); err != nil {
		t.Fatalf("GetCompany after two thread refusals: %v", err)
	}
	want := `
# HELP psa_sync_rate_limited_total ` + rateLimitedHelp + `
# TYPE psa_sync_rate_limited_total counter
psa_sync_rate_limited_total{system="autotask"} 2
`
	if err := testutil.GatherAndCompare(e.d.registry, strings.NewReader(want), "psa_sync_rate_limited_total"); err != nil {
		t.Error(err)
	}
	server := testutil.ToFloat64(e.d.metrics.APIRequestsTotal.With(prometheus.Labels{"method": "get", "code": "500"}))
	if server != 1 {
		t.Errorf("psa_sync_api_requests_total{code=\"500\"} = %v, want 1 (the refusal is a request like any other)", server)
	}
}

const rateLimitedHelp = `PSA API answers that refused the request for the PSA's rate limit: HTTP 429, or the refusal's message with another status (Autotask's thread or hourly threshold, Kaseya BMS's limit in an error envelope).`
