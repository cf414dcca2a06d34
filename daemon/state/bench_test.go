package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// BenchmarkIntentCycle measures what every non-idempotent PSA write costs
// the state database: an intent committed before the write, then closed as
// done with its ledger entry, both durable. It runs on SQLite, on
// PostgreSQL (a local cluster with fsync on), and on a bbolt file written the way psa-syncd's state was
// before this package moved to SQL (the same buckets, JSON records and
// fsynced transactions), for comparison, and prints
//
//	BENCH state <driver> intent-cycle us_per_write=...
func BenchmarkIntentCycle(b *testing.B) {
	cycle := func(b *testing.B, driver string, open func(*testing.B) func(i int) error) {
		b.Run(driver, func(b *testing.B) {
			write := open(b)
			start := time.Now()
			n := 0
			for b.Loop() {
				if err := write(n); err != nil {
					b.Fatal(err)
				}
				n++
			}
			us := float64(time.Since(start).Microseconds()) / float64(n)
			b.ReportMetric(us, "us/write")
			fmt.Printf("BENCH state %s intent-cycle us_per_write=%.0f writes=%d\n", driver, us, n)
		})
	}
	sqlWrite := func(cfg func(b *testing.B) Config) func(*testing.B) func(int) error {
		return func(b *testing.B) func(int) error {
			db, err := OpenConfig(b.Context(), cfg(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			if l, err := db.TryLead(b.Context(), LeaderInfo{Holder: "bench"}, time.Second); err != nil || l == nil {
				b.Fatalf("TryLead: %v", err)
			}
			return func(i int) error {
				req := testIntent()
				req.ServiceID = fmt.Sprint(i)
				in, err := db.OpenIntent(req)
				if err != nil {
					return err
				}
				return db.CompleteIntent(in.ID, IntentDone, "", time.Now())
			}
		}
	}
	cycle(b, DriverSQLite, sqlWrite(func(b *testing.B) Config { return Config{Driver: DriverSQLite, Path: b.TempDir()} }))
	if _, err := pgtest.Bin(); err == nil {
		cycle(b, DriverPostgres, sqlWrite(func(b *testing.B) Config {
			url, err := pgtest.New(b, pgtest.Durable).CreateDatabase(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			return Config{Driver: DriverPostgres, URL: url}
		}))
	}
	cycle(b, "bbolt", openBoltBench)
}

// openBoltBench writes intents and ledger entries the way the bbolt state
// of earlier versions did.
func openBoltBench(b *testing.B) func(int) error {
	bdb, err := bolt.Open(filepath.Join(b.TempDir(), FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bdb.Close() })
	buckets := [][]byte{[]byte("intents"), []byte("intents_open"), []byte("ledger"), []byte("ledger_last")}
	if err := bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	key := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	return func(i int) error {
		in := testIntent()
		in.ServiceID = fmt.Sprint(i)
		in.State = IntentOpen
		var id uint64
		if err := bdb.Update(func(tx *bolt.Tx) error {
			id, _ = tx.Bucket(buckets[0]).NextSequence()
			data, err := json.Marshal(in)
			if err != nil {
				return err
			}
			if err := tx.Bucket(buckets[0]).Put(key(id), data); err != nil {
				return err
			}
			return tx.Bucket(buckets[1]).Put(key(id), nil)
		}); err != nil {
			return err
		}
		return bdb.Update(func(tx *bolt.Tx) error {
			var cur Intent
			if err := json.Unmarshal(tx.Bucket(buckets[0]).Get(key(id)), &cur); err != nil {
				return err
			}
			cur.State = IntentDone
			data, _ := json.Marshal(cur)
			if err := tx.Bucket(buckets[0]).Put(key(id), data); err != nil {
				return err
			}
			if err := tx.Bucket(buckets[1]).Delete(key(id)); err != nil {
				return err
			}
			seq, _ := tx.Bucket(buckets[2]).NextSequence()
			e, _ := json.Marshal(LedgerEntry{Seq: int64(seq), ContractID: cur.ContractID, ServiceID: cur.ServiceID, After: cur.After, Time: time.Now()})
			if err := tx.Bucket(buckets[2]).Put(key(seq), e); err != nil {
				return err
			}
			return tx.Bucket(buckets[3]).Put([]byte(cur.ContractID+"\x00"+cur.ServiceID), key(seq))
		})
	}
}
