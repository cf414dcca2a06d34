package sophostest_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
)

type result struct {
	status int
	header http.Header
	body   map[string]any
}

// testClient has a transport of its own: the tests run in parallel, and
// each simulator's Close closes http.DefaultTransport's idle connections,
// which failed another test's DELETE or POST that had just taken one of
// them ("transport connection broken: http: CloseIdleConnections called";
// such requests are not retried).
var testClient = &http.Client{Transport: &http.Transport{}}

func do(t *testing.T, method, u string, header map[string]string, body io.Reader) result {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &r.body); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, u, data, err)
		}
	}
	return r
}

// as returns v, a value decoded from JSON, as a T; it fails the test when v
// is something else.
func as[T any](t *testing.T, v any) T {
	t.Helper()
	x, ok := v.(T)
	if !ok {
		t.Fatalf("got %T %v, want %T", v, v, x)
	}
	return x
}

func auth(tok, partner string) map[string]string {
	h := map[string]string{"Authorization": "Bearer " + tok}
	if partner != "" {
		h["X-Partner-ID"] = partner
	}
	return h
}

func TestServer_apiAuth(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t)
	tok := token(t, sim)
	u := sim.URL() + "/partner/v1/tenants"
	tests := []struct {
		name   string
		header map[string]string
		status int
		errStr string
	}{
		{"no token", map[string]string{"X-Partner-ID": sim.PartnerID()}, 401, "Unauthorized"},
		{"unknown token", auth("forged", sim.PartnerID()), 401, "Unauthorized"},
		{"no partner header", auth(tok, ""), 400, "BadRequest"},
		{"partner not a uuid", auth(tok, "partner-1"), 400, "BadRequest"},
		{"other partner", auth(tok, "00000000-0000-4000-8000-000000000009"), 403, "Forbidden"},
		{"ok", auth(tok, strings.ToUpper(sim.PartnerID())), 200, ""},
	}
	for _, tc := range tests {
		r := do(t, "GET", u, tc.header, nil)
		if r.status != tc.status || (tc.errStr != "" && r.body["error"] != tc.errStr) {
			t.Errorf("%s: status %d body %v, want %d %s", tc.name, r.status, r.body, tc.status, tc.errStr)
		}
	}
	// whoami needs a token but no partner header.
	if r := do(t, "GET", sim.URL()+"/whoami/v1", auth(tok, ""), nil); r.status != 200 || r.body["id"] != sim.PartnerID() || r.body["idType"] != "partner" {
		t.Errorf("whoami = %d %v", r.status, r.body)
	}
	if r := do(t, "GET", sim.URL()+"/whoami/v1", nil, nil); r.status != 401 {
		t.Errorf("whoami without token = %d", r.status)
	}
}

func TestServer_tokenEndpoint(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t, sophostest.WithCredentials("id-1", "secret-1"))
	form := func(kv ...string) io.Reader {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return strings.NewReader(v.Encode())
	}
	formCT := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	tests := []struct {
		name   string
		header map[string]string
		body   io.Reader
		status int
		code   string
	}{
		{"wrong secret", formCT, form("grant_type", "client_credentials", "client_id", "id-1", "client_secret", "x", "scope", "token"), 401, "oauth.invalid_client_secret"},
		{"unknown client", formCT, form("grant_type", "client_credentials", "client_id", "id-2", "client_secret", "secret-1"), 401, "oauth.client_app_does_not_exist"},
		{"missing secret", formCT, form("grant_type", "client_credentials", "client_id", "id-1"), 400, "oauth.invalid_request"},
		{"bad grant", formCT, form("grant_type", "password", "client_id", "id-1", "client_secret", "secret-1"), 400, "oauth.unsupported_grant_type"},
		{"bad scope", formCT, form("grant_type", "client_credentials", "client_id", "id-1", "client_secret", "secret-1", "scope", "all"), 400, "oauth.invalid_scope"},
		{"not a form", map[string]string{"Content-Type": "text/plain"}, strings.NewReader("hi"), 400, "oauth.invalid_request"},
		{"ok", formCT, form("grant_type", "client_credentials", "client_id", "id-1", "client_secret", "secret-1", "scope", "token"), 200, "success"},
	}
	var refresh string
	for _, tc := range tests {
		r := do(t, "POST", sim.AuthURL(), tc.header, tc.body)
		if r.status != tc.status || r.body["errorCode"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
		if tc.status == 200 {
			refresh, _ = r.body["refresh_token"].(string)
		}
	}
	// The collection's "Refresh token" request: a JSON body.
	body := `{"client_id":"id-1","client_secret":"secret-1","grant_type":"refresh_token","refresh_token":"` + refresh + `"}`
	r := do(t, "POST", sim.AuthURL(), map[string]string{"Content-Type": "application/json"}, strings.NewReader(body))
	if r.status != 200 || r.body["access_token"] == "" {
		t.Errorf("refresh: %d %v", r.status, r.body)
	}
	r = do(t, "POST", sim.AuthURL(), map[string]string{"Content-Type": "application/json"}, strings.NewReader(body))
	if r.status != 401 {
		t.Errorf("refresh token reused: %d %v, want 401", r.status, r.body)
	}
	if r := do(t, "GET", sim.AuthURL(), nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET token endpoint = %d, want 405", r.status)
	}
}

func TestServer_tokenExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clock := &now
	sim := sophostest.Start(t, sophostest.WithTokenLifetime(10*time.Minute), sophostest.WithClock(func() time.Time { return *clock }))
	tok := token10(t, sim)
	if r := do(t, "GET", sim.URL()+"/whoami/v1", auth(tok, ""), nil); r.status != 200 {
		t.Fatalf("whoami = %d", r.status)
	}
	later := now.Add(10 * time.Minute)
	clock = &later
	if r := do(t, "GET", sim.URL()+"/whoami/v1", auth(tok, ""), nil); r.status != 401 {
		t.Errorf("whoami with an expired token = %d, want 401", r.status)
	}
}

// token10 is token() for a simulator whose tokens last ten minutes.
func token10(t *testing.T, sim *sophostest.Server) string {
	t.Helper()
	r := do(t, "POST", sim.AuthURL(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "client_id": {sim.ClientID()}, "client_secret": {sim.ClientSecret()}}.Encode()))
	if r.status != 200 || r.body["expires_in"] != float64(600) {
		t.Fatalf("token: %d %v", r.status, r.body)
	}
	return as[string](t, r.body["access_token"])
}

func TestServer_usagePagingAndFilters(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t, sophostest.WithFixtureFile("testdata/fixture.json"))
	h := auth(token(t, sim), sim.PartnerID())
	base := sim.URL() + "/partner/v1/billing/usage/2026/10"
	var keys []string
	n := 0
	q := "?pageSize=4&pageTotal=true"
	for i := 0; i < 5; i++ {
		r := do(t, "GET", base+q, h, nil)
		if r.status != 200 {
			t.Fatalf("page %d: %d %v", i, r.status, r.body)
		}
		n += len(as[[]any](t, r.body["items"]))
		pages := as[map[string]any](t, r.body["pages"])
		if i == 0 && (pages["total"] != float64(2) || pages["items"] != float64(6) || pages["maxSize"] != float64(1000)) {
			t.Errorf("first pages block = %v", pages)
		}
		next, _ := pages["nextKey"].(string)
		if next == "" {
			break
		}
		keys = append(keys, next)
		q = "?pageSize=4&pageFromKey=" + url.QueryEscape(next)
	}
	if n != 6 || len(keys) != 1 {
		t.Errorf("read %d items over %d next keys, want 6 over 1", n, len(keys))
	}
	// Months are numeric and unpadded or padded alike; the 2026-10 key does
	// not page 2026-09.
	if r := do(t, "GET", sim.URL()+"/partner/v1/billing/usage/2026/09?pageFromKey="+keys[0], h, nil); r.status != 404 {
		t.Errorf("month without data = %d, want 404", r.status)
	}
	for _, bad := range []string{"?pageFromKey=nonsense", "?pageSize=0", "?pageTotal=maybe"} {
		if r := do(t, "GET", base+bad, h, nil); r.status != 400 || r.body["error"] != "BadRequest" {
			t.Errorf("%s: %d %v, want 400", bad, r.status, r.body)
		}
	}
	for _, bad := range []string{"2026/13", "2026/0", "year/10"} {
		if r := do(t, "GET", sim.URL()+"/partner/v1/billing/usage/"+bad, h, nil); r.status != 400 {
			t.Errorf("%s: %d, want 400", bad, r.status)
		}
	}
	r := do(t, "GET", base+"?accountId=2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a&fields=productCode,billableQuantity", h, nil)
	items := as[[]any](t, r.body["items"])
	if len(items) != 2 || len(as[map[string]any](t, items[0])) != 2 || as[map[string]any](t, items[0])["productCode"] != "CIXA-MSP" {
		t.Errorf("filtered items = %v", items)
	}
	// Filled-in fields.
	r = do(t, "GET", base+"?pageSize=1", h, nil)
	it := as[map[string]any](t, as[[]any](t, r.body["items"])[0])
	if it["partnerAccountId"] != sim.PartnerID() || it["billingStartDate"] != "2026-10-01" || it["billingEndDate"] != "2026-10-31" || it["accountStatus"] != "active" {
		t.Errorf("served item = %v", it)
	}
}

func TestServer_tenantsPaging(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t, sophostest.WithFixtureFile("testdata/fixture.json"))
	h := auth(token(t, sim), sim.PartnerID())
	r := do(t, "GET", sim.URL()+"/partner/v1/tenants?page=2&pageSize=2&pageTotal=true", h, nil)
	items := as[[]any](t, r.body["items"])
	pages := as[map[string]any](t, r.body["pages"])
	if len(items) != 1 || as[map[string]any](t, items[0])["name"] != "Initech (trial)" || pages["current"] != float64(2) || pages["total"] != float64(2) || pages["items"] != float64(3) {
		t.Errorf("page 2 = %v", r.body)
	}
	r = do(t, "GET", sim.URL()+"/partner/v1/tenants", h, nil)
	if _, ok := as[map[string]any](t, r.body["pages"])["total"]; ok {
		t.Errorf("pages.total sent without pageTotal=true: %v", r.body["pages"])
	}
	if r := do(t, "GET", sim.URL()+"/partner/v1/tenants/00000000-0000-4000-8000-000000000000", h, nil); r.status != 404 {
		t.Errorf("unknown tenant = %d", r.status)
	}
}

func TestServer_faults(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t, sophostest.WithFault(sophostest.Fault{Method: "get", Path: "/WHOAMI/*", Status: 429, RetryAfter: 1500 * time.Millisecond, Times: 1}))
	h := auth(token(t, sim), "")
	r := do(t, "GET", sim.URL()+"/whoami/v1", h, nil)
	if r.status != 429 || r.header.Get("Retry-After") != "2" || r.body["error"] != "TooManyRequests" {
		t.Errorf("fault = %d %v %v", r.status, r.header, r.body)
	}
	if r := do(t, "GET", sim.URL()+"/whoami/v1", h, nil); r.status != 200 {
		t.Errorf("after Times ran out = %d", r.status)
	}
	sim.AddFault(sophostest.Fault{Path: "/whoami/v1", Drop: true, Times: 1})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", sim.URL()+"/whoami/v1", nil)
	// A fresh connection, so the transport cannot retry on a reused one.
	if resp, err := (&http.Transport{DisableKeepAlives: true}).RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Errorf("dropped request got %d", resp.StatusCode)
	}
	sim.AddFault(sophostest.Fault{Path: "/whoami/v1", Status: 503, Body: `{"custom": true}`, Times: 1})
	if r := do(t, "GET", sim.URL()+"/whoami/v1", h, nil); r.status != 503 || r.body["custom"] != true {
		t.Errorf("custom body fault = %d %v", r.status, r.body)
	}
	sim.AddFault(sophostest.Fault{Path: "/whoami/v1", Latency: time.Millisecond, Times: 1})
	if r := do(t, "GET", sim.URL()+"/whoami/v1", h, nil); r.status != 200 {
		t.Errorf("latency-only fault = %d", r.status)
	}
	reqs := sim.Requests()
	statuses := []int{}
	for _, r := range reqs {
		if r.Path == "/whoami/v1" {
			statuses = append(statuses, r.Status)
		}
	}
	if want := []int{429, 200, 0, 503, 200}; len(statuses) != len(want) || statuses[0] != 429 || statuses[2] != 0 || statuses[3] != 503 || statuses[4] != 200 {
		t.Errorf("logged statuses = %v, want %v", statuses, want)
	}
	if n := sim.CountRequests("GET", "/whoami/*"); n != 5 {
		t.Errorf("CountRequests = %d", n)
	}
	sim.ResetRequests()
	if len(sim.Requests()) != 0 {
		t.Error("ResetRequests left requests")
	}
}

func TestNewServerOn(t *testing.T) {
	t.Parallel()
	sim, err := sophostest.NewServerOn("127.0.0.1:0", sophostest.WithFixtureFile("testdata/fixture.json"), sophostest.WithFault(sophostest.Fault{Status: 500}))
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if !strings.HasPrefix(sim.URL(), "http://127.0.0.1:") || sim.AuthURL() != sim.URL()+"/api/v2/oauth2/token" || sim.APIURL() != sim.URL()+"/" {
		t.Errorf("URLs %s %s %s", sim.URL(), sim.AuthURL(), sim.APIURL())
	}
	r := do(t, "GET", sim.URL()+"/_sim/sophos/state", nil, nil)
	if r.status != 200 || len(as[[]any](t, r.body["tenants"])) != 3 || r.body["partner_id"] != sim.PartnerID() {
		t.Errorf("state = %d %v", r.status, r.body)
	}
	if r := do(t, "GET", sim.URL()+"/whoami/v1", nil, nil); r.status != 500 {
		t.Errorf("faulted whoami = %d, want 500", r.status)
	}
	if _, err := sophostest.NewServerOn("127.0.0.1:0", sophostest.WithFixtureFile("testdata/nope.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewServerOn with a missing fixture: %v", err)
	}
	if _, err := sophostest.NewServerOn("0.0.0.0:0"); err == nil || err.Error() != `sophostest: listen address "0.0.0.0:0" is not a loopback address` {
		t.Errorf("NewServerOn on all interfaces: %v", err)
	}
}

func TestLoadFixture(t *testing.T) {
	t.Parallel()
	f, err := sophostest.LoadFixture("testdata/fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tenants) != 3 || len(f.Usage["2026-10"]) != 6 {
		t.Errorf("fixture = %d tenants, %d usage rows", len(f.Tenants), len(f.Usage["2026-10"]))
	}
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{`{"tenant": []}`, `json: unknown field "tenant"`},
		{`{"usage": {"October": []}}`, `usage: month "October" is not YYYY-MM, CURRENT-MONTH or PREVIOUS-MONTH`},
		{`{"tenants": [{"name": "x"}]}`, `tenants[0]: id is required`},
		{`{"tenants": [{"id": "a", "name": "x"}, {"id": "a", "name": "y"}]}`, `tenants[1]: id a appears twice`},
	} {
		p := filepath.Join(dir, "f.json")
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := sophostest.LoadFixture(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadFixture(%s) = %v, want %s", tc.content, err, tc.want)
		}
	}
}

func TestServer_stateAccessors(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t)
	p := source.Period{Year: 2026, Month: time.November}
	if _, ok := sim.Usage(p); ok {
		t.Error("month exists before SetUsage")
	}
	sim.AddUsage(p, sophostest.UsageItem{AccountID: "a", ProductCode: "P", BillableQuantity: 1})
	sim.AddUsage(p, sophostest.UsageItem{AccountID: "a", ProductCode: "P", BillableQuantity: 2})
	if items, ok := sim.Usage(p); !ok || len(items) != 2 {
		t.Errorf("Usage = %v, %v", items, ok)
	}
	sim.SetUsage(p, nil)
	h := auth(token(t, sim), sim.PartnerID())
	if r := do(t, "GET", sim.URL()+"/partner/v1/billing/usage/2026/11", h, nil); r.status != 200 || len(as[[]any](t, r.body["items"])) != 0 {
		t.Errorf("empty month = %d %v", r.status, r.body)
	}
	sim.DeleteUsage(p)
	if r := do(t, "GET", sim.URL()+"/partner/v1/billing/usage/2026/11", h, nil); r.status != 404 {
		t.Errorf("deleted month = %d", r.status)
	}
	sim.AddTenant(sophostest.Tenant{ID: "t1", Name: "One"})
	sim.AddTenant(sophostest.Tenant{ID: "t1", Name: "Uno"})
	if ts := sim.Tenants(); len(ts) != 1 || ts[0].Name != "Uno" {
		t.Errorf("Tenants = %v", ts)
	}
	sim.RemoveTenant("t1")
	if len(sim.Tenants()) != 0 {
		t.Error("RemoveTenant left the tenant")
	}
	sim.SetCredentials("new-id", "new-secret")
	if sim.ClientID() != "new-id" || sim.ClientSecret() != "new-secret" {
		t.Error("SetCredentials did not take")
	}
	if f := sim.Fixture(); f.ClientID != "new-id" {
		t.Errorf("Fixture = %+v", f)
	}
}

// The inspection endpoint resolves an alert as ResolveAlert does.
func TestServer_resolveAlertEndpoint(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t)
	sim.AddTenant(sophostest.Tenant{ID: "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b", Name: "Acme"})
	a := sim.AddAlert("718b6047-2fbc-b4f4-1a43-45ee42bf5d3b", sophostest.Alert{Severity: "high"})
	url := sim.URL() + "/_sim/sophos/alerts/718b6047-2fbc-b4f4-1a43-45ee42bf5d3b/" + a.ID
	if r := do(t, "DELETE", url, nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE %s = %d, want 204", url, r.status)
	}
	if n := len(sim.Alerts("718b6047-2fbc-b4f4-1a43-45ee42bf5d3b")); n != 0 {
		t.Errorf("%d open alerts after resolving, want 0", n)
	}
	if r := do(t, "DELETE", url, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("second DELETE = %d, want 404", r.status)
	}
}

// TestFixture_relativeMonths serves a fixture's CURRENT-MONTH and
// PREVIOUS-MONTH usage under the months the simulator's clock gives, also
// when WithClock comes after the fixture, and lets an absolute month win.
func TestFixture_relativeMonths(t *testing.T) {
	t.Parallel()
	f, err := sophostest.ParseFixture([]byte(`{"usage": {
		"CURRENT-MONTH": [{"accountId": "a", "productCode": "CIXA-MSP", "billableQuantity": 3}],
		"PREVIOUS-MONTH": [{"accountId": "a", "productCode": "CIXA-MSP", "billableQuantity": 2}],
		"2026-11": [{"accountId": "a", "productCode": "CIXA-MSP", "billableQuantity": 9}]
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  time.Time
		want map[string]float64
	}{
		{time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC), map[string]float64{"2027-01": 3, "2026-12": 2, "2026-11": 9}},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), map[string]float64{"2026-12": 3, "2026-11": 9}},
	} {
		sim := sophostest.Start(t, sophostest.WithFixture(f), sophostest.WithClock(func() time.Time { return tc.now }))
		got := map[string]float64{}
		for m, items := range sim.Fixture().Usage {
			for _, it := range items {
				got[m] += it.BillableQuantity
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("at %s: usage by month = %v, want %v", tc.now.Format(time.DateOnly), got, tc.want)
		}
	}
}
