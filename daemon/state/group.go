package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxGroup bounds the operations one group commit holds, so that a long
// queue becomes several transactions that each finish well inside the
// query timeout.
const maxGroup = 1000

// errClosed is returned for an operation submitted after Close.
var errClosed = errors.New("state: the state database is closed")

// errFenceFailed is part of the error of a group whose transaction failed
// on the connection that holds the leadership lock: the lock's session
// may be gone, and the watch reports the loss at its next check.
var errFenceFailed = errors.New("the connection that holds the leadership lock failed, so this instance may no longer be the active one")

// groupOp is one caller's part of a group commit: run does its statements
// in the group's transaction and done receives its outcome once that
// transaction is committed or has failed.
type groupOp struct {
	// what names the operation in errors ("recording an intent").
	what string
	// fenced marks an operation that, on PostgreSQL, only the holder of
	// the leadership lock may commit (opening intents, ticket records).
	fenced bool
	// led marks an operation of a pass (a run's record, customer
	// statuses) that, on PostgreSQL, once this process has led, only the
	// holder of the leadership lock may commit: an instance that lost the
	// lock would otherwise commit it through the pool, over the records of
	// the instance that took over. Before this process first led (a
	// standby's dry run) it goes through the pool, as on SQLite.
	led bool
	// deferred marks an operation whose caller does not wait for it.
	deferred bool
	// run executes the operation's statements in tx (nil: none). An error made with
	// refuse is this operation's own outcome (it wrote nothing, and the
	// others of the group commit as usual); any other error fails the
	// whole group.
	run  func(ctx context.Context, tx *sql.Tx) error
	done chan error
	// queued is true while the operation waits in the queue (guarded by
	// the committer's mu): until the committer takes it, its caller may
	// still withdraw it.
	queued bool
}

// refusal is the error of one operation of a group that wrote nothing and
// leaves the others unaffected, such as completing an intent that is
// already closed.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// Is makes a refusal match ErrRefused.
func (r refusal) Is(target error) bool { return target == ErrRefused }

func refuse(err error) error { return refusal{err} }

// maybeCommitted is the error of a COMMIT that got no answer from the
// server: the transaction may have been committed all the same.
type maybeCommitted struct{ err error }

func (m maybeCommitted) Error() string { return m.err.Error() }
func (m maybeCommitted) Unwrap() error { return m.err }

// Is makes a maybeCommitted match ErrMaybeCommitted.
func (m maybeCommitted) Is(target error) bool { return target == ErrMaybeCommitted }

// commitUnanswered reports whether err, a COMMIT's, leaves its outcome
// unknown: on PostgreSQL any failure but an ERROR the server gave (which
// rolled the transaction back) may come after the server committed it.
// SQLite's commit is local and says what became of it.
func (db *DB) commitUnanswered(err error) bool {
	if db.dialect != dialectPostgres {
		return false
	}
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr) || pgErr.Severity == "FATAL" || pgErr.Severity == "PANIC"
}

// deferDelay bounds how long a deferred operation waits for a group to
// join before it is committed in a group of its own.
const deferDelay = 200 * time.Millisecond

// committer turns the writes that callers submit concurrently into group
// commits: one goroutine takes every operation queued while the previous
// transaction was committing, runs them in one transaction and commits it
// once, so that N concurrent callers cost one fsync instead of N. A caller
// returns only when the transaction holding its operation has committed
// (nil, or its refusal) or failed (the failure, which every operation of
// that transaction gets). No timer holds a waiting caller back: a group is
// whatever queued up while the disk was busy.
//
// A deferred operation has no caller waiting for it: it joins the next
// group that a waiting caller causes, or is committed deferDelay after it
// was queued, or at sync and close. Its refusal or failure is kept for
// the next flush.
//
// The zero value is ready to use; the goroutine starts with the first
// operation and ends at close, after the queue is drained.
type committer struct {
	mu    sync.Mutex
	cond  *sync.Cond
	queue []*groupOp
	// waiting counts the operations in queue whose callers wait for them.
	waiting int
	// deferred counts the deferred operations queued or being committed;
	// due is set when the oldest queued one has waited deferDelay.
	deferred int
	due      bool
	timer    *time.Timer
	// errs holds the errors of deferred operations until flush.
	errs    []error
	running bool
	closed  bool
	stopped chan struct{}

	// delay, when set (by tests), replaces deferDelay.
	delay time.Duration
	// beforeGroup, when set (by tests), is called by the committer with
	// the number of operations it took, before it begins their
	// transaction.
	beforeGroup func(n int)
}

// enqueue adds o to the queue, starting the committer if need be. g.mu is
// held.
func (g *committer) enqueue(db *DB, o *groupOp) error {
	if g.closed {
		return errClosed
	}
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	o.queued = true
	g.queue = append(g.queue, o)
	if o.deferred {
		g.deferred++
		if g.timer == nil && !g.due {
			delay := deferDelay
			if g.delay > 0 {
				delay = g.delay
			}
			g.timer = time.AfterFunc(delay, g.expire)
		}
	} else {
		g.waiting++
	}
	if !g.running {
		g.running = true
		g.stopped = make(chan struct{})
		go g.loop(db)
	}
	// A deferred operation alone does not make the committer take a group
	// (see ready): waking it for each would cost a pass a context switch
	// per write for nothing.
	if g.ready() {
		g.cond.Signal()
	}
	return nil
}

// expire makes the queued deferred operations due.
func (g *committer) expire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.timer = nil
	if slices.ContainsFunc(g.queue, func(o *groupOp) bool { return o.deferred }) {
		g.due = true
		g.cond.Signal()
	}
}

// submit queues o and waits for its outcome. While o is still queued,
// the end of ctx withdraws it and returns ctx's error; once the committer
// has taken it, submit waits for the transaction's outcome (bounded by the
// query timeout), because a caller told "failed" must be able to rely on
// it: an intent reported as not opened must not be committed later.
func (g *committer) submit(ctx context.Context, db *DB, o *groupOp) error {
	o.done = make(chan error, 1)
	g.mu.Lock()
	err := g.enqueue(db, o)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if o.queued {
		for i, q := range g.queue {
			if q == o {
				g.queue = append(g.queue[:i], g.queue[i+1:]...)
				break
			}
		}
		o.queued = false
		g.waiting--
		g.mu.Unlock()
		return ctx.Err()
	}
	g.mu.Unlock()
	return <-o.done
}

// submitDeferred queues o without waiting for it.
func (g *committer) submitDeferred(db *DB, o *groupOp) error {
	o.deferred = true
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.enqueue(db, o)
}

// sync waits until every deferred operation queued before it has been
// committed or has failed. It returns the error of its own wait only.
func (g *committer) sync(ctx context.Context, db *DB) error {
	g.mu.Lock()
	pending := g.deferred
	g.mu.Unlock()
	if pending == 0 {
		return nil
	}
	// A waiting operation that writes nothing makes the committer take
	// the queue now; the groups are taken in order, so it returns after
	// those holding the deferred operations.
	return g.submit(ctx, db, &groupOp{what: "committing deferred writes"})
}

// flush syncs and returns the errors of the deferred operations since the
// last flush. When the sync's own operation failed with the group holding
// them (a full disk), their errors are returned, not kept: kept, they would
// be reported again, long after, by a later flush or by close.
func (g *committer) flush(ctx context.Context, db *DB) error {
	err := g.sync(ctx, db)
	g.mu.Lock()
	errs := g.errs
	g.errs = nil
	g.mu.Unlock()
	if len(errs) == 0 {
		return err
	}
	return errors.Join(errs...)
}

// deliver tells o its outcome.
func (g *committer) deliver(o *groupOp, err error) {
	if !o.deferred {
		o.done <- err
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deferred--
	if err != nil {
		g.errs = append(g.errs, err)
	}
}

// ready reports whether the committer should take a group now. g.mu is
// held.
func (g *committer) ready() bool {
	return g.waiting > 0 || (g.due && len(g.queue) > 0) || g.closed || len(g.queue) >= maxGroup
}

// loop commits groups until close.
func (g *committer) loop(db *DB) {
	defer close(g.stopped)
	for {
		g.mu.Lock()
		for !g.ready() {
			g.cond.Wait()
		}
		if len(g.queue) == 0 {
			g.mu.Unlock()
			return
		}
		// The callers of the group just committed were woken together and
		// are about to submit their next operations: let them, so that
		// those join this group rather than each making one of its own.
		g.mu.Unlock()
		runtime.Gosched()
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		group := make([]*groupOp, n)
		copy(group, g.queue)
		g.queue = append(g.queue[:0], g.queue[n:]...)
		for _, o := range group {
			o.queued = false
			if !o.deferred {
				g.waiting--
			}
		}
		if !slices.ContainsFunc(g.queue, func(o *groupOp) bool { return o.deferred }) {
			g.due = false
			if g.timer != nil {
				g.timer.Stop()
				g.timer = nil
			}
		}
		hook := g.beforeGroup
		g.mu.Unlock()
		if hook != nil {
			hook(n)
		}
		db.commitGroup(group)
	}
}

// close commits what is queued, stops the committer and refuses further
// operations. It returns the errors of deferred operations not yet
// flushed.
func (g *committer) close() error {
	g.mu.Lock()
	g.closed = true
	running, stopped := g.running, g.stopped
	if g.cond != nil {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
	if running {
		<-stopped
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	errs := g.errs
	g.errs = nil
	return errors.Join(errs...)
}

// queued returns the number of operations waiting for the committer.
func (g *committer) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// commitGroup runs group in one transaction and tells every operation its
// outcome. On PostgreSQL the transaction goes through the connection that
// holds the leadership lock while this instance has it; without the lock,
// the fenced operations are refused with ErrNotLeader and the others are
// committed through the pool.
func (db *DB) commitGroup(group []*groupOp) {
	ctx, cancel := db.ctx()
	defer cancel()
	if err := db.writes.prepare(ctx, db); err != nil {
		for _, o := range group {
			db.group.deliver(o, db.wrap(o.what, err))
		}
		return
	}
	begin, viaFence := db.sql.BeginTx, false
	var cancelled func() bool
	// stopCancels stops the cancels of a transaction through the lock's
	// session (cancelAfter); safe to call more than once.
	stopCancels := func() {}
	if db.fenced {
		db.fenceMu.Lock()
		defer db.fenceMu.Unlock()
		if db.fence != nil {
			begin, viaFence = db.fence.BeginTx, true
			// The server, not the client's deadline, ends a transaction
			// whose statements wait too long in all.
			stopCancels, cancelled = db.cancelAfter(ctx, db.fenceSession, db.fenceCancel, transactionBound(db.timeout))
			defer stopCancels()
		} else {
			kept := group[:0]
			everLed := db.leaseTerm.Load() != 0
			for _, o := range group {
				if o.fenced || (o.led && everLed) {
					db.group.deliver(o, db.wrap(o.what, ErrNotLeader))
					continue
				}
				kept = append(kept, o)
			}
			group = kept
		}
	}
	if len(group) == 0 {
		return
	}
	// fail tells every operation of the group that it failed with err.
	// culprit, when not nil, is the operation whose statement failed: the
	// others are told that it failed their shared transaction, rather than
	// given its error as their own ("completing intent 59: appending the
	// ledger entry of intent 78: database or disk is full").
	fail := func(err error, culprit *groupOp) {
		// A statement the server refused (an ERROR, not a FATAL that ends
		// the session) says the connection works; any other failure
		// through the fence may mean that the lock is gone.
		var pgErr *pgconn.PgError
		if viaFence && (!errors.As(err, &pgErr) || pgErr.Severity == "FATAL" || pgErr.Severity == "PANIC") {
			err = fmt.Errorf("%w (%w)", err, errFenceFailed)
		} else if viaFence && cancelled() {
			err = fmt.Errorf("%w: the transaction's statements waited %s in all, for locks that another session holds "+
				"(maintenance: a VACUUM FULL, an ALTER TABLE, a LOCK TABLE); nothing of it was written", err, transactionBound(db.timeout))
		}
		for _, o := range group {
			oerr := err
			if culprit != nil && o != culprit {
				oerr = fmt.Errorf("the transaction it shared failed at %s: %w", culprit.what, err)
			}
			db.group.deliver(o, db.wrap(o.what, oerr))
		}
	}
	// end stops the cancels before the transaction's ROLLBACK or COMMIT,
	// whose statements wait for no lock: a cancel that reached the
	// ROLLBACK failed it, one that reached the COMMIT before it committed
	// left the session in a failed transaction, and pgx closes the
	// connection in both cases, which ended the lock's session and the
	// leadership. Stopped, they are over (stop waits for a request under
	// way), and one that reaches the idle session is ignored.
	end := func(commit bool) {
		stopCancels()
		if db.beforeEnd != nil {
			db.beforeEnd(commit)
		}
	}
	sent := monoNow()
	tx, err := begin(ctx, nil)
	if err != nil {
		fail(err, nil)
		return
	}
	outcome := make([]error, len(group))
	wrote := false
	for i, o := range group {
		if o.run == nil {
			continue
		}
		err := o.run(ctx, tx)
		var r refusal
		if errors.As(err, &r) {
			// Delivered as the refusal: it matches ErrRefused, and
			// through it what was refused.
			outcome[i] = err
			continue
		}
		if err != nil {
			end(false)
			_ = tx.Rollback()
			fail(err, o)
			return
		}
		wrote = true
	}
	if !wrote {
		// Nothing to commit: every operation was refused before writing,
		// or writes nothing.
		end(false)
		_ = tx.Rollback()
	} else {
		end(true)
		err := db.commit(tx)
		if err == nil && db.loseAnswer.Load() && slices.ContainsFunc(group, func(o *groupOp) bool { return o.fenced }) {
			db.loseAnswer.Store(false)
			err = maybeCommitted{errors.New("the connection was lost while the COMMIT was under way (LoseCommitAnswer)")}
		}
		if err != nil {
			if db.fenced && ctx.Err() != nil {
				err = fmt.Errorf("%w: %s", err, db.commitTimedOut())
			}
			if db.commitUnanswered(err) {
				err = maybeCommitted{err}
			}
			fail(err, nil)
			return
		}
		if viaFence {
			// The lock's session answered: the lease (CheckFence) runs
			// from when the transaction began.
			db.leaseAnswered.Store(sent)
		}
	}
	for i, o := range group {
		db.group.deliver(o, outcome[i])
	}
}

// commitTimedOut says why a PostgreSQL COMMIT may not finish within
// state.query_timeout, and what became of its transaction. It is not
// cancelled at the transaction bound as its statements are (a cancel that
// reaches it before it commits fails it, and pgx then closes the lock's
// connection), and waits for no lock: only for the server's disk, or for a
// synchronous standby that is gone (synchronous_standby_names). pgx then
// closes the connection, with a cancel request that ends the standby's
// wait: PostgreSQL commits the transaction locally, unreplicated, and shows
// it to the other sessions. It is reported failed all the same: the
// operator asked for commits that a standby confirmed, and no write to a
// PSA follows an intent that a failover may lose. Cancelled at the bound,
// its COMMIT would have succeeded, the unreplicated commit told only by a
// WARNING that database/sql does not pass on (audit-fence8, item 2).
func (db *DB) commitTimedOut() string {
	return fmt.Sprintf("the COMMIT did not finish within state.query_timeout (%s); a COMMIT waits for no lock, only for the server's disk "+
		"or, with synchronous replication (synchronous_standby_names), for a synchronous standby to confirm it (see pg_stat_replication); "+
		"PostgreSQL may have committed it locally, unreplicated; psa-syncd reports it failed", db.timeout)
}

// commit commits tx and counts it.
func (db *DB) commit(tx *sql.Tx) error {
	if err := tx.Commit(); err != nil {
		return err
	}
	db.commits.Add(1)
	return nil
}

// inSavepoint runs fn inside a savepoint of tx: when fn fails, what it
// wrote is undone and the transaction stays usable for the other
// operations of its group. An operation that writes several rows and may
// refuse after the first uses it, so that a refusal writes nothing.
func inSavepoint(ctx context.Context, tx *sql.Tx, fn func() error) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT op`); err != nil {
		return err
	}
	if err := fn(); err != nil {
		var r refusal
		if errors.As(err, &r) {
			if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT op`); rerr != nil {
				return rerr
			}
			if _, rerr := tx.ExecContext(ctx, `RELEASE SAVEPOINT op`); rerr != nil {
				return rerr
			}
		}
		return err
	}
	_, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT op`)
	return err
}
