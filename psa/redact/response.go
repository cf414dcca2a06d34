package redact

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Response returns what an error may keep of resp: its status, its
// headers with r's secrets replaced (Set-Cookie left out), and a request
// that holds only the method and the URL, without user information or
// query. The request resp answers carries the credentials (the
// Authorization header, Autotask's Secret and ApiIntegrationCode,
// ConnectWise's clientId, a token form's password in its body), and an
// error value may be printed whole: by a debugging or deep printer, a log
// of its fields, a test's failure message. The body is empty. A nil resp
// gives nil.
func (r *Redactor) Response(resp *http.Response) *http.Response {
	if resp == nil {
		return nil
	}
	kept := &http.Response{
		Status:        r.String(resp.Status),
		StatusCode:    resp.StatusCode,
		Proto:         resp.Proto,
		ProtoMajor:    resp.ProtoMajor,
		ProtoMinor:    resp.ProtoMinor,
		Header:        make(http.Header, len(resp.Header)),
		Body:          http.NoBody,
		ContentLength: resp.ContentLength,
		Uncompressed:  resp.Uncompressed,
	}
	for k, vs := range resp.Header {
		if k != "Set-Cookie" {
			kept.Header[k] = r.Strings(append([]string(nil), vs...))
		}
	}
	if req := resp.Request; req != nil {
		kept.Request = &http.Request{Method: req.Method, Header: http.Header{}}
		if req.URL != nil {
			u := *req.URL
			u.User, u.RawQuery, u.ForceQuery = nil, "", false
			kept.Request.URL, kept.Request.Host = &u, u.Host
		} else {
			kept.Request.URL = &url.URL{}
		}
	}
	return kept
}

// ErrorBody reads at most limit bytes of resp's body for an error message
// to quote: decompressed when it is gzip-compressed and Go's transport left
// it so (see DecodedBody), and not at all (nil) in another encoding, since
// compressed bytes, which no redaction sees into, must never be quoted. A
// read error only shortens the result: an error answer is described by its
// status even when its body is lost.
func ErrorBody(resp *http.Response, limit int64) []byte {
	body, err := DecodedBody(resp)
	if err != nil {
		return nil
	}
	data, _ := io.ReadAll(io.LimitReader(body, limit))
	return data
}

// DecodedBody returns resp's body to read: decompressed when it is
// gzip-compressed and Go's transport left it so (the request asked for
// gzip itself, or the server compressed it unasked), whose
// resp.ContentLength is then that of the compressed bytes. A body in
// another encoding, or one that says it is gzip but is not, is an error
// that names the encoding, rather than bytes that fail to decode as JSON
// on their first byte.
func DecodedBody(resp *http.Response) (io.Reader, error) {
	switch enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return resp.Body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("the answer says it is gzip-compressed (Content-Encoding: %s) but does not decompress: %w", enc, err)
		}
		return zr, nil
	default:
		return nil, fmt.Errorf("the answer is compressed (Content-Encoding: %s), which psa-sync cannot read (only gzip): an HTTP client that sets Accept-Encoding itself, or a proxy that compresses unasked, gets such answers", enc)
	}
}
