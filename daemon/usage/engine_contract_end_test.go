package usage

import (
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngineSystems_contractEndWarnsAheadAndStopsWrites follows an annual
// contract that ends on 31 December and is renewed under a new id (the
// usual way on Autotask and Kaseya BMS) through a year end: the December
// pass lists it as ending this month (plan, psa_sync_contracts_ending);
// a pass whose effective date is after the end (next_period_start in
// December, period_start on 1 January) fails its customer as stale with
// a hint naming the Terraform change and writes nothing to it (Autotask
// and BMS refused such a write with an error that did not say why, and
// ConnectWise took it on an agreement that no longer invoices); the
// renewal mapped before it starts fails the same way, with a hint on when
// to map it; once the mapping names the renewal, the customer syncs again.
func TestEngineSystems_contractEndWarnsAheadAndStopsWrites(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			now := time.Date(2026, time.December, 15, 10, 0, 0, 0, time.UTC)
			h := newSysHarness(t, sys, psatest.WithClock(func() time.Time { return now }))
			a, _ := h.doc.Customer("file", "cust-a")
			b, _ := h.doc.Customer("file", "cust-b")
			old := h.addContract(a.CompanyID, "Acme 2026", day(2026, 1, 1), day(2026, 12, 31))
			renewal := h.addContract(a.CompanyID, "Acme 2027", day(2027, 1, 1), day(2027, 12, 31))
			a.ContractID = old
			h.doc.PutCustomer(a)
			b.ContractID = h.addContract(b.CompanyID, "Globex", day(2026, 1, 1), day(2028, 12, 31))
			h.doc.PutCustomer(b)

			pass := func(eff string, usage int) *Result {
				t.Helper()
				h.writeUsage(fmt.Sprintf("cust-a,Acme,CIXA-MSP,%d", usage), fmt.Sprintf("cust-b,Globex,CIXA-MSP,%d", usage))
				src, err := file.New(file.Config{Path: h.usage})
				if err != nil {
					t.Fatal(err)
				}
				pol := h.pol
				pol.EffectiveDate = eff
				e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: pol, Metrics: h.m,
					Location: time.UTC, Now: func() time.Time { return now }, Failing: &h.failing, Terms: &h.terms})
				res, err := e.Sync(t.Context(), h.doc, PassOptions{})
				if err != nil {
					t.Fatalf("Sync: %v", err)
				}
				return res
			}
			gauge := func(when string) float64 { return testutil.ToFloat64(h.m.ContractsEnding.WithLabelValues(when)) }
			wantEnding := func(label string, res *Result, when string) {
				t.Helper()
				got := res.Plan.ContractsEnding
				if len(got) != 1 || got[0].CustomerID != "cust-a" || got[0].ContractID != old || got[0].When != when ||
					got[0].EndDate.Format(time.DateOnly) != "2026-12-31" || got[0].ContractName != "Acme 2026" {
					t.Errorf("%s: contracts ending = %+v, want cust-a's %s ending 2026-12-31 (%s)", label, got, old, when)
				}
				for _, w := range EndingWhens {
					if want := map[bool]float64{true: 1}[w == when]; gauge(w) != want {
						t.Errorf("%s: psa_sync_contracts_ending{when=%q} = %v, want %v", label, w, gauge(w), want)
					}
				}
			}
			wantStale := func(label string) {
				t.Helper()
				cs := h.status("cust-a")
				if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "contract "+old+` ("Acme 2026") ended on 2026-12-31, before the effective date 2027-01-01`) ||
					!strings.Contains(cs.Error, "stale") || !strings.Contains(cs.Hint, "data.psa_contract") || !strings.Contains(cs.Hint, "terraform apply") {
					t.Errorf("%s: cust-a = %s (%q, hint %q), want failed as stale with the Terraform change", label, cs.Result, cs.Error, cs.Hint)
				}
				if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
					t.Errorf("%s: cust-b = %s (%q), want succeeded", label, cs.Result, cs.Error)
				}
			}

			// December, period_start: written, and listed as ending
			// this month.
			res := pass(EffectivePeriodStart, 5)
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Fatalf("december pass: cust-a = %s (%q), want succeeded", cs.Result, cs.Error)
			}
			wantEnding("december pass", res, EndingThisMonth)

			// The renewal mapped in December, with period_start: it
			// starts after the effective date; nothing is written.
			a.ContractID = renewal
			h.doc.PutCustomer(a)
			h.sim.ResetRequests()
			pass(EffectivePeriodStart, 5)
			if cs := h.status("cust-a"); cs.Result != state.CustomerFailed ||
				!strings.Contains(cs.Error, "contract "+renewal+` ("Acme 2027") starts on 2027-01-01, after the effective date 2026-12-01`) ||
				!strings.Contains(cs.Hint, "name this one in next_contract_id: psa-syncd then bills on it from 2027-01-01 on") {
				t.Errorf("renewal mapped early: cust-a = %s (%q, hint %q), want failed as not started", cs.Result, cs.Error, cs.Hint)
			}
			if got := h.writes(); got != 0 {
				t.Errorf("renewal mapped early: %d writes, want none", got)
			}
			a.ContractID = old
			h.doc.PutCustomer(a)

			// December, next_period_start: the effective date is after
			// the end; nothing is written to the old contract.
			h.sim.ResetRequests()
			res = pass(EffectiveNextPeriodStart, 6)
			wantStale("december pass with next_period_start")
			wantEnding("december pass with next_period_start", res, EndingEnded)
			if got := h.writes(); got != 1 {
				t.Errorf("december pass with next_period_start: %d writes, want cust-b's only", got)
			}

			// A restarted psa-syncd restores the gauge from the state
			// database.
			reg := prometheus.NewRegistry()
			restored := NewMetrics(reg, sys)
			if err := NewEngine(EngineOptions{Backend: h.be, State: h.db, Metrics: restored, Now: func() time.Time { return now }}).RestoreMetrics(h.doc); err != nil {
				t.Fatalf("RestoreMetrics: %v", err)
			}
			if got := testutil.ToFloat64(restored.ContractsEnding.WithLabelValues(EndingEnded)); got != 1 {
				t.Errorf("restored psa_sync_contracts_ending{when=\"ended\"} = %v, want 1", got)
			}

			// 1 January, period_start: the same.
			now = time.Date(2027, time.January, 1, 2, 0, 0, 0, time.UTC)
			h.sim.ResetRequests()
			pass(EffectivePeriodStart, 7)
			wantStale("1 january")
			if got := h.writes(); got != 1 {
				t.Errorf("1 january: %d writes, want cust-b's only", got)
			}

			// The mapping names the renewal: synced, nothing ending.
			a.ContractID = renewal
			h.doc.PutCustomer(a)
			res = pass(EffectivePeriodStart, 7)
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Errorf("after the renewal is mapped: cust-a = %s (%q), want succeeded", cs.Result, cs.Error)
			}
			if len(res.Plan.ContractsEnding) != 0 || gauge(EndingEnded)+gauge(EndingThisMonth)+gauge(EndingNextMonth) != 0 {
				t.Errorf("after the renewal is mapped: contracts ending %+v, want none", res.Plan.ContractsEnding)
			}
		})
	}
}

// TestEngineAutotask_contractWithLinesCancelledOrMovedIsStale: a contract
// that already has lines was never checked before the writes (the check
// ran only for contracts without a line), so one made inactive after the
// mapping was made got an adjustment that Autotask refused with a hint
// that named no Terraform change, and one moved to another company got
// the usage of the mapped customer billed to that company. Both now fail
// their customer as stale before anything is written, with the hint to
// remap it; the other customer is synced.
func TestEngineAutotask_contractWithLinesCancelledOrMovedIsStale(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(h *sysHarness, contract, otherCompany int64)
		want   string
	}{
		{"inactive", func(h *sysHarness, contract, _ int64) { h.sim.Autotask().SetContractStatus(contract, "Inactive") }, `is not active in autotask (status "Inactive")`},
		{"moved", func(h *sysHarness, contract, other int64) { h.sim.Autotask().SetContractCompany(contract, other) }, "belongs to company"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemAutotask)
			h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,3")
			if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess {
				t.Fatalf("first pass = %+v, want success", res.Run)
			}
			a, _ := h.doc.Customer("file", "cust-a")
			b, _ := h.doc.Customer("file", "cust-b")
			tc.change(h, mustParse(t, a.ContractID), mustParse(t, b.CompanyID))
			// A day later: the contract's record is read again.
			h.writeUsage("cust-a,Acme,CIXA-MSP,6", "cust-b,Globex,CIXA-MSP,4")
			h.sim.ResetRequests()
			if _, err := h.engineAt(etNow.Add(contractCheckTTL), &h.terms).Sync(t.Context(), h.doc, PassOptions{}); err != nil {
				t.Fatal(err)
			}
			cs := h.status("cust-a")
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, tc.want) ||
				!strings.Contains(cs.Hint, "map customer file/cust-a to an active recurring service contract of its company and re-run terraform apply") {
				t.Errorf("cust-a = %s (%q, hint %q), want failed naming %q with the remap hint", cs.Result, cs.Error, cs.Hint, tc.want)
			}
			if got := h.writes(); got != 1 {
				t.Errorf("%d writes, want cust-b's only", got)
			}
			h.wantUnits(a.ContractID, h.svcIntercept, 5)
			h.wantUnits(b.ContractID, h.svcIntercept, 4)
		})
	}
}

// The mapped contracts' terms are read once a day, not once per process:
// `psa-syncd sync` is a process of its own per pass (a ContractTerms of its
// own), so the terms are kept in the state database and a later process
// within the day reads none; a day later they are read again.
func TestEngineAutotask_contractTermsKeptAcrossProcesses(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	contractReads := func() int {
		n := 0
		for _, r := range h.sim.Requests() {
			if strings.EqualFold(path.Base(path.Dir(r.Path)), "Contracts") && strings.EqualFold(path.Base(r.Path), "query") {
				n++
			}
		}
		return n
	}
	pass := func(now time.Time) {
		t.Helper()
		src, err := file.New(file.Config{Path: h.usage})
		if err != nil {
			t.Fatal(err)
		}
		e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
			Location: time.UTC, Now: func() time.Time { return now }, Terms: &ContractTerms{}})
		if res, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil || res.Run.Result != state.RunSuccess {
			t.Fatalf("Sync = %+v, %v; want a success", res.Run, err)
		}
	}
	pass(etNow)
	first := contractReads()
	if first == 0 {
		t.Fatal("the first pass read no contract: the test proves nothing")
	}
	pass(etNow.Add(time.Hour))
	if n := contractReads() - first; n != 0 {
		t.Errorf("a second process an hour later sent %d contract queries, want none (the terms kept in the state database)", n)
	}
	pass(etNow.Add(25 * time.Hour))
	if n := contractReads() - first; n == 0 {
		t.Error("a process a day later read no contract, want the terms read again")
	}
}
