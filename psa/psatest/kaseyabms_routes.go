package psatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// kaseyaBMSPrefix is the path prefix of the BMS V2 API.
const kaseyaBMSPrefix = "/v2/"

// bmsNumeric matches numeric path segments, replaced by {id} in endpoint
// templates.
var bmsNumeric = regexp.MustCompile(`/\d+(/|$)`)

func bmsEndpoint(path string) string {
	p := strings.TrimSuffix(strings.ToLower(path), "/")
	for {
		q := bmsNumeric.ReplaceAllString(p, "/{id}$1")
		if q == p {
			return p
		}
		p = q
	}
}

// ServeHTTP serves the BMS V2 API. Paths are matched case-insensitively.
func (k *KaseyaBMS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if isRead(r) {
		k.srv.answerRead(r.Context(), requestLatency(r.Context()), func() { k.handle(w, r) })
		return
	}
	k.srv.wait(r.Context(), requestLatency(r.Context()))
	k.handle(w, r)
}

// handle answers a BMS V2 API request once its latency allows.
func (k *KaseyaBMS) handle(w http.ResponseWriter, r *http.Request) {
	if k.pascalCase() {
		pw := &pascalWriter{ResponseWriter: w}
		defer pw.flush()
		w = pw
	}
	endpoint := bmsEndpoint(r.URL.Path)
	if retry, limited := k.countCall(endpoint); limited {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		bmsError(w, http.StatusTooManyRequests, http.StatusTooManyRequests,
			fmt.Sprintf("API call limit exceeded: %d calls per hour to %s", k.hourlyLimit, endpoint))
		return
	}
	segs := strings.Split(strings.Trim(strings.ToLower(r.URL.Path), "/"), "/")[1:] // drop "v2"
	if len(segs) >= 2 && segs[0] == "security" {
		switch {
		case segs[1] == "authenticate" && len(segs) == 2 && r.Method == http.MethodPost:
			k.authenticate(w, r)
		case segs[1] == "refreshtoken" && len(segs) == 2 && r.Method == http.MethodPost:
			k.refreshToken(w, r)
		default:
			bmsRouteNotFound(w, r)
		}
		return
	}
	if msg, ok := k.checkBearer(r); !ok {
		w.Header().Set("WWW-Authenticate", "Bearer")
		bmsError(w, http.StatusUnauthorized, http.StatusUnauthorized, msg)
		return
	}
	id := func(i int) (int, bool) {
		n, err := strconv.Atoi(segs[i])
		return n, err == nil && n > 0
	}
	path := strings.Join(segs, "/")
	if k.serveTickets(w, r, segs) {
		return
	}
	switch {
	case path == "admin/finance/services/lookup" && r.Method == http.MethodGet:
		k.serviceLookup(w, r)
	case path == "admin/finance/services/search" && r.Method == http.MethodPost:
		k.serviceSearch(w, r)
	case path == "admin/finance/services/services" && r.Method == http.MethodPost:
		k.serviceCreate(w, r)
	case len(segs) == 4 && strings.HasPrefix(path, "admin/finance/services/"):
		n, ok := id(3)
		if !ok {
			bmsRouteNotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			k.serviceGet(w, n)
		case http.MethodPut:
			k.serviceUpdate(w, r, n)
		case http.MethodDelete:
			k.serviceDelete(w, n)
		default:
			bmsMethodNotAllowed(w, r)
		}
	case len(segs) == 6 && strings.HasPrefix(path, "admin/finance/services/") && segs[4] == "relatedservices" && segs[5] == "search" &&
		r.Method == http.MethodPost:
		n, _ := id(3)
		k.relatedServices(w, r, n)
	case path == "admin/finance/servicecategory/lookup" && r.Method == http.MethodGet:
		bmsOK(w, namedList(kaseyaBMSCategories), -1)
	case len(segs) == 6 && segs[2] == "servicecategory" && segs[4] == "servicesubcategory" && segs[5] == "lookup" && r.Method == http.MethodGet:
		n, _ := id(3)
		bmsOK(w, namedList(kaseyaBMSSubs[n]), -1)
	case path == "crm/accounts/summary" && r.Method == http.MethodGet:
		k.accountSummary(w, r)
	case len(segs) == 4 && strings.HasPrefix(path, "crm/accounts/summary/") && r.Method == http.MethodGet:
		n, _ := id(3)
		k.accountGet(w, n)
	case path == "crm/accounts/lookup" && r.Method == http.MethodGet:
		k.accountLookup(w, r)
	case path == "finance/contracts/summary" && r.Method == http.MethodGet:
		k.contractSummary(w, r)
	case path == "finance/contracts/lookup" && r.Method == http.MethodGet:
		k.contractLookup(w, r)
	case path == "finance/contracts/recurringservices" && r.Method == http.MethodPost:
		k.contractCreate(w, r)
	case len(segs) == 5 && segs[2] == "recurringservices" && segs[4] == "services" && r.Method == http.MethodPost:
		n, _ := id(3)
		k.linesCreate(w, r, n)
	case len(segs) == 4 && segs[1] == "contracts" && (segs[3] == "activate" || segs[3] == "deactivate") && r.Method == http.MethodPut:
		n, _ := id(2)
		k.contractSetActive(w, n, segs[3] == "activate")
	default:
		bmsRouteNotFound(w, r)
	}
}

// countCall counts a call against its endpoint's rolling hour; limited
// calls are not counted.
func (k *KaseyaBMS) countCall(endpoint string) (time.Duration, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	h := k.pruneLocked(endpoint)
	if len(h) >= k.hourlyLimit {
		return h[0].Add(time.Hour).Sub(k.clock()), true
	}
	k.hits[endpoint] = append(h, k.clock())
	return 0, false
}

// bmsEnvelope is the V2 envelope in the wire's camelCase.
type bmsEnvelope struct {
	Success      bool         `json:"success"`
	Error        *bmsErrorDTO `json:"error"`
	Result       any          `json:"result,omitempty"`
	TotalRecords *int         `json:"totalRecords,omitempty"`
}

type bmsErrorDTO struct {
	Code      int      `json:"code"`
	Message   string   `json:"message"`
	Details   *string  `json:"details"`
	SubErrors []string `json:"subErrors"`
}

// bmsOK writes a success envelope; total < 0 leaves totalRecords out.
func bmsOK(w http.ResponseWriter, result any, total int) {
	env := bmsEnvelope{Success: true, Result: result}
	if total >= 0 {
		env.TotalRecords = &total
	}
	writeJSON(w, http.StatusOK, env)
}

// bmsError writes a success:false envelope with an HTTP status: 200 for
// failures the spec models inside the envelope (validation, not found),
// 401 and 429 for authentication and throttling.
func bmsError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, bmsEnvelope{Success: false, Error: &bmsErrorDTO{Code: code, Message: msg, SubErrors: []string{}}})
}

func bmsRouteNotFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]any{"status": 404, "title": "Not Found", "detail": "No route matches " + r.Method + " " + r.URL.Path})
}

func bmsMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"status": 405, "title": "Method Not Allowed", "detail": r.Method + " is not allowed on " + r.URL.Path})
}

// formValues reads an authenticate or refresh form, urlencoded or
// multipart, with keys folded to lower case (BMS binds them
// case-insensitively).
func formValues(r *http.Request) (map[string]string, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported content type %q: send a form", ct)
	}
	out := map[string]string{}
	for k, v := range r.PostForm {
		if len(v) > 0 {
			out[strings.ToLower(k)] = v[0]
		}
	}
	return out, nil
}

func (k *KaseyaBMS) authenticate(w http.ResponseWriter, r *http.Request) {
	f, err := formValues(r)
	if err != nil {
		bmsError(w, http.StatusBadRequest, http.StatusBadRequest, err.Error())
		return
	}
	if !strings.EqualFold(f["granttype"], "password") {
		bmsError(w, http.StatusOK, http.StatusBadRequest, "GrantType must be password")
		return
	}
	if f["username"] != k.username || f["password"] != k.password || !strings.EqualFold(f["tenant"], k.tenant) {
		bmsError(w, http.StatusOK, http.StatusUnauthorized, "Invalid username, password or tenant")
		return
	}
	k.issueToken(w)
}

func (k *KaseyaBMS) refreshToken(w http.ResponseWriter, r *http.Request) {
	f, err := formValues(r)
	if err != nil {
		bmsError(w, http.StatusBadRequest, http.StatusBadRequest, err.Error())
		return
	}
	k.mu.Lock()
	rt, ok := k.refresh[f["refreshtoken"]]
	valid := ok && rt.access == f["accesstoken"] && k.clock().Before(rt.expires)
	if valid {
		delete(k.refresh, f["refreshtoken"])
		delete(k.tokens, rt.access)
	}
	k.mu.Unlock()
	if !valid {
		bmsError(w, http.StatusOK, http.StatusUnauthorized, "Invalid or expired refresh token")
		return
	}
	k.issueToken(w)
}

func (k *KaseyaBMS) issueToken(w http.ResponseWriter) {
	k.mu.Lock()
	k.tokenSeq++
	now := k.clock().UTC()
	access := fmt.Sprintf("sim.bms-access.%d", k.tokenSeq)
	refresh := fmt.Sprintf("sim-bms-refresh-%d", k.tokenSeq)
	k.tokens[access] = now.Add(k.tokenTTL)
	k.refresh[refresh] = bmsRefresh{access: access, expires: now.Add(k.refreshTTL)}
	res := map[string]any{
		"accessToken": access, "refreshToken": refresh,
		"accessTokenExpireOn": bmsTime(now.Add(k.tokenTTL)), "refreshTokenExpireOn": bmsTime(now.Add(k.refreshTTL)),
	}
	k.mu.Unlock()
	bmsOK(w, res, -1)
}

func (k *KaseyaBMS) checkBearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "Authorization has been denied for this request: no bearer token", false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	exp, ok := k.tokens[tok]
	if !ok {
		return "Authorization has been denied for this request: invalid token", false
	}
	if !k.clock().Before(exp) {
		return "Authorization has been denied for this request: token expired", false
	}
	return "", true
}

func bmsTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func namedList(list []bmsNamed) []map[string]any {
	out := make([]map[string]any, 0, len(list))
	for _, n := range list {
		out = append(out, map[string]any{"id": n.ID, "name": n.Name})
	}
	return out
}

// paging reads PageSize (default 50) and PageNumber, and returns the size
// and the 1-based page to answer (see SetPaging).
func (k *KaseyaBMS) paging(q url.Values) (size, number int) {
	size = 50
	for key, v := range q {
		switch strings.ToLower(key) {
		case "pagesize":
			if n, err := strconv.Atoi(v[0]); err == nil && n > 0 {
				size = n
			}
		case "pagenumber":
			if n, err := strconv.Atoi(v[0]); err == nil && n > 0 {
				number = n
			}
		}
	}
	return size, k.pageIndex(number)
}

func page[T any](list []T, size, number int) []T {
	start := (number - 1) * size
	if start >= len(list) {
		return []T{}
	}
	return list[start:min(start+size, len(list))]
}

// query returns the values of a query parameter, matching the key
// case-insensitively.
func query(q url.Values, key string) []string {
	var out []string
	for k, v := range q {
		if strings.EqualFold(k, key) {
			out = append(out, v...)
		}
	}
	return out
}

func query1(q url.Values, key string) string {
	if v := query(q, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func (k *KaseyaBMS) serviceDTOLocked(s *KaseyaBMSService, list bool) map[string]any {
	nullable := func(id int) any {
		if id == 0 {
			return nil
		}
		return id
	}
	name := func(n string) any {
		if n == "" {
			return nil
		}
		return n
	}
	sub, _ := bmsSubName(s.SubCategoryID)
	m := map[string]any{
		"id": s.ID, "name": s.Name, "description": s.Description, "unitCost": s.UnitCost, "unitPrice": s.UnitPrice,
		"categoryId": nullable(s.CategoryID), "category": name(bmsName(kaseyaBMSCategories, s.CategoryID)),
		"subCategoryId": nullable(s.SubCategoryID), "subCategory": name(sub),
		"unitOfMeasureId": nullable(s.UnitOfMeasureID), "unitOfMeasure": name(bmsName(kaseyaBMSUnits, s.UnitOfMeasureID)),
		"incomeAccountCode": nil, "incomeAccountName": nil, "expenseAccountCode": nil, "expenseAccountName": nil,
		"isActive": s.Active, "isTaxable": s.Taxable, "margin": nil, "marginType": nil,
		"createdOn": bmsTime(k.clock()), "createdBy": 1, "modifiedOn": bmsTime(k.clock()), "modifiedBy": 1,
	}
	if !list {
		m["incomeAccountId"], m["expenseAccountId"] = nil, nil
	}
	return m
}

func (k *KaseyaBMS) serviceLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, number := k.paging(q)
	id, _ := strconv.Atoi(query1(q, "Filter.Id"))
	name := query1(q, "Filter.Name")
	k.mu.Lock()
	var all []map[string]any
	for _, s := range k.services {
		if (id == 0 || s.ID == id) && containsFold(s.Name, name) {
			all = append(all, map[string]any{"id": s.ID, "name": s.Name, "description": s.Description})
		}
	}
	k.mu.Unlock()
	bmsOK(w, page(all, size, number), len(all))
}

// bmsSearchBody is ServicesListInputDto.
type bmsSearchBody struct {
	PageSize   int
	PageNumber int
	Filter     *struct {
		Name      *string
		IsActive  *int
		IsTaxable *int
	}
}

func decodeBody(r *http.Request, v any) error {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return fmt.Errorf("the request body is not valid JSON: %v", err)
	}
	return nil
}

func (k *KaseyaBMS) serviceSearch(w http.ResponseWriter, r *http.Request) {
	var body bmsSearchBody
	if err := decodeBody(r, &body); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	size, number := 50, k.pageIndex(body.PageNumber)
	if body.PageSize > 0 {
		size = body.PageSize
	}
	k.mu.Lock()
	var all []map[string]any
	for _, s := range k.services {
		if f := body.Filter; f != nil {
			if f.Name != nil && !containsFold(s.Name, *f.Name) ||
				f.IsActive != nil && (*f.IsActive == 1) != s.Active ||
				f.IsTaxable != nil && (*f.IsTaxable == 1) != s.Taxable {
				continue
			}
		}
		all = append(all, k.serviceDTOLocked(s, true))
	}
	k.mu.Unlock()
	bmsOK(w, page(all, size, number), len(all))
}

func (k *KaseyaBMS) serviceGet(w http.ResponseWriter, id int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.serviceLocked(id)
	if s == nil {
		bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Service with id %d not found", id))
		return
	}
	bmsOK(w, k.serviceDTOLocked(s, false), -1)
}

// bmsServiceInput is ServiceInputDto.
type bmsServiceInput struct {
	Name            string
	Description     string
	UnitCost        *float64
	UnitPrice       *float64
	CategoryID      *int `json:"CategoryId"`
	SubCategoryID   *int `json:"SubCategoryId"`
	UnitOfMeasureID *int `json:"UnitOfMeasureId"`
	IsActive        bool
	IsTaxable       bool
}

// applyLocked validates in and writes it to s.
func (k *KaseyaBMS) applyLocked(s *KaseyaBMSService, in bmsServiceInput) string {
	if strings.TrimSpace(in.Name) == "" {
		return "Name is required"
	}
	for _, o := range k.services {
		if o.ID != s.ID && strings.EqualFold(o.Name, in.Name) {
			return fmt.Sprintf("A service named %q already exists", in.Name)
		}
	}
	deref := func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	}
	cat, sub, uom := deref(in.CategoryID), deref(in.SubCategoryID), deref(in.UnitOfMeasureID)
	if cat != 0 && bmsName(kaseyaBMSCategories, cat) == "" {
		return fmt.Sprintf("Category %d does not exist", cat)
	}
	if sub != 0 {
		if _, parent := bmsSubName(sub); parent == 0 || parent != cat {
			return fmt.Sprintf("Subcategory %d does not belong to category %d", sub, cat)
		}
	}
	if uom != 0 && bmsName(kaseyaBMSUnits, uom) == "" {
		return fmt.Sprintf("Unit of measure %d does not exist", uom)
	}
	s.Name, s.Description, s.Active, s.Taxable = in.Name, in.Description, in.IsActive, in.IsTaxable
	s.UnitCost, s.UnitPrice = 0, 0
	if in.UnitCost != nil {
		s.UnitCost = *in.UnitCost
	}
	if in.UnitPrice != nil {
		s.UnitPrice = *in.UnitPrice
	}
	s.CategoryID, s.SubCategoryID, s.UnitOfMeasureID = cat, sub, uom
	return ""
}

func (k *KaseyaBMS) serviceCreate(w http.ResponseWriter, r *http.Request) {
	var in bmsServiceInput
	if err := decodeBody(r, &in); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var s KaseyaBMSService
	if msg := k.applyLocked(&s, in); msg != "" {
		bmsError(w, http.StatusOK, http.StatusBadRequest, msg)
		return
	}
	id := k.addServiceLocked(s)
	bmsOK(w, k.serviceDTOLocked(k.serviceLocked(id), false), -1)
}

func (k *KaseyaBMS) serviceUpdate(w http.ResponseWriter, r *http.Request, id int) {
	var in bmsServiceInput
	if err := decodeBody(r, &in); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.serviceLocked(id)
	if s == nil {
		bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Service with id %d not found", id))
		return
	}
	upd := *s
	if msg := k.applyLocked(&upd, in); msg != "" {
		bmsError(w, http.StatusOK, http.StatusBadRequest, msg)
		return
	}
	*s = upd
	bmsOK(w, k.serviceDTOLocked(s, false), -1)
}

func (k *KaseyaBMS) serviceDelete(w http.ResponseWriter, id int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.serviceLocked(id) == nil {
		bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Service with id %d not found", id))
		return
	}
	for _, l := range k.lines {
		if l.ServiceID == id {
			bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("Service %d is used on contract %d and cannot be deleted; deactivate it instead", id, l.ContractID))
			return
		}
	}
	k.deleteServiceLocked(id)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "error": nil, "result": "Service deleted"})
}

// relatedServices answers the related services search: the contract
// lines of service id (RelatedServiceOutputDto, no Units), paged. Its
// Filter is read as JSON but not applied. A service that does not exist
// has no lines (BMS's answer there is not documented).
func (k *KaseyaBMS) relatedServices(w http.ResponseWriter, r *http.Request, id int) {
	var body bmsSearchBody
	if err := decodeBody(r, &body); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	size, number := 50, k.pageIndex(body.PageNumber)
	if body.PageSize > 0 {
		size = body.PageSize
	}
	k.mu.Lock()
	all := []map[string]any{}
	for _, l := range k.lines {
		if l.ServiceID != id {
			continue
		}
		m := map[string]any{"id": l.ID, "serviceId": l.ServiceID, "contractId": l.ContractID, "serviceName": l.ServiceName,
			"serviceDescription": l.Description, "effectiveDate": bmsTime(l.EffectiveDate), "unitCost": l.UnitCost,
			"unitPrice": l.UnitPrice, "marginType": nil, "margin": nil, "excludeFromContractBulkUpdates": false}
		if c := k.contractByID[l.ContractID]; c != nil {
			m["contractName"], m["accountId"] = c.Name, c.AccountID
			m["contractStartDate"], m["contractEndDate"] = bmsTime(c.StartDate), bmsTime(c.EndDate)
			if a := k.accountByID[c.AccountID]; a != nil {
				m["accountName"] = a.Name
			}
		}
		all = append(all, m)
	}
	k.mu.Unlock()
	bmsOK(w, page(all, size, number), len(all))
}

func accountDTO(a *KaseyaBMSAccount, tenant string) map[string]any {
	m := map[string]any{"id": a.ID, "accountCode": a.Code, "accountName": a.Name, "accountTypeId": 1, "accountType": "Customer",
		"isActive": a.Active, "isBilling": true, "tenantName": tenant, "locations": []any{}}
	return m
}

func (k *KaseyaBMS) accountSummary(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, number := k.paging(q)
	name := query1(q, "Filter.AccountName")
	active := query1(q, "Filter.IsActive")
	k.mu.Lock()
	var all []map[string]any
	for _, a := range k.accounts {
		if !containsFold(a.Name, name) || active != "" && strconv.FormatBool(a.Active) != strings.ToLower(active) {
			continue
		}
		all = append(all, accountDTO(a, k.tenant))
	}
	k.mu.Unlock()
	bmsOK(w, page(all, size, number), len(all))
}

// accountGet answers GET /v2/crm/accounts/summary/{id} with the bare DTO,
// as the spec declares.
func (k *KaseyaBMS) accountGet(w http.ResponseWriter, id int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	a := k.accountLocked(id)
	if a == nil {
		bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Account with id %d not found", id))
		return
	}
	writeJSON(w, http.StatusOK, accountDTO(a, k.tenant))
}

func (k *KaseyaBMS) accountLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, number := k.paging(q)
	ids := intSet(query(q, "Filter.Ids"))
	name := query1(q, "Filter.Name")
	inactive := strings.EqualFold(query1(q, "Filter.WithInactiveAccounts"), "true")
	k.mu.Lock()
	var all []map[string]any
	for _, a := range k.accounts {
		if ids != nil && !ids[a.ID] || !containsFold(a.Name, name) || !a.Active && !inactive {
			continue
		}
		all = append(all, map[string]any{"id": a.ID, "name": a.Name, "tenantName": k.tenant, "isActive": a.Active})
	}
	k.mu.Unlock()
	bmsOK(w, page(all, size, number), -1)
}

// intSet returns the values that are integers as a set; nil when none is.
func intSet(values []string) map[int]bool {
	var set map[int]bool
	for _, v := range values {
		if n, err := strconv.Atoi(v); err == nil {
			if set == nil {
				set = map[int]bool{}
			}
			set[n] = true
		}
	}
	return set
}

func status(c *KaseyaBMSContract) string {
	if c.Active {
		return "Active"
	}
	return "Inactive"
}

func (k *KaseyaBMS) contractSummary(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, number := k.paging(q)
	k.mu.Lock()
	var all []map[string]any
	for _, c := range k.contracts {
		a := k.accountLocked(c.AccountID)
		if !containsFold(c.Type, query1(q, "Filter.ContractType")) || !containsFold(c.Name, query1(q, "Filter.ContractName")) ||
			!containsFold(c.BillingCycle, query1(q, "Filter.BillingCycle")) || !containsFold(a.Name, query1(q, "Filter.AccountName")) ||
			!containsFold(status(c), query1(q, "Filter.Status")) {
			continue
		}
		all = append(all, map[string]any{"id": c.ID, "contractName": c.Name, "accountName": a.Name, "contractType": c.Type,
			"contractBillingPrice": k.billingPriceLocked(c), "status": status(c), "contractNumber": c.Number,
			"billingCycle": c.BillingCycle, "startDate": bmsTime(c.StartDate), "endDate": bmsTime(c.EndDate)})
	}
	k.mu.Unlock()
	bmsOK(w, page(all, size, number), len(all))
}

func (k *KaseyaBMS) billingPriceLocked(c *KaseyaBMSContract) float64 {
	total := 0.0
	seen := map[int]bool{}
	for _, l := range k.contractLines[c.ID] {
		if seen[l.ServiceID] {
			continue
		}
		seen[l.ServiceID] = true
		if u, ok := k.unitsLocked(c.ID, l.ServiceID, k.clock()); ok {
			total += float64(u) * l.UnitPrice
		}
	}
	return total
}

func (k *KaseyaBMS) contractLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ids := intSet(query(q, "Ids"))
	account, _ := strconv.Atoi(query1(q, "AccountId"))
	name := query1(q, "Name")
	excludeExpired := strings.EqualFold(query1(q, "ExcludeExpiredContracts"), "true")
	today := day(k.clock())
	k.mu.Lock()
	all := []map[string]any{}
	for _, c := range k.contracts {
		if ids != nil && !ids[c.ID] || account != 0 && c.AccountID != account ||
			!containsFold(c.Name, name) || excludeExpired && c.EndDate.Before(today) {
			continue
		}
		all = append(all, map[string]any{"id": c.ID, "name": c.Name, "isDefault": false, "slaId": nil, "slaName": nil,
			"isActive": c.Active, "endDate": bmsTime(c.EndDate)})
	}
	k.mu.Unlock()
	bmsOK(w, all, -1)
}

// bmsLineInput is RecurringServicePostInputDto.
type bmsLineInput struct {
	ServiceID          int `json:"ServiceId"`
	ServiceName        string
	ServiceDescription string
	Units              *int
	UnitCost           float64
	UnitPrice          float64
	EffectiveDate      string
	SortOrder          int
}

// validateLinesLocked checks lines for contract c and returns the lines
// to add.
func (k *KaseyaBMS) validateLinesLocked(c *KaseyaBMSContract, in []bmsLineInput) ([]KaseyaBMSLine, string) {
	var out []KaseyaBMSLine
	for i, l := range in {
		s := k.serviceLocked(l.ServiceID)
		switch {
		case s == nil:
			return nil, fmt.Sprintf("Services[%d]: service %d not found", i, l.ServiceID)
		case !s.Active:
			return nil, fmt.Sprintf("Services[%d]: service %d is inactive", i, l.ServiceID)
		case l.Units == nil:
			return nil, fmt.Sprintf("Services[%d]: Units is required", i)
		case *l.Units < 0:
			return nil, fmt.Sprintf("Services[%d]: Units cannot be negative", i)
		}
		eff, err := parseTime(l.EffectiveDate)
		if err != nil {
			return nil, fmt.Sprintf("Services[%d]: EffectiveDate is required", i)
		}
		if d := day(eff); d.Before(c.StartDate) || d.After(c.EndDate) {
			return nil, fmt.Sprintf("Services[%d]: EffectiveDate %s is outside the contract (%s to %s)", i,
				d.Format(time.DateOnly), c.StartDate.Format(time.DateOnly), c.EndDate.Format(time.DateOnly))
		}
		name, desc := l.ServiceName, l.ServiceDescription
		if name == "" {
			name = s.Name
		}
		out = append(out, KaseyaBMSLine{ServiceID: s.ID, ServiceName: name, Description: desc, Units: *l.Units,
			UnitCost: l.UnitCost, UnitPrice: l.UnitPrice, EffectiveDate: eff, SortOrder: l.SortOrder})
	}
	return out, ""
}

func (k *KaseyaBMS) lineDTOLocked(c *KaseyaBMSContract, l *KaseyaBMSLine, full bool) map[string]any {
	m := map[string]any{"id": l.ID, "createdBy": 1, "createdOn": bmsTime(l.Created), "modifiedBy": 1, "modifiedOn": bmsTime(l.Created),
		"serviceId": l.ServiceID, "serviceName": l.ServiceName, "contractId": c.ID, "contractName": c.Name,
		"totalCost": float64(l.Units) * l.UnitCost, "totalPrice": float64(l.Units) * l.UnitPrice, "units": float64(l.Units),
		"unitCost": l.UnitCost, "unitPrice": l.UnitPrice, "effectiveDate": bmsTime(l.EffectiveDate), "sortOrder": l.SortOrder}
	if full {
		m["description"], m["margin"], m["originalUnitPrice"], m["originalUnitCost"] = l.Description, l.UnitPrice-l.UnitCost, l.UnitPrice, l.UnitCost
	} else {
		m["serviceDescription"] = l.Description
	}
	return m
}

// bmsContractInput is RecurringServicesContractPostInputDto.
type bmsContractInput struct {
	ContractName    string
	AccountID       int `json:"AccountId"`
	ReferenceNumber string
	BillingCycleID  int `json:"BillingCycleId"`
	StartDate       string
	EndDate         string
	Services        []bmsLineInput
}

var bmsBillingCycles = map[int]string{1: "Monthly", 2: "Quarterly", 3: "Semi-Annually", 4: "Annually"}

func (k *KaseyaBMS) contractCreate(w http.ResponseWriter, r *http.Request) {
	var in bmsContractInput
	if err := decodeBody(r, &in); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	start, err1 := parseTime(in.StartDate)
	end, err2 := parseTime(in.EndDate)
	k.mu.Lock()
	defer k.mu.Unlock()
	a := k.accountLocked(in.AccountID)
	cycle := bmsBillingCycles[in.BillingCycleID]
	switch {
	case strings.TrimSpace(in.ContractName) == "":
		bmsError(w, http.StatusOK, http.StatusBadRequest, "ContractName is required")
		return
	case a == nil:
		bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("Account %d not found", in.AccountID))
		return
	case cycle == "":
		bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("BillingCycleId %d is not valid", in.BillingCycleID))
		return
	case err1 != nil || err2 != nil || day(end).Before(day(start)):
		bmsError(w, http.StatusOK, http.StatusBadRequest, "StartDate and EndDate are required, and EndDate cannot be before StartDate")
		return
	}
	c := &KaseyaBMSContract{AccountID: a.ID, Name: in.ContractName, Type: kaseyaBMSContractTypeDefault, BillingCycle: cycle, StartDate: day(start), EndDate: day(end)}
	lines, msg := k.validateLinesLocked(c, in.Services)
	if msg != "" {
		bmsError(w, http.StatusOK, http.StatusBadRequest, msg)
		return
	}
	id := k.addContractLocked(*c)
	c = k.contractLocked(id)
	services := []map[string]any{}
	for _, l := range lines {
		k.addLineLocked(c, l)
		services = append(services, k.lineDTOLocked(c, k.lines[len(k.lines)-1], false))
	}
	bmsOK(w, map[string]any{"id": c.ID, "createdBy": 1, "createdOn": bmsTime(k.clock()), "modifiedBy": 1, "modifiedOn": bmsTime(k.clock()),
		"contractName": c.Name, "accountId": a.ID, "accountName": a.Name, "typeId": 1, "typeName": c.Type, "slaId": nil, "slaName": nil,
		"referenceNumber": in.ReferenceNumber, "statusId": 1, "statusName": status(c), "contractNumber": c.Number,
		"billingCycleId": in.BillingCycleID, "billingCycleName": cycle, "contractBillingPrice": k.billingPriceLocked(c),
		"startDate": bmsTime(c.StartDate), "endDate": bmsTime(c.EndDate), "isDefaultContract": false, "issueInvoiceOnId": nil,
		"issueInvoiceOnName": nil, "isFiscalBilling": false, "isNotificationEnabled": false, "notificationEmails": []string{},
		"services": services}, -1)
}

func (k *KaseyaBMS) linesCreate(w http.ResponseWriter, r *http.Request, contractID int) {
	var in []bmsLineInput
	if err := decodeBody(r, &in); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error()+" (the body must be an array of services)")
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.contractLocked(contractID)
	switch {
	case c == nil:
		bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Contract with id %d not found", contractID))
		return
	case !strings.EqualFold(c.Type, kaseyaBMSContractTypeDefault):
		bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("Contract %d is not a recurring services contract", contractID))
		return
	case !c.Active:
		bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("Contract %d is not active", contractID))
		return
	case len(in) == 0:
		bmsError(w, http.StatusOK, http.StatusBadRequest, "At least one service is required")
		return
	}
	lines, msg := k.validateLinesLocked(c, in)
	if msg != "" {
		bmsError(w, http.StatusOK, http.StatusBadRequest, msg)
		return
	}
	var first *KaseyaBMSLine
	for _, l := range lines {
		lid := k.addLineLocked(c, l)
		if first == nil {
			first = k.lines[len(k.lines)-1]
			_ = lid
		}
	}
	bmsOK(w, k.lineDTOLocked(c, first, true), -1)
}

func (k *KaseyaBMS) contractSetActive(w http.ResponseWriter, id int, active bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.contractLocked(id)
	if c == nil {
		bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Contract with id %d not found", id))
		return
	}
	c.Active, c.Inactive = active, !active
	statusID := 2
	if active {
		statusID = 1
	}
	bmsOK(w, map[string]any{"id": c.ID, "contractName": c.Name, "contractDescription": nil, "contractNumber": c.Number,
		"statusId": statusID, "statusName": status(c), "typeId": 1, "typeName": c.Type}, -1)
}

// pascalWriter rewrites a JSON answer's keys to PascalCase (first letter
// upper-cased), the casing the vendor's document declares.
type pascalWriter struct {
	http.ResponseWriter
	status int
	buf    []byte
}

func (p *pascalWriter) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *pascalWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	p.buf = append(p.buf, b...)
	return len(b), nil
}

func (p *pascalWriter) flush() {
	body := p.buf
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&v) == nil {
		if data, err := json.Marshal(pascalKeys(v)); err == nil {
			body = data
		}
	}
	if p.status == 0 {
		p.status = http.StatusOK
	}
	p.ResponseWriter.WriteHeader(p.status)
	_, _ = p.ResponseWriter.Write(body)
}

func pascalKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if k != "" {
				k = strings.ToUpper(k[:1]) + k[1:]
			}
			out[k] = pascalKeys(val)
		}
		return out
	case []any:
		for i := range x {
			x[i] = pascalKeys(x[i])
		}
	}
	return v
}

// redactBMSForm hides the password and tokens of a BMS security form in
// the /_sim/requests log; other bodies are returned as they are.
func redactBMSForm(path string, body []byte) []byte {
	if !hasPrefixFold(path, kaseyaBMSPrefix+"security/") {
		return body
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return []byte("REDACTED")
	}
	for key := range form {
		switch strings.ToLower(key) {
		case "password", "accesstoken", "refreshtoken", "clientsecret", "mfacode":
			form.Set(key, "REDACTED")
		}
	}
	return []byte(form.Encode())
}
