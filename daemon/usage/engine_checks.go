package usage

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// plan changes no state). A customer whose contract fails the check fails
// with the hint checkContract gives.
func (e *Engine) checkContracts(ctx context.Context, cps []*customerPass, record bool) {
	if len(cps) == 0 {
		return
	}
	sys := e.be.System()
	var ids []string
	for _, cp := range cps {
		if !slices.Contains(ids, cp.m.ContractID) {
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
	for _, cp := range cps {
		if c, ok := known[cp.m.ContractID]; ok && stillVerified(c, *cp.m, now) {
			continue
		}
		todo = append(todo, cp)
		if !slices.Contains(lookup, cp.m.ContractID) {
			lookup = append(lookup, cp.m.ContractID)
		}
	}
	if len(todo) == 0 {
		return
	}
	found, errs := e.lookUpContracts(ctx, lookup)
	var checks []state.ContractCheck
	for _, cp := range todo {
		id := cp.m.ContractID
		ct := found[id]
		cp.hint, cp.err = e.checkContract(*cp.m, ct, errs[id])
		if ct != nil && !slices.ContainsFunc(checks, func(c state.ContractCheck) bool { return c.ContractID == id }) {
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
// once, in the order of the writes (customers is in that order), instead
// of at each contract's first write. A customer whose contract it refuses
// fails as if its contract could not be read, before anything is written.
func (e *Engine) checkWrites(ctx context.Context, customers []*customerPass) {
	wc, ok := e.be.(psa.WriteChecker)
	if !ok {
		return
	}
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
	refused, err := wc.CheckWrites(ctx, ids)
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
