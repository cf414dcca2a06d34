package kaseyabms

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// ErrorResponse is an error answer from Kaseya BMS: an HTTP error status,
// or a 200 whose envelope says success:false (how the spec models every
// error). The envelope's ErrorInfo, when there is one, fills Code, Message,
// Details and SubErrors; ASP.NET problem details (a 400 from model
// validation) fill Message with their title and SubErrors with each field's
// messages. The stack trace is never kept.
//
// It matches psa.ErrUnauthorized, psa.ErrNotFound or psa.ErrValidation (see
// CheckResponse); errors.As(err, new(*psa.ValidationError)) then yields the
// messages.
type ErrorResponse struct {
	// Response is the HTTP response: its status, its headers (redacted)
	// and a request with the method and URL only, none of the credentials
	// (see redact.Redactor.Response).
	Response  *http.Response
	Code      int
	Message   string
	Details   string
	SubErrors []string

	wrapped error
}

// Error describes the response: method, URL without query, status and messages.
func (r *ErrorResponse) Error() string {
	return "kaseyabms: " + rest.DescribeResponse(r.Response, "", r.messages())
}

func (r *ErrorResponse) messages() []string {
	var msgs []string
	for _, m := range append([]string{r.Message, r.Details}, r.SubErrors...) {
		if m = strings.TrimSpace(m); m != "" {
			msgs = append(msgs, m)
		}
	}
	return msgs
}

// Unwrap returns the matching psa error, if any.
func (r *ErrorResponse) Unwrap() error { return r.wrapped }

// CheckResponse returns nil for a 2xx response, and otherwise an error
// describing it: a *psa.RateLimitError for 429 (BMS documents no status or
// headers for throttling; 429 is assumed), else an *ErrorResponse that
// matches psa.ErrUnauthorized (401, 403; a 403 that does not speak of the
// credentials matches psa.ErrForbidden too), psa.ErrNotFound (404) or
// psa.ErrValidation (400, 409, 422). It reads at most 1 MiB of the body and
// understands the success:false envelope in any key casing.
//
// Messages are cut to redact.MaxText bytes each.
func CheckResponse(r *http.Response) error { return checkResponse(r, nil) }

// checkResponse is CheckResponse with the client's Redactor, which takes
// the password and the tokens out of the messages: a server may echo the
// request.
func checkResponse(r *http.Response, red *redact.Redactor) error {
	if c := r.StatusCode; 200 <= c && c <= 299 {
		return nil
	}
	data := rest.ReadErrorBody(r)
	var env envelope
	_ = json.Unmarshal(data, &env)
	er := &ErrorResponse{Response: red.Response(r)}
	if env.Error != nil {
		er.Code, er.Message, er.Details, er.SubErrors = env.Error.Code, env.Error.Message, env.Error.Details, env.Error.SubErrors
	}
	if er.Message == "" {
		// ASP.NET problem details or {"Message": "..."}.
		var alt struct {
			Message string          `json:"Message"`
			Title   string          `json:"Title"`
			Errors  json.RawMessage `json:"Errors"`
		}
		if json.Unmarshal(data, &alt) == nil {
			er.Message = cmpOr(alt.Message, alt.Title)
			er.SubErrors = append(er.SubErrors, fieldErrors(alt.Errors)...)
		}
	}
	er.scrub(red)
	if r.StatusCode == http.StatusTooManyRequests {
		return &psa.RateLimitError{
			System:     psa.SystemKaseyaBMS,
			RetryAfter: rest.RetryAfter(r),
			Message:    strings.Join(er.messages(), "; "),
		}
	}
	switch r.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		// A 403 may concern one account or location the user may not use.
		er.wrapped = psa.Refused(r.StatusCode, er.messages()...)
	case http.StatusNotFound:
		er.wrapped = psa.ErrNotFound
	case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity:
		er.wrapped = &psa.ValidationError{System: psa.SystemKaseyaBMS, Messages: cmpOrSlice(er.messages(), http.StatusText(r.StatusCode))}
	}
	return er
}

// fieldErrors reads the "errors" object of ASP.NET problem details (a
// model validation failure), {"Name": ["..."]}, as "Name: ..." messages
// sorted by field; anything else gives none.
func fieldErrors(raw json.RawMessage) []string {
	var byField map[string][]string
	if len(raw) == 0 || json.Unmarshal(raw, &byField) != nil {
		return nil
	}
	var out []string
	for _, field := range slices.Sorted(maps.Keys(byField)) {
		for _, m := range byField[field] {
			if field == "" {
				out = append(out, m)
			} else {
				out = append(out, field+": "+m)
			}
		}
	}
	return out
}

// scrub passes the vendor's texts through red.
func (r *ErrorResponse) scrub(red *redact.Redactor) {
	r.Message, r.Details = red.String(r.Message), red.String(r.Details)
	r.SubErrors = red.Strings(slices.Clone(r.SubErrors))
}

// newEnvelopeError maps a success:false envelope inside a 2xx. BMS
// documents no error codes, so the code is read as an HTTP status when it
// looks like one and the message decides otherwise.
func newEnvelopeError(r *http.Response, info *ErrorInfo, red *redact.Redactor) error {
	er := &ErrorResponse{Response: red.Response(r)}
	if info != nil {
		er.Code, er.Message, er.Details, er.SubErrors = info.Code, info.Message, info.Details, info.SubErrors
	}
	er.scrub(red)
	msgs := er.messages()
	text := strings.ToLower(strings.Join(msgs, " "))
	switch {
	case er.Code == http.StatusTooManyRequests || strings.Contains(text, "limit exceeded") || strings.Contains(text, "too many requests"):
		return &psa.RateLimitError{System: psa.SystemKaseyaBMS, RetryAfter: rest.RetryAfter(r), Hourly: true, Message: strings.Join(msgs, "; ")}
	case er.Code == http.StatusUnauthorized || er.Code == http.StatusForbidden ||
		strings.Contains(text, "unauthori") || strings.Contains(text, "invalid credentials") ||
		strings.Contains(text, "invalid username") || strings.Contains(text, "invalid user name") || strings.Contains(text, "password"):
		er.wrapped = psa.ErrUnauthorized
		if er.Code == http.StatusForbidden {
			er.wrapped = psa.Refused(er.Code, msgs...)
		}
	case er.Code == http.StatusNotFound || strings.Contains(text, "not found") || strings.Contains(text, "does not exist") || strings.Contains(text, "no record"):
		er.wrapped = psa.ErrNotFound
	default:
		ve := &psa.ValidationError{System: psa.SystemKaseyaBMS, Messages: cmpOrSlice(msgs, "request refused (success:false without a message)")}
		if er.Code >= http.StatusInternalServerError && er.Code <= 599 {
			// The server failed the request, as a 5xx would say.
			ve.Status = er.Code
		}
		er.wrapped = ve
	}
	return er
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cmpOrSlice(msgs []string, def string) []string {
	if len(msgs) > 0 {
		return msgs
	}
	return []string{def}
}

// IncompleteListError is returned when a listing ends with fewer records
// than its totalRecords says it matches: the server ignored PageNumber and
// answered a page again, or records went away while it was paged. The
// records read are returned with it, but they are not the whole list; a
// caller that needs the whole (FindTickets, to avoid a duplicate ticket)
// must not act on them.
type IncompleteListError struct {
	// Endpoint is the listing's path, such as /v2/servicedesk/tickets/search.
	Endpoint string
	// Got is the number of records read; Total is the last page's
	// totalRecords.
	Got, Total int
}

// Error names the endpoint and the counts.
func (e *IncompleteListError) Error() string {
	return fmt.Sprintf("kaseyabms: %s: paging ended after %d of the %d records totalRecords announces; the server may be ignoring PageNumber", e.Endpoint, e.Got, e.Total)
}
