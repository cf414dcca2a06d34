package rest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"missing", "", 0},
		{"seconds", "7", 7 * time.Second},
		{"seconds with spaces", " 3 ", 3 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"garbage", "soon", 0},
		{"past date", "Mon, 02 Jan 2006 15:04:05 GMT", 0},
		// Past the cap, and past what time.Duration holds (which gave a
		// negative or arbitrary wait) or int64 (which read as none).
		{"a day and a second", "86401", 24 * time.Hour},
		{"overflows time.Duration", "10000000000000", 24 * time.Hour},
		{"overflows int64", "99999999999999999999", 24 * time.Hour},
		{"far date", "Fri, 31 Dec 9999 23:59:59 GMT", 24 * time.Hour},
	} {
		r := &http.Response{Header: http.Header{}}
		if tc.header != "" {
			r.Header.Set("Retry-After", tc.header)
		}
		if got := RetryAfter(r); got != tc.want {
			t.Errorf("%s: RetryAfter(%q) = %s, want %s", tc.name, tc.header, got, tc.want)
		}
	}
	if got := RetryAfter(nil); got != 0 {
		t.Errorf("RetryAfter(nil) = %s, want 0", got)
	}
	r := &http.Response{Header: http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}}
	if got := RetryAfter(r); got < 58*time.Minute || got > time.Hour {
		t.Errorf("RetryAfter(date in an hour) = %s, want about 1h", got)
	}
}

// countingReader counts the bytes read from an endless body.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	c.n += len(p)
	return len(p), nil
}

func TestReadErrorBody(t *testing.T) {
	t.Parallel()
	src := &countingReader{}
	got := ReadErrorBody(&http.Response{Body: io.NopCloser(src)})
	if len(got) != MaxErrorBody {
		t.Errorf("ReadErrorBody of an endless body returned %d bytes, want %d", len(got), MaxErrorBody)
	}
	if src.n > MaxErrorBody+64<<10 {
		t.Errorf("ReadErrorBody read %d bytes, want about %d", src.n, MaxErrorBody)
	}
	got = ReadErrorBody(&http.Response{Body: io.NopCloser(io.MultiReader(strings.NewReader("partial"), errReader{}))})
	if string(got) != "partial" {
		t.Errorf("ReadErrorBody of a failing body = %q, want %q", got, "partial")
	}
}

// TestReadErrorBody_encoded: a gzip body that Go's transport left
// compressed is read decompressed; one in an encoding it cannot read is
// not read at all, rather than quoted as compressed bytes.
func TestReadErrorBody_encoded(t *testing.T) {
	t.Parallel()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write([]byte(`{"errors":["echo: Secret: s3cr3t"]}`))
	_ = zw.Close()
	for _, tc := range []struct {
		encoding string
		body     []byte
		want     string
	}{
		{"gzip", z.Bytes(), `{"errors":["echo: Secret: s3cr3t"]}`},
		{"x-gzip", z.Bytes(), `{"errors":["echo: Secret: s3cr3t"]}`},
		{"gzip", []byte("not gzip"), ""},
		{"br", []byte("\x1b\x03compressed"), ""},
		{"identity", []byte("plain"), "plain"},
	} {
		r := &http.Response{Header: http.Header{"Content-Encoding": {tc.encoding}}, Body: io.NopCloser(bytes.NewReader(tc.body))}
		if got := ReadErrorBody(r); string(got) != tc.want {
			t.Errorf("ReadErrorBody(Content-Encoding %s, %q) = %q, want %q", tc.encoding, tc.body, got, tc.want)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestReadBody(t *testing.T) {
	t.Parallel()
	got, err := ReadBody(&http.Response{Body: io.NopCloser(bytes.NewReader([]byte(`{"id":1}`)))})
	if err != nil || string(got) != `{"id":1}` {
		t.Errorf("ReadBody = %q, %v, want %q, nil", got, err, `{"id":1}`)
	}
	got, err = ReadBody(&http.Response{Body: io.NopCloser(io.LimitReader(&countingReader{}, MaxBody))})
	if err != nil || len(got) != MaxBody {
		t.Errorf("ReadBody of %d bytes returned %d bytes, %v, want all of them", MaxBody, len(got), err)
	}
	// One byte more is refused, not cut: cut at the cap, the answer would
	// be reported as truncated JSON.
	got, err = ReadBody(&http.Response{Body: io.NopCloser(io.LimitReader(&countingReader{}, MaxBody+1))})
	if want := "the answer is larger than 64 MiB, the most a client reads"; err == nil || err.Error() != want {
		t.Errorf("ReadBody of %d bytes returned %d bytes, %v, want error %q", MaxBody+1, len(got), err, want)
	}
	for _, length := range []int64{-1, 11, 10} {
		got, err := readBody(&http.Response{ContentLength: length, Body: io.NopCloser(strings.NewReader("0123456789a"))}, 10)
		if want := "the answer is larger than 10 bytes, the most a client reads"; err == nil || err.Error() != want {
			t.Errorf("readBody(11 bytes, Content-Length %d, cap 10) = %q, %v, want error %q", length, got, err, want)
		}
	}
	if _, err := ReadBody(&http.Response{Body: io.NopCloser(errReader{})}); err != io.ErrUnexpectedEOF {
		t.Errorf("ReadBody of a failing body: error = %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestReadBody_encoded: a successful answer that Go's transport left
// compressed (the caller's HTTP client asked for gzip itself, or the server
// compressed it unasked) is read decompressed, within the cap, instead of
// failing JSON decoding on its first byte; one in an encoding the client
// cannot read fails with an error that names the encoding.
func TestReadBody_encoded(t *testing.T) {
	t.Parallel()
	gz := func(s string) []byte {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return z.Bytes()
	}
	page := `{"items":[{"id":1}],"pageDetails":{"count":1}}`
	for _, tc := range []struct {
		encoding string
		body     []byte
		limit    int64
		want     string
		err      string
	}{
		{encoding: "gzip", body: gz(page), limit: MaxBody, want: page},
		{encoding: " X-Gzip ", body: gz(page), limit: MaxBody, want: page},
		{encoding: "identity", body: []byte(page), limit: MaxBody, want: page},
		{encoding: "gzip", body: gz(strings.Repeat("0", 11)), limit: 10, err: "the answer is larger than 10 bytes, the most a client reads"},
		{encoding: "gzip", body: []byte(page), limit: MaxBody, err: "the answer says it is gzip-compressed (Content-Encoding: gzip) but does not decompress: gzip: invalid header"},
		{encoding: "gzip", body: gz(page)[:20], limit: MaxBody, err: "unexpected EOF"}, // cut short, as a plain body would be
		{encoding: "br", body: []byte("\x1b\x03compressed"), limit: MaxBody, err: `the answer is compressed (Content-Encoding: br), which psa-sync cannot read (only gzip): an HTTP client that sets Accept-Encoding itself, or a proxy that compresses unasked, gets such answers`},
	} {
		// The Content-Length of a compressed answer is the compressed size.
		r := &http.Response{Header: http.Header{"Content-Encoding": {tc.encoding}}, ContentLength: int64(len(tc.body)), Body: io.NopCloser(bytes.NewReader(tc.body))}
		got, err := readBody(r, tc.limit)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("readBody(Content-Encoding %q) = %q, %v, want error %q", tc.encoding, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("readBody(Content-Encoding %q) = %q, %v, want %q", tc.encoding, got, err, tc.want)
		}
	}
}

func TestDescribeResponse(t *testing.T) {
	t.Parallel()
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.com/v2/crm/accounts/search?name=Acme", nil)
	withReq := &http.Response{StatusCode: http.StatusNotFound, Request: req}
	noReq := &http.Response{StatusCode: http.StatusInternalServerError}
	for _, tc := range []struct {
		name string
		r    *http.Response
		code string
		msgs []string
		want string
	}{
		{"messages", withReq, "", []string{"first", "second"}, "POST https://api.example.com/v2/crm/accounts/search: 404: first; second"},
		{"no messages", withReq, "", nil, "POST https://api.example.com/v2/crm/accounts/search: 404 Not Found"},
		{"code and messages", withReq, "InvalidObject", []string{"name: required"}, "POST https://api.example.com/v2/crm/accounts/search: 404 InvalidObject: name: required"},
		{"code only", withReq, "NotFound", nil, "POST https://api.example.com/v2/crm/accounts/search: 404 NotFound Not Found"},
		{"no request", noReq, "", []string{"boom"}, "500: boom"},
		{"no request, no messages", noReq, "", nil, "500 Internal Server Error"},
		{"no response", nil, "", []string{"refused"}, ": refused"},
		{"nothing", nil, "", nil, ""},
	} {
		if got := DescribeResponse(tc.r, tc.code, tc.msgs); got != tc.want {
			t.Errorf("%s: DescribeResponse = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestReadBody_contentLength reads bodies whose Content-Length is right,
// missing or wrong into one buffer.
func TestReadBody_contentLength(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("0123456789", 1000)
	for _, tc := range []struct {
		name   string
		length int64
	}{
		{"exact length", int64(len(body))},
		{"unknown length", -1},
		{"shorter than announced", int64(len(body)) + 100},
		{"longer than announced", int64(len(body)) - 100},
		{"one byte announced", 1},
		{"more than is allocated ahead", maxPresized + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// iotest.OneByteReader: the loop must put short reads together.
			r := &http.Response{ContentLength: tc.length, Body: io.NopCloser(iotest.OneByteReader(strings.NewReader(body)))}
			got, err := ReadBody(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != body {
				t.Errorf("ReadBody read %d bytes, want the %d of the body", len(got), len(body))
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("connection reset")
		r := &http.Response{ContentLength: 10, Body: io.NopCloser(io.MultiReader(strings.NewReader("01234"), iotest.ErrReader(boom)))}
		got, err := ReadBody(r)
		if !errors.Is(err, boom) || string(got) != "01234" {
			t.Errorf("ReadBody = %q, %v; want the 5 bytes read and %v", got, err, boom)
		}
	})
}

func TestCapRetryAfter(t *testing.T) {
	t.Parallel()
	fault := errors.New("vendor: GET https://host/x: 503 Service Unavailable")
	if retry, wait, err := CapRetryAfter(fault, MaxRetryAfter); !retry || wait != MaxRetryAfter || err != fault {
		t.Errorf("CapRetryAfter(err, %s) = %v, %s, %v; want a retry after it with err", MaxRetryAfter, retry, wait, err)
	}
	retry, wait, err := CapRetryAfter(fault, 24*time.Hour)
	var tl *RetryAfterTooLongError
	if retry || wait != 0 || !errors.As(err, &tl) || tl.RetryAfter != 24*time.Hour || !errors.Is(err, fault) {
		t.Fatalf("CapRetryAfter(err, 24h) = %v, %s, %v; want no retry and a *RetryAfterTooLongError wrapping err", retry, wait, err)
	}
	want := "vendor: GET https://host/x: 503 Service Unavailable (not retried: the PSA asked to wait 24h0m0s before a retry, longer than the 5m0s a client waits)"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}
