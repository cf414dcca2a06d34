package usage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Reconcile settles the intents that an interrupted pass left open: it
// re-reads each intent's line at its effective date and closes the intent
// as done (the PSA shows the intended quantity; the change goes to the
// ledger), failed (the PSA still shows the quantity from before: the write
// never arrived) or review (the PSA shows something else). Intents whose
// line cannot be read stay open, and the error says why. It returns how
// many intents it closed.
//
// A write that was sent may still arrive after its sender gave up on the
// answer, so "the PSA still shows the quantity from before" closes an
// intent as failed only once Policies.SettleTime has passed since the
// write could last have been sent (see settlesAt); until then the intent
// stays open, its line is not written, and Settling says when to try
// again. This is what keeps a late Autotask adjustment (a delta) and its
// retry from adding up, after a lost answer as after a takeover.
//
// Where the PSA cannot report a line's units at all (Kaseya BMS), nothing
// is guessed: the intents stay open (their lines are not written), their
// customers are recorded as failed with a hint saying which line to check,
// and no error is returned for them; an operator settles each one with
// ResolveIntent.
//
// The intents of a state database that holds the usage of another instance
// of the PSA system are left alone: Reconcile returns an
// *InstanceMismatchError.
func (e *Engine) Reconcile(ctx context.Context) (int, error) {
	if e.db == nil {
		return 0, errors.New("daemon: reconcile needs a state database")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.saveUnsaved()
	if err := e.checkInstance(ctx, nil, false); err != nil {
		return 0, err
	}
	return e.reconcile(ctx)
}

func (e *Engine) reconcile(ctx context.Context) (int, error) {
	e.settling, e.unseen = map[int64]settle{}, map[int64]bool{}
	open, err := e.db.OpenIntents()
	if err != nil {
		return 0, fmt.Errorf("daemon: reading open intents: %w", err)
	}
	if len(open) == 0 {
		return 0, nil
	}
	sys := e.be.System()
	var own []state.Intent
	var errs []error
	for _, in := range open {
		if in.System != sys {
			errs = append(errs, fmt.Errorf("intent %d is for %s, not %s: settle it with psa-syncd configured for %s", in.ID, in.System, sys, in.System))
			continue
		}
		own = append(own, in)
	}
	dates, byDate := intentsByDate(own)

	runs := map[int64]time.Time{}
	n := 0
	for _, d := range dates {
		intents := byDate[d]
		lines, unreadable, err := e.readIntentLines(ctx, intents, d)
		if errors.Is(err, psa.ErrNotSupported) {
			// Nothing can be learned from the PSA: never guess, never
			// post again. The intents stay open, which blocks their
			// lines, until an operator resolves them.
			for _, in := range intents {
				e.logger.Warn("Open intent awaits an operator's review: the PSA cannot report a line's units", "intent", in.ID,
					"customer", in.CustomerID, "contract", in.ContractID, "service", in.ServiceID, "units", in.After,
					"effective_date", in.EffectiveDate.Format(time.DateOnly), "hint", reviewHint(in, ""))
			}
			if err := e.markForReview(intents, e.now().UTC()); err != nil {
				errs = append(errs, fmt.Errorf("recording the customers awaiting review: %w", err))
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, in := range intents {
			if cerr, bad := unreadable[in.ContractID]; bad {
				errs = append(errs, fmt.Errorf("re-reading contract %s at %s for intent %d: %w", in.ContractID, d.Format(time.DateOnly), in.ID, cerr))
				continue
			}
			l, ok := lines[psa.LineKey{ContractID: in.ContractID, ServiceID: in.ServiceID}]
			qty := l.Quantity // 0 when the line does not exist
			outcome := intentOutcome(in, l, ok)
			if outcome != state.IntentDone {
				// The write may still arrive, on top of what the line
				// shows now: whether that is the quantity from before or
				// another change made meanwhile, writing the line again
				// before then could apply both.
				at, err := e.settlesAt(in, runs)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if e.now().Before(at) {
					e.settling[in.ID] = settle{at: at, shows: qty}
					e.logger.Info("Open intent not settled yet: the PSA does not show the write, and it may still arrive",
						"intent", in.ID, "customer", in.CustomerID, "contract", in.ContractID, "service", in.ServiceID,
						"units", qty, "before", in.Before, "after", in.After, "settles_at", at.UTC().Format(time.RFC3339))
					continue
				}
			}
			if outcome == "" && unseenCreate(in, ok, sys) {
				// The addition may be there, out of the read's sight:
				// closing the intent as failed would have the next pass
				// add it a second time.
				e.unseen[in.ID] = true
				e.logger.Warn("Open intent awaits an operator's review: the PSA's read does not show the line it created, which may be out of the read's sight",
					"intent", in.ID, "customer", in.CustomerID, "contract", in.ContractID, "service", in.ServiceID, "units", in.After,
					"effective_date", in.EffectiveDate.Format(time.DateOnly), "hint", unseenHint(in, ""))
				if err := e.markUnseen(in, e.now().UTC()); err != nil {
					errs = append(errs, fmt.Errorf("recording the customer awaiting review: %w", err))
				}
				continue
			}
			var st, note string
			switch outcome {
			case state.IntentDone:
				st, note = state.IntentDone, fmt.Sprintf("reconciled: the PSA shows %d", qty)
			case "":
				st, note = state.IntentFailed, fmt.Sprintf("not applied: the PSA still shows %d", qty)
			default:
				st, note = state.IntentReview, fmt.Sprintf("the PSA shows %d, neither %d (before) nor %d (after): check the line and the ledger", qty, in.Before, in.After)
				if !ok {
					st, note = state.IntentReview, fmt.Sprintf("the PSA's read shows no line, which may be out of its sight, neither %d (before) nor %d (after): check the line and the ledger", in.Before, in.After)
				}
			}
			if err := e.db.CompleteIntent(in.ID, st, note, e.now().UTC()); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
			level := slog.LevelInfo
			if st == state.IntentReview {
				level = slog.LevelWarn
			}
			e.logger.Log(ctx, level, "Settled open intent", "intent", in.ID, "state", st, "customer", in.CustomerID,
				"contract", in.ContractID, "service", in.ServiceID, "note", note)
		}
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("daemon: reconciling open intents: %w", errors.Join(errs...))
	}
	return n, nil
}

// intentsByDate groups intents by effective date (in UTC), the dates in
// order: Reconcile reads the lines of each date's intents at once.
func intentsByDate(intents []state.Intent) ([]time.Time, map[time.Time][]state.Intent) {
	byDate := map[time.Time][]state.Intent{}
	for _, in := range intents {
		d := in.EffectiveDate.UTC()
		byDate[d] = append(byDate[d], in)
	}
	dates := make([]time.Time, 0, len(byDate))
	for d := range byDate {
		dates = append(dates, d)
	}
	sort.Slice(dates, func(i, j int) bool { return dates[i].Before(dates[j]) })
	return dates, byDate
}

// readIntentLines reads the lines of intents, all effective d, at d, by
// line. A backend that reports per-contract problems returns the other
// contracts' lines with them: one customer's unreadable contract must not
// keep every other customer's intents open, so those come back in
// unreadable, by contract. An error that is psa.ErrNotSupported is
// returned as is.
func (e *Engine) readIntentLines(ctx context.Context, intents []state.Intent, d time.Time) (lines map[psa.LineKey]psa.ContractLine, unreadable map[string]error, err error) {
	var ids, services []string
	for _, in := range intents {
		if !slices.Contains(ids, in.ContractID) {
			ids = append(ids, in.ContractID)
		}
		if !slices.Contains(services, in.ServiceID) {
			services = append(services, in.ServiceID)
		}
	}
	got, err := e.readLines(ctx, ids, services, d)
	if errors.Is(err, psa.ErrNotSupported) {
		return nil, nil, err
	}
	var ce contractErrors
	if err != nil && errors.As(err, &ce) {
		unreadable, err = ce.ContractErrors(), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("re-reading contracts %s at %s: %w", strings.Join(ids, ", "), d.Format(time.DateOnly), err)
	}
	lines = make(map[psa.LineKey]psa.ContractLine, len(got))
	for _, l := range got {
		lines[l.Key()] = l
	}
	return lines, unreadable, nil
}

// intentOutcome is how Reconcile settles open intent in when its line reads
// l (exists: the line exists): done when the line shows the write applied,
// "" when it still shows the quantity from before, and review when it shows
// neither (another change was made to the line). Both of the latter settle
// by time (see settlesAt): the write may still arrive.
//
// A line the read does not show confirms no write, one that set it to 0
// included: Autotask and ConnectWise keep a line set to 0 (units 0, an
// addition of quantity 0), so a read without it cannot see it (a security
// level or role, a cache or proxy serving an old page) or someone deleted
// it. Closed as done, its ledger entry would say 0, and the pass would add
// the line again next to one that may still bill the quantity from before
// (5 + 42); left to settle by time as review, psa-syncd's last write stays
// the one above 0, and the pass holds the line for an operator
// (Engine.vanishedLine).
func intentOutcome(in state.Intent, l psa.ContractLine, exists bool) string {
	switch {
	case l.Quantity == in.After && exists:
		return state.IntentDone
	case l.Quantity == in.Before:
		return ""
	default:
		return state.IntentReview
	}
}

// unsettledLine predicts, for a plan that reconciles nothing (Plan, a dry
// run, a pass with writes disabled), what a pass now would do with the line
// of open intent in, read as l (exists: the line exists) at the intent's
// effective date: the error the pass fails the line with, or nil when the
// pass's Reconcile settles the intent first and the line is written as
// planned. runs caches the end of each pass, as for settlesAt.
func (e *Engine) unsettledLine(in state.Intent, l psa.ContractLine, exists bool, runs map[int64]time.Time) error {
	if intentOutcome(in, l, exists) == state.IntentDone {
		return nil
	}
	at, err := e.settlesAt(in, runs)
	if err != nil {
		return err
	}
	if e.now().Before(at) {
		return settlingError(in, settle{at: at, shows: l.Quantity})
	}
	if unseenCreate(in, exists, e.be.System()) && l.Quantity == in.Before {
		return unseenError(in, "")
	}
	return nil
}

// unseenCreate reports whether Reconcile leaves open intent in, whose line
// still shows the quantity from before once it settled (exists: the line
// exists), open for an operator rather than closing it as failed: it
// created a line (before 0, after above 0) that the read does not show, on
// system, a PSA whose only check before a create is the same read
// (ConnectWise: the agreement's additions of the product). A read that
// cannot see the line (an API member's security role, a cache or proxy
// serving an old page) would have the next pass add it a second time, and
// the ledger does not know a line whose create was never confirmed (see
// Engine.vanishedLine). Autotask checks the contract's ContractServices
// before it adds a line, and Kaseya BMS intents always wait for an
// operator. Each Reconcile reads the line again: once the read shows it,
// the intent settles by itself.
func unseenCreate(in state.Intent, exists bool, system psa.System) bool {
	return system == psa.SystemConnectWise && !exists && in.Before == 0 && in.After > 0
}

// unseenError is the error of a line whose create is an intent left open
// for an operator (see unseenCreate).
func unseenError(in state.Intent, serviceName string) error {
	return &hintedError{
		err: fmt.Errorf("%w (intent %d): the answer to adding %d units of service %s on contract %s effective %s was lost, and %s's read still shows no such line; "+
			"the line is not added again until an operator resolves it, since a read that cannot see it would have it added twice",
			errUnsettled, in.ID, in.After, in.ServiceID, in.ContractID, in.EffectiveDate.Format(time.DateOnly), systemName(in.System)),
		hint: unseenHint(in, serviceName),
	}
}

// unseenHint tells the operator how to settle an intent left open by
// unseenCreate.
func unseenHint(in state.Intent, serviceName string) string {
	return cannotSee(systemName(in.System)) + ": " + reviewHint(in, serviceName) +
		"; psa-syncd also settles it by itself once its read shows the line"
}

// markUnseen records the status of the customer of intent in, left open by
// unseenCreate, as failed with the intent's hint, as markForReview does.
func (e *Engine) markUnseen(in state.Intent, now time.Time) error {
	cs, ok, err := e.db.CustomerStatus(in.Source, in.CustomerID)
	if err != nil {
		return err
	}
	if !ok {
		cs = state.CustomerStatus{Source: in.Source, CustomerID: in.CustomerID, ContractID: in.ContractID, UsageSync: true}
	}
	err = unseenError(in, "")
	cs.LastAttempt, cs.Result, cs.Error, cs.Hint = now, state.CustomerFailed, err.Error(), unseenHint(in, "")
	if cs.Failed == 0 {
		cs.Failed = 1
	}
	return e.db.PutCustomerStatus(cs)
}

// reconcileElsewhere predicts, for a plan that reconciles nothing, what the
// pass's Reconcile does with the open intents of unsettled (by line) that
// the plan's own read at effective, its effective date, does not show:
// those dated another day on the contracts given, and those that replaced
// says hold back a line of a customer of the plan elsewhere (on a contract
// its mapping names no more, of a service no product mapping names with
// sync on: see reviewElsewhere). It reads their lines at their own dates,
// one read per date as Reconcile does, and settles them by the same rules
// (unsettledLine), writing nothing.
//
// The lines of the intents the pass would leave open come back in
// blocked, with the error the pass fails each with. The intents it would
// close (done, failed, or for review) come back in closed: the pass's
// writer, which sees only the intents left open, no longer blocks a line
// for them. Those it would close as done come back in done, as the ledger
// entries the pass would then find there (see reconciledEntry), by line
// (idKey), and those of them dated after effective in later too (see
// laterWrites). The lines of the other intents it would close are written
// as the plan decides; the plan's own read at effective shows them as the
// pass's does.
func (e *Engine) reconcileElsewhere(ctx context.Context, unsettled map[psa.LineKey]state.Intent, contracts map[string]bool,
	replaced func(state.Intent) bool, effective time.Time, runs map[int64]time.Time) (r reconciledElsewhere) {
	var elsewhere []state.Intent
	for _, in := range unsettled {
		if !in.EffectiveDate.Equal(effective) && contracts[in.ContractID] || replaced(in) {
			elsewhere = append(elsewhere, in)
		}
	}
	if len(elsewhere) == 0 {
		return r
	}
	r.blocked, r.closed = map[psa.LineKey]error{}, map[int64]bool{}
	dates, byDate := intentsByDate(elsewhere)
	for _, d := range dates {
		// The order Reconcile closes them in, and so the order of the
		// entries it adds to the ledger.
		slices.SortFunc(byDate[d], func(a, b state.Intent) int { return cmp.Compare(a.ID, b.ID) })
		lines, unreadable, err := e.readIntentLines(ctx, byDate[d], d)
		for _, in := range byDate[d] {
			key := psa.LineKey{ContractID: in.ContractID, ServiceID: in.ServiceID}
			rerr := err
			if rerr == nil {
				rerr = unreadable[in.ContractID]
			}
			if rerr != nil {
				// Reconcile leaves the intent open, and the pass's writer
				// does not write its line.
				r.blocked[key] = fmt.Errorf("%w (intent %d, effective %s): it is settled by re-reading the PSA at that date before the line is written again, and that read failed: %w",
					errUnsettled, in.ID, d.Format(time.DateOnly), rerr)
				continue
			}
			l, exists := lines[key]
			if err := e.unsettledLine(in, l, exists, runs); err != nil {
				r.blocked[key] = err
				continue
			}
			r.closed[in.ID] = true
			if intentOutcome(in, l, exists) != state.IntentDone {
				continue
			}
			le := reconciledEntry(in, len(r.done))
			if r.done == nil {
				r.done = map[psa.LineKey]state.LedgerEntry{}
			}
			r.done[psa.LineKey{ContractID: idKey(in.ContractID), ServiceID: idKey(in.ServiceID)}] = le
			if !in.EffectiveDate.Before(effective.AddDate(0, 0, 1)) {
				if r.later == nil {
					r.later = map[psa.LineKey]state.LedgerEntry{}
				}
				r.later[key] = le
			}
		}
	}
	return r
}

// reconciledElsewhere is what reconcileElsewhere predicts.
type reconciledElsewhere struct {
	blocked map[psa.LineKey]error
	closed  map[int64]bool
	done    map[psa.LineKey]state.LedgerEntry
	later   map[psa.LineKey]state.LedgerEntry
}

// open returns the intents of unsettled that the pass's Reconcile leaves
// open, as r predicts.
func (r reconciledElsewhere) open(unsettled map[psa.LineKey]state.Intent) map[psa.LineKey]state.Intent {
	if len(r.closed) == 0 {
		return unsettled
	}
	open := make(map[psa.LineKey]state.Intent, len(unsettled))
	for k, in := range unsettled {
		if !r.closed[in.ID] {
			open[k] = in
		}
	}
	return open
}

// reconciledSeq is above the seq of every entry in the ledger: the
// entries that a plan predicts the pass's Reconcile adds come after them.
const reconciledSeq = int64(1) << 62

// reconciledEntry is the ledger entry that Reconcile adds when it closes
// open intent in as done, the n-th (from 0) it adds in the pass, as a plan
// predicts it (reconcileElsewhere): its seq is above every entry's in the
// ledger, in the order Reconcile adds them.
func reconciledEntry(in state.Intent, n int) state.LedgerEntry {
	return state.LedgerEntry{Seq: reconciledSeq + int64(n), RunID: in.RunID, System: in.System, Source: in.Source, CustomerID: in.CustomerID,
		ContractID: in.ContractID, ServiceID: in.ServiceID, Before: in.Before, After: in.After,
		EffectiveDate: in.EffectiveDate, IntentID: in.ID}
}

// withOwnReconciled returns entries, the ledger entries in force at a
// plan's effective date (ledgerInForce.of), as the pass finds them once
// its Reconcile has closed in, the open intent of the line being decided,
// as done (ownReconciled): the intent's entry, added after every other, is
// in force unless an entry dated later than it is.
func (e *Engine) withOwnReconciled(entries func() (map[psa.LineKey]state.LedgerEntry, error), in state.Intent, l psa.ContractLine, exists bool,
	effective time.Time, reconciled map[psa.LineKey]state.LedgerEntry, runs map[int64]time.Time) func() (map[psa.LineKey]state.LedgerEntry, error) {
	le, ok := e.ownReconciled(in, l, exists, effective, reconciled, runs)
	if !ok {
		return entries
	}
	key := psa.LineKey{ContractID: in.ContractID, ServiceID: in.ServiceID}
	return func() (map[psa.LineKey]state.LedgerEntry, error) {
		got, err := entries()
		if err != nil {
			return got, err
		}
		if cur, ok := got[key]; ok && le.EffectiveDate.Before(cur.EffectiveDate) {
			return got, nil
		}
		out := maps.Clone(got)
		if out == nil {
			out = map[psa.LineKey]state.LedgerEntry{}
		}
		out[key] = le
		return out, nil
	}
}

// ownReconciled returns the ledger entry that the pass's Reconcile adds
// when it closes in, the open intent of the line a plan decides, as done,
// if it does and the entry is in force at effective, the plan's effective
// date. An intent dated effective is settled from the plan's own read of
// its line (l, exists), one dated another day as reconcileElsewhere
// predicted (reconciled).
func (e *Engine) ownReconciled(in state.Intent, l psa.ContractLine, exists bool, effective time.Time,
	reconciled map[psa.LineKey]state.LedgerEntry, runs map[int64]time.Time) (state.LedgerEntry, bool) {
	if in.EffectiveDate.Equal(effective) {
		if intentOutcome(in, l, exists) != state.IntentDone || e.unsettledLine(in, l, exists, runs) != nil {
			return state.LedgerEntry{}, false
		}
		return reconciledEntry(in, len(reconciled)), true
	}
	le, ok := reconciled[psa.LineKey{ContractID: idKey(in.ContractID), ServiceID: idKey(in.ServiceID)}]
	if !ok || !le.EffectiveDate.Before(effective.AddDate(0, 0, 1)) {
		return state.LedgerEntry{}, false
	}
	return le, true
}

// withReconciled returns later, the changes psa-syncd made to lines from
// dates after a plan's effective date (see laterWrites), with those that
// the pass's Reconcile would add first (done, see reconcileElsewhere), on
// the PSA systems whose later writes laterWrites holds lines for.
func (e *Engine) withReconciled(later, done map[psa.LineKey]state.LedgerEntry) map[psa.LineKey]state.LedgerEntry {
	if len(done) == 0 || !holdsLaterWrites(e.be.System()) {
		return later
	}
	if later == nil {
		later = make(map[psa.LineKey]state.LedgerEntry, len(done))
	}
	for k, le := range done {
		if cur, ok := later[k]; !ok || le.EffectiveDate.After(cur.EffectiveDate) {
			later[k] = le
		}
	}
	return later
}

// settle is when an open intent can be settled (see settlesAt), and the
// quantity its line showed when it was last read.
type settle struct {
	at    time.Time
	shows int64
}

// settlesAt returns when intent in, whose line still shows the quantity
// from before, can be taken as not applied: Policies.SettleTime after its
// write could last have been sent. That is when the pass that opened it
// ended (every write of a pass has ended, answered or not, when it ends;
// a pass that a new active instance or a restart marked interrupted "ended"
// then, while its process may still have been sending), or, for an intent
// of no known pass, when it was opened. A pass still recorded as running
// belongs to another process that may be sending the write: never yet;
// unless it is one of this process's own passes whose end could not be
// recorded (e.unsaved), which ended when its run says.
// runs caches the end of each pass.
func (e *Engine) settlesAt(in state.Intent, runs map[int64]time.Time) (time.Time, error) {
	if e.policies.SettleTime <= 0 {
		return time.Time{}, nil
	}
	end, ok := runs[in.RunID]
	if r, own := e.unsaved.get(in.RunID); own && !ok {
		// This process ran that pass: it ended, whatever the database
		// still says.
		end, ok = r.Finished, true
		runs[in.RunID] = end
	}
	if !ok {
		r, found, err := e.db.Run(in.RunID)
		if err != nil {
			return time.Time{}, fmt.Errorf("reading the pass of intent %d: %w", in.ID, err)
		}
		switch {
		case !found:
			end = in.Created
		case r.Result == state.RunRunning || r.Finished.IsZero():
			end = farFuture
		default:
			end = r.Finished
		}
		runs[in.RunID] = end
	}
	if end.Equal(farFuture) {
		return end, nil
	}
	return maxTime(end, in.Created).Add(e.policies.SettleTime), nil
}

// farFuture stands for "not before that pass ends".
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Settling returns the customers of the open intents that wait to settle
// (see Reconcile), and the earliest time one of them can be settled: a pass
// then writes their lines, either way. Those are the intents that the last
// Reconcile or Sync of e left open to settle, and the intents of the last
// Sync's own writes whose answers were lost (where the PSA's lines can be
// read). It is empty when none waits.
func (e *Engine) Settling() (at time.Time, customers []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.settling) == 0 {
		return time.Time{}, nil
	}
	open, err := e.db.OpenIntents()
	if err != nil {
		// The intents are reconciled at the next pass anyway.
		return time.Time{}, nil
	}
	for _, in := range open {
		st, ok := e.settling[in.ID]
		if !ok {
			continue
		}
		t := st.at
		if at.IsZero() || t.Before(at) {
			at = t
		}
		if !slices.Contains(customers, in.CustomerID) {
			customers = append(customers, in.CustomerID)
		}
	}
	sort.Strings(customers)
	return at, customers
}
