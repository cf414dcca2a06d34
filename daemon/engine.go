package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Change actions.
const (
	// ActionUpdate means the line is (or, in a plan, would be) set to Desired.
	ActionUpdate = "update"
	// ActionUnchanged means the line already has the desired quantity.
	ActionUnchanged = "unchanged"
	// ActionHeld means the decrease guard holds the change for review.
	ActionHeld = "held"
	// ActionSkipped means the pass stopped writing before the line (the
	// PSA's hourly budget reached the reserve, or the pass was cancelled).
	ActionSkipped = "skipped"
	// ActionFailed means the line could not be read or written; Reason says
	// why.
	ActionFailed = "failed"
)

// Pass triggers (PassOptions.Trigger).
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
	TriggerAPI      = "api"
	TriggerCLI      = "cli"
)

// requestsPerWrite is how many PSA requests one write may cost in the worst
// case (an Autotask adjustment plus the re-read after a lost answer). The
// budget check uses it to estimate the budget between two checks.
const requestsPerWrite = 2

// budgetCheckEvery is how many writes may pass between two budget checks.
// Checking costs a request itself, so it is not done before every write.
const budgetCheckEvery = 20

// EngineOptions configure an Engine.
type EngineOptions struct {
	// Backend is the PSA. Required.
	Backend psa.Backend
	// Source is the usage source. Required by Plan and Sync, not by
	// Reconcile.
	Source source.Source
	// State records runs, customer statuses, intents and the ledger.
	// Required by Sync and Reconcile, not by Plan.
	State *state.DB
	// Policies; empty strings and a zero WriteConcurrency take the values
	// of DefaultPolicies (Load already fills them in).
	Policies Policies
	// Metrics may be nil.
	Metrics *Metrics
	// Logger may be nil (discard).
	Logger *slog.Logger
	// Location is the time zone of billing months; nil means UTC.
	Location *time.Location
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Engine runs sync passes: it turns a mapping export and a source's usage
// into contract quantities in the PSA. An Engine is safe for concurrent
// use; Sync and Reconcile calls are serialised, Plan runs alongside them.
type Engine struct {
	be       psa.Backend
	src      source.Source
	db       *state.DB
	policies Policies
	metrics  *Metrics
	logger   *slog.Logger
	loc      *time.Location
	now      func() time.Time

	mu sync.Mutex // serialises Sync and Reconcile
}

// NewEngine returns an Engine for o.
func NewEngine(o EngineOptions) *Engine {
	e := &Engine{
		be:       o.Backend,
		src:      o.Source,
		db:       o.State,
		policies: o.Policies,
		metrics:  o.Metrics,
		logger:   o.Logger,
		loc:      o.Location,
		now:      o.Now,
	}
	if e.policies.EffectiveDate == "" {
		e.policies.EffectiveDate = DefaultPolicies.EffectiveDate
	}
	if e.policies.MissingUsage == "" {
		e.policies.MissingUsage = DefaultPolicies.MissingUsage
	}
	if e.policies.WriteConcurrency < 1 {
		e.policies.WriteConcurrency = DefaultPolicies.WriteConcurrency
	}
	if e.logger == nil {
		e.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.loc == nil {
		e.loc = time.UTC
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e
}

// PassOptions change what one pass does.
type PassOptions struct {
	// DryRun computes and reports, writes nothing to the PSA, and records
	// the run as a dry run without touching customer statuses.
	DryRun bool
	// Approve applies the decreases the guard would hold.
	Approve bool
	// Customer limits the pass to one source customer id ("" = all).
	Customer string
	// Trigger says who started the pass: schedule, manual, api or cli.
	Trigger string
	// WritesDisabled is set when the export switches the integration off:
	// the pass runs like DryRun and is reported as "integration disabled".
	WritesDisabled bool
}

// Change is one contract line in a pass: its current and desired quantity
// and what the pass does (or, in a plan, would do) about it.
type Change struct {
	Source       string `json:"source"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	CompanyID    string `json:"company_id"`
	ContractID   string `json:"contract_id"`
	ServiceID    string `json:"service_id"`
	ServiceName  string `json:"service_name,omitempty"`
	// Products are the source products whose usage adds up to Desired.
	Products []string `json:"products"`
	Current  int64    `json:"current"`
	// CurrentKnown is false when the contract has no line for the service
	// yet (Current is then 0) or it could not be read.
	CurrentKnown  bool      `json:"current_known"`
	Desired       int64     `json:"desired"`
	EffectiveDate time.Time `json:"effective_date"`
	// Action is update, unchanged, held, skipped or failed.
	Action string `json:"action"`
	// Reason explains the action, e.g. "usage 42 (CIXA-MSP 40 + CIXA-SRV 2)".
	Reason string `json:"reason"`
}

// UnmappedCustomer is a source customer with usage but no customer mapping.
type UnmappedCustomer struct {
	CustomerID   string   `json:"customer_id"`
	CustomerName string   `json:"customer_name,omitempty"`
	Products     []string `json:"products"`
	Quantity     int64    `json:"quantity"`
}

// UnmappedProduct is a source product with usage but no product mapping
// (or, in Unmapped.SyncOff, a mapping with sync_enabled = false).
type UnmappedProduct struct {
	Product     string `json:"product"`
	ProductName string `json:"product_name,omitempty"`
	// Customers is how many customers used the product.
	Customers int   `json:"customers"`
	Quantity  int64 `json:"quantity"`
}

// Unmapped is the usage a pass cannot bill. None of it is written anywhere.
type Unmapped struct {
	// Customers used products but have no customer mapping.
	Customers []UnmappedCustomer `json:"customers"`
	// Products were used but have no product mapping.
	Products []UnmappedProduct `json:"products"`
	// Unassigned is usage that belongs to no customer, summed per product.
	Unassigned []source.Record `json:"unassigned"`
	// SyncOff lists used products whose mapping has sync_enabled = false.
	// They are mapped on purpose, so they do not count as unmapped.
	SyncOff []UnmappedProduct `json:"sync_off,omitempty"`
}

// Failure is a customer that a pass could not handle as a whole (its
// contract could not be read, or is mapped twice).
type Failure struct {
	Source       string `json:"source"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	ContractID   string `json:"contract_id"`
	Error        string `json:"error"`
	Hint         string `json:"hint,omitempty"`
}

// Plan is what a pass computes before writing.
type Plan struct {
	// Period is the billing month whose usage is synced: the month that
	// contains the pass's time in the engine's Location.
	Period source.Period `json:"period"`
	// EffectiveDate is the date changes take effect, from the policy.
	EffectiveDate time.Time `json:"effective_date"`
	// Changes lists every mapped line with usage or an existing line,
	// sorted by customer and service.
	Changes  []Change         `json:"changes"`
	Unmapped Unmapped         `json:"unmapped"`
	Problems []source.Problem `json:"problems,omitempty"`
	// Failures lists customers that failed as a whole.
	Failures []Failure `json:"failures,omitempty"`
	// Customers is the number of customers in the pass.
	Customers int `json:"customers"`
}

// Result is the outcome of Sync.
type Result struct {
	Run  state.Run `json:"run"`
	Plan *Plan     `json:"plan"`
	// Customers holds the status of every customer in the pass (stored,
	// unless the pass was a dry run).
	Customers []state.CustomerStatus `json:"customers"`
}

// customerPass is the working state of one customer in a pass.
type customerPass struct {
	m       export.CustomerMapping
	changes []*Change
	err     error
	hint    string
}

// pass is the working state of one pass.
type pass struct {
	plan      *Plan
	customers []*customerPass
	lines     map[psa.LineKey]psa.ContractLine
}

// Plan computes the changes a pass would make now, reading the source and
// the PSA but writing nothing and changing no state.
func (e *Engine) Plan(ctx context.Context, doc *export.Document, o PassOptions) (*Plan, error) {
	p, err := e.plan(ctx, doc, o)
	if err != nil {
		return nil, err
	}
	return p.plan, nil
}

func (e *Engine) plan(ctx context.Context, doc *export.Document, o PassOptions) (*pass, error) {
	if doc == nil {
		return nil, errors.New("daemon: no mapping export")
	}
	if e.src == nil {
		return nil, errors.New("daemon: no usage source configured")
	}
	if sys := e.be.System(); doc.PSA.System != sys {
		return nil, fmt.Errorf("daemon: the mapping export is for PSA system %q, not %q", doc.PSA.System, sys)
	}
	srcName := e.src.Name()
	now := e.now().In(e.loc)
	period := source.PeriodOf(now)
	p := &pass{plan: &Plan{
		Period:        period,
		EffectiveDate: e.effectiveDate(now),
		Changes:       []Change{},
		Unmapped:      Unmapped{Customers: []UnmappedCustomer{}, Products: []UnmappedProduct{}, Unassigned: []source.Record{}},
	}}

	// Select the customers first: a pass for a customer that cannot be
	// synced is a mistake worth an error before any request is made.
	var mappings []export.CustomerMapping
	for _, cm := range doc.CustomerMappings {
		if cm.Source != srcName || !cm.UsageSync {
			continue
		}
		if o.Customer != "" && cm.CustomerID != o.Customer {
			continue
		}
		mappings = append(mappings, cm)
	}
	if o.Customer != "" && len(mappings) == 0 {
		if cm, ok := doc.Customer(srcName, o.Customer); ok && !cm.UsageSync {
			return nil, fmt.Errorf("daemon: customer %s/%s has usage_sync off", srcName, o.Customer)
		}
		return nil, fmt.Errorf("daemon: no customer mapping for %s/%s in the mapping export", srcName, o.Customer)
	}

	rep, err := e.src.Fetch(ctx, period)
	if err != nil {
		return nil, fmt.Errorf("daemon: fetching usage for %s from %s: %w", period, srcName, err)
	}
	p.plan.Problems = append(p.plan.Problems, rep.Problems...)
	missing := e.policies.MissingUsage
	if len(rep.Records) == 0 && missing == MissingUsageZero {
		// An empty report usually means the vendor has no data for the
		// month yet, not that every customer stopped using everything.
		missing = MissingUsageKeep
		p.plan.Problems = append(p.plan.Problems, source.Problem{Where: srcName,
			Err: fmt.Errorf("no usage at all for %s: lines without usage are left as they are this pass", period)})
	}

	// Index the export.
	products := map[string]export.ProductMapping{}
	services := map[string][]string{} // service id -> products with sync on
	serviceNames := map[string]string{}
	for _, pm := range doc.ProductMappings {
		if pm.Source != srcName {
			continue
		}
		products[pm.Product] = pm
		if !pm.SyncEnabled {
			continue
		}
		services[pm.ServiceID] = append(services[pm.ServiceID], pm.Product)
		if serviceNames[pm.ServiceID] == "" {
			serviceNames[pm.ServiceID] = pm.ServiceName
		}
	}
	serviceIDs := make([]string, 0, len(services))
	for id, ps := range services {
		slices.Sort(ps)
		serviceIDs = append(serviceIDs, id)
	}
	slices.SortFunc(serviceIDs, compareIDs)

	usage := map[string]map[string]source.Record{} // customer -> product -> summed record
	e.classify(doc, srcName, source.Sum(rep.Records), products, usage, &p.plan.Unmapped)

	// Two customers on one contract would fight over its lines; the
	// provider refuses this at plan time, the engine refuses to guess.
	owners := map[string][]string{}
	for _, cm := range doc.CustomerMappings {
		if cm.Source == srcName && cm.UsageSync {
			owners[cm.ContractID] = append(owners[cm.ContractID], cm.CustomerID)
		}
	}

	var contracts []string
	seen := map[string]bool{}
	for _, cm := range mappings {
		cp := &customerPass{m: cm}
		p.customers = append(p.customers, cp)
		if o := owners[cm.ContractID]; len(o) > 1 {
			cp.err = fmt.Errorf("contract %s is mapped to %d customers (%s)", cm.ContractID, len(o), strings.Join(o, ", "))
			cp.hint = "each customer needs its own contract: fix the customer mappings and re-run terraform apply"
			continue
		}
		if !seen[cm.ContractID] {
			seen[cm.ContractID] = true
			contracts = append(contracts, cm.ContractID)
		}
	}
	p.plan.Customers = len(p.customers)

	lines, readErrs := e.readContracts(ctx, contracts, p.plan.EffectiveDate)
	p.lines = lines
	hasLines := map[string]bool{}
	for k := range lines {
		hasLines[k.ContractID] = true
	}

	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		cm := cp.m
		if err := readErrs[cm.ContractID]; err != nil {
			cp.err = fmt.Errorf("reading contract %s: %w", cm.ContractID, err)
			cp.hint = e.hint(err, cm, "")
			continue
		}
		for _, sid := range serviceIDs {
			c := e.decide(cm, sid, serviceNames[sid], services[sid], usage[cm.CustomerID], lines, missing, o.Approve, p.plan.EffectiveDate)
			if c != nil {
				cp.changes = append(cp.changes, c)
			}
		}
		// A contract without a single line may not exist at all: ReadLines
		// cannot tell an unknown contract from an empty one. Check it once
		// before anything would be written to it.
		if !hasLines[cm.ContractID] && slices.ContainsFunc(cp.changes, func(c *Change) bool { return c.Action == ActionUpdate }) {
			if err := e.checkContract(ctx, cm); err != nil {
				cp.err = err
				cp.hint = e.hint(err, cm, "")
			}
		}
	}

	for _, cp := range p.customers {
		if cp.err != nil {
			for _, c := range cp.changes {
				c.Action, c.Reason = ActionFailed, cp.err.Error()
			}
			p.plan.Failures = append(p.plan.Failures, Failure{Source: srcName, CustomerID: cp.m.CustomerID,
				CustomerName: cp.m.CustomerName, ContractID: cp.m.ContractID, Error: cp.err.Error(), Hint: cp.hint})
		}
	}
	slices.SortFunc(p.customers, func(a, b *customerPass) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.m.CustomerName), strings.ToLower(b.m.CustomerName)),
			strings.Compare(a.m.CustomerID, b.m.CustomerID))
	})
	p.flatten()
	return p, nil
}

// classify sorts summed usage into billable usage per customer and the
// unmapped lists.
func (e *Engine) classify(doc *export.Document, srcName string, sums []source.Record, products map[string]export.ProductMapping,
	usage map[string]map[string]source.Record, u *Unmapped) {
	unmappedCustomers := map[string]*UnmappedCustomer{}
	unmappedProducts := map[string]*UnmappedProduct{}
	syncOff := map[string]*UnmappedProduct{}
	addProduct := func(set map[string]*UnmappedProduct, r source.Record) {
		up := set[r.Product]
		if up == nil {
			up = &UnmappedProduct{Product: r.Product}
			set[r.Product] = up
		}
		if up.ProductName == "" {
			up.ProductName = r.ProductName
		}
		up.Customers++
		up.Quantity += r.Quantity
	}
	for _, r := range sums {
		if r.Unassigned() {
			u.Unassigned = append(u.Unassigned, r)
			continue
		}
		if _, ok := doc.Customer(srcName, r.CustomerID); !ok {
			uc := unmappedCustomers[r.CustomerID]
			if uc == nil {
				uc = &UnmappedCustomer{CustomerID: r.CustomerID}
				unmappedCustomers[r.CustomerID] = uc
			}
			if uc.CustomerName == "" {
				uc.CustomerName = r.CustomerName
			}
			uc.Products = append(uc.Products, r.Product)
			uc.Quantity += r.Quantity
		}
		switch pm, ok := products[r.Product]; {
		case !ok:
			addProduct(unmappedProducts, r)
		case !pm.SyncEnabled:
			addProduct(syncOff, r)
		}
		if usage[r.CustomerID] == nil {
			usage[r.CustomerID] = map[string]source.Record{}
		}
		usage[r.CustomerID][r.Product] = r
	}
	for _, uc := range unmappedCustomers {
		u.Customers = append(u.Customers, *uc)
	}
	slices.SortFunc(u.Customers, func(a, b UnmappedCustomer) int { return strings.Compare(a.CustomerID, b.CustomerID) })
	sortProducts := func(set map[string]*UnmappedProduct) []UnmappedProduct {
		out := make([]UnmappedProduct, 0, len(set))
		for _, up := range set {
			out = append(out, *up)
		}
		slices.SortFunc(out, func(a, b UnmappedProduct) int { return strings.Compare(a.Product, b.Product) })
		return out
	}
	u.Products = sortProducts(unmappedProducts)
	if len(syncOff) > 0 {
		u.SyncOff = sortProducts(syncOff)
	}
}

// decide computes the change for one mapped service of one customer, or nil
// when there is nothing to report (no usage and no line).
func (e *Engine) decide(cm export.CustomerMapping, serviceID, serviceName string, products []string, usage map[string]source.Record,
	lines map[psa.LineKey]psa.ContractLine, missing string, approve bool, eff time.Time) *Change {
	line, lineOK := lines[psa.LineKey{ContractID: cm.ContractID, ServiceID: serviceID}]
	c := &Change{
		Source:        cm.Source,
		CustomerID:    cm.CustomerID,
		CustomerName:  cm.CustomerName,
		CompanyID:     cm.CompanyID,
		ContractID:    cm.ContractID,
		ServiceID:     serviceID,
		ServiceName:   serviceName,
		Products:      products,
		Current:       line.Quantity,
		CurrentKnown:  lineOK,
		EffectiveDate: eff,
	}
	var parts []string
	used := false
	for _, prod := range products {
		r, ok := usage[prod]
		if !ok {
			continue
		}
		used = true
		c.Desired += r.Quantity
		parts = append(parts, fmt.Sprintf("%s %d", prod, r.Quantity))
	}
	switch {
	case used:
		c.Reason = fmt.Sprintf("usage %d (%s)", c.Desired, strings.Join(parts, " + "))
	case !lineOK:
		return nil
	case missing == MissingUsageKeep:
		c.Desired = c.Current
		c.Action = ActionUnchanged
		c.Reason = "no usage this period; left as it is (missing_usage: keep)"
		return c
	default:
		c.Reason = "no usage this period (missing_usage: zero)"
	}

	switch {
	case c.Desired == c.Current:
		c.Action = ActionUnchanged
		if !lineOK {
			c.Reason += "; no line on the contract"
		}
	case c.Desired < c.Current && e.policies.MaxDecreasePercent > 0 &&
		float64(c.Current-c.Desired)*100/float64(c.Current) > e.policies.MaxDecreasePercent:
		pct := float64(c.Current-c.Desired) * 100 / float64(c.Current)
		if approve {
			c.Action = ActionUpdate
			c.Reason += fmt.Sprintf("; decrease of %.0f%% approved", pct)
		} else {
			c.Action = ActionHeld
			c.Reason += fmt.Sprintf("; decrease of %.0f%% (from %d to %d) held for review: more than max_decrease_percent %g; apply with sync --approve",
				pct, c.Current, c.Desired, e.policies.MaxDecreasePercent)
		}
	default:
		c.Action = ActionUpdate
	}
	return c
}

// effectiveDate returns the date changes take effect per the policy, as a
// UTC date (midnight), which is how PSAs take dates.
func (e *Engine) effectiveDate(now time.Time) time.Time {
	switch e.policies.EffectiveDate {
	case EffectiveToday:
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	case EffectiveNextPeriodStart:
		return time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
}

// readContracts reads the lines of every contract in bulk. When the bulk read
// fails for a reason that one bad contract id can cause (not found,
// refused), it splits the set in halves to find the culprits, so that one
// customer's bad contract fails only that customer. Errors that concern the
// whole PSA (rate limits, credentials, outages, cancellation) fail every
// contract at once instead of multiplying requests.
func (e *Engine) readContracts(ctx context.Context, ids []string, asOf time.Time) (map[psa.LineKey]psa.ContractLine, map[string]error) {
	lines := map[psa.LineKey]psa.ContractLine{}
	errs := map[string]error{}
	var read func(ids []string)
	read = func(ids []string) {
		if len(ids) == 0 {
			return
		}
		got, err := e.be.ReadLines(ctx, ids, asOf)
		if err == nil {
			for _, l := range got {
				lines[l.Key()] = l
			}
			return
		}
		if len(ids) > 1 && isolatable(err) && ctx.Err() == nil {
			read(ids[:len(ids)/2])
			read(ids[len(ids)/2:])
			return
		}
		for _, id := range ids {
			errs[id] = err
		}
	}
	read(ids)
	return lines, errs
}

func isolatable(err error) bool {
	return errors.Is(err, psa.ErrNotFound) || errors.Is(err, psa.ErrValidation) || errors.Is(err, psa.ErrConflict)
}

// checkContract verifies that a contract exists and can take usage.
func (e *Engine) checkContract(ctx context.Context, cm export.CustomerMapping) error {
	sys := e.be.System()
	ct, err := e.be.GetContract(ctx, cm.ContractID)
	switch {
	case errors.Is(err, psa.ErrNotFound):
		return fmt.Errorf("contract %s not found in %s: %w", cm.ContractID, sys, err)
	case err != nil:
		return fmt.Errorf("reading contract %s: %w", cm.ContractID, err)
	case cm.CompanyID != "" && ct.CompanyID != "" && ct.CompanyID != cm.CompanyID:
		return fmt.Errorf("contract %s belongs to company %s, not %s", cm.ContractID, ct.CompanyID, cm.CompanyID)
	case !ct.Active:
		return fmt.Errorf("contract %s is not active in %s (status %q)", cm.ContractID, sys, ct.Status)
	case !ct.Recurring:
		return fmt.Errorf("contract %s is not a recurring service contract (type %q)", cm.ContractID, ct.Type)
	}
	return nil
}

// hint tells the operator how to fix err for customer cm.
func (e *Engine) hint(err error, cm export.CustomerMapping, serviceID string) string {
	sys := e.be.System()
	mapping := cm.Source + "/" + cm.CustomerID
	var ve *psa.ValidationError
	switch {
	case errors.Is(err, psa.ErrOutcomeUnknown), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "the PSA did not confirm the change: psa-syncd re-reads the line before writing it again, so it is never posted twice"
	case errors.Is(err, psa.ErrRateLimited):
		return "rate limited: the pass will retry on the next run"
	case errors.Is(err, psa.ErrUnauthorized):
		return fmt.Sprintf("%s refused the credentials: check the psa settings with psa-syncd check", sys)
	case errors.Is(err, psa.ErrNotFound) && serviceID == "":
		return fmt.Sprintf("contract %s not found in %s: check contract_id of customer mapping %s or re-run terraform apply", cm.ContractID, sys, mapping)
	case errors.Is(err, psa.ErrNotFound):
		return fmt.Sprintf("contract %s or service %s not found in %s: check contract_id of customer mapping %s and service_id of its product mappings, or re-run terraform apply",
			cm.ContractID, serviceID, sys, mapping)
	case errors.As(err, &ve):
		return "PSA refused the change: " + strings.Join(ve.Messages, "; ")
	case errors.Is(err, psa.ErrConflict):
		return fmt.Sprintf("%s reports a conflict on contract %s: check its service lines", sys, cm.ContractID)
	case strings.Contains(err.Error(), "is not active"), strings.Contains(err.Error(), "not a recurring"), strings.Contains(err.Error(), "belongs to company"):
		return fmt.Sprintf("map customer %s to an active recurring service contract of its company and re-run terraform apply", mapping)
	default:
		return "the pass will retry on the next run; psa-syncd check tests the connection"
	}
}

// Sync runs one pass: it settles open intents, computes the plan and writes
// the lines that differ (unless o.DryRun or o.WritesDisabled), then records
// the run, the customer statuses and the metrics. A customer's failure never
// stops the others. Sync returns an error, together with the recorded
// Result when there is one, only when the pass as a whole failed (usage
// could not be fetched, the state database failed).
func (e *Engine) Sync(ctx context.Context, doc *export.Document, o PassOptions) (*Result, error) {
	if e.db == nil {
		return nil, errors.New("daemon: sync needs a state database")
	}
	e.mu.Lock()
	defer e.mu.Unlock()

	dry := o.DryRun || o.WritesDisabled
	started := e.now()
	reqs := e.metrics.Requests()
	if o.Trigger == "" {
		o.Trigger = TriggerManual
	}
	run, err := e.db.BeginRun(state.Run{Trigger: o.Trigger, DryRun: dry, Customer: o.Customer, Started: started.UTC(),
		Period: source.PeriodOf(started.In(e.loc)).String()})
	if err != nil {
		return nil, fmt.Errorf("daemon: recording run: %w", err)
	}
	log := e.logger.With("run", run.ID)
	log.Info("Starting sync pass", "trigger", o.Trigger, "dry_run", o.DryRun, "writes_disabled", o.WritesDisabled, "customer", o.Customer)

	fail := func(err error) (*Result, error) {
		run.Result = state.RunFailure
		run.Error = err.Error()
		run.Finished = e.now().UTC()
		run.Requests = int(e.metrics.Requests() - reqs)
		if serr := e.db.SaveRun(run); serr != nil {
			err = errors.Join(err, serr)
		}
		if !dry {
			e.recordRun(run, started, nil)
		}
		log.Error("Sync pass failed", "err", err)
		return &Result{Run: run}, err
	}

	// Settle what an interrupted pass left open before writing anything,
	// so that no line is ever changed twice.
	if !dry {
		if n, err := e.reconcile(ctx); err != nil {
			log.Warn("Could not settle every open intent; their lines are not written this pass", "err", err)
		} else if n > 0 {
			log.Info("Settled open intents", "intents", n)
		}
	}

	p, err := e.plan(ctx, doc, o)
	if err != nil {
		return fail(err)
	}
	e.recordUnmapped(p.plan)

	if !dry {
		if err := e.write(ctx, log, run.ID, p); err != nil {
			return fail(err)
		}
		p.flatten()
	}

	statuses, counts := e.statuses(p, run.ID)
	run.Updated, run.Unchanged, run.Held, run.Failed = counts[LineUpdated], counts[LineUnchanged], counts[LineHeld], counts[LineFailed]
	run.Customers = len(p.customers)
	run.Result = runResult(statuses)
	switch {
	case o.WritesDisabled:
		run.Error = "integration disabled in the mapping export: nothing was written"
	case run.Result != state.RunSuccess:
		run.Error = failureSummary(statuses)
	}
	if !dry {
		for _, cs := range statuses {
			if err := e.db.PutCustomerStatus(cs); err != nil {
				return fail(fmt.Errorf("daemon: recording customer status: %w", err))
			}
		}
	}
	run.Finished = e.now().UTC()
	run.Requests = int(e.metrics.Requests() - reqs)
	if err := e.db.SaveRun(run); err != nil {
		return &Result{Run: run, Plan: p.plan, Customers: statuses}, fmt.Errorf("daemon: recording run: %w", err)
	}
	if !dry {
		e.recordRun(run, started, counts)
		e.recordCustomers(doc)
	}
	log.Info("Finished sync pass", "result", run.Result, "customers", run.Customers, "updated", run.Updated,
		"unchanged", run.Unchanged, "held", run.Held, "failed", run.Failed, "requests", run.Requests,
		"unmapped_customers", len(p.plan.Unmapped.Customers), "unmapped_products", len(p.plan.Unmapped.Products),
		"unassigned", len(p.plan.Unmapped.Unassigned), "problems", len(p.plan.Problems), "dry_run", dry)
	return &Result{Run: run, Plan: p.plan, Customers: statuses}, nil
}

// write applies every update of the plan with bounded concurrency.
func (e *Engine) write(ctx context.Context, log *slog.Logger, runID int64, p *pass) error {
	open, err := e.db.OpenIntents()
	if err != nil {
		return fmt.Errorf("daemon: reading open intents: %w", err)
	}
	pending := map[psa.LineKey]int64{}
	for _, in := range open {
		pending[psa.LineKey{ContractID: in.ContractID, ServiceID: in.ServiceID}] = in.ID
	}
	gate := &budgetGate{be: e.be, reserve: e.policies.BudgetReserve, metrics: e.metrics, logger: log}
	var g errgroup.Group
	g.SetLimit(e.policies.WriteConcurrency)
	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		for _, c := range cp.changes {
			if c.Action != ActionUpdate {
				continue
			}
			key := psa.LineKey{ContractID: c.ContractID, ServiceID: c.ServiceID}
			if id, ok := pending[key]; ok {
				c.Action = ActionFailed
				c.Reason = fmt.Sprintf("an earlier change to this line (intent %d) is not confirmed yet; it is settled by re-reading the PSA before the line is written again", id)
				continue
			}
			var current *psa.ContractLine
			if l, ok := p.lines[key]; ok {
				current = &l
			}
			g.Go(func() error {
				e.writeLine(ctx, log, runID, gate, cp.m, c, current)
				return nil
			})
		}
	}
	return g.Wait()
}

// writeLine writes one line, guarded by an intent. It never returns an
// error: the outcome is recorded in c.
func (e *Engine) writeLine(ctx context.Context, log *slog.Logger, runID int64, gate *budgetGate, cm export.CustomerMapping, c *Change, current *psa.ContractLine) {
	if ctx.Err() != nil {
		c.Action, c.Reason = ActionSkipped, c.Reason+"; pass cancelled before the write"
		return
	}
	if !gate.allow(ctx) {
		c.Action, c.Reason = ActionSkipped, c.Reason+fmt.Sprintf("; not written: the PSA's hourly API budget reached the reserve (%d)", e.policies.BudgetReserve)
		return
	}
	in, err := e.db.OpenIntent(state.Intent{
		RunID:         runID,
		System:        e.be.System(),
		Source:        c.Source,
		CustomerID:    c.CustomerID,
		ContractID:    c.ContractID,
		ServiceID:     c.ServiceID,
		Before:        c.Current,
		After:         c.Desired,
		BeforeKnown:   c.CurrentKnown,
		EffectiveDate: c.EffectiveDate,
		Created:       e.now().UTC(),
	})
	if err != nil {
		c.Action, c.Reason = ActionFailed, fmt.Sprintf("recording the intent failed, nothing was written: %v", err)
		return
	}
	attrs := []any{"customer", c.CustomerID, "contract", c.ContractID, "service", c.ServiceID,
		"from", c.Current, "to", c.Desired, "effective_date", c.EffectiveDate.Format(time.DateOnly), "intent", in.ID}
	got, err := e.be.SetQuantity(ctx, psa.SetQuantityRequest{
		ContractID:    c.ContractID,
		ServiceID:     c.ServiceID,
		Quantity:      c.Desired,
		Current:       current,
		EffectiveDate: c.EffectiveDate,
	})
	if err != nil {
		var rle *psa.RateLimitError
		if errors.As(err, &rle) && rle.Hourly {
			gate.stop()
		}
		c.Action, c.Reason = ActionFailed, err.Error()
		if errors.Is(err, psa.ErrOutcomeUnknown) || ctx.Err() != nil {
			// The write may have reached the PSA: leave the intent open
			// so that reconciliation settles it by re-reading.
			log.Error("Outcome of contract line update unknown; it is settled before the line is written again", append(attrs, "err", err)...)
			return
		}
		if cerr := e.db.CompleteIntent(in.ID, state.IntentFailed, err.Error(), e.now().UTC()); cerr != nil {
			log.Error("Could not close intent", "intent", in.ID, "err", cerr)
		}
		log.Error("Failed to update contract line", append(attrs, "err", err)...)
		return
	}
	note := ""
	if got != nil && got.Quantity != c.Desired {
		note = fmt.Sprintf("the PSA reports %d after the write", got.Quantity)
	}
	if err := e.db.CompleteIntent(in.ID, state.IntentDone, note, e.now().UTC()); err != nil {
		// The write happened; the open intent is settled as done by the
		// next reconciliation, which finds the line at its new quantity.
		log.Error("Could not close intent after a successful write", "intent", in.ID, "err", err)
	}
	log.Info("Updated contract line", attrs...)
}

// budgetGate stops writes when the PSA's remaining hourly budget reaches the
// reserve. It checks the budget before the first write and then every
// budgetCheckEvery writes, or sooner when the estimate nears the reserve.
type budgetGate struct {
	be      psa.Backend
	reserve int
	metrics *Metrics
	logger  *slog.Logger

	mu          sync.Mutex
	unsupported bool
	checked     bool
	stopped     bool
	remaining   int
	since       int
}

func (g *budgetGate) allow(ctx context.Context) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	if g.unsupported {
		return true
	}
	estimate := g.remaining - g.since*requestsPerWrite
	if !g.checked || g.since >= budgetCheckEvery || estimate <= g.reserve+requestsPerWrite {
		b, err := g.be.Budget(ctx)
		switch {
		case errors.Is(err, psa.ErrNotSupported):
			g.unsupported = true
			return true
		case err != nil:
			// Not knowing the budget is no reason to stop: the writes
			// themselves fail if the PSA is out of budget.
			g.logger.Warn("Could not read the PSA's API budget", "err", err)
			g.checked, g.since, g.remaining = true, 0, g.reserve+budgetCheckEvery*requestsPerWrite+requestsPerWrite+1
		default:
			g.checked, g.since, g.remaining = true, 0, b.Remaining()
			if g.metrics != nil {
				g.metrics.APIBudgetRemaining.Set(float64(b.Remaining()))
			}
			if b.Remaining() <= g.reserve {
				g.logger.Warn("Stopping writes: the PSA's hourly API budget reached the reserve", "remaining", b.Remaining(), "reserve", g.reserve)
				g.stopped = true
				return false
			}
		}
	}
	g.since++
	return true
}

func (g *budgetGate) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// statuses derives the customer statuses and the line counts of a pass.
func (e *Engine) statuses(p *pass, runID int64) ([]state.CustomerStatus, map[string]int) {
	counts := map[string]int{}
	now := e.now().UTC()
	out := make([]state.CustomerStatus, 0, len(p.customers))
	for _, cp := range p.customers {
		cm := cp.m
		cs := state.CustomerStatus{
			Source: cm.Source, CustomerID: cm.CustomerID, CustomerName: cm.CustomerName, CompanyID: cm.CompanyID,
			ContractID: cm.ContractID, UsageSync: cm.UsageSync, TicketSync: cm.TicketSync,
			LastAttempt: now, RunID: strconv.FormatInt(runID, 10),
		}
		if prev, ok, err := e.db.CustomerStatus(cm.Source, cm.CustomerID); err == nil && ok {
			cs.LastSuccess = prev.LastSuccess
		}
		var skipped int
		var firstErr, firstHint string
		nErr := 0
		for _, c := range cp.changes {
			switch c.Action {
			case ActionUpdate:
				// A dry run counts what it would update as updated, so
				// its report reads like the real pass's would.
				cs.Updated++
			case ActionUnchanged:
				cs.Unchanged++
			case ActionHeld:
				cs.Held++
			case ActionSkipped:
				skipped++
			case ActionFailed:
				cs.Failed++
				if cp.err == nil {
					nErr++
					if firstErr == "" {
						firstErr = fmt.Sprintf("contract %s service %s: %s", c.ContractID, c.ServiceID, c.Reason)
						firstHint = e.lineHint(c, cm)
					}
				}
			}
		}
		switch {
		case cp.err != nil:
			cs.Result, cs.Error, cs.Hint = state.CustomerFailed, cp.err.Error(), cp.hint
			if cs.Failed == 0 {
				cs.Failed = 1 // the customer failed before any line could be decided
			}
		case nErr > 0:
			cs.Result, cs.Error, cs.Hint = state.CustomerFailed, firstErr, firstHint
			if nErr > 1 {
				cs.Error += fmt.Sprintf(" (and %d more lines)", nErr-1)
			}
		case skipped > 0:
			cs.Result = state.CustomerSkipped
			cs.Error = fmt.Sprintf("%d lines not written: the PSA's hourly API budget reached the reserve", skipped)
			cs.Hint = "the remaining lines are written by the next pass; lower the request load or policies.budget_reserve"
		case cs.Held > 0:
			cs.Result = state.CustomerHeld
			cs.Hint = fmt.Sprintf("a decrease larger than policies.max_decrease_percent is held for review: check the usage, then run psa-syncd sync --approve --customer %s", cm.CustomerID)
		default:
			cs.Result = state.CustomerSucceeded
			cs.LastSuccess = now
		}
		counts[LineUpdated] += cs.Updated
		counts[LineUnchanged] += cs.Unchanged
		counts[LineHeld] += cs.Held
		counts[LineFailed] += cs.Failed
		out = append(out, cs)
	}
	return out, counts
}

// flatten copies the per-customer changes into the plan, in customer order.
func (p *pass) flatten() {
	p.plan.Changes = p.plan.Changes[:0]
	for _, cp := range p.customers {
		for _, c := range cp.changes {
			p.plan.Changes = append(p.plan.Changes, *c)
		}
	}
}

// lineHint is the hint for a failed line, from its error text when the
// typed error is gone.
func (e *Engine) lineHint(c *Change, cm export.CustomerMapping) string {
	r := c.Reason
	switch {
	case strings.Contains(r, "is not confirmed yet"), strings.Contains(r, "outcome of write unknown"):
		return "the PSA did not confirm an earlier change: psa-syncd re-reads the line before writing it again, so it is never posted twice"
	case strings.Contains(r, "rate limited"):
		return "rate limited: the pass will retry on the next run"
	case strings.Contains(r, "not found"):
		return e.hint(psa.ErrNotFound, cm, c.ServiceID)
	case strings.Contains(r, "unauthorized"):
		return e.hint(psa.ErrUnauthorized, cm, c.ServiceID)
	default:
		return "PSA refused the change: " + r
	}
}

func runResult(statuses []state.CustomerStatus) string {
	failed, other := 0, 0
	for _, cs := range statuses {
		switch cs.Result {
		case state.CustomerFailed:
			failed++
		case state.CustomerSkipped:
			other++
		}
	}
	switch {
	case failed > 0 && failed == len(statuses):
		return state.RunFailure
	case failed > 0 || other > 0:
		return state.RunPartial
	default:
		return state.RunSuccess
	}
}

func failureSummary(statuses []state.CustomerStatus) string {
	var failed, skipped []string
	for _, cs := range statuses {
		switch cs.Result {
		case state.CustomerFailed:
			failed = append(failed, cs.CustomerID)
		case state.CustomerSkipped:
			skipped = append(skipped, cs.CustomerID)
		}
	}
	var parts []string
	if len(failed) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d customers failed", len(failed), len(statuses)))
	}
	if len(skipped) > 0 {
		parts = append(parts, fmt.Sprintf("%d customers not fully written (API budget reserve reached)", len(skipped)))
	}
	return strings.Join(parts, "; ")
}

// recordRun updates the run metrics. Dry runs never call it, so a switched
// off integration does not look like a healthy one.
func (e *Engine) recordRun(run state.Run, started time.Time, counts map[string]int) {
	m := e.metrics
	if m == nil {
		return
	}
	m.RunsTotal.WithLabelValues(run.Result).Inc()
	end := run.Finished
	if end.IsZero() {
		end = e.now()
	}
	m.LastRunTimestamp.Set(float64(end.UnixNano()) / 1e9)
	if run.Result == state.RunSuccess {
		m.LastSuccessTimestamp.Set(float64(end.UnixNano()) / 1e9)
	}
	m.RunDuration.Observe(end.Sub(started).Seconds())
	for _, o := range LineOutcomes {
		if n := counts[o]; n > 0 {
			m.LinesTotal.WithLabelValues(o).Add(float64(n))
		}
	}
}

// recordUnmapped sets the unmapped gauges from a plan.
func (e *Engine) recordUnmapped(p *Plan) {
	if m := e.metrics; m != nil {
		m.Unmapped.WithLabelValues("customer").Set(float64(len(p.Unmapped.Customers)))
		m.Unmapped.WithLabelValues("product").Set(float64(len(p.Unmapped.Products)))
		m.Unmapped.WithLabelValues("unassigned").Set(float64(len(p.Unmapped.Unassigned)))
	}
}

// recordCustomers sets the customers gauge from the stored statuses of the
// customers that the export still maps with usage sync on, so a customer
// whose mapping is removed stops counting (and its alert clears).
func (e *Engine) recordCustomers(doc *export.Document) {
	m := e.metrics
	if m == nil {
		return
	}
	all, err := e.db.CustomerStatuses()
	if err != nil {
		e.logger.Error("Could not read customer statuses for metrics", "err", err)
		return
	}
	counts := map[string]int{}
	for _, cs := range all {
		cm, ok := doc.Customer(cs.Source, cs.CustomerID)
		if !ok || !cm.UsageSync || (e.src != nil && cs.Source != e.src.Name()) {
			continue
		}
		r := cs.Result
		if r == state.CustomerPartial {
			r = state.CustomerFailed
		}
		counts[r]++
	}
	for _, s := range CustomerStatuses {
		m.Customers.WithLabelValues(s).Set(float64(counts[s]))
	}
}

// Reconcile settles the intents that an interrupted pass left open: it
// re-reads each intent's line at its effective date and closes the intent
// as done (the PSA shows the intended quantity; the change goes to the
// ledger), failed (the PSA still shows the quantity from before: the write
// never arrived) or review (the PSA shows something else). Intents whose
// line cannot be read stay open, and the error says why. It returns how
// many intents it closed.
func (e *Engine) Reconcile(ctx context.Context) (int, error) {
	if e.db == nil {
		return 0, errors.New("daemon: reconcile needs a state database")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reconcile(ctx)
}

func (e *Engine) reconcile(ctx context.Context) (int, error) {
	open, err := e.db.OpenIntents()
	if err != nil {
		return 0, fmt.Errorf("daemon: reading open intents: %w", err)
	}
	if len(open) == 0 {
		return 0, nil
	}
	sys := e.be.System()
	byDate := map[time.Time][]state.Intent{}
	var errs []error
	for _, in := range open {
		if in.System != sys {
			errs = append(errs, fmt.Errorf("intent %d is for %s, not %s: settle it with psa-syncd configured for %s", in.ID, in.System, sys, in.System))
			continue
		}
		d := in.EffectiveDate.UTC()
		byDate[d] = append(byDate[d], in)
	}
	dates := make([]time.Time, 0, len(byDate))
	for d := range byDate {
		dates = append(dates, d)
	}
	sort.Slice(dates, func(i, j int) bool { return dates[i].Before(dates[j]) })

	n := 0
	for _, d := range dates {
		intents := byDate[d]
		var ids []string
		for _, in := range intents {
			if !slices.Contains(ids, in.ContractID) {
				ids = append(ids, in.ContractID)
			}
		}
		got, err := e.be.ReadLines(ctx, ids, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("re-reading contracts %s at %s: %w", strings.Join(ids, ", "), d.Format(time.DateOnly), err))
			continue
		}
		lines := map[psa.LineKey]psa.ContractLine{}
		for _, l := range got {
			lines[l.Key()] = l
		}
		for _, in := range intents {
			l, ok := lines[psa.LineKey{ContractID: in.ContractID, ServiceID: in.ServiceID}]
			qty := l.Quantity // 0 when the line does not exist
			var st, note string
			switch {
			case qty == in.After && (ok || in.After == 0):
				st, note = state.IntentDone, fmt.Sprintf("reconciled: the PSA shows %d", qty)
			case qty == in.Before:
				st, note = state.IntentFailed, fmt.Sprintf("not applied: the PSA still shows %d", qty)
			default:
				st, note = state.IntentReview, fmt.Sprintf("the PSA shows %d, neither %d (before) nor %d (after): check the line and the ledger", qty, in.Before, in.After)
			}
			if err := e.db.CompleteIntent(in.ID, st, note, e.now().UTC()); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
			level := slog.LevelInfo
			if st == state.IntentReview {
				level = slog.LevelWarn
			}
			e.logger.Log(ctx, level, "Settled open intent", "intent", in.ID, "state", st, "customer", in.CustomerID,
				"contract", in.ContractID, "service", in.ServiceID, "note", note)
		}
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("daemon: reconciling open intents: %w", errors.Join(errs...))
	}
	return n, nil
}

func compareIDs(a, b string) int {
	// Numeric ids sort numerically (Autotask ids are numbers), others
	// lexically.
	ai, aerr := strconv.ParseInt(a, 10, 64)
	bi, berr := strconv.ParseInt(b, 10, 64)
	if aerr == nil && berr == nil {
		return cmp.Compare(ai, bi)
	}
	return strings.Compare(a, b)
}
