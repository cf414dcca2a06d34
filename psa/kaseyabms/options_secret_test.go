package kaseyabms_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A base URL or hostname that is not usable is named without the password
// it carries, parsed or not.
func TestNewClient_badURLHidesPassword(t *testing.T) {
	t.Parallel()
	for _, o := range []kaseyabms.Option{
		kaseyabms.WithBaseURL("https://u:SECRET%zz@api.bmsemea.kaseya.com/"),
		kaseyabms.WithBaseURL("u:SECRET@api.bmsemea.kaseya.com/"),
	} {
		_, err := kaseyabms.NewClient(o)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "base URL") {
			t.Errorf("NewClient error = %v, want one naming the base URL without its password", err)
		}
	}
	for _, h := range []string{"https://u:SECRET@bmsemea.kaseya.com", "u:SECRET@bmsemea.kaseya.com", "u:SECRET@bmsemea.kaseya.com/x"} {
		_, err := kaseyabms.APIHost(h)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "hostname") {
			t.Errorf("APIHost(%q) error = %v, want one naming the hostname without its password", h, err)
		}
	}
}

// A request sent with a token that another request renews while it waits
// answers after the renewal; its error, quoting the request, must not show
// the old token either.
func TestClient_echoOfRenewedTokenRedacted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	arrived, renewed := make(chan struct{}), make(chan struct{})
	f.mux.HandleFunc("GET /v2/admin/finance/services/7", func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-renewed
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"success":false,"error":{"code":400,"message":%q}}`, "echo: Authorization: "+r.Header.Get("Authorization"))
	})
	f.mux.HandleFunc("GET /v2/admin/finance/services/8", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer token-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"success":true,"result":{"id":8,"name":"Backup","isActive":true}}`)
	})
	errc := make(chan error, 1)
	go func() {
		_, _, err := f.client.Services.Get(t.Context(), 7)
		errc <- err
	}()
	<-arrived
	if _, _, err := f.client.Services.Get(t.Context(), 8); err != nil || f.auths.Load() != 2 {
		t.Fatalf("Services.Get(8) = %v after %d authentications; want the token renewed once", err, f.auths.Load())
	}
	close(renewed)
	err := <-errc
	if err == nil || strings.Contains(err.Error(), "token-1") || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("Services.Get(7), sent before the renewal, = %v; want an error with the old token redacted", err)
	}
}

// TestClient_responseKeepsNoCredentials: the Response a call returns keeps
// the status and the headers, not the request with the bearer token (nor
// the connection's buffers behind the body, which hold the request as
// sent), which a deep print of it (a test's failure message, a debugger)
// would show.
func TestClient_responseKeepsNoCredentials(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.mux.HandleFunc("GET /v2/admin/finance/services/7", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":true,"result":{"id":7,"name":"Backup"}}`)
	})
	_, resp, err := f.client.Services.Get(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet {
		t.Errorf("Response = %d %s, want 200 to a GET", resp.StatusCode, resp.Request.Method)
	}
	for _, leak := range psatest.Leaks(resp, "Bearer token-1") {
		t.Errorf("the Response holds a credential: %s", leak)
	}
}
