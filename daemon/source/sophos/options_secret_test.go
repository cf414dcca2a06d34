package sophos_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

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
