package autotask

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestClient_zoneLookupCompressed: the zone lookup is read outside the
// shared answer reader; an HTTP client that asks for gzip itself got its
// answer compressed and failed "invalid character '\x1f'". It is read
// decompressed; an answer in an encoding that no client reads fails
// naming it.
func TestClient_zoneLookupCompressed(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{"gzip", "br"} {
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		mux.HandleFunc("GET /lookup", func(w http.ResponseWriter, r *http.Request) {
			resttest.EncodedJSON(w, enc, fmt.Sprintf(`{"zoneName":"Test Zone","url":%q,"webUrl":"https://ww5.autotask.net/","ci":1}`, srv.URL+baseURLPath+"/"))
		})
		mux.HandleFunc("GET "+apiPath+"/Companies/{id}", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"item":{"id":%s,"companyName":"Acme"}}`, r.PathValue("id"))
		})
		client, err := NewClient(WithZoneLookupURL(srv.URL+"/lookup"), WithCredentials(testUser, testSecret, testCode),
			WithHTTPClient(&http.Client{Transport: psatest.AcceptGzip{}}))
		if err != nil {
			t.Fatal(err)
		}
		co, _, err := client.Companies.Get(t.Context(), 7)
		switch enc {
		case "gzip":
			if err != nil || co == nil || co.CompanyName != "Acme" {
				t.Errorf("Companies.Get after a gzip-compressed zone lookup = %+v, %v; want company 7", co, err)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), "zone lookup") || !strings.Contains(err.Error(), "Content-Encoding: br") {
				t.Errorf("Companies.Get after a zone lookup answered in br = %v; want an error naming the zone lookup and the encoding", err)
			}
		}
	}
}
