package usage

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// BenchmarkEngine_Sync runs a first pass in which every line changes and a
// second in which nothing does, over benchCustomers customers with
// benchProducts products each (one service per product), and reports the
// PSA requests each pass made. The second pass must not write.
func BenchmarkEngine_Sync(b *testing.B) {
	const benchCustomers, benchProducts = 200, 5
	for b.Loop() {
		b.StopTimer()
		h := newETHarness(b, psatest.WithHourlyLimit(1_000_000))
		var rows []string
		services := make([]int64, benchProducts)
		for j := range services {
			services[j] = h.at.AddService(fmt.Sprintf("Bench service %d", j), 1)
			h.doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("P%d", j), ServiceID: etID(services[j]), SyncEnabled: true})
		}
		for i := range benchCustomers {
			company := h.at.AddCompany(fmt.Sprintf("Bench %d", i))
			contract := h.at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
			cust := fmt.Sprintf("bench-%d", i)
			h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: cust, CompanyID: etID(company), ContractID: etID(contract), UsageSync: true})
			for j := range services {
				rows = append(rows, fmt.Sprintf("%s,,P%d,%d", cust, j, i+j+1))
			}
		}
		h.writeUsage(rows...)
		h.sim.ResetRequests()
		b.StartTimer()

		first := h.sync(PassOptions{})
		reads1, writes1 := benchCount(h)
		h.sim.ResetRequests()
		second := h.sync(PassOptions{})
		reads2, writes2 := benchCount(h)

		b.StopTimer()
		if first.Run.Updated < benchCustomers*benchProducts || writes2 != 0 || second.Run.Updated != 0 {
			b.Fatalf("first pass updated %d lines, second wrote %d times", first.Run.Updated, writes2)
		}
		b.ReportMetric(float64(reads1), "reads/pass1")
		b.ReportMetric(float64(writes1), "writes/pass1")
		b.ReportMetric(float64(reads2), "reads/pass2")
		b.ReportMetric(float64(writes2), "writes/pass2")
		b.StartTimer()
	}
}

// benchCount counts the simulator's requests since the last reset: POSTs to
// the adjustments endpoint are writes, everything else reads.
func benchCount(h *etHarness) (reads, writes int) {
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodPost && strings.Contains(strings.ToLower(r.Path), "serviceadjustments") {
			writes++
		} else {
			reads++
		}
	}
	return reads, writes
}
