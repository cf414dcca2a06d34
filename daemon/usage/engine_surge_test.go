package usage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
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

// surgeHeld sets up 8 customers whose Intercept X counts all double and
// runs the pass that holds every line for the surge.
func surgeHeld(h *etHarness) (ids []string, contracts []int64) {
	h.t.Helper()
	ids, contracts = surgeCustomers(h, 8)
	surgeUsage(h, ids, 2, nil)
	if res := h.sync(PassOptions{}); res.Run.Held != 8 {
		h.t.Fatalf("run = %+v, want 8 held", res.Run)
	}
	return ids, contracts
}

// surgeApproval approves customer i's Intercept X line of surgeHeld at
// the doubled units the surge held.
func surgeApproval(h *etHarness, ids []string, i int) PassOptions {
	units := int64(2 * (10 + i))
	return PassOptions{Customer: ids[i], Approve: true, ApproveService: etID(h.svcIntercept), ApproveUnits: &units}
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
		if c == nil || c.Action != ActionHeld || c.Hold() != HoldSurge || !c.Approvable() || !strings.Contains(c.Reason, want) {
			t.Errorf("change of %s = %+v, want held (surge) with %q", ids[i], c, want)
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

// Lines approved one by one no longer surge: once more than half of the
// surging lines are approved, fewer than surge_lines_percent of the lines
// surge, yet the lines not approved stay held while they still surge (the
// state database keeps the lines the surge guard holds), and
// psa_sync_surge_held_lines counts them. The vendor's fix releases them.
func TestEngine_Sync_surgePartialApprovalsKeepTheRestHeld(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	ids, contracts := surgeCustomers(h, 8)
	svc := strconv.FormatInt(h.svcIntercept, 10)
	surgeUsage(h, ids, 2, nil)
	res := h.sync(PassOptions{})
	if res.Run.Held != 8 {
		t.Fatalf("run = %+v, want 8 held", res.Run)
	}
	if got := h.metric(h.m.SurgeHeldLines); got != 8 {
		t.Errorf("surge_held_lines = %v, want 8", got)
	}
	for i := range 5 {
		units := int64(2 * (10 + i))
		h.sync(PassOptions{Customer: ids[i], Approve: true, ApproveService: svc, ApproveUnits: &units})
		h.wantUnits(contracts[i], h.svcIntercept, units)
	}
	if got := h.metric(h.m.SurgeHeldLines); got != 3 {
		t.Errorf("surge_held_lines after 5 approvals = %v, want 3", got)
	}
	res = h.sync(PassOptions{})
	for i := 5; i < 8; i++ {
		h.wantUnits(contracts[i], h.svcIntercept, int64(10+i))
		if c := etFindChange(res.Plan, ids[i], h.svcIntercept); c == nil || c.Action != ActionHeld ||
			!strings.Contains(c.Reason, "a pass over all customers of 2026-11 held it when many lines rose at once") {
			t.Errorf("change of %s not approved = %+v, want still held", ids[i], c)
		}
	}
	if res.Run.Held != 3 || res.Plan.Surge == nil || res.Plan.Surge.Lines != 3 {
		t.Errorf("run = %+v, surge = %+v, want 3 held", res.Run, res.Plan.Surge)
	}
	if got := h.metric(h.m.SurgeHeldLines); got != 3 {
		t.Errorf("surge_held_lines = %v, want 3", got)
	}
	// A pass for one customer not approved holds it too.
	h.sync(PassOptions{Customer: ids[6]})
	h.wantUnits(contracts[6], h.svcIntercept, 16)
	// The vendor's fix: the lines still held fall back, nothing is held,
	// and another customer's growth later in the month is not held for
	// the old surge.
	surgeUsage(h, ids, 1, map[string]int64{ids[0]: 2, ids[1]: 2, ids[2]: 2, ids[3]: 2, ids[4]: 2})
	res = h.sync(PassOptions{})
	if res.Run.Held != 0 || h.metric(h.m.SurgeHeldLines) != 0 {
		t.Errorf("run after the fix = %+v, surge_held_lines %v, want nothing held", res.Run, h.metric(h.m.SurgeHeldLines))
	}
	surgeUsage(h, ids, 1, map[string]int64{ids[0]: 2, ids[1]: 2, ids[2]: 2, ids[3]: 2, ids[4]: 2, ids[7]: 2})
	h.sync(PassOptions{})
	h.wantUnits(contracts[7], h.svcIntercept, 34)
}

// A genuine surge (the vendor counts differently on purpose) is approved
// at once with the review code a pass gives (Plan.Surge): the pass writes
// the lines held for the surge only when it holds exactly the lines and
// units reviewed; when usage moved since, it writes none of them. It never
// releases another guard's hold.
func TestEngine_Sync_surgeApprovedAtOnce(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.MaxIncreasePercent = 200
	ids, contracts := surgeCustomers(h, 9)
	// Every count doubles; cust-i's quadruples, which max_increase_percent
	// holds as well.
	surgeUsage(h, ids, 2, map[string]int64{ids[8]: 4})
	res := h.sync(PassOptions{})
	s := res.Plan.Surge
	if s == nil || s.Lines != 8 || s.Period != "2026-11" || len(s.Review) != 12 || s.Approval != "" {
		t.Fatalf("surge = %+v, want 8 lines with a review code", s)
	}
	if got := h.metric(h.m.SurgeHeldLines); got != 8 {
		t.Errorf("surge_held_lines = %v, want 8", got)
	}
	// The plan (psa-syncd plan) gives the same code.
	plan, err := h.engine().Plan(h.t.Context(), h.doc, PassOptions{})
	if err != nil || plan.Surge == nil || plan.Surge.Review != s.Review {
		t.Fatalf("plan's surge = %+v (%v), want the pass's code %s", plan.Surge, err, s.Review)
	}

	// Usage moves after the review: the code no longer matches and
	// nothing is written.
	surgeUsage(h, ids, 2, map[string]int64{ids[8]: 4, ids[0]: 3})
	h.sim.ResetRequests()
	res = h.sync(PassOptions{ApproveSurge: s.Review})
	if n := h.adjustmentPosts(); n != 0 || res.Plan.Surge == nil || res.Plan.Surge.Approval != "stale" || res.Run.Held != 9 {
		t.Errorf("approval after usage moved: %d posts, surge %+v, run %+v; want none written, stale", n, res.Plan.Surge, res.Run)
	}
	if c := etFindChange(res.Plan, ids[1], h.svcIntercept); c == nil || c.Action != ActionHeld ||
		!strings.Contains(c.Reason, "the lines held for the surge changed since the review (review code "+s.Review) {
		t.Errorf("change = %+v, want held naming the stale review code", c)
	}
	s = res.Plan.Surge

	// Approved with the current code: the eight surge holds are written,
	// the guard's hold of cust-i is not.
	res = h.sync(PassOptions{ApproveSurge: s.Review})
	if res.Plan.Surge == nil || res.Plan.Surge.Approval != "applied" || res.Plan.Surge.Lines != 8 {
		t.Errorf("surge = %+v, want applied", res.Plan.Surge)
	}
	h.wantUnits(contracts[0], h.svcIntercept, 30)
	for i := 1; i < 8; i++ {
		h.wantUnits(contracts[i], h.svcIntercept, int64(2*(10+i)))
	}
	h.wantUnits(contracts[8], h.svcIntercept, 18)
	if c := etFindChange(res.Plan, ids[8], h.svcIntercept); c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, "max_increase_percent") {
		t.Errorf("change of cust-i = %+v, want still held by max_increase_percent", c)
	}
	if got := h.metric(h.m.SurgeHeldLines); got != 0 {
		t.Errorf("surge_held_lines = %v, want 0", got)
	}

	// A surge approval takes no customer and no approve.
	if _, err := h.engine().Sync(h.t.Context(), h.doc, PassOptions{ApproveSurge: s.Review, Customer: ids[0]}); err == nil {
		t.Error("a surge approval for one customer was accepted")
	}
}

// A pass of the month that has ended (-period), run while the new month's
// surge is held, leaves the new month's lines held as they are: a line
// not approved stays held after it, though most were approved one by one.
func TestEngine_Sync_surgeHeldAfterEndedMonthPass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	ids, contracts := surgeHeld(h)
	for i := range 5 {
		h.sync(surgeApproval(h, ids, i))
	}
	oct := source.Period{Year: 2026, Month: time.October}
	// October billed the doubled counts already (the vendor's change
	// came then): its pass changes nothing.
	octDay := time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC)
	for i, ct := range contracts {
		nov := h.units(ct, h.svcIntercept)
		h.at.SetUnits(ct, h.svcIntercept, int64(2*(10+i)), octDay)
		h.at.SetUnits(ct, h.svcIntercept, nov, etPeriodDay)
	}
	if r := h.sync(PassOptions{Period: oct}); r.Run.Updated != 0 {
		t.Fatalf("pass of %s = %+v, want nothing written", oct, r.Run)
	}
	res := h.sync(PassOptions{})
	h.wantUnits(contracts[7], h.svcIntercept, 17)
	if res.Run.Held != 3 {
		t.Errorf("run after a pass of %s = %+v, want 3 still held", oct, res.Run)
	}
}

// A surge that goes on over the month's end: the lines of November's
// surge not approved stay held in December's first pass, though the lines
// approved in November no longer surge there.
func TestEngine_Sync_surgeHeldIntoTheNextMonth(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	ids, contracts := surgeHeld(h)
	for i := range 5 {
		h.sync(surgeApproval(h, ids, i))
	}
	h.now = func() time.Time { return time.Date(2026, time.December, 2, 10, 0, 0, 0, time.UTC) }
	res := h.sync(PassOptions{})
	dec := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)
	for i := 5; i < 8; i++ {
		if got, _ := h.at.Units(contracts[i], h.svcIntercept, dec); got != int64(10+i) {
			t.Errorf("December units of %s = %d, want %d (still held)", ids[i], got, 10+i)
		}
		if c := etFindChange(res.Plan, ids[i], h.svcIntercept); c == nil || c.Action != ActionHeld ||
			!strings.Contains(c.Reason, "a pass over all customers of 2026-11 held it when many lines rose at once") {
			t.Errorf("December change of %s = %+v, want held for November's surge", ids[i], c)
		}
	}
	if res.Run.Held != 3 {
		t.Errorf("December run = %+v, want 3 held", res.Run)
	}
}

// A customer that fails a pass while its line is held for a surge (its
// mapping names a contract that cannot be read, for one pass) keeps the
// line held: the next pass, once it reads the contract again, does not
// write it although most of the surge's lines were approved since.
func TestEngine_Sync_surgeHeldThroughAFailedCustomer(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	ids, contracts := surgeHeld(h)
	for i := range 5 {
		h.sync(surgeApproval(h, ids, i))
	}
	m, _ := h.doc.Customer("file", ids[7])
	broken := m
	broken.ContractID = "99999999"
	h.doc.PutCustomer(broken)
	if res := h.sync(PassOptions{}); res.Run.Held != 2 {
		t.Fatalf("run with %s failing = %+v, want 2 held", ids[7], res.Run)
	}
	h.doc.PutCustomer(m)
	res := h.sync(PassOptions{})
	h.wantUnits(contracts[7], h.svcIntercept, 17)
	if res.Run.Held != 3 {
		t.Errorf("run = %+v, want 3 held", res.Run)
	}
}

// A pass for one customer that cannot read the surge guard's record (a
// database that fails for a moment) does not rewrite it: written from
// nothing, it would drop every other customer's held lines, and the next
// pass over all customers, in which few lines surge once most were
// approved one by one, would write them unreviewed.
func TestEngine_Sync_surgeRecordKeptWhenUnread(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	ids, contracts := surgeHeld(h)
	for i := range 4 {
		h.sync(surgeApproval(h, ids, i))
	}
	// cust-e's approval, in a pass that cannot read the record.
	e := h.engine()
	e.readSurgeSnapshot = func(*surgeVerdict) (bool, error) { return false, errors.New("state: database is locked") }
	if _, err := e.Sync(t.Context(), h.doc, surgeApproval(h, ids, 4)); err != nil {
		t.Fatal(err)
	}
	h.wantUnits(contracts[4], h.svcIntercept, 28)
	var rec surgeVerdict
	if _, err := h.db.Snapshot(snapshotSurge, &rec); err != nil || len(rec.Held) != 4 {
		t.Errorf("surge record after a pass that could not read it = %+v (%v), want the 4 lines held before it (cust-e's no longer surges)", rec, err)
	}
	// 3 of 8 lines surge now, too few to surge alone: the record holds them.
	res := h.sync(PassOptions{})
	for i := 5; i < 8; i++ {
		h.wantUnits(contracts[i], h.svcIntercept, int64(10+i))
	}
	if res.Run.Held != 3 {
		t.Errorf("run = %+v, want the 3 lines not approved held", res.Run)
	}
}

// The surge guard's record (ReadSurgeRecord, which the status page shows)
// gives the review code a pass over all customers computes: after lines
// were approved one by one in passes for one customer (whose plans do not
// give a code), the last full pass's code is stale and the record's is
// the next pass's; lines of a customer the last pass could not read stay
// held, listed apart and outside the code, as that pass's code leaves them.
func TestReadSurgeRecord_followsApprovals(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	ids, _ := surgeCustomers(h, 8)
	svc := strconv.FormatInt(h.svcIntercept, 10)
	surgeUsage(h, ids, 2, nil)
	res := h.sync(PassOptions{})
	rec, err := ReadSurgeRecord(h.db)
	if err != nil || rec == nil || res.Plan.Surge == nil || rec.Review != res.Plan.Surge.Review || rec.Lines != 8 || len(rec.Held) != 8 || rec.Period != "2026-11" {
		t.Fatalf("record = %+v (%v), want the 8 lines and the review code of the pass's plan %+v", rec, err, res.Plan.Surge)
	}
	if l := rec.Held[2]; l != (SurgeLine{CustomerID: "cust-c", ServiceID: svc, Current: 12, Desired: 24}) {
		t.Errorf("record's third line = %+v, want cust-c's from 12 to 24", l)
	}
	first := rec.Review
	for i := range 2 {
		units := int64(2 * (10 + i))
		h.sync(PassOptions{Customer: ids[i], Approve: true, ApproveService: svc, ApproveUnits: &units})
	}
	plan, err := h.engine().Plan(t.Context(), h.doc, PassOptions{})
	if err != nil || plan.Surge == nil {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	if rec, err = ReadSurgeRecord(h.db); err != nil || rec == nil || rec.Review != plan.Surge.Review || rec.Review == first || rec.Lines != 6 {
		t.Errorf("record after 2 approvals = %+v (%v), want the 6 lines and the next pass's code %s, not %s", rec, err, plan.Surge.Review, first)
	}

	// A customer that fails: its line stays held, outside the code.
	m, _ := h.doc.Customer("file", ids[7])
	broken := m
	broken.ContractID = "99999999"
	h.doc.PutCustomer(broken)
	res = h.sync(PassOptions{})
	if rec, err = ReadSurgeRecord(h.db); err != nil || rec == nil || res.Plan.Surge == nil || rec.Review != res.Plan.Surge.Review || rec.Lines != 5 ||
		len(rec.Undecided) != 1 || rec.Undecided[0].CustomerID != ids[7] {
		t.Errorf("record with %s failing = %+v (%v), want 5 lines with the pass's code %+v and %s's apart", ids[7], rec, err, res.Plan.Surge, ids[7])
	}
	if plan, err = h.engine().Plan(t.Context(), h.doc, PassOptions{}); err != nil || plan.Surge == nil || plan.Surge.Review != rec.Review {
		t.Errorf("plan = %+v (%v), want the record's code %s", plan.Surge, err, rec.Review)
	}
}
