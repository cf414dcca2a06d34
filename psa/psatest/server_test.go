package psatest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// testClient has a transport of its own: the tests run in parallel, and
// every httptest.Server's Close closes http.DefaultTransport's idle
// connections, which can break another test's POST that had just taken one
// of them (such requests are not retried).
var testClient = &http.Client{Transport: &http.Transport{}}

// testNow is the fixed clock most tests use: mid-November 2026.
var testNow = time.Date(2026, time.November, 15, 10, 30, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow }

// newTestServer starts a server with the fixed clock.
func newTestServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	return Start(t, append([]Option{WithClock(fixedClock)}, opts...)...)
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return string(r.body) }

// errorsOf decodes an {"errors":[...]} body.
func (r response) errors(t *testing.T) []string {
	t.Helper()
	var env struct {
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("body %s is not an errors[] envelope (%v)", r.body, err)
	}
	return env.Errors
}

// message decodes an ASP.NET {"Message":"..."} body.
func (r response) message(t *testing.T) string {
	t.Helper()
	var env struct {
		Message string `json:"Message"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || env.Message == "" {
		t.Fatalf("body %s is not a {\"Message\":...} envelope (%v)", r.body, err)
	}
	return env.Message
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// authHeaders returns the default credential headers.
func authHeaders() http.Header {
	h := http.Header{}
	h.Set("UserName", DefaultAutotaskUsername)
	h.Set("Secret", DefaultAutotaskSecret)
	h.Set("ApiIntegrationCode", DefaultAutotaskIntegrationCode)
	return h
}

// send makes a request to the server at path (relative to URL()) with the
// given headers; it fails the test on transport errors.
func send(t *testing.T, s *Server, method, path, body string, h http.Header) response {
	t.Helper()
	resp, err := trySend(s, method, path, body, h)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func trySend(s *Server, method, path, body string, h http.Header) (response, error) {
	target := path
	if !strings.HasPrefix(path, "http") {
		target = s.URL() + path
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := testClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// api sends an authenticated request to the Autotask API; path is relative
// to the zone root's V1.0/.
func api(t *testing.T, s *Server, method, path, body string) response {
	t.Helper()
	return send(t, s, method, "/ATServicesRest/V1.0/"+path, body, authHeaders())
}

// serveAPI is api through s's handler, with no connection: for a synctest
// bubble, whose goroutines must not wait on the network.
func serveAPI(s *Server, method, path, body string) response {
	req := httptest.NewRequest(method, "/ATServicesRest/V1.0/"+path, strings.NewReader(body))
	for k, v := range authHeaders() {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

func TestServer_requestLog(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	api(t, s, http.MethodPost, "Companies/query", `{"filter":[]}`)
	api(t, s, http.MethodGet, "Companies/query?search=x", "")
	send(t, s, http.MethodGet, "/_sim/requests", "", nil) // not logged

	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("Requests() has %d entries, want 2: %+v", len(reqs), reqs)
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/ATServicesRest/V1.0/Companies/query" || string(r.Body) != `{"filter":[]}` || r.Status != http.StatusOK {
		t.Errorf("Requests()[0] = %+v", r)
	}
	if r.Header.Get("ApiIntegrationCode") != DefaultAutotaskIntegrationCode || r.Time != testNow {
		t.Errorf("Requests()[0] header/time = %v %v", r.Header, r.Time)
	}
	if reqs[1].RawQuery != "search=x" || reqs[1].Status != http.StatusInternalServerError {
		t.Errorf("Requests()[1] = %+v, want the bad search logged with status 500", reqs[1])
	}
	s.ResetRequests()
	if n := len(s.Requests()); n != 0 {
		t.Errorf("after ResetRequests, %d entries", n)
	}
}

func TestServer_faultStatus(t *testing.T) {
	t.Parallel()
	s := newTestServer(t,
		WithFault(Fault{Method: "post", Path: "/atservicesrest/v1.0/companies/query", Status: http.StatusServiceUnavailable, RetryAfter: 1500 * time.Millisecond, Times: 2}),
		WithFault(Fault{Path: "/ATServicesRest/V1.0/Services*", Status: http.StatusTooManyRequests, Body: `{"errors":["custom"]}`}),
	)
	for i := range 2 {
		r := api(t, s, http.MethodPost, "Companies/query", `{"filter":[]}`)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "2" {
			t.Fatalf("request %d: %d Retry-After %q, want 503 with Retry-After 2", i, r.status, r.header.Get("Retry-After"))
		}
		if e := r.errors(t); !strings.Contains(e[0], "503") {
			t.Errorf("default fault body %v does not name the status", e)
		}
	}
	if r := api(t, s, http.MethodPost, "Companies/query", `{"filter":[]}`); r.status != http.StatusOK {
		t.Errorf("after Times ran out: %d %s, want 200", r.status, r)
	}
	if r := api(t, s, http.MethodGet, "Companies/query", ""); r.status != http.StatusInternalServerError {
		t.Errorf("GET is not matched by a POST fault: got %d, want the handler's 500", r.status)
	}
	r := api(t, s, http.MethodGet, "services/1", "")
	if r.status != http.StatusTooManyRequests || string(r.body) != `{"errors":["custom"]}` {
		t.Errorf("prefix fault: %d %s", r.status, r)
	}
	if reqs := s.Requests(); reqs[len(reqs)-1].Status != http.StatusTooManyRequests {
		t.Errorf("fault status not logged: %+v", reqs[len(reqs)-1])
	}
}

func TestServer_faultRetryAfterPassThrough(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.AddFault(Fault{Path: "/ATServicesRest/V1.0/ThresholdInformation", RetryAfter: 3 * time.Second, Times: 1})
	r := api(t, s, http.MethodGet, "ThresholdInformation", "")
	if r.status != http.StatusOK || r.header.Get("Retry-After") != "3" {
		t.Errorf("pass-through fault: %d Retry-After %q, want 200 with Retry-After 3", r.status, r.header.Get("Retry-After"))
	}
	s.AddFault(Fault{Status: http.StatusBadGateway})
	s.ClearFaults()
	if r := api(t, s, http.MethodGet, "ThresholdInformation", ""); r.status != http.StatusOK || r.header.Get("Retry-After") != "" {
		t.Errorf("after ClearFaults: %d %v", r.status, r.header)
	}
}

func TestServer_faultLatency(t *testing.T) {
	t.Parallel()
	const d = 30 * time.Millisecond
	s := newTestServer(t, WithLatency(d))
	s.AddFault(Fault{Path: "/ATServicesRest/V1.0/Companies/query", Latency: d, Times: 1})
	start := time.Now()
	api(t, s, http.MethodGet, "ThresholdInformation", "")
	if el := time.Since(start); el < d {
		t.Errorf("WithLatency: request took %v, want at least %v", el, d)
	}
	start = time.Now()
	if r := api(t, s, http.MethodPost, "Companies/query", `{"filter":[]}`); r.status != http.StatusOK {
		t.Fatalf("latency fault: %d %s", r.status, r)
	}
	if el := time.Since(start); el < 2*d {
		t.Errorf("fault latency: request took %v, want at least %v", el, 2*d)
	}
}

func TestServer_faultDrop(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	body := `{"name":"Dropped","unitPrice":1,"periodType":1,"billingCodeID":29682800}`
	s.AddFault(Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Services", Drop: true, Times: 1})
	if _, err := trySend(s, http.MethodPost, "/ATServicesRest/V1.0/Services", body, authHeaders()); err == nil {
		t.Fatal("Drop: the request succeeded, want a connection error")
	}
	if n := len(s.Autotask().Services()); n != 0 {
		t.Errorf("Drop: %d services exist, want the request not handled", n)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || !reqs[0].Dropped || reqs[0].Status != 0 {
		t.Errorf("Drop: log %+v, want one dropped request with status 0", reqs)
	}
}

func TestServer_faultDropAfterHandling(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	body := `{"name":"Lost response","unitPrice":1,"periodType":1,"billingCodeID":29682800}`
	s.AddFault(Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Services", DropAfterHandling: true, Times: 1})
	if _, err := trySend(s, http.MethodPost, "/ATServicesRest/V1.0/Services", body, authHeaders()); err == nil {
		t.Fatal("DropAfterHandling: the request succeeded, want a connection error")
	}
	svcs := s.Autotask().Services()
	if len(svcs) != 1 || svcs[0].Name != "Lost response" {
		t.Errorf("DropAfterHandling: services %+v, want the create applied", svcs)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || !reqs[0].Dropped || reqs[0].Status != http.StatusOK {
		t.Errorf("DropAfterHandling: log %+v, want one dropped request with the handler's status", reqs)
	}
	// The fault is used up: the next create answers normally.
	if r := api(t, s, http.MethodPost, "Services", strings.Replace(body, "Lost response", "Next", 1)); r.status != http.StatusOK {
		t.Errorf("after the fault: %d %s", r.status, r)
	}
}

// BodyContains picks one request among several on one path: only the
// create whose body carries the string is faulted.
func TestServer_faultBodyContains(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.AddFault(Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Services", BodyContains: `"name":"Second"`,
		Status: http.StatusServiceUnavailable, Times: 1})
	if r := api(t, s, http.MethodPost, "Services", `{"name":"First","unitPrice":1,"periodType":1,"billingCodeID":29682800}`); r.status != http.StatusOK {
		t.Errorf("a request without the string: %d %s, want it handled", r.status, r)
	}
	if r := api(t, s, http.MethodPost, "Services", `{"name":"Second","unitPrice":1,"periodType":1,"billingCodeID":29682800}`); r.status != http.StatusServiceUnavailable {
		t.Errorf("the request with the string: %d %s, want the fault's 503", r.status, r)
	}
	if svcs := s.Autotask().Services(); len(svcs) != 1 || svcs[0].Name != "First" {
		t.Errorf("services %+v, want only the first created", svcs)
	}
}

func TestServer_closeReleasesLatency(t *testing.T) {
	t.Parallel()
	s := NewServer(WithClock(fixedClock))
	entered := make(chan struct{})
	s.autotask.holdHook = func(string) { close(entered) }
	s.AddFault(Fault{Latency: time.Hour})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Whether it gets an answer or Close cuts the connection does not
		// matter, only that the request returns.
		_, _ = trySend(s, http.MethodGet, "/ATServicesRest/V1.0/ThresholdInformation", "", authHeaders())
	}()
	<-entered
	s.Close() // must not wait an hour
	<-done
}

func TestServer_simEndpoints(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	at := s.Autotask()
	co := at.AddCompany("Acme")
	k := at.AddContract(AutotaskContract{CompanyID: co, Name: "Managed"})
	svc := at.AddService("AV", 3)
	at.SetUnits(k, svc, 7, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	api(t, s, http.MethodGet, "Companies/174", "")

	var st AutotaskState
	r := send(t, s, http.MethodGet, "/_sim/autotask/state", "", nil)
	r.decode(t, &st)
	if len(st.Lines) != 1 || st.Lines[0].CurrentUnits == nil || *st.Lines[0].CurrentUnits != 7 {
		t.Errorf("state lines = %+v, want one line with 7 current units", st.Lines)
	}
	if len(st.Companies) != 1 || st.HourlyCount != 1 || st.HourlyLimit != DefaultHourlyLimit {
		t.Errorf("state = %+v", st)
	}

	r = send(t, s, http.MethodGet, "/_sim/requests", "", nil)
	if strings.Contains(r.String(), DefaultAutotaskSecret) || strings.Contains(r.String(), DefaultAutotaskIntegrationCode) {
		t.Errorf("/_sim/requests leaks credentials: %s", r)
	}
	var log struct {
		Requests []simRequest `json:"requests"`
	}
	r.decode(t, &log)
	if len(log.Requests) != 1 || log.Requests[0].Path != "/ATServicesRest/V1.0/Companies/174" {
		t.Errorf("/_sim/requests = %+v", log.Requests)
	}
	if r := send(t, s, http.MethodPost, "/_sim/requests", "", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /_sim/requests = %d, want 405", r.status)
	}
	if r := send(t, s, http.MethodGet, "/_sim/nothing", "", nil); r.status != http.StatusNotFound {
		t.Errorf("GET /_sim/nothing = %d, want 404", r.status)
	}
	if r := send(t, s, http.MethodGet, "/other", "", nil); r.status != http.StatusNotFound {
		t.Errorf("GET /other = %d, want 404", r.status)
	}
}

func TestNewServerOn(t *testing.T) {
	t.Parallel()
	s, err := NewServerOn("127.0.0.1:0", WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q", s.URL())
	}
	if r := api(t, s, http.MethodGet, "ThresholdInformation", ""); r.status != http.StatusOK {
		t.Errorf("ThresholdInformation: %d %s", r.status, r)
	}
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:80", "example.com:80", "nonsense"} {
		if _, err := NewServerOn(addr); err == nil {
			t.Errorf("NewServerOn(%q) succeeded, want a refusal", addr)
		}
	}
	if _, err := NewServerOn("127.0.0.1:0", WithFixtureFile("testdata/missing.json")); err == nil {
		t.Error("NewServerOn with a missing fixture succeeded")
	}
}

func TestServer_Handler(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	other := httptest.NewServer(s.Handler())
	defer other.Close()
	req, _ := http.NewRequest(http.MethodGet, other.URL+"/atservicesrest/v1.0/zoneInformation?user=api@msp.example", nil)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var zone struct{ URL string }
	if err := json.NewDecoder(resp.Body).Decode(&zone); err != nil {
		t.Fatal(err)
	}
	if zone.URL != other.URL+"/ATServicesRest/" {
		t.Errorf("zone url through Handler = %q, want the serving host's zone root", zone.URL)
	}
}

func TestNewServer_panicsOnBadOption(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("NewServer with a missing fixture file did not panic")
		}
	}()
	s := NewServer(WithFixtureFile("testdata/missing.json"))
	s.Close()
}

func TestNewServer_options(t *testing.T) {
	t.Parallel()
	if _, err := newServer([]Option{WithHourlyLimit(0)}); err == nil {
		t.Error("WithHourlyLimit(0) accepted")
	}
	if _, err := newServer([]Option{WithSystem("nope")}); err == nil {
		t.Error("an unknown system accepted")
	}
	s := newTestServer(t, WithAutotaskCredentials("u@x", "s", "c"))
	if u, sec, c := s.Autotask().Credentials(); u != "u@x" || sec != "s" || c != "c" {
		t.Errorf("Credentials() = %q %q %q", u, sec, c)
	}
	if s.System() != "autotask" || s.AutotaskBaseURL() != s.URL()+"/ATServicesRest/" ||
		s.AutotaskZoneLookupURL() != s.URL()+"/atservicesrest/v1.0/zoneInformation" {
		t.Errorf("URLs: %q %q", s.AutotaskBaseURL(), s.AutotaskZoneLookupURL())
	}
}

func TestLoadFixture(t *testing.T) {
	t.Parallel()
	f, err := LoadFixture("testdata/autotask.json")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, WithFixture(f), WithFixture(&Fixture{Autotask: &AutotaskFixture{
		Companies: []FixtureCompany{{Name: "Extra"}},
	}}))
	at := s.Autotask()
	cos := at.Companies()
	if len(cos) != 4 || cos[0].ID != 174 || cos[0].Name != "Acme Corporation" || cos[2].Active || cos[3].Name != "Extra" {
		t.Errorf("Companies() = %+v", cos)
	}
	ks := at.Contracts()
	if len(ks) != 4 || ks[0].ID != 29684000 || ks[0].CompanyID != 174 || ks[1].Type != "Time & Materials" || ks[3].Status != "Inactive" {
		t.Errorf("Contracts() = %+v", ks)
	}
	svcs := at.Services()
	if len(svcs) != 4 || svcs[0].ID != 30000000 || svcs[0].UnitPrice != 4.5 || svcs[0].BillingCodeID != 29682800 || svcs[3].Active {
		t.Errorf("Services() = %+v", svcs)
	}
	if bcs := at.BillingCodes(); len(bcs) != 3 || bcs[1].Active || bcs[2].UseType != "Material" {
		t.Errorf("BillingCodes() = %+v", bcs)
	}
	if u, ok := at.Units(29684000, 30000000, testNow); !ok || u != 25 {
		t.Errorf("Acme AV units = %d %v, want 25", u, ok)
	}
	if u, ok := at.Units(29684002, 30000000, time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC)); !ok || u != 40 {
		t.Errorf("Globex AV units = %d %v, want 40", u, ok)
	}
	if _, ok := at.Units(29684002, 30000000, time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)); ok {
		t.Error("units reported before the Globex contract starts")
	}
	for _, cs := range at.ContractServices() {
		if cs.ServiceID == 30000001 && cs.UnitPrice != 50 {
			t.Errorf("firewall line price = %v, want the fixture's 50", cs.UnitPrice)
		}
	}
	if u, sec, c := at.Credentials(); u != "api@msp.example" || sec != "sim-secret" || c != "SIMCODE" {
		t.Errorf("Credentials() = %q %q %q", u, sec, c)
	}
}

func TestLoadFixture_explicitIDs(t *testing.T) {
	t.Parallel()
	f, err := ParseFixture([]byte(`{"autotask":{
		"companies":[{"id":500,"name":"Acme"}],
		"contracts":[{"id":29684183,"name":"Managed","companyID":500,"startDate":"2026-01-01","endDate":"2026-12-31"}],
		"services":[{"id":30000012,"name":"AV","unitPrice":2}],
		"contractServices":[{"contractID":29684183,"serviceID":30000012,"units":3,"from":"2026-06-01"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, WithFixture(f))
	at := s.Autotask()
	if u, ok := at.Units(29684183, 30000012, date(2026, 6, 1)); !ok || u != 3 {
		t.Errorf("units from June = %d %v, want 3", u, ok)
	}
	if u, _ := at.Units(29684183, 30000012, date(2026, 5, 31)); u != 0 {
		t.Errorf("units in May = %d, want 0", u)
	}
	// Ids given in a fixture are never allocated again.
	if id := at.AddCompany("Next"); id != 501 {
		t.Errorf("next company id = %d, want 501", id)
	}
	if id := at.AddContract(AutotaskContract{CompanyID: 500, Name: "Next"}); id != 29684184 {
		t.Errorf("next contract id = %d, want 29684184", id)
	}
	if id := at.AddService("Next", 1); id != 30000013 {
		t.Errorf("next service id = %d, want 30000013", id)
	}
}

func TestLoadFixture_errors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, json, want string
	}{
		{"unknown field", `{"autotask":{"companies":[{"name":"A","colour":"red"}]}}`, "unknown field"},
		{"bad company type", `{"autotask":{"companies":[{"name":"A","type":"Friend"}]}}`, `"Friend" is not a Companies.companyType`},
		{"unknown company", `{"autotask":{"contracts":[{"name":"K","company":"Nobody"}]}}`, `unknown company "Nobody"`},
		{"bad date", `{"autotask":{"companies":[{"name":"A"}],"contracts":[{"name":"K","company":"A","startDate":"soon"}]}}`, "startDate"},
		{"bad period", `{"autotask":{"services":[{"name":"S","unitPrice":1,"periodType":"Daily"}]}}`, "periodType"},
		{"unknown service", `{"autotask":{"companies":[{"name":"A"}],"contracts":[{"name":"K","company":"A"}],"contractServices":[{"contract":"K","service":"S","units":1}]}}`, `unknown service "S"`},
		{"negative units", `{"autotask":{"companies":[{"name":"A"}],"contracts":[{"name":"K","company":"A"}],"services":[{"name":"S","unitPrice":1}],"contractServices":[{"contract":"K","service":"S","units":-1}]}}`, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(tt.json), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewServerOn("127.0.0.1:0", WithFixtureFile(path))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := LoadFixture(filepath.Join(dir, "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFixture(missing) = %v, want fs.ErrNotExist", err)
	}
}

// TestServer_concurrentUse exercises the server from many goroutines; run it
// with -race.
func TestServer_concurrentUse(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, WithThreadLimit(100))
	at := s.Autotask()
	k := at.AddContract(AutotaskContract{CompanyID: at.AddCompany("A"), Name: "K"})
	svc := at.AddService("S", 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r := api(t, s, http.MethodPost, "ContractServiceAdjustments",
				`{"contractID":29684000,"serviceID":30000000,"unitChange":1,"effectiveDate":"2026-11-01"}`)
			if r.status != http.StatusOK {
				t.Errorf("adjustment: %d %s", r.status, r)
			}
			at.State()
		})
	}
	wg.Wait()
	if u, _ := at.Units(k, svc, testNow); u != 8 {
		t.Errorf("units after 8 concurrent +1 adjustments = %d, want 8", u)
	}
}

// TestServer_latencyReadsAndWrites: a write waits its latency before it
// takes effect; a read's answer is built at once and sent when its latency
// is over, so that the simulator's time to build it is part of the latency.
// The requests go to the server's handler in a synctest bubble, whose clock
// moves only when every goroutine of the test waits: "a quarter into the
// latency" is exactly that, on a loaded machine too (over a real
// connection, a query that took longer than the sleep to arrive was built
// after the service it must not hold had been added).
func TestServer_latencyReadsAndWrites(t *testing.T) {
	t.Parallel()
	const d = 400 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		s, err := newServer([]Option{WithClock(fixedClock), WithLatency(d)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		done := make(chan response)
		go func() {
			done <- serveAPI(s, http.MethodPost, "Services", `{"name":"Late","unitPrice":1,"periodType":1,"billingCodeID":29682800}`)
		}()
		time.Sleep(d / 4)
		if n := len(s.Autotask().Services()); n != 0 {
			t.Errorf("a quarter into a write's latency, %d services exist, want the create not applied yet", n)
		}
		if r := <-done; r.status != http.StatusOK || len(s.Autotask().Services()) != 1 {
			t.Errorf("the create answered %d %s with %d services, want it applied", r.status, r, len(s.Autotask().Services()))
		}

		// A query is built when it arrives: a service added while it
		// waits is not in its answer.
		before := len(s.Autotask().Services())
		start := time.Now()
		reads := make(chan response)
		go func() {
			reads <- serveAPI(s, http.MethodPost, "Services/query", `{"filter":[{"op":"gte","field":"id","value":0}]}`)
		}()
		time.Sleep(d / 4)
		s.Autotask().AddService("Added while the query waits", 1)
		var page struct{ Items []json.RawMessage }
		if r := <-reads; r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil || len(page.Items) != before {
			t.Errorf("a query answered %d with %d services, want the %d there when it arrived: %s", r.status, len(page.Items), before, r)
		}
		if el := time.Since(start); el != d {
			t.Errorf("the query was answered after %v, want its latency %v", el, d)
		}

		start = time.Now()
		var built time.Duration
		s.answerRead(t.Context(), d, func() { built = time.Since(start) })
		if el := time.Since(start); built != 0 || el != d {
			t.Errorf("answerRead built the answer after %v and returned after %v, want it built at once and answered after %v", built, el, d)
		}
	})

	for _, tc := range []struct {
		method, path string
		read         bool
	}{
		{http.MethodGet, "/ATServicesRest/V1.0/Services/1", true},
		{http.MethodPost, "/ATServicesRest/V1.0/ContractServiceUnits/query", true},
		{http.MethodPost, "/ATServicesRest/V1.0/Contracts/query/count/", true},
		{http.MethodPost, "/ATServicesRest/V1.0/ContractServiceUnits/query/next", true},
		{http.MethodPost, "/v2/admin/finance/services/search", true},
		{http.MethodPost, "/v2/servicedesk/tickets/search", true},
		{http.MethodPost, "/ATServicesRest/V1.0/Services", false},
		{http.MethodPatch, "/ATServicesRest/V1.0/Services", false},
		{http.MethodPost, "/v4_6_release/apis/3.0/finance/agreements/1/additions", false},
		{http.MethodPost, "/v2/servicedesk/tickets", false},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if got := isRead(r); got != tc.read {
			t.Errorf("isRead(%s %s) = %v, want %v", tc.method, tc.path, got, tc.read)
		}
	}
}

// A fixture line with "repeat" adds a service the contract holds already
// as a second line, and a contract's "postedThrough" approves and posts
// its unit rows up to that day; without "repeat" a service given twice is
// an error.
func TestLoadFixture_repeatAndPosted(t *testing.T) {
	t.Parallel()
	f, err := ParseFixture([]byte(`{"autotask":{
		"companies":[{"name":"Acme"}],
		"contracts":[{"name":"Managed","company":"Acme","startDate":"2026-01-01","endDate":"2026-12-31","postedThrough":"2026-10-31"}],
		"services":[{"name":"AV","unitPrice":2}],
		"contractServices":[{"contract":"Managed","service":"AV","units":3},{"contract":"Managed","service":"AV","units":2,"repeat":true}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, WithFixture(f))
	at := s.Autotask()
	lines := at.ContractServices()
	if len(lines) != 2 || lines[0].ServiceID != lines[1].ServiceID {
		t.Fatalf("contract services = %+v, want the service twice", lines)
	}
	if u, _ := at.LineUnits(lines[1].ID, date(2026, 11, 1)); u != 2 {
		t.Errorf("repeat line units = %d, want 2", u)
	}
	for _, l := range lines {
		for _, r := range at.LineRows(l.ID) {
			if posted := r.ApproveAndPostDate != nil; posted != !r.StartDate.After(date(2026, 10, 31)) {
				t.Errorf("row %s..%s of line %d posted = %v", r.StartDate.Format(time.DateOnly), r.EndDate.Format(time.DateOnly), l.ID, posted)
			}
		}
	}

	srv, err := NewServerOn("127.0.0.1:0", WithFixture(&Fixture{Autotask: &AutotaskFixture{
		Companies: []FixtureCompany{{Name: "A"}}, Contracts: []FixtureContract{{Name: "K", Company: "A"}},
		Services:         []FixtureService{{Name: "S", UnitPrice: 1}},
		ContractServices: []FixtureContractService{{Contract: "K", Service: "S", Units: 1}, {Contract: "K", Service: "S", Units: 1}},
	}}))
	if err == nil {
		srv.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "already on the contract") {
		t.Errorf("a service given twice without repeat: error = %v, want it refused", err)
	}
}
