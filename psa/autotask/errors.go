package autotask

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// ErrorResponse is an error response from Autotask. Autotask reports
// validation and business-rule failures as HTTP 500 with an "errors" array,
// and a wrong method with the ASP.NET {"Message": "..."} shape.
//
// It matches psa.ErrUnauthorized (401, 403; a 403 that does not speak of
// the credentials matches psa.ErrForbidden too), psa.ErrNotFound (404) and, for a 500
// carrying errors, psa.ErrValidation: errors.As(err, new(*psa.ValidationError))
// then yields the messages. A 500 whose messages say the API user lacks the
// permission ("does not have the adequate permissions") matches
// psa.ErrForbidden as well.
type ErrorResponse struct {
	// Response is the HTTP response: its status, its headers (redacted)
	// and a request with the method and URL only, none of the credentials
	// (see redact.Redactor.Response).
	Response *http.Response
	// Errors are the messages of the "errors" array.
	Errors []string
	// Message is the "Message" of an ASP.NET-shaped error (such as a 405).
	Message string

	wrapped error
}

// Error describes the response: method, URL without query, status and messages.
func (r *ErrorResponse) Error() string {
	msgs := r.Errors
	if r.Message != "" {
		msgs = append([]string{r.Message}, msgs...)
	}
	return "autotask: " + rest.DescribeResponse(r.Response, "", msgs)
}

// Unwrap returns the matching psa error, if any (a *psa.ValidationError or a
// sentinel).
func (r *ErrorResponse) Unwrap() error { return r.wrapped }

// CheckResponse returns nil for a 2xx response, and otherwise an error
// describing it: a *psa.RateLimitError when Autotask throttled the request
// (a 429, or a thread- or hourly-threshold message with any status), else an
// *ErrorResponse. It reads at most 1 MiB of the body. Messages are cut to
// redact.MaxText bytes each.
func CheckResponse(r *http.Response) error { return checkResponse(r, nil) }

// checkResponse is CheckResponse with the client's Redactor, which takes
// the credentials out of the messages: a server may echo the request's
// headers.
func checkResponse(r *http.Response, red *redact.Redactor) error {
	if c := r.StatusCode; 200 <= c && c <= 299 {
		return nil
	}
	data := rest.ReadErrorBody(r)
	er := &ErrorResponse{Response: red.Response(r)}
	er.Errors, er.Message = parseErrorBody(data)
	er.Errors, er.Message = red.Strings(er.Errors), red.String(er.Message)

	all := append([]string{er.Message}, er.Errors...)
	kind := throttleKind(all)
	if r.StatusCode == http.StatusTooManyRequests || kind != notThrottled {
		return &psa.RateLimitError{
			System:     psa.SystemAutotask,
			RetryAfter: rest.RetryAfter(r),
			Hourly:     kind == hourlyThreshold,
			Message:    strings.Join(nonEmpty(all), "; "),
		}
	}
	switch {
	case r.StatusCode == http.StatusUnauthorized, r.StatusCode == http.StatusForbidden:
		// 403 is Autotask's documented answer to a resource without the
		// permission (the security level of the API user), which may
		// concern one queue or company only.
		er.wrapped = psa.Refused(r.StatusCode, all...)
	case r.StatusCode == http.StatusNotFound:
		er.wrapped = psa.ErrNotFound
	case r.StatusCode >= 500 && len(er.Errors) > 0 && !isTimeout(er.Errors):
		er.wrapped = &psa.ValidationError{System: psa.SystemAutotask, Messages: er.Errors, Status: r.StatusCode}
		if lacksPermission(er.Errors) {
			// Autotask often answers a missing permission as a 500
			// rather than a 403. It stays a refusal (the request was
			// not applied, and concerns what it names, not the whole
			// PSA) and says which kind it is.
			er.wrapped = errors.Join(er.wrapped, psa.ErrForbidden)
		}
	}
	return er
}

// parseErrorBody reads the "errors" array (strings or {"message": ...}
// objects) and the ASP.NET "Message" from an error body.
func parseErrorBody(data []byte) (errs []string, message string) {
	var env struct {
		Errors  []json.RawMessage `json:"errors"`
		Message string            `json:"Message"`
	}
	if json.Unmarshal(data, &env) != nil {
		return nil, ""
	}
	return errorMessages(env.Errors), env.Message
}

// errorMessages reads the items of an "errors" array: strings, or
// {"message": ..., "field": ...} objects.
func errorMessages(raws []json.RawMessage) (errs []string) {
	for _, raw := range raws {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s != "" {
				errs = append(errs, s)
			}
			continue
		}
		var o struct {
			Message string `json:"message"`
			Field   string `json:"field"`
		}
		if json.Unmarshal(raw, &o) == nil && o.Message != "" {
			if o.Field != "" {
				errs = append(errs, o.Field+": "+o.Message)
			} else {
				errs = append(errs, o.Message)
			}
		}
	}
	return errs
}

type throttle int

const (
	notThrottled throttle = iota
	threadThreshold
	hourlyThreshold
)

// throttleKind recognises Autotask's throttling messages. The thread limit
// says "Thread Threshold Exceeded ... thread threshold of 3 threads"
// (internal code Itgenatr005); the hourly limit's wording is not documented,
// so any other "threshold ... exceeded" or request-limit message counts as it.
func throttleKind(msgs []string) throttle {
	for _, m := range msgs {
		l := strings.ToLower(m)
		switch {
		case strings.Contains(l, "thread threshold"), strings.Contains(l, "itgenatr005"):
			return threadThreshold
		case strings.Contains(l, "threshold") && (strings.Contains(l, "exceed") || strings.Contains(l, "hour") || strings.Contains(l, "suspend")),
			strings.Contains(l, "request limit"):
			return hourlyThreshold
		}
	}
	return notThrottled
}

// isThreadThreshold reports whether err is Autotask's refusal for the
// thread threshold: a request of the same integration code and endpoint
// was refused because three were in flight, in this process or another.
func isThreadThreshold(err error) bool {
	var rl *psa.RateLimitError
	return errors.As(err, &rl) && !rl.Hourly && throttleKind([]string{rl.Message}) == threadThreshold
}

// lacksPermission reports whether a 5xx's messages say that the API user
// lacks the permission for the request ("The logged in Resource does not
// have the adequate permissions to ...").
func lacksPermission(msgs []string) bool {
	for _, m := range msgs {
		if strings.Contains(strings.ToLower(m), "adequate permission") {
			return true
		}
	}
	return false
}

// isTimeout reports whether a 5xx carries a server-side timeout rather than
// a validation failure.
func isTimeout(msgs []string) bool {
	for _, m := range msgs {
		l := strings.ToLower(m)
		if strings.Contains(l, "timeout") || strings.Contains(l, "timed out") {
			return true
		}
	}
	return false
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
