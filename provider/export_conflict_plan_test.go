package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestAccCustomerMappingResource_contractInExportWarns: a customer mapping
// planned onto a contract that the export maps, with usage_sync on, for
// another customer of the source that the configuration does not hold
// (another configuration's, or one left out with -target) warns at plan
// time, on contract_id and naming both customers, of the refusal the apply
// would give (TestAccCustomerMappingResource_contractClaimedAtApply); once that mapping is gone from the export, the plan warns
// no more and the apply writes the mapping.
func TestAccCustomerMappingResource_contractInExportWarns(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	var w planWarnings
	config := e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "b" {
  customer_id = "cust-2"
  company_id  = %q
  contract_id = %q
}
`, acme.company, acme.contract)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: w.factories(),
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					e.updateExport(t, func(doc *export.Document) error {
						doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "elsewhere",
							CompanyID: acme.company, ContractID: acme.contract, UsageSync: true})
						return nil
					})
				},
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				PreConfig: func() {
					if err := expectPlanWarnings(&w, summaryContractTwoCustomers, 1, "psa_customer_mapping", "contract_id",
						"Contract "+acme.contract+" is mapped by customer sophos/elsewhere in the mapping export",
						"this plan maps customer sophos/cust-2 to it")(nil); err != nil {
						t.Error(err)
					}
					// The other configuration moves its customer away.
					e.updateExport(t, func(doc *export.Document) error {
						doc.DeleteCustomer("sophos", "elsewhere")
						return nil
					})
				},
				Config: config,
				Check:  expectPlanWarnings(&w, summaryContractTwoCustomers, 0, "", ""),
			},
		},
	})
}

// TestAccProductMappingResource_sourceInExportWarns: a product mapping
// planned onto a service that the export feeds, with sync_enabled on, from
// a product of another usage source that the configuration does not hold
// warns at plan time, on service_id and naming both products, of the
// refusal the apply would give; once that mapping is gone from the
// export, the plan warns no more and the apply writes the mapping.
func TestAccProductMappingResource_sourceInExportWarns(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise)
	service := e.addService("Sophos MDR", 12)
	var w planWarnings
	config := e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "mdr" {
  product    = "MDR"
  service_id = %q
}
`, service)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: w.factories(),
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					e.updateExport(t, func(doc *export.Document) error {
						doc.PutProduct(export.ProductMapping{Source: "file", Product: "mdr-seats", ServiceID: service,
							ServiceName: "Sophos MDR", SyncEnabled: true})
						return nil
					})
				},
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				PreConfig: func() {
					if err := expectPlanWarnings(&w, summaryServiceTwoSources, 1, "psa_product_mapping", "service_id",
						"Service "+service+" is fed by product file/mdr-seats of usage source \"file\" in the mapping export",
						"this plan maps product sophos/MDR of usage source \"sophos\" to it")(nil); err != nil {
						t.Error(err)
					}
					e.updateExport(t, func(doc *export.Document) error {
						doc.DeleteProduct("file", "mdr-seats")
						return nil
					})
				},
				Config: config,
				Check:  expectPlanWarnings(&w, summaryServiceTwoSources, 0, "", ""),
			},
		},
	})
}

// TestAccCustomerMappingResource_renewalIsContract: next_contract_id naming
// contract_id's contract (one data source referenced twice) fails the plan
// on next_contract_id, saying why, as the export's validation would fail
// the apply's write; no PSA read is needed to know it.
func TestAccCustomerMappingResource_renewalIsContract(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemKaseyaBMS)
	acme := e.addCustomerFixture("Acme")
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "acme" {
  customer_id      = "acme-1"
  company_id       = %[1]q
  contract_id      = %[2]q
  next_contract_id = %[2]q
}
`, acme.company, acme.contract),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`(?s)Renewal Is the Contract.*with psa_customer_mapping.acme.*next_contract_id.*names\s+contract\s+` + acme.contract + `,\s+as\s+contract_id\s+does`),
		}},
	})
}
