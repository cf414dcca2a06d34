// Package state is psa-syncd's state database: the status of each
// customer's last sync, the run history, the intents that guard
// non-idempotent PSA writes, the append-only ledger of every quantity
// psa-syncd set, and the stored versions of the mapping export.
//
// It is built on database/sql with two drivers and one schema:
//
//   - SQLite (modernc.org/sqlite, pure Go), the embedded default: one file,
//     FileName, in the state directory, in WAL mode with synchronous=FULL,
//     so that every commit is fsynced before the method returns. The file
//     is locked (SQLite's exclusive locking mode) while a process has it
//     open: a second psa-syncd is refused at once.
//   - PostgreSQL (github.com/jackc/pgx/v5 through its database/sql
//     driver), for several psa-syncd on one database of which one is
//     active (TryLead), and for a managed database with backups.
//
// # Migrations
//
// The schema is versioned by a small explicit migrator (migrate.go): the
// files migrations/<dialect>/NNNN_name.sql are embedded in the binary and
// applied in order, in one transaction, at Open, and recorded in the table
// schema_migrations; a database of a newer version is refused. A migration
// library was not worth a dependency for this: psa-syncd applies migrations
// only forwards, only at start-up, to one database whose SQL it writes
// itself in two dialects; the migrator is 100 lines with the transaction
// and the PostgreSQL advisory lock (two replicas starting at once) that a
// library would also need configuring for.
//
// # Checks at open
//
// Before SQLite touches a file, Open reads its header: an empty file, a
// file shorter than its header says (truncated), one that is not an SQLite
// database, or one that psa-syncd did not write (not in WAL mode, foreign
// tables) is refused with an error naming the file and the recovery, and
// left untouched; SQLite's quick_check then finds damaged pages. A bbolt
// state file of an earlier psa-syncd (the same FileName) is imported once,
// ledger and intents included, and kept as FileName.bbolt-backup.
//
// # The intent protocol
//
// The write protocol that keeps a crash from ever posting a change twice:
//
//	db, err := state.Open("/var/lib/psa-syncd")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//
//	in, err := db.OpenIntent(state.Intent{
//		RunID: run.ID, System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b6047",
//		ContractID: "29684183", ServiceID: "30000012",
//		Before: 40, After: 42, BeforeKnown: true, EffectiveDate: periodStart,
//	})
//	if err != nil {
//		return err // nothing was sent
//	}
//	_, err = backend.SetQuantity(ctx, psa.SetQuantityRequest{
//		ContractID: "29684183", ServiceID: "30000012", Quantity: 42,
//		Current: current, EffectiveDate: periodStart,
//	})
//	if err != nil {
//		// Only when the PSA certainly rejected the write; a lost response
//		// leaves the intent open for reconciliation.
//		return db.CompleteIntent(in.ID, state.IntentFailed, err.Error(), time.Now())
//	}
//	// Marks the intent done and appends the ledger entry atomically.
//	return db.CompleteIntent(in.ID, state.IntentDone, "", time.Now())
//
// OpenIntent returns only once the intent is committed. On PostgreSQL it is
// committed through the connection that holds the leadership lock, so an
// instance that lost the lock cannot open one (ErrNotLeader, or the
// connection's error) and so never sends a write. Before sending the write
// of an intent it did open, it calls CheckFence, which refuses (ErrNotLeader)
// once the lock's session has not answered for long enough that another
// instance may have taken over.
//
// On start-up, OpenIntents lists the writes whose outcome is unknown; the
// daemon settles each one by re-reading the PSA instead of sending it again.
// LastSet returns the quantity psa-syncd last set on a contract line, which
// is the only record of current units for PSAs that cannot be read back.
//
// # Group commits
//
// A durable commit costs an fsync (SQLite with synchronous=FULL) or a WAL
// flush (PostgreSQL), and each guarded write needs two: the intent, then
// its close with the ledger entry; each customer status one more. The DB
// therefore does not commit each of these on its own. One goroutine, the
// committer (group.go), owns the writes of intents and statuses: callers
// queue an operation and wait; the committer takes everything queued while
// its previous transaction was committing (at most 1,000 operations), runs
// it in one transaction, commits once, and only then tells each caller its
// outcome. Concurrent writers thus share commits (BenchmarkIntentCycle:
// 2 commits per write alone, 0.7 with 3 writers, 0.2 with 16), and nothing
// waits on a timer: a lone writer's intent is committed at once.
//
// Why an intent is still durable before its write is sent:
//
//   - OpenIntent and OpenIntentBatch return only after the commit of the
//     transaction that holds the intent has returned successfully: the
//     caller cannot send the write earlier, and an intent it was told about
//     is on disk (TestGroupCommit_survivesCrash kills a process writing
//     from 8 goroutines and finds every intent it reported).
//   - A failure anywhere in a group (a statement, the commit, the
//     connection) rolls the whole transaction back and every caller of the
//     group gets the error: no caller is told "opened" for an intent that
//     was not committed, and a caller told "failed" sends nothing. (When a
//     connection breaks during COMMIT, the server may have committed what
//     the caller was told failed: that intent stays open with no write
//     sent, and reconciliation settles it, exactly as without grouping.)
//   - An operation that is refused on its own (completing an intent that is
//     already closed) has written nothing, or is rolled back to its
//     savepoint, so it cannot affect the others of its group.
//   - A caller whose context ends may withdraw its operation only while it
//     is still queued; once the committer has taken it, the caller waits
//     for the real outcome.
//   - On PostgreSQL, while this instance holds the leadership lock, every
//     group goes through the connection that holds it (the fence); without
//     the lock, intent opens and ticket record writes are refused with
//     ErrNotLeader, and so are the records of a pass (a run, customer
//     statuses) once this process has led (a deposed instance's would
//     overwrite those of the instance that took over); the rest of the
//     group (intent closes) is committed through the pool, as before.
//
// Closes and statuses may wait longer, because losing them in a crash is
// already part of the protocol: an intent whose close was not committed
// stays open and is settled by reconciliation (by reading the PSA), and a
// status is written again by the next pass. CompleteIntentDeferred and
// PutCustomerStatusDeferred queue them without waiting: they join the next
// group that a waiting caller causes (so a pass's close rides with its next
// intent: one commit per write), or are committed within 200 ms on their
// own, or at Flush or Close, which return their errors. OpenIntents,
// Ledger, LastSet and the status reads first wait for the deferred writes
// queued before them, so that a read never shows an intent as open whose
// close was accepted. There is no deferred open.
//
// A pass that has many records at hand writes them in one transaction with
// OpenIntentBatch, CompleteIntentBatch and PutCustomerStatusBatch (all or
// nothing): the statuses of a pass with no change are one commit, where
// they were one per customer.
//
// # Retention
//
// PruneHistory removes what is only history (runs and closed intents older
// than a time, the bodies of old export versions) in batches of a few
// hundred rows, each its own statement, so that a pass's writes wait for
// one batch at most. It keeps what the engine still reads (see Retention),
// and never touches the ledger.
//
// Times are stored in UTC; PostgreSQL keeps them to the microsecond.
package state
