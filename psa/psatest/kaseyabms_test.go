package psatest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// testClient has a transport of its own: the tests run in parallel, and
// every httptest.Server's Close closes http.DefaultTransport's idle
// connections, which can break another test's POST that had just taken one
// of them (such requests are not retried).
var testClient = &http.Client{Transport: &http.Transport{}}

// bmsCall sends a request to the simulator and decodes the JSON answer.
func bmsCall(t *testing.T, srv *psatest.Server, method, path, token string, body string, ct string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.KaseyaBMSBaseURL()+strings.TrimPrefix(path, "/"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ct == "" && body != "" {
		ct = "application/json"
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode, out
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

// bmsToken authenticates with the default credentials.
func bmsToken(t *testing.T, srv *psatest.Server) string {
	t.Helper()
	form := url.Values{"granttype": {"password"}, "USERNAME": {psatest.DefaultKaseyaBMSUsername},
		"password": {psatest.DefaultKaseyaBMSPassword}, "Tenant": {strings.ToLower(psatest.DefaultKaseyaBMSTenant)}}
	st, out := bmsCall(t, srv, http.MethodPost, "v2/security/authenticate", "", form.Encode(), "application/x-www-form-urlencoded")
	if st != 200 || out["success"] != true {
		t.Fatalf("authenticate = %d %v", st, out)
	}
	return as[string](t, as[map[string]any](t, out["result"])["accessToken"])
}

func startBMS(t *testing.T, opts ...psatest.Option) *psatest.Server {
	return psatest.Start(t, append([]psatest.Option{psatest.WithSystem(psa.SystemKaseyaBMS)}, opts...)...)
}

func TestKaseyaBMS_authenticate(t *testing.T) {
	t.Parallel()
	srv := startBMS(t)
	tok := bmsToken(t, srv) // case-insensitive keys, tenant case ignored
	st, out := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup", tok, "", "")
	if st != 200 || out["success"] != true {
		t.Errorf("lookup with token = %d %v", st, out)
	}
	// Multipart, as the document lists it.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"GrantType": "password", "UserName": psatest.DefaultKaseyaBMSUsername, "Password": psatest.DefaultKaseyaBMSPassword, "Tenant": psatest.DefaultKaseyaBMSTenant} {
		_ = mw.WriteField(k, v)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	if st, out := bmsCall(t, srv, http.MethodPost, "v2/security/authenticate", "", buf.String(), mw.FormDataContentType()); st != 200 || out["success"] != true {
		t.Errorf("multipart authenticate = %d %v", st, out)
	}
	for _, form := range []string{
		"GrantType=password&UserName=api%40msp.example&Password=nope&Tenant=Sim+MSP",
		"GrantType=client_credentials&UserName=api%40msp.example&Password=sim-password&Tenant=Sim+MSP",
		"GrantType=password&UserName=api%40msp.example&Password=sim-password&Tenant=Other",
	} {
		st, out := bmsCall(t, srv, http.MethodPost, "v2/security/authenticate", "", form, "application/x-www-form-urlencoded")
		if st != 200 || out["success"] != false || out["error"] == nil {
			t.Errorf("authenticate(%s) = %d %v, want a success:false envelope", form, st, out)
		}
	}
}

func TestKaseyaBMS_bearer(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := startBMS(t, psatest.WithClock(clock))
	for _, tok := range []string{"", "bogus"} {
		st, out := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup", tok, "", "")
		if st != http.StatusUnauthorized || out["success"] != false {
			t.Errorf("token %q: %d %v, want 401 with success:false", tok, st, out)
		}
	}
	tok := bmsToken(t, srv)
	mu.Lock()
	now = now.Add(psatest.DefaultKaseyaBMSTokenTTL)
	mu.Unlock()
	if st, _ := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup", tok, "", ""); st != http.StatusUnauthorized {
		t.Errorf("expired token: %d, want 401", st)
	}
	tok = bmsToken(t, srv)
	srv.KaseyaBMS().RevokeTokens()
	if st, _ := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup", tok, "", ""); st != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", st)
	}
}

func TestKaseyaBMS_refresh(t *testing.T) {
	t.Parallel()
	srv := startBMS(t)
	form := "GrantType=password&UserName=api%40msp.example&Password=sim-password&Tenant=Sim+MSP"
	_, out := bmsCall(t, srv, http.MethodPost, "v2/security/authenticate", "", form, "application/x-www-form-urlencoded")
	res := as[map[string]any](t, out["result"])
	refresh := url.Values{"AccessToken": {as[string](t, res["accessToken"])}, "RefreshToken": {as[string](t, res["refreshToken"])}}.Encode()
	st, out := bmsCall(t, srv, http.MethodPost, "v2/security/refreshtoken", "", refresh, "application/x-www-form-urlencoded")
	if st != 200 || out["success"] != true {
		t.Fatalf("refresh = %d %v", st, out)
	}
	if st, _ := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup", as[string](t, res["accessToken"]), "", ""); st != 401 {
		t.Errorf("the refreshed-away token still works: %d", st)
	}
	if _, out := bmsCall(t, srv, http.MethodPost, "v2/security/refreshtoken", "", refresh, "application/x-www-form-urlencoded"); out["success"] != false {
		t.Errorf("a refresh token works twice: %v", out)
	}
}

func TestKaseyaBMS_pagingAndFilters(t *testing.T) {
	t.Parallel()
	srv := startBMS(t)
	k := srv.KaseyaBMS()
	for i := range 5 {
		k.AddService(fmt.Sprintf("Svc %d", i), 1)
	}
	k.AddService("Other", 1)
	tok := bmsToken(t, srv)
	_, out := bmsCall(t, srv, http.MethodPost, "v2/admin/finance/services/search", tok, `{"pageSize":2,"pageNumber":3,"filter":{"name":"svc"}}`, "")
	if as[float64](t, out["totalRecords"]) != 5 || len(as[[]any](t, out["result"])) != 1 {
		t.Errorf("search page 3 = %v", out)
	}
	_, out = bmsCall(t, srv, http.MethodGet, "v2/admin/finance/services/lookup?Filter.Name=svc&PageSize=2&PageNumber=1", tok, "", "")
	if as[float64](t, out["totalRecords"]) != 5 || len(as[[]any](t, out["result"])) != 2 {
		t.Errorf("lookup page 1 = %v", out)
	}
	_, out = bmsCall(t, srv, http.MethodGet, "v2/admin/finance/services/lookup?Filter.Name=svc&PageSize=2&PageNumber=9", tok, "", "")
	if r := as[[]any](t, out["result"]); len(r) != 0 {
		t.Errorf("lookup beyond the end = %v, want an empty page", out)
	}
	acme := k.AddAccount("Acme")
	k.SetAccountActive(k.AddAccount("Acme Old"), false)
	_, out = bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup?Filter.Name=acme", tok, "", "")
	if len(as[[]any](t, out["result"])) != 1 || out["totalRecords"] != nil {
		t.Errorf("account lookup without inactive = %v", out)
	}
	_, out = bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup?Filter.Name=acme&Filter.WithInactiveAccounts=true", tok, "", "")
	if len(as[[]any](t, out["result"])) != 2 {
		t.Errorf("account lookup with inactive = %v", out)
	}
	_, out = bmsCall(t, srv, http.MethodGet, fmt.Sprintf("v2/crm/accounts/summary/%d", acme), tok, "", "")
	if out["accountName"] != "Acme" || out["success"] != nil {
		t.Errorf("account summary by id = %v, want the bare DTO", out)
	}
}

// TestKaseyaBMS_SetPaging checks the three ways the simulator reads
// PageNumber, on a GET listing and on a search: the first name on each page
// of two services per page.
func TestKaseyaBMS_SetPaging(t *testing.T) {
	t.Parallel()
	srv := startBMS(t)
	k := srv.KaseyaBMS()
	for i := range 5 {
		k.AddService(fmt.Sprintf("Svc %d", i), 1)
	}
	tok := bmsToken(t, srv)
	firstName := func(out map[string]any) string {
		r := as[[]any](t, out["result"])
		if len(r) == 0 {
			return ""
		}
		return as[string](t, as[map[string]any](t, r[0])["name"])
	}
	tests := []struct {
		paging psatest.KaseyaBMSPaging
		want   map[int]string // PageNumber → first name on the page
	}{
		{psatest.KaseyaBMSPagesFromOne, map[int]string{0: "Svc 0", 1: "Svc 0", 2: "Svc 2", 3: "Svc 4", 4: ""}},
		{psatest.KaseyaBMSPagesFromZero, map[int]string{0: "Svc 0", 1: "Svc 2", 2: "Svc 4", 3: ""}},
		{psatest.KaseyaBMSPageNumberIgnored, map[int]string{0: "Svc 0", 1: "Svc 0", 2: "Svc 0", 9: "Svc 0"}},
	}
	for _, tt := range tests {
		k.SetPaging(tt.paging)
		for n, want := range tt.want {
			_, out := bmsCall(t, srv, http.MethodGet, fmt.Sprintf("v2/admin/finance/services/lookup?PageSize=2&PageNumber=%d", n), tok, "", "")
			if got := firstName(out); got != want || as[float64](t, out["totalRecords"]) != 5 {
				t.Errorf("paging %d: lookup page %d starts with %q (total %v), want %q of 5", tt.paging, n, got, out["totalRecords"], want)
			}
			_, out = bmsCall(t, srv, http.MethodPost, "v2/admin/finance/services/search", tok, fmt.Sprintf(`{"pageSize":2,"pageNumber":%d}`, n), "")
			if got := firstName(out); got != want {
				t.Errorf("paging %d: search page %d starts with %q, want %q", tt.paging, n, got, want)
			}
		}
	}
}

func TestKaseyaBMS_contractsAndLines(t *testing.T) {
	t.Parallel()
	srv := startBMS(t)
	k := srv.KaseyaBMS()
	acme := k.AddAccount("Acme")
	svc := k.AddService("Sophos", 4.5)
	tok := bmsToken(t, srv)
	body := fmt.Sprintf(`{"ContractName":"Acme MS","AccountId":%d,"BillingCycleId":1,"StartDate":"2026-01-01T00:00:00Z","EndDate":"2026-12-31T00:00:00Z",
		"Services":[{"ServiceId":%d,"Units":10,"UnitPrice":4.5,"EffectiveDate":"2026-01-01T00:00:00Z"}]}`, acme, svc)
	_, out := bmsCall(t, srv, http.MethodPost, "v2/finance/contracts/recurringservices", tok, body, "")
	if out["success"] != true {
		t.Fatalf("create contract = %v", out)
	}
	contract := int(as[float64](t, as[map[string]any](t, out["result"])["id"]))
	_, out = bmsCall(t, srv, http.MethodPost, fmt.Sprintf("v2/finance/contracts/recurringservices/%d/services", contract), tok,
		fmt.Sprintf(`[{"serviceId":%d,"units":12,"unitPrice":4.5,"effectiveDate":"2026-11-01"}]`, svc), "")
	if out["success"] != true || as[float64](t, as[map[string]any](t, out["result"])["units"]) != 12 {
		t.Fatalf("add line = %v", out)
	}
	lines := k.ServiceLines(contract)
	if len(lines) != 2 || lines[1].Units != 12 {
		t.Fatalf("ServiceLines = %+v", lines)
	}
	if u, _ := k.Units(contract, svc, time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)); u != 10 {
		t.Errorf("units in October = %d, want 10", u)
	}
	if u, _ := k.Units(contract, svc, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); u != 12 {
		t.Errorf("units in November = %d, want 12", u)
	}
	for _, bad := range []string{
		`{"serviceId":1}`, // not an array
		fmt.Sprintf(`[{"serviceId":%d,"effectiveDate":"2026-11-01"}]`, svc),           // no units
		fmt.Sprintf(`[{"serviceId":%d,"units":1,"effectiveDate":"2027-02-01"}]`, svc), // outside the contract
		`[{"serviceId":999,"units":1,"effectiveDate":"2026-11-01"}]`,                  // unknown service
	} {
		if _, out := bmsCall(t, srv, http.MethodPost, fmt.Sprintf("v2/finance/contracts/recurringservices/%d/services", contract), tok, bad, ""); out["success"] != false {
			t.Errorf("add line %s = %v, want success:false", bad, out)
		}
	}
	_, out = bmsCall(t, srv, http.MethodPut, fmt.Sprintf("v2/finance/contracts/%d/deactivate", contract), tok, "", "")
	if as[map[string]any](t, out["result"])["statusName"] != "Inactive" {
		t.Errorf("deactivate = %v", out)
	}
	_, out = bmsCall(t, srv, http.MethodGet, fmt.Sprintf("v2/finance/contracts/lookup?AccountId=%d", acme), tok, "", "")
	if r := as[[]any](t, out["result"]); len(r) != 1 || as[map[string]any](t, r[0])["isActive"] != false {
		t.Errorf("lookup = %v", out)
	}
	_, out = bmsCall(t, srv, http.MethodGet, "v2/finance/contracts/summary?Filter.AccountName=acme", tok, "", "")
	if r := as[[]any](t, out["result"]); len(r) != 1 || as[map[string]any](t, r[0])["status"] != "Inactive" {
		t.Errorf("summary = %v", out)
	}
	if len(k.State().Lines) != 2 {
		t.Errorf("State().Lines = %v", k.State().Lines)
	}
}

func TestKaseyaBMS_hourlyLimit(t *testing.T) {
	t.Parallel()
	srv := startBMS(t, psatest.WithHourlyLimit(3))
	tok := bmsToken(t, srv) // counts against the authenticate endpoint only
	k := srv.KaseyaBMS()
	a := k.AddAccount("A")
	b := k.AddAccount("B")
	for i, id := range []int{a, b, a} {
		if st, _ := bmsCall(t, srv, http.MethodGet, fmt.Sprintf("v2/crm/accounts/summary/%d", id), tok, "", ""); st != 200 {
			t.Fatalf("call %d: %d", i, st)
		}
	}
	st, out := bmsCall(t, srv, http.MethodGet, fmt.Sprintf("v2/crm/accounts/summary/%d", b), tok, "", "")
	if st != http.StatusTooManyRequests || out["success"] != false {
		t.Errorf("fourth call = %d %v, want 429 with success:false", st, out)
	}
	if st, _ := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup", tok, "", ""); st != 200 {
		t.Errorf("another endpoint = %d, want 200", st)
	}
	if n := k.HourlyCount("/v2/crm/accounts/summary/{id}"); n != 3 {
		t.Errorf("HourlyCount = %d, want 3", n)
	}
}

func TestKaseyaBMS_faultsAndLog(t *testing.T) {
	t.Parallel()
	srv := startBMS(t)
	tok := bmsToken(t, srv)
	srv.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/v2/crm/*", Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Times: 1})
	if st, _ := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup", tok, "", ""); st != http.StatusServiceUnavailable {
		t.Errorf("faulted call = %d", st)
	}
	if st, _ := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/lookup", tok, "", ""); st != 200 {
		t.Errorf("after the fault = %d", st)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || reqs[1].Status != 503 || reqs[2].Path != "/v2/crm/accounts/lookup" {
		t.Errorf("request log = %+v", reqs)
	}
	if st, _ := bmsCall(t, srv, http.MethodGet, "v2/nothing/here", tok, "", ""); st != http.StatusNotFound {
		t.Errorf("unknown route = %d, want 404", st)
	}
}

func TestKaseyaBMS_stateEndpointAndFixture(t *testing.T) {
	t.Parallel()
	srv := startBMS(t, psatest.WithFixtureFile("testdata/kaseyabms.json"))
	resp, err := http.Get(srv.URL() + "/_sim/kaseyabms/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st psatest.KaseyaBMSState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Accounts) != 2 || len(st.Contracts) != 2 || len(st.Services) != 2 || len(st.Lines) != 1 || st.Lines[0].Units != 25 {
		t.Errorf("state = %+v", st)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("the inspection endpoint was logged (%d requests)", n)
	}
	if _, err := psatest.NewServerOn("127.0.0.1:0", psatest.WithSystem(psa.SystemKaseyaBMS), psatest.WithFixture(&psatest.Fixture{
		KaseyaBMS: &psatest.KaseyaBMSFixture{Contracts: []psatest.KaseyaBMSFixtureContract{{Name: "x", Account: "nobody"}}},
	})); err == nil || !strings.Contains(err.Error(), `unknown account "nobody"`) {
		t.Errorf("bad fixture error = %v", err)
	}
}

func TestKaseyaBMS_credentialsOption(t *testing.T) {
	t.Parallel()
	srv := startBMS(t, psatest.WithKaseyaBMSCredentials("u", "p", "T"))
	if u, p, tn := srv.KaseyaBMS().Credentials(); u != "u" || p != "p" || tn != "T" {
		t.Errorf("Credentials = %s %s %s", u, p, tn)
	}
	_, out := bmsCall(t, srv, http.MethodPost, "v2/security/authenticate", "", "GrantType=password&UserName=u&Password=p&Tenant=T", "application/x-www-form-urlencoded")
	if out["success"] != true {
		t.Errorf("authenticate = %v", out)
	}
}

func TestKaseyaBMS_pascalCase(t *testing.T) {
	t.Parallel()
	srv := startBMS(t)
	tok := bmsToken(t, srv)
	srv.KaseyaBMS().SetPascalCase(true)
	srv.KaseyaBMS().AddAccount("Acme")
	_, out := bmsCall(t, srv, http.MethodGet, "v2/crm/accounts/summary", tok, "", "")
	if out["Success"] != true || as[float64](t, out["TotalRecords"]) != 1 || as[map[string]any](t, as[[]any](t, out["Result"])[0])["AccountName"] != "Acme" {
		t.Errorf("PascalCase answer = %v", out)
	}
}

func TestKaseyaBMS_requestLogRedactsForms(t *testing.T) {
	t.Parallel()
	srv := startBMS(t)
	bmsToken(t, srv)
	resp, err := http.Get(srv.URL() + "/_sim/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if bytes.Contains(data, []byte(psatest.DefaultKaseyaBMSPassword)) || !bytes.Contains(data, []byte("REDACTED")) {
		t.Errorf("/_sim/requests = %s, want the password redacted", data)
	}
}
