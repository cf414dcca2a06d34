package kaseyabms

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure Backend reads in bulk.
var _ psa.BulkReader = (*Backend)(nil)

// bulkChunk is how many ids one lookup names in its query string.
const bulkChunk = 100

// GetServices returns the services with the given ids that exist. BMS
// filters services by neither id nor ids, so it pages through the service
// search (DefaultPageSize services a request) and keeps the ones asked for.
func (b *Backend) GetServices(ctx context.Context, ids []string) (map[string]*psa.Service, error) {
	want := bulkIDs(ids)
	out := map[string]*psa.Service{}
	if len(want) == 0 {
		return out, nil
	}
	list, _, err := b.client.Services.SearchAll(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, svc := range list {
		if _, ok := slices.BinarySearch(want, svc.ID); ok {
			b.remember(svc)
			out[strconv.Itoa(svc.ID)] = toService(svc)
		}
	}
	return out, nil
}

// GetCompanies returns the accounts with the given ids that exist: one
// account lookup per bulkChunk ids.
func (b *Backend) GetCompanies(ctx context.Context, ids []string) (map[string]*psa.Company, error) {
	out := map[string]*psa.Company{}
	for chunk := range slices.Chunk(bulkIDs(ids), bulkChunk) {
		list, _, err := b.client.Accounts.LookupAll(ctx, AccountLookupOptions{IDs: chunk, WithInactiveAccounts: true})
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			if slices.Contains(chunk, a.ID) {
				out[strconv.Itoa(a.ID)] = &psa.Company{ID: strconv.Itoa(a.ID), Name: a.Name, Active: a.IsActive}
			}
		}
	}
	return out, nil
}

// GetContracts returns the contracts with the given ids that exist, read as
// GetContract reads one but in bulk: the contract lookup by ids (bulkChunk a
// request), the whole contract summary and the whole account lookup, paged.
// A contract whose account name several accounts share is left out, for
// GetContract to tell them apart.
func (b *Backend) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	out := map[string]*psa.Contract{}
	var looked []*ContractLookup
	for chunk := range slices.Chunk(bulkIDs(ids), bulkChunk) {
		list, _, err := b.client.Contracts.Lookup(ctx, &ContractLookupOptions{IDs: chunk})
		if err != nil {
			return nil, err
		}
		for _, c := range list {
			if slices.Contains(chunk, c.ID) {
				looked = append(looked, c)
			}
		}
	}
	if len(looked) == 0 {
		return out, nil
	}
	sums, _, err := b.client.Contracts.ListSummaryAll(ctx, ContractSummaryListOptions{})
	if err != nil {
		return nil, err
	}
	summary := make(map[int]*ContractSummary, len(sums))
	for _, s := range sums {
		summary[s.ID] = s
	}
	accounts, _, err := b.client.Accounts.LookupAll(ctx, AccountLookupOptions{WithInactiveAccounts: true})
	if err != nil {
		return nil, err
	}
	byName := map[string][]int{}
	for _, a := range accounts {
		name := strings.ToLower(a.Name)
		byName[name] = append(byName[name], a.ID)
	}
	for _, lk := range looked {
		sum := summary[lk.ID]
		if sum == nil {
			continue
		}
		companyID := ""
		switch owners := byName[strings.ToLower(sum.AccountName)]; len(owners) {
		case 0:
		case 1:
			companyID = strconv.Itoa(owners[0])
		default:
			continue
		}
		out[strconv.Itoa(lk.ID)] = toContract(lk, sum, companyID)
	}
	return out, nil
}

// bulkIDs returns the valid BMS ids among ids, sorted and without repeats.
func bulkIDs(ids []string) []int {
	out := make([]int, 0, len(ids))
	for _, id := range ids {
		if n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 32); err == nil && n > 0 {
			out = append(out, int(n))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
