package connectwise

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Condition is a ConnectWise "conditions" expression, built safely: field
// paths are checked, strings are quoted and escaped, dates are written in
// square brackets. The zero Condition means "no condition". Build one with
// Eq, In, And and the other constructors; a mistake (a bad field path or an
// unsupported value type) is kept in the Condition and reported by Err when
// the request is built.
type Condition struct {
	expr string
	err  error
}

// String returns the expression, such as `company/id=174 and name="Acme"`.
func (c Condition) String() string { return c.expr }

// IsZero reports whether c is the empty condition.
func (c Condition) IsZero() bool { return c.expr == "" && c.err == nil }

// Err returns the first mistake made building c, if any.
func (c Condition) Err() error { return c.err }

// fieldPath matches a field name or a nested path such as company/id.
var fieldPath = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$`)

func compare(field, op string, value any) Condition {
	if !fieldPath.MatchString(field) {
		return Condition{err: fmt.Errorf("connectwise: invalid field path %q in conditions", field)}
	}
	v, err := Literal(value)
	if err != nil {
		return Condition{err: fmt.Errorf("connectwise: condition on %s: %w", field, err)}
	}
	return Condition{expr: field + op + v}
}

// Literal formats a value as a conditions literal: strings in double quotes
// with backslashes and double quotes escaped, integers and floats bare,
// booleans as true/false, times as [yyyy-MM-ddTHH:mm:ssZ] in UTC, nil as
// null.
func Literal(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "null", nil
	case string:
		return quote(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case time.Time:
		return "[" + FormatTime(x) + "]", nil
	case *time.Time:
		if x == nil {
			return "null", nil
		}
		return "[" + FormatTime(*x) + "]", nil
	}
	return "", fmt.Errorf("unsupported value type %T", v)
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n', '\r', '\t':
			b.WriteByte(' ') // conditions are one line
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Eq matches field = value.
func Eq(field string, value any) Condition { return compare(field, "=", value) }

// NotEq matches field != value.
func NotEq(field string, value any) Condition { return compare(field, "!=", value) }

// Lt matches field < value.
func Lt(field string, value any) Condition { return compare(field, "<", value) }

// Lte matches field <= value.
func Lte(field string, value any) Condition { return compare(field, "<=", value) }

// Gt matches field > value.
func Gt(field string, value any) Condition { return compare(field, ">", value) }

// Gte matches field >= value.
func Gte(field string, value any) Condition { return compare(field, ">=", value) }

// Contains matches string fields containing s.
func Contains(field, s string) Condition { return compare(field, " contains ", s) }

// Like matches string fields against a pattern with % wildcards. The pattern
// is quoted but its % are kept; use EscapeLike on user input.
func Like(field, pattern string) Condition { return compare(field, " like ", pattern) }

// IsNull matches records where field is null.
func IsNull(field string) Condition { return compare(field, "=", nil) }

// In matches field equal to any of values. It needs at least one value.
func In[T any](field string, values ...T) Condition {
	if !fieldPath.MatchString(field) {
		return Condition{err: fmt.Errorf("connectwise: invalid field path %q in conditions", field)}
	}
	if len(values) == 0 {
		return Condition{err: fmt.Errorf("connectwise: condition %s in (): no values", field)}
	}
	parts := make([]string, 0, len(values))
	for _, v := range values {
		l, err := Literal(any(v))
		if err != nil {
			return Condition{err: fmt.Errorf("connectwise: condition on %s: %w", field, err)}
		}
		parts = append(parts, l)
	}
	return Condition{expr: field + " in (" + strings.Join(parts, ",") + ")"}
}

// And matches when every non-zero condition matches. Groups are
// parenthesised, so And(Or(a, b), c) keeps its meaning.
func And(cs ...Condition) Condition { return join(" and ", cs) }

// Or matches when any non-zero condition matches.
func Or(cs ...Condition) Condition { return join(" or ", cs) }

// Not negates c.
func Not(c Condition) Condition {
	if c.err != nil || c.expr == "" {
		return c
	}
	return Condition{expr: "not (" + c.expr + ")"}
}

func join(sep string, cs []Condition) Condition {
	var parts []string
	var errs []error
	for _, c := range cs {
		if c.err != nil {
			errs = append(errs, c.err)
			continue
		}
		if c.expr == "" {
			continue
		}
		if strings.Contains(c.expr, " and ") || strings.Contains(c.expr, " or ") {
			parts = append(parts, "("+c.expr+")")
		} else {
			parts = append(parts, c.expr)
		}
	}
	if len(errs) > 0 {
		return Condition{err: errors.Join(errs...)}
	}
	return Condition{expr: strings.Join(parts, sep)}
}

// EscapeLike escapes the wildcard characters of s for use in a Like pattern
// (ConnectWise passes like patterns to SQL Server, where [ ] escape).
func EscapeLike(s string) string {
	r := strings.NewReplacer("[", "[[]", "%", "[%]", "_", "[_]")
	return r.Replace(s)
}

// FormatTime formats t as ConnectWise expects in bodies and conditions:
// yyyy-MM-ddTHH:mm:ssZ in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
