package impact_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// report computes the billing impact of a plan in w with o's PSA and
// source (w's own when o leaves them unset) and renders it.
func report(t *testing.T, w *impacttest.World, o impact.Options, planJSON []byte, current *export.Document, format string) (*impact.Report, string) {
	t.Helper()
	tp, err := impact.ReadTerraformPlan(planJSON)
	if err != nil {
		t.Fatalf("ReadTerraformPlan: %v", err)
	}
	o.SourceName = impacttest.SourceName
	o.Policies = daemon.DefaultPolicies
	o.Now = func() time.Time { return impacttest.Now }
	rep, err := impact.Compute(t.Context(), o, current, tp)
	if err != nil {
		t.Fatalf("Compute: %v", err)
	}
	var buf bytes.Buffer
	if err := impact.Write(&buf, rep, format); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return rep, buf.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("report differs from %s (-want +got):\n%s", path, diff)
	}
}

// TestBillingImpact_changes runs one plan per kind of change against the
// Autotask simulator and compares the Markdown report with a golden file.
func TestBillingImpact_changes(t *testing.T) {
	t.Parallel()
	for _, c := range impacttest.Changes {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			w := impacttest.New(t, psa.SystemAutotask)
			w.Plan(t, impacttest.Before, c.Config, func(planJSON []byte, current *export.Document) {
				_, md := report(t, w, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
				golden(t, c.Name+".md", md)
			})
		})
	}
}
