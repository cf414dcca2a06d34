package resttest

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mount starts a test server, closed when tb ends, that serves the returned
// mux under basePath (with or without a trailing slash): the mux sees paths
// from the slash that ends basePath on, e.g. "/v2/crm/accounts" under
// "/bms-root/". A request that loses the base path fails tb and gets a 400, so that
// tests catch a client that drops part of its base URL (as go-github's
// setup does).
func Mount(tb testing.TB, basePath string) (mux *http.ServeMux, serverURL string) {
	tb.Helper()
	basePath = strings.TrimSuffix(basePath, "/")
	mux = http.NewServeMux()
	outer := http.NewServeMux()
	outer.Handle(basePath+"/", http.StripPrefix(basePath, mux))
	outer.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		tb.Errorf("request lost the base path %s: %s %s", basePath, r.Method, r.URL)
		http.Error(w, "request lost the base path", http.StatusBadRequest)
	})
	server := httptest.NewServer(outer)
	tb.Cleanup(server.Close)
	return mux, server.URL
}

// Method checks the request's method.
func Method(tb testing.TB, r *http.Request, want string) {
	tb.Helper()
	if got := r.Method; got != want {
		tb.Errorf("Request method: %v, want %v", got, want)
	}
}

// Header checks one header of the request; want "" checks that it is absent.
func Header(tb testing.TB, r *http.Request, header, want string) {
	tb.Helper()
	if got := r.Header.Get(header); got != want {
		tb.Errorf("Header.Get(%q) returned %q, want %q", header, got, want)
	}
}

// JSONBody checks that the request says it sends JSON and that its body is
// JSON equal to want: key order and spacing do not matter.
func JSONBody(tb testing.TB, r *http.Request, want string) {
	tb.Helper()
	Header(tb, r, "Content-Type", "application/json")
	b, err := io.ReadAll(r.Body)
	if err != nil {
		tb.Fatalf("reading body: %v", err)
	}
	var got, w any
	if err := json.Unmarshal(b, &got); err != nil {
		tb.Fatalf("request body %q is not JSON: %v", b, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("want %q is not JSON: %v", want, err)
	}
	if !reflect.DeepEqual(got, w) {
		tb.Errorf("Request body = %s, want %s", b, want)
	}
}

// DropConnection closes the request's connection without an HTTP response,
// as a proxy or a crashed server does: the client cannot tell whether the
// request was processed.
func DropConnection(tb testing.TB, w http.ResponseWriter) {
	tb.Helper()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		tb.Fatalf("hijack: %v", err)
	}
	conn.Close()
}

// Sleeps records the waits a client asks for between retries, in place of
// sleeping them. Its Sleep returns at once, with the context's error, and
// is safe for concurrent use.
type Sleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

// Sleep records d; it has the signature of the clients' sleep functions.
func (s *Sleeps) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
	return ctx.Err()
}

// Waits returns the waits recorded so far, in order.
func (s *Sleeps) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

// Answer is a canned answer: a handler that answers every request with
// Status (200 if zero), a Retry-After header if RetryAfter is set, and Body,
// and counts the requests it answered.
type Answer struct {
	Status     int
	RetryAfter string
	Body       string

	calls atomic.Int32
}

// ServeHTTP answers r and counts it.
func (a *Answer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a.calls.Add(1)
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	if a.Status != 0 {
		w.WriteHeader(a.Status)
	}
	io.WriteString(w, a.Body)
}

// Calls returns how many requests a answered.
func (a *Answer) Calls() int32 { return a.calls.Load() }

// EncodedJSON answers body as JSON compressed in the Content-Encoding enc:
// gzip-compressed for "gzip", and for any other encoding a few bytes that
// stand for one no client reads (such as "br"). It tests a client that gets
// a compressed answer it did not ask for (a proxy, or an HTTP client that
// asks for gzip itself, so that Go's transport leaves it compressed).
func EncodedJSON(w http.ResponseWriter, enc, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Encoding", enc)
	if enc != "gzip" {
		io.WriteString(w, "\x1b\x03compressed")
		return
	}
	zw := gzip.NewWriter(w)
	io.WriteString(zw, body)
	_ = zw.Close()
}
