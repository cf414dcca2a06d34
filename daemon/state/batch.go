package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// The batch methods write many records in one transaction, which they also
// share with whatever else is being committed at the time (see "Group
// commits" in the package documentation). Each is all or nothing: on error
// none of its records is written (PutCustomerStatusBatch leaves out, and
// names, a status whose key is invalid, and stores the others). ctx bounds
// the wait for the committer: once the transaction holding the batch has
// begun, the method waits for its outcome (bounded by
// Config.QueryTimeout), so that an error means that nothing was written,
// except one matching ErrMaybeCommitted: the COMMIT got no answer from the
// server, which may have committed it all the same.

// OpenIntentBatch records ins as open intents in one transaction and
// returns them as OpenIntent would, in the same order, with their IDs
// assigned. All of them are committed (and, on SQLite, fsynced) before it
// returns: the caller may send their writes once it gets a nil error, and
// none of them otherwise (with an error matching ErrMaybeCommitted, the
// intents may be there, open, all the same). On PostgreSQL the transaction goes through the
// session that holds the leadership lock, as for OpenIntent. An empty ins
// writes nothing.
func (db *DB) OpenIntentBatch(ctx context.Context, ins []Intent) ([]Intent, error) {
	if len(ins) == 0 {
		return nil, nil
	}
	return db.openIntents(ctx, "recording "+counted(len(ins), "intent", "intents"), ins)
}

// CompleteIntentBatch closes open intents in one transaction, each as
// CompleteIntent would. If any of them is unknown, already closed or given
// twice, or its state is invalid, none is closed and the error names it.
// An empty cs writes nothing.
func (db *DB) CompleteIntentBatch(ctx context.Context, cs []IntentCompletion) error {
	if len(cs) == 0 {
		return nil
	}
	for _, c := range cs {
		if err := c.check(); err != nil {
			return err
		}
	}
	return db.group.submit(ctx, db, &groupOp{
		what: "completing " + counted(len(cs), "intent", "intents"),
		run: func(ctx context.Context, tx *sql.Tx) error {
			// A refusal of the third intent must undo the first two.
			return inSavepoint(ctx, tx, func() error {
				for _, c := range cs {
					if err := db.completeIntent(ctx, tx, c); err != nil {
						return err
					}
				}
				return nil
			})
		},
	})
}

// CompleteIntentsStillOpen closes, in one transaction, those of cs whose
// intents are still open, each as CompleteIntent would, and leaves the
// others as they are. It returns those others by ID, with the state they
// were closed in (done, failed or review), or "" for an intent that no
// longer exists. It is for outcomes recorded late (after a lost connection
// or a full disk), when another instance or an operator may have closed
// some of the intents meanwhile: CompleteIntentBatch would then close none
// of them, and the outcomes of the others would be lost. An invalid state
// in cs closes none; a failed transaction closes none, and says why.
func (db *DB) CompleteIntentsStillOpen(ctx context.Context, cs []IntentCompletion) (map[int64]string, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	for _, c := range cs {
		if err := c.check(); err != nil {
			return nil, err
		}
	}
	var closed map[int64]string
	err := db.group.submit(ctx, db, &groupOp{
		what: "completing " + counted(len(cs), "intent", "intents"),
		run: func(ctx context.Context, tx *sql.Tx) error {
			for _, c := range cs {
				// A refused completion wrote nothing (see completeIntent).
				err := db.completeIntent(ctx, tx, c)
				var notOpen *intentNotOpenError
				if errors.As(err, &notOpen) {
					if closed == nil {
						closed = map[int64]string{}
					}
					closed[c.ID] = notOpen.state
					continue
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return closed, nil
}

// FailUnsentIntentsStillOpen closes as failed those of cs (each a close
// as failed) whose intents are still open, as CompleteIntentsStillOpen
// does, for intents whose writes were never sent: their recording got no
// answer (ErrMaybeCommitted), and the server committed them after all. On
// PostgreSQL it commits in a transaction of its own that waits for no
// synchronous standby (synchronous_commit = local): the standby being gone
// is one reason why that recording got no answer, and a close waiting for
// it too would fail at the query timeout until the instance gave up and
// exited, leaving the intents open for an operator (Kaseya BMS). A close
// that a failover loses leaves its intent open, as it was, to be settled
// as after a crash: closing as failed only lets a line be written that was
// never sent.
func (db *DB) FailUnsentIntentsStillOpen(ctx context.Context, cs []IntentCompletion) (map[int64]string, error) {
	for _, c := range cs {
		if c.State != IntentFailed {
			return nil, fmt.Errorf("state: closing intent %d as not sent: state %q (want failed)", c.ID, c.State)
		}
	}
	if len(cs) == 0 || db.dialect != dialectPostgres {
		return db.CompleteIntentsStillOpen(ctx, cs)
	}
	var closed map[int64]string
	what := "closing " + counted(len(cs), "intent", "intents") + " as not sent"
	err := db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = local`); err != nil {
			return db.wrap(what, err)
		}
		for _, c := range cs {
			// A refused completion wrote nothing (see completeIntent).
			err := db.completeIntent(ctx, tx, c)
			var notOpen *intentNotOpenError
			if errors.As(err, &notOpen) {
				if closed == nil {
					closed = map[int64]string{}
				}
				closed[c.ID] = notOpen.state
				continue
			}
			if err != nil {
				return db.wrap(what, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return closed, nil
}

// PutCustomerStatusBatch stores statuses in one transaction, each as
// PutCustomerStatus would; when a customer appears more than once, the
// last of its statuses is stored. An empty statuses writes nothing. A
// status with an invalid key is not stored, and does not keep the others
// from being stored: the error names it.
func (db *DB) PutCustomerStatusBatch(ctx context.Context, statuses []CustomerStatus) error {
	var invalid []error
	valid := statuses
	for i, cs := range statuses {
		if err := checkKey("customer", cs.Source, cs.CustomerID); err != nil {
			if invalid == nil {
				valid = slices.Clone(statuses[:i])
			}
			invalid = append(invalid, fmt.Errorf("state: status %d of %d (customer %q of %q): %w", i+1, len(statuses), cs.CustomerID, cs.Source, err))
			continue
		}
		if invalid != nil {
			valid = append(valid, cs)
		}
	}
	if len(valid) == 0 {
		return errors.Join(invalid...)
	}
	err := db.group.submit(ctx, db, &groupOp{
		what: "storing the statuses of " + counted(len(valid), "customer", "customers"),
		led:  true,
		run: func(ctx context.Context, tx *sql.Tx) error {
			return db.upsertCustomers(ctx, tx, valid)
		},
	})
	return errors.Join(append(invalid, err)...)
}

// CompleteIntentDeferred closes an open intent as CompleteIntent does, but
// returns without waiting for the commit: the completion joins the next
// group commit (the next intent opened or status stored by anyone), or is
// committed on its own within 200 ms, or at Flush or Close. Closing an
// intent may wait because an intent whose close is lost in a crash stays
// open, and is settled by reconciliation like any write whose outcome is
// unknown; opening one may not, so there is no OpenIntentDeferred.
//
// It returns an error only for an invalid state. Other errors (an unknown
// or closed intent, a failed transaction) are returned by the next Flush,
// or by Close. OpenIntents, Ledger and LastSet first wait for the deferred
// writes queued before them, so that they never show an intent as open
// whose completion was accepted.
func (db *DB) CompleteIntentDeferred(c IntentCompletion) error {
	if err := c.check(); err != nil {
		return err
	}
	return db.group.submitDeferred(db, &groupOp{
		what: fmt.Sprintf("completing intent %d", c.ID),
		run: func(ctx context.Context, tx *sql.Tx) error {
			return db.completeIntent(ctx, tx, c)
		},
	})
}

// PutCustomerStatusDeferred stores cs as PutCustomerStatus does, but
// returns without waiting for the commit, like CompleteIntentDeferred: a
// status lost in a crash is written again by the next pass. It returns an
// error only for an invalid key; CustomerStatus and CustomerStatuses wait
// for the deferred writes queued before them.
func (db *DB) PutCustomerStatusDeferred(cs CustomerStatus) error {
	if err := checkKey("customer", cs.Source, cs.CustomerID); err != nil {
		return err
	}
	return db.group.submitDeferred(db, &groupOp{
		what: "storing the status of customer " + cs.CustomerID,
		led:  true,
		run: func(ctx context.Context, tx *sql.Tx) error {
			return db.upsertCustomers(ctx, tx, []CustomerStatus{cs})
		},
	})
}

// Flush commits the deferred writes queued so far and returns the errors
// of every deferred write since the last Flush, joined. A pass calls it at
// its end, to report what it could not record.
func (db *DB) Flush(ctx context.Context) error {
	return db.group.flush(ctx, db)
}

// syncDeferred waits for the deferred writes queued so far, so that a read
// sees them. Their errors are left for Flush; an error of the wait itself
// shows up as the read's own.
func (db *DB) syncDeferred() {
	ctx, cancel := db.ctx()
	defer cancel()
	_ = db.group.sync(ctx, db)
}

// counted returns n with its noun, singular for 1: "1 intent", "3 intents".
func counted(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
