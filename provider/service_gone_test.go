package provider

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestAccServiceResource_wrongBaseURLKeepsState: a base_url that answers
// 404 everywhere (a path typed wrong, an outdated ConnectWise codebase) is
// not taken for a service deleted outside Terraform. The refresh fails,
// naming the settings to check, instead of dropping the service from the
// state and planning to create it again (on Autotask a second billable
// service); with the address fixed, nothing is planned.
func TestAccServiceResource_wrongBaseURLKeepsState(t *testing.T) {
	t.Parallel()
	for _, system := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(system), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, system)
			good := e.baseURL()
			bad := strings.TrimSuffix(good, "/") + "/stale/"
			if system == psa.SystemConnectWise {
				bad = strings.Replace(good, "/apis/3.0", "/v2019_1/apis/3.0", 1)
			}
			config := testAccServiceResourceConfig(e, "Svc", 1, "")
			badConfig := strings.Replace(config, fmt.Sprintf("%q", good), fmt.Sprintf("%q", bad), 1)
			if badConfig == config {
				t.Fatalf("the configuration does not name base URL %q:\n%s", good, config)
			}
			// Autotask finds services by a query, whose 404 is of the
			// endpoint, not of the service, and Kaseya BMS's sign-in
			// answers 404 first; ConnectWise reads it by id.
			wantErr := regexp.MustCompile(`(?s)Cannot Confirm PSA Service Is Gone.*base_url`)
			if system != psa.SystemConnectWise {
				wantErr = regexp.MustCompile(`(?s)Error Reading PSA Service.*no such endpoint at\s+the configured address: check base_url`)
			}
			oneService := func(*terraform.State) error {
				n := 0
				for _, s := range e.services() {
					if s.Name == "Svc" {
						n++
					}
				}
				if n != 1 {
					return fmt.Errorf("%d services named Svc in the PSA, want 1", n)
				}
				return nil
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: config, Check: oneService},
					{
						Config:      badConfig,
						PlanOnly:    true,
						ExpectError: wantErr,
					},
					{Config: config, PlanOnly: true},
					{Config: config, Check: oneService},
				},
			})
		})
	}
}

// TestAccServiceResource_planTimeChecksOnUpdate: a ConnectWise customer
// description made too long on an existing service, and an Autotask
// allocation code that cannot be an id, fail the plan, not the apply.
func TestAccServiceResource_planTimeChecksOnUpdate(t *testing.T) {
	t.Parallel()
	t.Run("connectwise description", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t, psa.SystemConnectWise)
		long := fmt.Sprintf("  invoice_description = %q\n", strings.Repeat("x", 6001))
		resource.UnitTest(t, resource.TestCase{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Steps: []resource.TestStep{
				{Config: testAccServiceResourceConfig(e, "Short", 1, "")},
				{
					Config:      testAccServiceResourceConfig(e, "Short", 1, long),
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(`Customer Description Too Long for ConnectWise`),
				},
			},
		})
	})
	t.Run("autotask billing code", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t, psa.SystemAutotask)
		resource.UnitTest(t, resource.TestCase{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Steps: []resource.TestStep{{
				Config:      testAccServiceResourceConfig(e, "Svc", 1, "  autotask {\n    billing_code_id = \"abc\"\n  }\n"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Invalid PSA ID.*allocation code`),
			}},
		})
	})
}

// TestAccProvider_wrongBaseURLFailsPlan: a base_url that answers 404 to
// everything (a proxy, a path typed wrong, a stale ConnectWise codebase)
// fails the plan of every check that reads the PSA, as refused
// credentials do, instead of warning and leaving the error to the apply:
// a new customer mapping, a new product mapping, a new service, a data
// source. Each error names base_url. ConnectWise reads contracts and
// services by id, whose 404 does not tell a wrong address from a wrong
// id: its errors say that the PSA does not answer a basic read either,
// not that the contract or service does not exist (check the id), which
// would send the user after the wrong setting. Kaseya BMS's sign-in
// answers 404 first.
func TestAccProvider_wrongBaseURLFailsPlan(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			serviceID := e.addService("Existing", 1)
			good := e.baseURL()
			bad := strings.TrimSuffix(good, "/") + "/stale/"
			if sys == psa.SystemConnectWise {
				bad = strings.Replace(good, "/apis/3.0", "/v2019_1/apis/3.0", 1)
			}
			wrong := func(config string) string {
				t.Helper()
				out := strings.Replace(config, fmt.Sprintf("%q", good), fmt.Sprintf("%q", bad), 1)
				if out == config {
					t.Fatalf("the configuration does not name base URL %q:\n%s", good, config)
				}
				return out
			}
			endpoint := `no\s+such\s+endpoint\s+at\s+the\s+configured\s+address:\s+check\s+base_url`
			// Kaseya BMS signs in first, and its sign-in's 404 is the
			// address's (psa.ErrEndpointNotFound) already.
			byID := endpoint
			if sys == psa.SystemConnectWise {
				byID = `does\s+not\s+answer\s+a\s+basic\s+read\s+at\s+the\s+configured\s+address\s+either.*wrong\s+address\s+than\s+from\s+a\s+wrong\s+id:\s+check\s+base_url`
			}
			for _, tc := range []struct {
				name, config, want string
			}{
				{"customer mapping", testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, ""),
					`Unable to Verify PSA Contract.*` + byID},
				{"product mapping", testAccProductMappingResourceConfig(e, "CIXA-MSP", serviceID, ""),
					`Unable to Verify PSA Service.*` + byID},
				{"service", testAccServiceResourceConfig(e, "New", 1, ""),
					`Unable to Verify PSA Service Fields.*` + endpoint},
				{"data source", e.providerConfig() + `
data "psa_company" "test" {
  name = "Acme"
}
`, `Error Reading PSA Company.*` + endpoint},
				{"contract data source", e.providerConfig() + fmt.Sprintf(`
data "psa_contract" "test" {
  company_id = %q
  name       = "Managed Services"
}
`, acme.company), `Error Reading PSA Contract.*` + endpoint},
				{"ticket lookup", e.providerConfig() + `
data "psa_ticket_lookup" "test" {
  kind = "queue"
  name = "Alerts"
}
`, `Error Reading PSA Ticket Settings.*` + endpoint},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					resource.UnitTest(t, resource.TestCase{
						ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
						Steps: []resource.TestStep{{
							Config:      wrong(tc.config),
							PlanOnly:    true,
							ExpectError: regexp.MustCompile(`(?s)` + tc.want),
						}},
					})
				})
			}
		})
	}
}

// TestAccProvider_notAPIAnswerFailsPlan checks that an address that
// answers 200 with what is not the PSA's API (a proxy's or single
// sign-on's sign-in page, another product's JSON) fails the plan of the
// checks that read the PSA (a new customer mapping, product mapping or
// service), with an error that names base_url, instead of warning and
// applying the mapping into the export unchecked. The page itself is not
// quoted, only its title.
func TestAccProvider_notAPIAnswerFailsPlan(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		for _, answer := range []struct{ name, contentType, body string }{
			{"sign-in page", "text/html; charset=utf-8", psatest.SignInPage},
			{"another product's json", "application/json", `{"status":"ok","version":"2.1"}`},
		} {
			t.Run(string(sys)+"/"+answer.name, func(t *testing.T) {
				t.Parallel()
				e := newTestEnv(t, sys)
				acme := e.addCustomerFixture("Acme")
				serviceID := e.addService("Existing", 1)
				e.sim.AddFault(psatest.Fault{Status: http.StatusOK, ContentType: answer.contentType, Body: answer.body})
				notAPI := `not\s+the\s+PSA's\s+API.*check\s+base_url`
				for _, tc := range []struct {
					name, config, want string
				}{
					{"customer mapping", testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, acme.contract, ""),
						`Unable to Verify PSA Contract.*` + notAPI},
					{"product mapping", testAccProductMappingResourceConfig(e, "CIXA-MSP", serviceID, ""),
						`Unable to Verify PSA Service.*` + notAPI},
					{"service", testAccServiceResourceConfig(e, "New", 1, ""),
						`Unable to Verify PSA Service Fields.*` + notAPI},
				} {
					t.Run(tc.name, func(t *testing.T) {
						resource.UnitTest(t, resource.TestCase{
							ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
							Steps: []resource.TestStep{{
								Config:      tc.config,
								PlanOnly:    true,
								ExpectError: regexp.MustCompile(`(?s)` + tc.want),
							}},
						})
					})
				}
			})
		}
	}
}

// TestAccServiceResource_importThenBlock pins what
// examples/resources/psa_service/import.sh says: the import tracks no
// PSA-specific block, so with a configuration that sets one, the first
// plan after the import shows one in-place update of the service (the
// block added), and once it is applied the next plan is empty.
func TestAccServiceResource_importThenBlock(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	serviceID := e.addService("Backup", 5)
	svc, ok := e.sim.Autotask().Service(mustID(serviceID))
	if !ok {
		t.Fatalf("service %s not in the simulator", serviceID)
	}
	config := testAccServiceResourceConfig(e, "Backup", 5, fmt.Sprintf(`
  autotask {
    billing_code_id = "%d"
  }
`, svc.BillingCodeID)) + fmt.Sprintf(`
import {
  to = psa_service.test
  id = %q
}
`, serviceID)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("psa_service.test", plancheck.ResourceActionUpdate)},
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
}
