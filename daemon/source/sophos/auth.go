package sophos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// tokenResponse is Sophos ID's answer to a token request.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	ErrorCode   string `json:"errorCode"`
	Message     string `json:"message"`
}

// accessToken returns the cached token, fetching a new one when there is
// none or it expires within a minute.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token != "" && c.now().Before(c.tokenExpiry) {
		return c.token, nil
	}
	tok, lifetime, err := c.fetchToken(ctx)
	if err != nil {
		return "", err
	}
	margin := tokenMargin
	if lifetime <= 2*tokenMargin {
		margin = lifetime / 10
	}
	c.token, c.tokenExpiry = tok, c.now().Add(lifetime-margin)
	return tok, nil
}

// invalidateToken forgets tok if it is still the cached token, so that of
// several callers refused with the same token only one fetches a new one.
func (c *Client) invalidateToken(tok string) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token == tok {
		c.token = ""
	}
}

// fetchToken runs the client-credentials grant, retrying 429, 5xx and
// network errors like Do. The secret travels only in the form body; no error
// or log line contains it.
func (c *Client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.clientID},
		"client_secret": {c.clientSecret},
		"scope":         {"token"},
	}.Encode()
	const what = "POST token endpoint"
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.authURL.String(), strings.NewReader(form))
		if err != nil {
			return "", 0, fmt.Errorf("sophos: token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.userAgent)
		resp, err := c.httpClient.Do(req)
		if err != nil {
			if ctx.Err() == nil && attempt < c.maxRetries {
				if err := c.wait(ctx, req, attempt, 0, stripURL(err).Error()); err != nil {
					return "", 0, err
				}
				continue
			}
			return "", 0, fmt.Errorf("sophos: token request to %s: %w", c.authURL.Host, stripURL(err))
		}
		if retryable(resp.StatusCode) && attempt < c.maxRetries {
			if ra := retryAfter(resp.Header.Get("Retry-After"), c.now()); ra <= c.maxRetryAfter {
				drain(resp)
				if err := c.wait(ctx, req, attempt, ra, resp.Status); err != nil {
					return "", 0, err
				}
				continue
			}
		}
		return c.tokenFromResponse(resp, what)
	}
}

func (c *Client) tokenFromResponse(resp *http.Response, what string) (string, time.Duration, error) {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body := readErrorBody(resp)
		e := &AuthError{StatusCode: resp.StatusCode, Status: c.redact.String(resp.Status)}
		if json.Unmarshal(body, e) != nil || e.ErrorCode == "" {
			e.Body = string(body)
		}
		e.ErrorCode, e.Message, e.TrackingID, e.Body = c.redact.String(e.ErrorCode), c.redact.String(e.Message), c.redact.String(e.TrackingID), c.redact.String(e.Body)
		if resp.StatusCode == http.StatusTooManyRequests {
			return "", 0, &RateLimitError{Endpoint: what, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), c.now()), Message: e.Message}
		}
		return "", 0, e
	}
	body, err := redact.DecodedBody(resp)
	if err != nil {
		return "", 0, fmt.Errorf("sophos: %s: %w", what, err)
	}
	data, err := io.ReadAll(io.LimitReader(body, maxErrorBody))
	if err != nil {
		return "", 0, fmt.Errorf("sophos: %s: reading response: %w", what, err)
	}
	var tr tokenResponse
	if err := json.Unmarshal(data, &tr); err != nil {
		return "", 0, fmt.Errorf("sophos: %s: decoding response: %w", what, err)
	}
	if tr.AccessToken == "" {
		return "", 0, fmt.Errorf("sophos: %s: response has no access_token", what)
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		return "", 0, fmt.Errorf("sophos: %s: token type %q is not bearer", what, c.redact.String(tr.TokenType))
	}
	c.redact.Set("token", tr.AccessToken)
	lifetime := time.Duration(tr.ExpiresIn) * time.Second
	if lifetime <= 0 {
		lifetime = defaultTokenLifetime
	}
	return tr.AccessToken, lifetime, nil
}

// partner returns the partner id and the host for partner calls, asking
// whoami on first use. A failure is not cached.
func (c *Client) partner(ctx context.Context) (string, *url.URL, error) {
	c.partnerMu.Lock()
	defer c.partnerMu.Unlock()
	if c.partnerID != "" {
		return c.partnerID, c.partnerBase, nil
	}
	who, _, err := c.WhoAmI.Get(ctx)
	if err != nil {
		return "", nil, err
	}
	if who.IDType != "partner" {
		return "", nil, fmt.Errorf("sophos: the API credential belongs to a %s (id %s), not a partner; create the credential in Sophos Central Partner", who.IDType, who.ID)
	}
	if who.ID == "" {
		return "", nil, errors.New("sophos: GET /whoami/v1: response has no partner id")
	}
	base := c.baseURL
	if !c.baseURLSet && who.APIHosts.Global != "" {
		// Partner APIs are global; follow the host whoami names unless the
		// user pinned one. Only over TLS: the vendor's own example answer
		// names an http:// host, and the bearer token must not travel in
		// clear text. Nor to a host outside Central (a spoofed answer, a
		// proxy's rewrite): the token is the partner's.
		u, err := parseURL(who.APIHosts.Global, true)
		if err != nil {
			return "", nil, fmt.Errorf("sophos: GET /whoami/v1: apiHosts.global: %w", err)
		}
		switch {
		case u.Scheme != "https":
			c.logger.Warn("Ignoring non-TLS API host from whoami", "host", u.Host)
		case !c.centralHost(u):
			c.logger.Warn("Ignoring API host from whoami that is not a Sophos Central host", "host", u.Host, "want", "*."+centralDomain)
		default:
			base = u
		}
	}
	c.partnerID, c.partnerBase = who.ID, base
	return c.partnerID, c.partnerBase, nil
}

// PartnerID returns the partner id of the credentials (from whoami, cached).
func (c *Client) PartnerID(ctx context.Context) (string, error) {
	id, _, err := c.partner(ctx)
	return id, err
}
