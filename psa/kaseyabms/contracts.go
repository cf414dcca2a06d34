package kaseyabms

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// ContractsService handles client contracts (/v2/finance/contracts).
type ContractsService service

// ContractSummary is a contract in the contract summary
// (ClientContractSummaryOutputDto). Names, not ids, identify the account,
// type and status.
type ContractSummary struct {
	ID                   int     `json:"Id"`
	ContractName         string  `json:"ContractName"`
	AccountName          string  `json:"AccountName"`
	ContractType         string  `json:"ContractType"`
	ContractBillingPrice float64 `json:"ContractBillingPrice"`
	Status               string  `json:"Status"`
	ContractNumber       string  `json:"ContractNumber"`
	BillingCycle         string  `json:"BillingCycle"`
	StartDate            Time    `json:"StartDate"`
	EndDate              Time    `json:"EndDate"`
}

// ContractLookup is an entry of the contract lookup (ContractLookupOutputDto).
type ContractLookup struct {
	ID        int    `json:"Id"`
	Name      string `json:"Name"`
	IsDefault *bool  `json:"IsDefault"`
	SLAID     *int   `json:"SLAId"`
	SLAName   string `json:"SLAName"`
	IsActive  bool   `json:"IsActive"`
	EndDate   Time   `json:"EndDate"`
}

// ContractSummaryListOptions are the query parameters of the contract summary.
type ContractSummaryListOptions struct {
	ContractType string // Filter.ContractType (a name)
	ContractName string // Filter.ContractName
	AccountName  string // Filter.AccountName
	Status       string // Filter.Status (a name)
	ListOptions
}

// ContractLookupOptions are the query parameters of the contract lookup,
// which has no paging.
type ContractLookupOptions struct {
	AccountID               int // 0 means any
	IDs                     []int
	Name                    string
	ExcludeExpiredContracts bool
}

// RecurringService is a service line of a recurring-services contract, as
// posted (RecurringServicePostInputDto, and the Services of
// RecurringServicesContractPostInputDto). Units are whole numbers.
type RecurringService struct {
	ServiceID          int     `json:"ServiceId"`
	ServiceName        string  `json:"ServiceName"`
	ServiceDescription string  `json:"ServiceDescription"`
	Units              int     `json:"Units"`
	UnitCost           float64 `json:"UnitCost"`
	UnitPrice          float64 `json:"UnitPrice"`
	EffectiveDate      Time    `json:"EffectiveDate"`
	SortOrder          int     `json:"SortOrder"`
}

// ContractService is a service line as BMS returns it
// (RecurringServicePostOutputDto). Units is a double on the way out.
type ContractService struct {
	ID                int     `json:"Id"`
	ServiceID         int     `json:"ServiceId"`
	ServiceName       string  `json:"ServiceName"`
	Description       string  `json:"Description"`
	ContractID        int     `json:"ContractId"`
	ContractName      string  `json:"ContractName"`
	Units             float64 `json:"Units"`
	UnitCost          float64 `json:"UnitCost"`
	UnitPrice         float64 `json:"UnitPrice"`
	TotalCost         float64 `json:"TotalCost"`
	TotalPrice        float64 `json:"TotalPrice"`
	Margin            float64 `json:"Margin"`
	OriginalUnitPrice float64 `json:"OriginalUnitPrice"`
	OriginalUnitCost  float64 `json:"OriginalUnitCost"`
	EffectiveDate     Time    `json:"EffectiveDate"`
	SortOrder         int     `json:"SortOrder"`
}

// CreateRecurringServicesContractRequest is the body of a recurring-services
// contract create (RecurringServicesContractPostInputDto).
type CreateRecurringServicesContractRequest struct {
	ContractName          string             `json:"ContractName"`
	AccountID             int                `json:"AccountId"`
	SLAID                 *int               `json:"SLAId,omitempty"`
	ReferenceNumber       string             `json:"ReferenceNumber"`
	BillingCycleID        int                `json:"BillingCycleId"`
	StartDate             Time               `json:"StartDate"`
	EndDate               Time               `json:"EndDate"`
	IsDefaultContract     *bool              `json:"IsDefaultContract,omitempty"`
	IsNotificationEnabled bool               `json:"IsNotificationEnabled"`
	NotificationEmails    []string           `json:"NotificationEmails,omitempty"`
	Services              []RecurringService `json:"Services"`
}

// RecurringServicesContract is a created recurring-services contract
// (RecurringServicesContractPostOutputDto, selected fields).
type RecurringServicesContract struct {
	ID                   int               `json:"Id"`
	ContractName         string            `json:"ContractName"`
	AccountID            *int              `json:"AccountId"`
	AccountName          string            `json:"AccountName"`
	TypeID               *int              `json:"TypeId"`
	TypeName             string            `json:"TypeName"`
	StatusID             *int              `json:"StatusId"`
	StatusName           string            `json:"StatusName"`
	ContractNumber       string            `json:"ContractNumber"`
	BillingCycleID       int               `json:"BillingCycleId"`
	BillingCycleName     string            `json:"BillingCycleName"`
	ContractBillingPrice *float64          `json:"ContractBillingPrice"`
	StartDate            Time              `json:"StartDate"`
	EndDate              Time              `json:"EndDate"`
	Services             []ContractService `json:"Services"`
}

// ContractStatus is the answer of activate and deactivate
// (ActivatedContractOutputDto, DeactivatedContractOutputDto).
type ContractStatus struct {
	ID             int    `json:"Id"`
	ContractName   string `json:"ContractName"`
	ContractNumber string `json:"ContractNumber"`
	StatusID       int    `json:"StatusId"`
	StatusName     string `json:"StatusName"`
	TypeID         int    `json:"TypeId"`
	TypeName       string `json:"TypeName"`
}

// ListSummary returns one page of the contract summary (GET
// /v2/finance/contracts/summary).
func (s *ContractsService) ListSummary(ctx context.Context, opts *ContractSummaryListOptions) ([]*ContractSummary, *Response, error) {
	if opts == nil {
		opts = &ContractSummaryListOptions{}
	}
	q := url.Values{}
	for k, v := range map[string]string{
		"Filter.ContractType": opts.ContractType, "Filter.ContractName": opts.ContractName,
		"Filter.AccountName": opts.AccountName, "Filter.Status": opts.Status,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	opts.values(q)
	req, err := s.client.NewRequest(ctx, http.MethodGet, "v2/finance/contracts/summary?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*ContractSummary
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// ListSummaryAll pages through the contract summary.
func (s *ContractsService) ListSummaryAll(ctx context.Context, opts ContractSummaryListOptions) ([]*ContractSummary, *Response, error) {
	return collect(s.client, "/v2/finance/contracts/summary", func(page, size int) ([]*ContractSummary, *Response, error) {
		o := opts
		o.ListOptions = pageOptions(page, size)
		return s.ListSummary(ctx, &o)
	})
}

// Lookup returns the contract lookup (GET /v2/finance/contracts/lookup).
func (s *ContractsService) Lookup(ctx context.Context, opts *ContractLookupOptions) ([]*ContractLookup, *Response, error) {
	if opts == nil {
		opts = &ContractLookupOptions{}
	}
	q := url.Values{}
	if opts.AccountID != 0 {
		q.Set("AccountId", strconv.Itoa(opts.AccountID))
	}
	for _, id := range opts.IDs {
		q.Add("Ids", strconv.Itoa(id))
	}
	if opts.Name != "" {
		q.Set("Name", opts.Name)
	}
	if opts.ExcludeExpiredContracts {
		q.Set("ExcludeExpiredContracts", "true")
	}
	u := "v2/finance/contracts/lookup"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := s.client.NewRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*ContractLookup
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// CreateRecurringServices creates a recurring-services contract (POST
// /v2/finance/contracts/recurringservices). It is never re-sent when its
// outcome is unknown.
func (s *ContractsService) CreateRecurringServices(ctx context.Context, body *CreateRecurringServicesContractRequest) (*RecurringServicesContract, *Response, error) {
	if body.Services == nil {
		body.Services = []RecurringService{}
	}
	req, err := s.client.NewRequest(ctx, http.MethodPost, "v2/finance/contracts/recurringservices", body)
	if err != nil {
		return nil, nil, err
	}
	var c RecurringServicesContract
	resp, err := s.client.Do(ctx, req, &c)
	if err != nil {
		return nil, resp, err
	}
	return &c, resp, nil
}

// AddServices adds service lines to a recurring-services contract (POST
// /v2/finance/contracts/recurringservices/{contractId}/services). The body
// is an array; BMS answers with one line, as the spec declares. It is never
// re-sent when its outcome is unknown: a second post would add a second
// line.
func (s *ContractsService) AddServices(ctx context.Context, contractID int, lines []RecurringService) (*ContractService, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodPost, fmt.Sprintf("v2/finance/contracts/recurringservices/%d/services", contractID), lines)
	if err != nil {
		return nil, nil, err
	}
	var out ContractService
	resp, err := s.client.Do(ctx, req, &out)
	if err != nil {
		return nil, resp, err
	}
	return &out, resp, nil
}

// Activate activates a contract (PUT /v2/finance/contracts/{contractId}/activate).
func (s *ContractsService) Activate(ctx context.Context, contractID int) (*ContractStatus, *Response, error) {
	return s.setStatus(ctx, contractID, "activate")
}

// Deactivate deactivates a contract (PUT /v2/finance/contracts/{contractId}/deactivate).
func (s *ContractsService) Deactivate(ctx context.Context, contractID int) (*ContractStatus, *Response, error) {
	return s.setStatus(ctx, contractID, "deactivate")
}

func (s *ContractsService) setStatus(ctx context.Context, contractID int, verb string) (*ContractStatus, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodPut, fmt.Sprintf("v2/finance/contracts/%d/%s", contractID, verb), nil)
	if err != nil {
		return nil, nil, err
	}
	var out ContractStatus
	resp, err := s.client.Do(ctx, req, &out)
	if err != nil {
		return nil, resp, err
	}
	return &out, resp, nil
}
