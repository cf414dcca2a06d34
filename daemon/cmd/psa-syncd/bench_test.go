package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// Sizes of BenchmarkSyncPass.
const (
	benchCustomers = 2000
	benchProducts  = 5
	benchLatency   = 20 * time.Millisecond
)

// BenchmarkSyncPass measures `psa-syncd sync` (the binary, as a process of
// its own) over 2,000 customers × 5 products against the Autotask simulator
// with 20 ms of latency on every request and Autotask's limit of 3
// concurrent requests per endpoint. The first pass changes every line (each
// starts at 1 unit); the second finds nothing to change and must write
// nothing. It reports, per pass, the requests the simulator received (reads
// and writes), the wall time and the peak resident memory of the psa-syncd
// process. Run it with `make bench`:
//
//	go test -run '^$' -bench BenchmarkSyncPass -benchtime 1x ./daemon/cmd/psa-syncd/
//
// The simulator's hourly limit is raised for the benchmark: a first pass
// over 10,000 lines needs more requests than Autotask's 10,000 per hour, so
// against a real tenant it would stop at the budget reserve, end as
// partial, and continue in the next hour's pass.
func BenchmarkSyncPass(b *testing.B) {
	sim := psatest.Start(b, psatest.WithLatency(benchLatency), psatest.WithThreadLimit(psatest.DefaultThreadLimit),
		psatest.WithHourlyLimit(1_000_000))
	a := sim.Autotask()
	dir := b.TempDir()
	periodStart := time.Date(time.Now().UTC().Year(), time.Now().UTC().Month(), 1, 0, 0, 0, 0, time.UTC)

	products := make([]string, benchProducts)
	services := make([]int64, benchProducts)
	doc := export.New(psa.SystemAutotask, "sim")
	for j := range products {
		products[j] = fmt.Sprintf("PROD-%d", j)
		services[j] = a.AddService(fmt.Sprintf("Service %d", j), float64(j+1))
		doc.PutProduct(export.ProductMapping{Source: "file", Product: products[j], ServiceID: itoa(services[j]), SyncEnabled: true})
	}
	var usage strings.Builder
	usage.WriteString("customer_id,product,quantity\n")
	for i := range benchCustomers {
		company := a.AddCompany(fmt.Sprintf("Customer %04d", i))
		contract := a.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed Services"})
		id := fmt.Sprintf("cust-%04d", i)
		doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: id, CompanyID: itoa(company), ContractID: itoa(contract), UsageSync: true})
		for j := range products {
			a.SetUnits(contract, services[j], 1, periodStart)
			fmt.Fprintf(&usage, "%s,%s,%d\n", id, products[j], 2+(i+j)%40)
		}
	}
	writeFile(b, filepath.Join(dir, "usage.csv"), usage.String())
	data, err := doc.Encode()
	if err != nil {
		b.Fatal(err)
	}
	writeFile(b, filepath.Join(dir, "mappings.json"), string(data))
	user, secret, code := a.Credentials()
	cfg := filepath.Join(dir, "psa-syncd.yml")
	writeFile(b, cfg, fmt.Sprintf(`export_path: mappings.json
state_dir: state
psa:
  system: autotask
  autotask:
    username: %q
    secret: %q
    integration_code: %q
    base_url: %q
source:
  type: file
  file:
    path: usage.csv
`, user, secret, code, sim.AutotaskBaseURL()))

	type result struct {
		name          string
		reads, writes int
		wall          time.Duration
		maxRSS        int64 // KiB; 0 where /proc is missing
	}
	pass := func(name string) result {
		sim.ResetRequests()
		cmd := exec.Command(binary, "sync", "-config.file", cfg, "-log.level", "warn")
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		peak := make(chan int64)
		stop := make(chan struct{})
		go func() { peak <- samplePeakRSS(cmd.Process.Pid, stop) }()
		err := cmd.Wait()
		wall := time.Since(start)
		close(stop)
		r := result{name: name, wall: wall, maxRSS: <-peak}
		if err != nil {
			b.Fatalf("%s pass: %v\n%s", name, err, out)
		}
		for _, req := range sim.Requests() {
			if req.Method == http.MethodGet || strings.Contains(strings.ToLower(req.Path), "/query") {
				r.reads++
			} else {
				r.writes++
			}
		}
		return r
	}

	b.ResetTimer()
	first := pass("first")
	second := pass("second")
	b.StopTimer()

	if n := len(a.Adjustments()); n != benchCustomers*benchProducts {
		b.Errorf("first pass made %d adjustments, want %d", n, benchCustomers*benchProducts)
	}
	if second.writes != 0 {
		b.Errorf("second pass sent %d writes, want 0", second.writes)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%d customers x %d products = %d lines, %s latency per request, %d concurrent requests per endpoint\n",
		benchCustomers, benchProducts, benchCustomers*benchProducts, benchLatency, psatest.DefaultThreadLimit)
	fmt.Fprintf(&table, "%-7s %8s %8s %10s %14s\n", "pass", "reads", "writes", "wall", "peak RSS")
	for _, r := range []result{first, second} {
		fmt.Fprintf(&table, "%-7s %8d %8d %10s %11.1f MiB\n", r.name, r.reads, r.writes, r.wall.Round(100*time.Millisecond), float64(r.maxRSS)/1024)
	}
	b.Log(table.String())
	b.ReportMetric(float64(first.reads), "first-reads")
	b.ReportMetric(float64(first.writes), "first-writes")
	b.ReportMetric(first.wall.Seconds(), "first-s")
	b.ReportMetric(float64(first.maxRSS)/1024, "first-MiB")
	b.ReportMetric(float64(second.reads), "second-reads")
	b.ReportMetric(float64(second.writes), "second-writes")
	b.ReportMetric(second.wall.Seconds(), "second-s")
	b.ReportMetric(float64(second.maxRSS)/1024, "second-MiB")
}

// samplePeakRSS returns the highest VmHWM (peak resident set size, KiB) that
// /proc/<pid>/status reports until stop is closed. It samples every few
// milliseconds, so growth in the process's last moments may be missed. The
// child's rusage would not do: on Linux its ru_maxrss includes the resident
// size of this (large) test process, whose memory the child shares between
// fork and exec.
func samplePeakRSS(pid int, stop <-chan struct{}) int64 {
	path := fmt.Sprintf("/proc/%d/status", pid)
	var peak int64
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		if data, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					var kib int64
					if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib); err == nil && kib > peak {
						peak = kib
					}
				}
			}
		}
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}
