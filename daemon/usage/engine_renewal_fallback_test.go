package usage

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A customer with a renewal (next_contract_id) whose two records were read
// once is not failed by a later read that fails: the records kept in the
// state database (ContractTerms' snapshot) choose the contract, in a new
// process each pass (psa-syncd sync), days later too. Only a renewal never
// read fails (TestEngineAutotask_renewalGuards/unreadable).
func TestEngineAutotask_renewalChosenFromKeptRecordsWhenTheReadFails(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	a, _ := h.doc.Customer("file", "cust-a")
	old := h.addContract(a.CompanyID, "Acme 2026", day(2026, 1, 1), day(2026, 12, 31))
	renewal := h.addContract(a.CompanyID, "Acme 2027", day(2027, 1, 1), day(2027, 12, 31))
	a.ContractID, a.NextContractID = old, renewal
	h.doc.PutCustomer(a)
	pass := func(at time.Time, units string) {
		t.Helper()
		h.writeUsage("cust-a,Acme,CIXA-MSP,"+units, "cust-b,Globex,CIXA-MSP,3")
		e := h.engineAt(at, &ContractTerms{})
		if _, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pass(etNow, "5")
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Contracts/query", Status: http.StatusBadRequest})
	for i, later := range []time.Duration{25 * time.Hour, 73 * time.Hour} {
		pass(etNow.Add(later), []string{"6", "7"}[i])
		if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded || cs.ContractID != old {
			t.Errorf("%v later, the records' read failing: cust-a = %s on %s (%q), want a success on %s", later, cs.Result, cs.ContractID, cs.Error, old)
		}
	}
	h.wantUnits(old, h.svcIntercept, 7)
	if got, _ := h.units(renewal, h.svcIntercept); got != 0 {
		t.Errorf("units on the renewal %s = %d, want none (it starts in 2027)", renewal, got)
	}
}

// leaveOutContracts is an Autotask backend whose bulk read of contracts
// leaves out the contracts drop, as a read that cannot decode their
// records does.
type leaveOutContracts struct {
	*autotask.Backend
	drop map[string]bool
}

func (b leaveOutContracts) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	got, err := b.Backend.GetContracts(ctx, ids)
	for id := range b.drop {
		delete(got, id)
	}
	return got, err
}

// A pass whose read finds the other customers' contracts but leaves out
// a renewal customer's two does not drop their records, kept from an
// earlier day, from the state database's snapshot: a later process whose
// read fails still chooses the contract from them. Before, the save kept
// only the records read in the last day, and the renewal customer failed.
func TestEngineAutotask_partialReadKeepsTheRenewalsRecords(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	a, _ := h.doc.Customer("file", "cust-a")
	old := h.addContract(a.CompanyID, "Acme 2026", day(2026, 1, 1), day(2026, 12, 31))
	renewal := h.addContract(a.CompanyID, "Acme 2027", day(2027, 1, 1), day(2027, 12, 31))
	a.ContractID, a.NextContractID = old, renewal
	h.doc.PutCustomer(a)
	full := h.be
	pass := func(be psa.Backend, at time.Time, units string) {
		t.Helper()
		h.writeUsage("cust-a,Acme,CIXA-MSP,"+units, "cust-b,Globex,CIXA-MSP,"+units)
		src, err := file.New(file.Config{Path: h.usage})
		if err != nil {
			t.Fatal(err)
		}
		e := NewEngine(EngineOptions{Backend: be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
			Location: time.UTC, Now: func() time.Time { return at }, Failing: &h.failing, Terms: &ContractTerms{}})
		if _, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil {
			t.Fatal(err)
		}
		if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded || cs.ContractID != old {
			t.Errorf("pass at %v: cust-a = %s on %s (%q), want a success on %s", at, cs.Result, cs.ContractID, cs.Error, old)
		}
	}
	pass(full, etNow, "5")
	// The next day the read finds cust-b's contract, not cust-a's two.
	atb, ok := full.(*autotask.Backend)
	if !ok {
		t.Fatalf("backend %T, want *autotask.Backend", full)
	}
	pass(leaveOutContracts{Backend: atb, drop: map[string]bool{old: true, renewal: true}}, etNow.Add(25*time.Hour), "6")
	// Then the read fails as a whole, in a new process.
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Contracts/query", Status: http.StatusBadRequest})
	pass(full, etNow.Add(26*time.Hour), "7")
	h.wantUnits(old, h.svcIntercept, 7)
}
