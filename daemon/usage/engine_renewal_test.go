package usage

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngineSystems_renewalTakesOverAtYearEnd follows a customer mapped to
// an annual contract that ends on 31 December with its renewal (a new
// contract from 1 January) in next_contract_id, through a year end, on
// each PSA: the December pass bills the old contract and does not report
// it as ending (the renewal is mapped); a pass dated 1 January (December
// with next_period_start, then 1 January with period_start) bills the
// renewal, with lines of its own, and writes nothing to the old contract,
// whose December quantity stays; the ledger and the status name the
// contract written; once the operator moves the renewal into contract_id,
// a pass writes nothing different.
func TestEngineSystems_renewalTakesOverAtYearEnd(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			now := time.Date(2026, time.December, 15, 10, 0, 0, 0, time.UTC)
			h := newSysHarness(t, sys, psatest.WithClock(func() time.Time { return now }))
			unitsOn := func(contract string, at time.Time) int64 {
				switch sys {
				case psa.SystemAutotask:
					n, _ := h.sim.Autotask().Units(mustParse(t, contract), mustParse(t, h.svcIntercept), at)
					return n
				case psa.SystemConnectWise:
					q, _ := h.sim.ConnectWise().Quantity(mustParse(t, contract), mustParse(t, h.svcIntercept))
					return int64(q)
				default:
					n, _ := h.sim.KaseyaBMS().Units(int(mustParse(t, contract)), int(mustParse(t, h.svcIntercept)), at)
					return int64(n)
				}
			}
			a, _ := h.doc.Customer("file", "cust-a")
			old := h.addContract(a.CompanyID, "Acme 2026", day(2026, 1, 1), day(2026, 12, 31))
			renewal := h.addContract(a.CompanyID, "Acme 2027", day(2027, 1, 1), day(2027, 12, 31))
			a.ContractID, a.NextContractID = old, renewal
			h.doc.PutCustomer(a)
			b, _ := h.doc.Customer("file", "cust-b")
			b.ContractID = h.addContract(b.CompanyID, "Globex", day(2026, 1, 1), day(2028, 12, 31))
			h.doc.PutCustomer(b)

			pass := func(label, eff string, usage int) *Result {
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
				h.sim.ResetRequests()
				res, err := e.Sync(t.Context(), h.doc, PassOptions{})
				if err != nil {
					t.Fatalf("%s: Sync: %v", label, err)
				}
				for _, c := range []string{"cust-a", "cust-b"} {
					if cs := h.status(c); cs.Result != state.CustomerSucceeded {
						t.Fatalf("%s: %s = %s (%q, hint %q), want succeeded", label, c, cs.Result, cs.Error, cs.Hint)
					}
				}
				return res
			}
			wantRenewal := func(label string, res *Result, billsTo string) {
				t.Helper()
				got := res.Plan.Renewals
				if len(got) != 1 || got[0].CustomerID != "cust-a" || got[0].ContractID != old || got[0].NextContractID != renewal ||
					got[0].BillsTo != billsTo || got[0].TakesOver.Format(time.DateOnly) != "2027-01-01" {
					t.Errorf("%s: renewals = %+v, want cust-a billed on %s, the renewal %s taking over on 2027-01-01", label, got, billsTo, renewal)
				}
				if len(res.Plan.ContractsEnding) != 0 {
					t.Errorf("%s: contracts ending = %+v, want none (the renewal is mapped)", label, res.Plan.ContractsEnding)
				}
				for _, w := range EndingWhens {
					if g := testutil.ToFloat64(h.m.ContractsEnding.WithLabelValues(w)); g != 0 {
						t.Errorf("%s: psa_sync_contracts_ending{when=%q} = %v, want 0", label, w, g)
					}
				}
				if cs := h.status("cust-a"); cs.ContractID != billsTo {
					t.Errorf("%s: cust-a's status names contract %s, want %s", label, cs.ContractID, billsTo)
				}
			}
			dec, jan := day(2026, 12, 15), day(2027, 1, 15)

			// December, period_start: the old contract.
			res := pass("december pass", EffectivePeriodStart, 5)
			wantRenewal("december pass", res, old)
			if got := unitsOn(old, dec); got != 5 {
				t.Errorf("december pass: units of %s = %d, want 5", old, got)
			}
			if got := h.writes(); got != 2 {
				t.Errorf("december pass: %d writes, want 2", got)
			}

			// December, next_period_start: dated 1 January, after the
			// old contract's end: the renewal, with a line of its own.
			res = pass("december pass with next_period_start", EffectiveNextPeriodStart, 6)
			wantRenewal("december pass with next_period_start", res, renewal)
			if got := unitsOn(renewal, jan); got != 6 {
				t.Errorf("december pass with next_period_start: units of %s = %d, want 6", renewal, got)
			}
			if sys != psa.SystemConnectWise { // one quantity per addition, undated
				if got := unitsOn(old, dec); got != 5 {
					t.Errorf("december pass with next_period_start: units of %s in December = %d, want 5 as before", old, got)
				}
			}

			// 1 January, period_start: the renewal.
			now = time.Date(2027, time.January, 1, 2, 0, 0, 0, time.UTC)
			res = pass("1 january", EffectivePeriodStart, 7)
			wantRenewal("1 january", res, renewal)
			if got := unitsOn(renewal, jan); got != 7 {
				t.Errorf("1 january: units of %s = %d, want 7", renewal, got)
			}
			if got := unitsOn(old, dec); got != 5 {
				t.Errorf("1 january: units of %s = %d, want 5 as set in December", old, got)
			}

			// The ledger names the contract written, and holds nothing
			// of the old contract dated after its end.
			entries, err := h.db.QueryLedger(state.LedgerQuery{CustomerID: "cust-a"})
			if err != nil {
				t.Fatal(err)
			}
			var onRenewal int
			for _, le := range entries {
				switch {
				case le.ContractID == old && le.EffectiveDate.After(day(2026, 12, 31)):
					t.Errorf("ledger: %+v is dated after the end of %s", le, old)
				case le.ContractID == renewal:
					onRenewal++
				}
			}
			if onRenewal == 0 {
				t.Errorf("ledger of cust-a = %+v, want entries of the renewal %s", entries, renewal)
			}

			// The operator moves the renewal into contract_id: the same
			// contract, nothing written.
			a.ContractID, a.NextContractID = renewal, ""
			h.doc.PutCustomer(a)
			res = pass("renewal moved into contract_id", EffectivePeriodStart, 7)
			if got := h.writes(); got != 0 {
				t.Errorf("renewal moved into contract_id: %d writes, want none", got)
			}
			if len(res.Plan.Renewals) != 0 {
				t.Errorf("renewal moved into contract_id: renewals = %+v, want none", res.Plan.Renewals)
			}
			if cs := h.status("cust-a"); cs.ContractID != renewal {
				t.Errorf("renewal moved into contract_id: status names %s, want %s", cs.ContractID, renewal)
			}
		})
	}
}

// TestEngineAutotask_renewalGuards: a renewal that is another customer's
// contract fails both customers, as two customers on one contract do
// (from its start both would bill on it); a customer whose contract and
// renewal cannot be read fails without a write, since the pass cannot tell
// which one is in force.
func TestEngineAutotask_renewalGuards(t *testing.T) {
	t.Parallel()
	t.Run("renewal of another customer", func(t *testing.T) {
		t.Parallel()
		h := newSysHarness(t, psa.SystemAutotask)
		h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,3")
		a, _ := h.doc.Customer("file", "cust-a")
		a.NextContractID = h.contractB
		h.doc.PutCustomer(a)
		h.sync(PassOptions{})
		for _, c := range []string{"cust-a", "cust-b"} {
			if cs := h.status(c); cs.Result != state.CustomerFailed || cs.Error != fmt.Sprintf("contract %s is mapped to 2 customers (cust-a, cust-b)", h.contractB) {
				t.Errorf("%s = %s (%q), want failed naming the contract mapped twice", c, cs.Result, cs.Error)
			}
		}
		if got := h.writes(); got != 0 {
			t.Errorf("%d writes, want none", got)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		t.Parallel()
		h := newSysHarness(t, psa.SystemAutotask)
		h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,3")
		a, _ := h.doc.Customer("file", "cust-a")
		old := h.addContract(a.CompanyID, "Acme 2026", day(2026, 1, 1), day(2026, 12, 31))
		renewal := h.addContract(a.CompanyID, "Acme 2027", day(2027, 1, 1), day(2027, 12, 31))
		a.ContractID, a.NextContractID = old, renewal
		h.doc.PutCustomer(a)
		// The bulk read of both records fails (a 400 is not retried).
		h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Contracts/query", BodyContains: renewal, Status: http.StatusBadRequest})
		h.sync(PassOptions{})
		cs := h.status("cust-a")
		if cs.Result != state.CustomerFailed || !strings.HasPrefix(cs.Error, fmt.Sprintf("could not read contract %s or its renewal %s (next_contract_id), so the pass cannot tell which one is in force on %s, and nothing was written: ",
			old, renewal, etPeriodDay.Format(time.DateOnly))) || cs.Hint == "" {
			t.Errorf("cust-a = %s (%q, hint %q), want failed: neither contract read", cs.Result, cs.Error, cs.Hint)
		}
		if got := h.writes(); got > 1 {
			t.Errorf("%d writes, want cust-b's at most", got)
		}
		if got, _ := h.units(old, h.svcIntercept); got != 0 {
			t.Errorf("units of %s = %d, want none written", old, got)
		}
	})
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		// Contracts the bulk read does not return: contract_id stays,
		// and its own check says it does not exist.
		h := newSysHarness(t, psa.SystemAutotask)
		h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,3")
		a, _ := h.doc.Customer("file", "cust-a")
		a.ContractID, a.NextContractID = "29690001", "29690002"
		h.doc.PutCustomer(a)
		h.sync(PassOptions{})
		if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "contract 29690001 not found in autotask") {
			t.Errorf("cust-a = %s (%q), want failed: contract_id not found", cs.Result, cs.Error)
		}
		if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
			t.Errorf("cust-b = %s (%q), want succeeded", cs.Result, cs.Error)
		}
	})
}

// TestEngineAutotask_renewalThatEndsSoonIsReported: once the renewal
// bills, its own end is reported ahead as any mapped contract's is (only
// the contract that a mapped renewal follows is left out).
func TestEngineAutotask_renewalThatEndsSoonIsReported(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,3")
	a, _ := h.doc.Customer("file", "cust-a")
	b, _ := h.doc.Customer("file", "cust-b")
	// The pass is dated 1 November 2026 (etPeriodDay): the renewal has
	// taken over, and ends in December.
	a.ContractID = h.addContract(a.CompanyID, "Acme old", day(2025, 11, 1), day(2026, 10, 31))
	a.NextContractID = h.addContract(a.CompanyID, "Acme short", day(2026, 11, 1), day(2026, 12, 31))
	h.doc.PutCustomer(a)
	b.ContractID = h.addContract(b.CompanyID, "Globex", day(2026, 1, 1), day(2028, 12, 31))
	h.doc.PutCustomer(b)
	res := h.sync(PassOptions{})
	got := res.Plan.ContractsEnding
	if len(got) != 1 || got[0].ContractID != a.NextContractID || got[0].When != EndingNextMonth {
		t.Errorf("contracts ending = %+v, want the renewal %s, ending next month", got, a.NextContractID)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded || cs.ContractID != a.NextContractID {
		t.Errorf("cust-a = %s on %s (%q), want succeeded on the renewal", cs.Result, cs.ContractID, cs.Error)
	}
}

// TestEngineKaseyaBMS_renewalOverlappingIsHeld: a renewal that starts
// before its contract ends (dates changed in the PSA since the plan
// checked them) fails its customer for an effective date both cover,
// with nothing written: the old contract still invoices its lines, and
// a first line on the renewal would bill the customer twice. Outside the
// overlap the choice is plain.
func TestEngineKaseyaBMS_renewalOverlappingIsHeld(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,3")
	a, _ := h.doc.Customer("file", "cust-a")
	b, _ := h.doc.Customer("file", "cust-b")
	k := h.sim.KaseyaBMS()
	account := int(mustParse(t, a.CompanyID))
	// The pass is dated 1 November 2026 (etPeriodDay).
	a.ContractID = fmt.Sprint(k.AddContract(psatest.KaseyaBMSContract{AccountID: account, Name: "Acme 2026", StartDate: day(2026, 1, 1), EndDate: day(2026, 12, 31)}))
	a.NextContractID = fmt.Sprint(k.AddContract(psatest.KaseyaBMSContract{AccountID: account, Name: "Acme 2027", StartDate: day(2026, 10, 1), EndDate: day(2027, 12, 31)}))
	h.doc.PutCustomer(a)
	b.ContractID = fmt.Sprint(k.AddContract(psatest.KaseyaBMSContract{AccountID: int(mustParse(t, b.CompanyID)), Name: "Globex", StartDate: day(2026, 1, 1), EndDate: day(2028, 12, 31)}))
	h.doc.PutCustomer(b)
	res := h.sync(PassOptions{})
	cs := h.status("cust-a")
	if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, `are both in force on the effective date 2026-11-01 (the renewal starts on 2026-10-01, contract `+a.ContractID+` ends on 2026-12-31)`) ||
		!strings.Contains(cs.Hint, "fix the dates") {
		t.Errorf("cust-a = %s (%q, hint %q), want failed: both contracts in force", cs.Result, cs.Error, cs.Hint)
	}
	if got := h.writes(); got != 1 {
		t.Errorf("%d writes, want cust-b's only", got)
	}
	if len(res.Plan.Renewals) != 1 || res.Plan.Renewals[0].BillsTo != "" {
		t.Errorf("renewals = %+v, want cust-a's, billing neither", res.Plan.Renewals)
	}
}
