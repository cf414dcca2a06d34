package rest

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

const (
	// MaxErrorBody bounds how much of an error response (or of a small
	// discovery answer) is read.
	MaxErrorBody = 1 << 20

	// MaxBody bounds how much of a successful response is read; a page of
	// any of the APIs is far below it.
	MaxBody = 64 << 20

	// MaxRetryAfter is the longest Retry-After a client waits for before
	// retrying, after a 429 or a 5xx alike; a longer one is returned to the
	// caller instead (see RetryAfterTooLongError).
	MaxRetryAfter = 5 * time.Minute
)

// RetryAfterTooLongError is a failure that would be retried but for the
// server's Retry-After, which asks for a longer wait than MaxRetryAfter: a
// sync pass does not stall on it. It wraps the client's error for the
// answer, so errors.As still finds that.
type RetryAfterTooLongError struct {
	// Err is the client's error for the answer, with its package prefix.
	Err error
	// RetryAfter is the wait the server asked for.
	RetryAfter time.Duration
}

// Error says what the server asked and the cap it exceeds.
func (e *RetryAfterTooLongError) Error() string {
	return fmt.Sprintf("%v (not retried: the PSA asked to wait %s before a retry, longer than the %s a client waits)", e.Err, e.RetryAfter, MaxRetryAfter)
}

// Unwrap returns the client's error.
func (e *RetryAfterTooLongError) Unwrap() error { return e.Err }

// CapRetryAfter decides on a retry of a server fault (a 5xx answer, err)
// that asked for retryAfter: within MaxRetryAfter it returns retryAfter and
// err to retry after it; beyond, a *RetryAfterTooLongError to return
// instead of retrying, as the clients do for a 429.
func CapRetryAfter(err error, retryAfter time.Duration) (retry bool, wait time.Duration, out error) {
	if retryAfter > MaxRetryAfter {
		return false, 0, &RetryAfterTooLongError{Err: err, RetryAfter: retryAfter}
	}
	return true, retryAfter, err
}

// ReadErrorBody reads at most MaxErrorBody bytes of r's body for an error
// message, as redact.ErrorBody does: decompressed from gzip, and nothing of
// a body in another encoding.
func ReadErrorBody(r *http.Response) []byte {
	return redact.ErrorBody(r, MaxErrorBody)
}

// maxPresized is the largest Content-Length ReadBody allocates for before
// it has read the body: a larger length (or a wrong one) costs no memory
// until the bytes arrive.
const maxPresized = 4 << 20

// ReadBody reads r's body, refusing one longer than MaxBody with an error
// that says so (an answer cut at the cap would otherwise be reported as
// truncated JSON). When the response gives its length, the body is read
// into one buffer of that size instead of one that doubles as it fills (a
// page of 500 rows is about 100 KB).
//
// A gzip-compressed body that Go's transport left so (the caller's HTTP
// client asked for gzip itself, or the server compressed it unasked) is
// read decompressed, the cap applying to the decompressed bytes, as
// ReadErrorBody does; a body in another encoding fails with an error that
// names it, rather than as JSON that does not decode (redact.DecodedBody,
// which the clients' reads outside this package share).
func ReadBody(r *http.Response) ([]byte, error) {
	return readBody(r, MaxBody)
}

// readBody is ReadBody with the cap as a parameter, for tests.
func readBody(r *http.Response, limit int64) ([]byte, error) {
	body, err := redact.DecodedBody(r)
	if err != nil {
		return nil, err
	}
	n := r.ContentLength
	if body != r.Body {
		n = -1 // Content-Length is the compressed size.
	}
	data, err := readAtMost(body, n, limit+1)
	if err == nil && int64(len(data)) > limit {
		return nil, fmt.Errorf("the answer is larger than %s, the most a client reads", byteSize(limit))
	}
	return data, err
}

// readAtMost reads at most limit bytes of body, whose length is n (-1 when
// unknown).
func readAtMost(body io.Reader, n, limit int64) ([]byte, error) {
	lr := io.LimitReader(body, limit)
	if n <= 0 || n > maxPresized || n > limit {
		return io.ReadAll(lr)
	}
	buf := make([]byte, 0, n+1) // one more byte: the read that finds EOF does not grow it
	for {
		m, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return buf, err
		case len(buf) == cap(buf):
			// Longer than announced: read the rest as ReadAll would.
			rest, err := io.ReadAll(lr)
			return append(buf, rest...), err
		}
	}
}

// byteSize formats n bytes for a message: "64 MiB", or "512 bytes" below
// a MiB.
func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// maxRetryAfterHeader is the longest wait RetryAfter returns: no PSA's
// rate limit window is longer than an hour, and a count of seconds
// beyond some 292 years would overflow time.Duration (a negative wait,
// retried at once), or not parse at all (read as no Retry-After).
const maxRetryAfterHeader = 24 * time.Hour

// RetryAfter parses r's Retry-After header, given in seconds or as an HTTP
// date, at most maxRetryAfterHeader. It returns 0 for a nil response, a
// missing or malformed header, or a date in the past.
func RetryAfter(r *http.Response) time.Duration {
	if r == nil {
		return 0
	}
	v := strings.TrimSpace(r.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		// Digits only: past int64, ParseInt fails with ErrRange.
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxRetryAfterHeader/time.Second) {
			return maxRetryAfterHeader
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return min(d, maxRetryAfterHeader)
		}
	}
	return 0
}

// DescribeResponse describes an error response for an error message, without
// a package prefix: "GET https://host/path: 404 CODE: first; second", or
// "GET https://host/path: 404 Not Found" when there are no messages. The URL
// is redacted. The method and URL are left out when r has no request, and
// the status when r is nil; code, a vendor's error code, may be empty.
func DescribeResponse(r *http.Response, code string, msgs []string) string {
	var b strings.Builder
	if r != nil && r.Request != nil {
		fmt.Fprintf(&b, "%s %s: ", r.Request.Method, RedactURL(r.Request.URL))
	}
	if r != nil {
		b.WriteString(strconv.Itoa(r.StatusCode))
	}
	if code != "" {
		fmt.Fprintf(&b, " %s", code)
	}
	if len(msgs) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(msgs, "; "))
	} else if r != nil {
		b.WriteString(" ")
		b.WriteString(http.StatusText(r.StatusCode))
	}
	return b.String()
}
