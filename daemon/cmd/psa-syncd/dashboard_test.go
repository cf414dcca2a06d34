package main

import (
	"encoding/json"
	"net/url"
	"os"
	"regexp"
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
	reg := newRegistry()
	m := daemon.NewMetrics(reg, psa.SystemAutotask)
	// The request metrics get their method and code labels from requests.
	m.APIRequestsTotal.WithLabelValues("get", "200")
	m.APIRequestDuration.WithLabelValues("get")
	// The integration gauge appears once an export has loaded.
	m.SetIntegrationEnabled(true)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
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
	for _, q := range queries {
		e, err := metricsql.Parse(q.expr)
		if err != nil {
			t.Errorf("panel %q: %q does not parse: %v", q.panel, q.expr, err)
			continue
		}
		names := metricNames(e)
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
