package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
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

// TestHandler_reloadTakesTheRotatedToken: once the API token's file holds
// a new token (a rotated Kubernetes Secret, which the kubelet updates in
// the pod), POST /-/reload takes that token, the one the reload loads, as
// well as the running one: the pod's `psa-syncd reload -web.token-file`
// reads the new one, and was refused. Other endpoints take the running
// token only until the reload; after it, the new one only.
func TestHandler_reloadTakesTheRotatedToken(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "old-token-1"})
	tokenFile := filepath.Join(e.dir, "api-token")
	dtWrite(t, tokenFile, "old-token-1\n")
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.cfgPath, strings.Replace(string(cfg), `api_token: "old-token-1"`, "api_token_file: api-token", 1))
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	dtWrite(t, tokenFile, "new-token-2\n")
	for _, tok := range []string{"", "wrong-token", "new-token-"} {
		if rec := dtServe(t, e.d, http.MethodPost, "/-/reload", tok, ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("POST /-/reload with token %q = %d %s, want 401", tok, rec.Code, rec.Body)
		}
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "new-token-2", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/sync with the file's new token before the reload = %d %s, want 401", rec.Code, rec.Body)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/-/reload", "new-token-2", ""); rec.Code != http.StatusOK {
		t.Fatalf("POST /-/reload with the file's new token = %d %s, want 200", rec.Code, rec.Body)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "old-token-1", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/sync with the old token after the reload = %d %s, want 401", rec.Code, rec.Body)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "new-token-2", ""); rec.Code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync with the new token after the reload = %d %s, want 202", rec.Code, rec.Body)
	}
	// The running token reloads as before.
	if rec := dtServe(t, e.d, http.MethodPost, "/-/reload", "new-token-2", ""); rec.Code != http.StatusOK {
		t.Errorf("POST /-/reload with the running token = %d %s, want 200", rec.Code, rec.Body)
	}
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
	for _, target := range []string{"/api/v1/sync", "/-/reload", "/api/v1/check"} {
		rec := dtServe(t, e.d, http.MethodPost, target, "anything", "")
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "web.api_token") {
			t.Errorf("POST %s without a configured token = %d %s, want 403 naming web.api_token", target, rec.Code, rec.Body)
		}
	}
}

func TestHandler_reloadMethod(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		rec := dtServe(t, e.d, m, "/-/reload", dtToken, "")
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
	// cust-old is not in the export: its partial sync is history.
	for _, c := range []struct {
		target string
		want   string
	}{
		{"/api/v1/customers", "cust-acme=succeeded cust-globex=failed cust-old=removed"},
		{"/api/v1/customers?status=succeeded", "cust-acme=succeeded"},
		{"/api/v1/customers?status=failed", "cust-globex=failed"},
		{"/api/v1/customers?status=removed", "cust-old=removed"},
		{"/api/v1/customers?usage_sync=true", "cust-acme=succeeded cust-globex=failed"},
		{"/api/v1/customers?usage_sync=false", "cust-old=removed"},
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

// TestHandler_customersRemovedFromExport: a customer that failed and was
// then removed from the export is "removed", not failed, in GET
// /api/v1/customers (and so in psa-syncd status and on the status page):
// psa_sync_customers no longer counts it, so `status --failed`, which the
// PsaSyncCustomersFailing alert points to, must not list it either, with a
// hint to fix a mapping that is gone. Mapped again, its last status shows.
func TestHandler_customersRemovedFromExport(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := e.d.State().PutCustomerStatus(state.CustomerStatus{Source: "file", CustomerID: "cust-globex", UsageSync: true,
		Result: "failed", Error: "contract 9 not found", Hint: "fix the contract_id of the mapping", LastAttempt: now, Held: 1}); err != nil {
		t.Fatal(err)
	}
	get := func(target string) map[string]apiCustomer {
		t.Helper()
		rec := dtServe(t, e.d, http.MethodGet, target, "", "")
		var body struct {
			Customers []apiCustomer `json:"customers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); rec.Code != http.StatusOK || err != nil {
			t.Fatalf("GET %s = %d %s (%v)", target, rec.Code, rec.Body, err)
		}
		out := map[string]apiCustomer{}
		for _, c := range body.Customers {
			out[c.CustomerID] = c
		}
		return out
	}
	if c := get("/api/v1/customers?status=failed")["cust-globex"]; c.Status != "failed" || c.Hint == "" {
		t.Fatalf("mapped failed customer = %+v", c)
	}
	doc := e.doc.Clone()
	doc.DeleteCustomer("file", "cust-globex")
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := get("/api/v1/customers?status=failed"); len(got) != 0 {
		t.Errorf("GET /api/v1/customers?status=failed after the mapping was removed = %v, want none", got)
	}
	c, ok := get("/api/v1/customers")["cust-globex"]
	if !ok || c.Status != StatusRemoved || c.UsageSync || c.Hint != "" || c.Error != "contract 9 not found" {
		t.Errorf("removed customer = %+v (listed %t), want status removed, usage sync off, the last error and no hint", c, ok)
	}
	ui := newUIClient(t, e.d)
	page := ui.do(http.MethodGet, "/?filter=failed", nil).Body.String()
	if strings.Contains(page, `data-customer="cust-globex"`) {
		t.Errorf("the status page lists the removed customer as failed:\n%s", page)
	}
	// Signed in, its held line has no Review link: its page shows no
	// lines, and nothing of it can be approved.
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	if rec := ui.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in = %d %s", rec.Code, rec.Body)
	}
	page = ui.do(http.MethodGet, "/?filter="+StatusRemoved, nil).Body.String()
	if !strings.Contains(page, `data-customer="cust-globex" data-status="removed"`) || !strings.Contains(page, `id="sign-out"`) ||
		strings.Contains(page, `href="/customers/file/cust-globex">Review`) {
		t.Errorf("signed in, the Not in the export tab does not list the removed customer, or offers to review it:\n%s", page)
	}
	e.writeExport(t, e.doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := get("/api/v1/customers")["cust-globex"]; c.Status != "failed" || c.Hint == "" {
		t.Errorf("customer mapped again = %+v, want its last status and hint", c)
	}
}

// A customer whose usage sync was turned off after a failure keeps its
// last status, but the failed filters (API, status page tab) leave it out,
// as psa_sync_customers{status="failed"} does: the alert on that gauge
// points there.
func TestHandler_customersWithUsageSyncOff(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	doc := e.doc.Clone()
	for i, m := range doc.CustomerMappings {
		if m.CustomerID == "cust-globex" {
			doc.CustomerMappings[i].UsageSync = false
		}
	}
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, st := range []string{"failed", "held"} {
		if err := e.d.State().PutCustomerStatus(state.CustomerStatus{Source: "file", CustomerID: "cust-globex", UsageSync: true,
			Result: st, Error: "contract 9 not found", LastAttempt: now, Held: 1}); err != nil {
			t.Fatal(err)
		}
		for _, filter := range []string{st, "partial"} {
			rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers?status="+filter, "", "")
			if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "cust-globex") {
				t.Errorf("GET /api/v1/customers?status=%s with a %s customer whose usage sync is off = %d %s, want it left out", filter, st, rec.Code, rec.Body)
			}
		}
		rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers", "", "")
		if !strings.Contains(rec.Body.String(), `"status": "`+st+`"`) {
			t.Errorf("GET /api/v1/customers does not show the customer's last status %s: %s", st, rec.Body)
		}
		page := newUIClient(t, e.d).do(http.MethodGet, "/?filter="+st, nil).Body.String()
		if strings.Contains(page, `data-customer="cust-globex"`) {
			t.Errorf("the status page's %s tab lists the customer whose usage sync is off:\n%s", st, page)
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

// TestHandler_runsPages: GET /api/v1/runs stopped at 1,000 runs with no
// way to the older ones (an hourly schedule makes 1,000 in six weeks, and
// retention keeps more). Like GET /api/v1/ledger it now answers a page
// with a "next" link to the older runs, keeping the query's limit.
func TestHandler_runsPages(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	var ids []int64
	for range 5 {
		run, err := e.d.State().BeginRun(state.Run{Trigger: "schedule", Started: time.Now().UTC(), Result: "running"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]int64{run.ID}, ids...) // newest first
	}
	var got []int64
	target := "/api/v1/runs?limit=2"
	for pages := 0; target != ""; pages++ {
		if pages > 3 {
			t.Fatalf("more than 3 pages of 2 for 5 runs: %v", got)
		}
		rec := dtServe(t, e.d, http.MethodGet, target, "", "")
		var page struct {
			Runs []RunView `json:"runs"`
			Next string    `json:"next"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &page) != nil {
			t.Fatalf("GET %s = %d %s", target, rec.Code, rec.Body)
		}
		if len(page.Runs) > 2 || (page.Next != "" && !strings.Contains(page.Next, "limit=2")) {
			t.Errorf("GET %s: %d runs, next %q; want at most 2 and a next link with limit=2", target, len(page.Runs), page.Next)
		}
		for _, r := range page.Runs {
			got = append(got, r.ID)
		}
		target = page.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("runs read page by page = %v, want %v", got, ids)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/runs?before="+dtID(ids[1]), "", ""); !strings.Contains(rec.Body.String(), `"id": `+dtID(ids[2])) ||
		strings.Contains(rec.Body.String(), `"id": `+dtID(ids[1])) || strings.Contains(rec.Body.String(), `"next"`) {
		t.Errorf("GET /api/v1/runs?before=%d = %s; want the runs below it, and no next page", ids[1], rec.Body)
	}
	for _, v := range []string{"0", "-1", "x"} {
		if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/runs?before="+v, "", ""); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "before") {
			t.Errorf("GET /api/v1/runs?before=%s = %d %s, want 400 naming before", v, rec.Code, rec.Body)
		}
	}
}

// TestHandler_runs_unknownSyncRequestSaysWhy: a sync request id is known
// only to the process that queued it. A client still waiting for one after
// that process restarted, or after a failover to another instance (psa-syncd
// sync -web.url through a Service), got `run "q..." not found`, as if it had
// mistyped the id; the answer must say that the request was forgotten and
// where to look for its pass.
func TestHandler_runs_unknownSyncRequestSaysWhy(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/runs/q0badc0de-1", "", "")
	if body := rec.Body.String(); rec.Code != http.StatusNotFound || !strings.Contains(body, "q0badc0de-1") ||
		!strings.Contains(body, "restart") || !strings.Contains(body, "failover") || !strings.Contains(body, "GET /api/v1/runs") {
		t.Errorf("GET /api/v1/runs/q0badc0de-1 = %d %s; want 404 saying that a restart or failover forgets sync requests, and where their passes are", rec.Code, body)
	}
}

// An approval while the export switches the integration off is refused:
// the pass would be a dry run, and the caller would take the held line for
// written (the status page refuses it too). A pass without approval is a
// dry run and is queued.
func TestHandler_syncApproveWhileWritesOff(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken, disabled: true})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"customer":"cust-acme","approve":true,"service":%q,"units":2}`, dtID(e.services[0]))
	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, body)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "not approved: writes are off") {
		t.Errorf("POST /api/v1/sync with approve while writes are off = %d %s, want 409 saying so", rec.Code, rec.Body)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, `{"customer":"cust-acme"}`); rec.Code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync while writes are off = %d %s, want 202 (a dry run)", rec.Code, rec.Body)
	}
}

func TestHandler_syncNow(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, `{"customer":"nobody"}`); rec.Code != http.StatusNotFound {
		t.Errorf("sync of an unknown customer = %d, want 404", rec.Code)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, `{"customr":"x"}`); rec.Code != http.StatusBadRequest {
		t.Errorf("sync with a misspelt field = %d, want 400", rec.Code)
	}
	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, `{"customer":"cust-acme"}`)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/sync = %d %s, want 202", rec.Code, rec.Body)
	}
	var tk SyncTicket
	if err := json.Unmarshal(rec.Body.Bytes(), &tk); err != nil || tk.ID == "" || tk.Status != "queued" {
		t.Fatalf("202 body %s: %+v, %v", rec.Body, tk, err)
	}
	// A duplicate request while the first waits is coalesced.
	rec = dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, `{"customer":"cust-acme"}`)
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

// TestHandler_plan: GET /api/v1/plan shows the last pass's plan and makes
// no request to the PSA, however often it is asked (100 unauthenticated
// requests used to make 100 Autotask requests); a fresh plan needs the
// token and is rate-limited.
func TestHandler_plan(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := dtSetup(t, dtOptions{token: "s3cret", daemonOpts: Options{Now: clock}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	e.sim.ResetRequests()
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/plan", "", ""); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "no pass has run") {
		t.Errorf("GET /api/v1/plan before any pass = %d %s, want 404 saying no pass has run", rec.Code, rec.Body)
	}
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	e.sim.ResetRequests()
	for range 100 {
		for _, target := range []string{"/api/v1/plan", "/api/v1/plan?customer=cust-acme", "/api/v1/customers", "/api/v1/runs", "/api/v1/intents", "/metrics", "/-/ready"} {
			if rec := dtServe(t, e.d, http.MethodGet, target, "", ""); rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d %s", target, rec.Code, rec.Body)
			}
		}
	}
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("unauthenticated GET requests made %d PSA requests, want 0", n)
	}
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/plan", "", "")
	var p usage.Plan
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 3 || len(p.Unmapped.Customers) != 1 || len(p.Unmapped.Products) != 1 || len(p.Unmapped.Unassigned) != 1 || p.RunID == 0 {
		t.Errorf("plan: %d changes, %d unmapped customers, %d unmapped products, %d unassigned, run %d; want 3, 1, 1, 1 and the pass's run",
			len(p.Changes), len(p.Unmapped.Customers), len(p.Unmapped.Products), len(p.Unmapped.Unassigned), p.RunID)
	}
	rec = dtServe(t, e.d, http.MethodGet, "/api/v1/plan?customer=cust-globex", "", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || len(p.Changes) != 1 || p.Changes[0].CustomerID != "cust-globex" {
		t.Errorf("GET /api/v1/plan?customer=cust-globex = %s, want globex's one line", rec.Body)
	}

	// A body with a field of the sync request is refused, naming the
	// plan's own body (which has no approve).
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/plan", "s3cret", `{"customer": "cust-acme", "approve": true}`); rec.Code != http.StatusBadRequest ||
		!strings.Contains(rec.Body.String(), "customer") || strings.Contains(rec.Body.String(), "true|false") {
		t.Errorf("POST /api/v1/plan with approve = %d %s, want 400 naming the plan's body only", rec.Code, rec.Body)
	}

	// A fresh plan reads the PSA: it needs the token, and is rate-limited.
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/plan", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/plan without the token = %d, want 401", rec.Code)
	}
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("unauthenticated POST /api/v1/plan made %d PSA requests, want 0", n)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/plan", "s3cret", ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"changes"`) {
		t.Errorf("POST /api/v1/plan with the token = %d %s, want 200 and a plan", rec.Code, rec.Body)
	}
	if len(e.sim.Requests()) == 0 {
		t.Error("POST /api/v1/plan made no PSA request: it should compute a fresh plan")
	}
	rec = dtServe(t, e.d, http.MethodPost, "/api/v1/plan", "s3cret", `{"customer": "cust-acme"}`)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "31" {
		t.Errorf("second POST /api/v1/plan at once = %d (Retry-After %q) %s, want 429 with Retry-After 31", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	mu.Lock()
	now = now.Add(freshPlanInterval)
	mu.Unlock()
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/plan", "s3cret", `{"customer": "cust-acme"}`); rec.Code != http.StatusOK {
		t.Errorf("POST /api/v1/plan after the interval = %d %s, want 200", rec.Code, rec.Body)
	}
	if n := e.writes(); n != 0 {
		t.Errorf("plans sent %d writes", n)
	}
}

// TestHandler_unknownCustomer: a customer that is not in the export is 404,
// never a PSA request that ends as 502.
func TestHandler_unknownCustomer(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	e.sim.ResetRequests()
	for _, c := range []struct{ method, target, token, body string }{
		{http.MethodGet, "/api/v1/plan?customer=unknown", "", ""},
		{http.MethodPost, "/api/v1/plan", "s3cret", `{"customer": "unknown"}`},
		{http.MethodPost, "/api/v1/sync", "s3cret", `{"customer": "unknown"}`},
	} {
		rec := dtServe(t, e.d, c.method, c.target, c.token, c.body)
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `customer \"unknown\" is not in the mapping export`) {
			t.Errorf("%s %s %s = %d %s, want 404 naming the customer", c.method, c.target, c.body, rec.Code, rec.Body)
		}
	}
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("requests for an unknown customer made %d PSA requests", n)
	}
}

// TestHandler_strictBodies: a body is one JSON object with known fields;
// trailing data and null are not "sync all".
func TestHandler_strictBodies(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target, body string
		code         int
		want         string
	}{
		{"/api/v1/sync", `{"customer":""}{"x":1}`, http.StatusBadRequest, "unexpected data after the JSON object"},
		{"/api/v1/sync", `null`, http.StatusBadRequest, "must be a JSON object"},
		{"/api/v1/sync", `[]`, http.StatusBadRequest, "must be a JSON object"},
		// A field of a newer psa-syncd's command or standby (one at a time
		// in an HA upgrade) says so, not only "json: unknown field".
		{"/api/v1/sync", `{"customer": "cust-acme", "extra": 1}`, http.StatusBadRequest,
			`unknown field \"extra\": a misspelling, or sent by a newer psa-syncd command or standby (upgrade the psa-syncd serving this API to use it)`},
		{"/api/v1/tickets", `{"dry_run": true, "extra": 1}`, http.StatusBadRequest, `unknown field \"extra\": a misspelling, or sent by a newer psa-syncd`},
		{"/api/v1/sync", `{"customer": "` + strings.Repeat("x", maxRequestBody) + `"}`, http.StatusRequestEntityTooLarge, "larger than 65536 bytes"},
		{"/api/v1/plan", `{"customer":"cust-acme"} x`, http.StatusBadRequest, "unexpected data"},
		{"/api/v1/intents/1/resolve", `null`, http.StatusBadRequest, "must be a JSON object"},
		{"/api/v1/intents/1/resolve", `{"posted": true} {}`, http.StatusBadRequest, "unexpected data"},
	} {
		rec := dtServe(t, e.d, http.MethodPost, c.target, "s3cret", c.body)
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("POST %s %.40q = %d %s, want %d containing %q", c.target, c.body, rec.Code, rec.Body, c.code, c.want)
		}
	}
	if got := e.d.queue.active(); len(got) != 0 {
		t.Errorf("a refused body queued a pass: %+v", got)
	}
	// Whitespace alone is no body: sync all.
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "s3cret", " \n"); rec.Code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync with a blank body = %d %s, want 202", rec.Code, rec.Body)
	}
}

// TestHandler_concurrencyBound: with every API slot taken, a further API
// request is refused at once with 503 and Retry-After, counted in
// psa_sync_http_refused_total, while health checks and metrics still
// answer.
func TestHandler_concurrencyBound(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	for range maxConcurrentAPIRequests {
		e.d.apiSlots <- struct{}{}
	}
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers", "", "")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("GET /api/v1/customers with every slot taken = %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	wantRefused(t, e.d, map[string]float64{RefusedBusy: 1, RefusedWrongToken: 0})
	for _, target := range []string{"/-/healthy", "/metrics"} {
		if rec := dtServe(t, e.d, http.MethodGet, target, "", ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s with every API slot taken = %d, want 200", target, rec.Code)
		}
	}
	<-e.d.apiSlots
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers", "", ""); rec.Code != http.StatusOK {
		t.Errorf("GET /api/v1/customers with a slot free = %d, want 200", rec.Code)
	}
}

// TestHandler_slotsKeptForTheToken: requests without the API token took
// the API slots as the operator's did, before their token was looked at;
// a scanner, a job retrying, or clients reading their answers slowly held
// all of them, and the operator's sync (and check, reload, a standby's
// status page) got 503 "too many API requests". Requests without the token
// now hold at most maxConcurrentAPIRequests-tokenAPISlots; a wrong token
// is answered 401 without a slot, and is counted when it asks for one of
// the kept slots.
func TestHandler_slotsKeptForTheToken(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	h := e.d.Handler()
	release := make(chan struct{})
	outcomes := make(chan int, maxConcurrentAPIRequests)
	var wg sync.WaitGroup
	for range maxConcurrentAPIRequests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &dtSlowReader{ResponseRecorder: httptest.NewRecorder(), reading: outcomes, release: release}
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/customers", nil))
			if !w.read {
				outcomes <- w.Code
			}
		}()
	}
	defer wg.Wait()
	defer close(release)
	held := 0
	for range maxConcurrentAPIRequests {
		switch code := <-outcomes; code {
		case http.StatusOK:
			held++
		case http.StatusServiceUnavailable:
		default:
			t.Fatalf("GET /api/v1/customers without the token = %d, want 200 or 503", code)
		}
	}
	if want := maxConcurrentAPIRequests - tokenAPISlots; held != want {
		t.Errorf("requests without the token holding a slot: %d, want %d", held, want)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "s3cret", `{"customer":"cust-acme"}`); rec.Code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync with the token while requests without it hold their slots = %d %s, want 202", rec.Code, rec.Body)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers", "s3cret", ""); rec.Code != http.StatusOK {
		t.Errorf("GET /api/v1/customers with the token = %d %s, want 200", rec.Code, rec.Body)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers", "", ""); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("GET /api/v1/customers without the token = %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", "wrong", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/sync with a wrong token = %d %s, want 401", rec.Code, rec.Body)
	}
	// Trying tokens on a read-only endpoint for one of the kept slots is
	// throttled like trying them on the API's token check.
	for range maxWrongTokens {
		if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers", "wrong", ""); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("GET /api/v1/customers with a wrong token = %d, want 503", rec.Code)
		}
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/customers", "s3cret", ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /api/v1/customers with the token after %d wrong ones = %d, want 503: its address's token checks are refused", maxWrongTokens, rec.Code)
	}
}

// With basic_auth_users the listener lets through only the passwords of
// its users: a reader's (one whose password is not the API token) is no
// guess at the token. Sent on a read while the open slots are full, or to
// a mutating endpoint, it is refused, but not counted as a wrong token:
// the reader's address, which the token's user may share, is not refused.
func TestHandler_basicReaderNotThrottled(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	e.d.webConfigFile = filepath.Join(t.TempDir(), "web-config.yml")
	dtWrite(t, e.d.webConfigFile, fmt.Sprintf("basic_auth_users:\n  grafana: %s\n  automation: %s\n",
		bcryptHash(t, "reader-password"), bcryptHash(t, "s3cret")))
	h := e.d.Handler()
	serve := func(method, target, auth string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), method, target, nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	release := make(chan struct{})
	outcomes := make(chan int, maxConcurrentAPIRequests)
	var wg sync.WaitGroup
	for range maxConcurrentAPIRequests - tokenAPISlots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &dtSlowReader{ResponseRecorder: httptest.NewRecorder(), reading: outcomes, release: release}
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/customers", nil))
			if !w.read {
				outcomes <- w.Code
			}
		}()
	}
	defer wg.Wait()
	defer close(release)
	for range maxConcurrentAPIRequests - tokenAPISlots {
		if code := <-outcomes; code != http.StatusOK {
			t.Fatalf("GET /api/v1/customers filling the open slots = %d, want 200", code)
		}
	}
	reader := basicAuth("grafana", "reader-password")
	for range 2 * maxWrongTokens {
		if rec := serve(http.MethodGet, "/api/v1/customers", reader); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("GET /api/v1/customers as the reader while the open slots are full = %d %s, want 503", rec.Code, rec.Body)
		}
		if rec := serve(http.MethodPost, "/-/reload", reader); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "not the API token") {
			t.Fatalf("POST /-/reload as the reader = %d %s, want 401 saying the password is not the API token", rec.Code, rec.Body)
		}
	}
	token := basicAuth("automation", "s3cret")
	if rec := serve(http.MethodGet, "/api/v1/customers", token); rec.Code != http.StatusOK {
		t.Errorf("GET /api/v1/customers with the token from the reader's address = %d %s, want 200: the reader's passwords are no wrong tokens", rec.Code, rec.Body)
	}
	if rec := serve(http.MethodPost, "/-/reload", token); rec.Code != http.StatusOK {
		t.Errorf("POST /-/reload with the token from the reader's address = %d %s, want 200", rec.Code, rec.Body)
	}
}

// dtSlowReader is a client that reads its answer slowly: the handler's
// first write of a 200 blocks until release is closed, and reports on
// reading that the request holds its slot.
type dtSlowReader struct {
	*httptest.ResponseRecorder
	reading chan<- int
	release <-chan struct{}
	read    bool
}

func (w *dtSlowReader) Write(p []byte) (int, error) {
	if !w.read && w.Code == http.StatusOK {
		w.read = true
		w.reading <- http.StatusOK
		<-w.release
	}
	return w.ResponseRecorder.Write(p)
}

// TestServer_timeouts: a client that sends its body one byte at a time, or
// keeps an idle connection open, is disconnected by the server (only the
// header timeout was set, and such connections were held forever). The
// timeouts are shortened for the test; the test's own deadline is only a
// bound on how long it waits for the server to act.
func TestServer_timeouts(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	e.d.httpTimeouts = httpTimeouts{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond, write: time.Second, idle: 300 * time.Millisecond}
	srv := e.d.newHTTPServer()
	if srv.MaxHeaderBytes != maxHeaderBytes {
		t.Errorf("MaxHeaderBytes = %d, want %d", srv.MaxHeaderBytes, maxHeaderBytes)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	closed := func(conn net.Conn, trickle bool) bool {
		t.Helper()
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		done := make(chan struct{})
		if trickle {
			go func() {
				for {
					select {
					case <-done:
						return
					case <-time.After(20 * time.Millisecond):
					}
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}()
		}
		defer close(done)
		_, err := io.Copy(io.Discard, conn) // returns when the server closes
		var ne net.Error
		return !errors.As(err, &ne) || !ne.Timeout()
	}

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(slow, "POST /api/v1/sync HTTP/1.1\r\nHost: psa-syncd\r\nAuthorization: Bearer s3cret\r\nContent-Length: 200000\r\n\r\n")
	if !closed(slow, true) {
		t.Error("a connection sending its body a byte at a time was still open after 20s")
	}

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(idle, "GET /-/healthy HTTP/1.1\r\nHost: psa-syncd\r\n\r\n")
	if !closed(idle, false) {
		t.Error("an idle kept-alive connection was still open after 20s")
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
		`psa_sync_api_budget_remaining{endpoint="",system="autotask"}`,
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
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil {
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
	// A state database that fails is the server's error, not a conflict.
	if err := e.d.State().Close(); err != nil {
		t.Fatal(err)
	}
	if rec := dtServe(t, e.d, http.MethodPost, target, "s3cret", `{"posted": false}`); rec.Code != http.StatusInternalServerError {
		t.Errorf("resolving with the state database closed = %d %s, want 500", rec.Code, rec.Body)
	}
}

// TestHandler_planAfterRestart: the last pass's plan is kept in the state
// database, so that after a restart GET /api/v1/plan shows it at once,
// still without a request to the PSA.
func TestHandler_planAfterRestart(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, e.cfgPath, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	e.sim.ResetRequests()
	rec := dtServe(t, d, http.MethodGet, "/api/v1/plan", "", "")
	var p usage.Plan
	if err := json.Unmarshal(rec.Body.Bytes(), &p); rec.Code != http.StatusOK || err != nil || len(p.Changes) != 3 || p.RunID == 0 {
		t.Errorf("GET /api/v1/plan after a restart = %d %s, want the last pass's 3 changes", rec.Code, rec.Body)
	}
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("GET /api/v1/plan after a restart made %d PSA requests, want 0", n)
	}
}

// TestHandler_crossSiteBrowserPost: with basic_auth_users in the web config
// file the API token is a basic password, and a browser that signed in to
// the listener with it sends those credentials with any request to it, a
// form another site submits included; a <form enctype="text/plain"> can
// spell a JSON body. The token's endpoints refuse what a browser sent on
// another site's behalf, and serve clients that are not browsers, and a
// browser on psa-syncd's own origin, as before.
func TestHandler_crossSiteBrowserPost(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	in, err := e.d.State().OpenIntent(state.Intent{RunID: 7, System: "kaseya_bms", Source: "file", CustomerID: "cust-acme",
		ContractID: dtID(e.contracts[0]), ServiceID: dtID(e.services[0]), After: 42, EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	resolve := "/api/v1/intents/" + strconv.FormatInt(in.ID, 10) + "/resolve"
	serve := func(method, target, body string, header ...string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
		req.SetBasicAuth("automation", "s3cret")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		e.d.Handler().ServeHTTP(rec, req)
		return rec
	}
	// What Chromium sends for
	//   <form method=post enctype=text/plain action=https://psa-syncd.example/api/v1/intents/1/resolve>
	//     <input name='{"posted":false,"note":"' value='"}'>
	// submitted from https://evil.example, with the listener's basic
	// credentials cached for psa-syncd's origin; and what a browser that
	// sends no Sec-Fetch-Site sends.
	textForm := `{"posted":false,"note":"="}` + "\r\n"
	crossSite := []string{"Content-Type", "text/plain", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"}
	oldBrowser := []string{"Content-Type", "text/plain", "Origin", "https://evil.example"}
	for _, tt := range []struct {
		method, target, body string
		header               []string
	}{
		{http.MethodPost, resolve, textForm, crossSite},
		{http.MethodPost, resolve, textForm, oldBrowser},
		{http.MethodPost, resolve, textForm, []string{"Sec-Fetch-Site", "same-site"}},
		{http.MethodPost, "/api/v1/sync", `{"customer":"cust-acme","approve":true,"customer":"cust-acme"}`, crossSite},
		{http.MethodPost, "/api/v1/tickets", "", crossSite},
		{http.MethodPost, "/api/v1/check", "", crossSite},
		{http.MethodPost, "/-/reload", "", crossSite},
		{http.MethodPut, "/api/v1/export", "{}", crossSite},
	} {
		rec := serve(tt.method, tt.target, tt.body, tt.header...)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "cross-origin request refused") {
			t.Errorf("%s %s from another site (%v) with the basic credentials = %d %s; want 403 refusing a cross-origin request",
				tt.method, tt.target, tt.header, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	}
	if open, err := e.d.OpenIntents(); err != nil || len(open) != 1 {
		t.Fatalf("after the refused requests the open intents are %+v, %v; want intent %d still open", open, err, in.ID)
	}
	if got := e.d.queue.active(); len(got) != 0 {
		t.Errorf("a refused request queued %+v", got)
	}
	// Reading needs no protection: a GET is answered whoever sent it.
	if rec := serve(http.MethodGet, "/api/v1/intents", "", crossSite...); rec.Code != http.StatusOK {
		t.Errorf("GET /api/v1/intents from another site = %d %s; want 200", rec.Code, rec.Body)
	}
	// A browser on psa-syncd's own origin gets through.
	if rec := serve(http.MethodPost, "/api/v1/sync", "", "Origin", "http://example.com", "Sec-Fetch-Site", "same-origin"); rec.Code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync from psa-syncd's own origin = %d %s; want 202", rec.Code, rec.Body)
	}
	if rec := serve(http.MethodPost, "/api/v1/sync", "", "Origin", "http://example.com"); rec.Code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync with an Origin that is the request's host = %d %s; want 202", rec.Code, rec.Body)
	}
	// A client that is not a browser (curl -u automation:$TOKEN) sends
	// neither header, and gets through.
	if rec := serve(http.MethodPost, resolve, `{"posted": false, "note": "jane: not in BMS"}`, "Content-Type", "application/json"); rec.Code != http.StatusOK {
		t.Errorf("POST %s from curl with the basic credentials = %d %s; want 200", resolve, rec.Code, rec.Body)
	}
}

// TestHandler_resolveDuringPass: an intent's answer waits for a running
// pass to end, but only as long as its request lives: an answer whose
// client gave up (psa-syncd resolve -web.url waits 30 s) is not recorded
// after the pass, where the operator, told it failed, would find the
// intent closed (and a line "not posted" posted again); a client still
// there is told so, with 503 and Retry-After.
func TestHandler_resolveDuringPass(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	in, err := e.d.State().OpenIntent(state.Intent{RunID: 7, System: "kaseya_bms", Source: "file", CustomerID: "cust-acme",
		ContractID: dtID(e.contracts[0]), ServiceID: dtID(e.services[0]), After: 42, EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	target := "/api/v1/intents/" + strconv.FormatInt(in.ID, 10) + "/resolve"
	const answer = `{"posted": false, "note": "jane: not in BMS"}`
	srv := httptest.NewServer(e.d.Handler())
	t.Cleanup(srv.Close)

	e.d.passMu.Lock() // a pass is running
	// The client gives up.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+target, strings.NewReader(answer))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, clientErr := (&http.Client{Timeout: 300 * time.Millisecond}).Do(req)
	if clientErr == nil {
		resp.Body.Close()
		t.Errorf("POST %s while a pass runs answered %s before the pass ended", target, resp.Status)
	}
	// The client waits, and the server stops waiting first.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(answer))
	r.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	served := make(chan struct{})
	go func() { e.d.Handler().ServeHTTP(rec, r); close(served) }()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		e.d.passMu.Unlock()
		<-served
		t.Fatalf("POST %s while a pass runs, given up after 300 ms, still waited 5 s later; after the pass it answered %d %s", target, rec.Code, rec.Body)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "nothing was recorded") {
		t.Errorf("POST %s while a pass runs, given up = %d (Retry-After %q) %s; want 503 saying nothing was recorded",
			target, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	e.d.passMu.Unlock() // the pass ends
	time.Sleep(200 * time.Millisecond)
	if open, err := e.d.OpenIntents(); err != nil || len(open) != 1 {
		t.Fatalf("after the pass the open intents are %+v, %v: an answer whose request ended while the pass ran was recorded", open, err)
	}
	// With no pass running the answer is recorded at once.
	if rec := dtServe(t, e.d, http.MethodPost, target, "s3cret", answer); rec.Code != http.StatusOK {
		t.Errorf("POST %s after the pass = %d %s; want 200", target, rec.Code, rec.Body)
	}
}

// dtGate passes requests to the simulator; armed, it holds the first
// request whose path contains match until release is closed.
type dtGate struct {
	sim     *psatest.Server
	match   string
	armed   atomic.Bool
	held    chan struct{}
	release chan struct{}
}

func (g *dtGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, g.match) && g.armed.CompareAndSwap(true, false) {
		close(g.held)
		<-g.release
	}
	g.sim.Handler().ServeHTTP(w, r)
}

// TestHandler_freshPlanKeepsNewerPass: POST /api/v1/plan computes a plan
// outside the pass lock. A pass that ends while it reads the PSA recorded
// a plan read later than the fresh one: the fresh plan must not replace it,
// or GET /api/v1/plan and the status page ("What the last pass found")
// would show the lines the pass just wrote as still to be updated, with no
// run id.
func TestHandler_freshPlanKeepsNewerPass(t *testing.T) {
	t.Parallel()
	// The current units of the lines.
	g := &dtGate{match: "ContractServiceUnits", held: make(chan struct{}), release: make(chan struct{})}
	front := httptest.NewServer(g)
	t.Cleanup(front.Close)
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	e := dtSetup(t, dtOptions{token: "s3cret", baseURL: func(s *psatest.Server) string { g.sim = s; return front.URL + "/ATServicesRest/" }})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	// A dry run first: the backend has found its zone.
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(true)
	fresh := make(chan *httptest.ResponseRecorder, 1)
	go func() { fresh <- dtServe(t, e.d, http.MethodPost, "/api/v1/plan", "s3cret", "") }()
	<-g.held // the fresh plan reads the lines' units, and the usage meanwhile
	// Acme's usage grows by one seat before the pass (the fresh plan reads
	// the old file or the new one: dtWrite renames).
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,11", 1))
	res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerSchedule})
	if err != nil || res.Run.Updated == 0 {
		t.Fatalf("pass: %+v, %v; want lines updated", res, err)
	}
	close(g.release)
	if rec := <-fresh; rec.Code != http.StatusOK {
		t.Fatalf("POST /api/v1/plan = %d %s", rec.Code, rec.Body)
	}
	check := func(d *Daemon) {
		t.Helper()
		rec := dtServe(t, d, http.MethodGet, "/api/v1/plan", "", "")
		var got usage.Plan
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("GET /api/v1/plan = %d %s", rec.Code, rec.Body)
		}
		if got.RunID != res.Run.ID {
			t.Errorf("after pass %d, GET /api/v1/plan shows the plan of run %d (computed at %s): the fresh plan, read before the pass, replaced the pass's",
				res.Run.ID, got.RunID, got.ComputedAt)
		}
		for _, c := range got.Changes {
			if c.CustomerID == "cust-acme" && c.ServiceID == dtID(e.services[0]) && c.Desired != 12 {
				t.Errorf("after pass %d set Acme's line to 12 (units now %d), the last plan shows it %s to %d", res.Run.ID, e.units(0, 0), c.Action, c.Desired)
			}
		}
	}
	check(e.d)
	// The plan kept in the state database, after a restart.
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	d := dtSecondInstance(t, e, nil)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	check(d)
}

// TestSyncRequest_APIBody: the CLI's and a standby's POST /api/v1/sync
// send only the fields a request sets, so that a plain sync request is also
// taken by an older psa-syncd, which refuses fields it does not know (the
// active instance of an HA pair during an upgrade); and the API takes every
// body it makes.
func TestSyncRequest_APIBody(t *testing.T) {
	t.Parallel()
	units := int64(2)
	for _, tt := range []struct {
		req  SyncRequest
		want string
	}{
		{SyncRequest{}, `{}`},
		{SyncRequest{Customer: "cust-acme"}, `{"customer":"cust-acme"}`},
		{SyncRequest{Customer: "cust-acme", Approve: true}, `{"approve":true,"customer":"cust-acme"}`},
		{SyncRequest{Customer: "cust-acme", Approve: true, Service: "30000000", Units: &units}, `{"approve":true,"customer":"cust-acme","service":"30000000","units":2}`},
	} {
		got, err := json.Marshal(tt.req.APIBody())
		if err != nil || string(got) != tt.want {
			t.Errorf("%+v.APIBody() = %s, %v; want %s", tt.req, got, err, tt.want)
		}
	}
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(SyncRequest{Customer: "cust-acme", Approve: true, Service: dtID(e.services[0]), Units: &units}.APIBody())
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, string(body)); rec.Code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync %s = %d %s, want 202", body, rec.Code, rec.Body)
	}
}

// TestHandler_unknownQueryParameters: the read endpoints' filters are
// query parameters. One this psa-syncd does not have (a newer command's
// filter, a misspelling) is refused naming it, not ignored: a newer
// psa-syncd ledger -web.url would otherwise print every entry as the
// filtered ones.
func TestHandler_unknownQueryParameters(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{
		"/api/v1/customers?status=failed&product=x",
		"/api/v1/ledger?customer=cust-acme&product=x",
		"/api/v1/runs?limit=5&product=x",
		"/api/v1/plan?customer=cust-acme&product=x",
		"/api/v1/export/history?limit=5&product=x",
		// The endpoints that take no parameter refuse one too: a filter
		// added to one later would otherwise be ignored by this one.
		"/api/v1/intents?product=x",
		"/api/v1/unmapped?product=x",
		"/api/v1/export?product=x",
		"/api/v1/runs/1?product=x",
		"/api/v1/runs/sync-1?product=x",
	} {
		rec := dtServe(t, e.d, http.MethodGet, target, "", "")
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `unknown query parameter \"product\" (want `) ||
			!strings.Contains(rec.Body.String(), "a misspelling, or sent by a newer psa-syncd command (upgrade the psa-syncd serving this API to use it)") {
			t.Errorf("GET %s = %d %s, want 400 naming the parameter", target, rec.Code, rec.Body)
		}
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/backup?product=x", dtToken, ""); rec.Code != http.StatusBadRequest ||
		!strings.Contains(rec.Body.String(), `unknown query parameter \"product\" (want none)`) {
		t.Errorf("GET /api/v1/backup?product=x = %d %s, want 400 naming the parameter", rec.Code, rec.Body)
	}
	for _, target := range []string{"/api/v1/customers?status=failed&usage_sync=true", "/api/v1/ledger?customer=cust-acme&contract=1&service=2&period=2026-12&limit=5", "/api/v1/runs?limit=5",
		"/api/v1/intents", "/api/v1/unmapped", "/api/v1/export"} {
		if rec := dtServe(t, e.d, http.MethodGet, target, "", ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", target, rec.Code, rec.Body)
		}
	}
}
