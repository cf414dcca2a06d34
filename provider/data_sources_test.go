package provider

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func TestAccCompanyDataSource(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	at := e.sim.Autotask()
	acme := at.AddCompany("Acme Corp")
	at.AddCompany("Globex")
	at.AddCompany("Globex")

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
					statecheck.ExpectKnownValue("data.psa_company.test", tfjsonpath.New("id"), knownvalue.StringExact(id(acme))),
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
}

func TestAccContractDataSource(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	at := e.sim.Autotask()
	company := at.AddCompany("Acme Corp")
	c := id(company)
	managed := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed Services"})
	ended := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Old Services", Status: "Inactive"})
	at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Projects", Type: "Fixed Price"})
	at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Twice"})
	at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Twice"})

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
					statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("id"), knownvalue.StringExact(id(managed))),
					statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("type"), knownvalue.StringExact("Recurring Service")),
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
					statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("id"), knownvalue.StringExact(id(ended))),
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
					statecheck.ExpectKnownValue("data.psa_contract.test", tfjsonpath.New("recurring"), knownvalue.Bool(false)),
				},
			},
			{
				Config:      config(`  name = "Twice"`),
				ExpectError: regexp.MustCompile(`(?s)Ambiguous PSA Contract Name.*is\s+ambiguous:\s+2\s+matches`),
			},
		},
	})
}

func TestAccServiceDataSource(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	at := e.sim.Autotask()
	svc := at.AddService("Sophos Intercept X Advanced", 4.5)
	at.AddService("Backup", 1)
	at.AddService("backup", 2)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: e.providerConfig() + `
data "psa_service" "test" {
  name = "Sophos Intercept X Advanced"
}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("id"), knownvalue.StringExact(strconv.FormatInt(svc, 10))),
					statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("unit_price"), knownvalue.Float64Exact(4.5)),
					statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("billing_period"), knownvalue.StringExact("monthly")),
					statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("active"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue("data.psa_service.test", tfjsonpath.New("autotask").AtMapKey("period_type"), knownvalue.StringExact("Monthly")),
				},
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
}
