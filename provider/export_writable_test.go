package provider

import (
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

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

// TestAccExportStore_fileDirectoryNotWritableWarns: a plan that changes
// the export in a file whose directory its user cannot write warns, once,
// naming the nearest existing directory (the export's directory is
// created by the write): the apply would fail at its first write to the
// export if it ran as that user. Not an error: plan and apply often run
// as different users, and the apply here does write it. A plan that
// changes nothing, or one whose user can write, warns nothing. Tests run
// as root, for whom access(2) allows everything, so the provider is given
// an access function that refuses the directory while refuse is set.
func TestAccExportStore_fileDirectoryNotWritableWarns(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	mdr, xdr := e.addService("Sophos MDR", 12), e.addService("Sophos XDR", 9)
	denied := t.TempDir()
	e.exportPath = filepath.Join(denied, "exports", "psa-mappings.json")
	var refuse atomic.Bool
	refuse.Store(true)
	access := func(path string, mode uint32) error {
		if refuse.Load() && path == denied {
			return fs.ErrPermission
		}
		return export.SystemAccess(path, mode)
	}
	w := planWarnings{provider: func() provider.Provider { return &psaProvider{version: "test", access: access} }}
	const summary = "Mapping Export File Not Writable by This User"
	config := func(services ...string) string {
		c := e.providerConfig()
		for i, s := range services {
			c += fmt.Sprintf(`
resource "psa_product_mapping" "p%d" {
  product    = "P%d"
  service_id = %q
}
`, i, i, s)
		}
		return c
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: w.factories(),
		Steps: []resource.TestStep{
			{
				Config: config(mdr, xdr),
				Check: resource.ComposeTestCheckFunc(
					func(*terraform.State) error {
						// Two resources change; each command warns once.
						got := w.take(summary)
						if len(got) == 0 || len(got) > 2 {
							return fmt.Errorf("plan warnings %q: %v, want one per command (plan, apply)", summary, got)
						}
						for _, g := range got {
							for _, d := range []string{"cannot create files in " + denied + ": permission denied", e.exportPath,
								"If the apply runs as this user, it will fail at its first write", "If the apply runs as another user"} {
								if !strings.Contains(g.detail, d) {
									return fmt.Errorf("warning detail lacks %q: %s", d, g.detail)
								}
							}
						}
						return nil
					},
					e.checkExport(func(doc *export.Document) error {
						if len(doc.ProductMappings) != 2 {
							return fmt.Errorf("export holds %d product mappings, want 2: the apply writes despite the warning", len(doc.ProductMappings))
						}
						return nil
					}),
				),
			},
			{
				PreConfig: func() { w.take("") },
				Config:    config(mdr, xdr),
				Check:     expectPlanWarnings(&w, summary, 0, "", ""),
			},
			{
				PreConfig: func() { w.take(""); refuse.Store(false) },
				Config:    config(mdr),
				Check:     expectPlanWarnings(&w, summary, 0, "", ""),
			},
		},
	})
}
