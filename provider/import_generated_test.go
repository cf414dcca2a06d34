package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
)

// TestAccImport_generatedConfig imports, with import blocks and the
// configuration Terraform generates for them (terraform plan
// -generate-config-out), a service made by hand in the PSA and each kind
// of export entry, by the ids the import docs give: the generated
// configuration is valid and plans no change, so an engineer bringing
// existing billing under Terraform starts from an empty plan.
func TestAccImport_generatedConfig(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			svc := e.addService("Sophos Intercept X Advanced", 4.5)
			// The first step writes the export entries; the import steps
			// start from a state of their own, without them.
			entries := e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "cixa" {
  product    = "CIXA-MSP"
  service_id = %q
}

resource "psa_customer_mapping" "acme" {
  customer_id = "cust-1"
  company_id  = %q
  contract_id = %q
}

resource "psa_integration" "this" {
  schedule = "daily 02:00"
}
`, svc, acme.company, acme.contract)
			// The test framework names the resource of a generated
			// configuration "generated" after the first step.
			imported := func(resourceType, id string) resource.TestStep {
				addr := resourceType + ".generated"
				return resource.TestStep{
					ResourceName:    addr,
					ImportStateId:   id,
					ImportState:     true,
					ImportStateKind: resource.ImportBlockWithID,
					GenerateConfig:  true,
					Config: e.providerConfig() + fmt.Sprintf(`
import {
  to = %s
  id = %q
}
`, addr, id),
					ImportStateConfigExact: true,
					ImportPlanChecks: resource.ImportPlanChecks{
						PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionNoop)},
					},
				}
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: entries},
					imported("psa_service", svc),
					imported("psa_product_mapping", "sophos/CIXA-MSP"),
					imported("psa_customer_mapping", "sophos/cust-1"),
					imported("psa_integration", e.exportPath),
				},
			})
		})
	}
}
