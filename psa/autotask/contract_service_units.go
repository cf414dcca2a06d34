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
	type plain ContractServiceUnit
	var aux struct {
		plain
		Units *int64 `json:"units"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	if aux.Units == nil {
		return fmt.Errorf("autotask: contract service unit %d (contract %d, service %d) reports no units", aux.ID, aux.ContractID, aux.ServiceID)
	}
	*u = ContractServiceUnit(aux.plain)
	u.Units = *aux.Units
	return nil
}

// Get returns the unit row with the given id, or an error matching
// psa.ErrNotFound.
func (s *ContractServiceUnitsService) Get(ctx context.Context, id int64) (*ContractServiceUnit, *Response, error) {
	return getItem[ContractServiceUnit](ctx, s.client, itemPath("ContractServiceUnits", id))
}

// List returns every unit row matching q, following all pages. Include "id"
// in q.IncludeFields when it can match more than one page.
func (s *ContractServiceUnitsService) List(ctx context.Context, q *Query) ([]*ContractServiceUnit, *Response, error) {
	return listItems[ContractServiceUnit](ctx, s.client, "ContractServiceUnits/query", q)
}

// Count returns the number of unit rows matching q.
func (s *ContractServiceUnitsService) Count(ctx context.Context, q *Query) (int64, *Response, error) {
	return countItems(ctx, s.client, "ContractServiceUnits", q)
}

// ListByContract returns the unit rows of one contract
// (GET Contracts/{id}/ServiceUnits), following all pages.
func (s *ContractServiceUnitsService) ListByContract(ctx context.Context, contractID int64) ([]*ContractServiceUnit, *Response, error) {
	return listChild[ContractServiceUnit](ctx, s.client, contractChildPath(contractID, "ServiceUnits"))
}
