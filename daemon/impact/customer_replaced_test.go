package impact_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestBillingImpact_customerReplacedSameContract: Acme's customer mapping
// is replaced by one of another customer_id on the same contract (the
// vendor's tenant id changed, and the usage with it). The pass after apply
// writes Acme's lines through acme-new; under the current mappings they
// are acme-tenant's. Before, the report showed each PSA line twice: the
// new customer's row setting it, and the old one's "keeps its 25 units",
// read as a second invoice line. It must be one row per line, the old
// customer's units under the current mappings and the new customer's
// under the proposed ones, its amount counted once, in every format. On
// Kaseya BMS without psa-syncd's ledger the lines pair as BMS lists them
// on the contract.
func TestBillingImpact_customerReplacedSameContract(t *testing.T) {
	t.Parallel()
	after := strings.Replace(impacttest.Before, `customer_id   = "acme-tenant"`, `customer_id   = "acme-new"`, 1)
	if after == impacttest.Before {
		t.Fatal("Acme's customer mapping is not in the configuration")
	}
	// The same plan switching the integration off: no pass sets the line
	// through either customer, and no row may say that the next one does.
	off := after + `
resource "psa_integration" "this" {
  enabled = false
}
`
	t.Run("integration_off", func(t *testing.T) {
		t.Parallel()
		w := impacttest.New(t, psa.SystemAutotask)
		w.UsageNow = strings.ReplaceAll(impacttest.UsageNow, "acme-tenant", "acme-new")
		w.Plan(t, impacttest.Before, off, func(planJSON []byte, current *export.Document) {
			rep, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source, State: w.State}, planJSON, current, impact.FormatMarkdown)
			checkOneRowPerLine(t, rep, md)
			for _, l := range rep.Lines {
				if l.CurrentCustomerID != "" || strings.Contains(l.Why, "the next pass sets") {
					t.Errorf("line %s/%s of %s: current customer %q, why %q; want no line set through another customer with the integration off:\n%s",
						l.ContractID, l.ServiceName, l.CustomerID, l.CurrentCustomerID, l.Why, md)
				}
			}
		})
	})
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		for _, withState := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/state=%v", sys, withState), func(t *testing.T) {
				t.Parallel()
				w := impacttest.New(t, sys)
				w.UsageNow = strings.ReplaceAll(impacttest.UsageNow, "acme-tenant", "acme-new")
				var rep *impact.Report
				w.AfterApply = func(doc *export.Document) { checkSync(t, w, doc, rep) }
				w.Plan(t, impacttest.Before, after, func(planJSON []byte, current *export.Document) {
					o := impact.Options{Backend: w.Backend, Source: w.Source}
					if withState {
						o.State = w.State
					}
					var md string
					rep, md = report(t, o, planJSON, current, impact.FormatMarkdown)
					checkOneRowPerLine(t, rep, md)
					if sys == psa.SystemKaseyaBMS && !withState {
						// Without the ledger the current mappings set
						// no line (acme-tenant has no usage now), but
						// BMS lists Acme's lines on the contract, which
						// psa-syncd set through acme-tenant: each row
						// names both customers, its units under the
						// current mappings and its delta unknown.
						for _, l := range rep.Lines {
							if l.CustomerID == "acme-new" && (l.CurrentCustomerID != "acme-tenant" || l.Current != nil || l.MonthlyDelta != nil) {
								t.Errorf("Acme's %s row: %+v; want acme-tenant's line set through acme-new, units under the current mappings and delta unknown:\n%s", l.ServiceName, l, md)
							}
						}
						_, js := report(t, o, planJSON, current, impact.FormatJSON)
						checkReplacedUsage(t, rep, md, js, rep.Lines[0].ContractID)
						return
					}
					var l *impact.Line
					for i := range rep.Lines {
						if rep.Lines[i].ServiceName == "Sophos Intercept X Advanced" {
							l = &rep.Lines[i]
						}
					}
					if l == nil {
						t.Fatalf("no row of Acme's Intercept X line:\n%s", md)
					}
					if l.CustomerID != "acme-new" || l.CurrentCustomerID != "acme-tenant" || !l.CurrentSynced || !l.ProposedSynced ||
						l.Current == nil || *l.Current != 25 || l.Proposed == nil || *l.Proposed != 27 || deltaText(l.MonthlyDelta) != "9.00" {
						t.Errorf("Acme's Intercept X row: %+v; want acme-tenant's 25 under the current mappings, acme-new's 27 under the proposed ones, +9.00:\n%s", l, md)
					}
					if rep.Totals.MonthlyDelta != 9 {
						t.Errorf("monthly total %.2f, want 9.00 (the line counted once):\n%s", rep.Totals.MonthlyDelta, md)
					}
					if !strings.Contains(md, "| Acme (acme-tenant → acme-new) |") || !strings.Contains(l.Why, "one line in "+sys.Title()+", which the next pass sets through customer acme-new (new customer mapping) instead of acme-tenant (customer mapping removed)") {
						t.Errorf("the Markdown row does not name both customers, or its why %q the replacement:\n%s", l.Why, md)
					}
					if _, table := report(t, o, planJSON, current, impact.FormatTable); strings.Count(table, "Acme (acme-tenant → acme-new)") != 2 || strings.Contains(table, "keeps its") {
						t.Errorf("table: want Acme's two lines, once each, named by both customers:\n%s", table)
					}
					_, js := report(t, o, planJSON, current, impact.FormatJSON)
					var decoded struct {
						Lines []struct {
							CustomerID        string `json:"customer_id"`
							CurrentCustomerID string `json:"current_customer_id"`
						} `json:"lines"`
					}
					if err := json.Unmarshal([]byte(js), &decoded); err != nil {
						t.Fatal(err)
					}
					acme := 0
					for _, l := range decoded.Lines {
						switch {
						case l.CustomerID == "acme-tenant":
							t.Errorf("JSON: a line of acme-tenant apart:\n%s", js)
						case l.CustomerID == "acme-new" && l.CurrentCustomerID == "acme-tenant":
							acme++
						}
					}
					if acme != 2 {
						t.Errorf("JSON: %d lines of acme-new with current_customer_id acme-tenant, want Acme's two:\n%s", acme, js)
					}
					checkReplacedUsage(t, rep, md, js, l.ContractID)
					if _, table := report(t, o, planJSON, current, impact.FormatTable); !strings.Contains(table, "starts Acme (acme-new): new customer mapping: replaces Acme (acme-tenant) on contract "+l.ContractID) ||
						!strings.Contains(table, "stops Acme (acme-tenant): customer mapping removed: replaced by Acme (acme-new) on contract "+l.ContractID) {
						t.Errorf("table: usage sync does not name the replacement:\n%s", table)
					}
				})
			})
		}
	}
}

// checkOneRowPerLine fails t when the report shows a contract line in more
// than one row.
func checkOneRowPerLine(t *testing.T, rep *impact.Report, md string) {
	t.Helper()
	rows := map[string]int{}
	for _, l := range rep.Lines {
		rows[l.ContractID+"/"+l.ServiceID]++
	}
	for line, n := range rows {
		if n > 1 {
			t.Errorf("contract line %s shows as %d rows, want one:\n%s", line, n, md)
		}
	}
}

// checkReplacedUsage fails t unless the usage sync and newly billed
// entries of acme-new and acme-tenant say that acme-new replaces
// acme-tenant on contract, in the report, its Markdown md and its JSON js:
// before, they read as a customer whose usage becomes unmapped and another
// whose usage is newly billed, though the usage is the same, renamed, and
// its lines stay billed.
func checkReplacedUsage(t *testing.T, rep *impact.Report, md, js, contract string) {
	t.Helper()
	replaces := "replaces Acme (acme-tenant) on contract " + contract
	for _, sc := range rep.UsageSync {
		switch {
		case sc.CustomerID == "acme-new" && (!sc.Starts || sc.Replaces != "acme-tenant" || !strings.Contains(sc.Why, replaces)):
			t.Errorf("usage sync of acme-new: %+v; want it to start, replacing acme-tenant on contract %s:\n%s", sc, contract, md)
		case sc.CustomerID == "acme-tenant" && (sc.Starts || sc.ReplacedBy != "acme-new" || !strings.Contains(sc.Why, "replaced by Acme (acme-new) on contract "+contract) ||
			strings.Contains(sc.Why, "unmapped")):
			t.Errorf("usage sync of acme-tenant: %+v; want it to stop, replaced by acme-new on contract %s, not its usage unmapped:\n%s", sc, contract, md)
		}
	}
	newly := 0
	for _, u := range rep.NewlyBilled {
		if u.Kind == "customer" && u.ID == "acme-new" {
			newly++
			if u.Replaces != "acme-tenant" || !strings.Contains(u.Why, replaces) {
				t.Errorf("newly billed acme-new: %+v; want it to replace acme-tenant on contract %s:\n%s", u, contract, md)
			}
		}
	}
	if newly != 1 {
		t.Errorf("%d newly billed entries of acme-new, want one:\n%s", newly, md)
	}
	for _, want := range []string{
		"usage sync starts for 1 customer (1 replacing another customer on the same contract lines)",
		"usage sync stops for 1 customer (1 replaced by another customer on the same contract lines)",
		"newly billed (1 replacing another customer on the same contract lines, billed before)",
		"**Starts** for Acme (acme-new): new customer mapping: " + replaces,
		"**Stops** for Acme (acme-tenant): customer mapping removed: replaced by Acme (acme-new) on contract " + contract,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown: no %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "its usage becomes unmapped") {
		t.Errorf("Markdown: acme-tenant's usage said to become unmapped:\n%s", md)
	}
	var decoded struct {
		UsageSync []struct {
			CustomerID string `json:"customer_id"`
			Replaces   string `json:"replaces"`
			ReplacedBy string `json:"replaced_by"`
		} `json:"usage_sync"`
		NewlyBilled []struct {
			ID       string `json:"id"`
			Replaces string `json:"replaces"`
		} `json:"newly_billed"`
	}
	if err := json.Unmarshal([]byte(js), &decoded); err != nil {
		t.Fatal(err)
	}
	pairs := 0
	for _, sc := range decoded.UsageSync {
		if sc.CustomerID == "acme-new" && sc.Replaces == "acme-tenant" || sc.CustomerID == "acme-tenant" && sc.ReplacedBy == "acme-new" {
			pairs++
		}
	}
	for _, u := range decoded.NewlyBilled {
		if u.ID == "acme-new" && u.Replaces == "acme-tenant" {
			pairs++
		}
	}
	if pairs != 3 {
		t.Errorf("JSON: %d usage sync and newly billed entries name the replacement, want 3:\n%s", pairs, js)
	}
}
