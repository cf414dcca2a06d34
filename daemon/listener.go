package daemon

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
)

// The listener's security comes from a web configuration file in the format
// every Prometheus exporter takes with --web.config.file
// (github.com/prometheus/exporter-toolkit): tls_server_config for TLS and
// client certificates, basic_auth_users for bcrypt-hashed basic
// authentication of every request but the probes' (see
// webConfigGuardHandler), and http_server_config for response headers. exporter-toolkit reads the file again for every new TLS
// connection and every request, so renewed certificates and changed users
// take effect without a restart, as in Prometheus. psa-syncd refuses at
// start-up a file over MaxWebConfigFile, reads it itself through a
// webConfigCache, again only when it changed, and while it runs refuses
// connections and requests while the file is over the cap, before
// exporter-toolkit reads it (webConfigGuard).
//
// The mutating endpoints still need the API token. With basic_auth_users
// set, the Authorization header carries the basic credentials, so the token
// is sent as the basic password instead (see requireToken): give the
// calling user a bcrypt hash of the token in basic_auth_users. A standby's
// status page calls the active instance as that user (see
// authenticateToActive).

// validateWebConfig checks a web configuration file and the certificates it
// names; an empty path means plain HTTP without authentication.
func validateWebConfig(path string) error {
	if path == "" {
		return nil
	}
	// exporter-toolkit reads the file whole: refuse one over the cap
	// before it does.
	var tl *sizecap.TooLargeError
	data, err := sizecap.ReadFile(path, MaxWebConfigFile, "")
	if errors.As(err, &tl) {
		return fmt.Errorf("daemon: web config file %q: the file is larger than %s, the most psa-syncd reads of a web config file; "+
			"is -web.config.file that of the listener's TLS and basic_auth_users settings?", path, sizecap.Format(MaxWebConfigFile))
	}
	if err == nil {
		if err := checkBasicAuthUsers(data); err != nil {
			return fmt.Errorf("daemon: web config file %q: %w", path, err)
		}
	}
	if err := web.Validate(path); err != nil {
		// yaml quotes the start of a value it cannot read: in
		// basic_auth_users written as "user:password", the password's.
		return fmt.Errorf("daemon: web config file %q: %s", path, webConfigText(err.Error()))
	}
	return nil
}

// checkBasicAuthUsers refuses a basic_auth_users value that is not a
// bcrypt hash, naming its user and none of the value. exporter-toolkit
// returns bcrypt's error as it is, which names no user: for a short value
// (a password) only "hashedSecret too short". It refuses a user name with a
// ':' too, quoting it up to the ':' only: no basic-auth user name holds one
// (the credentials are user:password), so it is most often written as
// "user:password". A file that does not parse is left to web.Validate,
// whose error says where.
func checkBasicAuthUsers(data []byte) error {
	var cfg struct {
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil //nolint:nilerr // web.Validate's error says where the file does not parse
	}
	for _, user := range slices.Sorted(maps.Keys(cfg.Users)) {
		if name, _, ok := strings.Cut(user, ":"); ok {
			return fmt.Errorf("basic_auth_users: the user %q holds a ':', which no basic-auth user name can (what follows it is not shown: "+
				"is it written as user:password?): give the user alone, with the bcrypt hash of its password as the value", name+":...")
		}
		if _, err := bcrypt.Cost([]byte(cfg.Users[user])); err != nil {
			return fmt.Errorf("basic_auth_users: the value of user %q is not a bcrypt hash (60 characters, starting with $2a$, $2b$ or $2y$): "+
				"give the hash of the password, not the password", user)
		}
	}
	return nil
}

// serve serves srv on ln as d's web configuration file says. It returns
// http.ErrServerClosed after Shutdown, like http.Server.Serve.
func (d *Daemon) serve(srv *http.Server, ln net.Listener) error {
	addrs := []string{ln.Addr().String()}
	if d.webConfigFile != "" {
		ln = &webConfigGuard{Listener: ln, d: d, srv: srv, probes: d.probeHandler()}
	}
	err := web.Serve(ln, srv, &web.FlagConfig{
		WebListenAddresses: &addrs,
		WebConfigFile:      &d.webConfigFile,
	}, slog.New(webConfigLogHandler{d.logger.Handler()}).With("component", "web"))
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		// web.Serve reads the file again: it may have been broken
		// since validateWebConfig.
		return errors.New(webConfigText(err.Error()))
	}
	return err
}

// webConfigGuard lets the probes through without basic authentication
// (see webConfigGuardHandler), and bounds exporter-toolkit's reads of the
// web config file
// while psa-syncd runs. exporter-toolkit reads the file whole, with no cap,
// for every request (its handler) and every TLS handshake, and has no hook
// to read it another way: a file replaced by a huge one (a log, a bundle
// of the wrong thing) would be read whole many times a second. While the
// file is over MaxWebConfigFile, as psa-syncd's own read says
// (webConfigCache: a stat per call, the file read again only when it
// changed), the guard closes every new connection before its TLS handshake
// and answers every request on a connection already open with 500 before
// exporter-toolkit's handler reads the file, and logs it once; it logs the
// file's return under the cap too.
type webConfigGuard struct {
	net.Listener
	d   *Daemon
	srv *http.Server
	// probes serves GET /-/healthy and GET /-/ready alone (probeHandler).
	probes http.Handler
	once   sync.Once
	mu     sync.Mutex
	over   bool // the file was over the cap when last checked
	// checked is the content whose basic_auth_users were last checked,
	// and usersErr what was wrong with them ("": nothing).
	checked  []byte
	usersErr string
}

// Accept returns the next connection while the web config file is under
// the cap, and closes the others.
func (g *webConfigGuard) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return c, err
		}
		// web.Serve sets srv.Handler to exporter-toolkit's handler before
		// it serves: the first Accept, in srv.Serve's goroutine and before
		// any connection's goroutine starts, puts the guard in front of it.
		g.once.Do(func() { g.srv.Handler = webConfigGuardHandler{g: g, next: g.srv.Handler, probes: g.probes} })
		if g.tooLarge() {
			_ = c.Close()
			continue
		}
		return c, nil
	}
}

// tooLarge reports whether the web config file is over the cap, logging
// when that starts and ends. It checks the basic_auth_users of a content it
// has not checked yet (checkUsers).
func (g *webConfigGuard) tooLarge() bool {
	data, err := g.d.webConfig.read(g.d.webConfigFile)
	var tl *sizecap.TooLargeError
	over := errors.As(err, &tl)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil && !bytes.Equal(data, g.checked) {
		g.checked = data
		g.checkUsers(data)
	}
	if over != g.over {
		g.over = over
		if over {
			g.d.logger.Error("Web config file is larger than the cap; refusing connections and requests until it is fixed",
				"file", g.d.webConfigFile, "cap", sizecap.Format(MaxWebConfigFile))
		} else {
			g.d.logger.Info("Web config file is under the cap again; serving", "file", g.d.webConfigFile)
		}
	}
	return over
}

// checkUsers logs, once for each change, that the basic_auth_users of
// data, the web config file changed while psa-syncd runs, cannot be used,
// naming the user and never the value, and logs their return. Started with
// such a file, psa-syncd refuses to start (validateWebConfig); changed to
// one while it runs, exporter-toolkit, which reads the file for every
// request, answers that user's requests 401 and logs nothing. Called with
// g.mu held.
func (g *webConfigGuard) checkUsers(data []byte) {
	msg := ""
	if err := checkBasicAuthUsers(data); err != nil {
		msg = err.Error()
	}
	if msg == g.usersErr {
		return
	}
	if msg != "" {
		g.d.logger.Error("Web config file changed: its basic_auth_users cannot be used; the listener refuses that user's requests (401) until it is fixed",
			"file", g.d.webConfigFile, "err", msg)
	} else {
		g.d.logger.Info("Web config file changed: its basic_auth_users can be used again", "file", g.d.webConfigFile)
	}
	g.usersErr = msg
}

// webConfigGuardHandler answers 500 instead of the handler that reads the
// web config file while it is over the cap, and serves the probes without
// basic authentication.
//
// With basic_auth_users, exporter-toolkit answers 401 to every request
// without credentials, the probes' included: a Kubernetes liveness probe
// (an httpGet, which carries none) would restart the pod for ever, and a
// password in the probe's httpHeaders is readable by whoever reads the
// Deployment. So a GET or HEAD of /-/healthy or /-/ready without an
// Authorization header is served by probes, which serves nothing else, and
// with the file's http_server_config headers, as exporter-toolkit would;
// a standby's /-/ready then does not name the active instance. A request
// with credentials goes through exporter-toolkit as before (wrong ones get
// 401). Required client certificates are checked in the TLS handshake,
// before any path is known: they still apply to the probes.
type webConfigGuardHandler struct {
	g      *webConfigGuard
	next   http.Handler
	probes http.Handler
}

func (h webConfigGuardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.g.tooLarge() {
		// As exporter-toolkit answers a file it cannot read; the
		// connection is closed, and a new one is refused.
		w.Header().Set("Connection", "close")
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	if isProbe(r) {
		if headers, ok := h.g.d.probeHeaders(); ok {
			for k, v := range headers {
				w.Header().Set(k, v)
			}
			h.probes.ServeHTTP(w, r)
			return
		}
	}
	h.next.ServeHTTP(w, r)
}

// isProbe reports whether r is a probe's request, one without credentials
// for GET (or HEAD) /-/healthy or /-/ready.
func isProbe(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.URL.Path == healthyPath || r.URL.Path == readyPath) &&
		len(r.Header.Values("Authorization")) == 0
}

// probeHeaders returns the http_server_config headers of the web config
// file, and whether it sets basic_auth_users, so that a probe without
// credentials is served without them. It is false too when the file cannot
// be read or is not valid as exporter-toolkit reads it (strictly): the
// request then goes to exporter-toolkit, which answers 500.
func (d *Daemon) probeHeaders() (map[string]string, bool) {
	data, err := d.webConfig.read(d.webConfigFile)
	if err != nil {
		return nil, false
	}
	var c web.Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, false
	}
	if len(c.Users) == 0 {
		return nil, false
	}
	return c.HTTPConfig.Header, true
}

// bcryptPrefix matches bcrypt's error for a basic_auth_users value that is
// not a hash, which quotes the value's first character: such a value is
// most often the password, or the API token, itself.
var bcryptPrefix = regexp.MustCompile(`bcrypt hashes must start with '\$', but hashedSecret started with '(?s:.)'`)

// pemBlock matches a PEM block up to its END line, or to the end of the
// text for one cut short: a key pasted as key_file's value, which
// exporter-toolkit quotes twice as the file it cannot open ("failed to
// read key_file (-----BEGIN PRIVATE KEY-----...): open -----BEGIN ...").
var pemBlock = regexp.MustCompile(`-----BEGIN [^-\n]*-----(?s:.*?)(?:-----END [^-\n]*-----|$)`)

// base64DER matches a DER key (or certificate) in base64 without its PEM
// lines, 64 characters or more from its SEQUENCE's "M" (see
// tlsclient.ReadKeyFile): a key's lines pasted as key_file's value, which
// exporter-toolkit quotes as the file it cannot open. exporter-toolkit's
// text does not say which value it quotes in a way worth parsing, so a
// certificate's base64 given as cert_file is left out too.
var base64DER = regexp.MustCompile(`\bM[A-Za-z0-9+/]{63,}={0,2}`)

// webConfigText returns exporter-toolkit's text about the web config file
// (an error, a log line) without the parts of values it quotes: the value
// in a yaml type error, the first character of a basic_auth_users value
// that is not a bcrypt hash, and PEM or base64 content given where a
// file's name belongs.
func webConfigText(s string) string {
	s = typeErrorValue.ReplaceAllString(s, "$1 $2")
	s = pemBlock.ReplaceAllString(s, "[PEM content, not shown: cert_file and key_file take a file's name]")
	s = base64DER.ReplaceAllString(s, "[base64 content, not shown: cert_file and key_file take a file's name]")
	return bcryptPrefix.ReplaceAllString(s, "a basic_auth_users value is not a bcrypt hash (which starts with $$2a$$, $$2b$$ or $$2y$$): "+
		"give the hash of the password, not the password")
}

// webConfigLogHandler drops the value that yaml quotes in a parse error of
// the web config file (see validateWebConfig): exporter-toolkit reads the
// file again for every request and TLS handshake, and logs its errors, so
// a file broken while psa-syncd runs would show the start of a
// basic_auth_users password in the log. It drops exporter-toolkit's
// "Listening on" line too: Run logs "Listening" with the address already.
type webConfigLogHandler struct{ slog.Handler }

func (h webConfigLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "Listening on" {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, webConfigText(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(webConfigText(a.Value.String()))
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h webConfigLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return webConfigLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h webConfigLogHandler) WithGroup(name string) slog.Handler {
	return webConfigLogHandler{h.Handler.WithGroup(name)}
}

// listenerCheckedBasic reports whether r's basic credentials are ones the
// listener checked: with basic_auth_users in the web config file,
// exporter-toolkit lets no request through without the password of one of
// them, so one here that is not the API token is a reader's (a Grafana
// data source, an operator's user), not a guess at the token, and is not
// counted as a wrong token: its address is not refused for it.
func (d *Daemon) listenerCheckedBasic(r *http.Request) bool {
	if _, _, ok := r.BasicAuth(); !ok || d.webConfigFile == "" {
		return false
	}
	data, err := d.webConfig.read(d.webConfigFile)
	if err != nil {
		return false
	}
	var cfg struct {
		Users map[string]yaml.Node `yaml:"basic_auth_users"`
	}
	return yaml.Unmarshal(data, &cfg) == nil && len(cfg.Users) > 0
}

// authenticateToActive sets the Authorization of req, a request a
// standby's status page makes to the active instance's API on behalf of a
// session it checked itself: the API token, which the session stands for,
// never the browser's own credentials (an operator's basic user whose
// password is not the token would be refused). Without basic_auth_users in
// the web config file it is a bearer token. With them, every request to
// the listener needs one of those users, and the token is the basic
// password (see bearerToken): the user is the one whose bcrypt hash the
// token matches, in this instance's web config file, which every instance
// shares; it is an error when there is none.
func (d *Daemon) authenticateToActive(req *http.Request) error {
	token := string(d.cfg.Load().Web.APIToken)
	if token == "" {
		return nil
	}
	user, needed, err := d.tokenUser.find(&d.webConfig, d.webConfigFile, token)
	switch {
	case err != nil:
		return err
	case needed:
		req.SetBasicAuth(user, token)
	default:
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return nil
}

// tokenUserCache finds the user of the web config file's basic_auth_users
// whose password is the API token, and remembers it for the file's content
// and the token: a bcrypt check takes tens of milliseconds, and a
// standby's page asks the active instance at every refresh of a page that
// shows a sync request.
type tokenUserCache struct {
	mu    sync.Mutex
	key   [sha256.Size]byte
	user  string
	found bool
}

// find returns the basic user whose bcrypt hash token matches in the web
// config file at path, read through file. needed is false when the file
// sets no basic_auth_users (or there is none): no user is needed then.
func (c *tokenUserCache) find(file *webConfigCache, path, token string) (user string, needed bool, err error) {
	if path == "" {
		return "", false, nil
	}
	data, err := file.read(path)
	if err != nil {
		return "", false, fmt.Errorf("reading the web config file: %w", err)
	}
	var cfg struct {
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return "", false, fmt.Errorf("the web config file %s: %w", path, withoutValues(err, data))
	}
	if len(cfg.Users) == 0 {
		return "", false, nil
	}
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write([]byte(token))
	var key [sha256.Size]byte
	h.Sum(key[:0])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key != key {
		c.key, c.user, c.found = key, "", false
		names := make([]string, 0, len(cfg.Users))
		for name := range cfg.Users {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if bcrypt.CompareHashAndPassword([]byte(cfg.Users[name]), []byte(token)) == nil {
				c.user, c.found = name, true
				break
			}
		}
	}
	if !c.found {
		return "", true, fmt.Errorf("the web config file %s sets basic_auth_users, and none of them has the API token as its password, "+
			"so the active instance's listener would refuse this standby: add a user with a bcrypt hash of web.api_token", path)
	}
	return c.user, true, nil
}

// URLFileName is the file in the state directory in which psa-syncd run,
// with an SQLite state database, records while it runs the base URL at
// which a command on the same machine reaches its API: a command that finds
// the database locked by it names that URL, whatever -web.listen-address,
// port 0 or TLS the daemon was started with. Where its certificate does
// not hold the URL's host, a second line holds a name it does (see
// RecordedServerName). It is removed when run stops.
const URLFileName = "psa-syncd.url"

// LocalURL is the base URL at which a command on the same machine reaches a
// listener on addr: a loopback address for one that listens on every
// interface, https:// when tls.
func LocalURL(addr string, tls bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "127.0.0.1", "9810"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// servesTLS says whether the web configuration file path (exporter-toolkit's
// format), read through file, has the listener serve TLS.
func servesTLS(file *webConfigCache, path string) bool {
	if path == "" {
		return false
	}
	data, err := file.read(path)
	if err != nil {
		return false
	}
	var c web.Config
	if yaml.Unmarshal(data, &c) != nil {
		return false
	}
	return c.TLSConfig.IsEnabled()
}

// advertisedHostRefused says why the certificate of the listener's
// tls_server_config (web configuration file path, read through file) does
// not hold host, the address this instance advertises
// (state.advertise_host), or "" when it does or cannot be read here (the
// listener's own checks say so). While this instance is active, the
// standbys refuse it: a certificate made for a name, or for another IP
// address than the pod's, would be found only at the first forward.
func advertisedHostRefused(file *webConfigCache, path, host string) string {
	if host == "" {
		return ""
	}
	leaf := listenerCertificate(file, path)
	if leaf == nil {
		return ""
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return err.Error()
	}
	return ""
}

// listenerCertificate returns the first certificate of the
// tls_server_config of the web configuration file path, read through
// file, or nil when the listener serves no TLS or it cannot be read here
// (the listener's own checks say so).
func listenerCertificate(file *webConfigCache, path string) *x509.Certificate {
	if path == "" {
		return nil
	}
	data, err := file.read(path)
	if err != nil {
		return nil
	}
	var c web.Config
	if yaml.Unmarshal(data, &c) != nil || !c.TLSConfig.IsEnabled() {
		return nil
	}
	certPEM := []byte(c.TLSConfig.TLSCert)
	if name := c.TLSConfig.TLSCertPath; name != "" {
		if !filepath.IsAbs(name) {
			// As exporter-toolkit reads it.
			name = filepath.Join(filepath.Dir(path), name)
		}
		if certPEM, err = os.ReadFile(name); err != nil {
			return nil
		}
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return leaf
}

// serverNameFor returns a name leaf holds for a command to give as
// -web.server-name, when it does not hold host, the host of the URL a
// command reaches the listener at (127.0.0.1): its first DNS name, a
// wildcard's with psa-syncd as its first label; "" when it holds host or
// no DNS name.
func serverNameFor(leaf *x509.Certificate, host string) string {
	if leaf == nil || leaf.VerifyHostname(host) == nil {
		return ""
	}
	for _, name := range leaf.DNSNames {
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			name = "psa-syncd." + rest
		}
		if validServerName(name) && leaf.VerifyHostname(name) == nil {
			return name
		}
	}
	return ""
}

// validServerName reports whether name can stand as a -web.server-name
// on a command line and in URLFileName's second line: a host name, not an
// IP address (which the URL's host would be).
func validServerName(name string) bool {
	if name == "" || len(name) > 253 || net.ParseIP(name) != nil {
		return false
	}
	return strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == ""
}

// recordURL writes the base URL of the listener ln into the SQLite state
// directory's URLFileName and returns the function that removes it. Not
// being able to write it costs only the hint of a locked database: it is
// logged.
func (d *Daemon) recordURL(cfg *Config, ln net.Listener) (remove func()) {
	if cfg.State.Driver != state.DriverSQLite || cfg.StateDir == "" {
		return func() {}
	}
	file := filepath.Join(cfg.StateDir, URLFileName)
	u := LocalURL(ln.Addr().String(), servesTLS(&d.webConfig, d.webConfigFile))
	content := u + "\n"
	if strings.HasPrefix(u, "https://") {
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(u, "https://"))
		if name := serverNameFor(listenerCertificate(&d.webConfig, d.webConfigFile), host); name != "" {
			content += name + "\n"
		}
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		d.logger.Warn("Could not record the API's URL for the commands run by hand", "file", file, "err", err)
		return func() {}
	}
	return func() { _ = os.Remove(file) }
}

// RecordedURL returns the base URL that the psa-syncd run holding cfg's
// SQLite state database recorded (see URLFileName), or "" when there is
// none.
func RecordedURL(cfg *Config) string {
	u, _ := recorded(cfg)
	return u
}

// RecordedServerName returns the name the certificate of the psa-syncd run
// holding cfg's SQLite state database holds, recorded beside its URL
// where it does not hold the URL's host, for a command's -web.server-name;
// "" when there is none.
func RecordedServerName(cfg *Config) string {
	_, name := recorded(cfg)
	return name
}

// recorded returns what URLFileName holds: the URL, and the server name
// of its second line, each "" when it is not there or not valid.
func recorded(cfg *Config) (base, serverName string) {
	if cfg == nil || cfg.State.Driver != state.DriverSQLite || cfg.StateDir == "" {
		return "", ""
	}
	data, err := os.ReadFile(filepath.Join(cfg.StateDir, URLFileName))
	if err != nil {
		return "", ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	base = strings.TrimSpace(lines[0])
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", ""
	}
	if len(lines) > 1 && strings.HasPrefix(base, "https://") && validServerName(strings.TrimSpace(lines[1])) {
		serverName = strings.TrimSpace(lines[1])
	}
	return base, serverName
}

// MaxWebConfigFile bounds the web config file (-web.config.file): TLS
// settings, a few basic users' bcrypt hashes and some headers are a few
// KiB, so that a flag naming another file (a log, /dev/zero) fails at
// start-up instead of taking all memory.
const MaxWebConfigFile = 1 << 20

// webConfigSettle is how long after a file's last change its content is
// not trusted to be the one its size and times stand for: a file system
// keeps times at some granularity (a clock tick, a second, two on FAT), so
// a change in the same tick as a read keeps them.
const webConfigSettle = 2 * time.Second

// webConfigCache reads the web config file, of at most MaxWebConfigFile
// bytes, and reads it again only when it changed (its size, modification
// or inode change time, device or inode: a file replaced by a rename):
// psa-syncd reads it for every request with basic credentials (see
// listenerCheckedBasic) and when a standby's page calls the active
// instance, and a changed file takes effect without a restart. Its zero
// value is ready to use. A standby reads the files of its TLS towards the
// active instance through one too (activeTransports).
type webConfigCache struct {
	// what the file is, for the error of one too large; "" for a web
	// config file.
	what  string
	mu    sync.Mutex
	path  string
	stamp webConfigStamp
	data  []byte
	err   error
	// settled is false while the file changed within webConfigSettle
	// of the read: it is read again until then.
	settled bool
	// reads counts the times the file was read (for tests).
	reads int
	// now is time.Now; tests set it.
	now func() time.Time
}

// webConfigStamp is what tells that the file changed.
type webConfigStamp struct {
	size         int64
	mtime, ctime time.Time
	dev, ino     uint64
}

// read returns the content of the web config file at path, or why it
// cannot be read; a file larger than MaxWebConfigFile is an error naming
// it and the cap.
func (c *webConfigCache) read(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	ctime, dev, ino := statChange(fi)
	stamp := webConfigStamp{size: fi.Size(), mtime: fi.ModTime(), ctime: ctime, dev: dev, ino: ino}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled && c.path == path && c.stamp == stamp {
		return c.data, c.err
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	readAt := now()
	c.reads++
	data, err := sizecap.ReadFile(path, MaxWebConfigFile, cmp.Or(c.what, "a web config file"))
	c.path, c.stamp, c.data, c.err = path, stamp, data, err
	c.settled = readAt.Sub(stamp.mtime) >= webConfigSettle && (stamp.ctime.IsZero() || readAt.Sub(stamp.ctime) >= webConfigSettle)
	return data, err
}
