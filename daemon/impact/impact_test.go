package impact_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestMain stops the PostgreSQL cluster the tests share when they end.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// report computes the billing impact of a plan with o's PSA and source and
// renders it.
func report(t *testing.T, o impact.Options, planJSON []byte, current *export.Document, format string) (*impact.Report, string) {
	t.Helper()
	tp, err := impact.ReadTerraformPlan(planJSON)
	if err != nil {
		t.Fatalf("ReadTerraformPlan: %v", err)
	}
	o.SourceName = impacttest.SourceName
	if o.Policies == (usage.Policies{}) {
		o.Policies = usage.DefaultPolicies
	}
	o.Now = func() time.Time { return impacttest.Now }
	rep, err := impact.Compute(t.Context(), o, current, tp)
	if err != nil {
		t.Fatalf("Compute: %v", err)
	}
	var buf bytes.Buffer
	if err := impact.Write(&buf, rep, format); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return rep, buf.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("report differs from %s (-want +got):\n%s", path, diff)
	}
}

// TestBillingImpact_changes runs one plan per kind of change against the
// Autotask simulator and compares the Markdown report with a golden file
// (and the JSON one, for a few). Once the plan is applied, it runs the sync
// pass psa-syncd would run, and checks that every line the report says
// psa-syncd sets is left as the report's Proposed column says.
func TestBillingImpact_changes(t *testing.T) {
	t.Parallel()
	withJSON := map[string]bool{"product_moved_held": true, "indexed_services_unresolved": true}
	for _, c := range impacttest.Changes {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			w := impacttest.New(t, psa.SystemAutotask)
			if c.Usage != "" {
				w.UsageNow = c.Usage
			}
			var rep *impact.Report
			w.AfterApply = func(doc *export.Document) { checkSync(t, w, doc, rep) }
			before := impacttest.Before
			if c.Before != "" {
				before = c.Before
			}
			w.Plan(t, before, c.Config, func(planJSON []byte, current *export.Document) {
				w.Sim.ResetRequests()
				var md string
				rep, md = report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
				golden(t, c.Name+".md", md)
				units := 0
				for _, r := range w.Sim.Requests() {
					// Autotask reads many records with POST .../query;
					// anything else but a GET would change the PSA.
					if r.Method != http.MethodGet && !strings.HasSuffix(r.Path, "/query") && !strings.HasSuffix(r.Path, "/query/count") {
						t.Errorf("the report sent %s %s; it must only read", r.Method, r.Path)
					}
					if strings.HasSuffix(r.Path, "/ContractServiceUnits/query") {
						units++
					}
				}
				// Both plans share one bulk read of the contracts; a
				// customer's new contract is read once more, and so are
				// the contracts for a service only the proposed
				// mappings sync (Autotask reads the lines of the
				// services a plan manages, see readOnly.ReadServiceLines).
				if want := map[bool]int{false: 1, true: 2}[c.Name == "customer_moved" || c.Name == "product_moved_held"]; units != want {
					t.Errorf("the report read contract units %d times, want %d", units, want)
				}
				if withJSON[c.Name] {
					_, js := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatJSON)
					golden(t, c.Name+".json", js)
				}
				if c.Name == "replaced_mapping" {
					// The plan raises Acme's server line from 3 to 25:
					// with max_increase_percent 200, the increase
					// guard holds it, and the report says so.
					pol := usage.DefaultPolicies
					pol.MaxIncreasePercent = 200
					_, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source, Policies: pol}, planJSON, current, impact.FormatMarkdown)
					golden(t, c.Name+"_increase_held.md", md)
				}
			})
		})
	}
}

// checkSync runs the sync pass that psa-syncd runs after the plan is
// applied, on the export the apply wrote, and checks that it leaves every
// line that the report says psa-syncd sets at the report's Proposed
// quantity: the desired one where the pass writes, the one now where it
// holds the change for review.
func checkSync(t *testing.T, w *impacttest.World, doc *export.Document, rep *impact.Report) {
	t.Helper()
	if rep == nil {
		t.Fatal("the plan check did not compute a report")
	}
	res, err := w.Engine().Sync(t.Context(), doc, usage.PassOptions{Trigger: usage.TriggerCLI})
	if err != nil {
		t.Fatalf("sync after apply: %v", err)
	}
	for _, l := range rep.Lines {
		if !l.ProposedSynced || l.Proposed == nil {
			continue
		}
		var found *usage.Change
		for i, ch := range res.Plan.Changes {
			if ch.CustomerID == l.CustomerID && ch.ContractID == l.ContractID &&
				(ch.ServiceID == l.ServiceID || l.NewService && ch.ServiceName == l.ServiceName) {
				found = &res.Plan.Changes[i]
			}
		}
		if found == nil {
			if !l.NewService || !strings.HasPrefix(l.ServiceName, "(known after apply)") {
				t.Errorf("line %s/%s (%s): the report says psa-syncd sets it to %d, but the pass after apply has no such line", l.CustomerID, l.ContractID, l.ServiceName, *l.Proposed)
			}
			continue
		}
		left := found.Desired
		switch found.Action {
		case usage.ActionHeld:
			left = found.Current
		case usage.ActionFailed:
			t.Errorf("line %s/%s (%s): the pass after apply failed it: %s", l.CustomerID, l.ContractID, l.ServiceName, found.Reason)
			continue
		}
		if left != *l.Proposed {
			t.Errorf("line %s/%s (%s): the report says the pass leaves %d (held %v), the pass after apply leaves %d (%s: %s)",
				l.CustomerID, l.ContractID, l.ServiceName, *l.Proposed, l.ProposedHeld != nil, left, found.Action, found.Reason)
		}
		if (found.Action == usage.ActionHeld) != (l.ProposedHeld != nil) {
			t.Errorf("line %s/%s (%s): the pass after apply %s it, the report has it held %v", l.CustomerID, l.ContractID, l.ServiceName, found.Action, l.ProposedHeld != nil)
		}
	}
}

// TestBillingImpact_systems runs a plan that creates a service with a
// product mapping and raises another service's price against the PSAs
// other than Autotask (which TestBillingImpact_changes covers). ConnectWise
// lines keep their own price, as Autotask's do; Kaseya BMS lines have none
// that can be read, so the service's new price applies, and their quantities
// now come from psa-syncd's ledger.
func TestBillingImpact_systems(t *testing.T) {
	t.Parallel()
	change := impacttest.Changes[0].Config // new_product_mapping
	change = strings.Replace(change, "unit_price = 4.5", "unit_price = 5", 1)
	for _, sys := range []psa.System{psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			w := impacttest.New(t, sys)
			w.Plan(t, impacttest.Before, change, func(planJSON []byte, current *export.Document) {
				o := impact.Options{Backend: w.Backend, Source: w.Source}
				if sys == psa.SystemKaseyaBMS {
					o.State = w.State
				}
				monthly, md := report(t, o, planJSON, current, impact.FormatMarkdown)
				golden(t, "systems_"+string(sys)+".md", md)
				checkCycles(t, w, o, planJSON, current, monthly)
			})
		})
	}
	// A product mapping re-pointed to a new service, and a customer moved
	// to another contract, checked against the pass after apply. Re-point:
	// Acme's line of the old service, which psa-syncd set, still bills, so
	// the pass holds Acme's new line; Globex's usage of the product is new
	// since the last pass, so its new line is written. Move: Acme's lines
	// on the contract it leaves, which psa-syncd set, still bill, so the
	// pass holds both of its lines on the new one. Without psa-syncd's
	// ledger, Kaseya BMS (whose lines are never read) cannot tell a line
	// psa-syncd set from usage new since its last pass: the report must
	// not guess (want: what the pass does with the lines whose proposed
	// units it leaves unknown).
	for _, tc := range []struct {
		change string
		want   map[string]int
	}{
		{"product_repointed", map[string]int{usage.ActionHeld: 1, usage.ActionUpdate: 1}},
		{"customer_moved", map[string]int{usage.ActionHeld: 2}},
	} {
		i := slices.IndexFunc(impacttest.Changes, func(c impacttest.Change) bool { return c.Name == tc.change })
		for _, sys := range []psa.System{psa.SystemConnectWise, psa.SystemKaseyaBMS} {
			for _, withState := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%s/state=%v", sys, tc.change, withState), func(t *testing.T) {
					t.Parallel()
					w := impacttest.New(t, sys)
					var rep *impact.Report
					var md string
					w.AfterApply = func(doc *export.Document) {
						want := map[string]int{}
						if sys == psa.SystemKaseyaBMS && !withState {
							want = tc.want
						}
						// A dry run first: checkSync's pass writes the lines.
						checkUnknownHolds(t, w, doc, rep, md, want)
						checkSync(t, w, doc, rep)
					}
					w.Plan(t, impacttest.Before, impacttest.Changes[i].Config, func(planJSON []byte, current *export.Document) {
						o := impact.Options{Backend: w.Backend, Source: w.Source}
						if withState {
							o.State = w.State
						}
						rep, md = report(t, o, planJSON, current, impact.FormatMarkdown)
					})
				})
			}
		}
	}
}

// TestBillingImpact_movedOldLineNotShown: a customer moved to another
// contract whose lines on the contract it leaves, which psa-syncd set,
// ConnectWise no longer shows (the additions read comes back empty: out of
// the API user's sight, or deleted). Without psa-syncd's ledger the report
// predicts the new lines written (most likely the usage is new since the
// last pass), and their why says what the pass after apply does when its
// ledger says it set the old ones: it holds them (previous_contract), as
// it does here, and the why names how the hold ends.
func TestBillingImpact_movedOldLineNotShown(t *testing.T) {
	t.Parallel()
	i := slices.IndexFunc(impacttest.Changes, func(c impacttest.Change) bool { return c.Name == "customer_moved" })
	w := impacttest.New(t, psa.SystemConnectWise)
	var rep *impact.Report
	var md string
	var old string
	w.AfterApply = func(doc *export.Document) {
		res, err := w.Engine().Sync(t.Context(), doc, usage.PassOptions{Trigger: usage.TriggerCLI, DryRun: true})
		if err != nil {
			t.Fatalf("plan after apply: %v", err)
		}
		acme, _ := doc.Customer(impacttest.SourceName, "acme-tenant")
		lines := 0
		for _, l := range rep.Lines {
			if l.CustomerID != "acme-tenant" || l.ContractID != acme.ContractID || !l.ProposedSynced {
				continue
			}
			lines++
			var found *usage.Change
			for j, ch := range res.Plan.Changes {
				if ch.CustomerID == l.CustomerID && ch.ContractID == l.ContractID && ch.ServiceID == l.ServiceID {
					found = &res.Plan.Changes[j]
				}
			}
			if found == nil || found.Action != usage.ActionHeld || found.Hold() != usage.HoldMoved {
				t.Errorf("line %s (%s): the pass after apply has %+v, want it held as previous_contract", l.ContractID, l.ServiceName, found)
				continue
			}
			for _, says := range []string{
				"if psa-syncd set the line of this service on contract " + old + ", which the customer leaves (",
				"and ConnectWise PSA's read does not show it (deleted in ConnectWise PSA, or out of the API user's sight), the pass holds this line for review (previous_contract)",
				"or the end of contract " + old + " before the effective date",
				fmt.Sprintf("if it never did (the usage is new since its last pass), the pass sets %d", found.Desired),
			} {
				if !strings.Contains(l.Why, says) {
					t.Errorf("line %s (%s): why %q, want it to say %q", l.ContractID, l.ServiceName, l.Why, says)
				}
			}
		}
		if lines != 2 {
			t.Errorf("Acme's lines on its new contract in the report: %d, want 2:\n%s", lines, md)
		}
	}
	w.Plan(t, impacttest.Before, impacttest.Changes[i].Config, func(planJSON []byte, current *export.Document) {
		acme, _ := current.Customer(impacttest.SourceName, "acme-tenant")
		old = acme.ContractID
		base, err := url.Parse(w.Sim.ConnectWiseBaseURL())
		if err != nil {
			t.Fatal(err)
		}
		w.Sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements/" + old + "/additions", Status: http.StatusOK, Body: "[]"})
		rep, md = report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
	})
}

// checkUnknownHolds checks the lines whose proposed units the report
// leaves unknown because the pass holds them or writes them as psa-syncd's
// ledger says (Kaseya BMS without it) against a dry run of the pass after
// apply: their why names both outcomes, and the pass does one of them,
// holding the line at its units now or setting the units the why names.
// want counts those lines by what the pass does with them.
func checkUnknownHolds(t *testing.T, w *impacttest.World, doc *export.Document, rep *impact.Report, md string, want map[string]int) {
	t.Helper()
	res, err := w.Engine().Sync(t.Context(), doc, usage.PassOptions{Trigger: usage.TriggerCLI, DryRun: true})
	if err != nil {
		t.Fatalf("plan after apply: %v", err)
	}
	outcomes := map[string]int{}
	for _, l := range rep.Lines {
		if !l.ProposedSynced || l.Proposed != nil || !strings.Contains(l.Why, "proposed units unknown without psa-syncd's ledger") {
			continue
		}
		var found *usage.Change
		for i, ch := range res.Plan.Changes {
			if ch.CustomerID == l.CustomerID && ch.ContractID == l.ContractID && ch.ServiceName == l.ServiceName {
				found = &res.Plan.Changes[i]
			}
		}
		if found == nil {
			t.Errorf("line %s/%s (%s): no such line in the pass after apply", l.CustomerID, l.ContractID, l.ServiceName)
			continue
		}
		outcomes[found.Action]++
		says := "the pass holds this line at its units now"
		if found.Action != usage.ActionHeld {
			says = fmt.Sprintf("the pass sets %d", found.Desired)
		}
		if l.MonthlyDelta != nil || !strings.Contains(l.Why, says) {
			t.Errorf("line %s/%s (%s): Δ %s, why %q; the pass after apply %s it (%s): want the Δ unknown and the why to say %q",
				l.CustomerID, l.ContractID, l.ServiceName, deltaText(l.MonthlyDelta), l.Why, found.Action, found.Reason, says)
		}
	}
	if !maps.Equal(outcomes, want) {
		t.Errorf("lines with unknown proposed units, by what the pass after apply does = %v, want %v:\n%s", outcomes, want, md)
	}
}

// deltaText shows a delta that may be unknown.
func deltaText(d *float64) string {
	if d == nil {
		return "unknown"
	}
	return strconv.FormatFloat(*d, 'f', 2, 64)
}

// checkCycles reports the plan of TestBillingImpact_systems again with
// Acme's agreement or contract billed on another cycle than a month: the
// monthly Δ of each of its lines is the one of the monthly report divided
// by the cycle's months (its new line of 25 × 9.00 a cycle adds 225.00 /
// months a month), and the prices read "per year" or "per quarter". A
// cycle the report does not know is not guessed: the deltas of its lines
// are unknown, and Not computed says why.
func checkCycles(t *testing.T, w *impacttest.World, o impact.Options, planJSON []byte, current *export.Document, monthly *impact.Report) {
	t.Helper()
	acme, _ := current.Customer(impacttest.SourceName, "acme-tenant")
	id, _ := strconv.Atoi(acme.ContractID)
	setCycle := func(cycle string) {
		if w.System == psa.SystemConnectWise {
			w.Sim.ConnectWise().SetAgreementBillingCycle(int64(id), cycle)
		} else {
			w.Sim.KaseyaBMS().SetContractBillingCycle(id, cycle)
		}
	}
	defer setCycle("Monthly")
	cycles := map[psa.System][]struct {
		cycle  string
		months float64
		price  string
	}{
		psa.SystemConnectWise: {{"Annually", 12, "9.00 per year"}, {"quarterly", 3, "9.00 per quarter"}},
		psa.SystemKaseyaBMS:   {{"Quarterly", 3, "9.00 per quarter"}, {"Semi-Annually", 6, "9.00 per half-year"}},
	}[w.System]
	// The deltas of Acme's lines and of the others, by service, when
	// every contract bills monthly.
	acmeDelta, otherTotal, acmeLines := map[string]float64{}, 0.0, 0
	for _, l := range monthly.Lines {
		switch {
		case l.MonthlyDelta == nil:
			t.Fatalf("monthly report: line %s/%s has no delta", l.ContractID, l.ServiceName)
		case l.ContractID == acme.ContractID:
			acmeDelta[l.ServiceName] = *l.MonthlyDelta
			if *l.MonthlyDelta != 0 {
				acmeLines++
			}
		default:
			otherTotal += *l.MonthlyDelta
		}
	}
	mdr := func(rep *impact.Report) *impact.Line {
		for i, l := range rep.Lines {
			if l.ContractID == acme.ContractID && l.NewService {
				return &rep.Lines[i]
			}
		}
		t.Fatalf("no line of the new service on contract %s in %+v", acme.ContractID, rep.Lines)
		return nil
	}
	fresh := func() impact.Options {
		be, err := backends.New(w.BackendConfig())
		if err != nil {
			t.Fatal(err)
		}
		o.Backend = be
		return o
	}
	for _, tc := range cycles {
		setCycle(tc.cycle)
		rep, md := report(t, fresh(), planJSON, current, impact.FormatMarkdown)
		if l := mdr(rep); l.MonthlyDelta == nil || *l.MonthlyDelta != math.Round(225/tc.months*100)/100 {
			t.Errorf("%s: monthly Δ of the new line %s; want 225.00 / %v:\n%s", tc.cycle, deltaText(l.MonthlyDelta), tc.months, md)
		}
		total := otherTotal
		for _, l := range rep.Lines {
			if l.ContractID != acme.ContractID {
				continue
			}
			want := math.Round(acmeDelta[l.ServiceName]/tc.months*100) / 100
			if l.MonthlyDelta == nil || *l.MonthlyDelta != want {
				t.Errorf("%s: line %s has monthly Δ %s, want %.2f", tc.cycle, l.ServiceName, deltaText(l.MonthlyDelta), want)
			}
			total += want
		}
		if math.Abs(rep.Totals.MonthlyDelta-total) > 0.005 {
			t.Errorf("%s: total %.2f, want %.2f", tc.cycle, rep.Totals.MonthlyDelta, total)
		}
		if !strings.Contains(md, "| "+tc.price+" |") || len(rep.NotComputed) != 0 {
			t.Errorf("%s: want the price shown as %q and nothing not computed:\n%s", tc.cycle, tc.price, md)
		}
	}
	for _, cycle := range []string{"Weekly", "Every two years"} {
		setCycle(cycle)
		rep, md := report(t, fresh(), planJSON, current, impact.FormatMarkdown)
		l := mdr(rep)
		if l.MonthlyDelta != nil || rep.Totals.Unknown != acmeLines || !strings.Contains(l.Why, "billing cycle is unknown") {
			t.Errorf("%s: monthly Δ of the new line %s, %d unknown, why %q; want it unknown, not guessed:\n%s", cycle, deltaText(l.MonthlyDelta), rep.Totals.Unknown, l.Why, md)
		}
		if !slices.ContainsFunc(rep.NotComputed, func(n string) bool {
			return strings.Contains(n, acme.ContractID) && strings.Contains(n, strconv.Quote(cycle))
		}) || !strings.Contains(md, "Incomplete report") {
			t.Errorf("%s: not computed = %q; want an entry naming contract %s and its cycle", cycle, rep.NotComputed, acme.ContractID)
		}
	}
}

// TestBillingImpact_ledgerOnPostgres: with the state in PostgreSQL, a CI
// runner reads the Kaseya BMS ledger through a read-only connection while
// the active instance holds the database, and the report is the one the
// daemon's own state gives.
func TestBillingImpact_ledgerOnPostgres(t *testing.T) {
	t.Parallel()
	change := impacttest.Changes[0].Config
	change = strings.Replace(change, "unit_price = 4.5", "unit_price = 5", 1)
	url := pgtest.NewDatabase(t)
	w := impacttest.New(t, psa.SystemKaseyaBMS, impacttest.WithPostgres(url))
	w.Plan(t, impacttest.Before, change, func(planJSON []byte, current *export.Document) {
		ro, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url, ReadOnly: true})
		if err != nil {
			t.Fatalf("read-only open: %v", err)
		}
		defer ro.Close()
		_, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source, State: ro}, planJSON, current, impact.FormatMarkdown)
		golden(t, "systems_"+string(psa.SystemKaseyaBMS)+".md", md)
	})
}

// TestBillingImpact_withoutCredentials reports a plan as a pull request from
// a fork gets it: without PSA credentials, and without usage either. The
// report says which figures it could not compute and still shows what the
// plan and the export tell.
func TestBillingImpact_withoutCredentials(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	moved := impacttest.Changes[2]
	if moved.Name != "customer_moved" {
		t.Fatalf("Changes[2] is %s", moved.Name)
	}
	w.Plan(t, impacttest.Before, moved.Config, func(planJSON []byte, current *export.Document) {
		noPSA := impact.Options{Source: w.Source, NoBackend: "no PSA credentials (PSA_AUTOTASK_SECRET not set)"}
		_, md := report(t, noPSA, planJSON, current, impact.FormatMarkdown)
		golden(t, "without_psa_credentials.md", md)

		nothing := impact.Options{NoBackend: "no PSA credentials (PSA_AUTOTASK_SECRET not set)", NoSource: "no usage-source credentials (PSA_SOPHOS_CLIENT_SECRET not set)"}
		rep, table := report(t, nothing, planJSON, current, impact.FormatTable)
		golden(t, "without_any_credentials.txt", table)
		for _, l := range rep.Lines {
			if l.Now != nil || l.MonthlyDelta != nil {
				t.Errorf("line %s/%s: now %v, delta %v without PSA or usage; want both unknown", l.ContractID, l.ServiceID, l.Now, l.MonthlyDelta)
			}
		}

		_, js := report(t, noPSA, planJSON, current, impact.FormatJSON)
		var got impact.Report
		if err := json.Unmarshal([]byte(js), &got); err != nil {
			t.Fatalf("decoding the JSON report: %v\n%s", err, js)
		}
		if len(got.NotComputed) != 1 || !strings.Contains(got.NotComputed[0], "PSA_AUTOTASK_SECRET") {
			t.Errorf("JSON not_computed = %q, want one entry naming PSA_AUTOTASK_SECRET", got.NotComputed)
		}
	})
}

// TestBillingImpact_noChange: a plan that changes no mapping gives the short
// report.
func TestBillingImpact_noChange(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	w.Plan(t, impacttest.Before, impacttest.Before, func(planJSON []byte, current *export.Document) {
		rep, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
		if !rep.NoChange() || !strings.Contains(md, "**No billing change.**") {
			t.Errorf("report of an empty plan:\n%s\nwant No billing change", md)
		}
	})
}

// TestBillingImpact_ciExample loads the configuration of the CI example
// without any credential, as a pull request from a fork runs it, and checks
// that the example report in its README is the one the tests produce.
func TestBillingImpact_ciExample(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "examples", "ci", "billing-impact")
	cfg, missing, err := impact.LoadConfig(filepath.Join(dir, "psa-syncd.yml"), nil)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if cfg.PSA.System != psa.SystemAutotask {
		t.Errorf("psa.system = %q, want autotask", cfg.PSA.System)
	}
	// The example names every policy that changes the report, so that a
	// copy shows where the daemon's own values go: one left out takes its
	// default here, and the report then plans another month, or holds
	// other lines, than the daemon's passes do.
	src, err := os.ReadFile(filepath.Join(dir, "psa-syncd.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Policies map[string]any `yaml:"policies"`
	}
	if err := yaml.Unmarshal(src, &conf); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"usage_period", "effective_date", "missing_usage", "max_decrease_percent", "max_increase_percent"} {
		if _, ok := conf.Policies[key]; !ok {
			t.Errorf("%s/psa-syncd.yml leaves out policies.%s, which changes the report: give it the daemon's value", dir, key)
		}
	}
	wantPSA := []string{"PSA_AUTOTASK_INTEGRATION_CODE", "PSA_AUTOTASK_SECRET", "PSA_AUTOTASK_USERNAME"}
	wantSource := []string{"PSA_SOPHOS_CLIENT_ID", "PSA_SOPHOS_CLIENT_SECRET"}
	if !cmp.Equal(missing.PSA, wantPSA) || !cmp.Equal(missing.Source, wantSource) {
		t.Errorf("LoadConfig missing = %+v, want PSA %q and source %q", missing, wantPSA, wantSource)
	}

	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	report, err := os.ReadFile(filepath.Join("testdata", "customer_moved.md"))
	if err != nil {
		t.Fatal(err)
	}
	quoted := strings.ReplaceAll("> "+strings.ReplaceAll(strings.TrimSuffix(string(report), "\n"), "\n", "\n> "), "> \n", ">\n")
	if !strings.Contains(string(readme), quoted) {
		t.Errorf("%s/README.md does not quote testdata/customer_moved.md; paste it again, as:\n%s", dir, quoted)
	}
}

// TestLoadConfig_badConfig: a missing credential is tolerated, nothing else.
func TestLoadConfig_badConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "psa-syncd.yml")
	if err := os.WriteFile(path, []byte("export_path: x.json\nstate_dir: s\npsa:\n  system: autotask\n  autotask: {}\nsource:\n  type: sophos\n  sophos: {}\nschedule: sometimes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := impact.LoadConfig(path, nil); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("LoadConfig with a bad schedule: err = %v, want one naming the schedule", err)
	}
}

// TestTerraformPlan_Apply_replacement: a mapping that Terraform replaces
// (its key changed, -replace, a tainted resource) leaves the export under
// its old key and enters it under the new one, in either order of the two
// actions (create first with create_before_destroy).
func TestTerraformPlan_Apply_replacement(t *testing.T) {
	t.Parallel()
	current := export.New(psa.SystemAutotask, "")
	current.PutProduct(export.ProductMapping{Source: "sophos", Product: "OLD", ServiceID: "100", ServiceName: "S", SyncEnabled: true})
	for _, actions := range []string{`["delete", "create"]`, `["create", "delete"]`} {
		plan := `{"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [{
			"address": "psa_product_mapping.m", "mode": "managed", "type": "psa_product_mapping", "name": "m",
			"provider_name": "registry.terraform.io/psa-sync/psa",
			"change": {"actions": ` + actions + `,
				"before": {"source": "sophos", "product": "OLD", "service_id": "100", "service_name": "S", "sync_enabled": true},
				"after": {"source": "sophos", "product": "NEW", "service_id": "100", "service_name": "S", "sync_enabled": true},
				"after_unknown": {}}}]}`
		tp, err := impact.ReadTerraformPlan([]byte(plan))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := tp.Apply(current)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := doc.Product("sophos", "OLD"); ok {
			t.Errorf("%s: the replaced mapping is still in the export", actions)
		}
		if _, ok := doc.Product("sophos", "NEW"); !ok {
			t.Errorf("%s: the replacement is not in the export", actions)
		}
	}
}

// TestBillingImpact_connectWiseUnmanagedAdditions: an addition psa-syncd
// does not manage on a customer's agreement (labour billed in half hours,
// or two additions of one such item) stops nothing in a pass, so it must
// not fail the customer in the report either: the report is the one the
// agreement gives without it.
func TestBillingImpact_connectWiseUnmanagedAdditions(t *testing.T) {
	t.Parallel()
	change := impacttest.Changes[0].Config // new_product_mapping
	change = strings.Replace(change, "unit_price = 4.5", "unit_price = 5", 1)
	for _, tc := range []struct {
		name string
		add  func(cw *psatest.ConnectWise, agreement, labour int64)
	}{
		{"fractional", func(cw *psatest.ConnectWise, agreement, labour int64) {
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: labour, Quantity: 1.5})
		}},
		{"duplicate", func(cw *psatest.ConnectWise, agreement, labour int64) {
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: labour, Quantity: 1})
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: labour, Quantity: 2})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := impacttest.New(t, psa.SystemConnectWise)
			w.Plan(t, impacttest.Before, change, func(planJSON []byte, current *export.Document) {
				cw := w.Sim.ConnectWise()
				labour := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Onsite labour", Price: 100})
				cm, ok := current.Customer(impacttest.SourceName, "acme-tenant")
				if !ok {
					t.Fatal("no customer mapping for acme-tenant in the export")
				}
				agreement, err := strconv.ParseInt(cm.ContractID, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				tc.add(cw, agreement, labour)
				_, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
				golden(t, "systems_"+string(psa.SystemConnectWise)+".md", md)
			})
		})
	}
}

// TestReadTerraformPlan_errored: `terraform plan -out` saves the plan file
// even when the plan fails (here a data source that cannot be read), and
// `terraform show -json` shows it without an error. Terraform v1.11.4 marks
// it "errored": the report refuses it instead of calling it "No billing
// change". Terraform v1.5.7 writes no such mark, so that plan reads as any
// other: only the exit status of `terraform plan` tells there.
func TestReadTerraformPlan_errored(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "errored_plan_1.11.4.json"))
	if err != nil {
		t.Fatal(err)
	}
	if tp, err := impact.ReadTerraformPlan(data); err == nil || !strings.Contains(err.Error(), "the Terraform plan is errored (Terraform 1.11.4 saved it although `terraform plan` failed)") {
		t.Errorf("ReadTerraformPlan(errored plan) = %v, %v; want an error saying the plan is errored", tp, err)
	}
	data, err = os.ReadFile(filepath.Join("testdata", "errored_plan_1.5.7.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := impact.ReadTerraformPlan(data); err != nil {
		t.Errorf("ReadTerraformPlan(plan of Terraform 1.5.7, which has no errored field) = %v; want no error", err)
	}
}

// TestBillingImpact_psaReadFails: the PSA answers the ping, but reading the
// contract lines fails (a 5xx, or a 403 for an API user without rights on
// ContractServiceUnits), so every customer fails as a whole and neither
// plan has a single line. The report must not say "No billing change": it
// is headed as incomplete, names each customer with its contract and the
// error, and shows the line the plan adds as unknown. An error that quotes
// the request carries no credential into the report.
func TestBillingImpact_psaReadFails(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	w.Plan(t, impacttest.Before, impacttest.Changes[0].Config, func(planJSON []byte, current *export.Document) {
		for _, tc := range []struct {
			status int
			echo   bool
		}{{http.StatusForbidden, false}, {http.StatusInternalServerError, false}, {http.StatusInternalServerError, true}} {
			w.Sim.AddFault(psatest.Fault{Path: "/ATServicesRest/V1.0/ContractServiceUnits/*", Status: tc.status, EchoRequest: tc.echo})
			rep, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
			w.Sim.ClearFaults()
			name := fmt.Sprintf("status %d (echo %t)", tc.status, tc.echo)
			if tc.status == http.StatusForbidden {
				u, err := url.Parse(w.Sim.AutotaskBaseURL())
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "psa_lines_forbidden.md", strings.ReplaceAll(md, u.Host, "simulator"))
			}
			if rep.NoChange() || !strings.Contains(md, "> [!WARNING]\n> Incomplete report") {
				t.Errorf("%s: report without the Incomplete warning, or with no change:\n%s", name, md)
			}
			var customers []string
			for _, n := range rep.NotComputed {
				for _, c := range []string{"acme-tenant", "globex-tenant"} {
					if strings.Contains(n, "customer Acme ("+c+") on contract") || strings.Contains(n, "customer Globex ("+c+") on contract") {
						customers = append(customers, c)
					}
				}
			}
			if !cmp.Equal(customers, []string{"acme-tenant", "globex-tenant"}) {
				t.Errorf("%s: not computed = %q, want one entry per customer", name, rep.NotComputed)
			}
			if len(rep.Lines) != 1 || !rep.Lines[0].NewService || rep.Lines[0].Proposed != nil || rep.Lines[0].MonthlyDelta != nil {
				t.Errorf("%s: lines = %+v, want Acme's new MDR line with an unknown quantity and delta", name, rep.Lines)
			}
			for _, secret := range []string{psatest.DefaultAutotaskSecret, psatest.DefaultAutotaskIntegrationCode} {
				if strings.Contains(md, secret) {
					t.Errorf("%s: the report holds the credential %q:\n%s", name, secret, md)
				}
			}
		}
	})
}

// TestBillingImpact_noUsageYet: the vendor has no usage for the month yet
// (early in the month with usage_period: current). A pass then leaves every
// line as it is, so the plan's new mapping changes no line now; the report
// says that what the mappings bill could not be computed, under
// missing_usage zero (where the engine records the problem) and keep.
func TestBillingImpact_noUsageYet(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	w.UsageNow = "customer_id,customer_name,product,quantity\n"
	w.Plan(t, impacttest.Before, impacttest.Changes[0].Config, func(planJSON []byte, current *export.Document) {
		_, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
		golden(t, "no_usage_yet.md", md)
		keep := usage.DefaultPolicies
		keep.MissingUsage = usage.MissingUsageKeep
		rep, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source, Policies: keep}, planJSON, current, impact.FormatMarkdown)
		if len(rep.NotComputed) != 1 || !strings.Contains(rep.NotComputed[0], "no usage at all for 2026-11") || !strings.Contains(md, "Incomplete report") {
			t.Errorf("missing_usage keep: not computed = %q, want the missing usage:\n%s", rep.NotComputed, md)
		}
	})
}

// TestBillingImpact_ciExampleOIDC: the GitHub workflow of the CI example
// shows how to reach an S3 state backend and export with an OIDC role
// (aws-actions/configure-aws-credentials with role-to-assume, commented
// out). GitHub gives a job an OIDC token only with the permission
// id-token: write, which the workflow must show beside it, or the step
// fails with "Could not get ID token".
func TestBillingImpact_ciExampleOIDC(t *testing.T) {
	t.Parallel()
	wf, err := os.ReadFile(filepath.Join("..", "..", "examples", "ci", "billing-impact", "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*#?\s*role-to-assume: `).Match(wf) {
		t.Fatal("github-actions.yml shows no OIDC role step (role-to-assume)")
	}
	_, perms, _ := strings.Cut(string(wf), "\npermissions:\n")
	perms, _, _ = strings.Cut(perms, "\n\n")
	if !regexp.MustCompile(`(?m)^\s+#?\s*id-token: write$`).MatchString(perms) {
		t.Errorf("github-actions.yml's permissions block lacks id-token: write, which its OIDC role step needs:\n%s", perms)
	}
}

// TestBillingImpact_ciExampleCommentUpdated: the GitHub workflow of the CI
// example keeps one report comment per pull request and updates it on
// every push. It must find that comment by the heading every Markdown
// report starts with, never take whatever github-actions[bot] commented
// last (gh pr comment --edit-last): with the same token, that is also the
// plan another workflow posts next to the report, which the report would
// then replace.
func TestBillingImpact_ciExampleCommentUpdated(t *testing.T) {
	t.Parallel()
	workflow := readCIExampleWorkflow(t)
	var run strings.Builder
	for _, job := range workflow.Jobs {
		for _, step := range job.Steps {
			run.WriteString(step.Run + "\n")
		}
	}
	if strings.Contains(run.String(), "--edit-last") {
		t.Error("github-actions.yml edits the bot's last comment (--edit-last), which may be another workflow's plan: find the report's own comment by its heading")
	}
	// The golden reports are what markdown renders (TestBillingImpact_changes).
	report, err := os.ReadFile(filepath.Join("testdata", "customer_moved.md"))
	if err != nil {
		t.Fatal(err)
	}
	heading, _, _ := strings.Cut(string(report), "\n")
	if want := fmt.Sprintf("startswith(%q)", heading); !strings.Contains(run.String(), want) {
		t.Errorf("github-actions.yml does not find its comment by the report's heading: want %s in its jq filter", want)
	}
}

// ciExampleWorkflow is what the tests read of the CI example's GitHub
// workflow.
type ciExampleWorkflow struct {
	Concurrency struct {
		Group            string `yaml:"group"`
		CancelInProgress bool   `yaml:"cancel-in-progress"`
	} `yaml:"concurrency"`
	Jobs map[string]struct {
		Steps []struct {
			ID  string            `yaml:"id"`
			If  string            `yaml:"if"`
			Env map[string]string `yaml:"env"`
			Run string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func readCIExampleWorkflow(t *testing.T) ciExampleWorkflow {
	t.Helper()
	wf, err := os.ReadFile(filepath.Join("..", "..", "examples", "ci", "billing-impact", "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var workflow ciExampleWorkflow
	if err := yaml.Unmarshal(wf, &workflow); err != nil {
		t.Fatal(err)
	}
	return workflow
}

// TestBillingImpact_ciExampleNeverShowsAnOlderReport: the report comment
// of the CI example's GitHub workflow is updated in place, so it must
// never show the report of an older push as the pull request's: two pushes
// in quick succession run the workflow twice, and without a concurrency
// group per pull request that cancels the older run, the older run can
// finish last and put its report back; and a run whose plan or report
// fails (an errored plan, a store it cannot read) must replace the earlier
// push's report too, saying there is none for this commit, rather than
// skip the comment step and leave that report standing.
func TestBillingImpact_ciExampleNeverShowsAnOlderReport(t *testing.T) {
	t.Parallel()
	workflow := readCIExampleWorkflow(t)
	if !strings.Contains(workflow.Concurrency.Group, "github.event.pull_request.number") || !workflow.Concurrency.CancelInProgress {
		t.Errorf("github-actions.yml has no concurrency group per pull request that cancels the older run (group %q, cancel-in-progress %v): "+
			"an older push's run that finishes last replaces the newer report with its own", workflow.Concurrency.Group, workflow.Concurrency.CancelInProgress)
	}
	report, err := os.ReadFile(filepath.Join("testdata", "customer_moved.md"))
	if err != nil {
		t.Fatal(err)
	}
	heading, _, _ := strings.Cut(string(report), "\n")
	var reportID string
	for _, job := range workflow.Jobs {
		for _, step := range job.Steps {
			if strings.Contains(step.Run, "psa-syncd plan ") {
				reportID = step.ID
			}
		}
		for _, step := range job.Steps {
			if !strings.Contains(step.Run, "issues/comments/") {
				continue
			}
			if !strings.Contains(step.If, "!cancelled()") && !strings.Contains(step.If, "always()") {
				t.Errorf("the comment step runs only when every step before it succeeded (if: %q): a failed plan or report leaves the earlier push's report as this push's", step.If)
			}
			if reportID == "" || !slices.Contains(slices.Collect(maps.Values(step.Env)), "${{ steps."+reportID+".outcome }}") {
				t.Errorf("the comment step does not read the outcome of the report's step (id %q) from its env: %v", reportID, step.Env)
			}
			if !strings.Contains(step.Run, "printf '"+heading+`\n`) {
				t.Errorf("the comment step does not write a body under the report's heading %q when there is no report, which the next push's run finds and updates", heading)
			}
		}
	}
}

// TestBillingImpact_ciPipelinesSayWhenThereIsNoReport: the pipelines of
// the CI guide and the GitLab job of the CI example post a new report for
// every push, so the newest report on a pull or merge request is taken for
// its head's. A push whose plan or report fails must post a note saying
// there is no report for its commit (under the report's heading), or the
// earlier push's report stays the newest; each report names its commit;
// and a GitLab job is interruptible, so that a newer push's pipeline
// cancels it rather than let it post an older report after the newer one.
func TestBillingImpact_ciPipelinesSayWhenThereIsNoReport(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	report, err := os.ReadFile(filepath.Join("testdata", "customer_moved.md"))
	if err != nil {
		t.Fatal(err)
	}
	heading, _, _ := strings.Cut(string(report), "\n")
	noReport := "printf '" + heading + `\n\n**No report for commit %s**`
	commit := regexp.MustCompile(`printf '\\n_Commit %s\._\\n' "\$(HEAD_SHA|CI_COMMIT_SHA)" >> billing-impact\.md`)

	var github ciGuideGitHub
	var gitlab map[string]yaml.Node // stages and variables too
	for i, block := range ciGuideYAML(t) {
		switch {
		case strings.Contains(block, "\njobs:\n"):
			if err := yaml.Unmarshal([]byte(block), &github); err != nil {
				t.Fatalf("the guide's yaml block %d: %v", i, err)
			}
		case strings.HasPrefix(block, "stages:"):
			if err := yaml.Unmarshal([]byte(block), &gitlab); err != nil {
				t.Fatalf("the guide's yaml block %d: %v", i, err)
			}
		}
	}
	var reported, said bool
	for _, step := range github.Jobs["plan"].Steps {
		reported = reported || commit.MatchString(step.Run) // in the report's step, or in the step that comments
		said = said || (strings.Contains(step.If, "failure()") || strings.Contains(step.If, "!cancelled()")) && strings.Contains(step.Run, noReport)
	}
	if !reported {
		t.Error("the guide's GitHub plan job posts a billing report that does not name its commit")
	}
	if !said {
		t.Error("the guide's GitHub plan job has no step that, when the plan or the report failed, says there is no report for the commit: the earlier push's report stays the newest")
	}

	example, err := os.ReadFile(filepath.Join(root, "examples", "ci", "billing-impact", "gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(example, &gitlab); err != nil {
		t.Fatal(err)
	}
	for name, job := range map[string]string{"the guide's GitLab plan job": "plan", "gitlab-ci.yml": "psa-billing-impact"} {
		node, ok := gitlab[job]
		if !ok {
			t.Errorf("%s: no job %q", name, job)
			continue
		}
		var j struct {
			Interruptible bool     `yaml:"interruptible"`
			Script        []string `yaml:"script"`
			AfterScript   []string `yaml:"after_script"`
		}
		if err := node.Decode(&j); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !j.Interruptible {
			t.Errorf("%s is not interruptible: an older push's pipeline may post its report after the newer one's", name)
		}
		if !commit.MatchString(strings.Join(j.Script, "\n")) {
			t.Errorf("%s posts a billing report that does not name its commit", name)
		}
		after := strings.Join(j.AfterScript, "\n")
		if !strings.Contains(after, `"$CI_JOB_STATUS" = failed`) || !strings.Contains(after, noReport) {
			t.Errorf("%s has no after_script that, when the plan or the report failed, says there is no report for the commit: the earlier push's report stays the newest", name)
		}
	}
}

// ciGuideGitHub is what the tests read of the CI guide's GitHub workflow.
type ciGuideGitHub struct {
	Jobs map[string]struct {
		Steps []struct {
			If  string `yaml:"if"`
			Run string `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// ciGuideYAML returns the YAML blocks of the CI guide, as its template
// renders them.
func ciGuideYAML(t *testing.T) []string {
	t.Helper()
	guide, err := os.ReadFile(filepath.Join("..", "..", "examples", "templates", "guides", "ci-workflow.md.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	unescape := regexp.MustCompile(`\{\{ "(.*?)" \}\}`)
	var blocks []string
	for _, block := range strings.Split(string(guide), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "\n```\n") // the plan comment's printf holds ``` too
		blocks = append(blocks, unescape.ReplaceAllString(block, "$1"))
	}
	return blocks
}

// TestBillingImpact_ciGuideCommentsUpdated: the guide's GitHub plan job
// keeps one plan comment and one report comment per pull request, as the
// CI example keeps its report comment: a step that comments finds the
// job's own earlier comment by its heading and updates it (PATCH), never
// adds a new one on every push, and runs also after a failure, so that
// the comments of an earlier push never stand as this push's.
func TestBillingImpact_ciGuideCommentsUpdated(t *testing.T) {
	t.Parallel()
	var github ciGuideGitHub
	for _, block := range ciGuideYAML(t) {
		if strings.Contains(block, "\njobs:\n") {
			if err := yaml.Unmarshal([]byte(block), &github); err != nil {
				t.Fatal(err)
			}
		}
	}
	commenting := 0
	for _, step := range github.Jobs["plan"].Steps {
		if !strings.Contains(step.Run, "gh pr comment") {
			continue
		}
		commenting++
		for _, want := range []string{`github-actions[bot]`, ciGitHubHeadingMatch, `--method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id"`, "for body in comment.md billing-impact.md;"} {
			if !strings.Contains(step.Run, want) {
				t.Errorf("the guide's GitHub plan job adds a new comment on every push: its step that comments does not update the job's own comment found by its heading (%s is missing)", want)
			}
		}
		if step.If != "!cancelled()" {
			t.Errorf("the guide's GitHub step that comments runs only when every step before it succeeded (if: %q): the earlier push's comments stay as this push's", step.If)
		}
	}
	if commenting != 1 {
		t.Errorf("the guide's GitHub plan job comments in %d steps, want 1 (the plan's and the report's comments, each updated)", commenting)
	}
}

// ciGitHubHeadingMatch is the jq test with which the guide's GitHub jobs
// find their comment: its first line is the heading. A prefix match
// (startswith) also found the apply's "psa-sync billing impact: applied"
// as the plan's report comment, and the plan job, which takes the newest,
// would update it.
const ciGitHubHeadingMatch = `(.body | split(\"\\n\"))[0] == \"$heading\"`

// TestBillingImpact_ciGitLabNotesUpdated: the GitLab jobs of the CI guide
// and of the CI example keep one note per heading on a merge request (the
// plan's and the report's), as the GitHub jobs keep their comments, never
// a new note on every push: a psa_note function, defined in script and in
// after_script (each a shell of its own), finds the oldest note of the
// token's user whose first line is the body's heading (not a note under a
// longer heading, such as the apply's), page by page, and
// updates it through the notes API (PUT …/notes/$id), and no note is
// posted but through it. It needs jq, which the job installs (the guide's
// Alpine image has none) or the example's image is said to have.
func TestBillingImpact_ciGitLabNotesUpdated(t *testing.T) {
	t.Parallel()
	pipelines := ciGitLabPipelines(t)
	if len(pipelines) != 2 {
		t.Fatalf("found %d GitLab pipelines, want 2 (the guide's and the example's)", len(pipelines))
	}
	for name, src := range pipelines {
		var doc map[string]yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var fn string
		if node, ok := doc[".psa-note"]; !ok || node.Decode(&fn) != nil {
			t.Errorf("%s: no .psa-note, the psa_note function that updates the job's note", name)
			continue
		}
		for _, want := range []string{"psa_note() {", `"$CI_API_V4_URL/user"`, "page=$page", ".author.id == $me", `(.body | split("\n"))[0] == $heading`, `--request PUT`, `"$api/$id"`} {
			if !strings.Contains(fn, want) {
				t.Errorf("%s: psa_note does not update the note of the token's user found by its heading, on any page (%s is missing)", name, want)
			}
		}
		if !strings.Contains(src, "apk add --no-cache curl jq") && !strings.Contains(src, "psa-syncd, curl and jq") {
			t.Errorf("%s: psa_note needs jq, which the job neither installs nor asks of its image", name)
		}
		for job, node := range doc {
			var j struct {
				Script      []string `yaml:"script"`
				AfterScript []string `yaml:"after_script"`
			}
			if node.Kind != yaml.MappingNode || node.Decode(&j) != nil || j.Script == nil {
				continue
			}
			for part, lines := range map[string][]string{"script": j.Script, "after_script": j.AfterScript} {
				text := strings.Join(lines, "\n")
				if strings.Contains(text, "psa_note ") && !slices.Contains(lines, fn) {
					t.Errorf("%s: job %s calls psa_note in its %s without defining it there (- *psa-note)", name, job, part)
				}
				if rest := strings.ReplaceAll(text, fn, ""); strings.Contains(rest, "/notes") {
					t.Errorf("%s: job %s writes a note in its %s other than through psa_note: a new note on every push", name, job, part)
				}
			}
			if job != "apply" && strings.Contains(strings.Join(j.Script, "\n"), "billing-impact.md") && !strings.Contains(strings.Join(j.Script, "\n"), "psa_note billing-impact.md") {
				t.Errorf("%s: job %s does not put its report through psa_note", name, job)
			}
		}
	}
}

// TestBillingImpact_ciPsaNoteReadsUserOnce: psa_note read the token's user
// (GET /user) on every call, one request more per note than it needs; it
// reads it once per shell. The function of each GitLab pipeline runs under
// sh three times, against a curl and a jq that answer as GitLab would for
// a merge request without notes.
func TestBillingImpact_ciPsaNoteReadsUserOnce(t *testing.T) {
	t.Parallel()
	pipelines := ciGitLabPipelines(t)
	for name, src := range pipelines {
		var doc struct {
			PsaNote string `yaml:".psa-note"`
		}
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil || doc.PsaNote == "" {
			t.Fatalf("%s: no .psa-note (%v)", name, err)
		}
		fn := doc.PsaNote
		dir := t.TempDir()
		script := fn + `
curl() { printf '%s\n' "$*" >> calls; case "$*" in */user) echo '{"id": 7}' ;; *page=*) echo '[]' ;; esac; }
jq() { cat > /dev/null; case "$1" in .id) echo 7 ;; length) echo 0 ;; esac; }
printf '### terraform plan\n' > plan.md
printf '### psa-sync billing impact\n' > report.md
psa_note plan.md
psa_note report.md
psa_note plan.md
`
		cmd := exec.Command("sh", "-e", "-c", script)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CI_API_V4_URL=https://gitlab.example/api/v4", "CI_PROJECT_ID=1", "CI_MERGE_REQUEST_IID=2"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: psa_note: %v\n%s", name, err, out)
		}
		calls, err := os.ReadFile(filepath.Join(dir, "calls"))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(calls), "/api/v4/user\n"); n != 1 {
			t.Errorf("%s: three psa_note calls read the token's user %d times, want once per shell:\n%s", name, n, calls)
		}
		if n := strings.Count(string(calls), "--request POST"); n != 3 {
			t.Errorf("%s: three psa_note calls on a merge request without notes posted %d notes, want 3 (the fakes no longer match):\n%s", name, n, calls)
		}
	}
}

// ciGitLabPipelines returns the GitLab pipelines of the CI example and of
// the CI guide, by name.
func ciGitLabPipelines(t *testing.T) map[string]string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "ci", "billing-impact", "gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	pipelines := map[string]string{"gitlab-ci.yml": string(example)}
	for _, block := range ciGuideYAML(t) {
		if strings.HasPrefix(block, "stages:") {
			pipelines["the guide's GitLab pipeline"] = block
		}
	}
	return pipelines
}

// readCIPipelines reads the pipelines of the CI example and of the CI
// guide, and the files in more, by path.
func readCIPipelines(t *testing.T, more ...string) map[string][]byte {
	t.Helper()
	root := filepath.Join("..", "..")
	files := make(map[string][]byte)
	for _, path := range append([]string{
		filepath.Join(root, "examples", "ci", "billing-impact", "github-actions.yml"),
		filepath.Join(root, "examples", "ci", "billing-impact", "gitlab-ci.yml"),
		filepath.Join(root, "examples", "templates", "guides", "ci-workflow.md.tmpl"),
	}, more...) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[path] = src
	}
	return files
}

// TestBillingImpact_ciPlanJSONNeverOnDisk: `terraform show -json` prints
// the plan's sensitive values in clear text. The CI examples and the guide
// wrote it to tfplan.json and removed it after the report, so a failed
// report left it in the workspace, which a self-hosted runner (or GitLab's
// build directory) keeps: they pipe it into -terraform-plan /dev/stdin
// instead.
func TestBillingImpact_ciPlanJSONNeverOnDisk(t *testing.T) {
	t.Parallel()
	toFile := regexp.MustCompile(`terraform show -json \S+ *>`)
	report := regexp.MustCompile(`psa-syncd plan .*-terraform-plan (\S+)`)
	readme := filepath.Join("..", "..", "examples", "ci", "billing-impact", "README.md")
	for path, src := range readCIPipelines(t, readme) {
		for _, l := range toFile.FindAllString(string(src), -1) {
			t.Errorf("%s: %q writes the plan's JSON, sensitive values in clear text, to the runner's disk: pipe it into -terraform-plan /dev/stdin", path, l)
		}
		reports := report.FindAllStringSubmatch(string(src), -1)
		if len(reports) == 0 {
			t.Errorf("%s: no psa-syncd plan -terraform-plan found; the pattern no longer matches", path)
		}
		for _, m := range reports {
			if m[1] != "/dev/stdin" {
				t.Errorf("%s: %q reads the plan from a file, not from the pipe (/dev/stdin)", path, m[0])
			}
		}
	}
}

// ciJob is a job of the pipelines of the CI example and of the CI guide:
// a GitLab job (script) or a GitHub job (steps).
type ciJob struct {
	Path, Name  string
	Script      []string `yaml:"script"`
	AfterScript []string `yaml:"after_script"`
	Artifacts   struct {
		Paths []string `yaml:"paths"`
	} `yaml:"artifacts"`
	Steps []struct {
		If   string            `yaml:"if"`
		Run  string            `yaml:"run"`
		Uses string            `yaml:"uses"`
		With map[string]string `yaml:"with"`
	} `yaml:"steps"`
}

// commands returns what the job runs, in order: its script, or the run of
// each of its steps.
func (j ciJob) commands() string {
	var cmds strings.Builder
	for _, l := range j.Script {
		cmds.WriteString(l + "\n")
	}
	for _, step := range j.Steps {
		cmds.WriteString(step.Run + "\n")
	}
	return cmds.String()
}

// ciPipelineJobs returns the jobs of the pipelines of the CI example and
// of the CI guide (its YAML blocks, rendered).
func ciPipelineJobs(t *testing.T) []ciJob {
	t.Helper()
	var all []ciJob
	for path, src := range readCIPipelines(t) {
		blocks := []string{string(src)}
		if strings.HasSuffix(path, ".tmpl") {
			blocks = ciGuideYAML(t)
		}
		for _, block := range blocks {
			var doc map[string]yaml.Node
			if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
				continue // not a pipeline (the guide's other yaml blocks)
			}
			jobs := doc
			if node, ok := doc["jobs"]; ok { // GitHub
				jobs = nil
				if err := node.Decode(&jobs); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
			}
			for name, node := range jobs {
				j := ciJob{Path: path, Name: name}
				if node.Kind != yaml.MappingNode || node.Decode(&j) != nil || j.Script == nil && j.Steps == nil {
					continue
				}
				all = append(all, j)
			}
		}
	}
	return all
}

// removes reports whether the job removes file also when a step failed:
// with `rm -f` in a GitHub step `if: always()`, or in a GitLab
// after_script (which runs from the project directory, whatever the
// script's cd).
func (j ciJob) removes(file string) bool {
	removed := func(lines, file string) bool {
		for _, l := range strings.Split(lines, "\n") {
			_, args, ok := strings.Cut(l, "rm -f ")
			if ok && slices.Contains(strings.Fields(args), file) {
				return true
			}
		}
		return false
	}
	for _, step := range j.Steps {
		if step.If == "always()" && removed(step.Run, file) {
			return true
		}
	}
	for _, l := range j.Script {
		if dir, ok := strings.CutPrefix(l, "cd "); ok {
			file = dir + "/" + file
		}
	}
	return removed(strings.Join(j.AfterScript, "\n"), file)
}

// TestBillingImpact_ciPlanFilesRemoved: the files a job writes from its
// plan stay in the workspace, which a self-hosted GitHub runner, or
// GitLab's build directory, keeps for the next job: the binary plan
// (terraform plan -out), which holds the plan's sensitive values as its
// JSON does, and in the guide's plan jobs the plan's text (plan.txt from
// tee, changes.txt), partial after a failed plan, which no comment takes.
// Every job that writes one removes it, also when a step failed: in a
// GitHub step `if: always()`, in a GitLab after_script (which runs from
// the project directory, whatever the script's cd, and before the
// artifacts are uploaded: a job may keep plan.txt for the artifact of a
// job that succeeded).
func TestBillingImpact_ciPlanFilesRemoved(t *testing.T) {
	t.Parallel()
	for _, files := range []struct {
		what    string
		written *regexp.Regexp
		jobs    int
		which   string
	}{
		{"its binary plan, sensitive values included", regexp.MustCompile(`terraform plan .*-out=(\S+)`), 6, "the example's and the guide's plan jobs, and the guide's apply jobs, GitHub and GitLab"},
		{"the plan's text, partial after a failed plan", regexp.MustCompile(`(?:\| tee|>) (\S+\.txt)\b`), 2, "the guide's plan jobs, GitHub and GitLab"},
	} {
		jobsChecked := 0
		for _, j := range ciPipelineJobs(t) {
			written := files.written.FindAllStringSubmatch(j.commands(), -1)
			if len(written) > 0 {
				jobsChecked++
			}
			for _, m := range written {
				if !j.removes(m[1]) {
					t.Errorf("%s: job %s leaves %s (%s) in the workspace: remove it in a step `if: always()`, or in after_script", j.Path, j.Name, m[1], files.what)
				}
			}
		}
		if jobsChecked != files.jobs {
			t.Errorf("found %d jobs that write %s, want %d (%s): the pattern no longer matches", jobsChecked, files.what, files.jobs, files.which)
		}
	}
}

// TestBillingImpact_ciApplyAppliesItsReportedPlan: the apply jobs of the CI
// guide apply the plan whose billing report they keep, never a plan made
// by `terraform apply` itself that nobody reads: each saves its plan
// (-out), pipes it into psa-syncd plan before the apply, keeps the report
// (GitHub: the job summary; GitLab: an artifact) and applies that file.
func TestBillingImpact_ciApplyAppliesItsReportedPlan(t *testing.T) {
	t.Parallel()
	out := regexp.MustCompile(`terraform plan .*-out=(\S+)`)
	apply := regexp.MustCompile(`(?m)^\s*terraform apply\b.*$`)
	applyJobs := 0
	for _, j := range ciPipelineJobs(t) {
		if j.Name != "apply" {
			continue
		}
		applyJobs++
		cmds := j.commands()
		applies := apply.FindAllString(cmds, -1)
		m := out.FindStringSubmatch(cmds)
		if m == nil || len(applies) != 1 || !strings.HasSuffix(strings.TrimSpace(applies[0]), " "+m[1]) || strings.Contains(applies[0], "-auto-approve") {
			t.Errorf("%s: the apply job does not apply the plan it saved (%v): terraform apply makes a new plan that nobody reads", j.Path, applies)
			continue
		}
		report := strings.Index(cmds, "terraform show -json "+m[1]+" | ")
		if report < 0 || !strings.Contains(cmds[report:], "-terraform-plan /dev/stdin") || report > strings.Index(cmds, applies[0]) {
			t.Errorf("%s: the apply job makes no billing report of the plan it applies before the apply", j.Path)
		}
		if !strings.Contains(cmds, `>> "$GITHUB_STEP_SUMMARY"`) && !slices.Contains(j.Artifacts.Paths, "billing-impact.md") {
			t.Errorf("%s: the apply job keeps no record of the billing report of what it applied (the job summary, or an artifact)", j.Path)
		}
	}
	if applyJobs != 2 {
		t.Errorf("found %d apply jobs, want 2 (the guide's GitHub and GitLab)", applyJobs)
	}
}

// TestBillingImpact_ciApplyStopsOnAnotherBillingImpact: the guide's apply
// jobs applied whatever the merge's plan was, also when its billing impact
// was not the one reviewed on the pull request (another merge in between,
// an edit in the PSA). Each plan job now keeps its report's JSON
// (-json.file, kept as an artifact); each apply job fetches the one of
// the merged pull or merge request, compares its own report with it
// (-reviewed) before `terraform apply`, says what to do when they differ,
// and posts the report it applied on the merged request under a heading of
// its own, through the find-by-heading code of the plan's comments.
func TestBillingImpact_ciApplyStopsOnAnotherBillingImpact(t *testing.T) {
	t.Parallel()
	kept, compared := 0, 0
	for _, j := range ciPipelineJobs(t) {
		if !strings.HasSuffix(j.Path, ".tmpl") {
			continue
		}
		cmds := j.commands()
		switch j.Name {
		case "plan":
			kept++
			uploaded := slices.Contains(j.Artifacts.Paths, "billing-impact.json")
			for _, step := range j.Steps {
				uploaded = uploaded || strings.HasPrefix(step.Uses, "actions/upload-artifact@") && step.With["path"] == "billing-impact.json"
			}
			if !strings.Contains(cmds, "-terraform-plan /dev/stdin -format markdown -json.file billing-impact.json") || !uploaded {
				t.Errorf("%s: the plan job does not keep its report's JSON (-json.file billing-impact.json, as an artifact) for the apply job to compare with", j.Path)
			}
		case "apply":
			compared++
			fetch := max(strings.Index(cmds, "gh run download "), strings.Index(cmds, `/artifacts/billing-impact.json" > reviewed/billing-impact.json`))
			compare := strings.Index(cmds, "-reviewed reviewed/billing-impact.json")
			apply := strings.Index(cmds, "terraform apply ")
			if fetch < 0 || compare < fetch || apply < compare {
				t.Errorf("%s: the apply job does not compare its billing impact with the one reviewed (fetched, then -reviewed) before terraform apply: it applies a billing change nobody reviewed", j.Path)
			}
			if !strings.Contains(cmds, "a pull request (an empty commit will do)") && !strings.Contains(cmds, "a merge request (an empty commit will do)") {
				t.Errorf("%s: the apply job that stops does not say what to do", j.Path)
			}
			applied := strings.Index(cmds, "echo '### psa-sync billing impact: applied'")
			posted := max(strings.LastIndex(cmds, "psa_note note.md"), strings.LastIndex(cmds, "gh pr comment \"$PR\" --body-file comment.md"))
			if applied < apply || posted < applied || !strings.Contains(cmds, ciGitHubHeadingMatch) && !strings.Contains(cmds, "*psa-note") && !strings.Contains(cmds, "psa_note() {") {
				t.Errorf("%s: the apply job does not post the report it applied on the merged request under its own heading, found by its heading", j.Path)
			}
		}
	}
	if kept != 2 || compared != 2 {
		t.Errorf("found %d plan and %d apply jobs in the guide, want 2 each (GitHub and GitLab)", kept, compared)
	}
}

// TestBillingImpact_ciExamplesApplyThroughTheGuide: the example pipelines
// report only; their README gave its own apply commands, which the guide's
// apply jobs outgrew (the comparison with the report reviewed), and no
// test ran. They point at the guide's apply jobs instead, the one tested
// copy, and show no apply of their own.
func TestBillingImpact_ciExamplesApplyThroughTheGuide(t *testing.T) {
	t.Parallel()
	readme := filepath.Join("..", "..", "examples", "ci", "billing-impact", "README.md")
	for path, src := range readCIPipelines(t, readme) {
		if strings.HasSuffix(path, ".tmpl") {
			continue
		}
		if l := regexp.MustCompile(`(?m)^\s*(?:- |run: )?terraform apply\b.*$`).FindString(string(src)); l != "" {
			t.Errorf("%s: %q applies outside the guide's apply jobs, without the comparison with the report reviewed", path, l)
		}
	}
	src, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "use the apply jobs of the [CI workflow guide](../../../docs/guides/ci-workflow.md)") {
		t.Errorf("%s does not point at the guide's apply jobs", readme)
	}
}

// TestBillingImpact_ciExamplesPlanWithoutLock: the pull-request jobs of the
// CI example and of the CI guide run with the read-only plan role, which
// may not write the S3 backend's lock file (docs/guides/ci-workflow.md), so
// every `terraform plan` in them has -lock=false (the apply job's plan,
// with the apply role, locks); and the GitLab job shows how it reaches the
// S3 export and state with GitLab's ID token, as the GitHub workflow shows
// its OIDC role.
func TestBillingImpact_ciExamplesPlanWithoutLock(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	plan := regexp.MustCompile(`(?m)^\s*terraform plan\b.*$`)
	planned := make(map[string]bool)
	for _, j := range ciPipelineJobs(t) {
		if j.Name == "apply" {
			continue
		}
		for _, l := range plan.FindAllString(j.commands(), -1) {
			planned[j.Path] = true
			if !strings.Contains(l, " -lock=false") {
				t.Errorf("%s: job %s: %q locks the state, which the read-only plan role cannot: add -lock=false", j.Path, j.Name, l)
			}
		}
	}
	for path := range readCIPipelines(t) {
		if !planned[path] {
			t.Errorf("%s: no terraform plan found; the pattern no longer matches", path)
		}
	}
	gl, err := os.ReadFile(filepath.Join(root, "examples", "ci", "billing-impact", "gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id_tokens:", "aud: sts.amazonaws.com", "AWS_WEB_IDENTITY_TOKEN_FILE=", "AWS_ROLE_ARN="} {
		if !bytes.Contains(gl, []byte(want)) {
			t.Errorf("gitlab-ci.yml does not show how the job reads the S3 export and state with GitLab's ID token: %s is missing", want)
		}
	}
}

// TestBillingImpact_usageSyncOffMappingIsNotNewlyBilled: the plan adds a
// customer mapping with usage_sync = false for a vendor customer whose
// usage is unmapped now. No pass writes a customer with usage sync off, so
// its usage stays unbilled: the report must not call it newly billed. It
// goes from unmapped to sync off, as a product mapped with sync_enabled =
// false does: neither newly billed nor newly unmapped.
func TestBillingImpact_usageSyncOffMappingIsNotNewlyBilled(t *testing.T) {
	t.Parallel()
	src := usageFile(t, "customer_id,customer_name,product,quantity\nnewco,NewCo,CIXA-MSP,10\n")
	current := export.New(psa.SystemAutotask, "sim")
	current.PutProduct(export.ProductMapping{Source: src.Name(), Product: "CIXA-MSP", ServiceID: "30", ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	planJSON := []byte(`{"format_version":"1.2","terraform_version":"1.9.8","planned_values":{},"resource_changes":[
{"address":"psa_customer_mapping.newco","mode":"managed","type":"psa_customer_mapping","name":"newco","provider_name":"registry.terraform.io/psa-sync/psa",
 "change":{"actions":["create"],"before":null,
  "after":{"source":"` + src.Name() + `","customer_id":"newco","customer_name":"NewCo","company_id":"1","contract_id":"2","usage_sync":false,"ticket_sync":false},
  "after_unknown":{"id":true}}}]}`)
	rep := offlineReport(t, src, current, planJSON)
	if len(rep.NewlyBilled) != 0 || len(rep.Unmapped) != 0 {
		t.Errorf("report lists newly billed %+v and newly unmapped %+v; want neither: customer newco goes from unmapped to usage_sync = false, "+
			"and its usage stays unbilled", rep.NewlyBilled, rep.Unmapped)
	}
}

// TestBillingImpact_newMappingMatchesNoUsage: the plan adds a customer
// mapping with usage sync on whose customer_id (new-co) is not the
// vendor's (newco). No pass would ever match it, and its contract has no
// line, so no line changes: without a note the report shows nothing to
// review. The note names the mapping and the usage's unmapped customers;
// a mapping whose id the usage has gets none.
func TestBillingImpact_newMappingMatchesNoUsage(t *testing.T) {
	t.Parallel()
	src := usageFile(t, "customer_id,customer_name,product,quantity\nnewco,NewCo,CIXA-MSP,10\nacme,Acme,CIXA-MSP,4\n")
	current := export.New(psa.SystemAutotask, "sim")
	current.PutProduct(export.ProductMapping{Source: src.Name(), Product: "CIXA-MSP", ServiceID: "30", ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	mapping := func(id, customer string) string {
		return `{"address":"psa_customer_mapping.` + id + `","mode":"managed","type":"psa_customer_mapping","name":"` + id + `","provider_name":"registry.terraform.io/psa-sync/psa",
 "change":{"actions":["create"],"before":null,
  "after":{"source":"` + src.Name() + `","customer_id":"` + customer + `","customer_name":"NewCo","company_id":"1","contract_id":"` + id + `-2","usage_sync":true,"ticket_sync":false},
  "after_unknown":{"id":true}}}`
	}
	planJSON := []byte(`{"format_version":"1.2","terraform_version":"1.9.8","planned_values":{},"resource_changes":[` +
		mapping("newco", "new-co") + `,` + mapping("acme", "acme") + `]}`)
	rep := offlineReport(t, src, current, planJSON)
	var notes []string
	for _, n := range rep.Notes {
		if strings.Contains(n, "has no row of customer id") {
			notes = append(notes, n)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], `Customer mapping file/new-co (NewCo) syncs usage under this plan, but the usage from file for `) ||
		!strings.Contains(notes[0], `has no row of customer id "new-co"`) || !strings.Contains(notes[0], "the usage's unmapped customers: newco (NewCo).") {
		t.Errorf("notes = %q; want one for new-co naming newco", rep.Notes)
	}
}

// TestBillingImpact_kaseyaBMSPriceChange: Kaseya BMS keeps on each contract
// line the price it was posted at, and a pass posts a line only when its
// units change (psa-syncd's ledger says what they are). After a service's
// price changes, the next pass posts the lines whose units change at the new
// price; a line whose units stay the same is not posted and bills at its old
// price. The report must say what each line bills after that pass: its
// units and its price.
func TestBillingImpact_kaseyaBMSPriceChange(t *testing.T) {
	t.Parallel()
	change := impacttest.Changes[4]
	if change.Name != "service_price_change" {
		t.Fatalf("Changes[4] is %s", change.Name)
	}
	w := impacttest.New(t, psa.SystemKaseyaBMS)
	var rep *impact.Report
	w.AfterApply = func(doc *export.Document) {
		if rep == nil {
			t.Fatal("the plan check did not compute a report")
		}
		// The pass runs more than 10 minutes after the services were
		// last read (the README: "a price changed in BMS is posted at
		// most 10 minutes later"), in a process of its own.
		kept, err := w.State.CatalogServices(psa.SystemKaseyaBMS, []string{"3001", "3002"})
		if err != nil {
			t.Fatal(err)
		}
		var aged []state.CatalogService
		for _, s := range kept {
			s.ReadAt = s.ReadAt.Add(-time.Hour)
			aged = append(aged, s)
		}
		if err := w.State.PutCatalogServices(aged); err != nil {
			t.Fatal(err)
		}
		be, err := backends.New(w.BackendConfig())
		if err != nil {
			t.Fatal(err)
		}
		eng := usage.NewEngine(usage.EngineOptions{Backend: be, Source: w.Source, State: w.State,
			Policies: usage.DefaultPolicies, Now: func() time.Time { return impacttest.Now }})
		res, err := eng.Sync(t.Context(), doc, usage.PassOptions{Trigger: usage.TriggerCLI})
		if err != nil || res.Run.Result != "success" {
			t.Fatalf("sync after apply: %v, %+v", err, res.Run)
		}
		eff := res.Plan.EffectiveDate
		for _, l := range rep.Lines {
			contract, _ := strconv.Atoi(l.ContractID)
			service, _ := strconv.Atoi(l.ServiceID)
			// The line in force at the effective date: the latest
			// effective, the latest posted among equals.
			var billed *psatest.KaseyaBMSLine
			for _, sl := range w.Sim.KaseyaBMS().ServiceLines(contract) {
				if sl.ServiceID == service && !sl.EffectiveDate.After(eff) && (billed == nil || !sl.EffectiveDate.Before(billed.EffectiveDate)) {
					billed = &sl
				}
			}
			if billed == nil || l.Proposed == nil || l.ProposedUnitPrice == nil {
				t.Errorf("line %s/%s: report %v × %v, pass after apply left %+v", l.ContractID, l.ServiceName, l.Proposed, l.ProposedUnitPrice, billed)
				continue
			}
			if int64(billed.Units) != *l.Proposed || billed.UnitPrice != *l.ProposedUnitPrice {
				t.Errorf("line %s/%s (%s): the report says it bills %d × %.2f after apply, the pass after apply leaves %d × %.2f",
					l.CustomerID, l.ContractID, l.ServiceName, *l.Proposed, *l.ProposedUnitPrice, billed.Units, billed.UnitPrice)
			}
		}
	}
	w.Plan(t, impacttest.Before, change.Config, func(planJSON []byte, current *export.Document) {
		var md string
		rep, md = report(t, impact.Options{Backend: w.Backend, Source: w.Source, State: w.State}, planJSON, current, impact.FormatMarkdown)
		golden(t, "kaseya_bms_price_change.md", md)
	})
}

// TestBillingImpact_otherExport: the plan was made against one mapping
// export, and the report reads another (the CI configuration names the
// export of another PSA instance or Terraform workspace, or a store path
// that holds none yet). Its figures then compare the plan with mappings
// Terraform never saw, and look as plausible as any: the report must say
// that the plan and the export disagree, and head itself as incomplete,
// rather than report those figures as the change.
func TestBillingImpact_otherExport(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	w.Plan(t, impacttest.Before, impacttest.Changes[2].Config, func(planJSON []byte, current *export.Document) {
		// Another export of the same PSA: Globex is not in it, and Acme
		// is on the contract the plan moves it to.
		other := current.Clone()
		other.DeleteCustomer(impacttest.SourceName, "globex-tenant")
		acme, _ := current.Customer(impacttest.SourceName, "acme-tenant")
		moved, _ := current.Customer(impacttest.SourceName, "globex-tenant")
		acme.ContractID = moved.ContractID
		other.PutCustomer(acme)
		for name, doc := range map[string]*export.Document{"another export": other, "no export yet": export.New(psa.SystemAutotask, "")} {
			o := impact.Options{Backend: w.Backend, Source: w.Source}
			if len(doc.CustomerMappings) == 0 {
				o.NoExport = "psa-mappings.json"
			}
			rep, md := report(t, o, planJSON, doc, impact.FormatMarkdown)
			var mismatch []string
			for _, n := range rep.NotComputed {
				if strings.Contains(n, "not the one this plan was made against") {
					mismatch = append(mismatch, n)
				}
			}
			if len(mismatch) != 1 || !strings.Contains(mismatch[0], "psa_customer_mapping.acme") || !strings.Contains(md, "Incomplete report") {
				t.Errorf("%s: not computed = %q; want one entry saying the export is not the plan's, naming psa_customer_mapping.acme:\n%s", name, rep.NotComputed, md)
			}
		}
		if rep, _ := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown); slices.ContainsFunc(rep.NotComputed, func(n string) bool {
			return strings.Contains(n, "not the one this plan was made against")
		}) {
			t.Errorf("the export the plan was made against: not computed = %q, want no mismatch", rep.NotComputed)
		}
	})
}

// TestBillingImpact_otherSource: one export holds the mappings of every
// usage source, and each source has a psa-syncd of its own. A plan that
// changes only another source's mappings changes what that psa-syncd
// bills; the report, configured for one source, must not call it "No
// billing change", but say which mappings it did not compute.
func TestBillingImpact_otherSource(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	change := impacttest.Before + `
resource "psa_service" "m365" {
  name       = "Microsoft 365 Business Premium"
  unit_price = 22
}

resource "psa_product_mapping" "pax8_m365" {
  source     = "pax8"
  product    = "M365-BP"
  service_id = psa_service.m365.id
}

resource "psa_customer_mapping" "acme_pax8" {
  source        = "pax8"
  customer_id   = "acme-pax8"
  customer_name = "Acme"
  company_id    = data.psa_company.acme.id
  contract_id   = data.psa_contract.acme_security.id
}

# For tickets only: it bills nothing.
resource "psa_customer_mapping" "globex_pax8" {
  source        = "pax8"
  customer_id   = "globex-pax8"
  customer_name = "Globex"
  company_id    = data.psa_company.globex.id
  contract_id   = data.psa_contract.globex.id
  usage_sync    = false
}
`
	w.Plan(t, impacttest.Before, change, func(planJSON []byte, current *export.Document) {
		rep, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
		if len(rep.NotComputed) != 1 || !strings.Contains(rep.NotComputed[0], "usage source pax8 (psa_customer_mapping.acme_pax8, psa_product_mapping.pax8_m365)") ||
			!strings.Contains(md, "Incomplete report") {
			t.Errorf("not computed = %q; want one entry naming the pax8 mappings:\n%s", rep.NotComputed, md)
		}
	})
}

// TestBillingImpact_contractKnownAfterApply: a data source that depends
// on a resource the plan changes is read during apply, so the contract id
// it gives a customer mapping is unknown in the plan, although it may well
// be the contract the customer is on now. The report must not show the
// customer as moved, with its lines there kept and billed twice: it says
// the contract is known only after apply, and the lines of that customer
// on its contract now are not computed.
func TestBillingImpact_contractKnownAfterApply(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	change := strings.Replace(impacttest.Changes[0].Config, `data "psa_contract" "acme" {
  company_id = data.psa_company.acme.id`, `data "psa_contract" "acme" {
  depends_on = [psa_service.mdr]
  company_id = data.psa_company.acme.id`, 1)
	w.Plan(t, impacttest.Before, change, func(planJSON []byte, current *export.Document) {
		rep, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown)
		acme, _ := current.Customer(impacttest.SourceName, "acme-tenant")
		if !slices.ContainsFunc(rep.NotComputed, func(n string) bool {
			return strings.Contains(n, "psa_customer_mapping.acme") && strings.Contains(n, "known only after apply")
		}) || !strings.Contains(md, "Incomplete report") {
			t.Errorf("not computed = %q; want an entry saying the contract of psa_customer_mapping.acme is known only after apply:\n%s", rep.NotComputed, md)
		}
		for _, l := range rep.Lines {
			if l.ContractID == acme.ContractID && (l.Proposed != nil || l.MonthlyDelta != nil || strings.Contains(l.Why, "moved")) {
				t.Errorf("line %s/%s on Acme's contract now: proposed %v, delta %v, why %q; want both unknown, and no move", l.ContractID, l.ServiceName, l.Proposed, l.MonthlyDelta, l.Why)
			}
		}
	})
}

// TestBillingImpact_unknownResourceTypes: a plan from a newer provider can
// change psa_* resources of a type this psa-syncd does not know, which may
// change what is billed. The report names those types and says their
// impact is not shown, in every format, and reads as incomplete rather
// than as "No billing change". A known type without billing impact
// (psa_ticket_routing) and an unknown one the plan does not change are
// not named. Before, they were left out silently.
func TestBillingImpact_unknownResourceTypes(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	w.Plan(t, impacttest.Before, impacttest.Before, func(planJSON []byte, current *export.Document) {
		var plan map[string]any
		if err := json.Unmarshal(planJSON, &plan); err != nil {
			t.Fatal(err)
		}
		rc := func(typ, name string, actions ...string) map[string]any {
			return map[string]any{"address": typ + "." + name, "mode": "managed", "type": typ, "name": name,
				"provider_name": "registry.terraform.io/psa-sync/psa",
				"change":        map[string]any{"actions": actions, "before": nil, "after": map[string]any{"id": "x"}, "after_unknown": map[string]any{}}}
		}
		changes, _ := plan["resource_changes"].([]any)
		plan["resource_changes"] = append(changes,
			rc("psa_contract_rule", "acme", "create"),
			rc("psa_billing_override", "acme", "update"),
			rc("psa_billing_override", "mdr", "delete"),
			rc("psa_unchanged_thing", "x", "no-op"),
			rc("psa_ticket_routing", "main", "create"))
		data, err := json.Marshal(plan)
		if err != nil {
			t.Fatal(err)
		}
		const want = "The billing impact of the changes to psa_billing_override, psa_contract_rule: this psa-syncd does not know those resource types"
		for _, format := range impact.Formats {
			rep, out := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, data, current, format)
			if len(rep.NotComputed) != 1 || !strings.HasPrefix(rep.NotComputed[0], want) {
				t.Errorf("%s: not computed = %q, want one entry starting %q", format, rep.NotComputed, want)
			}
			if !strings.Contains(out, want) || strings.Contains(out, "psa_unchanged_thing") || strings.Contains(out, "psa_ticket_routing") {
				t.Errorf("%s report does not name the unknown changed types, or names others:\n%s", format, out)
			}
			if format != impact.FormatJSON && !strings.Contains(strings.ToLower(out), "incomplete report") {
				t.Errorf("%s report does not say it is incomplete:\n%s", format, out)
			}
		}
	})
}

// TestBillingImpact_sensitiveValues: Terraform hides a sensitive value in
// its plan output, but `terraform show -json` holds it in clear text. A
// customer name from a sensitive variable (the MSP keeps its customer list
// out of the pull request) must not reach the report either, which is
// posted as a comment: it shows "(sensitive)" in its place.
func TestBillingImpact_sensitiveValues(t *testing.T) {
	t.Parallel()
	const name = "Acme Confidential Holdings"
	sensitive := func(config string) string {
		return strings.Replace(config, `customer_name = "Acme"`, `customer_name = var.acme_name`, 1) + `
variable "acme_name" {
  type      = string
  sensitive = true
  default   = "` + name + `"
}
`
	}
	w := impacttest.New(t, psa.SystemAutotask)
	w.Plan(t, sensitive(impacttest.Before), sensitive(impacttest.Changes[2].Config), func(planJSON []byte, current *export.Document) {
		if !strings.Contains(string(planJSON), name) {
			t.Fatalf("the plan JSON does not hold the sensitive value; the test no longer shows anything")
		}
		for _, format := range impact.Formats {
			rep, out := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, format)
			if strings.Contains(out, name) {
				t.Errorf("the %s report holds the sensitive customer name %q:\n%s", format, name, out)
			}
			if len(rep.Lines) == 0 || !strings.Contains(out, "(sensitive)") {
				t.Errorf("the %s report shows no line, or no (sensitive) in place of the name:\n%s", format, out)
			}
		}
	})
}

// TestTerraformPlan_Apply_renewalKnownAfterApply: a customer mapping whose
// next_contract_id is known only after apply is billed on contract_id in
// the report, and the report says so in its notes (before, silently).
func TestTerraformPlan_Apply_renewalKnownAfterApply(t *testing.T) {
	t.Parallel()
	current := export.New(psa.SystemAutotask, "")
	plan := `{"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [{
		"address": "psa_customer_mapping.acme", "mode": "managed", "type": "psa_customer_mapping", "name": "acme",
		"provider_name": "registry.terraform.io/psa-sync/psa",
		"change": {"actions": ["create"], "before": null,
			"after": {"source": "sophos", "customer_id": "acme-tenant", "customer_name": "Acme", "company_id": "174", "contract_id": "29684183",
				"usage_sync": true, "ticket_sync": false},
			"after_unknown": {"next_contract_id": true}}}]}`
	tp, err := impact.ReadTerraformPlan([]byte(plan))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := tp.Apply(current)
	if err != nil {
		t.Fatal(err)
	}
	cm, ok := doc.Customer("sophos", "acme-tenant")
	if !ok || cm.ContractID != "29684183" || cm.NextContractID != "" {
		t.Fatalf("customer mapping = %+v, %v; want contract_id 29684183 and no renewal", cm, ok)
	}
	if !slices.ContainsFunc(tp.Notes, func(n string) bool {
		return strings.Contains(n, "The renewal of psa_customer_mapping.acme (customer acme-tenant, next_contract_id)") &&
			strings.Contains(n, "the report bills contract_id 29684183")
	}) {
		t.Errorf("notes = %q, want one saying the renewal is known only after apply and contract_id is billed", tp.Notes)
	}
}

// TestBillingImpact_leftBilling: with psa-syncd's state database, a plan
// that removes a product mapping psa-syncd synced says which of its lines
// go on invoicing with no mapping after apply (Report.LeftBilling, the
// orphaned lines the pass after apply lists that none lists now), in the
// summary and a section of its own; a plan that removes none lists none.
func TestBillingImpact_leftBilling(t *testing.T) {
	t.Parallel()
	change := impacttest.Changes[1]
	if change.Name != "removed_mapping" {
		t.Fatalf("Changes[1] is %s", change.Name)
	}
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			w := impacttest.New(t, sys)
			w.Plan(t, impacttest.Before, change.Config, func(planJSON []byte, current *export.Document) {
				rep, md := report(t, impact.Options{Backend: w.Backend, Source: w.Source, State: w.State}, planJSON, current, impact.FormatMarkdown)
				acme, _ := current.Customer(impacttest.SourceName, "acme-tenant")
				var found bool
				for _, l := range rep.LeftBilling {
					if l.ContractID == acme.ContractID && l.Reason == usage.OrphanService && l.Quantity == 3 {
						found = true
					}
				}
				if !found {
					t.Errorf("left billing = %+v; want Acme's server line of 3 units (reason service)", rep.LeftBilling)
				}
				for _, want := range []string{"on invoicing with no mapping after apply", "#### Lines left billing with no mapping", "no product mapping names its service after apply"} {
					if !strings.Contains(md, want) {
						t.Errorf("report lacks %q:\n%s", want, md)
					}
				}
				// Without the state database nothing is claimed.
				if rep, _ := report(t, impact.Options{Backend: w.Backend, Source: w.Source}, planJSON, current, impact.FormatMarkdown); len(rep.LeftBilling) != 0 {
					t.Errorf("left billing without the state database = %+v, want none", rep.LeftBilling)
				}
			})
		})
	}
}

// TestBillingImpact_productUsageOfUnsyncedCustomers: a product's usage is
// listed as newly billed, or as becoming unmapped, with what the mappings
// bill of it, the usage of the customers mapped with usage_sync on, not
// that of every customer: newco has no customer mapping and globex has
// usage sync off, so mapping MDR-MSP bills acme's 4 alone, and removing
// the mapping of CIXAS-MSP stops billing acme's 3 alone. A product whose
// customers are all unbilled (EDR-MSP, globex's) is not newly billed; a
// note says that its mapping bills nothing.
func TestBillingImpact_productUsageOfUnsyncedCustomers(t *testing.T) {
	t.Parallel()
	src, current := cixasFixture(t, "globex,Globex,EDR-MSP,5\n")
	mapping := func(action, product, before, after string) string {
		return `{"address":"psa_product_mapping.` + strings.ToLower(strings.ReplaceAll(product, "-", "_")) + `","mode":"managed","type":"psa_product_mapping","name":"m",
 "change":{"actions":["` + action + `"],"before":` + before + `,"after":` + after + `,"after_unknown":{}}}`
	}
	pm := func(product string) string {
		return `{"source":"` + src.Name() + `","product":"` + product + `","service_id":"31","service_name":"MDR","sync_enabled":true}`
	}
	planJSON := []byte(`{"format_version":"1.2","terraform_version":"1.9.8","planned_values":{},"resource_changes":[` +
		mapping("create", "MDR-MSP", "null", pm("MDR-MSP")) + `,` +
		mapping("create", "EDR-MSP", "null", pm("EDR-MSP")) + `,` +
		mapping("delete", "CIXAS-MSP", `{"source":"`+src.Name()+`","product":"CIXAS-MSP","service_id":"30","service_name":"Intercept X Server","sync_enabled":true}`, "null") + `]}`)
	rep := offlineReport(t, src, current, planJSON)
	if len(rep.NewlyBilled) != 1 || rep.NewlyBilled[0].ID != "MDR-MSP" || rep.NewlyBilled[0].Quantity != 4 || rep.NewlyBilled[0].Customers != 1 {
		t.Errorf("newly billed %+v; want MDR-MSP alone, 4 of 1 customer (acme's: newco is not mapped, globex has usage_sync = false)", rep.NewlyBilled)
	} else if want := "17 more (2 customers) stays unbilled"; !strings.Contains(rep.NewlyBilled[0].Why, want) {
		t.Errorf("newly billed MDR-MSP says %q; want it to say %q", rep.NewlyBilled[0].Why, want)
	}
	if len(rep.Unmapped) != 1 || rep.Unmapped[0].ID != "CIXAS-MSP" || !strings.Contains(rep.Unmapped[0].Why, "the current mappings bill 3 of it (1 customer)") {
		t.Errorf("becomes unmapped %+v; want CIXAS-MSP, saying that the current mappings bill 3 of it (1 customer): globex's 6 was never billed", rep.Unmapped)
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool {
		return strings.Contains(n, "EDR-MSP") && strings.Contains(n, "none of its usage is billed")
	}) {
		t.Errorf("notes %q; want one saying that EDR-MSP's mapping bills none of its usage", rep.Notes)
	}
}

// TestBillingImpact_billedPart: a product or customer whose usage becomes
// unmapped or newly billed gives, in JSON, the part of it a pass bills
// (billed_quantity, and billed_customers for a product): for a product
// that becomes unmapped, what the current mappings billed of it (acme's 3
// and umbrella's 8, not globex's 6: globex has usage_sync = false); for one
// newly billed, what the proposed mappings bill (acme's 4 and initech's 2,
// not globex's or newco's); for a customer, its usage of the products
// mapped with sync_enabled on (initech's MDR-MSP, not its EDR-MSP, which no
// mapping names; umbrella's CIXAS-MSP under the current mappings).
func TestBillingImpact_billedPart(t *testing.T) {
	t.Parallel()
	src, current := cixasFixture(t, "initech,Initech,MDR-MSP,2\ninitech,Initech,EDR-MSP,5\n"+
		"umbrella,Umbrella,CIXAS-MSP,8\numbrella,Umbrella,EDR-MSP,1\n",
		export.CustomerMapping{CustomerID: "umbrella", CustomerName: "Umbrella", CompanyID: "5", ContractID: "6", UsageSync: true})
	change := func(typ, name, action, before, after string) string {
		return `{"address":"` + typ + `.` + name + `","mode":"managed","type":"` + typ + `","name":"` + name + `",
 "change":{"actions":["` + action + `"],"before":` + before + `,"after":` + after + `,"after_unknown":{}}}`
	}
	cm := func(customer, company, contract string) string {
		return `{"source":"` + src.Name() + `","customer_id":"` + customer + `","company_id":"` + company + `","contract_id":"` + contract + `","usage_sync":true,"ticket_sync":false}`
	}
	planJSON := []byte(`{"format_version":"1.2","terraform_version":"1.9.8","planned_values":{},"resource_changes":[` +
		change("psa_product_mapping", "mdr", "create", "null", `{"source":"`+src.Name()+`","product":"MDR-MSP","service_id":"31","service_name":"MDR","sync_enabled":true}`) + `,` +
		change("psa_product_mapping", "cixas", "delete", `{"source":"`+src.Name()+`","product":"CIXAS-MSP","service_id":"30","service_name":"Intercept X Server","sync_enabled":true}`, "null") + `,` +
		change("psa_customer_mapping", "initech", "create", "null", cm("initech", "7", "8")) + `,` +
		change("psa_customer_mapping", "umbrella", "delete", cm("umbrella", "5", "6"), "null") + `]}`)
	rep := offlineReport(t, src, current, planJSON)
	type billed struct {
		Kind            string `json:"kind"`
		ID              string `json:"id"`
		Quantity        int64  `json:"quantity"`
		BilledQuantity  *int64 `json:"billed_quantity"`
		BilledCustomers *int   `json:"billed_customers"`
	}
	var got struct {
		Unmapped    []billed `json:"unmapped"`
		NewlyBilled []billed `json:"newly_billed"`
	}
	var buf bytes.Buffer
	if err := impact.Write(&buf, rep, "json"); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	show := func(list []billed) string {
		var out []string
		for _, b := range list {
			s := fmt.Sprintf("%s %s %d", b.Kind, b.ID, b.Quantity)
			if b.BilledQuantity != nil {
				s += fmt.Sprintf(" billed %d", *b.BilledQuantity)
			}
			if b.BilledCustomers != nil {
				s += fmt.Sprintf(" of %d", *b.BilledCustomers)
			}
			out = append(out, s)
		}
		return strings.Join(out, "; ")
	}
	// umbrella's 9: 8 of CIXAS-MSP, mapped with sync on by the current
	// mappings, and 1 of EDR-MSP, which no mapping names.
	if got, want := show(got.Unmapped), "customer umbrella 9 billed 8; product CIXAS-MSP 17 billed 11 of 2"; got != want {
		t.Errorf("becomes unmapped: %s\nwant %s", got, want)
	}
	// initech's 7: 2 of MDR-MSP, which the plan maps, 5 of EDR-MSP.
	if got, want := show(got.NewlyBilled), "customer initech 7 billed 2; product MDR-MSP 6 billed 6 of 2"; got != want {
		t.Errorf("newly billed: %s\nwant %s", got, want)
	}
}

// cixasFixture returns a usage file of MDR-MSP (acme 4, globex 7, newco
// 10) and CIXAS-MSP (acme 3, globex 6) and the rows given, and an export
// that maps acme (usage sync on), globex (usage_sync = false), the
// customers given, and CIXAS-MSP to service 30 with sync on.
func cixasFixture(t *testing.T, rows string, customers ...export.CustomerMapping) (*file.Source, *export.Document) {
	t.Helper()
	src := usageFile(t, "customer_id,customer_name,product,quantity\n"+
		"acme,Acme,MDR-MSP,4\nglobex,Globex,MDR-MSP,7\nnewco,NewCo,MDR-MSP,10\n"+
		"acme,Acme,CIXAS-MSP,3\nglobex,Globex,CIXAS-MSP,6\n"+rows)
	current := export.New(psa.SystemAutotask, "sim")
	for _, c := range append([]export.CustomerMapping{
		{CustomerID: "acme", CustomerName: "Acme", CompanyID: "1", ContractID: "2", UsageSync: true},
		{CustomerID: "globex", CustomerName: "Globex", CompanyID: "3", ContractID: "4", UsageSync: false},
	}, customers...) {
		c.Source = src.Name()
		current.PutCustomer(c)
	}
	current.PutProduct(export.ProductMapping{Source: src.Name(), Product: "CIXAS-MSP", ServiceID: "30", ServiceName: "Intercept X Server", SyncEnabled: true})
	return src, current
}

// usageFile returns a usage-file source of the given CSV (header first).
func usageFile(t *testing.T, csv string) *file.Source {
	t.Helper()
	path := filepath.Join(t.TempDir(), "usage.csv")
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := file.New(file.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// offlineReport computes the billing impact of planJSON on current with
// the usage of src and no PSA.
func offlineReport(t *testing.T, src *file.Source, current *export.Document, planJSON []byte) *impact.Report {
	t.Helper()
	tp, err := impact.ReadTerraformPlan(planJSON)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := impact.Compute(t.Context(), impact.Options{Source: src, NoBackend: "offline in this test", Policies: usage.DefaultPolicies}, current, tp)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestBillingImpact_warnsOnce: the report plans the pass under the current
// and the proposed mappings; a warning both plans give (mapped contracts end
// within the billing month of the effective date or the next, which the
// report's note says too) is logged once, as the proposed mappings give it
// (here one contract of two: Globex's usage sync is switched off), not once
// per plan.
func TestBillingImpact_warnsOnce(t *testing.T) {
	t.Parallel()
	w := impacttest.New(t, psa.SystemAutotask)
	w.SetUsage(t, impacttest.UsageNow)
	current := export.New(psa.SystemAutotask, "")
	for customer, contract := range map[string]string{"acme-tenant": "29684000", "globex-tenant": "29684002"} {
		ct, err := w.Backend.GetContract(t.Context(), contract)
		if err != nil {
			t.Fatalf("GetContract: %v", err)
		}
		current.PutCustomer(export.CustomerMapping{Source: impacttest.SourceName, CustomerID: customer, CompanyID: ct.CompanyID, ContractID: ct.ID, UsageSync: true})
	}
	globex, _ := current.Customer(impacttest.SourceName, "globex-tenant")
	planJSON := fmt.Sprintf(`{"format_version":"1.2","resource_changes":[{"address":"psa_customer_mapping.globex","mode":"managed","type":"psa_customer_mapping","name":"globex",
"change":{"actions":["update"],"before":{"source":%[1]q,"customer_id":"globex-tenant","company_id":%[2]q,"contract_id":%[3]q,"usage_sync":true,"ticket_sync":false},
"after":{"source":%[1]q,"customer_id":"globex-tenant","company_id":%[2]q,"contract_id":%[3]q,"usage_sync":false,"ticket_sync":false},"after_unknown":{}}}]}`,
		impacttest.SourceName, globex.CompanyID, globex.ContractID)
	var logs bytes.Buffer
	o := impact.Options{Backend: w.Backend, Source: w.Source, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	rep, _ := report(t, o, []byte(planJSON), current, impact.FormatMarkdown)
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.HasPrefix(n, "Mapped contracts end") }) {
		t.Errorf("notes = %q, want the contract ending", rep.Notes)
	}
	if n := strings.Count(logs.String(), "Mapped contracts end"); n != 1 || !strings.Contains(logs.String(), "contracts=1 ") {
		t.Errorf("the contract-end warning is logged %d times, want once, of 1 contract:\n%s", n, logs.String())
	}
}
