package impact_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// acmeReplacedPlan is a Terraform plan that replaces Acme's customer
// mapping (customer_id acme-tenant) by one of customer_id acme-new on the
// same contract, as when the vendor's tenant id changes.
func acmeReplacedPlan(company, contract string) []byte {
	mapping := func(id string) string {
		return `{"source": "sophos", "customer_id": "` + id + `", "customer_name": "Acme", "company_id": "` + company + `", "contract_id": "` + contract +
			`", "next_contract_id": null, "usage_sync": true, "ticket_sync": false}`
	}
	return []byte(`{"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [{
		"address": "psa_customer_mapping.acme", "mode": "managed", "type": "psa_customer_mapping", "name": "acme",
		"provider_name": "registry.terraform.io/psa-sync/psa",
		"change": {"actions": ["delete", "create"], "before": ` + mapping("acme-tenant") + `, "after": ` + mapping("acme-new") + `, "after_unknown": {}}}]}`)
}

// TestBillingImpact_kaseyaBMSCustomerReplacedNoLedger: on Kaseya BMS
// without psa-syncd's ledger, Acme's customer mapping is replaced by one of
// another customer_id on the same contract, and the usage is renamed with
// it. The current plan sets no line of acme-tenant (it has no usage now),
// so the report paired nothing: the line read as acme-new's usage newly
// billed and acme-tenant's becoming unmapped, where the pass after apply
// sets the line acme-tenant's usage set. Where BMS lists a line of the
// service on the contract (psa-syncd set it through acme-tenant), the row
// names both customers, its units under the current mappings and its delta
// unknown (the line keeps what it holds), and usage sync and the newly
// billed usage say acme-new replaces acme-tenant, as on the other PSAs.
// Where BMS lists none, the line is new: nothing is paired.
func TestBillingImpact_kaseyaBMSCustomerReplacedNoLedger(t *testing.T) {
	t.Parallel()
	for _, listed := range []bool{true, false} {
		t.Run("listed="+strconv.FormatBool(listed), func(t *testing.T) {
			t.Parallel()
			x := newKaseyaMDR(t)
			if listed {
				x.sync(t, usage.PassOptions{}, 1)
			}
			cm, _ := x.doc.Customer(impacttest.SourceName, "acme-tenant")
			x.w.SetUsage(t, "customer_id,customer_name,product,quantity\nacme-new,Acme,MDR,4\n")
			plan := acmeReplacedPlan(cm.CompanyID, strconv.Itoa(x.contract))
			o := impact.Options{Backend: x.w.Backend, Source: x.w.Source}
			rep, md := report(t, o, plan, x.doc, impact.FormatMarkdown)
			checkOneRowPerLine(t, rep, md)
			l := lineOf(t, rep, x.svc1)
			if !listed {
				if l.CurrentCustomerID != "" || strings.Contains(md, "replac") {
					t.Errorf("a line BMS does not list paired with acme-tenant's: %+v:\n%s", l, md)
				}
				return
			}
			if l.CustomerID != "acme-new" || l.CurrentCustomerID != "acme-tenant" || !l.CurrentSynced || !l.ProposedSynced ||
				l.Current != nil || l.Proposed == nil || *l.Proposed != 4 || l.MonthlyDelta != nil ||
				!strings.Contains(l.Why, "one line in Kaseya BMS, which the next pass sets through customer acme-new (new customer mapping) instead of acme-tenant (customer mapping removed)") {
				t.Errorf("Acme's MDR row: %+v; want acme-tenant's line set through acme-new, 4 proposed, its units now and delta unknown:\n%s", l, md)
			}
			if !strings.Contains(md, "| Acme (acme-tenant → acme-new) |") {
				t.Errorf("the Markdown row does not name both customers:\n%s", md)
			}
			_, js := report(t, o, plan, x.doc, impact.FormatJSON)
			checkReplacedUsage(t, rep, md, js, strconv.Itoa(x.contract))
		})
	}
}
