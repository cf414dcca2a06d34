package provider

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

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
func (e *testEnv) simService(name string) (psatest.AutotaskService, error) {
	var found []psatest.AutotaskService
	for _, s := range e.sim.Autotask().Services() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return psatest.AutotaskService{}, fmt.Errorf("simulator has %d services named %q, want 1", len(found), name)
	}
	return found[0], nil
}

func (e *testEnv) checkSimService(name string, fn func(psatest.AutotaskService) error) resource.TestCheckFunc {
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
	e := newTestEnv(t)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: testAccServiceResourceConfig(e, "Sophos Intercept X Advanced", 4.5, `
  description         = "Endpoint protection"
  invoice_description = "Sophos Intercept X Advanced, per user"
  unit_cost           = 2.25
  billing_period      = "monthly"
`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("name"), knownvalue.StringExact("Sophos Intercept X Advanced")),
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("unit_price"), knownvalue.Float64Exact(4.5)),
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("unit_cost"), knownvalue.Float64Exact(2.25)),
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("active"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("deletion_policy"), knownvalue.StringExact("deactivate")),
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("autotask"), knownvalue.Null()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrSet("psa_service.test", "id"),
					e.checkSimService("Sophos Intercept X Advanced", func(s psatest.AutotaskService) error {
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
}

func TestAccServiceResource_update(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: testAccServiceResourceConfig(e, "Password Boss", 2, `  autotask {}`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("autotask").AtMapKey("billing_code_id"), knownvalue.NotNull()),
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("autotask").AtMapKey("period_type"), knownvalue.StringExact("Monthly")),
				},
			},
			{
				Config: testAccServiceResourceConfig(e, "Password Boss Business", 2.75, `
  description     = "Password manager"
  billing_period  = "yearly"
  active          = false
  deletion_policy = "abandon"

  autotask {}
`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("psa_service.test", plancheck.ResourceActionUpdate),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("billing_period"), knownvalue.StringExact("yearly")),
					// The derived period type label follows the billing period.
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("autotask").AtMapKey("period_type"), knownvalue.StringExact("Yearly")),
					statecheck.ExpectKnownValue("psa_service.test", tfjsonpath.New("active"), knownvalue.Bool(false)),
				},
				Check: e.checkSimService("Password Boss Business", func(s psatest.AutotaskService) error {
					if s.UnitPrice != 2.75 || s.Active || s.PeriodType != "Yearly" {
						return fmt.Errorf("simulator service = %+v, want price 2.75, inactive, Yearly", s)
					}
					return nil
				}),
			},
		},
		// abandon leaves the service as it was.
		CheckDestroy: e.checkSimService("Password Boss Business", func(s psatest.AutotaskService) error {
			if s.Active || s.UnitPrice != 2.75 {
				return fmt.Errorf("abandoned service changed: %+v", s)
			}
			return nil
		}),
	})
}

func TestAccServiceResource_disappears(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
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
				PreConfig: func() {
					id, err := strconv.ParseInt(firstID, 10, 64)
					if err != nil {
						t.Fatalf("service id %q: %v", firstID, err)
					}
					e.sim.Autotask().DeleteService(id)
				},
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
}

// TestAccServiceResource_deletionPolicy destroys one service per policy that
// Autotask supports and checks what is left in the PSA.
func TestAccServiceResource_deletionPolicy(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: e.providerConfig() + `
resource "psa_service" "deactivate" {
  name       = "Deactivated on destroy"
  unit_price = 1
}

resource "psa_service" "abandon" {
  name            = "Abandoned on destroy"
  unit_price      = 1
  deletion_policy = "abandon"
}
`,
			},
		},
		CheckDestroy: resource.ComposeAggregateTestCheckFunc(
			e.checkSimService("Deactivated on destroy", func(s psatest.AutotaskService) error {
				if s.Active {
					return fmt.Errorf("service %d is still active after destroy with deletion_policy deactivate", s.ID)
				}
				return nil
			}),
			e.checkSimService("Abandoned on destroy", func(s psatest.AutotaskService) error {
				if !s.Active {
					return fmt.Errorf("service %d was deactivated despite deletion_policy abandon", s.ID)
				}
				return nil
			}),
		),
	})
}

func TestAccServiceResource_invalid(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      testAccServiceResourceConfig(e, "Never deletable", 1, `  deletion_policy = "delete"`),
				ExpectError: regexp.MustCompile(`(?s)Unsupported Deletion Policy.*Autotask\s+cannot\s+delete\s+services`),
			},
			{
				Config: testAccServiceResourceConfig(e, "Conflicting period", 1, `
  autotask {
    period_type = "Yearly"
  }
`),
				ExpectError: regexp.MustCompile(`(?s)Conflicting Billing Period.*billing_period\s+=\s+"yearly"`),
			},
			{
				Config:      testAccServiceResourceConfig(e, "Bad period", 1, `  billing_period = "weekly"`),
				ExpectError: regexp.MustCompile(`billing_period\s+value\s+must\s+be\s+one\s+of`),
			},
		},
	})
}
