package export

import (
	"fmt"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/internal/jsondup"
)

// duplicateKey is a key that appears again in the same JSON object. Most
// JSON readers (encoding/json included) keep the last value silently and
// others the first, so a document with one is refused rather than guessed
// at.
type duplicateKey struct {
	// list and index name the mapping that holds the object, when it is
	// in one ("customer_mappings", 3); list is "" otherwise.
	list  string
	index int
	// field is the key, preceded by the names of the objects between the
	// mapping (or the document) and it: "psa.system".
	field string
	// line and column locate the second occurrence.
	line, column int
}

// duplicateKeys scans data, which must hold one syntactically valid JSON
// value, and returns every key that is repeated within an object, in
// document order (jsondup.Find, located in the export's terms).
func duplicateKeys(data []byte) []duplicateKey {
	var dups []duplicateKey
	for _, d := range jsondup.Find(data) {
		dups = append(dups, locate(d))
	}
	return dups
}

// locate says where d's key is: in which mapping, if any, and under which
// field path.
func locate(d jsondup.Dup) duplicateKey {
	k := duplicateKey{line: d.Line, column: d.Column}
	outer := d.Path
	if len(outer) >= 2 && !outer[0].Array && outer[1].Array &&
		(outer[0].Key == "product_mappings" || outer[0].Key == "customer_mappings") {
		k.list, k.index = outer[0].Key, outer[1].Index
		outer = outer[2:]
	}
	var path []string
	for _, s := range outer {
		if s.Array {
			path = append(path, fmt.Sprintf("[%d]", s.Index))
		} else {
			path = append(path, s.Key)
		}
	}
	k.field = strings.ReplaceAll(strings.Join(append(path, d.Key), "."), ".[", "[")
	return k
}

// problem turns d into a Problem; entry names the mapping at index i of
// list as Validate's problems do.
func (d duplicateKey) problem(entry func(list string, i int) string) Problem {
	p := Problem{Field: d.field, Message: fmt.Sprintf(
		"appears twice in one object (again at line %d, column %d): JSON readers differ on which one counts, so remove one", d.line, d.column)}
	if d.list != "" {
		p.Entry = entry(d.list, d.index)
	}
	return p
}
