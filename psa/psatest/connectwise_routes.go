package psatest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Paths of the simulated ConnectWise API (case-insensitive):
//
//	GET /login/companyinfo/{company}
//	/{codebase}apis/3.0/company/companies[/count|/{id}]
//	/{codebase}apis/3.0/procurement/catalog[/count|/{id}]
//	/{codebase}apis/3.0/finance/agreements[/count|/{id}]
//	/{codebase}apis/3.0/finance/agreements/{id}/additions[/count|/{id}]
const cwCompanyInfoPrefix = "/login/companyinfo/"

// Field types of the simulated resources: s string, n number, b bool,
// d date-time string, r reference object, a array, i _info.
var cwSchema = map[string]map[string]byte{
	"company": {"id": 'n', "identifier": 's', "name": 's', "status": 'r', "deletedFlag": 'b', "types": 'a', "_info": 'i'},
	"catalog": {"id": 'n', "identifier": 's', "description": 's', "customerDescription": 's', "price": 'n', "cost": 'n',
		"notes": 's', "productClass": 's', "inactiveFlag": 'b', "billableOption": 's', "recurringFlag": 'b', "type": 'r', "category": 'r',
		"subcategory": 'r', "recurringBillCycle": 'r', "integrationXRef": 's', "_info": 'i'},
	"agreement": {"id": 'n', "name": 's', "type": 'r', "company": 'r', "agreementStatus": 's', "cancelledFlag": 'b',
		"dateCancelled": 'd', "startDate": 'd', "endDate": 'd', "noEndingDateFlag": 'b', "billingCycle": 'r', "_info": 'i'},
	"addition": {"id": 'n', "product": 'r', "quantity": 'n', "lessIncluded": 'n', "unitPrice": 'n', "unitCost": 'n',
		"extPrice": 'n', "billCustomer": 's', "effectiveDate": 'd', "cancelledDate": 'd', "agreementStatus": 's',
		"agreementId": 'n', "description": 's', "taxableFlag": 'b', "_info": 'i'},
	// Product types and subcategories [inferred/community: the ProductType
	// and SubCategory models of OpenAPI-generated clients, e.g.
	// Jetbuilt/connect_wise docs/ProductType.md, spinen/connectwise-php-client
	// Procurement/SubCategory.php, pyconnectwise SubCategoryInfoModel].
	"type":        {"id": 'n', "name": 's', "inactiveFlag": 'b', "defaultFlag": 'b', "typeXref": 's', "_info": 'i'},
	"subcategory": {"id": 'n', "name": 's', "category": 'r', "inactiveFlag": 'b', "integrationXref": 's', "_info": 'i'},
}

// cwWritable lists the fields PATCH may change.
var cwWritable = map[string]map[string]bool{
	"catalog": {"identifier": true, "description": true, "customerDescription": true, "notes": true, "price": true, "cost": true,
		"productClass": true, "inactiveFlag": true, "billableOption": true, "recurringFlag": true, "type": true,
		"category": true, "subcategory": true, "integrationXRef": true},
	"addition": {"quantity": true, "lessIncluded": true, "unitPrice": true, "unitCost": true, "billCustomer": true,
		"effectiveDate": true, "cancelledDate": true, "description": true, "taxableFlag": true},
}

// knownPath reports whether a conditions or fields path exists on kind.
func knownPath(kind, path string) bool {
	segs := strings.Split(path, "/")
	t, ok := fieldType(kind, segs[0])
	if !ok {
		return false
	}
	if len(segs) == 1 {
		return true
	}
	return len(segs) == 2 && (t == 'r' || t == 'i' || t == 'a')
}

func fieldType(kind, name string) (byte, bool) {
	for k, t := range cwSchema[kind] {
		if strings.EqualFold(k, name) {
			return t, true
		}
	}
	return 0, false
}

func (s *Server) ownsConnectWise(p string) bool {
	if s.connectwise == nil {
		return false
	}
	if hasPrefixFold(p, cwCompanyInfoPrefix) {
		return true
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	return len(segs) >= 3 && strings.EqualFold(segs[1], "apis") && segs[2] == "3.0"
}

// cwError writes ConnectWise's error envelope.
func cwError(w http.ResponseWriter, status int, code, msg string, errs ...map[string]any) {
	body := map[string]any{"code": code, "message": msg}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	writeJSON(w, status, body)
}

func cwFieldError(code, field, msg, resource string) map[string]any {
	return map[string]any{"code": code, "message": msg, "resource": resource, "field": field}
}

// ServeHTTP serves the simulated ConnectWise API.
func (cw *ConnectWise) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("api-current-version", cw.version)
	if hasPrefixFold(r.URL.Path, cwCompanyInfoPrefix) {
		cw.srv.wait(r.Context(), requestLatency(r.Context()))
		cw.companyInfo(w, r)
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	cw.mu.Lock()
	current := cw.codebase
	cw.mu.Unlock()
	if !strings.EqualFold(segs[0]+"/", current) {
		cwError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("The codebase '%s/' is not available for this company.", segs[0]))
		return
	}
	if !cw.authenticate(w, r) {
		return
	}
	if !cw.checkVersion(w, r) {
		return
	}
	if wait, ok := cw.countRequest(); !ok {
		w.Header().Set("Retry-After", retryAfterValue(wait))
		cwError(w, http.StatusTooManyRequests, "TooManyRequests", "API request limit exceeded; retry later.")
		return
	}
	if isRead(r) {
		cw.srv.answerRead(r.Context(), requestLatency(r.Context()), func() { cw.route(w, r, segs[3:]) })
		return
	}
	cw.srv.wait(r.Context(), requestLatency(r.Context()))
	cw.route(w, r, segs[3:])
}

func (cw *ConnectWise) companyInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		cwError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
		return
	}
	company := r.URL.Path[len(cwCompanyInfoPrefix):]
	if !strings.EqualFold(strings.Trim(company, "/"), cw.company) {
		cwError(w, http.StatusNotFound, "NotFound", "Company not found.")
		return
	}
	cw.mu.Lock()
	cb := cw.codebase
	cw.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"CompanyName": cw.company, "Codebase": cb, "VersionCode": "v" + ConnectWiseAPIVersion,
		"CompanyID": cw.company, "IsCloud": false, "SiteUrl": r.Host,
	})
}

// authenticate checks Basic "company+publicKey:privateKey" and clientId.
func (cw *ConnectWise) authenticate(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	user, pass, ok := "", "", false
	if v, found := strings.CutPrefix(auth, "Basic "); found {
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v)); err == nil {
			user, pass, ok = strings.Cut(string(raw), ":")
		}
	}
	company, pub, _ := strings.Cut(user, "+")
	if !ok || !strings.EqualFold(company, cw.company) || pub != cw.publicKey || pass != cw.privateKey {
		cwError(w, http.StatusUnauthorized, "Unauthorized", "Authentication failed: expected Basic authentication as company+publicKey:privateKey.")
		return false
	}
	if r.Header.Get("clientId") != cw.clID {
		cwError(w, http.StatusUnauthorized, "Unauthorized", "A valid clientId header is required for all API calls.")
		return false
	}
	return true
}

// checkVersion honours the version of Accept when the vendor media type
// comes first (as ConnectWise does), refusing versions it does not have.
func (cw *ConnectWise) checkVersion(w http.ResponseWriter, r *http.Request) bool {
	first, _, _ := strings.Cut(r.Header.Get("Accept"), ",")
	mt, params, err := mime.ParseMediaType(strings.TrimSpace(first))
	if err != nil || mt != "application/vnd.connectwise.com+json" {
		return true // the current version
	}
	v, ok := params["version"]
	if !ok {
		return true
	}
	if !validCWVersion(v, cw.version) {
		cwError(w, http.StatusBadRequest, "ConnectWiseApi", fmt.Sprintf("The HTTP resource that matches the request URI '%s' does not support the API version '%s'.", r.URL.Path, v))
		return false
	}
	return true
}

// validCWVersion reports whether a server of version current has version v.
func validCWVersion(v, current string) bool {
	y, n, ok := strings.Cut(v, ".")
	yi, err1 := strconv.Atoi(y)
	ni, err2 := strconv.Atoi(n)
	cy, cn, _ := strings.Cut(current, ".")
	cyi, _ := strconv.Atoi(cy)
	cni, _ := strconv.Atoi(cn)
	if !ok || err1 != nil || err2 != nil || yi < 2019 || ni < 1 {
		return false
	}
	return yi < cyi || yi == cyi && ni <= cni
}

func (cw *ConnectWise) countRequest() (time.Duration, bool) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.rateLimit <= 0 {
		return 0, true
	}
	now := cw.clock()
	keep := cw.hits[:0]
	for _, t := range cw.hits {
		if now.Sub(t) < cw.ratePer {
			keep = append(keep, t)
		}
	}
	cw.hits = keep
	if len(cw.hits) >= cw.rateLimit {
		return cw.ratePer - now.Sub(cw.hits[0]), false
	}
	cw.hits = append(cw.hits, now)
	return 0, true
}

func (cw *ConnectWise) route(w http.ResponseWriter, r *http.Request, segs []string) {
	lower := make([]string, len(segs))
	for i, s := range segs {
		lower[i] = strings.ToLower(s)
	}
	join := strings.Join(lower, "/")
	notFound := func() {
		cwError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("No resource matches '%s'.", r.URL.Path))
	}
	if lower[0] == "service" {
		cw.routeService(w, r, segs, lower)
		return
	}
	var kind string
	var rest []string
	var agreementID int64
	switch {
	case strings.HasPrefix(join+"/", "company/companies/"):
		kind, rest = "company", segs[2:]
	case strings.HasPrefix(join+"/", "procurement/catalog/"):
		kind, rest = "catalog", segs[2:]
	case strings.HasPrefix(join+"/", "procurement/types/"):
		kind, rest = "type", segs[2:]
	case strings.HasPrefix(join+"/", "procurement/subcategories/"):
		kind, rest = "subcategory", segs[2:]
	case len(segs) >= 4 && lower[0] == "finance" && lower[1] == "agreements" && lower[3] == "additions":
		id, err := strconv.ParseInt(segs[2], 10, 64)
		if err != nil {
			notFound()
			return
		}
		kind, rest, agreementID = "addition", segs[4:], id
	case strings.HasPrefix(join+"/", "finance/agreements/"):
		kind, rest = "agreement", segs[2:]
	default:
		notFound()
		return
	}
	if len(rest) > 1 {
		notFound()
		return
	}
	methods := map[string][]string{
		"company": {"GET"}, "agreement": {"GET"}, "type": {"GET"}, "subcategory": {"GET"},
		"catalog": {"GET", "POST", "PATCH", "DELETE"}, "addition": {"GET", "POST", "PATCH", "DELETE"},
	}
	allowed := false
	for _, m := range methods[kind] {
		allowed = allowed || m == r.Method
	}
	if !allowed {
		cwError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
		return
	}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if kind == "addition" && cw.agreements[agreementID] == nil {
		cwError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Agreement recId %d not found.", agreementID))
		return
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		cw.listLocked(w, r, kind, agreementID)
	case len(rest) == 0 && r.Method == http.MethodPost:
		cw.createLocked(w, r, kind, agreementID)
	case len(rest) == 0:
		cwError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
	case strings.EqualFold(rest[0], "count") && r.Method == http.MethodGet:
		cw.countLocked(w, r, kind, agreementID)
	default:
		id, err := strconv.ParseInt(rest[0], 10, 64)
		if err != nil {
			notFound()
			return
		}
		cw.itemLocked(w, r, kind, agreementID, id)
	}
}

func (cw *ConnectWise) tableLocked(kind string) map[int64]map[string]any {
	switch kind {
	case "company":
		return cw.companies
	case "catalog":
		return cw.catalog
	case "agreement":
		return cw.agreements
	case "type":
		return cw.types
	case "subcategory":
		return cw.subcategories
	}
	return cw.additions
}

// recordsLocked returns the rendered records of kind (of one agreement for
// additions) in id order.
func (cw *ConnectWise) recordsLocked(kind string, agreementID int64) []map[string]any {
	t := cw.tableLocked(kind)
	ids := cw.byAgreement[agreementID]
	if kind != "addition" {
		ids = sortedIDs(t)
	} else if cw.additionsHidden[agreementID] {
		return nil
	}
	var out []map[string]any
	for _, id := range ids {
		out = append(out, cw.renderLocked(kind, t[id]))
	}
	return out
}

// renderLocked returns a record as the API serves it, with computed fields.
func (cw *ConnectWise) renderLocked(kind string, rec map[string]any) map[string]any {
	if kind == "addition" {
		return cw.renderAdditionLocked(rec)
	}
	out := make(map[string]any, len(rec)+2)
	for k, v := range rec {
		out[k] = v
	}
	if kind == "agreement" {
		cid := num(lookupPath(rec, []string{"company", "id"}))
		ref := map[string]any{"id": float64(cid)}
		if c := cw.companies[cid]; c != nil {
			ref["identifier"], ref["name"] = c["identifier"], c["name"]
		}
		out["company"] = ref
	}
	return out
}

func (cw *ConnectWise) renderAdditionLocked(rec map[string]any) map[string]any {
	out := make(map[string]any, len(rec)+3)
	for k, v := range rec {
		out[k] = v
	}
	pid := num(lookupPath(rec, []string{"product", "id"}))
	ref := map[string]any{"id": float64(pid)}
	if p := cw.catalog[pid]; p != nil {
		ref["identifier"] = p["identifier"]
	}
	out["product"] = ref
	status := "Active"
	if c, err := parseCWTime(str(rec["cancelledDate"])); err == nil && !c.After(cw.clock()) && !cw.additionsStayActive {
		status = "Cancelled"
	}
	out["agreementStatus"] = status
	q, _ := rec["quantity"].(float64)
	p, _ := rec["unitPrice"].(float64)
	out["extPrice"] = q * p
	return out
}

func cwQuery(r *http.Request, name string) string {
	for k, v := range r.URL.Query() {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// filterLocked applies conditions; ok is false when an error was written.
func filterRecords(w http.ResponseWriter, r *http.Request, kind string, recs []map[string]any) ([]map[string]any, bool) {
	cond := cwQuery(r, "conditions")
	if cond == "" {
		return recs, true
	}
	e, err := parseConditions(cond, func(p string) bool { return knownPath(kind, p) })
	if err != nil {
		cwError(w, http.StatusBadRequest, "InvalidObject", "conditions: "+err.Error())
		return nil, false
	}
	var out []map[string]any
	for _, rec := range recs {
		if e.eval(rec) {
			out = append(out, rec)
		}
	}
	return out, true
}

func (cw *ConnectWise) listLocked(w http.ResponseWriter, r *http.Request, kind string, agreementID int64) {
	writeCWList(w, r, kind, cw.recordsLocked(kind, agreementID))
}

// writeCWList answers a list request over the rendered records of kind:
// conditions, orderBy, paging (navigable or forward-only) and fields.
func writeCWList(w http.ResponseWriter, r *http.Request, kind string, all []map[string]any) {
	recs, ok := filterRecords(w, r, kind, all)
	if !ok {
		return
	}
	size := 25
	if v := cwQuery(r, "pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			cwError(w, http.StatusBadRequest, "InvalidObject", "pageSize must be a positive integer.")
			return
		}
		size = min(n, 1000)
	}
	orderBy := cwQuery(r, "orderBy")
	// The additions endpoint stands for those that do not support
	// forward-only paging: they answer the first page without a Link.
	askedForward := strings.EqualFold(r.Header.Get("pagination-type"), "forward-only")
	forward := askedForward && kind != "addition"
	if forward && orderBy != "" {
		cwError(w, http.StatusBadRequest, "InvalidObject", "orderBy is not supported with forward-only pagination.")
		return
	}
	if orderBy != "" {
		field, dir, _ := strings.Cut(strings.TrimSpace(orderBy), " ")
		if !knownPath(kind, field) || (dir != "" && !strings.EqualFold(dir, "asc") && !strings.EqualFold(dir, "desc")) {
			cwError(w, http.StatusBadRequest, "InvalidObject", fmt.Sprintf("orderBy %q is invalid.", orderBy))
			return
		}
		path := strings.Split(field, "/")
		desc := strings.EqualFold(dir, "desc")
		sort.SliceStable(recs, func(i, j int) bool {
			c := compareAny(lookupPath(recs[i], path), lookupPath(recs[j], path))
			if desc {
				return c > 0
			}
			return c < 0
		})
	}
	var page []map[string]any
	links := map[string]string{}
	if forward {
		after := int64(0)
		if v := cwQuery(r, "pageId"); v != "" {
			after, _ = strconv.ParseInt(v, 10, 64)
		}
		var rest []map[string]any
		for _, rec := range recs {
			if num(rec["id"]) > after {
				rest = append(rest, rec)
			}
		}
		page = rest[:min(size, len(rest))]
		if len(rest) > size {
			links["next"] = pageURL(r, "pageId", num(page[len(page)-1]["id"]))
		}
	} else {
		n := 1
		if v := cwQuery(r, "page"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 {
				cwError(w, http.StatusBadRequest, "InvalidObject", "page must be a positive integer.")
				return
			}
			n = p
		}
		last := max(1, (len(recs)+size-1)/size)
		start := min((n-1)*size, len(recs))
		page = recs[start:min(start+size, len(recs))]
		if len(recs) > size {
			links["first"] = pageURL(r, "page", 1)
			links["last"] = pageURL(r, "page", int64(last))
			if n > 1 {
				links["prev"] = pageURL(r, "page", int64(n-1))
			}
			if n < last {
				links["next"] = pageURL(r, "page", int64(n+1))
			}
		}
	}
	if len(links) > 0 && askedForward == forward {
		var parts []string
		for _, rel := range []string{"prev", "next", "first", "last"} {
			if u, ok := links[rel]; ok {
				parts = append(parts, fmt.Sprintf("<%s>; rel=%q", u, rel))
			}
		}
		w.Header().Set("Link", strings.Join(parts, ", "))
	}
	fields := cwQuery(r, "fields")
	out := make([]any, 0, len(page))
	for _, rec := range page {
		out = append(out, project(rec, fields))
	}
	writeJSON(w, http.StatusOK, out)
}

// pageURL returns the request's absolute URL with one query parameter set,
// written last as ConnectWise does (…?pageSize=1000&page=2>; rel="next":
// clients such as pyconnectwise find the page number right before the
// closing bracket).
func pageURL(r *http.Request, param string, v int64) string {
	q := r.URL.Query()
	for k := range q {
		if strings.EqualFold(k, param) {
			q.Del(k)
		}
	}
	raw := q.Encode()
	if raw != "" {
		raw += "&"
	}
	raw += param + "=" + strconv.FormatInt(v, 10)
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: raw}
	return u.String()
}

func compareAny(a, b any) int {
	switch x := a.(type) {
	case float64:
		y, _ := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case string:
		y, _ := b.(string)
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	case bool:
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	}
	if b == nil {
		return 0
	}
	return -1
}

// project keeps only the listed fields (paths with /); "" keeps all.
func project(rec map[string]any, fields string) map[string]any {
	if strings.TrimSpace(fields) == "" {
		return rec
	}
	out := map[string]any{}
	for _, f := range strings.Split(fields, ",") {
		path := strings.Split(strings.TrimSpace(f), "/")
		v := lookupPath(rec, path)
		if v == nil {
			continue
		}
		dst := out
		for i, seg := range path {
			if i == len(path)-1 {
				dst[seg] = v
				break
			}
			next, ok := dst[seg].(map[string]any)
			if !ok {
				next = map[string]any{}
				dst[seg] = next
			}
			dst = next
		}
	}
	return out
}

func (cw *ConnectWise) countLocked(w http.ResponseWriter, r *http.Request, kind string, agreementID int64) {
	recs, ok := filterRecords(w, r, kind, cw.recordsLocked(kind, agreementID))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"count": len(recs)})
}

var cwNames = map[string]string{"company": "Company", "catalog": "Catalog item", "agreement": "Agreement", "addition": "Addition",
	"type": "ProductType", "subcategory": "SubCategory"}

func (cw *ConnectWise) itemLocked(w http.ResponseWriter, r *http.Request, kind string, agreementID, id int64) {
	rec := cw.tableLocked(kind)[id]
	if rec == nil || kind == "addition" && num(rec["agreementId"]) != agreementID {
		cwError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("%s recId %d not found.", cwNames[kind], id))
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, project(cw.renderLocked(kind, rec), cwQuery(r, "fields")))
	case http.MethodPatch:
		cw.patchLocked(w, r, kind, rec)
	case http.MethodDelete:
		if kind == "catalog" {
			for _, a := range cw.additions {
				if num(lookupPath(a, []string{"product", "id"})) == id {
					cwError(w, http.StatusBadRequest, "InvalidObject", "Catalog item is in use and cannot be deleted.",
						cwFieldError("InUse", "id", "The product is used on agreement additions.", "catalogItem"))
					return
				}
			}
		}
		cw.deleteLocked(kind, id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// patchLocked applies ConnectWise's PATCH dialect: an array of
// {"op","path","value"} with bare field names.
func (cw *ConnectWise) patchLocked(w http.ResponseWriter, r *http.Request, kind string, rec map[string]any) {
	var ops []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&ops); err != nil {
		cwError(w, http.StatusBadRequest, "InvalidObject", "The request body must be an array of patch operations: "+err.Error())
		return
	}
	if len(ops) == 0 {
		cwError(w, http.StatusBadRequest, "InvalidObject", "The request body has no patch operations.")
		return
	}
	upd := make(map[string]any, len(rec))
	for k, v := range rec {
		upd[k] = v
	}
	for i, op := range ops {
		name, _ := op["op"].(string)
		path, _ := op["path"].(string)
		switch strings.ToLower(name) {
		case "add", "replace", "remove":
		default:
			cwError(w, http.StatusBadRequest, "InvalidObject", fmt.Sprintf("Operation %d: op %q must be add, replace or remove.", i, name))
			return
		}
		if path == "" || strings.Contains(path, "/") {
			cwError(w, http.StatusBadRequest, "InvalidObject", fmt.Sprintf("Operation %d: path %q must be a bare field name such as \"quantity\".", i, path))
			return
		}
		field := ""
		for k := range cwWritable[kind] {
			if strings.EqualFold(k, path) {
				field = k
			}
		}
		if field == "" {
			cwError(w, http.StatusBadRequest, "InvalidObject", fmt.Sprintf("Operation %d: %q cannot be changed.", i, path),
				cwFieldError("InvalidField", path, "The field does not exist or is read-only.", kind))
			return
		}
		v, present := op["value"]
		if strings.EqualFold(name, "remove") {
			v, present = nil, true
		}
		if !present {
			cwError(w, http.StatusBadRequest, "InvalidObject", fmt.Sprintf("Operation %d: value is required.", i))
			return
		}
		if msg := checkValue(kind, field, v); msg != "" {
			cwError(w, http.StatusBadRequest, "InvalidObject", kind+" object is invalid", cwFieldError("InvalidValue", field, msg, kind))
			return
		}
		upd[field] = v
	}
	if errs := cw.validateLocked(kind, upd, num(rec["id"])); len(errs) > 0 {
		cwError(w, http.StatusBadRequest, "InvalidObject", kind+" object is invalid", errs...)
		return
	}
	upd["_info"] = cw.info()
	for k, v := range upd {
		rec[k] = v
	}
	writeJSON(w, http.StatusOK, cw.renderLocked(kind, rec))
}

// checkValue checks a value's JSON type against the schema.
func checkValue(kind, field string, v any) string {
	t, _ := fieldType(kind, field)
	if v == nil {
		if t == 'd' || t == 'r' || t == 's' {
			return ""
		}
		return "The value cannot be null."
	}
	ok := true
	switch t {
	case 's':
		_, ok = v.(string)
	case 'n':
		f, isNum := v.(float64)
		ok = isNum && !math.IsNaN(f)
	case 'b':
		_, ok = v.(bool)
	case 'd':
		s, isStr := v.(string)
		_, err := parseCWTime(s)
		ok = isStr && err == nil
	case 'r':
		m, isMap := v.(map[string]any)
		ok = isMap && (m["id"] != nil || m["identifier"] != nil || m["name"] != nil)
	}
	if !ok {
		return fmt.Sprintf("The value %v has the wrong type for %s.", v, field)
	}
	return ""
}

// validateLocked checks a whole record before it is stored.
func (cw *ConnectWise) validateLocked(kind string, rec map[string]any, selfID int64) []map[string]any {
	var errs []map[string]any
	req := func(field string, limit int) {
		s := strings.TrimSpace(str(rec[field]))
		switch {
		case s == "":
			errs = append(errs, cwFieldError("Required", field, "The "+field+" field is required.", kind))
		case utf16Length(s) > limit:
			errs = append(errs, cwFieldError("InvalidField", field, fmt.Sprintf("The field %s must be a string with a maximum length of %d.", field, limit), kind))
		}
	}
	switch kind {
	case "catalog":
		req("identifier", 60)
		req("description", 60)
		req("customerDescription", 6000)
		for id, other := range cw.catalog {
			if id != selfID && strings.EqualFold(str(other["identifier"]), str(rec["identifier"])) {
				errs = append(errs, cwFieldError("ObjectExists", "identifier", "Product ID already in use.", kind))
			}
		}
		switch str(rec["productClass"]) {
		case "Agreement", "Bundle", "Inventory", "NonInventory", "Service":
		default:
			errs = append(errs, cwFieldError("InvalidField", "productClass", "productClass must be Agreement, Bundle, Inventory, NonInventory or Service.", kind))
		}
		// A type or subcategory of another tenant (sandbox vs production)
		// is refused like any reference to a record that does not exist
		// [inferred: the message's wording is the simulator's own].
		for _, f := range []struct {
			field string
			table map[int64]map[string]any
		}{{"type", cw.types}, {"subcategory", cw.subcategories}} {
			if ref, ok := rec[f.field].(map[string]any); ok && ref["id"] != nil && f.table[num(ref["id"])] == nil {
				errs = append(errs, cwFieldError("InvalidField", f.field, fmt.Sprintf("The %s recId %d was not found.", f.field, num(ref["id"])), kind))
			}
		}
	case "addition":
		switch str(rec["billCustomer"]) {
		case "Billable", "DoNotBill", "NoCharge":
		default:
			errs = append(errs, cwFieldError("Required", "billCustomer", "billCustomer must be Billable, DoNotBill or NoCharge.", kind))
		}
		if q, _ := rec["quantity"].(float64); q < 0 {
			errs = append(errs, cwFieldError("InvalidField", "quantity", "The quantity cannot be negative.", kind))
		}
	}
	return errs
}

// createLocked serves POST for catalog items and additions.
func (cw *ConnectWise) createLocked(w http.ResponseWriter, r *http.Request, kind string, agreementID int64) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body == nil {
		cwError(w, http.StatusBadRequest, "InvalidObject", "The request body must be a JSON object.")
		return
	}
	rec := map[string]any{}
	for field := range cwWritable[kind] {
		if v, ok := body[field]; ok {
			if msg := checkValue(kind, field, v); msg != "" {
				cwError(w, http.StatusBadRequest, "InvalidObject", kind+" object is invalid", cwFieldError("InvalidValue", field, msg, kind))
				return
			}
			rec[field] = v
		}
	}
	switch kind {
	case "catalog":
		for k, def := range map[string]any{"price": float64(0), "cost": float64(0), "inactiveFlag": false, "productClass": "NonInventory", "billableOption": "Billable", "recurringFlag": false} {
			if rec[k] == nil {
				rec[k] = def
			}
		}
		if errs := cw.validateLocked(kind, rec, 0); len(errs) > 0 {
			cwError(w, http.StatusBadRequest, "InvalidObject", "catalogItem object is invalid", errs...)
			return
		}
		id := cw.newIDLocked("catalog", 0)
		rec["id"], rec["_info"] = float64(id), cw.info()
		cw.catalog[id] = rec
		writeJSON(w, http.StatusCreated, cw.renderLocked(kind, rec))
	case "addition":
		ag := cw.agreements[agreementID]
		var errs []map[string]any
		var prod map[string]any
		ref, _ := body["product"].(map[string]any)
		switch {
		case ref == nil:
			errs = append(errs, cwFieldError("Required", "product", "The product field is required.", "addition"))
		case ref["id"] != nil:
			prod = cw.catalog[num(ref["id"])]
		case ref["identifier"] != nil:
			for _, p := range cw.catalog {
				if strings.EqualFold(str(p["identifier"]), str(ref["identifier"])) {
					prod = p
				}
			}
		}
		if ref != nil && prod == nil {
			errs = append(errs, cwFieldError("InvalidField", "product", "Product not found.", "addition"))
		} else if prod != nil && prod["inactiveFlag"] == true {
			errs = append(errs, cwFieldError("InvalidField", "product", "Product is inactive.", "addition"))
		}
		if s := str(ag["agreementStatus"]); s == "Cancelled" || s == "Expired" {
			errs = append(errs, cwFieldError("InvalidField", "agreementId", "Additions cannot be added to a "+strings.ToLower(s)+" agreement.", "addition"))
		}
		if rec["quantity"] == nil {
			rec["quantity"] = float64(0)
		}
		errs = append(errs, cw.validateLocked(kind, rec, 0)...)
		if len(errs) > 0 {
			cwError(w, http.StatusBadRequest, "InvalidObject", "addition object is invalid", errs...)
			return
		}
		pid := num(prod["id"])
		for k, def := range map[string]any{"unitPrice": prod["price"], "unitCost": prod["cost"], "lessIncluded": float64(0),
			"effectiveDate": ag["startDate"], "cancelledDate": nil, "taxableFlag": false} {
			if _, ok := rec[k]; !ok {
				rec[k] = def
			}
		}
		id := cw.newIDLocked("addition", 0)
		rec["id"], rec["product"], rec["agreementId"], rec["_info"] = float64(id), map[string]any{"id": float64(pid)}, float64(agreementID), cw.info()
		cw.putAdditionLocked(id, rec)
		writeJSON(w, http.StatusCreated, cw.renderLocked(kind, rec))
	}
}

// writeConnectWiseFault answers a fault without a Body in ConnectWise's
// error envelope.
func writeConnectWiseFault(w http.ResponseWriter, f *Fault, version string) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterValue(f.RetryAfter))
	}
	w.Header().Set("api-current-version", version)
	code := "ConnectWiseApi"
	switch f.Status {
	case http.StatusTooManyRequests:
		code = "TooManyRequests"
	case http.StatusNotFound:
		code = "NotFound"
	case http.StatusUnauthorized:
		code = "Unauthorized"
	}
	cwError(w, f.Status, code, fmt.Sprintf("Simulated fault: HTTP %d %s", f.Status, http.StatusText(f.Status)))
}
