package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// ExportAPIPath is where psa-syncd serves the export it stores.
const ExportAPIPath = "/api/v1/export"

// HTTPBackend keeps the export in psa-syncd itself, through its
// GET and PUT /api/v1/export. Versions are the ETag psa-syncd gives each
// accepted export (its revision in the state database); Save sends If-Match
// (or If-None-Match: * for the first export), and psa-syncd answers 412
// when another writer saved first. psa-syncd validates the export as it
// would a file, keeps every accepted version (GET /api/v1/export/history)
// and uses a new one at once.
type HTTPBackend struct {
	base  *url.URL
	token string
	// users is set when the URL may name a user (NewHTTPReader, or
	// OpenBackend with BackendOptions.URLUser); user, then, is the
	// basic_auth_users user whose basic password the token is sent as.
	users  bool
	user   string
	client *http.Client
	// writes is client without redirects: Go's client follows a 301 or
	// 302 of a PUT with a GET, whose 200 and ETag would look like a stored
	// write.
	writes *http.Client
	// redact takes the token out of the error pages quoted in errors: a
	// proxy in front of psa-syncd may echo the request's headers.
	redact *redact.Redactor

	// readerFields is what psa-syncd's last answer to a Load advertised
	// in ReaderFieldsHeader (see ReaderFields): nil before an answer, an
	// empty slice for an answer without the header.
	readerMu     sync.Mutex
	readerFields []string
}

// Ensure HTTPBackend satisfies Backend.
var _ Backend = (*HTTPBackend)(nil)

// NewHTTPBackend returns the Backend for the psa-syncd at rawURL (its
// web.listen_address as a URL, e.g. https://psa-syncd.internal:9810; a
// path prefix is kept for a reverse proxy). token is psa-syncd's
// web.api_token, needed to write. hc nil means a client with a 60-second
// timeout.
func NewHTTPBackend(rawURL, token string, hc *http.Client) (*HTTPBackend, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("export: psa-syncd URL %q must be http(s)://host[:port]", Redact(rawURL))
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("export: psa-syncd URL %q must not carry user information, a query or a fragment; the token is a setting of its own", Redact(rawURL))
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + ExportAPIPath
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	writes := *hc
	writes.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &HTTPBackend{base: u, token: token, client: hc, writes: &writes, redact: redact.New(token)}, nil
}

// NewHTTPReader is NewHTTPBackend at a URL that may name a user without a
// password (https://automation@psa-syncd.internal:9810): for a listener
// with basic_auth_users, which takes every request's basic credentials,
// the token is then sent as that user's basic password, as psa-syncd's
// -web.url commands send it, by ReadAPI, Load and Save alike. The
// provider opens psa_syncd_url with it, and export_url through OpenBackend
// with BackendOptions.URLUser; NewHTTPBackend (psa-syncd's own
// export_url) takes no user.
func NewHTTPReader(rawURL, token string, hc *http.Client) (*HTTPBackend, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return NewHTTPBackend(rawURL, token, hc) // its error
	}
	if _, ok := u.User.Password(); ok || (u.User != nil && u.User.Username() == "") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("export: psa-syncd URL %q must not carry a password, a query or a fragment (it may name a user: "+
			"https://user@host:port); the token, sent as that user's basic password, is a setting of its own", Redact(rawURL))
	}
	var user string
	if u.User != nil {
		user = u.User.Username()
		u.User = nil
	}
	b, err := NewHTTPBackend(u.String(), token, hc)
	if err != nil {
		return nil, err
	}
	b.users, b.user = true, user
	if user != "" && token != "" {
		// The basic credential's base64 form, which a proxy may echo.
		b.redact.Add(user + ":" + token)
	}
	return b, nil
}

// String returns the psa-syncd URL, with the user the token is sent as.
func (b *HTTPBackend) String() string {
	u := *b.base
	u.Path = strings.TrimSuffix(u.Path, ExportAPIPath)
	if b.user != "" {
		u.User = url.User(b.user)
	}
	return u.String()
}

// authorize sets req's credential: the token as a bearer token, or as
// the basic password of the URL's user.
func (b *HTTPBackend) authorize(req *http.Request) {
	switch {
	case b.token == "":
	case b.user != "":
		req.SetBasicAuth(b.user, b.token)
	default:
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
}

// Load gets the export from psa-syncd.
func (b *HTTPBackend) Load(ctx context.Context, ifNoneMatch string) (Blob, error) {
	req, err := b.request(ctx, http.MethodGet, nil)
	if err != nil {
		return Blob{}, err
	}
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return Blob{}, fmt.Errorf("%sreading: %w", prefix(b.String()), err)
	}
	defer resp.Body.Close()
	b.noteReaderFields(resp)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return Blob{Version: ifNoneMatch}, ErrNotModified
	case http.StatusNotFound:
		return Blob{}, fmt.Errorf("%s%w (psa-syncd holds no mapping export yet: %s)", prefix(b.String()), fs.ErrNotExist, b.apiError(resp))
	case http.StatusUnauthorized, http.StatusForbidden:
		return Blob{}, fmt.Errorf("%sreading: %s (%s)", prefix(b.String()), b.apiError(resp), b.authHint(resp))
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		// Only with a client that follows no redirects, as the provider's:
		// its writes would not be followed either.
		return Blob{}, b.redirectError("reading", resp)
	default:
		return Blob{}, fmt.Errorf("%sreading: %s", prefix(b.String()), b.apiError(resp))
	}
	body, err := redact.DecodedBody(resp)
	if err != nil {
		return Blob{}, fmt.Errorf("%sreading: %w", prefix(b.String()), err)
	}
	data, err := readExport(body)
	if err != nil {
		return Blob{}, fmt.Errorf("%sreading: %w", prefix(b.String()), err)
	}
	return Blob{Data: data, Version: etag(resp)}, nil
}

// Save puts the export to psa-syncd. A validation error from psa-syncd is
// returned with its message, which names the bad entry.
func (b *HTTPBackend) Save(ctx context.Context, data []byte, ifMatch string) (string, error) {
	req, err := b.request(ctx, http.MethodPut, data)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	} else {
		req.Header.Set("If-None-Match", "*")
	}
	resp, err := b.writes.Do(req)
	if err != nil {
		return "", fmt.Errorf("%swriting: %w", prefix(b.String()), err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
		if v := etag(resp); v != "" {
			return v, nil
		}
		// psa-syncd answers every stored export with its ETag.
		return "", fmt.Errorf("%swriting: %s without an ETag: not psa-syncd's answer to a stored export (a proxy or firewall "+
			"answering in its place?); the export may not have been written", prefix(b.String()), resp.Status)
	case http.StatusPreconditionFailed:
		return "", fmt.Errorf("%s%w", prefix(b.String()), ErrConflict)
	case http.StatusUnauthorized, http.StatusForbidden:
		return "", fmt.Errorf("%swriting: %s (%s)", prefix(b.String()), b.apiError(resp), b.authHint(resp))
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return "", b.redirectError("writing", resp)
	default:
		return "", fmt.Errorf("%swriting: %s", prefix(b.String()), b.apiError(resp))
	}
}

// CheckWrite asks psa-syncd, without writing anything, whether it would
// take a Save with b's token: a PUT without If-Match or If-None-Match and
// without a body, which psa-syncd refuses with 428 once the token passed
// and it is the export store (export_url: self), before it reads a body.
// It returns the error a Save would get for an answer that refuses the
// write itself: the token (401), psa-syncd without an API token (403),
// or psa-syncd reading its export from another store (409). Any other
// answer gives nil: 428, and those a Save judges by itself (a redirect,
// a throttled token, a proxy's error), which the read before it mostly
// reports already. Without a token, or with the token sent as a user's
// basic password, it asks nothing and returns nil: a pull request's plan
// may read the export with no token, or as a reader user (see authHint),
// and is not meant to write it.
func (b *HTTPBackend) CheckWrite(ctx context.Context) error {
	if b.token == "" || b.user != "" {
		return nil
	}
	req, err := b.request(ctx, http.MethodPut, nil)
	if err != nil {
		return err
	}
	resp, err := b.writes.Do(req)
	if err != nil {
		return nil // the read and the write report an unreachable psa-syncd
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%swriting: %s (%s)", prefix(b.String()), b.apiError(resp), b.authHint(resp))
	case http.StatusConflict:
		return fmt.Errorf("%swriting: %s", prefix(b.String()), b.apiError(resp))
	}
	return nil
}

// noteReaderFields records the export fields an answer of psa-syncd to a
// read advertises. Only psa-syncd's own answers are taken (those with its
// ETag, or its 404 for no export yet): a proxy's error page says nothing
// of the psa-syncd behind it.
func (b *HTTPBackend) noteReaderFields(resp *http.Response) {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified && resp.StatusCode != http.StatusNotFound {
		return
	}
	fields := ParseReaderFields(resp.Header.Get(ReaderFieldsHeader))
	if fields == nil {
		fields = []string{}
	}
	b.readerMu.Lock()
	b.readerFields = fields
	b.readerMu.Unlock()
}

// ReaderFields returns the export fields psa-syncd said it reads in its
// answer to the last Load (see ReaderFieldsHeader), and whether it said:
// answered is false before a Load got psa-syncd's answer, and fields is
// empty for a psa-syncd older than the header. It asks nothing itself: the
// plan reads the export anyway, and the list comes with that answer.
func (b *HTTPBackend) ReaderFields() (fields []string, answered bool) {
	b.readerMu.Lock()
	defer b.readerMu.Unlock()
	return slices.Clone(b.readerFields), b.readerFields != nil
}

func (b *HTTPBackend) request(ctx context.Context, method string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base.String(), r)
	if err != nil {
		return nil, fmt.Errorf("%s%w", prefix(b.String()), err)
	}
	b.authorize(req)
	// Without the gzip that Go asks for by default, a reverse proxy in
	// front of psa-syncd does not compress the answer, and so does not
	// change its ETag either, which If-Match must send back as it is
	// (Apache's mod_deflate appends "-gzip" to it; see etag for nginx).
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// bearerAuthHint says what to check after a 401 or 403 answer to a
// backend whose URL takes no user.
func bearerAuthHint(resp *http.Response) string {
	if strings.HasPrefix(strings.ToLower(resp.Header.Get("WWW-Authenticate")), "basic") {
		return "psa-syncd's listener asks for basic credentials (basic_auth_users in its web configuration), which " +
			"psa-sync does not send: it sends the API token alone, as a bearer token"
	}
	return "check the psa-syncd API token"
}

// authHint says what to check after a 401 or 403 answer.
func (b *HTTPBackend) authHint(resp *http.Response) string {
	if !b.users {
		return bearerAuthHint(resp)
	}
	basic := strings.HasPrefix(strings.ToLower(resp.Header.Get("WWW-Authenticate")), "basic")
	switch {
	// The token is the API token for writes; a read takes any user's
	// password (a pull-request job's reader user).
	case basic && b.user == "":
		return "psa-syncd's listener asks for basic credentials (basic_auth_users in its web configuration): name in the URL " +
			"(https://USER@host:port) a user and give its password as the token: the user whose password is the API token " +
			"to write the export, any user's to read it"
	case basic && b.token == "":
		return "psa-syncd's listener asks for basic credentials (basic_auth_users in its web configuration): give the token, " +
			"which is sent as user " + b.user + "'s password"
	case basic:
		return "psa-syncd's listener refused user " + b.user + " with the token as its password: check that its " +
			"basic_auth_users hash is of the token (of the API token, to write the export)"
	}
	return "check the psa-syncd API token"
}

// redirectError describes an answer that redirects the request to another
// URL, which the client did not follow.
func (b *HTTPBackend) redirectError(op string, resp *http.Response) error {
	to := "another URL"
	if loc, err := resp.Location(); err == nil {
		to = redact.URL(loc.String())
	}
	return fmt.Errorf("%s%s: %s to %s: the export is not written through a redirect; set the export URL to the one psa-syncd answers at",
		prefix(b.String()), op, resp.Status, to)
}

// etag returns the version in an answer's ETag. psa-syncd's ETags are
// strong, but a reverse proxy that compresses the answer (nginx with gzip)
// makes them weak: W/"7" is still revision 7, and psa-syncd would take the
// weak form in If-Match for another version, refusing every write.
func etag(resp *http.Response) string {
	return strings.TrimPrefix(resp.Header.Get("ETag"), "W/")
}

// apiError describes an error response of psa-syncd: its status and the
// message of its {"error": "..."} body, or the first redact.MaxText bytes
// of another body (a proxy's HTML page), without the token, nor the
// proxy's own credentials, which a proxy's page may quote with the
// request's headers (Proxy-Authorization, which Go's transport adds to a
// plain http:// request through HTTP_PROXY). A body a proxy compressed
// although the request asked for none is read decompressed (gzip) or not
// at all (see rest.ReadErrorBody).
func (b *HTTPBackend) apiError(resp *http.Response) error {
	if resp.Request != nil {
		b.redact.Set("proxy", redact.ProxyCredentials(b.client, resp.Request)...)
	}
	data := rest.ReadErrorBody(resp)
	var body struct {
		Error string `json:"error"`
	}
	var msg string
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		// psa-syncd's own message, whole: a refused export's lists every
		// problem, a line each.
		msg = strings.Join(b.redact.Strings(strings.Split(body.Error, "\n")), "\n")
	} else {
		msg = b.redact.String(strings.TrimSpace(string(data)))
	}
	if msg == "" {
		return errors.New(resp.Status)
	}
	return fmt.Errorf("%s: %s", resp.Status, msg)
}

// UnmappedAPIPath is where psa-syncd serves the usage its last pass could
// not bill.
const UnmappedAPIPath = "/api/v1/unmapped"

// ReadAPI gets one of psa-syncd's read-only JSON endpoints (apiPath, e.g.
// UnmappedAPIPath) at the same psa-syncd and with the same token as the
// export, for the provider's data sources that show what psa-syncd found.
// Its errors name psa-syncd's URL and never hold the token. The answer is
// read up to MaxSize bytes.
func (b *HTTPBackend) ReadAPI(ctx context.Context, apiPath string) ([]byte, error) {
	u := *b.base
	u.Path = strings.TrimSuffix(u.Path, ExportAPIPath) + apiPath
	what := fmt.Sprintf("psa-syncd %q: reading %s: ", b.String(), apiPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s%w", what, err)
	}
	b.authorize(req)
	req.Header.Set("Accept", "application/json")
	resp, err := b.writes.Do(req) // redirects are refused, as for the export
	if err != nil {
		return nil, fmt.Errorf("%s%w", what, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("%s%s (%s)", what, b.apiError(resp), b.authHint(resp))
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s%s (a psa-syncd too old to serve %s, or a URL that is not psa-syncd's)", what, b.apiError(resp), apiPath)
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		to := "another URL"
		if loc, err := resp.Location(); err == nil {
			to = redact.URL(loc.String())
		}
		return nil, fmt.Errorf("%s%s to %s: redirects are not followed; set the URL to the one psa-syncd answers at", what, resp.Status, to)
	default:
		return nil, fmt.Errorf("%s%s", what, b.apiError(resp))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, fmt.Errorf("%s%s with Content-Type %q, not psa-syncd's JSON (a proxy or sign-in page answering in its place?)", what, resp.Status, ct)
	}
	body, err := redact.DecodedBody(resp)
	if err != nil {
		return nil, fmt.Errorf("%s%w", what, err)
	}
	data, err := io.ReadAll(io.LimitReader(body, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s%w", what, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%sthe answer is larger than %d MiB", what, MaxSize>>20)
	}
	return data, nil
}
