package provider

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// expectPlanWarnings returns a Check that takes w's warnings of summary
// and wants n or more of them (n > 0: each of typeName, on attribute attr
// ("" for none) and holding every string of detail; 0: none). More: the
// test runs terraform plan, then terraform apply, which plans again.
func expectPlanWarnings(w *planWarnings, summary string, n int, typeName, attr string, detail ...string) func(*terraform.State) error {
	return func(*terraform.State) error {
		got := w.take(summary)
		if len(got) < n || (n == 0 && len(got) > 0) {
			return fmt.Errorf("plan warnings %q: %v, want %d or more", summary, got, n)
		}
		at := ""
		if attr != "" {
			at = tftypes.NewAttributePath().WithAttributeName(attr).String()
		}
		for _, g := range got {
			if g.typeName != typeName || g.attribute != at {
				return fmt.Errorf("warning %v, want it on %s %s", g, typeName, attr)
			}
			for _, d := range detail {
				if !strings.Contains(g.detail, d) {
					return fmt.Errorf("warning detail lacks %q: %s", d, g.detail)
				}
			}
		}
		return nil
	}
}

// TestAccMappingDestroy_warnsLinesStillBill: the plan that destroys a
// synced product mapping, or a customer mapping with usage_sync, warns
// through the CLI that the lines psa-syncd set keep billing (psa-syncd
// lists them as orphaned lines, never zeroes them) and says what to do;
// a mapping psa-syncd did not sync (sync_enabled / usage_sync false)
// warns nothing when destroyed, and neither do the plans that keep the
// mappings. No PSA request is made for it (TestAccApply_requests).
func TestAccMappingDestroy_warnsLinesStillBill(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			service := e.addService("Sophos MDR", 12)
			acme := e.addCustomerFixture("Acme")
			var w planWarnings
			const summary = summaryRemovedMappingStillBills
			title := systemTitle(sys)
			config := func(product, customer string) string {
				c := e.providerConfig()
				if product != "" {
					c += fmt.Sprintf("resource \"psa_product_mapping\" \"mdr\" {\n  product    = \"MDR\"\n  service_id = %q\n%s\n}\n", service, product)
				}
				if customer != "" {
					c += fmt.Sprintf("resource \"psa_customer_mapping\" \"acme\" {\n  customer_id = \"acme-1\"\n  company_id  = %q\n  contract_id = %q\n%s\n}\n",
						acme.company, acme.contract, customer)
				}
				return c
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: w.factories(),
				Steps: []resource.TestStep{
					{
						Config: config(" ", " "),
						Check:  expectPlanWarnings(&w, summary, 0, "", ""),
					},
					{
						// The product mapping is destroyed.
						PreConfig: func() { w.take("") },
						Config:    config("", " "),
						Check: expectPlanWarnings(&w, summary, 1, "psa_product_mapping", "",
							"Product mapping sophos/MDR is destroyed", "lines of service "+service, "with sync_enabled on names service "+service,
							"unless a product mapping with sync_enabled off names the service",
							"orphaned lines (reason service", "set the customers' lines of service "+service+" to 0 (or end them) in "+title),
					},
					{
						PreConfig: func() { w.take("") },
						Config:    config("", ""),
						Check: expectPlanWarnings(&w, summary, 1, "psa_customer_mapping", "",
							"Customer mapping sophos/acme-1 is destroyed", "with usage_sync on names contract "+acme.contract,
							"unless a customer mapping with usage_sync off names the contract",
							"orphaned lines (reason customer", "end contract "+acme.contract+" or set its lines to 0 in "+title),
					},
					{
						// Mappings psa-syncd does not sync: nothing of
						// theirs bills, nothing to warn of.
						PreConfig: func() { w.take("") },
						Config:    config("  sync_enabled = false", "  usage_sync = false"),
						Check:     expectPlanWarnings(&w, summary, 0, "", ""),
					},
					{
						PreConfig: func() { w.take("") },
						Config:    config("", ""),
						Check:     expectPlanWarnings(&w, summary, 0, "", ""),
					},
				},
			})
		})
	}
}

// TestAccIntegrationResource_destroyWarns: the plan that destroys a
// psa_integration warns once, naming all that falls back: with enabled =
// false, that psa-syncd writes to the PSA again from its next pass (an
// export without integration settings is switched on), how to keep it off,
// and the schedule and time zone set that give way to psa-syncd's
// configuration file's; with enabled = true, only the schedule and time
// zone, under a summary of their own. Settings that set neither warn
// nothing when destroyed, and neither do the plans that keep them.
func TestAccIntegrationResource_destroyWarns(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemConnectWise)
	var w planWarnings
	config := func(body string) string {
		if body == "" {
			return e.providerConfig()
		}
		return e.providerConfig() + "resource \"psa_integration\" \"this\" {\n" + body + "}\n"
	}
	const (
		switchOn = summaryRemovedSettingsSwitchOn
		fallBack = summaryRemovedSettingsFallBack
		schedule = `schedule "daily 02:00" to its schedule (every 24h unless it sets one)`
		timezone = `time zone "Europe/Rome" to its timezone (UTC unless it sets one)`
	)
	// only wants the warnings of summary (see expectPlanWarnings) and none
	// of the other destroy warning's: one warning per destroy.
	only := func(summary string, detail ...string) func(*terraform.State) error {
		other := map[string]string{switchOn: fallBack, fallBack: switchOn}[summary]
		return func(s *terraform.State) error {
			w.mu.Lock()
			all := slices.Clone(w.warnings)
			w.mu.Unlock()
			for _, g := range all {
				if g.summary == other {
					return fmt.Errorf("warning %v beside %q, want one warning", g, summary)
				}
			}
			return expectPlanWarnings(&w, summary, 1, "psa_integration", "", detail...)(s)
		}
	}
	none := func(*terraform.State) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, g := range w.warnings {
			if g.summary == switchOn || g.summary == fallBack {
				return fmt.Errorf("plan warning %v, want none", g)
			}
		}
		w.warnings = nil
		return nil
	}
	noSettings := e.checkExport(func(doc *export.Document) error {
		if doc.Integration != nil {
			return fmt.Errorf("export integration settings = %+v, want none after the destroy", *doc.Integration)
		}
		return nil
	})
	steps := []resource.TestStep{}
	for _, tc := range []struct {
		body  string
		check resource.TestCheckFunc
	}{
		{
			body: "  enabled  = false\n  schedule = \"daily 02:00\"\n  timezone = \"Europe/Rome\"\n",
			check: only(switchOn, "switch the integration off (enabled = false)", "writes quantities to ConnectWise PSA again",
				"Falling back to psa-syncd's configuration file: "+schedule+", "+timezone+".",
				"keep the psa_integration with enabled = false", "removed block (lifecycle { destroy = false })"),
		},
		{
			body: "  enabled = false\n",
			check: resource.ComposeAggregateTestCheckFunc(
				func(*terraform.State) error {
					w.mu.Lock()
					defer w.mu.Unlock()
					for _, g := range w.warnings {
						if strings.Contains(g.detail, "Falling back") {
							return fmt.Errorf("warning %v names a fallback of settings that set none", g)
						}
					}
					return nil
				},
				only(switchOn, "switch the integration off (enabled = false)")),
		},
		{
			body: "  schedule = \"daily 02:00\"\n  timezone = \"Europe/Rome\"\n",
			check: only(fallBack, "Falling back to psa-syncd's configuration file: "+schedule+", "+timezone+".",
				"keep the psa_integration", "removed block (lifecycle { destroy = false })"),
		},
		{
			body:  "  timezone = \"Europe/Rome\"\n",
			check: only(fallBack, "Falling back to psa-syncd's configuration file: "+timezone+"."),
		},
		{body: "  enabled = true\n", check: none},
	} {
		steps = append(steps,
			resource.TestStep{PreConfig: func() { w.take("") }, Config: config(tc.body), Check: none},
			resource.TestStep{
				PreConfig: func() { w.take("") },
				Config:    config(""),
				Check:     resource.ComposeAggregateTestCheckFunc(tc.check, noSettings),
			})
	}
	resource.UnitTest(t, resource.TestCase{ProtoV6ProviderFactories: w.factories(), Steps: steps})
}

// TestAccMappingDestroy_linesTakenOver: the plan that destroys a synced
// product mapping while another product mapping of the same source names
// its service with sync_enabled on (here a new one) says, through the CLI,
// which mapping takes the service's lines over and that they are not to
// be set to 0, whichever of the two Terraform plans first (the one
// planned second warns; TestProductMappingDestroyWarning_eitherOrder
// plans both orders). A new mapping with sync_enabled off, or of another
// service, takes nothing over: the removal warns as before.
func TestAccMappingDestroy_linesTakenOver(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			service := e.addService("Intercept X", 4.5)
			other := e.addService("Sophos MDR", 12)
			var w planWarnings
			config := func(cixas bool, mdr string) string {
				c := e.providerConfig()
				if cixas {
					c += fmt.Sprintf("resource \"psa_product_mapping\" \"cixas\" {\n  product    = \"CIXAS\"\n  service_id = %q\n}\n", service)
				}
				if mdr != "" {
					c += fmt.Sprintf("resource \"psa_product_mapping\" \"mdr\" {\n  product    = \"MDR\"\n%s\n}\n", mdr)
				}
				return c
			}
			// takenOver wants the takeover warned once (by whichever of
			// the two mappings is planned second) and, if the destroy is
			// planned first, its warning beside it; or, with want false,
			// the removal's warning alone.
			takenOver := func(want bool) func(*terraform.State) error {
				return func(*terraform.State) error {
					w.mu.Lock()
					var over, still []planWarning
					for _, g := range w.warnings {
						switch g.summary {
						case summaryRemovedMappingTakenOver:
							over = append(over, g)
						case summaryRemovedMappingStillBills:
							still = append(still, g)
						}
					}
					w.warnings = nil
					w.mu.Unlock()
					if !want {
						if len(over) > 0 || len(still) == 0 {
							return fmt.Errorf("plan warnings %v and %v, want only %q", over, still, summaryRemovedMappingStillBills)
						}
						return nil
					}
					if len(over) == 0 {
						return fmt.Errorf("no plan warning %q (beside %v)", summaryRemovedMappingTakenOver, still)
					}
					for _, g := range over {
						for _, d := range []string{"This plan destroys product mapping sophos/CIXAS, which psa-syncd synced on service " + service,
							"product mapping sophos/MDR of the same usage source names service " + service + " with sync_enabled on",
							"the quantity of each customer's line of service " + service + " becomes the usage of the product of sophos/MDR",
							"no longer that of sophos/CIXAS", "Do not set these lines to 0 by hand"} {
							if !strings.Contains(g.detail, d) {
								return fmt.Errorf("warning detail lacks %q: %s", d, g.detail)
							}
						}
						if g.attribute != "" && (len(still) == 0 || g.attribute != tftypes.NewAttributePath().WithAttributeName("service_id").String()) {
							return fmt.Errorf("warning %v beside %v: the new mapping warns only if the destroy was planned first", g, still)
						}
					}
					return nil
				}
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: w.factories(),
				Steps: []resource.TestStep{
					{Config: config(true, fmt.Sprintf("  service_id = %q", other))},
					{
						// MDR moves to CIXAS's service as CIXAS goes.
						PreConfig: func() { w.take("") },
						Config:    config(false, fmt.Sprintf("  service_id = %q", service)),
						Check:     takenOver(true),
					},
					{Config: config(true, fmt.Sprintf("  service_id = %q", other)), PreConfig: func() { w.take("") }},
					{
						PreConfig: func() { w.take("") },
						Config:    config(false, fmt.Sprintf("  service_id = %q\n  sync_enabled = false", service)),
						Check:     takenOver(false),
					},
					{Config: config(true, fmt.Sprintf("  service_id = %q", other)), PreConfig: func() { w.take("") }},
					{
						PreConfig: func() { w.take("") },
						Config:    config(false, fmt.Sprintf("  service_id = %q", other)),
						Check:     takenOver(false),
					},
				},
			})
		})
	}
}
