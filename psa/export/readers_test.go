package export

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for _, b := range []Backend{NewFileBackend(filepath.Join(dir, "psa-mappings.json")), s3b} {
		ctx := t.Context()
		if fields, found, err := LoadReaders(ctx, b); found || err != nil || fields != nil {
			t.Errorf("%s: LoadReaders before a publish = %v, %v, %v; want not found", b, fields, found, err)
		}
		if err := PublishReaders(ctx, b, "1.9.0", now); err != nil {
			t.Fatalf("%s: PublishReaders: %v", b, err)
		}
		want := []Reader{{Version: "1.9.0", Fields: ReaderFields(), Confirmed: now}}
		if entries, found, err := LoadReaders(ctx, b); !found || err != nil || !readersEqual(entries, want) {
			t.Errorf("%s: LoadReaders = %v, %v, %v; want %v", b, entries, found, err, want)
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
		if err := PublishReaders(ctx, b, "1.9.0", now); err != nil {
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
		if err := PublishReaders(ctx, b, "1.9.0", now); err != nil {
			t.Fatalf("%s: PublishReaders over a garbled object: %v", b, err)
		}
		if entries, found, err := LoadReaders(ctx, b); !found || err != nil || !readersEqual(entries, want) {
			t.Errorf("%s: LoadReaders after publishing over a garbled object = %v, %v, %v", b, entries, found, err)
		}
	}
	// The list is written without the conditional-write check's objects.
	if _, err := s3b.Sibling(ReadersSuffix+conditionalCheckSuffix).Load(t.Context(), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the readers' write left a conditional-write check object: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "psa-mappings.json.readers"))
	if err != nil || !strings.HasPrefix(string(data), `{"readers":[{"version":"1.9.0","fields":["schema",`) {
		t.Errorf("readers file = %q, %v", data, err)
	}
}

// readersEqual compares entries, their times with time.Time.Equal.
func readersEqual(a, b []Reader) bool {
	return slices.EqualFunc(a, b, func(x, y Reader) bool {
		return x.Version == y.Version && slices.Equal(x.Fields, y.Fields) && x.Confirmed.Equal(y.Confirmed)
	})
}

// TestPublishReaders_entries: each psa-syncd version reading one store
// keeps an entry of its own, with when it last confirmed it: a rolling
// upgrade's two versions both count, whichever started last. A psa-syncd
// writes its entry again only once it is ReadersRefresh/2 old, drops
// entries older than ReadersKept, and replaces the list of a psa-syncd
// before entries, which has no time. LoadReaders reads that older list as
// one entry without a time or version.
func TestPublishReaders_entries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "psa-mappings.json")
	b := NewFileBackend(path)
	readers := NewFileBackend(path + ReadersSuffix)
	old := []string{"schema", "psa"}
	if err := os.WriteFile(path+ReadersSuffix, []byte(`{"fields":["schema","psa"]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if entries, found, err := LoadReaders(ctx, b); !found || err != nil || !readersEqual(entries, []Reader{{Fields: old}}) {
		t.Errorf("LoadReaders of a list without entries = %v, %v, %v", entries, found, err)
	}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	if err := PublishReaders(ctx, b, "1.8.0", t0); err != nil {
		t.Fatal(err)
	}
	mine := ReaderFields()
	if entries, _, err := LoadReaders(ctx, b); err != nil || !readersEqual(entries, []Reader{{Version: "1.8.0", Fields: mine, Confirmed: t0}}) {
		t.Errorf("after a publish over a list without entries: %v, %v; want it replaced", entries, err)
	}
	// Another version (other fields) starts an hour later: both entries.
	t1 := t0.Add(time.Hour)
	blob, err := readers.Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	other := Reader{Version: "2.0.0", Fields: append(slices.Clone(mine), "next_field"), Confirmed: t1}
	data, err := json.Marshal(readersDoc{Readers: []Reader{other, {Version: "1.8.0", Fields: mine, Confirmed: t0}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readers.Save(ctx, data, blob.Version); err != nil {
		t.Fatal(err)
	}
	// Confirmed 5h59m ago: nothing written.
	before, err := readers.Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := PublishReaders(ctx, b, "1.8.0", t0.Add(ReadersRefresh/2-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if after, err := readers.Load(ctx, ""); err != nil || after.Version != before.Version {
		t.Errorf("an entry confirmed %v ago was written again (%v)", ReadersRefresh/2-time.Minute, err)
	}
	// Half a refresh later: confirmed again, the other version's entry kept.
	t2 := t0.Add(ReadersRefresh / 2)
	if err := PublishReaders(ctx, b, "1.8.0", t2); err != nil {
		t.Fatal(err)
	}
	if entries, _, err := LoadReaders(ctx, b); err != nil || !readersEqual(entries, []Reader{{Version: "1.8.0", Fields: mine, Confirmed: t2}, other}) {
		t.Errorf("after a confirmation: %v, %v; want both versions", entries, err)
	}
	// The other version's entry, unconfirmed for longer than ReadersKept,
	// goes at the next write.
	t3 := t1.Add(ReadersKept + time.Second)
	if err := PublishReaders(ctx, b, "1.8.0", t3); err != nil {
		t.Fatal(err)
	}
	if entries, _, err := LoadReaders(ctx, b); err != nil || !readersEqual(entries, []Reader{{Version: "1.8.0", Fields: mine, Confirmed: t3}}) {
		t.Errorf("after %v: %v, %v; want the old entry dropped", ReadersKept, entries, err)
	}
	for _, c := range []struct {
		r     Reader
		fresh bool
	}{
		{Reader{Fields: old}, false},
		{Reader{Fields: old, Confirmed: t3.Add(-ReadersFresh)}, true},
		{Reader{Fields: old, Confirmed: t3.Add(-ReadersFresh - time.Second)}, false},
		{Reader{Fields: old, Confirmed: t3.Add(time.Hour)}, true}, // a clock ahead
	} {
		if got := c.r.Fresh(t3); got != c.fresh {
			t.Errorf("Fresh(%v) at %v = %v, want %v", c.r.Confirmed, t3, got, c.fresh)
		}
	}
}
