package provider

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
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

func testAccServiceResourceConfig(e *testEnv, name string, price float64, extra string) string {
	return e.providerConfig() + fmt.Sprintf(`
resource "psa_service" "test" {
  name       = %[1]q
  unit_price = %[2]v
%[3]s
}
`, name, price, extra)
}

// simService returns the simulator's service with the given name.
func (e *testEnv) simService(name string) (simService, error) {
	var found []simService
	for _, s := range e.services() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return simService{}, fmt.Errorf("simulator has %d services named %q, want 1", len(found), name)
	}
	return found[0], nil
}

func (e *testEnv) checkSimService(name string, fn func(simService) error) resource.TestCheckFunc {
	return func(*terraform.State) error {
		s, err := e.simService(name)
		if err != nil {
			return err
		}
		return fn(s)
	}
}

func TestAccServiceResource_basic(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			// Kaseya BMS services have no invoice description: setting one
			// would only be kept in the state, and an import could not
			// find it.
			invoice := `  invoice_description = "Sophos Intercept X Advanced, per user"`
			if !serviceSupports[sys].invoiceDescription {
				invoice = ""
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: testAccServiceResourceConfig(e, "Sophos Intercept X Advanced", 4.5, `
  description    = "Endpoint protection"
  unit_cost      = 2.25
  billing_period = "monthly"
`+invoice),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("name"), knownvalue.StringExact("Sophos Intercept X Advanced")),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("unit_price"), knownvalue.Float64Exact(4.5)),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("unit_cost"), knownvalue.Float64Exact(2.25)),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("active"), knownvalue.Bool(true)),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("deletion_policy"), knownvalue.StringExact("deactivate")),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("autotask"), knownvalue.Null()),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise"), knownvalue.Null()),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms"), knownvalue.Null()),
						},
						Check: resource.ComposeAggregateTestCheckFunc(
							resource.TestCheckResourceAttrSet("psa_service.test", "id"),
							e.checkSimService("Sophos Intercept X Advanced", func(s simService) error {
								if s.UnitPrice != 4.5 || s.UnitCost != 2.25 || !s.Active || s.Description != "Endpoint protection" {
									return fmt.Errorf("simulator service = %+v", s)
								}
								return nil
							}),
						),
					},
					{
						ResourceName:      "psa_service.test",
						ImportState:       true,
						ImportStateVerify: true,
					},
					// An import block plans no change, and the configuration that
					// `terraform plan -generate-config-out` writes imports cleanly too.
					{
						ResourceName:    "psa_service.test",
						ImportState:     true,
						ImportStateKind: resource.ImportBlockWithID,
					},
					{
						ResourceName:    "psa_service.test",
						ImportState:     true,
						ImportStateKind: resource.ImportBlockWithID,
						GenerateConfig:  true,
					},
				},
			})
		})
	}
}

// serviceUpdateCase is what TestAccServiceResource_update does with one
// PSA's own block.
type serviceUpdateCase struct {
	// before and after are the PSA's block in the two steps.
	before, after string
	// checkBefore and checkAfter check the block after each step.
	checkBefore, checkAfter []statecheck.StateCheck
	// sim checks the service in the simulator after the update.
	sim func(*testEnv) resource.TestCheckFunc
	// setup, if set, seeds the simulator first.
	setup func(*testEnv)
}

var serviceUpdateCases = map[psa.System]serviceUpdateCase{
	psa.SystemAutotask: {
		before: `  autotask {}`,
		after:  `  autotask {}`,
		checkBefore: []statecheck.StateCheck{
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("autotask").AtMapKey("billing_code_id"), knownvalue.NotNull()),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("autotask").AtMapKey("period_type"), knownvalue.StringExact("Monthly")),
		},
		checkAfter: []statecheck.StateCheck{
			// The derived period type label follows the billing period.
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("autotask").AtMapKey("period_type"), knownvalue.StringExact("Yearly")),
		},
		sim: func(e *testEnv) resource.TestCheckFunc {
			return func(*terraform.State) error {
				for _, s := range e.sim.Autotask().Services() {
					if s.Name == "Password Boss Business" && s.PeriodType != "Yearly" {
						return fmt.Errorf("simulator period type = %q, want Yearly", s.PeriodType)
					}
				}
				return nil
			}
		},
	},
	psa.SystemConnectWise: {
		before: `  connectwise {}`,
		after: `
  connectwise {
    product_class        = "Service"
    customer_description = "Password Boss Business, per user and year"
  }
`,
		checkBefore: []statecheck.StateCheck{
			// Derived from the name on create ...
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise").AtMapKey("identifier"), knownvalue.StringExact("Password_Boss")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise").AtMapKey("product_class"), knownvalue.StringExact("NonInventory")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise").AtMapKey("customer_description"), knownvalue.StringExact("Password Boss")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("invoice_description"), knownvalue.StringExact("")),
		},
		checkAfter: []statecheck.StateCheck{
			// ... and kept when the name changes.
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise").AtMapKey("identifier"), knownvalue.StringExact("Password_Boss")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise").AtMapKey("product_class"), knownvalue.StringExact("Service")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise").AtMapKey("customer_description"),
				knownvalue.StringExact("Password Boss Business, per user and year")),
			// Not what ConnectWise holds, which customer_description decides.
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("invoice_description"), knownvalue.StringExact("Password manager")),
		},
		sim: func(e *testEnv) resource.TestCheckFunc {
			return func(*terraform.State) error {
				for _, it := range e.sim.ConnectWise().CatalogItems() {
					if it.Description == "Password Boss Business" &&
						(it.Identifier != "Password_Boss" || it.ProductClass != "Service" || it.CustomerDescription != "Password Boss Business, per user and year") {
						return fmt.Errorf("simulator catalog item = %+v", it)
					}
				}
				return nil
			}
		},
	},
	psa.SystemKaseyaBMS: {
		before: `
  kaseya_bms {
    category        = "managed services" # BMS spells it "Managed Services"
    subcategory     = "Security"
    unit_of_measure = "User"
    taxable         = true
  }
`,
		// BMS v2 has no unit-of-measure lookup: the backend finds the unit
		// on a service that uses it.
		setup: func(e *testEnv) {
			e.sim.KaseyaBMS().AddServiceFull(psatest.KaseyaBMSService{Name: "Per-user service", UnitPrice: 1, UnitOfMeasureID: 2, Active: true})
		},
		after: `
  kaseya_bms {
    category = "Licensing"
  }
`,
		checkBefore: []statecheck.StateCheck{
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("category"), knownvalue.StringExact("managed services")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("subcategory"), knownvalue.StringExact("Security")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("unit_of_measure"), knownvalue.StringExact("User")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("taxable"), knownvalue.Bool(true)),
		},
		checkAfter: []statecheck.StateCheck{
			// The block owns all four fields: unset ones are cleared.
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("category"), knownvalue.StringExact("Licensing")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("subcategory"), knownvalue.StringExact("")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("unit_of_measure"), knownvalue.StringExact("")),
			statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("taxable"), knownvalue.Bool(false)),
		},
		sim: func(e *testEnv) resource.TestCheckFunc {
			return func(*terraform.State) error {
				for _, s := range e.sim.KaseyaBMS().Services() {
					if s.Name == "Password Boss Business" && (s.CategoryID != 2 || s.SubCategoryID != 0 || s.UnitOfMeasureID != 0 || s.Taxable) {
						return fmt.Errorf("simulator service = %+v, want category 2 (Licensing), no subcategory, not taxable", s)
					}
				}
				return nil
			}
		},
	},
}

func TestAccServiceResource_update(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			tc := serviceUpdateCases[sys]
			if tc.setup != nil {
				tc.setup(e)
			}
			invoice := `  invoice_description = "Password manager"`
			if !serviceSupports[sys].invoiceDescription {
				invoice = ""
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config:            testAccServiceResourceConfig(e, "Password Boss", 2, tc.before),
						ConfigStateChecks: tc.checkBefore,
					},
					{
						Config: testAccServiceResourceConfig(e, "Password Boss Business", 2.75, `
  description     = "Password manager, billed per user"
  billing_period  = "yearly"
  active          = false
  deletion_policy = "abandon"
`+invoice+"\n"+tc.after),
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_service.test", plancheck.ResourceActionUpdate),
							},
						},
						ConfigStateChecks: append([]statecheck.StateCheck{
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("billing_period"), knownvalue.StringExact("yearly")),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("active"), knownvalue.Bool(false)),
						}, tc.checkAfter...),
						Check: resource.ComposeAggregateTestCheckFunc(
							e.checkSimService("Password Boss Business", func(s simService) error {
								if s.UnitPrice != 2.75 || s.Active || s.Description != "Password manager, billed per user" {
									return fmt.Errorf("simulator service = %+v, want price 2.75, inactive, the new description", s)
								}
								return nil
							}),
							tc.sim(e),
						),
					},
				},
				// abandon leaves the service as it was.
				CheckDestroy: e.checkSimService("Password Boss Business", func(s simService) error {
					if s.Active || s.UnitPrice != 2.75 {
						return fmt.Errorf("abandoned service changed: %+v", s)
					}
					return nil
				}),
			})
		})
	}
}

// TestAccServiceResource_connectWiseInvoiceDescription checks that the
// customer description ConnectWise requires maps to invoice_description
// without diffs, and that a change made in ConnectWise is seen as drift.
func TestAccServiceResource_connectWiseInvoiceDescription(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise)
	var serviceID string
	config := func(invoice string) string {
		return testAccServiceResourceConfig(e, "Datto SaaS Protection", 3, fmt.Sprintf(`  invoice_description = %q`, invoice))
	}

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				// Empty: ConnectWise gets the name, the state keeps "".
				Config: config(""),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrWith("psa_service.test", "id", func(v string) error {
						serviceID = v
						return nil
					}),
					e.checkCatalogCustomerDescription(&serviceID, "Datto SaaS Protection"),
				),
			},
			{
				Config: config("Datto SaaS Protection, per seat"),
				Check:  e.checkCatalogCustomerDescription(&serviceID, "Datto SaaS Protection, per seat"),
			},
			{
				// Someone edits the customer description in ConnectWise.
				PreConfig: func() {
					e.deleteService(serviceID)
					e.sim.ConnectWise().AddCatalogItem(psatest.ConnectWiseCatalogItem{
						ID: mustID(serviceID), Description: "Datto SaaS Protection", CustomerDescription: "Edited by hand", Price: 3,
					})
				},
				Config:             config("Datto SaaS Protection, per seat"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: config("Datto SaaS Protection, per seat"),
				Check:  e.checkCatalogCustomerDescription(&serviceID, "Datto SaaS Protection, per seat"),
			},
		},
	})
}

// checkCatalogCustomerDescription checks a ConnectWise catalog item's
// customer description.
func (e *testEnv) checkCatalogCustomerDescription(serviceID *string, want string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		it, ok := e.sim.ConnectWise().CatalogItem(mustID(*serviceID))
		if !ok {
			return fmt.Errorf("no catalog item %s", *serviceID)
		}
		if it.CustomerDescription != want {
			return fmt.Errorf("customer description = %q, want %q", it.CustomerDescription, want)
		}
		return nil
	}
}

func TestAccServiceResource_disappears(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			config := testAccServiceResourceConfig(e, "Datto SaaS Protection", 3, "")
			var firstID string

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config,
						Check: resource.TestCheckResourceAttrWith("psa_service.test", "id", func(id string) error {
							firstID = id
							return nil
						}),
					},
					{
						PreConfig:          func() { e.deleteService(firstID) },
						Config:             config,
						PlanOnly:           true,
						ExpectNonEmptyPlan: true,
					},
					{
						Config: config,
						Check: resource.TestCheckResourceAttrWith("psa_service.test", "id", func(id string) error {
							if id == firstID {
								return fmt.Errorf("id = %s, want a new service", id)
							}
							return nil
						}),
					},
				},
			})
		})
	}
}

// TestAccServiceResource_deletionPolicy destroys one service per policy
// that the PSA supports and checks what is left in the PSA.
func TestAccServiceResource_deletionPolicy(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			config := e.providerConfig() + `
resource "psa_service" "deactivate" {
  name       = "Deactivated on destroy"
  unit_price = 1
}

resource "psa_service" "abandon" {
  name            = "Abandoned on destroy"
  unit_price      = 1
  deletion_policy = "abandon"
}
`
			checks := []resource.TestCheckFunc{
				e.checkSimService("Deactivated on destroy", func(s simService) error {
					if s.Active {
						return fmt.Errorf("service %s is still active after destroy with deletion_policy deactivate", s.ID)
					}
					return nil
				}),
				e.checkSimService("Abandoned on destroy", func(s simService) error {
					if !s.Active {
						return fmt.Errorf("service %s was deactivated despite deletion_policy abandon", s.ID)
					}
					return nil
				}),
			}
			if serviceSupports[sys].delete {
				config += `
resource "psa_service" "delete" {
  name            = "Deleted on destroy"
  unit_price      = 1
  deletion_policy = "delete"
}
`
				checks = append(checks, func(*terraform.State) error {
					if _, err := e.simService("Deleted on destroy"); err == nil {
						return fmt.Errorf("service still exists after destroy with deletion_policy delete")
					}
					return nil
				})
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps:                    []resource.TestStep{{Config: config}},
				CheckDestroy:             resource.ComposeAggregateTestCheckFunc(checks...),
			})
		})
	}
}

// TestAccServiceResource_importInvalidID imports a service by an id that
// cannot be one of the PSA's, here a product mapping's key: the error gives
// the expected form, and no request is sent (before, the backend's own check
// came back as "The PSA refused the values").
func TestAccServiceResource_importInvalidID(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: e.providerConfig(),
					},
					{
						PreConfig:     e.sim.ResetRequests,
						Config:        testAccServiceResourceConfig(e, "Sophos Intercept X Advanced", 4.5, ""),
						ResourceName:  "psa_service.test",
						ImportState:   true,
						ImportStateId: "sophos/CIXA-MSP",
						ExpectError: regexp.MustCompile(`(?s)Unexpected Import Identifier.*id\s+of\s+the\s+service\s+in\s+` +
							strings.ReplaceAll(regexp.QuoteMeta(systemTitle(sys)), " ", `\s+`) + `.*"` + exampleServiceID(sys) +
							`".*No\s+request\s+was\s+sent.*Got:\s+"sophos/CIXA-MSP"`),
					},
					{
						PreConfig: func() {
							if r := e.sim.Requests(); len(r) != 0 {
								t.Errorf("the import of an invalid id sent %d request(s), the first %s %s", len(r), r[0].Method, r[0].Path)
							}
						},
						Config: e.providerConfig(),
					},
				},
			})
		})
	}
}

func TestAccServiceResource_invalid(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			steps := []resource.TestStep{
				{
					Config:      testAccServiceResourceConfig(e, "Bad period", 1, `  billing_period = "weekly"`),
					ExpectError: regexp.MustCompile(`billing_period\s+value\s+must\s+be\s+one\s+of`),
				},
			}
			// A block for any other PSA fails the plan.
			for _, other := range testSystems {
				if other == sys {
					continue
				}
				steps = append(steps, resource.TestStep{
					Config: testAccServiceResourceConfig(e, "Wrong block", 1, "  "+string(other)+" {}"),
					ExpectError: regexp.MustCompile(`(?s)` + systemTitle(other) + ` Fields on Another PSA.*configured\s+for\s+` +
						strings.ReplaceAll(systemTitle(sys), " ", `\s+`)),
				})
			}
			switch sys {
			case psa.SystemAutotask:
				steps = append(steps,
					resource.TestStep{
						Config:      testAccServiceResourceConfig(e, "Never deletable", 1, `  deletion_policy = "delete"`),
						ExpectError: regexp.MustCompile(`(?s)Unsupported Deletion Policy.*Autotask\s+cannot\s+delete\s+services`),
					},
					resource.TestStep{
						Config: testAccServiceResourceConfig(e, "Conflicting period", 1, `
  autotask {
    period_type = "Yearly"
  }
`),
						ExpectError: regexp.MustCompile(`(?s)Conflicting Billing Period.*billing_period\s+=\s+"yearly"`),
					},
				)
			case psa.SystemConnectWise:
				steps = append(steps,
					resource.TestStep{
						Config:      testAccServiceResourceConfig(e, strings.Repeat("x", 61), 1, ""),
						ExpectError: regexp.MustCompile(`(?s)Service Name Too Long for ConnectWise.*61\s+characters`),
					},
					resource.TestStep{
						Config: testAccServiceResourceConfig(e, "Bad class", 1, `
  connectwise {
    product_class = "Widget"
  }
`),
						ExpectError: regexp.MustCompile(`product_class\s+value\s+must\s+be\s+one\s+of`),
					},
				)
			case psa.SystemKaseyaBMS:
				// Names BMS does not know fail the plan, on their
				// attribute, not the apply.
				steps = append(steps,
					resource.TestStep{
						Config: testAccServiceResourceConfig(e, "Unknown category", 1, `
  kaseya_bms {
    category = "Hardware"
  }
`),
						PlanOnly:    true,
						ExpectError: regexp.MustCompile(`(?s)Value Refused by Kaseya BMS.*\bcategory\s+=\s+"Hardware".*no\s+service\s+category\s+named\s+"Hardware"\s+\(known:\s+"Managed\s+Services"`),
					},
					resource.TestStep{
						Config: testAccServiceResourceConfig(e, "Unknown subcategory", 1, `
  kaseya_bms {
    category    = "Managed Services"
    subcategory = "Toasters"
  }
`),
						PlanOnly:    true,
						ExpectError: regexp.MustCompile(`(?s)Value Refused by Kaseya BMS.*subcategory\s+=\s+"Toasters".*no\s+subcategory\s+of\s+"Managed\s+Services"\s+named\s+"Toasters"`),
					},
					resource.TestStep{
						Config: testAccServiceResourceConfig(e, "Unknown unit", 1, `
  kaseya_bms {
    unit_of_measure = "Fortnight"
  }
`),
						PlanOnly:    true,
						ExpectError: regexp.MustCompile(`(?s)Value Refused by Kaseya BMS.*unit_of_measure\s+=\s+"Fortnight".*unit\s+of\s+measure\s+"Fortnight"\s+is\s+not\s+used`),
					},
				)
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps:                    steps,
			})
		})
	}
}

// TestAccServiceResource_autotaskPlanChecks checks that what Autotask
// would refuse on create (a name too long, a period type its picklist
// lacks, a billing code that is missing, inactive or of another use type,
// several default billing codes) fails the plan on its attribute, and that
// an update renaming a service does not ask for a default billing code.
func TestAccServiceResource_autotaskPlanChecks(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	at := e.sim.Autotask()
	inactive := at.AddBillingCode(psatest.AutotaskBillingCode{Name: "Old", Active: false})
	material := at.AddBillingCode(psatest.AutotaskBillingCode{Name: "Hardware", UseType: "Material", Active: true})
	code := func(id any) string { return fmt.Sprintf("  autotask {\n    billing_code_id = \"%v\"\n  }\n", id) }
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      testAccServiceResourceConfig(e, strings.Repeat("x", 151), 1, ""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Value Refused by Autotask.*with psa_service.test.*\bname\b.*151\s+characters\s+long\s+as\s+Autotask\s+counts\s+them\s+\(an\s+emoji\s+counts\s+two\);\s+Autotask\s+holds\s+at\s+most\s+150`),
			},
			{
				Config:      testAccServiceResourceConfig(e, "Fortnightly", 1, "  autotask {\n    period_type = \"Fortnightly\"\n  }\n"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Value Refused by Autotask.*period_type\s+=\s+"Fortnightly".*no\s+value\s+labelled\s+"Fortnightly"\s+\(labels:.*"Monthly"`),
			},
			{
				Config:      testAccServiceResourceConfig(e, "Unknown code", 1, code(1)),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Value Refused by Autotask.*billing_code_id\s+=\s+"1".*no\s+billing\s+\(allocation\)\s+code\s+has\s+id\s+1`),
			},
			{
				Config:      testAccServiceResourceConfig(e, "Inactive code", 1, code(inactive)),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(fmt.Sprintf(`(?s)billing_code_id.*billing\s+code\s+%d\s+\(Old\)\s+is\s+inactive`, inactive)),
			},
			{
				Config:      testAccServiceResourceConfig(e, "Material code", 1, code(material)),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)billing_code_id.*\(Hardware\)\s+is\s+of\s+use\s+type\s+"Material";\s+a\s+service\s+needs\s+one\s+of\s+use\s+type\s+"Recurring\s+Contract\s+Service"`),
			},
			{
				Config: testAccServiceResourceConfig(e, "Default code", 1, ""),
			},
			{
				// A second default: a new service must name its code, and
				// the plan says so; renaming the first one needs none.
				PreConfig: func() { at.AddBillingCode(psatest.AutotaskBillingCode{Name: "Recurring 2", Active: true}) },
				Config: testAccServiceResourceConfig(e, "Default code renamed", 1, "") + `
resource "psa_service" "second" {
  name       = "Second"
  unit_price = 1
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Value Refused by Autotask.*with psa_service.second.*billing\s+code\s+is\s+required:\s+the\s+tenant\s+has\s+2\s+active\s+billing\s+codes.*Recurring\s+2`),
			},
			{
				Config: testAccServiceResourceConfig(e, "Default code renamed", 1, ""),
			},
		},
	})
}

// TestAccServiceResource_connectWiseProductIDs checks that a product id
// (identifier) that ConnectWise would refuse on create or update fails the
// plan: one that another catalog item holds (inactive items included, such
// as those of an earlier integration), or one that two new services of the
// configuration would both get, their names alike or not.
func TestAccServiceResource_connectWiseProductIDs(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise)
	old := e.sim.ConnectWise().AddCatalogItem(psatest.ConnectWiseCatalogItem{
		Identifier: "Sophos_Intercept_X_Advanced", Description: "Intercept X (old integration)", Inactive: true})
	two := func(second string) string {
		return e.providerConfig() + `
resource "psa_service" "a" {
  name       = "Backup (Server)"
  unit_price = 1
}
resource "psa_service" "b" {
  name       = "Backup Server"
  unit_price = 1
` + second + `
}
`
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      testAccServiceResourceConfig(e, "Sophos Intercept X Advanced", 1, ""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(fmt.Sprintf(`(?s)Value Refused by ConnectWise PSA.*with psa_service.test.*catalog\s+item\s+%d\s+\("Intercept\s+X\s+\(old\s+integration\)",\s+inactive\)\s+already\s+has\s+product\s+id\s+"Sophos_Intercept_X_Advanced".*import\s+catalog\s+item\s+%d`, old, old)),
			},
			{
				Config:      two(""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)ConnectWise Product ID Used Twice.*service\s+"Backup\s+(\(Server\)|Server)"\s+and\s+of\s+service\s+"Backup\s+(\(Server\)|Server)"\s+would\s+both\s+have\s+product\s+id\s+"Backup_Server"`),
			},
			{
				Config: two("  connectwise {\n    identifier = \"Backup_Server_2\"\n  }\n"),
			},
			{
				// Changes of existing items: a new name keeps the product
				// id, which is the item's own.
				Config: strings.Replace(two("  connectwise {\n    identifier = \"Backup_Server_2\"\n  }\n"), `"Backup (Server)"`, `"Backup (Servers)"`, 1),
			},
			{
				Config:      strings.Replace(two("  connectwise {\n    identifier = \"Backup_Server_2\"\n  }\n"), `"Backup_Server_2"`, `"backup_server"`, 1),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Value Refused by ConnectWise PSA.*with psa_service.b.*already\s+has\s+product\s+id\s+"Backup_Server"`),
			},
			{
				// Two new items of one name and one product id of their
				// own: the name only warns, the product id fails.
				Config: two("  connectwise {\n    identifier = \"Backup_Server_2\"\n  }\n") + `
resource "psa_service" "c" {
  name       = "Archive"
  unit_price = 1
  connectwise {
    identifier = "ARC"
  }
}
resource "psa_service" "d" {
  name       = "Archive"
  unit_price = 1
  connectwise {
    identifier = "arc"
  }
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)ConnectWise Product ID Used Twice.*service\s+"Archive"\s+and\s+of\s+service\s+"Archive"\s+would\s+both\s+have\s+product\s+id\s+"(ARC|arc)"`),
			},
		},
	})
}

// TestAccServiceResource_decimalPrices checks that prices that are not
// binary fractions (3.99, 1.2) leave the plan after an apply empty on
// every PSA, with the PSA's own block set: Terraform holds the configured
// number more precisely than the float64 the PSA answers, and a refresh
// that stored the float64 planned an update of every computed attribute
// (ConnectWise's customer_description) on every plan after.
func TestAccServiceResource_decimalPrices(t *testing.T) {
	t.Parallel()
	blocks := map[psa.System]string{
		psa.SystemAutotask:    "  autotask {\n  }\n",
		psa.SystemConnectWise: "  connectwise {\n    product_class = \"Service\"\n  }\n",
		psa.SystemKaseyaBMS:   "  kaseya_bms {\n  }\n",
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			config := testAccServiceResourceConfig(e, "Decimal prices", 3.99, "  unit_cost = 1.2\n"+blocks[sys])
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: config},
					{
						Config: config,
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
						},
					},
				},
			})
		})
	}
}

// TestAccServiceResource_renamedWithoutMoved checks that a psa_service
// given a new address without a moved block, which Terraform plans as a
// destroy of the old address and a create of the new, fails the plan on
// every PSA before a second service of the name is created (Autotask and
// Kaseya BMS would refuse it at apply time; ConnectWise would refuse its
// product id), and that the diagnostic names the moved block; with the
// moved block the plan moves the resource and creates nothing.
func TestAccServiceResource_renamedWithoutMoved(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			renamed := e.providerConfig() + `
resource "psa_service" "renamed" {
  name       = "Moved Service"
  unit_price = 1
}
`
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: testAccServiceResourceConfig(e, "Moved Service", 1, "")},
					{
						Config:      renamed,
						PlanOnly:    true,
						ExpectError: regexp.MustCompile(`(?s)with psa_service.renamed.*under\s+a\s+new\s+address.*add\s+a\s+moved\s+block`),
					},
					{
						Config: renamed + `
moved {
  from = psa_service.test
  to   = psa_service.renamed
}
`,
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("psa_service.renamed", plancheck.ResourceActionNoop)},
						},
						Check: func(*terraform.State) error {
							if n := len(e.services()); n != 1 {
								return fmt.Errorf("the simulator has %d services, want 1", n)
							}
							return nil
						},
					},
				},
			})
		})
	}
}

// TestAccServiceResource_nameInUseUnknownFields checks that a name in use
// fails the plan when another field the plan-time check reads is known
// only at apply (here from a terraform_data resource created in the same
// apply): the name is checked alone, on every PSA.
func TestAccServiceResource_nameInUseUnknownFields(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			var taken int64
			block := ""
			switch sys {
			case psa.SystemAutotask:
				taken = e.sim.Autotask().AddService("Backup", 5)
				block = "  autotask {\n    billing_code_id = terraform_data.later.output\n  }\n"
			case psa.SystemConnectWise:
				taken = e.sim.ConnectWise().AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "BKP-1", Description: "Backup", Price: 5})
				block = "  connectwise {\n    type_id = terraform_data.later.output\n  }\n"
			case psa.SystemKaseyaBMS:
				taken = int64(e.sim.KaseyaBMS().AddService("Backup", 5))
				block = "  kaseya_bms {\n    category = terraform_data.later.output\n  }\n"
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config: testAccServiceResourceConfig(e, "BACKUP", 1, block) + `
resource "terraform_data" "later" {
  input = "1"
}
`,
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(fmt.Sprintf(`(?s)with psa_service.test.*already\s+named\s+"Backup".*import\s+<this\s+resource's\s+address>\s+%d`, taken)),
				}},
			})
		})
	}
}

// TestAccServiceResource_connectWiseNameInUse checks that a new service
// named as an active catalog item (case aside) fails the plan on
// ConnectWise too, naming the item and how to import it, although
// ConnectWise itself accepts a second item of one name: that item is the
// one a lost state, a state rm or a removed block left, or one made by
// hand or by a vendor's own integration under another product id, and a
// second one splits the product's additions. A product id set in the
// configuration says a second item is meant (a warning only), and an
// inactive item of the name takes no additions.
func TestAccServiceResource_connectWiseNameInUse(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise)
	cw := e.sim.ConnectWise()
	held := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "CIXA-MSP", Description: "Sophos Intercept X Advanced"})
	cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "Old_Backup", Description: "Old Backup", Inactive: true})
	count := func(name string, want int) resource.TestCheckFunc {
		return func(*terraform.State) error {
			n := 0
			for _, s := range e.services() {
				if strings.EqualFold(s.Name, name) {
					n++
				}
			}
			if n != want {
				return fmt.Errorf("the simulator has %d catalog items named %q, want %d", n, name, want)
			}
			return nil
		}
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      testAccServiceResourceConfig(e, "sophos intercept x advanced", 1, ""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(fmt.Sprintf(`(?s)Catalog Item Name Already Used.*with psa_service.test.*active\s+catalog\s+item\s+%[1]d\s+\(product\s+id\s+"CIXA-MSP"\)\s+is\s+already\s+named\s+"Sophos\s+Intercept\s+X\s+Advanced".*terraform\s+import\s+<this\s+resource's\s+address>\s+%[1]d.*id\s+=\s+"%[1]d"`, held)),
			},
			{
				// A product id of its own: a second item is meant.
				Config: testAccServiceResourceConfig(e, "Sophos Intercept X Advanced", 1, "  connectwise {\n    identifier = \"CIXA-MSP-2\"\n  }\n"),
				Check:  count("Sophos Intercept X Advanced", 2),
			},
			{
				// Its own name is no conflict on a later plan.
				Config:   testAccServiceResourceConfig(e, "Sophos Intercept X Advanced", 1, "  connectwise {\n    identifier = \"CIXA-MSP-2\"\n  }\n"),
				PlanOnly: true,
			},
			{
				Config: testAccServiceResourceConfig(e, "old backup", 1, ""),
				Check:  count("Old Backup", 2),
			},
		},
	})
}

// TestAccServiceResource_nameInUse checks that a name another service
// has, which Autotask (a unique key on the name) and Kaseya BMS refuse on
// create and on update, fails the plan naming that service, inactive ones
// included: a service created by hand, or by an apply whose answer was
// lost, is imported rather than created twice. On Autotask, which cannot
// delete services, a replacement that keeps the name (here a taint) fails
// the plan too: the old service, deactivated, keeps it.
func TestAccServiceResource_nameInUse(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			var taken int64
			if sys == psa.SystemAutotask {
				taken = e.sim.Autotask().AddServiceDetails(psatest.AutotaskService{Name: "Backup", UnitPrice: 5})
			} else {
				taken = int64(e.sim.KaseyaBMS().AddService("Backup", 5))
			}
			refused := fmt.Sprintf(`service\s+%d\s+(\(inactive\)\s+)?is\s+already\s+named\s+"Backup"`, taken)
			steps := []resource.TestStep{
				{
					Config:   testAccServiceResourceConfig(e, "backup", 1, ""),
					PlanOnly: true,
					ExpectError: regexp.MustCompile(fmt.Sprintf(`(?s)Value Refused by %s.*with psa_service.test.*%s.*import\s+service\s+%d.*`+
						`terraform\s+import\s+<this\s+resource's\s+address>\s+%[4]d,\s+or\s+an\s+import\s+block\s+with\s+id\s+=\s+"%[4]d"`,
						systemTitle(sys), refused, taken, taken)),
				},
				{
					Config: testAccServiceResourceConfig(e, "Offsite backup", 1, ""),
				},
				{
					Config:      testAccServiceResourceConfig(e, "Backup", 1, ""),
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(`(?s)Value Refused by.*` + refused),
				},
				{
					// Its own name is no conflict.
					Config: testAccServiceResourceConfig(e, "Offsite Backup", 1, ""),
				},
			}
			if sys == psa.SystemAutotask {
				steps = append(steps, resource.TestStep{
					Config:      testAccServiceResourceConfig(e, "Offsite Backup", 1, ""),
					Taint:       []string{"psa_service.test"},
					ExpectError: regexp.MustCompile(`(?s)Value Refused by Autotask.*service\s+\d+\s+is\s+already\s+named\s+"Offsite Backup"`),
				})
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps:                    steps,
			})
		})
	}
}

// TestAccServiceResource_replaceKeepsName checks the plan checks of a
// name (Kaseya BMS) or product id (ConnectWise) in use against a
// replacement (here a taint) that keeps it: with deletion_policy =
// "delete" the apply deletes the old service first, so the plan passes and
// the apply leaves one service; when the old one stays (deactivated), the
// PSA would refuse the new one, and the plan fails.
func TestAccServiceResource_replaceKeepsName(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			deleted := testAccServiceResourceConfig(e, "Replaced", 1, `  deletion_policy = "delete"`)
			kept := testAccServiceResourceConfig(e, "Replaced", 1, "")
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: deleted},
					{
						Config: deleted,
						Taint:  []string{"psa_service.test"},
						Check: func(*terraform.State) error {
							if n := len(e.services()); n != 1 {
								return fmt.Errorf("the simulator has %d services after the replacement, want 1", n)
							}
							return nil
						},
					},
					{Config: kept},
					{
						Config:      kept,
						Taint:       []string{"psa_service.test"},
						ExpectError: regexp.MustCompile(`Value Refused by`),
					},
				},
			})
		})
	}
}

// TestAccServiceResource_lostCreate checks that a create whose answer is
// lost names the service it may have made, for an import: the resource is
// not in the state, and applying again would create a second service.
func TestAccServiceResource_lostCreate(t *testing.T) {
	t.Parallel()
	paths := map[psa.System]string{
		psa.SystemAutotask:    "/ATServicesRest/V1.0/Services",
		psa.SystemConnectWise: "/v4_6_release/apis/3.0/procurement/catalog",
		psa.SystemKaseyaBMS:   "/v2/admin/finance/services/services",
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					PreConfig: func() {
						e.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: paths[sys], DropAfterHandling: true, Times: 1})
					},
					Config:      testAccServiceResourceConfig(e, "Lost answer", 1, ""),
					ExpectError: regexp.MustCompile(`(?s)may\s+or\s+may\s+not\s+have\s+applied.*now\s+has\s+1\s+service\(s\)\s+named\s+"Lost\s+answer":\s+\d+\.\s+If\s+this\s+apply\s+created\s+one\s+of\s+them,\s+import\s+it`),
				}},
			})
		})
	}
}

// TestAccServiceResource_stateOnlyFields checks that the fields a PSA does
// not store (billing_period in ConnectWise and Kaseya BMS, and
// invoice_description in Kaseya BMS) warn when set, never show a diff and
// survive a refresh.
func TestAccServiceResource_stateOnlyFields(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			config := testAccServiceResourceConfig(e, "Microsoft 365 Business Premium", 20, `
  billing_period      = "yearly"
  invoice_description = "Microsoft 365 Business Premium, per user"
`)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config,
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("billing_period"), knownvalue.StringExact("yearly")),
							statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("invoice_description"),
								knownvalue.StringExact("Microsoft 365 Business Premium, per user")),
						},
					},
					{
						Config: config,
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
						},
					},
				},
			})
		})
	}
}

func TestStateOnlyWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		config, state types.String
		want          bool
	}{
		{"unset", types.StringNull(), types.StringNull(), false},
		{"set on create", types.StringValue("yearly"), types.StringNull(), true},
		{"unchanged", types.StringValue("yearly"), types.StringValue("yearly"), false},
		{"changed", types.StringValue("monthly"), types.StringValue("yearly"), true},
		{"unknown", types.StringUnknown(), types.StringNull(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var diags diag.Diagnostics
			stateOnlyWarning(&diags, psa.SystemKaseyaBMS, "billing_period", tc.config, tc.state, "why")
			if got := diags.WarningsCount() == 1; got != tc.want || diags.HasError() {
				t.Fatalf("diagnostics = %v, want a warning: %v", diags, tc.want)
			}
			if tc.want && !strings.Contains(diags[0].Summary(), "Kaseya BMS") {
				t.Errorf("summary = %q, want it to name Kaseya BMS", diags[0].Summary())
			}
		})
	}
}

// TestAccServiceResource_deleteInUse destroys, with deletion_policy
// "delete", a service that the PSA refuses to delete because an agreement
// addition (ConnectWise) or a contract line (Kaseya BMS) still uses it:
// the error says how to get out (another deletion_policy, or the lines
// removed), and following it destroys the service by deactivating it.
// Kaseya BMS lists a service's contract lines in one read, so there the
// plan fails, naming the contracts, before the apply deletes anything;
// ConnectWise has no such read, and its apply fails at the delete.
// Autotask cannot delete services at all (the plan refuses the policy).
func TestAccServiceResource_deleteInUse(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			var serviceID string
			config := func(policy string) string {
				return testAccServiceResourceConfig(e, "Sophos Intercept X Advanced", 4.5, fmt.Sprintf(`  deletion_policy = %q`, policy))
			}
			inUse := func() {
				if sys == psa.SystemKaseyaBMS {
					e.sim.KaseyaBMS().AddLine(int(mustID(acme.contract)), int(mustID(serviceID)), 10, time.Now())
					e.sim.KaseyaBMS().AddLine(int(mustID(acme.contract)), int(mustID(serviceID)), 12, time.Now())
					e.sim.KaseyaBMS().AddLine(int(mustID(acme.otherContract)), int(mustID(serviceID)), 3, time.Now())
					return
				}
				e.sim.ConnectWise().AddAddition(psatest.ConnectWiseAddition{
					AgreementID: mustID(acme.contract), ProductID: mustID(serviceID), Quantity: 10,
				})
			}
			inUseErr := regexp.MustCompile(`(?s)Error running destroy.*Cannot Delete PSA Service.*still\s+use\s+it.*` +
				`deletion_policy\s+to\s+"deactivate".*or\s+remove\s+the\s+service's\s+lines`)
			if sys == psa.SystemKaseyaBMS {
				inUseErr = regexp.MustCompile(fmt.Sprintf(`(?s)Error running pre-apply plan.*PSA Service Still on Contract Lines.*`+
					`refuses\s+to\s+delete\s+service\s+[0-9]+\s+while\s+contract\s+service\s+lines\s+use\s+it,\s+and\s+3\s+do\s+`+
					`\(contract\s+%s\s+"Acme\s+Managed\s+Services"\s+of\s+"Acme",\s+contract\s+%s\s+"Acme\s+Security"\s+of\s+"Acme"\).*`+
					`deletion_policy\s+to\s+"deactivate".*remove\s+the\s+service's\s+lines`, acme.contract, acme.otherContract))
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config(deletionPolicyDelete),
						Check: resource.TestCheckResourceAttrWith("psa_service.test", "id", func(v string) error {
							serviceID = v
							return nil
						}),
					},
					{
						PreConfig:   inUse,
						Config:      config(deletionPolicyDelete),
						Destroy:     true,
						ExpectError: inUseErr,
					},
					{
						Config: config(deletionPolicyDeactivate),
					},
				},
				CheckDestroy: e.checkSimService("Sophos Intercept X Advanced", func(s simService) error {
					if s.Active {
						return fmt.Errorf("service %s is still active after destroy with deletion_policy deactivate", s.ID)
					}
					return nil
				}),
			})
		})
	}
}

// TestAccServiceResource_replaceInUse: a Kaseya BMS service with
// deletion_policy = "delete" that contract lines use, replaced (here by
// replace_triggered_by; terraform apply -replace plans the same way), fails
// the plan naming the contracts, as its destroy does, instead of the apply
// failing at the delete after the plan showed a replacement. The destroy
// half uses the policy in the state: setting "deactivate" in the same plan
// still fails; applied first without the replacement, the replacement
// applies (under another name: BMS keeps the deactivated service's).
func TestAccServiceResource_replaceInUse(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemKaseyaBMS)
	acme := e.addCustomerFixture("Acme")
	var serviceID string
	config := func(rev, policy string) string {
		name := "Sophos Intercept X Advanced"
		if rev == "3" {
			name += " (2027)"
		}
		return e.providerConfig() + fmt.Sprintf(`
resource "terraform_data" "rev" {
  input = %q
}

resource "psa_service" "test" {
  name            = %q
  unit_price      = 4.5
  deletion_policy = %q
  lifecycle {
    replace_triggered_by = [terraform_data.rev]
  }
}
`, rev, name, policy)
	}
	inUse := regexp.MustCompile(fmt.Sprintf(`(?s)Error running pre-apply plan.*PSA Service Still on Contract Lines.*`+
		`refuses\s+to\s+delete\s+service\s+[0-9]+\s+while\s+contract\s+service\s+lines\s+use\s+it,\s+and\s+1\s+do\s+`+
		`\(contract\s+%s\s+"Acme\s+Managed\s+Services"\s+of\s+"Acme"\),\s+so\s+this\s+replacement,\s+which\s+deletes\s+it\s+first,.*`+
		`then\s+replace\s+it`, acme.contract))
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config("1", deletionPolicyDelete),
				Check: resource.TestCheckResourceAttrWith("psa_service.test", "id", func(v string) error {
					serviceID = v
					return nil
				}),
			},
			{
				PreConfig: func() {
					e.sim.KaseyaBMS().AddLine(int(mustID(acme.contract)), int(mustID(serviceID)), 10, time.Now())
				},
				Config:      config("2", deletionPolicyDelete),
				ExpectError: inUse,
			},
			{
				Config:      config("2", deletionPolicyDeactivate),
				ExpectError: inUse,
			},
			{
				Config: config("1", deletionPolicyDeactivate),
				Check:  resource.TestCheckResourceAttrPtr("psa_service.test", "id", &serviceID),
			},
			{
				Config: config("3", deletionPolicyDeactivate),
				Check: resource.TestCheckResourceAttrWith("psa_service.test", "id", func(v string) error {
					if v == serviceID {
						return fmt.Errorf("service %s was not replaced", v)
					}
					return nil
				}),
			},
		},
	})
}

// TestAccServiceResource_connectWiseRequiredFields: ConnectWise requires an
// identifier, a description and a customer description when it creates a
// catalog item. What the provider cannot send fails at plan time, not at
// apply time, and the identifier it derives from the name is in the plan.
func TestAccServiceResource_connectWiseRequiredFields(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:             testAccServiceResourceConfig(e, "+++", 1, ""),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ExpectError:        regexp.MustCompile(`(?s)Cannot Derive ConnectWise Identifier.*identifier\s+=`),
			},
			{
				Config:             testAccServiceResourceConfig(e, "Long text", 1, fmt.Sprintf("  invoice_description = %q\n", strings.Repeat("x", 6001))),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ExpectError:        regexp.MustCompile(`(?s)Customer Description Too Long for ConnectWise.*6001\s+characters`),
			},
			{
				Config: testAccServiceResourceConfig(e, "Bad type", 1, `
  connectwise {
    type_id = "Service"
  }
`),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ExpectError:        regexp.MustCompile(`must\s+be\s+a\s+ConnectWise\s+record\s+id`),
			},
			{
				Config: testAccServiceResourceConfig(e, "Sophos MDR (Complete)", 1, `
  connectwise {}
`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise").AtMapKey("identifier"), knownvalue.StringExact("Sophos_MDR_Complete")),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("connectwise").AtMapKey("identifier"), knownvalue.StringExact("Sophos_MDR_Complete")),
				},
			},
		},
	})
}

// TestNewServiceModel_importStateOnlyBillingPeriod imports services of the
// PSAs that do not store a billing period. The state takes the default,
// which the smallest configuration plans, even when the PSA reports a
// period of its own (a ConnectWise catalog item's recurring bill cycle).
func TestNewServiceModel_importStateOnlyBillingPeriod(t *testing.T) {
	t.Parallel()
	for sys, support := range serviceSupports {
		if support.billingPeriod {
			continue
		}
		for _, period := range []psa.BillingPeriod{"", psa.BillingPeriodYearly} {
			t.Run(string(sys)+"/"+string(period), func(t *testing.T) {
				t.Parallel()
				imported := serviceResourceModel{ID: types.StringValue("700")}
				svc := &psa.Service{ID: "700", Name: "Datto SaaS Protection", UnitPrice: 3, BillingPeriod: period, Active: true}
				m, diags := newServiceModel(t.Context(), sys, svc, imported)
				if diags.HasError() {
					t.Fatal(diags)
				}
				if got := m.BillingPeriod.ValueString(); got != string(psa.BillingPeriodMonthly) {
					t.Errorf("billing_period after import = %q, want %q, the default", got, psa.BillingPeriodMonthly)
				}
			})
		}
	}
}

// TestAccServiceResource_destroyStillMapped destroys a psa_service that a
// product mapping which stays still refers to, by a literal id and through
// data.psa_service (no reference Terraform orders the destroy by): the plan
// must fail, and the service stay as it is, rather than leave the export
// billing the product on a service that is inactive (deactivate) or gone
// (delete). A mapping the plan does not see (another configuration's,
// here written to the export directly) fails the apply's destroy instead.
// Once the mappings are gone, the destroy goes ahead.
func TestAccServiceResource_destroyStillMapped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		system psa.System
		policy string
	}{
		{psa.SystemAutotask, deletionPolicyDeactivate},
		{psa.SystemKaseyaBMS, deletionPolicyDelete},
	} {
		t.Run(string(tc.system), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, tc.system)
			const name = "Sophos Intercept X Advanced"
			serviceID := e.addService(name, 4.5)
			service := fmt.Sprintf(`
import {
  to = psa_service.s
  id = %[1]q
}

resource "psa_service" "s" {
  name            = %[2]q
  unit_price      = 4.5
  deletion_policy = %[3]q
}
`, serviceID, name, tc.policy)
			byID := fmt.Sprintf(`
resource "psa_product_mapping" "p" {
  product    = "CIXA-MSP"
  service_id = %[1]q
}
`, serviceID)
			byName := fmt.Sprintf(`
data "psa_service" "by_name" {
  name = %[1]q
}

resource "psa_product_mapping" "p" {
  product    = "CIXA-MSP"
  service_id = data.psa_service.by_name.id
}
`, name)
			stillThere := func() {
				s, err := e.simService(name)
				if err != nil {
					t.Fatal(err)
				}
				if !s.Active {
					t.Errorf("service %s is inactive after the refused destroy", s.ID)
				}
			}
			other := export.ProductMapping{Source: "passwordboss", Product: "PB-USERS", ServiceID: serviceID, ServiceName: name, SyncEnabled: true}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: e.providerConfig() + service + byID},
					{
						Config:      e.providerConfig() + byID,
						ExpectError: regexp.MustCompile(`(?s)PSA Service Still Mapped.*sophos/CIXA-MSP`),
					},
					{PreConfig: stillThere, Config: e.providerConfig() + service + byName},
					{
						Config:      e.providerConfig() + byName,
						ExpectError: regexp.MustCompile(`(?s)PSA Service Still Mapped.*sophos/CIXA-MSP`),
					},
					{PreConfig: stillThere, Config: e.providerConfig() + service},
					{
						PreConfig: func() {
							e.updateExport(t, func(doc *export.Document) error {
								doc.PutProduct(other)
								return nil
							})
						},
						Config: e.providerConfig(),
						ExpectError: regexp.MustCompile(`(?s)PSA Service Still Mapped.*Service\s+` + serviceID +
							`\s+is\s+still\s+mapped\s+by\s+the\s+mapping\s+export.*passwordboss/PB-USERS`),
					},
					{
						PreConfig: func() {
							stillThere()
							e.updateExport(t, func(doc *export.Document) error {
								doc.DeleteProduct(other.Source, other.Product)
								return nil
							})
						},
						Config: e.providerConfig(),
						Check: func(*terraform.State) error {
							if s, err := e.simService(name); err == nil && s.Active {
								return fmt.Errorf("service %s is still active after its destroy (deletion_policy %q)", s.ID, tc.policy)
							}
							return nil
						},
					},
				},
			})
		})
	}
}

// TestAccServiceResource_nameTwice checks that two psa_service resources
// of one configuration that would create services of one name (case and
// surrounding spaces aside, as the PSAs compare them) fail the plan on
// every PSA, before either is created: Autotask and Kaseya BMS would
// refuse the second create after the first was made (a partial apply),
// and ConnectWise would make two catalog items of one name. A rename onto
// the name a new service takes fails the same way. A service planned twice
// by Terraform (a replacement, here a taint, that renames it) and one
// created by the plan then planned again by the apply do not collide with
// themselves, and on ConnectWise two items that each set their own
// product id only warn, as a name in use does.
func TestAccServiceResource_nameTwice(t *testing.T) {
	t.Parallel()
	two := func(e *testEnv, a, b, trigger string) string {
		return e.providerConfig() + fmt.Sprintf(`
resource "terraform_data" "trigger" {
  input = %[3]q
}

resource "psa_service" "a" {
  name       = %[1]q
  unit_price = 1
  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
  }
}

resource "psa_service" "b" {
  name       = %[2]q
  unit_price = 2
}
`, a, b, trigger)
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			twice := func(name string) *regexp.Regexp {
				return regexp.MustCompile(`(?s)Service Name Used Twice.*with psa_service\.[ab].*Another\s+psa_service\s+of\s+this\s+configuration.*` +
					name + `.*Give\s+one\s+of\s+them\s+another\s+name`)
			}
			count := func(want int) resource.TestCheckFunc {
				return func(*terraform.State) error {
					if n := len(e.services()); n != want {
						return fmt.Errorf("the simulator has %d services, want %d", n, want)
					}
					return nil
				}
			}
			steps := []resource.TestStep{
				{
					Config:      two(e, "Backup", " BACKUP ", "1"),
					PlanOnly:    true,
					ExpectError: twice(`(?i)"\s*backup\s*"`),
				},
				{
					// Created by the plan, and planned again by the apply.
					Config: two(e, "Backup", "Mail", "1"),
					Check:  count(2),
				},
				{
					Config:      two(e, "Archive", "archive", "1"),
					PlanOnly:    true,
					ExpectError: twice(`(?i)"archive"`),
				},
				{
					// A replacement that renames: planned with the state,
					// then again as a create.
					Config: two(e, "Offsite Backup", "Mail", "2"),
					ConfigPlanChecks: resource.ConfigPlanChecks{
						PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("psa_service.a", plancheck.ResourceActionReplace)},
					},
					Check: count(3),
				},
			}
			if sys == psa.SystemConnectWise {
				steps = append(steps, resource.TestStep{
					Config: two(e, "Offsite Backup", "Mail", "2") + `
resource "psa_service" "c" {
  name       = "Archive"
  unit_price = 3
  connectwise {
    identifier = "ARC-1"
  }
}

resource "psa_service" "d" {
  name       = "archive"
  unit_price = 3
  connectwise {
    identifier = "ARC-2"
  }
}
`,
					Check: count(5),
				})
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps:                    steps,
			})
		})
	}
}

// TestAccServiceResource_nameHeldByRenamed checks the plan error of a name
// that another service of the configuration holds and is renamed away from
// in the same plan: two services swapping names, and a new service taking
// a renamed one's old name. The PSA holds the name until that rename is
// applied and Terraform does not order the two, so the plan fails, and the
// error says to apply the rename first (through a temporary name for a
// swap) rather than to import the service or add a moved block, which
// fits neither; applied in that order, the changes go through. ConnectWise
// holds two catalog items of one name (the product id is its key, kept
// when an item is renamed: service a sets its own, so that c's derived one
// is free): a swap goes through there, and only the new item is checked.
func TestAccServiceResource_nameHeldByRenamed(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			aBlock := ""
			if sys == psa.SystemConnectWise {
				aBlock = "  connectwise {\n    identifier = \"A-1\"\n  }\n"
			}
			config := func(a, b, c string) string {
				s := e.providerConfig() + fmt.Sprintf(`
resource "psa_service" "a" {
  name       = %q
  unit_price = 1
%s}

resource "psa_service" "b" {
  name       = %q
  unit_price = 2
}
`, a, aBlock, b)
				if c != "" {
					s += fmt.Sprintf(`
resource "psa_service" "c" {
  name       = %q
  unit_price = 3
}
`, c)
				}
				return s
			}
			count := func(want int) resource.TestCheckFunc {
				return func(*terraform.State) error {
					if n := len(e.services()); n != want {
						return fmt.Errorf("the simulator has %d services, want %d", n, want)
					}
					return nil
				}
			}
			swapped := regexp.MustCompile(`(?s)with psa_service\.[ab].*renames\s+service\s+\d+\s+away\s+from\s+this\s+name\s+in\s+this\s+plan\s+\(the\s+two\s+swap\s+names\).*` +
				`each\s+in\s+an\s+apply\s+of\s+its\s+own,\s+through\s+a\s+temporary\s+name`)
			steps := []resource.TestStep{
				{Config: config("Alpha", "Beta", ""), Check: count(2)},
				{Config: config("Beta", "Alpha", ""), PlanOnly: true, ExpectError: swapped},
			}
			if sys == psa.SystemConnectWise {
				steps = []resource.TestStep{
					{Config: config("Alpha", "Beta", ""), Check: count(2)},
					{Config: config("Beta", "Alpha", ""), Check: count(2)},
					{Config: config("Alpha", "Beta", ""), Check: count(2)},
				}
			}
			steps = append(steps,
				resource.TestStep{
					Config:   config("Gamma", "Beta", "Alpha"),
					PlanOnly: true,
					ExpectError: regexp.MustCompile(`(?s)with psa_service\.c.*renames\s+service\s+\d+\s+away\s+from\s+this\s+name\s+in\s+this\s+plan.*` +
						`apply\s+the\s+rename\s+on\s+its\s+own\s+first.*-target=<that\s+resource's\s+address>.*second\s+apply`),
				},
				// As the error says: the rename first, then the create.
				resource.TestStep{Config: config("Gamma", "Beta", ""), Check: count(2)},
				resource.TestStep{Config: config("Gamma", "Beta", "Alpha"), Check: count(3)},
			)
			if sys != psa.SystemConnectWise {
				// A swap as the error says: through a temporary name.
				steps = append(steps,
					resource.TestStep{Config: config("Beta", "Gamma", "Alpha"), PlanOnly: true, ExpectError: swapped},
					resource.TestStep{Config: config("Temp", "Beta", "Alpha")},
					resource.TestStep{Config: config("Temp", "Gamma", "Alpha")},
					resource.TestStep{Config: config("Beta", "Gamma", "Alpha"), Check: count(3)},
				)
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps:                    steps,
			})
		})
	}
}

// TestAccServiceResource_autotaskTextLengths checks that a description or
// invoice description longer than the tenant's Services metadata allows
// (400 and 1000 characters in the simulator, as in Autotask) fails the
// plan on that attribute, for a new service and for an update that
// changes only that text, instead of the apply's create or update.
func TestAccServiceResource_autotaskTextLengths(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	text := func(attr string, n int) string { return fmt.Sprintf("  %s = %q\n", attr, strings.Repeat("x", n)) }
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      testAccServiceResourceConfig(e, "Long notes", 1, text("description", 401)),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Value Refused by Autotask.*with psa_service.test.*\bdescription\b.*401\s+characters\s+long\s+as\s+Autotask\s+counts\s+them\s+\(an\s+emoji\s+counts\s+two\);\s+Autotask\s+holds\s+at\s+most\s+400`),
			},
			{
				Config: testAccServiceResourceConfig(e, "Long notes", 1, text("description", 400)+text("invoice_description", 1000)),
			},
			{
				Config:      testAccServiceResourceConfig(e, "Long notes", 1, text("description", 400)+text("invoice_description", 1001)),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Value Refused by Autotask.*with psa_service.test.*\binvoice_description\b.*1001\s+characters\s+long\s+as\s+Autotask\s+counts\s+them\s+\(an\s+emoji\s+counts\s+two\);\s+Autotask\s+holds\s+at\s+most\s+1000`),
			},
		},
	})
}

// TestAccServiceResource_connectWiseUnknownTypeFailsPlan: a
// connectwise.type_id or subcategory_id that this ConnectWise does not
// have (one of another tenant, a sandbox's) fails the plan on the
// attribute, naming the ids ConnectWise has, where ConnectWise used to
// refuse the catalog item's create or update at apply; a create and an
// update are checked, and each list is read once per provider process
// (Terraform runs one for the plan and one for the apply), only by plans
// that set its id.
func TestAccServiceResource_connectWiseUnknownTypeFailsPlan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise)
	config := func(block string) string {
		return testAccServiceResourceConfig(e, "Sophos MDR", 12, "  connectwise {\n"+block+"  }\n")
	}
	var reads int
	listReads := func(path string) int {
		n := 0
		for _, r := range e.sim.Requests() {
			if r.Method == http.MethodGet && strings.HasSuffix(r.Path, path) {
				n++
			}
		}
		return n
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config("    type_id = \"99\"\n"),
				ExpectError: regexp.MustCompile(`(?s)Value Refused by ConnectWise.*with psa_service.test.*type_id\s+=\s+"99".*` +
					`type_id\s+99\s+does\s+not\s+exist.*procurement/types\s+lists\s+1\s+\(Service\),\s+2\s+\(Software\),\s+3\s+\(Hardware\)`),
			},
			{
				Config: config("    subcategory_id = \"42\"\n"),
				ExpectError: regexp.MustCompile(`(?s)Value Refused by ConnectWise.*subcategory_id\s+=\s+"42".*` +
					`subcategory_id\s+42\s+does\s+not\s+exist.*procurement/subcategories\s+lists\s+1\s+\(Managed\s+Services\)`),
			},
			{
				PreConfig: func() {
					if len(e.services()) != 0 {
						t.Errorf("the refused plans created %v", e.services())
					}
				},
				Config: config("    type_id        = \"1\"\n    subcategory_id = \"2\"\n"),
				Check:  resource.TestCheckResourceAttr("psa_service.test", "connectwise.type_id", "1"),
			},
			{
				PreConfig: func() { e.sim.ConnectWise().AddProductType(7, "Cloud") },
				Config:    config("    type_id        = \"7\"\n    subcategory_id = \"2\"\n"),
				Check:     resource.TestCheckResourceAttr("psa_service.test", "connectwise.type_id", "7"),
			},
			{
				Config:      config("    type_id        = \"99\"\n    subcategory_id = \"2\"\n"),
				ExpectError: regexp.MustCompile(`(?s)Value Refused by ConnectWise.*type_id\s+99\s+does\s+not\s+exist.*7\s+\(Cloud\)`),
			},
			{
				// A plan that changes nothing reads neither list.
				PreConfig: func() { reads = listReads("procurement/types") + listReads("procurement/subcategories") },
				Config:    config("    type_id        = \"7\"\n    subcategory_id = \"2\"\n"),
				Check: func(*terraform.State) error {
					if n := listReads("procurement/types") + listReads("procurement/subcategories"); n != reads {
						return fmt.Errorf("a plan without changes read procurement/types or procurement/subcategories %d times", n-reads)
					}
					return nil
				},
			},
		},
	})
}

// TestAccServiceResource_autotaskBudget: with Autotask's hourly budget
// below the default budget_reserve (another integration spent it), a plan that
// writes a service fails before the apply sends anything, where the apply
// ran and Autotask could refuse it midway once the budget ran out; once
// requests have freed up it applies, and a plan that writes nothing does
// not read the budget.
func TestAccServiceResource_autotaskBudget(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	at := e.sim.Autotask()
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() { at.SetHourlyCount(10_000 - 400) },
				Config:    testAccServiceResourceConfig(e, "Backup", 1, ""),
				ExpectError: regexp.MustCompile(`(?s)Autotask API Budget Too Small for This Apply.*with psa_service.test.*` +
					`\(1\s+psa_service\)\s+send\s+about\s+10\s+requests.*has\s+\d{3}\s+of\s+its\s+10000\s+requests\s+left` +
					`.*budget_reserve\s+keeps\s+500`),
			},
			{
				PreConfig: func() {
					for _, r := range e.sim.Requests() {
						if r.Method == http.MethodPost && r.Path == "/ATServicesRest/V1.0/Services" {
							t.Errorf("the refused plan's apply created a service")
						}
					}
					at.SetHourlyCount(0)
				},
				Config: testAccServiceResourceConfig(e, "Backup", 1, ""),
				Check:  e.checkSimService("Backup", func(simService) error { return nil }),
			},
			{
				// Ten requests left: a plan that read the budget would fail.
				PreConfig: func() { at.SetHourlyCount(10_000 - 10) },
				Config:    testAccServiceResourceConfig(e, "Backup", 1, ""),
				PlanOnly:  true,
			},
			{
				// The destroy after the test deactivates the service.
				PreConfig: func() { at.SetHourlyCount(0) },
				Config:    testAccServiceResourceConfig(e, "Backup", 1, ""),
				PlanOnly:  true,
			},
		},
	})
}

// TestAccServiceResource_priceChangeWarns: a plan that changes an existing
// service's unit_price reads as a new price on every invoice of the
// service, but the lines on customers' contracts keep their own price (the
// one they were added at, on Kaseya BMS the one they were last posted at).
// The plan warns on unit_price, in the PSA's words, and says where each
// line's price is listed; a create, or a plan that changes only the name,
// warns nothing.
func TestAccServiceResource_priceChangeWarns(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			var w planWarnings
			const summary = summaryPriceKeptOnLines
			kept := map[psa.System]string{
				psa.SystemAutotask:    "Autotask's contract services (the service's lines on customers' contracts) keep the unit price they were added at",
				psa.SystemConnectWise: "ConnectWise PSA's agreement additions (the service's lines on customers' agreements) keep the unit price they were added at",
				psa.SystemKaseyaBMS:   "Kaseya BMS's contract lines keep the price they were posted at",
			}[sys]
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: w.factories(),
				Steps: []resource.TestStep{
					{
						Config: testAccServiceResourceConfig(e, "Sophos MDR", 12, ""),
						Check:  expectPlanWarnings(&w, summary, 0, "", ""),
					},
					{
						PreConfig: func() { w.take("") },
						Config:    testAccServiceResourceConfig(e, "Sophos MDR", 12.5, ""),
						Check: expectPlanWarnings(&w, summary, 1, "psa_service", "unit_price",
							"changes from 12 to 12.5", kept, "repriced in "+systemTitle(sys), "psa-syncd plan -terraform-plan"),
					},
					{
						PreConfig: func() { w.take("") },
						Config:    testAccServiceResourceConfig(e, "Sophos MDR (per user)", 12.5, ""),
						Check:     expectPlanWarnings(&w, summary, 0, "", ""),
					},
				},
			})
		})
	}
}
