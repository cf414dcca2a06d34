package daemon

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/internal/tlsclient/tlsclienttest"
)

// TestActiveTransports_refusedAsksAgain: a request whose connection the
// active instance closed for want of a good client certificate may end
// with an error that holds no TLS alert ("use of closed network
// connection", HTTP/2's "client conn could not be established"); the
// standby asks again on a connection of its own and says what the alert
// means, with TLS 1.3 (refused after the handshake) and 1.2 (refused in
// it).
func TestActiveTransports_refusedAsksAgain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	other := ltNewPKI(t, t.TempDir())
	serverCert, err := tls.LoadX509KeyPair(pki.certFile, pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "standby.crt"), filepath.Join(dir, "standby.key")
	lost := &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.roots, MaxVersion: version}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		for _, tc := range []struct {
			name string
			cert func() ([]byte, []byte) // nil: none
			want string
		}{
			{name: "none", want: "it requires a client certificate (tls_server_config's client_auth_type) and this standby presents none"},
			{name: "of another CA", cert: func() ([]byte, []byte) { return other.issueClient(30, "standby") },
				want: "it refused the client certificate of this standby's state.advertise_client_cert_file, signed by a CA it does not trust"},
			{name: "of the CA", cert: func() ([]byte, []byte) { return pki.issueClient(31, "standby") }},
		} {
			files := activeTLS{caFile: pki.caFile}
			if tc.cert != nil {
				certPEM, keyPEM := tc.cert()
				dtWrite(t, certFile, string(certPEM))
				dtWrite(t, keyFile, string(keyPEM))
				files.certFile, files.keyFile = certFile, keyFile
			}
			a, err := newActiveTransports(files, nil)
			if err != nil {
				t.Fatal(err)
			}
			msg := a.refused(t.Context(), srv.URL, lost)
			switch {
			case tc.want == "" && msg != "":
				t.Errorf("TLS %s, client certificate %s: refused says %q; want \"\" (the active instance takes it)", tls.VersionName(version), tc.name, msg)
			case tc.want != "" && !strings.Contains(msg, tc.want):
				t.Errorf("TLS %s, client certificate %s: refused says %q; want %q", tls.VersionName(version), tc.name, msg, tc.want)
			}
		}
	}
}

// TestLoad_advertiseClientCertificate: state.advertise_client_cert_file
// and advertise_client_key_file are read at load, so that a wrong path, a
// key of another certificate or a certificate made for servers only stops
// the start (and psa-syncd validate), naming the setting, never quoting
// the key.
func TestLoad_advertiseClientCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "psa-syncd.yml")
	pki := ltNewPKI(t, dir)
	certPEM, keyPEM := pki.issueClient(40, "standby")
	_, otherKeyPEM := pki.issueClient(41, "standby")
	dtWrite(t, filepath.Join(dir, "client.crt"), string(certPEM))
	dtWrite(t, filepath.Join(dir, "client.key"), string(keyPEM))
	dtWrite(t, filepath.Join(dir, "other.key"), string(otherKeyPEM))
	dtWrite(t, filepath.Join(dir, "both.pem"), string(certPEM)+string(keyPEM))
	base := "export_path: x.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n" +
		"source: {type: file, file: {path: u.csv}}\n"
	for _, tc := range []struct{ cert, key, err string }{
		{cert: "client.crt", key: "client.key"},
		// One file holding both, as some tools write them.
		{cert: "both.pem", key: "both.pem"},
		{cert: "client.crt", err: "state.advertise_client_cert_file and state.advertise_client_key_file: give both"},
		{key: "client.key", err: "state.advertise_client_cert_file and state.advertise_client_key_file: give both"},
		{cert: "missing.crt", key: "client.key", err: "state.advertise_client_cert_file: open " + filepath.Join(dir, "missing.crt") + ": no such file or directory"},
		{cert: "client.crt", key: "missing.key", err: "state.advertise_client_key_file: open " + filepath.Join(dir, "missing.key") + ": no such file or directory"},
		{cert: "client.key", key: "client.key", err: "state.advertise_client_cert_file: " + filepath.Join(dir, "client.key") + " holds no PEM certificate"},
		{cert: "client.crt", key: "client.crt", err: "state.advertise_client_key_file: " + filepath.Join(dir, "client.crt") + " holds no PEM private key"},
		{cert: "client.crt", key: "other.key", err: "state.advertise_client_key_file: the key in " + filepath.Join(dir, "other.key") +
			" cannot be used with the certificate in " + filepath.Join(dir, "client.crt") + " (state.advertise_client_cert_file)"},
		// The listener's own certificate, for servers only.
		{cert: "server.pem", key: "server-key.pem", err: "state.advertise_client_cert_file: the certificate in " + pki.certFile + " is not for client authentication"},
		// The key's base64 lines, without BEGIN and END, where its file's
		// name belongs: not quoted as a missing file's name.
		{cert: "client.crt", key: `"` + pemBody(t, keyPEM) + `"`, err: "state.advertise_client_key_file: the file it names cannot be read: no such file or directory (the value is not shown"},
	} {
		var lines []string
		if tc.cert != "" {
			lines = append(lines, "advertise_client_cert_file: "+tc.cert)
		}
		if tc.key != "" {
			lines = append(lines, "advertise_client_key_file: "+tc.key)
		}
		cfgWriteFile(t, path, base+"state: {"+strings.Join(lines, ", ")+"}\n")
		c, err := Load(path, nil)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s, %s: %v", tc.cert, tc.key, err)
		case tc.err == "" && (c.State.AdvertiseClientCertFile != filepath.Join(dir, tc.cert) || c.State.AdvertiseClientKeyFile != filepath.Join(dir, tc.key)):
			t.Errorf("%s, %s: read as %q, %q; want the paths beside the config file", tc.cert, tc.key, c.State.AdvertiseClientCertFile, c.State.AdvertiseClientKeyFile)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s, %s: error %v, want one saying %q", tc.cert, tc.key, err, tc.err)
		}
		for _, k := range [][]byte{keyPEM, otherKeyPEM} {
			if body := pemBody(t, k); err != nil && strings.Contains(err.Error(), body[:20]) {
				t.Errorf("%s, %s: the error quotes a key: %v", tc.cert, tc.key, err)
			}
		}
	}
}

// TestActiveTransports_refusedAsksAgainThroughProxy: where the standby's
// requests go through an http:// proxy (HTTPS_PROXY), it asks again
// through a tunnel of that proxy (CONNECT, with the proxy's credentials),
// as the requests do, and says what the refusal means; before, it did not
// ask behind a proxy, and the error kept Go's bare message.
func TestActiveTransports_refusedAsksAgainThroughProxy(t *testing.T) {
	t.Parallel()
	pki := ltNewPKI(t, t.TempDir())
	serverCert, err := tls.LoadX509KeyPair(pki.certFile, pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.roots}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	proxy := tlsclienttest.NewProxy(t)
	proxyURL := proxy.URL(t, "standby", "proxy-password")
	a, err := newActiveTransports(activeTLS{caFile: pki.caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.t.Proxy = http.ProxyURL(proxyURL)
	lost := &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}
	msg := a.refused(t.Context(), srv.URL, lost)
	if want := "it requires a client certificate (tls_server_config's client_auth_type) and this standby presents none"; !strings.Contains(msg, want) {
		t.Errorf("refused through the proxy says %q; want %q", msg, want)
	}
	if n := proxy.Connects(); n != 1 {
		t.Errorf("the proxy got %d CONNECTs; want 1, the standby's asking again", n)
	}
	if got, want := proxy.Authorization(), "Basic "+base64.StdEncoding.EncodeToString([]byte("standby:proxy-password")); got != want {
		t.Errorf("CONNECT with Proxy-Authorization %q; want the proxy URL's credentials %q", got, want)
	}

	// An https:// proxy is reached over TLS (with the proxy's own
	// settings): one that speaks plain HTTP gets no CONNECT, and its error
	// is no refusal of the active instance's.
	proxyURL.Scheme = "https"
	if msg := a.refused(t.Context(), srv.URL, lost); msg != "" || proxy.Connects() != 1 {
		t.Errorf("refused through an https:// proxy that speaks plain HTTP says %q after %d CONNECTs; want \"\", no CONNECT", msg, proxy.Connects())
	}
}

// TestActiveTransports_throughAnHTTPSProxy: a standby whose
// state.advertise_ca_file holds the CA of an https:// proxy too keeps
// reaching the active instance through that proxy: the proxy's
// certificate is now checked with the proxy's own settings
// (tlsclient.SetProxyTLS), the system's roots with advertise_ca_file's
// CAs, as Go's transport checked it with the latter before.
func TestActiveTransports_throughAnHTTPSProxy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	serverCert, err := tls.LoadX509KeyPair(pki.certFile, pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("active")) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	proxy := tlsclienttest.NewTLSProxy(t)
	caFile := filepath.Join(dir, "cluster-and-proxy-ca.pem")
	caPEM, err := os.ReadFile(pki.caFile)
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, caFile, string(caPEM)+string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw})))
	a, err := newActiveTransports(activeTLS{caFile: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.t.Proxy = http.ProxyURL(proxy.URL(t, "standby", "proxy-password"))
	// The proxy's certificate (httptest's: 127.0.0.1, example.com) is
	// checked for its own host, the active instance's for its.
	resp, err := (&http.Client{Transport: a.t}).Get(srv.URL)
	if err != nil {
		t.Fatalf("a standby's request through an https:// proxy whose CA advertise_ca_file holds: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if body, _ := io.ReadAll(resp.Body); string(body) != "active" || proxy.Connects() != 1 {
		t.Errorf("through the proxy: %q after %d CONNECTs; want the active instance's answer through one", body, proxy.Connects())
	}
}
