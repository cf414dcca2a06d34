package tickets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

const globex = "2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a"

// regionalSophos serves the Sophos simulator over TLS with Central's host
// names (its client dials every host to the test server): the partner APIs
// on api.central.sophos.com, and each tenant's alerts on the apiHost the
// tenant list gives it, acme's in us01 and globex's in eu01. A
// tenant-level request that reaches another host than its tenant's
// apiHost fails the test. While noHost is set, the tenant list gives acme
// no apiHost, as for a tenant still being set up.
type regionalSophos struct {
	t   *testing.T
	sim *sophostest.Server
	ts  *httptest.Server

	mu     sync.Mutex
	noHost bool
	// moved gives acme another apiHost, eu02; its old one answers 404
	// for it. tenantLists counts the requests for the tenant list.
	moved       bool
	tenantLists int
	// evil gives acme the apiHost https://evil.example, as a spoofed
	// tenant list would; evilRequests counts the requests that reach it.
	evil         bool
	evilRequests int
}

func newRegionalSophos(t *testing.T) *regionalSophos {
	r := &regionalSophos{t: t, sim: sophostest.Start(t, sophostest.WithFixtureFile("../source/sophostest/testdata/fixture.json"))}
	r.ts = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.ts.Close)
	return r
}

// host returns the apiHost of a tenant.
func (r *regionalSophos) host(tenant string) string {
	r.mu.Lock()
	moved, evil := r.moved, r.evil
	r.mu.Unlock()
	switch {
	case strings.EqualFold(tenant, globex):
		return "https://api-eu01.central.sophos.com"
	case evil:
		return "https://evil.example"
	case moved:
		return "https://api-eu02.central.sophos.com"
	}
	return "https://api-us01.central.sophos.com"
}

func (r *regionalSophos) serve(w http.ResponseWriter, req *http.Request) {
	if strings.EqualFold(req.Host, "evil.example") {
		r.mu.Lock()
		r.evilRequests++
		r.mu.Unlock()
	}
	if strings.HasPrefix(req.URL.Path, "/common/") {
		tenant := req.Header.Get("X-Tenant-ID")
		if want, _ := url.Parse(r.host(tenant)); !strings.EqualFold(req.Host, want.Host) {
			if strings.EqualFold(tenant, acme) && strings.EqualFold(req.Host, "api-us01.central.sophos.com") {
				// acme moved: its old apiHost does not know it.
				http.Error(w, `{"error":"notFound","message":"Tenant not found"}`, http.StatusNotFound)
				return
			}
			r.t.Errorf("%s %s for tenant %s went to %s, not to its apiHost %s", req.Method, req.URL.Path, tenant, req.Host, want.Host)
			http.Error(w, `{"error":"notFound","message":"Not found"}`, http.StatusNotFound)
			return
		}
	}
	if req.URL.Path != "/partner/v1/tenants" {
		r.sim.Handler().ServeHTTP(w, req)
		return
	}
	r.mu.Lock()
	r.tenantLists++
	r.mu.Unlock()
	rec := httptest.NewRecorder()
	r.sim.Handler().ServeHTTP(rec, req)
	var body map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	r.mu.Lock()
	noHost := r.noHost
	r.mu.Unlock()
	items, _ := body["items"].([]any)
	for _, it := range items {
		t, _ := it.(map[string]any)
		id, _ := t["id"].(string)
		t["apiHost"] = r.host(id)
		if noHost && strings.EqualFold(id, acme) {
			delete(t, "apiHost")
		}
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

// client returns a Sophos client with Central's default hosts, whose
// requests reach the test server.
func (r *regionalSophos) client() *sophos.Client {
	r.t.Helper()
	hc := r.ts.Client()
	base, ok := hc.Transport.(*http.Transport)
	if !ok {
		r.t.Fatalf("test server transport is a %T", hc.Transport)
	}
	tr := base.Clone()
	addr := r.ts.Listener.Addr().String()
	tr.TLSClientConfig.ServerName = "example.com" // in the test certificate
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	hc.Transport = tr
	c, err := sophos.NewClient(sophos.WithCredentials(r.sim.ClientID(), r.sim.ClientSecret()),
		sophos.WithAuthURL("https://id.sophos.com/api/v2/oauth2/token"), sophos.WithHTTPClient(hc))
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// Each tenant's alerts are read on its own apiHost, and a tenant whose
// apiHost the tenant list did not give yet is looked up again on the next
// pass rather than failing until psa-syncd restarts.
func TestSophosAlerts_apiHost(t *testing.T) {
	t.Parallel()
	rs := newRegionalSophos(t)
	rs.sim.AddAlert(acme, sophostest.Alert{Description: "acme's"})
	rs.sim.AddAlert(globex, sophostest.Alert{Description: "globex's"})
	src := tickets.NewSophosAlerts(rs.client())
	open := func(tenant string) ([]tickets.Alert, error) {
		return src.OpenAlerts(t.Context(), tickets.Customer{Source: "sophos", CustomerID: tenant})
	}

	rs.mu.Lock()
	rs.noHost = true
	rs.mu.Unlock()
	if _, err := open(acme); err == nil || !strings.Contains(err.Error(), "has no apiHost") {
		t.Fatalf("acme without an apiHost: error = %v, want one naming the missing apiHost", err)
	}
	if got, err := open(globex); err != nil || len(got) != 1 || got[0].Description != "globex's" {
		t.Errorf("globex = %+v, %v; want its one alert", got, err)
	}

	rs.mu.Lock()
	rs.noHost = false
	rs.mu.Unlock()
	src.StartPass()
	if got, err := open(acme); err != nil || len(got) != 1 || got[0].Description != "acme's" {
		t.Errorf("acme once the tenant list gives its apiHost = %+v, %v; want its one alert", got, err)
	}
}

// A tenant list that names another host than Central's as a tenant's
// apiHost (a spoofed answer, a proxy's rewrite) fails that customer with
// an error naming the tenant and the host, and the partner's token is never
// sent there; the other tenants' alerts are read as usual.
func TestSophosAlerts_apiHostNotCentral(t *testing.T) {
	t.Parallel()
	rs := newRegionalSophos(t)
	rs.sim.AddAlert(acme, sophostest.Alert{Description: "acme's"})
	rs.sim.AddAlert(globex, sophostest.Alert{Description: "globex's"})
	rs.mu.Lock()
	rs.evil = true
	rs.mu.Unlock()
	src := tickets.NewSophosAlerts(rs.client())
	src.StartPass()
	_, err := src.OpenAlerts(t.Context(), tickets.Customer{Source: "sophos", CustomerID: acme})
	if err == nil || !strings.Contains(err.Error(), "tenant "+acme) || !strings.Contains(err.Error(), "apiHost evil.example is not a Sophos Central host") {
		t.Errorf("acme on evil.example: error = %v, want one naming the tenant and the host", err)
	}
	if got, err := src.OpenAlerts(t.Context(), tickets.Customer{Source: "sophos", CustomerID: globex}); err != nil || len(got) != 1 || got[0].Description != "globex's" {
		t.Errorf("globex = %+v, %v; want its one alert", got, err)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.evilRequests != 0 {
		t.Errorf("%d requests reached evil.example, want none", rs.evilRequests)
	}
}

// A SophosAlerts kept across passes (as psa-syncd keeps one) read the
// tenant list once, then never again while every tenant was known: a
// tenant moved to another apiHost was read on the old one for ever, so
// psa-syncd made one per pass, which read the list (pages of 100 tenants)
// every pass. The list is read again when a request to a tenant's apiHost
// fails (once a pass), the tenant's alerts then read on its new apiHost,
// and once it is an hour old; otherwise passes do not read it.
func TestSophosAlerts_tenantListKeptAcrossPasses(t *testing.T) {
	t.Parallel()
	rs := newRegionalSophos(t)
	rs.sim.AddAlert(acme, sophostest.Alert{Description: "acme's"})
	rs.sim.AddAlert(globex, sophostest.Alert{Description: "globex's"})
	now := time.Date(2026, time.November, 2, 9, 0, 0, 0, time.UTC)
	src := tickets.NewSophosAlerts(rs.client(), tickets.WithAlertsClock(func() time.Time { return now }))
	pass := func(name string, wantLists int) {
		t.Helper()
		rs.mu.Lock()
		rs.tenantLists = 0
		rs.mu.Unlock()
		src.StartPass()
		for _, tc := range []struct{ tenant, want string }{{acme, "acme's"}, {globex, "globex's"}} {
			got, err := src.OpenAlerts(t.Context(), tickets.Customer{Source: "sophos", CustomerID: tc.tenant})
			if err != nil || len(got) != 1 || got[0].Description != tc.want {
				t.Errorf("%s: alerts of %s = %+v, %v; want %s", name, tc.tenant, got, err, tc.want)
			}
		}
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if rs.tenantLists != wantLists {
			t.Errorf("%s read the tenant list %d times, want %d", name, rs.tenantLists, wantLists)
		}
	}
	pass("first pass", 1)
	for i := range 3 {
		now = now.Add(15 * time.Minute)
		pass(fmt.Sprintf("pass %d", i+2), 0)
	}
	rs.mu.Lock()
	rs.moved = true
	rs.mu.Unlock()
	now = now.Add(5 * time.Minute)
	pass("pass after acme moved", 1)
	now = now.Add(30 * time.Minute)
	pass("pass half an hour later", 0)
	now = now.Add(30 * time.Minute)
	pass("pass an hour after the list was read", 1)
}

// Customers whose tenant the tenant list does not name (removed from the
// partner, or mapped to a wrong id) fail their pass, but the list (pages
// of 100 tenants) is read once a pass for all of them, not once for each:
// at 250 tenants, 3 requests a pass rather than 3 for every such
// customer of every pass. A tenant added to the list meanwhile is found by
// the next pass.
func TestEngine_unknownTenantsReadTheTenantListOncePerPass(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	for i := range 250 - len(e.sophos.Tenants()) {
		e.sophos.AddTenant(sophostest.Tenant{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Name: fmt.Sprintf("Tenant %d", i),
			APIHost: e.sophos.APIURL()})
	}
	customers := e.customers()
	for i := range 5 {
		customers = append(customers, tickets.Customer{Source: "sophos", CustomerID: fmt.Sprintf("11111111-0000-4000-8000-%012d", i), CompanyID: e.company})
	}
	eng := e.engine(routings[psa.SystemAutotask])
	for pass := 1; pass <= 2; pass++ {
		e.sophos.ResetRequests()
		rep, err := eng.Pass(t.Context(), customers, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, cr := range rep.Customers[1:] {
			if cr.Err == nil || !strings.Contains(cr.Err.Error(), "is not one of the partner's tenants") {
				t.Errorf("pass %d: %s: error %v, want one saying it is not one of the partner's tenants", pass, cr.Customer.CustomerID, cr.Err)
			}
		}
		if n := e.sophos.CountRequests(http.MethodGet, "/partner/v1/tenants"); n != 3 {
			t.Errorf("pass %d read %d pages of the tenant list, want 3 (the list of 250 tenants once)", pass, n)
		}
	}
	e.sophos.AddTenant(sophostest.Tenant{ID: customers[1].CustomerID, Name: "Added", APIHost: e.sophos.APIURL()})
	if rep, err := eng.Pass(t.Context(), customers, false); err != nil || rep.Customers[1].Err != nil {
		t.Errorf("pass after the tenant was added: %+v, %v; want its alerts read", rep.Customers[1], err)
	}
}

// A tenant list that cannot be read fails every customer whose apiHost is
// not known with its error, but is asked for once a pass, not once (with
// its retries) for each of them.
func TestEngine_failedTenantListReadOncePerPass(t *testing.T) {
	t.Parallel()
	tenantReads := func(customers int) int {
		e := newEnv(t, psa.SystemAutotask)
		e.sophos.AddFault(sophostest.Fault{Method: http.MethodGet, Path: "/partner/v1/tenants", Status: http.StatusServiceUnavailable})
		cs := e.customers()
		for i := range customers - 1 {
			cs = append(cs, tickets.Customer{Source: "sophos", CustomerID: fmt.Sprintf("11111111-0000-4000-8000-%012d", i), CompanyID: e.company})
		}
		rep, err := e.engine(routings[psa.SystemAutotask]).Pass(t.Context(), cs, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, cr := range rep.Customers {
			if cr.Err == nil || !strings.Contains(cr.Err.Error(), "503") {
				t.Errorf("%s: error %v, want the tenant list's 503", cr.Customer.CustomerID, cr.Err)
			}
		}
		return e.sophos.CountRequests(http.MethodGet, "/partner/v1/tenants")
	}
	if one, five := tenantReads(1), tenantReads(5); five != one {
		t.Errorf("the failing tenant list was asked for %d times for 5 customers and %d times for one; want as often", five, one)
	}
}
