package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestAutotaskApplyReads: the reads the budget check counts for an apply
// are those TestAccApply_requests allows an Autotask plan and apply (two
// provider processes, each reading everything once) besides the creates.
func TestAutotaskApplyReads(t *testing.T) {
	t.Parallel()
	limits := 0
	for route, n := range applyRequestLimits[psa.SystemAutotask] {
		if route != "POST /ATServicesRest/V1.0/Services" {
			limits += n
		}
	}
	if got := autotaskApplyReadTotal(); 2*got != limits {
		t.Errorf("autotaskApplyReads adds up to %d requests per process, applyRequestLimits to %d for two", got, limits)
	}
	for _, c := range []applyCost{costServiceCreate, costServiceUpdate, costServiceDestroy, costProductMapping, costCustomerMapping} {
		for _, r := range c.reads {
			if _, ok := autotaskApplyReads[r]; !ok {
				t.Errorf("applyCost %+v reads %q, which autotaskApplyReads does not list", c, r)
			}
		}
	}
}

// TestAccApply_autotaskBudget: a budget_reserve out of Autotask's 10,000
// requests fails the plan; a plan fails when the requests its apply
// sends to Autotask do not fit in what the hourly budget has left above
// budget_reserve: a service below the default reserve of 500, which
// budget_reserve lowers; a customer mapping alone, whose apply reads its
// contract and company, where such a plan read no budget; and many
// services with more than the reserve left but less than they need, where
// only the reserve was checked and the apply could be refused midway.
func TestAccApply_autotaskBudget(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	at := e.sim.Autotask()
	acme := e.addCustomerFixture("Acme")
	config := func(reserve string, mapping bool, services int) string {
		c := e.providerConfig()
		if reserve != "" {
			c = strings.Replace(c, "  autotask {\n", "  autotask {\n    budget_reserve = "+reserve+"\n", 1)
		}
		c += `
resource "psa_service" "test" {
  name       = "Backup"
  unit_price = 1
}
`
		if mapping {
			c += fmt.Sprintf(`
resource "psa_customer_mapping" "acme" {
  customer_id = "cust-1"
  company_id  = %q
  contract_id = %q
}
`, acme.company, acme.contract)
		}
		if services > 0 {
			c += fmt.Sprintf(`
resource "psa_service" "more" {
  count      = %d
  name       = "Backup ${count.index}"
  unit_price = 1
}
`, services)
		}
		return c
	}
	tooSmall := func(changes string, reserve int) *regexp.Regexp {
		return regexp.MustCompile(`(?s)Autotask API Budget Too Small for This Apply.*\(` + changes + `\)\s+send\s+about\s+\d+\s+requests` +
			fmt.Sprintf(`.*budget_reserve\s+keeps\s+%d.*Plan\s+and\s+apply\s+again\s+once\s+requests\s+have\s+freed`, reserve))
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      config("-1", false, 0),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)autotask.budget_reserve\s+value\s+must\s+be\s+between\s+0\s+and\s+10000,\s+got:\s+-1`),
			},
			{
				PreConfig:   func() { at.SetHourlyCount(10_000 - 400) },
				Config:      config("", false, 0),
				ExpectError: tooSmall(`1\s+psa_service`, 500),
			},
			{
				// 300 requests above a reserve of 100.
				Config: config("100", false, 0),
				Check:  e.checkSimService("Backup", func(simService) error { return nil }),
			},
			{
				PreConfig:   func() { at.SetHourlyCount(10_000 - 505) },
				Config:      config("", true, 0),
				ExpectError: tooSmall(`1\s+psa_customer_mapping`, 500),
			},
			{
				// 30 requests above the reserve, fewer than 30 services
				// and a mapping need.
				PreConfig:   func() { at.SetHourlyCount(10_000 - 530) },
				Config:      config("", true, 30),
				ExpectError: tooSmall(`(\d+\s+psa_customer_mapping,\s+)?\d+\s+psa_service`, 500),
			},
			{
				PreConfig: func() { at.SetHourlyCount(0) },
				Config:    config("", true, 0),
				Check: e.checkExport(customerMappingIs(export.CustomerMapping{
					Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true,
				})),
			},
		},
	})
}

// spendBudgetBeforeApply is a pre-apply plan check that sets the requests
// Autotask counts in the rolling hour, as psa-syncd or another tool
// spending requests between a plan and its apply would.
type spendBudgetBeforeApply struct {
	at    *psatest.Autotask
	count int
}

func (c spendBudgetBeforeApply) CheckPlan(context.Context, plancheck.CheckPlanRequest, *plancheck.CheckPlanResponse) {
	c.at.SetHourlyCount(c.count)
}

// TestAccApply_autotaskBudgetApplying: the plan counts its own reads as
// well as the apply's, so a plan whose apply would find less left than the
// plan did fails at plan time; and once an apply has written, the plans it
// makes again of the later changes no longer fail on the budget, which
// stopped it midway when something spent requests between plan and apply.
func TestAccApply_autotaskBudgetApplying(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	at := e.sim.Autotask()
	acme := e.addCustomerFixture("Acme")
	oneService := e.providerConfig() + `
resource "psa_service" "a" {
  name       = "Backup"
  unit_price = 1
}
`
	// A mapping, then three services, each planned again at apply once
	// the one before is applied.
	chain := e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "acme" {
  customer_id = "cust-1"
  company_id  = %q
  contract_id = %q
}

resource "psa_service" "a" {
  name       = "Backup"
  unit_price = 1
  depends_on = [psa_customer_mapping.acme]
}

resource "psa_service" "b" {
  name       = "Email"
  unit_price = 1
  depends_on = [psa_service.a]
}

resource "psa_service" "c" {
  name       = "Endpoint"
  unit_price = 1
  depends_on = [psa_service.b]
}
`, acme.company, acme.contract)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				// 8 above the reserve: the apply of one service sends 6
				// (the budget, the services and the billing codes, the
				// create), the plan reads 4 more after the budget.
				PreConfig:   func() { at.SetHourlyCount(10_000 - 500 - 8) },
				Config:      oneService,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Autotask API Budget Too Small for This Apply.*\(1\s+psa_service\)\s+send\s+about\s+10\s+requests`),
			},
			{
				// The apply reads a budget with 13 left above the reserve
				// (its reads of the mapping's contract and company before
				// it, and its own read of it, count): the mapping's first plan at
				// apply counts 13 (its reads, the plan's again), the
				// services' 12, 13 and 14, after the mapping and the first
				// two are applied.
				PreConfig: func() { at.SetHourlyCount(0) },
				Config:    chain,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{spendBudgetBeforeApply{at, 10_000 - 500 - 13 - 4}},
				},
				Check: resource.ComposeTestCheckFunc(
					e.checkSimService("Endpoint", func(simService) error { return nil }),
					e.checkExport(customerMappingIs(export.CustomerMapping{
						Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true,
					})),
				),
			},
			{
				// The budget back for the destroy at the end.
				PreConfig: func() { at.SetHourlyCount(0) },
				Config:    chain,
			},
		},
	})
}

// TestAccApply_autotaskBudgetLargeTenant: the budget check counts the
// requests the plan's reads of a large tenant's lists took, where it
// counted those of a small one. Twelve new customer mappings make the plan
// list the tenant's 2,400 active contracts (see listAfter), five requests
// rather than one, and then their companies: more than the 16 left above
// the reserve once the plan has read the contracts and companies of the
// first ten, which the 13 requests of a small tenant's reads fit in.
func TestAccApply_autotaskBudgetLargeTenant(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	at := e.sim.Autotask()
	config := e.providerConfig()
	for i := range 1200 {
		c := e.addCustomerFixture(fmt.Sprintf("Customer %d", i))
		if i < 12 {
			config += fmt.Sprintf(`
resource "psa_customer_mapping" "c%[1]d" {
  customer_id = "cust-%[1]d"
  company_id  = %[2]q
  contract_id = %[3]q
}
`, i, c.company, c.contract)
		}
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig:   func() { at.SetHourlyCount(10_000 - 500 - 20) },
				Config:      config,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Autotask API Budget Too Small for This Apply.*\(\d+\s+psa_customer_mapping\)\s+send\s+about\s+\d\d+\s+requests`),
			},
		},
	})
}
