package usage

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
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
	// read with the customer's lines; where the customer's pass failed
	// before that read, the last pass's: keepUnread), otherwise the
	// units psa-syncd last set (its ledger).
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
// psa-syncd's ledger, with no PSA request but the once-a-day read of the
// end dates of the contracts of customers no mapping names
// (Engine.orphanTerms): the lines whose entry in force at
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
// while its ledger entry in force is the one cleared) or says it was set
// to 0 (a DoubtedLine that is Zeroed, in force).
type orphans struct {
	lines map[psa.LineKey]*OrphanedLine
	// byContract holds the keys of lines of OrphanService by contract
	// (idKey), for the read check.
	byContract map[string][]psa.LineKey
	// pairOf holds, by contract of byContract (idKey), the other
	// contracts of the renewal pairs (contract_id, next_contract_id) that
	// name it, and readIDs the contracts the pass read (idKey): a pass
	// reads one contract of a pair, and readPairs the other.
	pairOf  map[string][]string
	readIDs map[string]bool
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
// (state.DB.LinesInForce): none when nothing is orphaned. The end dates of
// the contracts of the candidates of OrphanCustomer are read from the PSA
// once a day (Engine.orphanTerms; kept in the state database unless record
// is false, for a plan). customer, when not empty,
// limits the list to that customer's lines (a pass for one customer). An
// error reading the ledger is logged, and the pass keeps the list the pass
// before it found (Unmapped.OrphanedUnread): a line that bills does not
// drop off the list, and the gauge to 0, for a pass.
func (e *Engine) findOrphans(ctx context.Context, doc *export.Document, src string, products map[string]export.ProductMapping, eff time.Time, customer string, record bool) *orphans {
	o := &orphans{lines: map[psa.LineKey]*OrphanedLine{}, byContract: map[string][]psa.LineKey{}, pairOf: map[string][]string{}, readIDs: map[string]bool{}}
	if e.db == nil {
		return o
	}
	err := error(nil)
	if e.failOrphans != nil {
		err = e.failOrphans()
	}
	if err == nil {
		err = e.readOrphans(ctx, o, doc, src, products, eff, customer, record)
	}
	if err != nil {
		e.logger.Warn("Could not read psa-syncd's ledger for lines no mapping writes any more; this pass keeps the orphaned lines the last pass found", "err", err)
		o.lines, o.byContract, o.pairOf, o.unread = map[psa.LineKey]*OrphanedLine{}, map[string][]psa.LineKey{}, map[string][]string{}, true
	}
	return o
}

func (e *Engine) readOrphans(ctx context.Context, o *orphans, doc *export.Document, src string, products map[string]export.ProductMapping, eff time.Time, customer string, record bool) error {
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
	if customer == "" {
		if err := e.markBilling(unowned, sys, eff); err != nil {
			return err
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
		if customer == "" {
			e.orphanTerms(ctx, nil, true, record)
		}
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
	doubts, err := e.doubtedLines()
	if err != nil {
		return err
	}
	candidate := func(le state.LedgerEntry) bool {
		if le.System != sys || le.Source != src || le.After <= 0 || customer != "" && le.CustomerID != customer {
			return false
		}
		k := clearedKey(sys, src, le.ContractID, le.ServiceID)
		if d, ok := doubts[k]; ok && d.Zeroed && d.Seq == le.Seq {
			// Kaseya BMS: an operator said the line was set to 0
			// since psa-syncd set it (DoubtedLine): it bills nothing.
			return false
		}
		// Not cleared by an operator, or psa-syncd changed the line
		// since.
		c, ok := cleared[k]
		return !ok || le.Seq > c.Seq
	}
	// The contracts of the lines of customers no mapping names are no
	// longer read by the pass: their end dates are read here, once a day.
	var gone []string
	goneSeen := map[string]bool{}
	for _, le := range inForce {
		if candidate(le) && len(owners[idKey(le.ContractID)]) == 0 && !mappedCustomers[le.CustomerID] && !goneSeen[le.ContractID] {
			goneSeen[le.ContractID] = true
			gone = append(gone, le.ContractID)
		}
	}
	e.orphanTerms(ctx, gone, customer == "", record)
	effDay := eff.Format(time.DateOnly)
	for key, le := range inForce {
		if !candidate(le) {
			continue
		}
		if t, ok := e.terms.get(sys, le.ContractID); ok && !t.ct.EndDate.IsZero() && t.ct.EndDate.Format(time.DateOnly) < effDay {
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
			if len(o.byContract[k]) == 0 {
				for _, cm := range ms {
					other := cm.ContractID
					if idKey(other) == k {
						other = cm.NextContractID
					}
					if other != "" && idKey(other) != k {
						o.pairOf[k] = append(o.pairOf[k], idKey(other))
					}
				}
			}
			o.byContract[k] = append(o.byContract[k], key)
		}
		o.lines[key] = l
	}
	return nil
}

// markBilling marks the kept terms of contracts unowned, those no
// customer mapping names, by whether a line psa-syncd set above 0 is in
// force there at eff (ContractTerms.markBilling): a renewal's old contract
// or the one a customer was moved from, whose end date movedLine goes by,
// is kept in the snapshot as long as that line is, not contractTermsKept
// (a process started later would otherwise read it again, or hold the
// customer's new line where its record cannot be read). Only contracts
// whose terms are kept are looked up (state.DB.LinesInForce, once per
// 500): a contract never read has none to keep.
func (e *Engine) markBilling(unowned []string, sys psa.System, eff time.Time) error {
	e.terms.restore(e.db, e.logger)
	known := e.terms.known(sys, unowned)
	if len(known) == 0 {
		return nil
	}
	inForce, err := e.db.LinesInForce(known, eff.AddDate(0, 0, 1))
	if err != nil {
		return err
	}
	billing := map[string]bool{}
	for _, le := range inForce {
		if le.System == sys && le.After > 0 {
			billing[le.ContractID] = true
		}
	}
	e.terms.markBilling(sys, known, billing)
	return nil
}

// read applies the pass's read of a mapped contract (lines, read from the
// PSA, not from the ledger) to its orphaned lines: a line the read shows at
// 0, or not at all, was zeroed or ended by the operator and is not listed;
// another shows the quantity read.
func (o *orphans) read(contractID string, lines *lineIndex) {
	o.readIDs[idKey(contractID)] = true
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

// readPairs reads at eff, after the pass's reads (read), the lines of the
// contracts with lines of OrphanService that the pass did not read while
// it read the other contract of a renewal pair naming them: the pass reads
// the contract of the pair in force at the effective date alone, and a
// line psa-syncd set on the other while that one was in force (a renewal
// postponed in the PSA, a contract extended) would otherwise be listed from
// the ledger after it was zeroed there, until cleared. The read applies as
// read's does, but a line it does not show on a contract it shows no line
// of (a contract the API user cannot see reads empty) stays listed from
// the ledger. No service is managed by the read (psa.ServiceLineReader): a
// service on the contract twice is one Inexact line. One read per
// readChunk contracts (Autotask: a query per 500; ConnectWise: a request
// per agreement), none when no such line is listed; only where the pass
// reads lines (not Kaseya BMS). A read that fails leaves the lines listed
// from the ledger, and is logged.
func (o *orphans) readPairs(ctx context.Context, e *Engine, eff time.Time) {
	var ids []string
	for k, keys := range o.byContract {
		if o.readIDs[k] || !slices.ContainsFunc(o.pairOf[k], func(x string) bool { return o.readIDs[x] }) {
			continue
		}
		if slices.ContainsFunc(keys, func(lk psa.LineKey) bool { return o.lines[lk] != nil }) {
			ids = append(ids, keys[0].ContractID)
		}
	}
	slices.SortFunc(ids, compareIDs)
	for batch := range slices.Chunk(ids, readChunk) {
		got, err := e.readLines(ctx, batch, nil, eff)
		failed, err := contractFailures(err)
		if err != nil {
			e.logger.Warn("Could not read the lines no product mapping writes any more on the other contract of their customers' renewal pairs; they stay listed as psa-syncd last set them",
				"contracts", len(batch), "err", err)
			continue
		}
		lines := &lineIndex{}
		lines.add(got)
		for _, id := range batch {
			if failed[idKey(id)] != nil {
				continue
			}
			o.readIDs[idKey(id)] = true
			shown := lines.hasContract(id)
			for _, k := range o.byContract[idKey(id)] {
				l, ok := lines.get(k)
				switch {
				case !ok && !shown:
				case !ok || l.Quantity <= 0:
					delete(o.lines, k)
				default:
					if ol := o.lines[k]; ol != nil {
						ol.Quantity, ol.Read = l.Quantity, true
					}
				}
			}
		}
	}
}

// keepUnread applies, after the pass's reads (read, readPairs), the last
// pass's verdict to the lines of OrphanService of the contracts the pass
// did not read: its customer's pass failed before or at the read, or the
// read of the other contract of its renewal pair failed. Listed from the
// ledger, a line zeroed by hand since (which a read took off the list)
// would come back to the list, and psa_sync_orphaned_lines, until the
// contract reads again. A line the last pass listed for the same ledger
// entry (Seq) stays, with the units it listed, and so does one psa-syncd
// set after that pass (a later run); another is left out for this pass:
// the last read showed it at 0 or not at all, or it was no candidate then
// (its product mapping removed since), and the next pass that reads its
// contract lists it.
// With no pass kept before (a new state database), or a kept report that
// cannot be read (logged), the lines stay listed from the ledger.
func (o *orphans) keepUnread(e *Engine) {
	var unread []psa.LineKey
	for k, keys := range o.byContract {
		if o.readIDs[k] {
			continue
		}
		for _, lk := range keys {
			if o.lines[lk] != nil {
				unread = append(unread, lk)
			}
		}
	}
	if len(unread) == 0 || e.db == nil {
		return
	}
	var prev UnmappedReport
	if _, err := e.db.Snapshot(SnapshotUnmapped, &prev); err != nil {
		e.logger.Warn("Could not read the last pass's orphaned lines; the lines of the contracts this pass did not read are listed as psa-syncd last set them", "err", err)
		return
	}
	if prev.Time.IsZero() {
		return
	}
	last := make(map[psa.LineKey]OrphanedLine, len(prev.Unmapped.Orphaned))
	for _, l := range prev.Unmapped.Orphaned {
		last[psa.LineKey{ContractID: idKey(l.ContractID), ServiceID: idKey(l.ServiceID)}] = l
	}
	for _, lk := range unread {
		ol := o.lines[lk]
		if ol.RunID > prev.RunID {
			// psa-syncd set it after the last pass's reads: no read
			// says otherwise.
			continue
		}
		l, ok := last[psa.LineKey{ContractID: idKey(ol.ContractID), ServiceID: idKey(ol.ServiceID)}]
		if !ok || l.Seq != ol.Seq {
			delete(o.lines, lk)
			continue
		}
		ol.Quantity, ol.Read = l.Quantity, l.Read
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

// snapshotOrphanedContracts is the name of the state snapshot of
// ContractTerms.orphaned: a list of storedOrphaned.
const snapshotOrphanedContracts = "orphaned_contracts"

// storedOrphaned is an entry of ContractTerms.orphaned as the snapshot
// keeps it.
type storedOrphaned struct {
	System  psa.System `json:"system"`
	ID      string     `json:"id"`
	AskedAt time.Time  `json:"asked_at"`
}

// orphanedDue records contracts ids as those with candidate orphaned lines
// (all: every one of them, so that the others are dropped, and their terms
// age out of the snapshot as the unmapped contracts' do) and returns those
// whose records are due: never read nor asked for, or last contractCheckTTL
// or more before now.
func (t *ContractTerms) orphanedDue(sys psa.System, ids []string, all bool, now time.Time) (due []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false
	next := t.orphaned
	if all || next == nil {
		next = make(map[termsKey]time.Time, len(ids))
	}
	for _, id := range ids {
		k := termsKey{sys, id}
		asked, known := t.orphaned[k]
		if !known {
			changed = true
		}
		next[k] = asked
		if c, ok := t.m[k]; ok && c.readAt.After(asked) {
			asked = c.readAt
		}
		if age := now.Sub(asked); asked.IsZero() || age < 0 || age >= contractCheckTTL {
			due = append(due, id)
		}
	}
	if all {
		for k := range t.orphaned {
			if _, ok := next[k]; !ok && k.system == sys {
				changed = true
			} else if !ok {
				next[k] = t.orphaned[k]
			}
		}
	}
	t.orphaned = next
	t.orphanedDirty = t.orphanedDirty || changed
	return due
}

// orphanedAsked records that the records of contracts ids were asked for
// at now.
func (t *ContractTerms) orphanedAsked(sys psa.System, ids []string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if _, ok := t.orphaned[termsKey{sys, id}]; ok {
			t.orphaned[termsKey{sys, id}] = now
			t.orphanedDirty = true
		}
	}
}

// orphanedUnsaved reports whether the snapshot does not hold
// ContractTerms.orphaned as it is.
func (t *ContractTerms) orphanedUnsaved() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.orphanedDirty
}

// saveOrphaned stores ContractTerms.orphaned in the state snapshot.
func (t *ContractTerms) saveOrphaned(db *state.DB) error {
	t.mu.Lock()
	stored := make([]storedOrphaned, 0, len(t.orphaned))
	for k, at := range t.orphaned {
		stored = append(stored, storedOrphaned{System: k.system, ID: k.id, AskedAt: at})
	}
	t.orphanedDirty = false
	t.mu.Unlock()
	slices.SortFunc(stored, func(a, b storedOrphaned) int {
		return cmp.Or(cmp.Compare(a.System, b.System), cmp.Compare(a.ID, b.ID))
	})
	if err := db.PutSnapshot(snapshotOrphanedContracts, stored); err != nil {
		t.mu.Lock()
		t.orphanedDirty = true
		t.mu.Unlock()
		return err
	}
	return nil
}

// orphanTerms reads the records of contracts ids, those no customer
// mapping of the source names any more on which psa-syncd set a line for a
// customer no mapping names (the candidates of OrphanCustomer), so that
// their end dates are read once a day as the mapped contracts' are
// (checkContractEnds): a line of such a contract is listed until the
// contract ends, and again once its end date is moved later (an Autotask
// contract renewed by extending it) rather than for good as the day of the
// customer mapping's removal left it; and a process started more than
// contractTermsKept after that day lists what a long-running one does.
// Only the records never read, or read (or asked for) a day or more
// before, are read: one bulk read (psa.BulkReader: one Autotask query per
// 500 contracts, one ConnectWise request per 100; Kaseya BMS three
// requests per contract up to 24, else one lookup per 100 with the
// contract summary and account lookup) a day, none at most passes. all is
// set for a pass over every customer: the contracts it does not name are
// no longer candidates. What is read is kept in e.terms and, unless record
// is false (a plan changes no state), in its snapshot with ids, whose
// terms it keeps however old. A read that fails is logged, and the terms
// read before stand.
func (e *Engine) orphanTerms(ctx context.Context, ids []string, all, record bool) {
	sys := e.be.System()
	now := e.now()
	e.terms.restore(e.db, e.logger)
	if due := e.terms.orphanedDue(sys, ids, all, now); len(due) > 0 {
		slices.SortFunc(due, compareIDs)
		found, errs := e.readContractRecords(ctx, due)
		var asked []string
		var failed error
		for _, id := range due {
			switch ct, err := found[id], errs[id]; {
			case ct != nil:
				e.terms.put(sys, id, contractTerm{ct: ct, readAt: now})
				asked = append(asked, id)
			case errors.Is(err, errNotRead):
				// Not found (deleted, out of the API user's
				// sight): asked again a day later, not at every
				// pass; its terms as last read stand.
				asked = append(asked, id)
			case err != nil:
				failed = err
			}
		}
		if failed != nil {
			e.logger.Warn("Could not read the end dates of the contracts with lines no customer mapping writes any more; their terms as read before stand",
				"contracts", len(due), "err", failed)
		}
		e.terms.orphanedAsked(sys, asked, now)
	}
	// The terms are saved with the set: a term read by a plan, which
	// keeps no state, is saved by the next pass.
	if !record || e.db == nil || !e.terms.orphanedUnsaved() {
		return
	}
	err := e.terms.save(e.db, now)
	if err == nil {
		err = e.terms.saveOrphaned(e.db)
	}
	if err != nil {
		e.logger.Warn("Could not keep the end dates of the contracts with orphaned lines in the state database; the next process reads them again", "err", err)
	}
}
