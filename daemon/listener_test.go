package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// ltPKI is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files into dir.
type ltPKI struct {
	caFile, certFile, keyFile string
	roots                     *x509.CertPool
	client                    tls.Certificate
	// issue makes another server certificate of the CA, for ip.
	issue func(serial int64, name string, ip net.IP) (certPEM, keyPEM []byte)
	// issueClient makes a client certificate of the CA.
	issueClient func(serial int64, name string) (certPEM, keyPEM []byte)
	// issueWith makes a server certificate of the CA from a template
	// that edit changes (its DNS names, its validity).
	issueWith func(serial int64, edit func(*x509.Certificate)) (certPEM, keyPEM []byte)
}

func ltNewPKI(t *testing.T, dir string) *ltPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "psa-syncd test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issueWith := func(serial int64, edit func(*x509.Certificate)) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "psa-syncd"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		edit(tmpl)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	issue := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte) {
		return issueWith(serial, func(c *x509.Certificate) {
			c.Subject.CommonName, c.ExtKeyUsage, c.IPAddresses = name, []x509.ExtKeyUsage{usage}, ips
		})
	}
	p := &ltPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
		roots:    x509.NewCertPool(),
	}
	p.roots.AddCert(ca)
	dtWrite(t, p.caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	serverCert, serverKey := issue(2, "psa-syncd", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	dtWrite(t, p.certFile, string(serverCert))
	dtWrite(t, p.keyFile, string(serverKey))
	clientCert, clientKey := issue(3, "prometheus", x509.ExtKeyUsageClientAuth, nil)
	if p.client, err = tls.X509KeyPair(clientCert, clientKey); err != nil {
		t.Fatal(err)
	}
	p.issue = func(serial int64, name string, ip net.IP) ([]byte, []byte) {
		return issue(serial, name, x509.ExtKeyUsageServerAuth, []net.IP{ip})
	}
	p.issueClient = func(serial int64, name string) ([]byte, []byte) {
		return issue(serial, name, x509.ExtKeyUsageClientAuth, nil)
	}
	p.issueWith = issueWith
	return p
}

// ltStart runs a daemon whose listener is secured by webConfig (a web
// configuration file's content) and returns its address.
func ltStart(t *testing.T, dir, webConfig string) string {
	t.Helper()
	addr, _ := ltRun(t, dir, webConfig, nil)
	return addr
}

// ltRun runs a daemon whose listener is secured by webConfig, written to
// dir/web-config.yml, logging to logger (nil: dtSetup's), and returns its
// address and stop, which stops it and checks that Run returned nil. The
// test's cleanup stops it if the test did not.
func ltRun(t *testing.T, dir, webConfig string, logger *slog.Logger) (addr string, stop func()) {
	t.Helper()
	webFile := filepath.Join(dir, "web-config.yml")
	dtWrite(t, webFile, webConfig)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{token: "secret-token", daemonOpts: Options{Listener: ln, WatchInterval: time.Hour, WebConfigFile: webFile,
		Logger: logger}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// ltDo sends method path to addr through client with the given
// Authorization header and returns the status code, or -1 with the error
// when no HTTP answer came.
func ltDo(t *testing.T, client *http.Client, scheme, addr, method, path, authorization string) (int, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, scheme+"://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		return -1, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// ltCase is a request and the status it must get.
type ltCase struct {
	method, path, authorization string
	want                        int
}

// ltExpect sends each case over HTTPS to addr through client.
func ltExpect(t *testing.T, client *http.Client, addr string, cases []ltCase) {
	t.Helper()
	for _, tc := range cases {
		code, err := ltDo(t, client, "https", addr, tc.method, tc.path, tc.authorization)
		if err != nil || code != tc.want {
			t.Errorf("%s %s with %q: %d %v, want %d", tc.method, tc.path, tc.authorization, code, err, tc.want)
		}
	}
}

func basicAuth(user, password string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

func bcryptHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestDaemon_Run_webConfigTLSClientCertsBasicAuth serves over TLS with
// required client certificates and basic authentication, and checks every
// gate over real TLS connections; the API token is the basic password of
// the mutating endpoints.
func TestDaemon_Run_webConfigTLSClientCertsBasicAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	addr := ltStart(t, dir, fmt.Sprintf(`tls_server_config:
  cert_file: %s
  key_file: %s
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: %s
basic_auth_users:
  prometheus: %s
  automation: %s
`, pki.certFile, pki.keyFile, pki.caFile, bcryptHash(t, "scrape-password"), bcryptHash(t, "secret-token")))

	withCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pki.roots, Certificates: []tls.Certificate{pki.client},
	}}}
	withoutCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.roots}}}
	scrape := basicAuth("prometheus", "scrape-password")

	// Plain HTTP gets no HTTP answer: the server speaks TLS only.
	if code, err := ltDo(t, &http.Client{Timeout: 30 * time.Second}, "http", addr, "GET", "/-/healthy", scrape); code != http.StatusBadRequest && err == nil {
		t.Errorf("plain HTTP: %d, want a failure or 400 (TLS only)", code)
	}
	if code, err := ltDo(t, withoutCert, "https", addr, "GET", "/-/healthy", scrape); err == nil {
		t.Errorf("TLS without a client certificate: %d, want the handshake to fail", code)
	}
	ltExpect(t, withCert, addr, []ltCase{
		{"GET", "/metrics", "", http.StatusUnauthorized},
		{"GET", "/metrics", basicAuth("prometheus", "wrong"), http.StatusUnauthorized},
		{"GET", "/-/healthy", basicAuth("prometheus", "wrong"), http.StatusUnauthorized},
		{"GET", "/-/healthy", scrape, http.StatusOK},
		// The probes need no basic credentials (the client certificate
		// still: the handshake asks for it).
		{"GET", "/-/healthy", "", http.StatusOK},
		{"GET", "/metrics", scrape, http.StatusOK},
		// Basic authentication alone does not allow mutations.
		{"POST", "/-/reload", scrape, http.StatusUnauthorized},
		// The Authorization header holds basic credentials, so a bearer
		// token alone does not pass the basic-auth gate...
		{"POST", "/-/reload", "Bearer secret-token", http.StatusUnauthorized},
		// ...and the token goes in as the basic password of a user whose
		// hash is of the token.
		{"POST", "/-/reload", basicAuth("automation", "secret-token"), http.StatusOK},
	})
}

// TestDaemon_Run_webConfigProbesWithoutCredentials: with basic_auth_users,
// exporter-toolkit answered 401 to every request without credentials, the
// probes' included, so a Kubernetes httpGet liveness probe restarted the
// pod for ever. GET and HEAD of /-/healthy and /-/ready without an
// Authorization header are now served, with the file's
// http_server_config headers, and nothing else is: other paths, other
// methods, paths that only start like a probe's, and wrong credentials on
// a probe path still get 401.
func TestDaemon_Run_webConfigProbesWithoutCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := ltStart(t, dir, "basic_auth_users:\n  prometheus: "+bcryptHash(t, "scrape-password")+
		"\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n")
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(method, path, authorization string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}
	for _, tc := range []struct {
		method, path, authorization string
		want                        int
	}{
		{"GET", "/-/healthy", "", http.StatusOK},
		{"HEAD", "/-/healthy", "", http.StatusOK},
		{"GET", "/-/ready", "", http.StatusOK},
		{"GET", "/-/ready?verbose=1", "", http.StatusOK},
		{"GET", "/-/healthy", basicAuth("prometheus", "scrape-password"), http.StatusOK},
		// Credentials are checked where they are given.
		{"GET", "/-/healthy", basicAuth("prometheus", "wrong"), http.StatusUnauthorized},
		{"GET", "/-/ready", "Bearer secret-token", http.StatusUnauthorized},
		// Nothing but the probes.
		{"GET", "/metrics", "", http.StatusUnauthorized},
		{"GET", "/", "", http.StatusUnauthorized},
		{"GET", "/api/v1/customers", "", http.StatusUnauthorized},
		{"GET", "/api/v1/export", "", http.StatusUnauthorized},
		{"POST", "/-/reload", "", http.StatusUnauthorized},
		{"POST", "/-/healthy", "", http.StatusUnauthorized},
		{"DELETE", "/-/ready", "", http.StatusUnauthorized},
		{"GET", "/-/healthy/", "", http.StatusUnauthorized},
		{"GET", "/-/healthyz", "", http.StatusUnauthorized},
		{"GET", "/-/healthy/../metrics", "", http.StatusUnauthorized},
		{"GET", "/-/ready/../api/v1/customers", "", http.StatusUnauthorized},
		{"GET", "//-/healthy", "", http.StatusUnauthorized},
	} {
		code, header, _ := get(tc.method, tc.path, tc.authorization)
		if code != tc.want {
			t.Errorf("%s %s with %q: %d, want %d", tc.method, tc.path, tc.authorization, code, tc.want)
		}
		if code == http.StatusOK && header.Get("X-Frame-Options") != "deny" {
			t.Errorf("%s %s: X-Frame-Options %q, want the web config file's headers on the probes too", tc.method, tc.path, header.Get("X-Frame-Options"))
		}
	}
	if _, _, body := get("GET", "/-/healthy", ""); body != "psa-syncd is Healthy.\n" {
		t.Errorf("GET /-/healthy without credentials: body %q", body)
	}
}

// TestDaemon_Run_webConfigTLS serves over TLS without basic authentication:
// reads need nothing more, and mutations take the bearer token as before.
func TestDaemon_Run_webConfigTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	addr := ltStart(t, dir, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", pki.certFile, pki.keyFile))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.roots}}}
	ltExpect(t, client, addr, []ltCase{
		{"GET", "/-/healthy", "", http.StatusOK},
		{"POST", "/-/reload", "", http.StatusUnauthorized},
		{"POST", "/-/reload", "Bearer wrong", http.StatusUnauthorized},
		{"POST", "/-/reload", "Bearer secret-token", http.StatusOK},
	})
}

func TestNew_badWebConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{"tls_server_config:\n  cert_file: missing.pem\n  key_file: missing-key.pem\n", "missing.pem"},
		{"basic_auth_users:\n  admin: not-a-bcrypt-hash\n", "bcrypt"},
		{"tls_server_cnfig: {}\n", "tls_server_cnfig"},
	} {
		p := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(&Config{}, "", Options{WebConfigFile: p})
		if err == nil || !strings.Contains(err.Error(), `daemon: web config file "`+p+`"`) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with web config %q: %v, want an error naming the file and %q", tc.content, err, tc.want)
		}
	}
}

// TestWebConfig_errorsHideBasicAuthPasswords: basic_auth_users written as
// "user:password" (htpasswd's form) is not a map: yaml's error quoted the
// start of the value, the password's first characters, when psa-syncd
// started and when a standby's status page read the file.
func TestWebConfig_errorsHideBasicAuthPasswords(t *testing.T) {
	t.Parallel()
	const password = "Pw9CANARY"
	p := filepath.Join(t.TempDir(), "web.yml")
	dtWrite(t, p, "basic_auth_users: \"ops:"+password+"\"\n")
	_, err := New(&Config{}, "", Options{WebConfigFile: p})
	if err == nil || !strings.Contains(err.Error(), "cannot unmarshal !!str into map") || strings.Contains(err.Error(), password[:3]) {
		t.Errorf("New with basic_auth_users as a string: %v; want yaml's error without the value", err)
	}
	var c tokenUserCache
	_, _, err = c.find(&webConfigCache{}, p, "token")
	if err == nil || !strings.Contains(err.Error(), "cannot unmarshal !!str into map") || strings.Contains(err.Error(), password[:3]) {
		t.Errorf("finding the token's user with basic_auth_users as a string: %v; want yaml's error without the value", err)
	}
}

// TestWebConfig_plainPasswordNotQuoted: a basic_auth_users value that is
// the password (or the API token) itself rather than its bcrypt hash:
// bcrypt's error quoted its first character when it was at least as long
// as a hash (59 characters; a 64-character hex token is). The message says
// what is wrong instead.
func TestWebConfig_plainPasswordNotQuoted(t *testing.T) {
	t.Parallel()
	token := "~" + strings.Repeat("9f86d081884c7d65", 4)[1:]
	p := filepath.Join(t.TempDir(), "web.yml")
	dtWrite(t, p, "basic_auth_users:\n  ops: \""+token+"\"\n")
	_, err := New(&Config{}, "", Options{WebConfigFile: p})
	if err == nil || strings.Contains(err.Error(), "~") || !strings.Contains(err.Error(), "bcrypt hash") {
		t.Errorf("New with a token in place of its bcrypt hash: %v; want an error saying a value is not a bcrypt hash, without any of the token", err)
	}
}

// TestWebConfig_pemKeyFileNotQuoted: a key pasted as tls_server_config's
// key_file, where its file's name belongs, was quoted whole, twice, in
// exporter-toolkit's error ("failed to read key_file (-----BEGIN PRIVATE
// KEY-----...): open -----BEGIN ..."), at start-up and in psa-syncd check.
func TestWebConfig_pemKeyFileNotQuoted(t *testing.T) {
	t.Parallel()
	const key = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKeyCANARY"
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	p := filepath.Join(dir, "web.yml")
	dtWrite(t, p, "tls_server_config:\n  cert_file: "+pki.certFile+"\n  key_file: |\n    -----BEGIN PRIVATE KEY-----\n    "+key+"\n    -----END PRIVATE KEY-----\n")
	_, err := New(&Config{}, "", Options{WebConfigFile: p})
	if err == nil || strings.Contains(err.Error(), "KeyCANARY") || !strings.Contains(err.Error(), "PEM content, not shown") {
		t.Errorf("New with a key in place of key_file's name: %v; want an error saying its PEM is not shown, without the key", err)
	}
	var out bytes.Buffer
	items := CheckTLS(p, &Config{}, time.Now(), &out)
	if len(items) == 0 || items[0].Result != CheckFail || strings.Contains(items[0].Detail, "KeyCANARY") || strings.Contains(out.String(), "KeyCANARY") {
		t.Errorf("CheckTLS: %+v\n%s\nwant a failed web config item without the key", items, out.String())
	}
}

// TestWebConfig_base64KeyFileNotQuoted: a key's base64 lines, without
// BEGIN and END, given as tls_server_config's key_file were quoted whole,
// twice, as the file exporter-toolkit could not open, at start-up and in
// psa-syncd check.
func TestWebConfig_base64KeyFileNotQuoted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	key, err := os.ReadFile(pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	body := pemBody(t, key)
	p := filepath.Join(dir, "web.yml")
	dtWrite(t, p, "tls_server_config:\n  cert_file: "+pki.certFile+"\n  key_file: \""+body+"\"\n")
	_, err = New(&Config{}, "", Options{WebConfigFile: p})
	if err == nil || strings.Contains(err.Error(), body[:20]) || !strings.Contains(err.Error(), "base64 content, not shown") {
		t.Errorf("New with a key's base64 in place of key_file's name: %v; want an error saying it is not shown, without the key", err)
	}
	var out bytes.Buffer
	items := CheckTLS(p, &Config{}, time.Now(), &out)
	if len(items) == 0 || items[0].Result != CheckFail || strings.Contains(items[0].Detail, body[:20]) || strings.Contains(out.String(), body[:20]) {
		t.Errorf("CheckTLS: %+v\n%s\nwant a failed web config item without the key", items, out.String())
	}
}

// TestWebConfig_plainValueNamesUser: a basic_auth_users value shorter
// than a bcrypt hash (the password itself) failed with bcrypt's
// "hashedSecret too short", which names no user, so the operator could not
// tell which of them to fix. The message names the user, none of the value,
// at start-up and in psa-syncd check.
func TestWebConfig_plainValueNamesUser(t *testing.T) {
	t.Parallel()
	const password = "Pw9CANARY"
	p := filepath.Join(t.TempDir(), "web.yml")
	dtWrite(t, p, "basic_auth_users:\n  prometheus: "+bcryptHash(t, "prometheus-password")+"\n  automation: "+password+"\n")
	ltWantRefused(t, p, `basic_auth_users: the value of user "automation" is not a bcrypt hash`, password)
}

// TestWebConfig_userWithColonQuotedUpToIt: a basic_auth_users key written
// as "user:password" cannot be a basic-auth user (the credentials are
// user:password): refused at start and by check, quoted up to the ':'
// only; before, it was accepted, and check's error for its value quoted
// the key whole.
func TestWebConfig_userWithColonQuotedUpToIt(t *testing.T) {
	t.Parallel()
	const password = "Pw9CANARY"
	p := filepath.Join(t.TempDir(), "web.yml")
	dtWrite(t, p, "basic_auth_users:\n  automation:"+password+": "+bcryptHash(t, "automation-password")+"\n")
	ltWantRefused(t, p, `basic_auth_users: the user "automation:..." holds a ':', which no basic-auth user name can`, password)
}

// ltWantRefused checks that the web config file p is refused with an error
// containing want and none of password (its first characters) at start-up
// (New) and by psa-syncd check (CheckTLS).
func ltWantRefused(t *testing.T, p, want, password string) {
	t.Helper()
	_, err := New(&Config{}, "", Options{WebConfigFile: p})
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), password[:3]) {
		t.Errorf("New with web config file %s: %v; want an error containing %q, without any of the password", p, err, want)
	}
	var out bytes.Buffer
	items := CheckTLS(p, &Config{}, time.Now(), &out)
	if len(items) == 0 || items[0].Result != CheckFail || !strings.Contains(items[0].Detail, want) || strings.Contains(out.String(), password[:3]) {
		t.Errorf("CheckTLS: %+v\n%s\nwant a failed web config item containing %q, without any of the password", items, out.String(), want)
	}
}

// TestDaemon_Run_basicAuthUsersChangedWhileRunning: exporter-toolkit reads
// basic_auth_users for every request without checking them: changed while
// psa-syncd runs to a password in place of a user's bcrypt hash, that
// user's requests are refused (401) and nothing said why. psa-syncd logs
// it once, naming the user and none of the value, however many requests
// follow, and logs the fix; the other users are served all along.
func TestDaemon_Run_basicAuthUsersChangedWhileRunning(t *testing.T) {
	t.Parallel()
	const password = "Pw9CANARY"
	dir := t.TempDir()
	webFile := filepath.Join(dir, "web-config.yml")
	ops := "  ops: " + bcryptHash(t, "ops-password") + "\n"
	good := "basic_auth_users:\n" + ops + "  automation: " + bcryptHash(t, password) + "\n"
	var logs bytes.Buffer
	addr, stop := ltRun(t, dir, good, slog.New(slog.NewTextHandler(&logs, nil)))
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(user, password string) int {
		code, err := ltDo(t, client, "http", addr, http.MethodGet, "/-/healthy", basicAuth(user, password))
		if err != nil {
			t.Errorf("GET /-/healthy as %s: %v", user, err)
		}
		return code
	}
	var codes []int
	codes = append(codes, get("automation", password))
	dtWrite(t, webFile, "basic_auth_users:\n"+ops+"  automation: "+password+"\n")
	codes = append(codes, get("ops", "ops-password"), get("automation", password), get("ops", "ops-password"))
	dtWrite(t, webFile, good)
	codes = append(codes, get("automation", password))
	stop()
	if want := []int{200, 200, 401, 200, 200}; !slices.Equal(codes, want) {
		t.Errorf("answers %v, want %v", codes, want)
	}
	const broken = `basic_auth_users: the value of user \"automation\" is not a bcrypt hash`
	if n := strings.Count(logs.String(), "its basic_auth_users cannot be used"); n != 1 || !strings.Contains(logs.String(), broken) ||
		strings.Contains(logs.String(), password[:3]) {
		t.Errorf("logs:\n%s\nwant one error naming the user (%s), without any of the value", logs.String(), broken)
	}
	if n := strings.Count(logs.String(), "its basic_auth_users can be used again"); n != 1 {
		t.Errorf("logs:\n%s\nwant the fix logged once", logs.String())
	}
}

// TestDaemon_Run_webConfigBrokenWhileRunning: exporter-toolkit reads the
// web config file for every request and logs why it cannot; a file broken
// while psa-syncd runs (basic_auth_users as "user:password") must not put
// the start of the password in that log line.
func TestDaemon_Run_webConfigBrokenWhileRunning(t *testing.T) {
	t.Parallel()
	const password = "Pw9CANARY"
	dir := t.TempDir()
	webFile := filepath.Join(dir, "web-config.yml")
	var logs bytes.Buffer
	addr, stop := ltRun(t, dir, "basic_auth_users:\n  ops: "+bcryptHash(t, "ops-password")+"\n", slog.New(slog.NewTextHandler(&logs, nil)))
	client := &http.Client{Timeout: 10 * time.Second}
	if code, err := ltDo(t, client, "http", addr, http.MethodGet, "/-/healthy", basicAuth("ops", "ops-password")); code != http.StatusOK {
		t.Errorf("GET /-/healthy = %d, %v; want 200", code, err)
	}
	dtWrite(t, webFile, "basic_auth_users: \"ops:"+password+"\"\n")
	code, err := ltDo(t, client, "http", addr, http.MethodGet, "/-/healthy", basicAuth("ops", "ops-password"))
	stop()
	if code != http.StatusInternalServerError || err != nil {
		t.Errorf("GET /-/healthy with the web config file broken = %d, %v; want 500", code, err)
	}
	if !strings.Contains(logs.String(), "cannot unmarshal !!str into map") || strings.Contains(logs.String(), password[:3]) {
		t.Errorf("logs:\n%s\nwant yaml's error without the value", logs.String())
	}
}

// TestDaemon_Run_webConfigReplacedByHugeFile: exporter-toolkit reads the
// web config file whole, with no cap, for every request and every TLS
// handshake. Replaced while psa-syncd runs by a file over the cap (here a
// valid one, padded: exporter-toolkit would read and use it), requests on
// an open connection are answered 500 and new connections are closed
// before it reads the file, logged once; the file back under the cap is
// served again. Before, every request read the whole file.
func TestDaemon_Run_webConfigReplacedByHugeFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	webFile := filepath.Join(dir, "web-config.yml")
	good := "basic_auth_users:\n  ops: " + bcryptHash(t, "ops-password") + "\n"
	var logs syncBuffer
	addr, _ := ltRun(t, dir, good, slog.New(slog.NewTextHandler(&logs, nil)))
	ops := basicAuth("ops", "ops-password")
	// kept sends its requests on one connection, opened before the file
	// grows: each body is read whole, so the connection is reused.
	var conns atomic.Int32
	kept := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conns.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	keptDo := func() (int, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/-/healthy", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", ops)
		resp, err := kept.Do(req)
		if err != nil {
			return -1, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if code, err := keptDo(); code != http.StatusOK {
		t.Fatalf("GET /-/healthy = %d, %v; want 200", code, err)
	}

	dtWrite(t, webFile, good+"# "+strings.Repeat("x", MaxWebConfigFile)+"\n")
	if code, err := keptDo(); code != http.StatusInternalServerError || conns.Load() != 1 {
		t.Errorf("GET /-/healthy on an open connection with the web config file over the cap = %d, %v (%d connections); want 500 on the first", code, err, conns.Load())
	}
	for range 3 {
		fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		if code, err := ltDo(t, fresh, "http", addr, http.MethodGet, "/-/healthy", ops); err == nil {
			t.Errorf("GET /-/healthy on a new connection with the web config file over the cap = %d; want the connection closed", code)
		}
	}
	if n := strings.Count(logs.String(), "Web config file is larger than the cap"); n != 1 || !strings.Contains(logs.String(), `cap="1 MiB"`) {
		t.Errorf("the web config file over the cap was logged %d times, want once naming the cap:\n%s", n, logs.String())
	}

	dtWrite(t, webFile, good)
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if code, err := ltDo(t, fresh, "http", addr, http.MethodGet, "/-/healthy", ops); code != http.StatusOK {
		t.Errorf("GET /-/healthy with the web config file back under the cap = %d, %v; want 200", code, err)
	}
	if !strings.Contains(logs.String(), "Web config file is under the cap again") {
		t.Errorf("the return under the cap was not logged:\n%s", logs.String())
	}
}

// TestDaemon_Run_webConfigTLSReplacedByHugeFile: over TLS, a new
// connection is closed before its handshake, in which exporter-toolkit
// reads the web config file whole, while the file is over the cap.
func TestDaemon_Run_webConfigTLSReplacedByHugeFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	good := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", pki.certFile, pki.keyFile)
	addr := ltStart(t, dir, good)
	client := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pki.roots}}}
	}
	if code, err := ltDo(t, client(), "https", addr, http.MethodGet, "/-/healthy", ""); code != http.StatusOK {
		t.Fatalf("GET /-/healthy = %d, %v; want 200", code, err)
	}
	webFile := filepath.Join(dir, "web-config.yml")
	dtWrite(t, webFile, good+"# "+strings.Repeat("x", MaxWebConfigFile)+"\n")
	if code, err := ltDo(t, client(), "https", addr, http.MethodGet, "/-/healthy", ""); err == nil {
		t.Errorf("GET /-/healthy over TLS with the web config file over the cap = %d; want the connection closed", code)
	}
	dtWrite(t, webFile, good)
	if code, err := ltDo(t, client(), "https", addr, http.MethodGet, "/-/healthy", ""); code != http.StatusOK {
		t.Errorf("GET /-/healthy with the web config file back under the cap = %d, %v; want 200", code, err)
	}
}

// TestDaemon_authenticateToActive: a standby's status page calls the
// active instance with the API token: a bearer token without
// basic_auth_users; with them, as the basic password of the user whose
// hash the token matches (the listener lets no request through without
// one of its users), whoever the browser signed in to the listener as.
func TestDaemon_authenticateToActive(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	e := dtSetup(t, dtOptions{token: token})
	auth := func() (string, error) {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "http://active.example/api/v1/sync", nil)
		err := e.d.authenticateToActive(req)
		return req.Header.Get("Authorization"), err
	}
	if got, err := auth(); err != nil || got != "Bearer "+token {
		t.Errorf("without a web config file: Authorization %q, %v; want the bearer token", got, err)
	}
	path := filepath.Join(t.TempDir(), "web-config.yml")
	e.d.webConfigFile = path
	dtWrite(t, path, "tls_server_config: {}\n")
	if got, err := auth(); err != nil || got != "Bearer "+token {
		t.Errorf("with a web config file without basic_auth_users: Authorization %q, %v; want the bearer token", got, err)
	}
	dtWrite(t, path, fmt.Sprintf("basic_auth_users:\n  ops: %s\n  prometheus: %s\n", bcryptHash(t, "ops-password"), bcryptHash(t, "scrape")))
	got, err := auth()
	if err == nil || got != "" || !strings.Contains(err.Error(), "none of them has the API token as its password") || strings.Contains(err.Error(), token) {
		t.Errorf("with basic_auth_users none of which has the token: Authorization %q, %v; want an error naming the missing user, without the token", got, err)
	}
	dtWrite(t, path, fmt.Sprintf("basic_auth_users:\n  ops: %s\n  automation: %s\n  prometheus: %s\n",
		bcryptHash(t, "ops-password"), bcryptHash(t, token), bcryptHash(t, "scrape")))
	if got, err := auth(); err != nil || got != basicAuth("automation", token) {
		t.Errorf("with the token's user in basic_auth_users: Authorization %q, %v; want basic automation:<token>", got, err)
	}
}

// While it runs, the daemon records in its SQLite state directory the URL
// at which a command on this machine reaches its listener, https:// for
// one that serves TLS, and removes it when it stops: a command that finds
// the state database locked suggests that URL.
func TestDaemon_Run_recordsItsURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	webFile := filepath.Join(dir, "web-config.yml")
	dtWrite(t, webFile, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", pki.certFile, pki.keyFile))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{daemonOpts: Options{Listener: ln, WatchInterval: time.Hour, WebConfigFile: webFile}})
	cfg := e.d.cfg.Load()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	want := "https://" + ln.Addr().String()
	deadline := time.Now().Add(10 * time.Second)
	for RecordedURL(cfg) != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := RecordedURL(cfg); got != want {
		t.Errorf("RecordedURL while the daemon runs = %q, want %q", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, URLFileName)); !os.IsNotExist(err) {
		t.Errorf("%s after the daemon stopped: %v, want it removed", URLFileName, err)
	}
}

// The name a command gives as -web.server-name to reach the listener at
// 127.0.0.1 is one its certificate holds, recorded beside the URL: none
// where it holds 127.0.0.1, a wildcard's with a first label.
func TestServerNameFor(t *testing.T) {
	t.Parallel()
	pki := ltNewPKI(t, t.TempDir())
	leaf := func(edit func(*x509.Certificate)) *x509.Certificate {
		certPEM, _ := pki.issueWith(10, edit)
		block, _ := pem.Decode(certPEM)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		leaf *x509.Certificate
		want string
	}{
		{"holds 127.0.0.1", leaf(func(c *x509.Certificate) {
			c.IPAddresses, c.DNSNames = []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"psa-syncd"}
		}), ""},
		{"DNS names", leaf(func(c *x509.Certificate) {
			c.DNSNames = []string{"psa-syncd-0.psa-syncd-peers.psa-sync.svc", "psa-syncd"}
		}), "psa-syncd-0.psa-syncd-peers.psa-sync.svc"},
		{"wildcard", leaf(func(c *x509.Certificate) { c.DNSNames = []string{"*.psa-syncd-peers.psa-sync.svc"} }), "psa-syncd.psa-syncd-peers.psa-sync.svc"},
		{"another IP only", leaf(func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.IPv4(10, 0, 0, 7)} }), ""},
		{"no certificate", nil, ""},
	} {
		if got := serverNameFor(tc.leaf, "127.0.0.1"); got != tc.want {
			t.Errorf("%s: serverNameFor = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// RecordedServerName reads URLFileName's second line, only for an
// https:// URL and only a host name; a file of one line (an earlier
// psa-syncd's) has none, and its URL reads as before.
func TestRecordedServerName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ content, url, name string }{
		{"https://127.0.0.1:9810\npsa-syncd.psa-sync.svc\n", "https://127.0.0.1:9810", "psa-syncd.psa-sync.svc"},
		{"https://127.0.0.1:9810\n", "https://127.0.0.1:9810", ""},
		{"http://127.0.0.1:9810\npsa-syncd\n", "http://127.0.0.1:9810", ""},
		{"https://127.0.0.1:9810\npsa-syncd; rm -rf /\n", "https://127.0.0.1:9810", ""},
		{"https://127.0.0.1:9810\n10.0.0.7\n", "https://127.0.0.1:9810", ""},
	} {
		cfg := &Config{StateDir: t.TempDir(), State: StateConfig{Driver: state.DriverSQLite}}
		dtWrite(t, filepath.Join(cfg.StateDir, URLFileName), tc.content)
		if u, name := RecordedURL(cfg), RecordedServerName(cfg); u != tc.url || name != tc.name {
			t.Errorf("%q: RecordedURL, RecordedServerName = %q, %q; want %q, %q", tc.content, u, name, tc.url, tc.name)
		}
	}
}

func TestLocalURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		tls  bool
		want string
	}{
		{"127.0.0.1:9810", false, "http://127.0.0.1:9810"},
		{":9810", false, "http://127.0.0.1:9810"},
		{"0.0.0.0:9810", true, "https://127.0.0.1:9810"},
		{"[::]:41234", false, "http://127.0.0.1:41234"},
		{"[::1]:9810", false, "http://[::1]:9810"},
		{"10.0.0.5:9810", true, "https://10.0.0.5:9810"},
	} {
		if got := LocalURL(tc.addr, tc.tls); got != tc.want {
			t.Errorf("LocalURL(%q, %t) = %q, want %q", tc.addr, tc.tls, got, tc.want)
		}
	}
}

// TestNew_webConfigFileTooLarge: a -web.config.file over the cap (another
// file named by mistake) is refused at start-up, naming the file and the
// cap; exporter-toolkit read it whole.
func TestNew_webConfigFileTooLarge(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "web.yml")
	dtWrite(t, p, "# "+strings.Repeat("x", MaxWebConfigFile)+"\n")
	_, err := New(&Config{}, "", Options{WebConfigFile: p})
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("New with a web config file over 1 MiB: %v; want an error naming the file and the cap", err)
	}
}

// TestWebConfigCache: the web config file is read again only when it
// changed (or changed too recently for its times to tell), and a changed
// file is read at once; a file over the cap is an error naming it and the
// cap, and is not read again while it stays so.
func TestWebConfigCache(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "web.yml")
	later := func() time.Time { return time.Now().Add(time.Minute) }
	c := &webConfigCache{now: later}
	read := func(want string, reads int) {
		t.Helper()
		data, err := c.read(p)
		if err != nil || string(data) != want || c.reads != reads {
			t.Errorf("read = %q, %v after %d reads of the file; want %q after %d", data, err, c.reads, want, reads)
		}
	}
	dtWrite(t, p, "tls_server_config: {}\n")
	read("tls_server_config: {}\n", 1)
	read("tls_server_config: {}\n", 1)
	dtWrite(t, p, "basic_auth_users: {}\n")
	read("basic_auth_users: {}\n", 2)
	read("basic_auth_users: {}\n", 2)
	if err := os.WriteFile(p, []byte("headers: {}\n#2345678\n"), 0o600); err != nil { // in place: same inode, same size
		t.Fatal(err)
	}
	// Just changed: its times may not tell the next change apart yet.
	c.now = time.Now
	read("headers: {}\n#2345678\n", 3)
	read("headers: {}\n#2345678\n", 4)
	c.now = later
	read("headers: {}\n#2345678\n", 5)
	read("headers: {}\n#2345678\n", 5)

	dtWrite(t, p, "# "+strings.Repeat("x", MaxWebConfigFile)+"\n")
	for range 2 {
		_, err := c.read(p)
		if err == nil || err.Error() != p+" is larger than 1 MiB, the most psa-sync reads of a web config file" || c.reads != 6 {
			t.Errorf("read of a file over the cap = %v after %d reads; want an error naming it and the cap, after 6", err, c.reads)
		}
	}
}

// TestDaemon_listenerCheckedBasic_readsWebConfigOnce: a request with basic
// credentials read the whole web config file; it is read again only when
// it changed, and the change takes effect without a restart.
func TestDaemon_listenerCheckedBasic_readsWebConfigOnce(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "secret-token"})
	e.d.webConfigFile = filepath.Join(t.TempDir(), "web-config.yml")
	e.d.webConfig.now = func() time.Time { return time.Now().Add(time.Minute) }
	dtWrite(t, e.d.webConfigFile, "basic_auth_users:\n  ops: "+bcryptHash(t, "ops-password")+"\n")
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/v1/customers", nil)
	req.SetBasicAuth("ops", "ops-password")
	for range 3 {
		if !e.d.listenerCheckedBasic(req) {
			t.Error("listenerCheckedBasic with basic_auth_users = false, want true")
		}
	}
	if e.d.webConfig.reads != 1 {
		t.Errorf("the web config file was read %d times for 3 requests, want once", e.d.webConfig.reads)
	}
	dtWrite(t, e.d.webConfigFile, "tls_server_config: {}\n")
	if e.d.listenerCheckedBasic(req) {
		t.Error("listenerCheckedBasic after basic_auth_users were removed = true, want false")
	}
}

// TestCheckTLS_unreadableCertificateOnce: a certificate file of the web
// config file that cannot be used (missing, not PEM) stops the listener,
// and psa-syncd check reported it twice, as the web config's failure and
// as the certificate's, two FAIL lines for one cause. It is one, naming
// the web config file, the setting and the certificate file; a second
// cause (a missing client CA beside a missing certificate) is a line of
// its own.
func TestCheckTLS_unreadableCertificateOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := ltNewPKI(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	dtWrite(t, garbage, "not a certificate\n")
	missing, missingCA := filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing-ca.pem")
	for _, tc := range []struct {
		name, config string
		want         []string // the FAIL lines, in order
	}{
		{"missing certificate", "  cert_file: " + missing + "\n  key_file: " + pki.keyFile + "\n",
			[]string{"FAIL web config: web config file {web}: tls_server_config.cert_file: open " + missing + ": no such file or directory: fix or renew it"}},
		{"certificate file without PEM", "  cert_file: " + garbage + "\n  key_file: " + pki.keyFile + "\n",
			[]string{"FAIL web config: web config file {web}: tls_server_config.cert_file: " + garbage + " holds no PEM certificate: fix or renew it"}},
		{"missing client CA", "  cert_file: " + pki.certFile + "\n  key_file: " + pki.keyFile + "\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: " + missingCA + "\n",
			[]string{"FAIL web config: web config file {web}: tls_server_config.client_ca_file: open " + missingCA + ": no such file or directory: fix or renew it"}},
		{"missing certificate and client CA", "  cert_file: " + missing + "\n  key_file: " + pki.keyFile + "\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: " + missingCA + "\n",
			[]string{"FAIL web config: web config file {web}: tls_server_config.cert_file: open " + missing + ": no such file or directory: fix or renew it",
				"FAIL tls certificate client_ca: tls_server_config.client_ca_file: open " + missingCA + ": no such file or directory: fix or renew it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "web.yml")
			dtWrite(t, p, "tls_server_config:\n"+tc.config)
			var out bytes.Buffer
			items := CheckTLS(p, &Config{}, time.Now(), &out)
			var fails []string
			for line := range strings.Lines(out.String()) {
				if strings.HasPrefix(line, "FAIL") {
					fails = append(fails, strings.TrimSuffix(line, "\n"))
				}
			}
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = strings.ReplaceAll(w, "{web}", strconv.Quote(p))
			}
			if !slices.Equal(fails, want) || CheckPassed(items) {
				t.Errorf("CheckTLS failed with\n%s\nwant\n%s", strings.Join(fails, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
