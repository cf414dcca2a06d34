package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// TestRun_remoteAnswerEchoingTheToken: a proxy in front of psa-syncd that
// answers with a page quoting the request, Authorization header included,
// must not make the commands that ask a running daemon (-web.url) print
// the API token in their error, nor the password of a -web.url with user
// information, which Go sends as a basic credential.
func TestRun_remoteAnswerEchoingTheToken(t *testing.T) {
	t.Parallel()
	const (
		token    = "CANARY-api-token-5q9x"
		password = "CANARY-url-password-7r2k"
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "<html><body><h1>502 Bad Gateway</h1><pre>%s %s\nAuthorization: %s</pre></body></html>", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	t.Cleanup(proxy.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, token+"\n")
	web := "-web.url=" + proxy.URL
	for _, args := range [][]string{
		{"sync", web, "-web.token-file", tokenFile},
		{"plan", web, "-web.token-file", tokenFile},
		{"tickets", web, "-web.token-file", tokenFile},
		{"resolve", web, "-web.token-file", tokenFile, "-intent", "1", "-posted"},
		{"backup", web, "-web.token-file", tokenFile, "-output", filepath.Join(t.TempDir(), "backup.db")},
		{"status", strings.Replace(web, "http://", "http://ops:"+password+"@", 1)},
		// A user in -web.url sends the token as that user's basic password.
		{"sync", strings.Replace(web, "http://", "http://automation@", 1), "-web.token-file", tokenFile},
	} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 1 || !strings.Contains(stderr, "502 Bad Gateway") || !regexp.MustCompile(`Authorization: (Bearer|Basic) \[REDACTED\]`).MatchString(stderr) {
			t.Errorf("psa-syncd %s against an echoing proxy: exit %d, stderr %q; want 1 naming the 502 and the redacted credential", args[0], code, stderr)
		}
		basic := base64.StdEncoding.EncodeToString([]byte("ops:" + password))
		basicToken := base64.StdEncoding.EncodeToString([]byte("automation:" + token))
		for _, secret := range []string{token, password, basic, basicToken} {
			if strings.Contains(stdout+stderr, secret) {
				t.Errorf("psa-syncd %s printed the credential %q:\n%s\n%s", args[0], secret, stdout, stderr)
			}
		}
	}
}

// A -web.url with a user and password (a reader of a listener with
// basic_auth_users) reads with them, also when the API token is given
// (PSA_SYNCD_API_TOKEN in the environment, as in the HA example): the
// token goes as the password of a user without one.
func TestRun_remoteReadKeepsTheURLPassword(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, _ := r.BasicAuth()
		mu.Lock()
		got = append(got, user+":"+password)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"customers":[],"intents":[]}`)
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "the-token\n")
	for _, tc := range []struct{ user, want string }{{"ops:reader-pw@", "ops:reader-pw"}, {"automation@", "automation:the-token"}} {
		mu.Lock()
		got = nil
		mu.Unlock()
		code, _, stderr := runCmd(t, "status", "-web.url", strings.Replace(srv.URL, "http://", "http://"+tc.user, 1), "-web.token-file", tokenFile)
		mu.Lock()
		sent := got
		mu.Unlock()
		if code != 0 || len(sent) == 0 || sent[0] != tc.want {
			t.Errorf("status -web.url http://%s...: exit %d (%s), basic credentials sent %q; want %q", tc.user, code, stderr, sent, tc.want)
		}
	}
}

// TestRun_remoteFollowsNoRedirectToAnotherHost: what answers at -web.url
// (an ingress moved, a proxy, a server that is not psa-syncd) redirects
// to another port of the same host. Go's client kept the Authorization
// header there, for the same host name on any port: the other server got
// the API token (and the sync's body). The commands follow a redirect
// only within -web.url's origin, and say why they stop.
func TestRun_remoteFollowsNoRedirectToAnotherHost(t *testing.T) {
	t.Parallel()
	const token = "CANARY-api-token-3m8d"
	var (
		mu  sync.Mutex
		got []string
	)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" Authorization="+r.Header.Get("Authorization"))
		mu.Unlock()
		// An error, so that a command that followed ends at once.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprint(w, `{"error":"elsewhere"}`)
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, token+"\n")
	web := "-web.url=" + redirector.URL
	for _, args := range [][]string{
		{"sync", web, "-web.token-file", tokenFile},
		{"resolve", web, "-web.token-file", tokenFile, "-intent", "1", "-posted"},
		{"backup", web, "-web.token-file", tokenFile, "-output", filepath.Join(t.TempDir(), "backup.db")},
	} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 1 || !strings.Contains(stderr, "redirects to another host, port or scheme, which psa-syncd does not follow") {
			t.Errorf("psa-syncd %s against a -web.url that redirects elsewhere: exit %d, stderr %q; want 1 saying the redirect is not followed", args[0], code, stderr)
		}
		if strings.Contains(stdout+stderr, token) {
			t.Errorf("psa-syncd %s printed the token:\n%s\n%s", args[0], stdout, stderr)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 0 {
		t.Errorf("the server -web.url redirects to got: %s", strings.Join(got, "; "))
	}
}

// TestRun_remoteAnswerEchoingTheProxyCredentials: through an HTTP_PROXY
// with credentials, Go's transport sends them to the proxy of a plain
// http:// -web.url itself (Proxy-Authorization), so that the request does
// not show them; a proxy's page quoting the request's headers must not
// make the command print them. In a process of its own: Go reads
// HTTP_PROXY once per process.
func TestRun_remoteAnswerEchoingTheProxyCredentials(t *testing.T) {
	t.Parallel()
	const password = "CANARY-proxy-pass/word+3m8w"
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "<html><body><h1>502 Bad Gateway</h1><pre>%s %s\nProxy-Authorization: %s</pre></body></html>",
			r.Method, r.URL, r.Header.Get("Proxy-Authorization"))
	}))
	t.Cleanup(proxy.Close)
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL.User = url.UserPassword("psa-sync", password)
	// A host name, not the loopback address, which Go never proxies.
	cmd := exec.CommandContext(t.Context(), binary, "status", "-web.url", "http://psa-syncd.invalid:9810")
	cmd.Env = append(os.Environ(), "HTTP_PROXY="+proxyURL.String(), "http_proxy="+proxyURL.String(), "NO_PROXY=", "no_proxy=")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "Proxy-Authorization: Basic [REDACTED]") {
		t.Fatalf("status did not quote the proxy's page with its credentials redacted:\n%s", out)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("psa-sync:" + password))
	if strings.Contains(string(out), password) || strings.Contains(string(out), basic) {
		t.Errorf("status shows the proxy's credentials:\n%s", out)
	}
}

// TestRun_standbyForwardingThroughAProxyEchoingItsCredentials: a standby
// reaches a plain http:// state.advertise_url through an HTTP_PROXY with
// credentials, which Go's transport sends to the proxy itself
// (Proxy-Authorization), so that the forwarded request does not show them.
// A proxy's error quoting the request's headers must not take them to the
// API client the standby relays it to (forward), nor to the status page's
// message and the standby's log (callActive). In processes of their own:
// Go reads HTTP_PROXY once per process.
func TestRun_standbyForwardingThroughAProxyEchoingItsCredentials(t *testing.T) {
	t.Parallel()
	const password = "CANARY-standby-proxy-pw/7k2q"
	basic := base64.StdEncoding.EncodeToString([]byte("psa-sync:" + password))
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		msg := fmt.Sprintf("502 Bad Gateway: %s %s\nProxy-Authorization: %s", r.Method, r.URL, r.Header.Get("Proxy-Authorization"))
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}))
	t.Cleanup(proxy.Close)
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL.User = url.UserPassword("psa-sync", password)
	pgURL, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, nil)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// A host name, not the loopback address, which Go never proxies.
	state := fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  advertise_url: http://psa-syncd-active.invalid:9810\n", pgURL)
	writeFile(t, e.cfgPath, strings.Replace(string(cfg), "state_dir: state\n", state, 1))

	active := startSyncd(t, e.cfgPath)
	active.waitLog(t, "This psa-syncd is the active instance")
	standby := startSyncdEnv(t, e.cfgPath, append(os.Environ(), "HTTP_PROXY="+proxyURL.String(), "http_proxy="+proxyURL.String(), "NO_PROXY=", "no_proxy="))
	standby.waitLog(t, "Standby: serving the read-only API and metrics until the active instance's lock is gone")
	leaks := func(s string) bool { return strings.Contains(s, password) || strings.Contains(s, basic) }
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path, body string, header map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, standby.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// The API: a client's sync, forwarded and relayed.
	resp := post("/api/v1/sync", "{}", map[string]string{"Authorization": "Bearer test-token", "Content-Type": "application/json"})
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(data), "Proxy-Authorization: Basic [REDACTED]") || leaks(string(data)) {
		t.Errorf("POST /api/v1/sync on the standby, the proxy echoing = %d %s; want 502 quoting the proxy's page with its credentials redacted", resp.StatusCode, data)
	}

	// The status page: sign in, then sync now (callActive).
	csrf := strings.Repeat("c", 64)
	resp = post("/ui/sign-in", url.Values{"csrf": {csrf}, "token": {"test-token"}}.Encode(), map[string]string{"Cookie": "psa_syncd_csrf=" + csrf})
	resp.Body.Close()
	var session string
	for _, c := range resp.Cookies() {
		if c.Name == "psa_syncd_session" {
			session = c.Value
		}
	}
	if session == "" {
		t.Fatalf("sign-in on the standby's status page = %s, cookies %v; want a session", resp.Status, resp.Cookies())
	}
	mark := standby.mark()
	resp = post("/ui/sync", url.Values{"csrf": {csrf}}.Encode(), map[string]string{"Cookie": "psa_syncd_csrf=" + csrf + "; psa_syncd_session=" + session})
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if msg := loc.Query().Get("msg"); !strings.Contains(msg, "Proxy-Authorization: Basic [REDACTED]") || leaks(msg) {
		t.Errorf("sync now on the standby's status page, the proxy echoing: message %q; want the proxy's error with its credentials redacted", msg)
	}
	logged := standby.waitLogSince(t, "Could not request a sync from the status page of a standby", mark, startWait)
	if line, _ := json.Marshal(logged); leaks(string(line)) {
		t.Errorf("the standby logged the proxy's credentials: %s", line)
	}
}
