package autotask

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// unitsPage returns a ContractServiceUnits query page of n rows as the
// Autotask simulator writes it, with a nextPageUrl.
func unitsPage(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%d,"contractID":%d,"contractServiceID":%d,"serviceID":%d,"startDate":"2026-12-01T00:00:00Z","endDate":"2026-12-31T00:00:00Z","units":%d,"price":%d}`,
			50000011+12*i, 29684000+i/5, 40000000+i, 30000000+i%5, 2+i%40, 1+i%5)
	}
	fmt.Fprintf(&b, `],"pageDetails":{"count":%d,"requestCount":500,"prevPageUrl":null,"nextPageUrl":"http://127.0.0.1:40351/ATServicesRest/V1.0/ContractServiceUnits/query/next?paging=eyJlIjoiQ29udHJhY3RTZXJ2aWNlVW5pdHMiLCJtIjoiUE9TVCIsImEiOjUwMDA1OTk5LCJoIjoiYjA0ODgzYWZjN2NmYWZiYyJ9"}}`, n)
	return []byte(b.String())
}

// BenchmarkContractServiceUnits_decode measures what the client does with
// a 500-row ContractServiceUnits page once it is read (ReadLines receives
// 200 of them at 100,000 lines): the page's paging details and its rows.
//
//	go test -run '^$' -bench 'ContractServiceUnits_decode' -benchmem ./psa/autotask/
func BenchmarkContractServiceUnits_decode(b *testing.B) {
	body := unitsPage(MaxPageSize)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	req := httptest.NewRequest(http.MethodPost, "/ATServicesRest/V1.0/ContractServiceUnits/query", nil)
	for b.Loop() {
		resp := &Response{Response: &http.Response{}}
		var env listResponse[unitJSON]
		if err := decodeBody(req, resp, body, &env, true, nil); err != nil {
			b.Fatal(err)
		}
		if len(env.Items) != MaxPageSize || resp.NextPageURL == "" {
			b.Fatalf("decoded %d rows, next page %q", len(env.Items), resp.NextPageURL)
		}
	}
}
