package usage

import (
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// These tests check that a plan predicts what a pass then does with a line
// whose earlier write left an intent open: the same action, and for a line
// not written the same kind of reason.

// TestEngine_Plan_intentOfAnotherSystem: an intent left open by psa-syncd
// configured for another PSA system, on the same state database, whose
// contract and service ids are those of a line of this system. It names
// the other system's line: the plan and the pass both write this one, and
// the intent stays open and reported.
func TestEngine_Plan_intentOfAnotherSystem(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	in, err := h.db.OpenIntent(state.Intent{RunID: 99, System: psa.SystemConnectWise, Source: "file", CustomerID: "cust-a",
		ContractID: etID(h.contractA), ServiceID: etID(h.svcIntercept), Before: 1, After: 2, BeforeKnown: true,
		EffectiveDate: etPeriodDay, Created: etNow.Add(-48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	plan, err := h.engine().Plan(t.Context(), h.doc, PassOptions{})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	pc := etFindChange(plan, "cust-a", h.svcIntercept)
	if pc == nil || pc.Action != ActionUpdate {
		t.Fatalf("plan: Acme's Intercept X = %+v, want an update", pc)
	}
	res := h.sync(PassOptions{})
	rc := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if rc.Action != pc.Action {
		t.Errorf("pass: Acme's Intercept X %s (%s), the plan said %s", rc.Action, rc.Reason, pc.Action)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)

	// The operator still learns of it: reconciliation names it, and it
	// stays open for psa-syncd configured for ConnectWise.
	_, err = h.engine().Reconcile(t.Context())
	if err == nil || !strings.Contains(err.Error(), "is for connectwise, not autotask") {
		t.Errorf("Reconcile = %v, want an error naming the ConnectWise intent", err)
	}
	open, err := h.db.OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].ID != in.ID {
		t.Errorf("open intents after the pass = %+v, want only the ConnectWise intent %d", open, in.ID)
	}
}

// TestEngine_Plan_openIntentAndLaterWrite: a line psa-syncd set from 1
// December (in the ledger) that also has an open intent of 1 November
// whose write may still arrive. The pass holds the update for the later
// write before its writer looks at open intents; the plan must say the
// same (a hold no approval releases), not a failure that settles by time.
func TestEngine_Plan_openIntentAndLaterWrite(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	h.pol.EffectiveDate = EffectiveNextPeriodStart
	h.sync(PassOptions{}) // 42 from 1 December, in the ledger
	h.sim.ResetRequests()

	h.pol.EffectiveDate = EffectivePeriodStart
	if _, err := h.db.OpenIntent(state.Intent{RunID: 99, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-a",
		ContractID: etID(h.contractA), ServiceID: etID(h.svcIntercept), Before: 30, After: 42, BeforeKnown: true,
		EffectiveDate: etPeriodDay, Created: etNow}); err != nil {
		t.Fatal(err)
	}
	plan, err := h.engine().Plan(t.Context(), h.doc, PassOptions{})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	pc := *etFindChange(plan, "cust-a", h.svcIntercept)
	res := h.sync(PassOptions{})
	rc := *etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if rc.Action != ActionHeld || !rc.laterWrite {
		t.Fatalf("pass: Acme's Intercept X %s (%s), want held for the later write", rc.Action, rc.Reason)
	}
	if pc.Action != rc.Action || pc.laterWrite != rc.laterWrite || pc.Approvable() != rc.Approvable() {
		t.Errorf("plan: Acme's Intercept X %s (later write %v, approvable %v: %s); the pass: %s (later write %v, approvable %v: %s)",
			pc.Action, pc.laterWrite, pc.Approvable(), pc.Reason, rc.Action, rc.laterWrite, rc.Approvable(), rc.Reason)
	}
	if h.adjustmentPosts() != 0 {
		t.Errorf("the pass posted %d adjustment(s), want none", h.adjustmentPosts())
	}
}
