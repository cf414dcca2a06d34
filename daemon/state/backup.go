package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrBackupUnsupported is returned by Backup for a PostgreSQL database.
var ErrBackupUnsupported = errors.New("state: psa-syncd backup copies SQLite state databases; back a PostgreSQL " +
	"database up with pg_dump, or with the managed service's backups and point-in-time recovery")

// Backup writes a consistent copy of the SQLite state database to file,
// which must not exist, while the database stays in use (SQLite's
// VACUUM INTO: the copy is one transaction's view, compacted). The copy is
// a state database marked as a backup taken now (RestoredBackup): to
// restore it, stop psa-syncd and put it in place of FileName (removing
// FileName's -wal and -shm files). The live database is never marked.
func (db *DB) Backup(file string) error {
	if db.dialect != dialectSQLite {
		return ErrBackupUnsupported
	}
	// VACUUM INTO accepts an existing empty file; creating it first gives
	// the copy mode 0600 and refuses to overwrite anything.
	if err := writeEmpty(file); err != nil {
		return fmt.Errorf("state: backup: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(db.timeout, 10*time.Minute))
	defer cancel()
	if _, err := db.sql.ExecContext(ctx, `VACUUM INTO ?`, file); err != nil {
		_ = os.Remove(file)
		return db.wrap(fmt.Sprintf("writing a backup to %q", file), err)
	}
	// The copy is in rollback-journal mode; psa-syncd opens only WAL
	// databases, so that a restored copy is used as it is.
	// The mark is written in the copy only: the live database's next
	// pass must not take itself for a restored backup.
	cp, err := sql.Open("sqlite", file+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err == nil {
		_, err = cp.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
			metaBackupTakenAt, time.Now().UTC().Format(time.RFC3339Nano))
		if cerr := cp.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.Remove(file)
		return fmt.Errorf("state: backup: switching %q to WAL mode and marking it as a backup: %w", file, err)
	}
	return nil
}

// metaBackupTakenAt marks a copy written by Backup, with the time it was
// taken, until an operator confirms its restore (ConfirmRestore).
const metaBackupTakenAt = "backup_taken_at"

// RestoredBackup reports whether this database is a copy written by Backup
// (put back in place of a lost or damaged one) whose restore no operator
// has confirmed yet, and when the copy was taken. The ledger and the ticket
// records of such a database lack what psa-syncd did after that time: for
// Kaseya BMS, whose quantities only the ledger records, a pass would post
// the changes made since again; a ticket pass would send resolve notes
// again and take its own closes for a technician's.
func (db *DB) RestoredBackup() (time.Time, bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var v string
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT value FROM meta WHERE key = ?`), metaBackupTakenAt).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, db.wrap("reading the backup mark", err)
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, true, fmt.Errorf("state: the backup mark of %s holds %q, not a time: %w", db.path, v, err)
	}
	return at, true, nil
}

// ConfirmRestore removes the mark of RestoredBackup: an operator has
// checked what psa-syncd wrote since the backup was taken, and passes may
// write again. It is needed once per restore.
func (db *DB) ConfirmRestore() error {
	ctx, cancel := db.ctx()
	defer cancel()
	_, err := db.sql.ExecContext(ctx, db.q(`DELETE FROM meta WHERE key = ?`), metaBackupTakenAt)
	return db.wrap("confirming the restore of a backup", err)
}

// metaEmptyStart records that an operator allowed passes to write although
// the database held no record of earlier writes.
const metaEmptyStart = "empty_start_allowed_at"

// HasWriteHistory reports whether this database records that psa-syncd has
// written to the PSA before (a ledger entry or an intent), or that an
// operator allowed it to start writing without such a record. A database
// without either is new, or lost its content: for a PSA whose quantities
// only the ledger records (Kaseya BMS), writing then would post every line
// again.
func (db *DB) HasWriteHistory() (bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var n int
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT (SELECT COUNT(*) FROM ledger) + (SELECT COUNT(*) FROM intents) +
		(SELECT COUNT(*) FROM meta WHERE key = ?)`), metaEmptyStart).Scan(&n)
	return n > 0, db.wrap("reading the write history", err)
}

// AllowEmptyStart records an operator's decision to let passes write
// although HasWriteHistory is false. It is needed once.
func (db *DB) AllowEmptyStart(at time.Time) error {
	ctx, cancel := db.ctx()
	defer cancel()
	_, err := db.sql.ExecContext(ctx, db.q(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`),
		metaEmptyStart, db.stored(at).Format(time.RFC3339Nano))
	return db.wrap("recording the empty start", err)
}
