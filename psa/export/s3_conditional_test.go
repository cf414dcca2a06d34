package export

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
)

// fakeS3 is a path-style S3 store of objects in memory that honours
// If-Match and If-None-Match on PUT only when conditional is set, as some
// S3-compatible stores do not. It counts the PUTs of each key.
type fakeS3 struct {
	conditional bool

	mu      sync.Mutex
	objects map[string][]byte
	etags   map[string]string
	puts    map[string]int
	n       int
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.URL.Path
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, code)
	}
	data, exists := f.objects[key]
	switch r.Method {
	case http.MethodGet:
		if !exists {
			fail(http.StatusNotFound, "NoSuchKey")
			return
		}
		if r.Header.Get("If-None-Match") == f.etags[key] {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", f.etags[key])
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		_, _ = w.Write(data)
	case http.MethodPut:
		f.puts[key]++
		if f.conditional {
			switch m := r.Header.Get("If-Match"); {
			case m != "" && !exists:
				fail(http.StatusNotFound, "NoSuchKey")
				return
			case m != "" && m != f.etags[key], r.Header.Get("If-None-Match") == "*" && exists:
				fail(http.StatusPreconditionFailed, "PreconditionFailed")
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		f.n++
		f.objects[key], f.etags[key] = body, fmt.Sprintf(`"v%d"`, f.n)
		w.Header().Set("ETag", f.etags[key])
	case http.MethodDelete:
		delete(f.objects, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		fail(http.StatusMethodNotAllowed, "MethodNotAllowed")
	}
}

// startFakeS3 serves a fakeS3 and returns it with the URL of the export
// object in it, plus extra query parameters. It sets the AWS environment,
// so its tests do not run in parallel.
func startFakeS3(t *testing.T, conditional bool, extra string) (*fakeS3, string) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKES3")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-s3-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	f := &fakeS3{conditional: conditional, objects: map[string][]byte{}, etags: map[string]string{}, puts: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, "s3://bucket/ci/psa-mappings.json?region=us-east-1&use_path_style=true&endpoint=" + srv.URL + extra
}

const (
	fakeExportKey = "/bucket/ci/psa-mappings.json"
	fakeCheckKey  = fakeExportKey + conditionalCheckSuffix
)

// TestS3Backend_storeIgnoringIfMatch: a store that ignores If-Match would
// let two overlapping applies each replace the export, the second dropping
// the first one's changes. The first write of a process finds that out
// (its check's write is stored where it must be refused) and fails naming
// the store's endpoint and what to do, leaving the export as it was and no
// object of the check; a read alone writes nothing. With
// conditional_writes=unchecked the write goes through unchecked.
func TestS3Backend_storeIgnoringIfMatch(t *testing.T) {
	f, url := startFakeS3(t, false, "")
	endpoint := url[strings.Index(url, "endpoint=")+len("endpoint="):]
	first, err := OpenBackend(t.Context(), url+"&conditional_writes=unchecked", BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(first).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error { d.PutCustomer(acme()); return nil }); err != nil {
		t.Fatalf("a write with conditional_writes=unchecked: %v", err)
	}
	if f.puts[fakeCheckKey] != 0 {
		t.Errorf("conditional_writes=unchecked: the check wrote %d times, want none", f.puts[fakeCheckKey])
	}
	before := string(f.objects[fakeExportKey])

	b, err := OpenBackend(t.Context(), url, BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(b)
	if _, _, err := c.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.puts[fakeCheckKey] != 0 || f.puts[fakeExportKey] != 1 {
		t.Errorf("a read wrote: %d writes of the check, %d of the export, want none and the one before", f.puts[fakeCheckKey], f.puts[fakeExportKey])
	}
	_, err = c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
		d.DeleteCustomer(acme().Source, acme().CustomerID)
		return nil
	})
	want := "the store at " + endpoint + " ignores If-Match: it wrote s3://bucket/ci/psa-mappings.json.conditional-check with an If-Match that names no version of it, where it must refuse with 412 Precondition Failed"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "conditional_writes=unchecked") || errors.Is(err, ErrConflict) {
		t.Fatalf("a write to a store that ignores If-Match = %v, want an error saying %q and naming conditional_writes=unchecked", err, want)
	}
	if got := string(f.objects[fakeExportKey]); got != before {
		t.Errorf("the export changed after the failed check:\n%s\nwant\n%s", got, before)
	}
	if _, ok := f.objects[fakeCheckKey]; ok {
		t.Error("the check's object was left in the store")
	}
}

// TestS3Backend_conditionalWritesCheckedOnce: against a store that honours
// If-Match, the check costs one refused write per backend, whatever the
// number of writes after it.
func TestS3Backend_conditionalWritesCheckedOnce(t *testing.T) {
	f, url := startFakeS3(t, true, "")
	b, err := OpenBackend(t.Context(), url, BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(b)
	for i := range 3 {
		if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
			m := acme()
			m.CustomerID = fmt.Sprintf("cust-%d", i)
			d.PutCustomer(m)
			return nil
		}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if f.puts[fakeCheckKey] != 1 || f.puts[fakeExportKey] != 3 {
		t.Errorf("%d writes of the check and %d of the export, want 1 and 3", f.puts[fakeCheckKey], f.puts[fakeExportKey])
	}
	if _, ok := f.objects[fakeCheckKey]; ok {
		t.Error("the store kept the check's object")
	}
}

// TestS3Backend_conditionalWritesVersitygw: versitygw honours If-Match:
// the check passes, and leaves no object beside the export.
func TestS3Backend_conditionalWritesVersitygw(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	b, err := NewS3Backend(t.Context(), srv.ObjectURL("ci/psa-mappings.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(b).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error { d.PutCustomer(acme()); return nil }); err != nil {
		t.Fatal(err)
	}
	if !b.check.passed {
		t.Error("the write did not check that the store refuses a stale If-Match")
	}
	_, err = b.client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key + conditionalCheckSuffix)})
	if status(err) != http.StatusNotFound {
		t.Errorf("HEAD of the check's object = %v, want 404: the store kept it", err)
	}
}

// TestS3Backend_awsNotChecked: AWS S3 itself (no endpoint) honours
// If-Match, and the policies of its users need not let the check write
// beside the export: the check sends nothing.
func TestS3Backend_awsNotChecked(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKES3")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-s3-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	b, err := NewS3Backend(t.Context(), "s3://bucket/ci/psa-mappings.json?region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Endpoint() != "" {
		t.Fatalf("endpoint %q, want AWS's", b.Endpoint())
	}
	if err := b.checkConditionalWrites(t.Context()); err != nil || b.check.passed {
		t.Errorf("check against AWS S3 = %v (passed %v), want nil without a request", err, b.check.passed)
	}
}
