package autotask

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
)

// Timestamp is an Autotask date-time. Autotask writes them in several ISO
// 8601 forms (with or without fraction and zone); a missing zone means UTC.
// The zero Timestamp is encoded as null.
type Timestamp struct {
	time.Time
}

var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02",
}

// UnmarshalJSON parses any of the forms Autotask uses.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
		// A string without escapes, as Autotask writes them: its
		// content is the time (encoding/json has checked the rest).
		s = string(b[1 : n-1])
	} else if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("autotask: timestamp %s: %w", b, err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	for _, layout := range timestampLayouts {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("autotask: unrecognised timestamp %q", s)
}

// MarshalJSON writes the time as RFC 3339 in UTC, or null when zero.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(FormatTime(t.Time))
}

// NewTimestamp returns t as a *Timestamp, for request fields.
func NewTimestamp(t time.Time) *Timestamp { return &Timestamp{t} }

// Ptr returns a pointer to v, for the optional fields of update requests.
func Ptr[T any](v T) *T { return &v }

// UserDefinedField is a user-defined field value of an entity.
type UserDefinedField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// itemResponse is the envelope of GET /{Entity}/{id}.
type itemResponse[T any] struct {
	Item *T `json:"item"`

	// found is whether the answer has an item key (null included);
	// errors is the errors array of an answer that has none.
	found  bool
	errors []json.RawMessage
}

// UnmarshalJSON decodes the envelope and notes whether it has an item key:
// {"item": null} is Autotask's answer for an unknown id, an answer without
// the key is none.
func (r *itemResponse[T]) UnmarshalJSON(b []byte) error {
	var env struct {
		Item   json.RawMessage   `json:"item"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	r.found, r.errors = env.Item != nil, env.Errors
	if !r.found || bytes.Equal(env.Item, []byte("null")) {
		return nil
	}
	return json.Unmarshal(env.Item, &r.Item)
}

// listResponse is the envelope of a query response.
type listResponse[T any] struct {
	Items []*T `json:"items"`
	// Page is the pageDetails object, kept raw: Do reads it into the
	// Response as it would from any other body, without decoding the
	// page's items a second time.
	Page json.RawMessage `json:"pageDetails"`
	// Errors is the errors array of an answer that is not a page.
	Errors []json.RawMessage `json:"errors"`
}

// pageDetails returns the raw pageDetails object; ok is false when the
// response had none.
func (r *listResponse[T]) pageDetails() (raw []byte, ok bool) { return r.Page, r.Page != nil }

// validate checks every item that can check itself (see unitJSON).
func (r *listResponse[T]) validate() error {
	for _, it := range r.Items {
		if v, ok := any(it).(validator); ok {
			if err := v.validate(); err != nil {
				return err
			}
		}
	}
	return nil
}

// validator is a decoded response, or an item of one, that checks what
// encoding/json cannot: Do treats its error as the body's.
type validator interface{ validate() error }

// paged is a decoded query response that holds its pageDetails object.
type paged interface{ pageDetails() ([]byte, bool) }

// createResponse is the envelope of a create or update.
type createResponse struct {
	ItemID int64 `json:"itemId"`
	// Errors is an "errors" array in a 2xx answer, which has no itemId.
	Errors []json.RawMessage `json:"errors"`
}

// getItem reads one entity. Autotask answers an unknown id with 200 and
// {"item": null}, which becomes an error matching psa.ErrNotFound.
func getItem[T any](ctx context.Context, c *Client, path string) (*T, *Response, error) {
	req, err := c.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, err
	}
	var env itemResponse[T]
	resp, err := c.Do(ctx, req, &env)
	if err != nil {
		return nil, resp, err
	}
	if !env.found {
		return nil, resp, noEnvelopeError(c, resp, path, "item", env.errors)
	}
	if env.Item == nil {
		return nil, resp, &NotFoundError{Path: path}
	}
	return env.Item, resp, nil
}

// noEnvelopeError says that a 2xx answer resp to a read of path lacked key
// (a query page's items and pageDetails, a read's item), with the answer's
// errors, if any. Such an answer is neither an empty page nor an unknown
// id: read as one, a unit query would make every line look new. Without
// errors, it is not Autotask's answer at all (a *psa.NotAPIError: another
// product answering JSON at the address).
func noEnvelopeError(c *Client, resp *Response, path, key string, errs []json.RawMessage) error {
	m := c.redact.Strings(errorMessages(errs))
	if len(m) == 0 && resp != nil && resp.Response != nil && resp.Request != nil {
		return rest.NotAPIShape(psa.SystemAutotask, resp.Request, resp.Response, strconv.Quote(key))
	}
	msg := fmt.Sprintf("autotask: %s: the answer holds no %s", path, key)
	if len(m) > 0 {
		msg += ": " + strings.Join(m, "; ")
	}
	return errors.New(msg)
}

// NotFoundError is returned when Autotask answers a read with a null item.
// It matches psa.ErrNotFound.
type NotFoundError struct {
	// Path is the entity path, e.g. "Services/30000012".
	Path string
}

// Error names the missing entity.
func (e *NotFoundError) Error() string { return "autotask: " + e.Path + " not found" }

// Is reports whether target is psa.ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == psa.ErrNotFound }

// listItems runs a query with POST and follows nextPageUrl with the same
// method and body until the last page. The Response is the last page's.
// A 404 matches psa.ErrEndpointNotFound, not psa.ErrNotFound (see
// queryError): a query finds no row of an unknown record.
func listItems[T any](ctx context.Context, c *Client, path string, q *Query) ([]*T, *Response, error) {
	if err := q.Validate(); err != nil {
		return nil, nil, err
	}
	var all []*T
	next := path
	for {
		req, err := c.NewRequest(ctx, http.MethodPost, next, q)
		if err != nil {
			return all, nil, err
		}
		var env listResponse[T]
		resp, err := c.Do(ctx, req, &env)
		if err != nil {
			return all, resp, queryError(err)
		}
		if env.Items == nil && env.Page == nil {
			return all, resp, noEnvelopeError(c, resp, path, "items", env.Errors)
		}
		all = append(all, env.Items...)
		if resp.NextPageURL == "" || len(env.Items) == 0 {
			return all, resp, nil
		}
		if resp.NextPageURL == next {
			return all, resp, fmt.Errorf("autotask: %s: the server returned the same nextPageUrl twice", path)
		}
		next = resp.NextPageURL
	}
}

// listChild reads a parent-scoped collection with GET, following paging.
func listChild[T any](ctx context.Context, c *Client, path string) ([]*T, *Response, error) {
	var all []*T
	next := path
	for {
		req, err := c.NewRequest(ctx, http.MethodGet, next, nil)
		if err != nil {
			return all, nil, err
		}
		var env listResponse[T]
		resp, err := c.Do(ctx, req, &env)
		if err != nil {
			return all, resp, err
		}
		if env.Items == nil && env.Page == nil {
			return all, resp, noEnvelopeError(c, resp, path, "items", env.Errors)
		}
		all = append(all, env.Items...)
		if resp.NextPageURL == "" || len(env.Items) == 0 {
			return all, resp, nil
		}
		if resp.NextPageURL == next {
			return all, resp, fmt.Errorf("autotask: %s: the server returned the same nextPageUrl twice", path)
		}
		next = resp.NextPageURL
	}
}

// countItems runs a query/count. A 404 matches psa.ErrEndpointNotFound,
// as for listItems.
func countItems(ctx context.Context, c *Client, entity string, q *Query) (int64, *Response, error) {
	if err := q.Validate(); err != nil {
		return 0, nil, err
	}
	req, err := c.NewRequest(ctx, http.MethodPost, entity+"/query/count", q)
	if err != nil {
		return 0, nil, err
	}
	var cr countResponse
	resp, err := c.Do(ctx, req, &cr)
	if err != nil {
		return 0, resp, queryError(err)
	}
	return *cr.QueryCount, resp, nil
}

// countResponse is CountResponse as countItems reads it: an answer
// without queryCount is not Autotask's, not a count of 0.
type countResponse struct {
	QueryCount *int64 `json:"queryCount"`
}

func (r *countResponse) validate() error {
	if r.QueryCount == nil {
		return &missingKeyError{key: `"queryCount"`}
	}
	return nil
}

// write sends a create (POST) or update (PATCH) to a collection URL and
// returns the itemId. A create answered 2xx without an itemId (an empty
// body, 0, or an "errors" array) returns an *OutcomeUnknownError: the entity
// may or may not exist, and 0 is no id.
func write(ctx context.Context, c *Client, method, path string, body any) (int64, *Response, error) {
	req, err := c.NewRequest(ctx, method, path, body)
	if err != nil {
		return 0, nil, err
	}
	var cr createResponse
	resp, err := c.Do(ctx, req, &cr)
	if err != nil {
		return 0, resp, err
	}
	if cr.ItemID == 0 && method == http.MethodPost {
		msg := "the answer holds no itemId"
		errs := c.redact.Strings(errorMessages(cr.Errors))
		if len(errs) > 0 {
			msg += ": " + strings.Join(errs, "; ")
		}
		cause := errors.New(msg)
		if len(errs) == 0 && resp != nil && resp.Response != nil {
			// No itemId and no errors: not Autotask's answer.
			cause = rest.NotAPIShape(psa.SystemAutotask, req, resp.Response, `"itemId"`)
		}
		return 0, resp, &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: cause}
	}
	return cr.ItemID, resp, nil
}

func itemPath(entity string, id int64) string { return entity + "/" + strconv.FormatInt(id, 10) }

// contractChildPath is the path of a contract's child collection, such as
// Contracts/{id}/Services.
func contractChildPath(contractID int64, child string) string {
	return "Contracts/" + strconv.FormatInt(contractID, 10) + "/" + child
}

// normLabel folds a picklist label for comparison: lower case, letters and
// digits only, so "Semi-Annual", "semi annual" and "SemiAnnual" are equal.
func normLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
