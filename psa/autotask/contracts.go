package autotask

import "context"

// ContractsService handles the Contracts entity. The contract type and status
// are picklist values; read their labels with EntityInformationService.
type ContractsService service

// Contract is an Autotask Contract.
type Contract struct {
	ID                 int64              `json:"id"`
	CompanyID          int64              `json:"companyID"`
	ContractName       string             `json:"contractName"`
	ContractNumber     string             `json:"contractNumber,omitempty"`
	ContractType       int64              `json:"contractType"`
	ContractCategory   *int64             `json:"contractCategory,omitempty"`
	ContractPeriodType *int64             `json:"contractPeriodType,omitempty"`
	Status             int64              `json:"status"`
	StartDate          Timestamp          `json:"startDate"`
	EndDate            Timestamp          `json:"endDate"`
	Description        string             `json:"description,omitempty"`
	IsDefaultContract  bool               `json:"isDefaultContract"`
	BillingPreference  *int64             `json:"billingPreference,omitempty"`
	UserDefinedFields  []UserDefinedField `json:"userDefinedFields,omitempty"`
}

// Get returns the contract with the given id, or an error matching
// psa.ErrNotFound.
func (s *ContractsService) Get(ctx context.Context, id int64) (*Contract, *Response, error) {
	return getItem[Contract](ctx, s.client, itemPath("Contracts", id))
}

// List returns every contract matching q, following all pages.
func (s *ContractsService) List(ctx context.Context, q *Query) ([]*Contract, *Response, error) {
	return listItems[Contract](ctx, s.client, "Contracts/query", q)
}

// Count returns the number of contracts matching q.
func (s *ContractsService) Count(ctx context.Context, q *Query) (int64, *Response, error) {
	return countItems(ctx, s.client, "Contracts", q)
}
