package connectwise

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
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

const (
	// DefaultAPIVersion is the API version requested in the Accept header
	// when WithAPIVersion is not used.
	DefaultAPIVersion = "2025.16"

	// DefaultUserAgent is the User-Agent sent when WithUserAgent is not used.
	DefaultUserAgent = "psa-sync"

	// DefaultMaxConcurrency is how many requests the client keeps in flight
	// when WithMaxConcurrency is not used. ConnectWise documents no limit;
	// this keeps a sync pass polite.
	DefaultMaxConcurrency = 8

	// DefaultMaxRetries is how often an idempotent request is retried when
	// WithMaxRetries is not used.
	DefaultMaxRetries = 4

	// MaxThrottledReadWait is how long a read (GET or HEAD) answered 429
	// waits, over all its retries, for ConnectWise to take it. Those
	// retries use up none of WithMaxRetries: ConnectWise documents neither
	// its limit nor how long it throttles, and a few retries within
	// seconds failed every customer of a pass's batch read where waiting
	// helps. A throttled write still uses them up, so that a pass stops
	// writing soon rather than holding its writes for minutes. It also
	// bounds how long the client's throttle holds back any request, read
	// or write, before it is sent (see Client.Do).
	MaxThrottledReadWait = 5 * time.Minute

	// MaxPageSize is the largest pageSize ConnectWise accepts.
	MaxPageSize = 1000

	// mediaType is ConnectWise's vendor media type. It must come first in
	// Accept, or the version parameter is not honoured.
	mediaType = "application/vnd.connectwise.com+json"

	// apiPath is appended to the codebase to form the API root.
	apiPath = "apis/3.0/"
)

// A Client talks to the ConnectWise PSA (Manage) REST API 3.0 of one company.
//
// A Client is safe for concurrent use. Unless WithBaseURL or WithCodebase
// pins it, the client discovers the company's codebase lazily through
// /login/companyinfo/{company} and discovers it again once when a request
// gets 404, because hosted codebases change over time; requests in flight
// when the codebase changes share that discovery and are all sent once more
// under the new codebase. It keeps at most a
// configured number of requests in flight, retries reads and PATCHes with
// exponential backoff and full jitter, and never re-sends a POST whose
// outcome is unknown.
type Client struct {
	client     *http.Client
	site       *url.URL // scheme and host of the site
	creds      *credentials
	redact     *redact.Redactor
	apiVersion string
	userAgent  string
	maxRetries int
	backoff    rest.Backoff
	logger     *slog.Logger
	// rateLimited is WithRateLimitHook's function, or nil.
	rateLimited func(*psa.RateLimitError)
	sem         chan struct{}
	// throttle holds every request back while ConnectWise refuses them
	// for its rate limit (see Do).
	throttle rest.Throttle

	// sleep waits between retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	baseMu    sync.Mutex
	baseURL   *url.URL   // API root, e.g. https://api-na.myconnectwise.net/v4_6_release/apis/3.0/
	codebase  string     // pinned or discovered codebase, e.g. "v4_6_release/"
	pinned    bool       // baseURL or codebase was configured: never re-discovered
	started   uint64     // discoveries started: the generation of the newest one
	inflight  *discovery // the discovery under way, or nil
	lastFound *discovery // the newest discovery that finished

	common service

	// Services for the parts of the API psa-sync uses.
	Companies          *CompaniesService
	Catalog            *CatalogService
	Agreements         *AgreementsService
	AgreementAdditions *AgreementAdditionsService
	Tickets            *TicketsService
	Boards             *BoardsService
}

type service struct {
	client *Client
}

// credentials are the API member's keys. They are only ever written to the
// Authorization and clientId headers.
type credentials struct {
	company    string
	publicKey  string
	privateKey string
	clientID   string
}

// String keeps the credentials out of logs and error messages.
func (*credentials) String() string { return "connectwise credentials (redacted)" }

// GoString keeps the credentials out of %#v output.
func (c *credentials) GoString() string { return c.String() }

// An Option configures a Client in NewClient.
type Option func(*Client) error

// WithHTTPClient sets the HTTP client that sends every request. The default
// is a client with a 60 second timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("connectwise: nil HTTP client")
		}
		c.client = hc
		return nil
	}
}

// WithSite sets the ConnectWise site: a host name such as
// api-na.myconnectwise.net (https is implied) or a URL with a scheme such as
// http://127.0.0.1:8089 (simulators, on-premises installs). It is required
// unless WithBaseURL is given.
func WithSite(site string) Option {
	return func(c *Client) error {
		u, err := parseSite(site)
		if err != nil {
			return err
		}
		c.site = u
		return nil
	}
}

func parseSite(site string) (*url.URL, error) {
	s := strings.TrimSpace(site)
	if s == "" {
		return nil, errors.New("connectwise: site is empty")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("connectwise: site %q is neither a host name nor an http(s) URL", redact.URL(site))
	}
	if p := strings.Trim(u.Path, "/"); p != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("connectwise: site %q must not have a path; give the codebase with WithCodebase or the API root with WithBaseURL", redact.URL(site))
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/"}, nil
}

// WithCompanyID sets the login company id (such as "training"), used for
// codebase discovery and in the Authorization header. Required.
func WithCompanyID(company string) Option {
	return func(c *Client) error {
		c.creds.company = company
		return nil
	}
}

// WithKeys sets the API member's public and private keys. Required.
func WithKeys(publicKey, privateKey string) Option {
	return func(c *Client) error {
		c.creds.publicKey, c.creds.privateKey = publicKey, privateKey
		return nil
	}
}

// WithClientID sets the clientId issued by the ConnectWise developer portal
// for the integration. Required.
func WithClientID(clientID string) Option {
	return func(c *Client) error {
		c.creds.clientID = clientID
		return nil
	}
}

// WithCodebase pins the codebase, such as "v2025_1/" or "v4_6_release/", and
// skips discovery. By default the codebase is discovered on first use.
func WithCodebase(codebase string) Option {
	return func(c *Client) error {
		cb, err := cleanCodebase(codebase)
		if err != nil {
			return err
		}
		c.codebase, c.pinned = cb, true
		return nil
	}
}

func cleanCodebase(codebase string) (string, error) {
	cb := strings.Trim(strings.TrimSpace(codebase), "/")
	if cb == "" || strings.ContainsAny(cb, "?#:\\") || strings.Contains(cb, "..") {
		return "", fmt.Errorf("connectwise: invalid codebase %q", codebase)
	}
	return cb + "/", nil
}

// WithBaseURL sets the API root, such as
// https://api-na.myconnectwise.net/v2025_1/apis/3.0/, and skips codebase
// discovery. A root that does not end in "apis/3.0/" gets it appended.
func WithBaseURL(rawURL string) Option {
	return func(c *Client) error {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("connectwise: base URL %q is not an absolute http(s) URL", redact.URL(rawURL))
		}
		u.RawQuery, u.Fragment, u.RawPath = "", "", ""
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		if !strings.HasSuffix(strings.ToLower(u.Path), apiPath) {
			u.Path += apiPath
		}
		c.baseURL, c.pinned = u, true
		if c.site == nil {
			c.site = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/"}
		}
		return nil
	}
}

// WithAPIVersion sets the version requested in the Accept header, such as
// "2025.16". The default is DefaultAPIVersion; a server older than it
// (on premises, not yet updated) refuses it, and needs its own version.
func WithAPIVersion(v string) Option {
	return func(c *Client) error {
		v = strings.TrimSpace(v)
		if err := CheckAPIVersion(v); err != nil {
			return fmt.Errorf("connectwise: %w", err)
		}
		c.apiVersion = v
		return nil
	}
}

// CheckAPIVersion reports whether v has the form of a ConnectWise API
// version, a year and a release such as 2025.16 (api-current-version).
func CheckAPIVersion(v string) error {
	y, n, ok := strings.Cut(v, ".")
	if !ok || len(y) != 4 || n == "" || len(n) > 3 || strings.Trim(y+n, "0123456789") != "" {
		return fmt.Errorf("%q is not a ConnectWise API version (a year and a release, such as %s)", v, DefaultAPIVersion)
	}
	return nil
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

// WithMaxConcurrency sets how many requests may be in flight at once. The
// default is DefaultMaxConcurrency.
func WithMaxConcurrency(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("connectwise: max concurrency must be at least 1, got %d", n)
		}
		c.sem = make(chan struct{}, n)
		return nil
	}
}

// WithMaxRetries sets how often a GET or PATCH is retried after a 429, a 5xx
// or a network error. Zero disables retries. The default is
// DefaultMaxRetries.
// Retries of a read answered 429 use up none of them (see
// MaxThrottledReadWait) unless retries are disabled.
func WithMaxRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("connectwise: max retries must not be negative, got %d", n)
		}
		c.maxRetries = n
		return nil
	}
}

// WithBackoff sets the exponential backoff between retries: the n-th retry
// waits a random time up to min(max, base·2ⁿ), and at least the server's
// Retry-After (one over rest.MaxRetryAfter, five minutes, ends the retries
// with an error instead). The defaults are 500ms and 30s.
func WithBackoff(base, maxWait time.Duration) Option {
	return func(c *Client) error {
		b, err := rest.NewBackoff(base, maxWait)
		if err != nil {
			return fmt.Errorf("connectwise: %w", err)
		}
		c.backoff = b
		return nil
	}
}

// WithSleep replaces the function that waits between retries (tests pass
// one that records the waits). The default sleeps, or returns early with the
// context's error.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) error {
		if sleep == nil {
			return errors.New("connectwise: nil sleep function")
		}
		c.sleep = sleep
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

// WithLogger sets the logger for retries and codebase discovery. The default
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
// the codebase is discovered on first use unless WithBaseURL or WithCodebase
// pins it.
func NewClient(opts ...Option) (*Client, error) {
	c := &Client{
		client:     &http.Client{Timeout: 60 * time.Second},
		creds:      &credentials{},
		apiVersion: DefaultAPIVersion,
		userAgent:  DefaultUserAgent,
		maxRetries: DefaultMaxRetries,
		backoff:    rest.DefaultBackoff,
		logger:     slog.New(slog.DiscardHandler),
		sem:        make(chan struct{}, DefaultMaxConcurrency),
		sleep:      rest.SleepContext,
		throttle:   rest.Throttle{MaxHeld: MaxThrottledReadWait, FaultNoAnswer: true},
	}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	var missing []string
	if c.site == nil {
		missing = append(missing, "site")
	}
	for _, f := range []struct{ name, v string }{
		{"company id", c.creds.company}, {"public key", c.creds.publicKey},
		{"private key", c.creds.privateKey}, {"client id", c.creds.clientID},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("connectwise: missing settings: %s", strings.Join(missing, ", "))
	}
	// The Basic credential is company+publicKey:privateKey; a server may
	// quote it whole, decoded (the member "company+publicKey"), or echo the
	// clientId header. The company id alone is no secret (errors name it)
	// and would blank out ordinary words.
	// Credentials go in headers and bodies that Go's client would carry
	// to the host a redirect names.
	c.client = redact.RedirectsWithoutCredentials(c.client)
	c.redact = redact.New(c.creds.privateKey, c.creds.company+"+"+c.creds.publicKey+":"+c.creds.privateKey,
		c.creds.company+"+"+c.creds.publicKey, c.creds.publicKey, c.creds.clientID)
	if c.baseURL == nil && c.pinned {
		c.baseURL = c.site.JoinPath(c.codebase, apiPath)
		c.baseURL.Path = strings.TrimSuffix(c.baseURL.Path, "/") + "/"
	}
	c.common.client = c
	c.Companies = (*CompaniesService)(&c.common)
	c.Catalog = (*CatalogService)(&c.common)
	c.Agreements = (*AgreementsService)(&c.common)
	c.AgreementAdditions = (*AgreementAdditionsService)(&c.common)
	c.Tickets = (*TicketsService)(&c.common)
	c.Boards = (*BoardsService)(&c.common)
	return c, nil
}

// MaxConcurrency returns how many requests the client keeps in flight (see
// WithMaxConcurrency).
func (c *Client) MaxConcurrency() int { return cap(c.sem) }

// Host returns the site's host, such as api-na.myconnectwise.net.
func (c *Client) Host() string { return c.site.Host }

// CompanyID returns the login company id, such as "training".
func (c *Client) CompanyID() string { return c.creds.company }

// CompanyInfo is the answer of /login/companyinfo/{company}. Only Codebase is
// documented by the libraries that use it.
type CompanyInfo struct {
	CompanyName string `json:"CompanyName,omitempty"`
	Codebase    string `json:"Codebase"`
	VersionCode string `json:"VersionCode,omitempty"`
	CompanyID   string `json:"CompanyID,omitempty"`
	SiteURL     string `json:"SiteUrl,omitempty"`
}

// BaseURL returns the API root requests are sent to, discovering the
// codebase first if needed.
func (c *Client) BaseURL(ctx context.Context) (*url.URL, error) {
	c.baseMu.Lock()
	defer c.baseMu.Unlock()
	if c.baseURL == nil {
		// Join a discovery under way; never reuse a finished one that failed.
		after := c.started
		if c.inflight != nil {
			after--
		}
		if err := c.discoverLocked(ctx, after, func() bool { return c.baseURL != nil }); err != nil {
			return nil, err
		}
	}
	u := *c.baseURL
	return &u, nil
}

// CompanyInfo fetches /login/companyinfo/{company} (no credentials needed).
func (c *Client) CompanyInfo(ctx context.Context) (*CompanyInfo, error) {
	u := c.site.JoinPath("login", "companyinfo", c.creds.company)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("connectwise: company info: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("connectwise: company info: %w", err)
	}
	defer resp.Body.Close()
	if err := rest.ReportRateLimit(c.rateLimited, checkResponse(resp, c.redact)); err != nil {
		return nil, fmt.Errorf("connectwise: company info for company %q: %w", c.creds.company, err)
	}
	body, err := redact.DecodedBody(resp)
	if err != nil {
		return nil, fmt.Errorf("connectwise: company info: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(body, rest.MaxErrorBody))
	if err != nil {
		return nil, fmt.Errorf("connectwise: company info: %w", rest.NewTransportError(err))
	}
	if na := rest.NotJSON(psa.SystemConnectWise, req, resp, raw, c.redact); na != nil {
		// A proxy's sign-in page in front of the site.
		return nil, na
	}
	var ci CompanyInfo
	if err := json.Unmarshal(raw, &ci); err != nil {
		if rest.IsTopLevelMismatch(err) {
			return nil, rest.NotAPI(psa.SystemConnectWise, req, resp, "JSON of another kind than the answer")
		}
		return nil, fmt.Errorf("connectwise: company info: decoding response: %w", err)
	}
	if ci == (CompanyInfo{}) {
		// JSON without any of company info's keys: another product's.
		return nil, rest.NotAPIShape(psa.SystemConnectWise, req, resp, `"Codebase"`)
	}
	return &ci, nil
}

// A discovery is one GET /login/companyinfo/{company}, shared by every
// request that needs the codebase while it is under way.
type discovery struct {
	gen  uint64        // 1 for the client's first discovery, 2 for the next, ...
	done chan struct{} // closed when it finished or was abandoned
	err  error         // its outcome, set before done is closed
}

// discoverLocked waits until satisfied reports true or a discovery newer
// than generation after has finished, and returns that discovery's error.
// Callers that find a discovery under way join it; otherwise they start
// one, so that requests that need the codebase at the same time fetch
// company info once. c.baseMu is held on entry and on return, and released
// while waiting.
//
// A discovery runs under the context of the request that started it. When
// that context ends first, the discovery is abandoned rather than finished,
// and the requests that joined it start another with their own context.
func (c *Client) discoverLocked(ctx context.Context, after uint64, satisfied func() bool) error {
	for !satisfied() {
		if d := c.lastFound; d != nil && d.gen > after {
			return d.err
		}
		if d := c.inflight; d != nil {
			c.baseMu.Unlock()
			select {
			case <-d.done:
			case <-ctx.Done():
			}
			c.baseMu.Lock()
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		c.started++
		d := &discovery{gen: c.started, done: make(chan struct{})}
		c.inflight = d
		c.baseMu.Unlock()
		root, cb, err := c.discover(ctx)
		c.baseMu.Lock()
		c.inflight = nil
		if err != nil && ctx.Err() != nil {
			close(d.done) // abandoned: whoever joined starts another
			return err
		}
		if err == nil {
			if cb != c.codebase {
				c.logger.Info("Discovered ConnectWise codebase", "codebase", cb, "previous", c.codebase)
			}
			c.codebase, c.baseURL = cb, root
		}
		d.err = err
		c.lastFound = d
		close(d.done)
		return err
	}
	return nil
}

// discover fetches company info and returns the API root and codebase it
// names.
func (c *Client) discover(ctx context.Context) (*url.URL, string, error) {
	ci, err := c.CompanyInfo(ctx)
	if err != nil {
		return nil, "", err
	}
	cb, err := cleanCodebase(ci.Codebase)
	if err != nil {
		return nil, "", fmt.Errorf("connectwise: company info for company %q returned no usable codebase: %s", c.creds.company, c.redact.String(err.Error()))
	}
	root := c.site.JoinPath(cb, apiPath)
	root.Path = strings.TrimSuffix(root.Path, "/") + "/"
	return root, cb, nil
}

// rediscover is called after a request under the API root stale got 404. It
// returns the API root to send the request to again, or nil when the
// codebase did not move (the 404 is real, or the root is pinned).
//
// When the client's root is no longer stale, another request has already
// followed the move and there is nothing to fetch. Otherwise the request
// needs a discovery that started after its 404: it joins the one under way,
// which may have been answered just before the move, only to see whether
// that one moved the root, and starts (or joins) the next one if not.
// Requests that got 404 from the same stale codebase therefore share one
// company info request per codebase change, and real 404s that arrive
// while a discovery is under way share the next one.
func (c *Client) rediscover(ctx context.Context, stale string) (*url.URL, error) {
	c.baseMu.Lock()
	defer c.baseMu.Unlock()
	if c.pinned || c.baseURL == nil {
		return nil, nil
	}
	moved := func() bool { return !strings.EqualFold(c.baseURL.String(), stale) }
	if err := c.discoverLocked(ctx, c.started, moved); err != nil {
		return nil, err
	}
	if !moved() {
		return nil, nil
	}
	u := *c.baseURL
	return &u, nil
}

// NewRequest builds a request. A relative urlStr (such as
// "procurement/catalog") is resolved against the API root; an absolute one
// (a Link header's next page) must have the API root's origin, so that
// credentials are never sent anywhere else. body, if not nil, is sent as
// JSON. NewRequest sets the authentication and Accept headers.
func (c *Client) NewRequest(ctx context.Context, method, urlStr string, body any) (*http.Request, error) {
	base, err := c.BaseURL(ctx)
	if err != nil {
		return nil, err
	}
	u, err := base.Parse(urlStr)
	if err != nil {
		return nil, fmt.Errorf("connectwise: bad request URL: %w", err)
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Host, base.Host) {
		return nil, fmt.Errorf("connectwise: refusing to send credentials to %s://%s, which is not the site %s://%s", u.Scheme, u.Host, base.Scheme, base.Host)
	}
	var buf []byte
	if body != nil {
		if buf, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("connectwise: encoding request body: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(buf))
	if err != nil {
		return nil, fmt.Errorf("connectwise: %w", err)
	}
	if body == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", mediaType+"; version="+c.apiVersion)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("clientId", c.creds.clientID)
	req.SetBasicAuth(c.creds.company+"+"+c.creds.publicKey, c.creds.privateKey)
	return req, nil
}

// Response wraps an HTTP response from ConnectWise with the paging links
// and the server's API version, parsed once.
//
// The embedded *http.Response keeps the status and the headers, but
// neither the body, which has been read, nor the credentials: its Request
// holds only the method and the URL (see redact.Redactor.Response).
type Response struct {
	*http.Response

	// NextPageURL is the Link header's rel="next" target, or "" on the last
	// page (and for responses that are not lists).
	NextPageURL string
	// Links holds every Link header entry by rel (next, prev, first, last).
	Links map[string]string
	// APIVersion is the api-current-version header, the server's version.
	APIVersion string
}

// newResponse wraps r, keeping no credentials: see redact.Redactor.Response.
func (c *Client) newResponse(r *http.Response) *Response {
	resp := &Response{Response: c.redact.Response(r), Links: parseLinks(r.Header.Values("Link")), APIVersion: r.Header.Get("api-current-version")}
	resp.NextPageURL = resp.Links["next"]
	return resp
}

// parseLinks parses RFC 8288 Link headers: <url>; rel="next", <url>; rel=last.
func parseLinks(values []string) map[string]string {
	links := map[string]string{}
	for _, v := range values {
		for _, part := range splitLinks(v) {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.Index(part, ">")
			if end < 0 {
				continue
			}
			target := part[1:end]
			for _, p := range strings.Split(part[end+1:], ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "rel") {
					for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
						if _, dup := links[strings.ToLower(rel)]; !dup {
							links[strings.ToLower(rel)] = target
						}
					}
				}
			}
		}
	}
	return links
}

// splitLinks splits a Link header at the commas between entries, not at
// commas inside <...>.
func splitLinks(v string) []string {
	var parts []string
	depth, start := 0, 0
	for i, r := range v {
		switch r {
		case '<':
			depth++
		case '>':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, v[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, v[start:])
}

// isIdempotent reports whether req may be sent again when its outcome is
// unknown: reads, and PATCHes, which set absolute values.
func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPatch:
		return true
	}
	return false
}

// Do sends req and decodes a successful JSON response into v (when v is not
// nil). It waits for a concurrency slot, re-discovers the codebase once after
// a 404, retries reads and PATCHes, and maps error responses with
// CheckResponse.
//
// A POST (a create) is never re-sent when it may have been applied: a
// network error after sending it, or a 5xx without validation messages,
// returns an error matching psa.ErrOutcomeUnknown. It is retried only when
// ConnectWise surely did not process it: the connection could not be made,
// or the answer was 429. PUT and DELETE are not retried.
//
// A request that ConnectWise processed at no attempt (each was answered
// 429, or could not be sent) fails with a *rest.UnprocessedError: a write
// that failed so was not applied.
//
// A read (GET or HEAD) answered 429 is retried until it has waited
// MaxThrottledReadWait, without using up the retries of WithMaxRetries
// (unless they are disabled); a write answered 429 uses them up. After a
// 429 every request of the client waits for the client's throttle (see
// rest.Throttle), its retries included, rather than on its own backoff:
// one request at a time is sent while ConnectWise refuses them.
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
	// read answered 429 do not, and are bounded by how long the client's
	// throttle held the request (tk).
	retries := 0
	var tk rest.Ticket
	read := req.Method == http.MethodGet || req.Method == http.MethodHead
	for attempt := 0; ; attempt++ {
		resp, body, err := c.roundTrip(ctx, req, &tk)
		var wr *rest.WriteRefusedError
		if errors.As(err, &wr) {
			return resp, rest.Unprocessed(fmt.Errorf("connectwise: %s %s: %w", req.Method, rest.RedactURL(req.URL), err), processed)
		}
		var held *rest.HeldTooLongError
		if errors.As(err, &held) {
			return resp, rest.Unprocessed(held.Err, processed)
		}
		if err == nil {
			if v != nil && len(bytes.TrimSpace(body)) > 0 {
				if derr := c.decode(req, resp, body, v); derr != nil {
					var na *psa.NotAPIError
					if !errors.As(derr, &na) {
						derr = &decodeError{err: derr}
					}
					if !idempotent {
						// ConnectWise answered 2xx, so the create was most
						// likely applied; only its answer is unreadable.
						return resp, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: derr}
					}
					if na != nil {
						return resp, na
					}
					return resp, fmt.Errorf("connectwise: %s %s: %w", req.Method, rest.RedactURL(req.URL), derr)
				}
			}
			return resp, nil
		}
		if ctx.Err() != nil {
			var te *rest.TransportError
			if !idempotent && errors.As(err, &te) && !te.NotSent {
				return resp, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: ctx.Err()}
			}
			return resp, ctx.Err()
		}
		if resp != nil && resp.StatusCode == http.StatusNotFound && !rediscovered {
			// The hosted codebase may have moved. The request is sent once
			// more, under the new root, only if it has: a codebase that is
			// not the company's answers 404 when routing the request, before
			// authentication and before any handler runs (the simulator in
			// psa/psatest does the same), so nothing was applied and even a
			// POST may be re-sent. A 404 under the current root is an
			// answer, returned as psa.ErrNotFound, and nothing is re-sent.
			rediscovered = true
			if nr, derr := c.rebase(ctx, req); derr == nil && nr != nil {
				req = nr
				attempt--
				continue
			}
		}
		processed = processed || !rest.NotProcessed(err)
		retry, wait, outErr := c.classify(req, err, idempotent)
		refused := retry && errors.Is(err, psa.ErrRateLimited)
		throttled := refused && read && c.maxRetries > 0
		switch {
		case throttled && c.throttle.Held(&tk) >= MaxThrottledReadWait:
			return resp, rest.Unprocessed(rest.WaitedFor(outErr, c.throttle.Held(&tk)), processed)
		case !retry, !throttled && retries >= c.maxRetries:
			return resp, rest.Unprocessed(outErr, processed)
		case !throttled:
			retries++
		}
		if refused {
			// The client's throttle holds the next attempt back, as every
			// other request, for the wait (see rest.Throttle).
			c.logger.Warn("Retrying ConnectWise request", "method", req.Method, "path", req.URL.Path, "attempt", attempt+1, "err", outErr)
		} else {
			d := c.backoff.Wait(attempt, wait)
			c.logger.Warn("Retrying ConnectWise request", "method", req.Method, "path", req.URL.Path, "attempt", attempt+1, "wait", d, "err", outErr)
			if serr := c.sleep(ctx, d); serr != nil {
				return resp, serr
			}
		}
		if req, err = rewind(req); err != nil {
			return resp, err
		}
	}
}

// roundTrip sends req once, when the client's throttle lets it (see
// rest.Throttle) and within the concurrency limit, and reads the body. A write
// is first let through by ctx's write gate (psa.WithWriteGate).
func (c *Client) roundTrip(ctx context.Context, req *http.Request, tk *rest.Ticket) (*Response, []byte, error) {
	if err := c.throttle.Enter(req.Context(), tk, c.sleep); err != nil {
		return nil, nil, err
	}
	release, err := rest.Acquire(req.Context(), c.sem)
	if err != nil {
		c.throttle.Abandon(tk)
		return nil, nil, err
	}
	defer release()
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		// Asked after the waits for the throttle and a slot, which can be
		// long.
		if err := rest.GateWrite(ctx); err != nil {
			c.throttle.Abandon(tk)
			return nil, nil, err
		}
	}
	hr, err := c.client.Do(req)
	if err != nil {
		c.throttle.Abandon(tk)
		return nil, nil, rest.NewTransportError(err)
	}
	defer hr.Body.Close()
	err = rest.ReportRateLimit(c.rateLimited, checkResponse(hr, c.redact))
	var rl *psa.RateLimitError
	errors.As(err, &rl)
	if c.throttle.Answered(tk, hr.StatusCode, rl, c.nextThrottleWait) {
		c.logger.Warn("ConnectWise is refusing requests for its rate limit: the client sends one request at a time, after a wait, until ConnectWise takes one",
			"method", req.Method, "path", req.URL.Path, "retry_after", rl.RetryAfter)
	}
	if err != nil {
		return c.newResponse(hr), nil, err
	}
	body, err := rest.ReadBody(hr)
	if err != nil {
		return c.newResponse(hr), nil, &rest.TransportError{Err: err}
	}
	return c.newResponse(hr), body, nil
}

// nextThrottleWait is the throttle's wait after n+1 refusals in a row
// without Retry-After: the client's backoff.
func (c *Client) nextThrottleWait(n int) time.Duration { return c.backoff.Wait(n, 0) }

// rebase is called after req got 404. It re-discovers the codebase when
// req was sent under the client's current API root, and returns req
// rewritten onto the API root the company has moved to, or nil when it has
// not moved.
//
// The stale root is taken from req's own URL, not from the client: when
// several requests are in flight as the codebase changes, the first 404
// moves the client, and the others must still follow.
func (c *Client) rebase(ctx context.Context, req *http.Request) (*http.Request, error) {
	stale, rest, ok := splitAPIRoot(req.URL)
	if !ok {
		return nil, nil
	}
	root, err := c.rediscover(ctx, stale)
	if err != nil {
		c.logger.Warn("ConnectWise codebase re-discovery failed", "err", err)
		return nil, err
	}
	if root == nil {
		return nil, nil
	}
	u, err := url.Parse(root.String() + rest)
	if err != nil {
		return nil, fmt.Errorf("connectwise: bad request URL: %w", err)
	}
	nr, err := rewind(req)
	if err != nil {
		return nil, err
	}
	nr.URL, nr.Host = u, ""
	return nr, nil
}

// splitAPIRoot splits u after its first "apis/3.0/" into the API root
// (https://api-na.myconnectwise.net/v2025_1/apis/3.0/) and the rest, path
// and query, as sent (company/companies/7?fields=id).
func splitAPIRoot(u *url.URL) (root, rest string, ok bool) {
	p := u.EscapedPath()
	i := strings.Index(strings.ToLower(p), "/"+apiPath)
	if i < 0 {
		return "", "", false
	}
	end := i + len("/"+apiPath)
	root = (&url.URL{Scheme: u.Scheme, Host: u.Host}).String() + p[:end]
	rest = p[end:]
	if u.RawQuery != "" {
		rest += "?" + u.RawQuery
	}
	return root, rest, true
}

func rewind(req *http.Request) (*http.Request, error) {
	nr, err := rest.Rewind(req)
	if err != nil {
		return nil, fmt.Errorf("connectwise: %w", err)
	}
	return nr, nil
}

// classify decides whether a failed attempt may be retried, how long the
// server asked to wait, and the error to return when it is not retried.
func (c *Client) classify(req *http.Request, err error, idempotent bool) (retry bool, wait time.Duration, out error) {
	var te *rest.TransportError
	if errors.As(err, &te) {
		switch {
		case idempotent, te.NotSent:
			return true, 0, fmt.Errorf("connectwise: %s %s: %w", req.Method, rest.RedactURL(req.URL), te.Err)
		case req.Method == http.MethodPost:
			return false, 0, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: te.Err}
		default:
			return false, 0, fmt.Errorf("connectwise: %s %s: %w", req.Method, rest.RedactURL(req.URL), te.Err)
		}
	}
	var rl *psa.RateLimitError
	if errors.As(err, &rl) {
		if rl.RetryAfter > rest.MaxRetryAfter {
			return false, 0, err
		}
		// A 429 is refused before any work, so even a create may be re-sent.
		return idempotent || req.Method == http.MethodPost, rl.RetryAfter, err
	}
	var er *ErrorResponse
	if errors.As(err, &er) {
		st := er.Response.StatusCode
		serverFault := st >= 500 && st != http.StatusNotImplemented && !errors.Is(er, psa.ErrValidation)
		if idempotent {
			if !serverFault {
				return false, 0, err
			}
			// A Retry-After over the cap ends the retries, as for a 429.
			return rest.CapRetryAfter(err, rest.RetryAfter(er.Response))
		}
		if serverFault && req.Method == http.MethodPost {
			return false, 0, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: err}
		}
	}
	return false, 0, err
}

// decode reads body, a 2xx answer to req, into v. An answer that is not
// ConnectWise's (not JSON, or JSON of another kind than the answer: an
// object where ConnectWise answers a list, or a list where it answers an
// object) is a *psa.NotAPIError.
func (c *Client) decode(req *http.Request, resp *Response, body []byte, v any) error {
	var hr *http.Response
	if resp != nil {
		hr = resp.Response
	}
	if na := rest.NotJSON(psa.SystemConnectWise, req, hr, body, c.redact); na != nil {
		return na
	}
	err := json.Unmarshal(body, v)
	if rest.IsTopLevelMismatch(err) {
		return rest.NotAPI(psa.SystemConnectWise, req, hr, "JSON of another kind than the answer")
	}
	return err
}

// decodeError is a 2xx answer whose body could not be decoded: a field of
// the wrong type, a body cut short (an answer that is not ConnectWise's at
// all is a *psa.NotAPIError instead). For a read it says nothing about the
// rest of ConnectWise, so the backend fails only the agreement whose
// answer it was (see Backend.readLines).
type decodeError struct{ err error }

func (e *decodeError) Error() string { return "decoding response: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// OutcomeUnknownError is returned when a POST may or may not have been
// applied: the connection failed after it was sent, or the server answered
// 5xx without saying why. It matches psa.ErrOutcomeUnknown. The client does
// not re-send such a request; the caller must find out by reading.
type OutcomeUnknownError struct {
	Method string
	URL    string
	Err    error
}

// Error says which request may or may not have been applied.
func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("connectwise: %s %s: outcome unknown: %v", e.Method, e.URL, e.Err)
}

// Unwrap returns the underlying error.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is reports whether target is psa.ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == psa.ErrOutcomeUnknown }
