package usage

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// TestEngine_Sync_postedPeriodHeld: with usage_period: previous and the
// default effective_date: period_start, a pass on 21 November dates
// October's usage on 1 October. Acme's October is already approved and
// posted (invoiced) in Autotask, so its change is held, in the plan as in
// the pass, and not even an approved pass writes it: the reason names the
// period and suggests next_period_start, which then writes it on 1
// November. Globex's October is not posted and is written.
func TestEngine_Sync_postedPeriodHeld(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.UsagePeriod = UsagePeriodPrevious
	oct := time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, oct)
	h.at.SetUnits(h.contractA, h.svcMDR, 3, oct)
	h.at.SetUnits(h.contractB, h.svcIntercept, 10, oct)
	h.at.PostPeriods(h.contractA, time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC))
	content := "customer_id,customer_name,product,quantity,period\n" +
		"cust-a,Acme,CIXA-MSP,42,2026-10\n" +
		"cust-a,Acme,MDR,3,2026-10\n" +
		"cust-b,Globex,CIXA-MSP,12,2026-10\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	wantHeld := func(what string, c *Change) {
		t.Helper()
		if c == nil || c.Action != ActionHeld || c.Approvable() || c.Current != 30 || c.Desired != 42 ||
			!strings.Contains(c.Reason, "the billing period 2026-10-01 to 2026-10-31 is already approved and posted (invoiced) in Autotask") ||
			!strings.Contains(c.Reason, "a change dated 2026-10-01") ||
			!strings.Contains(c.Reason, "policies.effective_date: next_period_start") ||
			!strings.Contains(c.Reason, "sync --approve does not release it") {
			t.Errorf("%s: Acme Intercept X change = %+v, want held (not approvable) for the posted October", what, c)
		}
	}

	plan := h.plan(PassOptions{})
	wantHeld("plan", etFindChange(plan, "cust-a", h.svcIntercept))
	if c := etFindChange(plan, "cust-b", h.svcIntercept); c == nil || c.Action != ActionUpdate {
		t.Errorf("plan: Globex Intercept X change = %+v, want update", c)
	}

	res := h.sync(PassOptions{Customer: "cust-a", Approve: true})
	wantHeld("approved pass", etFindChange(res.Plan, "cust-a", h.svcIntercept))
	if n := len(h.at.Adjustments()); n != 0 {
		t.Errorf("approved pass posted %d adjustments into Acme's invoiced October, want 0", n)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || cs.Held != 1 ||
		!strings.Contains(cs.Hint, "2026-10-01 is already approved and posted (invoiced) in Autotask") ||
		!strings.Contains(cs.Hint, "policies.effective_date: next_period_start") ||
		strings.Contains(cs.Hint, "--approve --customer") {
		t.Errorf("status of cust-a = %+v, want held with the posted-period hint only", cs)
	}

	res = h.sync(PassOptions{})
	if c := etFindChange(res.Plan, "cust-b", h.svcIntercept); c == nil || c.Action != ActionUpdate {
		t.Errorf("Globex Intercept X change = %+v, want update", c)
	}
	if u, _ := h.at.Units(h.contractB, h.svcIntercept, oct); u != 12 {
		t.Errorf("Globex Intercept X units in October = %d, want 12", u)
	}
	if u, _ := h.at.Units(h.contractA, h.svcIntercept, oct); u != 30 {
		t.Errorf("Acme Intercept X units in October = %d, want 30 (untouched)", u)
	}

	// next_period_start dates October's usage on 1 November, not posted.
	h.pol.EffectiveDate = EffectiveNextPeriodStart
	res = h.sync(PassOptions{})
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionUpdate {
		t.Errorf("next_period_start: Acme Intercept X change = %+v, want update", c)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	for _, a := range h.at.Adjustments() {
		if a.IntoPostedPeriod {
			t.Errorf("adjustment %+v landed in a posted period", a)
		}
	}
}

// TestEngine_Sync_repeatServiceFails: Acme's contract holds Intercept X on
// two lines (a repeat service). The pass never reads that as one line or
// adjusts a line Autotask picks: Acme fails with a hint naming both lines,
// nothing is written to its contract, and Globex is synced.
func TestEngine_Sync_repeatServiceFails(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 10, etPeriodDay)
	repeat := h.at.AddRepeatContractService(h.contractA, h.svcIntercept, -1)
	h.at.SetLineUnits(repeat, 5, etPeriodDay)
	h.at.SetUnits(h.contractA, h.svcMDR, 3, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 10, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,15", "cust-a,Acme,MDR,4", "cust-b,Globex,CIXA-MSP,12")

	for range 2 {
		h.sync(PassOptions{})
	}
	cs := h.status("cust-a")
	if cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, "the service is on the contract more than once") ||
		!strings.Contains(cs.Hint, "contract service "+etID(repeat)) || !strings.Contains(cs.Hint, "never guesses") {
		t.Errorf("status of cust-a = %+v, want failed with the repeat-service hint", cs)
	}
	for _, a := range h.at.Adjustments() {
		if a.ContractID == h.contractA {
			t.Errorf("adjustment %+v written to Acme's contract, want none", a)
		}
	}
	if u, _ := h.at.LineUnits(repeat, etPeriodDay); u != 5 {
		t.Errorf("repeat line units = %d, want 5", u)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 10)
	h.wantUnits(h.contractB, h.svcIntercept, 12)
	if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status of cust-b = %+v, want succeeded", cs)
	}
}

// TestEngine_Sync_laterPostedPeriodHeld: Acme's December is approved and
// posted while November, the period at the effective date, is still open
// (posted out of order). Autotask carries a November adjustment into every
// later period, so writing it would alter the invoiced December: the line
// is held, naming December, and nothing is written. Globex is written.
func TestEngine_Sync_laterPostedPeriodHeld(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 10, etPeriodDay)
	h.at.PostPeriod(h.contractA, time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC))
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,12")

	res := h.sync(PassOptions{})
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Action != ActionHeld || c.Approvable() ||
		!strings.Contains(c.Reason, "the billing period 2026-12-01 to 2026-12-31 is already approved and posted (invoiced) in Autotask") ||
		!strings.Contains(c.Reason, "a change dated 2026-11-01") {
		t.Errorf("Acme Intercept X change = %+v, want held for the posted December", c)
	}
	for _, a := range h.at.Adjustments() {
		if a.ContractID == h.contractA || a.IntoPostedPeriod {
			t.Errorf("adjustment %+v written, want none to Acme and none into a posted period", a)
		}
	}
	h.wantUnits(h.contractA, h.svcIntercept, 30)
	h.wantUnits(h.contractB, h.svcIntercept, 12)
}
