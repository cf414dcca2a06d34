package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// fakeReads is a PSA of 1,000 services that counts single and bulk reads.
type fakeReads struct {
	singles, bulks atomic.Int64
	mu             sync.Mutex
	bulkSizes      []int
}

func (f *fakeReads) exists(id string) bool {
	var n int
	_, err := fmt.Sscan(id, &n)
	return err == nil && n >= 0 && n < 1000
}

func (f *fakeReads) single(_ context.Context, id string) (*psa.Service, error) {
	f.singles.Add(1)
	if !f.exists(id) {
		return nil, psa.ErrNotFound
	}
	return &psa.Service{ID: id, Name: "svc " + id}, nil
}

func (f *fakeReads) bulk(_ context.Context, ids []string) (map[string]*psa.Service, error) {
	f.bulks.Add(1)
	f.mu.Lock()
	f.bulkSizes = append(f.bulkSizes, len(ids))
	f.mu.Unlock()
	out := map[string]*psa.Service{}
	for _, id := range ids {
		if f.exists(id) {
			out[id] = &psa.Service{ID: id, Name: "svc " + id}
		}
	}
	return out, nil
}

// TestReadCache_primedByKnownIDs checks that the first read also reads the
// ids the export refers to, so that the reads of the other resources,
// Terraform's ten at a time, need no further request.
func TestReadCache_primedByKnownIDs(t *testing.T) {
	f := &fakeReads{}
	known := make([]string, 0, 400)
	for i := range 400 {
		known = append(known, fmt.Sprint(i))
	}
	c := newReadCache(f.single, f.bulk, func(context.Context) []string { return known })
	readAll(t, c, known, 10)
	if n := f.bulks.Load(); n != 1 {
		t.Errorf("400 reads of known ids made %d bulk reads (sizes %v), want 1", n, f.bulkSizes)
	}
	if n := f.singles.Load(); n != 0 {
		t.Errorf("400 reads of known ids made %d single reads, want 0", n)
	}
}

// TestReadCache_batchesConcurrentReads checks that reads arriving together
// go out in bulk reads that ask for each id once, and that a missing id is
// reported as not found by the single read.
func TestReadCache_batchesConcurrentReads(t *testing.T) {
	f := &fakeReads{}
	c := newReadCache(f.single, f.bulk, nil)
	ids := make([]string, 0, 100)
	for i := range 100 {
		ids = append(ids, fmt.Sprint(i%50)) // every id twice
	}
	readAll(t, c, ids, 100)
	total := 0
	for _, n := range f.bulkSizes {
		total += n
	}
	if total != 50 {
		t.Errorf("bulk reads asked for %d ids, want the 50 distinct ones", total)
	}
	if _, err := c.get(t.Context(), "5000"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("get(5000) = %v, want psa.ErrNotFound", err)
	}
	if n := f.singles.Load(); n != 1 {
		t.Errorf("made %d single reads, want 1 (the missing id)", n)
	}
}

// TestReadCache_writes checks that the provider's writes replace what was
// read.
func TestReadCache_writes(t *testing.T) {
	f := &fakeReads{}
	c := newReadCache(f.single, f.bulk, nil)
	ctx := t.Context()
	if s, err := c.get(ctx, "7"); err != nil || s.Name != "svc 7" {
		t.Fatalf("get(7) = %+v, %v", s, err)
	}
	c.put("7", &psa.Service{ID: "7", Name: "renamed"})
	if s, err := c.get(ctx, "7"); err != nil || s.Name != "renamed" {
		t.Errorf("get(7) after put = %+v, %v; want the written service", s, err)
	}
	c.forget("7")
	if s, err := c.get(ctx, "7"); err != nil || s.Name != "svc 7" {
		t.Errorf("get(7) after forget = %+v, %v; want it read again", s, err)
	}
	if n := f.bulks.Load(); n != 2 {
		t.Errorf("made %d bulk reads, want 2", n)
	}
}

// TestReadCache_listsAfterFirstBatch checks that a command reading more
// than one batch of ids that nobody knew in advance (the contracts of new
// customer mappings, Terraform's ten at a time) reads them all with the
// second batch, answers the rest from that list, and reads an id the list
// leaves out by id.
func TestReadCache_listsAfterFirstBatch(t *testing.T) {
	f := &fakeReads{}
	var lists atomic.Int64
	c := newReadCache(f.single, f.bulk, nil)
	c.all = func(ctx context.Context, _ int) (map[string]*psa.Service, bool, error) {
		lists.Add(1)
		out := map[string]*psa.Service{}
		for i := range 1000 {
			if i != 999 { // say, an inactive contract
				out[fmt.Sprint(i)] = &psa.Service{ID: fmt.Sprint(i), Name: "svc " + fmt.Sprint(i)}
			}
		}
		return out, true, nil
	}
	ids := make([]string, 0, 500)
	for i := range 500 {
		ids = append(ids, fmt.Sprint(i))
	}
	readAll(t, c, ids, 10)
	if n := lists.Load(); n != 1 {
		t.Errorf("500 reads listed %d times, want 1", n)
	}
	if n := f.bulks.Load(); n < 1 || n > 2 {
		t.Errorf("500 reads made %d bulk reads (sizes %v), want the first batch and at most the one the list joined", n, f.bulkSizes)
	}
	readAll(t, c, []string{"999"}, 1)
	if _, err := c.get(t.Context(), "5000"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("get(5000) = %v, want psa.ErrNotFound", err)
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("listed %d times, want 1", n)
	}
	if n := f.singles.Load(); n != 1 {
		t.Errorf("made %d single reads, want 1 (the missing id)", n)
	}
}

// TestReadCache_listsFirstBatchWhenCheaper checks that a first batch whose
// read by id costs more than one request (Kaseya BMS: three per contract)
// is listed when the list costs no more, with no read by id; and that a
// first batch too small to pay for the list is read by id and leaves the
// list to the batches after it.
func TestReadCache_listsFirstBatchWhenCheaper(t *testing.T) {
	const listCost = 5
	newCache := func(f *fakeReads, budgets *[]int) *readCache[psa.Service] {
		var mu sync.Mutex
		c := newReadCache(f.single, f.bulk, nil)
		c.cost = func(n int) int { return 3 * n }
		c.all = func(_ context.Context, maxRequests int) (map[string]*psa.Service, bool, error) {
			mu.Lock()
			*budgets = append(*budgets, maxRequests)
			mu.Unlock()
			if maxRequests < listCost {
				return nil, false, nil
			}
			out := map[string]*psa.Service{}
			for i := range 1000 {
				out[fmt.Sprint(i)] = &psa.Service{ID: fmt.Sprint(i), Name: "svc " + fmt.Sprint(i)}
			}
			return out, true, nil
		}
		return c
	}

	f, budgets := &fakeReads{}, []int{}
	c := newCache(f, &budgets)
	c.known = func(context.Context) []string { return []string{"2"} }
	readAll(t, c, []string{"1"}, 1) // a first batch of two with the known id: 6 requests by id
	readAll(t, c, []string{"2", "3", "4", "5"}, 4)
	if f.bulks.Load() != 0 || f.singles.Load() != 0 || len(budgets) != 1 || budgets[0] != 6 {
		t.Errorf("a first batch of 2 made %d bulk and %d single reads and listed with budgets %v; want one list for 6 requests and no read by id",
			f.bulks.Load(), f.singles.Load(), budgets)
	}

	f, budgets = &fakeReads{}, []int{}
	c = newCache(f, &budgets)
	readAll(t, c, []string{"1"}, 1) // 3 requests by id: less than the list
	readAll(t, c, []string{"2", "3", "4"}, 3)
	readAll(t, c, []string{"5", "6"}, 2)
	if len(budgets) != 2 || budgets[0] != 3 || budgets[1] != maxList {
		t.Errorf("listed with budgets %v, want [3 %d]: the first batch's, then the second's", budgets, maxList)
	}
	if f.bulks.Load() != 1 {
		t.Errorf("made %d bulk reads (sizes %v), want 1: the first batch, which the list did not pay for", f.bulks.Load(), f.bulkSizes)
	}
}

// TestReadCache_listFails checks that reads whose list fails are read by
// id, and that the list is not tried again.
func TestReadCache_listFails(t *testing.T) {
	f := &fakeReads{}
	var lists atomic.Int64
	c := newReadCache(f.single, f.bulk, nil)
	c.all = func(context.Context, int) (map[string]*psa.Service, bool, error) {
		lists.Add(1)
		return nil, false, errors.New("boom")
	}
	ctx := t.Context()
	for _, id := range []string{"1", "2", "3"} {
		if s, err := c.get(ctx, id); err != nil || s.ID != id {
			t.Errorf("get(%s) = %+v, %v; want it read by id", id, s, err)
		}
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("asked for the list %d times, want 1", n)
	}
	if n := f.bulks.Load(); n != 3 {
		t.Errorf("made %d bulk reads, want 3", n)
	}
}

// TestReadCache_tooManyToList checks that in a tenant too large to list the
// reads go by id, and that the list is not asked for again.
func TestReadCache_tooManyToList(t *testing.T) {
	f := &fakeReads{}
	var lists atomic.Int64
	c := newReadCache(f.single, f.bulk, nil)
	c.all = func(context.Context, int) (map[string]*psa.Service, bool, error) {
		lists.Add(1)
		return nil, false, nil
	}
	ids := make([]string, 0, 100)
	for i := range 100 {
		ids = append(ids, fmt.Sprint(i))
	}
	readAll(t, c, ids, 10)
	if n := lists.Load(); n != 1 {
		t.Errorf("100 reads asked for the list %d times, want 1", n)
	}
	if n := f.singles.Load(); n != 0 {
		t.Errorf("100 reads made %d single reads, want 0: the batches go by id", n)
	}
}

// TestReadCache_withoutBulk checks that a backend without bulk reads is
// read one id at a time, as before.
func TestReadCache_withoutBulk(t *testing.T) {
	f := &fakeReads{}
	c := newReadCache(f.single, nil, nil)
	readAll(t, c, []string{"1", "2", "3"}, 3)
	if n := f.singles.Load(); n != 3 {
		t.Errorf("made %d single reads, want 3", n)
	}
}

// readAll reads ids with the given parallelism and fails on an error.
func readAll(t *testing.T, c *readCache[psa.Service], ids []string, parallelism int) {
	t.Helper()
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := c.get(t.Context(), id)
			if err != nil || s.ID != id {
				t.Errorf("get(%s) = %+v, %v", id, s, err)
			}
		}()
	}
	wg.Wait()
}

// companiesBackend is a PSA of 200 recurring contracts, contract i of
// company 1000+i, that counts the reads of companies: a bulk read of
// contracts or companies answers every id it knows, and ListContracts
// lists every contract.
type companiesBackend struct {
	psa.Backend // unused methods panic

	companyBulks, companySingles atomic.Int64
	mu                           sync.Mutex
	companyBulkSizes             []int
}

func (b *companiesBackend) contract(id string) *psa.Contract {
	var n int
	if _, err := fmt.Sscan(id, &n); err != nil || n < 0 || n >= 200 {
		return nil
	}
	return &psa.Contract{ID: id, CompanyID: fmt.Sprint(1000 + n), Active: true, Recurring: true}
}

func (b *companiesBackend) GetContract(_ context.Context, id string) (*psa.Contract, error) {
	if c := b.contract(id); c != nil {
		return c, nil
	}
	return nil, psa.ErrNotFound
}

func (b *companiesBackend) GetContracts(_ context.Context, ids []string) (map[string]*psa.Contract, error) {
	out := map[string]*psa.Contract{}
	for _, id := range ids {
		if c := b.contract(id); c != nil {
			out[id] = c
		}
	}
	return out, nil
}

func (b *companiesBackend) ListContracts(ctx context.Context, _ int) (map[string]*psa.Contract, bool, error) {
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	out, err := b.GetContracts(ctx, ids)
	return out, true, err
}

func (b *companiesBackend) GetServices(context.Context, []string) (map[string]*psa.Service, error) {
	return nil, errors.New("no services")
}

func (b *companiesBackend) GetCompany(_ context.Context, id string) (*psa.Company, error) {
	b.companySingles.Add(1)
	return &psa.Company{ID: id, Active: true}, nil
}

func (b *companiesBackend) GetCompanies(_ context.Context, ids []string) (map[string]*psa.Company, error) {
	b.companyBulks.Add(1)
	b.mu.Lock()
	b.companyBulkSizes = append(b.companyBulkSizes, len(ids))
	b.mu.Unlock()
	out := map[string]*psa.Company{}
	for _, id := range ids {
		out[id] = &psa.Company{ID: id, Active: true}
	}
	return out, nil
}

// TestReadCompanies_listedWithTheContracts checks that the company reads of
// many contract checks, each after its contract's read and ten at a time
// as Terraform plans them, cost the first batch by id and then one bulk
// read of the companies of the contracts listed, not one read per batch;
// and that no company is read alone.
func TestReadCompanies_listedWithTheContracts(t *testing.T) {
	b := &companiesBackend{}
	reads := providerReads(psa.SystemAutotask, b, func(context.Context) *export.Document { return nil }, false)
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ct, err := reads.contracts.get(t.Context(), fmt.Sprint(i))
			if err != nil {
				t.Errorf("contract %d: %v", i, err)
				return
			}
			if c, err := reads.companies.get(t.Context(), ct.CompanyID); err != nil || !c.Active {
				t.Errorf("company %s: %+v, %v", ct.CompanyID, c, err)
			}
		}()
	}
	wg.Wait()
	if n := b.companyBulks.Load(); n < 1 || n > 3 {
		t.Errorf("100 company reads made %d bulk reads (sizes %v), want the first batch, the companies of the listed contracts and at most one batch in between", n, b.companyBulkSizes)
	}
	if n := b.companySingles.Load(); n != 0 {
		t.Errorf("made %d single company reads, want 0", n)
	}
	if reads := providerReads(psa.SystemKaseyaBMS, b, func(context.Context) *export.Document { return nil }, false); reads.companies != nil {
		t.Error("Kaseya BMS reads companies: its contract read tells whether the account is active")
	}
}
