package sophos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AlertsService reads a tenant's open alerts (GET /common/v1/alerts). The
// alerts API is tenant-level: each call names one tenant with X-Tenant-ID,
// goes to that tenant's apiHost (from the tenants list) and is
// authenticated with the partner's token. There is no cross-tenant list.
// Unless a base URL was pinned, an apiHost must be https and under
// central.sophos.com (or on the host of an overridden auth URL): the token
// is not sent to any other host a tenant list names.
//
// Alerts carry no status: an alert whose condition ended is no longer
// listed. Only a complete listing (every page read without error) tells
// which alerts are gone.
type AlertsService service

// Alert is a Sophos Central alert.
type Alert struct {
	ID             string        `json:"id"`
	AllowedActions []string      `json:"allowedActions,omitempty"`
	Category       string        `json:"category"`
	Type           string        `json:"type"`
	Severity       string        `json:"severity"`
	Description    string        `json:"description"`
	GroupKey       string        `json:"groupKey,omitempty"`
	Product        string        `json:"product"`
	RaisedAt       AlertTime     `json:"raisedAt"`
	ManagedAgent   *ManagedAgent `json:"managedAgent,omitempty"`
	Person         *IDRef        `json:"person,omitempty"`
	Tenant         *TenantRef    `json:"tenant,omitempty"`

	// Err is set when the alert could not be decoded as a whole (a field
	// of the wrong type). The fields that could be read on their own are
	// set, the id always; the others are zero.
	Err error `json:"-"`
}

// decodeAlert decodes one alert of a list. An alert that does not decode as
// a whole (a field of the wrong type) is returned with Err set and the
// fields that could be read on their own: one odd field must not fail the
// tenant's listing, which would stop every ticket of the tenant from being
// created or closed. An item whose id cannot be read (null, not an object,
// an id that is not a string), or whose tenant cannot be read, is an
// error: its ticket could not be told, nor whose alert it is.
func decodeAlert(raw json.RawMessage) (*Alert, error) {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil, errors.New("is null, not an alert")
	}
	var a Alert
	err := json.Unmarshal(raw, &a)
	if err == nil {
		return &a, nil
	}
	f := lenientFieldsOf(raw)
	if f == nil {
		return nil, errors.New("is not an alert (not a JSON object)")
	}
	a = Alert{Err: err, ID: f.str("id")}
	if a.ID == "" {
		return nil, fmt.Errorf("cannot be decoded and its id cannot be read: %w", err)
	}
	if v, ok := f["tenant"]; ok && json.Unmarshal(v, &a.Tenant) != nil {
		return nil, fmt.Errorf("(alert %s) cannot be decoded and its tenant cannot be read: %w", a.ID, err)
	}
	a.Category, a.Type, a.Severity = f.str("category"), f.str("type"), f.str("severity")
	a.Description, a.GroupKey, a.Product = f.str("description"), f.str("groupKey"), f.str("product")
	// Neither fails: AlertTime keeps what it cannot read, and an alert
	// without its device still gets its ticket, without the link.
	_ = json.Unmarshal(f["raisedAt"], &a.RaisedAt)
	_ = json.Unmarshal(f["managedAgent"], &a.ManagedAgent)
	return &a, nil
}

// ManagedAgent is the device an alert is about; Type is "computer" or
// "server".
type ManagedAgent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// TenantRef names the tenant an alert belongs to.
type TenantRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// AlertTime is an alert timestamp. Central writes it without a zone in its
// examples ("2021-02-12T15:04:53.780") and with one elsewhere
// ("2020-11-04T09:31:19.894Z"); the API declares no format, so an ISO 8601
// date and time to the second in its extended form is read with its
// variants: fractional seconds of any length (with a point or a comma), a
// zone as "Z", "+01:00", "+0100" or "+01", a space for the "T", lower case,
// and a missing zone as UTC.
//
// A timestamp in none of these forms does not fail the decode: Time is then
// zero and Unparsed holds the text. One alert must not fail its tenant's
// listing, since a listing that fails stops every ticket of the tenant from
// being created or closed.
type AlertTime struct {
	time.Time
	// Unparsed is the timestamp as Central wrote it when it is in no form
	// AlertTime reads (Time is zero), else "".
	Unparsed string
}

// alertTimeLayouts are the forms AlertTime reads. time.Parse takes a
// fractional second after the seconds with any layout.
var alertTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
}

// parseAlertTime parses s in one of the forms AlertTime reads and returns
// it in UTC.
func parseAlertTime(s string) (time.Time, error) {
	norm := strings.ToUpper(strings.TrimSpace(s))
	if len(norm) > 10 && norm[10] == ' ' {
		norm = norm[:10] + "T" + norm[11:]
	}
	for _, l := range alertTimeLayouts {
		if v, err := time.Parse(l, norm); err == nil {
			return v.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("sophos: cannot parse alert time %q", s)
}

// UnmarshalJSON parses the forms Central uses; null or "" is the zero time.
// Any other value, a string in no known form or not a string at all, is
// kept in Unparsed (a string's text, else the JSON) with the zero time: it
// never fails the decode.
func (t *AlertTime) UnmarshalJSON(b []byte) error {
	*t = AlertTime{}
	if string(b) == "null" {
		return nil
	}
	var s string
	switch err := json.Unmarshal(b, &s); {
	case err != nil:
		// Not a string: kept as the JSON it is, like a string in no
		// known form.
		t.Unparsed = string(b)
	case strings.TrimSpace(s) == "":
	default:
		if v, perr := parseAlertTime(s); perr == nil {
			t.Time = v
		} else {
			t.Unparsed = s
		}
	}
	return nil
}

// MarshalJSON writes RFC 3339 in UTC, or the text Central wrote when it
// could not be parsed.
func (t AlertTime) MarshalJSON() ([]byte, error) {
	if t.IsZero() && t.Unparsed != "" {
		return json.Marshal(t.Unparsed)
	}
	return []byte(strconv.Quote(t.UTC().Format(time.RFC3339Nano))), nil
}

// DeviceURL returns the Central page of the alert's device, for endpoint
// and server alerts with a managed agent, else "".
func (a *Alert) DeviceURL() string {
	if a.ManagedAgent == nil || a.ManagedAgent.ID == "" || (a.Product != "endpoint" && a.Product != "server") {
		return ""
	}
	if a.ManagedAgent.Type == "server" || a.Product == "server" {
		return "https://central.sophos.com/manage/server/devices/servers/" + url.PathEscape(a.ManagedAgent.ID) + "/summary"
	}
	return "https://central.sophos.com/manage/endpoint/devices/computers/" + url.PathEscape(a.ManagedAgent.ID) + "/summary"
}

// AlertListOptions are the query parameters of the alerts list.
type AlertListOptions struct {
	// Severity, Product and Category limit the list (empty: all).
	Severity []string
	Product  []string
	Category []string
	// From lists alerts raised at or after it (zero: no limit).
	From time.Time
	// PageSize is the page size; 0 means MaxAlertsPageSize.
	PageSize int
	// PageFromKey is the previous page's nextKey; "" for the first page.
	PageFromKey string
	// PageTotal asks the API to count pages and alerts.
	PageTotal bool
}

// MaxAlertsPageSize is the largest page the alerts list serves.
const MaxAlertsPageSize = 1000

func (o *AlertListOptions) values() (url.Values, error) {
	v := url.Values{}
	size := MaxAlertsPageSize
	if o != nil && o.PageSize != 0 {
		size = o.PageSize
	}
	if size < 1 || size > MaxAlertsPageSize {
		return nil, fmt.Errorf("sophos: alerts page size must be between 1 and %d, got %d", MaxAlertsPageSize, size)
	}
	v.Set("pageSize", strconv.Itoa(size))
	if o == nil {
		return v, nil
	}
	for _, f := range []struct {
		name string
		vals []string
	}{{"severity", o.Severity}, {"product", o.Product}, {"category", o.Category}} {
		if len(f.vals) > 0 {
			v.Set(f.name, strings.Join(f.vals, ","))
		}
	}
	if !o.From.IsZero() {
		v.Set("from", o.From.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if o.PageFromKey != "" {
		v.Set("pageFromKey", o.PageFromKey)
	}
	if o.PageTotal {
		v.Set("pageTotal", "true")
	}
	return v, nil
}

// centralDomain is the domain of Sophos Central's API hosts: a tenant's
// apiHost is https://api-<region>.central.sophos.com.
const centralDomain = "central.sophos.com"

// tenantRequest builds a tenant-level request: on the tenant's apiHost (or
// the configured base URL, when one was pinned), with X-Tenant-ID.
func (c *Client) tenantRequest(ctx context.Context, tenantID, apiHost, path string, query url.Values) (*http.Request, error) {
	if tenantID == "" {
		return nil, errors.New("sophos: tenant id is required")
	}
	base := c.baseURL
	if !c.baseURLSet {
		var err error
		if base, err = c.tenantBase(tenantID, apiHost); err != nil {
			return nil, err
		}
	}
	req, err := c.newRequest(ctx, base, path, query)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Tenant-ID", tenantID)
	return req, nil
}

// tenantBase checks a tenant's apiHost, as the tenant list names it,
// before the partner's bearer token is sent there: it must be https, on a
// host under central.sophos.com, or on the host of an auth URL the client
// was built with (a simulator). A tenant list that names any other host (a
// spoofed answer, a proxy's rewrite) fails that tenant only.
func (c *Client) tenantBase(tenantID, apiHost string) (*url.URL, error) {
	if apiHost == "" {
		return nil, fmt.Errorf("sophos: tenant %s has no apiHost", tenantID)
	}
	u, err := parseURL(apiHost, true)
	if err != nil {
		return nil, fmt.Errorf("sophos: tenant %s: apiHost: %w", tenantID, err)
	}
	if u.Scheme != "https" {
		// The bearer token must not travel in clear text.
		return nil, fmt.Errorf("sophos: tenant %s: apiHost %s is not https", tenantID, u.Host)
	}
	if !c.centralHost(u) {
		return nil, fmt.Errorf("sophos: tenant %s: apiHost %s is not a Sophos Central host (*.%s): the partner's token is not sent there", tenantID, u.Host, centralDomain)
	}
	return u, nil
}

// centralHost reports whether the bearer token may go to u's host, as an
// answer (a tenant's apiHost, whoami's global host) names it: a host under
// central.sophos.com, or the host (and port) of an overridden auth URL.
func (c *Client) centralHost(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	return host == centralDomain || strings.HasSuffix(host, "."+centralDomain) ||
		c.authURLSet && strings.EqualFold(u.Host, c.authURL.Host)
}

// List returns one page of a tenant's open alerts. Response.NextKey is the
// next page's key, "" on the last page. A tenant that has not granted
// access answers 403: the error matches psa.ErrUnauthorized and
// IsAccessDenied. Each alert is decoded on its own (see decodeAlert), and
// a page with an alert whose tenant is another than tenantID is an error.
func (s *AlertsService) List(ctx context.Context, tenantID, apiHost string, opts *AlertListOptions) ([]*Alert, *Response, error) {
	q, err := opts.values()
	if err != nil {
		return nil, nil, err
	}
	req, err := s.client.tenantRequest(ctx, tenantID, apiHost, "common/v1/alerts", q)
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
	alerts := make([]*Alert, len(raws))
	for i, raw := range raws {
		a, err := decodeAlert(raw)
		if err != nil {
			// No id to keep its ticket by: the page cannot be read whole.
			return nil, resp, fmt.Errorf("sophos: %s: decoding items: item %d %w", endpoint(req), i, err)
		}
		if a.Err != nil {
			// Debug: the ticket pass reports it, and the alert stays
			// as it is pass after pass.
			s.client.logger.Debug("Sophos alert cannot be read in full; it is kept with the fields that could be read",
				"tenant", tenantID, "alert", a.ID, "err", a.Err.Error())
		}
		if t := a.Tenant; t != nil && strings.TrimSpace(t.ID) != "" && !strings.EqualFold(strings.TrimSpace(t.ID), strings.TrimSpace(tenantID)) {
			// Another customer's alert (a proxy's cache, a server
			// that answers for another tenant) would become a ticket
			// on this customer's company, with its devices and users.
			return nil, resp, fmt.Errorf("sophos: %s: alert %s is of tenant %s, not of tenant %s that was asked for; "+
				"not using an answer that mixes tenants", endpoint(req), a.ID, t.ID, tenantID)
		}
		alerts[i] = a
	}
	resp.Pages = env.Pages
	resp.NextKey = env.Pages.NextKey
	return alerts, resp, nil
}

// defaultMaxAlertPages bounds the pages Alerts.ListAll reads of one
// tenant, whether or not the first page announced their number: 1,000
// pages hold a million alerts at the largest page size. A listing that
// goes on past it (a server handing out new keys for ever) is an error
// rather than a loop without end.
const defaultMaxAlertPages = 1000

// ListAll returns every open alert of a tenant, following nextKey. It
// fails rather than return part of the list, so that the caller never
// takes a missing alert for a resolved one (see listOnce). A listing of
// more than one page is read again, and used only once two readings in a
// row hold the same alerts: with offset-like keys, an alert cleared on a
// page already read shifts the next page by one, so that its first alert
// is on no page, and one raised after the last page was read keeps the
// count as announced; such a listing has no repeat and the right count,
// and only another reading shows the alert it missed (and the one it kept
// that was cleared). Up to three readings, then an error: alerts that
// change at every reading are not listed this pass. A listing of one page
// (1,000 alerts at the default page size, most tenants) is read once.
func (s *AlertsService) ListAll(ctx context.Context, tenantID, apiHost string, opts *AlertListOptions) ([]*Alert, error) {
	all, pages, err := s.listOnce(ctx, tenantID, apiHost, opts)
	if err != nil || pages == 1 {
		return all, err
	}
	for range maxAlertReadings - 1 {
		again, _, err := s.listOnce(ctx, tenantID, apiHost, opts)
		if err != nil {
			return nil, err
		}
		if sameAlerts(all, again) {
			return again, nil
		}
		all = again
	}
	return nil, fmt.Errorf("sophos: GET /common/v1/alerts (tenant %s): the alerts of its %d pages changed between each of %d readings, "+
		"so one still open may be on no page: this is not a complete listing", tenantID, pages, maxAlertReadings)
}

// maxAlertReadings is how many times ListAll reads a listing of more than
// one page at most, waiting for two in a row that agree.
const maxAlertReadings = 3

// sameAlerts reports whether a and b hold the same alert ids.
func sameAlerts(a, b []*Alert) bool {
	ids := make(map[string]int, len(a))
	for _, x := range a {
		ids[x.ID]++
	}
	for _, x := range b {
		ids[x.ID]--
	}
	for _, n := range ids {
		if n != 0 {
			return false
		}
	}
	return true
}

// listOnce reads a tenant's listing once, following nextKey, and returns
// its alerts and how many pages it read. The first page asks for
// pageTotal, and pages that hold another number of alerts than it
// announced (alerts raised or cleared while the pages were read shift
// them, and one still open can be on none) are an error. The pages stop
// after the number the first page announced, even when the last one names
// a nextKey (the vendor's example answer does), as for the usage report.
// An alert on two pages fails too: the pages shifted while they were read
// (an alert raised before the key), and with the count still as announced
// (one cleared meanwhile) another alert, still open, was on none. So do a
// nextKey that repeats, and more than 1,000 pages.
func (s *AlertsService) listOnce(ctx context.Context, tenantID, apiHost string, opts *AlertListOptions) ([]*Alert, int, error) {
	var o AlertListOptions
	if opts != nil {
		o = *opts
	}
	o.PageFromKey, o.PageTotal = "", true
	where := fmt.Sprintf("sophos: GET /common/v1/alerts (tenant %s)", tenantID)
	seen := map[string]bool{}
	onPage := map[string]int{} // alert id -> the first page that held it
	var (
		all   []*Alert
		first Pages
	)
	for page := 1; ; page++ {
		if page > s.client.maxAlertPages {
			return nil, 0, fmt.Errorf("%s: more than %d pages; stopping rather than reading on", where, s.client.maxAlertPages)
		}
		alerts, resp, err := s.List(ctx, tenantID, apiHost, &o)
		if err != nil {
			return nil, 0, err
		}
		if page == 1 {
			first = resp.Pages
		}
		for _, a := range alerts {
			switch p, ok := onPage[a.ID]; {
			case !ok:
				onPage[a.ID] = page
			case p != page:
				return nil, 0, fmt.Errorf("%s: alert %s is on page %d and on page %d; alerts changed while they were read, "+
					"so one still open may be on no page: this is not a complete listing", where, a.ID, p, page)
			}
		}
		all = append(all, alerts...)
		total, totalSent := first.AnnouncedTotal()
		if resp.NextKey != "" && (!totalSent || page < total) {
			if seen[resp.NextKey] {
				return nil, 0, fmt.Errorf("%s: nextKey %q repeats; stopping rather than looping", where, resp.NextKey)
			}
			seen[resp.NextKey] = true
			o.PageFromKey, o.PageTotal = resp.NextKey, false
			continue
		}
		// The last page: the one without a nextKey, or the last one the
		// first page announced.
		if n, ok := first.AnnouncedItems(); ok && len(all) != n {
			return nil, 0, fmt.Errorf("%s: the first page announced %d alerts and the %d pages held %d; alerts changed while they were read, so this is not a complete listing", where, n, page, len(all))
		}
		if totalSent && page < total {
			return nil, 0, fmt.Errorf("%s: the first page announced %d pages and the listing ended after %d; not a complete listing", where, total, page)
		}
		return all, page, nil
	}
}

// Get returns one alert; an alert that was cleared answers 404 (matches
// psa.ErrNotFound).
func (s *AlertsService) Get(ctx context.Context, tenantID, apiHost, alertID string) (*Alert, *Response, error) {
	req, err := s.client.tenantRequest(ctx, tenantID, apiHost, "common/v1/alerts/"+url.PathEscape(alertID), nil)
	if err != nil {
		return nil, nil, err
	}
	var a Alert
	resp, err := s.client.Do(req, &a)
	if err != nil {
		return nil, resp, err
	}
	return &a, resp, nil
}

// IsAccessDenied reports whether err is Central's 403 for a tenant whose
// alerts the partner may not read (the customer has not granted access),
// as opposed to a failed request.
func IsAccessDenied(err error) bool {
	var er *ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusForbidden
}
