package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// PutSnapshot stores v as JSON under name, replacing what was stored. A
// snapshot is a value the daemon keeps across restarts without a history:
// the unmapped usage of the last pass, and since when each customer's lines
// are held.
func (db *DB) PutSnapshot(name string, v any) error {
	if name == "" {
		return errors.New("state: snapshot needs a name")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: encoding snapshot %s: %w", name, err)
	}
	what := "storing snapshot " + name
	return db.tx(what, db.putSnapshot(what, name, data))
}

// putSnapshot is PutSnapshot's statement, storing data under name.
func (db *DB) putSnapshot(what, name string, data []byte) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO snapshots (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`), name, string(data))
		return db.wrap(what, err)
	}
}

// Snapshot decodes the value stored under name into v. The bool is false
// when nothing is stored under name.
func (db *DB) Snapshot(name string, v any) (bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var data string
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT value FROM snapshots WHERE name = ?`), name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, db.wrap("reading snapshot "+name, err)
	}
	if err := json.Unmarshal([]byte(data), v); err != nil {
		return true, db.wrap("reading snapshot "+name, err)
	}
	return true, nil
}

// PublicSnapshot is Snapshot with the stored strings rewritten with
// PublicRecordedText, those of its compressedSnapshotFields too, as the
// migration to schema version 13 rewrote them: for a snapshot served
// without credentials that a psa-syncd older than schema version 12 may
// have written after that migration (a rolling upgrade of instances
// sharing a PostgreSQL database, until the older leader steps down),
// naming the state database in its texts. A value that does not decode
// so is decoded as stored, and fails as Snapshot fails.
func (db *DB) PublicSnapshot(name string, v any) (bool, error) {
	data, ok, err := db.SnapshotText(name)
	if !ok || err != nil {
		return false, err
	}
	public := func(text string) string { return PublicRecordedText(text, db.path) }
	value := []byte(data)
	if p, err := publicSnapshot(value, compressedSnapshotFields[name], public); err == nil {
		value = p
	}
	if err := json.Unmarshal(value, v); err != nil {
		return true, db.wrap("reading snapshot "+name, err)
	}
	return true, nil
}

// SnapshotText returns the JSON stored under name, as stored, for
// ReplaceSnapshot; false when nothing is stored under name.
func (db *DB) SnapshotText(name string) (string, bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var data string
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT value FROM snapshots WHERE name = ?`), name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, db.wrap("reading snapshot "+name, err)
	}
	return data, true, nil
}

// ReplaceSnapshot stores v as JSON under name only if what is stored there
// is still old, the text SnapshotText returned (with found false: only if
// nothing is stored), and reports whether it stored v. An edit of a
// snapshot that another writer may store meanwhile (a pass of the instance
// that took over the leadership before this one noticed it lost it)
// reads it again and edits the newer value rather than overwriting it with
// an edit of the older one.
func (db *DB) ReplaceSnapshot(name, old string, found bool, v any) (bool, error) {
	if name == "" {
		return false, errors.New("state: snapshot needs a name")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("state: encoding snapshot %s: %w", name, err)
	}
	what := "storing snapshot " + name
	stored := false
	err = db.tx(what, db.replaceSnapshot(what, name, old, found, data, &stored))
	return stored && err == nil, err
}

// replaceSnapshot is ReplaceSnapshot's statement: it stores data under
// name if old is stored there (found false: if nothing is), and sets
// *stored to whether it did.
func (db *DB) replaceSnapshot(what, name, old string, found bool, data []byte, stored *bool) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		var res sql.Result
		var err error
		if found {
			res, err = tx.ExecContext(ctx, db.q(`UPDATE snapshots SET value = ? WHERE name = ? AND value = ?`), string(data), name, old)
		} else {
			res, err = tx.ExecContext(ctx, db.q(`INSERT INTO snapshots (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), name, string(data))
		}
		if err != nil {
			return db.wrap(what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return db.wrap(what, err)
		}
		*stored = n == 1
		return nil
	}
}
