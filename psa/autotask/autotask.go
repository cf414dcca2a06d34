package autotask

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// DefaultZoneLookupURL is the zoneInformation endpoint used to discover the
	// zone (API root) of the API user. Any zone answers for every user.
	DefaultZoneLookupURL = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"

	// DefaultUserAgent is the User-Agent sent when WithUserAgent is not used.
	DefaultUserAgent = "psa-sync"

	// MaxConcurrency is the number of requests Autotask allows in flight per
	// integration and entity endpoint (the "thread threshold"). The client
	// never exceeds it.
	MaxConcurrency = 3

	// DefaultMaxRetries is how often an idempotent request is retried when
	// WithMaxRetries is not used.
	DefaultMaxRetries = 4

	// MaxThreadWait is how long a request refused for the thread threshold
	// waits, over all its retries, for a free thread. Those retries use up
	// none of WithMaxRetries: another process of the same integration
	// code (a second psa-syncd, a sync run by hand, the provider) holds
	// the endpoint's threads while its own requests run, which a few
	// retries within seconds often cannot outlast, and a request refused
	// for it was not processed.
	MaxThreadWait = 5 * time.Minute

	// MaxPageSize is the largest MaxRecords Autotask accepts.
	MaxPageSize = 500

	// apiVersion is the version segment appended to the zone root.
	apiVersion = "V1.0/"

	// maxErrorBody bounds how much of an error response is read.
	maxErrorBody = rest.MaxErrorBody
)

// A Client talks to the Autotask REST API (version 1.0) of one tenant.
//
// A Client is safe for concurrent use. It discovers the tenant's zone lazily on
// the first request, keeps at most MaxConcurrency requests in flight per
// entity endpoint, retries idempotent requests with exponential backoff and
// full jitter, and never re-sends a request that creates an entity when its
// outcome is unknown.
type Client struct {
	client        *http.Client
	zoneLookupURL *url.URL
	creds         *credentials // a pointer, so that %v of a Client prints an address, not secrets
	redact        *redact.Redactor
	userAgent     string
	maxConc       int
	maxRetries    int
	backoff       rest.Backoff
	logger        *slog.Logger
	// rateLimited is WithRateLimitHook's function, or nil.
	rateLimited func(*psa.RateLimitError)

	// sleep waits between retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	zoneMu     sync.Mutex
	baseURL    *url.URL // zone root with the version segment, e.g. https://webservices5.autotask.net/ATServicesRest/V1.0/
	discovered bool     // baseURL came from zone discovery (and may be re-discovered after a 401)
	ci         int      // the tenant's company identifier from zone discovery; 0 when unknown

	semMu sync.Mutex
	sems  map[string]chan struct{}
	// throttles hold back the requests of an entity endpoint while
	// Autotask refuses them for its thread threshold, by entity (see
	// Client.throttle); under semMu.
	throttles map[string]*rest.Throttle
	// throttleNow is the throttles' clock; nil is time.Now. Tests stop it.
	throttleNow func() time.Time

	fieldsMu sync.Mutex
	fields   map[string][]*Field // entityInformation/fields by lower-case entity name

	threshold thresholdTracker

	common service // reused by every service instead of allocating one each

	// Services for the parts of the API psa-sync uses.
	Companies                  *CompaniesService
	Contracts                  *ContractsService
	Services                   *ServicesService
	ContractServices           *ContractServicesService
	ContractServiceUnits       *ContractServiceUnitsService
	ContractServiceAdjustments *ContractServiceAdjustmentsService
	BillingCodes               *BillingCodesService
	EntityInformation          *EntityInformationService
	Tickets                    *TicketsService
}

type service struct {
	client *Client
}

// credentials are the API user's credentials. They are only ever written to
// request headers.
type credentials struct {
	username        string
	secret          string
	integrationCode string
	impersonation   int64 // 0 = none
}

// String keeps the credentials out of logs and error messages.
func (*credentials) String() string { return "autotask credentials (redacted)" }

// GoString keeps the credentials out of %#v output.
func (c *credentials) GoString() string { return c.String() }

// An Option configures a Client in NewClient.
type Option func(*Client) error

// WithHTTPClient sets the HTTP client that sends every request. The default is
// a client with a 60 second timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("autotask: nil HTTP client")
		}
		c.client = hc
		return nil
	}
}

// WithBaseURL sets the zone root, such as
// https://webservices5.autotask.net/ATServicesRest/, and skips zone discovery.
// The client appends the version segment "V1.0/". By default the zone is
// discovered on first use through the zoneInformation endpoint.
func WithBaseURL(rawURL string) Option {
	return func(c *Client) error {
		u, err := parseRoot(rawURL)
		if err != nil {
			return fmt.Errorf("autotask: base URL: %w", err)
		}
		c.baseURL = u
		c.discovered = false
		return nil
	}
}

// WithZoneLookupURL sets the zoneInformation endpoint used for zone discovery.
// The default is DefaultZoneLookupURL. It is ignored when WithBaseURL is used.
func WithZoneLookupURL(rawURL string) Option {
	return func(c *Client) error {
		u, err := url.Parse(rawURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("autotask: zone lookup URL %q is not an absolute URL", redact.URL(rawURL))
		}
		c.zoneLookupURL = u
		return nil
	}
}

// WithCredentials sets the API-only user's name (an email address), its
// secret and the API integration code (tracking identifier). They are
// required; there is no default.
func WithCredentials(username, secret, integrationCode string) Option {
	return func(c *Client) error {
		c.creds.username = username
		c.creds.secret = secret
		c.creds.integrationCode = integrationCode
		return nil
	}
}

// WithImpersonation makes the client act as the given resource on requests
// that change data: the ImpersonationResourceId header goes on creates,
// PATCHes and PUTs, never on reads (GETs, and the POSTs to query,
// query/count and query/next). The header also gives the request the
// resource's permissions, and a security level that may not see an entity
// gets nothing, not an error, so reads impersonating a technician would
// miss contract lines, contracts or tickets. By default no impersonation
// header is sent.
func WithImpersonation(resourceID int64) Option {
	return func(c *Client) error {
		if resourceID <= 0 {
			return fmt.Errorf("autotask: impersonation resource id must be positive, got %d", resourceID)
		}
		c.creds.impersonation = resourceID
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

// WithMaxConcurrency sets how many requests may be in flight per entity
// endpoint. The default, and the maximum, is MaxConcurrency (Autotask's thread
// threshold); larger values are capped at it.
func WithMaxConcurrency(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("autotask: max concurrency must be at least 1, got %d", n)
		}
		c.maxConc = min(n, MaxConcurrency)
		return nil
	}
}

// WithMaxRetries sets how often an idempotent request (a GET, a query, a
// PATCH) is retried after a throttling response, a server timeout or a
// network error. Zero disables retries. The default is DefaultMaxRetries.
// Refusals for the thread threshold, retried for any request, use up none
// of them (see MaxThreadWait) unless retries are disabled.
func WithMaxRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("autotask: max retries must not be negative, got %d", n)
		}
		c.maxRetries = n
		return nil
	}
}

// WithBackoff sets the exponential backoff between retries: the n-th retry
// waits a random time up to min(max, base·2ⁿ), or longer when the server sent
// Retry-After (a Retry-After over rest.MaxRetryAfter, five minutes, ends the
// retries with an error instead). The defaults are 500ms and 30s.
func WithBackoff(base, maxWait time.Duration) Option {
	return func(c *Client) error {
		b, err := rest.NewBackoff(base, maxWait)
		if err != nil {
			return fmt.Errorf("autotask: %w", err)
		}
		c.backoff = b
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

// WithLogger sets the logger for retries and zone discovery. The default
// discards everything. Credentials are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l != nil {
			c.logger = l
		}
		return nil
	}
}

// NewClient returns a client configured by opts. It does no network I/O:
// the zone is discovered on first use unless WithBaseURL is given.
func NewClient(opts ...Option) (*Client, error) {
	lookup, _ := url.Parse(DefaultZoneLookupURL)
	c := &Client{
		client:        &http.Client{Timeout: 60 * time.Second},
		zoneLookupURL: lookup,
		creds:         &credentials{},
		userAgent:     DefaultUserAgent,
		maxConc:       MaxConcurrency,
		maxRetries:    DefaultMaxRetries,
		backoff:       rest.DefaultBackoff,
		logger:        slog.New(slog.DiscardHandler),
		sleep:         rest.SleepContext,
		sems:          make(map[string]chan struct{}),
		throttles:     make(map[string]*rest.Throttle),
		fields:        make(map[string][]*Field),
	}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	var missing []string
	if c.creds.username == "" {
		missing = append(missing, "username")
	}
	if c.creds.secret == "" {
		missing = append(missing, "secret")
	}
	if c.creds.integrationCode == "" {
		missing = append(missing, "integration code")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("autotask: missing credentials: %s", strings.Join(missing, ", "))
	}
	// Credentials go in headers and bodies that Go's client would carry
	// to the host a redirect names.
	c.client = redact.RedirectsWithoutCredentials(c.client)
	c.redact = redact.New(c.creds.secret, c.creds.integrationCode)
	c.common.client = c
	c.Companies = (*CompaniesService)(&c.common)
	c.Contracts = (*ContractsService)(&c.common)
	c.Services = (*ServicesService)(&c.common)
	c.ContractServices = (*ContractServicesService)(&c.common)
	c.ContractServiceUnits = (*ContractServiceUnitsService)(&c.common)
	c.ContractServiceAdjustments = (*ContractServiceAdjustmentsService)(&c.common)
	c.BillingCodes = (*BillingCodesService)(&c.common)
	c.EntityInformation = (*EntityInformationService)(&c.common)
	c.Tickets = (*TicketsService)(&c.common)
	return c, nil
}

// parseRoot parses a zone root and returns it with the version segment.
func parseRoot(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", redact.URL(rawURL), redact.URLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", redact.URL(rawURL))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment = "", ""
	u.RawPath = ""
	return u.JoinPath(apiVersion), nil
}

// Zone is the answer of the zoneInformation endpoint.
type Zone struct {
	ZoneName string `json:"zoneName"`
	URL      string `json:"url"`
	WebURL   string `json:"webUrl"`
	CI       int    `json:"ci"`
}

// BaseURL returns the API root the client sends requests to (the zone root
// followed by "V1.0/"), discovering the zone first if needed.
func (c *Client) BaseURL(ctx context.Context) (*url.URL, error) {
	c.zoneMu.Lock()
	defer c.zoneMu.Unlock()
	if c.baseURL != nil {
		u := *c.baseURL
		return &u, nil
	}
	if err := c.discoverLocked(ctx); err != nil {
		return nil, err
	}
	u := *c.baseURL
	return &u, nil
}

// MaxConcurrency returns how many requests the client keeps in flight per
// entity endpoint (see WithMaxConcurrency).
func (c *Client) MaxConcurrency() int { return c.maxConc }

// Host returns the host of the zone (for example webservices5.autotask.net),
// or "" when the zone has not been discovered yet.
func (c *Client) Host() string {
	c.zoneMu.Lock()
	defer c.zoneMu.Unlock()
	if c.baseURL == nil {
		return ""
	}
	return c.baseURL.Host
}

// CI returns the tenant's company identifier ("ci") that zone discovery
// reported, or 0 when the zone has not been discovered (or was configured
// with WithBaseURL). Zone hosts serve many tenants; the CI tells them apart.
func (c *Client) CI() int {
	c.zoneMu.Lock()
	defer c.zoneMu.Unlock()
	return c.ci
}

// rediscover fetches the zone again after a 401 when it was discovered (the
// tenant may have moved), and reports whether the root changed from stale.
func (c *Client) rediscover(ctx context.Context, stale *url.URL) (bool, error) {
	c.zoneMu.Lock()
	defer c.zoneMu.Unlock()
	if !c.discovered {
		return false, nil
	}
	if c.baseURL.String() != stale.String() {
		return true, nil // another request already moved it
	}
	if err := c.discoverLocked(ctx); err != nil {
		return false, err
	}
	return c.baseURL.String() != stale.String(), nil
}

// discoverLocked looks the zone up. The caller holds zoneMu. The lookup
// carries no credentials and is not subject to the thread limit.
func (c *Client) discoverLocked(ctx context.Context) error {
	u := *c.zoneLookupURL
	q := u.Query()
	q.Set("user", c.creds.username)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("autotask: zone lookup: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("autotask: zone lookup: %w", err)
	}
	defer resp.Body.Close()
	if err := rest.ReportRateLimit(c.rateLimited, checkResponse(resp, c.redact)); err != nil {
		var er *ErrorResponse
		switch {
		case errors.As(err, &er) && errors.Is(er, psa.ErrValidation):
			// Autotask answers a blank or unknown user with a 500 and
			// a message ("Zone information could not be determined"):
			// the user name is refused, whatever request needed the
			// zone.
			er.wrapped = psa.ErrUnauthorized
		case er != nil && errors.Is(er, psa.ErrNotFound):
			// The lookup URL is wrong; the entity the request was for
			// is not known to be missing.
			er.wrapped = nil
		}
		return fmt.Errorf("autotask: zone lookup for user %q: %w", c.creds.username, err)
	}
	body, err := redact.DecodedBody(resp)
	if err != nil {
		return fmt.Errorf("autotask: zone lookup: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(body, maxErrorBody))
	if err != nil {
		return fmt.Errorf("autotask: zone lookup: %w", rest.NewTransportError(err))
	}
	if na := rest.NotJSON(psa.SystemAutotask, req, resp, raw, c.redact); na != nil {
		// A proxy's sign-in page in front of the lookup URL.
		return na
	}
	var z Zone
	if err := json.Unmarshal(raw, &z); err != nil {
		if rest.IsTopLevelMismatch(err) {
			return rest.NotAPI(psa.SystemAutotask, req, resp, "JSON of another kind than the answer")
		}
		return fmt.Errorf("autotask: zone lookup: decoding response: %w", err)
	}
	if z.URL == "" && z.ZoneName == "" {
		return rest.NotAPIShape(psa.SystemAutotask, req, resp, `"url"`)
	}
	root, err := parseRoot(z.URL)
	if err != nil {
		return fmt.Errorf("autotask: zone lookup returned an unusable url: %s", c.redact.String(err.Error()))
	}
	if c.baseURL == nil || c.baseURL.String() != root.String() {
		c.logger.Info("Discovered Autotask zone", "zone", c.redact.String(z.ZoneName), "url", c.redact.String(z.URL))
	}
	c.baseURL = root
	c.discovered = true
	c.ci = z.CI
	return nil
}

// NewRequest builds a request for the API. A relative urlStr (such as
// "Companies/query") is resolved against the zone's API root, discovering the
// zone if needed; an absolute one (a nextPageUrl) must have the zone's
// origin, so that credentials are never sent anywhere else. body, if not nil,
// is sent as JSON. NewRequest sets the authentication headers.
func (c *Client) NewRequest(ctx context.Context, method, urlStr string, body any) (*http.Request, error) {
	base, err := c.BaseURL(ctx)
	if err != nil {
		return nil, err
	}
	u, err := base.Parse(urlStr)
	if err != nil {
		return nil, fmt.Errorf("autotask: bad request URL: %w", err)
	}
	if !sameOrigin(u, base) {
		return nil, fmt.Errorf("autotask: refusing to send credentials to %s://%s, which is not the zone %s://%s", u.Scheme, u.Host, base.Scheme, base.Host)
	}
	var buf []byte
	if body != nil {
		buf, err = json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("autotask: encoding request body: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(buf))
	if err != nil {
		return nil, fmt.Errorf("autotask: %w", err)
	}
	if body == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("ApiIntegrationCode", c.creds.integrationCode)
	req.Header.Set("UserName", c.creds.username)
	req.Header.Set("Secret", c.creds.secret)
	if c.creds.impersonation != 0 && !isRead(method, u.Path) {
		// Impersonation attributes what a write creates or changes. On a
		// read it would apply the resource's visibility, and a restricted
		// security level reads nothing rather than an error.
		req.Header.Set("ImpersonationResourceId", strconv.FormatInt(c.creds.impersonation, 10))
	}
	return req, nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

// PageDetails is the paging state of a query response.
type PageDetails struct {
	Count        int    `json:"count"`
	RequestCount int    `json:"requestCount"`
	PrevPageURL  string `json:"prevPageUrl"`
	NextPageURL  string `json:"nextPageUrl"`
}

// Response wraps an HTTP response from Autotask with the paging state of a
// query response (nil for other responses).
//
// The embedded *http.Response keeps the status and the headers, but
// neither the body, which has been read, nor the credentials: its Request
// holds only the method and the URL (see redact.Redactor.Response).
type Response struct {
	*http.Response

	// PageDetails is the pageDetails object of a query response.
	PageDetails *PageDetails
	// NextPageURL is PageDetails.NextPageURL, or "" on the last page.
	NextPageURL string
}

// setPage sets the paging state from body, a successful response's body.
// v is what Do decoded body into, or nil: when it holds the raw
// pageDetails object (a query's listResponse), only that is read, not the
// whole body again.
func (r *Response) setPage(body []byte, v any) {
	var env struct {
		PageDetails *PageDetails `json:"pageDetails"`
	}
	if p, ok := v.(paged); ok {
		raw, found := p.pageDetails()
		if !found || json.Unmarshal(raw, &env.PageDetails) != nil {
			return
		}
	} else if !bytes.Contains(body, []byte(`"pageDetails"`)) || json.Unmarshal(body, &env) != nil {
		return
	}
	if env.PageDetails != nil {
		r.PageDetails = env.PageDetails
		r.NextPageURL = env.PageDetails.NextPageURL
	}
}

// isIdempotent reports whether req may be sent twice with the same effect.
// Queries are POSTs but read-only; PATCH sets absolute values.
func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodPatch, http.MethodPut:
		return true
	}
	return isRead(req.Method, req.URL.Path)
}

// isRead reports whether a request to path only reads: a GET or HEAD, or a
// POST of a query (query, query/count, query/next).
func isRead(method, path string) bool {
	switch method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodPost:
		p := strings.ToLower(strings.TrimSuffix(path, "/"))
		return strings.HasSuffix(p, "/query") || strings.HasSuffix(p, "/query/count") || strings.HasSuffix(p, "/query/next")
	}
	return false
}

// entityKeys returns the entity endpoints a request counts against for the
// thread limit. Autotask does not document whether a parent-scoped URL such
// as Contracts/1/Services counts against Contracts or ContractServices, so it
// counts against both; the parent is always acquired first, so two requests
// can never wait for each other.
func (c *Client) entityKeys(u *url.URL) []string {
	p := u.Path
	if i := strings.Index(strings.ToLower(p), "/"+strings.ToLower(apiVersion)); i >= 0 {
		p = p[i+len(apiVersion)+1:]
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) == 0 || segs[0] == "" {
		return []string{"-"}
	}
	keys := []string{strings.ToLower(segs[0])}
	if len(segs) >= 3 && isID(segs[1]) {
		child := segs[2]
		if full, ok := childEntities[strings.ToLower(segs[0]+"/"+child)]; ok {
			child = full
		}
		keys = append(keys, strings.ToLower(child))
	}
	return keys
}

// childEntities maps parent-scoped child names to their root entities.
var childEntities = map[string]string{
	"contracts/services":           "ContractServices",
	"contracts/serviceunits":       "ContractServiceUnits",
	"contracts/serviceadjustments": "ContractServiceAdjustments",
	"tickets/notes":                "TicketNotes",
}

func isID(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

func (c *Client) semaphore(key string) chan struct{} {
	c.semMu.Lock()
	defer c.semMu.Unlock()
	s, ok := c.sems[key]
	if !ok {
		s = make(chan struct{}, c.maxConc)
		c.sems[key] = s
	}
	return s
}

// endpointThrottles returns a request's standing with the throttles of the entity
// endpoints it counts against (entityKeys): both the parent's and the
// child's for a parent-scoped URL such as Contracts/1/Services, since
// Autotask documents its thread limit per entity endpoint without saying
// which one such a URL counts against, nor does its refusal say which
// endpoint's threads were busy. Keyed on the child alone, a refused
// Contracts/1/Services held back no Contracts request, and the reverse.
func (c *Client) endpointThrottles(keys []string) *endpointThrottles {
	c.semMu.Lock()
	defer c.semMu.Unlock()
	e := &endpointThrottles{ths: make([]*rest.Throttle, len(keys)), tks: make([]rest.Ticket, len(keys))}
	for i, key := range keys {
		t, ok := c.throttles[key]
		if !ok {
			t = &rest.Throttle{MaxHeld: MaxThreadWait, Now: c.throttleNow}
			c.throttles[key] = t
		}
		e.ths[i] = t
	}
	return e
}

// endpointThrottles is a request's standing with the throttles of its
// entity endpoints, entered in the order of entityKeys (the parent first),
// as acquire takes their slots, so that two requests never wait for each
// other.
type endpointThrottles struct {
	ths []*rest.Throttle
	tks []rest.Ticket
}

// enter returns once every throttle lets the request be sent (see
// rest.Throttle.Enter); when one does not, it gives up the probe roles it
// took in the others.
func (e *endpointThrottles) enter(ctx context.Context, sleep func(context.Context, time.Duration) error) error {
	for i, th := range e.ths {
		if err := th.Enter(ctx, &e.tks[i], sleep); err != nil {
			e.abandon()
			return err
		}
	}
	return nil
}

// abandon is rest.Throttle.Abandon on every throttle.
func (e *endpointThrottles) abandon() {
	for i, th := range e.ths {
		th.Abandon(&e.tks[i])
	}
}

// answered is rest.Throttle.Answered on every throttle; started is whether
// the refusal began a throttle of any of them.
func (e *endpointThrottles) answered(status int, rl *psa.RateLimitError, next func(n int) time.Duration) (started bool) {
	for i, th := range e.ths {
		if th.Answered(&e.tks[i], status, rl, next) {
			started = true
		}
	}
	return started
}

// held is how long the request has been held back or refused by its
// throttles: the longest of them (see rest.Throttle.Held).
func (e *endpointThrottles) held() time.Duration {
	var d time.Duration
	for i, th := range e.ths {
		d = max(d, th.Held(&e.tks[i]))
	}
	return d
}

// acquire takes a slot for every key in order and returns the release func.
func (c *Client) acquire(ctx context.Context, keys []string) (func(), error) {
	sems := make([]chan struct{}, len(keys))
	for i, k := range keys {
		sems[i] = c.semaphore(k)
	}
	return rest.Acquire(ctx, sems...)
}

// Do sends req and decodes a successful JSON response into v (when v is not
// nil). It waits for a slot under the per-entity concurrency limit, retries
// idempotent requests, and maps error responses with CheckResponse.
//
// A request that creates an entity (a POST that is not a query) is never
// re-sent when it may have been applied: a network error after sending it,
// or a 5xx response without validation messages, returns an error matching
// psa.ErrOutcomeUnknown. It is retried only when Autotask surely did not
// process it: the connection could not be made, or the thread threshold
// rejected it (Autotask refuses those before doing any work).
//
// A request that Autotask processed at no attempt (each was throttled, or
// could not be sent) fails with a *rest.UnprocessedError: a write that
// failed so was not applied.
//
// A request refused for the thread threshold is retried until it has
// waited MaxThreadWait for a free thread, without using up the retries of
// WithMaxRetries (unless they are disabled). After such a refusal every
// request of the client to that entity endpoint waits for the endpoint's
// throttle (see rest.Throttle), its retries included, rather than on its
// own backoff: one request at a time is sent, after the wait, until
// Autotask takes one.
//
// Each attempt of a write, the first and every retry, is sent only if
// ctx's write gate (psa.WithWriteGate) lets it through; a refused one is
// not sent and ends the call.
func (c *Client) Do(ctx context.Context, req *http.Request, v any) (*Response, error) {
	idempotent := isIdempotent(req)
	rediscovered := false
	// processed is whether an attempt may have been processed.
	processed := false
	// retries counts the retries that use up WithMaxRetries; those of a
	// refusal for the thread threshold do not, and are bounded by how long
	// its endpoints' throttles held the request (th).
	retries := 0
	th := c.endpointThrottles(c.entityKeys(req.URL))
	for attempt := 0; ; attempt++ {
		resp, body, err := c.roundTrip(ctx, req, th)
		if err == nil {
			return resp, decodeBody(req, resp, body, v, idempotent, c.redact)
		}
		var wr *rest.WriteRefusedError
		if errors.As(err, &wr) {
			return resp, rest.Unprocessed(fmt.Errorf("autotask: %s %s: %w", req.Method, rest.RedactURL(req.URL), err), processed)
		}
		var held *rest.HeldTooLongError
		if errors.As(err, &held) {
			return resp, rest.Unprocessed(held.Err, processed)
		}
		if ctx.Err() != nil {
			var te *rest.TransportError
			if !idempotent && errors.As(err, &te) && !te.NotSent {
				// Canceled after sending: the create may have been applied.
				return resp, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: ctx.Err()}
			}
			return resp, ctx.Err()
		}
		if resp != nil && resp.StatusCode == http.StatusUnauthorized && !rediscovered {
			// A 401 was not processed, so any method may be re-sent.
			rediscovered = true
			if moved, derr := c.rebase(ctx, req); derr == nil && moved {
				attempt--
				continue
			}
		}
		processed = processed || !rest.NotProcessed(err)
		retry, wait, outErr := c.classify(req, err, idempotent)
		thread := retry && c.maxRetries > 0 && isThreadThreshold(err)
		switch {
		case thread && th.held() >= MaxThreadWait:
			return resp, rest.Unprocessed(rest.WaitedFor(outErr, th.held()), processed)
		case !retry, !thread && retries >= c.maxRetries:
			return resp, rest.Unprocessed(outErr, processed)
		case !thread:
			retries++
		}
		if thread {
			// The endpoint's throttle holds the next attempt back, as
			// every other request to it, for the wait (see rest.Throttle).
			c.logger.Warn("Retrying Autotask request", "method", req.Method, "path", req.URL.Path, "attempt", attempt+1, "err", err)
		} else {
			d := c.backoff.Wait(attempt, wait)
			c.logger.Warn("Retrying Autotask request", "method", req.Method, "path", req.URL.Path, "attempt", attempt+1, "wait", d, "err", err)
			if serr := c.sleep(ctx, d); serr != nil {
				return resp, serr
			}
		}
		if req, err = rewind(req); err != nil {
			return resp, err
		}
	}
}

// decodeBody reads the body of a successful response into v (when v is not nil
// and the body is not empty) and the paging state into resp. An answer
// that is not Autotask's (not JSON, JSON of another kind than the answer,
// or one without what the answer must hold: see missingKeyError) is a
// *psa.NotAPIError; for a create, wrapped in the OutcomeUnknownError.
func decodeBody(req *http.Request, resp *Response, body []byte, v any, idempotent bool, red *redact.Redactor) error {
	if v == nil || len(bytes.TrimSpace(body)) == 0 {
		resp.setPage(body, nil)
		return nil
	}
	var err error
	if na := rest.NotJSON(psa.SystemAutotask, req, resp.Response, body, red); na != nil {
		err = na
	} else {
		if f, ok := v.(fastDecoder); !ok || !f.decodeFast(body) {
			err = json.Unmarshal(body, v)
		}
		if r, ok := v.(rowDecoder); ok && err != nil && r.decodeRows(body) {
			err = nil
		}
		if rest.IsTopLevelMismatch(err) {
			err = rest.NotAPI(psa.SystemAutotask, req, resp.Response, "JSON of another kind than the answer")
		}
		if val, ok := v.(validator); ok && err == nil {
			err = val.validate()
		}
		var mk *missingKeyError
		if errors.As(err, &mk) {
			err = rest.NotAPIShape(psa.SystemAutotask, req, resp.Response, mk.key)
		}
	}
	if err == nil {
		resp.setPage(body, v)
		return nil
	}
	resp.setPage(body, nil)
	var na *psa.NotAPIError
	if !errors.As(err, &na) {
		err = fmt.Errorf("decoding response: %w", err)
	}
	if !idempotent {
		// Autotask answered 2xx, so the create was most likely
		// applied; only its answer is unreadable.
		return &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: err}
	}
	if na != nil {
		return na
	}
	return fmt.Errorf("autotask: %s %s: %w", req.Method, rest.RedactURL(req.URL), err)
}

// missingKeyError is a validator's error for a JSON answer without what
// the answer must hold, key (such as `"queryCount"`): decodeBody makes it
// a *psa.NotAPIError.
type missingKeyError struct{ key string }

func (e *missingKeyError) Error() string { return "the answer holds no " + e.key }

// roundTrip sends req once, when its endpoints' throttles th let it (see
// rest.Throttle) and within the concurrency limit, and reads the body. A
// write is first let through by ctx's write gate (psa.WithWriteGate).
func (c *Client) roundTrip(ctx context.Context, req *http.Request, th *endpointThrottles) (*Response, []byte, error) {
	if err := th.enter(ctx, c.sleep); err != nil {
		return nil, nil, err
	}
	release, err := c.acquire(ctx, c.entityKeys(req.URL))
	if err != nil {
		th.abandon()
		return nil, nil, err
	}
	defer release()
	if !isRead(req.Method, req.URL.Path) {
		// Asked after the waits for the throttle and a slot, which can be
		// long.
		if err := rest.GateWrite(ctx); err != nil {
			th.abandon()
			return nil, nil, err
		}
	}
	hr, err := c.client.Do(req)
	if err != nil {
		th.abandon()
		return nil, nil, rest.NewTransportError(err)
	}
	defer hr.Body.Close()
	c.threshold.count() // every answered request counts against the hourly budget
	// The Response keeps no credentials: see redact.Redactor.Response.
	resp := &Response{Response: c.redact.Response(hr)}
	err = rest.ReportRateLimit(c.rateLimited, checkResponse(hr, c.redact))
	// Only the thread threshold holds the endpoint's other requests back:
	// an hourly refusal, or a Retry-After over the cap, ends its request.
	var rl *psa.RateLimitError
	if isThreadThreshold(err) {
		errors.As(err, &rl)
	}
	if th.answered(hr.StatusCode, rl, c.nextThrottleWait) {
		c.logger.Warn("Autotask is refusing requests for its thread threshold: the client sends one request at a time to the endpoint, after a wait, until Autotask takes one",
			"method", req.Method, "path", req.URL.Path, "retry_after", rl.RetryAfter)
	}
	if err != nil {
		return resp, nil, err
	}
	body, err := rest.ReadBody(hr)
	if err != nil {
		// The response was lost half way: the request was processed.
		return resp, nil, &rest.TransportError{Err: err}
	}
	return resp, body, nil
}

// nextThrottleWait is a throttle's wait after n+1 refusals in a row
// without Retry-After: the client's backoff.
func (c *Client) nextThrottleWait(n int) time.Duration { return c.backoff.Wait(n, 0) }

// rebase re-discovers the zone after a 401 and points req at the new zone.
func (c *Client) rebase(ctx context.Context, req *http.Request) (bool, error) {
	c.zoneMu.Lock()
	stale := c.baseURL
	c.zoneMu.Unlock()
	if stale == nil || !strings.HasPrefix(req.URL.String(), stale.String()) {
		return false, nil
	}
	moved, err := c.rediscover(ctx, stale)
	if err != nil || !moved {
		return false, err
	}
	base, err := c.BaseURL(ctx)
	if err != nil {
		return false, err
	}
	u, err := url.Parse(base.String() + strings.TrimPrefix(req.URL.String(), stale.String()))
	if err != nil {
		return false, err
	}
	nr, err := rewind(req)
	if err != nil {
		return false, err
	}
	*req = *nr
	req.URL, req.Host = u, ""
	return true, nil
}

// rewind returns a copy of req with a fresh body.
func rewind(req *http.Request) (*http.Request, error) {
	nr, err := rest.Rewind(req)
	if err != nil {
		return nil, fmt.Errorf("autotask: %w", err)
	}
	return nr, nil
}

// classify decides whether a failed attempt may be retried, how long the
// server asked to wait, and the error to return when it is not retried.
func (c *Client) classify(req *http.Request, err error, idempotent bool) (retry bool, wait time.Duration, out error) {
	var te *rest.TransportError
	if errors.As(err, &te) {
		switch {
		case idempotent:
			return true, 0, fmt.Errorf("autotask: %s %s: %w", req.Method, rest.RedactURL(req.URL), te.Err)
		case te.NotSent:
			return true, 0, fmt.Errorf("autotask: %s %s: %w", req.Method, rest.RedactURL(req.URL), te.Err)
		default:
			return false, 0, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: te.Err}
		}
	}
	var rl *psa.RateLimitError
	if errors.As(err, &rl) {
		if rl.Hourly || rl.RetryAfter > rest.MaxRetryAfter {
			return false, 0, err // retrying cannot help until the budget recovers
		}
		// A thread-threshold or 429 rejection happens before any work, so even
		// a create may be re-sent.
		return true, rl.RetryAfter, err
	}
	var er *ErrorResponse
	if errors.As(err, &er) {
		st := er.Response.StatusCode
		serverFault := st >= 500 && !errors.Is(er, psa.ErrValidation)
		if idempotent {
			if !serverFault || st == http.StatusNotImplemented {
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

// OutcomeUnknownError is returned when a request that creates an entity may
// or may not have been applied: the connection failed after it was sent, or
// the server answered 5xx without saying why. It matches
// psa.ErrOutcomeUnknown. The client does not re-send such a request; the
// caller must find out by reading.
type OutcomeUnknownError struct {
	Method string
	URL    string
	Err    error
}

// Error says which request may or may not have been applied.
func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("autotask: %s %s: outcome unknown: %v", e.Method, e.URL, e.Err)
}

// Unwrap returns the underlying error.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is reports whether target is psa.ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == psa.ErrOutcomeUnknown }
