package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"time"
)

// WriteJSON writes p as json.MarshalIndent(p, prefix, indent) would, but
// encodes the changes one at a time: a plan of 100,000 lines is some 50 MB
// of JSON, which would otherwise be built in memory (twice, when an
// encoder's buffer grows) before the first byte is written. w should be
// buffered.
func (p *Plan) WriteJSON(w io.Writer, prefix, indent string) error {
	head, tail, err := p.jsonShell(prefix, indent)
	if err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	if err := writeChanges(w, p.Changes, prefix+indent, indent); err != nil {
		return err
	}
	_, err = w.Write(tail)
	return err
}

// jsonShell returns p's JSON without its changes, indented as WriteJSON
// writes it: what comes before the changes' array (up to the "changes"
// key) and after it.
func (p *Plan) jsonShell(prefix, indent string) (head, tail []byte, err error) {
	shell := *p
	shell.Changes = nil
	b, err := json.MarshalIndent(&shell, prefix, indent)
	if err != nil {
		return nil, nil, err
	}
	// Only the plan's own key sits at this indentation, and a string value
	// cannot hold a raw newline, so the first match is the key.
	key := []byte("\n" + prefix + indent + `"changes": `)
	i := bytes.Index(b, append(key, "null"...))
	if i < 0 {
		return nil, nil, fmt.Errorf("usage: encoding the plan: no %q key", "changes")
	}
	return b[:i+len(key)], b[i+len(key)+len("null"):], nil
}

// writeChanges writes changes as an indented JSON array whose brackets are
// at prefix.
func writeChanges(w io.Writer, changes []Change, prefix, indent string) error {
	switch {
	case changes == nil:
		_, err := io.WriteString(w, "null")
		return err
	case len(changes) == 0:
		_, err := io.WriteString(w, "[]")
		return err
	}
	return writeChangeRange(w, changes, true, true, prefix, indent)
}

// writeChangeRange writes changes, some of the elements of an array that
// writeChanges writes: from its opening bracket when first, else from the
// comma before changes[0], and up to its closing bracket when last.
func writeChangeRange(w io.Writer, changes []Change, first, last bool, prefix, indent string) error {
	sep := ",\n" + prefix + indent
	if first {
		sep = "[\n" + prefix + indent
	}
	var b []byte
	for i := range changes {
		var err error
		if b, err = appendChange(b[:0], &changes[i], prefix+indent, indent); err != nil {
			return err
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		sep = ",\n" + prefix + indent
	}
	if !last {
		return nil
	}
	_, err := io.WriteString(w, "\n"+prefix+"]")
	return err
}

// MarshalJSON encodes c as its fields' tags say, followed, for a held
// change, by "hold": why it is held (see Hold). Plan.WriteJSON writes the
// same without reflection (appendChange).
func (c Change) MarshalJSON() ([]byte, error) {
	type fields Change // without the methods
	return json.Marshal(struct {
		fields
		Hold string `json:"hold,omitempty"`
	}{fields(c), c.Hold()})
}

// UnmarshalJSON decodes what MarshalJSON encodes. A hold of a kind this
// version does not know reads as HoldApproval.
func (c *Change) UnmarshalJSON(b []byte) error {
	type fields Change // without the methods
	v := struct {
		*fields
		Hold string `json:"hold"`
	}{fields: (*fields)(c)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	c.setHold(v.Hold)
	return nil
}

// appendChange appends c as json.MarshalIndent(c, prefix, indent) writes
// it, without reflection: a plan holds a change for each of 100,000 lines,
// and json.MarshalIndent encodes each through reflection and then indents
// it in a second pass. TestAppendChange holds it to json.MarshalIndent.
func appendChange(b []byte, c *Change, prefix, indent string) ([]byte, error) {
	eff, err := c.EffectiveDate.MarshalJSON()
	if err != nil {
		// As encoding/json reports it, through Change.MarshalJSON.
		return b, &json.MarshalerError{Type: reflect.TypeFor[Change](), Err: &json.MarshalerError{Type: reflect.TypeFor[time.Time](), Err: err}}
	}
	in := prefix + indent
	sep := "{"
	key := func(k string) {
		b = append(b, sep...)
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `": `...)
		sep = ","
	}
	str := func(k, v string) {
		key(k)
		b = appendJSONString(b, v)
	}
	// encoding/json leaves out the fields of a nil embedded pointer.
	if cu := c.ChangeCustomer; cu != nil {
		str("source", cu.Source)
		str("customer_id", cu.CustomerID)
		if cu.CustomerName != "" {
			str("customer_name", cu.CustomerName)
		}
		str("company_id", cu.CompanyID)
		str("contract_id", cu.ContractID)
	}
	if sv := c.ChangeService; sv != nil {
		str("service_id", sv.ServiceID)
		if sv.ServiceName != "" {
			str("service_name", sv.ServiceName)
		}
		key("products")
		switch {
		case sv.Products == nil:
			b = append(b, "null"...)
		case len(sv.Products) == 0:
			b = append(b, "[]"...)
		default:
			for i, p := range sv.Products {
				if i == 0 {
					b = append(b, '[')
				} else {
					b = append(b, ',')
				}
				b = append(b, '\n')
				b = append(b, in...)
				b = append(b, indent...)
				b = appendJSONString(b, p)
			}
			b = append(b, '\n')
			b = append(b, in...)
			b = append(b, ']')
		}
	}
	key("current")
	b = strconv.AppendInt(b, c.Current, 10)
	key("current_known")
	b = strconv.AppendBool(b, c.CurrentKnown)
	key("desired")
	b = strconv.AppendInt(b, c.Desired, 10)
	key("effective_date")
	b = append(b, eff...)
	str("action", c.Action)
	str("reason", c.Reason)
	if h := c.Hold(); h != "" {
		str("hold", h)
	}
	b = append(b, '\n')
	b = append(b, prefix...)
	return append(b, '}'), nil
}

// appendJSONString appends s as encoding/json quotes it: strings of plain
// printable ASCII as they are, others through json.Marshal (which escapes
// HTML characters and replaces invalid UTF-8).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
