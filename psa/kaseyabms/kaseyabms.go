package kaseyabms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

const (
	// DefaultUserAgent is the User-Agent sent when WithUserAgent is not used.
	DefaultUserAgent = "psa-sync"

	// DefaultMaxRetries is how often an idempotent request is retried when
	// WithMaxRetries is not used.
	DefaultMaxRetries = 4

	// HourlyLimit is the number of calls Kaseya BMS allows per hour and
	// endpoint ("The V2 API call limit is 1500 per hour per endpoint"). The
	// client's limiter never lets more through.
	HourlyLimit = 1500

	// DefaultPageSize is the PageSize the client asks for when listing.
	// BMS does not document a maximum.
	DefaultPageSize = 100

	// maxPages bounds a paging loop, in case a server ignores PageNumber.
	maxPages = 10000

	// tokenMargin is how long before its expiry an access token is renewed.
	tokenMargin = 2 * time.Minute
)

// Paths of the security endpoints.
const (
	authenticatePath = "v2/security/authenticate"
	refreshTokenPath = "v2/security/refreshtoken"
)

// A Client talks to the Kaseya BMS REST API (version 2) of one tenant.
//
// A Client is safe for concurrent use. It authenticates lazily, renews its
// bearer token before it expires (and once more after a 401), keeps to
// HourlyLimit calls per endpoint in a rolling hour, retries idempotent
// requests with exponential backoff and full jitter, and never re-sends a
// request that creates something when its outcome is unknown.
type Client struct {
	client      *http.Client
	baseURL     *url.URL // API root, ending in "/", e.g. https://api.bmsemea.kaseya.com/
	hostURL     *url.URL // from WithHostname
	overrideURL *url.URL // from WithBaseURL
	creds       *credentials
	redact      *redact.Redactor
	userAgent   string
	maxRetries  int
	backoff     rest.Backoff
	logger      *slog.Logger
	// rateLimited is WithRateLimitHook's function, or nil.
	rateLimited func(*psa.RateLimitError)
	now         func() time.Time
	sem         chan struct{} // nil: no concurrency bound

	// sleep waits between retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	limiter *limiter

	// pageBases maps an endpoint to the PageNumber of its first page (0
	// or 1), once collect has learnt it.
	pageBases sync.Map

	tokenMu sync.Mutex
	token   *Token
	// goodToken is the last access token known good (tokenGood).
	goodToken string
	// signInFor403 is whether the token was dropped for a 403 that does
	// not speak of the credentials: the next sign-in's token is good.
	signInFor403 bool

	common service

	// Services for the parts of the API psa-sync uses.
	Services  *ServicesService
	Accounts  *AccountsService
	Contracts *ContractsService
	Tickets   *TicketsService
}

type service struct {
	client *Client
}

// credentials are the API user's credentials. They are only ever written to
// the authenticate form.
type credentials struct {
	username string
	password string
	tenant   string
}

// String keeps the credentials out of logs and error messages.
func (*credentials) String() string { return "kaseya bms credentials (redacted)" }

// GoString keeps the credentials out of %#v output.
func (c *credentials) GoString() string { return c.String() }

// An Option configures a Client in NewClient.
type Option func(*Client) error

// WithHTTPClient sets the HTTP client that sends every request. The default
// is a client with a 60 second timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("kaseyabms: nil HTTP client")
		}
		c.client = hc
		return nil
	}
}

// WithHostname sets the tenant's host as the BMS console shows it (My
// Settings, server URL), such as "bmsemea.kaseya.com", without protocol or
// path. The API host is derived from it by APIHost. One of WithHostname and
// WithBaseURL is required.
func WithHostname(hostname string) Option {
	return func(c *Client) error {
		host, err := APIHost(hostname)
		if err != nil {
			return err
		}
		c.hostURL = &url.URL{Scheme: "https", Host: host, Path: "/"}
		return nil
	}
}

// WithBaseURL sets the API root, such as https://api.bmsemea.kaseya.com/
// (the client appends "v2/..."), for simulators and unusual installs. It
// wins over WithHostname.
func WithBaseURL(rawURL string) Option {
	return func(c *Client) error {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("kaseyabms: base URL %q is not an absolute http(s) URL", redact.URL(rawURL))
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		u.RawQuery, u.Fragment, u.RawPath = "", "", ""
		c.overrideURL = u
		return nil
	}
}

// WithCredentials sets the API user's name, password and tenant (the
// company name shown in BMS, spaces allowed). They are required.
func WithCredentials(username, password, tenant string) Option {
	return func(c *Client) error {
		c.creds.username, c.creds.password, c.creds.tenant = username, password, tenant
		return nil
	}
}

// WithUserAgent sets the User-Agent header. The default is DefaultUserAgent.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if ua != "" {
			c.userAgent = ua
		}
		return nil
	}
}

// WithMaxConcurrency bounds the requests in flight at once. BMS documents
// no concurrency limit; the default is no bound.
func WithMaxConcurrency(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("kaseyabms: max concurrency must not be negative, got %d", n)
		}
		if n > 0 {
			c.sem = make(chan struct{}, n)
		}
		return nil
	}
}

// WithMaxRetries sets how often an idempotent request (a GET, PUT, DELETE,
// a search or an authentication) is retried after a throttling response,
// a server error or a network error. Zero disables retries. The default is
// DefaultMaxRetries.
func WithMaxRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("kaseyabms: max retries must not be negative, got %d", n)
		}
		c.maxRetries = n
		return nil
	}
}

// WithBackoff sets the exponential backoff between retries: the n-th retry
// waits a random time up to min(max, base·2ⁿ), or longer when the server
// sent Retry-After (one over rest.MaxRetryAfter, five minutes, ends the
// retries with an error instead). The defaults are 500ms and 30s.
func WithBackoff(base, maxWait time.Duration) Option {
	return func(c *Client) error {
		b, err := rest.NewBackoff(base, maxWait)
		if err != nil {
			return fmt.Errorf("kaseyabms: %w", err)
		}
		c.backoff = b
		return nil
	}
}

// WithHourlyLimit sets the calls per endpoint allowed in a rolling hour.
// The default, and the maximum, is HourlyLimit.
func WithHourlyLimit(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("kaseyabms: hourly limit must be at least 1, got %d", n)
		}
		c.limiter.limit = min(n, HourlyLimit)
		return nil
	}
}

// WithCallStore sets where the calls per endpoint are counted. The default
// counts in memory, for this client only; a store shared by every process
// that uses the same BMS tenant keeps them all inside the limit. A store
// that is also a CallReturner gets back the calls counted and not sent.
func WithCallStore(s CallStore) Option {
	return func(c *Client) error {
		if s == nil {
			return errors.New("kaseyabms: nil call store")
		}
		c.limiter.store = s
		return nil
	}
}

// WithClock sets the clock used for token expiry and the hourly limiter.
// The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *Client) error {
		if now == nil {
			return errors.New("kaseyabms: nil clock")
		}
		c.now = now
		c.limiter.now = now
		return nil
	}
}

// WithRateLimitHook sets a function called with every answer the client
// reads as a refusal for the PSA's rate limit, whatever its status, before
// the client retries or returns it: the daemon counts them in its metrics,
// which the HTTP status alone would not show. It may be called from
// several requests at once. The default is none.
func WithRateLimitHook(f func(*psa.RateLimitError)) Option {
	return func(c *Client) error {
		c.rateLimited = f
		return nil
	}
}

// WithLogger sets the logger for retries and authentication. The default
// discards everything. Credentials and tokens are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l != nil {
			c.logger = l
		}
		return nil
	}
}

// NewClient returns a client configured by opts. It does no network I/O:
// it authenticates on the first request.
func NewClient(opts ...Option) (*Client, error) {
	c := &Client{
		client:     &http.Client{Timeout: 60 * time.Second},
		creds:      &credentials{},
		userAgent:  DefaultUserAgent,
		maxRetries: DefaultMaxRetries,
		backoff:    rest.DefaultBackoff,
		logger:     slog.New(slog.DiscardHandler),
		now:        time.Now,
		sleep:      rest.SleepContext,
		limiter:    newLimiter(HourlyLimit, time.Hour, time.Now),
	}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	// The base URL wins over the hostname whatever the option order.
	c.baseURL = c.overrideURL
	if c.baseURL == nil {
		c.baseURL = c.hostURL
	}
	if c.baseURL == nil {
		return nil, errors.New("kaseyabms: a hostname (such as bmsemea.kaseya.com) or a base URL is required")
	}
	var missing []string
	if c.creds.username == "" {
		missing = append(missing, "username")
	}
	if c.creds.password == "" {
		missing = append(missing, "password")
	}
	if c.creds.tenant == "" {
		missing = append(missing, "tenant")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kaseyabms: missing credentials: %s", strings.Join(missing, ", "))
	}
	// Credentials go in headers and bodies that Go's client would carry
	// to the host a redirect names.
	c.client = redact.RedirectsWithoutCredentials(c.client)
	c.redact = redact.New(c.creds.password)
	c.common.client = c
	c.Services = (*ServicesService)(&c.common)
	c.Accounts = (*AccountsService)(&c.common)
	c.Contracts = (*ContractsService)(&c.common)
	c.Tickets = (*TicketsService)(&c.common)
	return c, nil
}

// APIHost validates a hostname as typed in the BMS console and returns the
// host of its V2 API: the console host prefixed with "api." (bms.kaseya.com
// → api.bms.kaseya.com, bmsemea.kaseya.com → api.bmsemea.kaseya.com,
// bmsapac.kaseya.com → api.bmsapac.kaseya.com, vorexlogin.com →
// api.vorexlogin.com). A host that already starts with "api." is kept. A
// protocol, path, query, credentials or spaces are refused with a message
// saying what to type instead.
func APIHost(hostname string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(hostname))
	example := "give the host alone as the BMS console shows it, such as bmsemea.kaseya.com"
	switch {
	case h == "":
		return "", fmt.Errorf("kaseyabms: hostname is empty; %s", example)
	case strings.Contains(h, "://"):
		return "", fmt.Errorf("kaseyabms: hostname %q must not include a protocol; %s", redact.URL(hostname), example)
	case strings.ContainsAny(h, "/?#"):
		return "", fmt.Errorf("kaseyabms: hostname %q must not include a path; %s", redact.URL(hostname), example)
	case strings.ContainsAny(h, "@ \t\\"):
		return "", fmt.Errorf("kaseyabms: hostname %q is not a host name; %s", redact.URL(hostname), example)
	}
	u, err := url.Parse("https://" + h + "/")
	if err != nil || u.Host != h || u.Hostname() == "" || strings.HasPrefix(u.Hostname(), ".") || strings.HasSuffix(u.Hostname(), ".") {
		return "", fmt.Errorf("kaseyabms: hostname %q is not a host name; %s", hostname, example)
	}
	h = strings.TrimPrefix(h, "www.")
	if strings.HasPrefix(h, "api.") {
		return h, nil
	}
	return "api." + h, nil
}

// MaxConcurrency returns the bound on requests in flight set by
// WithMaxConcurrency, or 0 when there is none.
func (c *Client) MaxConcurrency() int { return cap(c.sem) }

// Host returns the API host, such as api.bmsemea.kaseya.com.
func (c *Client) Host() string { return c.baseURL.Host }

// Tenant returns the tenant (company) name the API user signs in to.
func (c *Client) Tenant() string { return c.creds.tenant }

// BaseURL returns a copy of the API root the client sends requests to.
func (c *Client) BaseURL() *url.URL {
	u := *c.baseURL
	return &u
}

// NewRequest builds a request for the API. urlStr is relative to the API
// root (such as "v2/crm/accounts/lookup"); body, if not nil, is sent as
// JSON. The bearer token is added when the request is sent.
func (c *Client) NewRequest(ctx context.Context, method, urlStr string, body any) (*http.Request, error) {
	u, err := c.baseURL.Parse(strings.TrimPrefix(urlStr, "/"))
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: bad request URL: %w", err)
	}
	if !strings.EqualFold(u.Scheme, c.baseURL.Scheme) || !strings.EqualFold(u.Host, c.baseURL.Host) {
		return nil, fmt.Errorf("kaseyabms: refusing to send a token to %s://%s, which is not the API host", u.Scheme, u.Host)
	}
	var buf []byte
	if body != nil {
		buf, err = json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("kaseyabms: encoding request body: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(buf))
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: %w", err)
	}
	if body == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// Response wraps an HTTP response from Kaseya BMS with the envelope's paging
// information.
//
// The embedded *http.Response keeps the status and the headers, but
// neither the body, which has been read, nor the credentials: its Request
// holds only the method and the URL (see redact.Redactor.Response).
type Response struct {
	*http.Response

	// TotalRecords is the envelope's totalRecords: the number of records
	// the listing matches across all pages; -1 when the envelope has none.
	TotalRecords int

	// bare is whether the answer was JSON without BMS's envelope.
	bare bool
}

// envelope is the V2 response envelope. The spec declares PascalCase keys;
// the wire is camelCase. encoding/json matches keys case-insensitively, so
// both decode.
type envelope struct {
	Success      *bool           `json:"Success"`
	Error        *ErrorInfo      `json:"Error"`
	Result       json.RawMessage `json:"Result"`
	TotalRecords *int            `json:"TotalRecords"`
}

// ErrorInfo is the envelope's error object (ErrorInfo in the spec; the
// stack trace the spec spells StackStrace is never decoded).
type ErrorInfo struct {
	Code      int      `json:"Code"`
	Message   string   `json:"Message"`
	Details   string   `json:"Details"`
	SubErrors []string `json:"SubErrors"`
}

// isEnvelope reports whether a JSON object is an envelope (it has a
// success or result key in any casing) rather than a bare DTO, as the spec
// declares for GET /v2/crm/accounts/summary/{id}.
func isEnvelope(body []byte) bool {
	var keys map[string]json.RawMessage
	if json.Unmarshal(body, &keys) != nil {
		return false
	}
	for k := range keys {
		if strings.EqualFold(k, "success") || strings.EqualFold(k, "result") {
			return true
		}
	}
	return false
}

// Do sends req and decodes the envelope's result into v (when v is not
// nil). It waits for the hourly limiter, adds the bearer token
// (authenticating or refreshing first when needed), retries idempotent
// requests, re-authenticates once after a 401, and turns an error status or
// a success:false envelope into an error (see CheckResponse). A 403 that
// does not speak of the credentials (psa.ErrForbidden) re-authenticates
// too, unless the token is known good: a request succeeded with it, or it
// was signed in for a 403 (that request's or another's, sent at the same
// time). A pass that BMS refuses some accounts so signs in once at most.
//
// A request that creates something (a POST that is not a search) is never
// re-sent when it may have been applied: a network error after sending it,
// or a 5xx answer, returns an error matching psa.ErrOutcomeUnknown. It is
// re-sent only when BMS surely did not process it: the connection could not
// be made, or the answer was 401 or 429.
//
// A request that BMS processed at no attempt (each was answered 429,
// refused by the hourly limiter before it was sent, or could not be sent)
// fails with a *rest.UnprocessedError: a write that failed so was not
// applied.
//
// Each attempt of a write, the first and every retry, is sent only if
// ctx's write gate (psa.WithWriteGate) lets it through; a refused one is
// not sent and ends the call.
func (c *Client) Do(ctx context.Context, req *http.Request, v any) (*Response, error) {
	idempotent := isIdempotent(req)
	reauthed := false
	// processed is whether an attempt may have been processed.
	processed := false
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, req, v, true)
		used := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		if err == nil {
			c.tokenGood(used, true)
			return resp, nil
		}
		var wr *rest.WriteRefusedError
		if errors.As(err, &wr) {
			return resp, rest.Unprocessed(fmt.Errorf("kaseyabms: %s %s: %w", req.Method, rest.RedactURL(req.URL), err), processed)
		}
		var se *signInError
		if errors.As(err, &se) {
			// The request was not sent: the sign-in before it failed,
			// after retries of its own. Its answer is not this
			// request's, so a create it failed was not applied.
			return resp, rest.Unprocessed(se.err, processed)
		}
		var de *decodeError
		if errors.As(err, &de) {
			if !idempotent {
				// BMS answered 2xx, so the line was most likely posted;
				// only its answer is unreadable. Never post it again.
				return resp, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: de.err}
			}
			return resp, de.err
		}
		if ctx.Err() != nil {
			var te *rest.TransportError
			if !idempotent && errors.As(err, &te) && !te.NotSent {
				return resp, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: ctx.Err()}
			}
			return resp, ctx.Err()
		}
		forbidden := errors.Is(err, psa.ErrForbidden)
		if forbidden && reauthed {
			// Refused with a token just signed in for it: the refusal is
			// the request's (an account the API user may not see), not
			// the token's.
			c.tokenGood(used, true)
		}
		if errors.Is(err, psa.ErrUnauthorized) && !reauthed && !errors.Is(err, errAuthFailed) && (!forbidden || !c.tokenGood(used, false)) {
			// The token was refused (expired early or revoked): a 401 was
			// not processed, so any method may be re-sent once. A 403
			// that does not speak of the credentials may be the token's
			// too, unless the token is known good: each 403 of a pass
			// refused some accounts would otherwise cost a sign-in.
			reauthed = true
			c.dropToken(used, forbidden)
			if req, err = rewind(req); err != nil {
				return resp, err
			}
			attempt--
			continue
		}
		processed = processed || !rest.NotProcessed(err)
		retry, wait, outErr := c.classify(req, err, idempotent)
		if !retry || attempt >= c.maxRetries {
			return resp, rest.Unprocessed(outErr, processed)
		}
		d := c.backoff.Wait(attempt, wait)
		c.logger.Warn("Retrying Kaseya BMS request", "method", req.Method, "path", req.URL.Path, "attempt", attempt+1, "wait", d, "err", err)
		if serr := c.sleep(ctx, d); serr != nil {
			return resp, serr
		}
		if req, err = rewind(req); err != nil {
			return resp, err
		}
	}
}

// throttled turns BMS's refusal of a call for its limit (a 429 without a
// short Retry-After, or "API call limit exceeded") into a refusal of every
// further call to the endpoint, without a retry: BMS's only documented
// limit is the hourly one per endpoint, so retrying within minutes only
// spends time (and, in a pass of many writes, many refused requests). A 429
// that names a short wait is a passing throttle and is retried after it.
// Other errors pass through.
func (c *Client) throttled(endpoint string, err error, retryAfterSent bool) error {
	var rl *psa.RateLimitError
	if !errors.As(err, &rl) {
		return err
	}
	if retryAfterSent && !rl.Hourly && rl.RetryAfter <= rest.MaxRetryAfter {
		return err
	}
	until, warn := c.limiter.refused(endpoint, rl.RetryAfter)
	if warn {
		c.logger.Warn("Kaseya BMS asked to wait longer than its hourly limit needs; calls to the endpoint are held for the hour only",
			"endpoint", endpoint, "retry_after", rl.RetryAfter, "until", until.UTC().Format(time.RFC3339))
	}
	msg := fmt.Sprintf("Kaseya BMS refused a call to %s for its limit of %d calls per hour; no more calls go there until %s",
		endpoint, c.limiter.limit, until.UTC().Format(time.RFC3339))
	if rl.RetryAfter > c.limiter.window {
		msg += fmt.Sprintf(" (it asked to wait %s, longer than its hourly limit needs)", rl.RetryAfter)
	}
	if rl.Message != "" {
		msg += " (" + rl.Message + ")"
	}
	return &psa.RateLimitError{System: psa.SystemKaseyaBMS, RetryAfter: until.Sub(c.limiter.now()), Hourly: true, Message: msg}
}

// EndpointBudgets returns, for every endpoint called (or refused) in the
// rolling hour, the calls left of its hourly limit, by endpoint template
// such as "/v2/finance/contracts/{id}/services". The counts are this
// client's, or the shared CallStore's (WithCallStore).
func (c *Client) EndpointBudgets() map[string]psa.Budget { return c.limiter.budgets() }

// decodeError is a 2xx answer whose body could not be decoded. Do turns it
// into an OutcomeUnknownError for a create: the server accepted the request.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// signInError is the failure of the sign-in that send made before sending
// a request, which then was not sent. Do returns its err.
type signInError struct{ err error }

func (e *signInError) Error() string { return e.err.Error() }
func (e *signInError) Unwrap() error { return e.err }

// send sends req once: limiter, token, round trip, envelope. An answer
// that is not BMS's (not JSON, or JSON of another kind than the answer)
// is a decodeError of a *psa.NotAPIError. A write is let through by ctx's
// write gate (psa.WithWriteGate) right before it is sent.
func (c *Client) send(ctx context.Context, req *http.Request, v any, auth bool) (*Response, error) {
	endpoint := endpointKey(req.URL.Path, c.baseURL.Path)
	write := !isIdempotent(req) || isWriteMethod(req.Method)
	if write {
		// Asked before the call is counted against the endpoint's
		// hourly limit too: a refused write costs none of it.
		if err := rest.GateWrite(ctx); err != nil {
			return nil, err
		}
	}
	at, err := c.limiter.take(endpoint)
	if err != nil {
		return nil, err
	}
	// A call counted and then not sent (the sign-in failed, the wait for
	// a slot ended, the write gate refused it after that wait) is given
	// back: BMS never got it, and the hour's budget is not spent on it.
	sent := false
	defer func() {
		if !sent {
			c.limiter.giveBack(endpoint, at)
		}
	}()
	if auth {
		tok, err := c.accessToken(ctx)
		if err != nil {
			return nil, &signInError{err: err}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	release, err := rest.Acquire(ctx, c.sem)
	if err != nil {
		return nil, err
	}
	defer release()
	if write {
		// Asked again after the sign-in and the wait for a slot, which
		// can be long.
		if err := rest.GateWrite(ctx); err != nil {
			return nil, err
		}
	}
	sent = true
	hr, err := c.client.Do(req)
	if err != nil {
		return nil, rest.NewTransportError(err)
	}
	defer hr.Body.Close()
	// The Response keeps no credentials: see redact.Redactor.Response.
	resp := &Response{Response: c.redact.Response(hr), TotalRecords: -1}
	if err := rest.ReportRateLimit(c.rateLimited, checkResponse(hr, c.redact)); err != nil {
		return resp, c.throttled(endpoint, err, hr.Header.Get("Retry-After") != "")
	}
	body, err := rest.ReadBody(hr)
	if err != nil {
		// The response was lost half way: the request was processed.
		return resp, &rest.TransportError{Err: err}
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return resp, nil
	}
	if na := rest.NotJSON(psa.SystemKaseyaBMS, req, hr, body, c.redact); na != nil {
		return resp, &decodeError{na}
	}
	if !isEnvelope(body) {
		resp.bare = true
		if v != nil {
			if err := json.Unmarshal(body, v); err != nil {
				if rest.IsTopLevelMismatch(err) {
					return resp, &decodeError{rest.NotAPI(psa.SystemKaseyaBMS, req, hr, "JSON of another kind than the answer")}
				}
				return resp, &decodeError{fmt.Errorf("kaseyabms: %s %s: decoding response: %w", req.Method, rest.RedactURL(req.URL), err)}
			}
		}
		return resp, nil
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return resp, &decodeError{fmt.Errorf("kaseyabms: %s %s: decoding response envelope: %w", req.Method, rest.RedactURL(req.URL), err)}
	}
	if env.TotalRecords != nil {
		resp.TotalRecords = *env.TotalRecords
	}
	if env.Success != nil && !*env.Success {
		return resp, c.throttled(endpoint, rest.ReportRateLimit(c.rateLimited, newEnvelopeError(hr, env.Error, c.redact)), false)
	}
	if v != nil && len(env.Result) > 0 && !bytes.Equal(env.Result, []byte("null")) {
		if err := json.Unmarshal(env.Result, v); err != nil {
			return resp, &decodeError{fmt.Errorf("kaseyabms: %s %s: decoding result: %w", req.Method, rest.RedactURL(req.URL), err)}
		}
	}
	return resp, nil
}

// isWriteMethod reports whether a request of method changes what it names:
// PUT, PATCH, DELETE. (A POST writes unless isIdempotent says it only
// reads or signs in.)
func isWriteMethod(method string) bool {
	return method == http.MethodPut || method == http.MethodPatch || method == http.MethodDelete
}

// isIdempotent reports whether req may be sent twice with the same effect:
// reads, absolute updates, deletes, searches (POSTs that only read) and
// authentication.
func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	case http.MethodPost:
		p := strings.ToLower(strings.TrimSuffix(req.URL.Path, "/"))
		return strings.HasSuffix(p, "/search") || strings.HasSuffix(p, "/"+authenticatePath) || strings.HasSuffix(p, "/"+refreshTokenPath)
	}
	return false
}

// classify decides whether a failed attempt may be retried, how long the
// server asked to wait, and the error to return when it is not retried.
func (c *Client) classify(req *http.Request, err error, idempotent bool) (retry bool, wait time.Duration, out error) {
	var te *rest.TransportError
	if errors.As(err, &te) {
		switch {
		case idempotent, te.NotSent:
			return true, 0, fmt.Errorf("kaseyabms: %s %s: %w", req.Method, rest.RedactURL(req.URL), te.Err)
		default:
			return false, 0, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: te.Err}
		}
	}
	var rl *psa.RateLimitError
	if errors.As(err, &rl) {
		if rl.Hourly || rl.RetryAfter > rest.MaxRetryAfter {
			return false, 0, err // only time helps
		}
		// A throttled request was refused before any work, so even a create
		// may be re-sent.
		return true, rl.RetryAfter, err
	}
	var er *ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		st := er.Response.StatusCode
		serverFault := st >= 500 && st != http.StatusNotImplemented
		if idempotent {
			if !serverFault {
				return false, 0, err
			}
			// A Retry-After over the cap ends the retries, as for a 429.
			return rest.CapRetryAfter(err, rest.RetryAfter(er.Response))
		}
		if serverFault {
			return false, 0, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: err}
		}
	}
	return false, 0, err
}

// rewind returns a copy of req with a fresh body.
func rewind(req *http.Request) (*http.Request, error) {
	nr, err := rest.Rewind(req)
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: %w", err)
	}
	return nr, nil
}

// OutcomeUnknownError is returned when a request that creates something may
// or may not have been applied: the connection failed after it was sent, or
// the server answered 5xx. It matches psa.ErrOutcomeUnknown. The client
// does not re-send such a request.
type OutcomeUnknownError struct {
	Method string
	URL    string
	Err    error
}

// Error says which request may or may not have been applied.
func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("kaseyabms: %s %s: outcome unknown: %v", e.Method, e.URL, e.Err)
}

// Unwrap returns the underlying error.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is reports whether target is psa.ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == psa.ErrOutcomeUnknown }

// ListOptions are the paging parameters of GET listings.
type ListOptions struct {
	// PageSize is the number of records per page; 0 means DefaultPageSize.
	PageSize int
	// PageNumber is the page to fetch; pages count from 1, and 0 means 1.
	PageNumber int

	// exact sends PageNumber as it is, 0 included: collect's probe of an
	// endpoint whose pages may count from 0.
	exact bool
}

// pageOptions returns the ListOptions of page number page as collect asks
// for it.
func pageOptions(page, size int) ListOptions {
	return ListOptions{PageSize: size, PageNumber: page, exact: true}
}

func (o ListOptions) values(q url.Values) {
	size := o.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	n := max(o.PageNumber, 1)
	if o.exact {
		n = o.PageNumber
	}
	q.Set("PageSize", strconv.Itoa(size))
	q.Set("PageNumber", strconv.Itoa(n))
}

// errStopPaging, returned by a fetch given to collect, ends the listing
// with the records so far and no error: the caller has what it needs.
var errStopPaging = errors.New("kaseyabms: stop paging")

// collect fetches every page of the listing at endpoint (its path, such as
// "/v2/servicedesk/tickets/search", for error messages and to remember how
// it counts pages), and returns the records in order with the last page's
// Response.
//
// BMS does not document whether PageNumber counts from 0 or 1 (community
// scripts use both; the spec's example body uses 1). The reference advises
// looping until an empty page or until totalRecords records have come, so
// collect starts at 1 and stops there; when that ends short of
// totalRecords, or the listing has no totalRecords at all (the account
// lookup: whatever page 1 held, it cannot tell whether a page came
// before), it asks for page 0 once: records there that page 1 does not
// repeat are the first page of an endpoint that counts from 0. What it
// learns (pages from 0, or from 1: page 0 empty, refused or the same as
// page 1, or totalRecords reached from page 1) is kept per endpoint for
// the client's lifetime, so the probe costs one request at most once per
// endpoint.
//
// A listing that still ends with fewer records than totalRecords (a server
// that ignores PageNumber answers the first page again; records removed
// while paging) returns the records so far with an *IncompleteListError:
// callers such as FindTickets must not take a partial list for the whole.
func collect[T any](c *Client, endpoint string, fetch func(page, size int) ([]T, *Response, error)) ([]T, *Response, error) {
	first, known := c.firstPage(endpoint)
	all, last, err := walkPages(endpoint, first, fetch)
	if errors.Is(err, errStopPaging) {
		return all, last, nil
	}
	if err != nil {
		return all, last, err
	}
	total := -1
	if last != nil {
		total = last.TotalRecords
	}
	// Without totalRecords nothing shows that the walk from page 1 missed
	// a page 0: on an endpoint counting from 0, page 1 is the second page.
	complete := total >= 0 && len(all) >= total
	if !complete && !known {
		items, resp, err := fetch(0, DefaultPageSize)
		switch {
		case errors.Is(err, errStopPaging):
			return all, last, nil
		case errors.Is(err, psa.ErrValidation):
			// A server that counts from 1 may refuse page 0.
			c.pageBases.Store(endpoint, 1)
		case err != nil:
			return all, resp, err
		case len(items) == 0 || len(all) > 0 && sameRecord(items[0], all[0]):
			// Page 0 is empty, or page 1 read again.
			c.pageBases.Store(endpoint, 1)
		default:
			c.pageBases.Store(endpoint, 0)
			c.logger.Info("Kaseya BMS endpoint counts pages from 0", "endpoint", endpoint)
			all = append(items, all...)
			if last == nil {
				last = resp
			}
		}
	}
	if total >= 0 && len(all) < total {
		return all, last, &IncompleteListError{Endpoint: endpoint, Got: len(all), Total: total}
	}
	if !known && first == 1 && total > 0 && complete {
		c.pageBases.Store(endpoint, 1)
	}
	return all, last, nil
}

// walkPages fetches pages first, first+1, ... until it has TotalRecords
// records, a page is empty, a page repeats the previous page's first record
// (a server that ignores PageNumber), or (for listings without
// TotalRecords) a page is short.
func walkPages[T any](endpoint string, first int, fetch func(page, size int) ([]T, *Response, error)) ([]T, *Response, error) {
	var all []T
	var last *Response
	var prevFirst []byte
	for page := first; page < first+maxPages; page++ {
		items, resp, err := fetch(page, DefaultPageSize)
		if err != nil {
			return all, resp, err
		}
		last = resp
		if len(items) > 0 {
			head, _ := json.Marshal(items[0])
			if page > first && bytes.Equal(head, prevFirst) {
				return all, last, nil
			}
			prevFirst = head
		}
		all = append(all, items...)
		switch {
		case len(items) == 0:
			return all, last, nil
		case resp != nil && resp.TotalRecords >= 0:
			if len(all) >= resp.TotalRecords {
				return all, last, nil
			}
		case len(items) < DefaultPageSize:
			return all, last, nil
		}
	}
	return all, last, fmt.Errorf("kaseyabms: %s: more than %d pages; the server may be ignoring PageNumber", endpoint, maxPages)
}

// sameRecord reports whether a and b encode to the same JSON.
func sameRecord[T any](a, b T) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// firstPage returns the PageNumber of endpoint's first page and whether
// collect has learnt it; 1 until then.
func (c *Client) firstPage(endpoint string) (page int, known bool) {
	if v, ok := c.pageBases.Load(endpoint); ok {
		if n, ok := v.(int); ok {
			return n, true
		}
	}
	return 1, false
}
