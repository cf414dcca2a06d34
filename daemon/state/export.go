package state

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrConflict is returned by PutExport when the revision it was given is
// already stored: another writer got there first.
var ErrConflict = errors.New("state: conflict")

// ErrNoExport is returned by CurrentExport when no export has been stored.
var ErrNoExport = errors.New("state: no mapping export stored")

// Export buckets. They are created by the first PutExport, so a database
// written before psa-syncd kept exports needs no migration.
var (
	// bucketExports maps a big-endian revision to a JSON ExportVersion.
	bucketExports = []byte("exports")
	// bucketExportBodies maps a big-endian revision to the export's bytes.
	bucketExportBodies = []byte("export_bodies")
)

// ExportVersion describes one accepted version of the mapping export, when
// psa-syncd is the export store. The versions are the audit trail of
// mapping changes.
type ExportVersion struct {
	// Revision is the store's version counter: 1 for the first export,
	// then one more than the previous version.
	Revision int64 `json:"revision"`
	// Digest is the export's SHA-256, as "sha256:<hex>".
	Digest string `json:"digest"`
	// Size is the export's length in bytes.
	Size int64     `json:"size"`
	At   time.Time `json:"at"`
	// Source says who wrote the version, for example the remote address
	// of the HTTP request.
	Source string `json:"source,omitempty"`
}

// PutExport stores body as export version v. The caller assigns
// v.Revision as the current revision plus one (1 for the first); when
// that revision is already stored, PutExport returns ErrConflict and
// stores nothing. A revision that skips ahead of the current one is
// refused too, so that revisions stay contiguous.
func (db *DB) PutExport(v ExportVersion, body []byte) error {
	if v.Revision < 1 {
		return fmt.Errorf("state: export revision must be positive, got %d", v.Revision)
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		versions, err := tx.CreateBucketIfNotExists(bucketExports)
		if err != nil {
			return fmt.Errorf("state: creating bucket %s: %w", bucketExports, err)
		}
		bodies, err := tx.CreateBucketIfNotExists(bucketExportBodies)
		if err != nil {
			return fmt.Errorf("state: creating bucket %s: %w", bucketExportBodies, err)
		}
		var current int64
		if k, _ := versions.Cursor().Last(); k != nil {
			current = btoi(k)
		}
		if v.Revision <= current {
			return fmt.Errorf("%w: export revision %d is already stored", ErrConflict, v.Revision)
		}
		if v.Revision != current+1 {
			return fmt.Errorf("state: export revision %d does not follow the stored revision %d", v.Revision, current)
		}
		if err := putJSON(tx, bucketExports, itob(v.Revision), v); err != nil {
			return err
		}
		if err := bodies.Put(itob(v.Revision), body); err != nil {
			return fmt.Errorf("state: storing export revision %d: %w", v.Revision, err)
		}
		return nil
	})
}

// CurrentExport returns the newest export version and its bytes, or
// ErrNoExport when none has been stored.
func (db *DB) CurrentExport() (ExportVersion, []byte, error) {
	var (
		v    ExportVersion
		body []byte
	)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		versions := tx.Bucket(bucketExports)
		if versions == nil {
			return ErrNoExport
		}
		k, data := versions.Cursor().Last()
		if k == nil {
			return ErrNoExport
		}
		if err := unmarshal(bucketExports, k, data, &v); err != nil {
			return err
		}
		b := tx.Bucket(bucketExportBodies)
		if b == nil || b.Get(k) == nil {
			return corrupt(db.path, fmt.Errorf("export revision %d has no body", btoi(k)))
		}
		// bbolt's bytes are only valid inside the transaction.
		body = append([]byte(nil), b.Get(k)...)
		return nil
	})
	return v, body, err
}

// ExportHistory returns up to limit export versions, newest first. A limit
// of 0 or less means all of them.
func (db *DB) ExportHistory(limit int) ([]ExportVersion, error) {
	out := []ExportVersion{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		versions := tx.Bucket(bucketExports)
		if versions == nil {
			return nil
		}
		return reverse(versions, limit, func(k, data []byte) error {
			var v ExportVersion
			if err := unmarshal(bucketExports, k, data, &v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	return out, err
}
