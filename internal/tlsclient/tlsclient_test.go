package tlsclient

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTunnel_refusedNamesTheProxyWithoutItsPassword: a proxy that refuses
// the CONNECT (407) ends the tunnel with an error naming the proxy and
// its answer, and never the password of the proxy's URL, which goes in
// Proxy-Authorization only.
func TestTunnel_refusedNamesTheProxyWithoutItsPassword(t *testing.T) {
	t.Parallel()
	var auth atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Proxy-Authorization"))
		http.Error(w, "who are you", http.StatusProxyAuthRequired)
	}))
	t.Cleanup(proxy.Close)
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL.User = url.UserPassword("operator", "proxy-password")
	conn, err := Tunnel(t.Context(), (&net.Dialer{}).DialContext, proxyURL, "psa-syncd:9810")
	if err == nil {
		_ = conn.Close()
		t.Fatal("Tunnel through a proxy answering 407: no error")
	}
	if msg := err.Error(); !strings.Contains(msg, "CONNECT psa-syncd:9810: 407") || !strings.Contains(msg, "operator") || strings.Contains(msg, "proxy-password") {
		t.Errorf("Tunnel's error %q; want the proxy (its user, not its password), the CONNECT and the 407", msg)
	}
	if want := "Basic b3BlcmF0b3I6cHJveHktcGFzc3dvcmQ="; auth.Load() != want {
		t.Errorf("CONNECT with Proxy-Authorization %q; want %q (operator:proxy-password)", auth.Load(), want)
	}
}

// TestAlert_onlyARemoteAlert: an error of this side's TLS (a "local
// error"), or of the network, is no alert of the listener's.
func TestAlert_onlyARemoteAlert(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		&net.OpError{Op: "local error", Err: AlertBadCertificate},
		&net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed},
		nil,
	} {
		if a, ok := Alert(err); ok {
			t.Errorf("Alert(%v) = %v; want none", err, a)
		}
	}
	if a, ok := Alert(&url.Error{Op: "Get", URL: "https://psa-syncd", Err: &net.OpError{Op: "remote error", Err: AlertUnknownCA}}); !ok || a != AlertUnknownCA {
		t.Errorf("Alert of a remote unknown-CA alert = %v, %v; want %v", a, ok, AlertUnknownCA)
	}
}
