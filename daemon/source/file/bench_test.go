package file

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// BenchmarkFetch reads a usage file of 100,000 rows, one per customer, as
// CSV and as pretty-printed JSON (one row per line): the time to read a
// file grows with its size, not with its square. Run it with
//
//	go test -run '^$' -bench BenchmarkFetch -benchtime 3x ./daemon/source/file/
func BenchmarkFetch(b *testing.B) {
	const rows = 100_000
	for _, format := range []string{"csv", "json"} {
		b.Run(format, func(b *testing.B) {
			var sb strings.Builder
			if format == "csv" {
				sb.WriteString("customer_id,customer_name,product,product_name,quantity\n")
			} else {
				sb.WriteString("[\n")
			}
			for i := range rows {
				if format == "csv" {
					fmt.Fprintf(&sb, "cust-%06d,Customer %d,CIXA-MSP,Intercept X Advanced,%d\n", i, i, i%50)
					continue
				}
				if i > 0 {
					sb.WriteString(",\n")
				}
				fmt.Fprintf(&sb, `  {"customer_id": "cust-%06d", "customer_name": "Customer %d", "product": "CIXA-MSP", "product_name": "Intercept X Advanced", "quantity": %d}`, i, i, i%50)
			}
			if format == "json" {
				sb.WriteString("\n]\n")
			}
			path := filepath.Join(b.TempDir(), "usage."+format)
			if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
				b.Fatal(err)
			}
			src, err := New(Config{Path: path})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rep, err := src.Fetch(b.Context(), source.Period{})
				if err != nil {
					b.Fatal(err)
				}
				if len(rep.Records) != rows {
					b.Fatalf("%d records, want %d", len(rep.Records), rows)
				}
			}
			b.ReportMetric(float64(sb.Len())/(1<<20), "file_MiB")
		})
	}
}
