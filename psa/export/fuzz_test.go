package export

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode checks Decode on any input: it never panics, and a document it
// accepts is valid and survives a round trip: encoding and decoding it again
// gives the same document (with its mappings in Encode's order, sorted by
// key) and the same bytes.
func FuzzDecode(f *testing.F) {
	addTestdata(f)
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
		var std bytes.Buffer
		e := json.NewEncoder(&std)
		e.SetEscapeHTML(false)
		e.SetIndent("", "  ")
		if err := e.Encode(want); err != nil || !bytes.Equal(enc, std.Bytes()) {
			t.Fatalf("Encode differs from encoding/json's indented encoding: %v\n%s\n%s", err, enc, std.Bytes())
		}
	})
}

// FuzzIndent checks that indent writes what json.Indent writes, for any
// JSON value in the compact form encoding/json writes.
func FuzzIndent(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `""`, `null`, `-1.5e3`, `{"a":[],"b":{},"c":[{}],"d":[[]]}`,
		`{"k\"ey":"va\\lue\"","x":"\\","y":"\u2028 \ufffd é \\\\\"","z":[1,true,false,null,"]},[{"]}`,
		`[{"source":"sophos","product":"A, B: {C}","service_id":"1","sync_enabled":true},{"source":"","product":"[","service_id":"]","sync_enabled":false}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var compact bytes.Buffer
		if json.Compact(&compact, data) != nil {
			return
		}
		var want bytes.Buffer
		if err := json.Indent(&want, compact.Bytes(), "", "  "); err != nil {
			t.Fatal(err)
		}
		if got := indent(nil, compact.Bytes()); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("indent(%s) =\n%s\nwant\n%s", compact.Bytes(), got, want.Bytes())
		}
	})
}

// addTestdata seeds f with the documents of testdata/.
func addTestdata(f *testing.F) {
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
}

// FuzzDecodeFast checks decodeFast against the decoder that names every
// problem: on any input, a document decodeFast accepts is the one
// decodeSlow returns, and decodeFast accepts every document decodeSlow
// accepts except those whose strings hold invalid UTF-8 (which the decoder
// replaces, as encoding/json does).
func FuzzDecodeFast(f *testing.F) {
	addTestdata(f)
	for s := range fastDecodeCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeFast(data)
		slow, err := decodeSlow(data)
		switch {
		case ok && err != nil && len(fast.problems()) == 0:
			t.Fatalf("decodeFast accepted a document that decodeSlow refuses: %v", err)
		case ok && err == nil:
			if diff := cmp.Diff(slow, fast); diff != "" {
				t.Fatalf("decodeFast and decodeSlow differ (-slow +fast):\n%s", diff)
			}
		case !ok && err == nil && utf8.Valid(data) && !bytes.Contains(bytes.ToLower(data), []byte(`\ud`)):
			// (An escaped lone surrogate is repaired like invalid UTF-8.)
			t.Fatalf("decodeFast refused a document that decodeSlow accepts")
		}
	})
}
