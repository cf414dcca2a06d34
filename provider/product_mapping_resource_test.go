package provider

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func testAccProductMappingResourceConfig(e *testEnv, product, serviceID, extra string) string {
	return e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "test" {
  product    = %[1]q
  service_id = %[2]q
%[3]s
}
`, product, serviceID, extra)
}

// productMappingIs checks one product mapping of the export.
func productMappingIs(want export.ProductMapping) func(*export.Document) error {
	return func(doc *export.Document) error {
		got, ok := doc.Product(want.Source, want.Product)
		if !ok {
			return fmt.Errorf("export has no product mapping %s/%s; it has %+v", want.Source, want.Product, doc.ProductMappings)
		}
		if got != want {
			return fmt.Errorf("export product mapping = %+v, want %+v", got, want)
		}
		return nil
	}
}

// TestAccProductMappingResource_basic maps a product to a service created in
// the same apply, whose id is unknown at plan time, then imports the mapping.
func TestAccProductMappingResource_basic(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: e.providerConfig() + `
		resource "psa_service" "cixa" {
		  name       = "Sophos Intercept X Advanced"
		  unit_price = 4.5
		}

		resource "psa_product_mapping" "test" {
		  product    = "CIXA-MSP"
		  service_id = psa_service.cixa.id
		}
		`,
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("psa_product_mapping.test", tfjsonpath.New("id"), knownvalue.StringExact("sophos/CIXA-MSP")),
							statecheck.ExpectKnownValue("psa_product_mapping.test", tfjsonpath.New("source"), knownvalue.StringExact("sophos")),
							statecheck.ExpectKnownValue("psa_product_mapping.test", tfjsonpath.New("service_name"), knownvalue.StringExact("Sophos Intercept X Advanced")),
							statecheck.ExpectKnownValue("psa_product_mapping.test", tfjsonpath.New("sync_enabled"), knownvalue.Bool(true)),
							statecheck.CompareValuePairs("psa_product_mapping.test", tfjsonpath.New("service_id"),
								"psa_service.cixa", tfjsonpath.New("id"), compare.ValuesSame()),
						},
						Check: e.checkExport(func(doc *export.Document) error {
							u, err := url.Parse(e.sim.URL())
							if err != nil {
								return err
							}
							// A ConnectWise site and a BMS host serve many
							// companies: the instance names the one logged in to.
							instance := u.Host
							switch sys {
							case psa.SystemConnectWise:
								instance = "company:" + psatest.DefaultConnectWiseCompany + "@" + u.Host
							case psa.SystemKaseyaBMS:
								instance = "tenant:" + psatest.DefaultKaseyaBMSTenant + "@" + u.Host
							}
							if doc.PSA.System != sys || doc.PSA.Instance != instance || len(doc.ProductMappings) != 1 {
								return fmt.Errorf("export = %+v, want one product mapping for %s instance %s", doc, sys, instance)
							}
							m := doc.ProductMappings[0]
							if m.Source != "sophos" || m.Product != "CIXA-MSP" || m.ServiceName != "Sophos Intercept X Advanced" || !m.SyncEnabled || m.ServiceID == "" {
								return fmt.Errorf("export product mapping = %+v", m)
							}
							return nil
						}),
					},
					{
						ResourceName:      "psa_product_mapping.test",
						ImportState:       true,
						ImportStateId:     "sophos/CIXA-MSP",
						ImportStateVerify: true,
					},
					{
						ResourceName:    "psa_product_mapping.test",
						ImportState:     true,
						ImportStateKind: resource.ImportBlockWithID,
						ImportStateId:   "sophos/CIXA-MSP",
					},
					{
						ResourceName:  "psa_product_mapping.test",
						ImportState:   true,
						ImportStateId: "CIXA-MSP",
						ExpectError:   regexp.MustCompile(`(?s)Unexpected Import Identifier.*<source>/<product>`),
					},
				},
				CheckDestroy: e.checkExport(func(doc *export.Document) error {
					if len(doc.ProductMappings) != 0 {
						return fmt.Errorf("export still has product mappings after destroy: %+v", doc.ProductMappings)
					}
					return nil
				}),
			})
		})
	}
}

func TestAccProductMappingResource_update(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			first := e.addService("Sophos Intercept X Advanced", 4.5)
			second := e.addService("Sophos Intercept X Advanced for Server", 9)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: testAccProductMappingResourceConfig(e, "CIXA-MSP", first, ""),
					},
					{
						Config: testAccProductMappingResourceConfig(e, "CIXA-MSP", second, `  sync_enabled = false`),
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_product_mapping.test", plancheck.ResourceActionUpdate),
								// The name is read from the PSA at plan time, so the plan shows it.
								plancheck.ExpectKnownValue("psa_product_mapping.test", tfjsonpath.New("service_name"),
									knownvalue.StringExact("Sophos Intercept X Advanced for Server")),
							},
						},
						Check: e.checkExport(productMappingIs(export.ProductMapping{
							Source: "sophos", Product: "CIXA-MSP", ServiceID: second,
							ServiceName: "Sophos Intercept X Advanced for Server", SyncEnabled: false,
						})),
					},
					{
						Config: testAccProductMappingResourceConfig(e, "CIXA-SRV", second, `  source = "file"`),
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_product_mapping.test", plancheck.ResourceActionReplace),
							},
						},
						Check: e.checkExport(func(doc *export.Document) error {
							if len(doc.ProductMappings) != 1 {
								return fmt.Errorf("export has %d product mappings after replace, want 1: %+v", len(doc.ProductMappings), doc.ProductMappings)
							}
							return productMappingIs(export.ProductMapping{
								Source: "file", Product: "CIXA-SRV", ServiceID: second,
								ServiceName: "Sophos Intercept X Advanced for Server", SyncEnabled: true,
							})(doc)
						}),
					},
				},
			})
		})
	}
}

func TestAccProductMappingResource_disappears(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			service := e.addService("Sophos Intercept X Advanced", 4.5)
			config := testAccProductMappingResourceConfig(e, "CIXA-MSP", service, "")

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config,
					},
					{
						PreConfig: func() {
							e.updateExport(t, func(doc *export.Document) error {
								doc.DeleteProduct("sophos", "CIXA-MSP")
								return nil
							})
						},
						Config:             config,
						PlanOnly:           true,
						ExpectNonEmptyPlan: true,
					},
					{
						Config: config,
						Check: e.checkExport(productMappingIs(export.ProductMapping{
							Source: "sophos", Product: "CIXA-MSP", ServiceID: service,
							ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true,
						})),
					},
				},
			})
		})
	}
}

// TestAccProductMappingResource_importNotInExport imports keys the export
// does not hold. The error names the key and the export searched, and a key
// that differs only in case, instead of Terraform's "Cannot import
// non-existent remote object", which names neither.
func TestAccProductMappingResource_importNotInExport(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	config := testAccProductMappingResourceConfig(e, "CIXA-MSP", service, "") + fmt.Sprintf(`
resource "psa_product_mapping" "other" {
  product    = "cixa-msp"
  service_id = %[1]q
}
`, service)
	store := regexp.QuoteMeta(e.exportPath)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: testAccProductMappingResourceConfig(e, "CIXA-MSP", service, ""),
			},
			{
				Config:        config,
				ResourceName:  "psa_product_mapping.other",
				ImportState:   true,
				ImportStateId: "sophos/cixa-msp",
				ExpectError: regexp.MustCompile(`(?s)Cannot Import Product Mapping.*sophos/cixa-msp\s+is\s+not\s+in\s+the\s+mapping\s+export\s+"` + store +
					`".*holds\s+1\s+product\s+mapping\s+of\s+source\s+"sophos"\s+\(closest:\s+sophos/CIXA-MSP\)`),
			},
			{
				Config:          testAccProductMappingResourceConfig(e, "CIXA-MSP", service, ""),
				ResourceName:    "psa_product_mapping.test",
				ImportState:     true,
				ImportStateKind: resource.ImportBlockWithID,
				ImportStateId:   "file/CIXA-MSP",
				ExpectError:     regexp.MustCompile(`(?s)Cannot Import Product Mapping.*file/CIXA-MSP.*` + store + `.*holds\s+no\s+product\s+mapping\s+of\s+source\s+"file"`),
			},
		},
	})
}

// TestAccProductMappingResource_planChecks fails plans that map a product
// to a missing or inactive service, or create a mapping the export already
// has.
func TestAccProductMappingResource_planChecks(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			inactive := e.addService("Retired service", 1)
			e.setServiceActive(inactive, false)
			active := e.addService("Sophos Intercept X Advanced", 4.5)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config:      testAccProductMappingResourceConfig(e, "CIXA-MSP", inactive, ""),
						ExpectError: regexp.MustCompile(`(?s)Inactive PSA Service.*Retired service`),
					},
					{
						Config:      testAccProductMappingResourceConfig(e, "CIXA-MSP", "987654321", ""),
						ExpectError: regexp.MustCompile(`(?s)PSA Service Not Found.*987654321`),
					},
					{
						PreConfig: func() {
							e.updateExport(t, func(doc *export.Document) error {
								// Not what the resource plans (sync is off), so not
								// adopted.
								doc.PutProduct(export.ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: active, SyncEnabled: false})
								return nil
							})
						},
						Config:      testAccProductMappingResourceConfig(e, "CIXA-MSP", active, ""),
						ExpectError: regexp.MustCompile(`(?s)Already in Mapping Export.*other values.*terraform\s+import\s+<address>\s+sophos/CIXA-MSP`),
					},
				},
			})
		})
	}
}

// TestAccProductMappingResource_invalidServiceID fails the plan of a
// service_id that cannot be an id of the PSA, where the service lookup used
// to fail with a validation error taken for an unreachable PSA (a warning),
// and the apply then failed reading the service.
func TestAccProductMappingResource_invalidServiceID(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      testAccProductMappingResourceConfig(e, "CIXA-MSP", "svc-abc", ""),
					PlanOnly:    true,
					ExpectError: invalidIDError(sys, "service_id", "svc-abc"),
				}},
			})
		})
	}
}

// TestAccProductMappingResource_twoSourcesOnOneService refuses a service
// fed by products of two usage sources: one psa-syncd per source would
// overwrite the other's quantity on every contract both bill. Several
// products of one source, or a second source with sync off, are fine.
func TestAccProductMappingResource_twoSourcesOnOneService(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	svc := e.addService("Sophos Intercept X Advanced", 4.5)
	config := func(secondSource string, secondSync bool) string {
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "a" {
  product    = "CIXA-MSP"
  service_id = %[1]q
}

resource "psa_product_mapping" "b" {
  product    = "CIXA-SRV"
  service_id = %[1]q
}

resource "psa_product_mapping" "c" {
  source       = %[2]q
  product      = "PB-USERS"
  service_id   = %[1]q
  sync_enabled = %[3]t
}
`, svc, secondSource, secondSync)
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      config("passwordboss", true),
				ExpectError: regexp.MustCompile(`(?s)Service Fed by Two Usage Sources.*"(sophos|passwordboss)".*"(sophos|passwordboss)"`),
			},
			{Config: config("passwordboss", false)},
			{Config: config("sophos", true)},
		},
	})
}

// TestAccProductMappingResource_serviceChangedInPlan changes a mapped
// psa_service in the same plan as the mapping: a rename shows in the
// mapping's plan, so the plan after the apply is empty; a deactivation fails
// the plan rather than every plan after the apply; an activation lets a new
// mapping use the service in the same apply.
func TestAccProductMappingResource_serviceChangedInPlan(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			config := func(name string, active, mapped bool) string {
				c := e.providerConfig() + fmt.Sprintf(`
resource "psa_service" "cixa" {
  name       = %q
  unit_price = 4.5
  active     = %t
}
`, name, active)
				if mapped {
					c += `
resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = psa_service.cixa.id
}
`
				}
				return c
			}
			const (
				oldName = "Sophos Intercept X Advanced"
				newName = "Sophos Intercept X Advanced (per user)"
			)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config(oldName, true, true),
					},
					{
						Config: config(newName, true, true),
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_service.cixa", plancheck.ResourceActionUpdate),
								plancheck.ExpectResourceAction("psa_product_mapping.test", plancheck.ResourceActionUpdate),
								plancheck.ExpectKnownValue("psa_product_mapping.test", tfjsonpath.New("service_name"),
									knownvalue.StringExact(newName)),
							},
						},
						Check: e.checkExport(func(doc *export.Document) error {
							m, ok := doc.Product("sophos", "CIXA-MSP")
							if !ok || m.ServiceName != newName {
								return fmt.Errorf("export product mapping = %+v, want service name %q", m, newName)
							}
							return nil
						}),
					},
					{
						Config:      config(newName, false, true),
						ExpectError: regexp.MustCompile(`(?s)Inactive PSA Service.*This plan deactivates service`),
					},
					{
						Config: config(newName, false, false),
					},
					{
						Config: config(newName, true, true),
						Check: e.checkExport(func(doc *export.Document) error {
							if _, ok := doc.Product("sophos", "CIXA-MSP"); !ok {
								return fmt.Errorf("export has no product mapping after the service was activated: %+v", doc.ProductMappings)
							}
							return nil
						}),
					},
				},
			})
		})
	}
}

// TestAccProductMappingResource_serviceRenamedOutOfBand changes a mapping
// in a plan made with -refresh=false after its psa_service was renamed in
// the PSA. The service looks unchanged, and Terraform does not plan an
// unchanged resource again during the apply: the mapping must plan the
// PSA's name both times, or Terraform rejects the apply as inconsistent.
func TestAccProductMappingResource_serviceRenamedOutOfBand(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			var serviceID string
			config := func(syncEnabled bool) string {
				return e.providerConfig() + fmt.Sprintf(`
resource "psa_service" "cixa" {
  name       = "Sophos Intercept X Advanced"
  unit_price = 4.5
}

resource "psa_product_mapping" "test" {
  product      = "CIXA-MSP"
  service_id   = psa_service.cixa.id
  sync_enabled = %t
}
`, syncEnabled)
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				AdditionalCLIOptions:     &resource.AdditionalCLIOptions{Plan: resource.PlanOptions{NoRefresh: true}},
				Steps: []resource.TestStep{
					{
						Config: config(true),
						Check: resource.TestCheckResourceAttrWith("psa_service.cixa", "id", func(v string) error {
							serviceID = v
							return nil
						}),
					},
					{
						PreConfig: func() { e.renameService(t, serviceID, "Intercept X Advanced (renamed in the PSA)") },
						Config:    config(false),
						Check: e.checkExport(func(doc *export.Document) error {
							m, ok := doc.Product("sophos", "CIXA-MSP")
							if !ok || m.ServiceName != "Intercept X Advanced (renamed in the PSA)" || m.SyncEnabled {
								return fmt.Errorf("export product mapping = %+v, want the PSA's name and sync off", m)
							}
							return nil
						}),
					},
				},
			})
		})
	}
}

// TestAccProductMappingResource_activeUnknownAtPlan: a service inactive in
// the PSA whose psa_service's active is only known at apply (here from
// another resource the apply creates) is not refused at plan time as
// inactive: the apply plans the mapping again with the value known.
func TestAccProductMappingResource_activeUnknownAtPlan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	var serviceID string
	config := func(active string) string {
		return e.providerConfig() + fmt.Sprintf(`
resource "terraform_data" "flag" {
  input = true
}

resource "psa_service" "cixa" {
  name       = "Sophos Intercept X Advanced"
  unit_price = 4.5
  active     = %s
}

resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = psa_service.cixa.id
}
`, active)
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config("true"),
				Check: resource.TestCheckResourceAttrWith("psa_service.cixa", "id", func(v string) error {
					serviceID = v
					return nil
				}),
			},
			{
				// Deactivated in the PSA; the configuration activates it
				// with a value the plan does not know yet.
				// (A new trigger replaces terraform_data.flag, so its output
				// is unknown until the apply.)
				PreConfig: func() { e.setServiceActive(serviceID, false) },
				Config: strings.Replace(config("terraform_data.flag.output"), `resource "terraform_data" "flag" {
  input = true
}`, `resource "terraform_data" "flag" {
  input = true
  triggers_replace = ["activate"]
}`, 1),
				Check: func(*terraform.State) error {
					for _, s := range e.services() {
						if s.ID == serviceID && !s.Active {
							return fmt.Errorf("service %s still inactive after the apply", serviceID)
						}
					}
					return nil
				},
			},
		},
	})
}

// TestAccProductMappingResource_sourceClaimedAtApply adds a product of a
// second usage source on a service a product of the first one feeds, with
// the service_id unknown until the apply (terraform_data created in the
// same apply): Terraform plans it again during the apply without the
// unchanged mapping of the first source. The apply must refuse to write
// it, naming both sources and the service.
func TestAccProductMappingResource_sourceClaimedAtApply(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	svc := e.addService("Sophos Intercept X Advanced", 4.5)
	one := e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "a" {
  product    = "CIXA-MSP"
  service_id = %[1]q
}
`, svc)
	two := one + fmt.Sprintf(`
resource "terraform_data" "later" {
  input = %[1]q
}

resource "psa_product_mapping" "b" {
  source     = "passwordboss"
  product    = "PB-USERS"
  service_id = terraform_data.later.output
}
`, svc)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: one},
			{
				Config: two,
				ExpectError: regexp.MustCompile(`(?s)Service Fed by Two Usage Sources.*Service\s+` + svc +
					`\s+is\s+fed\s+by\s+product\s+sophos/CIXA-MSP\s+of\s+usage\s+source\s+"sophos".*product\s+passwordboss/PB-USERS\s+of\s+usage\s+source\s+"passwordboss"`),
			},
			{
				// Checks the export the refused apply left.
				PreConfig: func() {
					doc, err := e.readExport()
					if err != nil {
						t.Fatal(err)
					}
					if m, ok := doc.Product("passwordboss", "PB-USERS"); ok {
						t.Errorf("the apply wrote a second usage source on service %s: %+v", svc, m)
					}
				},
				Config: one,
			},
		},
	})
}

// TestProductMapping_inactiveServiceUnchanged: the plan of a product
// mapping whose service was made inactive in the PSA since the apply warns
// when the mapping does not change (psa-syncd already fails the service's
// lines, and an error would stop the configuration's other changes), and
// fails when it is new, moves to that service or turns sync_enabled on.
func TestProductMapping_inactiveServiceUnchanged(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			active := e.addService("Sophos Intercept X Advanced", 4.5)
			retired := e.addService("Retired service", 1)
			e.setServiceActive(retired, false)
			server := NewProtocol6(New("test")())()
			typ := configureForTest(t, e, server)["psa_product_mapping"]

			state := func(product, serviceID, name string, sync bool) tftypes.Value {
				return objectValue(typ, map[string]tftypes.Value{
					"id": str("sophos/" + product), "source": str("sophos"), "product": str(product),
					"service_id": str(serviceID), "service_name": str(name), "sync_enabled": tftypes.NewValue(tftypes.Bool, sync),
				})
			}
			unchanged := map[string]bool{"unchanged": true, "unchanged, sync off": true}
			for _, tc := range []struct {
				name         string
				prior        tftypes.Value
				product      string
				wantWarning  bool
				syncDisabled bool
			}{
				{name: "unchanged", product: "P1", prior: state("P1", retired, "Retired service", true), wantWarning: true},
				{name: "unchanged, sync off", product: "P2", prior: state("P2", retired, "Retired service", false), wantWarning: true, syncDisabled: true},
				{name: "moved to the inactive service", product: "P3", prior: state("P3", active, "Sophos Intercept X Advanced", true)},
				{name: "sync turned on", product: "P4", prior: state("P4", retired, "Retired service", false)},
				{name: "new", product: "P5", prior: nullValue(typ)},
				// sync_enabled = false bills nothing: a warning, new or changed.
				{name: "new, sync off", product: "P6", prior: nullValue(typ), wantWarning: true, syncDisabled: true},
				{name: "moved to the inactive service, sync off", product: "P7", prior: state("P7", active, "Sophos Intercept X Advanced", false),
					wantWarning: true, syncDisabled: true},
				{name: "moved to the inactive service, sync turned off", product: "P8", prior: state("P8", active, "Sophos Intercept X Advanced", true),
					wantWarning: true, syncDisabled: true},
			} {
				config := map[string]tftypes.Value{"product": str(tc.product), "service_id": str(retired)}
				proposed := state(tc.product, retired, "Retired service", !tc.syncDisabled)
				if tc.syncDisabled {
					config["sync_enabled"] = tftypes.NewValue(tftypes.Bool, false)
				}
				if tc.prior.IsNull() {
					proposed = objectValue(typ, map[string]tftypes.Value{
						"id": tftypes.NewValue(tftypes.String, tftypes.UnknownValue), "source": str("sophos"), "product": str(tc.product),
						"service_id": str(retired), "service_name": tftypes.NewValue(tftypes.String, tftypes.UnknownValue),
						"sync_enabled": tftypes.NewValue(tftypes.Bool, !tc.syncDisabled),
					})
				}
				resp, err := server.PlanResourceChange(t.Context(), &tfprotov6.PlanResourceChangeRequest{
					TypeName: "psa_product_mapping", Config: dynamic(t, typ, objectValue(typ, config)),
					PriorState: dynamic(t, typ, tc.prior), ProposedNewState: dynamic(t, typ, proposed),
				})
				if err != nil {
					t.Fatal(err)
				}
				// A synced mapping moved off a service also warns Previous
				// Service Still Bills (TestAccProductMappingResource_repointWarns).
				var inactive []*tfprotov6.Diagnostic
				for _, d := range resp.Diagnostics {
					if d.Summary != "Previous Service Still Bills" {
						inactive = append(inactive, d)
					}
				}
				if len(inactive) != 1 || inactive[0].Summary != "Inactive PSA Service" {
					t.Errorf("%s: diagnostics %s, want one Inactive PSA Service", tc.name, diagnosticsText(resp.Diagnostics))
					continue
				}
				d := inactive[0]
				if d.Attribute == nil || d.Attribute.String() != tftypes.NewAttributePath().WithAttributeName("service_id").String() {
					t.Errorf("%s: diagnostic on %v, want service_id", tc.name, d.Attribute)
				}
				if !tc.wantWarning {
					if d.Severity != tfprotov6.DiagnosticSeverityError {
						t.Errorf("%s: %v %s, want an error: the plan maps the product to the inactive service", tc.name, d.Severity, d.Detail)
					}
					continue
				}
				want := "since an earlier apply"
				if tc.syncDisabled && !unchanged[tc.name] {
					want = "is mapped to it with sync_enabled = false: psa-syncd bills nothing"
				}
				if d.Severity != tfprotov6.DiagnosticSeverityWarning || !strings.Contains(d.Detail, "Retired service") ||
					!strings.Contains(d.Detail, want) || !strings.Contains(d.Detail, "map product \""+tc.product+"\" to an") {
					t.Errorf("%s: %v: %s, want a warning naming the service and what to do", tc.name, d.Severity, d.Detail)
				}
				if resp.PlannedState == nil {
					t.Errorf("%s: no planned state", tc.name)
				}
			}
		})
	}
}

// TestAccProductMappingResource_inactiveServiceOtherChanges: a service
// made inactive in the PSA after its product mapping was applied does not
// stop the apply of the configuration's other changes (here a mapping of
// another product to an active service); a new mapping to it fails until
// the service is active again.
func TestAccProductMappingResource_inactiveServiceOtherChanges(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	retired := e.addService("Retired service", 1)
	active := e.addService("Sophos Intercept X Advanced", 4.5)
	one := e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "old" {
  product    = "OLD-MSP"
  service_id = %q
}
`, retired)
	two := one + fmt.Sprintf(`
resource "psa_product_mapping" "new" {
  product    = "CIXA-MSP"
  service_id = %q
}
`, active)
	three := two + fmt.Sprintf(`
resource "psa_product_mapping" "newer" {
  product    = "XDR-MSP"
  service_id = %q
}
`, retired)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: one},
			{
				PreConfig: func() { e.setServiceActive(retired, false) },
				Config:    two,
				Check: e.checkExport(func(doc *export.Document) error {
					if _, ok := doc.Product("sophos", "CIXA-MSP"); !ok {
						return fmt.Errorf("product CIXA-MSP not in the export")
					}
					return nil
				}),
			},
			{
				Config:      three,
				ExpectError: regexp.MustCompile(`(?s)Inactive PSA Service.*Retired service`),
			},
			{
				// Made active again in the PSA: the new mapping applies.
				PreConfig: func() { e.setServiceActive(retired, true) },
				Config:    three,
			},
		},
	})
}

// TestAccProductMappingResource_syncOffInactiveService: a product mapping
// with sync_enabled = false bills nothing, so a service that is inactive
// (here created inactive in the same apply, whose name the apply reads)
// only warns, and the mapping is written; turning sync_enabled on fails
// the plan while the service is inactive.
func TestAccProductMappingResource_syncOffInactiveService(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	config := func(sync string) string {
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_service" "retired" {
  name       = "Sophos Retired Bundle"
  unit_price = 3
  active     = false
}

resource "psa_product_mapping" "test" {
  product      = "OLD-BUNDLE"
  service_id   = psa_service.retired.id
  sync_enabled = %s
}
`, sync)
	}
	var w planWarnings
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: w.factories(),
		Steps: []resource.TestStep{
			{
				Config: config("false"),
				Check: resource.ComposeTestCheckFunc(e.checkExport(func(doc *export.Document) error {
					m, ok := doc.Product("sophos", "OLD-BUNDLE")
					if !ok || m.SyncEnabled || m.ServiceName != "Sophos Retired Bundle" {
						return fmt.Errorf("export product mapping %+v (found %t), want sync off on Sophos Retired Bundle", m, ok)
					}
					return nil
				}), func(*terraform.State) error {
					// Planned again during the apply, with the service's id known.
					got := w.take("Inactive PSA Service")
					if len(got) == 0 || !strings.Contains(got[0].detail, "sync_enabled = false: psa-syncd bills nothing") {
						return fmt.Errorf("plan warnings %v, want Inactive PSA Service saying the mapping bills nothing", got)
					}
					return nil
				}),
			},
			{
				Config:      config("true"),
				ExpectError: regexp.MustCompile(`(?s)Inactive PSA Service.*Sophos Retired Bundle`),
			},
		},
	})
}
