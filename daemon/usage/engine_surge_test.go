package usage

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// surgeCustomers adds n-2 customers to the harness's two (cust-c, cust-d,
// ...), each with its own Autotask contract, and sets every customer's
// Intercept X line to 10, 11, ... units for November; it returns the
// customer ids and contract ids in that order.
func surgeCustomers(h *etHarness, n int) ([]string, []int64) {
	ids := []string{"cust-a", "cust-b"}
	contracts := []int64{h.contractA, h.contractB}
	for i := 2; i < n; i++ {
		name := fmt.Sprintf("Customer %c", 'A'+i)
		co := h.at.AddCompany(name)
		ct := h.at.AddContract(psatest.AutotaskContract{CompanyID: co, Name: name + " Managed Services"})
		id := fmt.Sprintf("cust-%c", 'a'+i)
		h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: id, CustomerName: name, CompanyID: etID(co), ContractID: etID(ct), UsageSync: true})
		ids, contracts = append(ids, id), append(contracts, ct)
	}
	for i, ct := range contracts {
		h.at.SetUnits(ct, h.svcIntercept, int64(10+i), etPeriodDay)
	}
	return ids, contracts
}

// surgeUsage writes usage of Intercept X for every customer: its line's
// units times factor, and times one in the map's own factors.
func surgeUsage(h *etHarness, ids []string, factor int64, own map[string]int64) {
	var rows []string
	for i, id := range ids {
		f := factor
		if o, ok := own[id]; ok {
			f = o
		}
		rows = append(rows, fmt.Sprintf("%s,,CIXA-MSP,%d", id, int64(10+i)*f))
	}
	h.writeUsage(rows...)
}

// A vendor that counts every seat twice from one day to the next (a bug,
// a changed report) raises every line at once: with the default policies
// (surge_lines_percent 50, surge_increase_percent 50, surge_min_lines 5)
// the pass holds the increases for review and writes none, although
// max_increase_percent is off, and although Autotask's early writes send a
// customer's updates while the next contracts are still read. A pass for
// one customer goes by the verdict of the last pass over all customers; an
// approval releases a line; a customer's own growth, and the vendor's fix,
// are written as usual.
func TestEngine_Sync_surgeHoldsDoubledCounts(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	if h.pol.MaxIncreasePercent != 0 || h.pol.SurgeLinesPercent != 50 || h.pol.SurgeIncreasePercent != 50 || h.pol.SurgeMinLines != 5 {
		t.Fatalf("default policies = %+v, want the increase guard off and the surge guard at 50/50/5", h.pol)
	}
	ids, contracts := surgeCustomers(h, 8)
	svc := strconv.FormatInt(h.svcIntercept, 10)

	// Every count doubles.
	surgeUsage(h, ids, 2, nil)
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("posted %d adjustments for a surge", n)
	}
	for i, ct := range contracts {
		h.wantUnits(ct, h.svcIntercept, int64(10+i))
		c := etFindChange(res.Plan, ids[i], h.svcIntercept)
		want := fmt.Sprintf("increase of 100%% (from %d to %d) held for review: 8 of 8 of the lines of service %s above 0 rise by more than surge_increase_percent 50 at once (more than surge_lines_percent 50), as when the vendor counts twice; check the usage with the vendor, then apply with sync --approve --customer %s --service %s --units %d --period 2026-11",
			10+i, 2*(10+i), svc, ids[i], svc, 2*(10+i))
		if c == nil || c.Action != ActionHeld || c.Hold() != HoldApproval || !c.Approvable() || !strings.Contains(c.Reason, want) {
			t.Errorf("change of %s = %+v, want held for approval with %q", ids[i], c, want)
		}
	}
	if cs := h.status("cust-c"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, "many lines rise sharply at once (policies.surge_lines_percent)") ||
		strings.Contains(cs.Hint, "max_increase_percent") {
		t.Errorf("status = %+v, want held with a hint naming the surge guard", cs)
	}
	if res.Run.Result != state.RunSuccess || res.Run.Held != 8 {
		t.Errorf("run = %+v, want success with 8 held", res.Run)
	}
	if got := h.metric(h.m.HeldLines); got != 8 {
		t.Errorf("held_lines = %v, want 8", got)
	}

	// A pass for one customer (sync now on the status page) has one line:
	// it goes by the last pass over all customers of the month.
	res = h.sync(PassOptions{Customer: "cust-c"})
	h.wantUnits(contracts[2], h.svcIntercept, 12)
	if c := etFindChange(res.Plan, "cust-c", h.svcIntercept); c == nil || c.Action != ActionHeld ||
		!strings.Contains(c.Reason, "held for review: the last pass over all customers of 2026-11 found that 8 of 8 of the lines of service "+svc) {
		t.Errorf("change of a pass for one customer = %+v, want held by the last full pass's verdict", c)
	}
	// An approval of the reviewed units writes the line.
	units := int64(24)
	res = h.sync(PassOptions{Customer: "cust-c", Approve: true, ApproveService: svc, ApproveUnits: &units})
	h.wantUnits(contracts[2], h.svcIntercept, 24)
	if c := etFindChange(res.Plan, "cust-c", h.svcIntercept); c == nil || c.Action != ActionUpdate || !strings.Contains(c.Reason, "increase of 100% approved although") {
		t.Errorf("approved change = %+v, want update", c)
	}

	// The vendor fixes its report: the lines are left as they are (cust-c's
	// approved 24 goes back to 12, a decrease of 50 %, not held), and a
	// pass for one customer writes again.
	surgeUsage(h, ids, 1, nil)
	res = h.sync(PassOptions{})
	h.wantUnits(contracts[2], h.svcIntercept, 12)
	if res.Run.Held != 0 {
		t.Errorf("run after the fix = %+v, want nothing held", res.Run)
	}

	// A customer's own growth: two lines double, six do not.
	surgeUsage(h, ids, 1, map[string]int64{"cust-a": 2, "cust-b": 3})
	res = h.sync(PassOptions{})
	h.wantUnits(contracts[0], h.svcIntercept, 20)
	h.wantUnits(contracts[1], h.svcIntercept, 33)
	if res.Run.Held != 0 || res.Run.Updated != 2 {
		t.Errorf("run of two customers' growth = %+v, want 2 updated, none held", res.Run)
	}
	// Once a pass over all customers finds no surge, a pass for one
	// customer writes its growth.
	surgeUsage(h, ids, 1, map[string]int64{"cust-a": 2, "cust-b": 3, "cust-d": 2})
	h.sync(PassOptions{Customer: "cust-d"})
	h.wantUnits(contracts[3], h.svcIntercept, 26)
}

// A vendor that counts one product twice raises the lines of one service:
// they are held when more than half of that service's lines surge, though
// the pass's lines as a whole do not (8 of 16 is not more than half).
func TestEngine_Sync_surgeOfOneService(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	ids, contracts := surgeCustomers(h, 8)
	var rows []string
	for i, ct := range contracts {
		h.at.SetUnits(ct, h.svcMDR, int64(5+i), etPeriodDay)
		rows = append(rows, fmt.Sprintf("%s,,CIXA-MSP,%d", ids[i], 10+i), fmt.Sprintf("%s,,MDR,%d", ids[i], 2*(5+i)))
	}
	h.writeUsage(rows...)
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("posted %d adjustments for a surge of one service", n)
	}
	mdr := strconv.FormatInt(h.svcMDR, 10)
	for i, ct := range contracts {
		h.wantUnits(ct, h.svcMDR, int64(5+i))
		if c := etFindChange(res.Plan, ids[i], h.svcMDR); c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, "8 of 8 of the lines of service "+mdr+" above 0") {
			t.Errorf("MDR change of %s = %+v, want held for the service's surge", ids[i], c)
		}
	}
}

// On Kaseya BMS, whose units psa-syncd knows only from its ledger, the
// first pass (an empty ledger: every line "current unknown") posts every
// line, none held: new lines do not count as surging. Once the ledger
// holds them, a vendor that doubles every count is held and nothing is
// posted.
func TestEngineKaseyaBMS_surgeAfterFirstPass(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	k := h.sim.KaseyaBMS()
	const n = 6
	customers := h.manyCustomers(n, func(i int) (string, string) {
		a := k.AddAccount(fmt.Sprintf("Customer %04d", i))
		c := k.AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: fmt.Sprintf("Managed Services %04d", i)})
		return strconv.Itoa(a), strconv.Itoa(c)
	})
	h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
	res := h.sync(PassOptions{})
	if res.Run.Updated != 2*n || res.Run.Held != 0 {
		t.Fatalf("first pass = %+v, want %d lines posted, none held", res.Run, 2*n)
	}

	var rows []string
	for i, cm := range customers {
		rows = append(rows, fmt.Sprintf("%s,,CIXA-MSP,%d", cm.CustomerID, 2*(2+i%7)), fmt.Sprintf("%s,,MDR,%d", cm.CustomerID, 6))
	}
	h.writeUsage(rows...)
	h.sim.ResetRequests()
	res = h.sync(PassOptions{})
	if w := h.writes(); w != 0 || res.Run.Held != 2*n || res.Run.Updated != 0 {
		t.Errorf("pass of doubled counts = %+v with %d posts, want %d held and none posted", res.Run, w, 2*n)
	}
	for _, c := range res.Plan.Changes {
		if c.Action != ActionHeld || !strings.Contains(c.Reason, "rise by more than surge_increase_percent 50 at once") {
			t.Errorf("change %+v, want held for the surge", c)
		}
	}
}
