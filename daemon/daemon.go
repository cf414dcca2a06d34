package daemon

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// Defaults for Options.
const (
	// DefaultWatchInterval is how often Run polls the mapping export for changes.
	DefaultWatchInterval = 5 * time.Second
	// DefaultShutdownTimeout bounds how long Run waits, after its context is
	// cancelled, for the running pass to finish and for HTTP requests to drain.
	DefaultShutdownTimeout = 30 * time.Second
)

// Options configures a Daemon. The zero value of every field has a default.
type Options struct {
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
	// Registry is where the daemon registers its metrics and what /metrics
	// serves; nil means a new registry. Callers that also want the Go, process
	// and build-info collectors register them on it themselves.
	Registry *prometheus.Registry
	// Version is reported in logs.
	Version string
	// HTTPClient is the base client for the PSA and the usage source; nil
	// means a client with a 60s timeout. The daemon copies it and wraps the
	// PSA client's Transport with the request metrics.
	HTTPClient *http.Client
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Getenv resolves environment variables when the config file is
	// reloaded; nil means no environment (the library never reads the
	// process environment itself).
	Getenv func(string) string
	// WatchInterval is how often Run polls the export file (modification
	// time, size and content hash); 0 means DefaultWatchInterval.
	WatchInterval time.Duration
	// ShutdownTimeout bounds graceful shutdown; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Listener, when set, is used by Run instead of listening on the
	// configured web.listen_address (tests pass a 127.0.0.1:0 listener).
	Listener net.Listener
	// WebConfigFile is a web configuration file in exporter-toolkit's format
	// (TLS, client certificates, basic authentication; see listener.go);
	// empty means plain HTTP.
	WebConfigFile string
	// ListenAddress, when set, replaces web.listen_address in the config
	// given to New and in every config loaded by Reload (psa-syncd run's
	// -web.listen-address flag), so that a reload neither reports the
	// file's address as the running one nor warns that it changed.
	ListenAddress string
	// AllowEmptyState lets passes write although the state database holds
	// no record of earlier writes while the export maps customers whose
	// quantities only the ledger records (Kaseya BMS): for a first start
	// only, never after losing the database (restore a backup instead).
	AllowEmptyState bool
	// AllowRestore confirms that the state database, a copy written by a
	// backup and restored, may be written to again: the operator checked
	// what psa-syncd wrote since the backup was taken (for Kaseya BMS, the
	// lines posted since). New then removes the backup's mark, once.
	// Without it, passes on such a database write nothing (see
	// ErrRestoredBackup).
	AllowRestore bool
	// PublishExportFields makes the daemon write, beside the export in a
	// file or S3 store, the export fields it reads (see
	// publishReadersLocked): psa-syncd run sets it; the one-off commands
	// (plan, status, sync), which CI may run with read-only credentials,
	// do not write to the store.
	PublishExportFields bool
	// Check runs psa-syncd check's tests with cfg, the config file as the
	// daemon would load it now, writing check's report to w, and returns
	// the report's items (see CheckPassed). stored reads the newest export
	// stored in the daemon's state database (export_url: self), which the
	// daemon holds open. newBackend builds the PSA backend as the passes'
	// (Daemon.NewBackend): on Kaseya BMS its calls count against the
	// hourly limit per endpoint kept in that database, so that a check
	// never takes an endpoint over it while passes run. It serves POST
	// /api/v1/check; nil answers that endpoint with 501.
	Check func(ctx context.Context, cfg *Config, stored func() ([]byte, error), newBackend func(*Config) (psa.Backend, error), w io.Writer) []CheckItem
	// Impact reads the billing impact report asked for: plan, the JSON of
	// a Terraform plan, and the report's format. Its error is the
	// request's (ErrImpactRequest), answered before the request takes its
	// turn. What it returns computes the report with the daemon's running
	// config, export, backend and source. The backend is the passes': on
	// Kaseya BMS the report's calls count against the hourly limit per
	// endpoint kept in the state database. It serves POST /api/v1/impact;
	// nil answers that endpoint with 501.
	Impact func(plan []byte, format string) (ImpactFunc, error)

	// dialActive, when set, makes a standby's connections to the active
	// instance (tests: the cluster's DNS names of a StatefulSet's pods,
	// dialled on 127.0.0.1, where no such DNS answers).
	dialActive dialFunc
}

// Daemon is psa-syncd: it holds the running configuration, the last good
// mapping export, the state database and the sync queue, and serves the HTTP
// API. Its methods are safe for concurrent use. Create it with New, start it
// with Run, and release it with Close when Run is not used.
type Daemon struct {
	configPath string
	logger     *slog.Logger
	registry   *prometheus.Registry
	metrics    *Metrics
	version    string
	baseClient *http.Client
	psaClient  *http.Client
	now        func() time.Time
	// unsaved keeps, across the Engine built for each pass, the runs whose
	// end the state database failed to record.
	unsaved usage.UnsavedRuns
	// failing keeps, across the Engine built for each pass, the contracts
	// whose writes failed as if the whole PSA did, so that a few that
	// always fail stop no other customer's writes (each pass reads them
	// from the state database too, where a process before this one may
	// have recorded them).
	failing         usage.FailingContracts
	terms           usage.ContractTerms
	getenv          func(string) string
	watchInterval   time.Duration
	shutdownTimeout time.Duration
	// unsavedGaveUp is set once recordUnsaved has tried for its whole
	// bound without recording everything: later calls (Close after Run)
	// try once more, not for another bound.
	unsavedGaveUp atomic.Bool
	listener      net.Listener
	webConfigFile string
	listenAddress string // Options.ListenAddress

	db *state.DB
	// activeSince is when this instance last became the active one
	// (BecomeActive), in Unix nanoseconds by d.now: ticket writes whose
	// outcome is unknown are settled only policies.settle_time after it
	// (tickets.Config.ActiveSince), as the writes of the instance active
	// before may still be on their way to the PSA.
	activeSince atomic.Int64
	// leading is set while this instance holds the state database's
	// leadership (always, once Run or BecomeActive took it, with SQLite).
	leading         atomic.Bool
	lead            *state.Leadership
	allowEmptyState bool
	allowRestore    bool
	publishFields   bool
	check           func(ctx context.Context, cfg *Config, stored func() ([]byte, error), newBackend func(*Config) (psa.Backend, error), w io.Writer) []CheckItem
	impact          func(plan []byte, format string) (ImpactFunc, error)

	cfg atomic.Pointer[Config]
	exp atomic.Pointer[exportSnapshot]
	// clients are the backend and source built from cfg. They are built
	// once per config load and shared by every pass and plan, so that the
	// backend's own bound on concurrent requests holds across all of them.
	clients atomic.Pointer[clients]

	// reloadMu serialises reloads: startup, SIGHUP, POST /-/reload and the
	// export watch all go through reload.
	reloadMu       sync.Mutex
	lastExportSeen fileStamp // the export file as last examined, loaded or not
	// maxExportFile caps the export file's size: export.MaxSize, as for
	// every store and PUT /api/v1/export (tests set less).
	maxExportFile int64
	// exportReadHook, unless nil, runs after the first read of the
	// export file, of at most exportFirstRead bytes when that is > 0: a
	// test's writer changes the file there.
	exportReadHook  func()
	exportFirstRead int
	// exportErr is the last failure to load the export, nil once an
	// export loads or the store answers that it holds the one in use: the
	// status page says why the export in use may not be the store's.
	exportErr atomic.Pointer[exportFailure]
	// selfRevision is the newest stored export revision examined with
	// export_url: self, loaded or not (guarded by reloadMu).
	selfRevision int64
	// self is the state of the watch's reads of the state database with
	// export_url: self (guarded by reloadMu): lastErr is the failure last
	// logged (usage.RefusalKey), "" while it answers, and before the
	// export's failure the status showed when the failures began.
	self struct {
		lastErr string
		before  *exportFailure
	}
	// readersFor names the store beside whose export this process last
	// tried to publish the export fields it reads, and readersAt says when
	// (see publishReadersLocked; guarded by reloadMu).
	readersFor string
	readersAt  time.Time
	// remote is the S3 or psa-syncd store of export_url, opened once per URL.
	remote struct {
		url     string
		backend export.Backend
		version string // the version last examined, loaded or not
		// loaded is the version last loaded from it, the one in use; a
		// version it rejected is examined but not loaded.
		loaded  string
		lastErr string // the last error reading it (usage.RefusalKey), logged once
		// kept is the version kept in the state database for a restart
		// while the store cannot be read (see failedKeepingExport); a
		// file store's too.
		kept string
	}

	// passMu makes passes run one at a time inside the process; the state
	// database's file lock keeps other processes out.
	passMu sync.Mutex

	queue *syncQueue

	// plans keeps the last pass's plan for the read-only API; freshPlans
	// rate-limits the plans that API clients ask the PSA for.
	plans      planMemory
	freshPlans freshPlanLimiter
	// impacts rate-limits the billing impact reports (POST
	// /api/v1/impact), which read every mapped contract as a plan does.
	impacts freshPlanLimiter
	// checkMu lets one POST /api/v1/check run at a time: each asks the
	// PSA, whose hourly budget other integrations share.
	checkMu sync.Mutex
	// apiSlots bounds the API requests served at once, and openAPISlots
	// those of them without the API token (see takeAPISlot).
	apiSlots, openAPISlots chan struct{}
	// httpTimeouts bound each connection to the HTTP server.
	httpTimeouts httpTimeouts
	// forwardTimeout bounds a request a standby forwards to the active
	// instance (see forward).
	forwardTimeout time.Duration
	// activeTransports carries what a standby sends to the active
	// instance (forward, callActive); see newActiveTransport.
	activeTransports *activeTransports

	// scheduleChanged wakes the scheduler after a reload, and
	// ticketScheduleChanged the ticket scheduler.
	scheduleChanged       chan struct{}
	ticketScheduleChanged chan struct{}
	// ticketSettle holds the earliest tickets.Report.SettleAt of the
	// ticket passes requested through the API that the ticket scheduler
	// has not taken yet (settleTicketsAt); zero when none.
	ticketSettleMu sync.Mutex
	ticketSettle   time.Time
	// fullPassRecorded wakes the scheduler after a pass over all customers
	// that recorded a run, so that a scheduled pass kept due (one that was
	// refused or skipped) stops being due once a pass has run after it.
	fullPassRecorded chan struct{}
	// ticketMu makes ticket passes run one at a time inside the process;
	// ticketDryRuns rate-limits the dry runs API clients ask for.
	ticketMu      sync.Mutex
	ticketDryRuns freshPlanLimiter
	// ticketAlerts is the ticket passes' alert source, kept across passes
	// for the Sophos client it reads with (see ticketAlertSource).
	ticketAlertsMu sync.Mutex
	ticketAlerts   *tickets.SophosAlerts
	ticketAlertsOf *sophos.Client
	// ticketTerms keeps the dates of the contracts the ticket passes read
	// for the customers no usage pass plans (see unplannedRenewals).
	ticketTerms ticketTerms
	// ticketTotalsRestored is set once psa_sync_tickets_total holds the
	// stored totals (see restoreTicketMetrics).
	ticketTotalsRestored atomic.Bool
	// metricsRestored is set once RestoreMetrics has run (psa-syncd run,
	// at start-up): from then on the gauges of past passes follow the
	// state database and the loaded export.
	metricsRestored atomic.Bool
	// watchTick replaces the export poll ticker in tests; watchPolled,
	// when set, is sent to after each poll, so that a test knows that
	// the poll of its tick has ended.
	watchTick   <-chan time.Time
	watchPolled chan struct{}
	// nextRun is the Unix time (ns) of the next scheduled pass, 0 for none.
	nextRun atomic.Int64
	// ui holds the status page's signed-in sessions.
	ui uiSessions
	// tokenUser is the basic user a standby's status page calls the
	// active instance as (see authenticateToActive).
	tokenUser tokenUserCache
	// webConfig reads webConfigFile for psa-syncd's own checks, again
	// only when it changed.
	webConfig webConfigCache
	// tokens counts wrong API tokens per client address.
	tokens tokenGuard
	// settle queues a pass when unconfirmed writes can be settled;
	// afterFunc is time.AfterFunc's Stop-returning form (tests replace it).
	settle    settleTimer
	afterFunc func(time.Duration, func()) (stop func() bool)
}

// clients are the PSA backend and usage source of one config.
type clients struct {
	backend psa.Backend
	source  source.Source
}

// exportSnapshot is a loaded, valid mapping export.
type exportSnapshot struct {
	doc *export.Document
	// version is the store's version of data: the digest of a file, the
	// ETag of an S3 object or another psa-syncd's export, or the ETag of
	// the revision in the state database with export_url: self.
	version string
	// data is the export as loaded, which GET /api/v1/export serves byte
	// for byte, kept compressed: a pass has no use for megabytes of JSON
	// it has decoded already.
	data   compressed
	loaded time.Time
}

// compressed is data kept gzip-compressed in memory.
type compressed struct {
	gz   []byte
	size int // of the data uncompressed
}

// compress compresses data.
func compress(data []byte) compressed {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // the level is valid
	_, _ = zw.Write(data)                              // a bytes.Buffer does not fail
	_ = zw.Close()
	return compressed{gz: bytes.Clone(buf.Bytes()), size: len(data)}
}

// WriteTo writes the data uncompressed to w.
func (c compressed) WriteTo(w io.Writer) (int64, error) {
	zr, err := gzip.NewReader(bytes.NewReader(c.gz))
	if err != nil {
		return 0, err
	}
	return io.Copy(w, zr)
}

// fileStamp identifies a version of a file without re-reading it every poll.
type fileStamp struct {
	modTime time.Time
	size    int64
	hash    [sha256.Size]byte
	exists  bool
	read    time.Time // when the content was read
	// tooLarge is set when the file was refused for being larger than
	// maxExportFile; hash is then not set.
	tooLarge bool
	// failure is set when the file could not be read for another reason
	// than its size or its absence (permissions, a directory in its
	// place): the error and what the file's stat said then (size,
	// modification time, mode, inode change time, inode). A poll that
	// fails alike is recorded but not logged again.
	failure string
}

// racyWindow is how close to its modification time a file must have been
// read for the watch to compare its content rather than trust time and size.
const racyWindow = 2 * time.Second

// New opens the state database in cfg.StateDir and returns a Daemon using cfg.
// The mapping export is read by Reload (Run calls it at start), so a missing
// or invalid export does not stop the daemon from starting; it stays not
// ready until a valid export appears.
func New(cfg *Config, configPath string, o Options) (*Daemon, error) {
	if cfg == nil {
		return nil, errors.New("daemon: config is nil")
	}
	if err := validateWebConfig(o.WebConfigFile); err != nil {
		return nil, err
	}
	activeTransports, err := newActiveTransports(activeTLSOf(cfg.State), o.dialActive)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if o.ListenAddress != "" {
		c := *cfg
		c.Web.ListenAddress = o.ListenAddress
		cfg = &c
		if err := cfg.checkAdvertisePort(); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	d := &Daemon{
		configPath:       configPath,
		listenAddress:    o.ListenAddress,
		logger:           o.Logger,
		registry:         o.Registry,
		version:          o.Version,
		baseClient:       o.HTTPClient,
		now:              o.Now,
		getenv:           o.Getenv,
		check:            o.Check,
		impact:           o.Impact,
		watchInterval:    o.WatchInterval,
		shutdownTimeout:  o.ShutdownTimeout,
		listener:         o.Listener,
		webConfigFile:    o.WebConfigFile,
		allowEmptyState:  o.AllowEmptyState,
		allowRestore:     o.AllowRestore,
		publishFields:    o.PublishExportFields,
		queue:            newSyncQueue(),
		apiSlots:         make(chan struct{}, maxConcurrentAPIRequests),
		openAPISlots:     make(chan struct{}, maxConcurrentAPIRequests-tokenAPISlots),
		httpTimeouts:     defaultHTTPTimeouts,
		forwardTimeout:   defaultForwardTimeout,
		activeTransports: activeTransports,
		scheduleChanged:  make(chan struct{}, 1),
		maxExportFile:    export.MaxSize,

		ticketScheduleChanged: make(chan struct{}, 1),
		fullPassRecorded:      make(chan struct{}, 1),
	}
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	if d.registry == nil {
		d.registry = prometheus.NewRegistry()
	}
	if d.baseClient == nil {
		d.baseClient = &http.Client{Timeout: 60 * time.Second}
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.getenv == nil {
		d.getenv = func(string) string { return "" }
	}
	if d.watchInterval <= 0 {
		d.watchInterval = DefaultWatchInterval
	}
	if d.shutdownTimeout <= 0 {
		d.shutdownTimeout = DefaultShutdownTimeout
	}
	d.metrics = NewMetrics(d.registry, cfg.PSA.System)
	d.metrics.SetTLSCertificates(d.tlsCertificates)
	pc := *d.baseClient
	next := pc.Transport
	if next == nil {
		next = psaTransport()
	}
	pc.Transport = d.metrics.InstrumentRoundTripper(next)
	d.psaClient = &pc

	dbcfg := cfg.State.Database(cfg.StateDir)
	dbcfg.Logger = d.logger
	db, err := state.OpenConfig(context.Background(), dbcfg)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	cl, err := d.newClients(cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	d.db = db
	if db.Driver() == state.DriverSQLite {
		d.removeStaleBackups()
	}
	if err := d.startRestored(); err != nil {
		_ = db.Close()
		return nil, err
	}
	d.cfg.Store(cfg)
	d.clients.Store(cl)
	d.metrics.ConfigReloaded(true, d.now())
	d.warnConfig(cfg)
	if db.Driver() == state.DriverSQLite {
		// The file lock that Open took makes this the only instance.
		if err := d.BecomeActive(context.Background()); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	return d, nil
}

// psaIdleConnsPerHost is how many idle connections to the PSA the default
// transport keeps. Go's default is 2, but the PSA client keeps up to
// psa.max_concurrency requests in flight (8 for ConnectWise), so at 2 a
// connection was closed whenever more than two requests ended together,
// and a later request dialled a new one: about one connection per six
// requests in a pass. Idle connections are closed after 90 s (the default
// transport's IdleConnTimeout).
const psaIdleConnsPerHost = 64

// psaTransport returns the transport of the PSA client when the daemon is
// given none: Go's default transport, keeping psaIdleConnsPerHost idle
// connections per host.
func psaTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // net/http's default transport
	t.MaxIdleConnsPerHost = psaIdleConnsPerHost
	return t
}

// Close gives the leadership up and closes the state database. Run closes it
// on return.
func (d *Daemon) Close() error {
	var err error
	if d.leading.Load() {
		// The end of runs a full disk kept from being recorded: with
		// PostgreSQL only the lock's holder records it, so it is tried
		// once while this instance still leads, before the lock is
		// released.
		d.recordUnsavedOnce()
	}
	if d.lead != nil {
		err = d.lead.Release()
	}
	d.leading.Store(false)
	d.metrics.Leader.Set(0)
	// What the passes could not record (a full disk, the lock's lost
	// connection) is recorded now if the database takes it, through the
	// pool once the lock is released, rather than lost with the process:
	// the outcomes of writes; with PostgreSQL, not the end of runs, which
	// only the lock's holder records (recordUnsavedOnce above; those still
	// unrecorded the next active instance marks interrupted).
	d.recordUnsaved(context.Background())
	return errors.Join(err, d.db.Close())
}

// BecomeActive makes this psa-syncd the active instance of those sharing
// its state database, the only one that syncs: at once with SQLite, whose
// file lock New already holds; with PostgreSQL when no other instance holds
// the leadership lock, else with an error naming the one that does. Run
// calls it (waiting for the lock); the sync command calls it once. Taking
// the lock over marks the runs left running by an instance that stopped or
// lost the lock during a pass as interrupted (see interruptRunningRuns),
// reloads the export, when one is loaded, and restores the metrics when
// RestoreMetrics ran before (a standby's start-up), all before it sets
// psa_sync_leader.
func (d *Daemon) BecomeActive(ctx context.Context) error {
	if d.leading.Load() {
		return nil
	}
	cfg := d.cfg.Load()
	host, _ := os.Hostname()
	interval := cfg.State.LockInterval
	if interval <= 0 {
		interval = DefaultLockInterval
	}
	l, err := d.db.TryLead(ctx, state.LeaderInfo{Holder: fmt.Sprintf("%s pid %d", host, os.Getpid()), URL: cfg.AdvertisedURL(servesTLS(&d.webConfig, d.webConfigFile)), Since: d.now()}, interval)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if l == nil {
		return &StandbyError{Active: d.activeInstance()}
	}
	d.lead = l
	d.activeSince.Store(d.now().UnixNano())
	d.interruptRunningRuns()
	d.leading.Store(true)
	if d.exp.Load() != nil {
		// Passes use the newest export from the start, whatever the
		// export poll has seen of it while this one was a standby.
		d.reloadMu.Lock()
		_ = d.reloadExportLocked(false) // logged and recorded in metrics
		d.reloadMu.Unlock()
	}
	if d.metricsRestored.Load() {
		// A standby (psa-syncd run with PostgreSQL) restored the gauges
		// when it started: restore them from the passes the previous
		// active instance recorded since, including one it left running,
		// which interruptRunningRuns marked as failed. psa_sync_leader
		// says the gauges are the active instance's only once they are:
		// set before, the standby's start-up copies counted as the active
		// instance's for a scrape or two, and alerts with no `for` fired.
		if err := d.RestoreMetrics(); err != nil {
			d.logger.Error("Could not restore metrics from the state database", "err", err)
		}
	}
	d.metrics.Leader.Set(1)
	return nil
}

// interruptedRunReason is the error of a run that interruptRunningRuns
// marked, after "pass interrupted: ".
const interruptedRunReason = "psa-syncd stopped (killed, crashed or shut down) or lost the state database's leadership " +
	"during the pass; the intents it left open are reconciled before the next pass writes"

// interruptRunningRuns marks every run still running in the state database
// as interrupted: a failure, finished now. It runs as this process becomes
// the active instance, before it may start a pass (SyncOnce refuses while
// leading is unset, and passMu waits out one still stopping), so every run
// still running is one whose process was killed, crashed or lost the
// leadership; with SQLite, whose file lock New holds, no other process can
// be running one. Left running, such a run would count as the last full
// pass for the schedule, and the metrics restored at start-up would show
// the result before it. An error is logged: the runs stay running, as
// before, and this instance still becomes active.
func (d *Daemon) interruptRunningRuns() {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	n, err := d.db.InterruptRunningRuns(d.now(), interruptedRunReason)
	switch {
	case err != nil:
		d.logger.Error("Could not mark the runs left running by an interrupted pass as failed", "err", err)
	case n > 0:
		d.logger.Warn("Marked the runs an interrupted pass left running as failed", "runs", n)
	}
}

// StandbyError is returned when this psa-syncd is a standby: another
// instance holds the leadership lock of the shared state database.
type StandbyError struct {
	// Active describes the active instance, when known.
	Active string
}

func (e *StandbyError) Error() string {
	return "daemon: this psa-syncd is a standby; the active instance, the only one that syncs, is " + e.Active +
		": send sync and resolve requests to it"
}

// NoLongerActiveError is returned for an operator's write (resolving an
// intent, recording a month as set by hand) that this psa-syncd took as
// the active instance and that the state database refused because this
// instance no longer holds the leadership lock (state.ErrNotLeader): it
// lost it and has not noticed yet. The write was not recorded (unless the
// lock's connection failed as it committed, when sending it again says it
// was); the instance exits once it notices, and a standby takes over.
type NoLongerActiveError struct {
	// Active describes the active instance, when known.
	Active string
	err    error
}

func (e *NoLongerActiveError) Error() string {
	return "daemon: this psa-syncd is no longer the active instance (it lost the state database's leadership lock, and stops once it notices), " +
		"so it recorded nothing; the active instance is " + e.Active + ": send the request again, to it"
}

func (e *NoLongerActiveError) Unwrap() error { return e.err }

// noLongerActive returns err as a *NoLongerActiveError when it says that
// this instance does not hold the leadership lock, else err.
func (d *Daemon) noLongerActive(err error) error {
	if !errors.Is(err, state.ErrNotLeader) {
		return err
	}
	d.logger.Warn("An operator's write was refused: this psa-syncd no longer holds the state database's leadership lock", "err", err)
	return &NoLongerActiveError{Active: d.activeInstance(), err: err}
}

// activeInstance describes the instance that holds the leadership lock.
func (d *Daemon) activeInstance() string { return activeInstanceOf(d.db) }

// activeInstanceOf describes the instance that holds the leadership lock
// of db.
func activeInstanceOf(db *state.DB) string {
	info, held, err := db.Leader()
	switch {
	case err != nil:
		// PostgreSQL restarting, a network cut: the operator must look at
		// the database, not for another instance. The error, which names
		// the database's host, goes to the log (awaitActive), not to
		// whoever asks.
		return "unknown: this psa-syncd cannot read the state database right now (its log says why)"
	case info.Holder == "":
		return "another psa-syncd"
	case !held:
		return fmt.Sprintf("none right now (the last was %s; a standby takes over within seconds)", info)
	}
	return fmt.Sprintf("%s (active since %s)", info, info.Since.Format(time.RFC3339))
}

// Active reports whether this psa-syncd is the active instance.
func (d *Daemon) Active() bool { return d.leading.Load() }

// Config returns the running configuration.
func (d *Daemon) Config() *Config { return d.cfg.Load() }

// Export returns the mapping export in use, or nil before one has loaded.
func (d *Daemon) Export() *export.Document {
	if s := d.exp.Load(); s != nil {
		return s.doc
	}
	return nil
}

// State returns the daemon's state database.
func (d *Daemon) State() *state.DB { return d.db }

// writesEnabled reports whether the loaded mapping export lets passes write
// (see WritesDisabled): a pass that writes nothing is not a last run.
func (d *Daemon) writesEnabled() bool {
	doc := d.Export()
	return doc != nil && (doc.Integration == nil || doc.Integration.Enabled)
}

// warnConfig logs what in cfg validates but does not do what it seems to
// (Config.Warnings), at start and at each reload that changes the config.
func (d *Daemon) warnConfig(cfg *Config) {
	for _, w := range cfg.Warnings() {
		d.logger.Warn("Config setting does not do what it seems to", "file", d.configPath, "warning", w)
	}
	if msg := advertisedHostRefused(&d.webConfig, d.webConfigFile, cfg.State.AdvertiseHost); msg != "" {
		d.logger.Warn("The listener's certificate does not hold the address this instance advertises: while it is active, the standbys refuse to forward to it; "+
			"add the address to the certificate (an IP address as an IP address SAN)", "advertise_host", cfg.State.AdvertiseHost, "web_config", d.webConfigFile, "err", msg)
	}
}

// Ready reports whether the configuration and a valid mapping export are
// loaded, so that passes can run.
func (d *Daemon) Ready() bool { return d.cfg.Load() != nil && d.exp.Load() != nil }

// Reload re-reads the configuration file (when New was given its path) and
// the mapping export. Whatever fails to load is logged at error level and
// recorded in the reload metrics, and the running version stays in use. It
// returns the first error.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cerr := d.reloadConfigLocked()
	// At start (Run reloads) and at each reload: a certificate renewed in
	// place changes no setting.
	d.warnTLSExpiry(d.cfg.Load())
	eerr := d.reloadExportLocked(true)
	return errors.Join(cerr, eerr)
}

func (d *Daemon) reloadConfigLocked() error {
	if d.configPath == "" {
		return nil
	}
	old := d.cfg.Load()
	cfg, err := Load(d.configPath, d.getenv)
	if err == nil && d.listenAddress != "" {
		cfg.Web.ListenAddress = d.listenAddress
	}
	if err == nil && cfg.PSA.System != old.PSA.System {
		err = fmt.Errorf("daemon: psa.system changed from %q to %q: restart psa-syncd to switch PSA", old.PSA.System, cfg.PSA.System)
	}
	if err == nil && (cfg.StateDir != old.StateDir || !reflect.DeepEqual(withActiveTLS(cfg.State, activeTLS{}), withActiveTLS(old.State, activeTLS{}))) {
		// The state database stays the one opened at start-up, with its
		// settings: the rest of the config (a new API token, say) is used
		// now, and the running config keeps saying what is in use. The
		// values are not logged: state.url holds a password.
		d.logger.Warn("state_dir or the state section changed; it takes effect after a restart")
		cfg.StateDir, cfg.State = old.StateDir, withActiveTLS(old.State, activeTLSOf(cfg.State))
	}
	var cl *clients
	if err == nil {
		cl, err = d.newClients(cfg)
	}
	if err == nil {
		// A standby's TLS towards the active instance is no setting of
		// the database: its files are read again, changed or not (a
		// rotated CA, a renewed client certificate), and other files
		// named are used from now on.
		err = d.activeTransports.use(activeTLSOf(cfg.State))
	}
	if err != nil {
		d.metrics.ConfigReloaded(false, d.now())
		d.logger.Error("Error reloading config; keeping the running one", "file", d.configPath, "err", err)
		return err
	}
	if cfg.Web.ListenAddress != old.Web.ListenAddress {
		d.logger.Warn("web.listen_address changed; it takes effect after a restart", "running", old.Web.ListenAddress, "configured", cfg.Web.ListenAddress)
	}
	if !reflect.DeepEqual(cfg, old) {
		d.logger.Info("Loaded config", "file", d.configPath)
		d.warnConfig(cfg)
	}
	d.cfg.Store(cfg)
	d.clients.Store(cl)
	d.metrics.ConfigReloaded(true, d.now())
	d.poke()
	return nil
}

// reloadExportLocked loads the export when force is set or when it changed
// since it was last examined. A file that is unchanged since a failed
// attempt is not retried (and not logged again) until it changes. An export
// on S3 or another psa-syncd is asked for with If-None-Match; with
// export_url: self, it is the newest version in the state database.
func (d *Daemon) reloadExportLocked(force bool) error {
	cfg := d.cfg.Load()
	defer d.publishReadersLocked(cfg)
	switch cfg.ExportStore() {
	case StoreSelf:
		return d.reloadSelfExportLocked(cfg)
	case StoreS3, StoreRemote:
		return d.reloadRemoteExportLocked(cfg, force)
	}
	if !force && d.lastExportSeen.tooLarge && d.lastExportSeen.sameTimeAndSize(cfg.ExportPath) {
		// Refused for its size, and not written since: reading it again
		// (up to the cap) would only log the same error again.
		return nil
	}
	data, stamp, err := readStamped(cfg.ExportPath, d.maxExportFile, d.exportFirstRead, d.exportReadHook)
	if !force && stamp.exists == d.lastExportSeen.exists && stamp.hash == d.lastExportSeen.hash && err == nil {
		d.lastExportSeen = stamp
		return nil
	}
	prev := d.lastExportSeen
	d.lastExportSeen = stamp
	if !force && stamp.failure != "" && stamp.failure == prev.failure {
		// Still unreadable, alike (a file that cannot be read keeps being
		// tried: a fix of a parent directory's permissions changes nothing
		// the file's stat shows): recorded, but logged once per change of
		// the error or of the file, not at every poll.
		d.metrics.ExportReloaded(false, d.now())
		if f := d.exportErr.Load(); f != nil {
			return f.err
		}
		return err
	}
	var doc *export.Document
	if err == nil {
		doc, err = d.checkExport(cfg, data)
	}
	if err != nil {
		return d.failedKeepingExport(cfg, err)
	}
	d.useExport(cfg, doc, export.Digest(data), data)
	d.keepExportLocked(cfg, export.Blob{Data: data, Version: export.Digest(data)})
	return nil
}

// checkExport decodes an export and checks it against the running config
// and PSA connection.
func (d *Daemon) checkExport(cfg *Config, data []byte) (*export.Document, error) {
	var instance string
	if cl := d.clients.Load(); cl != nil {
		instance = cl.backend.Instance()
	}
	return CheckExport(cfg, data, instance)
}

// exportFailed records and logs an export that could not be loaded; the
// last good one stays in use.
func (d *Daemon) exportFailed(cfg *Config, err error) error {
	err = d.exportFailedQuietly(cfg, err)
	if d.exp.Load() != nil {
		d.logger.Error("Error reloading mapping export; keeping the last good one", "err", err)
	} else {
		d.logger.Error("Error loading mapping export", "err", err)
	}
	return err
}

// exportFailedQuietly is exportFailed without the log line, for a caller
// that logs its own.
func (d *Daemon) exportFailedQuietly(cfg *Config, err error) error {
	err = fmt.Errorf("daemon: %w", cfg.ExportError(err))
	d.metrics.ExportReloaded(false, d.now())
	d.exportErr.Store(&exportFailure{err: err, at: d.now()})
	return err
}

// exportFailure is a failure to load the export, and when it happened.
type exportFailure struct {
	err error
	at  time.Time
}

// namesStore matches an export store's error, which begins with the
// store's name.
var namesStore = regexp.MustCompile(`^export "[^"]*": `)

// ExportError is err, from reading the export store of c, as "mapping
// export STORE: ...", the store named once: the store's own error names
// it already (`export "s3://…": reading: …`), others do not.
func (c *Config) ExportError(err error) error {
	if namesStore.MatchString(err.Error()) {
		return fmt.Errorf("mapping %w", err)
	}
	return fmt.Errorf("mapping export %s: %w", c.ExportName(), err)
}

// useExport makes a checked export the one passes use.
func (d *Daemon) useExport(cfg *Config, doc *export.Document, version string, data []byte) {
	prev := d.exp.Load()
	if failed := d.exportErr.Load(); failed != nil && prev != nil && prev.doc.Revision == doc.Revision && prev.version == version {
		// The export that failed to load is read again, unchanged: the
		// "Loaded mapping export" line below is not logged for it.
		d.logger.Info("Mapping export read again; it is the one in use", "store", cfg.ExportName(),
			"revision", doc.Revision, "failing_since", failed.at)
	}
	d.exp.Store(&exportSnapshot{doc: doc, version: version, data: compress(data), loaded: d.now()})
	d.exportErr.Store(nil)
	d.metrics.ExportReloaded(true, d.now())
	enabled := doc.Integration == nil || doc.Integration.Enabled
	d.metrics.SetIntegrationEnabled(enabled)
	d.metrics.SetTicketSyncEnabled(ticketPassWrites(doc))
	if prev == nil || prev.doc.Revision != doc.Revision || prev.version != version {
		d.logger.Info("Loaded mapping export", "store", cfg.ExportName(), "revision", doc.Revision,
			"products", len(doc.ProductMappings), "customers", len(doc.CustomerMappings), "integration_enabled", enabled)
		if prev != nil && doc.Revision < prev.doc.Revision {
			// A restore from a backup does this on purpose; an apply that
			// wrote to another store, or an old copy put back by mistake,
			// does it unnoticed, and the mappings of the newer revision are
			// gone from the passes.
			d.logger.Warn("Loaded a mapping export with a lower revision than the one it replaces: an older export was put back",
				"store", cfg.ExportName(), "revision", doc.Revision, "previous_revision", prev.doc.Revision)
		}
		d.logTicketSync(cfg, doc)
		if !enabled {
			d.logger.Warn("Integration is disabled in the mapping export: passes compute and report but write nothing to the PSA")
		}
		if prev != nil || d.metricsRestored.Load() {
			// A customer removed from the export, or whose usage sync
			// was turned off, leaves the customer gauges now, not at the
			// next pass (up to a day later): its failed or held status
			// must not keep an alert firing. The same holds for the open
			// tickets of a customer whose ticket sync was turned off.
			// The first export loaded after RestoreMetrics ran without
			// one (missing, invalid or unreachable at start-up) sets the
			// customers' gauges, which RestoreMetrics could not: until
			// the next pass they read 0. A first load before
			// RestoreMetrics leaves them to it.
			d.refreshCustomerGauges()
			d.refreshTicketGauges()
		}
	}
	d.poke()
}

// refreshCustomerGauges recomputes the customer gauges from the stored
// statuses of the loaded export's customers. A running pass sets them when
// it ends, from the export it started with: then they are recomputed after
// it, with the export loaded by then, so that neither overwrites the other.
func (d *Daemon) refreshCustomerGauges() {
	nowOrAfter(&d.passMu, func() {
		if e, doc, err := d.engine(); err == nil {
			e.RecordCustomers(doc)
		}
	})
}

// nowOrAfter runs f holding mu: at once when mu is free, otherwise in a
// goroutine once whoever holds it (a running pass) lets it go.
func nowOrAfter(mu *sync.Mutex, f func()) {
	if mu.TryLock() {
		defer mu.Unlock()
		f()
		return
	}
	go func() {
		mu.Lock()
		defer mu.Unlock()
		f()
	}()
}

func ticketSyncCount(doc *export.Document) int {
	n := 0
	for _, c := range doc.CustomerMappings {
		if c.TicketSync {
			n++
		}
	}
	return n
}

// readStamped reads path, of at most limit bytes, and returns its content
// and stamp. A missing file returns an error matching fs.ErrNotExist and a
// stamp with exists=false. A file larger than limit is an error, with a
// stamp that has tooLarge set and no hash: no more than limit+1 bytes of
// it are read. A file that changed while it was read (sizecap.ChangedError)
// is an error with an empty stamp, so that the next poll reads it again:
// a program that writes the export in place (a copy by hand, a script)
// leaves it half written meanwhile, and a half cut at the end of a
// customer mapping may even decode, the customers after it gone from the
// passes. hook, unless nil, runs after the first read, of at most first
// bytes when first > 0 (tests: sizecap.OnFirstRead).
func readStamped(path string, limit int64, first int, hook func()) ([]byte, fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fileStamp{}, err
		}
		// A parent directory that cannot be searched, a symbolic link
		// loop: no stat to tell a change by, only the error.
		return nil, fileStamp{failure: err.Error()}, err
	}
	data, err := readExportOnce(path, limit, first, hook)
	var tl *sizecap.TooLargeError
	if errors.As(err, &tl) {
		return nil, fileStamp{modTime: fi.ModTime(), size: fi.Size(), exists: true, tooLarge: true, read: time.Now()},
			fmt.Errorf("the file is larger than %s, the most psa-syncd reads of a mapping export; is export_path that of the mapping export?", sizecap.Format(limit))
	}
	var ce *sizecap.ChangedError
	if errors.As(err, &ce) {
		return nil, fileStamp{}, fmt.Errorf("the file changed while it was read (%s): a program writes it in place; the provider writes it "+
			"through a temporary file in the same directory renamed over %s, and whatever else writes it should do the same, so that psa-syncd "+
			"never reads it half written. Nothing of it was used; the next poll reads it again", ce.Detail(), filepath.Base(path))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileStamp{}, err
	}
	if err != nil {
		ctime, dev, ino := statChange(fi)
		return nil, fileStamp{failure: fmt.Sprintf("%s\x00%d %d %v %d %d %d", err, fi.Size(), fi.ModTime().UnixNano(), fi.Mode(), ctime.UnixNano(), dev, ino)}, err
	}
	return data, fileStamp{modTime: fi.ModTime(), size: fi.Size(), hash: sha256.Sum256(data), exists: true, read: time.Now()}, nil
}

// readExportOnce reads the export file at path with sizecap.ReadOpenStable;
// first and hook are readStamped's.
func readExportOnce(path string, limit int64, first int, hook func()) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r fs.File = f
	if hook != nil {
		r = sizecap.OnFirstRead(f, first, hook)
	}
	return sizecap.ReadOpenStable(r, path, limit, "a mapping export")
}

// sameTimeAndSize reports whether the file at path still has the stamp's
// modification time and size.
func (s fileStamp) sameTimeAndSize(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && s.exists && fi.ModTime().Equal(s.modTime) && fi.Size() == s.size
}

// exportChanged reports, cheaply, whether the export file may have changed
// since it was last examined: it compares modification time and size first
// and hashes the content only when they differ.
func (d *Daemon) exportChanged() bool {
	d.reloadMu.Lock()
	seen := d.lastExportSeen
	path := d.cfg.Load().ExportPath
	d.reloadMu.Unlock()
	fi, err := os.Stat(path)
	if err != nil {
		return seen.exists || seen.failure != "" || !errors.Is(err, fs.ErrNotExist)
	}
	if !seen.exists {
		// Missing or unreadable when last examined: read again, which a
		// file that still cannot be read fails at once (reloadExportLocked
		// logs a failure that is alike only once).
		return true
	}
	if seen.tooLarge {
		// Refused for its size: a new time or size is a new version to
		// try, and nothing else is. Its content is not hashed, which
		// would mean reading it whole at every poll.
		return !fi.ModTime().Equal(seen.modTime) || fi.Size() != seen.size
	}
	// Same time and size means unchanged, unless the file was modified so
	// shortly before it was last read that a second write could share its
	// (coarse) time stamp: then only the content tells.
	if fi.ModTime().Equal(seen.modTime) && fi.Size() == seen.size && seen.read.Sub(seen.modTime) > racyWindow {
		return false
	}
	data, err := sizecap.ReadFile(path, d.maxExportFile, "")
	if err != nil {
		return true
	}
	h := sha256.Sum256(data)
	if bytes.Equal(h[:], seen.hash[:]) {
		// Touched but not changed: remember the new time so the next poll
		// does not hash again.
		d.reloadMu.Lock()
		if d.lastExportSeen.hash == h {
			d.lastExportSeen.modTime, d.lastExportSeen.size, d.lastExportSeen.read = fi.ModTime(), fi.Size(), time.Now()
		}
		d.reloadMu.Unlock()
		return false
	}
	return true
}

// poke wakes the schedulers so that they recompute the next run.
func (d *Daemon) poke() {
	for _, c := range []chan struct{}{d.scheduleChanged, d.ticketScheduleChanged} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// activeSchedule returns the schedule and time zone in force: the export's
// integration block wins over the config file.
func (d *Daemon) activeSchedule() (schedule.Schedule, *time.Location, error) {
	cfg := d.cfg.Load()
	spec, tz := cfg.Schedule, cfg.Timezone
	if s := d.exp.Load(); s != nil && s.doc.Integration != nil {
		if s.doc.Integration.Schedule != "" {
			spec = s.doc.Integration.Schedule
		}
		if s.doc.Integration.Timezone != "" {
			tz = s.doc.Integration.Timezone
		}
	}
	return parseSchedule("schedule", cmp.Or(spec, DefaultSchedule), tz)
}

// parseSchedule parses a schedule and its time zone; what names the
// schedule in errors.
func parseSchedule(what, spec, tz string) (schedule.Schedule, *time.Location, error) {
	sched, err := schedule.Parse(spec)
	if err != nil {
		return schedule.Schedule{}, nil, fmt.Errorf("daemon: %s: %w", what, err)
	}
	loc, err := schedule.LoadLocation(tz)
	if err != nil {
		return schedule.Schedule{}, nil, fmt.Errorf("daemon: timezone: %w", err)
	}
	return sched, loc, nil
}

// NewBackend builds the PSA backend for cfg with the daemon's instrumented
// HTTP client. Kaseya BMS counts its calls per endpoint in the state
// database, so that its hourly limit holds across passes, restarts and the
// instances that share the database.
func (d *Daemon) NewBackend(cfg *Config) (psa.Backend, error) {
	bc := cfg.BackendConfig(d.psaClient, d.logger.With("component", "psa"))
	bc.RateLimited = d.metrics.RateLimited
	if bc.KaseyaBMS != nil && d.db != nil {
		kc := *bc.KaseyaBMS
		kc.Calls = d.db.APICalls()
		bc.KaseyaBMS = &kc
	}
	return backends.New(bc)
}

// NewSource builds the usage source for cfg.
func (d *Daemon) NewSource(cfg *Config) (source.Source, error) {
	return cfg.NewSource(d.baseClient, d.logger.With("component", "source"))
}

func (d *Daemon) newClients(cfg *Config) (*clients, error) {
	be, err := d.NewBackend(cfg)
	if err != nil {
		return nil, fmt.Errorf("daemon: psa: %w", err)
	}
	src, err := d.NewSource(cfg)
	if err != nil {
		return nil, fmt.Errorf("daemon: source: %w", err)
	}
	return &clients{backend: be, source: src}, nil
}

// engine builds an Engine for one pass from the running config and export.
func (d *Daemon) engine() (*usage.Engine, *export.Document, error) {
	snap := d.exp.Load()
	if snap == nil {
		return nil, nil, errors.New("daemon: no valid mapping export loaded")
	}
	cfg := d.cfg.Load()
	_, loc, err := d.activeSchedule()
	if err != nil {
		return nil, nil, err
	}
	cl := d.clients.Load()
	e := usage.NewEngine(usage.EngineOptions{
		Backend:  cl.backend,
		Source:   cl.source,
		State:    d.db,
		Policies: cfg.Policies,
		Metrics:  d.metrics.engine(),
		Logger:   d.logger.With("component", "sync", "system", string(cfg.PSA.System)),
		Location: loc,
		Now:      d.now,
		Unsaved:  &d.unsaved,
		Failing:  &d.failing,
		Terms:    &d.terms,
	})
	return e, snap.doc, nil
}

// exportlessEngine builds an Engine for what needs only the PSA and the
// state database (open intents, stored statuses, the restored metrics),
// when there is no export to build one for a pass. Its time zone is the
// schedule's (the config's timezone without an export), UTC only when
// that does not parse: the month that has ended, which
// psa_sync_ended_period_last_run_result reports, is the month in that
// zone.
func (d *Daemon) exportlessEngine() *usage.Engine {
	cfg := d.cfg.Load()
	loc := time.UTC
	if _, l, err := d.activeSchedule(); err == nil {
		loc = l
	}
	return usage.NewEngine(usage.EngineOptions{Backend: d.clients.Load().backend, State: d.db, Policies: cfg.Policies, Metrics: d.metrics.engine(),
		Logger: d.logger.With("component", "sync", "system", string(cfg.PSA.System)), Location: loc, Now: d.now, Unsaved: &d.unsaved})
}

// SyncOnce runs one pass now with the running config and export and waits
// for it. Passes never overlap: SyncOnce waits for a running pass to end
// first. When the export switches the integration off, the pass runs with
// WritesDisabled.
func (d *Daemon) SyncOnce(ctx context.Context, o usage.PassOptions) (*usage.Result, error) {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	if !d.leading.Load() {
		return nil, &StandbyError{Active: d.activeInstance()}
	}
	e, doc, err := d.engine()
	if err != nil {
		return nil, err
	}
	if doc.Integration != nil && !doc.Integration.Enabled {
		o.WritesDisabled = true
	}
	if o.Trigger == "" {
		o.Trigger = usage.TriggerManual
	}
	held, all, err := d.usageWritesHeld(doc)
	if err != nil {
		return nil, err
	}
	if held != nil && !all {
		o.AddsHeld, held = held, nil
	}
	if !o.DryRun && !o.WritesDisabled {
		if held != nil {
			return nil, held
		}
		if err := d.checkWriteHistory(doc); err != nil {
			return nil, err
		}
	}
	res, err := e.Sync(ctx, doc, o)
	if res != nil && res.Plan != nil && held != nil {
		res.Plan.WritesHeld = held.Error()
	}
	if !o.DryRun {
		d.armSettle(e)
	}
	if res != nil && res.Plan != nil {
		p := *res.Plan
		p.RunID = res.Run.ID
		d.recordPlan(&p, o.Customer)
	}
	if res != nil && res.Run.ID != 0 && o.Customer == "" {
		d.pruneHistory(ctx)
	}
	return res, err
}

// pruneHistory removes the history that state.history_retention and
// state.export_bodies_kept say is old, after a pass over all customers, so
// that the state database of a psa-syncd that runs for years does not grow
// without bound. A failure is logged: the next pass tries again.
func (d *Daemon) pruneHistory(ctx context.Context) {
	cfg := d.cfg.Load()
	r := cfg.State.Retention(d.now())
	if _, loc, err := d.activeSchedule(); err == nil {
		// The last pass of the month that ended stays, for the status
		// page's offer and psa_sync_ended_period_last_run_result.
		cur := usage.PeriodAt(d.now(), loc, cfg.Policies.UsagePeriod)
		r.KeepPeriods = []string{cur.String(), cur.Prev().String()}
	}
	p, err := d.db.PruneHistory(ctx, r)
	if err != nil {
		d.logger.Warn("Could not remove old history from the state database; the next pass tries again", "err", err)
	}
	if p.Total() > 0 {
		d.logger.Debug("Removed old history from the state database", "runs", p.Runs, "intents", p.Intents, "export_bodies", p.ExportBodies)
	}
}

// checkWriteHistory refuses to write when the PSA's quantities are known
// only from the ledger (Kaseya BMS), the export maps customers with usage
// sync on, and the state database holds no record of earlier writes: it is
// new, or it lost its content (an emptied or replaced file, a fresh
// database), and a pass would post every line again. AllowEmptyState (the
// -state.allow-empty flag) lets a first start through, once.
func (d *Daemon) checkWriteHistory(doc *export.Document) error {
	cfg := d.cfg.Load()
	if cfg.PSA.System != psa.SystemKaseyaBMS {
		return nil
	}
	n := 0
	for _, c := range doc.CustomerMappings {
		if c.UsageSync {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	ok, err := d.db.HasWriteHistory()
	if err != nil || ok {
		return err
	}
	if d.allowEmptyState {
		d.logger.Warn("Starting on a state database without a ledger, as -state.allow-empty says", "database", d.db.Path(), "customers", n)
		return d.db.AllowEmptyStart(d.now())
	}
	return fmt.Errorf("daemon: the state database %s holds no ledger, but the mapping export maps %d customers with usage sync on "+
		"and Kaseya BMS quantities are known only from psa-syncd's ledger: if psa-syncd synced them before, restore the state "+
		"database from a backup (a pass now would post every line again); if this is the first start for this export, "+
		"run once with -state.allow-empty", d.db.Path(), n)
}

// ErrRestoredBackup matches the refusal of a pass that would write to a
// state database restored from a backup before an operator confirmed it
// (Options.AllowRestore, -state.allow-restore).
var ErrRestoredBackup = errors.New("daemon: the state database is a restored backup")

// restoredError is the refusal of writes on a restored backup; it matches
// ErrRestoredBackup.
type restoredError struct {
	path  string
	taken time.Time
	// dump is set for a PostgreSQL database restored from a dump, whose
	// time is that of the last write the dump records (see
	// state.DB.RestoredBackup).
	dump bool
	// timeline, for a PostgreSQL database on another timeline than the one
	// psa-syncd wrote it on (a physical copy: a point-in-time recovery, a
	// promoted replica), is the recorded timeline and the server's
	// (state.DB.Timelines).
	timeline [2]string
}

func (e *restoredError) Is(target error) bool { return target == ErrRestoredBackup }

// Error names no file: the plan, the customers' ticket statuses and the
// sync requests keep it, which are served without credentials; the log
// of the refusal names the database (startRestored).
func (e *restoredError) Error() string {
	what := fmt.Sprintf("a backup taken at %s and restored", e.taken.UTC().Format(time.RFC3339))
	if e.dump {
		what = fmt.Sprintf("restored from a dump (pg_restore) whose last recorded write is at %s", e.taken.UTC().Format(time.RFC3339))
		if e.taken.IsZero() {
			what = "restored from a dump (pg_restore) that records no write"
		}
	}
	if e.timeline[0] != "" {
		what = fmt.Sprintf("on PostgreSQL timeline %s, not %s where psa-syncd wrote it: a copy (a point-in-time recovery, a restored base backup, "+
			"a promoted replica; a failover to a synchronous standby, which lost nothing, starts a new timeline too) whose last recorded write is at %s",
			e.timeline[1], e.timeline[0], e.taken.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("daemon: writes are held: the state database is %s, so its ledger and ticket "+
		"records lack what psa-syncd wrote since; a pass would write it again (for Kaseya BMS, a second line for every change posted since). "+
		"Check the lines posted since that time in the PSA (for Kaseya BMS, post or remove lines so that each contract line matches the restored ledger: "+
		"psa-syncd ledger), then start psa-syncd once with -state.allow-restore", what)
}

// restored returns the refusal of writes when the state database is a
// restored backup that no operator has confirmed, else nil.
func (d *Daemon) restored() (*restoredError, error) {
	taken, ok, err := d.db.RestoredBackup()
	if err != nil || !ok {
		return nil, err
	}
	held := &restoredError{path: d.db.Path(), taken: taken, dump: d.db.Driver() == state.DriverPostgres}
	if held.dump {
		recorded, current, err := d.db.Timelines()
		if err != nil {
			return nil, err
		}
		if recorded != "" && current != "" && recorded != current {
			held.timeline = [2]string{recorded, current}
		}
	}
	return held, nil
}

// removeStaleBackups removes the temporary copies of GET /api/v1/backup
// (.backup-* next to the SQLite database) that a process stopped during a
// backup left behind: each is as large as the database.
func (d *Daemon) removeStaleBackups() {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(d.db.Path()), ".backup-*"))
	for _, dir := range stale {
		if err := os.RemoveAll(dir); err != nil {
			d.logger.Warn("Cannot remove a backup copy left by an earlier psa-syncd", "path", dir, "err", err)
			continue
		}
		d.logger.Info("Removed a backup copy left by an earlier psa-syncd", "path", dir)
	}
}

// startRestored, at start-up, confirms the restore of a backup when
// AllowRestore says to (removing the backup's mark), or else logs that
// writes are held.
func (d *Daemon) startRestored() error {
	held, err := d.restored()
	if err != nil || held == nil {
		return err
	}
	if d.allowRestore {
		d.logger.Warn("Writing to a state database restored from a backup, as -state.allow-restore says", "database", d.db.Path(),
			"backup_taken", held.taken.UTC().Format(time.RFC3339))
		return d.db.ConfirmRestore()
	}
	d.logger.Error("The state database is a restored backup: passes write nothing until an operator confirms the restore", "database", held.path, "err", held)
	return nil
}

// usageWritesHeld returns the refusal of a usage pass's writes while the
// state database is an unconfirmed restored backup and the export maps
// some customer with usage sync on. all is true when the whole pass is
// held: the PSA's quantities are known only from the ledger (Kaseya BMS).
// Autotask and ConnectWise PSA passes read the quantities from the PSA, so
// only the lines they would add, and Autotask's adjustments, are held
// (PassOptions.AddsHeld): an add the copy lost, which the read does not
// show, would be added again, and an adjustment computed from a read from
// before a write the copy lost would apply that write again.
func (d *Daemon) usageWritesHeld(doc *export.Document) (held *restoredError, all bool, err error) {
	if !slices.ContainsFunc(doc.CustomerMappings, func(c export.CustomerMapping) bool { return c.UsageSync }) {
		return nil, false, nil
	}
	held, err = d.restored()
	return held, d.cfg.Load().PSA.System == psa.SystemKaseyaBMS, err
}

// LastPlan returns the plan of the last pass since start-up (or of the last
// plan computed for every customer through the API), limited to one
// customer when customer is not "". It makes no request: ok is false when
// no such plan is known yet.
func (d *Daemon) LastPlan(customer string) (p *usage.Plan, ok bool) { return d.plans.get(customer) }

// Plan computes the changes the next pass would make, writing nothing.
func (d *Daemon) Plan(ctx context.Context, o usage.PassOptions) (*usage.Plan, error) {
	e, doc, err := d.engine()
	if err != nil {
		return nil, err
	}
	if doc.Integration != nil && !doc.Integration.Enabled {
		o.WritesDisabled = true
	}
	held, all, err := d.usageWritesHeld(doc)
	if err != nil {
		return nil, err
	}
	if held != nil && !all {
		o.AddsHeld, held = held, nil
	}
	p, err := e.Plan(ctx, doc, o)
	if p != nil && held != nil {
		p.WritesHeld = held.Error()
	}
	return p, err
}

// Reconcile settles the intents that a crashed or killed pass left open, by
// re-reading the PSA. It must run before the first pass after start-up; Run
// calls it.
func (d *Daemon) Reconcile(ctx context.Context) (int, error) {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	if !d.leading.Load() {
		return 0, &StandbyError{Active: d.activeInstance()}
	}
	e, _, err := d.engine()
	if err != nil {
		// Without an export the engine cannot be built for a pass, but open
		// intents only need the PSA.
		e = d.exportlessEngine()
	}
	n, err := e.Reconcile(ctx)
	d.armSettle(e)
	return n, err
}

// settleTimer holds the one pending follow-up pass for intents that wait
// for their write to settle.
type settleTimer struct {
	mu   sync.Mutex
	stop func() bool
	// at and customer are those of the pending follow-up.
	at       time.Time
	customer string
}

// maxSettleWait bounds how far ahead a follow-up pass is queued; an
// intent of a pass still recorded as running waits for that pass, not for
// a time, and is settled by the passes after it is marked interrupted.
const maxSettleWait = 25 * time.Hour

// armSettle queues a pass for the customers whose open intents e left open
// to settle (Engine.Settling), for when the first of them can be settled:
// without it, after a lost answer or a takeover, their lines would wait
// for the next scheduled pass (up to a day). One customer's pass is for
// that customer; more than one, a pass for all. An earlier follow-up that
// is still pending is replaced.
func (d *Daemon) armSettle(e *usage.Engine) {
	at, customers := e.Settling()
	d.armSettleAt(at, customers)
}

// armSettleAt is armSettle for the intents of customers that can be
// settled at at.
func (d *Daemon) armSettleAt(at time.Time, customers []string) {
	if len(customers) == 0 {
		return
	}
	wait := max(0, at.Sub(d.now()))
	if wait > maxSettleWait {
		return
	}
	customer := ""
	if len(customers) == 1 {
		customer = customers[0]
	}
	d.settle.mu.Lock()
	defer d.settle.mu.Unlock()
	if d.settle.stop != nil {
		if d.settle.at.Equal(at) && d.settle.customer == customer {
			// The same follow-up is pending: the intents still wait, so
			// its time has not come.
			return
		}
		d.settle.stop()
	}
	d.settle.at, d.settle.customer = at, customer
	d.logger.Info("Unconfirmed writes may still reach the PSA; their lines are re-read and written after they settle",
		"customers", len(customers), "settles_at", at.UTC().Format(time.RFC3339))
	afterFunc := d.afterFunc
	if afterFunc == nil {
		afterFunc = func(wait time.Duration, f func()) func() bool { return time.AfterFunc(wait, f).Stop }
	}
	d.settle.stop = afterFunc(wait, func() {
		d.settle.mu.Lock()
		// Fired: a pass that still finds these intents waiting (a clock
		// that runs behind the timer's) arms a new follow-up.
		d.settle.stop, d.settle.at, d.settle.customer = nil, time.Time{}, ""
		d.settle.mu.Unlock()
		if !d.leading.Load() {
			return
		}
		tk := d.RequestSync(customer, usage.TriggerSettle)
		d.logger.Info("Queued a pass for writes that have settled", "customer", customer, "request", tk.ID)
	})
}

// OpenIntents returns the writes whose outcome is not settled yet, oldest
// first. For Autotask and ConnectWise they exist only between a crash and
// the next Reconcile; for Kaseya BMS, whose lines cannot be read back, they
// wait for an operator (ResolveIntent), and their lines are not written
// until then.
func (d *Daemon) OpenIntents() ([]state.Intent, error) { return d.db.OpenIntents() }

// TicketIntents returns the ticket creates whose outcome is not settled
// yet: a ticket pass adopts one its search by reference finds, and one it
// cannot check that way waits for an operator (ReleaseTicketCreate).
func (d *Daemon) TicketIntents() ([]tickets.Record, error) { return d.db.TicketIntents() }

// ResolveIntent records an operator's answer for an open intent that
// reading the PSA cannot settle (see Engine.ResolveIntent): posted closes
// it as done and the change goes to the ledger; not posted closes it as
// failed, and the next pass writes the line again. It waits for a running
// pass to end, as long as ctx lives: when ctx ends first it records nothing
// and returns an error matching ctx's. It makes no PSA request. It returns
// the intent as it was while open. who, when the request named a user
// (basic_auth_users), is recorded before note. A standby refuses it (a
// *StandbyError), and so does an instance that lost the leadership lock
// before it noticed (a *NoLongerActiveError): the answer is committed only
// through the lock's session.
func (d *Daemon) ResolveIntent(ctx context.Context, id int64, posted bool, note, who string) (state.Intent, error) {
	if err := d.lockPass(ctx); err != nil {
		return state.Intent{}, fmt.Errorf("daemon: intent %d not resolved: a pass is running, and waiting for it to end was given up: %w", id, err)
	}
	defer d.passMu.Unlock()
	if !d.leading.Load() {
		return state.Intent{}, &StandbyError{Active: d.activeInstance()}
	}
	// The intent's note is its only record of the answer: it names who
	// gave it, as a note recorded as set by hand does.
	if who = strings.TrimSpace(who); who != "" {
		note = strings.TrimSuffix("user "+who+": "+strings.TrimSpace(note), ": ")
	}
	in, err := d.exportlessEngine().ResolveIntent(id, posted, note)
	return in, d.noLongerActive(err)
}

// RecordSetByHand records that the quantities of period p, the month that
// has ended, were set in the PSA by hand (usage.Engine.RecordSetByHand),
// with note; who, when the request named a user (basic_auth_users), is
// recorded before it. A running pass is waited for as long as ctx lives,
// as ResolveIntent does: a pass of the month may end meanwhile. A standby
// refuses it (a *StandbyError), and so does an instance that lost the
// leadership lock before it noticed (a *NoLongerActiveError): the run is
// committed only through the lock's session.
func (d *Daemon) RecordSetByHand(ctx context.Context, p source.Period, note, who string) (state.Run, error) {
	if err := d.lockPass(ctx); err != nil {
		return state.Run{}, fmt.Errorf("daemon: nothing recorded for %s: a pass is running, and waiting for it to end was given up: %w", p, err)
	}
	defer d.passMu.Unlock()
	if !d.leading.Load() {
		return state.Run{}, &StandbyError{Active: d.activeInstance()}
	}
	if who = strings.TrimSpace(who); who != "" && strings.TrimSpace(note) != "" {
		note = "user " + who + ": " + strings.TrimSpace(note)
	}
	e, _, err := d.engine()
	if err != nil {
		e = d.exportlessEngine()
	}
	run, err := e.RecordSetByHand(p, note)
	return run, d.noLongerActive(err)
}

// passLockPoll is how often lockPass tries the pass lock while a pass runs.
const passLockPoll = 50 * time.Millisecond

// lockPass takes passMu, waiting for a running pass to end only as long as
// ctx lives: an API request whose client gave up must change nothing once
// the pass ends. It returns ctx's error, with passMu not held, when ctx ends
// first.
func (d *Daemon) lockPass(ctx context.Context) error { return lockWithin(ctx, &d.passMu) }

// lockWithin takes mu as lockPass takes passMu.
func lockWithin(ctx context.Context, mu *sync.Mutex) error {
	for !mu.TryLock() {
		t := time.NewTimer(passLockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
	if err := context.Cause(ctx); err != nil {
		mu.Unlock()
		return err
	}
	return nil
}

// RequestSync queues a pass for one customer ("" for all) and returns its
// ticket id at once. A request identical to one still waiting is coalesced
// with it (and a request for one customer with a waiting request for all),
// so repeated clicks never queue repeated passes. Run executes the queue.
func (d *Daemon) RequestSync(customer, trigger string) SyncTicket {
	return d.queue.add(SyncRequest{Customer: customer, Trigger: trigger}, d.now())
}

// SyncRequest is what a "sync now" asks for.
type SyncRequest struct {
	// Customer limits the pass to one source customer id ("" = all).
	Customer string
	// Approve releases the customer's guard holds on large decreases and
	// increases (PassOptions.Approve); it needs Customer.
	Approve bool
	// Service, with Approve, releases only the hold on the customer's line
	// of this PSA service id.
	Service string
	// Units, with Service, releases that hold only at these desired units,
	// the ones reviewed (PassOptions.ApproveUnits); nil: at any.
	Units *int64
	// Surge, with Approve and no Customer, is the review code of the
	// lines the surge guard holds (usage.Plan.Surge): the pass releases
	// them all when it holds exactly the lines and units the code names
	// (usage.PassOptions.ApproveSurge), and no other hold.
	Surge   string
	Trigger string
	// At is the time whose billing period the pass syncs (a scheduled
	// pass's due time, see usage.PassOptions.At); zero: the time it runs.
	At time.Time
	// Period is the billing month whose usage the pass syncs
	// (usage.PassOptions.Period: the current one or the one that has just
	// ended); zero: the one the clock gives.
	Period source.Period
	// Who says who asked, when the request named a basic_auth_users
	// user ("approved by user ops-anna on the status page"): the run's
	// note records it (usage.PassOptions.Note), and that of each request
	// coalesced with it.
	Who string
}

// APIBody returns r as the body of POST /api/v1/sync, with only the
// fields r sets: a request that sets no newer field is then also taken by
// an older psa-syncd (the API refuses fields it does not know), such as
// the active instance of an HA pair in the middle of an upgrade.
func (r SyncRequest) APIBody() map[string]any {
	body := map[string]any{}
	if r.Customer != "" {
		body["customer"] = r.Customer
	}
	if r.Approve {
		body["approve"] = true
	}
	if r.Service != "" {
		body["service"] = r.Service
	}
	if r.Units != nil {
		body["units"] = *r.Units
	}
	if r.Surge != "" {
		body["surge"] = r.Surge
	}
	if !r.Period.IsZero() {
		body["period"] = r.Period.String()
	}
	return body
}

// CheckPeriod returns why a pass may not sync the usage of period p now
// (see usage.Engine.CheckPeriod), or nil; writes says whether the pass
// would write to the PSA.
func (d *Daemon) CheckPeriod(p source.Period, writes bool) error {
	if p.IsZero() {
		return nil
	}
	e, _, err := d.engine()
	if err != nil {
		return err
	}
	return e.CheckPeriod(p, d.now(), writes)
}

// RequestPass queues a pass like RequestSync, with approval. A request that
// approves is never coalesced with one that does not, nor with one that
// approves other units.
func (d *Daemon) RequestPass(r SyncRequest) SyncTicket { return d.queue.add(r, d.now()) }

// Ticket returns a queued, running or finished sync request by id.
func (d *Daemon) Ticket(id string) (SyncTicket, bool) { return d.queue.get(id) }

// WaitTicket waits until the sync request with the given id has finished,
// or ctx is done, and returns it.
func (d *Daemon) WaitTicket(ctx context.Context, id string) (SyncTicket, error) {
	d.queue.mu.Lock()
	done, ok := d.queue.done[id]
	d.queue.mu.Unlock()
	if !ok {
		return SyncTicket{}, fmt.Errorf("daemon: no sync request %q", id)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return SyncTicket{}, ctx.Err()
	}
	t, _ := d.queue.get(id)
	return t, nil
}

// Run runs the daemon until ctx is cancelled: it loads the export, settles
// open intents, then serves HTTP, runs scheduled and requested passes, and
// watches the export file. On cancel it lets the running pass finish (up to
// the shutdown timeout, after which the pass is stopped safely: writes are
// guarded by intents that the next start reconciles), shuts the HTTP server
// down and closes the state database. It returns nil after a clean shutdown,
// and an error if the server failed or the state database did not close.
func (d *Daemon) Run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, d.Close()) }()
	cfg := d.cfg.Load()
	ln := d.listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", cfg.Web.ListenAddress)
		if err != nil {
			return fmt.Errorf("daemon: listening on %s: %w", cfg.Web.ListenAddress, err)
		}
	}
	srv := d.newHTTPServer()
	defer d.recordURL(cfg, ln)()
	// What the process runs with, for an operator reading its log: the
	// state database is described without its credentials.
	d.logger.Info("Loaded config", "file", d.configPath, "system", string(cfg.PSA.System), "source", cfg.Source.Type,
		"database", d.db.Path())

	d.reloadMu.Lock()
	if err := d.reloadExportLocked(true); err != nil && d.exp.Load() == nil {
		d.logger.Warn("Not ready until a valid mapping export is available", "store", cfg.ExportName())
	}
	d.reloadMu.Unlock()
	if err := d.RestoreMetrics(); err != nil {
		d.logger.Error("Could not restore metrics from the state database", "err", err)
	}

	// Passes get their own context so that a shutdown lets them finish; it
	// is cancelled only when the shutdown timeout expires.
	passCtx, stopPasses := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopPasses(nil)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		d.logger.Info("Listening", "address", ln.Addr().String())
		if err := d.serve(srv, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("daemon: http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			d.logger.Warn("HTTP server did not shut down cleanly", "err", err)
		}
		return nil
	})
	g.Go(func() error { d.watchLoop(gctx); return nil })
	passesDone := make(chan struct{})
	g.Go(func() error {
		defer close(passesDone)
		return d.runActive(gctx, passCtx, stopPasses)
	})
	g.Go(func() error {
		<-gctx.Done()
		select {
		case <-passesDone:
		case <-time.After(d.shutdownTimeout):
			d.logger.Warn("Pass still running at shutdown timeout; stopping it (open intents are reconciled at the next start)")
			stopPasses(fmt.Errorf("psa-syncd shut down and the pass did not end within the shutdown timeout (%s)", d.shutdownTimeout))
		}
		return nil
	})
	return g.Wait()
}

// runActive waits until this psa-syncd is the active instance (at once with
// SQLite; with PostgreSQL when no other holds the leadership lock), then
// settles open intents before anything else and runs scheduled and
// requested passes until ctx is done. Losing the lock stops the passes at
// once and returns an error, so that the process exits and the standby,
// which settles what this one left open, takes over.
func (d *Daemon) runActive(ctx, passCtx context.Context, stopPasses context.CancelCauseFunc) error {
	if !d.awaitActive(ctx) {
		return nil
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lead := d.lead
	lost := lead.Lost()
	go func() {
		select {
		case <-lost:
			d.leading.Store(false)
			d.metrics.Leader.Set(0)
			d.logger.Error("Lost the state database's leadership lock; stopping passes and exiting so that a standby takes over", "err", lead.Err())
			stopPasses(errLostLeadership)
			cancel()
		case <-lctx.Done():
		}
	}()
	scheduled := make(chan struct{})
	go func() { defer close(scheduled); d.scheduleLoop(lctx) }()
	ticketsDone := make(chan struct{})
	go func() { defer close(ticketsDone); d.ticketLoop(lctx, passCtx) }()
	if n, err := d.Reconcile(passCtx); err != nil {
		d.logger.Error("Error reconciling open intents; passes will not write until it succeeds", "err", err)
	} else if n > 0 {
		d.logger.Info("Reconciled open intents from an interrupted pass", "intents", n)
	}
	d.workLoop(lctx, passCtx)
	<-scheduled
	<-ticketsDone
	select {
	case <-lost:
		d.recordUnsaved(ctx)
		return fmt.Errorf("daemon: lost the state database's leadership lock, so a standby takes over: %w", lead.Err())
	default:
		return nil
	}
}

// recordUnsavedOnce records once, without waiting, what the passes could
// not record (see recordUnsaved): Close calls it while this instance still
// holds the leadership lock, so that with PostgreSQL the end of runs a full
// disk kept from being recorded goes through the lock's session, the only
// one that records it. What fails is left to recordUnsaved.
func (d *Daemon) recordUnsavedOnce() {
	if d.unsaved.Empty() || d.clients.Load() == nil {
		return
	}
	d.passMu.Lock()
	defer d.passMu.Unlock()
	d.unsavedEngine().RecordUnsaved()
}

// unsavedEngine is the engine that records what the passes could not: the
// export's, or one without an export when none loads.
func (d *Daemon) unsavedEngine() *usage.Engine {
	e, _, err := d.engine()
	if err != nil {
		return d.exportlessEngine()
	}
	return e
}

// recordUnsaved records, before an instance that lost the leadership lock
// exits (and at Close: after `psa-syncd sync`, or at shutdown), what its
// passes knew but could not record because the lock's connection failed
// under them, or the disk was full: the outcome of writes the PSA answered
// (their intents would otherwise stay open for the instance that takes
// over, and for Kaseya BMS wait for an operator) and, on SQLite, the end of
// runs (on PostgreSQL only the lock's holder records a run: the instance
// that takes over marks it interrupted). It goes through a new connection, bounded by the query timeout; closing an
// intent is not fenced, and one the new active instance settled first is
// left as it settled it.
//
// A PostgreSQL database that does not answer at once (restarting, a
// managed database's failover, which is also what ended the lock's
// session) is tried again, at growing intervals, for up to the shutdown
// timeout or until ctx is done: giving up at the first refused connection
// left every line the pass wrote to be settled as after a crash (for
// Kaseya BMS, held for an operator). The instance that takes over waits
// policies.settle_time before it settles an open intent, so the outcomes
// recorded meanwhile are the ones it finds.
func (d *Daemon) recordUnsaved(ctx context.Context) {
	if d.unsaved.Empty() || d.clients.Load() == nil {
		return
	}
	d.passMu.Lock()
	defer d.passMu.Unlock()
	e := d.unsavedEngine()
	bound := d.shutdownTimeout
	if d.unsavedGaveUp.Load() || d.db.Driver() == state.DriverSQLite {
		// SQLite's failure is its own full disk, which waiting does not
		// free.
		bound = 0
	}
	deadline := time.Now().Add(bound)
	pause := time.Second
	for {
		closes, runs := e.RecordUnsaved()
		if closes == 0 && runs == 0 {
			return
		}
		wait := min(pause, time.Until(deadline))
		if wait <= 0 || ctx.Err() != nil {
			d.unsavedGaveUp.Store(true)
			d.logger.Error("Could not record the outcome of some writes before exiting; their intents are settled as after a crash, by the instance that takes over or at the next start",
				"intents", closes, "runs", runs)
			return
		}
		d.logger.Warn("Could not record the outcome of some writes yet; trying again before exiting",
			"intents", closes, "runs", runs, "until", deadline.Format(time.RFC3339))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		pause = min(2*pause, 5*time.Second)
	}
}

// errLostLeadership is the cause with which runActive stops the passes of
// an instance that lost the leadership lock.
var errLostLeadership = errors.New("this psa-syncd lost the state database's leadership lock")

// refusalRelog is how often awaitActive logs a refusal to lead again at
// error level while it stays the same.
const refusalRelog = time.Minute

// awaitActive tries to become the active instance every lock interval
// until it is or ctx is done, and reports whether it is.
func (d *Daemon) awaitActive(ctx context.Context) bool {
	logged := false
	// A refusal that persists (the database down, a newer schema, a
	// pooler) is logged as an error when it starts or changes, and then
	// once every refusalRelog, not every lock interval.
	var lastErr string
	var lastLogged time.Time
	for {
		err := d.BecomeActive(ctx)
		var se *StandbyError
		// psa_sync_leader is 0 on a standby that can take over and on one
		// that cannot: this tells them apart while the active instance
		// runs, not only once it is gone and no instance is active.
		d.metrics.StandbyLockError.Set(boolFloat(err != nil && !errors.As(err, &se)))
		if err == nil {
			if d.db.Driver() != state.DriverSQLite {
				d.logger.Info("This psa-syncd is the active instance", "database", d.db.Path())
			}
			return true
		}
		switch {
		case se == nil:
			if msg, now := err.Error(), d.now(); msg != lastErr || now.Sub(lastLogged) >= refusalRelog {
				d.logger.Error("Error trying to become the active instance", "err", err)
				lastErr, lastLogged = msg, now
			} else {
				d.logger.Debug("Error trying to become the active instance, as before", "err", err)
			}
		case !logged:
			d.logger.Info("Standby: serving the read-only API and metrics until the active instance's lock is gone", "active", se.Active)
			logged = true
			lastErr = ""
		default:
			lastErr = ""
		}
		interval := d.cfg.Load().State.LockInterval
		if interval <= 0 {
			interval = DefaultLockInterval
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}

// watchLoop polls the export file, S3 object, other psa-syncd or, with
// export_url: self, the state database, and reloads the export when it
// changed.
func (d *Daemon) watchLoop(ctx context.Context) {
	tick := d.watchTick
	if tick == nil {
		t := time.NewTicker(d.watchInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		d.pollExport()
		if d.watchPolled != nil {
			d.watchPolled <- struct{}{}
		}
	}
}

// pollExport reloads the mapping export when its store holds another one.
func (d *Daemon) pollExport() {
	if cfg := d.cfg.Load(); cfg.ExportStore() == StoreSelf {
		// A PUT to this psa-syncd takes effect at once; one to another
		// psa-syncd sharing the state database shows as a newer
		// revision.
		d.reloadMu.Lock()
		_ = d.reloadNewerSelfExportLocked(cfg) // a bad export and a database failure are logged once, and in the metric
		d.reloadMu.Unlock()
		return
	}
	if d.cfg.Load().ExportStore() == StoreFile && !d.exportChanged() {
		return
	}
	d.reloadMu.Lock()
	_ = d.reloadExportLocked(false) // logged and recorded in metrics
	d.reloadMu.Unlock()
}

// scheduleLoop queues a pass for all customers at each scheduled time. The
// next time is computed from the start of the last full pass recorded in the
// state database that finished (whatever triggered it), or from the start-up
// time when there is none, so that neither a restart nor a reload postpones
// an "every 24h" pass, and a scheduled time missed while the daemon was down
// is caught up at start-up. A pass that was interrupted (its process was
// killed or lost the leadership: see interruptRunningRuns) did not finish,
// so the pass it was is caught up at start-up too, at once when no full pass
// ever finished. A reload that changes the schedule or time zone takes
// effect at once. The next-run metric shows the scheduled time until that
// pass has run and ended, then the next one. A scheduled pass that did not
// run stays due too: one skipped because no valid mapping export was loaded
// (it is queued as soon as one loads, as a restart would catch it up), and
// one refused before it recorded a run (a state database that cannot begin
// a run, Kaseya BMS's refusal of a state database without a ledger), which
// the next scheduled time tries again. Either stops being due once a pass
// over all customers has run after it.
func (d *Daemon) scheduleLoop(ctx context.Context) {
	base := d.now()
	lastRun, interrupted := d.lastFullRun()
	if !lastRun.IsZero() {
		base = lastRun
	}
	// catchUp queues the first pass at once: a full pass was interrupted
	// and none ever finished, so no base gives the time it was due.
	catchUp := lastRun.IsZero() && interrupted
	var last, lastZone string
	// due is the time of the earliest scheduled pass that has not run and
	// ended: until one has, it is what the next-run metric shows, so that a
	// pass that never runs or never ends shows as overdue instead of moving
	// the next run on. dueTicket is the queued request of the last scheduled
	// pass while it has not finished; skipped says that the pass due was
	// skipped for want of a valid mapping export.
	var (
		due       time.Time
		dueTicket string
		skipped   bool
	)
	queue := func(at time.Time) {
		// A pass that runs late syncs the period of the last time it
		// was due, not that of the clock: a month-end pass caught up
		// after midnight still sets the month that ended.
		billed := at
		if sched, loc, err := d.activeSchedule(); err == nil {
			billed = lastDue(sched, loc, at, d.now())
		}
		tk := d.queue.add(SyncRequest{Trigger: usage.TriggerSchedule, At: billed}, d.now())
		if due.IsZero() {
			due = at
		}
		dueTicket, skipped = tk.ID, false
		go func() {
			if _, err := d.WaitTicket(ctx, tk.ID); err == nil {
				d.poke()
			}
		}()
	}
	// ranSince clears due once a full pass recorded after it has ended.
	ranSince := func(started time.Time) {
		if !due.IsZero() && dueTicket == "" && !started.Before(due) {
			due, skipped = time.Time{}, false
		}
	}
	for {
		if dueTicket != "" {
			t, ok := d.Ticket(dueTicket)
			switch {
			case !ok || t.Status == "done" || (t.Status == "failed" && t.RunID != 0):
				// It ran and ended (a failure too: the last-run
				// metrics report it).
				due, dueTicket = time.Time{}, ""
			case t.Status == "failed":
				// Refused before it recorded a run: it did not run,
				// so it stays due until a pass runs.
				dueTicket = ""
			}
		}
		if skipped && dueTicket == "" && d.Ready() {
			// The export the skipped pass lacked has loaded.
			d.logger.Info("Running the scheduled pass skipped for want of a mapping export", "due", due.Format(time.RFC3339))
			queue(due)
		}
		sched, loc, err := d.activeSchedule()
		var wait <-chan time.Time
		var timer *time.Timer
		var next time.Time
		if err != nil {
			d.logger.Error("No valid schedule; only requested passes run", "err", err)
			d.setNextRun(due)
		} else {
			next = sched.Next(base, loc)
			if catchUp {
				next = base
			}
			if due.IsZero() {
				d.setNextRun(next)
			} else {
				d.setNextRun(due)
			}
			d.metrics.SetScheduleInterval(sched.Interval())
			if desc := sched.String() + " " + loc.String() + " " + next.String(); desc != last {
				d.logger.Info("Next scheduled pass", "schedule", sched.String(), "timezone", loc.String(), "next", next.Format(time.RFC3339))
				last = desc
			}
			if zone := loc.String(); zone != lastZone {
				// The provider warns at plan time for the export's zone;
				// the config file's timezone key is only seen here.
				if note := schedule.OffsetZoneNote(zone); note != "" {
					d.logger.Warn("The time zone in force is a fixed offset whose name has the opposite sign", "timezone", zone, "note", note)
				}
				lastZone = zone
			}
			timer = time.NewTimer(max(0, next.Sub(d.now())))
			wait = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-d.scheduleChanged:
			t, _ := d.lastFullRun()
			if t.After(base) {
				base, catchUp = t, false
			}
			ranSince(t)
		case <-d.fullPassRecorded:
			t, _ := d.lastFullRun()
			ranSince(t)
		case <-wait:
			catchUp = false
			switch {
			case d.Ready():
				queue(next)
			default:
				d.logger.Warn("Skipping scheduled pass: no valid mapping export loaded; it runs once one loads", "due", next.Format(time.RFC3339))
				if due.IsZero() {
					due = next
				}
				skipped = true
			}
			base = next
			if now := d.now(); now.After(base) {
				base = now
			}
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// lastDue returns the latest time at or before now that sched was due,
// from at (a time it was due) on: the time whose billing period a
// scheduled pass syncs (usage.PassOptions.At). A pass caught up after the
// daemon was down for months syncs the last period due, not the first one
// it missed.
func lastDue(sched schedule.Schedule, loc *time.Location, at, now time.Time) time.Time {
	for range 100_000 {
		next := sched.Next(at, loc)
		if next.After(now) {
			return at
		}
		at = next
	}
	return now
}

// lastFullRun returns when the last pass over all customers that was not a
// dry run and finished (success, partial or failure, but neither running nor
// interrupted) started, or the zero time; and whether such a pass was
// interrupted after it. A pass that synced an earlier month than the one of
// its time (sync -period, the re-run of the month that had ended) is not
// the schedule's: it does not stand for the pass due when it ran, which is
// still caught up (usage.RanEarlierPeriod).
func (d *Daemon) lastFullRun() (started time.Time, interrupted bool) {
	runs, err := d.db.FullRuns(100)
	if err != nil {
		d.logger.Warn("Cannot read the run history for the schedule", "err", err)
		return time.Time{}, false
	}
	loc := time.UTC
	if _, l, err := d.activeSchedule(); err == nil {
		loc = l
	}
	usagePeriod := d.cfg.Load().Policies.UsagePeriod
	for _, r := range runs {
		switch {
		case usage.RanEarlierPeriod(r, loc, usagePeriod):
			// Neither the schedule's pass nor its interruption.
		case r.Interrupted():
			interrupted = true
		case r.Result != state.RunRunning:
			return r.Started, interrupted
		}
	}
	return time.Time{}, interrupted
}

// workLoop runs queued passes one after another until ctx is done. Passes
// use passCtx, which outlives ctx until the shutdown timeout.
func (d *Daemon) workLoop(ctx, passCtx context.Context) {
	for {
		t, ok := d.queue.next(ctx)
		if !ok {
			return
		}
		start := d.now()
		d.logger.Info("Starting pass", "trigger", t.Trigger, "customer", t.Customer, "request", t.ID)
		res, err := d.SyncOnce(passCtx, t.passOptions())
		var run state.Run
		if res != nil {
			run = res.Run
		}
		var standby *StandbyError
		if err != nil && run.ID == 0 && t.Customer == "" && t.Trigger == usage.TriggerSchedule && !errors.As(err, &standby) && d.writesEnabled() {
			// Refused before it recorded a run: the last-run metrics
			// say the scheduled pass failed, as a run that failed
			// would, so that PsaSyncFailing fires.
			d.metrics.engine().PassRefused(d.now())
		}
		d.queue.finish(t.ID, run, err, d.now())
		if run.ID != 0 && t.Customer == "" {
			select {
			case d.fullPassRecorded <- struct{}{}:
			default:
			}
		}
		if err != nil {
			d.logger.Error("Pass failed", "trigger", t.Trigger, "customer", t.Customer, "request", t.ID, "run", run.ID, "err", err)
			continue
		}
		d.logger.Log(passCtx, usage.ResultLevel(run.Result, run.DryRun), "Finished pass", "trigger", t.Trigger, "request", t.ID, "run", run.ID, "result", run.Result,
			"updated", run.Updated, "unchanged", run.Unchanged, "held", run.Held, "failed", run.Failed,
			"duration", d.now().Sub(start).Round(time.Millisecond))
	}
}

// passOptions returns the options of the pass t asks for.
func (t SyncTicket) passOptions() usage.PassOptions {
	if t.Surge != "" {
		// An approval of the surge releases its holds only.
		return usage.PassOptions{Trigger: t.Trigger, ApproveSurge: t.Surge, At: t.At, Period: t.Period, Note: strings.Join(t.who, "; ")}
	}
	return usage.PassOptions{Customer: t.Customer, Trigger: t.Trigger, Approve: t.Approve, ApproveService: t.Service, ApproveUnits: t.Units, At: t.At, Period: t.Period,
		Note: strings.Join(t.who, "; ")}
}

// SyncTicket is a sync request made through the API or the scheduler. Its ID
// is what POST /api/v1/sync returns as run_id; once the pass has started,
// RunID is the id of the run in the state database.
type SyncTicket struct {
	// ID is "q", a random part drawn when the process starts, "-" and a
	// sequence number, e.g. q5f0c2a9e-7: unique across instances and
	// restarts, so that a client still polling an id after a restart or
	// failover gets 404 rather than another request's answer.
	ID       string `json:"run_id"`
	Customer string `json:"customer,omitempty"`
	Approve  bool   `json:"approve,omitempty"`
	Service  string `json:"service,omitempty"`
	Units    *int64 `json:"units,omitempty"`
	// Surge is the request's SyncRequest.Surge.
	Surge string `json:"surge,omitempty"`
	// Period is the billing month the request syncs, when it names one.
	Period   source.Period `json:"period,omitzero"`
	Trigger  string        `json:"trigger"`
	Status   string        `json:"status"` // queued | running | done | failed
	Queued   time.Time     `json:"queued"`
	Finished time.Time     `json:"finished,omitzero"`
	// RunID is the state database's id of the run the request became.
	RunID  int64  `json:"state_run_id,omitempty"`
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	// At is the request's SyncRequest.At.
	At time.Time `json:"-"`
	// who holds the SyncRequest.Who of the requests coalesced into this
	// one, each once.
	who []string
}

// syncQueue is the FIFO of sync requests with coalescing of duplicates, and
// the recent history of requests so that their ids can be looked up.
type syncQueue struct {
	mu sync.Mutex
	// prefix starts every ticket id: "q" and this queue's random part.
	prefix  string
	seq     int64
	pending []string // ticket ids, oldest first
	tickets map[string]*SyncTicket
	done    map[string]chan struct{} // closed when the ticket finishes
	order   []string                 // the ids in tickets, oldest first; maxTickets at most, unless more are unfinished
	wake    chan struct{}
}

const maxTickets = 1000

func newSyncQueue() *syncQueue {
	return &syncQueue{prefix: "q" + randomToken()[:8] + "-", tickets: make(map[string]*SyncTicket), done: make(map[string]chan struct{}), wake: make(chan struct{}, 1)}
}

func (q *syncQueue) add(r SyncRequest, now time.Time) SyncTicket {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, id := range q.pending {
		t := q.tickets[id]
		if t.Approve != r.Approve || t.Service != r.Service || !sameUnits(t.Units, r.Units) || t.Surge != r.Surge || !t.At.Equal(r.At) || t.Period != r.Period {
			continue
		}
		if t.Customer == r.Customer || (t.Customer == "" && !r.Approve) {
			if r.Who != "" && !slices.Contains(t.who, r.Who) {
				t.who = append(t.who, r.Who)
			}
			return *t
		}
	}
	q.seq++
	t := &SyncTicket{ID: q.prefix + strconv.FormatInt(q.seq, 10), Customer: r.Customer, Approve: r.Approve, Service: r.Service,
		Units: r.Units, Surge: r.Surge, Period: r.Period, Trigger: r.Trigger, At: r.At, Status: "queued", Queued: now}
	if r.Who != "" {
		t.who = []string{r.Who}
	}
	q.tickets[t.ID] = t
	q.done[t.ID] = make(chan struct{})
	q.pending = append(q.pending, t.ID)
	q.order = append(q.order, t.ID)
	if excess := len(q.order) - maxTickets; excess > 0 {
		// The oldest finished requests go; a queued or running one stays
		// until it has finished.
		keep := make([]string, 0, maxTickets)
		for _, id := range q.order {
			if st := q.tickets[id].Status; excess > 0 && (st == "done" || st == "failed") {
				delete(q.tickets, id)
				delete(q.done, id)
				excess--
				continue
			}
			keep = append(keep, id)
		}
		q.order = keep
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return *t
}

// next blocks until a request is pending or ctx is done, marks it running
// and returns it.
func (q *syncQueue) next(ctx context.Context) (SyncTicket, bool) {
	for {
		q.mu.Lock()
		if len(q.pending) > 0 {
			id := q.pending[0]
			q.pending = q.pending[1:]
			t := q.tickets[id]
			t.Status = "running"
			q.mu.Unlock()
			return *t, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return SyncTicket{}, false
		case <-q.wake:
		}
	}
}

func (q *syncQueue) finish(id string, run state.Run, err error, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.tickets[id]
	if !ok {
		return
	}
	t.Finished = now
	t.RunID = run.ID
	t.Result = run.Result
	t.Status = "done"
	if err != nil {
		t.Status = "failed"
		// The status page shows it, and GET /api/v1/runs/{id} answers
		// it: a failure of the state database names neither it nor its
		// host there (workLoop logs it: Pass failed).
		t.Error = state.PublicText(err)
	}
	close(q.done[id])
}

func (q *syncQueue) get(id string) (SyncTicket, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.tickets[id]
	if !ok {
		return SyncTicket{}, false
	}
	return *t, true
}

// isTicketID reports whether id has the shape of a sync request's id (see
// SyncTicket.ID) rather than of a state run id.
func isTicketID(id string) bool { return strings.HasPrefix(id, "q") }
