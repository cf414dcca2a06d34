package autotask

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ContractServiceUnitsService reads ContractServiceUnits (read-only): one row
// per billing period per contract service, split at the effective date of
// every adjustment. Units is the quantity billed for the row's dates.
type ContractServiceUnitsService service

// ContractServiceUnit is the quantity of a contract service for a period.
type ContractServiceUnit struct {
	ID                 int64     `json:"id"`
	ContractID         int64     `json:"contractID"`
	ContractServiceID  int64     `json:"contractServiceID"`
	ServiceID          int64     `json:"serviceID"`
	StartDate          Timestamp `json:"startDate"`
	EndDate            Timestamp `json:"endDate"`
	Units              int64     `json:"units"`
	Price              float64   `json:"price"`
	Cost               float64   `json:"cost"`
	ApproveAndPostDate Timestamp `json:"approveAndPostDate"`
	VendorCompanyID    *int64    `json:"vendorCompanyID,omitempty"`
}

// UnmarshalJSON decodes a unit row. A row without units (the field left
// out, or null) is refused rather than read as 0 units: the next
// adjustment is a delta from the units read, so a wrong 0 would bill the
// difference again.
func (u *ContractServiceUnit) UnmarshalJSON(b []byte) error {
	var w unitJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if err := w.check(); err != nil {
		return err
	}
	*u = *w.unit()
	return nil
}

// unitJSON is a unit row as Autotask sends it, its units optional. The
// lists of rows decode into it rather than through ContractServiceUnit's
// UnmarshalJSON, which would have encoding/json scan every row three times
// (to find its end, to check it, to decode it): ReadLines decodes 100,000
// rows at 100,000 lines.
type unitJSON struct {
	plainUnit
	Units *int64 `json:"units"`

	// problem says why a row of a list cannot be read (see validate and
	// listResponse.decodeRows); only ID, ContractID and ServiceID are
	// then known.
	problem error
}

// plainUnit is ContractServiceUnit without its UnmarshalJSON.
type plainUnit ContractServiceUnit

// check refuses a row without units (see UnmarshalJSON).
func (w *unitJSON) check() error {
	if w.Units == nil {
		return fmt.Errorf("autotask: contract service unit %d (contract %d, service %d) reports no units", w.ID, w.ContractID, w.ServiceID)
	}
	return nil
}

// validate checks a row of a list. A row that fails check but names its
// contract is kept, marked with its problem, so that only that contract
// fails (see UnreadableRowsError) and not every contract of the page; a
// row that names no contract fails the page, since nobody could tell
// whose lines it leaves out.
func (w *unitJSON) validate() error {
	// A row listResponse.decodeRows marked is not checked again.
	if w.problem == nil {
		if err := w.check(); err != nil {
			if w.ContractID == 0 {
				return err
			}
			w.problem = err
		}
	}
	return nil
}

// unit returns the row as a ContractServiceUnit, which shares w's memory.
func (w *unitJSON) unit() *ContractServiceUnit {
	u := (*ContractServiceUnit)(&w.plainUnit)
	u.Units = *w.Units
	return u
}

// units returns the rows of a list that could be read as
// ContractServiceUnits, and an *UnreadableRowsError naming the contracts
// of those that could not.
func units(rows []*unitJSON) ([]*ContractServiceUnit, error) {
	out := make([]*ContractServiceUnit, 0, len(rows))
	var bad map[int64]error
	for _, w := range rows {
		if w.problem == nil {
			out = append(out, w.unit())
			continue
		}
		if bad == nil {
			bad = map[int64]error{}
		}
		if _, ok := bad[w.ContractID]; !ok {
			bad[w.ContractID] = w.problem
		}
	}
	if bad != nil {
		return out, &UnreadableRowsError{Contracts: bad}
	}
	return out, nil
}

// UnreadableRowsError is returned by ContractServiceUnitsService.List and
// ListByContract, with the rows that could be read, when rows of an answer
// that is otherwise sound could not be read: a row without units, a field
// of the wrong type. Every such row names its contract (an answer with a
// row that does not fails as a whole), so one bad row need not stop the
// other contracts of a bulk read. The rows returned leave the unreadable
// ones out: a caller must not take the rows it got of a contract named
// here for all of that contract's rows.
type UnreadableRowsError struct {
	// Contracts maps the contract of each unreadable row to the error of
	// its first such row.
	Contracts map[int64]error
}

// contracts returns e.Contracts, nil for a nil e.
func (e *UnreadableRowsError) contracts() map[int64]error {
	if e == nil {
		return nil
	}
	return e.Contracts
}

// Error lists the contracts with their first unreadable row, in contract
// order.
func (e *UnreadableRowsError) Error() string {
	ids := slices.Sorted(maps.Keys(e.Contracts))
	msgs := make([]string, len(ids))
	for i, id := range ids {
		msgs[i] = e.Contracts[id].Error()
	}
	return "autotask: unreadable contract service unit rows: " + strings.Join(msgs, "; ")
}

// Get returns the unit row with the given id, or an error matching
// psa.ErrNotFound.
func (s *ContractServiceUnitsService) Get(ctx context.Context, id int64) (*ContractServiceUnit, *Response, error) {
	return getItem[ContractServiceUnit](ctx, s.client, itemPath("ContractServiceUnits", id))
}

// withUnits returns the result of a list of rows as ContractServiceUnits:
// an error of the list itself comes before any unreadable row.
func withUnits(rows []*unitJSON, resp *Response, err error) ([]*ContractServiceUnit, *Response, error) {
	us, uerr := units(rows)
	if err != nil {
		return us, resp, err
	}
	return us, resp, uerr
}

// List returns every unit row matching q, following all pages. Include "id"
// in q.IncludeFields when it can match more than one page. Rows that
// cannot be read but name their contract are left out, and reported in an
// *UnreadableRowsError returned with the other rows.
func (s *ContractServiceUnitsService) List(ctx context.Context, q *Query) ([]*ContractServiceUnit, *Response, error) {
	rows, resp, err := listItems[unitJSON](ctx, s.client, "ContractServiceUnits/query", q)
	return withUnits(rows, resp, err)
}

// Count returns the number of unit rows matching q.
func (s *ContractServiceUnitsService) Count(ctx context.Context, q *Query) (int64, *Response, error) {
	return countItems(ctx, s.client, "ContractServiceUnits", q)
}

// ListByContract returns the unit rows of one contract
// (GET Contracts/{id}/ServiceUnits), following all pages. Rows that
// cannot be read are reported as List reports them.
func (s *ContractServiceUnitsService) ListByContract(ctx context.Context, contractID int64) ([]*ContractServiceUnit, *Response, error) {
	rows, resp, err := listChild[unitJSON](ctx, s.client, contractChildPath(contractID, "ServiceUnits"))
	return withUnits(rows, resp, err)
}
