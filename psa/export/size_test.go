package export

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
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

// TestOpenBackend_s3SDKLogs: the AWS SDK's own messages for an S3 store go
// to BackendOptions.Logger, in the caller's format, warnings at warn,
// instead of the SDK's plain lines on standard error among psa-syncd's
// JSON log.
func TestOpenBackend_s3SDKLogs(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := OpenBackend(t.Context(), "s3://bucket/psa-mappings.json?region=eu-west-1&endpoint=https://minio.example:9000", BackendOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s3b, ok := b.(*S3Backend)
	if !ok {
		t.Fatalf("OpenBackend of an s3:// URL returned a %T", b)
	}
	sdkLogger := s3b.client.Options().Logger
	sdkLogger.Logf(logging.Warn, "falling back to IMDSv1: %s", "operation error ec2imds")
	sdkLogger.Logf(logging.Debug, "request %d", 1)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"level":"WARN","msg":"AWS SDK: falling back to IMDSv1: operation error ec2imds"`) ||
		!strings.Contains(lines[1], `"level":"DEBUG","msg":"AWS SDK: request 1"`) ||
		!strings.Contains(lines[0], `"store":"s3://bucket/psa-mappings.json?`) {
		t.Errorf("the SDK's messages were logged as\n%s\nwant a WARN and a DEBUG line of the JSON logger naming the store", buf.String())
	}
}

// TestFileStores_tooLarge: an export file above MaxSize is refused by the
// file store and by Store, with an error naming the file and the cap, as
// the network stores refuse one; it is not read into memory (a sparse
// file of MaxSize+1 bytes costs no disk). One at MaxSize is read.
func TestFileStores_tooLarge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "psa-mappings.json")
	if err := os.WriteFile(big, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxSize+1); err != nil {
		t.Fatal(err)
	}
	want := `export "` + big + `": reading: the file is larger than 64 MiB, the most psa-sync reads of a mapping export; is it the mapping export?`
	if _, err := NewFileBackend(big).Load(t.Context(), ""); err == nil || err.Error() != want {
		t.Errorf("FileBackend.Load of a %d-byte file = %v\nwant %s", MaxSize+1, err, want)
	}
	if _, err := NewFileBackend(big).Load(t.Context(), "sha256:00"); err == nil || err.Error() != want {
		t.Errorf("FileBackend.Load(ifNoneMatch) of a %d-byte file = %v\nwant %s", MaxSize+1, err, want)
	}
	if _, err := NewStore(big).Read(); err == nil || err.Error() != want {
		t.Errorf("Store.Read of a %d-byte file = %v\nwant %s", MaxSize+1, err, want)
	}
	if _, err := NewFileBackend(big).Save(t.Context(), []byte("{}"), "sha256:00"); err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Errorf("FileBackend.Save over a %d-byte file = %v, want an error saying it is larger than 64 MiB", MaxSize+1, err)
	}
	if err := os.Truncate(big, MaxSize); err != nil {
		t.Fatal(err)
	}
	if blob, err := NewFileBackend(big).Load(t.Context(), ""); err != nil || len(blob.Data) != MaxSize {
		t.Errorf("FileBackend.Load of a %d-byte file = %d bytes, %v; want all of it", MaxSize, len(blob.Data), err)
	}
}

// TestFileBackend_endless: an export path that names an endless file is
// refused at the cap, neither read nor hashed until memory or time runs
// out.
func TestFileBackend_endless(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	for _, etag := range []string{"", "sha256:00"} {
		if _, err := NewFileBackend("/dev/zero").Load(t.Context(), etag); err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
			t.Errorf("Load(%q) of /dev/zero = %v, want an error saying it is larger than 64 MiB", etag, err)
		}
	}
}
