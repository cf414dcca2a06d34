package psatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Default credentials of the simulated Autotask API user.
const (
	DefaultAutotaskUsername        = "api@msp.example"
	DefaultAutotaskSecret          = "sim-secret"
	DefaultAutotaskIntegrationCode = "SIMCODE"
)

// Default limits, as Autotask documents them.
const (
	DefaultHourlyLimit = 10000
	DefaultThreadLimit = 3
)

// maxBodyBytes bounds what the simulator reads of a request body.
const maxBodyBytes = 16 << 20

// Server is an in-memory PSA simulator serving a vendor's wire protocol on a
// loopback address. Create it with NewServer (or Start in tests, or
// NewServerOn to choose the address); all methods are safe for concurrent
// use.
type Server struct {
	system   psa.System
	ts       *httptest.Server
	handler  http.Handler
	latency  time.Duration
	clock    func() time.Time
	autotask *Autotask
	// kaseyabms is the simulated Kaseya BMS tenant (see kaseyabms.go).
	kaseyabms *KaseyaBMS
	// connectwise is the simulated ConnectWise company (see connectwise.go).
	connectwise *ConnectWise

	done      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex // guards requests and faults
	requests []Request
	faults   []*Fault

	// ticketSearchesHidden makes ticket searches find nothing (see
	// HideTicketSearches).
	ticketSearchesHidden atomic.Bool
}

// Request is one request the server received, as recorded in the request
// log. Header holds the request headers as sent, credentials included (the
// log is for test assertions; the /_sim/requests endpoint redacts them).
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	// Status is the status the server answered with (or, for a
	// DropAfterHandling fault, would have answered with); 0 when the
	// connection was dropped before handling.
	Status int
	// Dropped is true when the connection was closed without a response.
	Dropped bool
	Time    time.Time
}

// Option configures a Server.
type Option func(*config)

type config struct {
	system      psa.System
	creds       *[3]string
	bmsCreds    *[3]string // Kaseya BMS username, password, tenant
	connectwise []ConnectWiseOption
	fixture     *Fixture
	latency     time.Duration
	hourlyLimit int
	threadLimit int
	usageDelays [2]time.Duration
	faults      []Fault
	clock       func() time.Time
	errs        []error
}

// WithSystem chooses the PSA the server simulates: psa.SystemAutotask (the
// default), psa.SystemConnectWise or psa.SystemKaseyaBMS.
func WithSystem(s psa.System) Option {
	return func(c *config) { c.system = s }
}

// WithAutotaskCredentials sets the Autotask API user's name, secret and
// integration code. They win over credentials in a fixture. The defaults are
// DefaultAutotaskUsername, DefaultAutotaskSecret and
// DefaultAutotaskIntegrationCode.
func WithAutotaskCredentials(username, secret, integrationCode string) Option {
	return func(c *config) { c.creds = &[3]string{username, secret, integrationCode} }
}

// WithKaseyaBMSCredentials sets the Kaseya BMS API user's name, password
// and tenant. They win over credentials in a fixture. The defaults are
// DefaultKaseyaBMSUsername, DefaultKaseyaBMSPassword and
// DefaultKaseyaBMSTenant.
func WithKaseyaBMSCredentials(username, password, tenant string) Option {
	return func(c *config) { c.bmsCreds = &[3]string{username, password, tenant} }
}

// WithFixture seeds the server's state from f. Options are applied in order,
// so a later fixture adds to an earlier one.
func WithFixture(f *Fixture) Option {
	return func(c *config) {
		if f == nil {
			return
		}
		if c.fixture == nil {
			c.fixture = &Fixture{}
		}
		c.fixture.merge(f)
	}
}

// WithFixtureFile seeds the server's state from the JSON fixture at path (see
// LoadFixture). A file that cannot be loaded makes NewServer panic and
// NewServerOn return the error.
func WithFixtureFile(path string) Option {
	return func(c *config) {
		f, err := LoadFixture(path)
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		WithFixture(f)(c)
	}
}

// WithLatency adds d to the handling of every vendor API request (zone
// lookups included, inspection endpoints excluded): a write waits d, then
// takes effect; a read (a GET, or an Autotask query) is answered d after it
// arrives, or once its answer is built if the simulator takes longer than d
// to build it. The request
// holds its thread slot while it waits. The default is none.
func WithLatency(d time.Duration) Option {
	return func(c *config) { c.latency = d }
}

// WithHourlyLimit sets the number of requests allowed in a rolling hour
// (Autotask's ThresholdInformation externalRequestThreshold). The default is
// DefaultHourlyLimit.
func WithHourlyLimit(n int) Option {
	return func(c *config) { c.hourlyLimit = n }
}

// WithThreadLimit sets the number of concurrent requests allowed per
// (integration code, entity endpoint). The default is DefaultThreadLimit.
func WithThreadLimit(n int) Option {
	return func(c *config) { c.threadLimit = n }
}

// WithUsageLatency makes the Autotask simulator slow down as the hourly
// budget is used up, as Autotask does: requests made while the rolling hour
// holds at least 50% of WithHourlyLimit wait half, from 75% threeQuarters
// (Autotask: 0.5 s and 1 s; tests use less). The default is no such delay.
func WithUsageLatency(half, threeQuarters time.Duration) Option {
	return func(c *config) { c.usageDelays = [2]time.Duration{half, threeQuarters} }
}

// WithFault installs a fault from the start; see Server.AddFault.
func WithFault(f Fault) Option {
	return func(c *config) { c.faults = append(c.faults, f) }
}

// WithClock sets the clock used for the current billing period, default
// contract dates, record timestamps and the rolling hourly window. The
// default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.clock = now }
}

// NewServer starts a simulator on 127.0.0.1 at a random port. It panics when
// an option is invalid (for example a fixture file that cannot be loaded);
// use NewServerOn to get the error instead. Call Close when done.
func NewServer(opts ...Option) *Server {
	s, err := newServer(opts)
	if err != nil {
		panic(err.Error())
	}
	s.ts = httptest.NewServer(s.handler)
	return s
}

// Start is NewServer for tests: it registers s.Close with tb.Cleanup.
func Start(tb interface{ Cleanup(func()) }, opts ...Option) *Server {
	s := NewServer(opts...)
	tb.Cleanup(s.Close)
	return s
}

// NewServerOn starts a simulator listening on addr, which must be a loopback
// address such as "127.0.0.1:8080" or "localhost:0". It is meant for running
// the simulator by hand; call Close to stop it.
func NewServerOn(addr string, opts ...Option) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("psatest: listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("psatest: listen address %q is not a loopback address", addr)
	}
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("psatest: %w", err)
	}
	ts := httptest.NewUnstartedServer(s.handler)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	s.ts = ts
	return s, nil
}

func newServer(opts []Option) (*Server, error) {
	c := config{
		system:      psa.SystemAutotask,
		hourlyLimit: DefaultHourlyLimit,
		threadLimit: DefaultThreadLimit,
		clock:       time.Now,
	}
	for _, o := range opts {
		o(&c)
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	switch c.system {
	case psa.SystemAutotask, psa.SystemKaseyaBMS, psa.SystemConnectWise:
	default:
		return nil, fmt.Errorf("psatest: system %q is not simulated yet", c.system)
	}
	if c.hourlyLimit <= 0 || c.threadLimit <= 0 {
		return nil, errors.New("psatest: hourly and thread limits must be positive")
	}
	s := &Server{
		system:  c.system,
		latency: c.latency,
		clock:   c.clock,
		done:    make(chan struct{}),
	}
	for _, f := range c.faults {
		s.AddFault(f)
	}
	s.autotask = newAutotask(s, c)
	if c.fixture != nil && c.fixture.Autotask != nil {
		if err := s.autotask.load(c.fixture.Autotask); err != nil {
			return nil, err
		}
	}
	s.autotask.ensureBillingCode()
	s.kaseyabms = newKaseyaBMS(s, c)
	if c.fixture != nil && c.fixture.KaseyaBMS != nil {
		if err := s.kaseyabms.load(c.fixture.KaseyaBMS); err != nil {
			return nil, err
		}
	}
	s.connectwise = newConnectWise(s, c)
	if c.fixture != nil && c.fixture.ConnectWise != nil {
		if err := s.connectwise.load(c.fixture.ConnectWise); err != nil {
			return nil, err
		}
	}
	for _, o := range c.connectwise {
		o(s.connectwise)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// URL returns the server's base URL, such as http://127.0.0.1:41234.
func (s *Server) URL() string { return s.ts.URL }

// Handler returns the server's HTTP handler (vendor APIs, fault injection,
// request log and the /_sim/ inspection endpoints), for serving it on a
// listener of one's own.
func (s *Server) Handler() http.Handler { return s.handler }

// System returns the PSA system the server simulates.
func (s *Server) System() psa.System { return s.system }

// HideTicketSearches makes every ticket search answer as if the API user
// could see none of the tickets, in the PSA's own shape of an empty
// answer: Autotask's Tickets query an empty page, ConnectWise's ticket
// list `[]` (and its count 0), Kaseya BMS's ticket search no result. It is
// what an Autotask security level or a ConnectWise security role without
// the tickets' queue or board, or a search index that lags, answers. The
// tickets stay, a create still adds one, and a read by id still finds it.
// hide false shows them again.
func (s *Server) HideTicketSearches(hide bool) { s.ticketSearchesHidden.Store(hide) }

// Close stops the server. Requests waiting on injected latency are released
// first, so Close does not wait for them.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.ts != nil {
			s.ts.Close()
		}
	})
}

// AutotaskBaseURL returns the Autotask zone root, URL()+"/ATServicesRest/";
// clients append "V1.0/".
func (s *Server) AutotaskBaseURL() string { return s.URL() + "/ATServicesRest/" }

// AutotaskZoneLookupURL returns the Autotask zone lookup endpoint; clients
// add "?user=<username>".
func (s *Server) AutotaskZoneLookupURL() string {
	return s.URL() + "/atservicesrest/v1.0/zoneInformation"
}

// KaseyaBMSBaseURL returns the Kaseya BMS API root, URL()+"/"; clients
// append "v2/...". It serves BMS only on a server started with
// WithSystem(psa.SystemKaseyaBMS).
func (s *Server) KaseyaBMSBaseURL() string { return s.URL() + "/" }

// KaseyaBMS returns the simulated Kaseya BMS tenant, for seeding and
// inspecting its state.
func (s *Server) KaseyaBMS() *KaseyaBMS { return s.kaseyabms }

// Autotask returns the simulated Autotask tenant, for seeding and inspecting
// its state.
func (s *Server) Autotask() *Autotask { return s.autotask }

// Requests returns a copy of the request log, oldest first. Requests to the
// /_sim/ inspection endpoints are not logged.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Server) now() time.Time { return s.clock() }

// serveHTTP is the outermost handler: it routes the inspection endpoints,
// records every other request, applies faults and buffers the response so
// that the request log is complete before the client sees any byte of it.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if isSimPath(r.URL.Path) {
		s.serveSim(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		// The client went away while sending; there is nobody to answer.
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	entry := Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Body:     body,
		Time:     s.now(),
	}
	f := s.matchFault(r, body)
	latency := s.latency
	if f != nil {
		latency += f.Latency
		if f.Received != nil {
			f.Received()
		}
	}
	buf := newBufferedWriter()
	switch {
	case f != nil && f.Drop:
		s.wait(r.Context(), latency)
		entry.Dropped = true
		s.logRequest(entry)
		dropConnection(w)
		return
	case f != nil && f.Status != 0 && f.EchoRequest:
		s.wait(r.Context(), latency)
		writeEcho(buf, f, r, body)
	case f != nil && f.Status != 0:
		s.wait(r.Context(), latency)
		if s.system == psa.SystemConnectWise && f.Body == "" {
			writeConnectWiseFault(buf, f, s.connectwise.version)
		} else {
			writeFault(buf, f)
		}
	default:
		if f != nil && f.RetryAfter > 0 {
			buf.Header().Set("Retry-After", retryAfterValue(f.RetryAfter))
		}
		ctx := context.WithValue(r.Context(), latencyKey{}, latency)
		s.route(buf, r.WithContext(ctx))
	}
	if f != nil && f.Status != 0 && f.Gzip {
		gzipBody(buf)
	}
	entry.Status = buf.statusCode()
	if f != nil && f.DropAfterHandling {
		entry.Dropped = true
		s.logRequest(entry)
		dropConnection(w)
		return
	}
	s.logRequest(entry)
	buf.copyTo(w)
	buf.release()
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if s.system == psa.SystemConnectWise && s.ownsConnectWise(r.URL.Path) {
		s.connectwise.ServeHTTP(w, r)
		return
	}
	if s.system == psa.SystemKaseyaBMS && hasPrefixFold(r.URL.Path, kaseyaBMSPrefix) {
		s.kaseyabms.serveHTTP(w, r)
		return
	}
	if hasPrefixFold(r.URL.Path, autotaskPrefix) {
		s.autotask.serve(w, r)
		return
	}
	writeMessage(w, http.StatusNotFound, fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", r.URL.Path))
}

func (s *Server) logRequest(e Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, e)
}

type latencyKey struct{}

// requestLatency returns the latency the outer handler asked the vendor
// handler to add once it holds its thread slot.
func requestLatency(ctx context.Context) time.Duration {
	d, _ := ctx.Value(latencyKey{}).(time.Duration)
	return d
}

// answerRead builds the answer of a read with handle, then waits for what
// is left of its latency d: a read is answered d after it arrives, or when
// its answer is built if that takes longer. The simulator's own time to
// build a large answer (a page of 500 of the 100,000 unit rows of a large
// tenant takes milliseconds) is part of the latency it simulates, not added
// to it. A write waits first and then takes effect (see wait), so that a
// write cancelled while it waits changes nothing.
func (s *Server) answerRead(ctx context.Context, d time.Duration, handle func()) {
	deadline := time.Now().Add(d)
	handle()
	s.wait(ctx, time.Until(deadline))
}

// isRead reports whether r is a read: a GET, or a POST that only searches:
// an Autotask query (.../query, .../query/count, and .../query/next, which
// a query's nextPageUrl points to for each page after the first) or a
// Kaseya BMS search (.../search).
func isRead(r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	p := strings.ToLower(strings.TrimSuffix(r.URL.Path, "/"))
	return r.Method == http.MethodPost && (strings.HasSuffix(p, "/query") || strings.HasSuffix(p, "/query/count") ||
		strings.HasSuffix(p, "/query/next") || strings.HasSuffix(p, "/search"))
}

// wait blocks for d, or until the request is cancelled or the server closes.
func (s *Server) wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.done:
	}
}

// bufferedWriter collects a response so it can be logged before it is sent,
// or thrown away when the connection is dropped.
type bufferedWriter struct {
	header http.Header
	status int
	body   *bytes.Buffer
}

// bodies holds the buffers of answered requests for the next ones: a page
// of 500 Autotask rows is about 100 KB, and a large pass asks for
// thousands.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func newBufferedWriter() *bufferedWriter {
	return &bufferedWriter{header: http.Header{}, body: bodies.Get().(*bytes.Buffer)} //nolint:forcetypeassert // bodies holds *bytes.Buffer
}

// release returns the body's buffer for reuse; b must not be used after.
func (b *bufferedWriter) release() {
	b.body.Reset()
	bodies.Put(b.body)
	b.body = nil
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedWriter) statusCode() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

func (b *bufferedWriter) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	// The whole body is known: it goes out with its length rather than
	// chunked, so that clients can size their buffers from it.
	if b.statusCode() != http.StatusNoContent && b.statusCode() != http.StatusNotModified {
		w.Header().Set("Content-Length", strconv.Itoa(b.body.Len()))
	}
	w.WriteHeader(b.statusCode())
	_, _ = w.Write(b.body.Bytes())
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"errors":["simulator: cannot encode response"]}`)
	}
	writeRawJSON(w, status, data)
}

func writeRawJSON(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// writeErrors writes the Autotask error envelope {"errors":[...]}.
func writeErrors(w http.ResponseWriter, status int, msgs ...string) {
	writeJSON(w, status, map[string][]string{"errors": msgs})
}

// writeMessage writes the ASP.NET envelope {"Message":"..."} used for routing
// errors such as 404 and 405.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"Message": msg})
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// simPrefix is the path prefix of the inspection endpoints. They are not
// part of any vendor API.
const simPrefix = "/_sim/"

func isSimPath(p string) bool { return hasPrefixFold(p, simPrefix) }

// serveSim serves the inspection endpoints:
//
//	GET /_sim/requests        the request log, credentials redacted
//	GET /_sim/autotask/state  the Autotask tenant's state
//	GET /_sim/kaseyabms/state the Kaseya BMS tenant's state (not BMS)
//	GET /_sim/connectwise/state the ConnectWise company's state (not ConnectWise)
func (s *Server) serveSim(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeMessage(w, http.StatusMethodNotAllowed, fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method))
		return
	}
	switch strings.ToLower(strings.TrimSuffix(r.URL.Path, "/")) {
	case "/_sim/requests":
		writeJSON(w, http.StatusOK, map[string]any{"requests": s.redactedRequests()})
	case "/_sim/autotask/state":
		writeJSON(w, http.StatusOK, s.autotask.State())
	case "/_sim/connectwise/state":
		writeJSON(w, http.StatusOK, s.connectwise.State())
	case "/_sim/kaseyabms/state":
		writeJSON(w, http.StatusOK, s.kaseyabms.State())
	default:
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("No simulator resource matches '%s'.", r.URL.Path))
	}
}

// simRequest is a request log entry as /_sim/requests shows it.
type simRequest struct {
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	RawQuery string              `json:"rawQuery,omitempty"`
	Header   map[string][]string `json:"header"`
	Body     string              `json:"body,omitempty"`
	Status   int                 `json:"status"`
	Dropped  bool                `json:"dropped,omitempty"`
	Time     time.Time           `json:"time"`
}

// secretHeaders are redacted in /_sim/requests.
var secretHeaders = []string{"Secret", "ApiIntegrationCode", "Authorization", "ClientId"}

func (s *Server) redactedRequests() []simRequest {
	reqs := s.Requests()
	out := make([]simRequest, 0, len(reqs))
	for _, r := range reqs {
		h := r.Header.Clone()
		for _, k := range secretHeaders {
			if h.Get(k) != "" {
				h.Set(k, "REDACTED")
			}
		}
		out = append(out, simRequest{
			Method: r.Method, Path: r.Path, RawQuery: r.RawQuery, Header: h,
			Body: string(redactBMSForm(r.Path, r.Body)), Status: r.Status, Dropped: r.Dropped, Time: r.Time,
		})
	}
	return out
}

// utf16Length is the length of s as Autotask and ConnectWise check a
// field's maximum length: in UTF-16 code units, as .NET counts a string
// (ConnectWise's message is .NET's StringLength one), so that a character
// outside the Basic Multilingual Plane (an emoji) counts two.
func utf16Length(s string) int { return len(utf16.Encode([]rune(s))) }
