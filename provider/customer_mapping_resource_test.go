package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// customerFixture is a company with two recurring-service contracts.
type customerFixture struct {
	company, contract, otherContract string
}

func (e *testEnv) addCustomerFixture(name string) customerFixture {
	company := e.addCompany(name)
	return customerFixture{
		company:       company,
		contract:      e.addContract(company, name+" Managed Services", contractRecurring),
		otherContract: e.addContract(company, name+" Security", contractRecurring),
	}
}

func id(i int64) string { return strconv.FormatInt(i, 10) }

func testAccCustomerMappingResourceConfig(e *testEnv, customerID, companyID, contractID, extra string) string {
	return e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "test" {
  customer_id = %[1]q
  company_id  = %[2]q
  contract_id = %[3]q
%[4]s
}
`, customerID, companyID, contractID, extra)
}

// customerMappingIs checks one customer mapping of the export.
func customerMappingIs(want export.CustomerMapping) func(*export.Document) error {
	return func(doc *export.Document) error {
		got, ok := doc.Customer(want.Source, want.CustomerID)
		if !ok {
			return fmt.Errorf("export has no customer mapping %s/%s; it has %+v", want.Source, want.CustomerID, doc.CustomerMappings)
		}
		if got != want {
			return fmt.Errorf("export customer mapping = %+v, want %+v", got, want)
		}
		return nil
	}
}

// TestAccCustomerMappingResource_basic maps a customer through the lookups
// users write, then imports the mapping.
func TestAccCustomerMappingResource_basic(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: e.providerConfig() + `
		data "psa_company" "acme" {
		  name = "acme"
		}

		data "psa_contract" "acme" {
		  company_id = data.psa_company.acme.id
		  name       = "Acme Managed Services"
		}

		resource "psa_customer_mapping" "test" {
		  customer_id   = "718b6047-1a2b-4c3d-9e8f-0123456789ab"
		  customer_name = "Acme Corp"
		  company_id    = data.psa_company.acme.id
		  contract_id   = data.psa_contract.acme.id
		}
		`,
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("psa_customer_mapping.test", tfjsonpath.New("id"),
								knownvalue.StringExact("sophos/718b6047-1a2b-4c3d-9e8f-0123456789ab")),
							statecheck.ExpectKnownValue("psa_customer_mapping.test", tfjsonpath.New("usage_sync"), knownvalue.Bool(true)),
							statecheck.ExpectKnownValue("psa_customer_mapping.test", tfjsonpath.New("ticket_sync"), knownvalue.Bool(false)),
						},
						Check: e.checkExport(customerMappingIs(export.CustomerMapping{
							Source: "sophos", CustomerID: "718b6047-1a2b-4c3d-9e8f-0123456789ab", CustomerName: "Acme Corp",
							CompanyID: acme.company, ContractID: acme.contract, UsageSync: true, TicketSync: false,
						})),
					},
					{
						ResourceName:      "psa_customer_mapping.test",
						ImportState:       true,
						ImportStateId:     "sophos/718b6047-1a2b-4c3d-9e8f-0123456789ab",
						ImportStateVerify: true,
					},
					{
						ResourceName:    "psa_customer_mapping.test",
						ImportState:     true,
						ImportStateKind: resource.ImportBlockWithID,
						ImportStateId:   "sophos/718b6047-1a2b-4c3d-9e8f-0123456789ab",
					},
				},
				CheckDestroy: e.checkExport(func(doc *export.Document) error {
					if len(doc.CustomerMappings) != 0 {
						return fmt.Errorf("export still has customer mappings after destroy: %+v", doc.CustomerMappings)
					}
					return nil
				}),
			})
		})
	}
}

func TestAccCustomerMappingResource_update(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, ""),
					},
					{
						Config: testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.otherContract, `
		  usage_sync  = false
		  ticket_sync = true
		`),
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_customer_mapping.test", plancheck.ResourceActionUpdate),
							},
						},
						Check: e.checkExport(customerMappingIs(export.CustomerMapping{
							Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.otherContract,
							UsageSync: false, TicketSync: true,
						})),
					},
					{
						Config: testAccCustomerMappingResourceConfig(e, "cust-2", acme.company, acme.otherContract, `  source = "file"`),
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_customer_mapping.test", plancheck.ResourceActionReplace),
							},
						},
						Check: e.checkExport(func(doc *export.Document) error {
							if len(doc.CustomerMappings) != 1 {
								return fmt.Errorf("export has %d customer mappings after replace, want 1: %+v", len(doc.CustomerMappings), doc.CustomerMappings)
							}
							return customerMappingIs(export.CustomerMapping{
								Source: "file", CustomerID: "cust-2", CompanyID: acme.company, ContractID: acme.otherContract, UsageSync: true,
							})(doc)
						}),
					},
				},
			})
		})
	}
}

func TestAccCustomerMappingResource_disappears(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			config := testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, "")

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config,
					},
					{
						PreConfig: func() {
							e.updateExport(t, func(doc *export.Document) error {
								doc.DeleteCustomer("sophos", "cust-1")
								return nil
							})
						},
						Config:             config,
						PlanOnly:           true,
						ExpectNonEmptyPlan: true,
					},
					{
						Config: config,
						Check: e.checkExport(customerMappingIs(export.CustomerMapping{
							Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true,
						})),
					},
				},
			})
		})
	}
}

// TestAccCustomerMappingResource_importNotInExport imports a key the export
// does not hold: the error names the key and the export searched.
func TestAccCustomerMappingResource_importNotInExport(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	config := testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, "")

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
			},
			{
				Config:        config,
				ResourceName:  "psa_customer_mapping.test",
				ImportState:   true,
				ImportStateId: "sophos/cust-2",
				ExpectError: regexp.MustCompile(`(?s)Cannot Import Customer Mapping.*sophos/cust-2\s+is\s+not\s+in\s+the\s+mapping\s+export\s+"` +
					regexp.QuoteMeta(e.exportPath) + `".*holds\s+1\s+customer\s+mapping\s+of\s+source\s+"sophos"\s+\(closest:\s+sophos/cust-1\)`),
			},
		},
	})
}

// TestAccCustomerMappingResource_planChecks fails plans that bill a customer
// on another company's contract, on a contract that is not recurring, on a
// missing contract, or on a contract another customer in the configuration
// already uses.
func TestAccCustomerMappingResource_planChecks(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			globex := e.addCustomerFixture("Globex")
			projects := e.addContract(acme.company, "Projects", contractOther)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config:      testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, globex.contract, ""),
						ExpectError: regexp.MustCompile(`(?s)Contract Belongs to Another Company.*belongs\s+to\s+company\s+` + globex.company),
					},
					{
						Config:      testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, projects, ""),
						ExpectError: regexp.MustCompile(`(?s)Not a Recurring-Service Contract.*"Projects"`),
					},
					{
						Config:      testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, "987654321", ""),
						ExpectError: regexp.MustCompile(`(?s)PSA Contract Not Found.*987654321`),
					},
					{
						Config: e.providerConfig() + fmt.Sprintf(`
		resource "psa_customer_mapping" "one" {
		  customer_id = "cust-1"
		  company_id  = %[1]q
		  contract_id = %[2]q
		}

		resource "psa_customer_mapping" "two" {
		  customer_id = "cust-2"
		  company_id  = %[1]q
		  contract_id = %[2]q
		}
		`, acme.company, acme.contract),
						ExpectError: regexp.MustCompile(`(?s)Contract Mapped by Two Customers.*sophos/cust-[12]`),
					},
				},
			})
		})
	}
}

// invalidIDError matches the error for an attribute whose value cannot be
// an id of the PSA: it names the attribute, quotes the value and says what
// the PSA's ids look like.
func invalidIDError(sys psa.System, attr, value string) *regexp.Regexp {
	words := func(s string) string { return strings.ReplaceAll(regexp.QuoteMeta(s), " ", `\s+`) }
	title := words(systemTitle(sys))
	return regexp.MustCompile(`(?s)Invalid PSA ID.*` + attr + `\s+must\s+be\s+the\s+id\s+of.*` +
		words(fmt.Sprintf("%q is not a valid ", value)) + title + `\s+id:\s+` + title + `\s+ids\s+are\s+whole\s+numbers`)
}

// TestAccCustomerMappingResource_invalidIDs fails the plan of a contract_id
// or company_id that cannot be an id of the PSA, where the contract lookup
// used to fail with a validation error taken for an unreachable PSA (a
// warning), and the apply wrote the value to the export. An id known only
// at apply passes the plan and is checked when the apply plans again.
func TestAccCustomerMappingResource_invalidIDs(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			fromOutput := func(contract string) string {
				return e.providerConfig() + fmt.Sprintf(`
resource "terraform_data" "contract" {
  input = %[1]q
}

resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[2]q
  contract_id = terraform_data.contract.output
}
`, contract, acme.company)
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config:      testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, "not-a-contract", ""),
						ExpectError: invalidIDError(sys, "contract_id", "not-a-contract"),
					},
					{
						Config:      testAccCustomerMappingResourceConfig(e, "cust-1", "acme-co", acme.contract, ""),
						ExpectError: invalidIDError(sys, "company_id", "acme-co"),
					},
					{
						Config:      testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, " "+acme.contract, ""),
						ExpectError: invalidIDError(sys, "contract_id", " "+acme.contract),
					},
					{
						// Unknown at plan time, malformed at apply.
						Config:      fromOutput("not-a-contract"),
						ExpectError: invalidIDError(sys, "contract_id", "not-a-contract"),
					},
					{
						PreConfig: func() {
							if _, err := os.Stat(e.exportPath); err == nil {
								t.Error("a refused plan or apply wrote an export")
							}
						},
						Config: fromOutput(acme.contract),
						ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
							plancheck.ExpectUnknownValue("psa_customer_mapping.test", tfjsonpath.New("contract_id")),
						}},
						Check: e.checkExport(customerMappingIs(export.CustomerMapping{
							Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true,
						})),
					},
				},
			})
		})
	}
}

// TestAccCustomerMappingResource_invalidKey fails at plan time the key
// values that the export refuses only at apply (a NUL byte), and key values
// with surrounding whitespace, which psa-syncd would never match; the error
// names the attribute.
func TestAccCustomerMappingResource_invalidKey(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	config := func(source, customerID string) string {
		// Written by hand: HCL spells a NUL byte "\u0000", Go's %q "\x00".
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "test" {
  source      = "%[1]s"
  customer_id = "%[2]s"
  company_id  = %[3]q
  contract_id = %[4]q
}
`, source, customerID, acme.company, acme.contract)
	}

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      config("sophos", " cust-1"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Invalid Key.*customer_id\s+must\s+not\s+begin\s+or\s+end\s+with\s+whitespace`),
			},
			{
				Config:      config("sophos", `cust\u00001`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Invalid Key.*customer_id\s+must\s+not\s+contain\s+a\s+NUL\s+byte`),
			},
			{
				Config:      config("sophos ", "cust-1"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Invalid Key.*source\s+must\s+not\s+begin\s+or\s+end\s+with\s+whitespace`),
			},
		},
	})
}

// TestAccCustomerMappingResource_many applies 200 mappings at Terraform's
// default parallelism of 10 and checks that the locked read-modify-write of
// the export lost none of them.
//
// It runs against Autotask only: what it tests is the export's locking,
// which is the same for every PSA, and 200 plan-time contract checks per
// PSA would only slow the suite down.
func TestAccCustomerMappingResource_many(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	const n = 200
	company := e.addCompany("Big MSP Customer")
	contracts := make([]string, n)
	for i := range contracts {
		contracts[i] = strconv.Quote(e.addContract(company, fmt.Sprintf("Contract %d", i), contractRecurring))
	}
	config := e.providerConfig() + fmt.Sprintf(`
locals {
  contracts = [%[3]s]
}

resource "psa_customer_mapping" "test" {
  count = %[1]d

  customer_id = "tenant-${count.index}"
  company_id  = %[2]q
  contract_id = local.contracts[count.index]
}
`, n, company, strings.Join(contracts, ", "))

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: e.checkExport(func(doc *export.Document) error {
					if len(doc.CustomerMappings) != n {
						return fmt.Errorf("export has %d customer mappings, want %d", len(doc.CustomerMappings), n)
					}
					seen := map[string]bool{}
					for _, m := range doc.CustomerMappings {
						seen[m.CustomerID] = true
					}
					for i := range n {
						if !seen[fmt.Sprintf("tenant-%d", i)] {
							return fmt.Errorf("export lost tenant-%d", i)
						}
					}
					return nil
				}),
			},
		},
	})
}

// TestAccCustomerMappingResource_corruptExport checks that a hand-broken
// export fails the plan with the export's own message and is left as it is.
// The export does not depend on the PSA, so one PSA is enough.
func TestAccCustomerMappingResource_corruptExport(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	config := testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, "")
	var good []byte
	corrupt := []byte(`{"schema": "psa-sync.mapping-export/v1", "psa": {"system": "autotask"`)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: func(*terraform.State) error {
					var err error
					good, err = os.ReadFile(e.exportPath)
					return err
				},
			},
			{
				PreConfig: func() {
					if err := os.WriteFile(e.exportPath, corrupt, 0o644); err != nil {
						t.Fatal(err)
					}
				},
				Config:      testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, `  ticket_sync = true`),
				ExpectError: regexp.MustCompile(`(?s)Unable to Read Mapping Export.*left\s+unchanged`),
			},
			{
				PreConfig: func() {
					got, err := os.ReadFile(e.exportPath)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, corrupt) {
						t.Errorf("the corrupt export was overwritten; it is now:\n%s", got)
					}
					// Restore the file, as a user would from version control.
					if err := os.WriteFile(e.exportPath, good, 0o644); err != nil {
						t.Fatal(err)
					}
				},
				Config:   config,
				PlanOnly: true,
			},
		},
	})
}

// TestAccCustomerMappingResource_sharedContract maps one company's
// customers from two usage sources (Sophos tenants and a usage file) to its
// one contract, and keeps a paused mapping beside the active one, as
// psa-syncd allows: it refuses only two customers of one source that both
// sync usage to one contract, whose lines they would fight over.
func TestAccCustomerMappingResource_sharedContract(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			config := func(oldTenantUsageSync bool) string {
				return e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "sophos" {
  customer_id = "718b6047-1a2b-4c3d-9e8f-0123456789ab"
  company_id  = %[1]q
  contract_id = %[2]q
}

resource "psa_customer_mapping" "password_boss" {
  source      = "file"
  customer_id = "acme"
  company_id  = %[1]q
  contract_id = %[2]q
}

# The tenant Acme is moving away from: kept, but paused.
resource "psa_customer_mapping" "sophos_old" {
  customer_id = "0a1b2c3d-0000-4000-8000-000000000000"
  company_id  = %[1]q
  contract_id = %[2]q
  usage_sync  = %[3]t
}
`, acme.company, acme.contract, oldTenantUsageSync)
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config(false),
						Check: e.checkExport(func(doc *export.Document) error {
							if len(doc.CustomerMappings) != 3 {
								return fmt.Errorf("export has %d customer mappings, want 3: %+v", len(doc.CustomerMappings), doc.CustomerMappings)
							}
							return nil
						}),
					},
					{
						Config:      config(true),
						ExpectError: regexp.MustCompile(`(?s)Contract Mapped by Two Customers.*sophos/`),
					},
				},
			})
		})
	}
}

// TestAccCustomerMappingResource_contractClaimedAtApply adds a customer on
// the contract of a customer mapped before, where the plan cannot refuse
// it: a contract unknown until the apply (from a data source that a
// module's depends_on defers; here terraform_data created in the same
// apply), which Terraform plans again during the apply without the
// unchanged mapping, and a usage_sync unknown until the apply; then moves
// a mapping onto the contract the same way. The apply must refuse to write
// them, naming both customers and the contract: psa-syncd would stop
// syncing both, and every later plan would fail.
func TestAccCustomerMappingResource_contractClaimedAtApply(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	one := e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "a" {
  customer_id = "cust-1"
  company_id  = %[1]q
  contract_id = %[2]q
}
`, acme.company, acme.contract)
	// withB adds customer b; generation changes the terraform_data, whose
	// output is then unknown until the apply.
	withB := func(contract, usageSync, generation string) string {
		return one + fmt.Sprintf(`
resource "terraform_data" "later" {
  input = {
    contract   = %[2]q
    usage_sync = true
    generation = %[5]q
  }
}

resource "psa_customer_mapping" "b" {
  customer_id = "cust-2"
  company_id  = %[1]q
  contract_id = %[3]s
  usage_sync  = %[4]s
}
`, acme.company, acme.contract, contract, usageSync, generation)
	}
	// The apply's error, not the plan's after it.
	refused := regexp.MustCompile(`(?s)Contract Mapped by Two Customers.*Contract\s+` + acme.contract +
		`\s+is\s+mapped\s+by\s+customer\s+sophos/cust-1\s+in\s+the\s+mapping\s+export.*by\s+customer\s+sophos/cust-2`)
	// notWritten checks, before the next step, the export the refused
	// apply left.
	notWritten := func() {
		doc, err := e.readExport()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := doc.Customer("sophos", "cust-1"); !ok {
			t.Errorf("the export lost customer sophos/cust-1: %+v", doc.CustomerMappings)
		}
		if m, ok := doc.Customer("sophos", "cust-2"); ok && m.ContractID == acme.contract {
			t.Errorf("the apply wrote a second customer with usage_sync on contract %s: %+v", acme.contract, doc.CustomerMappings)
		}
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: one},
			{Config: withB("terraform_data.later.output.contract", "true", "1"), ExpectError: refused},
			{PreConfig: notWritten, Config: one},
			{Config: withB(strconv.Quote(acme.contract), "terraform_data.later.output.usage_sync", "1"), ExpectError: refused},
			{PreConfig: notWritten, Config: one},
			// b on another contract first, then moved onto a's.
			{Config: withB(strconv.Quote(acme.otherContract), "true", "1")},
			{Config: withB("terraform_data.later.output.contract", "true", "2"), ExpectError: refused},
			{PreConfig: notWritten, Config: withB(strconv.Quote(acme.otherContract), "true", "2")},
		},
	})
}

// TestAccCustomerMappingResource_importChecksContract imports mappings of
// a hand-maintained export, as the "Already in Mapping Export" error says
// to. The plan checks a contract only when company_id or contract_id
// changes, which an import's never do: an imported mapping whose contract
// is another company's must still fail its plan, as a create would, and
// one whose contract passes must not be checked again by later plans.
func TestAccCustomerMappingResource_importChecksContract(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	initech := e.addCustomerFixture("Initech")
	config := func(contract string) string {
		return e.providerConfig() + fmt.Sprintf(`
import {
  to = psa_customer_mapping.acme
  id = "sophos/cust-1"
}

resource "psa_customer_mapping" "acme" {
  customer_id = "cust-1"
  company_id  = %[1]q
  contract_id = %[2]q
}

import {
  to = psa_customer_mapping.initech
  id = "sophos/cust-2"
}

resource "psa_customer_mapping" "initech" {
  customer_id = "cust-2"
  company_id  = %[3]q
  contract_id = %[4]q
}
`, acme.company, contract, initech.company, initech.otherContract)
	}
	contractReads := func() int {
		n := 0
		for _, r := range e.sim.Requests() {
			if e.isContractRead(r) {
				n++
			}
		}
		return n
	}
	var readsBefore int
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					e.updateExport(t, func(doc *export.Document) error {
						doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "cust-1",
							CompanyID: acme.company, ContractID: initech.contract, UsageSync: true})
						doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "cust-2",
							CompanyID: initech.company, ContractID: initech.otherContract, UsageSync: true})
						return nil
					})
				},
				Config:      config(initech.contract),
				ExpectError: regexp.MustCompile(`(?s)Contract Belongs to Another Company.*Contract\s+` + initech.contract + `.*customer\s+sophos/cust-1`),
			},
			{
				// Fixed in the configuration: imported and updated.
				Config: config(acme.contract),
				Check: e.checkExport(customerMappingIs(export.CustomerMapping{
					Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true,
				})),
			},
			{
				PreConfig: func() { readsBefore = contractReads() },
				Config:    config(acme.contract),
				PlanOnly:  true,
			},
			{
				PreConfig: func() {
					if n := contractReads() - readsBefore; n > 0 {
						t.Errorf("a plan after the imports read contracts %d times, want 0: the contracts that passed are checked again", n)
					}
				},
				Config:   config(acme.contract),
				PlanOnly: true,
			},
		},
	})
}

// contractBackend answers GetContract with one contract.
type contractBackend struct {
	psa.Backend // unused methods panic
	contract    psa.Contract
}

func (b *contractBackend) GetContract(_ context.Context, id string) (*psa.Contract, error) {
	if id != b.contract.ID {
		return nil, psa.ErrNotFound
	}
	c := b.contract
	return &c, nil
}

// TestCheckContract_companyUnknown: a PSA that cannot tell whose contract
// it is (Kaseya BMS finds the company of a contract by its account name,
// and may find no account, or several that do not claim it) gives no
// company id. The plan says that the company could not be verified, as it
// does when the PSA cannot be reached, instead of "belongs to company ,
// not to company 174".
func TestCheckContract_companyUnknown(t *testing.T) {
	t.Parallel()
	b := &contractBackend{contract: psa.Contract{ID: "300", Name: "Acme Managed Services", Type: "Recurring Services",
		Status: "Active", Active: true, Recurring: true}}
	r := &customerMappingResource{data: &providerData{backend: b, system: psa.SystemKaseyaBMS,
		reads: newPSAReads(b, func(context.Context) *export.Document { return nil })}}
	var diags diag.Diagnostics
	verified := r.checkContract(t.Context(), &diags, "174", "300", "sophos/cust-1")
	if diags.HasError() || diags.WarningsCount() != 1 || verified {
		t.Fatalf("checkContract = verified %t, %v; want one warning, not verified", verified, diags)
	}
	w := diags.Warnings()[0]
	if w.Summary() != "Unable to Verify PSA Contract" || !strings.Contains(w.Detail(), `contract 300 ("Acme Managed Services")`) ||
		!strings.Contains(w.Detail(), "company 174") {
		t.Errorf("warning = %s: %s", w.Summary(), w.Detail())
	}
}

// TestContractDatesWarning: the plan of a customer mapping warns when its
// contract has ended, ends this month or the next (an annual contract
// renewed under a new id on 1 January), or has not started (a renewal
// mapped ahead): psa-syncd writes nothing to a contract outside its dates,
// so the renewal's mapping must be applied in time. A contract that ends
// later, or has no end date, gets no warning.
func TestContractDatesWarning(t *testing.T) {
	t.Parallel()
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	now := time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		start, end time.Time
		summary    string
		detail     []string
	}{
		{"ended", day(2025, 11, 1), day(2026, 10, 31), "PSA Contract Has Ended", []string{"ended on 2026-10-31", "usage_period: previous", "data.psa_contract", `company_id = "174"`}},
		{"ends this month", day(2026, 1, 1), day(2026, 11, 30), "PSA Contract Ends Soon", []string{"ends on 2026-11-30", "fails as stale", "data.psa_contract"}},
		{"ends next month", day(2026, 1, 1), day(2026, 12, 31), "PSA Contract Ends Soon", []string{"ends on 2026-12-31"}},
		{"ends today", day(2026, 1, 1), day(2026, 11, 21), "PSA Contract Ends Soon", []string{"ends on 2026-11-21"}},
		{"not started", day(2027, 1, 1), day(2027, 12, 31), "PSA Contract Not Started", []string{"starts on 2027-01-01", "next_contract_id"}},
		{"ends in two months", day(2026, 1, 1), day(2027, 1, 1), "", nil},
		{"no end date", day(2026, 1, 1), time.Time{}, "", nil},
	} {
		ct := &psa.Contract{ID: "300", Name: "Acme 2026", Active: true, Recurring: true, StartDate: tc.start, EndDate: tc.end}
		summary, detail := contractDatesWarning(ct, "174", "sophos/cust-1", now)
		if summary != tc.summary {
			t.Errorf("%s: warning %q (%s), want %q", tc.name, summary, detail, tc.summary)
			continue
		}
		for _, want := range append(tc.detail, `Contract 300 ("Acme 2026")`) {
			if summary != "" && !strings.Contains(detail, want) {
				t.Errorf("%s: detail %q lacks %q", tc.name, detail, want)
			}
		}
	}
}

// TestCheckContract_endsSoonWarns: the plan-time contract check, which
// reads the contract anyway, warns of a contract that ends this month or
// next, and still verifies it.
func TestCheckContract_endsSoonWarns(t *testing.T) {
	t.Parallel()
	end := time.Now().UTC().AddDate(0, 0, 1)
	b := &contractBackend{contract: psa.Contract{ID: "300", CompanyID: "174", Name: "Acme 2026", Type: "Recurring Service",
		Status: "Active", Active: true, Recurring: true, StartDate: end.AddDate(-1, 0, 0), EndDate: end}}
	r := &customerMappingResource{data: &providerData{backend: b, system: psa.SystemAutotask,
		reads: newPSAReads(b, func(context.Context) *export.Document { return nil })}}
	var diags diag.Diagnostics
	verified := r.checkContract(t.Context(), &diags, "174", "300", "sophos/cust-1")
	if diags.HasError() || diags.WarningsCount() != 1 || !verified {
		t.Fatalf("checkContract = verified %t, %v; want one warning, verified", verified, diags)
	}
	if w := diags.Warnings()[0]; w.Summary() != "PSA Contract Ends Soon" || !strings.Contains(w.Detail(), "ends on "+end.Format(time.DateOnly)) {
		t.Errorf("warning = %s: %s", w.Summary(), w.Detail())
	}
}
