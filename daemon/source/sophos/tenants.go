package sophos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// TenantsService reads /partner/v1/tenants.
type TenantsService service

// Tenant is a customer tenant of the partner. Its ID is the accountId of
// billing usage rows.
type Tenant struct {
	ID            string `json:"id"`
	ShowAs        string `json:"showAs,omitempty"`
	Name          string `json:"name"`
	DataGeography string `json:"dataGeography,omitempty"`
	DataRegion    string `json:"dataRegion,omitempty"`
	BillingType   string `json:"billingType,omitempty"`
	Partner       *IDRef `json:"partner,omitempty"`
	Organization  *IDRef `json:"organization,omitempty"`
	APIHost       string `json:"apiHost,omitempty"`
	Status        string `json:"status,omitempty"`

	// Err is set when the tenant could not be decoded as a whole (a name
	// that is not a string, say). The string fields that could be read on
	// their own (ID, ShowAs, Name, APIHost...) are set; the others are
	// zero.
	Err error `json:"-"`
}

// decodeTenant decodes one tenant of a list. A tenant that does not decode
// is returned with Err set and what could be read of it.
func decodeTenant(raw json.RawMessage) *Tenant {
	var t Tenant
	err := json.Unmarshal(raw, &t)
	if err == nil {
		return &t
	}
	f := lenientFieldsOf(raw)
	return &Tenant{
		Err:           err,
		ID:            f.str("id"),
		ShowAs:        f.str("showAs"),
		Name:          f.str("name"),
		DataGeography: f.str("dataGeography"),
		DataRegion:    f.str("dataRegion"),
		BillingType:   f.str("billingType"),
		APIHost:       f.str("apiHost"),
		Status:        f.str("status"),
	}
}

// lenientFields holds the top-level fields of a JSON object that did not
// decode as a whole, to read the ones that can be read.
type lenientFields map[string]json.RawMessage

// lenientFieldsOf returns the fields of raw; nothing when raw is not an
// object.
func lenientFieldsOf(raw json.RawMessage) lenientFields {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// str returns the field k when it is a string, else "".
func (f lenientFields) str(k string) string {
	var s string
	if v, ok := f[k]; !ok || json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// IDRef is a reference to another object by id.
type IDRef struct {
	ID string `json:"id"`
}

// DisplayName returns ShowAs, or Name when ShowAs is empty.
func (t *Tenant) DisplayName() string {
	if t.ShowAs != "" {
		return t.ShowAs
	}
	return t.Name
}

// TenantListOptions are the query parameters of the tenants list.
type TenantListOptions struct {
	// Page is the page number, from 1 (0 means 1).
	Page int
	// PageSize is the page size; 0 leaves it to the API (50).
	PageSize int
	// PageTotal asks the API to count pages and items.
	PageTotal bool
	// Fields limits the returned fields (partial response).
	Fields []string
}

func (o *TenantListOptions) values() url.Values {
	v := url.Values{}
	if o == nil {
		return v
	}
	if o.Page > 0 {
		v.Set("page", strconv.Itoa(o.Page))
	}
	if o.PageSize > 0 {
		v.Set("pageSize", strconv.Itoa(o.PageSize))
	}
	if o.PageTotal {
		v.Set("pageTotal", "true")
	}
	if len(o.Fields) > 0 {
		v.Set("fields", strings.Join(o.Fields, ","))
	}
	return v
}

// listEnvelope is the body of a list response.
type listEnvelope struct {
	Items json.RawMessage `json:"items"`
	Pages Pages           `json:"pages"`
}

// List returns one page of tenants. Response.NextPage is set when the
// response counted its pages (PageTotal) and there are more. Each tenant is
// decoded on its own: one that does not decode is returned with Err set (see
// Tenant); an items field that is not a list is an error.
func (s *TenantsService) List(ctx context.Context, opts *TenantListOptions) ([]*Tenant, *Response, error) {
	req, err := s.client.newPartnerRequest(ctx, "partner/v1/tenants", opts.values())
	if err != nil {
		return nil, nil, err
	}
	var env listEnvelope
	resp, err := s.client.Do(req, &env)
	if err != nil {
		return nil, resp, err
	}
	var raws []json.RawMessage
	if err := decodeItems(env.Items, &raws); err != nil {
		return nil, resp, fmt.Errorf("sophos: %s: decoding items: %w", endpoint(req), err)
	}
	tenants := make([]*Tenant, len(raws))
	for i, raw := range raws {
		tenants[i] = decodeTenant(raw)
	}
	resp.Pages = env.Pages
	if env.Pages.Total > 0 && env.Pages.Current > 0 && env.Pages.Current < env.Pages.Total {
		resp.NextPage = env.Pages.Current + 1
	}
	return tenants, resp, nil
}

// defaultMaxTenantPages bounds the pages Tenants.ListAll reads: 1,000 pages
// of 100 tenants.
const defaultMaxTenantPages = 1000

// ListAll returns every tenant, asking for 100 per page. A server that does
// not follow page (it answers another page than the one asked for, by
// pages.current, or the same tenants as the page before) is an error, as is
// a listing of more than 1,000 pages: without pages.total, the client would
// otherwise ask on for ever. Answers that count their pages (pages.total)
// without saying which one they are (pages.current) are read to the count.
// A listing whose pages moved while it was read (a tenant on two pages, or
// another count than the first page announced) is read again once, and an
// error if the second moved too.
func (s *TenantsService) ListAll(ctx context.Context) ([]*Tenant, error) {
	all, shifted, err := s.listAll(ctx)
	if err == nil && shifted {
		// A tenant added or removed while the pages were read shifts the
		// ones after it: one tenant on two pages, or one on none. A
		// second listing is most likely whole; it counts, and has to
		// hold what it announces.
		all, shifted, err = s.listAll(ctx)
		if err == nil && shifted {
			err = errors.New("sophos: GET /partner/v1/tenants: the list's pages shifted while it was read, twice (a tenant on two pages, " +
				"or fewer or more tenants than announced); not using a list that may leave a tenant out")
		}
	}
	if err != nil {
		return nil, err
	}
	return all, nil
}

// listAll reads the tenant list once. shifted reports a listing whose pages
// moved while it was read: a tenant on two pages, or a count other than
// the first page announced (pages.items).
func (s *TenantsService) listAll(ctx context.Context) (all []*Tenant, shifted bool, err error) {
	const where = "sophos: GET /partner/v1/tenants"
	var prev []string
	onPage := map[string]int{}
	announced, counted := 0, false
	opts := &TenantListOptions{Page: 1, PageSize: 100, PageTotal: true}
	for {
		if opts.Page > s.client.maxTenantPages {
			return nil, false, fmt.Errorf("%s: more than %d pages; stopping rather than reading on", where, s.client.maxTenantPages)
		}
		ts, resp, err := s.List(ctx, opts)
		if err != nil {
			return nil, false, err
		}
		if opts.Page == 1 {
			announced, counted = resp.Pages.AnnouncedItems()
		}
		if c := resp.Pages.Current; c != 0 && c != opts.Page {
			return nil, false, fmt.Errorf("%s: asked for page %d, the answer is page %d; the server does not follow page", where, opts.Page, c)
		}
		ids := make([]string, len(ts))
		for i, t := range ts {
			ids[i] = t.ID
		}
		if opts.Page > 1 && len(ids) > 0 && slices.Equal(ids, prev) {
			return nil, false, fmt.Errorf("%s: page %d holds the same tenants as page %d; the server does not follow page", where, opts.Page, opts.Page-1)
		}
		prev = ids
		for _, id := range ids {
			if id == "" {
				continue // a tenant that did not decode (Tenant.Err)
			}
			if p, ok := onPage[id]; ok && p != opts.Page {
				shifted = true
			}
			onPage[id] = opts.Page
		}
		all = append(all, ts...)
		if resp.NextPage == 0 && resp.Pages.Current == 0 && opts.Page < resp.Pages.Total {
			// The answer counted its pages but did not say which one it
			// is: go on by the page asked for, up to the count, rather
			// than take the first page for the whole list.
			resp.NextPage = opts.Page + 1
		}
		if resp.NextPage == 0 && resp.Pages.Total == 0 && len(ts) > 0 && len(ts) >= resp.Pages.Size {
			// The API did not count the pages; a full page may have a
			// successor, so ask until a short or empty page.
			resp.NextPage = opts.Page + 1
		}
		if resp.NextPage == 0 || len(ts) == 0 {
			return all, shifted || (counted && len(all) != announced), nil
		}
		if resp.NextPage <= opts.Page {
			return nil, false, fmt.Errorf("%s: page %d points back to page %d", where, opts.Page, resp.NextPage)
		}
		opts.Page = resp.NextPage
	}
}

// Get returns one tenant.
func (s *TenantsService) Get(ctx context.Context, id string) (*Tenant, *Response, error) {
	req, err := s.client.newPartnerRequest(ctx, "partner/v1/tenants/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, nil, err
	}
	var t Tenant
	resp, err := s.client.Do(req, &t)
	if err != nil {
		return nil, resp, err
	}
	return &t, resp, nil
}

// decodeItems decodes a list's items. Central always sends the field, an
// empty list as []: a missing or null one (a gateway's "{}", an error
// object with status 200) is an error, not an empty list, which would tell
// the ticket pass that every alert was resolved and the usage pass that
// the month has no usage. Anything other than an array is an error too.
func decodeItems(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return errors.New("the answer has no items list")
	}
	return json.Unmarshal(raw, v)
}
