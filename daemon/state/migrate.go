package state

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
)

// The schema is changed only by adding a migration: a file
// migrations/<dialect>/NNNN_<name>.sql in both dialects, with the same
// number and name, and, for a change of the stored data that SQL cannot
// word in both dialects, a step in Go (migrationSteps). A migration is
// never edited once released.
//
//go:embed migrations
var migrationFiles embed.FS

// SchemaVersion is the schema version this package migrates databases to:
// the number of the newest migration. Open refuses a database with a newer
// version, so that an old binary never misreads (or rewrites) records it
// does not understand.
const SchemaVersion = 14

// InstanceSchemaVersion is the schema version from which a state database
// records the PSA instance whose usage it holds (BoundInstance): a
// database of an older version, opened with Config.Existing, has no such
// record to read.
const InstanceSchemaVersion = 7

// migrationLockKey serialises migrations of PostgreSQL databases when
// several psa-syncd start at once (a transaction-level advisory lock).
const migrationLockKey int64 = 0x7073612d6d696772 // "psa-migr"

// migrationSteps are the steps in Go of the migrations that have one, by
// version: each runs in the migration's transaction, after its SQL.
var migrationSteps = map[int]func(ctx context.Context, db *DB, tx *sql.Tx) error{
	12: rewriteRecordedTexts,
	13: rewriteSnapshotTexts,
	14: rewriteTextsAgain,
}

// recordedTexts are the columns that hold an error as psa-syncd recorded
// it, by table.
var recordedTexts = [][2]string{{"runs", "error"}, {"customers", "error"}, {"intents", "note"}, {"tickets", "error"}}

// rewriteRecordedTexts rewrites the errors that an older psa-syncd
// recorded with PublicRecordedText, so that the database no longer holds
// the names of the state database that they may carry (migration 12).
func rewriteRecordedTexts(ctx context.Context, db *DB, tx *sql.Tx) error {
	for _, tc := range recordedTexts {
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT `+tc[1]+` FROM `+tc[0]+` WHERE `+tc[1]+` <> ''`)
		if err != nil {
			return err
		}
		rewrite := map[string]string{}
		for rows.Next() {
			var text string
			if err := rows.Scan(&text); err != nil {
				_ = rows.Close()
				return err
			}
			if public := PublicRecordedText(text, db.path); public != text {
				rewrite[text] = public
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for text, public := range rewrite {
			if _, err := tx.ExecContext(ctx, db.q(`UPDATE `+tc[0]+` SET `+tc[1]+` = ? WHERE `+tc[1]+` = ?`), public, text); err != nil {
				return err
			}
		}
	}
	return nil
}

// rewriteTextsAgain runs migrations 12's and 13's rewrites once more
// (migration 14): PublicRecordedText now also replaces the path of a
// SQLite state database that was moved before the upgrade, which the
// rewrites of a database a build of schema version 12 or 13 migrated kept.
// Both leave a text that is already public as it is.
func rewriteTextsAgain(ctx context.Context, db *DB, tx *sql.Tx) error {
	if err := rewriteRecordedTexts(ctx, db, tx); err != nil {
		return err
	}
	return rewriteSnapshotTexts(ctx, db, tx)
}

// compressedSnapshotFields are, by snapshot, the fields that hold JSON
// compressed with gzip (a []byte, which encoding/json writes in base64):
// those of the daemon's last plan (storedPlanJSON), whose changes'
// reasons, failures and writes_held an older psa-syncd stored with the
// name of the state database.
var compressedSnapshotFields = map[string][]string{"last_plan": {"plan_gzip", "plan_columns"}}

// maxCompressedSnapshot bounds the JSON of a compressed field once
// decompressed, as the daemon bounds a stored plan (maxStoredPlan): a
// field that decompresses to more is damaged, and kept as it is.
const maxCompressedSnapshot = 256 << 20

// rewriteSnapshotTexts rewrites the strings of the snapshots' JSON, and of
// the JSON in their compressedSnapshotFields, with PublicRecordedText
// (migration 13: migration 12 rewrote only the recordedTexts, and a
// database it migrated is not migrated again). A snapshot that does not
// decode is kept as it is: its reader says it is damaged, as before the
// migration. A string that is already public is unchanged, so a snapshot
// that holds no such name, a newer pass's included, is kept byte for byte.
func rewriteSnapshotTexts(ctx context.Context, db *DB, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT name, value FROM snapshots`)
	if err != nil {
		return err
	}
	public := func(text string) string { return PublicRecordedText(text, db.path) }
	rewrite := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			_ = rows.Close()
			return err
		}
		if v, err := publicSnapshot([]byte(value), compressedSnapshotFields[name], public); err == nil && string(v) != value {
			rewrite[name] = string(v)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for name, value := range rewrite {
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE snapshots SET value = ? WHERE name = ?`), value, name); err != nil {
			return err
		}
	}
	return nil
}

// publicSnapshot returns value, a snapshot's JSON, with its strings, and
// those of the JSON compressed in its fields compressed, rewritten by
// public; value itself when public changes none.
func publicSnapshot(value []byte, compressed []string, public func(string) string) ([]byte, error) {
	out, err := rewriteJSONStrings(value, public)
	if err != nil || len(compressed) == 0 {
		return out, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(out, &fields); err != nil {
		return nil, err
	}
	changed := false
	for _, f := range compressed {
		var z []byte
		if raw, ok := fields[f]; !ok || json.Unmarshal(raw, &z) != nil || len(z) == 0 {
			continue
		}
		data, err := sizecap.Gunzip(z, maxCompressedSnapshot)
		if err != nil {
			return nil, err
		}
		rewritten, err := rewriteJSONStrings(data, public)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(rewritten, data) {
			continue
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(rewritten); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		if fields[f], err = json.Marshal(buf.Bytes()); err != nil {
			return nil, err
		}
		changed = true
	}
	if !changed {
		return out, nil
	}
	return json.Marshal(fields)
}

// jsonString matches a JSON string. In JSON, every quote outside a string
// opens one, so the matches from the start of a document are its strings.
var jsonString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// rewriteJSONStrings returns the JSON document data with each string that
// public changes replaced by the changed one, and the rest as it is.
func rewriteJSONStrings(data []byte, public func(string) string) ([]byte, error) {
	if !json.Valid(data) {
		return nil, errors.New("not JSON")
	}
	var err error
	out := jsonString.ReplaceAllFunc(data, func(quoted []byte) []byte {
		var s string
		if uerr := json.Unmarshal(quoted, &s); uerr != nil {
			err = uerr
			return quoted
		}
		p := public(s)
		if p == s {
			return quoted
		}
		q, merr := json.Marshal(p)
		if merr != nil {
			err = merr
			return quoted
		}
		return q
	})
	return out, err
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations of dialect d in order.
func migrations(d dialect) ([]migration, error) {
	dir := "migrations/sqlite"
	if d == dialectPostgres {
		dir = "migrations/postgres"
	}
	entries, err := migrationFiles.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("state: migration file %s is not named NNNN_name.sql", e.Name())
		}
		data, err := migrationFiles.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(data)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("state: migration %d of %s is numbered %d", i+1, dir, m.version)
		}
	}
	return out, nil
}

// migrate brings the schema up to SchemaVersion in one transaction: either
// every pending migration is applied, or none is.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations(db.dialect)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, db.cfg.ConnectTimeout+db.timeout)
	defer cancel()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return db.classify(err)
	}
	defer func() { _ = tx.Rollback() }()
	if db.dialect == dialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			return db.wrap("waiting for the migration lock", err)
		}
	} else if err := db.checkForeignSQLite(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return db.classify(err)
	}
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return db.classify(err)
	}
	if err := db.newerSchema(cur); err != nil {
		return err
	}
	for _, m := range ms[cur:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return db.wrap(fmt.Sprintf("applying schema migration %d (%s)", m.version, m.name), err)
		}
		if step := migrationSteps[m.version]; step != nil {
			if err := step(ctx, db, tx); err != nil {
				return db.wrap(fmt.Sprintf("applying schema migration %d (%s)", m.version, m.name), err)
			}
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, time.Now().UTC().Format(time.RFC3339)); err != nil {
			return db.wrap(fmt.Sprintf("recording schema migration %d", m.version), err)
		}
	}
	if db.dialect == dialectPostgres && cur < len(ms) {
		if _, err := tx.ExecContext(ctx, `COMMENT ON TABLE schema_migrations IS '`+schemaVersionComment(len(ms))+`'`); err != nil {
			return db.wrap("recording the schema version in the comment of schema_migrations", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return db.wrap("migrating the schema", err)
	}
	if db.dialect == dialectPostgres && cur > 0 && cur < len(ms) {
		db.endOlderLeader(cur, len(ms))
	}
	return nil
}

// schemaVersionCommentPrefix starts the comment that a migration of a
// PostgreSQL database gives schema_migrations, followed by the version:
// the catalog holds it, so that the check of the leadership lock can read
// the version while maintenance locks the table (schemaVersionByComment).
// Every later psa-syncd must keep writing it.
const schemaVersionCommentPrefix = "psa-syncd schema version "

// schemaVersionComment is the comment of schema_migrations at version v.
func schemaVersionComment(v int) string { return schemaVersionCommentPrefix + strconv.Itoa(v) }

// schemaVersionByComment reads the schema version from the comment on
// schema_migrations, without a lock on the table (the name's lookup takes
// none), waiting at most wait for one on the catalog (a VACUUM FULL of
// pg_description), and returns 0 when there is none, or it is not
// psa-syncd's.
func schemaVersionByComment(ctx context.Context, conn *sql.Conn, wait time.Duration) (int, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	var c sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT set_config('lock_timeout', $1, true)`, strconv.FormatInt(max(wait.Milliseconds(), 1), 10)).Scan(&c); err != nil {
		return 0, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT obj_description('schema_migrations'::regclass, 'pg_class')`).Scan(&c); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimPrefix(c.String, schemaVersionCommentPrefix))
	if err != nil || !strings.HasPrefix(c.String, schemaVersionCommentPrefix) {
		return 0, nil
	}
	return v, nil
}

// endOlderLeader ends, right after this process migrated a shared
// PostgreSQL database from schema version from to to, the session that
// holds the leadership lock: that of an older psa-syncd, which would
// otherwise write records of the old schema until its next check of the
// lock read the new version (state.lock_interval), or, when maintenance
// locked schema_migrations in that interval (a VACUUM FULL, a pg_dump
// that an ALTER TABLE queues behind), until the lock went, since a check
// that meets that lock keeps the leadership without reading the version.
// With its session ended the older instance commits no more intent and no
// ticket record (they are committed through that session), its check
// fails at once and it gives the leadership up; it does not take it again
// (TryLead refuses a newer schema). It still sends what it committed
// before, within its lease, as after any loss of the lock's connection.
// Ending another role's session needs membership in that role or in
// pg_signal_backend: a refusal is logged, and the older instance then
// steps down at its next check, as before. Never an error: the migration
// is committed.
func (db *DB) endOlderLeader(from, to int) {
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.sql.QueryContext(ctx, `SELECT l.pid, COALESCE((SELECT holder FROM leader WHERE id = 1), ''), pg_terminate_backend(l.pid)
		FROM pg_locks l WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1 AND l.granted`, leaderLockKey>>32, leaderLockKey&0xffffffff)
	if err == nil {
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			var pid int64
			var holder string
			var ended bool
			if err = rows.Scan(&pid, &holder, &ended); err != nil {
				break
			}
			db.logger().Warn("Ended the session of the active instance, an older psa-syncd, after migrating the shared schema: "+
				"it commits nothing more, gives the leadership up and does not take it again; upgrade it",
				"database", db.path, "from_version", from, "to_version", to, "holder", holder, "pid", pid, "ended", ended)
		}
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		db.logger().Warn("Could not end the session of the active instance after migrating the shared schema; "+
			"an older active psa-syncd steps down at its next check of the leadership lock instead",
			"database", db.path, "from_version", from, "to_version", to, "err", db.wrap("ending the older active instance's session", err))
	}
}

// newerSchema returns the error Open gives a database of schema version
// cur when a newer psa-syncd wrote it (cur > SchemaVersion), else nil.
func (db *DB) newerSchema(cur int) error {
	if cur <= SchemaVersion {
		return nil
	}
	return fmt.Errorf("state: state database %s has schema version %d, but this psa-syncd supports up to %d: "+
		"upgrade psa-syncd or use another state directory", db.quotedPath(), cur, SchemaVersion)
}

// CheckNotNewer returns, for a database opened with Config.Existing (which
// is not migrated), the error with which Open, and so psa-syncd run,
// refuses a database whose schema a newer psa-syncd migrated; nil when its
// schema is this version's or older.
func (db *DB) CheckNotNewer() error {
	cur, err := db.Version()
	if err != nil {
		return err
	}
	return db.newerSchema(cur)
}

// pgUndefinedTable is PostgreSQL's SQLSTATE for a missing table.
const pgUndefinedTable = "42P01"

// CheckVersion requires the schema version this package supports, for a
// database opened read-only or with Config.Existing, which is never
// migrated: the billing-impact report reads the daemon's state as it is.
func (db *DB) CheckVersion() error {
	cur, err := db.Version()
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == pgUndefinedTable:
		return &noStateError{fmt.Sprintf("state: %s has no psa-syncd state yet (no schema_migrations table): start psa-syncd on it first", db.quotedPath())}
	case err != nil:
		return err
	case cur != SchemaVersion:
		return fmt.Errorf("state: %s has schema version %d, but this psa-syncd reads version %d without migrating: "+
			"use the psa-syncd version the daemon runs", db.quotedPath(), cur, SchemaVersion)
	}
	return nil
}

// checkSchema, for a database opened with Config.Existing, requires
// psa-syncd's schema, at any version, and changes nothing.
func (db *DB) checkSchema(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, db.cfg.ConnectTimeout+db.timeout)
	defer cancel()
	q := `SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if db.dialect == dialectPostgres {
		q = `SELECT to_regclass('schema_migrations') IS NOT NULL`
	}
	var ok bool
	if err := db.sql.QueryRowContext(ctx, q).Scan(&ok); err != nil {
		if db.dialect == dialectSQLite {
			return db.classify(err)
		}
		return db.wrap("reading the schema", err)
	}
	if !ok {
		msg := fmt.Sprintf("state: %s holds no psa-syncd state (no schema_migrations table); nothing was changed", db.quotedPath())
		if db.dialect == dialectPostgres {
			// psa-syncd creates its schema in this database when it
			// first starts; an SQLite file without it is another
			// program's, which psa-syncd refuses.
			return &noStateError{msg}
		}
		return errors.New(msg)
	}
	return nil
}

// checkForeignSQLite refuses an SQLite database that has tables but not
// psa-syncd's.
func (db *DB) checkForeignSQLite(ctx context.Context, tx *sql.Tx) error {
	var tables, ours int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(name = 'schema_migrations'), 0) FROM sqlite_master WHERE type = 'table'`).
		Scan(&tables, &ours)
	if err != nil {
		return db.classify(err)
	}
	if tables > 0 && ours == 0 {
		return corrupt(db.path, fmt.Errorf("it has %d tables but no psa-syncd schema", tables))
	}
	return nil
}

// quotedPath is the path in quotes for SQLite files, and the description
// of a PostgreSQL database as it is.
func (db *DB) quotedPath() string {
	if db.dialect == dialectSQLite {
		return strconv.Quote(db.path)
	}
	return db.path
}

// Version returns the schema version of the open database.
func (db *DB) Version() (int, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var v int
	err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, db.wrap("reading the schema version", err)
}
