package state

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketSnapshots maps a name to the JSON of a value the daemon keeps
// across restarts without a history: the unmapped usage of the last pass,
// and since when each customer's lines are held. It is created on first
// use.
var bucketSnapshots = []byte("snapshots")

// PutSnapshot stores v as JSON under name, replacing what was stored.
func (db *DB) PutSnapshot(name string, v any) error {
	if name == "" {
		return errors.New("state: snapshot needs a name")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: encoding snapshot %s: %w", name, err)
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSnapshots)
		if err != nil {
			return fmt.Errorf("state: creating bucket %s in %q: %w", bucketSnapshots, db.path, err)
		}
		if err := b.Put([]byte(name), data); err != nil {
			return fmt.Errorf("state: storing snapshot %s: %w", name, err)
		}
		return nil
	})
}

// Snapshot decodes the value stored under name into v. The bool is false
// when nothing is stored under name.
func (db *DB) Snapshot(name string, v any) (bool, error) {
	var found bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		if b == nil {
			return nil
		}
		data := b.Get([]byte(name))
		if data == nil {
			return nil
		}
		found = true
		return unmarshal(bucketSnapshots, []byte(name), data, v)
	})
	return found, err
}
