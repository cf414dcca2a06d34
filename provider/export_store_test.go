package provider

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
)

// TestAccExportStore_s3 keeps the export in a bucket of a real
// S3-compatible server: create, update, import and destroy all go through
// conditional writes to the object.
func TestAccExportStore_s3(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	e.exportURL = s3test.Start(t).ObjectURL("ci/psa-mappings.json")
	acme := e.addCustomerFixture("Acme")
	config := func(contract string) string {
		return testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, contract, "")
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config(acme.contract),
				Check: e.checkExport(customerMappingIs(export.CustomerMapping{
					Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true,
				})),
			},
			{
				Config: config(acme.otherContract),
				Check: e.checkExport(customerMappingIs(export.CustomerMapping{
					Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.otherContract, UsageSync: true,
				})),
			},
			{
				ResourceName:      "psa_customer_mapping.test",
				ImportState:       true,
				ImportStateId:     "sophos/cust-1",
				ImportStateVerify: true,
			},
		},
	})
	doc, err := e.readExport()
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.CustomerMappings) != 0 {
		t.Errorf("after destroy the S3 export still holds %+v", doc.CustomerMappings)
	}
}

// TestAccExportStore_missingExport: an export that vanished while the
// state holds mappings fails the plan, naming the store, instead of
// planning to create every mapping in a new export.
func TestAccExportStore_missingExport(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	config := testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, "")
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					if err := os.Remove(e.exportPath); err != nil {
						t.Fatal(err)
					}
				},
				Config:   config,
				PlanOnly: true,
				ExpectError: regexp.MustCompile(`(?s)Mapping Export Not Found.*Customer\s+mapping\s+sophos/cust-1\s+is\s+in\s+the\s+Terraform\s+state.*` +
					regexp.QuoteMeta(e.exportPath) + `.*terraform\s+state\s+rm`),
			},
			{
				// Put back, the export plans nothing again.
				PreConfig: func() {
					e.updateExport(t, func(doc *export.Document) error {
						doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true})
						return nil
					})
				},
				Config:   config,
				PlanOnly: true,
			},
		},
	})
}

// removeExportBeforeApply is a pre-apply plan check that removes the
// export file after the plan was saved: the step's apply then runs that plan
// against a lost export, as a plan saved in CI and applied later would.
type removeExportBeforeApply struct{ path string }

func (c removeExportBeforeApply) CheckPlan(_ context.Context, _ plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	resp.Error = os.Remove(c.path)
}

// TestAccExportStore_lostBeforeApply applies a saved plan that changes one
// mapping and then one that removes one, each after the export was lost:
// the apply fails, naming the store and saying how to recover, and writes
// no new export holding only that change.
func TestAccExportStore_lostBeforeApply(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	product := export.ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: service, ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true}
	customer := export.CustomerMapping{Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true}
	config := func(usageSync bool, withProduct bool) string {
		c := testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, fmt.Sprintf("  usage_sync = %t", usageSync))
		if withProduct {
			c += fmt.Sprintf(`
resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = %q
}
`, service)
		}
		return c
	}
	lost := resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{removeExportBeforeApply{e.exportPath}}}
	notFound := regexp.MustCompile(`(?s)Mapping Export Not Found.*is\s+in\s+the\s+Terraform\s+state.*` +
		regexp.QuoteMeta(e.exportPath) + `.*restore\s+it.*terraform\s+state\s+rm`)
	// restore puts the export back as the first step wrote it, and checks
	// that the failed apply wrote none.
	restore := func() {
		if _, err := os.Stat(e.exportPath); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the failed apply wrote a new export (%v)", err)
		}
		e.updateExport(t, func(doc *export.Document) error {
			doc.PutProduct(product)
			doc.PutCustomer(customer)
			return nil
		})
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config(true, true)},
			{
				// An update of the customer mapping.
				Config:           config(false, true),
				ConfigPlanChecks: lost,
				ExpectError:      notFound,
			},
			{
				// The removal of the product mapping.
				PreConfig:        restore,
				Config:           config(true, false),
				ConfigPlanChecks: lost,
				ExpectError:      notFound,
			},
			{
				// Restored, the export plans nothing again.
				PreConfig: restore,
				Config:    config(true, true),
				PlanOnly:  true,
			},
		},
	})
}

// TestAccExportStore_duplicateKey refuses two resources of one
// configuration with the same key at plan time.
func TestAccExportStore_duplicateKey(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	initech := e.addCustomerFixture("Initech")
	config := e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "acme" {
  customer_id = "cust-1"
  company_id  = %[1]q
  contract_id = %[2]q
}

resource "psa_customer_mapping" "initech" {
  customer_id = "cust-1"
  company_id  = %[3]q
  contract_id = %[4]q
}
`, acme.company, acme.contract, initech.company, initech.contract)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      config,
			ExpectError: regexp.MustCompile(`(?s)Duplicate Mapping Export Entry.*Two resources of this configuration manage\s+customer\s+mapping\s+sophos/cust-1`),
		}},
	})
	if _, err := os.Stat(e.exportPath); err == nil {
		t.Error("the refused plan wrote an export")
	}
}

// TestAccExportStore_duplicateKeyOfExistingResource adds a resource with
// the key of one applied before (a copied module, two for_each maps that
// both list a product). Its plan must fail as a duplicate, as when both
// are new, and not adopt the entry with the interrupted-apply warning: both
// resources would then manage it, and removing either later would remove
// the entry the other still manages.
func TestAccExportStore_duplicateKeyOfExistingResource(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	one := e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "a" {
  product    = "CIXA-MSP"
  service_id = %[1]q
}

resource "psa_customer_mapping" "a" {
  customer_id = "cust-1"
  company_id  = %[2]q
  contract_id = %[3]q
}

resource "psa_integration" "a" {
  schedule = "daily 02:00"
}
`, service, acme.company, acme.contract)
	copied := func(kind, body string) string {
		return one + fmt.Sprintf("\nresource %q \"b\" {\n%s}\n", kind, body)
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: one},
			{
				Config:      copied("psa_product_mapping", fmt.Sprintf("  product    = \"CIXA-MSP\"\n  service_id = %q\n", service)),
				ExpectError: regexp.MustCompile(`(?s)Duplicate Mapping Export Entry.*Two resources of this configuration manage\s+product\s+mapping\s+sophos/CIXA-MSP`),
			},
			{
				Config: copied("psa_customer_mapping", fmt.Sprintf("  customer_id = \"cust-1\"\n  company_id  = %q\n  contract_id = %q\n  usage_sync  = false\n",
					acme.company, acme.contract)),
				ExpectError: regexp.MustCompile(`(?s)Duplicate Mapping Export Entry.*Two resources of this configuration manage\s+customer\s+mapping\s+sophos/cust-1`),
			},
			{
				Config:      copied("psa_integration", "  schedule = \"daily 02:00\"\n"),
				ExpectError: regexp.MustCompile(`(?s)Duplicate Mapping Export Entry.*Two resources of this configuration manage\s+the\s+integration`),
			},
			{
				// The refused plans changed nothing.
				Config: one,
				Check: e.checkExport(func(doc *export.Document) error {
					_, product := doc.Product("sophos", "CIXA-MSP")
					_, customer := doc.Customer("sophos", "cust-1")
					if !product || !customer || doc.Integration == nil {
						return fmt.Errorf("export = %+v, want the product mapping, the customer mapping and the integration settings", doc)
					}
					return nil
				}),
			},
		},
	})
}

// TestAccExportStore_adoptAfterKilledApply: an apply killed after writing
// an entry but before saving the state left it in the export; the next
// apply adopts the identical entry instead of failing, and writes its owner
// token on it, so that its destroy removes it.
func TestAccExportStore_adoptAfterKilledApply(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	want := export.CustomerMapping{Source: "sophos", CustomerID: "cust-1", CustomerName: "Acme", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			PreConfig: func() {
				e.updateExport(t, func(doc *export.Document) error {
					doc.PutCustomer(want)
					return nil
				})
			},
			Config: testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, `  customer_name = "Acme"`),
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr("psa_customer_mapping.test", "id", "sophos/cust-1"),
				e.checkExport(func(doc *export.Document) error {
					got, _ := doc.Customer("sophos", "cust-1")
					if got.Owner == "" {
						return fmt.Errorf("the adopted entry %+v has no owner token", got)
					}
					got.Owner = ""
					return customerMappingIs(want)(&export.Document{CustomerMappings: []export.CustomerMapping{got}})
				}),
			),
		}},
		CheckDestroy: e.noMappingsLeft(),
	})
}

func TestAccProvider_exportSettingsConflict(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	config := testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, "")
	config = regexp.MustCompile(`export_path = (".*")`).ReplaceAllString(config, "export_path = $1\n  export_url = $1")
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      config,
			ExpectError: regexp.MustCompile(`(?s)Conflicting Mapping Export Settings.*Keep\s+export_url\s+only`),
		}},
	})
}

// TestAccExportStore_moveWithoutMovedBlock moves every kind of export
// entry to a new resource address without a moved block (renamed; count to
// for_each and module moves plan the same, but the test framework's state
// checks take no for_each keys). Terraform destroys the old instances and
// creates the new ones at the same time: every entry must stay in the
// export, whatever the order in which the export Client commits the
// changes, and a mapping added in the same apply is written with them. A
// destroy afterwards removes them all. Which order an apply takes depends
// on timing; TestProviderData_handOverInOneBatch runs each of them.
func TestAccExportStore_moveWithoutMovedBlock(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	customers := []string{"cust-1", "cust-2", "cust-3"}
	routing := ticketRoutingCases()[psa.SystemAutotask].config
	config := func(name, extra string) string {
		return e.providerConfig() + strings.Replace(routing, `"psa_ticket_routing" "test"`, `"psa_ticket_routing" "`+name+`"`, 1) +
			fmt.Sprintf(`
resource "psa_customer_mapping" %[1]q {
  count       = 3
  customer_id = format("cust-%%d", count.index + 1)
  company_id  = %[2]q
  contract_id = %[3]q
  usage_sync  = false
}

resource "psa_product_mapping" %[1]q {
  product    = "CIXA-MSP"
  service_id = %[4]q
}

resource "psa_integration" %[1]q {
  schedule = "daily 02:00"
}
%[5]s`, name, acme.company, acme.contract, service, extra)
	}
	before := config("old", "")
	after := config("new", fmt.Sprintf(`
resource "psa_customer_mapping" "added" {
  customer_id = "cust-9"
  company_id  = %[1]q
  contract_id = %[2]q
  usage_sync  = false
}
`, acme.company, acme.contract))
	hasAll := e.checkExport(func(doc *export.Document) error {
		var missing []string
		for _, c := range customers {
			if _, ok := doc.Customer("sophos", c); !ok {
				missing = append(missing, "customer mapping "+c)
			}
		}
		if _, ok := doc.Product("sophos", "CIXA-MSP"); !ok {
			missing = append(missing, "product mapping CIXA-MSP")
		}
		if doc.Integration == nil {
			missing = append(missing, "integration settings")
		}
		if doc.Tickets == nil {
			missing = append(missing, "ticket routing")
		}
		if len(missing) > 0 {
			return fmt.Errorf("the export lost %s", strings.Join(missing, ", "))
		}
		return nil
	})
	var moved []plancheck.PlanCheck
	for _, a := range []string{"psa_customer_mapping.%s[0]", "psa_product_mapping.%s", "psa_integration.%s", "psa_ticket_routing.%s"} {
		moved = append(moved,
			plancheck.ExpectResourceAction(fmt.Sprintf(a, "old"), plancheck.ResourceActionDestroy),
			plancheck.ExpectResourceAction(fmt.Sprintf(a, "new"), plancheck.ResourceActionCreate))
	}

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: before, Check: hasAll},
			{
				// The step fails when the plan after the apply is not empty.
				Config:           after,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: moved},
				Check:            hasAll,
			},
		},
		CheckDestroy: e.checkExport(func(doc *export.Document) error {
			if len(doc.ProductMappings) > 0 || len(doc.CustomerMappings) > 0 || doc.Integration != nil || doc.Tickets != nil {
				return fmt.Errorf("export after destroy = %+v, want no entries", doc)
			}
			return nil
		}),
	})
}

// TestAccExportStore_otherInstance: a store that now holds the export of
// another instance of the same PSA (an export_url copied from another
// tenant's pipeline, or the object replaced by that tenant's export) fails
// the plan, naming the store and both instances, instead of planning to
// rewrite every mapping from that tenant's entries (which the apply would
// then refuse), also when the plan changes a mapping with -refresh=false.
func TestAccExportStore_otherInstance(t *testing.T) {
	t.Parallel()
	for _, system := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(system), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, system)
			acme := e.addCustomerFixture("Acme")
			config := testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, "")
			other := "ci:29999999@webservices2.autotask.net"
			if system == psa.SystemConnectWise {
				other = "company:othermsp@api-eu.myconnectwise.net"
			}
			var mine export.Document // the export as the first step wrote it
			otherInstance := regexp.MustCompile(`(?s)Mapping Export of Another PSA.*` + regexp.QuoteMeta(e.exportPath) +
				`.*belongs\s+to\s+` + string(system) + `\s+instance\s+"` + regexp.QuoteMeta(other) + `"`)
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: config},
					{
						PreConfig: func() {
							e.updateExport(t, func(doc *export.Document) error {
								mine = *doc.Clone()
								doc.PSA.Instance = other
								doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "cust-1", CompanyID: "901", ContractID: "902", UsageSync: true})
								return nil
							})
						},
						Config:      config,
						PlanOnly:    true,
						ExpectError: otherInstance,
					},
					{
						// A change planned with -refresh=false (a PlanOnly
						// step's first plan), which reads nothing before.
						Config:      testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, "  usage_sync = false"),
						PlanOnly:    true,
						ExpectError: otherInstance,
					},
					{
						// Put back, the export plans nothing again.
						PreConfig: func() {
							e.updateExport(t, func(doc *export.Document) error {
								*doc = mine
								return nil
							})
						},
						Config:   config,
						PlanOnly: true,
					},
				},
			})
		})
	}
}

// TestConfigure_plainHTTPToken: a psa-syncd API token that the provider
// would send over plain http:// to a host other than this machine
// (export_token to export_url, psa_syncd_api_token to psa_syncd_url)
// warns on the URL, without showing the token; https://, a loopback host,
// or no token: no warning.
func TestConfigure_plainHTTPToken(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	const token = "psa-syncd-token-1234"
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		warn  string // attribute warned on, "" for none
	}{
		{"export over http", map[string]string{"export_url": "http://psa-syncd.internal:9810", "export_token": token}, "export_url"},
		{"export over http, no token", map[string]string{"export_url": "http://psa-syncd.internal:9810"}, ""},
		{"export over https", map[string]string{"export_url": "https://psa-syncd.internal:9810", "export_token": token}, ""},
		{"export to loopback", map[string]string{"export_url": "http://127.0.0.1:9810", "export_token": token}, ""},
		{"export to localhost", map[string]string{"export_url": "http://localhost:9810", "export_token": token}, ""},
		{"export to ::1", map[string]string{"export_url": "http://[::1]:9810", "export_token": token}, ""},
		{"psa-syncd over http", map[string]string{"psa_syncd_url": "http://10.0.4.7:9810/psa", "psa_syncd_api_token": token}, "psa_syncd_url"},
		{"psa-syncd over http, no token", map[string]string{"psa_syncd_url": "http://10.0.4.7:9810"}, ""},
		{"psa-syncd over https", map[string]string{"psa_syncd_url": "https://10.0.4.7:9810", "psa_syncd_api_token": token}, ""},
		{"psa-syncd to loopback", map[string]string{"psa_syncd_url": "http://127.0.0.2:9810", "psa_syncd_api_token": token}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server := NewProtocol6(New("test")())()
			schemas, err := server.GetProviderSchema(t.Context(), &tfprotov6.GetProviderSchemaRequest{})
			if err != nil || len(schemas.Diagnostics) > 0 {
				t.Fatalf("GetProviderSchema: %v %v", err, schemas.Diagnostics)
			}
			typ := schemas.Provider.ValueType()
			var attrs map[string]tftypes.Value
			if err := providerConfigValue(t, typ, e).As(&attrs); err != nil {
				t.Fatal(err)
			}
			attrs = maps.Clone(attrs)
			for k, v := range tc.attrs {
				attrs[k] = str(v)
			}
			if _, ok := tc.attrs["export_url"]; ok {
				attrs["export_path"] = tftypes.NewValue(tftypes.String, nil)
			}
			resp, err := server.ConfigureProvider(t.Context(), &tfprotov6.ConfigureProviderRequest{TerraformVersion: "1.5.7",
				Config: dynamic(t, typ, tftypes.NewValue(typ, attrs))})
			if err != nil {
				t.Fatal(err)
			}
			var warned []*tfprotov6.Diagnostic
			for _, d := range resp.Diagnostics {
				if d.Severity == tfprotov6.DiagnosticSeverityError {
					t.Fatalf("ConfigureProvider: %s", diagnosticsText(resp.Diagnostics))
				}
				if d.Summary == "psa-syncd API Token Sent Over Plain HTTP" {
					warned = append(warned, d)
				}
				if strings.Contains(d.Summary+d.Detail, token) {
					t.Errorf("diagnostic shows the token: %s: %s", d.Summary, d.Detail)
				}
			}
			if tc.warn == "" {
				if len(warned) > 0 {
					t.Errorf("warnings %s, want none", diagnosticsText(warned))
				}
				return
			}
			if len(warned) != 1 || warned[0].Attribute == nil ||
				warned[0].Attribute.String() != tftypes.NewAttributePath().WithAttributeName(tc.warn).String() ||
				!strings.Contains(warned[0].Detail, tc.attrs[tc.warn]) || !strings.Contains(warned[0].Detail, "clear text") {
				t.Errorf("warnings %s, want one on %s naming its URL", diagnosticsText(resp.Diagnostics), tc.warn)
			}
		})
	}
}

// breakExportBeforeApply is a pre-apply plan check that leaves the export
// file truncated after the plan was saved (see breakExport): the step's
// apply then runs against a store that fails the reads its plan made.
type breakExportBeforeApply struct {
	t    *testing.T
	path string
	kept *[]byte
}

func (c breakExportBeforeApply) CheckPlan(context.Context, plancheck.CheckPlanRequest, *plancheck.CheckPlanResponse) {
	*c.kept = breakExport(c.t, c.path)
}

// breakExport truncates the export file, so that every read of it fails,
// and returns what it held.
func breakExport(t *testing.T, path string) []byte {
	t.Helper()
	kept, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	return kept
}

// TestAccExportStore_failedReadNotKept: the failed read of the export that
// a command keeps (see readExport) is not kept beyond the command. A plan
// that fails on a store that cannot be read is followed by an apply that
// reads the store again once it is back, and writes the change; a store
// that fails after a plan that read it fails the apply, which reads it
// again rather than going on with the plan's read, and leaves it as it was
// (no export written in its place); once back, the apply writes the change.
// Terraform runs the plan and the apply of `terraform apply` in provider
// processes of their own, each configured anew, as terraform-plugin-testing
// does here, in one process configured for each command.
func TestAccExportStore_failedReadNotKept(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	config := func(contract string) string {
		return testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, contract, "")
	}
	mapped := func(contract string) resource.TestCheckFunc {
		return e.checkExport(customerMappingIs(export.CustomerMapping{
			Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: contract, UsageSync: true,
		}))
	}
	unreadable := regexp.MustCompile(`(?s)Unable to Read Mapping Export.*` + regexp.QuoteMeta(e.exportPath) + `.*not valid JSON`)
	// The apply plans the change again without reading the export, and
	// its write reads it.
	unwritable := regexp.MustCompile(`(?s)Unable to Update Mapping Export.*` + regexp.QuoteMeta(e.exportPath) + `.*not valid JSON`)
	var kept []byte
	restore := func() {
		if got, err := os.ReadFile(e.exportPath); err != nil || string(got) != "{" {
			t.Errorf("the failed command changed the unreadable export to %q (%v)", got, err)
		}
		if err := os.WriteFile(e.exportPath, kept, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config(acme.contract), Check: mapped(acme.contract)},
			{
				PreConfig:   func() { kept = breakExport(t, e.exportPath) },
				Config:      config(acme.otherContract),
				ExpectError: unreadable,
			},
			{PreConfig: restore, Config: config(acme.otherContract), Check: mapped(acme.otherContract)},
			{
				Config:           config(acme.contract),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{breakExportBeforeApply{t, e.exportPath, &kept}}},
				ExpectError:      unwritable,
			},
			{PreConfig: restore, Config: config(acme.contract), Check: mapped(acme.contract)},
		},
	})
}
