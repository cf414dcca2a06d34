package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// defaultBudgetReserve is the default of the autotask block's
// budget_reserve, the part of Autotask's hourly request budget an apply
// leaves alone: psa-syncd's default policies.budget_reserve, where its
// passes stop writing usage. An apply below it spends what psa-syncd keeps
// for the invoices, and one that reaches the limit is refused midway,
// after some of its changes.
const defaultBudgetReserve = 500

// autotaskApplyReads is what the apply's provider process reads from
// Autotask, by what it reads for, once whatever the number of resources
// that need it: TestAccApply_requests counts the same requests by route,
// for a plan and an apply. A tenant of more than 500 active contracts or
// companies costs one request more per 500 in the lists of "contracts"
// and "companies", which the process counts as it sends them
// (requestCounter): the check counts those instead once there are more.
var autotaskApplyReads = map[string]int{
	// ThresholdInformation: the apply reads the budget again.
	"budget": 1,
	// The Services query (the names a new service is checked against, the
	// services of product mappings by id) and the Services field list.
	"services": 2,
	// The BillingCodes query (the default billing code) and field list.
	"billing codes": 2,
	// The Contracts field list, the first batch by id, the count of the
	// tenant's contracts and their list (see listAfter).
	"contracts": 4,
	// The first batch by id, then the companies of the contracts listed.
	"companies": 2,
}

// autotaskListed are the groups of autotaskApplyReads that grow with the
// tenant, named as their entities: their lists take one request per 500
// records, which the provider process counts as it sends them (see
// requestCounter).
var autotaskListed = []string{"contracts", "companies"}

// requestCounter is the Autotask client's transport in the provider: it
// counts the requests the provider process sends to the entities of
// autotaskListed (every attempt, as each counts against the
// budget), so that the budget check counts the requests the plan's reads
// of a large tenant's lists took rather than those of a small one.
type requestCounter struct {
	base http.RoundTripper

	mu   sync.Mutex
	sent map[string]int // by group of autotaskApplyReads
}

func (c *requestCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	// The path is /ATServicesRest/V1.0/{Entity}/...
	_, rest, _ := strings.Cut(r.URL.Path, "/V1.0/")
	entity, _, _ := strings.Cut(rest, "/")
	if group := strings.ToLower(entity); slices.Contains(autotaskListed, group) {
		c.mu.Lock()
		if c.sent == nil {
			c.sent = map[string]int{}
		}
		c.sent[group]++
		c.mu.Unlock()
	}
	return c.base.RoundTrip(r)
}

// reads returns the requests of a group of autotaskApplyReads: those the
// process sent, when it has sent more than autotaskApplyReads counts.
func (c *requestCounter) reads(group string) int {
	n := autotaskApplyReads[group]
	if c == nil {
		return n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(n, c.sent[group])
}

// autotaskApplyReadTotal is the sum of autotaskApplyReads: what an apply
// that needs all of them reads.
func autotaskApplyReadTotal() int {
	n := 0
	for _, v := range autotaskApplyReads {
		n += v
	}
	return n
}

// applyCost is what the apply of one resource's change sends to Autotask:
// the groups of autotaskApplyReads it needs, and its own writes.
type applyCost struct {
	reads  []string
	writes int
}

// The applyCost of each change that sends requests at apply. Updating a
// service reads it back, and deactivating one reads it first (see the
// Autotask backend's UpdateService and DeactivateService).
var (
	costServiceCreate   = applyCost{reads: []string{"budget", "services", "billing codes"}, writes: 1}
	costServiceUpdate   = applyCost{reads: []string{"budget", "services", "billing codes"}, writes: 2}
	costServiceDestroy  = applyCost{reads: []string{"budget"}, writes: 2}
	costProductMapping  = applyCost{reads: []string{"budget", "services"}}
	costCustomerMapping = applyCost{reads: []string{"budget", "contracts", "companies"}}
)

// psaBudget reads the PSA's hourly request budget once per provider
// process (one Terraform command) for checkPSABudget, and adds up the
// requests the changes planned so far will send at apply.
type psaBudget struct {
	once   sync.Once
	budget *psa.Budget
	err    error
	// warned says that a failed read was reported, which it is once;
	// refused says the same of a budget too small for the apply, and low
	// of one found too small once the apply has written.
	warned  atomic.Bool
	refused atomic.Bool
	low     atomic.Bool

	// sent counts the process's requests of Autotask's lists; nil for
	// another PSA.
	sent *requestCounter

	// mu guards reads, the groups of autotaskApplyReads counted so far,
	// writes, and the number of changes of each resource type.
	mu      sync.Mutex
	reads   map[string]bool
	writes  int
	changes map[string]int
}

// add counts the cost of one change of a resource of the given type and
// returns the requests of every change counted so far, and those changes
// by resource type, for messages. Until applying, the process may be a
// plan's, whose own reads of the same groups come after its read of the
// budget too, besides those of the apply: they are counted twice.
func (b *psaBudget) add(resourceType string, c applyCost, applying bool) (requests int, changes string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reads == nil {
		b.reads, b.changes = map[string]bool{}, map[string]int{}
	}
	for _, r := range c.reads {
		b.reads[r] = true
	}
	b.writes += c.writes
	b.changes[resourceType]++
	requests = b.writes
	for r := range b.reads {
		n := b.sent.reads(r)
		requests += n
		if !applying && r != "budget" {
			requests += n
		}
	}
	var counts []string
	for _, t := range slices.Sorted(maps.Keys(b.changes)) {
		counts = append(counts, fmt.Sprintf("%d %s", b.changes[t], t))
	}
	return requests, strings.Join(counts, ", ")
}

// checkPSABudget fails the plan of a change that sends requests to
// Autotask at apply (cost: a psa_service created, updated, or destroyed
// with deletion_policy deactivate or delete; a product or customer
// mapping created or updated, whose apply checks its service or contract
// again) when the requests of the changes planned so far do not fit in
// what Autotask's hourly request budget has left above budget_reserve.
// That budget is every integration's of the database (psa-syncd, this
// provider, any other tool): an apply that went on would spend what
// psa-syncd keeps for the invoices, or be refused midway once the budget
// runs out (Autotask then refuses every request of the database until the
// rolling hour frees some), after some of its changes. The first change
// that does not fit fails; the plan fails with it, so the others are not
// reported again.
//
// The budget is read once per provider process (ThresholdInformation, one
// request, which counts against it too), only by a plan that sends
// requests at apply; the plan's requests count what it reads itself after
// that, as well as the apply's. The apply, a process of its own, reads it
// again before its first write and checks its changes the same way as it
// plans each again, but only until its first write (providerData.applying):
// from then on a budget too small warns, once, as failing would stop the
// apply midway, after some of its changes, which the plan checked to
// avoid. A failed read warns, once, and blocks nothing.
//
// Only Autotask reports a budget: ConnectWise reports none, and Kaseya BMS
// limits each endpoint, which its client counts and refuses by itself.
func (d *providerData) checkPSABudget(ctx context.Context, diags *diag.Diagnostics, resourceType string, plan, state tftypes.Value, cost applyCost) {
	if d == nil || d.system != psa.SystemAutotask || plan.Equal(state) {
		return
	}
	applying := d.applying.Load()
	requests, changes := d.budget.add(resourceType, cost, applying)
	d.budget.once.Do(func() { d.budget.budget, d.budget.err = d.backend.Budget(ctx) })
	b, err := d.budget.budget, d.budget.err
	switch {
	case err != nil && errors.Is(err, psa.ErrNotSupported):
	case err != nil:
		if d.budget.warned.CompareAndSwap(false, true) {
			diags.AddWarning("Autotask API Budget Not Checked",
				"The provider could not read Autotask's hourly request budget (ThresholdInformation), so it could not "+
					"check that the apply fits in it; the plan goes on.\n\n"+psaErrorDetail(d.system, "reading the API budget", err))
		}
	case requests <= b.Remaining()-d.budgetReserve:
	case applying:
		if d.budget.low.CompareAndSwap(false, true) {
			diags.AddWarning("Autotask API Budget Low During This Apply",
				fmt.Sprintf("This apply has changed resources in Autotask already, so it goes on, but the changes "+
					"applied so far and this one (%s) send about %d requests to Autotask, and its hourly request "+
					"budget had %d of its %d requests left when the apply began, %d above budget_reserve (%d). "+
					"Something else spent requests since the plan (psa-syncd, another tool), so the rest of the "+
					"apply may spend what psa-syncd keeps for the invoices; if the budget runs out, Autotask "+
					"refuses the remaining changes, each fails with its own error, and those applied stay in "+
					"the state. Watch psa-syncd's psa_sync_api_budget_remaining, and apply again once requests "+
					"have freed up if changes failed.",
					changes, requests, max(b.Remaining(), 0), b.Limit, max(b.Remaining()-d.budgetReserve, 0), d.budgetReserve))
		}
	case d.budget.refused.CompareAndSwap(false, true):
		diags.AddError("Autotask API Budget Too Small for This Apply",
			fmt.Sprintf("The changes planned so far (%s) send about %d requests to Autotask from now to the end of "+
				"the apply (what this plan reads, what the apply reads and writes), but its hourly "+
				"request budget has %d of its %d requests left (%d used in the rolling %d minutes), and budget_reserve "+
				"keeps %d of them for psa-syncd, which stops writing usage at its policies.budget_reserve: %d are left "+
				"for this apply. Every integration of the Autotask database shares that budget (psa-syncd, this "+
				"provider, any other tool), and once none are left Autotask refuses every request of the database "+
				"until the rolling hour frees some, so the apply could spend what psa-syncd keeps for the invoices "+
				"or be refused midway, after some of its changes. Plan and apply again once requests have freed "+
				"up (psa-syncd's psa_sync_api_budget_remaining shows them), apply fewer changes at a time (-target, "+
				"or the configuration in parts), or set budget_reserve in the autotask block lower, no lower than "+
				"psa-syncd's policies.budget_reserve.",
				changes, requests, max(b.Remaining(), 0), b.Limit, b.Used, int(b.Timeframe.Minutes()),
				d.budgetReserve, max(b.Remaining()-d.budgetReserve, 0)))
	}
}
