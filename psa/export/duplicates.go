package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
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

// jsonFrame is an open object or array while scanning.
type jsonFrame struct {
	object    bool
	keys      map[string]bool
	key       string // the object's current key
	index     int    // the array's current element
	expectKey bool   // the object's next token is a key or its end
}

// duplicateKeys scans data, which must hold one syntactically valid JSON
// value, and returns every key that is repeated within an object, in
// document order.
func duplicateKeys(data []byte) []duplicateKey {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*jsonFrame
	var dups []duplicateKey
	for {
		start := tokenStart(data, dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return dups
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
			top := stack[n-1]
			if tok == json.Delim('}') {
				stack = valueDone(stack[:n-1])
				continue
			}
			k, _ := tok.(string)
			if top.keys[k] {
				se := newSyntaxError(data, start, "")
				dups = append(dups, locate(stack, k, se.Line, se.Column))
			}
			top.keys[k] = true
			top.key, top.expectKey = k, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &jsonFrame{object: true, keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &jsonFrame{})
		case json.Delim(']'):
			stack = valueDone(stack[:len(stack)-1])
		default:
			stack = valueDone(stack)
		}
	}
}

// valueDone moves the innermost container past a complete value.
func valueDone(stack []*jsonFrame) []*jsonFrame {
	if n := len(stack); n > 0 {
		if top := stack[n-1]; top.object {
			top.expectKey = true
		} else {
			top.index++
		}
	}
	return stack
}

// locate says where key k of the innermost object of stack is.
func locate(stack []*jsonFrame, k string, line, column int) duplicateKey {
	d := duplicateKey{line: line, column: column}
	outer := stack[:len(stack)-1]
	if len(outer) >= 2 && outer[0].object && !outer[1].object &&
		(outer[0].key == "product_mappings" || outer[0].key == "customer_mappings") {
		d.list, d.index = outer[0].key, outer[1].index
		outer = outer[2:]
	}
	var path []string
	for _, f := range outer {
		if f.object {
			path = append(path, f.key)
		} else {
			path = append(path, fmt.Sprintf("[%d]", f.index))
		}
	}
	d.field = strings.ReplaceAll(strings.Join(append(path, k), "."), ".[", "[")
	return d
}

// tokenStart skips the whitespace, commas and colons between the decoder's
// offset and the next token.
func tokenStart(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
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
