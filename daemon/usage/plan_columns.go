package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// planColumns is a plan in the compact form the daemon keeps the last plan
// in (MarshalColumns): the plan without its changes, then each customer and
// service of the changes once, and the changes as one column per field, a
// change's customer, service and effective date by index (-1: none). The
// plan of a pass over 100,000 lines, which names 20,000 customers and a few
// services, is some 50 MB as JSON and about 8 MB in columns.
type planColumns struct {
	Plan    *Plan           `json:"plan"`
	Changes *changesColumns `json:"changes"` // nil when the plan's Changes are nil
}

// changesColumns are a plan's changes: each customer, service and
// effective date once, then one column per field of a change, the same
// length each, which refer to the customers, services and dates by index.
type changesColumns struct {
	Customers    []*ChangeCustomer `json:"customers"`
	Services     []*ChangeService  `json:"services"`
	Dates        []time.Time       `json:"dates"`
	Customer     []int             `json:"customer"`
	Service      []int             `json:"service"`
	Current      []int64           `json:"current"`
	CurrentKnown []bool            `json:"current_known"`
	Desired      []int64           `json:"desired"`
	Date         []int             `json:"effective_date"`
	Action       []string          `json:"action"`
	Reason       []string          `json:"reason"`
	// Hold is why a held change is held, when no approval releases it
	// (holdKind); absent in plans stored before it was kept, whose held
	// changes then all read as approvable.
	Hold []string `json:"hold,omitempty"`
}

// MarshalColumns returns p in the compact form that UnmarshalColumns reads
// back (see WriteColumns).
func (p *Plan) MarshalColumns() ([]byte, error) {
	var buf bytes.Buffer
	err := p.WriteColumns(&buf)
	return buf.Bytes(), err
}

// columnsFlushBytes is how much of the columns WriteColumns holds before it
// writes them on.
const columnsFlushBytes = 64 << 10

// WriteColumns writes p to w in the compact form that UnmarshalColumns
// reads back: a change's customer and service (which the changes of one
// customer, or of one service, share) are written once, and the changes as
// columns, without reflection. What JSON leaves out of a change (whether the
// pass was cancelled before it) is left out here too. It holds at most
// columnsFlushBytes of them at a time: the columns of a pass over 100,000
// lines are some 8 MB, which the daemon compresses as they come rather than
// hold beside the plan (the peak of such a pass's memory).
func (p *Plan) WriteColumns(w io.Writer) error {
	shell := *p
	shell.Changes = nil
	head, err := json.Marshal(&shell)
	if err != nil {
		return err
	}
	b := make([]byte, 0, columnsFlushBytes+1024)
	// flush writes b on once it holds columnsFlushBytes (or at the end);
	// after an error it writes nothing more and keeps the error.
	var werr error
	flush := func(all bool) {
		if (len(b) < columnsFlushBytes && !all) || werr != nil {
			return
		}
		_, werr = w.Write(b)
		b = b[:0]
	}
	b = append(b, `{"plan":`...)
	b = append(b, head...)
	b = append(b, `,"changes":`...)
	if p.Changes == nil {
		b = append(b, "null}"...)
		flush(true)
		return werr
	}
	var customers interner[*ChangeCustomer]
	var services interner[*ChangeService]
	var dates interner[time.Time]
	ci := make([]int32, len(p.Changes))
	si := make([]int32, len(p.Changes))
	di := make([]int32, len(p.Changes))
	for k := range p.Changes {
		c := &p.Changes[k]
		ci[k], si[k] = -1, -1
		switch {
		case c.ChangeCustomer == nil:
		case k > 0 && c.ChangeCustomer == p.Changes[k-1].ChangeCustomer:
			// A customer's changes come one after another.
			ci[k] = ci[k-1]
		default:
			ci[k] = customers.id(c.ChangeCustomer)
		}
		if c.ChangeService != nil {
			si[k] = services.id(c.ChangeService)
		}
		// == as the map's keys compare, not Equal: two dates of the same
		// instant in other locations are two dates, each restored as it was.
		if k > 0 && c.EffectiveDate == p.Changes[k-1].EffectiveDate { //nolint:staticcheck // see above
			di[k] = di[k-1]
		} else {
			di[k] = dates.id(c.EffectiveDate)
		}
	}

	b = append(b, `{"customers":[`...)
	for i, cu := range customers.values {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"source":`...)
		b = appendJSONString(b, cu.Source)
		b = append(b, `,"customer_id":`...)
		b = appendJSONString(b, cu.CustomerID)
		if cu.CustomerName != "" {
			b = append(b, `,"customer_name":`...)
			b = appendJSONString(b, cu.CustomerName)
		}
		b = append(b, `,"company_id":`...)
		b = appendJSONString(b, cu.CompanyID)
		b = append(b, `,"contract_id":`...)
		b = appendJSONString(b, cu.ContractID)
		b = append(b, '}')
		flush(false)
	}
	// Services and dates are few: encoding/json writes them.
	b = append(b, `],"services":`...)
	if b, err = appendMarshal(b, services.values); err != nil {
		return err
	}
	b = append(b, `,"dates":`...)
	if b, err = appendMarshal(b, dates.values); err != nil {
		return err
	}
	ints := func(name string, col []int32) {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":[`...)
		for k, v := range col {
			if k > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(v), 10)
			flush(false)
		}
		b = append(b, ']')
	}
	column := func(name string, each func(c *Change)) {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":[`...)
		for k := range p.Changes {
			if k > 0 {
				b = append(b, ',')
			}
			each(&p.Changes[k])
			flush(false)
		}
		b = append(b, ']')
	}
	ints("customer", ci)
	ints("service", si)
	column("current", func(c *Change) { b = strconv.AppendInt(b, c.Current, 10) })
	column("current_known", func(c *Change) { b = strconv.AppendBool(b, c.CurrentKnown) })
	column("desired", func(c *Change) { b = strconv.AppendInt(b, c.Desired, 10) })
	ints("effective_date", di)
	column("action", func(c *Change) { b = appendJSONString(b, c.Action) })
	column("reason", func(c *Change) { b = appendJSONString(b, c.Reason) })
	column("hold", func(c *Change) { b = appendJSONString(b, c.holdKind()) })
	b = append(b, "}}"...)
	flush(true)
	return werr
}

// interner numbers values in the order they first come.
type interner[K comparable] struct {
	index  map[K]int32
	values []K
}

// id returns v's number, giving it the next one when v is new.
func (n *interner[K]) id(v K) int32 {
	if i, ok := n.index[v]; ok {
		return i
	}
	if n.index == nil {
		n.index = map[K]int32{}
	}
	n.index[v] = int32(len(n.values))
	n.values = append(n.values, v)
	return int32(len(n.values) - 1)
}

// appendMarshal appends v as json.Marshal writes it, with a nil slice as
// an empty array.
func appendMarshal[T any](b []byte, v []T) ([]byte, error) {
	if v == nil {
		return append(b, "[]"...), nil
	}
	m, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, m...), nil
}

// UnmarshalColumns reads a plan that MarshalColumns wrote. The changes of
// one customer, or of one service, share its ChangeCustomer or
// ChangeService, as in the plan of a pass.
func UnmarshalColumns(data []byte) (*Plan, error) {
	var v planColumns
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if v.Plan == nil {
		return nil, errors.New("no plan")
	}
	p := v.Plan
	c := v.Changes
	if c == nil {
		p.Changes = nil
		return p, nil
	}
	n := len(c.Customer)
	for _, col := range []struct {
		name string
		len  int
	}{{"service", len(c.Service)}, {"current", len(c.Current)}, {"current_known", len(c.CurrentKnown)},
		{"desired", len(c.Desired)}, {"effective_date", len(c.Date)}, {"action", len(c.Action)}, {"reason", len(c.Reason)}} {
		if col.len != n {
			return nil, fmt.Errorf("changes: %d values of %s for %d changes", col.len, col.name, n)
		}
	}
	if len(c.Hold) != 0 && len(c.Hold) != n {
		return nil, fmt.Errorf("changes: %d values of hold for %d changes", len(c.Hold), n)
	}
	p.Changes = make([]Change, n)
	for k := range p.Changes {
		ch := &p.Changes[k]
		var err error
		if ch.ChangeCustomer, err = columnRef(c.Customers, c.Customer[k], "customer", k); err != nil {
			return nil, err
		}
		if ch.ChangeService, err = columnRef(c.Services, c.Service[k], "service", k); err != nil {
			return nil, err
		}
		i := c.Date[k]
		if i < 0 || i >= len(c.Dates) {
			return nil, fmt.Errorf("changes: effective_date %d of change %d is not one of the %d dates", i, k, len(c.Dates))
		}
		ch.EffectiveDate = c.Dates[i]
		ch.Current, ch.CurrentKnown, ch.Desired = c.Current[k], c.CurrentKnown[k], c.Desired[k]
		ch.Action, ch.Reason = c.Action[k], c.Reason[k]
		if len(c.Hold) != 0 {
			if err := ch.setHoldKind(c.Hold[k]); err != nil {
				return nil, fmt.Errorf("changes: change %d: %w", k, err)
			}
		}
	}
	return p, nil
}

// columnRef returns refs[i], or nil for -1.
func columnRef[T any](refs []*T, i int, name string, k int) (*T, error) {
	switch {
	case i == -1:
		return nil, nil
	case i < -1 || i >= len(refs) || refs[i] == nil:
		return nil, fmt.Errorf("changes: %s %d of change %d is not one of the %d %ss", name, i, k, len(refs), name)
	}
	return refs[i], nil
}

// holdKind returns why c is held as the hold column keeps it (so that a
// plan restored from the state database still tells the holds an approval
// releases, Approvable, from those it does not: the status page offers
// Approve only on the former): Hold, but "" for a change that is not held
// or that an approval releases as any guard hold, as in plans
// stored before the column was kept.
func (c *Change) holdKind() string {
	if h := c.Hold(); h != HoldApproval {
		return h
	}
	return ""
}

// setHoldKind sets the flag of a hold kind that holdKind returned.
func (c *Change) setHoldKind(kind string) error {
	switch kind {
	case "", HoldPosted, HoldLaterChange, HoldLaterWrite, HoldStaleApproval, HoldVanished, HoldStaleRead, HoldMoved, HoldPreviousService, HoldSurge:
		c.setHold(kind)
		return nil
	}
	return fmt.Errorf("unknown hold %q", kind)
}
