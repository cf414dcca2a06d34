package sophos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A bad auth or base URL is named without the password it carries:
// url.Parse's error repeats the whole value.
func TestNewClient_badURLHidesPassword(t *testing.T) {
	t.Parallel()
	for _, o := range []sophos.Option{
		sophos.WithAuthURL("https://u:SECRET%zz@id.sophos.com/api/v2/oauth2/token"),
		sophos.WithBaseURL("https://u:SECRET%zz@api.central.sophos.com/"),
		sophos.WithBaseURL("u:SECRET@api.central.sophos.com/"),
	} {
		_, err := sophos.NewClient(o)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "URL") {
			t.Errorf("NewClient error = %v, want one naming the URL without its password", err)
		}
	}
}

// TestClient_responseKeepsNoCredentials: the Response a call returns keeps
// the status and the headers, not the request with the access token (nor
// the connection's buffers behind the body, which hold the request as
// sent), which a deep print of it (a test's failure message, a debugger)
// would show.
func TestClient_responseKeepsNoCredentials(t *testing.T) {
	t.Parallel()
	const token = "sophos-access-token-24680"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "bearer", "expires_in": 3600})
	})
	mux.HandleFunc("GET /whoami/v1", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "p1", "idType": "partner", "apiHosts": map[string]string{"global": "https://api.central.sophos.com"}})
	})
	base := newTestServer(t, mux)
	c, err := sophos.NewClient(sophos.WithCredentials("client-id", "client-secret-13579"), sophos.WithAuthURL(base+"/token"), sophos.WithBaseURL(base))
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := c.WhoAmI.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet {
		t.Errorf("Response = %d %s, want 200 to a GET", resp.StatusCode, resp.Request.Method)
	}
	for _, leak := range psatest.Leaks(resp, token, "client-secret-13579") {
		t.Errorf("the Response holds a credential: %s", leak)
	}
}

// TestClient_retryLogHidesAuthURLQuery: a token URL set by hand with a
// secret in its query (auth_url) was quoted whole in the reason of every
// "Retrying Sophos request" line, where net/http's error repeats the
// request's URL; the error after the last retry already left it out.
func TestClient_retryLogHidesAuthURLQuery(t *testing.T) {
	t.Parallel()
	const secret = "QuerySecret-13579"
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nothing listens there any more: every request fails to connect
	var logs bytes.Buffer
	c, err := sophos.NewClient(
		sophos.WithCredentials("client-id", "client-secret-1234"),
		sophos.WithAuthURL(closed.URL+"/api/v2/oauth2/token?client_secret="+secret),
		sophos.WithMaxRetries(2),
		sophos.WithSleep(func(context.Context, time.Duration) error { return nil }),
		sophos.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
	)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PartnerID(t.Context())
	if err == nil {
		t.Fatal("PartnerID: no error from a closed port")
	}
	if !strings.Contains(logs.String(), "Retrying Sophos request") {
		t.Fatalf("no retry was logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(err.Error(), secret) {
		t.Errorf("the token URL's query shows:\nerror: %v\nlog:\n%s", err, logs.String())
	}
}
