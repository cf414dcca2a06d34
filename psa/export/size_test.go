package export

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// paddedExport answers every request with an n-byte JSON object, padded
// with spaces so that it would decode were it read whole; with length set
// it announces its Content-Length, else it streams without one.
func paddedExport(n int, length bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "application/json")
		if length {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write([]byte("{"))
		chunk := bytes.Repeat([]byte(" "), 1<<20)
		for left := n - 2; left > 0; {
			c := chunk[:min(len(chunk), left)]
			if _, err := w.Write(c); err != nil {
				return
			}
			left -= len(c)
		}
		_, _ = w.Write([]byte("}"))
	}
}

// TestBackends_Load_tooLarge: an object above MaxSize is refused with an
// error that says so, by every store that reads over the network, whether
// or not the answer announces its length; it is neither read whole into
// memory nor returned cut short (which decoding would call half-written).
func TestBackends_Load_tooLarge(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, length := range []bool{false, true} {
		srv := httptest.NewServer(paddedExport(MaxSize+1, length))
		defer srv.Close()
		s3b, err := NewS3Backend(t.Context(), "s3://bucket/psa-mappings.json?region=us-east-1&use_path_style=true&endpoint="+srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		httpb, err := NewHTTPBackend(srv.URL, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string]Backend{"s3": s3b, "http": httpb} {
			blob, err := b.Load(t.Context(), "")
			if err == nil || !strings.Contains(err.Error(), "larger than 64 MiB, the most psa-sync reads") {
				t.Errorf("%s Load of a %d-byte export (Content-Length sent: %v) = %d bytes, %v; want an error saying it is larger than 64 MiB",
					name, MaxSize+1, length, len(blob.Data), err)
			}
		}
	}
	// The largest export allowed still loads.
	srv := httptest.NewServer(paddedExport(MaxSize, false))
	defer srv.Close()
	b, err := NewHTTPBackend(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if blob, err := b.Load(t.Context(), ""); err != nil || len(blob.Data) != MaxSize {
		t.Errorf("HTTP Load of a %d-byte export = %d bytes, %v; want all of it", MaxSize, len(blob.Data), err)
	}
}
