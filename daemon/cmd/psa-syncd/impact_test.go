package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestBillingImpact_command runs `psa-syncd plan -terraform-plan` on a plan
// the Terraform CLI made, with the credentials in the environment and, as
// in a pull request from a fork, without them.
func TestBillingImpact_command(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	cfgFile := filepath.Join(dir, "psa-syncd.yml")
	cfg := fmt.Sprintf(`export_path: current-export.json
state_dir: state
psa:
  system: autotask
  autotask:
    base_url: %q
source:
  type: file
  file: {path: %q, name: %s}
`, w.Sim.AutotaskBaseURL(), w.UsagePath, impacttest.SourceName)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"PSA_AUTOTASK_USERNAME":         psatest.DefaultAutotaskUsername,
		"PSA_AUTOTASK_SECRET":           psatest.DefaultAutotaskSecret,
		"PSA_AUTOTASK_INTEGRATION_CODE": psatest.DefaultAutotaskIntegrationCode,
	}
	plan := func(getenv func(string) string, args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append([]string{"plan", "-config.file", cfgFile}, args...), &stdout, &stderr, getenv)
		return code, stdout.String(), stderr.String()
	}

	w.Plan(t, impacttest.Before, impacttest.Changes[0].Config, func(planJSON []byte, current *export.Document) {
		if err := os.WriteFile(planFile, planJSON, 0o600); err != nil {
			t.Fatal(err)
		}
		data, err := current.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "current-export.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}

		code, out, errOut := plan(func(k string) string { return secrets[k] }, "-terraform-plan", planFile, "-format", "markdown")
		if code != 0 || !strings.Contains(out, "| Acme (acme-tenant) | 29684000 | new service *Sophos MDR* | 0 | 0 | 25 | 9.00 | +225.00 |") ||
			strings.Contains(out, "Not computed") {
			t.Errorf("with credentials: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}

		code, out, errOut = plan(func(string) string { return "" }, "-terraform-plan", planFile, "-format", "markdown")
		want := "no PSA credentials (PSA_AUTOTASK_INTEGRATION_CODE, PSA_AUTOTASK_SECRET, PSA_AUTOTASK_USERNAME not set)"
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "| new service *Sophos MDR* | 0 | 0 | 25 | 9.00 | +225.00 |") {
			t.Errorf("without credentials: exit %d, want 0 and a report that says %q\nstdout:\n%s\nstderr:\n%s", code, want, out, errOut)
		}
		if strings.Contains(out+errOut, psatest.DefaultAutotaskSecret) {
			t.Errorf("the output shows the secret")
		}

		code, out, _ = plan(func(k string) string { return secrets[k] }, "-terraform-plan", planFile, "-format", "json")
		if code != 0 || !strings.Contains(out, `"monthly_delta": 225`) {
			t.Errorf("-format json: exit %d\n%s", code, out)
		}

		// The apply job compares its report with the one reviewed (the
		// pull request's -format json): the same billing change passes,
		// another one fails the job with the differences, after the report.
		// -json.file writes the same JSON beside the report's format, from
		// the one computation.
		reviewed, reviewedJSON := filepath.Join(dir, "reviewed.json"), out
		if code, md, errOut := plan(func(k string) string { return secrets[k] }, "-terraform-plan", planFile, "-format", "markdown", "-json.file", reviewed); code != 0 ||
			!strings.Contains(md, "new service *Sophos MDR*") {
			t.Errorf("-json.file: exit %d\nstdout:\n%s\nstderr:\n%s", code, md, errOut)
		}
		if got, err := os.ReadFile(reviewed); err != nil || string(got) != reviewedJSON {
			t.Errorf("-json.file wrote %q (%v), want what -format json prints:\n%s", got, err, reviewedJSON)
		}
		code, out, errOut = plan(func(k string) string { return secrets[k] }, "-terraform-plan", planFile, "-format", "markdown", "-reviewed", reviewed)
		if code != 0 || !strings.Contains(out, "new service *Sophos MDR*") || strings.Contains(errOut, "differs") {
			t.Errorf("-reviewed, the report reviewed: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		report := out
		rep, err := impact.ReadReport([]byte(reviewedJSON))
		if err != nil {
			t.Fatal(err)
		}
		rep.Lines[0].ContractID = "29684999"
		var b bytes.Buffer
		if err := impact.Write(&b, rep, impact.FormatJSON); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(reviewed, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = plan(func(k string) string { return secrets[k] }, "-terraform-plan", planFile, "-format", "markdown", "-reviewed", reviewed)
		for _, want := range []string{
			"the billing impact of this plan differs from the one reviewed (" + reviewed + ")",
			`contract line sophos/acme-tenant contract 29684000 service new service "Sophos MDR": changes now`,
			"contract 29684999",
			"Do not apply this plan",
		} {
			if code != 1 || !strings.Contains(errOut, want) || out != report {
				t.Errorf("-reviewed, another billing change: exit %d, want 1, the report on stdout and %q on stderr\nstderr:\n%s", code, want, errOut)
			}
		}
		if code, _, errOut := plan(func(k string) string { return secrets[k] }, "-terraform-plan", planFile, "-reviewed", planFile); code != 1 ||
			!strings.Contains(errOut, "not the JSON of a billing impact report") {
			t.Errorf("-reviewed with a Terraform plan: exit %d, stderr %q; want 1 and a refusal", code, errOut)
		}
	})

	if code, _, errOut := plan(func(string) string { return "" }, "-terraform-plan", filepath.Join(dir, "current-export.json")); code != 1 ||
		!strings.Contains(errOut, "not the JSON of a Terraform plan") {
		t.Errorf("an export instead of a plan: exit %d, stderr %q", code, errOut)
	}
	// A plan Terraform saved although `terraform plan` failed fails the
	// job instead of reporting "No billing change".
	errored := filepath.Join("..", "..", "impact", "testdata", "errored_plan_1.11.4.json")
	if code, out, errOut := plan(func(string) string { return "" }, "-terraform-plan", errored); code != 1 || out != "" ||
		!strings.Contains(errOut, "the Terraform plan is errored") {
		t.Errorf("an errored plan: exit %d, stdout %q, stderr %q; want 1, nothing on stdout and an error", code, out, errOut)
	}
	if code, _, errOut := plan(func(string) string { return "" }, "-terraform-plan", planFile, "-format", "html"); code != 2 ||
		!strings.Contains(errOut, `unknown format "html"`) {
		t.Errorf("-format html: exit %d, stderr %q", code, errOut)
	}
	// Flags that would do nothing are refused, not dropped; the daemon
	// computes a report only for its API token.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-terraform-plan", planFile, "-json"}, "-json does not apply to -terraform-plan: give -format json"},
		{[]string{"-terraform-plan", planFile, "-customer", "acme-tenant"}, "-customer does not apply to -terraform-plan"},
		{[]string{"-terraform-plan", planFile, "-web.url", "http://127.0.0.1:9810"}, "-terraform-plan with -web.url needs the API token"},
		{[]string{"-terraform-plan", planFile, "-web.token-file", planFile}, "-web.token-file needs -web.url"},
		{[]string{"-format", "markdown"}, "-format applies to -terraform-plan only"},
		{[]string{"-reviewed", planFile}, "-reviewed applies to -terraform-plan only"},
		{[]string{"-json.file", planFile}, "-json.file applies to -terraform-plan only"},
		{[]string{"-terraform-plan", planFile, "-reviewed", planFile, "-web.url", "http://127.0.0.1:9810"}, "-reviewed and -json.file do not apply with -web.url"},
		{[]string{"-terraform-plan", planFile, "-json.file", planFile, "-web.url", "http://127.0.0.1:9810"}, "-reviewed and -json.file do not apply with -web.url"},
	} {
		if code, _, errOut := plan(func(string) string { return "" }, tt.args...); code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("plan %v: exit %d, stderr %q; want 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
}

// TestBillingImpact_commandConnectWise: plan -terraform-plan against
// ConnectWise computes the report, and the lines its PSA client logs
// (Discovered ConnectWise codebase) name the system once: backends.New
// adds system= to each client's logger, and the command added it again.
func TestBillingImpact_commandConnectWise(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemConnectWise)
	code, stdout, stderr := runImpactCommand(t, w, fmt.Sprintf(`  system: connectwise
  connectwise: {site: %q, company_id: %q, public_key: %q, private_key: %q, client_id: %q}
`, w.Sim.ConnectWiseSite(), psatest.DefaultConnectWiseCompany, psatest.DefaultConnectWisePublicKey, psatest.DefaultConnectWisePrivateKey,
		psatest.DefaultConnectWiseClientID), nil)
	if code != 0 || !strings.Contains(stdout, "new service *Sophos MDR*") || strings.Contains(stdout, "Not computed") {
		t.Errorf("plan -terraform-plan on ConnectWise: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "Discovered ConnectWise codebase") {
		t.Errorf("stderr:\n%s\nwant the client's line that names its system", stderr)
	}
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Count(line, "system=") > 1 {
			t.Errorf("plan -terraform-plan logged a line naming its system twice: %s", line)
		}
	}
}

// TestBillingImpact_commandSaysKaseyaBMSCallsSent: the report's Kaseya BMS
// calls are not in the count per endpoint that psa-syncd's passes keep in
// the state database (its connection is read-only), so a pass right after
// a large report met BMS's limit sooner than its count said, unseen. The
// report now logs how many calls it sent, per endpoint.
func TestBillingImpact_commandSaysKaseyaBMSCallsSent(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemKaseyaBMS)
	bms := w.Sim.KaseyaBMS()
	var before, sent map[string]int
	code, stdout, stderr := runImpactCommand(t, w, fmt.Sprintf(`  system: kaseya_bms
  kaseya_bms: {base_url: %q, username: %q, password: %q, tenant: %q}
`, w.Sim.KaseyaBMSBaseURL(), psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
		func(string) ([]string, func()) {
			before = bms.State().Hourly
			// Read once the command is done, before the plan is
			// applied: the provider's calls are not the command's.
			return nil, func() { sent = bms.State().Hourly }
		})
	if code != 0 || !strings.Contains(stdout, "new service *Sophos MDR*") {
		t.Fatalf("plan -terraform-plan on Kaseya BMS: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Every call the simulator got from the command, endpoint by
	// endpoint: the sign-in, the lookups.
	var want []string
	total := 0
	for _, ep := range slices.Sorted(maps.Keys(sent)) {
		if n := sent[ep] - before[ep]; n != 0 {
			want = append(want, fmt.Sprintf("%s=%d", ep, n))
			total += n
		}
	}
	line := fmt.Sprintf(`calls=%d endpoints="%s"`, total, strings.Join(want, " "))
	if !strings.Contains(stderr, "Kaseya BMS calls of this command are not in psa-syncd's count of calls per endpoint") || !strings.Contains(stderr, line) {
		t.Errorf("stderr:\n%s\nwant the calls Kaseya BMS got: %s", stderr, line)
	}
}

// TestBillingImpact_throughDaemonCountsKaseyaBMSCalls: the report run
// beside the daemon only says how many Kaseya BMS calls it sent (see
// TestBillingImpact_commandSaysKaseyaBMSCallsSent): a pass within the hour
// could meet BMS's limit of 1,500 calls per endpoint sooner than its count
// said. With -web.url the daemon computes the report (POST
// /api/v1/impact) with its own backend: every call is in its count per
// endpoint (api_calls), as a pass's are, and nothing is said of calls left
// out. The count is the simulator's own, endpoint by endpoint, for the
// report and for a sync pass run after it: a count that only grows would
// not show calls that escape it (a sign-in, a retry, a lookup through
// another client), which let a pass run past the limit.
func TestBillingImpact_throughDaemonCountsKaseyaBMSCalls(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemKaseyaBMS)
	bms := w.Sim.KaseyaBMS()
	reg := prometheus.NewRegistry()
	var d *daemon.Daemon
	var before sentAndCounted
	code, stdout, stderr := runImpactCommand(t, w, fmt.Sprintf(`  system: kaseya_bms
  kaseya_bms: {base_url: %q, username: %q, password: %q, tenant: %q}
web:
  api_token: test-token
`, w.Sim.KaseyaBMSBaseURL(), psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
		func(cfgFile string) ([]string, func()) {
			cfg, err := daemon.Load(cfgFile, nil)
			if err != nil {
				t.Fatal(err)
			}
			d, err = daemon.New(cfg, cfgFile, daemon.Options{Registry: reg, Impact: impacter(slog.New(slog.DiscardHandler)), AllowEmptyState: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			if err := d.Reload(); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(d.Handler())
			t.Cleanup(srv.Close)
			before = callsNow(t, bms, d, reg)
			// Compared once the command is done, before the plan is
			// applied: the provider's calls are not the daemon's.
			return []string{"-web.url", srv.URL}, func() {
				report := callsNow(t, bms, d, reg)
				report.countedAsSent(t, "the billing impact report", before)
				// The pass meets a token BMS revoked (401: a sign-in, and
				// the request again) and an account lookup answered 503
				// (retried): each attempt is a call BMS got, and in the
				// count. The 503 is the fault's, answered before BMS's
				// hourly count: it is added to what BMS counted.
				bms.RevokeTokens()
				var faulted atomic.Int64
				w.Sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/v2/crm/accounts/lookup", Status: http.StatusServiceUnavailable, Times: 1,
					Received: func() { faulted.Add(1) }})
				logged := len(w.Sim.Requests())
				res, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerCLI})
				if err != nil || res.Run.Result != "success" {
					t.Fatalf("sync pass after the report: %v %+v", err, res)
				}
				answered := map[int]int{}
				for _, r := range w.Sim.Requests()[logged:] {
					answered[r.Status]++
				}
				// Each request in flight with the revoked token gets its 401.
				if answered[http.StatusUnauthorized] == 0 || answered[http.StatusServiceUnavailable] != 1 || faulted.Load() != 1 {
					t.Errorf("the pass got answers %v from Kaseya BMS, want 401s (the revoked token) and one 503 (the fault)", answered)
				}
				pass := callsNow(t, bms, d, reg)
				pass.sent["/v2/crm/accounts/lookup"] += int(faulted.Load())
				pass.countedAsSent(t, "a sync pass with a 401 and a 503", report)
			}
		})
	if code != 0 || !strings.Contains(stdout, "new service *Sophos MDR*") {
		t.Fatalf("plan -terraform-plan -web.url on Kaseya BMS: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "not in psa-syncd's count") {
		t.Errorf("stderr:\n%s\nwant no calls left out of the count", stderr)
	}
}

// runImpactCommand runs psa-syncd plan -terraform-plan -format markdown,
// configured with psaYAML (the psa section's lines, and the sections after
// it) and w's usage file, on the plan of impacttest.Changes[0], and returns
// its exit code and output. viaDaemon, when not nil, is called with the
// config file once the current export is written, and returns the
// command's further arguments (-web.url; the command then has the API
// token "test-token"), and a function called once the command is done,
// before Terraform applies the plan.
func runImpactCommand(t *testing.T, w *impacttest.World, psaYAML string, viaDaemon func(cfgFile string) (args []string, ran func())) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	cfgFile := filepath.Join(dir, "psa-syncd.yml")
	cfg := fmt.Sprintf(`export_path: current-export.json
state_dir: state
psa:
%ssource:
  type: file
  file: {path: %q, name: %s}
`, psaYAML, w.UsagePath, impacttest.SourceName)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	w.Plan(t, impacttest.Before, impacttest.Changes[0].Config, func(planJSON []byte, current *export.Document) {
		if err := os.WriteFile(planFile, planJSON, 0o600); err != nil {
			t.Fatal(err)
		}
		data, err := current.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "current-export.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"plan", "-config.file", cfgFile, "-terraform-plan", planFile, "-format", "markdown"}
		getenv := func(string) string { return "" }
		ran := func() {}
		if viaDaemon != nil {
			var more []string
			if more, ran = viaDaemon(cfgFile); len(more) > 0 {
				args = append(args, more...)
				getenv = func(k string) string { return map[string]string{"PSA_SYNCD_API_TOKEN": "test-token"}[k] }
			}
		}
		var out, errOut bytes.Buffer
		code = run(t.Context(), args, &out, &errOut, getenv)
		stdout, stderr = out.String(), errOut.String()
		ran()
	})
	return code, stdout, stderr
}

// TestOpenLedger: the billing-impact report opens a PostgreSQL state
// read-only (never creating or migrating the schema) and finds no ledger
// where no SQLite state file exists.
func TestOpenLedger(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	cfg := &daemon.Config{StateDir: t.TempDir(), State: daemon.StateConfig{Driver: state.DriverPostgres, URL: daemon.Secret(url)}}
	if db, err := openLedger(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "no psa-syncd state yet") {
		t.Errorf("openLedger on an empty PostgreSQL database = %v, %v; want a 'no psa-syncd state yet' error and no migration", db, err)
	}
	rw, err := state.OpenConfig(t.Context(), cfg.State.Database(""))
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	db, err := openLedger(t.Context(), cfg)
	if err != nil {
		t.Fatalf("openLedger on psa-syncd's PostgreSQL database: %v", err)
	}
	if _, err := db.Ledger(0); err != nil {
		t.Errorf("reading the ledger: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cfg = &daemon.Config{StateDir: t.TempDir(), State: daemon.StateConfig{Driver: state.DriverSQLite}}
	if db, err := openLedger(t.Context(), cfg); db != nil || err != nil {
		t.Errorf("openLedger without an SQLite state file = %v, %v; want nothing", db, err)
	}
}

// TestBillingImpact_firstPlan: before the first apply the store holds no
// mapping export. The report takes the current mappings as empty, says so,
// and shows what the plan maps as new, instead of failing the first pull
// request.
func TestBillingImpact_firstPlan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	usage := filepath.Join(dir, "usage.csv")
	if err := os.WriteFile(usage, []byte("customer_id,customer_name,product,quantity\nacme-tenant,Acme,CIXA-MSP,25\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "psa-syncd.yml")
	cfg := fmt.Sprintf("export_path: %q\nstate_dir: state\npsa:\n  system: autotask\n  autotask: {}\nsource:\n  type: file\n  file: {path: %q, name: sophos}\n",
		filepath.Join(dir, "never-written.json"), usage)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(dir, "plan.json")
	planJSON := `{"format_version": "1.2", "terraform_version": "1.11.4", "errored": false, "resource_changes": [
		{"address": "psa_product_mapping.m", "mode": "managed", "type": "psa_product_mapping", "name": "m",
		 "provider_name": "registry.terraform.io/psa-sync/psa",
		 "change": {"actions": ["create"], "before": null,
			"after": {"source": "sophos", "product": "CIXA-MSP", "service_id": "30000000", "service_name": "Sophos Intercept X Advanced", "sync_enabled": true},
			"after_unknown": {"id": true}}},
		{"address": "psa_customer_mapping.c", "mode": "managed", "type": "psa_customer_mapping", "name": "c",
		 "provider_name": "registry.terraform.io/psa-sync/psa",
		 "change": {"actions": ["create"], "before": null,
			"after": {"source": "sophos", "customer_id": "acme-tenant", "customer_name": "Acme", "company_id": "175", "contract_id": "29684000", "usage_sync": true, "ticket_sync": false},
			"after_unknown": {"id": true}}}]}`
	if err := os.WriteFile(planFile, []byte(planJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"plan", "-config.file", cfgFile, "-terraform-plan", planFile, "-format", "markdown"}, &stdout, &stderr, func(string) string { return "" })
	out := stdout.String()
	if code != 0 || !strings.Contains(out, "No mapping export in "+filepath.Join(dir, "never-written.json")+" yet: the current mappings are taken as empty, so everything this plan maps is new.") ||
		!strings.Contains(out, "| Acme (acme-tenant) | 29684000 | Sophos Intercept X Advanced (30000000) | ? | ? | 25 | ? | ? | new customer mapping |") {
		t.Errorf("first plan, no export yet: exit %d, want 0, the note and Acme's new line\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	// Without PSA credentials the report and the job log say loudly that
	// figures are missing.
	if !strings.Contains(out, "> Incomplete report: some figures could not be computed") ||
		!strings.Contains(stderr.String(), `msg="Credentials not set; the billing impact leaves out the figures that need them" missing=PSA_AUTOTASK_INTEGRATION_CODE,PSA_AUTOTASK_SECRET,PSA_AUTOTASK_USERNAME`) {
		t.Errorf("without PSA credentials: want a warning in the report and in the log\nstdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
	stdout.Reset()
	if code := run(t.Context(), []string{"plan", "-config.file", cfgFile, "-terraform-plan", planFile}, &stdout, &stderr, func(string) string { return "" }); code != 0 ||
		!strings.Contains(stdout.String(), "the current mappings are taken as empty") {
		t.Errorf("first plan, -format table: exit %d, want 0 and the note\n%s", code, stdout.String())
	}
}

// TestBillingImpact_planTooLarge: a -terraform-plan file larger than
// impact.MaxPlanSize (a path naming a log, a disk image) is refused with an
// error naming the file and the cap, without being read into memory (the
// sparse file costs no disk).
func TestBillingImpact_planTooLarge(t *testing.T) {
	t.Parallel()
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(planFile, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(planFile, impact.MaxPlanSize+1); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"plan", "-terraform-plan", planFile}, &stdout, &stderr, func(string) string { return "" })
	want := "psa-syncd: -terraform-plan: " + planFile + " is larger than 256 MiB, the most psa-sync reads of a Terraform plan\n"
	if code != 1 || stderr.String() != want {
		t.Errorf("plan -terraform-plan of a %d-byte file: exit %d, stderr %q; want 1 and %q", impact.MaxPlanSize+1, code, stderr.String(), want)
	}
}

// TestBillingImpact_olderDaemon: a psa-syncd older than POST
// /api/v1/impact answers it with its mux's 404 (or 405): the command says
// to upgrade that daemon first or to compute the report here without
// -web.url, and exits 1 as the other commands do on a refusal, not with
// "404 page not found" alone.
func TestBillingImpact_olderDaemon(t *testing.T) {
	t.Parallel()
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(planFile, []byte(`{"format_version": "1.2", "resource_changes": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/impact", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	})
	older := httptest.NewServer(http.NewServeMux())
	defer older.Close()
	other := httptest.NewServer(mux)
	defer other.Close()
	for _, srv := range []*httptest.Server{older, other} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"plan", "-terraform-plan", planFile, "-web.url", srv.URL}, &stdout, &stderr, apiTokenEnv("test-token"))
		if code != 1 || !strings.Contains(stderr.String(), "POST "+srv.URL+"/api/v1/impact: ") ||
			!strings.Contains(stderr.String(), "(the daemon has no POST /api/v1/impact: it may be a psa-syncd older than this one (") ||
			!strings.Contains(stderr.String(), "upgrade the daemon, or leave -web.url out to compute the report on this machine; or -web.url names something else)") {
			t.Errorf("plan -terraform-plan -web.url against a daemon without POST /api/v1/impact: exit %d\nstderr: %s", code, stderr.String())
		}
	}
}
