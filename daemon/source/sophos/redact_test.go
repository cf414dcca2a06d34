package sophos_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// echo answers with status and a message that quotes the whole request,
// headers and body, in the shape given.
func echo(w http.ResponseWriter, r *http.Request, status int, shape func(msg string) any) {
	body, _ := io.ReadAll(r.Body)
	var b strings.Builder
	fmt.Fprintf(&b, "echo of %s %s:", r.Method, r.URL)
	for k, v := range r.Header {
		fmt.Fprintf(&b, " %s: %s;", k, strings.Join(v, ", "))
	}
	fmt.Fprintf(&b, " body: %s", body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(shape(b.String()))
}

// TestClient_echoedSecretsAreRedacted: Sophos ID and the Central API may
// quote the request in an error; neither the client secret (sent
// URL-encoded in the token form) nor the access token may come back in the
// client's errors, nor in the error values, printed with %v, %+v or %#v or
// walked as a deep printer does.
func TestClient_echoedSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	const secret = "sophos/client+secret&1234"
	const token = "sophos-access-token-98765"
	var tokenOK atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if !tokenOK.Load() {
			echo(w, r, http.StatusBadRequest, func(msg string) any { return map[string]string{"errorCode": "oauth.echo", "message": msg} })
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "bearer", "expires_in": 3600})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		echo(w, r, http.StatusBadRequest, func(msg string) any { return map[string]string{"error": "echo", "message": msg} })
	})
	base := newTestServer(t, mux)
	c, err := sophos.NewClient(sophos.WithCredentials("client-id", secret), sophos.WithAuthURL(base+"/token"), sophos.WithBaseURL(base), sophos.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error, secrets ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error from an echoing server", what)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error contains %q:\n%v", what, s, err)
			}
		}
		if !strings.Contains(err.Error(), "[REDACTED]") {
			t.Errorf("%s: error does not show the redaction:\n%v", what, err)
		}
		for _, leak := range psatest.Leaks(err, secrets...) {
			t.Errorf("%s: the error value holds a secret: %s", what, leak)
		}
	}
	_, err = c.PartnerID(t.Context())
	check("token request", err, secret, url.QueryEscape(secret))
	tokenOK.Store(true)
	_, err = c.PartnerID(t.Context())
	check("whoami", err, token, secret)
}

// TestClient_echoOfRenewedTokenRedacted: a request sent with a token that
// another request renews while it waits answers after the renewal; its
// error, quoting the request, must not show the old token either.
func TestClient_echoOfRenewedTokenRedacted(t *testing.T) {
	t.Parallel()
	var tokens, calls atomic.Int32
	arrived, renewed := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		n := tokens.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("sophos-token-%d", n), "token_type": "bearer", "expires_in": 3600})
	})
	mux.HandleFunc("GET /whoami/v1", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case calls.Add(1) == 1:
			close(arrived)
			<-renewed
			echo(w, r, http.StatusBadRequest, func(msg string) any { return map[string]string{"error": "echo", "message": msg} })
		case r.Header.Get("Authorization") == "Bearer sophos-token-1":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "p1", "idType": "partner", "apiHosts": map[string]string{"global": "https://api.example"}})
		}
	})
	base := newTestServer(t, mux)
	c, err := sophos.NewClient(sophos.WithCredentials("client-id", "sophos-client-secret"), sophos.WithAuthURL(base+"/token"), sophos.WithBaseURL(base), sophos.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.WhoAmI.Get(t.Context())
		errc <- err
	}()
	<-arrived
	if _, _, err := c.WhoAmI.Get(t.Context()); err != nil || tokens.Load() != 2 {
		t.Fatalf("WhoAmI.Get = %v after %d token requests; want the token renewed once", err, tokens.Load())
	}
	close(renewed)
	err = <-errc
	if err == nil || strings.Contains(err.Error(), "sophos-token-1") || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("WhoAmI.Get, sent before the renewal, = %v; want an error with the old token redacted", err)
	}
}

// TestClient_gzipEchoRedacted: Sophos ID or the Central API answer an
// error quoting the request gzip-compressed, whether Go's transport asked
// for it or the client's did: the error quotes the message, redacted, and
// never the compressed bytes.
func TestClient_gzipEchoRedacted(t *testing.T) {
	t.Parallel()
	const secret = "sophos/gz+secret&1234"
	const token = "sophos-gz-access-token-98765"
	var tokenOK atomic.Bool
	gzipped := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h(rec, r)
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			_, _ = zw.Write(rec.Body.Bytes())
			_ = zw.Close()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(z.Bytes())
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if !tokenOK.Load() {
			gzipped(func(w http.ResponseWriter, r *http.Request) {
				echo(w, r, http.StatusUnauthorized, func(msg string) any { return map[string]string{"errorCode": "oauth.echo", "message": msg} })
			})(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "bearer", "expires_in": 3600})
	})
	mux.HandleFunc("/", gzipped(func(w http.ResponseWriter, r *http.Request) {
		echo(w, r, http.StatusBadRequest, func(msg string) any { return "not the envelope: " + msg })
	}))
	base := newTestServer(t, mux)
	for _, hc := range []*http.Client{{}, {Transport: psatest.AcceptGzip{}}} {
		tokenOK.Store(false)
		c, err := sophos.NewClient(sophos.WithCredentials("client-id", secret), sophos.WithAuthURL(base+"/token"), sophos.WithBaseURL(base),
			sophos.WithMaxRetries(0), sophos.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		for _, what := range []string{"token request", "whoami"} {
			_, err = c.PartnerID(t.Context())
			if err == nil || !strings.Contains(err.Error(), "echo of") || !strings.Contains(err.Error(), "[REDACTED]") || strings.Contains(err.Error(), "\x1f\x8b") {
				t.Errorf("%s (client asks gzip itself: %t): error = %q, want the echo, redacted", what, hc.Transport != nil, err)
			}
			for _, leak := range psatest.Leaks(err, secret, url.QueryEscape(secret), token) {
				t.Errorf("%s (client asks gzip itself: %t): the error value holds a secret: %s", what, hc.Transport != nil, leak)
			}
			tokenOK.Store(true)
		}
	}
}
