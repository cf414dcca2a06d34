package usage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
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
//
// On Kaseya BMS, whose lines psa-syncd cannot read (in.ledger), c may
// also be a line that the pass lowers, or leaves unchanged
// (ActionUnchanged), from the units psa-syncd's ledger says it set before
// the customer left it: the customer moved back with less or the same
// usage. Its line may have been set to 0 by hand since (as the hold on
// the other contract asked): lowered, it would bill the usage a second
// time; unchanged, the usage bills on the contract the customer left
// alone, which no mapping names. It is held the same way, and its
// approval posts the units (unchanged: the same units again; a post sets
// the line's units from its date, no change where the line has them). An
// old contract that ended before the effective date, as kept or as read
// now, releases it: the line is posted (again) with no approval, so that
// the usage is not left unbilled.
//
// Where X is another customer's contract now (two customers swapped
// contracts: its mapping names X), that customer's own usage may be what
// the pass sets X's line to. Held for the pass, c would leave Y with the
// other customer's units until the next pass, and for the month where
// this is its last pass (Autotask and Kaseya BMS write each month's
// units). So, given in.await, movedLine goes on with the other contracts
// the customer left, and when none of them holds c, it records that c is
// written after the pass's other writes, once the pass has set X's line
// for that customer (Engine.writeAwaited), with the hold it would have
// given c; any other contract that holds c holds it as X would have.
func (e *Engine) movedLine(c *Change, o PassOptions, period source.Period, in movedLookups) error {
	raise := c.CurrentKnown
	back := raise && in.ledger && c.Desired <= c.Current
	if e.db == nil || c.Desired <= 0 || raise && !back && c.Desired <= c.Current {
		return nil
	}
	lines, err := in.set()
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
	sys := e.be.System()
	if back {
		// Only a line whose units psa-syncd set for this customer: a
		// line set for another customer (two customers swapped
		// contracts) is lowered or kept from that customer's units,
		// which bill no usage of this one.
		le, ok, err := in.setBefore(e.db, c.ContractID, c.ServiceID, c.EffectiveDate.AddDate(0, 0, 1))
		if err != nil {
			return fmt.Errorf("reading psa-syncd's ledger for its line of service %s on contract %s, before writing it, failed: %w",
				c.ServiceID, c.ContractID, err)
		}
		if !ok || le.System != sys || le.Source != c.Source || le.CustomerID != c.CustomerID {
			return nil
		}
	}
	pair := map[string]bool{idKey(c.ContractID): true}
	if cm, ok := in.mapping(); ok {
		for _, id := range []string{cm.ContractID, cm.NextContractID} {
			if id != "" {
				pair[idKey(id)] = true
			}
		}
	}
	effDay := c.EffectiveDate.Format(time.DateOnly)
	slices.SortFunc(others, compareIDs)
	released := false
	// awaited, once set, is the hold that the first contract left that is
	// another customer's now gives c (held, below): the pass writes c
	// after that customer's line there, or holds it so. A later contract
	// that holds c holds it as that first one does.
	var awaited *Change
	var awaitedX, awaitedOwner string
	for _, x := range others {
		if pair[idKey(x)] {
			continue
		}
		t, kept := e.terms.get(sys, x)
		endedKept := kept && !t.ct.EndDate.IsZero() && t.ct.EndDate.Format(time.DateOnly) < effDay
		if endedKept && !back {
			continue
		}
		le, ok, err := in.setBefore(e.db, x, c.ServiceID, c.EffectiveDate.AddDate(0, 0, 1))
		if err != nil {
			return fmt.Errorf("reading psa-syncd's ledger for its line of service %s on contract %s, before writing one to contract %s, failed: %w",
				c.ServiceID, x, c.ContractID, err)
		}
		if !ok || le.System != sys || le.Source != c.Source || le.CustomerID != c.CustomerID || le.After <= 0 {
			continue
		}
		what := fmt.Sprintf("; psa-syncd set this service to %d units on contract %s for this customer from %s (run %d), and has not set that line to 0 since",
			le.After, x, le.EffectiveDate.Format(time.DateOnly), le.RunID)
		if endedKept {
			// A line moved back to: x no longer bills, and this line,
			// which may have been set to 0 by hand, is posted again.
			c.Reason += what + fmt.Sprintf("; but contract %s ended on %s, as psa-syncd last read it, before the effective date %s: not held",
				x, t.ct.EndDate.Format(time.DateOnly), effDay)
			released = true
			continue
		}
		verb, this := "add", "this line"
		if raise {
			what += " nor set this line above 0 after it"
			verb, this = "raise", fmt.Sprintf("raising this line from %d", c.Current)
		}
		units := o.ApproveUnits
		if o.Approve && o.ApproveService == c.ServiceID && (units == nil || *units == c.Desired) {
			c.Reason += what + ": approved, so it is written to contract " + c.ContractID
			if back && c.Action == ActionUnchanged {
				c.Action = ActionUpdate
				c.Reason += fmt.Sprintf(" again at %d units", c.Desired)
			}
			return nil
		}
		var failed string
		if in.old != nil {
			ok, why := in.old(x, c.ServiceID, c.EffectiveDate, le)
			if ok {
				// The old line no longer bills: the next candidate,
				// if any, decides.
				c.Reason += what + why
				released = true
				continue
			}
			failed = why
		}
		if awaited != nil {
			*c = *awaited
			return nil
		}
		if back {
			e.movedBackHold(c, x, what+failed, period, in)
			return nil
		}
		if owner, ok := in.owner(x); ok {
			// The contract the customer left is another customer's
			// now (two customers swapped contracts, or one took over
			// the other's): its line is that customer's to set, and
			// setting it to 0 by hand would stop billing that customer.
			held := *c
			held.Action, held.moved, held.movedOwned = ActionHeld, true, true
			held.Reason += fmt.Sprintf("%s%s: held for review, since contract %s, now customer %s's (its customer mapping names it), still bills the units psa-syncd set on it for this customer until psa-syncd sets that line for customer %s, and %s would bill the usage a second time; "+
				"psa-syncd writes this one by itself once it has set that line for customer %s, in the pass that sets it (after its other writes) or a later one: do not set that line to 0 by hand, since it bills customer %s; "+
				"if it stays (customer %s's usage of this service is the same, or none while policies.missing_usage is %s), %s this one with %s",
				what, failed, x, owner.CustomerID, owner.CustomerID, this, owner.CustomerID, owner.CustomerID, owner.CustomerID, MissingUsageKeep, verb,
				approveCommand(c.CustomerID, c.ServiceID, c.Desired, period))
			if in.await == nil {
				*c = held
				return nil
			}
			// This pass may set that line for the other customer (its
			// usage moved there too): c is written after the pass's
			// other writes once that one succeeded, and held as above
			// where it did not (failed, its outcome unknown, or not
			// written at all), so that the usage is never on both
			// lines. The month's last pass so leaves no line with the
			// other customer's units for the month. The other
			// contracts left still decide.
			awaited, awaitedX, awaitedOwner = &held, x, owner.CustomerID
			c.Reason += fmt.Sprintf("%s%s; but contract %s is customer %s's now (its customer mapping names it): this pass writes this line after its other writes, once it has set that line for customer %s, and holds it (%s) if it did not",
				what, failed, x, owner.CustomerID, owner.CustomerID, HoldMoved)
			continue
		}
		c.Action, c.moved = ActionHeld, true
		c.Reason += fmt.Sprintf("%s%s: held for review, since contract %s still bills those units unless it has ended in %s, and %s would bill the usage a second time; "+
			"set the line on contract %s to 0 or end contract %s in %s, then %s this one with %s",
			what, failed, x, systemName(sys), this, x, x, systemName(sys), verb, approveCommand(c.CustomerID, c.ServiceID, c.Desired, period))
		switch {
		case in.old != nil && in.oldLines:
			c.Reason += fmt.Sprintf(" (or let a later pass %s it by itself: one that reads contract %s ended before the effective date, or that line at 0 where it was not at 0 before psa-syncd last set it)", verb, x)
		case in.old != nil:
			c.Reason += fmt.Sprintf(" (or let a later pass %s it by itself: one that reads contract %s ended before the effective date)", verb, x)
		}
		return nil
	}
	if awaited != nil {
		in.await(awaitedX, awaitedOwner, *awaited)
		return nil
	}
	if back && released && c.Action == ActionUnchanged {
		// The contract left no longer bills: this line, which may have
		// been set to 0 by hand, is posted again at its units.
		c.Action = ActionUpdate
		c.Reason += fmt.Sprintf(": written to contract %s again at %d units", c.ContractID, c.Desired)
	}
	return nil
}

// movedBackHold holds c, a Kaseya BMS line lowered or left unchanged from
// the units psa-syncd set before the customer left its contract (see
// movedLine), while contract x, which the customer left since, still
// bills the units psa-syncd set there for it; what says so.
func (e *Engine) movedBackHold(c *Change, x, what string, period source.Period, in movedLookups) {
	sys := systemName(e.be.System())
	c.Action, c.moved = ActionHeld, true
	c.Reason += fmt.Sprintf("%s: held for review, since psa-syncd's ledger says this line has %d units, as psa-syncd set it before the customer left this contract, but %s cannot show whether it was set to 0 by hand since (as a hold of the line on contract %s asks), "+
		"and contract %s, which no mapping of this customer names, still bills those units unless it has ended in %s: the usage may be billed there and not here, or on both, and on both once this line is posted; ",
		what, c.Current, sys, x, x, sys)
	post := "post this one with " + approveCommand(c.CustomerID, c.ServiceID, c.Desired, period)
	if c.Desired == c.Current {
		post += fmt.Sprintf(" (the same units again: no change where it still has %d)", c.Desired)
	}
	if owner, ok := in.owner(x); ok {
		c.movedOwned = true
		c.Reason += fmt.Sprintf("contract %s is customer %s's now (its customer mapping names it): do not set that line to 0 by hand once psa-syncd has set it for customer %s; "+
			"check this line in %s, then %s",
			x, owner.CustomerID, owner.CustomerID, sys, post)
		return
	}
	c.Reason += fmt.Sprintf("set the line on contract %s to 0 or end contract %s in %s, then %s",
		x, x, sys, post)
	if in.old != nil {
		c.Reason += fmt.Sprintf(" (or let a later pass post it by itself: one that reads contract %s ended before the effective date)", x)
	}
}

// movedLookups are what movedLine looks up, each once per chunk of
// customers or pass and only when it needs to.
type movedLookups struct {
	// set returns the lines that psa-syncd set above 0 for the
	// customers of c's chunk (ledgerMoves.of).
	set func() (map[string][]state.CustomerLine, error)
	// mapping returns the customer's mapping in the export, as it names
	// its contracts (cp.m is a copy naming the renewal once it takes
	// over).
	mapping func() (export.CustomerMapping, bool)
	// owner returns the mapping of another customer of the source whose
	// contract_id or next_contract_id is the contract (idKey).
	owner func(contract string) (export.CustomerMapping, bool)
	// old tells whether the customer's line of a service on a contract
	// it left no longer bills at a date, from the PSA's read of it
	// (oldContracts.of; on Kaseya BMS, which cannot read lines, from the
	// contract's record alone: oldRecords.old), with the reason's words;
	// when it still may, the words say why the read could not tell, if
	// it failed. nil: nothing is read.
	old func(contract, service string, asOf time.Time, le state.LedgerEntry) (bool, string)
	// await, when not nil, records that c is written only after the
	// pass has set the line of c's service on contract for customer
	// owner, whose contract it is now, and is held as held otherwise
	// (pass.awaiting). nil: c is held at once (a caller that cannot write
	// it after the others).
	await func(contract, owner string, held Change)
	// oldLines is true when old reads the old contract's lines, not
	// only its record.
	oldLines bool
	// ledger is true where the PSA cannot read lines (Kaseya BMS): a
	// line's current units are those psa-syncd's ledger says it set.
	ledger bool
	// doubts holds, where ledger is true, the lines an operator said may
	// no longer hold what psa-syncd set (DoubtedLine.key); release
	// records that an approval of c's line says a line was set to 0
	// (repointedLine), for the pass to keep once c is written.
	doubts  map[string]DoubtedLine
	release func(DoubtedLine)
	// reconciled holds, in a plan, the entries the pass's Reconcile
	// would add to the ledger first (reconcileElsewhere), by line
	// (idKey): setBefore reads them as in the ledger.
	reconciled map[psa.LineKey]state.LedgerEntry
}

// setBefore is db.SetBefore, as it reads once the entries of
// in.reconciled are in the ledger: the newest there.
func (in movedLookups) setBefore(db *state.DB, contract, service string, before time.Time) (state.LedgerEntry, bool, error) {
	le, ok, err := db.SetBefore(contract, service, before)
	if err != nil {
		return le, ok, err
	}
	r, found := in.reconciled[psa.LineKey{ContractID: idKey(contract), ServiceID: idKey(service)}]
	if found && r.EffectiveDate.Before(before) && (!ok || !r.EffectiveDate.Before(le.EffectiveDate)) {
		return r, true, nil
	}
	return le, ok, nil
}

// oldRecordsMax bounds the contracts whose records oldRecords reads in a
// pass: on Kaseya BMS a contract read costs three requests (a
// psa.ContractReadCoster), against 1,500 requests an hour per endpoint.
const oldRecordsMax = 25

// oldRecords reads from Kaseya BMS, for movedLine, the record of a
// contract that a customer left, once per pass and only when movedLine
// would hold a line for it (three requests each, at most oldRecordsMax
// contracts a pass): a line held because the customer's line there still
// bills is released when the record, as read now, ended before the
// effective date. BMS cannot read lines, so a line set to 0 by hand still
// needs the approval of the held line. A pass that holds no such line
// sends nothing more; one that holds lines for a contract reads it at
// every pass while they stay held. A record found is kept as the
// contract's terms (keep): once it reads ended, a later line for that
// contract (another service the customer had there, its usage back) is
// not held and costs no request, in this process or the next.
type oldRecords struct {
	e   *Engine
	ctx context.Context
	// got holds the records read (nil: read, not found), errs why a read
	// failed, by contract (idKey).
	got  map[string]*psa.Contract
	errs map[string]error
	// changed is set when a record found differs from the terms kept
	// of its contract: the snapshot is saved (keep).
	changed bool
}

// old is movedLookups.old.
func (r *oldRecords) old(contract, _ string, asOf time.Time, _ state.LedgerEntry) (bool, string) {
	k := idKey(contract)
	sys := systemName(r.e.be.System())
	_, done := r.got[k]
	if !done && r.errs[k] == nil {
		if len(r.got)+len(r.errs) >= oldRecordsMax {
			return false, fmt.Sprintf(" (psa-syncd reads the records of at most %d contracts a pass to tell whether such lines still bill, and read them for other lines: contract %s was not read)", oldRecordsMax, contract)
		}
		if r.got == nil {
			r.got, r.errs = map[string]*psa.Contract{}, map[string]error{}
		}
		found, errs := r.e.readContractRecords(r.ctx, []string{contract})
		if err := errs[contract]; err != nil && !errors.Is(err, errNotRead) {
			r.errs[k] = err
		} else {
			r.got[k] = found[contract]
			r.put(contract, found[contract])
		}
	}
	if err := r.errs[k]; err != nil {
		return false, fmt.Sprintf(" (psa-syncd's read of contract %s in %s, to tell whether it ended, failed: %v)", contract, sys, err)
	}
	day := asOf.Format(time.DateOnly)
	if ct := r.got[k]; ct != nil && !ct.EndDate.IsZero() && ct.EndDate.Format(time.DateOnly) < day {
		return true, fmt.Sprintf("; but contract %s ended on %s in %s, as read now, before the effective date %s: not held", contract, ct.EndDate.Format(time.DateOnly), sys, day)
	}
	return false, ""
}

// put keeps ct, the record of contract as read now, as its terms
// (ContractTerms.put keeps their billing mark): movedLine goes by them
// before it reads the contract again.
func (r *oldRecords) put(contract string, ct *psa.Contract) {
	if ct == nil {
		return
	}
	sys := r.e.be.System()
	old, ok := r.e.terms.get(sys, contract)
	if ok && old.ct.CompanyInactive && old.ct.CompanyID == ct.CompanyID {
		// This read does not read the company (readCompanyStates), as
		// keepRecords' does not: the state of it kept stands.
		ct.CompanyInactive = true
	}
	if !ok || !sameRecord(*old.ct, *ct) {
		r.changed = true
	}
	r.e.terms.put(sys, contract, contractTerm{ct: ct, readAt: r.e.now()})
}

// keep saves the contract terms in the state snapshot when a record read
// changed them and record is set (a plan keeps no state: the terms it
// read are saved by the next pass that saves them).
func (r *oldRecords) keep(record bool) {
	if !record || !r.changed || r.e.db == nil {
		return
	}
	if err := r.e.terms.save(r.e.db, r.e.now()); err != nil {
		r.e.logger.Warn("Could not keep the end dates of the contracts customers left in the state database; the next process reads them again", "err", err)
	}
}

// contractOwners returns movedLookups.owner for the customers of source
// src in doc other than customer.
func contractOwners(doc *export.Document, src string) func(customer, contract string) (export.CustomerMapping, bool) {
	var owners map[string]int
	return func(customer, contract string) (export.CustomerMapping, bool) {
		if owners == nil {
			owners = map[string]int{}
			for i, cm := range doc.CustomerMappings {
				if cm.Source != src {
					continue
				}
				for _, id := range []string{cm.ContractID, cm.NextContractID} {
					if id != "" {
						owners[idKey(id)] = i
					}
				}
			}
		}
		i, ok := owners[idKey(contract)]
		if !ok || doc.CustomerMappings[i].CustomerID == customer {
			return export.CustomerMapping{}, false
		}
		return doc.CustomerMappings[i], true
	}
}

// oldContracts reads from the PSA, for movedLine, the lines of the
// contracts that the customers of a chunk left (those on which
// psa-syncd's ledger has a line of theirs above 0: ledgerMoves.lines) and
// their records, once per chunk and only for a chunk where movedLine
// would hold a line: in chunks of readChunk contracts, one read of their
// lines (as the pass reads its own) and one bulk read of their records
// (psa.BulkReader) each. A pass that holds no line as HoldMoved sends
// nothing more.
//
// A held line is released (movedLine writes it) when the read says that
// the old line no longer bills at the effective date:
//   - the contract's record, as read now, ended before the effective date;
//   - or the line (a line of the PSA's, with its id) reads 0 units at the
//     effective date, changing no later in the period, and psa-syncd's
//     ledger entry in force set it from another quantity than 0, or added
//     it (oldContracts.added): a read that shows the line as it was before
//     psa-syncd's last write of it may be an old page (a cache or proxy,
//     see Engine.staleRead), and then the line still bills. A line that
//     was at 0 when psa-syncd last set it (made by hand at 0), set to 0
//     again by hand, stays held for an approval of the line.
//
// A line the read does not show is not released: Autotask shows no line
// for a period whose unit rows it has not made yet, and a contract the
// API user can no longer see reads empty. Nothing is released from a read
// that failed, for the whole chunk or for that contract (psa.ContractErrors),
// or from a record the bulk read left out.
type oldContracts struct {
	e     *Engine
	ctx   context.Context
	moves *ledgerMoves
	// chunk and day are those of the reads held.
	chunk int
	day   string
	// lines and ended are by contract (idKey) and service; read holds
	// the contracts read without an error, errs why the others were not.
	lines map[psa.LineKey]psa.ContractLine
	read  map[string]bool
	ended map[string]time.Time
	errs  map[string]error
}

// of returns movedLookups.old for the customers of chunk i.
func (r *oldContracts) of(i int) func(contract, service string, asOf time.Time, le state.LedgerEntry) (bool, string) {
	return func(contract, service string, asOf time.Time, le state.LedgerEntry) (bool, string) {
		day := asOf.Format(time.DateOnly)
		if r.chunk != i || r.day != day {
			r.chunk, r.day = i, day
			r.readChunk(i, asOf)
		}
		k := idKey(contract)
		sys := systemName(r.e.be.System())
		if !r.read[k] {
			if err := r.errs[k]; err != nil {
				return false, fmt.Sprintf(" (psa-syncd's read of contract %s in %s, to tell whether that line still bills, failed: %v)", contract, sys, err)
			}
			return false, ""
		}
		if end, ok := r.ended[k]; ok && end.Format(time.DateOnly) < day {
			return true, fmt.Sprintf("; but contract %s ended on %s in %s, as read now, before the effective date %s: not held", contract, end.Format(time.DateOnly), sys, day)
		}
		l, ok := r.lines[psa.LineKey{ContractID: k, ServiceID: idKey(service)}]
		if !ok || l.LineID == "" || l.Quantity != 0 || slices.ContainsFunc(l.LaterChanges, func(q psa.QuantityChange) bool { return q.Quantity != 0 }) {
			return false, ""
		}
		if le.Before == 0 && !r.added(le) {
			return false, fmt.Sprintf(" (%s shows that line at 0 units at %s, as it was before psa-syncd set it, which an old page of the read shows alike)", sys, day)
		}
		return true, fmt.Sprintf("; but %s shows that line at 0 units at %s, as read now (someone set it to 0 since): not held", sys, day)
	}
}

// added reports whether le, a ledger entry from 0, is the write that
// added its line: the intent it completed says that the pass that sent it
// read no line (state.Intent.BeforeKnown false). An old page from before
// that write shows no line, not a line at 0. An intent that is gone
// (pruned) or cannot be read tells nothing.
func (r *oldContracts) added(le state.LedgerEntry) bool {
	if le.IntentID == 0 {
		return false
	}
	in, ok, err := r.e.db.IntentByID(le.IntentID)
	return err == nil && ok && !in.BeforeKnown
}

// readChunk reads the lines and records of the contracts the customers
// of chunk i left, at asOf.
func (r *oldContracts) readChunk(i int, asOf time.Time) {
	r.lines, r.read, r.ended, r.errs = map[psa.LineKey]psa.ContractLine{}, map[string]bool{}, map[string]time.Time{}, map[string]error{}
	sys := r.e.be.System()
	seen := map[string]bool{}
	services := map[string]bool{}
	var ids []string
	for _, cp := range r.moves.customers {
		if cp.chunk != i {
			continue
		}
		for _, l := range r.moves.lines[cp.m.CustomerID] {
			k := idKey(l.ContractID)
			if k == idKey(cp.m.ContractID) || k == idKey(cp.m.NextContractID) {
				continue
			}
			if t, ok := r.e.terms.get(sys, l.ContractID); ok && !t.ct.EndDate.IsZero() && t.ct.EndDate.Format(time.DateOnly) < asOf.Format(time.DateOnly) {
				continue
			}
			services[l.ServiceID] = true
			if !seen[k] {
				seen[k] = true
				ids = append(ids, l.ContractID)
			}
		}
	}
	slices.SortFunc(ids, compareIDs)
	svcs := slices.Sorted(maps.Keys(services))
	for batch := range slices.Chunk(ids, readChunk) {
		got, err := r.e.readLines(r.ctx, batch, svcs, asOf)
		failed, err := contractFailures(err)
		if err != nil {
			for _, id := range batch {
				r.errs[idKey(id)] = err
			}
			continue
		}
		var ok []string
		for _, id := range batch {
			if err, bad := failed[idKey(id)]; bad {
				r.errs[idKey(id)] = err
				continue
			}
			r.read[idKey(id)] = true
			ok = append(ok, id)
		}
		for _, l := range got {
			if r.read[idKey(l.ContractID)] {
				r.lines[psa.LineKey{ContractID: idKey(l.ContractID), ServiceID: idKey(l.ServiceID)}] = l
			}
		}
		if len(ok) == 0 {
			continue
		}
		found, _ := r.e.readContractRecords(r.ctx, ok)
		for _, ct := range found {
			if ct != nil && !ct.EndDate.IsZero() {
				r.ended[idKey(ct.ID)] = ct.EndDate
			}
		}
	}
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
	// reconciled holds, in a plan, the entries the pass's Reconcile
	// would add to the ledger first (reconcileElsewhere), by line
	// (idKey): they are in the lines returned too.
	reconciled map[psa.LineKey]state.LedgerEntry
	chunk      int
	lines      map[string][]state.CustomerLine
	err        error
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
			if s.err == nil {
				s.addReconciled(ids)
			}
		}
		return s.lines, s.err
	}
}

// addReconciled adds to s.lines, read for the customers ids, the lines
// that the entries of s.reconciled set above 0 for them, as
// CustomerLinesSet would return them once the pass's Reconcile added
// those entries (seq: theirs, above every other).
func (s *ledgerMoves) addReconciled(ids []string) {
	if len(s.reconciled) == 0 {
		return
	}
	of := make(map[string]bool, len(ids))
	for _, id := range ids {
		of[id] = true
	}
	sys := s.e.be.System()
	for _, le := range s.reconciled {
		if le.After <= 0 || le.System != sys || le.Source != s.source || !of[le.CustomerID] {
			continue
		}
		lines := s.lines[le.CustomerID]
		i := slices.IndexFunc(lines, func(l state.CustomerLine) bool {
			return idKey(l.ContractID) == idKey(le.ContractID) && idKey(l.ServiceID) == idKey(le.ServiceID)
		})
		if i >= 0 {
			lines[i].Seq = le.Seq
			continue
		}
		lines = append(lines, state.CustomerLine{LineKey: psa.LineKey{ContractID: le.ContractID, ServiceID: le.ServiceID}, Seq: le.Seq})
		slices.SortFunc(lines, func(a, b state.CustomerLine) int {
			return cmp.Or(strings.Compare(a.ContractID, b.ContractID), strings.Compare(a.ServiceID, b.ServiceID))
		})
		s.lines[le.CustomerID] = lines
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

// settleAwaited holds, once the plan is done, each awaited line
// (pass.awaiting) whose other customer's line the pass does not set: that
// customer is not in the pass, failed, or its change of the line is not
// an update (the same units, or held). A plan so shows the hold the pass
// keeps, and an update for the lines the pass writes after the others.
//
// A line awaited itself is not set either: two customers whose lines both
// rise on each other's contract wait for each other, and both are held
// (each written alone, the other's failure would leave a customer's usage
// on both lines); their reasons say that an approval of one lets the next
// pass write the other.
func (p *pass) settleAwaited() {
	type verdict struct {
		sets  bool
		other *Change // the other customer's awaited line, when it waits too
	}
	verdicts := make([]verdict, len(p.awaiting))
	for k, a := range p.awaiting {
		c := &a.cp.changes[a.i]
		if a.cp.err != nil || c.Action != ActionUpdate {
			verdicts[k].sets = true // nothing to settle
			continue
		}
		o := p.change(c.Source, a.owner, a.contract, c.ServiceID)
		switch {
		case o == nil || o.Action != ActionUpdate:
		case p.awaited[psa.LineKey{ContractID: o.ContractID, ServiceID: o.ServiceID}]:
			verdicts[k].other = o
		default:
			verdicts[k].sets = true
		}
	}
	for k, a := range p.awaiting {
		v := verdicts[k]
		if v.sets {
			continue
		}
		c := &a.cp.changes[a.i]
		*c = a.held
		if o := v.other; o != nil {
			c.Reason += fmt.Sprintf("; customer %s's line of this service on contract %s, its contract now, rises too and waits for this one, so neither is written by itself: "+
				"approve one of the two (its customer's usage then bills on both contracts until the pass after writes the other): this one with %s, or that one with %s",
				o.CustomerID, o.ContractID, approveCommand(c.CustomerID, c.ServiceID, c.Desired, a.cp.period), approveCommand(o.CustomerID, o.ServiceID, o.Desired, a.cp.period))
		}
	}
}

// change returns the plan's change of customer's line of service on
// contract, or nil (the customer is not in the pass, failed, or has none).
func (p *pass) change(src, customer, contract, service string) *Change {
	for _, cp := range p.customers {
		if cp.m.Source != src || cp.m.CustomerID != customer {
			continue
		}
		if cp.err != nil {
			return nil
		}
		for i := range cp.changes {
			if c := &cp.changes[i]; idKey(c.ContractID) == idKey(contract) && idKey(c.ServiceID) == idKey(service) {
				return c
			}
		}
		return nil
	}
	return nil
}

// writeAwaited is the pass's second round of writes: once every other
// write of w is done, it hands w the awaited lines (pass.awaiting) whose
// other customer's line this pass set, as the PSA answered, and holds the
// others as movedLine would have. A write of that line that failed, was
// skipped, or whose outcome is unknown (its intent left open) leaves the
// contract billing the units psa-syncd set there for the awaited line's
// customer: writing the awaited line too would bill its usage twice.
func (e *Engine) writeAwaited(ctx context.Context, log *slog.Logger, p *pass, w *writer) {
	w.inflight.Wait()
	// The writes of the first round, by line (idKey): one per line.
	written := make(map[psa.LineKey]*writeJob, len(w.jobs))
	for _, j := range w.jobs {
		written[psa.LineKey{ContractID: idKey(j.c.ContractID), ServiceID: idKey(j.c.ServiceID)}] = j
	}
	var jobs []*writeJob
	for _, a := range p.awaiting {
		c := &a.cp.changes[a.i]
		if a.cp.err != nil || c.Action != ActionUpdate {
			continue
		}
		if !wrote(written[psa.LineKey{ContractID: idKey(a.contract), ServiceID: idKey(c.ServiceID)}], c.Source, a.owner) {
			*c = a.held
			continue
		}
		if j := w.job(a.cp, a.i, c, p.lines); j != nil {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return
	}
	log.Info("Writing the lines held back until this pass set another customer's line on the contract their customer left (customers that swapped contracts)", "lines", len(jobs))
	e.preloadServices(ctx, log, jobs)
	w.add(jobs)
	if len(w.last) > 0 {
		w.push(w.last)
		w.last = nil
	}
}

// wrote reports whether j, a write of the pass or nil, set its line for
// customer of source src, as the PSA answered (its intent closed as done).
func wrote(j *writeJob, src, customer string) bool {
	return j != nil && j.c.Source == src && j.c.CustomerID == customer &&
		j.c.Action == ActionUpdate && j.closed != nil && j.closed.State == state.IntentDone
}
