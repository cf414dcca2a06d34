package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestAccExportStore_otherPSASystem switches the provider's PSA block from
// Autotask to ConnectWise PSA and leaves export_path as it was, with the
// configuration's ids changed to ConnectWise's: the plan fails naming the
// export's system, also one made with -refresh=false (which read nothing
// before), rather than the apply at its first write to the export; the
// error says to point the provider or the store back, not to restore the
// file, which is fine. Switched back, the plan is empty again.
func TestAccExportStore_otherPSASystem(t *testing.T) {
	t.Parallel()
	at := newTestEnv(t, psa.SystemAutotask)
	cw := newTestEnv(t, psa.SystemConnectWise)
	cw.exportPath = at.exportPath
	atAcme, cwAcme := at.addCustomerFixture("Acme"), cw.addCustomerFixture("Acme")
	config := func(e *testEnv, f customerFixture) string {
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "acme" {
  customer_id = "cust-1"
  company_id  = %q
  contract_id = %q
}

resource "psa_integration" "this" {
  schedule = "daily 02:00"
}
`, f.company, f.contract)
	}
	otherPSA := regexp.MustCompile(`(?s)Mapping Export of Another PSA.*` + regexp.QuoteMeta(at.exportPath) +
		`.*belongs\s+to\s+PSA\s+system\s+"autotask",\s+but\s+the\s+provider\s+is\s+configured\s+for\s+"connectwise"`)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config(at, atAcme)},
			// A PlanOnly step plans with -refresh=false first.
			{Config: config(cw, cwAcme), PlanOnly: true, ExpectError: otherPSA},
			{Config: config(cw, cwAcme), ExpectError: otherPSA},
			{
				Config: config(at, atAcme),
				Check: at.checkExport(func(doc *export.Document) error {
					m, ok := doc.Customer("sophos", "cust-1")
					if doc.PSA.System != psa.SystemAutotask || !ok || m.CompanyID != atAcme.company || m.ContractID != atAcme.contract {
						return fmt.Errorf("export = %+v, want Autotask's, with the Autotask ids", doc)
					}
					return nil
				}),
			},
		},
	})
}
