package sophos_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
)

// centralServer answers as Sophos ID and Central over TLS whatever host a
// request names (its client dials every host to it), and counts the
// requests by host, and by host and path. Its whoami names global as the partner's API host.
type centralServer struct {
	ts     *httptest.Server
	global string

	mu    sync.Mutex
	hosts map[string]int
}

func newCentralServer(t *testing.T, global string) *centralServer {
	t.Helper()
	s := &centralServer{hosts: map[string]int{}, global: global}
	s.ts = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hosts[strings.ToLower(r.Host)]++
		s.hosts[strings.ToLower(r.Host)+r.URL.Path]++
		s.mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/token") {
			fmt.Fprint(rw, `{"access_token":"central-access-token","token_type":"bearer","expires_in":3600}`)
			return
		}
		if r.URL.Path == "/whoami/v1" {
			fmt.Fprintf(rw, `{"id":"5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a","idType":"partner","apiHosts":{"global":%q}}`, s.global)
			return
		}
		fmt.Fprint(rw, `{"items":[],"pages":{"total":1,"items":0,"size":50,"maxSize":1000}}`)
	}))
	t.Cleanup(s.ts.Close)
	return s
}

// httpClient returns an HTTP client whose every request reaches the server.
func (s *centralServer) httpClient(t *testing.T) *http.Client {
	t.Helper()
	hc := s.ts.Client()
	base, ok := hc.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("test server transport is a %T", hc.Transport)
	}
	tr := base.Clone()
	addr := s.ts.Listener.Addr().String()
	tr.TLSClientConfig.InsecureSkipVerify = true // the test certificate names example.com only
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	hc.Transport = tr
	return hc
}

func (s *centralServer) requests(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hosts[strings.ToLower(host)]
}

// The partner's bearer token goes to a tenant's apiHost only when that is
// one of Central's hosts (or, with an overridden auth URL, a simulator on
// its host): a tenant list that names another https host must not get it.
func TestAlertsService_apiHostNotCentral(t *testing.T) {
	t.Parallel()
	s := newCentralServer(t, "https://api.central.sophos.com")
	c, err := sophos.NewClient(sophos.WithCredentials("id", "partner-secret"), sophos.WithHTTPClient(s.httpClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{
		"https://evil.example",
		"https://api-us01.central.sophos.com.evil.example",
		"https://evilcentral.sophos.com",
		"https://api-us01.central.sophos.com@evil.example",
		"https://sophos.com",
	} {
		_, _, err := c.Alerts.List(t.Context(), acme, host, nil)
		name := strings.TrimPrefix(host, "https://")
		name = name[strings.LastIndex(name, "@")+1:]
		if err == nil || !strings.Contains(err.Error(), acme) || !strings.Contains(err.Error(), "apiHost "+name+" is not a Sophos Central host") {
			t.Errorf("apiHost %s: error = %v, want one naming tenant %s and host %s", host, err, acme, name)
		} else if strings.Contains(err.Error(), "central-access-token") || strings.Contains(err.Error(), "partner-secret") {
			t.Errorf("apiHost %s: error %q shows a secret", host, err)
		}
		if n := s.requests(name); n != 0 {
			t.Errorf("apiHost %s: %d requests reached %s", host, n, name)
		}
	}
	if _, _, err := c.Alerts.List(t.Context(), acme, "https://API-EU01.central.sophos.com", nil); err != nil {
		t.Errorf("Central's eu01 apiHost: %v", err)
	}
	if n := s.requests("api-eu01.central.sophos.com"); n != 1 {
		t.Errorf("requests to api-eu01.central.sophos.com = %d, want 1", n)
	}

	// A simulator: the auth URL is overridden, and the tenant list names its
	// host as the apiHost.
	sim := s.ts.URL
	c2, err := sophos.NewClient(sophos.WithCredentials("id", "partner-secret"), sophos.WithAuthURL(sim+"/token"), sophos.WithHTTPClient(s.httpClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c2.Alerts.List(t.Context(), acme, sim, nil); err != nil {
		t.Errorf("the auth URL's host %s as apiHost: %v", sim, err)
	}
	if _, _, err := c2.Alerts.List(t.Context(), acme, "https://evil.example", nil); err == nil || !strings.Contains(err.Error(), "evil.example is not a Sophos Central host") {
		t.Errorf("evil.example with an overridden auth URL: error = %v, want a refusal", err)
	}
	if n := s.requests("evil.example"); n != 0 {
		t.Errorf("%d requests reached evil.example", n)
	}
}

// The partner calls follow the global host whoami names only when it is
// one of Central's hosts: an answer that names another https host does not
// get the partner's token; the calls go to Central's default host.
func TestClient_whoamiGlobalNotCentral(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ global, want string }{
		{"https://evil.example", "api.central.sophos.com"},
		{"https://api.central.sophos.com.evil.example", "api.central.sophos.com"},
		{"https://api2.central.sophos.com", "api2.central.sophos.com"},
	} {
		s := newCentralServer(t, tc.global)
		c, err := sophos.NewClient(sophos.WithCredentials("id", "partner-secret"), sophos.WithHTTPClient(s.httpClient(t)))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Tenants.List(t.Context(), &sophos.TenantListOptions{Page: 1}); err != nil {
			t.Errorf("global %s: tenants: %v", tc.global, err)
		}
		if n := s.requests(tc.want + "/partner/v1/tenants"); n != 1 {
			t.Errorf("global %s: %d tenant list requests reached %s, want 1", tc.global, n, tc.want)
		}
		if n := s.requests(strings.TrimPrefix(tc.global, "https://")); tc.want == "api.central.sophos.com" && n != 0 {
			t.Errorf("global %s: %d requests reached it, want none", tc.global, n)
		}
	}
}
