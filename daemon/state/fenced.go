package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Fenced is the writes that an operator asks the active instance for
// through its API (resolving an intent, recording a month as set by hand,
// clearing orphaned lines)
// and that only the active instance may commit. The API refuses them on a
// standby, but an instance that lost the leadership lock still takes them
// until it notices the loss, at its next check of the lock (or, with the
// database unreachable, after state.query_timeout); through the pool they
// would be committed meanwhile, beside the passes of the instance that
// took over: a month recorded as set by hand then becomes the month's last
// full run while the new instance's pass of that month runs.
//
// On PostgreSQL each is a fenced operation of the group committer, as
// opening an intent and the ticket record writes are: committed through
// the session that holds the leadership lock, and refused with ErrNotLeader
// once this instance lost the lock (or never held it). A session-level
// advisory lock is lost only with its session, and a session that ends
// aborts the transaction it runs, so a write committed through it was
// committed while this instance held the lock. A check of pg_locks in a
// pooled transaction would not do: the lock's session may end, and a
// standby take the lock, between that check and the commit. A fencing
// token compared in the statement would need a column and a migration for
// what the group committer already gives. A refusal, and a failure of the
// lock's connection (this instance may no longer be the active one; the
// watch says so at its next check), match ErrNotLeader.
//
// On SQLite, whose file lock already makes the process the only one, they
// are ordinary writes.
//
// PassWrites gives the same writes for a pass's own records, which a
// process that never led (a standby's plan or dry run) stores through the
// pool and one that led only through the lock's session (groupOp.led).
type Fenced struct {
	db  *DB
	led bool
}

// Fenced returns the writes of db that only the active instance commits.
func (db *DB) Fenced() Fenced { return Fenced{db: db} }

// PassWrites returns the writes of db that, on PostgreSQL, a process that
// has led commits only while it holds the leadership lock, as a pass's run
// and customer statuses: a pass's snapshots that an instance which lost the
// lock would otherwise store over those of the instance that took over
// (the doubted lines, whose loss lets a line be billed twice).
func (db *DB) PassWrites() Fenced { return Fenced{db: db, led: true} }

// CompleteIntent is DB.CompleteIntent, fenced: an operator's answer for an
// open intent (resolve).
func (f Fenced) CompleteIntent(id int64, state, note string, at time.Time) error {
	c := IntentCompletion{ID: id, State: state, Note: note, At: at}
	if err := c.check(); err != nil {
		return err
	}
	return f.submit(fmt.Sprintf("completing intent %d", id), func(ctx context.Context, tx *sql.Tx) error {
		return f.db.completeIntent(ctx, tx, c)
	})
}

// BeginRun is DB.BeginRun, fenced: a run recorded by an operator's word
// (a month set by hand), not by a pass.
func (f Fenced) BeginRun(r Run) (Run, error) {
	db := f.db
	r = db.newRun(r)
	if err := f.submit("storing a new run", db.insertRun(&r)); err != nil {
		return Run{}, err
	}
	return r, nil
}

// PutSnapshot is DB.PutSnapshot, fenced: the records of an operator's
// clear of orphaned lines.
func (f Fenced) PutSnapshot(name string, v any) error {
	if name == "" {
		return errors.New("state: snapshot needs a name")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: encoding snapshot %s: %w", name, err)
	}
	what := "storing snapshot " + name
	return f.submit(what, f.db.putSnapshot(what, name, data))
}

// ReplaceSnapshot is DB.ReplaceSnapshot, fenced: an operator's clear of
// orphaned lines editing the cleared lines and the last pass's list.
func (f Fenced) ReplaceSnapshot(name, old string, found bool, v any) (bool, error) {
	if name == "" {
		return false, errors.New("state: snapshot needs a name")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("state: encoding snapshot %s: %w", name, err)
	}
	what := "storing snapshot " + name
	stored := false
	err = f.submit(what, f.db.replaceSnapshot(what, name, old, found, data, &stored))
	return stored && err == nil, err
}

// submit commits run as a fenced operation; an error that says this
// instance may no longer hold the lock matches ErrNotLeader.
func (f Fenced) submit(what string, run func(ctx context.Context, tx *sql.Tx) error) error {
	err := f.db.group.submit(context.Background(), f.db, &groupOp{what: what, fenced: !f.led, led: f.led, run: run})
	if errors.Is(err, errFenceFailed) && !errors.Is(err, ErrNotLeader) {
		return fenceFailed{err}
	}
	return err
}

// fenceFailed is a fenced write whose transaction failed on the
// connection that holds the leadership lock: it matches ErrNotLeader.
type fenceFailed struct{ err error }

func (e fenceFailed) Error() string        { return e.err.Error() }
func (e fenceFailed) Unwrap() error        { return e.err }
func (e fenceFailed) Is(target error) bool { return target == ErrNotLeader }
