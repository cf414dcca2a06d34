package provider

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// testAccProtoV6ProviderFactories starts the provider in-process for each
// Terraform command of a test.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"psa": providerserver.NewProtocol6WithError(New("test")()),
}

// testEnv is one test's simulator and export file.
type testEnv struct {
	sim        *psatest.Server
	exportPath string
}

// newTestEnv starts a simulator for t and picks an export path in t's
// temporary directory. Nothing is shared between tests, so they run in
// parallel.
func newTestEnv(t *testing.T, opts ...psatest.Option) *testEnv {
	t.Helper()
	return &testEnv{
		sim:        psatest.Start(t, opts...),
		exportPath: filepath.Join(t.TempDir(), "psa-mappings.json"),
	}
}

// providerConfig is the provider block pointing at the simulator. The URL
// goes through HCL, never the environment, which parallel tests share.
func (e *testEnv) providerConfig() string {
	return testAccProviderConfig(e.sim.AutotaskBaseURL(), e.exportPath)
}

func testAccProviderConfig(endpoint, exportPath string) string {
	return fmt.Sprintf(`
provider "psa" {
  export_path = %[2]q

  autotask {
    username         = "api@msp.example"
    secret           = "sim-secret"
    integration_code = "SIMCODE"
    base_url         = %[1]q
  }
}
`, endpoint, exportPath)
}

// readExport reads the test's export file the way psa-syncd does.
func (e *testEnv) readExport() (*export.Document, error) {
	return export.NewStore(e.exportPath).Read()
}

// checkExport runs fn on the export after a step.
func (e *testEnv) checkExport(fn func(*export.Document) error) resource.TestCheckFunc {
	return func(*terraform.State) error {
		doc, err := e.readExport()
		if err != nil {
			return err
		}
		return fn(doc)
	}
}

// updateExport changes the export out of band, as another tool or person
// would.
func (e *testEnv) updateExport(t *testing.T, fn func(*export.Document) error) {
	t.Helper()
	if _, err := export.NewStore(e.exportPath).Update(psa.SystemAutotask, "", fn); err != nil {
		t.Fatalf("updating export out of band: %v", err)
	}
}

func TestAccProvider_missingCredentials(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: fmt.Sprintf(`
provider "psa" {
  autotask {
    username = "api@msp.example"
    base_url = %[1]q
  }
}

data "psa_company" "test" {
  name = "Acme"
}
`, e.sim.AutotaskBaseURL()),
				ExpectError: regexp.MustCompile(`(?s)Missing Autotask Secret.*PSA_AUTOTASK_SECRET.*Missing Autotask Integration Code`),
			},
		},
	})
}

func TestAccProvider_exactlyOnePSABlock(t *testing.T) {
	t.Parallel()

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: `
provider "psa" {
  export_path = "psa-mappings.json"
}

data "psa_company" "test" {
  name = "Acme"
}
`,
				ExpectError: regexp.MustCompile(`Exactly\s+one\s+of\s+these\s+attributes\s+must\s+be\s+configured:\s+\[autotask\]`),
			},
		},
	})
}

func TestAccProvider_unknownConfiguration(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	// A secret that depends on a resource is unknown when the provider is
	// configured for the plan.
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: fmt.Sprintf(`
resource "terraform_data" "secret" {
  input = "late"
}

provider "psa" {
  autotask {
    username         = "api@msp.example"
    secret           = terraform_data.secret.output
    integration_code = "SIMCODE"
    base_url         = %[1]q
  }
}

data "psa_company" "test" {
  name = "Acme"
}
`, e.sim.AutotaskBaseURL()),
				ExpectError: regexp.MustCompile(`Unknown Autotask Secret`),
			},
		},
	})
}

// TestAccProvider_secretsNotLogged runs a full apply with trace logging and
// checks that neither the secret nor the integration code reach the log,
// the state or the export. The secret comes from the environment and the
// integration code from a sensitive variable, the two ways users pass them;
// neither is written into the configuration, which the test framework logs.
// It is not parallel because it sets process environment variables.
func TestAccProvider_secretsNotLogged(t *testing.T) {
	const (
		secret = "s3cr3t-Zq81-never-log-me"
		code   = "INTCODE-7Hq2-never-log-me"
	)
	logPath := filepath.Join(t.TempDir(), "terraform.log")
	t.Setenv("TF_LOG", "TRACE")
	t.Setenv("TF_ACC_LOG_PATH", logPath)
	t.Setenv(envAutotaskSecret, secret)

	e := newTestEnv(t, psatest.WithAutotaskCredentials("api@msp.example", secret, code))
	company := e.sim.Autotask().AddCompany("Acme")
	e.sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Acme Managed Services"})

	hcl := fmt.Sprintf(`
variable "integration_code" {
  type      = string
  sensitive = true
}

provider "psa" {
  export_path = %[2]q

  autotask {
    username         = "api@msp.example"
    integration_code = var.integration_code
    base_url         = %[1]q
  }
}

resource "psa_service" "test" {
  name       = "Sophos Intercept X Advanced"
  unit_price = 4.5
}

resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = psa_service.test.id
}

data "psa_company" "acme" {
  name = "Acme"
}

data "psa_contract" "acme" {
  company_id = data.psa_company.acme.id
  name       = "Acme Managed Services"
}

resource "psa_customer_mapping" "acme" {
  customer_id = "718b6047"
  company_id  = data.psa_company.acme.id
  contract_id = data.psa_contract.acme.id
}
`, e.sim.AutotaskBaseURL(), e.exportPath)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:          hcl,
				ConfigVariables: config.Variables{"integration_code": config.StringVariable(code)},
				Check: resource.ComposeAggregateTestCheckFunc(
					func(s *terraform.State) error {
						for addr, rs := range s.RootModule().Resources {
							for k, v := range rs.Primary.Attributes {
								if strings.Contains(v, secret) || strings.Contains(v, code) {
									return fmt.Errorf("%s.%s contains a credential", addr, k)
								}
							}
						}
						return nil
					},
					func(*terraform.State) error {
						data, err := os.ReadFile(e.exportPath)
						if err != nil {
							return err
						}
						if strings.Contains(string(data), secret) || strings.Contains(string(data), code) {
							return fmt.Errorf("export %s contains a credential", e.exportPath)
						}
						return nil
					},
				),
			},
		},
	})

	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("reading log: %v", err)
	}
	if len(data) == 0 {
		t.Fatal("log is empty: trace logging was not captured")
	}
	if !strings.Contains(string(data), "Configured PSA provider") {
		t.Error("log has no provider log lines: provider logging was not captured")
	}
	for name, s := range map[string]string{"secret": secret, "integration code": code} {
		if i := strings.Index(string(data), s); i >= 0 {
			t.Errorf("log contains the %s at byte %d: %q", name, i, excerpt(data, i))
		}
	}
}

func excerpt(data []byte, i int) string {
	lo, hi := max(0, i-200), min(len(data), i+100)
	return string(data[lo:hi])
}

// TestAccProvider_deleteGone destroys, without refreshing first, objects
// that were removed out of band: Delete must treat "already gone" as done.
func TestAccProvider_deleteGone(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	acme := e.addCustomerFixture("Acme")
	config := e.providerConfig() + fmt.Sprintf(`
resource "psa_service" "test" {
  name       = "Gone before destroy"
  unit_price = 1
}

resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = psa_service.test.id
}

resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[1]q
  contract_id = %[2]q
}

resource "psa_integration" "test" {}
`, acme.company, acme.contract)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		AdditionalCLIOptions:     &resource.AdditionalCLIOptions{Plan: resource.PlanOptions{NoRefresh: true}},
		Steps: []resource.TestStep{
			{
				Config: config,
			},
			{
				PreConfig: func() {
					s, err := e.simService("Gone before destroy")
					if err != nil {
						t.Fatal(err)
					}
					e.sim.Autotask().DeleteService(s.ID)
					e.sim.ResetRequests()
					e.updateExport(t, func(doc *export.Document) error {
						doc.DeleteProduct("sophos", "CIXA-MSP")
						doc.DeleteCustomer("sophos", "cust-1")
						doc.Integration = nil
						return nil
					})
				},
				Config:  config,
				Destroy: true,
			},
		},
		CheckDestroy: func(*terraform.State) error {
			// Delete ran against the PSA and got "not found".
			for _, r := range e.sim.Requests() {
				if strings.Contains(strings.ToLower(r.Path), "/services/") && r.Status == http.StatusNotFound {
					return nil
				}
			}
			return fmt.Errorf("destroy made no request for the deleted service; requests: %+v", e.sim.Requests())
		},
	})
}

// TestAccProvider_environment checks the environment fallbacks: values in
// the provider block win over the environment, and unset ones come from it.
// It is not parallel because it sets process environment variables.
func TestAccProvider_environment(t *testing.T) {
	e := newTestEnv(t)
	e.sim.Autotask().AddCompany("Acme")
	t.Setenv(envAutotaskUsername, "wrong@msp.example")
	t.Setenv(envAutotaskSecret, "wrong-secret")
	t.Setenv(envAutotaskIntegrationCode, "WRONGCODE")
	t.Setenv(envAutotaskBaseURL, "http://127.0.0.1:1/ATServicesRest/")
	t.Setenv(envExportPath, e.exportPath)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: fmt.Sprintf(`
provider "psa" {
  autotask {
    username         = "api@msp.example"
    secret           = "sim-secret"
    integration_code = "SIMCODE"
    base_url         = %[1]q
  }
}

data "psa_company" "test" {
  name = "Acme"
}

resource "psa_integration" "test" {}
`, e.sim.AutotaskBaseURL()),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrSet("data.psa_company.test", "id"),
					resource.TestCheckResourceAttr("psa_integration.test", "id", e.exportPath),
					e.checkExport(integrationIs(export.Integration{Enabled: true, Schedule: "every 24h", Timezone: "UTC"})),
				),
			},
		},
	})
}

func TestAccProvider_missingExportPath(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: fmt.Sprintf(`
provider "psa" {
  autotask {
    username         = "api@msp.example"
    secret           = "sim-secret"
    integration_code = "SIMCODE"
    base_url         = %[1]q
  }
}

resource "psa_integration" "test" {}
`, e.sim.AutotaskBaseURL()),
				ExpectError: regexp.MustCompile(`(?s)Missing Mapping Export Path.*PSA_EXPORT_PATH`),
			},
		},
	})
}

func TestAccProvider_wrongCredentials(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psatest.WithAutotaskCredentials("api@msp.example", "the-real-secret", "SIMCODE"))

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				// providerConfig sends "sim-secret".
				Config: e.providerConfig() + `
data "psa_company" "test" {
  name = "Acme"
}
`,
				ExpectError: regexp.MustCompile(`(?s)Error Reading PSA Company.*refused\s+the\s+credentials`),
			},
		},
	})
}

// TestAccProvider_psaUnavailable checks that plan-time checks are a
// courtesy: when the PSA cannot answer them, a plan that only changes the
// export warns and goes ahead.
func TestAccProvider_psaUnavailable(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	acme := e.addCustomerFixture("Acme")
	e.sim.AddFault(psatest.Fault{Path: "/ATServicesRest/V1.0/Contracts*", Status: http.StatusServiceUnavailable})

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: fmt.Sprintf(`
provider "psa" {
  export_path = %[2]q
  max_retries = 0

  autotask {
    username         = "api@msp.example"
    secret           = "sim-secret"
    integration_code = "SIMCODE"
    base_url         = %[1]q
  }
}

resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[3]q
  contract_id = %[4]q
}
`, e.sim.AutotaskBaseURL(), e.exportPath, acme.company, acme.contract),
				Check: resource.ComposeAggregateTestCheckFunc(
					e.checkExport(customerMappingIs(export.CustomerMapping{
						Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true,
					})),
					func(*terraform.State) error {
						for _, r := range e.sim.Requests() {
							if strings.Contains(r.Path, "/Contracts/") && r.Status == http.StatusServiceUnavailable {
								return nil
							}
						}
						return fmt.Errorf("the plan never asked the PSA for the contract")
					},
				),
			},
		},
	})
}
