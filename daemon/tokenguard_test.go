package daemon

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An API token cannot be guessed at the speed of the network: after
// maxWrongTokens wrong bearer tokens within wrongTokenWindow, the address
// that sent them is refused with 429, even with the right token, until the
// window has passed; other addresses, and requests without a token, are
// not affected.
func TestHandler_wrongTokensThrottled(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	e.d.now = func() time.Time { return clock }
	serve := func(remote, token string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/-/reload", nil)
		req.RemoteAddr = remote
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		e.d.Handler().ServeHTTP(rec, req)
		return rec
	}
	const guesser, operator = "203.0.113.9:40000", "198.51.100.7:5555"

	for range 2 * maxWrongTokens {
		if rec := serve(guesser, ""); rec.Code != http.StatusUnauthorized {
			t.Fatalf("POST /-/reload without a token = %d, want 401", rec.Code)
		}
	}
	for i := range maxWrongTokens {
		if rec := serve(guesser, "guess-"+strconv.Itoa(i)); rec.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d = %d, want 401", i+1, rec.Code)
		}
		clock = clock.Add(time.Second)
	}
	// The port is not part of the address: a client opens a connection
	// per request.
	rec := serve("203.0.113.9:40002", "s3cret")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the right token after %d wrong ones from the same address = %d %s, want 429", maxWrongTokens, rec.Code, rec.Body)
	}
	if got, want := rec.Header().Get("Retry-After"), "50"; got != want {
		t.Errorf("Retry-After = %q, want %q (the window began with the first wrong token, 10 s ago)", got, want)
	}
	if body := rec.Body.String(); !strings.Contains(body, "too many wrong API tokens from this address") || strings.Contains(body, "s3cret") {
		t.Errorf("429 body = %s", body)
	}
	if rec := serve(operator, "s3cret"); rec.Code != http.StatusOK {
		t.Errorf("the right token from another address = %d %s, want 200", rec.Code, rec.Body)
	}
	clock = clock.Add(wrongTokenWindow)
	if rec := serve(guesser, "s3cret"); rec.Code != http.StatusOK {
		t.Errorf("the right token once the window has passed = %d %s, want 200", rec.Code, rec.Body)
	}
	if rec := serve(guesser, "wrong"); rec.Code != http.StatusUnauthorized {
		t.Errorf("a wrong token in a new window = %d, want 401", rec.Code)
	}
}

// TestHandler_wrongTokensBehindAProxyLogTheClient: behind a reverse proxy
// every client has the proxy's address, so one client sending wrong
// tokens (a job with an old token, retrying) gets every client refused,
// the operator included, and the log named only the proxy. It now also
// carries the request's X-Forwarded-For, to find that client (which is not
// trusted for anything else: the throttle still counts the proxy's
// address).
func TestHandler_wrongTokensBehindAProxyLogTheClient(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{token: "s3cret", daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	serve := func(forwardedFor, token string) int {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/-/reload", nil)
		req.RemoteAddr = "10.0.0.5:40000" // the ingress controller
		req.Header.Set("X-Forwarded-For", forwardedFor)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		e.d.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for range maxWrongTokens {
		serve("203.0.113.9", "old-token")
	}
	if code := serve("198.51.100.7", "s3cret"); code != http.StatusTooManyRequests {
		t.Errorf("the right token from another client behind the proxy = %d, want 429 (the proxy's address is throttled)", code)
	}
	out := logs.String()
	if !strings.Contains(out, "Too many wrong API tokens") || !strings.Contains(out, "remote=10.0.0.5") || !strings.Contains(out, "forwarded_for=203.0.113.9") {
		t.Errorf("log = %s; want the throttle's warning naming the proxy and forwarded_for=203.0.113.9", out)
	}
	if strings.Contains(out, "old-token") || strings.Contains(out, "s3cret") {
		t.Errorf("log shows a token: %s", out)
	}
}

// The status page's sign-in form counts wrong tokens with the API: once an
// address has sent too many, the right token does not sign it in.
func TestStatusPage_signInThrottled(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "tok"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	signIn := func(token string) string {
		t.Helper()
		rec := c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {token}, "csrf": {m[1]}, "next": {"/"}})
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("POST /ui/sign-in = %d", rec.Code)
		}
		return flash(c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String())
	}
	for range maxWrongTokens - 1 {
		signIn("wrong")
	}
	// The API's wrong tokens from the same address count too.
	if rec := dtServe(t, e.d, http.MethodPost, "/-/reload", "wrong", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("POST /-/reload with a wrong token = %d", rec.Code)
	}
	got := signIn("tok")
	if !strings.HasPrefix(got, "Not signed in: too many wrong API tokens from this address") {
		t.Errorf("sign-in with the right token after %d wrong ones shows %q", maxWrongTokens, got)
	}
	if e.d.signedIn(func() *http.Request {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		for k, v := range c.cookies {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		return req
	}()) {
		t.Error("signed in after too many wrong tokens")
	}
}

// tokenGuard remembers at most maxTokenClients addresses: a guesser with
// many addresses cannot grow it without bound. Addresses whose window has
// passed go first, then the oldest.
func TestTokenGuard_bounded(t *testing.T) {
	t.Parallel()
	var g tokenGuard
	start := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	for i := range maxTokenClients {
		g.wrong("10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256), start.Add(time.Duration(i)*time.Millisecond))
	}
	for range maxWrongTokens {
		g.wrong("10.0.0.1", start.Add(time.Second))
	}
	g.wrong("192.0.2.1", start.Add(2*time.Second))
	if n := len(g.clients); n != maxTokenClients {
		t.Errorf("%d addresses remembered, want %d", n, maxTokenClients)
	}
	if _, ok := g.clients["10.0.0.0"]; ok {
		t.Error("the oldest address was kept")
	}
	if _, blocked := g.blocked("10.0.0.1", start.Add(3*time.Second)); !blocked {
		t.Error("an address with too many wrong tokens was forgotten before the oldest")
	}
	g.wrong("192.0.2.2", start.Add(wrongTokenWindow+time.Hour))
	if n := len(g.clients); n != 1 {
		t.Errorf("%d addresses remembered once every window has passed, want 1", n)
	}
}
