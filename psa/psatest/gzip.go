package psatest

import "net/http"

// AcceptGzip is an http.RoundTripper that asks for gzip itself, as some
// middleware does: Go's transport then leaves a compressed answer
// compressed, for the client under test to read.
type AcceptGzip struct{}

// RoundTrip sends req with Accept-Encoding: gzip through
// http.DefaultTransport.
func (AcceptGzip) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Accept-Encoding", "gzip")
	return http.DefaultTransport.RoundTrip(req)
}
