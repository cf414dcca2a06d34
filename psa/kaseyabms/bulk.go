package kaseyabms

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure Backend reads in bulk.
var (
	_ psa.BulkReader     = (*Backend)(nil)
	_ psa.ContractLister = (*Backend)(nil)

	_ psa.ContractReadCoster = (*Backend)(nil)
)

// bulkChunk is how many ids one lookup names in its query string.
const bulkChunk = 100

// bulkMin is the fewest ids read through the whole service search or
// contract summary: BMS filters neither by ids, so for fewer ids the single
// reads (one or three requests each) cost less than paging through every
// record of a tenant with hundreds of them.
const bulkMin = 25

// GetServices returns the services with the given ids that exist. BMS
// filters services by neither id nor ids, so from bulkMin ids on it pages
// through the service search (DefaultPageSize services a request) and keeps
// the ones asked for.
func (b *Backend) GetServices(ctx context.Context, ids []string) (map[string]*psa.Service, error) {
	want := bulkIDs(ids)
	if len(want) < bulkMin {
		return singles(ctx, want, b.GetService)
	}
	out := map[string]*psa.Service{}
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

// GetContracts returns the contracts with the given ids that exist. From
// bulkMin ids on they are read as GetContract reads one but in bulk: the
// contract lookup by ids (bulkChunk a request), the whole contract summary
// and the whole account lookup, paged (see joinContracts).
func (b *Backend) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	want := bulkIDs(ids)
	if len(want) < bulkMin {
		return singles(ctx, want, b.GetContract)
	}
	var looked []*ContractLookup
	for chunk := range slices.Chunk(want, bulkChunk) {
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
	return b.joinContracts(ctx, looked)
}

// ContractReadCost returns the requests GetContracts sends for n ids, at
// least: three per contract below bulkMin (GetContract's lookup, summary and
// account lookup), and otherwise the lookups by id, the summary, which holds
// the n contracts and more, and at least one page of accounts.
func (b *Backend) ContractReadCost(n int) int {
	if n < bulkMin {
		return 3 * n
	}
	return (n+bulkChunk-1)/bulkChunk + (n+DefaultPageSize-1)/DefaultPageSize + 1
}

// ListContracts returns the tenant's contracts that have not expired, keyed
// by id: the contract lookup (one request, it has no paging), the whole
// contract summary and account lookup (both paged, DefaultPageSize a page),
// joined as GetContracts joins them. The lookup's length counts the pages,
// taking as many accounts as contracts.
func (b *Backend) ListContracts(ctx context.Context, maxRequests int) (map[string]*psa.Contract, bool, error) {
	looked, _, err := b.client.Contracts.Lookup(ctx, &ContractLookupOptions{ExcludeExpiredContracts: true})
	if err != nil {
		return nil, false, err
	}
	if 1+2*((len(looked)+DefaultPageSize-1)/DefaultPageSize) > maxRequests {
		return nil, false, nil
	}
	m, err := b.joinContracts(ctx, looked)
	return m, err == nil, err
}

// joinContracts completes the looked-up contracts with the whole contract
// summary and account lookup. A contract whose account name several
// accounts share is left out, for GetContract to tell them apart.
func (b *Backend) joinContracts(ctx context.Context, looked []*ContractLookup) (map[string]*psa.Contract, error) {
	out := map[string]*psa.Contract{}
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

// singles reads ids one at a time, concurrently (the client bounds its own
// concurrency), and leaves out the ones that do not exist.
func singles[T any](ctx context.Context, ids []int, get func(context.Context, string) (*T, error)) (map[string]*T, error) {
	out := make(map[string]*T, len(ids))
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	for _, n := range ids {
		wg.Go(func() {
			v, err := get(ctx, strconv.Itoa(n))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, psa.ErrNotFound):
			case err != nil:
				first = cmp.Or(first, err)
			default:
				out[strconv.Itoa(n)] = v
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}

// bulkIDs returns the valid BMS ids among ids, sorted and without repeats.
func bulkIDs(ids []string) []int {
	out := make([]int, 0, len(ids))
	for _, id := range ids {
		if n, err := parseID("", id); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
