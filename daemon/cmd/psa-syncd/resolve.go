package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

func cmdResolve(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf        commonFlags
		id        int64
		ref       string
		posted    bool
		notPosted bool
		noteText  string
		rf        remoteFlags
	)
	fs := newFlagSet(e, "resolve", "Settle a write whose outcome psa-syncd cannot find out by reading the PSA (a Kaseya\n"+
		"BMS line post whose answer was lost, or that was in flight when psa-syncd stopped; a\n"+
		"ConnectWise addition whose answer was lost and that the read still does not show).\n"+
		"Such a line is not written again until an operator checks the contract in the PSA\n"+
		"and answers: -posted (the line is there; its units go to the ledger) or -not-posted\n"+
		"(it is not; the next pass posts it). `psa-syncd status` lists the open intents and\n"+
		"the failed customers' hints name what to look for. Nothing is sent to the PSA: without\n"+
		"-web.url the answer is recorded in the state database (as the active instance, with\n"+
		"PostgreSQL), reading only state_dir and the state section of the config file, so that it\n"+
		"runs by hand while psa-syncd is stopped.\n\n"+
		"With -ticket, it settles a ticket create whose answer was lost and that the search by\n"+
		"reference does not find, while it cannot be checked on another ticket of the customer\n"+
		"(the customer's ticket error names it): -not-posted (no ticket of that reference is in\n"+
		"the PSA; the next ticket pass files the alert). A ticket that is there is adopted once\n"+
		"the search finds it: give the API user access to its queue or board.")
	cf.register(fs)
	fs.Int64Var(&id, "intent", 0, "The open intent's `id`, from `psa-syncd status` or the customer's hint.")
	fs.StringVar(&ref, "ticket", "", "The reference (\"sc:...\" or \"scs:...\") of a ticket create, from the customer's ticket error; with -not-posted.")
	fs.BoolVar(&posted, "posted", false, "The line is in the PSA (delete any duplicate first).")
	fs.BoolVar(&notPosted, "not-posted", false, "The line is not in the PSA.")
	fs.StringVar(&noteText, "note", "", "Recorded with the intent: who checked what, e.g. \"jane: line 4711 in BMS\".")
	rf.register(fs)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	switch {
	case ref != "" && id != 0:
		fmt.Fprintln(e.stderr, "psa-syncd: give one of -intent and -ticket")
		return 2
	case ref != "" && posted:
		fmt.Fprintf(e.stderr, "psa-syncd: -ticket takes -not-posted only: %s\n", daemon.NotPostedOnly)
		return 2
	case ref == "" && id < 1:
		fmt.Fprintln(e.stderr, "psa-syncd: -intent or -ticket is required: the id of an open intent (see psa-syncd status), or the reference of a ticket create the customer's ticket error names")
		return 2
	case posted == notPosted:
		fmt.Fprintln(e.stderr, "psa-syncd: give exactly one of -posted and -not-posted")
		return 2
	}
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	if ref != "" {
		return resolveTicket(ctx, e, &cf, api, ref, noteText)
	}
	var in daemon.IntentView
	if api != nil {
		var out struct {
			Intent daemon.IntentView `json:"intent"`
		}
		err = api.post(ctx, "/api/v1/intents/"+strconv.FormatInt(id, 10)+"/resolve", map[string]any{"posted": posted, "note": noteText}, &out)
		in = out.Intent
	} else {
		// The answer is recorded in the state database alone: no secret
		// but the state's is read, so that it runs by hand while
		// psa-syncd is stopped, where the service's other secrets may not
		// be readable. A mistyped state_dir gets no new empty database.
		h, code := leadByHand(ctx, e, &cf, "resolve", daemon.LoadState)
		if code != 0 {
			return code
		}
		defer h.release(e, &rc)
		var st state.Intent
		if st, err = h.ResolveIntent(id, posted, noteText); err == nil {
			in = daemon.NewIntentView(st)
		}
	}
	if err != nil {
		return requestFailed(e, err)
	}
	if posted {
		fmt.Fprintf(e.stdout, "Intent %d resolved as posted: contract %s service %s holds %d units from %s (recorded in the ledger).\n",
			in.ID, in.ContractID, in.ServiceID, in.After, in.EffectiveDate)
	} else {
		fmt.Fprintf(e.stdout, "Intent %d resolved as not posted: the next pass posts %d units of service %s on contract %s.\n",
			in.ID, in.After, in.ServiceID, in.ContractID)
	}
	return 0
}

// resolveTicket records that the ticket create ref is not in the PSA:
// through the daemon's API when api is set, else in the state database.
func resolveTicket(ctx context.Context, e *env, cf *commonFlags, api *apiClient, ref, noteText string) (rc int) {
	var (
		tk  daemon.TicketIntentView
		err error
	)
	if api != nil {
		var out struct {
			Ticket daemon.TicketIntentView `json:"ticket"`
		}
		err = api.post(ctx, "/api/v1/tickets/intents/"+url.PathEscape(ref)+"/resolve", map[string]any{"posted": false, "note": noteText}, &out)
		tk = out.Ticket
	} else {
		h, code := leadByHand(ctx, e, cf, "resolve", daemon.LoadState)
		if code != 0 {
			return code
		}
		defer h.release(e, &rc)
		var r tickets.Record
		if r, err = h.ReleaseTicketCreate(ref, noteText); err == nil {
			tk = daemon.NewTicketIntentView(r)
		}
	}
	if err != nil {
		return requestFailed(e, err)
	}
	fmt.Fprintf(e.stdout, "Ticket create %s resolved as not posted: the next ticket pass files a ticket for it in company %s (customer %s/%s).\n",
		tk.Ref, tk.CompanyID, tk.Source, tk.CustomerID)
	return 0
}

// fetchIntents reads the open intents from a running daemon.
func fetchIntents(ctx context.Context, api *apiClient) ([]daemon.IntentView, error) {
	var out struct {
		Intents []daemon.IntentView `json:"intents"`
	}
	if err := api.get(ctx, "/api/v1/intents", nil, &out); err != nil {
		return nil, err
	}
	return out.Intents, nil
}

// answerTimeout is how long a command waits for an ordinary answer of
// psa-syncd's API.
const answerTimeout = 30 * time.Second

// maxAnswer bounds the answer of psa-syncd's API that doJSON reads.
const maxAnswer = 64 << 20

// doJSON sends req to psa-syncd's API and decodes a 2xx answer into v; any
// other answer is an error carrying the API's message.
func (c *apiClient) doJSON(req *http.Request, v any) error {
	return c.doJSONWithin(req, v, answerTimeout)
}

// sameOriginRedirect is apiClient.httpClient's CheckRedirect.
func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if first := via[0].URL; req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return &redirectRefusedError{from: first.Redacted()}
	}
	return nil
}

// redirectRefusedError is sameOriginRedirect's refusal: an answer came,
// so the command's exit code is 1, not exitUnreachable.
type redirectRefusedError struct{ from string }

func (e *redirectRefusedError) Error() string {
	return fmt.Sprintf("the answer to %s redirects to another host, port or scheme, which psa-syncd does not follow: "+
		"it would take the API token or password there; give -web.url the URL at which psa-syncd itself answers", e.from)
}

// doJSONWithin is doJSON waiting up to timeout for the answer.
func (c *apiClient) doJSONWithin(req *http.Request, v any, timeout time.Duration) error {
	resp, err := c.do(req, timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return doJSONError(req, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return err
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("%s %s: the answer is larger than %d MiB, the most a command reads", req.Method, req.URL.Redacted(), maxAnswer>>20)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", req.Method, req.URL.Redacted(), err)
	}
	return nil
}

// doJSONError is the error of an answer that is not 2xx: its status and
// the API's {"error": ...} message, or the first redact.MaxText bytes of
// another body (a proxy's page), without the credentials req carried: a
// proxy's error page may quote the request, Authorization header included,
// and Proxy-Authorization.
func doJSONError(req *http.Request, resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error string `json:"error"`
	}
	r := redact.Request(req)
	// The transport (Go's default's clone) sends HTTP_PROXY's credentials
	// to a plain http:// daemon's proxy itself, which req does not show.
	r.Add(redact.ProxyCredentials(nil, req)...)
	var msg string
	own := json.Unmarshal(data, &e) == nil && e.Error != ""
	if own {
		// psa-syncd's own message, whole: a refused export's lists every
		// problem, a line each.
		msg = strings.Join(r.Strings(strings.Split(e.Error, "\n")), "\n")
	} else {
		msg = r.String(strings.TrimSpace(string(data)))
	}
	err := fmt.Errorf("%s %s: %s: %s%s%s", req.Method, req.URL.Redacted(), resp.Status, msg, olderDaemonHint(req, resp.StatusCode, own, e.Error), tokenHint(req, resp.StatusCode))
	if noEndpoint(req, resp.StatusCode, own) {
		return noEndpointError{err}
	}
	return err
}

// errNoEndpoint matches doJSONError's error for a request the daemon does
// not have (noEndpoint): a command that can do without the answer, as
// status without the ticket creates, goes on.
var errNoEndpoint = errors.New("the daemon has no such request")

// noEndpointError is such an error, its text unchanged.
type noEndpointError struct{ error }

func (noEndpointError) Is(target error) bool { return target == errNoEndpoint }

// noEndpoint reports whether an answer of status is the API mux's plain
// 404 or 405 for a request under /api/ (own: psa-syncd's JSON error, which
// a request it has answers with): the daemon is older than the command.
func noEndpoint(req *http.Request, status int, own bool) bool {
	return !own && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) && strings.HasPrefix(req.URL.Path, "/api/")
}

// tokenHint is what doJSONError adds to a 401 of a request that carried no
// credentials: the daemon's "missing bearer token" does not say how a
// command is given the token, and the alerts' runbooks and README name
// the commands without it.
func tokenHint(req *http.Request, status int) string {
	if status != http.StatusUnauthorized || req.Header.Get("Authorization") != "" {
		return ""
	}
	return " (this request needs the API token: give -web.token-file FILE, or set PSA_SYNCD_API_TOKEN)"
}

// olderDaemonHint is what doJSONError adds when the answer says the daemon
// is older than this command: an endpoint its API does not have (the API
// mux's plain 404 or 405, not psa-syncd's JSON error), or a field of the
// request body it does not know (its API refuses unknown fields). The
// command and the daemon are upgraded apart; without the hint the error
// read "404 page not found" or "json: unknown field".
func olderDaemonHint(req *http.Request, status int, own bool, msg string) string {
	switch {
	case noEndpoint(req, status, own):
		instead := "run a psa-syncd of its version"
		if req.URL.Path == "/api/v1/impact" {
			// The report needs no daemon: it is computed here without
			// -web.url.
			instead = "leave -web.url out to compute the report on this machine"
		}
		return fmt.Sprintf(" (the daemon has no %s %s: it may be a psa-syncd older than this one (%s), which needs that request: "+
			"upgrade the daemon, or %s; or -web.url names something else)", req.Method, req.URL.Path, buildVersion(), instead)
	case own && status == http.StatusBadRequest:
		_, rest, ok := strings.Cut(msg, "unknown field ")
		if !ok || strings.Contains(msg, "upgrade the psa-syncd serving this API") {
			return ""
		}
		name, _, _ := strings.Cut(rest, ":")
		return fmt.Sprintf(" (the daemon does not know the field %s that this psa-syncd (%s) sent for a flag given: "+
			"it is an older psa-syncd; upgrade it, or leave that flag out)", name, buildVersion())
	}
	return ""
}

// printIntents lists the writes whose outcome is not settled yet; resolve
// is the command line that settles one, as the operator can run it.
func printIntents(w io.Writer, intents []daemon.IntentView, resolve string) {
	if len(intents) == 0 {
		return
	}
	fmt.Fprintln(w, "\nWrites whose outcome is not settled (their lines are not written until then):")
	tw := newTable(w)
	fmt.Fprintln(tw, "INTENT\tSYSTEM\tCUSTOMER\tCONTRACT\tSERVICE\tUNITS\tEFFECTIVE\tSINCE")
	bms := false
	for _, in := range intents {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", in.ID, in.System, in.CustomerID, in.ContractID, in.ServiceID,
			in.After, in.EffectiveDate, fmtTime(in.Created))
		bms = bms || in.System == "kaseya_bms"
	}
	_ = tw.Flush()
	if bms {
		fmt.Fprintf(w, "Check each contract in Kaseya BMS for that line, then run `%s -intent ID -posted` or `-not-posted`.\n", resolve)
		if !strings.Contains(resolve, "-web.url") {
			fmt.Fprintln(w, "While psa-syncd run is up, give resolve its -web.url and -web.token-file.")
		}
	} else {
		fmt.Fprintln(w, "The next sync (or the daemon's start) settles them by reading the PSA; a ConnectWise addition")
		fmt.Fprintf(w, "that the read still does not show waits for `%s -intent ID -posted` or `-not-posted`.\n", resolve)
	}
}

// printTicketCreates lists the ticket creates whose outcome is not settled:
// a ticket pass adopts one its search by reference finds, and holds one
// that search cannot be trusted for (HELD) until an operator who found no
// such ticket in the PSA answers it, with the resolve command line shown
// for those only; the others (within settle_time, or not searched yet)
// settle by themselves. With unlisted, the daemon asked is older and
// lists none: a line says so.
func printTicketCreates(w io.Writer, creates []daemon.TicketIntentView, resolve string, unlisted bool) {
	if unlisted {
		fmt.Fprintf(w, "\nThis daemon does not list ticket creates (GET /api/v1/tickets/intents): it is a psa-syncd older than this one (%s); "+
			"upgrade it to see them.\n", buildVersion())
	}
	if len(creates) == 0 {
		return
	}
	fmt.Fprintln(w, "\nTicket creates whose outcome is not settled (their alerts are not filed again until then):")
	tw := newTable(w)
	fmt.Fprintln(tw, "REF\tSYSTEM\tCUSTOMER\tALERT\tSINCE\tSTATE\tWHEN NOT IN THE PSA")
	held := false
	for _, c := range creates {
		state, answer := "SETTLING", "-"
		if !c.HeldSince.IsZero() {
			state, answer, held = "HELD since "+fmtTime(c.HeldSince), resolve+" -ticket "+c.Ref+" -not-posted", true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Ref, c.System, c.CustomerID, c.AlertKey, fmtTime(c.Created), state, answer)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "The next ticket pass adopts one its search by reference finds. SETTLING: within settle_time, or not searched")
	fmt.Fprintln(w, "yet; it is searched for again, and sent again if the search shows it was not applied.")
	if held {
		fmt.Fprintln(w, "HELD: not found by a search no other ticket of the customer can check: search the PSA for the reference,")
		fmt.Fprintln(w, "then give the API user access to the ticket's queue or board, or, when no such ticket is there, run the command shown.")
	}
}

// resolveCommand is the resolve command line that works where status ran:
// against the daemon status asked, with its URL (without a password it may
// carry), the API token and the files of its TLS, or on the state database
// status opened, which no psa-syncd run holds then (an SQLite one; with
// PostgreSQL one may run: then resolve needs -web.url too).
func resolveCommand(e *env, rf *remoteFlags) string {
	if rf.url == "" {
		return "psa-syncd resolve"
	}
	cmd := "psa-syncd resolve -web.url " + withoutPassword(rf.url)
	switch {
	case rf.tokenFile != "":
		cmd += " -web.token-file " + rf.tokenFile
	case strings.TrimSpace(e.getenv("PSA_SYNCD_API_TOKEN")) == "":
		cmd += " -web.token-file FILE"
	}
	if f := rf.tls.flags(); f != "" {
		cmd += " " + f
	}
	return cmd
}

// withoutPassword is the URL of -web.url to show in a command line to run:
// without the password it may carry.
func withoutPassword(base string) string {
	u, err := url.Parse(base)
	if err != nil || u.User == nil {
		return base
	}
	if _, ok := u.User.Password(); !ok {
		return base
	}
	u.User = url.User(u.User.Username())
	return u.String()
}
