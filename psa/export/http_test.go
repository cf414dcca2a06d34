package export

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// TestHTTPBackend_errorBody: an error page of psa-syncd or of a proxy in
// front of it is quoted in the error, but cut short (a gateway's HTML page
// would otherwise fill the plan output and every log line with up to 1 MiB)
// and without the API token, which a proxy may echo from the request's
// Authorization header.
func TestHTTPBackend_errorBody(t *testing.T) {
	t.Parallel()
	const token = "psa-syncd-api-token-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><body><h1>502 Bad Gateway</h1><pre>" + r.Header.Get("Authorization") + "</pre>" +
			strings.Repeat("<p>upstream timed out</p>", 20000) + "</body></html>"))
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := b.Load(t.Context(), "")
	_, serr := b.Save(t.Context(), []byte("{}"), `"1"`)
	for op, err := range map[string]error{"Load": lerr, "Save": serr} {
		switch {
		case err == nil:
			t.Errorf("%s: no error for a 502 answer", op)
		case strings.Contains(err.Error(), token):
			t.Errorf("%s: the error shows the API token: %.300s", op, err)
		case !strings.Contains(err.Error(), "502 Bad Gateway") || !strings.Contains(err.Error(), srv.URL):
			t.Errorf("%s: the error does not name the store and the status: %.300s", op, err)
		case len(err.Error()) > 2048:
			t.Errorf("%s: the error is %d bytes long: %.300s...", op, len(err.Error()), err)
		}
	}
}

// TestHTTPBackend_errorBodyFromProxy: through a proxy with credentials
// (HTTP_PROXY=http://user:password@proxy), Go's transport sends them in a
// Proxy-Authorization header of its own to a plain http:// psa-syncd; a
// proxy's error page that quotes the request's headers must not show
// them, in any read or write of the store, as it does not show the token.
func TestHTTPBackend_errorBodyFromProxy(t *testing.T) {
	t.Parallel()
	const token, proxyPassword = "psa-syncd-api-token-0123456789", "proxy-pass/word+0246"
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = fmt.Fprintf(w, "<html><body><h1>502 Bad Gateway</h1><p>%s %s</p>", r.Method, r.URL)
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			_, _ = fmt.Fprintf(w, "<p>%s: %s</p>", k, strings.Join(r.Header[k], ", "))
		}
		_, _ = fmt.Fprint(w, "</body></html>")
	}))
	defer proxy.Close()
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL.User = url.UserPassword("psa-sync", proxyPassword)
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	b, err := NewHTTPReader("http://ci@psa-syncd.internal:9810", token, hc)
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := b.Load(t.Context(), "")
	_, serr := b.Save(t.Context(), []byte("{}"), `"1"`)
	_, rerr := b.ReadAPI(t.Context(), UnmappedAPIPath)
	secrets := append(redact.ProxyCredentials(hc, httptest.NewRequest(http.MethodGet, "http://psa-syncd.internal:9810/", nil)), token)
	if len(secrets) != 3 {
		t.Fatalf("ProxyCredentials gave %q, want the password and user:password", secrets[:len(secrets)-1])
	}
	for op, err := range map[string]error{"Load": lerr, "Save": serr, "ReadAPI": rerr} {
		switch {
		case err == nil:
			t.Errorf("%s: no error for a 502 answer", op)
		case !strings.Contains(err.Error(), "Proxy-Authorization: Basic "+redact.Placeholder):
			t.Errorf("%s: the error does not quote the proxy's page with its header redacted: %.600s", op, err)
		case redact.New(secrets...).Contains(err.Error()):
			t.Errorf("%s: the error shows a credential: %.600s", op, err)
		}
	}
}

// TestHTTPBackend_gzipErrorBody: the backend asks for no compression (see
// newRequest), but a proxy may compress its error page all the same: the
// error quotes the page, without the token, never its compressed bytes.
func TestHTTPBackend_gzipErrorBody(t *testing.T) {
	t.Parallel()
	const token = "psa-syncd-api-token-gz-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write([]byte("<h1>502 Bad Gateway</h1><pre>Authorization: " + r.Header.Get("Authorization") + "</pre>"))
		_ = zw.Close()
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write(z.Bytes())
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := b.Load(t.Context(), "")
	_, serr := b.Save(t.Context(), []byte("{}"), `"1"`)
	for op, err := range map[string]error{"Load": lerr, "Save": serr} {
		if err == nil || !strings.Contains(err.Error(), "Authorization: Bearer [REDACTED]") || strings.Contains(err.Error(), "\x1f\x8b") {
			t.Errorf("%s: error = %q, want the page, redacted", op, err)
		}
	}
}

// TestHTTPBackend_gzipExport: the backend asks for no compression, so Go's
// transport decompresses nothing, but a proxy may compress the export all
// the same: it is loaded decompressed, not refused as JSON that starts with
// '\x1f'; one in an encoding that psa-sync cannot read fails naming it.
func TestHTTPBackend_gzipExport(t *testing.T) {
	t.Parallel()
	const doc = `{"revision":1}`
	for _, enc := range []string{"gzip", "br"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"1"`)
			resttest.EncodedJSON(w, enc, doc)
		}))
		defer srv.Close()
		b, err := NewHTTPBackend(srv.URL, "psa-syncd-api-token-0123456789", nil)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := b.Load(t.Context(), "")
		switch enc {
		case "gzip":
			if err != nil || string(blob.Data) != doc || blob.Version != `"1"` {
				t.Errorf("Load of a gzip-compressed export = %q (version %s), %v; want %s", blob.Data, blob.Version, err, doc)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "Content-Encoding: br") {
				t.Errorf("Load of an export compressed in br = %v; want an error naming the store and the encoding", err)
			}
		}
	}
}

// TestHTTPBackend_refusedExportMessage: psa-syncd's own message for a
// refused export is quoted whole, every problem it lists, however long.
func TestHTTPBackend_refusedExportMessage(t *testing.T) {
	t.Parallel()
	d := New(psa.SystemAutotask, "")
	for i := range 25 {
		d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: fmt.Sprintf("2c9f0c3e-%04d-4e4f-9a6b-0123456789ab", i), CompanyID: "1"})
	}
	problems := d.Validate().Error()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": problems})
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, "psa-syncd-api-token-0123456789", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Save(t.Context(), []byte("{}"), `"1"`)
	if err == nil || !strings.HasSuffix(err.Error(), problems) || len(problems) <= redact.MaxText {
		t.Errorf("Save error = %v; want it to end with psa-syncd's %d-byte message:\n%s", err, len(problems), problems)
	}
}

// TestClient_Read_webPage: a store URL answered by a web page (a proxy's
// sign-in page, a console's port instead of the API's) fails the read,
// naming the store and saying that it got a page, not a half-written
// export.
func TestClient_Read_webPage(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("\n<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body></body></html>\n"))
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = NewClient(b).Read(t.Context())
	want := `export "` + srv.URL + `": not valid JSON at line 2, column 1 (byte 1): invalid character '<' looking for beginning of value ` +
		`(it is an HTML or XML page, not a mapping export: check that the URL names the export, and that no web server or proxy ` +
		`answers in the store's place)`
	if err == nil || err.Error() != want {
		t.Errorf("Read = %v\nwant %s", err, want)
	}
}

// TestHTTPBackend_Save_redirected: a write that psa-syncd's URL redirects
// (a proxy sending http:// to https:// with 301) fails, naming where it
// was sent. Go's client follows a 301 or 302 of a PUT with a GET, whose
// 200 and ETag looked like a stored write: the apply succeeded and wrote
// nothing.
func TestHTTPBackend_Save_redirected(t *testing.T) {
	t.Parallel()
	doc := New(psa.SystemAutotask, testInstance)
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var puts atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			puts.Add(1)
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		w.Header().Set("ETag", `"1"`)
		_, _ = w.Write(data)
	}))
	defer target.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect} {
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+r.URL.Path, code)
		}))
		defer front.Close()
		b, err := NewHTTPBackend(front.URL, "psa-syncd-api-token-0123456789", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewClient(b).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
			d.PutCustomer(acme())
			return nil
		})
		want := fmt.Sprintf(`export %q: writing: %d %s to %s/api/v1/export`, front.URL, code, http.StatusText(code), target.URL)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Update through a %d redirect = %v, want an error beginning %q", code, err, want)
		}
	}
	if n := puts.Load(); n != 0 {
		t.Errorf("the redirect target got %d writes, want none", n)
	}
}

// TestHTTPBackend_Save_answerWithoutETag: a 200 to a write that is not
// psa-syncd's (a firewall's "request rejected" page, sent with 200) fails
// the write instead of passing for stored: psa-syncd answers every stored
// export with its ETag.
func TestHTTPBackend_Save_answerWithoutETag(t *testing.T) {
	t.Parallel()
	data, err := New(psa.SystemAutotask, testInstance).Encode()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>Request Rejected</body></html>"))
			return
		}
		w.Header().Set("ETag", `"1"`)
		_, _ = w.Write(data)
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(b).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	})
	want := fmt.Sprintf(`export %q: writing: 200 OK without an ETag`, srv.URL)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Update = %v, want an error beginning %q", err, want)
	}
}

// TestClient_Update_exportWithoutVersion: an export read without its
// version (a proxy in front of psa-syncd drops the ETag) fails a write at
// once, saying why, instead of a hundred create-only writes that psa-syncd
// refuses and "changed by another writer".
func TestClient_Update_exportWithoutVersion(t *testing.T) {
	t.Parallel()
	data, err := New(psa.SystemAutotask, testInstance).Encode()
	if err != nil {
		t.Fatal(err)
	}
	var puts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			puts.Add(1)
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		_, _ = w.Write(data)
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(b).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	})
	want := fmt.Sprintf(`export %q: the store gave the export without its version`, srv.URL)
	if err == nil || !strings.HasPrefix(err.Error(), want) || puts.Load() != 0 {
		t.Errorf("Update = %v after %d writes, want no write and an error beginning %q", err, puts.Load(), want)
	}
}

// TestHTTPBackend_basicAuthListener: a psa-syncd whose listener asks for
// basic credentials (basic_auth_users) locks out the bearer token psa-sync
// sends; reads and writes say so instead of "check the psa-syncd API
// token", which is right.
func TestHTTPBackend_basicAuthListener(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", "Basic")
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, "psa-syncd-api-token-0123456789", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := b.Load(t.Context(), "")
	_, serr := b.Save(t.Context(), []byte("{}"), `"1"`)
	for op, err := range map[string]error{"Load": lerr, "Save": serr} {
		if err == nil || !strings.Contains(err.Error(), "401 Unauthorized: Unauthorized (psa-syncd's listener asks for basic credentials") {
			t.Errorf("%s = %v, want the 401 and that the listener asks for basic credentials", op, err)
		}
	}
}

// TestHTTPBackend_ReadAPI: ReadAPI reads psa-syncd's endpoint beside the
// export (behind a reverse proxy's path prefix too), with the token; an
// HTML page answered with 200 (a proxy's sign-in page) is refused; an
// error names psa-syncd's URL and quotes the page without the token.
func TestHTTPBackend_ReadAPI(t *testing.T) {
	t.Parallel()
	const token = "psa-syncd-read-api-token-0123456789"
	var signIn atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/psa-syncd"+UnmappedAPIPath:
			http.NotFound(w, r)
		case signIn.Load():
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>sign in</html>"))
		case r.Header.Get("Authorization") != "Bearer "+token:
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("denied: " + r.Header.Get("Authorization")))
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"unmapped": {}}`))
		}
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL+"/psa-syncd/", token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := b.ReadAPI(t.Context(), UnmappedAPIPath); err != nil || string(data) != `{"unmapped": {}}` {
		t.Errorf("ReadAPI = %q, %v; want the answer", data, err)
	}
	signIn.Store(true)
	if _, err := b.ReadAPI(t.Context(), UnmappedAPIPath); err == nil || !strings.Contains(err.Error(), "text/html") || !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("ReadAPI of a sign-in page: error = %v, want one naming psa-syncd and the content type", err)
	}
	signIn.Store(false)
	wrong, err := NewHTTPBackend(srv.URL+"/psa-syncd", token+"-wrong", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.ReadAPI(t.Context(), UnmappedAPIPath)
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("ReadAPI with a wrong token: error = %v, want a 401 naming psa-syncd, without the token", err)
	}
}

// TestNewHTTPReader_basicUser: a reader whose URL names a user sends the
// token as that user's basic password (for a listener with
// basic_auth_users), shows the user but no token in its URL and errors,
// and takes the base64 credential out of an error page that echoes it; a
// URL with a password is refused; without a user it sends a bearer token,
// and a listener asking for basic credentials gets a hint naming the URL's
// user. The export store (NewHTTPBackend) still takes no user.
func TestNewHTTPReader_basicUser(t *testing.T) {
	t.Parallel()
	const token = "psa-syncd-basic-token-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, ok := r.BasicAuth()
		if !ok || user != "automation" || password != token {
			w.Header().Set("WWW-Authenticate", "Basic")
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("denied: " + r.Header.Get("Authorization")))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"unmapped": {}}`))
	}))
	defer srv.Close()
	withUser := strings.Replace(srv.URL, "http://", "http://automation@", 1) + "/"
	b, err := NewHTTPReader(withUser, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != strings.TrimSuffix(withUser, "/") {
		t.Errorf("String() = %q, want %q", got, strings.TrimSuffix(withUser, "/"))
	}
	if data, err := b.ReadAPI(t.Context(), UnmappedAPIPath); err != nil || string(data) != `{"unmapped": {}}` {
		t.Errorf("ReadAPI = %q, %v; want the answer", data, err)
	}

	wrong, err := NewHTTPReader(withUser, token+"-wrong", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.ReadAPI(t.Context(), UnmappedAPIPath)
	if err == nil || strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "Basic YXV0") ||
		!strings.Contains(err.Error(), "[REDACTED]") || !strings.Contains(err.Error(), "refused user automation") {
		t.Errorf("ReadAPI with a wrong token: error = %v, want the 401 without the credential, naming the user", err)
	}

	bearer, err := NewHTTPReader(srv.URL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bearer.ReadAPI(t.Context(), UnmappedAPIPath)
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "https://USER@host:port") {
		t.Errorf("ReadAPI without a user: error = %v, want the hint to name the user in the URL", err)
	}

	if _, err := NewHTTPReader(strings.Replace(srv.URL, "http://", "http://automation:"+token+"@", 1), "", nil); err == nil ||
		strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "must not carry a password") {
		t.Errorf("NewHTTPReader with a password in the URL: error = %v, want a refusal without the password", err)
	}
	if _, err := NewHTTPBackend(withUser, token, nil); err == nil {
		t.Error("NewHTTPBackend took a URL with a user: the export store's URL takes none")
	}
}

// TestOpenBackend_urlUser: with BackendOptions.URLUser a psa-syncd store's
// URL may name a user, and Load and Save (its conditional headers kept)
// send the token as that user's basic password; an error page that
// echoes the credential shows neither the token nor its base64 form.
// Without URLUser (psa-syncd's own export_url) the URL is refused.
func TestOpenBackend_urlUser(t *testing.T) {
	t.Parallel()
	const token = "psa-syncd-store-token-0123456789"
	var stored atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, password, ok := r.BasicAuth(); !ok || user != "automation" || password != token {
			w.Header().Set("WWW-Authenticate", "Basic")
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("denied: " + r.Header.Get("Authorization")))
			return
		}
		switch {
		case r.Method == http.MethodPut && r.Header.Get("If-None-Match") == "*" && stored.Load() == nil,
			r.Method == http.MethodPut && r.Header.Get("If-Match") == `"1"` && stored.Load() != nil:
			body, _ := io.ReadAll(r.Body)
			stored.Store(&body)
			w.Header().Set("ETag", fmt.Sprintf(`"%d"`, len(body)%9+1))
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodPut:
			w.WriteHeader(http.StatusPreconditionFailed)
		case stored.Load() == nil:
			http.NotFound(w, r)
		default:
			w.Header().Set("ETag", `"1"`)
			_, _ = w.Write(*stored.Load())
		}
	}))
	defer srv.Close()
	withUser := strings.Replace(srv.URL, "http://", "http://automation@", 1)
	b, err := OpenBackend(t.Context(), withUser, BackendOptions{Token: token, URLUser: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.Save(t.Context(), []byte(`{"version": 1}`), ""); err != nil || v == "" {
		t.Fatalf("first Save = %q, %v; want a version", v, err)
	}
	if _, err := b.Save(t.Context(), []byte(`{"version": 1}`), ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second Save without If-Match = %v, want ErrConflict", err)
	}
	if v, err := b.Save(t.Context(), []byte(`{"version": 1} `), `"1"`); err != nil || v == "" {
		t.Errorf("Save with If-Match = %q, %v; want a version", v, err)
	}
	if blob, err := b.Load(t.Context(), ""); err != nil || blob.Version != `"1"` {
		t.Errorf("Load = %+v, %v; want version \"1\"", blob, err)
	}

	wrong, err := OpenBackend(t.Context(), withUser, BackendOptions{Token: token + "-wrong", URLUser: true})
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := wrong.Load(t.Context(), "")
	_, serr := wrong.Save(t.Context(), []byte("{}"), `"1"`)
	for op, err := range map[string]error{"Load": lerr, "Save": serr} {
		if err == nil || strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "Basic YXV0") ||
			!strings.Contains(err.Error(), "refused user automation") {
			t.Errorf("%s with a wrong token = %v, want the 401 naming the user, without the credential", op, err)
		}
	}
	if _, err := OpenBackend(t.Context(), withUser, BackendOptions{Token: token}); err == nil {
		t.Error("OpenBackend without URLUser took a URL with a user")
	}
}

// TestHTTPBackend_ReaderFields: Load records the export fields psa-syncd
// advertises in its answer (the 404 of a store without an export too),
// nothing before an answer, an empty list for a psa-syncd without the
// header, and nothing from a proxy's error page.
func TestHTTPBackend_ReaderFields(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	var header atomic.Value
	header.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if h := header.Load().(string); h != "" { //nolint:forcetypeassert // only strings are stored
			w.Header().Set(ReaderFieldsHeader, h)
		}
		w.Header().Set("ETag", `"1"`)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if fields, answered := b.ReaderFields(); answered || fields != nil {
		t.Errorf("ReaderFields before a Load = %v, %v; want nil, false", fields, answered)
	}
	for _, c := range []struct {
		status       int
		header       string
		want         []string
		wantAnswered bool
	}{
		{http.StatusNotFound, "schema,tickets, tickets.owner", []string{"schema", "tickets", "tickets.owner"}, true},
		{http.StatusNotModified, "", []string{}, true},
		{http.StatusBadGateway, "", []string{}, true}, // a proxy's page: the last answer's list stays
		{http.StatusNotFound, "schema", []string{"schema"}, true},
	} {
		status.Store(int32(c.status))
		header.Store(c.header)
		_, _ = b.Load(t.Context(), `"1"`)
		if fields, answered := b.ReaderFields(); answered != c.wantAnswered || !slices.Equal(fields, c.want) {
			t.Errorf("ReaderFields after a %d answer with %q = %v, %v; want %v, %v", c.status, c.header, fields, answered, c.want, c.wantAnswered)
		}
	}
}
