package sophos_test

import (
	"compress/gzip"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestClient_compressedAnswers: the token and the Central API's answers
// are read by the client itself; an HTTP client that asks for gzip itself
// got them compressed and failed "invalid character '\x1f'". They are read
// decompressed; an answer in an encoding that no client reads fails
// naming it.
func TestClient_compressedAnswers(t *testing.T) {
	t.Parallel()
	compressed := func(enc, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if enc == "" {
				fmt.Fprint(w, body)
				return
			}
			w.Header().Set("Content-Encoding", enc)
			if enc != "gzip" {
				fmt.Fprint(w, "\x1b\x03compressed")
				return
			}
			zw := gzip.NewWriter(w)
			fmt.Fprint(zw, body)
			_ = zw.Close()
		}
	}
	const token = `{"access_token":"sophos-access-token","token_type":"bearer","expires_in":3600}`
	const whoami = `{"id":"partner-1","idType":"partner","apiHosts":{"global":"http://example.invalid"}}`
	for _, tc := range []struct {
		tokenEnc, whoamiEnc string
		want                string // in the error; "" for partner-1
	}{
		{"gzip", "gzip", ""},
		{"br", "", "token endpoint"},
		{"", "br", "whoami"},
	} {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /token", compressed(tc.tokenEnc, token))
		mux.HandleFunc("GET /whoami/v1", compressed(tc.whoamiEnc, whoami))
		base := newTestServer(t, mux)
		c, err := sophos.NewClient(sophos.WithCredentials("client-id", "client-secret"), sophos.WithAuthURL(base+"/token"), sophos.WithBaseURL(base),
			sophos.WithMaxRetries(0), sophos.WithHTTPClient(&http.Client{Transport: psatest.AcceptGzip{}}))
		if err != nil {
			t.Fatal(err)
		}
		id, err := c.PartnerID(t.Context())
		switch {
		case tc.want == "" && (err != nil || id != "partner-1"):
			t.Errorf("PartnerID with gzip-compressed answers = %q, %v; want partner-1", id, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Content-Encoding: br")):
			t.Errorf("PartnerID with the %s answered in br = %v; want an error naming it and the encoding", tc.want, err)
		}
	}
}
