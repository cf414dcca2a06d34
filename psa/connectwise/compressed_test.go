package connectwise

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestClient_companyInfoCompressed: company info is read outside the
// shared answer reader; an HTTP client that asks for gzip itself got its
// answer compressed and failed "invalid character '\x1f'". It is read
// decompressed; an answer in an encoding that no client reads fails
// naming it.
func TestClient_companyInfoCompressed(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{"gzip", "br"} {
		mux := http.NewServeMux()
		mux.HandleFunc("/login/companyinfo/msp", func(w http.ResponseWriter, r *http.Request) {
			resttest.EncodedJSON(w, enc, `{"CompanyName":"msp","Codebase":"v2025_1/","VersionCode":"v2025.1","CompanyID":"msp"}`)
		})
		mux.HandleFunc("/v2025_1/apis/3.0/company/companies/1", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"id":1,"name":"Acme"}`)
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		c, err := NewClient(WithSite(srv.URL), WithCompanyID(testCompany), WithKeys(testPublic, testPrivate), WithClientID(testClient),
			WithHTTPClient(&http.Client{Transport: psatest.AcceptGzip{}}))
		if err != nil {
			t.Fatal(err)
		}
		co, _, err := c.Companies.Get(t.Context(), 1)
		switch enc {
		case "gzip":
			if err != nil || co == nil || co.Name != "Acme" {
				t.Errorf("Companies.Get after gzip-compressed company info = %+v, %v; want company 1", co, err)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), "company info") || !strings.Contains(err.Error(), "Content-Encoding: br") {
				t.Errorf("Companies.Get after company info answered in br = %v; want an error naming company info and the encoding", err)
			}
		}
	}
}
