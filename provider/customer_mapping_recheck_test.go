package provider

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestRecheckContracts_warns: the plan of a customer mapping that does not
// change checks its contract only with recheck_contracts, and then what it
// finds (here a contract moved to another company since the apply, which
// fails a changed mapping's plan) is a warning on contract_id, through the
// fast path and the framework's alike.
func TestRecheckContracts_warns(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	beta := e.addCompany("Beta")
	e.updateExport(t, func(doc *export.Document) error {
		doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "C1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true})
		return nil
	})
	e.sim.Autotask().SetContractCompany(mustID(acme.contract), mustID(beta))

	for _, recheck := range []bool{false, true} {
		t.Run(fmt.Sprintf("recheck_contracts=%t", recheck), func(t *testing.T) {
			t.Parallel()
			server := NewProtocol6(New("test")())()
			schemas, err := server.GetProviderSchema(t.Context(), &tfprotov6.GetProviderSchemaRequest{})
			if err != nil || len(schemas.Diagnostics) > 0 {
				t.Fatalf("GetProviderSchema: %v %v", err, schemas.Diagnostics)
			}
			providerType := schemas.Provider.ValueType()
			var attrs map[string]tftypes.Value
			if err := providerConfigValue(t, providerType, e).As(&attrs); err != nil {
				t.Fatal(err)
			}
			attrs = maps.Clone(attrs)
			attrs["recheck_contracts"] = tftypes.NewValue(tftypes.Bool, recheck)
			configured, err := server.ConfigureProvider(t.Context(), &tfprotov6.ConfigureProviderRequest{TerraformVersion: "1.5.7",
				Config: dynamic(t, providerType, tftypes.NewValue(providerType, attrs))})
			if err != nil || len(configured.Diagnostics) > 0 {
				t.Fatalf("ConfigureProvider: %v %v", err, diagnosticsText(configured.Diagnostics))
			}

			typ := schemas.ResourceSchemas["psa_customer_mapping"].ValueType()
			state := objectValue(typ, map[string]tftypes.Value{
				"id": str("sophos/C1"), "source": str("sophos"), "customer_id": str("C1"), "customer_name": str(""),
				"company_id": str(acme.company), "contract_id": str(acme.contract),
				"usage_sync": tftypes.NewValue(tftypes.Bool, true), "ticket_sync": tftypes.NewValue(tftypes.Bool, false),
			})
			config := objectValue(typ, map[string]tftypes.Value{
				"customer_id": str("C1"), "company_id": str(acme.company), "contract_id": str(acme.contract),
			})
			resp, err := server.PlanResourceChange(t.Context(), &tfprotov6.PlanResourceChangeRequest{
				TypeName: "psa_customer_mapping", Config: dynamic(t, typ, config),
				PriorState: dynamic(t, typ, state), ProposedNewState: dynamic(t, typ, state),
			})
			if err != nil {
				t.Fatal(err)
			}
			if !recheck {
				if len(resp.Diagnostics) > 0 {
					t.Errorf("diagnostics %s, want none: the mapping does not change", diagnosticsText(resp.Diagnostics))
				}
				return
			}
			if len(resp.Diagnostics) != 1 {
				t.Fatalf("diagnostics %s, want one warning", diagnosticsText(resp.Diagnostics))
			}
			d := resp.Diagnostics[0]
			if d.Severity != tfprotov6.DiagnosticSeverityWarning || d.Summary != "Contract Belongs to Another Company" ||
				!strings.Contains(d.Detail, "belongs to company "+beta) || !strings.Contains(d.Detail, "recheck_contracts") ||
				d.Attribute == nil || d.Attribute.String() != tftypes.NewAttributePath().WithAttributeName("contract_id").String() {
				t.Errorf("diagnostic = %v %s on %v: %s", d.Severity, d.Summary, d.Attribute, d.Detail)
			}
		})
	}
}

// TestAccCustomerMappingResource_recheckContracts: with recheck_contracts, a
// refresh plan of several customer mappings reads their contracts in one
// bulk query per provider process (the first batch asks for every contract
// of the export), and their companies in one more (the first batch of
// companies asks for every company of the export), and a contract
// deactivated since the apply only warns: the plan goes on.
func TestAccCustomerMappingResource_recheckContracts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	beta := e.addCustomerFixture("Beta")
	config := e.providerConfigWith("recheck_contracts = true\n") + fmt.Sprintf(`
resource "psa_customer_mapping" "acme" {
  customer_id = "cust-acme"
  company_id  = %[1]q
  contract_id = %[2]q
}

resource "psa_customer_mapping" "acme_security" {
  source      = "file"
  customer_id = "cust-acme"
  company_id  = %[1]q
  contract_id = %[3]q
}

resource "psa_customer_mapping" "beta" {
  customer_id = "cust-beta"
  company_id  = %[4]q
  contract_id = %[5]q
}
`, acme.company, acme.contract, acme.otherContract, beta.company, beta.contract)
	want := map[string]int{
		// Two plans, each in a provider process of its own: the bulk read,
		// and the contracts' picklists that name their status and type;
		// and the bulk read of the companies.
		"POST /ATServicesRest/V1.0/Contracts/query":                   2,
		"POST /ATServicesRest/V1.0/Companies/query":                   2,
		"GET /ATServicesRest/V1.0/Contracts/entityInformation/fields": 2,
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					e.sim.ResetRequests()
					e.sim.Autotask().SetContractStatus(mustID(beta.contract), "Inactive")
				},
				Config:   config,
				PlanOnly: true,
			},
			{
				PreConfig: func() {
					if got := requestRoutes(e.sim.Requests()); !maps.Equal(got, want) {
						t.Errorf("the refresh plans sent %s, want %v", requestKinds(e.sim.Requests()), want)
					}
				},
				Config:   config,
				PlanOnly: true,
			},
		},
	})
}
