package autotask

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Op is a query operator.
type Op string

// The query operators of the Autotask REST API.
const (
	OpEq         Op = "eq"
	OpNotEq      Op = "noteq"
	OpGt         Op = "gt"
	OpGte        Op = "gte"
	OpLt         Op = "lt"
	OpLte        Op = "lte"
	OpBeginsWith Op = "beginsWith"
	OpEndsWith   Op = "endsWith"
	OpContains   Op = "contains"
	OpExist      Op = "exist"
	OpNotExist   Op = "notExist"
	OpIn         Op = "in"
	OpNotIn      Op = "notIn"
	OpAnd        Op = "and"
	OpOr         Op = "or"
)

// Filter is one condition of a query, or an and/or group of conditions.
// Build filters with Eq, In, Or and the other constructors.
type Filter struct {
	Op    Op
	Field string
	// Value is the operand: a scalar, or a slice for in/notIn; unused for
	// exist, notExist and groups. A time.Time is sent as RFC 3339 in UTC.
	Value any
	// UDF marks Field as a user-defined field.
	UDF bool
	// Items are the conditions of an and/or group.
	Items []Filter
}

// MarshalJSON encodes the condition in Autotask's shape. Unlike a struct tag
// with omitempty, it keeps zero operands such as 0 and false.
func (f Filter) MarshalJSON() ([]byte, error) {
	m := map[string]any{"op": f.Op}
	switch f.Op {
	case OpAnd, OpOr:
		m["items"] = f.Items
	case OpExist, OpNotExist:
		m["field"] = f.Field
	default:
		m["field"] = f.Field
		m["value"] = jsonValue(f.Value)
	}
	if f.UDF {
		m["udf"] = true
	}
	return json.Marshal(m)
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return FormatTime(x)
	case []time.Time:
		out := make([]string, len(x))
		for i, t := range x {
			out[i] = FormatTime(t)
		}
		return out
	}
	return v
}

// FormatTime formats t as Autotask expects dates in queries and bodies:
// RFC 3339 in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func cond(op Op, field string, value any) Filter { return Filter{Op: op, Field: field, Value: value} }

// Eq matches field == value.
func Eq(field string, value any) Filter { return cond(OpEq, field, value) }

// NotEq matches field != value.
func NotEq(field string, value any) Filter { return cond(OpNotEq, field, value) }

// Gt matches field > value.
func Gt(field string, value any) Filter { return cond(OpGt, field, value) }

// Gte matches field >= value.
func Gte(field string, value any) Filter { return cond(OpGte, field, value) }

// Lt matches field < value.
func Lt(field string, value any) Filter { return cond(OpLt, field, value) }

// Lte matches field <= value.
func Lte(field string, value any) Filter { return cond(OpLte, field, value) }

// BeginsWith matches string fields that start with s.
func BeginsWith(field, s string) Filter { return cond(OpBeginsWith, field, s) }

// EndsWith matches string fields that end with s.
func EndsWith(field, s string) Filter { return cond(OpEndsWith, field, s) }

// Contains matches string fields that contain s.
func Contains(field, s string) Filter { return cond(OpContains, field, s) }

// Exist matches records where field is set.
func Exist(field string) Filter { return Filter{Op: OpExist, Field: field} }

// NotExist matches records where field is not set.
func NotExist(field string) Filter { return Filter{Op: OpNotExist, Field: field} }

// In matches field equal to any of values.
func In[T any](field string, values ...T) Filter { return cond(OpIn, field, values) }

// NotIn matches field equal to none of values.
func NotIn[T any](field string, values ...T) Filter { return cond(OpNotIn, field, values) }

// And matches when every item matches.
func And(items ...Filter) Filter { return Filter{Op: OpAnd, Items: items} }

// Or matches when any item matches.
func Or(items ...Filter) Filter { return Filter{Op: OpOr, Items: items} }

// All matches every record (id >= 0), the documented way to list an entity:
// an empty filter matches nothing.
func All() Filter { return Gte("id", 0) }

// AsUDF returns f marked as a condition on a user-defined field.
func (f Filter) AsUDF() Filter {
	f.UDF = true
	return f
}

// Validate checks the condition against the query grammar.
func (f Filter) Validate() error {
	switch f.Op {
	case OpAnd, OpOr:
		if len(f.Items) == 0 {
			return fmt.Errorf("%s group has no items", f.Op)
		}
		for _, it := range f.Items {
			if err := it.Validate(); err != nil {
				return err
			}
		}
		return nil
	case OpEq, OpNotEq, OpGt, OpGte, OpLt, OpLte, OpBeginsWith, OpEndsWith, OpContains, OpExist, OpNotExist, OpIn, OpNotIn:
	default:
		return fmt.Errorf("unknown operator %q", f.Op)
	}
	if f.Field == "" {
		return fmt.Errorf("%s condition has no field", f.Op)
	}
	if f.Op == OpIn || f.Op == OpNotIn {
		b, err := json.Marshal(jsonValue(f.Value))
		if err != nil {
			return fmt.Errorf("%s %s: %w", f.Field, f.Op, err)
		}
		var list []json.RawMessage
		if json.Unmarshal(b, &list) != nil || len(list) == 0 {
			return fmt.Errorf("%s %s needs a non-empty list of values", f.Field, f.Op)
		}
		if len(list) > MaxPageSize {
			return fmt.Errorf("%s %s has %d values, more than the %d Autotask allows", f.Field, f.Op, len(list), MaxPageSize)
		}
	}
	return nil
}

// Query is the body of a query request (Autotask's QueryModel).
type Query struct {
	// Filter holds the conditions, all of which must match. It must not be
	// empty: Autotask returns no rows for an empty filter. Use All() to list.
	Filter []Filter `json:"filter"`
	// IncludeFields limits the fields returned; nil returns all. It must
	// contain "id" when the query can return more than one page.
	IncludeFields []string `json:"IncludeFields,omitempty"`
	// MaxRecords is the page size, 1 to 500; 0 means Autotask's default (500).
	MaxRecords int `json:"MaxRecords,omitempty"`
}

// NewQuery returns a query whose conditions must all match.
func NewQuery(filters ...Filter) *Query { return &Query{Filter: filters} }

// Validate checks the query before it is sent.
func (q *Query) Validate() error {
	if q == nil || len(q.Filter) == 0 {
		return errors.New("autotask: query has no filter; use autotask.All() to list every record")
	}
	if q.MaxRecords < 0 || q.MaxRecords > MaxPageSize {
		return fmt.Errorf("autotask: MaxRecords must be between 1 and %d, got %d", MaxPageSize, q.MaxRecords)
	}
	for _, f := range q.Filter {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("autotask: invalid filter: %w", err)
		}
	}
	return nil
}

// CountResponse is the answer of a query/count request.
type CountResponse struct {
	QueryCount int64 `json:"queryCount"`
}
