package state

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dialect is what differs between the SQL of SQLite and PostgreSQL: the
// placeholders and the type of time columns. Queries are written once with
// "?" placeholders.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// q rewrites the "?" placeholders of query for db's dialect. No query of
// this package has a "?" inside a string literal.
func (db *DB) q(query string) string {
	if db.dialect != dialectPostgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// sqliteTime is how SQLite columns hold times: UTC to the nanosecond, with
// a fixed width, so that they sort as text.
const sqliteTime = "2006-01-02T15:04:05.000000000Z"

// stored returns t as the database gives it back, so that what a method
// returns equals what a later read returns: UTC, without a monotonic clock
// reading, and to the microsecond on PostgreSQL (its precision).
func (db *DB) stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	t = t.UTC().Round(0)
	if db.dialect == dialectPostgres {
		t = t.Truncate(time.Microsecond)
	}
	return t
}

// tv is the column value of t: NULL for the zero time.
func (db *DB) tv(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = db.stored(t)
	if db.dialect == dialectSQLite {
		return t.Format(sqliteTime)
	}
	return t
}

// timeDest scans a time column of either dialect; NULL is the zero time.
type timeDest struct{ t *time.Time }

func (d timeDest) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.t = time.Time{}
	case time.Time:
		*d.t = v.UTC()
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("state: cannot read %T as a time", src)
	}
	return nil
}

func (d timeDest) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("state: bad time %q: %w", s, err)
	}
	*d.t = t.UTC()
	return nil
}
