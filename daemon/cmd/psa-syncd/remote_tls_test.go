package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/internal/tlsclient"
	"github.com/psa-sync/terraform-provider-psa/internal/tlsclient/tlsclienttest"
)

// testCA is a CA that signs the certificates of a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate, PEM
}

// newTestCA writes a CA certificate named name into dir.
func newTestCA(t *testing.T, dir, name string) testCA {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key))
	ca := testCA{cert: must(x509.ParseCertificate(der)), key: key, file: filepath.Join(dir, name+".pem")}
	writeFile(t, ca.file, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return ca
}

// issue writes a certificate for usage that ca signs, holding the DNS
// names dnsNames, and its key, as name.pem and name-key.pem in dir, and
// returns both paths.
func (ca testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage, dnsNames ...string) (string, string) {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dnsNames,
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key))
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})))
	return certFile, keyFile
}

// TestRun_remoteTLSClientCertificate: against a daemon whose listener
// serves TLS with a certificate for the DNS name psa-syncd only (as
// cert-manager's in the kubernetes-ha example) and requires client
// certificates, a -web.url command from the same machine gets through with
// -web.ca-file, -web.server-name, -web.cert-file and -web.key-file. Each
// one missing fails with exit code 3 and says which flag to set; files
// that cannot be used are a usage error naming the flag and the file,
// never quoting a key.
func TestRun_remoteTLSClientCertificate(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	dir := t.TempDir()
	ca, other := newTestCA(t, dir, "cluster-ca"), newTestCA(t, dir, "other-ca")
	ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth, "psa-syncd", "psa-syncd-0.psa-syncd-peers.psa-sync.svc")
	clientCert, clientKey := ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth, "psa-syncd")
	strangerCert, strangerKey := other.issue(t, dir, "stranger", x509.ExtKeyUsageClientAuth, "psa-syncd")
	serverOnlyCert, serverOnlyKey := ca.issue(t, dir, "server-only", x509.ExtKeyUsageServerAuth, "psa-syncd")
	web := filepath.Join(dir, "web-config.yml")
	writeFile(t, web, "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n"+
		"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: cluster-ca.pem\n")
	base := "https://" + strings.TrimPrefix(startDaemonEnv(t, cfg, nil, "-web.config.file", web), "http://")

	reload := []string{"reload", "-web.url", base, "-web.token-file", tokenFile}
	trust := []string{"-web.ca-file", ca.file, "-web.server-name", "psa-syncd"}
	for _, tc := range []struct {
		name  string
		flags []string
		code  int
		want  string
	}{
		{"no CA", []string{"-web.server-name", "psa-syncd"}, exitUnreachable, "the daemon's certificate is signed by a CA not among the system's CA roots (or SSL_CERT_FILE): give that CA's certificate in -web.ca-file"},
		{"another CA", []string{"-web.ca-file", other.file, "-web.server-name", "psa-syncd"}, exitUnreachable, "signed by a CA not among the CAs of -web.ca-file " + other.file},
		{"no server name", []string{"-web.ca-file", ca.file}, exitUnreachable, "the daemon's certificate does not hold 127.0.0.1, the host of -web.url: give -web.server-name a name it holds"},
		{"another server name", []string{"-web.ca-file", ca.file, "-web.server-name", "psa-syncd.example.com"}, exitUnreachable,
			"the daemon's certificate does not hold psa-syncd.example.com, the name of -web.server-name: give one it holds"},
		{"no client certificate", trust, exitUnreachable, "the daemon requires a client certificate (its web config file's client_auth_type) and this command presents none: " +
			"give one that its client_ca_file trusts in -web.cert-file and -web.key-file"},
		{"untrusted client certificate", append(trust, "-web.cert-file", strangerCert, "-web.key-file", strangerKey), exitUnreachable,
			"the daemon requires a client certificate signed by a CA of its client_ca_file, and the one of -web.cert-file " + strangerCert +
				" is not, so this command presented none: give one signed by such a CA"},
		{"a server's certificate", append(trust, "-web.cert-file", serverOnlyCert, "-web.key-file", serverOnlyKey), 2,
			"-web.cert-file: the certificate in " + serverOnlyCert + " is not for client authentication"},
		{"key of another certificate", append(trust, "-web.cert-file", clientCert, "-web.key-file", strangerKey), 2,
			"-web.key-file: the key in " + strangerKey + " cannot be used with the certificate in " + clientCert + " (-web.cert-file)"},
		{"key file holding a certificate", append(trust, "-web.cert-file", clientCert, "-web.key-file", clientCert), 2,
			"-web.key-file: " + clientCert + " holds no PEM private key"},
		{"missing CA file", []string{"-web.ca-file", filepath.Join(dir, "missing.pem")}, 2, "-web.ca-file: open " + filepath.Join(dir, "missing.pem")},
		{"certificate without key", append(trust, "-web.cert-file", clientCert), 2, "-web.cert-file and -web.key-file: give both"},
		{"through", append(trust, "-web.cert-file", clientCert, "-web.key-file", clientKey), 0, ""},
	} {
		code, stdout, stderr := runCmd(t, append(reload, tc.flags...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: reload %v: exit %d\nstdout: %s\nstderr: %s\nwant %d and %q", tc.name, tc.flags, code, stdout, stderr, tc.code, tc.want)
		}
		for _, key := range []string{strangerKey, clientKey} {
			if line := strings.Split(string(must(os.ReadFile(key))), "\n")[1]; strings.Contains(stderr, line) {
				t.Errorf("%s: reload's error quotes a key file:\n%s", tc.name, stderr)
			}
		}
		if code == 0 && stdout != "Reloaded config and mapping export.\n" {
			t.Errorf("%s: reload: stdout %q, want the daemon's answer", tc.name, stdout)
		}
	}

	// Every command through the one client: a read, and a download.
	mtls := append(trust, "-web.cert-file", clientCert, "-web.key-file", clientKey)
	if code, stdout, stderr := runCmd(t, append([]string{"status", "-web.url", base}, mtls...)...); code != 0 || stdout == "" {
		t.Errorf("status -web.url over mTLS: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	out := filepath.Join(dir, "backup.db")
	if code, stdout, stderr := runCmd(t, append([]string{"backup", "-output", out, "-web.url", base, "-web.token-file", tokenFile}, mtls...)...); code != 0 {
		t.Errorf("backup -web.url over mTLS: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// Over plain HTTP, or without -web.url, the files would be ignored.
	for _, args := range [][]string{
		append([]string{"reload", "-web.url", "http://127.0.0.1:9810", "-web.token-file", tokenFile}, trust...),
		{"status", "-config.file", cfg, "-web.ca-file", ca.file},
	} {
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "-web.ca-file "+ca.file) {
			t.Errorf("%v: exit %d, stderr %q; want 2, a usage error naming -web.ca-file", args, code, stderr)
		}
	}
}

// TestResolveCommand_keepsTheTLSFlags: the resolve command line that
// status prints after asking a daemon over TLS is one that gets through
// to it: with the files of -web.ca-file and the like status was given.
func TestResolveCommand_keepsTheTLSFlags(t *testing.T) {
	t.Parallel()
	e := &env{getenv: func(string) string { return "" }}
	rf := &remoteFlags{url: "https://127.0.0.1:9810", tokenFile: "/etc/psa-syncd/credentials/api-token", tls: remoteTLS{
		caFile: "/etc/psa-syncd/tls/ca.crt", certFile: "/etc/psa-syncd/tls/tls.crt", keyFile: "/etc/psa-syncd/tls/tls.key", serverName: "psa-syncd",
	}}
	const want = "psa-syncd resolve -web.url https://127.0.0.1:9810 -web.token-file /etc/psa-syncd/credentials/api-token " +
		"-web.ca-file /etc/psa-syncd/tls/ca.crt -web.cert-file /etc/psa-syncd/tls/tls.crt -web.key-file /etc/psa-syncd/tls/tls.key -web.server-name psa-syncd"
	if got := resolveCommand(e, rf); got != want {
		t.Errorf("resolveCommand = %q, want %q", got, want)
	}
}

// TestAPIClient_refusedAsksAgainThroughProxy: where a command's requests
// go through an http:// proxy (HTTPS_PROXY), it asks again for the TLS
// alert of a refused client certificate through a tunnel of that proxy
// (CONNECT, with the proxy's credentials), as a standby does, and says
// which flags to set; before, it did not ask behind a proxy, and the error
// kept Go's bare message.
func TestAPIClient_refusedAsksAgainThroughProxy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "cluster-ca")
	serverCert, err := tls.LoadX509KeyPair(ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth, "psa-syncd"))
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	proxy := tlsclienttest.NewProxy(t)
	proxyURL := proxy.URL(t, "operator", "proxy-password")
	r := remoteTLS{caFile: ca.file, serverName: "psa-syncd"}
	transport, err := r.transport()
	if err != nil {
		t.Fatal(err)
	}
	transport.Proxy = http.ProxyURL(proxyURL)
	c := &apiClient{base: srv.URL, tls: r, transport: transport}
	req := must(http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/-/reload", nil))
	lost := &url.Error{Op: "Post", URL: req.URL.String(), Err: &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}}
	msg := c.refused(req, lost)
	if want := "the daemon requires a client certificate (its web config file's client_auth_type) and this command presents none"; !strings.Contains(msg, want) {
		t.Errorf("refused through the proxy says %q; want %q", msg, want)
	}
	if n := proxy.Connects(); n != 1 {
		t.Errorf("the proxy got %d CONNECTs; want 1, the command's asking again", n)
	}
	if got, want := proxy.Authorization(), "Basic "+base64.StdEncoding.EncodeToString([]byte("operator:proxy-password")); got != want {
		t.Errorf("CONNECT with Proxy-Authorization %q; want the proxy URL's credentials %q", got, want)
	}

	// Through an https:// proxy it asks too, over TLS to the proxy with the
	// proxy's own settings; before, it did not ask. -web.ca-file and
	// -web.server-name are the daemon's only: before, Go checked the
	// proxy's certificate with them too, and refused it.
	tlsProxy := tlsclienttest.NewTLSProxy(t)
	proxyTLS := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
	proxyTLS.RootCAs.AddCert(tlsProxy.Certificate()) // the system's roots in a command
	r2 := remoteTLS{caFile: ca.file, serverName: "psa-syncd"}
	transport2, err := r2.transport()
	if err != nil {
		t.Fatal(err)
	}
	transport2.Proxy = http.ProxyURL(tlsProxy.URL(t, "operator", "proxy-password"))
	tlsclient.SetProxyTLS(transport2, proxyTLS)
	c2 := &apiClient{base: srv.URL, tls: r2, transport: transport2, proxyTLS: proxyTLS}
	req2 := must(http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/-/reload", nil))
	_, err = c2.do(req2, answerTimeout)
	if err == nil || !strings.Contains(err.Error(), "this command presents none") || tlsProxy.Connects() < 1 {
		t.Errorf("a request through an https:// proxy with -web.ca-file and -web.server-name: %v after %d CONNECTs; "+
			"want the daemon's refusal of a command without a client certificate, through the proxy", err, tlsProxy.Connects())
	}
	lost2 := &url.Error{Op: "Post", URL: req2.URL.String(), Err: &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}}
	before := tlsProxy.Connects()
	if msg := c2.refused(req2, lost2); !strings.Contains(msg, "this command presents none") || tlsProxy.Connects() != before+1 {
		t.Errorf("refused through an https:// proxy says %q after %d more CONNECTs; want the daemon's refusal, asked through it", msg, tlsProxy.Connects()-before)
	}

	// A -web.ca-file that holds the proxy's CA too serves for the proxy
	// (as when Go checked it with the daemon's settings), with a
	// -web.server-name that is the daemon's only: requests and the asking
	// again get through it.
	both := filepath.Join(dir, "cluster-and-proxy-ca.pem")
	writeFile(t, both, string(must(os.ReadFile(ca.file)))+string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsProxy.Certificate().Raw})))
	r4 := remoteTLS{caFile: both, serverName: "psa-syncd"}
	transport4, err := r4.transport()
	if err != nil {
		t.Fatal(err)
	}
	transport4.Proxy = http.ProxyURL(tlsProxy.URL(t, "operator", "proxy-password"))
	c4 := &apiClient{base: srv.URL, tls: r4, transport: transport4}
	before = tlsProxy.Connects()
	req4 := must(http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/-/reload", nil))
	if _, err := c4.do(req4, answerTimeout); err == nil || !strings.Contains(err.Error(), "this command presents none") || tlsProxy.Connects() < before+1 {
		t.Errorf("a request through an https:// proxy whose CA -web.ca-file holds: %v after %d more CONNECTs; want the daemon's refusal, through the proxy",
			err, tlsProxy.Connects()-before)
	}

	// A proxy whose certificate the system's roots do not hold: the
	// message says it is the proxy's, not the daemon's.
	r3 := remoteTLS{caFile: ca.file, serverName: "psa-syncd"}
	transport3, err := r3.transport()
	if err != nil {
		t.Fatal(err)
	}
	transport3.Proxy = http.ProxyURL(tlsProxy.URL(t, "operator", "proxy-password"))
	c3 := &apiClient{base: srv.URL, tls: r3, transport: transport3}
	req3 := must(http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/-/reload", nil))
	_, err = c3.do(req3, answerTimeout)
	if err == nil || !strings.Contains(err.Error(), "the certificate of the https:// proxy of HTTPS_PROXY was refused, not the daemon's: it is checked with the system's CA roots") ||
		strings.Contains(err.Error(), "the daemon's certificate") || strings.Contains(err.Error(), "proxy-password") {
		t.Errorf("a request through an https:// proxy whose certificate the system's roots do not hold: %v; want the proxy named as refused", err)
	}
}

// TestRun_checkAndValidateReadTheExportOverTLS: with export_url: self and
// the SQLite state database held by a psa-syncd whose listener serves TLS
// and requires client certificates, check and validate without -web.url
// read the export from it at the https:// URL it recorded, with
// -web.ca-file, -web.server-name, -web.cert-file and -web.key-file; before,
// they read it over plain HTTP only, and had no such flags. Without the
// flags they fail saying which to give.
func TestRun_checkAndValidateReadTheExportOverTLS(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	dir := filepath.Dir(cfg)
	exp := must(os.ReadFile(filepath.Join(dir, "mappings.json")))
	conf := string(must(os.ReadFile(cfg)))
	selfStore := strings.Replace(conf, "export_path: mappings.json", "export_url: self", 1)
	if selfStore == conf {
		t.Fatalf("ticketsSetup's config changed:\n%s", conf)
	}
	writeFile(t, cfg, selfStore)
	certs := t.TempDir()
	ca := newTestCA(t, certs, "cluster-ca")
	ca.issue(t, certs, "server", x509.ExtKeyUsageServerAuth, "psa-syncd")
	clientCert, clientKey := ca.issue(t, certs, "client", x509.ExtKeyUsageClientAuth, "psa-syncd")
	web := filepath.Join(certs, "web-config.yml")
	writeFile(t, web, "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n"+
		"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: cluster-ca.pem\n")
	base := "https://" + strings.TrimPrefix(startDaemonEnv(t, cfg, nil, "-web.config.file", web), "http://")

	mtls := []string{"-web.ca-file", ca.file, "-web.server-name", "psa-syncd", "-web.cert-file", clientCert, "-web.key-file", clientKey}
	transport, err := (remoteTLS{caFile: ca.file, serverName: "psa-syncd", certFile: clientCert, keyFile: clientKey}).transport()
	if err != nil {
		t.Fatal(err)
	}
	req := must(http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/api/v1/export", strings.NewReader(string(exp))))
	req.Header.Set("Authorization", "Bearer test-token")
	req.Header.Set("If-None-Match", "*")
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT /api/v1/export: %s", resp.Status)
	}
	_ = tokenFile // the export's read needs no token

	from := "psa-syncd's state database (export_url: self), read through the running psa-syncd that holds it, at " + base + "/api/v1/export"
	code, stdout, stderr := runCmd(t, append([]string{"validate", "-config.file", cfg}, mtls...)...)
	if code != 0 || !strings.Contains(stdout, "mapping export "+from+": valid (revision") {
		t.Errorf("validate with the TLS flags: exit %d\nstdout: %s\nstderr: %s\nwant the export read from the daemon over TLS", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, append([]string{"check", "-config.file", cfg}, mtls...)...)
	if code != 0 || !strings.Contains(stdout, "ok   mapping export: "+from+"\n") {
		t.Errorf("check with the TLS flags: exit %d\nstdout: %s\nstderr: %s\nwant the export read from the daemon over TLS", code, stdout, stderr)
	}
	// The billing impact report of a CI job reads it so too.
	planFile := filepath.Join(dir, "plan.json")
	writeFile(t, planFile, `{"format_version": "1.2", "terraform_version": "1.11.4", "errored": false, "resource_changes": []}`)
	impactCmd := []string{"plan", "-config.file", cfg, "-terraform-plan", planFile}
	code, stdout, stderr = runCmd(t, append(impactCmd, mtls...)...)
	if code != 0 || stdout == "" {
		t.Errorf("plan -terraform-plan with the TLS flags: exit %d\nstdout: %s\nstderr: %s\nwant the export read from the daemon over TLS", code, stdout, stderr)
	}

	for _, tc := range []struct {
		name  string
		flags []string
		code  int
		want  string
	}{
		{"no flags", nil, 1, "the daemon's certificate does not hold 127.0.0.1, the host of the URL it recorded: give -web.server-name a name it holds"},
		{"no CA", mtls[2:4], 1, "the daemon's certificate is signed by a CA not among the system's CA roots (or SSL_CERT_FILE): give that CA's certificate in -web.ca-file"},
		{"no client certificate", mtls[:4], 1, "this command presents none: give one that its client_ca_file trusts in -web.cert-file and -web.key-file"},
		{"missing CA file", []string{"-web.ca-file", filepath.Join(certs, "missing.pem")}, 2, "-web.ca-file: open " + filepath.Join(certs, "missing.pem")},
	} {
		for _, command := range [][]string{{"validate", "-config.file", cfg}, {"check", "-config.file", cfg}, impactCmd} {
			code, stdout, stderr := runCmd(t, append(slices.Clone(command), tc.flags...)...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("%s: %s %v: exit %d\nstdout: %s\nstderr: %s\nwant %d and %q", tc.name, command, tc.flags, code, stdout, stderr, tc.code, tc.want)
			}
		}
	}
	// A command that finds the database locked names the TLS flags in
	// its example command line: the server name its certificate holds,
	// which the daemon recorded beside its URL, and FILE standing for
	// what the state section does not name; filled in, it gets through.
	code, _, stderr = runCmd(t, "status", "-config.file", cfg)
	m := hintExample.FindStringSubmatch(stderr)
	if code != 1 || m == nil || !strings.Contains(m[1], "-web.url "+base+" -web.ca-file FILE -web.server-name psa-syncd") ||
		!strings.Contains(stderr, "-web.cert-file FILE and -web.key-file FILE too where its client_auth_type asks for a client certificate") {
		t.Errorf("status on the locked database: exit %d, stderr %q; want an example with the TLS flags", code, stderr)
	} else {
		example := strings.Fields(strings.ReplaceAll(m[1], "FILE", ca.file))
		if code, stdout, stderr := runCmd(t, append(example, "-web.cert-file", clientCert, "-web.key-file", clientKey)...); code != 0 {
			t.Errorf("%v, as the hint suggests: exit %d\nstdout: %s\nstderr: %s", example, code, stdout, stderr)
		}
	}

	// validate -export.file reads a file: the flags would be ignored.
	if code, _, stderr := runCmd(t, append([]string{"validate", "-config.file", cfg, "-export.file", filepath.Join(dir, "mappings.json")}, mtls...)...); code != 2 ||
		!strings.Contains(stderr, "-export.file is read from the file") {
		t.Errorf("validate -export.file with the TLS flags: exit %d, stderr %q; want a usage error", code, stderr)
	}
}

// TestLockedHint_namesTheTLSFlags: where the daemon holding the database
// serves TLS, as the URL it recorded says, or, with none, as the state
// section's advertise_* files say, the hint's example command line has
// the TLS flags: with the files a standby uses, which serve a command on
// the same machine too, and the advertised host as the server name; FILE
// and NAME where the state section names none.
func TestLockedHint_namesTheTLSFlags(t *testing.T) {
	t.Parallel()
	locked := errors.New(`state: state database "/var/lib/psa-syncd/psa-syncd.db" is locked by another psa-syncd process`)
	recorded := t.TempDir()
	writeFile(t, filepath.Join(recorded, daemon.URLFileName), "https://127.0.0.1:9810\n")
	named := t.TempDir()
	writeFile(t, filepath.Join(named, daemon.URLFileName), "https://127.0.0.1:9810\npsa-syncd.psa-sync.svc\n")
	advertised := daemon.StateConfig{
		Driver: state.DriverSQLite, AdvertiseHost: "psa-syncd-0.psa-syncd-peers.psa-sync.svc", AdvertiseCAFile: "/etc/psa-syncd/tls/ca.crt",
		AdvertiseClientCertFile: "/etc/psa-syncd/tls/tls.crt", AdvertiseClientKeyFile: "/etc/psa-syncd/tls/tls.key",
	}
	for _, tc := range []struct {
		name string
		cfg  *daemon.Config
		want []string
	}{
		{"recorded https, no advertise files", &daemon.Config{StateDir: recorded, State: daemon.StateConfig{Driver: state.DriverSQLite}},
			[]string{"`psa-syncd status -web.url https://127.0.0.1:9810 -web.ca-file FILE -web.server-name NAME`",
				"-web.ca-file: the CA of its certificate", "-web.server-name: a name its certificate holds",
				"-web.cert-file FILE and -web.key-file FILE too where its client_auth_type asks for a client certificate"}},
		{"recorded https, advertise files", &daemon.Config{StateDir: recorded, State: advertised},
			[]string{"`psa-syncd status -web.url https://127.0.0.1:9810 -web.ca-file /etc/psa-syncd/tls/ca.crt -web.server-name psa-syncd-0.psa-syncd-peers.psa-sync.svc " +
				"-web.cert-file /etc/psa-syncd/tls/tls.crt -web.key-file /etc/psa-syncd/tls/tls.key`", "its state section's advertise_* files"}},
		{"recorded https and a server name, no advertise files", &daemon.Config{StateDir: named, State: daemon.StateConfig{Driver: state.DriverSQLite}},
			[]string{"`psa-syncd status -web.url https://127.0.0.1:9810 -web.ca-file FILE -web.server-name psa-syncd.psa-sync.svc`",
				"-web.ca-file: the CA of its certificate"}},
		{"nothing recorded, advertise files", &daemon.Config{StateDir: t.TempDir(), State: advertised, Web: daemon.WebConfig{ListenAddress: ":9443"}},
			[]string{"`psa-syncd status -web.url https://127.0.0.1:9443 -web.ca-file /etc/psa-syncd/tls/ca.crt"}},
	} {
		hint := lockedHint(tc.cfg, "status", locked)
		for _, want := range tc.want {
			if !strings.Contains(hint, want) {
				t.Errorf("%s: lockedHint = %q, want %q in it", tc.name, hint, want)
			}
		}
	}
	// Plain HTTP recorded: no TLS flags, which -web.url http:// refuses.
	plain := t.TempDir()
	writeFile(t, filepath.Join(plain, daemon.URLFileName), "http://127.0.0.1:9810\n")
	if hint := lockedHint(&daemon.Config{StateDir: plain, State: advertised}, "status", locked); strings.Contains(hint, "-web.ca-file") {
		t.Errorf("lockedHint for a plain HTTP listener = %q, want no TLS flags", hint)
	}
}

// TestRun_remoteSyncTimeoutSaysStatusWithTheTLSFlags: sync -web.url that
// stops waiting for the daemon's pass names the status command line to
// follow it, with the TLS flags sync was given: without them, that
// command would not get through to a daemon that needs them.
func TestRun_remoteSyncTimeoutSaysStatusWithTheTLSFlags(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(runningPassHandler())
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	// httptest's certificate holds example.com.
	flags := []string{"-web.url", srv.URL, "-web.ca-file", caFile, "-web.server-name", "example.com"}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), append([]string{"sync", "-timeout", "1s"}, flags...), &stdout, &stderr, apiTokenEnv("test-token"))
	if want := "see `psa-syncd status " + strings.Join(flags, " ") + "`"; code != exitUnreachable || stdout.Len() != 0 || !strings.Contains(stderr.String(), want) {
		t.Errorf("sync -web.url over TLS -timeout 1s: exit %d\nstdout: %s\nstderr: %s\nwant exit %d and %q", code, stdout.String(), stderr.String(), exitUnreachable, want)
	}
}

// TestRun_localTLSFlagsWhereNothingReadsOverTLS: check, validate and plan
// -terraform-plan without -web.url refuse the TLS flags (exit 2) where the
// config has nothing read from the daemon on this machine: an export store
// that is not export_url: self, a PostgreSQL state database; before, they
// were silently ignored. With export_url: self and no psa-syncd holding
// the SQLite database, the command reads it and says the flags are unused.
func TestRun_localTLSFlagsWhereNothingReadsOverTLS(t *testing.T) {
	t.Parallel()
	cfg, _, _, _ := ticketsSetupToken(t)
	dir := filepath.Dir(cfg)
	conf := string(must(os.ReadFile(cfg)))
	if !strings.Contains(conf, "export_path: mappings.json") || !strings.Contains(conf, "state_dir: state\n") {
		t.Fatalf("ticketsSetup's config changed:\n%s", conf)
	}
	// Files the command can use: the refusal is for where they are given.
	ca := newTestCA(t, t.TempDir(), "cluster-ca")
	flags := []string{"-web.ca-file", ca.file, "-web.server-name", "psa-syncd"}
	planFile := filepath.Join(dir, "plan.json")
	writeFile(t, planFile, `{"format_version": "1.2", "terraform_version": "1.11.4", "errored": false, "resource_changes": []}`)
	commands := [][]string{{"validate", "-config.file", cfg}, {"check", "-config.file", cfg}, {"plan", "-config.file", cfg, "-terraform-plan", planFile}}
	given := "-web.ca-file " + ca.file + " -web.server-name psa-syncd: for the export of export_url: self read from the psa-syncd on this machine"
	for _, tc := range []struct{ name, conf, want string }{
		{"export file", conf, given + "; the config file's export is in " + filepath.Join(dir, "mappings.json") + ", read without them"},
		{"PostgreSQL", strings.NewReplacer("export_path: mappings.json", "export_url: self",
			"state_dir: state\n", "state_dir: state\nstate: {driver: postgres, url: \"postgres://psa@127.0.0.1:1/psa\"}\n").Replace(conf),
			given + " that holds an SQLite state database; this one is in PostgreSQL, read without them"},
	} {
		writeFile(t, cfg, tc.conf)
		for _, command := range commands {
			code, stdout, stderr := runCmd(t, append(slices.Clone(command), flags...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) || strings.Contains(stdout, "ok ") {
				t.Errorf("%s: %v with the TLS flags: exit %d\nstdout: %s\nstderr: %s\nwant 2 and %q", tc.name, command[0], code, stdout, stderr, tc.want)
			}
		}
	}

	// export_url: self in an SQLite database no psa-syncd holds.
	writeFile(t, cfg, strings.Replace(conf, "export_path: mappings.json", "export_url: self", 1))
	loaded, err := daemon.Load(cfg, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.OpenConfig(t.Context(), loaded.State.Database(loaded.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutExport(state.ExportVersion{Revision: 1, Digest: "sha256:x"}, must(os.ReadFile(filepath.Join(dir, "mappings.json")))); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, append([]string{"validate", "-config.file", cfg}, flags...)...)
	if code != 0 || !strings.Contains(stdout, "mapping export psa-syncd's state database (export_url: self): valid") ||
		!strings.Contains(stderr, "No psa-syncd holds the state database: the export is read from it, and the TLS flags for its API are unused") {
		t.Errorf("validate with the TLS flags, no psa-syncd running: exit %d\nstdout: %s\nstderr: %s\nwant 0 and a warning", code, stdout, stderr)
	}
}

// TestRemoteTLS_flagsHideAKey: the TLS flags, quoted in an error to give
// them again, leave out a -web.key-file value that may be the key itself
// (its base64 lines), not a file's name.
func TestRemoteTLS_flagsHideAKey(t *testing.T) {
	t.Parallel()
	const key = "MHcCAQEEIBq8m5aVYl0bQmW9pJ3xCANARYQ/kV6cZl2Y9sXr3tUhoAoGCCqGSM49AwEHoUQDQgAE"
	got := remoteTLS{caFile: "ca.pem", certFile: "client.pem", keyFile: key}.flags()
	if strings.Contains(got, "CANARY") || !strings.HasPrefix(got, "-web.ca-file ca.pem -web.cert-file client.pem -web.key-file [not shown") {
		t.Errorf("flags() = %q, want the key file's value left out", got)
	}
	if got := (remoteTLS{certFile: "client.pem", keyFile: "/etc/psa-syncd/client.key"}).flags(); got != "-web.cert-file client.pem -web.key-file /etc/psa-syncd/client.key" {
		t.Errorf("flags() = %q, want the key file's name", got)
	}
}
