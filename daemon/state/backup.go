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
// an ordinary state database: to restore it, stop psa-syncd and put it in
// place of FileName (removing FileName's -wal and -shm files).
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
	cp, err := sql.Open("sqlite", file+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err == nil {
		err = cp.PingContext(ctx)
		if cerr := cp.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.Remove(file)
		return fmt.Errorf("state: backup: switching %q to WAL mode: %w", file, err)
	}
	return nil
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
