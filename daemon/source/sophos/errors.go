package sophos

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// ErrNoData means Sophos has no usage report for the requested month (the
// API answers 404, for example for the current or a future month).
var ErrNoData = errors.New("sophos: no usage data for this month yet")

// ErrorResponse is an error answer of the Central API, with the fields of its
// error envelope. It matches psa.ErrNotFound for 404 and psa.ErrUnauthorized
// for 401 and 403 with errors.Is.
type ErrorResponse struct {
	// Response is the HTTP response: its status, its headers (redacted)
	// and a request with the method and URL only, none of the credentials
	// (see redact.Redactor.Response).
	Response *http.Response `json:"-"`
	// Endpoint is the method and path, e.g. "GET /partner/v1/tenants".
	Endpoint string `json:"-"`

	ErrorName     string `json:"error"`
	Message       string `json:"message"`
	Code          string `json:"code"`
	CorrelationID string `json:"correlationId"`
	RequestID     string `json:"requestId"`
	CreatedAt     string `json:"createdAt"`
	DocURL        string `json:"docUrl"`
	// Body is the raw body when it was not the JSON envelope (at most 1 MiB;
	// shortened in Error).
	Body string `json:"-"`
}

// Error returns "sophos: <method> <path>: <status>: <message> (requestId <id>)".
func (e *ErrorResponse) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sophos: %s: %s", e.Endpoint, e.Response.Status)
	switch {
	case e.Message != "":
		fmt.Fprintf(&b, ": %s", e.Message)
	case e.Body != "":
		fmt.Fprintf(&b, ": %s", shorten(e.Body, 200))
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (requestId %s)", e.RequestID)
	}
	return b.String()
}

// Is reports whether target is psa.ErrNotFound (404) or psa.ErrUnauthorized
// (401, 403).
func (e *ErrorResponse) Is(target error) bool {
	switch e.Response.StatusCode {
	case http.StatusNotFound:
		return target == psa.ErrNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return target == psa.ErrUnauthorized
	}
	return false
}

// noData reports whether e is Sophos's answer for a month without a usage
// report: a 404 in the API's error envelope whose message says there is no
// data ("No data for requested year or month"). Any other 404 of the usage
// report (a proxy's page, a path the API does not serve, or an answer for
// a partner without monthly usage billing, for which the report does not
// exist) says nothing of the month's usage: read as a month without a
// report yet, it would leave every tenant's usage unread until the month
// is over, as a warning only.
func (e *ErrorResponse) noData() bool {
	return e.Response.StatusCode == http.StatusNotFound && e.Body == "" &&
		strings.Contains(strings.ToLower(e.Message), "no data")
}

// RateLimitError is returned when the API still answers 429 after the
// retries, or asks to wait longer than the client will.
type RateLimitError struct {
	Endpoint string
	// RetryAfter is what the Retry-After header asked for; 0 when absent.
	RetryAfter time.Duration
	Message    string
}

// Error returns "sophos: <method> <path>: rate limited, retry after <d>".
func (e *RateLimitError) Error() string {
	msg := fmt.Sprintf("sophos: %s: rate limited", e.Endpoint)
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is reports whether target is psa.ErrRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == psa.ErrRateLimited }

// AuthError is a refused token request. ErrorCode is Sophos ID's code, such
// as "oauth.invalid_client_secret". It matches psa.ErrUnauthorized for 400
// and 401.
type AuthError struct {
	StatusCode int
	Status     string
	ErrorCode  string `json:"errorCode"`
	Message    string `json:"message"`
	TrackingID string `json:"trackingId"`
	Body       string `json:"-"`
}

// Error says the token request was refused, with Sophos ID's code and a
// hint; it never contains the credentials.
func (e *AuthError) Error() string {
	msg := "sophos: token request refused: " + e.Status
	switch {
	case e.ErrorCode != "" && e.Message != "":
		msg += fmt.Sprintf(": %s (%s)", e.Message, e.ErrorCode)
	case e.ErrorCode != "":
		msg += ": " + e.ErrorCode
	case e.Body != "":
		msg += ": " + shorten(e.Body, 200)
	}
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusBadRequest {
		msg += "; check the API credential's client id and secret"
	}
	if e.TrackingID != "" {
		msg += fmt.Sprintf(" (trackingId %s)", e.TrackingID)
	}
	return msg
}

// Is reports whether target is psa.ErrUnauthorized (400 and 401).
func (e *AuthError) Is(target error) bool {
	return target == psa.ErrUnauthorized && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusBadRequest)
}

// checkResponse returns nil for 2xx and a typed error otherwise.
func (c *Client) checkResponse(req *http.Request, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	body := readErrorBody(resp)
	e := &ErrorResponse{Response: c.redact.Response(resp), Endpoint: endpoint(req)}
	if json.Unmarshal(body, e) != nil || (e.ErrorName == "" && e.Message == "") {
		e.Body = string(body)
	}
	// Every text of the answer is cut and loses the credentials: a server
	// may echo the request.
	for _, f := range []*string{&e.ErrorName, &e.Message, &e.Code, &e.CorrelationID, &e.RequestID, &e.CreatedAt, &e.DocURL, &e.Body} {
		*f = c.redact.String(*f)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return &RateLimitError{Endpoint: e.Endpoint, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), c.now()), Message: e.Message}
	}
	return e
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
