package tlsclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/internal/tlsclient/tlsclienttest"
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
	conn, err := Tunnel(t.Context(), (&net.Dialer{}).DialContext, proxyURL, "psa-syncd:9810", nil)
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

// TestAskAgain_throughAnHTTPSProxy: where the requests go through an
// https:// proxy (HTTPS_PROXY=https://...), AskAgain asks through a tunnel
// of it as they do: TLS to the proxy with its own settings (proxyConf),
// CONNECT with the
// proxy's credentials, and reads the listener's refusal of a client
// without a certificate. Before, it did not ask through an https:// proxy,
// and a refused client certificate kept Go's bare message. A proxy whose
// certificate its settings do not trust gets no CONNECT, and its TLS
// error is no alert of the listener's.
func TestAskAgain_throughAnHTTPSProxy(t *testing.T) {
	t.Parallel()
	listener := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	listener.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	listener.StartTLS()
	t.Cleanup(listener.Close)
	u, err := url.Parse(listener.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := tlsclienttest.NewTLSProxy(t)
	proxyURL := proxy.URL(t, "operator", "proxy-password")
	roots := x509.NewCertPool()
	roots.AddCert(proxy.Certificate()) // httptest's, the listener's too
	conf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	alert, ok := AskAgain(t.Context(), (&net.Dialer{}).DialContext, http.ProxyURL(proxyURL), conf, conf, u)
	if !ok || alert != AlertCertificateRequired {
		t.Errorf("AskAgain through an https:// proxy = %v, %v; want the listener's %v", alert, ok, AlertCertificateRequired)
	}
	if n := proxy.Connects(); n != 1 {
		t.Errorf("the proxy got %d CONNECTs; want 1", n)
	}
	if got, want := proxy.Authorization(), "Basic "+base64.StdEncoding.EncodeToString([]byte("operator:proxy-password")); got != want {
		t.Errorf("CONNECT with Proxy-Authorization %q; want the proxy URL's credentials %q", got, want)
	}

	untrusted := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
	if alert, ok := AskAgain(t.Context(), (&net.Dialer{}).DialContext, http.ProxyURL(proxyURL), conf, untrusted, u); ok || proxy.Connects() != 1 {
		t.Errorf("AskAgain through an https:// proxy it does not trust = %v, %v after %d CONNECTs; want no alert, no CONNECT", alert, ok, proxy.Connects())
	}
}

// TestReadFile_capped: a CA, certificate or key file over the cap (a flag
// or setting naming a log, a bundle of the wrong thing) is an error naming
// the file and the cap, not read whole; one at the cap is read.
func TestReadFile_capped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	at, over := filepath.Join(dir, "at.pem"), filepath.Join(dir, "over.pem")
	if err := os.WriteFile(at, make([]byte, 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, make([]byte, 1025), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(at, 1024); err != nil || len(data) != 1024 {
		t.Errorf("ReadFile at the cap = %d bytes, %v; want all 1024", len(data), err)
	}
	_, err := ReadFile(over, 1024)
	if want := over + " is larger than 1 KiB, the most psa-sync reads of a CA, certificate or key file"; err == nil || err.Error() != want {
		t.Errorf("ReadFile over the cap: %v; want %q", err, want)
	}
}

// TestReadFile_contentNotQuoted: a key given where its file's name
// belongs (-web.key-file="$(cat client.key)", the base64 of a Kubernetes
// Secret's data) cannot be read, and the error must not quote it, as it
// quotes a file's name.
func TestReadFile_contentNotQuoted(t *testing.T) {
	t.Parallel()
	const key = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETkeyMaterial"
	pem := "-----BEGIN PRIVATE KEY-----\n" + key + "\n-----END PRIVATE KEY-----\n"
	for _, path := range []string{pem, strings.ReplaceAll(pem, "\n", ""), base64.StdEncoding.EncodeToString([]byte(pem))} {
		_, err := ReadFile(path, 1024)
		if err == nil || !strings.Contains(err.Error(), "the value is not shown") {
			t.Errorf("ReadFile(a key's content) = %v, want an error saying that the value is not shown", err)
		} else if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), path[:20]) {
			t.Errorf("ReadFile(a key's content) quotes it: %v", err)
		}
	}
	missing := filepath.Join(t.TempDir(), "client.key")
	if _, err := ReadFile(missing, 1024); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ReadFile(a missing file) = %v, want an error naming it", err)
	}
}

// TestReadKeyFile_base64NotQuoted: a key's base64 without its PEM lines
// (the lines between BEGIN and END, a Secret's tls.key decoded once),
// given where its file's name belongs, alone or made absolute by a
// config's directory, was quoted as the missing file's name. A key file
// that is a name is still quoted, and ReadFile (a CA or certificate file)
// still quotes a certificate's base64.
func TestReadKeyFile_base64NotQuoted(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, der := range [][]byte{pkcs8, sec1} {
		b64 := base64.StdEncoding.EncodeToString(der)
		for _, path := range []string{b64, "/etc/psa-syncd/" + b64} {
			_, err := ReadKeyFile(path, 1024)
			if err == nil || !strings.Contains(err.Error(), "the value is not shown") || strings.Contains(err.Error(), b64[:20]) {
				t.Errorf("ReadKeyFile(%.30s...) = %v, want an error saying that the value is not shown, without it", path, err)
			}
		}
	}
	dir := t.TempDir()
	for _, name := range []string{"client.key", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"} {
		missing := filepath.Join(dir, name)
		if _, err := ReadKeyFile(missing, 1024); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("ReadKeyFile(a missing file) = %v, want an error naming it", err)
		}
	}
	cert := base64.StdEncoding.EncodeToString(pkcs8)
	if _, err := ReadFile(cert, 1024); err == nil || !strings.Contains(err.Error(), cert) {
		t.Errorf("ReadFile(a certificate's base64) = %v, want an error quoting it", err)
	}
}

// TestSetProxyTLS_theProxyIsCheckedWithItsOwnSettings: a transport whose
// TLS is that of a listener with a private CA and a server name
// (-web.ca-file, -web.server-name) reaches it through an https:// proxy
// whose certificate those do not hold: the proxy is checked with its own
// settings and its host name, the listener with the transport's. Before,
// net/http's transport checked the proxy with the listener's CA and name
// ("proxyconnect tcp: x509: certificate signed by unknown authority"). A
// request without the proxy still gets the listener's checks.
func TestSetProxyTLS_theProxyIsCheckedWithItsOwnSettings(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "psa-syncd"}, DNSNames: []string{"psa-syncd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	listener := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("psa-syncd")) }))
	listener.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	listener.StartTLS()
	t.Cleanup(listener.Close)
	listenerRoots := x509.NewCertPool()
	listenerRoots.AddCert(cert)

	proxy := tlsclienttest.NewTLSProxy(t)
	proxyRoots := x509.NewCertPool()
	proxyRoots.AddCert(proxy.Certificate())
	get := func(tr *http.Transport) (string, error) {
		resp, err := (&http.Client{Transport: tr}).Get(listener.URL)
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	transport := func(through bool) *http.Transport {
		tr := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // net/http's default transport
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: listenerRoots, ServerName: "psa-syncd"}
		tr.Proxy = nil
		if through {
			tr.Proxy = http.ProxyURL(proxy.URL(t, "operator", "proxy-password"))
		}
		SetProxyTLS(tr, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: proxyRoots})
		return tr
	}
	if body, err := get(transport(true)); err != nil || body != "psa-syncd" || proxy.Connects() != 1 {
		t.Errorf("through the https:// proxy: %q, %v after %d CONNECTs; want the listener's answer through one", body, err, proxy.Connects())
	}
	if body, err := get(transport(false)); err != nil || body != "psa-syncd" || proxy.Connects() != 1 {
		t.Errorf("without the proxy: %q, %v; want the listener's answer, checked with its CA and name", body, err)
	}
	// The listener's checks still apply behind the proxy.
	tr := transport(true)
	tr.TLSClientConfig.ServerName = "another-name"
	if _, err := get(tr); err == nil || !strings.Contains(err.Error(), "another-name") {
		t.Errorf("through the proxy, to a listener whose certificate does not hold the server name: %v; want refused", err)
	}
	// And the proxy's own: a proxy its settings do not trust is refused.
	tr = transport(true)
	SetProxyTLS(tr, nil) // the system's roots, which hold no httptest CA
	if _, err := get(tr); err == nil || !strings.Contains(err.Error(), "proxyconnect") {
		t.Errorf("through an https:// proxy not trusted: %v; want a proxyconnect error", err)
	}
}
