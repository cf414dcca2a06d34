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
// connection's error) and so never sends a write.
//
// On start-up, OpenIntents lists the writes whose outcome is unknown; the
// daemon settles each one by re-reading the PSA instead of sending it again.
// LastSet returns the quantity psa-syncd last set on a contract line, which
// is the only record of current units for PSAs that cannot be read back.
//
// Times are stored in UTC; PostgreSQL keeps them to the microsecond.
package state
