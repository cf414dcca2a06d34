package usage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// bulkLeavesOut is a backend whose bulk read of contracts leaves every
// contract out, so that each is read alone; GetContract knows contracts.
type bulkLeavesOut struct {
	psa.Backend
	contracts map[string]*psa.Contract
}

func (b bulkLeavesOut) System() psa.System { return psa.SystemAutotask }

func (b bulkLeavesOut) GetServices(context.Context, []string) (map[string]*psa.Service, error) {
	return map[string]*psa.Service{}, nil
}

func (b bulkLeavesOut) GetCompanies(context.Context, []string) (map[string]*psa.Company, error) {
	return map[string]*psa.Company{}, nil
}

func (b bulkLeavesOut) GetContracts(context.Context, []string) (map[string]*psa.Contract, error) {
	return map[string]*psa.Contract{}, nil
}

func (b bulkLeavesOut) GetContract(_ context.Context, id string) (*psa.Contract, error) {
	if ct := b.contracts[id]; ct != nil {
		return ct, nil
	}
	return nil, fmt.Errorf("autotask: contract %s: %w", id, psa.ErrNotFound)
}

// The contracts a bulk read leaves out are read one by one, several at
// once, and each lands in the result: the reads, which record what they
// read, run while nothing else reads the result (go test -race reported
// the loop that starts them reading it).
func TestEngine_lookUpContracts_readsLeftOutContractsAlone(t *testing.T) {
	t.Parallel()
	be := bulkLeavesOut{contracts: map[string]*psa.Contract{}}
	var ids []string
	for i := range 3 * contractCheckConcurrency {
		id := strconv.Itoa(100 + i)
		ids = append(ids, id)
		be.contracts[id] = &psa.Contract{ID: id, Active: true, Recurring: true}
	}
	ids = append(ids, "999")
	e := NewEngine(EngineOptions{Backend: be})

	found, errs := e.lookUpContracts(t.Context(), ids)
	for _, id := range ids[:len(ids)-1] {
		if ct := found[id]; ct == nil || ct.ID != id || errs[id] != nil {
			t.Errorf("contract %s = %+v, %v; want it read", id, ct, errs[id])
		}
	}
	if ct, err := found["999"], errs["999"]; ct != nil || !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("contract 999 = %+v, %v; want not found", ct, err)
	}
}

// TestCheckRow_onlyReadsFailingAlikeStop checks which single reads of a
// contract check stop the others: those failing alike in a row (the same
// error but for the contract's id and a request id), never a contract not
// found or refused to the API user, nor failures with a success between.
func TestCheckRow_onlyReadsFailingAlikeStop(t *testing.T) {
	t.Parallel()
	var r checkRow
	for i := range 20 {
		id := strconv.Itoa(800 + i)
		r.read(id, fmt.Errorf("connectwise: agreement %s: %w", id, psa.ErrNotFound))
		r.read(id, fmt.Errorf("connectwise: GET finance/agreements/%s: 403: %w", id, psa.ErrForbidden))
	}
	outage := func(id string, req int) error {
		return fmt.Errorf("connectwise: GET finance/agreements/%s: 503 Service Unavailable (request id %d)", id, req)
	}
	for i := range checksFailedToStop - 1 {
		id := strconv.Itoa(900 + i)
		r.read(id, outage(id, i))
	}
	r.read("990", nil)
	if r.stopped != nil {
		t.Fatalf("own answers and failures with a success between stopped the reads: %v", r.stopped)
	}
	for i := range checksFailedToStop {
		id := strconv.Itoa(1000 + i)
		r.read(id, outage(id, 50+i))
	}
	if r.stopped == nil || !strings.Contains(r.stopped.Error(), "the reads of the 6 contracts before it failed alike") {
		t.Errorf("stopped = %v, want the reads stopped after %d failing alike", r.stopped, checksFailedToStop)
	}
}
