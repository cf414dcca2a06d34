package usage

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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

// BenchmarkEngine_SyncPass measures one pass against the Autotask simulator
// with 20 ms of latency per request and Autotask's 3 requests in flight per
// endpoint, over 200 customers × 5 products, in the cases of issue 15: every
// line changes, 1% of the lines change, nothing changes. It prints
//
//	BENCH engine autotask <case> lines=N changed=C requests=R bound=B ratio=R/B wall=Ws ideal=Is wall_ratio=W/I
//
// where the bound is ⌈lines ÷ 500⌉ reads plus one write per changed line
// and the ideal wall time is requests × 20 ms ÷ 3. Run it with
//
//	go test -run '^$' -bench 'BenchmarkEngine_SyncPass' -benchtime 1x ./daemon/usage/
func BenchmarkEngine_SyncPass(b *testing.B) {
	const customers, products = 200, 5
	const latency = 20 * time.Millisecond
	lines := customers * products
	for _, tc := range []struct {
		name    string
		changed int
	}{{"every", lines}, {"1pct", lines / 100}, {"none", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				h := newETHarness(b, psatest.WithHourlyLimit(1_000_000), psatest.WithLatency(latency),
					psatest.WithThreadLimit(psatest.DefaultThreadLimit))
				// The every case raises every line from 1 at once, which
				// the surge guard holds for review.
				h.pol.SurgeLinesPercent = 0
				var rows []string
				services := make([]int64, products)
				for j := range services {
					services[j] = h.at.AddService(fmt.Sprintf("Bench service %d", j), 1)
					h.doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("P%d", j), ServiceID: etID(services[j]), SyncEnabled: true})
				}
				n := 0
				for i := range customers {
					company := h.at.AddCompany(fmt.Sprintf("Bench %d", i))
					contract := h.at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
					cust := fmt.Sprintf("bench-%d", i)
					h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: cust, CompanyID: etID(company), ContractID: etID(contract), UsageSync: true})
					for j, s := range services {
						want := int64(2 + (i+j)%40)
						have := want
						if n%(lines/max(tc.changed, 1)) == 0 && n/(lines/max(tc.changed, 1)) < tc.changed {
							have = 1
						}
						n++
						h.at.SetUnits(contract, s, have, etPeriodDay)
						rows = append(rows, fmt.Sprintf("%s,,P%d,%d", cust, j, want))
					}
				}
				h.writeUsage(rows...)
				h.sim.ResetRequests()
				reqs0 := h.rt.requests.Load()
				b.StartTimer()

				start := time.Now()
				res := h.sync(PassOptions{})
				wall := time.Since(start)

				b.StopTimer()
				requests := int(h.rt.requests.Load() - reqs0)
				_, writes := benchCount(h)
				if res.Run.Updated != tc.changed || writes != tc.changed {
					b.Fatalf("pass updated %d lines with %d writes, want %d", res.Run.Updated, writes, tc.changed)
				}
				bound := (lines+499)/500 + tc.changed
				ideal := time.Duration(requests) * latency / psatest.DefaultThreadLimit
				fmt.Printf("BENCH engine autotask %s lines=%d changed=%d requests=%d bound=%d ratio=%.3f wall=%.2fs ideal=%.2fs wall_ratio=%.2f\n",
					tc.name, lines, tc.changed, requests, bound, float64(requests)/float64(bound), wall.Seconds(), ideal.Seconds(), wall.Seconds()/ideal.Seconds())
				b.ReportMetric(float64(requests), "requests")
				b.ReportMetric(float64(requests)/float64(bound), "requests/bound")
				b.ReportMetric(wall.Seconds()/ideal.Seconds(), "wall/ideal")
				b.StartTimer()
			}
		})
	}
}
