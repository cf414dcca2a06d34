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
// If-Match and If-None-Match: * on PUT only when ifMatch and ifNoneMatch
// are set, as some S3-compatible stores do not. It counts the PUTs of each
// key.
type fakeS3 struct {
	ifMatch, ifNoneMatch bool
	// denied keys answer a PUT with 403 AccessDenied, as a policy that
	// does not grant s3:PutObject on them.
	denied map[string]bool

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
		if f.denied[key] {
			fail(http.StatusForbidden, "AccessDenied")
			return
		}
		switch m := r.Header.Get("If-Match"); {
		case f.ifMatch && m != "" && !exists:
			fail(http.StatusNotFound, "NoSuchKey")
			return
		case f.ifMatch && m != "" && m != f.etags[key], f.ifNoneMatch && r.Header.Get("If-None-Match") == "*" && exists:
			fail(http.StatusPreconditionFailed, "PreconditionFailed")
			return
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
// object in it. It sets the AWS environment, so its tests do not run in
// parallel.
func startFakeS3(t *testing.T, ifMatch, ifNoneMatch bool) (*fakeS3, string) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKES3")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-s3-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	f := &fakeS3{ifMatch: ifMatch, ifNoneMatch: ifNoneMatch, objects: map[string][]byte{}, etags: map[string]string{}, puts: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, "s3://bucket/ci/psa-mappings.json?region=us-east-1&use_path_style=true&endpoint=" + srv.URL
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
	f, url := startFakeS3(t, false, false)
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

// TestS3Backend_storeIgnoringIfNoneMatch: a store that honours If-Match
// but ignores If-None-Match: * would let two first writes of an export
// each create it, the second dropping the first one's entries. The check
// finds that out (the write with If-None-Match: * to its object, which
// exists by then, is stored) and fails the write naming the condition,
// leaving the export as it was and no object of the check, so that the
// next process checks anew.
func TestS3Backend_storeIgnoringIfNoneMatch(t *testing.T) {
	f, url := startFakeS3(t, true, false)
	endpoint := url[strings.Index(url, "endpoint=")+len("endpoint="):]
	first, err := OpenBackend(t.Context(), url+"&conditional_writes=unchecked", BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(first).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error { d.PutCustomer(acme()); return nil }); err != nil {
		t.Fatalf("a write with conditional_writes=unchecked: %v", err)
	}
	before := string(f.objects[fakeExportKey])

	for i := range 2 {
		b, err := OpenBackend(t.Context(), url, BackendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewClient(b).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
			d.DeleteCustomer(acme().Source, acme().CustomerID)
			return nil
		})
		want := "the store at " + endpoint + " ignores If-None-Match: *: it wrote s3://bucket/ci/psa-mappings.json.conditional-check with If-None-Match: * while it existed, where it must refuse with 412 Precondition Failed"
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "conditional_writes=unchecked") || errors.Is(err, ErrConflict) {
			t.Fatalf("process %d: a write to a store that ignores If-None-Match: * = %v, want an error saying %q and naming conditional_writes=unchecked", i, err, want)
		}
		if got := string(f.objects[fakeExportKey]); got != before {
			t.Errorf("process %d: the export changed after the failed check:\n%s\nwant\n%s", i, got, before)
		}
		if _, ok := f.objects[fakeCheckKey]; ok {
			t.Errorf("process %d: the check's object was left in the store, and would hide the fault from the next check", i)
		}
	}
}

// TestS3Backend_conditionalCheckDenied: credentials without s3:PutObject
// on the check's object fail the write naming that object, the permission
// and conditional_writes=unchecked, and leave the export as it was; the
// next write checks again, and passes once the policy grants it.
func TestS3Backend_conditionalCheckDenied(t *testing.T) {
	f, url := startFakeS3(t, true, true)
	f.denied = map[string]bool{fakeCheckKey: true}
	b, err := OpenBackend(t.Context(), url, BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(b)
	write := func() error {
		_, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error { d.PutCustomer(acme()); return nil })
		return err
	}
	err = write()
	for _, want := range []string{"If-None-Match: *", "s3://bucket/ci/psa-mappings.json.conditional-check", "s3:PutObject on that key", "conditional_writes=unchecked", "403"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a write denied the check's object = %v, want an error saying %q", err, want)
		}
	}
	if _, ok := f.objects[fakeExportKey]; ok || f.puts[fakeExportKey] != 0 {
		t.Errorf("the export was written (%d PUTs) although the check failed", f.puts[fakeExportKey])
	}
	f.mu.Lock()
	f.denied = nil
	f.mu.Unlock()
	if err := write(); err != nil {
		t.Fatalf("a write once the policy grants the check's object: %v", err)
	}
	if f.puts[fakeCheckKey] != 4 || f.puts[fakeExportKey] != 1 {
		t.Errorf("%d writes of the check and %d of the export, want 1 refused, then 3, and 1", f.puts[fakeCheckKey], f.puts[fakeExportKey])
	}
}

// TestS3Backend_conditionalWritesCheckedOnce: against a store that honours
// If-Match and If-None-Match: *, the check costs each backend (each
// provider process) two refused writes, whatever the number of writes
// after it, plus the one write of the check's object by the first check
// of the store, which keeps it.
func TestS3Backend_conditionalWritesCheckedOnce(t *testing.T) {
	f, url := startFakeS3(t, true, true)
	for process, want := range []int{3, 5} {
		b, err := OpenBackend(t.Context(), url, BackendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := NewClient(b)
		for i := range 3 {
			if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				m := acme()
				m.CustomerID = fmt.Sprintf("cust-%d-%d", process, i)
				d.PutCustomer(m)
				return nil
			}); err != nil {
				t.Fatalf("process %d, write %d: %v", process, i, err)
			}
		}
		if f.puts[fakeCheckKey] != want || f.puts[fakeExportKey] != 3*(process+1) {
			t.Errorf("after process %d: %d writes of the check and %d of the export, want %d and %d", process, f.puts[fakeCheckKey], f.puts[fakeExportKey], want, 3*(process+1))
		}
		if got := string(f.objects[fakeCheckKey]); got != string(conditionalCheckBody) {
			t.Errorf("after process %d: the check's object holds %q, want %q", process, got, conditionalCheckBody)
		}
	}
}

// TestS3Backend_conditionalWritesVersitygw: versitygw honours If-Match and
// If-None-Match: *: the check passes, for the first process (which writes
// the check's object) and for the next one (which finds it).
func TestS3Backend_conditionalWritesVersitygw(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	for process := range 2 {
		b, err := NewS3Backend(t.Context(), srv.ObjectURL("ci/psa-mappings.json"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewClient(b).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
			m := acme()
			m.CustomerID = fmt.Sprintf("cust-%d", process)
			d.PutCustomer(m)
			return nil
		}); err != nil {
			t.Fatalf("process %d: %v", process, err)
		}
		if !b.check.passed {
			t.Errorf("process %d: the write did not check that the store refuses a write whose condition fails", process)
		}
		out, err := b.client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key + conditionalCheckSuffix)})
		if err != nil {
			t.Fatalf("process %d: GET of the check's object: %v", process, err)
		}
		got, err := io.ReadAll(out.Body)
		_ = out.Body.Close()
		if err != nil || string(got) != string(conditionalCheckBody) {
			t.Errorf("process %d: the check's object holds %q (%v), want %q", process, got, err, conditionalCheckBody)
		}
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

// TestS3Backend_writeRefusedSaysWhatToDo: a write that S3 refuses with 403
// (the apply's role without s3:PutObject on the export's key, a read-only
// role given to the apply) names the store, S3's answer and the
// permission it takes, as the read's 403 names s3:ListBucket; before, it
// gave S3's "AccessDenied" alone.
func TestS3Backend_writeRefusedSaysWhatToDo(t *testing.T) {
	f, url := startFakeS3(t, true, true)
	f.denied = map[string]bool{fakeExportKey: true}
	b, err := OpenBackend(t.Context(), url, BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(b).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error { d.PutCustomer(acme()); return nil })
	if err == nil {
		t.Fatal("a write S3 refuses with 403 succeeded")
	}
	for _, want := range []string{`export "s3://bucket/ci/psa-mappings.json`, "writing: PutObject: S3 answered 403 Forbidden: AccessDenied",
		"check the credentials: this write needs s3:PutObject on s3://bucket/ci/psa-mappings.json)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
	if status(err) != http.StatusForbidden {
		t.Errorf("status(%v) = %d, want the SDK's error still wrapped (403)", err, status(err))
	}
}
