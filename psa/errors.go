package psa

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. Backends return errors that match these with errors.Is;
// the typed errors below carry the details.
var (
	// ErrNotFound means the object does not exist in the PSA.
	ErrNotFound = errors.New("psa: not found")
	// ErrUnauthorized means the PSA rejected the credentials, or (see
	// ErrForbidden) refused the API user a request.
	ErrUnauthorized = errors.New("psa: unauthorized")
	// ErrForbidden means the PSA took the credentials but refused the API
	// user this one request (an HTTP 403 that does not speak of the
	// credentials): the user's security role or permissions may leave out
	// the company, queue, board or location it names, while other requests
	// go through. It matches ErrUnauthorized too, so a caller that does not
	// tell the two apart takes it as refused access.
	ErrForbidden error = forbidden{}
	// ErrRateLimited means the PSA throttled the request; see RateLimitError.
	ErrRateLimited = errors.New("psa: rate limited")
	// ErrConflict means the request conflicts with the PSA's state or is
	// ambiguous (two objects where one was expected); see AmbiguousError.
	ErrConflict = errors.New("psa: conflict")
	// ErrValidation means the PSA refused the request; see ValidationError.
	ErrValidation = errors.New("psa: validation failed")
	// ErrNotSupported means the PSA cannot do what was asked.
	ErrNotSupported = errors.New("psa: not supported")
	// ErrOutcomeUnknown means a non-idempotent write may or may not have been
	// applied and a re-read could not tell which. The caller must reconcile
	// before writing again.
	ErrOutcomeUnknown = errors.New("psa: outcome of write unknown")
	// ErrNotApplied means a write certainly was not applied: it was never
	// sent, or the PSA refused every attempt of it before processing it
	// (throttled each). Only the calls whose documentation says so
	// report it (Ticketer.CreateTicket and SetTicketStatus); see
	// NotApplied.
	ErrNotApplied = errors.New("psa: write not applied")
	// ErrStatusSetNoteFailed means a status change was applied but the
	// note that goes with it, added by a request of its own after it,
	// failed (the error it wraps says how; its outcome may be unknown):
	// Ticketer.SetTicketStatus reports it so (see StatusSetNoteFailed),
	// and the caller records the status as set and settles the note.
	ErrStatusSetNoteFailed = errors.New("psa: status set, its note failed")
	// ErrEndpointNotFound means the PSA answered 404 to a request that
	// names no record (a query), so the endpoint itself is missing at the
	// configured address: a base URL that is not the tenant's, or a proxy.
	// It does not match ErrNotFound, which would take every record the
	// query looked for as missing.
	ErrEndpointNotFound = errors.New("psa: endpoint not found")
	// ErrNotAPI means the PSA's address answered a request with success
	// (2xx) but not with the API's answer: an HTML page (a proxy's or a
	// single sign-on's login page, a captive portal, a load balancer's
	// maintenance page) or JSON without what the API's answer to that
	// request must hold (another product on that host). Every request to
	// the address is answered alike, so it concerns the PSA as a whole,
	// never one record: it matches neither ErrNotFound nor an empty
	// answer. See NotAPIError.
	ErrNotAPI = errors.New("psa: the answer is not the PSA API's")
)

// NotAPIError is a 2xx answer that is not the PSA API's (see ErrNotAPI).
// It matches ErrNotAPI. It never quotes the page: Answer only describes
// it (an HTML page's title, redacted and cut short).
type NotAPIError struct {
	System System
	// Method and URL are the request's; URL has no query.
	Method, URL string
	// Host is the host that answered: another than URL's when the client
	// followed a redirect (a proxy sending it to its sign-in page).
	Host   string
	Status int
	// Answer says what came instead of the API's answer, such as
	// `an HTML page titled "Sign in"` or `JSON without "items"`.
	Answer string
}

// Error says what answered and what to check.
func (e *NotAPIError) Error() string {
	var b strings.Builder
	// The clients' prefix: the package's name ("kaseyabms").
	fmt.Fprintf(&b, "%s: %s %s: the answer is %s (HTTP %d", strings.ReplaceAll(string(e.System), "_", ""), e.Method, e.URL, e.Answer, e.Status)
	if e.Host != "" {
		if u, err := url.Parse(e.URL); err != nil || !strings.EqualFold(u.Host, e.Host) {
			fmt.Fprintf(&b, " from %s, after a redirect", e.Host)
		}
	}
	fmt.Fprintf(&b, "), not the %s API's: a proxy, a sign-in or maintenance page, or another server answers at the configured address; check the base URL setting (base_url)", e.System.Title())
	return b.String()
}

// Is reports whether target is ErrNotAPI.
func (e *NotAPIError) Is(target error) bool { return target == ErrNotAPI }

// NotApplied returns err, the failure of a write that certainly was not
// applied, such that it matches ErrNotApplied too.
func NotApplied(err error) error { return notApplied{err} }

type notApplied struct{ error }

// StatusSetNoteFailed returns err, the failure of the note added after a
// status change that was applied, such that it matches
// ErrStatusSetNoteFailed too.
func StatusSetNoteFailed(err error) error { return statusSetNoteFailed{err} }

type statusSetNoteFailed struct{ error }

func (e statusSetNoteFailed) Unwrap() error        { return e.error }
func (e statusSetNoteFailed) Is(target error) bool { return target == ErrStatusSetNoteFailed }

func (e notApplied) Unwrap() error        { return e.error }
func (e notApplied) Is(target error) bool { return target == ErrNotApplied }

type forbidden struct{}

func (forbidden) Error() string { return "psa: forbidden" }

// Is reports whether target is ErrUnauthorized.
func (forbidden) Is(target error) bool { return target == ErrUnauthorized }

// Refused returns the sentinel of a PSA's 401 or 403 answer whose messages
// are msgs: ErrUnauthorized for a 401 and for a 403 whose messages speak of
// the credentials or of the API user as a whole (authentication, a password
// or token, a user that is inactive, disabled or locked, a licence),
// ErrForbidden for any other 403.
func Refused(status int, msgs ...string) error {
	if status != http.StatusForbidden {
		return ErrUnauthorized
	}
	text := strings.ToLower(strings.Join(msgs, " "))
	for _, w := range []string{"authenticat", "credential", "password", "token", "inactive", "disabled", "locked", "licen"} {
		if strings.Contains(text, w) {
			return ErrUnauthorized
		}
	}
	return ErrForbidden
}

// RateLimitError is returned when the PSA throttles a request.
type RateLimitError struct {
	System System
	// RetryAfter is how long the PSA asked to wait; zero when it did not say.
	RetryAfter time.Duration
	// Hourly is true when the hourly request budget is exhausted (as opposed
	// to a concurrency limit).
	Hourly bool
	// Waited is how long the client waited over its retries for the PSA
	// to take the request before it gave up, for the refusals it retries
	// for a time rather than a number of times: Autotask's thread
	// threshold (another process of the same credentials kept the
	// endpoint busy all that time) and ConnectWise's 429 to a read. Zero
	// when it gave up for another reason.
	Waited  time.Duration
	Message string
}

func (e *RateLimitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: rate limited", e.System)
	if e.Hourly {
		b.WriteString(" (hourly request budget exhausted)")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Waited > 0 {
		fmt.Fprintf(&b, ", still refused after %s of retries", e.Waited.Round(time.Second))
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Is reports whether target is ErrRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// ValidationError carries the PSA's own messages when it refuses a request.
type ValidationError struct {
	System   System
	Messages []string
	// Field, when set, is the attribute of a service that the values are
	// refused for, as the provider's schema names it: one of the system's
	// own block (Kaseya BMS: "category", "subcategory", "unit_of_measure";
	// Autotask: "billing_code_id", "period_type") or, when the block has
	// none of that name, of the service itself ("name", "billing_period").
	Field string
	// Holder, when set, is the id of the object that holds the refused
	// value already: the ConnectWise catalog item with the product id, the
	// Kaseya BMS service with the name.
	Holder string
	// Status, when set, is the HTTP status of the answer that refused the
	// request where it is a server error (5xx; on Kaseya BMS, the code of a
	// success:false envelope that reads as one): Autotask refuses a request
	// that way (its business rules answer 500), but so does a tenant or a
	// proxy that fails every request with the same body.
	Status int
}

func (e *ValidationError) Error() string {
	if len(e.Messages) == 0 {
		return fmt.Sprintf("%s: request refused", e.System)
	}
	return fmt.Sprintf("%s: %s", e.System, strings.Join(e.Messages, "; "))
}

// Is reports whether target is ErrValidation.
func (e *ValidationError) Is(target error) bool { return target == ErrValidation }

// AmbiguousError is returned when a lookup that must find one object finds
// several. Matches describes each candidate (for example "Acme (id 174)").
type AmbiguousError struct {
	// Kind is the kind of object, e.g. "company".
	Kind string
	// Query says what was looked up, e.g. `name "Acme"`.
	Query   string
	Matches []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%s %s is ambiguous: %d matches: %s", e.Kind, e.Query, len(e.Matches), strings.Join(e.Matches, ", "))
}

// Is reports whether target is ErrConflict.
func (e *AmbiguousError) Is(target error) bool { return target == ErrConflict }

// ContractErrors is what a backend's ReadLines returns, together with the
// lines of every other contract, when some contracts could not be read for
// reasons of their own (a line psa-syncd cannot represent, a service or
// product on the contract twice): errors that concern the whole PSA
// (credentials, rate limits, outages) are returned alone, with no lines.
// errors.Is and errors.As see every per-contract error (Unwrap returns them
// all); a caller that knows ContractErrors (through its ContractErrors
// method) uses the lines it got and fails only the contracts listed.
type ContractErrors struct {
	// System names the PSA in the message ("autotask"), and Noun what it
	// calls a contract ("contract", "agreement").
	System, Noun string
	// Errors maps a contract id, spelled as the caller gave it, to its error.
	Errors map[string]error
}

// Error lists the failed contracts in id order.
func (e *ContractErrors) Error() string {
	ids := e.ids()
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s %s: %v", e.Noun, id, e.Errors[id]))
	}
	return fmt.Sprintf("%s: %d of the %ss could not be read: %s", e.System, len(ids), e.Noun, strings.Join(parts, "; "))
}

// Unwrap returns the per-contract errors in contract id order.
func (e *ContractErrors) Unwrap() []error {
	ids := e.ids()
	out := make([]error, 0, len(ids))
	for _, id := range ids {
		out = append(out, e.Errors[id])
	}
	return out
}

// ContractErrors returns the per-contract errors; callers may match it
// with the interface{ ContractErrors() map[string]error }.
func (e *ContractErrors) ContractErrors() map[string]error { return e.Errors }

// ids returns the contract ids in numeric order (then as text).
func (e *ContractErrors) ids() []string {
	ids := slices.Collect(maps.Keys(e.Errors))
	slices.SortFunc(ids, func(a, b string) int {
		x, _ := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		y, _ := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		return cmp.Or(cmp.Compare(x, y), strings.Compare(a, b))
	})
	return ids
}
