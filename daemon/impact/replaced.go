package impact

import (
	"slices"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// withListedReplacedLines returns cur, the plan under the current
// mappings, with the lines added that a customer replaced on the same
// contract leaves there, where the report can tell them without
// psa-syncd's ledger (Kaseya BMS, whose lines are never read), so that
// replacedCustomers pairs them with the new customer's as it pairs them
// on the other PSAs: the replaced customer has no usage now (its id
// changed at the vendor, and its usage with it), so the current plan sets
// none of its lines, and they read as the new customer's usage newly
// billed and the old one's becoming unmapped. A line is added for each
// line p sets for a customer on a contract where, under the current
// mappings, exactly one other customer of its source is synced that the
// proposed mappings no longer sync there, with no line in cur (no usage),
// where a current product mapping with sync on names the line's service,
// and where BMS lists a line of that service on the contract
// (lineListed): a line psa-syncd set through that customer. The added
// line holds what it holds now (listed, to show it so), which the report
// does not know. p and cur are not changed; the second result holds the
// keys of the lines added.
func (c *compare) withListedReplacedLines(cur, p *usage.Plan) (*usage.Plan, map[lineKey]bool) {
	type contractKey struct{ source, contract string }
	// Customers with lines in cur, by contract.
	withLines := map[contractKey]map[string]bool{}
	for _, ch := range cur.Changes {
		k := contractKey{ch.Source, ch.ContractID}
		if withLines[k] == nil {
			withLines[k] = map[string]bool{}
		}
		withLines[k][ch.CustomerID] = true
	}
	// The customer each contract's lines would be replaced from: synced
	// there now, no longer after apply, and none of its lines in cur.
	leaving := map[contractKey][]int{}
	for i, cm := range c.current.CustomerMappings {
		if !cm.UsageSync || isUnknown(cm.ContractID) {
			continue
		}
		if after, ok := c.proposed.Customer(cm.Source, cm.CustomerID); ok && after.UsageSync && after.ContractID == cm.ContractID {
			continue
		}
		k := contractKey{cm.Source, cm.ContractID}
		if len(withLines[k]) > 0 {
			// Another customer's lines there under the current
			// mappings: which one set the PSA's line cannot be told.
			continue
		}
		leaving[k] = append(leaving[k], i)
	}
	if len(leaving) == 0 {
		return cur, nil
	}
	// The products whose usage sets each service under the current
	// mappings, as the pass (usage.syncedServices) names them.
	products := map[[2]string][]string{}
	for _, pm := range c.current.ProductMappings {
		if pm.SyncEnabled {
			k := [2]string{pm.Source, pm.ServiceID}
			products[k] = append(products[k], pm.Product)
		}
	}
	var out *usage.Plan
	added := map[lineKey]bool{}
	for _, ch := range p.Changes {
		olds := leaving[contractKey{ch.Source, ch.ContractID}]
		names := products[[2]string{ch.Source, ch.ServiceID}]
		if len(olds) != 1 || len(names) == 0 {
			continue
		}
		old := c.current.CustomerMappings[olds[0]]
		k := lineKey{ch.Source, old.CustomerID, ch.ContractID, ch.ServiceID}
		if old.CustomerID == ch.CustomerID || added[k] || !c.lineListed(ch.ServiceID, ch.ContractID) {
			continue
		}
		if out == nil {
			cp := *cur
			cp.Changes = slices.Clone(cur.Changes)
			out = &cp
		}
		slices.Sort(names)
		out.Changes = append(out.Changes, usage.Change{
			ChangeCustomer: &usage.ChangeCustomer{Source: ch.Source, CustomerID: old.CustomerID, CustomerName: old.CustomerName,
				CompanyID: old.CompanyID, ContractID: ch.ContractID},
			ChangeService: &usage.ChangeService{ServiceID: ch.ServiceID, ServiceName: ch.ServiceName, Products: slices.Compact(names)},
			Action:        usage.ActionUnchanged,
		})
		added[k] = true
	}
	if out == nil {
		return cur, nil
	}
	return out, added
}
