package autotask

import (
	"context"
	"net/http"
)

// ContractServiceAdjustmentsService creates ContractServiceAdjustments, the
// way quantities change. Adjustments are create-only: they cannot be read,
// queried, updated or undone, and Autotask has no idempotency key. The client
// therefore never re-sends one whose outcome is unknown; see Client.Do.
type ContractServiceAdjustmentsService service

// CreateContractServiceAdjustmentRequest changes the units of a service on a
// contract by UnitChange (a delta, not an absolute count) from EffectiveDate
// on. When the contract has no ContractService for ServiceID, Autotask
// creates it, at AdjustedUnitPrice when given.
type CreateContractServiceAdjustmentRequest struct {
	ContractID         int64     `json:"contractID"`
	ServiceID          int64     `json:"serviceID,omitempty"`
	ContractServiceID  int64     `json:"contractServiceID,omitempty"`
	UnitChange         int64     `json:"unitChange"`
	EffectiveDate      Timestamp `json:"effectiveDate"`
	AdjustedUnitPrice  *float64  `json:"adjustedUnitPrice,omitempty"`
	AdjustedUnitCost   *float64  `json:"adjustedUnitCost,omitempty"`
	AllowRepeatService *bool     `json:"allowRepeatService,omitempty"`
	QuoteItemID        *int64    `json:"quoteItemID,omitempty"`
}

// Create posts an adjustment to the root collection
// (POST ContractServiceAdjustments) and returns its id.
func (s *ContractServiceAdjustmentsService) Create(ctx context.Context, r *CreateContractServiceAdjustmentRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPost, "ContractServiceAdjustments", r)
}

// CreateForContract posts an adjustment through the parent-scoped URL
// (POST Contracts/{id}/ServiceAdjustments) and returns its id.
func (s *ContractServiceAdjustmentsService) CreateForContract(ctx context.Context, r *CreateContractServiceAdjustmentRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPost, contractChildPath(r.ContractID, "ServiceAdjustments"), r)
}
