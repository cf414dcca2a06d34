package psatest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Query limits from the Autotask documentation.
const (
	maxRecords      = 500
	maxOrConditions = 500
)

// predicate reports whether a record matches a filter.
type predicate func(record) bool

// autotaskQuery is a parsed QueryModel body.
type autotaskQuery struct {
	match   predicate
	empty   bool // filter: [] matches nothing
	include map[string]bool
	max     int
	hash    string // identifies the query for paging continuation
}

// parseQuery parses a QueryModel (the POST body or the GET search
// parameter). Keys are case-insensitive. It enforces Autotask's strict
// rules: a filter array is required and MaxRecords must be 1..500.
func parseQuery(d *entityDef, data []byte) (*autotaskQuery, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, apiErr("A query must include a filter.")
	}
	m, err := decodeObject(data)
	if err != nil {
		return nil, apiErr("The query is not valid JSON.")
	}
	body := make(map[string]any, len(m))
	for k, v := range m {
		body[strings.ToLower(k)] = v
	}
	q := &autotaskQuery{max: maxRecords}

	raw, ok := body["filter"]
	if !ok || raw == nil {
		return nil, apiErr("A query must include a filter.")
	}
	items, ok := raw.([]any)
	if !ok {
		return nil, apiErr("The query filter must be an array of conditions.")
	}
	if len(items) == 0 {
		q.empty = true
	} else {
		c := &compiler{d: d}
		q.match, err = c.all(items)
		if err != nil {
			return nil, err
		}
		if c.ors > maxOrConditions {
			return nil, apiErr("A query may include at most %d OR conditions.", maxOrConditions)
		}
	}

	if v, ok := body["maxrecords"]; ok && v != nil {
		n, isNum := v.(json.Number)
		x, err := strconv.ParseInt(string(n), 10, 64)
		if !isNum || err != nil || x < 1 || x > maxRecords {
			return nil, apiErr("MaxRecords must be between 1 and %d.", maxRecords)
		}
		q.max = int(x)
	}

	if v, ok := body["includefields"]; ok && v != nil {
		list, ok := v.([]any)
		if !ok {
			return nil, apiErr("IncludeFields must be an array of field names.")
		}
		if len(list) > 0 {
			q.include = map[string]bool{}
			for _, e := range list {
				name, _ := e.(string)
				f := d.field(name)
				if f == nil {
					return nil, apiErr("IncludeFields: unable to find field %q in the %s entity.", name, d.Name)
				}
				q.include[f.Name] = true
			}
		}
	}

	canon, _ := json.Marshal(body)
	sum := sha256.Sum256(canon)
	q.hash = hex.EncodeToString(sum[:8])
	return q, nil
}

type compiler struct {
	d   *entityDef
	ors int
}

func (c *compiler) all(items []any) (predicate, error) {
	preds := make([]predicate, 0, len(items))
	for _, it := range items {
		p, err := c.condition(it)
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	return func(r record) bool {
		for _, p := range preds {
			if !p(r) {
				return false
			}
		}
		return true
	}, nil
}

func (c *compiler) condition(raw any) (predicate, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, apiErr("Each filter condition must be an object.")
	}
	cond := make(map[string]any, len(obj))
	for k, v := range obj {
		cond[strings.ToLower(k)] = v
	}
	op, _ := cond["op"].(string)
	op = strings.ToLower(op)

	if op == "and" || op == "or" {
		items, _ := cond["items"].([]any)
		if len(items) == 0 {
			return nil, apiErr("The %q condition requires items.", op)
		}
		if op == "and" {
			return c.all(items)
		}
		c.ors += len(items)
		preds := make([]predicate, 0, len(items))
		for _, it := range items {
			p, err := c.condition(it)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
		}
		return func(r record) bool {
			for _, p := range preds {
				if p(r) {
					return true
				}
			}
			return false
		}, nil
	}

	name, _ := cond["field"].(string)
	if name == "" {
		return nil, apiErr("The %q condition requires a field.", op)
	}
	udf, _ := cond["udf"].(bool)
	var f *fieldDef
	if !udf {
		f = c.d.field(name)
		if f == nil {
			return nil, apiErr("Unable to find %s in the %s entity.", name, c.d.Name)
		}
	}
	value, hasValue := cond["value"]
	get := func(r record) any {
		if f == nil {
			return nil // the simulator has no user-defined fields
		}
		return r[f.Name]
	}

	switch op {
	case "exist", "notexist":
		want := op == "exist"
		return func(r record) bool { return present(get(r)) == want }, nil
	case "in", "notin":
		list, ok := value.([]any)
		if !ok {
			return nil, apiErr("The %q condition on %s requires an array value.", op, name)
		}
		keys := map[string]bool{}
		for _, v := range list {
			o, err := newOperand(f, v)
			if err != nil {
				return nil, err
			}
			keys[o.key()] = true
		}
		want := op == "in"
		return func(r record) bool {
			v := get(r)
			if v == nil {
				return !want
			}
			return keys[valueKey(f, v)] == want
		}, nil
	case "eq", "noteq", "gt", "gte", "lt", "lte":
		if !hasValue {
			return nil, apiErr("The %q condition on %s requires a value.", op, name)
		}
		if value == nil {
			isNull := op == "eq"
			return func(r record) bool { return !present(get(r)) == isNull }, nil
		}
		o, err := newOperand(f, value)
		if err != nil {
			return nil, err
		}
		return func(r record) bool {
			v := get(r)
			if v == nil {
				return op == "noteq"
			}
			cmp, ok := o.compare(v)
			if !ok {
				return op == "noteq"
			}
			switch op {
			case "eq":
				return cmp == 0
			case "noteq":
				return cmp != 0
			case "gt":
				return cmp > 0
			case "gte":
				return cmp >= 0
			case "lt":
				return cmp < 0
			default:
				return cmp <= 0
			}
		}, nil
	case "beginswith", "endswith", "contains":
		s, ok := value.(string)
		if !ok {
			if n, isNum := value.(json.Number); isNum {
				s, ok = n.String(), true
			}
		}
		if !ok {
			return nil, apiErr("The %q condition on %s requires a string value.", op, name)
		}
		s = strings.ToLower(s)
		return func(r record) bool {
			v := get(r)
			if v == nil {
				return false
			}
			str := strings.ToLower(stringOf(v))
			switch op {
			case "beginswith":
				return strings.HasPrefix(str, s)
			case "endswith":
				return strings.HasSuffix(str, s)
			default:
				return strings.Contains(str, s)
			}
		}, nil
	}
	return nil, apiErr("%q is not a valid filter operator.", cond["op"])
}

func present(v any) bool {
	if v == nil {
		return false
	}
	if s, ok := v.(string); ok {
		return s != ""
	}
	return true
}

func stringOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return formatTime(v)
	}
	return fmt.Sprint(v)
}

// operand is a filter value converted to the type of its field.
type operand struct {
	kind string // "num", "str", "bool", "time", "null"
	num  float64
	str  string
	b    bool
	t    time.Time
}

func newOperand(f *fieldDef, v any) (operand, error) {
	if f == nil { // UDF: compare as strings
		return operand{kind: "str", str: strings.ToLower(stringOf(jsonScalar(v)))}, nil
	}
	name := f.Name
	switch {
	case f.numeric():
		var x float64
		var err error
		switch v := v.(type) {
		case json.Number:
			x, err = v.Float64()
		case string:
			x, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
		default:
			err = apiErr("not a number")
		}
		if err != nil {
			return operand{}, apiErr("The value for %s must be a number.", name)
		}
		return operand{kind: "num", num: x}, nil
	case f.Type == typeBoolean:
		b, ok := v.(bool)
		if !ok {
			return operand{}, apiErr("The value for %s must be true or false.", name)
		}
		return operand{kind: "bool", b: b}, nil
	case f.Type == typeDateTime:
		s, ok := v.(string)
		if !ok {
			return operand{}, apiErr("The value for %s must be a date.", name)
		}
		t, err := parseTime(s)
		if err != nil {
			return operand{}, apiErr("The value for %s must be a date: %v.", name, err)
		}
		return operand{kind: "time", t: t}, nil
	default:
		return operand{kind: "str", str: strings.ToLower(stringOf(jsonScalar(v)))}, nil
	}
}

func jsonScalar(v any) any {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return v
}

func (o operand) key() string {
	switch o.kind {
	case "num":
		return "n:" + strconv.FormatFloat(o.num, 'g', -1, 64)
	case "bool":
		return "b:" + strconv.FormatBool(o.b)
	case "time":
		return "t:" + strconv.FormatInt(o.t.UnixNano(), 10)
	}
	return "s:" + o.str
}

// valueKey is operand.key for a stored value of field f.
func valueKey(f *fieldDef, v any) string {
	if f == nil {
		return "s:" + strings.ToLower(stringOf(v))
	}
	switch v := v.(type) {
	case int64:
		return "n:" + strconv.FormatFloat(float64(v), 'g', -1, 64)
	case float64:
		return "n:" + strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return "b:" + strconv.FormatBool(v)
	case time.Time:
		return "t:" + strconv.FormatInt(v.UnixNano(), 10)
	}
	return "s:" + strings.ToLower(stringOf(v))
}

// compare returns the sign of (v - o).
func (o operand) compare(v any) (int, bool) {
	switch o.kind {
	case "num":
		var x float64
		switch v := v.(type) {
		case int64:
			x = float64(v)
		case float64:
			x = v
		default:
			return 0, false
		}
		switch {
		case x < o.num:
			return -1, true
		case x > o.num:
			return 1, true
		}
		return 0, true
	case "bool":
		b, ok := v.(bool)
		if !ok {
			return 0, false
		}
		if b == o.b {
			return 0, true
		}
		return 1, true // only eq/noteq make sense on booleans
	case "time":
		t, ok := v.(time.Time)
		if !ok {
			return 0, false
		}
		return t.Compare(o.t), true
	}
	return strings.Compare(strings.ToLower(stringOf(v)), o.str), true
}

// pageToken is the opaque "paging" parameter of a nextPageUrl.
type pageToken struct {
	Entity string `json:"e"`
	Method string `json:"m"`
	After  int64  `json:"a"`
	Hash   string `json:"h"`
}

func (p pageToken) encode() string {
	data, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(data)
}

func decodePageToken(s string) (pageToken, error) {
	var p pageToken
	data, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(data, &p)
	}
	if err != nil || p.Entity == "" {
		return p, apiErr("The paging parameter is not valid.")
	}
	return p, nil
}

// table holds the records of one entity in id order.
type table struct {
	ids  []int64
	rows map[int64]record
}

func newTable() *table { return &table{rows: map[int64]record{}} }

func (t *table) get(id int64) record { return t.rows[id] }

func (t *table) put(r record) {
	id := r.id()
	if _, ok := t.rows[id]; !ok {
		i := sort.Search(len(t.ids), func(i int) bool { return t.ids[i] >= id })
		t.ids = append(t.ids, 0)
		copy(t.ids[i+1:], t.ids[i:])
		t.ids[i] = id
	}
	t.rows[id] = r
}

func (t *table) delete(id int64) {
	if _, ok := t.rows[id]; !ok {
		return
	}
	delete(t.rows, id)
	i := sort.Search(len(t.ids), func(i int) bool { return t.ids[i] >= id })
	t.ids = append(t.ids[:i], t.ids[i+1:]...)
}

// each calls fn for the records with id > after in id order until fn
// returns false.
func (t *table) each(after int64, fn func(record) bool) {
	i := sort.Search(len(t.ids), func(i int) bool { return t.ids[i] > after })
	for ; i < len(t.ids); i++ {
		if !fn(t.rows[t.ids[i]]) {
			return
		}
	}
}

// all returns every record in id order.
func (t *table) all() []record {
	out := make([]record, 0, len(t.ids))
	t.each(math.MinInt64, func(r record) bool {
		out = append(out, r)
		return true
	})
	return out
}
