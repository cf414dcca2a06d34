package tickets

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Alert is an open vendor alert of one customer.
type Alert struct {
	ID          string
	Severity    string // low, medium or high
	Type        string
	Category    string
	Product     string
	Description string
	// RaisedAt is when the alert was raised; zero when unknown.
	RaisedAt time.Time
	// RaisedAtUnparsed is the vendor's raised time when the source could
	// not read it (RaisedAt is then zero), else "". The alert is filed
	// all the same, without a time, and the pass reports it.
	RaisedAtUnparsed string
	// Unread says what of the alert the source could not read (a field of
	// the wrong type), else "". The alert is filed all the same, with what
	// could be read, and the pass reports it.
	Unread string
	// DeviceURL links to the device in the vendor console; may be empty.
	DeviceURL string
}

// Customer is a customer whose alerts become tickets: a customer mapping
// with ticket sync on.
type Customer struct {
	Source       string
	CustomerID   string
	CustomerName string
	CompanyID    string
	ContractID   string
}

// AlertSource lists a customer's open alerts. It returns the complete
// open set or an error, never part of it: an alert missing from a listing
// is how the vendor says it was resolved, so a partial listing would close
// tickets wrongly.
//
// A source that also has a StartPass() method (SophosAlerts) has it called
// at the start of each pass, before the first customer: what it reads once
// for many customers (the tenant list) it reads at most once a pass.
type AlertSource interface {
	OpenAlerts(ctx context.Context, c Customer) ([]Alert, error)
}

// Engine runs ticket passes: it files each customer's open alerts as PSA
// tickets, closes (or annotates) the tickets of resolved alerts, and never
// creates a ticket twice. It is safe for one pass at a time; the daemon
// serialises passes.
//
// The engine follows only the ticket records of the PSA it is connected to
// (Config.System and Config.Instance): a record of another system or
// instance, left in the state database by a switch of PSA, names a ticket
// id that means nothing here, so the engine never calls the PSA for it,
// and reports it. A record written before instances were recorded is taken
// as the engine's own when its system is the engine's, and the engine's
// instance is recorded in it when it is next written.
type Engine struct {
	system     psa.System
	instance   string
	psa        psa.Ticketer
	store      Store
	alerts     AlertSource
	routing    export.Tickets
	settleTime time.Duration
	// activeSince is Config.ActiveSince.
	activeSince time.Time
	// resolveAfter is Config.ResolveAfter.
	resolveAfter time.Duration
	retention    time.Duration
	now          func() time.Time
	logger       *slog.Logger
	// fence stops a pass at the first store write refused with
	// ErrNotLeader (fence.go); store and psa go through it.
	fence *fence
	// budget gates the writes of a pass; nil sends them ungated.
	budget Budget
	// bulk is the PSA when it reads tickets in bulk, else nil.
	bulk psa.TicketBulkReader
	// notes is the PSA when it lists ticket notes, else nil.
	notes psa.TicketNoteLister
	// closeNoteSeparate is set when the PSA adds a close's note by a
	// request of its own (psa.TicketCloseNoteSeparate).
	closeNoteSeparate bool
	// forgetOther deletes the records of another PSA (Config.ForgetOtherPSA).
	forgetOther bool
	// startWith is Config.StartWith.
	startWith CustomerKey
}

// CustomerKey names a customer of a pass.
type CustomerKey struct {
	Source     string `json:"source"`
	CustomerID string `json:"customer_id"`
}

// Budget keeps the writes of a pass inside the PSA's hourly request
// budget.
type Budget interface {
	// Allow reports whether one more write, with the reads it needs
	// first, may be sent; when it may not, why says why.
	Allow(ctx context.Context) (ok bool, why string)
}

// UnknownBudget is a Budget that can tell that it refused the writes
// because the PSA's budget could not be read, not because it reached the
// reserve (usage.BudgetGate): the report says so (Report.BudgetUnknown).
type UnknownBudget interface {
	Budget
	// Unknown reports whether the writes stopped because the budget
	// could not be read.
	Unknown() bool
}

// Config configures an Engine.
type Config struct {
	System psa.System
	// Instance is the PSA instance PSA is connected to, as the backend
	// reports it (psa.Backend.Instance) and the export records it
	// (psa.instance); instances are compared with export.SameInstance.
	// "" means unknown: records are then told apart by system only.
	Instance string
	PSA      psa.Ticketer
	Store    Store
	Alerts   AlertSource
	Routing  export.Tickets
	// SettleTime is how long after a create whose outcome is unknown the
	// ticket may still appear in the PSA: the create applied late, or
	// applied and not yet found by a search (tickets.md 5.2 step 5). An
	// open intent that the search does not find is sent again only this
	// long after it was recorded; until then it stays open and is searched
	// for again each pass. 0 sends it again after the first search that
	// misses it. A close, note or reopen whose outcome is unknown is
	// looked for, or sent again, only this long after it was recorded too;
	// both only this long after ActiveSince as well. The daemon passes
	// policies.settle_time.
	SettleTime time.Duration
	// ActiveSince is when this psa-syncd became the active instance of
	// the state database (with SQLite: when it started). A create, close,
	// note or reopen whose outcome is unknown is settled only SettleTime
	// after its record and after ActiveSince (settlesAt): a write the
	// instance active before sent may still be on its way to the PSA (it
	// sends writes until its lease runs out, which may be a term after
	// the takeover, each taking up to the PSA client's request timeout),
	// and a search or a note listing made before it arrives would send the
	// same ticket, note or reopen a second time. Zero holds them for
	// SettleTime after their record only. The daemon passes the time it
	// took the leadership.
	ActiveSince time.Time
	// ResolveAfter is how long the alert of a followed ticket must be
	// missing from the customer's complete listings of open alerts before
	// the ticket is resolved (closed, or noted): the first listing that
	// leaves the alert out only records when (Record.MissingSince), and a
	// listing at least ResolveAfter later that still leaves it out
	// resolves the ticket. An alert listed again meanwhile keeps its
	// ticket: an alert missing from one listing (a glitch of the vendor's
	// listing) is not taken as resolved, which with on_return "new" would
	// give it a second ticket when it is listed again. 0 resolves at the
	// first complete listing that leaves the alert out (tickets.md 1.4's
	// rule). The daemon passes policies.ticket_resolve_after.
	ResolveAfter time.Duration
	// Retention, when above 0, is how long the record of a closed ticket
	// or of a refused create is kept once its alert is no longer open: a
	// pass deletes the customer's records of tickets closed longer ago
	// than Retention and the reopen window, and of creates refused longer
	// ago than Retention, whose alerts are not open, so that the records
	// every pass reads do not grow with every alert ever filed. The
	// summary ticket's record is kept. The daemon passes
	// state.history_retention.
	Retention time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// Budget, when set, gates each write of a pass that writes (a create,
	// close, resolve note, reopen or summary note, with the reads before
	// it) on the PSA's hourly request budget: once it refuses one, the
	// pass sends no more writes (it still settles earlier creates, which
	// only reads), and what is left waits for a later pass. The daemon
	// passes a usage.BudgetGate over policies.ticket_budget_reserve, above
	// the usage passes' budget_reserve.
	Budget Budget
	// Fence, when set, is called right before each create, status change
	// or note is sent, after its record was stored: an error matching
	// ErrNotLeader stops the pass as a refused record does, without
	// sending the call. The daemon passes the state database's
	// CheckFence, which refuses once the leadership lock's session has not
	// answered for long enough that another instance may have taken over.
	Fence func() error
	// ForgetOtherPSA makes the pass delete the records of another PSA
	// system or instance of the customers it passes, which it otherwise
	// reports every pass and leaves alone: the way out once their tickets
	// were closed in that PSA by hand (or that PSA is gone). Each
	// customer's notices list the tickets forgotten; a dry run lists those
	// it would forget and deletes nothing.
	ForgetOtherPSA bool
	// StartWith is the customer the pass goes through first, the others
	// following in the order given and then those before it: the
	// ResumeAt of the pass before, so that when max_per_pass, the budget
	// or the PSA's throttling stops the passes' writes every pass, the
	// customers late in the order are not the ones left out every time.
	// Zero, or a customer not in the pass, starts with the first. The
	// daemon keeps it in the state database between passes.
	StartWith CustomerKey
}

// Defaults for routing fields left at zero.
const (
	DefaultMaxPerPass     = 50
	DefaultMaxPerCustomer = 10
)

// New returns an Engine.
func New(c Config) (*Engine, error) {
	if c.PSA == nil || c.Store == nil || c.Alerts == nil {
		return nil, errors.New("tickets: the PSA, the store and the alert source are required")
	}
	r := c.Routing
	if strings.TrimSpace(r.QueueID) == "" {
		return nil, errors.New("tickets: the routing has no queue")
	}
	if r.TitleFormat == "" {
		r.TitleFormat = export.DefaultTitleFormat
	}
	if r.MaxPerPass <= 0 {
		r.MaxPerPass = DefaultMaxPerPass
	}
	if r.MaxPerCustomer <= 0 {
		r.MaxPerCustomer = DefaultMaxPerCustomer
	}
	if r.OnResolve == "" {
		r.OnResolve = export.OnResolveClose
	}
	if r.OnReturn == "" {
		r.OnReturn = export.OnReturnNew
	}
	if c.SettleTime < 0 {
		return nil, errors.New("tickets: the settle time is negative")
	}
	if c.ResolveAfter < 0 {
		return nil, errors.New("tickets: the resolve-after time is negative")
	}
	f := &fence{}
	e := &Engine{system: c.System, instance: c.Instance, psa: fencedTicketer{c.PSA, f, c.Fence}, store: fencedStore{c.Store, f}, alerts: c.Alerts, routing: r,
		settleTime: c.SettleTime, activeSince: c.ActiveSince, resolveAfter: c.ResolveAfter, retention: c.Retention, now: c.Now, logger: c.Logger, fence: f, budget: c.Budget, forgetOther: c.ForgetOtherPSA,
		startWith: c.StartWith}
	if b, ok := c.PSA.(psa.TicketBulkReader); ok {
		e.bulk = b
	}
	if l, ok := c.PSA.(psa.TicketNoteLister); ok {
		e.notes = l
	}
	if s, ok := c.PSA.(psa.TicketCloseNoteSeparate); ok {
		e.closeNoteSeparate = s.CloseNoteSeparate()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// CustomerReport is the outcome of one customer in a pass.
type CustomerReport struct {
	Customer Customer
	// Created, Adopted, Closed, Noted and Reopened count tickets; Adopted
	// counts the alert tickets psa-syncd found in the PSA by their
	// reference instead of creating them (their create's answer was lost,
	// in this pass's search before a create or when the pass settled
	// earlier creates); Summarised counts the alerts a summary ticket
	// stands for, which is itself in neither Created nor Adopted; Deferred
	// counts the alerts left for a later pass because the pass had
	// created max_per_pass tickets, or because the PSA's hourly budget
	// reached the reserve (Config.Budget) or the PSA throttled the pass
	// (Report.RateLimited) before their ticket was filed, closed, noted or
	// reopened.
	Created, Adopted, Closed, Noted, Reopened, Summarised, Deferred, Failed int
	// budgetDeferred counts those of Deferred left for the budget or
	// because the PSA throttled the pass.
	budgetDeferred int
	// WouldCreate and WouldClose list refs a dry run would create and the
	// ticket ids it would close; WouldNote the ticket ids it would add a
	// resolve note to and leave open (on_resolve = "note"); WouldReopen
	// the ticket ids it would reopen, their alerts raised again within
	// the reopen window (on_return = "reopen").
	WouldCreate []string
	WouldClose  []string
	WouldNote   []string
	WouldReopen []string
	// Notices are what the pass left alone, took as done, or left for a
	// later pass, and why: things an operator may want to know (an alert
	// open again whose ticket was closed in the PSA, alerts waiting for the
	// pass cap, ...).
	Notices []string
	// Err is why the customer's pass failed or stopped early.
	Err error
}

// Report is the outcome of a pass.
type Report struct {
	// DryRun is true when the pass wrote nothing and reports what it
	// would do (WouldCreate, WouldClose, WouldNote, WouldReopen).
	DryRun    bool
	Customers []CustomerReport
	// Settled counts unsettled creates found in the PSA by their Ref.
	// Those of alert tickets are in their customer's Adopted, or in
	// OtherAdopted for a customer not in the pass. A dry run searches for
	// them too, but adopts none: its customers' notices say what the pass
	// would do with them.
	Settled int
	// UnseenCreates counts the unsettled creates not found by their
	// reference after the settle time, by a search that did not find the
	// customer's other followed ticket either: kept, their customers
	// failed (seesCustomer), rather than filed a second time.
	UnseenCreates int
	// OtherAdopted counts the alert tickets settled (adopted) for
	// customers not in the pass, such as one whose ticket sync was turned
	// off after its create: they are in no CustomerReport.
	OtherAdopted int
	// RateLimited is true when the PSA throttled the pass (a create,
	// close, note or reopen, or a read before one): it stopped writing,
	// and the rest is done next pass. The customer whose write was
	// throttled fails with it; the others' writes left count as Deferred,
	// with a notice.
	RateLimited bool
	// BudgetLimited is true when the PSA's hourly request budget reached
	// the reserve (Config.Budget): the pass stopped writing, and the rest
	// is done by a later pass. It fails no customer; the notices of those
	// with writes left say so.
	BudgetLimited bool
	// BudgetUnknown is set with BudgetLimited when the pass stopped
	// writing because the PSA's budget could not be read (see
	// UnknownBudget), not because it reached the reserve.
	BudgetUnknown bool
	// WritesHeld, set by the caller on a dry run, says why a pass that
	// writes would be refused (a restored backup not yet confirmed).
	WritesHeld string
	// SettleAt is the earliest time at which a write this pass left for
	// the settle time (Config.SettleTime, Config.ActiveSince) is settled:
	// a create whose search did not find it yet, or a close, note or
	// reopen whose outcome is unknown. Zero when the pass left none. The
	// daemon runs a ticket pass then, rather than leaving it for the next
	// scheduled one.
	SettleAt time.Time
	// ResumeAt is the first customer, in the order the pass went through
	// them, whose alerts were left for a later pass (Deferred: max_per_pass
	// reached, the budget at the reserve, the PSA throttling), or whose
	// write the PSA throttled; zero when none. The next pass starts with
	// it (Config.StartWith). Customers stay in the given order in Customers.
	ResumeAt CustomerKey
}

// Totals adds up the customers' counts, and joins their errors: Err is
// nil only when no customer failed.
func (r Report) Totals() CustomerReport {
	var t CustomerReport
	for _, c := range r.Customers {
		t.Created += c.Created
		t.Adopted += c.Adopted
		t.Closed += c.Closed
		t.Noted += c.Noted
		t.Reopened += c.Reopened
		t.Summarised += c.Summarised
		t.Deferred += c.Deferred
		t.Failed += c.Failed
		t.WouldCreate = append(t.WouldCreate, c.WouldCreate...)
		t.WouldClose = append(t.WouldClose, c.WouldClose...)
		t.WouldNote = append(t.WouldNote, c.WouldNote...)
		t.WouldReopen = append(t.WouldReopen, c.WouldReopen...)
		t.Notices = append(t.Notices, c.Notices...)
		t.Err = errors.Join(t.Err, c.Err)
	}
	return t
}

// fail adds err to the reasons the customer's pass failed: every reason is
// reported, not only the last.
func (cr *CustomerReport) fail(err error) { cr.Err = errors.Join(cr.Err, err) }

// pass is the state of one pass: whether it writes, how many tickets it
// created (summary tickets included, against max_per_pass), and why it
// stopped creating.
type pass struct {
	dryRun  bool
	created int64
	// failed counts the tickets whose update failed (failureLevel).
	failed int
	// stopped is set when the PSA refused the credentials (no more
	// creates) or throttled the pass (no more writes: see throttle).
	stopped error
	// limited is why the budget refused a write: no more writes this
	// pass.
	limited string
	// waiting holds the open create intents (by recordKey) that settle
	// did not find and that are younger than the settle time.
	waiting map[string]bool
	// unsearched holds why settle could not search for an open create
	// intent (by recordKey), for the customer's error.
	unsearched map[string]error
	// unseen holds the open create intents (by recordKey) that settle
	// kept for review (seesCustomer), with the customer's other ticket that
	// the same search did not find either; unseenCreates counts them, for
	// Report.UnseenCreates.
	unseen        map[string]string
	unseenCreates int
	// foreign holds the keys (by recordKey) whose record belongs to
	// another PSA system or instance: a create for such a key replaces
	// that record rather than adding one.
	foreign map[string]bool
	// adopted counts the alert tickets settle adopted, by customerKey,
	// for the customers' reports.
	adopted map[string]int
	// settled holds, in a dry run, the open create intents (by
	// recordKey) as settle would store them: adopted, or released to be
	// sent again. The customer's dry run reports them and goes on from
	// them, as the pass that writes goes on from what settle stored.
	settled map[string]Record
	// moved holds, by customerKey, the notices of the tickets settle
	// found in another company than their create was sent to.
	moved map[string][]string
	// settleAt is Report.SettleAt.
	settleAt time.Time
}

// settlesLater records that a write the pass left alone is settled at t.
func (p *pass) settlesLater(t time.Time) {
	if p.settleAt.IsZero() || t.Before(p.settleAt) {
		p.settleAt = t
	}
}

func customerKey(source, customerID string) string { return source + "\x00" + customerID }

func recordKey(r Record) string { return r.Source + "\x00" + r.CustomerID + "\x00" + r.AlertKey }

// full reports whether the pass created its max_per_pass tickets: the
// alerts still without one wait for a later pass.
func (e *Engine) full(p *pass) bool { return p.created >= e.routing.MaxPerPass }

// Pass runs one ticket pass over customers (those with ticket sync on).
// Unsettled creates from earlier passes are settled first. With dryRun
// nothing is written to the PSA or the store; the report says what would
// be created and closed, and what would become of the unsettled creates. Customers not listed are not touched: their open
// tickets stay as they are.
func (e *Engine) Pass(ctx context.Context, customers []Customer, dryRun bool) (rep Report, err error) {
	rep = Report{DryRun: dryRun}
	if !e.routing.Enabled {
		return rep, nil
	}
	p := &pass{dryRun: dryRun, waiting: map[string]bool{}, unsearched: map[string]error{}, unseen: map[string]string{}, foreign: map[string]bool{}, adopted: map[string]int{},
		settled: map[string]Record{}, moved: map[string][]string{}}
	e.fence.reset()
	if s, ok := e.alerts.(interface{ StartPass() }); ok {
		s.StartPass()
	}
	n, err := e.settle(ctx, p)
	if !dryRun {
		rep.Settled = n
	}
	rep.UnseenCreates = p.unseenCreates
	if err != nil {
		return rep, err
	}
	// The customers are gone through from StartWith on, and reported in
	// the order given (rep is the named result, which the deferred call
	// changes after any return below).
	defer e.inOrder(&rep, customers)
	for _, c := range e.rotate(customers) {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		throttled := p.throttled()
		cr := e.customer(ctx, p, c)
		rep.Customers = append(rep.Customers, cr)
		if rep.ResumeAt == (CustomerKey{}) && (cr.Deferred > 0 || !throttled && p.throttled()) {
			rep.ResumeAt = CustomerKey{c.Source, c.CustomerID}
		}
		if err := e.fence.lost(); err != nil {
			// Another instance is active: it settles what this pass
			// stored, and nothing more is sent from here.
			return rep, fmt.Errorf("tickets: pass stopped at customer %s/%s, sending nothing more: %w", c.Source, c.CustomerID, err)
		}
	}
	if p.failed > maxLoggedFailures {
		e.logger.Warn("More tickets could not be updated; each customer's ticket status has the error", "tickets", p.failed,
			"not_logged", p.failed-maxLoggedFailures)
	}
	for _, n := range p.adopted {
		rep.OtherAdopted += n
	}
	rep.RateLimited = errors.Is(p.stopped, psa.ErrRateLimited)
	rep.SettleAt = p.settleAt
	rep.BudgetLimited = p.limited != ""
	if u, ok := e.budget.(UnknownBudget); ok && rep.BudgetLimited {
		rep.BudgetUnknown = u.Unknown()
	}
	return rep, nil
}

// rotate returns customers starting with Config.StartWith, the customers
// before it following the last: a pass whose writes stop before its last
// customer (max_per_pass, the budget reserve, the PSA's throttling) leaves
// out the customers after the one it stopped at, and the next pass starts
// with that one rather than with the first again.
func (e *Engine) rotate(customers []Customer) []Customer {
	if e.startWith == (CustomerKey{}) {
		return customers
	}
	i := slices.IndexFunc(customers, func(c Customer) bool {
		return c.Source == e.startWith.Source && c.CustomerID == e.startWith.CustomerID
	})
	if i <= 0 {
		return customers
	}
	return append(slices.Clone(customers[i:]), customers[:i]...)
}

// inOrder puts rep's customers back in the order of customers, the order
// the caller gave (rotate changed the order the pass went through them).
func (e *Engine) inOrder(rep *Report, customers []Customer) {
	pos := make(map[string]int, len(customers))
	for i, c := range slices.Backward(customers) {
		pos[customerKey(c.Source, c.CustomerID)] = i
	}
	slices.SortStableFunc(rep.Customers, func(a, b CustomerReport) int {
		return cmp.Compare(pos[customerKey(a.Customer.Source, a.Customer.CustomerID)], pos[customerKey(b.Customer.Source, b.Customer.CustomerID)])
	})
}

// maxLoggedFailures bounds the tickets whose failed update a pass logs at
// warn: a PSA that refuses every close would otherwise log a line per
// ticket at every pass. The others are logged at debug.
const maxLoggedFailures = 20

// failureLevel counts a ticket whose update failed and returns the level
// to log it at: warn for the first maxLoggedFailures of the pass, then
// debug.
func (p *pass) failureLevel() slog.Level {
	if p.failed++; p.failed > maxLoggedFailures {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// allow reports whether the pass may send one more write, with the reads
// it needs first: always in a dry run, never once the PSA throttled the
// pass or the budget refused one, and always without a Budget.
func (e *Engine) allow(ctx context.Context, p *pass) bool {
	if p.dryRun {
		return true
	}
	if p.throttled() || p.limited != "" {
		return false
	}
	if e.budget == nil {
		return true
	}
	ok, why := e.budget.Allow(ctx)
	if ok || ctx.Err() != nil {
		return ok
	}
	p.limited = why
	e.logger.Warn("Stopping ticket writes for this pass: the tickets still to file, close, note or reopen wait for a later pass", "reason", why)
	return false
}

// throttled reports whether the PSA throttled the pass: it sends no more
// writes.
func (p *pass) throttled() bool { return errors.Is(p.stopped, psa.ErrRateLimited) }

// why says why the pass sends no more writes, for a notice.
func (p *pass) why() string {
	if p.throttled() {
		return fmt.Sprintf("the PSA throttled the pass (%v)", p.stopped)
	}
	return p.limited
}

// deferForBudget counts n alerts of cr left for a later pass by the budget
// or the PSA's throttling.
func (cr *CustomerReport) deferForBudget(n int) {
	cr.Deferred += n
	cr.budgetDeferred += n
}

// settle finds every unsettled create in the PSA by its Ref: found, the
// ticket is adopted; not found and recorded longer than the settle time
// ago, the record is released so the customer's pass creates it (searching
// once more first); not found and younger, it stays open (p.waiting), since
// the ticket may still appear, and is searched for again next pass. A dry
// run searches as well, but keeps what it would store in p.settled.
//
// The search covers every company (psa.TicketQuery.AnyCompany), not only
// the one the create was sent to: a technician may have moved the ticket
// to another company since (or the customer's mapping moved, and its
// pass would search the new one only), and a search of that company alone
// would miss it and file the alert a second ticket. A Ref names one alert
// (or one customer's summary ticket) wherever its ticket is: "sc:" and the
// alert's id, unique across Sophos tenants, or "scs:" and a hash of the
// source and customer. A ticket found in another company is adopted there,
// with a notice naming the company: psa-syncd never moves a ticket.
func (e *Engine) settle(ctx context.Context, p *pass) (int, error) {
	intents, err := e.store.TicketIntents()
	if err != nil {
		return 0, err
	}
	n := 0
	var notFound []Record
	for _, r := range intents {
		if !e.ours(r) {
			// Its ref means something only in its own PSA; the
			// customer's pass reports it.
			continue
		}
		e.claim(&r)
		found, err := e.psa.FindTickets(ctx, psa.TicketQuery{CompanyID: r.CompanyID, ExternalRef: r.Ref, AnyCompany: true})
		if err != nil {
			p.unsearched[recordKey(r)] = err
			e.logger.Warn("Could not settle a ticket create; trying again next pass", "ref", r.Ref, "err", err)
			continue
		}
		switch {
		case len(found) > 0:
			sentTo := r.CompanyID
			e.adopt(&r, found)
			if r.CompanyID != sentTo {
				follows := "psa-syncd follows it there"
				if p.dryRun {
					follows = "the next pass follows it there"
				}
				p.moved[customerKey(r.Source, r.CustomerID)] = append(p.moved[customerKey(r.Source, r.CustomerID)],
					fmt.Sprintf("ticket %s (%s), whose create was sent to company %s and its answer lost, was found in company %s: "+
						"it was moved there in the PSA, and %s rather than filing its alerts again",
						cmp.Or(r.Number, r.TicketID), r.Ref, sentTo, r.CompanyID, follows))
				e.logger.Warn("Unsettled ticket create found in another company; adopted there", "source", r.Source, "customer", r.CustomerID,
					"ref", r.Ref, "ticket", r.TicketID, "sent_to_company", sentTo, "company", r.CompanyID)
			}
			n++
			if r.AlertKey != SummaryKey && !p.dryRun {
				p.adopted[customerKey(r.Source, r.CustomerID)]++
			}
		case e.now().Before(e.settlesAt(r.Created)):
			p.waiting[recordKey(r)] = true
			p.settlesLater(e.settlesAt(r.Created))
			continue
		default:
			notFound = append(notFound, r)
			continue
		}
		if err := e.keepSettled(p, r); err != nil {
			return n, err
		}
	}
	// A create not found is checked once every intent was searched for,
	// so that the customer's ticket adopted in this pass counts as its
	// other ticket (seesCustomer).
	for _, r := range notFound {
		other, seen, err := e.seesCustomer(ctx, p, r)
		if err != nil {
			p.unsearched[recordKey(r)] = err
			e.logger.Warn("Could not settle a ticket create; trying again next pass", "ref", r.Ref, "err", err)
			continue
		}
		if !seen {
			p.unseen[recordKey(r)] = other
			p.unseenCreates++
			e.logger.Warn("Ticket create not found by its reference, by a search that could not be checked on another ticket of the customer; kept for review",
				"source", r.Source, "customer", r.CustomerID, "ref", r.Ref, "other", other)
			if r.HeldSince.IsZero() && !p.dryRun {
				// Recorded once, so that psa-syncd status tells a held
				// create from one still within the settle time.
				r.HeldSince = e.now().UTC()
				if err := e.store.PutTicketRecord(r); err != nil {
					return n, err
				}
			}
			continue
		}
		// The create never reached the PSA: forget the intent; the
		// customer's pass decides afresh.
		r.State = StateFailed
		r.RoutingHash = ""
		r.Error = "the create was not applied; it is sent again"
		if err := e.keepSettled(p, r); err != nil {
			return n, err
		}
	}
	return n, nil
}

// keepSettled stores r, an intent settle settled, or keeps it in
// p.settled in a dry run.
func (e *Engine) keepSettled(p *pass, r Record) error {
	r.Updated = e.now().UTC()
	if p.dryRun {
		p.settled[recordKey(r)] = r
		return nil
	}
	return e.store.PutTicketRecord(r)
}

// seesCustomer checks, for r, an unsettled create its search by reference
// did not find once the settle time had passed, that the same search
// finds another ticket of r's customer (as p left its records): the
// followed ticket updated last
// (other names it; "" when the customer has none), searched by its own
// reference (seen). A search that finds nothing proves the create was not
// applied only if it can see the customer's tickets: an API user whose
// security level (Autotask), or member whose security role (ConnectWise
// PSA), cannot see the queue or board the tickets are filed in, or a
// search index that lags more than the settle time, answers with nothing
// for a ticket that is there, and sending the create again files a second
// ticket for the alert. With no other ticket to check the search with,
// seen is false too: the create waits for the search to find it, or for
// an operator's answer (psa-syncd resolve -ticket REF -not-posted).
func (e *Engine) seesCustomer(ctx context.Context, p *pass, r Record) (other string, seen bool, err error) {
	records, err := e.store.TicketRecords(r.Source, r.CustomerID)
	if err != nil {
		return "", false, err
	}
	var o *Record
	for i := range records {
		x := &records[i]
		if s, ok := p.settled[recordKey(*x)]; ok {
			// Adopted by this dry run.
			x = &s
		}
		if x.Ref != r.Ref && x.TicketID != "" && Followed(x.State) && e.ours(*x) && (o == nil || x.Updated.After(o.Updated)) {
			o = x
		}
	}
	if o == nil {
		return "", false, nil
	}
	found, err := e.psa.FindTickets(ctx, psa.TicketQuery{CompanyID: r.CompanyID, ExternalRef: o.Ref, AnyCompany: true})
	other = fmt.Sprintf("ticket %s (%s)", cmp.Or(o.Number, o.TicketID), o.Ref)
	return other, slices.ContainsFunc(found, func(t psa.Ticket) bool { return t.ID == o.TicketID }), err
}

// unseenError returns the error of a customer whose unsettled creates
// settle kept for review (seesCustomer), each named with the ticket the
// search did not find either, or nil when there is none.
func (e *Engine) unseenError(unseen []string) error {
	if len(unseen) == 0 {
		return nil
	}
	return fmt.Errorf("ticket creates whose answer was lost are not found by their reference %s after they were recorded (%s): the search may not "+
		"see tickets that are there (an API user whose security level or role cannot see their queue or board, or a search index that lags), "+
		"so filing them again could give their alerts a second ticket; nothing is filed for their alerts until the search finds them, or finds "+
		"the customer's other ticket (give the API user access to its queue or board), or until an operator who found no such ticket in the PSA "+
		"runs `psa-syncd resolve -ticket REF -not-posted`", e.settleTime, strings.Join(unseen, "; "))
}

// settlesAt is when a ticket write whose outcome is unknown, recorded at
// intent, is settled: looked for, or taken as not applied and sent again.
// That is SettleTime after the record and after this instance became the
// active one (Config.ActiveSince), the later: until then a write the
// instance active before sent before its lease ran out, or this
// instance's own whose answer was lost, may still reach the PSA, after
// the search or listing that would miss it. The time of the takeover is
// this instance's own clock: a record's time is the clock of the instance
// that wrote it.
func (e *Engine) settlesAt(intent time.Time) time.Time {
	if e.activeSince.After(intent) {
		intent = e.activeSince
	}
	return intent.Add(e.settleTime)
}

// unsettledWrite returns when the write of r whose outcome is unknown, if
// any, was recorded: a close or resolve note (ClosedAt, the intent's
// time, or Updated when the note was sent again later: resent), a reopen
// (Updated, or when its note was sent again), or a summary's "More
// alerts" note (NoteAlerts, recorded or sent again at Updated).
func unsettledWrite(r *Record) (time.Time, bool) {
	switch {
	case r.State == StateClosing || r.State == StateNoting:
		if r.Updated.After(r.ClosedAt) {
			return r.Updated, true
		}
		return r.ClosedAt, true
	case r.State == StateReopening:
		return r.Updated, true
	case r.State == StateOpen && len(r.NoteAlerts) > 0:
		return r.Updated, true
	case r.MovedNote != "":
		return r.Updated, true
	}
	return time.Time{}, false
}

// settlesLaterAll queues a settle pass (pass.settlesLater) for each of
// records whose write this pass left with an unknown outcome
// (unsettledWrite), settle time after it was recorded.
func (e *Engine) settlesLaterAll(p *pass, records []Record) {
	for i := range records {
		if at, ok := unsettledWrite(&records[i]); ok {
			if until := e.settlesAt(at); e.now().Before(until) {
				p.settlesLater(until)
			}
		}
	}
}

// unsettledWrites returns, by AlertKey, the records whose close, note or
// reopen has an unknown outcome and is not settled yet (settlesAt), and
// adds a notice naming them: the pass leaves them as they are, neither
// reading nor writing their tickets.
func (e *Engine) unsettledWrites(p *pass, records []Record, cr *CustomerReport) map[string]bool {
	out := map[string]bool{}
	var names []string
	last := time.Time{}
	for i := range records {
		r := &records[i]
		at, ok := unsettledWrite(r)
		if !ok {
			continue
		}
		until := e.settlesAt(at)
		if !e.now().Before(until) {
			continue
		}
		out[r.AlertKey] = true
		p.settlesLater(until)
		what := map[string]string{StateClosing: "close", StateNoting: "resolve note", StateReopening: "reopen", StateOpen: "\"More alerts\" note"}[r.State]
		if r.State == StateReopening && r.ClosedAt.IsZero() {
			// Open in the PSA: followed again (followOpen), or its reopen
			// found applied; only the note is under way.
			what = "\"raised again\" note"
		}
		names = append(names, fmt.Sprintf("the %s of ticket %s", what, cmp.Or(r.Number, r.TicketID)))
		if until.After(last) {
			last = until
		}
	}
	if len(names) > 0 {
		cr.Notices = append(cr.Notices, fmt.Sprintf("ticket writes whose outcome is unknown (%s) may still be on their way to the PSA: they are "+
			"left as they are until %s, %s after they were recorded and after this psa-syncd became the active instance (policies.settle_time), "+
			"then looked for and sent again only if they were not applied", listed(names), last.UTC().Format(time.RFC3339), e.settleTime))
		e.logger.Info("Ticket writes whose outcome is unknown are left until the settle time has passed", "source", cr.Customer.Source,
			"customer", cr.Customer.CustomerID, "tickets", len(names), "until", last)
	}
	return out
}

// dryRunSettled puts in records, in a dry run, the customer's open create
// intents as settle would store them (p.settled), and returns notices that
// say what the next pass does with them: adopt the ticket found, or send
// the create again.
func (e *Engine) dryRunSettled(p *pass, records []Record) []string {
	var adopted, resent []string
	for i := range records {
		s, ok := p.settled[recordKey(records[i])]
		if !ok {
			continue
		}
		records[i] = s
		if s.State == StateFailed {
			resent = append(resent, s.Ref)
		} else {
			adopted = append(adopted, fmt.Sprintf("%s: ticket %s", s.Ref, cmp.Or(s.Number, s.TicketID)))
		}
	}
	var out []string
	if len(adopted) > 0 {
		out = append(out, fmt.Sprintf("ticket creates whose outcome is unknown were applied (%s): the next pass adopts those tickets, "+
			"and closes or notes those whose alerts are resolved", listed(adopted)))
	}
	if len(resent) > 0 {
		out = append(out, fmt.Sprintf("ticket creates whose outcome is unknown (%s) are not in the PSA, %s after they were recorded: "+
			"the next pass takes them as not applied, searches once more and sends them again for the alerts still open", listed(resent), e.settleTime))
	}
	return out
}

// ours reports whether r is a ticket of the PSA the engine is connected
// to (see OfPSA).
func (e *Engine) ours(r Record) bool { return OfPSA(r, e.system, e.instance) }

// OfPSA reports whether r is a ticket of the PSA instance instance of
// system: of that system and, when both are known, of that instance
// (compared with export.SameInstance). A record without an instance
// (written before instances were recorded) of system is taken as that
// instance's. The engine follows only these records.
func OfPSA(r Record, system psa.System, instance string) bool {
	if r.System != string(system) {
		return false
	}
	return r.Instance == "" || instance == "" || export.SameInstance(r.Instance, instance)
}

// claim records the engine's instance in r, one of its own records, when r
// has none: it is stored with r's next write.
func (e *Engine) claim(r *Record) {
	if r.Instance == "" {
		r.Instance = e.instance
	}
}

// storeIntent stores r, a create intent. When r's key has no record, it
// uses CreateTicketIntent, whose uniqueness keeps two workers from both
// creating; it replaces the record prev (a failed create, or a ticket of
// an earlier generation) and a record of another PSA (p.foreign).
func (e *Engine) storeIntent(p *pass, r Record, prev *Record) error {
	if prev == nil && !p.foreign[recordKey(r)] {
		return e.store.CreateTicketIntent(r)
	}
	return e.store.PutTicketRecord(r)
}

// learnNumber records in r the number of its ticket from t, a read of it,
// when r does not hold it yet: the answer to a create does not give it on
// every PSA (psa.Ticket.Number), and it is not read for the create alone.
// The caller stores r.
func learnNumber(r *Record, t *psa.Ticket) {
	if r.Number == "" && t != nil {
		r.Number = t.Number
	}
}

// adopt takes the oldest ticket found for r's Ref, preferring those in
// r's company (settle searches every company), and records the company
// the ticket is in.
func (e *Engine) adopt(r *Record, found []psa.Ticket) {
	t := slices.MinFunc(found, func(a, b psa.Ticket) int {
		return cmp.Or(-cmp.Compare(boolInt(a.CompanyID == r.CompanyID), boolInt(b.CompanyID == r.CompanyID)),
			cmp.Compare(len(a.ID), len(b.ID)), cmp.Compare(a.ID, b.ID))
	})
	r.TicketID, r.Number, r.Error = t.ID, t.Number, ""
	if t.CompanyID != "" {
		r.CompanyID = t.CompanyID
	}
	r.State = StateOpen
	if t.Closed {
		r.State, r.ClosedBy, r.ClosedAt = StateClosed, ClosedByPSA, e.now().UTC()
	}
	if len(found) > 1 {
		e.logger.Warn("Several tickets carry one reference; following the oldest", "ref", r.Ref, "ticket", t.ID, "count", len(found))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var severityRank = map[string]int{"low": 1, "medium": 2, "high": 3}

// customer runs the pass for one customer.
func (e *Engine) customer(ctx context.Context, p *pass, c Customer) CustomerReport {
	// The tickets settle adopted for the customer count as its own.
	cr := CustomerReport{Customer: c, Adopted: p.adopted[customerKey(c.Source, c.CustomerID)], Notices: p.moved[customerKey(c.Source, c.CustomerID)]}
	delete(p.adopted, customerKey(c.Source, c.CustomerID))
	log := e.logger.With("source", c.Source, "customer", c.CustomerID)
	alerts, err := e.alerts.OpenAlerts(ctx, c)
	if err != nil {
		cr.fail(fmt.Errorf("listing open alerts: %w", err))
		return cr
	}
	records, err := e.store.TicketRecords(c.Source, c.CustomerID)
	if err != nil {
		cr.fail(err)
		return cr
	}
	// Records of another PSA are set aside before anything else: nothing
	// below may call the PSA for them.
	var foreign []Record
	records = slices.DeleteFunc(records, func(r Record) bool {
		if e.ours(r) {
			return false
		}
		foreign = append(foreign, r)
		p.foreign[recordKey(r)] = true
		return true
	})
	for i := range records {
		e.claim(&records[i])
	}
	if p.dryRun {
		cr.Notices = append(cr.Notices, e.dryRunSettled(p, records)...)
	}
	// An id listed twice is one alert: it must not be counted, capped or
	// summarised twice. (On two pages, which overlap when alerts come and
	// go, it fails the listing: see sophos.AlertsService.ListAll.)
	open := make(map[string]bool, len(alerts))
	alerts = slices.DeleteFunc(alerts, func(a Alert) bool {
		dup := open[a.ID]
		open[a.ID] = true
		return dup
	})
	if !p.dryRun {
		if records, err = e.forget(records, open); err != nil {
			cr.fail(err)
			return cr
		}
	}
	byKey := make(map[string]*Record, len(records))
	for i := range records {
		byKey[records[i].AlertKey] = &records[i]
	}
	// A close, note or reopen this pass sent whose answer was lost (or
	// that failed after its intent was stored) is left by the next passes
	// until its settle time: a pass is queued then, as for those
	// unsettledWrites holds, rather than left for the next scheduled one
	// (an hour later with an hourly ticket_schedule).
	defer e.settlesLaterAll(p, records)
	if e.forgetOther {
		if foreign, err = e.forgetForeign(p, foreign, &cr); err != nil {
			cr.fail(err)
			return cr
		}
	}
	cr.Notices = append(cr.Notices, e.foreignNotices(foreign)...)
	// A create still unsettled after settle (its search failed) blocks
	// every new create for its key: the ticket may exist, and a second
	// create (or a summary of the next generation) would duplicate it.
	// The customer fails until it is settled.
	// One not found yet but younger than the settle time blocks it too,
	// without failing the customer: the ticket may still appear.
	var unsettled, waiting, unseen []string
	for i := range records {
		r := &records[i]
		other, unseenCreate := p.unseen[recordKey(*r)]
		switch {
		case r.State != StateCreating:
		case unseenCreate && other != "":
			unseen = append(unseen, fmt.Sprintf("%s, while %s is not found by its reference either", r.Ref, other))
		case unseenCreate:
			unseen = append(unseen, r.Ref+", and the customer has no other ticket to check the search with")
		case errors.Is(p.unsearched[recordKey(*r)], psa.ErrValidation) && !alertOpen(r, open):
			if err := e.drop(r, p.unsearched[recordKey(*r)], &cr); err != nil {
				cr.fail(err)
			}
		case p.waiting[recordKey(*r)]:
			waiting = append(waiting, r.Ref)
		case p.unsearched[recordKey(*r)] != nil:
			unsettled = append(unsettled, fmt.Sprintf("%s: %v", r.Ref, p.unsearched[recordKey(*r)]))
		default:
			unsettled = append(unsettled, r.Ref)
		}
	}
	switch {
	case len(unsettled) > 0 && p.dryRun:
		cr.Notices = append(cr.Notices, fmt.Sprintf("ticket creates whose outcome is unknown (%s) could not be searched for: the next pass "+
			"searches for them again, and creates nothing for their alerts until a search settles them", strings.Join(unsettled, "; ")))
	case len(unsettled) > 0:
		cr.fail(fmt.Errorf("unsettled ticket creates (%s): the PSA could not be searched for them; "+
			"nothing is created for their alerts until a search settles them", strings.Join(unsettled, "; ")))
	}
	switch err := e.unseenError(unseen); {
	case err == nil:
	case p.dryRun:
		cr.Notices = append(cr.Notices, err.Error())
	default:
		cr.fail(err)
	}
	if len(waiting) > 0 {
		cr.Notices = append(cr.Notices, fmt.Sprintf("ticket creates whose outcome is unknown (%s) are not in the PSA yet: they are searched for "+
			"again each pass, and sent again only %s after they were recorded (and after this psa-syncd became the active instance)",
			strings.Join(waiting, ", "), e.settleTime))
	}
	// A close, note or reopen whose outcome is unknown is left as it is
	// until settlesAt: it may still be on its way to the PSA (sent by the
	// instance active before, or by this one before its answer was lost),
	// and a read or note listing now would not show it yet.
	unsettledWrites := e.unsettledWrites(p, records, &cr)
	// A reopen whose outcome is unknown is settled first; so is a close
	// or resolve note whose outcome is unknown, for an alert that is open
	// again, so that the alert's ticket is reopened, followed or left as
	// the settled state says. A ticket that read finds closed is read
	// again by the reopen or the read before a new ticket of the alert
	// loop (reopen, followAgain): the read is passed on instead (readClosed).
	readClosed := map[string]*psa.Ticket{}
	for i := range records {
		r := &records[i]
		switch {
		case p.dryRun, unsettledWrites[r.AlertKey]:
		case r.State == StateReopening:
			if err := e.settleReopen(ctx, p, r, &cr); err != nil {
				e.throttle(p, err)
				cr.fail(err)
				log.Log(ctx, p.failureLevel(), "Could not settle the reopen of a ticket", "ticket", r.TicketID, "err", err)
			}
		case (r.State == StateClosing || r.State == StateNoting) && alertOpen(r, open):
			t, err := e.settleReturned(ctx, r, &cr)
			if err != nil {
				e.throttle(p, err)
				cr.fail(err)
				log.Log(ctx, p.failureLevel(), "Could not settle the close of a ticket whose alert is open again", "ticket", r.TicketID, "err", err)
			} else if t != nil && t.Closed {
				readClosed[r.AlertKey] = t
			}
		}
	}
	summary := byKey[SummaryKey]
	if summary != nil && !p.dryRun && Followed(summary.State) && len(summary.NoteAlerts) > 0 && !unsettledWrites[SummaryKey] {
		// A "More alerts" note of an earlier pass whose outcome is unknown:
		// looked for before anything is summarised, and sent again only
		// when it is not on the ticket.
		if err := e.settleSummaryNote(ctx, p, summary, alerts, &cr); err != nil {
			e.throttle(p, err)
			cr.fail(err)
			log.Log(ctx, p.failureLevel(), "Could not settle the note of a summary ticket", "ticket", summary.TicketID, "err", err)
		}
	}
	for i := range records {
		// A "Customer moved" note of an earlier pass that psa-syncd did
		// not get to send, or whose outcome is unknown.
		if r := &records[i]; r.MovedNote != "" && !p.dryRun && !unsettledWrites[r.AlertKey] {
			if err := e.settleMovedNote(ctx, p, r, summary, &cr); err != nil {
				cr.fail(err)
				log.Log(ctx, p.failureLevel(), "Could not settle the note of a summary ticket the customer moved away from", "ticket", r.TicketID, "err", err)
			}
		}
	}
	covered := map[string]bool{}
	if summary != nil && summary.State == StateClosed && summary.ClosedBy != ClosedByPSA && summary.ClosedBy != ClosedByDeleted &&
		summary.TicketID != "" && alertOpen(summary, open) {
		// Alerts of the summary psa-syncd resolved are open again: its
		// ticket may still be open (noted with on_resolve "note", or
		// reopened by hand), and is then followed again (followAgain)
		// rather than joined by tickets of their own and a second
		// summary. Until it is read, they wait.
		wait := true
		if !e.allow(ctx, p) {
			cr.deferForBudget(len(stillOpen(summary.Covered, open)))
		} else if followed, err := e.followAgain(ctx, p, summary, readClosed[SummaryKey], Alert{}, &cr); err != nil {
			e.stopOn(p, err)
			cr.fail(err)
			log.Log(ctx, p.failureLevel(), "Could not read the summary ticket of alerts raised again", "ticket", summary.TicketID, "err", err)
		} else if !followed && !p.dryRun {
			// Closed: its alerts open again are filed anew, and are no
			// longer its own, so that it is not read again each pass.
			wait = false
			summary.Covered = slices.DeleteFunc(slices.Clone(summary.Covered), func(id string) bool { return open[id] })
			summary.Updated = e.now().UTC()
			if err := e.store.PutTicketRecord(*summary); err != nil {
				cr.fail(err)
				return cr
			}
		} else {
			wait = followed
		}
		if wait {
			for _, id := range summary.Covered {
				covered[id] = true
			}
		}
	}
	if summary != nil && (summary.State == StateCreating || Followed(summary.State) || closedInPSA(summary)) {
		// An unsettled summary (its create, close or note) covers its
		// alerts too: they may be in a ticket already, and must not get
		// tickets of their own. So does one closed in the PSA: as with an
		// alert's own ticket, its alerts are neither reopened nor
		// replaced (tickets.md 5.6).
		for _, id := range summary.Covered {
			covered[id] = true
		}
	}
	for i := range records {
		if r := &records[i]; isSummary(r) && r.AlertKey != SummaryKey && (r.State == StateCreating || Followed(r.State) || closedInPSA(r)) {
			// A summary ticket left in the company the mapping moved
			// away from: its alerts stay its own until they are resolved.
			for _, id := range r.Covered {
				covered[id] = true
			}
		}
	}
	if summary != nil && closedInPSA(summary) && alertOpen(summary, open) {
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d alerts of summary ticket %s are open, but it was closed in the PSA, not by psa-syncd: "+
			"it is neither reopened nor replaced, and they get no ticket of their own", len(stillOpen(summary.Covered, open)),
			cmp.Or(summary.Number, summary.TicketID)))
	}

	// An alert missing from this listing is resolved only once a listing
	// ResolveAfter later still leaves it out (missing).
	held, cleared, err := e.missing(p, records, open, &cr)
	if err != nil {
		cr.fail(err)
		return cr
	}
	// Nor is a ticket whose close, note or reopen is unsettled resolved
	// meanwhile: the write on its way may change it after this pass.
	for k := range unsettledWrites {
		held[k] = true
	}

	// Resolved alerts first: closing frees no budget, but a storm that
	// clears should close its tickets even when creation is throttled.
	// Their tickets are read before the first is resolved, in bulk when
	// the PSA can (readTickets).
	var resolved []string
	for i := range records {
		if r := &records[i]; r.AlertKey != SummaryKey && Followed(r.State) && !alertOpen(r, open) && !held[r.AlertKey] {
			resolved = append(resolved, r.TicketID)
		}
	}
	if summary != nil && Followed(summary.State) && !alertOpen(summary, open) && !held[SummaryKey] {
		resolved = append(resolved, summary.TicketID)
	}
	for i := range records {
		if r := &records[i]; cleared[r.AlertKey] {
			resolved = append(resolved, r.TicketID)
		}
	}
	var read map[string]*psa.Ticket
	for i := range records {
		r := &records[i]
		// A ticket closed in the PSA whose alert cleared is read, and
		// resolved if it is open again (takeBack); a followed one whose
		// alert was resolved, resolved.
		act, failed := e.resolve, "Could not update the ticket of a resolved alert"
		switch {
		case cleared[r.AlertKey] && !p.dryRun:
			act, failed = e.takeBack, "Could not read the ticket closed in the PSA of a resolved alert"
		case r.AlertKey == SummaryKey || !Followed(r.State) || alertOpen(r, open) || held[r.AlertKey]:
			continue
		}
		if !e.allow(ctx, p) {
			cr.deferForBudget(max(len(r.Covered), 1))
			continue
		}
		if read == nil {
			read = e.readTickets(ctx, p, resolved)
		}
		if err := act(ctx, p, r, read[r.TicketID], &cr); err != nil {
			e.throttle(p, err)
			cr.fail(err)
			log.Log(ctx, p.failureLevel(), failed, "ticket", r.TicketID, "err", err)
		}
	}
	if summary != nil && Followed(summary.State) && !alertOpen(summary, open) && !held[SummaryKey] {
		if !e.allow(ctx, p) {
			cr.deferForBudget(len(summary.Covered))
		} else if err := e.resolve(ctx, p, summary, read[summary.TicketID], &cr); err != nil {
			e.throttle(p, err)
			cr.fail(err)
		}
	}

	floor := severityRank[cmp.Or(e.routing.MinSeverity, "low")]
	slices.SortStableFunc(alerts, func(a, b Alert) int {
		return cmp.Or(-cmp.Compare(severityRank[a.Severity], severityRank[b.Severity]), a.RaisedAt.Compare(b.RaisedAt), cmp.Compare(a.ID, b.ID))
	})
	key := e.createKey(c)
	var perCustomer int64
	var over []Alert
	var backlog int
	var refused []*Record
	for _, a := range alerts {
		if _, ok := severityRank[a.Severity]; !ok {
			// Neither filed at a guessed priority nor dropped silently.
			cr.Notices = append(cr.Notices, fmt.Sprintf("alert %s has severity %q, which is not low, medium or high: it gets no ticket", a.ID, a.Severity))
			log.Debug("Alert with an unknown severity; no ticket", "alert", a.ID, "severity", a.Severity)
			continue
		}
		if severityRank[a.Severity] < floor || covered[a.ID] {
			continue
		}
		if err := checkAlertID(a.ID); err != nil && (byKey[a.ID] == nil || byKey[a.ID].State == StateFailed) {
			// No ticket could ever be searched for, so none is
			// created: an intent for it could never be settled. (An
			// intent an earlier psa-syncd stored for it is settled or
			// dropped above.)
			cr.Notices = append(cr.Notices, fmt.Sprintf("alert %q gets no ticket: %v", a.ID, err))
			log.Debug("Alert whose id cannot make a ticket reference; no ticket", "alert", a.ID, "err", err)
			continue
		}
		if a.RaisedAtUnparsed != "" {
			// Filed all the same: a listing that failed on it would stop
			// every ticket of the customer.
			cr.Notices = append(cr.Notices, fmt.Sprintf("alert %s has a raised time psa-syncd cannot read (%q): its ticket shows none", a.ID, a.RaisedAtUnparsed))
			log.Debug("Alert with an unreadable raised time", "alert", a.ID, "raised_at", a.RaisedAtUnparsed)
		}
		if a.Unread != "" {
			cr.Notices = append(cr.Notices, fmt.Sprintf("alert %s cannot be read in full (%s): its ticket shows what could be read", a.ID, a.Unread))
			log.Debug("Alert that cannot be read in full", "alert", a.ID, "err", a.Unread)
		}
		r := byKey[a.ID]
		switch {
		case r == nil && e.beforeBackfill(a):
			// Raised before backfill_window, with no ticket yet (ticket
			// sync was off, or just turned on): named in the summary
			// ticket rather than filed as a ticket of its own.
			over = append(over, a)
			backlog++
			continue
		case r == nil:
		case r.State == StateCreating || Followed(r.State):
			continue
		case e.refused(r, key):
			// Refused with what it depends on unchanged: not sent again
			// yet, but reported every pass, since the alert has no ticket.
			refused = append(refused, r)
			continue
		case r.State == StateClosed && r.ClosedBy == ClosedByPSA:
			// Someone closed the ticket in the PSA while the alert was
			// open: never reopen or replace it for this alert (no reopen
			// loops, tickets.md 5.6), but say so every pass the alert is
			// open, so that it is not lost silently.
			cr.Notices = append(cr.Notices, fmt.Sprintf("alert %s is open again, but its ticket %s was closed in the PSA, not by psa-syncd: "+
				"it is neither reopened nor replaced", a.ID, cmp.Or(r.Number, r.TicketID)))
			log.Debug("Alert open again after its ticket was closed in the PSA; not reopened", "alert", a.ID, "ticket", r.TicketID)
			continue
		case r.State == StateClosed && r.ClosedBy == ClosedByDeleted:
			// Nothing to reopen: the alert gets a new ticket (the next
			// generation).
		case r.State == StateClosed && e.routing.OnReturn == export.OnReturnReopen && e.now().Sub(r.ClosedAt) <= e.reopenWindow():
			if !e.allow(ctx, p) {
				cr.deferForBudget(1)
				continue
			}
			gone, err := e.reopen(ctx, p, r, readClosed[r.AlertKey], a, &cr)
			if err != nil {
				e.throttle(p, err)
				cr.fail(err)
			}
			if !gone {
				continue
			}
			// The ticket was deleted in the PSA: a new ticket instead.
		}
		if p.stopped != nil && !p.throttled() {
			break
		}
		if r != nil && r.State == StateClosed && r.ClosedBy != ClosedByDeleted && r.TicketID != "" {
			// psa-syncd resolved its ticket, which is not reopened: a new
			// ticket only if that one is still closed (followAgain).
			if !e.allow(ctx, p) {
				cr.deferForBudget(1)
				continue
			}
			followed, err := e.followAgain(ctx, p, r, readClosed[r.AlertKey], a, &cr)
			if err != nil {
				e.stopOn(p, err)
				cr.fail(err)
				log.Log(ctx, p.failureLevel(), "Could not read the ticket of an alert raised again", "alert", a.ID, "ticket", r.TicketID, "err", err)
			}
			if followed || err != nil {
				continue
			}
		}
		if perCustomer >= e.routing.MaxPerCustomer {
			// A storm at this customer: its summary ticket takes the rest.
			over = append(over, a)
			continue
		}
		if e.full(p) {
			// The pass cap is a budget for the whole pass, not a storm at
			// this customer: the alert is neither summarised nor recorded,
			// and a later pass files it.
			cr.Deferred++
			continue
		}
		if !e.allow(ctx, p) {
			cr.deferForBudget(1)
			continue
		}
		if e.create(ctx, p, c, r, a, &cr) {
			perCustomer++
			p.created++
		}
	}
	if backlog > 0 {
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d alerts were raised more than %s ago (backfill_window) and have no ticket yet: "+
			"they are named in the customer's summary ticket rather than filed as tickets of their own", backlog, e.backfillWindow()))
	}
	if len(refused) > 0 {
		cr.fail(fmt.Errorf("%d alerts have no ticket: the PSA refused their create (%s); it is sent again when the ticket routing "+
			"or the customer's company or contract changes, and otherwise %s after it was refused", len(refused), refused[0].Error, refusedRetry))
	}
	switch {
	case len(over) == 0 || p.stopped != nil && !p.throttled():
	case summary != nil && e.refused(summary, key):
		cr.fail(fmt.Errorf("the alerts over the customer's cap (%d) have no ticket: the PSA refused their summary ticket (%s); it is sent again "+
			"when the ticket routing or the customer's company or contract changes, and otherwise %s after it was refused", len(over), summary.Error,
			refusedRetry))
	case summary != nil && summary.State == StateCreating:
		if !p.dryRun && !p.waiting[recordKey(*summary)] {
			cr.fail(fmt.Errorf("the alerts over the customer's cap (%d) wait for the summary ticket %s, whose create is unsettled", len(over), summary.Ref))
		}
	case summary != nil && unsettledWrites[SummaryKey] && summary.State != StateOpen:
		// Its close or resolve note may still be on its way: whether it
		// takes a note or a new summary ticket follows it is known only
		// once it is settled.
		cr.Deferred += len(over)
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d alerts over the customer's cap wait for a later pass: the close or resolve note of summary ticket %s "+
			"has an unknown outcome and is settled later", len(over), cmp.Or(summary.Number, summary.TicketID)))
	case summary != nil && !p.dryRun && summary.State == StateReopening:
		// Followed again (followAgain), its note that alerts were raised
		// again is unsettled (its settling failed above): summarised now,
		// the alerts would take it for a summary to create and adopt it,
		// which never names them.
		cr.Deferred += len(over)
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d alerts over the customer's cap wait for a later pass: the note on summary ticket %s that its "+
			"alerts were raised again has an unknown outcome and is settled first", len(over), cmp.Or(summary.Number, summary.TicketID)))
	case summary != nil && !p.dryRun && Followed(summary.State) && len(summary.NoteAlerts) > 0:
		// Its note of an earlier pass could not be looked for (above, or
		// not yet: unsettledWrites): a second note now would leave the
		// first one's outcome to guess.
		cr.Deferred += len(over)
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d alerts over the customer's cap wait for a later pass: the note listing %d alerts on summary ticket %s "+
			"has an unknown outcome and could not be looked for yet", len(over), len(summary.NoteAlerts), cmp.Or(summary.Number, summary.TicketID)))
	default:
		if err := e.summarise(ctx, p, c, summary, over, open, &cr); err != nil {
			e.throttle(p, err)
			cr.fail(err)
		}
	}
	if n := cr.Deferred - cr.budgetDeferred; n > 0 {
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d alerts wait for a later pass: this pass created its %d tickets (max_per_pass)",
			n, e.routing.MaxPerPass))
		log.Debug("Pass cap reached; alerts left for a later pass", "alerts", n, "max_per_pass", e.routing.MaxPerPass)
	}
	if n := cr.budgetDeferred; n > 0 {
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d alerts wait for a later pass, which files, closes, notes or reopens their tickets: %s, "+
			"so this pass sends the PSA no more ticket writes", n, p.why()))
		log.Info("PSA throttled, or the API budget reached the reserve or could not be read; alerts left for a later pass", "alerts", n, "reason", p.why())
	}
	if p.stopped != nil && !p.throttled() && cr.Err == nil {
		cr.fail(p.stopped)
	}
	return cr
}

// maxListed is how many refs or tickets a notice lists before "and N more".
const maxListed = 10

// listed joins items for a notice, at most maxListed of them.
func listed(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxListed], ", "), len(items)-maxListed)
}

// psaName names a PSA system and instance for a notice.
func psaName(system, instance string) string {
	name := cmp.Or(system, "an unknown PSA system")
	if instance != "" {
		name += fmt.Sprintf(" instance %q", instance)
	}
	return name
}

// psaKey names the PSA system and instance of a record.
type psaKey struct{ system, instance string }

// byOtherPSA groups records of other PSAs by PSA, in the order met, and
// describes each: its ticket and ref, or its ref. Only those psa-syncd
// would otherwise follow (open tickets, and creates, closes, notes and
// reopens whose outcome is unknown) are described; with all, every one.
func byOtherPSA(records []Record, all bool) ([]psaKey, map[psaKey][]string) {
	byPSA := map[psaKey][]string{}
	var keys []psaKey
	for _, r := range records {
		if !all && r.State != StateCreating && !Followed(r.State) {
			continue
		}
		k := psaKey{r.System, r.Instance}
		if _, ok := byPSA[k]; !ok {
			keys = append(keys, k)
		}
		desc := r.Ref
		if r.TicketID != "" {
			desc = fmt.Sprintf("ticket %s (%s)", cmp.Or(r.Number, r.TicketID), r.Ref)
		}
		byPSA[k] = append(byPSA[k], desc)
	}
	return keys, byPSA
}

// foreignNotices reports a customer's records of another PSA system or
// instance that psa-syncd would otherwise follow, one notice per PSA.
// Their closed and refused records need nothing and are not reported.
func (e *Engine) foreignNotices(foreign []Record) []string {
	keys, byPSA := byOtherPSA(foreign, false)
	var out []string
	for _, k := range keys {
		tks := byPSA[k]
		out = append(out, fmt.Sprintf("%d ticket records belong to %s, not to the %s psa-syncd is connected to: %s. They are left alone: "+
			"psa-syncd neither searches for, closes, reopens nor notes those tickets from here, and files an alert of theirs that is open here "+
			"as a new one. Close those tickets in %s by hand and run `psa-syncd tickets -forget-other-psa` to stop following them, "+
			"or run psa-syncd connected to that PSA to settle them",
			len(tks), psaName(k.system, k.instance), psaName(string(e.system), e.instance), listed(tks), cmp.Or(k.system, "that PSA")))
		e.logger.Warn("Ticket records of another PSA left alone", "records", len(tks), "record_system", k.system, "record_instance", k.instance,
			"instance", e.instance)
	}
	return out
}

// forgetForeign deletes a customer's records of another PSA system or
// instance (Config.ForgetOtherPSA), one notice per PSA naming the tickets
// forgotten, and returns those it did not delete, with why. A dry run
// deletes none and says what it would forget.
func (e *Engine) forgetForeign(p *pass, foreign []Record, cr *CustomerReport) ([]Record, error) {
	format := "%d ticket records of %s were forgotten (-forget-other-psa): %s. psa-syncd no longer reports them; " +
		"close the tickets still open in %s by hand"
	var err error
	n := len(foreign)
	if p.dryRun {
		format = "%d ticket records of %s would be forgotten by -forget-other-psa: %s. psa-syncd would no longer report them; " +
			"close the tickets still open in %s by hand"
	} else {
		for i, r := range foreign {
			if err = e.store.ForgetTicketRecord(r); err != nil {
				n = i
				err = fmt.Errorf("forgetting the ticket records of another PSA: %w", err)
				break
			}
			delete(p.foreign, recordKey(r))
			e.logger.Info("Forgot the record of a ticket of another PSA", "source", r.Source, "customer", r.CustomerID, "ref", r.Ref,
				"ticket", r.TicketID, "record_system", r.System, "record_instance", r.Instance, "state", r.State)
		}
	}
	keys, byPSA := byOtherPSA(foreign[:n], true)
	for _, k := range keys {
		cr.Notices = append(cr.Notices, fmt.Sprintf(format, len(byPSA[k]), psaName(k.system, k.instance), listed(byPSA[k]),
			cmp.Or(k.system, "that PSA")))
	}
	return foreign[n:], err
}

// Followed reports whether a record in state s is a ticket psa-syncd
// follows: open, or with a close, resolve note or reopen whose outcome is
// unknown.
func Followed(s string) bool {
	return s == StateOpen || s == StateClosing || s == StateNoting || s == StateReopening
}

// closedInPSA reports whether r's ticket was closed in the PSA by someone
// else than psa-syncd.
func closedInPSA(r *Record) bool { return r.State == StateClosed && r.ClosedBy == ClosedByPSA }

// stillOpen returns the ids that are open.
func stillOpen(ids []string, open map[string]bool) []string {
	var out []string
	for _, id := range ids {
		if open[id] {
			out = append(out, id)
		}
	}
	return out
}

// isSummary reports whether r is a summary ticket's: the customer's
// (SummaryKey), or one left in a company the customer's mapping moved
// away from (movedSummaryKey).
func isSummary(r *Record) bool {
	return r.AlertKey == SummaryKey || strings.HasPrefix(r.AlertKey, SummaryKey+"@")
}

// movedSummaryKey is the AlertKey under which the record of a customer's
// summary ticket of generation gen, filed in company, is kept once the
// customer's mapping moved to another company: followed, and closed when
// its alerts are resolved, while a new summary ticket in the new company
// takes the alerts over the cap. The generation keeps it apart from a
// summary left in the same company by an earlier move.
func movedSummaryKey(company string, gen int) string {
	return fmt.Sprintf("%s@%s/%d", SummaryKey, company, gen)
}

// alertOpen reports whether r's alert is open: for a summary, any of the
// alerts it covers.
func alertOpen(r *Record, open map[string]bool) bool {
	if isSummary(r) {
		return slices.ContainsFunc(r.Covered, func(id string) bool { return open[id] })
	}
	return open[r.AlertKey]
}

// missing applies Config.ResolveAfter to the customer's records: it
// returns the AlertKeys of the open tickets whose alert (for a summary:
// every alert it covers) this listing leaves out but that are not to be
// resolved yet, recording in each when a listing first left it out
// (Record.MissingSince), and clears MissingSince in a record whose alert
// is listed again, which keeps its ticket. It times the alerts of tickets
// closed in the PSA the same way (clearedSinceClosed), and returns in
// cleared the AlertKeys of those whose alert has cleared, whose ticket
// the pass reads (takeBack). Only open tickets are held: a
// close, note or reopen under way was decided by an earlier pass. A dry
// run stores nothing and holds the same records a pass would.
func (e *Engine) missing(p *pass, records []Record, open map[string]bool, cr *CustomerReport) (held, cleared map[string]bool, err error) {
	held, cleared = map[string]bool{}, map[string]bool{}
	now := e.now().UTC()
	var newly, waiting, back []string
	for i := range records {
		r := &records[i]
		isListed := alertOpen(r, open)
		desc := fmt.Sprintf("ticket %s", cmp.Or(r.Number, r.TicketID))
		if !isSummary(r) {
			desc = fmt.Sprintf("alert %s (ticket %s)", r.AlertKey, cmp.Or(r.Number, r.TicketID))
		}
		switch {
		case closedInPSA(r):
			// A ticket closed in the PSA while its alert was open is never
			// reopened for that alert; but once the alert has cleared (left
			// out for ResolveAfter, as a followed ticket is resolved), its
			// return is the "cleared and came back" of tickets.md 5.6, as
			// for a ticket a technician closed before psa-syncd's resolve.
			// Tracked quietly, without a request, until then; then its
			// ticket is read once (takeBack), since a technician may have
			// reopened it.
			changed, due := e.clearedSinceClosed(r, isListed, now)
			if due {
				cleared[r.AlertKey] = true
			}
			if !changed {
				continue
			}
		case isListed && !r.MissingSince.IsZero():
			// Back after a listing left it out: the ticket was not
			// resolved, and nothing is sent.
			back = append(back, fmt.Sprintf("%s, missing since %s", desc, r.MissingSince.Format(time.RFC3339)))
			e.logger.Info("Alert listed again after a listing left it out; its ticket is kept", "source", r.Source, "customer", r.CustomerID,
				"alert", r.AlertKey, "ticket", r.TicketID, "missing_since", r.MissingSince)
			r.MissingSince = time.Time{}
		case isListed || r.State != StateOpen || e.resolveAfter <= 0:
			continue
		case r.MissingSince.IsZero():
			r.MissingSince = now
			held[r.AlertKey] = true
			newly = append(newly, desc)
		case now.Sub(r.MissingSince) < e.resolveAfter:
			held[r.AlertKey] = true
			waiting = append(waiting, desc)
			continue
		default:
			// Missing for ResolveAfter: resolved.
			continue
		}
		if p.dryRun {
			continue
		}
		r.Updated = now
		if err := e.store.PutTicketRecord(*r); err != nil {
			return held, cleared, err
		}
	}
	if len(back) > 0 {
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d alerts are listed again after a listing of open alerts left them out (%s): "+
			"their tickets were not resolved, and stay as they are", len(back), listed(back)))
	}
	if n := len(newly) + len(waiting); n > 0 {
		cr.Notices = append(cr.Notices, fmt.Sprintf("%d open tickets' alerts are not in this listing of open alerts (%s): their tickets are "+
			"resolved when a listing at least %s after the first that left them out (policies.ticket_resolve_after) still does, "+
			"and kept if the alerts are listed again", n, listed(append(newly, waiting...)), e.resolveAfter))
	}
	return held, cleared, nil
}

// clearedSinceClosed records in r, a ticket closed in the PSA while its
// alert was open (closedInPSA), how long its alert has been left out of the
// listings. It reports whether r changed, and whether the alert has been
// left out for ResolveAfter (due): the alert cleared, and takeBack reads
// the ticket. r stays closed in the PSA until that read, so that a read
// that fails, or that the budget leaves for a later pass, is made again.
func (e *Engine) clearedSinceClosed(r *Record, isListed bool, now time.Time) (changed, due bool) {
	switch {
	case isListed:
		if r.MissingSince.IsZero() {
			return false, false
		}
		r.MissingSince = time.Time{}
	case r.MissingSince.IsZero() && e.resolveAfter > 0:
		r.MissingSince = now
	case now.Sub(r.MissingSince) >= e.resolveAfter:
		return false, true
	default:
		return false, false
	}
	return true, false
}

// takeBack reads the ticket of r, closed in the PSA while its alert was
// open (closedInPSA), once its alert has cleared (clearedSinceClosed).
// Still closed, the record says the alert cleared (ClosedByPSAResolved):
// the alert loop then reopens or replaces the ticket when the alert comes
// back, as after psa-syncd's close. ClosedAt stays the close psa-syncd
// saw, which the reopen window and the retention count from. Open again
// (a technician reopened it, often to work on what raised the alert), the
// ticket is followed again and resolved as the routing says (resolve):
// left closed in the records, it would stay open in the PSA until someone
// closed it by hand. t is the ticket as the pass read it already
// (readTickets), or nil: it is read then.
func (e *Engine) takeBack(ctx context.Context, p *pass, r *Record, t *psa.Ticket, cr *CustomerReport) error {
	if t == nil {
		var err error
		t, err = e.psa.GetTicket(ctx, r.TicketID)
		if errors.Is(err, psa.ErrNotFound) {
			return e.gone(r, cr)
		}
		if err != nil {
			return fmt.Errorf("reading ticket %s, closed in the PSA, whose alert was resolved: %w (read again next pass)", cmp.Or(r.Number, r.TicketID), err)
		}
	}
	learnNumber(r, t)
	if t.Closed {
		r.ClosedBy, r.MissingSince, r.Updated = ClosedByPSAResolved, time.Time{}, e.now().UTC()
		e.logger.Info("The alert of a ticket closed in the PSA cleared; if it comes back, its ticket is reopened or replaced", "source", r.Source,
			"customer", r.CustomerID, "alert", r.AlertKey, "ticket", r.TicketID)
		return e.store.PutTicketRecord(*r)
	}
	cr.Notices = append(cr.Notices, fmt.Sprintf("ticket %s (%s), closed in the PSA while its alert was open, is open again there: its alert "+
		"was resolved, so psa-syncd follows it again and resolves it", cmp.Or(r.Number, r.TicketID), r.Ref))
	e.logger.Info("Ticket closed in the PSA reopened there, and its alert cleared; followed again and resolved", "source", r.Source,
		"customer", r.CustomerID, "alert", r.AlertKey, "ticket", r.TicketID)
	r.State, r.ClosedBy, r.ClosedAt, r.MissingSince = StateOpen, "", time.Time{}, time.Time{}
	return e.resolve(ctx, p, r, t, cr)
}

// forget deletes, of records, those of tickets that closed longer ago
// than the retention and the reopen window, and of creates the PSA
// refused longer ago than the retention, whose alert is not open, and
// returns the others. Such a record decides nothing any more: its alert
// would be reopened only within the reopen window, a ticket closed in the
// PSA is left alone only while its alert is open, and a refused create is
// sent again only for an open alert. The summary's record is kept (it
// numbers the customer's summary tickets).
func (e *Engine) forget(records []Record, open map[string]bool) ([]Record, error) {
	if e.retention <= 0 {
		return records, nil
	}
	keep := max(e.retention, e.reopenWindow())
	now := e.now()
	var err error
	records = slices.DeleteFunc(records, func(r Record) bool {
		if err != nil || r.AlertKey == SummaryKey || alertOpen(&r, open) {
			return false
		}
		switch {
		case r.State == StateClosed && !r.ClosedAt.IsZero() && now.Sub(r.ClosedAt) > keep:
		case r.State == StateFailed && !r.Updated.IsZero() && now.Sub(r.Updated) > e.retention:
		default:
			return false
		}
		if err = e.store.DeleteTicketRecord(r); err != nil {
			return false
		}
		e.logger.Debug("Forgot the record of a ticket closed or refused long ago", "ref", r.Ref, "ticket", r.TicketID, "state", r.State,
			"closed_at", r.ClosedAt, "updated", r.Updated)
		return true
	})
	if err != nil {
		return records, fmt.Errorf("removing old ticket records: %w", err)
	}
	return records, nil
}

// backfillWindow is the routing's backfill_window; 0 when it is unset.
func (e *Engine) backfillWindow() time.Duration {
	if d, err := time.ParseDuration(e.routing.BackfillWindow); err == nil && d > 0 {
		return d
	}
	return 0
}

// beforeBackfill reports whether a was raised before the routing's
// backfill_window. An alert whose raised time is unknown is not: it gets
// a ticket of its own, as without a window.
func (e *Engine) beforeBackfill(a Alert) bool {
	w := e.backfillWindow()
	return w > 0 && !a.RaisedAt.IsZero() && e.now().Sub(a.RaisedAt) > w
}

func (e *Engine) reopenWindow() time.Duration {
	if d, err := time.ParseDuration(e.routing.ReopenWindow); err == nil && d > 0 {
		return d
	}
	return export.DefaultReopenWindow
}

// createKey identifies what a create of c's tickets depends on: the
// routing, the title format, and the customer's company and contract. A
// create the PSA refused is sent again when its key changes (a fixed
// routing or a fixed customer mapping), and otherwise only refusedRetry
// after it was refused.
func (e *Engine) createKey(c Customer) string {
	r := e.routing
	prios := make([]string, 0, len(r.Priorities))
	for _, s := range export.Severities {
		prios = append(prios, s+"="+r.Priorities[s])
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{r.QueueID, r.NewStatusID, strings.Join(prios, ","), r.SourceID,
		r.IssueTypeID, r.SubIssueTypeID, r.TicketTypeID, r.CategoryID, r.TitleFormat, c.CompanyID, c.ContractID}, "|")))
	return hex.EncodeToString(sum[:8])
}

// refusedRetry is how long after the PSA refused a create it is sent again
// when nothing it depends on (createKey) changed: the refusal's cause may
// be gone all the same, fixed in the PSA (a permission granted, a queue or
// picklist value made active again) or in psa-syncd (an upgrade that
// sends the create differently), and the alert still has no ticket.
const refusedRetry = 24 * time.Hour

// refused reports whether r is a create the PSA refused that is not sent
// again yet: what it depends on is still key, and it was refused less than
// refusedRetry ago.
func (e *Engine) refused(r *Record, key string) bool {
	return r.State == StateFailed && r.RoutingHash == key && e.now().Sub(r.Updated) < refusedRetry
}

// ref is the external reference of an alert's ticket: "sc:<alert id>",
// with "/<generation>" for the tickets after the first.
func ref(alertID string, generation int) string {
	r := "sc:" + alertID
	if generation > 1 {
		r += fmt.Sprintf("/%d", generation)
	}
	if len(r) > psa.MaxExternalRefLength {
		sum := sha256.Sum256([]byte(r))
		r = "sch:" + hex.EncodeToString(sum[:16])
	}
	return r
}

// create files one alert: intent first (durable), then a search by Ref
// (the ticket may exist from a create whose answer was lost, or by hand),
// then the create. It reports whether a ticket was created or adopted.
func (e *Engine) create(ctx context.Context, p *pass, c Customer, prev *Record, a Alert, cr *CustomerReport) bool {
	gen := 1
	if prev != nil {
		gen = prev.Generation
		if prev.State == StateClosed {
			gen++
		}
	}
	r := Record{
		Source: c.Source, CustomerID: c.CustomerID, AlertKey: a.ID, Ref: ref(a.ID, gen), Generation: gen,
		System: string(e.system), Instance: e.instance, CompanyID: c.CompanyID, State: StateCreating, Severity: a.Severity,
		Title: e.title(c, a), RoutingHash: e.createKey(c), Created: e.now().UTC(), Updated: e.now().UTC(),
	}
	if p.dryRun {
		return e.dryRunCreate(ctx, p, r, prev, a, cr)
	}
	if err := e.storeIntent(p, r, prev); err != nil {
		if !errors.Is(err, ErrRecordExists) {
			cr.fail(err)
		}
		return false
	}
	found, ok := e.searchPast(ctx, p, &r, prev, func(gen int) string { return ref(a.ID, gen) }, cr)
	if !ok {
		return false
	}
	return e.file(ctx, p, &r, prev, found, e.request(c, a, r), cr)
}

// dryRunCreate reports, in a dry run, what the pass would do with the
// create r: it makes the pass's search for r's Ref, and its searches for
// the next generations' while the tickets found are earlier ones
// (searchPast), so that would_create names the reference the pass would
// file, not the first generation's again after retention removed the
// alert's record; a ticket the pass would adopt instead is named in a
// notice. It stores nothing, and reports, as create does, whether the
// pass would file or adopt a ticket.
func (e *Engine) dryRunCreate(ctx context.Context, p *pass, r Record, prev *Record, a Alert, cr *CustomerReport) bool {
	for {
		found, err := e.psa.FindTickets(ctx, psa.TicketQuery{CompanyID: r.CompanyID, ExternalRef: r.Ref})
		switch {
		case err != nil:
			// The pass would create nothing either.
			e.stopOn(p, err)
			cr.fail(e.forbidden(fmt.Errorf("searching for %s before creating: %w", r.Ref, err), &r))
			return false
		case len(found) == 0:
			cr.WouldCreate = append(cr.WouldCreate, r.Ref)
			return true
		case !earlierTickets(prev, found):
			e.adopt(&r, found)
			what := "follows it rather than filing another"
			if r.State == StateClosed {
				what = "takes it as closed in the PSA, and files none for the alert"
			}
			cr.Notices = append(cr.Notices, fmt.Sprintf("alert %s has a ticket in the PSA with its reference %s, ticket %s: the next pass %s",
				a.ID, r.Ref, cmp.Or(r.Number, r.TicketID), what))
			return true
		}
		r.Generation++
		r.Ref = ref(a.ID, r.Generation)
	}
}

// searchPast is the search before the create r (search), and, while what
// it finds are earlier tickets of r's alert or summary (earlierTickets),
// the search for the next generation's reference (refOf), the intent
// stored at that generation first. Those earlier tickets are closed, and
// psa-syncd keeps no record of them: retention removed an alert's (its
// close is older than the retention and the reopen window, and the alert
// had cleared), or the state database is new (a summary's record is never
// removed). Adopted, such a ticket would be taken as closed in the PSA
// while its alerts were open, and the alerts, new again, would get only a
// notice until they clear. It is followed by the next generation, as a
// ticket psa-syncd closed longer ago than the reopen window is
// (followAgain): searched for too, since the record removed may have been
// of a later one. It reports false when a search failed (r put back).
func (e *Engine) searchPast(ctx context.Context, p *pass, r *Record, prev *Record, refOf func(gen int) string, cr *CustomerReport) ([]psa.Ticket, bool) {
	found, ok := e.search(ctx, p, r, prev, cr)
	for ok && earlierTickets(prev, found) {
		e.logger.Info("The search before a create found an earlier ticket closed, with no record of it; filing the next one",
			"source", r.Source, "customer", r.CustomerID, "alert", r.AlertKey, "ref", r.Ref, "ticket", found[0].ID)
		r.Generation++
		r.Ref, r.Updated = refOf(r.Generation), e.now().UTC()
		if err := e.store.PutTicketRecord(*r); err != nil {
			cr.fail(err)
			return nil, false
		}
		found, ok = e.search(ctx, p, r, prev, cr)
	}
	return found, ok
}

// earlierTickets reports whether found, what the search before a create
// found, are tickets of an earlier generation of its alert or summary:
// all closed, and the create follows no ticket psa-syncd recorded (prev,
// the record it replaces, is none, or a create that failed or was put
// back, such as after the search of an earlier pass failed).
func earlierTickets(prev *Record, found []psa.Ticket) bool {
	return len(found) > 0 && (prev == nil || prev.State == StateFailed) &&
		!slices.ContainsFunc(found, func(t psa.Ticket) bool { return !t.Closed })
}

// search is the search for r's Ref before its create. When it fails, the
// intent r is put back (release) and search reports false.
func (e *Engine) search(ctx context.Context, p *pass, r *Record, prev *Record, cr *CustomerReport) ([]psa.Ticket, bool) {
	found, err := e.psa.FindTickets(ctx, psa.TicketQuery{CompanyID: r.CompanyID, ExternalRef: r.Ref})
	if err != nil {
		e.stopOn(p, err)
		cr.fail(e.forbidden(fmt.Errorf("searching for %s before creating: %w", r.Ref, err), r))
		// Left in StateCreating, the intent would wait for a search to
		// settle it, which a search refused for good (psa.ErrValidation)
		// never does.
		e.release(r, prev, fmt.Sprintf("the search before the create failed: %v", err), cr)
		return nil, false
	}
	return found, true
}

// file adopts a ticket of found, what the search for r's Ref found, or
// creates the ticket when it found none, then stores the outcome. An
// unknown outcome leaves the intent for the next pass to settle; a create
// certainly not applied puts back prev (release).
func (e *Engine) file(ctx context.Context, p *pass, r *Record, prev *Record, found []psa.Ticket, req psa.CreateTicketRequest, cr *CustomerReport) bool {
	if len(found) > 0 {
		e.adopt(r, found)
		cr.Adopted++
	} else {
		t, err := e.psa.CreateTicket(ctx, req)
		switch {
		case errors.Is(err, psa.ErrOutcomeUnknown):
			// A create answered with a page that is not the PSA's API
			// stops the creates after it (stopOn). Settled by a pass at
			// its settle time.
			e.stopOn(p, err)
			p.settlesLater(e.settlesAt(r.Created))
			cr.fail(fmt.Errorf("creating %s: %w (it is settled by searching next pass)", r.Ref, err))
			return false
		case errors.Is(err, psa.ErrValidation):
			// Autotask's 500 for a missing permission matches
			// psa.ErrForbidden too: forbidden says what the user lacks.
			r.State, r.Error = StateFailed, err.Error()
			cr.Failed++
			cr.fail(e.forbidden(fmt.Errorf("creating %s: %w", r.Ref, err), r))
		case errors.Is(err, psa.ErrNotApplied):
			// The PSA processed no attempt of the create (it throttled
			// each), or a read the create needs failed before it was
			// sent: no ticket can appear, so the intent is released and
			// the next pass searches and sends it again, without waiting
			// for the settle time.
			e.stopOn(p, err)
			cr.fail(e.forbidden(fmt.Errorf("creating %s: %w (it was not applied; it is sent again next pass)", r.Ref, err), r))
			e.release(r, prev, fmt.Sprintf("the create was not applied: %v", err), cr)
			return false
		case errors.Is(err, psa.ErrUnauthorized):
			// Refused outright (401, or a 403: psa.ErrForbidden matches
			// too): the PSA refuses a request so before processing it, and
			// the clients never send a create again after an attempt that
			// may have been processed (that ends in ErrOutcomeUnknown,
			// above). No ticket can appear, so, as for ErrNotApplied, the
			// intent is released and a later pass searches and sends it
			// again without waiting for the settle time.
			e.stopOn(p, err)
			cr.fail(e.forbidden(fmt.Errorf("creating %s: %w", r.Ref, err), r))
			e.release(r, prev, fmt.Sprintf("the PSA refused the create: %v", err), cr)
			return false
		case err != nil:
			// Any other failure (a 429 the client cannot tell was the only
			// answer): the intent is settled by a search next pass.
			e.stopOn(p, err)
			p.settlesLater(e.settlesAt(r.Created))
			cr.fail(e.forbidden(fmt.Errorf("creating %s: %w", r.Ref, err), r))
			return false
		default:
			r.State, r.TicketID, r.Number, r.Error = StateOpen, t.ID, t.Number, ""
			cr.Created++
		}
	}
	r.Updated = e.now().UTC()
	if err := e.store.PutTicketRecord(*r); err != nil {
		cr.fail(err)
		return false
	}
	return r.State == StateOpen || r.State == StateClosed
}

// release stores, for the intent r, whose create was certainly not
// applied (nothing was sent, or the PSA processed none of its attempts),
// the record it replaced, prev, as it was, or, when there was none, r
// released as settle releases one that never reached the PSA (why says
// so), so that a later pass decides afresh. A refused create put back
// keeps the time it was refused: it is sent again next pass, not a day
// later.
func (e *Engine) release(r *Record, prev *Record, why string, cr *CustomerReport) {
	back := *r
	back.State, back.RoutingHash, back.Error, back.Updated = StateFailed, "", why, e.now().UTC()
	if prev != nil {
		back = *prev
	}
	if err := e.store.PutTicketRecord(back); err != nil {
		cr.fail(err)
	}
}

// checkAlertID returns why an alert id cannot key a ticket record or make
// a ticket reference that the PSA can be searched for, or nil.
func checkAlertID(id string) error {
	switch {
	case id == "" || strings.IndexByte(id, 0) >= 0:
		return errors.New("its id is empty or has a NUL byte")
	case id == SummaryKey || strings.HasPrefix(id, SummaryKey+"@"):
		return fmt.Errorf("its id %q is the key psa-syncd keeps the customer's summary ticket under", id)
	}
	if err := psa.CheckExternalRef(ref(id, 1)); err != nil {
		return fmt.Errorf("its id cannot make a ticket reference: %w", err)
	}
	return nil
}

// drop releases r, a create intent the PSA refuses to search for
// (psa.ErrValidation, for good) whose alert is resolved: no search can
// settle it, and there is no alert left to file. It is reported, since a
// create sent for it before (by an earlier psa-syncd) may have made a
// ticket that psa-syncd no longer follows.
func (e *Engine) drop(r *Record, searchErr error, cr *CustomerReport) error {
	r.State, r.RoutingHash, r.Updated = StateFailed, "", e.now().UTC()
	r.Error = fmt.Sprintf("dropped: the PSA refuses to search for it (%v) and its alert was resolved", searchErr)
	cr.Notices = append(cr.Notices, fmt.Sprintf("the create of %s is dropped: the PSA refuses to search for it (%v) and its alert was resolved; "+
		"should a ticket with this reference exist in the PSA, close it by hand", r.Ref, searchErr))
	e.logger.Warn("Unsearchable ticket create of a resolved alert dropped", "source", r.Source, "customer", r.CustomerID, "ref", r.Ref,
		"err", searchErr)
	return e.store.PutTicketRecord(*r)
}

// stopOn stops creating for the rest of the pass when the PSA throttled
// it (and then writing at all: see throttle), refused the credentials, or
// its address answered with what is not its API (psa.ErrNotAPI: a proxy's
// sign-in page, another product), which every create would get too.
// A request refused the API user for what it names (psa.ErrForbidden: a
// company, queue, board or location its permissions leave out) fails only
// its customer: the others' creates may go through.
func (e *Engine) stopOn(p *pass, err error) {
	if (errors.Is(err, psa.ErrUnauthorized) && !errors.Is(err, psa.ErrForbidden) || errors.Is(err, psa.ErrNotAPI)) && p.stopped == nil {
		p.stopped = err
	}
	e.throttle(p, err)
}

// forbidden adds to err, when the PSA refused the API user a create or
// the search before it (psa.ErrForbidden), what the user may lack: access
// to r's company, or to the queue or board of the routing.
func (e *Engine) forbidden(err error, r *Record) error {
	if !errors.Is(err, psa.ErrForbidden) {
		return err
	}
	var lacks string
	switch e.system {
	case psa.SystemAutotask:
		lacks = fmt.Sprintf("check that the API user's security level lets it see and add tickets for company %s and in queue %s", r.CompanyID, e.routing.QueueID)
	case psa.SystemConnectWise:
		lacks = fmt.Sprintf("check that the API member's security role reaches company %s and service board %s (Service Tickets: add and inquire)",
			r.CompanyID, e.routing.QueueID)
	case psa.SystemKaseyaBMS:
		lacks = fmt.Sprintf("check that the API user has access to account %s, its locations, and queue %s", r.CompanyID, e.routing.QueueID)
	default:
		lacks = fmt.Sprintf("check that the API user may file tickets for company %s in queue %s", r.CompanyID, e.routing.QueueID)
	}
	return fmt.Errorf("%w; %s refused the API user this request for company %s, not its credentials: %s. "+
		"The other customers' tickets are filed", err, e.system, r.CompanyID, lacks)
}

// throttle stops the pass's writes when err says the PSA throttled a
// call (psa.ErrRateLimited): each write sent after it would cost requests
// the PSA refuses too. The creates, closes, notes and reopens left wait
// for the next pass (allow refuses them).
func (e *Engine) throttle(p *pass, err error) {
	if !errors.Is(err, psa.ErrRateLimited) || p.throttled() {
		return
	}
	p.stopped = err
	e.logger.Warn("Stopping ticket writes for this pass: the PSA throttled it; the tickets still to file, close, note or reopen wait for the next pass",
		"err", err)
}

// readTickets reads the tickets with ids, which the pass is about to
// resolve, in bulk when the PSA can (psa.TicketBulkReader: one request per
// 500 Autotask or 100 ConnectWise tickets, where reading them one by one
// costs a request each of the PSA's hourly budget) and there are several,
// and returns them by id. It returns an empty map otherwise, or when the
// bulk read fails: resolve then reads each ticket, and reports why that
// failed. A dry run reads nothing.
func (e *Engine) readTickets(ctx context.Context, p *pass, ids []string) map[string]*psa.Ticket {
	if e.bulk == nil || p.dryRun || len(ids) < 2 || e.fence.lost() != nil {
		return map[string]*psa.Ticket{}
	}
	read, err := e.bulk.GetTickets(ctx, ids)
	if err != nil {
		e.logger.Debug("Could not read the tickets of resolved alerts in bulk; reading them one by one", "tickets", len(ids), "err", err)
		return map[string]*psa.Ticket{}
	}
	return read
}

// resolve closes the ticket of a resolved alert, or adds a note, as the
// routing says. A ticket already closed in the PSA is only recorded. read
// is the ticket as the pass read it already (readTickets), or nil: it is
// read then. A ticket a bulk read did not return is read by itself, which
// tells a deleted one.
//
// A close is an intent first: the record is stored in StateClosing before
// the status is sent, so that a later pass that finds the ticket closed
// knows psa-syncd closed it, even when the answer was lost or psa-syncd
// died before recording it. Taking such a close for a technician's would
// stop the alert's ticket from ever being reopened (tickets.md 5.6).
func (e *Engine) resolve(ctx context.Context, p *pass, r *Record, read *psa.Ticket, cr *CustomerReport) error {
	if p.dryRun {
		if e.routing.OnResolve == export.OnResolveNote {
			cr.WouldNote = append(cr.WouldNote, r.TicketID)
		} else {
			cr.WouldClose = append(cr.WouldClose, r.TicketID)
		}
		return nil
	}
	t := read
	if t == nil {
		var err error
		t, err = e.psa.GetTicket(ctx, r.TicketID)
		if errors.Is(err, psa.ErrNotFound) {
			return e.gone(r, cr)
		}
		if err != nil {
			return err
		}
	}
	learnNumber(r, t)
	now := e.now().UTC()
	note := resolveNote(r, now)
	switch {
	case t.Closed && r.State == StateClosing && e.closeNoteSeparate && e.notes != nil:
		// psa-syncd's own close, whose answer was lost (or psa-syncd
		// stopped before recording it), on a PSA that adds its note by
		// a request of its own after the status: the note may not have
		// been sent, and is looked for as in closeNoting.
		r.State, r.ClosedBy = StateNoting, ClosedBySync
		cr.Closed++
		if done, err := e.settleCloseNote(ctx, r, cr); !done {
			if perr := e.store.PutTicketRecord(*r); perr != nil {
				return errors.Join(err, perr)
			}
			return err
		}
	case t.Closed && r.State == StateClosing:
		// psa-syncd's own close, whose answer was lost: it keeps the
		// time of its intent.
		r.ClosedBy = ClosedBySync
		cr.Closed++
	case t.Closed && closeNoting(r):
		// psa-syncd's own close, applied, whose note (a request of its
		// own, psa.ErrStatusSetNoteFailed) failed or was lost: looked
		// for on the ticket, and sent only when it is not there.
		if done, err := e.settleCloseNote(ctx, r, cr); !done {
			return err
		}
	case t.Closed:
		// A technician closed it; psa-syncd cannot tell when (open
		// tickets are not polled), but has now seen its alert clear: an
		// alert back is one that cleared and came back, and is reopened
		// or filed anew like one psa-syncd resolved. Recorded as closed
		// in the PSA (never reopened), it would get no ticket at all.
		r.ClosedBy, r.ClosedAt = ClosedByPSAResolved, now
	case r.State == StateNoting && e.notes == nil:
		// The note of an earlier pass whose outcome is unknown (its
		// answer was lost, or psa-syncd died between the intent and
		// recording the answer), on a PSA whose notes cannot be listed.
		e.noteTakenAsAdded(r, cr)
	case r.State == StateNoting:
		// The note of an earlier pass whose outcome is unknown: looked
		// for on the ticket (its text names the intent's time), and sent
		// only when it is not there.
		if r.ClosedAt.IsZero() {
			r.ClosedAt = now
		}
		note = resolveNote(r, r.ClosedAt)
		texts, err := e.notes.TicketNoteTexts(ctx, r.TicketID)
		switch {
		case err != nil && !listRetried(err):
			e.noteTakenAsAdded(r, cr)
			cr.Notices[len(cr.Notices)-1] += fmt.Sprintf(" (its notes could not be listed: %v)", err)
		case err != nil:
			return fmt.Errorf("listing the notes of ticket %s to look for the resolve note whose answer was lost: %w (looked for again next pass)",
				cmp.Or(r.Number, r.TicketID), err)
		case slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, note) }):
			r.ClosedBy = ClosedBySync
			cr.Noted++
		default:
			// Sent again: its time is recorded first (resent), so that a
			// pass right after this one, should this answer be lost too,
			// leaves the note settle time after this send rather than the
			// first, and does not send it a third time.
			if err := e.resent(r); err != nil {
				return err
			}
			if done, err := e.sendResolveNote(ctx, r, note, cr); !done {
				return err
			}
		}
	case e.routing.OnResolve == export.OnResolveNote:
		r.State, r.ClosedAt, r.Updated = StateNoting, now, now
		if err := e.store.PutTicketRecord(*r); err != nil {
			return err
		}
		if done, err := e.sendResolveNote(ctx, r, note, cr); !done {
			return err
		}
	default:
		r.State, r.ClosedAt, r.Updated = StateClosing, now, now
		if err := e.store.PutTicketRecord(*r); err != nil {
			return err
		}
		// Setting a status is absolute: sent again only while the ticket
		// is not closed, it cannot close twice or add a second note.
		_, err := e.psa.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: r.TicketID, StatusID: e.routing.ClosedStatusID, QueueID: e.routing.QueueID,
			Note: note, NoteTitle: "Alert resolved", NoteTypeID: e.routing.NoteTypeID, Resolution: t.Resolution})
		switch {
		case errors.Is(err, psa.ErrStatusSetNoteFailed) && e.notes != nil:
			// Closed, but its note (ConnectWise adds it by a request of
			// its own) failed or its answer was lost: the next pass
			// looks for it on the ticket, as for a resolve note whose
			// answer was lost, and sends it only when it is not there.
			// Left closing, the next pass would find the ticket closed
			// and never add the note.
			r.State, r.ClosedBy, r.Updated, r.MissingSince = StateNoting, ClosedBySync, e.now().UTC(), time.Time{}
			cr.Closed++
			cr.Notices = append(cr.Notices, fmt.Sprintf("ticket %s of alert %s was closed, but its note failed (%v): the next pass looks for the note "+
				"on the ticket, and sends it only if it is not there", cmp.Or(r.Number, r.TicketID), r.AlertKey, err))
			return e.store.PutTicketRecord(*r)
		case err != nil:
			return fmt.Errorf("closing ticket %s: %w (the next pass checks whether it closed)", cmp.Or(r.Number, r.TicketID), err)
		}
		r.ClosedBy = ClosedBySync
		cr.Closed++
	}
	r.State, r.Updated, r.MissingSince = StateClosed, now, time.Time{}
	return e.store.PutTicketRecord(*r)
}

// closeNoting reports whether r is psa-syncd's close, applied, whose note
// is still to settle: StateNoting with ClosedBy "sync" (a resolve note
// under way, on_resolve "note", has no ClosedBy yet).
func closeNoting(r *Record) bool { return r.State == StateNoting && r.ClosedBy == ClosedBySync }

// settleCloseNote looks for the note of r's close (closeNoting), whose
// ticket is closed, and sends it only when it is not there; it reports
// whether r is done. A note that cannot be looked for (no listing, or one
// refused for good) or is refused is taken as missing, with a notice: the
// ticket is closed, and the note is only for the technicians.
func (e *Engine) settleCloseNote(ctx context.Context, r *Record, cr *CustomerReport) (bool, error) {
	name := cmp.Or(r.Number, r.TicketID)
	note := resolveNote(r, r.ClosedAt)
	missing := func(why error) {
		cr.Notices = append(cr.Notices, fmt.Sprintf("the note that alert %s was resolved may be missing on ticket %s, which psa-syncd closed: %v",
			r.AlertKey, name, why))
		e.logger.Warn("Close note outcome unknown; taken as missing", "source", r.Source, "customer", r.CustomerID, "ticket", r.TicketID, "err", why)
	}
	if e.notes == nil {
		missing(errors.New("the PSA's notes cannot be listed"))
		return true, nil
	}
	texts, err := e.notes.TicketNoteTexts(ctx, r.TicketID)
	switch {
	case err != nil && !listRetried(err):
		missing(fmt.Errorf("its notes could not be listed: %w", err))
		return true, nil
	case err != nil:
		return false, fmt.Errorf("listing the notes of ticket %s to look for its close note: %w (looked for again next pass)", name, err)
	case slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, note) }):
		return true, nil
	}
	// Looked for again, should this answer be lost too, settle time after
	// this send (resent).
	if err := e.resent(r); err != nil {
		return false, err
	}
	err = e.psa.AddTicketNote(ctx, psa.TicketNote{TicketID: r.TicketID, Title: "Alert resolved", Text: note, NoteTypeID: e.routing.NoteTypeID})
	switch {
	case err == nil:
		cr.Notices = append(cr.Notices, fmt.Sprintf("the note that alert %s was resolved was not on ticket %s, which psa-syncd closed: it was sent again",
			r.AlertKey, name))
		return true, nil
	case errors.Is(err, psa.ErrOutcomeUnknown) || listRetried(err):
		if errors.Is(err, psa.ErrOutcomeUnknown) {
			cr.Notices = append(cr.Notices, fmt.Sprintf("the answer to the note that alert %s was resolved was lost again (ticket %s): the next pass "+
				"looks for it on the ticket", r.AlertKey, name))
			return false, nil
		}
		return false, fmt.Errorf("sending again the note that alert %s was resolved on ticket %s: %w (looked for again next pass)", r.AlertKey, name, err)
	}
	missing(fmt.Errorf("sending it again was refused: %w", err))
	return true, nil
}

// resent records in r, before psa-syncd sends again a note whose outcome
// was unknown and that a pass did not find on the ticket, the time of
// this send (Updated), from which unsettledWrite counts the settle time:
// should this answer be lost too, the note may still be on its way, and a
// pass right after this one, counting from the first send, would not find
// it yet and send it a third time.
func (e *Engine) resent(r *Record) error {
	r.Updated = e.now().UTC()
	return e.store.PutTicketRecord(*r)
}

// resolveNote is the note on r's ticket that its alert (for a summary:
// every alert it covers) was resolved, seen at at (the noting intent's
// time, Record.ClosedAt): the text names the time to the second, so that
// a pass looking for the note after a lost answer finds this one.
func resolveNote(r *Record, at time.Time) string {
	if isSummary(r) {
		return fmt.Sprintf("Every alert this ticket summarised was resolved in Sophos Central (seen %s).", at.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("The alert was resolved in Sophos Central (seen %s).", at.UTC().Format(time.RFC3339))
}

// sendResolveNote adds the resolve note to r's ticket, whose intent is
// stored (StateNoting), and reports whether r is done: noted, or taken as
// noted. A note whose answer was lost is, when the PSA lists notes, left
// in StateNoting with a notice for the next pass to look for (not at once:
// a note still being processed would not be listed yet); otherwise taken
// as added. A note refused before it was applied puts r back to open, and
// returns why.
func (e *Engine) sendResolveNote(ctx context.Context, r *Record, note string, cr *CustomerReport) (bool, error) {
	err := e.psa.AddTicketNote(ctx, psa.TicketNote{TicketID: r.TicketID, Title: "Alert resolved", Text: note, NoteTypeID: e.routing.NoteTypeID})
	switch {
	case err == nil:
		r.ClosedBy = ClosedBySync
		cr.Noted++
		return true, nil
	case errors.Is(err, psa.ErrOutcomeUnknown) && e.notes != nil:
		cr.Notices = append(cr.Notices, fmt.Sprintf("the answer to the note that alert %s was resolved was lost (ticket %s): the next pass looks for "+
			"the note on the ticket, and sends it only if it is not there", r.AlertKey, cmp.Or(r.Number, r.TicketID)))
		e.logger.Info("Resolve note outcome unknown; looked for on the ticket next pass", "source", r.Source, "customer", r.CustomerID,
			"ticket", r.TicketID)
		return false, nil
	case errors.Is(err, psa.ErrOutcomeUnknown):
		e.noteTakenAsAdded(r, cr)
		return true, nil
	}
	// Refused before it was applied: noted again next pass. A not-found
	// too: the ticket was just read, so what is missing may be anything
	// the note names (Kaseya BMS reads any "not found" so); the next
	// pass's read finds a deleted one.
	r.State, r.ClosedAt = StateOpen, time.Time{}
	if perr := e.store.PutTicketRecord(*r); perr != nil {
		return false, errors.Join(err, perr)
	}
	return false, err
}

// listRetried reports whether a failed listing of a ticket's notes is
// tried again next pass (the PSA throttled it, did not answer, or failed
// for now) rather than refused for good (the API user may not read notes,
// the PSA refuses the request or does not have it): a note that cannot be
// looked for then is taken as added, as on a PSA that lists none.
func listRetried(err error) bool {
	return !errors.Is(err, psa.ErrUnauthorized) && !errors.Is(err, psa.ErrValidation) && !errors.Is(err, psa.ErrNotSupported) &&
		!errors.Is(err, psa.ErrNotFound) && !errors.Is(err, psa.ErrNotAPI)
}

// noteTakenAsAdded records r's resolve note, whose outcome is unknown, as
// added, with a notice: on a PSA whose notes cannot be listed (see
// psa.TicketNoteLister), the note cannot be looked for; sending it again
// could put the same note on the ticket twice, and notes are only for
// changes (tickets.md 5.3): a missing "resolved" note is the milder
// failure.
func (e *Engine) noteTakenAsAdded(r *Record, cr *CustomerReport) {
	r.ClosedBy = ClosedBySync
	cr.Notices = append(cr.Notices, fmt.Sprintf("the note that alert %s was resolved may be missing on ticket %s (its answer was lost); it is not sent again",
		r.AlertKey, cmp.Or(r.Number, r.TicketID)))
	e.logger.Warn("Resolve note outcome unknown; taken as added rather than sent twice", "source", r.Source, "customer", r.CustomerID,
		"ticket", r.TicketID)
}

// settleReturned settles the close or resolve note of r, whose outcome is
// unknown, when r's alert is open again (for a summary: when it is to take
// new alerts): a ticket psa-syncd closed is recorded as closed by it (and
// may be reopened), one closed by someone else as closed in the PSA after
// the alert cleared (reopened or replaced as one psa-syncd closed), and
// one still open is followed again. It returns the ticket as read (nil if
// deleted), which the reopen or the read before a new ticket later in the
// pass takes rather than reading it again.
func (e *Engine) settleReturned(ctx context.Context, r *Record, cr *CustomerReport) (*psa.Ticket, error) {
	t, err := e.psa.GetTicket(ctx, r.TicketID)
	if errors.Is(err, psa.ErrNotFound) {
		return nil, e.gone(r, cr)
	}
	if err != nil {
		return nil, err
	}
	learnNumber(r, t)
	now := e.now().UTC()
	switch {
	case t.Closed && r.State == StateClosing:
		r.State, r.ClosedBy = StateClosed, ClosedBySync
		cr.Closed++
	case t.Closed && closeNoting(r):
		// Closed and counted by an earlier pass; its note, unsettled,
		// may be missing: the alert is open again, and a note saying it
		// was resolved would only mislead now.
		r.State = StateClosed
	case t.Closed:
		// A resolve note's (StateNoting): the ticket was read open
		// before it, once psa-syncd had seen the alert clear, so a
		// technician closed it after that (ClosedByPSAResolved, as in
		// resolve).
		r.State, r.ClosedBy, r.ClosedAt = StateClosed, ClosedByPSAResolved, now
	default:
		r.State, r.ClosedBy, r.ClosedAt = StateOpen, "", time.Time{}
	}
	r.Updated = now
	return t, e.store.PutTicketRecord(*r)
}

// reopen sets a closed ticket's reopen status when its alert came back
// within the reopen window.
//
// The ticket is read first (reopens are rare, the read is cheap), unless
// read is the ticket as this pass already read it (settleReturned), in a
// dry run too: one deleted in the PSA is recorded as gone, and reopen
// reports it so that the alert gets a new ticket (GetTicket is the call
// whose not-found every backend reports as psa.ErrNotFound); one open in
// the PSA keeps its status and is followed again (followOpen).
//
// A reopen is an intent: the record is stored in StateReopening before
// the status (and the note after it) is sent. When the send fails with
// psa.ErrNotApplied (the PSA throttled every attempt of the status
// change), or the ticket, read again at once, is still closed, the status
// was not applied (nor the note, which every backend sends after it), so
// the record is closed by psa-syncd again and the reopen is sent next
// pass; open, it was. Unread, the next pass settles it (settleReopen).
// Without the intent, a reopen applied whose answer was lost would be
// sent again next pass: over a technician's close, with a second note.
func (e *Engine) reopen(ctx context.Context, p *pass, r *Record, read *psa.Ticket, a Alert, cr *CustomerReport) (gone bool, err error) {
	if read == nil {
		read, err = e.psa.GetTicket(ctx, r.TicketID)
	}
	if err != nil {
		switch {
		case errors.Is(err, psa.ErrNotFound) && p.dryRun:
			return true, nil
		case errors.Is(err, psa.ErrNotFound):
			return true, e.gone(r, cr)
		}
		return false, err
	}
	learnNumber(r, read)
	switch {
	case !read.Closed:
		// Open in the PSA (on_resolve "note" left it to the technician,
		// or one reopened it): the technician's status is kept, and the
		// ticket only gets the "raised again" note.
		return false, e.followOpen(ctx, p, r, read, a, cr)
	case p.dryRun:
		cr.WouldReopen = append(cr.WouldReopen, r.TicketID)
		return false, nil
	}
	closed := *r
	// The ticket's last change as the PSA dates it, read before the
	// intent: a later pass that finds the reopen unsettled and the ticket
	// closed compares the PSA's time with the PSA's (settleReopen).
	r.ReopenActivity = read.LastActivity
	// The intent's time is in the note's text, by which a later pass
	// looks for the note after a lost answer (settleReopen); the alert is
	// listed, so it is not missing (missing would rewrite Updated).
	r.State, r.Updated, r.MissingSince = StateReopening, e.now().UTC(), time.Time{}
	if err := e.store.PutTicketRecord(*r); err != nil {
		return false, err
	}
	note := reopenNote(a.RaisedAt, r.Updated)
	if _, err := e.psa.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: r.TicketID, StatusID: e.routing.ReopenStatusID, QueueID: e.routing.QueueID,
		Note: note, NoteTitle: "Alert raised again", NoteTypeID: e.routing.NoteTypeID}); err != nil {
		notApplied := errors.Is(err, psa.ErrNotApplied)
		var t *psa.Ticket
		var gerr error
		if !notApplied {
			t, gerr = e.psa.GetTicket(ctx, r.TicketID)
		}
		switch {
		case notApplied || gerr == nil && t.Closed:
			*r = closed
			r.Updated = e.now().UTC()
			if perr := e.store.PutTicketRecord(*r); perr != nil {
				return false, errors.Join(err, perr)
			}
			return false, fmt.Errorf("reopening ticket %s: %w (it is sent again next pass)", cmp.Or(r.Number, r.TicketID), err)
		case gerr == nil && e.notes != nil:
			// Reopened (counted now; ClosedAt cleared says so to the next
			// pass); whether its note was added is for the next pass to
			// look for (not at once: a note still being processed would
			// not be listed yet).
			r.ClosedBy, r.ClosedAt = "", time.Time{}
			if err := e.store.PutTicketRecord(*r); err != nil {
				return false, err
			}
			cr.Reopened++
			cr.Notices = append(cr.Notices, fmt.Sprintf("the answer to the reopen of ticket %s for alert %s was lost: the ticket is open, and "+
				"the next pass looks for its \"raised again\" note on the ticket, and sends it only if it is not there", cmp.Or(r.Number, r.TicketID), r.AlertKey))
			e.logger.Info("Reopen applied, its note's outcome unknown; looked for on the ticket next pass", "source", r.Source, "customer", r.CustomerID,
				"ticket", r.TicketID)
			return false, nil
		case gerr == nil:
			return false, e.reopened(r, cr)
		default:
			return false, fmt.Errorf("reopening ticket %s: %w (the next pass checks whether it reopened)", cmp.Or(r.Number, r.TicketID), err)
		}
	}
	r.State, r.ClosedBy, r.ClosedAt, r.Updated = StateOpen, "", time.Time{}, e.now().UTC()
	cr.Reopened++
	return false, e.store.PutTicketRecord(*r)
}

// reopened records the reopen of r, found applied after its answer was
// lost, and its "raised again" note as added, with a notice: as with a
// resolve note (noteTakenAsAdded), a note that may be missing is milder
// than the same note twice.
func (e *Engine) reopened(r *Record, cr *CustomerReport) error {
	if !r.ClosedAt.IsZero() {
		cr.Reopened++
	}
	r.State, r.ClosedBy, r.ClosedAt, r.Updated = StateOpen, "", time.Time{}, e.now().UTC()
	cr.Notices = append(cr.Notices, fmt.Sprintf("the note that alert %s was raised again may be missing on ticket %s (its answer was lost); it is not sent again",
		r.AlertKey, cmp.Or(r.Number, r.TicketID)))
	e.logger.Warn("Reopen note outcome unknown; taken as added rather than sent twice", "source", r.Source, "customer", r.CustomerID,
		"ticket", r.TicketID)
	return e.store.PutTicketRecord(*r)
}

// settleReopen settles the reopen of r, whose outcome is unknown from an
// earlier pass (its answer and the read after it were lost, or psa-syncd
// died), by reading the ticket. Open, the reopen was applied, and its
// "raised again" note is looked for (settleReopenNote). Closed, it
// was not applied when nothing changed the ticket since the reopen's
// intent was recorded (unchangedSinceReopen; never when an earlier pass
// saw it open, ClosedAt cleared): r is psa-syncd's close
// again, and the pass reopens the ticket if its alert is open (within the
// reopen window). Closed and changed since (or with no last-activity time
// to tell), the reopen may have been applied and a technician closed the
// ticket again: reopening again could reopen over a technician's close
// (the loop tickets.md 5.6 forbids), so the ticket is taken as closed in
// the PSA and reported, never reopened again for this alert.
func (e *Engine) settleReopen(ctx context.Context, p *pass, r *Record, cr *CustomerReport) error {
	t, err := e.psa.GetTicket(ctx, r.TicketID)
	if errors.Is(err, psa.ErrNotFound) {
		return e.gone(r, cr)
	}
	if err != nil {
		return err
	}
	learnNumber(r, t)
	if !t.Closed {
		return e.settleReopenNote(ctx, p, r, cr)
	}
	now := e.now().UTC()
	if !r.ClosedAt.IsZero() && unchangedSinceReopen(t, r) {
		intent := r.Updated
		r.State, r.ClosedBy, r.Updated = StateClosed, ClosedBySync, now
		cr.Notices = append(cr.Notices, fmt.Sprintf("the reopen of ticket %s for alert %s, recorded at %s, was not applied: the ticket is closed "+
			"and unchanged in the PSA since %s; it is reopened again while its alert is open", cmp.Or(r.Number, r.TicketID), r.AlertKey,
			intent.Format(time.RFC3339), t.LastActivity.Format(time.RFC3339)))
		e.logger.Info("Reopen outcome unknown and the ticket unchanged since; not applied, reopened again while its alert is open", "source", r.Source,
			"customer", r.CustomerID, "ticket", r.TicketID, "reopen_recorded", intent, "last_activity", t.LastActivity)
		return e.store.PutTicketRecord(*r)
	}
	what := "the reopen of"
	if r.ClosedAt.IsZero() {
		// Open when its "raised again" note was sent (followed again, or
		// the reopen found applied): closed since.
		what = "the \"raised again\" note on"
	}
	r.State, r.ClosedBy, r.ClosedAt, r.Updated = StateClosed, ClosedByPSA, now, now
	cr.Notices = append(cr.Notices, fmt.Sprintf("%s ticket %s for alert %s is unconfirmed and the ticket is closed: it is taken as closed in the PSA "+
		"and not reopened again", what, cmp.Or(r.Number, r.TicketID), r.AlertKey))
	e.logger.Warn("Reopen outcome unknown and the ticket is closed; taken as closed in the PSA, not reopened again", "source", r.Source,
		"customer", r.CustomerID, "ticket", r.TicketID)
	return e.store.PutTicketRecord(*r)
}

// reopenNote is the "raised again" note of a reopen whose intent was
// recorded at seen (Record.Updated), for an alert raised at raised (zero:
// unknown). The text names seen to the second, so that a pass looking for
// the note after a lost answer finds this one, not an earlier reopen's
// (reopenNoted).
func reopenNote(raised, seen time.Time) string {
	if raised.IsZero() {
		return fmt.Sprintf("The alert was raised again in Sophos Central (seen %s).", seen.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("The alert was raised again in Sophos Central (raised %s, seen %s).", raised.UTC().Format(time.RFC3339),
		seen.UTC().Format(time.RFC3339))
}

// reopenNoted reports whether one of texts is the "raised again" note of
// r's reopen, recorded at r.Updated (reopenNote). An intent an older
// psa-syncd recorded (no ReopenActivity) may have sent the older text,
// which named only the alert's raised time: a "raised again" note without
// a "seen" time counts for it, so that an upgrade never adds the note a
// second time (at worst, an earlier reopen's note is taken for it, as
// before).
func reopenNoted(texts []string, r *Record) bool {
	mark := "seen " + r.Updated.UTC().Format(time.RFC3339) + ")"
	return slices.ContainsFunc(texts, func(s string) bool {
		if !strings.Contains(s, "raised again in Sophos Central") {
			return false
		}
		return strings.Contains(s, mark) || r.ReopenActivity.IsZero() && !strings.Contains(s, "(seen ") && !strings.Contains(s, ", seen ")
	})
}

// settleReopenNote settles the "raised again" note of r's reopen, whose
// outcome is unknown and whose ticket is open (the reopen was applied):
// where the PSA lists notes, it looks for the note (by the intent's time,
// r.Updated) and sends it only when it is not there; a listing failing
// for now leaves r as it is for the next pass. Where notes cannot be
// listed, or the PSA refuses the listing or the note for good, the note is
// taken as added and reported as possibly missing (reopened).
func (e *Engine) settleReopenNote(ctx context.Context, p *pass, r *Record, cr *CustomerReport) error {
	if e.notes == nil {
		return e.reopened(r, cr)
	}
	name := cmp.Or(r.Number, r.TicketID)
	texts, err := e.notes.TicketNoteTexts(ctx, r.TicketID)
	switch {
	case err != nil && !listRetried(err):
		rerr := e.reopened(r, cr)
		cr.Notices[len(cr.Notices)-1] += fmt.Sprintf(" (its notes could not be listed: %v)", err)
		return rerr
	case err != nil:
		return fmt.Errorf("listing the notes of ticket %s to look for the \"raised again\" note whose answer was lost: %w (looked for again next pass)",
			name, err)
	case reopenNoted(texts, r):
		return e.reopenDone(r, cr)
	}
	if !e.allow(ctx, p) {
		cr.deferForBudget(1)
		return nil
	}
	// The note sent again names this send's time, recorded first
	// (resent): the note looked for from now on, and the time from which
	// a pass right after this one, should this answer be lost too, leaves
	// it for the settle time rather than sending it a third time. The
	// earlier send, not on the ticket settle time after it, was not
	// applied. The reopen was (the ticket is open): counted now, and
	// ClosedAt cleared says so to the next pass, which so never compares
	// the ticket's last change with this send's time (unchangedSinceReopen).
	if !r.ClosedAt.IsZero() {
		cr.Reopened++
		r.ClosedAt = time.Time{}
	}
	if err := e.resent(r); err != nil {
		return err
	}
	err = e.psa.AddTicketNote(ctx, psa.TicketNote{TicketID: r.TicketID, Title: "Alert raised again", Text: reopenNote(time.Time{}, r.Updated),
		NoteTypeID: e.routing.NoteTypeID})
	switch {
	case err == nil:
		cr.Notices = append(cr.Notices, fmt.Sprintf("the note that alert %s was raised again, whose answer was lost, was not on ticket %s: it was sent again",
			r.AlertKey, name))
		return e.reopenDone(r, cr)
	case errors.Is(err, psa.ErrOutcomeUnknown):
		cr.Notices = append(cr.Notices, fmt.Sprintf("the answer to the note that alert %s was raised again was lost again (ticket %s): the next pass "+
			"looks for it on the ticket", r.AlertKey, name))
		return nil
	case listRetried(err):
		// Not applied, for now (throttled, a server error): looked for
		// and sent again next pass.
		return fmt.Errorf("sending again the note that alert %s was raised again on ticket %s: %w (tried again next pass)", r.AlertKey, name, err)
	}
	rerr := e.reopened(r, cr)
	cr.Notices[len(cr.Notices)-1] += fmt.Sprintf(" (sending it again was refused: %v)", err)
	return rerr
}

// reopenDone records r's reopen as applied, its note added. A reopen an
// earlier pass saw applied (ClosedAt cleared) was counted then.
func (e *Engine) reopenDone(r *Record, cr *CustomerReport) error {
	if !r.ClosedAt.IsZero() {
		cr.Reopened++
	}
	r.State, r.ClosedBy, r.ClosedAt, r.Updated = StateOpen, "", time.Time{}, e.now().UTC()
	return e.store.PutTicketRecord(*r)
}

// unchangedSinceReopen reports whether t, as read, has not changed in the
// PSA since r's reopen intent was recorded. With the ticket's last change
// read just before the intent (Record.ReopenActivity), the PSA's time is
// compared with the PSA's: no later change, no reopen applied, whatever
// the two clocks say. Otherwise (an intent an older psa-syncd recorded, or
// a PSA that gave no time then) untouchedSince compares it with the
// intent's time on psa-syncd's clock.
func unchangedSinceReopen(t *psa.Ticket, r *Record) bool {
	if !r.ReopenActivity.IsZero() && !t.LastActivity.IsZero() {
		return !t.LastActivity.After(r.ReopenActivity)
	}
	return untouchedSince(t, r.Updated)
}

// reopenClockSkew is how far apart psa-syncd's clock and the PSA's may be
// for untouchedSince: a change the PSA dates less than this before the
// reopen's intent may have come after it.
const reopenClockSkew = 2 * time.Minute

// untouchedSince reports whether t, as read, last changed in the PSA
// before intent (psa-syncd's clock), by more than reopenClockSkew: a
// reopen sent after intent, had it been applied, would have changed it.
// A ticket without a last-activity time (psa.Ticket.LastActivity) may
// have changed: false.
func untouchedSince(t *psa.Ticket, intent time.Time) bool {
	return !t.LastActivity.IsZero() && !intent.IsZero() && t.LastActivity.Before(intent.Add(-reopenClockSkew))
}

// followAgain reads the ticket of r, which psa-syncd closed or, with
// on_resolve "note", noted as resolved, when its alert a is open again and
// the ticket is not to be reopened (on_return "new", or after the reopen
// window), or, for the customer's summary (a is zero then), when alerts
// it stands for are open again: it reports whether the ticket is open in
// the PSA, and is then followed again, so that the alert does not get a
// second ticket beside it. A noted ticket stays open until a technician
// closes it, and one psa-syncd closed may have been reopened by hand. A
// ticket still closed (or deleted, recorded as gone) is followed by a new
// one, as before, and so is one the PSA refuses the API user
// (psa.ErrForbidden). Another failed read files nothing: the ticket is
// read again next pass.
//
// The ticket followed again gets the "raised again" note, as a reopen
// does, so that its last word is not that the alert was resolved: it is a
// reopen without the status (StateReopening, ClosedAt cleared as for a
// reopen applied), and a note whose answer is lost, or that fails, is
// settled as a reopen's note is (settleReopen: looked for, and sent only
// if it is not there). A dry run stores and sends nothing. A non-nil t is
// the ticket as this pass already read it (settleReturned): not read
// again.
func (e *Engine) followAgain(ctx context.Context, p *pass, r *Record, t *psa.Ticket, a Alert, cr *CustomerReport) (bool, error) {
	what, back := "alert "+r.AlertKey, raisedAgain(r)
	if r.AlertKey == SummaryKey {
		what = "a summary's alerts"
	}
	var err error
	if t == nil {
		t, err = e.psa.GetTicket(ctx, r.TicketID)
	}
	switch {
	case errors.Is(err, psa.ErrNotFound) && p.dryRun:
		return false, nil
	case errors.Is(err, psa.ErrNotFound):
		return false, e.gone(r, cr)
	case errors.Is(err, psa.ErrForbidden):
		// The API user may not read it (moved to a company or board out
		// of its reach): the alert is filed anew, as before the read.
		cr.Notices = append(cr.Notices, fmt.Sprintf("%s cannot be read (%v): it is filed anew", back, err))
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading ticket %s of %s, raised again, before filing it anew: %w (read again next pass)",
			cmp.Or(r.Number, r.TicketID), what, err)
	case t.Closed:
		return false, nil
	}
	return true, e.followOpen(ctx, p, r, t, a, cr)
}

// raisedAgain names, for a notice, what of r is open again after
// psa-syncd resolved its ticket, and the ticket.
func raisedAgain(r *Record) string {
	if r.AlertKey == SummaryKey {
		return fmt.Sprintf("alerts of summary ticket %s are open again, and the ticket, which psa-syncd resolved,", cmp.Or(r.Number, r.TicketID))
	}
	return fmt.Sprintf("alert %s is open again, and its ticket %s, which psa-syncd resolved,", r.AlertKey, cmp.Or(r.Number, r.TicketID))
}

// followOpen follows again r's ticket t, read open in the PSA, whose alert
// a (zero for the customer's summary) is open again after psa-syncd
// resolved it, with the "raised again" note (see followAgain).
func (e *Engine) followOpen(ctx context.Context, p *pass, r *Record, t *psa.Ticket, a Alert, cr *CustomerReport) error {
	learnNumber(r, t)
	back := raisedAgain(r)
	if p.dryRun {
		cr.Notices = append(cr.Notices, fmt.Sprintf("%s is open in the PSA: the next pass follows it again, with a note that the alert was raised "+
			"again, rather than filing it anew", back))
		return nil
	}
	e.logger.Info("Alert raised again while its resolved ticket is open in the PSA; the ticket is followed again", "source", r.Source,
		"customer", r.CustomerID, "alert", r.AlertKey, "ticket", r.TicketID)
	r.ReopenActivity = t.LastActivity
	r.State, r.ClosedBy, r.ClosedAt, r.MissingSince, r.Updated = StateReopening, "", time.Time{}, time.Time{}, e.now().UTC()
	if err := e.store.PutTicketRecord(*r); err != nil {
		return err
	}
	note := reopenNote(a.RaisedAt, r.Updated)
	if r.AlertKey == SummaryKey {
		// Named as a reopen's note is (seen and the intent's time), by
		// which settleReopenNote looks for it.
		note = fmt.Sprintf("Alerts of this summary were raised again in Sophos Central (seen %s).", r.Updated.UTC().Format(time.RFC3339))
	}
	err := e.psa.AddTicketNote(ctx, psa.TicketNote{TicketID: r.TicketID, Title: "Alert raised again", Text: note, NoteTypeID: e.routing.NoteTypeID})
	if err != nil {
		e.throttle(p, err)
		cr.Notices = append(cr.Notices, fmt.Sprintf("%s is open in the PSA: psa-syncd follows it again rather than filing it anew; "+
			"its note that the alert was raised again failed (%v): a later pass looks for it on the ticket, and sends it only if it is not there",
			back, err))
		return nil
	}
	cr.Notices = append(cr.Notices, fmt.Sprintf("%s is open in the PSA: psa-syncd follows it again, with a note that the alert was raised again, "+
		"rather than filing it anew", back))
	r.State, r.Updated = StateOpen, e.now().UTC()
	return e.store.PutTicketRecord(*r)
}

// gone records that r's ticket was deleted in the PSA: it is no longer
// followed, so that its customer does not fail on it every pass, and its
// alert, still open or back, gets a new ticket (the next generation).
func (e *Engine) gone(r *Record, cr *CustomerReport) error {
	now := e.now().UTC()
	r.State, r.ClosedBy, r.ClosedAt, r.Updated = StateClosed, ClosedByDeleted, now, now
	cr.Notices = append(cr.Notices, fmt.Sprintf("ticket %s (%s) was deleted in the PSA; it is no longer followed", cmp.Or(r.Number, r.TicketID), r.Ref))
	e.logger.Warn("Ticket deleted in the PSA; no longer followed", "source", r.Source, "customer", r.CustomerID, "ticket", r.TicketID, "ref", r.Ref)
	return e.store.PutTicketRecord(*r)
}

// summarise files the alerts over the customer's cap in its summary
// ticket: a note on the open one naming the new alerts, or a new one,
// which counts against the pass cap: with the pass cap reached, the
// alerts wait for a later pass instead.
//
// The open summary is read before the note (one read per storm pass, as
// open tickets are not polled): one a technician closed takes no more
// alerts, since a note on a closed ticket is seen by no one. It is
// recorded as closed in the PSA and a new summary ticket (the next
// generation) takes the new alerts, whatever on_return says: reopening a
// ticket a technician closed is what tickets.md 5.6 forbids for its own
// alerts, and the new alerts need a ticket someone looks at, not the old
// one back. The closed summary's alerts that are still open stay covered
// by the new one (named in its description), so that they get no ticket of
// their own either.
func (e *Engine) summarise(ctx context.Context, p *pass, c Customer, summary *Record, over []Alert, open map[string]bool, cr *CustomerReport) error {
	var lines []string
	var ids []string
	for _, a := range over {
		ids = append(ids, a.ID)
		lines = append(lines, summaryLine(a))
	}
	if p.dryRun {
		extend := summary != nil && Followed(summary.State) && !movedAway(summary, c)
		if !extend && e.full(p) {
			cr.Deferred += len(over)
			return nil
		}
		cr.Summarised += len(over)
		if extend {
			// A note, not a ticket (unless the pass finds the summary
			// closed in the PSA, which it reads only then).
			cr.Notices = append(cr.Notices, fmt.Sprintf("%d more alerts over the customer's cap would be noted on summary ticket %s",
				len(over), cmp.Or(summary.Number, summary.TicketID)))
			return nil
		}
		p.created++
		cr.WouldCreate = append(cr.WouldCreate, fmt.Sprintf("summary of %d alerts", len(over)))
		return nil
	}
	if !e.allow(ctx, p) {
		// A note on the summary ticket or a new one: a write like any
		// other.
		cr.deferForBudget(len(over))
		return nil
	}
	cr.Summarised += len(over)
	var read *psa.Ticket
	if summary != nil && (summary.State == StateClosing || summary.State == StateNoting) {
		// The summary's close or resolve note is unsettled (it failed
		// earlier in this pass, or its answer was lost): settle it first.
		// A summary still open takes the new alerts with a note; a closed
		// one is followed by the next generation. Summarising over it
		// unsettled would reuse its generation, so the search before the
		// create would adopt the old ticket, which never names the new
		// alerts. Found open, the ticket as read is the read before the
		// note below: not read again.
		var err error
		if read, err = e.settleReturned(ctx, summary, cr); err != nil {
			cr.Summarised -= len(over)
			return fmt.Errorf("settling summary ticket %s before summarising %d more alerts: %w (they are filed next pass)",
				cmp.Or(summary.Number, summary.TicketID), len(over), err)
		}
	}
	if summary != nil && summary.State == StateOpen {
		t, err := read, error(nil)
		if t == nil {
			t, err = e.psa.GetTicket(ctx, summary.TicketID)
		}
		if err == nil {
			learnNumber(summary, t)
		}
		switch {
		case errors.Is(err, psa.ErrNotFound):
			// Deleted in the PSA: a new summary takes these alerts.
			if err := e.gone(summary, cr); err != nil {
				return err
			}
		case err != nil:
			cr.Summarised -= len(over)
			return fmt.Errorf("reading summary ticket %s before noting %d more alerts on it: %w (they are filed next pass)",
				cmp.Or(summary.Number, summary.TicketID), len(over), err)
		case t.Closed:
			now := e.now().UTC()
			summary.State, summary.ClosedBy, summary.ClosedAt, summary.Updated = StateClosed, ClosedByPSA, now, now
			if err := e.store.PutTicketRecord(*summary); err != nil {
				return err
			}
			cr.Notices = append(cr.Notices, fmt.Sprintf("summary ticket %s was closed in the PSA, not by psa-syncd: it is not reopened, "+
				"and a new summary ticket takes the %d new alerts over the customer's cap", cmp.Or(summary.Number, summary.TicketID), len(over)))
			e.logger.Warn("Summary ticket closed in the PSA; new alerts go into a new summary ticket", "source", c.Source, "customer", c.CustomerID,
				"ticket", summary.TicketID, "alerts", len(over))
		}
	}
	// body lists the alerts, as many as fit in n characters with after.
	body := func(n int, after string) string {
		return e.summaryList(lines, n, after)
	}
	var left *Record
	if summary != nil && summary.State == StateOpen && movedAway(summary, c) {
		if e.full(p) {
			// The new company's summary is a create like any other.
			cr.Summarised -= len(over)
			cr.Deferred += len(over)
			return nil
		}
		// The customer's mapping moved to another company: the summary
		// takes no more alerts there, where the new company's
		// technicians never see them, and labour logged on it bills the
		// old company. Its record is kept under a key of its own,
		// followed and closed when its alerts are resolved, and the
		// next generation's summary is filed in the new company.
		// It owes a "Customer moved" note naming the new summary, which
		// is recorded first (MovedNote): a crash before the note, or a
		// lost answer, leaves a later pass to look for it and send it.
		moved := *summary
		moved.AlertKey, moved.Updated = movedSummaryKey(summary.CompanyID, summary.Generation), e.now().UTC()
		moved.MovedNote = summaryRef(c, summary.Generation+1)
		if err := e.store.PutTicketRecord(moved); err != nil {
			return err
		}
		left = &moved
		// The customer's record is replaced by the new summary's intent
		// below, as a closed one's is; it no longer covers the alerts.
		summary.State, summary.Covered, summary.NoteAlerts = StateClosed, nil, nil
		e.logger.Info("Customer's mapping moved to another company; its summary ticket stays there, a new one is filed in the new company",
			"source", c.Source, "customer", c.CustomerID, "ticket", summary.TicketID, "from", summary.CompanyID, "to", c.CompanyID)
	}
	if summary != nil && summary.State == StateOpen {
		// The alerts are recorded as covered before the note is sent, so
		// that they get no ticket of their own meanwhile, and, where the
		// PSA lists notes, as the alerts of the note under way
		// (NoteAlerts): a lost answer or a crash leaves the next pass to
		// look for the note and send it only if it is not there
		// (settleSummaryNote). Elsewhere a lost answer is taken as added:
		// as with a resolve note (noteTakenAsAdded), a note that may be
		// missing is milder than the same note twice.
		prev := slices.Clip(summary.Covered)
		summary.Covered = append(prev, ids...)
		if e.notes != nil {
			summary.NoteAlerts = ids
		}
		summary.Updated = e.now().UTC()
		if err := e.store.PutTicketRecord(*summary); err != nil {
			return err
		}
		err := e.psa.AddTicketNote(ctx, psa.TicketNote{TicketID: summary.TicketID, Title: "More alerts", Text: body(psa.MaxTicketNote-len("More alerts\n\n"), ""),
			NoteTypeID: e.routing.NoteTypeID})
		switch {
		case err == nil:
			if summary.NoteAlerts == nil {
				return nil
			}
			summary.NoteAlerts = nil
			return e.store.PutTicketRecord(*summary)
		case errors.Is(err, psa.ErrOutcomeUnknown) && e.notes != nil:
			cr.Notices = append(cr.Notices, fmt.Sprintf("the answer to the note listing %d more alerts on summary ticket %s was lost: the next pass looks "+
				"for the note on the ticket, and sends it again only if it is not there", len(ids), cmp.Or(summary.Number, summary.TicketID)))
			e.logger.Info("Summary note outcome unknown; looked for on the ticket next pass", "source", c.Source, "customer", c.CustomerID,
				"ticket", summary.TicketID)
			return nil
		case errors.Is(err, psa.ErrOutcomeUnknown):
			cr.Notices = append(cr.Notices, fmt.Sprintf("the note listing %d more alerts may be missing on summary ticket %s (its answer was lost); it is not sent again",
				len(ids), cmp.Or(summary.Number, summary.TicketID)))
			e.logger.Warn("Summary note outcome unknown; taken as added rather than sent twice", "source", c.Source, "customer", c.CustomerID,
				"ticket", summary.TicketID)
			return nil
		default:
			// Refused before it was applied: the alerts are summarised
			// again next pass. A not-found too, as for a resolve note:
			// the ticket was just read, and taking it as deleted would
			// file a second summary ticket and leave this one open.
			summary.Covered, summary.NoteAlerts = prev, nil
			cr.Summarised -= len(over)
			if perr := e.store.PutTicketRecord(*summary); perr != nil {
				return errors.Join(err, perr)
			}
			return err
		}
	}
	if e.full(p) {
		// A new summary ticket is a create like any other: with the pass
		// cap reached, the alerts wait for a later pass.
		cr.Summarised -= len(over)
		cr.Deferred += len(over)
		return nil
	}
	// A closed summary is followed by a new generation (a new Ref); a
	// failed one is created again under its Ref, which the search before
	// the create finds should it exist after all: adopted when open, and
	// passed over for the next generation when closed (searchPast), as
	// is the first generation found closed with no record of it.
	gen := 1
	var carried []string
	if summary != nil {
		gen = summary.Generation
		if summary.State == StateClosed {
			gen++
		}
		if closedInPSA(summary) {
			carried = stillOpen(summary.Covered, open)
		}
	}
	var after string
	if len(carried) > 0 {
		after = fmt.Sprintf("\n\n%d alerts of the earlier summary ticket %s, which was closed in the PSA, are still open; they get no ticket "+
			"of their own either.", len(carried), cmp.Or(summary.Number, summary.TicketID))
	}
	title := fmt.Sprintf("[Sophos] Alert storm: %d alerts for %s", len(over), cmp.Or(c.CustomerName, c.CustomerID))
	if older := len(slices.DeleteFunc(slices.Clone(over), func(a Alert) bool { return !e.beforeBackfill(a) })); older > 0 {
		after += fmt.Sprintf("\n\n%d of these alerts were raised more than %s ago (backfill_window), before ticket sync filed them: "+
			"they are named here rather than filed as tickets of their own.", older, e.backfillWindow())
		if older == len(over) {
			title = fmt.Sprintf("[Sophos] %d older alerts for %s", older, cmp.Or(c.CustomerName, c.CustomerID))
		}
	}
	if left != nil {
		after += fmt.Sprintf("\n\nThis customer's mapping moved from company %s to this one: the alerts over the cap raised before are in "+
			"summary ticket %s, which stays in company %s and is closed there when they are resolved.", left.CompanyID,
			cmp.Or(left.Number, left.TicketID), left.CompanyID)
	}
	after += "\n\nManaged by psa-sync ticket sync; do not edit the external reference."

	r := Record{
		Source: c.Source, CustomerID: c.CustomerID, AlertKey: SummaryKey, Ref: summaryRef(c, gen),
		Generation: gen, System: string(e.system), Instance: e.instance, CompanyID: c.CompanyID, State: StateCreating, Severity: over[0].Severity,
		Title:   psa.TruncateTitle(title, 100),
		Covered: append(carried, ids...), RoutingHash: e.createKey(c), Created: e.now().UTC(), Updated: e.now().UTC(),
	}
	if err := e.storeIntent(p, r, summary); err != nil {
		return err
	}
	found, ok := e.searchPast(ctx, p, &r, summary, func(gen int) string { return summaryRef(c, gen) }, cr)
	if !ok {
		return nil
	}
	req := e.baseRequest(c, r, over[0].Severity)
	req.Title, req.Description = r.Title, body(psa.MaxTicketDescription, after)
	created, adopted := cr.Created, cr.Adopted
	if e.file(ctx, p, &r, summary, found, req, cr) {
		p.created++
		if left != nil {
			cr.Notices = append(cr.Notices, fmt.Sprintf("the customer's mapping moved from company %s to %s: summary ticket %s stays in company %s "+
				"and is closed there when its alerts are resolved; new summary ticket %s in company %s takes the alerts over the cap",
				left.CompanyID, c.CompanyID, cmp.Or(left.Number, left.TicketID), left.CompanyID, cmp.Or(r.Number, r.TicketID, r.Ref), c.CompanyID))
			if err := e.noteMovedSummary(ctx, left, r, cr); err != nil {
				return err
			}
		}
	}
	// A summary is not one of the customer's alert tickets.
	cr.Created, cr.Adopted = created, adopted
	return nil
}

// noteMovedSummary adds a note to left, the summary ticket a customer's
// mapping moved away from, naming r, the new summary ticket in the new
// company, so that the old company's technicians know where the
// customer's new alerts go, and clears the note owed (Record.MovedNote)
// once it is added. A lost answer leaves it owed, for a later pass to look
// for (settleMovedNote); a refusal that a later pass may not get (the PSA
// throttled it, or failed for now) too; any other is a notice. None fails
// the customer, whose tickets are where they should be.
func (e *Engine) noteMovedSummary(ctx context.Context, left *Record, r Record, cr *CustomerReport) error {
	text := fmt.Sprintf("This customer's mapping %s: new alerts over the cap go to summary ticket %s there. "+
		"This ticket stays in company %s and is closed when the alerts it lists are resolved.",
		movedMark(left, r), cmp.Or(r.Number, r.TicketID), left.CompanyID)
	err := e.psa.AddTicketNote(ctx, psa.TicketNote{TicketID: left.TicketID, Title: "Customer moved", Text: text, NoteTypeID: e.routing.NoteTypeID})
	name, newName := cmp.Or(left.Number, left.TicketID), cmp.Or(r.Number, r.TicketID)
	switch {
	case errors.Is(err, psa.ErrOutcomeUnknown):
		cr.Notices = append(cr.Notices, fmt.Sprintf("the answer to the note naming new summary ticket %s on summary ticket %s was lost: "+
			"a later pass looks for the note on the ticket, and sends it again only if it is not there", newName, name))
		return nil
	case err != nil && listRetried(err):
		cr.Notices = append(cr.Notices, fmt.Sprintf("the note naming new summary ticket %s could not be added to summary ticket %s yet (%v): "+
			"a later pass sends it", newName, name, err))
		return nil
	case err != nil:
		cr.Notices = append(cr.Notices, fmt.Sprintf("the note naming new summary ticket %s could not be added to summary ticket %s: %v",
			newName, name, err))
		e.logger.Warn("Could not add the note naming the new summary ticket to the one the customer moved away from", "source", r.Source,
			"customer", r.CustomerID, "ticket", left.TicketID, "new_ticket", r.TicketID, "err", err)
	}
	left.MovedNote, left.Updated = "", e.now().UTC()
	return e.store.PutTicketRecord(*left)
}

// movedMark is the part of the "Customer moved" note on left that names
// the move to r's company: a later pass looks for the note by it.
func movedMark(left *Record, r Record) string {
	return fmt.Sprintf("moved from company %s to company %s", left.CompanyID, r.CompanyID)
}

// settleMovedNote settles the "Customer moved" note that left, a summary
// ticket the customer's mapping moved away from, owes (Record.MovedNote)
// from an earlier pass: psa-syncd stopped between the new summary's
// create and the note, or the note's answer was lost. Once the new
// summary (summary, the customer's record under that reference) is open,
// it lists left's notes: the note is there, it was added; not there, it is
// sent. While the new summary's create is unsettled or failed, the note
// waits for it; with left no longer followed, or the new summary closed
// or replaced, nothing is left to name. A listing refused for good (or a
// PSA that lists no notes) takes the note as added, with a notice, as for
// a summary's "More alerts" note: the same note twice is worse than none.
func (e *Engine) settleMovedNote(ctx context.Context, p *pass, left, summary *Record, cr *CustomerReport) error {
	name := cmp.Or(left.Number, left.TicketID)
	owed := func(why string) error {
		if why != "" {
			cr.Notices = append(cr.Notices, fmt.Sprintf("the note naming the new summary ticket may be missing on summary ticket %s; it is not sent again (%s)",
				name, why))
		}
		left.MovedNote, left.Updated = "", e.now().UTC()
		return e.store.PutTicketRecord(*left)
	}
	switch {
	case !Followed(left.State) || summary == nil || summary.Ref != left.MovedNote || summary.State == StateClosed:
		return owed("")
	case summary.State != StateOpen:
		return nil
	case e.notes == nil:
		return owed("the PSA's notes cannot be listed")
	}
	texts, err := e.notes.TicketNoteTexts(ctx, left.TicketID)
	switch {
	case err != nil && !listRetried(err):
		return owed(fmt.Sprintf("its notes could not be listed: %v", err))
	case err != nil:
		cr.Notices = append(cr.Notices, fmt.Sprintf("the notes of summary ticket %s could not be listed to look for the note naming the new summary "+
			"ticket (%v): looked for again next pass", name, err))
		return nil
	case slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, movedMark(left, *summary)) }):
		return owed("")
	case !e.allow(ctx, p):
		return nil
	}
	// Its time is recorded first (resent), so that a pass right after
	// this one, should this answer be lost too, leaves it for the settle
	// time rather than sending it again.
	if err := e.resent(left); err != nil {
		return err
	}
	return e.noteMovedSummary(ctx, left, *summary, cr)
}

// movedAway reports whether summary, the customer's, was filed in a
// company other than c's: the customer's mapping moved.
func movedAway(summary *Record, c Customer) bool {
	return summary.CompanyID != "" && c.CompanyID != "" && summary.CompanyID != c.CompanyID
}

// summaryRef is the external reference of customer c's summary ticket of
// generation gen.
func summaryRef(c Customer, gen int) string {
	sum := sha256.Sum256([]byte(c.Source + "|" + c.CustomerID))
	return fmt.Sprintf("scs:%s/%d", hex.EncodeToString(sum[:12]), gen)
}

// summaryLine is the line of a summary ticket's list that names a. Its
// parts are bounded (maxSummaryLine), so that the first line of a list
// always fits in a note and names its alert (settleSummaryNote).
func summaryLine(a Alert) string {
	return fmt.Sprintf("- %s %s: %s %s", strings.ToUpper(a.Severity[:1])+a.Severity[1:], cutMiddle(a.Type, maxSummaryLine),
		cutMiddle(strings.Join(strings.Fields(a.Description), " "), maxSummaryLine), summaryMark(a.ID))
}

// summaryMark ends the line of a summary's list that names alert id: a
// "More alerts" note is looked for by the mark of its first alert, which
// the list never leaves out (listFitted).
func summaryMark(id string) string { return "(alert " + id + ")" }

// summaryIntro begins a summary ticket's description and each of its
// "More alerts" notes.
const summaryIntro = "More alerts were raised than psa-syncd files as tickets for one customer in one pass"

// summaryList is the text of a summary ticket's description or "More
// alerts" note listing lines (summaryLine), as many as fit in a length
// of n with after.
func (e *Engine) summaryList(lines []string, n int, after string) string {
	intro := fmt.Sprintf(summaryIntro+" (at most %d). These %d alerts are summarised here and get no ticket of their own:\n\n",
		e.routing.MaxPerCustomer, len(lines))
	return intro + listFitted(lines, n-length(intro)-length(after)) + after
}

// settleSummaryNote settles summary's "More alerts" note whose outcome is
// unknown (Record.NoteAlerts), from an earlier pass: it lists the ticket's
// notes and looks for the note by the first alert it names. Found, the note
// was added. Not there, it is sent again for those of its alerts still
// open (alerts, this pass's listing), and for none when all are resolved.
// A listing refused for good (as by a PSA that lists no notes) takes the
// note as added, with a notice, as for a resolve note; one failing for now
// returns the error, and the note is looked for again next pass.
func (e *Engine) settleSummaryNote(ctx context.Context, p *pass, summary *Record, alerts []Alert, cr *CustomerReport) error {
	name := cmp.Or(summary.Number, summary.TicketID)
	takenAsAdded := func(why string) error {
		cr.Notices = append(cr.Notices, fmt.Sprintf("the note listing %d more alerts may be missing on summary ticket %s (its answer was lost); "+
			"it is not sent again%s", len(summary.NoteAlerts), name, why))
		e.logger.Warn("Summary note outcome unknown; taken as added rather than sent twice", "source", summary.Source, "customer", summary.CustomerID,
			"ticket", summary.TicketID)
		summary.NoteAlerts, summary.Updated = nil, e.now().UTC()
		return e.store.PutTicketRecord(*summary)
	}
	if e.notes == nil {
		return takenAsAdded(" (the PSA's notes cannot be listed)")
	}
	texts, err := e.notes.TicketNoteTexts(ctx, summary.TicketID)
	switch {
	case err != nil && !listRetried(err):
		return takenAsAdded(fmt.Sprintf(" (its notes could not be listed: %v)", err))
	case err != nil:
		return fmt.Errorf("listing the notes of summary ticket %s to look for the note listing %d more alerts, whose answer was lost: %w "+
			"(looked for again next pass)", name, len(summary.NoteAlerts), err)
	case slices.ContainsFunc(texts, func(s string) bool {
		return strings.Contains(s, summaryIntro) && strings.Contains(s, summaryMark(summary.NoteAlerts[0]))
	}):
		summary.NoteAlerts, summary.Updated = nil, e.now().UTC()
		return e.store.PutTicketRecord(*summary)
	}
	byID := make(map[string]Alert, len(alerts))
	for _, a := range alerts {
		byID[a.ID] = a
	}
	var again []string
	var lines []string
	for _, id := range summary.NoteAlerts {
		if a, ok := byID[id]; ok && severityRank[a.Severity] > 0 {
			again = append(again, id)
			lines = append(lines, summaryLine(a))
		}
	}
	if len(again) == 0 {
		// Its alerts were resolved meanwhile: nothing left to name.
		e.logger.Info("Summary note whose answer was lost is not on the ticket; its alerts are resolved, so it is not sent again", "source", summary.Source,
			"customer", summary.CustomerID, "ticket", summary.TicketID)
		summary.NoteAlerts, summary.Updated = nil, e.now().UTC()
		return e.store.PutTicketRecord(*summary)
	}
	if !e.allow(ctx, p) {
		// Looked for again next pass (the listing is cheap beside a
		// write); the alerts stay covered meanwhile.
		cr.deferForBudget(len(again))
		return nil
	}
	// The note sent now begins with the first of these; its time is
	// recorded first (resent), so that a pass right after this one,
	// should this answer be lost too, leaves it for the settle time
	// rather than sending it a third time.
	summary.NoteAlerts = again
	if err := e.resent(summary); err != nil {
		return err
	}
	err = e.psa.AddTicketNote(ctx, psa.TicketNote{TicketID: summary.TicketID, Title: "More alerts",
		Text: e.summaryList(lines, psa.MaxTicketNote-len("More alerts\n\n"), ""), NoteTypeID: e.routing.NoteTypeID})
	switch {
	case err == nil:
		cr.Notices = append(cr.Notices, fmt.Sprintf("the note listing %d more alerts on summary ticket %s, whose answer was lost, was not on the ticket: "+
			"it was sent again", len(again), name))
		summary.NoteAlerts, summary.Updated = nil, e.now().UTC()
		return e.store.PutTicketRecord(*summary)
	case errors.Is(err, psa.ErrOutcomeUnknown):
		cr.Notices = append(cr.Notices, fmt.Sprintf("the answer to the note listing %d more alerts on summary ticket %s was lost again: the next pass "+
			"looks for it on the ticket", len(again), name))
		return nil
	}
	// Refused before it was applied: the alerts are no longer covered, so
	// that this pass files them again (their own tickets or a note).
	summary.Covered = slices.DeleteFunc(slices.Clone(summary.Covered), func(id string) bool { return slices.Contains(again, id) })
	summary.NoteAlerts, summary.Updated = nil, e.now().UTC()
	if perr := e.store.PutTicketRecord(*summary); perr != nil {
		return errors.Join(err, perr)
	}
	return fmt.Errorf("sending again the note listing %d more alerts on summary ticket %s: %w (they are filed again)", len(again), name, err)
}

// title fills in the title format, on one line: an alert's description
// may hold line breaks. A title that comes out blank (a format of only
// placeholders the alert leaves empty, such as "{description}") is the
// default format's: every PSA refuses a ticket without a title, and the
// alert would get none until the routing changed.
func (e *Engine) title(c Customer, a Alert) string {
	sev := a.Severity
	if sev != "" {
		sev = strings.ToUpper(sev[:1]) + sev[1:]
	}
	fill := strings.NewReplacer(
		"{severity}", a.Severity, "{Severity}", sev, "{description}", a.Description, "{type}", a.Type,
		"{category}", a.Category, "{product}", a.Product, "{customer}", cmp.Or(c.CustomerName, c.CustomerID),
	)
	if t := strings.Join(strings.Fields(fill.Replace(e.routing.TitleFormat)), " "); t != "" {
		return t
	}
	return strings.Join(strings.Fields(fill.Replace(export.DefaultTitleFormat)), " ")
}

func (e *Engine) baseRequest(c Customer, r Record, severity string) psa.CreateTicketRequest {
	rt := e.routing
	return psa.CreateTicketRequest{
		CompanyID: c.CompanyID, ContractID: c.ContractID, ExternalRef: r.Ref, OpenedAt: e.now().UTC(),
		Routing: psa.TicketRouting{
			QueueID: rt.QueueID, StatusID: rt.NewStatusID, PriorityID: rt.Priorities[severity], SourceID: rt.SourceID,
			IssueTypeID: rt.IssueTypeID, SubIssueTypeID: rt.SubIssueTypeID, TicketTypeID: rt.TicketTypeID, CategoryID: rt.CategoryID,
		},
	}
}

// request is the create of an alert's ticket.
func (e *Engine) request(c Customer, a Alert, r Record) psa.CreateTicketRequest {
	req := e.baseRequest(c, r, a.Severity)
	req.Title = r.Title
	if !a.RaisedAt.IsZero() {
		req.OpenedAt = a.RaisedAt.UTC()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Sophos Central alert for %s\n\n", cmp.Or(c.CustomerName, c.CustomerID))
	fmt.Fprintf(&b, "Severity: %s\nType: %s\nCategory: %s\nProduct: %s\n", a.Severity, a.Type, a.Category, a.Product)
	if !a.RaisedAt.IsZero() {
		fmt.Fprintf(&b, "Raised: %s\n", a.RaisedAt.UTC().Format(time.RFC3339))
	}
	b.WriteString("Description: ")
	// What identifies the alert follows its description, which is cut in
	// the middle to leave room for it: the PSA's limit would cut the end.
	var tail strings.Builder
	if a.DeviceURL != "" {
		fmt.Fprintf(&tail, "\nDevice: %s", a.DeviceURL)
	}
	fmt.Fprintf(&tail, "\nAlert id: %s\n\nManaged by psa-sync ticket sync; do not edit the external reference (%s).", a.ID, r.Ref)
	req.Description = b.String() + cutMiddle(a.Description, psa.MaxTicketDescription-length(b.String())-length(tail.String())) + tail.String()
	return req
}

// maxSummaryLine is the longest alert description a summary lists, in
// characters: the list is for telling the alerts apart.
const maxSummaryLine = 300

// length is the length of s as the PSAs count it (psa.TextLength): the
// description and note limits are in UTF-16 code units.
func length(s string) int { return psa.TextLength(s) }

// cutMiddle shortens s to a length of at most n by leaving out its
// middle, and says how many characters were left out: the start and the
// end of an alert's description (what was found, and where) are kept.
func cutMiddle(s string, n int) string {
	l := length(s)
	if l <= n {
		return s
	}
	mark := func(left int) string { return fmt.Sprintf(" […%d characters left out…] ", left) }
	keep := max(n-length(mark(utf8.RuneCountInString(s))), 0)
	head, tail := psa.TextPrefix(s, keep-keep/2), psa.TextSuffix(s, keep/2)
	return head + mark(utf8.RuneCountInString(s[len(head):len(s)-len(tail)])) + tail
}

// listFitted joins lines, one a line, in a length of at most n:
// as many whole lines as fit, and a last line saying how many were left
// out, rather than a line cut in the middle.
func listFitted(lines []string, n int) string {
	all := strings.Join(lines, "\n")
	if length(all) <= n {
		return all
	}
	more := func(left int) string {
		return fmt.Sprintf("- and %d more alerts, not listed here: the list would be longer than the PSA takes", left)
	}
	used, k := 0, 0
	for k < len(lines) {
		next := used + length(lines[k]) + 1
		if next+length(more(len(lines)-k-1)) > n {
			break
		}
		used, k = next, k+1
	}
	return strings.Join(append(slices.Clip(lines[:k]), more(len(lines)-k)), "\n")
}
