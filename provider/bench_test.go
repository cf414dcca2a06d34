package provider

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// The size and repetitions of BenchmarkProvider; `make bench-provider`
// sets them from its MAPPINGS, SERVICES and RUNS variables.
var (
	benchMappings = benchEnvInt("PSA_BENCH_MAPPINGS", 1000) // product plus customer mappings, half each
	benchServices = benchEnvInt("PSA_BENCH_SERVICES", 200)
	benchRuns     = benchEnvInt("PSA_BENCH_RUNS", 3)
	// benchParallelism, when set, is Terraform's -parallelism for the
	// product's and the floor's commands alike; unset, Terraform's default
	// (10).
	benchParallelism = benchEnvInt("PSA_BENCH_PARALLELISM", 0)
	// benchRefs is how the product mappings name their service, in the
	// product's configuration and the floor's alike (serviceRefs):
	// "resource" (the default) or "local". `make bench-provider` sets it
	// from its REFS variable.
	benchRefs = cmp.Or(os.Getenv("PSA_BENCH_REFS"), "resource")
)

// benchLatency is the simulator's latency per request.
const benchLatency = 20 * time.Millisecond

// benchEnvInt is the positive integer in the environment variable name, or
// def when it is not set.
func benchEnvInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
		panic(fmt.Sprintf("%s=%q is not a positive integer", name, v))
	}
	return def
}

// BenchmarkProvider runs the real Terraform CLI (TF_ACC_TERRAFORM_PATH) with
// the provider binary against a simulator answering after benchLatency:
// `terraform apply` creating benchServices psa_service resources and
// benchMappings product and customer mappings, then a refresh plan of them.
// The floor is the same commands on the same configuration with
// terraform_data in place of each psa_ resource (floorConfig). It prints,
// per PSA and command, the median of benchRuns runs:
//
//	BENCH provider <psa> <plan|apply> resources=N requests=N wall=Xs floor=Ys ratio=R cpu=Xs floor_cpu=Ys cpu_ratio=R tf_cpu=Xs tf_cpu_ratio=R provider_cpu=Xs provider_procs=N bare_floor=Zs bare_ratio=R
//
// cpu is the processor time of the command, Terraform's and the provider's
// together; provider_cpu is the provider processes' share of it and
// provider_procs how many Terraform started (see providerWatch), and tf_cpu
// is the rest, Terraform's own, whose ratio to floor_cpu is tf_cpu_ratio.
// bare_floor is the same commands on as many terraform_data resources
// without references (bareFloorConfig), the floor before the floor took the
// configuration's shape; bare_ratio is wall over it. The floor's and the
// product's run of one command follow each other, so that both see the
// same load on a shared machine, and both get the same flags
// (benchCommands, with -parallelism=PSA_BENCH_PARALLELISM when set).
func BenchmarkProvider(b *testing.B) {
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tf == "" {
		b.Fatal("TF_ACC_TERRAFORM_PATH is not set; run make bench-provider")
	}
	if benchRefs != "resource" && benchRefs != "local" {
		b.Fatalf("PSA_BENCH_REFS=%q: want resource or local", benchRefs)
	}
	pluginDir := b.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "terraform-provider-psa"), "..")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the provider: %v\n%s", err, out)
	}
	cliConfig := filepath.Join(pluginDir, "terraformrc")
	if err := os.WriteFile(cliConfig, fmt.Appendf(nil, `provider_installation {
  dev_overrides {
    "psa-sync/psa" = %q
  }
  filesystem_mirror {
    path = %q
  }
}
`, pluginDir, filepath.Join(pluginDir, "mirror")), 0o600); err != nil {
		b.Fatal(err)
	}
	resources := benchServices + benchMappings
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		b.Run(string(sys), func(b *testing.B) {
			for b.Loop() {
				var wall, floor, bare, cpu, floorCPU, providerCPU [2][]time.Duration // apply, plan
				var requests, procs [2][]int
				for range benchRuns {
					e := &testEnv{system: sys, sim: psatest.NewServer(psatest.WithSystem(sys), psatest.WithLatency(benchLatency),
						psatest.WithHourlyLimit(1_000_000)), exportPath: filepath.Join(b.TempDir(), "psa-mappings.json")}
					customers := seedCustomers(e, benchMappings/2)
					f := newBenchDir(b, floorConfig(customers, benchServices, benchMappings, benchRefs), nil)
					bf := newBenchDir(b, bareFloorConfig(resources), nil)
					p := newBenchDir(b, benchRequiredProviders+e.providerConfig()+mappingsConfig(customers, benchServices, benchMappings, benchRefs), e.sim)
					for i, args := range benchCommandArgs() {
						fr, pr := f.run(b, tf, cliConfig, args), p.run(b, tf, cliConfig, args)
						bare[i] = append(bare[i], bf.run(b, tf, cliConfig, args).wall)
						floor[i], floorCPU[i] = append(floor[i], fr.wall), append(floorCPU[i], fr.cpu)
						wall[i], cpu[i] = append(wall[i], pr.wall), append(cpu[i], pr.cpu)
						requests[i] = append(requests[i], pr.requests)
						providerCPU[i], procs[i] = append(providerCPU[i], pr.providerCPU), append(procs[i], pr.providerProcs)
					}
					e.sim.Close()
				}
				for i, cmd := range []string{"apply", "plan"} {
					w, fl, c, fc, bfl := median(wall[i]), median(floor[i]), median(cpu[i]), median(floorCPU[i]), median(bare[i])
					pc := median(providerCPU[i])
					// Terraform's own processor time, of the run whose
					// total is the median.
					tc := c - providerCPU[i][slices.Index(cpu[i], c)]
					refs := ""
					if benchRefs != "resource" {
						refs = " refs=" + benchRefs
					}
					fmt.Printf("BENCH provider %s %s resources=%d requests=%d wall=%.2fs floor=%.2fs ratio=%.2f cpu=%.2fs floor_cpu=%.2fs cpu_ratio=%.2f tf_cpu=%.2fs tf_cpu_ratio=%.2f provider_cpu=%.2fs provider_procs=%d bare_floor=%.2fs bare_ratio=%.2f%s\n",
						sys, cmd, resources, median(requests[i]), w.Seconds(), fl.Seconds(), w.Seconds()/fl.Seconds(),
						c.Seconds(), fc.Seconds(), c.Seconds()/fc.Seconds(), tc.Seconds(), tc.Seconds()/fc.Seconds(),
						pc.Seconds(), median(procs[i]), bfl.Seconds(), w.Seconds()/bfl.Seconds(), refs)
				}
			}
		})
	}
}

// benchCommands are the measured commands: the apply, then a refresh plan
// that must be empty.
var benchCommands = [2][]string{
	{"apply", "-auto-approve", "-input=false", "-no-color"},
	{"plan", "-input=false", "-no-color", "-detailed-exitcode"},
}

// benchCommandArgs is benchCommands with benchParallelism, if set.
func benchCommandArgs() [2][]string {
	cmds := benchCommands
	if benchParallelism > 0 {
		for i := range cmds {
			cmds[i] = append(slices.Clone(cmds[i]), "-parallelism="+strconv.Itoa(benchParallelism))
		}
	}
	return cmds
}

// benchDir is a configuration in a directory of its own, and the simulator
// it uses, if any.
type benchDir struct {
	dir string
	sim *psatest.Server
}

func newBenchDir(b *testing.B, config string, sim *psatest.Server) benchDir {
	b.Helper()
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
	return benchDir{dir: dir, sim: sim}
}

// benchResult is the wall time, processor time and PSA requests of one
// command, and the provider processes' share of its processor time.
type benchResult struct {
	wall, cpu     time.Duration
	requests      int
	providerCPU   time.Duration
	providerProcs int
}

// run runs one Terraform command in d.
func (d benchDir) run(b *testing.B, tf, cliConfig string, args []string) benchResult {
	b.Helper()
	if d.sim != nil {
		d.sim.ResetRequests()
	}
	cmd := exec.CommandContext(b.Context(), tf, args...)
	cmd.Dir = d.dir
	cmd.Env = benchEnv(cliConfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("terraform %s: %v", args[0], err)
	}
	providers := watchProviders(cmd.Process.Pid)
	err := cmd.Wait()
	r := benchResult{wall: time.Since(start)}
	r.providerCPU, r.providerProcs = providers.stop()
	if err != nil {
		b.Fatalf("terraform %s: %v\n%s", args[0], err, tail(out.String(), 4000))
	}
	// Terraform waits for its provider processes, so its resource usage
	// includes theirs.
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if d.sim != nil {
		r.requests = len(d.sim.Requests())
		b.Logf("terraform %s: %d requests: %s", args[0], r.requests, requestKinds(d.sim.Requests()))
	}
	return r
}

// benchEnv is the environment of every measured command: the CLI
// configuration, no checkpoint calls, and no logs, whatever the caller's
// environment asks for: an empty TF_LOG and an empty level for each of the
// provider's loggers (loggerLevelVars, which the provider then turns off),
// so that the product does not pay for logs that the floor does not write.
func benchEnv(cliConfig string) []string {
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_LOG=", "TF_LOG_CORE=", "TF_LOG_PROVIDER=", "TF_LOG_PATH=")
	for _, name := range loggerLevelVars {
		env = append(env, name+"=")
	}
	return env
}

// bareFloorConfig is n terraform_data resources without references: the
// floor the issue first measured against, printed as bare_floor beside the
// floor of the same shape.
func bareFloorConfig(n int) string {
	return fmt.Sprintf(`resource "terraform_data" "r" {
  count = %d
  input = "resource-${count.index}"
}
`, n)
}

// floorConfig is mappingsConfig with a terraform_data resource in place of
// each psa_ resource: the same counts, and the same references to other
// resources and to the list of customers, which Terraform evaluates for
// every instance. Each input is one string, as small as a value gets (an
// object input of terraform_data, whose type Terraform records with the
// value, costs it more than the provider's resources do). It is Terraform's
// own cost of the configuration, without the provider's.
func floorConfig(customers string, services, mappings int, refs string) string {
	locals, ref := serviceRefs("terraform_data.s", services, refs)
	return fmt.Sprintf(`%[1]s
resource "terraform_data" "s" {
  count = %[2]d
  input = "Bench Service ${count.index}"
}
%[5]s
resource "terraform_data" "p" {
  count = %[3]d
  input = %[6]s
}

resource "terraform_data" "c" {
  count = %[4]d
  input = "${local.customers[count.index].company}/${local.customers[count.index].contract}"
}
`, customersLocal(customers), services, mappings-mappings/2, mappings/2, locals, ref)
}

// benchRequiredProviders takes the provider from the CLI configuration's
// dev_overrides.
const benchRequiredProviders = `terraform {
  required_providers {
    psa = { source = "psa-sync/psa" }
  }
}
`

// productConfig seeds e's simulator with one company and contract per
// customer mapping and returns e's provider configuration and
// mappingsConfig.
func productConfig(e *testEnv, services, mappings int) string {
	return e.providerConfig() + mappingsConfig(seedCustomers(e, mappings/2), services, mappings, "resource")
}

// seedCustomers adds n companies to e's simulator, each with a contract,
// and returns them as the elements of a Terraform list of objects with the
// ids of the company and of the contract.
func seedCustomers(e *testEnv, n int) string {
	var list strings.Builder
	for i := range n {
		company := e.addCompany(fmt.Sprintf("Bench Company %04d", i))
		contract := e.addContract(company, fmt.Sprintf("Bench Company %04d Managed Services", i), contractRecurring)
		fmt.Fprintf(&list, "    { company = %q, contract = %q },\n", company, contract)
	}
	return list.String()
}

// customersLocal is local.customers, the list seedCustomers returned.
func customersLocal(customers string) string {
	return "locals {\n  customers = [\n" + customers + "  ]\n}\n"
}

// mappingsConfig is the given number of services, half of the mappings
// product mappings spread over them, and the other half customer mappings,
// one per element of customers (seedCustomers). refs is how a product
// mapping names its service (serviceRefs).
func mappingsConfig(customers string, services, mappings int, refs string) string {
	locals, ref := serviceRefs("psa_service.s", services, refs)
	return fmt.Sprintf(`
%[1]s
resource "psa_service" "s" {
  count      = %[2]d
  name       = "Bench Service ${count.index}"
  unit_price = 5
}
%[5]s
resource "psa_product_mapping" "p" {
  count      = %[3]d
  product    = "BENCH-${count.index}"
  service_id = %[6]s
}

resource "psa_customer_mapping" "c" {
  count       = %[4]d
  customer_id = "customer-${count.index}"
  company_id  = local.customers[count.index].company
  contract_id = local.customers[count.index].contract
}
`, customersLocal(customers), services, mappings-mappings/2, mappings/2, locals, ref)
}

// serviceRefs returns how the instances of a product mapping resource
// with count name the id of one of the services instances of resource:
// for refs "resource", the expression resource[count.index % services].id;
// for "local", a local value of every instance's id, and an index into it.
// Terraform 1.5 evaluates a reference to resource[i] by decoding every
// instance of resource, once per referring instance; a local is evaluated
// once (see README, "Large configurations").
func serviceRefs(resource string, services int, refs string) (locals, ref string) {
	if refs == "local" {
		return fmt.Sprintf("\nlocals {\n  service_ids = %s[*].id\n}\n", resource), fmt.Sprintf("local.service_ids[count.index %% %d]", services)
	}
	return "", fmt.Sprintf("%s[count.index %% %d].id", resource, services)
}

// requestRoutes counts requests by route: method and path, ids left out.
func requestRoutes(reqs []psatest.Request) map[string]int {
	counts := map[string]int{}
	for _, r := range reqs {
		parts := strings.Split(r.Path, "/")
		for i, p := range parts {
			if _, err := strconv.Atoi(p); err == nil {
				parts[i] = "{id}"
			}
		}
		counts[r.Method+" "+strings.Join(parts, "/")]++
	}
	return counts
}

// requestKinds lists the requests by route, ids left out.
func requestKinds(reqs []psatest.Request) string {
	counts := requestRoutes(reqs)
	keys := slices.Sorted(maps.Keys(counts))
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%d× %s", counts[k], k)
	}
	return strings.Join(out, ", ")
}

func median[T int | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// providerWatch samples the processor time of the provider processes that a
// Terraform command starts, while it runs: its children named after the
// provider binary, read from /proc every providerPoll. Terraform waits for
// them, so their time is also in the command's own resource usage; what a
// process uses in its last poll interval before it exits is not seen and
// counts as Terraform's. Where /proc cannot be read, it sees no provider.
type providerWatch struct {
	parent int
	stopc  chan struct{}
	done   chan struct{}
	cpu    map[int]time.Duration // by provider pid, the latest seen
	other  map[int]bool          // pids that are no provider of parent's
}

const (
	providerPoll = 10 * time.Millisecond
	// procClockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat.
	procClockTicks = 100
	// providerComm is the provider binary's name as /proc/<pid>/stat gives
	// it: its first 15 bytes.
	providerComm = "terraform-provi"
)

// watchProviders watches the provider processes of the process parent
// until stop.
func watchProviders(parent int) *providerWatch {
	w := &providerWatch{parent: parent, stopc: make(chan struct{}), done: make(chan struct{}),
		cpu: map[int]time.Duration{}, other: map[int]bool{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(providerPoll)
		defer tick.Stop()
		for {
			w.sample()
			select {
			case <-w.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// stop ends the watch and returns the provider processes' processor time
// and their number.
func (w *providerWatch) stop() (time.Duration, int) {
	close(w.stopc)
	<-w.done
	var total time.Duration
	for _, cpu := range w.cpu {
		total += cpu
	}
	return total, len(w.cpu)
}

// sample reads the processor time of parent's provider processes.
func (w *providerWatch) sample() {
	dir, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := dir.Readdirnames(-1)
	dir.Close()
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == w.parent || w.other[pid] {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", name, "stat"))
		if err != nil {
			continue // exited
		}
		// A child is read again until it is the provider: between fork
		// and exec it has Terraform's name.
		switch comm, ppid, cpu, ok := parseProcStat(stat); {
		case !ok:
		case ppid != w.parent:
			w.other[pid] = true
		case comm == providerComm:
			w.cpu[pid] = cpu
		}
	}
}

// parseProcStat returns the command name, parent pid and processor time
// (user and system) of a /proc/<pid>/stat.
func parseProcStat(stat []byte) (comm string, ppid int, cpu time.Duration, ok bool) {
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", 0, 0, false
	}
	// After the name: state, ppid, ..., utime and stime (fields 3, 4, 14
	// and 15 of proc(5)).
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 13 {
		return "", 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return "", 0, 0, false
	}
	return string(stat[open+1 : end]), ppid, time.Duration(utime+stime) * time.Second / procClockTicks, true
}

func TestParseProcStat(t *testing.T) {
	// A name with a space and a parenthesis, as the kernel writes it.
	stat := []byte("4242 (terraform-provi) S 4200 4242 4200 0 -1 4194560 1402 0 0 0 37 5 0 0 20 0 9 0 1171 1329496064 3956 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0\n")
	comm, ppid, cpu, ok := parseProcStat(stat)
	if !ok || comm != "terraform-provi" || ppid != 4200 || cpu != 420*time.Millisecond {
		t.Errorf("parseProcStat = %q, %d, %v, %v; want terraform-provi, 4200, 420ms, true", comm, ppid, cpu, ok)
	}
	comm, ppid, _, ok = parseProcStat([]byte("7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 0 0 0\n"))
	if !ok || comm != "a (b) c" || ppid != 1 {
		t.Errorf("parseProcStat of a name with parentheses = %q, %d, %v; want \"a (b) c\", 1, true", comm, ppid, ok)
	}
	if _, _, _, ok := parseProcStat([]byte("7 (x")); ok {
		t.Error("parseProcStat of a cut line: ok")
	}
}

// TestProviderWatch runs a shell named like the provider binary as a child
// of the test and checks that the watch counts it and its processor time,
// and nothing else the test starts.
func TestProviderWatch(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "terraform-provider-psa")
	data, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fake, data, 0o700); err != nil {
		t.Fatal(err)
	}
	w := watchProviders(os.Getpid())
	busy := exec.Command(fake, "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	other := exec.Command(sh, "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done")
	if err := other.Run(); err != nil {
		t.Fatal(err)
	}
	if err := busy.Run(); err != nil {
		t.Fatal(err)
	}
	cpu, procs := w.stop()
	used := busy.ProcessState.UserTime() + busy.ProcessState.SystemTime()
	t.Logf("watch = %v in %d processes, of %v", cpu, procs, used)
	if procs != 1 || cpu <= 0 || cpu > used {
		t.Errorf("watch = %v in %d processes; want 1 process and some of its %v", cpu, procs, used)
	}
}

// TestBenchEnv checks that the measured commands log nothing when the
// caller's environment asks for logs.
func TestBenchEnv(t *testing.T) {
	t.Setenv("TF_LOG", "trace")
	t.Setenv("TF_LOG_SDK_FRAMEWORK", "trace")
	cmd := exec.Command("sh", "-c", `echo "[$TF_LOG$TF_LOG_SDK_FRAMEWORK$TF_LOG_PROVIDER_PSA]$CHECKPOINT_DISABLE"`)
	cmd.Env = benchEnv("terraformrc")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "[]1" {
		t.Errorf("log levels and CHECKPOINT_DISABLE in the command's environment = %q, want []1", got)
	}
}
