package usage

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Namespace is the prefix of every metric psa-syncd exports.
const Namespace = "psa_sync"

// Label values of the bounded enums. Every combination is created at start,
// so alerts see a 0 before the first pass.
var (
	RunResults       = []string{"success", "partial", "failure"}
	LineOutcomes     = []string{LineUpdated, LineUnchanged, LineHeld, LineFailed}
	CustomerStatuses = []string{"succeeded", "failed", "held", "skipped"}
	UnmappedKinds    = []string{"customer", "product", "unassigned"}
	// UnreportedVendors are the vendor label values of
	// psa_sync_customers_unreported: UnreportedCustomer.Vendor, "unknown"
	// for none.
	UnreportedVendors = []string{VendorGone, VendorListed, VendorUnknown}
)

// Why a pass stopped writing or reading before the end, counted in
// psa_sync_pass_stops_total: the PSA failed the writes of several contracts
// in a row (writes_failed) or refused the reads of several in a row with
// one server error (reads_failed), the PSA's hourly budget reached
// policies.budget_reserve (budget_reserve) or could not be read
// (budget_unknown: budgetReadsFailedToStop reads in a row failed), or the
// PSA refused a write for its rate limit (rate_limited).
const (
	StopWritesFailed  = "writes_failed"
	StopReadsFailed   = "reads_failed"
	StopBudgetReserve = "budget_reserve"
	StopBudgetUnknown = "budget_unknown"
	StopRateLimited   = "rate_limited"
)

// StopReasons are the reasons of psa_sync_pass_stops_total.
var StopReasons = []string{StopWritesFailed, StopReadsFailed, StopBudgetReserve, StopBudgetUnknown, StopRateLimited}

// Line outcomes counted in psa_sync_lines_total.
const (
	LineUpdated   = "updated"
	LineUnchanged = "unchanged"
	LineHeld      = "held"
	LineFailed    = "failed"
)

// Metrics holds the collectors the usage engine sets: the outcome of its
// passes, the progress of the running one, the customers and unmapped usage,
// and the PSA's API budget. NewMetrics registers them on the caller's
// registry; package daemon adds the service's own collectors beside them.
// Collectors are labelled with the PSA system only through currying, so
// callers pass just the bounded labels that vary.
type Metrics struct {
	RunsTotal            *prometheus.CounterVec // result
	LastRunTimestamp     prometheus.Gauge
	LastSuccessTimestamp prometheus.Gauge
	RunDuration          prometheus.Observer
	LinesTotal           *prometheus.CounterVec // outcome
	Customers            *prometheus.GaugeVec   // status
	Unmapped             *prometheus.GaugeVec   // kind
	// CustomersUnreported holds psa_sync_customers_unreported by vendor
	// (UnreportedVendors): the mapped customers billed on a line above 0
	// that the last pass's usage report names nowhere
	// (Unmapped.Unreported), by what the vendor's customer list says.
	CustomersUnreported *prometheus.GaugeVec
	// LinesOnInactiveServices holds psa_sync_lines_on_inactive_services:
	// the mapped lines above 0 whose service the PSA says is inactive
	// (Unmapped.InactiveServices).
	LinesOnInactiveServices prometheus.Gauge
	// OrphanedLines holds psa_sync_orphaned_lines by reason
	// (OrphanReasons): the lines psa-syncd set above 0 that no mapping
	// makes it write any more (Unmapped.Orphaned).
	OrphanedLines *prometheus.GaugeVec
	// ContractsEnding holds psa_sync_contracts_ending by when
	// (EndingWhens).
	ContractsEnding *prometheus.GaugeVec
	// UnmappedNew holds psa_sync_unmapped_new_total by kind: the unmapped
	// items passes found that the pass before each did not have (see
	// Engine.countNewUnmapped). Its values are the totals kept in the
	// state database; addUnmappedNew and restoreUnmappedNew set them.
	UnmappedNew map[string]prometheus.CounterFunc
	// APIBudgetRemaining has the label endpoint: "" for a budget of the
	// whole tenant (Autotask), an endpoint template for a PSA that limits
	// each endpoint (Kaseya BMS).
	APIBudgetRemaining *prometheus.GaugeVec
	APIBudgetLimit     prometheus.Gauge
	// APIBudgetChecked is when a usage or ticket pass last read the
	// budget, or estimated it at the end of its writes.
	APIBudgetChecked prometheus.Gauge
	// APIBudgetUnknown is 1 while the budget is not known: the last read
	// of it failed and the pass that tried it had no read of its own that
	// succeeded (see budgetGate.readBudgetMarked).
	APIBudgetUnknown prometheus.Gauge
	PassInProgress   prometheus.Gauge
	PassLinesDone    prometheus.Gauge
	PassLinesTotal   prometheus.Gauge
	// PassProgress is when the running pass over all customers last read
	// a page or finished a line write (passProgressed).
	PassProgress prometheus.Gauge
	HeldLines    prometheus.Gauge
	HeldSince    prometheus.Gauge
	// SurgeHeldLines is psa_sync_surge_held_lines: the lines the surge
	// guard holds (Policies.SurgeLinesPercent), as the last pass that
	// wrote left them (a pass for one customer replaces its own).
	SurgeHeldLines prometheus.Gauge
	LastRunResult  *prometheus.GaugeVec   // result
	PassStopsTotal *prometheus.CounterVec // reason
	// UsageMissing is 1 when the last pass over all customers had no
	// usage that sets a mapped line, and left every line as it was; 0
	// after one that failed (see Engine.recordUsageMissing).
	UsageMissing prometheus.Gauge
	// UsageRepeatedRows is the number of products of a customer on
	// several rows of the usage the last pass over all customers read (a
	// usage file's duplicate_rows), set per pass (see
	// Engine.recordRepeatedRows).
	UsageRepeatedRows prometheus.Gauge
	// EndedPeriodLastRunResult holds
	// psa_sync_ended_period_last_run_result by result: 1 for the result of
	// the last pass over all customers that wrote and synced the billing
	// month that has ended (the month before the one a pass syncs now),
	// all 0 when none is known. Computed when scraped, so it follows the
	// month's end without a pass; recordPeriodResult and
	// restorePeriodResults keep the results it reads.
	EndedPeriodLastRunResult map[string]prometheus.GaugeFunc
	// EndedPeriodHeldLines is psa_sync_ended_period_held_lines: the lines
	// that same pass held (for review by the guards, or for another
	// reason its lines' reasons give), 0 when none is known. Its result
	// is success all the same, so this is how a line the month's last
	// pass held shows before that month's invoices are generated.
	EndedPeriodHeldLines prometheus.GaugeFunc
	// MonthEnd is psa_sync_month_end_timestamp_seconds: when the calendar
	// month of now ends in the time zone of the schedule in force (the
	// 1st of the next month, 00:00 there), computed when scraped; 0
	// before an engine set its time zone. The invoicing alerts fire in
	// the last two days before it: day_of_month() is UTC's, and a
	// month-end pass west of UTC (18:00 in Los Angeles is 02:00 UTC on
	// the 1st) fell outside them.
	MonthEnd prometheus.GaugeFunc

	// Requests, when set, returns how many requests have been sent to the
	// PSA so far; a pass records the difference in its run. Package daemon
	// sets it to the count of its instrumented HTTP transport.
	Requests func() int64

	// unmappedNew are UnmappedNew's values, by kind.
	unmappedNew map[string]*atomic.Int64

	// periods holds, by billing month (YYYY-MM), the result of the last
	// finished pass over all customers that wrote and synced it, and the
	// lines it held, for the latest few months; endedPeriod returns the
	// month that has ended (set by NewEngine with the engine's clock,
	// time zone and usage_period).
	periods struct {
		sync.Mutex
		result      map[string]periodResult
		endedPeriod func() string
		monthEnd    func() time.Time
	}

	// endpoints are the endpoints APIBudgetRemaining has shown, with their
	// hourly limit (see setEndpointBudgets).
	endpoints struct {
		sync.Mutex
		limit map[string]int
	}

	// progress mirrors the pass gauges for the API and the status page.
	progress struct {
		running     atomic.Bool
		full        atomic.Bool // a pass over all customers that writes
		run         atomic.Int64
		done, total atomic.Int64
	}
}

// NewMetrics creates the usage engine's psa_sync_* collectors on reg for the
// given PSA system. Every labelled series is created with value 0. It
// panics if a collector is already registered on reg, like promauto.
func NewMetrics(reg prometheus.Registerer, system psa.System) *Metrics {
	f := promauto.With(reg)
	sys := prometheus.Labels{"system": string(system)}
	m := &Metrics{}

	m.RunsTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "runs_total",
		Help:      "Sync passes that wrote to the PSA, by result (success, partial or failure). Dry runs are not counted.",
	}, []string{"system", "result"}).MustCurryWith(sys)
	m.LastRunTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "last_run_timestamp_seconds",
		Help:      "Time the last sync pass over all customers finished, whatever its result, as a Unix timestamp.",
	}, []string{"system"}).With(sys)
	m.LastSuccessTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "last_success_timestamp_seconds",
		Help:      "Time the last successful sync pass over all customers finished, as a Unix timestamp.",
	}, []string{"system"}).With(sys)
	m.RunDuration = f.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace,
		Name:      "run_duration_seconds",
		Help:      "Duration of sync passes.",
		Buckets:   []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600},
	}, []string{"system"}).With(sys)
	m.LinesTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "lines_total",
		Help:      "Contract lines handled by sync passes, by outcome (updated, unchanged, held or failed).",
	}, []string{"system", "outcome"}).MustCurryWith(sys)
	m.Customers = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "customers",
		Help:      "Customers with usage sync on, by the status of their last sync (succeeded, failed, held or skipped).",
	}, []string{"system", "status"}).MustCurryWith(sys)
	m.ContractsEnding = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "contracts_ending",
		Help:      "Mapped contracts (customers with usage sync on) whose end date in the PSA is before the last pass's effective date (ended: the customer fails, nothing is written), in the month of the effective date (this_month) or in the month after (next_month).",
	}, []string{"system", "when"}).MustCurryWith(sys)
	m.Unmapped = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "unmapped",
		Help:      "Usage the last pass could not bill: customers and products without a mapping, and usage rows with no customer (unassigned).",
	}, []string{"system", "kind"}).MustCurryWith(sys)
	m.CustomersUnreported = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "customers_unreported",
		Help: "Mapped customers with usage sync on that the last pass's usage report (one with rows) names nowhere while a mapped line of their contract is above 0: a tenant removed or moved to another partner, or a customer_id that never matches. " +
			"vendor: gone (the vendor's customer list does not have it), listed (it does, with no usage), unknown (the source keeps no such list).",
	}, []string{"system", "vendor"}).MustCurryWith(sys)
	for _, v := range UnreportedVendors {
		m.CustomersUnreported.WithLabelValues(v)
	}
	m.LinesOnInactiveServices = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "lines_on_inactive_services",
		Help:      "Mapped contract lines above 0 (customers with usage sync on) whose service the PSA says is inactive, as the last read of the mapped services found it: they go on invoicing, whether the pass had nothing to write to them or their change failed.",
	}, []string{"system"}).WithLabelValues(string(system))
	m.OrphanedLines = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "orphaned_lines",
		Help: "Contract lines that psa-syncd set above 0 from the usage source and that no mapping makes it write any more, as its ledger and the last pass's reads show them: they go on invoicing the units psa-syncd last set. " +
			"reason: service (no product mapping of the source names the service: removed or re-pointed), customer (no customer mapping of the source names the contract or its customer: removed).",
	}, []string{"system", "reason"}).MustCurryWith(sys)
	for _, r := range OrphanReasons {
		m.OrphanedLines.WithLabelValues(r)
	}
	m.UnmappedNew = make(map[string]prometheus.CounterFunc, len(UnmappedKinds))
	m.unmappedNew = make(map[string]*atomic.Int64, len(UnmappedKinds))
	for _, k := range UnmappedKinds {
		v := new(atomic.Int64)
		m.unmappedNew[k] = v
		m.UnmappedNew[k] = f.NewCounterFunc(prometheus.CounterOpts{
			Namespace:   Namespace,
			Name:        "unmapped_new_total",
			Help:        "Unmapped items (customers and products without a mapping, products with usage of no customer) that a pass found and the pass before it had not, by kind; kept across restarts.",
			ConstLabels: prometheus.Labels{"system": string(system), "kind": k},
		}, func() float64 { return float64(v.Load()) })
	}
	m.APIBudgetRemaining = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "api_budget_remaining",
		Help:      "Requests left in the PSA's hourly API budget when last checked: the tenant's (Autotask ThresholdInformation; endpoint=\"\") or each endpoint's (Kaseya BMS, as psa-syncd counts its calls).",
	}, []string{"system", "endpoint"}).MustCurryWith(sys)
	m.APIBudgetRemaining.WithLabelValues("") // the tenant's budget, 0 until known
	m.APIBudgetLimit = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "api_budget_limit",
		Help:      "Size of the PSA's hourly API budget when last checked; 0 until checked, and for PSAs that report none.",
	}, []string{"system"}).With(sys)
	m.APIBudgetChecked = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "api_budget_checked_timestamp_seconds",
		Help:      "Time a usage or ticket pass last read the PSA's hourly API budget (or estimated it when its writes ended), as a Unix timestamp; 0 until then.",
	}, []string{"system"}).With(sys)
	m.APIBudgetUnknown = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "api_budget_unknown",
		Help:      "1 while the PSA's hourly API budget is not known: a usage or ticket pass could not read it (Autotask ThresholdInformation) and had no read of it that succeeded, so api_budget_remaining and api_budget_checked_timestamp_seconds are stale or 0; 0 once a read succeeds, and for PSAs that report none.",
	}, []string{"system"}).With(sys)
	m.PassInProgress = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "pass_in_progress",
		Help:      "1 while a sync pass that writes runs (not a dry run), else 0.",
	}, []string{"system"}).With(sys)
	m.PassLinesDone = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "pass_lines_done",
		Help:      "Contract line writes the running pass has finished (or the last pass, once it ended); dry runs leave it alone.",
	}, []string{"system"}).With(sys)
	m.PassLinesTotal = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "pass_lines_total",
		Help:      "Contract line writes the running pass has to make (or the last pass made); dry runs leave it alone.",
	}, []string{"system"}).With(sys)
	m.PassProgress = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "pass_progress_timestamp_seconds",
		Help:      "Time the running sync pass over all customers that writes (a scheduled pass, or sync without a customer) last read a page of usage or of contract lines, or finished a line write, as a Unix timestamp; 0 while none runs.",
	}, []string{"system"}).With(sys)
	m.HeldLines = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "held_lines",
		Help:      "Contract lines held for review in the last sync of their customer (customers with usage sync on).",
	}, []string{"system"}).With(sys)
	m.SurgeHeldLines = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "surge_held_lines",
		Help:      "Contract lines held for review by the surge guard (policies.surge_lines_percent: many lines rose at once, as when the vendor counts twice), as the last pass that wrote left them.",
	}, []string{"system"}).With(sys)
	m.HeldSince = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "held_since_timestamp_seconds",
		Help:      "Since when some customer has had lines held for review without a break, as a Unix timestamp; 0 when none is held.",
	}, []string{"system"}).With(sys)
	m.LastRunResult = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "last_run_result",
		Help:      "1 for the result (success, partial or failure) of the last sync pass over all customers that wrote, 0 for the others; all 0 before the first.",
	}, []string{"system", "result"}).MustCurryWith(sys)

	m.UsageMissing = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "last_run_usage_missing",
		Help:      "1 when the last sync pass over all customers that wrote had no usage that sets a mapped line (the source had no data for the period, an empty report or file, or rows only of customers and products the export does not map with sync on), so it left every line as it was (a partial pass); 0 otherwise, and after a pass that failed (psa_sync_last_run_result says so). Restored at start-up.",
	}, []string{"system"}).With(sys)

	m.UsageRepeatedRows = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "usage_repeated_rows",
		Help:      "Products of a customer on several rows of the usage the last sync pass over all customers read (a usage file's source.file.duplicate_rows: added up under sum, the customer failed under refuse); 0 when none.",
	}, []string{"system"}).With(sys)

	m.PassStopsTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "pass_stops_total",
		Help:      "Sync passes that wrote and stopped writing or reading before the end, by reason: writes_failed (the PSA failed the writes to several contracts in a row), reads_failed (the PSA refused the reads of several contracts in a row with one server error), budget_reserve (the PSA's hourly budget reached policies.budget_reserve), budget_unknown (the PSA's hourly budget could not be read, 3 times in a row), rate_limited (the PSA refused a write for its rate limit).",
	}, []string{"system", "reason"}).MustCurryWith(sys)

	m.EndedPeriodLastRunResult = make(map[string]prometheus.GaugeFunc, len(RunResults))
	for _, r := range RunResults {
		m.EndedPeriodLastRunResult[r] = f.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace:   Namespace,
			Name:        "ended_period_last_run_result",
			Help:        "1 for the result (success, partial or failure) of the last sync pass over all customers that wrote and synced the billing month that has ended (the month before the one a pass syncs now: a scheduled pass of that month, one caught up after it, or a -period re-run), 0 for the others; all 0 when no such pass is recorded. Restored at start-up.",
			ConstLabels: prometheus.Labels{"system": string(system), "result": r},
		}, func() float64 { return boolFloat(m.endedPeriodResult().result == r) })
	}
	m.EndedPeriodHeldLines = f.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   Namespace,
		Name:        "ended_period_held_lines",
		Help:        "Contract lines held (for review by max_decrease_percent or max_increase_percent, or for the reason each line's reason gives) by the pass that ended_period_last_run_result reports on, the last pass over all customers of the billing month that has ended: their quantities are not that month's; 0 when none is recorded or a record of the month as set by hand is the last. Restored at start-up.",
		ConstLabels: prometheus.Labels{"system": string(system)},
	}, func() float64 { return float64(m.endedPeriodResult().held) })
	m.MonthEnd = f.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   Namespace,
		Name:        "month_end_timestamp_seconds",
		Help:        "When the calendar month of now ends in the time zone of the schedule in force (the 1st of the next month, 00:00 there), as a Unix timestamp; 0 until known. The invoicing alerts fire in the last two days before it.",
		ConstLabels: prometheus.Labels{"system": string(system)},
	}, m.monthEndSeconds)
	for _, r := range RunResults {
		m.RunsTotal.WithLabelValues(r)
	}
	for _, r := range StopReasons {
		m.PassStopsTotal.WithLabelValues(r)
	}
	for _, o := range LineOutcomes {
		m.LinesTotal.WithLabelValues(o)
	}
	for _, r := range RunResults {
		m.LastRunResult.WithLabelValues(r)
	}
	for _, s := range CustomerStatuses {
		m.Customers.WithLabelValues(s)
	}
	for _, k := range UnmappedKinds {
		m.Unmapped.WithLabelValues(k)
	}
	for _, w := range EndingWhens {
		m.ContractsEnding.WithLabelValues(w)
	}
	return m
}

// requests returns Requests(), or 0 without a count.
func (m *Metrics) requests() int64 {
	if m == nil || m.Requests == nil {
		return 0
	}
	return m.Requests()
}

// passStarted records that the pass with the given run id began (full: over
// all customers); its number of writes is not known until its plan is. A
// dry run (writes disabled too) shows in Progress, for the API, but leaves
// the gauges alone: like the other pass metrics they describe passes that
// write, and pass_lines_done and pass_lines_total keep the last such
// pass's counts.
func (m *Metrics) passStarted(runID int64, dry, full bool) {
	if m == nil {
		return
	}
	m.progress.run.Store(runID)
	m.progress.done.Store(0)
	m.progress.total.Store(0)
	m.progress.running.Store(true)
	m.progress.full.Store(full && !dry)
	if dry {
		return
	}
	m.PassInProgress.Set(1)
	m.PassLinesDone.Set(0)
	m.PassLinesTotal.Set(0)
}

// passWrites records how many line writes the running pass makes.
func (m *Metrics) passWrites(total int) {
	if m == nil {
		return
	}
	m.progress.total.Store(int64(total))
	m.PassLinesTotal.Set(float64(total))
}

// lineDone records that the running pass finished one line write.
func (m *Metrics) lineDone() {
	if m == nil {
		return
	}
	m.PassLinesDone.Set(float64(m.progress.done.Add(1)))
}

// passProgressed records that the running pass read a page (of usage, or
// of contract lines) or finished a line write at now. Only a pass over all
// customers that writes sets pass_progress_timestamp_seconds: it is the
// pass that PsaSyncScheduledRunMissed waits for, and a pass for one
// customer, which leaves the scheduled one due, must not silence it. A
// pass's start is no progress: a pass that starts late and hangs before
// its first read fires the alert an hour after its due time, not after its
// start.
func (m *Metrics) passProgressed(now time.Time) {
	if m == nil || !m.progress.full.Load() {
		return
	}
	m.PassProgress.Set(unixSeconds(now))
}

// passFinished records that the running pass ended (dry: a dry run, see
// passStarted).
func (m *Metrics) passFinished(dry bool) {
	if m == nil {
		return
	}
	m.progress.running.Store(false)
	if m.progress.full.Swap(false) {
		m.PassProgress.Set(0)
	}
	if !dry {
		m.PassInProgress.Set(0)
	}
}

// Progress reports the run id of the pass in progress (0 when none runs)
// and how many of its line writes are done out of how many.
func (m *Metrics) Progress() (run int64, done, total int) {
	if m == nil || !m.progress.running.Load() {
		return 0, 0, 0
	}
	return m.progress.run.Load(), int(m.progress.done.Load()), int(m.progress.total.Load())
}

// setEndpointBudgets sets APIBudgetRemaining for each endpoint of budgets,
// the endpoints called (or refused) in the PSA's window. An endpoint shown
// before that budgets no longer has, which no call counts against any
// more, gets its whole limit back: left at the value of the pass that last
// called it, it would keep reporting a spent budget (and PsaSyncAPIBudgetLow
// fire after every pass) though the whole budget is free. nil budgets (the
// counts could not be read) change nothing.
func (m *Metrics) setEndpointBudgets(budgets map[string]psa.Budget) {
	if m == nil || budgets == nil {
		return
	}
	m.endpoints.Lock()
	defer m.endpoints.Unlock()
	if m.endpoints.limit == nil {
		m.endpoints.limit = map[string]int{}
	}
	for endpoint, b := range budgets {
		m.APIBudgetRemaining.WithLabelValues(endpoint).Set(float64(b.Remaining()))
		m.endpoints.limit[endpoint] = b.Limit
	}
	m.budgetChecked()
	for endpoint, limit := range m.endpoints.limit {
		if _, ok := budgets[endpoint]; !ok {
			m.APIBudgetRemaining.WithLabelValues(endpoint).Set(float64(limit))
		}
	}
}

// passStopped counts a pass that wrote and stopped early for reasons.
func (m *Metrics) passStopped(reasons []string) {
	if m == nil {
		return
	}
	for _, r := range reasons {
		m.PassStopsTotal.WithLabelValues(r).Inc()
	}
}

// budgetChecked records that the budget gauges were just set.
func (m *Metrics) budgetChecked() {
	m.APIBudgetChecked.Set(unixSeconds(time.Now()))
}

// addUnmappedNew adds to UnmappedNew the new unmapped items by kind.
func (m *Metrics) addUnmappedNew(added map[string]int) {
	if m == nil {
		return
	}
	for k, n := range added {
		if v := m.unmappedNew[k]; v != nil {
			v.Add(int64(n))
		}
	}
}

// restoreUnmappedNew sets UnmappedNew to the stored totals, never lower
// than it is: a counter that went down would read as a restart, and its
// new value as that many new items.
func (m *Metrics) restoreUnmappedNew(totals map[string]int64) {
	if m == nil {
		return
	}
	for k, v := range m.unmappedNew {
		for {
			cur := v.Load()
			if totals[k] <= cur || v.CompareAndSwap(cur, totals[k]) {
				break
			}
		}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// PassRefused records a pass over all customers that was refused before it
// recorded a run (the state database could not begin one, or holds no
// ledger for Kaseya BMS) as the last one, failed at t. Nothing is stored:
// a restart restores the last recorded run's result, and the scheduler
// keeps such a pass due (psa_sync_next_run_timestamp_seconds) until a pass
// runs.
func (m *Metrics) PassRefused(t time.Time) {
	if m == nil {
		return
	}
	m.setLastRunResult("failure")
	m.LastRunTimestamp.Set(unixSeconds(t))
	// As a pass that failed (see Engine.recordUsageMissing), in memory:
	// a restart restores the last recorded run, and its usage_missing.
	m.UsageMissing.Set(0)
}

// keptPeriods is how many billing months Metrics.periods keeps: the month
// that ended needs only the latest two, one more covers a clock or
// time zone that moves back.
const keptPeriods = 3

// setEndedPeriod sets the function that returns the billing month that
// has ended (YYYY-MM).
func (m *Metrics) setEndedPeriod(f func() string) {
	if m == nil {
		return
	}
	m.periods.Lock()
	m.periods.endedPeriod = f
	m.periods.Unlock()
}

// setMonthEnd sets the function that returns when the calendar month of
// now ends in the schedule's time zone (psa_sync_month_end_timestamp_seconds).
func (m *Metrics) setMonthEnd(f func() time.Time) {
	if m == nil {
		return
	}
	m.periods.Lock()
	m.periods.monthEnd = f
	m.periods.Unlock()
}

// monthEndSeconds is psa_sync_month_end_timestamp_seconds' value.
func (m *Metrics) monthEndSeconds() float64 {
	m.periods.Lock()
	f := m.periods.monthEnd
	m.periods.Unlock()
	if f == nil {
		return 0
	}
	return unixSeconds(f())
}

// periodResult is what Metrics.periods keeps of a billing month's last
// pass over all customers: its result and the lines it held.
type periodResult struct {
	result string
	held   int
}

// recordPeriodResult records run's result and held lines as those of the
// last pass over all customers that wrote and synced run.Period (YYYY-MM).
func (m *Metrics) recordPeriodResult(run state.Run) {
	if m == nil || run.Period == "" || run.Result == state.RunRunning {
		return
	}
	m.periods.Lock()
	defer m.periods.Unlock()
	if m.periods.result == nil {
		m.periods.result = map[string]periodResult{}
	}
	m.periods.result[run.Period] = periodResult{result: run.Result, held: run.Held}
	m.prunePeriods()
}

// restorePeriodResults replaces the results recordPeriodResult keeps with
// the results and held lines of runs, by billing month, as read from the
// state database.
func (m *Metrics) restorePeriodResults(runs map[string]state.Run) {
	if m == nil {
		return
	}
	m.periods.Lock()
	defer m.periods.Unlock()
	m.periods.result = map[string]periodResult{}
	for p, r := range runs {
		if p != "" && r.Result != state.RunRunning {
			m.periods.result[p] = periodResult{result: r.Result, held: r.Held}
		}
	}
	m.prunePeriods()
}

// prunePeriods keeps the latest keptPeriods months of periods.result; the
// caller holds periods' lock.
func (m *Metrics) prunePeriods() {
	for len(m.periods.result) > keptPeriods {
		oldest := ""
		for p := range m.periods.result {
			if oldest == "" || p < oldest {
				oldest = p
			}
		}
		delete(m.periods.result, oldest)
	}
}

// endedPeriodResult returns the result and held lines of the last pass
// over all customers that wrote and synced the billing month that has
// ended, or the zero periodResult when none is recorded (or no engine has
// set the month).
func (m *Metrics) endedPeriodResult() periodResult {
	m.periods.Lock()
	defer m.periods.Unlock()
	if m.periods.endedPeriod == nil {
		return periodResult{}
	}
	return m.periods.result[m.periods.endedPeriod()]
}

// setSurgeHeld sets psa_sync_surge_held_lines.
func (m *Metrics) setSurgeHeld(n int) {
	if m == nil {
		return
	}
	m.SurgeHeldLines.Set(float64(n))
}

// setLastRunResult marks result as the last full pass's result.
func (m *Metrics) setLastRunResult(result string) {
	for _, r := range RunResults {
		m.LastRunResult.WithLabelValues(r).Set(boolFloat(r == result))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
