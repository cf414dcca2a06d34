// Package jsondup finds keys that appear more than once in one JSON object.
// Most JSON readers (encoding/json included) keep the last value of such a
// key silently and others the first, so a document that has one should be
// refused rather than guessed at. The mapping export decoder
// (psa/export) and the usage file source (daemon/source/file) share it.
package jsondup

import (
	"bytes"
	"encoding/json"
)

// Step is one step on the way from a document to a value inside it: into
// the value of an object's key, or into an element of an array.
type Step struct {
	// Array tells the two kinds apart: Index is set for an array's
	// element, Key for an object's value.
	Array bool
	Key   string
	Index int
}

// Dup is a key that appears again in the same object.
type Dup struct {
	// Path leads from the document to the object that holds the key; it
	// is empty for the keys of a top-level object.
	Path []Step
	Key  string
	// Offset is the byte offset in the document of the key's second (or
	// later) occurrence, and Line and Column (1-based, Column counted in
	// bytes) locate it.
	Offset       int64
	Line, Column int
}

// frame is an open object or array while scanning.
type frame struct {
	object    bool
	keys      map[string]bool
	key       string // the object's current key
	index     int    // the array's current element
	expectKey bool   // the object's next token is a key or its end
}

// Find scans data, which must hold one syntactically valid JSON value, and
// returns every key that is repeated within an object, in document order.
// It stops at the first syntax error, returning what it found before.
func Find(data []byte) []Dup {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*frame
	var dups []Dup
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
				line, col := position(data, start)
				dups = append(dups, Dup{Path: path(stack[:n-1]), Key: k, Offset: start, Line: line, Column: col})
			}
			top.keys[k] = true
			top.key, top.expectKey = k, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = valueDone(stack[:len(stack)-1])
		default:
			stack = valueDone(stack)
		}
	}
}

// valueDone moves the innermost container past a complete value.
func valueDone(stack []*frame) []*frame {
	if n := len(stack); n > 0 {
		if top := stack[n-1]; top.object {
			top.expectKey = true
		} else {
			top.index++
		}
	}
	return stack
}

// path returns the steps into the containers of stack, outermost first.
func path(stack []*frame) []Step {
	if len(stack) == 0 {
		return nil
	}
	p := make([]Step, len(stack))
	for i, f := range stack {
		if f.object {
			p[i] = Step{Key: f.key}
		} else {
			p[i] = Step{Array: true, Index: f.index}
		}
	}
	return p
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

// position returns the 1-based line and byte column of offset off.
func position(data []byte, off int64) (line, column int) {
	before := data[:min(max(off, 0), int64(len(data)))]
	line = bytes.Count(before, []byte("\n")) + 1
	column = len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, column
}
