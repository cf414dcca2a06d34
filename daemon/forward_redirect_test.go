package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// TestDaemon_standbyFollowsNoRedirectOfTheActiveInstance: what answers at
// the active instance's advertised URL (a proxy, an ingress moved
// elsewhere, a server that is not psa-syncd) redirects every request to
// another server, here another port of the same host. A standby forwarded
// the API with Go's default client, which follows a redirect with the
// Authorization header to the same host name on any port, over plain
// http too: the other server got the API token. It now follows none:
// its API answers 502 saying so (a forwarded client's request, relayed
// without the Location its client would follow), its status page an
// error, and the other server gets nothing.
func TestDaemon_standbyFollowsNoRedirectOfTheActiveInstance(t *testing.T) {
	t.Parallel()
	pgURL, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const token = "s3cret-forward-token"
	var mu sync.Mutex
	var elsewhereGot []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		elsewhereGot = append(elsewhereGot, fmt.Sprintf("%s %s Authorization=%q body=%q", r.Method, r.URL.Path, r.Header.Get("Authorization"), body))
		mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"id": "elsewhere"})
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)

	e := dtSetup(t, dtOptions{token: token, state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  advertise_url: %s\n", pgURL, redirector.URL)})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := dtSecondInstance(t, e, nil)
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError", err)
	}
	b.httpTimeouts = httpTimeouts{readHeader: 5 * time.Second, read: 5 * time.Second, write: 10 * time.Second, idle: 5 * time.Second}
	srv := b.newHTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// The API: a client's sync, forwarded.
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+ln.Addr().String()+"/api/v1/sync", strings.NewReader(`{"customer":"cust-acme"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Location") != "" || !strings.Contains(string(data), "which this standby does not follow") ||
		strings.Contains(string(data), token) {
		t.Errorf("POST /api/v1/sync on the standby, the active instance's URL redirecting = %d (Location %q) %s; want 502 saying the redirect is not followed",
			resp.StatusCode, resp.Header.Get("Location"), data)
	}

	// The status page: callActive, with the API token.
	r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/ui/sync", nil)
	var out SyncTicket
	err = b.callActive(r, http.MethodPost, "/api/v1/sync", []byte(`{"customer":"cust-acme"}`), &out)
	if err == nil || !strings.Contains(err.Error(), "307 Temporary Redirect, a redirect to") || !strings.Contains(err.Error(), "which this standby does not follow") {
		t.Errorf("callActive with the active instance's URL redirecting = %v, %+v; want an error saying the redirect is not followed", err, out)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(elsewhereGot) != 0 {
		t.Errorf("the server the active instance's URL redirects to got: %s", strings.Join(elsewhereGot, "; "))
	}
}

// TestNewActiveTransport: the standby's transport keeps the proxy of the
// environment (an advertise_url reached through a proxy) and bounds the
// dial and the TLS handshake; it checks an https:// proxy's certificate
// with its host (tlsclient.SetProxyTLS, whose test shows it), not
// advertise_host, and a refused one is
// named as the proxy's, not the active instance's.
func TestNewActiveTransport(t *testing.T) {
	t.Parallel()
	tr := newActiveTransport(nil, nil, nil)
	if tr.Proxy == nil || tr.DialContext == nil || tr.TLSHandshakeTimeout != activeDialTimeout || tr.DialTLSContext == nil {
		t.Errorf("newActiveTransport(nil, nil) = proxy %v, dial %v, TLS dial %v, TLS handshake timeout %s; want the environment's proxy, "+
			"the proxy's own TLS and %s bounds", tr.Proxy != nil, tr.DialContext != nil, tr.DialTLSContext != nil, tr.TLSHandshakeTimeout, activeDialTimeout)
	}
	proxyRefused := &url.Error{Op: "Get", URL: "https://psa-syncd-0.psa-syncd-peers:9810/api/v1/status",
		Err: &net.OpError{Op: "proxyconnect", Net: "tcp", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}}
	if msg := certificateRefused(proxyRefused); !strings.Contains(msg, "the certificate of the https:// proxy of HTTPS_PROXY was refused, not the active instance's") {
		t.Errorf("certificateRefused of the proxy's certificate = %q; want the proxy named", msg)
	}
}
