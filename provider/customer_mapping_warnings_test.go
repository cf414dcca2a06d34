package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// TestAccCustomerMappingResource_movedOffWarns: through the Terraform
// CLI, the plan that moves a synced customer mapping's contract_id off a
// contract that still bills warns Previous Contract Still Bills on
// contract_id, naming both contracts and what to do on the system; the
// plans after the apply, which change nothing, and a move with
// usage_sync turned off in the same change, warn nothing.
func TestAccCustomerMappingResource_movedOffWarns(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			third := e.addContract(acme.company, "Acme Backup", contractRecurring)
			var w planWarnings
			const summary = "Previous Contract Still Bills"
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: w.factories(),
				Steps: []resource.TestStep{
					{
						Config: testAccCustomerMappingResourceConfig(e, "acme-1", acme.company, acme.contract, ""),
						Check:  expectPlanWarnings(&w, summary, 0, "", ""),
					},
					{
						PreConfig: func() { w.take("") },
						Config:    testAccCustomerMappingResourceConfig(e, "acme-1", acme.company, acme.otherContract, ""),
						Check: expectPlanWarnings(&w, summary, 1, "psa_customer_mapping", "contract_id",
							fmt.Sprintf("Customer sophos/acme-1 moves from contract %s", acme.contract),
							"to contract "+acme.otherContract, fmt.Sprintf("End contract %s in %s", acme.contract, systemTitle(sys))),
					},
					{
						PreConfig: func() {
							if got := w.take(summary); len(got) > 0 {
								t.Errorf("plans of an unchanged mapping warned: %v", got)
							}
						},
						Config: testAccCustomerMappingResourceConfig(e, "acme-1", acme.company, third, "  usage_sync = false"),
						Check:  expectPlanWarnings(&w, summary, 0, "", ""),
					},
				},
			})
		})
	}
}

// TestAccCustomerMappingResource_inactiveCompanyWarns: through the
// Terraform CLI, the plan of a customer mapping whose contract belongs to
// a deactivated company warns Inactive PSA Company on contract_id (on
// Autotask and ConnectWise from the company read beside the contract's,
// on Kaseya BMS from the contract read); the plans after the apply, which
// check no contract, warn nothing, and a mapping to an active company's
// contract warns nothing.
func TestAccCustomerMappingResource_inactiveCompanyWarns(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			gone := e.addCustomerFixture("Gone")
			e.setCompanyActive(gone.company, false)
			acme := e.addCustomerFixture("Acme")
			var w planWarnings
			const summary = "Inactive PSA Company"
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: w.factories(),
				Steps: []resource.TestStep{
					{
						Config: testAccCustomerMappingResourceConfig(e, "gone-1", gone.company, gone.contract, ""),
						Check: expectPlanWarnings(&w, summary, 1, "psa_customer_mapping", "contract_id",
							fmt.Sprintf("Company %s, which contract %s", gone.company, gone.contract),
							"is inactive in "+systemTitle(sys), "usage_sync = false"),
					},
					{
						PreConfig: func() {
							if got := w.take(summary); len(got) > 0 {
								t.Errorf("plans of an unchanged mapping warned: %v", got)
							}
						},
						Config: testAccCustomerMappingResourceConfig(e, "gone-1", acme.company, acme.contract, ""),
						Check:  expectPlanWarnings(&w, summary, 0, "", ""),
					},
				},
			})
		})
	}
}
