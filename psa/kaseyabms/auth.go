package kaseyabms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
)

// Token is the result of POST /v2/security/authenticate and
// /v2/security/refreshtoken (TokenOutputDto). Its String method hides the
// tokens.
type Token struct {
	AccessToken          string `json:"AccessToken"`
	RefreshToken         string `json:"RefreshToken"`
	AccessTokenExpireOn  Time   `json:"AccessTokenExpireOn"`
	RefreshTokenExpireOn Time   `json:"RefreshTokenExpireOn"`
}

// String keeps the tokens out of logs.
func (t *Token) String() string {
	return fmt.Sprintf("kaseya bms token (redacted, expires %s)", t.AccessTokenExpireOn.Format(time.RFC3339))
}

// GoString keeps the tokens out of %#v output.
func (t *Token) GoString() string { return t.String() }

// errAuthFailed marks a failure of the authenticate endpoint itself, so Do
// does not try to re-authenticate after it.
var errAuthFailed = errors.New("kaseyabms: authentication failed")

// Authenticate signs in with the configured credentials (POST
// /v2/security/authenticate, form fields GrantType=password, UserName,
// Password, Tenant) and keeps the token for later requests. Requests
// authenticate by themselves; call it to check the credentials.
func (c *Client) Authenticate(ctx context.Context) (*Token, error) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	form := url.Values{}
	form.Set("GrantType", "password")
	form.Set("UserName", c.creds.username)
	form.Set("Password", c.creds.password)
	form.Set("Tenant", c.creds.tenant)
	tok, err := c.postToken(ctx, authenticatePath, form)
	if err != nil {
		return nil, err
	}
	c.token = tok
	return tok, nil
}

// accessToken returns a token that is valid for at least tokenMargin,
// refreshing or authenticating as needed.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	now := c.now()
	if t := c.token; t != nil && (t.AccessTokenExpireOn.IsZero() || now.Add(tokenMargin).Before(t.AccessTokenExpireOn.Time)) {
		return t.AccessToken, nil
	}
	if t := c.token; t != nil && t.RefreshToken != "" && (t.RefreshTokenExpireOn.IsZero() || now.Before(t.RefreshTokenExpireOn.Time)) {
		form := url.Values{}
		form.Set("AccessToken", t.AccessToken)
		form.Set("RefreshToken", t.RefreshToken)
		tok, err := c.postToken(ctx, refreshTokenPath, form)
		if err == nil {
			c.token = tok
			return tok.AccessToken, nil
		}
		if ctx.Err() != nil {
			return "", err
		}
		c.logger.Info("Refreshing the Kaseya BMS token failed; authenticating again", "err", err)
	}
	form := url.Values{}
	form.Set("GrantType", "password")
	form.Set("UserName", c.creds.username)
	form.Set("Password", c.creds.password)
	form.Set("Tenant", c.creds.tenant)
	tok, err := c.postToken(ctx, authenticatePath, form)
	if err != nil {
		c.token = nil
		return "", err
	}
	c.token = tok
	if c.signInFor403 {
		// Signed in for a 403: a 403 with this token is the request's
		// refusal, whichever request was sent with it (tokenGood).
		c.goodToken, c.signInFor403 = tok.AccessToken, false
	}
	return tok.AccessToken, nil
}

// dropToken forgets the access token a request was refused with, so the
// next request authenticates; a token another request has renewed since is
// kept. With forbidden (a 403 that does not speak of the credentials), the
// token signed in next is taken as good.
func (c *Client) dropToken(refused string, forbidden bool) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token != nil && c.token.AccessToken == refused {
		c.token = nil
		c.signInFor403 = forbidden
	}
}

// tokenGood reports whether tok is the access token known good, one BMS
// answered a request with rather than refusing it for the token; with
// good, it records tok as such first. A 403 with a token known good is
// the request's refusal, not the token's: Do does not sign in again for
// it.
func (c *Client) tokenGood(tok string, good bool) bool {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if good && tok != "" {
		c.goodToken = tok
	}
	return tok != "" && tok == c.goodToken
}

// postToken posts a security form and decodes the token, with the usual
// retries (authentication is safe to repeat). The caller holds tokenMu.
// The form goes as application/x-www-form-urlencoded, as every known
// client does; the spec lists multipart/form-data (see the package
// documentation).
func (c *Client) postToken(ctx context.Context, path string, form url.Values) (*Token, error) {
	u, err := c.baseURL.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: %w", err)
	}
	body := form.Encode()
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("kaseyabms: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.userAgent)
		var tok Token
		resp, err := c.send(ctx, req, &tok, false)
		if err == nil {
			if tok.AccessToken == "" && resp != nil && resp.bare {
				// JSON without BMS's envelope: another product's answer.
				return nil, rest.NotAPIShape(psa.SystemKaseyaBMS, req, resp.Response, `"result"`)
			}
			if tok.AccessToken == "" {
				return nil, fmt.Errorf("kaseyabms: %s: the answer holds no access token: %w", path, errAuthFailed)
			}
			c.redact.Set("token", tok.AccessToken, tok.RefreshToken)
			if exp := tok.AccessTokenExpireOn; !exp.IsZero() && !exp.After(c.now()) {
				// BMS documents no zone for the expiry, and a zone-less
				// one is read as UTC: written in the wall clock of a zone
				// behind UTC, a fresh token expires before it is used.
				// Renewing it by that time would renew it for every
				// request; it is used until BMS refuses it (a 401).
				c.logger.Warn("Kaseya BMS gave an access token whose expiry is already past; using it until Kaseya BMS refuses it",
					"path", path, "expires", exp.Format(time.RFC3339))
				tok.AccessTokenExpireOn = Time{}
			}
			return &tok, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, psa.ErrUnauthorized) || errors.Is(err, psa.ErrValidation) || errors.Is(err, psa.ErrNotFound) {
			// Wrong credentials: BMS answers success:false (or 400/401).
			return nil, &authError{err: err}
		}
		retry, wait, outErr := c.classify(req, err, true)
		if !retry || attempt >= c.maxRetries {
			return nil, outErr
		}
		if serr := c.sleep(ctx, c.backoff.Wait(attempt, wait)); serr != nil {
			return nil, serr
		}
	}
}

// authError is a refusal of the credentials by the authenticate or refresh
// endpoint. It matches psa.ErrUnauthorized.
type authError struct{ err error }

func (e *authError) Error() string {
	if e.addressNotFound() {
		return fmt.Sprintf("kaseyabms: the sign-in endpoint was not found at the configured address (check base_url or hostname "+
			"first, then the API user, password and tenant): %v", e.err)
	}
	return fmt.Sprintf("kaseyabms: the API user, password or tenant was refused: %v", e.err)
}

// Unwrap makes it match errAuthFailed and psa.ErrUnauthorized, and the
// sign-in's own error unless that matches psa.ErrNotFound: a sign-in
// refused as "not found" (an unknown user or tenant, or an address without
// the endpoint) is not the absence of the record a request asked for, and
// matching psa.ErrNotFound it was taken for one (a service or contract
// read by id, an account whose contracts were looked up, all reported
// missing instead of the sign-in's failure). An HTTP 404 matches
// psa.ErrEndpointNotFound instead.
func (e *authError) Unwrap() []error {
	errs := []error{errAuthFailed, psa.ErrUnauthorized}
	switch {
	case e.addressNotFound():
		return append(errs, psa.ErrEndpointNotFound)
	case errors.Is(e.err, psa.ErrNotFound):
		return errs
	}
	return append(errs, e.err)
}

// addressNotFound reports whether the sign-in was answered with an HTTP
// 404, which most likely comes from an address that is not the BMS API
// (a proxy, a path typed wrong, another server): BMS refuses credentials
// with 401 or a success:false envelope.
func (e *authError) addressNotFound() bool {
	var er *ErrorResponse
	return errors.As(e.err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}

// Time is a BMS date-time. It decodes RFC 3339 and the zone-less
// "2006-01-02T15:04:05[.fffffff]" form ASP.NET writes (read as UTC), and
// encodes RFC 3339.
type Time struct{ time.Time }

// timeLayouts are the forms Time accepts, most specific first.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", time.DateOnly}

// UnmarshalJSON parses a JSON string or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		t.Time = time.Time{}
		return nil
	}
	for _, l := range timeLayouts {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("kaseyabms: cannot parse time %q", s)
}

// MarshalJSON writes RFC 3339, or null for the zero time.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(time.RFC3339) + `"`), nil
}
