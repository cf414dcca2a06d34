package psatest

import (
	"bytes"
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
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
	// hints are the conditions every match must meet that an index can
	// answer (an eq or in on an id or an indexed field, outside any or):
	// the table reads its candidates from the most selective one instead
	// of scanning every record. match still decides.
	hints []indexHint
}

// indexHint says that a matching record's field holds one of keys.
type indexHint struct {
	field string
	keys  []int64
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
		q.hints = c.hints
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
	// inOr counts the or conditions being compiled around the current one;
	// a condition inside one does not bound the matches, so it gives no
	// index hint.
	inOr  int
	hints []indexHint
}

// hint records an index hint for an eq or in condition on f whose operands
// are os, when every operand is a whole number (the only values an integer
// field holds) and the condition is not inside an or.
func (c *compiler) hint(f *fieldDef, os []operand) {
	if c.inOr > 0 || f == nil || (f.Name != "id" && !indexed(f)) {
		return
	}
	keys := make([]int64, 0, len(os))
	for _, o := range os {
		k, ok := o.intKey()
		if !ok {
			return
		}
		keys = append(keys, k)
	}
	c.hints = append(c.hints, indexHint{field: f.Name, keys: keys})
}

func (c *compiler) all(items []any) (predicate, error) {
	// Conditions that give an index hint go last: when the records come
	// from that index they hold, and the others (a date window, say) turn
	// most candidates down sooner. The result of an and is the same in
	// any order.
	preds := make([]predicate, 0, len(items))
	var late []predicate
	for _, it := range items {
		hints := len(c.hints)
		p, err := c.condition(it)
		if err != nil {
			return nil, err
		}
		if len(c.hints) > hints {
			late = append(late, p)
		} else {
			preds = append(preds, p)
		}
	}
	preds = append(preds, late...)
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
		c.inOr++
		defer func() { c.inOr-- }()
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
		ops := make([]operand, 0, len(list))
		for _, v := range list {
			o, err := newOperand(f, v)
			if err != nil {
				return nil, err
			}
			keys[o.key()] = true
			ops = append(ops, o)
		}
		want := op == "in"
		if want {
			c.hint(f, ops)
		}
		// Numbers are looked up by their bits rather than their key
		// text: the same test (FormatFloat's shortest form is unique per
		// float64), without formatting every record's value.
		nums := map[uint64]bool{}
		for _, o := range ops {
			if o.kind == "num" {
				nums[math.Float64bits(o.num)] = true
			}
		}
		return func(r record) bool {
			v := get(r)
			switch x := v.(type) {
			case nil:
				return !want
			case int64:
				if f != nil {
					return nums[math.Float64bits(float64(x))] == want
				}
			case float64:
				if f != nil {
					return nums[math.Float64bits(x)] == want
				}
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
		if op == "eq" {
			c.hint(f, []operand{o})
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

// intKey returns a numeric operand as the whole number an integer field
// would store; false when it is not one.
func (o operand) intKey() (int64, bool) {
	return wholeNumber(o.num, o.kind == "num")
}

// wholeNumber converts x to an int64 when ok and x is a whole number that
// a float64 holds exactly (filters compare numbers as float64, so larger
// ones may match more than one stored value: no index answers them).
func wholeNumber(x float64, ok bool) (int64, bool) {
	const exact = 1 << 53
	if !ok || x != math.Trunc(x) || x <= -exact || x >= exact {
		return 0, false
	}
	return int64(x), true
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

// table holds the records of one entity in id order, with an index on each
// of its foreign keys (the integer fields that refer to another entity, as
// a database would have): for each value, the records that hold it, in id
// order. Records are never changed in place in an indexed field: an update
// puts a new record.
type table struct {
	rows  map[int64]record
	order postings
	index map[string]map[int64]postings
}

// posting is a record and its id in a list ordered by id; lists hold the
// record itself so that reading a list costs no lookup in rows.
type posting struct {
	id  int64
	rec record
}

type postings []posting

func (p postings) search(id int64) (int, bool) {
	return slices.BinarySearchFunc(p, id, func(e posting, id int64) int { return cmp.Compare(e.id, id) })
}

// put adds or replaces a record (ids are mostly allocated in increasing
// order, so adding is usually an append).
func (p postings) put(id int64, rec record) postings {
	i, found := p.search(id)
	if found {
		p[i].rec = rec
		return p
	}
	return slices.Insert(p, i, posting{id, rec})
}

func (p postings) remove(id int64) postings {
	if i, found := p.search(id); found {
		return slices.Delete(p, i, i+1)
	}
	return p
}

// after returns the records with id > after.
func (p postings) after(after int64) postings {
	return p[sort.Search(len(p), func(i int) bool { return p[i].id > after }):]
}

// indexed reports whether the table of an entity indexes field f.
func indexed(f *fieldDef) bool {
	return f.Ref != "" && (f.Type == typeInteger || f.Type == typeLong)
}

// newTable returns an empty table of entity d (nil: no indexes).
func newTable(d *entityDef) *table {
	t := &table{rows: map[int64]record{}, index: map[string]map[int64]postings{}}
	if d != nil {
		for i := range d.Fields {
			if f := &d.Fields[i]; indexed(f) {
				t.index[f.Name] = map[int64]postings{}
			}
		}
	}
	return t
}

func (t *table) get(id int64) record { return t.rows[id] }

func (t *table) put(r record) {
	id := r.id()
	old, ok := t.rows[id]
	t.order = t.order.put(id, r)
	for field, idx := range t.index {
		nk, nok := indexKey(r[field])
		if ok {
			if oldKey, oldOK := indexKey(old[field]); oldOK && (!nok || oldKey != nk) {
				idx[oldKey] = idx[oldKey].remove(id)
			}
		}
		if nok {
			idx[nk] = idx[nk].put(id, r)
		}
	}
	t.rows[id] = r
}

func (t *table) delete(id int64) {
	old, ok := t.rows[id]
	if !ok {
		return
	}
	delete(t.rows, id)
	t.order = t.order.remove(id)
	for field, idx := range t.index {
		if k, ok := indexKey(old[field]); ok {
			idx[k] = idx[k].remove(id)
		}
	}
}

// indexKey returns the key of a stored value in an index.
func indexKey(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return wholeNumber(float64(v), true)
	case float64:
		return wholeNumber(v, true)
	}
	return 0, false
}

// insertSorted adds id to the sorted ids.
func insertSorted(ids []int64, id int64) []int64 {
	i, found := slices.BinarySearch(ids, id)
	if found {
		return ids
	}
	return slices.Insert(ids, i, id)
}

func removeSorted(ids []int64, id int64) []int64 {
	if i, found := slices.BinarySearch(ids, id); found {
		return slices.Delete(ids, i, i+1)
	}
	return ids
}

// each calls fn for the records with id > after in id order until fn
// returns false.
func (t *table) each(after int64, fn func(record) bool) {
	for _, p := range t.order.after(after) {
		if !fn(p.rec) {
			return
		}
	}
}

// eachCandidate is each over the records that can meet every hint: those
// the most selective usable hint picks out through an index (or the id),
// or every record when no hint can be used. The caller still matches each
// record against its query.
func (t *table) eachCandidate(hints []indexHint, after int64, fn func(record) bool) {
	var best []postings
	size, found := 0, false
	for _, h := range hints {
		var lists []postings
		n := 0
		keys := slices.Clone(h.keys)
		slices.Sort(keys)
		keys = slices.Compact(keys) // an in list may repeat a key
		if h.field == "id" {
			var ids postings
			for _, k := range keys {
				if r, ok := t.rows[k]; ok && k > after {
					ids = append(ids, posting{k, r})
				}
			}
			if n = len(ids); n > 0 {
				lists = []postings{ids}
			}
		} else {
			idx, ok := t.index[h.field]
			if !ok {
				continue
			}
			for _, k := range keys {
				if list := idx[k].after(after); len(list) > 0 {
					lists = append(lists, list)
					n += len(list)
				}
			}
		}
		if !found || n < size {
			best, size, found = lists, n, true
		}
	}
	if !found {
		t.each(after, fn)
		return
	}
	// The lists are sorted and disjoint (a record holds one value of a
	// field): merge them in id order, only as far as fn reads.
	m := mergeHeap(best)
	heap.Init(&m)
	for len(m) > 0 {
		rec := m[0][0].rec
		if m[0] = m[0][1:]; len(m[0]) == 0 {
			heap.Pop(&m)
		} else {
			heap.Fix(&m, 0)
		}
		if !fn(rec) {
			return
		}
	}
}

// mergeHeap is a heap of non-empty lists of postings by their first id.
type mergeHeap []postings

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return h[i][0].id < h[j][0].id }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(postings)) } //nolint:forcetypeassert // heap.Push of a postings
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// all returns every record in id order.
func (t *table) all() []record {
	out := make([]record, 0, len(t.order))
	t.each(math.MinInt64, func(r record) bool {
		out = append(out, r)
		return true
	})
	return out
}
