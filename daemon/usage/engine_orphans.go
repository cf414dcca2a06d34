package usage

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Orphaned-line reasons (OrphanedLine.Reason, the reason label of
// psa_sync_orphaned_lines).
const (
	// OrphanService: the line's contract is still mapped (a customer
	// mapping of the source with usage sync on), but no product mapping
	// of the source names its service any more: a product mapping was
	// removed, or re-pointed to another service (service_id changed).
	OrphanService = "service"
	// OrphanCustomer: no customer mapping of the source names the line's
	// contract any more (contract_id or next_contract_id), nor the
	// customer psa-syncd set the line for: the customer's mapping was
	// removed.
	OrphanCustomer = "customer"
)

// OrphanReasons are the labels of psa_sync_orphaned_lines.
var OrphanReasons = []string{OrphanService, OrphanCustomer}

// OrphanedLine is a contract line that psa-syncd set above 0 from the usage
// source, whose quantity is still that one as far as psa-syncd knows, and
// that no mapping makes it write any more (Unmapped.Orphaned): it goes on
// invoicing those units every month, and no pass changes it.
type OrphanedLine struct {
	// Reason is OrphanService or OrphanCustomer.
	Reason       string `json:"reason"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	ContractID   string `json:"contract_id"`
	ServiceID    string `json:"service_id"`
	// Quantity is the line's quantity: the pass's read of it when Read is
	// set (Autotask, ConnectWise: the contract is still mapped, and was
	// read with the customer's lines), otherwise the units psa-syncd last
	// set (its ledger).
	Quantity int64 `json:"quantity"`
	Read     bool  `json:"read,omitempty"`
	// Since is the effective date of psa-syncd's last change of the line,
	// and RunID the run that made it.
	Since string `json:"since"`
	RunID int64  `json:"run_id"`
	// Seq is the ledger entry psa-syncd set the line from (its seq in
	// psa-syncd ledger): clearing the line (Engine.ClearOrphans) records
	// it, so that a later change lists the line again.
	Seq int64 `json:"seq"`
}

// Hint says what to do about l.
func (l OrphanedLine) Hint(source string) string {
	if l.Reason == OrphanCustomer {
		return "no customer mapping of usage source " + source + " names contract " + l.ContractID +
			" any more: set the line to 0 (or end it) in the PSA, or map the customer again"
	}
	return "no product mapping of usage source " + source + " names service " + l.ServiceID +
		" any more: set the line to 0 (or end it) in the PSA, or map the product to the service again"
}

// orphans finds a pass's orphaned lines (Unmapped.Orphaned) from
// psa-syncd's ledger, with no PSA request: the lines whose entry in force at
// the pass's effective date (state.DB.SetBefore's) is psa-syncd's, from this
// source's usage, above 0, that no mapping of the source makes it write any
// more:
//   - no customer mapping of the source names the contract, nor the
//     customer psa-syncd set the line for (OrphanCustomer: the mapping was
//     removed; a customer mapped to another contract renewed or moved, and
//     a move is held as HoldMoved);
//   - the contract is mapped with usage sync on and no product mapping of
//     the source names the service, sync on or off (OrphanService).
//
// Not listed: a line of a product mapping with sync_enabled = false, or of
// a customer mapping with usage_sync = false (a hand-off to the operator on
// purpose); a line of a contract that, as the contract terms psa-syncd
// keeps read it, ended before the effective date; and, where the pass read
// the contract (Autotask, ConnectWise: a mapped contract's read holds every
// line of it), a line the read shows at 0 or not at all: the operator
// zeroed or ended it. A line of a contract the pass does not read (its
// customer's mapping is gone, or the PSA is Kaseya BMS) is listed until
// psa-syncd sets it again (the product or customer mapped again), its
// contract ends, or an operator clears it (Engine.ClearOrphans: not listed
// while its ledger entry in force is the one cleared).
type orphans struct {
	lines map[psa.LineKey]*OrphanedLine
	// byContract holds the keys of lines of OrphanService by contract
	// (idKey), for the read check.
	byContract map[string][]psa.LineKey
	// unread is set when the ledger could not be read: lines is empty,
	// and the pass keeps the list of the pass before (recordUnmapped).
	unread bool
	// candidates are the contracts whose lines in force were read.
	candidates []string
}

// findOrphans reads the orphaned lines of a pass. Two scans of the ledger's
// line index find the candidates (state.DB.LedgerContracts: the contracts
// no customer mapping of the source names; state.DB.LedgerLinesOutside:
// the mapped contracts with a line of a service no product mapping of the
// source names), and a scan of its customer index the customers no
// customer mapping of the source names (state.DB.LedgerCustomers), whose
// contracts alone are read (state.DB.LedgerContractsOf, once per 500 such
// customers) to keep of the first those with a line of such a customer;
// only the candidates' lines in force are read, once per 500 contracts
// (state.DB.LinesInForce): none when nothing is orphaned. customer, when not empty,
// limits the list to that customer's lines (a pass for one customer). An
// error reading the ledger is logged, and the pass keeps the list the pass
// before it found (Unmapped.OrphanedUnread): a line that bills does not
// drop off the list, and the gauge to 0, for a pass.
func (e *Engine) findOrphans(doc *export.Document, src string, products map[string]export.ProductMapping, eff time.Time, customer string) *orphans {
	o := &orphans{lines: map[psa.LineKey]*OrphanedLine{}, byContract: map[string][]psa.LineKey{}}
	if e.db == nil {
		return o
	}
	err := error(nil)
	if e.failOrphans != nil {
		err = e.failOrphans()
	}
	if err == nil {
		err = e.readOrphans(o, doc, src, products, eff, customer)
	}
	if err != nil {
		e.logger.Warn("Could not read psa-syncd's ledger for lines no mapping writes any more; this pass keeps the orphaned lines the last pass found", "err", err)
		o.lines, o.byContract, o.unread = map[psa.LineKey]*OrphanedLine{}, map[string][]psa.LineKey{}, true
	}
	return o
}

func (e *Engine) readOrphans(o *orphans, doc *export.Document, src string, products map[string]export.ProductMapping, eff time.Time, customer string) error {
	sys := e.be.System()
	named := namedServices(products)
	owners := map[string][]export.CustomerMapping{}
	mappedCustomers := map[string]bool{}
	for _, cm := range doc.CustomerMappings {
		if cm.Source != src {
			continue
		}
		mappedCustomers[cm.CustomerID] = true
		for _, id := range []string{cm.ContractID, cm.NextContractID} {
			if id != "" {
				owners[idKey(id)] = append(owners[idKey(id)], cm)
			}
		}
	}
	all, err := e.db.LedgerContracts()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var contracts []string
	add := func(id string) {
		if k := idKey(id); !seen[k] {
			seen[k] = true
			contracts = append(contracts, id)
		}
	}
	var unowned []string
	for _, id := range all {
		if len(owners[idKey(id)]) == 0 {
			unowned = append(unowned, id)
		}
	}
	// Of the contracts no customer mapping names, only those with a line
	// of a customer no mapping names can have one: the lines of a
	// customer mapped to another contract (a renewal, a move) are not
	// listed, and the old contracts of every renewal would otherwise
	// have their lines in force read at every pass, for good.
	if len(unowned) > 0 {
		customers, err := e.db.LedgerCustomers()
		if err != nil {
			return err
		}
		var gone []string
		for _, c := range customers {
			if !mappedCustomers[c] && (customer == "" || c == customer) {
				gone = append(gone, c)
			}
		}
		if len(gone) > 0 {
			theirs, err := e.db.LedgerContractsOf(gone)
			if err != nil {
				return err
			}
			of := make(map[string]bool, len(theirs))
			for _, id := range theirs {
				of[id] = true
			}
			for _, id := range unowned {
				if of[id] {
					add(id)
				}
			}
		}
	}
	services := make([]string, 0, len(named))
	for id := range named {
		services = append(services, id)
	}
	slices.Sort(services)
	outside, err := e.db.LedgerLinesOutside(services)
	if err != nil {
		return err
	}
	for _, k := range outside {
		if !named[k.ServiceID] && len(owners[idKey(k.ContractID)]) > 0 {
			add(k.ContractID)
		}
	}
	if len(contracts) == 0 {
		return nil
	}
	slices.SortFunc(contracts, compareIDs)
	o.candidates = contracts
	inForce, err := e.db.LinesInForce(contracts, eff.AddDate(0, 0, 1))
	if err != nil {
		return err
	}
	cleared, err := e.clearedOrphans()
	if err != nil {
		return err
	}
	effDay := eff.Format(time.DateOnly)
	for key, le := range inForce {
		if le.System != sys || le.Source != src || le.After <= 0 || customer != "" && le.CustomerID != customer {
			continue
		}
		if t, ok := e.terms.get(sys, le.ContractID); ok && !t.ct.EndDate.IsZero() && t.ct.EndDate.Format(time.DateOnly) < effDay {
			continue
		}
		if c, ok := cleared[clearedKey(sys, src, le.ContractID, le.ServiceID)]; ok && le.Seq <= c.Seq {
			// Cleared by an operator, and psa-syncd has not changed
			// the line since.
			continue
		}
		l := &OrphanedLine{CustomerID: le.CustomerID, ContractID: le.ContractID, ServiceID: le.ServiceID,
			Quantity: le.After, Since: le.EffectiveDate.Format(time.DateOnly), RunID: le.RunID, Seq: le.Seq}
		ms := owners[idKey(le.ContractID)]
		switch {
		case len(ms) == 0 && mappedCustomers[le.CustomerID]:
			// The customer is mapped to another contract: a renewal
			// (the old contract ended, and its lines bill nothing) or
			// a move, whose new lines movedLine holds while the old
			// ones bill (HoldMoved). Without a read of the old
			// contract's record the two look alike: not listed.
			continue
		case len(ms) == 0:
			l.Reason = OrphanCustomer
		case slices.ContainsFunc(ms, func(cm export.CustomerMapping) bool { return !cm.UsageSync }) || named[le.ServiceID]:
			continue
		default:
			l.Reason = OrphanService
			for _, cm := range ms {
				if cm.CustomerID == le.CustomerID {
					l.CustomerName = cm.CustomerName
				}
			}
			k := idKey(le.ContractID)
			o.byContract[k] = append(o.byContract[k], key)
		}
		o.lines[key] = l
	}
	return nil
}

// read applies the pass's read of a mapped contract (lines, read from the
// PSA, not from the ledger) to its orphaned lines: a line the read shows at
// 0, or not at all, was zeroed or ended by the operator and is not listed;
// another shows the quantity read.
func (o *orphans) read(contractID string, lines *lineIndex) {
	for _, k := range o.byContract[idKey(contractID)] {
		l, ok := lines.get(k)
		if !ok || l.Quantity <= 0 {
			delete(o.lines, k)
			continue
		}
		if ol := o.lines[k]; ol != nil {
			ol.Quantity, ol.Read = l.Quantity, true
		}
	}
}

// list returns the orphaned lines, by customer, contract and service.
func (o *orphans) list() []OrphanedLine {
	if len(o.lines) == 0 {
		return nil
	}
	out := make([]OrphanedLine, 0, len(o.lines))
	for _, l := range o.lines {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b OrphanedLine) int {
		return cmp.Or(strings.Compare(a.CustomerID, b.CustomerID), compareIDs(a.ContractID, b.ContractID), compareIDs(a.ServiceID, b.ServiceID))
	})
	return out
}
