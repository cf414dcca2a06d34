package provider

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// handOverConfig is a product and a customer mapping, the integration
// settings (switched off) and the ticket routing replaced, with the same
// keys, whenever trigger changes, and a gate created after them whose
// local-exec provisioner runs command: "exit 1" stops the apply after the
// new instances are created and before the old ones are destroyed, as a
// cancelled CI job or a failing resource does. lifecycle is the mappings'
// extra lifecycle arguments.
func handOverConfig(e *testEnv, service, company, contract, trigger, command, lifecycle string) string {
	routing := strings.Replace(ticketRoutingCases()[psa.SystemAutotask].config, `resource "psa_ticket_routing" "test" {`,
		`resource "psa_ticket_routing" "test" {
  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
`+lifecycle+`  }
`, 1)
	return e.providerConfig() + routing + fmt.Sprintf(`
resource "terraform_data" "trigger" {
  input = %[1]q
}

resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = %[2]q

  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
%[6]s  }
}

resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[3]q
  contract_id = %[4]q

  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
%[6]s  }
}

resource "psa_integration" "test" {
  enabled = false

  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
%[6]s  }
}

resource "terraform_data" "gate" {
  triggers_replace = [
    terraform_data.trigger.output, psa_product_mapping.test.id, psa_customer_mapping.test.id, psa_integration.test.id,
    psa_ticket_routing.test.id,
  ]

  provisioner "local-exec" {
    command = %[5]q
  }

  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
%[6]s  }
}
`, trigger, service, company, contract, command, lifecycle)
}

// hasBothMappings checks that the export maps the product and the customer
// of handOverConfig.
func (e *testEnv) hasBothMappings() resource.TestCheckFunc {
	return e.checkExport(func(doc *export.Document) error {
		_, product := doc.Product("sophos", "CIXA-MSP")
		_, customer := doc.Customer("sophos", "cust-1")
		if !product || !customer {
			return fmt.Errorf("the export lost a mapping (product mapping %v, customer mapping %v): %+v", product, customer, doc)
		}
		return nil
	})
}

// switchedOff checks that the export holds the integration settings and
// the ticket routing of handOverConfig: a psa-syncd that finds no
// integration settings syncs as its configuration says, switched on, and
// one without ticket routing creates no tickets.
func (e *testEnv) switchedOff() resource.TestCheckFunc {
	return e.checkExport(func(doc *export.Document) error {
		if doc.Integration == nil || doc.Integration.Enabled {
			return fmt.Errorf("the export's integration settings are %+v, want them switched off", doc.Integration)
		}
		if doc.Tickets == nil {
			return fmt.Errorf("the export lost its ticket routing")
		}
		return nil
	})
}

// TestAccExportStore_replacementStopped stops an apply that replaces a
// product and a customer mapping, the integration settings and the ticket
// routing with the same keys after the new instances are created. With
// create_before_destroy the old instances are then still in the state,
// deposed, and the next apply destroys them alone: it must leave the
// entries that the new instances took over (each with its owner token),
// and a destroy afterwards removes them. A plain replacement
// destroys the old instances first and writes the entries anew, without an
// owner, which psa-syncd versions before owners read.
func TestAccExportStore_replacementStopped(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		lifecycle string
		action    plancheck.ResourceActionType
		owned     bool // whether the entries carry an owner token
	}{
		"create_before_destroy": {"    create_before_destroy = true\n", plancheck.ResourceActionCreateBeforeDestroy, true},
		"plain":                 {"", plancheck.ResourceActionDestroyBeforeCreate, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, psa.SystemAutotask)
			acme := e.addCustomerFixture("Acme")
			service := e.addService("Sophos Intercept X Advanced", 4.5)
			config := func(trigger, command string) string {
				return handOverConfig(e, service, acme.company, acme.contract, trigger, command, tc.lifecycle)
			}
			owners := e.checkExport(func(doc *export.Document) error {
				p, _ := doc.Product("sophos", "CIXA-MSP")
				c, _ := doc.Customer("sophos", "cust-1")
				in, tk := doc.Integration, doc.Tickets
				if (p.Owner != "") != tc.owned || (c.Owner != "") != tc.owned || (in.Owner != "") != tc.owned || (tk.Owner != "") != tc.owned {
					return fmt.Errorf("owners of the entries = %q, %q, %q and %q, want owners: %v", p.Owner, c.Owner, in.Owner, tk.Owner, tc.owned)
				}
				return nil
			})
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: config("one", "true"), Check: resource.ComposeTestCheckFunc(e.hasBothMappings(), e.switchedOff())},
					{
						Config: config("two", "exit 1"),
						ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
							plancheck.ExpectResourceAction("psa_product_mapping.test", tc.action),
							plancheck.ExpectResourceAction("psa_customer_mapping.test", tc.action),
							plancheck.ExpectResourceAction("psa_integration.test", tc.action),
							plancheck.ExpectResourceAction("psa_ticket_routing.test", tc.action),
						}},
						ExpectError: regexp.MustCompile(`local-exec`),
					},
					{
						// The step also fails when the plan after the apply
						// is not empty, as it is when the new instances'
						// entries are gone.
						Config: config("two", "true"),
						Check:  resource.ComposeTestCheckFunc(e.hasBothMappings(), e.switchedOff(), owners),
					},
				},
				CheckDestroy: e.checkExport(func(doc *export.Document) error {
					if len(doc.ProductMappings) > 0 || len(doc.CustomerMappings) > 0 || doc.Integration != nil || doc.Tickets != nil {
						return fmt.Errorf("export after destroy = %+v, want no entries", doc)
					}
					return nil
				}),
			})
		})
	}
}

// takenOverResources is a product and a customer mapping that
// terraform_data.trigger replaces with create_before_destroy; customerExtra
// is more arguments of the customer mapping.
func takenOverResources(service, company, contract, customerExtra string) string {
	return fmt.Sprintf(`
resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = %[1]q

  lifecycle {
    create_before_destroy = true
    replace_triggered_by  = [terraform_data.trigger]
  }
}

resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[2]q
  contract_id = %[3]q
%[4]s
  lifecycle {
    create_before_destroy = true
    replace_triggered_by  = [terraform_data.trigger]
  }
}
`, service, company, contract, customerExtra)
}

// triggerConfig is terraform_data.trigger with the given input.
func triggerConfig(input string) string {
	return fmt.Sprintf(`
resource "terraform_data" "trigger" {
  input = %q
}
`, input)
}

// entriesTakenOver checks that both entries of takenOverResources hold an
// owner token.
func (e *testEnv) entriesTakenOver() resource.TestCheckFunc {
	return e.checkExport(func(doc *export.Document) error {
		p, _ := doc.Product("sophos", "CIXA-MSP")
		c, _ := doc.Customer("sophos", "cust-1")
		if p.Owner == "" || c.Owner == "" {
			return fmt.Errorf("owners of the entries = %q and %q, want the tokens of the instances that took them over", p.Owner, c.Owner)
		}
		return nil
	})
}

// noMappingsLeft is the CheckDestroy of the tests of taken-over entries.
func (e *testEnv) noMappingsLeft() resource.TestCheckFunc {
	return e.checkExport(func(doc *export.Document) error {
		if len(doc.ProductMappings) > 0 || len(doc.CustomerMappings) > 0 {
			return fmt.Errorf("export after destroy = %+v, want no mappings", doc)
		}
		return nil
	})
}

// TestAccExportStore_importTakenOverEntry: an entry that a
// create_before_destroy replacement took over holds its new owner's token;
// removed from the state (a removed block) and imported again, the
// resource holds that token, and its destroy removes the entries.
func TestAccExportStore_importTakenOverEntry(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	resources := takenOverResources(service, acme.company, acme.contract, "")
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: e.providerConfig() + triggerConfig("one") + resources, Check: e.hasBothMappings()},
			{Config: e.providerConfig() + triggerConfig("two") + resources, Check: resource.ComposeTestCheckFunc(e.hasBothMappings(), e.entriesTakenOver())},
			{
				Config: e.providerConfig() + triggerConfig("two") + `
removed {
  from = psa_product_mapping.test

  lifecycle {
    destroy = false
  }
}

removed {
  from = psa_customer_mapping.test

  lifecycle {
    destroy = false
  }
}
`,
				Check: resource.ComposeTestCheckFunc(e.hasBothMappings(), e.entriesTakenOver()),
			},
			{
				Config: e.providerConfig() + triggerConfig("two") + resources + `
import {
  to = psa_product_mapping.test
  id = "sophos/CIXA-MSP"
}

import {
  to = psa_customer_mapping.test
  id = "sophos/cust-1"
}
`,
				Check: e.hasBothMappings(),
			},
		},
		CheckDestroy: e.noMappingsLeft(),
	})
}

// TestAccExportStore_updateTakenOverEntry: an update of a mapping whose
// entry it took over keeps its owner token on the entry, so that its
// destroy still removes the entry.
func TestAccExportStore_updateTakenOverEntry(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	config := func(trigger, customerExtra string) string {
		return e.providerConfig() + triggerConfig(trigger) + takenOverResources(service, acme.company, acme.contract, customerExtra)
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config("one", "")},
			{Config: config("two", ""), Check: e.entriesTakenOver()},
			{
				Config: config("two", `  customer_name = "Acme Ltd"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("psa_customer_mapping.test", plancheck.ResourceActionUpdate),
				}},
				Check: e.entriesTakenOver(),
			},
		},
		CheckDestroy: e.noMappingsLeft(),
	})
}

// TestAccExportStore_moveTakenOverEntry: entries that a
// create_before_destroy replacement took over (holding an owner token)
// are moved to new resource addresses without a moved block: the plan
// finds the entries' values are the configuration's, whoever owns them,
// and the apply keeps them.
func TestAccExportStore_moveTakenOverEntry(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	resources := takenOverResources(service, acme.company, acme.contract, "")
	renamed := strings.ReplaceAll(resources, `"test"`, `"renamed"`)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: e.providerConfig() + triggerConfig("one") + resources},
			{Config: e.providerConfig() + triggerConfig("two") + resources, Check: e.entriesTakenOver()},
			{
				Config: e.providerConfig() + triggerConfig("two") + renamed,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("psa_customer_mapping.test", plancheck.ResourceActionDestroy),
					plancheck.ExpectResourceAction("psa_customer_mapping.renamed", plancheck.ResourceActionCreate),
				}},
				Check: e.hasBothMappings(),
			},
		},
		CheckDestroy: e.noMappingsLeft(),
	})
}

// TestAccExportStore_goneEntryReplacementStopped: with export_owner_tokens,
// or without it in an export that holds an owner token already (on an
// entry of another configuration), the entries of a product and a customer
// mapping, the integration settings and the ticket routing are removed by
// hand, and an apply that reads nothing first (-refresh=false) replaces
// the four with create_before_destroy and stops after the creates, which
// find no entry to take over and write them anew. The next apply destroys
// the old, deposed instances alone: it must leave the new instances'
// entries, which hold their tokens as every entry written then does.
func TestAccExportStore_goneEntryReplacementStopped(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		setting string
		// foreign is whether the export holds another configuration's
		// customer mapping with an owner token throughout.
		foreign bool
	}{
		"export_owner_tokens":           {setting: "export_owner_tokens = true\n"},
		"a token already in the export": {foreign: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, psa.SystemAutotask)
			acme := e.addCustomerFixture("Acme")
			globex := e.addCustomerFixture("Globex")
			service := e.addService("Sophos Intercept X Advanced", 4.5)
			config := func(trigger, command string) string {
				return strings.Replace(handOverConfig(e, service, acme.company, acme.contract, trigger, command, "    create_before_destroy = true\n"),
					e.providerConfig(), e.providerConfigWith(tc.setting), 1)
			}
			if tc.foreign {
				e.updateExport(t, func(doc *export.Document) error {
					doc.CustomerMappings = append(doc.CustomerMappings, export.CustomerMapping{
						Source: "sophos", CustomerID: "cust-other", CustomerName: "Globex", CompanyID: globex.company,
						ContractID: globex.contract, UsageSync: true, Owner: "OTHERCONFIGURATIONTOKEN234",
					})
					return nil
				})
			}
			owned := e.checkExport(func(doc *export.Document) error {
				p, _ := doc.Product("sophos", "CIXA-MSP")
				c, _ := doc.Customer("sophos", "cust-1")
				if p.Owner == "" || c.Owner == "" || doc.Integration.Owner == "" || doc.Tickets.Owner == "" {
					return fmt.Errorf("owners of the entries = %q, %q, %q and %q, want a token on each", p.Owner, c.Owner, doc.Integration.Owner, doc.Tickets.Owner)
				}
				return nil
			})
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				AdditionalCLIOptions:     &resource.AdditionalCLIOptions{Plan: resource.PlanOptions{NoRefresh: true}},
				Steps: []resource.TestStep{
					{Config: config("one", "true"), Check: resource.ComposeTestCheckFunc(e.hasBothMappings(), e.switchedOff(), owned)},
					{
						PreConfig: func() {
							e.updateExport(t, func(doc *export.Document) error {
								doc.ProductMappings, doc.Integration, doc.Tickets = nil, nil, nil
								doc.CustomerMappings = slices.DeleteFunc(doc.CustomerMappings, func(m export.CustomerMapping) bool { return m.CustomerID == "cust-1" })
								return nil
							})
						},
						Config: config("two", "exit 1"),
						ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
							plancheck.ExpectResourceAction("psa_product_mapping.test", plancheck.ResourceActionCreateBeforeDestroy),
							plancheck.ExpectResourceAction("psa_customer_mapping.test", plancheck.ResourceActionCreateBeforeDestroy),
							plancheck.ExpectResourceAction("psa_integration.test", plancheck.ResourceActionCreateBeforeDestroy),
							plancheck.ExpectResourceAction("psa_ticket_routing.test", plancheck.ResourceActionCreateBeforeDestroy),
						}},
						ExpectError: regexp.MustCompile(`local-exec`),
					},
					{Config: config("two", "true"), Check: resource.ComposeTestCheckFunc(e.hasBothMappings(), e.switchedOff(), owned)},
				},
				CheckDestroy: e.checkExport(func(doc *export.Document) error {
					_, customer := doc.Customer("sophos", "cust-1")
					if len(doc.ProductMappings) > 0 || customer || doc.Integration != nil || doc.Tickets != nil {
						return fmt.Errorf("export after destroy = %+v, want no entries of the configuration", doc)
					}
					if _, other := doc.Customer("sophos", "cust-other"); other != tc.foreign {
						return fmt.Errorf("export after destroy holds the other configuration's entry = %v, want %v", other, tc.foreign)
					}
					return nil
				}),
			})
		})
	}
}

// TestAccExportStore_noOwnerTokensWritten: an export that holds no owner
// token gets none from a create that writes its entries anew, so that
// every psa-syncd, older ones included, reads it.
func TestAccExportStore_noOwnerTokensWritten(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: handOverConfig(e, service, acme.company, acme.contract, "one", "true", "    create_before_destroy = true\n"),
			Check: resource.ComposeTestCheckFunc(e.hasBothMappings(), e.switchedOff(), e.checkExport(func(doc *export.Document) error {
				if holdsOwners(doc) {
					return fmt.Errorf("export = %+v, want no owner token on any entry", doc)
				}
				return nil
			})),
		}},
		CheckDestroy: e.noMappingsLeft(),
	})
}
