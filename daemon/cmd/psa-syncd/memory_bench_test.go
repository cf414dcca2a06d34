package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// Sizes of BenchmarkSyncMemory: the 100,000-line Autotask case of issue 15.
const (
	memCustomers = 20_000
	memProducts  = 5
	// memChangeEvery is how often a line changes: one line in 100 (1%).
	memChangeEvery = 100
)

// BenchmarkSyncMemory measures the peak resident memory of `psa-syncd sync`
// (the binary, as a process of its own) at 20,000 customers × 5 products =
// 100,000 Autotask lines of which 1% change, with the table output and with
// -json. Each pass raises the usage of the changing lines by one, so every
// pass writes 1,000 lines. The simulator runs without latency: memory does
// not depend on it, and the wall time would only be the simulator's. Peak
// RSS is the child's maximum resident set size as GNU time reports it
// (/usr/bin/time -f %M): the child's own rusage, read through os/exec, would
// include this test process's memory, which the child shares until exec.
// It prints
//
//	BENCH memory autotask <output> lines=100000 changed=1000 rss_mib=M output_mib=O
//
// Run it with
//
//	go test -run '^$' -bench BenchmarkSyncMemory -benchtime 1x ./daemon/cmd/psa-syncd/
func BenchmarkSyncMemory(b *testing.B) {
	timeBin, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		b.Fatalf("BenchmarkSyncMemory reads the peak RSS from GNU time: %v (apt-get install time)", err)
	}
	m := newMemTenant(b)
	lines, changed := memCustomers*memProducts, memCustomers*memProducts/memChangeEvery
	measure := func(output string, args ...string) {
		m.nextPass(b)
		rssFile, outFile := filepath.Join(m.dir, "rss"), filepath.Join(m.dir, "out")
		out, err := os.Create(outFile)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		var stderr bytes.Buffer
		cmd := exec.Command(timeBin, append([]string{"-f", "%M", "-o", rssFile,
			binary, "sync", "-config.file", m.cfg, "-log.level", "warn", "-state.allow-empty"}, args...)...)
		cmd.Stdout, cmd.Stderr = out, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s pass: %v\n%s", output, err, stderr.String())
		}
		rss, err := os.ReadFile(rssFile)
		if err != nil {
			b.Fatal(err)
		}
		kib, err := strconv.ParseInt(strings.TrimSpace(string(rss)), 10, 64)
		if err != nil {
			b.Fatalf("GNU time wrote %q: %v", rss, err)
		}
		st, err := out.Stat()
		if err != nil {
			b.Fatal(err)
		}
		// The run comes first in the tables and last in the JSON.
		want, at := fmt.Sprintf("lines: %d updated, %d unchanged", changed, lines-changed), int64(0)
		if output == "json" {
			want, at = fmt.Sprintf(`"updated": %d,`, changed), max(0, st.Size()-2000)
		}
		part := make([]byte, 2000)
		n, _ := out.ReadAt(part, at)
		if !bytes.Contains(part[:n], []byte(want)) {
			b.Errorf("%s pass did not report %q:\n%s", output, want, part[:n])
		}
		fmt.Printf("BENCH memory autotask %s lines=%d changed=%d rss_mib=%.1f output_mib=%.1f\n",
			output, lines, changed, float64(kib)/1024, float64(st.Size())/(1<<20))
		b.ReportMetric(float64(kib)/1024, output+"-MiB")
	}
	b.ResetTimer()
	for range b.N {
		measure("table")
		measure("json", "-json")
	}
}

// memTenant is the simulator, mapping export and config of
// BenchmarkSyncMemory, in dir.
type memTenant struct {
	dir, cfg string
	pass     int64
}

// base is the usage of customer i's product j before any pass changes it,
// and the quantity its line starts with.
func (memTenant) base(i, j int) int64 { return int64(2 + (i+j)%40) }

func newMemTenant(b *testing.B) *memTenant {
	m := &memTenant{dir: b.TempDir()}
	sim := psatest.Start(b, psatest.WithSystem(psa.SystemAutotask), psatest.WithHourlyLimit(1_000_000))
	a := sim.Autotask()
	doc := export.New(psa.SystemAutotask, strings.TrimPrefix(sim.URL(), "http://"))
	services := make([]int64, memProducts)
	for j := range services {
		services[j] = a.AddService(fmt.Sprintf("Service %d", j), float64(j+1))
		doc.PutProduct(export.ProductMapping{Source: "file", Product: fmt.Sprintf("PROD-%d", j), ServiceID: itoa(services[j]), SyncEnabled: true})
	}
	for i := range memCustomers {
		company := a.AddCompany(fmt.Sprintf("Customer %05d", i))
		contract := a.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed Services"})
		doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%05d", i), CustomerName: fmt.Sprintf("Customer %05d", i),
			CompanyID: itoa(company), ContractID: itoa(contract), UsageSync: true})
		for j, s := range services {
			a.SetUnits(contract, s, m.base(i, j), benchPeriodStart())
		}
	}
	data, err := doc.Encode()
	if err != nil {
		b.Fatal(err)
	}
	writeFile(b, filepath.Join(m.dir, "mappings.json"), string(data))
	user, secret, code := a.Credentials()
	m.cfg = filepath.Join(m.dir, "psa-syncd.yml")
	writeFile(b, m.cfg, fmt.Sprintf("export_path: mappings.json\nstate_dir: state\npsa:\n  system: autotask\n  autotask:\n"+
		"    username: %q\n    secret: %q\n    integration_code: %q\n    base_url: %q\nsource:\n  type: file\n  file:\n    path: usage.csv\n",
		user, secret, code, sim.AutotaskBaseURL()))
	return m
}

// nextPass writes the usage file of the next pass: the usage of every
// memChangeEvery-th line is one more than in the pass before.
func (m *memTenant) nextPass(b *testing.B) {
	m.pass++
	var usage bytes.Buffer
	usage.WriteString("customer_id,customer_name,product,quantity\n")
	for i := range memCustomers {
		for j := range memProducts {
			q := m.base(i, j)
			if (i*memProducts+j)%memChangeEvery == 0 {
				q += m.pass
			}
			fmt.Fprintf(&usage, "cust-%05d,Customer %05d,PROD-%d,%d\n", i, i, j, q)
		}
	}
	writeFile(b, filepath.Join(m.dir, "usage.csv"), usage.String())
}
