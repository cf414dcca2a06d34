package state

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Earlier versions of psa-syncd kept their state in a bbolt file named
// FileName. Open imports such a file once, ledger and intents included,
// and keeps it under boltBackupName. This is the only use of bbolt left.

// boltBackupName is where an imported bbolt state file is kept.
func boltBackupName(file string) string { return file + ".bbolt-backup" }

// metaBoltImport records the SHA-256 of the imported bbolt file.
const metaBoltImport = "bbolt_import_sha256"

// boltData is the content of a bbolt state file.
type boltData struct {
	customers []CustomerStatus
	runs      []Run
	intents   []Intent
	ledger    []LedgerEntry
}

// readBolt reads a bbolt state file (schema version 1) without changing it,
// and returns its content and the SHA-256 of the file.
func readBolt(file string) (data boltData, digest string, err error) {
	digest, err = fileSHA256(file)
	if err != nil {
		return data, "", fmt.Errorf("state: reading bbolt state file %q: %w", file, err)
	}
	// bbolt panics on some damaged files; report those as corrupt.
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(file, fmt.Errorf("bbolt: %v", r))
		}
	}()
	bdb, err := bolt.Open(file, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return data, "", fmt.Errorf("state: state database %q is locked by another psa-syncd process", file)
	case errors.As(err, &pathErr):
		return data, "", fmt.Errorf("state: opening bbolt state file %q: %w", file, err)
	case err != nil:
		return data, "", corrupt(file, err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return corrupt(file, err)
		}
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return corrupt(file, errors.New("no meta bucket"))
		}
		if v := string(meta.Get([]byte("schema_version"))); v != "1" {
			return fmt.Errorf("state: bbolt state file %q has schema version %q; this psa-syncd imports version 1 only", file, v)
		}
		if err := eachJSON(tx, file, "customers", &data.customers); err != nil {
			return err
		}
		if err := eachJSON(tx, file, "runs", &data.runs); err != nil {
			return err
		}
		if err := eachJSON(tx, file, "intents", &data.intents); err != nil {
			return err
		}
		return eachJSON(tx, file, "ledger", &data.ledger)
	})
	return data, digest, err
}

// fileSHA256 returns the SHA-256 of the file, read a piece at a time: a
// bbolt file is as large as its state ever was (bbolt does not shrink it),
// and only its digest is wanted, not its content in memory. The records
// are read through bbolt's memory map, and hold no more than the file.
func fileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// eachJSON decodes every value of a bucket, in key order.
func eachJSON[T any](tx *bolt.Tx, file, bucket string, into *[]T) error {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return corrupt(file, fmt.Errorf("bucket %s record %x: %w", bucket, k, err))
		}
		*into = append(*into, v)
		return nil
	})
}

// importBoltIntoSQLite replaces the bbolt file with an SQLite database
// holding the same state; the bbolt file is kept as boltBackupName.
func importBoltIntoSQLite(ctx context.Context, file string, cfg Config) error {
	data, digest, err := readBolt(file)
	if err != nil {
		return err
	}
	return createSQLite(ctx, file, cfg, func(db *DB) error { return db.load(data, digest) })
}

// load inserts the content of a bbolt file, keeping every id, in one
// transaction, and records digest.
func (db *DB) load(d boltData, digest string) error {
	return db.tx("importing the bbolt state file", func(ctx context.Context, tx *sql.Tx) error {
		exec := func(query string, args ...any) error {
			_, err := tx.ExecContext(ctx, db.q(query), args...)
			return db.wrap("importing the bbolt state file", err)
		}
		for _, cs := range d.customers {
			if err := exec(`INSERT INTO customers (`+customerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				cs.Source, cs.CustomerID, cs.CustomerName, cs.CompanyID, cs.ContractID, cs.UsageSync, cs.TicketSync,
				db.tv(cs.LastAttempt), db.tv(cs.LastSuccess), cs.Result, cs.Error, cs.Hint, cs.RunID,
				cs.Updated, cs.Unchanged, cs.Held, cs.Failed); err != nil {
				return err
			}
		}
		for _, r := range d.runs {
			if err := exec(`INSERT INTO runs (`+runColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.ID, r.Trigger, r.DryRun, r.Customer, db.tv(r.Started), db.tv(r.Finished), r.Result, r.Error,
				r.Updated, r.Unchanged, r.Held, r.Failed, r.Requests, r.Period, r.Customers, r.Note); err != nil {
				return err
			}
		}
		for _, in := range d.intents {
			if err := exec(`INSERT INTO intents (`+intentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				in.ID, in.RunID, string(in.System), in.Source, in.CustomerID, in.ContractID, in.ServiceID, in.Before, in.After,
				in.BeforeKnown, db.tv(in.EffectiveDate), db.tv(in.Created), in.State, in.Note); err != nil {
				return err
			}
		}
		for _, e := range d.ledger {
			if err := exec(`INSERT INTO ledger (`+ledgerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				e.Seq, e.RunID, string(e.System), e.Source, e.CustomerID, e.ContractID, e.ServiceID, e.Before, e.After,
				db.tv(e.EffectiveDate), db.tv(e.Time), e.IntentID); err != nil {
				return err
			}
		}
		if db.dialect == dialectPostgres {
			// Explicit ids do not move identity sequences.
			for _, t := range []struct{ table, col string }{{"runs", "id"}, {"intents", "id"}, {"ledger", "seq"}} {
				if err := exec(fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE((SELECT MAX(%s) FROM %s), 0) + 1, false)`,
					t.table, t.col, t.col, t.table)); err != nil {
					return err
				}
			}
		}
		return exec(`INSERT INTO meta (key, value) VALUES (?, ?)`, metaBoltImport, digest)
	})
}

// importedDigest returns the SHA-256 of the bbolt file imported into the
// database, or "".
func (db *DB) importedDigest(ctx context.Context) (string, error) {
	var v string
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT value FROM meta WHERE key = ?`), metaBoltImport).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, db.wrap("reading meta", err)
}

// empty reports whether the database holds no state at all.
func (db *DB) empty(ctx context.Context) (bool, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM customers) + (SELECT COUNT(*) FROM runs) +
		(SELECT COUNT(*) FROM intents) + (SELECT COUNT(*) FROM ledger)`).Scan(&n)
	return n == 0, db.wrap("counting records", err)
}
