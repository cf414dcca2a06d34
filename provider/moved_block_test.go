package provider

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// TestAccMovedBlock_refactor moves a psa_service and every kind of export
// entry to new addresses with moved blocks, as a refactoring pull request
// does (renamed, a count among them): the plan only moves
// them, no change and no replacement, and the apply sends nothing to the
// PSA and leaves the export as it was. A move into a module is the same to
// the provider, which never sees addresses; the test framework runs
// terraform init before a step's configuration is written, so it cannot
// install a module, and its state checks take no for_each keys.
func TestAccMovedBlock_refactor(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			// config names the service and its product mapping service,
			// the customer mappings customers and the integration
			// integration.
			config := func(service, customers, integration string) string {
				return e.providerConfig() + fmt.Sprintf(`
resource "psa_service" %[3]q {
  name       = "Sophos Intercept X Advanced"
  unit_price = 4.5
}

resource "psa_product_mapping" %[3]q {
  product    = "CIXA-MSP"
  service_id = psa_service.%[3]s.id
}

resource "psa_customer_mapping" %[4]q {
  count       = 2
  customer_id = "cust-${count.index + 1}"
  company_id  = %[1]q
  contract_id = %[2]q
  usage_sync  = false
}

resource "psa_integration" %[5]q {
  schedule = "daily 02:00"
}
`, acme.company, acme.contract, service, customers, integration)
			}
			before := config("cixa", "acme", "this")
			after := config("intercept_x", "customers", "settings") + `
moved {
  from = psa_service.cixa
  to   = psa_service.intercept_x
}

moved {
  from = psa_product_mapping.cixa
  to   = psa_product_mapping.intercept_x
}

moved {
  from = psa_customer_mapping.acme
  to   = psa_customer_mapping.customers
}

moved {
  from = psa_integration.this
  to   = psa_integration.settings
}
`

			var exported []byte
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: before,
						Check: func(*terraform.State) error {
							var err error
							exported, err = os.ReadFile(e.exportPath)
							return err
						},
					},
					{
						PreConfig: e.sim.ResetRequests,
						Config:    after,
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectEmptyPlan(),
								plancheck.ExpectResourceAction("psa_service.intercept_x", plancheck.ResourceActionNoop),
								plancheck.ExpectResourceAction("psa_product_mapping.intercept_x", plancheck.ResourceActionNoop),
								plancheck.ExpectResourceAction("psa_customer_mapping.customers[1]", plancheck.ResourceActionNoop),
								plancheck.ExpectResourceAction("psa_integration.settings", plancheck.ResourceActionNoop),
							},
						},
						Check: func(*terraform.State) error {
							for _, r := range e.sim.Requests() {
								// Autotask reads with POST .../query, Kaseya BMS
								// signs in with a POST.
								if r.Method != http.MethodGet && !strings.Contains(r.Path, "/query") && !strings.HasSuffix(r.Path, "/authenticate") {
									return fmt.Errorf("the move sent %s %s to the PSA, want reads only", r.Method, r.Path)
								}
							}
							got, err := os.ReadFile(e.exportPath)
							if err != nil {
								return err
							}
							if !bytes.Equal(got, exported) {
								return fmt.Errorf("the move rewrote the export:\n%s\nwas:\n%s", got, exported)
							}
							return nil
						},
					},
				},
			})
		})
	}
}
