package usage

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// This file holds what the engine does for a PSA that cannot report the
// current quantity of a contract line (Kaseya BMS: its v2 API has no read of
// a line's units, and its ReadLines returns psa.ErrNotSupported):
//
//   - The current quantity of a line is what psa-syncd's ledger says is in
//     force at the effective date (state.DB.SetBefore: of its changes dated
//     on or before that date, the latest-dated, since BMS bills a line's
//     latest-dated change); a line psa-syncd never set from that date or
//     earlier is "unknown". A change dated later holds the line (see
//     Engine.laterWrites), so psa-syncd posts its changes in date order.
//   - A write whose outcome is unknown (a lost answer, a crash between the
//     intent and the answer) cannot be settled by reading: its intent stays
//     open, the line is blocked, and the customer fails with a hint that
//     says which line to look for in the PSA. An operator resolves it with
//     ResolveIntent after checking.

// ledgerLines returns, for every contract and service given, the quantity
// psa-syncd set on that line that is in force at asOf (the change with the
// latest effective date on or before asOf's day, the one posted last among
// equals; with a zero asOf, the change posted last), as a ContractLine
// (PeriodStart is the effective date of that change). The day ends where
// laterWrites' "later" begins, so that a change is either in force or
// later. Lines psa-syncd never set (or set while configured for another PSA
// system) are absent.
func (e *Engine) ledgerLines(contracts, services []string, asOf time.Time) (map[psa.LineKey]psa.ContractLine, error) {
	lines := map[psa.LineKey]psa.ContractLine{}
	if e.db == nil {
		return lines, nil
	}
	sys := e.be.System()
	lastSet := e.db.LastSet
	if !asOf.IsZero() {
		lastSet = func(c, s string) (state.LedgerEntry, bool, error) { return e.db.SetBefore(c, s, asOf.AddDate(0, 0, 1)) }
	}
	for _, c := range contracts {
		for _, s := range services {
			le, ok, err := lastSet(c, s)
			if err != nil {
				return nil, fmt.Errorf("daemon: reading the ledger (the only record of %s quantities): %w", sys, err)
			}
			if !ok || le.System != sys {
				continue
			}
			k := psa.LineKey{ContractID: c, ServiceID: s}
			lines[k] = psa.ContractLine{ContractID: c, ServiceID: s, Quantity: le.After, PeriodStart: le.EffectiveDate}
		}
	}
	return lines, nil
}

// openIntentsByLine returns the open intents of the engine's PSA system by
// line.
func (e *Engine) openIntentsByLine() (map[psa.LineKey]state.Intent, error) {
	open, err := e.db.OpenIntents()
	if err != nil {
		return nil, fmt.Errorf("daemon: reading open intents: %w", err)
	}
	byLine := make(map[psa.LineKey]state.Intent, len(open))
	for _, in := range open {
		if in.System == e.be.System() {
			byLine[psa.LineKey{ContractID: in.ContractID, ServiceID: in.ServiceID}] = in
		}
	}
	return byLine, nil
}

// reviewElsewhere returns the open intent of review (openIntentsByLine; where
// the PSA reads lines, those Reconcile left open) that wrote units above 0 for c's
// customer on another line, whose post, if it reached the PSA, bills the
// usage c would post, if any: a line of c's service on a contract that
// the customer's mapping (mapping: its contract and renewal, as in the
// export, and c's) names no more (the mapping moved while the intent
// awaited review), or a line of a service that no product mapping of the
// source names with sync on any more (named, syncedServices: a product
// re-pointed meanwhile). The ledger, which holds only settled writes,
// cannot hold c as moved (movedLine) or re-pointed (repointedLine): posted
// too, the usage would be billed on both lines once the intent is
// resolved as posted.
func reviewElsewhere(review map[psa.LineKey]state.Intent, c *Change, mapping []string, named map[string]bool) (state.Intent, bool) {
	own := map[string]bool{idKey(c.ContractID): true}
	for _, id := range mapping {
		if id != "" {
			own[idKey(id)] = true
		}
	}
	var found state.Intent
	for _, in := range review {
		if in.Source != c.Source || in.CustomerID != c.CustomerID || in.After <= 0 {
			continue
		}
		moved := in.ServiceID == c.ServiceID && !own[idKey(in.ContractID)]
		repointed := in.ServiceID != c.ServiceID && !named[in.ServiceID]
		// The lowest id, so that every pass names the same one.
		if (moved || repointed) && (found.ID == 0 || in.ID < found.ID) {
			found = in
		}
	}
	return found, found.ID != 0
}

// awaitingReviewElsewhere is the error of a line c blocked by the open
// intent in of another line of the customer (reviewElsewhere). Where the
// PSA reads lines, in is one Reconcile left open: its write may still
// arrive (Policies.SettleTime), or, a ConnectWise addition, the read
// cannot see it (unseenCreate).
func (e *Engine) awaitingReviewElsewhere(in state.Intent, c *Change, ledger bool) error {
	what := fmt.Sprintf("the outcome of writing %d units of service %s on contract %s effective %s (intent %d) for this customer, before its mappings named service %s on contract %s, is unknown",
		in.After, in.ServiceID, in.ContractID, in.EffectiveDate.Format(time.DateOnly), in.ID, c.ServiceID, c.ContractID)
	both := fmt.Sprintf("since both lines would bill the usage if that write reached %s", systemName(in.System))
	// c's service name is the intent's only where the service is the same
	// (a moved mapping, not a re-pointed product).
	name := ""
	if in.ServiceID == c.ServiceID {
		name = c.ServiceName
	}
	if ledger {
		return &hintedError{
			err: fmt.Errorf("%w: %s, and %s cannot report a line's units; this line is not written until an operator resolves it, %s",
				errAwaitingReview, what, systemName(in.System), both),
			hint: reviewHint(in, name),
		}
	}
	hint := fmt.Sprintf("psa-syncd settles intent %d by reading contract %s's line once policies.settle_time has passed since the write; a later pass then decides this line", in.ID, in.ContractID)
	if unseenCreate(in, false, in.System) {
		hint = unseenHint(in, name)
	}
	return &hintedError{
		err:  fmt.Errorf("%w: %s; this line is not written until it is settled, %s", errUnsettled, what, both),
		hint: hint,
	}
}

// errAwaitingReview marks a line whose earlier write has an unknown outcome
// that reading the PSA cannot settle.
var errAwaitingReview = errors.New("awaiting review")

// hintedError is an error that carries the operator hint for it.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }

// awaitingReview is the error of a line blocked by the open intent in.
func (e *Engine) awaitingReview(in state.Intent, serviceName string) error {
	return &hintedError{
		err: fmt.Errorf("%w: the outcome of posting %d units of service %s on contract %s effective %s (intent %d) is unknown, and %s cannot report a line's units; the line is not written until an operator resolves it",
			errAwaitingReview, in.After, in.ServiceID, in.ContractID, in.EffectiveDate.Format(time.DateOnly), in.ID, systemName(in.System)),
		hint: reviewHint(in, serviceName),
	}
}

// reviewHint tells the operator how to settle an intent that reading the
// PSA cannot settle.
func reviewHint(in state.Intent, serviceName string) string {
	svc := "service " + in.ServiceID
	if serviceName != "" {
		svc = fmt.Sprintf("service %s (%s)", in.ServiceID, serviceName)
	}
	return fmt.Sprintf("check contract %s in %s for a line of %s with %d units effective %s; then run "+
		"`psa-syncd resolve -intent %d -posted` if it is there (delete any duplicate first) or "+
		"`psa-syncd resolve -intent %d -not-posted` if it is not (while psa-syncd run is up, with its -web.url and -web.token-file); "+
		"psa-syncd never posts it again by itself",
		in.ContractID, systemName(in.System), svc, in.After, in.EffectiveDate.Format(time.DateOnly), in.ID, in.ID)
}

// ErrIntentNotOpen matches ResolveIntent's error for an intent that is not
// open.
var ErrIntentNotOpen = errors.New("is not open")

// ResolveIntent settles an open intent by an operator's word, for a write
// whose outcome psa-syncd cannot find out by reading the PSA (Kaseya BMS).
// posted says whether the operator found the change in the PSA: true
// closes the intent as done and appends the change to the ledger (so the
// next pass takes the quantity as set), false closes it as failed (the
// next pass writes the line again). note is recorded with the intent; it
// should say who checked. It returns the intent as it was while open, or
// an error matching ErrIntentNotOpen for an intent that is not open.
//
// ResolveIntent needs only the state database (EngineOptions.State); it
// makes no PSA request. On PostgreSQL it needs the leadership lock too: an
// error matching state.ErrNotLeader says this instance does not hold it
// (any more), and nothing was recorded.
func (e *Engine) ResolveIntent(id int64, posted bool, note string) (state.Intent, error) {
	if e.db == nil {
		return state.Intent{}, errors.New("daemon: resolving an intent needs a state database")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	open, err := e.db.OpenIntents()
	if err != nil {
		return state.Intent{}, fmt.Errorf("daemon: reading open intents: %w", err)
	}
	var in state.Intent
	found := false
	for _, o := range open {
		if o.ID == id {
			in, found = o, true
		}
	}
	if !found {
		return state.Intent{}, fmt.Errorf("daemon: intent %d %w: it was settled already, or never existed", id, ErrIntentNotOpen)
	}
	st, what := state.IntentFailed, "not posted"
	if posted {
		st, what = state.IntentDone, "posted"
	}
	msg := fmt.Sprintf("resolved by an operator: %s", what)
	if note = strings.TrimSpace(note); note != "" {
		msg += ": " + note
	}
	// Fenced: an instance that lost the leadership lock before it noticed
	// records no answer beside the active instance's passes.
	if err := e.db.Fenced().CompleteIntent(id, st, msg, e.now().UTC()); err != nil {
		return state.Intent{}, fmt.Errorf("daemon: resolving intent %d: %w", id, err)
	}
	e.logger.Warn("Open intent resolved by an operator", "intent", id, "state", st, "customer", in.CustomerID,
		"contract", in.ContractID, "service", in.ServiceID, "units", in.After, "effective_date", in.EffectiveDate.Format(time.DateOnly))
	return in, nil
}

// markForReview records, for each intent that reading the PSA cannot
// settle, the customer's status as failed with the review hint, so that
// `psa-syncd status` shows it right after a restart, before any pass.
func (e *Engine) markForReview(intents []state.Intent, now time.Time) error {
	var errs []error
	for _, in := range intents {
		cs, ok, err := e.db.CustomerStatus(in.Source, in.CustomerID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			cs = state.CustomerStatus{Source: in.Source, CustomerID: in.CustomerID, ContractID: in.ContractID, UsageSync: true}
		}
		cs.LastAttempt = now
		cs.Result = state.CustomerFailed
		cs.Error = e.awaitingReview(in, "").Error()
		cs.Hint = reviewHint(in, "")
		if cs.Failed == 0 {
			cs.Failed = 1
		}
		if err := e.db.PutCustomerStatus(cs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SystemNotes returns what an operator must know about how psa-syncd
// writes to a PSA system, one sentence or short paragraph per entry, for
// `psa-syncd check` and logs at start-up. It is empty when there is nothing
// beyond the documentation's general rules.
func SystemNotes(s psa.System) []string {
	switch s {
	case psa.SystemKaseyaBMS:
		return []string{
			"Kaseya BMS cannot report the units of a contract line: psa-syncd compares usage with the quantity it set that is in force at the effective date, " +
				"recorded in its state database (back up the state directory).",
			"A change is posted as one new recurring-service line with the new units and effective date; unchanged lines are not posted. " +
				"So a contract gets one more line of the service at every change. The BMS API documents neither a read nor an edit of a line's units, " +
				"nor what BMS bills when a contract has several lines of one service: psa-syncd counts on the newest line replacing the earlier ones. " +
				"Check the first invoice after a change before relying on it.",
			"Lines entered in BMS by hand are not seen: on its first pass for a line psa-syncd posts the usage as a new line, " +
				"so end hand-made lines for mapped services first.",
			"A post whose outcome is unknown is never re-sent: its line waits for an operator to check BMS and run " +
				"psa-syncd resolve -intent ID -posted or -not-posted.",
		}
	case psa.SystemConnectWise:
		return []string{
			"ConnectWise reports no API request budget; policies.budget_reserve has no effect and 429 answers are retried after Retry-After.",
		}
	default:
		return nil
	}
}

// systemName is the name operators know a PSA system by.
func systemName(s psa.System) string {
	switch s {
	case psa.SystemAutotask:
		return "Autotask"
	case psa.SystemConnectWise:
		return "ConnectWise"
	case psa.SystemKaseyaBMS:
		return "Kaseya BMS"
	default:
		return string(s)
	}
}
