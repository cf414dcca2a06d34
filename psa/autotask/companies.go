package autotask

import "context"

// CompaniesService handles the Companies entity (customers, vendors and the
// MSP itself, which has id 0).
type CompaniesService service

// Company is an Autotask Company.
type Company struct {
	ID                int64              `json:"id"`
	CompanyName       string             `json:"companyName"`
	CompanyNumber     string             `json:"companyNumber,omitempty"`
	CompanyType       int64              `json:"companyType"`
	IsActive          bool               `json:"isActive"`
	OwnerResourceID   int64              `json:"ownerResourceID,omitempty"`
	ParentCompanyID   *int64             `json:"parentCompanyID,omitempty"`
	Phone             string             `json:"phone,omitempty"`
	UserDefinedFields []UserDefinedField `json:"userDefinedFields,omitempty"`
}

// Get returns the company with the given id, or an error matching
// psa.ErrNotFound.
func (s *CompaniesService) Get(ctx context.Context, id int64) (*Company, *Response, error) {
	return getItem[Company](ctx, s.client, itemPath("Companies", id))
}

// List returns every company matching q, following all pages.
func (s *CompaniesService) List(ctx context.Context, q *Query) ([]*Company, *Response, error) {
	return listItems[Company](ctx, s.client, "Companies/query", q)
}

// Count returns the number of companies matching q.
func (s *CompaniesService) Count(ctx context.Context, q *Query) (int64, *Response, error) {
	return countItems(ctx, s.client, "Companies", q)
}
