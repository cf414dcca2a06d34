package provider

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// batchWindow is how long the first read of a batch waits for others to
// join it, about one request's round trip. Terraform reads and plans up to
// ten resources at once (its default -parallelism), each in its own call,
// so the reads that arrive together go out as one bulk query; once
// batchFull reads wait, no other call of Terraform's can come, and the
// batch goes out at once.
const (
	batchWindow = 20 * time.Millisecond
	batchFull   = 10
)

// errNotInBulk marks an id the bulk query did not return: it does not exist
// or is not a valid id, and the single read tells which.
var errNotInBulk = errors.New("not returned by the bulk read")

// readCache reads one kind of PSA object by id for every resource and data
// source of one provider configuration (one Terraform command), so a
// refresh of N objects costs a few bulk queries rather than N requests:
//
//   - reads that arrive within batchWindow of each other are sent as one
//     bulk query (the backend splits it into pages of its own size);
//   - the first batch also asks for every id the export refers to (known),
//     which covers the objects that the other resources will ask for next;
//   - an object read once is answered from memory afterwards, and two
//     resources asking for one id at once share the request;
//   - the provider's own writes (put, forget) keep it current;
//   - with all (contracts), the second batch reads every object a check
//     can accept instead (see listAfter), and the reads after it are
//     answered from that list; so does the first batch already when
//     reading it by id costs more requests than the list (cost).
//
// Terraform configures the provider afresh for each command, so nothing is
// older than the command that reads it. Without bulk (a backend that is not
// a psa.BulkReader), every read is a single request, as before.
type readCache[T any] struct {
	single func(context.Context, string) (*T, error)
	bulk   func(context.Context, []string) (map[string]*T, error)
	known  func(context.Context) []string
	all    func(ctx context.Context, maxRequests int) (map[string]*T, bool, error)
	cost   func(n int) int // requests of a bulk read of n ids; nil: one

	mu      sync.Mutex
	entries map[string]*readEntry[T]
	pending []*readEntry[T]
	full    chan struct{} // closed when pending reaches batchFull
	primed  bool
	// relist is whether a list that all did not make (ok false, no error)
	// is tried again at the next batch: the companies' list waits for the
	// contracts' (psaReads.readCompanies).
	relist  bool
	batches int           // batches sent
	listing chan struct{} // closed once all has been read
	listed  map[string]*T // what all returned
}

// listAfter is how many batches by id a command sends before it reads all
// instead. Terraform plans ten resources at a time, and in an apply plans
// each again just before creating it, so checking N new customer mappings
// takes N/10 batches whose ids nobody knows in advance: the contracts of
// the export are already read with the first. From the second batch on the
// command checks more than Terraform's parallelism, and the tenant's active
// contracts, a few pages (about one per customer), cost less than the
// batches to come. An apply of a mapping or two still reads by id, and so
// does a command in a tenant whose list would take more than maxList
// requests (Autotask: about 9,500 contracts).
const (
	listAfter = 1
	maxList   = 20
)

type readEntry[T any] struct {
	id   string
	done chan struct{}
	val  *T
	err  error
}

func newReadCache[T any](single func(context.Context, string) (*T, error), bulk func(context.Context, []string) (map[string]*T, error), known func(context.Context) []string) *readCache[T] {
	return &readCache[T]{single: single, bulk: bulk, known: known, entries: map[string]*readEntry[T]{}}
}

// get returns the object with id, or an error matching psa.ErrNotFound.
func (c *readCache[T]) get(ctx context.Context, id string) (*T, error) {
	if c.bulk == nil {
		return c.single(ctx, id)
	}
	c.mu.Lock()
	e, ok := c.entries[id]
	switch {
	case ok:
	case c.listed[id] != nil:
		e = &readEntry[T]{id: id, done: make(chan struct{}), val: c.listed[id]}
		close(e.done)
		c.entries[id] = e
	default:
		e = c.enqueueLocked(ctx, id)
	}
	c.mu.Unlock()
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if errors.Is(e.err, errNotInBulk) {
		return c.single(ctx, id)
	}
	return e.val, e.err
}

// enqueueLocked adds id to the next batch, starting one when none is
// waiting. The batch outlives a cancelled caller: others may wait for it.
func (c *readCache[T]) enqueueLocked(ctx context.Context, id string) *readEntry[T] {
	e := &readEntry[T]{id: id, done: make(chan struct{})}
	c.entries[id] = e
	c.pending = append(c.pending, e)
	switch len(c.pending) {
	case 1:
		c.full = make(chan struct{})
		go c.flush(context.WithoutCancel(ctx), c.full)
	case batchFull:
		close(c.full)
	}
	return e
}

// flush sends the waiting batch as one bulk read.
func (c *readCache[T]) flush(ctx context.Context, full <-chan struct{}) {
	timer := time.NewTimer(batchWindow)
	select {
	case <-timer.C:
	case <-full:
		timer.Stop()
	}
	c.mu.Lock()
	listing := c.listing
	c.mu.Unlock()
	if listing != nil {
		<-listing // the reads it holds need no request
	}
	var known []string
	c.mu.Lock()
	prime := !c.primed && c.known != nil
	c.primed = true
	c.mu.Unlock()
	if prime {
		known = c.known(ctx)
	}

	c.mu.Lock()
	for _, id := range known {
		if _, ok := c.entries[id]; !ok {
			e := &readEntry[T]{id: id, done: make(chan struct{})}
			c.entries[id] = e
			c.pending = append(c.pending, e)
		}
	}
	var batch []*readEntry[T]
	for _, e := range c.pending {
		if v := c.listed[e.id]; v != nil {
			e.val = v
			close(e.done)
		} else {
			batch = append(batch, e)
		}
	}
	c.pending = nil
	// A first batch that one request reads is not worth a list: the list
	// costs more than that, and a command that checks a contract or two
	// never needs it. One that costs more is listed if that costs no more.
	maxRequests, list := maxList, c.batches >= listAfter
	if !list && c.cost != nil {
		maxRequests = min(maxList, c.cost(len(batch)))
		list = maxRequests > 1
	}
	list = list && len(batch) > 0 && c.all != nil && c.listing == nil
	if list {
		c.listing = make(chan struct{})
	}
	if len(batch) > 0 {
		c.batches++
	}
	c.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ids := make([]string, len(batch))
	for i, e := range batch {
		ids[i] = e.id
	}

	var found, listed map[string]*T
	var tooMany bool
	var err error
	if list {
		found, listed, tooMany, err = c.readAll(ctx, ids, maxRequests)
	} else {
		found, err = c.bulk(ctx, ids)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if list {
		// A list that failed or was not made is not tried again; the
		// reads go by id. One that would have cost more than this batch
		// by id may still pay off for the batches to come.
		c.listed = listed
		close(c.listing)
		if tooMany && (maxRequests < maxList || c.relist) {
			c.listing = nil
		}
	}
	for _, e := range batch {
		switch {
		case err != nil:
			e.err = err
			if c.entries[e.id] == e {
				delete(c.entries, e.id) // a later read tries again
			}
		case found[e.id] != nil:
			e.val = found[e.id]
		default:
			e.err = errNotInBulk
		}
		close(e.done)
	}
}

// readAll reads every object a check can accept (listed), in at most
// maxRequests requests, and, by id, the ids of the batch that the list
// leaves out; found holds both. Without a list (a tenant with too many,
// reported as tooMany, or a list that failed: it only saves requests), it
// reads the batch by id.
func (c *readCache[T]) readAll(ctx context.Context, ids []string, maxRequests int) (found, listed map[string]*T, tooMany bool, err error) {
	listed, ok, err := c.all(ctx, maxRequests)
	if err != nil || !ok {
		tooMany = err == nil
		found, err = c.bulk(ctx, ids)
		return found, nil, tooMany, err
	}
	var missing []string
	for _, id := range ids {
		if listed[id] == nil {
			missing = append(missing, id)
		}
	}
	found = maps.Clone(listed)
	if len(missing) > 0 {
		more, err := c.bulk(ctx, missing)
		if err != nil {
			return nil, nil, false, err
		}
		maps.Copy(found, more)
	}
	return found, listed, false, nil
}

// listedValues waits for the list of all that a batch is reading, if any,
// and returns what it listed: nil when no list was started, or it failed
// or was not made.
func (c *readCache[T]) listedValues(ctx context.Context) []*T {
	c.mu.Lock()
	listing := c.listing
	c.mu.Unlock()
	if listing == nil {
		return nil
	}
	select {
	case <-listing:
	case <-ctx.Done():
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.listed))
}

// put records v, just written by the provider, as the object with id. A
// batch still reading the id answers its own callers, who asked before the
// write; later reads get v.
func (c *readCache[T]) put(id string, v *T) {
	e := &readEntry[T]{done: make(chan struct{}), val: v}
	close(e.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[id] = e
}

// forget drops the object with id after the provider changed it.
func (c *readCache[T]) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
	delete(c.listed, id)
}

// psaReads are the provider's cached reads of services, contracts and
// companies.
type psaReads struct {
	services  *readCache[psa.Service]
	contracts *readCache[psa.Contract]
	// companies tells the contract checks whether a contract's company is
	// active, where the contract read does not (Autotask, ConnectWise); nil
	// on Kaseya BMS, whose contract read joins the account lookup
	// (psa.Contract.CompanyInactive). Only the checks of contracts read
	// companies, so a plan that checks none (a refresh) reads none.
	companies *readCache[psa.Company]
}

// newPSAReads returns the reads of backend; the first bulk read of each kind
// also reads the ids that the export returned by doc refers to.
func newPSAReads(backend psa.Backend, doc func(context.Context) *export.Document) psaReads {
	r := psaReads{
		services:  newReadCache(backend.GetService, nil, nil),
		contracts: newReadCache(backend.GetContract, nil, nil),
	}
	bulk, ok := backend.(psa.BulkReader)
	if !ok {
		return r
	}
	// known reads the ids of the export's entries.
	known := func(ids func(*export.Document) []string) func(context.Context) []string {
		return func(ctx context.Context) []string {
			if d := doc(ctx); d != nil {
				return ids(d)
			}
			return nil
		}
	}
	r.services.bulk = bulk.GetServices
	r.services.known = known(func(d *export.Document) []string {
		ids := make([]string, len(d.ProductMappings))
		for i, m := range d.ProductMappings {
			ids[i] = m.ServiceID
		}
		return ids
	})
	r.contracts.bulk = bulk.GetContracts
	if lister, ok := backend.(psa.ContractLister); ok {
		r.contracts.all = lister.ListContracts
	}
	if coster, ok := backend.(psa.ContractReadCoster); ok {
		r.contracts.cost = coster.ContractReadCost
	}
	r.contracts.known = known(func(d *export.Document) []string {
		ids := make([]string, 0, len(d.CustomerMappings))
		for _, m := range d.CustomerMappings {
			ids = append(ids, m.ContractID)
			if m.NextContractID != "" {
				ids = append(ids, m.NextContractID)
			}
		}
		return ids
	})
	return r
}

// companiesPerRead is how many companies one request of
// psa.BulkReader.GetCompanies reads: an Autotask query takes 500 ids in its
// "in" filter (autotask.MaxPageSize), a ConnectWise "id in (...)" condition
// 100 (IIS's URL limit).
var companiesPerRead = map[psa.System]int{psa.SystemAutotask: 500, psa.SystemConnectWise: 100}

// providerReads returns the reads of a provider configured for system with
// backend: newPSAReads, and the reads of companies (readCompanies) where
// the contract reads do not tell whether the contract's company is active
// (a Kaseya BMS contract read joins the account lookup:
// psa.Contract.CompanyInactive). recheck is recheck_contracts.
func providerReads(system psa.System, backend psa.Backend, doc func(context.Context) *export.Document, recheck bool) psaReads {
	r := newPSAReads(backend, doc)
	if system != psa.SystemKaseyaBMS {
		var prime func(context.Context) *export.Document
		if recheck {
			prime = doc
		}
		r.readCompanies(backend, prime, companiesPerRead[system])
	}
	return r
}

// readCompanies adds the reads of companies (psaReads.companies) of
// backend, for a PSA whose contract reads do not tell whether the
// contract's company is active; perRead is how many companies one request
// of its bulk read reads (0: unknown, no list).
//
// A contract check reads its company after the contract. Like the
// contracts, the companies that arrive together go out as one bulk read,
// and from the second batch on a command that checks more contracts than
// one batch holds reads the companies of the contracts listed
// (readCache.all) at once, when that takes no more than maxList requests:
// the checks after it answer from memory, so new customer mappings cost a
// bulk read or two of companies per command, not one per batch of
// Terraform's.
//
// With doc (recheck_contracts), the first bulk read also asks for every
// company that the export's customer mappings name: a plan then checks
// every mapping's contract, and so its company. Without it (doc nil) the
// plan checks only the mappings it changes, mostly of companies the export
// does not name yet, and the export's others would cost requests for
// nothing.
func (r *psaReads) readCompanies(backend psa.Backend, doc func(context.Context) *export.Document, perRead int) {
	r.companies = newReadCache(backend.GetCompany, nil, nil)
	bulk, ok := backend.(psa.BulkReader)
	if !ok {
		return
	}
	r.companies.bulk = bulk.GetCompanies
	if perRead > 0 {
		contracts := r.contracts
		r.companies.relist = true // until the contracts are listed
		r.companies.all = func(ctx context.Context, maxRequests int) (map[string]*psa.Company, bool, error) {
			listed := contracts.listedValues(ctx)
			if listed == nil {
				return nil, false, nil
			}
			ids := make([]string, 0, len(listed))
			for _, ct := range listed {
				ids = append(ids, ct.CompanyID)
			}
			slices.Sort(ids)
			ids = slices.Compact(ids)
			if (len(ids)+perRead-1)/perRead > maxRequests {
				return nil, false, nil
			}
			found, err := bulk.GetCompanies(ctx, ids)
			return found, err == nil, err
		}
	}
	if doc == nil {
		return
	}
	r.companies.known = func(ctx context.Context) []string {
		d := doc(ctx)
		if d == nil {
			return nil
		}
		ids := make([]string, 0, len(d.CustomerMappings))
		for _, m := range d.CustomerMappings {
			ids = append(ids, m.CompanyID)
		}
		return ids
	}
}
