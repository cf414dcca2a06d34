package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// FileName is the name of the database file inside a state directory.
const FileName = "psa-syncd.db"

// SchemaVersion is the version of the on-disk layout this package writes.
// Open refuses a database written by a newer version, so that an old binary
// never misreads (or rewrites) records it does not understand.
const SchemaVersion = 1

// lockTimeout bounds the wait for the database's file lock. bbolt would
// otherwise wait forever when another psa-syncd holds the file.
const lockTimeout = time.Second

// Bucket names. Keys are documented next to each bucket.
var (
	// bucketMeta holds "schema_version" as a decimal string.
	bucketMeta = []byte("meta")
	// bucketCustomers maps source\x00customer_id to a JSON CustomerStatus.
	bucketCustomers = []byte("customers")
	// bucketRuns maps a big-endian run id to a JSON Run.
	bucketRuns = []byte("runs")
	// bucketIntents maps a big-endian intent id to a JSON Intent.
	bucketIntents = []byte("intents")
	// bucketOpenIntents maps the big-endian id of every open intent to
	// nothing, so start-up reconciliation does not scan closed intents.
	bucketOpenIntents = []byte("intents_open")
	// bucketLedger maps a big-endian sequence number to a JSON
	// LedgerEntry. It is append-only.
	bucketLedger = []byte("ledger")
	// bucketLedgerLast maps contract_id\x00service_id to the big-endian
	// sequence number of the newest ledger entry for that line.
	bucketLedgerLast = []byte("ledger_last")

	keySchemaVersion = []byte("schema_version")

	allBuckets = [][]byte{
		bucketMeta, bucketCustomers, bucketRuns, bucketIntents,
		bucketOpenIntents, bucketLedger, bucketLedgerLast,
	}
)

// Intent states.
const (
	IntentOpen   = "open"
	IntentDone   = "done"
	IntentFailed = "failed"
	IntentReview = "review"
)

// Run results.
const (
	RunRunning = "running"
	RunSuccess = "success"
	RunPartial = "partial"
	RunFailure = "failure"
)

// Customer results.
const (
	CustomerSucceeded = "succeeded"
	CustomerFailed    = "failed"
	CustomerPartial   = "partial"
	CustomerHeld      = "held"
	CustomerSkipped   = "skipped"
)

// DB is the daemon's state database. Its methods are safe for concurrent
// use; writes are serialised by bbolt and each one is committed (and
// fsynced) before the method returns.
type DB struct {
	bolt *bolt.DB
	path string
}

// CustomerStatus is the outcome of the last sync attempt for one source
// customer. It is keyed by (Source, CustomerID).
type CustomerStatus struct {
	Source       string    `json:"source"`
	CustomerID   string    `json:"customer_id"`
	CustomerName string    `json:"customer_name,omitempty"`
	CompanyID    string    `json:"company_id,omitempty"`
	ContractID   string    `json:"contract_id,omitempty"`
	UsageSync    bool      `json:"usage_sync"`
	TicketSync   bool      `json:"ticket_sync"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	// Result is one of succeeded, failed, partial, held or skipped.
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Hint tells the operator how to fix Error.
	Hint      string `json:"hint,omitempty"`
	RunID     string `json:"run_id,omitempty"`
	Updated   int    `json:"updated"`
	Unchanged int    `json:"unchanged"`
	Held      int    `json:"held"`
	Failed    int    `json:"failed"`
}

// Run is one sync pass, real or dry.
type Run struct {
	ID      int64  `json:"id"`
	Trigger string `json:"trigger"`
	DryRun  bool   `json:"dry_run"`
	// Customer is the one source customer the pass was limited to, or "".
	Customer string    `json:"customer,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Result is one of running, success, partial or failure.
	Result    string `json:"result"`
	Error     string `json:"error,omitempty"`
	Updated   int    `json:"updated"`
	Unchanged int    `json:"unchanged"`
	Held      int    `json:"held"`
	Failed    int    `json:"failed"`
	Requests  int    `json:"requests"`
	Period    string `json:"period,omitempty"`
	Customers int    `json:"customers"`
}

// Intent records a non-idempotent PSA write before it is sent. An intent
// that is still open after a crash means the write may or may not have
// reached the PSA; the daemon settles it by re-reading the PSA instead of
// sending the write again.
type Intent struct {
	ID            int64      `json:"id"`
	RunID         int64      `json:"run_id"`
	System        psa.System `json:"system"`
	Source        string     `json:"source"`
	CustomerID    string     `json:"customer_id"`
	ContractID    string     `json:"contract_id"`
	ServiceID     string     `json:"service_id"`
	Before        int64      `json:"before"`
	After         int64      `json:"after"`
	BeforeKnown   bool       `json:"before_known"`
	EffectiveDate time.Time  `json:"effective_date"`
	Created       time.Time  `json:"created"`
	// State is one of open, done, failed or review.
	State string `json:"state"`
	Note  string `json:"note,omitempty"`
}

// LedgerEntry is one quantity change that reached the PSA. The ledger is
// append-only: entries are never updated or deleted.
type LedgerEntry struct {
	Seq           int64      `json:"seq"`
	RunID         int64      `json:"run_id"`
	System        psa.System `json:"system"`
	Source        string     `json:"source"`
	CustomerID    string     `json:"customer_id"`
	ContractID    string     `json:"contract_id"`
	ServiceID     string     `json:"service_id"`
	Before        int64      `json:"before"`
	After         int64      `json:"after"`
	EffectiveDate time.Time  `json:"effective_date"`
	Time          time.Time  `json:"time"`
	IntentID      int64      `json:"intent_id"`
}

// Open opens the state database, creating it (and its directory, mode
// 0700) when missing. path is either the database file, when it ends in
// ".db", or the state directory, in which case the file is FileName inside
// it.
//
// Only one process may have the database open: a second Open fails after
// a second with an error saying so. A file that is not a valid database is
// reported with its path and left untouched.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("state: no state path given")
	}
	file := path
	if filepath.Ext(path) != ".db" {
		file = filepath.Join(path, FileName)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("state: creating state directory: %w", err)
	}
	bdb, err := openBolt(file)
	if err != nil {
		return nil, err
	}
	db := &DB{bolt: bdb, path: file}
	if err := db.init(); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	return db, nil
}

// openBolt opens the bbolt file and classifies failures. bbolt panics on
// some damaged files (a bad freelist page, for instance); the panic is
// turned into a corruption error, and the file bbolt opened is closed
// through the OpenFile hook, since bbolt itself never returns it. bbolt's
// memory map of the file cannot be reached, and it keeps the file lock
// alive, so after such an error the process should exit rather than try
// again (psa-syncd does).
func openBolt(file string) (bdb *bolt.DB, err error) {
	var f *os.File
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				_ = f.Close()
			}
			bdb, err = nil, corrupt(file, fmt.Errorf("%v", r))
		}
	}()
	bdb, err = bolt.Open(file, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		// NoSync stays false: every commit is fsynced, which is what makes
		// an intent durable before its write is sent.
		NoSync: false,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			var err error
			f, err = os.OpenFile(name, flag, perm)
			return f, err
		},
	})
	var pathErr *fs.PathError
	switch {
	case err == nil:
		return bdb, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("state: state database %q is locked by another psa-syncd process", file)
	case errors.As(err, &pathErr):
		// The file could not be opened, locked, read or mapped: a
		// permission or I/O problem, not a damaged file.
		return nil, fmt.Errorf("state: opening state database %q: %w", file, err)
	default:
		// Everything else bbolt reports is a file that is not a valid
		// database: bad magic, checksum, version or size.
		return nil, corrupt(file, err)
	}
}

func corrupt(file string, err error) error {
	return fmt.Errorf("state: state database %q is corrupt or not a psa-syncd database (%w); "+
		"it was left untouched: restore it from a backup or move it aside to start with empty state", file, err)
}

// init checks the whole file for consistency, creates missing buckets and
// checks the schema version. Checking up front (the file is small) turns
// damage into a clear error at start-up instead of a panic mid-pass; bbolt
// can panic on a damaged page, so a panic here is reported as corruption too.
func (db *DB) init() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(db.path, fmt.Errorf("%v", r))
		}
	}()
	err = db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return corrupt(db.path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("state: creating bucket %s in %q: %w", name, db.path, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keySchemaVersion)
		if v == nil {
			return meta.Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion)))
		}
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return corrupt(db.path, fmt.Errorf("bad schema version %q", v))
		}
		if n > SchemaVersion {
			return fmt.Errorf("state: state database %q has schema version %d, but this psa-syncd supports up to %d: "+
				"upgrade psa-syncd or use another state directory", db.path, n, SchemaVersion)
		}
		return nil
	})
}

// Path returns the path of the database file.
func (db *DB) Path() string { return db.path }

// Close closes the database and releases its file lock.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("state: closing %q: %w", db.path, err)
	}
	return nil
}

// PutCustomerStatus stores cs, replacing the status stored for the same
// (Source, CustomerID).
func (db *DB) PutCustomerStatus(cs CustomerStatus) error {
	key, err := pairKey("customer", cs.Source, cs.CustomerID)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return putJSON(tx, bucketCustomers, key, cs)
	})
}

// CustomerStatus returns the stored status of one customer. The bool is
// false when none is stored.
func (db *DB) CustomerStatus(source, customerID string) (CustomerStatus, bool, error) {
	var cs CustomerStatus
	key, err := pairKey("customer", source, customerID)
	if err != nil {
		return cs, false, err
	}
	var found bool
	err = db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx, bucketCustomers, key, &cs)
		return err
	})
	return cs, found, err
}

// CustomerStatuses returns every stored customer status, sorted by source
// and then customer id.
func (db *DB) CustomerStatuses() ([]CustomerStatus, error) {
	var out []CustomerStatus
	err := db.bolt.View(func(tx *bolt.Tx) error {
		// Keys are source\x00customer_id and bbolt iterates in byte order,
		// which is exactly (source, customer_id) order.
		return tx.Bucket(bucketCustomers).ForEach(func(k, v []byte) error {
			var cs CustomerStatus
			if err := unmarshal(bucketCustomers, k, v, &cs); err != nil {
				return err
			}
			out = append(out, cs)
			return nil
		})
	})
	return out, err
}

// BeginRun stores r as a new run and returns it with its ID assigned. An
// empty Result becomes "running" and a zero Started becomes now.
func (db *DB) BeginRun(r Run) (Run, error) {
	if r.Result == "" {
		r.Result = RunRunning
	}
	if r.Started.IsZero() {
		r.Started = time.Now().UTC()
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		id, err := tx.Bucket(bucketRuns).NextSequence()
		if err != nil {
			return fmt.Errorf("state: allocating run id: %w", err)
		}
		r.ID = int64(id)
		return putJSON(tx, bucketRuns, itob(r.ID), r)
	})
	if err != nil {
		return Run{}, err
	}
	return r, nil
}

// SaveRun replaces a run started with BeginRun.
func (db *DB) SaveRun(r Run) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if r.ID <= 0 || tx.Bucket(bucketRuns).Get(itob(r.ID)) == nil {
			return fmt.Errorf("state: saving run %d: no such run", r.ID)
		}
		return putJSON(tx, bucketRuns, itob(r.ID), r)
	})
}

// Run returns one run. The bool is false when there is no such run.
func (db *DB) Run(id int64) (Run, bool, error) {
	var r Run
	var found bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx, bucketRuns, itob(id), &r)
		return err
	})
	return r, found, err
}

// Runs returns up to limit runs, newest first. A limit of 0 or less means
// all of them.
func (db *DB) Runs(limit int) ([]Run, error) {
	var out []Run
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return reverse(tx.Bucket(bucketRuns), limit, func(k, v []byte) error {
			var r Run
			if err := unmarshal(bucketRuns, k, v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// OpenIntent records in as an open intent and returns it with its ID
// assigned, State "open" and, when zero, Created set to now. The record is
// committed and fsynced before OpenIntent returns, so the caller may send
// the write once it gets a nil error and never before.
func (db *DB) OpenIntent(in Intent) (Intent, error) {
	if _, err := pairKey("intent", in.ContractID, in.ServiceID); err != nil {
		return Intent{}, err
	}
	in.State = IntentOpen
	if in.Created.IsZero() {
		in.Created = time.Now().UTC()
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		id, err := tx.Bucket(bucketIntents).NextSequence()
		if err != nil {
			return fmt.Errorf("state: allocating intent id: %w", err)
		}
		in.ID = int64(id)
		if err := putJSON(tx, bucketIntents, itob(in.ID), in); err != nil {
			return err
		}
		return tx.Bucket(bucketOpenIntents).Put(itob(in.ID), nil)
	})
	if err != nil {
		return Intent{}, err
	}
	return in, nil
}

// CompleteIntent closes an open intent. state is "done" when the write
// reached the PSA, in which case the matching ledger entry (time at, or now
// when at is zero) is appended in the same transaction, so the two can
// never disagree.
// "failed" (the write certainly did not happen) and "review" (an operator
// must look) close the intent without a ledger entry. Completing an
// unknown or already closed intent is an error.
func (db *DB) CompleteIntent(id int64, state, note string, at time.Time) error {
	switch state {
	case IntentDone, IntentFailed, IntentReview:
	default:
		return fmt.Errorf("state: completing intent %d: invalid state %q (want done, failed or review)", id, state)
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		var in Intent
		found, err := getJSON(tx, bucketIntents, itob(id), &in)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("state: completing intent %d: no such intent", id)
		}
		if in.State != IntentOpen {
			return fmt.Errorf("state: completing intent %d: already %s", id, in.State)
		}
		in.State = state
		in.Note = note
		if err := putJSON(tx, bucketIntents, itob(id), in); err != nil {
			return err
		}
		if err := tx.Bucket(bucketOpenIntents).Delete(itob(id)); err != nil {
			return fmt.Errorf("state: completing intent %d: %w", id, err)
		}
		if state != IntentDone {
			return nil
		}
		if at.IsZero() {
			at = time.Now().UTC()
		}
		_, err = appendLedger(tx, LedgerEntry{
			RunID:         in.RunID,
			System:        in.System,
			Source:        in.Source,
			CustomerID:    in.CustomerID,
			ContractID:    in.ContractID,
			ServiceID:     in.ServiceID,
			Before:        in.Before,
			After:         in.After,
			EffectiveDate: in.EffectiveDate,
			Time:          at,
			IntentID:      in.ID,
		})
		return err
	})
}

// OpenIntents returns every intent that is still open, oldest first.
func (db *DB) OpenIntents() ([]Intent, error) {
	var out []Intent
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOpenIntents).ForEach(func(k, _ []byte) error {
			var in Intent
			found, err := getJSON(tx, bucketIntents, k, &in)
			if err != nil {
				return err
			}
			if !found {
				return corrupt(db.path, fmt.Errorf("open intent %d has no record", btoi(k)))
			}
			out = append(out, in)
			return nil
		})
	})
	return out, err
}

// appendLedger assigns e its sequence number, stores it and points the
// per-line index at it.
func appendLedger(tx *bolt.Tx, e LedgerEntry) (LedgerEntry, error) {
	seq, err := tx.Bucket(bucketLedger).NextSequence()
	if err != nil {
		return e, fmt.Errorf("state: allocating ledger sequence: %w", err)
	}
	e.Seq = int64(seq)
	if err := putJSON(tx, bucketLedger, itob(e.Seq), e); err != nil {
		return e, err
	}
	key, err := pairKey("ledger entry", e.ContractID, e.ServiceID)
	if err != nil {
		return e, err
	}
	if err := tx.Bucket(bucketLedgerLast).Put(key, itob(e.Seq)); err != nil {
		return e, fmt.Errorf("state: indexing ledger entry %d: %w", e.Seq, err)
	}
	return e, nil
}

// Ledger returns up to limit ledger entries, newest first. A limit of 0 or
// less means all of them.
func (db *DB) Ledger(limit int) ([]LedgerEntry, error) {
	var out []LedgerEntry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return reverse(tx.Bucket(bucketLedger), limit, func(k, v []byte) error {
			var e LedgerEntry
			if err := unmarshal(bucketLedger, k, v, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// LastSet returns the newest ledger entry for one contract line: the
// quantity psa-syncd last set on it. The bool is false when psa-syncd has
// never changed that line.
func (db *DB) LastSet(contractID, serviceID string) (LedgerEntry, bool, error) {
	var e LedgerEntry
	key, err := pairKey("ledger entry", contractID, serviceID)
	if err != nil {
		return e, false, err
	}
	var found bool
	err = db.bolt.View(func(tx *bolt.Tx) error {
		seq := tx.Bucket(bucketLedgerLast).Get(key)
		if seq == nil {
			return nil
		}
		var err error
		found, err = getJSON(tx, bucketLedger, seq, &e)
		if err == nil && !found {
			err = corrupt(db.path, fmt.Errorf("ledger index points at missing entry %d", btoi(seq)))
		}
		return err
	})
	return e, found, err
}

// reverse calls fn for up to limit entries of b, last key first.
func reverse(b *bolt.Bucket, limit int, fn func(k, v []byte) error) error {
	c := b.Cursor()
	n := 0
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if limit > 0 && n >= limit {
			break
		}
		if err := fn(k, v); err != nil {
			return err
		}
		n++
	}
	return nil
}

// pairKey joins two identifiers with a NUL byte, which neither may contain.
func pairKey(what, a, b string) ([]byte, error) {
	if a == "" || b == "" {
		return nil, fmt.Errorf("state: %s key needs two non-empty ids, got %q and %q", what, a, b)
	}
	if strings.IndexByte(a, 0) >= 0 || strings.IndexByte(b, 0) >= 0 {
		return nil, fmt.Errorf("state: %s key ids must not contain NUL bytes", what)
	}
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...), nil
}

// putJSON stores v as JSON under key in the named bucket of tx.
func putJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: encoding %s record: %w", bucket, err)
	}
	if err := tx.Bucket(bucket).Put(key, data); err != nil {
		return fmt.Errorf("state: storing %s record: %w", bucket, err)
	}
	return nil
}

// getJSON decodes the JSON stored under key in the named bucket of tx into
// v, reporting whether there was one.
func getJSON(tx *bolt.Tx, bucket, key []byte, v any) (bool, error) {
	data := tx.Bucket(bucket).Get(key)
	if data == nil {
		return false, nil
	}
	return true, unmarshal(bucket, key, data, v)
}

func unmarshal(bucket, key, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("state: decoding %s record %x: %w", bucket, key, err)
	}
	return nil
}

// itob encodes an id as 8 big-endian bytes, so keys sort numerically.
func itob(v int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(v))
	return b
}

func btoi(b []byte) int64 {
	if len(b) != 8 {
		return -1
	}
	return int64(binary.BigEndian.Uint64(b))
}
