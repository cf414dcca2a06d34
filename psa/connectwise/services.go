package connectwise

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// CompaniesService handles company/companies.
type CompaniesService service

// Company is a ConnectWise company.
type Company struct {
	ID          int64             `json:"id"`
	Identifier  string            `json:"identifier"`
	Name        string            `json:"name"`
	Status      *Reference        `json:"status,omitempty"`
	DeletedFlag bool              `json:"deletedFlag,omitempty"`
	Types       []Reference       `json:"types,omitempty"`
	Info        map[string]string `json:"_info,omitempty"`
}

// Get returns the company with the given id, or an error matching
// psa.ErrNotFound.
func (s *CompaniesService) Get(ctx context.Context, id int64) (*Company, *Response, error) {
	return getOne[Company](ctx, s.client, idPath("company/companies", id), nil)
}

// List returns every company matching opts, following all pages.
func (s *CompaniesService) List(ctx context.Context, opts *ListOptions) ([]*Company, *Response, error) {
	return listAll[Company](ctx, s.client, "company/companies", opts)
}

// ListPage returns one page of the companies matching opts (opts.Page, the
// first by default) in one request; Response.NextPageURL is set when more
// follow.
func (s *CompaniesService) ListPage(ctx context.Context, opts *ListOptions) ([]*Company, *Response, error) {
	return listPage[Company](ctx, s.client, "company/companies", opts)
}

// Count returns the number of companies matching cond.
func (s *CompaniesService) Count(ctx context.Context, cond Condition) (int64, *Response, error) {
	return count(ctx, s.client, "company/companies/count", cond)
}

// CatalogService handles procurement/catalog, the product catalog.
type CatalogService service

// CatalogItem is a product in the ConnectWise catalog. Identifier is the
// product id additions refer to; Description is the name users see.
type CatalogItem struct {
	ID                  int64             `json:"id"`
	Identifier          string            `json:"identifier"`
	Description         string            `json:"description"`
	CustomerDescription string            `json:"customerDescription,omitempty"`
	Notes               string            `json:"notes,omitempty"`
	InactiveFlag        bool              `json:"inactiveFlag"`
	Price               float64           `json:"price"`
	Cost                float64           `json:"cost"`
	Type                *Reference        `json:"type,omitempty"`
	Category            *Reference        `json:"category,omitempty"`
	Subcategory         *Reference        `json:"subcategory,omitempty"`
	ProductClass        string            `json:"productClass,omitempty"`
	BillableOption      string            `json:"billableOption,omitempty"`
	RecurringFlag       bool              `json:"recurringFlag,omitempty"`
	RecurringBillCycle  *Reference        `json:"recurringBillCycle,omitempty"`
	IntegrationXRef     string            `json:"integrationXRef,omitempty"`
	Info                map[string]string `json:"_info,omitempty"`
}

// CreateCatalogItemRequest is the body of a catalog item create.
// Identifier, Description and CustomerDescription are required.
type CreateCatalogItemRequest struct {
	Identifier          string     `json:"identifier"`
	Description         string     `json:"description"`
	CustomerDescription string     `json:"customerDescription"`
	Notes               string     `json:"notes,omitempty"`
	InactiveFlag        bool       `json:"inactiveFlag"`
	Price               float64    `json:"price"`
	Cost                float64    `json:"cost"`
	Type                *Reference `json:"type,omitempty"`
	Subcategory         *Reference `json:"subcategory,omitempty"`
	ProductClass        string     `json:"productClass,omitempty"`
	BillableOption      string     `json:"billableOption,omitempty"`
	RecurringFlag       *bool      `json:"recurringFlag,omitempty"`
}

// Get returns the catalog item with the given id.
func (s *CatalogService) Get(ctx context.Context, id int64) (*CatalogItem, *Response, error) {
	return getOne[CatalogItem](ctx, s.client, idPath("procurement/catalog", id), nil)
}

// List returns every catalog item matching opts, following all pages.
func (s *CatalogService) List(ctx context.Context, opts *ListOptions) ([]*CatalogItem, *Response, error) {
	return listAll[CatalogItem](ctx, s.client, "procurement/catalog", opts)
}

// Count returns the number of catalog items matching cond.
func (s *CatalogService) Count(ctx context.Context, cond Condition) (int64, *Response, error) {
	return count(ctx, s.client, "procurement/catalog/count", cond)
}

// Create creates a catalog item. It is never re-sent when its outcome is
// unknown (see Client.Do).
func (s *CatalogService) Create(ctx context.Context, r *CreateCatalogItemRequest) (*CatalogItem, *Response, error) {
	return send[CatalogItem](ctx, s.client, http.MethodPost, "procurement/catalog", r)
}

// Update applies PATCH operations to a catalog item and returns it.
func (s *CatalogService) Update(ctx context.Context, id int64, ops []PatchOperation) (*CatalogItem, *Response, error) {
	if err := validatePatch(ops); err != nil {
		return nil, nil, err
	}
	return send[CatalogItem](ctx, s.client, http.MethodPatch, idPath("procurement/catalog", id), ops)
}

// Deactivate sets inactiveFlag, the catalog's soft delete.
func (s *CatalogService) Deactivate(ctx context.Context, id int64) (*CatalogItem, *Response, error) {
	return s.Update(ctx, id, []PatchOperation{Replace("inactiveFlag", true)})
}

// Delete deletes a catalog item. ConnectWise refuses it while the item is in
// use.
func (s *CatalogService) Delete(ctx context.Context, id int64) (*Response, error) {
	return deleteAt(ctx, s.client, idPath("procurement/catalog", id))
}

// AgreementsService handles finance/agreements.
type AgreementsService service

// Agreement statuses (agreementStatus).
const (
	AgreementActive    = "Active"
	AgreementCancelled = "Cancelled"
	AgreementExpired   = "Expired"
	AgreementInactive  = "Inactive"
)

// Agreement is a ConnectWise agreement, the contract usage is billed on.
type Agreement struct {
	ID               int64             `json:"id"`
	Name             string            `json:"name"`
	Type             *Reference        `json:"type,omitempty"`
	Company          *Reference        `json:"company,omitempty"`
	AgreementStatus  string            `json:"agreementStatus,omitempty"`
	CancelledFlag    bool              `json:"cancelledFlag,omitempty"`
	DateCancelled    *Time             `json:"dateCancelled,omitempty"`
	StartDate        *Time             `json:"startDate,omitempty"`
	EndDate          *Time             `json:"endDate,omitempty"`
	NoEndingDateFlag bool              `json:"noEndingDateFlag,omitempty"`
	BillingCycle     *Reference        `json:"billingCycle,omitempty"`
	Info             map[string]string `json:"_info,omitempty"`
}

// Get returns the agreement with the given id.
func (s *AgreementsService) Get(ctx context.Context, id int64) (*Agreement, *Response, error) {
	return getOne[Agreement](ctx, s.client, idPath("finance/agreements", id), nil)
}

// List returns every agreement matching opts, following all pages.
func (s *AgreementsService) List(ctx context.Context, opts *ListOptions) ([]*Agreement, *Response, error) {
	return listAll[Agreement](ctx, s.client, "finance/agreements", opts)
}

// Count returns the number of agreements matching cond.
func (s *AgreementsService) Count(ctx context.Context, cond Condition) (int64, *Response, error) {
	return count(ctx, s.client, "finance/agreements/count", cond)
}

// AgreementAdditionsService handles finance/agreements/{id}/additions.
type AgreementAdditionsService service

// Bill-customer options of an addition (billCustomer).
const (
	BillCustomerBillable  = "Billable"
	BillCustomerDoNotBill = "DoNotBill"
	BillCustomerNoCharge  = "NoCharge"
)

// Addition is a product on an agreement with its quantity.
type Addition struct {
	ID              int64             `json:"id"`
	Product         *Reference        `json:"product,omitempty"`
	Quantity        float64           `json:"quantity"`
	LessIncluded    float64           `json:"lessIncluded,omitempty"`
	UnitPrice       float64           `json:"unitPrice,omitempty"`
	UnitCost        float64           `json:"unitCost,omitempty"`
	BillCustomer    string            `json:"billCustomer,omitempty"`
	EffectiveDate   *Time             `json:"effectiveDate,omitempty"`
	CancelledDate   *Time             `json:"cancelledDate,omitempty"`
	AgreementStatus string            `json:"agreementStatus,omitempty"`
	AgreementID     int64             `json:"agreementId,omitempty"`
	Description     string            `json:"description,omitempty"`
	Info            map[string]string `json:"_info,omitempty"`
}

// UnmarshalJSON decodes an addition. One without a quantity (the field left
// out, or null) is refused rather than read as 0: psa-syncd would then
// write a quantity it compared with a number ConnectWise never reported.
func (a *Addition) UnmarshalJSON(b []byte) error {
	type plain Addition
	var aux struct {
		plain
		Quantity *float64 `json:"quantity"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	if aux.Quantity == nil {
		return fmt.Errorf("connectwise: agreement addition %d reports no quantity", aux.ID)
	}
	*a = Addition(aux.plain)
	a.Quantity = *aux.Quantity
	return nil
}

// CreateAdditionRequest is the body of an addition create. Product and
// BillCustomer are required.
type CreateAdditionRequest struct {
	Product       *Reference `json:"product"`
	Quantity      float64    `json:"quantity"`
	BillCustomer  string     `json:"billCustomer"`
	EffectiveDate *Time      `json:"effectiveDate,omitempty"`
	UnitPrice     *float64   `json:"unitPrice,omitempty"`
	UnitCost      *float64   `json:"unitCost,omitempty"`
	Description   string     `json:"description,omitempty"`
}

func additionsPath(agreementID int64) string {
	return idPath("finance/agreements", agreementID, "additions")
}

// List returns the additions of an agreement matching opts.
func (s *AgreementAdditionsService) List(ctx context.Context, agreementID int64, opts *ListOptions) ([]*Addition, *Response, error) {
	return listAll[Addition](ctx, s.client, additionsPath(agreementID), opts)
}

// Get returns one addition.
func (s *AgreementAdditionsService) Get(ctx context.Context, agreementID, id int64) (*Addition, *Response, error) {
	return getOne[Addition](ctx, s.client, idPath(additionsPath(agreementID), id), nil)
}

// Count returns the number of an agreement's additions matching cond.
func (s *AgreementAdditionsService) Count(ctx context.Context, agreementID int64, cond Condition) (int64, *Response, error) {
	return count(ctx, s.client, additionsPath(agreementID)+"/count", cond)
}

// Create adds a product to an agreement. It is never re-sent when its
// outcome is unknown: an error matching psa.ErrOutcomeUnknown says the
// caller must read the additions to find out.
func (s *AgreementAdditionsService) Create(ctx context.Context, agreementID int64, r *CreateAdditionRequest) (*Addition, *Response, error) {
	return send[Addition](ctx, s.client, http.MethodPost, additionsPath(agreementID), r)
}

// Update applies PATCH operations to an addition and returns it, such as
// []PatchOperation{Replace("quantity", 42)}. PATCHes set absolute values, so
// they are retried.
func (s *AgreementAdditionsService) Update(ctx context.Context, agreementID, id int64, ops []PatchOperation) (*Addition, *Response, error) {
	if err := validatePatch(ops); err != nil {
		return nil, nil, err
	}
	return send[Addition](ctx, s.client, http.MethodPatch, idPath(additionsPath(agreementID), id), ops)
}

// SetQuantity replaces an addition's quantity.
func (s *AgreementAdditionsService) SetQuantity(ctx context.Context, agreementID, id int64, quantity float64) (*Addition, *Response, error) {
	return s.Update(ctx, agreementID, id, []PatchOperation{Replace("quantity", quantity)})
}

// Cancel ends an addition by setting its cancelledDate.
func (s *AgreementAdditionsService) Cancel(ctx context.Context, agreementID, id int64, at time.Time) (*Addition, *Response, error) {
	return s.Update(ctx, agreementID, id, []PatchOperation{Replace("cancelledDate", FormatTime(at))})
}

// Delete deletes an addition.
func (s *AgreementAdditionsService) Delete(ctx context.Context, agreementID, id int64) (*Response, error) {
	return deleteAt(ctx, s.client, idPath(additionsPath(agreementID), id))
}
