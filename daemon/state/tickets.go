package state

import (
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// Ensure DB satisfies the ticket engine's store.
var _ tickets.Store = (*DB)(nil)

// bucketTickets maps source\x00customer_id\x00alert_key to a JSON
// tickets.Record. It is created on first use, so databases written before
// ticket sync need no migration.
var bucketTickets = []byte("tickets")

func ticketKey(source, customerID, alertKey string) ([]byte, error) {
	for _, s := range []string{source, customerID, alertKey} {
		if s == "" || strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("state: ticket key needs three non-empty ids without NUL bytes, got %q, %q and %q", source, customerID, alertKey)
		}
	}
	return []byte(source + "\x00" + customerID + "\x00" + alertKey), nil
}

func ticketsBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists(bucketTickets)
	if err != nil {
		return nil, fmt.Errorf("state: creating bucket %s: %w", bucketTickets, err)
	}
	return b, nil
}

// CreateTicketIntent stores r if no record has its key; the check and the
// write are one transaction, committed before it returns.
func (db *DB) CreateTicketIntent(r tickets.Record) error {
	key, err := ticketKey(r.Source, r.CustomerID, r.AlertKey)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := ticketsBucket(tx)
		if err != nil {
			return err
		}
		if b.Get(key) != nil {
			return tickets.ErrRecordExists
		}
		return putJSON(tx, bucketTickets, key, r)
	})
}

// PutTicketRecord stores r, replacing the record with its key.
func (db *DB) PutTicketRecord(r tickets.Record) error {
	key, err := ticketKey(r.Source, r.CustomerID, r.AlertKey)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if _, err := ticketsBucket(tx); err != nil {
			return err
		}
		return putJSON(tx, bucketTickets, key, r)
	})
}

// TicketRecords returns a customer's ticket records in alert key order.
func (db *DB) TicketRecords(source, customerID string) ([]tickets.Record, error) {
	if source == "" || customerID == "" {
		return nil, errors.New("state: ticket records need a source and a customer id")
	}
	prefix := []byte(source + "\x00" + customerID + "\x00")
	var out []tickets.Record
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTickets)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			var r tickets.Record
			if err := unmarshal(bucketTickets, k, v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// TicketIntents returns every record whose create is unsettled.
func (db *DB) TicketIntents() ([]tickets.Record, error) {
	var out []tickets.Record
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTickets)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r tickets.Record
			if err := unmarshal(bucketTickets, k, v, &r); err != nil {
				return err
			}
			if r.State == tickets.StateCreating {
				out = append(out, r)
			}
			return nil
		})
	})
	return out, err
}
