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
	// Before is the configuration in effect, if not Before.
	Before string
	// Usage is the usage when the plan is reviewed, if not UsageNow.
	Usage string
}

// Changes holds one configuration per kind of change, each applied on top
// of Before.
var Changes = []Change{
	{Name: "new_product_mapping", Config: config(baseServices+`
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
	{Name: "removed_mapping", Config: config(baseServices, strings.Replace(baseMappings, serverMapping, "", 1), baseCustomers)},
	{Name: "customer_moved", Config: config(baseServices, baseMappings, strings.Replace(baseCustomers,
		"contract_id   = data.psa_contract.acme.id", "contract_id   = data.psa_contract.acme_security.id", 1))},
	{Name: "usage_sync_off", Config: config(baseServices, baseMappings, strings.Replace(baseCustomers,
		"contract_id   = data.psa_contract.globex.id\n", "contract_id   = data.psa_contract.globex.id\n  usage_sync    = false\n", 1))},
	{Name: "service_price_change", Config: config(strings.Replace(baseServices, "unit_price = 4.5", "unit_price = 5", 1), baseMappings, baseCustomers)},
	{Name: "integration_off", Config: config(baseServices, baseMappings, baseCustomers, `
resource "psa_integration" "this" {
  enabled = false
}
`)},
	// A service billed by the year: its price is per year, a twelfth of it
	// per month.
	{Name: "new_yearly_service", Config: config(baseServices+`
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
	{Name: "replaced_mapping", Config: config(baseServices, strings.Replace(baseMappings, `product    = "CIXA-SRV"`, `product    = "MDR"`, 1), baseCustomers)},
	// Two products on one service, and the larger one moved to another
	// service: the old lines lose more units than the decrease guard
	// (max_decrease_percent 50) lets a pass write, so they keep them until
	// `sync --approve`, while the new lines rise at once.
	{Name: "product_moved_held",
		Before: config(baseServices, strings.Replace(baseMappings, "service_id = psa_service.server.id", "service_id = psa_service.intercept.id", 1), baseCustomers),
		Config: config(baseServices, strings.NewReplacer("psa_service.intercept.id", "psa_service.server.id",
			"psa_service.server.id", "psa_service.intercept.id").Replace(baseMappings), baseCustomers)},
	// A product mapping re-pointed to a new service (a new SKU): Acme's
	// line of the old one, which psa-syncd set to 3, still bills, so the
	// pass holds Acme's new line (previous_service) until it is approved;
	// Globex had no line of the old service, its new line is added.
	{Name: "product_repointed", Config: config(baseServices+`
resource "psa_service" "server_new" {
  name       = "Sophos Intercept X for Server (2027)"
  unit_price = 10

  depends_on = [psa_service.server]
}
`, strings.Replace(baseMappings, "service_id = psa_service.server.id", "service_id = psa_service.server_new.id", 1), baseCustomers)},
	// Services made with for_each and count, and product mappings that
	// name their instance by each.value (of a literal map), each.key,
	// count.index, or each.value of a local (one instance only).
	{Name: "indexed_services", Config: config(baseServices+indexedServices, baseMappings+`
resource "psa_product_mapping" "extra" {
  for_each   = { "MDR" = "mdr", "MDR-SRV" = "mdr", "ZTNA" = "ztna" }
  product    = each.key
  service_id = psa_service.extra[each.value].id
}

resource "psa_product_mapping" "gateway" {
  for_each   = { ztna = "ZTNA-GW" }
  product    = each.value
  service_id = psa_service.extra[each.key].id
}

resource "psa_service" "tier" {
  count      = 2
  name       = "Sophos Tier ${count.index}"
  unit_price = 2 + count.index
}

resource "psa_product_mapping" "tier" {
  count      = 2
  product    = "TIER${count.index}"
  service_id = psa_service.tier[count.index].id
}

locals {
  edr_products = { "EDR" = "edr" }
}

resource "psa_service" "edr" {
  for_each   = { edr = 5 }
  name       = "Sophos EDR"
  unit_price = each.value
}

resource "psa_product_mapping" "edr" {
  for_each   = local.edr_products
  product    = each.key
  service_id = psa_service.edr[each.value].id
}
`, baseCustomers), Usage: UsageNow + `acme-tenant,Acme,MDR-SRV,5
acme-tenant,Acme,EDR,7
acme-tenant,Acme,TIER0,4
globex-tenant,Globex,ZTNA,10
globex-tenant,Globex,ZTNA-GW,2
globex-tenant,Globex,TIER1,6
`},
	// each.value of a local that picks one of two instances: the plan
	// does not tell which, so the lines stand under one placeholder.
	{Name: "indexed_services_unresolved", Config: config(baseServices+indexedServices, baseMappings+`
locals {
  extra_products = { "MDR" = "mdr", "ZTNA" = "ztna" }
}

resource "psa_product_mapping" "extra" {
  for_each   = local.extra_products
  product    = each.key
  service_id = psa_service.extra[each.value].id
}
`, baseCustomers), Usage: UsageNow + "globex-tenant,Globex,ZTNA,10\n"},
	// The pattern of the large-configurations guide: the ids of new
	// services through a local value, which the plan does not hold, so
	// the lines stand under one placeholder, as the guide says.
	{Name: "local_service_ids", Config: config(baseServices, baseMappings+`
resource "psa_service" "s" {
  count      = 2
  name       = "Sophos Bundle ${count.index}"
  unit_price = 3 + count.index
}

locals {
  service_ids = psa_service.s[*].id
}

resource "psa_product_mapping" "p" {
  count      = 2
  product    = "BUNDLE${count.index}"
  service_id = local.service_ids[count.index % 2]
}
`, baseCustomers), Usage: UsageNow + "acme-tenant,Acme,BUNDLE0,4\n"},
}

const indexedServices = `
resource "psa_service" "extra" {
  for_each   = { mdr = 9, ztna = 3 }
  name       = "Sophos ${upper(each.key)}"
  unit_price = each.value
}
`

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
	// UsageNow is the usage that Plan switches to before Terraform plans
	// (the package's UsageNow unless set otherwise).
	UsageNow string
	// AfterApply, when set, runs once Plan has applied the plan, with the
	// export the apply wrote: it sees what psa-syncd would then do.
	AfterApply func(doc *export.Document)
	// BeforePlan, when set, runs once Plan's sync pass has set the lines,
	// before Terraform plans: a change made in the PSA by hand since the
	// last apply, which the plan's refresh then sees.
	BeforePlan func()
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
	w := &World{System: sys, Dir: t.TempDir(), UsageNow: UsageNow}
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
// the usage to w.UsageNow, and has Terraform plan after. atPlan gets the plan
// as `terraform show -json` printed it, and the export before apply; it
// runs before the plan is applied, while the PSA is as the reviewer sees
// it. The plan is applied afterwards, and must converge; then
// w.AfterApply runs, if set.
func (w *World) Plan(t *testing.T, before, after string, atPlan func(planJSON []byte, current *export.Document)) {
	t.Helper()
	called := false
	tc := resource.TestCase{
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
					w.SetUsage(t, w.UsageNow)
					if w.BeforePlan != nil {
						w.BeforePlan()
					}
				},
				Config: w.ProviderBlock() + after,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{planFunc(func(data []byte) {
					called = true
					atPlan(data, w.Export(t))
				})}},
			},
		},
	}
	// terraform-plugin-testing cannot read a state with for_each instances
	// at the end of a test (its state shim wants numeric keys), so a
	// configuration with for_each goes back to before in a last step.
	if last, forEach := after, strings.Contains(after, "for_each"); w.AfterApply != nil || forEach {
		if forEach {
			last = before
		}
		tc.Steps = append(tc.Steps, resource.TestStep{
			PreConfig: func() {
				if w.AfterApply != nil {
					w.AfterApply(w.Export(t))
				}
			},
			Config: w.ProviderBlock() + last,
		})
	}
	resource.UnitTest(t, tc)
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
