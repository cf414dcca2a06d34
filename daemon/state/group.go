package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// maxGroup bounds the operations one group commit holds, so that a long
// queue becomes several transactions that each finish well inside the
// query timeout.
const maxGroup = 1000

// errClosed is returned for an operation submitted after Close.
var errClosed = errors.New("state: the state database is closed")

// groupOp is one caller's part of a group commit: run does its statements
// in the group's transaction and done receives its outcome once that
// transaction is committed or has failed.
type groupOp struct {
	// what names the operation in errors ("recording an intent").
	what string
	// fenced marks an operation that, on PostgreSQL, only the holder of
	// the leadership lock may commit (opening intents).
	fenced bool
	// run executes the operation's statements in tx. An error made with
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

func refuse(err error) error { return refusal{err} }

// committer turns the writes that callers submit concurrently into group
// commits: one goroutine takes every operation queued while the previous
// transaction was committing, runs them in one transaction and commits it
// once, so that N concurrent callers cost one fsync instead of N. A caller
// returns only when the transaction holding its operation has committed
// (nil, or its refusal) or failed (the failure, which every operation of
// that transaction gets). No timer holds a lone operation back: a group is
// whatever queued up while the disk was busy.
//
// The zero value is ready to use; the goroutine starts with the first
// operation and ends at close, after the queue is drained.
type committer struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*groupOp
	running bool
	closed  bool
	stopped chan struct{}

	// beforeGroup, when set (by tests), is called by the committer with
	// the number of operations it took, before it begins their
	// transaction.
	beforeGroup func(n int)
}

// submit queues o and waits for its outcome. While o is still queued,
// the end of ctx withdraws it and returns ctx's error; once the committer
// has taken it, submit waits for the transaction's outcome (bounded by the
// query timeout), because a caller told "failed" must be able to rely on
// it: an intent reported as not opened must not be committed later.
func (g *committer) submit(ctx context.Context, db *DB, o *groupOp) error {
	o.done = make(chan error, 1)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errClosed
	}
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	o.queued = true
	g.queue = append(g.queue, o)
	if !g.running {
		g.running = true
		g.stopped = make(chan struct{})
		go g.loop(db)
	}
	g.cond.Signal()
	g.mu.Unlock()
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
		g.mu.Unlock()
		return ctx.Err()
	}
	g.mu.Unlock()
	return <-o.done
}

// loop commits groups until close.
func (g *committer) loop(db *DB) {
	defer close(g.stopped)
	for {
		g.mu.Lock()
		for len(g.queue) == 0 && !g.closed {
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
// operations.
func (g *committer) close() {
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
	begin, viaFence := db.sql.BeginTx, false
	if db.fenced {
		db.fenceMu.Lock()
		defer db.fenceMu.Unlock()
		if db.fence != nil {
			begin, viaFence = db.fence.BeginTx, true
		} else {
			kept := group[:0]
			for _, o := range group {
				if o.fenced {
					o.done <- db.wrap(o.what, ErrNotLeader)
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
	fail := func(err error) {
		if viaFence {
			err = fmt.Errorf("%w (the connection that holds the leadership lock failed, so this instance may no longer be the active one)", err)
		}
		for _, o := range group {
			o.done <- db.wrap(o.what, err)
		}
	}
	tx, err := begin(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	outcome := make([]error, len(group))
	for i, o := range group {
		err := o.run(ctx, tx)
		var r refusal
		if errors.As(err, &r) {
			outcome[i] = r.err
			continue
		}
		if err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
	}
	refused := 0
	for _, err := range outcome {
		if err != nil {
			refused++
		}
	}
	if refused == len(group) {
		// Nothing to commit: every operation was refused before writing.
		_ = tx.Rollback()
	} else if err := db.commit(tx); err != nil {
		fail(err)
		return
	}
	for i, o := range group {
		o.done <- outcome[i]
	}
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
