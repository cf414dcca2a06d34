package daemon

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
	// The operator sees both in psa_sync_http_refused_total; requests
	// without a token are no guesses and are not counted.
	wantRefused(t, e.d, map[string]float64{RefusedWrongToken: maxWrongTokens + 1, RefusedTokenThrottled: 1, RefusedBusy: 0})
}

// wantRefused checks psa_sync_http_refused_total by reason.
func wantRefused(t *testing.T, d *Daemon, want map[string]float64) {
	t.Helper()
	for reason, n := range want {
		if got := testutil.ToFloat64(d.metrics.HTTPRefusedTotal.WithLabelValues(reason)); got != n {
			t.Errorf("psa_sync_http_refused_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
}

// An IPv6 client holds a /64 and picks a new address in it at will: its
// wrong tokens are counted for the whole /64, so rotating addresses does
// not get round the throttle. Other /64s, and IPv4 addresses (per
// address), are not affected.
func TestHandler_wrongTokensThrottledPerIPv6Prefix(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: "s3cret"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	serve := func(remote, token string) int {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/-/reload", nil)
		req.RemoteAddr = remote
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		e.d.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range maxWrongTokens {
		remote := "[2001:db8:1:2:" + strconv.FormatInt(int64(i+1), 16) + "::9]:40000"
		if code := serve(remote, "guess-"+strconv.Itoa(i)); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d from %s = %d, want 401", i+1, remote, code)
		}
	}
	if code := serve("[2001:db8:1:2:ffff:1:2:3]:40000", "s3cret"); code != http.StatusTooManyRequests {
		t.Errorf("the right token from a new address of the same /64 after %d wrong ones = %d, want 429", maxWrongTokens, code)
	}
	if code := serve("[2001:db8:1:3::9]:40000", "s3cret"); code != http.StatusOK {
		t.Errorf("the right token from the next /64 = %d, want 200", code)
	}
	for i := range maxWrongTokens {
		if code := serve("[::ffff:203.0.113.9]:40000", "guess-"+strconv.Itoa(i)); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d from an IPv4-mapped address = %d, want 401", i+1, code)
		}
	}
	if code := serve("203.0.113.10:40000", "s3cret"); code != http.StatusOK {
		t.Errorf("the right token from the next IPv4 address = %d, want 200 (IPv4 is counted per address)", code)
	}
	if code := serve("203.0.113.9:40000", "s3cret"); code != http.StatusTooManyRequests {
		t.Errorf("the right token from the IPv4 address that sent the wrong ones, unmapped = %d, want 429", code)
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

// TestClientAddr: the address a request is counted under, with
// 10.0.0.0/24 and 2001:db8::/64 trusted.
func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8::/64")}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1:1234", nil, "192.0.2.1"},
		{"192.0.2.1:1234", []string{"198.51.100.7"}, "192.0.2.1"},   // not a trusted peer
		{"10.0.0.5:1234", nil, "10.0.0.5"},                          // the proxy itself
		{"10.0.0.5:1234", []string{"198.51.100.7"}, "198.51.100.7"}, // its client
		{"10.0.0.5:1234", []string{"1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
		{"10.0.0.5:1234", []string{"1.2.3.4", "198.51.100.7"}, "198.51.100.7"}, // two header lines
		{"10.0.0.5:1234", []string{"198.51.100.7 , 10.0.0.9"}, "198.51.100.7"},
		{"10.0.0.5:1234", []string{"10.0.0.8, 10.0.0.9"}, "10.0.0.8"}, // every hop trusted
		{"10.0.0.5:1234", []string{"198.51.100.7, garbage, 10.0.0.9"}, "10.0.0.9"},
		{"10.0.0.5:1234", []string{"garbage"}, "10.0.0.5"},
		{"10.0.0.5:1234", []string{"198.51.100.7:443"}, "198.51.100.7"},
		{"10.0.0.5:1234", []string{"[2001:db9::1]:443"}, "2001:db9::1"},
		{"10.0.0.5:1234", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"[::ffff:10.0.0.5]:1234", []string{"198.51.100.7"}, "198.51.100.7"},
		{"[2001:db8::5]:1234", []string{"2001:db9::1"}, "2001:db9::1"},
		{"[2001:db9::5]:1234", []string{"198.51.100.7"}, "2001:db9::5"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = c.peer
		for _, v := range c.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		if got := clientAddr(req, trusted); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: clientAddr = %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// TestHandler_wrongTokensBehindATrustedProxy: with the proxy in
// web.trusted_proxies (set by a reload), wrong tokens count against the
// client its X-Forwarded-For names, so one client retrying an old token
// no longer gets the others behind the same Ingress refused; a left-most
// entry the client wrote itself, and the header of a peer that is not
// trusted, are not taken.
func TestHandler_wrongTokensBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{token: "s3cret", daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	raw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.cfgPath, strings.Replace(string(raw), "web:\n", "web:\n  trusted_proxies: [10.0.0.0/24, '2001:db8::/64']\n", 1))
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	serve := func(peer, forwardedFor, token string) int {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/-/reload", nil)
		req.RemoteAddr = peer
		if forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", forwardedFor)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		e.d.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	const ingress = "10.0.0.5:40000"
	for range maxWrongTokens {
		serve(ingress, "203.0.113.9", "old-token")
	}
	for _, c := range []struct {
		peer, forwardedFor string
		want               int
		why                string
	}{
		{ingress, "198.51.100.7", http.StatusOK, "another client behind the trusted proxy"},
		{"[2001:db8::5]:443", "198.51.100.7:51000", http.StatusOK, "another client behind a trusted IPv6 proxy that adds the port"},
		{ingress, "203.0.113.9", http.StatusTooManyRequests, "the client that sent the wrong tokens"},
		{ingress, "198.51.100.7, 203.0.113.9", http.StatusTooManyRequests, "that client with a left-most entry of its own"},
		{ingress, "203.0.113.9, 10.0.0.6", http.StatusTooManyRequests, "that client through two trusted proxies"},
		{ingress, "203.0.113.9, 10.0.0.6, 198.51.100.7", http.StatusOK, "another client that wrote the guesser's address left of its own"},
		{ingress, "", http.StatusOK, "the proxy itself"},
	} {
		if code := serve(c.peer, c.forwardedFor, "s3cret"); code != c.want {
			t.Errorf("%s (peer %s, X-Forwarded-For %q) with the right token = %d, want %d", c.why, c.peer, c.forwardedFor, code, c.want)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "Too many wrong API tokens") || !strings.Contains(out, "remote=203.0.113.9") {
		t.Errorf("log = %s; want the throttle's warning naming the client 203.0.113.9", out)
	}

	// A peer that is not trusted: its X-Forwarded-For is not taken, so
	// it cannot send wrong tokens under addresses of its choosing.
	const outsider = "192.0.2.50:1234"
	for i := range maxWrongTokens {
		serve(outsider, "198.51.100."+strconv.Itoa(100+i), "guess")
	}
	if code := serve(outsider, "198.51.100.99", "s3cret"); code != http.StatusTooManyRequests {
		t.Errorf("an untrusted peer that sent %d wrong tokens, each with another X-Forwarded-For, then the right token = %d, want 429", maxWrongTokens, code)
	}

	// The status page's sign-in is counted the same way: a browser
	// behind the proxy signs in while the guesser is refused.
	c := newUIClient(t, e.d)
	c.remoteAddr, c.header = ingress, http.Header{"X-Forwarded-For": {"198.51.100.7"}}
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	rec := c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {"s3cret"}, "csrf": {m[1]}, "next": {"/"}})
	if got := flash(c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String()); got != "Signed in." {
		t.Errorf("sign-in behind the trusted proxy while another client is throttled: %q, want Signed in.", got)
	}
}

// The status page's sign-in form counts wrong tokens with the API: once an
// address has sent too many, the right token does not sign it in.
func TestStatusPage_signInThrottled(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
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
	got := signIn(dtToken)
	if !strings.HasPrefix(got, "Not signed in: too many wrong API tokens from this address") {
		t.Errorf("sign-in with the right token after %d wrong ones shows %q", maxWrongTokens, got)
	}
	wantRefused(t, e.d, map[string]float64{RefusedWrongToken: maxWrongTokens, RefusedTokenThrottled: 1})
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
