package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
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

// dtEnv is a daemon wired to an Autotask simulator and a usage file, with
// everything in a temporary directory. (Helpers in this file and in
// server_test.go carry a dt prefix to stay apart from the engine tests'.)
type dtEnv struct {
	dir        string
	sim        *psatest.Server
	cfgPath    string
	exportPath string
	usagePath  string
	companies  [2]int64
	contracts  [2]int64
	services   [2]int64
	doc        *export.Document
	reg        *prometheus.Registry
	d          *Daemon
}

type dtOptions struct {
	token     string // web.api_token; "" configures none
	exportURL string // export_url instead of export_path: mappings.json
	// exportToken is export_token, for an exportURL that is a psa-syncd.
	exportToken string
	noExport    bool // do not write the mapping export
	disabled    bool // integration.enabled = false in the export
	simOptions  []psatest.Option
	daemonOpts  Options
	// baseURL, when set, returns the Autotask base URL to configure (a
	// proxy in front of the simulator).
	baseURL func(*psatest.Server) string
	// state is a state section for the config file.
	state string
}

const dtUsage = `customer_id,customer_name,product,product_name,quantity
cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10
cust-acme,Acme,CIXA-SRV,Intercept X Server,2
cust-acme,Acme,CIXA-MSP,Intercept X Advanced,1
cust-globex,Globex,CIXA-MSP,Intercept X Advanced,5
cust-unmapped,Initech,CIXA-MSP,Intercept X Advanced,4
,,CIXA-MSP,Intercept X Advanced,3
cust-acme,Acme,XGS-FW,Firewall,1
`

func dtSetup(t testing.TB, o dtOptions) *dtEnv {
	t.Helper()
	sim := psatest.Start(t, o.simOptions...)
	a := sim.Autotask()
	e := &dtEnv{dir: t.TempDir(), sim: sim}
	e.companies = [2]int64{a.AddCompany("Acme Corp"), a.AddCompany("Globex")}
	e.contracts = [2]int64{
		a.AddContract(psatest.AutotaskContract{CompanyID: e.companies[0], Name: "Acme Managed Security"}),
		a.AddContract(psatest.AutotaskContract{CompanyID: e.companies[1], Name: "Globex Managed Security"}),
	}
	e.services = [2]int64{a.AddService("Sophos Intercept X Advanced", 4.5), a.AddService("Sophos Intercept X Server", 9)}

	e.cfgPath = filepath.Join(e.dir, "psa-syncd.yml")
	e.exportPath = filepath.Join(e.dir, "mappings.json")
	e.usagePath = filepath.Join(e.dir, "usage.csv")
	dtWrite(t, e.usagePath, dtUsage)
	user, secret, code := a.Credentials()
	base := sim.AutotaskBaseURL()
	if o.baseURL != nil {
		base = o.baseURL(sim)
	}
	cfg := fmt.Sprintf(`export_path: mappings.json
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
`, user, secret, code, base)
	if o.token != "" {
		cfg += "  api_token: " + strconv.Quote(o.token) + "\n"
	}
	cfg += o.state
	if o.exportURL != "" {
		cfg = strings.Replace(cfg, "export_path: mappings.json", "export_url: "+strconv.Quote(o.exportURL), 1)
	}
	if o.exportToken != "" {
		cfg += "export_token: " + strconv.Quote(o.exportToken) + "\n"
	}
	dtWrite(t, e.cfgPath, cfg)

	// The export is for the simulator's instance: psa-syncd refuses one
	// written for another.
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	doc := export.New(psa.SystemAutotask, u.Host)
	doc.Revision = 1
	doc.Integration = &export.Integration{Enabled: !o.disabled, Schedule: "daily 02:00", Timezone: "UTC"}
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: dtID(e.services[0]), ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-SRV", ServiceID: dtID(e.services[1]), ServiceName: "Sophos Intercept X Server", SyncEnabled: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-acme", CustomerName: "Acme", CompanyID: dtID(e.companies[0]), ContractID: dtID(e.contracts[0]), UsageSync: true, TicketSync: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-globex", CustomerName: "Globex", CompanyID: dtID(e.companies[1]), ContractID: dtID(e.contracts[1]), UsageSync: true})
	e.doc = doc
	if !o.noExport {
		e.writeExport(t, doc)
	}

	c, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	opts := o.daemonOpts
	opts.Registry = e.reg
	d, err := New(c, e.cfgPath, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	e.d = d
	return e
}

func dtID(n int64) string { return strconv.FormatInt(n, 10) }

// dtWrite replaces path with content as a tool writing a usage or export
// file should, through a temporary file renamed over it: a pass or plan
// reading the file meanwhile sees the old content or the new, never an
// empty file (os.WriteFile truncates first).
func dtWrite(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (e *dtEnv) writeExport(t testing.TB, doc *export.Document) {
	t.Helper()
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.exportPath, string(data))
}

// reloadAndSync loads the config and export as they are on disk and runs
// one pass: the start of a test that looks at what a first pass left.
func (e *dtEnv) reloadAndSync(t testing.TB) {
	t.Helper()
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
}

// units returns the current units of contract i's line for service j.
func (e *dtEnv) units(i, j int) int64 {
	n, _ := e.sim.Autotask().Units(e.contracts[i], e.services[j], time.Now())
	return n
}

func (e *dtEnv) writes() int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Method != http.MethodGet && !strings.Contains(strings.ToLower(r.Path), "/query") {
			n++
		}
	}
	return n
}

func TestDaemon_SyncOnce(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	ctx := t.Context()
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	res, err := e.d.SyncOnce(ctx, usage.PassOptions{Trigger: usage.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Result != "success" || res.Run.Updated != 3 {
		t.Fatalf("first pass: result %q, %d updated; want success, 3", res.Run.Result, res.Run.Updated)
	}
	for _, c := range []struct {
		contract, service int
		want              int64
	}{{0, 0, 11}, {0, 1, 2}, {1, 0, 5}} {
		if got := e.units(c.contract, c.service); got != c.want {
			t.Errorf("units of contract %d service %d = %d, want %d", c.contract, c.service, got, c.want)
		}
	}
	if got := testutil.ToFloat64(e.d.metrics.Usage.LinesTotal.WithLabelValues(usage.LineUpdated)); got != 3 {
		t.Errorf("psa_sync_lines_total{outcome=updated} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(e.d.metrics.Usage.Unmapped.WithLabelValues("unassigned")); got != 1 {
		t.Errorf("psa_sync_unmapped{kind=unassigned} = %v, want 1", got)
	}

	e.sim.ResetRequests()
	res, err = e.d.SyncOnce(ctx, usage.PassOptions{Trigger: usage.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Updated != 0 || res.Run.Unchanged != 3 {
		t.Errorf("second pass: %d updated, %d unchanged; want 0, 3", res.Run.Updated, res.Run.Unchanged)
	}
	if n := e.writes(); n != 0 {
		t.Errorf("second pass sent %d writes, want 0", n)
	}
}

// TestDaemon_SyncOnce_contractFailingAsIfThePSADidIsWrittenLast checks that
// the passes of one daemon share the contracts whose writes failed as if
// the whole PSA did (usage.FailingContracts): the next pass writes them
// after the others, so that a few such contracts first in the order cannot
// stop the others' writes at every pass.
func TestDaemon_SyncOnce_contractFailingAsIfThePSADidIsWrittenLast(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	// One write at a time, so that the order of the writes is the order
	// they are sent in.
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  write_concurrency: 1\n")
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	const adjustments = "/ATServicesRest/V1.0/ContractServiceAdjustments"
	contractOf := map[string]string{"Acme": dtID(e.contracts[0]), "Globex": dtID(e.contracts[1])}
	// pass sets the usage of Intercept X Advanced of Acme and Globex and
	// returns the run and the contracts written, in order.
	pass := func(acme, globex int) (state.Run, []string) {
		t.Helper()
		rows := strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", fmt.Sprintf("cust-acme,Acme,CIXA-MSP,Intercept X Advanced,%d", acme-1), 1)
		rows = strings.Replace(rows, "cust-globex,Globex,CIXA-MSP,Intercept X Advanced,5", fmt.Sprintf("cust-globex,Globex,CIXA-MSP,Intercept X Advanced,%d", globex), 1)
		dtWrite(t, e.usagePath, rows)
		e.sim.ResetRequests()
		res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, r := range e.sim.Requests() {
			if r.Method == http.MethodPost && r.Path == adjustments {
				for name, c := range contractOf {
					if bytes.Contains(r.Body, []byte(`"contractID":`+c+`,`)) {
						order = append(order, name)
					}
				}
			}
		}
		return res.Run, order
	}
	pass(11, 5)
	_, order := pass(12, 6)
	if len(order) != 2 {
		t.Fatalf("writes of a pass changing a line of each customer: %v", order)
	}
	first, second := order[0], order[1]
	e.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: adjustments, BodyContains: `"contractID":` + contractOf[first] + `,`, Status: http.StatusForbidden})
	if run, _ := pass(13, 7); run.Result != state.RunPartial || run.Updated != 1 {
		t.Fatalf("pass with %s's writes refused: %+v, want partial with %s's line updated", first, run, second)
	}
	e.sim.ClearFaults()
	acme, globex := 13, 7
	if second == "Acme" {
		acme++
	} else {
		globex++
	}
	if _, order = pass(acme, globex); !slices.Equal(order, []string{second, first}) {
		t.Errorf("writes of the pass after %s's failed: %v, want %s's first and %s's, which failed at the pass before, last", first, order, second, first)
	}
}

func TestDaemon_SyncOnce_integrationDisabled(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{disabled: true})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.d.metrics.IntegrationEnabled); got != 0 {
		t.Errorf("psa_sync_integration_enabled = %v, want 0", got)
	}
	res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Run.DryRun {
		t.Errorf("run with the integration off is not recorded as a dry run: %+v", res.Run)
	}
	if n := e.writes(); n != 0 {
		t.Errorf("sent %d writes with the integration off, want 0", n)
	}
	if got := e.units(0, 0); got != 0 {
		t.Errorf("units = %d with the integration off, want 0", got)
	}
	// A plan says so, as the pass's run does.
	p, err := e.d.Plan(t.Context(), usage.PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.WritesDisabled || !res.Plan.WritesDisabled {
		t.Errorf("plan writes_disabled = %t, the pass's plan %t; want both true with the integration off", p.WritesDisabled, res.Plan.WritesDisabled)
	}
}

func TestDaemon_Reload_keepsLastGoodExport(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if !e.d.Ready() || e.d.Export().Revision != 1 {
		t.Fatalf("after the first reload: ready %t, export %+v", e.d.Ready(), e.d.Export())
	}

	// A customer mapping without a contract is invalid.
	dtWrite(t, e.exportPath, strings.Replace(string(dtMust(e.doc.Encode())), `"contract_id": "`+dtID(e.contracts[1])+`"`, `"contract_id": ""`, 1))
	err := e.d.Reload()
	if err == nil || !strings.Contains(err.Error(), "contract_id is required") {
		t.Fatalf("Reload of an export without contract_id returned %v, want an error naming contract_id", err)
	}
	const want = `
# HELP psa_sync_config_last_reload_successful 1 when the last reload of the configuration file succeeded, 0 when it failed.
# TYPE psa_sync_config_last_reload_successful gauge
psa_sync_config_last_reload_successful 1
# HELP psa_sync_export_last_reload_successful 1 when the last reload of the mapping export succeeded, 0 when it was rejected.
# TYPE psa_sync_export_last_reload_successful gauge
psa_sync_export_last_reload_successful 0
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want),
		"psa_sync_config_last_reload_successful", "psa_sync_export_last_reload_successful"); err != nil {
		t.Error(err)
	}
	if doc := e.d.Export(); doc == nil || doc.Revision != 1 || len(doc.CustomerMappings) != 2 {
		t.Errorf("the last good export was not kept: %+v", doc)
	}
	if !e.d.Ready() {
		t.Error("not ready after a bad export replaced a good one")
	}

	// An export for another PSA is refused as well.
	other := e.doc.Clone()
	other.PSA.System = psa.SystemConnectWise
	e.writeExport(t, other)
	if err := e.d.Reload(); err == nil || !strings.Contains(err.Error(), "connectwise") {
		t.Errorf("Reload of a ConnectWise export returned %v, want an error naming the system", err)
	}

	fixed := e.doc.Clone()
	fixed.Revision = 2
	e.writeExport(t, fixed)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 1 {
		t.Errorf("psa_sync_export_last_reload_successful = %v after a fix, want 1", got)
	}
	if e.d.Export().Revision != 2 {
		t.Errorf("export revision = %d, want 2", e.d.Export().Revision)
	}
}

func TestDaemon_Reload_badConfigKeepsRunningConfig(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{token: "tok1", daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	orig := string(dtMust(os.ReadFile(e.cfgPath)))
	dtWrite(t, e.cfgPath, orig+"unknown_key: 1\n")
	err := e.d.Reload()
	if err == nil || !strings.Contains(err.Error(), "unknown_key") {
		t.Fatalf("Reload with an unknown key returned %v, want an error naming it", err)
	}
	// The log says what happens next, as it does for an export.
	if !strings.Contains(logs.String(), `msg="Error reloading config; keeping the running one"`) || !strings.Contains(logs.String(), "unknown_key") {
		t.Errorf("log of the failed reload does not say the running config stays, and why:\n%s", logs.String())
	}
	if got := testutil.ToFloat64(e.d.metrics.ConfigLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_config_last_reload_successful = %v, want 0", got)
	}
	if got := string(e.d.Config().Web.APIToken); got != "tok1" {
		t.Errorf("running config was replaced by a bad one")
	}
	dtWrite(t, e.cfgPath, strings.Replace(orig, `api_token: "tok1"`, `api_token: "tok2"`, 1))
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := string(e.d.Config().Web.APIToken); got != "tok2" {
		t.Errorf("config not reloaded")
	}
	if got := testutil.ToFloat64(e.d.metrics.ConfigLastReloadSuccessful); got != 1 {
		t.Errorf("psa_sync_config_last_reload_successful = %v, want 1", got)
	}
}

// TestDaemon_Reload_stateChangeWaitsForRestart: a change to state_dir or
// the state section (a rotated database password, a pool setting) takes
// effect at the next start; the reload still uses the rest of the config,
// and says so without naming the values.
func TestDaemon_Reload_stateChangeWaitsForRestart(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{token: "tok1", daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	orig := string(dtMust(os.ReadFile(e.cfgPath)))
	changed := strings.Replace(orig, `api_token: "tok1"`, `api_token: "tok2"`, 1)
	changed = strings.Replace(changed, "state_dir: state", "state_dir: state-moved", 1) + "state:\n  query_timeout: 45s\n"
	dtWrite(t, e.cfgPath, changed)
	if err := e.d.Reload(); err != nil {
		t.Fatalf("Reload with a changed state section = %v, want the rest of the config used", err)
	}
	cfg := e.d.Config()
	if string(cfg.Web.APIToken) != "tok2" {
		t.Errorf("api_token = %q after the reload, want t2", cfg.Web.APIToken)
	}
	if filepath.Base(cfg.StateDir) != "state" || cfg.State.QueryTimeout != 0 {
		t.Errorf("running config says state_dir %q, query_timeout %v; want the ones in use (state, 0)", cfg.StateDir, cfg.State.QueryTimeout)
	}
	if !strings.Contains(logs.String(), "state_dir or the state section changed; it takes effect after a restart") {
		t.Errorf("no warning about the state change:\n%s", logs.String())
	}
	if got := testutil.ToFloat64(e.d.metrics.ConfigLastReloadSuccessful); got != 1 {
		t.Errorf("psa_sync_config_last_reload_successful = %v, want 1", got)
	}
}

func TestDaemon_exportChanged(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.d.exportChanged() {
		t.Error("exportChanged is true right after a load")
	}
	// Same content, new modification time: not a change.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(e.exportPath, later, later); err != nil {
		t.Fatal(err)
	}
	if e.d.exportChanged() {
		t.Error("exportChanged is true for a touched but unchanged file")
	}
	next := e.doc.Clone()
	next.Revision = 7
	e.writeExport(t, next)
	if err := os.Chtimes(e.exportPath, later.Add(time.Second), later.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !e.d.exportChanged() {
		t.Fatal("exportChanged is false after the export was rewritten")
	}
	e.d.reloadMu.Lock()
	err := e.d.reloadExportLocked(false)
	e.d.reloadMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if e.d.Export().Revision != 7 {
		t.Errorf("revision = %d after the watch reload, want 7", e.d.Export().Revision)
	}
}

// TestDaemon_watchLoop: a poll that finds the export rewritten reloads it;
// a poll that finds an invalid export keeps the last good one.
func TestDaemon_watchLoop(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	tick := make(chan time.Time)
	e.d.watchTick = tick
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	<-e.d.scheduleChanged // drain the reload's wake-up
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.d.watchLoop(ctx)

	next := e.doc.Clone()
	next.Revision = 2
	e.writeExport(t, next)
	tick <- time.Now()
	<-e.d.scheduleChanged // a successful export reload wakes the scheduler
	if got := e.d.Export().Revision; got != 2 {
		t.Fatalf("revision = %d after the watch reload, want 2", got)
	}

	dtWrite(t, e.exportPath, "{not json")
	tick <- time.Now()
	tick <- time.Now() // the loop has finished the previous poll
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v after an invalid export, want 0", got)
	}
	if got := e.d.Export().Revision; got != 2 {
		t.Errorf("revision = %d after an invalid export, want the last good 2", got)
	}
}

func TestDaemon_Run(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{token: "secret-token", daemonOpts: Options{Listener: ln, WatchInterval: time.Hour}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()

	// Run loads the export before it serves; the queue runs the pass.
	tk := e.d.RequestSync("cust-globex", "api")
	got, err := e.d.WaitTicket(t.Context(), tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "done" || got.Result != "success" || got.RunID == 0 {
		t.Fatalf("ticket = %+v, want done with a successful run", got)
	}
	if u := e.units(1, 0); u != 5 {
		t.Errorf("globex units = %d, want 5", u)
	}
	if u := e.units(0, 0); u != 0 {
		t.Errorf("acme units = %d, want 0 (pass was limited to globex)", u)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/-/ready = %d, want 200", resp.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/-/healthy"); err == nil {
		t.Error("server still answers after Run returned")
	}
}

// TestDaemon_scheduleCatchesUp: the last full pass started more than one
// interval ago (the daemon was down), so the scheduler queues a pass at once.
func TestDaemon_scheduleCatchesUp(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := dtSetup(t, dtOptions{daemonOpts: Options{Now: func() time.Time { return now }}})
	doc := e.doc.Clone()
	doc.Integration.Schedule = "every 1h"
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-3 * time.Hour), Result: "success"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.d.scheduleLoop(ctx)
	tk, ok := e.d.queue.next(ctx) // what the work loop would run
	if !ok || tk.Trigger != usage.TriggerSchedule || tk.Customer != "" {
		t.Fatalf("queued %+v, %t; want a scheduled pass for all customers", tk, ok)
	}
	if got := testutil.ToFloat64(e.d.metrics.ScheduleInterval); got != 3600 {
		t.Errorf("psa_sync_schedule_interval_seconds = %v, want 3600", got)
	}
}

// TestDaemon_lateMonthEndPassSyncsTheMonthThatEnded: a "monthly last-day
// 23:59" pass missed while the daemon was down is caught up at 02:00 on 1
// November. It syncs October, the month it was due in, not November: with
// usage_period: current that pass is October's only one, and syncing
// November instead would leave October's lines at September's quantity.
// After months down, the pass syncs the last month due, not the first.
func TestDaemon_lateMonthEndPassSyncsTheMonthThatEnded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lastRun time.Time
		want    string
	}{
		{time.Date(2026, time.September, 30, 23, 59, 0, 0, time.UTC), "2026-10"},
		{time.Date(2026, time.May, 31, 23, 59, 0, 0, time.UTC), "2026-10"},
	} {
		now := time.Date(2026, time.November, 1, 2, 0, 0, 0, time.UTC)
		e := dtSetup(t, dtOptions{daemonOpts: Options{Now: func() time.Time { return now }}})
		doc := e.doc.Clone()
		doc.Integration.Schedule = "monthly last-day 23:59"
		e.writeExport(t, doc)
		if err := e.d.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: tc.lastRun, Result: "success"}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		go e.d.scheduleLoop(ctx)
		tk, ok := e.d.queue.next(ctx)
		cancel()
		if !ok || tk.Trigger != usage.TriggerSchedule {
			t.Fatalf("queued %+v, %t; want a scheduled pass", tk, ok)
		}
		o := tk.passOptions()
		o.DryRun = true
		res, err := e.d.SyncOnce(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Plan.Period.String() != tc.want || res.Run.Period != tc.want {
			t.Errorf("last run %s: the caught-up pass synced %s (run period %s), want %s", tc.lastRun.Format(time.DateOnly), res.Plan.Period, res.Run.Period, tc.want)
		}
	}
}

// TestDaemon_scheduleNotPostponedByReload: the next pass is computed from
// the last full pass, so reloads (which recompute it) never push it back.
func TestDaemon_scheduleNotPostponedByReload(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := dtSetup(t, dtOptions{daemonOpts: Options{Now: func() time.Time { return now }}})
	doc := e.doc.Clone()
	doc.Integration.Schedule = "every 24h"
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-23 * time.Hour), Result: "success"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.d.lastFullRun(); !got.Equal(now.Add(-23 * time.Hour)) {
		t.Errorf("lastFullRun = %v, want %v", got, now.Add(-23*time.Hour))
	}
	// A dry run and a single-customer pass do not count as the last full pass.
	if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerAPI, Customer: "cust-acme", Started: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerCLI, DryRun: true, Started: now.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.d.lastFullRun(); !got.Equal(now.Add(-23 * time.Hour)) {
		t.Errorf("lastFullRun = %v after a customer pass and a dry run, want %v", got, now.Add(-23*time.Hour))
	}
}

// TestDaemon_interruptedPassCaughtUpAfterRestart: a scheduled pass whose
// process was killed stays "running" in the state database. The restart
// marks it as an interrupted failure (GET /api/v1/runs shows it so), and the
// schedule, computed from the last pass that finished, catches it up at
// once and shows it as due since its scheduled time.
func TestDaemon_interruptedPassCaughtUpAfterRestart(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := dtSetup(t, dtOptions{})
	doc := e.doc.Clone()
	doc.Integration.Schedule = "every 1h"
	e.writeExport(t, doc)
	db := e.d.State()
	done, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-90 * time.Minute), Finished: now.Add(-89 * time.Minute), Result: state.RunSuccess})
	if err != nil {
		t.Fatal(err)
	}
	// The next scheduled pass, due 30 minutes ago, started; then the
	// process was killed.
	killed, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-30 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}

	e.reopenWith(t, Options{Now: func() time.Time { return now }})
	db = e.d.State()
	got, _, err := db.Run(killed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Result != state.RunFailure || !got.Interrupted() || !got.Finished.Equal(now) || !strings.Contains(got.Error, "interrupted") {
		t.Errorf("the killed run after the restart = %+v; want an interrupted failure, finished at the restart (%v)", got, now)
	}
	if got, _, err := db.Run(done.ID); err != nil || !cmp.Equal(got, done) {
		t.Errorf("the finished run after the restart = %+v, %v; want it unchanged: %+v", got, err, done)
	}
	rec := httptest.NewRecorder()
	e.d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/runs", nil))
	var body struct{ Runs []RunView }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Runs) != 2 || body.Runs[0].Result != state.RunFailure ||
		!strings.Contains(body.Runs[0].Error, "interrupted") {
		t.Errorf("GET /api/v1/runs after the restart = %d %s; want the killed run as an interrupted failure", rec.Code, rec.Body)
	}

	if last, interrupted := e.d.lastFullRun(); !last.Equal(done.Started) || !interrupted {
		t.Fatalf("lastFullRun = %v, %t; want the finished run's start %v, and true", last, interrupted, done.Started)
	}
	// The pass is queued at once; the timeout only bounds a failure.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	go e.d.scheduleLoop(ctx)
	tk, ok := e.d.queue.next(ctx)
	if !ok || tk.Trigger != usage.TriggerSchedule || tk.Customer != "" {
		t.Fatalf("queued %+v, %t; want a scheduled pass for all customers at once (next run %v)", tk, ok, e.d.NextRun())
	}
	// Set before the pass was queued: due since the killed pass's time.
	if due := done.Started.Add(time.Hour); !e.d.NextRun().Equal(due) {
		t.Errorf("NextRun = %v, want %v (the interrupted pass's time, overdue)", e.d.NextRun(), due)
	}
}

// TestDaemon_interruptedFirstPassCaughtUp: when the only full pass ever
// started was interrupted, there is no finished pass to compute the next
// time from, and the pass is caught up at once rather than one interval
// after the restart.
func TestDaemon_interruptedFirstPassCaughtUp(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := dtSetup(t, dtOptions{})
	doc := e.doc.Clone()
	doc.Integration.Schedule = "every 24h"
	e.writeExport(t, doc)
	if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.reopenWith(t, Options{Now: func() time.Time { return now }})
	if last, interrupted := e.d.lastFullRun(); !last.IsZero() || !interrupted {
		t.Fatalf("lastFullRun = %v, %t; want none, and true", last, interrupted)
	}
	// The pass is queued at once; the timeout only bounds a failure.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	go e.d.scheduleLoop(ctx)
	tk, ok := e.d.queue.next(ctx)
	if !ok || tk.Trigger != usage.TriggerSchedule || tk.Customer != "" {
		t.Fatalf("queued %+v, %t; want a scheduled pass for all customers at once (next run %v)", tk, ok, e.d.NextRun())
	}
	if !e.d.NextRun().Equal(now) {
		t.Errorf("NextRun = %v, want the restart's time %v", e.d.NextRun(), now)
	}
}

// TestDaemon_lastFullRunPastManyCustomerRuns: the schedule starts from the
// last full pass however many passes for one customer and dry runs came
// after it (Sync now per customer, settle passes, psa-syncd sync -dry-run
// from a monitoring job): a run history read 100 runs at a time lost it,
// so a restart scheduled from the start-up time and a pass missed while
// psa-syncd was down was not caught up.
func TestDaemon_lastFullRunPastManyCustomerRuns(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	db := e.d.State()
	now := time.Now()
	full, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-3 * time.Hour), Finished: now.Add(-3 * time.Hour), Result: state.RunSuccess})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		r := state.Run{Trigger: usage.TriggerAPI, Started: now.Add(-time.Hour), Finished: now.Add(-time.Hour), Result: state.RunSuccess}
		if i%2 == 0 {
			r.Customer = "cust-acme"
		} else {
			r.DryRun = true
		}
		if _, err := db.BeginRun(r); err != nil {
			t.Fatal(err)
		}
	}
	if last, interrupted := e.d.lastFullRun(); !last.Equal(full.Started) || interrupted {
		t.Errorf("lastFullRun after 150 customer and dry runs = %v, %t; want the full pass's start %v, false", last, interrupted, full.Started)
	}
}

// TestDaemon_Run_shutdownFinishesPass cancels Run while a pass has a write
// in flight: Run lets the pass finish, then returns nil.
func TestDaemon_Run_shutdownFinishesPass(t *testing.T) {
	t.Parallel()
	hold := &dtHold{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	front := httptest.NewServer(hold)
	t.Cleanup(front.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{daemonOpts: Options{Listener: ln, WatchInterval: time.Hour},
		baseURL: func(s *psatest.Server) string { hold.sim = s; return front.URL + "/ATServicesRest/" }})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	tk := e.d.RequestSync("", usage.TriggerAPI)
	<-hold.arrived // an adjustment is in flight
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a pass was writing", err)
	default:
	}
	close(hold.release)
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	got, _ := e.d.Ticket(tk.ID)
	if got.Status != "done" || got.Result != "success" {
		t.Fatalf("ticket after shutdown = %+v, want a finished, successful pass", got)
	}
	if u := e.units(0, 0); u != 11 {
		t.Errorf("acme units = %d, want 11", u)
	}
}

// TestDaemon_Run_shutdownTimeoutInterruptsPass cancels Run while a write
// hangs past the shutdown timeout: the pass is stopped and recorded as
// interrupted, naming the timeout, so that the schedule does not count it
// as the last full pass and catches it up at the next start.
func TestDaemon_Run_shutdownTimeoutInterruptsPass(t *testing.T) {
	t.Parallel()
	hold := &dtHold{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	front := httptest.NewServer(hold)
	t.Cleanup(front.Close)
	t.Cleanup(func() { close(hold.release) }) // before front.Close
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{daemonOpts: Options{Listener: ln, WatchInterval: time.Hour, ShutdownTimeout: 50 * time.Millisecond},
		baseURL: func(s *psatest.Server) string { hold.sim = s; return front.URL + "/ATServicesRest/" }})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	tk := e.d.RequestSync("", usage.TriggerSchedule)
	<-hold.arrived // an adjustment is in flight, and stays there
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	got, _ := e.d.Ticket(tk.ID)
	if got.RunID == 0 {
		t.Fatalf("ticket after shutdown = %+v, want the run it became", got)
	}
	db, err := state.Open(filepath.Join(e.dir, "state", "psa-syncd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	run, ok, err := db.Run(got.RunID)
	if err != nil || !ok || !run.Interrupted() || !strings.Contains(run.Error, "shutdown timeout") {
		t.Fatalf("run of the stopped pass = %+v, %t, %v; want interrupted at the shutdown timeout", run, ok, err)
	}
}

// TestDaemon_armSettle: one follow-up pass is pending at a time; the same
// intents found waiting again keep it, and once it has fired, intents still
// found waiting (a clock behind the timer's) arm a new one.
func TestDaemon_armSettle(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := dtSetup(t, dtOptions{daemonOpts: Options{Now: func() time.Time { return now }}})
	e.d.leading.Store(true)
	var fired []func()
	stopped := 0
	e.d.afterFunc = func(_ time.Duration, f func()) func() bool {
		fired = append(fired, f)
		return func() bool { stopped++; return true }
	}
	at := now.Add(usage.DefaultSettleTime)
	e.d.armSettleAt(at, []string{"cust-acme"})
	e.d.armSettleAt(at, []string{"cust-acme"})
	if len(fired) != 1 || stopped != 0 {
		t.Fatalf("the same intents armed %d follow-ups (%d stopped), want 1", len(fired), stopped)
	}
	e.d.armSettleAt(at, []string{"cust-acme", "cust-globex"})
	if len(fired) != 2 || stopped != 1 {
		t.Fatalf("other intents: %d follow-ups armed, %d stopped; want the first replaced", len(fired), stopped)
	}
	fired[1]()
	tk, ok := e.d.queue.next(t.Context())
	if !ok || tk.Trigger != usage.TriggerSettle || tk.Customer != "" {
		t.Fatalf("queued %+v, want a settle pass for all customers", tk)
	}
	e.d.armSettleAt(at, []string{"cust-acme", "cust-globex"})
	if len(fired) != 3 {
		t.Errorf("after the follow-up fired, the intents still waiting armed %d follow-ups in all, want 3", len(fired))
	}
}

// dtHold is a proxy in front of the simulator that holds adjustment POSTs
// until release is closed.
type dtHold struct {
	sim     *psatest.Server
	arrived chan struct{}
	release chan struct{}
}

func (h *dtHold) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments") {
		select {
		case h.arrived <- struct{}{}:
		default:
		}
		<-h.release
	}
	h.sim.Handler().ServeHTTP(w, r)
}

func TestSyncQueue_coalesces(t *testing.T) {
	t.Parallel()
	q := newSyncQueue()
	now := time.Now()
	a := q.add(SyncRequest{Customer: "", Trigger: "api"}, now)
	b := q.add(SyncRequest{Customer: "", Trigger: "api"}, now)
	c := q.add(SyncRequest{Customer: "cust-1", Trigger: "api"}, now)
	if a.ID != b.ID || a.ID != c.ID {
		t.Errorf("duplicate requests were queued separately: %s %s %s", a.ID, b.ID, c.ID)
	}
	first, ok := q.next(t.Context())
	if !ok || first.ID != a.ID || first.Status != "running" {
		t.Fatalf("next = %+v, %t", first, ok)
	}
	d := q.add(SyncRequest{Customer: "cust-1", Trigger: "api"}, now)
	e := q.add(SyncRequest{Customer: "cust-1", Trigger: "schedule"}, now)
	f := q.add(SyncRequest{Customer: "cust-2", Trigger: "api"}, now)
	if d.ID == a.ID || d.ID != e.ID || f.ID == d.ID {
		t.Errorf("after the first started: ids %s %s %s", d.ID, e.ID, f.ID)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	q.next(ctx)
	q.next(ctx)
	if _, ok := q.next(ctx); ok {
		t.Error("next on an empty queue with a cancelled context returned a ticket")
	}
}

// TestSyncQueue_idsUniqueAcrossProcesses: a restarted or another
// instance's queue never hands out an id an earlier one did, so a client
// still polling an id after a restart or failover cannot get another
// request's answer; ids keep the shape isTicketID recognizes.
func TestSyncQueue_idsUniqueAcrossProcesses(t *testing.T) {
	t.Parallel()
	now := time.Now()
	seen := map[string]bool{}
	for range 50 {
		q := newSyncQueue()
		for _, customer := range []string{"", "cust-1"} {
			q.add(SyncRequest{Customer: customer, Approve: customer != "", Trigger: "api"}, now)
		}
		for _, tk := range q.active() {
			if seen[tk.ID] {
				t.Fatalf("sync request id %s was handed out twice", tk.ID)
			}
			seen[tk.ID] = true
			if !isTicketID(tk.ID) {
				t.Errorf("sync request id %s is not a ticket id", tk.ID)
			}
			if _, err := strconv.ParseInt(tk.ID, 10, 64); err == nil {
				t.Errorf("sync request id %s looks like a run id", tk.ID)
			}
		}
	}
}

// TestSyncQueue_historyBounded: the history keeps maxTickets requests,
// dropping the oldest finished ones; a request still running when it would
// be dropped stays until it has finished, then goes first.
func TestSyncQueue_historyBounded(t *testing.T) {
	t.Parallel()
	q := newSyncQueue()
	now := time.Now()
	running := q.add(SyncRequest{Customer: "cust-long", Trigger: "api"}, now)
	if got, ok := q.next(t.Context()); !ok || got.ID != running.ID {
		t.Fatalf("next = %+v, %v", got, ok)
	}
	for i := range maxTickets + 10 {
		tk := q.add(SyncRequest{Customer: fmt.Sprintf("cust-%d", i), Trigger: "api"}, now)
		if _, ok := q.next(t.Context()); !ok {
			t.Fatal("next returned no request")
		}
		q.finish(tk.ID, state.Run{Result: state.RunSuccess}, nil, now)
	}
	if _, ok := q.get(running.ID); !ok {
		t.Fatal("the running request was dropped from the history")
	}
	if len(q.tickets) != maxTickets || len(q.order) != maxTickets {
		t.Errorf("history of %d requests (%d in order), want %d", len(q.tickets), len(q.order), maxTickets)
	}
	q.finish(running.ID, state.Run{Result: state.RunSuccess}, nil, now)
	q.add(SyncRequest{Customer: "cust-next", Trigger: "api"}, now)
	if _, ok := q.get(running.ID); ok {
		t.Error("the request that finished last but was queued first is still in the history")
	}
	if len(q.tickets) != maxTickets || len(q.order) != maxTickets || len(q.done) != maxTickets {
		t.Errorf("history of %d requests (%d in order, %d done channels), want %d", len(q.tickets), len(q.order), len(q.done), maxTickets)
	}
}

func dtMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestDaemon_watchLoop_exportTooLarge: an export file larger than the cap
// (export.MaxSize; a small one here) is refused, not read whole: the last
// good export stays in use, the reload metric and the status say it was
// refused, and the error is logged once per change of the file's size or
// modification time, not at every poll. A fixed file loads at the next
// poll.
// TestDaemon_watchLoop_exportUnreadable: an export file that cannot be
// read for another reason than its size (a directory in its place, a
// symbolic link loop; a file without read permission fails the same way
// for a user other than root) keeps the last good export, the reload
// metric at 0 and the status page's error, and is logged once per change
// of the error or of the file, not at every poll; reading it again is
// logged. Before, every poll re-read it and logged it again.
func TestDaemon_watchLoop_exportUnreadable(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	tick, polled := make(chan time.Time), make(chan struct{})
	e.d.watchTick, e.d.watchPolled = tick, polled
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(e.exportPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.d.watchLoop(ctx)
	// Each poll ends before the test changes the file again: a poll
	// running meanwhile would see the file half changed (removed, not
	// yet replaced) and log that too.
	poll := func(n int) {
		for range n {
			tick <- time.Now()
			<-polled
		}
	}
	refusals := func() int { return strings.Count(logs.String(), "Error reloading mapping export") }
	failing := func(what, want string) {
		t.Helper()
		if got := e.d.Export().Revision; got != 1 {
			t.Errorf("%s: revision = %d, want the last good 1", what, got)
		}
		if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
			t.Errorf("%s: psa_sync_export_last_reload_successful = %v, want 0", what, got)
		}
		if f := e.d.exportErr.Load(); f == nil || !strings.Contains(f.err.Error(), want) {
			t.Errorf("%s: the status's export error = %+v, want one saying %q", what, f, want)
		}
	}

	// A directory in the export's place.
	if err := os.Remove(e.exportPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.exportPath, 0o755); err != nil {
		t.Fatal(err)
	}
	poll(3)
	failing("a directory in its place", "is a directory")
	if n := refusals(); n != 1 {
		t.Errorf("3 polls of a directory in the export's place logged %d errors, want 1:\n%s", n, logs.String())
	}
	// The directory changes (a file is put in it): a change, logged once.
	dtWrite(t, filepath.Join(e.exportPath, "x"), "x")
	poll(2)
	if n := refusals(); n != 2 {
		t.Errorf("after the directory changed, 2 polls logged %d errors in all, want 2:\n%s", n, logs.String())
	}

	// A symbolic link loop: the stat fails, and the same error is logged
	// once.
	if err := os.RemoveAll(e.exportPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(e.exportPath), e.exportPath); err != nil {
		t.Fatal(err)
	}
	poll(3)
	failing("a symbolic link loop", "too many levels of symbolic links")
	if n := refusals(); n != 3 {
		t.Errorf("3 polls of a symbolic link loop logged %d errors in all, want 3:\n%s", n, logs.String())
	}

	// The same export put back: read again, and said so.
	if err := os.Remove(e.exportPath); err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.exportPath, string(good))
	poll(2)
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 1 {
		t.Errorf("psa_sync_export_last_reload_successful = %v after the export was put back, want 1", got)
	}
	if f := e.d.exportErr.Load(); f != nil {
		t.Errorf("the status still reports %v after the export was put back", f.err)
	}
	if n := strings.Count(logs.String(), "Mapping export read again"); n != 1 {
		t.Errorf("the export read again was logged %d times, want 1:\n%s", n, logs.String())
	}
	if n := refusals(); n != 3 {
		t.Errorf("%d errors logged in all, want 3:\n%s", n, logs.String())
	}
}

func TestDaemon_watchLoop_exportTooLarge(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	const limit = 4 << 10
	e.d.maxExportFile = limit
	tick := make(chan time.Time)
	e.d.watchTick = tick
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.d.watchLoop(ctx)
	poll := func(n int) {
		for range n + 1 { // the last tick waits for the poll before it
			tick <- time.Now()
		}
	}
	refusals := func() int { return strings.Count(logs.String(), "Error reloading mapping export") }

	// A valid export, padded past the cap: were it read, it would load.
	big := e.doc.Clone()
	big.Revision = 2
	data := dtMust(big.Encode())
	dtWrite(t, e.exportPath, string(data)+strings.Repeat(" ", limit+1-len(data)))
	poll(3)
	if got := e.d.Export().Revision; got != 1 {
		t.Errorf("revision = %d after an export over the cap, want the last good 1", got)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v after an export over the cap, want 0", got)
	}
	wantErr := "daemon: mapping export " + e.exportPath + ": the file is larger than 4 KiB, the most psa-syncd reads of a mapping export"
	if f := e.d.exportErr.Load(); f == nil || !strings.HasPrefix(f.err.Error(), wantErr) {
		t.Errorf("the status's export error = %+v, want one starting %q", f, wantErr)
	}
	if n := refusals(); n != 1 || !strings.Contains(logs.String(), "larger than 4 KiB") {
		t.Errorf("3 polls of one export over the cap logged %d refusals, want 1 naming the cap:\n%s", n, logs.String())
	}

	// A new modification time is a new version: refused and logged again,
	// once.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(e.exportPath, later, later); err != nil {
		t.Fatal(err)
	}
	poll(2)
	if n := refusals(); n != 2 {
		t.Errorf("after the file over the cap was touched, 2 polls logged %d refusals in all, want 2:\n%s", n, logs.String())
	}

	fixed := e.doc.Clone()
	fixed.Revision = 3
	e.writeExport(t, fixed)
	poll(1)
	if got := e.d.Export().Revision; got != 3 {
		t.Errorf("revision = %d after the export was fixed, want 3", got)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 1 {
		t.Errorf("psa_sync_export_last_reload_successful = %v after the export was fixed, want 1", got)
	}
}
