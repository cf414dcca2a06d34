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
	return db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO snapshots (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`), name, string(data))
		return db.wrap(what, err)
	})
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
		return true, fmt.Errorf("state: snapshot %s in %s: %w", name, db.path, err)
	}
	return true, nil
}
