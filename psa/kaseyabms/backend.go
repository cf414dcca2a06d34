package kaseyabms

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure Backend satisfies the psa.Backend interface.
var (
	_ psa.Backend             = (*Backend)(nil)
	_ psa.ServiceFieldChecker = (*Backend)(nil)
)

// ErrUnitsNotReadable is returned by Backend.ReadLines: the BMS v2 API has
// no operation that reads the units of a contract's service lines (the only
// operations that carry Units are the two recurring-services POSTs, and
// relatedservices/search has no Units field). It matches psa.ErrNotSupported.
// The caller must keep its own record of the quantity it last set.
var ErrUnitsNotReadable = fmt.Errorf("kaseyabms: the Kaseya BMS v2 API cannot read the units of a contract line: %w", psa.ErrNotSupported)

// Backend adapts a Client to psa.Backend, translating BMS's vocabulary
// (accounts, client contracts, recurring services) to the neutral model. IDs
// are BMS's int32 ids as decimal strings. A Backend is safe for concurrent
// use.
//
// Its honest limitation: BMS v2 documents no read of a contract line's
// current units and no in-place change of them. ReadLines therefore returns
// ErrUnitsNotReadable, and SetQuantity posts a new recurring-service line
// with the wanted Units from the effective date on, once; the caller (the
// daemon's ledger) is the record of what was last set.
type Backend struct {
	client *Client

	// services caches catalog details (name, description, price, cost) for
	// new contract lines, so a pass that posts one service on many
	// contracts reads it once. Entries expire after serviceTTL.
	mu       sync.Mutex
	services map[int]cachedService
	now      func() time.Time
	// lookups caches the category, subcategory and unit-of-measure
	// lookups by name (see lookup), and the ticket lookups and account
	// locations tickets need (see cachedList); mu guards it too.
	lookups map[string]cachedLookup
	// fetches makes concurrent writes that miss the cache for one
	// service share a single read of it, and concurrent misses of a
	// lookup one read of the lookup.
	fetches singleflight.Group
	// probe is the process's check that a search finds a ticket by the
	// reference token in its title (see refProbe); mu guards it.
	probe refProbe
}

type cachedService struct {
	svc *Service
	at  time.Time
	// handed is set once PreloadServices handed the service to its
	// caller to keep (or took it from the caller's kept services).
	handed bool
}

// serviceTTL bounds how stale a cached service may be.
const serviceTTL = 10 * time.Minute

// NewBackend returns a Backend that uses c.
func NewBackend(c *Client) *Backend {
	return &Backend{client: c, services: make(map[int]cachedService), lookups: make(map[string]cachedLookup), now: time.Now}
}

// Client returns the underlying client.
func (b *Backend) Client() *Client { return b.client }

// System returns psa.SystemKaseyaBMS.
func (b *Backend) System() psa.System { return psa.SystemKaseyaBMS }

// Instance identifies the tenant: "tenant:<tenant name>@<API host>", such
// as tenant:Acme MSP@api.bmsemea.kaseya.com. An API host serves many
// tenants, whose ids overlap, so the host alone does not tell them apart.
// An "@" in the name is written %40. export.SameInstance compares
// instances; one that names the host alone (recorded before tenants were)
// matches every tenant there.
func (b *Backend) Instance() string {
	return "tenant:" + strings.ReplaceAll(strings.TrimSpace(b.client.Tenant()), "@", "%40") + "@" + b.client.Host()
}

// Ping authenticates and reads one page of one account.
func (b *Backend) Ping(ctx context.Context) error {
	if _, err := b.client.Authenticate(ctx); err != nil {
		return err
	}
	_, _, err := b.client.Accounts.Lookup(ctx, &AccountLookupOptions{ListOptions: ListOptions{PageSize: 1, PageNumber: 1}})
	return err
}

// MaxConcurrency returns the client's bound on requests in flight, or 0:
// BMS documents no concurrency limit, and the client has none by default.
func (b *Backend) MaxConcurrency() int { return b.client.MaxConcurrency() }

// Ensure Backend tells the daemon how many requests it keeps in flight.
var _ psa.ConcurrencyLimiter = (*Backend)(nil)

// Budget returns psa.ErrNotSupported: BMS reports no request budget (its
// limit is 1,500 calls per hour per endpoint, which the client enforces by
// itself and reports as a *psa.RateLimitError with Hourly set).
func (b *Backend) Budget(context.Context) (*psa.Budget, error) {
	return nil, fmt.Errorf("kaseyabms: BMS reports no request budget: %w", psa.ErrNotSupported)
}

// EndpointBudgets returns the calls left per endpoint in the rolling hour,
// as the client counts them (see Client.EndpointBudgets).
func (b *Backend) EndpointBudgets() map[string]psa.Budget { return b.client.EndpointBudgets() }

// CreateService creates a catalog service. BMS services have no billing
// period (a contract's billing cycle decides) and no invoice description;
// those neutral fields are ignored. The KaseyaBMS fields name a category,
// subcategory and unit of measure, resolved to their ids. A create whose
// outcome is unknown is not re-sent; its error matches psa.ErrOutcomeUnknown.
func (b *Backend) CreateService(ctx context.Context, s *psa.Service) (*psa.Service, error) {
	if strings.TrimSpace(s.Name) == "" {
		return nil, validationError("service name is required")
	}
	req := &CreateServiceRequest{
		Name:        s.Name,
		Description: s.Description,
		UnitCost:    ptr(s.UnitCost),
		UnitPrice:   ptr(s.UnitPrice),
		IsActive:    s.Active,
	}
	if err := b.resolveFields(ctx, s.KaseyaBMS, req); err != nil {
		return nil, err
	}
	svc, _, err := b.client.Services.Create(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: creating service %q: %w", s.Name, err)
	}
	if svc.ID == 0 {
		return nil, fmt.Errorf("kaseyabms: creating service %q: the answer holds no id: %w", s.Name, psa.ErrOutcomeUnknown)
	}
	b.named(svc.ID, s.Name)
	return toService(svc), nil
}

// GetService returns the service with the given id.
func (b *Backend) GetService(ctx context.Context, id string) (*psa.Service, error) {
	n, err := parseID("service", id)
	if err != nil {
		return nil, err
	}
	svc, _, err := b.client.Services.Get(ctx, n)
	if err != nil {
		return nil, err
	}
	b.remember(svc)
	return toService(svc), nil
}

// UpdateService replaces the service s.ID (a PUT). Fields the neutral model
// does not know (accounts, margin) are kept from the stored service, and so
// are the BMS fields when s.KaseyaBMS is nil.
func (b *Backend) UpdateService(ctx context.Context, s *psa.Service) (*psa.Service, error) {
	n, err := parseID("service", s.ID)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(s.Name) == "" {
		return nil, validationError("service name is required")
	}
	cur, _, err := b.client.Services.Get(ctx, n)
	if err != nil {
		return nil, err
	}
	req := updateRequest(cur)
	req.Name, req.Description = s.Name, s.Description
	req.UnitCost, req.UnitPrice, req.IsActive = ptr(s.UnitCost), ptr(s.UnitPrice), s.Active
	if s.KaseyaBMS != nil {
		cr := (*CreateServiceRequest)(req)
		cr.CategoryID, cr.SubCategoryID, cr.UnitOfMeasureID = nil, nil, nil
		if err := b.resolveFields(ctx, s.KaseyaBMS, cr); err != nil {
			return nil, err
		}
	}
	svc, _, err := b.client.Services.Update(ctx, n, req)
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: updating service %d: %w", n, err)
	}
	b.named(n, s.Name)
	if svc.ID == 0 {
		return b.GetService(ctx, s.ID)
	}
	b.remember(svc)
	return toService(svc), nil
}

// DeactivateService sets IsActive to false. It reads the service first, so
// a missing one gives psa.ErrNotFound and an inactive one costs no write.
func (b *Backend) DeactivateService(ctx context.Context, id string) error {
	n, err := parseID("service", id)
	if err != nil {
		return err
	}
	cur, _, err := b.client.Services.Get(ctx, n)
	if err != nil {
		return err
	}
	if !cur.IsActive {
		return nil
	}
	req := updateRequest(cur)
	req.IsActive = false
	if _, _, err := b.client.Services.Update(ctx, n, req); err != nil {
		return fmt.Errorf("kaseyabms: deactivating service %d: %w", n, err)
	}
	return nil
}

// DeleteService deletes the service (DELETE /v2/admin/finance/services/{id}).
func (b *Backend) DeleteService(ctx context.Context, id string) error {
	n, err := parseID("service", id)
	if err != nil {
		return err
	}
	if _, err := b.client.Services.Delete(ctx, n); err != nil {
		return fmt.Errorf("kaseyabms: deleting service %d: %w", n, err)
	}
	b.mu.Lock()
	delete(b.services, n)
	b.mu.Unlock()
	b.named(n, "")
	return nil
}

// serviceLinesPage is how many of a service's contract lines ServiceLines
// reads: enough to name them in a message, in one request.
const serviceLinesPage = 20

// ServiceLines returns the contract lines that use the service (BMS
// refuses to delete it while there are any), up to serviceLinesPage of
// them, and how many there are: one related services search. Whether its
// pages count from 0 is not known (see collect); the count comes with
// either page, so a page 1 that is empty beyond it still counts them. A
// service that does not exist has none.
func (b *Backend) ServiceLines(ctx context.Context, id string) ([]psa.ServiceLine, int, error) {
	n, err := parseID("service", id)
	if err != nil {
		return nil, 0, err
	}
	related, resp, err := b.client.Services.RelatedServices(ctx, n, &RelatedServicesSearchRequest{PageSize: serviceLinesPage})
	if errors.Is(err, psa.ErrNotFound) && !errors.Is(err, psa.ErrEndpointNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("kaseyabms: reading the contract lines of service %d: %w", n, err)
	}
	lines := make([]psa.ServiceLine, 0, len(related))
	for _, r := range related {
		lines = append(lines, psa.ServiceLine{ContractID: strconv.Itoa(r.ContractID), ContractName: r.ContractName, CompanyName: r.AccountName})
	}
	total := len(lines)
	if resp != nil && resp.TotalRecords > total {
		total = resp.TotalRecords
	}
	return lines, total, nil
}

// AllServiceLines returns every contract line that uses the service, from
// the related services search read page by page (DefaultPageSize lines a
// request), or an error when BMS answered fewer lines than it counts. A
// service that does not exist has none.
func (b *Backend) AllServiceLines(ctx context.Context, id string) ([]psa.ServiceLine, error) {
	n, err := parseID("service", id)
	if err != nil {
		return nil, err
	}
	related, _, err := b.client.Services.RelatedServicesAll(ctx, n)
	if errors.Is(err, psa.ErrNotFound) && !errors.Is(err, psa.ErrEndpointNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: reading the contract lines of service %d: %w", n, err)
	}
	lines := make([]psa.ServiceLine, 0, len(related))
	for _, r := range related {
		lines = append(lines, psa.ServiceLine{ContractID: strconv.Itoa(r.ContractID), ContractName: r.ContractName, CompanyName: r.AccountName})
	}
	return lines, nil
}

// Ensure the billing-impact report can read every line of a service.
var _ psa.ServiceLinePager = (*Backend)(nil)

// named keeps the names that CheckServiceFields read in step with a
// service this Backend created or renamed since, or deleted (name ""), so
// that the plan of a replacement, made in the process that deleted the
// service it replaces, does not find the old name.
func (b *Backend) named(id int, name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.lookups["names"]
	if !ok {
		return
	}
	prev, _ := c.list.([]*Category)
	list := make([]*Category, 0, len(prev)+1)
	for _, n := range prev {
		if n.ID != id {
			list = append(list, n)
		}
	}
	if name != "" {
		list = append(list, &Category{ID: id, Name: name})
	}
	b.lookups["names"] = cachedLookup{list: list, at: c.at}
}

// FindServices returns the services named name (case-insensitively),
// active or not, from a service search.
func (b *Backend) FindServices(ctx context.Context, name string) ([]psa.Service, error) {
	list, _, err := b.client.Services.SearchAll(ctx, &ServicesFilter{Name: &name})
	if err != nil {
		return nil, err
	}
	var out []psa.Service
	for _, svc := range list {
		if strings.EqualFold(svc.Name, name) {
			out = append(out, *toService(svc))
		}
	}
	return out, nil
}

// GetCompany returns the account with the given id.
func (b *Backend) GetCompany(ctx context.Context, id string) (*psa.Company, error) {
	n, err := parseID("company", id)
	if err != nil {
		return nil, err
	}
	a, _, err := b.client.Accounts.GetSummary(ctx, n)
	if err != nil {
		return nil, err
	}
	return &psa.Company{ID: strconv.Itoa(a.ID), Name: a.AccountName, Active: a.IsActive}, nil
}

// FindCompanies returns the accounts named name (case-insensitively),
// inactive ones included, from the account lookup.
func (b *Backend) FindCompanies(ctx context.Context, name string) ([]psa.Company, error) {
	list, err := b.accountsNamed(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]psa.Company, 0, len(list))
	for _, a := range list {
		out = append(out, psa.Company{ID: strconv.Itoa(a.ID), Name: a.Name, Active: a.IsActive})
	}
	return out, nil
}

func (b *Backend) accountsNamed(ctx context.Context, name string) ([]*AccountLookup, error) {
	list, _, err := b.client.Accounts.LookupAll(ctx, AccountLookupOptions{Name: name, WithInactiveAccounts: true})
	if err != nil {
		return nil, err
	}
	var out []*AccountLookup
	for _, a := range list {
		if strings.EqualFold(a.Name, name) {
			out = append(out, a)
		}
	}
	return out, nil
}

// GetContract returns the contract with the given id. BMS v2 has no GET of
// one contract, so it is assembled from three documented reads: the
// contract lookup by id (name, active flag), the contract summary filtered
// by that name (account name, type, status, dates), and the account lookup
// by that account name (the account id; when several accounts share the
// name, the contract lookup per account decides).
func (b *Backend) GetContract(ctx context.Context, id string) (*psa.Contract, error) {
	n, err := parseID("contract", id)
	if err != nil {
		return nil, err
	}
	looked, _, err := b.client.Contracts.Lookup(ctx, &ContractLookupOptions{IDs: []int{n}})
	if err != nil {
		return nil, err
	}
	var lk *ContractLookup
	for _, c := range looked {
		if c.ID == n {
			lk = c
		}
	}
	if lk == nil {
		return nil, fmt.Errorf("kaseyabms: contract %d: %w", n, psa.ErrNotFound)
	}
	sums, _, err := b.client.Contracts.ListSummaryAll(ctx, ContractSummaryListOptions{ContractName: lk.Name})
	if err != nil {
		return nil, err
	}
	var sum *ContractSummary
	for _, s := range sums {
		if s.ID == n {
			sum = s
		}
	}
	if sum == nil {
		return nil, fmt.Errorf("kaseyabms: contract %d (%q) is missing from the contract summary: %w", n, lk.Name, psa.ErrNotFound)
	}
	accounts, err := b.accountsNamed(ctx, sum.AccountName)
	if err != nil {
		return nil, err
	}
	companyID := ""
	var account *AccountLookup
	switch len(accounts) {
	case 0:
	case 1:
		account = accounts[0]
	default:
		for _, a := range accounts {
			own, _, err := b.client.Contracts.Lookup(ctx, &ContractLookupOptions{AccountID: a.ID, IDs: []int{n}})
			if err != nil {
				return nil, err
			}
			if slices.ContainsFunc(own, func(c *ContractLookup) bool { return c.ID == n }) {
				account = a
				break
			}
		}
	}
	if account != nil {
		companyID = strconv.Itoa(account.ID)
	}
	c := toContract(lk, sum, companyID)
	c.CompanyInactive = account != nil && !account.IsActive
	return c, nil
}

// FindContracts returns the contracts of q.CompanyID: the contract lookup by
// account id, joined with the contract summary filtered by the account's
// name for the type and status. Unless q says otherwise, only active
// recurring-services contracts. An account that does not exist has none,
// as in the other PSAs.
func (b *Backend) FindContracts(ctx context.Context, q psa.ContractQuery) ([]psa.Contract, error) {
	company, err := parseID("company", q.CompanyID)
	if err != nil {
		return nil, err
	}
	account, _, err := b.client.Accounts.GetSummary(ctx, company)
	if errors.Is(err, psa.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	looked, _, err := b.client.Contracts.Lookup(ctx, &ContractLookupOptions{AccountID: company, ExcludeExpiredContracts: !q.IncludeInactive})
	if err != nil {
		return nil, err
	}
	if len(looked) == 0 {
		return nil, nil
	}
	sums, _, err := b.client.Contracts.ListSummaryAll(ctx, ContractSummaryListOptions{AccountName: account.AccountName})
	if err != nil {
		return nil, err
	}
	byID := make(map[int]*ContractSummary, len(sums))
	for _, s := range sums {
		byID[s.ID] = s
	}
	var out []psa.Contract
	for _, lk := range looked {
		if q.Name != "" && !strings.EqualFold(lk.Name, q.Name) {
			continue
		}
		sum := byID[lk.ID]
		if sum == nil {
			sum = &ContractSummary{ID: lk.ID, ContractName: lk.Name, AccountName: account.AccountName}
		}
		c := toContract(lk, sum, q.CompanyID)
		if !q.AnyType && !c.Recurring || !q.IncludeInactive && !c.Active {
			continue
		}
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b psa.Contract) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ReadLines returns ErrUnitsNotReadable without any request: see Backend.
func (b *Backend) ReadLines(context.Context, []string, time.Time) ([]psa.ContractLine, error) {
	return nil, ErrUnitsNotReadable
}

// SetQuantity posts one recurring-service line with Units = req.Quantity
// from the calendar date of req.EffectiveDate on (POST
// /v2/finance/contracts/recurringservices/{contractId}/services), at the
// service's catalog name, description, price and cost. When req.Current
// (the caller's record of what it last set) already has the quantity,
// nothing is sent.
//
// The post is never re-sent. BMS offers no read to find out whether a post
// whose answer was lost, or is not the posted line (no line id, another
// contract, service or number of units), was applied, so such a post
// returns an error matching psa.ErrOutcomeUnknown, and the caller must
// have a person check the contract before anything is posted again.
func (b *Backend) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	contractID, err := parseID("contract", req.ContractID)
	if err != nil {
		return nil, err
	}
	serviceID, err := parseID("service", req.ServiceID)
	if err != nil {
		return nil, err
	}
	if req.Quantity < 0 || req.Quantity > math.MaxInt32 {
		return nil, validationError(fmt.Sprintf("quantity must be between 0 and %d, got %d", math.MaxInt32, req.Quantity))
	}
	if req.EffectiveDate.IsZero() {
		return nil, validationError("effective date is required")
	}
	if req.Current != nil && req.Current.Quantity == req.Quantity {
		l := *req.Current
		return &l, nil
	}
	svc, err := b.catalogService(ctx, serviceID)
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: reading service %d for a new contract line: %w", serviceID, err)
	}
	day := dateOf(req.EffectiveDate)
	line := RecurringService{
		ServiceID:          serviceID,
		ServiceName:        svc.Name,
		ServiceDescription: svc.Description,
		Units:              int(req.Quantity),
		UnitCost:           svc.UnitCost,
		UnitPrice:          svc.UnitPrice,
		EffectiveDate:      Time{day},
	}
	out, _, err := b.client.Contracts.AddServices(ctx, contractID, []RecurringService{line})
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: posting a line of %d units of service %d on contract %d from %s: %w",
			req.Quantity, serviceID, contractID, day.Format(time.DateOnly), err)
	}
	if why := otherLine(out, contractID, serviceID, req.Quantity); why != "" {
		// BMS cannot be read back: an answer that does not show the
		// posted line leaves its outcome to a person, as a lost one does.
		return nil, fmt.Errorf("kaseyabms: posting a line of %d units of service %d on contract %d from %s: the answer %s: %w",
			req.Quantity, serviceID, contractID, day.Format(time.DateOnly), why, psa.ErrOutcomeUnknown)
	}
	res := &psa.ContractLine{
		ContractID:  req.ContractID,
		ServiceID:   req.ServiceID,
		Quantity:    req.Quantity,
		UnitPrice:   svc.UnitPrice,
		PeriodStart: day,
	}
	if out.ID != 0 {
		res.LineID = strconv.Itoa(out.ID)
	}
	if out.UnitPrice != 0 {
		res.UnitPrice = out.UnitPrice
	}
	return res, nil
}

// otherLine says how the answer to a post of quantity units of service on
// contract differs from the line posted, or "" when it is that line. A
// field the answer leaves out (zero) is not held against it, but the line
// id is needed.
func otherLine(out *ContractService, contract, service int, quantity int64) string {
	switch {
	case out.ID == 0:
		return "holds no line id"
	case out.ContractID != 0 && out.ContractID != contract:
		return fmt.Sprintf("is line %d of contract %d", out.ID, out.ContractID)
	case out.ServiceID != 0 && out.ServiceID != service:
		return fmt.Sprintf("is line %d of service %d", out.ID, out.ServiceID)
	case out.Units != 0 && out.Units != float64(quantity):
		return fmt.Sprintf("is line %d with %v units", out.ID, out.Units)
	}
	return ""
}

// catalogService returns a service, cached for serviceTTL.
func (b *Backend) catalogService(ctx context.Context, id int) (*Service, error) {
	b.mu.Lock()
	c, ok := b.services[id]
	b.mu.Unlock()
	if ok && fresh(c.at, b.now()) {
		return c.svc, nil
	}
	v, err, _ := b.fetches.Do(strconv.Itoa(id), func() (any, error) {
		svc, _, err := b.client.Services.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		b.remember(svc)
		return svc, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Service), nil //nolint:forcetypeassert // the function above returns a *Service
}

// fresh reports whether a service read at is still fresh at now: no older
// than serviceTTL, and not from the future (a clock set back).
func fresh(at, now time.Time) bool {
	age := now.Sub(at)
	return age >= 0 && age < serviceTTL
}

func (b *Backend) remember(svc *Service) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.services[svc.ID] = cachedService{svc: svc, at: b.now()}
}

// resolveFields sets the category, subcategory and unit-of-measure ids of
// req from the names in f. v2 has lookups for categories and subcategories
// but none for units of measure, so a unit of measure is found on an
// existing service that uses it. The lookups are read once per Backend
// (within serviceTTL): an apply that creates many services, and the plan
// that checked them first (CheckServiceFields), share them. A name the
// PSA does not know is a *psa.ValidationError naming the field.
func (b *Backend) resolveFields(ctx context.Context, f *psa.KaseyaBMSServiceFields, req *CreateServiceRequest) error {
	if f == nil {
		return nil
	}
	req.IsTaxable = f.Taxable
	if f.Subcategory != "" && f.Category == "" {
		return fieldError("subcategory", fmt.Sprintf("subcategory %q needs a category", f.Subcategory))
	}
	if f.Category != "" {
		cats, err := b.lookup("categories", func() ([]*Category, error) {
			cats, _, err := b.client.Services.Categories(ctx)
			return cats, err
		})
		if err != nil {
			return err
		}
		id, err := pickName("category", "service category", f.Category, cats)
		if err != nil {
			return err
		}
		req.CategoryID = &id
		if f.Subcategory != "" {
			subs, err := b.lookup("subcategories/"+strconv.Itoa(id), func() ([]*Category, error) {
				subs, _, err := b.client.Services.SubCategories(ctx, id)
				return subs, err
			})
			if err != nil {
				return err
			}
			sid, err := pickName("subcategory", fmt.Sprintf("subcategory of %q", f.Category), f.Subcategory, subs)
			if err != nil {
				return err
			}
			req.SubCategoryID = &sid
		}
	}
	if f.UnitOfMeasure != "" {
		units, err := b.lookup("units", func() ([]*Category, error) {
			all, _, err := b.client.Services.SearchAll(ctx, nil)
			if err != nil {
				return nil, err
			}
			var units []*Category
			for _, s := range all {
				if s.UnitOfMeasureID != nil {
					units = append(units, &Category{ID: *s.UnitOfMeasureID, Name: s.UnitOfMeasure})
				}
			}
			return units, nil
		})
		if err != nil {
			return err
		}
		for _, u := range units {
			if strings.EqualFold(u.Name, f.UnitOfMeasure) {
				id := u.ID
				req.UnitOfMeasureID = &id
				return nil
			}
		}
		return fieldError("unit_of_measure", fmt.Sprintf("unit of measure %q is not used by any service; the BMS v2 API has no unit-of-measure lookup, so set it on one service in BMS first, or leave it empty", f.UnitOfMeasure))
	}
	return nil
}

// CheckServiceFields reports, before anything is written, whether the
// category, subcategory and unit of measure that s names resolve as a
// create or update would resolve them, and whether another service has
// s's name, which BMS refuses for a create (s.ID empty) or an update: nil,
// a *psa.ValidationError naming the field (Field) that would be refused,
// or the error of a lookup that could not be read. The services' names
// are read once (within serviceTTL), so services created after that read
// are not seen.
func (b *Backend) CheckServiceFields(ctx context.Context, s *psa.Service) error {
	if err := b.resolveFields(ctx, s.KaseyaBMS, &CreateServiceRequest{}); err != nil {
		return err
	}
	names, err := b.lookup("names", func() ([]*Category, error) {
		all, _, err := b.client.Services.SearchAll(ctx, nil)
		if err != nil {
			return nil, err
		}
		names := make([]*Category, 0, len(all))
		for _, svc := range all {
			names = append(names, &Category{ID: svc.ID, Name: svc.Name})
		}
		return names, nil
	})
	if err != nil {
		return err
	}
	for _, n := range names {
		if strconv.Itoa(n.ID) != s.ID && strings.EqualFold(n.Name, strings.TrimSpace(s.Name)) {
			return &psa.ValidationError{System: psa.SystemKaseyaBMS, Field: "name", Holder: strconv.Itoa(n.ID), Messages: []string{fmt.Sprintf(
				"service %d is already named %q, and BMS refuses a second service of one name; choose another name, or import service %d",
				n.ID, n.Name, n.ID)}}
		}
	}
	return nil
}

type cachedLookup struct {
	list any // a []T of cachedList's read
	at   time.Time
}

// lookup returns the lookup list kept under key, reading it with read when
// it is missing or older than serviceTTL; concurrent misses share one read.
// A failed read is not kept.
func (b *Backend) lookup(key string, read func() ([]*Category, error)) ([]*Category, error) {
	return cachedList(b, key, read)
}

// cachedList is lookup for lists of any type: ticket statuses, note
// types and priorities, and an account's locations, which a ticket pass
// needs for every close, note or create and which BMS counts against the
// endpoint's 1,500 calls an hour.
func cachedList[T any](b *Backend, key string, read func() ([]T, error)) ([]T, error) {
	b.mu.Lock()
	c, ok := b.lookups[key]
	b.mu.Unlock()
	if list, isT := c.list.([]T); ok && isT && fresh(c.at, b.now()) {
		return list, nil
	}
	v, err, _ := b.fetches.Do("lookup/"+key, func() (any, error) {
		list, err := read()
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.lookups[key] = cachedLookup{list: list, at: b.now()}
		b.mu.Unlock()
		return list, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]T), nil //nolint:forcetypeassert // the function above returns a []T
}

// forget drops the list kept under key: the next use reads it again.
func (b *Backend) forget(key string) {
	b.mu.Lock()
	delete(b.lookups, key)
	b.mu.Unlock()
}

func pickName(field, kind, name string, list []*Category) (int, error) {
	var names []string
	for _, c := range list {
		if strings.EqualFold(c.Name, name) {
			return c.ID, nil
		}
		names = append(names, strconv.Quote(c.Name))
	}
	return 0, fieldError(field, fmt.Sprintf("no %s named %q (known: %s)", kind, name, strings.Join(names, ", ")))
}

func updateRequest(cur *Service) *UpdateServiceRequest {
	return &UpdateServiceRequest{
		ID:               cur.ID,
		Name:             cur.Name,
		Description:      cur.Description,
		UnitCost:         ptr(cur.UnitCost),
		UnitPrice:        ptr(cur.UnitPrice),
		CategoryID:       cur.CategoryID,
		SubCategoryID:    cur.SubCategoryID,
		UnitOfMeasureID:  cur.UnitOfMeasureID,
		IncomeAccountID:  cur.IncomeAccountID,
		ExpenseAccountID: cur.ExpenseAccountID,
		IsActive:         cur.IsActive,
		IsTaxable:        cur.IsTaxable,
		Margin:           cur.Margin,
		MarginType:       cur.MarginType,
	}
}

func toService(svc *Service) *psa.Service {
	return &psa.Service{
		ID:          strconv.Itoa(svc.ID),
		Name:        svc.Name,
		Description: svc.Description,
		UnitPrice:   svc.UnitPrice,
		UnitCost:    svc.UnitCost,
		Active:      svc.IsActive,
		KaseyaBMS: &psa.KaseyaBMSServiceFields{
			Category:      svc.Category,
			Subcategory:   svc.SubCategory,
			UnitOfMeasure: svc.UnitOfMeasure,
			Taxable:       svc.IsTaxable,
		},
	}
}

func toContract(lk *ContractLookup, sum *ContractSummary, companyID string) *psa.Contract {
	end := sum.EndDate.Time
	if end.IsZero() {
		end = lk.EndDate.Time
	}
	return &psa.Contract{
		ID:           strconv.Itoa(lk.ID),
		CompanyID:    companyID,
		Name:         lk.Name,
		Type:         sum.ContractType,
		Status:       sum.Status,
		Active:       lk.IsActive,
		Recurring:    strings.Contains(strings.ToLower(sum.ContractType), "recurring"),
		BillingCycle: sum.BillingCycle,
		StartDate:    sum.StartDate.Time,
		EndDate:      end,
	}
}

// parseID parses a BMS id (an int32) given as a string.
func parseID(kind, s string) (int, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil || n <= 0 {
		return 0, validationError(fmt.Sprintf("invalid %s id %q: Kaseya BMS ids are positive 32-bit integers", kind, s))
	}
	return int(n), nil
}

func validationError(msg string) error {
	return &psa.ValidationError{System: psa.SystemKaseyaBMS, Messages: []string{msg}}
}

// fieldError is a validationError about one field of the service block.
func fieldError(field, msg string) error {
	return &psa.ValidationError{System: psa.SystemKaseyaBMS, Messages: []string{msg}, Field: field}
}

// dateOf returns the calendar date of t (in t's location) as midnight UTC.
func dateOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func ptr[T any](v T) *T { return &v }
