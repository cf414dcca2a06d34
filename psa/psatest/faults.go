package psatest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fault describes a failure to inject into requests that match Method and
// Path. Faults are checked in the order they were added; the first match
// applies. The /_sim/ inspection endpoints are never faulted.
type Fault struct {
	// Method matches the request method; "" matches any.
	Method string
	// Path is the exact request path, or a prefix when it ends in "*";
	// matching is case-insensitive. "" matches any path.
	Path string
	// BodyContains, when set, limits the fault to requests whose body
	// contains it (case-sensitively): for example one create among
	// several on one path, told apart by the reference it carries.
	BodyContains string
	// Status is the status to answer with without calling the real handler.
	// 0 passes the request through to the handler (e.g. latency only).
	Status int
	// Body is the response body for Status; the default is an
	// Autotask-shaped {"errors":[...]} body, or ConnectWise's
	// {"code","message"} on a ConnectWise server.
	Body string
	// ContentType is the Content-Type of Body; the default is JSON's.
	// "text/html; charset=utf-8" with an HTML Body answers as a proxy's
	// sign-in page or a maintenance page would (see SignInPage).
	ContentType string
	// RetryAfter sets the Retry-After header (whole seconds, rounded up)
	// when > 0.
	RetryAfter time.Duration
	// Latency is added before handling. For a pass-through fault the
	// request holds its thread slot while it waits.
	Latency time.Duration
	// Drop closes the connection without a response and without handling
	// the request.
	Drop bool
	// DropAfterHandling runs the real handler (state changes happen), then
	// closes the connection without sending the response: a lost response.
	DropAfterHandling bool
	// Times is how many requests the fault applies to; 0 means forever.
	Times int
	// EchoRequest makes the body for Status quote the whole request:
	// method, URL, every header (credentials included) and the body, as a
	// careless proxy or server does, in an envelope that every vendor's
	// client reads as the error message. It tests that clients keep
	// secrets out of their errors.
	EchoRequest bool
	// Gzip sends the body for Status gzip-compressed, with
	// Content-Encoding: gzip, whether the request asked for it or not, as
	// some gateways do.
	Gzip bool
	// Received, when set, is called once a matching request was read
	// whole, before Latency: a test stops the client there knowing that
	// the request was sent, without a sleep.
	Received func()
}

// AddFault installs f at run time; it applies to requests that arrive from
// now on.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every installed fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// matchFault returns a copy of the first fault matching r, whose body is
// body, and uses up one of its Times.
func (s *Server) matchFault(r *http.Request, body []byte) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if !f.matches(r, body) {
			continue
		}
		c := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &c
	}
	return nil
}

func (f *Fault) matches(r *http.Request, body []byte) bool {
	if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
		return false
	}
	if f.BodyContains != "" && !bytes.Contains(body, []byte(f.BodyContains)) {
		return false
	}
	switch {
	case f.Path == "":
		return true
	case strings.HasSuffix(f.Path, "*"):
		return hasPrefixFold(r.URL.Path, strings.TrimSuffix(f.Path, "*"))
	default:
		return strings.EqualFold(r.URL.Path, f.Path)
	}
}

func writeFault(w http.ResponseWriter, f *Fault) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterValue(f.RetryAfter))
	}
	if f.Body == "" {
		writeErrors(w, f.Status, fmt.Sprintf("Simulated fault: HTTP %d %s", f.Status, http.StatusText(f.Status)))
		return
	}
	ct := f.ContentType
	if ct == "" {
		ct = "application/json; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(f.Status)
	_, _ = w.Write([]byte(f.Body))
}

// SignInPage is the HTML page a proxy or a single sign-on in front of a
// PSA answers with a 200, for a Fault's Body (with ContentType
// "text/html; charset=utf-8"): a page that is not the API's answer.
const SignInPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body><form method="post" action="/adfs/ls/"><input name="UserName"><input name="Password" type="password"></form></body></html>`

// writeEcho answers with f.Status and a message quoting the request.
func writeEcho(w http.ResponseWriter, f *Fault, r *http.Request, body []byte) {
	var b strings.Builder
	fmt.Fprintf(&b, "echo of the request: %s %s", r.Method, r.URL.String())
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s: %s;", k, strings.Join(r.Header[k], ", "))
	}
	fmt.Fprintf(&b, " body: %s", body)
	msg := b.String()
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterValue(f.RetryAfter))
	}
	// Autotask reads "errors", ConnectWise "code" and "message", Kaseya
	// BMS and ASP.NET "Message" (case-insensitively, as Go does).
	writeJSON(w, f.Status, map[string]any{"errors": []string{msg}, "code": "Echo", "message": msg})
}

// gzipBody compresses what b holds, and says so in its header.
func gzipBody(b *bufferedWriter) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(b.body.Bytes())
	_ = zw.Close()
	b.body.Reset()
	_, _ = b.body.Write(z.Bytes())
	b.header.Set("Content-Encoding", "gzip")
}

func retryAfterValue(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}

// dropConnection closes the client connection without writing a response.
// On TCP it resets the connection (linger 0), as a crashing proxy would.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 or a recorder: the closest thing is to abort the handler,
		// which makes net/http reset the stream.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
