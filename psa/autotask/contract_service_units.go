package autotask

import (
	"context"
	"encoding/json"
	"fmt"
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
	if err := w.validate(); err != nil {
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
}

// plainUnit is ContractServiceUnit without its UnmarshalJSON.
type plainUnit ContractServiceUnit

// validate refuses a row without units (see UnmarshalJSON).
func (w *unitJSON) validate() error {
	if w.Units == nil {
		return fmt.Errorf("autotask: contract service unit %d (contract %d, service %d) reports no units", w.ID, w.ContractID, w.ServiceID)
	}
	return nil
}

// unit returns the row as a ContractServiceUnit, which shares w's memory.
func (w *unitJSON) unit() *ContractServiceUnit {
	u := (*ContractServiceUnit)(&w.plainUnit)
	u.Units = *w.Units
	return u
}

// units returns the validated rows of a list as ContractServiceUnits.
func units(rows []*unitJSON) []*ContractServiceUnit {
	out := make([]*ContractServiceUnit, len(rows))
	for i, w := range rows {
		out[i] = w.unit()
	}
	return out
}

// Get returns the unit row with the given id, or an error matching
// psa.ErrNotFound.
func (s *ContractServiceUnitsService) Get(ctx context.Context, id int64) (*ContractServiceUnit, *Response, error) {
	return getItem[ContractServiceUnit](ctx, s.client, itemPath("ContractServiceUnits", id))
}

// List returns every unit row matching q, following all pages. Include "id"
// in q.IncludeFields when it can match more than one page.
func (s *ContractServiceUnitsService) List(ctx context.Context, q *Query) ([]*ContractServiceUnit, *Response, error) {
	rows, resp, err := listItems[unitJSON](ctx, s.client, "ContractServiceUnits/query", q)
	return units(rows), resp, err
}

// Count returns the number of unit rows matching q.
func (s *ContractServiceUnitsService) Count(ctx context.Context, q *Query) (int64, *Response, error) {
	return countItems(ctx, s.client, "ContractServiceUnits", q)
}

// ListByContract returns the unit rows of one contract
// (GET Contracts/{id}/ServiceUnits), following all pages.
func (s *ContractServiceUnitsService) ListByContract(ctx context.Context, contractID int64) ([]*ContractServiceUnit, *Response, error) {
	rows, resp, err := listChild[unitJSON](ctx, s.client, contractChildPath(contractID, "ServiceUnits"))
	return units(rows), resp, err
}
