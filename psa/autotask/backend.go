package autotask

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure Backend satisfies the psa.Backend interface.
var _ psa.Backend = (*Backend)(nil)

// Labels of the picklist values psa-sync looks up. The numeric values differ
// between tenants, so they are always read from entityInformation/fields.
const (
	labelRecurringService         = "Recurring Service"          // Contracts.contractType
	labelActive                   = "Active"                     // Contracts.status
	labelRecurringContractService = "Recurring Contract Service" // BillingCodes.useType
)

// periodLabels are the folded (see normLabel) Services.periodType labels
// each neutral billing period matches, the first being Autotask's own.
var periodLabels = map[psa.BillingPeriod][]string{
	psa.BillingPeriodMonthly:    {"monthly"},
	psa.BillingPeriodQuarterly:  {"quarterly"},
	psa.BillingPeriodSemiAnnual: {"semiannual", "semiannually", "halfyearly"},
	psa.BillingPeriodYearly:     {"yearly", "annual", "annually"},
}

// Backend adapts a Client to psa.Backend, translating Autotask's vocabulary
// to the neutral model. IDs are Autotask's integer ids as decimal strings.
// A Backend is safe for concurrent use; its Client bounds concurrency.
type Backend struct {
	client *Client

	// prices caches service unit prices for new contract lines, so a pass
	// that adds one service to many contracts reads its price once. Entries
	// expire after priceTTL so a price changed in Autotask is picked up.
	mu     sync.Mutex
	prices map[int64]cachedPrice
	now    func() time.Time
	// dueCategories holds when Autotask last refused a ticket of a
	// category for want of a due date (see CreateTicket); guarded by mu.
	dueCategories map[int64]time.Time

	// codeMu makes concurrent creates wait for one lookup of the default
	// billing code, which is then kept for priceTTL.
	codeMu      sync.Mutex
	defaultCode int64
	defaultAt   time.Time
	// codes holds every billing code by id, read at codesAt for the plan
	// checks of CheckServiceFields; guarded by codeMu.
	codes   map[int64]*BillingCode
	codesAt time.Time
	// names holds every service's id and name, read at namesAt for the
	// plan checks of CheckServiceFields; guarded by codeMu.
	names   []*Service
	namesAt time.Time
}

type cachedPrice struct {
	price float64
	at    time.Time
}

// priceTTL bounds how stale a cached service price may be.
const priceTTL = 10 * time.Minute

// NewBackend returns a Backend that uses c.
func NewBackend(c *Client) *Backend {
	return &Backend{client: c, prices: make(map[int64]cachedPrice), now: time.Now}
}

// servicePrice returns the catalog unit price of a service, cached for priceTTL.
func (b *Backend) servicePrice(ctx context.Context, serviceID int64) (float64, error) {
	b.mu.Lock()
	c, ok := b.prices[serviceID]
	b.mu.Unlock()
	if ok && b.now().Sub(c.at) < priceTTL {
		return c.price, nil
	}
	svc, _, err := b.client.Services.Get(ctx, serviceID)
	if err != nil {
		return 0, err
	}
	b.keepPrices([]*Service{svc})
	return svc.UnitPrice, nil
}

// keepPrices keeps the unit prices of services just read for servicePrice,
// for priceTTL from now.
func (b *Backend) keepPrices(list []*Service) {
	at := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, svc := range list {
		if svc != nil {
			b.prices[svc.ID] = cachedPrice{price: svc.UnitPrice, at: at}
		}
	}
}

// ServicePricesKept is how long the prices of the services read by
// GetServices are kept for the lines new on contracts
// (psa.ServicePriceKeeper).
func (b *Backend) ServicePricesKept() time.Duration { return priceTTL }

// Client returns the underlying client.
func (b *Backend) Client() *Client { return b.client }

// System returns psa.SystemAutotask.
func (b *Backend) System() psa.System { return psa.SystemAutotask }

// Instance identifies the tenant: "ci:<CI>@<zone host>", such as
// ci:29683541@webservices5.autotask.net, where the CI is the company
// identifier that zone discovery reports. A zone host serves many tenants,
// so the host alone does not tell them apart. With a configured base URL
// there is no discovery and Instance is the host alone. It is "" until the
// zone is known (after Ping or any other call, or at once when a base URL
// was configured). export.SameInstance compares instances.
func (b *Backend) Instance() string {
	host := b.client.Host()
	if ci := b.client.CI(); ci > 0 && host != "" {
		return fmt.Sprintf("ci:%d@%s", ci, host)
	}
	return host
}

// MaxConcurrency returns the requests the client keeps in flight per entity
// endpoint: Autotask's thread limit of 3, or less when configured so.
func (b *Backend) MaxConcurrency() int { return b.client.MaxConcurrency() }

// Ensure Backend tells the daemon how many requests it keeps in flight.
var _ psa.ConcurrencyLimiter = (*Backend)(nil)

// Ping discovers the zone and reads ThresholdInformation, which needs valid
// credentials.
func (b *Backend) Ping(ctx context.Context) error {
	_, _, err := b.client.ThresholdInformation(ctx)
	return err
}

// Budget returns the tenant's hourly request budget from ThresholdInformation.
func (b *Backend) Budget(ctx context.Context) (*psa.Budget, error) {
	ti, _, err := b.client.ThresholdInformation(ctx)
	if err != nil {
		return nil, err
	}
	return &psa.Budget{Limit: ti.ExternalRequestThreshold, Used: ti.CurrentTimeframeRequestCount, Timeframe: ti.Timeframe()}, nil
}

// CreateService creates a Service. Autotask requires a period type and a
// billing code: the period type is the picklist value labelled like
// s.BillingPeriod (or s.Autotask.PeriodType); the billing code is
// s.Autotask.BillingCodeID or else the tenant's only active billing code for
// recurring contract services. A create whose outcome is unknown is not
// re-sent; its error matches psa.ErrOutcomeUnknown.
func (b *Backend) CreateService(ctx context.Context, s *psa.Service) (*psa.Service, error) {
	if strings.TrimSpace(s.Name) == "" {
		return nil, validationError("service name is required")
	}
	periodType, err := b.periodType(ctx, s)
	if err != nil {
		return nil, err
	}
	billingCode, err := b.billingCode(ctx, s)
	if err != nil {
		return nil, err
	}
	id, _, err := b.client.Services.Create(ctx, &CreateServiceRequest{
		Name:               s.Name,
		Description:        s.Description,
		InvoiceDescription: s.InvoiceDescription,
		UnitPrice:          s.UnitPrice,
		UnitCost:           Ptr(s.UnitCost),
		PeriodType:         periodType,
		BillingCodeID:      billingCode,
		IsActive:           Ptr(s.Active),
	})
	if err != nil {
		return nil, fmt.Errorf("autotask: creating service %q: %w", s.Name, err)
	}
	// Autotask answers a create with the new id only (itemId) and stores
	// what was sent, so the service is what was sent under that id: no
	// read-back, which would double the requests of creating many.
	return b.toService(ctx, &Service{
		ID:                 id,
		Name:               s.Name,
		Description:        s.Description,
		InvoiceDescription: s.InvoiceDescription,
		UnitPrice:          s.UnitPrice,
		UnitCost:           s.UnitCost,
		PeriodType:         periodType,
		BillingCodeID:      billingCode,
		IsActive:           s.Active,
	})
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
	b.keepPrices([]*Service{svc})
	return b.toService(ctx, svc)
}

// UpdateService patches the service s.ID with every neutral field of s, and
// with the period type and billing code when s names them.
func (b *Backend) UpdateService(ctx context.Context, s *psa.Service) (*psa.Service, error) {
	n, err := parseID("service", s.ID)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(s.Name) == "" {
		return nil, validationError("service name is required")
	}
	req := &UpdateServiceRequest{
		ID:                 n,
		Name:               Ptr(s.Name),
		Description:        Ptr(s.Description),
		InvoiceDescription: Ptr(s.InvoiceDescription),
		UnitPrice:          Ptr(s.UnitPrice),
		UnitCost:           Ptr(s.UnitCost),
		IsActive:           Ptr(s.Active),
	}
	if s.BillingPeriod != "" || s.Autotask != nil && s.Autotask.PeriodType != "" {
		pt, err := b.periodType(ctx, s)
		if err != nil {
			return nil, err
		}
		req.PeriodType = &pt
	}
	if s.Autotask != nil && s.Autotask.BillingCodeID != "" {
		bc, err := parseID("billing code", s.Autotask.BillingCodeID)
		if err != nil {
			return nil, err
		}
		req.BillingCodeID = &bc
	}
	if _, _, err := b.client.Services.Update(ctx, req); err != nil {
		return nil, fmt.Errorf("autotask: updating service %d: %w", n, err)
	}
	return b.GetService(ctx, s.ID)
}

// DeactivateService sets isActive to false. It reads the service first, so a
// missing one gives psa.ErrNotFound and an inactive one costs no write.
func (b *Backend) DeactivateService(ctx context.Context, id string) error {
	n, err := parseID("service", id)
	if err != nil {
		return err
	}
	svc, _, err := b.client.Services.Get(ctx, n)
	if err != nil {
		return err
	}
	if !svc.IsActive {
		return nil
	}
	if _, _, err := b.client.Services.Update(ctx, &UpdateServiceRequest{ID: n, IsActive: Ptr(false)}); err != nil {
		return fmt.Errorf("autotask: deactivating service %d: %w", n, err)
	}
	return nil
}

// DeleteService returns psa.ErrNotSupported: the Autotask API has no DELETE
// for Services. Deactivate them instead.
func (b *Backend) DeleteService(context.Context, string) error {
	return fmt.Errorf("autotask: services cannot be deleted through the Autotask API, only deactivated: %w", psa.ErrNotSupported)
}

// FindServices returns the services named name (case-insensitively).
func (b *Backend) FindServices(ctx context.Context, name string) ([]psa.Service, error) {
	list, _, err := b.client.Services.List(ctx, NewQuery(Eq("name", name)))
	if err != nil {
		return nil, err
	}
	var out []psa.Service
	for _, svc := range list {
		if !strings.EqualFold(svc.Name, name) {
			continue
		}
		s, err := b.toService(ctx, svc)
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	return out, nil
}

// GetCompany returns the company with the given id.
func (b *Backend) GetCompany(ctx context.Context, id string) (*psa.Company, error) {
	n, err := parseID("company", id)
	if err != nil {
		return nil, err
	}
	c, _, err := b.client.Companies.Get(ctx, n)
	if err != nil {
		return nil, err
	}
	return toCompany(c), nil
}

// FindCompanies returns the companies named name (case-insensitively).
func (b *Backend) FindCompanies(ctx context.Context, name string) ([]psa.Company, error) {
	q := NewQuery(Eq("companyName", name))
	q.IncludeFields = []string{"id", "companyName", "isActive"}
	list, _, err := b.client.Companies.List(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []psa.Company
	for _, c := range list {
		if strings.EqualFold(c.CompanyName, name) {
			out = append(out, *toCompany(c))
		}
	}
	return out, nil
}

// GetContract returns the contract with the given id.
func (b *Backend) GetContract(ctx context.Context, id string) (*psa.Contract, error) {
	n, err := parseID("contract", id)
	if err != nil {
		return nil, err
	}
	c, _, err := b.client.Contracts.Get(ctx, n)
	if err != nil {
		return nil, err
	}
	return b.toContract(ctx, c)
}

// FindContracts returns the contracts of q.CompanyID; unless q says
// otherwise, only active Recurring Service contracts (the picklist values
// labelled "Active" and "Recurring Service").
func (b *Backend) FindContracts(ctx context.Context, q psa.ContractQuery) ([]psa.Contract, error) {
	company, err := parseID("company", q.CompanyID)
	if err != nil {
		return nil, err
	}
	query := NewQuery(Eq("companyID", company))
	if q.Name != "" {
		query.Filter = append(query.Filter, Eq("contractName", q.Name))
	}
	filter, err := b.contractFilter(ctx, q)
	if err != nil {
		return nil, err
	}
	query.Filter = append(query.Filter, filter...)
	list, _, err := b.client.Contracts.List(ctx, query)
	if err != nil {
		return nil, err
	}
	var out []psa.Contract
	for _, c := range list {
		if q.Name != "" && !strings.EqualFold(c.ContractName, q.Name) {
			continue
		}
		pc, err := b.toContract(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, *pc)
	}
	return out, nil
}

// contractFilter filters contracts by type and status as q says: unless
// it says otherwise, only active Recurring Service contracts.
func (b *Backend) contractFilter(ctx context.Context, q psa.ContractQuery) ([]Filter, error) {
	var filter []Filter
	if !q.AnyType {
		v, err := b.client.EntityInformation.PicklistValue(ctx, "Contracts", "contractType", labelRecurringService)
		if err != nil {
			return nil, err
		}
		filter = append(filter, Eq("contractType", v))
	}
	if !q.IncludeInactive {
		v, err := b.client.EntityInformation.PicklistValue(ctx, "Contracts", "status", labelActive)
		if err != nil {
			return nil, err
		}
		filter = append(filter, Eq("status", v))
	}
	return filter, nil
}

// unitFields are the ContractServiceUnits fields ReadLines needs; "id" is
// required when a query can return more than one page. approveAndPostDate
// tells a period already approved and posted (invoiced).
var unitFields = []string{"id", "contractID", "contractServiceID", "serviceID", "startDate", "endDate", "units", "price", "approveAndPostDate"}

// ReadLines reads the units of every service on the given contracts for the
// period containing asOf (its calendar date), with one ContractServiceUnits
// query per 500 contracts (an "in" filter on contractID plus the date
// window), following pages of 500 rows, as many queries at once as the
// client allows per endpoint (Autotask's 3 threads). Lines come sorted by
// contract and service id. A line's ContractID is spelled as in
// contractIDs, so that a caller finds the line of "029684183" under the
// id it asked for, not only under Autotask's "29684183".
//
// The window reaches to the end of asOf's calendar month, so that a line
// whose units change again later in the month (a mid-period adjustment:
// Autotask splits the unit row there) reports where in
// psa.ContractLine.LaterChanges: an adjustment is a delta applied to every
// row from its effective date on, so one dated asOf would leave the later
// rows off by as much as they differ. A line whose row at asOf carries an
// approveAndPostDate is psa.ContractLine.Posted: that period was invoiced.
//
// A service that sits on a contract more than once (two ContractServices,
// a repeat service, with rows in the window) is never read as one line:
// adjustments go to one line (by contractServiceID), and which one the
// pass should change, and which quantity is the contract's, is not for
// psa-syncd to guess. Such a contract is reported in a *ContractErrors
// (a *psa.AmbiguousError naming the lines, psa.ErrConflict), returned with
// the lines of the other contracts. ReadServiceLines fails a contract only
// over a repeat of one of the services the caller manages.
//
// So is a contract with a unit row that cannot be read (units null, a field
// of the wrong type) in an answer that is otherwise sound: none of its
// lines is returned, since a line missing from them would be added again.
// An answer that is not JSON at all (an HTML page, a body cut short), or
// whose bad row names no contract, fails the whole read.
func (b *Backend) ReadLines(ctx context.Context, contractIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	return b.readLines(ctx, contractIDs, nil, asOf)
}

// ReadServiceLines reads like ReadLines, but a service repeated on a
// contract fails the contract only when it is one of serviceIDs, the
// services the caller manages; a repeated service of another kind is left
// out of the lines (see psa.ServiceLineReader).
func (b *Backend) ReadServiceLines(ctx context.Context, contractIDs, serviceIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	managed := make(map[int64]bool, len(serviceIDs))
	for _, s := range serviceIDs {
		if n, err := parseID("service", s); err == nil {
			managed[n] = true
		}
	}
	return b.readLines(ctx, contractIDs, func(service int64) bool { return managed[service] }, asOf)
}

// Ensure Backend fails a contract only over the services a caller manages.
var _ psa.ServiceLineReader = (*Backend)(nil)

// readLines is ReadLines, with the repeats of services for which managed
// is false left out; nil manages every service.
func (b *Backend) readLines(ctx context.Context, contractIDs []string, managed func(service int64) bool, asOf time.Time) ([]psa.ContractLine, error) {
	ids := make([]int64, 0, len(contractIDs))
	seen := make(map[int64]bool, len(contractIDs))
	for _, s := range contractIDs {
		n, err := parseID("contract", s)
		if err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			ids = append(ids, n)
		}
	}
	day := dateOf(asOf)
	chunks := slices.Collect(slices.Chunk(ids, MaxPageSize))
	// Each chunk's rows become lines as soon as they are read (a chunk
	// holds every row of its contracts), so that the rows of 100,000 lines
	// are never in memory at once.
	results := make([][]psa.ContractLine, len(chunks))
	problems := make([]map[int64]error, len(chunks))
	g, gctx := errgroup.WithContext(ctx)
	// One chunk more than the requests the client keeps in flight: a
	// chunk's pages follow one another, and while one chunk decodes a page
	// the next chunk's request takes its slot, so the slots stay busy.
	g.SetLimit(b.client.MaxConcurrency() + 1)
	for i, chunk := range chunks {
		g.Go(func() error {
			// The rows of day's month, and the posted rows after it: a
			// change dated day carries into those too (see toLines).
			// Periods are normally posted in order, so the second part
			// finds no row and costs nothing.
			q := NewQuery(In("contractID", chunk...), Or(
				And(Lte("startDate", monthEnd(day)), Gte("endDate", day)),
				And(Gt("startDate", monthEnd(day)), Exist("approveAndPostDate"))))
			q.IncludeFields, q.MaxRecords = unitFields, MaxPageSize
			units, _, err := b.client.ContractServiceUnits.List(gctx, q)
			var unreadable *UnreadableRowsError
			// A query's 404 is of its endpoint (see queryError), which
			// fails every read alike, and does not read as a contract's
			// (a caller would read each contract alone to find it).
			if err != nil && !errors.As(err, &unreadable) {
				return fmt.Errorf("autotask: reading contract service units: %w", err)
			}
			if unreadable != nil {
				// A contract with an unreadable row is not read from its
				// other rows: the missing row's service would look like
				// a line to add, and the pass would add its whole
				// quantity again.
				units = slices.DeleteFunc(units, func(u *ContractServiceUnit) bool {
					_, bad := unreadable.Contracts[u.ContractID]
					return bad
				})
			}
			results[i], problems[i] = toLines(units, day, managed)
			for id, uerr := range unreadable.contracts() {
				if problems[i] == nil {
					problems[i] = map[int64]error{}
				}
				problems[i][id] = uerr
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	lines := slices.Concat(results...)
	if len(results) > 1 {
		slices.SortFunc(lines, func(a, b psa.ContractLine) int {
			return cmp.Or(compareIDs(a.ContractID, b.ContractID), compareIDs(a.ServiceID, b.ServiceID))
		})
	}
	// A caller looks the lines up by the ids it gave: one spelled otherwise
	// (a leading zero, spaces) that found no line would post the whole
	// quantity again as a delta.
	spellings := psa.Spellings(psa.SystemAutotask, contractIDs)
	lines = psa.RespellLines(lines, spellings)
	perContract := map[string]error{}
	for _, m := range problems {
		for id, err := range m {
			s := strconv.FormatInt(id, 10)
			if spelled, ok := spellings[s]; ok {
				for _, sp := range spelled {
					perContract[sp] = err
				}
				continue
			}
			perContract[s] = err
		}
	}
	if len(perContract) > 0 {
		return lines, &ContractErrors{System: "autotask", Noun: "contract", Errors: perContract}
	}
	return lines, nil
}

// ContractErrors is returned by ReadLines, together with the lines of
// every other contract, when some contracts could not be read for reasons
// of their own: a service on the contract more than once (a
// *psa.AmbiguousError, psa.ErrConflict), or a unit row that cannot be read
// (units null, a field of the wrong type) in an answer that is otherwise
// sound. See psa.ContractErrors.
type ContractErrors = psa.ContractErrors

// compareIDs compares two ids that strconv.FormatInt spelled as the
// numbers they are.
func compareIDs(a, b string) int {
	if !strings.HasPrefix(a, "-") && !strings.HasPrefix(b, "-") {
		// strconv.FormatInt spells non-negative numbers without leading
		// zeros: the longer is the larger.
		return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
	}
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA != nil || errB != nil {
		return strings.Compare(a, b)
	}
	return cmp.Compare(x, y)
}

// monthEnd returns the last day of day's calendar month.
func monthEnd(day time.Time) time.Time {
	return time.Date(day.Year(), day.Month()+1, 0, 0, 0, 0, 0, time.UTC)
}

// toLines makes one line per (contract, service) from the unit rows that
// overlap [day, end of day's month]: the row that contains day (the latest
// that started, should rows overlap) gives the quantity, and the rows that
// start after day give LaterChanges. A service without a row containing day
// has no line. A posted row that starts after day's month (a later period
// approved and posted while the one at day is not) makes the line Posted,
// with that row's period: Autotask carries a change dated day into every
// later period, so it would alter that invoiced one.
//
// A service whose rows belong to more than one contract service (a repeat
// service: the contract holds it on two lines) is not one line: when
// managed reports it (nil: every service), its contract gets a
// *psa.AmbiguousError in problems, and none of the contract's lines is
// returned, so that a caller fails the contract rather than reading it
// without the line (and adding the whole quantity again). Otherwise it is
// one psa.ContractLine.Inexact line of the units of its contract services
// on day added up: a caller that no longer writes the service (a product
// mapping removed) still sees that it bills.
func toLines(rows []*ContractServiceUnit, day time.Time, managed func(service int64) bool) (lines []psa.ContractLine, problems map[int64]error) {
	type key struct{ contract, service int64 }
	best := make(map[key]*ContractServiceUnit, len(rows))
	later := make(map[key][]*ContractServiceUnit)
	// first is the first row of each key in the window, to tell a repeat:
	// a row of another contract service under the same key.
	first := make(map[key]*ContractServiceUnit, len(rows))
	repeats := map[key][]*ContractServiceUnit{}
	// postedLater is the first posted row of each key after day's month.
	postedLater := map[key]*ContractServiceUnit{}
	end := monthEnd(day)
	for _, r := range rows {
		k := key{r.ContractID, r.ServiceID}
		if r.EndDate.Before(day) && !r.StartDate.After(day) {
			// Not in the window; only a query without an endDate filter
			// returns such rows.
			continue
		}
		if r.StartDate.After(end) {
			if p, ok := postedLater[k]; !r.ApproveAndPostDate.IsZero() && (!ok || r.StartDate.Before(p.StartDate.Time)) {
				postedLater[k] = r
			}
			continue
		}
		if f, ok := first[k]; !ok {
			first[k] = r
		} else if f.ContractServiceID != r.ContractServiceID {
			if len(repeats[k]) == 0 {
				repeats[k] = append(repeats[k], f)
			}
			if !slices.ContainsFunc(repeats[k], func(x *ContractServiceUnit) bool { return x.ContractServiceID == r.ContractServiceID }) {
				repeats[k] = append(repeats[k], r)
			}
		}
		switch {
		case r.StartDate.After(day):
			later[k] = append(later[k], r)
		default:
			if cur, ok := best[k]; !ok || r.StartDate.After(cur.StartDate.Time) {
				best[k] = r
			}
		}
	}
	failed := map[int64]bool{}
	var inexact map[key]psa.ContractLine
	for k, rs := range repeats {
		if managed != nil && !managed(k.service) {
			if inexact == nil {
				inexact = map[key]psa.ContractLine{}
			}
			inexact[k] = psa.ContractLine{ContractID: strconv.FormatInt(k.contract, 10), ServiceID: strconv.FormatInt(k.service, 10), Inexact: true}
			continue
		}
		if problems == nil {
			problems = map[int64]error{}
		}
		err := repeatError(k.contract, k.service, rs, day)
		if prev := problems[k.contract]; prev != nil {
			err = errors.Join(prev, err)
		}
		problems[k.contract] = err
		failed[k.contract] = true
	}
	if len(inexact) > 0 {
		// Each contract service's units on day: its row that contains
		// day (the latest that started, should rows overlap).
		rowAt := map[int64]*ContractServiceUnit{}
		for _, r := range rows {
			if _, ok := inexact[key{r.ContractID, r.ServiceID}]; !ok || r.StartDate.After(day) || r.EndDate.Before(day) {
				continue
			}
			if cur, ok := rowAt[r.ContractServiceID]; !ok || r.StartDate.After(cur.StartDate.Time) {
				rowAt[r.ContractServiceID] = r
			}
		}
		for _, r := range rowAt {
			k := key{r.ContractID, r.ServiceID}
			l := inexact[k]
			l.Quantity += r.Units
			inexact[k] = l
		}
	}
	keys := make([]key, 0, len(best)+len(later))
	for k := range best {
		keys = append(keys, k)
	}
	for k := range later {
		if _, ok := best[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.contract, b.contract), cmp.Compare(a.service, b.service))
	})
	lines = make([]psa.ContractLine, 0, len(keys))
	for _, k := range keys {
		if l, ok := inexact[k]; ok && !failed[k.contract] {
			lines = append(lines, l)
			continue
		}
		if failed[k.contract] || len(repeats[k]) > 0 {
			continue
		}
		rs := later[k]
		slices.SortFunc(rs, func(a, b *ContractServiceUnit) int { return a.StartDate.Compare(b.StartDate.Time) })
		var line psa.ContractLine
		if r, ok := best[k]; ok {
			line = toLine(r)
		} else {
			// The service has no units on day but gets some later in the
			// window (a line added by hand mid-period). Report it as a
			// line with zero units that changes later, so that it is held
			// for review: a delta dated day would add to the later units
			// instead of replacing them.
			line = toLine(rs[0])
			line.Quantity, line.PeriodStart, line.PeriodEnd, line.Posted = 0, day, time.Time{}, false
		}
		if p := postedLater[k]; p != nil && !line.Posted {
			line.Posted, line.PeriodStart, line.PeriodEnd = true, p.StartDate.Time, p.EndDate.Time
		}
		units := line.Quantity
		for _, r := range rs {
			if r.Units != units {
				line.LaterChanges = append(line.LaterChanges, psa.QuantityChange{From: r.StartDate.Time, Quantity: r.Units})
				units = r.Units
			}
		}
		lines = append(lines, line)
	}
	return lines, problems
}

// repeatError says that a service sits on a contract more than once, naming
// each line (contract service) with its units on day, or from when.
func repeatError(contract, service int64, rows []*ContractServiceUnit, day time.Time) error {
	slices.SortFunc(rows, func(a, b *ContractServiceUnit) int { return cmp.Compare(a.ContractServiceID, b.ContractServiceID) })
	matches := make([]string, 0, len(rows))
	for _, r := range rows {
		when := "on " + day.Format(time.DateOnly)
		if r.StartDate.After(day) {
			when = "from " + r.StartDate.Format(time.DateOnly)
		}
		matches = append(matches, fmt.Sprintf("contract service %d (%d units %s)", r.ContractServiceID, r.Units, when))
	}
	return &psa.AmbiguousError{
		Kind:    "contract service line",
		Query:   fmt.Sprintf("for service %d on contract %d", service, contract),
		Matches: matches,
	}
}

func toLine(r *ContractServiceUnit) psa.ContractLine {
	return psa.ContractLine{
		ContractID:  strconv.FormatInt(r.ContractID, 10),
		ServiceID:   strconv.FormatInt(r.ServiceID, 10),
		LineID:      strconv.FormatInt(r.ContractServiceID, 10),
		Quantity:    r.Units,
		UnitPrice:   r.Price,
		PeriodStart: r.StartDate.Time,
		PeriodEnd:   r.EndDate.Time,
		Posted:      !r.ApproveAndPostDate.IsZero(),
	}
}

// readLine reads one line at day: the contract service lineID when it is
// not 0, else the service's only line. A contract without the service
// gives a line with zero units and no LineID.
func (b *Backend) readLine(ctx context.Context, contractID, serviceID, lineID int64, day time.Time) (*psa.ContractLine, error) {
	q := NewQuery(Eq("contractID", contractID), Eq("serviceID", serviceID), Lte("startDate", day), Gte("endDate", day))
	if lineID != 0 {
		q.Filter = append(q.Filter, Eq("contractServiceID", lineID))
	}
	q.IncludeFields = unitFields
	units, _, err := b.client.ContractServiceUnits.List(ctx, q)
	if err != nil {
		return nil, err
	}
	lines, problems := toLines(units, day, nil)
	if err := problems[contractID]; err != nil {
		return nil, err
	}
	if len(lines) > 0 {
		return &lines[0], nil
	}
	return &psa.ContractLine{ContractID: strconv.FormatInt(contractID, 10), ServiceID: strconv.FormatInt(serviceID, 10)}, nil
}

// SetQuantity posts one ContractServiceAdjustment with unitChange = wanted −
// current (current from req.Current, 0 without a line) effective on the
// calendar date of req.EffectiveDate. The adjustment names the line read
// (contractServiceID, req.Current.LineID) as well as the service, so that
// Autotask never picks another line of the service. Without a line, the
// adjustment creates the ContractService at the service's catalog unit
// price, once a query shows that the contract does not hold the service:
// when it does, the caller's read missed the line's unit row, and the
// request is refused (a validation error naming the contract service)
// rather than the whole quantity added to the line's units. Nothing is sent when the quantity is already right, nor when
// req.Current is Posted: a change into an invoiced period is refused (a
// validation error) rather than made, since Autotask cannot reverse it.
//
// An adjustment is never re-sent. When its outcome is unknown, SetQuantity
// re-reads the units at the effective date: a unit row with the wanted
// quantity means it was applied; anything else (the old quantity, which a
// read lagging the write shows too, no unit row, other units), or a failed
// read, gives an error matching psa.ErrOutcomeUnknown.
func (b *Backend) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	contractID, err := parseID("contract", req.ContractID)
	if err != nil {
		return nil, err
	}
	serviceID, err := parseID("service", req.ServiceID)
	if err != nil {
		return nil, err
	}
	if req.Quantity < 0 {
		return nil, validationError(fmt.Sprintf("quantity must not be negative, got %d", req.Quantity))
	}
	if req.EffectiveDate.IsZero() {
		return nil, validationError("effective date is required")
	}
	var current int64
	if req.Current != nil {
		current = req.Current.Quantity
	}
	if req.Quantity == current {
		if req.Current != nil {
			l := *req.Current
			return &l, nil
		}
		return &psa.ContractLine{ContractID: req.ContractID, ServiceID: req.ServiceID}, nil
	}
	day := dateOf(req.EffectiveDate)
	adj := &CreateContractServiceAdjustmentRequest{
		ContractID:    contractID,
		ServiceID:     serviceID,
		UnitChange:    req.Quantity - current,
		EffectiveDate: Timestamp{day},
	}
	if req.Current != nil && req.Current.LineID != "" {
		line, err := parseID("contract service", req.Current.LineID)
		if err != nil {
			return nil, err
		}
		adj.ContractServiceID = line
	}
	if req.Current != nil && req.Current.Posted {
		return nil, validationError(fmt.Sprintf("contract %d service %d: the billing period of %s (%s) is already approved and posted (invoiced), and an adjustment into it cannot be reversed; date the change in a period not yet posted",
			contractID, serviceID, day.Format(time.DateOnly), periodText(req.Current.PeriodStart, req.Current.PeriodEnd)))
	}
	if req.Current == nil {
		// The adjustment creates the ContractService, but only on a
		// contract without the service: a line the caller's read did not
		// show (an answer that lost its rows, unit rows that do not reach
		// the period) would get the whole quantity added to its units.
		q := NewQuery(Eq("contractID", contractID), Eq("serviceID", serviceID))
		q.IncludeFields = []string{"id"}
		held, _, err := b.client.ContractServices.List(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("autotask: checking that contract %d does not hold service %d yet: %w", contractID, serviceID, err)
		}
		if len(held) > 0 {
			return nil, validationError(fmt.Sprintf("contract %d already holds service %d (contract service %d), but no unit row of it was read for %s: nothing was posted, since an adjustment of the whole %d units would add to the units it has; check that the line's unit rows reach that date",
				contractID, serviceID, held[0].ID, day.Format(time.DateOnly), req.Quantity))
		}
		// Give the new ContractService the catalog price.
		price, err := b.servicePrice(ctx, serviceID)
		if err != nil {
			return nil, fmt.Errorf("autotask: reading the unit price of service %d: %w", serviceID, err)
		}
		adj.AdjustedUnitPrice = Ptr(price)
	}
	what := fmt.Sprintf("adjusting contract %d service %d from %d to %d units on %s", contractID, serviceID, current, req.Quantity, day.Format(time.DateOnly))
	if _, _, err := b.client.ContractServiceAdjustments.Create(ctx, adj); err != nil {
		if !errors.Is(err, psa.ErrOutcomeUnknown) {
			return nil, fmt.Errorf("autotask: %s: %w", what, err)
		}
		return b.reconcile(ctx, what, contractID, serviceID, adj.ContractServiceID, day, current, req.Quantity, err)
	}
	// Autotask answered with the adjustment's id, so it was applied. The
	// line is computed rather than re-read: a confirmation read per write
	// would spend a third of the hourly budget of a pass that adds lines.
	line := &psa.ContractLine{ContractID: req.ContractID, ServiceID: req.ServiceID, Quantity: req.Quantity}
	if req.Current != nil {
		line.LineID, line.UnitPrice = req.Current.LineID, req.Current.UnitPrice
		line.PeriodStart, line.PeriodEnd = req.Current.PeriodStart, req.Current.PeriodEnd
	} else {
		line.UnitPrice = *adj.AdjustedUnitPrice
	}
	return line, nil
}

// reconcile finds out by reading whether an adjustment whose response was
// lost was applied. Only the wanted units prove it was: units still at
// their old value right after the lost answer may be a read that lags the
// write (tickets.md §5.2 advises probing again, later, before concluding),
// so the outcome stays unknown, and the caller (the daemon keeps the
// intent open) re-reads the line before it is written again.
func (b *Backend) reconcile(ctx context.Context, what string, contractID, serviceID, lineID int64, day time.Time, current, wanted int64, postErr error) (*psa.ContractLine, error) {
	line, err := b.readLine(ctx, contractID, serviceID, lineID, day)
	switch {
	case err != nil:
		return nil, fmt.Errorf("autotask: %s: %w; re-reading the line to find out failed: %v", what, postErr, err)
	case line.LineID == "":
		// No unit row reads as 0 units, but proves no write to 0:
		// Autotask keeps a line set to 0, so the read did not show the
		// line (not yet, or not to this API user).
		return nil, fmt.Errorf("autotask: %s: the re-read right after the lost answer shows no unit row of the line, which proves nothing "+
			"(Autotask keeps a line set to 0); re-read the line before adjusting it again: %w", what, postErr)
	case line.Quantity == wanted:
		b.client.logger.Info("Autotask adjustment was applied although its response was lost", "contract", contractID, "service", serviceID, "units", wanted)
		return line, nil
	case line.Quantity == current:
		return nil, fmt.Errorf("autotask: %s: units still %d right after the lost answer, which does not rule out an adjustment the read does not show yet; re-read the line before adjusting it again: %w", what, current, postErr)
	default:
		return nil, fmt.Errorf("autotask: %s: units are now %d, neither the %d before nor the %d wanted (%v): %w", what, line.Quantity, current, wanted, postErr, psa.ErrOutcomeUnknown)
	}
}

// periodText spells a unit row's dates: "2026-10-01 to 2026-10-31".
func periodText(start, end time.Time) string {
	switch {
	case start.IsZero():
		return "dates unknown"
	case end.IsZero():
		return "from " + start.Format(time.DateOnly)
	}
	return start.Format(time.DateOnly) + " to " + end.Format(time.DateOnly)
}

// periodType resolves the Services.periodType picklist value for s.
func (b *Backend) periodType(ctx context.Context, s *psa.Service) (int64, error) {
	if s.Autotask != nil && s.Autotask.PeriodType != "" {
		return b.client.EntityInformation.PicklistValue(ctx, "Services", "periodType", s.Autotask.PeriodType)
	}
	if s.BillingPeriod == "" {
		return 0, validationError("service billing period is required")
	}
	want, ok := periodLabels[s.BillingPeriod]
	if !ok {
		return 0, validationError(fmt.Sprintf("unknown billing period %q", s.BillingPeriod))
	}
	values, err := b.client.EntityInformation.Picklist(ctx, "Services", "periodType")
	if err != nil {
		return 0, err
	}
	for _, label := range want {
		for _, v := range values {
			if v.IsActive && normLabel(v.Label) == label {
				return v.Int()
			}
		}
	}
	labels := make([]string, 0, len(values))
	for _, v := range values {
		labels = append(labels, strconv.Quote(v.Label))
	}
	return 0, validationError(fmt.Sprintf("no Services.periodType picklist value matches billing period %q (labels: %s); name the label in the Autotask period type", s.BillingPeriod, strings.Join(labels, ", ")))
}

// billingPeriod maps a periodType value to a neutral period and its label.
func (b *Backend) billingPeriod(ctx context.Context, periodType int64) (psa.BillingPeriod, string, error) {
	values, err := b.client.EntityInformation.Picklist(ctx, "Services", "periodType")
	if err != nil {
		return "", "", err
	}
	for _, v := range values {
		if n, err := v.Int(); err != nil || n != periodType {
			continue
		}
		folded := normLabel(v.Label)
		for _, p := range psa.BillingPeriods {
			if slices.Contains(periodLabels[p], folded) {
				return p, v.Label, nil
			}
		}
		return "", v.Label, nil
	}
	return "", "", nil
}

// billingCode returns s's billing code, or the tenant's only active billing
// code for recurring contract services, looked up once per priceTTL.
func (b *Backend) billingCode(ctx context.Context, s *psa.Service) (int64, error) {
	if s.Autotask != nil && s.Autotask.BillingCodeID != "" {
		return parseID("billing code", s.Autotask.BillingCodeID)
	}
	b.codeMu.Lock()
	defer b.codeMu.Unlock()
	if b.defaultCode != 0 && b.now().Sub(b.defaultAt) < priceTTL {
		return b.defaultCode, nil
	}
	q := NewQuery(Eq("isActive", true))
	kind := "active billing codes"
	if v, err := b.client.EntityInformation.PicklistValue(ctx, "BillingCodes", "useType", labelRecurringContractService); err == nil {
		q.Filter = append(q.Filter, Eq("useType", v))
		kind = "active billing codes of use type " + strconv.Quote(labelRecurringContractService)
	} else if !errors.As(err, new(*PicklistError)) {
		return 0, err // a failed request, not a tenant without the picklist
	}
	codes, _, err := b.client.BillingCodes.List(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("autotask: looking up the billing code for a new service: %w", err)
	}
	if len(codes) == 1 {
		b.defaultCode, b.defaultAt = codes[0].ID, b.now()
		return codes[0].ID, nil
	}
	names := make([]string, 0, len(codes))
	for i, c := range codes {
		if i == 10 {
			names = append(names, "...")
			break
		}
		names = append(names, fmt.Sprintf("%s (id %d)", c.Name, c.ID))
	}
	msg := fmt.Sprintf("a billing code is required: the tenant has %d %s", len(codes), kind)
	if len(names) > 0 {
		msg += ": " + strings.Join(names, ", ")
	}
	return 0, validationError(msg + "; set the Autotask billing code id of the service")
}

var _ psa.ServiceFieldChecker = (*Backend)(nil)

// CheckServiceFields reports, before anything is written, whether a create
// (s.ID empty) or an update of s would be refused for what the tenant's
// metadata and billing codes tell: a name, description or invoice
// description longer than its Services field holds, a billing period or
// period type label the periodType picklist lacks, a
// billing code that does not exist, is inactive or is not of use type
// "Recurring Contract Service", or, for a create naming none, a tenant
// without exactly one default; and whether another service, active or
// not, has s's name, which Autotask's unique key on the name refuses. It
// returns nil, a *psa.ValidationError whose Field names the refused
// attribute ("name", "description", "invoice_description",
// "billing_period", "period_type", "billing_code_id";
// Holder the other service's id), or the error of a read that failed.
// The metadata, the billing codes and the services' names are read once
// for many services (within priceTTL), so services created after that
// read are not seen.
func (b *Backend) CheckServiceFields(ctx context.Context, s *psa.Service) error {
	fields, _, err := b.client.EntityInformation.Fields(ctx, "Services")
	if err != nil {
		return err
	}
	// Autotask refuses a create or update whose text exceeds a field's
	// length (in UTF-16 code units, psa.TextLength), so each text the
	// provider sends is checked here.
	texts := []struct{ field, attr, what, value string }{
		{"name", "name", "service name", s.Name},
		{"description", "description", "description", s.Description},
		{"invoiceDescription", "invoice_description", "invoice description", s.InvoiceDescription},
	}
	for _, t := range texts {
		for _, f := range fields {
			if n := psa.TextLength(t.value); strings.EqualFold(f.Name, t.field) && f.Length > 0 && n > f.Length {
				return fieldError(t.attr, fmt.Sprintf("the %s is %d characters long as Autotask counts them (an emoji counts two); Autotask holds at most %d",
					t.what, n, f.Length))
			}
		}
	}
	names, err := b.serviceNames(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strconv.FormatInt(n.ID, 10) != s.ID && strings.EqualFold(strings.TrimSpace(n.Name), strings.TrimSpace(s.Name)) {
			state := ""
			if !n.IsActive {
				state = " (inactive)"
			}
			return &psa.ValidationError{System: psa.SystemAutotask, Field: "name", Holder: strconv.FormatInt(n.ID, 10), Messages: []string{fmt.Sprintf(
				"service %d%s is already named %q, and Autotask keeps service names unique; choose another name, or import service %d",
				n.ID, state, n.Name, n.ID)}}
		}
	}
	if _, err := b.periodType(ctx, s); err != nil {
		field := "billing_period"
		if s.Autotask != nil && s.Autotask.PeriodType != "" {
			field = "period_type"
		}
		return asFieldError(field, err)
	}
	if s.Autotask == nil || s.Autotask.BillingCodeID == "" {
		if s.ID != "" {
			return nil // an update sends no billing code
		}
		_, err := b.billingCode(ctx, s)
		return asFieldError("billing_code_id", err)
	}
	id, err := parseID("billing code", s.Autotask.BillingCodeID)
	if err != nil {
		return asFieldError("billing_code_id", err)
	}
	codes, err := b.billingCodes(ctx)
	if err != nil {
		return err
	}
	c, ok := codes[id]
	switch {
	case !ok:
		return fieldError("billing_code_id", fmt.Sprintf("no billing (allocation) code has id %d", id))
	case !c.IsActive:
		return fieldError("billing_code_id", fmt.Sprintf("billing code %d (%s) is inactive", id, c.Name))
	}
	recurring, err := b.client.EntityInformation.PicklistValue(ctx, "BillingCodes", "useType", labelRecurringContractService)
	if err == nil && c.UseType != recurring {
		useType, _ := b.client.EntityInformation.PicklistLabel(ctx, "BillingCodes", "useType", c.UseType)
		return fieldError("billing_code_id", fmt.Sprintf("billing code %d (%s) is of use type %q; a service needs one of use type %q",
			id, c.Name, useType, labelRecurringContractService))
	}
	if err != nil && !errors.As(err, new(*PicklistError)) {
		return err
	}
	return nil
}

// billingCodes returns every billing code by id, read once per priceTTL.
func (b *Backend) billingCodes(ctx context.Context) (map[int64]*BillingCode, error) {
	b.codeMu.Lock()
	defer b.codeMu.Unlock()
	if b.codes != nil && b.now().Sub(b.codesAt) < priceTTL {
		return b.codes, nil
	}
	list, _, err := b.client.BillingCodes.List(ctx, NewQuery(All()))
	if err != nil {
		return nil, fmt.Errorf("autotask: reading the billing codes: %w", err)
	}
	b.codes, b.codesAt = make(map[int64]*BillingCode, len(list)), b.now()
	for _, c := range list {
		b.codes[c.ID] = c
	}
	return b.codes, nil
}

// serviceNames returns the id, name and state of every service, read once
// per priceTTL.
func (b *Backend) serviceNames(ctx context.Context) ([]*Service, error) {
	b.codeMu.Lock()
	defer b.codeMu.Unlock()
	if !b.namesAt.IsZero() && b.now().Sub(b.namesAt) < priceTTL {
		return b.names, nil
	}
	q := NewQuery(All())
	q.IncludeFields = []string{"id", "name", "isActive"}
	list, _, err := b.client.Services.List(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("autotask: reading the services' names: %w", err)
	}
	b.names, b.namesAt = list, b.now()
	return b.names, nil
}

func (b *Backend) toService(ctx context.Context, svc *Service) (*psa.Service, error) {
	period, label, err := b.billingPeriod(ctx, svc.PeriodType)
	if err != nil {
		return nil, err
	}
	return &psa.Service{
		ID:                 strconv.FormatInt(svc.ID, 10),
		Name:               svc.Name,
		Description:        svc.Description,
		InvoiceDescription: svc.InvoiceDescription,
		UnitPrice:          svc.UnitPrice,
		UnitCost:           svc.UnitCost,
		BillingPeriod:      period,
		Active:             svc.IsActive,
		Autotask: &psa.AutotaskServiceFields{
			BillingCodeID: strconv.FormatInt(svc.BillingCodeID, 10),
			PeriodType:    label,
		},
	}, nil
}

func toCompany(c *Company) *psa.Company {
	return &psa.Company{ID: strconv.FormatInt(c.ID, 10), Name: c.CompanyName, Active: c.IsActive}
}

func (b *Backend) toContract(ctx context.Context, c *Contract) (*psa.Contract, error) {
	typ, err := b.label(ctx, "Contracts", "contractType", c.ContractType)
	if err != nil {
		return nil, err
	}
	status, err := b.label(ctx, "Contracts", "status", c.Status)
	if err != nil {
		return nil, err
	}
	return &psa.Contract{
		ID:        strconv.FormatInt(c.ID, 10),
		CompanyID: strconv.FormatInt(c.CompanyID, 10),
		Name:      c.ContractName,
		Type:      typ,
		Status:    status,
		Active:    normLabel(status) == normLabel(labelActive),
		Recurring: normLabel(typ) == normLabel(labelRecurringService),
		StartDate: c.StartDate.Time,
		EndDate:   c.EndDate.Time,
	}, nil
}

// label returns the label of a picklist value; an unknown value (a picklist
// changed since) is shown as its number rather than failing the read.
func (b *Backend) label(ctx context.Context, entity, field string, value int64) (string, error) {
	values, err := b.client.EntityInformation.Picklist(ctx, entity, field)
	if err != nil {
		return "", err
	}
	for _, v := range values {
		if n, err := v.Int(); err == nil && n == value {
			return v.Label, nil
		}
	}
	return strconv.FormatInt(value, 10), nil
}

// parseID parses an Autotask id given as a string.
func parseID(kind, s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, validationError(fmt.Sprintf("invalid %s id %q: Autotask ids are non-negative integers", kind, s))
	}
	return n, nil
}

func validationError(msg string) error {
	return &psa.ValidationError{System: psa.SystemAutotask, Messages: []string{msg}}
}

// fieldError is a validationError about one attribute of a service.
func fieldError(field, msg string) error {
	return &psa.ValidationError{System: psa.SystemAutotask, Messages: []string{msg}, Field: field}
}

// asFieldError makes a validation or picklist error of err a fieldError
// about field; other errors (failed reads) are returned as they are.
func asFieldError(field string, err error) error {
	var ve *psa.ValidationError
	var pe *PicklistError
	switch {
	case errors.As(err, &ve):
		return fieldError(field, strings.Join(ve.Messages, "; "))
	case errors.As(err, &pe):
		return fieldError(field, strings.TrimPrefix(pe.Error(), "autotask: "))
	}
	return err
}

// dateOf returns the calendar date of t (in t's location) as midnight UTC:
// Autotask dates are calendar dates written in UTC.
func dateOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
