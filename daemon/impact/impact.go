package impact

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Options are what Compute needs besides the export and the plan.
type Options struct {
	// Backend is the PSA. Nil means there is none to ask (no credentials):
	// the report then leaves out what only the PSA knows and says so.
	Backend psa.Backend
	// NoBackend says why Backend is nil, e.g. "PSA_AUTOTASK_SECRET is not
	// set"; it is quoted in the report.
	NoBackend string
	// Source is the usage source. Nil means usage cannot be read (no
	// credentials): quantities under the mappings are then unknown.
	Source source.Source
	// SourceName is the source's key in the export ("sophos", "file");
	// "" means Source.Name(), so it is required without a Source.
	SourceName string
	// NoSource says why Source is nil.
	NoSource string
	// State, when set, is psa-syncd's state database, whose ledger holds
	// the quantities of a PSA that cannot report them (Kaseya BMS).
	State *state.DB
	// NoExport, when set, names the store that holds no mapping export yet
	// (before the first apply): the current export passed to Compute is an
	// empty one standing in for it. The report says so, and shows
	// everything the plan maps as new.
	NoExport string
	// Policies, Location and Now are the engine's (usage.EngineOptions).
	Policies usage.Policies
	Location *time.Location
	Now      func() time.Time
	Logger   *slog.Logger
}

// Report is the billing impact of a Terraform plan: how the next sync pass
// would set contract lines under the proposed mappings compared with the
// current ones, and what that does to the monthly amounts.
type Report struct {
	System        psa.System `json:"system"`
	Period        string     `json:"period"`
	EffectiveDate string     `json:"effective_date"`
	// NoExport names the store that held no mapping export yet: the current
	// mappings were taken as empty (Options.NoExport).
	NoExport string `json:"no_export,omitempty"`
	// PlanChanges is false when the Terraform plan changes no psa_* resource.
	PlanChanges bool   `json:"plan_changes"`
	Totals      Totals `json:"totals"`
	// Lines are the contract lines whose quantity, price or sync changes.
	Lines []Line `json:"lines"`
	// UsageSync lists the customers whose usage sync starts or stops.
	UsageSync []SyncChange `json:"usage_sync"`
	// Unmapped is usage that the proposed mappings stop billing, NewlyBilled
	// usage that they start billing (unmapped now, mapped then).
	Unmapped    []UsageChange `json:"unmapped"`
	NewlyBilled []UsageChange `json:"newly_billed"`
	// LeftBilling lists the contract lines psa-syncd set above 0 that no
	// mapping makes it write any more after apply, and that it does not
	// list as orphaned now (usage.Unmapped.Orphaned of the proposed plan
	// less the current plan's): they go on invoicing the units psa-syncd
	// last set. Computed only with psa-syncd's state database
	// (Options.State), whose ledger says which lines psa-syncd set.
	LeftBilling []usage.OrphanedLine `json:"left_billing,omitempty"`
	// Integration is "on" or "off" when the plan switches the integration,
	// else "".
	Integration string `json:"integration,omitempty"`
	// NotComputed says which figures could not be computed and why.
	NotComputed []string `json:"not_computed"`
	// Notes are values the plan leaves unknown and other remarks.
	Notes []string `json:"notes"`
}

// Totals sum up the lines.
type Totals struct {
	// MonthlyDelta is the sum of the lines' known monthly deltas.
	MonthlyDelta float64 `json:"monthly_delta"`
	Up           int     `json:"up"`
	Down         int     `json:"down"`
	// Unknown counts lines whose delta could not be computed.
	Unknown int `json:"unknown"`
	// Held counts the lines the next pass under the proposed mappings
	// holds for review: they keep their units, which MonthlyDelta counts,
	// until the change is released.
	Held int `json:"held"`
	// HeldApprovable counts the held lines that `psa-syncd sync
	// --approve` releases (Held.Approvable).
	HeldApprovable int `json:"held_approvable"`
	// HeldPerLine counts the held lines, of HeldApprovable, that only an
	// approval of each line (`psa-syncd sync --approve --customer ID
	// --service ID`) releases, not an approval of every held line: holds
	// line_missing, stale_read, previous_contract and previous_service
	// (Held.PerLine).
	HeldPerLine int `json:"held_per_line,omitempty"`
	// HeldSurge counts the held lines, of HeldApprovable, that the surge
	// guard holds (hold surge: many lines rise sharply at once): an
	// approval of the surge (`psa-syncd sync --approve --surge CODE`, with
	// the review code of the pass that holds them) releases them all, as
	// an approval of each line does.
	HeldSurge int `json:"held_surge,omitempty"`
	// ReleasedMonthlyDelta is MonthlyDelta once every held line that an
	// approval releases (HeldApprovable) is written at its held units
	// (Held.MonthlyDelta): what the lines bill after `psa-syncd sync
	// --approve`. A line held because the customer's line on the contract
	// it left (previous_contract), or of the service no mapping names any
	// more (previous_service), still bills counts that line at 0, as its
	// release asks: each line of the customer's usage is counted once.
	// Nil when no line is so held, or when a line's delta either way is
	// unknown.
	ReleasedMonthlyDelta *float64 `json:"released_monthly_delta,omitempty"`
	// releasedZeroed is true when ReleasedMonthlyDelta counts a line that
	// still bills at 0 (leftBy), which the summary says.
	releasedZeroed bool
	// HeldMoved is true when a held line lost a product that the proposed
	// mappings move to another service: until the hold is released, that
	// product's usage bills on both lines.
	HeldMoved bool `json:"held_moved,omitempty"`
	// heldContract is true when a line is held, approvably, because its
	// customer moved to another contract whose line still bills
	// (previous_contract): on Autotask and ConnectWise PSA a pass writes
	// it by itself once that line reads 0 or that contract ended, which
	// the summary says.
	heldContract bool
	// heldService is true when a line is held, approvably, because a
	// product was re-pointed away from a service whose line still bills
	// (previous_service): a pass writes it by itself once that line's
	// contract ended (and, on Autotask and ConnectWise PSA, once that
	// line reads 0), which the summary says.
	heldService bool
}

// Line is one contract line in the report. Quantities and amounts are nil
// when they could not be computed.
type Line struct {
	Source       string `json:"source"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	// CurrentCustomerID and CurrentCustomerName name the customer whose
	// mapping sets the line under the current mappings, when it is not
	// CustomerID's, whose mapping sets it under the proposed ones: a
	// customer mapping replaced on the same contract (customer_id changed)
	// sets the same PSA line, one row in the report.
	CurrentCustomerID   string `json:"current_customer_id,omitempty"`
	CurrentCustomerName string `json:"current_customer_name,omitempty"`
	ContractID          string `json:"contract_id"`
	ServiceID           string `json:"service_id"`
	ServiceName         string `json:"service_name,omitempty"`
	// NewService is true when the plan creates the service: its id is known
	// only after apply (ServiceID is then a placeholder).
	NewService bool `json:"new_service"`
	// Now is the quantity on the line in the PSA now (0 when the contract
	// has no line for the service).
	Now *int64 `json:"now"`
	// Current and Proposed are what the next pass leaves on the line under
	// the current and the proposed mappings; a line psa-syncd does not set
	// keeps Now.
	Current  *int64 `json:"current"`
	Proposed *int64 `json:"proposed"`
	// CurrentSynced and ProposedSynced say whether psa-syncd sets the line.
	CurrentSynced  bool `json:"current_synced"`
	ProposedSynced bool `json:"proposed_synced"`
	// CurrentHeld and ProposedHeld are set when the next pass under the
	// current or the proposed mappings holds the line's change for review
	// instead of writing it: the line then keeps its units (Current or
	// Proposed is the quantity it has now), and Held says what the change
	// would set once released.
	CurrentHeld  *Held `json:"current_held,omitempty"`
	ProposedHeld *Held `json:"proposed_held,omitempty"`
	// UnitPrice and ProposedUnitPrice are the price per unit: the line's own
	// where the PSA has one, else the service's (PriceFrom says which).
	UnitPrice         *float64 `json:"unit_price"`
	ProposedUnitPrice *float64 `json:"proposed_unit_price"`
	PriceFrom         string   `json:"price_from"`
	// BillingPeriod is the period a unit price pays for, when it is not a
	// month: the service's (Autotask, where a service has one; the
	// proposed one when the plan changes it), or the billing cycle of the
	// line's agreement (ConnectWise) or contract (Kaseya BMS).
	BillingPeriod psa.BillingPeriod `json:"billing_period,omitempty"`
	// MonthlyDelta is Proposed × ProposedUnitPrice − Current × UnitPrice,
	// each price divided by the months of its billing period; nil (unknown)
	// as well when the line has units on a contract whose billing cycle is
	// unknown.
	MonthlyDelta *float64 `json:"monthly_delta"`
	// Why says what in the plan changes the line.
	Why string `json:"why"`
	// heldMoved is set when the line is held and lost a product that the
	// proposed mappings map to another service (Totals.HeldMoved).
	heldMoved bool
	// reactivated is set when the plan makes the line's service active
	// again: under the current mappings the pass fails the line (the PSA
	// says the service is inactive) and so leaves it as it is.
	reactivated bool
	// zeroedDelta is, on a line psa-syncd stops writing (CurrentSynced,
	// not ProposedSynced), its monthly delta once it is set to 0: what it
	// counts for in Totals.ReleasedMonthlyDelta when it is the line that a
	// previous_contract or previous_service hold waits on (leftBy).
	zeroedDelta *float64
}

// Held is a change the pass holds for review instead of writing it.
type Held struct {
	// Units is what the change sets on the line once it is released.
	Units int64 `json:"units"`
	// Approvable is true for a change the guard on large decreases or
	// increases holds (policies.max_decrease_percent,
	// max_increase_percent), which `psa-syncd sync --approve` releases; false for one held because the line's units change again
	// later in the billing month, or because its billing period is
	// already posted, or psa-syncd changed it from a later date, which no
	// pass writes.
	Approvable bool `json:"approvable"`
	// Hold says why the line is held, as the plan's JSON does:
	// "approval", "stale_approval", "posted", "later_change",
	// "later_write", "line_missing", "stale_read", "previous_contract",
	// "previous_service" or "surge".
	Hold string `json:"hold"`
	// MonthlyDelta is the line's monthly delta once the change is released
	// (nil when unknown).
	MonthlyDelta *float64 `json:"monthly_delta"`
}

// PerLine reports whether only an approval of this one line releases h
// (`psa-syncd sync --approve --customer ID --service ID`), not an approval
// of every held line: the pass holds the line because writing it could
// bill twice, which the operator checks line by line.
func (h *Held) PerLine() bool {
	switch h.Hold {
	case usage.HoldVanished, usage.HoldStaleRead, usage.HoldMoved, usage.HoldPreviousService:
		return h.Approvable
	}
	return false
}

// SyncChange is a customer whose usage sync starts or stops.
type SyncChange struct {
	Source       string `json:"source"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	// Starts is true when usage sync starts, false when it stops.
	Starts bool   `json:"starts"`
	Why    string `json:"why"`
	// Replaces, on a customer whose sync starts, and ReplacedBy, on one
	// whose sync stops, name the other customer of a customer mapping
	// replaced on the same contract (Line.CurrentCustomerID): the same
	// contract lines, set through another customer, not new billing.
	Replaces   string `json:"replaces,omitempty"`
	ReplacedBy string `json:"replaced_by,omitempty"`
	// KeepsBilling, on a customer whose usage sync stops and whose lines no
	// other customer takes over (usage_sync switched off, or its customer
	// mapping removed), is the monthly amount its contract lines go on billing at the units they
	// keep, which no pass updates any more (keptBilling); nil when no
	// line's amount is known. KeepsBillingPartial is set when some of the
	// lines' amounts are unknown (a failed line, a contract whose billing
	// cycle is unknown): KeepsBilling is then the known lines' part, a
	// lower bound ("at least").
	KeepsBilling        *float64 `json:"keeps_billing,omitempty"`
	KeepsBillingPartial bool     `json:"keeps_billing_partial,omitempty"`
}

// UsageChange is a product or a customer whose usage becomes unmapped or
// newly billed.
type UsageChange struct {
	// Kind is "product" or "customer".
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Customers is how many customers used the product (Kind product).
	Customers int   `json:"customers,omitempty"`
	Quantity  int64 `json:"quantity"`
	// BilledQuantity and BilledCustomers are the part of the usage that
	// a pass bills: under the current mappings for usage that becomes
	// unmapped (what stops being billed), under the proposed ones for
	// usage newly billed (what starts; Quantity and Customers are that
	// part too). Of a product, its usage of the customers mapped with
	// usage_sync on; of a customer, its usage of the products mapped
	// with sync_enabled on (BilledCustomers is left out). Nil when usage
	// is not known.
	BilledQuantity  *int64 `json:"billed_quantity,omitempty"`
	BilledCustomers *int   `json:"billed_customers,omitempty"`
	Why             string `json:"why"`
	// Replaces names the customer whose contract lines this customer's
	// usage sets from now on (SyncChange.Replaces): usage that those
	// lines billed under the old customer, not new billing.
	Replaces string `json:"replaces,omitempty"`
}

// Price sources (Line.PriceFrom).
const (
	PriceFromLine    = "contract line"
	PriceFromService = "service"
)

// Compute works out the billing impact of tp on the export current: it
// applies tp's planned values to a copy of current and runs the sync
// engine's plan (which writes nothing) for both, against a read-only view of
// the PSA.
func Compute(ctx context.Context, o Options, current *export.Document, tp *TerraformPlan) (*Report, error) {
	if o.SourceName == "" && o.Source != nil {
		o.SourceName = o.Source.Name()
	}
	if o.SourceName == "" {
		return nil, errors.New("impact: Options.SourceName is required without a Source")
	}
	proposed, err := tp.Apply(current)
	if err != nil {
		return nil, err
	}
	sys := current.PSA.System
	rep := &Report{System: sys, NoExport: o.NoExport, PlanChanges: tp.Changed(), Lines: []Line{}, UsageSync: []SyncChange{},
		Unmapped: []UsageChange{}, NewlyBilled: []UsageChange{}, NotComputed: []string{}, Notes: slices.Clone(tp.Notes)}
	if rep.Notes == nil {
		rep.Notes = []string{}
	}

	base, noPSA := o.Backend, o.NoBackend
	if base != nil {
		if err := base.Ping(ctx); err != nil {
			base, noPSA = nil, fmt.Sprintf("%s did not accept the connection (%v)", sys.Title(), err)
		}
	}
	if base == nil {
		if noPSA == "" {
			noPSA = "no PSA connection"
		}
		base = offline{system: sys}
	}
	be := newReadOnly(base)
	src := newOnceSource(o.Source, o.SourceName)
	src.standIn = standInUsage(o.SourceName, current, proposed)
	// The pass is planned twice, under the current and the proposed
	// mappings: a warning both plans give is logged once (heldLogs).
	logger, logs := o.Logger, (*heldLogs)(nil)
	if logger != nil {
		logs = &heldLogs{holding: true, logged: map[string]bool{}}
		logger = slog.New(heldHandler{logger.Handler(), logs})
		defer logs.flush(ctx)
	}
	eng := usage.NewEngine(usage.EngineOptions{Backend: be, Source: src, State: o.State, Policies: o.Policies,
		Logger: logger, Location: o.Location, Now: o.Now})
	pass := usage.PassOptions{DryRun: true, Trigger: usage.TriggerCLI}
	cur, err := eng.Plan(ctx, current, pass)
	if err != nil {
		return nil, fmt.Errorf("impact: planning under the current mappings: %w", err)
	}
	be.activeAfter = tp.activeAfter()
	logs.stopHolding()
	prop, err := eng.Plan(ctx, proposed, pass)
	if err != nil {
		return nil, fmt.Errorf("impact: planning under the proposed mappings: %w", err)
	}
	rep.Period, rep.EffectiveDate = cur.Period.String(), cur.EffectiveDate.Format(time.DateOnly)

	usageKnown := true
	switch {
	case o.Source == nil:
		usageKnown = false
		rep.NotComputed = append(rep.NotComputed, fmt.Sprintf("Quantities under the current and proposed mappings, and usage that becomes unmapped or newly billed: usage from %s could not be read (%s).",
			o.SourceName, cmp.Or(o.NoSource, "no usage source")))
	case src.failed() != nil:
		usageKnown = false
		rep.NotComputed = append(rep.NotComputed, fmt.Sprintf("Quantities under the current and proposed mappings, and usage that becomes unmapped or newly billed: usage from %s could not be read (%v).",
			o.SourceName, src.failed()))
	}
	if _, isOffline := base.(offline); isOffline {
		rep.NotComputed = append(rep.NotComputed, fmt.Sprintf("Quantities now, the prices of contract lines, and the prices of services this plan does not manage: %s.", noPSA))
	} else if sys == psa.SystemKaseyaBMS && o.State == nil {
		rep.NotComputed = append(rep.NotComputed, "Quantities now: Kaseya BMS cannot report a contract line's units, and psa-syncd's ledger (its state database) is not available here; prices are the services' (BMS lines have none of their own that can be read).")
	}

	if tp.Mismatch != "" {
		rep.NotComputed = append([]string{tp.Mismatch}, rep.NotComputed...)
	}
	if len(tp.UnknownTypes) > 0 {
		// A newer provider's resource may change what is billed: a report
		// that left it out silently would read as complete.
		kind := "that resource type"
		if len(tp.UnknownTypes) > 1 {
			kind = "those resource types"
		}
		rep.NotComputed = append(rep.NotComputed, fmt.Sprintf("The billing impact of the changes to %s: this psa-syncd does not know %s "+
			"(a newer provider's?), so whatever they change in billing is not shown. Run the psa-syncd release that goes with the provider.",
			strings.Join(tp.UnknownTypes, ", "), kind))
	}
	rep.NotComputed = append(rep.NotComputed, tp.otherSources(o.SourceName)...)
	rep.NotComputed = append(rep.NotComputed, tp.Unresolved...)
	if usageKnown {
		usageProblems(rep, o.SourceName, cur, prop, src.records(cur.Period))
		unmatchedMappings(rep, o.SourceName, current, proposed, prop, src.records(cur.Period))
	}
	contractsEnding(rep, prop)
	rep.NotComputed = append(rep.NotComputed, failures(cur, prop)...)
	if o.State != nil {
		rep.LeftBilling = leftBilling(cur, prop)
	}

	c := &compare{ctx: ctx, be: be, tp: tp, current: current, proposed: proposed, usageKnown: usageKnown, failed: map[failedKey]bool{}}
	if _, isOffline := base.(offline); isOffline {
		c.cyclesErr, c.offline = noPSA, true
	}
	records := src.records(cur.Period)
	cur, prop = c.withFailedLines(cur, false, prop, records), c.withFailedLines(prop, true, cur, records)
	if c.offline {
		cur = c.withInactiveLines(cur)
	}
	if o.State == nil {
		prop = c.withMovedHolds(cur, prop)
		prop = c.withRepointHolds(cur, prop)
	}
	if o.State == nil && sys == psa.SystemKaseyaBMS && !c.offline {
		cur, c.listedOnly = c.withListedReplacedLines(cur, prop)
	}
	c.lines(rep, cur, prop)
	c.usageSync(rep)
	c.unmapped(rep, o.SourceName, cur, prop, records, usageKnown)
	onC, onP := integrationOn(current), integrationOn(proposed)
	switch {
	case onC && !onP:
		rep.Integration = "off"
	case !onC && onP:
		rep.Integration = "on"
	}
	rep.Totals = total(rep.Lines)
	rep.redact(tp.sensitive)
	return rep, nil
}

// redact replaces the values in every text of the report (names, ids,
// reasons) with "(sensitive)". Values shorter than three characters are
// left: they would blank out quantities and prices as well.
func (r *Report) redact(values []string) {
	var pairs []string
	values = slices.Clone(values)
	slices.SortFunc(values, func(a, b string) int { return cmp.Compare(len(b), len(a)) }) // the longest first
	for _, v := range values {
		if len(v) >= 3 {
			pairs = append(pairs, v, "(sensitive)")
		}
	}
	if len(pairs) == 0 {
		return
	}
	rp := strings.NewReplacer(pairs...)
	for i := range r.Lines {
		l := &r.Lines[i]
		for _, s := range []*string{&l.CustomerName, &l.CustomerID, &l.CurrentCustomerName, &l.CurrentCustomerID, &l.ContractID, &l.ServiceID, &l.ServiceName, &l.Why} {
			*s = rp.Replace(*s)
		}
	}
	for i := range r.UsageSync {
		sc := &r.UsageSync[i]
		for _, s := range []*string{&sc.CustomerName, &sc.CustomerID, &sc.Replaces, &sc.ReplacedBy, &sc.Why} {
			*s = rp.Replace(*s)
		}
	}
	for _, list := range [][]UsageChange{r.Unmapped, r.NewlyBilled} {
		for i := range list {
			for _, s := range []*string{&list[i].ID, &list[i].Name, &list[i].Replaces, &list[i].Why} {
				*s = rp.Replace(*s)
			}
		}
	}
	for _, list := range [][]string{r.NotComputed, r.Notes} {
		for i := range list {
			list[i] = rp.Replace(list[i])
		}
	}
}

// total sums up the lines.
func total(lines []Line) Totals {
	var t Totals
	for _, l := range lines {
		switch {
		case l.MonthlyDelta == nil:
			t.Unknown++
			continue
		case *l.MonthlyDelta > 0:
			t.Up++
		case *l.MonthlyDelta < 0:
			t.Down++
		}
		t.MonthlyDelta += *l.MonthlyDelta
	}
	for _, l := range lines {
		if l.ProposedHeld != nil {
			t.Held++
			if l.ProposedHeld.Approvable {
				t.HeldApprovable++
				if l.ProposedHeld.PerLine() {
					t.HeldPerLine++
				}
				if l.ProposedHeld.Hold == usage.HoldSurge {
					t.HeldSurge++
				}
				t.heldContract = t.heldContract || l.ProposedHeld.Hold == usage.HoldMoved
				t.heldService = t.heldService || l.ProposedHeld.Hold == usage.HoldPreviousService
			}
			t.HeldMoved = t.HeldMoved || l.heldMoved
		}
	}
	t.MonthlyDelta = round2(t.MonthlyDelta)
	if t.HeldApprovable > 0 {
		t.ReleasedMonthlyDelta, t.releasedZeroed = releasedDelta(lines)
	}
	return t
}

// releasedDelta sums the lines' monthly deltas with each held line that an
// approval releases at its held units, and each line such a hold waits on
// at 0 (leftBy), as Totals.ReleasedMonthlyDelta; nil when one of them is
// unknown. zeroed says whether a line was counted at 0.
func releasedDelta(lines []Line) (sum *float64, zeroed bool) {
	var s float64
	for _, l := range lines {
		d := l.MonthlyDelta
		switch h := l.ProposedHeld; {
		case h != nil && h.Approvable:
			d = h.MonthlyDelta
		case leftBy(lines, l):
			d, zeroed = l.zeroedDelta, true
		}
		if d == nil {
			return nil, false
		}
		s += *d
	}
	return ptr(round2(s)), zeroed
}

// leftBy reports whether old is a line that an approvable hold of another
// line waits on: psa-syncd stops writing old, of the same customer, which
// still bills, on the contract the customer left (previous_contract: the
// same service on another contract) or of a service no mapping names any
// more (previous_service: another service). Releasing the hold assumes
// old is set to 0 (usage.HoldMoved, usage.HoldPreviousService); counted
// as it is, the customer's usage would count on both lines.
func leftBy(lines []Line, old Line) bool {
	if !old.CurrentSynced || old.ProposedSynced {
		return false
	}
	return slices.ContainsFunc(lines, func(l Line) bool {
		h := l.ProposedHeld
		if h == nil || !h.Approvable || l.Source != old.Source || l.CustomerID != old.CustomerID {
			return false
		}
		switch h.Hold {
		case usage.HoldMoved:
			return l.ServiceID == old.ServiceID && l.ContractID != old.ContractID
		case usage.HoldPreviousService:
			return l.ServiceID != old.ServiceID
		}
		return false
	})
}

// heldLogs holds back what the engine logs, below Error, while Compute plans
// the pass under the current mappings (holding), and logs it at the end
// (flush) unless the plan under the proposed mappings logged the same
// message, with whatever attributes: a warning both plans give (a mapped
// contract ending, in either) is logged once, as the proposed mappings
// have it, and the report's note says it too.
type heldLogs struct {
	mu      sync.Mutex
	holding bool
	held    []heldRecord
	logged  map[string]bool
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

// stopHolding lets what the engine logs through.
func (l *heldLogs) stopHolding() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holding = false
}

// flush logs the records held back whose message was not logged since.
func (l *heldLogs) flush(ctx context.Context) {
	if l == nil {
		return
	}
	l.mu.Lock()
	held := l.held
	l.held, l.holding = nil, false
	l.mu.Unlock()
	for _, hr := range held {
		if !l.logged[hr.r.Message] {
			_ = hr.h.Handle(ctx, hr.r)
		}
	}
}

// heldHandler is a handler whose records of a level below Error go through
// heldLogs.
type heldHandler struct {
	slog.Handler
	logs *heldLogs
}

func (h heldHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		h.logs.mu.Lock()
		if h.logs.holding {
			h.logs.held = append(h.logs.held, heldRecord{h.Handler, r.Clone()})
			h.logs.mu.Unlock()
			return nil
		}
		h.logs.logged[r.Message] = true
		h.logs.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

func (h heldHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return heldHandler{h.Handler.WithAttrs(attrs), h.logs}
}

func (h heldHandler) WithGroup(name string) slog.Handler {
	return heldHandler{h.Handler.WithGroup(name), h.logs}
}

// compare holds what comparing the two plans needs.
type compare struct {
	ctx               context.Context
	be                *readOnly
	tp                *TerraformPlan
	current, proposed *export.Document
	usageKnown        bool
	// failed holds the customers that a plan fails as a whole, by plan:
	// their lines are unknown (withFailedLines).
	failed map[failedKey]bool
	// contracts are the contracts of the lines, as read for their billing
	// cycle (ConnectWise, Kaseya BMS: readCycles); cyclesErr says why
	// they could not be read, if so.
	contracts map[string]*psa.Contract
	cyclesErr string
	// offline is set when the PSA could not be asked: no line was read,
	// so no line is known to be missing from a read.
	offline bool
	// holdNotes holds, by line of the proposed plan, what the pass after
	// apply does with a line it may hold as previous_service or
	// previous_contract, which the report cannot tell without psa-syncd's
	// ledger (withRepointHolds, withMovedHolds); see noteHold.
	holdNotes map[lineKey]string
	// holdUnknown holds the lines of holdNotes whose proposed units the
	// report does not know: on Kaseya BMS the pass holds them or writes
	// them as the ledger says.
	holdUnknown map[lineKey]bool
	// replacements are the customers whose lines the proposed plan sets
	// instead of another's on the same contract (replacedCustomers), as
	// paired by lines: usage sync and the newly billed usage name them.
	replacements []replacement
	// serviceLines holds, by service, the contracts the PSA lists a line
	// of that service on (nil: not known), as listedContracts read them.
	serviceLines map[string]map[string]bool
	// listedOnly holds the lines of the current plan that a replaced
	// customer leaves on its contract, as BMS lists them
	// (withListedReplacedLines): the current mappings leave them as they
	// are.
	listedOnly map[lineKey]bool
}

// noteHold records note for the why of the line k of the proposed plan,
// and whether its proposed units are unknown.
func (c *compare) noteHold(k lineKey, note string, unknown bool) {
	if c.holdNotes == nil {
		c.holdNotes, c.holdUnknown = map[lineKey]string{}, map[lineKey]bool{}
	}
	c.holdNotes[k], c.holdUnknown[k] = note, unknown
}

type failedKey struct {
	proposed                   bool
	source, customer, contract string
}

type lineKey struct{ source, customer, contract, service string }

func keyOf(c usage.Change) lineKey {
	return lineKey{c.Source, c.CustomerID, c.ContractID, c.ServiceID}
}

// lines compares the contract lines of both plans.
func (c *compare) lines(rep *Report, cur, prop *usage.Plan) {
	curBy, propBy := map[lineKey]usage.Change{}, map[lineKey]usage.Change{}
	var keys []lineKey
	for _, ch := range cur.Changes {
		curBy[keyOf(ch)] = ch
		keys = append(keys, keyOf(ch))
	}
	for _, ch := range prop.Changes {
		if _, ok := curBy[keyOf(ch)]; !ok {
			keys = append(keys, keyOf(ch))
		}
		propBy[keyOf(ch)] = ch
	}
	onC, onP := integrationOn(c.current), integrationOn(c.proposed)
	c.readCycles(keys)
	noCycle := map[string]bool{} // contracts whose unknown cycle leaves a line's delta unknown
	// A line missing from one plan compares as a change with empty
	// customer and service fields (a Change shares them by pointer).
	lineOf := func(by map[lineKey]usage.Change, k lineKey) (usage.Change, bool) {
		if ch, ok := by[k]; ok {
			return ch, true
		}
		return usage.Change{ChangeCustomer: &usage.ChangeCustomer{}, ChangeService: &usage.ChangeService{}}, false
	}
	var replaced map[lineKey]lineKey
	if onC && onP {
		// With the integration off on either side, no pass sets the
		// line through either customer: each shows as it is.
		replaced = replacedCustomers(curBy, propBy)
	}
	merged := map[lineKey]bool{}
	for k, old := range replaced {
		merged[old] = true
		r := replacement{source: k.source, customer: k.customer, name: propBy[k].CustomerName, old: old.customer, oldName: curBy[old].CustomerName, contract: k.contract}
		if !slices.Contains(c.replacements, r) {
			c.replacements = append(c.replacements, r)
		}
	}
	for _, k := range keys {
		if merged[k] {
			continue // shown with the line of the customer that replaces it
		}
		// ck is the line under the current mappings: k, or the line of
		// the customer that k's customer replaces on the contract.
		ck := k
		if old, ok := replaced[k]; ok {
			ck = old
		}
		cc, inC := lineOf(curBy, ck)
		cp, inP := lineOf(propBy, k)
		either := cc
		if !inC {
			either = cp
		}
		l := Line{Source: k.source, CustomerID: k.customer, CustomerName: either.CustomerName, ContractID: k.contract,
			ServiceID: k.service, ServiceName: cmp.Or(cp.ServiceName, cc.ServiceName), NewService: isUnknown(k.service),
			CurrentSynced: inC && onC, ProposedSynced: inP && onP}
		if cp.CustomerName != "" {
			l.CustomerName = cp.CustomerName
		}
		if ck != k {
			l.CurrentCustomerID, l.CurrentCustomerName = ck.customer, cc.CustomerName
		}
		psaLine, hasLine, contractRead := c.be.line(psa.LineKey{ContractID: k.contract, ServiceID: k.service})
		switch {
		case l.NewService:
			l.Now = ptr(int64(0)) // no contract has a line of a service that does not exist yet
		case contractRead:
			l.Now = ptr(psaLine.Quantity)
		case either.CurrentKnown:
			// Kaseya BMS: the units psa-syncd's ledger says it set, unless
			// an operator said the line may no longer hold them.
			switch doubted, zero := either.LedgerDoubted(); {
			case zero:
				l.Now = ptr(int64(0))
			case !doubted:
				l.Now = ptr(either.Current)
			}
		}
		l.Current, l.CurrentHeld = c.quantity(l.CurrentSynced, cc, l.Now)
		if c.listedOnly[ck] {
			// No usage sets it under the current mappings: it keeps
			// what it holds now.
			l.Current, l.CurrentHeld = l.Now, nil
		}
		l.Proposed, l.ProposedHeld = c.quantity(l.ProposedSynced, cp, l.Now)
		if cm, ok := c.proposed.Customer(k.source, k.customer); ok && !l.ProposedSynced && isUnknown(cm.ContractID) && cm.ContractID != k.contract {
			// The contract known only after apply may be this one.
			l.Proposed, l.ProposedHeld = nil, nil
		}
		if c.holdUnknown[k] && l.ProposedSynced {
			// Held or written as psa-syncd's ledger says (withRepointHolds).
			l.Proposed, l.ProposedHeld = nil, nil
		}

		svc, managed := c.tp.serviceByID(k.service)
		priceChanged := managed && !svc.Created && svc.Before != nil && svc.After != nil && *svc.Before != *svc.After
		if managed && svc.ActiveAfter != nil && *svc.ActiveAfter && l.CurrentSynced && cc.Action == usage.ActionFailed &&
			cp.Action != usage.ActionFailed && !c.failed[failedKey{false, ck.source, ck.customer, ck.contract}] {
			// The service is inactive in the PSA and this plan makes it
			// active (readOnly.activeAfter): the pass under the current
			// mappings writes nothing to the line, which keeps what it
			// bills now, where the pass after apply writes it.
			l.Current, l.reactivated = l.Now, true
		}
		if hasLine {
			l.PriceFrom = PriceFromLine
			l.UnitPrice, l.ProposedUnitPrice = ptr(psaLine.UnitPrice), ptr(psaLine.UnitPrice)
		} else {
			l.PriceFrom = PriceFromService
			l.UnitPrice, l.ProposedUnitPrice = c.servicePrice(k.service, false), c.servicePrice(k.service, true)
		}
		keepsPrice := hasLine || c.keepsPostedPrice(l, cp)
		if !hasLine && keepsPrice {
			l.ProposedUnitPrice = l.UnitPrice
		}

		// Both plans compute a synced line from the same usage: with the
		// same products (and the same failure, if any) it comes out the same.
		// Not always: a line may be held under the proposed mappings only,
		// with the same products (a product mapping removed leaves the
		// line of its service billing, and the pass holds the customer's
		// new lines of other services: previous_service), so the units
		// each plan leaves must match too.
		same := l.CurrentSynced == l.ProposedSynced && samePtr(l.UnitPrice, l.ProposedUnitPrice) &&
			(!l.CurrentSynced || (slices.Equal(cc.Products, cp.Products) && (cc.Action == usage.ActionFailed) == (cp.Action == usage.ActionFailed) &&
				(cc.Action != usage.ActionFailed || cc.Reason == cp.Reason) && sameUnits(l)))
		if same && (!priceChanged || !keepsPrice) {
			continue
		}
		_, monthsBefore := c.period(k, false)
		p, monthsAfter := c.period(k, true)
		if monthsAfter > 1 {
			l.BillingPeriod = p
		}
		l.MonthlyDelta = delta(l, same, monthsBefore, monthsAfter)
		// A delta unknown only for want of the billing cycle.
		cycleUnknown := l.MonthlyDelta == nil && (monthsBefore == 0 || monthsAfter == 0) && delta(l, same, 1, 1) != nil
		if cycleUnknown {
			noCycle[k.contract] = true
		}
		// What the line would bill once its held changes are released.
		released := l
		if h := l.CurrentHeld; h != nil {
			released.Current = ptr(h.Units)
		}
		if h := l.ProposedHeld; h != nil {
			released.Proposed = ptr(h.Units)
		}
		for _, h := range []*Held{l.CurrentHeld, l.ProposedHeld} {
			if h != nil {
				h.MonthlyDelta = delta(released, same, monthsBefore, monthsAfter)
			}
		}
		if l.CurrentSynced && !l.ProposedSynced {
			zeroed := l
			zeroed.Proposed = ptr(int64(0))
			l.zeroedDelta = delta(zeroed, false, monthsBefore, monthsAfter)
		}
		l.Why = c.why(l, cc, cp, svc, priceChanged)
		if cycleUnknown {
			l.Why = strings.TrimPrefix(l.Why+"; monthly Δ not computed: the "+c.contractNoun()+"'s billing cycle is unknown (see Not computed)", "; ")
		}
		l.heldMoved = l.ProposedHeld != nil && c.moved(l.Source, added(cc.Products, cp.Products))
		rep.Lines = append(rep.Lines, l)
	}
	rep.NotComputed = append(rep.NotComputed, c.cycleProblems(noCycle)...)
	slices.SortFunc(rep.Lines, func(a, b Line) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.CustomerName), strings.ToLower(b.CustomerName)),
			strings.Compare(a.CustomerID, b.CustomerID), strings.Compare(a.ContractID, b.ContractID),
			strings.Compare(strings.ToLower(a.ServiceName), strings.ToLower(b.ServiceName)), strings.Compare(a.ServiceID, b.ServiceID))
	})
}

// replacedCustomers pairs the lines of the proposed plan with those of the
// current plan that are the same PSA line set through another customer:
// the line (source, contract, service) of a customer only the proposed
// mappings sync, and of one only the current mappings sync, as when a
// customer mapping is replaced on the same contract (customer_id changed).
// Shown apart, the old customer's line would read as an invoice line that
// "keeps its units" next to the new one, where the pass after apply writes
// the one line through the new customer. A line that more than one
// customer leaves or takes is not paired: which replaces which cannot be
// told. The map goes from the proposed line to the current one.
func replacedCustomers(curBy, propBy map[lineKey]usage.Change) map[lineKey]lineKey {
	type psaLine struct{ source, contract, service string }
	left, taken := map[psaLine][]lineKey{}, map[psaLine][]lineKey{}
	for k := range curBy {
		if _, ok := propBy[k]; !ok {
			pl := psaLine{k.source, k.contract, k.service}
			left[pl] = append(left[pl], k)
		}
	}
	for k := range propBy {
		if _, ok := curBy[k]; !ok {
			pl := psaLine{k.source, k.contract, k.service}
			taken[pl] = append(taken[pl], k)
		}
	}
	out := map[lineKey]lineKey{}
	for pl, news := range taken {
		if olds := left[pl]; len(news) == 1 && len(olds) == 1 {
			out[news[0]] = olds[0]
		}
	}
	return out
}

// replacement is a customer whose lines the proposed plan sets instead of
// old's on contract.
type replacement struct{ source, customer, name, old, oldName, contract string }

// replacing returns the text naming the customers customer replaces
// (old false) or is replaced by (old true) on a contract, and the other
// customer's id, or "" when lines pair it with no other customer.
func (c *compare) replacing(source, customer string, old bool) (text, other string) {
	var parts []string
	for _, r := range c.replacements {
		switch {
		case r.source != source:
		case !old && r.customer == customer:
			parts = append(parts, fmt.Sprintf("%s on contract %s", nameID(r.oldName, r.old), r.contract))
			other = cmp.Or(other, r.old)
		case old && r.old == customer:
			parts = append(parts, fmt.Sprintf("%s on contract %s", nameID(r.name, r.customer), r.contract))
			other = cmp.Or(other, r.customer)
		}
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), ", "), other
}

// failures are the Not computed entries of the customers that the plans
// fail as a whole (the PSA could not read their contract, their usage
// could not be read): each names the customer, the contract and the error,
// which the PSA client has already stripped of credentials. A failure of
// both plans is one entry.
func failures(cur, prop *usage.Plan) []string {
	type key struct{ source, customer, contract, err string }
	in := map[key][2]bool{}
	var order []key
	var names []string
	for i, p := range []*usage.Plan{cur, prop} {
		for _, f := range p.Failures {
			k := key{f.Source, f.CustomerID, f.ContractID, f.Error}
			seen, ok := in[k]
			if !ok {
				order = append(order, k)
				names = append(names, f.CustomerName)
			}
			seen[i] = true
			in[k] = seen
		}
	}
	var out []string
	for i, k := range order {
		which := map[[2]bool]string{{true, false}: "the current mappings", {false, true}: "the proposed mappings", {true, true}: "the current and the proposed mappings"}[in[k]]
		contract := ""
		if k.contract != "" {
			contract = " on contract " + k.contract
		}
		out = append(out, fmt.Sprintf("The lines of customer %s%s, under %s (shown as ? where the plan changes them): %s.",
			nameID(names[i], k.customer), contract, which, strings.TrimSuffix(k.err, ".")))
	}
	return out
}

// usageProblems reports what in the usage makes the quantities say nothing
// about what the mappings bill: no usage at all for the period (usual early
// in the month, before the vendor has data), or none that feeds a mapped
// line. A pass then leaves every line as it is, so the report would show no
// change where the mappings will bill once usage arrives: that goes to Not
// computed, which heads the report with the Incomplete warning. The source's
// other problems (rows it skipped or could not read, which a pass reports
// as warnings or as a customer's failure) are listed under Notes.
func usageProblems(rep *Report, sourceName string, cur, prop *usage.Plan, records []source.Record) {
	missing := map[string][2]bool{}
	var order []string
	var notes []string
	for i, p := range []*usage.Plan{cur, prop} {
		for _, pr := range p.Problems {
			text := pr.String()
			if !errors.Is(pr.Err, usage.ErrUsageMissing) {
				if !slices.Contains(notes, text) {
					notes = append(notes, text)
				}
				continue
			}
			seen, ok := missing[text]
			if !ok {
				order = append(order, text)
			}
			seen[i] = true
			missing[text] = seen
		}
	}
	if len(records) == 0 && len(order) == 0 {
		// missing_usage: keep records no problem for it.
		order = append(order, fmt.Sprintf("%s: no usage at all for %s", sourceName, cur.Period))
		missing[order[0]] = [2]bool{true, true}
	}
	for _, text := range order {
		which := map[[2]bool]string{{true, false}: "the current mappings", {false, true}: "the proposed mappings", {true, true}: "the current and the proposed mappings"}[missing[text]]
		rep.NotComputed = append(rep.NotComputed, fmt.Sprintf("Quantities under %s: %s. Until usage arrives a pass changes no line, so this report cannot show what the mappings bill once it does.",
			which, strings.TrimSuffix(text, ".")))
	}
	const maxNotes = 5
	for i, n := range notes {
		if i == maxNotes {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d more problems with the usage from %s (see `psa-syncd plan`).", len(notes)-i, sourceName))
			break
		}
		rep.Notes = append(rep.Notes, "Usage problem: "+n)
	}
}

// contractsEnding adds a note naming the contracts that the proposed
// mappings bill on and that end within the billing month of the effective
// date or the next, as `psa-syncd plan` lists them and a pass logs them:
// the pass after a contract's end fails its customer, and its usage is
// billed nowhere, unless a mapping names the contract that follows. The
// report is where a reviewer of the mappings looks; a plan that maps the
// renewal (next_contract_id) drops its contract from the note. Those
// ended already fail the plan, and are among the figures not computed.
func contractsEnding(rep *Report, prop *usage.Plan) {
	const maxContracts = 5
	var list []string
	n := 0
	for _, c := range prop.ContractsEnding {
		if c.When == usage.EndingEnded {
			continue
		}
		if n++; n > maxContracts {
			continue
		}
		list = append(list, fmt.Sprintf("customer %s on contract %s ends %s", nameID(c.CustomerName, c.CustomerID),
			nameID(c.ContractName, c.ContractID), c.EndDate.Format(time.DateOnly)))
	}
	if n == 0 {
		return
	}
	if n > maxContracts {
		list = append(list, fmt.Sprintf("and %d more (see `psa-syncd plan`)", n-maxContracts))
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("Mapped contracts end within the billing month of the effective date or the next: %s. "+
		"Map each customer to the contract that follows (next_contract_id of psa_customer_mapping) and apply before it ends, "+
		"or the passes after its end fail for the customer and bill its usage nowhere.", strings.Join(list, "; ")))
}

// unmatchedMappings adds a note for every customer mapping with usage sync
// on that the plan adds (or gives another customer_id, or turns usage sync
// on for) and that no row of the usage names, when the usage has rows: a
// misspelled customer_id never matches, so the next pass bills the
// customer nothing from usage and the report shows no change to review.
// The note names the usage's unmapped customers, among which the intended
// id usually is.
func unmatchedMappings(rep *Report, sourceName string, current, proposed *export.Document, prop *usage.Plan, records []source.Record) {
	if len(records) == 0 {
		return
	}
	seen := make(map[string]bool, len(records))
	for _, r := range records {
		seen[r.CustomerID] = true
	}
	var candidates []string
	// Customers with usage first, then those whose rows are all 0 (a trial
	// tenant may be the one the new mapping means).
	unmapped := slices.Concat(prop.Unmapped.Customers, prop.Unmapped.ZeroCustomers)
	for _, c := range unmapped {
		if len(candidates) == 5 {
			candidates = append(candidates, fmt.Sprintf("and %d more", len(unmapped)-5))
			break
		}
		if c.CustomerName != "" {
			candidates = append(candidates, fmt.Sprintf("%s (%s)", c.CustomerID, c.CustomerName))
		} else {
			candidates = append(candidates, c.CustomerID)
		}
	}
	for _, cm := range proposed.CustomerMappings {
		if cm.Source != sourceName || !cm.UsageSync || seen[cm.CustomerID] {
			continue
		}
		if was, ok := current.Customer(cm.Source, cm.CustomerID); ok && was.UsageSync {
			continue // not this plan's doing: psa_sync_customers_unreported watches it
		}
		name := cm.Source + "/" + cm.CustomerID
		if cm.CustomerName != "" {
			name += " (" + cm.CustomerName + ")"
		}
		note := fmt.Sprintf("Customer mapping %s syncs usage under this plan, but the usage from %s for %s has no row of customer id %q: "+
			"the next pass bills it nothing from usage. Check psa_customer_mapping.customer_id against the vendor's id", name, sourceName, prop.Period, cm.CustomerID)
		if len(candidates) > 0 {
			note += "; the usage's unmapped customers: " + strings.Join(candidates, ", ")
		}
		rep.Notes = append(rep.Notes, note+".")
	}
}

// withFailedLines returns p with a failed change for every line of a
// customer that p fails as a whole and that has none: such a customer has
// no changes at all when its contract could not be read. The lines are
// those its usage feeds under doc's mappings and those that the other
// plan has on the same contract for a service doc maps; their quantities
// are unknown, so the report shows them as ? wherever the plans differ.
func (c *compare) withFailedLines(p *usage.Plan, proposed bool, other *usage.Plan, records []source.Record) *usage.Plan {
	if len(p.Failures) == 0 {
		return p
	}
	doc := c.current
	if proposed {
		doc = c.proposed
	}
	services := map[string][]string{} // service id -> products with sync on, as the engine has them
	names := map[string]string{}
	byProduct := map[string]string{}
	for _, pm := range doc.ProductMappings {
		if pm.SyncEnabled {
			services[pm.Source+"\x00"+pm.ServiceID] = append(services[pm.Source+"\x00"+pm.ServiceID], pm.Product)
			names[pm.ServiceID] = cmp.Or(names[pm.ServiceID], pm.ServiceName)
			byProduct[pm.Source+"\x00"+pm.Product] = pm.ServiceID
		}
	}
	for _, ps := range services {
		slices.Sort(ps)
	}
	has := map[lineKey]bool{}
	for _, ch := range p.Changes {
		has[keyOf(ch)] = true
	}
	out := *p
	out.Changes = slices.Clone(p.Changes)
	for _, f := range p.Failures {
		c.failed[failedKey{proposed, f.Source, f.CustomerID, f.ContractID}] = true
		cust := &usage.ChangeCustomer{Source: f.Source, CustomerID: f.CustomerID, CustomerName: f.CustomerName, ContractID: f.ContractID}
		if cm, ok := doc.Customer(f.Source, f.CustomerID); ok {
			cust.CompanyID = cm.CompanyID
		}
		var ids []string
		for _, r := range records {
			if r.CustomerID == f.CustomerID {
				if id, ok := byProduct[f.Source+"\x00"+r.Product]; ok && !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
		for _, ch := range other.Changes {
			if ch.Source == f.Source && ch.CustomerID == f.CustomerID && ch.ContractID == f.ContractID && !slices.Contains(ids, ch.ServiceID) {
				if _, ok := services[f.Source+"\x00"+ch.ServiceID]; ok {
					ids = append(ids, ch.ServiceID)
				}
			}
		}
		for _, id := range ids {
			k := lineKey{f.Source, f.CustomerID, f.ContractID, id}
			if has[k] {
				continue
			}
			has[k] = true
			out.Changes = append(out.Changes, usage.Change{ChangeCustomer: cust,
				ChangeService: &usage.ChangeService{ServiceID: id, ServiceName: names[id], Products: services[f.Source+"\x00"+id]},
				Action:        usage.ActionFailed, Reason: f.Error})
		}
	}
	return &out
}

// withInactiveLines returns p, the plan under the current mappings made
// without PSA credentials, with the changes failed that the pass fails
// because their service is inactive (usage.Engine.checkServices), where the
// plan makes the service active again: the PSA's services were not read,
// but the Terraform plan's refresh did read that one as inactive. The line
// then shows, as with credentials, for the pass after apply writes it.
func (c *compare) withInactiveLines(p *usage.Plan) *usage.Plan {
	var out *usage.Plan
	for i, ch := range p.Changes {
		svc, ok := c.tp.serviceByID(ch.ServiceID)
		if !ok || svc.ActiveBefore == nil || *svc.ActiveBefore || svc.ActiveAfter == nil || !*svc.ActiveAfter ||
			ch.Action != usage.ActionUpdate && ch.Action != usage.ActionHeld {
			continue
		}
		if out == nil {
			cp := *p
			cp.Changes = slices.Clone(p.Changes)
			out = &cp
		}
		out.Changes[i].Action = usage.ActionFailed
		out.Changes[i].Reason = fmt.Sprintf("service %s is inactive in %s (as the Terraform plan read it)", ch.ServiceID, c.current.PSA.System.Title())
	}
	if out == nil {
		return p
	}
	return out
}

// withMovedHolds returns p, the plan under the proposed mappings, with
// the lines held that the pass after apply holds because the customer
// moved to another contract while its line on the contract it leaves
// still bills (usage.HoldMoved), as the report predicts them without
// psa-syncd's ledger (Options.State; with it, the engine decides them
// itself): a line p adds (no line of the service on the proposed contract,
// units to set) or raises (a line there, made by hand or set by psa-syncd
// before the customer left that contract) for a customer whose current
// mapping syncs usage on
// another contract, not its renewal (next_contract_id, which takes over
// from the old contract's end), where the PSA shows the service's line
// above 0 (cur). psa-syncd set that line, so its ledger says so too,
// unless the line was set by hand since.
//
// Where the PSA shows no line of the service on the old contract while
// the current mappings set it (Desired above 0), psa-syncd set it at an
// earlier pass, and the pass holds the new line, or the usage is new since
// its last pass, and the pass writes it. On Kaseya BMS, whose lines are
// never read, either is as likely: the report cannot tell which, so the
// line's proposed units are unknown (holdUnknown) and its why says both.
// On Autotask and ConnectWise the read would show a line psa-syncd set,
// so most likely it never did and the line is written, but the pass holds
// it when the ledger says otherwise (the old line deleted in the PSA, or
// out of the API user's sight: a read that shows no line does not release
// the hold); its why says both (holdNotes), as for a re-pointed product.
// Where the old contract is another customer's under the proposed
// mappings (a swap), the hold it says is the one the pass gives then:
// released once the pass has set that customer's line there.
func (c *compare) withMovedHolds(cur, p *usage.Plan) *usage.Plan {
	unread := c.current.PSA.System == psa.SystemKaseyaBMS
	billing, set := map[lineKey]int64{}, map[lineKey]int64{}
	for _, ch := range cur.Changes {
		switch {
		case ch.CurrentKnown && ch.Current > 0:
			billing[keyOf(ch)] = ch.Current
		case !ch.CurrentKnown && ch.Action == usage.ActionUpdate && ch.Desired > 0:
			set[keyOf(ch)] = ch.Desired
		}
	}
	var out *usage.Plan
	// The lines held, by index in p.Changes: held once every line is
	// known, since a line whose old contract is another customer's now
	// is written where the pass sets that customer's line there.
	var holds []movedHold
	holding := map[int]bool{}
	for i, ch := range p.Changes {
		if ch.Action != usage.ActionUpdate || ch.Desired <= 0 || ch.CurrentKnown && ch.Desired <= ch.Current {
			continue
		}
		cm, ok := c.current.Customer(ch.Source, ch.CustomerID)
		if !ok || !cm.UsageSync || cm.ContractID == ch.ContractID || cm.NextContractID == ch.ContractID || isUnknown(ch.ContractID) {
			continue
		}
		if pm, ok := c.proposed.Customer(ch.Source, ch.CustomerID); ok && pm.NextContractID == cm.ContractID {
			continue
		}
		old := lineKey{ch.Source, ch.CustomerID, cm.ContractID, ch.ServiceID}
		units, ok := billing[old]
		if !ok {
			units, ok := set[old]
			// Where the contract left is another customer's under the
			// proposed mappings (two customers swap contracts), the
			// pass writes the line once it has set that customer's line
			// there (usage.Engine.writeAwaited), not once the old line
			// is 0 or its contract ended.
			owner, swapped := c.ownerOf(ch.Source, ch.CustomerID, cm.ContractID)
			switch {
			case ok && !unread && !c.offline && swapped:
				c.noteHold(keyOf(ch), fmt.Sprintf("if psa-syncd set the line of this service on contract %[1]s, which the customer leaves (%[2]d units under the current mappings), "+
					"and %[3]s's read does not show it (deleted in %[3]s, or out of the API user's sight), the pass writes this line only once it has set that line for customer %[5]s, "+
					"whose contract %[1]s is under the proposed mappings: in the same pass, after that write, where it sets it; else it holds this line for review (previous_contract) "+
					"until a pass sets that line or an approval of this line (`psa-syncd sync --approve --customer ID --service ID`), "+
					"since a read that shows no line does not tell that it is 0; "+
					"where customer %[5]s's line there rises too and waits for this one (customer %[5]s's line on the contract it leaves still bills, as the read shows or psa-syncd's ledger says), "+
					"the pass holds both and writes neither by itself, since either write alone would bill one customer's usage on both contracts: "+
					"approve one of them (`psa-syncd sync --approve --customer ID --service ID`), and the pass after that approval writes the other; "+
					"if it never did (the usage is new since its last pass), the pass sets %[4]d",
					cm.ContractID, units, c.current.PSA.System.Title(), ch.Desired, owner), false)
			case ok && !unread && !c.offline:
				c.noteHold(keyOf(ch), fmt.Sprintf("if psa-syncd set the line of this service on contract %[1]s, which the customer leaves (%[2]d units under the current mappings), "+
					"and %[3]s's read does not show it (deleted in %[3]s, or out of the API user's sight), the pass holds this line for review (previous_contract) "+
					"until an approval of this line (`psa-syncd sync --approve --customer ID --service ID`) or the end of contract %[1]s before the effective date: "+
					"a read that shows no line does not tell that it is 0; if it never did (the usage is new since its last pass), the pass sets %[4]d",
					cm.ContractID, units, c.current.PSA.System.Title(), ch.Desired), false)
			case ok && unread && swapped:
				c.noteHold(keyOf(ch), fmt.Sprintf("proposed units unknown without psa-syncd's ledger (its state database): "+
					"if psa-syncd set the line of this service on contract %[1]s, which the customer leaves, at an earlier pass (%[2]d units under the current mappings), "+
					"which %[3]s cannot report, the pass writes this line only once it has set that line for customer %[5]s, whose contract %[1]s is under the proposed mappings: "+
					"in the same pass, after that write, where it sets it; else it holds this line at its units now for review (previous_contract) until a pass sets that line "+
					"or an approval of this line (`psa-syncd sync --approve --customer ID --service ID`); "+
					"where customer %[5]s's line there rises too (both lines rise, which the report cannot tell without the ledger either), the pass holds both and writes neither by itself, "+
					"since either write alone would bill one customer's usage on both contracts: approve one of them (`psa-syncd sync --approve --customer ID --service ID`), "+
					"and the pass after that approval writes the other; "+
					"if it never did (the usage is new since its last pass), the pass sets %[4]d",
					cm.ContractID, units, c.current.PSA.System.Title(), ch.Desired, owner), true)
			case ok && unread:
				c.noteHold(keyOf(ch), fmt.Sprintf("proposed units unknown without psa-syncd's ledger (its state database): "+
					"if psa-syncd set the line of this service on contract %[1]s, which the customer leaves, at an earlier pass (%[2]d units under the current mappings), "+
					"which %[3]s cannot report, the pass holds this line at its units now for review (previous_contract) until an approval of this line "+
					"(`psa-syncd sync --approve --customer ID --service ID`, once that line is set to 0) or the end of contract %[1]s before the effective date; "+
					"if it never did (the usage is new since its last pass), the pass sets %[4]d",
					cm.ContractID, units, c.current.PSA.System.Title(), ch.Desired), true)
			}
			continue
		}
		holds = append(holds, movedHold{i: i, old: cm.ContractID, units: units})
		holding[i] = true
	}
	for _, h := range holds {
		ch := p.Changes[h.i]
		if owner, ok := c.swappedWith(p, ch, h.old, holding); ok {
			// The pass writes the line after it has set the other
			// customer's line there (usage.Engine.writeAwaited).
			c.noteHold(keyOf(ch), fmt.Sprintf("contract %[1]s, which the customer leaves, still bills %[2]d units of this service, and is customer %[3]s's under the proposed mappings: "+
				"the pass sets that line for customer %[3]s first, then this one; if that write fails, this line is held for review (previous_contract) until a pass sets it",
				h.old, h.units, owner), false)
			continue
		}
		if out == nil {
			cp := *p
			cp.Changes = slices.Clone(p.Changes)
			out = &cp
		}
		out.Changes[h.i].HoldAsMoved(fmt.Sprintf("; contract %s, which the customer leaves, still bills %d units of this service: held for review, as the pass holds a line that would bill the usage a second time, until an approval of this line",
			h.old, h.units))
	}
	if out == nil {
		return p
	}
	return out
}

// movedHold is a line of the proposed plan that withMovedHolds holds:
// p.Changes[i], whose customer leaves contract old, where its line of the
// service bills units.
type movedHold struct {
	i     int
	old   string
	units int64
}

// swappedWith returns the customer whose proposed mapping names contract
// old, which ch's customer leaves, when the proposed plan p updates that
// customer's line of ch's service there and does not hold it
// (holding, by index): two customers swap contracts, and the pass writes
// ch's line after that one, in the same pass (usage.Engine.writeAwaited).
// A line rising on each other's contracts is held for both.
func (c *compare) swappedWith(p *usage.Plan, ch usage.Change, old string, holding map[int]bool) (string, bool) {
	owner, ok := c.ownerOf(ch.Source, ch.CustomerID, old)
	if !ok {
		return "", false
	}
	for j, o := range p.Changes {
		if o.Source == ch.Source && o.CustomerID == owner && o.ContractID == old && o.ServiceID == ch.ServiceID {
			return owner, o.Action == usage.ActionUpdate && !holding[j]
		}
	}
	return "", false
}

// ownerOf returns the customer of source other than customer whose
// proposed mapping names contract (as the pass's movedLookups.owner).
func (c *compare) ownerOf(source, customer, contract string) (string, bool) {
	for _, cm := range c.proposed.CustomerMappings {
		if cm.Source == source && cm.CustomerID != customer && (cm.ContractID == contract || cm.NextContractID == contract) {
			return cm.CustomerID, true
		}
	}
	return "", false
}

// quantity is what a pass leaves on a line: the change's desired quantity
// when psa-syncd sets the line, else the quantity now. A change the pass
// holds for review (the decrease or increase guard, or a mid-period
// adjustment later in the month) is not written: the line keeps the units the pass read, and
// the hold says what it would become.
func (c *compare) quantity(synced bool, ch usage.Change, now *int64) (*int64, *Held) {
	switch {
	case !synced:
		return now, nil
	case ch.Action == usage.ActionFailed || !c.usageKnown:
		return nil, nil
	case ch.Action == usage.ActionHeld:
		held := &Held{Units: ch.Desired, Approvable: ch.Approvable(), Hold: ch.Hold()}
		if doubted, _ := ch.LedgerDoubted(); doubted {
			// The line keeps what it holds now, not the ledger's units.
			return now, held
		}
		return ptr(ch.Current), held
	}
	return ptr(ch.Desired), nil
}

// keepsPostedPrice reports whether a line without a price of its own that
// can be read (Kaseya BMS) keeps its price under the proposed mappings: BMS
// keeps on every line the price it was posted at, and a pass posts a line
// only when it sets its units, at the service's price then. So a service's
// new price reaches only the lines the pass after apply writes.
func (c *compare) keepsPostedPrice(l Line, cp usage.Change) bool {
	return l.PriceFrom == PriceFromService && c.current.PSA.System == psa.SystemKaseyaBMS &&
		(!l.ProposedSynced || cp.Action != usage.ActionUpdate)
}

// servicePrice is a service's unit price before (after = false) or after
// apply: the plan's value for a psa_service it manages, else the PSA's.
func (c *compare) servicePrice(id string, after bool) *float64 {
	if s, ok := c.tp.serviceByID(id); ok {
		if after {
			return s.After
		}
		if s.Before != nil || s.Created {
			return s.Before
		}
	}
	if isUnknown(id) {
		return nil
	}
	svc, err := c.be.GetService(c.ctx, id)
	if err != nil {
		return nil
	}
	return ptr(svc.UnitPrice)
}

// servicePeriod is a service's billing period before (after = false) or
// after apply, "" when unknown. Only Autotask's services have one that
// sets what their price pays for: ConnectWise bills an addition on its
// agreement's cycle and Kaseya BMS a line on its contract's.
func (c *compare) servicePeriod(id string, after bool) psa.BillingPeriod {
	if c.current.PSA.System != psa.SystemAutotask {
		return ""
	}
	if s, ok := c.tp.serviceByID(id); ok {
		switch {
		case after:
			return s.PeriodAfter
		case s.Created || s.PeriodBefore != "":
			return s.PeriodBefore
		}
	}
	if isUnknown(id) {
		return ""
	}
	svc, err := c.be.GetService(c.ctx, id)
	if err != nil {
		return ""
	}
	return svc.BillingPeriod
}

// period is the billing period that the unit price of line k pays for
// before or after apply, and its months: on Autotask the service's
// (servicePeriod; a month when it has none), on ConnectWise the
// agreement's billing cycle and on Kaseya BMS the contract's. months is 0
// when the cycle is unknown: it could not be read, or its name is not one
// psa.CycleBillingPeriod knows (Weekly, One Time...), which is not
// guessed.
func (c *compare) period(k lineKey, after bool) (psa.BillingPeriod, int) {
	if c.current.PSA.System == psa.SystemAutotask {
		if p := c.servicePeriod(k.service, after); p.Months() > 0 {
			return p, p.Months()
		}
		return psa.BillingPeriodMonthly, 1
	}
	ct := c.contracts[k.contract]
	if ct == nil {
		return "", 0
	}
	p, ok := psa.CycleBillingPeriod(ct.BillingCycle)
	if !ok {
		return "", 0
	}
	return p, p.Months()
}

// readCycles reads the contracts of the lines keys for their billing
// cycle, on a PSA that bills a line on its contract's cycle (ConnectWise,
// Kaseya BMS): in one bulk read for the report, of the contracts the
// engine's plans did not read already. Contracts known only after apply
// are not read: their cycle is unknown.
func (c *compare) readCycles(keys []lineKey) {
	if c.current.PSA.System == psa.SystemAutotask || c.cyclesErr != "" {
		return
	}
	var ids []string
	for _, k := range keys {
		if !isUnknown(k.contract) && !slices.Contains(ids, k.contract) {
			ids = append(ids, k.contract)
		}
	}
	if len(ids) == 0 {
		return
	}
	got, err := c.be.readContracts(c.ctx, ids)
	if err != nil {
		c.cyclesErr = err.Error()
	}
	c.contracts = got
}

// contractNoun is what the PSA calls a contract.
func (c *compare) contractNoun() string {
	if c.current.PSA.System == psa.SystemConnectWise {
		return "agreement"
	}
	return "contract"
}

// cycleProblems are the Not computed entries of the contracts whose
// billing cycle is unknown, which leaves the monthly delta of their lines
// unknown: one per contract, or one for all when they could not be read.
func (c *compare) cycleProblems(contracts map[string]bool) []string {
	ids := slices.Sorted(maps.Keys(contracts))
	if len(ids) == 0 {
		return nil
	}
	noun := c.contractNoun()
	if c.cyclesErr != "" {
		return []string{fmt.Sprintf("Monthly Δ of the lines on %s %s: the billing cycles could not be read (%s), and a price per cycle is not taken as monthly.",
			noun+"s", strings.Join(ids, ", "), strings.TrimSuffix(c.cyclesErr, "."))}
	}
	var out []string
	for _, id := range ids {
		switch ct := c.contracts[id]; {
		case isUnknown(id):
			out = append(out, fmt.Sprintf("Monthly Δ of the lines on the %s known only after apply: its billing cycle cannot be read before, and a price per cycle is not taken as monthly.", noun))
		case ct == nil:
			out = append(out, fmt.Sprintf("Monthly Δ of the lines on %s %s: %s did not return the %s, so its billing cycle is unknown, and a price per cycle is not taken as monthly.",
				noun, id, c.current.PSA.System.Title(), noun))
		case strings.TrimSpace(ct.BillingCycle) == "":
			out = append(out, fmt.Sprintf("Monthly Δ of the lines on %s %s: the %s has no billing cycle, and a price per cycle is not taken as monthly.", noun, id, noun))
		default:
			out = append(out, fmt.Sprintf("Monthly Δ of the lines on %s %s: its billing cycle %q is not monthly, quarterly, semi-annual or annual, so its price per cycle cannot be turned into a monthly amount.",
				noun, id, ct.BillingCycle))
		}
	}
	return out
}

// delta is the monthly amount delta of a line, nil when unknown: each
// side's price is divided by the months of its billing period (0: an
// unknown one, which leaves the amount of a line with units unknown). A line
// whose quantity and price stay the same has none even when they are
// unknown.
func delta(l Line, same bool, monthsBefore, monthsAfter int) *float64 {
	amount := func(q *int64, p *float64, months int) *float64 {
		switch {
		case q == nil:
			return nil
		case *q == 0:
			return ptr(0.0)
		case p == nil, months == 0:
			return nil
		}
		return ptr(float64(*q) * *p / float64(months))
	}
	if same {
		return ptr(0.0)
	}
	a, b := amount(l.Current, l.UnitPrice, monthsBefore), amount(l.Proposed, l.ProposedUnitPrice, monthsAfter)
	if a == nil || b == nil {
		return nil
	}
	return ptr(round2(*b - *a))
}

// why says in words what in the plan changes a line.
func (c *compare) why(l Line, cc, cp usage.Change, svc *PlannedService, priceChanged bool) string {
	cmC, okC := c.current.Customer(l.Source, l.CustomerID)
	cmP, okP := c.proposed.Customer(l.Source, l.CustomerID)
	var parts []string
	if l.CurrentCustomerID != "" {
		// One PSA line, set through another customer (replacedCustomers).
		was := "no longer synced here"
		switch cm, ok := c.proposed.Customer(l.Source, l.CurrentCustomerID); {
		case !ok:
			was = "customer mapping removed"
		case cm.ContractID != l.ContractID:
			was = "moved to contract " + cm.ContractID
		case !cm.UsageSync:
			was = "usage sync switched off"
		}
		is := "synced here"
		switch {
		case !okC:
			is = "new customer mapping"
		case cmC.ContractID != l.ContractID:
			is = "moved here from contract " + cmC.ContractID
		case !cmC.UsageSync:
			is = "usage sync switched on"
		}
		parts = append(parts, fmt.Sprintf("one line in %s, which the next pass sets through customer %s (%s) instead of %s (%s)",
			c.current.PSA.System.Title(), l.CustomerID, is, l.CurrentCustomerID, was))
	}
	switch {
	case !l.CurrentSynced && l.ProposedSynced:
		switch {
		case l.NewService:
			parts = append(parts, "new product mapping: "+products(cp.Products)+", to a service this plan creates (its id is known after apply)")
		case okC && cmC.ContractID != l.ContractID && cmC.UsageSync && isUnknown(l.ContractID):
			parts = append(parts, fmt.Sprintf("the customer's contract is known only after apply: unless it is contract %s, the customer moves here from it", cmC.ContractID))
		case okC && cmC.ContractID != l.ContractID && cmC.UsageSync:
			parts = append(parts, fmt.Sprintf("customer moved here from contract %s", cmC.ContractID))
		case !okC:
			parts = append(parts, "new customer mapping")
		case !cmC.UsageSync:
			parts = append(parts, "usage sync switched on")
		case !integrationOn(c.current):
			parts = append(parts, "integration switched on")
		default:
			parts = append(parts, "new product mapping: "+products(added(cp.Products, cc.Products)))
		}
	case l.CurrentSynced && !l.ProposedSynced:
		keeps := "no longer synced: keeps its current units"
		switch {
		case l.Now != nil && *l.Now == 0:
			keeps = "no longer synced: stays at 0 units"
		case l.Now != nil:
			keeps = fmt.Sprintf("no longer synced: keeps its %d units", *l.Now)
		}
		switch {
		case !okP:
			parts = append(parts, "customer mapping removed; "+keeps)
		case isUnknown(cmP.ContractID):
			parts = append(parts, "the customer's contract is known only after apply: if it is another one, this line is no longer synced and keeps its units")
		case cmP.ContractID != l.ContractID:
			parts = append(parts, fmt.Sprintf("customer moved to contract %s; %s (still billed here)", cmP.ContractID, keeps))
		case !cmP.UsageSync:
			parts = append(parts, "usage sync switched off; "+keeps)
		case !integrationOn(c.proposed):
			parts = append(parts, "integration switched off; "+keeps)
		default:
			parts = append(parts, c.productsGone(l.Source, cc.Products)+"; "+keeps)
		}
	case l.CurrentSynced && !slices.Equal(cc.Products, cp.Products):
		if a := added(cp.Products, cc.Products); len(a) > 0 {
			parts = append(parts, "new product mapping: "+products(a))
		}
		if r := added(cc.Products, cp.Products); len(r) > 0 {
			parts = append(parts, c.productsGone(l.Source, r))
		}
	}
	if priceChanged {
		switch {
		case l.PriceFrom == PriceFromLine:
			parts = append(parts, fmt.Sprintf("service price %s → %s applies to new lines only; this line keeps its own price",
				money(*svc.Before), money(*svc.After)))
		case c.keepsPostedPrice(l, cp):
			parts = append(parts, fmt.Sprintf("service price %s → %s applies to the lines a pass posts; this line's units do not change, so it is not posted again and keeps the price it was posted at",
				money(*svc.Before), money(*svc.After)))
		default:
			parts = append(parts, fmt.Sprintf("service price %s → %s", money(*svc.Before), money(*svc.After)))
		}
	}
	for i, ch := range []usage.Change{cc, cp} {
		switch {
		case ch.Action != usage.ActionFailed:
		case i == 0 && l.reactivated:
			parts = append(parts, fmt.Sprintf("service %s made active again by this plan: under the current mappings the pass writes nothing to this line (the service is inactive in %s)",
				l.ServiceID, c.current.PSA.System.Title()))
		case c.failed[failedKey{i == 1, ch.Source, ch.CustomerID, ch.ContractID}]:
			parts = append(parts, "cannot be computed: the customer's lines could not be planned (see Not computed)")
		default:
			parts = append(parts, "cannot be computed: "+ch.Reason)
		}
	}
	hp, hc := l.ProposedHeld, l.CurrentHeld
	switch {
	case hp != nil:
		parts = append(parts, heldText(hp, *l.Proposed, true, c.current.PSA.System))
	case hc != nil && l.ProposedSynced:
		parts = append(parts, "under the current mappings the next pass would hold this line: "+heldText(hc, *l.Current, false, c.current.PSA.System))
	case hc != nil:
		parts = append(parts, "under the current mappings the next pass would hold it: "+heldText(hc, *l.Current, false, c.current.PSA.System))
	}
	if note, ok := c.holdNotes[lineKey{l.Source, l.CustomerID, l.ContractID, l.ServiceID}]; ok && l.ProposedSynced && hp == nil {
		parts = append(parts, note)
	}
	return strings.Join(slices.Compact(parts), "; ")
}

// heldText says that a line is held for review at units, what releases it
// on PSA sys and, with withDelta, the line's monthly delta then.
func heldText(h *Held, units int64, withDelta bool, sys psa.System) string {
	var why string
	switch h.Hold {
	case usage.HoldPosted:
		why = "its billing period at the effective date is already approved and posted (invoiced)"
	case usage.HoldLaterWrite:
		why = "psa-syncd already changed it from a later date"
	case usage.HoldLaterChange:
		why = "its units change again later in the billing month"
	}
	if !h.Approvable {
		if why == "" {
			why = "its units change again later in the billing month"
		}
		return fmt.Sprintf("held for review: stays at %d, since %s (no pass sets %d, not even `sync --approve`)", units, why, h.Units)
	}
	if h.Hold == usage.HoldVanished {
		return fmt.Sprintf("held for review: the PSA's read shows no line where psa-syncd set one, and adding it could double it; stays at %d until `psa-syncd sync --approve --customer ID --service ID` of this line, which sets %d", units, h.Units)
	}
	if h.Hold == usage.HoldMoved {
		const what = "held for review: psa-syncd's line of the customer's service on another contract still bills, and writing this one would bill the usage twice"
		if movedReleasedByRead(sys) {
			// The pass reads the old contract (usage.Engine.movedLine):
			// its line at 0, or the contract ended before the effective
			// date, releases the hold.
			return fmt.Sprintf("%s; stays at %d until that line is set to 0 or that contract ended before the effective date in %s, after which the next pass writes this one by itself, or until `psa-syncd sync --approve --customer ID --service ID` of this line; either sets %d",
				what, units, sys.Title(), h.Units)
		}
		// Kaseya BMS: the pass reads the old contract's record alone.
		return fmt.Sprintf("%s; stays at %d until that contract ended before the effective date in %s, after which the next pass writes this one by itself, or until `psa-syncd sync --approve --customer ID --service ID` of this line once that line is set to 0 (psa-syncd cannot read the lines of %s); either sets %d",
			what, units, sys.Title(), sys.Title(), h.Units)
	}
	if h.Hold == usage.HoldPreviousService {
		const what = "held for review: psa-syncd's line of the customer's service that no product mapping names any more (a product re-pointed to another service, its mapping removed, or its sync_enabled turned off) still bills, and writing this one would bill the usage twice"
		if movedReleasedByRead(sys) {
			// The pass reads the old service's line with this one (or
			// with the contract the customer left): its line at 0, or
			// its contract ended before the effective date, releases
			// the hold (usage.Engine.repointedLine); a read that shows
			// no line of it does not.
			return fmt.Sprintf("%s; stays at %d until that line is set to 0 or its contract ended before the effective date in %s, after which the next pass writes this one by itself, or until `psa-syncd sync --approve --customer ID --service ID` of this line (also when that line was deleted: a read that shows no line does not release it); either sets %d",
				what, units, sys.Title(), h.Units)
		}
		// Kaseya BMS: only the old line's contract's end, from its
		// record, tells the pass that the line no longer bills.
		return fmt.Sprintf("%s; stays at %d until its contract ended before the effective date in %s, after which the next pass writes this one by itself, or until `psa-syncd sync --approve --customer ID --service ID` of this line once that line is set to 0 (psa-syncd cannot read the lines of %s); either sets %d",
			what, units, sys.Title(), sys.Title(), h.Units)
	}
	if h.Hold == usage.HoldStaleRead {
		return fmt.Sprintf("held for review: the PSA's read shows the units from before psa-syncd's last write of the line, and an adjustment from it could apply that write twice; stays at %d until `psa-syncd sync --approve --customer ID --service ID` of this line, which sets %d", units, h.Units)
	}
	if h.Hold == usage.HoldSurge {
		// The review code is the pass's, over the lines it holds: the
		// report's plan is not that pass.
		s := fmt.Sprintf("held for review (surge guard: many lines rise sharply at once, as when the vendor counts twice): stays at %d until an approval of the surge (`psa-syncd sync --approve --surge CODE`, with the review code `psa-syncd plan` gives once applied) or of this line, which sets %d", units, h.Units)
		if withDelta && h.MonthlyDelta != nil {
			s += fmt.Sprintf(" (monthly Δ then %s)", signed(*h.MonthlyDelta))
		}
		return s
	}
	guard := "decrease guard"
	if h.Units > units {
		guard = "increase guard"
	}
	s := fmt.Sprintf("held for review (%s): stays at %d until `psa-syncd sync --approve`, which sets %d", guard, units, h.Units)
	if withDelta && h.MonthlyDelta != nil {
		s += fmt.Sprintf(" (monthly Δ then %s)", signed(*h.MonthlyDelta))
	}
	return s
}

// movedReleasedByRead reports whether a pass on PSA sys writes a line
// held as previous_contract by itself once the line on the contract the
// customer left reads 0, or that contract ended before the effective date
// (usage.Engine.movedLine reads the old contracts), and one held as
// previous_service once the old service's line reads 0 or its contract
// ended (usage.Engine.repointedLine): Autotask and ConnectWise PSA. On
// Kaseya BMS, whose lines psa-syncd cannot read, only the contract's end
// does.
func movedReleasedByRead(sys psa.System) bool {
	return sys == psa.SystemAutotask || sys == psa.SystemConnectWise
}

// moved reports whether any of products is mapped, with sync on, to a
// service under the proposed mappings.
func (c *compare) moved(source string, products []string) bool {
	return slices.ContainsFunc(products, func(p string) bool {
		pm, ok := c.proposed.Product(source, p)
		return ok && pm.SyncEnabled
	})
}

// productsGone says why products no longer feed a service under the
// proposed mappings.
func (c *compare) productsGone(source string, ps []string) string {
	var removed, off, moved []string
	for _, p := range ps {
		switch pm, ok := c.proposed.Product(source, p); {
		case !ok:
			removed = append(removed, p)
		case !pm.SyncEnabled:
			off = append(off, p)
		default:
			moved = append(moved, fmt.Sprintf("%s (now to service %s)", p, cmp.Or(pm.ServiceName, pm.ServiceID)))
		}
	}
	var parts []string
	if len(removed) > 0 {
		parts = append(parts, "product mapping removed: "+products(removed))
	}
	if len(off) > 0 {
		parts = append(parts, "sync_enabled switched off: "+products(off))
	}
	if len(moved) > 0 {
		parts = append(parts, "product mapped to another service: "+products(moved))
	}
	return strings.Join(parts, "; ")
}

// added returns the products in a that are not in b.
func added(a, b []string) []string {
	var out []string
	for _, p := range a {
		if !slices.Contains(b, p) {
			out = append(out, p)
		}
	}
	return out
}

func products(ps []string) string {
	if len(ps) == 0 {
		return "no products"
	}
	return strings.Join(ps, " + ")
}

// usageSync lists the customers whose usage sync starts or stops.
func (c *compare) usageSync(rep *Report) {
	type key struct{ source, customer string }
	seen := map[key]bool{}
	var all []export.CustomerMapping
	for _, cm := range append(slices.Clone(c.current.CustomerMappings), c.proposed.CustomerMappings...) {
		if k := (key{cm.Source, cm.CustomerID}); !seen[k] {
			seen[k] = true
			all = append(all, cm)
		}
	}
	for _, cm := range all {
		cmC, okC := c.current.Customer(cm.Source, cm.CustomerID)
		cmP, okP := c.proposed.Customer(cm.Source, cm.CustomerID)
		onC, onP := okC && cmC.UsageSync, okP && cmP.UsageSync
		if onC == onP {
			continue
		}
		sc := SyncChange{Source: cm.Source, CustomerID: cm.CustomerID, CustomerName: cmp.Or(cmP.CustomerName, cmC.CustomerName), Starts: onP}
		// A customer whose lines another's replace on the same
		// contract: its usage sync starting or stopping moves the
		// lines to the other customer, the same lines, still billed.
		replaces, by := "", ""
		if onP {
			replaces, sc.Replaces = c.replacing(cm.Source, cm.CustomerID, false)
		} else {
			by, sc.ReplacedBy = c.replacing(cm.Source, cm.CustomerID, true)
		}
		switch {
		case replaces != "" && !okC:
			sc.Why = "new customer mapping: replaces " + replaces + ", setting the same contract lines (see the lines)"
		case replaces != "":
			sc.Why = "usage_sync switched on: replaces " + replaces + ", setting the same contract lines (see the lines)"
		case by != "" && !okP:
			sc.Why = "customer mapping removed: replaced by " + by + ", which sets the same contract lines (see the lines)"
		case by != "":
			sc.Why = "usage_sync switched off: replaced by " + by + ", which sets the same contract lines (see the lines)"
		case !okC:
			sc.Why = "new customer mapping"
		case !okP:
			sc.Why = "customer mapping removed: its usage becomes unmapped, its contract lines keep their quantities"
		case onP:
			sc.Why = "usage_sync switched on"
		default:
			sc.Why = "usage_sync switched off: its contract lines keep their quantities"
		}
		if !onP && by == "" {
			if sc.KeepsBilling, sc.KeepsBillingPartial = keptBilling(rep.Lines, cm.Source, cm.CustomerID); sc.KeepsBilling != nil {
				sc.Why += fmt.Sprintf(" and go on billing %s per month, which no pass updates any more", atLeast(*sc.KeepsBilling, sc.KeepsBillingPartial))
			}
		}
		rep.UsageSync = append(rep.UsageSync, sc)
	}
	slices.SortFunc(rep.UsageSync, func(a, b SyncChange) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.CustomerID, b.CustomerID))
	})
}

// keptBilling is the monthly amount the lines of a customer that psa-syncd
// stops writing (CurrentSynced, not ProposedSynced) bill at the units they
// keep (SyncChange.KeepsBilling): each line's delta less its delta once set
// to 0. partial reports that some line's amount is unknown: the sum is
// then that of the others, a lower bound. Nil when every line's is
// unknown.
func keptBilling(lines []Line, source, customer string) (sum *float64, partial bool) {
	var known float64
	var n int
	for _, l := range lines {
		if l.Source != source || l.CustomerID != customer || l.CurrentCustomerID != "" || !l.CurrentSynced || l.ProposedSynced {
			continue
		}
		if l.MonthlyDelta == nil || l.zeroedDelta == nil {
			partial = true
			continue
		}
		known += *l.MonthlyDelta - *l.zeroedDelta
		n++
	}
	if partial && n == 0 {
		return nil, false
	}
	return ptr(round2(known)), partial
}

// atLeast formats a monthly amount, "at least" it when it is the known
// part of a sum (partial).
func atLeast(amount float64, partial bool) string {
	if partial {
		return fmt.Sprintf("at least %.2f", amount)
	}
	return fmt.Sprintf("%.2f", amount)
}

// unmapped lists usage that becomes unmapped or newly billed, that of
// sourceName, the usage source, whose rows are records.
func (c *compare) unmapped(rep *Report, sourceName string, cur, prop *usage.Plan, records []source.Record, usageKnown bool) {
	if !usageKnown {
		return
	}
	billedCur, billedProp := billedUsage(c.current, sourceName, records), billedUsage(c.proposed, sourceName, records)
	customerCur, customerProp := billedCustomerUsage(c.current, sourceName, records), billedCustomerUsage(c.proposed, sourceName, records)
	type entry struct {
		u   UsageChange
		why string
		// usageSync is set for a customer mapped with usage_sync =
		// false. Its usage is billed neither way, so going from no
		// mapping to sync off is no change, as for a product mapped
		// with sync_enabled = false; its usage sync starting or stopping
		// is in rep.UsageSync.
		usageSync bool
	}
	index := func(u usage.Unmapped) map[string]entry {
		m := map[string]entry{}
		for _, p := range u.Products {
			m["product/"+p.Product] = entry{UsageChange{Kind: "product", ID: p.Product, Name: p.ProductName, Customers: p.Customers, Quantity: p.Quantity}, "no product mapping", false}
		}
		for _, p := range u.SyncOff {
			m["product/"+p.Product] = entry{UsageChange{Kind: "product", ID: p.Product, Name: p.ProductName, Customers: p.Customers, Quantity: p.Quantity}, "product mapping has sync_enabled = false", false}
		}
		// Those with quantity 0 only are listed apart by the plan; here
		// they are unmapped as before, with their quantity of 0.
		for _, p := range u.ZeroProducts {
			m["product/"+p.Product] = entry{UsageChange{Kind: "product", ID: p.Product, Name: p.ProductName, Customers: p.Customers, Quantity: p.Quantity}, "no product mapping", false}
		}
		for _, cu := range slices.Concat(u.Customers, u.ZeroCustomers) {
			m["customer/"+cu.CustomerID] = entry{UsageChange{Kind: "customer", ID: cu.CustomerID, Name: cu.CustomerName, Quantity: cu.Quantity}, "no customer mapping", false}
		}
		for _, cu := range u.SyncOffCustomers {
			m["customer/"+cu.CustomerID] = entry{UsageChange{Kind: "customer", ID: cu.CustomerID, Name: cu.CustomerName, Quantity: cu.Quantity},
				"customer mapping has usage_sync = false", true}
		}
		return m
	}
	ic, ip := index(cur.Unmapped), index(prop.Unmapped)
	for k, e := range ip {
		if _, ok := ic[k]; !ok && !e.usageSync {
			e.u.Why = e.why
			if e.u.Kind == "product" {
				// The product's usage of every customer becomes
				// unmapped; the current mappings billed only that
				// of the customers with usage sync on.
				b := billedCur[e.u.ID]
				e.u.BilledQuantity, e.u.BilledCustomers = ptr(b.quantity), ptr(b.customers)
				if b.quantity != e.u.Quantity || b.customers != e.u.Customers {
					e.u.Why += fmt.Sprintf("; the current mappings bill %d of it (%s), the rest is of customers with no customer mapping or usage_sync = false",
						b.quantity, plural(b.customers, "customer", "customers"))
				}
			} else {
				e.u.BilledQuantity = ptr(customerCur[e.u.ID])
			}
			rep.Unmapped = append(rep.Unmapped, e.u)
		}
	}
	for k, e := range ic {
		if _, ok := ip[k]; !ok && !e.usageSync {
			e.u.Why = "mapped by this plan (was: " + e.why + ")"
			if e.u.Kind == "product" {
				// A product mapping bills only the usage of the
				// customers with usage sync on under the proposed
				// mappings: the rest stays unbilled.
				b := billedProp[e.u.ID]
				rest, restCustomers := e.u.Quantity-b.quantity, e.u.Customers-b.customers
				if b.customers == 0 {
					rep.Notes = append(rep.Notes, fmt.Sprintf("Product %s is mapped by this plan, but none of its usage is billed: all of it (%d, %s) is of customers with no customer mapping or usage_sync = false under this plan.",
						nameID(e.u.Name, e.u.ID), e.u.Quantity, plural(e.u.Customers, "customer", "customers")))
					continue
				}
				e.u.Customers, e.u.Quantity = b.customers, b.quantity
				e.u.BilledQuantity, e.u.BilledCustomers = ptr(b.quantity), ptr(b.customers)
				if restCustomers > 0 {
					e.u.Why += fmt.Sprintf("; %d more (%s) stays unbilled: customers with no customer mapping or usage_sync = false", rest, plural(restCustomers, "customer", "customers"))
				}
			}
			if e.u.Kind == "customer" {
				e.u.BilledQuantity = ptr(customerProp[e.u.ID])
				// Usage the old customer's lines billed, now set
				// through this one: not new billing.
				if replaces, id := c.replacing(sourceName, e.u.ID, false); replaces != "" {
					e.u.Why += ": replaces " + replaces + ", setting the same contract lines, billed before (see the lines)"
					e.u.Replaces = id
				}
			}
			rep.NewlyBilled = append(rep.NewlyBilled, e.u)
		}
	}
	order := func(a, b UsageChange) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.ID, b.ID))
	}
	slices.SortFunc(rep.Unmapped, order)
	slices.SortFunc(rep.NewlyBilled, order)
}

// billed is the usage of one product that the mappings bill.
type billed struct {
	customers int
	quantity  int64
}

// billedUsage sums records, the rows of usage source sourceName, per
// product over the customers that d maps with usage_sync on: the usage a
// pass under d bills once the product is mapped with sync_enabled on.
func billedUsage(d *export.Document, sourceName string, records []source.Record) map[string]billed {
	on := map[string]bool{}
	for _, cm := range d.CustomerMappings {
		if cm.Source == sourceName && cm.UsageSync {
			on[cm.CustomerID] = true
		}
	}
	seen := map[[2]string]bool{}
	out := map[string]billed{}
	for _, r := range records {
		if !on[r.CustomerID] {
			continue
		}
		b := out[r.Product]
		if k := [2]string{r.Product, r.CustomerID}; !seen[k] {
			seen[k] = true
			b.customers++
		}
		b.quantity += r.Quantity
		out[r.Product] = b
	}
	return out
}

// billedCustomerUsage sums records, the rows of usage source sourceName,
// per customer over the products that d maps with sync_enabled on: the
// usage a pass under d bills once the customer is mapped with usage_sync
// on.
func billedCustomerUsage(d *export.Document, sourceName string, records []source.Record) map[string]int64 {
	out := map[string]int64{}
	for _, r := range records {
		if m, ok := d.Product(sourceName, r.Product); ok && m.SyncEnabled {
			out[r.CustomerID] += r.Quantity
		}
	}
	return out
}

func integrationOn(d *export.Document) bool { return d.Integration == nil || d.Integration.Enabled }

// sameUnits reports whether both plans leave l at the same units, held
// alike (the same hold, to the same units) or not held.
func sameUnits(l Line) bool {
	a, b := l.CurrentHeld, l.ProposedHeld
	return samePtr(l.Current, l.Proposed) && (a == nil) == (b == nil) && (a == nil || a.Units == b.Units && a.Hold == b.Hold)
}

// samePtr reports whether a and b are both nil (unknown) or point to
// equal values.
func samePtr[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func ptr[T any](v T) *T { return &v }

// round2 rounds f to cents, halves away from zero. f is first rounded to
// ten decimals, so that a product such as 3 × 0.095, 0.28499999999999998
// in binary, rounds as the 0.285 it stands for.
func round2(f float64) float64 {
	return math.Round(math.Round(f*1e10)/1e8) / 100
}

// leftBilling returns the orphaned lines of prop, the plan under the
// proposed mappings, that cur, the plan under the current ones, does not
// list: the lines the plan leaves billing with no mapping (Report.LeftBilling).
func leftBilling(cur, prop *usage.Plan) []usage.OrphanedLine {
	now := map[[2]string]bool{}
	for _, l := range cur.Unmapped.Orphaned {
		now[[2]string{l.ContractID, l.ServiceID}] = true
	}
	var out []usage.OrphanedLine
	for _, l := range prop.Unmapped.Orphaned {
		if !now[[2]string{l.ContractID, l.ServiceID}] {
			out = append(out, l)
		}
	}
	return out
}
