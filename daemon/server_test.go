package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// dtServe sends one request to the daemon's handler and returns the recorded
// response.
func dtServe(t *testing.T, d *Daemon, method, target, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, target, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, req)
	return rec
}

func TestHandler_auth(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/v1/sync", "/-/reload"} {
		for _, tok := range []string{"", "wrong", "s3cre", "s3cret2"} {
			rec := dtServe(t, e.d, http.MethodPost, target, tok, "")
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("POST %s with token %q = %d, want 401", target, tok, rec.Code)
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("POST %s with token %q: WWW-Authenticate = %q", target, tok, got)
			}
			if strings.Contains(rec.Body.String(), "s3cret") {
				t.Errorf("401 body repeats the token: %s", rec.Body)
			}
		}
	}
	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "s3cret", "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/sync with the token = %d %s, want 202", rec.Code, rec.Body)
	}
	rec = dtServe(t, e.d, http.MethodPost, "/-/reload", "s3cret", "")
	if rec.Code != http.StatusOK {
		t.Errorf("POST /-/reload with the token = %d %s, want 200", rec.Code, rec.Body)
	}
	// Reads need no token.
	for _, target := range []string{"/api/v1/customers", "/api/v1/runs", "/metrics", "/-/healthy", "/-/ready"} {
		if rec := dtServe(t, e.d, http.MethodGet, target, "", ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", target, rec.Code)
		}
	}
}

func TestHandler_noTokenConfigured(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	for _, target := range []string{"/api/v1/sync", "/-/reload"} {
		rec := dtServe(t, e.d, http.MethodPost, target, "anything", "")
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "web.api_token") {
			t.Errorf("POST %s without a configured token = %d %s, want 403 naming web.api_token", target, rec.Code, rec.Body)
		}
	}
}

func TestHandler_reloadMethod(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "t"})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		rec := dtServe(t, e.d, m, "/-/reload", "t", "")
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /-/reload = %d, want 405", m, rec.Code)
		}
		if got := rec.Header().Get("Allow"); got != http.MethodPost {
			t.Errorf("%s /-/reload: Allow = %q, want POST", m, got)
		}
		if body := strings.TrimSpace(rec.Body.String()); body != "This endpoint requires a POST request." {
			t.Errorf("%s /-/reload body = %q", m, body)
		}
	}
}

func TestHandler_readiness(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{noExport: true})
	if err := e.d.Reload(); err == nil {
		t.Fatal("Reload without an export succeeded")
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/-/ready", "", ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready without an export = %d, want 503", rec.Code)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/-/healthy", "", ""); rec.Code != http.StatusOK {
		t.Errorf("/-/healthy = %d, want 200", rec.Code)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/plan", "", ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/api/v1/plan without an export = %d, want 503", rec.Code)
	}
	e.writeExport(t, e.doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/-/ready", "", ""); rec.Code != http.StatusOK {
		t.Errorf("/-/ready after the export loaded = %d, want 200", rec.Code)
	}
}

func TestHandler_customers(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, cs := range []state.CustomerStatus{
		{Source: "file", CustomerID: "cust-acme", UsageSync: true, Result: "succeeded", LastAttempt: now, LastSuccess: now},
		{Source: "file", CustomerID: "cust-globex", UsageSync: true, Result: "failed", Error: "contract 9 not found", LastAttempt: now},
		{Source: "file", CustomerID: "cust-old", UsageSync: false, Result: "partial", LastAttempt: now},
	} {
		if err := e.d.State().PutCustomerStatus(cs); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(target string) []string {
		t.Helper()
		rec := dtServe(t, e.d, http.MethodGet, target, "", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", target, rec.Code, rec.Body)
		}
		var body struct {
			Customers []apiCustomer `json:"customers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range body.Customers {
			out = append(out, c.CustomerID+"="+c.Status)
		}
		sort.Strings(out)
		return out
	}
	for _, c := range []struct {
		target string
		want   string
	}{
		{"/api/v1/customers", "cust-acme=succeeded cust-globex=failed cust-old=partial"},
		{"/api/v1/customers?status=succeeded", "cust-acme=succeeded"},
		{"/api/v1/customers?status=failed", "cust-globex=failed cust-old=partial"},
		{"/api/v1/customers?usage_sync=true", "cust-acme=succeeded cust-globex=failed"},
		{"/api/v1/customers?usage_sync=false", "cust-old=partial"},
		{"/api/v1/customers?status=failed&usage_sync=true", "cust-globex=failed"},
	} {
		if got := strings.Join(ids(c.target), " "); got != c.want {
			t.Errorf("GET %s = %s, want %s", c.target, got, c.want)
		}
	}
	for _, target := range []string{"/api/v1/customers?status=ok", "/api/v1/customers?usage_sync=yes", "/api/v1/customers?usage_sync=1"} {
		rec := dtServe(t, e.d, http.MethodGet, target, "", "")
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "filter") {
			t.Errorf("GET %s = %d %s, want 400 naming the filter", target, rec.Code, rec.Body)
		}
	}
}

func TestHandler_runs(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	run, err := e.d.State().BeginRun(state.Run{Trigger: "schedule", Started: time.Now().UTC(), Result: "running"})
	if err != nil {
		t.Fatal(err)
	}
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/runs", "", "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"trigger": "schedule"`) {
		t.Errorf("GET /api/v1/runs = %d %s", rec.Code, rec.Body)
	}
	rec = dtServe(t, e.d, http.MethodGet, "/api/v1/runs/"+dtID(run.ID), "", "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"id": `+dtID(run.ID)) {
		t.Errorf("GET /api/v1/runs/%d = %d %s", run.ID, rec.Code, rec.Body)
	}
	for _, target := range []string{"/api/v1/runs/999", "/api/v1/runs/q42", "/api/v1/runs/x"} {
		if rec := dtServe(t, e.d, http.MethodGet, target, "", ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", target, rec.Code)
		}
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/runs?limit=0", "", ""); rec.Code != http.StatusBadRequest {
		t.Errorf("GET /api/v1/runs?limit=0 = %d, want 400", rec.Code)
	}
}

func TestHandler_syncNow(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "tok"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "tok", `{"customer":"nobody"}`); rec.Code != http.StatusNotFound {
		t.Errorf("sync of an unknown customer = %d, want 404", rec.Code)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "tok", `{"customr":"x"}`); rec.Code != http.StatusBadRequest {
		t.Errorf("sync with a misspelt field = %d, want 400", rec.Code)
	}
	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "tok", `{"customer":"cust-acme"}`)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/sync = %d %s, want 202", rec.Code, rec.Body)
	}
	var tk SyncTicket
	if err := json.Unmarshal(rec.Body.Bytes(), &tk); err != nil || tk.ID == "" || tk.Status != "queued" {
		t.Fatalf("202 body %s: %+v, %v", rec.Body, tk, err)
	}
	// A duplicate request while the first waits is coalesced.
	rec = dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "tok", `{"customer":"cust-acme"}`)
	var dup SyncTicket
	_ = json.Unmarshal(rec.Body.Bytes(), &dup)
	if dup.ID != tk.ID {
		t.Errorf("duplicate request got run_id %q, want %q", dup.ID, tk.ID)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/runs/"+tk.ID, "", ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status": "queued"`) {
		t.Errorf("GET /api/v1/runs/%s = %d %s, want the queued request", tk.ID, rec.Code, rec.Body)
	}

	// Run the queue's work loop as Run does.
	ctx, cancel := t.Context(), func() {}
	defer cancel()
	go e.d.workLoop(ctx, ctx)
	done, err := e.d.WaitTicket(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != "done" || done.Result != "success" {
		t.Fatalf("ticket = %+v", done)
	}
	rec = dtServe(t, e.d, http.MethodGet, "/api/v1/runs/"+tk.ID, "", "")
	if !strings.Contains(rec.Body.String(), `"trigger": "api"`) || !strings.Contains(rec.Body.String(), `"customer": "cust-acme"`) {
		t.Errorf("GET /api/v1/runs/%s after the pass = %s", tk.ID, rec.Body)
	}
	rec = dtServe(t, e.d, http.MethodGet, "/api/v1/runs", "", "")
	if !strings.Contains(rec.Body.String(), `"id": `+dtID(done.RunID)) {
		t.Errorf("run %d is not in GET /api/v1/runs: %s", done.RunID, rec.Body)
	}
	if got := e.units(0, 0); got != 11 {
		t.Errorf("acme units = %d after sync now, want 11", got)
	}
	rec = dtServe(t, e.d, http.MethodGet, "/api/v1/customers?status=succeeded", "", "")
	if !strings.Contains(rec.Body.String(), `"customer_id": "cust-acme"`) {
		t.Errorf("cust-acme not listed as succeeded: %s", rec.Body)
	}
}

func TestHandler_plan(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/plan", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/plan = %d %s", rec.Code, rec.Body)
	}
	var p Plan
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 3 || len(p.Unmapped.Customers) != 1 || len(p.Unmapped.Products) != 1 || len(p.Unmapped.Unassigned) != 1 {
		t.Errorf("plan: %d changes, %d unmapped customers, %d unmapped products, %d unassigned; want 3, 1, 1, 1",
			len(p.Changes), len(p.Unmapped.Customers), len(p.Unmapped.Products), len(p.Unmapped.Unassigned))
	}
	if n := e.writes(); n != 0 {
		t.Errorf("GET /api/v1/plan sent %d writes", n)
	}
}

func TestHandler_metrics(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rec := dtServe(t, e.d, http.MethodGet, "/metrics", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, name := range []string{
		`psa_sync_runs_total{result="failure",system="autotask"} 0`,
		`psa_sync_runs_total{result="success",system="autotask"} 0`,
		`psa_sync_last_run_timestamp_seconds{system="autotask"}`,
		`psa_sync_last_success_timestamp_seconds{system="autotask"}`,
		`psa_sync_run_duration_seconds_bucket{system="autotask"`,
		`psa_sync_lines_total{outcome="updated",system="autotask"} 0`,
		`psa_sync_customers{status="failed",system="autotask"} 0`,
		`psa_sync_unmapped{kind="unassigned",system="autotask"} 0`,
		`psa_sync_rate_limited_total{system="autotask"} 0`,
		`psa_sync_api_budget_remaining{system="autotask"}`,
		`psa_sync_schedule_interval_seconds{system="autotask"}`,
		`psa_sync_integration_enabled{system="autotask"} 1`,
		`psa_sync_export_last_reload_successful 1`,
		`psa_sync_export_last_reload_success_timestamp_seconds`,
		`psa_sync_config_last_reload_successful 1`,
		`psa_sync_config_last_reload_success_timestamp_seconds`,
		`psa_sync_build_info{`,
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// The request metrics appear once the PSA has been called.
	if _, err := e.d.SyncOnce(t.Context(), PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	body = dtServe(t, e.d, http.MethodGet, "/metrics", "", "").Body.String()
	for _, name := range []string{`psa_sync_api_requests_total{code="200",method="get",system="autotask"}`, `psa_sync_api_request_duration_seconds_count{method="get",system="autotask"}`} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s after a pass", name)
		}
	}
}

func TestHandler_intents(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/intents", "", "")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "{\n  \"intents\": []\n}" {
		t.Fatalf("GET /api/v1/intents with none open = %d %s", rec.Code, rec.Body)
	}
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	in, err := e.d.State().OpenIntent(state.Intent{RunID: 7, System: "kaseya_bms", Source: "file", CustomerID: "cust-acme",
		ContractID: dtID(e.contracts[0]), ServiceID: dtID(e.services[0]), After: 42, EffectiveDate: eff})
	if err != nil {
		t.Fatal(err)
	}
	rec = dtServe(t, e.d, http.MethodGet, "/api/v1/intents", "", "")
	var got struct {
		Intents []IntentView `json:"intents"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Intents) != 1 {
		t.Fatalf("GET /api/v1/intents = %d %s", rec.Code, rec.Body)
	}
	if v := got.Intents[0]; v.ID != in.ID || v.After != 42 || v.Before != nil || v.EffectiveDate != "2026-11-01" || v.System != "kaseya_bms" {
		t.Errorf("intent = %+v", v)
	}

	target := "/api/v1/intents/" + strconv.FormatInt(in.ID, 10) + "/resolve"
	for _, tt := range []struct {
		target, token, body string
		code                int
	}{
		{target, "", `{"posted": true}`, http.StatusUnauthorized},
		{"/api/v1/intents/x/resolve", "s3cret", `{"posted": true}`, http.StatusBadRequest},
		{target, "s3cret", `{}`, http.StatusBadRequest},
		{target, "s3cret", `{"posted": true, "bogus": 1}`, http.StatusBadRequest},
		{"/api/v1/intents/999/resolve", "s3cret", `{"posted": true}`, http.StatusConflict},
	} {
		if rec := dtServe(t, e.d, http.MethodPost, tt.target, tt.token, tt.body); rec.Code != tt.code {
			t.Errorf("POST %s %s = %d %s, want %d", tt.target, tt.body, rec.Code, rec.Body, tt.code)
		}
	}
	rec = dtServe(t, e.d, http.MethodPost, target, "s3cret", `{"posted": true, "note": "jane: found in BMS"}`)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"posted": true`) {
		t.Fatalf("POST %s = %d %s, want 200", target, rec.Code, rec.Body)
	}
	if l, ok, err := e.d.State().LastSet(dtID(e.contracts[0]), dtID(e.services[0])); err != nil || !ok || l.After != 42 || l.IntentID != in.ID {
		t.Errorf("ledger after resolving as posted: %+v, %t, %v", l, ok, err)
	}
	if rec := dtServe(t, e.d, http.MethodPost, target, "s3cret", `{"posted": false}`); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "not open") {
		t.Errorf("resolving it again = %d %s, want 409", rec.Code, rec.Body)
	}
}
