package connectwise

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// FieldError is one entry of the "errors" array of a ConnectWise error
// response.
type FieldError struct {
	Code     string `json:"code,omitempty"`
	Message  string `json:"message,omitempty"`
	Resource string `json:"resource,omitempty"`
	Field    string `json:"field,omitempty"`
}

// ErrorResponse is an error response from ConnectWise:
// {"code": "InvalidObject", "message": "...", "errors": [...]}.
//
// It matches psa.ErrUnauthorized (401, 403; a 403 that does not speak of
// the credentials matches psa.ErrForbidden too), psa.ErrNotFound (404),
// psa.ErrConflict (409) and, for a 400, psa.ErrValidation:
// errors.As(err, new(*psa.ValidationError)) then yields the messages.
type ErrorResponse struct {
	// Response is the HTTP response: its status, its headers (redacted)
	// and a request with the method and URL only, none of the credentials
	// (see redact.Redactor.Response).
	Response *http.Response
	Code     string       `json:"code"`
	Message  string       `json:"message"`
	Errors   []FieldError `json:"errors"`

	wrapped error
}

// Error describes the response: method, URL without query, status, code and
// messages.
func (r *ErrorResponse) Error() string {
	return "connectwise: " + rest.DescribeResponse(r.Response, r.Code, r.messages())
}

// messages returns the top-level message followed by each field error.
func (r *ErrorResponse) messages() []string {
	var msgs []string
	if r.Message != "" {
		msgs = append(msgs, r.Message)
	}
	for _, e := range r.Errors {
		m := e.Message
		if m == "" {
			m = e.Code
		}
		if e.Field != "" {
			m = e.Field + ": " + m
		}
		if m != "" {
			msgs = append(msgs, m)
		}
	}
	return msgs
}

// Unwrap returns the matching psa error, if any.
func (r *ErrorResponse) Unwrap() error { return r.wrapped }

// CheckResponse returns nil for a 2xx response, and otherwise an error: a
// *psa.RateLimitError for 429 (with Retry-After), else an *ErrorResponse. It
// reads at most 1 MiB of the body. Messages are cut to redact.MaxText
// bytes each.
func CheckResponse(r *http.Response) error { return checkResponse(r, nil) }

// checkResponse is CheckResponse with the client's Redactor, which takes
// the credentials (the private key, and the Basic credential in every
// encoding) out of the messages: a server may echo the request's headers.
func checkResponse(r *http.Response, red *redact.Redactor) error {
	if c := r.StatusCode; 200 <= c && c <= 299 {
		return nil
	}
	data := rest.ReadErrorBody(r)
	er := &ErrorResponse{Response: red.Response(r)}
	_ = json.Unmarshal(data, er) // a non-JSON body leaves the fields empty
	if er.Message == "" {
		// Some gateways answer {"error": ..., "message": ...} or {"Message": ...}.
		var alt struct {
			Message string `json:"Message"`
		}
		if json.Unmarshal(data, &alt) == nil {
			er.Message = alt.Message
		}
	}
	er.Code, er.Message = red.String(er.Code), red.String(er.Message)
	for i := range er.Errors {
		fe := &er.Errors[i]
		fe.Code, fe.Message, fe.Field = red.String(fe.Code), red.String(fe.Message), red.String(fe.Field)
	}
	switch r.StatusCode {
	case http.StatusTooManyRequests:
		return &psa.RateLimitError{System: psa.SystemConnectWise, RetryAfter: rest.RetryAfter(r), Message: strings.Join(er.messages(), "; ")}
	case http.StatusUnauthorized, http.StatusForbidden:
		// A 403 may concern one company or board the member's security
		// role leaves out.
		er.wrapped = psa.Refused(r.StatusCode, append([]string{er.Code}, er.messages()...)...)
	case http.StatusNotFound:
		er.wrapped = psa.ErrNotFound
	case http.StatusConflict:
		er.wrapped = psa.ErrConflict
	case http.StatusBadRequest:
		// ConnectWise refuses a version in Accept it does not have (an
		// on-premises server not yet updated): say which one it has.
		if v := r.Header.Get("api-current-version"); v != "" && strings.Contains(strings.ToLower(er.Message), "does not support the api version") {
			er.Message += " This server's API version is " + red.String(v) + " (api-current-version): set the ConnectWise api_version setting to it."
		}
		msgs := er.messages()
		if len(msgs) == 0 {
			msgs = []string{"bad request"}
		}
		er.wrapped = &psa.ValidationError{System: psa.SystemConnectWise, Messages: msgs}
	}
	return er
}
