package state

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"time"
)

// apiCallsLockKey serialises Take on PostgreSQL (a transaction-level
// advisory lock), so that two processes never both get the last call of an
// endpoint's window. SQLite transactions are serialised already (one
// connection, BEGIN IMMEDIATE).
const apiCallsLockKey int64 = 0x7073612d63616c6c // "psa-call"

// APICalls counts the calls made to each endpoint of a PSA that limits calls
// per endpoint in a rolling window (Kaseya BMS), in the state database, so
// that the limit holds across passes, restarts and the processes that share
// the database. It has the methods of kaseyabms.CallStore.
type APICalls struct {
	db *DB
}

// APICalls returns the call counter kept in db.
func (db *DB) APICalls() *APICalls { return &APICalls{db: db} }

// Take records a call to endpoint at now unless limit calls were recorded
// in (now-window, now] or the endpoint is blocked at now. When it refuses,
// free is when a call will be allowed again. Calls older than the window
// are deleted on the way.
//
// A block that ends more than a window after now is shortened, in the
// database too, to end a window after now: the Kaseya BMS client blocks
// an endpoint for at most its window (an hour) where a 429 asked for
// longer, and a block stored by an earlier psa-syncd, which blocked for
// what the 429 asked (up to a day), or by one beside this one on a shared
// database, would otherwise refuse every billing write there until then.
// A later Take finds the block within its window.
//
// On SQLite, whose file one process holds locked, the calls are counted in
// memory (see callMirror) and each call's row is committed with the next
// commit of the state database rather than one of its own, so that a PSA
// write waits for no fsync of its own here. On PostgreSQL, which several
// processes share, Take is one transaction under an advisory lock.
func (a *APICalls) Take(endpoint string, now time.Time, window time.Duration, limit int) (free time.Time, ok bool, err error) {
	if a.db.dialect == dialectSQLite {
		return a.db.calls.take(a.db, endpoint, now, window, limit)
	}
	return a.takeShared(endpoint, now, window, limit)
}

// takeShared is Take in one transaction, for a database that several
// processes share.
func (a *APICalls) takeShared(endpoint string, now time.Time, window time.Duration, limit int) (free time.Time, ok bool, err error) {
	db := a.db
	what := "counting a call to " + endpoint
	err = db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, apiCallsLockKey); err != nil {
			return db.wrap(what, err)
		}
		var until time.Time
		err := tx.QueryRowContext(ctx, db.q(`SELECT until FROM api_blocks WHERE endpoint = ?`), endpoint).Scan(timeDest{&until})
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return db.wrap(what, err)
		case now.Before(until):
			if limit := now.Add(window); until.After(limit) {
				// An earlier psa-syncd's: see Take.
				if _, err := tx.ExecContext(ctx, db.q(`UPDATE api_blocks SET until = ? WHERE endpoint = ?`), db.tv(limit), endpoint); err != nil {
					return db.wrap(what, err)
				}
				until = limit
			}
			free = until
			return nil
		}
		since := db.tv(now.Add(-window))
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM api_calls WHERE endpoint = ? AND at <= ?`), endpoint, since); err != nil {
			return db.wrap(what, err)
		}
		// Counted on the index, not read: the window may hold the whole
		// hour's calls.
		var n int
		if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM api_calls WHERE endpoint = ?`), endpoint).Scan(&n); err != nil {
			return db.wrap(what, err)
		}
		if n >= limit {
			// The oldest of the newest limit calls frees its slot first.
			var oldest time.Time
			if err := tx.QueryRowContext(ctx, db.q(`SELECT at FROM api_calls WHERE endpoint = ? ORDER BY at DESC LIMIT 1 OFFSET ?`),
				endpoint, limit-1).Scan(timeDest{&oldest}); err != nil {
				return db.wrap(what, err)
			}
			free = oldest.Add(window)
			return nil
		}
		if err := db.insertCall(ctx, tx, endpoint, now, window); err != nil {
			return db.wrap(what, err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return time.Time{}, false, err
	}
	return free, ok, nil
}

// insertCall records a call to endpoint at now in tx and deletes the
// endpoint's calls that have left the window.
func (db *DB) insertCall(ctx context.Context, tx *sql.Tx, endpoint string, now time.Time, window time.Duration) error {
	if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM api_calls WHERE endpoint = ? AND at <= ?`), endpoint, db.tv(now.Add(-window))); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, db.q(recordCallSQL), endpoint, db.tv(now))
	return err
}

// callMirror counts the calls per endpoint in memory for a database that
// one process has to itself (SQLite), where the table is the record of
// what earlier processes spent and this one's calls are appended to it.
// An endpoint's calls in the window and its block are read from the
// database at its first Take; after that Take decides under mu, and
// queues its row as a deferred write (see committer): it is committed
// with the next group, at the latest deferDelay later, or at Flush and
// Close. A crash loses at most the rows of the calls made in that time
// (during a pass's posts, those since the last intent was committed),
// which the next process then does not count; should BMS refuse a call
// with 429 for them, the endpoint is blocked (Block) as before.
type callMirror struct {
	mu        sync.Mutex
	endpoints map[string]*endpointCalls
}

// endpointCalls is one endpoint's calls in the window, oldest first, and
// the time until which it is blocked.
type endpointCalls struct {
	at      []time.Time
	blocked time.Time
	// pruned is set once a row has been recorded with the deletion of
	// those that left the window.
	pruned bool
}

// take is Take on the mirror.
func (m *callMirror) take(db *DB, endpoint string, now time.Time, window time.Duration, limit int) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ec, err := m.endpoint(db, endpoint, now, window, limit)
	if err != nil {
		return time.Time{}, false, err
	}
	if now.Before(ec.blocked) {
		if limit := now.Add(window); ec.blocked.After(limit) {
			// An earlier psa-syncd's: see Take.
			ec.blocked = limit
			err := db.group.submitDeferred(db, &groupOp{
				what: "shortening the block of " + endpoint,
				run: func(ctx context.Context, tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `UPDATE api_blocks SET until = ? WHERE endpoint = ?`, db.tv(limit), endpoint)
					return err
				},
			})
			if err != nil {
				// Held in memory all the same; the next process
				// shortens the stored block again.
				return limit, false, db.wrap("shortening the block of "+endpoint, err)
			}
		}
		return ec.blocked, false, nil
	}
	gone := 0
	for gone < len(ec.at) && !ec.at[gone].After(now.Add(-window)) {
		gone++
	}
	ec.at = slices.Delete(ec.at, 0, gone)
	if len(ec.at) >= limit {
		return ec.at[len(ec.at)-limit].Add(window), false, nil
	}
	i, _ := slices.BinarySearchFunc(ec.at, now, time.Time.Compare)
	ec.at = slices.Insert(ec.at, i, now)
	// The rows that left the window are deleted when the mirror drops
	// calls, or when the table may hold some the mirror never read.
	prune := gone > 0 || !ec.pruned
	ec.pruned = true
	err = db.group.submitDeferred(db, &groupOp{
		what: "recording a call to " + endpoint,
		run: func(ctx context.Context, tx *sql.Tx) error {
			if prune {
				return db.insertCall(ctx, tx, endpoint, now, window)
			}
			_, err := db.writeStmt(ctx, tx, db.writes.recordCall, recordCallSQL).ExecContext(ctx, endpoint, db.tv(now))
			return err
		},
	})
	if err != nil {
		// Counted all the same: the call is refused, and counting it
		// errs on the safe side.
		return time.Time{}, false, db.wrap("recording a call to "+endpoint, err)
	}
	return time.Time{}, true, nil
}

// endpoint returns the mirror of endpoint, reading its newest limit calls
// in the window and its block from the database the first time. m.mu is
// held.
func (m *callMirror) endpoint(db *DB, endpoint string, now time.Time, window time.Duration, limit int) (*endpointCalls, error) {
	if ec, ok := m.endpoints[endpoint]; ok {
		return ec, nil
	}
	what := "reading the calls to " + endpoint
	ctx, cancel := db.ctx()
	defer cancel()
	ec := &endpointCalls{}
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT until FROM api_blocks WHERE endpoint = ?`), endpoint).Scan(timeDest{&ec.blocked})
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, db.wrap(what, err)
	}
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT at FROM api_calls WHERE endpoint = ? AND at > ? ORDER BY at DESC LIMIT ?`),
		endpoint, db.tv(now.Add(-window)), limit)
	if err != nil {
		return nil, db.wrap(what, err)
	}
	defer rows.Close()
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(timeDest{&at}); err != nil {
			return nil, db.wrap(what, err)
		}
		ec.at = append(ec.at, at)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap(what, err)
	}
	slices.Reverse(ec.at)
	if m.endpoints == nil {
		m.endpoints = map[string]*endpointCalls{}
	}
	m.endpoints[endpoint] = ec
	return ec, nil
}

// giveBack is Return on the mirror: the call leaves the count at once, and
// its row is deleted with the next commit, after the row's own insert,
// queued before it.
func (m *callMirror) giveBack(db *DB, endpoint string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ec, ok := m.endpoints[endpoint]
	if !ok {
		return nil
	}
	i := slices.IndexFunc(ec.at, at.Equal)
	if i < 0 {
		return nil
	}
	ec.at = slices.Delete(ec.at, i, i+1)
	return db.group.submitDeferred(db, &groupOp{
		what: "giving back a call to " + endpoint,
		run: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM api_calls WHERE rowid = (SELECT rowid FROM api_calls WHERE endpoint = ? AND at = ? LIMIT 1)`,
				endpoint, db.tv(at))
			return err
		},
	})
}

// block records a block of endpoint that the database holds already.
func (m *callMirror) block(endpoint string, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ec, ok := m.endpoints[endpoint]; ok && until.After(ec.blocked) {
		ec.blocked = until
	}
}

// Return removes one call to endpoint recorded at at (Take's now), if
// there is one: a call the Kaseya BMS client counted and then did not send
// (kaseyabms.CallReturner), which BMS never got.
func (a *APICalls) Return(endpoint string, at time.Time) error {
	db := a.db
	if db.dialect == dialectSQLite {
		return db.calls.giveBack(db, endpoint, at)
	}
	what := "giving back a call to " + endpoint
	return db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		// One row: two calls may have been counted at the same time.
		_, err := tx.ExecContext(ctx, `DELETE FROM api_calls WHERE ctid = (SELECT ctid FROM api_calls WHERE endpoint = $1 AND at = $2 LIMIT 1)`,
			endpoint, db.tv(at))
		return db.wrap(what, err)
	})
}

// Block refuses calls to endpoint until the given time (a later block of
// the same endpoint wins).
func (a *APICalls) Block(endpoint string, until time.Time) error {
	db := a.db
	what := "blocking calls to " + endpoint
	err := db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO api_blocks (endpoint, until) VALUES (?, ?)
			ON CONFLICT (endpoint) DO UPDATE SET until = excluded.until WHERE excluded.until > api_blocks.until`),
			endpoint, db.tv(until))
		return db.wrap(what, err)
	})
	if err == nil {
		db.calls.block(endpoint, until)
	}
	return err
}

// Calls returns the number of calls recorded to each endpoint in
// (now-window, now]; a blocked endpoint counts as limit calls.
func (a *APICalls) Calls(now time.Time, window time.Duration, limit int) (map[string]int, error) {
	db := a.db
	// The calls counted in memory are in the table once their rows are
	// committed.
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	out := map[string]int{}
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT endpoint, COUNT(*) FROM api_calls WHERE at > ? GROUP BY endpoint`), db.tv(now.Add(-window)))
	if err != nil {
		return nil, db.wrap("counting calls per endpoint", err)
	}
	for rows.Next() {
		var (
			ep string
			n  int
		)
		if err := rows.Scan(&ep, &n); err != nil {
			_ = rows.Close()
			return nil, db.wrap("counting calls per endpoint", err)
		}
		out[ep] = n
	}
	if err := rows.Close(); err != nil {
		return nil, db.wrap("counting calls per endpoint", err)
	}
	brows, err := db.sql.QueryContext(ctx, db.q(`SELECT endpoint FROM api_blocks WHERE until > ?`), db.tv(now))
	if err != nil {
		return nil, db.wrap("reading blocked endpoints", err)
	}
	defer brows.Close()
	for brows.Next() {
		var ep string
		if err := brows.Scan(&ep); err != nil {
			return nil, db.wrap("reading blocked endpoints", err)
		}
		out[ep] = limit
	}
	if err := brows.Err(); err != nil {
		return nil, db.wrap("reading blocked endpoints", err)
	}
	return out, nil
}
