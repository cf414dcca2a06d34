package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// testClient has a transport of its own: the tests run in parallel, and
// every httptest.Server's Close closes http.DefaultTransport's idle
// connections, which can break another test's POST that had just taken one
// of them (such requests are not retried).
var testClient = &http.Client{Transport: &http.Transport{}}

// binary is psa-syncd built by TestMain, for the tests that need a process
// of their own (signals, SIGKILL).
var binary string

// testRevision is the git commit TestMain stamped into binary.
var testRevision string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "psa-syncd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "psa-syncd")
	// Stamp the commit the way make daemon does (go build -buildvcs does not
	// work in git worktrees, and hosts may set GOFLAGS=-buildvcs=false).
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "git rev-parse HEAD: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	testRevision = strings.TrimSpace(string(rev))
	build := []string{"build", "-ldflags", "-X main.revision=" + testRevision, "-o", binary}
	if os.Getenv(benchProfileDirEnv) != "" {
		// The benchmarks profile each psa-syncd pass (see profile.go).
		build = append(build, "-tags", "profile")
	}
	out, err := exec.Command("go", append(build, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building psa-syncd: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// pgtest.Main stops the PostgreSQL cluster the tests share (backup,
	// tickets, impact), which would otherwise outlive the test process.
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// testEnv is a config, a mapping export and a usage file in a temporary
// directory, pointing at an Autotask simulator.
type testEnv struct {
	dir        string
	sim        *psatest.Server
	cfgPath    string
	exportPath string
	doc        *export.Document
	contracts  []int64
	services   []int64
}

const testUsage = `customer_id,customer_name,product,product_name,quantity
cust-acme,Acme,CIXA-MSP,Intercept X Advanced,11
cust-acme,Acme,CIXA-SRV,Intercept X Server,2
cust-globex,Globex,CIXA-MSP,Intercept X Advanced,5
cust-initech,Initech,CIXA-MSP,Intercept X Advanced,4
,,CIXA-MSP,Intercept X Advanced,3
cust-acme,Acme,XGS-FW,XGS Firewall,1
`

// newTestEnv seeds a simulator and writes the files. baseURL, when not
// empty, replaces the simulator's URL in the config (a proxy in front of it).
func newTestEnv(t *testing.T, baseURL func(*psatest.Server) string) *testEnv {
	t.Helper()
	sim := psatest.Start(t)
	a := sim.Autotask()
	e := &testEnv{dir: t.TempDir(), sim: sim}
	acme, globex := a.AddCompany("Acme Corp"), a.AddCompany("Globex")
	e.contracts = []int64{
		a.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Acme Managed Security"}),
		a.AddContract(psatest.AutotaskContract{CompanyID: globex, Name: "Globex Managed Security"}),
	}
	e.services = []int64{a.AddService("Sophos Intercept X Advanced", 4.5), a.AddService("Sophos Intercept X Server", 9)}

	base := sim.AutotaskBaseURL()
	if baseURL != nil {
		base = baseURL(sim)
	}
	e.cfgPath = filepath.Join(e.dir, "psa-syncd.yml")
	e.exportPath = filepath.Join(e.dir, "mappings.json")
	writeFile(t, filepath.Join(e.dir, "usage.csv"), testUsage)
	user, secret, code := a.Credentials()
	writeFile(t, e.cfgPath, fmt.Sprintf(`export_path: mappings.json
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
web:
  listen_address: 127.0.0.1:0
  api_token: test-token
`, user, secret, code, base))

	// The export is for the instance psa-syncd connects to (the simulator,
	// or the proxy in front of it): psa-syncd refuses one for another.
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	doc := export.New(psa.SystemAutotask, u.Host)
	doc.Revision = 1
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: itoa(e.services[0]), ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-SRV", ServiceID: itoa(e.services[1]), ServiceName: "Sophos Intercept X Server", SyncEnabled: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-acme", CustomerName: "Acme", CompanyID: itoa(acme), ContractID: itoa(e.contracts[0]), UsageSync: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-globex", CustomerName: "Globex", CompanyID: itoa(globex), ContractID: itoa(e.contracts[1]), UsageSync: true})
	e.doc = doc
	e.writeExport(t, doc)
	return e
}

func (e *testEnv) writeExport(t *testing.T, doc *export.Document) {
	t.Helper()
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.exportPath, string(data))
}

// wantUnits is what testUsage must produce: contract index, service index, units.
var wantUnits = [][3]int64{{0, 0, 11}, {0, 1, 2}, {1, 0, 5}}

func (e *testEnv) checkUnits(t *testing.T) {
	t.Helper()
	for _, w := range wantUnits {
		got, _ := e.sim.Autotask().Units(e.contracts[w[0]], e.services[w[1]], time.Now())
		if got != w[2] {
			t.Errorf("units of contract %d service %d = %d, want %d", e.contracts[w[0]], e.services[w[1]], got, w[2])
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runCmd runs psa-syncd in-process and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr, func(string) string { return "" })
	return code, stdout.String(), stderr.String()
}

func TestRun_usage(t *testing.T) {
	t.Parallel()
	if code, _, stderr := runCmd(t); code != 2 || !strings.Contains(stderr, "Usage: psa-syncd <command>") {
		t.Errorf("no arguments: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCmd(t, "--help"); code != 0 || !strings.Contains(stdout, "simulate") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout)
	}
	for _, c := range commands {
		for _, h := range []string{"--help", "-help", "-h"} {
			code, stdout, _ := runCmd(t, c.name, h)
			if code != 0 || !strings.Contains(stdout, "Usage: psa-syncd "+c.name) {
				t.Errorf("%s %s: exit %d, stdout %q", c.name, h, code, stdout)
			}
		}
		if code, stdout, _ := runCmd(t, "help", c.name); code != 0 || !strings.Contains(stdout, "Usage: psa-syncd "+c.name+" [flags]") {
			t.Errorf("help %s: exit %d, stdout %q; want the command's own help", c.name, code, stdout)
		}
	}
	if code, _, stderr := runCmd(t, "help", "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("help frobnicate: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "sync", "--no-such-flag"); code != 2 || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("sync --no-such-flag: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "plan", "-log.level", "loud"); code != 2 || !strings.Contains(stderr, "log.level") {
		t.Errorf("plan -log.level loud: exit %d, stderr %q", code, stderr)
	}
	// Not the defaults in disguise: a usage error before any start-up.
	for _, flags := range [][]string{{"-web.shutdown-timeout", "0s"}, {"-web.shutdown-timeout", "-5s"}, {"-export.poll-interval", "0s"}} {
		args := append([]string{"run", "-config.file", "does-not-exist.yml"}, flags...)
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, flags[0]+" "+flags[1]+": must be positive") {
			t.Errorf("run %s %s: exit %d, stderr %q; want 2 saying it must be positive", flags[0], flags[1], code, stderr)
		}
	}
	for _, tc := range []struct{ flag, value, want string }{
		{"-limit", "-1", "-limit -1: must not be negative"},
		{"-period", "2026-13", `-period "2026-13": want a billing month, YYYY-MM`},
	} {
		if code, _, stderr := runCmd(t, "ledger", "-config.file", "does-not-exist.yml", tc.flag, tc.value); code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("ledger %s %s: exit %d, stderr %q; want 2 and %q", tc.flag, tc.value, code, stderr, tc.want)
		}
	}
	// A listen address that no listener takes is a usage error naming
	// the flag, before the state database is opened (or made).
	for _, addr := range []string{"9810", "127.0.0.1", "localhost:http-alt-nope"} {
		if code, _, stderr := runCmd(t, "run", "-config.file", "does-not-exist.yml", "-web.listen-address", addr); code != 2 ||
			!strings.Contains(stderr, "-web.listen-address: \""+addr+"\" is not host:port") {
			t.Errorf("run -web.listen-address %s: exit %d, stderr %q; want 2 naming the flag", addr, code, stderr)
		}
	}
	if code, stdout, _ := runCmd(t, "version"); code != 0 || !strings.HasPrefix(stdout, "psa-syncd ") {
		t.Errorf("version: exit %d, stdout %q", code, stdout)
	}
}

func TestRun_validate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	code, stdout, stderr := runCmd(t, "validate", "--config.file", e.cfgPath)
	if code != 0 || !strings.Contains(stdout, "mapping export "+e.exportPath+": valid (revision 1, 2 product mappings, 2 customer mappings") {
		t.Fatalf("validate: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// One of each is counted in the singular.
	one := e.doc.Clone()
	one.ProductMappings, one.CustomerMappings = one.ProductMappings[:1], one.CustomerMappings[:1]
	e.writeExport(t, one)
	code, stdout, stderr = runCmd(t, "validate", "--config.file", e.cfgPath)
	if code != 0 || !strings.Contains(stdout, "valid (revision 1, 1 product mapping, 1 customer mapping, ") {
		t.Errorf("validate of an export of one product and one customer mapping: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	bad := e.doc.Clone()
	bad.CustomerMappings[1].ContractID = ""
	data, _ := json.Marshal(bad) // Encode would refuse the invalid document
	writeFile(t, e.exportPath, string(data))
	code, _, stderr = runCmd(t, "validate", "-config.file", e.cfgPath)
	if code != 1 || !strings.Contains(stderr, e.exportPath) || !strings.Contains(stderr, "customer_mappings[1]") || !strings.Contains(stderr, "contract_id is required") {
		t.Errorf("validate with a bad export: exit %d, stderr %q; want 1 naming the file, entry and field", code, stderr)
	}
	// A source named otherwise than the export's mappings: every customer
	// would be unmapped.
	e.writeExport(t, e.doc)
	cfg := string(must(os.ReadFile(e.cfgPath)))
	writeFile(t, e.cfgPath, strings.Replace(cfg, "    path: usage.csv\n", "    path: usage.csv\n    name: passwordboss\n", 1))
	code, _, stderr = runCmd(t, "validate", "-config.file", e.cfgPath)
	if code != 1 || !strings.Contains(stderr, `no product or customer of the usage source "passwordboss" (source.file.name), only of "file"`) {
		t.Errorf("validate with a source the export does not map: exit %d, stderr %q; want 1 naming both source names", code, stderr)
	}
	// -export.file as a URL, or one a slash short, is refused without
	// its password, not read as a file whose name the error quotes.
	for _, f := range []string{"https:/ci:export-password-123@store.example:9810", "https://ci:export-password-123@store.example:9810"} {
		code, _, stderr = runCmd(t, "validate", "-config.file", e.cfgPath, "-export.file", f)
		if code != 2 || !strings.Contains(stderr, "-export.file") || strings.Contains(stderr, "export-password-123") {
			t.Errorf("validate -export.file %s: exit %d, stderr %q; want 2 naming the flag, without the password", f, code, stderr)
		}
	}
	writeFile(t, e.cfgPath, "export_path: x.json\nstate_dir: s\nbogus: 1\n")
	code, _, stderr = runCmd(t, "validate", "-config.file", e.cfgPath)
	if code != 1 || !strings.Contains(stderr, e.cfgPath) || !strings.Contains(stderr, "bogus") {
		t.Errorf("validate with a bad config: exit %d, stderr %q", code, stderr)
	}
}

// TestPrintPlan_header: the plan's table says when it was computed, by
// which pass, and that a pass writes nothing while the export switches the
// integration off.
func TestPrintPlan_header(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printPlan(&b, &usage.Plan{ComputedAt: time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC), RunID: 7, WritesDisabled: true}, false)
	for _, want := range []string{"Computed at 2026-11-30T20:00:00Z by the pass of run 7\n",
		"The integration is disabled in the mapping export: a pass writes none of these changes."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printPlan output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPrintPlan_syncOff: the plan's table lists the customers mapped with
// usage_sync = false that have usage, as it lists the products mapped with
// sync_enabled = false: nothing bills that usage, on purpose.
func TestPrintPlan_syncOff(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printPlan(&b, &usage.Plan{Unmapped: usage.Unmapped{
		SyncOff:          []usage.UnmappedProduct{{Product: "OLD", Customers: 1, Quantity: 9}},
		SyncOffCustomers: []usage.UnmappedCustomer{{CustomerID: "cust-globex", CustomerName: "Globex", Products: []string{"CIXA-MSP", "MDR"}, Quantity: 10}},
	}}, false)
	for _, want := range []string{"Products mapped with sync_enabled = false (not synced on purpose):",
		"Customers mapped with usage_sync = false (usage not billed, on purpose):", "cust-globex", "CIXA-MSP,MDR"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printPlan output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPrintPlan_unreported: the plan's table lists the mapped customers
// that the usage report names nowhere while their contracts bill, with the
// contract and what it bills, so that a removed tenant or a misspelled
// customer_id is seen.
func TestPrintPlan_unreported(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printPlan(&b, &usage.Plan{Unmapped: usage.Unmapped{
		Unreported: []usage.UnreportedCustomer{{CustomerID: "cust-globex", CustomerName: "Globex", ContractID: "29684001", Quantity: 8, Vendor: usage.VendorGone},
			{CustomerID: "cust-initech", ContractID: "29684002", Quantity: 3, Vendor: usage.VendorListed},
			{CustomerID: "cust-file", ContractID: "29684003", Quantity: 1}},
	}}, false)
	for _, want := range []string{"Mapped customers with no usage row at all while their contracts bill", "misspelled psa_customer_mapping.customer_id",
		"cust-globex", "29684001", "VENDOR", "gone (deleted or moved to another partner)", "listed, no usage"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printPlan output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPrintPlan_inactiveServices: the plan's table lists the lines that go
// on invoicing a service the PSA says is inactive, unchanged ones (which no
// write reports) as well as those whose change failed.
func TestPrintPlan_inactiveServices(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printPlan(&b, &usage.Plan{Unmapped: usage.Unmapped{
		InactiveServices: []usage.InactiveServiceLine{
			{CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684001", ServiceID: "30000012", ServiceName: "Sophos Intercept X", Quantity: 5},
			{CustomerID: "cust-globex", ContractID: "29684002", ServiceID: "30000012", Quantity: 2, Failed: true},
			{CustomerID: "cust-initech", ContractID: "29684003", ServiceID: "30000013", Quantity: 1, Gone: true}},
	}}, false)
	for _, want := range []string{"Lines that go on invoicing a service the PSA says is inactive", "Acme (cust-acme)", "Sophos Intercept X (30000012)",
		"THIS PASS", "unchanged", "change failed", "unchanged (service deleted in the PSA)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printPlan output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPrintPlan_zeroQuantityUnmapped: unmapped customers and products whose
// rows are all 0 are listed apart, not among the usage that is not billed.
func TestPrintPlan_zeroQuantityUnmapped(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printPlan(&b, &usage.Plan{Unmapped: usage.Unmapped{
		ZeroCustomers:  []usage.UnmappedCustomer{{CustomerID: "cust-trial", CustomerName: "Trial Co", Products: []string{"CIXA-MSP"}}},
		ZeroProducts:   []usage.UnmappedProduct{{Product: "TRIAL-X", ProductName: "Trial thing", Customers: 1}},
		ZeroUnassigned: []source.Record{{Product: "FW-MONTHLY"}},
	}}, false)
	out := b.String()
	for _, want := range []string{"Unmapped with quantity 0 only", "cust-trial", "Trial Co", "TRIAL-X", "no customer  FW-MONTHLY"} {
		if !strings.Contains(out, want) {
			t.Errorf("printPlan output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "usage not billed") || strings.Contains(out, "Usage with no customer") {
		t.Errorf("printPlan lists usage of quantity 0 as not billed:\n%s", out)
	}
}

// TestPrintPlan_contractsEnding: the plan's table lists the mapped
// contracts that end this month or next, with their end dates, so that the
// renewal's mapping is merged in time; those that have ended are listed
// among the customers that cannot be synced, not twice.
func TestPrintPlan_contractsEnding(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	end := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	printPlan(&b, &usage.Plan{ContractsEnding: []usage.ContractEnding{
		{Source: "file", CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684183", ContractName: "Acme 2026", EndDate: end, When: usage.EndingThisMonth},
		{Source: "file", CustomerID: "cust-gone", ContractID: "29684999", EndDate: end, When: usage.EndingEnded},
	}}, false)
	out := b.String()
	for _, want := range []string{"Contracts that end this month or next", "Acme (cust-acme)", "Acme 2026 (29684183)", "2026-12-31"} {
		if !strings.Contains(out, want) {
			t.Errorf("printPlan output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cust-gone") {
		t.Errorf("printPlan lists the ended contract among those ending:\n%s", out)
	}
}

// TestRun_planJSONSaysWhyALineIsHeld: plan -json says why a held line is
// held ("hold": here the decrease guard, which an approval releases), and
// leaves the key out for the lines that are not held.
func TestRun_planJSONSaysWhyALineIsHeld(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	now := time.Now().UTC()
	// Acme's Intercept X holds 100 units; the usage says 11, a decrease
	// beyond the default max_decrease_percent of 50.
	e.sim.Autotask().SetUnits(e.contracts[0], e.services[0], 100, time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC))

	code, stdout, stderr := runCmd(t, "plan", "-config.file="+e.cfgPath, "-json")
	var plan struct {
		Changes []map[string]any `json:"changes"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); code != 0 || err != nil || len(plan.Changes) != 3 {
		t.Fatalf("plan -json: exit %d, %v, %d changes:\n%s\n%s", code, err, len(plan.Changes), stdout, stderr)
	}
	for _, c := range plan.Changes {
		hold, ok := c["hold"]
		switch {
		case c["customer_id"] == "cust-acme" && c["service_id"] == itoa(e.services[0]):
			if c["action"] != "held" || hold != "approval" {
				t.Errorf("Acme's Intercept X: action %v, hold %v; want held, hold approval", c["action"], hold)
			}
		case ok:
			t.Errorf("%v's service %v (%v) has hold %v, want none", c["customer_id"], c["service_id"], c["action"], hold)
		}
	}
}

// TestRun_planUnreadableUnmapped: customers and products without a mapping
// whose only rows cannot be read (Unmapped.UnreadableCustomers and
// UnreadableProducts) were on the status page and in psa_sync_unmapped,
// but plan showed them only among the skipped rows. Now they have a
// section of the table, and are in -json.
func TestRun_planUnreadableUnmapped(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	writeFile(t, filepath.Join(e.dir, "usage.csv"), testUsage+
		"newco,New Co,CIXA-MSP,Intercept X Advanced,4x0\n"+
		"cust-acme,Acme,NEWPROD,New thing,x\n")
	cfg := "-config.file=" + e.cfgPath

	code, stdout, stderr := runCmd(t, "plan", cfg)
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s\n%s", code, stdout, stderr)
	}
	_, section, _ := strings.Cut(stdout, "Unmapped, with rows that cannot be read")
	section, _, _ = strings.Cut(section, "\n\n")
	for _, want := range []string{"KIND      ID", "customer  newco", "product   NEWPROD"} {
		if !strings.Contains(section, want) {
			t.Errorf("plan output lacks %q in its section of unmapped ids with unreadable rows:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCmd(t, "plan", cfg, "-json")
	var plan struct {
		Unmapped struct {
			Customers []string `json:"unreadable_customers"`
			Products  []string `json:"unreadable_products"`
		} `json:"unmapped"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); code != 0 || err != nil {
		t.Fatalf("plan -json: exit %d, %v:\n%s\n%s", code, err, stdout, stderr)
	}
	if !slices.Equal(plan.Unmapped.Customers, []string{"newco"}) || !slices.Equal(plan.Unmapped.Products, []string{"NEWPROD"}) {
		t.Errorf("plan -json: unreadable_customers %q, unreadable_products %q; want [newco], [NEWPROD]", plan.Unmapped.Customers, plan.Unmapped.Products)
	}
}

func TestRun_planSyncStatus(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cfg := "-config.file=" + e.cfgPath

	code, stdout, stderr := runCmd(t, "plan", cfg)
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"CUSTOMER", "CONTRACT", "SERVICE", "CURRENT", "DESIRED", "EFFECTIVE", "REASON",
		"Acme (cust-acme)", "Unmapped customers", "cust-initech", "Unmapped products", "XGS-FW",
		"Usage with no customer", "3 to update", "Computed at 20",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = runCmd(t, "plan", cfg, "--json")
	var plan struct {
		Changes []struct {
			Action  string `json:"action"`
			Desired int64  `json:"desired"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); code != 0 || err != nil || len(plan.Changes) != 3 {
		t.Errorf("plan --json: exit %d, %v, %d changes:\n%s", code, err, len(plan.Changes), stdout)
	}

	code, stdout, stderr = runCmd(t, "sync", cfg, "--dry-run")
	if code != 0 || !strings.Contains(stdout, "dry run") {
		t.Errorf("sync --dry-run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(e.sim.Autotask().Adjustments()); n != 0 {
		t.Fatalf("dry run posted %d adjustments", n)
	}

	metrics := filepath.Join(e.dir, "metrics.prom")
	code, stdout, stderr = runCmd(t, "sync", cfg, "-metrics.file", metrics)
	if code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{": success", "3 updated", "cust-acme", "succeeded"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("sync output lacks %q:\n%s", want, stdout)
		}
	}
	e.checkUnits(t)
	prom, err := os.ReadFile(metrics)
	if err != nil || !strings.Contains(string(prom), `psa_sync_lines_total{outcome="updated",system="autotask"} 3`) {
		t.Errorf("metrics file: %v\n%s", err, prom)
	}

	code, stdout, _ = runCmd(t, "sync", cfg)
	if code != 0 || !strings.Contains(stdout, "0 updated, 3 unchanged") {
		t.Errorf("second sync: exit %d\n%s", code, stdout)
	}
	// Metrics that cannot be written are a failure: a textfile collector
	// would go on showing the last ones.
	code, _, stderr = runCmd(t, "sync", cfg, "-metrics.file", filepath.Join(e.dir, "no-such-dir", "metrics.prom"))
	if code != 1 || !strings.Contains(stderr, "Error writing metrics file") {
		t.Errorf("sync -metrics.file into a missing directory: exit %d, stderr %q; want 1", code, stderr)
	}
	code, stdout, _ = runCmd(t, "sync", cfg, "-json")
	var res struct {
		Run struct {
			Result    string `json:"result"`
			Unchanged int    `json:"unchanged"`
		} `json:"run"`
		Customers []struct {
			CustomerID string `json:"customer_id"`
			Status     string `json:"status"`
		} `json:"customers"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || res.Run.Result != "success" || res.Run.Unchanged != 3 || len(res.Customers) != 2 {
		t.Errorf("sync -json: exit %d, %v, %+v\n%s", code, err, res, stdout)
	}
	if n := len(e.sim.Autotask().Adjustments()); n != 3 {
		t.Errorf("%d adjustments after two passes, want 3", n)
	}

	code, stdout, _ = runCmd(t, "status", cfg)
	if code != 0 || !strings.Contains(stdout, "LAST SUCCESS") || !strings.Contains(stdout, "cust-globex") {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "status", cfg, "--failed")
	if code != 0 || !strings.Contains(stdout, "No customer's last sync failed.") {
		t.Errorf("status --failed: exit %d\n%s", code, stdout)
	}

	// A customer mapped to a contract that does not exist fails; the others
	// still sync, the pass is partial and the exit code says so.
	broken := e.doc.Clone()
	broken.Revision = 2
	broken.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-initech", CustomerName: "Initech", CompanyID: "1", ContractID: "987654", UsageSync: true})
	e.writeExport(t, broken)
	code, stdout, _ = runCmd(t, "sync", cfg)
	if code != 1 || !strings.Contains(stdout, "partial") {
		t.Errorf("sync with a broken customer: exit %d, want 1 and partial\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "status", cfg, "--failed", "--json")
	if code != 0 || !strings.Contains(stdout, `"customer_id": "cust-initech"`) || strings.Contains(stdout, "cust-acme") {
		t.Errorf("status --failed --json: exit %d\n%s", code, stdout)
	}
	// -exit-code: 1 when a customer listed failed, in the table and the
	// JSON alike; 0 when none listed did.
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"-exit-code"}, 1},
		{[]string{"-exit-code", "-json"}, 1},
		{[]string{"-exit-code", "-failed"}, 1},
		{[]string{"-exit-code", "-status", "succeeded"}, 0},
		{[]string{"-exit-code", "-status", "succeeded", "-json"}, 0},
	} {
		if code, stdout, stderr := runCmd(t, append([]string{"status", cfg}, c.args...)...); code != c.want {
			t.Errorf("status %v: exit %d, want %d\n%s\n%s", c.args, code, c.want, stdout, stderr)
		}
	}
	// With its usage sync turned off, Initech's failure is history: listed
	// with its last status, but not by -failed (psa_sync_customers does
	// not count it either), and it no longer fails -exit-code.
	off := broken.Clone()
	off.Revision = 3
	off.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-initech", CustomerName: "Initech", CompanyID: "1", ContractID: "987654", UsageSync: false})
	e.writeExport(t, off)
	if code, stdout, stderr := runCmd(t, "status", cfg, "-exit-code", "-failed"); code != 0 || strings.Contains(stdout, "cust-initech") || !strings.Contains(stdout, "No customer's last sync failed.") {
		t.Errorf("status -exit-code -failed once the failed customer's usage sync is off: exit %d\n%s\n%s\nwant 0, the customer not listed", code, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(t, "status", cfg, "-exit-code"); code != 0 || !regexp.MustCompile(`cust-initech\s.*\sfalse\s+failed\s`).MatchString(stdout) {
		t.Errorf("status -exit-code once the failed customer's usage sync is off: exit %d\n%s\n%s\nwant 0, the customer listed with its last status", code, stdout, stderr)
	}
	// Removed from the export, Initech is no failure any more.
	e.writeExport(t, e.doc)
	if code, stdout, stderr := runCmd(t, "status", cfg, "-exit-code"); code != 0 || !regexp.MustCompile(`cust-initech\s.*\sremoved\s`).MatchString(stdout) {
		t.Errorf("status -exit-code once the failed customer's mapping is removed: exit %d\n%s\n%s\nwant 0 and the customer removed", code, stdout, stderr)
	}
}

func TestRun_check(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	code, stdout, stderr := runCmd(t, "check", "-config.file", e.cfgPath)
	if code != 0 || !strings.Contains(stdout, "ok   psa autotask") || !strings.Contains(stdout, "ok   source file") {
		t.Errorf("check: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The budget line says where each kind of pass stops writing.
	if !regexp.MustCompile(`ok   psa autotask budget: \d+ of \d+ requests left this \S+ \(usage passes stop writing at 500, ticket passes at 2500\)`).MatchString(stdout) {
		t.Errorf("check: the budget line does not name the usage and ticket reserves:\n%s", stdout)
	}
	// The usage file is read, not reached: the line says what it holds.
	if !regexp.MustCompile(`ok   source file: \S+: \d+ rows, 0 skipped`).MatchString(stdout) || strings.Contains(stdout, "reachable and authenticated") {
		t.Errorf("check: the source file's line does not say how many rows the file holds:\n%s", stdout)
	}
	if strings.Contains(stdout, "NOTE config policies") {
		t.Errorf("check: a policies note for the default policies:\n%s", stdout)
	}
	cfg, _ := os.ReadFile(e.cfgPath)
	// max_decrease_percent: 100 turns the guard off in disguise: a note,
	// not a failure.
	writeFile(t, e.cfgPath, string(cfg)+"policies:\n  max_decrease_percent: 100\n")
	code, stdout, _ = runCmd(t, "check", "-config.file", e.cfgPath)
	if code != 0 || !strings.Contains(stdout, "NOTE config policies:") || !strings.Contains(stdout, "policies.max_decrease_percent: 100 holds no decrease") {
		t.Errorf("check with max_decrease_percent: 100: exit %d\n%s\nwant 0 and the note", code, stdout)
	}
	writeFile(t, e.cfgPath, strings.Replace(string(cfg), `secret: "`+psatest.DefaultAutotaskSecret+`"`, `secret: "wrong-secret"`, 1))
	code, stdout, _ = runCmd(t, "check", "-config.file", e.cfgPath)
	if code != 1 || !strings.Contains(stdout, "FAIL psa autotask") || strings.Contains(stdout, "wrong-secret") {
		t.Errorf("check with a wrong secret: exit %d\n%s", code, stdout)
	}
}

// TestRun_checkJSON: check -json prints the report as one JSON object,
// {"ok", "items"}, each item with its result (ok, fail or note), what was
// checked and the detail (or a note's paragraphs), with check's exit codes;
// a config file that cannot be loaded is the failed item "config".
func TestRun_checkJSON(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	check := func(args ...string) (int, checkJSON) {
		t.Helper()
		code, stdout, stderr := runCmd(t, append([]string{"check", "-json"}, args...)...)
		var out checkJSON
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("check -json %v: exit %d, stdout is not JSON: %v\n%s\n%s", args, code, err, stdout, stderr)
		}
		return code, out
	}
	code, out := check("-config.file", e.cfgPath)
	if code != 0 || !out.OK || out.result("config") != "ok" || out.result("psa autotask") != "ok" || out.result("source file") != "ok" ||
		out.result("mapping export") != "ok" || !strings.Contains(out.detail("psa autotask"), "authenticated at ") {
		t.Errorf("check -json: exit %d, %+v", code, out)
	}
	cfg, _ := os.ReadFile(e.cfgPath)
	writeFile(t, e.cfgPath, strings.Replace(string(cfg), `secret: "`+psatest.DefaultAutotaskSecret+`"`, `secret: "wrong-secret"`, 1))
	code, out = check("-config.file", e.cfgPath)
	if code != 1 || out.OK || out.result("psa autotask") != "fail" || !strings.Contains(out.detail("psa autotask"), "authentication") {
		t.Errorf("check -json with a wrong secret: exit %d, %+v; want 1, ok false and the failed item", code, out)
	}
	writeFile(t, e.cfgPath, string(cfg)+"schedule: every fortnight\n")
	code, out = check("-config.file", e.cfgPath)
	if code != 1 || out.OK || len(out.Items) != 1 || out.result("config") != "fail" || !strings.Contains(out.detail("config"), "schedule") {
		t.Errorf("check -json with a broken config file: exit %d, %+v; want the failed item config naming the key", code, out)
	}
}

// checkJSON is the output of psa-syncd check -json.
type checkJSON struct {
	OK    bool `json:"ok"`
	Items []struct {
		Result string   `json:"result"`
		Item   string   `json:"item"`
		Detail string   `json:"detail"`
		Notes  []string `json:"notes"`
	} `json:"items"`
}

// result returns the result of the first item named item, or "".
func (c checkJSON) result(item string) string {
	for _, it := range c.Items {
		if it.Item == item {
			return it.Result
		}
	}
	return ""
}

// detail returns the detail of the first item named item, or "".
func (c checkJSON) detail(item string) string {
	for _, it := range c.Items {
		if it.Item == item {
			return it.Detail
		}
	}
	return ""
}

// TestRun_checkInstanceMismatch: an export written for another PSA
// instance (another tenant's zone host) is reported by check.
func TestRun_checkInstanceMismatch(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	other := e.doc.Clone()
	other.PSA.Instance = "webservices99.autotask.net"
	e.writeExport(t, other)
	code, stdout, _ := runCmd(t, "check", "-config.file", e.cfgPath)
	want := `FAIL mapping export: ` + e.exportPath + `: psa.instance: the export is for autotask instance "webservices99.autotask.net" but psa-syncd is connected to`
	if code != 1 || !strings.Contains(stdout, want) {
		t.Errorf("check with an export for another instance: exit %d\n%s\nwant a line starting %q", code, stdout, want)
	}
}

// startSimulate runs `psa-syncd simulate` in-process with args and returns
// what it printed up to READY=1, as the variables a POSIX shell sets when it
// sources that output (read back by running sh, so that the output is
// checked to be valid shell). The command stops when the test ends, and
// must then exit 0.
func startSimulate(t *testing.T, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"simulate"}, args...), pw, &stderr, nil)
		_ = pw.Close() // always nil for a PipeWriter; gives the reader below EOF
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("simulate exited %d after cancel, want 0", code)
		}
	})
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if sc.Text() == "READY=1" {
			break
		}
	}
	// Drain the rest so that simulate never blocks writing; the copy ends
	// when simulate exits and closes the pipe.
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !strings.HasSuffix(out.String(), "READY=1\n") {
		t.Fatalf("simulate %v printed %q, stderr %s", args, out.String(), stderr.String())
	}
	envFile := filepath.Join(t.TempDir(), "simulate.env")
	writeFile(t, envFile, out.String())
	// Exported variables are listed by env, the others by set; both as
	// NAME=value with the value as it is, one per line (no value here holds
	// a newline).
	cmd := exec.CommandContext(t.Context(), "sh", "-c", `. "$1" && env && echo --- && echo "PSA_SYSTEM=$PSA_SYSTEM" && echo "PSA_STATE_URL=$PSA_STATE_URL" && echo "SOPHOS_AUTH_URL=$SOPHOS_AUTH_URL" && echo "SOPHOS_API_URL=$SOPHOS_API_URL" && echo "READY=$READY"`, "sh", envFile)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing simulate's output in sh: %v\n%s", err, out.String())
	}
	vars := map[string]string{}
	exported, rest, _ := strings.Cut(string(got), "---\n")
	for _, line := range strings.Split(exported, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "PSA_") {
			vars[k] = v
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(rest), "\n") {
		k, v, _ := strings.Cut(line, "=")
		if _, ok := vars[k]; ok {
			t.Errorf("%s is exported: it is for scripts, not read by the provider or psa-syncd", k)
		}
		vars["unexported "+k] = v
	}
	return vars
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, body)
	}
	return string(body)
}

// readEnvNames lists the PSA_ environment variables read by the provider
// and psa-syncd, from their sources.
func readEnvNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`"(PSA_[A-Z_]+)"`)
	for _, f := range []string{"../../../provider/provider.go", "../../config.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
	}
	if !names["PSA_AUTOTASK_USERNAME"] || !names["PSA_SOPHOS_CLIENT_SECRET"] {
		t.Fatalf("found %v in the provider's and psa-syncd's sources", names)
	}
	return names
}

func TestRun_simulate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	readable := readEnvNames(t)
	for _, tt := range []struct {
		name, fixture string
		args          []string
		want          map[string]string // keys and a prefix of their values
		state         string            // in the state endpoint's answer
	}{
		{
			name:    "autotask",
			fixture: `{"autotask": {"username": "it's demo@msp.example", "companies": [{"name": "Acme"}]}}`,
			want: map[string]string{
				"unexported PSA_SYSTEM": "autotask", "PSA_AUTOTASK_USERNAME": "it's demo@msp.example", "PSA_AUTOTASK_BASE_URL": "http://127.0.0.1:",
				"PSA_AUTOTASK_SECRET": psatest.DefaultAutotaskSecret, "PSA_AUTOTASK_INTEGRATION_CODE": "",
				"unexported PSA_STATE_URL": "http://127.0.0.1:", "PSA_SOPHOS_CLIENT_ID": sophostest.DefaultClientID,
				"PSA_SOPHOS_CLIENT_SECRET": sophostest.DefaultClientSecret, "unexported SOPHOS_AUTH_URL": "http://127.0.0.1:",
				"unexported SOPHOS_API_URL": "http://127.0.0.1:", "unexported READY": "1",
			},
			state: `"Acme"`,
		},
		{
			name:    "connectwise from the fixture's section",
			fixture: `{"connectwise": {"company": "examplemsp", "codebase": "v2025_1/", "companies": [{"identifier": "Acme", "name": "Acme Corporation"}]}}`,
			want: map[string]string{
				"unexported PSA_SYSTEM": "connectwise", "PSA_CONNECTWISE_SITE": "http://127.0.0.1:",
				"PSA_CONNECTWISE_COMPANY_ID": "examplemsp", "PSA_CONNECTWISE_PUBLIC_KEY": psatest.DefaultConnectWisePublicKey,
				"PSA_CONNECTWISE_PRIVATE_KEY": psatest.DefaultConnectWisePrivateKey, "PSA_CONNECTWISE_CLIENT_ID": psatest.DefaultConnectWiseClientID,
			},
			state: `"Acme Corporation"`,
		},
		{
			name:    "kaseya_bms by flag",
			fixture: `{"kaseyabms": {"tenant": "Example MSP", "accounts": [{"name": "Globex"}]}}`,
			args:    []string{"-psa.system", "kaseya_bms"},
			want: map[string]string{
				"unexported PSA_SYSTEM": "kaseya_bms", "PSA_KASEYA_BMS_BASE_URL": "http://127.0.0.1:", "PSA_KASEYA_BMS_TENANT": "Example MSP",
				"PSA_KASEYA_BMS_USERNAME": psatest.DefaultKaseyaBMSUsername, "PSA_KASEYA_BMS_PASSWORD": psatest.DefaultKaseyaBMSPassword,
			},
			state: `"Globex"`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fixture := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".json")
			writeFile(t, fixture, tt.fixture)
			vars := startSimulate(t, append(tt.args, "-psa.fixture", fixture)...)
			for k, prefix := range tt.want {
				if v, ok := vars[k]; !ok || !strings.HasPrefix(v, prefix) || v == "" {
					t.Errorf("%s = %q, want a value starting with %q", k, v, prefix)
				}
			}
			for k := range vars {
				if !strings.HasPrefix(k, "unexported ") && !readable[k] {
					t.Errorf("simulate exports %s, which neither the provider nor psa-syncd reads", k)
				}
			}
			state := vars["unexported PSA_STATE_URL"]
			if !strings.HasSuffix(state, "/_sim/"+strings.ReplaceAll(vars["unexported PSA_SYSTEM"], "_", "")+"/state") {
				t.Errorf("PSA_STATE_URL = %q", state)
			}
			if body := getBody(t, state); !strings.Contains(body, tt.state) {
				t.Errorf("GET %s = %s, want %s in it", state, body, tt.state)
			}
		})
	}
}

// TestRun_simulateShippedFixtures starts the simulators from the demo's
// fixtures as they are shipped: the Sophos usage is for CURRENT-MONTH, which
// the simulator resolves.
func TestRun_simulateShippedFixtures(t *testing.T) {
	t.Parallel()
	demo := filepath.Join("..", "..", "..", "examples", "demo")
	vars := startSimulate(t, "-psa.fixture", filepath.Join(demo, "autotask.json"), "-sophos.fixture", filepath.Join(demo, "sophos.json"))
	u, err := url.Parse(vars["unexported SOPHOS_API_URL"])
	if err != nil {
		t.Fatal(err)
	}
	state := getBody(t, u.Scheme+"://"+u.Host+"/_sim/sophos/state")
	if month := time.Now().UTC().Format("2006-01"); !strings.Contains(state, `"`+month+`"`) {
		t.Errorf("the Sophos simulator's state has no usage for %s: %s", month, state)
	}
}

func TestRun_simulateBadSystem(t *testing.T) {
	t.Parallel()
	fixture := filepath.Join(t.TempDir(), "two.json")
	writeFile(t, fixture, `{"autotask": {}, "kaseyabms": {}}`)
	if code, _, stderr := runCmd(t, "simulate", "-psa.fixture", fixture); code != 2 || !strings.Contains(stderr, "choose one with -psa.system") {
		t.Errorf("simulate with two sections: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "simulate", "-psa.system", "halopsa"); code != 2 || !strings.Contains(stderr, `unknown system "halopsa"`) {
		t.Errorf("simulate -psa.system halopsa: exit %d, stderr %q", code, stderr)
	}
}

// TestRun_daemonSignals runs the daemon as a process: it becomes ready,
// answers the API, reloads on SIGHUP and exits 0 on SIGTERM.
func TestRun_daemonSignals(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cmd := exec.Command(binary, "run", "-config.file", e.cfgPath, "-web.listen-address", "127.0.0.1:0", "-log.format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if dup := duplicateKeys(sc.Bytes()); len(dup) > 0 {
				t.Errorf("log line repeats keys %v: %s", dup, sc.Bytes())
			}
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				logs <- m
			}
		}
		close(logs)
	}()
	waitLog := func(msg string) map[string]any {
		t.Helper()
		for m := range logs {
			if m["msg"] == msg {
				return m
			}
		}
		t.Fatalf("process ended before logging %q", msg)
		return nil
	}
	if m := waitLog("Starting psa-syncd"); m["version"] == "" {
		t.Errorf("start log has no version: %v", m)
	}
	addr, _ := waitLog("Listening")["address"].(string)
	base := "http://" + addr

	resp, err := http.Get(base + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/-/ready = %d, want 200", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/sync", strings.NewReader(`{"customer": "cust-globex"}`))
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err = testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync = %d, want 202", resp.StatusCode)
	}
	waitLog("Finished pass")
	if got, _ := e.sim.Autotask().Units(e.contracts[1], e.services[0], time.Now()); got != 5 {
		t.Errorf("globex units = %d after sync now, want 5", got)
	}
	// status asks the running daemon, whose state database is locked.
	code, stdout, errOut := runCmd(t, "status", "-web.url", base)
	if code != 0 || !strings.Contains(stdout, "cust-globex") || !strings.Contains(stdout, "succeeded") {
		t.Errorf("status -web.url: exit %d\n%s\n%s", code, stdout, errOut)
	}
	// resolve asks the running daemon too, with its token.
	tokenFile := filepath.Join(e.dir, "token")
	writeFile(t, tokenFile, "test-token\n")
	if code, _, stderr := runCmd(t, "resolve", "-web.url", base, "-web.token-file", tokenFile, "-intent", "999", "-posted"); code != 1 ||
		!strings.Contains(stderr, "409 Conflict") || !strings.Contains(stderr, "intent 999 is not open") {
		t.Errorf("resolve -web.url of an unknown intent: exit %d, stderr %q; want 1 and the daemon's 409", code, stderr)
	}
	if code, _, stderr := runCmd(t, "resolve", "-web.url", base, "-intent", "999", "-posted"); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("resolve -web.url without a token: exit %d, stderr %q; want 1 and 401", code, stderr)
	}
	if code, _, stderr := runCmd(t, "status", "-config.file", e.cfgPath); code != 1 || !strings.Contains(stderr, "locked") {
		t.Errorf("status on the locked database: exit %d, stderr %q; want 1 saying it is locked", code, stderr)
	}
	// backup asks the running daemon for a consistent copy; opening the
	// locked database itself is refused with a pointer to -web.url.
	backup := filepath.Join(e.dir, "backup.db")
	if code, _, stderr := runCmd(t, "backup", "-config.file", e.cfgPath, "-output", backup); code != 1 || !strings.Contains(stderr, "-web.url") {
		t.Errorf("backup on the locked database: exit %d, stderr %q; want 1 pointing at -web.url", code, stderr)
	}
	if code, _, stderr := runCmd(t, "backup", "-web.url", base, "-output", backup); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("backup -web.url without a token: exit %d, stderr %q; want 1 and 401", code, stderr)
	}
	if code, stdout, stderr := runCmd(t, "backup", "-web.url", base, "-web.token-file", tokenFile, "-output", backup); code != 0 || !strings.Contains(stdout, backup) {
		t.Errorf("backup -web.url: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	copied, err := state.Open(backup)
	if err != nil {
		t.Fatalf("opening the backup: %v", err)
	}
	if cs, ok, err := copied.CustomerStatus("file", "cust-globex"); err != nil || !ok || cs.Result != "succeeded" {
		t.Errorf("backup's status of cust-globex = %+v, %v, %v; want the synced status", cs, ok, err)
	}
	if l, err := copied.Ledger(0); err != nil || len(l) == 0 {
		t.Errorf("backup's ledger = %v, %v; want the pass's entries", l, err)
	}
	if err := copied.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, "backup", "-web.url", base, "-web.token-file", tokenFile, "-output", backup); code != 1 || !strings.Contains(stderr, "exists") {
		t.Errorf("backup over an existing file: exit %d, stderr %q; want 1", code, stderr)
	}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("Received SIGHUP, reloading")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog("Received SIGTERM, exiting gracefully")
	if err := cmd.Wait(); err != nil {
		t.Errorf("psa-syncd run exited with %v after SIGTERM, want 0", err)
	}
}

// TestRun_interruptLoggedWhenItComes sends SIGINT to psa-syncd run while
// a pass has a write in flight: the signal is logged, by its name, when it
// comes, not once the pass has ended at the shutdown timeout.
func TestRun_interruptLoggedWhenItComes(t *testing.T) {
	t.Parallel()
	proxy := &holdingProxy{arrived: make(chan struct{}, 16), hold: true}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	e := newTestEnv(t, func(s *psatest.Server) string {
		proxy.sim = s
		return front.URL + "/ATServicesRest/"
	})
	cmd := exec.Command(binary, "run", "-config.file", e.cfgPath, "-log.format", "json", "-web.shutdown-timeout", "1m")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				logs <- m
			}
		}
		close(logs)
	}()
	waitLog := func(msg string, within time.Duration) map[string]any {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m, ok := <-logs:
				if !ok {
					t.Fatalf("process ended before logging %q", msg)
				}
				if m["msg"] == msg {
					return m
				}
			case <-deadline:
				t.Fatalf("no %q logged within %s", msg, within)
			}
		}
	}
	addr, _ := waitLog("Listening", time.Minute)["address"].(string)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/sync", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-proxy.arrived:
	case <-time.After(time.Minute):
		t.Fatal("no adjustment POST arrived")
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// The pass would hold the shutdown for its minute.
	waitLog("Received SIGINT, exiting gracefully", 20*time.Second)
	proxy.mu.Lock()
	proxy.hold = false
	proxy.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// holdingProxy sits in front of the simulator. Adjustment POSTs are held:
// either after the simulator applied them (the response is never sent) or
// before they reach it (they are never applied), until the client goes away.
type holdingProxy struct {
	sim        *psatest.Server
	applyFirst bool
	arrived    chan struct{} // one value per held request
	wg         sync.WaitGroup
	mu         sync.Mutex
	hold       bool
}

func (p *holdingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	hold := p.hold
	p.mu.Unlock()
	isAdjustment := r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments")
	if !hold || !isAdjustment {
		p.sim.Handler().ServeHTTP(w, r)
		return
	}
	p.wg.Add(1)
	defer p.wg.Done()
	if p.applyFirst {
		p.sim.Handler().ServeHTTP(httptest.NewRecorder(), r)
	}
	// The server notices a closed connection only once the body is read.
	_, _ = io.Copy(io.Discard, r.Body)
	p.arrived <- struct{}{}
	<-r.Context().Done() // the killed client closes the connection
}

// TestSync_killedBetweenIntentAndCompletion kills `psa-syncd sync` with
// SIGKILL while an adjustment POST is in flight (after its intent was
// recorded), then syncs again: every line ends at its exact quantity with
// exactly one adjustment, whether the PSA had applied the killed write or not.
func TestSync_killedBetweenIntentAndCompletion(t *testing.T) {
	t.Parallel()
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied=%t", applied), func(t *testing.T) {
			t.Parallel()
			proxy := &holdingProxy{applyFirst: applied, arrived: make(chan struct{}, 16), hold: true}
			front := httptest.NewServer(proxy)
			t.Cleanup(front.Close)
			e := newTestEnv(t, func(s *psatest.Server) string {
				proxy.sim = s
				return front.URL + "/ATServicesRest/"
			})
			// The test waits until every held request has ended
			// (proxy.wg.Wait below), which is what policies.settle_time
			// waits for: the sync after the kill may write at once.
			cfg, err := os.ReadFile(e.cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, e.cfgPath, string(cfg)+"policies:\n  settle_time: 0s\n")

			cmd := exec.Command(binary, "sync", "-config.file", e.cfgPath)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-proxy.arrived:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("no adjustment POST arrived:\n%s", out.String())
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			proxy.wg.Wait() // every held request has seen the connection close
			before := len(e.sim.Autotask().Adjustments())
			if applied && before == 0 {
				t.Fatal("the held adjustment was not applied")
			}
			proxy.mu.Lock()
			proxy.hold = false
			proxy.mu.Unlock()

			code, stdout, stderr := runCmd(t, "sync", "-config.file", e.cfgPath)
			if code != 0 {
				t.Fatalf("sync after the kill: exit %d\n%s\n%s", code, stdout, stderr)
			}
			e.checkUnits(t)
			perLine := map[[2]int64]int{}
			for _, a := range e.sim.Autotask().Adjustments() {
				perLine[[2]int64{a.ContractID, a.ServiceID}]++
			}
			for _, w := range wantUnits {
				k := [2]int64{e.contracts[w[0]], e.services[w[1]]}
				if perLine[k] != 1 {
					t.Errorf("contract %d service %d has %d adjustments, want exactly 1", k[0], k[1], perLine[k])
				}
			}
			if len(perLine) != len(wantUnits) {
				t.Errorf("adjustments on %d lines, want %d: %v", len(perLine), len(wantUnits), perLine)
			}
		})
	}
}

// TestDemoFiles loads the demo's fixtures and its psa-syncd.yml (with the
// placeholders run.sh fills in) for every PSA, so that `make demo` cannot
// rot unnoticed.
func TestDemoFiles(t *testing.T) {
	t.Parallel()
	demo := filepath.Join("..", "..", "..", "examples", "demo")
	raw, err := os.ReadFile(filepath.Join(demo, "sophos.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sophostest.ParseFixture(raw); err != nil {
		t.Errorf("sophos.json: %v", err)
	}
	cfg, err := os.ReadFile(filepath.Join(demo, "psa-syncd.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		system  psa.System
		fixture string
		env     map[string]string
	}{
		{psa.SystemAutotask, "autotask.json", map[string]string{
			"PSA_AUTOTASK_USERNAME": "u", "PSA_AUTOTASK_SECRET": "s3cr3t", "PSA_AUTOTASK_INTEGRATION_CODE": "c0de",
			"PSA_AUTOTASK_BASE_URL": "http://127.0.0.1:1/ATServicesRest/",
		}},
		{psa.SystemConnectWise, "connectwise.json", map[string]string{
			"PSA_CONNECTWISE_SITE": "http://127.0.0.1:1", "PSA_CONNECTWISE_COMPANY_ID": "msp", "PSA_CONNECTWISE_PUBLIC_KEY": "pubkey",
			"PSA_CONNECTWISE_PRIVATE_KEY": "priv", "PSA_CONNECTWISE_CLIENT_ID": "client",
		}},
		{psa.SystemKaseyaBMS, "kaseyabms.json", map[string]string{
			"PSA_KASEYA_BMS_BASE_URL": "http://127.0.0.1:1/", "PSA_KASEYA_BMS_USERNAME": "u", "PSA_KASEYA_BMS_PASSWORD": "p4ss",
			"PSA_KASEYA_BMS_TENANT": "t",
		}},
	} {
		t.Run(string(tt.system), func(t *testing.T) {
			t.Parallel()
			f, err := psatest.LoadFixture(filepath.Join(demo, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if sys, err := simulatedSystem("", f); err != nil || sys != tt.system {
				t.Errorf("%s simulates %q, %v; want %q", tt.fixture, sys, err, tt.system)
			}
			if _, err := os.Stat(filepath.Join(demo, "psa", string(tt.system)+".tf")); err != nil {
				t.Error(err)
			}
			dir := t.TempDir()
			rendered := strings.NewReplacer("@PSA_SYSTEM@", string(tt.system),
				"@SOPHOS_AUTH_URL@", "http://127.0.0.1:1/api/v2/oauth2/token", "@SOPHOS_API_URL@", "http://127.0.0.1:1/").Replace(string(cfg))
			writeFile(t, filepath.Join(dir, "psa-syncd.yml"), rendered)
			writeFile(t, filepath.Join(dir, "api-token"), "token\n")
			env := map[string]string{"PSA_SOPHOS_CLIENT_ID": "id", "PSA_SOPHOS_CLIENT_SECRET": "secret"}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := daemon.Load(filepath.Join(dir, "psa-syncd.yml"), func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if c.PSA.System != tt.system || c.Source.Type != daemon.SourceSophos || string(c.Web.APIToken) != "token" {
				t.Errorf("demo config: system %q, source %q, token set %t", c.PSA.System, c.Source.Type, c.Web.APIToken != "")
			}
		})
	}
}

// systemEnv is a config, a mapping export and a usage file in a temporary
// directory, pointing at a ConnectWise or Kaseya BMS simulator with two
// customers (each with a contract) and two services; units reads a line's
// quantity back from the simulator.
type systemEnv struct {
	dir, cfgPath string
	sim          *psatest.Server
	contracts    []string
	services     []string
	units        func(contract, service string) (int64, bool)
}

func newSystemEnv(t *testing.T, sys psa.System, opts ...psatest.Option) *systemEnv {
	t.Helper()
	sim := psatest.Start(t, append([]psatest.Option{psatest.WithSystem(sys)}, opts...)...)
	e := &systemEnv{dir: t.TempDir(), sim: sim}
	e.cfgPath = filepath.Join(e.dir, "psa-syncd.yml")
	var companies []string
	var psaSection string
	switch sys {
	case psa.SystemConnectWise:
		cw := sim.ConnectWise()
		for _, name := range []string{"Acme Corp", "Globex"} {
			c := cw.AddCompany(name)
			companies = append(companies, itoa(c))
			e.contracts = append(e.contracts, itoa(cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: c, Name: name + " Managed Security"})))
		}
		for _, p := range []struct{ id, name string }{{"SOPHOS-IXA", "Sophos Intercept X Advanced"}, {"SOPHOS-SRV", "Sophos Intercept X Server"}} {
			e.services = append(e.services, itoa(cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: p.id, Description: p.name, Price: 4.5})))
		}
		company, public, private, client := cw.Credentials()
		psaSection = fmt.Sprintf("  system: connectwise\n  connectwise:\n    site: %q\n    company_id: %q\n    public_key: %q\n    private_key: %q\n    client_id: %q\n",
			sim.ConnectWiseSite(), company, public, private, client)
		e.units = func(contract, service string) (int64, bool) {
			a, _ := strconv.ParseInt(contract, 10, 64)
			p, _ := strconv.ParseInt(service, 10, 64)
			q, ok := cw.Quantity(a, p)
			return int64(q), ok
		}
	case psa.SystemKaseyaBMS:
		k := sim.KaseyaBMS()
		for _, name := range []string{"Acme Corp", "Globex"} {
			a := k.AddAccount(name)
			companies = append(companies, strconv.Itoa(a))
			e.contracts = append(e.contracts, strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: name + " Managed Security"})))
		}
		for _, name := range []string{"Sophos Intercept X Advanced", "Sophos Intercept X Server"} {
			e.services = append(e.services, strconv.Itoa(k.AddService(name, 4.5)))
		}
		user, password, tenant := k.Credentials()
		psaSection = fmt.Sprintf("  system: kaseya_bms\n  kaseya_bms:\n    base_url: %q\n    username: %q\n    password: %q\n    tenant: %q\n",
			sim.KaseyaBMSBaseURL(), user, password, tenant)
		e.units = func(contract, service string) (int64, bool) {
			c, _ := strconv.Atoi(contract)
			s, _ := strconv.Atoi(service)
			u, ok := k.Units(c, s, time.Now())
			return int64(u), ok
		}
	default:
		t.Fatalf("newSystemEnv: %s", sys)
	}
	writeFile(t, filepath.Join(e.dir, "usage.csv"), testUsage)
	writeFile(t, e.cfgPath, "export_path: mappings.json\nstate_dir: state\npsa:\n"+psaSection+
		"source:\n  type: file\n  file:\n    path: usage.csv\n")
	// The export is for the simulator's instance, its host.
	doc := export.New(sys, strings.TrimPrefix(sim.URL(), "http://"))
	doc.Revision = 1
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: e.services[0], ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-SRV", ServiceID: e.services[1], ServiceName: "Sophos Intercept X Server", SyncEnabled: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-acme", CustomerName: "Acme", CompanyID: companies[0], ContractID: e.contracts[0], UsageSync: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-globex", CustomerName: "Globex", CompanyID: companies[1], ContractID: e.contracts[1], UsageSync: true})
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(e.dir, "mappings.json"), string(data))
	return e
}

func TestRun_checkOtherSystems(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		system psa.System
		want   []string
	}{
		{psa.SystemConnectWise, []string{
			"ok   psa connectwise: authenticated at company:" + psatest.DefaultConnectWiseCompany + "@127.0.0.1:",
			"ok   psa connectwise connection: codebase " + psatest.DefaultConnectWiseCodebase + " discovered through /login/companyinfo",
			"API root http://127.0.0.1:",
			"ok   psa connectwise budget: ConnectWise reports no request budget",
			"NOTE psa connectwise:",
		}},
		{psa.SystemKaseyaBMS, []string{
			"ok   psa kaseya_bms: authenticated at tenant:" + psatest.DefaultKaseyaBMSTenant + "@127.0.0.1:",
			"ok   psa kaseya_bms budget: Kaseya BMS reports no request budget",
			"NOTE psa kaseya_bms:",
			"Kaseya BMS cannot report the units of a contract line",
			"one new recurring-service line with the new units and effective date",
			"Lines entered in BMS by hand are not seen",
			"psa-syncd resolve -intent ID",
			"The state database is in",
		}},
	} {
		t.Run(string(tt.system), func(t *testing.T) {
			t.Parallel()
			e := newSystemEnv(t, tt.system)
			code, stdout, stderr := runCmd(t, "check", "-config.file", e.cfgPath)
			flat := strings.Join(strings.Fields(stdout), " ")
			for _, want := range tt.want {
				if !strings.Contains(flat, strings.Join(strings.Fields(want), " ")) {
					t.Errorf("check output lacks %q", want)
				}
			}
			if code != 0 || !strings.Contains(stdout, "ok   source file") {
				t.Errorf("check: exit %d\n%s\n%s", code, stdout, stderr)
			}
			// The backend's client names its system once, not again
			// for the caller's attribute.
			for _, line := range strings.Split(stderr, "\n") {
				if strings.Count(line, "system=") > 1 {
					t.Errorf("check logged a line naming its system twice: %s", line)
				}
			}
		})
	}
}

// TestRun_syncOtherSystems runs plan, sync and sync again against the
// ConnectWise and Kaseya BMS simulators: the first pass sets every line,
// the second changes nothing and writes nothing.
func TestRun_syncOtherSystems(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newSystemEnv(t, sys)
			cfg := "-config.file=" + e.cfgPath
			if code, stdout, stderr := runCmd(t, "plan", cfg); code != 0 || !strings.Contains(stdout, "3 to update") {
				t.Fatalf("plan: exit %d\n%s\n%s", code, stdout, stderr)
			}
			// Kaseya BMS's first pass on a state database without a
			// ledger needs the operator's word that it is a first start.
			if code, stdout, stderr := runCmd(t, "sync", cfg, "-state.allow-empty"); code != 0 || !strings.Contains(stdout, "3 updated") {
				t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
			}
			for _, w := range wantUnits {
				contract, service := e.contracts[w[0]], e.services[w[1]]
				if got, ok := e.units(contract, service); !ok || got != w[2] {
					t.Errorf("contract %s service %s: units %d (%t), want %d", contract, service, got, ok, w[2])
				}
			}
			e.sim.ResetRequests()
			code, stdout, stderr := runCmd(t, "sync", cfg)
			if code != 0 || !strings.Contains(stdout, "0 updated, 3 unchanged") {
				t.Errorf("second sync: exit %d\n%s\n%s", code, stdout, stderr)
			}
			for _, r := range e.sim.Requests() {
				if r.Method != http.MethodGet && !strings.Contains(strings.ToLower(r.Path), "/security/") {
					t.Errorf("second sync sent %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

// TestRun_resolveKaseyaBMS loses the answer to one BMS line post: the
// customer fails with a review hint, status lists the open intent, sync
// never posts the line again, and resolve -posted settles it so that the
// next pass changes nothing.
func TestRun_resolveKaseyaBMS(t *testing.T) {
	t.Parallel()
	e := newSystemEnv(t, psa.SystemKaseyaBMS, psatest.WithFault(psatest.Fault{
		Method: http.MethodPost, Path: "/v2/finance/contracts/recurringservices/*", DropAfterHandling: true, Times: 1}))
	cfg := "-config.file=" + e.cfgPath
	if code, stdout, _ := runCmd(t, "sync", cfg, "-state.allow-empty"); code != 1 || !strings.Contains(stdout, "partial") {
		t.Fatalf("sync with a lost answer: exit %d, want 1 and partial\n%s", code, stdout)
	}
	code, stdout, _ := runCmd(t, "status", cfg, "-json")
	var st struct {
		Intents []daemon.IntentView `json:"intents"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil || len(st.Intents) != 1 {
		t.Fatalf("status -json: exit %d, %v, want one intent:\n%s", code, err, stdout)
	}
	in := st.Intents[0]
	id := strconv.FormatInt(in.ID, 10)
	code, stdout, _ = runCmd(t, "status", cfg)
	for _, want := range []string{"Writes whose outcome is not settled", "INTENT", "kaseya_bms", "psa-syncd resolve -intent " + id + " -posted"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("status: exit %d, output lacks %q:\n%s", code, want, stdout)
		}
	}

	e.sim.ResetRequests()
	if code, stdout, _ := runCmd(t, "sync", cfg); code != 1 || !strings.Contains(stdout, "awaiting review") {
		t.Errorf("sync while awaiting review: exit %d, want 1 and the line awaiting review\n%s", code, stdout)
	}
	for _, r := range e.sim.Requests() {
		if r.Method == http.MethodPost && strings.Contains(strings.ToLower(r.Path), "/recurringservices/") {
			t.Errorf("sync while awaiting review posted %s", r.Path)
		}
	}

	if code, _, stderr := runCmd(t, "resolve", cfg, "-intent", id); code != 2 || !strings.Contains(stderr, "-posted") {
		t.Errorf("resolve without an answer: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := runCmd(t, "resolve", cfg, "-intent", id, "-posted", "-note", "test: line found in BMS")
	if code != 0 || !strings.Contains(stdout, "Intent "+id+" resolved as posted") {
		t.Fatalf("resolve -posted: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(t, "resolve", cfg, "-intent", id, "-not-posted"); code != 1 || !strings.Contains(stderr, "not open") {
		t.Errorf("resolving it again: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr = runCmd(t, "sync", cfg)
	if code != 0 || !strings.Contains(stdout, "0 updated, 3 unchanged") {
		t.Errorf("sync after resolve: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCmd(t, "status", cfg); code != 0 || strings.Contains(stdout, "not settled") {
		t.Errorf("status after resolve still lists intents: exit %d\n%s", code, stdout)
	}
}

// TestRun_runBadWebConfig: run refuses to start with a web config file that
// names a missing certificate, and says which file.
func TestRun_runBadWebConfig(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	web := filepath.Join(e.dir, "web-config.yml")
	writeFile(t, web, "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing-key.pem\n")
	code, _, stderr := runCmd(t, "run", "-config.file", e.cfgPath, "-web.listen-address", "127.0.0.1:0", "-web.config.file", web)
	if code != 1 || !strings.Contains(stderr, "web config file") || !strings.Contains(stderr, "missing.pem") {
		t.Errorf("run with a bad web config file: exit %d, stderr %q", code, stderr)
	}
}

// TestRun_planFailsWhenCustomersCannotBePlanned: when the PSA refuses every
// read (here Autotask answering 401), plan must not print "No changes" and
// exit 0; it says first which customers cannot be planned and exits 1, in
// the table and in the JSON form.
func TestRun_planFailsWhenCustomersCannotBePlanned(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cfg := "-config.file=" + e.cfgPath
	e.sim.AddFault(psatest.Fault{Path: "/atservicesrest/*", Status: http.StatusUnauthorized})

	code, stdout, stderr := runCmd(t, "plan", cfg)
	if code != 1 {
		t.Errorf("plan with every customer failing: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	first, _, _ := strings.Cut(stdout, "\n")
	if !strings.HasPrefix(first, "ERROR: 2 of 2 customers cannot be planned") || !strings.Contains(first, "Acme (cust-acme)") {
		t.Errorf("plan output does not start with the failure:\n%s", stdout)
	}
	if strings.Contains(stdout, "every contract line already has the right quantity") {
		t.Errorf("plan output claims no changes are needed:\n%s", stdout)
	}
	if code, stdout, _ := runCmd(t, "plan", cfg, "--json"); code != 1 || !strings.Contains(stdout, `"failures"`) {
		t.Errorf("plan --json with every customer failing: exit %d, want 1 and the failures:\n%s", code, stdout)
	}
}

// TestRun_echoedSecretsStayOut: against an Autotask that quotes each
// request (headers included) in its errors, the secret and the integration
// code appeared in check, plan, sync and status output and in the state
// database. None of them may show either now.
func TestRun_echoedSecretsStayOut(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cfg := "-config.file=" + e.cfgPath
	_, secret, code := e.sim.Autotask().Credentials()
	e.sim.AddFault(psatest.Fault{Path: "/atservicesrest/*", Status: http.StatusInternalServerError, EchoRequest: true})
	var all strings.Builder
	for _, args := range [][]string{{"check", cfg}, {"plan", cfg}, {"sync", cfg}, {"status", cfg}} {
		_, stdout, stderr := runCmd(t, args...)
		all.WriteString(stdout + stderr)
	}
	if !strings.Contains(all.String(), "[REDACTED]") {
		t.Errorf("no command output shows the echoed request redacted:\n%s", all.String())
	}
	state := stateFiles(t, filepath.Join(e.dir, "state"))
	for _, s := range []string{secret, code} {
		if strings.Contains(all.String(), s) {
			t.Errorf("command output contains the credential %q:\n%s", s, all.String())
		}
		if bytes.Contains(state, []byte(s)) {
			t.Errorf("the state database contains the credential %q", s)
		}
	}
}

// stateFiles returns the contents of whatever the state directory holds
// (the database and its journals), one after the other.
func stateFiles(t *testing.T, dir string) []byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no state files in %s: %v", dir, err)
	}
	var state []byte
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			state = append(state, data...)
		}
	}
	return state
}

// A -web.url that is not a base URL is a usage error (exit 2) for every
// command that takes it, backup included, and the message does not show the
// password the flag may carry.
func TestRun_badWebURL(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "backup.db")
	for _, web := range []string{"127.0.0.1:9810", "prometheus:hunter2@host:9810", "http://u:hunter2%zz@host:9810"} {
		for _, args := range [][]string{
			{"sync"}, {"plan"}, {"status"}, {"ledger"}, {"tickets"},
			{"resolve", "-intent", "1", "-posted"},
			{"backup", "-output", out},
		} {
			args = append(args, "-web.url", web)
			code, stdout, stderr := runCmd(t, args...)
			if code != 2 || !strings.Contains(stderr, "-web.url") || strings.Contains(stdout+stderr, "hunter2") {
				t.Errorf("%v: exit %d, stderr %q; want 2 naming -web.url without its password", args, code, stderr)
			}
		}
	}
	// An empty token file is a usage error, not a request that the daemon
	// refuses with a 401 that does not say why.
	empty := filepath.Join(t.TempDir(), "token")
	writeFile(t, empty, "\n")
	for _, args := range [][]string{
		{"sync"}, {"plan"}, {"tickets"},
		{"resolve", "-intent", "1", "-posted"},
		{"backup", "-output", out},
	} {
		args = append(args, "-web.url", "http://127.0.0.1:1", "-web.token-file", empty)
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "-web.token-file: "+empty+" is empty") {
			t.Errorf("%v: exit %d, stderr %q; want 2 saying the token file is empty", args, code, stderr)
		}
	}
	// The token itself given as its file: not quoted.
	const token = "CANARY-token-given-as-its-file-4d"
	args := []string{"sync", "-web.url", "http://127.0.0.1:1", "-web.token-file", token}
	if code, _, stderr := runCmd(t, args...); code != 2 || strings.Contains(stderr, token) || !strings.Contains(stderr, "-web.token-file: the file it names cannot be read") {
		t.Errorf("%v: exit %d, stderr %q; want 2 saying the file cannot be read, without the value", args, code, stderr)
	}
	// A token file naming another file (a log, /dev/zero) is refused at
	// 64 KiB, as a *_file setting's file is, not read into memory.
	big := filepath.Join(t.TempDir(), "psa-syncd.log")
	writeFile(t, big, strings.Repeat("x", 64<<10+1))
	args = []string{"sync", "-web.url", "http://127.0.0.1:1", "-web.token-file", big}
	if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "-web.token-file: "+big+" is larger than 64 KiB, more than any secret") || strings.Contains(stderr, "xxxx") {
		t.Errorf("%v: exit %d, stderr %q; want 2 saying the file is larger than 64 KiB", args, code, stderr)
	}
	// Flags that would be ignored are usage errors, not silently dropped:
	// a token file without -web.url (the command opens the state
	// database itself), and the confirmations of the state database that
	// the running daemon opened.
	for _, args := range [][]string{
		{"sync"}, {"plan"}, {"tickets"},
		{"resolve", "-intent", "1", "-posted"},
		{"backup", "-output", out},
	} {
		args = append(args, "-config.file", "does-not-exist.yml", "-web.token-file", empty)
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "-web.token-file needs -web.url") {
			t.Errorf("%v: exit %d, stderr %q; want 2 saying -web.token-file needs -web.url", args, code, stderr)
		}
	}
	for _, args := range [][]string{
		{"sync", "-state.allow-empty"}, {"sync", "-state.allow-restore"}, {"tickets", "-state.allow-restore"},
	} {
		args = append(args, "-web.url", "http://127.0.0.1:1")
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, args[1]+" with -web.url: the running daemon opened the state database") {
			t.Errorf("%v: exit %d, stderr %q; want 2 saying the flag is for psa-syncd run", args, code, stderr)
		}
	}
}

// TestRemoteFlags_tokenFromEnvTrimmed: the API token from
// PSA_SYNCD_API_TOKEN loses its line end, as the daemon's own copy of the
// same variable (or a token file) does: a Kubernetes secret often ends in a
// newline, and the daemon would refuse the token with it.
func TestRemoteFlags_tokenFromEnvTrimmed(t *testing.T) {
	t.Parallel()
	r := remoteFlags{url: "http://127.0.0.1:9810"}
	c, err := r.client(&env{getenv: apiTokenEnv("test-token\n")})
	if err != nil || c == nil || c.token != "test-token" {
		t.Fatalf("client() = %+v, %v; want the token without its line end", c, err)
	}
}

// TestPrintPlan_renewals: plan's table says which contract a customer with
// a renewal bills to, and the day the renewal takes over.
func TestPrintPlan_renewals(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	jan1 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	printPlan(&b, &usage.Plan{Renewals: []usage.ContractRenewal{
		{Source: "file", CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684183", NextContractID: "29684190", BillsTo: "29684183", TakesOver: jan1},
	}}, false)
	out := b.String()
	for _, want := range []string{"Contract renewals", "TAKES OVER", "Acme (cust-acme)", "29684183", "29684190", "2027-01-01"} {
		if !strings.Contains(out, want) {
			t.Errorf("printPlan output lacks %q:\n%s", want, out)
		}
	}
}
