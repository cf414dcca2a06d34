package psatest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// autotaskPrefix is the path prefix of every Autotask URL (case-insensitive,
// as Autotask's IIS routing is).
const autotaskPrefix = "/atservicesrest/"

// Autotask error texts. Clients tell the two rate limits apart by them, so
// they are fixed: the thread text starts "Thread Threshold Exceeded", the
// hourly one contains "requests per hour exceeded".
const (
	threadLimitText = "Thread Threshold Exceeded — The Autotask API thread threshold of %d threads has been exceeded for the %s endpoint of this integration. Internal code: Itgenatr005"
	hourlyLimitText = "API Request Threshold Exceeded — The Autotask API request threshold of %d requests per hour exceeded; requests are refused until the rolling hour falls below the threshold."
)

// apiError is a message in Autotask's own words, returned to the client in
// an {"errors":[...]} body with status 500.
type apiError struct{ msg string }

func (e *apiError) Error() string { return e.msg }

func apiErr(format string, args ...any) error {
	return &apiError{msg: fmt.Sprintf(format, args...)}
}

// serve serves the Autotask REST API under /ATServicesRest/ (the caller has
// checked the prefix).
func (a *Autotask) serve(w http.ResponseWriter, r *http.Request) {
	rest := strings.Trim(r.URL.Path[len(autotaskPrefix):], "/")
	lower := strings.ToLower(rest)
	if lower == "versioninformation" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		a.srv.wait(r.Context(), requestLatency(r.Context()))
		writeJSON(w, http.StatusOK, map[string][]string{"apiVersions": {"1.0"}})
		return
	}
	if !strings.HasPrefix(lower, "v1.0/") {
		notFound(w, r)
		return
	}
	segs := strings.Split(rest[len("v1.0/"):], "/")
	if len(segs) == 1 && strings.EqualFold(segs[0], "zoneInformation") {
		a.srv.wait(r.Context(), requestLatency(r.Context()))
		a.zoneInformation(w, r)
		return
	}

	code, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	used, ok := a.countRequest()
	if !ok {
		writeErrors(w, http.StatusTooManyRequests, fmt.Sprintf(hourlyLimitText, a.hourlyLimit))
		return
	}
	latency := requestLatency(r.Context()) + a.usageLatency(used)
	h, endpoint := a.resolve(r, segs)
	if endpoint == "" {
		h(w, r) // a routing error: no thread slot needed
		return
	}
	release, ok := a.acquire(code, endpoint)
	if !ok {
		writeErrors(w, http.StatusTooManyRequests, fmt.Sprintf(threadLimitText, a.threadLimit, endpoint))
		return
	}
	defer release()
	if hook := a.holdHook; hook != nil {
		hook(endpoint)
	}
	if isRead(r) {
		a.srv.answerRead(r.Context(), latency, func() { h(w, r) })
		return
	}
	a.srv.wait(r.Context(), latency)
	h(w, r)
}

// usageLatency is the delay Autotask adds as a tenant uses up its hourly
// budget: none below 50%, then one tier from 50% and another from 75%.
func (a *Autotask) usageLatency(used int) time.Duration {
	switch {
	case used*4 >= a.hourlyLimit*3:
		return a.usageDelays[1]
	case used*2 >= a.hourlyLimit:
		return a.usageDelays[0]
	}
	return 0
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeMessage(w, http.StatusNotFound, fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", r.URL.Path))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeMessage(w, http.StatusMethodNotAllowed, fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method))
}

func (a *Autotask) zoneInformation(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r)
		return
	}
	user := r.URL.Query().Get("user")
	if user == "" || !strings.EqualFold(user, a.username) {
		writeErrors(w, http.StatusInternalServerError, "Zone information could not be determined for the given user.")
		return
	}
	origin := "http://" + r.Host
	writeJSON(w, http.StatusOK, map[string]any{
		"zoneName": "Simulator Zone",
		"url":      origin + "/ATServicesRest/",
		"webUrl":   origin + "/",
		"ci":       1,
	})
}

// authenticate checks the three credential headers the way Autotask reports
// failures: unknown user or integration code → 500, wrong secret → 401.
func (a *Autotask) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	user := r.Header.Get("UserName")
	if user == "" || !strings.EqualFold(user, a.username) {
		writeErrors(w, http.StatusInternalServerError, "Authentication failed: the API user could not be found.")
		return "", false
	}
	code := r.Header.Get("ApiIntegrationCode")
	if code == "" || code != a.integrationCode {
		writeErrors(w, http.StatusInternalServerError, "Authentication failed: the API integration code (tracking identifier) is not valid.")
		return "", false
	}
	if r.Header.Get("Secret") != a.secret {
		writeErrors(w, http.StatusUnauthorized, "Authentication failed: the user name or secret is incorrect.")
		return "", false
	}
	if v := r.Header.Get("ImpersonationResourceId"); v != "" {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			writeErrors(w, http.StatusInternalServerError, "The ImpersonationResourceId header is not a valid resource id.")
			return "", false
		}
	}
	return code, true
}

// countRequest adds a request to the rolling hourly window and returns the
// number of requests in it, or reports that the window is full. Refused
// requests are not counted, so the budget recovers as the hour rolls on.
func (a *Autotask) countRequest() (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock()
	a.pruneHitsLocked(now)
	if len(a.hits) >= a.hourlyLimit {
		return len(a.hits), false
	}
	// In clock order, so that pruning finds the expired ones at the front
	// (a test's clock may go back).
	i, _ := slices.BinarySearchFunc(a.hits, now, func(h, t time.Time) int {
		if h.After(t) {
			return 1
		}
		return -1
	})
	a.hits = slices.Insert(a.hits, i, now)
	return len(a.hits), true
}

// pruneHitsLocked drops the requests older than the rolling hour from the
// front of a.hits, which is in clock order.
func (a *Autotask) pruneHitsLocked(now time.Time) {
	cutoff := now.Add(-time.Hour)
	i, _ := slices.BinarySearchFunc(a.hits, cutoff, func(h, t time.Time) int {
		if h.After(t) {
			return 1
		}
		return -1
	})
	a.hits = a.hits[i:]
}

// acquire takes one of the thread slots of (integration code, endpoint).
func (a *Autotask) acquire(code, endpoint string) (func(), bool) {
	key := code + "\x00" + endpoint
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.threads[key] >= a.threadLimit {
		return nil, false
	}
	a.threads[key]++
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.threads[key]--
	}, true
}

func isID(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil && s != ""
}

func parseID(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// resolve maps a path under V1.0/ to a handler and the endpoint whose thread
// slots it uses. An empty endpoint means a routing error (404 or 405).
func (a *Autotask) resolve(r *http.Request, segs []string) (http.HandlerFunc, string) {
	m := r.Method
	get, post := m == http.MethodGet, m == http.MethodPost
	update := m == http.MethodPatch || m == http.MethodPut
	lower := make([]string, len(segs))
	for i, s := range segs {
		lower[i] = strings.ToLower(s)
	}

	switch {
	case len(segs) == 1 && lower[0] == "thresholdinformation":
		if !get {
			return methodNotAllowed, ""
		}
		return a.thresholdInformation, "ThresholdInformation"
	case len(segs) == 1 && lower[0] == "version":
		if !get {
			return methodNotAllowed, ""
		}
		return func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"version": "2026.1.0.0 (psatest)"})
		}, "Version"
	}

	d := entity(segs[0])
	if d == nil {
		return notFound, ""
	}
	ok := func(h http.HandlerFunc) (http.HandlerFunc, string) { return h, d.Name }

	switch len(segs) {
	case 1:
		switch {
		case post && d.CanCreate:
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleCreate(w, r, d, 0) })
		case update && d.CanUpdate:
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleUpdate(w, r, d, 0) })
		}
	case 2:
		switch {
		case lower[1] == "query" && (get || post) && d.CanQuery:
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleQuery(w, r, d, false) })
		case lower[1] == "entityinformation" && get:
			return ok(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, entityInformation(d)) })
		case isID(segs[1]) && get && d.CanGet:
			id := parseID(segs[1])
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleGet(w, r, d, id, "", 0) })
		}
	case 3:
		switch {
		case lower[1] == "query" && lower[2] == "count" && (get || post) && d.CanQuery:
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleQuery(w, r, d, true) })
		case lower[1] == "query" && lower[2] == "next" && (get || post) && d.CanQuery:
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleNext(w, r, d) })
		case lower[1] == "entityinformation" && lower[2] == "fields" && get:
			return ok(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, entityFields(d)) })
		case lower[1] == "entityinformation" && lower[2] == "userdefinedfields" && get:
			return ok(func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, http.StatusOK, map[string][]any{"fields": {}})
			})
		}
	}
	if children, ok := autotaskChildren[d.Name]; ok && len(segs) >= 3 && isID(segs[1]) {
		return a.resolveChild(r, children, parseID(segs[1]), segs[2:], lower[2:])
	}
	return methodNotAllowed, ""
}

// resolveChild routes /{Parent}/{pid}/{Child}[/...], such as
// /Contracts/{pid}/Services and /Tickets/{pid}/Notes.
func (a *Autotask) resolveChild(r *http.Request, children map[string]childDef, pid int64, segs, lower []string) (http.HandlerFunc, string) {
	c, found := children[lower[0]]
	if !found {
		return notFound, ""
	}
	d := entity(c.Entity)
	m := r.Method
	get := m == http.MethodGet
	ok := func(h http.HandlerFunc) (http.HandlerFunc, string) { return h, d.Name }
	switch len(segs) {
	case 1:
		switch {
		case get && c.CanList:
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleChildList(w, r, d, c.ParentField, pid) })
		case m == http.MethodPost && c.CanCreate:
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleCreate(w, r, d, pid) })
		case (m == http.MethodPatch || m == http.MethodPut) && c.CanUpdate:
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleUpdate(w, r, d, pid) })
		}
	case 2:
		switch {
		case lower[1] == "entityinformation" && get:
			return ok(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, entityInformation(d)) })
		case isID(segs[1]) && get && c.CanGet:
			id := parseID(segs[1])
			return ok(func(w http.ResponseWriter, r *http.Request) { a.handleGet(w, r, d, id, c.ParentField, pid) })
		}
	case 3:
		switch {
		case lower[1] == "entityinformation" && lower[2] == "fields" && get:
			return ok(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, entityFields(d)) })
		case lower[1] == "entityinformation" && lower[2] == "userdefinedfields" && get:
			return ok(func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, http.StatusOK, map[string][]any{"fields": {}})
			})
		}
	}
	return methodNotAllowed, ""
}

func (a *Autotask) thresholdInformation(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{
		"externalRequestThreshold":     a.hourlyLimit,
		"requestThresholdTimeframe":    60,
		"currentTimeframeRequestCount": a.HourlyCount(),
	})
}

// handleGet answers GET /{Entity}/{id} (and the child form, which only finds
// records of the parent): {"item":{...}}, or {"item":null} when missing.
func (a *Autotask) handleGet(w http.ResponseWriter, r *http.Request, d *entityDef, id int64, parentField string, pid int64) {
	hidden := a.hidden(r)
	var buf bytes.Buffer
	buf.WriteString(`{"item":`)
	a.mu.Lock()
	rec := a.tables[d.Name].get(id)
	if rec != nil && (parentField == "" || rec.int(parentField) == pid) && !hidden {
		encodeRecord(&buf, d, rec, nil)
	} else {
		buf.WriteString("null")
	}
	a.mu.Unlock()
	buf.WriteByte('}')
	writeRawJSON(w, http.StatusOK, buf.Bytes())
}

// queryText returns the QueryModel of a query request: the body of a POST,
// the search parameter of a GET.
func queryText(r *http.Request) (string, error) {
	if r.Method == http.MethodGet {
		return r.URL.Query().Get("search"), nil
	}
	data, err := io.ReadAll(r.Body)
	return string(data), err
}

func (a *Autotask) handleQuery(w http.ResponseWriter, r *http.Request, d *entityDef, count bool) {
	text, err := queryText(r)
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, "The request body could not be read.")
		return
	}
	q, err := parseQuery(d, []byte(text))
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	if count {
		n := 0
		if !q.empty && !a.searchHidden(r, d) {
			a.mu.Lock()
			a.tables[d.Name].eachCandidate(q.hints, -1<<63, func(rec record) bool {
				if q.match(rec) {
					n++
				}
				return true
			})
			a.mu.Unlock()
		}
		writeJSON(w, http.StatusOK, map[string]int{"queryCount": n})
		return
	}
	a.writePage(w, r, d, q, r.Method, text, -1<<63)
}

// handleNext continues a query from a nextPageUrl. It must be called with
// the method of the first request and the same query (body or search).
func (a *Autotask) handleNext(w http.ResponseWriter, r *http.Request, d *entityDef) {
	tok, err := decodePageToken(r.URL.Query().Get("paging"))
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	if !strings.EqualFold(tok.Entity, d.Name) {
		writeErrors(w, http.StatusInternalServerError, "The paging parameter belongs to another entity.")
		return
	}
	if r.Method != tok.Method {
		// The real API answers a GET to the nextPageUrl of a POST query
		// with ASP.NET's 405.
		methodNotAllowed(w, r)
		return
	}
	text, err := queryText(r)
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, "The request body could not be read.")
		return
	}
	q, err := parseQuery(d, []byte(text))
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	if q.hash != tok.Hash {
		writeErrors(w, http.StatusInternalServerError, "The query does not match the query of the paging parameter; send the original query again.")
		return
	}
	a.writePage(w, r, d, q, tok.Method, text, tok.After)
}

// handleChildList answers GET /Contracts/{pid}/{Child}: the parent's records
// in the query envelope, paged like a GET query.
func (a *Autotask) handleChildList(w http.ResponseWriter, r *http.Request, d *entityDef, parentField string, pid int64) {
	text := fmt.Sprintf(`{"filter":[{"op":"eq","field":%q,"value":%d}]}`, parentField, pid)
	q, err := parseQuery(d, []byte(text))
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.writePage(w, r, d, q, http.MethodGet, text, -1<<63)
}

// writePage writes one page of q's results after id `after`, with a
// nextPageUrl when more rows match.
func (a *Autotask) writePage(w http.ResponseWriter, r *http.Request, d *entityDef, q *autotaskQuery, method, text string, after int64) {
	buf := bodies.Get().(*bytes.Buffer) //nolint:forcetypeassert // bodies holds *bytes.Buffer
	defer func() { buf.Reset(); bodies.Put(buf) }()
	buf.WriteString(`{"items":[`)
	n := 0
	var last int64
	more := false
	if !q.empty && !a.searchHidden(r, d) {
		// A page only reads the tables: pages of concurrent queries are
		// built at the same time.
		a.mu.RLock()
		a.tables[d.Name].eachCandidate(q.hints, after, func(rec record) bool {
			if !q.match(rec) {
				return true
			}
			if n == q.max {
				more = true
				return false
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			encodeRecord(buf, d, rec, q.include)
			last = rec.id()
			n++
			return true
		})
		a.mu.RUnlock()
	}
	if more && q.include != nil && !q.include["id"] {
		// Autotask pages on id: a query that returns more than one page
		// must include it.
		writeErrors(w, http.StatusInternalServerError, "IncludeFields must include id when a query returns more than one page.")
		return
	}
	buf.WriteString(`],"pageDetails":{"count":`)
	buf.WriteString(strconv.Itoa(n))
	buf.WriteString(`,"requestCount":`)
	buf.WriteString(strconv.Itoa(q.max))
	buf.WriteString(`,"prevPageUrl":null,"nextPageUrl":`)
	if more {
		tok := pageToken{Entity: d.Name, Method: method, After: last, Hash: q.hash}
		next := "http://" + r.Host + "/ATServicesRest/V1.0/" + d.Name + "/query/next?paging=" + url.QueryEscape(tok.encode())
		if method == http.MethodGet {
			next += "&search=" + url.QueryEscape(text)
		}
		writeValue(buf, next)
	} else {
		buf.WriteString("null")
	}
	buf.WriteString("}}")
	writeRawJSON(w, http.StatusOK, buf.Bytes())
}

func (a *Autotask) handleCreate(w http.ResponseWriter, r *http.Request, d *entityDef, pid int64) {
	in, err := a.decodeWrite(r, d, pid)
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.mu.Lock()
	var id int64
	if d.Name == entContractAdjustment {
		id, err = a.adjustLocked(in)
	} else {
		id, err = a.createLocked(d, in, impersonation(r))
	}
	a.mu.Unlock()
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"itemId": id})
}

func (a *Autotask) handleUpdate(w http.ResponseWriter, r *http.Request, d *entityDef, pid int64) {
	in, err := a.decodeWrite(r, d, pid)
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.mu.Lock()
	id, err := a.updateLocked(d, in, r.Method == http.MethodPut, pid, impersonation(r))
	a.mu.Unlock()
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"itemId": id})
}

// decodeWrite decodes a create/update body; under a parent URL the parent id
// fills the parent field (contractID, ticketID) and must agree with the body.
func (a *Autotask) decodeWrite(r *http.Request, d *entityDef, pid int64) (record, error) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, apiErr("The request body could not be read.")
	}
	in, err := decodeInput(d, data)
	if err != nil {
		return nil, &apiError{msg: err.Error()}
	}
	if pid != 0 {
		pf := d.parentField()
		if in[pf] != nil && in.int(pf) != pid {
			return nil, apiErr("The %s in the body (%d) does not match the parent in the URL (%d).", pf, in.int(pf), pid)
		}
		in[pf] = pid
	}
	return in, nil
}

func impersonation(r *http.Request) int64 {
	return parseID(r.Header.Get("ImpersonationResourceId"))
}
