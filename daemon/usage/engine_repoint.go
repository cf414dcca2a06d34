package usage

import (
	"fmt"
	"slices"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// namedServices returns the PSA services that the product mappings of a
// usage source name (products, by product), sync on or off: psa-syncd
// writes the lines of those services, or leaves them to the operator on
// purpose (sync_enabled = false). A service none names is one psa-syncd
// no longer writes at all.
func namedServices(products map[string]export.ProductMapping) map[string]bool {
	named := make(map[string]bool, len(products))
	for _, pm := range products {
		named[pm.ServiceID] = true
	}
	return named
}

// syncedServices returns the PSA services that the product mappings of a
// usage source name (products, by product), true for those a mapping with
// sync_enabled on names: the services whose lines psa-syncd writes. A
// service that only mappings with sync off name (false) is not one: the
// units psa-syncd set on its lines from a product mapped there before
// stay and bill, as for a service no mapping names.
func syncedServices(products map[string]export.ProductMapping) map[string]bool {
	named := make(map[string]bool, len(products))
	for _, pm := range products {
		named[pm.ServiceID] = named[pm.ServiceID] || pm.SyncEnabled
	}
	return named
}

// repointedLine decides c, a change the pass would make by adding a line
// or raising one, when psa-syncd's ledger says that it set the line of
// another service S for c's customer above 0, a service that no product
// mapping of the usage source names any more with sync on (named,
// syncedServices: a product re-pointed away from a service that a
// mapping with sync_enabled = false still names leaves its line billing
// alike, and no orphaned line lists it), and that this is
// still the line's quantity in force at c's effective date
// (state.DB.SetBefore: nothing set it to 0 since, nor another customer's
// or source's usage): it holds c for an operator (HoldPreviousService)
// rather than write the line.
//
// A product mapping's service_id was changed (re-pointed to a new SKU in
// the PSA, whether the provider's plan warning "Previous Service Still
// Bills" was read or not): psa-syncd no longer writes S, which no mapping
// names, so S's line keeps the units psa-syncd last set and goes on
// invoicing, and c's line bills the same usage a second time. Where the
// pass read S's line (Autotask, ConnectWise: S on c's own contract, read
// with it) and it shows the line at 0, the operator zeroed it: c is
// written. A read that shows no line of S does not release c: it may not
// see the line (as vanishedLine says), and a line deleted in the PSA
// looks the same. Otherwise only the operator can tell: an approval of that
// one line (PassOptions.ApproveService, at c's desired units or any)
// writes it; an approval of every held line (Approve alone) does not.
//
// Only a line that psa-syncd never set above 0 for the customer is held:
// the line of the service a product was re-pointed to; or one it did set
// but the pass read at 0 or no line (Autotask, ConnectWise), held for the
// lines of services no mapping names that psa-syncd set above 0 after it:
// the product pointed back to the service it left, whose line the operator
// zeroed for the re-pointing, while the line of the service it leaves now
// still bills. Kaseya BMS, whose lines are not read, cannot tell a line
// zeroed by hand: there the approval that released c's hold is taken to
// say that S's line was set to 0 (recorded once c is written, in.release,
// DoubtedLine), and a line an operator said so of (c.doubted, doubtedLine)
// is held as one read at 0; an old line with such a record in force (the
// approval's, in.doubts) holds nothing back. Once it is written
// (after the approval, or because S's line read 0), its rises are not held
// month after month, and a product mapping removed (S no longer named)
// holds no rise of the customer's other lines. The price of that bound: a
// product re-pointed to a service whose line psa-syncd already writes for
// the customer (merged into another product's service) is not held;
// README "Product mappings" says to zero the old lines. Not held either:
// for S on another contract on which psa-syncd set c's service for the
// customer too (the customer left it: c's line continues that one, and
// movedLine decides whether it bills twice);
// S on a contract of the customer's
// renewal pair other than c's (contract_id, next_contract_id: a renewal
// takes over from the old contract), and S on a contract whose record, as
// the contract terms kept it, ended before the effective date. S on a
// contract the customer left (a re-pointing and a move in one apply) is
// released as movedLine releases a line (in.old): once the read of that
// contract says that it ended, or, on Autotask and ConnectWise, that S's
// line reads 0. The check reads the state database (the lines of the
// chunk's customers that movedLine reads, ledgerMoves.of, and SetBefore
// per candidate), and the PSA only for such a line on a contract the
// customer left, in movedLine's read of those contracts, and only for a
// chunk with a line to add or raise. It returns an
// error only when the ledger cannot be read; the line then fails, and
// nothing is written.
//
// lines is the chunk's read of the contracts, when read is true (the PSA
// reads lines); in is movedLine's (its set, mapping and old).
func (e *Engine) repointedLine(c *Change, o PassOptions, period source.Period, in movedLookups, named map[string]bool, lines *lineIndex, read bool) error {
	raise := c.CurrentKnown
	if e.db == nil || c.Desired <= 0 || raise && c.Desired <= c.Current && !c.doubted {
		return nil
	}
	all, err := in.set()
	if err != nil {
		return fmt.Errorf("reading psa-syncd's ledger for lines of services it set for customer %s that no product mapping names any more, before writing service %s to contract %s, failed: %w",
			c.CustomerID, c.ServiceID, c.ContractID, err)
	}
	mine := all[c.CustomerID]
	var others []psa.LineKey
	var since int64 // the seq of psa-syncd's newest entry that set this line above 0
	// left holds the other contracts on which psa-syncd set c's service
	// for the customer: c's line follows that one (the customer moved,
	// movedLine decides), not a re-pointed product's, so the lines of
	// unnamed services there do not hold it.
	left := map[string]bool{}
	for _, l := range mine {
		if l.ServiceID == c.ServiceID && idKey(l.ContractID) != idKey(c.ContractID) {
			left[idKey(l.ContractID)] = true
			continue
		}
		if l.ServiceID == c.ServiceID && idKey(l.ContractID) == idKey(c.ContractID) {
			// psa-syncd set this line above 0 before: it is not the
			// new service of a re-pointed product, unless the pass
			// read it at 0 or no line (an operator zeroed it, as the
			// hold of a product re-pointed away from it asked) and
			// the product was pointed back to it: then the line
			// psa-syncd set after it, of the service the product
			// left, still bills.
			if !c.doubted && (!read || lines == nil || c.CurrentKnown && c.Current > 0) {
				return nil
			}
			since = l.Seq
		}
	}
	for _, l := range mine {
		if !named[l.ServiceID] && l.Seq > since && !left[idKey(l.ContractID)] {
			others = append(others, l.LineKey)
		}
	}
	if len(others) == 0 {
		return nil
	}
	pair := map[string]bool{}
	if cm, ok := in.mapping(); ok {
		for _, id := range []string{cm.ContractID, cm.NextContractID} {
			if id != "" && idKey(id) != idKey(c.ContractID) {
				pair[idKey(id)] = true
			}
		}
	}
	sys := e.be.System()
	effDay := c.EffectiveDate.Format(time.DateOnly)
	slices.SortFunc(others, compareLineKeys)
	for _, k := range others {
		same := idKey(k.ContractID) == idKey(c.ContractID)
		if !same && pair[idKey(k.ContractID)] {
			continue
		}
		if t, ok := e.terms.get(sys, k.ContractID); ok && !t.ct.EndDate.IsZero() && t.ct.EndDate.Format(time.DateOnly) < effDay {
			continue
		}
		le, ok, err := in.setBefore(e.db, k.ContractID, k.ServiceID, c.EffectiveDate.AddDate(0, 0, 1))
		if err != nil {
			return fmt.Errorf("reading psa-syncd's ledger for its line of service %s on contract %s, before writing service %s to contract %s, failed: %w",
				k.ServiceID, k.ContractID, c.ServiceID, c.ContractID, err)
		}
		if !ok || le.System != sys || le.Source != c.Source || le.CustomerID != c.CustomerID || le.After <= 0 {
			continue
		}
		if d, ok := in.doubts[clearedKey(sys, c.Source, k.ContractID, k.ServiceID)]; ok && d.Zeroed && d.Seq == le.Seq {
			// Kaseya BMS: an approval of a line held for this one
			// said it was set to 0 (DoubtedLine).
			c.Reason += fmt.Sprintf("; the line of service %s on contract %s, which no product mapping names any more, %s: it holds nothing back", k.ServiceID, k.ContractID, d.said(systemName(sys)))
			continue
		}
		offOnly := ""
		if _, off := named[k.ServiceID]; off {
			offOnly = " with sync_enabled on (only mappings with sync_enabled = false name it, and psa-syncd does not write their lines)"
		}
		what := fmt.Sprintf("; psa-syncd set service %s to %d units on contract %s for this customer from %s (run %d), and has not set that line to 0 since, "+
			"and no product mapping of usage source %s names service %s any more%s (a product mapping's service_id changed: psa-syncd no longer writes that line)",
			k.ServiceID, le.After, k.ContractID, le.EffectiveDate.Format(time.DateOnly), le.RunID, c.Source, k.ServiceID, offOnly)
		verb, this := "add", "adding this line"
		switch {
		case c.doubted:
			verb, this = "post", "posting this line"
		case raise:
			what += " nor set this line above 0 after it"
			verb, this = "raise", fmt.Sprintf("raising this line from %d", c.Current)
		}
		units := o.ApproveUnits
		if o.Approve && o.ApproveService == c.ServiceID && (units == nil || *units == c.Desired) {
			c.Reason += what + ": approved, so it is written"
			if in.release != nil {
				// The hold asked to set that line to 0 first: once
				// this one is written, psa-syncd no longer takes the
				// ledger's units for it (DoubtedLine).
				in.release(DoubtedLine{System: sys, Source: c.Source, ContractID: k.ContractID, ServiceID: k.ServiceID, Seq: le.Seq,
					Zeroed: true, ApprovedService: c.ServiceID, Time: e.now().UTC()})
			}
			continue
		}
		var failed string
		if same && read && lines != nil {
			// The pass read the old service's line with c's: it no
			// longer bills once the read shows it at 0 through the
			// period. A read that does not show it does not say so
			// (see vanishedLine: a security level or role that cannot
			// see it, unit rows short of the period, a cache's old
			// page), nor does one at 0 where psa-syncd set it from 0
			// without adding it (an old page from before that write
			// shows it alike): c stays held, as movedLine's
			// oldContracts holds it for a line on another contract.
			l, shown := lines.get(psa.LineKey{ContractID: c.ContractID, ServiceID: k.ServiceID})
			switch {
			case !shown || l.LineID == "":
				failed = fmt.Sprintf(" (%s's read shows no line of service %s on contract %s: a read that cannot see it, or a line deleted in %s, which only an approval of this line tells apart)",
					systemName(sys), k.ServiceID, k.ContractID, systemName(sys))
			case l.Quantity <= 0 && !slices.ContainsFunc(l.LaterChanges, func(q psa.QuantityChange) bool { return q.Quantity != 0 }) &&
				(le.Before != 0 || (&oldContracts{e: e}).added(le)):
				continue
			}
		}
		if !same && in.old != nil {
			// A line on a contract the customer left (a re-pointing
			// and a move in one apply): the read of that contract
			// movedLine makes tells whether it still bills, as the
			// kept terms above cannot once it ended since.
			ok, why := in.old(k.ContractID, k.ServiceID, c.EffectiveDate, le)
			if ok {
				c.Reason += what + why
				continue
			}
			failed = why
		}
		c.Action, c.repointed = ActionHeld, true
		c.Reason += fmt.Sprintf("%s%s: held for review, since that line still bills those units unless it was set to 0 or contract %s has ended in %s, and %s would bill the usage a second time; "+
			"set the line of service %s on contract %s to 0 in %s (or point the product mapping back to service %s), then %s this one with %s",
			what, failed, k.ContractID, systemName(sys), this, k.ServiceID, k.ContractID, systemName(sys), k.ServiceID, verb, approveCommand(c.CustomerID, c.ServiceID, c.Desired, period))
		switch {
		case same:
		case in.old != nil && in.oldLines:
			c.Reason += fmt.Sprintf(" (or let a later pass %s it by itself: one that reads contract %s ended before the effective date, or that line at 0 where it was not at 0 before psa-syncd last set it)", verb, k.ContractID)
		case in.old != nil:
			c.Reason += fmt.Sprintf(" (or let a later pass %s it by itself: one that reads contract %s ended before the effective date)", verb, k.ContractID)
		}
		return nil
	}
	return nil
}

// HoldAsRepointed holds c, a change that adds or raises a line, as
// repointedLine holds one (HoldPreviousService), with why added to its
// reason. The billing-impact report uses it to predict that hold when
// psa-syncd's ledger is not at hand: from the PSA's read of the old
// service's line.
func (c *Change) HoldAsRepointed(why string) {
	c.Action, c.repointed = ActionHeld, true
	c.Reason += why
}
