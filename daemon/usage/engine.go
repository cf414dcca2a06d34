package usage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

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
	// ActionHeld means the change is held for review: by the guard on
	// large decreases and increases (PassOptions.Approve releases it), or
	// because the line's units change again later in the billing month,
	// which no approval releases.
	ActionHeld = "held"
	// ActionSkipped means the pass stopped writing before the line (the
	// PSA's hourly budget reached the reserve, the PSA refused a write for
	// its rate limit, or the pass was cancelled).
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
	// TriggerSettle is the pass psa-syncd queues for the customers whose
	// unconfirmed writes can be settled (see Engine.Settling).
	TriggerSettle = "settle"
	// TriggerByHand is not a pass: the run that records an operator's
	// word that the quantities of the month that has ended were set in
	// the PSA by hand (Engine.RecordSetByHand).
	TriggerByHand = "by_hand"
)

// EngineOptions configure an Engine.
type EngineOptions struct {
	// Backend is the PSA. Required, but for an Engine that only records
	// an operator's word in State (ResolveIntent, RecordSetByHand,
	// ClearOrphans), as psa-syncd does by hand without the PSA's secrets.
	Backend psa.Backend
	// System is the PSA system of an Engine without a Backend, which
	// ClearOrphans records its clears under; with a Backend, the
	// Backend's System is used.
	System psa.System
	// Source is the usage source. Required by Plan and Sync, not by
	// Reconcile.
	Source source.Source
	// State records runs, customer statuses, intents and the ledger.
	// Required by Sync and Reconcile, not by Plan; but for a PSA that
	// cannot report current quantities (Kaseya BMS) the ledger is where
	// they come from, so a Plan without State takes them all as unknown.
	State *state.DB
	// Policies; empty strings take the values of DefaultPolicies (Load
	// already fills them in), and a zero WriteConcurrency the PSA client's
	// bound on requests in flight.
	Policies Policies
	// Metrics may be nil.
	Metrics *Metrics
	// Logger may be nil (discard).
	Logger *slog.Logger
	// Location is the time zone of billing months; nil means UTC.
	Location *time.Location
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Unsaved keeps the runs whose final record the state database
	// refused, across the Engines of one process (psa-syncd builds one per
	// pass); nil gives the Engine its own.
	Unsaved *UnsavedRuns
	// Failing keeps the contracts whose writes failed as if the whole PSA
	// did, across the Engines of one process; nil gives the Engine its
	// own.
	Failing *FailingContracts
	// Terms keeps the end dates of the mapped contracts across the
	// Engines of one process, so that they are read at most once a day;
	// nil gives the Engine its own.
	Terms *ContractTerms
}

// UnsavedRuns holds, by id, the runs of passes that ended but whose final
// record could not be saved (the state database failed at that moment).
// The database still shows them running, which would keep their open
// intents waiting for ever; the next Sync or Reconcile of an Engine that
// shares them saves them again, and meanwhile settlesAt knows when they
// ended.
//
// It holds too the closes of intents whose write's outcome the pass knew
// (the PSA answered) but which the state database failed to record (a full
// disk, a lost connection): the next Sync or Reconcile records them before
// it settles the intents left open, so that a Kaseya BMS line that was
// posted is taken as posted rather than held for an operator, and an
// Autotask or ConnectWise line keeps the ledger entry of its write.
//
// And it holds the intents whose recording got no answer from the state
// database (state.ErrMaybeCommitted): no write was sent for them, but the
// database may have committed them after all. The next Sync or Reconcile
// closes those it finds open as not sent, so that the line is written
// again rather than, on Kaseya BMS, held for an operator.
//
// The zero value is empty and ready to use; it is safe for concurrent use.
type UnsavedRuns struct {
	mu     sync.Mutex
	runs   map[int64]state.Run
	closes map[int64]state.IntentCompletion
	unsent []state.Intent
}

func (u *UnsavedRuns) putUnsent(ins []state.Intent) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.unsent = append(u.unsent, ins...)
}

// takeUnsent returns the intents putUnsent kept and forgets them.
func (u *UnsavedRuns) takeUnsent() []state.Intent {
	u.mu.Lock()
	defer u.mu.Unlock()
	ins := u.unsent
	u.unsent = nil
	return ins
}

func (u *UnsavedRuns) putClose(c state.IntentCompletion) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closes == nil {
		u.closes = map[int64]state.IntentCompletion{}
	}
	u.closes[c.ID] = c
}

func (u *UnsavedRuns) allCloses() []state.IntentCompletion {
	u.mu.Lock()
	defer u.mu.Unlock()
	cs := slices.Collect(maps.Values(u.closes))
	slices.SortFunc(cs, func(a, b state.IntentCompletion) int { return cmp.Compare(a.ID, b.ID) })
	return cs
}

func (u *UnsavedRuns) removeClose(id int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.closes, id)
}

func (u *UnsavedRuns) put(r state.Run) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.runs == nil {
		u.runs = map[int64]state.Run{}
	}
	u.runs[r.ID] = r
}

func (u *UnsavedRuns) get(id int64) (state.Run, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r, ok := u.runs[id]
	return r, ok
}

// Empty reports whether nothing is kept.
func (u *UnsavedRuns) Empty() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.runs) == 0 && len(u.closes) == 0 && len(u.unsent) == 0
}

func (u *UnsavedRuns) all() []state.Run {
	u.mu.Lock()
	defer u.mu.Unlock()
	runs := slices.Collect(maps.Values(u.runs))
	slices.SortFunc(runs, func(a, b state.Run) int { return cmp.Compare(a.ID, b.ID) })
	return runs
}

func (u *UnsavedRuns) remove(id int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.runs, id)
}

// Engine runs sync passes: it turns a mapping export and a source's usage
// into contract quantities in the PSA. An Engine is safe for concurrent
// use; Sync and Reconcile calls are serialised, Plan runs alongside them.
type Engine struct {
	be psa.Backend
	// sys is EngineOptions.System, for an Engine without a Backend (see
	// Engine.system).
	sys      psa.System
	src      source.Source
	db       *state.DB
	policies Policies
	metrics  *Metrics
	logger   *slog.Logger
	loc      *time.Location
	now      func() time.Time

	// readSurgeSnapshot, when set (by tests), reads the surge guard's
	// record in place of the state database (see Engine.readSurge).
	readSurgeSnapshot func(v *surgeVerdict) (bool, error)

	mu sync.Mutex // serialises Sync and Reconcile
	// settling holds, by intent id, when each open intent that the last
	// reconcile left open to settle can be settled (see Reconcile), and
	// what its line showed.
	settling map[int64]settle
	// unseen holds the ids of the open intents that the last reconcile
	// left open for an operator: creates whose line the PSA's read still
	// does not show after they settled (see unseenCreate).
	unseen map[int64]bool
	// unsaved holds the runs whose final record could not be saved.
	unsaved *UnsavedRuns
	// failing holds the contracts whose writes failed as if the whole PSA
	// did at earlier passes.
	failing *FailingContracts
	// failingReads holds the contracts whose reads, each alone, the PSA
	// refused with a server error at earlier passes (see
	// lineReader.refused).
	failingReads *FailingContracts
	// terms holds the end dates of the mapped contracts.
	terms *ContractTerms
	// refusedRead holds the services read after the PSA refused a write
	// of one of their lines in this pass (readRefusedServices).
	refusedRead map[string]bool
	// servicesRead holds the services checkServices read in this pass.
	servicesRead map[string]bool
	// failOrphans, when set (by tests), fails the ledger read of
	// orphaned lines with the error it returns (see Engine.findOrphans).
	failOrphans func() error
	// clearRead, when set (by tests), runs right after ClearOrphans read
	// the stored unmapped report and cleared lines: where a pass of
	// another instance may store newer ones.
	clearRead func()
	// saveRun stores a run's final record: db.SaveRun, replaced in tests.
	saveRun func(state.Run) error
	// sentWriteGrace bounds how long a write already sent to the PSA may
	// go on after its pass is stopped (SentWriteGrace; tests shorten it).
	sentWriteGrace time.Duration
}

// NewEngine returns an Engine for o.
func NewEngine(o EngineOptions) *Engine {
	e := &Engine{
		be:       o.Backend,
		sys:      o.System,
		src:      o.Source,
		db:       o.State,
		policies: o.Policies,
		metrics:  o.Metrics,
		logger:   o.Logger,
		loc:      o.Location,
		now:      o.Now,
		unsaved:  o.Unsaved,
		failing:  o.Failing,
		terms:    o.Terms,

		sentWriteGrace: SentWriteGrace,
	}
	if e.terms == nil {
		e.terms = &ContractTerms{}
	}
	if e.unsaved == nil {
		e.unsaved = &UnsavedRuns{}
	}
	if e.failing == nil {
		e.failing = &FailingContracts{}
	}
	e.failingReads = &FailingContracts{}
	if e.policies.UsagePeriod == "" {
		e.policies.UsagePeriod = DefaultPolicies.UsagePeriod
	}
	if e.policies.EffectiveDate == "" {
		e.policies.EffectiveDate = DefaultPolicies.EffectiveDate
	}
	if e.policies.MissingUsage == "" {
		e.policies.MissingUsage = DefaultPolicies.MissingUsage
	}
	if e.policies.UnmappedDecreases == "" {
		e.policies.UnmappedDecreases = DefaultPolicies.UnmappedDecreases
	}
	if e.policies.WriteConcurrency < 1 {
		e.policies.WriteConcurrency = DefaultWriteConcurrency
		if cl, ok := e.be.(psa.ConcurrencyLimiter); ok && cl.MaxConcurrency() > 0 {
			e.policies.WriteConcurrency = cl.MaxConcurrency()
		}
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.loc == nil {
		e.loc = time.UTC
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.db != nil {
		e.saveRun = e.db.SaveRun
	}
	e.metrics.setEndedPeriod(func() string {
		return PeriodAt(e.now(), e.loc, e.policies.UsagePeriod).Prev().String()
	})
	e.metrics.setMonthEnd(func() time.Time { return monthEnd(e.now(), e.loc) })
	return e
}

// system is the PSA system of e: its Backend's, or EngineOptions.System
// for an Engine without one.
func (e *Engine) system() psa.System {
	if e.be != nil {
		return e.be.System()
	}
	return e.sys
}

// PassOptions change what one pass does.
type PassOptions struct {
	// DryRun computes and reports, writes nothing to the PSA, and records
	// the run as a dry run without touching customer statuses.
	DryRun bool
	// Approve applies the decreases and increases the guard would hold.
	// It does not release lines held because their units change again
	// later in the billing month.
	Approve bool
	// ApproveService, with Approve and Customer, limits the approval to
	// the customer's line of this PSA service id; the customer's other
	// held lines stay held.
	ApproveService string
	// ApproveUnits, with ApproveService (and so Approve and Customer),
	// ties the approval to the quantity the operator reviewed: the hold is
	// released only when the pass computes exactly these desired units.
	// When the usage has changed since the review, the line stays held and
	// its reason names both quantities. Without it, an approval applies
	// whatever change the approving pass computes, which can be larger
	// than the one reviewed when usage moved again in between.
	ApproveUnits *int64
	// ApproveSurge, in a pass over all customers, is the review code of
	// the lines the surge guard holds (Plan.Surge, Policies.SurgeLinesPercent):
	// the pass releases every line it holds for the surge when it holds
	// exactly the lines, at the current and desired units, that the code
	// names, and none of them otherwise. It releases no other hold, and
	// cannot be given with Approve.
	ApproveSurge string
	// Customer limits the pass to one source customer id ("" = all).
	Customer string
	// Trigger says who started the pass: schedule, manual, api, cli or settle.
	Trigger string
	// WritesDisabled is set when the export switches the integration off:
	// the pass runs like DryRun and is reported as "integration disabled".
	WritesDisabled bool
	// At, when set, is the time whose billing period (and, with
	// effective_date: today, whose day) the pass syncs, in place of the
	// clock: a scheduled pass that runs late (caught up after a restart,
	// queued behind another pass) syncs the period it was due in, so that
	// a month-end pass run after midnight still sets the month that ended.
	At time.Time
	// Period, when not zero, is the billing month whose usage the pass
	// syncs, in place of the one the clock gives: the month a pass syncs
	// now, or the one before it, to run again the month-end pass that
	// failed or was partial once that month has ended. The pass then runs
	// as the last pass of that month would have (see Engine.PassTime): its
	// effective dates are those the policies give for that month. An older
	// month is refused, and so, on ConnectWise PSA, is a pass that writes
	// the month before (see Engine.CheckPeriod). It cannot be given with
	// At.
	Period source.Period
	// Note is recorded on the run (state.Run.Note): who asked for the
	// pass, an approval above all, when the request named a user.
	Note string
	// AddsHeld, when not nil, keeps the pass from adding lines on a PSA
	// whose quantities it reads (Autotask, ConnectWise PSA): each change of
	// a line the read does not show, to units above 0, fails with it, and
	// the customer's other lines are written. The daemon sets it while the
	// state database is a restored copy no operator confirmed: an add whose
	// answer was lost just before the copy's last transaction is in neither
	// its ledger nor its intents, and a read that cannot see it (a security
	// role, a cache) would have it added a second time. On Autotask, whose
	// writes are adjustments by the difference from the read
	// (writesDeltas), every change fails with it too: the copy's ledger
	// lacks the writes made since it was taken, so a read from before one
	// of them (a cache) is not told stale (Engine.staleRead), and the
	// adjustment would apply that write a second time. Changes of lines
	// the read shows on ConnectWise PSA set absolute quantities (a PATCH)
	// and go on.
	AddsHeld error

	// planOnly is set by Plan, which changes no state (not even the
	// contract checks a pass records).
	planOnly bool
}

// approves reports whether the pass releases a guard hold on the
// line of the given service, and the desired units it releases it at (nil:
// at any).
func (o PassOptions) approves(serviceID string) (bool, *int64) {
	if !o.Approve || o.ApproveSurge != "" || (o.ApproveService != "" && o.ApproveService != serviceID) {
		return false, nil
	}
	return true, o.ApproveUnits
}

// checkApproval returns why o's approval fields do not go together, or nil.
func (o PassOptions) checkApproval() error {
	switch {
	case o.ApproveSurge != "" && (o.Approve || o.Customer != ""):
		return errors.New("daemon: approving a surge approves the lines a pass over all customers holds for it: it takes no customer and is not given with approve")
	case o.ApproveService != "" && (!o.Approve || o.Customer == ""):
		return errors.New("daemon: approving one line needs the customer and approve as well as the service")
	case o.ApproveUnits != nil && o.ApproveService == "":
		return errors.New("daemon: approving units needs the customer, the service and approve: units name the reviewed quantity of one line")
	case o.ApproveUnits != nil && *o.ApproveUnits < 0:
		return fmt.Errorf("daemon: approved units %d are negative", *o.ApproveUnits)
	}
	return nil
}

// Change is one contract line in a pass: its current and desired quantity
// and what the pass does (or, in a plan, would do) about it. The customer's
// and the service's fields are shared by the customer's and the service's
// changes (ChangeCustomer and ChangeService, embedded so that their fields
// read, and encode as JSON, as the Change's own): a pass holds a Change per
// line, 96 bytes where the fields of its own would take 216.
type Change struct {
	*ChangeCustomer
	*ChangeService
	Current int64 `json:"current"`
	// CurrentKnown is false when the contract has no line for the service
	// yet (Current is then 0) or it could not be read. For Kaseya BMS,
	// whose lines cannot be read, Current is the quantity psa-syncd last
	// set (from the ledger), and unknown when it never set the line.
	CurrentKnown bool `json:"current_known"`
	// laterChange is set when the change is held because the line's units
	// change again later in the billing month (not a guard hold).
	// It sits next to CurrentKnown, and cancelled and staleApproval too, so
	// that the four share a word.
	laterChange bool
	// laterWrite is set when the change is held because psa-syncd already
	// changed the line from a later date (see laterWrites).
	laterWrite bool
	// cancelled is set when the change is skipped because the pass was
	// cancelled (not because the API budget reached the reserve).
	cancelled bool
	// staleApproval is set when the change stays held although the pass
	// approved the line, because its desired units are not the approved
	// (reviewed) ones.
	staleApproval bool
	// posted is set when the change is held because the line's billing
	// period at the effective date is already approved and posted
	// (invoiced) in the PSA (psa.ContractLine.Posted).
	posted bool
	// throttled is set when the change is skipped because the PSA refused
	// a write of the pass for its rate limit (not because the estimate of
	// the API budget reached the reserve).
	throttled bool
	// undated is set when the change is skipped because the pass syncs
	// the month that has ended on ConnectWise PSA (a scheduled pass caught
	// up after midnight), where a write sets the quantity billed from now
	// on, not the ended month's (see Engine.undatedPeriodError).
	undated bool
	// budgetUnknown is set when the change is skipped because the pass
	// could not read the PSA's API budget (budgetReadsFailedToStop reads
	// in a row failed), not because it reached the reserve.
	budgetUnknown bool
	// approvalRefused is set when the pass approved this one line at the
	// reviewed units, and the line stays held for a reason no approval
	// releases (posted, laterChange, laterWrite): the customer's status
	// then says that the approval was not applied.
	approvalRefused bool
	// vanished is set when the change is held because the PSA's read
	// shows no line where psa-syncd's ledger says it set one (see
	// Engine.vanishedLine); an approval of the line releases it.
	vanished bool
	// staleRead is set when the change is held because the read of an
	// Autotask line shows the quantity from before psa-syncd's last write
	// of it (see Engine.staleRead); an approval of the line releases it.
	staleRead bool
	// moved is set when the change is held because it would add a line
	// while psa-syncd's ledger says the customer's line of the service on
	// another contract still bills (see Engine.movedLine); an approval of
	// the line releases it.
	moved bool
	// repointed is set when the change is held because it would add or
	// raise a line while psa-syncd's ledger says the customer's line of a
	// service no product mapping names any more still bills (see
	// Engine.repointedLine); an approval of the line releases it.
	repointed bool
	// movedOwned, for a change held so, is set when the contract the
	// customer left is another customer's in the export (two customers
	// swapped contracts): that line is not the operator's to set to 0. A
	// flag, not the customer's id: a plan holds 100,000 changes.
	movedOwned bool
	// surge is set when the change is held because many lines rise at
	// once (Policies.SurgeLinesPercent, holdSurges); an approval of the
	// line releases it.
	surge bool
	// doubted is set when an operator said that the line may no longer
	// hold the units psa-syncd's ledger says it set (Kaseya BMS, see
	// DoubtedLine): it is posted again, and repointedLine takes it for a
	// line at 0. doubtedZero: the operator said it holds 0.
	doubted, doubtedZero bool

	Desired       int64     `json:"desired"`
	EffectiveDate time.Time `json:"effective_date"`
	// Action is update, unchanged, held, skipped or failed.
	Action string `json:"action"`
	// Reason explains the action, e.g. "usage 42 (CIXA-MSP 40 + CIXA-SRV 2)".
	Reason string `json:"reason"`
}

// ChangeCustomer is the customer of a Change: its mapping's fields.
type ChangeCustomer struct {
	Source       string `json:"source"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	CompanyID    string `json:"company_id"`
	ContractID   string `json:"contract_id"`
}

// ChangeService is the PSA service of a Change's line.
type ChangeService struct {
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name,omitempty"`
	// Products are the source products whose usage adds up to Desired.
	Products []string `json:"products"`
}

// Approvable reports whether c is held by the guard on large decreases and
// increases, or because the PSA's read did not show a line psa-syncd set
// (HoldVanished), which a pass with PassOptions.Approve releases (a line
// held because its units change again later in the billing month, or whose
// period is already invoiced, is not).
func (c Change) Approvable() bool {
	return c.Action == ActionHeld && !c.laterChange && !c.laterWrite && !c.posted
}

// Kinds of hold (Change.Hold): why a held line is held. They are the
// "hold" of a change in the plan's JSON, and stable.
const (
	// HoldApproval: the guard on large decreases (max_decrease_percent)
	// and increases (max_increase_percent) holds the line until an approval
	// (PassOptions.Approve) releases it.
	HoldApproval = "approval"
	// HoldStaleApproval: the guard still holds the line although
	// the pass approved it, because the usage changed since the review;
	// an approval of the new units releases it.
	HoldStaleApproval = "stale_approval"
	// HoldPosted: the line's billing period at the effective date is
	// already approved and posted (invoiced); no approval releases it.
	HoldPosted = "posted"
	// HoldLaterChange: the line changes again later in the billing month
	// (a later unit row or addition); no approval releases it.
	HoldLaterChange = "later_change"
	// HoldLaterWrite: psa-syncd already changed the line from a later
	// date; no approval releases it.
	HoldLaterWrite = "later_write"
	// HoldVanished: the PSA's read shows no line of the service on the
	// contract, while psa-syncd's ledger says it set one that is in force
	// at the effective date: adding it would double it if the read cannot
	// see it. An approval of the line (the operator checked that it is
	// gone) releases it.
	HoldVanished = "line_missing"
	// HoldStaleRead: the PSA's read of an Autotask line shows the quantity
	// from before psa-syncd's last write of it, in force at the effective
	// date, not the quantity it wrote: an adjustment (a delta) computed
	// from a read that predates that write would apply it twice. An
	// approval of the line (the operator checked the line's units)
	// releases it.
	HoldStaleRead = "stale_read"
	// HoldMoved: the line would be added to the customer's contract, or
	// raised there, while psa-syncd's ledger says it set the customer's
	// line of the service above 0 on another contract, not the contract's
	// renewal pair, and has not set it to 0 since (the customer's mapping
	// moved to another contract, or back; see Engine.movedLine): that
	// contract still bills it, and this line would bill the usage twice. An approval of the line (the operator set the other
	// contract's line to 0 or ended that contract) releases it.
	HoldMoved = "previous_contract"
	// HoldPreviousService: the line would be added to the customer's
	// contract, or raised there, while psa-syncd's ledger says it set the
	// customer's line of another service above 0, a service no product
	// mapping of the usage source names any more, and has not set it to 0
	// since (a product mapping's service_id was changed: psa-syncd no
	// longer writes the old service; see Engine.repointedLine): that line
	// still bills, and this one would bill the usage twice. An approval of
	// the line (the operator set the old service's line to 0) releases it.
	HoldPreviousService = "previous_service"
	// HoldSurge: the surge guard (policies.surge_lines_percent) holds the
	// increase because many lines rise sharply at once, as when the vendor
	// counts twice. An approval of the surge with its review code
	// (PassOptions.ApproveSurge: every line held for it at once), or of
	// the line, releases it.
	HoldSurge = "surge"
)

// Hold returns why c is held, one of the Hold kinds, or "" when it is not
// held.
func (c Change) Hold() string {
	switch {
	case c.Action != ActionHeld:
		return ""
	case c.posted:
		return HoldPosted
	case c.laterChange:
		return HoldLaterChange
	case c.laterWrite:
		return HoldLaterWrite
	case c.vanished:
		return HoldVanished
	case c.staleRead:
		return HoldStaleRead
	case c.moved:
		return HoldMoved
	case c.repointed:
		return HoldPreviousService
	case c.staleApproval:
		return HoldStaleApproval
	case c.surge:
		return HoldSurge
	}
	return HoldApproval
}

// setHold sets the flag of a hold kind that Hold returned; "",
// HoldApproval and kinds it does not know set none.
func (c *Change) setHold(kind string) {
	switch kind {
	case HoldPosted:
		c.posted = true
	case HoldLaterChange:
		c.laterChange = true
	case HoldLaterWrite:
		c.laterWrite = true
	case HoldStaleApproval:
		c.staleApproval = true
	case HoldVanished:
		c.vanished = true
	case HoldStaleRead:
		c.staleRead = true
	case HoldMoved:
		c.moved = true
	case HoldPreviousService:
		c.repointed = true
	case HoldSurge:
		c.surge = true
	}
}

// UnmappedCustomer is a source customer with usage but no customer mapping
// (or, in Unmapped.SyncOffCustomers, a mapping with usage_sync = false).
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
	// ZeroCustomers and ZeroProducts are customers and products without a
	// mapping whose every row has quantity 0 (a Sophos trial tenant, a
	// file that lists every tenant): nothing of theirs goes unbilled, so
	// they are listed apart and not counted in psa_sync_unmapped. Once
	// they have usage they move to Customers and Products, and count as
	// new unmapped usage.
	ZeroCustomers []UnmappedCustomer `json:"zero_customers,omitempty"`
	ZeroProducts  []UnmappedProduct  `json:"zero_products,omitempty"`
	// ZeroUnassigned is, likewise, the usage of no customer whose every
	// row of its product has quantity 0 (a file or a report that lists the
	// partner's unassigned licences at 0): listed apart from Unassigned
	// and not counted in psa_sync_unmapped{kind="unassigned"}.
	ZeroUnassigned []source.Record `json:"zero_unassigned,omitempty"`
	// UnreadableCustomers and UnreadableProducts are the customers and
	// products without a mapping that rows which cannot be read name, and
	// no row that could be read (those are in Customers and Products): a
	// new customer or product whose rows the vendor garbled. Such a row
	// fails no customer, since no mapped line is its, but its usage is
	// unknown and nothing bills it, so they count in psa_sync_unmapped.
	// The rows are among the plan's problems.
	UnreadableCustomers []string `json:"unreadable_customers,omitempty"`
	UnreadableProducts  []string `json:"unreadable_products,omitempty"`
	// SyncOff lists used products whose mapping has sync_enabled = false.
	// They are mapped on purpose, so they do not count as unmapped.
	SyncOff []UnmappedProduct `json:"sync_off,omitempty"`
	// SyncOffCustomers lists customers with usage whose mapping has
	// usage_sync = false: nothing bills their usage, but they are mapped
	// on purpose, so, like SyncOff, they do not count as unmapped.
	SyncOffCustomers []UnmappedCustomer `json:"sync_off_customers,omitempty"`
	// Unreported lists the mapped customers with usage sync on that a
	// report with rows names nowhere (no row of any product) while a
	// mapped line of their contract is above 0: a tenant removed or moved
	// to another partner, or a mapping whose customer_id never matches.
	// Their lines are set to 0 (held when the decrease guard applies) or
	// left as they are (missing_usage: keep); either way the vendor no
	// longer shows the usage they bill. Not counted as unmapped
	// (psa_sync_customers_unreported counts them).
	Unreported []UnreportedCustomer `json:"unreported,omitempty"`
	// InactiveServices lists the mapped lines above 0 (with usage sync
	// on) whose service the PSA says is inactive, as the last read of the
	// mapped services found it (Engine.checkServices, once a day). Such
	// a line goes on invoicing its quantity: an
	// unchanged one is written nowhere, so nothing refuses it, and a
	// changed one fails. Not counted as unmapped
	// (psa_sync_lines_on_inactive_services counts them).
	InactiveServices []InactiveServiceLine `json:"inactive_services,omitempty"`
	// Orphaned lists the lines that psa-syncd set above 0 from the
	// source's usage and that no mapping makes it write any more (a
	// product mapping removed or re-pointed, a customer mapping
	// removed): they go on invoicing the units
	// psa-syncd last set (Engine.findOrphans). Not counted as unmapped
	// (psa_sync_orphaned_lines counts them).
	Orphaned []OrphanedLine `json:"orphaned,omitempty"`
	// OrphanedUnread is set when the pass could not read psa-syncd's
	// ledger for orphaned lines: Orphaned is then the list an earlier
	// pass found (kept, with the gauge, in place of an empty one), and a
	// dry-run plan lists none.
	OrphanedUnread bool `json:"orphaned_unread,omitempty"`
}

// InactiveServiceLine is a mapped line above 0 whose service the PSA says
// is inactive (Unmapped.InactiveServices).
type InactiveServiceLine struct {
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	ContractID   string `json:"contract_id"`
	ServiceID    string `json:"service_id"`
	ServiceName  string `json:"service_name,omitempty"`
	// Quantity is the line's current quantity, which it goes on billing.
	Quantity int64 `json:"quantity"`
	// Failed is set when the pass wanted to change the line (the line
	// fails, nothing is written); otherwise nothing was to be written,
	// and nothing refuses or reports the line but this list.
	Failed bool `json:"failed,omitempty"`
	// Gone is set when the service was not found in the PSA at all
	// (deleted), not merely made inactive.
	Gone bool `json:"gone,omitempty"`
}

// UnreportedCustomer is a mapped customer whose contract bills a mapped
// line above 0 while the usage report has no row of it (Unmapped.Unreported).
type UnreportedCustomer struct {
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name,omitempty"`
	ContractID   string `json:"contract_id"`
	// Quantity is the sum of the current quantities of its mapped lines.
	Quantity int64 `json:"quantity"`
	// Vendor says what the vendor's customer list (Sophos: the partner's
	// tenants) says of the customer: VendorGone or VendorListed; empty
	// when the source keeps no such list or could not read it in full.
	Vendor string `json:"vendor,omitempty"`
}

// UnreportedCustomer.Vendor values.
const (
	// VendorGone: the vendor no longer lists the customer (the tenant
	// was deleted or moved to another partner).
	VendorGone = "gone"
	// VendorListed: the vendor still lists the customer, with no usage
	// this period.
	VendorListed = "listed"
	// VendorUnknown is psa_sync_customers_unreported's vendor label of an
	// UnreportedCustomer whose Vendor is empty.
	VendorUnknown = "unknown"
)

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
	// ContractsEnding lists the customers whose contract ended before
	// the effective date (they are among Failures) or ends within the
	// month of the effective date or the next, by the end date the PSA
	// gives the contract.
	ContractsEnding []ContractEnding `json:"contracts_ending,omitempty"`
	// Renewals lists the customers whose mapping names a renewal
	// (next_contract_id): the contract the pass bills them on, and the day
	// the renewal takes over.
	Renewals []ContractRenewal `json:"renewals,omitempty"`
	// Customers is the number of customers in the pass.
	Customers int `json:"customers"`
	// ComputedAt is when the plan was computed (the PSA and the source
	// were read).
	ComputedAt time.Time `json:"computed_at"`
	// RunID is the run of the pass that made the plan; 0 for a plan that
	// no pass made (psa-syncd plan, POST /api/v1/plan).
	RunID int64 `json:"run_id,omitempty"`
	// WritesDisabled is true when the export switches the integration
	// off: a pass computes and reports these changes but writes none.
	WritesDisabled bool `json:"writes_disabled,omitempty"`
	// WritesHeld, when set, says why a pass that writes is refused while
	// this plan was computed (the state database is a restored backup that
	// no operator has confirmed yet): set by the daemon, not the engine.
	WritesHeld string `json:"writes_held,omitempty"`
	// Surge, in a plan over all customers, is set when the surge guard
	// holds lines (Policies.SurgeLinesPercent), or when the pass approved
	// a surge: how many, and the review code that approves them all.
	Surge *SurgeHold `json:"surge,omitempty"`
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
	// m points into the export (a pass does not copy 20,000 mappings),
	// or, for a customer whose renewal is in force on the effective date,
	// to a copy of its mapping that names the renewal as its contract
	// (see Engine.selectContract).
	m *export.CustomerMapping
	// changes are the customer's nChanges changes, in the plan's (set
	// once the plan's changes stop growing).
	changes  []Change
	nChanges int
	// errs holds the error of each change (same index), or is nil while
	// none has one; write allocates it before sending, and then each
	// goroutine owns its own element.
	errs []error
	err  error
	hint string
	// undated is the period, the month that has ended, whose lines a
	// ConnectWise PSA pass skipped (Change.undated), if it skipped any.
	undated source.Period
	// period is the billing month the pass syncs, which the commands that
	// approve the customer's held lines name (approveCommand).
	period source.Period
	// chunk is the chunk of contracts (see readContracts) that holds the
	// customer's contract.
	chunk int
	// written is set when the plan handed the customer's updates to the
	// pass's writer (pass.early).
	written bool
	// stored is set when the customer's status was stored while the pass
	// read (statusWriter), with LastAttempt storedAt.
	stored   bool
	storedAt time.Time
}

// fail fails change i, c, with err.
func (cp *customerPass) fail(i int, err error, c *Change) {
	if cp.errs == nil {
		cp.errs = make([]error, cp.nChanges)
	}
	cp.errs[i] = err
	c.Action, c.Reason = ActionFailed, state.PublicText(err)
}

// pass is the working state of one pass.
type pass struct {
	plan      *Plan
	customers []*customerPass
	// synced lists the products mapped with sync on that had usage, as
	// Unmapped.SyncOff would list them (UnmappedReport.Synced).
	synced []UnmappedProduct
	// lines holds the lines that the plan updates, as read.
	lines map[psa.LineKey]psa.ContractLine
	// ledger is true when the PSA cannot report current quantities
	// (Kaseya BMS) and lines holds what psa-syncd's ledger says it last
	// set instead.
	ledger bool
	// early is the writer the plan handed updates to while deciding, if
	// any.
	early *writer
	// stopped says why the PSA's failures stopped the writes, if they did
	// (budgetGate.wrote), and readsStopped the reads (lineReader.refused).
	stopped      *writesStoppedError
	readsStopped *readsStoppedError
	// released holds, by the line approved out of its previous_service
	// hold, the lines that approval says were set to 0 by hand (Kaseya
	// BMS): recorded once the line is written (recordDoubts).
	released map[psa.LineKey][]DoubtedLine
	// laterWritten counts the lines held because psa-syncd already
	// changed them from a later date (Change.laterWrite).
	laterWritten int
	// noUsage says that the report holds no usage that sets a mapped
	// line while the export maps some to be billed: the pass leaves every
	// line as it is and succeeds, which psa_sync_last_run_usage_missing
	// says (no data for the month yet, an empty file, renamed ids).
	noUsage bool
	// mapped holds the contracts of the export's customer mappings
	// (idKey), of every source: the failing contracts of others are
	// forgotten (FailingContracts.prune).
	mapped map[string]bool
	// records holds the contracts' records that checkContractEnds read
	// this pass, by id, for the contract check (checkContracts).
	records map[string]*psa.Contract
	// recordErrs holds why checkContractEnds could not read a contract's
	// record this pass, by id (errNotRead: the bulk read left it out).
	recordErrs map[string]error
	// endingCounts counts ContractsEnding by when (EndingWhens).
	endingCounts map[string]int
	// surgeHeld counts the lines held because many lines rise at once
	// (Change.surge).
	surgeHeld int
	// awaiting holds the lines that the pass writes only after it has set
	// another customer's line (movedLookups.await), in the order decided,
	// and awaited their keys: the writer leaves them out of its first
	// round.
	awaiting []awaitedLine
	awaited  map[psa.LineKey]bool
}

// awaitedLine is a change (cp's i-th) that adds or raises a line of a
// customer whose line of the service on the contract it left still bills,
// where that contract is another customer's now (two customers swapped
// contracts): the pass writes it once it has set that customer's line of
// the service there (Engine.writeAwaited), and holds it as held otherwise.
type awaitedLine struct {
	cp              *customerPass
	i               int
	contract, owner string
	held            Change
}

// await records that change i of cp is written after the pass has set
// owner's line of its service on contract (movedLookups.await).
func (p *pass) await(cp *customerPass, i int, contract, owner string, held Change) {
	p.awaiting = append(p.awaiting, awaitedLine{cp: cp, i: i, contract: contract, owner: owner, held: held})
	p.awaited[psa.LineKey{ContractID: held.ContractID, ServiceID: held.ServiceID}] = true
}

// Plan computes the changes a pass would make now, reading the source and
// the PSA but writing nothing and changing no state. Like Sync, it refuses
// a state database that holds the usage of another instance of the PSA
// system (an *InstanceMismatchError).
func (e *Engine) Plan(ctx context.Context, doc *export.Document, o PassOptions) (*Plan, error) {
	o.planOnly = true
	if err := e.checkInstance(ctx, doc, false); err != nil {
		return nil, err
	}
	p, err := e.plan(ctx, doc, o, nil, nil)
	if err != nil {
		return nil, err
	}
	return p.plan, nil
}

// plan computes a pass's changes. startWriter, when not nil, starts the
// writer of a pass that writes (Sync): where the PSA can be read, plan hands
// it the updates of each customer as soon as they are decided, unless the
// customer's contract still needs checking (p.early is the writer then).
// statuses, when not nil, stores the status of each customer that is
// settled as soon as it is decided.
func (e *Engine) plan(ctx context.Context, doc *export.Document, o PassOptions, startWriter func(ledger bool) (*writer, error),
	statuses *statusWriter) (*pass, error) {
	mappings, err := e.selectCustomers(doc, o)
	if err != nil {
		return nil, err
	}
	if sys := e.be.System(); doc.PSA.System != sys {
		return nil, fmt.Errorf("daemon: the mapping export is for PSA system %q, not %q", doc.PSA.System, sys)
	}
	srcName := e.src.Name()
	computed := e.now()
	now, err := e.passTime(o, computed)
	if err != nil {
		return nil, err
	}
	period := e.period(now)
	p := &pass{plan: &Plan{
		ComputedAt:     computed.UTC(),
		WritesDisabled: o.WritesDisabled,
		Period:         period,
		EffectiveDate:  e.effectiveDate(now, period),
		Changes:        []Change{},
		Unmapped:       Unmapped{Customers: []UnmappedCustomer{}, Products: []UnmappedProduct{}, Unassigned: []source.Record{}},
	}}
	// A pass of the month that has ended (PassOptions.Period, or a
	// scheduled pass caught up after midnight: PassOptions.At) cannot
	// write on ConnectWise PSA, whose additions hold one undated quantity:
	// a pass that names the period is refused (passTime), a caught-up
	// scheduled pass skips every line it would write (endedUndated), and
	// a plan or dry run says why.
	undated := period == e.period(computed.In(e.loc)).Prev() && e.be.System() == psa.SystemConnectWise
	endedUndated := undated && !o.planOnly && !o.DryRun && !o.WritesDisabled
	if undated && !endedUndated {
		p.plan.WritesHeld = e.undatedPeriodError(period).Error()
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
	// Every change of a service shares its fields.
	changeServices := make([]*ChangeService, len(serviceIDs))
	for i, id := range serviceIDs {
		changeServices[i] = &ChangeService{ServiceID: id, ServiceName: serviceNames[id], Products: services[id]}
	}

	// Two customers on one contract would fight over its lines; the
	// provider refuses this at plan or apply time, but an export written by
	// hand or by another tool may hold it: the engine refuses to guess.
	owners := map[string][]string{}
	p.mapped = map[string]bool{}
	for _, cm := range doc.CustomerMappings {
		for _, id := range []string{cm.ContractID, cm.NextContractID} {
			if id == "" {
				continue
			}
			p.mapped[idKey(id)] = true
			// A renewal is the customer's contract from its start on:
			// another customer of the source must not sync to it either.
			if cm.Source == srcName && cm.UsageSync {
				k := idKey(id)
				owners[k] = append(owners[k], cm.CustomerID)
			}
		}
	}
	rivals := rivalSources(doc, srcName)

	for _, cm := range mappings {
		cp := &customerPass{m: cm}
		p.customers = append(p.customers, cp)
		for _, id := range []string{cm.ContractID, cm.NextContractID} {
			if o := owners[idKey(id)]; id != "" && len(o) > 1 && cp.err == nil {
				cp.err = fmt.Errorf("contract %s is mapped to %d customers (%s)", id, len(o), strings.Join(o, ", "))
				cp.hint = "each customer needs its own contract (and renewal, next_contract_id): fix the customer mappings and re-run terraform apply"
			}
		}
	}
	p.records = map[string]*psa.Contract{}
	e.checkContractEnds(ctx, p, !o.planOnly)
	inactive := e.checkServices(ctx, p, serviceIDs, services, !o.planOnly)
	p.plan.Customers = len(p.customers)
	byMapping := slices.Clone(p.customers)
	// Customers are decided and written in this order: a backend that
	// verifies the contracts before writing (checkWrites) reads them in
	// this order.
	slices.SortFunc(p.customers, func(a, b *customerPass) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.m.CustomerName), strings.ToLower(b.m.CustomerName)),
			strings.Compare(a.m.CustomerID, b.m.CustomerID))
	})

	// The contracts are read in the order the customers are decided, in
	// chunks, while the usage is fetched and summed: they come from the
	// export alone. Customers that share a contract failed above, so each
	// contract is one customer's. A customer whose usage turns out to be
	// unreadable has its contract read with the others' (a chunk's read
	// costs the same requests) and is not decided.
	var contracts []string
	var reading []*customerPass
	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		contracts = append(contracts, cp.m.ContractID)
		reading = append(reading, cp)
	}
	for k, cp := range reading {
		cp.chunk = chunkOf(k, len(contracts))
	}
	// A pass that fails before deciding stops the reads it started.
	readCtx, stopReads := context.WithCancel(ctx)
	defer stopReads()
	rd := e.readContracts(readCtx, contracts, serviceIDs, p.plan.EffectiveDate)
	defer rd.close()

	rep, err := e.src.Fetch(source.WithProgress(ctx, e.progressed), period)
	if err != nil {
		return nil, fmt.Errorf("daemon: fetching usage for %s from %s: %w", period, srcName, err)
	}
	p.plan.Problems = append(p.plan.Problems, rep.Problems...)
	vendor := vendorListing(rep)
	// rows is all that the pass needs of the report's rows after they are
	// summed: a later use of rep.Records would keep every row (100,000 at
	// the largest tenants) in memory while the plan's changes grow.
	rows := len(rep.Records) > 0
	missing := e.policies.MissingUsage
	if len(rep.Records) == 0 && missing == MissingUsageZero {
		// An empty report usually means the vendor has no data for the
		// month yet, not that every customer stopped using everything.
		missing = MissingUsageKeep
		why := fmt.Errorf("no usage at all for %s: lines without usage are left as they are this pass", period)
		if e.policies.UsagePeriod == UsagePeriodCurrent {
			why = fmt.Errorf("%w (a vendor that publishes a month's usage only once the month has ended needs policies.usage_period: %s)", why, UsagePeriodPrevious)
		}
		p.plan.Problems = append(p.plan.Problems, source.Problem{Where: srcName, Err: usageMissingError{why}})
	}

	usage := map[string][]usedQuantity{} // customer -> its summed usage, by product
	sums := rep.Records
	if !rep.Summed {
		var overflows []source.Problem
		sums, overflows = source.Sum(rep.Records)
		p.plan.Problems = append(p.plan.Problems, overflows...)
	}
	nearMisses := map[string][]source.Problem{} // mapped customer -> its usage under ids spelled otherwise
	p.synced = e.classify(doc, srcName, sums, products, usage, &p.plan.Unmapped, nearMisses)
	for _, c := range slices.Sorted(maps.Keys(nearMisses)) {
		p.plan.Problems = append(p.plan.Problems, nearMisses[c]...)
	}
	unreadable, err := unreadableUsage(doc, srcName, p.plan.Problems, products)
	if err != nil {
		return nil, err
	}
	unreadableUnmapped(doc, srcName, p.plan.Problems, products, &p.plan.Unmapped)
	p.noUsage = billsAny(doc, srcName, products) && (!rows || !feedsAnyLine(doc, srcName, usage, products))
	if missing == MissingUsageZero && len(rep.Records) > 0 && !feedsAnyLine(doc, srcName, usage, products) {
		// Rows, but none for a mapped line: every row of no customer
		// (Sophos rows without an accountId), or of customers or products
		// the export does not know (renamed ids or product codes). That is
		// a problem with the report, not every customer stopping at once.
		missing = MissingUsageKeep
		p.plan.Problems = append(p.plan.Problems, source.Problem{Where: srcName,
			Err: usageMissingError{fmt.Errorf("no usage in %s feeds a mapped line (%d rows, none of a customer with usage sync on and a product with sync on; see the unmapped usage): lines without usage are left as they are this pass",
				period, len(rep.Records))}})
	}
	// A line has a change when it exists or has usage; the changes go
	// straight into the plan, sized for those with usage, which at most
	// the lines without usage add to.
	nUsed := 0
	for _, cp := range p.customers {
		if probs := unreadable[cp.m.CustomerID]; len(probs) > 0 {
			// Without that usage, the sum is too low: writing it would
			// lower a quantity that the unread rows may have raised.
			cp.err = unreadableError(probs)
			cp.hint = "fix the usage rows named in the error (or have the vendor fix them) and run the pass again; until then psa-syncd writes none of this customer's lines"
		} else if probs := nearMisses[cp.m.CustomerID]; len(probs) > 0 && cp.err == nil {
			// That usage is almost certainly this customer's: billing
			// without it would lower its lines.
			cp.err = nearMissError(probs)
			cp.hint = "fix the id in the usage or in the mapping (psa_customer_mapping.customer_id, psa_product_mapping.product) so that both spell it alike, or, if it is another customer or product, map it too (usage_sync = false, sync_enabled = false); until then psa-syncd writes none of this customer's lines"
		}
		if cp.err == nil {
			nUsed += usedServices(usage[cp.m.CustomerID], products)
		}
	}
	p.plan.Changes = make([]Change, 0, min(len(p.customers)*len(serviceIDs), nUsed))
	p.ledger = rd.waitFirst()
	// Where the PSA cannot be read, a line whose earlier write has an
	// unknown outcome cannot be settled by reading: it stays blocked, even
	// in a plan, until an operator resolves it (see ResolveIntent).
	// Elsewhere a writing pass has reconciled its open intents before this
	// plan and its writer blocks the lines still open; a plan that writes
	// nothing predicts what that pass would do (see unsettledLine), so
	// that it shows what a pass now would write.
	var review, unsettled map[psa.LineKey]state.Intent
	if e.db != nil && (p.ledger || o.planOnly || o.DryRun || o.WritesDisabled) {
		open, err := e.openIntentsByLine()
		if err != nil {
			return nil, err
		}
		if p.ledger {
			review = open
		} else {
			unsettled = open
		}
	}
	// The open intents of the customers' other lines, which hold back a
	// line that would bill the same usage (reviewElsewhere): where the PSA
	// reads lines, those a writing pass's Reconcile left open.
	elsewhere := review
	switch {
	case unsettled != nil:
		elsewhere = unsettled
	case e.db != nil && !p.ledger:
		open, err := e.openIntentsByLine()
		if err != nil {
			return nil, err
		}
		elsewhere = open
	}
	runs := map[int64]time.Time{}
	later, err := e.laterWrites(p.plan.EffectiveDate)
	if err != nil {
		return nil, err
	}
	named := syncedServices(products)
	// The pass's Reconcile reads the lines of intents dated another day,
	// or on lines the plan does not read, at their own dates: so does the
	// plan, to predict it. An intent it closes holds back no line of the
	// customer elsewhere, and one it closes as done is in the ledger that
	// movedLine and repointedLine read.
	var blocked map[psa.LineKey]error
	var reconciled map[psa.LineKey]state.LedgerEntry
	if len(unsettled) > 0 {
		contracts := map[string]bool{}
		// own holds each customer's contracts (idKey), as reviewElsewhere
		// takes them: an intent on another one, another customer's
		// included, may hold the customer's line back.
		own := map[[2]string]map[string]bool{}
		for _, cp := range p.customers {
			if cp.err == nil {
				contracts[cp.m.ContractID] = true
				own[[2]string{cp.m.Source, cp.m.CustomerID}] = map[string]bool{idKey(cp.m.ContractID): true, idKey(cp.m.NextContractID): true}
			}
		}
		replaced := func(in state.Intent) bool {
			mine, ok := own[[2]string{in.Source, in.CustomerID}]
			return ok && in.After > 0 && (!mine[idKey(in.ContractID)] || !named[in.ServiceID])
		}
		r := e.reconcileElsewhere(ctx, unsettled, contracts, replaced, p.plan.EffectiveDate, runs)
		blocked, reconciled = r.blocked, r.done
		later = e.withReconciled(later, r.later)
		elsewhere = r.open(unsettled)
	}

	p.awaited = map[psa.LineKey]bool{}
	if startWriter != nil && !p.ledger {
		if p.early, err = startWriter(p.ledger); err != nil {
			return nil, err
		}
		p.early.awaited = p.awaited
	}

	// Of the lines read, the pass keeps those it updates: writing them
	// needs the line as read.
	p.lines = map[psa.LineKey]psa.ContractLine{}
	reasons := newReasons()
	setLines := &ledgerSets{e: e, chunk: -1}
	inForce := &ledgerInForce{e: e, chunk: -1, before: p.plan.EffectiveDate.AddDate(0, 0, 1)}
	moves := &ledgerMoves{e: e, source: srcName, customers: reading, chunk: -1, reconciled: reconciled}
	orph := e.findOrphans(ctx, doc, srcName, products, p.plan.EffectiveDate, o.Customer, !o.planOnly)
	olds := &oldContracts{e: e, ctx: ctx, moves: moves, chunk: -1}
	// Where lines cannot be read, the lines an operator said may no longer
	// hold what psa-syncd set (DoubtedLine).
	var doubts map[string]DoubtedLine
	if p.ledger && e.db != nil {
		if doubts, err = e.planDoubts(); err != nil {
			return nil, err
		}
	}
	recs := &oldRecords{e: e, ctx: ctx}
	ownerOf := contractOwners(doc, srcName)
	var unchecked []*customerPass
	var recheck recheckBatch
	var newLines newLineBatch
	var cur lineChunk
	read := 0
	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		for read <= cp.chunk {
			// The decided chunk's new lines go to the writer before
			// the next chunk is awaited.
			newLines.flush(ctx, e, p)
			cur = rd.chunk()
			read++
		}
		cm := cp.m
		cp.period = p.plan.Period
		if err := cur.errs[cm.ContractID]; err != nil {
			cp.hint, cp.err = e.readProblem(err, *cm)
			continue
		}
		if !p.ledger {
			orph.read(cm.ContractID, cur.lines)
		}
		first := len(p.plan.Changes)
		who := &ChangeCustomer{Source: cm.Source, CustomerID: cm.CustomerID, CustomerName: cm.CustomerName, CompanyID: cm.CompanyID, ContractID: cm.ContractID}
		for _, svc := range changeServices {
			p.plan.Changes = append(p.plan.Changes, Change{})
			c := &p.plan.Changes[len(p.plan.Changes)-1]
			approve, approvedUnits := o.approves(svc.ServiceID)
			if !e.decide(c, who, svc, usage[cm.CustomerID], cur.lines, p.ledger, missing, approve, approvedUnits, p.plan.Period, p.plan.EffectiveDate, reasons) {
				p.plan.Changes = p.plan.Changes[:len(p.plan.Changes)-1]
			}
		}
		changes := p.plan.Changes[first:]
		if e.policies.MaxDecreasePercent > 0 && e.policies.UnmappedDecreases == UnmappedDecreasesHold {
			holdUnmappedDecreases(changes, usage[cm.CustomerID], products, o, p.plan.Period)
		}
		cp.nChanges = len(changes)
		updates := false
		for i := range changes {
			c := &changes[i]
			key := psa.LineKey{ContractID: c.ContractID, ServiceID: c.ServiceID}
			if s, ok := inactive[c.ServiceID]; ok {
				e.inactiveServiceLine(p, cm, c, s)
			}
			if in, ok := review[key]; ok {
				cp.fail(i, e.awaitingReview(in, c.ServiceName), c)
				continue
			}
			if len(elsewhere) > 0 && c.Desired > 0 && (c.Action == ActionUpdate || c.Approvable()) {
				m, _ := doc.Customer(cm.Source, cm.CustomerID)
				if in, ok := reviewElsewhere(elsewhere, c, []string{cm.ContractID, cm.NextContractID, m.ContractID, m.NextContractID}, named); ok {
					cp.fail(i, e.awaitingReviewElsewhere(in, c, p.ledger), c)
					continue
				}
			}
			if rival, ok := rivals.line(c.ContractID, c.ServiceID); ok {
				cp.fail(i, fmt.Errorf("service %s on contract %s is also fed by usage source %s: %w", c.ServiceID, c.ContractID, rival, errRivalSource), c)
				continue
			}
			if s, ok := inactive[c.ServiceID]; ok && (c.Action == ActionUpdate || c.Action == ActionHeld) {
				// Nothing is written to a service the PSA says is
				// inactive (Engine.checkServices).
				cp.fail(i, e.inactiveServiceError(c, s), c)
				continue
			}
			if w, ok := later[key]; ok && (c.Action == ActionUpdate || c.Approvable()) {
				c.Action, c.laterWrite = ActionHeld, true
				c.Reason += e.laterWriteReason(w, c.EffectiveDate)
				p.laterWritten++
			}
			if c.Action == ActionUpdate && !c.CurrentKnown && !p.ledger {
				var own *state.LedgerEntry
				if in, ok := unsettled[key]; ok {
					l, exists := cur.lines.get(key)
					if le, ok := e.ownReconciled(in, l, exists, p.plan.EffectiveDate, reconciled, runs); ok {
						own = &le
					}
				}
				if err := e.vanishedLine(c, o, cp.period, setLines.of(rd, cp.chunk), own); err != nil {
					cp.fail(i, err, c)
					continue
				}
				if o.AddsHeld != nil && c.Action == ActionUpdate && c.Desired > 0 {
					cp.fail(i, fmt.Errorf("%s shows no line of service %s on contract %s, and a new line is not added until the restore is confirmed "+
						"(one added since the copy was taken, which psa-syncd's intents no longer record and the read does not show, would be added a second time): %w",
						systemName(e.be.System()), c.ServiceID, c.ContractID, o.AddsHeld), c)
					continue
				}
			}
			// On Kaseya BMS a line psa-syncd set may have been set to 0
			// by hand after the customer left its contract: a customer
			// moved back with less or the same usage (movedLine). Not a
			// line that a later write or an inactive service keeps from
			// being written.
			_, laterW := later[key]
			_, off := inactive[c.ServiceID]
			if len(doubts) > 0 && c.CurrentKnown && (c.Action == ActionUnchanged || c.Action == ActionUpdate) && !laterW && !off {
				d, ok, err := e.doubtInForce(doubts, c.Source, c.ContractID, c.ServiceID, c.EffectiveDate)
				if err != nil {
					cp.fail(i, err, c)
					continue
				}
				if ok {
					e.doubtedLine(c, d)
				}
			}
			back := p.ledger && c.CurrentKnown && c.Desired > 0 && (c.Action == ActionUnchanged || c.Action == ActionUpdate) && !laterW && !off
			if c.Action == ActionUpdate && (!c.CurrentKnown || c.Desired > c.Current) || back {
				in := movedLookups{set: moves.of(cp.chunk), ledger: p.ledger, reconciled: reconciled,
					mapping: func() (export.CustomerMapping, bool) { return doc.Customer(cm.Source, cm.CustomerID) },
					owner:   func(x string) (export.CustomerMapping, bool) { return ownerOf(cm.CustomerID, x) },
					await:   func(x, owner string, held Change) { p.await(cp, i, x, owner, held) }}
				if !p.ledger {
					in.old, in.oldLines = olds.of(cp.chunk), true
				} else {
					in.old, in.doubts = recs.old, doubts
					in.release = func(d DoubtedLine) {
						if p.released == nil {
							p.released = map[psa.LineKey][]DoubtedLine{}
						}
						p.released[key] = append(p.released[key], d)
					}
				}
				if err := e.movedLine(c, o, cp.period, in); err != nil {
					cp.fail(i, err, c)
					continue
				}
				if c.Action == ActionUpdate {
					if err := e.repointedLine(c, o, cp.period, in, named, cur.lines, !p.ledger); err != nil {
						cp.fail(i, err, c)
						continue
					}
				}
				doubtedPost(c)
			}
			if c.Action == ActionUpdate && c.CurrentKnown && !p.ledger && writesDeltas(e.be.System()) {
				entries := inForce.of(rd, cp.chunk)
				if in, ok := unsettled[key]; ok {
					l, exists := cur.lines.get(key)
					entries = e.withOwnReconciled(entries, in, l, exists, p.plan.EffectiveDate, reconciled, runs)
				}
				if err := e.staleRead(c, o, cp.period, entries); err != nil {
					cp.fail(i, err, c)
					continue
				}
				if o.AddsHeld != nil && c.Action == ActionUpdate {
					cp.fail(i, fmt.Errorf("%s service %s on contract %s is not adjusted until the restore is confirmed "+
						"(an adjustment adds the difference from the read, and a read from before a write the copy no longer records, a cache serving an old page, would have that write applied a second time): %w",
						systemName(e.be.System()), c.ServiceID, c.ContractID, o.AddsHeld), c)
					continue
				}
			}
			if endedUndated && c.Action == ActionUpdate {
				c.Action, c.undated, cp.undated = ActionSkipped, true, period
				c.Reason += "; not written: " + undatedSkipReason(period)
			}
			// After the holds, as the pass's writer: it blocks only the
			// updates left.
			if in, ok := unsettled[key]; ok && c.Action == ActionUpdate {
				err, predicted := blocked[key]
				if !predicted && in.EffectiveDate.Equal(p.plan.EffectiveDate) {
					l, exists := cur.lines.get(key)
					err = e.unsettledLine(in, l, exists, runs)
				}
				if err != nil {
					cp.fail(i, err, c)
					continue
				}
			}
			if c.Action == ActionUpdate {
				updates = true
				// A line posted again at the units psa-syncd's ledger
				// gives it (Kaseya BMS, a customer moved back: see
				// movedLine) is posted without it: SetQuantity sends
				// nothing for a line already at the quantity.
				if l, ok := cur.lines.get(key); ok && (c.Desired != c.Current || !p.ledger) {
					p.lines[key] = l
				}
			}
		}
		noteUnmatched(changes, usage[cm.CustomerID], products, rows, vendor(cm.CustomerID))
		// A contract without a single line may not exist at all: ReadLines
		// cannot tell an unknown contract from an empty one. Check it
		// before anything would be written to it.
		switch {
		case statuses != nil && settled(cp, changes):
			statuses.add(cp, changes)
		case updates && !cur.lines.hasContract(cm.ContractID):
			unchecked = append(unchecked, cp)
		case updates && e.mayHoldSurge(changes):
			// A line that rises sharply is held if many do (holdSurges,
			// once every customer is decided): the customer's updates
			// are written after the plan.
		case updates && p.early != nil && !p.readThisPass(cm.ContractID):
			// The contract's record was read earlier in the day: it is
			// read again before the first write (recheckContracts), with
			// those of the next customers, readChunk at a time.
			if recheck.add(cp, first) >= readChunk {
				recheck.flush(ctx, e, p)
			}
		case updates && p.early != nil:
			// Nothing that follows changes the customer's updates: they
			// are written while the next contracts are read (once the
			// services of the chunk's new lines are read).
			newLines.hand(e, p, cp, first)
		}
	}
	newLines.flush(ctx, e, p)
	recs.keep(!o.planOnly)
	next := 0
	for _, cp := range p.customers {
		cp.changes = p.plan.Changes[next : next+cp.nChanges : next+cp.nChanges]
		next += cp.nChanges
	}
	e.holdSurges(p, o)
	p.readsStopped = rd.readsStopped()
	if !o.planOnly && !o.DryRun {
		rd.record(p.mapped)
	}
	writes := !o.planOnly && !o.DryRun && !o.WritesDisabled
	if writes {
		// Only a pass that writes: a plan or a dry run goes by the
		// day's records (a plan predicts no refusal of them).
		var writing []*customerPass
		for _, cp := range p.customers {
			if cp.updates() {
				writing = append(writing, cp)
			}
		}
		e.recheckContracts(ctx, p, writing)
		e.recheckServices(ctx, writing)
		changes := make([][]Change, len(writing))
		for i, cp := range writing {
			changes[i] = cp.changes
		}
		e.readNewLineServices(ctx, writing, changes)
	}
	e.checkContracts(ctx, unchecked, p.records, !o.planOnly)
	e.checkWrites(ctx, p, writes)

	for _, cp := range byMapping {
		if cp.err != nil {
			for i := range cp.changes {
				cp.changes[i].Action, cp.changes[i].Reason = ActionFailed, state.PublicText(cp.err)
			}
			p.plan.Failures = append(p.plan.Failures, Failure{Source: srcName, CustomerID: cp.m.CustomerID,
				CustomerName: cp.m.CustomerName, ContractID: cp.m.ContractID, Error: state.PublicText(cp.err), Hint: cp.hint})
		}
	}
	p.settleAwaited()
	if rows {
		p.plan.Unmapped.Unreported = unreported(byMapping, usage, vendor)
	}
	if !p.ledger {
		orph.readPairs(ctx, e, p.plan.EffectiveDate)
		orph.keepUnread(e)
	}
	p.plan.Unmapped.Orphaned, p.plan.Unmapped.OrphanedUnread = orph.list(), orph.unread
	return p, nil
}

// noteUnmatched ends the reasons of one customer's changes, as they are
// decided and before any is handed to a writer, with what the usage the
// pass could not match says of them. When rows is set (the report has rows) and it names
// the customer nowhere while a line is above 0, its lines say so
// (unreportedReason, as Unmapped.Unreported lists it). Otherwise
// every decrease names the customer's usage of products without a product
// mapping: a vendor that renames or re-codes a mapped product turns its
// usage unmapped, and the line it fed drops by as much.
func noteUnmatched(changes []Change, used []usedQuantity, products map[string]export.ProductMapping, rows bool, vendor string) {
	if len(used) == 0 {
		if rows && slices.ContainsFunc(changes, func(c Change) bool { return c.CurrentKnown && c.Current > 0 }) {
			why := unreportedReason(vendor)
			for i := range changes {
				if changes[i].Action != ActionFailed {
					changes[i].Reason += why
				}
			}
		}
		return
	}
	var b []byte
	for _, u := range used {
		if _, ok := products[u.product]; ok || u.quantity == 0 {
			continue
		}
		if b == nil {
			b = append(b, "; this customer has usage of products without a product mapping ("...)
		} else {
			b = append(b, ", "...)
		}
		b = append(b, u.product...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, u.quantity, 10)
	}
	if b == nil {
		return
	}
	b = append(b, "): if the vendor renamed or re-coded a mapped product, map the new code (psa_product_mapping) and apply"...)
	why := string(b)
	for i := range changes {
		if c := &changes[i]; c.CurrentKnown && c.Desired < c.Current && c.Action != ActionFailed {
			c.Reason += why
		}
	}
}

// holdUnmappedDecreases holds, for review, the decreases of one customer
// that has usage above 0 of products without a product mapping, as the
// guard on large decreases holds its own (HoldApproval; a pass that
// approves the line, at its desired units when it names units, writes
// it): a vendor that re-codes a mapped product turns its usage unmapped,
// and the line it fed would drop by as much, below max_decrease_percent
// unnoticed, while the new code bills nothing. A product left unbilled on
// purpose is mapped with sync_enabled = false, and is not unmapped. With
// max_decrease_percent 0 (the guard off), or unmapped_decreases: by_size,
// the pass does not call it.
func holdUnmappedDecreases(changes []Change, used []usedQuantity, products map[string]export.ProductMapping, o PassOptions, period source.Period) {
	if !slices.ContainsFunc(used, func(u usedQuantity) bool { _, ok := products[u.product]; return !ok && u.quantity > 0 }) {
		return
	}
	for i := range changes {
		c := &changes[i]
		if c.Action != ActionUpdate || !c.CurrentKnown || c.Desired >= c.Current {
			continue
		}
		if approve, units := o.approves(c.ServiceID); approve && (units == nil || *units == c.Desired) {
			c.Reason += "; decrease approved while this customer has usage of products without a product mapping"
			continue
		}
		c.Action = ActionHeld
		c.Reason += fmt.Sprintf("; decrease from %d to %d held for review: the customer's usage includes products without a product mapping (named next), which may be this line's usage under a new code; map them, or apply with %s",
			c.Current, c.Desired, approveCommand(c.CustomerID, c.ServiceID, c.Desired, period))
	}
}

// unreportedReason ends the reason of a line whose customer the usage
// report names nowhere (Unmapped.Unreported), by what the vendor's
// customer list says of it (UnreportedCustomer.Vendor).
func unreportedReason(vendor string) string {
	switch vendor {
	case VendorGone:
		return "; the usage report has no row of this customer at all and the vendor no longer lists it (the tenant was deleted or moved to another partner, " +
			"or psa_customer_mapping.customer_id is misspelled): end the line and remove the psa_customer_mapping (or set usage_sync = false), or fix the customer_id"
	case VendorListed:
		return "; the usage report has no row of this customer at all, though the vendor still lists it: it has no usage this period " +
			"(nothing in use, or a licence ended); check with the vendor before the line goes"
	}
	return "; the usage report has no row of this customer at all: if the vendor removed the tenant or it moved to another partner, " +
		"end the line and remove the psa_customer_mapping (or set usage_sync = false); if psa_customer_mapping.customer_id is misspelled, fix it"
}

// vendorListing returns what the report's customer list says of a
// customer id (UnreportedCustomer.Vendor): "" for every id when the
// source keeps no list.
func vendorListing(rep *source.Report) func(id string) string {
	if !rep.CustomersListed {
		return func(string) string { return "" }
	}
	ids := make(map[string]bool, len(rep.Customers))
	for _, c := range rep.Customers {
		ids[strings.ToLower(strings.TrimSpace(c))] = true
	}
	return func(id string) string {
		if ids[strings.ToLower(strings.TrimSpace(id))] {
			return VendorListed
		}
		return VendorGone
	}
}

// unreported returns the customers that no usage row names while a mapped
// line of their contract is above 0, in mapping order (noteUnmatched said
// so in the reasons of their lines). A customer that failed is reported as
// a failure already.
func unreported(customers []*customerPass, usage map[string][]usedQuantity, vendor func(id string) string) []UnreportedCustomer {
	var out []UnreportedCustomer
	for _, cp := range customers {
		if cp.err != nil || len(usage[cp.m.CustomerID]) > 0 {
			continue
		}
		var billed int64
		for _, c := range cp.changes {
			if c.CurrentKnown && c.Current > 0 {
				if sum, ok := source.AddQuantity(billed, c.Current); ok {
					billed = sum
				} else {
					billed = math.MaxInt64
				}
			}
		}
		if billed == 0 {
			continue
		}
		out = append(out, UnreportedCustomer{CustomerID: cp.m.CustomerID, CustomerName: cp.m.CustomerName, ContractID: cp.m.ContractID, Quantity: billed,
			Vendor: vendor(cp.m.CustomerID)})
	}
	return out
}

// ErrUsageMissing marks the Problem a pass records when its usage sets no
// line: there is none at all for the period, or none that feeds a mapped
// line. Lines without usage are then left as they are, whatever
// policies.missing_usage says, so the pass's quantities say nothing about
// what the mappings bill once usage arrives.
var ErrUsageMissing = errors.New("usage: no usage sets a mapped line")

// usageMissingError is a Problem's error that is ErrUsageMissing, with its
// own text.
type usageMissingError struct{ error }

func (e usageMissingError) Is(target error) bool { return target == ErrUsageMissing }
func (e usageMissingError) Unwrap() error        { return e.error }

// feedsAnyLine reports whether usage holds a quantity of a customer of
// srcName with usage sync on for a product mapped with sync on: one that
// sets a mapped line.
func feedsAnyLine(doc *export.Document, srcName string, usage map[string][]usedQuantity, products map[string]export.ProductMapping) bool {
	for _, cm := range doc.CustomerMappings {
		if cm.Source == srcName && cm.UsageSync && usedServices(usage[cm.CustomerID], products) > 0 {
			return true
		}
	}
	return false
}

// billsAny reports whether the export maps a customer of srcName with
// usage sync on and a product with sync on: usage could set a line.
func billsAny(doc *export.Document, srcName string, products map[string]export.ProductMapping) bool {
	if !slices.ContainsFunc(doc.CustomerMappings, func(cm export.CustomerMapping) bool { return cm.Source == srcName && cm.UsageSync }) {
		return false
	}
	for _, pm := range products {
		if pm.SyncEnabled {
			return true
		}
	}
	return false
}

// usedServices returns how many services with sync on a customer's usage
// feeds: as many of its lines have a change.
func usedServices(usage []usedQuantity, products map[string]export.ProductMapping) int {
	var seen []string
	for _, u := range usage {
		if pm, ok := products[u.product]; ok && pm.SyncEnabled && !slices.Contains(seen, pm.ServiceID) {
			seen = append(seen, pm.ServiceID)
		}
	}
	return len(seen)
}

// maxUnreadableShown bounds the rows an unreadable-usage error names.
const maxUnreadableShown = 3

// unreadableUsage sorts the source's Unreadable problems by the customer
// they belong to: the customer mapped under the row's customer id or, when
// none is, those whose id the row's differs from only in case, spaces or
// invisible characters (see nearIDs). Rows of products that are not mapped
// with sync on cannot change a quantity and are left as warnings, unless
// their product differs from one mapped with sync on only in that way. A row
// that may belong to any customer fails the whole pass: no customer's
// usage can be trusted to be complete.
func unreadableUsage(doc *export.Document, srcName string, problems []source.Problem, products map[string]export.ProductMapping) (map[string][]source.Problem, error) {
	byCustomer := map[string][]source.Problem{}
	var anyone []source.Problem
	syncing := func(yield func(string) bool) {
		for _, cm := range doc.CustomerMappings {
			if cm.Source == srcName && cm.UsageSync && !yield(cm.CustomerID) {
				return
			}
		}
	}
	var mapped map[string]bool
	near := nearIDs{ids: syncing}
	// A row of a product spelled otherwise than a mapped one with sync on
	// is that product's, as a readable one is (classify): its usage may
	// be missing from that product's sum.
	nearProducts := nearIDs{ids: func(yield func(string) bool) {
		for id, pm := range products {
			if pm.SyncEnabled && !yield(id) {
				return
			}
		}
	}}
	for _, pr := range problems {
		if !pr.Unreadable {
			continue
		}
		if pm, ok := products[pr.Product]; pr.Product != "" && (!ok || !pm.SyncEnabled) {
			m := nearProducts.of(pr.Product)
			if ok || len(m) == 0 {
				continue
			}
			pr.Err = fmt.Errorf("%w (product %q, which differs from the mapped product %q "+nearSpelling+")", pr.Err, pr.Product, m[0])
		}
		if pr.CustomerID == "" {
			anyone = append(anyone, pr)
			continue
		}
		if mapped == nil {
			mapped = map[string]bool{}
			for id := range syncing {
				mapped[id] = true
			}
		}
		if !mapped[pr.CustomerID] {
			for _, m := range near.of(pr.CustomerID) {
				np := pr
				np.Err = fmt.Errorf("%w (customer id %q, which differs from the mapped customer %q "+nearSpelling+")", pr.Err, pr.CustomerID, m)
				byCustomer[m] = append(byCustomer[m], np)
			}
			continue
		}
		byCustomer[pr.CustomerID] = append(byCustomer[pr.CustomerID], pr)
	}
	if len(anyone) > 0 {
		return nil, fmt.Errorf("daemon: usage from %s that cannot be read and whose customer cannot be told: %w; no line is written this pass, since any customer's quantity could be too low",
			srcName, unreadableError(anyone))
	}
	return byCustomer, nil
}

// unreadableUnmapped lists in u the customers and products without a
// mapping of srcName that Unreadable problems name and that u does not list
// already (see Unmapped.UnreadableCustomers). A customer mapped with
// usage_sync = false and a product mapped with sync_enabled = false are
// mapped on purpose; an id spelled like a mapped one but for case, spaces
// or invisible characters fails that customer already (unreadableUsage).
func unreadableUnmapped(doc *export.Document, srcName string, problems []source.Problem, products map[string]export.ProductMapping, u *Unmapped) {
	customers := map[string]bool{}
	for _, cm := range doc.CustomerMappings {
		if cm.Source == srcName {
			customers[cm.CustomerID] = true
		}
	}
	near := nearIDs{ids: func(yield func(string) bool) {
		for _, cm := range doc.CustomerMappings {
			if cm.Source == srcName && cm.UsageSync && !yield(cm.CustomerID) {
				return
			}
		}
	}}
	nearProducts := nearIDs{ids: func(yield func(string) bool) {
		for id, pm := range products {
			if pm.SyncEnabled && !yield(id) {
				return
			}
		}
	}}
	listed := map[string]bool{}
	for _, c := range u.Customers {
		listed["c "+c.CustomerID] = true
	}
	for _, pr := range u.Products {
		listed["p "+pr.Product] = true
	}
	for _, pr := range problems {
		if !pr.Unreadable {
			continue
		}
		if id := pr.CustomerID; id != "" && !customers[id] && len(near.of(id)) == 0 && !listed["c "+id] {
			listed["c "+id] = true
			u.UnreadableCustomers = append(u.UnreadableCustomers, id)
		}
		if id := pr.Product; id != "" && !listed["p "+id] {
			if _, ok := products[id]; !ok && len(nearProducts.of(id)) == 0 {
				listed["p "+id] = true
				u.UnreadableProducts = append(u.UnreadableProducts, id)
			}
		}
	}
	slices.Sort(u.UnreadableCustomers)
	slices.Sort(u.UnreadableProducts)
}

// nearMissError lists usage under a customer id or product that differs
// from a mapped one only in spelling (see nearIDs), the first few in full.
func nearMissError(probs []source.Problem) error {
	return fmt.Errorf("usage that matches no mapping only for the spelling of an id: %s", problemList(probs))
}

// unreadableError lists unreadable usage rows, the first few in full.
func unreadableError(probs []source.Problem) error {
	return fmt.Errorf("usage that cannot be read: %s", problemList(probs))
}

// problemList joins the first maxUnreadableShown problems and says how
// many more there are.
func problemList(probs []source.Problem) string {
	var b strings.Builder
	for i, pr := range probs {
		if i == maxUnreadableShown {
			fmt.Fprintf(&b, "; and %d more", len(probs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(pr.String())
	}
	return b.String()
}

// errRivalSource marks a line that another usage source also feeds.
var errRivalSource = errors.New("one psa-syncd per source would overwrite the other's quantity, so neither writes it; map each source's products to its own service (psa_product_mapping.service_id) or turn sync off for one of them")

// rivals indexes what the usage sources other than the engine's own feed:
// services their products with sync on map to, and contracts their
// customers with usage sync on map to.
type rivals struct {
	services  map[string][]string          // service id -> other sources
	contracts map[string]map[string]string // contract id -> other source -> customer
}

func rivalSources(doc *export.Document, own string) rivals {
	r := rivals{services: map[string][]string{}, contracts: map[string]map[string]string{}}
	for _, pm := range doc.ProductMappings {
		if k := idKey(pm.ServiceID); pm.Source != own && pm.SyncEnabled && !slices.Contains(r.services[k], pm.Source) {
			r.services[k] = append(r.services[k], pm.Source)
		}
	}
	for _, cm := range doc.CustomerMappings {
		if cm.Source != own && cm.UsageSync {
			k := idKey(cm.ContractID)
			if r.contracts[k] == nil {
				r.contracts[k] = map[string]string{}
			}
			r.contracts[k][cm.Source] = cm.CustomerID
		}
	}
	return r
}

// line returns another source (as "source/customer") that also feeds the
// line of service on contract, if any: a psa-syncd for that source sets the
// same line to its own usage.
func (r rivals) line(contract, service string) (string, bool) {
	if len(r.services) == 0 {
		return "", false
	}
	for _, src := range r.services[idKey(service)] {
		if customer, ok := r.contracts[idKey(contract)][src]; ok {
			return src + "/" + customer, true
		}
	}
	return "", false
}

// selectCustomers returns the customer mappings a pass covers, pointing
// into doc: those of the engine's source with usage sync on, limited to
// o.Customer when set. A pass for one customer that cannot be synced is an
// error, raised before any request is made or any run is recorded.
func (e *Engine) selectCustomers(doc *export.Document, o PassOptions) ([]*export.CustomerMapping, error) {
	if doc == nil {
		return nil, errors.New("daemon: no mapping export")
	}
	if e.src == nil {
		return nil, errors.New("daemon: no usage source configured")
	}
	srcName := e.src.Name()
	var mappings []*export.CustomerMapping
	for i := range doc.CustomerMappings {
		cm := &doc.CustomerMappings[i]
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
	return mappings, nil
}

// usedQuantity is a customer's summed usage of one product, as decide needs
// it: a third of a source.Record.
type usedQuantity struct {
	product  string
	quantity int64
	where    string
}

// nearSpelling is how an id that nearIDs finds differs from a mapped one.
const nearSpelling = "only in case, spaces, invisible characters or leading zeros"

// foldID returns an id as near-miss detection compares it: in lower case,
// without spaces or invisible format characters (a zero-width space, a
// byte order mark) anywhere in it, and, when it is digits only, without
// leading zeros: a spreadsheet reads "00731" as the number 731, and saves
// the usage file so.
func foldID(id string) string {
	k := strings.ToLower(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, id))
	if k != "" && strings.Trim(k, "0123456789") == "" {
		k = cmp.Or(strings.TrimLeft(k, "0"), "0")
	}
	return k
}

// nearIDs finds the ids that an unmapped id differs from only in case,
// spaces, invisible characters or leading zeros ("CUST-B" and "cust-b",
// "731" and "00731"), which a mapping and a usage file or vendor spelled
// two ways far more likely than they name two customers or products. The
// index is built at the first lookup: most passes have no unmapped usage.
type nearIDs struct {
	ids func(yield func(string) bool)
	// fold is how ids are compared: foldID when nil.
	fold  func(string) string
	index map[string][]string
}

func (n *nearIDs) of(id string) []string {
	fold := n.fold
	if fold == nil {
		fold = foldID
	}
	if n.index == nil {
		n.index = map[string][]string{}
		for m := range n.ids {
			k := fold(m)
			n.index[k] = append(n.index[k], m)
		}
		for _, ms := range n.index {
			slices.Sort(ms)
		}
	}
	return n.index[fold(id)]
}

// codepageSpelling is how an id that foldCodepage finds differs from a
// mapped one.
const codepageSpelling = "only in letters outside ASCII: the file may be in another code page than the one it was read in; save it as UTF-8 (\"CSV UTF-8\")"

// foldCodepage returns an id as near-miss detection compares one that a
// source decoded from a code page (source.Record.Codepage): as foldID does,
// each character outside ASCII one and the same. A file in another code
// page than the one guessed decodes each such letter into another one
// ("MŸller" for "Müller", a Mac's ü read as Windows-1252), never a
// letter into two or an ASCII one.
func foldCodepage(id string) string {
	return foldID(strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII {
			return utf8.RuneError
		}
		return r
	}, id))
}

// classify sorts summed usage into billable usage per customer and the
// unmapped lists. Usage that matches no mapping only because an id is
// spelled otherwise than a mapped one (see nearIDs) goes into nearMisses,
// by the mapped customer it most likely belongs to, as problems that name
// both spellings.
func (e *Engine) classify(doc *export.Document, srcName string, sums []source.Record, products map[string]export.ProductMapping,
	usage map[string][]usedQuantity, u *Unmapped, nearMisses map[string][]source.Problem) (synced []UnmappedProduct) {
	unmappedCustomers := map[string]*UnmappedCustomer{}
	syncOffCustomers := map[string]*UnmappedCustomer{}
	unmappedProducts := map[string]*UnmappedProduct{}
	syncOff := map[string]*UnmappedProduct{}
	syncOn := map[string]*UnmappedProduct{}
	// mapped holds the mapped customers' IDs as the mapping spells them:
	// usage keeps those strings, not the source's (which may hold a whole
	// CSV record each), so that the records can go once classified.
	mapped := make(map[string]string, len(doc.CustomerMappings)) // Document.Customer scans the list
	// off holds those whose mapping has usage_sync = false.
	off := map[string]bool{}
	for _, cm := range doc.CustomerMappings {
		if cm.Source == srcName {
			mapped[cm.CustomerID] = cm.CustomerID
			if !cm.UsageSync {
				off[cm.CustomerID] = true
			}
		}
	}
	syncedCustomers := func(yield func(string) bool) {
		for id := range mapped {
			if !off[id] && !yield(id) {
				return
			}
		}
	}
	syncedProducts := func(yield func(string) bool) {
		for id, pm := range products {
			if pm.SyncEnabled && !yield(id) {
				return
			}
		}
	}
	nearCustomers, nearProducts := nearIDs{ids: syncedCustomers}, nearIDs{ids: syncedProducts}
	codepageCustomers := nearIDs{ids: syncedCustomers, fold: foldCodepage}
	codepageProducts := nearIDs{ids: syncedProducts, fold: foldCodepage}
	// near returns the mapped ids that id, unmapped, is most likely a
	// spelling of, and how it differs from them.
	near := func(r source.Record, id string, ids, codepage *nearIDs) ([]string, string) {
		if m := ids.of(id); len(m) > 0 || r.Codepage == "" || !slices.ContainsFunc([]rune(id), func(c rune) bool { return c > unicode.MaxASCII }) {
			return m, nearSpelling
		}
		return codepage.of(id), codepageSpelling
	}
	billed := func(product string) bool { pm, ok := products[product]; return ok && pm.SyncEnabled }
	addCustomer := func(set map[string]*UnmappedCustomer, r source.Record) {
		uc := set[r.CustomerID]
		if uc == nil {
			uc = &UnmappedCustomer{CustomerID: r.CustomerID}
			set[r.CustomerID] = uc
		}
		if uc.CustomerName == "" {
			uc.CustomerName = r.CustomerName
		}
		uc.Products = append(uc.Products, r.Product)
		uc.Quantity += r.Quantity
	}
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
	// One array holds every customer's usage, so that the records (and
	// their names and periods) can go once classified.
	used := make([]usedQuantity, 0, len(sums))
	for _, r := range sums {
		if r.Unassigned() {
			// Sums are per product, and quantities never negative: 0 is
			// rows of 0 only, nothing unbilled.
			if r.Quantity == 0 {
				u.ZeroUnassigned = append(u.ZeroUnassigned, r)
			} else {
				u.Unassigned = append(u.Unassigned, r)
			}
			continue
		}
		customer, ok := mapped[r.CustomerID]
		switch {
		case !ok:
			customer = r.CustomerID
			addCustomer(unmappedCustomers, r)
			if billed(r.Product) {
				ms, how := near(r, r.CustomerID, &nearCustomers, &codepageCustomers)
				for _, m := range ms {
					nearMisses[m] = append(nearMisses[m], source.Problem{Where: r.Where, CustomerID: m, Product: r.Product,
						Err: fmt.Errorf("customer id %q matches no customer mapping but differs from the mapped customer %q "+how, r.CustomerID, m)})
				}
			}
		case off[customer]:
			addCustomer(syncOffCustomers, r)
		}
		product := r.Product
		switch pm, ok := products[r.Product]; {
		case !ok:
			addProduct(unmappedProducts, r)
			if mapped[r.CustomerID] != "" && !off[customer] {
				ms, how := near(r, r.Product, &nearProducts, &codepageProducts)
				for _, m := range ms {
					nearMisses[customer] = append(nearMisses[customer], source.Problem{Where: r.Where, CustomerID: customer, Product: m,
						Err: fmt.Errorf("product %q matches no product mapping but differs from the mapped product %q "+how, r.Product, m)})
				}
			}
		case !pm.SyncEnabled:
			addProduct(syncOff, r)
		default:
			addProduct(syncOn, r)
			if pm.Product == r.Product {
				product = pm.Product
			}
		}
		// Sum sorts by customer and product: a customer's records are
		// next to each other, and so are their quantities in used.
		used = append(used, usedQuantity{product: product, quantity: r.Quantity, where: r.Where})
		if ur := usage[customer]; len(ur) > 0 {
			usage[customer] = ur[:len(ur)+1]
		} else {
			usage[customer] = used[len(used)-1:]
		}
	}
	// Quantities are never negative (the sources reject such rows), so a
	// sum of 0 is rows of 0 only: nothing goes unbilled.
	for _, uc := range unmappedCustomers {
		if uc.Quantity == 0 {
			u.ZeroCustomers = append(u.ZeroCustomers, *uc)
		} else {
			u.Customers = append(u.Customers, *uc)
		}
	}
	byID := func(a, b UnmappedCustomer) int { return strings.Compare(a.CustomerID, b.CustomerID) }
	slices.SortFunc(u.Customers, byID)
	slices.SortFunc(u.ZeroCustomers, byID)
	sortProducts := func(set map[string]*UnmappedProduct) []UnmappedProduct {
		out := make([]UnmappedProduct, 0, len(set))
		for _, up := range set {
			out = append(out, *up)
		}
		slices.SortFunc(out, func(a, b UnmappedProduct) int { return strings.Compare(a.Product, b.Product) })
		return out
	}
	u.Products = sortProducts(unmappedProducts)
	if i := slices.IndexFunc(u.Products, func(up UnmappedProduct) bool { return up.Quantity == 0 }); i >= 0 {
		var billed []UnmappedProduct
		for _, up := range u.Products {
			if up.Quantity == 0 {
				u.ZeroProducts = append(u.ZeroProducts, up)
			} else {
				billed = append(billed, up)
			}
		}
		u.Products = append(make([]UnmappedProduct, 0, len(billed)), billed...)
	}
	if len(syncOff) > 0 {
		u.SyncOff = sortProducts(syncOff)
	}
	for _, uc := range syncOffCustomers {
		u.SyncOffCustomers = append(u.SyncOffCustomers, *uc)
	}
	slices.SortFunc(u.SyncOffCustomers, func(a, b UnmappedCustomer) int { return strings.Compare(a.CustomerID, b.CustomerID) })
	return sortProducts(syncOn)
}

// decide computes in c the change for one mapped service of one customer,
// and returns false when there is nothing to report (no usage and no line).
// approve releases a guard hold, only at approvedUnits when that
// is not nil; period is the billing month the pass syncs, which the
// command that approves a held line names.
func (e *Engine) decide(c *Change, who *ChangeCustomer, svc *ChangeService, usage []usedQuantity,
	lines *lineIndex, ledger bool, missing string, approve bool, approvedUnits *int64, period source.Period, eff time.Time, reasons *reasons) bool {
	line, lineOK := lines.get(psa.LineKey{ContractID: who.ContractID, ServiceID: svc.ServiceID})
	*c = Change{
		ChangeCustomer: who,
		ChangeService:  svc,
		Current:        line.Quantity,
		CurrentKnown:   lineOK,
		EffectiveDate:  eff,
	}
	// used holds the usage of the service's products, in their order.
	used := reasons.used[:0]
	for _, prod := range svc.Products {
		if i, ok := slices.BinarySearchFunc(usage, prod, func(u usedQuantity, prod string) int { return strings.Compare(u.product, prod) }); ok {
			used = append(used, usage[i])
		}
	}
	reasons.used = used
	for k, u := range used {
		sum, ok := source.AddQuantity(c.Desired, u.quantity)
		if !ok {
			c.Action = ActionFailed
			c.Reason = fmt.Sprintf("usage adds up to more than %d (%s): check the usage rows (%s)", int64(math.MaxInt64), usageTerms(nil, used[:k+1]), u.where)
			return true
		}
		c.Desired = sum
	}
	switch {
	case len(used) > 0:
		b := append(reasons.buf[:0], "usage "...)
		b = strconv.AppendInt(b, c.Desired, 10)
		b = append(b, " ("...)
		b = append(usageTerms(b, used), ')')
		switch {
		case ledger && lineOK:
			b = append(b, "; current "...)
			b = strconv.AppendInt(b, c.Current, 10)
			b = append(b, " as psa-syncd last set it"...)
		case ledger && c.Desired > 0:
			b = fmt.Appendf(b, "; current unknown → %d: %s cannot report a line's units and psa-syncd has not set this line from the effective date or earlier, so a new line is posted",
				c.Desired, e.be.System())
		case ledger:
			b = append(b, "; current unknown and nothing to post"...)
		}
		reasons.buf = b
		c.Reason = reasons.string(b)
	case !lineOK:
		return false
	case missing == MissingUsageKeep:
		c.Desired = c.Current
		c.Action = ActionUnchanged
		c.Reason = "no usage this period; left as it is (missing_usage: keep)"
		return true
	default:
		c.Reason = "no usage this period (missing_usage: zero)"
	}

	switch {
	case lineOK && line.Posted && c.Desired != c.Current:
		// The period at eff is invoiced: an adjustment into it is billed
		// as a proration that cannot be reversed. Not even an approved
		// pass writes it.
		c.Action, c.posted = ActionHeld, true
		c.Reason += e.postedReason(line, eff)
	case lineOK && len(line.LaterChanges) > 0 && (c.Desired != c.Current || changesInPeriod(line.LaterChanges, eff)):
		// An adjustment adds a delta to every unit row from its effective
		// date on: with a row that differs later in the month, no write
		// dated eff gives Desired for the whole month. A ConnectWise
		// addition that starts after eff bills from its start: changing
		// it does not bill Desired from eff, and another addition would
		// bill along with it. Not even an approved pass writes it. Where
		// nothing is to be written and the later lines start in later
		// periods (a ConnectWise addition for next month), this period is
		// billed at Desired: unchanged.
		c.Action, c.laterChange = ActionHeld, true
		c.Reason += e.laterChangeReason(line, c.Desired, eff)
	case c.Desired == c.Current:
		c.Action = ActionUnchanged
		if !lineOK && !ledger {
			c.Reason += "; no line on the contract"
		}
	case e.guarded(c):
		e.guard(c, who, svc, approve, approvedUnits, period)
	default:
		c.Action = ActionUpdate
	}
	// An approval of this line at reviewed units that the line's hold
	// does not let through: the operator asked for a write that does not
	// happen (the period was invoiced since the review, or a pass of the
	// new month changed the line before the ended month's was approved).
	c.approvalRefused = approve && approvedUnits != nil && c.Action == ActionHeld && !c.Approvable()
	return true
}

// guarded reports whether the guard on large changes holds c for review
// unless a pass approves it: a decrease larger than
// policies.max_decrease_percent, or an increase larger than
// policies.max_increase_percent, of a current quantity that is known. An
// increase from 0 (a new line) is never held: the pull request's
// billing-impact report reviews it.
func (e *Engine) guarded(c *Change) bool {
	_, _, _, held := e.guardLimit(c)
	return held
}

// guardLimit returns the direction of c's change ("decrease" or
// "increase"), its size in percent of the current quantity and the limit of
// the guard in that direction, and whether the guard holds c (see guarded).
func (e *Engine) guardLimit(c *Change) (dir string, pct, limit float64, held bool) {
	switch {
	case !c.CurrentKnown || c.Current <= 0 || c.Desired == c.Current:
		return "", 0, 0, false
	case c.Desired < c.Current:
		dir, pct, limit = "decrease", float64(c.Current-c.Desired)*100/float64(c.Current), e.policies.MaxDecreasePercent
	default:
		dir, pct, limit = "increase", float64(c.Desired-c.Current)*100/float64(c.Current), e.policies.MaxIncreasePercent
	}
	return dir, pct, limit, limit > 0 && pct > limit
}

// guard decides c, a change that guarded holds: held for review, or
// updated when the pass approves it (at approvedUnits when that is not
// nil: a change whose desired units moved since the review stays held).
// The command a held line's reason gives names period, the month
// reviewed, so that it approves that month's change even when it is run
// after the month has ended.
func (e *Engine) guard(c *Change, who *ChangeCustomer, svc *ChangeService, approve bool, approvedUnits *int64, period source.Period) {
	dir, pct, limit, _ := e.guardLimit(c)
	switch {
	case approve && approvedUnits == nil:
		c.Action = ActionUpdate
		c.Reason += fmt.Sprintf("; %s of %s%% approved", dir, percentText(pct, limit))
	case approve && *approvedUnits == c.Desired:
		c.Action = ActionUpdate
		c.Reason += fmt.Sprintf("; %s of %s%% to the reviewed %d approved", dir, percentText(pct, limit), c.Desired)
	case approve:
		// The usage moved between the review and this pass: what
		// would be written is not what the operator approved.
		c.Action, c.staleApproval = ActionHeld, true
		c.Reason += fmt.Sprintf("; %s of %s%% (from %d to %d) still held for review: the usage changed since the review (reviewed %d, now %d), so the approval was not applied; check the usage, then approve again with %s",
			dir, percentText(pct, limit), c.Current, c.Desired, *approvedUnits, c.Desired, approveCommand(who.CustomerID, svc.ServiceID, c.Desired, period))
	default:
		c.Action = ActionHeld
		c.Reason += fmt.Sprintf("; %s of %s%% (from %d to %d) held for review: more than max_%s_percent %g; apply with %s",
			dir, percentText(pct, limit), c.Current, c.Desired, dir, limit, approveCommand(who.CustomerID, svc.ServiceID, c.Desired, period))
	}
}

// approveCommand is the psa-syncd command that approves the held line of
// customer's service at units, for billing month period. It names the
// period: the same command run after the month has ended (a hold of a
// month-end pass reviewed the next morning) approves the month that was
// reviewed, not the new one, whose quantity would otherwise be written
// while the reviewed month's invoice kept the held quantity.
func approveCommand(customer, service string, units int64, period source.Period) string {
	return fmt.Sprintf("sync --approve --customer %s --service %s --units %d --period %s", customer, service, units, period)
}

// usageTerms appends the usage as a reason spells it: "CIXA-MSP 40 +
// CIXA-SRV 2".
func usageTerms(b []byte, used []usedQuantity) []byte {
	for k, u := range used {
		if k > 0 {
			b = append(b, " + "...)
		}
		b = append(b, u.product...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, u.quantity, 10)
	}
	return b
}

// maxReasons bounds the distinct reasons a pass shares among its changes.
const maxReasons = 4096

// reasons is the scratch space in which a pass spells its changes'
// reasons, and the reasons it has spelled: at 100,000 lines most reasons
// repeat ("usage 12 (CIXA-MSP 12)"), and the changes share one string for
// each instead of holding their own.
type reasons struct {
	seen map[string]string
	buf  []byte
	used []usedQuantity
}

func newReasons() *reasons { return &reasons{seen: map[string]string{}} }

// string returns b as a string, the one spelled before when there is one.
func (r *reasons) string(b []byte) string {
	if s, ok := r.seen[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.seen) < maxReasons {
		r.seen[s] = s
	}
	return s
}

// changesInPeriod reports whether one of changes starts in the calendar
// month of eff, psa-syncd's billing period.
func changesInPeriod(changes []psa.QuantityChange, eff time.Time) bool {
	y, m, _ := eff.Date()
	next := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
	for _, ch := range changes {
		cy, cm, cd := ch.From.Date()
		if time.Date(cy, cm, cd, 0, 0, 0, 0, time.UTC).Before(next) {
			return true
		}
	}
	return false
}

// laterChangeReason explains why a line whose units change again after eff
// is held: in the same month (Autotask), or with a line of its own that
// starts after eff (a ConnectWise addition).
func (e *Engine) laterChangeReason(line psa.ContractLine, desired int64, eff time.Time) string {
	first := line.LaterChanges[0]
	if first.LineID != "" {
		what := fmt.Sprintf("an addition of this product starts on %s (addition %s, quantity %d), after the effective date %s",
			first.From.Format(time.DateOnly), first.LineID, first.Quantity, eff.Format(time.DateOnly))
		if n := len(line.LaterChanges); n > 1 {
			what += fmt.Sprintf(", and %d more later", n-1)
		}
		return fmt.Sprintf("; %s: %s bills it only from its start, so changing it would not bill %d from %s, and another addition from %s would bill along with it from %s: held for review (sync --approve does not release it); the line is written again once the effective date reaches %s (policies.effective_date: %s dates changes on the 1st of the next month), or change the additions by hand",
			what, systemName(e.be.System()), desired, eff.Format(time.DateOnly), eff.Format(time.DateOnly), first.From.Format(time.DateOnly),
			first.From.Format(time.DateOnly), EffectiveNextPeriodStart)
	}
	what := fmt.Sprintf("units change again on %s (to %d: a mid-period adjustment in %s)",
		first.From.Format(time.DateOnly), first.Quantity, systemName(e.be.System()))
	if n := len(line.LaterChanges); n > 1 {
		what += fmt.Sprintf(" and %d more times", n-1)
	}
	effect := fmt.Sprintf("writing a delta from %s would mis-bill the rest of the period", eff.Format(time.DateOnly))
	if desired == line.Quantity {
		effect = fmt.Sprintf("the rest of the period is not billed at %d, and a delta from %s cannot fix that", desired, eff.Format(time.DateOnly))
	}
	return fmt.Sprintf("; %s; %s: held for review (sync --approve does not release it): review the contract, then use policies.effective_date: %s or fix the line by hand",
		what, effect, EffectiveToday)
}

// holdsLaterWrites reports whether a line of system sys is held when
// psa-syncd's ledger shows a change of it dated after the pass's effective
// date (laterWrites): Autotask carries an earlier-dated delta into the
// later month, and Kaseya BMS bills an earlier-dated line until the later
// one starts while the ledger would take it for the quantity from then on.
func holdsLaterWrites(sys psa.System) bool {
	return sys == psa.SystemAutotask || sys == psa.SystemKaseyaBMS
}

// laterWrites returns, by line, the newest change psa-syncd recorded in its
// ledger with an effective date after eff, for a PSA whose writes carry
// forward: an Autotask adjustment adds its delta to every unit row from its
// date on, so a change dated eff, computed from the units read at eff,
// would add to the later change too (42 from December, then +12 from
// November: 54 in December). That happens when a pass dates its changes
// earlier than one before it did (policies.effective_date from
// next_period_start to period_start, policies.usage_period from current to
// previous, another timezone, or an instance whose clock is behind); the
// month's read of the line cannot show it, since it ends with eff's month.
//
// Kaseya BMS bills, on a day, the line with the latest effective date on or
// before it, and its quantities are the ledger's (the change posted last):
// a line dated eff would bill only until the later line starts, while the
// ledger would take its quantity as the line's from then on, and no later
// plan would see that the later line is still in force.
//
// ConnectWise's additions are read back with their start dates (a later
// one is in the line's LaterChanges, see laterChangeReason): nil.
func (e *Engine) laterWrites(eff time.Time) (map[psa.LineKey]state.LedgerEntry, error) {
	sys := e.be.System()
	if e.db == nil || !holdsLaterWrites(sys) {
		return nil, nil
	}
	entries, err := e.db.QueryLedger(state.LedgerQuery{EffectiveFrom: eff.AddDate(0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("daemon: reading the ledger's changes dated after %s: %w", eff.Format(time.DateOnly), err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	out := make(map[psa.LineKey]state.LedgerEntry, len(entries))
	for _, le := range entries {
		if le.System != sys {
			continue
		}
		k := psa.LineKey{ContractID: le.ContractID, ServiceID: le.ServiceID}
		if cur, ok := out[k]; !ok || le.EffectiveDate.After(cur.EffectiveDate) {
			out[k] = le
		}
	}
	return out, nil
}

// laterWriteReason explains why a line that psa-syncd already changed from
// a date after eff is held (see laterWrites).
func (e *Engine) laterWriteReason(w state.LedgerEntry, eff time.Time) string {
	effect := fmt.Sprintf("%s carries a change dated %s into that period too, so it would add to it", systemName(e.be.System()), eff.Format(time.DateOnly))
	if e.be.System() == psa.SystemKaseyaBMS {
		effect = fmt.Sprintf("%s bills that line from %s on, so a line dated %s would bill only until then, while psa-syncd's ledger would take it as the line's quantity from then on", systemName(e.be.System()), w.EffectiveDate.Format(time.DateOnly), eff.Format(time.DateOnly))
	}
	return fmt.Sprintf("; psa-syncd already set this line to %d from %s (run %d): %s: held for review (sync --approve does not release it); the line is written again once the effective date reaches %s (policies.effective_date, policies.usage_period, the timezone or a clock moved the changes earlier), or fix it by hand",
		w.After, w.EffectiveDate.Format(time.DateOnly), w.RunID, effect, w.EffectiveDate.Format(time.DateOnly))
}

// postedReason explains why a line whose billing period at eff is already
// approved and posted (invoiced) is held.
func (e *Engine) postedReason(line psa.ContractLine, eff time.Time) string {
	period := "the billing period"
	if !line.PeriodStart.IsZero() && !line.PeriodEnd.IsZero() {
		period = fmt.Sprintf("the billing period %s to %s", line.PeriodStart.Format(time.DateOnly), line.PeriodEnd.Format(time.DateOnly))
	}
	return fmt.Sprintf("; %s is already approved and posted (invoiced) in %s: a change dated %s would alter an invoiced period, which %s bills as a proration that cannot be reversed: held (sync --approve does not release it); use policies.effective_date: %s, which dates changes in the next, unbilled period",
		period, systemName(e.be.System()), eff.Format(time.DateOnly), systemName(e.be.System()), EffectiveNextPeriodStart)
}

// period returns the billing month whose usage a pass at now (in the
// engine's Location) syncs: that month, or with usage_period: previous the
// one before.
func (e *Engine) period(now time.Time) source.Period {
	p := source.PeriodOf(now)
	if e.policies.UsagePeriod == UsagePeriodPrevious {
		p = p.Prev()
	}
	return p
}

// RanEarlierPeriod reports whether run was a pass that named an earlier
// billing month than the one a pass syncs at its start (PassOptions.Period:
// a re-run of the month that had just ended). Such a run is not the
// schedule's last pass: it neither stands for the scheduled pass of its
// time (the scheduler's last full pass) nor moves the last-run gauges,
// which report the passes of the period the schedule syncs. A scheduled
// pass caught up after its month ended (PassOptions.At) is the scheduled
// pass itself and is not one. The period at its start is computed with the
// engine's current time zone and usage_period.
func (e *Engine) RanEarlierPeriod(run state.Run) bool {
	return RanEarlierPeriod(run, e.loc, e.policies.UsagePeriod)
}

// RanEarlierPeriod is Engine.RanEarlierPeriod for an engine in time zone
// loc with policies.usage_period usagePeriod, for callers that have no
// engine (the scheduler, before a mapping export has loaded).
func RanEarlierPeriod(run state.Run, loc *time.Location, usagePeriod string) bool {
	if run.Trigger == TriggerByHand {
		// A record of the month that had ended, never a pass.
		return true
	}
	if run.Trigger == TriggerSchedule || run.Period == "" || run.Started.IsZero() {
		return false
	}
	return run.Period == PeriodAt(run.Started, loc, usagePeriod).Prev().String()
}

// PeriodAt returns the billing month whose usage a pass at t syncs, in
// time zone loc with policies.usage_period usagePeriod: t's month, or with
// usage_period: previous the one before (Engine.period).
func PeriodAt(t time.Time, loc *time.Location, usagePeriod string) source.Period {
	p := source.PeriodOf(t.In(loc))
	if usagePeriod == UsagePeriodPrevious {
		p = p.Prev()
	}
	return p
}

// monthEnd returns when the calendar month of t ends in loc: the 1st of
// the next month, 00:00 there.
func monthEnd(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
}

// ErrPeriodRefused matches the refusal of a pass for a period it may not
// sync (PassOptions.Period): see Engine.CheckPeriod.
var ErrPeriodRefused = errors.New("daemon: period refused")

// periodError is a refusal of PassOptions.Period; it matches
// ErrPeriodRefused.
type periodError struct{ msg string }

func (e *periodError) Error() string        { return e.msg }
func (e *periodError) Is(target error) bool { return target == ErrPeriodRefused }

// CheckPeriod returns why a pass at now (the clock) may not sync the usage
// of period p, or nil; writes says whether the pass writes to the PSA (not
// a plan or a dry run). A pass may sync the month it syncs now and the one
// before it: the month that has just ended, whose last pass failed or was
// partial. An older month is refused: its invoices are most likely
// generated (on Autotask a line whose period is posted is held anyway), and
// a change dated in it would carry into every month after it. On
// ConnectWise PSA a pass that writes the month before is refused too: an
// agreement addition holds one quantity, not one per month, and a PATCH
// sets the quantity billed from now on, not the ended month's.
func (e *Engine) CheckPeriod(p source.Period, now time.Time, writes bool) error {
	if p.IsZero() {
		return nil
	}
	cur := e.period(now.In(e.loc))
	switch p {
	case cur:
		return nil
	case cur.Prev():
		if writes && e.be.System() == psa.SystemConnectWise {
			return e.undatedPeriodError(p)
		}
		return nil
	}
	return &periodError{fmt.Sprintf("daemon: period %s: a pass may sync only the period it syncs now (%s) or the one before it (%s), "+
		"to run a failed or partial month-end pass again: an older period is most likely invoiced already, and a change dated in it "+
		"would change every month after it too; correct it in the PSA by hand (psa-syncd ledger -period %s lists what psa-syncd set)",
		p, cur, cur.Prev(), p)}
}

// undatedPeriodError is the refusal of a ConnectWise PSA pass that writes
// the usage of period p, the month before the one a pass syncs now.
func (e *Engine) undatedPeriodError(p source.Period) error {
	return &periodError{fmt.Sprintf("daemon: period %s: %s; %s; a pass without -period syncs %s",
		p, undatedSkipReason(p), undatedHint(p), p.Next())}
}

// undatedReason begins why a ConnectWise PSA pass does not write the
// usage of the month that has ended (undatedSkipReason); a skipped
// customer's status error contains it.
const undatedReason = "ConnectWise PSA keeps one quantity per agreement addition, not one per month"

// undatedSkipReason says why a ConnectWise PSA pass does not write the
// usage of period p, the month that has ended: the refusal of sync -period
// p, and the reason of each line that a scheduled pass of p caught up
// after p ended skips.
func undatedSkipReason(p source.Period) string {
	return fmt.Sprintf("%s: a pass for %s now would set the quantity that every invoice bills from now on (until the next pass sets %s's), not %s's",
		undatedReason, p, p.Next(), p)
}

// undatedHint says what to do about the quantities of period p, the month
// that has ended, that psa-syncd does not write on ConnectWise PSA.
func undatedHint(p source.Period) string {
	return fmt.Sprintf("plan -period %s shows the quantities %s should have had: if its agreement invoices are not generated yet, "+
		"set them on the additions by hand before generating them, else correct the invoices; then psa-syncd set-by-hand -period %s records that "+
		"(psa_sync_ended_period_last_run_result and PsaSyncEndedMonthNotSynced clear)", p, p, p)
}

// ErrNothingSetByHand matches the refusal of RecordSetByHand for a month
// whose last pass leaves nothing to record: none is recorded, or it
// succeeded.
var ErrNothingSetByHand = errors.New("daemon: nothing to record as set by hand")

// ErrBadByHandNote matches the refusal of RecordSetByHand's note: none, more
// than one line, or too long.
var ErrBadByHandNote = errors.New("daemon: bad note")

// byHandNoteError is a refusal of RecordSetByHand's note; it matches
// ErrBadByHandNote.
type byHandNoteError struct{ msg string }

func (e *byHandNoteError) Error() string        { return e.msg }
func (e *byHandNoteError) Is(target error) bool { return target == ErrBadByHandNote }

// maxByHandNote bounds the note of RecordSetByHand, in bytes.
const maxByHandNote = 1000

// RecordSetByHand records, at the clock's now, an operator's word that the
// quantities of period p, the month that has ended, were set in the PSA by
// hand (or its invoices corrected) after its last pass over all customers
// failed, was partial or held lines: on ConnectWise PSA, where a pass that
// writes that month is refused or skips its lines, it is the only way the
// month gets its quantities. The record is a run over all customers of p, trigger
// by_hand, result success, with note (who did what; required, one line of
// at most 1000 bytes) and nothing written: psa_sync_ended_period_last_run_result
// reads success and psa_sync_ended_period_held_lines 0, so
// PsaSyncEndedMonthNotSynced resolves, and the status
// page no longer offers to sync the month. It is not a pass: neither the
// schedule nor the last-run gauges count it (RanEarlierPeriod), nor
// psa_sync_runs_total. A month that has not ended, or one older than the
// month that has ended, is refused (ErrPeriodRefused), and so is one whose
// last pass over all customers succeeded without holding a line or is not
// recorded (ErrNothingSetByHand). On PostgreSQL it needs the leadership
// lock: an error matching state.ErrNotLeader says this instance does not
// hold it (any more), and nothing was recorded.
func (e *Engine) RecordSetByHand(p source.Period, note string) (state.Run, error) {
	if e.db == nil {
		return state.Run{}, errors.New("daemon: recording quantities set by hand needs a state database")
	}
	note = strings.TrimSpace(note)
	switch {
	case note == "":
		return state.Run{}, &byHandNoteError{"daemon: a note is required: who set which quantities of the month by hand, e.g. \"jane: additions set in ConnectWise before invoicing\""}
	case len(note) > maxByHandNote:
		return state.Run{}, &byHandNoteError{fmt.Sprintf("daemon: the note is %d bytes long, more than the %d a note may have", len(note), maxByHandNote)}
	case strings.ContainsAny(note, "\r\n"):
		return state.Run{}, &byHandNoteError{"daemon: the note must be one line"}
	}
	now := e.now()
	cur := e.period(now.In(e.loc))
	if p != cur.Prev() {
		return state.Run{}, &periodError{fmt.Sprintf("daemon: period %s: only the month that has ended (%s) can be recorded as set by hand: "+
			"its invoices are the ones generated now (the current month's quantities are set by the next pass; an older month's are invoiced already)",
			p, cur.Prev())}
	}
	r, ok, err := e.db.LastFullRunOfPeriod(p.String())
	if err != nil {
		return state.Run{}, err
	}
	if ok && r.Result == state.RunRunning {
		return state.Run{}, fmt.Errorf("%w: a pass of %s (run %d) is running: wait for its result", ErrNothingSetByHand, p, r.ID)
	}
	if ok {
		switch {
		case r.Trigger == TriggerByHand:
			return state.Run{}, fmt.Errorf("%w: %s was recorded as set by hand at %s (run %d: %s)", ErrNothingSetByHand, p,
				r.Started.UTC().Format(time.RFC3339), r.ID, r.Note)
		case r.Result == state.RunSuccess && r.Held == 0:
			return state.Run{}, fmt.Errorf("%w: the last pass of %s over all customers (run %d) succeeded and held no line", ErrNothingSetByHand, p, r.ID)
		}
		// Fenced: an instance that lost the leadership lock before it
		// noticed must not record a run of the month beside the active
		// instance's passes, where it could become the month's last.
		run, err := e.db.Fenced().BeginRun(state.Run{Trigger: TriggerByHand, Started: now.UTC(), Finished: now.UTC(), Result: state.RunSuccess,
			Period: p.String(), Note: note})
		if err != nil {
			return state.Run{}, fmt.Errorf("daemon: recording the quantities of %s as set by hand: %w", p, err)
		}
		e.metrics.recordPeriodResult(run)
		e.logger.Info("Recorded the quantities of the month that ended as set by hand", "run", run.ID, "period", run.Period,
			"last_pass", r.ID, "last_pass_result", r.Result, "note", note)
		return run, nil
	}
	return state.Run{}, fmt.Errorf("%w: no pass of %s over all customers is recorded (psa-syncd status, GET /api/v1/runs)", ErrNothingSetByHand, p)
}

// passTime returns the time, in e's location, whose period (and, with
// effective_date: today, whose day) a pass with o syncs, computed at now
// (the clock): o.At, or for o.Period the last instant of the month whose
// pass syncs that period (with usage_period: previous, the month after
// it), or now. It refuses what CheckPeriod refuses.
func (e *Engine) passTime(o PassOptions, now time.Time) (time.Time, error) {
	if o.Period.IsZero() {
		if !o.At.IsZero() {
			now = o.At
		}
		return now.In(e.loc), nil
	}
	if !o.At.IsZero() {
		return time.Time{}, errors.New("daemon: a pass takes either a period or the time it was due, not both")
	}
	if err := e.CheckPeriod(o.Period, now, !o.DryRun && !o.WritesDisabled && !o.planOnly); err != nil {
		return time.Time{}, err
	}
	now = now.In(e.loc)
	if o.Period == e.period(now) {
		return now, nil
	}
	// The month that has ended: its last pass would have run on its last
	// day, at the latest at its last instant.
	month := o.Period
	if e.policies.UsagePeriod == UsagePeriodPrevious {
		month = month.Next()
	}
	return month.Next().Start(e.loc).Add(-time.Second), nil
}

// effectiveDate returns the date a pass at now dates its changes on, for
// the usage of period: the first day of period (period_start), the day of
// the pass (today) or the first day of the month after period
// (next_period_start); a UTC date (midnight), which is how PSAs take
// dates.
func (e *Engine) effectiveDate(now time.Time, period source.Period) time.Time {
	switch e.policies.EffectiveDate {
	case EffectiveToday:
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	case EffectiveNextPeriodStart:
		return period.Next().Start(time.UTC)
	default:
		return period.Start(time.UTC)
	}
}

// readChunk is how many contracts a pass reads the lines of at a time: as
// many as one bulk read takes in a request (Autotask's "in" filter takes
// 500 ids), so that reading in chunks costs no request more than reading
// every contract at once. A pass decides each chunk's lines as soon as they
// are read and keeps only those it writes, so that the lines of 100,000
// are never in memory together.
const readChunk = 500

// firstReadChunk is how many contracts the first chunk of a large pass
// holds (one of more than firstChunkSplitAfter chunks): the first chunk is
// read alone (see readContracts), and at 500 contracts it is five pages of
// Autotask unit rows one after another, a tenth of a second with the PSA's
// other request slots idle. A fifth of a chunk is one page at Autotask's
// five services per contract. Splitting it off can cost one request more
// in the pass when its contracts' rows do not fill their pages, which a
// pass of so many chunks does not notice.
const (
	firstReadChunk       = readChunk / 5
	firstChunkSplitAfter = 10
)

// readsAhead is how many chunks are read at once, or read and not yet
// decided: enough to keep Autotask's 3 requests in flight while the pass
// fetches the usage, before it decides the first chunk (a 100,000-line
// file takes about a tenth of a second, 15 pages), and while it decides a
// chunk. A chunk read ahead holds up to readChunk contracts' lines, about a
// megabyte at five lines each.
const readsAhead = 8

// readsFailedToStop is on how many contracts, each read alone, reads that
// the PSA refused in a row with the same server error stop the reads of a
// pass (see lineReader.refused): the reads in flight when the PSA started
// failing, one a chunk, and writesFailedToStop more, as for the writes.
const readsFailedToStop = readsAhead + writesFailedToStop

// lineReader reads the lines of a pass's contracts chunk by chunk, ahead of
// the pass, and hands the chunks over in order (see readContracts).
type lineReader struct {
	e          *Engine
	chunks     [][]string
	serviceIDs []string
	asOf       time.Time
	// ledger is true when the PSA cannot report current quantities
	// (Kaseya BMS): the lines come from the ledger.
	ledger bool
	// read[i] delivers chunk i.
	read []chan lineChunk
	next int
	// ahead holds a token per chunk being read or waiting to be decided.
	ahead chan struct{}
	stop  chan struct{}
	// fatal is the first error that concerns the PSA as a whole: the
	// chunks not yet read fail with it without a request.
	mu    sync.Mutex
	fatal error
	// refusedInRow holds the contracts whose reads, each alone, the PSA
	// refused with the server error refusal (see serverRefusal) since the
	// last read that succeeded.
	refusedInRow map[string]bool
	refusal      string
	// failing holds the contracts whose reads the PSA refused so at
	// earlier passes (FailingContracts.of): the refusals of those refused
	// while other reads of a pass succeeded do not count toward the stop.
	// failedPass and succeeded hold the contracts of this pass's refused
	// and successful reads.
	failing, failedPass, succeeded map[string]bool
}

// lineChunk is the lines of one chunk of contracts, and the errors of the
// contracts that could not be read.
type lineChunk struct {
	lines *lineIndex
	errs  map[string]error
	// ledger is set on the first chunk when the PSA cannot read lines.
	ledger bool
}

// readContracts starts reading the lines of the contracts ids (in the order
// the pass decides them) in chunks of readChunk, at most readsAhead at a
// time, and returns at once; lineReader.chunk returns them in order. A
// backend that reports per-contract problems (ConnectWise's
// *ContractErrors, found through its ContractErrors method) fails just
// those contracts and returns the other contracts' lines. Otherwise, when a
// read fails for a reason that one bad contract id can cause (not found,
// refused), it splits the chunk in halves to find the culprits, so that one
// customer's bad contract fails only that customer. Errors that concern the
// whole PSA (rate limits, credentials, outages, cancellation) fail every
// contract of the chunk, and of the chunks not read yet, instead of
// multiplying requests. So does the same server error for the reads of
// readsFailedToStop contracts in a row, each read alone (see refused): a
// tenant or a proxy that answers every read so would otherwise cost some
// two requests a contract at every pass.
//
// The reads name the pass's services serviceIDs to a backend that fails a
// contract over a line it cannot represent (psa.ServiceLineReader), so that
// only a problem with one of those lines fails it. A backend that cannot
// read quantities at all (psa.ErrNotSupported: Kaseya BMS, which says so
// without a request) gets its lines from the ledger instead, for the given
// services: waitFirst tells, and must be called before chunk. The caller
// must call close when done.
func (e *Engine) readContracts(ctx context.Context, ids, serviceIDs []string, asOf time.Time) *lineReader {
	r := &lineReader{e: e, chunks: chunkContracts(ids), serviceIDs: serviceIDs, asOf: asOf,
		ahead: make(chan struct{}, readsAhead), stop: make(chan struct{})}
	// The state database keeps the contracts whose reads fail for the
	// processes that start later, as it does those whose writes fail.
	sys := e.be.System()
	if e.db != nil {
		if stored, err := e.db.FailingReads(sys); err != nil {
			e.logger.Warn("Could not read the contracts whose reads failed at earlier passes; only this process's do not stop the reads", "err", err)
		} else {
			e.failingReads.restore(sys, stored)
		}
	}
	r.failing = e.failingReads.of(sys)
	r.read = make([]chan lineChunk, len(r.chunks))
	for i := range r.read {
		r.read[i] = make(chan lineChunk, 1)
	}
	if len(r.chunks) == 0 {
		return r
	}
	go func() {
		// The first chunk is read alone: it tells whether the PSA can be
		// read at all, and a failure of the whole PSA then fails the
		// other chunks without a request. The caller meanwhile fetches
		// the usage.
		r.ahead <- struct{}{}
		first := r.readChunk(ctx, r.chunks[0], true)
		r.read[0] <- first
		if first.ledger {
			return
		}
		for i := 1; i < len(r.chunks); i++ {
			select {
			case r.ahead <- struct{}{}:
			case <-r.stop:
				return
			}
			go func() { r.read[i] <- r.readChunk(ctx, r.chunks[i], false) }()
		}
	}()
	return r
}

// chunkContracts splits ids into the chunks readContracts reads: of
// readChunk, with a first chunk of firstReadChunk when there are more than
// firstChunkSplitAfter chunks.
func chunkContracts(ids []string) [][]string {
	if len(ids) <= firstChunkSplitAfter*readChunk {
		return slices.Collect(slices.Chunk(ids, readChunk))
	}
	return append([][]string{ids[:firstReadChunk]}, slices.Collect(slices.Chunk(ids[firstReadChunk:], readChunk))...)
}

// chunkOf returns the chunk of chunkContracts(ids) that holds ids[k], of
// n ids.
func chunkOf(k, n int) int {
	switch {
	case n <= firstChunkSplitAfter*readChunk:
		return k / readChunk
	case k < firstReadChunk:
		return 0
	}
	return 1 + (k-firstReadChunk)/readChunk
}

// waitFirst waits for the first chunk's read, which tells whether the PSA
// can read lines at all, and returns r.ledger.
func (r *lineReader) waitFirst() bool {
	if len(r.chunks) == 0 {
		return false
	}
	first := <-r.read[0]
	if first.ledger {
		// No other chunk is read: the ledger replaces them all.
		r.ledger = true
		return true
	}
	r.read[0] <- first
	return false
}

// chunk returns the next chunk's lines, waiting for its read.
func (r *lineReader) chunk() lineChunk {
	i := r.next
	r.next++
	if r.ledger {
		lines := &lineIndex{}
		errs := map[string]error{}
		set, err := r.e.ledgerLines(r.chunks[i], r.serviceIDs, r.asOf)
		if err != nil {
			for _, id := range r.chunks[i] {
				errs[id] = err
			}
		}
		lines.add(slices.Collect(maps.Values(set)))
		return lineChunk{lines: lines, errs: errs}
	}
	c := <-r.read[i]
	<-r.ahead
	return c
}

// close stops the reads not started yet.
func (r *lineReader) close() { close(r.stop) }

// readChunk reads the lines of one chunk of contracts (see readContracts).
// When the first chunk finds that the PSA cannot read lines, it returns a
// chunk with ledger set and nothing else.
func (r *lineReader) readChunk(ctx context.Context, ids []string, first bool) lineChunk {
	c := lineChunk{lines: &lineIndex{}, errs: map[string]error{}}
	fail := func(ids []string, err error) {
		for _, id := range ids {
			c.errs[id] = err
		}
	}
	var read func(ids []string)
	read = func(ids []string) {
		if len(ids) == 0 || c.ledger {
			return
		}
		r.mu.Lock()
		fatal := r.fatal
		r.mu.Unlock()
		var stopped *readsStoppedError
		switch {
		case errors.As(fatal, &stopped):
			fail(ids, stopped)
			return
		case fatal != nil:
			fail(ids, &batchReadError{earlier: true, err: fatal})
			return
		}
		got, err := r.e.readLines(ctx, ids, r.serviceIDs, r.asOf)
		if err == nil {
			r.readOK(ids, nil)
			c.lines.add(got)
			return
		}
		var ce contractErrors
		switch {
		case errors.Is(err, psa.ErrNotSupported) && first:
			c.ledger = true
			return
		case errors.As(err, &ce):
			alike := r.readAnswered(ids, ce.ContractErrors())
			c.lines.add(got)
			for id, cerr := range ce.ContractErrors() {
				if slices.Contains(ids, id) {
					c.errs[id] = &contractError{err: cerr, alike: alike[id]}
				}
			}
			return
		case len(ids) > 1 && isolatable(err) && ctx.Err() == nil:
			read(ids[:len(ids)/2])
			read(ids[len(ids)/2:])
			return
		case !isolatable(err):
			r.mu.Lock()
			if r.fatal == nil {
				r.fatal = err
			}
			r.mu.Unlock()
		case len(ids) == 1:
			r.refused(ids[0], err)
		}
		if len(ids) > 1 {
			err = &batchReadError{contracts: len(ids), err: err}
		}
		fail(ids, err)
	}
	read(ids)
	return c
}

// readOK records that the read of ids succeeded, but for the contracts
// of failed: the refusals before it are no row.
func (r *lineReader) readOK(ids []string, failed map[string]error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusedInRow = nil
	if r.succeeded == nil {
		r.succeeded = map[string]bool{}
	}
	for _, id := range ids {
		if _, ok := failed[id]; !ok {
			r.succeeded[id] = true
		}
	}
}

// record keeps the outcomes of the pass's reads for the next passes
// (FailingContracts.update), in the state database too, forgetting the
// contracts no longer in mapped.
func (r *lineReader) record(mapped map[string]bool) {
	r.mu.Lock()
	failed, succeeded := r.failedPass, r.succeeded
	r.mu.Unlock()
	sys := r.e.be.System()
	r.e.failingReads.update(sys, failed, succeeded)
	r.e.failingReads.prune(sys, mapped)
	if now := r.e.failingReads.of(sys); r.e.db != nil && !maps.Equal(now, r.failing) {
		if err := r.e.db.PutFailingReads(sys, now); err != nil {
			r.e.logger.Warn("Could not record the contracts whose reads the PSA refused; a psa-syncd that starts counts them toward stopping the reads", "err", err)
		}
	}
}

// refused records that the PSA refused the read of contract, read alone,
// with err. Once it refused the reads of readsFailedToStop contracts in a
// row with the same server error (serverRefusal), no read succeeding
// between them, the reads of the pass stop: the contracts not read yet
// fail with a *readsStoppedError. A refusal that concerns one contract
// (Autotask answers a 500 with errors[] for a record it cannot read too)
// names it or differs from the next contract's, and the reads of the
// contracts beside it succeed, so it fails only its customer. A contract
// refused so at an earlier pass while other reads succeeded is not
// counted: its refusal is its own (a few adjacent records that make the
// PSA answer one generic 500), and counting it would stop the reads of the
// customers after it at every pass.
func (r *lineReader) refused(contract string, err error) {
	refusal, ok := serverRefusal(err)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusedAsLocked(contract, refusal, err)
}

// readAnswered records the outcome of a read that the PSA answered for
// each contract, some or all of them with an error of that contract's
// own (psa.ContractErrors: ConnectWise reads each agreement's additions
// with a request of its own). When every contract of ids failed, those
// whose answer could as well be the PSA's, or a proxy's, answer to every
// request (answerRefusal: a 4xx other than 404, an answer that cannot be
// decoded, such as a proxy's HTML page) count toward the reads' stop in
// contract order, as the server refusals of contracts read alone do
// (refused); a contract the PSA answered as not found, or with an answer
// about its own records, breaks the run, as a read that succeeded does.
// When some contracts read, the failures are their contracts' own, as for
// a read split down to the contracts at fault: the run is broken, and
// they are recorded so (failedPass) for the next passes. It returns how
// many contracts in a row the PSA had answered alike, for the contracts
// whose run stopped the reads.
func (r *lineReader) readAnswered(ids []string, errs map[string]error) map[string]int {
	failedAll := true
	for _, id := range ids {
		if _, ok := errs[id]; !ok {
			failedAll = false
			break
		}
	}
	if !failedAll {
		r.readOK(ids, errs)
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, id := range ids {
			if err, ok := errs[id]; ok {
				if _, alike := answerRefusal(id, err); alike {
					if r.failedPass == nil {
						r.failedPass = map[string]bool{}
					}
					r.failedPass[id] = true
				}
			}
		}
		return nil
	}
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, compareIDs)
	r.mu.Lock()
	defer r.mu.Unlock()
	stoppedBefore := r.fatal != nil
	for _, id := range sorted {
		refusal, ok := answerRefusal(id, errs[id])
		if !ok {
			r.refusedInRow = nil
			continue
		}
		r.refusedAsLocked(id, refusal, errs[id])
	}
	var stopped *readsStoppedError
	if stoppedBefore || !errors.As(r.fatal, &stopped) {
		return nil
	}
	alike := make(map[string]int, len(r.refusedInRow))
	for id := range r.refusedInRow {
		alike[id] = len(r.refusedInRow)
	}
	return alike
}

// answerRefusal returns the key under which the reads' stop compares
// err, the error of contract's read within a read that the PSA answered
// per contract (psa.ContractErrors), and whether it counts toward the
// stop: an answer that any contract's request could get alike (a 4xx
// refusal, an HTML page or a body that cannot be decoded), not one about
// the contract's own records. Not found is the contract's own answer, as
// is a conflict (two active additions of one product). The contract's id
// is taken out of the key, since the error names the contract (and its
// URL); what else differs per request is taken out as for server
// refusals (refusalKey).
func answerRefusal(contract string, err error) (string, bool) {
	if err == nil || errors.Is(err, psa.ErrNotFound) || errors.Is(err, psa.ErrConflict) {
		return "", false
	}
	return refusalKey(withoutContractID(err.Error(), contract)), true
}

// withoutContractID returns text with the contract's id (as a whole
// number, leading zeros included) replaced by "<contract>": the errors of
// reads of different contracts that failed alike then read the same.
func withoutContractID(text, contract string) string {
	if id := idKey(contract); id != "" {
		text = regexp.MustCompile(`\b0*`+regexp.QuoteMeta(id)+`\b`).ReplaceAllString(text, "<contract>")
	}
	return text
}

// refusedAsLocked counts contract's read, refused with refusal (err),
// toward the reads' stop (see refused). r.mu is held.
func (r *lineReader) refusedAsLocked(contract, refusal string, err error) {
	if r.failedPass == nil {
		r.failedPass = map[string]bool{}
	}
	r.failedPass[contract] = true
	if r.failing[contract] {
		return
	}
	if refusal != r.refusal || r.refusedInRow == nil {
		r.refusedInRow, r.refusal = map[string]bool{}, refusal
	}
	r.refusedInRow[contract] = true
	if r.fatal == nil && len(r.refusedInRow) >= readsFailedToStop {
		r.fatal = &readsStoppedError{n: len(r.refusedInRow), last: err}
	}
}

// readsStopped returns why the PSA's failures stopped the reads of the
// pass, or nil.
func (r *lineReader) readsStopped() *readsStoppedError {
	r.mu.Lock()
	defer r.mu.Unlock()
	var stopped *readsStoppedError
	errors.As(r.fatal, &stopped)
	return stopped
}

// readsStoppedError fails a contract that a pass did not read because the
// PSA refused the reads of the contracts before it with the same server
// error (see lineReader.refused).
type readsStoppedError struct {
	n    int
	last error
}

func (e *readsStoppedError) Error() string {
	return fmt.Sprintf("not read: the PSA refused the reads of the %d contracts before it with the same server error or answer, so the pass stopped reading; the last with: %v", e.n, e.last)
}

// batchReadError is the failure of a read of many contracts' lines at once
// (or of an earlier read, which stopped the reads after it), as each of
// those contracts gets it: the contract's own answer may have been fine,
// so its error must not read as if the contract were to blame. Where the
// backend knows which contract's request failed, its error names it
// (ConnectWise: "reading the additions of agreement 800").
type batchReadError struct {
	// contracts is how many contracts the read was of; earlier is true
	// when the contract was not read at all because an earlier read
	// failed in a way that concerns the whole PSA.
	contracts int
	earlier   bool
	err       error
}

func (e *batchReadError) Error() string {
	if e.earlier {
		return "not read, since an earlier batch read failed: " + e.err.Error()
	}
	return fmt.Sprintf("the batch read of %d contracts failed: %v", e.contracts, e.err)
}

func (e *batchReadError) Unwrap() error { return e.err }

// readLines reads the lines of contracts ids at asOf, for a pass or a
// reconciliation that manages the services serviceIDs: through
// ReadServiceLines where the backend has it (psa.ServiceLineReader), so
// that a problem with a line of another service (a ConnectWise addition of
// labour with a fractional quantity) does not fail the contract, and
// through ReadLines otherwise.
func (e *Engine) readLines(ctx context.Context, ids, serviceIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	var lines []psa.ContractLine
	var err error
	if sr, ok := e.be.(psa.ServiceLineReader); ok {
		lines, err = sr.ReadServiceLines(ctx, ids, serviceIDs, asOf)
	} else {
		lines, err = e.be.ReadLines(ctx, ids, asOf)
	}
	if err == nil {
		e.progressed()
	}
	return lines, err
}

// progressed records that the running pass read a page of usage or of
// contract lines, got an answer to a read of its plan's checks (the
// contracts, their records and companies, the mapped services) or of the
// PSA's hourly budget (budgetGate.progressed), or finished a line write
// (Metrics.passProgressed).
func (e *Engine) progressed() { e.metrics.passProgressed(e.now()) }

// lineIndex holds the lines a pass read, sorted by key and found by
// binary search: at 100,000 lines a map by key would cost some 20 MB
// (holding the lines) or 7 MB (pointing into the read) while a pass
// decides, the sorted read costs nothing more.
type lineIndex struct {
	lines  []psa.ContractLine
	sorted bool
}

// add adds the lines of one read; a later line replaces an earlier one with
// the same key.
func (x *lineIndex) add(lines []psa.ContractLine) {
	if x.lines == nil {
		x.lines = lines
	} else {
		x.lines = append(x.lines, lines...)
	}
	x.sorted = false
}

// sort sorts the lines by key, keeping the order of lines with the same key.
func (x *lineIndex) sort() {
	if !x.sorted {
		slices.SortStableFunc(x.lines, func(a, b psa.ContractLine) int { return compareLineKeys(a.Key(), b.Key()) })
		x.sorted = true
	}
}

func compareLineKeys(a, b psa.LineKey) int {
	return cmp.Or(strings.Compare(a.ContractID, b.ContractID), strings.Compare(a.ServiceID, b.ServiceID))
}

// get returns the line with key k (the last one added).
func (x *lineIndex) get(k psa.LineKey) (psa.ContractLine, bool) {
	x.sort()
	i, ok := slices.BinarySearchFunc(x.lines, k, func(l psa.ContractLine, k psa.LineKey) int { return compareLineKeys(l.Key(), k) })
	if !ok {
		return psa.ContractLine{}, false
	}
	for i+1 < len(x.lines) && x.lines[i+1].Key() == k {
		i++
	}
	return x.lines[i], true
}

// hasContract reports whether any line is on contract id.
func (x *lineIndex) hasContract(id string) bool {
	x.sort()
	_, ok := slices.BinarySearchFunc(x.lines, id, func(l psa.ContractLine, id string) int { return strings.Compare(l.ContractID, id) })
	return ok
}

// contractErrors is what a backend's bulk read returns when some contracts
// failed for reasons of their own (psa.ContractErrors), matched
// by method so that the engine does not depend on any one PSA's package.
type contractErrors interface {
	error
	ContractErrors() map[string]error
}

// contractFailures splits err, the error of a read of contracts' lines,
// into the errors of the contracts that failed for reasons of their own
// (contractErrors), by idKey, and the error of a read that failed as a
// whole (nil when it did not).
func contractFailures(err error) (map[string]error, error) {
	failed := map[string]error{}
	var ce contractErrors
	if err == nil || !errors.As(err, &ce) {
		return failed, err
	}
	for id, cerr := range ce.ContractErrors() {
		failed[idKey(id)] = cerr
	}
	return failed, nil
}

// contractError marks a problem the PSA reported about one contract (as
// opposed to a failed request).
type contractError struct {
	err error
	// alike is set when the PSA answered the reads of this many
	// contracts in a row, this one's among them, alike, and that stopped
	// the reads (see lineReader.readAnswered).
	alike int
}

func (e *contractError) Error() string { return e.err.Error() }
func (e *contractError) Unwrap() error { return e.err }

// readProblem turns a contract's read error into the customer's hint and
// error.
func (e *Engine) readProblem(err error, cm export.CustomerMapping) (string, error) {
	sys := e.be.System()
	var ce *contractError
	own := errors.As(err, &ce)
	var amb *psa.AmbiguousError
	var ve *psa.ValidationError
	var be *batchReadError
	var stopped *readsStoppedError
	switch {
	case errors.As(err, &stopped):
		return fmt.Sprintf("%s refused the reads of %d contracts in a row with the same server error or answer, so the pass stopped reading: check %[1]s (its status, a proxy in front of it); the next pass reads again",
				systemName(sys), stopped.n),
			fmt.Errorf("contract %s: %w", cm.ContractID, err)
	case own && ce.alike > 0:
		return fmt.Sprintf("%s answered the reads of %d contracts in a row alike (a refusal or a page that is no answer of its API), so the pass stopped reading: check %[1]s (its status, a proxy in front of it, the API user's access); the next pass reads again",
				systemName(sys), ce.alike),
			fmt.Errorf("reading contract %s: %w", cm.ContractID, err)
	case !own && errors.As(err, &be):
		return e.hint(err, cm, ""), fmt.Errorf("contract %s: %w", cm.ContractID, err)
	case own && errors.Is(err, psa.ErrNotAPI):
		// A page that is not the API's for this contract's read while
		// the PSA answered the others': a proxy's passing hiccup.
		return fmt.Sprintf("%s's address answered the read of contract %s with a page that is not its API, while it answered other contracts "+
				"(a proxy or load balancer in between failing now and then); the next pass reads it again. If it keeps happening, check that proxy",
				sys.Title(), cm.ContractID),
			fmt.Errorf("reading contract %s: %w", cm.ContractID, err)
	case own && errors.Is(err, psa.ErrUnauthorized):
		// The PSA refused this one contract (a ConnectWise 403: the API
		// member's security role does not reach the agreement), not the
		// credentials, which read the other contracts.
		return fmt.Sprintf("%s refused to read contract %s: let the API user see it, or check contract_id of customer mapping %s/%s",
				sys, cm.ContractID, cm.Source, cm.CustomerID),
			fmt.Errorf("reading contract %s: %w", cm.ContractID, err)
	case errors.As(err, &amb), errors.Is(err, psa.ErrConflict):
		return e.hint(err, cm, ""), fmt.Errorf("contract %s: %w", cm.ContractID, err)
	case own && errors.As(err, &ve):
		return fmt.Sprintf("fix contract %s in %s: %s", cm.ContractID, sys, strings.Join(ve.Messages, "; ")),
			fmt.Errorf("contract %s: %w", cm.ContractID, err)
	case errors.As(err, &ve):
		return fmt.Sprintf("%s refused to read contract %s (%s): check contract_id of customer mapping %s/%s or re-run terraform apply",
				sys, cm.ContractID, strings.Join(ve.Messages, "; "), cm.Source, cm.CustomerID),
			fmt.Errorf("reading contract %s: %w", cm.ContractID, err)
	default:
		return e.hint(err, cm, ""), fmt.Errorf("reading contract %s: %w", cm.ContractID, err)
	}
}

func isolatable(err error) bool {
	return errors.Is(err, psa.ErrNotFound) || errors.Is(err, psa.ErrValidation) || errors.Is(err, psa.ErrConflict)
}

// errUnsettled marks a line whose earlier write is still an open intent.
var errUnsettled = errors.New("an earlier change to this line is not confirmed yet")

// notAPIHint says what to check when the PSA's address answers with what
// is not the PSA's API (psa.ErrNotAPI).
func notAPIHint(sys psa.System) string {
	setting := fmt.Sprintf("psa.%s.base_url", sys)
	switch sys {
	case psa.SystemConnectWise:
		setting += " (or psa.connectwise.site)"
	case psa.SystemKaseyaBMS:
		setting += " (or psa.kaseya_bms.hostname)"
	}
	return fmt.Sprintf("%s's address answered with a page or data that is not its API (a proxy's or single sign-on's sign-in page, "+
		"a captive portal, a maintenance page, another product): every customer fails alike until it is fixed, and a maintenance page "+
		"passes by itself; check %s, and that a proxy in between lets psa-syncd through without signing in; "+
		"psa-syncd check -web.url URL has the running psa-syncd test its connection",
		sys.Title(), setting)
}

// hint tells the operator how to fix err for customer cm.
func (e *Engine) hint(err error, cm export.CustomerMapping, serviceID string) string {
	sys := e.be.System()
	mapping := cm.Source + "/" + cm.CustomerID
	var ve *psa.ValidationError
	var amb *psa.AmbiguousError
	var he *hintedError
	switch {
	case errors.As(err, &he):
		return he.hint
	case errors.Is(err, psa.ErrOutcomeUnknown), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "the PSA did not confirm the change: psa-syncd re-reads the line before writing it again, so it is never posted twice"
	case errors.Is(err, errUnsettled):
		return "the PSA did not confirm an earlier change: psa-syncd re-reads the line (next pass or start-up) before writing it again, so it is never posted twice"
	case errors.Is(err, psa.ErrNotAPI):
		// A proxy's sign-in page, a maintenance page or another product
		// answers at the PSA's address: every customer alike.
		return notAPIHint(sys)
	case errors.Is(err, psa.ErrRateLimited):
		return "rate limited: the pass will retry on the next run"
	case errors.Is(err, psa.ErrForbidden):
		// A 403 that does not speak of the credentials: the API user
		// lacks a permission for this contract or service.
		return fmt.Sprintf("%s refused the API user this request for contract %s, not its credentials: %s",
			sys, cm.ContractID, permissionHint(sys))
	case errors.Is(err, psa.ErrUnauthorized):
		return fmt.Sprintf("%s refused the credentials: check the psa settings with psa-syncd check -web.url URL, which has the running psa-syncd test its own", sys)
	case errors.Is(err, psa.ErrEndpointNotFound):
		// A query answered 404: the endpoint is missing at the configured
		// address, for every customer alike, not this customer's contract.
		return fmt.Sprintf("%s answered 404 to a query, so the API is not at the configured address: check psa.%s.base_url (without it psa-syncd discovers the zone), or a proxy in between; psa-syncd check -web.url URL has the running psa-syncd test its connection", sys, sys)
	case errors.Is(err, psa.ErrNotFound) && serviceID == "":
		return fmt.Sprintf("contract %s not found in %s: check contract_id of customer mapping %s or re-run terraform apply", cm.ContractID, sys, mapping)
	case errors.Is(err, psa.ErrNotFound):
		return fmt.Sprintf("contract %s or service %s not found in %s: check contract_id of customer mapping %s and service_id of its product mappings, or re-run terraform apply",
			cm.ContractID, serviceID, sys, mapping)
	case errors.As(err, &ve) && serviceID != "":
		// A line write refused: most often the service itself (made
		// inactive or removed from the catalog in the PSA since it was
		// mapped), which every customer of the service then meets; the
		// read of the service after the refusal tells.
		return e.refusedLineHint(ve, cm, serviceID)
	case errors.As(err, &ve):
		return "PSA refused the change: " + strings.Join(ve.Messages, "; ")
	case errors.As(err, &amb) && sys == psa.SystemAutotask:
		// A repeat service: the contract holds the service on more than
		// one contract service line.
		return fmt.Sprintf("the service is on the contract more than once, %s (%s): psa-syncd never guesses which line to change, nor reads their sum as one quantity; keep one line of the service on the contract in Autotask (move the units to it and remove the repeat, or bill the repeat under a service of its own), then run the pass again",
			amb.Query, strings.Join(amb.Matches, ", "))
	case errors.As(err, &amb):
		return fmt.Sprintf("more than one active line %s (%s): cancel all but one in %s, then run the pass again; psa-syncd never guesses which one to change",
			amb.Query, strings.Join(amb.Matches, ", "), systemName(sys))
	case errors.Is(err, psa.ErrConflict):
		// A contract that can no longer be billed on (ConnectWise: a
		// cancelled or expired agreement): the customer mapping is stale.
		return fmt.Sprintf("contract %s can no longer be billed on: map the customer to an active agreement in Terraform (psa_customer_mapping.contract_id) and apply", cm.ContractID)
	default:
		return "the pass will retry on the next run; psa-syncd check -web.url URL has the running psa-syncd test its connection"
	}
}

// permissionHint says what the API user may lack when the PSA refuses it
// a contract's request (psa.ErrForbidden).
func permissionHint(s psa.System) string {
	switch s {
	case psa.SystemAutotask:
		return "check that the API user's security level and resource permissions let it see and edit the contract and its services"
	case psa.SystemConnectWise:
		return "check that the API member's security role reaches the agreement and its company (Finance: Agreements, inquire and edit)"
	case psa.SystemKaseyaBMS:
		return "check that the API user has access to the contract's account and may edit its contracts"
	}
	return "check that the API user may see and edit the contract"
}

// idKey is the key under which a pass compares the contract and service
// ids of different mappings (two customers on one contract, another
// source's customers and services): for a decimal id, the number it stands
// for, because every backend parses "0800" and " 800" as id 800 (psa-syncd
// refuses such ids in an export, but the engine does not rely on it); any
// other id (a placeholder of the billing-impact report) as it is.
func idKey(id string) string {
	if n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64); err == nil && n >= 0 {
		return strconv.FormatInt(n, 10)
	}
	return id
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

// percentText formats a decrease or increase for a reason: to two
// decimals, without trailing zeros, and with every decimal it takes when two
// would round a change over limit (max_decrease_percent or
// max_increase_percent) down to the limit itself:
// "50.4", never "50" against a limit of 50.
func percentText(pct, limit float64) string {
	t := strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(pct, 'f', 2, 64), "0"), ".")
	if shown, err := strconv.ParseFloat(t, 64); err == nil && pct > limit && shown <= limit {
		return strconv.FormatFloat(pct, 'f', -1, 64)
	}
	return t
}
