package export

import (
	"fmt"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// BenchmarkDecode decodes an export of 20,000 customers and 5 products (the
// export of psa-syncd's 100,000-line benchmark), clean, with Decode (which
// takes decodeFast) and with the decoder that names every problem:
//
//	go test -run '^$' -bench 'Decode' -benchmem ./psa/export/
func BenchmarkDecode(b *testing.B) {
	d := New(psa.SystemAutotask, "webservices5.autotask.net")
	for j := range 5 {
		d.PutProduct(ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: fmt.Sprint(30000000 + j), SyncEnabled: true})
	}
	for i := range 20_000 {
		d.PutCustomer(CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%05d", i), CompanyID: fmt.Sprint(100 + i), ContractID: fmt.Sprint(29684000 + i), UsageSync: true})
	}
	data, err := d.Encode()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		decode func([]byte) (*Document, error)
	}{{"Decode", Decode}, {"every-problem", decodeSlow}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				got, err := bc.decode(data)
				if err != nil || len(got.CustomerMappings) != 20_000 {
					b.Fatalf("decoded %d customers, error %v", len(got.CustomerMappings), err)
				}
			}
		})
	}
}
