// Package impacttest builds the world that the billing-impact tests run in:
// a PSA simulator seeded from a fixture (the same companies and contracts in
// Autotask, ConnectWise PSA and Kaseya BMS), a usage file, a state
// database, and Terraform configurations whose plans the real Terraform CLI
// makes through terraform-plugin-testing, with the provider built from this
// repository and served in-process.
//
// It is an ordinary package, not a _test.go file, so that the tests of
// package impact and of the psa-syncd command share it.
//
//	w := impacttest.New(t, psa.SystemAutotask)
//	w.Plan(t, impacttest.Before, impacttest.Changes[0].Config, func(planJSON []byte, current *export.Document) {
//		// compute and check the report here: the plan is not applied yet.
//	})
package impacttest

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/provider"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

//go:embed fixture.json
var fixtureJSON []byte

// Now is the time of every pass and plan in the tests: mid November 2026.
var Now = time.Date(2026, time.November, 15, 9, 0, 0, 0, time.UTC)

// SourceName is the usage source's key in the export. The usage file
// stands for Sophos Central, so the mappings keep the provider's default.
const SourceName = "sophos"

// UsageAtSync is the usage of the sync pass that runs after the first
// configuration is applied: it sets the contract lines that are there now.
const UsageAtSync = `customer_id,customer_name,product,quantity
acme-tenant,Acme,CIXA-MSP,25
acme-tenant,Acme,CIXA-SRV,3
globex-tenant,Globex,CIXA-MSP,40
`

// UsageNow is the usage when the plan is reviewed: Acme grew and tried
// Sophos MDR, Globex started using server licences.
const UsageNow = `customer_id,customer_name,product,quantity
acme-tenant,Acme,CIXA-MSP,27
acme-tenant,Acme,CIXA-SRV,3
acme-tenant,Acme,MDR,25
globex-tenant,Globex,CIXA-MSP,40
globex-tenant,Globex,CIXA-SRV,2
`

// Before is the configuration in effect: two services, their product
// mappings and two customers.
var Before = config(baseServices, baseMappings, baseCustomers)

// Change is one kind of change a pull request makes.
type Change struct {
	Name   string
	Config string
}

// Changes holds one configuration per kind of change, each applied on top
// of Before.
var Changes = []Change{
	{"new_product_mapping", config(baseServices+`
resource "psa_service" "mdr" {
  name       = "Sophos MDR"
  unit_price = 9
}
`, baseMappings+`
resource "psa_product_mapping" "mdr" {
  product    = "MDR"
  service_id = psa_service.mdr.id
}
`, baseCustomers)},
	{"removed_mapping", config(baseServices, strings.Replace(baseMappings, serverMapping, "", 1), baseCustomers)},
	{"customer_moved", config(baseServices, baseMappings, strings.Replace(baseCustomers,
		"contract_id   = data.psa_contract.acme.id", "contract_id   = data.psa_contract.acme_security.id", 1))},
	{"usage_sync_off", config(baseServices, baseMappings, strings.Replace(baseCustomers,
		"contract_id   = data.psa_contract.globex.id\n", "contract_id   = data.psa_contract.globex.id\n  usage_sync    = false\n", 1))},
	{"service_price_change", config(strings.Replace(baseServices, "unit_price = 4.5", "unit_price = 5", 1), baseMappings, baseCustomers)},
	{"integration_off", config(baseServices, baseMappings, baseCustomers, `
resource "psa_integration" "this" {
  enabled = false
}
`)},
	// A service billed by the year: its price is per year, a twelfth of it
	// per month.
	{"new_yearly_service", config(baseServices+`
resource "psa_service" "mdr" {
  name           = "Sophos MDR"
  unit_price     = 108
  billing_period = "yearly"
}
`, baseMappings+`
resource "psa_product_mapping" "mdr" {
  product    = "MDR"
  service_id = psa_service.mdr.id
}
`, baseCustomers)},
	// A new product forces a new resource: Terraform replaces the mapping
	// (delete, then create), with create_before_destroy the other way round.
	{"replaced_mapping", config(baseServices, strings.Replace(baseMappings, `product    = "CIXA-SRV"`, `product    = "MDR"`, 1), baseCustomers)},
}

const baseServices = `
resource "psa_service" "intercept" {
  name       = "Sophos Intercept X Advanced"
  unit_price = 4.5
}

resource "psa_service" "server" {
  name       = "Sophos Intercept X for Server"
  unit_price = 9

  # Created after intercept, so that the simulator gives both services the
  # same ids in every run (the golden files show them).
  depends_on = [psa_service.intercept]
}
`

const serverMapping = `
resource "psa_product_mapping" "cixa_srv" {
  product    = "CIXA-SRV"
  service_id = psa_service.server.id
}
`

const baseMappings = `
resource "psa_product_mapping" "cixa_msp" {
  product    = "CIXA-MSP"
  service_id = psa_service.intercept.id
}
` + serverMapping

const baseCustomers = `
data "psa_company" "acme" {
  name = "Acme Corporation"
}

data "psa_contract" "acme" {
  company_id = data.psa_company.acme.id
  name       = "Acme Managed Services"
}

data "psa_contract" "acme_security" {
  company_id = data.psa_company.acme.id
  name       = "Acme Security Services"
}

data "psa_company" "globex" {
  name = "Globex"
}

data "psa_contract" "globex" {
  company_id = data.psa_company.globex.id
  name       = "Globex Managed Services"
}

resource "psa_customer_mapping" "acme" {
  customer_id   = "acme-tenant"
  customer_name = "Acme"
  company_id    = data.psa_company.acme.id
  contract_id   = data.psa_contract.acme.id
}

resource "psa_customer_mapping" "globex" {
  customer_id   = "globex-tenant"
  customer_name = "Globex"
  company_id    = data.psa_company.globex.id
  contract_id   = data.psa_contract.globex.id
}
`

func config(parts ...string) string { return strings.Join(parts, "") }

// World is one simulated PSA tenant with its export, usage file and state.
type World struct {
	System     psa.System
	Sim        *psatest.Server
	Dir        string
	ExportPath string
	UsagePath  string
	// Backend and Source are what psa-syncd would build from its
	// configuration; State is its state database (the ledger).
	Backend psa.Backend
	Source  source.Source
	State   *state.DB
}

// An Option changes the World that New builds.
type Option func(*options)

type options struct {
	postgresURL string
}

// WithPostgres keeps the world's state in the PostgreSQL database at url
// (the world's process is its active instance) instead of an SQLite file.
func WithPostgres(url string) Option {
	return func(o *options) { o.postgresURL = url }
}

// New starts a simulator of sys seeded from the fixture, with the clock at
// Now, and opens a state database in a temporary directory (or the one
// WithPostgres names).
func New(t testing.TB, sys psa.System, opts ...Option) *World {
	t.Helper()
	f, err := psatest.ParseFixture(fixtureJSON)
	if err != nil {
		t.Fatalf("impacttest: fixture: %v", err)
	}
	w := &World{System: sys, Dir: t.TempDir()}
	w.Sim = psatest.Start(t, psatest.WithSystem(sys), psatest.WithFixture(f), psatest.WithClock(func() time.Time { return Now }))
	w.ExportPath = filepath.Join(w.Dir, "psa-mappings.json")
	w.UsagePath = filepath.Join(w.Dir, "usage.csv")
	if w.Backend, err = backends.New(w.BackendConfig()); err != nil {
		t.Fatalf("impacttest: backends.New: %v", err)
	}
	if w.Source, err = file.New(file.Config{Path: w.UsagePath, Name: SourceName}); err != nil {
		t.Fatalf("impacttest: file.New: %v", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dbc := state.Config{Driver: state.DriverSQLite, Path: filepath.Join(w.Dir, "state")}
	if o.postgresURL != "" {
		dbc = state.Config{Driver: state.DriverPostgres, URL: o.postgresURL}
	}
	if w.State, err = state.OpenConfig(context.Background(), dbc); err != nil {
		t.Fatalf("impacttest: opening the state: %v", err)
	}
	t.Cleanup(func() { _ = w.State.Close() })
	if o.postgresURL != "" {
		l, err := w.State.TryLead(context.Background(), state.LeaderInfo{Holder: "impacttest"}, time.Second)
		if err != nil || l == nil {
			t.Fatalf("impacttest: becoming the active instance: %v, %v", l, err)
		}
	}
	return w
}

// BackendConfig is the psa/backends configuration for the simulator.
func (w *World) BackendConfig() backends.Config {
	cfg := backends.Config{System: w.System, HTTPClient: &http.Client{Timeout: 30 * time.Second}, MaxRetries: 1}
	switch w.System {
	case psa.SystemConnectWise:
		cfg.ConnectWise = &backends.ConnectWiseConfig{BaseURL: w.Sim.ConnectWiseBaseURL(), CompanyID: psatest.DefaultConnectWiseCompany,
			PublicKey: psatest.DefaultConnectWisePublicKey, PrivateKey: psatest.DefaultConnectWisePrivateKey, ClientID: psatest.DefaultConnectWiseClientID}
	case psa.SystemKaseyaBMS:
		cfg.KaseyaBMS = &backends.KaseyaBMSConfig{BaseURL: w.Sim.KaseyaBMSBaseURL(), Username: psatest.DefaultKaseyaBMSUsername,
			Password: psatest.DefaultKaseyaBMSPassword, Tenant: psatest.DefaultKaseyaBMSTenant}
	default:
		cfg.Autotask = &backends.AutotaskConfig{BaseURL: w.Sim.AutotaskBaseURL(), Username: psatest.DefaultAutotaskUsername,
			Secret: psatest.DefaultAutotaskSecret, IntegrationCode: psatest.DefaultAutotaskIntegrationCode}
	}
	return cfg
}

// ProviderBlock is the provider configuration for the simulator. The URL
// goes through HCL, never the environment, which parallel tests share.
func (w *World) ProviderBlock() string {
	var block string
	switch w.System {
	case psa.SystemConnectWise:
		block = fmt.Sprintf("connectwise {\n    company_id  = %q\n    public_key  = %q\n    private_key = %q\n    client_id   = %q\n    base_url    = %q\n  }",
			psatest.DefaultConnectWiseCompany, psatest.DefaultConnectWisePublicKey, psatest.DefaultConnectWisePrivateKey,
			psatest.DefaultConnectWiseClientID, w.Sim.ConnectWiseBaseURL())
	case psa.SystemKaseyaBMS:
		block = fmt.Sprintf("kaseya_bms {\n    username = %q\n    password = %q\n    tenant   = %q\n    base_url = %q\n  }",
			psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant, w.Sim.KaseyaBMSBaseURL())
	default:
		block = fmt.Sprintf("autotask {\n    username         = %q\n    secret           = %q\n    integration_code = %q\n    base_url         = %q\n  }",
			psatest.DefaultAutotaskUsername, psatest.DefaultAutotaskSecret, psatest.DefaultAutotaskIntegrationCode, w.Sim.AutotaskBaseURL())
	}
	return fmt.Sprintf("provider \"psa\" {\n  export_path = %q\n  %s\n}\n", w.ExportPath, block)
}

// SetUsage replaces the usage file.
func (w *World) SetUsage(t testing.TB, csv string) {
	t.Helper()
	if err := os.WriteFile(w.UsagePath, []byte(csv), 0o600); err != nil {
		t.Fatalf("impacttest: writing usage: %v", err)
	}
}

// Engine returns a sync engine for the world, as psa-syncd builds it.
func (w *World) Engine() *usage.Engine {
	return usage.NewEngine(usage.EngineOptions{Backend: w.Backend, Source: w.Source, State: w.State,
		Policies: usage.DefaultPolicies, Now: func() time.Time { return Now }})
}

// Export reads the world's mapping export.
func (w *World) Export(t testing.TB) *export.Document {
	t.Helper()
	doc, err := export.NewStore(w.ExportPath).Read()
	if err != nil {
		t.Fatalf("impacttest: reading the export: %v", err)
	}
	return doc
}

// Plan applies before with Terraform, runs a sync pass with UsageAtSync
// (so that the contract lines are what a running psa-syncd left), switches
// the usage to UsageNow, and has Terraform plan after. atPlan gets the plan
// as `terraform show -json` printed it, and the export before apply; it
// runs before the plan is applied, while the PSA is as the reviewer sees
// it. The plan is applied afterwards, and must converge.
func (w *World) Plan(t *testing.T, before, after string, atPlan func(planJSON []byte, current *export.Document)) {
	t.Helper()
	called := false
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: map[string]func() (tfprotov6.ProviderServer, error){
			"psa": providerserver.NewProtocol6WithError(provider.New("test")()),
		},
		Steps: []resource.TestStep{
			{Config: w.ProviderBlock() + before},
			{
				PreConfig: func() {
					w.SetUsage(t, UsageAtSync)
					res, err := w.Engine().Sync(context.Background(), w.Export(t), usage.PassOptions{Trigger: usage.TriggerCLI})
					if err != nil {
						t.Fatalf("impacttest: sync pass: %v", err)
					}
					if res.Run.Result != "success" {
						t.Fatalf("impacttest: sync pass ended %s: %s", res.Run.Result, res.Run.Error)
					}
					w.SetUsage(t, UsageNow)
				},
				Config: w.ProviderBlock() + after,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{planFunc(func(data []byte) {
					called = true
					atPlan(data, w.Export(t))
				})}},
			},
		},
	})
	if !called {
		t.Fatal("impacttest: the plan check did not run")
	}
}

// planFunc hands the plan, as JSON, to a function.
type planFunc func([]byte)

func (f planFunc) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	// req.Plan is the harness's decoding of `terraform show -json` for
	// the step's saved plan; encoding it again gives that JSON back.
	data, err := json.Marshal(req.Plan)
	if err != nil {
		resp.Error = fmt.Errorf("encoding the plan: %w", err)
		return
	}
	f(data)
}
