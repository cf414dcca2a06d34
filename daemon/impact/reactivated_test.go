package impact_test

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestBillingImpact_serviceReactivated: the server service, mapped since
// an earlier apply, was made inactive in the PSA by hand, so the passes
// fail its lines; the plan makes it active again (the configuration says
// active = true, as the provider's warning advises). The pass after apply
// writes Globex's server line, new since the service was made inactive:
// the report must show it (before, the proposed plan read the service as
// inactive too, and the report said "No billing change"), also without PSA
// credentials (from the plan's refresh of the service).
func TestBillingImpact_serviceReactivated(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			w := impacttest.New(t, sys)
			var rep *impact.Report
			var md string
			w.BeforePlan = func() {
				pm, _ := w.Export(t).Product(impacttest.SourceName, "CIXA-SRV")
				s, err := w.Backend.GetService(t.Context(), pm.ServiceID)
				if err != nil {
					t.Fatal(err)
				}
				s.Active = false
				if _, err := w.Backend.UpdateService(t.Context(), s); err != nil {
					t.Fatal(err)
				}
			}
			w.AfterApply = func(doc *export.Document) { checkSync(t, w, doc, rep) }
			w.Plan(t, impacttest.Before, impacttest.Before, func(planJSON []byte, current *export.Document) {
				o := impact.Options{Backend: w.Backend, Source: w.Source}
				if sys == psa.SystemKaseyaBMS {
					o.State = w.State // its quantities now come from the ledger
				}
				rep, md = report(t, o, planJSON, current, impact.FormatMarkdown)
				if len(rep.Lines) != 1 {
					t.Fatalf("report lines: %d, want Globex's server line only:\n%s", len(rep.Lines), md)
				}
				l := rep.Lines[0]
				if l.CustomerID != "globex-tenant" || l.ServiceName != "Sophos Intercept X for Server" || !l.ProposedSynced ||
					l.Proposed == nil || *l.Proposed != 2 || l.ProposedHeld != nil {
					t.Errorf("line: %+v, want Globex's server line written at 2:\n%s", l, md)
				}
				if !strings.Contains(l.Why, "made active again by this plan: under the current mappings the pass writes nothing to this line") {
					t.Errorf("why %q does not say the service is made active again", l.Why)
				}
				// Without PSA credentials no service is read, but the
				// Terraform plan's refresh read this one inactive: the
				// line shows too, its units now unknown (and so does
				// Acme's, which may change as far as the report knows).
				offline, offlineMD := report(t, impact.Options{Source: w.Source, NoBackend: "no PSA credentials"}, planJSON, current, impact.FormatMarkdown)
				found := false
				for _, l := range offline.Lines {
					if l.ServiceName != "Sophos Intercept X for Server" || l.Current != nil || !strings.Contains(l.Why, "made active again by this plan") {
						t.Errorf("without PSA credentials: line %+v, want a server line, its units under the current mappings unknown", l)
					}
					found = found || l.CustomerID == "globex-tenant" && l.Proposed != nil && *l.Proposed == 2
				}
				if !found {
					t.Errorf("without PSA credentials: no line of Globex's server written at 2:\n%s", offlineMD)
				}
				if sys == psa.SystemKaseyaBMS {
					return // a line psa-syncd never set: BMS cannot say its units now
				}
				if l.Now == nil || *l.Now != 0 || l.Current == nil || *l.Current != 0 || deltaText(l.MonthlyDelta) != "18.00" {
					t.Errorf("line now %v, current mappings %v, monthly Δ %s; want 0, 0 (the line is left as it is), +18.00:\n%s",
						l.Now, l.Current, deltaText(l.MonthlyDelta), md)
				}
			})
		})
	}
}
