package usage

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// snapshotOrphansCleared holds the orphaned lines an operator cleared
// ([]ClearedOrphan, Engine.ClearOrphans).
const snapshotOrphansCleared = "orphans_cleared"

// maxClearNote bounds the note of a clear, as a note set by hand is.
const maxClearNote = maxByHandNote

// ErrBadOrphanClear matches the refusal of ClearOrphans' arguments: a
// contract without a service (or the reverse), or a note too long or of
// more than one line.
var ErrBadOrphanClear = errors.New("daemon: bad request to clear orphaned lines")

// clearError is a refusal of ClearOrphans' arguments; it matches
// ErrBadOrphanClear.
type clearError struct{ msg string }

func (e *clearError) Error() string        { return e.msg }
func (e *clearError) Is(target error) bool { return target == ErrBadOrphanClear }

// ErrNoOrphan matches the refusal of ClearOrphans when the last pass
// listed no orphaned line it names.
var ErrNoOrphan = errors.New("daemon: no such orphaned line")

// ErrAlreadyCleared matches the answer of ClearOrphans to a clear of a
// line already cleared (a request sent again after its answer was lost):
// nothing more to do, and the error says when and with which note.
var ErrAlreadyCleared = errors.New("daemon: orphaned line already cleared")

// ClearedOrphan records an orphaned line an operator cleared (psa-syncd
// orphans -clear, POST /api/v1/orphans/clear, the status page): the
// operator zeroed or ended it in the PSA, or bills it on purpose. It is
// listed no more while psa-syncd's ledger entry in force for it is the
// one cleared (Seq); a later change psa-syncd makes of the line (the
// product or customer mapped again, then removed again) lists it again.
type ClearedOrphan struct {
	System     psa.System `json:"system"`
	Source     string     `json:"source"`
	ContractID string     `json:"contract_id"`
	ServiceID  string     `json:"service_id"`
	// Seq is the ledger entry in force when the line was cleared.
	Seq      int64     `json:"seq"`
	Quantity int64     `json:"quantity"`
	Time     time.Time `json:"time"`
	Note     string    `json:"note,omitempty"`
}

func clearedKey(sys psa.System, src, contract, service string) string {
	return string(sys) + "\x00" + src + "\x00" + idKey(contract) + "\x00" + idKey(service)
}

// clearedOrphans reads the cleared lines by clearedKey.
func (e *Engine) clearedOrphans() (map[string]ClearedOrphan, error) {
	var list []ClearedOrphan
	if _, err := e.db.Snapshot(snapshotOrphansCleared, &list); err != nil {
		return nil, err
	}
	return clearedByKey(list), nil
}

// clearedByKey returns the cleared lines of list by clearedKey.
func clearedByKey(list []ClearedOrphan) map[string]ClearedOrphan {
	out := make(map[string]ClearedOrphan, len(list))
	for _, c := range list {
		out[clearedKey(c.System, c.Source, c.ContractID, c.ServiceID)] = c
	}
	return out
}

// ClearOrphans clears the orphaned lines the last pass listed (the stored
// unmapped report): the line of contract and service, or, with both
// empty, every one but those the last pass read above 0 in the PSA
// (OrphanedLine.Read: they bill, and leave the list by themselves once
// zeroed; only a clear by name bills one on purpose). Each is recorded
// with the ledger entry it was listed from (OrphanedLine.Seq), leaves the
// stored list and psa_sync_orphaned_lines at once, and is not listed by
// later passes until psa-syncd changes the line again, or a pass plans it
// under a mapping again (forgetClears) and the mapping is removed. note
// (optional, one line) says who and why. zeroed says that the lines were
// set to 0 in the PSA, not ended or billed on purpose: on Kaseya BMS,
// whose lines cannot be read, a line a product mapping moved from is then
// taken to hold 0, as an approval of the line held for it says, which
// releases that hold (DoubtedLine.Zeroed); elsewhere the pass reads it.
// Nothing is sent to the PSA. It returns the lines cleared;
// ErrAlreadyCleared for a line named that is cleared already, ErrNoOrphan
// when the last pass listed none that matches.
func (e *Engine) ClearOrphans(contract, service, note string, zeroed bool) ([]OrphanedLine, error) {
	if e.db == nil {
		return nil, errors.New("daemon: clearing orphaned lines needs a state database")
	}
	contract, service, note = strings.TrimSpace(contract), strings.TrimSpace(service), strings.TrimSpace(note)
	switch {
	case (contract == "") != (service == ""):
		return nil, &clearError{"daemon: name both the contract and the service of the orphaned line to clear, or neither to clear every one"}
	case len(note) > maxClearNote:
		return nil, &clearError{fmt.Sprintf("daemon: the note is %d bytes long, more than the %d a note may have", len(note), maxClearNote)}
	case strings.ContainsAny(note, "\r\n"):
		return nil, &clearError{"daemon: the note must be one line"}
	}
	var rep UnmappedReport
	if _, err := e.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
		return nil, err
	}
	// An operator's clear is recorded only by the active instance (an
	// instance that lost the leadership lock before it noticed is refused
	// with state.ErrNotLeader), as resolve and set-by-hand are.
	fenced := e.db.Fenced()
	cleared, err := e.clearedOrphans()
	if err != nil {
		return nil, err
	}
	if e.clearRead != nil {
		e.clearRead()
	}
	sys, now := e.system(), e.now().UTC()
	var done []OrphanedLine
	var added []ClearedOrphan
	billing := 0
	for _, l := range rep.Unmapped.Orphaned {
		if contract != "" && (idKey(l.ContractID) != idKey(contract) || idKey(l.ServiceID) != idKey(service)) {
			continue
		}
		if contract == "" && l.Read && l.Quantity > 0 {
			// The last pass read this line above 0 in the PSA: it
			// bills, and a line zeroed there leaves the list at the
			// next pass by itself. Clearing every line is for those
			// psa-syncd cannot read; this one is cleared by name
			// only, to bill it on purpose.
			billing++
			continue
		}
		if l.Seq <= 0 {
			// Listed by a psa-syncd that did not record the ledger
			// entry: a clear without it would not hold past the next pass.
			return nil, &clearError{fmt.Sprintf("daemon: the orphaned line of contract %s, service %s was listed by an older psa-syncd, without its ledger entry: clear it after the next pass lists it again",
				l.ContractID, l.ServiceID)}
		}
		done = append(done, l)
		added = append(added, ClearedOrphan{System: sys, Source: rep.Source,
			ContractID: l.ContractID, ServiceID: l.ServiceID, Seq: l.Seq, Quantity: l.Quantity, Time: now, Note: note})
	}
	if len(done) == 0 {
		if contract == "" && billing > 0 {
			return nil, fmt.Errorf("%w: the last pass read each of the %d orphaned line(s) it listed above 0 in the PSA, where they bill: set them to 0 (or end them) there, "+
				"and the next pass drops them; to bill one on purpose, clear it by its contract and service", ErrNoOrphan, billing)
		}
		if contract == "" {
			return nil, fmt.Errorf("%w: the last pass listed no orphaned line", ErrNoOrphan)
		}
		if c, ok := cleared[clearedKey(sys, rep.Source, contract, service)]; ok {
			if zeroed {
				// Cleared before without saying it was set to 0 (the
				// hold of a line pointed back to its service stays):
				// said now, on Kaseya BMS, where it counts.
				l, said, err := e.zeroCleared(rep.Source, c, now, note)
				if err != nil {
					return nil, err
				}
				if said {
					return []OrphanedLine{l}, nil
				}
			}
			note := ""
			if c.Note != "" {
				note = " (" + c.Note + ")"
			}
			return nil, fmt.Errorf("%w: the orphaned line of contract %s, service %s was cleared at %s%s; later passes do not list it until psa-syncd changes it again",
				ErrAlreadyCleared, c.ContractID, c.ServiceID, c.Time.Format(time.RFC3339), note)
		}
		return nil, fmt.Errorf("%w: the last pass listed no orphaned line of contract %s, service %s (psa-syncd orphans lists them)", ErrNoOrphan, contract, service)
	}
	// kept is the clear in force for each line once recorded: this one's,
	// or the earlier one that a retry without a note keeps, whose note
	// and time the doubted-line record takes too.
	var kept map[string]ClearedOrphan
	err = e.editClears(fenced, func(cleared map[string]ClearedOrphan) bool {
		kept = make(map[string]ClearedOrphan, len(added))
		for _, c := range added {
			k := clearedKey(c.System, c.Source, c.ContractID, c.ServiceID)
			if old, ok := cleared[k]; ok && old.Seq == c.Seq && c.Note == "" {
				// The same line cleared again without a note (a retry
				// after a 500 that left it listed): the earlier clear,
				// its note and time, says more.
				kept[k] = old
				continue
			}
			cleared[k], kept[k] = c, c
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: recording the cleared orphaned lines: %w", err)
	}
	if err := e.doubtCleared(fenced, rep.Source, done, kept, now, note, zeroed); err != nil {
		return nil, fmt.Errorf("daemon: the orphaned lines are cleared, but recording that their units are not known any more failed; clear them again: %w", recordedBefore(err))
	}
	drop := make(map[string]int64, len(done))
	for _, l := range done {
		drop[clearedKey(sys, rep.Source, l.ContractID, l.ServiceID)] = l.Seq
	}
	if err := e.unlistOrphans(fenced, drop); err != nil {
		return nil, fmt.Errorf("daemon: the orphaned lines are cleared, but the last pass's list still shows them until the next pass: %w", recordedBefore(err))
	}
	for _, l := range done {
		e.logger.Info("Orphaned line cleared: not listed until psa-syncd changes it again", "customer", l.CustomerID,
			"contract", l.ContractID, "service", l.ServiceID, "quantity", l.Quantity, "reason", l.Reason, "seq", l.Seq, "zeroed", zeroed, "note", note)
	}
	return done, nil
}

// recordedBefore returns err of a write of a clear after the clear itself
// was recorded: a refusal for the lost leadership (state.ErrNotLeader) no
// longer matches it, since the daemon answers that one as a request that
// recorded nothing.
func recordedBefore(err error) error {
	if errors.Is(err, state.ErrNotLeader) {
		return errors.New(err.Error())
	}
	return err
}

// snapshotWriter stores snapshots: the state database for a pass's
// writes (its PassWrites for the doubted lines), its state.Fenced for an
// operator's clear.
type snapshotWriter interface {
	PutSnapshot(name string, v any) error
	ReplaceSnapshot(name, old string, found bool, v any) (bool, error)
}

// unlistTries bounds how often unlistOrphans reads the stored list again
// after a pass stored a newer one between its read and its write.
const unlistTries = 3

// unlistOrphans drops from the stored orphaned lines (the last pass's
// unmapped report) and psa_sync_orphaned_lines the lines of drop (by
// clearedKey) listed from the ledger entry drop gives (OrphanedLine.Seq).
// The list is stored only if it is unchanged since it was read
// (state.DB.ReplaceSnapshot), else read and edited again: an instance
// that lost the leadership before it noticed may clear a line while the
// instance that took over stores a newer list, and storing the older list
// minus the cleared line would hide the lines that pass found newly
// unmapped or orphaned until the next pass.
func (e *Engine) unlistOrphans(w snapshotWriter, drop map[string]int64) error {
	for range unlistTries {
		text, found, err := e.db.SnapshotText(SnapshotUnmapped)
		if err != nil || !found {
			return err
		}
		var rep UnmappedReport
		if err := json.Unmarshal([]byte(text), &rep); err != nil {
			return fmt.Errorf("daemon: reading the unmapped usage of the last pass: %w", err)
		}
		kept := rep.Unmapped.Orphaned[:0:0]
		for _, l := range rep.Unmapped.Orphaned {
			if seq, ok := drop[clearedKey(e.system(), rep.Source, l.ContractID, l.ServiceID)]; ok && seq == l.Seq {
				continue
			}
			kept = append(kept, l)
		}
		// Only the orphaned lines' gauge: the others may leave out what
		// an export loaded since the pass maps (recordMapped), and the
		// pass's own list would raise them again.
		if len(kept) == len(rep.Unmapped.Orphaned) {
			// Not listed (any more): a pass after the clear left them out.
			e.setOrphaned(rep.Unmapped.Orphaned)
			return nil
		}
		rep.Unmapped.Orphaned = kept
		stored, err := w.ReplaceSnapshot(SnapshotUnmapped, text, true, rep)
		if err != nil {
			return err
		}
		if stored {
			e.setOrphaned(rep.Unmapped.Orphaned)
			return nil
		}
	}
	return fmt.Errorf("daemon: the unmapped usage of the last pass changed each of the %d times it was read", unlistTries)
}

// editClears applies edit to the cleared lines (by clearedKey) and stores
// them when edit reports a change, only if they are unchanged since they
// were read (state.DB.ReplaceSnapshot), else reads and edits them again:
// a clear by an instance that lost the leadership before it noticed must
// not bring back the clear of a line the new active instance's pass just
// forgot (mapped again: a removal of that mapping would not list the line
// as orphaned), nor such a pass drop a clear recorded meanwhile.
func (e *Engine) editClears(w snapshotWriter, edit func(map[string]ClearedOrphan) bool) error {
	for range unlistTries {
		text, found, err := e.db.SnapshotText(snapshotOrphansCleared)
		if err != nil {
			return err
		}
		var list []ClearedOrphan
		if found {
			if err := json.Unmarshal([]byte(text), &list); err != nil {
				return fmt.Errorf("daemon: reading the cleared orphaned lines: %w", err)
			}
		}
		cleared := clearedByKey(list)
		if !edit(cleared) {
			return nil
		}
		list = make([]ClearedOrphan, 0, len(cleared))
		for _, c := range cleared {
			list = append(list, c)
		}
		sortCleared(list)
		stored, err := w.ReplaceSnapshot(snapshotOrphansCleared, text, found, list)
		if err != nil || stored {
			return err
		}
	}
	return fmt.Errorf("daemon: the cleared orphaned lines changed each of the %d times they were read", unlistTries)
}

// sortCleared orders cleared lines by contract and service.
func sortCleared(list []ClearedOrphan) {
	slices.SortFunc(list, func(a, b ClearedOrphan) int {
		if c := compareIDs(a.ContractID, b.ContractID); c != 0 {
			return c
		}
		if c := compareIDs(a.ServiceID, b.ServiceID); c != 0 {
			return c
		}
		return strings.Compare(a.Source+string(a.System), b.Source+string(b.System))
	})
}

// forgetClears drops the clears of the lines p plans under a mapping (any
// change of it, unchanged or held too): a mapping names the line again,
// so that a later removal of the mapping lists it again, whether or not
// psa-syncd changed its quantity in between (the ledger entry in force
// may still be the one cleared). A plan changes no state: only passes
// call it.
func (e *Engine) forgetClears(p *Plan) {
	if e.db == nil || len(p.Changes) == 0 {
		return
	}
	sys, src := e.system(), e.src.Name()
	var mapped []ClearedOrphan
	err := e.editClears(e.db, func(cleared map[string]ClearedOrphan) bool {
		mapped = nil
		for _, c := range p.Changes {
			if c.ChangeCustomer == nil || c.ChangeService == nil {
				continue
			}
			k := clearedKey(sys, src, c.ContractID, c.ServiceID)
			if co, ok := cleared[k]; ok {
				mapped = append(mapped, co)
				delete(cleared, k)
			}
		}
		return len(mapped) > 0
	})
	if err != nil {
		e.logger.Warn("Could not read or forget the clears of orphaned lines mapped again; a removal of their mapping does not list them until psa-syncd changes them", "err", err)
		return
	}
	for _, c := range mapped {
		e.logger.Info("Cleared orphaned line mapped again: listed again if its mapping is removed", "contract", c.ContractID, "service", c.ServiceID)
	}
}

// doubtCleared records the cleared lines of Kaseya BMS (DoubtedLine),
// which no pass reads: psa-syncd's ledger is all it knows of them, and the
// operator just said they may no longer hold what it set, so that a line
// mapped again is posted again rather than left unchanged at units it may
// no longer have; zeroed, that they hold 0. A line's record takes the time
// and note of its clear in kept (by clearedKey), where there is one of the
// same ledger entry, so that it says what the clear recorded says (a retry
// without a note keeps the earlier clear's); now and note otherwise.
func (e *Engine) doubtCleared(w snapshotWriter, src string, done []OrphanedLine, kept map[string]ClearedOrphan, now time.Time, note string, zeroed bool) error {
	if e.system() != psa.SystemKaseyaBMS {
		// Autotask and ConnectWise read a mapped contract's lines: a
		// line mapped again is read, and no record would be used.
		return nil
	}
	doubts, err := e.doubtedLines()
	if err != nil {
		return err
	}
	changed := false
	for _, l := range done {
		d := DoubtedLine{System: e.system(), Source: src, ContractID: l.ContractID, ServiceID: l.ServiceID, Seq: l.Seq, Zeroed: zeroed, Time: now, Note: note}
		if c, ok := kept[d.key()]; ok && c.Seq == d.Seq {
			d.Time, d.Note = c.Time, c.Note
		}
		if old, ok := doubts[d.key()]; ok && old.Seq == d.Seq && old.Zeroed {
			// An approval said it was set to 0: that says more.
			continue
		}
		doubts[d.key()], changed = d, true
	}
	if !changed {
		return nil
	}
	return e.putDoubtedLines(w, doubts)
}

// zeroCleared records that c, an orphaned line of Kaseya BMS cleared
// without saying it was set to 0, holds 0 (doubtCleared with zeroed), and
// returns it as the line cleared; said is false where nothing more is
// recorded: another PSA, or one said to hold 0 already.
func (e *Engine) zeroCleared(src string, c ClearedOrphan, now time.Time, note string) (l OrphanedLine, said bool, err error) {
	if e.system() != psa.SystemKaseyaBMS {
		return OrphanedLine{}, false, nil
	}
	doubts, err := e.doubtedLines()
	if err != nil {
		return OrphanedLine{}, false, err
	}
	d := DoubtedLine{System: c.System, Source: src, ContractID: c.ContractID, ServiceID: c.ServiceID}
	if old, ok := doubts[d.key()]; ok && old.Seq == c.Seq && old.Zeroed {
		return OrphanedLine{}, false, nil
	}
	l = OrphanedLine{ContractID: c.ContractID, ServiceID: c.ServiceID, Quantity: c.Quantity, Seq: c.Seq}
	if err := e.doubtCleared(e.db.Fenced(), src, []OrphanedLine{l}, nil, now, note, true); err != nil {
		return OrphanedLine{}, false, fmt.Errorf("daemon: recording that the cleared line holds 0 failed: %w", err)
	}
	e.logger.Info("Cleared orphaned line said to be set to 0: a line held for it is released as its approval does",
		"contract", c.ContractID, "service", c.ServiceID, "seq", c.Seq, "note", note)
	return l, true, nil
}
