package kaseyabms

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// AccountsService handles CRM accounts (companies, /v2/crm/accounts).
type AccountsService service

// AccountSummary is an account (AccountSummaryOutputDto, selected fields).
type AccountSummary struct {
	ID          int    `json:"Id"`
	ParentID    *int   `json:"ParentId"`
	AccountCode string `json:"AccountCode"`
	AccountName string `json:"AccountName"`
	AccountType string `json:"AccountType"`
	IsActive    bool   `json:"IsActive"`
	IsBilling   bool   `json:"IsBilling"`
	TenantName  string `json:"TenantName"`
}

// AccountLookup is an entry of the account lookup (AccountLookupOutputDto).
type AccountLookup struct {
	ID         int    `json:"Id"`
	Name       string `json:"Name"`
	TenantName string `json:"TenantName"`
	IsActive   bool   `json:"IsActive"`
}

// AccountSummaryListOptions are the query parameters of the account summary.
type AccountSummaryListOptions struct {
	AccountName string // Filter.AccountName
	AccountCode string // Filter.AccountCode
	IsActive    *bool  // Filter.IsActive
	ListOptions
}

// AccountLookupOptions are the query parameters of the account lookup.
type AccountLookupOptions struct {
	IDs                  []int  // Filter.Ids
	Name                 string // Filter.Name
	WithInactiveAccounts bool   // Filter.WithInactiveAccounts
	ListOptions
}

// GetSummary returns an account (GET /v2/crm/accounts/summary/{id}). The
// spec declares a bare AccountSummaryOutputDto here rather than an envelope;
// both are accepted.
func (s *AccountsService) GetSummary(ctx context.Context, id int) (*AccountSummary, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodGet, fmt.Sprintf("v2/crm/accounts/summary/%d", id), nil)
	if err != nil {
		return nil, nil, err
	}
	var a AccountSummary
	resp, err := s.client.Do(ctx, req, &a)
	if err != nil {
		return nil, resp, err
	}
	if a.ID == 0 {
		return nil, resp, notFound(s.client, resp, fmt.Sprintf("account %d", id))
	}
	return &a, resp, nil
}

// ListSummary returns one page of the account summary (GET /v2/crm/accounts/summary).
func (s *AccountsService) ListSummary(ctx context.Context, opts *AccountSummaryListOptions) ([]*AccountSummary, *Response, error) {
	if opts == nil {
		opts = &AccountSummaryListOptions{}
	}
	q := url.Values{}
	if opts.AccountName != "" {
		q.Set("Filter.AccountName", opts.AccountName)
	}
	if opts.AccountCode != "" {
		q.Set("Filter.AccountCode", opts.AccountCode)
	}
	if opts.IsActive != nil {
		q.Set("Filter.IsActive", strconv.FormatBool(*opts.IsActive))
	}
	opts.values(q)
	req, err := s.client.NewRequest(ctx, http.MethodGet, "v2/crm/accounts/summary?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*AccountSummary
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// ListSummaryAll pages through the account summary.
func (s *AccountsService) ListSummaryAll(ctx context.Context, opts AccountSummaryListOptions) ([]*AccountSummary, *Response, error) {
	return collect(s.client, "/v2/crm/accounts/summary", func(page, size int) ([]*AccountSummary, *Response, error) {
		o := opts
		o.ListOptions = pageOptions(page, size)
		return s.ListSummary(ctx, &o)
	})
}

// Lookup returns one page of the account lookup (GET /v2/crm/accounts/lookup).
// The answer carries no totalRecords.
func (s *AccountsService) Lookup(ctx context.Context, opts *AccountLookupOptions) ([]*AccountLookup, *Response, error) {
	if opts == nil {
		opts = &AccountLookupOptions{}
	}
	q := url.Values{}
	for _, id := range opts.IDs {
		q.Add("Filter.Ids", strconv.Itoa(id))
	}
	if opts.Name != "" {
		q.Set("Filter.Name", opts.Name)
	}
	if opts.WithInactiveAccounts {
		q.Set("Filter.WithInactiveAccounts", "true")
	}
	opts.values(q)
	req, err := s.client.NewRequest(ctx, http.MethodGet, "v2/crm/accounts/lookup?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*AccountLookup
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// accountLookupPath is the account lookup's endpoint, as collect keeps
// its page base.
const accountLookupPath = "/v2/crm/accounts/lookup"

// LookupAll pages through the account lookup until a short or empty page.
// The lookup has no totalRecords, so while the client does not know where
// its pages start, the listing also asks for page 0, once (see collect).
func (s *AccountsService) LookupAll(ctx context.Context, opts AccountLookupOptions) ([]*AccountLookup, *Response, error) {
	return collect(s.client, accountLookupPath, func(page, size int) ([]*AccountLookup, *Response, error) {
		o := opts
		o.ListOptions = pageOptions(page, size)
		return s.Lookup(ctx, &o)
	})
}
