package sophostest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// Server is a running Sophos Central simulator. Its methods are safe for
// concurrent use.
type Server struct {
	ts *httptest.Server

	mu            sync.Mutex
	clientID      string
	clientSecret  string
	partnerID     string
	partnerName   string
	idType        string
	tenants       []Tenant
	usage         map[source.Period][]UsageItem
	relativeUsage map[int][]UsageItem  // a fixture's relative months until newServer resolves them
	alerts        map[string][]Alert   // tenant id → open alerts, in the order raised; see alerts.go
	alertsDenied  map[string]bool      // tenants whose alerts answer 403
	tokens        map[string]time.Time // access token → expiry
	refresh       map[string]bool
	tokenLifetime time.Duration
	clock         func() time.Time
	latency       time.Duration
	faults        []*fault
	requests      []Request
}

// Request is one request the simulator received, with the status it answered.
// Status is 0 for a dropped connection. Header and Body are as received (at
// most 1 MiB of body), so a token request's body holds the client secret:
// the simulator's own, never a real one.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	Status   int
	Time     time.Time
}

// Option configures a Server.
type Option func(*Server) error

// WithCredentials sets the client id and secret the token endpoint accepts
// (default DefaultClientID, DefaultClientSecret).
func WithCredentials(clientID, clientSecret string) Option {
	return func(s *Server) error {
		s.clientID, s.clientSecret = clientID, clientSecret
		return nil
	}
}

// WithPartnerID sets the partner id whoami returns and X-Partner-ID must
// carry (default DefaultPartnerID).
func WithPartnerID(id string) Option {
	return func(s *Server) error {
		s.partnerID = id
		return nil
	}
}

// WithIDType sets the idType whoami returns (default "partner"). With any
// other value the partner endpoints answer 403, as for a tenant or
// organization credential.
func WithIDType(idType string) Option {
	return func(s *Server) error {
		s.idType = idType
		return nil
	}
}

// WithFixture loads the starting state from f. Options after it override it.
func WithFixture(f *Fixture) Option {
	return func(s *Server) error {
		if f == nil {
			return nil
		}
		if err := f.Validate(); err != nil {
			return fmt.Errorf("sophostest: fixture: %w", err)
		}
		s.load(f)
		return nil
	}
}

// WithFixtureFile loads the starting state from a JSON fixture file.
func WithFixtureFile(path string) Option {
	return func(s *Server) error {
		f, err := LoadFixture(path)
		if err != nil {
			return err
		}
		s.load(f)
		return nil
	}
}

// WithTokenLifetime sets expires_in of issued tokens (default one hour, as
// the real service). Expired tokens get 401 from the API endpoints.
func WithTokenLifetime(d time.Duration) Option {
	return func(s *Server) error {
		s.tokenLifetime = d
		return nil
	}
}

// WithClock sets the simulator's clock, used for token expiry (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Server) error {
		s.clock = now
		return nil
	}
}

// WithLatency delays every response by d.
func WithLatency(d time.Duration) Option {
	return func(s *Server) error {
		s.latency = d
		return nil
	}
}

// WithFault adds a fault from the start; see Fault.
func WithFault(f Fault) Option {
	return func(s *Server) error {
		s.AddFault(f)
		return nil
	}
}

func newServer(opts []Option) (*Server, error) {
	s := &Server{
		clientID:      DefaultClientID,
		clientSecret:  DefaultClientSecret,
		partnerID:     DefaultPartnerID,
		partnerName:   "Simulated Partner",
		idType:        "partner",
		usage:         map[source.Period][]UsageItem{},
		alerts:        map[string][]Alert{},
		alertsDenied:  map[string]bool{},
		tokens:        map[string]time.Time{},
		refresh:       map[string]bool{},
		tokenLifetime: time.Hour,
		clock:         time.Now,
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.resolveRelativeUsage()
	s.ts = httptest.NewUnstartedServer(s.Handler())
	return s, nil
}

// NewServer starts a simulator on 127.0.0.1 and a random port. It panics if
// an option fails (a bad fixture), like httptest.NewServer does when it cannot
// listen.
func NewServer(opts ...Option) *Server {
	s, err := newServer(opts)
	if err != nil {
		panic(err)
	}
	s.ts.Start()
	return s
}

// Start is NewServer plus tb.Cleanup(s.Close).
func Start(tb interface{ Cleanup(func()) }, opts ...Option) *Server {
	s := NewServer(opts...)
	tb.Cleanup(s.Close)
	return s
}

// NewServerOn starts a simulator listening on addr, which must be a loopback
// address such as "127.0.0.1:9443" or "localhost:0" (the state endpoint needs
// no token). It is meant for running the simulator by hand, as
// psa-syncd simulate does; call Close to stop it. Unlike NewServer it returns
// option errors (a bad fixture) instead of panicking.
func NewServerOn(addr string, opts ...Option) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("sophostest: listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("sophostest: listen address %q is not a loopback address", addr)
	}
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sophostest: %w", err)
	}
	s.ts.Listener.Close()
	s.ts.Listener = l
	s.ts.Start()
	return s, nil
}

// URL returns the simulator's base URL, e.g. http://127.0.0.1:41234. It serves
// both the token endpoint and the API.
func (s *Server) URL() string { return s.ts.URL }

// AuthURL returns the token endpoint, URL()+"/api/v2/oauth2/token".
func (s *Server) AuthURL() string { return s.ts.URL + tokenPath }

// APIURL returns the API base URL (the global host), URL()+"/".
func (s *Server) APIURL() string { return s.ts.URL + "/" }

// Close shuts the simulator down.
func (s *Server) Close() { s.ts.Close() }

// Requests returns a copy of the request log.
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

// CountRequests returns how many logged requests had method and path (path
// as in Fault.Path: exact, or a prefix when it ends in "*").
func (s *Server) CountRequests(method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if (method == "" || strings.EqualFold(method, r.Method)) && pathMatches(path, r.Path) {
			n++
		}
	}
	return n
}

// Handler returns the simulator's HTTP handler, for mounting it in another
// server. The API host whoami reports is taken from the request.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+tokenPath, s.handleToken)
	mux.HandleFunc("GET /whoami/v1", s.handleWhoAmI)
	mux.HandleFunc("GET /partner/v1/tenants", s.partner(s.handleTenants))
	mux.HandleFunc("GET /partner/v1/tenants/{tenantId}", s.partner(s.handleTenant))
	mux.HandleFunc("GET /partner/v1/billing/usage/{year}/{month}", s.partner(s.handleUsage))
	mux.HandleFunc("GET /common/v1/alerts", s.tenant(s.handleAlerts))
	mux.HandleFunc("GET /common/v1/alerts/{alertId}", s.tenant(s.handleAlert))
	mux.HandleFunc("GET /_sim/sophos/state", s.handleState)
	mux.HandleFunc("DELETE /_sim/sophos/alerts/{tenantId}/{alertId}", s.handleResolveAlert)
	for _, p := range []string{tokenPath, "/whoami/v1", "/partner/v1/tenants", "/partner/v1/tenants/{tenantId}", "/partner/v1/billing/usage/{year}/{month}",
		"/common/v1/alerts", "/common/v1/alerts/{alertId}"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "Method not allowed")
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", "Resource not found")
	})
	return s.middleware(mux)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// middleware logs every request and applies latency and faults.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		now := s.clock()
		idx := len(s.requests)
		s.requests = append(s.requests, Request{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: body, Time: now,
		})
		latency := s.latency
		var f *Fault
		if !strings.HasPrefix(r.URL.Path, "/_sim/") { // inspection is never faulted
			f = s.matchFault(r.Method, r.URL.Path)
		}
		s.mu.Unlock()

		setStatus := func(code int) {
			s.mu.Lock()
			s.requests[idx].Status = code
			s.mu.Unlock()
		}
		if f != nil {
			latency += f.Latency
		}
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f != nil && f.Drop {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if f != nil && f.Status != 0 {
			if f.RetryAfter > 0 {
				secs := int((f.RetryAfter + time.Second - 1) / time.Second)
				w.Header().Set("Retry-After", fmt.Sprint(secs))
			}
			switch {
			case f.EchoRequest:
				writeEcho(w, f, r, body)
			case f.Body != "":
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(f.Status)
				io.WriteString(w, f.Body)
			default:
				writeError(w, f.Status, errorName(f.Status), http.StatusText(f.Status))
			}
			setStatus(f.Status)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		setStatus(rec.status)
	})
}

// newID returns a random version-4 UUID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
