package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrBackupUnsupported is returned by Backup for a PostgreSQL database.
var ErrBackupUnsupported = errors.New("state: psa-syncd backup copies SQLite state databases; back a PostgreSQL " +
	"database up with pg_dump, or with the managed service's backups and point-in-time recovery")

// backupStep is the number of pages Backup copies at a time (1 MiB with
// SQLite's default page size), holding the database's connection.
const backupStep = 256

// Backup writes a consistent copy of the SQLite state database to file,
// which must not exist, while the database stays in use. It copies with
// SQLite's online backup API, backupStep pages at a time, and gives the
// database's only connection back between steps, so that state writes
// (a pass's intents, closes and statuses) wait for one step, not for the
// whole copy; what they write is carried into the copy, which is the
// database as it was when the last step ended. The copy is a state
// database marked as a backup taken now (RestoredBackup): to restore it,
// stop psa-syncd and put it in place of FileName (removing FileName's -wal
// and -shm files). The live database is never marked.
func (db *DB) Backup(file string) error {
	if db.dialect != dialectSQLite {
		return ErrBackupUnsupported
	}
	// Creating the file first gives the copy mode 0600 and refuses to
	// overwrite anything.
	if err := writeEmpty(file); err != nil {
		return fmt.Errorf("state: backup: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(db.timeout, 10*time.Minute))
	defer cancel()
	if err := db.copyOnline(ctx, file); err != nil {
		removeCopy(file)
		return db.backupError(file, err)
	}
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
		removeCopy(file)
		return fmt.Errorf("state: backup: switching %q to WAL mode and marking it as a backup: %w", file, err)
	}
	return nil
}

// removeCopy removes an unfinished copy and the journal SQLite keeps
// beside it while writing it, so that nothing is left that looks like a
// backup (or, were the name used again, a hot journal that SQLite would
// roll into another file).
func removeCopy(file string) {
	for _, f := range []string{file, file + "-journal", file + "-wal", file + "-shm"} {
		_ = os.Remove(f)
	}
}

// backupError is Backup's error when copying into file failed. The copy
// writes only file: a full file system, or a write refused, is file's, and
// the message says so, rather than "in <the state database>: database or
// disk is full", which reads as the live database's disk failing.
func (db *DB) backupError(file string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("state: backup of %s: the file system of the copy %q is full (the copy needs as much free space as the database's size); "+
				"nothing was kept, and the state database is unaffected", db.path, file)
		case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM:
			return fmt.Errorf("state: backup of %s: writing the copy %q failed (%s): its file system refused the write; "+
				"nothing was kept, and the state database is unaffected", db.path, file, sqliteReason(se))
		}
	}
	return db.wrap(fmt.Sprintf("writing a backup to %q", file), err)
}

// sqliteReason is the text of a SQLite error without what the driver adds
// from the connection's last error, which for a backup's is unrelated
// ("disk I/O error: not an error").
func sqliteReason(se *sqlite.Error) string {
	msg := se.Error()
	if i := strings.Index(msg, ": not an error"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// onlineBackup is what the SQLite driver's connection offers for SQLite's
// online backup API.
type onlineBackup interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// copyOnline copies the database into file with SQLite's online backup
// API, in steps. Each step, and the end, takes the database's connection
// from the pool (the backup belongs to it) and gives it back, so that
// other statements run between steps. Should the pool have replaced the
// connection (it closes one only at Close, which waits for the copy, or
// after a driver error), the copy stops and the unfinished backup is left
// to the closed connection.
func (db *DB) copyOnline(ctx context.Context, file string) (err error) {
	db.backupMu.RLock()
	defer db.backupMu.RUnlock()
	var (
		b     *sqlite.Backup
		src   any
		pause time.Duration
	)
	// withBackup runs fn on the backup's connection.
	withBackup := func(ctx context.Context, fn func() error) error {
		conn, err := db.sql.Conn(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }() // gives the connection back to the pool
		return conn.Raw(func(dc any) error {
			switch {
			case b == nil:
				ob, ok := dc.(onlineBackup)
				if !ok {
					return fmt.Errorf("the SQLite driver's connection (%T) offers no online backup", dc)
				}
				nb, err := ob.NewBackup(file)
				if err != nil {
					return err
				}
				b, src = nb, dc
			case dc != src:
				b = nil
				return errors.New("the database's connection was replaced during the backup")
			}
			return fn()
		})
	}
	defer func() {
		if b == nil {
			return
		}
		// Ending the backup needs its connection too, also when ctx ran
		// out.
		fctx, cancel := context.WithTimeout(context.Background(), db.timeout)
		defer cancel()
		ferr := withBackup(fctx, func() error {
			ferr := b.Finish()
			b = nil
			return ferr
		})
		if err == nil {
			err = ferr
		}
	}()
	for more, first := true, true; more; first = false {
		if !first {
			// The statements waiting for the connection take it now:
			// pausing as long as the last step took lets each of them
			// run (database/sql hands a released connection to a
			// waiter), a step at a time, at most half the time.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
		}
		start := time.Now()
		err := withBackup(ctx, func() error {
			var err error
			more, err = b.Step(backupStep)
			return err
		})
		pause = min(max(time.Since(start), time.Millisecond), 50*time.Millisecond)
		var se *sqlite.Error
		if errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED) {
			// A lock another statement holds for the moment: SQLite
			// says to step again later.
			more = true
			pause = 10 * time.Millisecond
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// metaBackupTakenAt marks a copy written by Backup, with the time it was
// taken, until an operator confirms its restore (ConfirmRestore).
const metaBackupTakenAt = "backup_taken_at"

// metaTableOID holds, in a PostgreSQL state database, the OID of its meta
// table, recorded the first time psa-syncd opened it for writing
// (recordTableOID). A logical restore (pg_restore, psql with a plain dump,
// into the same database with --clean or into another one) creates every
// table anew, with new OIDs, and copies the rows in, this one with the OID
// of the table it was dumped from: that is how RestoredBackup tells a
// restored PostgreSQL database from the live one, which pg_dump cannot
// mark as Backup marks a SQLite copy. A physical copy (a point-in-time
// recovery, a replica promoted) keeps the OIDs, and is told apart by its
// timeline instead (metaTimeline). A migration that creates the meta table
// anew must record its new OID.
const metaTableOID = "meta_table_oid"

// recordTableOID records the OID of a PostgreSQL database's meta table
// (metaTableOID), unless one is recorded already: a restored database
// keeps the OID of the table it was dumped from until an operator confirms
// its restore (ConfirmRestore).
func (db *DB) recordTableOID(ctx context.Context) error {
	if db.dialect != dialectPostgres {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, db.cfg.ConnectTimeout+db.timeout)
	defer cancel()
	_, err := db.sql.ExecContext(ctx, `INSERT INTO meta (key, value) SELECT $1, 'meta'::regclass::oid::text ON CONFLICT (key) DO NOTHING`, metaTableOID)
	if err != nil {
		return db.wrap("recording the meta table's identity", err)
	}
	tl, ok, err := db.timeline(ctx)
	if err != nil || !ok {
		return err
	}
	_, err = db.sql.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, metaTimeline, tl)
	return db.wrap("recording the server's timeline", err)
}

// metaTimeline holds, in a PostgreSQL state database, the timeline of the
// server that psa-syncd first wrote it on (recordTableOID). A physical
// copy keeps the meta table's OID (metaTableOID), but every recovery that
// ends on a copy starts a new timeline: a point-in-time recovery, a base
// backup restored with recovery.signal or standby.signal, a replica
// promoted (its last transactions may never have reached it). A server on
// another timeline than the recorded one is a restored copy for
// RestoredBackup until an operator confirms it (ConfirmRestore). A
// planned failover to a synchronous standby, which lost nothing, starts a
// new timeline too, and is not told apart.
const metaTimeline = "pg_timeline"

// timeline returns the timeline of the PostgreSQL server the database is
// on, as a decimal number: the first part of the name of the WAL file
// being written, which pg_walfile_name gives any user (unlike
// pg_control_checkpoint, whose timeline is that of the last checkpoint,
// and lags a promotion). ok is false, with no error, on a server that
// offers no such function, or not to this user, or has no WAL of its own
// (a managed service's own storage): no timeline is recorded or compared
// there.
func (db *DB) timeline(ctx context.Context) (tl string, ok bool, err error) {
	var name string
	err = db.sql.QueryRowContext(ctx, `SELECT pg_walfile_name(pg_current_wal_lsn())`).Scan(&name)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42883" || pgErr.Code == "42501" || pgErr.Code == "0A000" || pgErr.Code == "55000") {
		return "", false, nil
	}
	if err != nil {
		return "", false, db.wrap("reading the server's timeline", err)
	}
	n, err := strconv.ParseUint(name[:min(len(name), 8)], 16, 32)
	if err != nil || len(name) != 24 {
		return "", false, fmt.Errorf("state: the server's WAL file name %q holds no timeline", name)
	}
	return strconv.FormatUint(n, 10), true, nil
}

// Timelines returns the PostgreSQL timeline recorded in the database
// (metaTimeline) and the server's current one, "" where unknown (SQLite, a
// server that does not give it, a database no psa-syncd of this version
// wrote yet): a restored copy's log and refusal name both.
func (db *DB) Timelines() (recorded, current string, err error) {
	if db.dialect != dialectPostgres {
		return "", "", nil
	}
	ctx, cancel := db.ctx()
	defer cancel()
	err = db.sql.QueryRowContext(ctx, `SELECT COALESCE((SELECT value FROM meta WHERE key = $1), '')`, metaTimeline).Scan(&recorded)
	if err != nil {
		return "", "", db.wrap("reading the recorded timeline", err)
	}
	current, _, err = db.timeline(ctx)
	return recorded, current, err
}

// RestoredBackup reports whether this database is a restored backup whose
// restore no operator has confirmed yet (ConfirmRestore), and when the
// copy was taken: a copy written by Backup (SQLite, put back in place of a
// lost or damaged one), which holds that time, or a PostgreSQL database
// restored from a pg_dump of a psa-syncd that recorded its meta table's
// OID (metaTableOID), or on a server whose timeline is not the one
// recorded (metaTimeline: a point-in-time recovery, a promoted replica;
// see Timelines), whose time is that of the last pass, intent, ledger
// entry or ticket record the copy records (zero: none), a time at or
// before the dump: what psa-syncd wrote to the PSA since then is what to
// check. The ledger and the ticket records of such
// a database lack what psa-syncd did after that time: for Kaseya BMS,
// whose quantities only the ledger records, a pass would post the changes
// made since again; a ticket pass would send resolve notes again and take
// its own closes for a technician's.
func (db *DB) RestoredBackup() (time.Time, bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var v string
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT value FROM meta WHERE key = ?`), metaBackupTakenAt).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return db.restoredDump(ctx)
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

// restoredDump is RestoredBackup for a PostgreSQL database restored from
// a dump (metaTableOID) or a physical copy (metaTimeline).
func (db *DB) restoredDump(ctx context.Context) (time.Time, bool, error) {
	if db.dialect != dialectPostgres {
		return time.Time{}, false, nil
	}
	var (
		differs  sql.NullBool
		recorded sql.NullString
	)
	err := db.sql.QueryRowContext(ctx, `SELECT (SELECT value FROM meta WHERE key = $1) <> 'meta'::regclass::oid::text,
		(SELECT value FROM meta WHERE key = $2)`, metaTableOID, metaTimeline).Scan(&differs, &recorded)
	if err != nil {
		return time.Time{}, false, db.wrap("reading the meta table's identity", err)
	}
	// NULL: no OID or timeline recorded yet (a database no psa-syncd of
	// this version opened for writing yet).
	moved := false
	if recorded.Valid {
		tl, ok, err := db.timeline(ctx)
		if err != nil {
			return time.Time{}, false, err
		}
		moved = ok && tl != recorded.String
	}
	if !moved && (!differs.Valid || !differs.Bool) {
		return time.Time{}, false, nil
	}
	// Only for a restored database: these read whole tables.
	var last sql.NullTime
	err = db.sql.QueryRowContext(ctx, `SELECT GREATEST((SELECT MAX(GREATEST(started, finished)) FROM runs), (SELECT MAX(created) FROM intents),
		(SELECT MAX(at) FROM ledger), (SELECT MAX(GREATEST(created, updated, closed_at)) FROM tickets))`).Scan(&last)
	if err != nil {
		return time.Time{}, true, db.wrap("reading the time of the restored database's last write", err)
	}
	return last.Time, true, nil
}

// ConfirmRestore removes the mark of RestoredBackup: an operator has
// checked what psa-syncd wrote since the backup was taken, and passes may
// write again. It is needed once per restore. On PostgreSQL it records the
// restored meta table's OID as the database's own (metaTableOID), and the
// server's timeline (metaTimeline).
func (db *DB) ConfirmRestore() error {
	ctx, cancel := db.ctx()
	defer cancel()
	_, err := db.sql.ExecContext(ctx, db.q(`DELETE FROM meta WHERE key = ?`), metaBackupTakenAt)
	if err == nil && db.dialect == dialectPostgres {
		_, err = db.sql.ExecContext(ctx, `INSERT INTO meta (key, value) SELECT $1, 'meta'::regclass::oid::text
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, metaTableOID)
	}
	if err == nil && db.dialect == dialectPostgres {
		tl, ok, terr := db.timeline(ctx)
		if terr != nil || !ok {
			return terr
		}
		_, err = db.sql.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, metaTimeline, tl)
	}
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
