package state

import (
	"context"
	"strings"
	"time"
)

// pruneBatch bounds the rows one statement of PruneHistory deletes or
// empties: each statement is a transaction of its own, so that the writes
// of a pass (SQLite has one connection) wait for one batch at most, not
// for a year of history.
const pruneBatch = 500

// Retention says what PruneHistory removes. The zero value removes nothing.
type Retention struct {
	// Before, when set, removes the runs that started before it and the
	// intents created before it that were closed as done or failed (their
	// ledger entries stay). Kept whatever their age: a run still running,
	// a run an open intent belongs to (the settle time counts from its
	// end), the newest finished pass over all customers that was not a dry
	// run and the newest successful one (the schedule and the last-run
	// metrics start from them), open intents, intents closed for review,
	// and the newest intent.
	Before time.Time
	// KeepPeriods are billing months (YYYY-MM) whose newest finished
	// pass over all customers that was not a dry run Before keeps, whatever
	// its age: the month a pass syncs now and the one that ended, whose
	// last pass the status page's offer and
	// psa_sync_ended_period_last_run_result read, also after a restart.
	KeepPeriods []string
	// ExportBodies, when above 0, empties the bodies of the stored export
	// versions older than the newest ExportBodies. Their records (revision,
	// digest, size, time, writer) stay in the history.
	ExportBodies int
}

// Pruned counts what PruneHistory removed.
type Pruned struct {
	Runs, Intents, ExportBodies int64
}

// Total is the count of rows removed or emptied.
func (p Pruned) Total() int64 { return p.Runs + p.Intents + p.ExportBodies }

// PruneHistory removes the history that r says is old, in batches of a
// few hundred rows, each committed on its own, until none is left or ctx
// ends. What was removed before an error is counted in the result. The
// ledger is never pruned: it is the audit trail of every quantity
// psa-syncd set, and the record of current units for PSAs that cannot be
// read back.
func (db *DB) PruneHistory(ctx context.Context, r Retention) (Pruned, error) {
	var p Pruned
	if !r.Before.IsZero() {
		before := db.tv(db.stored(r.Before))
		args := []any{before, RunRunning, false, RunRunning, interruptedPrefix + "%", false, RunSuccess, IntentOpen}
		keepPeriods := ""
		if len(r.KeepPeriods) > 0 {
			keepPeriods = `
			AND id NOT IN (SELECT MAX(id) FROM runs WHERE customer = '' AND dry_run = ? AND result <> ? AND period IN (?` +
				strings.Repeat(", ?", len(r.KeepPeriods)-1) + `) GROUP BY period)`
			args = append(args, false, RunRunning)
			for _, p := range r.KeepPeriods {
				args = append(args, p)
			}
		}
		args = append(args, pruneBatch)
		n, err := db.pruneBatches(ctx, "removing old runs", `DELETE FROM runs WHERE id IN (SELECT id FROM runs
			WHERE started < ? AND result <> ?
			AND id <> COALESCE((SELECT MAX(id) FROM runs WHERE customer = '' AND dry_run = ? AND result <> ? AND error NOT LIKE ?), 0)
			AND id <> COALESCE((SELECT MAX(id) FROM runs WHERE customer = '' AND dry_run = ? AND result = ?), 0)
			AND NOT EXISTS (SELECT 1 FROM intents WHERE intents.run_id = runs.id AND intents.state = ?)`+keepPeriods+`
			ORDER BY id LIMIT ?)`, args...)
		p.Runs = n
		if err != nil {
			return p, err
		}
		n, err = db.pruneBatches(ctx, "removing old closed intents", `DELETE FROM intents WHERE id IN (SELECT id FROM intents
			WHERE created < ? AND state IN (?, ?) AND id < (SELECT MAX(id) FROM intents)
			ORDER BY id LIMIT ?)`,
			before, IntentDone, IntentFailed, pruneBatch)
		p.Intents = n
		if err != nil {
			return p, err
		}
	}
	if r.ExportBodies > 0 {
		n, err := db.pruneBatches(ctx, "emptying the bodies of old export versions", `UPDATE export_versions SET body = ?
			WHERE revision IN (SELECT revision FROM export_versions
			WHERE revision <= (SELECT MAX(revision) FROM export_versions) - ? AND length(body) > 0
			ORDER BY revision LIMIT ?)`,
			[]byte{}, r.ExportBodies, pruneBatch)
		p.ExportBodies = n
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// pruneBatches runs query, which removes at most pruneBatch rows, until it
// removes fewer, and returns how many it removed in all.
func (db *DB) pruneBatches(ctx context.Context, what, query string, args ...any) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, db.wrap(what, err)
		}
		qctx, cancel := context.WithTimeout(ctx, db.timeout)
		res, err := db.sql.ExecContext(qctx, db.q(query), args...)
		cancel()
		if err != nil {
			return total, db.wrap(what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, db.wrap(what, err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
