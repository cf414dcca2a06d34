package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// openBench opens cfg as the active instance, closed when b ends.
func openBench(b *testing.B, cfg Config) *DB {
	db, err := OpenConfig(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if l, err := db.TryLead(b.Context(), LeaderInfo{Holder: "bench"}, time.Second); err != nil || l == nil {
		b.Fatalf("TryLead: %v", err)
	}
	return db
}

// benchWriter is one state database under a write benchmark.
type benchWriter struct {
	// write does the i-th write; finish, when set, ends the run (Flush).
	write  func(i int) error
	finish func() error
	// commits counts the transactions committed so far.
	commits func() int64
}

// BenchmarkIntentCycle measures what every non-idempotent PSA write costs
// the state database: an intent committed before the write, then closed as
// done with its ledger entry, both durable. It runs on SQLite, on
// PostgreSQL (a local cluster with fsync on), and on a bbolt file written the way psa-syncd's state was
// before this package moved to SQL (the same buckets, JSON records and
// fsynced transactions), for comparison. The SQL drivers run it with one
// writer and with 3 and 16 concurrent writers (Autotask's 3 concurrent
// requests per endpoint, and a wider engine), whose intents share group
// commits, and then again with the closes deferred (CompleteIntentDeferred,
// flushed at the end), which then ride with the next intent's commit. It
// prints, per driver, case and concurrency,
//
//	BENCH state <driver> intent-cycle[-deferred] concurrency=N us_per_write=... writes=... commits_per_write=...
//
// where us_per_write is the wall time of all writes divided by their
// number, so the concurrent lines show throughput.
func BenchmarkIntentCycle(b *testing.B) {
	cycle := func(b *testing.B, driver, name string, concurrency int, open func(*testing.B) benchWriter) {
		b.Run(fmt.Sprintf("%s/%s/concurrency=%d", driver, name, concurrency), func(b *testing.B) {
			w := open(b)
			work := make(chan int)
			errs := make(chan error, concurrency)
			for range concurrency {
				go func() {
					var err error
					for i := range work {
						if err == nil {
							err = w.write(i)
						}
					}
					errs <- err
				}()
			}
			c0 := w.commits()
			start := time.Now()
			n := 0
			for b.Loop() {
				work <- n
				n++
			}
			close(work)
			for range concurrency {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			if w.finish != nil {
				if err := w.finish(); err != nil {
					b.Fatal(err)
				}
			}
			us := float64(time.Since(start).Microseconds()) / float64(n)
			perWrite := float64(w.commits()-c0) / float64(n)
			b.ReportMetric(us, "us/write")
			b.ReportMetric(perWrite, "commits/write")
			fmt.Printf("BENCH state %s %s concurrency=%d us_per_write=%.0f writes=%d commits_per_write=%.2f\n",
				driver, name, concurrency, us, n, perWrite)
		})
	}
	sqlWrite := func(cfg func(b *testing.B) Config, deferred bool) func(*testing.B) benchWriter {
		return func(b *testing.B) benchWriter {
			db := openBench(b, cfg(b))
			w := benchWriter{commits: db.commits.Load}
			w.write = func(i int) error {
				req := testIntent()
				req.ServiceID = fmt.Sprint(i)
				in, err := db.OpenIntent(req)
				if err != nil {
					return err
				}
				if deferred {
					return db.CompleteIntentDeferred(IntentCompletion{ID: in.ID, State: IntentDone})
				}
				return db.CompleteIntent(in.ID, IntentDone, "", time.Now())
			}
			if deferred {
				w.finish = func() error { return db.Flush(b.Context()) }
			}
			return w
		}
	}
	var pg *pgtest.Cluster
	pgConfig := func(b *testing.B) Config {
		if pg == nil {
			var err error
			if pg, err = pgtest.Start(pgtest.Durable); err != nil {
				b.Fatal(err)
			}
		}
		url, err := pg.CreateDatabase(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		return Config{Driver: DriverPostgres, URL: url}
	}
	_, pgErr := pgtest.Bin()
	for _, deferred := range []bool{false, true} {
		name := "intent-cycle"
		if deferred {
			name += "-deferred"
		}
		for _, concurrency := range []int{1, 3, 16} {
			cycle(b, DriverSQLite, name, concurrency, sqlWrite(func(b *testing.B) Config {
				return Config{Driver: DriverSQLite, Path: b.TempDir()}
			}, deferred))
			if pgErr == nil {
				cycle(b, DriverPostgres, name, concurrency, sqlWrite(pgConfig, deferred))
			}
		}
	}
	if pg != nil {
		if err := pg.Stop(); err != nil {
			b.Error(err)
		}
	}
	cycle(b, "bbolt", "intent-cycle", 1, openBoltBench)
}

// openBoltBench writes intents and ledger entries the way the bbolt state
// of earlier versions did.
func openBoltBench(b *testing.B) benchWriter {
	var commits atomic.Int64
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
	return benchWriter{commits: commits.Load, write: func(i int) error {
		commits.Add(2)
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
	}}
}

// BenchmarkCustomerStatuses measures storing the statuses of a pass's
// customers (one per benchmark iteration), the only writes of a pass that
// changes nothing: one commit each (PutCustomerStatus, one after another,
// as the engine stores them), deferred (PutCustomerStatusDeferred, then
// Flush) or in one batch (PutCustomerStatusBatch). It prints
//
//	BENCH state <driver> statuses mode=<each|deferred|batch> customers=N ms=... commits=...
func BenchmarkCustomerStatuses(b *testing.B) {
	modes := []string{"each", "deferred", "batch"}
	run := func(b *testing.B, driver string, cfg func(b *testing.B) Config) {
		for _, mode := range modes {
			b.Run(driver+"/"+mode, func(b *testing.B) {
				db := openBench(b, cfg(b))
				c0 := db.commits.Load()
				start := time.Now()
				var batch []CustomerStatus
				n := 0
				var err error
				for b.Loop() {
					cs := CustomerStatus{Source: "sophos", CustomerID: fmt.Sprintf("cust-%06d", n), ContractID: fmt.Sprint(n),
						UsageSync: true, LastAttempt: start, LastSuccess: start, Result: CustomerSucceeded, RunID: "1", Unchanged: 5}
					n++
					switch mode {
					case "each":
						err = db.PutCustomerStatus(cs)
					case "deferred":
						err = db.PutCustomerStatusDeferred(cs)
					case "batch":
						batch = append(batch, cs)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				switch mode {
				case "deferred":
					err = db.Flush(b.Context())
				case "batch":
					err = db.PutCustomerStatusBatch(b.Context(), batch)
				}
				if err != nil {
					b.Fatal(err)
				}
				ms := float64(time.Since(start).Microseconds()) / 1000
				fmt.Printf("BENCH state %s statuses mode=%s customers=%d ms=%.0f commits=%d\n", driver, mode, n, ms, db.commits.Load()-c0)
			})
		}
	}
	run(b, DriverSQLite, func(b *testing.B) Config { return Config{Driver: DriverSQLite, Path: b.TempDir()} })
	if _, err := pgtest.Bin(); err == nil {
		pg := pgtest.New(b, pgtest.Durable)
		run(b, DriverPostgres, func(b *testing.B) Config {
			url, err := pg.CreateDatabase(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			return Config{Driver: DriverPostgres, URL: url}
		})
	}
}
