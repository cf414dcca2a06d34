package impact_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestBillingImpact_mappingRemovedHoldsNewLine: MDR is mapped since an
// earlier apply, and Acme's MDR usage is new since psa-syncd's last pass;
// the plan removes the CIXA-SRV mapping, whose service then no mapping
// names while Acme's line of it (3, set by psa-syncd) still bills. The
// pass after apply holds Acme's new MDR line (previous_service), which the
// current mappings would write at 25: the same products under both
// mappings, but not the same units. Before, the report left the line out
// as unchanged, with or without psa-syncd's ledger. The CIXA-SRV mapping
// given sync_enabled = false (one of the runs) does the same. On Kaseya
// BMS without the ledger, the report cannot tell whether psa-syncd set the
// server line, so the MDR line's units are unknown (before, it was left
// out: taken for a line psa-syncd set, which BMS does not list).
func TestBillingImpact_mappingRemovedHoldsNewLine(t *testing.T) {
	t.Parallel()
	before := impacttest.Changes[0].Config // new_product_mapping: MDR mapped to its own service
	removed := strings.Replace(before, `resource "psa_product_mapping" "cixa_srv" {
  product    = "CIXA-SRV"
  service_id = psa_service.server.id
}`, "", 1)
	// sync_enabled = false: the pass no longer writes the service either.
	syncOff := strings.Replace(before, `  product    = "CIXA-SRV"
  service_id = psa_service.server.id
`, `  product      = "CIXA-SRV"
  service_id   = psa_service.server.id
  sync_enabled = false
`, 1)
	if removed == before || syncOff == before {
		t.Fatal("the CIXA-SRV mapping is not in the configuration")
	}
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		for _, withState := range []bool{true, false} {
			after, name := removed, "removed"
			if sys == psa.SystemAutotask && withState {
				after, name = syncOff, "sync_off"
			}
			t.Run(fmt.Sprintf("%s/%s/state=%v", sys, name, withState), func(t *testing.T) {
				t.Parallel()
				w := impacttest.New(t, sys)
				var rep *impact.Report
				w.AfterApply = func(doc *export.Document) { checkSync(t, w, doc, rep) }
				w.Plan(t, before, after, func(planJSON []byte, current *export.Document) {
					o := impact.Options{Backend: w.Backend, Source: w.Source}
					if withState {
						o.State = w.State
					}
					var md string
					rep, md = report(t, o, planJSON, current, impact.FormatMarkdown)
					var mdr *impact.Line
					for i, l := range rep.Lines {
						if l.CustomerID == "acme-tenant" && l.ServiceName == "Sophos MDR" {
							mdr = &rep.Lines[i]
						}
					}
					if mdr == nil {
						t.Fatalf("no line of Acme's MDR in the report:\n%s", md)
					}
					if sys == psa.SystemKaseyaBMS && !withState {
						// Without the ledger the report cannot tell
						// whether psa-syncd set the server line, but BMS
						// lists no MDR line on Acme's contract: psa-syncd
						// never set one, so the pass holds it if it set
						// the server line. Its units are unknown, its why
						// says both outcomes; Acme's other lines, listed
						// on the contract, stay as they were.
						if mdr.Proposed != nil || mdr.ProposedHeld != nil || mdr.MonthlyDelta != nil ||
							!strings.Contains(mdr.Why, "the pass holds this line at its units now for review (previous_service)") || !strings.Contains(mdr.Why, "the pass sets 25") {
							t.Errorf("Acme's MDR line: proposed %v held %+v, monthly Δ %s, why %q; want its units unknown and both outcomes:\n%s",
								mdr.Proposed, mdr.ProposedHeld, deltaText(mdr.MonthlyDelta), mdr.Why, md)
						}
						for _, l := range rep.Lines {
							if l.ProposedSynced && l.Proposed == nil && l.ServiceName != "Sophos MDR" {
								t.Errorf("line %s/%s (%s): proposed units unknown, want only Acme's MDR line's:\n%s", l.CustomerID, l.ContractID, l.ServiceName, md)
							}
						}
						return
					}
					h := mdr.ProposedHeld
					if mdr.Current == nil || *mdr.Current != 25 || mdr.CurrentHeld != nil || mdr.Proposed == nil || *mdr.Proposed != 0 ||
						h == nil || h.Hold != usage.HoldPreviousService || h.Units != 25 || deltaText(mdr.MonthlyDelta) != "-225.00" {
						t.Errorf("Acme's MDR line: current mappings %v, proposed %v held %+v, monthly Δ %s; want 25, 0 held (previous_service, 25), -225.00:\n%s",
							mdr.Current, mdr.Proposed, h, deltaText(mdr.MonthlyDelta), md)
					}
					// The summary names what took the old service's
					// mapping away as the line's held text does, not a
					// re-pointed product only.
					if !strings.Contains(md, "still bills (a product re-pointed to another service, its mapping removed, or its sync_enabled turned off) is written by the next pass by itself") {
						t.Errorf("the summary does not say that a line held after a product mapping is %s is written once the old line no longer bills:\n%s", name, md)
					}
				})
			})
		}
	}
}
