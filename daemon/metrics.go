package daemon

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Namespace is the prefix of every metric the daemon exports.
const Namespace = "psa_sync"

// Label values of the bounded enums. Every combination is created at start,
// so alerts see a 0 before the first pass.
var (
	RunResults       = []string{"success", "partial", "failure"}
	LineOutcomes     = []string{LineUpdated, LineUnchanged, LineHeld, LineFailed}
	CustomerStatuses = []string{"succeeded", "failed", "held", "skipped"}
	UnmappedKinds    = []string{"customer", "product", "unassigned"}
	TicketOutcomes   = []string{"created", "updated", "closed", "failed"}
)

// Line outcomes counted in psa_sync_lines_total.
const (
	LineUpdated   = "updated"
	LineUnchanged = "unchanged"
	LineHeld      = "held"
	LineFailed    = "failed"
)

// Metrics holds the daemon's collectors, all registered on one non-global
// registry. Collectors are labelled with the PSA system only through
// currying, so callers pass just the bounded labels that vary.
type Metrics struct {
	system string

	RunsTotal            *prometheus.CounterVec // result
	LastRunTimestamp     prometheus.Gauge
	LastSuccessTimestamp prometheus.Gauge
	RunDuration          prometheus.Observer
	LinesTotal           *prometheus.CounterVec // outcome
	Customers            *prometheus.GaugeVec   // status
	Unmapped             *prometheus.GaugeVec   // kind
	APIRequestsTotal     *prometheus.CounterVec // method, code
	APIRequestDuration   prometheus.ObserverVec // method
	RateLimitedTotal     prometheus.Counter
	// APIBudgetRemaining has the label endpoint: "" for a budget of the
	// whole tenant (Autotask), an endpoint template for a PSA that limits
	// each endpoint (Kaseya BMS).
	APIBudgetRemaining *prometheus.GaugeVec
	ScheduleInterval   prometheus.Gauge
	IntegrationEnabled prometheus.Gauge
	Leader             prometheus.Gauge
	APIBudgetLimit     prometheus.Gauge
	NextRunTimestamp   prometheus.Gauge
	PassInProgress     prometheus.Gauge
	PassLinesDone      prometheus.Gauge
	PassLinesTotal     prometheus.Gauge
	HeldLines          prometheus.Gauge
	HeldSince          prometheus.Gauge
	LastRunResult      *prometheus.GaugeVec // result

	ExportLastReloadSuccessful       prometheus.Gauge
	ExportLastReloadSuccessTimestamp prometheus.Gauge
	ConfigLastReloadSuccessful       prometheus.Gauge
	ConfigLastReloadSuccessTimestamp prometheus.Gauge

	TicketsTotal               *prometheus.CounterVec // outcome
	OpenTickets                prometheus.Gauge
	TicketLastPassTimestamp    prometheus.Gauge
	TicketLastSuccessTimestamp prometheus.Gauge

	requests atomic.Int64

	// progress mirrors the pass gauges for the API and the status page.
	progress struct {
		running     atomic.Bool
		run         atomic.Int64
		done, total atomic.Int64
	}
}

// NewMetrics creates every psa_sync_* collector on reg for the given PSA
// system, plus the build info collector (psa_sync_build_info). Every
// labelled series is created with value 0. It panics if a collector is
// already registered on reg, like promauto.
func NewMetrics(reg prometheus.Registerer, system psa.System) *Metrics {
	f := promauto.With(reg)
	sys := prometheus.Labels{"system": string(system)}
	m := &Metrics{system: string(system)}

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
	m.Unmapped = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "unmapped",
		Help:      "Usage the last pass could not bill: customers and products without a mapping, and usage rows with no customer (unassigned).",
	}, []string{"system", "kind"}).MustCurryWith(sys)
	m.APIRequestsTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "api_requests_total",
		Help:      "HTTP requests sent to the PSA API, by method and status code.",
	}, []string{"system", "method", "code"}).MustCurryWith(sys)
	m.APIRequestDuration = f.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace,
		Name:      "api_request_duration_seconds",
		Help:      "Latency of HTTP requests to the PSA API, by method.",
		Buckets:   prometheus.DefBuckets,
	}, []string{"system", "method"}).MustCurryWith(sys)
	m.RateLimitedTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "rate_limited_total",
		Help:      "PSA API responses that said the request was rate limited (HTTP 429).",
	}, []string{"system"}).With(sys)
	m.APIBudgetRemaining = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "api_budget_remaining",
		Help:      "Requests left in the PSA's hourly API budget when last checked: the tenant's (Autotask ThresholdInformation; endpoint=\"\") or each endpoint's (Kaseya BMS, as psa-syncd counts its calls).",
	}, []string{"system", "endpoint"}).MustCurryWith(sys)
	m.APIBudgetRemaining.WithLabelValues("") // the tenant's budget, 0 until known
	m.ScheduleInterval = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "schedule_interval_seconds",
		Help:      "Nominal interval between scheduled sync passes.",
	}, []string{"system"}).With(sys)
	m.IntegrationEnabled = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "integration_enabled",
		Help:      "1 when the mapping export enables the integration (passes write to the PSA), 0 when it is switched off.",
	}, []string{"system"}).With(sys)
	m.Leader = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "leader",
		Help:      "1 when this psa-syncd is the active instance of those sharing its state database (always, with SQLite), 0 on a standby.",
	})

	m.APIBudgetLimit = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "api_budget_limit",
		Help:      "Size of the PSA's hourly API budget when last checked; 0 until checked, and for PSAs that report none.",
	}, []string{"system"}).With(sys)
	m.NextRunTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "next_run_timestamp_seconds",
		Help:      "Time of the next scheduled sync pass, as a Unix timestamp; 0 while no valid schedule is loaded.",
	}, []string{"system"}).With(sys)
	m.PassInProgress = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "pass_in_progress",
		Help:      "1 while a sync pass runs, else 0.",
	}, []string{"system"}).With(sys)
	m.PassLinesDone = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "pass_lines_done",
		Help:      "Contract line writes the running pass has finished (or the last pass, once it ended).",
	}, []string{"system"}).With(sys)
	m.PassLinesTotal = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "pass_lines_total",
		Help:      "Contract line writes the running pass has to make (or the last pass made).",
	}, []string{"system"}).With(sys)
	m.HeldLines = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "held_lines",
		Help:      "Contract lines held for review in the last sync of their customer (customers with usage sync on).",
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

	m.ExportLastReloadSuccessful = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "export_last_reload_successful",
		Help:      "1 when the last reload of the mapping export succeeded, 0 when it was rejected.",
	})
	m.ExportLastReloadSuccessTimestamp = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "export_last_reload_success_timestamp_seconds",
		Help:      "Time of the last successful reload of the mapping export, as a Unix timestamp.",
	})
	m.ConfigLastReloadSuccessful = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "config_last_reload_successful",
		Help:      "1 when the last reload of the configuration file succeeded, 0 when it failed.",
	})
	m.ConfigLastReloadSuccessTimestamp = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "config_last_reload_success_timestamp_seconds",
		Help:      "Time of the last successful reload of the configuration file, as a Unix timestamp.",
	})

	m.TicketsTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "tickets_total",
		Help:      "Tickets handled by ticket passes, by outcome: created, updated (noted or reopened), closed, and failed (a create, close or note that did not succeed).",
	}, []string{"system", "outcome"}).MustCurryWith(sys)
	m.OpenTickets = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "open_tickets",
		Help:      "Tickets psa-syncd created that are open, over the customers with ticket sync on, after the last ticket pass.",
	}, []string{"system"}).With(sys)
	m.TicketLastPassTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "ticket_last_pass_timestamp_seconds",
		Help:      "Time the last scheduled ticket pass finished, whatever its result, as a Unix timestamp.",
	}, []string{"system"}).With(sys)
	m.TicketLastSuccessTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "ticket_last_success_timestamp_seconds",
		Help:      "Time the last ticket pass in which every customer succeeded finished, as a Unix timestamp.",
	}, []string{"system"}).With(sys)

	reg.MustRegister(version.NewCollector(Namespace))

	for _, r := range RunResults {
		m.RunsTotal.WithLabelValues(r)
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
	for _, o := range TicketOutcomes {
		m.TicketsTotal.WithLabelValues(o)
	}
	return m
}

// InstrumentRoundTripper wraps next (http.DefaultTransport when nil) so that
// every PSA request is counted in psa_sync_api_requests_total, timed in
// psa_sync_api_request_duration_seconds, and every 429 answer counted in
// psa_sync_rate_limited_total. Use it for the PSA's http.Client only; the
// psa packages stay free of metrics.
func (m *Metrics) InstrumentRoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	counted := promhttp.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		m.requests.Add(1)
		resp, err := next.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusTooManyRequests {
			m.RateLimitedTotal.Inc()
		}
		return resp, err
	})
	return promhttp.InstrumentRoundTripperCounter(m.APIRequestsTotal,
		promhttp.InstrumentRoundTripperDuration(m.APIRequestDuration, counted))
}

// Requests returns the number of requests sent through
// InstrumentRoundTripper so far; a pass records the difference.
func (m *Metrics) Requests() int64 {
	if m == nil {
		return 0
	}
	return m.requests.Load()
}

// ConfigReloaded records the outcome of a configuration reload at t.
func (m *Metrics) ConfigReloaded(ok bool, t time.Time) {
	reloaded(m.ConfigLastReloadSuccessful, m.ConfigLastReloadSuccessTimestamp, ok, t)
}

// ExportReloaded records the outcome of a mapping export reload at t.
func (m *Metrics) ExportReloaded(ok bool, t time.Time) {
	reloaded(m.ExportLastReloadSuccessful, m.ExportLastReloadSuccessTimestamp, ok, t)
}

func reloaded(success, stamp prometheus.Gauge, ok bool, t time.Time) {
	if !ok {
		success.Set(0)
		return
	}
	success.Set(1)
	stamp.Set(float64(t.UnixNano()) / 1e9)
}

// SetIntegrationEnabled records whether the export enables the integration.
func (m *Metrics) SetIntegrationEnabled(enabled bool) {
	m.IntegrationEnabled.Set(boolFloat(enabled))
}

// SetScheduleInterval records the nominal interval of the active schedule.
func (m *Metrics) SetScheduleInterval(d time.Duration) {
	m.ScheduleInterval.Set(d.Seconds())
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SetNextRun records the time of the next scheduled pass (zero: none).
func (m *Metrics) SetNextRun(t time.Time) {
	if t.IsZero() {
		m.NextRunTimestamp.Set(0)
		return
	}
	m.NextRunTimestamp.Set(unixSeconds(t))
}

// passStarted records that the pass with the given run id began; its number
// of writes is not known until its plan is.
func (m *Metrics) passStarted(runID int64) {
	if m == nil {
		return
	}
	m.progress.run.Store(runID)
	m.progress.done.Store(0)
	m.progress.total.Store(0)
	m.progress.running.Store(true)
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

// passFinished records that the running pass ended.
func (m *Metrics) passFinished() {
	if m == nil {
		return
	}
	m.progress.running.Store(false)
	m.PassInProgress.Set(0)
}

// Progress reports the run id of the pass in progress (0 when none runs)
// and how many of its line writes are done out of how many.
func (m *Metrics) Progress() (run int64, done, total int) {
	if m == nil || !m.progress.running.Load() {
		return 0, 0, 0
	}
	return m.progress.run.Load(), int(m.progress.done.Load()), int(m.progress.total.Load())
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// setLastRunResult marks result as the last full pass's result.
func (m *Metrics) setLastRunResult(result string) {
	for _, r := range RunResults {
		m.LastRunResult.WithLabelValues(r).Set(boolFloat(r == result))
	}
}
