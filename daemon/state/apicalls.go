package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
func (a *APICalls) Take(endpoint string, now time.Time, window time.Duration, limit int) (free time.Time, ok bool, err error) {
	db := a.db
	what := "counting a call to " + endpoint
	err = db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		if db.dialect == dialectPostgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, apiCallsLockKey); err != nil {
				return db.wrap(what, err)
			}
		}
		var until time.Time
		err := tx.QueryRowContext(ctx, db.q(`SELECT until FROM api_blocks WHERE endpoint = ?`), endpoint).Scan(timeDest{&until})
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return db.wrap(what, err)
		case now.Before(until):
			free = until
			return nil
		}
		since := db.tv(now.Add(-window))
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM api_calls WHERE endpoint = ? AND at <= ?`), endpoint, since); err != nil {
			return db.wrap(what, err)
		}
		rows, err := tx.QueryContext(ctx, db.q(`SELECT at FROM api_calls WHERE endpoint = ? ORDER BY at DESC LIMIT ?`), endpoint, limit)
		if err != nil {
			return db.wrap(what, err)
		}
		var calls []time.Time
		for rows.Next() {
			var at time.Time
			if err := rows.Scan(timeDest{&at}); err != nil {
				_ = rows.Close()
				return db.wrap(what, err)
			}
			calls = append(calls, at)
		}
		if err := rows.Close(); err != nil {
			return db.wrap(what, err)
		}
		if len(calls) >= limit {
			// The oldest of the newest limit calls frees its slot first.
			free = calls[len(calls)-1].Add(window)
			return nil
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO api_calls (endpoint, at) VALUES (?, ?)`), endpoint, db.tv(now)); err != nil {
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

// Block refuses calls to endpoint until the given time (a later block of
// the same endpoint wins).
func (a *APICalls) Block(endpoint string, until time.Time) error {
	db := a.db
	what := "blocking calls to " + endpoint
	return db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO api_blocks (endpoint, until) VALUES (?, ?)
			ON CONFLICT (endpoint) DO UPDATE SET until = excluded.until WHERE excluded.until > api_blocks.until`),
			endpoint, db.tv(until))
		return db.wrap(what, err)
	})
}

// Calls returns the number of calls recorded to each endpoint in
// (now-window, now]; a blocked endpoint counts as limit calls.
func (a *APICalls) Calls(now time.Time, window time.Duration, limit int) (map[string]int, error) {
	db := a.db
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
		return nil, fmt.Errorf("state: reading blocked endpoints in %s: %w", db.path, err)
	}
	return out, nil
}
