package usage

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngineConnectWise_hiddenAdditionNotAddedAgain: a read of an
// agreement's additions that answers `[]` (the API member's security role
// cannot see them, or a cache serves an old, empty page) for a line that
// psa-syncd itself added is not taken for a missing line: the pass holds
// the line for an operator, with a reason and a hint, instead of POSTing
// a second addition, and so does the plan. An approval of the line (the
// operator checked that it is really gone) adds it again.
func TestEngineConnectWise_hiddenAdditionNotAddedAgain(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess || res.Run.Updated != 1 {
		t.Fatalf("first pass = %+v, want success with 1 updated (the addition created)", res.Run)
	}
	agreement := mustParse(t, h.contractA)
	if adds := cw.Additions(agreement); len(adds) != 1 {
		t.Fatalf("additions after the first pass = %+v, want one", adds)
	}

	cw.HideAdditions(agreement, true)
	h.sim.ResetRequests()
	plan := h.plan()
	c := sysFindChange(plan, h.svcIntercept)
	if c == nil || c.Action != ActionHeld || c.Hold() != HoldVanished || !c.Approvable() ||
		!strings.Contains(c.Reason, "psa-syncd set it to 42") || !strings.Contains(c.Reason, "sync --approve --customer cust-a --service "+h.svcIntercept) {
		t.Errorf("plan's change = %+v, want held (%s, approvable) naming the 42 psa-syncd set and the approval", c, HoldVanished)
	}
	res := h.sync(PassOptions{})
	if adds := cw.Additions(agreement); len(adds) != 1 {
		t.Fatalf("additions after a pass that read none = %+v, want still the one: a second addition doubles the line", adds)
	}
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodPost {
			t.Errorf("request %s %s, want no POST", r.Method, r.Path)
		}
	}
	if res.Run.Held != 1 {
		t.Errorf("run = %+v, want 1 held", res.Run)
	}
	if cs := h.status("cust-a"); cs.Held != 1 || !strings.Contains(cs.Hint, "security role") {
		t.Errorf("status = %+v, want 1 held with a hint naming the security role", cs)
	}

	// The operator checked: the addition is really gone (deleted by hand).
	cw.HideAdditions(agreement, false)
	for _, a := range cw.Additions(agreement) {
		cw.DeleteAddition(a.ID)
	}
	if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: h.svcIntercept}); res.Run.Updated != 1 {
		t.Errorf("approved pass = %+v, want 1 updated", res.Run)
	}
	if adds := cw.Additions(agreement); len(adds) != 1 || adds[0].Quantity != 42 {
		t.Errorf("additions after the approved pass = %+v, want one of 42", adds)
	}
}

// TestEngineConnectWise_lineSetToZeroIsAddedAgain: a line psa-syncd last
// set to 0 has nothing to double: a read without it adds it as before.
func TestEngineConnectWise_lineSetToZeroIsAddedAgain(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	agreement := mustParse(t, h.contractA)
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: mustParse(t, h.svcIntercept), Quantity: 3})
	h.writeUsage("cust-a,Acme,MDR,1")
	h.pol.MaxDecreasePercent = 0
	if res := h.sync(PassOptions{}); res.Run.Updated != 2 {
		t.Fatalf("first pass = %+v, want 2 updated (3 -> 0, MDR added)", res.Run)
	}
	for _, a := range cw.Additions(agreement) {
		if a.ProductID == mustParse(t, h.svcIntercept) {
			cw.DeleteAddition(a.ID)
		}
	}
	h.writeUsage("cust-a,Acme,MDR,1", "cust-a,Acme,CIXA-MSP,7")
	if res := h.sync(PassOptions{}); res.Run.Updated != 1 || res.Run.Held != 0 {
		t.Errorf("second pass = %+v, want the addition of 7 added, nothing held", res.Run)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 7)
}

// TestEngineAutotask_hiddenLineNotAdjustedAgain: an Autotask security
// level that sees neither the contract's unit rows nor its ContractServices
// answers both reads with no rows: the adjustment of a line psa-syncd
// added would add its whole quantity to the units the line has (45 + 45).
// The line is held instead.
func TestEngineAutotask_hiddenLineNotAdjustedAgain(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.firstPass(2, "cust-a,Acme,CIXA-MSP,45", "cust-b,Globex,CIXA-MSP,10")
	h.wantUnits(h.contractA, h.svcIntercept, 45)

	empty := `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`
	for _, path := range []string{"/ATServicesRest/V1.0/ContractServiceUnits/query", "/ATServicesRest/V1.0/ContractServices/query"} {
		h.sim.AddFault(psatest.Fault{Path: path, Status: http.StatusOK, Body: empty})
	}
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 45)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("adjustments posted = %d, want none", n)
	}
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Hold() != HoldVanished || !strings.Contains(c.Reason, "security level") {
		t.Errorf("cust-a's change = %+v, want held (%s) naming the security level", c, HoldVanished)
	}
}

// TestEngineConnectWise_lostCreateUnseenNotAddedAgain: the answer to the
// POST that adds an addition is lost (the addition is there), and the read
// that settles the intent cannot see the agreement's additions (the API
// member's security role, or a cache serving an old page), nor could the
// re-read right after the lost answer. The intent is
// not closed as failed, which would have the next pass add the addition a
// second time: it stays open for an operator, the line is not written, the
// plan and the customer's status say how to resolve it, and once the read
// sees the addition the intent settles by itself, with one addition.
func TestEngineConnectWise_lostCreateUnseenNotAddedAgain(t *testing.T) {
	t.Parallel()
	additions := "/" + psatest.DefaultConnectWiseCodebase + "apis/3.0/finance/agreements/*"
	h := newSysHarness(t, psa.SystemConnectWise,
		psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: additions, DropAfterHandling: true, Times: 1}))
	h.pol.SettleTime = 0
	cw := h.sim.ConnectWise()
	agreement := mustParse(t, h.contractA)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	cw.HideAdditions(agreement, true)
	if res := h.sync(PassOptions{}); res.Run.Updated != 0 {
		t.Fatalf("first pass = %+v, want the add unconfirmed", res.Run)
	}
	if adds := cw.Additions(agreement); len(adds) != 1 {
		t.Fatalf("additions after the lost answer = %+v, want the one that arrived", adds)
	}

	plan := h.plan()
	if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "not added again until an operator resolves it") {
		t.Errorf("plan's change = %+v, want failed until an operator resolves the intent", c)
	}
	for range 2 {
		h.sim.ResetRequests()
		res := h.sync(PassOptions{})
		if adds := cw.Additions(agreement); len(adds) != 1 {
			t.Fatalf("additions after a pass that read none = %+v, want still the one: a second addition doubles the line", adds)
		}
		for _, r := range h.sim.Requests() {
			if h.isWrite(r) {
				t.Errorf("request %s %s, want no write", r.Method, r.Path)
			}
		}
		if res.Run.Failed != 1 {
			t.Errorf("run = %+v, want the line failed", res.Run)
		}
		if cs := h.status("cust-a"); !strings.Contains(cs.Hint, "psa-syncd resolve -intent") || !strings.Contains(cs.Hint, "security role") {
			t.Errorf("status = %+v, want a hint naming the security role and psa-syncd resolve", cs)
		}
	}
	open, err := h.db.OpenIntents()
	if err != nil || len(open) != 1 {
		t.Fatalf("open intents = %+v, %v; want the create's, open", open, err)
	}

	// The read sees the addition again: the intent settles as done.
	cw.HideAdditions(agreement, false)
	if res := h.sync(PassOptions{}); res.Run.Failed != 0 || res.Run.Updated != 0 {
		t.Errorf("pass once the addition is seen = %+v, want nothing failed or written", res.Run)
	}
	if open, err := h.db.OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents = %+v, %v; want none", open, err)
	}
	if adds := cw.Additions(agreement); len(adds) != 1 || adds[0].Quantity != 42 {
		t.Errorf("additions = %+v, want one of 42", adds)
	}
}

// staleLines replays, once replay is set, the lines of the last read it
// recorded: a cache or proxy serving the page from before a write.
type staleLines struct {
	psa.Backend
	mu             sync.Mutex
	record, replay bool
	lines          []psa.ContractLine
}

func (b *staleLines) ReadLines(ctx context.Context, contractIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.replay {
		return slices.Clone(b.lines), nil
	}
	lines, err := b.Backend.ReadLines(ctx, contractIDs, asOf)
	if b.record && err == nil {
		b.lines = slices.Clone(lines)
	}
	return lines, err
}

// TestEngineAutotask_staleReadNotAdjustedTwice: an Autotask adjustment is
// a delta computed from the pass's read. A read that serves the line as it
// was before psa-syncd's last write (40, while psa-syncd set it to 45)
// would have +5 applied a second time (50). The line is held instead
// (stale_read), in the plan as in the pass; a line someone set back by
// hand to exactly the earlier units is held too, and an approval of that
// one line adjusts it.
func TestEngineAutotask_staleReadNotAdjustedTwice(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	stale := &staleLines{Backend: h.be}
	h.be = stale
	h.firstPass(1, "cust-a,Acme,CIXA-MSP,40")
	h.writeUsage("cust-a,Acme,CIXA-MSP,45")
	stale.record = true
	if res := h.sync(PassOptions{}); res.Run.Updated != 1 {
		t.Fatalf("second pass = %+v, want 1 updated (40 -> 45)", res.Run)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 45)

	stale.replay = true
	plan := h.plan(PassOptions{})
	if c := etFindChange(plan, "cust-a", h.svcIntercept); c == nil || c.Hold() != HoldStaleRead || !c.Approvable() {
		t.Errorf("plan's change = %+v, want held (%s, approvable)", c, HoldStaleRead)
	}
	h.sim.ResetRequests()
	res := h.sync(PassOptions{Approve: true})
	h.wantUnits(h.contractA, h.svcIntercept, 45)
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("adjustments posted = %d, want none", n)
	}
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Hold() != HoldStaleRead || !strings.Contains(c.Reason, "psa-syncd set the line from 40 to 45") {
		t.Errorf("change = %+v, want held (%s) naming psa-syncd's write", c, HoldStaleRead)
	}
	if cs := h.status("cust-a"); cs.Held != 1 || !strings.Contains(cs.Hint, "cache or proxy") {
		t.Errorf("status = %+v, want 1 held with a hint naming a cache or proxy", cs)
	}

	// Someone set the line back to 40 by hand: held as well, and an
	// approval of the line adjusts it.
	stale.replay = false
	h.at.SetUnits(h.contractA, h.svcIntercept, 40, etPeriodDay)
	if res := h.sync(PassOptions{}); res.Run.Held != 1 {
		t.Errorf("pass after the hand change = %+v, want the line held", res.Run)
	}
	if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: etID(h.svcIntercept)}); res.Run.Updated != 1 {
		t.Errorf("approved pass = %+v, want 1 updated", res.Run)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 45)
}

// TestEngineAutotask_lostWriteToZeroUnseenNotAddedAgain: the adjustment
// that sets cust-a's line of 5 to 0 is lost before Autotask handles it, and
// from then on the read cannot see the contract's services (a security
// level, a cache serving an empty page). The backend's own re-read right
// after the lost answer shows no unit row, which proves no write to 0
// (Autotask keeps such a line): the intent is not closed as done, so the
// ledger still says 5, and the next pass, which wants 42, holds the line
// rather than add 42 next to the 5 that still bills (47).
func TestEngineAutotask_lostWriteToZeroUnseenNotAddedAgain(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxDecreasePercent = 100 // the decrease to 0 is not held for review
	h.firstPass(1, "cust-a,Acme,CIXA-MSP,5")
	h.writeUsage("cust-a,Acme,CIXA-MSP,0")
	empty := `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Drop: true, Times: 1, Received: func() {
		for _, path := range []string{"/ATServicesRest/V1.0/ContractServiceUnits/query", "/ATServicesRest/V1.0/ContractServices/query"} {
			h.sim.AddFault(psatest.Fault{Path: path, Status: http.StatusOK, Body: empty})
		}
	}})
	if res := h.sync(PassOptions{}); res.Run.Updated != 0 {
		t.Errorf("pass whose write to 0 was lost = %+v, want nothing updated", res.Run)
	}
	if open, err := h.db.OpenIntents(); err != nil || len(open) != 1 || open[0].After != 0 {
		t.Fatalf("open intents = %+v, %v; want the write to 0, open", open, err)
	}

	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	if n := h.writes(); n != 0 {
		t.Errorf("the next pass wrote %d times, want nothing written while the line is out of sight", n)
	}
	if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionHeld || c.Hold() != HoldVanished {
		t.Errorf("next pass's change = %+v, want held (%s)", c, HoldVanished)
	}
	h.sim.ClearFaults()
	h.wantUnits(h.contractA, h.svcIntercept, 5)
}
