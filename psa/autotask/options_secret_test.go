package autotask

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A base or zone lookup URL that is not usable is named without the
// password it carries, parsed or not.
func TestNewClient_badURLHidesPassword(t *testing.T) {
	t.Parallel()
	for _, o := range []Option{
		WithBaseURL("https://u:SECRET%zz@webservices5.autotask.net/ATServicesRest/"),
		WithBaseURL("u:SECRET@webservices5.autotask.net/ATServicesRest/"),
		WithZoneLookupURL("u:SECRET@webservices.autotask.net"),
	} {
		_, err := NewClient(o)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "URL") {
			t.Errorf("NewClient error = %v, want one naming the URL without its password", err)
		}
	}
}

// TestClient_responseKeepsNoCredentials: the Response a call returns keeps
// the status and the headers, not the request with the credential headers
// (nor the connection's buffers behind the body, which hold the request as
// sent), which a deep print of it (a test's failure message, a debugger)
// would show.
func TestClient_responseKeepsNoCredentials(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/Companies/1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":1,"companyName":"Acme"}}`)
	})
	_, resp, err := client.Companies.Get(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet {
		t.Errorf("Response = %d %s, want 200 to a GET", resp.StatusCode, resp.Request.Method)
	}
	for _, leak := range psatest.Leaks(resp, testSecret, testCode) {
		t.Errorf("the Response holds a credential: %s", leak)
	}
}
