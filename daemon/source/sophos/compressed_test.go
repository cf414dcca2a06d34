package sophos_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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

// An answer larger than the client decodes (64 MiB; 64 KiB here) fails
// naming the bound, whether the server sends it as it is without end or
// gzip-compressed to a few KiB (a bomb): the client reads one byte past the
// bound, never the whole answer into memory.
func TestClient_hugeAnswerBounded(t *testing.T) {
	t.Parallel()
	endless := func(w io.Writer) {
		chunk := []byte(`{"accountId":"t1","productCode":"CIXA","billableQuantity":1},`)
		_, _ = fmt.Fprint(w, `{"items":[`)
		for {
			if _, err := w.Write(chunk); err != nil {
				return // the client hung up
			}
		}
	}
	for _, enc := range []string{"", "gzip"} {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
		})
		mux.HandleFunc("GET /whoami/v1", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"id":"5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a","idType":"partner"}`)
		})
		mux.HandleFunc("GET /partner/v1/billing/usage/2026/10", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if enc == "" {
				endless(w)
				return
			}
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			defer zw.Close()
			// 1 MiB of rows compresses to a few KiB.
			_, _ = fmt.Fprint(zw, `{"items":[`)
			for range 1 << 20 / 64 {
				if _, err := fmt.Fprint(zw, `{"accountId":"t1","productCode":"CIXA","billableQuantity":1},`); err != nil {
					return
				}
			}
		})
		base := newTestServer(t, mux)
		c, err := sophos.NewClient(sophos.WithCredentials("client-id", "client-secret"), sophos.WithAuthURL(base+"/token"), sophos.WithBaseURL(base),
			sophos.WithHTTPClient(&http.Client{Transport: psatest.AcceptGzip{}}))
		if err != nil {
			t.Fatal(err)
		}
		sophos.SetMaxBody(c, 64<<10)
		_, err = c.Billing.ListAllUsage(t.Context(), 2026, time.October, nil)
		if want := "response larger than 65536 bytes"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("encoding %q: ListAllUsage = %v, want an error saying %q", enc, err, want)
		}
	}
}
