package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSON writes p as json.MarshalIndent(p, prefix, indent) would, but
// encodes the changes one at a time: a plan of 100,000 lines is some 50 MB
// of JSON, which would otherwise be built in memory (twice, when an
// encoder's buffer grows) before the first byte is written. w should be
// buffered.
func (p *Plan) WriteJSON(w io.Writer, prefix, indent string) error {
	shell := *p
	shell.Changes = nil
	head, err := json.MarshalIndent(&shell, prefix, indent)
	if err != nil {
		return err
	}
	// Only the plan's own key sits at this indentation, and a string value
	// cannot hold a raw newline, so the first match is the key.
	key := []byte("\n" + prefix + indent + `"changes": `)
	i := bytes.Index(head, append(key, "null"...))
	if i < 0 {
		return fmt.Errorf("usage: encoding the plan: no %q key", "changes")
	}
	if _, err := w.Write(head[:i+len(key)]); err != nil {
		return err
	}
	if err := writeChanges(w, p.Changes, prefix+indent, indent); err != nil {
		return err
	}
	_, err = w.Write(head[i+len(key)+len("null"):])
	return err
}

// writeChanges writes changes as an indented JSON array whose brackets are
// at prefix. One encoder, whose buffers are reused from change to change,
// encodes them: json.MarshalIndent would allocate two buffers a change.
func writeChanges(w io.Writer, changes []Change, prefix, indent string) error {
	switch {
	case changes == nil:
		_, err := io.WriteString(w, "null")
		return err
	case len(changes) == 0:
		_, err := io.WriteString(w, "[]")
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent(prefix+indent, indent)
	sep := "[\n" + prefix + indent
	for i := range changes {
		buf.Reset()
		if err := enc.Encode(&changes[i]); err != nil {
			return err
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		// Encode ends the value with a newline, which MarshalIndent does
		// not.
		if _, err := w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))); err != nil {
			return err
		}
		sep = ",\n" + prefix + indent
	}
	_, err := io.WriteString(w, "\n"+prefix+"]")
	return err
}
