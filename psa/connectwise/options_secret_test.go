package connectwise

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A site or base URL that is not usable is named without the password it
// carries, parsed or not.
func TestNewClient_badURLHidesPassword(t *testing.T) {
	t.Parallel()
	for _, o := range []Option{
		WithSite("https://u:SECRET%zz@na.myconnectwise.net"),
		WithSite("https://u:SECRET@na.myconnectwise.net/v2025_1/"),
		WithBaseURL("https://u:SECRET%zz@na.myconnectwise.net/v2025_1/apis/3.0/"),
		WithBaseURL("u:SECRET@na.myconnectwise.net/v2025_1/apis/3.0/"),
	} {
		_, err := NewClient(o)
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("NewClient error = %v, want one without the password", err)
		}
	}
}

// TestClient_responseKeepsNoCredentials: the Response a call returns keeps
// the status, the headers and the paging links, not the request with the
// credential headers (nor the connection's buffers behind the body, which
// hold the request as sent), which a deep print of it (a test's failure
// message, a debugger) would show.
func TestClient_responseKeepsNoCredentials(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/company/companies/1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<https://example.com/next>; rel="next"`)
		fmt.Fprint(w, `{"id":1,"identifier":"Acme"}`)
	})
	_, resp, err := client.Companies.Get(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet || resp.NextPageURL != "https://example.com/next" {
		t.Errorf("Response = %d %s next %q, want 200 to a GET with the next page", resp.StatusCode, resp.Request.Method, resp.NextPageURL)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(testCompany + "+" + testPublic + ":" + testPrivate))
	for _, leak := range psatest.Leaks(resp, testPrivate, testClient, basic) {
		t.Errorf("the Response holds a credential: %s", leak)
	}
}
