package sophostest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

const (
	tokenPath = "/api/v2/oauth2/token"

	tenantsDefaultPageSize = 50
	tenantsMaxPageSize     = 100
	usageDefaultPageSize   = 50
	usageMaxPageSize       = 1000
)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError writes the Central API error envelope.
func writeError(w http.ResponseWriter, status int, name, message string) {
	writeJSON(w, status, ErrorBody{
		Error:         name,
		Message:       message,
		CorrelationID: newID(),
		Code:          strings.ToLower(name),
		CreatedAt:     time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestID:     newID(),
		DocURL:        "https://developer.sophos.com/intro",
	})
}

func errorName(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	default:
		if status >= 500 {
			return "InternalServerError"
		}
		return strings.ReplaceAll(http.StatusText(status), " ", "")
	}
}

func writeTokenError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, TokenError{ErrorCode: code, Message: message, TrackingID: newID()})
}

// handleToken is the OAuth2 token endpoint: a form POST with the
// client_credentials grant, or a JSON POST with the refresh_token grant (the
// vendor collection's "Refresh token" request).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	var grant, clientID, clientSecret, scope, refresh string
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			writeTokenError(w, http.StatusBadRequest, "oauth.invalid_request", "Bad Request")
			return
		}
		grant, clientID, clientSecret = r.PostForm.Get("grant_type"), r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		scope, refresh = r.PostForm.Get("scope"), r.PostForm.Get("refresh_token")
	case "application/json":
		var body struct {
			GrantType    string `json:"grant_type"`
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
			RefreshToken string `json:"refresh_token"`
			Scope        string `json:"scope"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeTokenError(w, http.StatusBadRequest, "oauth.invalid_request", "Bad Request")
			return
		}
		grant, clientID, clientSecret, scope, refresh = body.GrantType, body.ClientID, body.ClientSecret, body.Scope, body.RefreshToken
	default:
		writeTokenError(w, http.StatusBadRequest, "oauth.invalid_request", "Bad Request")
		return
	}
	if grant != "client_credentials" && grant != "refresh_token" {
		writeTokenError(w, http.StatusBadRequest, "oauth.unsupported_grant_type", "Bad Request")
		return
	}
	if scope != "" && scope != "token" {
		writeTokenError(w, http.StatusBadRequest, "oauth.invalid_scope", "Bad Request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case clientID == "" || clientSecret == "":
		writeTokenError(w, http.StatusBadRequest, "oauth.invalid_request", "Bad Request")
		return
	case clientID != s.clientID:
		writeTokenError(w, http.StatusUnauthorized, "oauth.client_app_does_not_exist", "Unauthorized")
		return
	case clientSecret != s.clientSecret:
		writeTokenError(w, http.StatusUnauthorized, "oauth.invalid_client_secret", "Unauthorized")
		return
	case grant == "refresh_token" && !s.refresh[refresh]:
		writeTokenError(w, http.StatusUnauthorized, "oauth.invalid_refresh_token", "Unauthorized")
		return
	}
	if grant == "refresh_token" {
		delete(s.refresh, refresh)
	}
	access := "sim-access-" + newID()
	rt := "sim-refresh-" + newID()
	s.tokens[access] = s.clock().Add(s.tokenLifetime)
	s.refresh[rt] = true
	writeJSON(w, http.StatusOK, TokenResponse{
		AccessToken:  access,
		ErrorCode:    "success",
		ExpiresIn:    int(s.tokenLifetime / time.Second),
		Message:      "OK",
		RefreshToken: rt,
		TokenType:    "bearer",
		TrackingID:   newID(),
	})
}

// authorized checks the bearer token and answers 401 when it is missing,
// unknown or expired.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		writeError(w, http.StatusUnauthorized, "Unauthorized", "Authorization header with a bearer token is required")
		return false
	}
	s.mu.Lock()
	exp, known := s.tokens[token]
	now := s.clock()
	s.mu.Unlock()
	if !known || !now.Before(exp) {
		writeError(w, http.StatusUnauthorized, "Unauthorized", "The access token is invalid or has expired")
		return false
	}
	return true
}

func (s *Server) handleWhoAmI(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	s.mu.Lock()
	who := WhoAmI{ID: s.partnerID, IDType: s.idType, APIHosts: APIHosts{Global: hostURL(r)}}
	s.mu.Unlock()
	if who.IDType != "partner" {
		// Tenant and organization callers are told their data region; partner
		// APIs are global.
		who.APIHosts.DataRegion = hostURL(r)
	}
	writeJSON(w, http.StatusOK, who)
}

// hostURL is the scheme and host the request came in on, so whoami points the
// caller back at this simulator wherever it is mounted.
func hostURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// partner wraps the /partner/v1 handlers: bearer token, then X-Partner-ID
// (400 when missing or not a UUID, 403 when it is not the caller's partner).
func (s *Server) partner(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r) {
			return
		}
		id := r.Header.Get("X-Partner-ID")
		if id == "" {
			writeError(w, http.StatusBadRequest, "BadRequest", "Missing required header X-Partner-ID")
			return
		}
		if !uuidRE.MatchString(id) {
			writeError(w, http.StatusBadRequest, "BadRequest", "Header X-Partner-ID must be a UUID")
			return
		}
		s.mu.Lock()
		ok := s.idType == "partner" && strings.EqualFold(id, s.partnerID)
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusForbidden, "Forbidden", "Access to the requested partner is denied")
			return
		}
		h(w, r)
	}
}

// intParam parses an optional positive integer query parameter.
func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("invalid value %q for query parameter %s", v, name)
	}
	return n, nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("invalid value %q for query parameter %s", v, name)
	}
	return b, nil
}

// fillTenant adds the defaults a served tenant has. The caller holds s.mu.
func (s *Server) fillTenant(t Tenant, host string) Tenant {
	if t.ShowAs == "" {
		t.ShowAs = t.Name
	}
	if t.DataGeography == "" {
		t.DataGeography = "US"
	}
	if t.DataRegion == "" {
		t.DataRegion = "us01"
	}
	if t.BillingType == "" {
		t.BillingType = "usage"
	}
	if t.Partner == nil {
		t.Partner = &IDRef{ID: s.partnerID}
	}
	if t.APIHost == "" {
		t.APIHost = host
	}
	return t
}

func (s *Server) handleTenants(w http.ResponseWriter, r *http.Request) {
	page, err := intParam(r, "page", 1)
	if err == nil {
		var size int
		size, err = intParam(r, "pageSize", tenantsDefaultPageSize)
		if err == nil {
			var total bool
			total, err = boolParam(r, "pageTotal")
			if err == nil {
				s.listTenants(w, r, page, min(size, tenantsMaxPageSize), total)
				return
			}
		}
	}
	writeError(w, http.StatusBadRequest, "BadRequest", "Bad request: "+err.Error())
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, page, size int, withTotal bool) {
	s.mu.Lock()
	all := make([]Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		t = s.fillTenant(t, hostURL(r))
		// The list shows fewer fields than GET by id (see the vendor examples).
		t.ShowAs, t.Organization = "", nil
		all = append(all, t)
	}
	s.mu.Unlock()
	start := min((page-1)*size, len(all))
	end := min(start+size, len(all))
	items := all[start:end]
	if items == nil {
		items = []Tenant{} // Central sends an empty list as []
	}
	pages := Pages{Current: &page, Size: size, MaxSize: tenantsMaxPageSize}
	if withTotal {
		total, n := (len(all)+size-1)/size, len(all)
		pages.Total, pages.Items = &total, &n
	}
	writeJSON(w, http.StatusOK, struct {
		Items []Tenant `json:"items"`
		Pages Pages    `json:"pages"`
	}{items, pages})
}

func (s *Server) handleTenant(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("tenantId")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tenants {
		if strings.EqualFold(t.ID, id) {
			t = s.fillTenant(t, hostURL(r))
			if t.Organization == nil {
				t.Organization = &IDRef{ID: t.ID}
			}
			writeJSON(w, http.StatusOK, t)
			return
		}
	}
	writeError(w, http.StatusNotFound, "NotFound", "Tenant not found")
}

// usageKey is the opaque page key of item i of period p.
func usageKey(p source.Period, i int) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "usage:%s:%d", p, i))
}

func parseUsageKey(p source.Period, key string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), "usage:"+p.String()+":")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0
}

// fillUsage adds the fields a served usage item has when the fixture left them
// out. The caller holds s.mu.
func (s *Server) fillUsage(it UsageItem, p source.Period) UsageItem {
	if it.PartnerAccountID == "" {
		it.PartnerAccountID = s.partnerID
	}
	if it.PartnerAccountName == "" {
		it.PartnerAccountName = s.partnerName
	}
	if it.PartnerEdiAccountNumber == "" {
		it.PartnerEdiAccountNumber = "1000001"
	}
	if it.BillingStartDate == "" {
		it.BillingStartDate = p.Start(time.UTC).Format(time.DateOnly)
	}
	if it.BillingEndDate == "" {
		it.BillingEndDate = p.Next().Start(time.UTC).AddDate(0, 0, -1).Format(time.DateOnly)
	}
	if it.AccountStatus == "" {
		it.AccountStatus = "active"
	}
	if it.SKU == "" {
		it.SKU = strings.ReplaceAll(it.ProductCode, "-", "")
	}
	if it.ProductDescription == "" {
		it.ProductDescription = it.ProductCode + " - MSP Monthly"
	}
	if it.ProductGroup == "" {
		it.ProductGroup = "User"
	}
	return it
}

func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request) {
	year, errY := strconv.Atoi(r.PathValue("year"))
	month, errM := strconv.Atoi(r.PathValue("month"))
	if errY != nil || errM != nil || year < 2000 || year > 9999 || month < 1 || month > 12 {
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid year or month")
		return
	}
	p := source.Period{Year: year, Month: time.Month(month)}
	size, err := intParam(r, "pageSize", usageDefaultPageSize)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Bad request: "+err.Error())
		return
	}
	size = min(size, usageMaxPageSize)
	withTotal, err := boolParam(r, "pageTotal")
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Bad request: "+err.Error())
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	stored, ok := s.usage[p]
	var all []UsageItem
	for _, it := range stored {
		if a := q.Get("accountId"); a != "" && !strings.EqualFold(a, it.AccountID) {
			continue
		}
		if e := q.Get("contactEmail"); e != "" && !strings.EqualFold(e, it.ContactEmail) {
			continue
		}
		all = append(all, s.fillUsage(it, p))
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "NotFound", "No data for requested year or month")
		return
	}
	start := 0
	if k := q.Get("pageFromKey"); k != "" {
		i, ok := parseUsageKey(p, k)
		if !ok || i > len(all) {
			writeError(w, http.StatusBadRequest, "BadRequest", "Invalid value for query parameter pageFromKey")
			return
		}
		start = i
	}
	end := min(start+size, len(all))
	pages := Pages{FromKey: usageKey(p, start), Size: size, MaxSize: usageMaxPageSize}
	if end < len(all) {
		pages.NextKey = usageKey(p, end)
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

// selectFields implements the fields parameter (a partial response): only the
// named top-level fields of each item are returned.
func selectFields[T any](items []T, fields string) (any, error) {
	if fields == "" {
		if items == nil {
			items = []T{}
		}
		return items, nil
	}
	want := strings.Split(fields, ",")
	out := make([]map[string]json.RawMessage, 0, len(items))
	for _, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			return nil, err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		sel := map[string]json.RawMessage{}
		for _, f := range want {
			if v, ok := m[strings.TrimSpace(f)]; ok {
				sel[strings.TrimSpace(f)] = v
			}
		}
		out = append(out, sel)
	}
	return out, nil
}

// handleState serves the simulator's state as JSON. It is not part of the
// Sophos API and needs no token.
func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Fixture())
}
