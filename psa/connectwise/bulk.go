package connectwise

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure Backend reads in bulk.
var (
	_ psa.BulkReader         = (*Backend)(nil)
	_ psa.ContractLister     = (*Backend)(nil)
	_ psa.ServicePriceKeeper = (*Backend)(nil)
)

// GetServices returns the catalog items with the given ids that exist: one
// "id in (...)" read per statusChunk ids, following pages. Their prices
// and costs are kept for the additions created within priceTTL
// (catalogPrice), which then read no item alone.
func (b *Backend) GetServices(ctx context.Context, ids []string) (map[string]*psa.Service, error) {
	list, err := bulkGet(ctx, ids, b.client.Catalog.List)
	if err != nil {
		return nil, err
	}
	b.keepPrices(list)
	out := make(map[string]*psa.Service, len(list))
	for _, it := range list {
		out[strconv.FormatInt(it.ID, 10)] = toService(it)
	}
	return out, nil
}

// GetCompanies returns the companies with the given ids that exist.
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

// GetContracts returns the agreements with the given ids that exist. An
// agreement whose record in the answer cannot be read (a field of the
// wrong type) is left out, as psa.BulkReader allows: the caller reads it
// alone (GetContract), which fails that agreement only, not every one of
// the read.
func (b *Backend) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	list, err := bulkGet(ctx, ids, b.readableAgreements)
	if err != nil {
		return nil, err
	}
	return contractMap(list), nil
}

// readableAgreements lists agreements as Agreements.List does, but returns
// those it could read without an error when the only problem of the answer
// is agreements it could not read (*UnreadableAgreementsError).
func (b *Backend) readableAgreements(ctx context.Context, o *ListOptions) ([]*Agreement, *Response, error) {
	list, resp, err := b.client.Agreements.List(ctx, o)
	var unreadable *UnreadableAgreementsError
	if errors.As(err, &unreadable) {
		return list, resp, nil
	}
	return list, resp, err
}

// ListContracts returns every active agreement of the tenant, keyed by id:
// a count, then one read per MaxPageSize agreements. Agreements that bill
// once are left in; the caller checks the contracts it reads.
func (b *Backend) ListContracts(ctx context.Context, maxRequests int) (map[string]*psa.Contract, bool, error) {
	active := Eq("agreementStatus", AgreementActive)
	n, _, err := b.client.Agreements.Count(ctx, active)
	if err != nil {
		return nil, false, err
	}
	if 1+(n+MaxPageSize-1)/MaxPageSize > int64(maxRequests) {
		return nil, false, nil
	}
	list, _, err := b.client.Agreements.List(ctx, &ListOptions{Conditions: active})
	if err != nil {
		return nil, false, err
	}
	return contractMap(list), true, nil
}

// contractMap converts agreements to neutral contracts keyed by id.
func contractMap(list []*Agreement) map[string]*psa.Contract {
	out := make(map[string]*psa.Contract, len(list))
	for _, a := range list {
		out[strconv.FormatInt(a.ID, 10)] = toContract(a)
	}
	return out
}

// bulkGet lists the records whose id is one of ids, statusChunk ids per
// condition (the query string stays under IIS's limit). Ids that are not
// ConnectWise ids are skipped: they match nothing.
func bulkGet[T any](ctx context.Context, ids []string, list func(context.Context, *ListOptions) ([]*T, *Response, error)) ([]*T, error) {
	nums := make([]int64, 0, len(ids))
	for _, id := range ids {
		if n, err := parseID("", id); err == nil {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	nums = slices.Compact(nums)
	var out []*T
	for chunk := range slices.Chunk(nums, statusChunk) {
		items, _, err := list(ctx, &ListOptions{Conditions: In("id", chunk...)})
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}
