package connectwise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
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

// ProductType is a product type (procurement/types), which a catalog item
// names as its type [inferred/community: the ProductType model of
// OpenAPI-generated clients; id, name, inactiveFlag, defaultFlag].
type ProductType struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	InactiveFlag bool   `json:"inactiveFlag,omitempty"`
}

// SubCategory is a product subcategory (procurement/subcategories), which
// a catalog item names as its subcategory [inferred/community: the
// SubCategory model of OpenAPI-generated clients; id, name, category,
// inactiveFlag].
type SubCategory struct {
	ID           int64      `json:"id"`
	Name         string     `json:"name"`
	Category     *Reference `json:"category,omitempty"`
	InactiveFlag bool       `json:"inactiveFlag,omitempty"`
}

// ListTypes returns every product type, following pages.
func (s *CatalogService) ListTypes(ctx context.Context, opts *ListOptions) ([]*ProductType, *Response, error) {
	return listAll[ProductType](ctx, s.client, "procurement/types", opts)
}

// ListSubcategories returns every product subcategory, following pages.
func (s *CatalogService) ListSubcategories(ctx context.Context, opts *ListOptions) ([]*SubCategory, *Response, error) {
	return listAll[SubCategory](ctx, s.client, "procurement/subcategories", opts)
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
//
// An agreement that cannot be read (a field of the wrong type) in an
// answer that is otherwise sound is left out, and reported with the
// agreements that could be read in an *UnreadableAgreementsError, so that
// a read of many agreements at once (the status reads before writes) need
// not fail them all over one. An answer that is not a list of agreements
// (an HTML page, a body cut short), or with an unreadable agreement whose
// id cannot be read, fails as a whole: nobody could tell which agreement
// it leaves out.
func (s *AgreementsService) List(ctx context.Context, opts *ListOptions) ([]*Agreement, *Response, error) {
	rows, resp, err := listAll[agreementRow](ctx, s.client, "finance/agreements", opts)
	list, uerr := agreementsOf(rows)
	if err != nil {
		return list, resp, err
	}
	return list, resp, uerr
}

// agreementRow is an agreement of a list as List decodes it: one that
// cannot be decoded but names its id is kept, marked with its problem,
// instead of failing the page (see UnreadableAgreementsError).
type agreementRow struct {
	Agreement
	problem error
}

// UnmarshalJSON decodes an agreement of a list. encoding/json has checked
// that the page is JSON before it hands over the rows, so a row that fails
// here is JSON that does not fit an Agreement.
func (r *agreementRow) UnmarshalJSON(b []byte) error {
	type agreement Agreement // without this method
	var a agreement
	err := json.Unmarshal(b, &a)
	if err == nil {
		*r = agreementRow{Agreement: Agreement(a)}
		return nil
	}
	var who struct {
		ID int64 `json:"id"`
	}
	if json.Unmarshal(b, &who) != nil || who.ID <= 0 {
		return err
	}
	*r = agreementRow{Agreement: Agreement{ID: who.ID},
		problem: fmt.Errorf("connectwise: agreement %d cannot be read: %s", who.ID, describeDecodeError(err))}
	return nil
}

// agreementsOf returns the rows of a list that could be read as
// Agreements, and an *UnreadableAgreementsError naming those that could
// not. A null row names no agreement and fails the list.
func agreementsOf(rows []*agreementRow) ([]*Agreement, error) {
	out := make([]*Agreement, 0, len(rows))
	var bad map[int64]error
	for _, r := range rows {
		switch {
		case r == nil:
			return nil, fmt.Errorf("connectwise: the answer lists null for an agreement")
		case r.problem == nil:
			out = append(out, &r.Agreement)
		default:
			if bad == nil {
				bad = map[int64]error{}
			}
			if _, ok := bad[r.ID]; !ok {
				bad[r.ID] = r.problem
			}
		}
	}
	if bad != nil {
		return out, &UnreadableAgreementsError{Agreements: bad}
	}
	return out, nil
}

// UnreadableAgreementsError is returned by AgreementsService.List, with the
// agreements that could be read, when agreements of an answer that is
// otherwise sound could not be read (a field of the wrong type). Every
// such agreement is named by its id; the agreements returned leave them
// out, so a caller must not take one of them for missing.
type UnreadableAgreementsError struct {
	// Agreements maps the id of each unreadable agreement to why it could
	// not be read.
	Agreements map[int64]error
}

// agreements returns e.Agreements, nil for a nil e.
func (e *UnreadableAgreementsError) agreements() map[int64]error {
	if e == nil {
		return nil
	}
	return e.Agreements
}

// Error lists the unreadable agreements in id order.
func (e *UnreadableAgreementsError) Error() string {
	ids := slices.Sorted(maps.Keys(e.Agreements))
	msgs := make([]string, len(ids))
	for i, id := range ids {
		msgs[i] = e.Agreements[id].Error()
	}
	return strings.Join(msgs, "; ")
}

// describeDecodeError says what encoding/json refused in a record: the
// field and what it held, for a field of the wrong type.
func describeDecodeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %s holds %s, not %s", te.Field, te.Value, te.Type)
	}
	return err.Error()
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
