package autotask

import (
	"context"
	"net/http"
)

// ServicesService handles the Services entity: the catalog of recurring
// services (Admin > Products & Services > Services). Autotask has no DELETE
// for services; deactivate them with Update.
type ServicesService service

// Service is an Autotask Service. PeriodType is a value of the
// Services.periodType picklist; BillingCodeID is its allocation code.
type Service struct {
	ID                      int64              `json:"id"`
	Name                    string             `json:"name"`
	Description             string             `json:"description,omitempty"`
	InvoiceDescription      string             `json:"invoiceDescription,omitempty"`
	UnitPrice               float64            `json:"unitPrice"`
	UnitCost                float64            `json:"unitCost"`
	MarkupRate              *float64           `json:"markupRate,omitempty"`
	PeriodType              int64              `json:"periodType"`
	BillingCodeID           int64              `json:"billingCodeID"`
	IsActive                bool               `json:"isActive"`
	ServiceLevelAgreementID *int64             `json:"serviceLevelAgreementID,omitempty"`
	VendorCompanyID         *int64             `json:"vendorCompanyID,omitempty"`
	SKU                     string             `json:"sku,omitempty"`
	ExternalID              string             `json:"externalID,omitempty"`
	CreateDate              Timestamp          `json:"createDate"`
	LastModifiedDate        Timestamp          `json:"lastModifiedDate"`
	UserDefinedFields       []UserDefinedField `json:"userDefinedFields,omitempty"`
}

// CreateServiceRequest is the body of a service create. Name, UnitPrice,
// PeriodType and BillingCodeID are required.
type CreateServiceRequest struct {
	Name               string   `json:"name"`
	Description        string   `json:"description,omitempty"`
	InvoiceDescription string   `json:"invoiceDescription,omitempty"`
	UnitPrice          float64  `json:"unitPrice"`
	UnitCost           *float64 `json:"unitCost,omitempty"`
	MarkupRate         *float64 `json:"markupRate,omitempty"`
	PeriodType         int64    `json:"periodType"`
	BillingCodeID      int64    `json:"billingCodeID"`
	IsActive           *bool    `json:"isActive,omitempty"`
	SKU                string   `json:"sku,omitempty"`
}

// UpdateServiceRequest is the body of a PATCH: only the non-nil fields change.
type UpdateServiceRequest struct {
	ID                 int64    `json:"id"`
	Name               *string  `json:"name,omitempty"`
	Description        *string  `json:"description,omitempty"`
	InvoiceDescription *string  `json:"invoiceDescription,omitempty"`
	UnitPrice          *float64 `json:"unitPrice,omitempty"`
	UnitCost           *float64 `json:"unitCost,omitempty"`
	MarkupRate         *float64 `json:"markupRate,omitempty"`
	PeriodType         *int64   `json:"periodType,omitempty"`
	BillingCodeID      *int64   `json:"billingCodeID,omitempty"`
	IsActive           *bool    `json:"isActive,omitempty"`
	SKU                *string  `json:"sku,omitempty"`
}

// Get returns the service with the given id, or an error matching
// psa.ErrNotFound.
func (s *ServicesService) Get(ctx context.Context, id int64) (*Service, *Response, error) {
	return getItem[Service](ctx, s.client, itemPath("Services", id))
}

// List returns every service matching q, following all pages.
func (s *ServicesService) List(ctx context.Context, q *Query) ([]*Service, *Response, error) {
	return listItems[Service](ctx, s.client, "Services/query", q)
}

// Count returns the number of services matching q.
func (s *ServicesService) Count(ctx context.Context, q *Query) (int64, *Response, error) {
	return countItems(ctx, s.client, "Services", q)
}

// Create creates a service and returns its id. It is never retried when its
// outcome is unknown (see Client.Do).
func (s *ServicesService) Create(ctx context.Context, r *CreateServiceRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPost, "Services", r)
}

// Update changes the fields set in r with a PATCH to the collection URL and
// returns the service id.
func (s *ServicesService) Update(ctx context.Context, r *UpdateServiceRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPatch, "Services", r)
}
