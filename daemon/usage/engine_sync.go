package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// maxLoggedProblems bounds the usage problems logged per pass; the plan
// holds all of them. It bounds the failed customers and the failed lines
// logged at warn and error too: a PSA that fails them all would otherwise
// log one line per customer and per line; the others are logged at debug,
// and the run and the customer statuses hold every one.
const maxLoggedProblems = 20

// Sync runs one pass: it settles open intents, computes the plan and writes
// the lines that differ (unless o.DryRun or o.WritesDisabled), then records
// the run, the customer statuses and the metrics. A customer's failure never
// stops the others. Sync returns an error, together with the recorded
// Result when there is one, only when the pass as a whole failed (usage
// could not be fetched, the state database failed, or it holds the usage of
// another instance of the PSA system: an *InstanceMismatchError, see
// checkInstance). The first pass that writes records the PSA instance in a
// state database that has none.
func (e *Engine) Sync(ctx context.Context, doc *export.Document, o PassOptions) (*Result, error) {
	if e.db == nil {
		return nil, errors.New("daemon: sync needs a state database")
	}
	if _, err := e.selectCustomers(doc, o); err != nil {
		return nil, err
	}
	if err := o.checkApproval(); err != nil {
		return nil, err
	}
	// A period the pass may not sync is refused before it records a run.
	if _, err := e.passTime(o, e.now()); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.saveUnsaved()

	dry := o.DryRun || o.WritesDisabled
	started := e.now()
	reqs := e.metrics.requests()
	if o.Trigger == "" {
		o.Trigger = TriggerManual
	}
	at, err := e.passTime(o, started)
	if err != nil {
		return nil, err
	}
	run, err := e.db.BeginRun(state.Run{Trigger: o.Trigger, DryRun: dry, Customer: o.Customer, Started: started.UTC(),
		Period: e.period(at).String(), Note: o.Note})
	if err != nil {
		return nil, fmt.Errorf("daemon: recording run: %w", err)
	}
	log := e.logger.With("run", run.ID)
	e.metrics.passStarted(run.ID, dry, o.Customer == "")
	defer e.metrics.passFinished(dry)
	attrs := []any{"trigger", o.Trigger, "period", run.Period, "dry_run", o.DryRun, "writes_disabled", o.WritesDisabled, "customer", o.Customer}
	if o.Note != "" {
		attrs = append(attrs, "asked", o.Note)
	}
	log.Info("Starting sync pass", attrs...)

	// ledger is set once the plan knows that the PSA's lines cannot be
	// read (Kaseya BMS): intents there wait for an operator, not a time.
	var ledger bool
	fail := func(err error) (*Result, error) {
		run.Result = state.RunFailure
		// The API and the status page serve it without credentials: a
		// failure of the state database names neither it nor its host
		// there, and the log below has the error.
		run.Error = state.PublicText(err)
		if !dry {
			interrupted(ctx, &run)
		}
		run.Finished = e.now().UTC()
		if !dry && !ledger {
			e.settleOwn(run)
		}
		run.Requests = int(e.metrics.requests() - reqs)
		if serr := e.finishRun(log, run); serr != nil {
			err = errors.Join(err, serr)
		}
		if !dry {
			e.recordRun(run, started, nil)
			e.recordUsageMissing(run, false)
		}
		log.Error("Sync pass failed", "err", err)
		return &Result{Run: run}, err
	}

	// The state database's ledger, intents and contract checks are of one
	// instance of the PSA system: a pass connected to another would match
	// them to its contracts by id.
	if err := e.checkInstance(ctx, doc, !dry); err != nil {
		return fail(err)
	}

	// Settle what an interrupted pass left open before writing anything,
	// so that no line is ever changed twice.
	if !dry {
		if n, err := e.reconcile(ctx); err != nil {
			log.Warn("Could not settle every open intent; their lines are not written this pass", "err", err)
		} else if n > 0 {
			log.Info("Settled open intents", "intents", n)
		}
	}

	var startWriter func(bool) (*writer, error)
	if !dry && e.earlyWrites() {
		startWriter = func(ledger bool) (*writer, error) { return e.startWriter(ctx, log, run.ID, ledger) }
	}
	var stored *statusWriter
	if !dry {
		stored = e.startStatusWriter(ctx, run.ID, len(doc.CustomerMappings))
	}
	// On a pass that ends normally storeStatuses closes it and reports its
	// error; this stops its goroutine on the others.
	defer func() { _ = stored.close() }()
	p, err := e.plan(ctx, doc, o, startWriter, stored)
	if err != nil {
		return fail(err)
	}
	ledger = p.ledger
	// Without At, the plan reads the clock again; at a month end it may
	// sync another period than the one the pass started in.
	run.Period = p.plan.Period.String()
	e.recordUnmapped(doc, run.ID, p, o.Customer)
	e.forgetClears(p.plan)
	if o.Customer == "" {
		// A pass for one customer sees one contract.
		e.setContractsEnding(p)
	}
	for i, pr := range p.plan.Problems {
		if i == maxLoggedProblems {
			log.Warn("More usage problems not logged", "problems", len(p.plan.Problems))
			break
		}
		// Not all of them skip a row: a duplicate_rows: sum notice adds its
		// rows up.
		log.Warn("Usage problem", "problem", pr.String())
	}
	if s := p.plan.Surge; s != nil && s.Approval == "stale" {
		log.Warn("Surge not approved: the lines held for it changed since the review; review them again (GET /api/v1/plan gives each line's reason)",
			"reviewed", o.ApproveSurge, "review", s.Review, "lines", p.surgeHeld, "approve_all", surgeApproveCommand(s.Review, s.Period))
	} else if p.surgeHeld > 0 && s != nil {
		log.Warn("Increases held for review: many lines rise at once, as when the vendor counts twice (policies.surge_lines_percent); GET /api/v1/plan gives each line's reason; once checked with the vendor, approve them all at the units reviewed with the review code",
			"lines", p.surgeHeld, "review", s.Review, "approve_all", surgeApproveCommand(s.Review, s.Period))
	} else if p.surgeHeld > 0 {
		log.Warn("Increases held for review: many lines rise at once, as when the vendor counts twice (policies.surge_lines_percent); GET /api/v1/plan gives each line's reason",
			"lines", p.surgeHeld)
	}

	if !dry {
		if err := e.write(ctx, log, run.ID, p, p.early); err != nil {
			return fail(err)
		}
		e.readRefusedServices(ctx, p)
		e.recordDoubts(p)
	}
	e.recordEndpointBudgets()

	statuses, counts := e.statuses(p, run.ID, dry)
	failed := 0
	for i, cs := range statuses {
		if cs.Result == state.CustomerFailed {
			level := slog.LevelWarn
			if failed++; failed > maxLoggedProblems {
				level = slog.LevelDebug
			}
			attrs := []any{"customer", cs.CustomerID, "name", cs.CustomerName, "contract", cs.ContractID, "err", cs.Error}
			if serr := p.customers[i].stateError(); serr != nil {
				attrs = append(attrs, "state_err", serr)
			}
			log.Log(ctx, level, "Customer not synced", append(attrs, "hint", cs.Hint)...)
		}
	}
	if failed > maxLoggedProblems {
		log.Warn("More customers not synced; GET /api/v1/customers?status=failed lists them all", "customers", failed,
			"not_logged", failed-maxLoggedProblems)
	}
	run.Updated, run.Unchanged, run.Held, run.Failed = counts[LineUpdated], counts[LineUnchanged], counts[LineHeld], counts[LineFailed]
	run.Customers = len(p.customers)
	run.Result = runResult(statuses)
	switch {
	case o.WritesDisabled:
		run.Error = "integration disabled in the mapping export: nothing was written"
	case run.Result != state.RunSuccess:
		run.Error = failureSummary(statuses, p.stopped, p.readsStopped)
	case p.noUsage && o.Customer == "":
		// Every line was left as it was: the period is not billed. Not
		// a success for it, so that PsaSyncPartial says so, and
		// PsaSyncEndedMonthNotSynced once the month has ended, as for a
		// month-end pass that held its lines.
		run.Result = state.RunPartial
		run.Error = "no usage sets a mapped line (" + usageMissingWhy(p.plan.Problems) + "): every line was left as it was, so the period is not billed; " +
			"psa-syncd plan names the problem, and a pass (or sync -period) once the usage is there bills it"
	case p.laterWritten > 0 && p.plan.Period == e.period(started.In(e.loc)).Prev():
		// A pass of the month that has ended (a re-run with -period, a
		// month-end pass caught up after midnight) whose lines a pass of
		// the new month already changed holds them: that month's
		// invoices keep their earlier quantities. Not a success for the
		// month, so psa_sync_ended_period_last_run_result and
		// PsaSyncEndedMonthNotSynced go on saying so.
		run.Result = state.RunPartial
		run.Error = fmt.Sprintf("%d lines held: psa-syncd already changed them from a later date (a pass of %s), so %s keeps their earlier quantities: "+
			"set them by hand in the PSA (each line's reason says from and to what), then record it with psa-syncd set-by-hand -period %s",
			p.laterWritten, p.plan.Period.Next(), p.plan.Period, p.plan.Period)
	}
	if !dry {
		// The customers settled while reading are stored; one commit for
		// the statuses of the others.
		if err := e.storeStatuses(ctx, p, stored, statuses); err != nil {
			return fail(fmt.Errorf("daemon: recording customer statuses: %w", err))
		}
	}
	if !dry {
		interrupted(ctx, &run)
	}
	run.Finished = e.now().UTC()
	if !dry && !p.ledger {
		e.settleOwn(run)
	}
	run.Requests = int(e.metrics.requests() - reqs)
	// A run whose end the state database did not record still happened:
	// it wrote, and its customers' statuses are stored. Its metrics are
	// recorded as a failed pass's are, or it would show in none of them.
	serr := e.finishRun(log, run)
	if !dry {
		e.recordRun(run, started, counts)
		e.recordUsageMissing(run, p.noUsage)
		e.recordRepeatedRows(run, p.plan.Problems)
		e.metrics.passStopped(stopReasons(statuses, p.stopped, p.readsStopped))
		if o.Customer == "" {
			// The pass covered every customer that counts.
			e.recordCustomers(doc, statuses)
		} else {
			e.recordCustomers(doc, nil)
		}
	}
	if serr != nil {
		return &Result{Run: run, Plan: p.plan, Customers: statuses}, serr
	}
	log.Log(ctx, ResultLevel(run.Result, dry), "Finished sync pass", "result", run.Result, "customers", run.Customers, "updated", run.Updated,
		"unchanged", run.Unchanged, "held", run.Held, "failed", run.Failed, "requests", run.Requests,
		"unmapped_customers", len(p.plan.Unmapped.Customers), "unmapped_products", len(p.plan.Unmapped.Products),
		"unassigned", len(p.plan.Unmapped.Unassigned), "problems", len(p.plan.Problems), "dry_run", dry)
	return &Result{Run: run, Plan: p.plan, Customers: statuses}, nil
}

// finishRun saves run's final record. When the state database fails, run
// is kept in e.unsaved and saved again at the next Sync or Reconcile: its
// record would otherwise say "running" for ever, and the intents of its
// lost answers would never settle (see settlesAt).
//
// An instance that lost the leadership lock records no run (the save is
// refused with state.ErrNotLeader): the instance that takes over marks it
// interrupted, or marked it already, and a record saved again later would
// replace that mark.
func (e *Engine) finishRun(log *slog.Logger, run state.Run) error {
	err := e.saveRun(run)
	if err == nil {
		return nil
	}
	if errors.Is(err, state.ErrNotLeader) {
		log.Warn("Did not record the end of the pass: this psa-syncd is no longer the active instance, and the instance that takes over marks the pass interrupted", "err", err)
		return fmt.Errorf("daemon: recording the end of run %d: %w", run.ID, err)
	}
	e.unsaved.put(run)
	log.Warn("Could not record the end of the pass: this process records it again at its next pass (a psa-syncd started later marks it interrupted)", "err", err)
	return fmt.Errorf("daemon: recording the end of run %d: %w", run.ID, err)
}

// RecordUnsaved records now what the passes of this process could not
// record in the state database (the outcome of writes whose closes failed,
// the end of runs), as the next Sync or Reconcile would, and returns how
// many intent closes and runs are still unrecorded. An instance that lost
// the leadership lock calls it before it exits: the lock's connection,
// through which its writes went, failed, but the database may answer on
// a new one, and the instance that takes over then finds those intents
// closed rather than open, to be settled by reading the PSA or, where it
// cannot be read (Kaseya BMS), by an operator. Closes of intents that
// instance has settled meanwhile are dropped.
func (e *Engine) RecordUnsaved() (closes, runs int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.saveUnsaved()
	e.unsaved.mu.Lock()
	defer e.unsaved.mu.Unlock()
	return len(e.unsaved.closes) + len(e.unsaved.unsent), len(e.unsaved.runs)
}

// saveUnsaved saves again the runs that finishRun could not save, and the
// intent closes that keepUnrecordedCloses kept, and closes the intents
// whose recording got no answer (closeUnsent).
func (e *Engine) saveUnsaved() {
	e.closeUnsent()
	e.saveUnrecordedCloses()
	for _, run := range e.unsaved.all() {
		err := e.saveRun(run)
		if errors.Is(err, state.ErrNotLeader) {
			// Left to the instance that takes over, as finishRun does.
			e.unsaved.remove(run.ID)
			e.logger.Warn("Did not record the end of an earlier pass: this psa-syncd is no longer the active instance, and the instance that takes over marks the pass interrupted", "run", run.ID, "err", err)
			continue
		}
		if err != nil {
			e.logger.Warn("Could not record the end of an earlier pass; trying again at the next pass", "run", run.ID, "err", err)
			continue
		}
		e.unsaved.remove(run.ID)
		e.logger.Info("Recorded the end of an earlier pass", "run", run.ID, "result", run.Result)
	}
}

// saveUnrecordedCloses records the intent closes kept by
// keepUnrecordedCloses, in one commit, those of intents still open; the
// others were closed since (by an operator, or another instance that took
// over and settled them) and are left as they were closed, so that no
// outcome is recorded twice. Those closed otherwise than this process
// knows are logged: the outcome known here is not recorded. On failure
// every close is kept for the next try.
//
// Which intents are still open is decided in the commit itself: a filter
// read before it (OpenIntents) left a window in which the instance that
// took over settled one of them, and the whole batch was then refused,
// losing the outcomes of the others.
func (e *Engine) saveUnrecordedCloses() {
	closes := e.unsaved.allCloses()
	if len(closes) == 0 {
		return
	}
	// The state database bounds the commit with its query timeout.
	closedMeanwhile, err := e.db.CompleteIntentsStillOpen(context.Background(), closes)
	if err != nil {
		e.logger.Warn("Could not record the outcome of the writes of an earlier pass; trying again at the next pass", "intents", len(closes), "err", err)
		return
	}
	for _, c := range closes {
		e.unsaved.removeClose(c.ID)
		cur, ok := closedMeanwhile[c.ID]
		if !ok || cur == c.State {
			continue
		}
		if cur == "" {
			cur = "removed"
		}
		e.logger.Warn("An intent whose outcome this process knew was closed otherwise meanwhile (by the instance that took over, or an operator); it is left as it was closed",
			"intent", c.ID, "known", c.State, "closed_as", cur, "note", c.Note)
	}
	if n := len(closes) - len(closedMeanwhile); n > 0 {
		e.logger.Info("Recorded the outcome of the writes of an earlier pass", "intents", n)
	}
}

// closeUnsent closes as failed the intents kept by openIntents whose
// recording got no answer and that the state database committed after all
// (they are open): this process sent no write for them, and left open,
// each would be settled as a lost answer, by re-reading the PSA or, where
// it cannot be read (Kaseya BMS), by an operator. One the database does
// not show was not committed. Closed meanwhile (by the instance that took
// over, or an operator), an intent is left as it was closed. When the
// database cannot be read or the closes fail, every intent is kept for the
// next try.
//
// The intents are told apart by what they were recorded with: their run,
// line, quantities and time of creation, which no other intent shares.
func (e *Engine) closeUnsent() {
	unsent := e.unsaved.takeUnsent()
	if len(unsent) == 0 {
		return
	}
	open, err := e.db.OpenIntents()
	if err != nil {
		e.unsaved.putUnsent(unsent)
		e.logger.Warn("Could not read the open intents to close those whose recording got no answer; trying again at the next pass", "intents", len(unsent), "err", err)
		return
	}
	var closes []state.IntentCompletion
	for _, in := range open {
		if slices.ContainsFunc(unsent, func(u state.Intent) bool { return sameIntent(in, u) }) {
			closes = append(closes, state.IntentCompletion{ID: in.ID, State: state.IntentFailed, At: e.now().UTC(),
				Note: "not sent: the state database did not answer the COMMIT that recorded this intent, and committed it after all; psa-syncd sent no write for it"})
		}
	}
	// The state database bounds the commit with its query timeout. It
	// waits for no synchronous standby: a gone one may be why the intents'
	// COMMIT got no answer, and this close would wait for it as long.
	closedMeanwhile, err := e.db.FailUnsentIntentsStillOpen(context.Background(), closes)
	if err != nil {
		e.unsaved.putUnsent(unsent)
		e.logger.Warn("Could not close the intents whose recording got no answer; trying again at the next pass", "intents", len(closes), "err", err)
		return
	}
	for _, c := range closes {
		if _, ok := closedMeanwhile[c.ID]; !ok {
			e.logger.Info("Closed as not sent an intent whose recording got no answer from the state database; the next pass writes its line", "intent", c.ID)
		}
	}
}

// sameIntent reports whether the stored intent in is u as it was given to
// OpenIntentBatch, whose times PostgreSQL keeps to the microsecond.
func sameIntent(in, u state.Intent) bool {
	near := func(a, b time.Time) bool { return a.Sub(b).Abs() < time.Microsecond }
	return in.RunID == u.RunID && in.System == u.System && in.Source == u.Source && in.CustomerID == u.CustomerID &&
		in.ContractID == u.ContractID && in.ServiceID == u.ServiceID && in.Before == u.Before && in.After == u.After &&
		in.BeforeKnown == u.BeforeKnown && near(in.EffectiveDate, u.EffectiveDate) && near(in.Created, u.Created)
}

// settleOwn adds to e.settling the intents of run's own writes that are
// still open (their answers were lost, and the PSA did not show them
// applied yet): they can be settled Policies.SettleTime after run ends.
func (e *Engine) settleOwn(run state.Run) {
	if e.policies.SettleTime <= 0 {
		return
	}
	open, err := e.db.OpenIntents()
	if err != nil {
		return // the next pass reconciles them anyway
	}
	if e.settling == nil {
		e.settling = map[int64]settle{}
	}
	for _, in := range open {
		if in.RunID == run.ID {
			// The re-read after the lost answer showed the quantity from
			// before, or another (the backend's error says which).
			e.settling[in.ID] = settle{at: maxTime(run.Finished, in.Created).Add(e.policies.SettleTime), shows: in.Before}
		}
	}
}

// interrupted marks run as interrupted when ctx was cancelled before the
// pass ended (psa-syncd stopped it at the shutdown timeout, or it lost the
// leadership): the pass did not cover what it was meant to, so, like a
// pass whose process was killed, it is a failure that the schedule does
// not count as the last full pass (the missed pass is caught up) and that
// the last-run metrics report. The cause of the cancellation is in the
// error.
func interrupted(ctx context.Context, run *state.Run) {
	if ctx.Err() == nil {
		return
	}
	reason := "the pass was stopped before it ended"
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		reason += ": " + state.PublicText(cause)
	}
	run.Interrupt(reason + "; its lines that were not written wait for the next pass, which settles its open intents first")
}

// ResultLevel is the level at which a pass with the given result is logged:
// a failed pass is an error, a partial one a warning, so that log-based
// alerting sees them. A dry run changes nothing and is logged at info.
func ResultLevel(result string, dry bool) slog.Level {
	switch {
	case dry:
		return slog.LevelInfo
	case result == state.RunFailure:
		return slog.LevelError
	case result == state.RunPartial:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// writeJob is one line write of a pass: the change, its current line (nil
// when the contract has no line for the service yet) and, once the opener
// has recorded it, its intent.
type writeJob struct {
	cp      *customerPass
	i       int
	c       *Change
	current *psa.ContractLine
	intent  state.Intent
	// closed is how the sender closed the intent (nil: left open, for a
	// write whose outcome is unknown), kept until the close is committed.
	closed *state.IntentCompletion
}

// intentWindowPerSender is how many intents per write in flight are opened
// ahead of their writes. The opener records the intents of the next writes
// in one commit while the senders wait for the PSA, so that no sender waits
// for the state database; the window bounds the intents that a crash leaves
// open for writes that were never sent. Those are settled by re-reading the
// PSA, except where it cannot be read (Kaseya BMS): there each one waits for
// an operator, so the window is one intent per sender.
//
// intentBatchPerSender is how many intents per sender the opener records in
// one commit at least (fewer only for the last writes of a pass): it waits
// until that many of the window's intents have been taken by the senders,
// which meanwhile still have the rest of the window, two per sender, to go
// on with. Each commit is an fsync, so batches of one intent per sender
// halve a pass's commits against recording each intent as soon as the
// window has room for it. Where the window is one intent per sender, every
// intent is recorded as soon as there is room.
const (
	intentWindowPerSender       = 3
	intentBatchPerSender        = 1
	intentWindowPerSenderLedger = 1
)

// writer applies the updates of a pass. It runs as a pipeline: one opener
// records the intents of the next writes in batches (one group commit
// each, fsynced before any of their writes is sent), and
// policies.write_concurrency senders send the writes whose intents are
// recorded, each closing its intent without waiting for the commit (the
// close rides with the next batch of intents; one lost in a crash leaves
// the intent open, which reconciliation settles). The budget gate stops
// the senders when the PSA's hourly budget reaches the reserve.
//
// Where the plan needs nothing more of a customer once its lines are
// decided (see earlyWrites), the plan hands the customer's updates to the
// writer as soon as they are decided, so that they are written while the
// next contracts are read; the others follow when the plan is done.
type writer struct {
	e      *Engine
	ledger bool
	// pending holds the intents of the engine's PSA system left open
	// before the pass, by line.
	pending map[psa.LineKey]state.Intent
	gate    *budgetGate
	queue   *jobQueue
	// failing holds the contracts whose writes failed as if the whole PSA
	// did at earlier passes (FailingContracts.of); their writes are held
	// until the others are handed over, and last.
	failing map[string]bool
	last    []*writeJob
	// jobs are the writes handed over so far. Each has its own Change,
	// copied back into the plan when the writes are done: the plan's
	// changes may move while it grows.
	jobs []*writeJob
	done chan struct{}
	// failed counts the lines whose write failed, the first
	// maxLoggedProblems of which are logged at error.
	failed atomic.Int64
	// awaited holds the lines written after the others (pass.awaited):
	// customerJobs leaves them out, writeAwaited hands them over once
	// every other write is done (inflight counts those not done yet).
	awaited  map[psa.LineKey]bool
	inflight sync.WaitGroup
}

// earlyWrites reports whether the engine's writes may start while the
// plan is still being made: the PSA neither verifies contracts before
// writing (psa.WriteChecker) nor preloads services for the writes of a
// pass (psa.ServicePreloader), both of which need every update first.
func (e *Engine) earlyWrites() bool {
	_, checks := e.be.(psa.WriteChecker)
	_, preloads := e.be.(psa.ServicePreloader)
	return !checks && !preloads
}

// startWriter reads the intents left open and starts the opener and the
// senders, which wait for jobs.
func (e *Engine) startWriter(ctx context.Context, log *slog.Logger, runID int64, ledger bool) (*writer, error) {
	open, err := e.db.OpenIntents()
	if err != nil {
		return nil, fmt.Errorf("daemon: reading open intents: %w", err)
	}
	sys := e.be.System()
	// The state database keeps the failing contracts for the processes
	// that start later, and for another replica that took over.
	if stored, err := e.db.FailingContracts(sys); err != nil {
		log.Warn("Could not read the contracts whose writes failed at earlier passes; only this process's are written last", "err", err)
	} else {
		e.failing.restore(sys, stored)
	}
	failing := e.failing.of(sys)
	w := &writer{e: e, ledger: ledger, pending: map[psa.LineKey]state.Intent{}, failing: failing,
		gate:  &budgetGate{be: e.be, reserve: e.policies.BudgetReserve, metrics: e.metrics, logger: log, failing: failing, progressed: e.progressed},
		queue: newJobQueue(), done: make(chan struct{})}
	// The intents of another PSA system name another system's lines,
	// whatever their ids: reconcile reports them, and neither this pass
	// nor its plan (openIntentsByLine) takes them for this system's.
	for _, in := range open {
		if in.System == sys {
			w.pending[psa.LineKey{ContractID: in.ContractID, ServiceID: in.ServiceID}] = in
		}
	}
	senders := e.policies.WriteConcurrency
	window, batch := intentWindowPerSender*senders, intentBatchPerSender*senders
	if ledger {
		window, batch = intentWindowPerSenderLedger*senders, 1
	}
	// slots holds a token per intent opened and not yet taken by a sender.
	slots := make(chan struct{}, window)
	ready := make(chan *writeJob, window)
	go func() {
		defer close(w.done)
		var wg sync.WaitGroup
		for range senders {
			wg.Go(func() {
				for j := range ready {
					<-slots
					j.cp.errs[j.i] = e.send(ctx, log, w, j)
					w.lineDone()
				}
			})
		}
		e.openIntents(ctx, runID, w.gate, w.queue, batch, slots, ready, w.lineDone)
		close(ready)
		wg.Wait()
		w.gate.wait()
		w.gate.record()
	}()
	return w, nil
}

// customerJobs returns the writes of the updates among cp's changes, in
// order, failing those whose line has an intent left open, and leaving out
// those written after the others (w.awaited). lines holds the lines the
// pass read.
func (w *writer) customerJobs(cp *customerPass, changes []Change, lines map[psa.LineKey]psa.ContractLine) []*writeJob {
	var jobs []*writeJob
	for i := range changes {
		c := &changes[i]
		if c.Action != ActionUpdate || w.awaited[psa.LineKey{ContractID: c.ContractID, ServiceID: c.ServiceID}] {
			continue
		}
		if j := w.job(cp, i, c, lines); j != nil {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// job returns the write of c, cp's change i, an update, or nil when it
// fails it because its line has an intent left open.
func (w *writer) job(cp *customerPass, i int, c *Change, lines map[psa.LineKey]psa.ContractLine) *writeJob {
	key := psa.LineKey{ContractID: c.ContractID, ServiceID: c.ServiceID}
	if in, ok := w.pending[key]; ok {
		if w.ledger {
			cp.fail(i, w.e.awaitingReview(in, c.ServiceName), c)
		} else if st, ok := w.e.settling[in.ID]; ok {
			cp.fail(i, settlingError(in, st), c)
		} else if w.e.unseen[in.ID] {
			cp.fail(i, unseenError(in, c.ServiceName), c)
		} else {
			cp.fail(i, fmt.Errorf("%w (intent %d): it is settled by re-reading the PSA before the line is written again", errUnsettled, in.ID), c)
		}
		return nil
	}
	if cp.errs == nil {
		// The senders set the errors of their writes.
		cp.errs = make([]error, cp.nChanges)
	}
	own := *c
	j := &writeJob{cp: cp, i: i, c: &own}
	if l, ok := lines[key]; ok {
		j.current = &l
	}
	return j
}

// push hands jobs to the opener.
func (w *writer) push(jobs []*writeJob) {
	w.inflight.Add(len(jobs))
	w.queue.push(jobs)
}

// lineDone is called once per job handed to the opener, when it is sent,
// skipped or failed.
func (w *writer) lineDone() {
	w.e.metrics.lineDone()
	w.e.progressed()
	w.inflight.Done()
}

// add hands jobs to the opener, but for those of failing contracts, which
// wait in w.last for the others.
func (w *writer) add(jobs []*writeJob) {
	if len(jobs) == 0 {
		return
	}
	w.jobs = append(w.jobs, jobs...)
	w.e.metrics.passWrites(len(w.jobs))
	now := jobs[:0:0]
	for _, j := range jobs {
		if _, ok := w.failing[j.c.ContractID]; ok {
			w.last = append(w.last, j)
		} else {
			now = append(now, j)
		}
	}
	if len(now) > 0 {
		w.push(now)
	}
}

// write applies the updates of the plan that w has not been handed yet
// (w is nil when none was), then waits for every write and records the
// outcomes in the plan.
func (e *Engine) write(ctx context.Context, log *slog.Logger, runID int64, p *pass, w *writer) error {
	if w == nil {
		var err error
		if w, err = e.startWriter(ctx, log, runID, p.ledger); err != nil {
			return err
		}
	}
	w.awaited = p.awaited
	var jobs []*writeJob
	for _, cp := range p.customers {
		if cp.err != nil || cp.written {
			continue
		}
		jobs = append(jobs, w.customerJobs(cp, cp.changes, p.lines)...)
	}
	e.metrics.passWrites(len(w.jobs) + len(jobs))
	if len(jobs) > 0 {
		e.preloadServices(ctx, log, jobs)
	}
	w.add(jobs)
	if len(w.last) > 0 {
		w.push(w.last)
		w.last = nil
	}
	if len(p.awaiting) > 0 {
		e.writeAwaited(ctx, log, p, w)
	}
	w.queue.close()
	<-w.done
	if n := w.failed.Load(); n > maxLoggedProblems {
		log.Warn("More contract lines failed to update; GET /api/v1/plan lists them all", "lines", n, "not_logged", n-maxLoggedProblems)
	}
	failed, succeeded := w.gate.outcomes()
	e.failing.update(e.be.System(), failed, succeeded)
	e.failing.prune(e.be.System(), p.mapped)
	if now := e.failing.of(e.be.System()); !maps.Equal(now, w.failing) {
		if err := e.db.PutFailingContracts(e.be.System(), now); err != nil {
			log.Warn("Could not record the contracts whose writes failed as if the PSA did; a psa-syncd that starts writes them in their order", "err", err)
		}
	}
	p.stopped = w.gate.failure()
	for _, j := range w.jobs {
		j.cp.changes[j.i] = *j.c
	}
	if len(w.jobs) == 0 {
		return nil
	}
	// Closed intents are committed with the batches of intents opened
	// after them; the last ones are committed here.
	if err := e.db.Flush(context.WithoutCancel(ctx)); err != nil {
		// One error per write of the failed commits (a full disk fails
		// them all alike): the first says why, a count says how many.
		n, first := 1, err
		if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
			n, first = len(j.Unwrap()), j.Unwrap()[0]
		}
		log.Error("Could not record the outcome of every write; this process records them again before its next pass settles open intents",
			"errors", n, "err", first)
	}
	e.keepUnrecordedCloses(log, w.jobs)
	return nil
}

// keepUnrecordedCloses keeps, in e.unsaved, the closes of jobs whose
// intents are still open: the state database failed the transaction that
// held them (a full disk, a lost connection). The outcome of those writes
// is known; left open, an intent would be settled by re-reading the PSA,
// or, where it cannot be read (Kaseya BMS), held for an operator as if
// the answer had been lost. saveUnsaved records them at the next pass.
func (e *Engine) keepUnrecordedCloses(log *slog.Logger, jobs []*writeJob) {
	var closed []*state.IntentCompletion
	for _, j := range jobs {
		if j.closed != nil {
			closed = append(closed, j.closed)
		}
	}
	if len(closed) == 0 {
		return
	}
	open, err := e.db.OpenIntents()
	stillOpen := map[int64]bool{}
	for _, in := range open {
		stillOpen[in.ID] = true
	}
	kept := 0
	for _, c := range closed {
		// When the open intents cannot be read, every close is kept:
		// recording one that was recorded is refused, and changes nothing.
		if err != nil || stillOpen[c.ID] {
			e.unsaved.putClose(*c)
			kept++
		}
	}
	if kept > 0 {
		log.Warn("Could not record the outcome of some writes: this process records them again at its next pass, before it settles open intents "+
			"(a psa-syncd started later settles them as after a crash)", "intents", kept)
	}
}

// jobQueue holds the writes handed to the opener and not yet opened.
type jobQueue struct {
	mu     sync.Mutex
	jobs   []*writeJob
	closed bool
	// more is signalled when jobs are pushed or the queue is closed.
	more chan struct{}
}

func newJobQueue() *jobQueue { return &jobQueue{more: make(chan struct{}, 1)} }

func (q *jobQueue) push(jobs []*writeJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, jobs...)
	q.mu.Unlock()
	q.signal()
}

func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *jobQueue) signal() {
	select {
	case q.more <- struct{}{}:
	default:
	}
}

// wait waits until jobs are queued or the queue is closed, and returns how
// many are queued (0 once it is closed and empty).
func (q *jobQueue) wait() int {
	for {
		q.mu.Lock()
		n, closed := len(q.jobs), q.closed
		q.mu.Unlock()
		if n > 0 || closed {
			return n
		}
		<-q.more
	}
}

// take removes the first n queued jobs and returns them.
func (q *jobQueue) take(n int) []*writeJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	jobs := slices.Clone(q.jobs[:n])
	q.jobs = q.jobs[n:]
	return jobs
}

// openIntents records the intents of the queued jobs, in order, in batches
// of as many as are queued and the window has room for, but at least batch
// (or the jobs queued), and hands each job to the senders once its intent
// is committed. It returns once the queue is closed and empty. Once the
// pass is cancelled or the budget gate has stopped the writes, it opens no
// more: the jobs it did not open are skipped. It calls done for each job
// it skips or fails (the senders, for the jobs it hands them).
func (e *Engine) openIntents(ctx context.Context, runID int64, gate *budgetGate, q *jobQueue, batch int, slots chan struct{}, ready chan<- *writeJob, done func()) {
	stopped := false
	for {
		queued := q.wait()
		if queued == 0 {
			return
		}
		if stopped {
			for _, j := range q.take(queued) {
				j.cp.errs[j.i] = e.skip(ctx, j.c, gate)
				done()
			}
			continue
		}
		// Wait for the batch's room: a token comes back each time a sender
		// takes a job, and the window keeps the senders supplied
		// meanwhile.
		n := 0
	wait:
		for n < batch && n < queued {
			select {
			case slots <- struct{}{}:
				n++
			case <-ctx.Done():
				break wait
			}
		}
		if ctx.Err() != nil || gate.stopped() {
			// The tokens taken above are never released: nothing is sent
			// after this.
			stopped = true
			continue
		}
		// Take the room there is beyond the batch.
	more:
		for n < cap(slots) && n < queued {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		opening := q.take(n)
		ins := make([]state.Intent, len(opening))
		created := e.now().UTC()
		for k, j := range opening {
			c := j.c
			ins[k] = state.Intent{
				RunID:         runID,
				System:        e.be.System(),
				Source:        c.Source,
				CustomerID:    c.CustomerID,
				ContractID:    c.ContractID,
				ServiceID:     c.ServiceID,
				Before:        c.Current,
				After:         c.Desired,
				BeforeKnown:   c.CurrentKnown,
				EffectiveDate: c.EffectiveDate,
				Created:       created,
			}
		}
		opened, err := e.db.OpenIntentBatch(ctx, ins)
		if errors.Is(err, state.ErrMaybeCommitted) {
			// Their writes are not sent: closeUnsent closes those the
			// database committed after all.
			e.unsaved.putUnsent(ins)
		}
		if err != nil {
			for range opening {
				<-slots
			}
			for _, j := range opening {
				if ctx.Err() != nil {
					j.cp.errs[j.i] = e.skip(ctx, j.c, gate)
				} else {
					err := e.intentNotRecorded(err)
					j.c.Action, j.c.Reason = ActionFailed, state.PublicText(err)
					j.cp.errs[j.i] = err
				}
				done()
			}
			continue
		}
		for k, j := range opening {
			j.intent = opened[k]
			ready <- j
		}
	}
}

// intentNotRecorded is the error of a line whose intent the state
// database did not record (err), so that its write was not sent. Its hint
// points at the state database: a timeout there is no answer the PSA did
// not give, and the PSA's connection is not at fault.
func (e *Engine) intentNotRecorded(err error) error {
	if errors.Is(err, state.ErrMaybeCommitted) {
		hint := fmt.Sprintf("nothing was sent to %s: the state database did not answer the COMMIT of the intent that must precede the write, "+
			"and may have committed it after all; psa-syncd closes that intent as not sent once the database answers again "+
			"(at this instance's next pass, or before it exits after losing the leadership lock), and the next pass writes the line; "+
			"check the state database (its server, the network to it, a synchronous standby; psa-syncd's log has its error)", systemName(e.be.System()))
		return &hintedError{err: fmt.Errorf("recording the intent got no answer, so whether it was recorded is unknown; the write was not sent: %w", err), hint: hint}
	}
	hint := fmt.Sprintf("nothing was sent to %s: the state database did not record the intent that must precede the write; "+
		"check the state database (its disk or server, a lock or timeout there; psa-syncd's log has its error); the next pass writes the line", systemName(e.be.System()))
	if errors.Is(err, state.ErrNotLeader) {
		hint = fmt.Sprintf("nothing was sent to %s: this psa-syncd lost the state database's leadership lock (or its connection), "+
			"so another instance, or this one once it leads again, writes the line", systemName(e.be.System()))
	}
	return &hintedError{err: fmt.Errorf("recording the intent failed, nothing was written: %w", err), hint: hint}
}

// skip marks c as not written because the pass was cancelled or the budget
// gate stopped the writes. When the gate stopped them because the PSA
// failed the writes before (budgetGate.wrote), the line fails, and skip
// returns the error that fails it.
func (e *Engine) skip(ctx context.Context, c *Change, gate *budgetGate) error {
	if ctx.Err() != nil && !gate.stopped() {
		// Not a failure of the line: it is reported as skipped.
		c.Action, c.Reason, c.cancelled = ActionSkipped, c.Reason+"; pass cancelled before the write", true
		return nil
	}
	if err := gate.failure(); err != nil && ctx.Err() == nil {
		c.Action, c.Reason = ActionFailed, state.PublicText(err)
		return err
	}
	why := fmt.Sprintf("the PSA's hourly API budget reached the reserve (%d)", e.policies.BudgetReserve)
	if u := gate.unreadable(); u != nil {
		why = fmt.Sprintf("%s: %d reads of it in a row failed, the last with: %v; the writes stopped as at the reserve (%d)",
			skipReasonBudgetUnknown, u.n, u.last, e.policies.BudgetReserve)
		c.budgetUnknown = true
	}
	if r := gate.reason(); r != "" {
		why, c.throttled = r, true
	}
	c.Action, c.Reason = ActionSkipped, c.Reason+"; not written: "+why
	return nil
}

// send writes the line of j, whose intent is recorded, and closes the
// intent (without waiting for the commit). It records the outcome in j.c and
// returns the error that failed the line, if any. w.ledger says that the PSA
// cannot be read, so a write with an unknown outcome must wait for an
// operator.
func (e *Engine) send(ctx context.Context, log *slog.Logger, w *writer, j *writeJob) error {
	c, in, gate, ledger := j.c, j.intent, w.gate, w.ledger
	closeIntent := func(st, note string) {
		c := state.IntentCompletion{ID: in.ID, State: st, Note: note, At: e.now().UTC()}
		j.closed = &c
		if err := e.db.CompleteIntentDeferred(c); err != nil {
			log.Error("Could not close intent", "intent", in.ID, "err", err)
		}
	}
	// The gate may read the budget, and the pass may be cancelled
	// meanwhile: a write that cannot be sent is not started.
	allowed := ctx.Err() == nil && gate.allow(ctx)
	if allowed {
		defer gate.sent()
	}
	if !allowed || ctx.Err() != nil {
		err := e.skip(ctx, c, gate)
		closeIntent(state.IntentFailed, "not sent: "+c.Reason)
		return err
	}
	attrs := []any{"customer", c.CustomerID, "contract", c.ContractID, "service", c.ServiceID,
		"from", c.Current, "to", c.Desired, "effective_date", c.EffectiveDate.Format(time.DateOnly), "intent", in.ID}
	// With replicas, the intent proves the leadership only when it was
	// committed: the lock's session must have answered recently enough that
	// no other instance can have taken over (state.DB.CheckFence). Refused,
	// the write is not sent, as when its intent is refused.
	if err := e.db.CheckFence(); err != nil {
		err = fmt.Errorf("not written: %w", err)
		c.Action, c.Reason = ActionFailed, state.PublicText(err)
		closeIntent(state.IntentFailed, "not sent: "+state.PublicText(err))
		log.Error("Not updating contract line: this psa-syncd may no longer be the active instance", append(attrs, "err", err)...)
		return err
	}
	// A write that was sent when the pass is stopped (the shutdown
	// timeout, a lost leadership lock) is let finish on every PSA, so that
	// its outcome is known and recorded: cut off, it may still land, and
	// its intent waits for an operator (Kaseya BMS, which cannot be read
	// back) or for a re-read by whichever instance passes next, which
	// cannot tell an adjustment still on its way from one never sent.
	// The lease is asked again before each attempt the client sends: a
	// throttled post is sent again after a Retry-After of up to five
	// minutes, by when another instance may have taken over.
	wctx, done := sentWriteContext(psa.WithWriteGate(ctx, e.db.CheckFence), e.sentWriteGrace, func() {
		log.Warn("Pass stopped while a contract line write was under way; letting it finish so that its outcome is known",
			append(attrs, "at_most", e.sentWriteGrace)...)
	})
	defer done()
	got, err := e.be.SetQuantity(wctx, psa.SetQuantityRequest{
		ContractID:    c.ContractID,
		ServiceID:     c.ServiceID,
		Quantity:      c.Desired,
		Current:       j.current,
		EffectiveDate: c.EffectiveDate,
	})
	if ctx.Err() == nil && gate.wrote(err, c.ContractID, e.policies.WriteConcurrency) {
		log.Error("Stopping writes: the PSA failed the last writes in a row; the remaining lines fail and wait for a later pass",
			append(attrs, "err", gate.failure())...)
	}
	if err != nil {
		var rle *psa.RateLimitError
		if errors.As(err, &rle) && gate.stop(throttleReason(rle)) {
			// The client returns a refusal for the rate limit only once
			// retrying cannot help: the hourly budget ran out, the PSA
			// asked for a longer wait than a client waits, or the retries
			// were used up on its refusals. Every further write would be
			// refused too (and retried), so the rest of the pass waits
			// for a later one.
			log.Warn("Stopping writes: the PSA refused a write for its rate limit; the remaining lines wait for a later pass", append(attrs, "err", err)...)
		}
		c.Action, c.Reason = ActionFailed, state.PublicText(err)
		if errors.Is(err, psa.ErrOutcomeUnknown) || wctx.Err() != nil {
			// The write may have reached the PSA: leave the intent open
			// so that reconciliation settles it by re-reading, or, where
			// the PSA cannot be read, an operator.
			if ledger {
				log.Error("Outcome of contract line post unknown; the line is blocked until an operator resolves the intent",
					append(attrs, "err", err, "hint", reviewHint(in, c.ServiceName))...)
				return &hintedError{err: err, hint: reviewHint(in, c.ServiceName)}
			}
			log.Error("Outcome of contract line update unknown; it is settled before the line is written again", append(attrs, "err", err)...)
			return err
		}
		closeIntent(state.IntentFailed, state.PublicText(err))
		level := slog.LevelError
		if w.failed.Add(1) > maxLoggedProblems {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "Failed to update contract line", append(attrs, "err", err)...)
		return err
	}
	note := ""
	if got != nil && got.Quantity != c.Desired {
		note = fmt.Sprintf("the PSA reports %d after the write", got.Quantity)
	}
	// The write happened; if the close is lost, the open intent is
	// settled as done by the next reconciliation, which finds the line at
	// its new quantity.
	closeIntent(state.IntentDone, note)
	// One line per write would be thousands per pass: the pass's end
	// logs how many, and GET /api/v1/plan shows each line's outcome.
	log.Debug("Updated contract line", attrs...)
	return nil
}

// throttleReason says why a refusal for the PSA's rate limit stopped the
// writes of a pass, as the skipped lines report it.
func throttleReason(rle *psa.RateLimitError) string {
	if rle.Hourly {
		return rle.Error()
	}
	switch {
	case rle.Waited > 0 && rle.System == psa.SystemAutotask:
		return fmt.Sprintf("the PSA kept refusing a write for its limit of requests in flight for %s: another process with the same credentials (another psa-syncd, the provider) keeps them busy (%s)",
			rle.Waited.Round(time.Second), rle.Error())
	case rle.Waited > 0:
		// ConnectWise's 429 to a read a write needs (an addition's
		// re-read), which the client waits out for a time.
		return fmt.Sprintf("the PSA kept refusing a request for its rate limit for %s (%s)", rle.Waited.Round(time.Second), rle.Error())
	}
	return "the PSA kept refusing writes for its rate limit after the client's retries (" + rle.Error() + ")"
}

// recordEndpointBudgets sets psa_sync_api_budget_remaining per endpoint for
// a PSA that limits each endpoint (Kaseya BMS): the endpoints called in the
// window, and those shown before and no longer called, back at their whole
// limit. It makes no request.
func (e *Engine) recordEndpointBudgets() {
	eb, ok := e.be.(psa.EndpointBudgeter)
	if !ok || e.metrics == nil {
		return
	}
	e.metrics.setEndpointBudgets(eb.EndpointBudgets())
}

// customerKey is a customer mapping's key.
type customerKey struct{ source, customer string }

// maxStatusReads is how many stored customer statuses lastSuccesses reads
// one by one; for more it reads them all in one query.
const maxStatusReads = 20

// lastSuccesses returns the stored LastSuccess of the customers keys. A
// pass needs it only for the customers that do not succeed (or all, in a
// dry run), so that at 20,000 customers a pass in which every one
// succeeds reads none.
func (e *Engine) lastSuccesses(keys []customerKey) map[customerKey]time.Time {
	out := make(map[customerKey]time.Time, len(keys))
	if len(keys) == 0 {
		return out
	}
	var err error
	if len(keys) <= maxStatusReads {
		for _, k := range keys {
			var cs state.CustomerStatus
			var ok bool
			if cs, ok, err = e.db.CustomerStatus(k.source, k.customer); err != nil {
				break
			} else if ok {
				out[k] = cs.LastSuccess
			}
		}
	} else {
		want := make(map[customerKey]bool, len(keys))
		for _, k := range keys {
			want[k] = true
		}
		var all []state.CustomerStatus
		if all, err = e.db.CustomerStatuses(); err == nil {
			for _, cs := range all {
				if k := (customerKey{cs.Source, cs.CustomerID}); want[k] {
					out[k] = cs.LastSuccess
				}
			}
		}
	}
	if err != nil {
		e.logger.Warn("Could not read the stored customer statuses; last success times restart from this pass", "err", err)
		return map[customerKey]time.Time{}
	}
	return out
}

func runResult(statuses []state.CustomerStatus) string {
	failed, other := 0, 0
	for _, cs := range statuses {
		switch cs.Result {
		case state.CustomerFailed:
			failed++
		case state.CustomerSkipped:
			other++
		}
	}
	switch {
	case failed > 0 && failed == len(statuses):
		return state.RunFailure
	case failed > 0 || other > 0:
		return state.RunPartial
	default:
		return state.RunSuccess
	}
}

// Why a customer's lines were skipped, as its status says.
const (
	skipReasonBudget        = "the PSA's hourly API budget reached the reserve"
	skipReasonBudgetUnknown = "the PSA's hourly API budget could not be read"
	skipReasonThrottled     = "the PSA refused a write of the pass for its rate limit"
	skipReasonCancelled     = "the pass was cancelled before their writes"
)

// stopReasons says why a pass stopped writing or reading before the end
// (StopReasons), from what failureSummary reports: none for a pass that
// ended by itself.
func stopReasons(statuses []state.CustomerStatus, stopped *writesStoppedError, readsStopped *readsStoppedError) []string {
	var reasons []string
	if readsStopped != nil {
		reasons = append(reasons, StopReadsFailed)
	}
	if stopped != nil {
		reasons = append(reasons, StopWritesFailed)
	}
	budget, unknown, throttled := false, false, false
	for _, cs := range statuses {
		if cs.Result == state.CustomerSkipped {
			budget = budget || strings.Contains(cs.Error, skipReasonBudget)
			unknown = unknown || strings.Contains(cs.Error, skipReasonBudgetUnknown)
			throttled = throttled || strings.Contains(cs.Error, skipReasonThrottled)
		}
	}
	if budget {
		reasons = append(reasons, StopBudgetReserve)
	}
	if unknown {
		reasons = append(reasons, StopBudgetUnknown)
	}
	if throttled {
		reasons = append(reasons, StopRateLimited)
	}
	return reasons
}

// failureSummary says how many customers of a pass failed or were not
// fully written, and why where the pass knows one reason for all: the PSA's
// failures stopped the writes (stopped) or the reads (readsStopped), or
// every customer failed with the same cause after the contract it names
// (the credentials refused, a read of every contract failed).
func failureSummary(statuses []state.CustomerStatus, stopped *writesStoppedError, readsStopped *readsStoppedError) string {
	var failed, skipped, errs []string
	budget, unknown, throttled, cancelled, undated := false, false, false, false, false
	for _, cs := range statuses {
		switch cs.Result {
		case state.CustomerFailed:
			failed = append(failed, cs.CustomerID)
			errs = append(errs, cs.Error)
		case state.CustomerSkipped:
			skipped = append(skipped, cs.CustomerID)
			budget = budget || strings.Contains(cs.Error, skipReasonBudget)
			unknown = unknown || strings.Contains(cs.Error, skipReasonBudgetUnknown)
			throttled = throttled || strings.Contains(cs.Error, skipReasonThrottled)
			cancelled = cancelled || strings.Contains(cs.Error, skipReasonCancelled)
			undated = undated || strings.Contains(cs.Error, undatedReason)
		}
	}
	var parts []string
	if len(failed) > 0 {
		summary := fmt.Sprintf("%d of %d customers failed", len(failed), len(statuses))
		switch {
		case readsStopped != nil:
			summary += fmt.Sprintf("; reads stopped: the PSA refused the reads of %d contracts in a row with the same server error or answer, the last with: %v", readsStopped.n, readsStopped.last)
		case stopped != nil:
			summary += fmt.Sprintf("; writes stopped: the PSA failed the writes to %d contracts in a row, the last with: %v", stopped.n, stopped.last)
		case len(failed) > 1 && len(failed) == len(statuses):
			if cause := commonCause(errs); cause != "" {
				summary += ": " + cause
			}
		}
		parts = append(parts, summary)
	}
	if len(skipped) > 0 {
		var whys []string
		if budget || (!unknown && !throttled && !cancelled && !undated) {
			whys = append(whys, "API budget reserve reached")
		}
		if undated {
			whys = append(whys, "the month has ended: ConnectWise PSA's undated quantities are set by hand (see the customers' hints)")
		}
		if unknown {
			whys = append(whys, "API budget could not be read")
		}
		if throttled {
			whys = append(whys, "PSA rate limit")
		}
		if cancelled {
			whys = append(whys, "pass cancelled")
		}
		parts = append(parts, fmt.Sprintf("%d customers not fully written (%s)", len(skipped), strings.Join(whys, ", ")))
	}
	return strings.Join(parts, "; ")
}

// commonCause returns the end that errs have in common, from the start of
// a cause (right after a ": " in each), or "" when they have none: the
// cause of failures that differ only in the contract each names.
func commonCause(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	cause := errs[0]
	for _, s := range errs[1:] {
		n := 0
		for n < len(cause) && n < len(s) && cause[len(cause)-1-n] == s[len(s)-1-n] {
			n++
		}
		cause = cause[len(cause)-n:]
	}
	for {
		atCause := true
		for _, s := range errs {
			atCause = atCause && strings.HasSuffix(s[:len(s)-len(cause)], ": ")
		}
		if atCause {
			return cause
		}
		i := strings.Index(cause, ": ")
		if i < 0 {
			return ""
		}
		cause = cause[i+2:]
	}
}

// recordRun updates the run metrics. Dry runs never call it, so a switched
// off integration does not look like a healthy one.
func (e *Engine) recordRun(run state.Run, started time.Time, counts map[string]int) {
	m := e.metrics
	if m == nil {
		return
	}
	m.RunsTotal.WithLabelValues(run.Result).Inc()
	end := run.Finished
	if end.IsZero() {
		end = e.now()
	}
	// Only a pass over every customer moves the timestamps: a "sync now"
	// for one customer must neither hide that the others are stale nor,
	// by succeeding after a failed full pass, look like a failure. A
	// re-run of the month that ended does not either: its success must
	// not hide that the current month's last pass failed (its result is
	// in the run, runs_total and the answer to whoever asked for it).
	if run.Customer == "" && !e.RanEarlierPeriod(run) {
		m.setLastRunResult(run.Result)
		m.LastRunTimestamp.Set(float64(end.UnixNano()) / 1e9)
		if run.Result == state.RunSuccess {
			m.LastSuccessTimestamp.Set(float64(end.UnixNano()) / 1e9)
		}
	}
	// Any pass over all customers is the last of its period, for
	// psa_sync_ended_period_last_run_result: the month's scheduled
	// passes, one caught up after it ended and a re-run of it alike.
	if run.Customer == "" {
		m.recordPeriodResult(run)
	}
	m.RunDuration.Observe(end.Sub(started).Seconds())
	for _, o := range LineOutcomes {
		if n := counts[o]; n > 0 {
			m.LinesTotal.WithLabelValues(o).Add(float64(n))
		}
	}
}

// recordUnmapped sets the unmapped gauges from a plan, counts the unmapped
// items the last pass did not have, and keeps the unmapped usage in the
// state database so that a restart restores them.
func (e *Engine) recordUnmapped(doc *export.Document, runID int64, ps *pass, customer string) {
	p := ps.plan
	u := p.Unmapped
	if u.OrphanedUnread && customer == "" && e.db != nil {
		// The ledger could not be read for orphaned lines: the lines the
		// last pass listed still bill as far as anyone knows.
		var prev UnmappedReport
		if _, err := e.db.Snapshot(SnapshotUnmapped, &prev); err != nil {
			e.logger.Warn("Could not read the last pass's unmapped usage; its orphaned lines are not kept", "err", err)
		}
		u.Orphaned = prev.Unmapped.Orphaned
	}
	if customer != "" && e.db != nil {
		// A pass for one customer sees only that customer's silence: the
		// others' stay as the last pass found them.
		var prev UnmappedReport
		if _, err := e.db.Snapshot(SnapshotUnmapped, &prev); err != nil {
			e.logger.Warn("Could not read the last pass's unmapped usage; the customers it found unreported are not kept", "err", err)
		}
		u.Unreported = nil
		for _, c := range prev.Unmapped.Unreported {
			if c.CustomerID != customer {
				u.Unreported = append(u.Unreported, c)
			}
		}
		u.Unreported = append(u.Unreported, p.Unmapped.Unreported...)
		u.InactiveServices = nil
		for _, l := range prev.Unmapped.InactiveServices {
			if l.CustomerID != customer {
				u.InactiveServices = append(u.InactiveServices, l)
			}
		}
		u.InactiveServices = append(u.InactiveServices, p.Unmapped.InactiveServices...)
		u.Orphaned = nil
		for _, l := range prev.Unmapped.Orphaned {
			if l.CustomerID != customer || p.Unmapped.OrphanedUnread {
				u.Orphaned = append(u.Orphaned, l)
			}
		}
		u.Orphaned = append(u.Orphaned, p.Unmapped.Orphaned...)
	}
	if e.db != nil && p.Period.Start(nil).Before(e.period(e.now().In(e.loc)).Start(nil)) {
		// A pass of the month that has ended (a re-run with -period, a
		// scheduled pass caught up after midnight) reads the ledger as
		// of that month: the lines psa-syncd set since would drop off
		// the list, and the gauge with them, and others show the units
		// of that month. Orphaned lines are what bills now: the list the
		// last pass kept stands (this pass's, before any pass was kept).
		var prev UnmappedReport
		if _, err := e.db.Snapshot(SnapshotUnmapped, &prev); err != nil {
			e.logger.Warn("Could not read the last pass's unmapped usage; its orphaned lines are not kept", "err", err)
		} else if !prev.Time.IsZero() {
			u.Orphaned, u.OrphanedUnread = prev.Unmapped.Orphaned, prev.Unmapped.OrphanedUnread
		}
	}
	e.setUnmapped(u)
	if e.db != nil {
		e.doubtListed(doc, e.src.Name(), u.Orphaned, p.EffectiveDate)
		e.countNewUnmapped(u)
		rep := UnmappedReport{Time: e.now().UTC(), RunID: runID, Period: p.Period, Source: e.src.Name(), Unmapped: u, Synced: ps.synced}
		if err := e.db.PutSnapshot(SnapshotUnmapped, rep); err != nil {
			e.logger.Warn("Could not record the unmapped usage", "err", err)
		}
	}
}

// countNewUnmapped adds to psa_sync_unmapped_new_total, by kind, the
// unmapped items of u that the last pass's stored unmapped usage does not
// have (all of them before the first pass): a new unmapped product that
// replaces another leaves psa_sync_unmapped as it was, but is new here.
// The totals are kept in the state database (written only when there are
// new items), so that a restart continues them.
func (e *Engine) countNewUnmapped(u Unmapped) {
	var prev UnmappedReport
	if _, err := e.db.Snapshot(SnapshotUnmapped, &prev); err != nil {
		e.logger.Warn("Could not read the last pass's unmapped usage; this pass's new unmapped usage is not counted", "err", err)
		return
	}
	was, is := unmappedKeys(prev.Unmapped), unmappedKeys(u)
	added := map[string]int{}
	for kind, keys := range is {
		for k := range keys {
			if !was[kind][k] {
				added[kind]++
			}
		}
	}
	if len(added) == 0 {
		return
	}
	e.metrics.addUnmappedNew(added)
	totals := map[string]int64{}
	if _, err := e.db.Snapshot(snapshotUnmappedNew, &totals); err != nil {
		e.logger.Warn("Could not read the count of new unmapped usage; a restart restarts it", "err", err)
		return
	}
	for kind, n := range added {
		totals[kind] += int64(n)
	}
	if err := e.db.PutSnapshot(snapshotUnmappedNew, totals); err != nil {
		e.logger.Warn("Could not record the count of new unmapped usage; a restart restarts it", "err", err)
	}
}

// unmappedKeys returns the unmapped items of u by kind (UnmappedKinds):
// customers by id, products, and usage with no customer by product.
func unmappedKeys(u Unmapped) map[string]map[string]bool {
	out := map[string]map[string]bool{"customer": {}, "product": {}, "unassigned": {}}
	for _, c := range u.Customers {
		out["customer"][c.CustomerID] = true
	}
	for _, p := range u.Products {
		out["product"][p.Product] = true
	}
	for _, c := range u.UnreadableCustomers {
		out["customer"][c] = true
	}
	for _, p := range u.UnreadableProducts {
		out["product"][p] = true
	}
	for _, r := range u.Unassigned {
		out["unassigned"][r.Product] = true
	}
	return out
}

func (e *Engine) setUnmapped(u Unmapped) {
	if m := e.metrics; m != nil {
		m.Unmapped.WithLabelValues("customer").Set(float64(len(u.Customers) + len(u.UnreadableCustomers)))
		m.Unmapped.WithLabelValues("product").Set(float64(len(u.Products) + len(u.UnreadableProducts)))
		m.Unmapped.WithLabelValues("unassigned").Set(float64(len(u.Unassigned)))
		byVendor := map[string]int{}
		for _, c := range u.Unreported {
			v := c.Vendor
			if v == "" {
				v = VendorUnknown
			}
			byVendor[v]++
		}
		for _, v := range UnreportedVendors {
			m.CustomersUnreported.WithLabelValues(v).Set(float64(byVendor[v]))
		}
		m.LinesOnInactiveServices.Set(float64(len(u.InactiveServices)))
	}
	e.setOrphaned(u.Orphaned)
}

// setOrphaned sets psa_sync_orphaned_lines, by reason, to the lines of
// orphaned.
func (e *Engine) setOrphaned(orphaned []OrphanedLine) {
	if m := e.metrics; m != nil {
		byReason := map[string]int{}
		for _, l := range orphaned {
			byReason[l.Reason]++
		}
		for _, r := range OrphanReasons {
			m.OrphanedLines.WithLabelValues(r).Set(float64(byReason[r]))
		}
	}
}

// RecordCustomers sets the customer gauges (customers by status, held
// lines and since when) from the stored statuses of doc's customers with
// usage sync on, as a pass for one customer does, and drops from
// psa_sync_unmapped and psa_sync_contracts_ending what doc now maps
// (recordMapped); the daemon calls it when a new export is loaded.
func (e *Engine) RecordCustomers(doc *export.Document) {
	e.recordCustomers(doc, nil)
	e.recordMapped(doc)
}

// recordMapped sets psa_sync_unmapped and psa_sync_contracts_ending from
// what the last pass stored, less what doc now maps (stillUnmapped,
// stillEnding): a customer or product mapped, or a renewal named, and
// applied must resolve its alert now, not at the next pass over all
// customers, a month later on a monthly schedule. The stored report and
// list are left as the pass wrote them: the next pass compares its new
// unmapped usage with them.
func (e *Engine) recordMapped(doc *export.Document) {
	if e.metrics == nil || e.db == nil {
		return
	}
	var rep UnmappedReport
	if ok, err := e.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
		e.logger.Warn("Could not read the last pass's unmapped usage; what the new export maps counts as unmapped until the next pass", "err", err)
	} else if ok {
		e.setUnmapped(e.stillUnmapped(rep, doc))
	}
	var ending []ContractEnding
	if ok, err := e.db.Snapshot(snapshotContractsEndingList, &ending); err != nil {
		e.logger.Warn("Could not read the last pass's mapped contracts ending; the new export's renewals count as ending until the next pass", "err", err)
	} else if ok {
		e.setEndingGauge(stillEnding(ending, doc))
	}
}

// StillUnmapped returns rep less the customers and products that doc now
// maps (stillUnmapped): the unmapped usage psa_sync_unmapped counts once
// doc has loaded, which GET /api/v1/unmapped and the status page list, so
// that neither shows what the operator has just mapped until the next pass.
func (e *Engine) StillUnmapped(rep UnmappedReport, doc *export.Document) UnmappedReport {
	rep.Unmapped = e.stillUnmapped(rep, doc)
	return rep
}

// stillUnmapped returns the unmapped usage of rep as doc now maps it for
// rep's source: a customer or product doc maps leaves the unmapped lists
// (a pass counts it as unmapped neither with sync on nor off), and the
// sync-off lists follow the mappings' usage_sync and sync_enabled, as a
// pass would list them: one whose mapping has sync switched on leaves
// them, one newly mapped with sync off joins them, and one whose mapping
// was removed moves to the unmapped lists; so does a product the pass
// billed (rep.Synced) whose mapping has sync switched off, or was removed. What no mapping bills otherwise
// stays until the next pass: usage with no customer, unreported customers,
// lines on inactive services and orphaned lines; the lines of a customer
// whose mapping was removed still bill until a pass lists them as
// orphaned.
func (e *Engine) stillUnmapped(rep UnmappedReport, doc *export.Document) Unmapped {
	src := rep.Source
	if src == "" && e.src != nil {
		// A report a psa-syncd older than its Source kept: its ids are
		// the source's the engine reads.
		src = e.src.Name()
	}
	u := rep.Unmapped
	if src == "" {
		return u
	}
	// The mapped ids, true when their mapping syncs usage.
	customers, products := map[string]bool{}, map[string]bool{}
	for _, cm := range doc.CustomerMappings {
		if cm.Source == src {
			customers[cm.CustomerID] = cm.UsageSync
		}
	}
	for _, pm := range doc.ProductMappings {
		if pm.Source == src {
			products[pm.Product] = pm.SyncEnabled
		}
	}
	customerOf := func(c UnmappedCustomer) string { return c.CustomerID }
	productOf := func(p UnmappedProduct) string { return p.Product }
	u.Customers, u.ZeroCustomers, u.SyncOffCustomers = remapped(customers, customerOf, u.Customers, u.ZeroCustomers, u.SyncOffCustomers, nil,
		func(c UnmappedCustomer) bool { return c.Quantity == 0 })
	u.Products, u.ZeroProducts, u.SyncOff = remapped(products, productOf, u.Products, u.ZeroProducts, u.SyncOff, rep.Synced,
		func(p UnmappedProduct) bool { return p.Quantity == 0 })
	u.UnreadableCustomers = slices.DeleteFunc(slices.Clone(u.UnreadableCustomers), func(id string) bool { _, ok := customers[id]; return ok })
	u.UnreadableProducts = slices.DeleteFunc(slices.Clone(u.UnreadableProducts), func(id string) bool { _, ok := products[id]; return ok })
	return u
}

// remapped sorts a pass's unmapped, zero (unmapped with quantity 0),
// sync-off and synced (mapped with sync on, if the pass kept them) lists
// of customers or products anew by mapped, the ids a newly loaded export
// maps, true when their mapping has sync on: mapped with sync on is in
// none (its usage bills at the next pass), mapped with sync off is in the
// sync-off list, and not mapped is in the unmapped list, or the zero one
// when its quantity is 0 (zero tells). The lists come back sorted by id,
// as a pass sorts them.
func remapped[T any](mapped map[string]bool, id func(T) string, unmapped, zeros, off, synced []T, zero func(T) bool) (_, _, _ []T) {
	// Empty, not nil, where the pass's list was: JSON keeps [] for null.
	newUnmapped, newZeros, newOff := unmapped[:0:0], zeros[:0:0], off[:0:0]
	for _, x := range slices.Concat(unmapped, zeros, off, synced) {
		switch on, ok := mapped[id(x)]; {
		case ok && on:
		case ok:
			newOff = append(newOff, x)
		case zero(x):
			newZeros = append(newZeros, x)
		default:
			newUnmapped = append(newUnmapped, x)
		}
	}
	byID := func(a, b T) int { return strings.Compare(id(a), id(b)) }
	for _, l := range [][]T{newUnmapped, newZeros, newOff} {
		slices.SortFunc(l, byID)
	}
	return newUnmapped, newZeros, newOff
}

// recordCustomers sets the customers gauge from the stored statuses of the
// customers that the export still maps with usage sync on, so a customer
// whose mapping is removed stops counting (and its alert clears). passed,
// when not nil, holds the statuses a pass over all those customers has
// just stored: they are used instead of reading them back.
func (e *Engine) recordCustomers(doc *export.Document, passed []state.CustomerStatus) {
	m := e.metrics
	if m == nil {
		return
	}
	type key struct{ source, customer string }
	all := passed
	var syncing map[key]bool
	if all == nil {
		var err error
		if all, err = e.db.CustomerStatuses(); err != nil {
			e.logger.Error("Could not read customer statuses for metrics", "err", err)
			return
		}
		syncing = make(map[key]bool, len(doc.CustomerMappings))
		for _, cm := range doc.CustomerMappings {
			if cm.UsageSync && (e.src == nil || cm.Source == e.src.Name()) {
				syncing[key{cm.Source, cm.CustomerID}] = true
			}
		}
	}
	counts := map[string]int{}
	held := 0
	var prevSince map[string]time.Time
	if _, err := e.db.Snapshot(snapshotHeldSince, &prevSince); err != nil {
		e.logger.Warn("Could not read since when lines are held", "err", err)
	}
	since := map[string]time.Time{}
	var oldest time.Time
	for _, cs := range all {
		if syncing != nil && !syncing[key{cs.Source, cs.CustomerID}] {
			continue
		}
		r := cs.Result
		if r == state.CustomerPartial {
			r = state.CustomerFailed
		}
		counts[r]++
		if cs.Held == 0 {
			continue
		}
		held += cs.Held
		k := cs.Source + "/" + cs.CustomerID
		t, ok := prevSince[k]
		if !ok {
			t = cs.LastAttempt
		}
		since[k] = t
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	for _, s := range CustomerStatuses {
		m.Customers.WithLabelValues(s).Set(float64(counts[s]))
	}
	m.HeldLines.Set(float64(held))
	if oldest.IsZero() {
		m.HeldSince.Set(0)
	} else {
		m.HeldSince.Set(unixSeconds(oldest))
	}
	if err := e.db.PutSnapshot(snapshotHeldSince, since); err != nil {
		e.logger.Warn("Could not record since when lines are held", "err", err)
	}
}

// Names of the state snapshots the engine keeps.
const (
	// snapshotHeldSince maps source/customer_id to the time since which
	// the customer has had lines held for review without a break.
	snapshotHeldSince = "held_since"
	// SnapshotUnmapped is the UnmappedReport of the last pass.
	SnapshotUnmapped = "unmapped"
	// snapshotUnmappedNew maps a kind of unmapped item to the total of
	// psa_sync_unmapped_new_total.
	snapshotUnmappedNew = "unmapped_new_total"
	// snapshotContractsEnding maps a when of psa_sync_contracts_ending to
	// its value at the last pass over all customers.
	snapshotContractsEnding = "contracts_ending"
	// snapshotContractsEndingList is the Plan.ContractsEnding of the last
	// pass over all customers that counted them ([]ContractEnding).
	snapshotContractsEndingList = "contracts_ending_list"
	// snapshotUsageMissing is psa_sync_last_run_usage_missing as the last
	// pass over all customers of its period set it (a bool).
	snapshotUsageMissing = "usage_missing"
)

// UnmappedReport is the usage the last pass could not bill, as kept in the
// state database across restarts (GET /api/v1/unmapped).
type UnmappedReport struct {
	// Time is when the pass computed it; zero before the first pass.
	Time   time.Time     `json:"time,omitzero"`
	RunID  int64         `json:"run_id,omitempty"`
	Period source.Period `json:"period,omitzero"`
	// Source is the name of the usage source the pass read (sophos, or a
	// file source's name): the source of the mappings that would bill
	// the ids listed, which are that source's ids. Empty before the first
	// pass and in a report a psa-syncd older than the field kept, which
	// its next pass replaces; a client tells it from a source by that.
	Source   string   `json:"source,omitempty"`
	Unmapped Unmapped `json:"unmapped"`
	// Synced lists the products mapped with sync on that had usage at the
	// pass, each with its customers and quantity as Unmapped.SyncOff would
	// list it: a product whose mapping the export then switches off, or
	// removes, leaves it for SyncOff, or Products, when the export loads
	// (stillUnmapped), not at the next pass, a month later on a monthly
	// schedule. A report a psa-syncd older than the field kept has none,
	// and such a product waits for the next pass, as before.
	Synced []UnmappedProduct `json:"synced,omitempty"`
}

// RestoreMetrics sets the gauges that describe past passes from the state
// database: the last run and last success timestamps (of passes that wrote,
// not dry runs), the result of each recent billing month's last pass
// (psa_sync_ended_period_last_run_result), whether the last pass had usage
// to bill (psa_sync_last_run_usage_missing), the unmapped usage of the last
// pass and the count of new unmapped usage (psa_sync_unmapped_new_total,
// never lowered), and the customers by status and their held lines for the
// customers doc maps with usage sync on. Call it at start-up, so that a restart does not make the
// last success look like it never happened. doc may be nil (the customers
// gauge is then left alone); otherwise the unmapped usage and the
// contracts ending leave out what doc now maps (stillUnmapped,
// stillEnding), as when it was loaded.
func (e *Engine) RestoreMetrics(doc *export.Document) error {
	if e.metrics == nil || e.db == nil {
		return nil
	}
	runs, err := e.db.Runs(0)
	if err != nil {
		return fmt.Errorf("daemon: reading runs: %w", err)
	}
	// The result of each month's last pass over all customers, a re-run
	// of the month that ended included: the runs are newest first.
	periods := map[string]state.Run{}
	for _, r := range runs {
		if r.DryRun || r.Customer != "" || r.Finished.IsZero() || r.Result == state.RunRunning || r.Period == "" {
			continue
		}
		if _, ok := periods[r.Period]; !ok {
			periods[r.Period] = r
		}
	}
	e.metrics.restorePeriodResults(periods)
	var lastRun, lastSuccess time.Time
	for _, r := range runs { // newest first
		if r.DryRun || r.Customer != "" || r.Finished.IsZero() || r.Result == state.RunRunning || e.RanEarlierPeriod(r) {
			continue
		}
		if lastRun.IsZero() {
			lastRun = r.Finished
			e.metrics.setLastRunResult(r.Result)
		}
		if r.Result == state.RunSuccess {
			lastSuccess = r.Finished
			break
		}
	}
	if !lastRun.IsZero() {
		e.metrics.LastRunTimestamp.Set(float64(lastRun.UnixNano()) / 1e9)
	}
	if !lastSuccess.IsZero() {
		e.metrics.LastSuccessTimestamp.Set(float64(lastSuccess.UnixNano()) / 1e9)
	}
	var surge surgeVerdict
	if _, err := e.db.Snapshot(snapshotSurge, &surge); err != nil {
		return fmt.Errorf("daemon: reading the lines held for a surge: %w", err)
	}
	e.metrics.setSurgeHeld(len(surge.Held))
	var rep UnmappedReport
	if ok, err := e.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
		return fmt.Errorf("daemon: reading the last unmapped usage: %w", err)
	} else if ok {
		u := rep.Unmapped
		if doc != nil {
			u = e.stillUnmapped(rep, doc)
		}
		e.setUnmapped(u)
	}
	var totals map[string]int64
	if _, err := e.db.Snapshot(snapshotUnmappedNew, &totals); err != nil {
		return fmt.Errorf("daemon: reading the count of new unmapped usage: %w", err)
	}
	e.metrics.restoreUnmappedNew(totals)
	var ending map[string]int
	if _, err := e.db.Snapshot(snapshotContractsEnding, &ending); err != nil {
		return fmt.Errorf("daemon: reading the count of mapped contracts ending: %w", err)
	}
	var list []ContractEnding
	if ok, err := e.db.Snapshot(snapshotContractsEndingList, &list); err != nil {
		return fmt.Errorf("daemon: reading the mapped contracts ending: %w", err)
	} else if ok && doc != nil {
		ending = stillEnding(list, doc)
	}
	e.setEndingGauge(ending)
	var missing bool
	if _, err := e.db.Snapshot(snapshotUsageMissing, &missing); err != nil {
		return fmt.Errorf("daemon: reading whether the last pass had usage to bill: %w", err)
	}
	e.metrics.UsageMissing.Set(boolFloat(missing))
	if doc != nil {
		e.recordCustomers(doc, nil)
	}
	return nil
}

// recordUsageMissing sets psa_sync_last_run_usage_missing after run, a
// pass that wrote, to missing: whether its usage set no mapped line. As
// psa_sync_last_run_result, only passes over all customers of the current
// period set it. A pass that failed sets 0 whatever it read: it did not
// find the usage missing, it did not get to an end, and PsaSyncFailing
// speaks for it. A 1 kept from the pass before would fire
// PsaSyncUsageMissing beside PsaSyncFailing for a source that is down, and
// silence PsaSyncStale for as long as it stays down. Kept for a restart,
// which would otherwise show the partial result it restores with
// PsaSyncPartial instead of PsaSyncUsageMissing.
func (e *Engine) recordUsageMissing(run state.Run, missing bool) {
	if e.metrics == nil || run.Customer != "" || e.RanEarlierPeriod(run) {
		return
	}
	missing = missing && run.Result != state.RunFailure
	e.metrics.UsageMissing.Set(boolFloat(missing))
	e.storeUsageMissing(missing)
}

// recordRepeatedRows sets psa_sync_usage_repeated_rows after run, a pass
// that wrote, to the products of a customer on several rows in its usage
// (problems), as recordUsageMissing does for the passes it counts: under
// duplicate_rows: sum they are only notices, which no other metric shows,
// and a file that starts repeating rows (a sheet pasted twice) bills them.
func (e *Engine) recordRepeatedRows(run state.Run, problems []source.Problem) {
	if e.metrics == nil || run.Customer != "" || e.RanEarlierPeriod(run) {
		return
	}
	n := 0
	for _, pr := range problems {
		if pr.Repeated {
			n++
		}
	}
	e.metrics.UsageRepeatedRows.Set(float64(n))
}

// storeUsageMissing keeps psa_sync_last_run_usage_missing for a restart
// (snapshotUsageMissing), written only when it changes: a pass that writes
// no line commits as little as it can.
func (e *Engine) storeUsageMissing(missing bool) {
	if e.db == nil {
		return
	}
	var stored bool
	if _, err := e.db.Snapshot(snapshotUsageMissing, &stored); err == nil && stored == missing {
		return
	}
	if err := e.db.PutSnapshot(snapshotUsageMissing, missing); err != nil {
		e.logger.Warn("Could not record whether the pass had usage to bill", "err", err)
	}
}

// settlingError is the error of a line whose intent in waits until st.at
// for its write to settle (see Reconcile).
func settlingError(in state.Intent, st settle) error {
	at := st.at
	shows := fmt.Sprintf("still shows %d,", in.Before)
	if st.shows != in.Before {
		// Someone else changed the line meanwhile; the write, a change
		// from in.Before, may still be applied on top of that.
		shows = fmt.Sprintf("shows %d, changed by someone else since %d,", st.shows, in.Before)
	}
	if at.Equal(farFuture) {
		return &hintedError{
			err: fmt.Errorf("%w (intent %d): the PSA %s and the write of %d may still arrive: the pass that sent it (run %d) is still recorded as running",
				errUnsettled, in.ID, shows, in.After, in.RunID),
			hint: fmt.Sprintf("another psa-syncd process may still be sending run %d's writes; the line is re-read and written once that run is marked interrupted "+
				"(when an instance becomes the active one), so it is never posted twice", in.RunID),
		}
	}
	t := at.UTC().Format(time.RFC3339)
	return &hintedError{
		err: fmt.Errorf("%w (intent %d): the PSA %s and the write of %d may still arrive until %s",
			errUnsettled, in.ID, shows, in.After, t),
		hint: fmt.Sprintf("an earlier write of this line went unanswered and may still reach the PSA (policies.settle_time); psa-syncd re-reads the line at %s "+
			"(the daemon queues a pass for then; after a one-off sync, run it again then) and then writes only what the line still lacks, so it is never posted twice", t),
	}
}

// usageMissingWhy returns the problem the plan recorded for usage that
// sets no mapped line (ErrUsageMissing), without its period's text, or a
// generic reason when there is none (missing_usage: keep).
func usageMissingWhy(problems []source.Problem) string {
	for _, pr := range problems {
		if errors.Is(pr.Err, ErrUsageMissing) {
			return pr.Err.Error()
		}
	}
	return "no usage in the report feeds a mapped line"
}
