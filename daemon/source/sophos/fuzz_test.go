package sophos_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
)

// FuzzSophosResponse feeds arbitrary answers to the Sophos client: the
// token endpoint, whoami and the partner API (tenants and billing usage,
// with key-based paging) each answer with a fuzzed status and body. A Fetch
// may fail, but must not panic or hang; the records it returns have a
// product and a quantity of at least 0; and no error contains the secret.
func FuzzSophosResponse(f *testing.F) {
	const secret = "fuzz-client-secret"
	var mu sync.Mutex
	var status int
	var token, whoami, api []byte
	answers := 0
	base := newTestServer(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st, body := status, api
		switch {
		case r.URL.Path == "/token":
			st, body = http.StatusOK, token
		case strings.HasPrefix(r.URL.Path, "/whoami"):
			st, body = http.StatusOK, whoami
		}
		answers++
		if answers > 30 { // a body that pages to itself
			st, body = http.StatusServiceUnavailable, nil
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		_, _ = w.Write(body)
	}))
	goodToken := `{"access_token":"tok","token_type":"bearer","expires_in":3600}`
	goodWhoami := `{"id":"5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a","idType":"partner","apiHosts":{"global":"https://api.central.sophos.com"}}`
	for _, api := range []string{
		`{"items":[{"accountId":"718b6047","productCode":"CIXA-MSP","billableQuantity":20}],"pages":{"nextKey":"","size":1,"maxSize":100}}`,
		`{"items":[{"id":"718b6047","name":"Acme","billingType":"usage"}],"pages":{"current":1,"size":1,"total":1,"items":1,"maxSize":100}}`,
		`{"items":[{"accountId":"","productCode":"","billableQuantity":-1.5}],"pages":{"nextKey":"k"}}`,
		`{"error":"badRequest","message":"bad","requestId":"r"}`,
	} {
		f.Add(200, []byte(goodToken), []byte(goodWhoami), []byte(api))
	}
	f.Add(400, []byte(`{"errorCode":"oauth.invalid_client_secret","message":"no"}`), []byte(goodWhoami), []byte(`{}`))
	f.Fuzz(func(t *testing.T, st int, tok, who, body []byte) {
		if st < 200 || st > 599 {
			st = http.StatusOK
		}
		mu.Lock()
		status, token, whoami, api, answers = st, tok, who, body, 0
		mu.Unlock()
		c, err := sophos.NewClient(sophos.WithCredentials("client-id", secret), sophos.WithAuthURL(base+"/token"),
			sophos.WithBaseURL(base), sophos.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		rep, err := sophos.NewSource(c).Fetch(ctx, source.Period{Year: 2026, Month: time.October})
		if err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error contains the secret: %v", err)
			}
			return
		}
		for _, r := range rep.Records {
			if r.Product == "" || r.Quantity < 0 {
				b, _ := json.Marshal(r)
				t.Fatalf("record without a product or with a negative quantity: %s", b)
			}
		}
	})
}
