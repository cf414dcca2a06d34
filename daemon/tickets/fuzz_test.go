package tickets_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// toServer sends every request to one test server, whatever host it names
// (the apiHosts the answers give), so that the client builds its requests
// as against Central.
type toServer string

func (s toServer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = "http", string(s)
	return http.DefaultTransport.RoundTrip(r)
}

// FuzzSophosAlerts feeds arbitrary answers to what ticket sync reads of
// Sophos Central: the partner's tenant list (whose apiHost each tenant's
// alerts are read on) and a tenant's alerts, with key-based paging. A
// listing may fail, but must not panic or hang, and must not return part
// of the alerts with an error or a null one; no error contains the secret.
func FuzzSophosAlerts(f *testing.F) {
	const secret = "fuzz-client-secret"
	var mu sync.Mutex
	var status int
	var tenantsBody, alertsBody []byte
	answers := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st, body := http.StatusOK, []byte(nil)
		switch {
		case r.URL.Path == "/token":
			body = []byte(`{"access_token":"tok","token_type":"bearer","expires_in":3600}`)
		case strings.HasPrefix(r.URL.Path, "/whoami"):
			body = []byte(`{"id":"5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a","idType":"partner","apiHosts":{"global":"https://api.central.sophos.com"}}`)
		case strings.HasPrefix(r.URL.Path, "/partner/v1/tenants"):
			body = tenantsBody
		default:
			st, body = status, alertsBody
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
	f.Cleanup(ts.Close)
	tenants := `{"items":[{"id":"718b6047","name":"Acme","apiHost":"https://api-us01.central.sophos.com"}],"pages":{"current":1,"size":1,"total":1,"items":1,"maxSize":100}}`
	for _, alerts := range []string{
		`{"items":[{"id":"a1","category":"malware","type":"Event::Endpoint::Threat::Detected","severity":"high","description":"Malware detected","product":"endpoint","raisedAt":"2026-11-04T09:31:19.894Z","managedAgent":{"id":"d1","type":"computer"}}],"pages":{"total":1,"items":1,"nextKey":""}}`,
		`{"items":[{"id":"a1","severity":"LOW","raisedAt":"2021-02-12 15:04:53,780+0100"},{"id":"a2","raisedAt":12}],"pages":{"total":2,"items":3,"nextKey":"k2"}}`,
		`{"items":[null],"pages":{}}`,
		`{"error":"forbidden","message":"no access","requestId":"r"}`,
	} {
		f.Add(200, []byte(tenants), []byte(alerts))
	}
	f.Add(200, []byte(`{"items":[{"id":"718b6047","apiHost":"http://api-us01.central.sophos.com"}],"pages":{"current":1,"total":1}}`), []byte(`{"items":[]}`))
	f.Add(403, []byte(`{"items":[{"id":"718B6047","apiHost":""},{"id":"718b6047","apiHost":"https://[::1"}],"pages":{"current":1,"total":2}}`), []byte(`{"error":"forbidden"}`))
	f.Fuzz(func(t *testing.T, st int, tb, ab []byte) {
		if st < 200 || st > 599 {
			st = http.StatusOK
		}
		mu.Lock()
		status, tenantsBody, alertsBody, answers = st, tb, ab, 0
		mu.Unlock()
		c, err := sophos.NewClient(sophos.WithCredentials("client-id", secret), sophos.WithAuthURL(ts.URL+"/token"),
			sophos.WithHTTPClient(&http.Client{Transport: toServer(strings.TrimPrefix(ts.URL, "http://"))}), sophos.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		src := tickets.NewSophosAlerts(c)
		src.StartPass()
		alerts, err := src.OpenAlerts(ctx, tickets.Customer{Source: "sophos", CustomerID: "718b6047"})
		if err != nil {
			if alerts != nil {
				t.Errorf("OpenAlerts returned %d alerts with the error %v", len(alerts), err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error contains the secret: %v", err)
			}
		}
	})
}
