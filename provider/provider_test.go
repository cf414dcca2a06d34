package provider

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// testAccProtoV6ProviderFactories starts the provider in-process for each
// Terraform command of a test.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"psa": func() (tfprotov6.ProviderServer, error) { return NewProtocol6(New("test")())(), nil },
}

// testEnv is one test's simulator and export file.
type testEnv struct {
	system     psa.System
	sim        *psatest.Server
	exportPath string
	// exportURL, when set, is the provider's export_url instead of
	// export_path, and exportToken its export_token.
	exportURL, exportToken string
}

// newTestEnv starts a simulator of the system for t and picks an export path
// in t's temporary directory. Nothing is shared between tests, so they run
// in parallel.
func newTestEnv(t *testing.T, system psa.System, opts ...psatest.Option) *testEnv {
	t.Helper()
	return &testEnv{
		system:     system,
		sim:        psatest.Start(t, append([]psatest.Option{psatest.WithSystem(system)}, opts...)...),
		exportPath: filepath.Join(t.TempDir(), "psa-mappings.json"),
	}
}

// providerConfig is the provider block pointing at the simulator.
func (e *testEnv) providerConfig() string {
	return e.providerConfigWith("")
}

// providerConfigWith is providerConfig with extra provider attributes.
func (e *testEnv) providerConfigWith(extra string) string {
	store := fmt.Sprintf("export_path = %q\n", e.exportPath)
	if e.exportURL != "" {
		store = fmt.Sprintf("export_url = %q\n", e.exportURL)
		if e.exportToken != "" {
			store += fmt.Sprintf("  export_token = %q\n", e.exportToken)
		}
	}
	return fmt.Sprintf(`
provider "psa" {
  %[1]s%[2]s%[3]s}
`, store, extra, e.psaBlock())
}

// readExport reads the test's export the way psa-syncd does.
func (e *testEnv) readExport() (*export.Document, error) {
	if e.exportURL == "" {
		return export.NewStore(e.exportPath).Read()
	}
	b, err := export.OpenBackend(context.Background(), e.exportURL, export.BackendOptions{Token: e.exportToken})
	if err != nil {
		return nil, err
	}
	doc, _, err := export.NewClient(b).Read(context.Background())
	return doc, err
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
	if _, err := export.NewStore(e.exportPath).Update(e.system, "", fn); err != nil {
		t.Fatalf("updating export out of band: %v", err)
	}
}

func TestAccProvider_missingCredentials(t *testing.T) {
	t.Parallel()
	// Each PSA block sets one value and leaves the rest unset.
	cases := map[psa.System]struct {
		block string
		want  string
	}{
		psa.SystemAutotask: {
			block: `autotask {
    username = "api@msp.example"
    base_url = BASE_URL
  }`,
			want: `(?s)Missing Autotask Secret.*PSA_AUTOTASK_SECRET.*Missing Autotask Integration Code`,
		},
		psa.SystemConnectWise: {
			block: `connectwise {
    company_id = "msp"
  }`,
			want: `(?s)Missing ConnectWise PSA Site.*PSA_CONNECTWISE_SITE.*Missing ConnectWise PSA Public Key.*` +
				`Missing ConnectWise PSA Private Key.*Missing ConnectWise PSA Client ID.*PSA_CONNECTWISE_CLIENT_ID`,
		},
		psa.SystemKaseyaBMS: {
			block: `kaseya_bms {
    username = "api@msp.example"
  }`,
			want: `(?s)Missing Kaseya BMS Hostname.*PSA_KASEYA_BMS_HOSTNAME.*Missing Kaseya BMS Password.*Missing Kaseya BMS Tenant`,
		},
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			tc := cases[sys]

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: `
provider "psa" {
  ` + strings.ReplaceAll(tc.block, "BASE_URL", strconv.Quote(e.baseURL())) + `
}

data "psa_company" "test" {
  name = "Acme"
}
`,
						ExpectError: regexp.MustCompile(tc.want),
					},
				},
			})
		})
	}
}

// TestAccProvider_shortSecrets checks that a credential shorter than
// redact.MinSecret, which the clients' redaction leaves in the text it
// cleans (it would blank out ordinary words), fails the plan naming the
// attribute and its environment variable, before any request is sent: a
// PSA error quoting it would otherwise show it in the plan's output. It is
// not parallel because its last step sets a process environment variable.
func TestAccProvider_shortSecrets(t *testing.T) {
	const short = "q7Z" // redact.MinSecret - 1 characters
	cases := map[psa.System][]struct{ attr, summary, env string }{
		psa.SystemAutotask: {
			{"secret", "Autotask Secret Too Short", envAutotaskSecret},
			{"integration_code", "Autotask Integration Code Too Short", envAutotaskIntegrationCode},
		},
		psa.SystemConnectWise: {
			{"public_key", "ConnectWise PSA Public Key Too Short", envConnectWisePublicKey},
			{"private_key", "ConnectWise PSA Private Key Too Short", envConnectWisePrivateKey},
			{"client_id", "ConnectWise PSA Client ID Too Short", envConnectWiseClientID},
		},
		psa.SystemKaseyaBMS: {
			{"password", "Kaseya BMS Password Too Short", envKaseyaBMSPassword},
		},
	}
	withValue := func(block, attr, value string) string {
		i := strings.LastIndex(block, "}")
		return block[:i] + fmt.Sprintf("  %s = %q\n  ", attr, value) + block[i:]
	}
	for _, sys := range testSystems {
		for _, c := range cases[sys] {
			t.Run(string(sys)+"/"+c.attr, func(t *testing.T) {
				e := newTestEnv(t, sys)
				resource.UnitTest(t, resource.TestCase{
					ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
					Steps: []resource.TestStep{{
						Config: fmt.Sprintf("provider \"psa\" {\n  export_path = %q\n%s}\n\ndata \"psa_company\" \"test\" {\n  name = \"Acme\"\n}\n",
							e.exportPath, withValue(e.psaBlockWithout(c.attr), c.attr, short)),
						ExpectError: regexp.MustCompile(`(?s)` + c.summary + `.*` + c.attr + `.*` + c.env + `.*shorter\s+than\s+4\s+characters`),
					}},
				})
				if n := len(e.sim.Requests()); n != 0 {
					t.Errorf("the provider sent %d requests to the PSA with a credential that short, want none", n)
				}
			})
		}
	}
	t.Run("export_token", func(t *testing.T) {
		e := newTestEnv(t, psa.SystemAutotask)
		e.exportURL, e.exportToken = "https://psa-syncd.example:9810", short
		resource.UnitTest(t, resource.TestCase{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Steps: []resource.TestStep{{
				Config:      e.providerConfig() + "data \"psa_company\" \"test\" {\n  name = \"Acme\"\n}\n",
				ExpectError: regexp.MustCompile(`(?s)Mapping Export Token Too Short.*export_token.*` + envExportToken),
			}},
		})
	})
	t.Run("psa_syncd_api_token", func(t *testing.T) {
		e := newTestEnv(t, psa.SystemAutotask)
		resource.UnitTest(t, resource.TestCase{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Steps: []resource.TestStep{{
				Config: e.providerConfigWith(fmt.Sprintf("  psa_syncd_url = \"https://psa-syncd.example:9810\"\n  psa_syncd_api_token = %q\n", short)) +
					"data \"psa_unmapped_usage\" \"u\" {}\n",
				ExpectError: regexp.MustCompile(`(?s)psa-syncd API Token Too Short.*psa_syncd_api_token.*` + envPSASyncdAPIToken + `.*shorter\s+than\s+4\s+characters`),
			}},
		})
	})
	t.Run("environment", func(t *testing.T) {
		e := newTestEnv(t, psa.SystemKaseyaBMS)
		t.Setenv(envKaseyaBMSPassword, short)
		resource.UnitTest(t, resource.TestCase{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Steps: []resource.TestStep{{
				Config:      "provider \"psa\" {" + e.psaBlockWithout("password") + "}\n\ndata \"psa_company\" \"test\" {\n  name = \"Acme\"\n}\n",
				ExpectError: regexp.MustCompile(`(?s)Kaseya BMS Password Too Short.*` + envKaseyaBMSPassword),
			}},
		})
	})
}

// TestAccProvider_psaSyncdURL: a psa_syncd_url that psa-syncd's API
// client cannot use fails the plan, configured (the attribute's validator)
// or from PSA_SYNCD_URL (naming the variable), without showing a password
// the URL holds. Not parallel: its last step sets a process environment
// variable.
func TestAccProvider_psaSyncdURL(t *testing.T) {
	e := newTestEnv(t, psa.SystemAutotask)
	ds := "data \"psa_unmapped_usage\" \"u\" {}\n"
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      e.providerConfigWith("  psa_syncd_url = \"psa-syncd.example:9810\"\n") + ds,
				ExpectError: regexp.MustCompile(`(?s)Invalid psa-syncd URL.*psa_syncd_url.*must\s+be\s+http\(s\)://host\[:port\]`),
			},
			{
				Config:      e.providerConfigWith("  psa_syncd_url = \"https://psa-syncd.example:9810/?token=abcdef0123\"\n") + ds,
				ExpectError: regexp.MustCompile(`(?s)Invalid psa-syncd URL.*must\s+not\s+carry\s+a\s+password,\s+a\s+query`),
			},
		},
	})
	withPassword := "https://reader:hunter2-secret@psa-syncd.example:9810"
	if err := psaSyncdURL().check(withPassword); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("psaSyncdURL().check(URL with a password) = %v, want an error without the password", err)
	}
	// Without psa_syncd_url the token goes nowhere, and a short one in
	// the environment (set for psa-syncd's own commands) fails nothing.
	t.Setenv(envPSASyncdAPIToken, "q7Z")
	e.addCompany("Acme")
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps:                    []resource.TestStep{{Config: e.providerConfig() + "data \"psa_company\" \"acme\" {\n  name = \"Acme\"\n}\n"}},
	})
	t.Setenv(envPSASyncdAPIToken, "")
	t.Setenv(envPSASyncdURL, withPassword)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      e.providerConfig() + ds,
			ExpectError: regexp.MustCompile(`(?s)Invalid psa-syncd URL.*` + envPSASyncdURL + `.*must\s+not\s+carry\s+a\s+password`),
		}},
	})
}

func TestAccProvider_exactlyOnePSABlock(t *testing.T) {
	t.Parallel()
	want := regexp.MustCompile(`(?s)(Exactly\s+one\s+of\s+these\s+attributes\s+must\s+be\s+configured|only\s+one\)).*\[autotask,connectwise,kaseya_bms\]`)

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
				ExpectError: want,
			},
			{
				Config: `
provider "psa" {
  autotask {}
  kaseya_bms {}
}

data "psa_company" "test" {
  name = "Acme"
}
`,
				ExpectError: want,
			},
		},
	})
}

func TestAccProvider_unknownConfiguration(t *testing.T) {
	t.Parallel()
	want := map[psa.System]string{
		psa.SystemAutotask:    `Unknown Autotask Secret`,
		psa.SystemConnectWise: `Unknown ConnectWise Private Key`,
		psa.SystemKaseyaBMS:   `Unknown Kaseya BMS Password`,
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			name := secretAttribute(sys)
			// A secret that depends on a resource is unknown when the
			// provider is configured for the plan.
			block := strings.Replace(e.psaBlockWithout(name), "{\n", "{\n    "+name+" = terraform_data.secret.output\n", 1)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: `
resource "terraform_data" "secret" {
  input = "late"
}

provider "psa" {` + block + `}

data "psa_company" "test" {
  name = "Acme"
}
`,
						ExpectError: regexp.MustCompile(want[sys]),
					},
				},
			})
		})
	}
}

// TestAccProvider_secretsNotLogged runs a full apply with trace logging and
// checks that no credential reaches the log, the state or the export. One
// secret comes from the environment and, where the PSA has a second, that
// one from a sensitive variable: the two ways users pass them. Neither is
// written into the configuration, which the test framework logs. It is not
// parallel because it sets process environment variables.
func TestAccProvider_secretsNotLogged(t *testing.T) {
	cases := map[psa.System]struct {
		sim      psatest.Option
		env      string // environment variable with the first secret
		variable string // attribute set from the sensitive variable, if any
	}{
		psa.SystemAutotask: {
			sim:      psatest.WithAutotaskCredentials(psatest.DefaultAutotaskUsername, "s3cr3t-Zq81-never-log-me", "INTCODE-7Hq2-never-log-me"),
			env:      envAutotaskSecret,
			variable: "integration_code",
		},
		psa.SystemConnectWise: {
			sim: psatest.WithConnectWiseCredentials(psatest.DefaultConnectWiseCompany, "INTCODE-7Hq2-never-log-me",
				"s3cr3t-Zq81-never-log-me", psatest.DefaultConnectWiseClientID),
			env:      envConnectWisePrivateKey,
			variable: "public_key",
		},
		psa.SystemKaseyaBMS: {
			sim: psatest.WithKaseyaBMSCredentials(psatest.DefaultKaseyaBMSUsername, "s3cr3t-Zq81-never-log-me", psatest.DefaultKaseyaBMSTenant),
			env: envKaseyaBMSPassword,
		},
	}
	const (
		secret = "s3cr3t-Zq81-never-log-me"
		code   = "INTCODE-7Hq2-never-log-me"
	)
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			tc := cases[sys]
			logPath := filepath.Join(t.TempDir(), "terraform.log")
			t.Setenv("TF_LOG", "TRACE")
			t.Setenv("TF_ACC_LOG_PATH", logPath)
			t.Setenv(tc.env, secret)

			e := newTestEnv(t, sys, tc.sim)
			company := e.addCompany("Acme")
			e.addContract(company, "Acme Managed Services", contractRecurring)

			secretName := secretAttribute(sys)
			block := e.psaBlockWithout(secretName, tc.variable)
			vars := config.Variables{"secret": config.StringVariable("unused")}
			if tc.variable != "" {
				block = strings.Replace(block, "{\n", "{\n    "+tc.variable+" = var.secret\n", 1)
				vars["secret"] = config.StringVariable(code)
			}

			hcl := fmt.Sprintf(`
variable "secret" {
  type      = string
  sensitive = true
}

provider "psa" {
  export_path = %[1]q
%[2]s}

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
`, e.exportPath, block)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config:          hcl,
						ConfigVariables: vars,
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
					{
						// A PSA that quotes each write, headers and body,
						// in its error: the apply fails, and neither its
						// diagnostic nor the log shows a credential.
						PreConfig: func() {
							for _, m := range []string{http.MethodPost, http.MethodPatch, http.MethodPut} {
								e.sim.AddFault(psatest.Fault{Method: m, Status: http.StatusBadRequest, EchoRequest: true})
							}
						},
						Config:          strings.Replace(hcl, "unit_price = 4.5", "unit_price = 5.5", 1),
						ConfigVariables: vars,
						ExpectError:     regexp.MustCompile(`echo of the request`),
					},
					{
						// The same on reads: the refresh of the plan
						// and the data sources fail.
						PreConfig: func() {
							e.sim.ClearFaults()
							e.sim.AddFault(psatest.Fault{Method: http.MethodGet, Status: http.StatusBadRequest, EchoRequest: true})
						},
						Config:          hcl,
						ConfigVariables: vars,
						ExpectError:     regexp.MustCompile(`echo of the request`),
					},
					{
						PreConfig:       e.sim.ClearFaults,
						Config:          hcl,
						ConfigVariables: vars,
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
			if !strings.Contains(string(data), "[REDACTED]") {
				t.Error("the log shows no echoed request redacted")
			}
			secrets := map[string]string{"first secret": secret, "second secret": code}
			for _, r := range e.sim.Requests() {
				if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
					secrets["access token"] = tok
				}
			}
			for name, s := range secrets {
				if i := strings.Index(string(data), s); i >= 0 {
					t.Errorf("log contains the %s at byte %d: %q", name, i, excerpt(data, i))
				}
			}
		})
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
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			var serviceID string
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
						Check: resource.TestCheckResourceAttrWith("psa_service.test", "id", func(v string) error {
							serviceID = v
							return nil
						}),
					},
					{
						PreConfig: func() {
							e.deleteService(serviceID)
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
					// Delete asked the PSA for the service and was told it is gone.
					for _, r := range e.sim.Requests() {
						if e.isServiceRequest(r, serviceID) {
							return nil
						}
					}
					return fmt.Errorf("destroy made no request for the deleted service %s; requests: %+v", serviceID, e.sim.Requests())
				},
			})
		})
	}
}

// TestAccProvider_environment checks the environment fallbacks: values in
// the provider block win over the environment, and unset ones come from it.
// It is not parallel because it sets process environment variables.
func TestAccProvider_environment(t *testing.T) {
	wrong := map[psa.System]map[string]string{
		psa.SystemAutotask: {
			envAutotaskUsername:        "wrong@msp.example",
			envAutotaskSecret:          "wrong-secret",
			envAutotaskIntegrationCode: "WRONGCODE",
			envAutotaskBaseURL:         "http://127.0.0.1:1/ATServicesRest/",
		},
		psa.SystemConnectWise: {
			envConnectWiseSite:       "127.0.0.1:1",
			envConnectWiseCompanyID:  "wrong",
			envConnectWisePublicKey:  "wrong-public",
			envConnectWisePrivateKey: "wrong-private",
			envConnectWiseClientID:   "wrong-client",
			envConnectWiseBaseURL:    "http://127.0.0.1:1/v4_6_release/apis/3.0/",
			envConnectWiseCodebase:   "v1_wrong/",
		},
		psa.SystemKaseyaBMS: {
			envKaseyaBMSHostname: "wrong.example",
			envKaseyaBMSUsername: "wrong@msp.example",
			envKaseyaBMSPassword: "wrong-password",
			envKaseyaBMSTenant:   "Wrong MSP",
			envKaseyaBMSBaseURL:  "http://127.0.0.1:1/",
		},
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			e := newTestEnv(t, sys)
			e.addCompany("Acme")
			for k, v := range wrong[sys] {
				t.Setenv(k, v)
			}
			t.Setenv(envExportPath, e.exportPath)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: `
provider "psa" {` + e.psaBlock() + `}

data "psa_company" "test" {
  name = "Acme"
}

resource "psa_integration" "test" {}
`,
						Check: resource.ComposeAggregateTestCheckFunc(
							resource.TestCheckResourceAttrSet("data.psa_company.test", "id"),
							resource.TestCheckResourceAttr("psa_integration.test", "id", e.exportPath),
							e.checkExport(integrationIs(export.Integration{Enabled: true})),
						),
					},
				},
			})
		})
	}
}

// TestAccProvider_environmentInvalid checks that a value from the
// environment gets the check its attribute's validator gives a configured
// one, in an error naming the variable, instead of failing later with
// another error (or not at all). It is not parallel because it sets
// process environment variables.
func TestAccProvider_environmentInvalid(t *testing.T) {
	cases := map[psa.System]struct {
		without []string // attributes left to the environment
		env     map[string]string
		want    string
	}{
		psa.SystemAutotask: {
			without: []string{"base_url"},
			env:     map[string]string{envAutotaskBaseURL: "webservices5.autotask.net/ATServicesRest/"},
			want:    `(?s)Invalid URL.*` + envAutotaskBaseURL + `.*webservices5\.autotask\.net/ATServicesRest/.*must be an absolute`,
		},
		psa.SystemConnectWise: {
			without: []string{"base_url"},
			env: map[string]string{
				envConnectWiseSite:    "https://api-na.myconnectwise.net/v2025_1/",
				envConnectWiseBaseURL: "api-na.myconnectwise.net/v2025_1/apis/3.0/",
			},
			want: `(?s)Invalid ConnectWise Site.*` + envConnectWiseSite + `.*must not have a path.*Invalid URL.*` + envConnectWiseBaseURL,
		},
		psa.SystemKaseyaBMS: {
			without: []string{"base_url"},
			env: map[string]string{
				envKaseyaBMSHostname: "https://bmsemea.kaseya.com/",
				envKaseyaBMSBaseURL:  "api.bmsemea.kaseya.com",
			},
			want: `(?s)Invalid Kaseya BMS Hostname.*` + envKaseyaBMSHostname + `.*Invalid URL.*` + envKaseyaBMSBaseURL,
		},
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			e := newTestEnv(t, sys)
			tc := cases[sys]
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: `
provider "psa" {` + e.psaBlockWithout(tc.without...) + `}

data "psa_company" "test" {
  name = "Acme"
}
`,
						ExpectError: regexp.MustCompile(tc.want),
					},
				},
			})
			if n := len(e.sim.Requests()); n != 0 {
				t.Errorf("the provider sent %d requests to the PSA with an invalid configuration, want none", n)
			}
		})
	}
}

// TestAccProvider_baseURLSecretQuery: a base_url with a query or fragment
// parameter named like a secret (a token copied with the URL) fails the
// plan, configured (the attribute's validator) or from the environment
// (naming the variable), with the value masked, as psa-syncd refuses it;
// before, the provider took it. Not parallel: its second step sets
// process environment variables.
func TestAccProvider_baseURLSecretQuery(t *testing.T) {
	const canary = "CANARY-base-url-token-4d7w"
	env := map[psa.System]string{
		psa.SystemAutotask: envAutotaskBaseURL, psa.SystemConnectWise: envConnectWiseBaseURL, psa.SystemKaseyaBMS: envKaseyaBMSBaseURL,
	}
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			e := newTestEnv(t, sys)
			withSecret := e.baseURL() + "?access_token=" + canary
			masked := regexp.QuoteMeta(`?access_token=`+redact.Mask+`"`) + `\s+must\s+not\s+carry\s+a\s+secret\s+in\s+its\s+query`
			ds := "data \"psa_company\" \"test\" {\n  name = \"Acme\"\n}\n"
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      strings.Replace(e.providerConfig(), strconv.Quote(e.baseURL()), strconv.Quote(withSecret), 1) + ds,
					ExpectError: regexp.MustCompile(`(?s)Invalid URL.*base_url.*` + masked),
				}},
			})
			t.Setenv(env[sys], withSecret)
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      "provider \"psa\" {\n  export_path = " + strconv.Quote(e.exportPath) + "\n" + e.psaBlockWithout("base_url") + "}\n" + ds,
					ExpectError: regexp.MustCompile(`(?s)Invalid URL.*` + env[sys] + `.*` + masked),
				}},
			})
			if n := len(e.sim.Requests()); n != 0 {
				t.Errorf("the provider sent %d requests to the PSA with a secret in base_url, want none", n)
			}
		})
	}
}

// TestAccProvider_environmentInvalidExportURL checks that an export store
// the provider cannot use is blamed on the environment variable that named
// it. It is not parallel because it sets process environment variables.
func TestAccProvider_environmentInvalidExportURL(t *testing.T) {
	e := newTestEnv(t, psa.SystemAutotask)
	t.Setenv(envExportURL, "file://files.example/psa-mappings.json")
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: `
provider "psa" {` + e.psaBlock() + `}

data "psa_company" "test" {
  name = "Acme"
}
`,
				ExpectError: regexp.MustCompile(`(?s)Invalid Mapping Export Store.*Check the\s+` + envExportURL + `\s+environment\s+variable`),
			},
		},
	})
}

// TestAccProvider_exportURLSelf checks that psa-syncd's own export_url,
// "self", copied into the provider block, fails the plan with what to
// write instead, rather than an apply writing a file named self on a CI
// runner that psa-syncd never reads.
func TestAccProvider_exportURLSelf(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: `
provider "psa" {
  export_url = "self"
` + e.psaBlock() + `}

data "psa_company" "test" {
  name = "Acme"
}
`,
				ExpectError: regexp.MustCompile(`(?s)Invalid Mapping Export Store.*"self" is psa-syncd's\s+export_url.*http\(s\)://\s+URL`),
			},
		},
	})
}

// TestEnvValueErrors_credentials checks that an invalid value from the
// environment is never quoted with a password in it.
func TestEnvValueErrors_credentials(t *testing.T) {
	for _, v := range []string{"ftp://api:hunter2@cw.example/", "http://api:hunter2%zz@cw.example/", "api:hunter2@cw.example/path", "https://api:hunter2@cw.example"} {
		t.Setenv(envConnectWiseBaseURL, v)
		t.Setenv(envConnectWiseSite, v)
		var diags diag.Diagnostics
		envValueErrors(&diags, path.Root("connectwise"), []envCheck{
			{"base_url", types.StringNull(), envConnectWiseBaseURL, httpURL(exampleConnectWiseBaseURL)},
			{"site", types.StringNull(), envConnectWiseSite, connectWiseSite()},
		})
		if diags.ErrorsCount() != 2 {
			t.Fatalf("%s: %d errors, want 2: %v", v, diags.ErrorsCount(), diags)
		}
		for _, d := range diags {
			if strings.Contains(d.Detail(), "hunter2") || !strings.Contains(d.Detail(), "PSA_CONNECTWISE_") {
				t.Errorf("%s: detail %q quotes the password or does not name the variable", v, d.Detail())
			}
		}
	}
	// A configured value is the validator's: the environment is not read.
	t.Setenv(envConnectWiseBaseURL, "not a url")
	var diags diag.Diagnostics
	envValueErrors(&diags, path.Root("connectwise"), []envCheck{
		{"base_url", types.StringValue("https://cw.example/"), envConnectWiseBaseURL, httpURL(exampleConnectWiseBaseURL)},
	})
	if diags.HasError() {
		t.Errorf("an environment variable under a configured value: %v, want no error", diags)
	}
}

// TestProviderSchema_credentialsSensitive: every credential the PSA
// clients keep out of their errors is a sensitive attribute, the
// identifiers of the integration (Autotask's integration code,
// ConnectWise's clientId) as much as the keys and passwords.
func TestProviderSchema_credentialsSensitive(t *testing.T) {
	t.Parallel()
	var resp provider.SchemaResponse
	New("test")().Schema(t.Context(), provider.SchemaRequest{}, &resp)
	for _, name := range []string{"export_token", "psa_syncd_api_token"} {
		if a, ok := resp.Schema.Attributes[name]; !ok || !a.IsSensitive() {
			t.Errorf("%s is not a sensitive attribute", name)
		}
	}
	for block, attrs := range map[string][]string{
		"autotask":    {"secret", "integration_code"},
		"connectwise": {"public_key", "private_key", "client_id"},
		"kaseya_bms":  {"password"},
	} {
		nested, ok := resp.Schema.Blocks[block].(schema.SingleNestedBlock)
		if !ok {
			t.Fatalf("block %s is a %T, want a single nested block", block, resp.Schema.Blocks[block])
		}
		for _, name := range attrs {
			if a, ok := nested.Attributes[name]; !ok || !a.IsSensitive() {
				t.Errorf("%s.%s is not a sensitive attribute", block, name)
			}
		}
	}
}

// TestAccProvider_environmentOnly configures every value of each PSA block
// from the environment, with the block left empty. It is not parallel
// because it sets process environment variables.
func TestAccProvider_environmentOnly(t *testing.T) {
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			e := newTestEnv(t, sys)
			e.addCompany("Acme")
			switch sys {
			case psa.SystemAutotask:
				t.Setenv(envAutotaskUsername, psatest.DefaultAutotaskUsername)
				t.Setenv(envAutotaskSecret, psatest.DefaultAutotaskSecret)
				t.Setenv(envAutotaskIntegrationCode, psatest.DefaultAutotaskIntegrationCode)
				t.Setenv(envAutotaskBaseURL, e.baseURL())
			case psa.SystemConnectWise:
				// Site and codebase rather than base_url, so discovery runs.
				t.Setenv(envConnectWiseSite, e.sim.ConnectWiseSite())
				t.Setenv(envConnectWiseCompanyID, psatest.DefaultConnectWiseCompany)
				t.Setenv(envConnectWisePublicKey, psatest.DefaultConnectWisePublicKey)
				t.Setenv(envConnectWisePrivateKey, psatest.DefaultConnectWisePrivateKey)
				t.Setenv(envConnectWiseClientID, psatest.DefaultConnectWiseClientID)
				t.Setenv(envConnectWiseCodebase, e.sim.ConnectWise().Codebase())
			case psa.SystemKaseyaBMS:
				t.Setenv(envKaseyaBMSUsername, psatest.DefaultKaseyaBMSUsername)
				t.Setenv(envKaseyaBMSPassword, psatest.DefaultKaseyaBMSPassword)
				t.Setenv(envKaseyaBMSTenant, psatest.DefaultKaseyaBMSTenant)
				t.Setenv(envKaseyaBMSBaseURL, e.baseURL())
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: `
provider "psa" {
  ` + string(sys) + ` {}
}

data "psa_company" "test" {
  name = "Acme"
}
`,
						Check: resource.TestCheckResourceAttrSet("data.psa_company.test", "id"),
					},
				},
			})
		})
	}
}

func TestAccProvider_missingExportPath(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: `
provider "psa" {` + e.psaBlock() + `}

resource "psa_integration" "test" {}
`,
						ExpectError: regexp.MustCompile(`(?s)Missing Mapping Export Path.*export_url.*PSA_EXPORT_URL.*export_path.*PSA_EXPORT_PATH`),
					},
				},
			})
		})
	}
}

func TestAccProvider_wrongCredentials(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			// providerConfig sends the simulator's default secret.
			e := newTestEnv(t, sys, credentialsOption(sys, "the-real-secret"))
			other := newTestEnv(t, sys)

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: e.providerConfig() + `
data "psa_company" "test" {
  name = "Acme"
}
`,
						ExpectError: regexp.MustCompile(`(?s)Error Reading PSA Company.*refused\s+the\s+credentials.*base_url`),
					},
					{
						// Another tenant's address (an Autotask zone, a BMS
						// region, another company's server) with these
						// credentials: refused too, and the hint names the
						// address settings.
						Config:      strings.Replace(other.providerConfig(), fmt.Sprintf("%q", other.baseURL()), fmt.Sprintf("%q", e.baseURL()), 1) + "data \"psa_company\" \"test\" {\n  name = \"Acme\"\n}\n",
						ExpectError: regexp.MustCompile(`(?s)Error Reading PSA Company.*refused\s+the\s+credentials.*base_url`),
					},
				},
			})
		})
	}
}

// TestAccProvider_psaUnavailable checks that plan-time checks are a
// courtesy: when the PSA cannot answer them, a plan that only changes the
// export warns and goes ahead.
func TestAccProvider_psaUnavailable(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			e.sim.AddFault(psatest.Fault{Path: e.contractFaultPath(), Status: http.StatusServiceUnavailable})

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: e.providerConfigWith("  max_retries = 0\n") + fmt.Sprintf(`
resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[1]q
  contract_id = %[2]q
}
`, acme.company, acme.contract),
						Check: resource.ComposeAggregateTestCheckFunc(
							e.checkExport(customerMappingIs(export.CustomerMapping{
								Source: "sophos", CustomerID: "cust-1", CompanyID: acme.company, ContractID: acme.contract, UsageSync: true,
							})),
							func(*terraform.State) error {
								for _, r := range e.sim.Requests() {
									if e.isContractRead(r) && r.Status == http.StatusServiceUnavailable {
										return nil
									}
								}
								return fmt.Errorf("the plan never asked the PSA for the contract")
							},
						),
					},
				},
			})
		})
	}
}

// TestAccProvider_connectWiseCodebase checks ConnectWise codebase handling
// through the provider: discovery from the site, a hosted upgrade that moves
// the company between runs (each Terraform command configures the provider
// afresh and discovers again; rediscovery after a 404 within one run is
// covered by the connectwise package's tests), and a pinned codebase, which
// is used as given.
func TestAccProvider_connectWiseCodebase(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise)
	acme := e.addCompany("Acme")
	config := func(codebase string) string {
		pin := ""
		if codebase != "" {
			pin = fmt.Sprintf("    codebase    = %q\n", codebase)
		}
		return fmt.Sprintf(`
provider "psa" {
  connectwise {
    site        = %[1]q
    company_id  = %[2]q
    public_key  = %[3]q
    private_key = %[4]q
    client_id   = %[5]q
%[6]s  }
}

data "psa_company" "test" {
  name = "Acme"
}
`, e.sim.ConnectWiseSite(), psatest.DefaultConnectWiseCompany, psatest.DefaultConnectWisePublicKey,
			psatest.DefaultConnectWisePrivateKey, psatest.DefaultConnectWiseClientID, pin)
	}
	found := statecheck.ExpectKnownValue("data.psa_company.test", tfjsonpath.New("id"), knownvalue.StringExact(acme))
	old := e.sim.ConnectWise().Codebase()

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				// A site with a path fails the plan: the codebase has its own attribute.
				Config:      strings.Replace(config(""), e.sim.ConnectWiseSite(), "api-na.myconnectwise.net/v4_6_release", 1),
				ExpectError: regexp.MustCompile(`(?s)Invalid ConnectWise Site.*codebase.*site\s+"api-na.myconnectwise.net/v4_6_release"\s+must\s+not\s+have\s+a\s+path`),
			},
			{
				Config:            config(""),
				ConfigStateChecks: []statecheck.StateCheck{found},
			},
			{
				// A hosted upgrade: the old codebase now answers 404.
				PreConfig:         func() { e.sim.ConnectWise().ChangeCodebase("v2025_1/") },
				Config:            config(""),
				ConfigStateChecks: []statecheck.StateCheck{found},
			},
			{
				Config:            config("v2025_1/"),
				ConfigStateChecks: []statecheck.StateCheck{found},
			},
			{
				// A pinned codebase is not rediscovered.
				Config:      config(old),
				ExpectError: regexp.MustCompile(`Error Reading PSA Company`),
			},
		},
	})
}

// TestAccProvider_connectWiseAPIVersion checks that an on-premises
// ConnectWise older than the client's default version, which refuses it,
// is reached with api_version, and that the refusal without it names the
// server's version and the setting.
func TestAccProvider_connectWiseAPIVersion(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise, psatest.WithConnectWiseAPIVersion("2023.2"))
	acme := e.addCompany("Acme")
	config := func(version string) string {
		return fmt.Sprintf(`
provider "psa" {
  connectwise {
    site        = %[1]q
    company_id  = %[2]q
    public_key  = %[3]q
    private_key = %[4]q
    client_id   = %[5]q
    api_version = %[6]q
  }
}

data "psa_company" "test" {
  name = "Acme"
}
`, e.sim.ConnectWiseSite(), psatest.DefaultConnectWiseCompany, psatest.DefaultConnectWisePublicKey,
			psatest.DefaultConnectWisePrivateKey, psatest.DefaultConnectWiseClientID, version)
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      config("2023"),
				ExpectError: regexp.MustCompile(`(?s)Invalid ConnectWise API Version.*"2023"\s+is\s+not\s+a\s+ConnectWise\s+API\s+version`),
			},
			{
				Config:      strings.Replace(config(""), `api_version = ""`, "", 1),
				ExpectError: regexp.MustCompile(`(?s)does\s+not\s+support\s+the\s+API\s+version.*This\s+server's\s+API\s+version\s+is\s+2023\.2.*api_version`),
			},
			{
				Config:            config("2023.2"),
				ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue("data.psa_company.test", tfjsonpath.New("id"), knownvalue.StringExact(acme))},
			},
		},
	})
}

// TestAccProvider_kaseyaBMSHostname checks that a BMS hostname with a
// protocol or a path fails the plan with the kaseyabms client's message,
// and that base_url wins over a valid hostname.
func TestAccProvider_kaseyaBMSHostname(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemKaseyaBMS)
	e.addCompany("Acme")
	config := func(hostname, baseURL string) string {
		url := ""
		if baseURL != "" {
			url = fmt.Sprintf("    base_url = %q\n", baseURL)
		}
		return fmt.Sprintf(`
provider "psa" {
  kaseya_bms {
    hostname = %[1]q
    username = %[2]q
    password = %[3]q
    tenant   = %[4]q
%[5]s  }
}

data "psa_company" "test" {
  name = "Acme"
}
`, hostname, psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant, url)
	}

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config("https://bmsemea.kaseya.com", ""),
				ExpectError: regexp.MustCompile(`(?s)Invalid Kaseya BMS Hostname.*without\s+https://.*` +
					`hostname\s+"https://bmsemea.kaseya.com"\s+must\s+not\s+include\s+a\s+protocol`),
			},
			{
				Config:      config("bmsemea.kaseya.com/api", ""),
				ExpectError: regexp.MustCompile(`(?s)Invalid Kaseya BMS Hostname.*must\s+not\s+include\s+a\s+path`),
			},
			{
				Config: config("bmsemea.kaseya.com", e.baseURL()),
				Check:  resource.TestCheckResourceAttrSet("data.psa_company.test", "id"),
			},
		},
	})
}

// TestAccProvider_kaseyaBMSHostnameFromEnvironment checks the hostname
// from the environment, which no validator sees. It is not parallel
// because it sets process environment variables.
func TestAccProvider_kaseyaBMSHostnameFromEnvironment(t *testing.T) {
	t.Setenv(envKaseyaBMSHostname, "https://bmsemea.kaseya.com/")

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: `
provider "psa" {
  kaseya_bms {
    username = "api@msp.example"
    password = "sim-password"
    tenant   = "Sim MSP"
  }
}

data "psa_company" "test" {
  name = "Acme"
}
`,
				ExpectError: regexp.MustCompile(`(?s)Invalid Kaseya BMS Hostname.*PSA_KASEYA_BMS_HOSTNAME.*must\s+not\s+include\s+a\s+protocol`),
			},
		},
	})
}

// TestAccProvider_replaceTriggered replaces the export resources without
// changing their keys (replace_triggered_by, as terraform apply -replace
// does). Terraform plans such a replacement as a create, but the entries in
// the export are the resources' own, not ones to import.
func TestAccProvider_replaceTriggered(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			service := e.addService("Sophos Intercept X Advanced", 4.5)
			config := func(trigger string) string {
				return e.providerConfig() + fmt.Sprintf(`
resource "terraform_data" "trigger" {
  input = %[1]q
}

resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = %[2]q

  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
  }
}

resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[3]q
  contract_id = %[4]q

  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
  }
}

resource "psa_integration" "test" {
  schedule = "daily 02:00"

  lifecycle {
    replace_triggered_by = [terraform_data.trigger]
  }
}
`, trigger, service, acme.company, acme.contract)
			}

			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{
						Config: config("one"),
					},
					{
						Config: config("two"),
						ConfigPlanChecks: resource.ConfigPlanChecks{
							PreApply: []plancheck.PlanCheck{
								plancheck.ExpectResourceAction("psa_product_mapping.test", plancheck.ResourceActionReplace),
								plancheck.ExpectResourceAction("psa_customer_mapping.test", plancheck.ResourceActionReplace),
								plancheck.ExpectResourceAction("psa_integration.test", plancheck.ResourceActionReplace),
							},
						},
						Check: e.checkExport(func(doc *export.Document) error {
							if len(doc.ProductMappings) != 1 || len(doc.CustomerMappings) != 1 || doc.Integration == nil {
								return fmt.Errorf("export after the replacement = %+v, want one product mapping, one customer mapping and the integration settings", doc)
							}
							return nil
						}),
					},
				},
			})
		})
	}
}

// TestAccProvider_replaceCreateBeforeDestroy replaces every export resource
// with create_before_destroy and the same key: the new instance writes (or
// finds) its entry first, and the destroy of the old instance that follows
// must leave that entry in the export. A plain destroy afterwards still
// removes every entry.
func TestAccProvider_replaceCreateBeforeDestroy(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	lifecycle := `
  lifecycle {
    create_before_destroy = true
    replace_triggered_by  = [terraform_data.trigger]
  }
`
	routing := strings.Replace(ticketRoutingCases()[psa.SystemAutotask].config,
		`resource "psa_ticket_routing" "test" {`, `resource "psa_ticket_routing" "test" {`+lifecycle, 1)
	config := func(trigger string) string {
		return e.providerConfig() + routing + fmt.Sprintf(`
resource "terraform_data" "trigger" {
  input = %[1]q
}

resource "psa_product_mapping" "test" {
  product    = "CIXA-MSP"
  service_id = %[2]q
%[5]s}

resource "psa_customer_mapping" "test" {
  customer_id = "cust-1"
  company_id  = %[3]q
  contract_id = %[4]q
%[5]s}

resource "psa_integration" "test" {
  schedule = "daily 02:00"
%[5]s}
`, trigger, service, acme.company, acme.contract, lifecycle)
	}
	hasAll := e.checkExport(func(doc *export.Document) error {
		_, product := doc.Product("sophos", "CIXA-MSP")
		_, customer := doc.Customer("sophos", "cust-1")
		if !product || !customer || doc.Integration == nil || doc.Tickets == nil {
			return fmt.Errorf("export = %+v, want the product mapping, the customer mapping, the integration settings and the ticket routing", doc)
		}
		return nil
	})
	addrs := []string{"psa_product_mapping.test", "psa_customer_mapping.test", "psa_integration.test", "psa_ticket_routing.test"}
	var replaced []plancheck.PlanCheck
	for _, a := range addrs {
		replaced = append(replaced, plancheck.ExpectResourceAction(a, plancheck.ResourceActionCreateBeforeDestroy))
	}

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config("one"), Check: hasAll},
			{
				// The step fails when the plan after the apply is not empty.
				Config:           config("two"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: replaced},
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
