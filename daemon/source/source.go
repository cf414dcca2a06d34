package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Period is a billing month.
type Period struct {
	Year  int
	Month time.Month
}

// PeriodOf returns the billing month that contains t, in t's location.
func PeriodOf(t time.Time) Period {
	return Period{Year: t.Year(), Month: t.Month()}
}

// ParsePeriod parses a period written as "YYYY-MM" (the form String returns).
// A single-digit month ("2026-5") is accepted too.
func ParsePeriod(s string) (Period, error) {
	y, m, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Period{}, fmt.Errorf("source: period %q is not YYYY-MM", s)
	}
	year, err := strconv.Atoi(y)
	if err != nil || len(y) != 4 {
		return Period{}, fmt.Errorf("source: period %q is not YYYY-MM", s)
	}
	month, err := strconv.Atoi(m)
	if err != nil || len(m) > 2 || month < 1 || month > 12 {
		return Period{}, fmt.Errorf("source: period %q is not YYYY-MM", s)
	}
	return Period{Year: year, Month: time.Month(month)}, nil
}

// Start returns the first instant of the period in loc (UTC when loc is nil).
func (p Period) Start(loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	return time.Date(p.Year, p.Month, 1, 0, 0, 0, 0, loc)
}

// Next returns the period after p.
func (p Period) Next() Period {
	return PeriodOf(time.Date(p.Year, p.Month+1, 1, 0, 0, 0, 0, time.UTC))
}

// Prev returns the period before p.
func (p Period) Prev() Period {
	return PeriodOf(time.Date(p.Year, p.Month-1, 1, 0, 0, 0, 0, time.UTC))
}

// IsZero reports whether p is the zero Period.
func (p Period) IsZero() bool { return p == Period{} }

// String returns the period as "YYYY-MM", for example "2026-11".
func (p Period) String() string {
	return fmt.Sprintf("%04d-%02d", p.Year, int(p.Month))
}

// MarshalText returns the period as "YYYY-MM", so that JSON and logs show
// "2026-11" rather than a year and a month number.
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses "YYYY-MM" (see ParsePeriod).
func (p *Period) UnmarshalText(b []byte) error {
	v, err := ParsePeriod(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Record is the usage of one product by one customer, as a source reports it.
// A source may return several records for the same (CustomerID, Product); use
// Sum to add them up.
type Record struct {
	// CustomerID is the source's own customer key (a Sophos tenant id, the
	// customer_id column of a file). Empty means usage that belongs to no
	// customer: it is reported, never billed.
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	// Product is the source's stable product key (a Sophos productCode).
	Product     string `json:"product"`
	ProductName string `json:"product_name,omitempty"`
	Quantity    int64  `json:"quantity"`
	// Period is the period as the source gave it, if it gave one.
	Period string `json:"period,omitempty"`
	// Where says where the record came from, for messages: "usage.csv:14",
	// "sophos tenant 718b6047-...".
	Where string `json:"where,omitempty"`
	// Codepage names the code page the source decoded the record's text
	// from ("Windows-1252"), when it was not UTF-8, or is "". The guess can
	// be wrong (a file of another code page): an id outside ASCII that
	// matches no mapping may then be a mapped one, read otherwise.
	Codepage string `json:"-"`
}

// Unassigned reports whether the record is usage that belongs to no customer.
func (r Record) Unassigned() bool { return r.CustomerID == "" }

// Problem is a bad row or item that a source skipped, or a notice about the
// data. The rest of the data still counts.
type Problem struct {
	Where string
	Err   error
	// Unreadable marks usage that was there but could not be read (a
	// quantity that is not a number, a row that cannot be split into
	// columns, a sum that overflows): skipping it could lower a quantity
	// that it should have raised, so the customer it belongs to must not
	// be synced this pass.
	Unreadable bool
	// CustomerID and Product say whose usage an Unreadable problem is, as
	// far as the row tells; an empty CustomerID means the row could belong
	// to any customer, an empty Product to any product.
	CustomerID string
	Product    string
	// Repeated marks the problem of several rows of one customer and
	// product, added up or refused (a usage file's duplicate_rows).
	Repeated bool
}

// String returns "where: err", e.g. `usage.csv:14: quantity "x" is not a whole number`.
func (p Problem) String() string {
	if p.Where == "" {
		return p.Err.Error()
	}
	return p.Where + ": " + p.Err.Error()
}

// MarshalJSON writes the problem as {"where": ..., "error": ...}; an error
// value has no JSON form of its own.
func (p Problem) MarshalJSON() ([]byte, error) {
	v := struct {
		Where string `json:"where,omitempty"`
		Error string `json:"error"`
	}{Where: p.Where}
	if p.Err != nil {
		v.Error = p.Err.Error()
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes (clients of the HTTP API).
func (p *Problem) UnmarshalJSON(b []byte) error {
	var v struct {
		Where string `json:"where"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p.Where, p.Err = v.Where, errors.New(v.Error)
	return nil
}

// Report is what a source returned for one period.
type Report struct {
	// Source is the Name of the source that made the report.
	Source string
	Period Period
	// Records holds the usage rows as the source reported them; several
	// rows may share a (CustomerID, Product), unless Summed is set.
	Records []Record
	// Summed says that Records is what Sum returns for the source's rows
	// (one record per customer and product, sorted), and that Problems
	// already holds Sum's problems: the source added the rows up as it read
	// them, with a Summer, instead of keeping them.
	Summed bool
	// Problems lists what was skipped, and notices such as "no data for this
	// month yet".
	Problems []Problem
	// Customers, when CustomersListed is set, holds the id of every
	// customer the vendor lists, with usage or not (Sophos: the partner's
	// tenants), so that a mapped customer without a row can be told apart:
	// listed with no usage, or no longer listed (deleted, or moved to
	// another partner). A source without such a list, or whose list could
	// not be read in full, leaves CustomersListed unset.
	Customers       []string
	CustomersListed bool
}

// Listed reports whether the vendor lists the customer id (ids compared
// regardless of case, as Sophos tenant ids are UUIDs) and whether the
// report can tell: known is false when the source keeps no customer list.
func (r *Report) Listed(id string) (listed, known bool) {
	if r == nil || !r.CustomersListed {
		return false, false
	}
	id = strings.TrimSpace(id)
	for _, c := range r.Customers {
		if strings.EqualFold(c, id) {
			return true, true
		}
	}
	return false, true
}

// Source is a vendor's usage data. Implementations are safe for concurrent use
// by several goroutines; each call is independent and the caller owns the
// returned Report.
type Source interface {
	// Name returns the source's key as used in the mapping export ("sophos",
	// "file").
	Name() string
	// Fetch returns the usage for period p. Rows it cannot use are skipped
	// and listed in Report.Problems; an error means nothing usable could be
	// read (authentication failed, file missing, the API answered garbage).
	Fetch(ctx context.Context, p Period) (*Report, error)
	// Check verifies that the source can be reached and read (authenticates,
	// opens the file) and returns an error saying what is wrong.
	Check(ctx context.Context) error
}

// progressKey is the context key of WithProgress.
type progressKey struct{}

// WithProgress returns a copy of ctx through which a Source's Fetch reports
// each page of usage it has read (PageRead) by calling read: a pass shows
// that a long read of a large partner's report is making progress
// (psa_sync_pass_progress_timestamp_seconds), not hung.
func WithProgress(ctx context.Context, read func()) context.Context {
	return context.WithValue(ctx, progressKey{}, read)
}

// PageRead reports to the function WithProgress gave ctx, if any, that a
// page of usage has been read.
func PageRead(ctx context.Context) {
	if read, ok := ctx.Value(progressKey{}).(func()); ok {
		read()
	}
}

// Describer is implemented by sources that can say what Check found, for
// `psa-syncd check`: "usage.csv: 14 rows, 2 skipped (first: ...)" or
// "partner 5e1b... with 12 tenants". Describe does the work of Check and
// fails as Check does. Callers type-assert for it; it is optional.
type Describer interface {
	Describe(ctx context.Context) (string, error)
}

// AddQuantity returns a+b, and false when the sum does not fit in an int64.
func AddQuantity(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

// Sum adds up records per (CustomerID, Product). The result is sorted by
// CustomerID then Product, so it is deterministic. The first non-empty
// CustomerName, ProductName, Period and Codepage win; Where is the first record's Where,
// followed by " (+N more)" when several records were added together.
//
// A sum that does not fit in an int64 is left out of the result and
// returned as an Unreadable problem naming the records that overflowed it.
func Sum(records []Record) ([]Record, []Problem) {
	var s Summer
	s.Grow(len(records))
	for _, r := range records {
		s.Add(r)
	}
	return s.Result()
}

// Summer adds up records one at a time, as Sum does, so that a source can
// sum its rows as it reads them instead of keeping them all. The zero
// Summer is ready to use; it is not safe for concurrent use.
type Summer struct {
	idx      map[sumKey]int
	n        []int            // records added into out[i]
	out      []Record         // the sums, in the order their keys came
	overflow map[int][]string // index in out -> Where of the records that did not fit
	more     map[int][]string // index in out -> Where of the first maxRepeatsKept records added into it after the first
}

// maxRepeatsKept bounds the Wheres a Summer keeps of the records added into
// a sum after its first (see Repeated): a file of a row per site repeats
// most of its keys, and a message names a few rows, not all.
const maxRepeatsKept = 3

type sumKey struct{ customer, product string }

// Grow makes room for n more sums, when the caller knows about how many
// records come (a file's number of lines), so that Add does not copy the
// sums as they grow. n is only a hint: more records are fine, and room for
// fewer sums than n costs memory until Result.
func (s *Summer) Grow(n int) {
	if n <= 0 {
		return
	}
	if s.idx == nil {
		s.idx = make(map[sumKey]int, n)
	}
	s.n = slices.Grow(s.n, n)
	s.out = slices.Grow(s.out, n)
}

// Add adds r to the sum of its customer and product.
func (s *Summer) Add(r Record) {
	if s.idx == nil {
		s.idx = map[sumKey]int{}
	}
	k := sumKey{r.CustomerID, r.Product}
	i, ok := s.idx[k]
	if !ok {
		s.idx[k] = len(s.out)
		s.out = append(s.out, r)
		s.n = append(s.n, 1)
		return
	}
	sum := &s.out[i]
	q, ok := AddQuantity(sum.Quantity, r.Quantity)
	if !ok {
		if s.overflow == nil {
			s.overflow = map[int][]string{}
		}
		s.overflow[i] = append(s.overflow[i], r.Where)
		return
	}
	sum.Quantity = q
	if s.more == nil {
		s.more = map[int][]string{}
	}
	if len(s.more[i]) < maxRepeatsKept {
		s.more[i] = append(s.more[i], r.Where)
	}
	if sum.CustomerName == "" {
		sum.CustomerName = r.CustomerName
	}
	if sum.ProductName == "" {
		sum.ProductName = r.ProductName
	}
	if sum.Period == "" {
		sum.Period = r.Period
	}
	if sum.Codepage == "" {
		// A row read through a code page: the id may be its guess.
		sum.Codepage = r.Codepage
	}
	s.n[i]++
}

// Repeated calls f, before Result, for each sum of more than one record, in
// the order their keys came: the sum so far (its Where the first record's),
// the number of records added into it, and the Where of the first few of
// them after the first (at most 3). A record whose quantity did not fit is
// not counted (Result reports it).
func (s *Summer) Repeated(f func(sum Record, records int, more []string)) {
	for i, r := range s.out {
		if more := s.more[i]; len(more) > 0 {
			f(r, s.n[i], more)
		}
	}
}

// Result returns the sums and the problems, as Sum does. The Summer must
// not be used after.
func (s *Summer) Result() ([]Record, []Problem) {
	out, n, overflow := s.out, s.n, s.overflow
	*s = Summer{}
	var problems []Problem
	kept := out[:0]
	for i, r := range out {
		if wheres, ok := overflow[i]; ok {
			problems = append(problems, Problem{Where: r.Where, Unreadable: true, CustomerID: r.CustomerID, Product: r.Product,
				Err: fmt.Errorf("usage of %s by customer %q adds up to more than %d with %s", r.Product, r.CustomerID, int64(math.MaxInt64), strings.Join(wheres, ", "))})
			continue
		}
		if n[i] > 1 {
			r.Where = fmt.Sprintf("%s (+%d more)", r.Where, n[i]-1)
		}
		kept = append(kept, r)
	}
	out = kept
	if cap(out) > 2*len(out) {
		out = slices.Clone(out) // Grow's hint was far above the sums
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := strings.Compare(a.CustomerID, b.CustomerID); c != 0 {
			return c
		}
		return strings.Compare(a.Product, b.Product)
	})
	return out, problems
}
