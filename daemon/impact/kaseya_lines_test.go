package impact_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// edrRemovedPlan is a Terraform plan that removes EDR's product mapping,
// which names service svc.
func edrRemovedPlan(svc string) []byte {
	return []byte(`{"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [{
		"address": "psa_product_mapping.edr", "mode": "managed", "type": "psa_product_mapping", "name": "edr",
		"provider_name": "registry.terraform.io/psa-sync/psa",
		"change": {"actions": ["delete"], "before": {"source": "sophos", "product": "EDR", "service_id": "` + svc + `", "service_name": "Sophos EDR", "sync_enabled": true},
		"after": null, "after_unknown": {}}}]}`)
}

// TestBillingImpact_kaseyaBMSServiceOnManyContracts: on Kaseya BMS without
// psa-syncd's ledger, a plan removes EDR's mapping while Acme's EDR line
// bills; Acme's MDR usage is new since psa-syncd's last pass, and BMS
// lists no MDR line on Acme's contract, but MDR's service has lines on
// more contracts than one page of the related services search holds
// (before, 20: the list, not whole, told nothing and the line was left out
// as one psa-syncd set). Every page is read, so the MDR line shows with
// its units unknown and both outcomes, as with a service on few contracts;
// a line on Acme's contract past the first page is found, and the line is
// left out as before.
func TestBillingImpact_kaseyaBMSServiceOnManyContracts(t *testing.T) {
	t.Parallel()
	for _, others := range []int{25, 130} {
		for _, listed := range []bool{false, true} {
			t.Run(strconv.Itoa(others)+"/listed="+strconv.FormatBool(listed), func(t *testing.T) {
				t.Parallel()
				x := newKaseyaMDR(t)
				k := x.w.Sim.KaseyaBMS()
				day := time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC)
				for i := range others {
					a := k.AddAccount("Customer " + strconv.Itoa(i))
					k.AddLine(k.AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: "Managed " + strconv.Itoa(i)}), x.s1, 2, day)
				}
				if listed {
					// Past the first page, as a line set at an
					// earlier pass is.
					k.AddLine(x.contract, x.s1, 3, day)
				}
				x.doc.PutProduct(export.ProductMapping{Source: impacttest.SourceName, Product: "EDR", ServiceID: x.svc2, ServiceName: "Sophos EDR", SyncEnabled: true})
				x.w.SetUsage(t, "customer_id,customer_name,product,quantity\nacme-tenant,Acme,MDR,3\nacme-tenant,Acme,EDR,2\n")

				rep, md := report(t, impact.Options{Backend: x.w.Backend, Source: x.w.Source}, edrRemovedPlan(x.svc2), x.doc, impact.FormatMarkdown)
				var mdr *impact.Line
				for i, l := range rep.Lines {
					if l.ServiceID == x.svc1 {
						mdr = &rep.Lines[i]
					}
				}
				if listed {
					if mdr != nil {
						t.Errorf("MDR's line, which BMS lists on Acme's contract, in the report: %+v; want it left out as unchanged:\n%s", *mdr, md)
					}
					return
				}
				if mdr == nil || mdr.Proposed != nil || mdr.ProposedHeld != nil || mdr.MonthlyDelta != nil ||
					!strings.Contains(mdr.Why, "the pass holds this line at its units now for review (previous_service)") || !strings.Contains(mdr.Why, "the pass sets 3") {
					t.Errorf("MDR's line in the report = %+v; want its units unknown and both outcomes:\n%s", mdr, md)
				}
			})
		}
	}
}
