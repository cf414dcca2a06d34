package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestAccCompanyDataSource(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCompany("Acme Corp")
			e.addCompany("Globex")
			e.addCompany("Globex")

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: e.providerConfig() + `
data "psa_company" "test" {
  name = "ACME CORP"
}
`,
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("data.psa_company.test", tfjsonpath.New("id"), knownvalue.StringExact(acme)),
							statecheck.ExpectKnownValue("data.psa_company.test", tfjsonpath.New("active"), knownvalue.Bool(true)),
						},
					},
					{
						Config: e.providerConfig() + `
data "psa_company" "test" {
  name = "Globex"
}
`,
						ExpectError: regexp.MustCompile(`(?s)Ambiguous PSA Company Name.*2\s+matches:\s+"Globex" \(id \d+\),\s+"Globex"\s+\(id \d+\)`),
					},
					{
						Config: e.providerConfig() + `
data "psa_company" "test" {
  name = "Initech"
}
`,
						ExpectError: regexp.MustCompile(`(?s)PSA Company Not Found.*No\s+company\s+with\s+name\s+"Initech"`),
					},
				},
			})
		})
	}
}

func TestAccContractDataSource(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			c := e.addCompany("Acme Corp")
			managed := e.addContract(c, "Managed Services", contractRecurring)
			ended := e.addContract(c, "Old Services", contractInactive)
			e.addContract(c, "Projects", contractOther)
			e.addContract(c, "Twice", contractRecurring)
			e.addContract(c, "Twice", contractRecurring)

			config := func(body string) string {
				return e.providerConfig() + `
data "psa_contract" "test" {
  company_id = "` + c + `"
` + body + `
}
`
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config(`  name = "managed services"`),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("id"), knownvalue.StringExact(managed)),
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("type"), knownvalue.StringExact(e.recurringContractType())),
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("active"), knownvalue.Bool(true)),
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("recurring"), knownvalue.Bool(true)),
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("start_date"), knownvalue.StringRegexp(regexp.MustCompile(`^\d{4}-01-01$`))),
						},
					},
					{
						Config:      config(`  name = "Old Services"`),
						ExpectError: regexp.MustCompile(`(?s)PSA Contract Not Found.*Only\s+active\s+recurring-service\s+contracts\s+were\s+searched`),
					},
					{
						Config: config(`
  name             = "Old Services"
  include_inactive = true
`),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("id"), knownvalue.StringExact(ended)),
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("active"), knownvalue.Bool(false)),
						},
					},
					{
						Config:      config(`  name = "Projects"`),
						ExpectError: regexp.MustCompile(`PSA Contract Not Found`),
					},
					{
						Config: config(`
  name     = "Projects"
  any_type = true
`),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("type"), knownvalue.StringExact(e.otherContractType())),
							statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("recurring"), knownvalue.Bool(false)),
						},
					},
					{
						Config:      config(`  name = "Twice"`),
						ExpectError: regexp.MustCompile(`(?s)Ambiguous PSA Contract Name.*is\s+ambiguous:\s+2\s+matches`),
					},
				},
			})
		})
	}
}

func TestAccServiceDataSource(t *testing.T) {
	t.Parallel()
	// What each PSA adds to the neutral fields.
	own := map[psa.System][]statecheck.StateCheck{
		psa.SystemAutotask: {
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("billing_period"), knownvalue.StringExact("monthly")),
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("autotask").AtMapKey("period_type"), knownvalue.StringExact("Monthly")),
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("connectwise"), knownvalue.Null()),
		},
		psa.SystemConnectWise: {
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("connectwise").AtMapKey("identifier"),
				knownvalue.StringExact("Sophos_Intercept_X_Advanced")),
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("connectwise").AtMapKey("product_class"),
				knownvalue.StringExact("NonInventory")),
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("autotask"), knownvalue.Null()),
		},
		psa.SystemKaseyaBMS: {
			// BMS services have no billing period.
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("billing_period"), knownvalue.StringExact("")),
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("kaseya_bms").AtMapKey("taxable"), knownvalue.Bool(false)),
			statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("autotask"), knownvalue.Null()),
		},
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			svc := e.addService("Sophos Intercept X Advanced", 4.5)
			e.addService("Backup", 1)
			e.addService("backup", 2)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: e.providerConfig() + `
data "psa_service" "test" {
  name = "Sophos Intercept X Advanced"
}
`,
						ConfigStateChecks: append([]statecheck.StateCheck{
							statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("id"), knownvalue.StringExact(svc)),
							statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("unit_price"), knownvalue.Float64Exact(4.5)),
							statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("active"), knownvalue.Bool(true)),
						}, own[sys]...),
					},
					{
						Config: e.providerConfig() + `
data "psa_service" "test" {
  name = "Backup"
}
`,
						ExpectError: regexp.MustCompile(`(?s)Ambiguous PSA Service Name.*"Backup" \(id \d+\),\s+"backup"\s+\(id \d+\)`),
					},
					{
						Config: e.providerConfig() + `
data "psa_service" "test" {
  name = "Nonexistent"
}
`,
						ExpectError: regexp.MustCompile(`(?s)PSA Service Not Found.*"Nonexistent"`),
					},
				},
			})
		})
	}
}
