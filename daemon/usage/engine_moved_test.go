package usage

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngineSystems_movedCustomerNotBilledTwice: a customer's mapping moves
// from contract A to contract C (contract_id changed, not a renewal),
// while A still bills the line of 42 that psa-syncd set on it. On every
// PSA, the plan and the pass hold the line they would add on C
// (HoldMoved), naming A, its units and how to release it, rather than bill
// the usage on both; a line psa-syncd set to 0 on A since (MDR) is added on
// C as before. A blanket approval does not release the hold; an approval
// of the line adds it, and the next pass writes nothing and holds nothing.
func TestEngineSystems_movedCustomerNotBilledTwice(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(3, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,10")
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
			if res := h.sync(PassOptions{}); res.Run.Updated != 1 {
				t.Fatalf("second pass = %+v, want 1 updated (MDR 3 -> 0)", res.Run)
			}

			// The mapping moves to contract C of the same company.
			a, _ := h.doc.Customer("file", "cust-a")
			moved := h.addContract(a.CompanyID, "Acme Other Services", time.Time{}, time.Time{})
			a.ContractID = moved
			h.doc.PutCustomer(a)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,10")

			approve := fmt.Sprintf("sync --approve --customer cust-a --service %s --units 42 --period 2026-11", h.svcIntercept)
			plan := h.plan()
			c := sysFindChange(plan, h.svcIntercept)
			if c == nil || c.ContractID != moved || c.Action != ActionHeld || c.Hold() != HoldMoved || !c.Approvable() ||
				!strings.Contains(c.Reason, "psa-syncd set this service to 42 units on contract "+h.contractA+" for this customer from 2026-11-01 (run ") ||
				!strings.Contains(c.Reason, "set the line on contract "+h.contractA+" to 0 or end contract "+h.contractA) || !strings.Contains(c.Reason, approve) {
				t.Errorf("plan's Intercept change = %+v, want held (%s) on %s naming the 42 units on %s and %q", c, HoldMoved, moved, h.contractA, approve)
			}
			if c := sysFindChange(plan, h.svcMDR); c == nil || c.Action != ActionUpdate || c.Desired != 5 {
				t.Errorf("plan's MDR change = %+v, want an update to 5 (psa-syncd set MDR on %s to 0)", c, h.contractA)
			}

			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			if res.Run.Held != 1 || res.Run.Updated != 1 {
				t.Errorf("pass after the move = %+v, want 1 held and 1 updated (MDR)", res.Run)
			}
			if got, ok := h.units(moved, h.svcIntercept); ok && got != 0 {
				t.Errorf("units of Intercept on %s = %d, want no line: %s still bills 42", moved, got, h.contractA)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			h.wantUnits(moved, h.svcMDR, 5)
			if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, "next_contract_id") || !strings.Contains(cs.Hint, approve) {
				t.Errorf("status = %+v, want held with a hint naming next_contract_id and %q", cs, approve)
			}

			// An approval of every held line of the customer does not
			// release it.
			h.wantBlanketApprovalRefused()
			// The operator set A's line to 0 by hand and approves the line.
			if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: h.svcIntercept}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("approval of the line = %+v, want it added", res.Run)
			}
			h.wantUnits(moved, h.svcIntercept, 42)
			h.sim.ResetRequests()
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 0 || h.writes() != 0 {
				t.Errorf("pass after the approval = %+v (%d writes), want nothing held or written", res.Run, h.writes())
			}
		})
	}
}

// TestEngineAutotask_renewalNotHeldAsMoved: a renewal is not a move. When
// the renewal (next_contract_id) takes over, its lines are added although
// psa-syncd's lines on contract_id are in force; once the operator moves
// the renewal into contract_id (the old contract no mapping names, ended
// as the kept contract terms say), a service whose usage comes back is
// added to the renewal, although psa-syncd's line of it on the old
// contract was never set to 0.
func TestEngineAutotask_renewalNotHeldAsMoved(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 15, 10, 0, 0, 0, time.UTC)
	h := newSysHarness(t, psa.SystemAutotask, psatest.WithClock(func() time.Time { return now }))
	at := h.sim.Autotask()
	a, _ := h.doc.Customer("file", "cust-a")
	old := h.addContract(a.CompanyID, "Acme 2026", day(2026, 1, 1), day(2026, 12, 31))
	renewal := h.addContract(a.CompanyID, "Acme 2027", day(2027, 1, 1), day(2027, 12, 31))
	a.ContractID, a.NextContractID = old, renewal
	h.doc.PutCustomer(a)

	pass := func(label string, rows ...string) *Result {
		t.Helper()
		h.writeUsage(rows...)
		e := h.engineAt(now, &h.terms)
		res, err := e.Sync(t.Context(), h.doc, PassOptions{})
		if err != nil {
			t.Fatalf("%s: Sync: %v", label, err)
		}
		if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded || res.Run.Held != 0 {
			t.Fatalf("%s: cust-a = %s (%q, hint %q), %d held; want succeeded, nothing held", label, cs.Result, cs.Error, cs.Hint, res.Run.Held)
		}
		return res
	}
	units := func(contract, service string, on time.Time) int64 {
		n, _ := at.Units(mustParse(t, contract), mustParse(t, service), on)
		return n
	}

	pass("december", "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3")
	now = time.Date(2027, time.January, 1, 2, 0, 0, 0, time.UTC)
	pass("1 january: the renewal takes over", "cust-a,Acme,CIXA-MSP,7")
	if got := units(renewal, h.svcIntercept, day(2027, 1, 15)); got != 7 {
		t.Errorf("1 january: Intercept on the renewal = %d, want 7", got)
	}

	a.ContractID, a.NextContractID = renewal, ""
	h.doc.PutCustomer(a)
	now = time.Date(2027, time.January, 2, 2, 0, 0, 0, time.UTC)
	pass("2 january: the renewal moved into contract_id", "cust-a,Acme,CIXA-MSP,7", "cust-a,Acme,MDR,4")
	if got := units(renewal, h.svcMDR, day(2027, 1, 15)); got != 4 {
		t.Errorf("2 january: MDR on the renewal = %d, want 4", got)
	}
	if got := units(old, h.svcMDR, day(2026, 12, 15)); got != 3 {
		t.Errorf("MDR on the old contract in December = %d, want 3 as set", got)
	}
}

// TestEngineKaseyaBMS_renewalNotHeldAsMovedAfterRestart: on Kaseya BMS,
// once the operator moves the renewal into contract_id, the old contract's
// end date, as the day's read found it while it was mapped, is what tells
// a renewal from a move (movedLine). It is kept in the state database as
// long as psa-syncd's line there is above 0, not 35 days: a service whose
// usage comes back to the renewal 42 days later, in a process started
// then, is added with no hold and no read of the old contract (three
// requests, and a hold at every pass where its record cannot be read).
func TestEngineKaseyaBMS_renewalNotHeldAsMovedAfterRestart(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 15, 10, 0, 0, 0, time.UTC)
	h := newSysHarness(t, psa.SystemKaseyaBMS, psatest.WithClock(func() time.Time { return now }))
	k := h.sim.KaseyaBMS()
	a, _ := h.doc.Customer("file", "cust-a")
	account := int(mustParse(t, a.CompanyID))
	old := fmt.Sprint(k.AddContract(psatest.KaseyaBMSContract{ID: 770001, AccountID: account, Name: "Acme 2026", StartDate: day(2026, 1, 1), EndDate: day(2026, 12, 31)}))
	renewal := fmt.Sprint(k.AddContract(psatest.KaseyaBMSContract{ID: 770002, AccountID: account, Name: "Acme 2027", StartDate: day(2027, 1, 1), EndDate: day(2027, 12, 31)}))
	a.ContractID, a.NextContractID = old, renewal
	h.doc.PutCustomer(a)
	// pass runs a pass at now; restarted runs it in a new process.
	pass := func(label string, rows ...string) *Result {
		t.Helper()
		res := h.syncAt(now, rows...)
		if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded || res.Run.Held != 0 {
			t.Fatalf("%s: cust-a = %s (%q, hint %q), %d held; want succeeded, nothing held", label, cs.Result, cs.Error, cs.Hint, res.Run.Held)
		}
		return res
	}
	restarted := func(label string, rows ...string) *Result {
		t.Helper()
		h.terms = ContractTerms{}
		return pass(label, rows...)
	}

	pass("december", "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3")
	now = time.Date(2027, time.January, 1, 2, 0, 0, 0, time.UTC)
	pass("1 january: the renewal takes over", "cust-a,Acme,CIXA-MSP,7")
	a.ContractID, a.NextContractID = renewal, ""
	h.doc.PutCustomer(a)
	now = time.Date(2027, time.January, 2, 2, 0, 0, 0, time.UTC)
	pass("2 january: the renewal moved into contract_id", "cust-a,Acme,CIXA-MSP,7")

	// 42 days later, a new process; then another an hour after it, whose
	// state database the first one saved.
	now = now.Add(42 * 24 * time.Hour)
	restarted("a process started 42 days later", "cust-a,Acme,CIXA-MSP,7")
	now = now.Add(time.Hour)
	// The old contract's record can no longer be read (deleted, or out
	// of the API user's sight): a read would not find it ended.
	bulk, ok := h.be.(psa.BulkReader)
	if !ok {
		t.Fatal("Kaseya BMS's backend reads no records in bulk")
	}
	h.be = recordHidden{h.be, bulk, old}
	h.terms = ContractTerms{}
	res := h.syncAt(now, "cust-a,Acme,CIXA-MSP,7", "cust-a,Acme,MDR,4")
	if res.Run.Updated != 1 || res.Run.Held != 0 {
		t.Errorf("MDR's usage back, in a process started an hour after that: %+v, want MDR added to the renewal, nothing held", res.Run)
	}
	if n := h.requestsNaming(old); n != 0 {
		t.Errorf("MDR's usage back: %d requests named the old contract %s, want none (its end date kept)", n, old)
	}
	n, _ := k.Units(int(mustParse(t, renewal)), int(mustParse(t, h.svcMDR)), now)
	if n != 4 {
		t.Errorf("MDR on the renewal = %d, want 4", n)
	}
}

// setByHand sets, out of band, the units of a line on every simulator, as
// an operator does in the PSA: an Autotask adjustment, a ConnectWise
// addition's quantity, a Kaseya BMS line posted by hand.
func (h *sysHarness) setByHand(contract, service string, units int64) {
	h.t.Helper()
	switch h.system {
	case psa.SystemAutotask:
		h.sim.Autotask().SetUnits(mustParse(h.t, contract), mustParse(h.t, service), units, etPeriodDay)
	case psa.SystemConnectWise:
		cw := h.sim.ConnectWise()
		for _, a := range cw.Additions(mustParse(h.t, contract)) {
			if a.ProductID == mustParse(h.t, service) {
				cw.SetQuantity(a.ID, float64(units))
			}
		}
	default:
		h.sim.KaseyaBMS().AddLine(int(mustParse(h.t, contract)), int(mustParse(h.t, service)), int(units), etPeriodDay)
	}
	h.wantUnits(contract, service, units)
}

// TestEngineSystems_movedBackNotBilledTwice: a customer moved from contract
// A to C, whose line on C the operator approved after setting A's line to
// 0 by hand, is moved back to A. A's line exists (at 0 as read, or, on
// Kaseya BMS, at the 42 psa-syncd's ledger last set), so the pass would
// raise it, not add it, while C still bills: on every PSA the raise is held
// (HoldMoved) naming C, until an approval of that line. Rises of the line
// psa-syncd set last (C after the approval, A after the move back's
// approval) are not held for the contract the customer left.
func TestEngineSystems_movedBackNotBilledTwice(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(2, "cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")

			a, _ := h.doc.Customer("file", "cust-a")
			moved := h.addContract(a.CompanyID, "Acme Other Services", time.Time{}, time.Time{})
			a.ContractID = moved
			h.doc.PutCustomer(a)
			if res := h.sync(PassOptions{}); res.Run.Held != 1 {
				t.Fatalf("pass after the move to %s = %+v, want the line held", moved, res.Run)
			}
			h.setByHand(h.contractA, h.svcIntercept, 0)
			if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: h.svcIntercept}); res.Run.Updated != 1 {
				t.Fatalf("approval of the line on %s = %+v, want it added", moved, res.Run)
			}
			h.wantUnits(moved, h.svcIntercept, 42)
			// A rise of the line on C, which psa-syncd set after A's:
			// not held.
			h.writeUsage("cust-a,Acme,CIXA-MSP,44", "cust-b,Globex,CIXA-MSP,10")
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Fatalf("rise on %s = %+v, want 1 updated, nothing held", moved, res.Run)
			}
			h.wantUnits(moved, h.svcIntercept, 44)

			// The mapping moves back to A, while C still bills 44.
			a.ContractID = h.contractA
			h.doc.PutCustomer(a)
			h.writeUsage("cust-a,Acme,CIXA-MSP,45", "cust-b,Globex,CIXA-MSP,10")
			approve := fmt.Sprintf("sync --approve --customer cust-a --service %s --units 45 --period 2026-11", h.svcIntercept)
			plan := h.plan()
			c := sysFindChange(plan, h.svcIntercept)
			if c == nil || c.ContractID != h.contractA || c.Action != ActionHeld || c.Hold() != HoldMoved || !c.Approvable() ||
				!strings.Contains(c.Reason, "psa-syncd set this service to 44 units on contract "+moved+" for this customer from 2026-11-01 (run ") ||
				!strings.Contains(c.Reason, "raising this line from ") ||
				!strings.Contains(c.Reason, "set the line on contract "+moved+" to 0 or end contract "+moved) || !strings.Contains(c.Reason, "raise this one with "+approve) {
				t.Errorf("plan's change after the move back = %+v, want held (%s) on %s naming the 44 units on %s and %q", c, HoldMoved, h.contractA, moved, approve)
			}
			h.sim.ResetRequests()
			if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 0 || h.writes() != 0 {
				t.Errorf("pass after the move back = %+v (%d writes), want the line held, nothing written", res.Run, h.writes())
			}
			h.wantUnits(moved, h.svcIntercept, 44)
			if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, approve) {
				t.Errorf("status = %+v, want held with a hint naming %q", cs, approve)
			}
			h.wantBlanketApprovalRefused()

			// The operator set C's line to 0 by hand and approves A's.
			h.setByHand(moved, h.svcIntercept, 0)
			if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: h.svcIntercept}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("approval of the line = %+v, want it written", res.Run)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 45)
			h.writeUsage("cust-a,Acme,CIXA-MSP,47", "cust-b,Globex,CIXA-MSP,10")
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("rise on %s after the approval = %+v, want 1 updated, nothing held", h.contractA, res.Run)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 47)
		})
	}
}

// requestsNaming counts the requests the simulator received that name one
// of ids (in the path, the query or the body).
func (h *sysHarness) requestsNaming(ids ...string) int {
	h.t.Helper()
	re := regexp.MustCompile(`\b(` + strings.Join(ids, "|") + `)\b`)
	n := 0
	for _, r := range h.sim.Requests() {
		q, _ := url.QueryUnescape(r.RawQuery)
		if re.MatchString(r.Path) || re.MatchString(q) || re.Match(r.Body) {
			n++
		}
	}
	return n
}

// moveTo maps customer to a new contract of its company and returns it.
// wantBlanketApprovalRefused approves every held line of cust-a
// (Approve alone) and checks that its one held line stays held: the
// holds that need an operator's word on another line take only an
// approval of that line.
func (h *sysHarness) wantBlanketApprovalRefused() {
	h.t.Helper()
	if res := h.sync(PassOptions{Approve: true, Customer: "cust-a"}); res.Run.Held != 1 || res.Run.Updated != 0 {
		h.t.Errorf("blanket approval = %+v, want the line still held", res.Run)
	}
}

func (h *sysHarness) moveTo(customer, name string) string {
	h.t.Helper()
	cm, _ := h.doc.Customer("file", customer)
	cm.ContractID = h.addContract(cm.CompanyID, name, time.Time{}, time.Time{})
	h.doc.PutCustomer(cm)
	return cm.ContractID
}

// addContract adds a contract (an Autotask contract, a ConnectWise
// agreement, a Kaseya BMS contract) of company to the harness's
// simulator; a zero start or end date leaves it open on that side.
func (h *sysHarness) addContract(company, name string, start, end time.Time) string {
	h.t.Helper()
	switch h.system {
	case psa.SystemAutotask:
		return etID(h.sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: mustParse(h.t, company), Name: name, StartDate: start, EndDate: end}))
	case psa.SystemConnectWise:
		return etID(h.sim.ConnectWise().AddAgreement(psatest.ConnectWiseAgreement{CompanyID: mustParse(h.t, company), Name: name, StartDate: start, EndDate: end}))
	default:
		return fmt.Sprint(h.sim.KaseyaBMS().AddContract(psatest.KaseyaBMSContract{AccountID: int(mustParse(h.t, company)), Name: name, StartDate: start, EndDate: end}))
	}
}

// TestEngineSystems_movedHoldReleasedByRead: on the PSAs that read lines
// (Autotask, ConnectWise), a pass that holds lines as HoldMoved reads the
// contracts the customers left, all at once: one read of their lines and
// one bulk read of their records (Autotask: 2 requests for both old
// contracts; ConnectWise: one additions read per agreement and one
// agreements read), and a pass that holds nothing reads none of them. A
// held line whose old line reads 0 (set by hand) is written with no
// approval, whether psa-syncd last set that line from 40 or added it; the
// other stays held. A line lowered by hand but not to 0, or whose read
// fails, stays held.
func TestEngineSystems_movedHoldReleasedByRead(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(2, "cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
			if res := h.sync(PassOptions{}); res.Run.Updated != 1 {
				t.Fatalf("second pass = %+v, want 1 updated", res.Run)
			}
			movedA, movedB := h.moveTo("cust-a", "Acme Other Services"), h.moveTo("cust-b", "Globex Other Services")

			wantReads := 2 // Autotask: the ContractServiceUnits query and the Contracts query
			if sys == psa.SystemConnectWise {
				wantReads = 3 // each agreement's additions, and one agreements read
			}
			h.sim.ResetRequests()
			if res := h.sync(PassOptions{}); res.Run.Held != 2 || res.Run.Updated != 0 {
				t.Fatalf("pass after the moves = %+v, want both lines held", res.Run)
			}
			if n := h.requestsNaming(h.contractA, h.contractB); n != wantReads {
				t.Errorf("pass holding 2 lines sent %d requests naming the old contracts, want %d", n, wantReads)
			}

			// A lowered by hand, not to 0: it still bills.
			h.setByHand(h.contractA, h.svcIntercept, 5)
			if res := h.sync(PassOptions{}); res.Run.Held != 2 || res.Run.Updated != 0 {
				t.Errorf("pass while %s reads 5 = %+v, want both lines held", h.contractA, res.Run)
			}

			// The read of A fails: nothing is released, though A reads 0.
			h.setByHand(h.contractA, h.svcIntercept, 0)
			fault := psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceUnits/query", BodyContains: h.contractA, Status: http.StatusBadRequest}
			if sys == psa.SystemConnectWise {
				base, err := url.Parse(h.sim.ConnectWiseBaseURL())
				if err != nil {
					t.Fatal(err)
				}
				fault = psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements/" + h.contractA + "/additions", Status: http.StatusBadRequest}
			}
			h.sim.AddFault(fault)
			plan := h.plan()
			c := sysFindChangeOf(plan, "cust-a", h.svcIntercept)
			if c == nil || c.Action != ActionHeld || c.Hold() != HoldMoved || !strings.Contains(c.Reason, "to tell whether that line still bills, failed") {
				t.Errorf("cust-a's change while the read of %s fails = %+v, want held, saying the read failed", h.contractA, c)
			}
			if res := h.sync(PassOptions{}); res.Run.Held != 2 || res.Run.Updated != 0 {
				t.Errorf("pass while the read of %s fails = %+v, want both lines held", h.contractA, res.Run)
			}
			h.sim.ClearFaults()

			// A reads 0 now: cust-a's line is added, cust-b's stays held.
			plan = h.plan()
			c = sysFindChangeOf(plan, "cust-a", h.svcIntercept)
			if c == nil || c.Action != ActionUpdate || c.Desired != 42 || !strings.Contains(c.Reason, "shows that line at 0 units at 2026-11-01, as read now") {
				t.Errorf("cust-a's change once %s reads 0 = %+v, want an update to 42 saying why", h.contractA, c)
			}
			if c := sysFindChangeOf(plan, "cust-b", h.svcIntercept); c == nil || c.Action != ActionHeld || c.Hold() != HoldMoved {
				t.Errorf("cust-b's change = %+v, want held", c)
			}
			if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 1 {
				t.Errorf("pass once %s reads 0 = %+v, want 1 updated, 1 held", h.contractA, res.Run)
			}
			h.wantUnits(movedA, h.svcIntercept, 42)
			h.wantUnits(h.contractA, h.svcIntercept, 0)
			h.wantUnits(h.contractB, h.svcIntercept, 10)
			if got, ok := h.units(movedB, h.svcIntercept); ok && got != 0 {
				t.Errorf("units of Intercept on %s = %d, want no line", movedB, got)
			}

			// B's line, which psa-syncd added and never changed, reads 0:
			// an old page from before that write would show no line.
			h.setByHand(h.contractB, h.svcIntercept, 0)
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("pass once %s reads 0 = %+v, want cust-b's line written", h.contractB, res.Run)
			}
			h.wantUnits(movedB, h.svcIntercept, 10)

			// Nothing is held: no contract the customers left is read.
			h.sim.ResetRequests()
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 0 {
				t.Errorf("pass holding nothing = %+v, want nothing held or written", res.Run)
			}
			if n := h.requestsNaming(h.contractA, h.contractB); n != 0 {
				t.Errorf("pass holding nothing sent %d requests naming the contracts left, want 0", n)
			}
		})
	}
}

// sysFindChangeOf returns the plan's change of customer's service.
func sysFindChangeOf(plan *Plan, customer, service string) *Change {
	for i := range plan.Changes {
		if c := &plan.Changes[i]; c.CustomerID == customer && c.ServiceID == service {
			return c
		}
	}
	return nil
}

// TestEngineAutotask_movedHoldReleasedOnceOldContractEnded: a line held
// because the customer's line on the contract it left still bills is
// written, with no approval, once the old contract's record, read by the
// pass, ended before the effective date; not while it ends on it. A line
// made by hand at 0 on the old contract, which psa-syncd then set, set to
// 0 again by hand, stays held until then: the read is the line as it was
// before psa-syncd's write, as an old page shows it.
func TestEngineAutotask_movedHoldReleasedOnceOldContractEnded(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxDecreasePercent = 0
	// MDR's line was made by hand, at 0, before psa-syncd set it.
	h.setByHand(h.contractA, h.svcMDR, 0)
	h.firstPass(3, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,10")
	moved := h.moveTo("cust-a", "Acme Other Services")
	h.setByHand(h.contractA, h.svcMDR, 0)
	if res := h.sync(PassOptions{}); res.Run.Held != 2 || res.Run.Updated != 0 {
		t.Fatalf("pass after the move = %+v, want both lines held", res.Run)
	}
	plan := h.plan()
	if c := sysFindChange(plan, h.svcMDR); c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, "as it was before psa-syncd set it") ||
		!strings.Contains(c.Reason, "let a later pass add it by itself: one that reads contract "+h.contractA+" ended before the effective date, or that line at 0 where") {
		t.Errorf("MDR's change = %+v, want held, saying that a read of 0 is not enough", c)
	}

	at := h.sim.Autotask()
	at.SetContractEndDate(mustParse(t, h.contractA), time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC))
	if res := h.sync(PassOptions{}); res.Run.Held != 2 || res.Run.Updated != 0 {
		t.Errorf("pass while %s ends on the effective date = %+v, want both lines held", h.contractA, res.Run)
	}
	at.SetContractEndDate(mustParse(t, h.contractA), time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC))
	plan = h.plan()
	if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionUpdate ||
		!strings.Contains(c.Reason, "but contract "+h.contractA+" ended on 2026-10-31 in Autotask, as read now, before the effective date 2026-11-01: not held") {
		t.Errorf("Intercept's change once %s ended = %+v, want an update saying why", h.contractA, c)
	}
	if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 2 {
		t.Errorf("pass once %s ended = %+v, want both lines written", h.contractA, res.Run)
	}
	h.wantUnits(moved, h.svcIntercept, 42)
	h.wantUnits(moved, h.svcMDR, 3)
}

// swapContracts maps cust-a and cust-b, tenants of one company, to
// contracts x and y of their own, syncs 42 and 10 units of Intercept
// there, and swaps the two mappings' contracts (cust-a to y, cust-b to x).
func (h *sysHarness) swapContracts() (x, y string) {
	h.t.Helper()
	b, _ := h.doc.Customer("file", "cust-b")
	a, _ := h.doc.Customer("file", "cust-a")
	b.CompanyID = a.CompanyID
	h.doc.PutCustomer(b)
	x, y = h.moveTo("cust-a", "Acme Endpoint"), h.moveTo("cust-b", "Acme Servers")
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Acme Servers,CIXA-MSP,10")
	if res := h.sync(PassOptions{}); res.Run.Updated != 2 {
		h.t.Fatalf("first pass = %+v, want 2 updated", res.Run)
	}
	a, _ = h.doc.Customer("file", "cust-a")
	b, _ = h.doc.Customer("file", "cust-b")
	a.ContractID, b.ContractID = y, x
	h.doc.PutCustomer(a)
	h.doc.PutCustomer(b)
	return x, y
}

// TestEngineSystems_movedContractsSwapped: two customers swap contracts
// in one apply, and the month's last pass is the first to see it. The
// line of the customer decided first (cust-a), which rises on the other's
// contract y while its own old line on x still bills, is written after
// the pass's other writes, once the pass has set x's line for cust-b: both
// lines are right for the month after that one pass (before, cust-a's was
// held for that pass, and y kept cust-b's 10 units for the month on
// Autotask and Kaseya BMS, with no hold left by the next month's pass).
// The plan and a dry run say so, and the pass sends one more write and no
// more reads than the pass that held the line.
func TestEngineSystems_movedContractsSwapped(t *testing.T) {
	t.Parallel()
	// The reads of the pass of the swap, after a plan (which read the
	// contracts' records and the services): the same as before this
	// version, when the pass held cust-a's line.
	reads := map[psa.System]int{psa.SystemAutotask: 5, psa.SystemConnectWise: 7, psa.SystemKaseyaBMS: 3}
	for _, sys := range sysSystems {
		for _, db := range []string{state.DriverSQLite, state.DriverPostgres} {
			t.Run(string(sys)+"/"+db, func(t *testing.T) {
				t.Parallel()
				h := newSysHarness(t, sys)
				if db == state.DriverPostgres {
					h.usePostgres()
				}
				h.pol.MaxDecreasePercent = 0
				x, y := h.swapContracts()
				h.clock = time.Date(2026, time.November, 30, 22, 0, 0, 0, time.UTC)

				plan := h.plan()
				c := sysFindChangeOf(plan, "cust-a", h.svcIntercept)
				if c == nil || c.ContractID != y || c.Action != ActionUpdate || c.Desired != 42 ||
					!strings.Contains(c.Reason, "but contract "+x+" is customer cust-b's now (its customer mapping names it): this pass writes this line after its other writes, once it has set that line for customer cust-b, and holds it (previous_contract) if it did not") {
					t.Errorf("plan's change of cust-a = %+v, want an update of %s to 42 after cust-b's line on %s", c, y, x)
				}
				if c := sysFindChangeOf(plan, "cust-b", h.svcIntercept); c == nil || c.ContractID != x || c.Action != ActionUpdate || c.Desired != 10 {
					t.Errorf("plan's change of cust-b = %+v, want an update of %s to 10", c, x)
				}
				h.sim.ResetRequests()
				if res := h.sync(PassOptions{DryRun: true}); res.Run.Held != 0 || res.Run.Updated != 2 || h.writes() != 0 {
					t.Errorf("dry run = %+v (%d writes), want both lines counted as updated, nothing written", res.Run, h.writes())
				}

				h.sim.ResetRequests()
				res := h.sync(PassOptions{})
				if res.Run.Held != 0 || res.Run.Updated != 2 || res.Run.Result != state.RunSuccess {
					t.Fatalf("pass of the swap = %+v, want both lines written", res.Run)
				}
				if got := len(h.sim.Requests()) - h.writes(); h.writes() != 2 || got != reads[sys] {
					t.Errorf("pass of the swap sent %d writes and %d other requests, want 2 and %d", h.writes(), got, reads[sys])
				}
				if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
					t.Errorf("cust-a's status = %+v, want succeeded", cs)
				}
				h.wantUnits(x, h.svcIntercept, 10)
				h.wantUnits(y, h.svcIntercept, 42)

				// The next month's first pass leaves November as it is.
				h.clock = time.Date(2026, time.December, 1, 2, 0, 0, 0, time.UTC)
				if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Failed != 0 {
					t.Errorf("December's first pass = %+v, want nothing held or failed", res.Run)
				}
				h.wantUnits(x, h.svcIntercept, 10)
				h.wantUnits(y, h.svcIntercept, 42)
			})
		}
	}
}

// TestEngineSystems_movedContractsSwappedOtherWriteFails: when the pass's
// write of the other customer's line on the contract left is refused, or
// gets no answer (the write's outcome is unknown), the line of the
// customer that left it is held as previous_contract, as before: written
// too, its usage would bill on both lines. Once the other write is
// settled, one pass writes both. An answer lost after the PSA applied the
// write: on Autotask and ConnectWise the client finds out (Autotask reads
// the line, ConnectWise's replace is sent again) and both lines are
// written; on Kaseya BMS the post waits for an operator, and the line
// stays held.
func TestEngineSystems_movedContractsSwappedOtherWriteFails(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		for _, mode := range []string{"refused", "unanswered", "answer_lost"} {
			for _, db := range []string{state.DriverSQLite, state.DriverPostgres} {
				t.Run(string(sys)+"/"+mode+"/"+db, func(t *testing.T) {
					t.Parallel()
					h := newSysHarness(t, sys)
					if db == state.DriverPostgres {
						h.usePostgres()
					}
					h.pol.MaxDecreasePercent = 0
					x, y := h.swapContracts()
					var fault psatest.Fault
					switch mode {
					case "refused":
						fault.Status = http.StatusBadRequest
					case "unanswered":
						fault.Drop = true
					default:
						fault.DropAfterHandling, fault.Times = true, 1
					}
					fault = contractWriteFault(h, fault, x)
					if sys == psa.SystemConnectWise {
						// x has the line: a PATCH of its addition.
						fault.Method, fault.Path = http.MethodPatch, fault.Path+"/*"
					}
					h.sim.AddFault(fault)

					res := h.sync(PassOptions{})
					if mode == "answer_lost" && sys != psa.SystemKaseyaBMS {
						if res.Run.Held != 0 || res.Run.Updated != 2 {
							t.Errorf("pass of the swap = %+v, want both lines written", res.Run)
						}
						h.wantUnits(x, h.svcIntercept, 10)
						h.wantUnits(y, h.svcIntercept, 42)
						return
					}
					if res.Run.Held != 1 || res.Run.Updated != 0 || res.Run.Failed != 1 {
						t.Errorf("pass of the swap = %+v, want cust-b's line failed and cust-a's held", res.Run)
					}
					c := sysFindChangeOf(res.Plan, "cust-a", h.svcIntercept)
					if c == nil || c.Action != ActionHeld || c.Hold() != HoldMoved ||
						!strings.Contains(c.Reason, "held for review, since contract "+x+", now customer cust-b's") ||
						strings.Contains(c.Reason, "this pass writes this line after its other writes") {
						t.Errorf("cust-a's change = %+v, want held as previous_contract, saying %s is cust-b's now", c, x)
					}
					if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, "which is another customer's contract now") {
						t.Errorf("cust-a's status = %+v, want held", cs)
					}
					h.wantUnits(y, h.svcIntercept, 10)
					if mode == "answer_lost" {
						h.wantUnits(x, h.svcIntercept, 10)
					} else {
						h.wantUnits(x, h.svcIntercept, 42)
					}

					h.sim.ClearFaults()
					res = h.sync(PassOptions{})
					if mode != "refused" && sys != psa.SystemConnectWise {
						// The intent of a write with no answer is settled by
						// a read once the read may show it (Autotask's can
						// lag its writes), or by an operator (Kaseya BMS).
						if res.Run.Held != 1 || res.Run.Updated != 0 {
							t.Errorf("pass after the write = %+v, want cust-a's line still held while cust-b's write is unsettled", res.Run)
						}
						h.wantUnits(y, h.svcIntercept, 10)
						return
					}
					if res.Run.Held != 0 || res.Run.Failed != 0 || res.Run.Updated != 2 {
						t.Errorf("pass after the failure = %+v, want both lines written", res.Run)
					}
					h.wantUnits(x, h.svcIntercept, 10)
					h.wantUnits(y, h.svcIntercept, 42)
				})
			}
		}
	}
}

// TestEngineSystems_movedContractsSwappedOtherNotWritten: the plan and the
// pass hold the line of the customer that left a contract the other
// customer's own line on which the pass does not set: that customer's usage
// is the same as the units there (nothing to write), or its line rises on
// the first customer's contract too (each waits for the other: written
// alone, either would leave a usage on two lines were the other's write to
// fail; an approval of one writes it, and the pass after it the other). A
// dry run says so too. Nothing is written.
func TestEngineSystems_movedContractsSwappedOtherNotWritten(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		for _, tc := range []struct {
			name  string
			usage []string
			held  int
		}{
			{"same", []string{"cust-a,Acme,CIXA-MSP,42", "cust-b,Acme Servers,CIXA-MSP,42"}, 1},
			{"both_rise", []string{"cust-a,Acme,CIXA-MSP,50", "cust-b,Acme Servers,CIXA-MSP,60"}, 2},
		} {
			t.Run(string(sys)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				h := newSysHarness(t, sys)
				h.pol.MaxDecreasePercent = 0
				x, y := h.swapContracts()
				h.writeUsage(tc.usage...)
				plan := h.plan()
				c := sysFindChangeOf(plan, "cust-a", h.svcIntercept)
				if c == nil || c.Action != ActionHeld || c.Hold() != HoldMoved || !strings.Contains(c.Reason, "held for review, since contract "+x+", now customer cust-b's") {
					t.Errorf("plan's change of cust-a = %+v, want held as previous_contract", c)
				}
				// Both rising, each waits for the other: the reasons say
				// how to go on.
				approveB := fmt.Sprintf("sync --approve --customer cust-b --service %s --units 60 --period 2026-11", h.svcIntercept)
				waits := "customer cust-b's line of this service on contract " + x + ", its contract now, rises too and waits for this one, so neither is written by itself"
				if got := c != nil && strings.Contains(c.Reason, waits) && strings.Contains(c.Reason, approveB); got != (tc.held == 2) {
					t.Errorf("plan's change of cust-a = %+v: says that both wait and how to approve = %v, want %v", c, got, tc.held == 2)
				}
				h.sim.ResetRequests()
				if res := h.sync(PassOptions{DryRun: true}); res.Run.Held != tc.held || res.Run.Updated != 0 {
					t.Errorf("dry run = %+v, want %d held and nothing to write", res.Run, tc.held)
				}
				if res := h.sync(PassOptions{}); res.Run.Held != tc.held || res.Run.Updated != 0 || h.writes() != 0 {
					t.Errorf("pass = %+v (%d writes), want %d held and nothing written", res.Run, h.writes(), tc.held)
				}
				if tc.held != 2 {
					return
				}
				// The approval of one writes it, and the pass after the
				// other.
				units := int64(60)
				if res := h.sync(PassOptions{Approve: true, Customer: "cust-b", ApproveService: h.svcIntercept, ApproveUnits: &units}); res.Run.Updated != 1 {
					t.Errorf("approval of cust-b's line = %+v, want it written", res.Run)
				}
				if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
					t.Errorf("pass after the approval = %+v, want cust-a's line written", res.Run)
				}
				h.wantUnits(x, h.svcIntercept, 60)
				h.wantUnits(y, h.svcIntercept, 50)
			})
		}
	}
}

// TestEngineKaseyaBMS_movedBackSameUsageHeld: on Kaseya BMS, whose lines
// psa-syncd cannot read, a customer moved A -> C (A's line set to 0 by
// hand, as the hold asked, and C's approved) and back to A with the same
// usage left A's line "unchanged" at the units psa-syncd's ledger says it
// set there, while C went on billing them: billed once, on a contract no
// mapping names, with nothing to tell; with less usage, A's line was
// "lowered" from those units, that is posted while C still bills: billed
// twice. Now A's line is held as previous_contract naming C and the
// approval that posts the units; that approval posts them to A, and the
// next pass leaves the line alone. A customer never moved is not held.
func TestEngineKaseyaBMS_movedBackSameUsageHeld(t *testing.T) {
	t.Parallel()
	for _, back := range []int64{42, 40} {
		t.Run(fmt.Sprint(back), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(2, "cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
			moved := h.moveTo("cust-a", "Acme Other Services")
			if res := h.sync(PassOptions{}); res.Run.Held != 1 {
				t.Fatalf("pass after the move to %s = %+v, want the line held", moved, res.Run)
			}
			h.setByHand(h.contractA, h.svcIntercept, 0)
			if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: h.svcIntercept}); res.Run.Updated != 1 {
				t.Fatalf("approval of the line on %s = %+v, want it added", moved, res.Run)
			}
			h.wantUnits(moved, h.svcIntercept, 42)

			// Back to A: psa-syncd's ledger says A has 42.
			a, _ := h.doc.Customer("file", "cust-a")
			a.ContractID = h.contractA
			h.doc.PutCustomer(a)
			h.writeUsage(fmt.Sprintf("cust-a,Acme,CIXA-MSP,%d", back), "cust-b,Globex,CIXA-MSP,10")
			approve := fmt.Sprintf("sync --approve --customer cust-a --service %s --units %d --period 2026-11", h.svcIntercept, back)
			plan := h.plan()
			c := sysFindChange(plan, h.svcIntercept)
			if c == nil || c.ContractID != h.contractA || c.Action != ActionHeld || c.Hold() != HoldMoved || !c.Approvable() ||
				!strings.Contains(c.Reason, "psa-syncd set this service to 42 units on contract "+moved+" for this customer from 2026-11-01 (run ") ||
				!strings.Contains(c.Reason, "Kaseya BMS cannot show whether it was set to 0 by hand since") ||
				!strings.Contains(c.Reason, "set the line on contract "+moved+" to 0 or end contract "+moved+" in Kaseya BMS, then post this one with "+approve) {
				t.Errorf("plan's change after the move back = %+v, want held (%s) on %s naming the 42 units on %s and %q", c, HoldMoved, h.contractA, moved, approve)
			}
			h.sim.ResetRequests()
			if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 0 || h.writes() != 0 {
				t.Errorf("pass after the move back = %+v (%d writes), want the line held, nothing written", res.Run, h.writes())
			}
			h.wantUnits(moved, h.svcIntercept, 42)
			if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, approve) {
				t.Errorf("status = %+v, want held with a hint naming %q", cs, approve)
			}
			h.wantBlanketApprovalRefused()

			// The operator ends C's line and approves A's: it is posted.
			h.setByHand(moved, h.svcIntercept, 0)
			units := back
			if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: h.svcIntercept, ApproveUnits: &units}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("approval of the line = %+v, want it posted", res.Run)
			}
			h.wantUnits(h.contractA, h.svcIntercept, back)
			h.sim.ResetRequests()
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 0 || h.writes() != 0 {
				t.Errorf("pass after the approval = %+v (%d writes), want nothing held or written", res.Run, h.writes())
			}
			// cust-b, never moved, is never held.
			if c := sysFindChangeOf(plan, "cust-b", h.svcIntercept); c == nil || c.Action != ActionUnchanged {
				t.Errorf("cust-b's change = %+v, want unchanged", c)
			}
		})
	}
}

// TestEngineKaseyaBMS_movedHoldReleasedOnceOldContractEnded: Kaseya BMS
// cannot read lines, but a pass that would hold a line as
// previous_contract reads the record of the contract the customer left
// (once a pass, only then): once it ended before the effective date, the
// held line is written with no approval; not while it ends on it. The
// same goes for a customer moved back with the same usage: its line is
// posted again once the contract it left ended. A pass that holds nothing
// reads no old contract.
func TestEngineKaseyaBMS_movedHoldReleasedOnceOldContractEnded(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.pol.MaxDecreasePercent = 0
	h.firstPass(2, "cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
	moved := h.moveTo("cust-a", "Acme Other Services")
	if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 0 {
		t.Fatalf("pass after the move = %+v, want the line held", res.Run)
	}
	plan := h.plan()
	if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionHeld ||
		!strings.Contains(c.Reason, "(or let a later pass add it by itself: one that reads contract "+h.contractA+" ended before the effective date)") {
		t.Errorf("change after the move = %+v, want held, saying that an end of %s releases it", c, h.contractA)
	}
	bms := h.sim.KaseyaBMS()
	bms.SetContractEndDate(int(mustParse(t, h.contractA)), time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC))
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 0 {
		t.Errorf("pass while %s ends on the effective date = %+v, want the line held", h.contractA, res.Run)
	}
	held := len(h.sim.Requests())
	bms.SetContractEndDate(int(mustParse(t, h.contractA)), time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC))
	plan = h.plan()
	if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionUpdate ||
		!strings.Contains(c.Reason, "but contract "+h.contractA+" ended on 2026-10-31 in Kaseya BMS, as read now, before the effective date 2026-11-01: not held") {
		t.Errorf("change once %s ended = %+v, want an update saying why", h.contractA, c)
	}
	if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
		t.Errorf("pass once %s ended = %+v, want the line written", h.contractA, res.Run)
	}
	h.wantUnits(moved, h.svcIntercept, 42)
	// Nothing held: no old contract read.
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 0 {
		t.Errorf("pass after = %+v, want nothing held or written", res.Run)
	}
	if n := len(h.sim.Requests()); n+3 != held {
		t.Errorf("a pass holding nothing sent %d requests, one holding the line %d: want 3 fewer (one contract read)", n, held)
	}

	// Moved back to A with the same usage, C set to 0 by hand (after A
	// ended): the line on A is held until C ends too, then posted again.
	bms.SetContractEndDate(int(mustParse(t, h.contractA)), time.Date(2026, time.December, 31, 0, 0, 0, 0, time.UTC))
	a, _ := h.doc.Customer("file", "cust-a")
	a.ContractID = h.contractA
	h.doc.PutCustomer(a)
	h.setByHand(h.contractA, h.svcIntercept, 0)
	if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 0 {
		t.Errorf("pass after the move back = %+v, want the line held", res.Run)
	}
	bms.SetContractEndDate(int(mustParse(t, moved)), time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC))
	if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
		t.Errorf("pass once %s ended = %+v, want the line posted again", moved, res.Run)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
}

// TestEngineKaseyaBMS_movedBackFromEndedContract: on Kaseya BMS, a
// customer moved A -> C (A's line set to 0 by hand, C's approved) is moved
// back to A with the same usage once C ended, as psa-syncd last read C's
// record: psa-syncd's ledger says A has those units, but A may have been
// set to 0 by hand, and C no longer bills them. The pass posts them to A
// again rather than leave the usage unbilled; once, the next pass leaves
// the line alone.
func TestEngineKaseyaBMS_movedBackFromEndedContract(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.pol.MaxDecreasePercent = 0
	h.firstPass(2, "cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
	moved := h.moveTo("cust-a", "Acme Other Services")
	if res := h.sync(PassOptions{}); res.Run.Held != 1 {
		t.Fatalf("pass after the move to %s = %+v, want the line held", moved, res.Run)
	}
	h.setByHand(h.contractA, h.svcIntercept, 0)
	if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: h.svcIntercept}); res.Run.Updated != 1 {
		t.Fatalf("approval of the line on %s = %+v, want it added", moved, res.Run)
	}
	// The day's read of C found it ended (the terms psa-syncd keeps).
	ct, ok := h.terms.get(psa.SystemKaseyaBMS, moved)
	if !ok {
		t.Fatalf("no terms kept for %s", moved)
	}
	ct.ct.EndDate = time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC)
	h.terms.put(psa.SystemKaseyaBMS, moved, ct)

	a, _ := h.doc.Customer("file", "cust-a")
	a.ContractID = h.contractA
	h.doc.PutCustomer(a)
	res := h.sync(PassOptions{})
	if c := sysFindChange(res.Plan, h.svcIntercept); res.Run.Updated != 1 || c == nil || c.Action != ActionUpdate ||
		!strings.Contains(c.Reason, "but contract "+moved+" ended on 2026-10-31, as psa-syncd last read it, before the effective date 2026-11-01: not held: written to contract "+h.contractA+" again at 42 units") {
		t.Errorf("pass after the move back = %+v, change %+v, want the line posted again, saying why", res.Run, c)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Updated != 0 || res.Run.Held != 0 || h.writes() != 0 {
		t.Errorf("next pass = %+v (%d writes), want nothing written or held", res.Run, h.writes())
	}
}

// TestEngineKaseyaBMS_movedHoldReleaseKeepsTheRecord: a line held as
// previous_contract on Kaseya BMS is released by the pass that reads the
// contract the customer left ended (three requests); psa-syncd keeps that
// read as the contract's terms, so that a later line of another service
// the customer had there (its usage back) is written with no request for
// that contract, in the same process and in one started after it (the
// state database's snapshot: `psa-syncd sync` is a process per pass).
func TestEngineKaseyaBMS_movedHoldReleaseKeepsTheRecord(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.pol.MaxDecreasePercent = 0
	h.firstPass(3, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,10")
	moved := h.moveTo("cust-a", "Acme Other Services")
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
	if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 0 {
		t.Fatalf("pass after the move = %+v, want the line held", res.Run)
	}
	h.sim.KaseyaBMS().SetContractEndDate(int(mustParse(t, h.contractA)), time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC))
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
		t.Fatalf("pass once %s ended = %+v, want the line written", h.contractA, res.Run)
	}
	if n := h.requestsNaming(h.contractA); n == 0 {
		t.Fatalf("pass once %s ended: no request named it, want its record read", h.contractA)
	}
	h.wantUnits(moved, h.svcIntercept, 42)

	// MDR's usage back: its line on the new contract would be held for
	// the one psa-syncd set on the old, which ended as read.
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,10")
	h.sim.ResetRequests()
	plan := h.plan()
	if c := sysFindChange(plan, h.svcMDR); c == nil || c.Action != ActionUpdate {
		t.Errorf("plan with MDR's usage back: change %+v, want an update", c)
	}
	if n := h.requestsNaming(h.contractA); n != 0 {
		t.Errorf("plan with MDR's usage back: %d requests named %s, want none (its record as read kept)", n, h.contractA)
	}
	h.terms = ContractTerms{}
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
		t.Errorf("pass with MDR's usage back, in a new process = %+v, want MDR written", res.Run)
	}
	if n := h.requestsNaming(h.contractA); n != 0 {
		t.Errorf("pass with MDR's usage back, in a new process: %d requests named %s, want none (its record as read kept in the state database)", n, h.contractA)
	}
	h.wantUnits(moved, h.svcMDR, 3)
}

// TestEngineKaseyaBMS_movedWhileAwaitingReview: a line whose post lost its
// answer awaits the operator's review (its intent open, nothing in the
// ledger). When the customer's mapping moves to another contract before
// the review, the pass does not post the line there: the post on the old
// contract may have reached BMS, and once resolved as posted both
// contracts would bill the usage. The line fails as awaiting review, in a
// pass as in a plan, naming the intent and how to resolve it; once the
// intent is resolved as posted, the line is held as any moved line;
// resolved as not posted, it is posted on the new contract.
func TestEngineKaseyaBMS_movedWhileAwaitingReview(t *testing.T) {
	t.Parallel()
	for _, posted := range []bool{true, false} {
		t.Run(fmt.Sprint("posted=", posted), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS,
				psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: bmsServicesPath, DropAfterHandling: true, Times: 1}))
			h.pol.WriteConcurrency = 1 // the first post (Acme's Intercept X) loses its answer
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
			h.sync(PassOptions{})
			open, _ := h.db.OpenIntents()
			if len(open) != 1 || open[0].ContractID != h.contractA || open[0].ServiceID != h.svcIntercept {
				t.Fatalf("open intents = %+v, want the one whose answer was lost", open)
			}

			moved := h.moveTo("cust-a", "Acme Other Services")
			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			c := sysFindChange(res.Plan, h.svcIntercept)
			if n := len(bmsLines(h, moved, h.svcIntercept)); n != 0 {
				t.Errorf("%d lines of Intercept X posted on %s while the post on %s awaits review, want none", n, moved, h.contractA)
			}
			if c == nil || c.ContractID != moved || c.Action != ActionFailed || !strings.Contains(c.Reason, "awaiting review") ||
				!strings.Contains(c.Reason, fmt.Sprintf("on contract %s effective 2026-11-01 (intent %d)", h.contractA, open[0].ID)) {
				t.Errorf("change after the move = %+v, want failed, awaiting review of intent %d on %s", c, open[0].ID, h.contractA)
			}
			if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, fmt.Sprintf("check contract %s", h.contractA)) ||
				!strings.Contains(cs.Hint, fmt.Sprintf("psa-syncd resolve -intent %d -posted", open[0].ID)) {
				t.Errorf("status of cust-a = %+v, want failed with the hint to resolve intent %d", cs, open[0].ID)
			}
			if p := h.plan(); sysFindChange(p, h.svcIntercept) == nil || sysFindChange(p, h.svcIntercept).Action != ActionFailed {
				t.Errorf("plan's change = %+v, want failed, awaiting review", sysFindChange(p, h.svcIntercept))
			}

			if _, err := h.engine().ResolveIntent(open[0].ID, posted, "checked in BMS"); err != nil {
				t.Fatal(err)
			}
			res = h.sync(PassOptions{})
			c = sysFindChange(res.Plan, h.svcIntercept)
			n := len(bmsLines(h, moved, h.svcIntercept))
			switch {
			case posted && (n != 0 || c == nil || c.Hold() != HoldMoved):
				t.Errorf("after resolving as posted: change = %+v, %d lines on %s, want held as moved and none", c, n, moved)
			case !posted && (n != 1 || c == nil || c.Action != ActionUpdate):
				t.Errorf("after resolving as not posted: change = %+v, %d lines on %s, want the line posted there", c, n, moved)
			}
		})
	}
}

// TestEngineConnectWise_movedWhileCreateUnseen: the answer to adding a
// ConnectWise addition is lost, and the reads cannot see the agreement's
// additions, so its intent stays open (unseenCreate) with nothing in the
// ledger. When the customer's mapping moves to another agreement meanwhile,
// the pass does not add the line there, in a plan as in a pass: the first
// addition is there and bills. Once the read sees it, the intent settles
// and the line is held as any moved line.
func TestEngineConnectWise_movedWhileCreateUnseen(t *testing.T) {
	t.Parallel()
	additions := "/" + psatest.DefaultConnectWiseCodebase + "apis/3.0/finance/agreements/*"
	h := newSysHarness(t, psa.SystemConnectWise,
		psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: additions, DropAfterHandling: true, Times: 1}))
	h.pol.SettleTime = 0
	cw := h.sim.ConnectWise()
	agreement := mustParse(t, h.contractA)
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	cw.HideAdditions(agreement, true)
	h.sync(PassOptions{})
	open, _ := h.db.OpenIntents()
	if len(open) != 1 {
		t.Fatalf("open intents = %+v, want the unseen create", open)
	}

	moved := h.moveTo("cust-a", "Acme Other Services")
	if c := sysFindChange(h.plan(), h.svcIntercept); c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, fmt.Sprintf("(intent %d)", open[0].ID)) {
		t.Errorf("plan's change after the move = %+v, want failed naming intent %d", c, open[0].ID)
	}
	res := h.sync(PassOptions{})
	if adds := cw.Additions(mustParse(t, moved)); len(adds) != 0 {
		t.Errorf("additions on %s = %+v while the addition on %s is unconfirmed, want none: both would bill", moved, adds, h.contractA)
	}
	c := sysFindChange(res.Plan, h.svcIntercept)
	if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, fmt.Sprintf("on contract %s effective 2026-11-01 (intent %d)", h.contractA, open[0].ID)) {
		t.Errorf("change after the move = %+v, want failed naming intent %d on %s", c, open[0].ID, h.contractA)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, fmt.Sprintf("psa-syncd resolve -intent %d", open[0].ID)) {
		t.Errorf("status of cust-a = %+v, want failed with the hint to resolve intent %d", cs, open[0].ID)
	}

	cw.HideAdditions(agreement, false)
	res = h.sync(PassOptions{})
	if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Hold() != HoldMoved {
		t.Errorf("change once the addition is seen = %+v, want held (%s)", c, HoldMoved)
	}
	if adds := cw.Additions(mustParse(t, moved)); len(adds) != 0 {
		t.Errorf("additions on %s = %+v, want none", moved, adds)
	}
}
