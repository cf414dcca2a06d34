package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
)

const dtToken = "s3cr3t-token"

// dtExportRequest sends a request to /api/v1/export with the token.
func dtExportRequest(t *testing.T, h http.Handler, method, path string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+dtToken)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func (e *dtEnv) encode(t *testing.T, doc *export.Document) []byte {
	t.Helper()
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestHandler_exportStore walks psa-syncd as the export store through
// its life: empty, first export, conditional updates, a refused export
// and the history.
func TestHandler_exportStore(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true})
	h := e.d.Handler()
	if err := e.d.Reload(); err == nil || e.d.Ready() {
		t.Fatalf("Reload with an empty store returned %v, ready %v; want an error and not ready", err, e.d.Ready())
	}
	if rec := dtExportRequest(t, h, http.MethodGet, "/api/v1/export", nil, nil); rec.Code != http.StatusNotFound {
		t.Errorf("GET of an empty store = %d, want 404", rec.Code)
	}
	first := e.encode(t, e.doc)
	if rec := dtExportRequest(t, h, http.MethodPut, "/api/v1/export", first, nil); rec.Code != http.StatusPreconditionRequired {
		t.Errorf("PUT without If-Match or If-None-Match = %d %s, want 428", rec.Code, rec.Body)
	}
	noToken := httptest.NewRequest(http.MethodPut, "/api/v1/export", bytes.NewReader(first))
	noToken.Header.Set("If-None-Match", "*")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, noToken)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("PUT without a token = %d, want 401", rec.Code)
	}

	rec = dtExportRequest(t, h, http.MethodPut, "/api/v1/export", first, map[string]string{"If-None-Match": "*"})
	if rec.Code != http.StatusCreated || rec.Header().Get("ETag") != `"1"` {
		t.Fatalf("first PUT = %d ETag %s %s, want 201 with ETag \"1\"", rec.Code, rec.Header().Get("ETag"), rec.Body)
	}
	if !e.d.Ready() || len(e.d.Export().CustomerMappings) != 2 {
		t.Fatal("the first export did not take effect at once")
	}
	if rec := dtExportRequest(t, h, http.MethodPut, "/api/v1/export", first, map[string]string{"If-None-Match": "*"}); rec.Code != http.StatusPreconditionFailed {
		t.Errorf("second create-only PUT = %d, want 412", rec.Code)
	}

	rec = dtExportRequest(t, h, http.MethodGet, "/api/v1/export", nil, nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), first) || rec.Header().Get("ETag") != `"1"` {
		t.Errorf("GET = %d ETag %s, want 200, the export and ETag \"1\"", rec.Code, rec.Header().Get("ETag"))
	}
	if rec := dtExportRequest(t, h, http.MethodGet, "/api/v1/export", nil, map[string]string{"If-None-Match": `"1"`}); rec.Code != http.StatusNotModified {
		t.Errorf("conditional GET of the current version = %d, want 304", rec.Code)
	}

	// An export for another instance is refused; the good one stays.
	other := e.doc.Clone()
	other.PSA.Instance = "webservices99.autotask.net"
	other.Revision = 2
	rec = dtExportRequest(t, h, http.MethodPut, "/api/v1/export", e.encode(t, other), map[string]string{"If-Match": `"1"`})
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `psa.instance: the export is for autotask instance \"webservices99.autotask.net\"`) {
		t.Errorf("PUT for another instance = %d %s, want 422 naming psa.instance", rec.Code, rec.Body)
	}
	if e.d.Export().PSA.Instance == "webservices99.autotask.net" {
		t.Error("the refused export replaced the good one")
	}

	next := e.doc.Clone()
	next.Revision = 2
	next.DeleteCustomer("file", "cust-globex")
	if rec := dtExportRequest(t, h, http.MethodPut, "/api/v1/export", e.encode(t, next), map[string]string{"If-Match": `"7"`}); rec.Code != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale If-Match = %d, want 412", rec.Code)
	}
	rec = dtExportRequest(t, h, http.MethodPut, "/api/v1/export", e.encode(t, next), map[string]string{"If-Match": `"1"`})
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") != `"2"` {
		t.Fatalf("PUT with If-Match \"1\" = %d ETag %s %s, want 200 ETag \"2\"", rec.Code, rec.Header().Get("ETag"), rec.Body)
	}
	if len(e.d.Export().CustomerMappings) != 1 {
		t.Error("the second export did not take effect at once")
	}

	rec = dtExportRequest(t, h, http.MethodGet, "/api/v1/export/history", nil, nil)
	var hist struct{ Versions []ExportVersionView }
	if err := json.Unmarshal(rec.Body.Bytes(), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist.Versions) != 2 || hist.Versions[0].Revision != 2 || hist.Versions[1].Digest != export.Digest(first) || hist.Versions[1].Size != int64(len(first)) {
		t.Errorf("history = %+v, want revisions 2 and 1 with digest and size", hist.Versions)
	}
}

// TestHandler_stateFailureNamesNoDatabase: GET /api/v1/export, its
// history and the other reads of the API need no credentials; when the
// state database fails, the answer says so and how, but not the
// database's error, which names its host, user and database (here the
// SQLite file's path): that is in psa-syncd's log. The answer used to
// quote it.
func TestHandler_stateFailureNamesNoDatabase(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true, daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	if rec := dtExportRequest(t, e.d.Handler(), http.MethodPut, "/api/v1/export", e.encode(t, e.doc), map[string]string{"If-None-Match": "*"}); rec.Code != http.StatusCreated {
		t.Fatalf("first PUT = %d %s", rec.Code, rec.Body)
	}
	where := e.d.State().Path()
	if err := e.d.State().Close(); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/v1/export", "/api/v1/export/history", "/api/v1/runs", "/api/v1/runs/1", "/api/v1/intents", "/api/v1/ledger", "/api/v1/unmapped", "/api/v1/customers"} {
		rec := dtServe(t, e.d, http.MethodGet, target, "", "")
		if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), where) || strings.Contains(rec.Body.String(), "closed") ||
			!strings.Contains(rec.Body.String(), "the state database failed; psa-syncd's log has the error") {
			t.Errorf("GET %s with the state database failing = %d %s; want 500 saying the state database failed, without its error", target, rec.Code, rec.Body)
		}
	}
	if !strings.Contains(logs.String(), "Could not answer a request: the state database failed") || !strings.Contains(logs.String(), where) {
		t.Errorf("the state database's error is not in the log:\n%s", logs.String())
	}
}

// TestHandler_readyToReceiveFirstExport: psa-syncd as the export store
// with no export yet is Ready, so that a Kubernetes Service routes the
// first PUT /api/v1/export to it, and says everywhere that it has no
// export and does not sync.
func TestHandler_readyToReceiveFirstExport(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true})
	if err := e.d.Reload(); err == nil {
		t.Fatal("Reload with an empty store succeeded")
	}
	rec := dtServe(t, e.d, http.MethodGet, "/-/ready", "", "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "no valid mapping export loaded yet") ||
		!strings.Contains(rec.Body.String(), "PUT /api/v1/export") {
		t.Errorf("/-/ready of an empty export store = %d %q, want 200 saying it has no export and waits for a PUT", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v, want 0 while no export is stored", got)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/", "", ""); !strings.Contains(rec.Body.String(), "no valid mapping export loaded") {
		t.Errorf("the status page does not say that no export is loaded:\n%s", rec.Body)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("POST /api/v1/sync without an export = %d, want 503", rec.Code)
	}
	if rec := dtExportRequest(t, e.d.Handler(), http.MethodPut, "/api/v1/export", e.encode(t, e.doc), map[string]string{"If-None-Match": "*"}); rec.Code != http.StatusCreated {
		t.Fatalf("first PUT = %d %s, want 201", rec.Code, rec.Body)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/-/ready", "", ""); rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "psa-syncd is Ready." {
		t.Errorf("/-/ready after the first export = %d %q, want 200 psa-syncd is Ready.", rec.Code, rec.Body)
	}
}

// TestHandler_exportStoreRefusedWhenNotSelf: a psa-syncd that reads its
// export elsewhere does not accept one by PUT.
func TestHandler_exportStoreRefusedWhenNotSelf(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	rec := dtExportRequest(t, e.d.Handler(), http.MethodPut, "/api/v1/export", e.encode(t, e.doc), map[string]string{"If-None-Match": "*"})
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "export_url: self") {
		t.Errorf("PUT to a psa-syncd reading a file = %d %s, want 409 saying how to make it the store", rec.Code, rec.Body)
	}
}

// TestHandler_exportServesLoadedFile: a psa-syncd reading a file serves
// the export it loaded byte for byte (it keeps it compressed in memory).
func TestHandler_exportServesLoadedFile(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(e.exportPath)
	if err != nil {
		t.Fatal(err)
	}
	rec := dtExportRequest(t, e.d.Handler(), http.MethodGet, "/api/v1/export", nil, nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) || rec.Header().Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Errorf("GET /api/v1/export = %d, Content-Length %s, %d bytes; want 200 and the %d bytes of %s",
			rec.Code, rec.Header().Get("Content-Length"), rec.Body.Len(), len(want), e.exportPath)
	}
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("GET /api/v1/export has no ETag")
	}
	// A client behind a proxy that compresses the answer holds the weak
	// form of the ETag (nginx with gzip), and asks with it, maybe among
	// others: it got the whole export on every poll.
	for _, inm := range []string{etag, "W/" + etag, `"other", W/` + etag, "*"} {
		if rec := dtExportRequest(t, e.d.Handler(), http.MethodGet, "/api/v1/export", nil, map[string]string{"If-None-Match": inm}); rec.Code != http.StatusNotModified {
			t.Errorf("GET with If-None-Match %s = %d, want 304", inm, rec.Code)
		}
	}
	for _, inm := range []string{`"other"`, `W/"other"`, strings.Trim(etag, `"`)} {
		if rec := dtExportRequest(t, e.d.Handler(), http.MethodGet, "/api/v1/export", nil, map[string]string{"If-None-Match": inm}); rec.Code != http.StatusOK {
			t.Errorf("GET with If-None-Match %s = %d, want 200", inm, rec.Code)
		}
	}
}

// TestExportStore_concurrentApplies: two applies of n mappings each,
// written through psa-syncd's API at the same time, all arrive.
func TestExportStore_concurrentApplies(t *testing.T) {
	t.Parallel()
	const n = 40
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true})
	srv := httptest.NewServer(e.d.Handler())
	t.Cleanup(srv.Close)
	instance := e.doc.PSA.Instance
	var wg sync.WaitGroup
	for apply := range 2 {
		b, err := export.NewHTTPBackend(srv.URL, dtToken, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		c := export.NewClient(b)
		sem := make(chan struct{}, 10)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				id := fmt.Sprintf("apply%d-customer%03d", apply, i)
				_, err := c.Update(t.Context(), psa.SystemAutotask, instance, func(d *export.Document) error {
					d.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: id, CompanyID: "1", ContractID: strconv.Itoa(1000*(apply+1) + i), UsageSync: true})
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if got := len(e.d.Export().CustomerMappings); got != 2*n {
		t.Errorf("after two concurrent applies of %d mappings psa-syncd uses %d, want %d", n, got, 2*n)
	}
	hist, err := e.d.State().ExportHistory(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) == 0 || len(hist) > 2*n {
		t.Errorf("history has %d versions, want between 1 and %d", len(hist), 2*n)
	}
}

// TestDaemon_exportFromS3: psa-syncd reads its export from an S3 bucket,
// asks again with If-None-Match on every poll, and picks up a new version.
func TestDaemon_exportFromS3(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	url := srv.ObjectURL("prod/psa-mappings.json")
	e := dtSetup(t, dtOptions{exportURL: url, noExport: true})
	b, err := export.OpenBackend(t.Context(), url, export.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := b.Save(t.Context(), e.encode(t, e.doc), "")
	if err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	e.d.watchTick = tick
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	<-e.d.scheduleChanged
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.d.watchLoop(ctx)

	next := e.doc.Clone()
	next.Revision = 2
	next.DeleteCustomer("file", "cust-globex")
	if _, err := b.Save(t.Context(), e.encode(t, next), v1); err != nil {
		t.Fatal(err)
	}
	tick <- time.Now()
	<-e.d.scheduleChanged // the new version was loaded
	if got := e.d.Export().Revision; got != 2 {
		t.Errorf("revision after a poll = %d, want 2", got)
	}
	// An unchanged object is not loaded again.
	loaded := e.d.exp.Load()
	tick <- time.Now()
	tick <- time.Now() // the second tick is taken once the first poll is done
	if e.d.exp.Load() != loaded {
		t.Error("a poll of an unchanged object loaded it again")
	}
}

// TestDaemon_exportRemoteUnreachable: a store that stays unreachable fails
// every poll, but is logged once.
func TestDaemon_exportRemoteUnreachable(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{exportURL: gone.URL, noExport: true, daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	for i := range 3 {
		e.d.reloadMu.Lock()
		err := e.d.reloadExportLocked(false)
		e.d.reloadMu.Unlock()
		if err == nil {
			t.Fatal("a poll of an unreachable store succeeded")
		}
		// The store's error names it; the daemon's does not again.
		if i == 0 && (strings.Count(err.Error(), `"`+gone.URL+`"`) != 1 || !strings.HasPrefix(err.Error(), `daemon: mapping export "`+gone.URL+`": `)) {
			t.Errorf("error does not name the store once, as its own error does: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "Error loading mapping export"); n != 1 {
		t.Errorf("three failed polls logged %d errors, want 1:\n%s", n, logs.String())
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v, want 0", got)
	}
}

// TestHandler_putLargeExport: PUT /api/v1/export takes an export far larger
// than the 64 KiB the API's other bodies are held to.
func TestHandler_putLargeExport(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true})
	doc := e.doc.Clone()
	for i := range 2000 {
		doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%04d", i), CustomerName: fmt.Sprintf("Customer %d", i),
			CompanyID: strconv.FormatInt(e.companies[0], 10), ContractID: strconv.FormatInt(e.contracts[0], 10)})
	}
	body := e.encode(t, doc)
	if len(body) < 4*maxRequestBody {
		t.Fatalf("the export is %d bytes; the test wants one well over %d", len(body), maxRequestBody)
	}
	rec := dtExportRequest(t, e.d.Handler(), http.MethodPut, "/api/v1/export", body, map[string]string{"If-None-Match": "*"})
	if rec.Code != http.StatusCreated {
		t.Fatalf("PUT of a %d-byte export = %d %s, want 201", len(body), rec.Code, rec.Body)
	}
	if got := len(e.d.Export().CustomerMappings); got != len(doc.CustomerMappings) {
		t.Errorf("the export in use has %d customer mappings, want %d", got, len(doc.CustomerMappings))
	}
}

// TestDaemon_exportRevisionGoesBack: an export with a lower revision than
// the one in use is loaded (a restore from a backup is one), with a
// warning that names both revisions.
func TestDaemon_exportRevisionGoesBack(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	newer := e.doc.Clone()
	newer.Revision = e.doc.Revision + 5
	e.writeExport(t, newer)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "lower revision") {
		t.Fatalf("a newer export was warned about:\n%s", logs.String())
	}
	e.writeExport(t, e.doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := e.d.Export().Revision; got != e.doc.Revision {
		t.Errorf("export in use has revision %d, want the older %d loaded", got, e.doc.Revision)
	}
	want := fmt.Sprintf("revision=%d previous_revision=%d", e.doc.Revision, newer.Revision)
	if !strings.Contains(logs.String(), "level=WARN msg=\"Loaded a mapping export with a lower revision") || !strings.Contains(logs.String(), want) {
		t.Errorf("no warning naming %s:\n%s", want, logs.String())
	}
}

// proxyETags is a reverse proxy's rewrite of the ETags of the answers
// passing through it.
type proxyETags struct {
	http.ResponseWriter
	rewrite func(string) string
	done    bool
}

func (w *proxyETags) WriteHeader(code int) {
	if e := w.Header().Get("ETag"); !w.done && e != "" {
		w.Header().Set("ETag", w.rewrite(e))
	}
	w.done = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *proxyETags) Write(p []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// TestExportStore_behindCompressingProxy: psa-syncd behind a reverse proxy
// that compresses its answers still takes the provider's changes. A proxy
// that compresses an answer changes its ETag: nginx makes "N" weak (W/"N"),
// Apache's mod_deflate makes it "N-gzip", and psa-syncd never matches
// either in If-Match. Every write after the first then lost its
// compare-and-swap until the provider gave up with "changed by another
// writer".
func TestExportStore_behindCompressingProxy(t *testing.T) {
	t.Parallel()
	for name, rewrite := range map[string]func(r *http.Request, etag string) string{
		"nginx": func(r *http.Request, etag string) string {
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				return "W/" + etag
			}
			return etag
		},
		"nginx-always-weak": func(_ *http.Request, etag string) string { return "W/" + etag },
		"apache": func(r *http.Request, etag string) string {
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				return strings.TrimSuffix(etag, `"`) + `-gzip"`
			}
			return etag
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true})
			h := e.d.Handler()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(&proxyETags{ResponseWriter: w, rewrite: func(etag string) string { return rewrite(r, etag) }}, r)
			}))
			t.Cleanup(srv.Close)
			b, err := export.NewHTTPBackend(srv.URL, dtToken, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			c := export.NewClient(b)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			for i := range 3 {
				id := fmt.Sprintf("customer%d", i)
				_, err := c.Update(ctx, psa.SystemAutotask, e.doc.PSA.Instance, func(d *export.Document) error {
					d.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: id, CompanyID: "1", ContractID: strconv.Itoa(100 + i), UsageSync: true})
					return nil
				})
				if err != nil {
					t.Fatalf("write %d through the proxy: %v", i+1, err)
				}
			}
			if got := len(e.d.Export().CustomerMappings); got != 3 {
				t.Errorf("psa-syncd uses %d customer mappings, want 3", got)
			}
		})
	}
}

// TestHandler_exportAdvertisesReaderFields: every answer to GET
// /api/v1/export, the 404 before the first export too, lists in
// export.ReaderFieldsHeader the export fields psa-syncd reads; an export
// that sets every one of them is accepted, and one with a field it does
// not list is refused, so that the provider can tell at plan which
// exports psa-syncd would take.
func TestHandler_exportAdvertisesReaderFields(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true})
	h := e.d.Handler()
	want := strings.Join(export.ReaderFields(), ",")
	rec := dtExportRequest(t, h, http.MethodGet, "/api/v1/export", nil, nil)
	if got := rec.Header().Get(export.ReaderFieldsHeader); rec.Code != http.StatusNotFound || got != want {
		t.Errorf("GET of an empty store = %d with %s %q, want 404 with %q", rec.Code, export.ReaderFieldsHeader, got, want)
	}

	// Every field set: tickets with an owner, a renewal, owners on the
	// mappings and the integration settings.
	doc := e.doc.Clone()
	doc.Integration = &export.Integration{Enabled: true, Owner: "KDFMEKRPHFSUX6AA"}
	doc.Tickets = &export.Tickets{Enabled: true, Schedule: "every 5m", QueueID: "29683", NewStatusID: "1", ClosedStatusID: "5", ReopenStatusID: "8",
		Priorities: map[string]string{"high": "1"}, SourceID: "2", IssueTypeID: "3", SubIssueTypeID: "4", TicketTypeID: "1", CategoryID: "2",
		NoteTypeID: "1", MinSeverity: "medium", TitleFormat: export.DefaultTitleFormat, OnResolve: export.OnResolveClose, OnReturn: export.OnReturnReopen,
		ReopenWindow: "72h", BackfillWindow: "48h", MaxPerPass: 50, MaxPerCustomer: 10, Owner: "QDVMFJE6HPI5Y7DV"}
	for i := range doc.ProductMappings {
		doc.ProductMappings[i].Owner = "3f2a9c"
	}
	for i := range doc.CustomerMappings {
		doc.CustomerMappings[i].Owner = "8d01e4"
	}
	doc.CustomerMappings[0].NextContractID = doc.CustomerMappings[0].ContractID + "1"
	data := e.encode(t, doc)
	written, err := export.WrittenFields(data)
	if err != nil {
		t.Fatal(err)
	}
	if unknown := export.UnknownFields(written, export.ParseReaderFields(want)); len(unknown) > 0 {
		t.Errorf("the header leaves out %v, which the export sets", unknown)
	}
	if missing := export.UnknownFields(export.ReaderFields(), written); len(missing) > 0 {
		t.Fatalf("the test's export does not set %v: set every field the header lists", missing)
	}
	unknownField := bytes.Replace(data, []byte(`"schema":`), []byte(`"colour":"blue","schema":`), 1)
	if rec := dtExportRequest(t, h, http.MethodPut, "/api/v1/export", unknownField, map[string]string{"If-None-Match": "*"}); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("PUT of an export with a field the header does not list = %d %s, want 422", rec.Code, rec.Body)
	}
	if rec := dtExportRequest(t, h, http.MethodPut, "/api/v1/export", data, map[string]string{"If-None-Match": "*"}); rec.Code != http.StatusCreated {
		t.Fatalf("PUT of an export setting every field the header lists = %d %s, want 201", rec.Code, rec.Body)
	}
	rec = dtExportRequest(t, h, http.MethodGet, "/api/v1/export", nil, nil)
	if got := rec.Header().Get(export.ReaderFieldsHeader); rec.Code != http.StatusOK || got != want {
		t.Errorf("GET = %d with %s %q, want 200 with %q", rec.Code, export.ReaderFieldsHeader, got, want)
	}
	rec = dtExportRequest(t, h, http.MethodGet, "/api/v1/export", nil, map[string]string{"If-None-Match": rec.Header().Get("ETag")})
	if got := rec.Header().Get(export.ReaderFieldsHeader); rec.Code != http.StatusNotModified || got != want {
		t.Errorf("conditional GET = %d with %s %q, want 304 with %q", rec.Code, export.ReaderFieldsHeader, got, want)
	}
}

// TestStatusPage_stateFailureNamesNoDatabase: the status page, which
// anyone reaching the listener sees when no basic_auth_users are set, says
// how a read of the state database failed, not its error: that names the
// database's host and user, or its file's path. The log has the error.
func TestStatusPage_stateFailureNamesNoDatabase(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	where := e.d.State().Path()
	if err := e.d.State().Close(); err != nil {
		t.Fatal(err)
	}
	rec := dtServe(t, e.d, http.MethodGet, "/", "", "")
	if strings.Contains(rec.Body.String(), where) || strings.Contains(rec.Body.String(), "closed") ||
		!strings.Contains(rec.Body.String(), "the state database failed;") {
		t.Errorf("the status page with the state database failing = %d, want it to say the state database failed, without its error:\n%s", rec.Code, rec.Body)
	}
	for _, what := range []string{"reading customers", "reading runs", "reading open intents", "reading unmapped usage", "reading the lines held for a surge"} {
		if !strings.Contains(logs.String(), `request="`+what+`"`) {
			t.Errorf("the log has no line for %s:\n%s", what, logs.String())
		}
	}
	if !strings.Contains(logs.String(), where) {
		t.Errorf("the state database's error is not in the log:\n%s", logs.String())
	}
}

// TestHandler_noExportNamesNoStore: GET /api/v1/export, which needs no
// credentials, before an export is loaded does not name the store (its
// file's path, or its host).
func TestHandler_noExportNamesNoStore(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken, noExport: true})
	if err := e.d.Reload(); err == nil {
		t.Fatal("Reload without an export file succeeded")
	}
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/export", "", "")
	if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), e.exportPath) || strings.Contains(rec.Body.String(), filepath.Base(e.exportPath)) {
		t.Errorf("GET /api/v1/export without an export = %d %s; want 404 not naming the export's file", rec.Code, rec.Body)
	}
}
