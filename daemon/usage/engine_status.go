package usage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// statuses derives the customer statuses and the line counts of a pass. In
// a dry run they say what the pass would have done (a line it would update
// counts as updated) and LastSuccess stays as stored. A customer whose
// status the pass stored while it read (customerPass.stored) gets the
// status that was stored.
func (e *Engine) statuses(p *pass, runID int64, dry bool) ([]state.CustomerStatus, map[string]int) {
	counts := map[string]int{}
	now := e.now().UTC()
	out := make([]state.CustomerStatus, 0, len(p.customers))
	run := strconv.FormatInt(runID, 10) // one string for every status
	// keep lists the customers whose stored LastSuccess stays.
	var keep []customerKey
	for _, cp := range p.customers {
		at := now
		if cp.stored {
			at = cp.storedAt
		}
		cs := e.customerStatus(cp, cp.changes, at, run, dry)
		if cs.LastSuccess.IsZero() {
			keep = append(keep, customerKey{cs.Source, cs.CustomerID})
		}
		counts[LineUpdated] += cs.Updated
		counts[LineUnchanged] += cs.Unchanged
		counts[LineHeld] += cs.Held
		counts[LineFailed] += cs.Failed
		out = append(out, cs)
	}
	if lastSuccess := e.lastSuccesses(keep); len(lastSuccess) > 0 {
		for i := range out {
			cs := &out[i]
			if cs.LastSuccess.IsZero() {
				cs.LastSuccess = lastSuccess[customerKey{cs.Source, cs.CustomerID}]
			}
		}
	}
	return out, counts
}

// storeStatuses stores statuses, the statuses of pass p's customers (in the
// order of p.customers), but for those that w stored while the pass read:
// the others in one commit. Then it waits for w's commits.
func (e *Engine) storeStatuses(ctx context.Context, p *pass, w *statusWriter, statuses []state.CustomerStatus) error {
	rest := statuses
	if w != nil && w.stored > 0 {
		rest = make([]state.CustomerStatus, 0, len(statuses)-w.stored)
		for i, cp := range p.customers {
			if !cp.stored {
				rest = append(rest, statuses[i])
			}
		}
	}
	return errors.Join(e.db.PutCustomerStatusBatch(context.WithoutCancel(ctx), rest), w.close())
}

// stateError returns the first failure of the state database among cp's
// errors (its own, then its lines'), or nil. The customer's status holds
// it without the database's name, host or file (state.PublicText): the
// log line of the customer gives it in full.
func (cp *customerPass) stateError() error {
	for _, err := range append([]error{cp.err}, cp.errs...) {
		if se := (*state.Error)(nil); errors.As(err, &se) {
			return err
		}
	}
	return nil
}

// customerStatus derives the status of customer cp from its changes, as of
// now, for run. LastSuccess is now when the customer succeeds in a pass that
// writes, and zero otherwise (statuses fills in the stored one).
func (e *Engine) customerStatus(cp *customerPass, changes []Change, now time.Time, run string, dry bool) state.CustomerStatus {
	cm := *cp.m
	cs := state.CustomerStatus{
		Source: cm.Source, CustomerID: cm.CustomerID, CustomerName: cm.CustomerName, CompanyID: cm.CompanyID,
		ContractID: cm.ContractID, UsageSync: cm.UsageSync, TicketSync: cm.TicketSync,
		LastAttempt: now, RunID: run,
	}
	var skipped, cancelled, throttled, budgetUnknown, undated int
	var laterHeld, laterWritten int
	var vanished *Change  // the first line held because the read did not show it (HoldVanished)
	var staleRead *Change // the first line held because the read shows the quantity from before psa-syncd's write (HoldStaleRead)
	var moved *Change     // the first line held because the customer's line on another contract still bills (HoldMoved)
	var repointed *Change // the first line held because the customer's line of a service no product mapping names still bills (HoldPreviousService)
	var posted *Change    // the first line held because its period is invoiced
	var stale *Change     // the first line whose approval names other units
	var refused *Change   // the first line approved that stays held all the same
	// guardHeld counts the lines the guard on large changes holds,
	// increasesHeld the increases among them.
	var guardHeld, increasesHeld, surgeHeld int
	var firstErr, firstHint string
	nErr := 0
	for i := range changes {
		c := &changes[i]
		switch c.Action {
		case ActionUpdate:
			// A dry run counts what it would update as updated, so
			// its report reads like the real pass's would.
			cs.Updated++
		case ActionUnchanged:
			cs.Unchanged++
		case ActionHeld:
			cs.Held++
			if c.laterChange {
				laterHeld++
			}
			if c.laterWrite {
				laterWritten++
			}
			if c.posted && posted == nil {
				posted = c
			}
			if c.staleApproval && stale == nil {
				stale = c
			}
			if c.approvalRefused && refused == nil {
				refused = c
			}
			if c.vanished && vanished == nil {
				vanished = c
			}
			if c.staleRead && staleRead == nil {
				staleRead = c
			}
			if c.moved && moved == nil {
				moved = c
			}
			if c.repointed && repointed == nil {
				repointed = c
			}
			if c.surge {
				surgeHeld++
			}
			if c.Approvable() && !c.vanished && !c.staleRead && !c.moved && !c.repointed && !c.surge {
				guardHeld++
				if c.Desired > c.Current {
					increasesHeld++
				}
			}
		case ActionSkipped:
			skipped++
			if c.cancelled {
				cancelled++
			}
			if c.throttled {
				throttled++
			}
			if c.budgetUnknown {
				budgetUnknown++
			}
			if c.undated {
				undated++
			}
		case ActionFailed:
			cs.Failed++
			if cp.err == nil {
				nErr++
				if firstErr == "" {
					firstErr = fmt.Sprintf("contract %s service %s: %s", c.ContractID, c.ServiceID, c.Reason)
					if i < len(cp.errs) && cp.errs[i] != nil {
						firstHint = e.hint(cp.errs[i], cm, c.ServiceID)
					}
				}
			}
		}
	}
	switch {
	case cp.err != nil:
		cs.Result, cs.Error, cs.Hint = state.CustomerFailed, state.PublicText(cp.err), cp.hint
		if cs.Failed == 0 {
			cs.Failed = 1 // the customer failed before any line could be decided
		}
	case nErr > 0:
		cs.Result, cs.Error, cs.Hint = state.CustomerFailed, firstErr, firstHint
		if nErr > 1 {
			cs.Error += fmt.Sprintf(" (and %d more lines)", nErr-1)
		}
	case skipped > 0:
		cs.Result = state.CustomerSkipped
		// The writes stopped at the reserve, or because the PSA refused
		// one for its rate limit (the lines' reasons carry its answer).
		stop, hint := skipReasonBudget, "the remaining lines are written by the next pass; lower the request load or policies.budget_reserve"
		if budgetUnknown > 0 {
			stop, hint = skipReasonBudgetUnknown, "the remaining lines are written by the next pass that can read the budget; psa-syncd check -web.url URL tests the PSA, and the lines' reasons (GET /api/v1/plan) carry the PSA's answer"
		}
		if throttled > 0 {
			stop, hint = skipReasonThrottled, "the remaining lines are written by the next pass; the PSA's limit is shared with the tenant's other integrations: lower the request load"
		}
		switch {
		case undated == skipped:
			// A scheduled pass of the month that has ended, caught up
			// after midnight on ConnectWise PSA: nothing is written.
			cs.Error = fmt.Sprintf("%d lines not written: %s (the pass synced %s, which has ended)", skipped, undatedReason, cp.undated)
			cs.Hint = undatedHint(cp.undated)
		case cancelled == skipped:
			cs.Error = fmt.Sprintf("%d lines not written: %s", skipped, skipReasonCancelled)
			cs.Hint = "the remaining lines are written by the next pass"
		case cancelled > 0:
			cs.Error = fmt.Sprintf("%d lines not written: %s, or %s", skipped, stop, skipReasonCancelled)
			cs.Hint = hint
		default:
			cs.Error = fmt.Sprintf("%d lines not written: %s", skipped, stop)
			cs.Hint = hint
		}
	case cs.Held > 0:
		cs.Result = state.CustomerHeld
		var hints []string
		if posted != nil {
			hints = append(hints, fmt.Sprintf("the billing period of the effective date %s is already approved and posted (invoiced) in %s, and an adjustment into it cannot be reversed: use policies.effective_date: %s (with policies.usage_period: %s, the default %s dates last month's usage on the 1st of last month, most likely invoiced already); sync --approve does not release it",
				posted.EffectiveDate.Format(time.DateOnly), systemName(e.be.System()), EffectiveNextPeriodStart, UsagePeriodPrevious, EffectivePeriodStart))
		}
		if laterWritten > 0 {
			effect := fmt.Sprintf("%s would carry this change into that period too", systemName(e.be.System()))
			if e.be.System() == psa.SystemKaseyaBMS {
				effect = fmt.Sprintf("%s would bill this change only until that date, while psa-syncd's ledger would take it as the line's quantity after it", systemName(e.be.System()))
			}
			hints = append(hints, fmt.Sprintf("psa-syncd already changed a line from a later date than this pass's effective date, and %s: the line is written again once the effective date reaches that date (see the line's reason), or fix it by hand; sync --approve does not release it",
				effect))
		}
		if laterHeld > 0 && e.be.System() == psa.SystemConnectWise {
			hints = append(hints, "an addition of a product starts after the effective date, and psa-syncd neither changes it for an earlier date nor adds another that would bill along with it: the line is written again once the effective date reaches its start (see the line's reason), or change the additions by hand; sync --approve does not release it")
		} else if laterHeld > 0 {
			hints = append(hints, fmt.Sprintf("a line's units change again later in the billing month (a mid-period adjustment in %s), so no adjustment from the effective date gives the wanted quantity for the whole month: review the contract, then use policies.effective_date: %s or fix the line by hand; sync --approve does not release it",
				systemName(e.be.System()), EffectiveToday))
		}
		if vanished != nil {
			hints = append(hints, fmt.Sprintf("%s shows no line of service %s on contract %s, which psa-syncd set earlier (see the line's reason): check the contract in %s; if the line is there, give psa-syncd's API account a security role that can see it (%s) and run the pass again; if it is really gone, run psa-syncd %s to add it again, or press approve on the status page",
				systemName(e.be.System()), vanished.ServiceID, vanished.ContractID, systemName(e.be.System()), cannotSee(systemName(e.be.System())), approveCommand(cm.CustomerID, vanished.ServiceID, vanished.Desired, cp.period)))
		}
		if staleRead != nil {
			hints = append(hints, fmt.Sprintf("%s's read of service %s on contract %s shows the units from before psa-syncd's last write of it (see the line's reason): an adjustment computed from it would apply that change twice; "+
				"check the line's units in %s: if they are what psa-syncd wrote, a cache or proxy served an old page, so run the pass again once it serves the current one; if someone set them back by hand, run psa-syncd %s, or press approve on the status page",
				systemName(e.be.System()), staleRead.ServiceID, staleRead.ContractID, systemName(e.be.System()), approveCommand(cm.CustomerID, staleRead.ServiceID, staleRead.Desired, cp.period)))
		}
		if moved != nil && moved.movedOwned {
			hints = append(hints, fmt.Sprintf("the customer's line of service %s on the contract it left, which is another customer's contract now (the line's reason names it), still bills the units psa-syncd set for this customer: psa-syncd writes this line by itself once it has set that line for the other customer, in the pass that sets it (after its other writes) or a later one; this pass did not set it (see the other customer's status: its write failed or its outcome is unknown; or its units there did not change, in which case approve this line; or its line rises on this customer's contract too, in which case approve one of the two, as the line's reason says); do not set that line to 0 by hand, since it bills the other customer",
				moved.ServiceID))
		} else if moved != nil {
			hints = append(hints, fmt.Sprintf("the customer's line of service %s on another contract, which psa-syncd set earlier and no longer writes to (the customer mapping's contract_id moved to %s), still bills (see the line's reason), and a line on contract %s would bill the usage twice: "+
				"set that line to 0 or end that contract in %s, then run psa-syncd %s, or press approve on the status page; if the move was a renewal, map the new contract as next_contract_id instead",
				moved.ServiceID, moved.ContractID, moved.ContractID, systemName(e.be.System()), approveCommand(cm.CustomerID, moved.ServiceID, moved.Desired, cp.period)))
		}
		if repointed != nil {
			hints = append(hints, fmt.Sprintf("the customer's line of a service that no product mapping names any more, which psa-syncd set earlier and no longer writes (a product mapping's service_id changed to %s), still bills (see the line's reason), and the line of service %s on contract %s would bill the usage twice: "+
				"set the old service's line to 0 in %s, then run psa-syncd %s, or press approve on the status page",
				repointed.ServiceID, repointed.ServiceID, repointed.ContractID, systemName(e.be.System()), approveCommand(cm.CustomerID, repointed.ServiceID, repointed.Desired, cp.period)))
		}
		if refused != nil && stale == nil {
			// As for a stale approval below: the operator asked for
			// this line to be written, and it was not.
			cs.Error = fmt.Sprintf("contract %s service %s: the approval was not applied, the line stays held (no approval releases this hold): %s",
				refused.ContractID, refused.ServiceID, refused.Reason)
		}
		if stale != nil {
			// The operator asked for this line to be written: say why
			// it was not. A held customer has an error only here and for
			// a refused approval (above), which is how psa-syncd sync
			// -units tells that it was not applied.
			cs.Error = fmt.Sprintf("contract %s service %s: %s", stale.ContractID, stale.ServiceID, stale.Reason)
			hints = append(hints, fmt.Sprintf("an approval names the units that were reviewed, and the usage has changed since: check the usage again, then run psa-syncd %s, or press approve on the status page",
				approveCommand(cm.CustomerID, stale.ServiceID, stale.Desired, cp.period)))
		} else if surgeHeld > 0 {
			hints = append(hints, fmt.Sprintf("an increase is held for review because many lines rise sharply at once (policies.surge_lines_percent), as when the vendor counts twice: check the usage with the vendor; if it is right, run psa-syncd sync --approve --customer %s --service ID --units N --period %s for each held line at the desired units you checked (add -web.url and the API token while psa-syncd run is up), or press approve on the status page; to approve every line held for the surge at once, at the units reviewed, run psa-syncd sync --approve --surge CODE --period %s with the review code that psa-syncd plan, the pass's log and the status page give; once the vendor's usage is right again, the next pass holds nothing", cm.CustomerID, cp.period, cp.period))
		}
		if stale == nil && guardHeld > 0 {
			guarded := "a decrease larger than policies.max_decrease_percent is"
			switch {
			case increasesHeld > 0 && increasesHeld == guardHeld:
				guarded = "an increase larger than policies.max_increase_percent is"
			case increasesHeld > 0:
				guarded = "a decrease larger than policies.max_decrease_percent and an increase larger than policies.max_increase_percent are"
			}
			hints = append(hints, fmt.Sprintf("%s held for review: check the usage, then run psa-syncd sync --approve --customer %s --service ID --units N --period %s for each held line at the desired units you checked (add -web.url and the API token while psa-syncd run is up), or press approve on the status page", guarded, cm.CustomerID, cp.period))
		}
		cs.Hint = strings.Join(hints, "; ")
	default:
		cs.Result = state.CustomerSucceeded
		if !dry {
			cs.LastSuccess = now
		}
	}
	return cs
}

// settled reports whether the status of customer cp, whose lines are
// decided as changes, is final: every line is unchanged, so nothing that
// the pass does later (contract checks, writes) concerns the customer, and
// it succeeds.
func settled(cp *customerPass, changes []Change) bool {
	if cp.err != nil || cp.errs != nil {
		return false
	}
	for i := range changes {
		if changes[i].Action != ActionUnchanged {
			return false
		}
	}
	return true
}

// statusBatch is how many customer statuses a statusWriter stores in one
// commit: a chunk's worth (see readChunk), one multi-row statement.
const statusBatch = readChunk

// statusWriter stores the statuses of a pass's settled customers while the
// pass still reads and decides the others, in batches of statusBatch on a
// goroutine of its own, so that at 20,000 customers the pass does not end
// with one commit of 20,000 statuses (a third of a second on SQLite) after
// its last read. The statuses it stores are the ones the pass reports:
// statuses derives each stored customer's status again from the same
// changes and time (customerPass.storedAt). A pass that fails after the
// reads leaves the statuses stored so far, which say what they say of the
// customers truly: their lines were read and found as they should be.
type statusWriter struct {
	e   *Engine
	run string
	// pending is the batch being filled; batches takes full ones.
	pending []state.CustomerStatus
	batches chan []state.CustomerStatus
	done    chan struct{}
	once    sync.Once
	// stored counts the statuses added.
	stored int
	// err is the first error storing a batch; written by the goroutine,
	// read after done is closed.
	err error
}

// startStatusWriter starts a statusWriter for run runID of a pass over at
// most customers customers.
func (e *Engine) startStatusWriter(ctx context.Context, runID int64, customers int) *statusWriter {
	w := &statusWriter{e: e, run: strconv.FormatInt(runID, 10),
		// Room for every batch: the pass never waits for the database.
		batches: make(chan []state.CustomerStatus, customers/statusBatch+1),
		done:    make(chan struct{})}
	ctx = context.WithoutCancel(ctx) // a pass cancelled while reading still records what it decided
	go func() {
		defer close(w.done)
		for b := range w.batches {
			if w.err == nil {
				w.err = e.db.PutCustomerStatusBatch(ctx, b)
			}
		}
	}()
	return w
}

// add stores the status of customer cp, settled with changes, as of now.
func (w *statusWriter) add(cp *customerPass, changes []Change) {
	cp.stored, cp.storedAt = true, w.e.now().UTC()
	w.stored++
	w.pending = append(w.pending, w.e.customerStatus(cp, changes, cp.storedAt, w.run, false))
	if len(w.pending) == statusBatch {
		w.batches <- w.pending
		w.pending = nil
	}
}

// close stores the last batch, waits for every batch to be stored and
// returns the first error. It may be called more than once, and on a nil
// statusWriter (a pass that stores no status).
func (w *statusWriter) close() error {
	if w == nil {
		return nil
	}
	w.once.Do(func() {
		if len(w.pending) > 0 {
			w.batches <- w.pending
			w.pending = nil
		}
		close(w.batches)
	})
	<-w.done
	return w.err
}
