package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// The status page at / is server-rendered from html/template and embedded
// assets (statuspage/static, served at /static/): no JavaScript, no build
// step. Reading needs nothing; "sync now"
// and "approve" need the API token, given once in a sign-in form and kept as
// a server-side session whose id is in an HttpOnly, SameSite=Strict cookie.
// Every form carries a CSRF token that must match a second cookie
// (double-submit), so another site can neither read the page's token nor
// post with the session. Sessions live in this process's memory: with
// several instances, a load balancer must keep a browser on one (see
// README). A standby checks the session and sends "sync now" and "approve"
// to the active instance's API (uiSyncOnActive).

//go:embed statuspage
var statusPageFS embed.FS

var statusTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"short":   ShortError,
	"when":    fmtWhen,
	"escape":  url.PathEscape,
	"percent": percent,
	"dict":    dict,
}).ParseFS(statusPageFS, "statuspage/*.html"))

// Status page cookies and limits.
const (
	sessionCookie  = "psa_syncd_session"
	csrfCookie     = "psa_syncd_csrf"
	sessionTTL     = 12 * time.Hour
	maxFormBody    = 16 << 10
	refreshSeconds = 2
	recentRuns     = 15
)

// uiSessions are the signed-in sessions of the status page. The zero value
// is ready to use.
type uiSessions struct {
	mu sync.Mutex
	m  map[string]uiSession
}

// uiSession is one signed-in browser. tokenHash is the hash of the API token
// it signed in with: changing web.api_token signs every session out.
type uiSession struct {
	tokenHash [sha256.Size]byte
	expires   time.Time
}

func (s *uiSessions) add(tokenHash [sha256.Size]byte, now time.Time) string {
	id := randomToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]uiSession)
	}
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	s.m[id] = uiSession{tokenHash: tokenHash, expires: now.Add(sessionTTL)}
	return id
}

func (s *uiSessions) valid(id string, tokenHash [sha256.Size]byte, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	return ok && now.Before(v.expires) && subtle.ConstantTimeCompare(v.tokenHash[:], tokenHash[:]) == 1
}

func (s *uiSessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// registerStatusPage adds the status page's routes to mux.
func (d *Daemon) registerStatusPage(mux *http.ServeMux) {
	// The page's assets only: the templates are not pages, and /static/
	// lists nothing.
	static, _ := fs.Sub(statusPageFS, "statuspage/static")
	mux.HandleFunc("GET /static/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if fi, err := fs.Stat(static, name); err != nil || fi.IsDir() {
			http.NotFound(w, r)
			return
		}
		http.ServeFileFS(w, r, static, name)
	})
	mux.HandleFunc("GET /{$}", d.handleStatusPage)
	mux.HandleFunc("GET /customers/{source}/{id}", d.handleCustomerPage)
	mux.HandleFunc("POST /ui/sign-in", d.uiAction(false, d.handleSignIn))
	mux.HandleFunc("POST /ui/sign-out", d.uiAction(false, d.handleSignOut))
	mux.HandleFunc("POST /ui/sync", d.uiAction(true, d.handleUISync))
	mux.HandleFunc("POST /ui/set-by-hand", d.uiAction(true, d.handleUISetByHand))
	mux.HandleFunc("POST /ui/orphans/clear", d.uiAction(true, d.handleUIClearOrphan))
}

// page is what every status page template gets.
type page struct {
	Title    string
	System   string
	Version  string
	SignedIn bool
	// CanSignIn is false when no API token is configured.
	CanSignIn bool
	CSRF      string
	// Path is the page's path and query, where its forms return to.
	Path     string
	Message  string
	Error    string
	Refresh  int
	Now      time.Time
	NextRun  time.Time
	Ready    bool
	Revision int64
	// Standby is true on a standby (PostgreSQL: another psa-syncd holds
	// the leadership lock), which runs no pass; ActiveInstance names the
	// active instance then, as /-/ready does.
	Standby        bool
	ActiveInstance string
	// WritesOff is true when the loaded export switches the integration
	// off: passes write nothing, so the page offers no Approve.
	WritesOff bool
	// ExportStore names the export store, and ExportError, since
	// ExportErrorAt, why its export could not be loaded ("" when the
	// last attempt loaded it).
	ExportStore   string
	ExportError   string
	ExportErrorAt time.Time
	// Request is the sync request the last action queued, if any.
	Request *SyncTicket
	Data    any
}

// newPage fills the parts of a page that every view shows, and sets the
// CSRF cookie when the browser has none.
func (d *Daemon) newPage(w http.ResponseWriter, r *http.Request, title string) *page {
	cfg := d.cfg.Load()
	p := &page{
		Title: title, System: string(cfg.PSA.System), Version: d.version,
		CanSignIn: cfg.Web.APIToken != "", SignedIn: d.signedIn(r),
		Path: r.URL.RequestURI(), Now: d.now(), NextRun: d.NextRun(), Ready: d.Ready(),
	}
	if doc := d.Export(); doc != nil {
		p.Revision = doc.Revision
		p.WritesOff = !d.writesEnabled()
	}
	if f := d.exportErr.Load(); f != nil {
		p.ExportStore, p.ExportError, p.ExportErrorAt = cfg.ExportName(), f.err.Error(), f.at
	}
	if !d.Active() && d.db.Driver() != state.DriverSQLite {
		// With SQLite, whose file lock New holds, this instance is only
		// about to become the active one.
		p.Standby, p.ActiveInstance = true, d.activeInstance()
	}
	if c, err := r.Cookie(cookieName(r, csrfCookie)); err == nil && len(c.Value) == 64 {
		p.CSRF = c.Value
		p.Message = signedMessage(r.URL.Query(), c.Value)
	} else {
		p.CSRF = randomToken()
		http.SetCookie(w, &http.Cookie{Name: cookieName(r, csrfCookie), Value: p.CSRF, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: secureRequest(r)})
	}
	if id := r.URL.Query().Get("request"); id != "" {
		if t, ok := d.Ticket(id); ok {
			p.Request = &t
		} else if isTicketID(id) && !d.Active() {
			// Queued on the active instance from this standby's page.
			if t, ok := d.ticketOnActive(r, id); ok {
				p.Request = &t
			}
		}
	}
	return p
}

func (d *Daemon) render(w http.ResponseWriter, status int, name string, p *page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	if err := statusTemplates.ExecuteTemplate(w, name, p); err != nil {
		d.logger.Error("Error rendering the status page", "page", name, "err", err)
	}
}

func (d *Daemon) signedIn(r *http.Request) bool {
	want := string(d.cfg.Load().Web.APIToken)
	c, err := r.Cookie(cookieName(r, sessionCookie))
	if want == "" || err != nil {
		return false
	}
	return d.ui.valid(c.Value, sha256.Sum256([]byte(want)), d.now())
}

// tab is one filter of the customer table.
type tab struct {
	Label  string
	Href   string
	Count  int
	Active bool
}

// runRow is a run in the status page's list of recent runs.
type runRow struct {
	RunView
	Percent int
}

// statusData is the index page.
type statusData struct {
	Tabs      []tab
	Filter    string
	Customers []CustomerView
	Runs      []runRow
	Pending   []SyncTicket
	Intents   []IntentView
	Unmapped  usage.UnmappedReport
	// Ending lists the mapped contracts that end in the month of the
	// last pass's effective date or the next (those that have ended are
	// failed customers, in the table above).
	Ending []usage.ContractEnding
	// Renewals lists the customers whose mapping names a renewal
	// (next_contract_id), with the contract the last pass billed and the
	// day the renewal takes over.
	Renewals []usage.ContractRenewal
	// Ended offers a pass for the month that has ended, when its last
	// pass failed or was partial (nil otherwise).
	Ended *endedOffer
	// Surge is the lines held for a surge (policies.surge_lines_percent)
	// as the state database records them, with the review code its
	// Approve sends; nil when none is held or the guard is off.
	Surge *surgeOverview
}

// surgeShown is how many of the lines held for a surge the overview
// lists: the operator reviews them before "Approve the surge", and the
// rest are on the customers' pages and in psa-syncd plan.
const surgeShown = 25

// surgeOverview is the overview's surge: the record of the lines held
// (usage.ReadSurgeRecord), not the last full pass's plan, whose review
// code is stale once lines were approved one by one on the customers'
// pages (passes for one customer), and the first surgeShown of them.
type surgeOverview struct {
	*usage.SurgeRecord
	Shown []surgeRow
	// More counts the lines of Held not in Shown.
	More int
}

// surgeRow is a line held for a surge on the overview, with the names the
// export and the last plan give it.
type surgeRow struct {
	usage.SurgeLine
	Source       string
	CustomerName string
	ServiceName  string
	ContractID   string
}

// newSurgeOverview lists rec's first lines with the customers' names from
// customers and the services' and contracts from last (nil when there is
// no last plan).
func newSurgeOverview(rec *usage.SurgeRecord, customers []CustomerView, last *usage.Plan) *surgeOverview {
	o := &surgeOverview{SurgeRecord: rec}
	shown := rec.Held[:min(len(rec.Held), surgeShown)]
	o.More = len(rec.Held) - len(shown)
	at := map[[2]string]int{}
	for i, l := range shown {
		o.Shown = append(o.Shown, surgeRow{SurgeLine: l})
		at[[2]string{l.CustomerID, l.ServiceID}] = i
	}
	byCustomer := map[string][]int{}
	for i, l := range shown {
		byCustomer[l.CustomerID] = append(byCustomer[l.CustomerID], i)
	}
	for _, c := range customers {
		for _, i := range byCustomer[c.CustomerID] {
			if r := &o.Shown[i]; r.Source == "" {
				r.Source, r.CustomerName, r.ContractID = c.Source, c.CustomerName, c.ContractID
			}
		}
	}
	if last != nil {
		for _, c := range last.Changes {
			if i, ok := at[[2]string{c.CustomerID, c.ServiceID}]; ok && c.ChangeService != nil && c.ChangeCustomer != nil {
				o.Shown[i].ServiceName, o.Shown[i].ContractID = c.ServiceName, c.ContractID
			}
		}
	}
	return o
}

// endedOffer is the status page's "Sync <Month YYYY>": a pass for the
// billing month that has ended, whose last pass over all customers
// failed, was partial or held lines (see Re-running the month that ended
// in README).
type endedOffer struct {
	Period string // YYYY-MM, the form's period
	Label  string // e.g. "Sync November 2026"
	Result string // the result of that month's last pass
	// Held is the lines that pass held (for review, or for the reason
	// each line's reason gives): a pass that succeeded is offered for them.
	Held  int
	RunID int64
	// Sync is false where a pass may not write the month (ConnectWise
	// PSA: Engine.CheckPeriod): then only its record as set by hand is
	// offered.
	Sync bool
	// ByHand is the label of the form that records the month's
	// quantities as set by hand (psa-syncd set-by-hand), e.g. "Record
	// November 2026 as set by hand".
	ByHand string
}

// endedPeriodOffer returns the offer of a pass for the month that has
// ended, and of the record of its quantities as set by hand, or nil: when
// that month's last pass over all customers that wrote failed, was
// partial or held lines (a line held for review by the month's last pass
// keeps its earlier quantity on that month's invoices). The pass is offered where one may sync it now (not, on
// ConnectWise PSA, one that writes: Engine.CheckPeriod).
func (d *Daemon) endedPeriodOffer() *endedOffer {
	_, loc, err := d.activeSchedule()
	if err != nil || d.Export() == nil {
		return nil
	}
	ended := usage.PeriodAt(d.now(), loc, d.cfg.Load().Policies.UsagePeriod).Prev()
	r, ok, err := d.db.LastFullRunOfPeriod(ended.String())
	if err != nil || !ok || r.Result == state.RunRunning || (r.Result == state.RunSuccess && r.Held == 0) {
		return nil // none, it succeeded holding no line, or a pass for it is running
	}
	return &endedOffer{Period: ended.String(), Label: "Sync " + periodName(ended), Result: r.Result, Held: r.Held, RunID: r.ID,
		Sync: d.CheckPeriod(ended, d.writesEnabled()) == nil, ByHand: "Record " + periodName(ended) + " as set by hand"}
}

// periodName is a billing month as the status page names it: "November 2026".
func periodName(p source.Period) string {
	return fmt.Sprintf("%s %d", p.Month, p.Year)
}

// customerFilters are the status page's tabs: the vendor consoles' (all,
// usage sync available, succeeded, failed) and held, never synced and no
// longer in the export.
var customerFilters = []struct{ key, label, status, usage string }{
	{"all", "All customers", "", ""},
	{"usage", "Usage sync on", "", "true"},
	{"succeeded", "Succeeded", "succeeded", ""},
	{"failed", "Failed", "failed", ""},
	{"held", "Held for review", "held", ""},
	{"never", "Never synced", "never", ""},
	{StatusRemoved, "Not in the export", StatusRemoved, ""},
}

func (d *Daemon) handleStatusPage(w http.ResponseWriter, r *http.Request) {
	p := d.newPage(w, r, "psa-syncd")
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		filter = "all"
	}
	data := &statusData{Filter: filter}
	p.Data = data
	all, err := d.Customers()
	if err != nil {
		p.Error = d.stateFailure("reading customers", err)
	}
	known := false
	for _, f := range customerFilters {
		t := tab{Label: f.label, Href: "/?filter=" + f.key, Active: f.key == filter}
		for _, c := range all {
			if CustomerMatches(f.status, c) && (f.usage == "" || c.UsageSync) {
				t.Count++
				if t.Active {
					data.Customers = append(data.Customers, c)
				}
			}
		}
		known = known || t.Active
		data.Tabs = append(data.Tabs, t)
	}
	if !known {
		p.Error = fmt.Sprintf("unknown filter %q", filter)
	}
	runs, err := d.db.Runs(recentRuns)
	if err != nil {
		p.Error = d.stateFailure("reading runs", err)
	}
	for _, run := range runs {
		row := runRow{RunView: d.runView(run)}
		if pr := row.Progress; pr != nil && pr.LinesTotal > 0 {
			row.Percent = pr.LinesDone * 100 / pr.LinesTotal
		}
		if row.Progress != nil {
			p.Refresh = refreshSeconds
		}
		data.Runs = append(data.Runs, row)
	}
	data.Pending = d.queue.active()
	if len(data.Pending) > 0 || (p.Request != nil && (p.Request.Status == "queued" || p.Request.Status == "running")) {
		p.Refresh = refreshSeconds
	}
	open, err := d.OpenIntents()
	if err != nil {
		p.Error = d.stateFailure("reading open intents", err)
	}
	for _, in := range open {
		data.Intents = append(data.Intents, NewIntentView(in))
	}
	if data.Unmapped, err = d.LastUnmapped(); err != nil {
		p.Error = d.stateFailure("reading unmapped usage", err)
	}
	last, _ := d.LastPlan("")
	if last != nil {
		for _, c := range last.ContractsEnding {
			if c.When != usage.EndingEnded {
				data.Ending = append(data.Ending, c)
			}
		}
		data.Renewals = last.Renewals
	}
	if d.cfg.Load().Policies.SurgeGuardOn() {
		if rec, err := usage.ReadSurgeRecord(d.db); err != nil {
			p.Error = d.stateFailure("reading the lines held for a surge", err)
		} else if rec != nil {
			data.Surge = newSurgeOverview(rec, all, last)
		}
	}
	if p.SignedIn {
		data.Ended = d.endedPeriodOffer()
	}
	d.render(w, http.StatusOK, "index.html", p)
}

// customerData is a customer's page.
type customerData struct {
	Customer CustomerView
	Lines    []lineRow
	// FreshPlan is true when Lines were computed for this page, false when
	// they are the last pass's.
	FreshPlan bool
	// Period is the billing month of Lines' plan. A line's Approve sends
	// it, so that an approval of a month's held line, pressed after the
	// month has ended (on the last pass's plan, or a page left open),
	// approves that month, not the new one.
	Period  source.Period
	PlanErr string
	Ledger  []LedgerView
}

// customerPlan is the plan of one customer for its page. Computing a plan
// reads the usage source and the PSA, so only a signed-in operator gets a
// fresh one, within the limit of POST /api/v1/plan (one at a time, one per
// freshPlanInterval); anyone else, or an operator over the limit, gets the
// last pass's (nil when no pass has run since start-up), as GET
// /api/v1/plan does. Otherwise anyone who reaches the listener could spend
// the PSA's request budget by reloading the page.
func (d *Daemon) customerPlan(r *http.Request, signedIn bool, customer string) (plan *usage.Plan, fresh bool, err error) {
	if signedIn {
		if _, ok := d.freshPlans.start(d.now()); ok {
			defer d.freshPlans.done()
			plan, err = d.Plan(r.Context(), usage.PassOptions{Customer: customer, DryRun: true, Trigger: usage.TriggerAPI})
			return plan, true, err
		}
	}
	plan, _ = d.LastPlan(customer)
	return plan, false, nil
}

// lineRow is one contract line on a customer's page.
type lineRow struct {
	usage.Change
	Approvable bool
	LastChange *LedgerView
}

func (d *Daemon) handleCustomerPage(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	p := d.newPage(w, r, id)
	all, err := d.Customers()
	if err != nil {
		p.Error = d.stateFailure("reading customers", err)
	}
	data := &customerData{}
	found := false
	for _, c := range all {
		if c.Source == source && c.CustomerID == id {
			data.Customer, found = c, true
		}
	}
	if !found {
		p.Error = fmt.Sprintf("customer %s/%s is neither in the mapping export nor in the state database", source, id)
		d.render(w, http.StatusNotFound, "customer.html", p)
		return
	}
	p.Title = data.Customer.CustomerName
	if p.Title == "" {
		p.Title = id
	}
	p.Data = data
	ledger, err := FilterLedger(d.db, LedgerFilter{Customer: id, Limit: 100})
	if err != nil {
		p.Error = d.stateFailure("reading the ledger", err)
	}
	data.Ledger = ledger
	last := map[[2]string]*LedgerView{}
	for i := len(ledger) - 1; i >= 0; i-- { // oldest first, so the newest wins
		last[[2]string{ledger[i].ContractID, ledger[i].ServiceID}] = &ledger[i]
	}
	if data.Customer.UsageSync && d.Ready() {
		plan, fresh, err := d.customerPlan(r, p.SignedIn, id)
		data.FreshPlan = fresh
		switch {
		case err != nil:
			data.PlanErr = err.Error()
		case plan == nil:
			data.PlanErr = "no plan yet: no pass has run since psa-syncd started (sign in to compute one now)"
		default:
			data.Period = plan.Period
			for _, c := range plan.Changes {
				data.Lines = append(data.Lines, lineRow{Change: c, Approvable: c.Approvable(),
					LastChange: last[[2]string{c.ContractID, c.ServiceID}]})
			}
		}
	}
	if p.Request != nil && (p.Request.Status == "queued" || p.Request.Status == "running") {
		p.Refresh = refreshSeconds
	}
	d.render(w, http.StatusOK, "customer.html", p)
}

// uiAction wraps a status page POST: it checks the CSRF token and, when
// auth is set, the session.
func (d *Daemon) uiAction(auth bool, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
				http.Error(w, fmt.Sprintf("Request Entity Too Large: a status page form holds at most %d bytes.", maxFormBody), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "Bad form: "+err.Error(), http.StatusBadRequest)
			return
		}
		c, err := r.Cookie(cookieName(r, csrfCookie))
		if err != nil || c.Value == "" {
			http.Error(w, noCSRFCookie(r), http.StatusForbidden)
			return
		}
		if subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
			http.Error(w, "Forbidden: the form's CSRF token does not match. Reload the page and try again.", http.StatusForbidden)
			return
		}
		if auth && !d.signedIn(r) {
			http.Error(w, "Unauthorized: sign in with the API token (web.api_token) first.", http.StatusUnauthorized)
			return
		}
		next(w, r)
	}
}

// noCSRFCookie says why a status page form came without its CSRF cookie,
// which the page sets in the browser.
func noCSRFCookie(r *http.Request) string {
	msg := "Forbidden: the form came without the page's CSRF cookie: the browser did not keep it (cookies blocked for this site?). Reload the page and try again."
	switch {
	case r.TLS == nil && secureRequest(r):
		msg += " The proxy in front of psa-syncd says the page is reached over HTTPS (X-Forwarded-Proto or Forwarded), so the cookie is Secure: " +
			"a browser that reaches it over plain HTTP refuses it. Use the page's https:// address, or have the proxy say http."
	case !secureRequest(r):
		msg += " Over plain HTTP, a browser refuses the cookie while it keeps a Secure one of the same name that an older psa-syncd set over HTTPS on this host: " +
			"clear this site's cookies once, or use the page over HTTPS."
	}
	return msg
}

// backTo returns the local path a form asks to return to, or "/".
func backTo(r *http.Request) string {
	next := r.PostForm.Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// redirect sends the browser back with a message (and request id). The
// message is signed for the browser's CSRF cookie (messageSig), which the
// form's post carried: the page shows it to that browser only.
func redirect(w http.ResponseWriter, r *http.Request, path, msg, request string) {
	u, err := url.Parse(path)
	if err != nil {
		u = &url.URL{Path: "/"}
	}
	q := u.Query()
	q.Del("msg")
	q.Del("sig")
	q.Del("request")
	if c, err := r.Cookie(cookieName(r, csrfCookie)); err == nil && msg != "" {
		q.Set("msg", msg)
		q.Set("sig", messageSig(c.Value, msg))
	}
	if request != "" {
		q.Set("request", request)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// secureRequest reports whether the browser reached the page over HTTPS:
// psa-syncd serves TLS itself, or a proxy that ends TLS in front of it (an
// Ingress, a load balancer) says so with X-Forwarded-Proto or RFC 7239's
// Forwarded (proto=). Behind chained proxies each may add its own hop
// ("X-Forwarded-Proto: https, http": TLS ended at the outer one), so any
// hop that says https counts. Its cookies are then Secure, so that the
// browser never sends them over plain HTTP. The headers can only make
// cookies stricter, so they are read whatever the peer, in
// web.trusted_proxies or not (which name the client's address, a header
// of its own): a client that sends them over plain HTTP only stops its own
// cookies from coming back.
func secureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	for _, v := range r.Header.Values("X-Forwarded-Proto") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "https") {
				return true
			}
		}
	}
	for _, v := range r.Header.Values("Forwarded") {
		for elem := range strings.SplitSeq(v, ",") {
			for pair := range strings.SplitSeq(elem, ";") {
				k, val, _ := strings.Cut(pair, "=")
				if strings.EqualFold(strings.TrimSpace(k), "proto") && strings.EqualFold(strings.Trim(strings.TrimSpace(val), `"`), "https") {
					return true
				}
			}
		}
	}
	return false
}

// cookieName is what the status page cookie called name is named on r's
// page: over HTTPS (secureRequest) it carries the __Host- prefix, with
// which a browser keeps it Secure, for this host only. A browser keeps a Secure cookie
// apart from the plain HTTP page's of another name: with one name, the
// page reached by HTTPS (through an Ingress) leaves a Secure cookie that
// the browser then refuses to replace from the same host over plain HTTP
// (the VM's own port), and every form there fails its CSRF check.
func cookieName(r *http.Request, name string) string {
	if secureRequest(r) {
		return "__Host-" + name
	}
	return name
}

// messageSig signs a status page message for the browser whose CSRF
// cookie is csrf. The page shows the msg of its URL only with the sig its
// own redirect gave: a link made elsewhere, which cannot know the cookie,
// shows no message, so it cannot put text of its maker's choosing (a
// phishing request for the API token, say) on the operator's console. The
// messages carry details only the server knows (the active instance's
// answer to a standby), so they are signed rather than picked from a fixed
// list; keyed by the cookie, not by a key of this process, a signature
// still holds after a restart.
func messageSig(csrf, msg string) string {
	mac := hmac.New(sha256.New, []byte(csrf))
	mac.Write([]byte("psa-syncd status page message\x00"))
	mac.Write([]byte(msg))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// signedMessage returns the msg of a status page URL when its sig is
// messageSig's for the browser's CSRF cookie, and "" otherwise.
func signedMessage(q url.Values, csrf string) string {
	msg, sig := q.Get("msg"), q.Get("sig")
	if msg == "" || !hmac.Equal([]byte(sig), []byte(messageSig(csrf, msg))) {
		return ""
	}
	return msg
}

func (d *Daemon) handleSignIn(w http.ResponseWriter, r *http.Request) {
	want := string(d.cfg.Load().Web.APIToken)
	if want == "" {
		http.Error(w, "Forbidden: no API token is configured (web.api_token), so sync and approve are disabled.", http.StatusForbidden)
		return
	}
	addr := d.clientAddr(r)
	if left, blocked := d.tokens.blocked(addr, d.now()); blocked {
		d.metrics.HTTPRefused(RefusedTokenThrottled)
		redirect(w, r, backTo(r), "Not signed in: "+tooManyWrongTokens(left)+".", "")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(want)) != 1 {
		d.logger.Warn("Status page sign-in with a wrong API token", "remote", addr)
		d.wrongToken(r, addr, "status page")
		redirect(w, r, backTo(r), "Wrong API token.", "")
		return
	}
	id := d.ui.add(sha256.Sum256([]byte(want)), d.now())
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, sessionCookie), Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secureRequest(r), MaxAge: int(sessionTTL.Seconds())})
	redirect(w, r, backTo(r), "Signed in.", "")
}

func (d *Daemon) handleSignOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName(r, sessionCookie)); err == nil {
		d.ui.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, sessionCookie), Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secureRequest(r), MaxAge: -1})
	redirect(w, r, backTo(r), "Signed out.", "")
}

// handleUISync is "sync now" and "approve": a pass for everyone or one
// customer, optionally approving one held line at the units the page
// showed.
func (d *Daemon) handleUISync(w http.ResponseWriter, r *http.Request) {
	req := SyncRequest{Customer: r.PostForm.Get("customer"), Service: r.PostForm.Get("service"), Surge: r.PostForm.Get("surge"), Trigger: usage.TriggerAPI}
	req.Approve, _ = strconv.ParseBool(r.PostForm.Get("approve"))
	if v := r.PostForm.Get("units"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			redirect(w, r, backTo(r), fmt.Sprintf("Units %q are not a whole number.", v), "")
			return
		}
		req.Units = &n
	}
	if v := r.PostForm.Get("period"); v != "" {
		// The month that ended (endedPeriodOffer), checked as POST
		// /api/v1/sync checks it: a month it may not sync is refused
		// here, before anything is queued.
		p, err := source.ParsePeriod(v)
		if err != nil {
			redirect(w, r, backTo(r), fmt.Sprintf("Period %q is not a billing month, YYYY-MM.", v), "")
			return
		}
		if err := d.CheckPeriod(p, d.writesEnabled()); err != nil {
			redirect(w, r, backTo(r), "Not requested: "+err.Error(), "")
			return
		}
		req.Period = p
	}
	if msg := checkApproval(req); msg != "" {
		redirect(w, r, backTo(r), msg, "")
		return
	}
	if req.Approve && d.Export() != nil && !d.writesEnabled() {
		// The pass would write nothing: the operator would believe the
		// change is in the PSA.
		redirect(w, r, backTo(r), "Not approved: "+writesOffNotice, "")
		return
	}
	if req.Approve && req.Units == nil && req.Surge == "" {
		// What the operator saw is all the page can vouch for: an
		// approval without units would write whatever the pass computes,
		// which may be a larger change than the one on the page.
		redirect(w, r, backTo(r), "The status page approves one line at a time, at the units it shows: press Approve on the line, on the customer's page (or the surge's Approve on the overview, for the lines held for a surge).", "")
		return
	}
	if !d.Active() {
		// A request queued here would wait for a takeover. The form post
		// carries this page's session, which the active instance does not
		// know: having checked it here, ask the active instance through
		// its API, as the API's forwarding would.
		d.uiSyncOnActive(w, r, req)
		return
	}
	doc := d.Export()
	switch {
	case doc == nil:
		redirect(w, r, backTo(r), "No valid mapping export is loaded yet.", "")
		return
	case req.Customer != "" && !exportHasCustomer(doc, req.Customer):
		redirect(w, r, backTo(r), fmt.Sprintf("Customer %s is not in the mapping export.", req.Customer), "")
		return
	}
	user := d.statusPageUser(r)
	req.Who = whoAsked(user, "on the status page", req.Approve)
	t := d.RequestPass(req)
	d.logger.Info("Sync requested on the status page", "request", t.ID, "customer", req.Customer, "approve", req.Approve, "service", req.Service, "units", unitsValue(req.Units),
		"surge", req.Surge, "period", req.Period.String(), "user", user)
	redirect(w, r, backTo(r), requestedMessage(req), t.ID)
}

// handleUISetByHand records the quantities of the month that has ended as
// set by hand, with the form's note (POST /api/v1/periods/{period}/set-by-hand,
// psa-syncd set-by-hand); on a standby through the active instance's API.
func (d *Daemon) handleUISetByHand(w http.ResponseWriter, r *http.Request) {
	v := r.PostForm.Get("period")
	p, err := source.ParsePeriod(v)
	if err != nil {
		redirect(w, r, backTo(r), fmt.Sprintf("Period %q is not a billing month, YYYY-MM.", v), "")
		return
	}
	note, user := r.PostForm.Get("note"), d.statusPageUser(r)
	if !d.Active() {
		// The active instance records the user of the standby's own
		// credentials, not this browser's: the note names the user.
		body, err := json.Marshal(map[string]string{"note": userNote(user, note)})
		if err != nil {
			redirect(w, r, backTo(r), err.Error(), "")
			return
		}
		var out struct {
			Run RunView `json:"run"`
		}
		if err := d.callActive(r, http.MethodPost, "/api/v1/periods/"+p.String()+"/set-by-hand", body, &out); err != nil {
			redirect(w, r, backTo(r), "Not recorded: "+err.Error()+".", "")
			return
		}
		redirect(w, r, backTo(r), fmt.Sprintf("Recorded %s as set by hand (run %d).", periodName(p), out.Run.ID), "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), resolvePassWait)
	defer cancel()
	run, err := d.RecordSetByHand(ctx, p, note, user)
	if err != nil {
		redirect(w, r, backTo(r), "Not recorded: "+strings.TrimPrefix(err.Error(), "daemon: "), "")
		return
	}
	d.logger.Info("Quantities recorded as set by hand on the status page", "run", run.ID, "period", run.Period)
	redirect(w, r, backTo(r), fmt.Sprintf("Recorded %s as set by hand (run %d).", periodName(p), run.ID), "")
}

// statusPageUser is the basic_auth_users user a status page request
// carries (the browser sends it with every request once asked), or "":
// a note the page records names who made it, as the API's do. Only a user
// the listener checked counts, not a name any signed-in browser could
// send.
func (d *Daemon) statusPageUser(r *http.Request) string {
	if !d.listenerCheckedBasic(r) {
		return ""
	}
	user, _, _ := r.BasicAuth()
	return strings.TrimSpace(user)
}

// userNote is note as the active instance records it for user (see
// Daemon.ClearOrphans and Daemon.RecordSetByHand), for a standby that
// forwards a status page action with its own credentials: the active
// instance then names no user of its own (recordingUser), and one older
// than statusPageUserHeader the API token's before it.
func userNote(user, note string) string {
	if user == "" || strings.TrimSpace(note) == "" {
		return note
	}
	return "user " + user + ": " + strings.TrimSpace(note)
}

// handleUIClearOrphan clears the orphaned line of the form's contract and
// service (POST /api/v1/orphans/clear, psa-syncd orphans -clear); on a
// standby through the active instance's API.
func (d *Daemon) handleUIClearOrphan(w http.ResponseWriter, r *http.Request) {
	contract, service := r.PostForm.Get("contract"), r.PostForm.Get("service")
	if strings.TrimSpace(contract) == "" || strings.TrimSpace(service) == "" {
		redirect(w, r, backTo(r), "Not cleared: the form names no contract and service.", "")
		return
	}
	// The form's Zeroed button: the line was set to 0 in the PSA.
	zeroed := r.PostForm.Get("zeroed") != ""
	done := fmt.Sprintf("Cleared the orphaned line of contract %s, service %s: not listed again until psa-syncd changes it.", contract, service)
	if zeroed {
		done = fmt.Sprintf("Cleared the orphaned line of contract %s, service %s as set to 0 in the PSA: not listed again until psa-syncd changes it.", contract, service)
	}
	user := d.statusPageUser(r)
	if !d.Active() {
		body, err := json.Marshal(map[string]any{"contract_id": contract, "service_id": service, "zeroed": zeroed, "note": userNote(user, "status page")})
		if err != nil {
			redirect(w, r, backTo(r), err.Error(), "")
			return
		}
		if err := d.callActive(r, http.MethodPost, "/api/v1/orphans/clear", body, &struct{}{}); err != nil {
			redirect(w, r, backTo(r), "Not cleared: "+err.Error()+".", "")
			return
		}
		redirect(w, r, backTo(r), done, "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), resolvePassWait)
	defer cancel()
	if _, err := d.ClearOrphans(ctx, contract, service, "status page", user, zeroed); errors.Is(err, usage.ErrAlreadyCleared) {
		// The form sent again (a reload, a second click): done already.
		redirect(w, r, backTo(r), "Nothing to do: "+strings.TrimPrefix(err.Error(), "daemon: ")+".", "")
		return
	} else if err != nil {
		redirect(w, r, backTo(r), "Not cleared: "+strings.TrimPrefix(err.Error(), "daemon: "), "")
		return
	}
	d.logger.Info("Orphaned line cleared on the status page", "contract", contract, "service", service, "zeroed", zeroed)
	redirect(w, r, backTo(r), done, "")
}

// writesOffNotice says that the export switches the integration off (the
// status page's banner, header.html, says the same).
const writesOffNotice = "writes are off (integration disabled in the export): the mapping export switches the integration off, " +
	"so passes compute and report their changes but write nothing to the PSA."

func requestedMessage(req SyncRequest) string {
	if req.Surge != "" {
		return "Approval of the lines held for the surge requested: they are written only if the pass holds exactly the lines and units reviewed."
	}
	if req.Approve {
		return "Approval requested."
	}
	if !req.Period.IsZero() {
		return "Sync of " + periodName(req.Period) + " requested."
	}
	return "Sync requested."
}

// activeCallTimeout bounds a request a standby's status page makes to the
// active instance.
const activeCallTimeout = 5 * time.Second

// uiSyncOnActive is "sync now" and "approve" on a standby: it queues req
// on the active instance with POST /api/v1/sync, or says why it could not.
func (d *Daemon) uiSyncOnActive(w http.ResponseWriter, r *http.Request, req SyncRequest) {
	body, err := json.Marshal(req.APIBody())
	if err != nil {
		redirect(w, r, backTo(r), err.Error(), "")
		return
	}
	var t SyncTicket
	if err := d.callActive(r, http.MethodPost, "/api/v1/sync", body, &t); err != nil {
		d.logger.Warn("Could not request a sync from the status page of a standby", "err", err)
		redirect(w, r, backTo(r), "This psa-syncd is a standby and does not sync, and "+err.Error()+".", "")
		return
	}
	d.logger.Info("Sync requested on the status page of a standby; queued on the active instance", "request", t.ID, "customer", req.Customer,
		"approve", req.Approve, "service", req.Service, "units", unitsValue(req.Units), "surge", req.Surge, "period", req.Period.String(), "user", d.statusPageUser(r))
	redirect(w, r, backTo(r), requestedMessage(req), t.ID)
}

// ticketOnActive asks the active instance, for a standby's status page, for
// the sync request with the given id.
func (d *Daemon) ticketOnActive(r *http.Request, id string) (SyncTicket, bool) {
	var out struct {
		Request SyncTicket `json:"request"`
	}
	if err := d.callActive(r, http.MethodGet, "/api/v1/runs/"+url.PathEscape(id), nil, &out); err != nil {
		d.logger.Debug("Could not look up a sync request on the active instance", "request", id, "err", err)
		return SyncTicket{}, false
	}
	return out.Request, out.Request.ID == id
}

// callActive sends an API request on behalf of the status page request r to
// the active instance at the URL it advertises, and decodes its JSON answer
// into v. It authenticates with the API token (authenticateToActive), not
// with r's credentials, and marks the request forwarded, so that it is
// never forwarded again. It follows no redirect (see isRedirect).
func (d *Daemon) callActive(r *http.Request, method, path string, body []byte, v any) error {
	info, held, err := d.db.Leader()
	switch {
	case err != nil || !held:
		return fmt.Errorf("the active instance is %s: try again shortly", d.activeInstance())
	case info.URL == "":
		return fmt.Errorf("the active instance, %s, advertises no state.advertise_url to forward to: use its own status page", d.activeInstance())
	}
	target, err := url.JoinPath(info.URL, path)
	if err != nil {
		return fmt.Errorf("the active instance's URL %q is not valid: %v", redact.URL(info.URL), redact.URLError(err))
	}
	ctx, cancel := context.WithTimeout(r.Context(), activeCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if err := d.authenticateToActive(req); err != nil {
		return err
	}
	host, _ := os.Hostname()
	req.Header.Set(forwardedHeader, host)
	if user := d.statusPageUser(r); user != "" {
		req.Header.Set(statusPageUserHeader, user)
	}
	// The browser's address, as forward sends a client's: the active
	// instance counts a wrong token (while web.api_token is rotated)
	// against it, not this instance, when this one is in its
	// web.trusted_proxies.
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		req.Header.Set("X-Forwarded-For", ip)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{
		Transport:     d.activeTransports.get(d.logger),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       activeCallTimeout,
	}
	resp, err := client.Do(req)
	if err != nil {
		if msg := d.activeTransports.refused(ctx, info.URL, err); msg != "" {
			return fmt.Errorf("the active instance %s could not be reached: %s", info, msg)
		}
		return fmt.Errorf("the active instance %s could not be reached: %w", info, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of the active instance %s: %w", info, err)
	}
	// What answers at the advertised URL (a proxy, a server that is not
	// psa-syncd, one that leaks) may quote the request, and with it this
	// instance's API token, or another credential: the page and the logs
	// show its error without them, and none of an answer that holds one.
	red := redact.Request(req)
	red.Add(d.cfg.Load().credentials()...)
	// And HTTP_PROXY's, which the transport (the environment's proxy)
	// sends to a plain http:// advertise_url's proxy itself.
	red.Add(redact.ProxyCredentials(nil, req)...)
	if isRedirect(resp.StatusCode) {
		return errors.New(redirectRefused(info, resp, red))
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		return fmt.Errorf("the active instance %s answered %s: %s", info, resp.Status, strings.Join(red.Strings(strings.Split(e.Error, "\n")), "\n"))
	}
	if red.Contains(string(data)) {
		return fmt.Errorf("the active instance %s answered %s quoting this instance's API token or a credential; the answer is not used: check what answers at its state.advertise_url", info, resp.Status)
	}
	return json.Unmarshal(data, v)
}

// active returns the requests that are queued or running, oldest first.
func (q *syncQueue) active() []SyncTicket {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []SyncTicket
	for _, id := range q.order {
		if t, ok := q.tickets[id]; ok && (t.Status == "queued" || t.Status == "running") {
			out = append(out, *t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Queued.Before(out[j].Queued) })
	return out
}

// fmtWhen formats a time for the page: UTC, to the second, or "never".
func fmtWhen(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func percent(done, total int) int {
	if total <= 0 {
		return 0
	}
	return done * 100 / total
}

// dict builds a map from key, value pairs, for passing several values to a
// template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}
