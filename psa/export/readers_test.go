package export

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
)

// TestPublishReaders: psa-syncd's export fields are written beside the
// export in a file or S3 store, once (a second publish of the same list
// writes nothing), and read back; a store that holds none answers not
// found; one that holds something else is an error naming the object.
func TestPublishReaders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := s3test.Start(t)
	s3b, err := NewS3Backend(t.Context(), srv.ObjectURL("ci/psa-mappings.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s3b.Sibling(ReadersSuffix).String(), srv.ObjectURL("ci/psa-mappings.json.readers"); got != want || !strings.Contains(got, "?") {
		t.Errorf("S3 sibling = %s, want %s", got, want)
	}
	for _, b := range []Backend{NewFileBackend(filepath.Join(dir, "psa-mappings.json")), s3b} {
		ctx := t.Context()
		if fields, found, err := LoadReaders(ctx, b); found || err != nil || fields != nil {
			t.Errorf("%s: LoadReaders before a publish = %v, %v, %v; want not found", b, fields, found, err)
		}
		if err := PublishReaders(ctx, b); err != nil {
			t.Fatalf("%s: PublishReaders: %v", b, err)
		}
		fields, found, err := LoadReaders(ctx, b)
		if !found || err != nil || !slices.Equal(fields, ReaderFields()) {
			t.Errorf("%s: LoadReaders = %v, %v, %v; want ReaderFields", b, fields, found, err)
		}
		s, ok := b.(SiblingStore)
		if !ok {
			t.Fatalf("%T is no SiblingStore", b)
		}
		readers := s.Sibling(ReadersSuffix)
		before, err := readers.Load(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := PublishReaders(ctx, b); err != nil {
			t.Fatalf("%s: PublishReaders again: %v", b, err)
		}
		if after, err := readers.Load(ctx, ""); err != nil || after.Version != before.Version {
			t.Errorf("%s: a second publish of the same fields wrote (version %s -> %s, %v)", b, before.Version, after.Version, err)
		}
		if _, err := readers.Save(ctx, []byte("<html>proxy</html>"), before.Version); err != nil {
			t.Fatal(err)
		}
		if _, found, err := LoadReaders(ctx, b); found || err == nil || !strings.Contains(err.Error(), "psa-mappings.json.readers") {
			t.Errorf("%s: LoadReaders of a garbled object = %v, %v; want an error naming it", b, found, err)
		}
		if err := PublishReaders(ctx, b); err != nil {
			t.Fatalf("%s: PublishReaders over a garbled object: %v", b, err)
		}
		if fields, found, err := LoadReaders(ctx, b); !found || err != nil || !slices.Equal(fields, ReaderFields()) {
			t.Errorf("%s: LoadReaders after publishing over a garbled object = %v, %v, %v", b, fields, found, err)
		}
	}
	// The list is written without the conditional-write check's objects.
	if _, err := s3b.Sibling(ReadersSuffix+conditionalCheckSuffix).Load(t.Context(), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the readers' write left a conditional-write check object: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "psa-mappings.json.readers"))
	if err != nil || !strings.HasPrefix(string(data), `{"fields":["schema",`) {
		t.Errorf("readers file = %q, %v", data, err)
	}
}
