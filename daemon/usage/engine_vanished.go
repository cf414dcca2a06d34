package usage

import (
	"fmt"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// vanishedLine decides c, a change the pass would make by adding a line
// (the PSA's read shows no line of c's service on c's contract, and the
// usage wants units), when psa-syncd's ledger says it set that line itself,
// to units above 0, in force at c's effective date (state.DB.SetBefore):
// it holds c for an operator (HoldVanished) rather than add the line again.
//
// A read that answers without the line, and without an error, does not
// prove the line gone: a ConnectWise API member whose security role cannot
// see an agreement's additions gets `[]`, an Autotask security level that
// cannot see the unit rows gets no rows, and a cache or proxy may serve an
// old or partial page. Adding the line then doubles it: a ConnectWise
// addition or a Kaseya BMS line more, an Autotask adjustment that adds the
// whole quantity to the units already there, at every pass. Only the
// operator can tell a read that cannot see the line from a line that was
// ended or deleted in the PSA; an approval of that one line
// (PassOptions.ApproveService, at c's desired units or any) adds it again.
// An approval of every held line (Approve alone) does not: a read that
// cannot see one contract's lines usually cannot see many.
//
// A line psa-syncd last set to 0 has nothing to double, and a line it never
// set is a new line: both are added as before. It returns an error only
// when the ledger cannot be read; the line then fails, and nothing is
// added.
//
// set returns the lines of c's chunk of contracts that psa-syncd ever set
// above 0 (ledgerSets.of): only those are looked up one by one. own, for a
// plan that reconciles nothing, is the entry the pass's Reconcile adds
// first for the line's own open intent (ownReconciled), or nil: a write
// that set the line to 0, which a read at the intent's date confirmed (a
// read without the line confirms none: see intentOutcome), is psa-syncd's
// last one in that pass's ledger, and leaves nothing to double.
func (e *Engine) vanishedLine(c *Change, o PassOptions, period source.Period, set func() (map[psa.LineKey]bool, error), own *state.LedgerEntry) error {
	if e.db == nil || c.Desired <= 0 {
		return nil
	}
	lines, err := set()
	if err == nil && !lines[psa.LineKey{ContractID: c.ContractID, ServiceID: c.ServiceID}] && (own == nil || own.After <= 0) {
		return nil
	}
	var le state.LedgerEntry
	var ok bool
	if err == nil {
		le, ok, err = e.db.SetBefore(c.ContractID, c.ServiceID, c.EffectiveDate.AddDate(0, 0, 1))
	}
	if err != nil {
		return fmt.Errorf("the PSA shows no line of service %s on contract %s; reading psa-syncd's ledger for one it set, before adding it, failed: %w",
			c.ServiceID, c.ContractID, err)
	}
	// Reconcile's entry comes after every other, unless one is dated later.
	if own != nil && (!ok || !own.EffectiveDate.Before(le.EffectiveDate)) {
		le, ok = *own, true
	}
	if !ok || le.System != e.be.System() || le.After <= 0 {
		return nil
	}
	sys := systemName(e.be.System())
	what := fmt.Sprintf("; %s shows no line of this service on the contract at %s, but psa-syncd set it to %d from %s (run %d)",
		sys, c.EffectiveDate.Format(time.DateOnly), le.After, le.EffectiveDate.Format(time.DateOnly), le.RunID)
	units := o.ApproveUnits
	if o.Approve && o.ApproveService == c.ServiceID && (units == nil || *units == c.Desired) {
		c.Reason += what + ": approved, so it is added again"
		return nil
	}
	c.Action, c.vanished = ActionHeld, true
	c.Reason += fmt.Sprintf("%s: held for review, since a read that cannot see the line (%s) would have it added a second time; "+
		"if the line is really gone from the contract (ended or deleted in %s), add it again with %s",
		what, cannotSee(sys), sys, approveCommand(c.CustomerID, c.ServiceID, c.Desired, period))
	return nil
}

// cannotSee names what makes a read of sys answer without a line that is
// there.
func cannotSee(sys string) string {
	switch sys {
	case "ConnectWise":
		return "the API member's security role cannot see the agreement's additions, or a cache or proxy served an old page"
	case "Autotask":
		return "the API user's security level cannot see the contract's service units, the line's unit rows do not reach that date, or a cache or proxy served an old page"
	}
	return "a security role that cannot see it, or a cache or proxy that served an old page"
}

// ledgerSets reads, for the plan, the lines that psa-syncd ever set above
// 0 on a chunk of contracts (state.DB.LinesSet), once per chunk and only
// for a chunk with a line the plan would add: a pass that adds no line
// reads nothing, and one that adds many (a first pass) reads once per
// chunk, not once per line.
type ledgerSets struct {
	e     *Engine
	chunk int
	lines map[psa.LineKey]bool
	err   error
}

// of returns the function that gives the lines set on chunk i of rd.
func (s *ledgerSets) of(rd *lineReader, i int) func() (map[psa.LineKey]bool, error) {
	return func() (map[psa.LineKey]bool, error) {
		if s.chunk != i {
			s.chunk = i
			s.lines, s.err = s.e.db.LinesSet(s.e.be.System(), rd.chunks[i])
		}
		return s.lines, s.err
	}
}

// writesDeltas reports whether system's writes of a line's quantity are
// changes by a difference computed from the pass's read (an Autotask
// service adjustment), not the quantity itself.
func writesDeltas(system psa.System) bool {
	return system == psa.SystemAutotask
}

// staleRead decides c, a change of a line the PSA's read shows (c.Current)
// on a PSA whose writes are deltas (writesDeltas), when psa-syncd's ledger
// says that the change in force at c's effective date is its own, from
// exactly c.Current to another quantity: the read shows the line as it was
// before psa-syncd's last write of it. A read that predates that write (a
// cache or proxy serving an old page) would have the adjustment, computed
// from it, apply that write's change a second time (read 40 while the line
// is 45: +5 on 45). It holds c for an operator (HoldStaleRead), whom an
// approval of that one line (PassOptions.ApproveService) overrides: someone
// set the line back by hand. An approval of every held line does not.
//
// in returns the ledger entries in force at c's effective date of the
// lines of c's chunk of contracts (ledgerInForce.of). It returns an error
// only when the ledger cannot be read; the line then fails, and nothing is
// written.
func (e *Engine) staleRead(c *Change, o PassOptions, period source.Period, in func() (map[psa.LineKey]state.LedgerEntry, error)) error {
	if e.db == nil {
		return nil
	}
	entries, err := in()
	if err != nil {
		return fmt.Errorf("reading psa-syncd's ledger for its last write of service %s on contract %s, before adjusting it, failed: %w",
			c.ServiceID, c.ContractID, err)
	}
	le, ok := entries[psa.LineKey{ContractID: c.ContractID, ServiceID: c.ServiceID}]
	if !ok || le.System != e.be.System() || le.Before == le.After || c.Current != le.Before {
		return nil
	}
	sys := systemName(e.be.System())
	what := fmt.Sprintf("; %s shows %d units at %s, but psa-syncd set the line from %d to %d from %s (run %d)",
		sys, c.Current, c.EffectiveDate.Format(time.DateOnly), le.Before, le.After, le.EffectiveDate.Format(time.DateOnly), le.RunID)
	units := o.ApproveUnits
	if o.Approve && o.ApproveService == c.ServiceID && (units == nil || *units == c.Desired) {
		c.Reason += what + ": approved, so it is adjusted from what the read shows"
		return nil
	}
	c.Action, c.staleRead = ActionHeld, true
	c.Reason += fmt.Sprintf("%s: held for review, since a read from before that write (a cache or proxy serving an old page) would have the adjustment "+
		"apply that change a second time; if someone set the line back to %d by hand, adjust it with %s",
		what, le.Before, approveCommand(c.CustomerID, c.ServiceID, c.Desired, period))
	return nil
}

// ledgerInForce reads, for the plan, the ledger entries in force at the
// effective date (before: the day after it) of the lines of a chunk of
// contracts (state.DB.LinesInForce), once per chunk and only for a chunk
// with a line the plan would adjust.
type ledgerInForce struct {
	e       *Engine
	chunk   int
	before  time.Time
	entries map[psa.LineKey]state.LedgerEntry
	err     error
}

// of returns the function that gives the entries of chunk i of rd.
func (s *ledgerInForce) of(rd *lineReader, i int) func() (map[psa.LineKey]state.LedgerEntry, error) {
	return func() (map[psa.LineKey]state.LedgerEntry, error) {
		if s.chunk != i {
			s.chunk = i
			s.entries, s.err = s.e.db.LinesInForce(rd.chunks[i], s.before)
		}
		return s.entries, s.err
	}
}
