package connectwise

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
)

// Time is a ConnectWise date-time, written yyyy-MM-ddTHH:mm:ssZ. The zero
// Time is encoded as null.
type Time struct {
	time.Time
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"}

// UnmarshalJSON parses ConnectWise's date-time forms; null is the zero Time.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("connectwise: time %s: %w", b, err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	for _, l := range timeLayouts {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("connectwise: unrecognised time %q", s)
}

// MarshalJSON writes the time in UTC, or null when zero.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(FormatTime(t.Time))
}

// NewTime returns t as a *Time, for request fields.
func NewTime(t time.Time) *Time { return &Time{t} }

// Ptr returns a pointer to v, for optional request fields.
func Ptr[T any](v T) *T { return &v }

// Reference is ConnectWise's reference to another object: {id, name} or
// {id, identifier}, with _info links.
type Reference struct {
	ID         int64             `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Identifier string            `json:"identifier,omitempty"`
	Info       map[string]string `json:"_info,omitempty"`
}

// ListOptions are the query parameters of a list request.
type ListOptions struct {
	// Conditions filters the records; the zero Condition returns all.
	Conditions Condition
	// ChildConditions filters on child collections, such as
	// `types/id=5`; it is sent as given.
	ChildConditions Condition
	// Fields limits the response to these fields (nested paths with /).
	Fields []string
	// OrderBy sorts, such as "id asc"; not allowed with ForwardOnly.
	OrderBy string
	// PageSize is the number of records per page, 1 to MaxPageSize; 0
	// means MaxPageSize (ConnectWise's own default is 25).
	PageSize int
	// Page is the first page to read (1-based); 0 means 1.
	Page int
	// ForwardOnly asks for keyset paging (the pagination-type:
	// forward-only header), which stays fast deep into large collections.
	// Endpoints that do not support it answer without a Link header; the
	// client then fails rather than silently return one page of many.
	ForwardOnly bool
}

var orderByRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_/]* (asc|desc)$`)

func (o *ListOptions) query() (url.Values, error) {
	q := url.Values{}
	if o == nil {
		q.Set("pageSize", strconv.Itoa(MaxPageSize))
		return q, nil
	}
	if err := o.Conditions.Err(); err != nil {
		return nil, err
	}
	if err := o.ChildConditions.Err(); err != nil {
		return nil, err
	}
	if s := o.Conditions.String(); s != "" {
		q.Set("conditions", s)
	}
	if s := o.ChildConditions.String(); s != "" {
		q.Set("childConditions", s)
	}
	if len(o.Fields) > 0 {
		for _, f := range o.Fields {
			if !fieldPath.MatchString(f) {
				return nil, fmt.Errorf("connectwise: invalid field %q in fields", f)
			}
		}
		q.Set("fields", strings.Join(o.Fields, ","))
	}
	if o.OrderBy != "" {
		if o.ForwardOnly {
			return nil, fmt.Errorf("connectwise: orderBy cannot be used with forward-only paging")
		}
		if !orderByRE.MatchString(o.OrderBy) {
			return nil, fmt.Errorf("connectwise: orderBy %q is not \"field asc|desc\"", o.OrderBy)
		}
		q.Set("orderBy", o.OrderBy)
	}
	size := o.PageSize
	if size == 0 {
		size = MaxPageSize
	}
	if size < 1 || size > MaxPageSize {
		return nil, fmt.Errorf("connectwise: pageSize must be between 1 and %d, got %d", MaxPageSize, o.PageSize)
	}
	q.Set("pageSize", strconv.Itoa(size))
	if o.Page > 1 && !o.ForwardOnly {
		q.Set("page", strconv.Itoa(o.Page))
	}
	return q, nil
}

// getOne reads one object.
func getOne[T any](ctx context.Context, c *Client, path string, fields []string) (*T, *Response, error) {
	if len(fields) > 0 {
		path += "?fields=" + url.QueryEscape(strings.Join(fields, ","))
	}
	req, err := c.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, err
	}
	v := new(T)
	resp, err := c.Do(ctx, req, v)
	if err != nil {
		return nil, resp, err
	}
	if len(fields) == 0 && lacksID(v) {
		return nil, resp, rest.NotAPIShape(psa.SystemConnectWise, req, respOf(resp), `"id"`)
	}
	return v, resp, nil
}

// lacksID reports whether v, a decoded ConnectWise object, has an id
// field that the answer left 0: every object ConnectWise answers a read
// or a write of by id holds its id, so the answer was not ConnectWise's
// (another product's JSON at the address). A type without an ID field
// is never reported.
func lacksID(v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return false
	}
	f := rv.Elem().FieldByName("ID")
	return f.IsValid() && f.CanInt() && f.Int() == 0
}

// respOf returns the HTTP response of resp, or nil.
func respOf(resp *Response) *http.Response {
	if resp == nil {
		return nil
	}
	return resp.Response
}

// listAll reads every page of a list, following the Link header's
// rel="next" (navigable or forward-only), keeping the original conditions.
// The Response is the last page's.
//
// A full navigable page without a Link header is not taken for the last:
// ConnectWise sends one whenever more pages follow, but a proxy or cache
// that drops it would otherwise end the list early, and an agreement's
// additions read short are added again. The next page is asked for by
// number (page=N+1), as clients that ignore Link do, until a page comes
// back short or empty; a page that repeats the one before (a server that
// ignores page) is an error.
func listAll[T any](ctx context.Context, c *Client, path string, opts *ListOptions) ([]*T, *Response, error) {
	q, err := opts.query()
	if err != nil {
		return nil, nil, err
	}
	forward := opts != nil && opts.ForwardOnly
	size, _ := strconv.Atoi(q.Get("pageSize"))
	next := path + "?" + q.Encode()
	seen := map[string]bool{}
	var all []*T
	var prev *T // the first record of the page before, when it was asked for by number
	pageNo := 0
	for {
		page, resp, err := getPage[T](ctx, c, next, forward)
		if err != nil {
			return all, resp, err
		}
		if prev != nil && len(page) > 0 && reflect.DeepEqual(page[0], prev) {
			return all, resp, fmt.Errorf("connectwise: %s: page %d repeats page %d, and no Link header says which page follows: the list cannot be read whole", path, pageNo, pageNo-1)
		}
		all = append(all, page...)
		seen[next] = true
		if !forward && resp.NextPageURL == "" && size > 0 && len(page) == size {
			pageNo = pageOf(next) + 1
			q.Set("page", strconv.Itoa(pageNo))
			next, prev = path+"?"+q.Encode(), page[0]
			continue
		}
		prev = nil
		if resp.NextPageURL == "" || len(page) == 0 {
			if forward && resp.NextPageURL == "" && len(page) == size {
				return all, resp, fmt.Errorf("connectwise: %s: full page without a Link header: the endpoint does not support forward-only paging", path)
			}
			return all, resp, nil
		}
		if seen[resp.NextPageURL] {
			return all, resp, fmt.Errorf("connectwise: %s: the server returned the same next page twice", path)
		}
		next = resp.NextPageURL
	}
}

// pageOf returns the page number a list URL asks for: its page
// parameter, 1 without one.
func pageOf(u string) int {
	if parsed, err := url.Parse(u); err == nil {
		if n, err := strconv.Atoi(parsed.Query().Get("page")); err == nil && n > 0 {
			return n
		}
	}
	return 1
}

// listPage reads one page of a list, the one opts.Page names (the first by
// default), without following the Link header; the Response's NextPageURL
// says whether more follow.
func listPage[T any](ctx context.Context, c *Client, path string, opts *ListOptions) ([]*T, *Response, error) {
	q, err := opts.query()
	if err != nil {
		return nil, nil, err
	}
	return getPage[T](ctx, c, path+"?"+q.Encode(), opts != nil && opts.ForwardOnly)
}

// getPage sends one GET of a list page, urlStr being relative to the API
// root or the absolute URL of a Link header.
func getPage[T any](ctx context.Context, c *Client, urlStr string, forward bool) ([]*T, *Response, error) {
	req, err := c.NewRequest(ctx, http.MethodGet, urlStr, nil)
	if err != nil {
		return nil, nil, err
	}
	if forward {
		req.Header.Set("pagination-type", "forward-only")
	}
	var page []*T
	resp, err := c.Do(ctx, req, &page)
	return page, resp, err
}

// count reads a /count endpoint.
func count(ctx context.Context, c *Client, path string, cond Condition) (int64, *Response, error) {
	if err := cond.Err(); err != nil {
		return 0, nil, err
	}
	if s := cond.String(); s != "" {
		path += "?conditions=" + url.QueryEscape(s)
	}
	req, err := c.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, nil, err
	}
	var cr struct {
		Count *int64 `json:"count"`
	}
	resp, err := c.Do(ctx, req, &cr)
	if err != nil {
		return 0, resp, err
	}
	if cr.Count == nil {
		// Not ConnectWise's answer: it always holds the count.
		return 0, resp, rest.NotAPIShape(psa.SystemConnectWise, req, respOf(resp), `"count"`)
	}
	return *cr.Count, resp, nil
}

// send sends a write with a JSON body and decodes the returned object.
func send[T any](ctx context.Context, c *Client, method, path string, body any) (*T, *Response, error) {
	req, err := c.NewRequest(ctx, method, path, body)
	if err != nil {
		return nil, nil, err
	}
	v := new(T)
	resp, err := c.Do(ctx, req, v)
	if err != nil {
		return nil, resp, err
	}
	if lacksID(v) {
		err := error(rest.NotAPIShape(psa.SystemConnectWise, req, respOf(resp), `"id"`))
		if method == http.MethodPost {
			// ConnectWise answered 2xx: whatever answered, the create
			// may have been applied. It is never re-sent blindly.
			err = &OutcomeUnknownError{Method: req.Method, URL: rest.RedactURL(req.URL), Err: err}
		}
		return nil, resp, err
	}
	return v, resp, nil
}

func deleteAt(ctx context.Context, c *Client, path string) (*Response, error) {
	req, err := c.NewRequest(ctx, http.MethodDelete, path, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(ctx, req, nil)
}

// PatchOperation is one operation of ConnectWise's PATCH dialect: Path is a
// bare field name (no leading slash), Op is "add", "replace" or "remove".
type PatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Replace returns the operation that sets field to value.
func Replace(field string, value any) PatchOperation {
	return PatchOperation{Op: "replace", Path: field, Value: value}
}

func validatePatch(ops []PatchOperation) error {
	if len(ops) == 0 {
		return fmt.Errorf("connectwise: empty patch")
	}
	for _, op := range ops {
		switch op.Op {
		case "add", "replace", "remove":
		default:
			return fmt.Errorf("connectwise: patch operation %q is not add, replace or remove", op.Op)
		}
		if !fieldPath.MatchString(op.Path) {
			return fmt.Errorf("connectwise: patch path %q is not a bare field name", op.Path)
		}
	}
	return nil
}

func idPath(parts ...any) string {
	s := make([]string, len(parts))
	for i, p := range parts {
		switch x := p.(type) {
		case int64:
			s[i] = strconv.FormatInt(x, 10)
		default:
			s[i] = fmt.Sprint(x)
		}
	}
	return strings.Join(s, "/")
}
