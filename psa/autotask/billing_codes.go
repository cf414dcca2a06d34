package autotask

import "context"

// BillingCodesService reads BillingCodes (allocation codes; read-only). A
// Service needs one, normally of the "Recurring Contract Service" use type.
type BillingCodesService service

// BillingCode is an Autotask allocation code.
type BillingCode struct {
	ID                int64    `json:"id"`
	Name              string   `json:"name"`
	Description       string   `json:"description,omitempty"`
	IsActive          bool     `json:"isActive"`
	UseType           int64    `json:"useType"`
	BillingCodeType   int64    `json:"billingCodeType"`
	UnitPrice         *float64 `json:"unitPrice,omitempty"`
	UnitCost          *float64 `json:"unitCost,omitempty"`
	ExternalNumber    string   `json:"externalNumber,omitempty"`
	GeneralLedgerCode string   `json:"generalLedgerCode,omitempty"`
}

// Get returns the billing code with the given id, or an error matching
// psa.ErrNotFound.
func (s *BillingCodesService) Get(ctx context.Context, id int64) (*BillingCode, *Response, error) {
	return getItem[BillingCode](ctx, s.client, itemPath("BillingCodes", id))
}

// List returns every billing code matching q, following all pages.
func (s *BillingCodesService) List(ctx context.Context, q *Query) ([]*BillingCode, *Response, error) {
	return listItems[BillingCode](ctx, s.client, "BillingCodes/query", q)
}

// Count returns the number of billing codes matching q.
func (s *BillingCodesService) Count(ctx context.Context, q *Query) (int64, *Response, error) {
	return countItems(ctx, s.client, "BillingCodes", q)
}
