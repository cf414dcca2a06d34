package autotask

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure Backend reads in bulk.
var (
	_ psa.BulkReader         = (*Backend)(nil)
	_ psa.ContractLister     = (*Backend)(nil)
	_ psa.ServicePriceKeeper = (*Backend)(nil)
)

// GetServices returns the services with the given ids that exist: one query
// per 500 ids (an "in" filter on id). The prices read are kept as
// servicePrice keeps them, so that a line new on a contract written within
// priceTTL of the read (the engine's daily read of the mapped services
// comes before the pass's writes) takes its catalog price from it instead
// of reading its service alone.
func (b *Backend) GetServices(ctx context.Context, ids []string) (map[string]*psa.Service, error) {
	list, err := bulkGet(ctx, ids, b.client.Services.List)
	if err != nil {
		return nil, err
	}
	b.keepPrices(list)
	out := make(map[string]*psa.Service, len(list))
	for _, s := range list {
		svc, err := b.toService(ctx, s)
		if err != nil {
			return nil, err
		}
		out[svc.ID] = svc
	}
	return out, nil
}

// GetCompanies returns the companies with the given ids that exist: one
// query per 500 ids.
func (b *Backend) GetCompanies(ctx context.Context, ids []string) (map[string]*psa.Company, error) {
	list, err := bulkGet(ctx, ids, b.client.Companies.List)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*psa.Company, len(list))
	for _, c := range list {
		out[strconv.FormatInt(c.ID, 10)] = toCompany(c)
	}
	return out, nil
}

// GetContracts returns the contracts with the given ids that exist: one
// query per 500 ids.
func (b *Backend) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	list, err := bulkGet(ctx, ids, b.client.Contracts.List)
	if err != nil {
		return nil, err
	}
	return b.contractMap(ctx, list)
}

// contractMap converts contracts to neutral ones keyed by id.
func (b *Backend) contractMap(ctx context.Context, list []*Contract) (map[string]*psa.Contract, error) {
	out := make(map[string]*psa.Contract, len(list))
	for _, c := range list {
		contract, err := b.toContract(ctx, c)
		if err != nil {
			return nil, err
		}
		out[contract.ID] = contract
	}
	return out, nil
}

// ListContracts returns every active Recurring Service contract of the
// tenant, keyed by id: a count, then one query per 500 contracts.
func (b *Backend) ListContracts(ctx context.Context, maxRequests int) (map[string]*psa.Contract, bool, error) {
	filter, err := b.contractFilter(ctx, psa.ContractQuery{})
	if err != nil {
		return nil, false, err
	}
	n, _, err := b.client.Contracts.Count(ctx, NewQuery(filter...))
	if err != nil {
		return nil, false, err
	}
	if 1+(n+MaxPageSize-1)/MaxPageSize > int64(maxRequests) {
		return nil, false, nil
	}
	list, _, err := b.client.Contracts.List(ctx, NewQuery(filter...))
	if err != nil {
		return nil, false, err
	}
	m, err := b.contractMap(ctx, list)
	return m, err == nil, err
}

// bulkGet lists the entities whose id is one of ids, MaxPageSize ids per
// query, up to MaxConcurrency queries at once (the client keeps its own
// bound per entity too): the day's read of 20,000 contracts, and of their
// companies, is 40 queries each. Ids that are not Autotask ids are
// skipped: they match nothing. A query that fails fails the call.
func bulkGet[T any](ctx context.Context, ids []string, list func(context.Context, *Query) ([]*T, *Response, error)) ([]*T, error) {
	nums := make([]int64, 0, len(ids))
	for _, id := range ids {
		if n, err := parseID("", id); err == nil {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	nums = slices.Compact(nums)
	chunks := slices.Collect(slices.Chunk(nums, MaxPageSize))
	got := make([][]*T, len(chunks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(MaxConcurrency)
	for i, chunk := range chunks {
		g.Go(func() error {
			items, _, err := list(gctx, NewQuery(In("id", chunk...)))
			got[i] = items
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return slices.Concat(got...), nil
}

// queryError returns err, the failure of a query, with a 404 made no
// record's: a query finds no row of an unknown record, so its 404 is of
// the query's endpoint (a proxy, a base URL that is not the tenant's),
// which fails every query alike. It matches psa.ErrEndpointNotFound and
// not psa.ErrNotFound (a caller would take every record it looked for as
// missing, or each write that looked as failing for a record of its own).
func queryError(err error) error {
	if err != nil && errors.Is(err, psa.ErrNotFound) {
		return &endpointNotFoundError{err: err}
	}
	return err
}

// endpointNotFoundError is a query's 404; see queryError.
type endpointNotFoundError struct{ err error }

func (e *endpointNotFoundError) Error() string {
	return "autotask: the query's endpoint was not found (check base_url): " + e.err.Error()
}

func (e *endpointNotFoundError) Is(target error) bool { return target == psa.ErrEndpointNotFound }
