package export

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SyntaxError reports data that is not exactly one well-formed JSON value:
// typically a file that was truncated while being written by a tool that
// does not write atomically, or edited by hand.
type SyntaxError struct {
	// File is the path of the export when the data came from a Store.
	File string
	// Offset is the byte offset of the error, or -1 for an empty file.
	Offset int64
	// Line and Column locate Offset (both from 1).
	Line, Column int
	// Msg describes the error.
	Msg string
	// Page is whether the data is an HTML or XML page: a web server or a
	// proxy answering in place of the store, not an export cut short.
	Page bool
}

// Error describes the error with its position and a hint at the usual cause.
func (e *SyntaxError) Error() string {
	where := ""
	if e.Offset >= 0 {
		where = fmt.Sprintf(" at line %d, column %d (byte %d)", e.Line, e.Column, e.Offset)
	}
	hint := "the file may be half-written or edited by hand"
	if e.Page {
		hint = "it is an HTML or XML page, not a mapping export: check that the URL names the export, and that no web " +
			"server or proxy answers in the store's place"
	}
	return fmt.Sprintf("%snot valid JSON%s: %s (%s)", prefix(e.File), where, e.Msg, hint)
}

// isPage reports whether data begins like an HTML or XML page.
func isPage(data []byte) bool {
	start := bytes.ToLower(data[:min(len(data), 64)])
	start = bytes.TrimLeft(start, " \t\r\n\ufeff")
	for _, p := range []string{"<!doctype", "<html", "<?xml", "<head", "<body"} {
		if bytes.HasPrefix(start, []byte(p)) {
			return true
		}
	}
	return false
}

func newSyntaxError(data []byte, offset int64, msg string) *SyntaxError {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return &SyntaxError{Offset: offset, Line: line, Column: col, Msg: msg, Page: isPage(data)}
}

// Decode parses a mapping export strictly and validates it. It returns a
// *SyntaxError when data is not one JSON value (trailing data included), and
// otherwise a *ValidationError listing every problem at once: keys repeated
// within an object (with the line and column of the repeat), unknown fields
// and values of the wrong type (reported with the entry and field, unlike
// encoding/json's DisallowUnknownFields, which stops at the first and names
// neither), followed by everything Validate reports.
func Decode(data []byte) (*Document, error) {
	if d, ok := decodeFast(data); ok && len(d.problems()) == 0 {
		return d, nil
	}
	// Decode the document again, naming every problem.
	return decodeSlow(data)
}

// decodeSlow is Decode without decodeFast: it finds every problem of the
// document, for the error.
func decodeSlow(data []byte) (*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, syntaxError(data, err)
	}
	// Exactly one value: anything but whitespace after it is an error.
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, newSyntaxError(data, int64(len(data)-len(rest)), "unexpected data after the end of the document")
	}

	var dc decoder
	d, ok := dc.document(raw)
	if !ok {
		return nil, &ValidationError{Problems: dc.problems}
	}
	for _, dup := range duplicateKeys(data) {
		dc.problems = append(dc.problems, dup.problem(func(list string, i int) string {
			if list == "product_mappings" {
				return productEntry(i, d.ProductMappings[i])
			}
			return customerEntry(i, d.CustomerMappings[i])
		}))
	}
	// Validate sees what could be decoded. Drop what it would repeat: a
	// field with the wrong type is also "required", and nothing more needs
	// saying about an entry or object that is not an object at all.
	for _, p := range d.problems() {
		if !dc.covers(p) {
			dc.problems = append(dc.problems, p)
		}
	}
	if len(dc.problems) > 0 {
		slices.SortStableFunc(dc.problems, func(a, b Problem) int {
			return cmp.Compare(position(a), position(b))
		})
		return nil, &ValidationError{Problems: dc.problems}
	}
	return d, nil
}

// position orders problems as their subjects appear in a document:
// top-level fields in Encode's order, then product and customer mappings by
// index.
func position(p Problem) int {
	const perList = 1 << 40
	if p.Entry == "" {
		for i, f := range []string{"schema", "psa", "revision", "updated_at", "integration", "tickets", "product_mappings", "customer_mappings"} {
			if p.Field == f || strings.HasPrefix(p.Field, f+".") {
				return i
			}
		}
		return 10
	}
	list, rest, _ := strings.Cut(p.Entry, "[")
	n, _ := strconv.Atoi(rest[:strings.IndexByte(rest+"]", ']')])
	if list == "customer_mappings" {
		return 2*perList + n
	}
	return perList + n
}

func syntaxError(data []byte, err error) *SyntaxError {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return &SyntaxError{Offset: -1, Msg: "the file is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newSyntaxError(data, int64(len(data)), "unexpected end of input")
	case errors.As(err, &se):
		// Offset counts the bytes read, the offending one included.
		return newSyntaxError(data, se.Offset-1, strings.TrimPrefix(se.Error(), "json: "))
	default:
		return newSyntaxError(data, 0, err.Error())
	}
}

// decoder decodes a document field by field, so that every unknown field and
// every value of the wrong type becomes a Problem naming its entry.
type decoder struct {
	problems []Problem
}

func (dc *decoder) add(entry, field, msg string) {
	dc.problems = append(dc.problems, Problem{Entry: entry, Field: field, Message: msg})
}

// covers reports whether a Validate problem repeats one already found.
func (dc *decoder) covers(p Problem) bool {
	for _, q := range dc.problems {
		if q.Entry == p.Entry && (q.Field == "" || q.Field == p.Field || strings.HasPrefix(p.Field, q.Field+".")) {
			return true
		}
	}
	return false
}

// field binds a JSON field name to where its value goes.
type field struct {
	name string
	dst  any
}

// object decodes raw, a JSON object, into the given fields and reports
// unknown fields and values of the wrong type. Field names in problems get
// path (e.g. "psa.") in front. The problems have no entry: a mapping's are
// filed under its entry by the caller (see entry). It returns false when raw
// is not an object.
func (dc *decoder) object(path string, raw json.RawMessage, fields []field) bool {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return false
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
		v, ok := obj[f.name]
		if !ok || string(v) == "null" {
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			dc.add("", path+f.name, "must be "+want(f.dst))
		}
	}
	var unknown []string
	for k := range obj {
		if !slices.Contains(names, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		// Fields are added to version 1 of the schema as the provider
		// grows (psa_ticket_routing's were), so an older reader meets
		// them in the export of a newer provider.
		dc.add("", path+k, "is not a known field (want "+strings.Join(names, ", ")+
			"): a misspelling, or written by a newer provider (upgrade this psa-syncd or provider to read it)")
	}
	return true
}

func want(dst any) string {
	switch dst.(type) {
	case *bool:
		return "true or false"
	case *int64:
		return "an integer"
	case *time.Time:
		return `an RFC 3339 time such as "2026-11-21T10:00:00Z"`
	case *[]json.RawMessage:
		return "a JSON array"
	case *json.RawMessage:
		return "a JSON object"
	default:
		return "a string"
	}
}

// document decodes the top level; ok is false when raw is not an object.
func (dc *decoder) document(raw json.RawMessage) (d *Document, ok bool) {
	d = &Document{}
	var psaRaw, integrationRaw, ticketsRaw json.RawMessage
	var products, customers []json.RawMessage
	if !dc.object("", raw, d.fields(&psaRaw, &integrationRaw, &ticketsRaw, &products, &customers)) {
		dc.add("", "", "the document must be a JSON object")
		return nil, false
	}
	if psaRaw != nil && !dc.object("psa.", psaRaw, d.PSA.fields()) {
		dc.add("", "psa", "must be a JSON object")
	}
	if integrationRaw != nil && string(integrationRaw) != "null" {
		in := &Integration{}
		if dc.object("integration.", integrationRaw, in.fields()) {
			d.Integration = in
		} else {
			dc.add("", "integration", "must be a JSON object")
		}
	}

	if ticketsRaw != nil && string(ticketsRaw) != "null" {
		d.Tickets = dc.tickets(ticketsRaw)
	}

	d.ProductMappings = make([]ProductMapping, len(products))
	for i, r := range products {
		m := &d.ProductMappings[i]
		var sub decoder
		ok := sub.object("", r, m.fields())
		dc.entry(productEntry(i, *m), ok, sub.problems)
	}
	d.CustomerMappings = make([]CustomerMapping, len(customers))
	for i, r := range customers {
		m := &d.CustomerMappings[i]
		var sub decoder
		ok := sub.object("", r, m.fields())
		dc.entry(customerEntry(i, *m), ok, sub.problems)
	}
	return d, true
}

// fields are the fields of a product mapping, for decoding m.
func (m *ProductMapping) fields() []field {
	return []field{
		{"source", &m.Source},
		{"product", &m.Product},
		{"service_id", &m.ServiceID},
		{"service_name", &m.ServiceName},
		{"sync_enabled", &m.SyncEnabled},
		{"owner", &m.Owner},
	}
}

// fields are the fields of a customer mapping, for decoding m.
func (m *CustomerMapping) fields() []field {
	return []field{
		{"source", &m.Source},
		{"customer_id", &m.CustomerID},
		{"customer_name", &m.CustomerName},
		{"company_id", &m.CompanyID},
		{"contract_id", &m.ContractID},
		{"next_contract_id", &m.NextContractID},
		{"usage_sync", &m.UsageSync},
		{"ticket_sync", &m.TicketSync},
		{"owner", &m.Owner},
	}
}

// fields are the top-level fields of a document, for decoding d; the
// objects and lists go to the given raw values.
func (d *Document) fields(psaRaw, integrationRaw, ticketsRaw *json.RawMessage, products, customers *[]json.RawMessage) []field {
	return []field{
		{"schema", &d.Schema},
		{"psa", psaRaw},
		{"revision", &d.Revision},
		{"updated_at", &d.UpdatedAt},
		{"integration", integrationRaw},
		{"tickets", ticketsRaw},
		{"product_mappings", products},
		{"customer_mappings", customers},
	}
}

// fields are the fields of the psa object, for decoding p.
func (p *PSA) fields() []field {
	return []field{
		{"system", (*string)(&p.System)},
		{"instance", &p.Instance},
	}
}

// fields are the fields of the integration object, for decoding in.
func (in *Integration) fields() []field {
	return []field{
		{"enabled", &in.Enabled},
		{"schedule", &in.Schedule},
		{"timezone", &in.Timezone},
		{"owner", &in.Owner},
	}
}

// entry records the problems of one mapping under its name, which is only
// known once its key has been decoded.
func (dc *decoder) entry(name string, isObject bool, problems []Problem) {
	if !isObject {
		dc.add(name, "", "must be a JSON object")
		return
	}
	for _, p := range problems {
		dc.add(name, p.Field, p.Message)
	}
}
