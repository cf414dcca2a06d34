package kaseyabms

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// ServicesService handles the service catalog (Admin > Finance > Services,
// /v2/admin/finance/services).
type ServicesService service

// Service is a catalog service (ServiceOutputDto).
type Service struct {
	ID                 int      `json:"Id"`
	Name               string   `json:"Name"`
	Description        string   `json:"Description"`
	UnitCost           float64  `json:"UnitCost"`
	UnitPrice          float64  `json:"UnitPrice"`
	CategoryID         *int     `json:"CategoryId"`
	Category           string   `json:"Category"`
	SubCategoryID      *int     `json:"SubCategoryId"`
	SubCategory        string   `json:"SubCategory"`
	UnitOfMeasureID    *int     `json:"UnitOfMeasureId"`
	UnitOfMeasure      string   `json:"UnitOfMeasure"`
	IncomeAccountID    *int     `json:"IncomeAccountId"`
	IncomeAccountCode  string   `json:"IncomeAccountCode"`
	IncomeAccountName  string   `json:"IncomeAccountName"`
	ExpenseAccountID   *int     `json:"ExpenseAccountId"`
	ExpenseAccountCode string   `json:"ExpenseAccountCode"`
	ExpenseAccountName string   `json:"ExpenseAccountName"`
	IsActive           bool     `json:"IsActive"`
	IsTaxable          bool     `json:"IsTaxable"`
	Margin             *float64 `json:"Margin"`
	MarginType         *int     `json:"MarginType"`
	CreatedOn          Time     `json:"CreatedOn"`
	CreatedBy          int      `json:"CreatedBy"`
	ModifiedOn         Time     `json:"ModifiedOn"`
	ModifiedBy         int      `json:"ModifiedBy"`
}

// ServiceLookup is an entry of the service lookup (ServiceLookupOutputDto).
type ServiceLookup struct {
	ID          int    `json:"Id"`
	Name        string `json:"Name"`
	Description string `json:"Description"`
}

// CreateServiceRequest is the body of a service create (ServiceInputDto).
// Nil pointers are sent as null.
type CreateServiceRequest struct {
	ID               int      `json:"Id"`
	Name             string   `json:"Name"`
	Description      string   `json:"Description"`
	UnitCost         *float64 `json:"UnitCost"`
	UnitPrice        *float64 `json:"UnitPrice"`
	CategoryID       *int     `json:"CategoryId"`
	SubCategoryID    *int     `json:"SubCategoryId"`
	UnitOfMeasureID  *int     `json:"UnitOfMeasureId"`
	IncomeAccountID  *int     `json:"IncomeAccountId"`
	ExpenseAccountID *int     `json:"ExpenseAccountId"`
	IsActive         bool     `json:"IsActive"`
	IsTaxable        bool     `json:"IsTaxable"`
	Margin           *float64 `json:"Margin"`
	MarginType       *int     `json:"MarginType"`
}

// UpdateServiceRequest is the body of a service update (ServiceInputDto).
// The PUT replaces the service: every field is written.
type UpdateServiceRequest CreateServiceRequest

// ServicesFilter filters a service search (ServicesListFilterDto). IsActive
// and IsTaxable are 0/1 integers in BMS.
type ServicesFilter struct {
	Name             *string `json:"Name,omitempty"`
	CategoryIDs      []int   `json:"CategoryIds,omitempty"`
	SubCategoryIDs   []int   `json:"SubCategoryIds,omitempty"`
	UnitOfMeasureIDs []int   `json:"UnitOfMeasureIds,omitempty"`
	IsActive         *int    `json:"IsActive,omitempty"`
	IsTaxable        *int    `json:"IsTaxable,omitempty"`
	Description      *string `json:"Description,omitempty"`
}

// ServicesSearchRequest is the body of a service search (ServicesListInputDto).
type ServicesSearchRequest struct {
	PageSize   int             `json:"PageSize"`
	PageNumber int             `json:"PageNumber"`
	Filter     *ServicesFilter `json:"Filter,omitempty"`

	// exact sends PageNumber as it is, 0 included (see pageOptions);
	// otherwise 0 means 1.
	exact bool
}

// servicesSearchPath is the path of the service search, as collect names it.
const servicesSearchPath = "/v2/admin/finance/services/search"

// ServiceLookupOptions are the query parameters of the service lookup.
type ServiceLookupOptions struct {
	ID   int    // Filter.Id; 0 means any
	Name string // Filter.Name; "" means any
	ListOptions
}

// Get returns a service (GET /v2/admin/finance/services/{serviceId}).
func (s *ServicesService) Get(ctx context.Context, id int) (*Service, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodGet, fmt.Sprintf("v2/admin/finance/services/%d", id), nil)
	if err != nil {
		return nil, nil, err
	}
	var svc Service
	resp, err := s.client.Do(ctx, req, &svc)
	if err != nil {
		return nil, resp, err
	}
	if svc.ID == 0 {
		return nil, resp, notFound(s.client, resp, fmt.Sprintf("service %d", id))
	}
	return &svc, resp, nil
}

// Lookup returns one page of the service lookup (GET
// /v2/admin/finance/services/lookup).
func (s *ServicesService) Lookup(ctx context.Context, opts *ServiceLookupOptions) ([]*ServiceLookup, *Response, error) {
	q := url.Values{}
	if opts == nil {
		opts = &ServiceLookupOptions{}
	}
	if opts.ID != 0 {
		q.Set("Filter.Id", strconv.Itoa(opts.ID))
	}
	if opts.Name != "" {
		q.Set("Filter.Name", opts.Name)
	}
	opts.values(q)
	req, err := s.client.NewRequest(ctx, http.MethodGet, "v2/admin/finance/services/lookup?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*ServiceLookup
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// LookupAll pages through the service lookup.
func (s *ServicesService) LookupAll(ctx context.Context, name string) ([]*ServiceLookup, *Response, error) {
	return collect(s.client, "/v2/admin/finance/services/lookup", func(page, size int) ([]*ServiceLookup, *Response, error) {
		return s.Lookup(ctx, &ServiceLookupOptions{Name: name, ListOptions: pageOptions(page, size)})
	})
}

// Search returns one page of a service search (POST
// /v2/admin/finance/services/search).
func (s *ServicesService) Search(ctx context.Context, body *ServicesSearchRequest) ([]*Service, *Response, error) {
	if body.PageSize <= 0 {
		body.PageSize = DefaultPageSize
	}
	if !body.exact {
		body.PageNumber = max(body.PageNumber, 1)
	}
	req, err := s.client.NewRequest(ctx, http.MethodPost, "v2/admin/finance/services/search", body)
	if err != nil {
		return nil, nil, err
	}
	var out []*Service
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// SearchAll pages through a service search.
func (s *ServicesService) SearchAll(ctx context.Context, filter *ServicesFilter) ([]*Service, *Response, error) {
	return collect(s.client, servicesSearchPath, func(page, size int) ([]*Service, *Response, error) {
		return s.Search(ctx, &ServicesSearchRequest{PageSize: size, PageNumber: page, Filter: filter, exact: true})
	})
}

// Create creates a service (POST /v2/admin/finance/services/services; the
// path really doubles the word). It is never re-sent when its outcome is
// unknown.
func (s *ServicesService) Create(ctx context.Context, body *CreateServiceRequest) (*Service, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodPost, "v2/admin/finance/services/services", body)
	if err != nil {
		return nil, nil, err
	}
	var svc Service
	resp, err := s.client.Do(ctx, req, &svc)
	if err != nil {
		return nil, resp, err
	}
	return &svc, resp, nil
}

// Update replaces a service (PUT /v2/admin/finance/services/{serviceId}).
func (s *ServicesService) Update(ctx context.Context, id int, body *UpdateServiceRequest) (*Service, *Response, error) {
	body.ID = id
	req, err := s.client.NewRequest(ctx, http.MethodPut, fmt.Sprintf("v2/admin/finance/services/%d", id), body)
	if err != nil {
		return nil, nil, err
	}
	var svc Service
	resp, err := s.client.Do(ctx, req, &svc)
	if err != nil {
		return nil, resp, err
	}
	return &svc, resp, nil
}

// Delete deletes a service (DELETE /v2/admin/finance/services/{serviceId}).
func (s *ServicesService) Delete(ctx context.Context, id int) (*Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodDelete, fmt.Sprintf("v2/admin/finance/services/%d", id), nil)
	if err != nil {
		return nil, err
	}
	return s.client.Do(ctx, req, nil)
}

// RelatedService is a contract line that uses a service, as the related
// services search answers it (RelatedServiceOutputDto; it has no Units).
type RelatedService struct {
	ID                 int     `json:"Id"`
	ServiceID          int     `json:"ServiceId"`
	ContractID         int     `json:"ContractId"`
	AccountID          int     `json:"AccountId"`
	ServiceName        string  `json:"ServiceName"`
	ServiceDescription string  `json:"ServiceDescription"`
	ContractName       string  `json:"ContractName"`
	AccountName        string  `json:"AccountName"`
	EffectiveDate      Time    `json:"EffectiveDate"`
	ContractStartDate  Time    `json:"ContractStartDate"`
	ContractEndDate    Time    `json:"ContractEndDate"`
	UnitCost           float64 `json:"UnitCost"`
	UnitPrice          float64 `json:"UnitPrice"`
}

// RelatedServicesSearchRequest is the body of a related services search:
// paging only (its filter, on names, dates and prices, is not used).
type RelatedServicesSearchRequest struct {
	PageSize   int `json:"PageSize"`
	PageNumber int `json:"PageNumber"`
	// exact sends PageNumber as is, 0 included (collect's probe).
	exact bool
}

// relatedServicesPath is the path of the related services search, as
// collect and the call count name it (endpointKey).
const relatedServicesPath = "/v2/admin/finance/services/{id}/relatedservices/search"

// RelatedServices returns one page of the contract lines that use service
// id (POST /v2/admin/finance/services/{serviceId}/relatedservices/search);
// the Response's TotalRecords counts them all.
func (s *ServicesService) RelatedServices(ctx context.Context, id int, body *RelatedServicesSearchRequest) ([]*RelatedService, *Response, error) {
	if body.PageSize <= 0 {
		body.PageSize = DefaultPageSize
	}
	if !body.exact {
		body.PageNumber = max(body.PageNumber, 1)
	}
	req, err := s.client.NewRequest(ctx, http.MethodPost, fmt.Sprintf("v2/admin/finance/services/%d/relatedservices/search", id), body)
	if err != nil {
		return nil, nil, err
	}
	var out []*RelatedService
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// RelatedServicesAll pages through the related services search of service
// id: every contract line that uses it, or an *IncompleteListError with
// the lines read when fewer came than TotalRecords counts.
func (s *ServicesService) RelatedServicesAll(ctx context.Context, id int) ([]*RelatedService, *Response, error) {
	return collect(s.client, relatedServicesPath, func(page, size int) ([]*RelatedService, *Response, error) {
		return s.RelatedServices(ctx, id, &RelatedServicesSearchRequest{PageSize: size, PageNumber: page, exact: true})
	})
}

// Category is an entry of the service category and subcategory lookups
// (ServiceCategoryLookupOutputDto).
type Category struct {
	ID   int    `json:"Id"`
	Name string `json:"Name"`
}

// Categories returns the service categories (GET
// /v2/admin/finance/servicecategory/lookup).
func (s *ServicesService) Categories(ctx context.Context) ([]*Category, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodGet, "v2/admin/finance/servicecategory/lookup", nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*Category
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// SubCategories returns the subcategories of a service category (GET
// /v2/admin/finance/servicecategory/{categoryId}/servicesubcategory/lookup).
func (s *ServicesService) SubCategories(ctx context.Context, categoryID int) ([]*Category, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodGet, fmt.Sprintf("v2/admin/finance/servicecategory/%d/servicesubcategory/lookup", categoryID), nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*Category
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// notFound builds the error for a success envelope with no result.
func notFound(c *Client, resp *Response, what string) error {
	er := &ErrorResponse{Message: what + " not found", wrapped: psa.ErrNotFound}
	if resp != nil {
		er.Response = c.redact.Response(resp.Response)
	}
	return er
}
