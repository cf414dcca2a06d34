package sophos

import (
	"context"
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
// examples ("2021-02-12T15:04:53.780") and with one elsewhere; both are
// read, a missing zone as UTC.
type AlertTime struct{ time.Time }

// UnmarshalJSON parses the forms Central uses; null or "" is the zero time.
func (t *AlertTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		t.Time = time.Time{}
		return nil
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("sophos: cannot parse alert time %q", s)
}

// MarshalJSON writes RFC 3339 in UTC.
func (t AlertTime) MarshalJSON() ([]byte, error) {
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
	return v, nil
}

// tenantRequest builds a tenant-level request: on the tenant's apiHost (or
// the configured base URL, when one was pinned), with X-Tenant-ID.
func (c *Client) tenantRequest(ctx context.Context, tenantID, apiHost, path string, query url.Values) (*http.Request, error) {
	if tenantID == "" {
		return nil, errors.New("sophos: tenant id is required")
	}
	base := c.baseURL
	if !c.baseURLSet {
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
		base = u
	}
	req, err := c.newRequest(ctx, base, path, query)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Tenant-ID", tenantID)
	return req, nil
}

// List returns one page of a tenant's open alerts. Response.NextKey is the
// next page's key, "" on the last page. A tenant that has not granted
// access answers 403: the error matches psa.ErrUnauthorized and
// IsAccessDenied.
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
	var alerts []*Alert
	if err := decodeItems(env.Items, &alerts); err != nil {
		return nil, resp, fmt.Errorf("sophos: %s: decoding items: %w", endpoint(req), err)
	}
	resp.Pages = env.Pages
	resp.NextKey = env.Pages.NextKey
	return alerts, resp, nil
}

// ListAll returns every open alert of a tenant, following nextKey. It
// fails rather than return part of the list, so that the caller never
// takes a missing alert for a resolved one.
func (s *AlertsService) ListAll(ctx context.Context, tenantID, apiHost string, opts *AlertListOptions) ([]*Alert, error) {
	var o AlertListOptions
	if opts != nil {
		o = *opts
	}
	o.PageFromKey = ""
	seen := map[string]bool{}
	var all []*Alert
	for {
		alerts, resp, err := s.List(ctx, tenantID, apiHost, &o)
		if err != nil {
			return nil, err
		}
		all = append(all, alerts...)
		if resp.NextKey == "" {
			return all, nil
		}
		if seen[resp.NextKey] {
			return nil, fmt.Errorf("sophos: GET /common/v1/alerts (tenant %s): nextKey %q repeats; stopping rather than looping", tenantID, resp.NextKey)
		}
		seen[resp.NextKey] = true
		o.PageFromKey = resp.NextKey
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
