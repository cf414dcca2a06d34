package export

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode checks Decode on any input: it never panics, and a document it
// accepts is valid and survives a round trip: encoding and decoding it again
// gives the same document (with its mappings in Encode's order, sorted by
// key) and the same bytes.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Decode(data)
		if err != nil {
			if d != nil {
				t.Fatalf("Decode returned a document with error %v", err)
			}
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("Decode accepted a document that Validate refuses: %v", err)
		}
		enc, err := d.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded document: %v", err)
		}
		d2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode of Encode's output: %v\n%s", err, enc)
		}
		want := d.Clone()
		want.UpdatedAt = want.UpdatedAt.UTC()
		slices.SortStableFunc(want.ProductMappings, compareProducts)
		slices.SortStableFunc(want.CustomerMappings, compareCustomers)
		if diff := cmp.Diff(want, d2); diff != "" {
			t.Fatalf("round trip changed the document (-first +second):\n%s", diff)
		}
		enc2, err := d2.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode is not stable: %v\n%s\n%s", err, enc, enc2)
		}
	})
}
