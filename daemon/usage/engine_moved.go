package usage

import (
	"fmt"
	"slices"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// movedLine decides c, a change the pass would make by adding a line (no
// line of c's service on c's contract Y: the PSA's read shows none, or, on
// Kaseya BMS, psa-syncd's ledger never set one) or by raising one, when
// psa-syncd's ledger says that it set that service for c's customer above
// 0 on another contract X, and that this is still the line's quantity in
// force at c's effective date (state.DB.SetBefore: nothing set it to 0
// since, nor another customer's usage): it holds c for an operator
// (HoldMoved) rather than write the line.
//
// The customer's mapping was moved from X to Y (contract_id changed,
// whether the provider's plan warning "Previous Contract Still Bills" was
// read or not, or the export was written by other means): psa-syncd no
// longer writes to X, which no mapping of the customer names, so X's line
// keeps the units psa-syncd last set and goes on invoicing, and a line on
// Y bills the same usage a second time. Only the operator can tell that X
// ended or that its line was set to 0 by hand: an approval of that one
// line (PassOptions.ApproveService, at c's desired units or any) writes
// it. An approval of every held line (Approve alone) does not.
//
// A line that exists on Y is held only when c raises it (a decrease bills
// less whatever X bills) and psa-syncd set X's line above 0 after it last
// set Y's above 0, if it ever did: the customer was moved back to a
// contract whose line was set by hand, by psa-syncd before the move, or is
// still at 0 (a move back to a contract psa-syncd wrote before; a move to
// a contract with a line made by hand). Once psa-syncd sets Y's line above
// 0, after the approval or a move done as below, X's older line holds
// nothing back: a customer synced on Y for months does not have every
// rise held for a contract it left.
//
// Not held: X that is the customer's renewal pair (the mapping's
// contract_id and next_contract_id: a renewal takes over once contract_id
// ends, see selectContract), X the same contract as Y spelled otherwise
// (idKey), and X whose record, as the contract terms kept it
// (ContractTerms), ended before the effective date: the renewal moved into
// contract_id, as README's "Contract renewals" says to do. The check reads
// the state database alone, no PSA request, and only for a chunk of
// customers with a line to add or raise. It returns an error only when the
// ledger cannot be read; the line then fails, and nothing is written.
//
// set returns the lines that psa-syncd set above 0 for the customers of
// c's chunk (ledgerMoves.of): only those on another contract are looked
// up one by one. mapping returns the customer's mapping in the export, as
// it names its contracts (cp.m is a copy naming the renewal once it takes
// over).
func (e *Engine) movedLine(c *Change, o PassOptions, period source.Period, set func() (map[string][]state.CustomerLine, error),
	mapping func() (export.CustomerMapping, bool)) error {
	raise := c.CurrentKnown
	if e.db == nil || c.Desired <= 0 || raise && c.Desired <= c.Current {
		return nil
	}
	lines, err := set()
	if err != nil {
		return fmt.Errorf("reading psa-syncd's ledger for lines of service %s it set for customer %s on another contract, before writing it to contract %s, failed: %w",
			c.ServiceID, c.CustomerID, c.ContractID, err)
	}
	// own is the newest entry that set c's line above 0 for the
	// customer (0: none).
	var own int64
	for _, l := range lines[c.CustomerID] {
		if l.ServiceID == c.ServiceID && idKey(l.ContractID) == idKey(c.ContractID) {
			own = max(own, l.Seq)
		}
	}
	var others []string
	for _, l := range lines[c.CustomerID] {
		if l.ServiceID != c.ServiceID || idKey(l.ContractID) == idKey(c.ContractID) {
			continue
		}
		if raise && l.Seq < own {
			continue
		}
		others = append(others, l.ContractID)
	}
	if len(others) == 0 {
		return nil
	}
	pair := map[string]bool{idKey(c.ContractID): true}
	if cm, ok := mapping(); ok {
		for _, id := range []string{cm.ContractID, cm.NextContractID} {
			if id != "" {
				pair[idKey(id)] = true
			}
		}
	}
	sys := e.be.System()
	effDay := c.EffectiveDate.Format(time.DateOnly)
	slices.SortFunc(others, compareIDs)
	for _, x := range others {
		if pair[idKey(x)] {
			continue
		}
		if t, ok := e.terms.get(sys, x); ok && !t.ct.EndDate.IsZero() && t.ct.EndDate.Format(time.DateOnly) < effDay {
			continue
		}
		le, ok, err := e.db.SetBefore(x, c.ServiceID, c.EffectiveDate.AddDate(0, 0, 1))
		if err != nil {
			return fmt.Errorf("reading psa-syncd's ledger for its line of service %s on contract %s, before writing one to contract %s, failed: %w",
				c.ServiceID, x, c.ContractID, err)
		}
		if !ok || le.System != sys || le.Source != c.Source || le.CustomerID != c.CustomerID || le.After <= 0 {
			continue
		}
		what := fmt.Sprintf("; psa-syncd set this service to %d units on contract %s for this customer from %s (run %d), and has not set that line to 0 since",
			le.After, x, le.EffectiveDate.Format(time.DateOnly), le.RunID)
		verb, this := "add", "this line"
		if raise {
			what += " nor set this line above 0 after it"
			verb, this = "raise", fmt.Sprintf("raising this line from %d", c.Current)
		}
		units := o.ApproveUnits
		if o.Approve && o.ApproveService == c.ServiceID && (units == nil || *units == c.Desired) {
			c.Reason += what + ": approved, so it is written to contract " + c.ContractID
			return nil
		}
		c.Action, c.moved = ActionHeld, true
		c.Reason += fmt.Sprintf("%s: held for review, since contract %s still bills those units unless it has ended in %s, and %s would bill the usage a second time; "+
			"set the line on contract %s to 0 or end contract %s in %s, then %s this one with %s",
			what, x, systemName(sys), this, x, x, systemName(sys), verb, approveCommand(c.CustomerID, c.ServiceID, c.Desired, period))
		return nil
	}
	return nil
}

// ledgerMoves reads, for the plan, the lines that psa-syncd ever set above
// 0 for the customers of a chunk (state.DB.CustomerLinesSet), once per
// chunk and only for a chunk with a line the plan would add or raise: a
// pass that adds or raises no line reads nothing, and one that adds or
// raises many (a first pass, a product newly mapped, a month's growth)
// reads once per chunk of up to 500 customers, not once per line.
type ledgerMoves struct {
	e      *Engine
	source string
	// customers are the customers whose contracts the pass reads, in
	// the order of the chunks (customerPass.chunk).
	customers []*customerPass
	chunk     int
	lines     map[string][]state.CustomerLine
	err       error
}

// of returns the function that gives the lines set for the customers of
// chunk i.
func (s *ledgerMoves) of(i int) func() (map[string][]state.CustomerLine, error) {
	return func() (map[string][]state.CustomerLine, error) {
		if s.chunk != i {
			s.chunk = i
			var ids []string
			for _, cp := range s.customers {
				if cp.chunk == i {
					ids = append(ids, cp.m.CustomerID)
				}
			}
			s.lines, s.err = s.e.db.CustomerLinesSet(s.e.be.System(), s.source, ids)
		}
		return s.lines, s.err
	}
}

// HoldAsMoved holds c, a change that adds or raises a line, as movedLine holds one
// (HoldMoved), with why added to its reason. The billing-impact report
// uses it to predict that hold when psa-syncd's ledger is not at hand:
// from the PSA's read of the line on the contract the customer moves from.
func (c *Change) HoldAsMoved(why string) {
	c.Action, c.moved = ActionHeld, true
	c.Reason += why
}
