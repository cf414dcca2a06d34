package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// betweenPlanAndApply is a plan check that runs fn after `terraform plan`
// saved its plan and before `terraform apply` applies it: what another
// configuration or workspace, or a person, does in the meantime (in a PR
// workflow, hours).
type betweenPlanAndApply func()

func (f betweenPlanAndApply) CheckPlan(context.Context, plancheck.CheckPlanRequest, *plancheck.CheckPlanResponse) {
	f()
}

// TestAccServiceResource_nameTakenSinceThePlan: a service of the planned
// name made in the PSA after the plan (another workspace's apply, a person)
// fails the apply of the saved plan before the create, with the import
// hint, instead of creating a second service of one name. The apply's
// provider process plans each resource again before creating it and reads
// the PSA's names afresh for that (once per process, as the plan does:
// TestAccApply_requests counts it), so Create needs no check of its own.
// On ConnectWise both a catalog item with the derived product id and one
// with another product id but the same name count.
func TestAccServiceResource_nameTakenSinceThePlan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sys  psa.System
		add  func(e *testEnv) string
		want string
	}{
		{"autotask", psa.SystemAutotask, func(e *testEnv) string { return e.addService("backup", 5) },
			`Value Refused by Autotask.*already\s+named\s+"backup"`},
		{"kaseya_bms", psa.SystemKaseyaBMS, func(e *testEnv) string { return e.addService("backup", 5) },
			`Value Refused by Kaseya BMS.*already\s+named\s+"backup"`},
		{"connectwise product id", psa.SystemConnectWise, func(e *testEnv) string { return e.addService("Backup", 5) },
			`Value Refused by ConnectWise PSA.*already\s+has\s+product\s+id\s+"Backup"`},
		{"connectwise name", psa.SystemConnectWise, func(e *testEnv) string {
			return id(e.sim.ConnectWise().AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "BK-MSP", Description: "Backup", Price: 5}))
		}, `Catalog Item Name Already Used`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, tc.sys)
			var taken string
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config: testAccServiceResourceConfig(e, "Backup", 1, ""),
					ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("psa_service.test", plancheck.ResourceActionCreate),
						betweenPlanAndApply(func() { taken = tc.add(e) }),
					}},
					ExpectError: regexp.MustCompile(`(?s)Error running apply.*` + tc.want + `.*import`),
				}, {
					// Nothing was created: the PSA holds the one service.
					Config: e.providerConfig(),
					Check: func(*terraform.State) error {
						var named []string
						for _, s := range e.services() {
							if s.Name == "Backup" || s.Name == "backup" {
								named = append(named, s.ID)
							}
						}
						if len(named) != 1 || named[0] != taken {
							return fmt.Errorf("services named Backup: %v, want only %s", named, taken)
						}
						return nil
					},
				}},
			})
		})
	}
}
