package daemon

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Namespace is the prefix of every metric the daemon exports.
const Namespace = usage.Namespace

// TicketOutcomes are the outcomes counted in psa_sync_tickets_total. Every
// one is created at start, so alerts see a 0 before the first pass.
var TicketOutcomes = []string{"created", "updated", "closed", "failed"}

// Reasons counted in psa_sync_http_refused_total: a wrong API token (given
// to the API or the status page's sign-in form), a token check refused
// because its address sent too many wrong ones, and an API request
// refused because every slot it may take was busy.
const (
	RefusedWrongToken     = "wrong_token"
	RefusedTokenThrottled = "token_throttled"
	RefusedBusy           = "busy"
)

// RefusedReasons are the reasons of psa_sync_http_refused_total, every one
// created at start.
var RefusedReasons = []string{RefusedWrongToken, RefusedTokenThrottled, RefusedBusy}

// Metrics holds the daemon's collectors, all registered on one non-global
// registry: the service's own, and in Usage those the usage engine sets.
// Collectors are labelled with the PSA system only through currying, so
// callers pass just the bounded labels that vary.
type Metrics struct {
	system string

	// Usage holds the collectors the usage engine sets (runs, lines,
	// customers, unmapped usage, pass progress, the PSA's API budget).
	Usage *usage.Metrics

	APIRequestsTotal   *prometheus.CounterVec // method, code
	APIRequestDuration prometheus.ObserverVec // method
	RateLimitedTotal   prometheus.Counter
	ScheduleInterval   prometheus.Gauge
	// IntegrationEnabled has its one series (labelled system) only once
	// an export has loaded: before, nothing says whether the integration
	// is on, and a 0 would silence the alerts about passes.
	IntegrationEnabled *prometheus.GaugeVec
	Leader             prometheus.Gauge
	// StandbyLockError is 1 while this instance's last try to take the
	// leadership lock failed with an error, not because another holds it.
	StandbyLockError prometheus.Gauge
	NextRunTimestamp prometheus.Gauge

	ExportLastReloadSuccessful       prometheus.Gauge
	ExportLastReloadSuccessTimestamp prometheus.Gauge
	ConfigLastReloadSuccessful       prometheus.Gauge
	ConfigLastReloadSuccessTimestamp prometheus.Gauge

	TicketsTotal   *prometheus.CounterVec // outcome
	OpenTickets    prometheus.Gauge
	TicketDeferred prometheus.Gauge
	// TicketUnseenCreates is psa_sync_ticket_unseen_creates.
	TicketUnseenCreates        prometheus.Gauge
	TicketLastPassTimestamp    prometheus.Gauge
	TicketNextRunTimestamp     prometheus.Gauge
	TicketLastSuccessTimestamp prometheus.Gauge
	// TicketSyncEnabled, like IntegrationEnabled, has its one series only
	// once an export has loaded.
	TicketSyncEnabled *prometheus.GaugeVec

	HTTPRefusedTotal *prometheus.CounterVec // reason

	// TLSCertificateExpiry and TLSCertificateReadable are set at each
	// scrape, from the certificate files the function of
	// SetTLSCertificates reads then (file, use).
	TLSCertificateExpiry   *prometheus.GaugeVec
	TLSCertificateReadable *prometheus.GaugeVec
	tlsMu                  sync.Mutex // held while the TLS gauges are set and collected
	tlsCertificates        func() []TLSCertificate

	requests atomic.Int64
}

// TLSCertificate is when the first certificate of a file psa-syncd uses
// expires, as psa_sync_tls_certificate_expiry_timestamp_seconds exports it.
type TLSCertificate struct {
	File, Use string // Use: one of the TLSUse* values
	NotAfter  time.Time
	// Unreadable says the file cannot be read, or holds no certificate
	// that parses: NotAfter is unknown.
	Unreadable bool
}

// SetTLSCertificates makes each scrape set
// psa_sync_tls_certificate_expiry_timestamp_seconds from what certs
// returns then, and nothing else: a file whose certificate was renewed
// shows its new expiry at once, and a file no longer used (a reload that
// names another) is no longer exported.
func (m *Metrics) SetTLSCertificates(certs func() []TLSCertificate) {
	m.tlsMu.Lock()
	defer m.tlsMu.Unlock()
	m.tlsCertificates = certs
}

// tlsExpiryCollector collects TLSCertificateExpiry and
// TLSCertificateReadable, set afresh first.
type tlsExpiryCollector struct{ m *Metrics }

func (c tlsExpiryCollector) Describe(ch chan<- *prometheus.Desc) {
	c.m.TLSCertificateExpiry.Describe(ch)
	c.m.TLSCertificateReadable.Describe(ch)
}

func (c tlsExpiryCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.tlsMu.Lock()
	defer m.tlsMu.Unlock()
	if m.tlsCertificates != nil {
		m.TLSCertificateExpiry.Reset()
		m.TLSCertificateReadable.Reset()
		for _, cert := range m.tlsCertificates() {
			// A file that cannot be read has no expiry rather than a
			// wrong one; its readable series stays, at 0, so that a broken
			// renewal does not resolve the expiry alert in silence.
			m.TLSCertificateReadable.WithLabelValues(cert.File, cert.Use).Set(boolFloat(!cert.Unreadable))
			if !cert.Unreadable {
				m.TLSCertificateExpiry.WithLabelValues(cert.File, cert.Use).Set(unixSeconds(cert.NotAfter))
			}
		}
	}
	m.TLSCertificateExpiry.Collect(ch)
	m.TLSCertificateReadable.Collect(ch)
}

// NewMetrics creates every psa_sync_* collector on reg for the given PSA
// system, the usage engine's among them (usage.NewMetrics, kept as Usage,
// whose Requests is the count of InstrumentRoundTripper), plus the build
// info collector (psa_sync_build_info). Every
// labelled series is created with value 0, except
// psa_sync_integration_enabled, which appears when an export loads
// (SetIntegrationEnabled). It panics if a collector is
// already registered on reg, like promauto.
func NewMetrics(reg prometheus.Registerer, system psa.System) *Metrics {
	f := promauto.With(reg)
	sys := prometheus.Labels{"system": string(system)}
	m := &Metrics{system: string(system), Usage: usage.NewMetrics(reg, system)}
	m.Usage.Requests = m.Requests

	m.APIRequestsTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "api_requests_total",
		Help:      "HTTP requests sent to the PSA API, by method and status code; code=\"error\" for a request that got no answer (connection, TLS or timeout).",
	}, []string{"system", "method", "code"}).MustCurryWith(sys)
	m.APIRequestDuration = f.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace,
		Name:      "api_request_duration_seconds",
		Help:      "Latency of HTTP requests to the PSA API, by method, until the answer or the failure.",
		Buckets:   prometheus.DefBuckets,
	}, []string{"system", "method"}).MustCurryWith(sys)
	m.RateLimitedTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "rate_limited_total",
		Help:      "PSA API answers that refused the request for the PSA's rate limit: HTTP 429, or the refusal's message with another status (Autotask's thread or hourly threshold, Kaseya BMS's limit in an error envelope).",
	}, []string{"system"}).With(sys)
	m.ScheduleInterval = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "schedule_interval_seconds",
		Help:      "Nominal interval between scheduled sync passes.",
	}, []string{"system"}).With(sys)
	m.IntegrationEnabled = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "integration_enabled",
		Help:      "1 when the mapping export in use enables the integration (passes write to the PSA), 0 when it switches it off; absent until an export has loaded.",
	}, []string{"system"})
	m.Leader = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "leader",
		Help:      "1 when this psa-syncd is the active instance of those sharing its state database (always, with SQLite), 0 on a standby.",
	})
	m.StandbyLockError = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "standby_lock_error",
		Help:      "1 while this psa-syncd's last try to take the leadership lock of its PostgreSQL state database failed with an error (the database unreachable from it, a pooler, a newer schema), not because the active instance holds it: it cannot take over; 0 otherwise.",
	})

	m.NextRunTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "next_run_timestamp_seconds",
		Help:      "Time of the next scheduled sync pass, as a Unix timestamp; 0 while no valid schedule is loaded.",
	}, []string{"system"}).With(sys)

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
	m.TicketDeferred = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "ticket_deferred",
		Help:      "Alerts the last ticket pass left for a later pass before their ticket was filed, closed, noted or reopened (max_per_pass reached, policies.ticket_budget_reserve reached, or the PSA throttled the pass), over the customers with ticket sync on.",
	}, []string{"system"}).With(sys)
	m.TicketUnseenCreates = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "ticket_unseen_creates",
		Help:      "Ticket creates whose answer was lost that the last ticket pass did not find by their reference after policies.settle_time, with a search that did not find the customer's other ticket either (a search that cannot see the queue or board, or lags), or that no other ticket of the customer could check: kept, not filed a second time, and their customers failed. Restored at start-up from the last ticket pass.",
	}, []string{"system"}).With(sys)
	m.TicketLastPassTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "ticket_last_pass_timestamp_seconds",
		Help:      "Time the last scheduled ticket pass finished, whatever its result, as a Unix timestamp.",
	}, []string{"system"}).With(sys)
	m.TicketNextRunTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "ticket_next_run_timestamp_seconds",
		Help:      "Time the next scheduled ticket pass is due (or the one more pass that settles the ticket writes a pass left for policies.settle_time), as a Unix timestamp, kept until that pass has ended; 0 while no ticket schedule runs (a standby, no valid schedule).",
	}, []string{"system"}).With(sys)
	m.TicketLastSuccessTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "ticket_last_success_timestamp_seconds",
		Help:      "Time the last ticket pass in which every customer succeeded finished, as a Unix timestamp.",
	}, []string{"system"}).With(sys)
	m.TicketSyncEnabled = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "ticket_sync_enabled",
		Help:      "1 when the mapping export in use makes ticket passes run (an enabled ticket routing, the integration on, some customer with ticket sync on), 0 when it does not; absent until an export has loaded.",
	}, []string{"system"})

	m.HTTPRefusedTotal = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "http_refused_total",
		Help:      "Requests to psa-syncd's own HTTP API and status page it refused, by reason: wrong_token (a wrong API token, to the API or the sign-in form), token_throttled (a token check refused because its address sent too many wrong tokens), busy (every API slot the request may take was in use).",
	}, []string{"reason"})

	m.TLSCertificateExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "tls_certificate_expiry_timestamp_seconds",
		Help: "When the first certificate of a certificate file psa-syncd uses expires, as a Unix timestamp, by file and use: listener (tls_server_config's cert_file), " +
			"client_ca (its client_ca_file), advertise_ca (state.advertise_ca_file), advertise_client (state.advertise_client_cert_file). Read at each scrape; absent for a file that cannot be read.",
	}, []string{"file", "use"})
	m.TLSCertificateReadable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "tls_certificate_readable",
		Help: "1 when a certificate file psa-syncd uses can be read and holds a certificate that parses, 0 when not (missing, unreadable, empty or corrupt: " +
			"its expiry is then absent), by file and use as psa_sync_tls_certificate_expiry_timestamp_seconds. Read at each scrape.",
	}, []string{"file", "use"})
	reg.MustRegister(tlsExpiryCollector{m})

	reg.MustRegister(version.NewCollector(Namespace))

	for _, o := range TicketOutcomes {
		m.TicketsTotal.WithLabelValues(o)
	}
	for _, r := range RefusedReasons {
		m.HTTPRefusedTotal.WithLabelValues(r)
	}
	return m
}

// engine returns the usage engine's collectors, or nil without metrics.
func (m *Metrics) engine() *usage.Metrics {
	if m == nil {
		return nil
	}
	return m.Usage
}

// InstrumentRoundTripper wraps next (http.DefaultTransport when nil) so that
// every PSA request is counted in psa_sync_api_requests_total and timed in
// psa_sync_api_request_duration_seconds (the PSA's refusals for its rate
// limit are counted by RateLimited, which the clients call). A request that got no answer (connection
// refused, DNS, TLS, a reset, a timeout or cancellation) is counted and
// timed too, with code="error": promhttp counts answers only, and an
// unreachable PSA would show as no requests at all. Use it for the PSA's
// http.Client only; the psa packages stay free of metrics.
func (m *Metrics) InstrumentRoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	counted := promhttp.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		m.requests.Add(1)
		start := time.Now()
		resp, err := next.RoundTrip(r)
		if err != nil {
			method := requestMethodLabel(r.Method)
			m.APIRequestsTotal.With(prometheus.Labels{"method": method, "code": APIErrorCode}).Inc()
			m.APIRequestDuration.With(prometheus.Labels{"method": method}).Observe(time.Since(start).Seconds())
			return resp, err
		}
		return resp, err
	})
	return promhttp.InstrumentRoundTripperCounter(m.APIRequestsTotal,
		promhttp.InstrumentRoundTripperDuration(m.APIRequestDuration, counted))
}

// RateLimited counts an answer of the PSA that refused a request for its
// rate limit in psa_sync_rate_limited_total. The daemon's PSA clients call
// it (backends.Config.RateLimited) rather than the transport counting
// 429s: Autotask may refuse for its thread threshold with a 500, and Kaseya
// BMS inside a 200's error envelope, which only the clients recognise.
func (m *Metrics) RateLimited(*psa.RateLimitError) { m.RateLimitedTotal.Inc() }

// APIErrorCode is the code label of psa_sync_api_requests_total for a
// request that got no HTTP answer.
const APIErrorCode = "error"

// promhttpMethods are the methods promhttp labels as themselves, in lower
// case; it labels any other "unknown".
var promhttpMethods = []string{"GET", "PUT", "HEAD", "POST", "DELETE", "CONNECT", "OPTIONS", "NOTIFY", "TRACE", "PATCH"}

// requestMethodLabel is the method label promhttp gives a request's
// method, so that a failed request is counted under its answered
// requests' label.
func requestMethodLabel(method string) string {
	upper, lower := strings.ToUpper(method), strings.ToLower(method)
	if slices.Contains(promhttpMethods, upper) && (method == upper || method == lower) {
		return lower
	}
	return "unknown"
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

// ExportReloadRecovered records that the export in use is good again after
// failed reloads: its store failed to answer and now answers that it still
// holds that version. The success timestamp stays when the export was
// loaded, as it does at every poll that finds the export unchanged.
func (m *Metrics) ExportReloadRecovered() {
	m.ExportLastReloadSuccessful.Set(1)
}

func reloaded(success, stamp prometheus.Gauge, ok bool, t time.Time) {
	if !ok {
		success.Set(0)
		return
	}
	success.Set(1)
	stamp.Set(float64(t.UnixNano()) / 1e9)
}

// HTTPRefused counts a request to the HTTP API or the status page that
// was refused for reason (one of RefusedReasons).
func (m *Metrics) HTTPRefused(reason string) {
	if m == nil {
		return
	}
	m.HTTPRefusedTotal.WithLabelValues(reason).Inc()
}

// SetIntegrationEnabled records whether the export in use enables the
// integration; the series exists from the first call on.
func (m *Metrics) SetIntegrationEnabled(enabled bool) {
	m.IntegrationEnabled.WithLabelValues(m.system).Set(boolFloat(enabled))
}

// SetTicketSyncEnabled records whether the export in use makes ticket
// passes run; the series exists from the first call on.
func (m *Metrics) SetTicketSyncEnabled(enabled bool) {
	m.TicketSyncEnabled.WithLabelValues(m.system).Set(boolFloat(enabled))
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

// Progress reports the run id of the pass in progress (0 when none runs)
// and how many of its line writes are done out of how many.
func (m *Metrics) Progress() (run int64, done, total int) {
	if m == nil {
		return 0, 0, 0
	}
	return m.engine().Progress()
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
