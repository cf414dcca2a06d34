package daemon

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// maxRequestBody bounds the body of POST /api/v1/sync.
const maxRequestBody = 64 << 10

// Handler returns the daemon's HTTP API on a private mux:
//
//	GET  /metrics               Prometheus metrics (the daemon's own registry)
//	GET  /-/healthy             200 while the process runs
//	GET  /-/ready               200 once the config and a valid mapping export are loaded (on a standby too), else 503
//	POST /-/reload              reload config and export (bearer token)
//	GET  /api/v1/customers      per-customer status; ?status=succeeded|failed&usage_sync=true|false
//	POST /api/v1/sync           queue a pass, optionally {"customer": "..."} (bearer token); 202 {"run_id": ...}
//	GET  /api/v1/runs           recent runs, newest first; ?limit=N
//	GET  /api/v1/runs/{id}      one run (a state run id) or sync request (the run_id from POST /api/v1/sync)
//	GET  /api/v1/plan           the changes the next pass would make; ?customer=ID
//	GET  /api/v1/intents        writes whose outcome is not settled yet (Kaseya BMS: awaiting an operator)
//	POST /api/v1/intents/{id}/resolve  an operator's answer {"posted": true|false, "note": "..."} (bearer token)
//	GET  /api/v1/backup         a consistent copy of the SQLite state database (bearer token)
//
// Mutating endpoints require "Authorization: Bearer <web.api_token>". When no
// token is configured they are refused with 403. A standby (another
// psa-syncd holds the shared state database's leadership lock) serves the
// read-only endpoints and forwards sync and resolve to the active instance
// (at its state.advertise_url), or refuses them with 503 naming it.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{
		Registry: d.registry,
		ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelError),
	}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "psa-syncd is Healthy.")
	})
	mux.HandleFunc("GET /-/ready", d.handleReady)
	mux.Handle("POST /-/reload", d.requireToken(http.HandlerFunc(d.handleReload)))
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
	})
	mux.HandleFunc("GET /api/v1/customers", d.handleCustomers)
	mux.Handle("POST /api/v1/sync", d.requireToken(d.requireActive(http.HandlerFunc(d.handleSync))))
	mux.HandleFunc("GET /api/v1/runs", d.handleRuns)
	mux.HandleFunc("GET /api/v1/runs/{id}", d.handleRun)
	mux.HandleFunc("GET /api/v1/plan", d.handlePlan)
	mux.HandleFunc("GET /api/v1/intents", d.handleIntents)
	mux.Handle("POST /api/v1/intents/{id}/resolve", d.requireToken(d.requireActive(http.HandlerFunc(d.handleResolve))))
	mux.Handle("GET /api/v1/backup", d.requireToken(http.HandlerFunc(d.handleBackup)))
	return mux
}

// requireToken lets a request through only with the configured bearer token.
func (d *Daemon) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := string(d.cfg.Load().Web.APIToken)
		if want == "" {
			writeError(w, http.StatusForbidden, "mutating API endpoints are disabled: configure web.api_token (or web.api_token_file, or the PSA_SYNCD_API_TOKEN environment variable) to enable them")
			return
		}
		got, ok := bearerToken(r)
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="psa-syncd"`)
			msg := "missing bearer token"
			if ok {
				msg = "invalid bearer token"
			}
			writeError(w, http.StatusUnauthorized, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// forwardedHeader marks a request that a standby forwarded to the active
// instance, so that it is never forwarded twice.
const forwardedHeader = "X-Psa-Syncd-Forwarded-By"

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
		if info, held, err := d.db.Leader(); err == nil && held && info.URL != "" && r.Header.Get(forwardedHeader) == "" {
			d.forward(w, r, info)
			return
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, strings.TrimPrefix((&StandbyError{Active: d.activeInstance()}).Error(), "daemon: "))
	})
}

// forward sends r, token and body included, to the active instance and
// relays its answer.
func (d *Daemon) forward(w http.ResponseWriter, r *http.Request, active state.LeaderInfo) {
	target, err := url.Parse(active.URL)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("this psa-syncd is a standby, and the active instance's URL %q is not valid: %v", active.URL, err))
		return
	}
	host, _ := os.Hostname()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(forwardedHeader, host)
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("this psa-syncd is a standby and could not reach the active instance %s: %v", active, err))
		},
		ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelWarn),
	}
	d.logger.Debug("Forwarding a request to the active instance", "path", r.URL.Path, "active", active.String())
	proxy.ServeHTTP(w, r)
}

// handleBackup streams a consistent copy of the SQLite state database,
// written next to it and removed afterwards.
func (d *Daemon) handleBackup(w http.ResponseWriter, _ *http.Request) {
	if d.db.Driver() != state.DriverSQLite {
		writeError(w, http.StatusNotImplemented, strings.TrimPrefix(state.ErrBackupUnsupported.Error(), "state: "))
		return
	}
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
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Disposition", `attachment; filename="`+state.FileName+`"`)
	if _, err := io.Copy(w, f); err != nil {
		d.logger.Warn("Sending a backup failed", "err", err)
	}
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func (d *Daemon) handleReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !d.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "psa-syncd is not ready: no valid mapping export loaded yet.")
		return
	}
	if !d.Active() {
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

// apiCustomer is one customer in GET /api/v1/customers.
type apiCustomer struct {
	Source       string    `json:"source"`
	CustomerID   string    `json:"customer_id"`
	CustomerName string    `json:"customer_name,omitempty"`
	CompanyID    string    `json:"company_id,omitempty"`
	ContractID   string    `json:"contract_id,omitempty"`
	UsageSync    bool      `json:"usage_sync"`
	TicketSync   bool      `json:"ticket_sync"`
	Status       string    `json:"status"` // succeeded|failed|partial|held|skipped, or "never" before the first pass
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	Error        string    `json:"error,omitempty"`
	Hint         string    `json:"hint,omitempty"`
	RunID        string    `json:"run_id,omitempty"`
	Updated      int       `json:"updated"`
	Unchanged    int       `json:"unchanged"`
	Held         int       `json:"held"`
	Failed       int       `json:"failed"`
}

// Customers returns every customer of the running export, and every customer
// with a recorded status, with their last status. Customers that have not
// been synced yet have status "never". A customer whose mapping was removed
// keeps its last status and reports usage_sync false.
func (d *Daemon) Customers() ([]apiCustomer, error) {
	statuses, err := d.db.CustomerStatuses()
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
		if d.exp.Load() == nil {
			c.UsageSync, c.TicketSync = cs.UsageSync, cs.TicketSync
		}
		byKey[key{cs.Source, cs.CustomerID}] = c
		out = append(out, c)
	}
	if doc := d.Export(); doc != nil {
		for _, m := range doc.CustomerMappings {
			c, ok := byKey[key{m.Source, m.CustomerID}]
			if !ok {
				c = &apiCustomer{Source: m.Source, CustomerID: m.CustomerID, Status: "never"}
				out = append(out, c)
			}
			c.CustomerName, c.CompanyID, c.ContractID = m.CustomerName, m.CompanyID, m.ContractID
			c.UsageSync, c.TicketSync = m.UsageSync, m.TicketSync
		}
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

// statusMatches reports whether a customer's last result matches the status
// filter: "failed" includes partial results (some lines failed).
func statusMatches(filter, result string) bool {
	switch filter {
	case "succeeded":
		return result == "succeeded"
	case "failed":
		return result == "failed" || result == "partial"
	}
	return true
}

func (d *Daemon) handleCustomers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && status != "succeeded" && status != "failed" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid status filter %q: want succeeded or failed", status))
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
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]apiCustomer, 0, len(all))
	for _, c := range all {
		if status != "" && !statusMatches(status, c.Status) {
			continue
		}
		if usage != nil && c.UsageSync != *usage {
			continue
		}
		out = append(out, c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": out})
}

func (d *Daemon) handleSync(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Customer string `json:"customer"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return
	}
	if len(strings.TrimSpace(string(data))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, `invalid request body: want {"customer": "<source customer id>"} or no body: `+err.Error())
			return
		}
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
	t := d.RequestSync(body.Customer, TriggerAPI)
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
}

// NewRunView returns the API view of r.
func NewRunView(r state.Run) RunView {
	return RunView{
		ID: r.ID, Trigger: r.Trigger, DryRun: r.DryRun, Customer: r.Customer, Started: r.Started, Finished: r.Finished,
		Result: r.Result, Error: r.Error, Period: r.Period, Customers: r.Customers,
		Updated: r.Updated, Unchanged: r.Unchanged, Held: r.Held, Failed: r.Failed, Requests: r.Requests,
	}
}

func (d *Daemon) handleRuns(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid limit %q: want a number from 1 to 1000", v))
			return
		}
		limit = n
	}
	runs, err := d.db.Runs(limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading runs: "+err.Error())
		return
	}
	out := make([]RunView, len(runs))
	for i, run := range runs {
		out[i] = NewRunView(run)
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (d *Daemon) handleRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if t, ok := d.Ticket(id); ok {
		resp := map[string]any{"request": t}
		if t.RunID != 0 {
			if run, ok, err := d.db.Run(t.RunID); err == nil && ok {
				resp["run"] = NewRunView(run)
			}
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found", id))
		return
	}
	run, ok, err := d.db.Run(n)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading run: "+err.Error())
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"run": NewRunView(run)})
}

func (d *Daemon) handlePlan(w http.ResponseWriter, r *http.Request) {
	if !d.Ready() {
		writeError(w, http.StatusServiceUnavailable, "no valid mapping export loaded yet")
		return
	}
	o := PassOptions{Customer: r.URL.Query().Get("customer"), Trigger: TriggerAPI, DryRun: true}
	p, err := d.Plan(r.Context(), o)
	if err != nil {
		writeError(w, http.StatusBadGateway, "computing plan: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = WritePlanJSON(w, p)
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

func (d *Daemon) handleIntents(w http.ResponseWriter, _ *http.Request) {
	open, err := d.OpenIntents()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading open intents: "+err.Error())
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
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Posted == nil {
		msg := `invalid request body: want {"posted": true|false, "note": "<who checked what>"}`
		if err != nil {
			msg += ": " + err.Error()
		}
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	in, err := d.ResolveIntent(id, *body.Posted, body.Note)
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"intent": NewIntentView(in), "posted": *body.Posted})
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
// psa-syncd plan --json.
func WritePlanJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}
