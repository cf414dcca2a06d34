package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// decodeFast decodes data when it is a clean document: one JSON value, an
// object whose keys are all known, spelt exactly and given once per object,
// whose values have their field's type, whose mappings are all objects, and
// whose psa, integration and tickets objects decode without a problem. It
// streams the document through a tokenizer and makes no intermediate copy
// of it, where the decoder, which names every problem it finds, decodes
// each of a 20,000-customer export's 140,000 fields with a json.Unmarshal
// of its own and scans the document again for repeated keys. ok is false at
// the first thing that is not clean; Decode then runs the decoder. When ok,
// d is the document the decoder would return.
func decodeFast(data []byte) (d *Document, ok bool) {
	// jsontext refuses repeated names and invalid UTF-8 by default: the
	// decoder reports the first and replaces the second, as encoding/json
	// does, so neither can pass here.
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	d = &Document{}
	var psaRaw, integration, tickets json.RawMessage
	top := []fastField{
		{name: "schema", dst: &d.Schema},
		{name: "psa", dst: &psaRaw},
		{name: "revision", dst: &d.Revision},
		{name: "updated_at", dst: &d.UpdatedAt},
		{name: "integration", dst: &integration},
		{name: "tickets", dst: &tickets},
		{name: "product_mappings", list: func() bool {
			return fastMappings(dec, &d.ProductMappings, (*ProductMapping).fields)
		}},
		{name: "customer_mappings", list: func() bool {
			return fastMappings(dec, &d.CustomerMappings, (*CustomerMapping).fields)
		}},
	}
	if !fastObject(dec, top) {
		return nil, false
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, false // data after the document
	}
	// The small objects go through the decoder, which says whether they
	// are clean.
	var dc decoder
	if psaRaw != nil && !dc.object("psa.", psaRaw, d.PSA.fields()) {
		return nil, false
	}
	if integration != nil && string(integration) != "null" {
		d.Integration = &Integration{}
		if !dc.object("integration.", integration, d.Integration.fields()) {
			return nil, false
		}
	}
	if tickets != nil && string(tickets) != "null" {
		d.Tickets = dc.tickets(tickets)
	}
	if len(dc.problems) > 0 {
		return nil, false
	}
	// The decoder makes empty lists of missing or null ones.
	if d.ProductMappings == nil {
		d.ProductMappings = []ProductMapping{}
	}
	if d.CustomerMappings == nil {
		d.CustomerMappings = []CustomerMapping{}
	}
	return d, true
}

// fastField is a field for decodeFast: its value goes to dst (a *string,
// *bool, *int64, *time.Time, or *json.RawMessage for an object that the
// decoder decodes afterwards), or list reads it.
type fastField struct {
	name string
	dst  any
	list func() bool
}

// fastMappings reads a list of mappings, each an object of the given
// fields, and appends them to list.
func fastMappings[M any](dec *jsontext.Decoder, list *[]M, fields func(*M) []field) bool {
	return fastList(dec, func() bool {
		var m M
		fs := fields(&m)
		ff := make([]fastField, len(fs))
		for i, f := range fs {
			ff[i] = fastField{name: f.name, dst: f.dst}
		}
		if !fastObject(dec, ff) {
			return false
		}
		*list = append(*list, m)
		return true
	})
}

// fastObject reads an object into fields.
func fastObject(dec *jsontext.Decoder, fields []fastField) bool {
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return false
	}
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return false
		}
		if tok.Kind() == '}' {
			return true
		}
		name := tok.String()
		i := 0
		for i < len(fields) && fields[i].name != name {
			i++
		}
		if i == len(fields) {
			return false // unknown, or spelt another way
		}
		f := &fields[i]
		if f.list != nil {
			if !f.list() {
				return false
			}
			continue
		}
		if !fastValue(dec, f.dst) {
			return false
		}
	}
}

// fastList reads an array, each element with elem; null is an empty list.
func fastList(dec *jsontext.Decoder, elem func() bool) bool {
	tok, err := dec.ReadToken()
	if err != nil {
		return false
	}
	switch tok.Kind() {
	case 'n':
		return true
	case '[':
	default:
		return false
	}
	for dec.PeekKind() != ']' {
		if !elem() {
			return false
		}
	}
	_, err = dec.ReadToken()
	return err == nil
}

// fastValue reads a value into dst as json.Unmarshal would, null leaving
// dst as it is (the decoder skips null values). It returns false where
// json.Unmarshal would fail.
func fastValue(dec *jsontext.Decoder, dst any) bool {
	switch dst := dst.(type) {
	case *time.Time, *json.RawMessage:
		v, err := dec.ReadValue()
		if err != nil {
			return false
		}
		if v.Kind() == 'n' {
			return true
		}
		switch dst := dst.(type) {
		case *json.RawMessage:
			*dst = bytes.Clone(v)
			return true
		case *time.Time:
			// As json.Unmarshal does: time.Time decodes itself.
			return dst.UnmarshalJSON(v) == nil
		}
		return false
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return false
	}
	k := tok.Kind()
	if k == 'n' {
		return true
	}
	switch dst := dst.(type) {
	case *string:
		if k != '"' {
			return false
		}
		*dst = tok.String()
	case *bool:
		if k != 't' && k != 'f' {
			return false
		}
		*dst = tok.Bool()
	case *int64:
		if k != '0' {
			return false
		}
		// encoding/json takes integers only, in range, no exponent.
		n, err := strconv.ParseInt(tok.String(), 10, 64)
		if err != nil {
			return false
		}
		*dst = n
	default:
		return false
	}
	return true
}
