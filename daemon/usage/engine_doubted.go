package usage

import (
	"fmt"
	"slices"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// snapshotLinesDoubted holds the lines whose units an operator said were
// changed by hand after psa-syncd last set them ([]DoubtedLine).
const snapshotLinesDoubted = "lines_doubted"

// snapshotLinesDoubtedEnded holds the records of lines listed as orphaned
// that doubtListed set apart when their contract ended ([]DoubtedLine),
// until a customer mapping names the contract again, the line is listed
// again, or the contract ended more than endedDoubtsKept months before a
// pass's effective date.
const snapshotLinesDoubtedEnded = "lines_doubted_ended"

// endedDoubtsKept is how many months after its contract's end a record
// set apart (snapshotLinesDoubtedEnded) is kept: a year's term and a
// month, so that a yearly contract extended late and mapped again in the
// same change still has its line posted again. A contract extended later
// than that is a new billing relation that an operator maps on purpose,
// and without a bound the set would keep an entry for every line listed
// as orphaned whose contract ended and is never mapped again, read by
// every plan and pass.
const endedDoubtsKept = 13

// DoubtedLine records a line that, as an operator said, may no longer
// hold the units psa-syncd's ledger entry Seq set on it: on a PSA whose
// lines cannot be read (Kaseya BMS), that entry is all psa-syncd knows of
// the line, and a line mapped again would be left "unchanged" at units it
// no longer has (unbilled), or a product pointed back to it would raise it
// beside the line of the service it left, which still bills (billed
// twice). It is recorded when:
//
//   - a pass writes a line approved out of its previous_service hold
//     (Engine.repointedLine): the hold asked to set the line of the
//     service the product left to 0 first, and the approval says so
//     (Zeroed);
//   - an operator clears an orphaned line of Kaseya BMS (ClearOrphans,
//     doubtCleared): it was set to 0, its contract ended, or it bills on
//     purpose, which psa-syncd cannot tell apart; or, cleared as zeroed,
//     it was set to 0 (Zeroed), which releases the line held for it as
//     an approval does;
//   - a pass lists a line of Kaseya BMS as orphaned (doubtListed,
//     Listed): no mapping writes it, and the list asks a person to set it
//     to 0 or end it, which a person may do without clearing it; mapped
//     again, it would read "unchanged" at units it may no longer have.
//     A clear or an approval of the same entry says more, and replaces it.
//
// It counts while the ledger entry in force for the line is Seq: once
// psa-syncd sets the line again it knows its units, and the record is
// dropped.
type DoubtedLine struct {
	System     psa.System `json:"system"`
	Source     string     `json:"source"`
	ContractID string     `json:"contract_id"`
	ServiceID  string     `json:"service_id"`
	Seq        int64      `json:"seq"`
	// Zeroed is true when the operator said the line was set to 0: an
	// approval of ApprovedService's line, held for this one, or a clear
	// of the line as zeroed (no ApprovedService).
	Zeroed          bool   `json:"zeroed,omitempty"`
	ApprovedService string `json:"approved_service,omitempty"`
	// Listed is true for a record made by a pass that listed the line
	// as orphaned, not by an operator: Time is when it was first listed.
	Listed bool      `json:"listed,omitempty"`
	Time   time.Time `json:"time"`
	Note   string    `json:"note,omitempty"`
	// ContractEnd is, for a record set apart (snapshotLinesDoubtedEnded),
	// its contract's end date as read when it was set apart: the record
	// is dropped endedDoubtsKept months after it (or after a later end
	// date read since), whether or not psa-syncd still keeps the
	// contract's terms.
	ContractEnd time.Time `json:"contract_end,omitzero"`
}

func (d DoubtedLine) key() string { return clearedKey(d.System, d.Source, d.ContractID, d.ServiceID) }

// said tells what the operator said of the line, for a change's reason;
// sys names the PSA.
func (d DoubtedLine) said(sys string) string {
	note := ""
	if d.Note != "" {
		note = " (" + d.Note + ")"
	}
	if d.Zeroed && d.ApprovedService == "" {
		return fmt.Sprintf("was set to 0 by hand since, as it was said when cleared from the orphaned lines at %s%s",
			d.Time.Format(time.RFC3339), note)
	}
	if d.Zeroed {
		return fmt.Sprintf("was set to 0 by hand since, as the approval of service %s's line held for it said at %s",
			d.ApprovedService, d.Time.Format(time.RFC3339))
	}
	if d.Listed {
		return fmt.Sprintf("was listed as orphaned from %s, written by no mapping: it may have been set to 0 by hand or ended since, which %s cannot show",
			d.Time.Format(time.RFC3339), sys)
	}
	return fmt.Sprintf("was cleared from the orphaned lines at %s%s: set to 0 by hand, ended or billed on purpose since, which %s cannot show",
		d.Time.Format(time.RFC3339), note, sys)
}

// doubtListed records the orphaned lines of Kaseya BMS that a pass lists
// (DoubtedLine.Listed), at the ledger entry listed, unless a record of
// that entry is kept already (this pass's or an earlier one's, or an
// operator's, which says more). The list asks a person to set such a line
// to 0 or end it in the PSA, and nothing tells psa-syncd when a person
// did so without clearing it: without the record, a line mapped again
// with the same usage would be left "unchanged" at units it may no longer
// have, billing nothing, while the plan says it bills them. With it, the
// line is posted again (doubtedLine), which the plan shows: no change
// where it still has them, one post per line mapped again.
//
// It sets apart the records made so (Listed) of lines not listed now
// whose contract no customer mapping names (doc's, of any source) and has
// ended before eff as the contract terms psa-syncd keeps read it, among
// the ended records (snapshotLinesDoubtedEnded): such a line left the list
// because its contract ended (readOrphans), and the records that clears,
// approvals and passes read and edit hold only lines that may be listed
// or planned. The plan still reads an ended record (planDoubts): a
// contract extended and its customer mapped again in one change, before a
// pass lists the line again, would else read "unchanged" at units the
// line may no longer have. An ended record leaves the set once a mapping
// names its contract again, back among the records while the ledger entry
// it names is in force, dropped once psa-syncd set the line since (it
// knows its units); once the line is listed again, which records it
// again; or once its contract ended more than endedDoubtsKept months
// before eff, by the end date read when it was set apart or a later one
// psa-syncd read since (the contract extended, still ended). A record an
// operator made (a clear, an approval) stays where it is.
func (e *Engine) doubtListed(doc *export.Document, src string, listed []OrphanedLine, eff time.Time) {
	if e.db == nil || e.be.System() != psa.SystemKaseyaBMS {
		return
	}
	doubts, err := e.doubtedLines()
	if err != nil {
		e.logger.Warn("Could not read the lines psa-syncd was told were set by hand; the orphaned lines listed are not recorded as such, and one mapped again reads unchanged at the units psa-syncd set", "err", err)
		return
	}
	ended, err := e.endedDoubts()
	if err != nil {
		e.logger.Warn("Could not read the records of orphaned lines whose contract ended; the orphaned lines listed are not recorded as such, and one mapped again reads unchanged at the units psa-syncd set", "err", err)
		return
	}
	sys, now, changed := e.be.System(), e.now().UTC(), false
	// unended holds the keys leaving the ended records, apart holds the
	// records joining them (see the writes below).
	unended, apart := map[string]bool{}, map[string]DoubtedLine{}
	isListed := make(map[string]bool, len(listed))
	for _, l := range listed {
		d := DoubtedLine{System: sys, Source: src, ContractID: l.ContractID, ServiceID: l.ServiceID, Seq: l.Seq, Listed: true, Time: now}
		isListed[d.key()] = true
		if _, ok := ended[d.key()]; ok {
			unended[d.key()] = true
		}
		if old, ok := doubts[d.key()]; ok && old.Seq == d.Seq {
			continue
		}
		doubts[d.key()], changed = d, true
	}
	named := map[string]bool{}
	for _, cm := range doc.CustomerMappings {
		for _, id := range []string{cm.ContractID, cm.NextContractID} {
			if id != "" {
				named[idKey(id)] = true
			}
		}
	}
	back := 0
	for k, d := range ended {
		if unended[k] || !named[idKey(d.ContractID)] {
			continue
		}
		_, in, err := e.doubtInForce(ended, d.Source, d.ContractID, d.ServiceID, eff)
		if err != nil {
			e.logger.Warn("Could not read psa-syncd's ledger for a line of a contract that ended and is mapped again; its record is kept", "contract", d.ContractID, "service", d.ServiceID, "err", err)
			continue
		}
		unended[k] = true
		if _, ok := doubts[k]; in && !ok {
			d.ContractEnd = time.Time{}
			doubts[k], changed = d, true
			back++
		}
	}
	// A pass for one customer may not have restored them yet.
	e.terms.restore(e.db, e.logger)
	effDay := eff.Format(time.DateOnly)
	for k, d := range doubts {
		if !d.Listed || d.System != sys || isListed[k] || named[idKey(d.ContractID)] {
			continue
		}
		if t, ok := e.terms.get(sys, d.ContractID); ok && !t.ct.EndDate.IsZero() && t.ct.EndDate.Format(time.DateOnly) < effDay {
			delete(doubts, k)
			d.ContractEnd = t.ct.EndDate
			apart[k], changed = d, true
		}
	}
	oldDay, expired := eff.AddDate(0, -endedDoubtsKept, 0).Format(time.DateOnly), 0
	for k, d := range ended {
		if unended[k] {
			continue
		}
		// The later of the end date read when the record was set apart
		// and the one read since (extended, but ended still); none while
		// the contract has no end date.
		end := d.ContractEnd
		if t, ok := e.terms.get(d.System, d.ContractID); ok && (t.ct.EndDate.IsZero() || t.ct.EndDate.After(end)) {
			end = t.ct.EndDate
		}
		if !end.IsZero() && end.Format(time.DateOnly) < oldDay {
			unended[k] = true
			expired++
		}
	}
	// Two snapshots, written so that a failure between the writes leaves
	// a record in both sets (the plan takes the one among the records, a
	// later pass drops the other), never in neither: the records set
	// apart join the ended ones first, and the keys taken back leave them
	// last.
	if len(apart) > 0 {
		for k, d := range apart {
			ended[k] = d
		}
		if err := e.putEndedDoubts(ended); err != nil {
			e.logger.Warn("Could not set apart the records of orphaned lines whose contract ended; they are kept as they are", "err", err)
			return
		}
	}
	if changed {
		if err := e.putDoubtedLines(e.db.PassWrites(), doubts); err != nil {
			e.logger.Warn("Could not record the orphaned lines listed; one mapped again reads unchanged at the units psa-syncd set", "err", err)
			return
		}
	}
	if len(unended) > 0 {
		for k := range unended {
			delete(ended, k)
		}
		if err := e.putEndedDoubts(ended); err != nil {
			e.logger.Warn("Could not drop the records of orphaned lines whose contract ended that a mapping names again, a pass listed or whose contract ended too long ago; the next pass drops them", "err", err)
			return
		}
	}
	if len(apart) > 0 {
		e.logger.Info("Set apart the records of orphaned lines whose contract ended and no customer mapping names", "lines", len(apart))
	}
	if expired > 0 {
		e.logger.Info("Dropped the records of orphaned lines whose contract ended before ended_before, 13 months before the effective date: mapped again, such a line reads unchanged at the units psa-syncd set",
			"lines", expired, "ended_before", oldDay)
	}
	if back > 0 {
		e.logger.Info("Took back the records of orphaned lines whose contract ended, now that a customer mapping names it again", "lines", back)
	}
}

// endedDoubts reads the records doubtListed set apart by DoubtedLine.key.
func (e *Engine) endedDoubts() (map[string]DoubtedLine, error) {
	return e.readDoubts(snapshotLinesDoubtedEnded)
}

// putEndedDoubts stores the records doubtListed set apart.
func (e *Engine) putEndedDoubts(ended map[string]DoubtedLine) error {
	return e.db.PassWrites().PutSnapshot(snapshotLinesDoubtedEnded, sortedDoubts(ended))
}

// planDoubts reads the doubted lines a plan looks up: the records, and
// the records of lines whose contract ended (endedDoubts), which count for
// a line mapped again before a pass takes them back (doubtListed).
func (e *Engine) planDoubts() (map[string]DoubtedLine, error) {
	doubts, err := e.doubtedLines()
	if err != nil {
		return nil, err
	}
	ended, err := e.endedDoubts()
	if err != nil {
		return nil, err
	}
	for k, d := range ended {
		if _, ok := doubts[k]; !ok {
			doubts[k] = d
		}
	}
	return doubts, nil
}

// doubtedLines reads the doubted lines by DoubtedLine.key.
func (e *Engine) doubtedLines() (map[string]DoubtedLine, error) {
	return e.readDoubts(snapshotLinesDoubted)
}

// readDoubts reads the snapshot name, a list of DoubtedLine, by
// DoubtedLine.key.
func (e *Engine) readDoubts(name string) (map[string]DoubtedLine, error) {
	var list []DoubtedLine
	if _, err := e.db.Snapshot(name, &list); err != nil {
		return nil, err
	}
	out := make(map[string]DoubtedLine, len(list))
	for _, d := range list {
		out[d.key()] = d
	}
	return out, nil
}

// putDoubtedLines stores the doubted lines.
func (e *Engine) putDoubtedLines(w snapshotWriter, doubts map[string]DoubtedLine) error {
	return w.PutSnapshot(snapshotLinesDoubted, sortedDoubts(doubts))
}

// sortedDoubts lists doubts by contract and service.
func sortedDoubts(doubts map[string]DoubtedLine) []DoubtedLine {
	list := make([]DoubtedLine, 0, len(doubts))
	for _, d := range doubts {
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b DoubtedLine) int {
		if c := compareIDs(a.ContractID, b.ContractID); c != 0 {
			return c
		}
		return compareIDs(a.ServiceID, b.ServiceID)
	})
	return list
}

// doubtInForce returns the doubted line of (contract, service) when the
// ledger entry in force for it at eff is the one the record names.
func (e *Engine) doubtInForce(doubts map[string]DoubtedLine, source, contract, service string, eff time.Time) (DoubtedLine, bool, error) {
	d, ok := doubts[clearedKey(e.be.System(), source, contract, service)]
	if !ok {
		return DoubtedLine{}, false, nil
	}
	le, ok, err := e.db.SetBefore(contract, service, eff.AddDate(0, 0, 1))
	if err != nil {
		return DoubtedLine{}, false, fmt.Errorf("reading psa-syncd's ledger for its line of service %s on contract %s failed: %w", service, contract, err)
	}
	return d, ok && le.Seq == d.Seq, nil
}

// doubtedLine decides c, a Kaseya BMS line left unchanged, lowered or
// raised from the units psa-syncd's ledger says it set, when an operator
// said that the line may no longer hold them (d): it is posted at c's
// desired units (again, when unchanged: a post sets the line's units from
// its date, no change where it still has them), and repointedLine treats
// it as a line at 0, held while the line of a service the product left
// still bills.
func (e *Engine) doubtedLine(c *Change, d DoubtedLine) {
	c.doubted, c.doubtedZero = true, d.Zeroed
	c.Reason += fmt.Sprintf("; psa-syncd's ledger says %d units, as it set them, but the line %s", c.Current, d.said(systemName(e.be.System())))
	if c.Action == ActionUnchanged && c.Desired > 0 {
		// The reason says so once no hold keeps it (doubtedPost).
		c.Action = ActionUpdate
	}
}

// LedgerDoubted reports whether an operator said that the line may no
// longer hold Current, the units psa-syncd's ledger says it set (Kaseya
// BMS: a clear of the orphaned line, a pass that listed it as orphaned, or
// an approval of a line held for it, see DoubtedLine), and zero whether they said it holds 0: the
// billing-impact report shows what the line holds now from it.
func (c Change) LedgerDoubted() (doubted, zero bool) { return c.doubted, c.doubtedZero }

// doubtedPost ends the reason of c, a doubted line (doubtedLine) at the
// units psa-syncd's ledger says it set, when it is posted.
func doubtedPost(c *Change) {
	if c.doubted && c.Action == ActionUpdate && c.Desired == c.Current {
		c.Reason += fmt.Sprintf(": posted again at %d units", c.Desired)
	}
}

// recordDoubts records, after the pass's writes, the lines that the
// approvals of the lines written say were set to 0 (p.released), and
// drops the records of the lines the ledger shows psa-syncd set again:
// it knows their units. A post that failed, or whose outcome is unknown
// (awaiting review, which may settle it either way), keeps its record:
// the line is posted again once that is known not to have set it.
func (e *Engine) recordDoubts(p *pass) {
	if e.db == nil || !p.ledger {
		return
	}
	doubts, err := e.doubtedLines()
	if err != nil {
		e.logger.Warn("Could not read the lines psa-syncd was told were set by hand; the old lines of those approved this pass are not recorded", "err", err)
		return
	}
	sys, changed := e.be.System(), false
	var recorded []DoubtedLine
	for _, cp := range p.customers {
		for i := range cp.changes {
			c := &cp.changes[i]
			if c.Action != ActionUpdate {
				continue
			}
			if k := clearedKey(sys, c.Source, c.ContractID, c.ServiceID); doubts[k].Seq != 0 {
				_, in, err := e.doubtInForce(doubts, c.Source, c.ContractID, c.ServiceID, c.EffectiveDate)
				if err != nil {
					e.logger.Warn("Could not read psa-syncd's ledger for a line it was told was set by hand; its record is kept", "contract", c.ContractID, "service", c.ServiceID, "err", err)
				} else if !in {
					delete(doubts, k)
					changed = true
				}
			}
			for _, d := range p.released[psa.LineKey{ContractID: c.ContractID, ServiceID: c.ServiceID}] {
				doubts[d.key()], changed = d, true
				recorded = append(recorded, d)
			}
		}
	}
	if !changed {
		return
	}
	if err := e.putDoubtedLines(e.db.PassWrites(), doubts); err != nil {
		e.logger.Warn("Could not record the lines that approvals say were set to 0 by hand; a product pointed back to one is not held for the line that replaced it", "err", err)
		return
	}
	e.unlistZeroed(recorded)
	for _, d := range recorded {
		e.logger.Info("Line taken as set to 0 by hand, as the approval of the line held for it says: a product pointed back to its service is held while the approved line bills",
			"contract", d.ContractID, "service", d.ServiceID, "approved_service", d.ApprovedService, "seq", d.Seq)
	}
}

// unlistZeroed drops the lines of zeroed, which an operator just said were
// set to 0, from the orphaned lines the pass listed (stored before its
// writes): later passes do not list them (readOrphans), and this one's
// list and psa_sync_orphaned_lines say so at once (unlistOrphans, which
// keeps a newer list another instance's pass stored meanwhile).
func (e *Engine) unlistZeroed(zeroed []DoubtedLine) {
	if len(zeroed) == 0 {
		return
	}
	drop := map[string]int64{}
	for _, d := range zeroed {
		drop[d.key()] = d.Seq
	}
	if err := e.unlistOrphans(e.db, drop); err != nil {
		e.logger.Warn("Could not drop the orphaned lines approvals say were set to 0 from the pass's list; they stay listed until the next pass", "err", err)
	}
}
