package kaseyabms

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

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

// bulkMin is the fewest ids read through the whole contract summary: BMS
// does not filter it by ids, so for fewer ids the single reads (three
// requests each) cost less than paging through every record of a tenant
// with hundreds of them.
const bulkMin = 25

// GetServices returns the services with the given ids that exist. BMS
// filters services by neither id nor ids, so two ids or more are read from
// the service search as PreloadServices reads them (searchServices): a
// catalog of up to DefaultPageSize services in one request, whatever the
// number of ids, and a larger one at most one request more than reading
// each service by itself.
func (b *Backend) GetServices(ctx context.Context, ids []string) (map[string]*psa.Service, error) {
	want := bulkIDs(ids)
	out := map[string]*psa.Service{}
	if len(want) > 1 {
		found, rest, err := b.searchServices(ctx, want)
		if err != nil {
			return nil, err
		}
		for _, svc := range found {
			out[strconv.Itoa(svc.ID)] = toService(svc)
		}
		want = rest
	}
	one, err := singles(ctx, want, b.GetService)
	if err != nil {
		return nil, err
	}
	maps.Copy(out, one)
	return out, nil
}

// Ensure Backend preloads the catalog services its writes copy.
var _ psa.ServicePreloader = (*Backend)(nil)

// PreloadServices makes ready the catalog details (name, description,
// price and cost) that SetQuantity copies into every line it posts, for
// the services serviceIDs: a service of kept read within serviceTTL is
// taken as it was read, and the others are read and returned with the time
// they were read. BMS filters the service search by no id, so two services
// or more are read from the search, whose first page tells how many pages
// the catalog has: the services still missing after it are read from the
// next pages while those are fewer, and one by one otherwise. A catalog of
// up to DefaultPageSize services is so read in one request, and a larger
// one costs at most one request more than reading each service by itself.
// A service that the whole catalog does not hold is left for SetQuantity
// to report.
func (b *Backend) PreloadServices(ctx context.Context, serviceIDs []string, kept []psa.KeptService) ([]psa.KeptService, error) {
	now := b.now()
	var missing []int
	ids := bulkIDs(serviceIDs)
	b.mu.Lock()
	for _, k := range kept {
		n, err := parseID("service", k.ID)
		if c, ok := b.services[n]; err != nil || !fresh(k.ReadAt, now) || ok && !c.at.Before(k.ReadAt) {
			continue
		}
		b.services[n] = cachedService{at: k.ReadAt, svc: &Service{ID: n, Name: k.Name, Description: k.Description,
			UnitPrice: k.UnitPrice, UnitCost: k.UnitCost}, handed: true}
	}
	for _, n := range ids {
		if c, ok := b.services[n]; !ok || !fresh(c.at, now) {
			missing = append(missing, n)
		}
	}
	b.mu.Unlock()
	var err error
	if len(missing) > 0 {
		err = b.readServices(ctx, missing)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// What this backend read and has not handed to the caller yet, now or
	// within its time to live (the engine's daily read of the mapped
	// services, GetServices, comes before the writes), is returned for
	// the caller to keep.
	var out []psa.KeptService
	for _, n := range ids {
		c, ok := b.services[n]
		if !ok || c.handed || !fresh(c.at, now) && c.at.Before(now) {
			continue
		}
		c.handed = true
		b.services[n] = c
		out = append(out, psa.KeptService{ReadAt: c.at, Service: psa.Service{ID: strconv.Itoa(n), Name: c.svc.Name,
			Description: c.svc.Description, UnitPrice: c.svc.UnitPrice, UnitCost: c.svc.UnitCost}})
	}
	return out, err
}

// readServices reads the services ids (sorted, two or more through the
// service search) into the cache; see PreloadServices.
func (b *Backend) readServices(ctx context.Context, ids []int) error {
	if len(ids) > 1 {
		_, rest, err := b.searchServices(ctx, ids)
		if err != nil {
			return err
		}
		ids = rest
	}
	_, err := singles(ctx, ids, func(ctx context.Context, id string) (*Service, error) {
		n, _ := strconv.Atoi(id)
		return b.catalogService(ctx, n)
	})
	return err
}

// searchServices reads the services ids (sorted, two or more) from the
// service search into the cache, page after page while the pages left are
// more than the services still missing: its first page tells how many
// pages the catalog has. It returns the services found, and the ids it
// left to read one by one, which cost fewer requests than the pages left;
// none once it read the whole catalog, which then does not hold them.
func (b *Backend) searchServices(ctx context.Context, ids []int) (found []*Service, rest []int, err error) {
	missing := make(map[int]bool, len(ids))
	for _, n := range ids {
		missing[n] = true
	}
	total, stopped := -1, false
	_, _, err = collect(b.client, servicesSearchPath, func(page, size int) ([]*Service, *Response, error) {
		if page > 1 {
			left := (total+size-1)/size - (page - 1)
			if len(missing) == 0 || total < 0 || left >= len(missing) {
				stopped = len(missing) > 0
				return nil, nil, errStopPaging
			}
		}
		list, resp, err := b.client.Services.Search(ctx, &ServicesSearchRequest{PageSize: size, PageNumber: page, exact: true})
		if resp != nil {
			total = resp.TotalRecords
		}
		for _, svc := range list {
			if missing[svc.ID] {
				delete(missing, svc.ID)
				b.remember(svc)
				found = append(found, svc)
			}
		}
		return list, resp, err
	})
	if err != nil || !stopped {
		return found, nil, err
	}
	return found, slices.Sorted(maps.Keys(missing)), nil
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
// contract lookup, the whole contract summary and the whole account
// lookup, paged (see joinContracts). The lookup names the ids when they
// fit in one query string (bulkChunk); for more it looks up every contract
// of the tenant, in one request since the lookup has no paging, where
// naming them would take one request per bulkChunk ids (the summary that
// follows is as long).
func (b *Backend) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	want := bulkIDs(ids)
	if len(want) < bulkMin {
		return singles(ctx, want, b.GetContract)
	}
	opts := &ContractLookupOptions{IDs: want}
	if len(want) > bulkChunk {
		opts.IDs = nil
	}
	list, _, err := b.client.Contracts.Lookup(ctx, opts)
	if err != nil {
		return nil, err
	}
	var looked []*ContractLookup
	for _, c := range list {
		if _, ok := slices.BinarySearch(want, c.ID); ok {
			looked = append(looked, c)
		}
	}
	return b.joinContracts(ctx, looked)
}

// ContractReadCost returns the requests GetContracts sends for n ids, at
// least: three per contract below bulkMin (GetContract's lookup, summary and
// account lookup), and otherwise the lookups by id, the summary, which holds
// the n contracts and more, and at least one page of accounts. Both ways
// read the account lookup, so both pay the request that ListContracts
// counts while the client has yet to learn where its pages start: without
// it, a first batch of one contract (3) would never list a small tenant (4)
// and would read by id before listing anyway, one batch later.
func (b *Backend) ContractReadCost(n int) int {
	cost := (n+bulkChunk-1)/bulkChunk + (n+DefaultPageSize-1)/DefaultPageSize + 1
	if n < bulkMin {
		cost = 3 * n
	}
	if _, known := b.client.firstPage(accountLookupPath); !known {
		cost++
	}
	return cost
}

// ListContracts returns the tenant's contracts that have not expired, keyed
// by id: the contract lookup (one request, it has no paging), the whole
// contract summary and account lookup (both paged, DefaultPageSize a page),
// joined as GetContracts joins them. The lookup's length counts the pages,
// taking as many accounts as contracts, and one request more while the
// client has yet to learn where the account lookup's pages start (it has
// no totalRecords, so its first listing asks for page 0 too).
func (b *Backend) ListContracts(ctx context.Context, maxRequests int) (map[string]*psa.Contract, bool, error) {
	looked, _, err := b.client.Contracts.Lookup(ctx, &ContractLookupOptions{ExcludeExpiredContracts: true})
	if err != nil {
		return nil, false, err
	}
	cost := 1 + 2*((len(looked)+DefaultPageSize-1)/DefaultPageSize)
	if _, known := b.client.firstPage(accountLookupPath); !known {
		cost++
	}
	if cost > maxRequests {
		return nil, false, nil
	}
	m, err := b.joinContracts(ctx, looked)
	return m, err == nil, err
}

// joinContracts completes the looked-up contracts with the whole contract
// summary and account lookup, which it reads at the same time. A contract
// whose account name several accounts share is left out, for GetContract
// to tell them apart.
func (b *Backend) joinContracts(ctx context.Context, looked []*ContractLookup) (map[string]*psa.Contract, error) {
	out := map[string]*psa.Contract{}
	if len(looked) == 0 {
		return out, nil
	}
	var (
		sums     []*ContractSummary
		accounts []*AccountLookup
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		sums, _, err = b.client.Contracts.ListSummaryAll(gctx, ContractSummaryListOptions{})
		return err
	})
	g.Go(func() (err error) {
		accounts, _, err = b.client.Accounts.LookupAll(gctx, AccountLookupOptions{WithInactiveAccounts: true})
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	summary := make(map[int]*ContractSummary, len(sums))
	for _, s := range sums {
		summary[s.ID] = s
	}
	byName := map[string][]int{}
	inactive := map[int]bool{}
	for _, a := range accounts {
		name := strings.ToLower(a.Name)
		byName[name] = append(byName[name], a.ID)
		inactive[a.ID] = !a.IsActive
	}
	for _, lk := range looked {
		sum := summary[lk.ID]
		if sum == nil {
			continue
		}
		companyID, companyInactive := "", false
		switch owners := byName[strings.ToLower(sum.AccountName)]; len(owners) {
		case 0:
		case 1:
			companyID, companyInactive = strconv.Itoa(owners[0]), inactive[owners[0]]
		default:
			continue
		}
		c := toContract(lk, sum, companyID)
		c.CompanyInactive = companyInactive
		out[strconv.Itoa(lk.ID)] = c
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
