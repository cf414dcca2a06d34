package sophos_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
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
// client's errors.
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
	}
	_, err = c.PartnerID(t.Context())
	check("token request", err, secret, url.QueryEscape(secret))
	tokenOK.Store(true)
	_, err = c.PartnerID(t.Context())
	check("whoami", err, token, secret)
}
