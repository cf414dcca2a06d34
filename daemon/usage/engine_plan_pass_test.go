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

	plan := h.plan(PassOptions{})
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
	plan := h.plan(PassOptions{})
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

// TestEngine_Plan_intentOfAnotherDate: an intent left open by a pass whose
// effective date was not the plan's (October's pass, whose answer was
// lost; a change of policies.effective_date). The pass's Reconcile reads
// the line at the intent's own date before the line is decided; the plan
// reads it there too, and predicts what the pass then does with the line.
func TestEngine_Plan_intentOfAnotherDate(t *testing.T) {
	t.Parallel()
	oct1 := time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC)
	dec1 := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		// units sets the line in the PSA before the plan.
		units func(h *etHarness)
		// intent is the open intent's Before, After, effective date and
		// creation time.
		before, after int64
		effective     time.Time
		created       time.Time
		action        string
		laterWrite    bool
		posts         int
	}{
		{
			// The write landed: the pass closes the intent as done, and
			// writes the line from what it shows.
			name:   "earlier period, landed",
			units:  func(h *etHarness) { h.at.SetUnits(h.contractA, h.svcIntercept, 30, oct1) },
			before: 20, after: 30, effective: oct1, created: etNow.Add(-time.Hour),
			action: ActionUpdate, posts: 1,
		},
		{
			// The write has not landed but may still arrive: the pass
			// does not write the line.
			name:   "earlier period, may still arrive",
			units:  func(h *etHarness) { h.at.SetUnits(h.contractA, h.svcIntercept, 20, oct1) },
			before: 20, after: 30, effective: oct1, created: etNow,
			action: ActionFailed,
		},
		{
			// The write has not landed and can no longer arrive: the pass
			// closes the intent as not applied, and writes the line.
			name:   "earlier period, not applied",
			units:  func(h *etHarness) { h.at.SetUnits(h.contractA, h.svcIntercept, 20, oct1) },
			before: 20, after: 30, effective: oct1, created: etNow.Add(-time.Hour),
			action: ActionUpdate, posts: 1,
		},
		{
			// A write dated 1 December landed: once the pass records it in
			// the ledger, the line is held for that later write.
			name: "later date, landed",
			units: func(h *etHarness) {
				h.at.SetUnits(h.contractA, h.svcIntercept, 30, etPeriodDay)
				h.at.SetUnits(h.contractA, h.svcIntercept, 40, dec1)
			},
			before: 30, after: 40, effective: dec1, created: etNow.Add(-time.Hour),
			action: ActionHeld, laterWrite: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			tt.units(h)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42")
			if _, err := h.db.OpenIntent(state.Intent{RunID: 99, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-a",
				ContractID: etID(h.contractA), ServiceID: etID(h.svcIntercept), Before: tt.before, After: tt.after, BeforeKnown: true,
				EffectiveDate: tt.effective, Created: tt.created}); err != nil {
				t.Fatal(err)
			}

			plan := h.plan(PassOptions{})
			pc := *etFindChange(plan, "cust-a", h.svcIntercept)
			if posts := h.adjustmentPosts(); posts != 0 {
				t.Fatalf("the plan posted %d adjustment(s)", posts)
			}
			res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
			if res == nil {
				t.Fatalf("Sync: %v", err)
			}
			rc := *etFindChange(res.Plan, "cust-a", h.svcIntercept)
			if rc.Action != tt.action || rc.laterWrite != tt.laterWrite {
				t.Fatalf("pass: Acme's Intercept X %s (later write %v: %s), want %s (later write %v)", rc.Action, rc.laterWrite, rc.Reason, tt.action, tt.laterWrite)
			}
			if pc.Action != rc.Action || pc.laterWrite != rc.laterWrite || pc.Reason != rc.Reason {
				t.Errorf("plan: %s %d -> %d (later write %v): %s\npass: %s %d -> %d (later write %v): %s",
					pc.Action, pc.Current, pc.Desired, pc.laterWrite, pc.Reason, rc.Action, rc.Current, rc.Desired, rc.laterWrite, rc.Reason)
			}
			if posts := h.adjustmentPosts(); posts != tt.posts {
				t.Errorf("the pass posted %d adjustment(s), want %d", posts, tt.posts)
			}
		})
	}
}
