package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// Sizes of BenchmarkSyncPass.
const (
	benchCustomers = 2000
	benchProducts  = 5
	benchLatency   = 20 * time.Millisecond
	// benchBMSCustomers is smaller: Kaseya BMS allows 1,500 calls per hour
	// per endpoint, every changed line is one POST to the same endpoint
	// (.../recurringservices/{id}/services), and the client refuses calls
	// beyond the limit rather than wait up to an hour. 250 customers × 5
	// products = 1,250 lines fit in one hour's budget.
	benchBMSCustomers = 250
)

// benchTenant is a simulator seeded for the benchmark: the PSA section of
// the config, a mapping export, and how to tell writes from reads.
type benchTenant struct {
	customers int
	psaConfig string
	doc       *export.Document
	isWrite   func(psatest.Request) bool
	// limits describes the simulator's limits for the report.
	limits string
}

// BenchmarkSyncPass measures `psa-syncd sync` (the binary, as a process of
// its own) against each PSA simulator with 20 ms of latency on every
// request: 2,000 customers × 5 products for Autotask (with its limit of 3
// concurrent requests per endpoint) and ConnectWise, 250 × 5 for Kaseya BMS
// (see benchBMSCustomers). The first pass changes every line (each starts at
// 1 unit; for Kaseya BMS, whose units psa-syncd cannot read, the ledger is
// empty, so every line is posted); the second finds nothing to change and
// must write nothing. It reports, per pass, the requests the simulator
// received (reads and writes), the wall time and the peak resident memory
// of the psa-syncd process. Run it with `make bench` (all three, or
// `make bench PSA=connectwise`):
//
//	go test -run '^$' -bench 'BenchmarkSyncPass/' -benchtime 1x ./daemon/cmd/psa-syncd/
//
// The Autotask simulator's hourly limit is raised for the benchmark: a
// first pass over 10,000 lines needs more requests than Autotask's 10,000
// per hour, so against a real tenant it would stop at the budget reserve,
// end as partial, and continue in the next hour's pass.
//
// The state database is SQLite; the Autotask case also runs on PostgreSQL
// (a cluster that pgtest starts) when its server programs are installed.
// Each pass prints a line
//
//	BENCH state <driver> <system> <pass> lines=... reads=... writes=... wall=...s peak_rss_mib=...
func BenchmarkSyncPass(b *testing.B) {
	for _, sys := range psa.Systems {
		b.Run(string(sys), func(b *testing.B) { benchSyncPass(b, sys, "") })
		if _, err := pgtest.Bin(); err == nil && sys == psa.SystemAutotask {
			b.Run(string(sys)+"-postgres", func(b *testing.B) {
				url, err := pgtest.New(b, pgtest.Durable).CreateDatabase(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				benchSyncPass(b, sys, url)
			})
		}
	}
}

// benchSyncPass runs the two passes; pgURL selects PostgreSQL for the state
// instead of SQLite.
func benchSyncPass(b *testing.B, sys psa.System, pgURL string) {
	opts := []psatest.Option{psatest.WithSystem(sys), psatest.WithLatency(benchLatency)}
	if sys == psa.SystemAutotask {
		opts = append(opts, psatest.WithThreadLimit(psatest.DefaultThreadLimit), psatest.WithHourlyLimit(1_000_000))
	}
	sim := psatest.Start(b, opts...)
	var t *benchTenant
	switch sys {
	case psa.SystemAutotask:
		t = seedAutotask(sim)
	case psa.SystemConnectWise:
		t = seedConnectWise(sim)
	case psa.SystemKaseyaBMS:
		t = seedKaseyaBMS(sim)
	default:
		b.Fatalf("no benchmark for %s", sys)
	}
	lines := t.customers * benchProducts

	dir := b.TempDir()
	var usage strings.Builder
	usage.WriteString("customer_id,product,quantity\n")
	for i := range t.customers {
		for j := range benchProducts {
			fmt.Fprintf(&usage, "cust-%04d,PROD-%d,%d\n", i, j, 2+(i+j)%40)
		}
	}
	writeFile(b, filepath.Join(dir, "usage.csv"), usage.String())
	data, err := t.doc.Encode()
	if err != nil {
		b.Fatal(err)
	}
	writeFile(b, filepath.Join(dir, "mappings.json"), string(data))
	cfg := filepath.Join(dir, "psa-syncd.yml")
	driver, stateCfg := "sqlite", "state_dir: state\n"
	if pgURL != "" {
		driver, stateCfg = "postgres", fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", pgURL)
	}
	writeFile(b, cfg, "export_path: mappings.json\n"+stateCfg+"psa:\n"+t.psaConfig+
		"source:\n  type: file\n  file:\n    path: usage.csv\n")

	type result struct {
		name          string
		reads, writes int
		wall          time.Duration
		maxRSS        int64 // KiB; 0 where /proc is missing
		out           string
	}
	pass := func(name string) result {
		sim.ResetRequests()
		cmd := exec.Command(binary, "sync", "-config.file", cfg, "-log.level", "warn", "-state.allow-empty")
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
		r := result{name: name, wall: wall, maxRSS: <-peak, out: out.String()}
		if err != nil {
			b.Fatalf("%s pass: %v\n%s", name, err, out)
		}
		for _, req := range sim.Requests() {
			if t.isWrite(req) {
				r.writes++
			} else {
				r.reads++
			}
		}
		return r
	}

	b.ResetTimer()
	first := pass("first")
	second := pass("second")
	b.StopTimer()

	if want := fmt.Sprintf("lines: %d updated, 0 unchanged", lines); !strings.Contains(first.out, want) {
		b.Errorf("first pass did not report %q:\n%.2000s", want, first.out)
	}
	if first.writes != lines {
		b.Errorf("first pass sent %d writes, want %d (one per line)", first.writes, lines)
	}
	if want := fmt.Sprintf("lines: 0 updated, %d unchanged", lines); !strings.Contains(second.out, want) {
		b.Errorf("second pass did not report %q:\n%.2000s", want, second.out)
	}
	if second.writes != 0 {
		b.Errorf("second pass sent %d writes, want 0", second.writes)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%s: %d customers x %d products = %d lines, %s latency per request, %s\n",
		sys, t.customers, benchProducts, lines, benchLatency, t.limits)
	fmt.Fprintf(&table, "%-7s %8s %8s %10s %14s\n", "pass", "reads", "writes", "wall", "peak RSS")
	for _, r := range []result{first, second} {
		fmt.Fprintf(&table, "%-7s %8d %8d %10s %11.1f MiB\n", r.name, r.reads, r.writes, r.wall.Round(100*time.Millisecond), float64(r.maxRSS)/1024)
	}
	b.Log(table.String())
	for _, r := range []result{first, second} {
		fmt.Printf("BENCH state %s %s %s lines=%d reads=%d writes=%d wall=%.1fs peak_rss_mib=%.1f\n",
			driver, sys, r.name, lines, r.reads, r.writes, r.wall.Seconds(), float64(r.maxRSS)/1024)
	}
	b.ReportMetric(float64(first.reads), "first-reads")
	b.ReportMetric(float64(first.writes), "first-writes")
	b.ReportMetric(first.wall.Seconds(), "first-s")
	b.ReportMetric(float64(first.maxRSS)/1024, "first-MiB")
	b.ReportMetric(float64(second.reads), "second-reads")
	b.ReportMetric(float64(second.writes), "second-writes")
	b.ReportMetric(second.wall.Seconds(), "second-s")
	b.ReportMetric(float64(second.maxRSS)/1024, "second-MiB")
}

func benchPeriodStart() time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// seedAutotask adds companies with recurring-service contracts whose five
// service lines hold 1 unit. Writes are ContractServiceAdjustment POSTs;
// queries (POST .../query) are reads.
func seedAutotask(sim *psatest.Server) *benchTenant {
	a := sim.Autotask()
	t := &benchTenant{
		customers: benchCustomers,
		doc:       export.New(psa.SystemAutotask, strings.TrimPrefix(sim.URL(), "http://")),
		isWrite: func(r psatest.Request) bool {
			return r.Method != http.MethodGet && !strings.Contains(strings.ToLower(r.Path), "/query")
		},
		limits: fmt.Sprintf("%d concurrent requests per endpoint", psatest.DefaultThreadLimit),
	}
	services := make([]int64, benchProducts)
	for j := range services {
		services[j] = a.AddService(fmt.Sprintf("Service %d", j), float64(j+1))
		t.doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: itoa(services[j]), SyncEnabled: true})
	}
	for i := range t.customers {
		company := a.AddCompany(fmt.Sprintf("Customer %04d", i))
		contract := a.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed Services"})
		t.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%04d", i), CompanyID: itoa(company), ContractID: itoa(contract), UsageSync: true})
		for _, s := range services {
			a.SetUnits(contract, s, 1, benchPeriodStart())
		}
	}
	user, secret, code := a.Credentials()
	t.psaConfig = fmt.Sprintf("  system: autotask\n  autotask:\n    username: %q\n    secret: %q\n    integration_code: %q\n    base_url: %q\n",
		user, secret, code, sim.AutotaskBaseURL())
	return t
}

// seedConnectWise adds companies with agreements whose five additions hold
// a quantity of 1. Writes are POST, PATCH and DELETE; GETs are reads.
func seedConnectWise(sim *psatest.Server) *benchTenant {
	cw := sim.ConnectWise()
	t := &benchTenant{
		customers: benchCustomers,
		doc:       export.New(psa.SystemConnectWise, strings.TrimPrefix(sim.URL(), "http://")),
		isWrite:   func(r psatest.Request) bool { return r.Method != http.MethodGet },
		limits:    "the client's default concurrency (ConnectWise documents no limit)",
	}
	products := make([]int64, benchProducts)
	for j := range products {
		products[j] = cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: fmt.Sprintf("SVC-%d", j), Description: fmt.Sprintf("Service %d", j), Price: float64(j + 1)})
		t.doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: itoa(products[j]), SyncEnabled: true})
	}
	for i := range t.customers {
		company := cw.AddCompany(fmt.Sprintf("Customer %04d", i))
		agreement := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "Managed Services"})
		t.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%04d", i), CompanyID: itoa(company), ContractID: itoa(agreement), UsageSync: true})
		for _, p := range products {
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: p, Quantity: 1})
		}
	}
	company, public, private, client := cw.Credentials()
	t.psaConfig = fmt.Sprintf("  system: connectwise\n  connectwise:\n    site: %q\n    company_id: %q\n    public_key: %q\n    private_key: %q\n    client_id: %q\n",
		sim.ConnectWiseSite(), company, public, private, client)
	return t
}

// seedKaseyaBMS adds accounts with recurring-services contracts whose five
// services each have a line of 1 unit, which psa-syncd cannot see. Writes
// are the POSTs that add service lines or create or change objects; sign-in
// (security/...) and searches are reads.
func seedKaseyaBMS(sim *psatest.Server) *benchTenant {
	k := sim.KaseyaBMS()
	t := &benchTenant{
		customers: benchBMSCustomers,
		doc:       export.New(psa.SystemKaseyaBMS, strings.TrimPrefix(sim.URL(), "http://")),
		isWrite: func(r psatest.Request) bool {
			p := strings.ToLower(r.Path)
			return r.Method != http.MethodGet && !strings.Contains(p, "/security/") && !strings.HasSuffix(p, "/search")
		},
		limits: "1,500 calls per hour per endpoint",
	}
	services := make([]int, benchProducts)
	for j := range services {
		services[j] = k.AddService(fmt.Sprintf("Service %d", j), float64(j+1))
		t.doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: strconv.Itoa(services[j]), SyncEnabled: true})
	}
	for i := range t.customers {
		account := k.AddAccount(fmt.Sprintf("Customer %04d", i))
		contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: account, Name: fmt.Sprintf("Managed Services %04d", i)})
		t.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%04d", i), CompanyID: strconv.Itoa(account), ContractID: strconv.Itoa(contract), UsageSync: true})
		for _, s := range services {
			k.AddLine(contract, s, 1, benchPeriodStart())
		}
	}
	user, password, tenant := k.Credentials()
	t.psaConfig = fmt.Sprintf("  system: kaseya_bms\n  kaseya_bms:\n    base_url: %q\n    username: %q\n    password: %q\n    tenant: %q\n",
		sim.KaseyaBMSBaseURL(), user, password, tenant)
	return t
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
