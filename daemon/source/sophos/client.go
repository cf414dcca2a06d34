package sophos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

const (
	// DefaultAuthURL is the Sophos ID token endpoint.
	DefaultAuthURL = "https://id.sophos.com/api/v2/oauth2/token"
	// DefaultBaseURL is the global Central API host, where whoami and the
	// partner APIs live.
	DefaultBaseURL = "https://api.central.sophos.com/"
	// DefaultMaxRetries is the number of retries callers pass when the user
	// did not choose one.
	DefaultMaxRetries = 4

	defaultUserAgent     = "psa-sync"
	defaultTokenLifetime = time.Hour // what Sophos ID issues
	tokenMargin          = time.Minute
	maxErrorBody         = 1 << 20
	defaultMaxBody       = 64 << 20

	// refusedTokenHold is how long calls to a host that refused a token
	// fetched for the call fail without being sent: long enough that a
	// pass over every customer (a ticket pass lists each tenant's
	// alerts) does not fetch a token per call, short enough that the
	// next pass tries again.
	refusedTokenHold = time.Minute
)

// Client talks to the Sophos Central Partner API. Its methods are safe for
// concurrent use. The access token and the partner id are fetched on first
// use and cached.
type Client struct {
	httpClient    *http.Client
	authURL       *url.URL
	authURLSet    bool
	baseURL       *url.URL
	baseURLSet    bool
	clientID      string
	clientSecret  string
	redact        *redact.Redactor // the secret and the access token, for texts from Sophos' answers
	userAgent     string
	maxRetries    int
	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	sleep         func(context.Context, time.Duration) error
	now           func() time.Time
	logger        *slog.Logger

	// maxBody bounds the body of an answer the client decodes (64 MiB,
	// some 80,000 usage rows where a page holds 1,000; tests lower it).
	maxBody int64

	// maxUsagePages, maxTenantPages and maxAlertPages bound the pages
	// ListAllUsage, Tenants.ListAll and Alerts.ListAll read (tests lower
	// them).
	maxUsagePages, maxTenantPages, maxAlertPages int
	// maxUsageRows bounds the rows ListAllUsage holds (tests lower it).
	maxUsageRows int

	tokenMu     sync.Mutex // held while a token is fetched, so callers share one
	token       string
	tokenExpiry time.Time

	refusedMu sync.Mutex
	refused   map[string]refusal // by host: see refusedTokenHold

	partnerMu   sync.Mutex
	partnerID   string
	partnerBase *url.URL

	common service

	// WhoAmI reads who the credentials belong to.
	WhoAmI *WhoAmIService
	// Tenants lists the partner's customer tenants.
	Tenants *TenantsService
	// Billing reads the partner's monthly usage reports.
	Billing *BillingService
	// Alerts reads the tenants' open alerts.
	Alerts *AlertsService
}

type service struct {
	client *Client
}

// Option configures a Client.
type Option func(*Client) error

// WithCredentials sets the API credential's client id and secret. Required.
func WithCredentials(clientID, clientSecret string) Option {
	return func(c *Client) error {
		c.clientID, c.clientSecret = clientID, clientSecret
		return nil
	}
}

// WithAuthURL overrides the token endpoint (default DefaultAuthURL), for a
// simulator. A tenant's apiHost on its host (and port) is then accepted
// too, besides Central's own hosts (see AlertsService).
func WithAuthURL(u string) Option {
	return func(c *Client) error {
		p, err := parseURL(u, false)
		if err != nil {
			return fmt.Errorf("sophos: auth URL: %w", err)
		}
		c.authURL, c.authURLSet = p, true
		return nil
	}
}

// WithBaseURL overrides the API host (default DefaultBaseURL). When it is
// set, every call goes to it; otherwise the partner calls go to the global
// host that whoami names, when it is https and a Sophos Central host.
func WithBaseURL(u string) Option {
	return func(c *Client) error {
		p, err := parseURL(u, true)
		if err != nil {
			return fmt.Errorf("sophos: base URL: %w", err)
		}
		c.baseURL, c.baseURLSet = p, true
		return nil
	}
}

// WithHTTPClient sets the HTTP client (default: one with a 60 s timeout).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc != nil {
			c.httpClient = hc
		}
		return nil
	}
}

// WithUserAgent sets the User-Agent header (default "psa-sync").
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if ua != "" {
			c.userAgent = ua
		}
		return nil
	}
}

// WithMaxRetries sets how often a request is retried after a 429, a 5xx or
// a network error (default 0: no retries; callers usually pass
// DefaultMaxRetries).
func WithMaxRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("sophos: max retries %d is negative", n)
		}
		c.maxRetries = n
		return nil
	}
}

// WithBackoff sets the first retry delay and the cap of the exponential
// backoff (default 500 ms and 30 s). Each delay is jittered down to half its
// value. A Retry-After header wins over the backoff.
func WithBackoff(base, maxDelay time.Duration) Option {
	return func(c *Client) error {
		c.backoffBase, c.backoffMax = base, maxDelay
		return nil
	}
}

// WithMaxRetryAfter sets the longest Retry-After the client waits for
// (default 5 minutes); a longer one ends the call with a *RateLimitError.
func WithMaxRetryAfter(d time.Duration) Option {
	return func(c *Client) error {
		c.maxRetryAfter = d
		return nil
	}
}

// WithSleep replaces the function that waits between retries (default: a
// timer that stops when ctx is done). Tests use it to record waits without
// waiting.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) error {
		c.sleep = sleep
		return nil
	}
}

// WithClock sets the clock used for token expiry (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *Client) error {
		c.now = now
		return nil
	}
}

// WithLogger sets the logger for retries and token refreshes (default:
// discard). Secrets are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l != nil {
			c.logger = l
		}
		return nil
	}
}

func parseURL(s string, dir bool) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", redact.URL(s), redact.URLError(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", redact.URL(s))
	}
	if dir && !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// NewClient returns a client. It does no network I/O.
func NewClient(opts ...Option) (*Client, error) {
	c := &Client{
		httpClient:    &http.Client{Timeout: 60 * time.Second},
		userAgent:     defaultUserAgent,
		backoffBase:   500 * time.Millisecond,
		backoffMax:    30 * time.Second,
		maxRetryAfter: 5 * time.Minute,
		sleep:         sleepCtx,
		now:           time.Now,
		logger:        slog.New(slog.DiscardHandler),

		maxBody:        defaultMaxBody,
		maxUsagePages:  defaultMaxUsagePages,
		maxUsageRows:   defaultMaxUsageRows,
		maxTenantPages: defaultMaxTenantPages,
		maxAlertPages:  defaultMaxAlertPages,
	}
	c.authURL, _ = url.Parse(DefaultAuthURL)
	c.baseURL, _ = url.Parse(DefaultBaseURL)
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.clientID == "" || c.clientSecret == "" {
		return nil, errors.New("sophos: client id and client secret are required")
	}
	// Credentials go in headers and bodies that Go's client would carry
	// to the host a redirect names.
	c.httpClient = redact.RedirectsWithoutCredentials(c.httpClient)
	c.redact = redact.New(c.clientSecret)
	c.common.client = c
	c.WhoAmI = (*WhoAmIService)(&c.common)
	c.Tenants = (*TenantsService)(&c.common)
	c.Billing = (*BillingService)(&c.common)
	c.Alerts = (*AlertsService)(&c.common)
	return c, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Response wraps an API response and adds its paging block.
//
// The embedded *http.Response keeps the status and the headers, but
// neither the body, which has been read, nor the credentials: its Request
// holds only the method and the URL (see redact.Redactor.Response).
type Response struct {
	*http.Response

	// Pages is the response's paging block (zero for single objects).
	Pages Pages
	// NextPage is the next page number of a page-based list; 0 on the last
	// page or when the total is unknown.
	NextPage int
	// NextKey is the pageFromKey of the next page of a key-based list; ""
	// on the last page.
	NextKey string
}

// Pages is the "pages" block of Central list responses. Page-based lists
// (tenants) fill Current; key-based lists (billing usage) fill FromKey and
// NextKey. Total and Items are only sent when the request asked for
// pageTotal=true.
type Pages struct {
	Current int    `json:"current,omitempty"`
	FromKey string `json:"fromKey,omitempty"`
	NextKey string `json:"nextKey,omitempty"`
	Size    int    `json:"size,omitempty"`
	Total   int    `json:"total,omitempty"`
	Items   int    `json:"items,omitempty"`
	MaxSize int    `json:"maxSize,omitempty"`

	// totalSent and itemsSent say whether the answer had a total and an
	// items count, so that an announced 0 is told apart from none.
	totalSent, itemsSent bool
}

// UnmarshalJSON reads the paging block and notes whether total and items
// were sent.
func (p *Pages) UnmarshalJSON(b []byte) error {
	type plain Pages
	var v struct {
		plain
		Total *int `json:"total"`
		Items *int `json:"items"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Pages(v.plain)
	if v.Total != nil {
		p.Total, p.totalSent = *v.Total, true
	}
	if v.Items != nil {
		p.Items, p.itemsSent = *v.Items, true
	}
	return nil
}

// AnnouncedTotal returns the number of pages the answer announced, and
// whether it announced one.
func (p Pages) AnnouncedTotal() (int, bool) { return p.Total, p.totalSent }

// AnnouncedItems returns the number of items the answer announced, and
// whether it announced one.
func (p Pages) AnnouncedItems() (int, bool) { return p.Items, p.itemsSent }

// newRequest builds a GET request for path (relative to base) and query.
func (c *Client) newRequest(ctx context.Context, base *url.URL, path string, query url.Values) (*http.Request, error) {
	u, err := base.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("sophos: %w", err)
	}
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("sophos: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// newPartnerRequest builds a /partner/v1 request: on the partner host, with
// X-Partner-ID.
func (c *Client) newPartnerRequest(ctx context.Context, path string, query url.Values) (*http.Request, error) {
	id, base, err := c.partner(ctx)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, base, path, query)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Partner-ID", id)
	return req, nil
}

// endpoint names a request in messages: method and path, without the query
// or host.
func endpoint(req *http.Request) string {
	return req.Method + " " + req.URL.Path
}

// Do sends a GET request with a bearer token and decodes a JSON answer into
// v. It fetches a new token once when the API answers 401, and retries 429,
// 5xx and network errors up to the configured number of times, waiting as
// Retry-After says or with jittered exponential backoff.
func (c *Client) Do(req *http.Request, v any) (*Response, error) {
	ctx := req.Context()
	if err := c.refusedHost(req); err != nil {
		return nil, err
	}
	reauthed := false
	for attempt := 0; ; {
		tok, err := c.accessToken(ctx)
		if err != nil {
			return nil, err
		}
		r := req.Clone(ctx)
		r.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.httpClient.Do(r)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sophos: %s: %w", endpoint(req), ctx.Err())
			}
			if attempt < c.maxRetries {
				if err := c.wait(ctx, req, attempt, 0, stripURL(err).Error()); err != nil {
					return nil, err
				}
				attempt++
				continue
			}
			return nil, fmt.Errorf("sophos: %s: %w", endpoint(req), stripURL(err))
		}
		if resp.StatusCode == http.StatusUnauthorized && !reauthed {
			// The token expired early or was revoked: get a new one, once.
			drain(resp)
			c.invalidateToken(tok)
			reauthed = true
			c.logger.Debug("Access token refused, fetching a new one", "endpoint", endpoint(req))
			continue
		}
		if retryable(resp.StatusCode) && attempt < c.maxRetries {
			ra := retryAfter(resp.Header.Get("Retry-After"), c.now())
			if ra <= c.maxRetryAfter {
				drain(resp)
				if err := c.wait(ctx, req, attempt, ra, resp.Status); err != nil {
					return nil, err
				}
				attempt++
				continue
			}
		}
		refusedNew := resp.StatusCode == http.StatusUnauthorized && reauthed
		res, err := c.finish(req, resp, v)
		if refusedNew {
			// A token fetched for this call was refused too: every
			// other call would fetch one more and be refused the same.
			c.refuseHost(req, err)
		}
		return res, err
	}
}

// refusal is a host's 401 to a token fetched for the call it refused.
type refusal struct {
	at  time.Time
	err error
}

// refuseHost records that req's host refused a new token with err: calls
// to it fail without being sent for refusedTokenHold.
func (c *Client) refuseHost(req *http.Request, err error) {
	at := c.now()
	c.refusedMu.Lock()
	defer c.refusedMu.Unlock()
	if c.refused == nil {
		c.refused = map[string]refusal{}
	}
	c.refused[req.URL.Host] = refusal{at: at, err: err}
	c.logger.Warn("Sophos refused a new access token; calls to its host fail without fetching another for a while",
		"endpoint", endpoint(req), "host", req.URL.Host, "until", at.Add(refusedTokenHold), "err", err)
}

// ForgetRefusals drops the holds of the hosts that refused a token fetched
// for a call (see refusedTokenHold), so that the next call to each fetches
// a token and is sent, and returns how many holds were in force. It is for
// a caller that learned that the credential works again (psa-syncd check
// through the daemon passed with the same credential) and would otherwise
// see its calls fail, not sent, for up to refusedTokenHold.
func (c *Client) ForgetRefusals() int {
	now := c.now()
	c.refusedMu.Lock()
	defer c.refusedMu.Unlock()
	n := 0
	for _, r := range c.refused {
		if now.Before(r.at.Add(refusedTokenHold)) {
			n++
		}
	}
	clear(c.refused)
	return n
}

// refusedHost returns the error of a call to a host that refused a new
// token less than refusedTokenHold ago, and nil otherwise.
func (c *Client) refusedHost(req *http.Request) error {
	c.refusedMu.Lock()
	r, ok := c.refused[req.URL.Host]
	c.refusedMu.Unlock()
	if !ok {
		return nil
	}
	until := r.at.Add(refusedTokenHold)
	if !c.now().Before(until) {
		return nil
	}
	return fmt.Errorf("sophos: %s: not sent: %s refused a new access token at %s, so calls to it fail until %s without fetching another "+
		"(does the API credential still exist, with its role?): %w",
		endpoint(req), req.URL.Host, r.at.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339), r.err)
}

// finish checks the status and decodes the body.
func (c *Client) finish(req *http.Request, resp *http.Response, v any) (*Response, error) {
	defer resp.Body.Close()
	// The Response keeps no credentials: see redact.Redactor.Response.
	response := &Response{Response: c.redact.Response(resp)}
	if err := c.checkResponse(req, resp); err != nil {
		return response, err
	}
	if v == nil {
		drain(resp)
		return response, nil
	}
	body, err := redact.DecodedBody(resp)
	if err != nil {
		return response, fmt.Errorf("sophos: %s: %w", endpoint(req), err)
	}
	data, err := io.ReadAll(io.LimitReader(body, c.maxBody+1))
	if err != nil {
		return response, fmt.Errorf("sophos: %s: reading response: %w", endpoint(req), err)
	}
	if int64(len(data)) > c.maxBody {
		return response, fmt.Errorf("sophos: %s: response larger than %d bytes", endpoint(req), c.maxBody)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return response, fmt.Errorf("sophos: %s: decoding response: %w", endpoint(req), err)
	}
	return response, nil
}

// wait sleeps before retry attempt+1: ra when the server said, otherwise
// jittered exponential backoff. why is logged: an error in it goes
// through stripURL first, as in the error returned after the last retry.
func (c *Client) wait(ctx context.Context, req *http.Request, attempt int, ra time.Duration, why string) error {
	d := ra
	if d <= 0 {
		d = c.backoffBase << attempt
		if d > c.backoffMax || d <= 0 {
			d = c.backoffMax
		}
		d = d/2 + rand.N(d/2+1)
	}
	c.logger.Warn("Retrying Sophos request", "endpoint", endpoint(req), "attempt", attempt+1, "wait", d, "reason", c.redact.String(why))
	if err := c.sleep(ctx, d); err != nil {
		return fmt.Errorf("sophos: %s: %w", endpoint(req), err)
	}
	return nil
}

func retryable(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// maxRetryAfterHeader is the longest wait retryAfter returns: a count of
// seconds beyond some 292 years would overflow time.Duration (an
// arbitrary or negative wait, retried at once), or not parse at all (read
// as no Retry-After, retried after a backoff).
const maxRetryAfterHeader = 24 * time.Hour

// retryAfter parses a Retry-After header (seconds or an HTTP date), at most
// maxRetryAfterHeader; 0 when absent or unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if strings.Trim(h, "0123456789") == "" {
		// Digits only: past int64, ParseInt fails with ErrRange.
		s, err := strconv.ParseInt(h, 10, 64)
		if err != nil || s > int64(maxRetryAfterHeader/time.Second) {
			return maxRetryAfterHeader
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfterHeader)
	}
	return 0
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
}

// stripURL drops the URL from a *url.Error: endpoint() already names it,
// without the query, which a token URL set by hand may hold a secret in.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readErrorBody reads at most maxErrorBody bytes of an error response, as
// redact.ErrorBody does (decompressed from gzip, nothing of a body in
// another encoding), without its surrounding white space.
func readErrorBody(resp *http.Response) []byte {
	return bytes.TrimSpace(redact.ErrorBody(resp, maxErrorBody))
}
