package autotask

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// decodeFast decodes a page of unit rows without encoding/json's
// reflection, when the page is written the way Autotask writes one: the
// items and pageDetails keys, each row's fields under their exact names,
// numbers where numbers go, strings without escapes. It reports false,
// leaving r as it was, for anything else, which encoding/json then decodes
// (or refuses) as before: what decodeFast accepts, it decodes as
// encoding/json would (TestDecodeUnitPage holds it to that). A pass over
// 100,000 lines decodes 100,000 rows, which encoding/json spends a quarter
// of the pass's CPU on.
func (r *listResponse[T]) decodeFast(body []byte) bool {
	items, ok := any(&r.Items).(*[]*unitJSON)
	if !ok {
		return false
	}
	rows, page, ok := decodeUnitPage(body)
	if !ok {
		return false
	}
	*items, r.Page = rows, page
	return true
}

// decodeRows decodes a page of unit rows one row at a time, after
// encoding/json refused the page as a whole (encoding/json does not say
// which row it refused). A row that cannot be decoded (a field of the
// wrong type) but names its contract is kept, marked with its problem, so
// that only its contract fails (see UnreadableRowsError). decodeRows
// reports false, leaving r empty, when the page is not a list of rows
// (not JSON, cut short) or a row that cannot be decoded names no contract:
// the page then fails as a whole, with encoding/json's error.
func (r *listResponse[T]) decodeRows(body []byte) bool {
	items, ok := any(&r.Items).(*[]*unitJSON)
	if !ok {
		return false
	}
	*items, r.Page = nil, nil
	var env struct {
		Items []json.RawMessage `json:"items"`
		Page  json.RawMessage   `json:"pageDetails"`
	}
	if json.Unmarshal(body, &env) != nil {
		return false
	}
	rows := make([]*unitJSON, len(env.Items))
	for i, raw := range env.Items {
		w := &unitJSON{}
		if err := json.Unmarshal(raw, w); err != nil {
			// Unmarshal decodes the fields it can despite one of the
			// wrong type, so the row's ids are read where they are
			// numbers; anything else leaves ContractID 0.
			var who struct {
				ID         int64 `json:"id"`
				ContractID int64 `json:"contractID"`
				ServiceID  int64 `json:"serviceID"`
			}
			_ = json.Unmarshal(raw, &who)
			if who.ContractID == 0 {
				return false
			}
			w = &unitJSON{problem: fmt.Errorf("autotask: contract service unit %d (contract %d, service %d) cannot be read: %s",
				who.ID, who.ContractID, who.ServiceID, describeDecodeError(err))}
			w.ID, w.ContractID, w.ServiceID = who.ID, who.ContractID, who.ServiceID
		}
		rows[i] = w
	}
	*items, r.Page = rows, env.Page
	return true
}

// describeDecodeError says what encoding/json refused in a row: the field
// and what it held, for a field of the wrong type.
func describeDecodeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		// Field is the path from unitJSON, through the embedded plainUnit.
		return fmt.Sprintf("field %s holds %s, not %s", strings.TrimPrefix(te.Field, "plainUnit."), te.Value, te.Type)
	}
	return err.Error()
}

// rowDecoder is a response that can decode a page row by row when
// encoding/json refuses it (see listResponse.decodeRows); decodeBody tries
// it last.
type rowDecoder interface{ decodeRows(body []byte) bool }

// fastDecoder is a response that can decode some bodies itself (see
// listResponse.decodeFast); decodeBody tries it before encoding/json.
type fastDecoder interface{ decodeFast(body []byte) bool }

// decodeUnitPage decodes a page of unit rows: {"items":[...],"pageDetails":{...}}.
func decodeUnitPage(body []byte) (rows []*unitJSON, page json.RawMessage, ok bool) {
	s := scanner{b: body}
	// A row takes some 100 bytes or more.
	all := make([]unitJSON, 0, min(len(body)/100+1, MaxPageSize))
	items := false
	ok = s.object(func(key []byte) bool {
		switch string(key) {
		case "items":
			if items {
				return false // encoding/json would start the list again
			}
			items = true
			return s.array(func() bool {
				all = append(all, unitJSON{})
				return s.unit(&all[len(all)-1])
			})
		case "pageDetails":
			start := s.skipSpace()
			if !s.skip() {
				return false
			}
			page = json.RawMessage(body[start:s.i])
			return true
		}
		return false
	})
	if !ok || s.skipSpace() != len(body) {
		return nil, nil, false
	}
	if items {
		rows = make([]*unitJSON, len(all))
		for i := range all {
			rows[i] = &all[i]
		}
	}
	return rows, page, true
}

// scanner reads JSON from b at i, for decodeUnitPage. Its methods report
// false for anything they do not take, valid JSON or not.
type scanner struct {
	b []byte
	i int
}

// skipSpace skips white space and returns the position after it.
func (s *scanner) skipSpace() int {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return s.i
		}
	}
	return s.i
}

// literal consumes lit if it comes next.
func (s *scanner) literal(lit string) bool {
	s.skipSpace()
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// object reads an object, calling field for each key with the scanner at
// its value, which field must consume.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.literal("{") {
		return false
	}
	if s.literal("}") {
		return true
	}
	for {
		key, ok := s.plainString()
		if !ok || !s.literal(":") || !field(key) {
			return false
		}
		if s.literal("}") {
			return true
		}
		if !s.literal(",") {
			return false
		}
	}
}

// array reads an array, calling elem with the scanner at each element.
func (s *scanner) array(elem func() bool) bool {
	if !s.literal("[") {
		return false
	}
	if s.literal("]") {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.literal("]") {
			return true
		}
		if !s.literal(",") {
			return false
		}
	}
}

// plainString reads a string without escapes, control characters or bytes
// beyond ASCII (which encoding/json would check or replace), and returns
// its content.
func (s *scanner) plainString() ([]byte, bool) {
	s.skipSpace()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			str := s.b[s.i+1 : j]
			s.i = j + 1
			return str, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// number reads a JSON number and returns its text.
func (s *scanner) number() ([]byte, bool) {
	start := s.skipSpace()
	j := start
	digits := func() bool {
		k := j
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	switch {
	case j < len(s.b) && s.b[j] == '0':
		j++
	case !digits():
		return nil, false
	}
	if j < len(s.b) && s.b[j] == '.' {
		j++
		if !digits() {
			return nil, false
		}
	}
	if j < len(s.b) && (s.b[j] == 'e' || s.b[j] == 'E') {
		j++
		if j < len(s.b) && (s.b[j] == '+' || s.b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, false
		}
	}
	s.i = j
	return s.b[start:j], true
}

// int64Field reads a number into *v as encoding/json reads one into an
// int64 (null leaves it), and, when set is not nil, reports there whether
// a number was read (for the *int64 fields, which null leaves nil).
func (s *scanner) int64Field(v *int64, set **int64) bool {
	if s.literal("null") {
		if set != nil {
			*set = nil
		}
		return true
	}
	text, ok := s.number()
	if !ok {
		return false
	}
	n, ok := parseInt(text)
	if !ok {
		return false
	}
	*v = n
	if set != nil {
		*set = v
	}
	return true
}

// parseInt parses a JSON number as strconv.ParseInt does, without a
// string: it reports false for a fraction, an exponent or an overflow.
func parseInt(text []byte) (int64, bool) {
	neg := len(text) > 0 && text[0] == '-'
	if neg {
		text = text[1:]
	}
	if len(text) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range text {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	switch {
	case neg && n <= 1<<63:
		return -int64(n-1) - 1, true
	case !neg && n <= math.MaxInt64:
		return int64(n), true
	}
	return 0, false
}

// float64Field reads a number into *v as encoding/json does (null leaves
// it).
func (s *scanner) float64Field(v *float64) bool {
	if s.literal("null") {
		return true
	}
	text, ok := s.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return false
	}
	*v = f
	return true
}

// timestampField reads a string or null and hands it to t's UnmarshalJSON,
// as encoding/json does.
func (s *scanner) timestampField(t *Timestamp) bool {
	start := s.skipSpace()
	if !s.literal("null") {
		if _, ok := s.plainString(); !ok {
			return false
		}
	}
	return t.UnmarshalJSON(s.b[start:s.i]) == nil
}

// unit reads a unit row into w.
func (s *scanner) unit(w *unitJSON) bool {
	u := &w.plainUnit
	// The units read are kept in the row's own Units, which w.Units
	// (whose key it is) points to: unit() copies them there anyway.
	var vendor int64
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "id":
			return s.int64Field(&u.ID, nil)
		case "contractID":
			return s.int64Field(&u.ContractID, nil)
		case "contractServiceID":
			return s.int64Field(&u.ContractServiceID, nil)
		case "serviceID":
			return s.int64Field(&u.ServiceID, nil)
		case "startDate":
			return s.timestampField(&u.StartDate)
		case "endDate":
			return s.timestampField(&u.EndDate)
		case "units":
			return s.int64Field(&u.Units, &w.Units)
		case "price":
			return s.float64Field(&u.Price)
		case "cost":
			return s.float64Field(&u.Cost)
		case "approveAndPostDate":
			return s.timestampField(&u.ApproveAndPostDate)
		case "vendorCompanyID":
			return s.int64Field(&vendor, &u.VendorCompanyID) && (u.VendorCompanyID == nil || s.own(&u.VendorCompanyID))
		}
		return false
	})
}

// own gives the row a copy of the number *p points to, which unit reads
// into a variable of its own.
func (s *scanner) own(p **int64) bool {
	v := **p
	*p = &v
	return true
}

// skip reads any JSON value, checking it as encoding/json would.
func (s *scanner) skip() bool {
	s.skipSpace()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; c {
	case '{':
		return s.object(func([]byte) bool { return s.skip() })
	case '[':
		return s.array(s.skip)
	case '"':
		return s.skipString()
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		_, ok := s.number()
		return ok
	}
}

// skipString reads a string with any escapes, checking them.
func (s *scanner) skipString() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(s.b) {
				return false
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[j+1 : j+5] {
					if (h < '0' || h > '9') && (h < 'a' || h > 'f') && (h < 'A' || h > 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}
