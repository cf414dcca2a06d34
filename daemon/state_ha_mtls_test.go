package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemon_standbyPresentsAClientCertificateToTheActiveInstance: two
// instances on one PostgreSQL database whose listeners require client
// certificates (tls_server_config's client_auth_type:
// RequireAndVerifyClientCert), as the Kubernetes HA example may run them.
// A standby without state.advertise_client_cert_file presents none, the
// active instance's handshake refuses it, and its API answer and status
// page say what to configure; given at a reload, the standby forwards.
//
// The standby reads its TLS files again when they change in place (a
// cert-manager renewal, a CA rotation): a client certificate of another
// CA is refused at once, and the active instance's certificate and CA
// rotated together with the standby's work without a reload or restart.
// A changed file that cannot be used leaves the last good ones in use, and
// a reload naming one is refused without quoting the key.
func TestDaemon_standbyPresentsAClientCertificateToTheActiveInstance(t *testing.T) {
	t.Parallel()
	const token = "mtls-ha-token-0123"
	// One CA for the listeners' certificates and the clients' (the
	// cluster's), its certificate in one file: each listener's
	// client_ca_file and the standby's advertise_ca_file.
	e, pki := haTLSSetup(t, token)
	webFile := filepath.Join(e.dir, "web-config.yml")
	dtWrite(t, webFile, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: %s\n",
		pki.certFile, pki.keyFile, pki.caFile))
	data, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	baseCfg := string(data)
	env := cfgEnv(map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "127.0.0.1"})
	var logs lockedLog
	start := func() (*Daemon, string) {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d := haServe(t, e.cfgPath, env, ln, Options{WebConfigFile: webFile, Getenv: env, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		return d, ln.Addr().String()
	}
	a, _ := start()
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	b, addrB := start()
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError", err)
	}

	// A client of the standby's listener, which requires a client
	// certificate too; clientOf trusts and presents those of one CA.
	clientOf := func(p *ltPKI) *http.Client {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS12}}}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	client := clientOf(pki)
	syncThroughStandby := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+addrB+"/api/v1/sync", strings.NewReader(`{"customer":"cust-acme"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	c := newUIClient(t, b)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the standby's status page")
	}
	c.do(http.MethodPost, "/ui/sign-in", neturl.Values{"token": {token}, "csrf": {m[1]}, "next": {"/"}})
	syncNow := func() string {
		t.Helper()
		rec := c.do(http.MethodPost, "/ui/sync", neturl.Values{"csrf": {m[1]}, "customer": {"cust-acme"}, "next": {"/"}})
		return flash(c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String())
	}
	expectForwarded := func(when string) {
		t.Helper()
		if code, body := syncThroughStandby(); code != http.StatusAccepted {
			t.Errorf("%s: POST /api/v1/sync on the standby = %d %s; want the active instance's 202", when, code, body)
		}
		if msg := syncNow(); !strings.Contains(msg, "Sync requested") {
			t.Errorf("%s: Sync now on the standby's status page says %q; want the active instance's request queued", when, msg)
		}
	}
	expectRefused := func(when string, want ...string) {
		t.Helper()
		code, body := syncThroughStandby()
		if code != http.StatusBadGateway {
			t.Errorf("%s: POST /api/v1/sync on the standby = %d %s; want 502", when, code, body)
		}
		msg := syncNow()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: the standby's API answers %s; want it to say %q", when, body, w)
			}
			if !strings.Contains(msg, w) {
				t.Errorf("%s: Sync now on the standby's status page says %q; want it to say %q", when, msg, w)
			}
		}
	}

	// No client certificate: the active instance's handshake refuses the
	// standby.
	expectRefused("without state.advertise_client_cert_file",
		"it requires a client certificate (tls_server_config's client_auth_type) and this standby presents none",
		"state.advertise_client_cert_file and state.advertise_client_key_file")

	// The standby's own certificate, given at a reload.
	certFile, keyFile := filepath.Join(e.dir, "standby.crt"), filepath.Join(e.dir, "standby.key")
	certPEM, keyPEM := pki.issueClient(20, "psa-syncd-standby")
	dtWrite(t, certFile, string(certPEM))
	dtWrite(t, keyFile, string(keyPEM))
	dtWrite(t, e.cfgPath, baseCfg+fmt.Sprintf("  advertise_client_cert_file: %s\n  advertise_client_key_file: %s\n", certFile, keyFile))
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if logs.contains("the state section changed") {
		t.Errorf("the reload naming the client certificate logs that the state section needs a restart:\n%s", logs.String())
	}
	expectForwarded("with state.advertise_client_cert_file")

	// Renewed in place by another CA than the active instance's
	// client_ca_file holds: refused at the next request, no reload.
	pki2 := ltNewPKI(t, t.TempDir())
	certPEM, keyPEM = pki2.issueClient(21, "psa-syncd-standby")
	dtWrite(t, certFile, string(certPEM))
	dtWrite(t, keyFile, string(keyPEM))
	expectRefused("a client certificate of another CA",
		"it refused the client certificate of this standby's state.advertise_client_cert_file, signed by a CA it does not trust",
		"client_ca_file")

	// The cluster's CA rotated to that CA: both listeners' certificates,
	// the CA file they and the standby read, in place. The standby
	// trusts the new CA without a reload.
	caPEM, err := os.ReadFile(pki2.caFile)
	if err != nil {
		t.Fatal(err)
	}
	serverPEM, serverKeyPEM := pki2.issue(22, "psa-syncd", net.IPv4(127, 0, 0, 1))
	dtWrite(t, pki.certFile, string(serverPEM))
	dtWrite(t, pki.keyFile, string(serverKeyPEM))
	dtWrite(t, pki.caFile, string(caPEM))
	client.CloseIdleConnections()
	client = clientOf(pki2)
	expectForwarded("after the CA's rotation")

	// A key file that no longer goes with the certificate (replaced
	// first, or by mistake): the certificate and key read before stay in
	// use, and the log says so, once.
	_, otherKeyPEM := pki2.issueClient(23, "psa-syncd-standby")
	dtWrite(t, keyFile, string(otherKeyPEM))
	expectForwarded("with a key file that does not go with the certificate")
	const warning = "A file of this standby's TLS towards the active instance changed and cannot be used"
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("the log says %d times %q; want once:\n%s", n, warning, logs.String())
	}
	// Named at a reload, it is refused, and the error does not quote it.
	err = b.Reload()
	if err == nil || !strings.Contains(err.Error(), "state.advertise_client_key_file: the key in "+keyFile+" cannot be used with the certificate in "+certFile) {
		t.Errorf("Reload with a key that is not the certificate's = %v; want it refused naming state.advertise_client_key_file", err)
	}
	if body := pemBody(t, otherKeyPEM); err != nil && strings.Contains(err.Error(), body[:20]) || strings.Contains(logs.String(), body[:20]) {
		t.Errorf("the key file's content is in the error or the log: %v\n%s", err, logs.String())
	}
	expectForwarded("after the refused reload")
}

// pemBody returns the base64 body of a PEM file's content.
func pemBody(t *testing.T, data []byte) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 3 {
		t.Fatalf("not a PEM file: %q", data)
	}
	return strings.Join(lines[1:len(lines)-1], "")
}
