package state

import (
	"context"
	"database/sql"
	"errors"
)

// writeStmts are the statements of every guarded PSA write: the intent
// recorded before the write, then its close and ledger entry, and the call
// counted against a per-endpoint limit (Kaseya BMS, on SQLite). The committer
// prepares them once, before its first group, and each group's transaction
// uses them (Tx.StmtContext finds them prepared on its connection), so that
// SQLite does not parse these statements again for every write: that
// parsing was a fifth of psa-syncd's CPU time during a pass's writes. Only
// the committer goroutine uses them, until Close.
type writeStmts struct {
	openIntent, closeIntent, appendLedger, recordCall *sql.Stmt
}

const (
	openIntentSQL = `INSERT INTO intents (run_id, system, source, customer_id, contract_id, service_id, qty_before,
		qty_after, before_known, effective_date, created, state, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`
	closeIntentSQL  = `UPDATE intents SET state = ?, note = ? WHERE id = ? AND state = ? RETURNING ` + intentColumns
	appendLedgerSQL = `INSERT INTO ledger (run_id, system, source, customer_id, contract_id, service_id, qty_before,
		qty_after, effective_date, at, intent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	recordCallSQL = `INSERT INTO api_calls (endpoint, at) VALUES (?, ?)`
)

// prepare prepares the statements unless they are. It is called by the
// committer outside of any transaction: SQLite has a single connection,
// which a transaction holds.
//
// On PostgreSQL it prepares nothing: pgx already prepares and caches each
// statement on the connection that runs it, and a prepare here would run on
// a pooled connection outside the group's transaction, where it waits for
// a lock on intents (maintenance) without the leadership lock session's
// statement_timeout, and its failure is given to every operation of the
// group, customer statuses included. The transaction's own statements
// (writeStmt) run them instead.
func (w *writeStmts) prepare(ctx context.Context, db *DB) error {
	if w.openIntent != nil || db.dialect == dialectPostgres {
		return nil
	}
	var stmts [4]*sql.Stmt
	for i, query := range []string{openIntentSQL, closeIntentSQL, appendLedgerSQL, recordCallSQL} {
		s, err := db.sql.PrepareContext(ctx, db.q(query))
		if err != nil {
			for _, s := range stmts[:i] {
				_ = s.Close()
			}
			return err
		}
		stmts[i] = s
	}
	w.openIntent, w.closeIntent, w.appendLedger, w.recordCall = stmts[0], stmts[1], stmts[2], stmts[3]
	return nil
}

// close closes the statements; the committer must have stopped.
func (w *writeStmts) close() error {
	if w.openIntent == nil {
		return nil
	}
	err := errors.Join(w.openIntent.Close(), w.closeIntent.Close(), w.appendLedger.Close(), w.recordCall.Close())
	*w = writeStmts{}
	return err
}

// stmtRunner runs one of the write statements in a transaction.
type stmtRunner interface {
	ExecContext(ctx context.Context, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, args ...any) *sql.Row
}

// writeStmt returns the statement s, prepared by prepare, for tx; or, when
// s was not prepared (PostgreSQL), query run in tx as it is.
func (db *DB) writeStmt(ctx context.Context, tx *sql.Tx, s *sql.Stmt, query string) stmtRunner {
	if s == nil {
		return unprepared{tx: tx, query: db.q(query)}
	}
	return tx.StmtContext(ctx, s)
}

// unprepared runs a query in a transaction, as a prepared statement would.
type unprepared struct {
	tx    *sql.Tx
	query string
}

func (u unprepared) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	return u.tx.ExecContext(ctx, u.query, args...)
}

func (u unprepared) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	return u.tx.QueryRowContext(ctx, u.query, args...)
}
