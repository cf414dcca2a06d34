package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// Limits of the HTTP API. Together with the timeouts they keep a client
// that is slow, or one that opens many connections, from holding the
// daemon's file descriptors and goroutines.
const (
	// maxRequestBody bounds a request body; larger ones get 413.
	maxRequestBody = 64 << 10
	// maxHeaderBytes bounds the request line and headers.
	maxHeaderBytes = 64 << 10
	// maxConcurrentAPIRequests bounds the /api/ and /-/reload requests
	// served at once; more get 503 with Retry-After at once rather than
	// queueing.
	maxConcurrentAPIRequests = 16
	// tokenAPISlots of them are kept for requests that carry the API
	// token: requests without it (the read-only endpoints need none; a
	// scanner, a job retrying, a client reading its answers slowly) hold
	// at most the others, so that they cannot keep the operator's sync,
	// check or standby status page out (see takeAPISlot).
	tokenAPISlots = 4
	// freshPlanInterval is the least time between two plans computed for
	// POST /api/v1/plan: each one reads the PSA, whose hourly budget other
	// integrations share.
	freshPlanInterval = 30 * time.Second
	// freshPlanWriteTimeout replaces the write timeout for a fresh plan,
	// which reads every contract before it answers.
	freshPlanWriteTimeout = 10 * time.Minute
	// resolvePassWait bounds how long POST /api/v1/intents/{id}/resolve
	// waits for a running pass to end before it answers 503 and records
	// nothing: less than the write timeout, and than psa-syncd resolve
	// -web.url waits for an answer (30 s), so that the client hears of
	// every answer that was not recorded.
	resolvePassWait = 20 * time.Second
	// defaultForwardTimeout bounds a request that a standby forwards to
	// the active instance, its answer included (a ticket pass that writes:
	// ticketPassWriteTimeout): more than the active instance waits before
	// it answers a resolve (resolvePassWait), and less than the write
	// timeout, so that the caller hears that the active instance did not
	// answer instead of waiting for ever with it.
	defaultForwardTimeout = 30 * time.Second
	// backupWriteTimeout replaces the write timeout for GET /api/v1/backup,
	// which copies the whole database before it answers and then sends it:
	// as long as `psa-syncd backup` waits for it.
	backupWriteTimeout = 30 * time.Minute
)

// httpTimeouts bound each connection to the HTTP server: reading the
// headers, reading the whole request (body included), writing the
// response, and waiting for the next request on a kept-alive connection.
type httpTimeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultHTTPTimeouts = httpTimeouts{readHeader: 10 * time.Second, read: 30 * time.Second, write: time.Minute, idle: 2 * time.Minute}

// newHTTPServer returns the daemon's HTTP server, with its timeouts and
// limits, serving Handler.
func (d *Daemon) newHTTPServer() *http.Server {
	t := d.httpTimeouts
	return &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		// TLS handshake errors carry those of reading the web config
		// file (see webConfigLogHandler).
		ErrorLog: slog.NewLogLogger(webConfigLogHandler{d.logger.Handler()}, slog.LevelError),
	}
}

// Handler returns the daemon's HTTP API on a private mux:
//
//	GET  /metrics               Prometheus metrics (the daemon's own registry)
//	GET  /-/healthy             200 while the process runs
//	GET  /-/ready               200 once the config and a valid mapping export are loaded (on a standby too), else 503;
//	                            with export_url: self 200 without an export too, to receive one (see handleReady)
//	POST /-/reload              reload config and export (bearer token)
//	POST /api/v1/check          run psa-syncd check's tests with the config file as a reload would load it, with the
//	                            daemon's own environment and secret files (bearer token; one at a time); {"ok": ..., "report": "..."}
//	POST /api/v1/impact         the billing impact report of a Terraform plan, {"terraform_plan": <terraform show -json>,
//	                            "format": "table|markdown|json"}, computed with the daemon's PSA backend, whose Kaseya BMS
//	                            calls count in api_calls (bearer token; rate-limited); {"report": "..."}
//	GET  /api/v1/customers      per-customer status; ?status=succeeded|failed|partial|held|skipped|never&usage_sync=true|false
//	POST /api/v1/sync           queue a pass, optionally {"customer": "...", "approve": true, "service": "...", "units": N, "period": "YYYY-MM"} (bearer token); 202 {"run_id": ...}
//	GET  /api/v1/runs           recent runs, newest first, 50 a page (?limit=N, at most 1000) with a "next" link; ?before=ID
//	GET  /api/v1/runs/{id}      one run (a state run id) or sync request (the run_id from POST /api/v1/sync; a standby forwards it)
//	GET  /api/v1/plan           the plan of the last pass; ?customer=ID
//	POST /api/v1/plan           compute a plan now, optionally {"customer": "...", "period": "YYYY-MM"} (bearer token; rate-limited)
//	GET  /api/v1/intents        writes whose outcome is not settled yet (Kaseya BMS: awaiting an operator)
//	POST /api/v1/intents/{id}/resolve  an operator's answer {"posted": true|false, "note": "..."} (bearer token)
//	POST /api/v1/periods/{period}/set-by-hand  record that the quantities of the month that has ended were set
//	                            in the PSA by hand, {"note": "..."} (bearer token); 200 {"run": ...}
//	GET  /api/v1/tickets/intents  ticket creates whose outcome is not settled yet (a search that cannot be checked: awaiting an operator)
//	POST /api/v1/tickets/intents/{ref}/resolve  an operator's answer for a ticket create kept open, {"posted": false, "note": "..."}
//	                            (bearer token): no ticket of that reference is in the PSA, the next ticket pass files it
//	POST /api/v1/tickets        run a ticket pass now and answer with its report, optionally {"dry_run": true}, {"forget_other_psa": true} (bearer token;
//	                            one ticket pass at a time, dry runs rate-limited)
//	GET  /api/v1/ledger         quantity changes psa-syncd made, newest first, 1000 a page with a "next" link; ?customer=&contract=&service=&period=YYYY-MM&before=SEQ&after=SEQ&limit=N
//	GET  /api/v1/unmapped       the usage the last pass could not bill (kept across restarts)
//	POST /api/v1/orphans/clear  clear an orphaned line the last pass listed, {"contract_id": "...", "service_id": "...",
//	                            "note": "..."} or {"all": true} (bearer token); 200 {"cleared": [...]}, 404 when none matches
//	GET  /                      the status page (see statuspage.go), with /customers/{source}/{id},
//	                            /static/ and the form posts /ui/sign-in, /ui/sign-out, /ui/sync, /ui/set-by-hand and /ui/orphans/clear
//	GET  /api/v1/backup         a consistent copy of the SQLite state database (bearer token)
//	GET  /api/v1/export         the mapping export in use, with its ETag
//	PUT  /api/v1/export         store a new export when export_url is self (bearer token; If-Match or If-None-Match: *)
//	GET  /api/v1/export/history the stored export versions, newest first; ?limit=N
//
// Mutating endpoints, and everything that makes a request to the PSA or the
// usage source, require "Authorization: Bearer <web.api_token>". When no
// token is configured they are refused with 403. Their POST and PUT requests
// that a browser sent on behalf of another site are refused with 403 too
// (see crossOriginProtection). Read-only endpoints answer
// from memory and the state database only. API requests are bounded in
// number and size (see maxConcurrentAPIRequests and maxRequestBody). A
// standby (another psa-syncd holds the shared state database's leadership
// lock) serves the read-only endpoints, ticket dry runs and billing impact
// reports, and forwards
// sync, resolve, a ticket pass that writes and the lookup of a sync request
// to the active instance (at its state.advertise_url), or refuses them with
// 503 naming it.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{
		Registry: d.registry,
		ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelError),
	}))
	mux.HandleFunc("GET /-/healthy", handleHealthy)
	mux.HandleFunc("GET /-/ready", d.handleReady)
	xo := crossOriginProtection()
	mux.Handle("POST /-/reload", xo.Handler(d.requireReloadToken(d.bounded(http.HandlerFunc(d.handleReload)))))
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
	})
	api := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, d.bounded(h)) }
	token := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, xo.Handler(d.requireToken(d.bounded(h))))
	}
	api("GET /api/v1/customers", d.handleCustomers)
	token("POST /api/v1/check", d.handleCheck)
	mux.Handle("POST /api/v1/impact", xo.Handler(d.requireToken(d.boundedTo(maxImpactBody, http.HandlerFunc(d.handleImpact)))))
	token("POST /api/v1/sync", d.requireActive(http.HandlerFunc(d.handleSync)).ServeHTTP)
	api("GET /api/v1/runs", d.handleRuns)
	api("GET /api/v1/runs/{id}", d.handleRun)
	api("GET /api/v1/plan", d.handlePlan)
	token("POST /api/v1/plan", d.handleFreshPlan)
	api("GET /api/v1/intents", d.handleIntents)
	token("POST /api/v1/intents/{id}/resolve", d.requireActive(http.HandlerFunc(d.handleResolve)).ServeHTTP)
	api("GET /api/v1/tickets/intents", d.handleTicketIntents)
	token("POST /api/v1/tickets/intents/{ref}/resolve", d.requireActive(http.HandlerFunc(d.handleResolveTicket)).ServeHTTP)
	token("POST /api/v1/periods/{period}/set-by-hand", d.requireActive(http.HandlerFunc(d.handleSetByHand)).ServeHTTP)
	token("POST /api/v1/orphans/clear", d.requireActive(http.HandlerFunc(d.handleClearOrphans)).ServeHTTP)
	// A dry run is served here on a standby too: handleTickets forwards
	// only a pass that writes.
	token("POST /api/v1/tickets", d.handleTickets)
	api("GET /api/v1/ledger", d.handleLedger)
	api("GET /api/v1/unmapped", d.handleUnmapped)
	token("GET /api/v1/backup", d.handleBackup)
	d.registerStatusPage(mux)
	api("GET "+export.ExportAPIPath, d.handleGetExport)
	mux.Handle("PUT "+export.ExportAPIPath, xo.Handler(d.requireToken(d.boundedTo(maxExportBody, http.HandlerFunc(d.handlePutExport)))))
	api("GET "+export.ExportAPIPath+"/history", d.handleExportHistory)
	return mux
}

// crossOriginRefused is the error of an API request that a browser sent on
// behalf of another site.
const crossOriginRefused = "cross-origin request refused: a browser sent it on behalf of another site (its Sec-Fetch-Site or Origin header says so); " +
	"call the API from a client that is not a browser (psa-syncd's commands, curl, a script), or use the status page"

// crossOriginProtection guards the endpoints that take the API token. With
// basic_auth_users in the web config file the token is a basic password
// (see bearerToken), and a browser that signed in to the listener with it
// sends those credentials with every request to the listener, a form that
// another site submits included; such a form can spell a JSON body. Its
// POST and PUT requests are refused (403) when the browser says, with
// Sec-Fetch-Site or an Origin that is not the request's host, that they
// come from another site. Clients that are not browsers (psa-syncd's
// commands, curl, a standby forwarding a request) send neither header and
// are not affected; the status page's forms post to /ui/, which checks a
// CSRF token instead.
func crossOriginProtection() *http.CrossOriginProtection {
	xo := http.NewCrossOriginProtection()
	xo.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusForbidden, crossOriginRefused)
	}))
	return xo
}

// bounded serves at most maxConcurrentAPIRequests requests at once (see
// takeAPISlot) and limits their bodies to maxRequestBody. The endpoints
// that take the API token check it first (requireToken): a request without
// it is answered without a slot.
func (d *Daemon) bounded(next http.Handler) http.Handler {
	return d.boundedTo(maxRequestBody, next)
}

// boundedTo is bounded with a body limit of limit bytes, for the
// endpoints whose body is larger than a command (PUT /api/v1/export, POST
// /api/v1/impact).
func (d *Daemon) boundedTo(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, ok := d.takeAPISlot(r)
		if !ok {
			d.metrics.HTTPRefused(RefusedBusy)
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many API requests at once (at most %d, %d of them kept for requests with the API token): try again shortly",
				maxConcurrentAPIRequests, tokenAPISlots))
			return
		}
		defer release()
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// takeAPISlot takes one of the maxConcurrentAPIRequests slots for r and
// returns the function that gives it back, or false when none is free for
// r. Any request may take a slot while fewer than
// maxConcurrentAPIRequests-tokenAPISlots are taken (openAPISlots); the
// others go to requests with the API token only. Whether r has it is
// asked only then, and as requireToken asks it: a wrong token counts
// towards its address's throttle, and a throttled address's token is not
// looked at, so that a client which holds the open slots cannot try
// tokens through the answers without limit.
func (d *Daemon) takeAPISlot(r *http.Request) (release func(), ok bool) {
	select {
	case d.openAPISlots <- struct{}{}:
		select {
		case d.apiSlots <- struct{}{}:
			return func() { <-d.apiSlots; <-d.openAPISlots }, true
		default:
			<-d.openAPISlots
			return nil, false
		}
	default:
	}
	if !d.hasToken(r) {
		return nil, false
	}
	select {
	case d.apiSlots <- struct{}{}:
		return func() { <-d.apiSlots }, true
	default:
		return nil, false
	}
}

// hasToken reports whether r carries the configured API token, counting a
// wrong one like requireToken does (a basic password that the listener
// checked is none, see listenerCheckedBasic); it is false for every token
// of an address whose token checks are refused.
func (d *Daemon) hasToken(r *http.Request) bool {
	want := string(d.cfg.Load().Web.APIToken)
	got, ok := bearerToken(r)
	if want == "" || !ok {
		return false
	}
	addr := d.clientAddr(r)
	if _, blocked := d.tokens.blocked(addr, d.now()); blocked {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		if !d.listenerCheckedBasic(r) {
			d.wrongToken(r, addr, "API")
		}
		return false
	}
	return true
}

// errEmptyBody is what decodeBody returns for a body with no JSON in it.
var errEmptyBody = errors.New("the request body is empty")

// decodeBody decodes a request body that must hold exactly one JSON object
// with known fields only: null, trailing data and unknown fields are
// refused. It returns errEmptyBody for an empty body, and an error matching
// *http.MaxBytesError for one over maxRequestBody.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("reading request body: %w", err)
	}
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return errEmptyBody
	case data[0] != '{':
		return errors.New("the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.InputOffset() != int64(len(data)) {
		return fmt.Errorf("unexpected data after the JSON object at byte %d", dec.InputOffset())
	}
	return nil
}

// knownQuery answers 400 and returns false when r's query has a parameter
// other than names. The read endpoints' filters are query parameters, and
// a newer psa-syncd command may send one that this psa-syncd does not have
// (psa-syncd ledger -web.url with a filter added later): ignored, the
// command would print the unfiltered list as if filtered. The GET
// endpoints of the API that take no parameter call it with no names, so
// that a parameter added to one later is never silently dropped by an
// older psa-syncd either; no caller (the commands, the status page, a
// standby's forwarding, psa/export's client) sends them one.
func knownQuery(w http.ResponseWriter, r *http.Request, names ...string) bool {
	var unknown []string
	for k := range r.URL.Query() {
		if !slices.Contains(names, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return true
	}
	slices.Sort(unknown)
	want := "none"
	if len(names) > 0 {
		want = strings.Join(names, ", ")
	}
	writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q (want %s): a misspelling, or sent by a newer psa-syncd command "+
		"(upgrade the psa-syncd serving this API to use it)", unknown[0], want))
	return false
}

// writeBodyError answers a request whose body decodeBody refused.
func writeBodyError(w http.ResponseWriter, want string, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
		return
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		// Fields are added to the API's bodies, and a newer psa-syncd's
		// command or standby may send one to this older one.
		msg = "unknown field " + name + ": a misspelling, or sent by a newer psa-syncd command or standby (upgrade the psa-syncd serving this API to use it)"
	}
	writeError(w, http.StatusBadRequest, "invalid request body: want "+want+": "+msg)
}

// requireToken lets a request through only with the configured bearer token.
func (d *Daemon) requireToken(next http.Handler) http.Handler {
	return d.requireTokenOr(nil, next)
}

// requireReloadToken is requireToken for POST /-/reload, which also takes
// the API token of the config file as the reload would load it now
// (reloadToken). Rotating the token replaces its file (web.api_token_file,
// a Kubernetes Secret) before the reload that loads it, and the file then
// holds the new token only: `kubectl exec ... psa-syncd reload
// -web.token-file` with the pod's file was refused (401, counted as a
// wrong token), and a pod has no shell for SIGHUP. Whoever holds that
// token is let in by the reload anyway.
func (d *Daemon) requireReloadToken(next http.Handler) http.Handler {
	return d.requireTokenOr(d.reloadToken, next)
}

// reloadToken returns the API token that a reload would load now: that of
// the config file as Reload loads it, "" when it cannot be loaded or the
// daemon was given no config file.
func (d *Daemon) reloadToken() string {
	if d.configPath == "" {
		return ""
	}
	cfg, err := Load(d.configPath, d.getenv)
	if err != nil {
		return ""
	}
	return string(cfg.Web.APIToken)
}

// requireTokenOr is requireToken that, when also is not nil, also takes
// the token also returns; also is called only for a token given that is
// not the configured one.
func (d *Daemon) requireTokenOr(also func() string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := string(d.cfg.Load().Web.APIToken)
		if want == "" {
			writeError(w, http.StatusForbidden, "mutating API endpoints are disabled: configure web.api_token (or web.api_token_file, or the PSA_SYNCD_API_TOKEN environment variable) to enable them")
			return
		}
		addr := d.clientAddr(r)
		if left, blocked := d.tokens.blocked(addr, d.now()); blocked {
			d.metrics.HTTPRefused(RefusedTokenThrottled)
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(left)))
			writeError(w, http.StatusTooManyRequests, tooManyWrongTokens(left))
			return
		}
		got, ok := bearerToken(r)
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 && also != nil {
			if alt := also(); alt != "" && subtle.ConstantTimeCompare([]byte(got), []byte(alt)) == 1 {
				want = alt
			}
		}
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="psa-syncd"`)
			msg := "missing bearer token"
			switch {
			case ok && d.listenerCheckedBasic(r):
				msg = "the basic password is not the API token: this endpoint takes the API token as the password of a user of basic_auth_users whose bcrypt hash is of it"
			case ok:
				msg = "invalid bearer token"
				d.wrongToken(r, addr, "API")
			}
			writeError(w, http.StatusUnauthorized, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// wrongToken records a wrong API token of r from addr, given to the API or
// to the status page's sign-in form (where). Behind a proxy that is not in
// web.trusted_proxies addr is the proxy's, whose every client is refused
// with the one that sent the wrong tokens: the log line carries r's
// X-Forwarded-For too (taken for nothing else), so that the operator can
// find that client. Every wrong token is counted in
// psa_sync_http_refused_total.
func (d *Daemon) wrongToken(r *http.Request, addr, where string) {
	d.metrics.HTTPRefused(RefusedWrongToken)
	if d.tokens.wrong(addr, d.now()) {
		attrs := []any{"remote", addr, "via", where, "wrong_tokens", maxWrongTokens, "window", wrongTokenWindow.String()}
		if key := guardKey(addr); key != addr {
			attrs = append(attrs, "counted_as", key)
		}
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			if len(xff) > maxForwardedForLogged {
				xff = xff[:maxForwardedForLogged] + "…"
			}
			attrs = append(attrs, "forwarded_for", xff)
		}
		d.logger.Warn("Too many wrong API tokens from one address: its token checks are refused for a while", attrs...)
	}
}

// maxForwardedForLogged bounds the X-Forwarded-For that wrongToken logs,
// a header of the client's choosing.
const maxForwardedForLogged = 256

// retryAfterSeconds is left rounded up to whole seconds, at least 1.
func retryAfterSeconds(left time.Duration) int {
	return max(1, int((left+time.Second-1)/time.Second))
}

// tooManyWrongTokens says why a token check was refused.
func tooManyWrongTokens(left time.Duration) string {
	return fmt.Sprintf("too many wrong API tokens from this address (%d within %s): try again in %d s",
		maxWrongTokens, wrongTokenWindow, retryAfterSeconds(left))
}

// forwardedHeader marks a request that a standby forwarded to the active
// instance, so that it is never forwarded twice.
const forwardedHeader = "X-Psa-Syncd-Forwarded-By"

// statusPageUserHeader names, in a request that a standby's status page
// sends to the active instance (callActive), the basic_auth_users user of
// the browser the standby acted for; its note names that user already
// (userNote). The request's own basic user is the API token's, which did
// not act (see recordingUser). A standby drops it from the requests of
// its clients that it forwards.
const statusPageUserHeader = "X-Psa-Syncd-Status-Page-User"

// recordingUser is the user a record made by the API request r names
// (Daemon.ClearOrphans, Daemon.RecordSetByHand): its basic_auth_users user,
// or none for an action of a standby's status page, whose note names the
// browser's user (statusPageUserHeader): the basic user of that request
// is the API token's, and "user automation: user ops-anna: ..." would
// name one who did not act. The header counts only with the API token,
// which these endpoints require, and whose holder can write any note.
func recordingUser(r *http.Request) string {
	if r.Header.Get(forwardedHeader) != "" && r.Header.Get(statusPageUserHeader) != "" {
		return ""
	}
	return basicUser(r)
}

// basicUser is the user name of r's basic credentials, "" for none or for
// one that is the password itself: the API token given as both (curl -u
// "$TOKEN:$TOKEN", or a URL https://TOKEN@host sent with the token), which
// a listener without basic_auth_users takes under any name, and which the
// records would show where no token is needed to read them (GET
// /api/v1/runs, the status page).
func basicUser(r *http.Request) string {
	user, password, _ := r.BasicAuth()
	if user == password {
		return ""
	}
	return user
}

// askedBy is SyncRequest.Who for the API request r: its basic_auth_users
// user, or, for an action of a standby's status page (a request it
// forwarded with statusPageUserHeader), the browser's user; "" for none
// (a bearer token names nobody).
func askedBy(r *http.Request, approve bool) string {
	if user := r.Header.Get(statusPageUserHeader); user != "" && r.Header.Get(forwardedHeader) != "" {
		return whoAsked(user, "on the status page", approve)
	}
	return whoAsked(basicUser(r), "through the API", approve)
}

// whoAsked is SyncRequest.Who for user asking where: "approved by user
// ops-anna on the status page"; "" for no user.
func whoAsked(user, where string, approve bool) string {
	if user = strings.TrimSpace(user); user == "" {
		return ""
	}
	verb := "requested"
	if approve {
		verb = "approved"
	}
	// A user name of the web config file: only a header of a caller with
	// the API token could be longer.
	return fmt.Sprintf("%s by user %s %s", verb, redact.Truncate(user, 100), where)
}

// requireActive lets a request that only the active instance may serve
// through on the active instance. A standby forwards it to the active one
// when that one recorded its state.advertise_url, and otherwise refuses it
// with 503 naming the active instance.
func (d *Daemon) requireActive(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.Active() {
			next.ServeHTTP(w, r)
			return
		}
		d.forwardToActive(w, r, d.forwardTimeout)
	})
}

// forwardToActive forwards r, on a standby, to the active instance when
// that one recorded its state.advertise_url and r was not forwarded
// already, and otherwise refuses it with 503 naming the active instance.
// The active instance has timeout to answer.
func (d *Daemon) forwardToActive(w http.ResponseWriter, r *http.Request, timeout time.Duration) {
	if info, held, err := d.db.Leader(); err == nil && held && info.URL != "" && r.Header.Get(forwardedHeader) == "" {
		d.forward(w, r, info, timeout)
		return
	}
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, strings.TrimPrefix((&StandbyError{Active: d.activeInstance()}).Error(), "daemon: "))
}

// isRedirect reports whether code asks the client to send its request
// elsewhere. A standby follows no such answer of the active instance, nor
// relays it to its client: a redirect would take the API token (or the
// client's credentials) to the Location's host, which Go's client also
// does for another port of the same host or a subdomain, over plain http
// too. What answers at state.advertise_url must be the active instance.
func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirectRefused says why a redirect of the active instance (answer
// resp) was not followed; red keeps credentials out of its Location.
func redirectRefused(active state.LeaderInfo, resp *http.Response, red *redact.Redactor) string {
	return fmt.Sprintf("the active instance %s answered %s, a redirect to %q, which this standby does not follow: it would take the credentials of the request there; "+
		"set state.advertise_url of the active instance to the URL that psa-syncd itself answers at", active, resp.Status, red.String(redact.URL(resp.Header.Get("Location"))))
}

// forward sends r, token and body included, to the active instance and
// relays its answer. An active instance that does not answer within
// timeout (hung, or behind a network that drops the packets) gets its
// request cancelled, and the caller 504: the standby's handler and the
// caller would otherwise wait for it as long as its connection stays open.
func (d *Daemon) forward(w http.ResponseWriter, r *http.Request, active state.LeaderInfo, timeout time.Duration) {
	target, err := url.Parse(active.URL)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("this psa-syncd is a standby, and the active instance's URL %q is not valid: %v", redact.URL(active.URL), redact.URLError(err)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	r = r.WithContext(ctx)
	host, _ := os.Hostname()
	proxy := &httputil.ReverseProxy{
		Transport: d.activeTransports.get(d.logger),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The client's address, after those of the proxies it came
			// through: the active instance counts a wrong token (tokens
			// that differ while web.api_token is rotated) against that
			// client, not this instance, when this instance's address is
			// in its web.trusted_proxies.
			pr.SetXForwarded()
			pr.Out.Header.Set(forwardedHeader, host)
			// Only this instance's status page names a browser's user.
			pr.Out.Header.Del(statusPageUserHeader)
			// This instance checked them (crossOriginProtection); an
			// Origin names this instance, whose host the active
			// instance's would not match.
			pr.Out.Header.Del("Origin")
			pr.Out.Header.Del("Sec-Fetch-Site")
			// Go's transport then asks for gzip itself and hands the
			// answer over decompressed, so that redactForwarded reads
			// what the client would.
			pr.Out.Header.Del("Accept-Encoding")
		},
		ModifyResponse: func(resp *http.Response) error { return d.redactForwarded(resp, active) },
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("this psa-syncd is a standby, and the active instance %s did not answer within %s: "+
					"whether it did what was asked is not known here; GET /api/v1/runs and GET /api/v1/intents show what it did, its log says why it is slow", active, timeout))
				return
			}
			if msg := d.activeTransports.refused(ctx, active.URL, err); msg != "" {
				writeError(w, http.StatusBadGateway, fmt.Sprintf("this psa-syncd is a standby and could not reach the active instance %s: %s", active, msg))
				return
			}
			writeError(w, http.StatusBadGateway, fmt.Sprintf("this psa-syncd is a standby and could not reach the active instance %s: %v", active, err))
		},
		ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelWarn),
	}
	d.logger.Debug("Forwarding a request to the active instance", "path", r.URL.Path, "active", active.String())
	proxy.ServeHTTP(w, r)
}

// redactForwarded keeps this instance's credentials out of an error answer
// of the active instance that forward relays, as callActive does: what
// answers at the advertised URL may quote what it should not. An answer
// that quotes one is replaced by its {"error"} message, redacted; one still
// compressed (forward lets Go's transport ask for gzip and decompress it,
// so sent in an encoding not asked for) by a message saying so.
//
// A redirect (isRedirect) is relayed as 502 saying so, without its
// Location: the client would follow it with its credentials.
func (d *Daemon) redactForwarded(resp *http.Response, active state.LeaderInfo) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	red := redact.New(d.cfg.Load().credentials()...)
	// The transport (newActiveTransport, the environment's proxy) sends
	// HTTP_PROXY's credentials to a plain http:// advertise_url's proxy
	// itself, which the request does not show; its error page may quote
	// them.
	red.Add(redact.ProxyCredentials(nil, resp.Request)...)
	if isRedirect(resp.StatusCode) {
		data, _ = json.Marshal(map[string]string{"error": "this psa-syncd is a standby, and " + redirectRefused(active, resp, red)})
		resp.StatusCode, resp.Status = http.StatusBadGateway, "502 Bad Gateway"
		resp.Header.Del("Location")
		resp.Header.Set("Content-Type", "application/json")
		resp.Header.Del("Content-Encoding")
	} else if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		data, _ = json.Marshal(map[string]string{"error": fmt.Sprintf("the active instance answered %d in an encoding (%s) this standby does not read", resp.StatusCode, redact.Truncate(red.String(enc), 40))})
		resp.Header.Set("Content-Type", "application/json")
		resp.Header.Del("Content-Encoding")
	} else if red.Contains(string(data)) {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		data, _ = json.Marshal(map[string]string{"error": strings.Join(red.Strings(strings.Split(msg, "\n")), "\n")})
		resp.Header.Set("Content-Type", "application/json")
		resp.Header.Del("Content-Encoding")
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	resp.Header.Set("Content-Length", strconv.Itoa(len(data)))
	return nil
}

// handleBackup streams a consistent copy of the SQLite state database,
// written next to it and removed afterwards.
func (d *Daemon) handleBackup(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r) {
		return
	}
	if d.db.Driver() != state.DriverSQLite {
		writeError(w, http.StatusNotImplemented, strings.TrimPrefix(state.ErrBackupUnsupported.Error(), "state: "))
		return
	}
	// A large database, or a slow link, takes longer than an ordinary
	// answer: within the server's write timeout the copy would be cut.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	dir, err := os.MkdirTemp(filepath.Dir(d.db.Path()), ".backup-")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "backup: "+err.Error())
		return
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, state.FileName)
	if err := d.db.Backup(file); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	f, err := os.Open(file)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "backup: "+err.Error())
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "backup: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	// With its length given, a copy cut short (a read error here, the
	// process stopped) fails the download instead of ending as a complete
	// answer that `psa-syncd backup -web.url` would keep.
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size(), 10))
	w.Header().Set("Content-Disposition", `attachment; filename="`+state.FileName+`"`)
	if _, err := io.Copy(w, f); err != nil {
		d.logger.Warn("Sending a backup failed", "err", err)
	}
}

func bearerToken(r *http.Request) (string, bool) {
	// With basic authentication in the web config file the token is the
	// basic password (see listener.go).
	if _, password, ok := r.BasicAuth(); ok {
		return password, password != ""
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// handleReady answers the readiness probe. psa-syncd is ready once it can
// do its work: with the config and a valid mapping export loaded. When it is
// itself the export store (export_url: self) and has no valid export, it is
// ready too, to receive one: that export can only arrive through this
// listener (PUT /api/v1/export), and a Kubernetes Service sends nothing to
// a pod that is not Ready. The body, psa_sync_export_last_reload_successful
// and the status page still say that no export is loaded, and passes wait
// for one.
func (d *Daemon) handleReady(w http.ResponseWriter, _ *http.Request) {
	d.answerReady(w, true)
}

// handleHealthy answers the liveness probe: 200 while the process runs.
func handleHealthy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "psa-syncd is Healthy.")
}

// probeHandler serves the probe endpoints alone, GET /-/healthy and GET
// /-/ready, to requests that the web config file's basic_auth_users did
// not authenticate (see webConfigGuardHandler): a Kubernetes httpGet probe
// carries no credentials. A standby's /-/ready does not name the active
// instance (its host and advertise URL) to them.
func (d *Daemon) probeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+healthyPath, handleHealthy)
	mux.HandleFunc("GET "+readyPath, func(w http.ResponseWriter, _ *http.Request) { d.answerReady(w, false) })
	return mux
}

// The probe endpoints.
const (
	healthyPath = "/-/healthy"
	readyPath   = "/-/ready"
)

// answerReady writes the readiness answer; nameActive says whether a
// standby names the active instance in it.
func (d *Daemon) answerReady(w http.ResponseWriter, nameActive bool) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !d.Ready() {
		if cfg := d.cfg.Load(); cfg != nil && cfg.ExportStore() == StoreSelf {
			fmt.Fprintln(w, "psa-syncd is Ready to receive a mapping export (PUT "+export.ExportAPIPath+"), and does not sync yet: no valid mapping export loaded yet.")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "psa-syncd is not ready: no valid mapping export loaded yet.")
		return
	}
	if !d.Active() {
		if !nameActive {
			fmt.Fprintln(w, "psa-syncd is Ready (standby: serving the read-only API).")
			return
		}
		fmt.Fprintln(w, "psa-syncd is Ready (standby: serving the read-only API; the active instance is "+d.activeInstance()+").")
		return
	}
	fmt.Fprintln(w, "psa-syncd is Ready.")
}

func (d *Daemon) handleReload(w http.ResponseWriter, _ *http.Request) {
	if err := d.Reload(); err != nil {
		writeError(w, http.StatusInternalServerError, "failed to reload: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "Reloaded config and mapping export.")
}

// CheckReport is the answer of POST /api/v1/check: the report `psa-syncd
// check` prints, its items, and whether every test passed.
type CheckReport struct {
	OK     bool        `json:"ok"`
	Report string      `json:"report"`
	Items  []CheckItem `json:"items"`
}

// The results of a CheckItem.
const (
	CheckOK   = "ok"
	CheckFail = "fail"
	CheckNote = "note"
)

// CheckItem is one item of psa-syncd check's report (a line of its text,
// or a NOTE with its paragraphs), as psa-syncd check -json prints it.
type CheckItem struct {
	// Result is CheckOK, CheckFail, or CheckNote for what an operator
	// must know, which is no failure.
	Result string `json:"result"`
	// Item is what was checked: "config", "psa autotask", "source
	// sophos", "mapping export", "state database", ...
	Item string `json:"item"`
	// Detail is what the test found, or why it failed (ok and fail).
	Detail string `json:"detail,omitempty"`
	// Notes are the paragraphs of a note.
	Notes []string `json:"notes,omitempty"`
}

// CheckPassed reports whether no item of a check failed.
func CheckPassed(items []CheckItem) bool {
	for _, it := range items {
		if it.Result == CheckFail {
			return false
		}
	}
	return true
}

// handleCheck runs psa-syncd check's tests in the daemon, which can read
// the secrets where an operator's shell often cannot (systemd credentials,
// a Kubernetes Secret mounted in the pod). It loads the config file as a
// reload would, so that it also reports what a reload would refuse; the
// running config is not changed.
func (d *Daemon) handleCheck(w http.ResponseWriter, r *http.Request) {
	if d.check == nil {
		writeError(w, http.StatusNotImplemented, "this psa-syncd runs no checks")
		return
	}
	if !d.checkMu.TryLock() {
		writeError(w, http.StatusTooManyRequests, "a check is running already: try again when it has answered")
		return
	}
	defer d.checkMu.Unlock()
	// Each test may wait for the PSA or the usage source.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(freshPlanWriteTimeout))
	var buf bytes.Buffer
	var items []CheckItem
	if d.configPath == "" {
		// A daemon given its config rather than a file.
		items = d.check(r.Context(), d.cfg.Load(), d.storedExport, d.NewBackend, &buf)
		items = append(items, d.tlsCheckItems(d.cfg.Load(), &buf)...)
		d.forgetSourceRefusals(d.cfg.Load(), items)
	} else if cfg, err := Load(d.configPath, d.getenv); err != nil {
		fmt.Fprintf(&buf, "FAIL config %s: %v\n", d.configPath, err)
		items = []CheckItem{{Result: CheckFail, Item: "config", Detail: fmt.Sprintf("%s: %v", d.configPath, err)}}
	} else {
		if d.listenAddress != "" {
			cfg.Web.ListenAddress = d.listenAddress
		}
		items = d.check(r.Context(), cfg, d.storedExport, d.NewBackend, &buf)
		items = append(items, d.tlsCheckItems(cfg, &buf)...)
		d.forgetSourceRefusals(cfg, items)
	}
	writeJSON(w, http.StatusOK, CheckReport{OK: CheckPassed(items), Report: buf.String(), Items: items})
}

// forgetSourceRefusals lets the running usage source send again the calls
// it holds back for a minute after its API refused a new token
// (sophos.Client.ForgetRefusals), once a check with the running source
// settings (cfg) passed its source test: the credential works again (its
// role given back, say), and a "sync now" or ticket pass right after that
// check would else fail with "not sent ... until". A check of other
// settings (the config file changed, not yet reloaded) says nothing of the
// running credential; a reload builds a new source, with no holds, anyway.
func (d *Daemon) forgetSourceRefusals(cfg *Config, items []CheckItem) {
	cl, running := d.clients.Load(), d.cfg.Load()
	if cl == nil || running == nil || !reflect.DeepEqual(cfg.Source, running.Source) {
		return
	}
	f, ok := cl.source.(interface{ ForgetRefusals() int })
	if !ok {
		return
	}
	for _, it := range items {
		if it.Item == "source "+cl.source.Name() && it.Result == CheckOK {
			if n := f.ForgetRefusals(); n > 0 {
				d.logger.Info("The usage source's check passed; calls held back after its API refused a new access token are sent again", "source", cl.source.Name(), "hosts", n)
			}
			return
		}
	}
}

// storedExport reads the newest export stored in the state database, as
// GET /api/v1/export serves it with export_url: self.
func (d *Daemon) storedExport() ([]byte, error) {
	_, data, err := d.db.CurrentExport()
	return data, err
}

// apiCustomer is one customer in GET /api/v1/customers.
type apiCustomer struct {
	Source       string `json:"source"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	CompanyID    string `json:"company_id,omitempty"`
	ContractID   string `json:"contract_id,omitempty"`
	// NextContractID is the export's renewal of ContractID, if any: the
	// contract the customer is billed on from its start (see the last
	// plan's renewals).
	NextContractID string    `json:"next_contract_id,omitempty"`
	UsageSync      bool      `json:"usage_sync"`
	TicketSync     bool      `json:"ticket_sync"`
	Status         string    `json:"status"` // succeeded|failed|partial|held|skipped, "never" before the first pass, or "removed"
	LastAttempt    time.Time `json:"last_attempt,omitzero"`
	LastSuccess    time.Time `json:"last_success,omitzero"`
	Error          string    `json:"error,omitempty"`
	Hint           string    `json:"hint,omitempty"`
	RunID          string    `json:"run_id,omitempty"`
	Updated        int       `json:"updated"`
	Unchanged      int       `json:"unchanged"`
	Held           int       `json:"held"`
	Failed         int       `json:"failed"`
	// Tickets is the customer's ticket sync as of the last ticket pass;
	// absent before the first.
	Tickets *TicketStatus `json:"tickets,omitempty"`
}

// StatusRemoved is the status of a customer with a recorded status that
// the loaded export no longer maps: whatever its last sync's result, no
// pass syncs it and nothing about it can be fixed, so it is neither failed
// nor held (the psa_sync_customers gauge does not count it either).
const StatusRemoved = "removed"

// Customers returns every customer of the running export, and every customer
// with a recorded status, with their last status. Customers that have not
// been synced yet have status "never". A customer whose mapping was removed
// has status "removed" (StatusRemoved), without the hint of its last sync,
// and reports usage_sync false; it keeps its last status while no export is
// loaded. Customers with a ticket pass behind them carry their ticket sync
// status; for one the loaded export leaves out of ticket sync, its result
// is TicketResultOff, its open tickets counted as left open, with a notice
// about them instead of its last pass's notices (ticketSyncOff). A removed customer that had
// ticket sync only (no usage status) is listed as removed too.
func (d *Daemon) Customers() ([]apiCustomer, error) { return customersOf(d.db, d.Export()) }

// StoredCustomers is Daemon.Customers read from db with doc as the loaded
// export (nil: none), for status run by hand while psa-syncd is stopped,
// which opens the state database and reads the export alone.
func StoredCustomers(db *state.DB, doc *export.Document) ([]CustomerView, error) {
	return customersOf(db, doc)
}

func customersOf(db *state.DB, doc *export.Document) ([]apiCustomer, error) {
	statuses, err := db.CustomerStatuses()
	if err != nil {
		return nil, fmt.Errorf("daemon: reading customer status: %w", err)
	}
	type key struct{ source, id string }
	byKey := make(map[key]*apiCustomer)
	var out []*apiCustomer
	for _, cs := range statuses {
		c := &apiCustomer{
			Source: cs.Source, CustomerID: cs.CustomerID, CustomerName: cs.CustomerName,
			CompanyID: cs.CompanyID, ContractID: cs.ContractID,
			Status: cs.Result, LastAttempt: cs.LastAttempt, LastSuccess: cs.LastSuccess,
			Error: cs.Error, Hint: cs.Hint, RunID: cs.RunID,
			Updated: cs.Updated, Unchanged: cs.Unchanged, Held: cs.Held, Failed: cs.Failed,
		}
		if doc == nil {
			c.UsageSync, c.TicketSync = cs.UsageSync, cs.TicketSync
		}
		byKey[key{cs.Source, cs.CustomerID}] = c
		out = append(out, c)
	}
	if doc != nil {
		mapped := make(map[*apiCustomer]bool, len(doc.CustomerMappings))
		for _, m := range doc.CustomerMappings {
			c, ok := byKey[key{m.Source, m.CustomerID}]
			if !ok {
				c = &apiCustomer{Source: m.Source, CustomerID: m.CustomerID, Status: "never"}
				out = append(out, c)
			}
			c.CustomerName, c.CompanyID, c.ContractID, c.NextContractID = m.CustomerName, m.CompanyID, m.ContractID, m.NextContractID
			c.UsageSync, c.TicketSync = m.UsageSync, m.TicketSync
			mapped[c] = true
		}
		for _, c := range out {
			if !mapped[c] {
				c.Status, c.Hint = StatusRemoved, ""
			}
		}
	}
	ticketRec, err := readTicketRecord(db)
	if err != nil {
		return nil, err
	}
	var ticketSync map[string]bool
	if doc != nil {
		ticketSync = map[string]bool{}
		for _, tc := range ticketCustomers(doc) {
			ticketSync[ticketStatusKey(tc.Source, tc.CustomerID)] = true
		}
		// A customer with ticket sync only has no usage status: once its
		// mapping is removed, only its ticket status is left, and its
		// tickets stay open in the PSA.
		listed := make(map[string]bool, len(out))
		for _, c := range out {
			listed[ticketStatusKey(c.Source, c.CustomerID)] = true
		}
		for key := range ticketRec.Customers {
			if listed[key] {
				continue
			}
			source, id, _ := strings.Cut(key, "/")
			m := ticketRec.Mappings[key]
			out = append(out, &apiCustomer{Source: source, CustomerID: id, CustomerName: m.CustomerName,
				CompanyID: m.CompanyID, ContractID: m.ContractID, Status: StatusRemoved})
		}
	}
	for _, c := range out {
		key := ticketStatusKey(c.Source, c.CustomerID)
		s, ok := ticketRec.Customers[key]
		if !ok {
			continue
		}
		st := *s
		if ticketSync != nil && !ticketSync[key] {
			st = ticketSyncOff(st)
		}
		c.Tickets = &st
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].CustomerID < out[j].CustomerID
	})
	res := make([]apiCustomer, len(out))
	for i, c := range out {
		res[i] = *c
	}
	return res, nil
}

func (d *Daemon) handleCustomers(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "status", "usage_sync") {
		return
	}
	q := r.URL.Query()
	status := q.Get("status")
	if err := CheckStatusFilter(status); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var usage *bool
	if v := q.Get("usage_sync"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid usage_sync filter %q: want true or false", v))
			return
		}
		usage = &b
	}
	all, err := d.Customers()
	if err != nil {
		d.stateFailed(w, "reading customers", err)
		return
	}
	out := make([]apiCustomer, 0, len(all))
	for _, c := range all {
		if !CustomerMatches(status, c) {
			continue
		}
		if usage != nil && c.UsageSync != *usage {
			continue
		}
		out = append(out, c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": out})
}

// syncBodyShape is the body POST /api/v1/sync takes, as its errors spell it.
const syncBodyShape = `{"customer": "<source customer id>", "approve": true|false, "service": "<PSA service id>", "units": <reviewed desired units>, "surge": "<review code of the lines held for a surge>", "period": "YYYY-MM"} or no body`

// requestPeriod parses the period of a sync or plan request ("" is none)
// and checks that a pass may sync it now; writes says whether the pass
// would write. It writes the 400 answer and returns false when not.
func (d *Daemon) requestPeriod(w http.ResponseWriter, v string, writes bool) (source.Period, bool) {
	if v == "" {
		return source.Period{}, true
	}
	p, err := source.ParsePeriod(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid period %q: want a billing month, YYYY-MM", v))
		return source.Period{}, false
	}
	if err := d.CheckPeriod(p, writes); err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, usage.ErrPeriodRefused) {
			status = http.StatusBadRequest
		}
		writeError(w, status, err.Error())
		return source.Period{}, false
	}
	return p, true
}

func (d *Daemon) handleSync(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Customer string `json:"customer"`
		Approve  bool   `json:"approve"`
		Service  string `json:"service"`
		Units    *int64 `json:"units"`
		Surge    string `json:"surge"`
		Period   string `json:"period"`
	}
	if err := decodeBody(r, &body); err != nil && !errors.Is(err, errEmptyBody) {
		writeBodyError(w, syncBodyShape, err)
		return
	}
	req := SyncRequest{Customer: body.Customer, Approve: body.Approve, Service: body.Service, Units: body.Units, Surge: body.Surge, Trigger: usage.TriggerAPI,
		Who: askedBy(r, body.Approve)}
	if msg := checkApproval(req); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	var ok bool
	if req.Period, ok = d.requestPeriod(w, body.Period, d.writesEnabled()); !ok {
		return
	}
	doc := d.Export()
	if doc == nil {
		writeError(w, http.StatusServiceUnavailable, "no valid mapping export loaded yet")
		return
	}
	if body.Customer != "" && !exportHasCustomer(doc, body.Customer) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("customer %q is not in the mapping export", body.Customer))
		return
	}
	if req.Approve && !d.writesEnabled() {
		// The pass would be a dry run: the caller would take the held
		// line for written.
		writeError(w, http.StatusConflict, "not approved: "+writesOffNotice)
		return
	}
	t := d.RequestPass(req)
	w.Header().Set("Location", "/api/v1/runs/"+t.ID)
	writeJSON(w, http.StatusAccepted, t)
}

func exportHasCustomer(doc *export.Document, id string) bool {
	for _, m := range doc.CustomerMappings {
		if m.CustomerID == id {
			return true
		}
	}
	return false
}

// RunView is a run as the HTTP API and psa-syncd sync -json show it.
type RunView struct {
	ID        int64     `json:"id"`
	Trigger   string    `json:"trigger"`
	DryRun    bool      `json:"dry_run"`
	Customer  string    `json:"customer,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished,omitzero"`
	Result    string    `json:"result"`
	Error     string    `json:"error,omitempty"`
	Period    string    `json:"period,omitempty"`
	Customers int       `json:"customers"`
	Updated   int       `json:"updated"`
	Unchanged int       `json:"unchanged"`
	Held      int       `json:"held"`
	Failed    int       `json:"failed"`
	Requests  int       `json:"requests"`
	// Note is the operator's note of a run that records the quantities
	// of a month set by hand (trigger by_hand), or who asked for a pass
	// (SyncRequest.Who).
	Note string `json:"note,omitempty"`
	// Progress is set while the run is the pass in progress.
	Progress *RunProgress `json:"progress,omitempty"`
}

// NewRunView returns the API view of r.
func NewRunView(r state.Run) RunView {
	return RunView{
		ID: r.ID, Trigger: r.Trigger, DryRun: r.DryRun, Customer: r.Customer, Started: r.Started, Finished: r.Finished,
		Result: r.Result, Error: r.Error, Period: r.Period, Customers: r.Customers,
		Updated: r.Updated, Unchanged: r.Unchanged, Held: r.Held, Failed: r.Failed, Requests: r.Requests, Note: r.Note,
	}
}

// runsPageSize is the largest number of runs GET /api/v1/runs answers
// with at once; its "next" link pages on.
const runsPageSize = 1000

// handleRuns answers a page of the runs, newest first: limit (default 50,
// at most runsPageSize) runs with an id below before (when given), and,
// when there are older runs, "next": the path and query of the page after,
// as GET /api/v1/ledger pages.
func (d *Daemon) handleRuns(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "limit", "before") {
		return
	}
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > runsPageSize {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid limit %q: want a number from 1 to %d", v, runsPageSize))
			return
		}
		limit = n
	}
	var before int64
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid before %q: want a run id, a positive number", v))
			return
		}
		before = n
	}
	// One more tells whether there is a next page.
	runs, err := d.db.RunsBefore(before, limit+1)
	if err != nil {
		d.stateFailed(w, "reading runs", err)
		return
	}
	resp := map[string]any{}
	if len(runs) > limit {
		runs = runs[:limit]
		q.Set("before", strconv.FormatInt(runs[limit-1].ID, 10))
		resp["next"] = r.URL.Path + "?" + q.Encode()
	}
	out := make([]RunView, len(runs))
	for i, run := range runs {
		out[i] = d.runView(run)
	}
	resp["runs"] = out
	writeJSON(w, http.StatusOK, resp)
}

func (d *Daemon) handleRun(w http.ResponseWriter, r *http.Request) {
	// Checked on a standby too, before it forwards a sync request's
	// lookup to the active instance (which may be older or newer).
	if !knownQuery(w, r) {
		return
	}
	id := r.PathValue("id")
	if t, ok := d.Ticket(id); ok {
		resp := map[string]any{"request": t}
		if t.RunID != 0 {
			if run, ok, err := d.db.Run(t.RunID); err == nil && ok {
				resp["run"] = d.runView(run)
			}
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	if isTicketID(id) && !d.Active() {
		// Sync requests live in the memory of the active instance, which
		// queued them (a standby forwards POST /api/v1/sync there): a
		// client polling through a Service that reaches this standby gets
		// the active instance's answer. The lookup needs no token, and
		// goes with the client's only when it is the API token (a wrong
		// one counts here, against the client's address): the active
		// instance, which looks at a read's token when its slots are
		// scarce (takeAPISlot), would count a wrong one against this
		// standby's address, and refuse what it forwards for everyone.
		// A reader's basic credentials, which the listener checked, go
		// too: the active instance's listener lets nothing through
		// without them, and does not count them as a wrong token.
		if !d.hasToken(r) && !d.listenerCheckedBasic(r) {
			r.Header.Del("Authorization")
		}
		d.forwardToActive(w, r, d.forwardTimeout)
		return
	}
	if isTicketID(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("sync request %q is not known to this psa-syncd, the active instance: sync requests are "+
			"kept in the memory of the process that queued them, so a restart or a failover forgets them; GET /api/v1/runs shows whether "+
			"its pass ran (or was interrupted), and POST /api/v1/sync asks for another", id))
		return
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found", id))
		return
	}
	run, ok, err := d.db.Run(n)
	if err != nil {
		d.stateFailed(w, "reading run", err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"run": d.runView(run)})
}

// handlePlan shows the plan of the last pass. It never asks the PSA: that
// would let anyone who reaches the listener spend the PSA's request budget.
func (d *Daemon) handlePlan(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "customer") {
		return
	}
	doc := d.Export()
	if doc == nil {
		writeError(w, http.StatusServiceUnavailable, "no valid mapping export loaded yet")
		return
	}
	customer := r.URL.Query().Get("customer")
	if customer != "" && !exportHasCustomer(doc, customer) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("customer %q is not in the mapping export", customer))
		return
	}
	p, ok := d.LastPlan(customer)
	if !ok {
		writeError(w, http.StatusNotFound, "no plan yet: no pass has run since psa-syncd started; POST /api/v1/plan with the bearer token computes one now")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = WritePlanJSON(w, p)
}

// handleFreshPlan computes a plan now, reading the usage source and the
// PSA. It is rate-limited to one at a time and one per freshPlanInterval.
func (d *Daemon) handleFreshPlan(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Customer string `json:"customer"`
		Period   string `json:"period"`
	}
	if err := decodeBody(r, &body); err != nil && !errors.Is(err, errEmptyBody) {
		writeBodyError(w, `{"customer": "<source customer id>", "period": "YYYY-MM"} or no body`, err)
		return
	}
	period, ok := d.requestPeriod(w, body.Period, false)
	if !ok {
		return
	}
	doc := d.Export()
	if doc == nil || !d.Ready() {
		writeError(w, http.StatusServiceUnavailable, "no valid mapping export loaded yet")
		return
	}
	if body.Customer != "" && !exportHasCustomer(doc, body.Customer) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("customer %q is not in the mapping export", body.Customer))
		return
	}
	if !d.freshPlans.admit(w, d.now(), "a plan is computed", ", or GET /api/v1/plan for the last pass's plan") {
		return
	}
	defer d.freshPlans.done()
	// Reading every contract can take longer than an ordinary answer.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(freshPlanWriteTimeout))
	p, err := d.Plan(r.Context(), usage.PassOptions{Customer: body.Customer, Trigger: usage.TriggerAPI, DryRun: true, Period: period})
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, usage.ErrPeriodRefused) {
			// The month ended between the check and the plan.
			status = http.StatusBadRequest
		}
		writeError(w, status, "computing plan: "+err.Error())
		return
	}
	if body.Customer == "" && body.Period == "" && d.Active() {
		// It becomes the last plan (GET /api/v1/plan, the status page),
		// kept in the state database, unless a pass that ended meanwhile
		// recorded a newer one; a standby's would replace the active
		// instance's there.
		d.recordFreshPlan(p)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = WritePlanJSON(w, p)
}

// freshPlanLimiter lets one fresh plan run at a time, and at most one start
// per freshPlanInterval.
type freshPlanLimiter struct {
	mu      sync.Mutex
	running bool
	last    time.Time
}

// start reserves a fresh plan at now, or says how long to wait.
func (l *freshPlanLimiter) start(now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running {
		return freshPlanInterval, false
	}
	if !l.last.IsZero() {
		if since := now.Sub(l.last); since >= 0 && since < freshPlanInterval {
			return freshPlanInterval - since, false
		}
	}
	l.running, l.last = true, now
	return 0, true
}

// admit starts a run at now, or answers 429 with Retry-After: "<what> at
// most once every <interval>: try again in <wait><hint>".
func (l *freshPlanLimiter) admit(w http.ResponseWriter, now time.Time, what, hint string) bool {
	wait, ok := l.start(now)
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)+1))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%s at most once every %s: try again in %s%s",
			what, freshPlanInterval, wait.Round(time.Second), hint))
	}
	return ok
}

func (l *freshPlanLimiter) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = false
}

// IntentView is an open intent in GET /api/v1/intents and in
// `psa-syncd status`: a write whose outcome is not settled yet.
type IntentView struct {
	ID            int64     `json:"id"`
	RunID         int64     `json:"run_id"`
	System        string    `json:"system"`
	Source        string    `json:"source"`
	CustomerID    string    `json:"customer_id"`
	ContractID    string    `json:"contract_id"`
	ServiceID     string    `json:"service_id"`
	Before        *int64    `json:"before"` // null when it was not known
	After         int64     `json:"after"`
	EffectiveDate string    `json:"effective_date"`
	Created       time.Time `json:"created"`
}

// NewIntentView converts a state intent for the API.
func NewIntentView(in state.Intent) IntentView {
	v := IntentView{
		ID: in.ID, RunID: in.RunID, System: string(in.System), Source: in.Source, CustomerID: in.CustomerID,
		ContractID: in.ContractID, ServiceID: in.ServiceID, After: in.After,
		EffectiveDate: in.EffectiveDate.Format(time.DateOnly), Created: in.Created,
	}
	if in.BeforeKnown {
		b := in.Before
		v.Before = &b
	}
	return v
}

func (d *Daemon) handleIntents(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r) {
		return
	}
	open, err := d.OpenIntents()
	if err != nil {
		d.stateFailed(w, "reading open intents", err)
		return
	}
	out := make([]IntentView, 0, len(open))
	for _, in := range open {
		out = append(out, NewIntentView(in))
	}
	writeJSON(w, http.StatusOK, map[string]any{"intents": out})
}

func (d *Daemon) handleResolve(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid intent id %q: want a positive number", r.PathValue("id")))
		return
	}
	var body struct {
		Posted *bool  `json:"posted"`
		Note   string `json:"note"`
	}
	const want = `{"posted": true|false, "note": "<who checked what>"}`
	if err := decodeBody(r, &body); err != nil {
		writeBodyError(w, want, err)
		return
	}
	if body.Posted == nil {
		writeError(w, http.StatusBadRequest, "invalid request body: want "+want+": posted is required")
		return
	}
	// A running pass holds the answer back: wait for it as long as the
	// client does, at most resolvePassWait, and record nothing after that.
	ctx, cancel := context.WithTimeout(r.Context(), resolvePassWait)
	defer cancel()
	in, err := d.ResolveIntent(ctx, id, *body.Posted, body.Note, recordingUser(r))
	var se *StandbyError
	var ne *NoLongerActiveError
	switch {
	case errors.Is(err, usage.ErrIntentNotOpen) || errors.Is(err, state.ErrRefused):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		w.Header().Set("Retry-After", strconv.Itoa(int(resolvePassWait/time.Second)))
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("a pass is running, and intent %d was not resolved within %s: nothing was recorded; send the answer again once the pass ends",
			id, resolvePassWait))
		return
	case errors.As(err, &se) || errors.As(err, &ne):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, strings.TrimPrefix(err.Error(), "daemon: "))
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"intent": NewIntentView(in), "posted": *body.Posted})
}

func (d *Daemon) handleTicketIntents(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r) {
		return
	}
	open, err := d.TicketIntents()
	if err != nil {
		d.stateFailed(w, "reading open ticket creates", err)
		return
	}
	out := make([]TicketIntentView, 0, len(open))
	for _, rec := range open {
		out = append(out, NewTicketIntentView(rec))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tickets": out})
}

// handleResolveTicket records an operator's answer for a ticket create
// kept open (Daemon.ReleaseTicketCreate): not posted. posted true is
// refused: a ticket that is in the PSA is adopted once the search finds
// it, and psa-syncd could not follow one its API user cannot see.
func (d *Daemon) handleResolveTicket(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	var body struct {
		Posted *bool  `json:"posted"`
		Note   string `json:"note"`
	}
	const want = `{"posted": false, "note": "<who checked what>"}`
	if err := decodeBody(r, &body); err != nil {
		writeBodyError(w, want, err)
		return
	}
	switch {
	case body.Posted == nil:
		writeError(w, http.StatusBadRequest, "invalid request body: want "+want+": posted is required")
		return
	case *body.Posted:
		writeError(w, http.StatusBadRequest, NotPostedOnly)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), resolvePassWait)
	defer cancel()
	rec, err := d.ReleaseTicketCreate(ctx, ref, body.Note, recordingUser(r))
	switch {
	case errors.Is(err, tickets.ErrCreateNotOpen):
		writeError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), "state: "))
		return
	case writeHeldAnswer(w, err, fmt.Sprintf("a ticket pass is running, and ticket create %s was not resolved within %s: nothing was recorded; "+
		"send the answer again once the pass ends", ref, resolvePassWait)):
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": NewTicketIntentView(rec), "posted": false})
}

// writeHeldAnswer writes the 503 of an operator's request that err says
// was not recorded, and reports whether it did: a running pass held it
// past resolvePassWait (busy says what was not done), or this instance is
// a standby or lost the leadership lock.
func writeHeldAnswer(w http.ResponseWriter, err error, busy string) bool {
	var se *StandbyError
	var ne *NoLongerActiveError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		w.Header().Set("Retry-After", strconv.Itoa(int(resolvePassWait/time.Second)))
		writeError(w, http.StatusServiceUnavailable, busy)
	case errors.As(err, &se) || errors.As(err, &ne):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, strings.TrimPrefix(err.Error(), "daemon: "))
	default:
		return false
	}
	return true
}

// NotPostedOnly is the refusal of a "posted" answer for a ticket create.
const NotPostedOnly = "a ticket create is resolved only as not posted: a ticket that is in the PSA is adopted by the next ticket pass " +
	"once the search by reference finds it (give the API user access to the queue or board it is in); psa-syncd cannot follow a ticket it cannot find"

// TicketIntentView is a ticket create whose outcome is not settled, in GET
// /api/v1/tickets/intents and `psa-syncd status`, or one an operator
// resolved, as the API answers it.
type TicketIntentView struct {
	Ref        string    `json:"ref"`
	System     string    `json:"system"`
	Source     string    `json:"source"`
	CustomerID string    `json:"customer_id"`
	AlertKey   string    `json:"alert_key"`
	CompanyID  string    `json:"company_id"`
	Title      string    `json:"title"`
	Created    time.Time `json:"created"`
	// HeldSince is when a ticket pass first held the create for an
	// operator (tickets.Record.HeldSince): its search by reference found
	// nothing and could not be checked, so only the search finding it or
	// `psa-syncd resolve -ticket REF -not-posted` settles it. Absent while
	// the create is within settle_time, or its search failed.
	HeldSince time.Time `json:"held_since,omitzero"`
}

// NewTicketIntentView is r's TicketIntentView.
func NewTicketIntentView(r tickets.Record) TicketIntentView {
	return TicketIntentView{Ref: r.Ref, System: r.System, Source: r.Source, CustomerID: r.CustomerID, AlertKey: r.AlertKey,
		CompanyID: r.CompanyID, Title: r.Title, Created: r.Created, HeldSince: r.HeldSince}
}

// handleSetByHand records that the quantities of the month that has
// ended, {period}, were set in the PSA by hand (Daemon.RecordSetByHand).
func (d *Daemon) handleSetByHand(w http.ResponseWriter, r *http.Request) {
	p, err := source.ParsePeriod(r.PathValue("period"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid period %q: want a billing month, YYYY-MM", r.PathValue("period")))
		return
	}
	var body struct {
		Note string `json:"note"`
	}
	const want = `{"note": "<who set which quantities by hand>"}`
	if err := decodeBody(r, &body); err != nil {
		writeBodyError(w, want, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), resolvePassWait)
	defer cancel()
	run, err := d.RecordSetByHand(ctx, p, body.Note, recordingUser(r))
	switch {
	case errors.Is(err, usage.ErrNothingSetByHand):
		writeError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), "daemon: "))
		return
	case writeHeldAnswer(w, err, fmt.Sprintf("a pass is running, and it did not end within %s: nothing was recorded; send the request again once the pass ends",
		resolvePassWait)):
		return
	case errors.Is(err, usage.ErrPeriodRefused) || errors.Is(err, usage.ErrBadByHandNote):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "daemon: "))
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"run": NewRunView(run)})
}

// writeJSON writes v as indented JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError writes {"error": msg} with the given status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// WritePlanJSON writes p as indented JSON, the format of GET /api/v1/plan and
// psa-syncd plan --json. It streams the changes (see Plan.WriteJSON).
func WritePlanJSON(w io.Writer, p *usage.Plan) error {
	bw := bufio.NewWriter(w)
	if err := p.WriteJSON(bw, "", "  "); err != nil {
		return err
	}
	if err := bw.WriteByte('\n'); err != nil {
		return err
	}
	return bw.Flush()
}
