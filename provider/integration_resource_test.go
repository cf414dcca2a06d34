package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

func testAccIntegrationResourceConfig(e *testEnv, body string) string {
	return e.providerConfig() + fmt.Sprintf(`
resource "psa_integration" "test" {
%[1]s
}
`, body)
}

// integrationIs checks the integration settings of the export.
func integrationIs(want export.Integration) func(*export.Document) error {
	return func(doc *export.Document) error {
		if doc.Integration == nil {
			return fmt.Errorf("export has no integration settings")
		}
		if *doc.Integration != want {
			return fmt.Errorf("export integration = %+v, want %+v", *doc.Integration, want)
		}
		return nil
	}
}

func TestAccIntegrationResource_basic(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: testAccIntegrationResourceConfig(e, ""),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("psa_integration.test", tfjsonpath.New("id"), knownvalue.StringExact(e.exportPath)),
							statecheck.ExpectKnownValue("psa_integration.test", tfjsonpath.New("enabled"), knownvalue.Bool(true)),
							// Unset: psa-syncd's configuration file decides, so the
							// export says nothing ("") rather than a default.
							statecheck.ExpectKnownValue("psa_integration.test", tfjsonpath.New("schedule"), knownvalue.Null()),
							statecheck.ExpectKnownValue("psa_integration.test", tfjsonpath.New("timezone"), knownvalue.Null()),
						},
						Check: e.checkExport(integrationIs(export.Integration{Enabled: true})),
					},
					{
						ResourceName:      "psa_integration.test",
						ImportState:       true,
						ImportStateId:     e.exportPath,
						ImportStateVerify: true,
					},
					{
						ResourceName:    "psa_integration.test",
						ImportState:     true,
						ImportStateKind: resource.ImportBlockWithID,
						ImportStateId:   e.exportPath,
					},
					// export_url = "file:///..." is the id too, as the
					// import docs say: the provider's export_url as configured.
					{
						ResourceName:      "psa_integration.test",
						ImportState:       true,
						ImportStateId:     "file://" + e.exportPath,
						ImportStateVerify: true,
					},
					{
						ResourceName:  "psa_integration.test",
						ImportState:   true,
						ImportStateId: "other.json",
						ExpectError:   regexp.MustCompile(`Unexpected Import Identifier`),
					},
				},
				CheckDestroy: e.checkExport(func(doc *export.Document) error {
					if doc.Integration != nil {
						return fmt.Errorf("export still has integration settings after destroy: %+v", *doc.Integration)
					}
					return nil
				}),
			})
		})
	}
}

func TestAccIntegrationResource_update(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: testAccIntegrationResourceConfig(e, `  schedule = "daily 02:00"`),
			},
			{
				Config: testAccIntegrationResourceConfig(e, `
  enabled  = false
  schedule = "monthly last-day 18:00"
  timezone = "Europe/Rome"
`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("psa_integration.test", plancheck.ResourceActionUpdate),
					},
				},
				Check: e.checkExport(integrationIs(export.Integration{Enabled: false, Schedule: "monthly last-day 18:00", Timezone: "Europe/Rome"})),
			},
		},
	})
}

func TestAccIntegrationResource_disappears(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	config := testAccIntegrationResourceConfig(e, `  schedule = "weekly sun 23:30"`)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
			},
			{
				PreConfig: func() {
					e.updateExport(t, func(doc *export.Document) error {
						doc.Integration = nil
						return nil
					})
				},
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: config,
				Check:  e.checkExport(integrationIs(export.Integration{Enabled: true, Schedule: "weekly sun 23:30"})),
			},
		},
	})
}

// TestAccIntegrationResource_importNotInExport imports the integration
// settings from a store that holds no export, then from an export without
// them: each error names the store, instead of Terraform's "Cannot import
// non-existent remote object".
func TestAccIntegrationResource_importNotInExport(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	config := testAccIntegrationResourceConfig(e, "")
	store := regexp.QuoteMeta(e.exportPath)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: e.providerConfig(),
			},
			{
				Config:        config,
				ResourceName:  "psa_integration.test",
				ImportState:   true,
				ImportStateId: e.exportPath,
				ExpectError:   regexp.MustCompile(`(?s)Cannot Import Integration Settings.*store\s+"` + store + `"\s+holds\s+no\s+export\s+at\s+all`),
			},
			{
				PreConfig: func() {
					e.updateExport(t, func(doc *export.Document) error {
						doc.PutProduct(export.ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: "30000012", SyncEnabled: true})
						return nil
					})
				},
				Config:        config,
				ResourceName:  "psa_integration.test",
				ImportState:   true,
				ImportStateId: e.exportPath,
				ExpectError:   regexp.MustCompile(`(?s)Cannot Import Integration Settings.*export\s+"` + store + `"\s+holds\s+none`),
			},
			{
				Config:        config,
				ResourceName:  "psa_integration.test",
				ImportState:   true,
				ImportStateId: "other.json",
				ExpectError:   regexp.MustCompile(`(?s)Unexpected Import Identifier.*export_url\s+\(or\s+export_path\)`),
			},
		},
	})
}

func TestAccIntegrationResource_invalid(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      testAccIntegrationResourceConfig(e, `  schedule = "hourly"`),
				ExpectError: regexp.MustCompile(`(?s)Invalid Sync Schedule.*"hourly"`),
			},
			{
				Config:      testAccIntegrationResourceConfig(e, `  schedule = "every 30s"`),
				ExpectError: regexp.MustCompile(`Invalid Sync Schedule`),
			},
			{
				Config:      testAccIntegrationResourceConfig(e, `  timezone = "Mars/Olympus_Mons"`),
				ExpectError: regexp.MustCompile(`(?s)Invalid Time Zone.*Mars/Olympus_Mons`),
			},
		},
	})
}
