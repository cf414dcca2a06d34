package sophostest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Common API's alerts (GET /common/v1/alerts and /common/v1/alerts/{id})
// are tenant-level: the partner's token with X-Tenant-ID, on the tenant's
// apiHost (this simulator). A cleared alert is simply no longer listed, and
// its GET answers 404.

const (
	alertsDefaultPageSize = 50
	alertsMaxPageSize     = 1000
	// raisedAtLayout is how Central writes raisedAt in its examples: no zone,
	// milliseconds, UTC.
	raisedAtLayout = "2006-01-02T15:04:05.000"
)

// Alert is an alert as GET /common/v1/alerts returns it. Fields left empty
// when it is added are filled in: allowedActions ["acknowledge"], category
// "general", groupKey from the type, product "endpoint", raisedAt the
// simulator's clock, severity "medium", tenant the alert's tenant.
type Alert struct {
	ID             string        `json:"id"`
	AllowedActions []string      `json:"allowedActions"`
	Category       string        `json:"category"`
	Description    string        `json:"description"`
	GroupKey       string        `json:"groupKey"`
	ManagedAgent   *ManagedAgent `json:"managedAgent,omitempty"`
	Person         *IDRef        `json:"person,omitempty"`
	Product        string        `json:"product"`
	RaisedAt       string        `json:"raisedAt"`
	Severity       string        `json:"severity"`
	Tenant         *TenantRef    `json:"tenant,omitempty"`
	Type           string        `json:"type"`
}

// ManagedAgent is the device an alert is about.
type ManagedAgent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// TenantRef names the tenant of an alert.
type TenantRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

var alertSeverities = []string{"high", "medium", "low"}

// validateAlerts checks the fixture's alerts: known tenants, unique ids,
// known severities. tenants holds the fixture's tenant ids.
func (f *Fixture) validateAlerts(tenants map[string]bool) error {
	ids := map[string]bool{}
	for tid, list := range f.Alerts {
		if !tenants[tid] {
			return fmt.Errorf("alerts: tenant %s is not in tenants", tid)
		}
		for i, a := range list {
			switch {
			case a.ID == "":
				return fmt.Errorf("alerts[%s][%d]: id is required", tid, i)
			case ids[a.ID]:
				return fmt.Errorf("alerts[%s][%d]: id %s appears twice", tid, i, a.ID)
			case a.Severity != "" && !slices.Contains(alertSeverities, a.Severity):
				return fmt.Errorf("alerts[%s][%d]: severity %q is not high, medium or low", tid, i, a.Severity)
			}
			ids[a.ID] = true
		}
	}
	return nil
}

// tenant wraps the tenant-level handlers: bearer token, then X-Tenant-ID
// (400 when missing or not a UUID; 403 when the tenant is not the partner's,
// or its alerts are denied with DenyAlerts).
func (s *Server) tenant(h func(w http.ResponseWriter, r *http.Request, t Tenant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r) {
			return
		}
		id := r.Header.Get("X-Tenant-ID")
		if id == "" {
			writeError(w, http.StatusBadRequest, "BadRequest", "Missing required header X-Tenant-ID")
			return
		}
		if !uuidRE.MatchString(id) {
			writeError(w, http.StatusBadRequest, "BadRequest", "Header X-Tenant-ID must be a UUID")
			return
		}
		s.mu.Lock()
		var found *Tenant
		for i := range s.tenants {
			if strings.EqualFold(s.tenants[i].ID, id) {
				t := s.tenants[i]
				found = &t
			}
		}
		denied := s.idType != "partner" || found == nil || s.alertsDenied[strings.ToLower(id)]
		s.mu.Unlock()
		if denied {
			writeError(w, http.StatusForbidden, "forbidden", "Access is denied")
			return
		}
		h(w, r, *found)
	}
}

// alertQueryParams are the query parameters of GET /common/v1/alerts in the
// vendor's collection; others are refused.
var alertQueryParams = []string{"groupKey", "from", "to", "sort", "product", "category", "severity", "ids", "fields", "pageSize", "pageFromKey", "pageTotal"}

func parseRaisedAt(s string) (time.Time, error) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", time.DateOnly} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date-time", s)
}

func list(q string) []string {
	var out []string
	for _, v := range strings.Split(q, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, strings.ToLower(v))
		}
	}
	return out
}

// alertsKey is the opaque page key of item i of a query.
func alertsKey(query string, i int) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "alerts:%d:%s", i, query))
}

func parseAlertsKey(query, key string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return 0, false
	}
	n, rest, ok := strings.Cut(strings.TrimPrefix(string(b), "alerts:"), ":")
	i, err := strconv.Atoi(n)
	return i, ok && err == nil && i >= 0 && rest == query
}

func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request, t Tenant) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(alertQueryParams, k) {
			writeError(w, http.StatusBadRequest, "BadRequest", "Unknown query parameter "+k)
			return
		}
	}
	size, err := intParam(r, "pageSize", alertsDefaultPageSize)
	if err == nil && size > alertsMaxPageSize {
		err = fmt.Errorf("pageSize %d is larger than %d", size, alertsMaxPageSize)
	}
	var withTotal bool
	if err == nil {
		withTotal, err = boolParam(r, "pageTotal")
	}
	var from, to time.Time
	if err == nil && q.Get("from") != "" {
		from, err = parseRaisedAt(q.Get("from"))
	}
	if err == nil && q.Get("to") != "" {
		to, err = parseRaisedAt(q.Get("to"))
	}
	desc := false
	switch sort := q.Get("sort"); sort {
	case "", "raisedAt", "raisedAt:asc":
	case "raisedAt:desc":
		desc = true
	default:
		if err == nil {
			err = fmt.Errorf("sort %q is not supported (raisedAt:asc or raisedAt:desc)", sort)
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Bad request: "+err.Error())
		return
	}
	products, categories, severities, ids := list(q.Get("product")), list(q.Get("category")), list(q.Get("severity")), list(q.Get("ids"))
	s.mu.Lock()
	var all []Alert
	for _, a := range s.alerts[strings.ToLower(t.ID)] {
		a = s.fillAlert(a, t)
		raised, _ := parseRaisedAt(a.RaisedAt)
		switch {
		case len(products) > 0 && !slices.Contains(products, strings.ToLower(a.Product)),
			len(categories) > 0 && !slices.Contains(categories, strings.ToLower(a.Category)),
			len(severities) > 0 && !slices.Contains(severities, a.Severity),
			len(ids) > 0 && !slices.Contains(ids, strings.ToLower(a.ID)),
			q.Get("groupKey") != "" && a.GroupKey != q.Get("groupKey"),
			!from.IsZero() && raised.Before(from),
			!to.IsZero() && !raised.Before(to):
			continue
		}
		all = append(all, a)
	}
	s.mu.Unlock()
	if desc {
		slices.Reverse(all)
	}
	// A key belongs to the query it was issued for (everything but the key).
	q.Del("pageFromKey")
	q.Del("pageTotal")
	query := q.Encode()
	start := 0
	if k := r.URL.Query().Get("pageFromKey"); k != "" {
		i, ok := parseAlertsKey(query, k)
		if !ok || i > len(all) {
			writeError(w, http.StatusBadRequest, "BadRequest", "Invalid value for query parameter pageFromKey")
			return
		}
		start = i
	}
	end := min(start+size, len(all))
	pages := Pages{Size: size, MaxSize: alertsMaxPageSize}
	if end < len(all) {
		pages.NextKey = alertsKey(query, end)
	}
	if withTotal {
		total, n := (len(all)+size-1)/size, len(all)
		pages.Total, pages.Items = &total, &n
	}
	items, err := selectFields(all[start:end], q.Get("fields"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Bad request: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Items any   `json:"items"`
		Pages Pages `json:"pages"`
	}{items, pages})
}

func (s *Server) handleAlert(w http.ResponseWriter, r *http.Request, t Tenant) {
	id := r.PathValue("alertId")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.alerts[strings.ToLower(t.ID)] {
		if strings.EqualFold(a.ID, id) {
			writeJSON(w, http.StatusOK, s.fillAlert(a, t))
			return
		}
	}
	writeError(w, http.StatusNotFound, "NotFound", "Alert not found")
}

// fillAlert adds the defaults a served alert has. The caller holds s.mu.
func (s *Server) fillAlert(a Alert, t Tenant) Alert {
	if a.AllowedActions == nil {
		a.AllowedActions = []string{"acknowledge"}
	}
	if a.Category == "" {
		a.Category = "general"
	}
	if a.Type == "" {
		a.Type = "Event::Endpoint::Threat::Detected"
	}
	if a.GroupKey == "" {
		a.GroupKey = base64.StdEncoding.EncodeToString([]byte("1," + a.Type + ",0,"))
	}
	if a.Product == "" {
		a.Product = "endpoint"
	}
	if a.Severity == "" {
		a.Severity = "medium"
	}
	if a.Tenant == nil {
		a.Tenant = &TenantRef{ID: t.ID, Name: t.Name}
	}
	return a
}

// AddAlert raises an alert on a tenant (out of band, as a device would) and
// returns it as served. An empty ID gets a new one, an empty RaisedAt the
// simulator's clock. It panics when the tenant does not exist: that is a
// mistake in the test.
func (s *Server) AddAlert(tenantID string, a Alert) Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *Tenant
	for i := range s.tenants {
		if strings.EqualFold(s.tenants[i].ID, tenantID) {
			t = &s.tenants[i]
		}
	}
	if t == nil {
		panic("sophostest: AddAlert: no tenant " + tenantID)
	}
	if a.ID == "" {
		a.ID = newID()
	}
	if a.RaisedAt == "" {
		a.RaisedAt = s.clock().UTC().Format(raisedAtLayout)
	}
	key := strings.ToLower(tenantID)
	s.alerts[key] = append(s.alerts[key], a)
	return s.fillAlert(a, *t)
}

// ResolveAlert clears an alert, as Central does when its condition ends; it
// reports whether the alert was open.
func (s *Server) ResolveAlert(tenantID, alertID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(tenantID)
	n := len(s.alerts[key])
	s.alerts[key] = slices.DeleteFunc(s.alerts[key], func(a Alert) bool { return strings.EqualFold(a.ID, alertID) })
	return len(s.alerts[key]) < n
}

// handleResolveAlert serves DELETE /_sim/sophos/alerts/{tenantId}/{alertId},
// the simulator's own (not Central's) way to resolve an alert from outside
// the process, as ResolveAlert does: 204, or 404 when the tenant has no
// such open alert.
func (s *Server) handleResolveAlert(w http.ResponseWriter, r *http.Request) {
	if !s.ResolveAlert(r.PathValue("tenantId"), r.PathValue("alertId")) {
		writeError(w, http.StatusNotFound, "NotFound", "No such open alert")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Alerts returns a tenant's open alerts in the order they were raised.
func (s *Server) Alerts(tenantID string) []Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.alerts[strings.ToLower(tenantID)])
}

// DenyAlerts makes a tenant's alert endpoints answer 403 "Access is
// denied", as Central does for some tenants whose other APIs work.
func (s *Server) DenyAlerts(tenantID string, deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alertsDenied[strings.ToLower(tenantID)] = deny
}
