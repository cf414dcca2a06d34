package state

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// FileName is the name of the SQLite database file inside a state
// directory, and of the bbolt file that earlier versions kept there.
const FileName = "psa-syncd.db"

// Drivers (Config.Driver).
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Defaults for Config.
const (
	DefaultMaxOpenConns    = 10
	DefaultMaxIdleConns    = 5
	DefaultConnMaxLifetime = 30 * time.Minute
	DefaultConnectTimeout  = 10 * time.Second
	DefaultQueryTimeout    = 30 * time.Second
	DefaultCheckTimeout    = 10 * time.Minute
)

// lockTimeout bounds the wait for the SQLite database's lock, which another
// psa-syncd process holds while it has the database open.
const lockTimeout = time.Second

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

// Sentinel errors.
var (
	// ErrNotFound is returned when a record asked for does not exist.
	ErrNotFound = errors.New("state: not found")
	// ErrConflict is returned when a record to be created exists already.
	ErrConflict = errors.New("state: conflict")
	// ErrRefused matches the error of a write refused for the state of
	// its records, having written nothing, such as completing an intent
	// that is not open.
	ErrRefused = errors.New("state: refused")
	// ErrMaybeCommitted matches the error of a write whose COMMIT got no
	// answer from the server (the connection lost or closed at the
	// deadline while it committed, a server that ended the session): the
	// server may have committed it all the same, and the other sessions
	// may see it then. Only PostgreSQL's commits fail so; an error that
	// does not match it wrote nothing.
	ErrMaybeCommitted = errors.New("state: the COMMIT's outcome is unknown")
)

// Config selects and tunes the state database. The zero value of every
// field but the location has a default.
type Config struct {
	// Driver is DriverSQLite (the default) or DriverPostgres.
	Driver string
	// Path is, for SQLite, the database file when it ends in ".db", or
	// else the state directory that holds FileName. For PostgreSQL it is
	// optional: a state directory in which a bbolt state file of an
	// earlier version is looked for and imported.
	Path string
	// URL is the PostgreSQL connection URL or keyword/value string. It is
	// a secret (it may hold a password) and never appears in errors.
	URL string
	// MaxOpenConns, MaxIdleConns and ConnMaxLifetime tune the PostgreSQL
	// connection pool (SQLite uses one connection).
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	// ConnectTimeout bounds opening the database and each attempt to
	// become the active instance.
	ConnectTimeout time.Duration
	// QueryTimeout bounds every statement.
	QueryTimeout time.Duration
	// CheckTimeout bounds SQLite's integrity check at open (PRAGMA
	// quick_check), which reads the whole file.
	CheckTimeout time.Duration
	// Logger receives the package's debug messages (a session setting the
	// PostgreSQL server refused); nil discards them.
	Logger *slog.Logger
	// ReadOnly opens a PostgreSQL database for reading what the active
	// instance keeps (the ledger, for the billing-impact report) without
	// changing it: no schema migration, no bbolt import, and every
	// transaction read-only (default_transaction_read_only), so that
	// neither a newer psa-syncd on a CI runner nor a bug can write to the
	// shared database. The schema must be the version this package
	// supports. SQLite refuses it: the active instance holds its file
	// exclusively, so the file is read with Existing where no daemon runs
	// (and CheckVersion).
	ReadOnly bool
	// Existing opens only a state database that is there, and changes
	// nothing in it: a missing database is an error, not created (nor its
	// directory); a bbolt state file of an earlier version is refused, not
	// imported; and the schema is not migrated, whatever its version. It is
	// for copying the database (Backup): other methods may fail on a
	// schema of another version.
	Existing bool
}

// ErrNoState matches the error of an open with Config.Existing or
// ReadOnly of a state database that psa-syncd has not created yet: an
// SQLite file that is not there, a PostgreSQL database without psa-syncd's
// schema. psa-syncd creates it when it first starts.
var ErrNoState = errors.New("state: no psa-syncd state database yet")

// noStateError is an error of its own wording that matches ErrNoState.
type noStateError struct{ msg string }

func (e *noStateError) Error() string        { return e.msg }
func (e *noStateError) Is(target error) bool { return target == ErrNoState }

func (c *Config) setDefaults() {
	if c.Driver == "" {
		c.Driver = DriverSQLite
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
	if c.MaxIdleConns <= 0 {
		c.MaxIdleConns = DefaultMaxIdleConns
	}
	if c.ConnMaxLifetime <= 0 {
		c.ConnMaxLifetime = DefaultConnMaxLifetime
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
}

// DB is the daemon's state database. Its methods are safe for concurrent
// use; each write is committed (and, on SQLite, fsynced) before the method
// returns. Intents and customer statuses written concurrently share their
// commits (see the package documentation, "Group commits").
type DB struct {
	sql     *sql.DB
	dialect dialect
	path    string // SQLite file, or a description of the PostgreSQL database
	timeout time.Duration
	cfg     Config

	// fence, when set, is the connection that holds the leadership lock
	// (PostgreSQL). Intents are committed through it, so an instance that
	// lost the lock can no longer commit one, and so never sends a write.
	// fenced is set for PostgreSQL: OpenIntent and the ticket record
	// writes then need the lock.
	fenced  bool
	fenceMu sync.Mutex
	fence   *sql.Conn
	// fenceSession names fence's server session, so that it can be looked
	// at through the pool while a statement holds fence (see vouch and
	// cancelAfter). Set and read under fenceMu.
	fenceSession backendID
	// fenceCancel asks the server to cancel the statement that fence's
	// session runs, on a connection of its own that needs no pooled
	// connection, start-up or authentication (pgconn's CancelRequest).
	// Set under fenceMu with fence.
	fenceCancel func(context.Context) error
	// leaseAnswered and leaseTerm are the lease that CheckFence reads
	// without fenceMu (which a hung check of the lock holds):
	// leaseAnswered is when the last statement that the lock's session
	// answered was sent (monoNow; 0 once the leadership is lost or
	// released), leaseTerm how long after that this instance may still
	// send writes (0: it never led through PostgreSQL). Both are written
	// under fenceMu.
	leaseAnswered atomic.Int64
	leaseTerm     atomic.Int64
	// cancelPause, when set (by tests), replaces the 100 ms that
	// cancelAfter waits between two cancel requests: it returns when the
	// next may be sent, or once ctx is done (stop).
	cancelPause func(ctx context.Context)
	// beforeEnd, when set (by tests), is called by commitGroup before it
	// commits a group's transaction (commit true) or rolls it back.
	beforeEnd func(commit bool)
	// loseAnswer, when set (LoseCommitAnswer), makes the next commit of a
	// fenced operation fail with ErrMaybeCommitted after it committed.
	loseAnswer atomic.Bool

	// runNote says whether the runs table has its note column (schema
	// version 8): a database opened with Config.Existing or ReadOnly is
	// not migrated, and one of an older schema is read without it (see
	// runSelect). Set once, on the first read of a run.
	runNoteOnce sync.Once
	runNote     bool
	// ticketVersion is the schema version whose columns of the tickets
	// table reads name (see ticketSelect): SchemaVersion, or the version of
	// an older database opened without migrating it.
	ticketVersionOnce sync.Once
	ticketVersion     int

	// backupMu is read-held by Backup's copy, whose steps use the SQLite
	// connection between its uses by others: Close waits for it.
	backupMu sync.RWMutex

	// group turns concurrent intent and status writes into group commits.
	group committer
	// writes are the statements of intent writes, which the committer
	// prepares.
	writes writeStmts
	// commits counts the write transactions this DB has committed.
	commits atomic.Int64
	// calls counts the calls per PSA endpoint on SQLite (APICalls).
	calls callMirror
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
	// Result is one of running, success, partial or failure (also for a
	// pass that never finished: see Interrupted).
	Result    string `json:"result"`
	Error     string `json:"error,omitempty"`
	Updated   int    `json:"updated"`
	Unchanged int    `json:"unchanged"`
	Held      int    `json:"held"`
	Failed    int    `json:"failed"`
	Requests  int    `json:"requests"`
	Period    string `json:"period,omitempty"`
	Customers int    `json:"customers"`
	// Note is an operator's note on a run that records what was done by
	// hand instead of a pass (the quantities of a month set in the PSA by
	// hand: who did what), or, for a pass, who asked for it when the
	// request named a user ("approved by user ops-anna on the status
	// page"); empty for other passes.
	Note string `json:"note,omitempty"`
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

// Open opens the SQLite state database, creating it (and its directory,
// mode 0700) when missing. path is either the database file, when it ends
// in ".db", or the state directory, in which case the file is FileName
// inside it. A bbolt state file of an earlier version found there is
// imported once and kept beside it as a backup (see OpenConfig).
//
// Only one process may have the database open: a second Open fails after
// a second with an error saying so. An empty, truncated or damaged file is
// refused with an error that names it and the way out, and left untouched.
func Open(path string) (*DB, error) {
	return OpenConfig(context.Background(), Config{Driver: DriverSQLite, Path: path})
}

// OpenConfig opens the state database that cfg selects and brings its
// schema up to date. For PostgreSQL it connects with the pool settings of
// cfg; several psa-syncd may share one database, and AcquireLeadership
// decides which of them writes.
func OpenConfig(ctx context.Context, cfg Config) (*DB, error) {
	cfg.setDefaults()
	var (
		db  *DB
		err error
	)
	switch cfg.Driver {
	case DriverSQLite:
		if cfg.ReadOnly {
			return nil, errors.New("state: a read-only open is for PostgreSQL; an SQLite state file is read with the daemon stopped")
		}
		db, err = openSQLite(ctx, cfg)
	case DriverPostgres:
		db, err = openPostgres(ctx, cfg)
	default:
		return nil, fmt.Errorf("state: unknown driver %q (want %s or %s)", cfg.Driver, DriverSQLite, DriverPostgres)
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// Path returns the path of the SQLite database file, or for PostgreSQL a
// description of the database without credentials.
func (db *DB) Path() string { return db.path }

// Driver returns DriverSQLite or DriverPostgres.
func (db *DB) Driver() string { return db.cfg.Driver }

// Close commits the deferred writes still queued and closes the database,
// releasing its lock (SQLite) or the leadership lock (PostgreSQL). Its
// error includes those of deferred writes not yet reported by Flush.
func (db *DB) Close() error {
	deferred := errors.Join(db.group.close(), db.writes.close())
	db.fenceMu.Lock()
	if db.fence != nil {
		discard(db.fence)
		db.fence = nil
	}
	db.fenceMu.Unlock()
	db.backupMu.Lock()
	defer db.backupMu.Unlock()
	if err := db.sql.Close(); err != nil {
		return errors.Join(deferred, db.wrap("closing the database", err))
	}
	return deferred
}

// logger returns the logger of Config.Logger, or one that discards.
func (db *DB) logger() *slog.Logger {
	if db.cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return db.cfg.Logger
}

// ctx returns a context bounded by the query timeout.
func (db *DB) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), db.timeout)
}

// wrap prefixes a database error with what was being done and the
// database (an *Error).
func (db *DB) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{What: what, Where: db.path, Err: err}
}

// tx runs fn in a transaction and commits it.
func (db *DB) tx(what string, fn func(ctx context.Context, tx *sql.Tx) error) error {
	ctx, cancel := db.ctx()
	defer cancel()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return db.wrap(what, err)
	}
	if err := fn(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return db.wrap(what, db.commit(tx))
}

// PutCustomerStatus stores cs, replacing the status stored for the same
// (Source, CustomerID). Statuses stored concurrently share one commit.
func (db *DB) PutCustomerStatus(cs CustomerStatus) error {
	if err := checkKey("customer", cs.Source, cs.CustomerID); err != nil {
		return err
	}
	return db.group.submit(context.Background(), db, &groupOp{
		what: "storing the status of customer " + cs.CustomerID,
		led:  true,
		run: func(ctx context.Context, tx *sql.Tx) error {
			return db.upsertCustomers(ctx, tx, []CustomerStatus{cs})
		},
	})
}

// customersPerStatement bounds the rows of one multi-row upsert: 17
// parameters each stays far below the parameter limits of both databases.
const customersPerStatement = 500

// upsertCustomers stores statuses in tx, a statement per
// customersPerStatement rows. A key given twice stores the last status
// given for it, as storing them one after another would (one statement
// cannot upsert a row twice).
func (db *DB) upsertCustomers(ctx context.Context, tx *sql.Tx, statuses []CustomerStatus) error {
	type key struct{ source, customer string }
	last := make(map[key]int, len(statuses))
	for i, cs := range statuses {
		last[key{cs.Source, cs.CustomerID}] = i
	}
	rows := make([]CustomerStatus, 0, len(last))
	for i, cs := range statuses {
		if last[key{cs.Source, cs.CustomerID}] == i {
			rows = append(rows, cs)
		}
	}
	for len(rows) > 0 {
		n := min(len(rows), customersPerStatement)
		var b strings.Builder
		b.WriteString(`INSERT INTO customers (` + customerColumns + `) VALUES `)
		args := make([]any, 0, n*17)
		for i, cs := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, cs.Source, cs.CustomerID, cs.CustomerName, cs.CompanyID, cs.ContractID, cs.UsageSync,
				cs.TicketSync, db.tv(cs.LastAttempt), db.tv(cs.LastSuccess), cs.Result, cs.Error, cs.Hint, cs.RunID,
				cs.Updated, cs.Unchanged, cs.Held, cs.Failed)
		}
		b.WriteString(` ON CONFLICT (source, customer_id) DO UPDATE SET customer_name = excluded.customer_name,
		company_id = excluded.company_id, contract_id = excluded.contract_id, usage_sync = excluded.usage_sync,
		ticket_sync = excluded.ticket_sync, last_attempt = excluded.last_attempt, last_success = excluded.last_success,
		result = excluded.result, error = excluded.error, hint = excluded.hint, run_id = excluded.run_id,
		updated = excluded.updated, unchanged = excluded.unchanged, held = excluded.held, failed = excluded.failed`)
		if _, err := tx.ExecContext(ctx, db.q(b.String()), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

const customerColumns = `source, customer_id, customer_name, company_id, contract_id, usage_sync, ticket_sync,
	last_attempt, last_success, result, error, hint, run_id, updated, unchanged, held, failed`

func scanCustomer(row interface{ Scan(...any) error }) (CustomerStatus, error) {
	var cs CustomerStatus
	err := row.Scan(&cs.Source, &cs.CustomerID, &cs.CustomerName, &cs.CompanyID, &cs.ContractID, &cs.UsageSync,
		&cs.TicketSync, timeDest{&cs.LastAttempt}, timeDest{&cs.LastSuccess}, &cs.Result, &cs.Error, &cs.Hint, &cs.RunID,
		&cs.Updated, &cs.Unchanged, &cs.Held, &cs.Failed)
	return cs, err
}

// CustomerStatus returns the stored status of one customer. The bool is
// false when none is stored.
func (db *DB) CustomerStatus(source, customerID string) (CustomerStatus, bool, error) {
	if err := checkKey("customer", source, customerID); err != nil {
		return CustomerStatus{}, false, err
	}
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	cs, err := scanCustomer(db.sql.QueryRowContext(ctx,
		db.q(`SELECT `+customerColumns+` FROM customers WHERE source = ? AND customer_id = ?`), source, customerID))
	if errors.Is(err, sql.ErrNoRows) {
		return CustomerStatus{}, false, nil
	}
	if err != nil {
		return CustomerStatus{}, false, db.wrap("reading the status of customer "+customerID, err)
	}
	return cs, true, nil
}

// CustomerStatuses returns every stored customer status, sorted by source
// and then customer id.
func (db *DB) CustomerStatuses() ([]CustomerStatus, error) {
	db.syncDeferred()
	return queryAll(db, "reading customer statuses",
		`SELECT `+customerColumns+` FROM customers ORDER BY source, customer_id`, scanCustomer)
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](db *DB, what, query string, scan func(interface{ Scan(...any) error }) (T, error), args ...any) ([]T, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.sql.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, db.wrap(what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, db.wrap(what, err)
		}
		out = append(out, v)
	}
	return out, db.wrap(what, rows.Err())
}

const runColumns = `id, trigger, dry_run, customer, started, finished, result, error, updated, unchanged, held, failed,
	requests, period, customers, note`

// runNoteSchemaVersion is the schema version that adds the runs' note.
const runNoteSchemaVersion = 8

// runSelect is the column list of a read of runs: runColumns, or, for a
// database of a schema older than runNoteSchemaVersion that was opened
// without migrating it (Config.Existing: psa-syncd ledger, check and the
// like with a newer binary than the daemon that migrated it), the same with
// an empty note, so that reading its runs does not fail on the column.
func (db *DB) runSelect() string {
	db.runNoteOnce.Do(func() {
		db.runNote = true
		if db.cfg.Existing || db.cfg.ReadOnly {
			if v, err := db.Version(); err == nil && v < runNoteSchemaVersion {
				db.runNote = false
			}
		}
	})
	if db.runNote {
		return runColumns
	}
	return strings.TrimSuffix(runColumns, ", note") + ", '' AS note"
}

func scanRun(row interface{ Scan(...any) error }) (Run, error) {
	var r Run
	err := row.Scan(&r.ID, &r.Trigger, &r.DryRun, &r.Customer, timeDest{&r.Started}, timeDest{&r.Finished}, &r.Result,
		&r.Error, &r.Updated, &r.Unchanged, &r.Held, &r.Failed, &r.Requests, &r.Period, &r.Customers, &r.Note)
	return r, err
}

// BeginRun stores r as a new run and returns it with its ID assigned. An
// empty Result becomes "running" and a zero Started becomes now. On
// PostgreSQL, once this process has led, it is committed through the
// session that holds the leadership lock, and refused with ErrNotLeader
// once this process lost the lock: a deposed instance's run, begun after
// the instance that took over marked the runs left running as interrupted
// (InterruptRunningRuns), would say "running" for ever.
func (db *DB) BeginRun(r Run) (Run, error) {
	r = db.newRun(r)
	if err := db.group.submit(context.Background(), db, &groupOp{what: "storing a new run", led: true, run: db.insertRun(&r)}); err != nil {
		return Run{}, err
	}
	return r, nil
}

// insertRun returns the statement of a group operation that stores *r,
// as newRun returned it, as a new run and sets its ID.
func (db *DB) insertRun(r *Run) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, db.q(insertRunSQL), db.runArgs(*r)...).Scan(&r.ID)
	}
}

// newRun returns r as BeginRun stores it: an empty Result "running", a
// zero Started now.
func (db *DB) newRun(r Run) Run {
	if r.Result == "" {
		r.Result = RunRunning
	}
	if r.Started.IsZero() {
		r.Started = time.Now()
	}
	r.Started, r.Finished = db.stored(r.Started), db.stored(r.Finished)
	return r
}

// insertRunSQL stores a new run (runArgs) and returns its id.
const insertRunSQL = `INSERT INTO runs (trigger, dry_run, customer, started, finished, result, error,
	updated, unchanged, held, failed, requests, period, customers, note)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`

// runArgs returns the arguments of insertRunSQL for r.
func (db *DB) runArgs(r Run) []any {
	return []any{r.Trigger, r.DryRun, r.Customer, db.tv(r.Started), db.tv(r.Finished), r.Result, r.Error,
		r.Updated, r.Unchanged, r.Held, r.Failed, r.Requests, r.Period, r.Customers, r.Note}
}

// SaveRun replaces a run started with BeginRun. On PostgreSQL, once this
// process has led, it is committed through the session that holds the
// leadership lock, as BeginRun is, and refused with ErrNotLeader once this
// process lost the lock: the run is then left to the instance that takes
// over, which marks it interrupted (InterruptRunningRuns), or marked it
// already; through the pool, the deposed instance's record replaced that
// mark after the takeover.
func (db *DB) SaveRun(r Run) error {
	what := fmt.Sprintf("saving run %d", r.ID)
	return db.group.submit(context.Background(), db, &groupOp{what: what, led: true, run: func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q(`UPDATE runs SET trigger = ?, dry_run = ?, customer = ?, started = ?,
			finished = ?, result = ?, error = ?, updated = ?, unchanged = ?, held = ?, failed = ?, requests = ?, period = ?,
			customers = ?, note = ? WHERE id = ?`),
			r.Trigger, r.DryRun, r.Customer, db.tv(r.Started), db.tv(r.Finished), r.Result, r.Error,
			r.Updated, r.Unchanged, r.Held, r.Failed, r.Requests, r.Period, r.Customers, r.Note, r.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return refuse(fmt.Errorf("state: saving run %d: no such run", r.ID))
		}
		return nil
	}})
}

// interruptedPrefix begins the error of a run that InterruptRunningRuns
// marked.
const interruptedPrefix = "pass interrupted: "

// InterruptRunningRuns marks every run still "running" as interrupted: a
// failure, finished at at, whose error is "pass interrupted: " followed by
// reason. It returns how many it marked. Call it only when this process has
// just become the active instance and runs no pass: a run still running
// then belongs to a process that was killed, crashed or lost the leadership
// during it, and would otherwise stay running for ever.
func (db *DB) InterruptRunningRuns(at time.Time, reason string) (int, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	res, err := db.sql.ExecContext(ctx, db.q(`UPDATE runs SET result = ?, error = ?, finished = ? WHERE result = ?`),
		RunFailure, interruptedPrefix+reason, db.tv(at), RunRunning)
	if err != nil {
		return 0, db.wrap("marking interrupted runs", err)
	}
	n, err := res.RowsAffected()
	return int(n), db.wrap("marking interrupted runs", err)
}

// Interrupt marks r as a pass that did not end normally (stopped before it
// ended), the way InterruptRunningRuns marks the runs a killed process
// left running: a failure whose error is "pass interrupted: " and reason.
func (r *Run) Interrupt(reason string) {
	r.Result = RunFailure
	r.Error = interruptedPrefix + reason
}

// Interrupted reports whether r was marked by InterruptRunningRuns (a pass
// whose process never finished it, whose counts were never recorded) or by
// Interrupt (a pass stopped before it ended).
func (r Run) Interrupted() bool {
	return r.Result == RunFailure && strings.HasPrefix(r.Error, interruptedPrefix)
}

// Run returns one run. The bool is false when there is no such run.
func (db *DB) Run(id int64) (Run, bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	r, err := scanRun(db.sql.QueryRowContext(ctx, db.q(`SELECT `+db.runSelect()+` FROM runs WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, false, nil
	}
	if err != nil {
		return Run{}, false, db.wrap(fmt.Sprintf("reading run %d", id), err)
	}
	return r, true, nil
}

// Runs returns up to limit runs, newest first. A limit of 0 or less means
// all of them.
func (db *DB) Runs(limit int) ([]Run, error) {
	return queryAll(db, "reading runs", `SELECT `+db.runSelect()+` FROM runs ORDER BY id DESC`+limitClause(limit), scanRun)
}

// RunsBefore returns up to limit runs whose id is below before, newest
// first: the page of a list read newest first that follows the run before
// (0 or less: from the newest). A limit of 0 or less means all of them.
func (db *DB) RunsBefore(before int64, limit int) ([]Run, error) {
	if before <= 0 {
		return db.Runs(limit)
	}
	return queryAll(db, "reading runs", `SELECT `+db.runSelect()+` FROM runs WHERE id < ? ORDER BY id DESC`+limitClause(limit), scanRun, before)
}

// FullRuns returns up to limit runs over all customers that were not dry
// runs, newest first; a limit of 0 or less means all of them. The passes
// for one customer and the dry runs between them, however many, are not
// read.
func (db *DB) FullRuns(limit int) ([]Run, error) {
	return queryAll(db, "reading runs", `SELECT `+db.runSelect()+` FROM runs WHERE customer = '' AND dry_run = ? ORDER BY id DESC`+
		limitClause(limit), scanRun, false)
}

// LastFullRunOfPeriod returns the newest run over all customers that was
// not a dry run whose period is period (YYYY-MM), running or finished,
// and whether there is one: the last pass of a billing month, however many
// passes of later months ran since.
func (db *DB) LastFullRunOfPeriod(period string) (Run, bool, error) {
	runs, err := queryAll(db, "reading the last run of period "+period, `SELECT `+db.runSelect()+` FROM runs WHERE customer = '' AND dry_run = ? AND period = ?
		ORDER BY id DESC LIMIT 1`, scanRun, false, period)
	if err != nil || len(runs) == 0 {
		return Run{}, false, err
	}
	return runs[0], true, nil
}

func limitClause(limit int) string {
	if limit <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", limit)
}

const intentColumns = `id, run_id, system, source, customer_id, contract_id, service_id, qty_before, qty_after,
	before_known, effective_date, created, state, note`

func scanIntent(row interface{ Scan(...any) error }) (Intent, error) {
	var in Intent
	err := row.Scan(&in.ID, &in.RunID, &in.System, &in.Source, &in.CustomerID, &in.ContractID, &in.ServiceID,
		&in.Before, &in.After, &in.BeforeKnown, timeDest{&in.EffectiveDate}, timeDest{&in.Created}, &in.State, &in.Note)
	return in, err
}

// OpenIntent records in as an open intent and returns it with its ID
// assigned, State "open" and, when zero, Created set to now. The record is
// committed (and, on SQLite, fsynced) before OpenIntent returns, so the
// caller may send the write once it gets a nil error and never before.
// Intents opened concurrently share one commit.
// While this instance is the active one of several on a PostgreSQL
// database, the intent is committed through the session that holds the
// leadership lock: once the lock is lost, no intent can be opened, so no
// write can be sent.
func (db *DB) OpenIntent(in Intent) (Intent, error) {
	out, err := db.openIntents(context.Background(), "recording an intent", []Intent{in})
	if err != nil {
		return Intent{}, err
	}
	return out[0], nil
}

// openIntents records ins as open intents, all or none, in one group
// commit.
func (db *DB) openIntents(ctx context.Context, what string, ins []Intent) ([]Intent, error) {
	out := make([]Intent, len(ins))
	for i, in := range ins {
		if err := checkKey("intent", in.ContractID, in.ServiceID); err != nil {
			if len(ins) > 1 {
				err = fmt.Errorf("state: intent %d of %d: %w", i+1, len(ins), err)
			}
			return nil, err
		}
		in.ID = 0
		in.State = IntentOpen
		if in.Created.IsZero() {
			in.Created = time.Now()
		}
		in.Created, in.EffectiveDate = db.stored(in.Created), db.stored(in.EffectiveDate)
		out[i] = in
	}
	err := db.group.submit(ctx, db, &groupOp{what: what, fenced: true, run: func(ctx context.Context, tx *sql.Tx) error {
		insert := db.writeStmt(ctx, tx, db.writes.openIntent, openIntentSQL)
		for i := range out {
			in := &out[i]
			if err := insert.QueryRowContext(ctx, in.RunID, string(in.System), in.Source, in.CustomerID, in.ContractID,
				in.ServiceID, in.Before, in.After, in.BeforeKnown, db.tv(in.EffectiveDate), db.tv(in.Created), in.State,
				in.Note).Scan(&in.ID); err != nil {
				return err
			}
		}
		return nil
	}})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CompleteIntent closes an open intent. state is "done" when the write
// reached the PSA, in which case the matching ledger entry (time at, or now
// when at is zero) is appended in the same transaction, so the two can
// never disagree.
// "failed" (the write certainly did not happen) and "review" (an operator
// must look) close the intent without a ledger entry. Completing an
// unknown or already closed intent is an error. Intents completed
// concurrently share one commit.
func (db *DB) CompleteIntent(id int64, state, note string, at time.Time) error {
	c := IntentCompletion{ID: id, State: state, Note: note, At: at}
	if err := c.check(); err != nil {
		return err
	}
	return db.group.submit(context.Background(), db, &groupOp{
		what: fmt.Sprintf("completing intent %d", id),
		run: func(ctx context.Context, tx *sql.Tx) error {
			return db.completeIntent(ctx, tx, c)
		},
	})
}

// IntentCompletion is how one open intent is closed: its ID, the state it
// is closed in (done, failed or review), a note, and the time of the
// ledger entry that "done" appends (now when zero).
type IntentCompletion struct {
	ID    int64
	State string
	Note  string
	At    time.Time
}

func (c IntentCompletion) check() error {
	switch c.State {
	case IntentDone, IntentFailed, IntentReview:
		return nil
	}
	return fmt.Errorf("state: completing intent %d: invalid state %q (want done, failed or review)", c.ID, c.State)
}

// completeIntent closes one intent in tx. Closing an unknown or closed
// intent is refused, having written nothing.
func (db *DB) completeIntent(ctx context.Context, tx *sql.Tx, c IntentCompletion) error {
	at := c.At
	if at.IsZero() {
		at = time.Now()
	}
	in, err := scanIntent(db.writeStmt(ctx, tx, db.writes.closeIntent, closeIntentSQL).QueryRowContext(ctx, c.State, c.Note, c.ID, IntentOpen))
	if errors.Is(err, sql.ErrNoRows) {
		var cur string
		err := tx.QueryRowContext(ctx, db.q(`SELECT state FROM intents WHERE id = ?`), c.ID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return refuse(&intentNotOpenError{id: c.ID})
		}
		if err != nil {
			return err
		}
		return refuse(&intentNotOpenError{id: c.ID, state: cur})
	}
	if err != nil {
		return err
	}
	if c.State != IntentDone {
		return nil
	}
	_, err = db.writeStmt(ctx, tx, db.writes.appendLedger, appendLedgerSQL).ExecContext(ctx, in.RunID, string(in.System), in.Source,
		in.CustomerID, in.ContractID, in.ServiceID, in.Before, in.After, db.tv(in.EffectiveDate), db.tv(db.stored(at)), in.ID)
	if err != nil {
		return fmt.Errorf("appending the ledger entry of intent %d: %w", c.ID, err)
	}
	return nil
}

// intentNotOpenError is completeIntent's refusal of an intent that is not
// open: state is the one it was closed in, "" when there is no such intent.
type intentNotOpenError struct {
	id    int64
	state string
}

func (e *intentNotOpenError) Error() string {
	if e.state == "" {
		return fmt.Sprintf("state: completing intent %d: no such intent", e.id)
	}
	return fmt.Sprintf("state: completing intent %d: already %s", e.id, e.state)
}

// IntentByID returns the intent with the given id (a ledger entry's
// IntentID), whatever its state. The bool is false when there is none
// (never opened, or pruned).
func (db *DB) IntentByID(id int64) (Intent, bool, error) {
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	in, err := scanIntent(db.sql.QueryRowContext(ctx, db.q(`SELECT `+intentColumns+` FROM intents WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Intent{}, false, nil
	}
	if err != nil {
		return Intent{}, false, db.wrap("reading an intent", err)
	}
	return in, true, nil
}

// OpenIntents returns every intent that is still open, oldest first.
func (db *DB) OpenIntents() ([]Intent, error) {
	db.syncDeferred()
	return queryAll(db, "reading open intents",
		`SELECT `+intentColumns+` FROM intents WHERE state = 'open' ORDER BY id`, scanIntent)
}

const ledgerColumns = `seq, run_id, system, source, customer_id, contract_id, service_id, qty_before, qty_after,
	effective_date, at, intent_id`

func scanLedger(row interface{ Scan(...any) error }) (LedgerEntry, error) {
	var e LedgerEntry
	err := row.Scan(&e.Seq, &e.RunID, &e.System, &e.Source, &e.CustomerID, &e.ContractID, &e.ServiceID,
		&e.Before, &e.After, timeDest{&e.EffectiveDate}, timeDest{&e.Time}, &e.IntentID)
	return e, err
}

// Ledger returns up to limit ledger entries, newest first. A limit of 0 or
// less means all of them.
func (db *DB) Ledger(limit int) ([]LedgerEntry, error) {
	db.syncDeferred()
	return queryAll(db, "reading the ledger", `SELECT `+ledgerColumns+` FROM ledger ORDER BY seq DESC`+limitClause(limit), scanLedger)
}

// LedgerQuery selects ledger entries for QueryLedger; zero fields select
// everything.
type LedgerQuery struct {
	CustomerID string
	ContractID string
	ServiceID  string
	// EffectiveFrom and EffectiveTo select the entries whose effective
	// date is at or after EffectiveFrom and before EffectiveTo.
	EffectiveFrom, EffectiveTo time.Time
	// Before and After select the entries whose seq is below Before and
	// above After: the cursors of a page of a ledger read newest first.
	Before, After int64
	// Limit caps the entries; 0 or less means all of them.
	Limit int
}

// QueryLedger returns the ledger entries q selects, newest first. The
// database selects them, so that a page of a large ledger costs the page,
// not the ledger.
func (db *DB) QueryLedger(q LedgerQuery) ([]LedgerEntry, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if q.CustomerID != "" {
		add("customer_id = ?", q.CustomerID)
	}
	if q.ContractID != "" {
		add("contract_id = ?", q.ContractID)
	}
	if q.ServiceID != "" {
		add("service_id = ?", q.ServiceID)
	}
	// SQLite holds times as fixed-width UTC text, which compares as the
	// times do.
	if !q.EffectiveFrom.IsZero() {
		add("effective_date >= ?", db.tv(q.EffectiveFrom))
	}
	if !q.EffectiveTo.IsZero() {
		add("effective_date < ?", db.tv(q.EffectiveTo))
	}
	if q.Before > 0 {
		add("seq < ?", q.Before)
	}
	if q.After > 0 {
		add("seq > ?", q.After)
	}
	query := `SELECT ` + ledgerColumns + ` FROM ledger`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	db.syncDeferred()
	return queryAll(db, "reading the ledger", query+` ORDER BY seq DESC`+limitClause(q.Limit), scanLedger, args...)
}

// LastSet returns the newest ledger entry for one contract line: the
// quantity psa-syncd last set on it. The bool is false when psa-syncd has
// never changed that line.
func (db *DB) LastSet(contractID, serviceID string) (LedgerEntry, bool, error) {
	if err := checkKey("ledger entry", contractID, serviceID); err != nil {
		return LedgerEntry{}, false, err
	}
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	e, err := scanLedger(db.sql.QueryRowContext(ctx, db.q(`SELECT `+ledgerColumns+` FROM ledger
		WHERE contract_id = ? AND service_id = ? ORDER BY seq DESC LIMIT 1`), contractID, serviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return LedgerEntry{}, false, nil
	}
	if err != nil {
		return LedgerEntry{}, false, db.wrap("reading the ledger", err)
	}
	return e, true, nil
}

// SetBefore returns the ledger entry for one contract line that is in
// force just before the time before: of the entries with an effective date
// before it, the one with the latest effective date, the newest among
// equals. That is the quantity a PSA that bills a line's latest-dated
// change (Kaseya BMS) bills on the day before before, whatever order the
// changes were posted in; LastSet is the change posted last. The bool is
// false when psa-syncd has changed that line from no date before before.
func (db *DB) SetBefore(contractID, serviceID string, before time.Time) (LedgerEntry, bool, error) {
	if err := checkKey("ledger entry", contractID, serviceID); err != nil {
		return LedgerEntry{}, false, err
	}
	if before.IsZero() {
		return LedgerEntry{}, false, errors.New("state: SetBefore needs a time")
	}
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	e, err := scanLedger(db.sql.QueryRowContext(ctx, db.q(`SELECT `+ledgerColumns+` FROM ledger
		WHERE contract_id = ? AND service_id = ? AND effective_date < ? ORDER BY effective_date DESC, seq DESC LIMIT 1`),
		contractID, serviceID, db.tv(before)))
	if errors.Is(err, sql.ErrNoRows) {
		return LedgerEntry{}, false, nil
	}
	if err != nil {
		return LedgerEntry{}, false, db.wrap("reading the ledger", err)
	}
	return e, true, nil
}

// LinesSet returns the lines of the contracts contractIDs that psa-syncd,
// configured for system, set to more than 0 at some time: a quick set of
// the lines to look up further (SetBefore), in one query per 500
// contracts, whose rows the ledger's line index holds.
func (db *DB) LinesSet(system psa.System, contractIDs []string) (map[psa.LineKey]bool, error) {
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	out := map[psa.LineKey]bool{}
	err := db.eachIn(ctx, `SELECT DISTINCT contract_id, service_id FROM ledger WHERE system = ? AND qty_after > 0 AND contract_id`,
		string(system), contractIDs, func(rows *sql.Rows) error {
			var k psa.LineKey
			if err := rows.Scan(&k.ContractID, &k.ServiceID); err != nil {
				return err
			}
			out[k] = true
			return nil
		})
	if err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	return out, nil
}

// CustomerLine is a line that psa-syncd set above 0 for a customer
// (CustomerLinesSet).
type CustomerLine struct {
	psa.LineKey
	// Seq is the seq of the newest ledger entry that set the line above 0
	// for the customer: of two such lines, the one psa-syncd set later.
	Seq int64
}

// CustomerLinesSet returns, by customer, the lines that psa-syncd,
// configured for system, set to more than 0 at some time for the
// customers customerIDs of usage source source, on any contract, each with
// the seq of its newest such entry: a quick set of the lines to look up
// further (SetBefore), in one query per 500 customers, whose rows the
// ledger's customer index (schema version 10) holds. A customer without
// such a line is absent.
func (db *DB) CustomerLinesSet(system psa.System, source string, customerIDs []string) (map[string][]CustomerLine, error) {
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	out := map[string][]CustomerLine{}
	for chunk := range slices.Chunk(customerIDs, contractCheckChunk) {
		args := make([]any, 0, len(chunk)+2)
		args = append(args, string(system), source)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := db.sql.QueryContext(ctx, db.q(`SELECT customer_id, contract_id, service_id, MAX(seq) FROM ledger
			WHERE system = ? AND source = ? AND qty_after > 0 AND customer_id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)
			GROUP BY customer_id, contract_id, service_id`), args...)
		if err != nil {
			return nil, db.wrap("reading the ledger", err)
		}
		for rows.Next() {
			var c string
			var l CustomerLine
			if err := rows.Scan(&c, &l.ContractID, &l.ServiceID, &l.Seq); err != nil {
				_ = rows.Close()
				return nil, db.wrap("reading the ledger", err)
			}
			out[c] = append(out[c], l)
		}
		if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
			return nil, db.wrap("reading the ledger", err)
		}
	}
	for _, lines := range out {
		slices.SortFunc(lines, func(a, b CustomerLine) int {
			return cmp.Or(strings.Compare(a.ContractID, b.ContractID), strings.Compare(a.ServiceID, b.ServiceID))
		})
	}
	return out, nil
}

// LinesInForce returns, for every line of the contracts contractIDs that
// psa-syncd changed from a date before before, the ledger entry SetBefore
// returns for it: of its entries with an effective date before before, the
// one with the latest effective date, the newest among equals. It reads
// once per 500 contracts, not once per line.
func (db *DB) LinesInForce(contractIDs []string, before time.Time) (map[psa.LineKey]LedgerEntry, error) {
	if before.IsZero() {
		return nil, errors.New("state: LinesInForce needs a time")
	}
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	out := map[psa.LineKey]LedgerEntry{}
	for chunk := range slices.Chunk(contractIDs, contractCheckChunk) {
		args := make([]any, 0, len(chunk)+1)
		args = append(args, db.tv(before))
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := db.sql.QueryContext(ctx, db.q(`SELECT `+ledgerColumns+` FROM (SELECT `+ledgerColumns+`,
			ROW_NUMBER() OVER (PARTITION BY contract_id, service_id ORDER BY effective_date DESC, seq DESC) AS rn
			FROM ledger WHERE effective_date < ? AND contract_id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)) t WHERE rn = 1`), args...)
		if err != nil {
			return nil, db.wrap("reading the ledger", err)
		}
		for rows.Next() {
			e, err := scanLedger(rows)
			if err != nil {
				_ = rows.Close()
				return nil, db.wrap("reading the ledger", err)
			}
			out[psa.LineKey{ContractID: e.ContractID, ServiceID: e.ServiceID}] = e
		}
		if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
			return nil, db.wrap("reading the ledger", err)
		}
	}
	return out, nil
}

// checkKey requires two non-empty identifiers without NUL bytes.
func checkKey(what, a, b string) error {
	if a == "" || b == "" {
		return fmt.Errorf("state: %s key needs two non-empty ids, got %q and %q", what, a, b)
	}
	if strings.IndexByte(a, 0) >= 0 || strings.IndexByte(b, 0) >= 0 {
		return fmt.Errorf("state: %s key ids must not contain NUL bytes", what)
	}
	return nil
}
