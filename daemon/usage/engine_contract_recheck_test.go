package usage

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A contract moved to another company in the PSA within the day its
// record is kept (checkContractEnds reads it once a day) is read again
// before the pass writes to it, and its customer fails as stale: Acme's
// units never land on the contract that now is Globex's. A pass that
// writes nothing reads no contract again. Kaseya BMS is not read again
// (see recheckContracts): its contracts' reads cost more than its writes.
func TestEngineSystems_contractMovedWithinTheDayIsNotWritten(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			a, _ := h.doc.Customer("file", "cust-a")
			b, _ := h.doc.Customer("file", "cust-b")
			contractRead := func(r psatest.Request) bool {
				p := strings.ToLower(r.Path)
				switch sys {
				case psa.SystemAutotask:
					return strings.Contains(p, "/contracts/query")
				default:
					return r.Method == http.MethodGet && strings.HasSuffix(p, "/finance/agreements")
				}
			}
			pass := func(at time.Time, usageA, usageB int) int {
				t.Helper()
				h.writeUsage("cust-a,Acme,CIXA-MSP,"+strconv.Itoa(usageA), "cust-b,Globex,CIXA-MSP,"+strconv.Itoa(usageB))
				h.sim.ResetRequests()
				e := h.engineAt(at, &ContractTerms{})
				if _, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, r := range h.sim.Requests() {
					if contractRead(r) {
						n++
					}
				}
				return n
			}
			pass(etNow, 5, 3)
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Fatalf("first pass: cust-a = %s (%q), want a success", cs.Result, cs.Error)
			}
			// An hour later, nothing changes: no contract is read again.
			if n := pass(etNow.Add(time.Hour), 5, 3); n != 0 {
				t.Errorf("a pass that writes nothing read contracts %d times, want none", n)
			}

			switch sys {
			case psa.SystemAutotask:
				h.sim.Autotask().SetContractCompany(mustParse(t, a.ContractID), mustParse(t, b.CompanyID))
			default:
				h.sim.ConnectWise().SetAgreementCompany(mustParse(t, a.ContractID), mustParse(t, b.CompanyID))
			}
			// Two hours later, within the day the terms are kept: both
			// customers' usage changes.
			if n := pass(etNow.Add(2*time.Hour), 6, 4); n == 0 {
				t.Error("a pass that writes read no contract again: the test proves nothing")
			}
			cs := h.status("cust-a")
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "contract "+a.ContractID+" belongs to company "+b.CompanyID+", not "+a.CompanyID) ||
				!strings.Contains(cs.Hint, "map customer file/cust-a to an active recurring service contract of its company and re-run terraform apply") {
				t.Errorf("cust-a = %s (%q, hint %q), want failed: its contract is Globex's now", cs.Result, cs.Error, cs.Hint)
			}
			if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
				t.Errorf("cust-b = %s (%q), want a success", cs.Result, cs.Error)
			}
			if got := h.writes(); got != 1 {
				t.Errorf("%d writes, want cust-b's only", got)
			}
			h.wantUnits(a.ContractID, h.svcIntercept, 5)
			h.wantUnits(b.ContractID, h.svcIntercept, 4)
		})
	}
}

// On Autotask, whose writes start while the pass still reads (pass.early),
// the contracts written to are read again 500 at a time as the pass
// decides: a contract moved in the first 500 and one in the rest both fail
// their customers, nothing is written to them, and the 600 contracts cost
// two queries.
func TestEngineAutotask_contractsWrittenToAreReadAgainInBatches(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	const n = 600
	customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
	if res := h.syncAt(etNow, usageRows(customers, func(int) int { return 0 })...); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want a success", res.Run)
	}
	moved := []int{10, 590}
	for _, i := range moved {
		h.sim.Autotask().SetContractCompany(mustParse(t, customers[i].ContractID), mustParse(t, customers[i+1].CompanyID))
	}
	res := h.syncAt(etNow.Add(time.Hour), usageRows(customers, func(int) int { return 1 })...)
	queries := 0
	for _, r := range h.sim.Requests() {
		if strings.HasSuffix(strings.ToLower(r.Path), "/contracts/query") {
			queries++
		}
	}
	if queries != 2 {
		t.Errorf("the pass sent %d contract queries, want 2 (600 contracts, 500 a query)", queries)
	}
	if got, want := res.Run.Updated, 2*(n-len(moved)); got != want {
		t.Errorf("%d lines updated, want %d", got, want)
	}
	for _, i := range moved {
		cm := customers[i]
		cs := h.status(cm.CustomerID)
		if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "belongs to company "+customers[i+1].CompanyID) {
			t.Errorf("%s = %s (%q), want failed: its contract is another company's", cm.CustomerID, cs.Result, cs.Error)
		}
		h.wantUnits(cm.ContractID, h.svcIntercept, int64(2+i%7))
	}
	h.wantUnits(customers[11].ContractID, h.svcIntercept, int64(2+11%7+1))
}

// TestEngineAutotask_settlingLineOfARecheckedContractIsReportedFailed: a
// customer whose updates wait for its contract's record to be read again
// (recheckBatch), and whose line the writer then refuses (an earlier write
// to it is still settling), is reported failed with the writer's reason,
// although the plan's changes grew past their array while it waited (the
// customers' lines without usage add changes the usage did not count).
func TestEngineAutotask_settlingLineOfARecheckedContractIsReportedFailed(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	const n = 600
	customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
	if res := h.syncAt(etNow, usageRows(customers, func(int) int { return 0 })...); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want a success", res.Run)
	}

	// An hour later, cust-0000's write of 3 to its Intercept line has
	// lost its answer and settles until after the next pass.
	later := etNow.Add(time.Hour)
	run, err := h.db.BeginRun(state.Run{Trigger: TriggerSchedule, Started: later.Add(-time.Minute),
		Finished: later.Add(-30 * time.Second), Result: state.RunPartial})
	if err != nil {
		t.Fatal(err)
	}
	first := customers[0]
	if _, err := h.db.OpenIntent(state.Intent{RunID: run.ID, System: psa.SystemAutotask, Source: "file", CustomerID: first.CustomerID,
		ContractID: first.ContractID, ServiceID: h.svcIntercept, Before: 2, After: 3, BeforeKnown: true,
		EffectiveDate: etPeriodDay, Created: later.Add(-50 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	// The first 500 customers' Intercept usage rises by one, which
	// fills a batch of contracts to read again; every customer reports
	// CIXA-MSP only, and keeps its MDR line.
	const rising = readChunk
	rows := make([]string, 0, n)
	for i, cm := range customers {
		q := 2 + i%7
		if i < rising {
			q++
		}
		rows = append(rows, cm.CustomerID+","+cm.CustomerName+",CIXA-MSP,"+strconv.Itoa(q))
	}
	res := h.syncAt(later, rows...)

	c := etFindChange(res.Plan, first.CustomerID, mustParse(t, h.svcIntercept))
	if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "may still arrive") {
		t.Errorf("cust-0000's Intercept line = %+v, want failed: its earlier write may still arrive", c)
	}
	if cs := h.status(first.CustomerID); cs.Result != state.CustomerFailed {
		t.Errorf("status of cust-0000 = %s (%q), want failed", cs.Result, cs.Error)
	}
	h.wantUnits(first.ContractID, h.svcIntercept, 2)
	h.wantUnits(customers[1].ContractID, h.svcIntercept, 4)
	if got := res.Run.Updated; got != rising-1 {
		t.Errorf("%d lines updated, want %d (the Intercept lines of cust-0001 to cust-0499)", got, rising-1)
	}
}

// TestEngineAutotask_recheckSavesTermsOnlyWhenARecordChanged: the re-read
// of the contracts a pass writes to does not rewrite the terms' snapshot
// (every mapped contract) when the records are as the day's read found
// them, and does when one changed, so that a process that restores it
// goes by the new record.
func TestEngineAutotask_recheckSavesTermsOnlyWhenARecordChanged(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	customers := h.manyCustomers(3, func(i int) (string, string) { return addSysContract(h, i) })
	stored := func() map[string]storedTerm {
		t.Helper()
		var terms []storedTerm
		if ok, err := h.db.Snapshot(snapshotContractTerms, &terms); err != nil || !ok {
			t.Fatalf("terms snapshot: %v (stored: %t)", err, ok)
		}
		out := map[string]storedTerm{}
		for _, st := range terms {
			out[st.Ct.ID] = st
		}
		return out
	}
	h.syncAt(etNow, usageRows(customers, func(int) int { return 0 })...)
	h.syncAt(etNow.Add(time.Hour), usageRows(customers, func(int) int { return 1 })...)
	for _, cm := range customers {
		if st := stored()[cm.ContractID]; !st.ReadAt.Equal(etNow) {
			t.Errorf("contract %s stored as read at %v, want %v: a re-read that found the same records rewrote the snapshot", cm.ContractID, st.ReadAt, etNow)
		}
	}

	h.sim.Autotask().SetContractCompany(mustParse(t, customers[0].ContractID), mustParse(t, customers[1].CompanyID))
	h.syncAt(etNow.Add(2*time.Hour), usageRows(customers, func(int) int { return 2 })...)
	if st := stored()[customers[0].ContractID]; st.Ct.CompanyID != customers[1].CompanyID {
		t.Errorf("contract %s stored with company %s, want %s: the re-read found it moved", customers[0].ContractID, st.Ct.CompanyID, customers[1].CompanyID)
	}
}

// TestSameRecord_everyField fails when psa.Contract gains a field that
// sameRecord does not compare.
func TestSameRecord_everyField(t *testing.T) {
	if n := reflect.TypeFor[psa.Contract]().NumField(); n != 11 {
		t.Errorf("psa.Contract has %d fields, sameRecord compares 11: compare the new ones", n)
	}
	a := psa.Contract{ID: "1", CompanyID: "2", Name: "n", Type: "t", Status: "s", Active: true, Recurring: true, BillingCycle: "b",
		StartDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), EndDate: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}
	b := a
	b.StartDate = a.StartDate.In(time.FixedZone("x", 3600))
	if !sameRecord(a, b) {
		t.Error("sameRecord = false for the same instants in two zones")
	}
	b.CompanyInactive = true
	if sameRecord(a, b) {
		t.Error("sameRecord = true for records that differ in CompanyInactive")
	}
}

// engineAt builds an engine of the harness whose clock stands at at, with
// terms for the contract terms it keeps: &h.terms to share them with the
// harness's other passes, as one process does, or &ContractTerms{} for a
// process that starts with none.
func (h *sysHarness) engineAt(at time.Time, terms *ContractTerms) *Engine {
	h.t.Helper()
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		h.t.Fatal(err)
	}
	return NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
		Location: time.UTC, Now: func() time.Time { return at }, Failing: &h.failing, Terms: terms})
}

// syncAt writes rows as the usage and runs a pass at at, its requests
// counted from the start.
func (h *sysHarness) syncAt(at time.Time, rows ...string) *Result {
	h.t.Helper()
	h.writeUsage(rows...)
	h.sim.ResetRequests()
	res, err := h.engineAt(at, &h.terms).Sync(h.t.Context(), h.doc, PassOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}
