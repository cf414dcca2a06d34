package autotask

import (
	"context"
	"net/http"
)

// ContractServicesService handles ContractServices, the service lines of a
// Recurring Service contract. They are created and updated only through the
// parent-scoped URL Contracts/{id}/Services. A ContractService carries the
// contract's price; its quantities are ContractServiceUnits.
type ContractServicesService service

// ContractService is a service on a contract.
type ContractService struct {
	ID                  int64              `json:"id"`
	ContractID          int64              `json:"contractID"`
	ServiceID           int64              `json:"serviceID"`
	UnitPrice           float64            `json:"unitPrice"`
	UnitCost            float64            `json:"unitCost"`
	InvoiceDescription  string             `json:"invoiceDescription,omitempty"`
	InternalDescription string             `json:"internalDescription,omitempty"`
	QuoteItemID         *int64             `json:"quoteItemID,omitempty"`
	UserDefinedFields   []UserDefinedField `json:"userDefinedFields,omitempty"`
}

// CreateContractServiceRequest adds a service to a contract. Units are not
// part of it: they come from ContractServiceAdjustments.
type CreateContractServiceRequest struct {
	ContractID          int64    `json:"contractID"`
	ServiceID           int64    `json:"serviceID"`
	UnitPrice           *float64 `json:"unitPrice,omitempty"`
	UnitCost            *float64 `json:"unitCost,omitempty"`
	InvoiceDescription  string   `json:"invoiceDescription,omitempty"`
	InternalDescription string   `json:"internalDescription,omitempty"`
}

// UpdateContractServiceRequest is the body of a PATCH: only the non-nil
// fields change.
type UpdateContractServiceRequest struct {
	ID                  int64    `json:"id"`
	UnitPrice           *float64 `json:"unitPrice,omitempty"`
	UnitCost            *float64 `json:"unitCost,omitempty"`
	InvoiceDescription  *string  `json:"invoiceDescription,omitempty"`
	InternalDescription *string  `json:"internalDescription,omitempty"`
}

// Get returns the contract service with the given id, or an error matching
// psa.ErrNotFound.
func (s *ContractServicesService) Get(ctx context.Context, id int64) (*ContractService, *Response, error) {
	return getItem[ContractService](ctx, s.client, itemPath("ContractServices", id))
}

// List returns every contract service matching q, following all pages.
func (s *ContractServicesService) List(ctx context.Context, q *Query) ([]*ContractService, *Response, error) {
	return listItems[ContractService](ctx, s.client, "ContractServices/query", q)
}

// Count returns the number of contract services matching q.
func (s *ContractServicesService) Count(ctx context.Context, q *Query) (int64, *Response, error) {
	return countItems(ctx, s.client, "ContractServices", q)
}

// ListByContract returns the services of one contract
// (GET Contracts/{id}/Services), following all pages.
func (s *ContractServicesService) ListByContract(ctx context.Context, contractID int64) ([]*ContractService, *Response, error) {
	return listChild[ContractService](ctx, s.client, contractChildPath(contractID, "Services"))
}

// Create adds a service to the contract r.ContractID and returns the new
// ContractService id. It is never retried when its outcome is unknown.
func (s *ContractServicesService) Create(ctx context.Context, r *CreateContractServiceRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPost, contractChildPath(r.ContractID, "Services"), r)
}

// Update changes the fields set in r on a service of the given contract
// (PATCH Contracts/{id}/Services, the id in the body).
func (s *ContractServicesService) Update(ctx context.Context, contractID int64, r *UpdateContractServiceRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPatch, contractChildPath(contractID, "Services"), r)
}
