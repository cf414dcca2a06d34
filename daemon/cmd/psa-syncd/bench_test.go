package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// benchProfileDirEnv names the environment variable that, when set to a
// directory, has the benchmarks build psa-syncd with -tags profile and
// write a CPU profile (<case>.cpu.pprof), an allocations profile
// (<case>.allocs.pprof) and an execution trace (<case>.trace) of each pass
// there, for `go tool pprof` and `go tool
// trace`, with a CPU profile of the simulator's side (<case>.sim.cpu.pprof)
// while the pass runs:
//
//	PSA_BENCH_PROFILE_DIR=/tmp/prof make bench-large
const benchProfileDirEnv = "PSA_BENCH_PROFILE_DIR"

// Sizes of the sync benchmarks.
const (
	benchCustomers = 2000
	benchProducts  = 5
	benchLatency   = 20 * time.Millisecond
	// benchBMSCustomers is smaller: Kaseya BMS allows 1,500 calls per hour
	// per endpoint, every changed line is one POST to the same endpoint
	// (.../recurringservices/{id}/services), and the client refuses calls
	// beyond the limit rather than wait up to an hour. 250 customers × 5
	// products = 1,250 lines fit in one hour's budget, with the 1% case
	// after them.
	benchBMSCustomers = 250
	// benchLargeCustomers × benchProducts is the 100,000-line Autotask
	// tenant of BenchmarkSyncLarge.
	benchLargeCustomers = 20_000
)

// The allowed concurrency of each PSA: the ideal wall time of a pass is its
// requests × benchLatency ÷ this.
const (
	// Autotask allows 3 concurrent requests per integration code and
	// entity endpoint (reference/autotask-and-kaseya-bms.md §1.8, from
	// Autotask's ThreadLimiting page); the simulator enforces it
	// (psatest.DefaultThreadLimit, WithThreadLimit).
	benchAutotaskConcurrency = psatest.DefaultThreadLimit
	// ConnectWise documents no limit (reference/connectwise-and-sophos.md
	// §1.8: throttling unresolved) and the simulator enforces none, so
	// the bound is the client's own: connectwise.DefaultMaxConcurrency
	// requests in flight.
	benchConnectWiseConcurrency = connectwise.DefaultMaxConcurrency
	// Kaseya BMS documents only its 1,500 calls per hour per endpoint
	// (reference/autotask-and-kaseya-bms.md §2.6), which the simulator
	// enforces; it documents no concurrency limit, and the client sets
	// none. The bound is psa-syncd's default write_concurrency, 3
	// (daemon.DefaultPolicies), since a Kaseya BMS pass is all writes.
	benchKaseyaBMSConcurrency = 3
)

// Cases of a sync benchmark: what share of the lines differs from the
// PSA's current units before the pass.
const (
	caseEveryLine = "every-line"
	caseOnePct    = "1pct"
	caseNone      = "none"
)

// benchTenant is a simulator seeded for the benchmark: the PSA section of
// the config, a mapping export, how to tell writes from reads, what the PSA
// holds now and the fewest reads a pass can make.
type benchTenant struct {
	sys         psa.System
	concurrency int
	psaConfig   string
	doc         *export.Document
	isWrite     func(psatest.Request) bool
	// current returns the units of a customer's line of a product that
	// psa-syncd compares the usage with: the PSA's (for Kaseya BMS, the
	// units in force, which psa-syncd's ledger holds once it has posted).
	current func(customer, product int) int64
	// reads returns the lower bound of the reads of a pass over the
	// tenant as it is now: Autotask one ContractServiceUnits query page
	// of 500 rows per 500 contracts (what psa/autotask ReadLines sends),
	// ConnectWise one additions page of 1,000 per agreement (ReadLines
	// reads each agreement's additions), Kaseya BMS none (its units come
	// from psa-syncd's ledger).
	reads func() int
	// signIn is set for a PSA whose API needs a sign-in request for a
	// bearer token before anything else (Kaseya BMS). psa-syncd sync is a
	// process of its own per pass, and the token is not kept on disk (it
	// would be a secret at rest in the state database and its backups),
	// so a pass that sends anything first signs in: its bound counts that
	// one request. A pass that sends nothing has a bound of 0.
	signIn bool
}

// BenchmarkSyncPass measures `psa-syncd sync` (the binary, as a process of
// its own) against each PSA simulator with 20 ms of latency on every
// request: 2,000 customers × 5 products for Autotask (with its limit of 3
// concurrent requests per endpoint) and ConnectWise, 250 × 5 for Kaseya BMS
// (see benchBMSCustomers). Three passes run one after another, each a case:
//
//   - every-line: every line starts at 1 unit and changes (for Kaseya BMS,
//     whose units psa-syncd cannot read, the ledger is empty, so every line
//     is posted, which primes the ledger);
//   - 1pct: the usage of 1% of the lines (every 100th) changes by one;
//   - none: nothing changes, and the pass must write nothing.
//
// Before each pass the benchmark checks that exactly the case's lines
// differ from what the PSA holds, and after it that the PSA holds the
// usage; a pass whose writes are not the changed lines fails the
// benchmark. Each pass prints
//
//	BENCH sync <psa> <case> lines=N changed=C requests=R bound=B ratio=R/B wall=Ws ideal=Is wall_ratio=W/I rss_mib=M
//
// where bound is the fewest requests the PSA's API allows (benchTenant's
// reads plus one write per changed line, plus the sign-in of a PSA with
// benchTenant.signIn when that is more than none), ideal is requests × 20 ms ÷ the
// PSA's allowed concurrency (see benchAutotaskConcurrency and the others)
// and rss_mib is the peak resident memory of the psa-syncd process. It also
// prints the line of earlier versions, for the state database:
//
//	BENCH state <driver> <psa> <case> lines=... reads=... writes=... wall=...s peak_rss_mib=...
//
// The state database is SQLite; the Autotask cases also run on PostgreSQL
// (a cluster that pgtest starts) when its server programs are installed,
// and print only BENCH state lines. Run it with `make bench` (all, or
// `make bench PSA=connectwise`):
//
//	go test -run '^$' -bench 'BenchmarkSyncPass/' -benchtime 1x ./daemon/cmd/psa-syncd/
//
// The Autotask simulator's hourly limit is raised for the benchmark: a
// first pass over 10,000 lines needs more requests than Autotask's 10,000
// per hour, so against a real tenant it would stop at the budget reserve,
// end as partial, and continue in the next hour's pass.
func BenchmarkSyncPass(b *testing.B) {
	for _, sys := range psa.Systems {
		b.Run(string(sys), func(b *testing.B) {
			customers := benchCustomers
			if sys == psa.SystemKaseyaBMS {
				customers = benchBMSCustomers
			}
			benchCases(newBench(b, sys, customers, ""))
		})
		if _, err := pgtest.Bin(); err == nil && sys == psa.SystemAutotask {
			b.Run(string(sys)+"-postgres", func(b *testing.B) {
				url, err := pgtest.New(b, pgtest.Durable).CreateDatabase(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				benchCases(newBench(b, sys, benchCustomers, url))
			})
		}
	}
}

// benchCases runs the three cases of BenchmarkSyncPass one after another.
func benchCases(r *benchRun) {
	r.pass(caseEveryLine, r.base, r.lines, false)
	r.pass(caseOnePct, r.withChanges(r.base, 0), r.onePct(0), false)
	r.pass(caseNone, r.withChanges(r.base, 0), 0, false)
}

// BenchmarkSyncLarge measures `psa-syncd sync` against an Autotask tenant
// of 100,000 lines (20,000 customers × 5 products) whose units match the
// usage except on 1% of the lines, with 20 ms of latency per request and
// Autotask's own limits (10,000 requests per hour, 3 at a time per
// endpoint). Three passes, each printing a BENCH sync line:
//
//   - large-1pct: 1% of the lines (every 100th) hold one unit less than
//     the usage;
//   - large-1pct-json: another 1% of the usage changes, and the pass
//     prints its result with -json (a report of every line);
//   - large-none: nothing changes. This pass is run three times in a row
//     and its line gives the median wall time (the three in walls=): at
//     about 1.9 s, a fifth of it a fixed start and end, one run's wall time
//     varies by a tenth of a second or two from run to run.
//
// Run it with `make bench-large`:
//
//	go test -run '^$' -bench 'BenchmarkSyncLarge' -benchtime 1x ./daemon/cmd/psa-syncd/
func BenchmarkSyncLarge(b *testing.B) {
	r := newBench(b, psa.SystemAutotask, benchLargeCustomers, "")
	r.pass("large-1pct", r.base, r.onePct(0), false)
	r.pass("large-1pct-json", r.withChanges(r.base, 50), r.onePct(50), true)
	r.passRuns("large-none", r.withChanges(r.base, 50), 0, false, 3)
}

// benchRun is one benchmark's simulator, psa-syncd configuration and the
// base usage of every line (customer × benchProducts + product).
type benchRun struct {
	b      *testing.B
	sim    *psatest.Server
	t      *benchTenant
	dir    string
	cfg    string
	driver string
	lines  int
	base   []int64
}

// newBench starts a simulator for sys with customers × benchProducts lines
// and writes psa-syncd's config and export; pgURL selects PostgreSQL for
// the state instead of SQLite. The lines start at 1 unit, except for
// BenchmarkSyncLarge's tenant, whose lines start at the base usage but
// one unit lower on every 100th line.
func newBench(b *testing.B, sys psa.System, customers int, pgURL string) *benchRun {
	r := &benchRun{b: b, dir: b.TempDir(), lines: customers * benchProducts}
	r.base = make([]int64, r.lines)
	for k := range r.base {
		i, j := k/benchProducts, k%benchProducts
		r.base[k] = int64(2 + (i+j)%40)
	}
	start := func(customer, product int) int64 { return 1 }
	opts := []psatest.Option{psatest.WithSystem(sys), psatest.WithLatency(benchLatency)}
	if customers == benchLargeCustomers {
		start = func(customer, product int) int64 {
			k := customer*benchProducts + product
			if k%100 == 0 {
				return r.base[k] - 1
			}
			return r.base[k]
		}
	} else if sys == psa.SystemAutotask {
		opts = append(opts, psatest.WithHourlyLimit(1_000_000))
	}
	if sys == psa.SystemAutotask {
		opts = append(opts, psatest.WithThreadLimit(psatest.DefaultThreadLimit))
	}
	r.sim = psatest.Start(b, opts...)
	switch sys {
	case psa.SystemAutotask:
		r.t = seedAutotask(r.sim, customers, start)
	case psa.SystemConnectWise:
		r.t = seedConnectWise(r.sim, customers, start)
	case psa.SystemKaseyaBMS:
		r.t = seedKaseyaBMS(r.sim, customers, start)
	default:
		b.Fatalf("no benchmark for %s", sys)
	}

	data, err := r.t.doc.Encode()
	if err != nil {
		b.Fatal(err)
	}
	writeFile(b, filepath.Join(r.dir, "mappings.json"), string(data))
	r.cfg = filepath.Join(r.dir, "psa-syncd.yml")
	r.driver = "sqlite"
	stateCfg := "state_dir: state\n"
	if pgURL != "" {
		r.driver, stateCfg = "postgres", fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", pgURL)
	}
	writeFile(b, r.cfg, "export_path: mappings.json\n"+stateCfg+"psa:\n"+r.t.psaConfig+
		"source:\n  type: file\n  file:\n    path: usage.csv\n"+
		// The every-line case raises every line from 1 at once, which
		// the surge guard holds for review: the benchmark measures the
		// writes.
		"policies:\n  surge_lines_percent: 0\n")
	return r
}

// withChanges returns usage with one more unit on every 100th line,
// counted from offset.
func (r *benchRun) withChanges(usage []int64, offset int) []int64 {
	out := append([]int64(nil), usage...)
	for k := offset; k < len(out); k += 100 {
		out[k]++
	}
	return out
}

// onePct is the number of lines withChanges changes from offset.
func (r *benchRun) onePct(offset int) int {
	return (r.lines - offset + 99) / 100
}

// pass writes usage as the source file, checks that exactly want lines
// differ from the PSA's, runs `psa-syncd sync` (with -json when asJSON)
// and checks and reports the pass.
func (r *benchRun) pass(name string, usage []int64, want int, asJSON bool) {
	r.passRuns(name, usage, want, asJSON, 1)
}

// passRuns is pass with `psa-syncd sync` run runs times in a row (usage
// must then change nothing: want 0), each run checked; the BENCH lines give
// the median run's wall time, and with more than one run every run's wall
// time (walls=), the most requests and the highest peak RSS of any run.
func (r *benchRun) passRuns(name string, usage []int64, want int, asJSON bool, runs int) {
	b := r.b
	if runs > 1 && want != 0 {
		b.Fatalf("%s: a pass is only repeated when it changes nothing (want 0, not %d)", name, want)
	}
	var csv strings.Builder
	csv.WriteString("customer_id,product,quantity\n")
	changed := 0
	for k, q := range usage {
		i, j := k/benchProducts, k%benchProducts
		fmt.Fprintf(&csv, "cust-%05d,PROD-%d,%d\n", i, j, q)
		if r.t.current(i, j) != q {
			changed++
		}
	}
	if changed != want {
		b.Fatalf("%s: %d of %d lines differ from the PSA before the pass, want %d: the benchmark's set-up is wrong", name, changed, r.lines, want)
	}
	writeFile(b, filepath.Join(r.dir, "usage.csv"), csv.String())
	bound := r.t.reads() + changed
	if r.t.signIn && bound > 0 {
		bound++
	}

	walls := make([]time.Duration, runs)
	requests, writes, rss := 0, 0, 0.0
	for i := range runs {
		w, req, wr, mib := r.runPass(name, usage, changed, asJSON)
		walls[i], requests, writes, rss = w, max(requests, req), max(writes, wr), max(rss, mib)
	}
	wall := slices.Sorted(slices.Values(walls))[runs/2]
	var runWalls string
	if runs > 1 {
		parts := make([]string, runs)
		for i, w := range walls {
			parts[i] = fmt.Sprintf("%.2f", w.Seconds())
		}
		runWalls = fmt.Sprintf(" runs=%d walls=%ss", runs, strings.Join(parts, "/"))
	}

	ideal := time.Duration(requests) * benchLatency / time.Duration(r.t.concurrency)
	sys := r.t.sys
	if r.driver == "sqlite" {
		fmt.Printf("BENCH sync %s %s lines=%d changed=%d requests=%d bound=%d ratio=%.3f wall=%.2fs ideal=%.2fs wall_ratio=%.2f rss_mib=%.1f%s\n",
			sys, name, r.lines, changed, requests, bound, ratio(float64(requests), float64(bound)),
			wall.Seconds(), ideal.Seconds(), ratio(wall.Seconds(), ideal.Seconds()), rss, runWalls)
	}
	fmt.Printf("BENCH state %s %s %s lines=%d reads=%d writes=%d wall=%.1fs peak_rss_mib=%.1f\n",
		r.driver, sys, name, r.lines, requests-writes, writes, wall.Seconds(), rss)
	b.ReportMetric(wall.Seconds(), name+"-s")
	b.ReportMetric(float64(requests), name+"-requests")
}

// runPass runs `psa-syncd sync` once over the usage file that pass wrote,
// checks what it did (the changed lines written, one write each, every
// line reported) and returns its wall time, its requests and writes, and
// its peak RSS in MiB.
func (r *benchRun) runPass(name string, usage []int64, changed int, asJSON bool) (wall time.Duration, requests, writes int, rss float64) {
	b := r.b
	r.sim.ResetRequests()
	// Collect the garbage of seeding the simulator and of earlier passes
	// now: the simulator of the 100,000-line tenant holds over a GB, and a
	// collection that starts during the pass marks it for seconds on the
	// same two cores as psa-syncd (8 s of CPU in one large-none pass), which
	// the pass would be charged for.
	runtime.GC()
	args := []string{"sync", "-config.file", r.cfg, "-log.level", "warn", "-state.allow-empty"}
	if asJSON {
		args = append(args, "-json")
	}
	cmd := exec.Command(binary, args...)
	if dir := os.Getenv(benchProfileDirEnv); dir != "" {
		cmd.Env = append(os.Environ(),
			"PSA_SYNCD_CPUPROFILE="+filepath.Join(dir, name+".cpu.pprof"),
			"PSA_SYNCD_MEMPROFILE="+filepath.Join(dir, name+".allocs.pprof"),
			"PSA_SYNCD_PEAKHEAP="+filepath.Join(dir, name+".peakheap.pprof"),
			"PSA_SYNCD_TRACE="+filepath.Join(dir, name+".trace"))
	}
	outPath := filepath.Join(r.dir, name+".out")
	out, err := os.Create(outPath)
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = out, &stderr
	stopProfile := r.profileSimulator(name)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	peak := make(chan int64)
	stop := make(chan struct{})
	go func() { peak <- samplePeakRSS(cmd.Process.Pid, stop) }()
	err = cmd.Wait()
	wall = time.Since(start)
	stopProfile()
	close(stop)
	rss = float64(<-peak) / 1024
	out.Close()
	if err != nil {
		b.Fatalf("%s pass: %v\n%s", name, err, stderr.String())
	}

	for _, req := range r.sim.Requests() {
		requests++
		if r.t.isWrite(req) {
			writes++
		}
	}
	updated, unchanged := reportedLines(b, outPath, asJSON)
	if updated != changed || unchanged != r.lines-changed {
		b.Errorf("%s pass reported %d lines updated and %d unchanged, want %d and %d", name, updated, unchanged, changed, r.lines-changed)
	}
	if writes != changed {
		b.Errorf("%s pass sent %d writes, want %d (one per changed line)", name, writes, changed)
	}
	if k := r.firstDiffering(usage); k >= 0 {
		b.Errorf("%s pass: the PSA holds %d units on line %d (customer %d, product %d), want %d", name,
			r.t.current(k/benchProducts, k%benchProducts), k, k/benchProducts, k%benchProducts, usage[k])
	}

	return wall, requests, writes, rss
}

// profileSimulator starts a CPU profile of the benchmark's own process (the
// simulator, with the benchmark's bookkeeping) into <case>.sim.cpu.pprof
// when PSA_BENCH_PROFILE_DIR is set, and returns the function that stops
// it.
func (r *benchRun) profileSimulator(name string) (stop func()) {
	dir := os.Getenv(benchProfileDirEnv)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".sim.cpu.pprof"))
	if err != nil {
		r.b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		r.b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// ratio is x/y, where 0/0 is 1 (a pass that makes no request at a bound of
// none is at the bound) and x/0 is +Inf.
func ratio(x, y float64) float64 {
	if y == 0 && x == 0 {
		return 1
	}
	return x / y
}

// firstDiffering returns the first line whose units in the PSA are not the
// usage, or -1.
func (r *benchRun) firstDiffering(usage []int64) int {
	for k, q := range usage {
		if r.t.current(k/benchProducts, k%benchProducts) != q {
			return k
		}
	}
	return -1
}

// reportedLines returns the lines a pass reports as updated and unchanged,
// from its output file.
func reportedLines(b *testing.B, path string, asJSON bool) (updated, unchanged int) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if asJSON {
		var res struct {
			Run struct{ Updated, Unchanged int }
		}
		if err := json.NewDecoder(f).Decode(&res); err != nil {
			b.Fatalf("decoding the -json output: %v", err)
		}
		return res.Run.Updated, res.Run.Unchanged
	}
	head := make([]byte, 4096)
	n, _ := f.Read(head)
	m := regexp.MustCompile(`lines: (\d+) updated, (\d+) unchanged`).FindSubmatch(head[:n])
	if m == nil {
		b.Fatalf("the pass did not report its lines:\n%s", head[:n])
	}
	updated, _ = strconv.Atoi(string(m[1]))
	unchanged, _ = strconv.Atoi(string(m[2]))
	return updated, unchanged
}

func benchPeriodStart() time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// benchToday is the day psa-syncd reads the units of.
func benchToday() time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
}

// seedAutotask adds companies with recurring-service contracts with five
// service lines each, at start's units. Writes are ContractServiceAdjustment
// POSTs; queries (POST .../query) are reads.
func seedAutotask(sim *psatest.Server, customers int, start func(customer, product int) int64) *benchTenant {
	a := sim.Autotask()
	t := &benchTenant{
		sys:         psa.SystemAutotask,
		concurrency: benchAutotaskConcurrency,
		doc:         export.New(psa.SystemAutotask, strings.TrimPrefix(sim.URL(), "http://")),
		isWrite: func(r psatest.Request) bool {
			return r.Method != http.MethodGet && !strings.Contains(strings.ToLower(r.Path), "/query")
		},
	}
	services := make([]int64, benchProducts)
	for j := range services {
		services[j] = a.AddService(fmt.Sprintf("Service %d", j), float64(j+1))
		t.doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: itoa(services[j]), SyncEnabled: true})
	}
	contracts := make([]int64, customers)
	for i := range contracts {
		company := a.AddCompany(fmt.Sprintf("Customer %05d", i))
		contracts[i] = a.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed Services"})
		t.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%05d", i), CompanyID: itoa(company), ContractID: itoa(contracts[i]), UsageSync: true})
		for j, s := range services {
			a.SetUnits(contracts[i], s, start(i, j), benchPeriodStart())
		}
	}
	t.current = func(i, j int) int64 {
		u, _ := a.Units(contracts[i], services[j], benchToday())
		return u
	}
	t.reads = func() int {
		// ReadLines queries the rows that overlap [today, end of the
		// month], 500 contracts per query, in pages of 500 rows.
		today := benchToday()
		monthEnd := benchPeriodStart().AddDate(0, 1, -1)
		reads := 0
		for lo := 0; lo < len(contracts); lo += 500 {
			rows := 0
			for _, k := range contracts[lo:min(lo+500, len(contracts))] {
				for _, s := range services {
					for _, u := range a.UnitRows(k, s) {
						if !u.StartDate.After(monthEnd) && !u.EndDate.Before(today) {
							rows++
						}
					}
				}
			}
			reads += max(1, (rows+499)/500)
		}
		return reads
	}
	user, secret, code := a.Credentials()
	t.psaConfig = fmt.Sprintf("  system: autotask\n  autotask:\n    username: %q\n    secret: %q\n    integration_code: %q\n    base_url: %q\n",
		user, secret, code, sim.AutotaskBaseURL())
	return t
}

// seedConnectWise adds companies with agreements with five additions each,
// at start's quantity. Writes are POST, PATCH and DELETE; GETs are reads.
func seedConnectWise(sim *psatest.Server, customers int, start func(customer, product int) int64) *benchTenant {
	cw := sim.ConnectWise()
	t := &benchTenant{
		sys:         psa.SystemConnectWise,
		concurrency: benchConnectWiseConcurrency,
		doc:         export.New(psa.SystemConnectWise, strings.TrimPrefix(sim.URL(), "http://")),
		isWrite:     func(r psatest.Request) bool { return r.Method != http.MethodGet },
	}
	products := make([]int64, benchProducts)
	for j := range products {
		products[j] = cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: fmt.Sprintf("SVC-%d", j), Description: fmt.Sprintf("Service %d", j), Price: float64(j + 1)})
		t.doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: itoa(products[j]), SyncEnabled: true})
	}
	agreements := make([]int64, customers)
	for i := range agreements {
		company := cw.AddCompany(fmt.Sprintf("Customer %05d", i))
		agreements[i] = cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "Managed Services"})
		t.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%05d", i), CompanyID: itoa(company), ContractID: itoa(agreements[i]), UsageSync: true})
		for j, p := range products {
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreements[i], ProductID: p, Quantity: float64(start(i, j))})
		}
	}
	t.current = func(i, j int) int64 {
		q, _ := cw.Quantity(agreements[i], products[j])
		return int64(q)
	}
	t.reads = func() int {
		// ReadLines lists each agreement's additions, 1,000 a page.
		reads := 0
		for _, ag := range agreements {
			reads += max(1, (len(cw.Additions(ag))+999)/1000)
		}
		return reads
	}
	company, public, private, client := cw.Credentials()
	t.psaConfig = fmt.Sprintf("  system: connectwise\n  connectwise:\n    site: %q\n    company_id: %q\n    public_key: %q\n    private_key: %q\n    client_id: %q\n",
		sim.ConnectWiseSite(), company, public, private, client)
	return t
}

// seedKaseyaBMS adds accounts with recurring-services contracts with five
// service lines each, at start's units, which psa-syncd cannot see. Writes
// are the POSTs that add service lines or create or change objects; sign-in
// (security/...) and searches are reads.
func seedKaseyaBMS(sim *psatest.Server, customers int, start func(customer, product int) int64) *benchTenant {
	k := sim.KaseyaBMS()
	t := &benchTenant{
		sys:         psa.SystemKaseyaBMS,
		concurrency: benchKaseyaBMSConcurrency,
		doc:         export.New(psa.SystemKaseyaBMS, strings.TrimPrefix(sim.URL(), "http://")),
		isWrite: func(r psatest.Request) bool {
			p := strings.ToLower(r.Path)
			return r.Method != http.MethodGet && !strings.Contains(p, "/security/") && !strings.HasSuffix(p, "/search")
		},
		reads:  func() int { return 0 },
		signIn: true,
	}
	services := make([]int, benchProducts)
	for j := range services {
		services[j] = k.AddService(fmt.Sprintf("Service %d", j), float64(j+1))
		t.doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: strconv.Itoa(services[j]), SyncEnabled: true})
	}
	contracts := make([]int, customers)
	for i := range contracts {
		account := k.AddAccount(fmt.Sprintf("Customer %05d", i))
		contracts[i] = k.AddContract(psatest.KaseyaBMSContract{AccountID: account, Name: fmt.Sprintf("Managed Services %05d", i)})
		t.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%05d", i), CompanyID: strconv.Itoa(account), ContractID: strconv.Itoa(contracts[i]), UsageSync: true})
		for j, s := range services {
			k.AddLine(contracts[i], s, int(start(i, j)), benchPeriodStart())
		}
	}
	t.current = func(i, j int) int64 {
		u, _ := k.Units(contracts[i], services[j], benchToday())
		return int64(u)
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
// fork and exec. The file is opened once and read again from its start at
// each sample, without splitting it into lines: this process shares the
// machine's cores with the pass it measures.
func samplePeakRSS(pid int, stop <-chan struct{}) int64 {
	var peak int64
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return peak
	}
	defer f.Close()
	buf := make([]byte, 4096)
	key := []byte("VmHWM:")
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		if n, _ := f.ReadAt(buf, 0); n > 0 {
			if kib := statusKiB(buf[:n], key); kib > peak {
				peak = kib
			}
		}
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

// statusKiB returns the value of the field key ("VmHWM:") of a
// /proc/<pid>/status text, in kB, or 0.
func statusKiB(status, key []byte) int64 {
	i := bytes.Index(status, key)
	if i < 0 {
		return 0
	}
	var kib int64
	for _, c := range status[i+len(key):] {
		switch {
		case c >= '0' && c <= '9':
			kib = kib*10 + int64(c-'0')
		case c == ' ' || c == '\t':
		default:
			return kib
		}
	}
	return kib
}
