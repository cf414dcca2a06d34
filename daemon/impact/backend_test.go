package impact

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// checkingBackend is a PSA that checks contracts before writes, as
// ConnectWise does, and refuses contract "2".
type checkingBackend struct {
	psa.Backend
	checked []string
}

func (b *checkingBackend) CheckWrites(_ context.Context, ids []string) (map[string]error, error) {
	b.checked = append(b.checked, ids...)
	out := map[string]error{}
	if slices.Contains(ids, "2") {
		out["2"] = fmt.Errorf("agreement 2 is cancelled: %w", psa.ErrConflict)
	}
	return out, nil
}

// TestReadOnly_CheckWrites checks that the report's backend passes the
// check of the contracts a plan would write to on to the PSA, without the
// contracts known only after apply, so that a cancelled agreement shows.
func TestReadOnly_CheckWrites(t *testing.T) {
	t.Parallel()
	be := &checkingBackend{}
	r := newReadOnly(be)
	var wc psa.WriteChecker = r
	refused, err := wc.CheckWrites(t.Context(), []string{"1", unknownPrefix + "new", "2"})
	if err != nil || len(refused) != 1 || refused["2"] == nil {
		t.Errorf("CheckWrites = %v, %v; want contract 2 refused", refused, err)
	}
	if !slices.Equal(be.checked, []string{"1", "2"}) {
		t.Errorf("the PSA checked %v, want 1 and 2 (not the contract known only after apply)", be.checked)
	}
	// A PSA that checks nothing before writes refuses nothing.
	plain := newReadOnly(struct{ psa.Backend }{})
	if refused, err := plain.CheckWrites(t.Context(), []string{"1"}); err != nil || len(refused) != 0 {
		t.Errorf("CheckWrites without a checking PSA = %v, %v; want nothing", refused, err)
	}
}

// lineBackend is a PSA whose line reads can fail over one line, as
// ConnectWise's can (psa.ServiceLineReader): a contract in bad has a
// problem line of service "labour", which fails the contract when labour
// is managed. It records the reads.
type lineBackend struct {
	psa.Backend
	bad   []string
	reads [][]string // contract ids, then "|", then service ids
}

type contractErrs map[string]error

func (e contractErrs) Error() string                    { return "some contracts could not be read" }
func (e contractErrs) ContractErrors() map[string]error { return e }

func (b *lineBackend) ReadLines(ctx context.Context, ids []string, asOf time.Time) ([]psa.ContractLine, error) {
	return b.ReadServiceLines(ctx, ids, []string{"labour", "licence"}, asOf)
}

func (b *lineBackend) ReadServiceLines(_ context.Context, ids, services []string, _ time.Time) ([]psa.ContractLine, error) {
	b.reads = append(b.reads, append(append(slices.Clone(ids), "|"), services...))
	var lines []psa.ContractLine
	errs := contractErrs{}
	for _, id := range ids {
		if slices.Contains(b.bad, id) && slices.Contains(services, "labour") {
			errs[id] = fmt.Errorf("contract %s: labour has a fractional quantity", id)
			continue
		}
		lines = append(lines, psa.ContractLine{ContractID: id, ServiceID: "licence", Quantity: 5})
	}
	if len(errs) > 0 {
		return lines, errs
	}
	return lines, nil
}

// TestReadOnly_ReadServiceLines checks that the report's backend reads
// lines for the services a plan manages, as a pass does, so that a problem
// line of another service fails nothing, and that it reads a contract
// again only for a plan that manages services it was not read for.
func TestReadOnly_ReadServiceLines(t *testing.T) {
	t.Parallel()
	be := &lineBackend{bad: []string{"2"}}
	r := newReadOnly(be)
	var sr psa.ServiceLineReader = r
	ctx := t.Context()

	got, err := sr.ReadServiceLines(ctx, []string{"1", "2", unknownPrefix + "c"}, []string{"licence"}, time.Time{})
	if err != nil || len(got) != 2 {
		t.Fatalf("ReadServiceLines for licence = %v, %v; want the licence lines of 1 and 2", got, err)
	}
	// The same services, or fewer, or one known only after apply: no read.
	for _, services := range [][]string{{"licence"}, nil, {"licence", unknownPrefix + "s"}} {
		if _, err := sr.ReadServiceLines(ctx, []string{"1", "2"}, services, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(be.reads) != 1 {
		t.Errorf("reads = %q, want one", be.reads)
	}
	// The line of labour may have been left out: not known to be absent.
	if _, has, read := r.line(psa.LineKey{ContractID: "2", ServiceID: "labour"}); has || read {
		t.Errorf("line 2/labour: has %v, contract read %v; want neither", has, read)
	}
	if l, has, read := r.line(psa.LineKey{ContractID: "2", ServiceID: "licence"}); !has || !read || l.Quantity != 5 {
		t.Errorf("line 2/licence = %+v, has %v, contract read %v; want 5 units", l, has, read)
	}

	// A plan that manages labour too reads the contracts again; contract
	// 2 fails for it, and contract 1 is remembered with labour checked.
	got, err = sr.ReadServiceLines(ctx, []string{"1", "2"}, []string{"labour", "licence"}, time.Time{})
	var ce interface{ ContractErrors() map[string]error }
	if !errors.As(err, &ce) || ce.ContractErrors()["2"] == nil || len(got) != 1 || got[0].ContractID != "1" {
		t.Fatalf("ReadServiceLines for labour = %v, %v; want contract 1's line and contract 2 failed", got, err)
	}
	if _, has, read := r.line(psa.LineKey{ContractID: "1", ServiceID: "labour"}); has || !read {
		t.Errorf("line 1/labour: has %v, contract read %v; want no line on a contract read", has, read)
	}
	if _, err := sr.ReadServiceLines(ctx, []string{"1"}, []string{"labour"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"1", "2", "|", "licence"}, {"1", "2", "|", "labour", "licence"}}; !slices.EqualFunc(be.reads, want, slices.Equal) {
		t.Errorf("reads = %q, want %q", be.reads, want)
	}

	// Without ReadServiceLines, the PSA's ReadLines reads every line, and
	// answers for any services.
	plain := &lineBackend{}
	r = newReadOnly(struct{ psa.Backend }{plain})
	for _, services := range [][]string{{"licence"}, {"labour", "licence"}} {
		if _, err := r.ReadServiceLines(ctx, []string{"1"}, services, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(plain.reads) != 1 {
		t.Errorf("reads through ReadLines = %q, want one", plain.reads)
	}
}

// bulkBackend reads contracts in bulk (psa.BulkReader).
type bulkBackend struct {
	psa.BulkReader
	psa.Backend
	asked []string
}

func (b *bulkBackend) GetContracts(_ context.Context, ids []string) (map[string]*psa.Contract, error) {
	b.asked = append(b.asked, ids...)
	out := map[string]*psa.Contract{}
	for _, id := range ids {
		out[id] = &psa.Contract{ID: id, Active: true}
	}
	return out, nil
}

// TestReadOnly_GetContracts checks that the report's backend reads
// contracts in bulk where the PSA can, as a pass does, without the
// contracts known only after apply, which it answers itself.
func TestReadOnly_GetContracts(t *testing.T) {
	t.Parallel()
	be := &bulkBackend{}
	var br psa.BulkReader = newReadOnly(be)
	got, err := br.GetContracts(t.Context(), []string{"1", unknownPrefix + "c", "2"})
	if err != nil || len(got) != 3 || !got[unknownPrefix+"c"].Recurring {
		t.Errorf("GetContracts = %v, %v; want 1, 2 and the contract known after apply", got, err)
	}
	if !slices.Equal(be.asked, []string{"1", "2"}) {
		t.Errorf("the PSA was asked for %q, want 1 and 2", be.asked)
	}
	// Without a bulk read, the engine reads the others one by one.
	got, err = newReadOnly(struct{ psa.Backend }{}).GetContracts(t.Context(), []string{"1", unknownPrefix + "c"})
	if err != nil || len(got) != 1 || got[unknownPrefix+"c"] == nil {
		t.Errorf("GetContracts without a bulk read = %v, %v; want only the contract known after apply", got, err)
	}
}

// TestReadOnly_readContracts checks that the report reads the contracts of
// its lines (for their billing cycle) in one bulk read, without those the
// engine's plans read already or those known only after apply.
func TestReadOnly_readContracts(t *testing.T) {
	t.Parallel()
	be := &bulkBackend{}
	r := newReadOnly(be)
	if _, err := r.GetContracts(t.Context(), []string{"1"}); err != nil {
		t.Fatal(err)
	}
	be.asked = nil
	got, err := r.readContracts(t.Context(), []string{"1", "2", unknownPrefix + "c", "3", "2"})
	if err != nil || len(got) != 3 || got["1"] == nil || got["2"] == nil || got["3"] == nil {
		t.Errorf("readContracts = %v, %v; want contracts 1, 2 and 3", got, err)
	}
	if !slices.Equal(be.asked, []string{"2", "3"}) {
		t.Errorf("the PSA was asked for %q, want 2 and 3 in one read", be.asked)
	}
}
