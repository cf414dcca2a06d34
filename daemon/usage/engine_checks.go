package usage

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// contractCheckTTL is how long a contract verified before a write stays
// verified (in the state database): within it, later passes write to the
// contract without looking it up again.
const contractCheckTTL = 24 * time.Hour

// contractCheckConcurrency bounds the contracts looked up one by one at
// once (those a bulk read left out); each backend bounds its own requests
// further.
const contractCheckConcurrency = 4

// updates reports whether cp has a line to write.
func (cp *customerPass) updates() bool {
	return slices.ContainsFunc(cp.changes, func(c Change) bool { return c.Action == ActionUpdate })
}

// checkContracts verifies, before anything is written to them, the
// contracts of customers cps (which have lines to write but no line on
// their contract that ReadLines or the ledger knows of: ReadLines cannot
// tell an unknown contract from an empty one, and Kaseya BMS has no read at
// all). A contract verified in the last contractCheckTTL, for the company
// the customer mapping names, is taken as it is; the others are read in
// bulk (psa.BulkReader), one by one only where a bulk read leaves a
// contract out, and what was read is recorded unless record is false (a
// plan changes no state). A contract whose record the pass already read
// (read, by checkContractEnds) is not read again. A customer whose
// contract fails the check fails with the hint checkContract gives.
func (e *Engine) checkContracts(ctx context.Context, cps []*customerPass, read map[string]*psa.Contract, record bool) {
	if len(cps) == 0 {
		return
	}
	sys := e.be.System()
	var ids []string
	seen := map[string]bool{}
	for _, cp := range cps {
		if !seen[cp.m.ContractID] {
			seen[cp.m.ContractID] = true
			ids = append(ids, cp.m.ContractID)
		}
	}
	now := e.now()
	var known map[string]state.ContractCheck
	if e.db != nil {
		var err error
		if known, err = e.db.ContractChecks(sys, ids); err != nil {
			e.logger.Warn("Could not read the contract checks of earlier passes; checking the contracts again", "err", err)
		}
	}
	var todo []*customerPass
	var lookup []string
	looked := map[string]bool{}
	for _, cp := range cps {
		if c, ok := known[cp.m.ContractID]; ok && stillVerified(c, *cp.m, now) {
			continue
		}
		todo = append(todo, cp)
		if read[cp.m.ContractID] == nil && !looked[cp.m.ContractID] {
			looked[cp.m.ContractID] = true
			lookup = append(lookup, cp.m.ContractID)
		}
	}
	if len(todo) == 0 {
		return
	}
	found, errs := map[string]*psa.Contract{}, map[string]error{}
	if len(lookup) > 0 {
		found, errs = e.lookUpContracts(ctx, lookup)
	}
	for _, cp := range todo {
		if ct := read[cp.m.ContractID]; ct != nil {
			found[cp.m.ContractID] = ct
		}
	}
	var checks []state.ContractCheck
	checked := map[string]bool{}
	for _, cp := range todo {
		id := cp.m.ContractID
		ct := found[id]
		cp.hint, cp.err = e.checkContract(*cp.m, ct, errs[id])
		if ct != nil && !checked[id] {
			checked[id] = true
			checks = append(checks, state.ContractCheck{System: sys, ContractID: id, CompanyID: ct.CompanyID, Status: ct.Status,
				Type: ct.Type, Active: ct.Active, Recurring: ct.Recurring, CheckedAt: now.UTC()})
		}
	}
	if record && e.db != nil {
		if err := e.db.PutContractChecks(checks); err != nil {
			e.logger.Warn("Could not record the contract checks; the next pass checks the contracts again", "err", err)
		}
	}
}

// stillVerified reports whether check c, recorded by an earlier pass,
// verifies the contract of mapping cm at now: it passed, is younger than
// contractCheckTTL, and found the contract in the company the mapping
// names.
func stillVerified(c state.ContractCheck, cm export.CustomerMapping, now time.Time) bool {
	age := now.Sub(c.CheckedAt)
	return c.Active && c.Recurring && age >= 0 && age < contractCheckTTL &&
		(cm.CompanyID == "" || c.CompanyID == "" || c.CompanyID == cm.CompanyID)
}

// lookUpContracts reads the contracts ids: in bulk where the backend can
// (psa.BulkReader), and one by one, several at once, for those a bulk read
// left out (GetContract then tells why: not found, or another reason). An
// error of the bulk read concerns the PSA as a whole and is every
// contract's.
func (e *Engine) lookUpContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, map[string]error) {
	found := map[string]*psa.Contract{}
	errs := map[string]error{}
	if br, ok := e.be.(psa.BulkReader); ok && len(ids) > 1 {
		got, err := br.GetContracts(ctx, ids)
		if err != nil {
			for _, id := range ids {
				errs[id] = err
			}
			return found, errs
		}
		e.progressed()
		for _, id := range ids {
			if ct := got[id]; ct != nil {
				found[id] = ct
			}
		}
	}
	// The ids left out are listed before the reads start: the reads
	// write to found while this goroutine would read it.
	var alone []string
	for _, id := range ids {
		if found[id] == nil {
			alone = append(alone, id)
		}
	}
	var mu sync.Mutex
	var row checkRow
	var g errgroup.Group
	g.SetLimit(contractCheckConcurrency)
	for _, id := range alone {
		g.Go(func() error {
			mu.Lock()
			stopped := row.stopped
			mu.Unlock()
			if stopped != nil {
				mu.Lock()
				errs[id] = stopped
				mu.Unlock()
				return nil
			}
			ct, err := e.be.GetContract(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
			} else {
				found[id] = ct
				e.progressed()
			}
			if ctx.Err() == nil {
				row.read(id, err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return found, errs
}

// checksFailedToStop is on how many contracts, each read alone for the
// check, reads that fail alike in a row stop the check's other single
// reads of a pass (see checkRow): the reads in flight when the PSA
// started failing, and writesFailedToStop more, as for the writes.
const checksFailedToStop = contractCheckConcurrency + writesFailedToStop

// checkRow counts the single reads of a contract check that failed alike
// in a row (lookUpContracts): with the contract's id taken out, and what
// changes with every request (refusalKey), the same error. A PSA (or a
// proxy, or one endpoint of it) that fails every read of one contract
// alike would otherwise have every contract that the bulk read left out
// read alone, each retried, at every pass. A contract not found, or
// refused to the API user (a security role that hides some contracts),
// is the contract's own answer and counts for nothing; a read that
// succeeds ends the row.
type checkRow struct {
	key     string
	ids     []string
	stopped *checksStoppedError
}

// read records the outcome of the single read of contract id, err its
// error or nil.
func (r *checkRow) read(id string, err error) {
	if err == nil || errors.Is(err, psa.ErrNotFound) || errors.Is(err, psa.ErrForbidden) {
		if err == nil {
			r.key, r.ids = "", nil
		}
		return
	}
	key := refusalKey(withoutContractID(err.Error(), id))
	if key != r.key {
		r.key, r.ids = key, nil
	}
	r.ids = append(r.ids, id)
	if r.stopped == nil && len(r.ids) >= checksFailedToStop {
		r.stopped = &checksStoppedError{n: len(r.ids), last: err}
	}
}

// checksStoppedError fails the check of a contract that a pass did not
// read because the reads of the contracts before it failed alike (see
// checkRow).
type checksStoppedError struct {
	n    int
	last error
}

func (e *checksStoppedError) Error() string {
	return fmt.Sprintf("not read: the reads of the %d contracts before it failed alike, so the pass stopped reading contracts one by one; the last with: %v", e.n, e.last)
}

// Is reports whether target is psa.ErrEndpointNotFound and the last
// failure was one, so that the hint says to check the base URL.
func (e *checksStoppedError) Is(target error) bool {
	return target == psa.ErrEndpointNotFound && errors.Is(e.last, target)
}

// checkContract says whether contract ct, read for customer mapping cm
// (err when it could not be read), can take usage. It returns a hint for
// the fix with the problem.
func (e *Engine) checkContract(cm export.CustomerMapping, ct *psa.Contract, err error) (string, error) {
	sys := e.be.System()
	remap := fmt.Sprintf("map customer %s/%s to an active recurring service contract of its company and re-run terraform apply", cm.Source, cm.CustomerID)
	switch {
	case errors.Is(err, psa.ErrNotFound):
		return e.hint(err, cm, ""), fmt.Errorf("contract %s not found in %s: %w", cm.ContractID, sys, err)
	case err != nil:
		return e.hint(err, cm, ""), fmt.Errorf("reading contract %s: %w", cm.ContractID, err)
	case cm.CompanyID != "" && ct.CompanyID != "" && ct.CompanyID != cm.CompanyID:
		return remap, fmt.Errorf("contract %s belongs to company %s, not %s", cm.ContractID, ct.CompanyID, cm.CompanyID)
	case ct.CompanyInactive:
		return fmt.Sprintf("the customer's company was deactivated in %s: if it left, turn its usage sync off (usage_sync = false) or remove customer mapping %s/%s; else make company %s active again, or map the customer to an active company and its contract, and re-run terraform apply",
				systemName(sys), cm.Source, cm.CustomerID, ct.CompanyID),
			fmt.Errorf("contract %s belongs to company %s, which is inactive in %s: nothing was written to it", cm.ContractID, ct.CompanyID, sys)
	case !ct.Active:
		return remap, fmt.Errorf("contract %s is not active in %s (status %q)", cm.ContractID, sys, ct.Status)
	case !ct.Recurring:
		return remap, fmt.Errorf("contract %s is not a recurring service contract (type %q)", cm.ContractID, ct.Type)
	}
	return "", nil
}

// checkWrites lets a backend that verifies a contract with a read of its
// own before writing to it (psa.WriteChecker: ConnectWise reads the
// agreement's status) verify every contract the pass will write to at
// once, in the order of the writes (p.customers is in that order), instead
// of at each contract's first write. A customer whose contract it refuses
// fails as if its contract could not be read, before anything is written.
//
// With recheck (a pass that writes), a backend whose check reads the
// contracts' whole records (psa.RecordWriteChecker: ConnectWise) has them
// checked here as recheckContracts checks them elsewhere (the company, the
// start and end dates), for the contracts this pass did not read: one read
// of each agreement written to, not two.
func (e *Engine) checkWrites(ctx context.Context, p *pass, recheck bool) {
	wc, ok := e.be.(psa.WriteChecker)
	if !ok {
		return
	}
	customers := p.customers
	var ids []string
	seen := map[string]bool{}
	for _, cp := range customers {
		if cp.err == nil && cp.updates() && !seen[cp.m.ContractID] {
			seen[cp.m.ContractID] = true
			ids = append(ids, cp.m.ContractID)
		}
	}
	if len(ids) == 0 {
		return
	}
	var refused map[string]error
	var err error
	if rwc, ok := wc.(psa.RecordWriteChecker); ok && recheck {
		// Which contracts the pass read is decided before the records
		// of this read are kept as this pass's.
		// Only the contracts whose records are from an earlier pass are
		// kept and checked: this pass read the others.
		var stale []*customerPass
		var staleIDs []string
		staleSeen := map[string]bool{}
		for _, cp := range customers {
			if seen[cp.m.ContractID] && cp.err == nil && !cp.written && !p.readThisPass(cp.m.ContractID) {
				if !staleSeen[cp.m.ContractID] {
					staleSeen[cp.m.ContractID] = true
					staleIDs = append(staleIDs, cp.m.ContractID)
				}
				stale = append(stale, cp)
			}
		}
		var records map[string]*psa.Contract
		records, refused, err = rwc.CheckWriteRecords(ctx, ids)
		if err == nil && len(stale) > 0 {
			e.keepRecords(p, staleIDs, records)
			e.checkRecords(p, stale, records)
		}
	} else {
		refused, err = wc.CheckWrites(ctx, ids)
	}
	for _, cp := range customers {
		if !seen[cp.m.ContractID] || cp.err != nil {
			continue
		}
		if err != nil {
			cp.hint, cp.err = e.readProblem(err, *cp.m)
		} else if r := refused[cp.m.ContractID]; r != nil {
			cp.hint, cp.err = e.readProblem(&contractError{err: r}, *cp.m)
		}
	}
}

// ContractTerms keeps, across the Engines of one process (psa-syncd builds
// one per pass), the end dates of the mapped contracts as the PSA last
// described them, so that a pass reads the contracts' records in bulk at
// most once a day (contractCheckTTL), and those that have ended at every
// pass (a renewal that moves the end date shows at the next pass). The zero
// value is empty and ready to use; it is safe for concurrent use.
//
// The terms are kept in the state database too (a snapshot, saved after
// each pass that read some and restored once per process), so that
// `psa-syncd sync`, a process of its own per pass, and a restarted
// daemon read them once a day as well, not at every pass.
//
// It keeps too the states of the mapped services (active or not), read
// once a day as well (see Engine.checkServices), in a snapshot of their
// own, and the end dates of the contracts no customer mapping names any
// more that hold a line psa-syncd set for a customer no mapping names
// (Engine.orphanTerms), read once a day too and kept in the snapshot for
// as long as that line is a candidate orphaned line. The terms of a
// contract no customer mapping names any more on which a line psa-syncd
// set above 0 is in force (contractTerm.billing: a renewal moved into
// contract_id, a customer moved) are kept however old too, as long as
// that line is above 0: they are what tells movedLine that such a
// contract ended, with no request.
type ContractTerms struct {
	mu  sync.Mutex
	m   map[termsKey]contractTerm
	svc map[termsKey]serviceTerm
	// orphaned are the contracts of Engine.orphanTerms, with when their
	// records were last asked for (found or not); orphanedDirty is set
	// while the snapshot does not hold them, or the terms' billing
	// marks, as they are (a plan, which keeps no state, changed them).
	orphaned      map[termsKey]time.Time
	orphanedDirty bool
	loaded        bool
}

// markBilling sets contractTerm.billing of the terms kept of contracts
// ids (those no customer mapping names) to whether billing holds them; a
// change leaves the snapshot to save (orphanedDirty).
func (t *ContractTerms) markBilling(sys psa.System, ids []string, billing map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false
	for _, id := range ids {
		k := termsKey{sys, id}
		c, ok := t.m[k]
		if !ok || c.billing == billing[id] {
			continue
		}
		c.billing = billing[id]
		t.m[k] = c
		changed = true
	}
	t.orphanedDirty = t.orphanedDirty || changed
}

// known returns those of contracts ids whose terms are kept.
func (t *ContractTerms) known(sys psa.System, ids []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, id := range ids {
		if _, ok := t.m[termsKey{sys, id}]; ok {
			out = append(out, id)
		}
	}
	return out
}

// snapshotContractTerms is the name of the state snapshot of the contract
// terms: a list of storedTerm.
const snapshotContractTerms = "contract_terms"

// storedTerm is a contractTerm as the snapshot keeps it.
type storedTerm struct {
	System psa.System   `json:"system"`
	ReadAt time.Time    `json:"read_at"`
	Ct     psa.Contract `json:"contract"`
	// Billing is contractTerm.billing.
	Billing bool `json:"billing,omitempty"`
}

// restore adds the terms of the state snapshot, once per process, to
// those read since; a snapshot that cannot be read is ignored (the terms
// are read from the PSA again), and logged.
func (t *ContractTerms) restore(db *state.DB, logger *slog.Logger) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.loaded || db == nil {
		return
	}
	t.loaded = true
	var services []storedService
	if _, err := db.Snapshot(snapshotServiceStates, &services); err != nil {
		logger.Warn("Could not restore the mapped services' states; reading them from the PSA again", "err", err)
	} else {
		if t.svc == nil {
			t.svc = make(map[termsKey]serviceTerm, len(services))
		}
		for _, st := range services {
			k := termsKey{st.System, st.ID}
			if _, ok := t.svc[k]; !ok && st.ID != "" {
				t.svc[k] = serviceTerm{name: st.Name, active: st.Active && !st.Gone, gone: st.Gone, products: st.Products, readAt: st.ReadAt}
			}
		}
	}
	var orphaned []storedOrphaned
	if _, err := db.Snapshot(snapshotOrphanedContracts, &orphaned); err != nil {
		logger.Warn("Could not restore when the end dates of the contracts with orphaned lines were read; reading them from the PSA again", "err", err)
	} else {
		if t.orphaned == nil {
			t.orphaned = make(map[termsKey]time.Time, len(orphaned))
		}
		for _, st := range orphaned {
			k := termsKey{st.System, st.ID}
			if _, ok := t.orphaned[k]; !ok && st.ID != "" {
				t.orphaned[k] = st.AskedAt
			}
		}
	}
	var stored []storedTerm
	if _, err := db.Snapshot(snapshotContractTerms, &stored); err != nil {
		logger.Warn("Could not restore the mapped contracts' end dates; reading them from the PSA again", "err", err)
		return
	}
	if t.m == nil {
		t.m = make(map[termsKey]contractTerm, len(stored))
	}
	for _, st := range stored {
		k := termsKey{st.System, st.Ct.ID}
		if _, ok := t.m[k]; !ok && st.Ct.ID != "" {
			// A record of its own, not a pointer into stored: the
			// terms kept would pin the whole decoded snapshot.
			ct := st.Ct
			t.m[k] = contractTerm{ct: &ct, readAt: st.ReadAt, billing: st.Billing}
		}
	}
}

// contractTermsKept is how long the state snapshot keeps a contract's
// terms after they were read. A term older than contractCheckTTL is read
// again before a pass goes by it, but it is what a pass whose read fails
// goes by (a renewal customer's two records choose its contract), and a
// read that finds the other contracts but leaves some out (records it
// cannot decode) does not read them again: the snapshot keeps them, as the
// process's memory does, until they are this old (a contract unmapped
// since is dropped then). The terms of a contract with a candidate
// orphaned line (ContractTerms.orphaned), or of one no customer mapping
// names with a line psa-syncd set above 0 in force (contractTerm.billing),
// are kept however old: whether its line is listed, or a line of the
// contract its customer moved to is held (movedLine), must not depend on
// how long ago the process started.
const contractTermsKept = 35 * 24 * time.Hour

// save stores the terms read less than contractTermsKept before now, and
// those of the contracts with candidate orphaned lines or a line
// psa-syncd set above 0 that no customer mapping names (billing), in the
// state snapshot.
func (t *ContractTerms) save(db *state.DB, now time.Time) error {
	t.mu.Lock()
	stored := make([]storedTerm, 0, len(t.m))
	for k, c := range t.m {
		_, orphaned := t.orphaned[k]
		if age := now.Sub(c.readAt); orphaned || c.billing || age >= 0 && age < contractTermsKept {
			stored = append(stored, storedTerm{System: k.system, ReadAt: c.readAt, Ct: *c.ct, Billing: c.billing})
		}
	}
	t.mu.Unlock()
	slices.SortFunc(stored, func(a, b storedTerm) int {
		return cmp.Or(cmp.Compare(a.System, b.System), cmp.Compare(a.Ct.ID, b.Ct.ID))
	})
	return db.PutSnapshot(snapshotContractTerms, stored)
}

// snapshotServiceStates is the name of the state snapshot of the mapped
// services' states: a list of storedService.
const snapshotServiceStates = "service_states"

// storedService is a serviceTerm as the snapshot keeps it.
type storedService struct {
	System psa.System `json:"system"`
	ID     string     `json:"id"`
	Name   string     `json:"name,omitempty"`
	Active bool       `json:"active"`
	// Gone is set for a service the PSA no longer has (serviceTerm.gone).
	Gone bool `json:"gone,omitempty"`
	// Products are the products of a gone service (serviceTerm.products).
	Products []string  `json:"products,omitempty"`
	ReadAt   time.Time `json:"read_at"`
}

// serviceTerm is what a read of a mapped service said of it, and when.
type serviceTerm struct {
	name   string
	active bool
	readAt time.Time
	// gone is set (with active false) for a service a complete read no
	// longer found: deleted in the PSA (checkServices).
	gone bool
	// products are, for a gone service, the products with sync on whose
	// mappings named it when it was found gone: a pass reads it again
	// within the day only when they change (checkServices).
	products []string
	// kept is set when the service was read in bulk by this process's
	// backend, which keeps what it read (Autotask: the catalog price, for
	// the lines new on contracts), not restored from the snapshot.
	kept bool
}

// saveServices stores the service states read less than contractTermsKept
// before now in the state snapshot.
func (t *ContractTerms) saveServices(db *state.DB, now time.Time) error {
	t.mu.Lock()
	stored := make([]storedService, 0, len(t.svc))
	for k, s := range t.svc {
		if age := now.Sub(s.readAt); age >= 0 && age < contractTermsKept {
			stored = append(stored, storedService{System: k.system, ID: k.id, Name: s.name, Active: s.active, Gone: s.gone, Products: s.products, ReadAt: s.readAt})
		}
	}
	t.mu.Unlock()
	slices.SortFunc(stored, func(a, b storedService) int {
		return cmp.Or(cmp.Compare(a.System, b.System), cmp.Compare(a.ID, b.ID))
	})
	return db.PutSnapshot(snapshotServiceStates, stored)
}

func (t *ContractTerms) service(sys psa.System, id string) (serviceTerm, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.svc[termsKey{sys, id}]
	return s, ok
}

func (t *ContractTerms) putService(sys psa.System, id string, s serviceTerm) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.svc == nil {
		t.svc = map[termsKey]serviceTerm{}
	}
	t.svc[termsKey{sys, id}] = s
}

type termsKey struct {
	system psa.System
	id     string
}

// contractTerm is what a read of a contract said of it, and when.
type contractTerm struct {
	// ct is the record as read, shared with the pass that read it
	// (pass.records) and never changed once kept: a copy per contract
	// held 20,000 records twice at the peak of a pass.
	ct     *psa.Contract
	readAt time.Time
	// billing is set, for a contract no customer mapping names, while
	// a line psa-syncd set above 0 there is in force (readOrphans): its
	// terms are kept however old (save).
	billing bool
}

func (t *ContractTerms) get(sys psa.System, id string) (contractTerm, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[termsKey{sys, id}]
	return c, ok
}

func (t *ContractTerms) put(sys psa.System, id string, c contractTerm) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[termsKey]contractTerm{}
	}
	// A read does not tell whether psa-syncd's line there bills:
	// readOrphans does.
	c.billing = t.m[termsKey{sys, id}].billing
	t.m[termsKey{sys, id}] = c
}

// Whens of psa_sync_contracts_ending: a mapped contract's end date is
// before the pass's effective date (ended), in the calendar month of the
// effective date (this_month) or in the month after (next_month).
const (
	EndingEnded     = "ended"
	EndingThisMonth = "this_month"
	EndingNextMonth = "next_month"
)

// EndingWhens are the labels of psa_sync_contracts_ending.
var EndingWhens = []string{EndingEnded, EndingThisMonth, EndingNextMonth}

// ContractEnding is a mapped contract that ends before the effective date
// of the pass (its customer fails, and nothing is written to it) or
// within the month of the effective date or the next: its customer needs a
// new contract in its customer mapping by then, or its usage is billed
// nowhere (see Engine.checkContractEnds).
type ContractEnding struct {
	Source       string    `json:"source"`
	CustomerID   string    `json:"customer_id"`
	CustomerName string    `json:"customer_name,omitempty"`
	ContractID   string    `json:"contract_id"`
	ContractName string    `json:"contract_name,omitempty"`
	EndDate      time.Time `json:"end_date"`
	// When is ended, this_month or next_month (EndingWhens).
	When string `json:"when"`
}

// endingWindow is how many calendar months, counted from the month of the
// effective date, a contract's end is reported ahead of.
const endingWindow = 2

// checkContractEnds reads the end dates of the contracts of p's customers
// (those not already failed) and fails, before anything is read or
// written for them, the customers whose contract ended before the pass's
// effective date: a write dated after the contract's end is refused by
// Autotask and Kaseya BMS with an error that does not say why, and
// ConnectWise takes it on an agreement that no longer invoices, so the
// usage would be billed nowhere. The mapping is stale: the hint names the
// Terraform change. So does a customer whose contract starts after the
// effective date (a renewal mapped too early). Contracts ending within the
// month of the effective date or the next are listed in the plan (Plan.ContractsEnding) so that
// the renewal's mapping can be merged before the 1st.
//
// The records come from the PSA's bulk read (psa.BulkReader: one request
// per 500 Autotask contracts or 100 ConnectWise agreements), kept in
// e.terms for contractCheckTTL; a contract that has ended, or not yet
// started, is read again at every pass, so that a renewal that moves its end date shows at once.
// A contract that cannot be read is left to the pass's own
// reads and checks, which say why.
func (e *Engine) checkContractEnds(ctx context.Context, p *pass, record bool) {
	e.terms.restore(e.db, e.logger)
	sys := e.be.System()
	eff := p.plan.EffectiveDate
	effDay := eff.Format(time.DateOnly)
	monthStart := time.Date(eff.Year(), eff.Month(), 1, 0, 0, 0, 0, time.UTC)
	nextMonth := monthStart.AddDate(0, 1, 0).Format(time.DateOnly)
	windowEnd := monthStart.AddDate(0, endingWindow, 0).Format(time.DateOnly)
	now := e.now()
	// A contract that had ended is read again at every pass, so that a
	// renewal that moves its end date writes at once; the others once a
	// day.
	fresh := func(c contractTerm, cm export.CustomerMapping) bool {
		age := now.Sub(c.readAt)
		if _, err := e.recordProblem(cm, *c.ct); err != nil {
			return false
		}
		return age >= 0 && age < contractCheckTTL && (c.ct.EndDate.IsZero() || c.ct.EndDate.Format(time.DateOnly) >= effDay) &&
			(c.ct.StartDate.IsZero() || c.ct.StartDate.Format(time.DateOnly) <= effDay)
	}
	freshRenewal := func(c contractTerm, cm export.CustomerMapping) bool {
		age := now.Sub(c.readAt)
		if _, err := e.recordProblem(cm, *c.ct); err != nil {
			return false
		}
		return age >= 0 && age < contractCheckTTL
	}
	// A map, not slices.Contains: a pass of 20,000 customers spent
	// 0.6 s of CPU in the scans.
	var ids []string
	seen := map[string]bool{}
	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		if cp.m.NextContractID != "" {
			// Both records choose the contract: the old one's end and the
			// renewal's start, read once a day (the renewal has not
			// started until it takes over, and the old one ends then).
			for _, cm := range []export.CustomerMapping{*cp.m, renewalOf(*cp.m)} {
				if seen[cm.ContractID] {
					continue
				}
				if c, ok := e.terms.get(sys, cm.ContractID); ok && freshRenewal(c, cm) {
					continue
				}
				seen[cm.ContractID] = true
				ids = append(ids, cm.ContractID)
			}
			continue
		}
		if seen[cp.m.ContractID] {
			continue
		}
		if c, ok := e.terms.get(sys, cp.m.ContractID); ok && fresh(c, *cp.m) {
			continue
		}
		seen[cp.m.ContractID] = true
		ids = append(ids, cp.m.ContractID)
	}
	if len(ids) > 0 {
		found, errs := e.readContractRecords(ctx, ids)
		e.readCompanyStates(ctx, found)
		p.recordErrs = errs
		for _, id := range ids {
			if ct := found[id]; ct != nil {
				e.terms.put(sys, id, contractTerm{ct: ct, readAt: now})
				p.records[id] = ct
			}
		}
		if len(found) > 0 && e.db != nil && record {
			if err := e.terms.save(e.db, now); err != nil {
				e.logger.Warn("Could not keep the mapped contracts' end dates in the state database; the next process reads them again", "err", err)
			}
		}
		for _, err := range errs {
			if errors.Is(err, psa.ErrNotAPI) {
				// The PSA's address does not answer as its API (a
				// proxy's sign-in page): the pass's own reads would be
				// answered alike, so every customer fails now, with
				// no further request.
				for _, cp := range p.customers {
					if cp.err == nil {
						cp.err, cp.hint = fmt.Errorf("reading contract %s: %w", cp.m.ContractID, err), notAPIHint(sys)
					}
				}
				return
			}
		}
		if len(errs) > 0 {
			e.logger.Debug("Could not read the end dates of some mapped contracts; the pass's own reads check them", "contracts", len(errs))
		}
	}
	counts := map[string]int{}
	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		if cp.m.NextContractID != "" {
			e.selectContract(p, cp, effDay)
			if cp.err != nil {
				continue
			}
		}
		// Still billed on contract_id, with its renewal mapped (once the
		// renewal bills, cp.m names no renewal, and the renewal's own end
		// is reported).
		renewal := cp.m.NextContractID != ""
		t, ok := e.terms.get(sys, cp.m.ContractID)
		if !ok {
			continue
		}
		c := contractView{name: t.ct.Name, start: t.ct.StartDate, end: t.ct.EndDate}
		// A contract with lines was never checked before the writes
		// (checkContracts checks those without): one cancelled, made
		// inactive or moved to another company since the mapping was
		// made is stale too.
		if hint, err := e.recordProblem(*cp.m, *t.ct); err != nil {
			cp.err, cp.hint = err, hint
			continue
		}
		if start := c.start.Format(time.DateOnly); !c.start.IsZero() && start > effDay {
			// A renewal mapped before its start: a write dated before
			// it is refused, or (ConnectWise) bills before the
			// agreement does.
			cp.hint, cp.err = notStartedProblem(*cp.m, c.name, start, effDay)
			continue
		}
		if c.end.IsZero() || renewal {
			// A contract whose renewal is mapped ends as planned: the
			// renewal takes over (Plan.Renewals), so it is not
			// reported as ending.
			continue
		}
		end := c.end.Format(time.DateOnly)
		if end >= windowEnd {
			continue
		}
		when := EndingNextMonth
		switch {
		case end < effDay:
			when = EndingEnded
			cp.hint, cp.err = endedProblem(*cp.m, sys, c.name, end, effDay)
		case end < nextMonth:
			when = EndingThisMonth
		}
		counts[when]++
		p.plan.ContractsEnding = append(p.plan.ContractsEnding, ContractEnding{Source: cp.m.Source, CustomerID: cp.m.CustomerID,
			CustomerName: cp.m.CustomerName, ContractID: cp.m.ContractID, ContractName: c.name, EndDate: c.end, When: when})
	}
	p.endingCounts = counts
	if n := len(p.plan.ContractsEnding) - counts[EndingEnded]; n > 0 {
		first := p.plan.ContractsEnding[0]
		e.logger.Warn("Mapped contracts end within the billing month of the effective date or the next: map their customers to the contracts that follow and re-run terraform apply before they end",
			"contracts", n, "first_customer", first.Source+"/"+first.CustomerID, "first_contract", first.ContractID, "first_end", first.EndDate.Format(time.DateOnly))
	}
}

// ContractRenewal is a customer whose mapping names a renewal
// (next_contract_id): the contract a pass bills it on (BillsTo: contract_id
// before the renewal takes over, next_contract_id from then on), and the
// day the renewal takes over (its start, or the day after contract_id
// ends), when the PSA gave either.
type ContractRenewal struct {
	Source         string `json:"source"`
	CustomerID     string `json:"customer_id"`
	CustomerName   string `json:"customer_name,omitempty"`
	ContractID     string `json:"contract_id"`
	NextContractID string `json:"next_contract_id"`
	BillsTo        string `json:"bills_to"`
	// TakesOver is the first effective date billed on NextContractID;
	// zero when the PSA gave neither date.
	TakesOver time.Time `json:"takes_over,omitzero"`
}

// renewalOf is cm with its renewal as its contract: the mapping a pass
// bills once the renewal has taken over.
func renewalOf(cm export.CustomerMapping) export.CustomerMapping {
	cm.ContractID, cm.NextContractID = cm.NextContractID, ""
	return cm
}

// selectContract chooses the contract of customer cp, whose mapping names
// a renewal (next_contract_id), for the pass's effective date effDay: the
// renewal when effDay is on or after its start, or after contract_id's
// end; contract_id before. From the renewal on, cp.m is a copy of the
// mapping that names the renewal as its contract, so that the pass's
// reads, checks, intents, ledger and status name the contract written, and
// the renewal gets lines of its own, as a newly mapped contract does; a
// line of contract_id is never written for a day after its end. The
// choice is listed in the plan (Plan.Renewals). A customer whose two
// contracts' records could not be read because the read failed fails: the
// pass cannot tell which contract is in force, and a guess could bill the
// old contract after its end (ConnectWise takes such a write). Records
// that the read left out (contracts not found, or a backend that reads no
// dates: the impact report offline) leave contract_id, whose own checks
// say why.
func (e *Engine) selectContract(p *pass, cp *customerPass, effDay string) {
	sys := e.be.System()
	cm := *cp.m
	old, oldOK := e.terms.get(sys, cm.ContractID)
	next, nextOK := e.terms.get(sys, cm.NextContractID)
	var takesOver time.Time
	switch {
	case nextOK && !next.ct.StartDate.IsZero():
		takesOver = dayOf(next.ct.StartDate)
	case oldOK && !old.ct.EndDate.IsZero():
		takesOver = dayOf(old.ct.EndDate).AddDate(0, 0, 1)
	}
	r := ContractRenewal{Source: cm.Source, CustomerID: cm.CustomerID, CustomerName: cm.CustomerName,
		ContractID: cm.ContractID, NextContractID: cm.NextContractID, BillsTo: cm.ContractID, TakesOver: takesOver}
	switch {
	case !oldOK && !nextOK && p.recordErrs[cm.ContractID] != nil && !errors.Is(p.recordErrs[cm.ContractID], errNotRead):
		cp.err = fmt.Errorf("could not read contract %s or its renewal %s (next_contract_id), so the pass cannot tell which one is in force on %s, and nothing was written: %w",
			cm.ContractID, cm.NextContractID, effDay, p.recordErrs[cm.ContractID])
		cp.hint = e.hint(p.recordErrs[cm.ContractID], cm, "")
		r.BillsTo = ""
	case nextOK && oldOK && !next.ct.StartDate.IsZero() && next.ct.StartDate.Format(time.DateOnly) <= effDay &&
		(old.ct.EndDate.IsZero() || old.ct.EndDate.Format(time.DateOnly) >= effDay):
		// Both in force on the effective date (the dates changed in the
		// PSA since the plan checked them, or an export written by
		// hand): the old contract still invoices its lines, so lines on
		// the renewal would bill the customer twice.
		cp.err = fmt.Errorf("contract %s%s and its renewal %s%s (next_contract_id) are both in force on the effective date %s (the renewal starts on %s, contract %s ends on %s), so nothing was written: lines on the renewal would be billed beside those of contract %s",
			cm.ContractID, quotedName(old.ct.Name), cm.NextContractID, quotedName(next.ct.Name), effDay,
			next.ct.StartDate.Format(time.DateOnly), cm.ContractID, dateOrNone(old.ct.EndDate), cm.ContractID)
		cp.hint = fmt.Sprintf("fix the dates in %s so that contract %s starts after contract %s ends, or map customer %s/%s to one of them alone and re-run terraform apply",
			systemName(sys), cm.NextContractID, cm.ContractID, cm.Source, cm.CustomerID)
		r.BillsTo = ""
	case nextOK && !next.ct.StartDate.IsZero() && next.ct.StartDate.Format(time.DateOnly) <= effDay,
		oldOK && !old.ct.EndDate.IsZero() && old.ct.EndDate.Format(time.DateOnly) < effDay:
		m := renewalOf(cm)
		cp.m = &m
		r.BillsTo = m.ContractID
	}
	p.plan.Renewals = append(p.plan.Renewals, r)
}

// dateOrNone is t as a date, or "no end date" when t is zero.
func dateOrNone(t time.Time) string {
	if t.IsZero() {
		return "no end date"
	}
	return t.Format(time.DateOnly)
}

// dayOf is the calendar day of t, at midnight UTC.
func dayOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// readContractRecords reads contracts ids in bulk (psa.BulkReader); a
// backend without a bulk read spends no request on end dates, and a
// contract the bulk read leaves out is not read alone: the contract check
// and the reads of the pass tell why. A read that succeeds is progress of
// the pass (progressed), as every read of its plan.
func (e *Engine) readContractRecords(ctx context.Context, ids []string) (map[string]*psa.Contract, map[string]error) {
	if br, ok := e.be.(psa.BulkReader); ok {
		got, err := br.GetContracts(ctx, ids)
		errs := map[string]error{}
		if err != nil {
			for _, id := range ids {
				errs[id] = err
			}
			return map[string]*psa.Contract{}, errs
		}
		e.progressed()
		for _, id := range ids {
			if got[id] == nil {
				errs[id] = errNotRead
			}
		}
		return got, errs
	}
	return map[string]*psa.Contract{}, map[string]error{}
}

// readCompanyStates reads in bulk (psa.BulkReader.GetCompanies) the
// companies of the contracts found by the day's read of their records and
// marks a contract whose company is deactivated in the PSA
// (psa.Contract.CompanyInactive): an Autotask company made inactive, a
// ConnectWise company deleted (what a merge leaves: its status stays
// Active) or whose status is Inactive. Its customer then fails
// (checkContract), as a Kaseya BMS one whose account was deactivated
// does, instead of being billed on. One request per 500 Autotask
// companies or 100 ConnectWise ones, at the day's read only (and for the
// contracts read again at every pass: ended, or failing a check). Kaseya
// BMS (a psa.ContractReadCoster) is left out: its contract reads join the
// account lookup and say it themselves. A company the read leaves out is
// taken as active (the contract's own checks stand), and a read that
// fails is logged and changes nothing: the customers are billed as
// before.
func (e *Engine) readCompanyStates(ctx context.Context, found map[string]*psa.Contract) {
	br, ok := e.be.(psa.BulkReader)
	if !ok || len(found) == 0 {
		return
	}
	if _, joined := e.be.(psa.ContractReadCoster); joined {
		return
	}
	var ids []string
	seen := map[string]bool{}
	for _, ct := range found {
		if ct.CompanyID != "" && !seen[ct.CompanyID] {
			seen[ct.CompanyID] = true
			ids = append(ids, ct.CompanyID)
		}
	}
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids)
	companies, err := br.GetCompanies(ctx, ids)
	if err != nil {
		e.logger.Warn("Could not read the companies of the mapped contracts; a company deactivated in the PSA is not noticed until the next read", "companies", len(ids), "err", err)
		return
	}
	e.progressed()
	for _, ct := range found {
		if c := companies[ct.CompanyID]; c != nil && !c.Active {
			ct.CompanyInactive = true
		}
	}
}

// recordProblem is checkContract of contract ct, read for customer mapping
// cm by checkContractEnds, but for its status where the backend checks the
// status itself before every write (psa.WriteChecker: ConnectWise reads
// it fresh, and says that the mapping is stale in its own words).
func (e *Engine) recordProblem(cm export.CustomerMapping, ct psa.Contract) (string, error) {
	if _, ok := e.be.(psa.WriteChecker); ok {
		ct.Active = true
	}
	return e.checkContract(cm, &ct, nil)
}

// contractView is the part of a contract's record that its dates' checks
// read.
type contractView struct {
	name       string
	start, end time.Time
}

// errNotRead marks a contract the bulk read of end dates left out.
var errNotRead = errors.New("not returned by the bulk read")

func quotedName(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (%q)", name)
}

// notStartedProblem is the hint and the error of customer mapping cm,
// whose contract (named name) starts on start, after the effective date
// effDay.
func notStartedProblem(cm export.CustomerMapping, name, start, effDay string) (string, error) {
	return fmt.Sprintf("map customer %s/%s's contract_id to the contract in force on %s and name this one in next_contract_id: psa-syncd then bills on it from %s on",
			cm.Source, cm.CustomerID, effDay, start),
		fmt.Errorf("contract %s%s starts on %s, after the effective date %s, and nothing was written to it", cm.ContractID, quotedName(name), start, effDay)
}

// endedProblem is the hint and the error of customer mapping cm, whose
// contract (named name) ended on end, before the effective date effDay.
func endedProblem(cm export.CustomerMapping, sys psa.System, name, end, effDay string) (string, error) {
	return renewalHint(cm, sys), fmt.Errorf("contract %s%s ended on %s, before the effective date %s: the customer mapping is stale, and nothing was written to it",
		cm.ContractID, quotedName(name), end, effDay)
}

// renewalHint is the fix of a customer whose contract ended: the Terraform
// change that maps it to the contract that follows.
func renewalHint(cm export.CustomerMapping, sys psa.System) string {
	return fmt.Sprintf("map customer %s/%s to the contract that follows it (data.psa_contract with company_id = %q and the new contract's name gives contract_id, or next_contract_id ahead of the end) and re-run terraform apply, or, if the contract goes on, move its end date in %s; the next pass then writes the lines",
		cm.Source, cm.CustomerID, cm.CompanyID, systemName(sys))
}

// setContractsEnding sets psa_sync_contracts_ending from pass p, and keeps
// its values in the state database, so that a restart neither resolves
// nor fires PsaSyncContractEndingSoon. A pass that did not count them
// (the PSA's address answered with what is not its API) leaves them. The
// contracts counted are kept too, so that an export loaded before the next
// pass can drop those it maps otherwise (stillEnding).
func (e *Engine) setContractsEnding(p *pass) {
	if e.metrics == nil || p.endingCounts == nil {
		return
	}
	e.setEndingGauge(p.endingCounts)
	if e.db != nil {
		if err := e.db.PutSnapshot(snapshotContractsEnding, p.endingCounts); err != nil {
			e.logger.Warn("Could not record the count of mapped contracts ending", "err", err)
		}
		// Not nil: a stored empty list tells "none ending" from a state
		// database a psa-syncd without the list wrote. Written only when
		// it changed: a pass that writes nothing keeps to its few commits.
		list := append([]ContractEnding{}, p.plan.ContractsEnding...)
		data, err := json.Marshal(list)
		if err == nil {
			var old string
			var found bool
			if old, found, err = e.db.SnapshotText(snapshotContractsEndingList); err == nil && found && old == string(data) {
				return
			}
		}
		if err := e.db.PutSnapshot(snapshotContractsEndingList, list); err != nil {
			e.logger.Warn("Could not record the mapped contracts ending", "err", err)
		}
	}
}

// stillEnding counts by when the contracts of ending, the last pass's
// Plan.ContractsEnding, that doc still maps as that pass counted them: to
// the same customer, with usage sync on, as its contract_id and with no
// next_contract_id. A renewal named in next_contract_id, a customer
// mapped to another contract, and one whose mapping was removed or whose
// usage sync was turned off are not counted by the next pass either, and
// their alert must not wait for it (up to a month on a monthly schedule).
// A contract the new export maps that the last pass did not count is left
// to the next pass, which reads its end date.
func stillEnding(ending []ContractEnding, doc *export.Document) map[string]int {
	type key struct{ source, customer string }
	mapped := make(map[key]export.CustomerMapping, len(doc.CustomerMappings))
	for _, cm := range doc.CustomerMappings {
		mapped[key{cm.Source, cm.CustomerID}] = cm
	}
	counts := map[string]int{}
	for _, c := range ending {
		cm, ok := mapped[key{c.Source, c.CustomerID}]
		if ok && cm.UsageSync && cm.ContractID == c.ContractID && cm.NextContractID == "" {
			counts[c.When]++
		}
	}
	return counts
}

// setEndingGauge sets psa_sync_contracts_ending to counts, by when.
func (e *Engine) setEndingGauge(counts map[string]int) {
	if e.metrics == nil || e.metrics.ContractsEnding == nil {
		return
	}
	for _, w := range EndingWhens {
		e.metrics.ContractsEnding.WithLabelValues(w).Set(float64(counts[w]))
	}
}

// recheckBatch holds the customers of a pass whose updates wait for their
// contracts' records to be read again (recheckContracts) before they go to
// the writer that writes while the pass reads (pass.early). It keeps where
// each customer's changes start in the plan's, not a slice of them: the
// plan's changes may still grow past their array, and a change the flush
// fails (customerJobs) must be failed in the plan.
type recheckBatch struct {
	cps   []*customerPass
	first []int
	ids   map[string]bool
}

// add adds customer cp, whose changes start at first in the plan's, and
// returns how many contracts the batch holds.
func (b *recheckBatch) add(cp *customerPass, first int) int {
	if b.ids == nil {
		b.ids = map[string]bool{}
	}
	b.cps, b.first = append(b.cps, cp), append(b.first, first)
	b.ids[cp.m.ContractID] = true
	return len(b.ids)
}

// flush reads the batch's contracts again and hands the updates of the
// customers that pass to the early writer; the batch is then empty.
func (b *recheckBatch) flush(ctx context.Context, e *Engine, p *pass) {
	e.recheckContracts(ctx, p, b.cps)
	e.handEarly(ctx, p, b.cps, b.first)
	*b = recheckBatch{}
}

// readThisPass reports whether checkContractEnds read, or tried to read,
// the record of contract id in this pass (one it left out, or could not
// read, is left to the contract check and the pass's own reads, which say
// why), or recheckContracts read it.
func (p *pass) readThisPass(id string) bool {
	return p.records[id] != nil || p.recordErrs[id] != nil
}

// recheckShare is how many writes of a pass a request of the Kaseya BMS
// re-read of the contracts written to must be outweighed by
// (recheckContracts).
const recheckShare = 10

// recheckContracts reads again, in bulk, the records of the contracts that
// customers cps, which have updates, are about to write to (those not
// failed and not yet handed to a writer) when this pass has not read them:
// checkContractEnds reads a contract's record once a day, and a contract
// moved to another company, cancelled or made inactive in the PSA since
// then would otherwise be written to until the next day's read (Acme's
// units on Globex's contract). A customer whose contract now fails the
// check of the day's read (recordProblem, its start and its end) fails
// with the same error and hint, and nothing is written to it. The pass
// reads only the contracts it writes to: none when nothing changes, one
// Autotask query per 500 contracts (one ConnectWise request per 100), and
// a pass that read the records for the day reads none again. What is read
// is kept in e.terms, as the day's read is. A read that fails, or leaves a
// contract out, leaves the customers to the day's terms, as before. Only
// a pass that writes calls it: a plan or a dry run goes by the day's
// records.
//
// Kaseya BMS (a psa.ContractReadCoster) reads them again only when the
// read costs at most a tenth of the pass's writes (recheckShare): its read
// of a few contracts costs three requests each, and of 25 or more the
// lookups by id (100 a request), the contract summary and the account
// lookup, a few requests, where a pass otherwise sends one post per
// changed line and nothing else; a pass that writes to a few contracts so
// goes by the day's records, as before. ConnectWise is left out
// (a psa.RecordWriteChecker): its status read before the writes
// (checkWrites) returns the agreements' records, which are checked there.
func (e *Engine) recheckContracts(ctx context.Context, p *pass, cps []*customerPass) {
	if _, ok := e.be.(psa.BulkReader); !ok {
		return
	}
	if _, folded := e.be.(psa.RecordWriteChecker); folded {
		// The status read before the writes reads the records too
		// (checkWrites checks them).
		return
	}
	var ids []string
	var todo []*customerPass
	seen := map[string]bool{}
	for _, cp := range cps {
		if cp.err != nil || cp.written || p.readThisPass(cp.m.ContractID) {
			continue
		}
		todo = append(todo, cp)
		if !seen[cp.m.ContractID] {
			seen[cp.m.ContractID] = true
			ids = append(ids, cp.m.ContractID)
		}
	}
	if len(ids) == 0 {
		return
	}
	if rc, costly := e.be.(psa.ContractReadCoster); costly {
		posts := 0
		for _, cp := range todo {
			for _, c := range cp.changes {
				if c.Action == ActionUpdate {
					posts++
				}
			}
		}
		if cost := rc.ContractReadCost(len(ids)); cost*recheckShare > posts {
			e.logger.Debug("Not reading again the records of the contracts the pass writes to: the read costs more than a tenth of the pass's writes; their terms as read earlier in the day stand",
				"contracts", len(ids), "requests", cost, "writes", posts)
			return
		}
	}
	found, errs := e.readContractRecords(ctx, ids)
	for _, id := range ids {
		if err := errs[id]; err != nil && !errors.Is(err, errNotRead) {
			e.logger.Warn("Could not read again the records of the contracts the pass writes to; their terms as read earlier in the day stand",
				"contracts", len(ids), "err", err)
			return
		}
	}
	e.keepRecords(p, ids, found)
	e.checkRecords(p, todo, found)
}

// keepRecords keeps the records found of contracts ids, read again within
// the day, in e.terms and as this pass's records, and in the state
// snapshot when one of them differs from the record kept. A re-read that
// finds the records as the day's read did saves nothing: the snapshot
// holds every mapped contract (at 20,000 contracts several MB of JSON,
// encoded and stored at each batch of 500 contracts a pass writes to), and
// only the read times would change; a process that restores it reads the
// day's records when they fall due, as it would have.
func (e *Engine) keepRecords(p *pass, ids []string, found map[string]*psa.Contract) {
	sys := e.be.System()
	now := e.now()
	changed := false
	for _, id := range ids {
		if ct := found[id]; ct != nil {
			old, ok := e.terms.get(sys, id)
			if ok && old.ct.CompanyInactive && old.ct.CompanyID == ct.CompanyID {
				// The read within the day does not read the company
				// (readCompanyStates): the day's state of it stands.
				ct.CompanyInactive = true
			}
			if !ok || !sameRecord(*old.ct, *ct) {
				changed = true
			}
			e.terms.put(sys, id, contractTerm{ct: ct, readAt: now})
			p.records[id] = ct
		}
	}
	if e.db != nil && changed {
		if err := e.terms.save(e.db, now); err != nil {
			e.logger.Warn("Could not keep the mapped contracts' end dates in the state database; the next process reads them again", "err", err)
		}
	}
}

// sameRecord reports whether contract records a and b say the same (their
// dates compared as instants).
func sameRecord(a, b psa.Contract) bool {
	return a.StartDate.Equal(b.StartDate) && a.EndDate.Equal(b.EndDate) &&
		a.ID == b.ID && a.CompanyID == b.CompanyID && a.Name == b.Name && a.Type == b.Type && a.Status == b.Status &&
		a.Active == b.Active && a.Recurring == b.Recurring && a.BillingCycle == b.BillingCycle && a.CompanyInactive == b.CompanyInactive
}

// checkRecords fails the customers cps whose contract's record, read
// again within the day (found), fails the checks of the day's read
// (recordProblem, its start and its end), with the same error and hint. A
// customer whose contract found lacks is left to the day's terms.
func (e *Engine) checkRecords(p *pass, cps []*customerPass, found map[string]*psa.Contract) {
	sys := e.be.System()
	effDay := p.plan.EffectiveDate.Format(time.DateOnly)
	for _, cp := range cps {
		ct := found[cp.m.ContractID]
		if ct == nil || cp.err != nil {
			continue
		}
		if hint, err := e.recordProblem(*cp.m, *ct); err != nil {
			cp.err, cp.hint = err, hint
			continue
		}
		if start := ct.StartDate.Format(time.DateOnly); !ct.StartDate.IsZero() && start > effDay {
			cp.hint, cp.err = notStartedProblem(*cp.m, ct.Name, start, effDay)
			continue
		}
		if end := ct.EndDate.Format(time.DateOnly); !ct.EndDate.IsZero() && end < effDay {
			cp.hint, cp.err = endedProblem(*cp.m, sys, ct.Name, end, effDay)
		}
	}
}

// checkServices reads in bulk (psa.BulkReader.GetServices) the mapped
// services serviceIDs (those the source's product mappings with sync on
// name) once a day (contractCheckTTL), and one found inactive at every
// pass, so that one made active again is written at once; it returns the
// services the PSA says are inactive, whose lines then fail before
// anything is written (inactiveServiceError), and whose lines above 0,
// unchanged ones included, are listed (inactiveServiceLine). Without it, ConnectWise
// takes a change of an addition whose catalog item the MSP made inactive
// (the usage is billed on a retired product, unnoticed), and Autotask
// refuses the write only when it is sent, with a message that names no
// mapping to change.
//
// One Autotask query per 500 services, one ConnectWise request per 100:
// one a day for most tenants, and one more per pass while a mapped
// service is inactive. Kaseya BMS reads services from its catalog search
// (one page for a catalog of up to 100 services, at most one request
// more than reading each service alone), which its writes' preload
// (preloadServices) then takes within the backend's time to live; it
// refuses a post of an inactive service, but nothing else would report
// an unchanged line of one. A pass with no customer left to decide reads
// none. A read that fails is logged, and the states read before stand; a
// service the read leaves out is read alone (confirmGoneServices), and
// one the PSA says does not exist is gone: a pass reads it again a day
// later, or once the products whose mappings name it (products, by
// service) change, not at every pass. What is read is kept in e.terms and, unless
// record is false (a plan changes no state), in its snapshot. A plan
// (record false), which operators review before invoicing, reads every
// mapped service again, not only once a day: one request per 500 Autotask
// services (100 ConnectWise catalog items, a BMS service search page) per
// plan, none for the services this process read within
// recentServiceRead (the impact report's second plan, a status page
// opened again).
func (e *Engine) checkServices(ctx context.Context, p *pass, serviceIDs []string, products map[string][]string, record bool) map[string]serviceTerm {
	br, ok := e.be.(psa.BulkReader)
	if !ok || len(serviceIDs) == 0 {
		return nil
	}
	if !slices.ContainsFunc(p.customers, func(cp *customerPass) bool { return cp.err == nil }) {
		return nil
	}
	sys := e.be.System()
	now := e.now()
	var ids []string
	for _, id := range serviceIDs {
		s, ok := e.terms.service(sys, id)
		age := now.Sub(s.readAt)
		switch {
		case !ok || age < 0:
		case record && s.active && age < contractCheckTTL:
			continue
		case record && s.gone && age < contractCheckTTL && slices.Equal(s.products, products[id]):
			// Deleted, a service does not come back: it is not read
			// again within the day unless the product mappings that
			// name it change.
			continue
		case !record && s.active && s.kept && age < recentServiceRead:
			// A plan, which operators review before invoicing, reads
			// them again unless this process just did.
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) > 0 {
		if got, err := br.GetServices(ctx, ids); err != nil {
			e.logger.Warn("Could not read the mapped services; a service made inactive in the PSA is noticed at the next read", "services", len(ids), "err", err)
		} else {
			e.progressed()
			e.servicesRead = map[string]bool{}
			var absent []string
			for _, id := range ids {
				e.servicesRead[id] = true
				if s := got[id]; s != nil {
					e.terms.putService(sys, id, serviceTerm{name: s.Name, active: s.Active, readAt: now, kept: true})
				} else {
					absent = append(absent, id)
				}
			}
			gone := e.confirmGoneServices(ctx, absent, products)
			if record && e.db != nil && (len(got) > 0 || gone > 0) {
				if err := e.terms.saveServices(e.db, now); err != nil {
					e.logger.Warn("Could not keep the mapped services' states in the state database; the next process reads them again", "err", err)
				}
			}
		}
	}
	var inactive map[string]serviceTerm
	for _, id := range serviceIDs {
		if s, ok := e.terms.service(sys, id); ok && !s.active {
			if inactive == nil {
				inactive = map[string]serviceTerm{}
			}
			inactive[id] = s
		}
	}
	if len(inactive) > 0 {
		first := slices.Sorted(maps.Keys(inactive))[0]
		if inactive[first].gone {
			e.logger.Warn("Mapped services were not found in the PSA (deleted): their lines are not written; end their lines and map their products to active services",
				"services", len(inactive), "first_service", first, "first_name", inactive[first].name)
			return inactive
		}
		e.logger.Warn("Mapped services are inactive in the PSA: their lines are not written; make them active again or map their products to active services",
			"services", len(inactive), "first_service", first, "first_name", inactive[first].name)
	}
	return inactive
}

// inactiveServiceLine lists change c of customer mapping cm, a line of
// service s, which the PSA says is inactive (checkServices), in pass p's
// Unmapped.InactiveServices when the line is above 0: it goes on
// invoicing. A line with nothing to write (unchanged) says so in its
// reason as well, since no write fails for it; a line that was to change
// fails (inactiveServiceError), which says why.
func (e *Engine) inactiveServiceLine(p *pass, cm *export.CustomerMapping, c *Change, s serviceTerm) {
	if !c.CurrentKnown || c.Current <= 0 {
		return
	}
	name := cmp.Or(s.name, c.ServiceName)
	unchanged := c.Action == ActionUnchanged
	p.plan.Unmapped.InactiveServices = append(p.plan.Unmapped.InactiveServices, InactiveServiceLine{
		CustomerID: cm.CustomerID, CustomerName: cm.CustomerName, ContractID: c.ContractID,
		ServiceID: c.ServiceID, ServiceName: name, Quantity: c.Current, Failed: !unchanged, Gone: s.gone,
	})
	if unchanged {
		sys := systemName(e.be.System())
		c.Reason += fmt.Sprintf("; service %s%s %s, yet this line goes on invoicing %d units (nothing is written to it, so nothing refuses it): if the service was retired, end the line in %s (or set it to 0) and point the product mappings that name it (psa_product_mapping with service_id = %q) at an active service, else the new line bills beside it; if it is still sold, make it active again",
			c.ServiceID, quotedName(name), serviceStateText(s, sys), c.Current, sys, c.ServiceID)
	}
}

// inactiveServiceError is the error of change c, a line of service s,
// which the PSA says is inactive (checkServices): nothing is written to
// the line, and the hint names the service and the product mappings to
// change.
func (e *Engine) inactiveServiceError(c *Change, s serviceTerm) error {
	sys := systemName(e.be.System())
	he := &hintedError{
		err: fmt.Errorf("service %s%s %s, so nothing was written to its line on contract %s (%d units wanted, %s)",
			c.ServiceID, quotedName(s.name), serviceStateText(s, sys), c.ContractID, c.Desired, c.Reason),
		hint: inactiveServiceHint(sys, c.ServiceID, s.name, c.Products),
	}
	if s.gone {
		he.hint = goneServiceHint(sys, c.ServiceID, s.name, c.Products)
	}
	return he
}

// goneServiceHint is the fix of a line whose service, serviceID (named
// name, fed by products), is no longer in PSA sys's catalog.
func goneServiceHint(sys, serviceID, name string, products []string) string {
	fed := ""
	if len(products) > 0 {
		fed = ": products " + strings.Join(products, ", ")
	}
	return fmt.Sprintf("service %s%s was deleted in %s: point the product mappings that name it (psa_product_mapping with service_id = %q%s) at an active service (a psa_service that managed it is created again by terraform apply, under a new id) and re-run terraform apply; end in %s the lines it still bills",
		serviceID, quotedName(name), sys, serviceID, fed, sys)
}

// serviceStateText says what the PSA, named sys, says of service s, which
// is not active: "is inactive in Autotask", or that it was not found.
func serviceStateText(s serviceTerm, sys string) string {
	if s.gone {
		return "was not found in " + sys + " (deleted; it is no longer in the service catalog)"
	}
	return "is inactive in " + sys
}

// goneServicesChecked bounds the services a bulk read of the mapped
// services left out that checkServices reads alone to confirm they are
// gone: more than that is taken for a partial answer.
const goneServicesChecked = 5

// confirmGoneServices reads alone the services absent, which a bulk read
// of the mapped services that succeeded left out, and marks those the PSA
// says do not exist (psa.ErrNotFound) gone in e.terms: their lines are
// listed and fail as those of an inactive service do. A service that the
// read alone finds is kept as read (the bulk answer was partial), and one
// whose read fails is left as it was. More than goneServicesChecked
// services left out are taken for a partial answer (a proxy, a page that
// lost its rows), logged, and none is read alone or marked. It returns
// how many services it marked gone. A gone service keeps products[id],
// the products whose mappings name it.
func (e *Engine) confirmGoneServices(ctx context.Context, absent []string, products map[string][]string) int {
	if len(absent) == 0 {
		return 0
	}
	if len(absent) > goneServicesChecked {
		e.logger.Warn("The read of the mapped services left many out; taken for a partial answer, their states read before stand",
			"services", len(absent), "first_service", absent[0])
		return 0
	}
	sys, now := e.be.System(), e.now()
	gone := 0
	for _, id := range absent {
		s, err := e.be.GetService(ctx, id)
		if err == nil || errors.Is(err, psa.ErrNotFound) {
			e.progressed() // the PSA answered
		}
		switch {
		case errors.Is(err, psa.ErrNotFound):
			old, _ := e.terms.service(sys, id)
			e.terms.putService(sys, id, serviceTerm{name: old.name, gone: true, products: slices.Clone(products[id]), readAt: now})
			gone++
		case err != nil:
			e.logger.Warn("Could not read a mapped service the read of the services left out", "service", id, "err", err)
		case s != nil:
			e.terms.putService(sys, id, serviceTerm{name: s.Name, active: s.Active, readAt: now})
		}
	}
	return gone
}

// inactiveServiceHint is the fix of a line whose service, serviceID
// (named name, fed by products), is inactive in PSA sys.
func inactiveServiceHint(sys, serviceID, name string, products []string) string {
	fed := ""
	if len(products) > 0 {
		fed = ": products " + strings.Join(products, ", ")
	}
	return fmt.Sprintf("service %s%s is inactive in %s: if it is still sold, make it active again (psa_service, or in %s); if it was retired, point the product mappings that name it (psa_product_mapping with service_id = %q%s) at an active service and re-run terraform apply; the next pass then writes the line",
		serviceID, quotedName(name), sys, sys, serviceID, fed)
}

// readRefusedServices reads, after the writes of pass p, the services of
// the lines the PSA refused (a *psa.ValidationError: Autotask's "The
// service N is inactive and cannot be adjusted.", a service made inactive
// since the day's read of the services, or Kaseya BMS, whose services the
// day's read leaves out), so that the hint of such a line says plainly
// whether its service is inactive (refusedLineHint) instead of guessing
// from the PSA's message. One bulk read of the refused lines' services
// (one request for most), only when the PSA refused a line; what is read
// is kept as checkServices keeps it, so that the next pass fails the
// lines of an inactive service before writing them. A read that fails
// leaves the hint to say that it could not tell.
func (e *Engine) readRefusedServices(ctx context.Context, p *pass) {
	br, ok := e.be.(psa.BulkReader)
	if !ok {
		return
	}
	var ids []string
	seen := map[string]bool{}
	for _, cp := range p.customers {
		for i, err := range cp.errs {
			var ve *psa.ValidationError
			if err == nil || i >= len(cp.changes) || !errors.As(err, &ve) {
				continue
			}
			if id := cp.changes[i].ServiceID; !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return
	}
	got, ok := e.readServices(ctx, br, ids, "Could not read the services of the lines the PSA refused")
	if !ok {
		return
	}
	e.refusedRead = map[string]bool{}
	for _, id := range ids {
		if got[id] != nil {
			e.refusedRead[id] = true
		}
	}
}

// keepServicesRead keeps the states of the services of ids that a bulk
// read got (those it left out are not touched), as read now by this
// process, in memory and in the state database's service states.
// readServices reads services ids in bulk, in ID order, and keeps what
// it finds (keepServicesRead). A read that fails is logged with failed,
// which says what the pass does without it, and ok is false.
func (e *Engine) readServices(ctx context.Context, br psa.BulkReader, ids []string, failed string) (got map[string]*psa.Service, ok bool) {
	slices.SortFunc(ids, compareIDs)
	got, err := br.GetServices(ctx, ids)
	if err != nil {
		e.logger.Warn(failed, "services", len(ids), "err", err)
		return nil, false
	}
	e.progressed()
	e.keepServicesRead(ids, got)
	return got, true
}

func (e *Engine) keepServicesRead(ids []string, got map[string]*psa.Service) {
	sys, now := e.be.System(), e.now()
	for _, id := range ids {
		if s := got[id]; s != nil {
			e.terms.putService(sys, id, serviceTerm{name: s.Name, active: s.Active, readAt: now, kept: true})
		}
	}
	if e.db != nil && len(got) > 0 {
		if err := e.terms.saveServices(e.db, now); err != nil {
			e.logger.Warn("Could not keep the mapped services' states in the state database; the next process reads them again", "err", err)
		}
	}
}

// refusedLineHint is the hint of a write of a line of service serviceID,
// on the contract of customer mapping cm, that the PSA refused with ve:
// what the last read of the service (readRefusedServices, checkServices)
// says of it: inactive (as read at any time: the PSA refuses its lines),
// or active as read after the refusal.
func (e *Engine) refusedLineHint(ve *psa.ValidationError, cm export.CustomerMapping, serviceID string) string {
	sys := systemName(e.be.System())
	refusal := strings.Join(ve.Messages, "; ")
	s, ok := e.terms.service(e.be.System(), serviceID)
	switch {
	case ok && !s.active:
		return fmt.Sprintf("%s refused the change (%s): %s", sys, refusal, inactiveServiceHint(sys, serviceID, s.name, nil))
	case ok && e.refusedRead[serviceID]:
		// Read after the refusal: an earlier read that found it
		// active says nothing of the refusal.
		return fmt.Sprintf("%s refused the change (%s); service %s%s is active in %s, so the refusal concerns the line or contract %s of customer mapping %s/%s: fix what the message names in %s, then run the pass again",
			sys, refusal, serviceID, quotedName(s.name), sys, cm.ContractID, cm.Source, cm.CustomerID, sys)
	default:
		return fmt.Sprintf("%s refused the change (%s), and psa-syncd could not read service %s to tell whether it is inactive: check it in %s; an inactive service is made active again (psa_service) or replaced in the product mappings that name it (psa_product_mapping with service_id = %q), and terraform apply re-run",
			sys, refusal, serviceID, sys, serviceID)
	}
}

// recheckServices reads again, in bulk, the services that customers cps,
// about to be written, update, when this pass has not read them
// (checkServices reads them once a day), on a backend that takes the
// writes of an inactive service (ConnectWise, a psa.WriteChecker: it
// changes an addition of an inactive catalog item): a catalog item made
// inactive since the morning's read would otherwise be billed on until
// the next day's. A line of a service now inactive fails as checkServices'
// lines do, and nothing is written to it. One request per 100 catalog
// items written to, on a pass that writes and only then; what is read is
// kept as checkServices keeps it. Autotask and Kaseya BMS refuse such a
// write, and readRefusedServices then names the service. A read that fails
// is logged and leaves the lines to the states read before.
func (e *Engine) recheckServices(ctx context.Context, cps []*customerPass) {
	br, ok := e.be.(psa.BulkReader)
	if !ok {
		return
	}
	if _, checks := e.be.(psa.WriteChecker); !checks {
		return
	}
	if _, preloads := e.be.(psa.ServicePreloader); preloads {
		return
	}
	var ids []string
	seen := map[string]bool{}
	for _, cp := range cps {
		if cp.err != nil || cp.written {
			continue
		}
		for _, c := range cp.changes {
			if c.Action == ActionUpdate && !seen[c.ServiceID] && !e.servicesRead[c.ServiceID] {
				seen[c.ServiceID] = true
				ids = append(ids, c.ServiceID)
			}
		}
	}
	if len(ids) == 0 {
		return
	}
	got, ok := e.readServices(ctx, br, ids, "Could not read again the services the pass writes; their states as read earlier in the day stand")
	if !ok {
		return
	}
	for _, cp := range cps {
		if cp.err != nil || cp.written {
			continue
		}
		for i := range cp.changes {
			c := &cp.changes[i]
			if s := got[c.ServiceID]; s != nil && !s.Active && c.Action == ActionUpdate {
				cp.fail(i, e.inactiveServiceError(c, serviceTerm{name: s.Name}), c)
			}
		}
	}
}
