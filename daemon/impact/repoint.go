package impact

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// withRepointHolds returns p, the plan under the proposed mappings, with
// the lines held that the pass after apply holds because a product mapping
// is re-pointed to another service while the customer's line of the old
// service still bills (usage.HoldPreviousService), as the report predicts
// them without psa-syncd's ledger (Options.State; with it, the engine
// decides them itself): a line p adds or raises on a contract where the
// current plan shows no line of its service above 0 (psa-syncd never set
// it, as far as the PSA shows), for a customer whose line of another
// service, synced under the current mappings, bills while no proposed
// product mapping of the source names that service any more with sync on.
//
// Whether that line bills is what the pass asks its ledger: whether
// psa-syncd set it above 0 and has not set it to 0 since. Where the PSA
// shows it above 0 (cur), psa-syncd set it, so its ledger says so too,
// unless the line was set by hand since. Where the PSA shows no line of
// it while the current mappings set it (Desired above 0), the report
// cannot tell. On Kaseya BMS, whose lines are never read, either is as
// likely (a customer whose usage of the product is new since psa-syncd's
// last pass has no old line, one billed at that pass has), and the pass
// writes the line in the one case and holds it in the other: so the
// line's proposed units are unknown (holdUnknown), not guessed, and
// its why says both. On Autotask and ConnectWise the read would show a
// line psa-syncd set, so most likely it never did (usage new since its
// last pass) and the line is written, but the pass holds it when the
// ledger says otherwise (the old line deleted in the PSA, or out of the
// API user's sight: a read that shows no line does not release the hold).
// Without PSA credentials (offline) no line was read, so none is missing
// from a read, and the line has no such note. A line that the current
// mappings write on Kaseya BMS is taken for one psa-syncd set, and not
// held, unless BMS lists no line of its service on the contract
// (lineAbsent): then psa-syncd never set it (a customer's usage of a
// product mapped since, new since its last pass), and the pass holds it
// where the old line bills, as above.
// holdNotes records what the pass does for the line's why.
func (c *compare) withRepointHolds(cur, p *usage.Plan) *usage.Plan {
	named := map[[2]string]bool{}
	for _, pm := range c.proposed.ProductMappings {
		// As the pass (usage.syncedServices): a service only mappings
		// with sync off name is no longer written either.
		if pm.SyncEnabled {
			named[[2]string{pm.Source, pm.ServiceID}] = true
		}
	}
	type oldLine struct {
		contract, service, name string
		units                   int64
		// read is whether the PSA shows the line with units; else
		// units are what the current mappings set on it.
		read bool
	}
	unread := c.current.PSA.System == psa.SystemKaseyaBMS
	billing := map[[2]string][]oldLine{}
	shown := map[lineKey]bool{}
	// written holds the lines of shown that are there only because the
	// current mappings write them (Kaseya BMS): psa-syncd may have set
	// them at an earlier pass, or the usage may be new since its last
	// pass, which only its ledger tells.
	written := map[lineKey]bool{}
	for _, ch := range cur.Changes {
		units := ch.Current
		switch {
		case ch.CurrentKnown && ch.Current > 0:
			shown[keyOf(ch)] = true
		case !ch.CurrentKnown && ch.Action == usage.ActionUpdate && ch.Desired > 0:
			units = ch.Desired
			if unread {
				// psa-syncd writes this line under the current
				// mappings: taken for one it set, unless the PSA
				// lists no line of its service on the contract
				// (lineAbsent).
				shown[keyOf(ch)], written[keyOf(ch)] = true, true
			}
		default:
			continue
		}
		if !named[[2]string{ch.Source, ch.ServiceID}] {
			k := [2]string{ch.Source, ch.CustomerID}
			billing[k] = append(billing[k], oldLine{ch.ContractID, ch.ServiceID, ch.ServiceName, units, ch.CurrentKnown})
		}
	}
	var out *usage.Plan
	for i, ch := range p.Changes {
		if ch.Action != usage.ActionUpdate || ch.Desired <= 0 || ch.CurrentKnown && ch.Desired <= ch.Current {
			continue
		}
		olds := billing[[2]string{ch.Source, ch.CustomerID}]
		if len(olds) == 0 {
			continue
		}
		if k := keyOf(ch); shown[k] && (!written[k] || !c.lineAbsent(ch.ServiceID, ch.ContractID)) {
			continue
		}
		o := slices.MinFunc(olds, func(a, b oldLine) int {
			// A line the PSA shows billing decides before one it does
			// not show.
			return cmp.Or(compareBool(b.read, a.read), cmp.Compare(a.service, b.service), cmp.Compare(a.contract, b.contract))
		})
		if !o.read {
			service := o.service
			if o.name != "" {
				service = fmt.Sprintf("%s (%s)", o.name, o.service)
			}
			if unread {
				c.noteHold(keyOf(ch), fmt.Sprintf("proposed units unknown without psa-syncd's ledger (its state database): "+
					"if psa-syncd set the line of service %[1]s on contract %[2]s at an earlier pass (%[3]d units under the current mappings; "+
					"no product mapping with sync on names that service after apply), which %[4]s cannot report, the pass holds this line at its units now "+
					"for review (previous_service) until an approval of this line (`psa-syncd sync --approve --customer ID --service ID`, once that line is set to 0) "+
					"or the end of contract %[2]s before the effective date; if it never did (the usage is new since its last pass), the pass sets %[5]d",
					service, o.contract, o.units, c.current.PSA.System.Title(), ch.Desired), true)
				continue
			}
			if c.offline {
				// Without PSA credentials nothing was read: no line
				// is missing from a read (as withMovedHolds).
				continue
			}
			c.noteHold(keyOf(ch), fmt.Sprintf("if psa-syncd set the line of service %[1]s on contract %[2]s (%[3]d units under the current mappings; "+
				"no product mapping with sync on names that service after apply), which %[4]s's read does not show (deleted in %[4]s, or out of the API user's sight), "+
				"the pass holds this line for review (previous_service) until an approval of this line (`psa-syncd sync --approve --customer ID --service ID`) "+
				"or the end of contract %[2]s before the effective date: a read that shows no line does not tell that it is 0",
				service, o.contract, o.units, c.current.PSA.System.Title()), false)
			continue
		}
		if out == nil {
			cp := *p
			cp.Changes = slices.Clone(p.Changes)
			out = &cp
		}
		out.Changes[i].HoldAsRepointed(fmt.Sprintf("; service %s, which no product mapping with sync on names after apply, still bills %d units on contract %s: held for review, as the pass holds a line that would bill the usage a second time, until an approval of this line",
			o.service, o.units, o.contract))
	}
	if out == nil {
		return p
	}
	return out
}

// lineAbsent reports whether the PSA lists the contract lines of service
// and contract is not among them: then psa-syncd never set a line of that
// service there (it would be listed), which the pass after apply holds as
// previous_service while the customer's old line bills. A list that is not
// whole, or that cannot be read, tells nothing: false.
func (c *compare) lineAbsent(service, contract string) bool {
	contracts := c.listedContracts(service, contract)
	return contracts != nil && !contracts[contract]
}

// lineListed reports whether the PSA lists a line of service on contract.
func (c *compare) lineListed(service, contract string) bool {
	return c.listedContracts(service, contract)[contract]
}

// listedContracts returns the contracts the PSA lists a line of service
// on, or nil when that is not known: the service or contract is known
// only after apply, or the list is not whole or cannot be read. Kaseya
// BMS lists a service's
// lines without their units (psa.ServiceLinePager): one request per page
// of them, read once per service; every page, since the contract may be on
// any of them.
func (c *compare) listedContracts(service, contract string) map[string]bool {
	if c.be == nil || isUnknown(service) || isUnknown(contract) {
		return nil
	}
	if c.serviceLines == nil {
		c.serviceLines = map[string]map[string]bool{}
	}
	contracts, read := c.serviceLines[service]
	if !read {
		lines, err := c.serviceLinesOf(service)
		if err == nil {
			contracts = map[string]bool{}
			for _, l := range lines {
				contracts[l.ContractID] = true
			}
		}
		c.serviceLines[service] = contracts // nil: not known
	}
	return contracts
}

// serviceLinesOf returns every contract line of service, from the PSA's
// paged read where it has one (psa.ServiceLinePager), else from its one
// read (psa.ServiceLineLister) when that holds them all; an error when
// the PSA has neither or some lines were not read.
func (c *compare) serviceLinesOf(service string) ([]psa.ServiceLine, error) {
	if lp, ok := c.be.Backend.(psa.ServiceLinePager); ok {
		return lp.AllServiceLines(c.ctx, service)
	}
	ll, ok := c.be.Backend.(psa.ServiceLineLister)
	if !ok {
		return nil, psa.ErrNotSupported
	}
	lines, total, err := ll.ServiceLines(c.ctx, service)
	if err == nil && total > len(lines) {
		err = fmt.Errorf("%d of %d lines of service %s read", len(lines), total, service)
	}
	return lines, err
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
