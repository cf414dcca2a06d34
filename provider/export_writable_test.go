package provider

import (
	"fmt"
	"net"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestAccExportStore_psaSyncdRefusesWritesFailsPlan: with psa-syncd as the
// export store, which serves the export's reads without a token, a plan
// that changes the export with an export_token psa-syncd refuses (one
// rotated in psa-syncd but not in the CI secret) fails, instead of the
// apply failing at its first write after creating the services before
// it; and a psa-syncd that reads its export elsewhere (not export_url:
// self) fails the plan too. The right token plans and applies, and a plan
// with no token (a pull request's read-only plan) is not refused.
func TestAccExportStore_psaSyncdRefusesWritesFailsPlan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	service := e.addService("Sophos MDR", 12)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startWorkflowDaemon(t, e, t.TempDir(), daemon.ExportSelf, ln)
	// A second psa-syncd that reads a file store, with the same token.
	lnFile, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startWorkflowDaemon(t, e, t.TempDir(), e.exportPath, lnFile)

	config := func(url, token string) string {
		e.exportURL, e.exportToken = url, token
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "mdr" {
  product    = "MDR"
  service_id = %q
}
`, service)
	}
	self, file := "http://"+ln.Addr().String(), "http://"+lnFile.Addr().String()
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      config(self, "rotated-workflow-token"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Mapping Export Store Refuses Writes.*with psa_product_mapping.mdr.*export_token.*401\s+Unauthorized:\s+invalid\s+bearer\s+token`),
			},
			{
				Config:      config(file, workflowToken),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Mapping Export Store Refuses Writes.*409\s+Conflict:\s+psa-syncd\s+reads\s+its\s+mapping\s+export\s+from`),
			},
			{
				Config:             config(self, ""),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: config(self, workflowToken),
				Check: e.checkExport(func(doc *export.Document) error {
					if _, ok := doc.Product("sophos", "MDR"); !ok {
						return fmt.Errorf("psa-syncd holds no product mapping sophos/MDR: %+v", doc.ProductMappings)
					}
					return nil
				}),
			},
		},
	})
}
