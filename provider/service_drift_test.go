package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestAccServiceResource_driftRepaired edits a managed service in the PSA by
// hand (renamed, repriced and deactivated), then deletes it: each time the
// next plan shows the psa_service change that repairs it (an in-place
// update, then a create) and the product mapping that follows it, and the
// apply leaves the PSA and the export as the configuration says.
func TestAccServiceResource_driftRepaired(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			config := e.providerConfig() + `
resource "psa_service" "test" {
  name       = "Sophos Intercept X Advanced"
  unit_price = 4.5
}

resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = psa_service.test.id
}
`
			var firstID string
			repaired := func(wantNewID bool) resource.TestCheckFunc {
				return resource.ComposeAggregateTestCheckFunc(
					e.checkSimService("Sophos Intercept X Advanced", func(s simService) error {
						if s.UnitPrice != 4.5 || !s.Active {
							return fmt.Errorf("simulator service = %+v, want price 4.5 and active", s)
						}
						if (s.ID != firstID) != wantNewID {
							return fmt.Errorf("simulator service id = %s, first id %s, want a new one: %t", s.ID, firstID, wantNewID)
						}
						return nil
					}),
					e.checkExport(func(doc *export.Document) error {
						s, err := e.simService("Sophos Intercept X Advanced")
						if err != nil {
							return err
						}
						m, ok := doc.Product("sophos", "CIXA-MSP")
						if !ok || m.ServiceID != s.ID || m.ServiceName != "Sophos Intercept X Advanced" {
							return fmt.Errorf("export product mapping = %+v, want service %s named as configured", m, s.ID)
						}
						return nil
					}),
				)
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config,
						Check: resource.TestCheckResourceAttrWith("psa_service.test", "id", func(v string) error {
							firstID = v
							return nil
						}),
					},
					{
						PreConfig: func() {
							b := e.backend(t)
							svc, err := b.GetService(t.Context(), firstID)
							if err != nil {
								t.Fatalf("reading service %s: %v", firstID, err)
							}
							svc.Name, svc.UnitPrice, svc.Active = "Intercept X Advanced (edited by hand)", 3.99, false
							if _, err := b.UpdateService(t.Context(), svc); err != nil {
								t.Fatalf("editing service %s by hand: %v", firstID, err)
							}
						},
						Config: config,
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_service.test", plancheck.ResourceActionUpdate),
								// The export keeps the configured name, which the
								// apply gives the service back.
								plancheck.ExpectResourceAction("psa_product_mapping.test", plancheck.ResourceActionNoop),
							},
						},
						Check: repaired(false),
					},
					{
						PreConfig: func() { e.deleteService(firstID) },
						Config:    config,
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_service.test", plancheck.ResourceActionCreate),
								plancheck.ExpectResourceAction("psa_product_mapping.test", plancheck.ResourceActionUpdate),
							},
						},
						Check: repaired(true),
					},
				},
			})
		})
	}
}
