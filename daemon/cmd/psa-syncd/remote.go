package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// remoteFlags are the flags of the commands that can ask a running daemon
// through its HTTP API instead of opening the state database, which the
// daemon holds locked.
type remoteFlags struct {
	url       string
	tokenFile string
	tls       remoteTLS
	// local has the TLS flags apply without -web.url too, to the read of
	// the export from localDaemon (check).
	local bool
	// localWith is the flag with which, without -web.url, the TLS flags
	// apply to that read instead of to -web.url's requests, "" for none:
	// -terraform-plan (plan).
	localWith string
	// fs is the command's flag set, to tell which flags were given.
	fs *flag.FlagSet
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	r.fs = fs
	fs.StringVar(&r.url, "web.url", "", "Base `URL` of a running psa-syncd (no query), e.g. http://127.0.0.1:9810, to ask instead of opening the state database\n(which the daemon holds locked). The daemon uses its own config file: a -config.file given too is ignored, with a warning.")
	fs.StringVar(&r.tokenFile, "web.token-file", "", "The `file` holding the API token for -web.url (web.api_token); default: the PSA_SYNCD_API_TOKEN environment variable.\n"+
		"What changes anything needs it, and so does every request to a listener with basic_auth_users, where -web.url\n"+
		"names the user (http://user@127.0.0.1:9810) and the token is that user's password.")
	switch {
	case r.local:
		r.tls.registerFor(fs, "an https:// -web.url (without it:\n"+strings.Replace(localDaemon, "\n", " ", 1)+")")
	case r.localWith != "":
		r.tls.registerFor(fs, "an https:// -web.url (with "+r.localWith+" and no -web.url:\n"+strings.Replace(localDaemon, "\n", " ", 1)+")")
	default:
		r.tls.register(fs)
	}
}

// client returns the API client for -web.url, or nil when it is not set.
// A -config.file given with -web.url is ignored, since the daemon uses its
// own: it says so on stderr (not a usage error: scripts pass both).
func (r *remoteFlags) client(e *env) (*apiClient, error) {
	if r.url == "" {
		if r.tokenFile != "" {
			// Without -web.url the command opens the state database
			// itself, and the token would be ignored.
			return nil, errors.New("-web.token-file needs -web.url: the token is for a running psa-syncd's API")
		}
		if r.tls.given() && !r.local {
			or := ""
			if r.localWith != "" {
				or = " or " + r.localWith
			}
			return nil, fmt.Errorf("%s needs -web.url%s: the files are for the TLS of a running psa-syncd's API", r.tls.flags(), or)
		}
		// Files that cannot be used are a usage error now, not only
		// when the export is read from the daemon.
		_, err := r.tls.transport()
		return nil, err
	}
	u, err := url.Parse(r.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-web.url %q: want the daemon's base URL, like http://127.0.0.1:9810", redact.URL(r.url))
	}
	if strings.ContainsAny(r.url, "?#") {
		// Every request appends its path to the base URL: after a query
		// or a fragment it would be lost, and Go's error for a request
		// quotes the URL, with whatever token the query holds.
		return nil, fmt.Errorf("-web.url %q: want the daemon's base URL without a query or a fragment, like http://127.0.0.1:9810; "+
			"the API token goes in PSA_SYNCD_API_TOKEN or -web.token-file", redact.URL(r.url))
	}
	if u.Scheme != "https" && r.tls.given() {
		// Ignored over plain HTTP, the files would leave a listener that
		// requires them refusing requests for another reason (400).
		return nil, fmt.Errorf("%s: for an https:// -web.url only; %s is plain HTTP", r.tls.flags(), withoutPassword(r.url))
	}
	transport, err := r.tls.transport()
	if err != nil {
		return nil, err
	}
	if r.fs != nil {
		r.fs.Visit(func(f *flag.Flag) {
			if f.Name == "config.file" {
				fmt.Fprintf(e.stderr, "psa-syncd: warning: -config.file %s is ignored with -web.url: the daemon at %s uses its own config file\n",
					f.Value, withoutPassword(r.url))
			}
		})
	}
	c := &apiClient{base: strings.TrimRight(r.url, "/"), token: strings.TrimSpace(e.getenv("PSA_SYNCD_API_TOKEN")), tls: r.tls, transport: transport}
	if r.tokenFile != "" {
		data, err := daemon.ReadSecretFile(r.tokenFile)
		var pe *fs.PathError
		if err != nil && daemon.SecretLike(r.tokenFile) && errors.As(err, &pe) {
			return nil, fmt.Errorf("-web.token-file: the file it names cannot be read: %w (the value is not shown: it has no \"/\" and is long, "+
				"so it may be the token itself, which goes in PSA_SYNCD_API_TOKEN)", pe.Err)
		}
		if err != nil {
			return nil, fmt.Errorf("-web.token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(data))
		if c.token == "" {
			// Sent without a token, the request would only come back
			// as the daemon's 401.
			return nil, fmt.Errorf("-web.token-file: %s is empty", r.tokenFile)
		}
	}
	// A token or a -web.url password that short would stay in an error
	// page that quotes the request (a proxy's): redacting skips values
	// shorter than redact.MinSecret. The daemon refuses such an API
	// token, so it could only be a truncated copy.
	if redact.TooShort(c.token) {
		from := "PSA_SYNCD_API_TOKEN"
		if r.tokenFile != "" {
			from = "-web.token-file " + r.tokenFile
		}
		return nil, fmt.Errorf("%s: the API token is shorter than %d characters (psa-syncd refuses a web.api_token that short): "+
			"check for a truncated copy; the value is not shown", from, redact.MinSecret)
	}
	if password, ok := u.User.Password(); ok && redact.TooShort(password) {
		return nil, fmt.Errorf("-web.url %s: the password in the URL is shorter than %d characters, too short to be kept out of "+
			"the error pages that quote a request; the value is not shown", withoutPassword(r.url), redact.MinSecret)
	}
	return c, nil
}

// exitUnreachable is the exit code of a command whose -web.url daemon could
// not be reached or did not answer in time (connection refused, a timeout,
// a TLS handshake that failed): a script or CI job tells it from a failure
// that the daemon reported (1), and may try again later.
const exitUnreachable = 3

// requestFailed reports err, of a command's requests to the daemon of
// -web.url (or of its local form), and returns the command's exit code:
// exitUnreachable when no answer came, else 1 (a redirect elsewhere that
// was not followed is an answer).
func requestFailed(e *env, err error) int {
	fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
	var ue *url.Error
	var redirect *redirectRefusedError
	if errors.As(err, &ue) && !errors.Is(err, context.Canceled) && !errors.As(err, &redirect) {
		return exitUnreachable
	}
	return 1
}

// apiClient talks to a running psa-syncd's HTTP API.
type apiClient struct {
	base  string
	token string
	// tls names the files of -web.ca-file and the like, for the errors;
	// transport is built from them, or nil for Go's default.
	tls       remoteTLS
	transport *http.Transport
	// proxyTLS is the TLS of an https:// proxy's own certificate, as
	// transport checks it; nil: tls.proxyTLS (tests: their proxy's).
	proxyTLS *tls.Config
	// local is set for the daemon on this machine whose URL it recorded
	// (or its web.listen_address), not one of -web.url.
	local bool
}

// httpClient returns the client of the requests to the daemon, waiting up
// to timeout. It follows a redirect only within the origin of -web.url
// (scheme, host and port): Go's client keeps the Authorization header, the
// API token, for the same host name on any port and for its subdomains,
// over a downgrade to http too.
func (c *apiClient) httpClient(timeout time.Duration) *http.Client {
	hc := &http.Client{Timeout: timeout, CheckRedirect: sameOriginRedirect}
	if c.transport != nil {
		hc.Transport = c.transport
	}
	return hc
}

// do sends req to the daemon, waiting up to timeout for the answer. A
// certificate refused, on either side, gets what to set added to Go's
// error, which stays a *url.Error (exitUnreachable).
func (c *apiClient) do(req *http.Request, timeout time.Duration) (*http.Response, error) {
	resp, err := c.httpClient(timeout).Do(req)
	if err != nil {
		if msg := c.refused(req, err); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, err
	}
	return resp, nil
}

// shownURL is the daemon's base URL for a message: without a password.
func (c *apiClient) shownURL() string { return withoutPassword(c.base) }

// get decodes the JSON answer of GET path?query into v.
func (c *apiClient) get(ctx context.Context, path string, query url.Values, v any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	// A listener with basic_auth_users takes the token as the password of
	// the user -web.url names for every request, reads included; a
	// -web.url that carries a password of its own (a reader's) keeps it.
	if _, ok := req.URL.User.Password(); !ok {
		setToken(req, c.token)
	}
	return c.doJSON(req, v)
}

// post sends body as JSON with the API token and decodes the answer into v.
func (c *apiClient) post(ctx context.Context, path string, body, v any) error {
	return c.postWithin(ctx, path, body, v, answerTimeout)
}

// postWithin is post for an endpoint that answers once its work is done,
// waiting up to timeout for the answer.
func (c *apiClient) postWithin(ctx context.Context, path string, body, v any, timeout time.Duration) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	setToken(req, c.token)
	return c.doJSONWithin(req, v, timeout)
}

// setToken sends the API token with req: as a bearer token, or, when the
// URL names a user (https://automation@host:9810, for a listener with
// basic_auth_users, which takes every request's basic credentials), as
// that user's basic password, which the daemon takes as the token.
func setToken(req *http.Request, token string) {
	if token == "" {
		return
	}
	if u := req.URL.User; u != nil {
		req.SetBasicAuth(u.Username(), token)
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
}

// pollInterval is how often a command that asked a running daemon for a
// pass asks how it is going.
const pollInterval = 500 * time.Millisecond

// waitRun polls the sync request id until its pass has finished, and
// returns the request and its run (nil when the pass never started).
func (c *apiClient) waitRun(ctx context.Context, id string) (daemon.SyncTicket, *daemon.RunView, error) {
	for {
		var out struct {
			Request daemon.SyncTicket `json:"request"`
			Run     *daemon.RunView   `json:"run"`
		}
		if err := c.get(ctx, "/api/v1/runs/"+url.PathEscape(id), nil, &out); err != nil {
			return daemon.SyncTicket{}, nil, err
		}
		if out.Request.Status == "done" || out.Request.Status == "failed" {
			return out.Request, out.Run, nil
		}
		select {
		case <-ctx.Done():
			return out.Request, out.Run, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// lockedHint explains, after err from opening the state database, how to
// reach the daemon that holds it, or returns "" when err is something else.
// The example it gives for command works as given: with the API token for
// the commands whose API endpoint needs it.
func lockedHint(cfg *daemon.Config, command string, err error) string {
	if err == nil || !strings.Contains(err.Error(), "is locked by another psa-syncd process") {
		return ""
	}
	web := "-web.url " + localDaemonURL(cfg)
	where := "URL: its web.listen_address, https:// when its -web.config.file serves TLS; if it was started with -web.listen-address, that address"
	if daemon.RecordedURL(cfg) != "" {
		where = "URL: where it listens, as it recorded in " + filepath.Join(cfg.StateDir, daemon.URLFileName)
	}
	if flags, note := localTLSHint(cfg); flags != "" {
		web += " " + flags
		where += "; " + note
	}
	token, tokenNote := "-web.token-file FILE", "token: FILE holds its web.api_token, or set PSA_SYNCD_API_TOKEN instead of the flag"
	if cfg != nil && cfg.Web.APITokenFile != "" {
		token, tokenNote = "-web.token-file "+cfg.Web.APITokenFile, "token: its web.api_token_file, or set PSA_SYNCD_API_TOKEN instead of the flag"
	}
	var example string
	switch command {
	case "status", "ledger":
		example = fmt.Sprintf("`psa-syncd %s %s` (%s)", command, web, where)
	case "plan":
		example = fmt.Sprintf("`psa-syncd plan %s %s` (%s; %s; without the token it shows the plan of the daemon's last pass)", web, token, where, tokenNote)
	case "sync":
		example = fmt.Sprintf("`psa-syncd sync %s %s` (%s; %s; for -dry-run, `psa-syncd plan` with the same flags)", web, token, where, tokenNote)
	case "rebind":
		// rebind changes what the database is bound to; the API has no
		// such request.
		return "psa-syncd run is using the state database: stop it first, run rebind, then start it again (rebind has no HTTP API)"
	case "resolve", "tickets", "backup":
		example = fmt.Sprintf("`psa-syncd %s %s %s` (%s; %s)", command, web, token, where, tokenNote)
	default:
		return fmt.Sprintf("psa-syncd run is using the state database: stop it first, or ask it through its HTTP API at %s (%s)",
			localDaemonURL(cfg), where)
	}
	return "psa-syncd run is using the state database: ask it through its API instead, e.g. " + example
}

// localDaemonURL is the base URL at which a command on the same machine
// reaches the daemon of cfg: the one that psa-syncd run recorded in the
// state directory while it holds an SQLite state database (see
// daemon.URLFileName), else one from its web.listen_address, with a
// loopback address for one that listens on every interface, https://
// when the state section names the files of a standby's TLS (see
// localServesTLS), else plain HTTP.
func localDaemonURL(cfg *daemon.Config) string {
	if u := daemon.RecordedURL(cfg); u != "" {
		return u
	}
	addr := daemon.DefaultListenAddress
	if cfg != nil && cfg.Web.ListenAddress != "" {
		addr = cfg.Web.ListenAddress
	}
	return daemon.LocalURL(addr, localServesTLS(cfg))
}

// localServesTLS says whether the listener of the daemon of cfg on this
// machine serves TLS: as the URL it recorded says, or, with none, as the
// state section's advertise_* settings, which are for the TLS of the
// instances' listeners, say. The command cannot read the daemon's
// -web.config.file: it is not in the config.
func localServesTLS(cfg *daemon.Config) bool {
	if u := daemon.RecordedURL(cfg); u != "" {
		return strings.HasPrefix(u, "https://")
	}
	if cfg == nil {
		return false
	}
	s := cfg.State
	return s.AdvertiseCAFile != "" || s.AdvertiseClientCertFile != "" || strings.HasPrefix(s.AdvertiseURL, "https://")
}

// localTLSHint returns the TLS flags of a command line that reaches the
// daemon of cfg on this machine (localDaemonURL), with a note on them, or
// "" when its listener serves plain HTTP. The files a standby uses
// towards the active instance (state.advertise_ca_file,
// advertise_client_cert_file and _key_file) serve a command too: the same
// CA signs the instances' certificates, and their client_ca_file trusts
// the standby's. The server name is its advertised host, else the name
// the daemon recorded beside its URL. Where there are none, FILE and NAME
// stand for them.
func localTLSHint(cfg *daemon.Config) (flags, note string) {
	if !localServesTLS(cfg) {
		return "", ""
	}
	s := cfg.State
	ca, name := "FILE", "NAME"
	if s.AdvertiseCAFile != "" {
		ca = s.AdvertiseCAFile
	}
	// The certificate holds the advertised host (psa-syncd warns when it
	// does not), which need not be the loopback address of the URL.
	host := s.AdvertiseHost
	if u, err := url.Parse(s.AdvertiseURL); host == "" && s.AdvertiseURL != "" && err == nil {
		host = u.Hostname()
	}
	if host == "" {
		// A name its certificate holds, which the daemon recorded beside
		// its URL.
		host = daemon.RecordedServerName(cfg)
	}
	if host != "" {
		name = host
	}
	flags = "-web.ca-file " + ca + " -web.server-name " + name
	if s.AdvertiseClientCertFile != "" {
		flags += " -web.cert-file " + s.AdvertiseClientCertFile + " -web.key-file " + s.AdvertiseClientKeyFile
	}
	var notes []string
	if ca == "FILE" {
		notes = append(notes, "-web.ca-file: the CA of its certificate (left out: the system's roots)")
	}
	if name == "NAME" {
		notes = append(notes, "-web.server-name: a name its certificate holds (left out where it holds the URL's host)")
	}
	if s.AdvertiseClientCertFile == "" {
		notes = append(notes, "-web.cert-file FILE and -web.key-file FILE too where its client_auth_type asks for a client certificate")
	} else {
		notes = append(notes, "the files are its state section's advertise_* files, as a standby uses them")
	}
	return flags, "TLS: " + strings.Join(notes, "; ")
}

// fetchDaemonExport reads the mapping export in use from the daemon at
// base (GET /api/v1/export, which needs no token), on this machine, with
// the TLS files of local when it serves TLS.
func fetchDaemonExport(ctx context.Context, base string, local remoteTLS) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+export.ExportAPIPath, nil)
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme != "https" && local.given() {
		// Ignored over plain HTTP, the files would hide that the command
		// reads another daemon than the one they were given for.
		return nil, fmt.Errorf("%s: for a psa-syncd that serves TLS; the one at %s is plain HTTP", local.flags(), withoutPassword(base))
	}
	transport, err := local.transport()
	if err != nil {
		return nil, err
	}
	resp, err := (&apiClient{base: base, tls: local, transport: transport, local: true}).do(req, answerTimeout)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, doJSONError(req, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, export.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL.Redacted(), err)
	}
	if len(data) > export.MaxSize {
		return nil, fmt.Errorf("GET %s: the answer is larger than %d MiB", req.URL.Redacted(), export.MaxSize>>20)
	}
	return data, nil
}
