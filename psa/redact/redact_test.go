package redact_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

func TestRedactor_String(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t/with+odd&chars"
	const cred = "acme+pubkey:privkey"
	r := redact.New(secret, cred, "", "ab")
	r.Set("token", "access-token-old")
	r.Set("token", "access-token-123")
	for _, in := range []string{
		"echo: Secret: " + secret,
		"echo: client_secret=" + url.QueryEscape(secret) + "&grant_type=client_credentials",
		"path /x/" + url.PathEscape(secret),
		`{"Secret":"s3cr3t\/with+odd\u0026chars"}`,
		"<pre>Secret: s3cr3t/with+odd&amp;chars</pre>",
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(cred)),
		"Authorization: Basic " + base64.RawURLEncoding.EncodeToString([]byte(cred)),
		"Authorization: Bearer access-token-123",
	} {
		if !r.Contains(strings.Repeat(".", 2*redact.MaxText) + in) {
			t.Errorf("Contains(%q after %d bytes) = false", in, 2*redact.MaxText)
		}
		got := r.String(in)
		if !strings.Contains(got, redact.Placeholder) || strings.Contains(got, "s3cr3t") || strings.Contains(got, "privkey") ||
			strings.Contains(got, "access-token") || strings.Contains(got, base64.RawStdEncoding.EncodeToString([]byte(cred))[:20]) {
			t.Errorf("String(%q) = %q, want every secret replaced", in, got)
		}
	}
	// A request sent before the renewal may answer after it: the token
	// it carried stays redacted for a few renewals, and then is dropped,
	// so that renewing does not grow the Redactor.
	if got := r.String("old access-token-old"); strings.Contains(got, "access-token-old") {
		t.Errorf("String = %q: the token replaced by the last renewal shows", got)
	}
	for i := range 3 {
		r.Set("token", fmt.Sprintf("access-token-new%d", i))
	}
	if got := r.String("old access-token-123"); strings.Contains(got, "access-token-123") {
		t.Errorf("String = %q: the token replaced three renewals ago shows", got)
	}
	if got := r.String("old access-token-old"); !strings.Contains(got, "access-token-old") {
		t.Errorf("String = %q: the token replaced four renewals ago is still redacted (the sets should be bounded)", got)
	}
	// Values under 4 bytes are not secrets: "ab" must not blank out words.
	if got := r.String("about abacus"); got != "about abacus" {
		t.Errorf("String with a 2-byte secret = %q, want it unchanged", got)
	}
}

func TestRedactor_truncates(t *testing.T) {
	t.Parallel()
	var nilRedactor *redact.Redactor
	long := strings.Repeat("é", redact.MaxText)
	got := nilRedactor.String(long)
	if len(got) > redact.MaxText || !strings.HasSuffix(got, "…[truncated]") || !strings.HasPrefix(got, "éé") {
		t.Errorf("String of %d bytes = %d bytes %q…, want at most %d ending in the mark", len(long), len(got), got[:10], redact.MaxText)
	}
	if got := nilRedactor.String("short"); got != "short" {
		t.Errorf("String(short) = %q", got)
	}
}

func TestRedactor_Response(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t/with+odd&chars"
	u := &url.URL{Scheme: "https", User: url.UserPassword("u", secret), Host: "psa.example", Path: "/v1/items", RawQuery: "token=" + url.QueryEscape(secret)}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u.String(), strings.NewReader("password="+url.QueryEscape(secret)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp := &http.Response{
		Status: "500 Internal Server Error", StatusCode: http.StatusInternalServerError, Request: req,
		Header: http.Header{"Retry-After": {"7"}, "X-Echo": {"Secret: " + secret}, "Set-Cookie": {"session=abc"}},
		Body:   io.NopCloser(strings.NewReader("echo " + secret)),
	}
	kept := redact.New(secret).Response(resp)
	if got := fmt.Sprintf("%+v %+v %+v", kept, kept.Request, *kept.Request.URL); strings.Contains(got, "s3cr3t") || strings.Contains(got, "session") {
		t.Errorf("kept response shows a secret: %s", got)
	}
	if kept.StatusCode != resp.StatusCode || kept.Header.Get("Retry-After") != "7" || kept.Request.Method != http.MethodPost ||
		kept.Request.URL.String() != "https://psa.example/v1/items" || len(kept.Request.Header) != 0 || kept.Request.GetBody != nil || kept.Request.Body != nil {
		t.Errorf("kept response = %+v, request %+v: want status, headers, method and URL only", kept, kept.Request)
	}
	if b, _ := io.ReadAll(kept.Body); len(b) != 0 {
		t.Errorf("kept body = %q, want empty", b)
	}
	if req.Header.Get("Authorization") == "" || resp.Header.Get("X-Echo") != "Secret: "+secret {
		t.Error("Response changed its argument")
	}
	if (*redact.Redactor)(nil).Response(nil) != nil {
		t.Error("Response(nil) != nil")
	}
}

// TestTooShort checks the bound that configuration checks refuse: a
// Redactor leaves a secret shorter than MinSecret in the text.
func TestTooShort(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"a", "ab", "abc"} {
		if !redact.TooShort(s) {
			t.Errorf("TooShort(%q) = false, want true", s)
		}
		if got := redact.New(s).String("x " + s + " y"); !strings.Contains(got, s) {
			t.Errorf("New(%q).String = %q: a secret that short is redacted after all; TooShort no longer matches the Redactor", s, got)
		}
	}
	for _, s := range []string{"", "abcd", "sim-secret"} {
		if redact.TooShort(s) {
			t.Errorf("TooShort(%q) = true, want false", s)
		}
	}
	if got := redact.New("abcd").String("x abcd y"); strings.Contains(got, "abcd") {
		t.Errorf(`New("abcd").String = %q, want the secret redacted`, got)
	}
}

// TestRedirectsWithoutCredentials: a redirect within the origin is
// followed as Go follows it; one to another port of the same host (where
// Go's client keeps even the Authorization header) is followed without
// any credential header, and one that would send the body again is handed
// over as the answer, without a request there; the client's own policy
// still applies.
func TestRedirectsWithoutCredentials(t *testing.T) {
	t.Parallel()
	var (
		mu        sync.Mutex
		elsewhere []string
	)
	other := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		elsewhere = append(elsewhere, fmt.Sprintf("%s %v %q", r.Method, r.Header, body))
		mu.Unlock()
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/here", http.StatusTemporaryRedirect)
		case "/away":
			http.Redirect(w, r, other.URL+"/sign-in", http.StatusFound)
		case "/away-with-body":
			http.Redirect(w, r, other.URL+"/sign-in", http.StatusTemporaryRedirect)
		default:
			fmt.Fprint(w, r.Header.Get("Secret"))
		}
	}))
	t.Cleanup(srv.Close)
	hc := &http.Client{}
	c := redact.RedirectsWithoutCredentials(hc)
	if hc.CheckRedirect != nil {
		t.Error("RedirectsWithoutCredentials changed the client it copies")
	}
	do := func(c *http.Client, method, path string) (*http.Response, string, error) {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader("password=s3cr3t-body")
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, body)
		req.Header.Set("Secret", "s3cr3t-header")
		req.Header.Set("Authorization", "Bearer s3cr3t-token")
		req.Header.Set("User-Agent", "psa-sync-test")
		resp, err := c.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, string(data), nil
	}
	if resp, body, err := do(c, http.MethodGet, "/moved"); err != nil || resp.Request.URL.Path != "/here" || body != "s3cr3t-header" {
		t.Errorf("a redirect within the origin = %v, %q, %v; want it followed as Go does", resp, body, err)
	}
	if resp, _, err := do(c, http.MethodGet, "/away"); err != nil || resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/sign-in" {
		t.Errorf("a redirect to another port = %v, %v; want it followed", resp, err)
	}
	if resp, _, err := do(c, http.MethodPost, "/away-with-body"); err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("a 307 to another port of a POST = %v, %v; want the 307 as the answer", resp, err)
	}
	mu.Lock()
	if len(elsewhere) != 1 || strings.Contains(elsewhere[0], "s3cr3t") || !strings.Contains(elsewhere[0], "psa-sync-test") {
		t.Errorf("the other origin got %q; want one GET without credentials, with the User-Agent", elsewhere)
	}
	mu.Unlock()
	refuse := redact.RedirectsWithoutCredentials(&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }})
	if resp, _, err := do(refuse, http.MethodGet, "/moved"); err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("with a client that follows none = %v, %v; want its policy kept", resp, err)
	}
}
