package impact

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// withRepointHolds returns p, the plan under the proposed mappings, with
// the lines held that the pass after apply holds because a product mapping
// is re-pointed to another service while the customer's line of the old
// service still bills (usage.HoldPreviousService), as the report predicts
// them without psa-syncd's ledger (Options.State; with it, the engine
// decides them itself): a line p adds or raises on a contract where the
// current plan shows no line of its service above 0 (psa-syncd never set
// it, as far as the PSA shows), for a customer whose line of another
// service, synced under the current mappings, shows units in the PSA (cur)
// while no proposed product mapping of the source names that service any
// more with sync on. psa-syncd set that line, so its ledger says so too, unless the line
// was set by hand since.
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
		contract, service string
		units             int64
	}
	billing := map[[2]string][]oldLine{}
	shown := map[lineKey]bool{}
	for _, ch := range cur.Changes {
		if !ch.CurrentKnown || ch.Current <= 0 {
			continue
		}
		shown[keyOf(ch)] = true
		if !named[[2]string{ch.Source, ch.ServiceID}] {
			k := [2]string{ch.Source, ch.CustomerID}
			billing[k] = append(billing[k], oldLine{ch.ContractID, ch.ServiceID, ch.Current})
		}
	}
	var out *usage.Plan
	for i, ch := range p.Changes {
		if ch.Action != usage.ActionUpdate || ch.Desired <= 0 || ch.CurrentKnown && ch.Desired <= ch.Current || shown[keyOf(ch)] {
			continue
		}
		olds := billing[[2]string{ch.Source, ch.CustomerID}]
		if len(olds) == 0 {
			continue
		}
		o := slices.MinFunc(olds, func(a, b oldLine) int {
			return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.contract, b.contract))
		})
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
