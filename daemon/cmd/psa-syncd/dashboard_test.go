package main

import (
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
	dto "github.com/prometheus/client_model/go"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// dashboardFile is the example Grafana dashboard.
const dashboardFile = "../../../examples/grafana/psa-syncd.json"

// dashboardQuery is one PromQL query of the dashboard.
type dashboardQuery struct {
	panel string
	expr  string
}

// dashboardQueries returns every panel query of the dashboard, with the
// Grafana variables replaced as Grafana would for "All" instances and a
// one-minute rate interval, and the metrics the variables' queries use.
func dashboardQueries(t *testing.T) ([]dashboardQuery, []string) {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	vars := strings.NewReplacer(`$instance`, `.*`, `$__rate_interval`, `1m`, `$__interval`, `1m`, `$__range`, `1h`)
	var out []dashboardQuery
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: panel: %v", dashboardFile, err)
			}
			for _, tg := range p.Targets {
				out = append(out, dashboardQuery{panel: p.Title, expr: vars.Replace(tg.Expr)})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	var varMetrics []string
	for _, v := range dash.Templating.List {
		if m := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),`).FindStringSubmatch(v.Definition); m != nil {
			varMetrics = append(varMetrics, m[1])
		}
	}
	return out, varMetrics
}

// exportedMetrics returns the sample names psa-syncd exports: its own
// metrics, build info, and the Go and process collectors.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, mf := range exportedFamilies(t) {
		n := mf.GetName()
		names[n] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	return names
}

// exportedFamilies returns the metric families psa-syncd exports, each
// labelled series that can exist among them.
func exportedFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	// The commands set the build-info globals (buildVersion) before
	// NewMetrics reads them; so does this, or it reads them while a
	// command of a parallel test sets them (go test -race).
	_ = buildVersion()
	reg := newRegistry()
	m := daemon.NewMetrics(reg, psa.SystemAutotask)
	// The request metrics get their method and code labels from requests.
	m.APIRequestsTotal.WithLabelValues("get", "200")
	m.APIRequestDuration.WithLabelValues("get")
	// The integration and ticket sync gauges appear once an export has
	// loaded.
	m.SetIntegrationEnabled(true)
	m.SetTicketSyncEnabled(true)
	// The certificate expiries and readability have a series per
	// certificate file in use.
	for _, use := range []string{daemon.TLSUseListener, daemon.TLSUseClientCA, daemon.TLSUseAdvertiseCA, daemon.TLSUseAdvertiseClient} {
		m.TLSCertificateExpiry.WithLabelValues("/etc/psa-syncd/tls/"+use+".crt", use).Set(1)
		m.TLSCertificateReadable.WithLabelValues("/etc/psa-syncd/tls/"+use+".crt", use).Set(1)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// metricNames returns the metric names a PromQL query selects.
func metricNames(e metricsql.Expr) []string {
	var names []string
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		me, ok := x.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, group := range me.LabelFilterss {
			for _, f := range group {
				if f.Label == "__name__" {
					names = append(names, f.Value)
				}
			}
		}
	})
	return names
}

// TestGrafanaDashboard checks that every query of examples/grafana parses
// as PromQL and names only metrics psa-syncd exports. TestAlertingE2E runs
// them against a real Prometheus.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	queries, varMetrics := dashboardQueries(t)
	if len(queries) < 15 {
		t.Fatalf("%d queries in the dashboard, want the full set", len(queries))
	}
	exported := exportedMetrics(t)
	// What PsaSyncScheduledRunMissed reads, so that an operator sees on
	// the dashboard why it fires or not: when the pass was due, and how
	// long ago the running pass last made progress.
	shown := map[string]bool{"psa_sync_next_run_timestamp_seconds": false, "psa_sync_pass_progress_timestamp_seconds": false}
	for _, q := range queries {
		e, err := metricsql.Parse(q.expr)
		if err != nil {
			t.Errorf("panel %q: %q does not parse: %v", q.panel, q.expr, err)
			continue
		}
		names := metricNames(e)
		for _, n := range names {
			if _, ok := shown[n]; ok {
				shown[n] = true
			}
		}
		if len(names) == 0 {
			t.Errorf("panel %q: %q selects no metric", q.panel, q.expr)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("panel %q: %q uses %s, which psa-syncd does not export", q.panel, q.expr, n)
			}
		}
	}
	for _, n := range varMetrics {
		if !exported[n] {
			t.Errorf("dashboard variable uses %s, which psa-syncd does not export", n)
		}
	}
	for n, ok := range shown {
		if !ok {
			t.Errorf("no panel shows %s, which PsaSyncScheduledRunMissed reads", n)
		}
	}
}

// TestGrafanaDashboard_activeInstanceOnly runs the dashboard's queries, as
// Grafana sends them for its default "All" instances, with promtool on the
// series of a PostgreSQL pair: the active sync1 has just synced (2
// customers succeeded, nothing unmapped or held, the last pass a
// success), and the standby sync2 still exports the gauges it restored at
// its start-up, when a customer had failed, 3 customers were unmapped, a
// line was held, the last pass had failed and one before it had no usage
// to bill. The panels about passes
// must show the active instance's values, not add the standby's to them
// ("Customers by status", "Unmapped usage", "Mapped customers the vendor
// no longer reports") or show its old failure beside
// them ("Last pass", "Held lines", "Usage to bill", "Month that ended",
// which says "none recorded" for the active instance that has no pass of
// that month).
func TestGrafanaDashboard_activeInstanceOnly(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed (make test-alerts installs it): %v", err)
	}
	queries, _ := dashboardQueries(t)
	expr := map[string]string{}
	for _, q := range queries {
		if _, seen := expr[q.panel]; !seen {
			expr[q.panel] = q.expr
		}
	}
	want := map[string]string{
		"Customers by status": `
          - labels: '{status="failed"}'
            value: 0
          - labels: '{status="held"}'
            value: 0
          - labels: '{status="skipped"}'
            value: 0
          - labels: '{status="succeeded"}'
            value: 2`,
		"Unmapped usage": `
          - labels: '{kind="customer"}'
            value: 0
          - labels: '{kind="product"}'
            value: 0
          - labels: '{kind="unassigned"}'
            value: 0`,
		"Mapped customers the vendor no longer reports": `
          - labels: '{system="autotask"}'
            value: 0`,
		"Last pass": `
          - labels: 'psa_sync_last_run_result{job="psa-syncd",instance="sync1:9810",system="autotask",result="success"}'
            value: 1`,
		"Held lines": `
          - labels: 'psa_sync_held_lines{job="psa-syncd",instance="sync1:9810",system="autotask"}'
            value: 0`,
		"Usage to bill": `
          - labels: '{job="psa-syncd",instance="sync1:9810",system="autotask"}'
            value: 0`,
		// The active instance has no pass of the month that ended on
		// record; the standby's failure is not shown.
		"Month that ended": `
          - labels: '{job="psa-syncd",instance="sync1:9810",system="autotask",result="none recorded"}'
            value: 0`,
	}
	var b strings.Builder
	b.WriteString(`evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
`)
	series := func(name, instance, labels string, v int) {
		b.WriteString("      - series: '" + name + `{job="psa-syncd",instance="` + instance + `",system="autotask"` + labels + "}'\n")
		b.WriteString("        values: '" + strconv.Itoa(v) + "x20'\n")
	}
	for _, inst := range []struct {
		name                         string
		leader                       int
		failed, succeeded, unm, held int
		result, ended                string
	}{
		{"sync1:9810", 1, 0, 2, 0, 0, "success", ""},
		{"sync2:9810", 0, 1, 1, 3, 1, "failure", "failure"},
	} {
		b.WriteString(`      - series: 'psa_sync_leader{job="psa-syncd",instance="` + inst.name + `"}'` + "\n")
		b.WriteString("        values: '" + strconv.Itoa(inst.leader) + "x20'\n")
		for _, s := range []struct {
			status string
			n      int
		}{{"failed", inst.failed}, {"held", 0}, {"skipped", 0}, {"succeeded", inst.succeeded}} {
			series("psa_sync_customers", inst.name, `,status="`+s.status+`"`, s.n)
		}
		for _, k := range []string{"customer", "product", "unassigned"} {
			n := 0
			if k == "customer" {
				n = inst.unm
			}
			series("psa_sync_unmapped", inst.name, `,kind="`+k+`"`, n)
		}
		for _, r := range []string{"success", "partial", "failure"} {
			n := 0
			if r == inst.result {
				n = 1
			}
			series("psa_sync_last_run_result", inst.name, `,result="`+r+`"`, n)
			n = 0
			if r == inst.ended {
				n = 1
			}
			series("psa_sync_ended_period_last_run_result", inst.name, `,result="`+r+`"`, n)
		}
		series("psa_sync_held_lines", inst.name, "", inst.held)
		// The standby restored a pass with no usage to bill.
		series("psa_sync_last_run_usage_missing", inst.name, "", inst.failed)
		// The standby restored 2 unreported customers at its start-up.
		series("psa_sync_customers_unreported", inst.name, "", 2*inst.failed)
	}
	b.WriteString("    promql_expr_test:\n")
	for _, panel := range slices.Sorted(maps.Keys(want)) {
		e, ok := expr[panel]
		if !ok {
			t.Fatalf("no panel %q in the dashboard", panel)
		}
		b.WriteString("      - expr: '" + strings.ReplaceAll(e, "'", "''") + "'\n        eval_time: 10m\n        exp_samples:" + want[panel] + "\n")
	}
	path := filepath.Join(t.TempDir(), "dashboard_test.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's panels on a PostgreSQL pair show the standby's gauges: promtool test rules: %v\n%s", err, out)
	}
}

// checkDashboardData runs every dashboard query against prom and fails for
// any that Prometheus rejects or that returns no data.
func checkDashboardData(t *testing.T, prom *promServer) {
	t.Helper()
	queries, _ := dashboardQueries(t)
	for _, q := range queries {
		var data struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		}
		if err := prom.api(t, "/api/v1/query", url.Values{"query": {q.expr}}, &data); err != nil {
			t.Errorf("panel %q: Prometheus rejects %q: %v", q.panel, q.expr, err)
			continue
		}
		if data.ResultType == "vector" && len(data.Result) == 0 {
			t.Errorf("panel %q: %q returns no data", q.panel, q.expr)
		}
	}
}

// TestGrafanaDashboard_usageToBillAfterFailedPass: "Usage to bill" says
// "not read" (2) for an instance whose last pass failed, which sets
// psa_sync_last_run_usage_missing to 0: "some" (0) would say the failed
// pass had usage to bill. sync1's pass with no usage to bill is followed by
// one that fails; sync3's last pass had no usage to bill.
func TestGrafanaDashboard_usageToBillAfterFailedPass(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed (make test-alerts installs it): %v", err)
	}
	queries, _ := dashboardQueries(t)
	var expr string
	for _, q := range queries {
		if q.panel == "Usage to bill" {
			expr = q.expr
			break
		}
	}
	if expr == "" {
		t.Fatal(`no panel "Usage to bill" in the dashboard`)
	}
	test := `evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'psa_sync_leader{job="psa-syncd",instance="sync1:9810"}'
        values: '1x20'
      - series: 'psa_sync_last_run_usage_missing{job="psa-syncd",instance="sync1:9810",system="autotask"}'
        values: '1x4 0x15'
      - series: 'psa_sync_last_run_result{job="psa-syncd",instance="sync1:9810",system="autotask",result="partial"}'
        values: '1x4 0x15'
      - series: 'psa_sync_last_run_result{job="psa-syncd",instance="sync1:9810",system="autotask",result="failure"}'
        values: '0x4 1x15'
      - series: 'psa_sync_leader{job="psa-syncd",instance="sync3:9810"}'
        values: '1x20'
      - series: 'psa_sync_last_run_usage_missing{job="psa-syncd",instance="sync3:9810",system="autotask"}'
        values: '1x20'
      - series: 'psa_sync_last_run_result{job="psa-syncd",instance="sync3:9810",system="autotask",result="partial"}'
        values: '1x20'
      - series: 'psa_sync_last_run_result{job="psa-syncd",instance="sync3:9810",system="autotask",result="failure"}'
        values: '0x20'
    promql_expr_test:
      - expr: '` + strings.ReplaceAll(expr, "'", "''") + `'
        eval_time: 2m
        exp_samples:
          - labels: '{job="psa-syncd",instance="sync1:9810",system="autotask"}'
            value: 1
          - labels: '{job="psa-syncd",instance="sync3:9810",system="autotask"}'
            value: 1
      - expr: '` + strings.ReplaceAll(expr, "'", "''") + `'
        eval_time: 10m
        exp_samples:
          - labels: '{job="psa-syncd",instance="sync1:9810",system="autotask"}'
            value: 2
          - labels: '{job="psa-syncd",instance="sync3:9810",system="autotask"}'
            value: 1
`
	path := filepath.Join(t.TempDir(), "usage_to_bill_test.yml")
	if err := os.WriteFile(path, []byte(test), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("Usage to bill after a failed pass: promtool test rules: %v\n%s", err, out)
	}
}
