package provider

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export/compattest"
)

// TestAccExport_olderPsaSyncd: psa-syncd is upgraded apart from the
// provider, which CI runs from the lock file, and refuses an export with a
// field it does not know. What this provider writes for the settings an
// older psa-syncd has decodes there (compattest.Readers lists what each
// generation reads); psa_ticket_routing adds only the tickets object,
// which the readers before it name.
func TestAccExport_olderPsaSyncd(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	base := e.providerConfig() + fmt.Sprintf(`
resource "psa_integration" "test" {
  enabled = true
}
resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[1]q
  contract_id = %[2]q
}
`, acme.company, acme.contract)
	unknownTo := func(want ...[]string) resource.TestCheckFunc {
		return func(*terraform.State) error {
			data, err := os.ReadFile(e.exportPath)
			if err != nil {
				return err
			}
			if len(want) != len(compattest.Readers) {
				return fmt.Errorf("the test names what %d readers find unknown, compattest.Readers has %d", len(want), len(compattest.Readers))
			}
			for i, r := range compattest.Readers {
				unknown, err := r.Unknown(data)
				if err != nil {
					return err
				}
				if !slices.Equal(unknown, want[i]) {
					return fmt.Errorf("psa-syncd of %s (%s) finds %v unknown in the export, want %v:\n%s", r.Commit, r.What, unknown, want[i], data)
				}
			}
			return nil
		}
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: base, Check: unknownTo(nil, nil, nil, nil, nil, nil, nil)},
			{Config: base + ticketRoutingCases()[psa.SystemAutotask].config, Check: unknownTo([]string{"tickets"}, nil, nil, nil, nil, nil, nil)},
		},
	})
}
