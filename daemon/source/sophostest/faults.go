package sophostest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Fault makes matching requests fail. It has the same fields and meaning as
// the PSA simulator's fault (psatest.Fault), minus DropAfterHandling: every
// Sophos call the client makes is a read.
type Fault struct {
	// Method matches the request method; "" matches any.
	Method string
	// Path is an exact path, or a prefix when it ends in "*"; case-insensitive.
	// "" matches any path.
	Path string
	// Status is the status to answer with; 0 passes the request on to the
	// handler (for latency-only faults).
	Status int
	// Body is the response body; "" means a Sophos-shaped error envelope.
	Body string
	// RetryAfter sets the Retry-After header, in whole seconds rounded up,
	// when it is > 0.
	RetryAfter time.Duration
	// Latency is added before handling.
	Latency time.Duration
	// Drop closes the connection without a response.
	Drop bool
	// Times is how many requests the fault applies to; 0 means forever.
	Times int
	// EchoRequest makes the body for Status quote the whole request:
	// method, URL, every header (the bearer token included) and the body
	// (the token request's client secret included), as a careless proxy or
	// server does, in Sophos ID's error shape on the token endpoint and the
	// API's elsewhere. It tests that clients keep secrets out of their
	// errors.
	EchoRequest bool
}

type fault struct {
	Fault
	used int
}

// AddFault adds a fault at run time. Faults are tried in the order added; the
// first that matches a request applies.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{Fault: f})
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// matchFault returns the first live fault matching the request and counts
// its use. The caller holds s.mu.
func (s *Server) matchFault(method, path string) *Fault {
	for _, f := range s.faults {
		if f.Times > 0 && f.used >= f.Times {
			continue
		}
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if !pathMatches(f.Path, path) {
			continue
		}
		f.used++
		ff := f.Fault
		return &ff
	}
	return nil
}

func pathMatches(pattern, path string) bool {
	if pattern == "" {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(strings.ToLower(path), strings.ToLower(prefix))
	}
	return strings.EqualFold(pattern, path)
}

// writeEcho answers with f.Status and a message quoting the request, whose
// body is body.
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
	if strings.EqualFold(r.URL.Path, tokenPath) {
		writeJSON(w, f.Status, TokenError{ErrorCode: "oauth.echo", Message: b.String(), TrackingID: newID()})
		return
	}
	writeError(w, f.Status, errorName(f.Status), b.String())
}
