package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// ErrNoTicketRouting is returned by TicketPass when the export has no
// ticket routing (no psa_ticket_routing resource): ticket sync is off.
var ErrNoTicketRouting = errors.New("daemon: the mapping export has no ticket routing (psa_ticket_routing); ticket sync is off")

// TicketPass runs one ticket pass (package tickets) with the running
// configuration and export, for the Sophos customers whose mapping has
// ticket_sync on. With dryRun, or while the export switches the integration
// off, it writes nothing and reports what it would do (Report.DryRun is set).
//
// Ticket passes are independent of usage passes (their records and intents
// are their own); callers run one ticket pass at a time (the ticket
// scheduler, ticketLoop, and POST /api/v1/tickets hold ticketMu).
func (d *Daemon) TicketPass(ctx context.Context, dryRun bool) (tickets.Report, error) {
	return d.ticketPass(ctx, dryRun, false)
}

// TicketPassForgettingOtherPSA is TicketPass that also deletes the
// customers' ticket records of another PSA system or instance, which a
// pass otherwise reports and leaves alone (tickets.Config.ForgetOtherPSA);
// a dry run reports those it would delete.
func (d *Daemon) TicketPassForgettingOtherPSA(ctx context.Context, dryRun bool) (tickets.Report, error) {
	return d.ticketPass(ctx, dryRun, true)
}

func (d *Daemon) ticketPass(ctx context.Context, dryRun, forgetOther bool) (tickets.Report, error) {
	snap := d.exp.Load()
	if snap == nil {
		return tickets.Report{}, errors.New("daemon: no valid mapping export loaded")
	}
	doc := snap.doc
	if doc.Tickets == nil {
		return tickets.Report{}, ErrNoTicketRouting
	}
	cfg := d.cfg.Load()
	cl := d.clients.Load()
	t, ok := cl.backend.(psa.Ticketer)
	if !ok {
		return tickets.Report{}, fmt.Errorf("daemon: the %s backend cannot create tickets", cfg.PSA.System)
	}
	src, ok := cl.source.(*sophos.Source)
	if !ok {
		return tickets.Report{}, fmt.Errorf("daemon: ticket sync reads Sophos Central alerts, but the configured source is %q", cfg.Source.Type)
	}
	// The engine follows only the ticket records of this PSA instance.
	// Autotask knows its tenant only after zone discovery, which a fresh
	// process has not made yet: one cheap read makes it.
	instance := cl.backend.Instance()
	if instance == "" {
		if err := cl.backend.Ping(ctx); err != nil {
			return tickets.Report{}, fmt.Errorf("daemon: finding out which %s instance psa-syncd is connected to: %w", cfg.PSA.System, err)
		}
		instance = cl.backend.Instance()
	}
	// Ticket writes stop at policies.ticket_budget_reserve, above the
	// usage passes' budget_reserve, so that a storm of alerts filed or
	// cleared at once leaves a usage pass of the same hour the budget
	// between the two: the same budget read (Autotask's), estimated from
	// the same process-wide request count, which counts the requests of a
	// usage pass running meanwhile.
	logger := d.logger.With("component", "tickets", "system", string(cfg.PSA.System))
	budget := usage.NewBudgetGate(cl.backend, cfg.Policies.TicketReserve(), "policies.ticket_budget_reserve", d.metrics.Usage, logger)
	// The pass starts with the customer the last one stopped at
	// (tickets.Config.StartWith), kept in the state database so that the
	// passes of psa-syncd tickets, one a process, take turns too.
	var resume tickets.CustomerKey
	if _, err := d.db.Snapshot(snapshotTicketResume, &resume); err != nil {
		return tickets.Report{}, err
	}
	eng, err := tickets.New(tickets.Config{
		System: cfg.PSA.System, Instance: instance, PSA: t, Store: d.db, Alerts: d.ticketAlertSource(src.Client()), Routing: *doc.Tickets,
		SettleTime: cfg.Policies.SettleTime, ActiveSince: d.becameActive(), ResolveAfter: cfg.Policies.TicketResolveAfter, Retention: cmp.Or(cfg.State.HistoryRetention, DefaultHistoryRetention), Now: d.now, Logger: logger, Budget: budget, Fence: d.db.CheckFence,
		ForgetOtherPSA: forgetOther, StartWith: resume,
	})
	if err != nil {
		return tickets.Report{}, err
	}
	if doc.Integration != nil && !doc.Integration.Enabled {
		dryRun = true
	}
	// A restored backup's ticket records lack what psa-syncd did since
	// the backup: a pass would send resolve notes again and take its own
	// closes for a technician's. Only a dry run goes on.
	held, err := d.restored()
	if err != nil {
		return tickets.Report{}, err
	}
	if held != nil {
		if !dryRun {
			return tickets.Report{}, held
		}
		d.logger.Warn("Ticket dry run on a restored backup: a pass that writes is refused until the restore is confirmed", "err", held)
	}
	customers, unread := d.ticketContracts(ctx, cl.backend, doc, ticketCustomers(doc), dryRun)
	rep, err := eng.Pass(ctx, customers, dryRun)
	for i, c := range rep.Customers {
		// A customer whose contracts could not be read had its tickets
		// filed all the same, on the contract the dates read before say,
		// or contract_id: it fails until a pass reads them.
		switch uerr := unread[ticketStatusKey(c.Customer.Source, c.Customer.CustomerID)]; {
		case uerr == nil:
		case c.Err != nil:
			rep.Customers[i].Err = fmt.Errorf("%w; %w", c.Err, uerr)
		default:
			rep.Customers[i].Err = uerr
		}
	}
	if held != nil {
		rep.WritesHeld = held.Error()
	}
	if !dryRun && err == nil && rep.ResumeAt != resume {
		if err := d.db.PutSnapshot(snapshotTicketResume, rep.ResumeAt); err != nil {
			// Only the order of the next pass depends on it.
			logger.Warn("Could not record which customer the next ticket pass starts with", "err", err)
		}
	}
	// A pass that read the budget leaves psa_sync_api_budget_remaining
	// at what it left of it.
	budget.Record()
	return rep, err
}

// becameActive returns when this instance became the active one, or the
// zero time before it did (a dry run of a standby, which settles nothing).
func (d *Daemon) becameActive() time.Time {
	if ns := d.activeSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// ticketAlertSource returns the ticket passes' alert source reading with
// c: the one of the passes before, while the Sophos client is the same
// (the configuration did not change it), so that the tenant list is not
// read every pass (tickets.SophosAlerts reads it again when a tenant is
// unknown or seems to have moved, and hourly).
func (d *Daemon) ticketAlertSource(c *sophos.Client) *tickets.SophosAlerts {
	d.ticketAlertsMu.Lock()
	defer d.ticketAlertsMu.Unlock()
	if d.ticketAlerts == nil || d.ticketAlertsOf != c {
		d.ticketAlerts, d.ticketAlertsOf = tickets.NewSophosAlerts(c, tickets.WithAlertsClock(d.now)), c
	}
	return d.ticketAlerts
}

// ticketCustomers returns the customers of doc that take part in ticket
// sync: Sophos customers whose mapping has ticket_sync on.
func ticketCustomers(doc *export.Document) []tickets.Customer {
	var customers []tickets.Customer
	for _, m := range doc.CustomerMappings {
		if m.TicketSync && m.Source == SourceSophos {
			customers = append(customers, tickets.Customer{
				Source: m.Source, CustomerID: m.CustomerID, CustomerName: m.CustomerName, CompanyID: m.CompanyID, ContractID: m.ContractID,
			})
		}
	}
	return customers
}

// ticketContracts returns customers with the contract each ticket is
// filed on: contract_id, or for a mapping that names a renewal
// (next_contract_id) the renewal once it has taken over. Tickets are
// filed today, so the renewal takes over on its day (the last usage pass's
// ContractRenewal.TakesOver, its start or the day after contract_id ends,
// in psa-syncd's time zone), also while usage_period "previous" still
// bills the month before on contract_id; or once a usage pass billed it.
// Filed on the ended contract, the labour logged on a ticket would roll up
// to it, or the PSA would refuse every create once it is made inactive.
// The usage pass's decision is read from the last plan (no request of its
// own): a customer it did not plan (no usage pass yet, or a plan of the
// mapping's other contracts) keeps contract_id, until a usage pass plans
// it. One with usage_sync off, which no usage pass plans, is decided from
// the two contracts' dates, which the ticket passes read once a day
// (unplannedRenewals); it also returns, by ticketStatusKey, the error of
// each customer whose read failed.
func (d *Daemon) ticketContracts(ctx context.Context, backend psa.Backend, doc *export.Document, customers []tickets.Customer,
	dryRun bool) ([]tickets.Customer, map[string]error) {
	next := map[string]export.CustomerMapping{}
	for _, m := range doc.CustomerMappings {
		if m.NextContractID != "" {
			next[ticketStatusKey(m.Source, m.CustomerID)] = m
		}
	}
	if len(next) == 0 {
		return customers, nil
	}
	if !d.plans.held() {
		// A process that has not restored the last plan (psa-syncd
		// tickets; psa-syncd run restores it at start-up).
		if err := d.restorePlan(); err != nil {
			d.logger.Warn("Could not read the last plan from the state database; tickets of customers with a renewal are filed on contract_id",
				"err", err)
		}
	}
	loc := time.UTC
	if _, l, err := d.activeSchedule(); err == nil {
		loc = l
	}
	today := d.now().In(loc).Format(time.DateOnly)
	renewed, planned := map[string]bool{}, map[string]bool{}
	for _, r := range d.plans.renewals() {
		m, ok := next[ticketStatusKey(r.Source, r.CustomerID)]
		if !ok || r.ContractID != m.ContractID || r.NextContractID != m.NextContractID {
			continue
		}
		planned[ticketStatusKey(r.Source, r.CustomerID)] = true
		if r.BillsTo == m.NextContractID || !r.TakesOver.IsZero() && r.TakesOver.Format(time.DateOnly) <= today {
			renewed[ticketStatusKey(r.Source, r.CustomerID)] = true
		}
	}
	var unplanned []export.CustomerMapping
	for _, c := range customers {
		if m, ok := next[ticketStatusKey(c.Source, c.CustomerID)]; ok && !m.UsageSync && !planned[ticketStatusKey(c.Source, c.CustomerID)] {
			unplanned = append(unplanned, m)
		}
	}
	var unread map[string]error
	if len(unplanned) > 0 {
		var unplannedRenewed map[string]bool
		unplannedRenewed, unread = d.unplannedRenewals(ctx, backend, unplanned, today, dryRun)
		maps.Copy(renewed, unplannedRenewed)
	}
	out := slices.Clone(customers)
	for i, c := range out {
		if key := ticketStatusKey(c.Source, c.CustomerID); renewed[key] {
			out[i].ContractID = next[key].NextContractID
		}
	}
	return out, unread
}

// maxLoggedCustomers bounds the customers a ticket pass logs at warn as
// failed: a PSA that refuses them all would otherwise log one line per
// customer. The others are logged at debug; their ticket statuses hold
// every error.
const maxLoggedCustomers = 20

// snapshotTickets is the ticketRecord of the daemon's ticket passes (the
// scheduled ones and those of POST /api/v1/tickets).
const snapshotTickets = "tickets"

// snapshotTicketResume is the customer the next ticket pass starts with
// (tickets.Report.ResumeAt): the first whose writes the last pass left for
// a later one.
const snapshotTicketResume = "ticket-resume"

// TicketStatus is a customer's ticket sync as of the daemon's last ticket
// pass (GET /api/v1/customers, the status page).
type TicketStatus struct {
	// Result is "succeeded" or "failed", or TicketResultOff for a
	// customer no ticket pass runs for.
	Result      string    `json:"result"`
	LastAttempt time.Time `json:"last_attempt"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	Error       string    `json:"error,omitempty"`
	// OpenTickets counts the customer's tickets psa-syncd created in the
	// PSA it is connected to that are open; Created, Updated, Closed and
	// Failed count what the last pass did.
	// Created includes the tickets the pass adopted: found in the PSA by
	// their reference after a create whose answer was lost.
	OpenTickets int `json:"open_tickets"`
	// LeftOpen counts, for a customer out of ticket sync
	// (TicketResultOff), the tickets that were open at its last pass:
	// psa-syncd no longer follows them (OpenTickets is 0), and they stay
	// open until a technician closes them or ticket sync is on again.
	LeftOpen int `json:"left_open,omitempty"`
	Created  int `json:"created"`
	Updated  int `json:"updated"`
	Closed   int `json:"closed"`
	Failed   int `json:"failed"`
	// Deferred counts the alerts the last pass left for a later one
	// before their ticket was filed, closed, noted or reopened: the pass
	// had created max_per_pass tickets, reached
	// policies.ticket_budget_reserve, or was throttled by the PSA.
	Deferred int `json:"deferred"`
	// Notices are what the last pass left alone, or took as done, and
	// why (a returning alert whose ticket a technician closed, a ticket
	// deleted in the PSA, a note that may be missing).
	Notices []string `json:"notices,omitempty"`
}

// TicketResultOff is the ticket Result of a customer that the loaded
// export leaves out of ticket sync (ticket_sync off, or its mapping
// removed): no ticket pass runs for it, so its last pass's result would
// show it failing for ever, and its notices advise what no pass does. Its
// last pass's error and counts stay; its open tickets stay open in the
// PSA, counted as LeftOpen (ticketsLeftOpen), not as OpenTickets, and
// no alert of it waits for a later pass (Deferred is 0).
const TicketResultOff = "off"

// ticketSyncOff returns st as the ticket status of a customer out of
// ticket sync (TicketResultOff): its last pass's notices give way to one
// saying which tickets psa-syncd no longer follows, if any.
func ticketSyncOff(st TicketStatus) TicketStatus {
	st.Result, st.Notices = TicketResultOff, nil
	st.LeftOpen, st.OpenTickets, st.Deferred = st.OpenTickets, 0, 0
	if st.LeftOpen > 0 {
		tickets := "tickets"
		if st.LeftOpen == 1 {
			tickets = "ticket"
		}
		st.Notices = []string{fmt.Sprintf("ticket sync is off for this customer: psa-syncd no longer follows the %d %s it left open at its last ticket pass (%s), "+
			"which are not closed when their alerts are resolved; close them in the PSA, or turn ticket sync on again and the passes close "+
			"those whose alerts were resolved (after policies.ticket_resolve_after)", st.LeftOpen, tickets, st.LastAttempt.UTC().Format(time.RFC3339))}
	}
	return st
}

// ticketRecord is kept in the state database across restarts: the totals
// behind the ticket metrics and each customer's TicketStatus.
type ticketRecord struct {
	// LastPass is when the last pass started, Finished when it finished.
	LastPass    time.Time `json:"last_pass"`
	Finished    time.Time `json:"finished"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Totals counts tickets by outcome (TicketOutcomes) since the state
	// database was created.
	Totals    map[string]int64         `json:"totals"`
	Customers map[string]*TicketStatus `json:"customers"`
	// Mappings are the customers' names and PSA ids as of their last
	// pass: a customer with ticket sync only has no usage status to name
	// it by once its mapping is removed (see Customers).
	Mappings map[string]ticketMapping `json:"mappings,omitempty"`
	// UnseenCreates is the last pass's tickets.Report.UnseenCreates, so
	// that psa_sync_ticket_unseen_creates is restored at start-up.
	UnseenCreates int `json:"unseen_creates,omitempty"`
}

// ticketMapping is what ticketRecord keeps of a customer's mapping.
type ticketMapping struct {
	CustomerName string `json:"customer_name,omitempty"`
	CompanyID    string `json:"company_id,omitempty"`
	ContractID   string `json:"contract_id,omitempty"`
}

func ticketStatusKey(source, customerID string) string { return source + "/" + customerID }

// TicketStatuses returns each customer's ticket status by source and
// customer id, as of the daemon's last ticket pass that wrote (scheduled,
// or through POST /api/v1/tickets).
func (d *Daemon) TicketStatuses() (map[string]TicketStatus, error) {
	rec, err := d.ticketRecord()
	if err != nil {
		return nil, err
	}
	out := make(map[string]TicketStatus, len(rec.Customers))
	for k, s := range rec.Customers {
		out[k] = *s
	}
	return out, nil
}

// ticketRecord reads the record of the daemon's ticket passes.
func (d *Daemon) ticketRecord() (ticketRecord, error) { return readTicketRecord(d.db) }

// readTicketRecord reads the record of the ticket passes from db.
func readTicketRecord(db *state.DB) (ticketRecord, error) {
	var rec ticketRecord
	if _, err := db.Snapshot(snapshotTickets, &rec); err != nil {
		return ticketRecord{}, fmt.Errorf("daemon: reading the ticket status: %w", err)
	}
	return rec, nil
}

// ticketSchedule returns the ticket schedule and time zone in force: the
// export's ticket routing wins over the config file's ticket_schedule; the
// time zone is the usage schedule's.
func (d *Daemon) ticketSchedule() (schedule.Schedule, *time.Location, error) {
	spec := d.cfg.Load().TicketSchedule
	tz := d.cfg.Load().Timezone
	if s := d.exp.Load(); s != nil {
		if s.doc.Tickets != nil && s.doc.Tickets.Schedule != "" {
			spec = s.doc.Tickets.Schedule
		}
		if s.doc.Integration != nil && s.doc.Integration.Timezone != "" {
			tz = s.doc.Integration.Timezone
		}
	}
	return parseSchedule("ticket schedule", cmp.Or(spec, DefaultTicketSchedule), tz)
}

// logTicketSync says, when an export is loaded, whether and when ticket
// passes run.
func (d *Daemon) logTicketSync(cfg *Config, doc *export.Document) {
	n := ticketSyncCount(doc)
	switch {
	case n == 0:
	case doc.Tickets == nil:
		d.logger.Warn("Ticket sync is on for some customers, but the mapping export has no ticket routing (psa_ticket_routing); no tickets are created",
			"customers", n, "revision", doc.Revision)
	case !doc.Tickets.Enabled:
		d.logger.Info("Ticket routing is disabled in the mapping export; no ticket passes run", "customers", n)
	default:
		spec := cmp.Or(doc.Tickets.Schedule, cfg.TicketSchedule, DefaultTicketSchedule)
		d.logger.Info("Ticket sync is on", "customers", n, "schedule", spec)
	}
}

// ticketLoop runs a ticket pass at each time of the ticket schedule until
// ctx is done, one at a time, with passCtx (which outlives ctx until the
// shutdown timeout). The first time is computed from the last ticket pass
// in the state database, so a restart neither postpones nor repeats it.
// Only the active instance runs it. psa_sync_ticket_next_run_timestamp_seconds
// keeps the time of a due pass until the pass has ended, so that one that
// never ends shows as overdue.
//
// A pass that left writes for policies.settle_time (tickets.Report.SettleAt:
// after a restart or a takeover, the creates, closes, notes and reopens the
// previous process may have had on their way, or the pass's own whose
// answer was lost) is followed by one more pass
// then, when that comes before the schedule's next time: with an hourly or
// daily schedule they would otherwise wait that long. The schedule's times
// stay as they were. So is a pass requested through the API
// (settleTicketsAt).
func (d *Daemon) ticketLoop(ctx, passCtx context.Context) {
	base := d.now()
	var settleAt time.Time
	var rec ticketRecord
	if ok, err := d.db.Snapshot(snapshotTickets, &rec); err != nil {
		d.logger.Warn("Cannot read the last ticket pass for the ticket schedule", "err", err)
	} else if ok && !rec.LastPass.IsZero() {
		base = rec.LastPass
	}
	var last string
	for {
		if at := d.takeTicketSettle(); !at.IsZero() && (settleAt.IsZero() || at.Before(settleAt)) {
			settleAt = at
		}
		sched, loc, err := d.ticketSchedule()
		var wait <-chan time.Time
		var timer *time.Timer
		var next time.Time
		// followUp is set when next is settleAt, not the schedule's.
		followUp := false
		if err != nil {
			d.logger.Error("No valid ticket schedule; no ticket passes run", "err", err)
			d.metrics.TicketNextRunTimestamp.Set(0)
		} else {
			next = sched.Next(base, loc)
			if !settleAt.IsZero() && settleAt.Before(next) {
				next, followUp = settleAt, true
			}
			d.metrics.TicketNextRunTimestamp.Set(unixSeconds(next))
			if desc := sched.String() + " " + loc.String(); desc != last {
				d.logger.Debug("Ticket schedule", "schedule", sched.String(), "timezone", loc.String(), "next", next.Format(time.RFC3339))
				last = desc
			}
			timer = time.NewTimer(max(0, next.Sub(d.now())))
			wait = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			d.metrics.TicketNextRunTimestamp.Set(0)
			return
		case <-d.ticketScheduleChanged:
		case <-wait:
			settleAt = d.scheduledTicketPass(passCtx)
			if followUp {
				// The schedule's next time is still to come.
				break
			}
			base = next
			if now := d.now(); now.After(base) {
				base = now
			}
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// ticketPassWrites reports whether a ticket pass with doc writes: the
// export has an enabled ticket routing, the integration is on and some
// customer has ticket sync on. Only such passes are scheduled, and
// recorded.
func ticketPassWrites(doc *export.Document) bool {
	return doc.Tickets != nil && doc.Tickets.Enabled && (doc.Integration == nil || doc.Integration.Enabled) && ticketSyncCount(doc) > 0
}

// ReleaseTicketCreate records an operator's answer for the ticket create
// with reference ref that settle keeps open because its search by
// reference cannot be trusted (the customer's error names it): not posted,
// no such ticket is in the PSA. The next ticket pass files the alert
// again (state.DB.ReleaseTicketCreate). It waits for a running ticket
// pass to end, as long as ctx lives, and makes no PSA request. who, when
// the request named a user (basic_auth_users), is recorded before note. A
// standby refuses it (a *StandbyError), and so does an instance that lost
// the leadership lock before it noticed (a *NoLongerActiveError).
func (d *Daemon) ReleaseTicketCreate(ctx context.Context, ref, note, who string) (tickets.Record, error) {
	if err := lockWithin(ctx, &d.ticketMu); err != nil {
		return tickets.Record{}, fmt.Errorf("daemon: ticket create %s not resolved: a ticket pass is running, and waiting for it to end was given up: %w", ref, err)
	}
	defer d.ticketMu.Unlock()
	if !d.leading.Load() {
		return tickets.Record{}, &StandbyError{Active: d.activeInstance()}
	}
	if who = strings.TrimSpace(who); who != "" {
		note = strings.TrimSuffix("user "+who+": "+strings.TrimSpace(note), ": ")
	}
	r, err := d.db.ReleaseTicketCreate(ref, note, d.now())
	return r, d.noLongerActive(err)
}

// scheduledTicketPass runs one ticket pass when the export has an enabled
// ticket routing, the integration is on and some customer has ticket sync
// on, and records its outcome in the metrics and the state database. It
// returns the pass's tickets.Report.SettleAt: zero when it left no write
// for policies.settle_time, or did not run.
func (d *Daemon) scheduledTicketPass(ctx context.Context) time.Time {
	snap := d.exp.Load()
	if snap == nil {
		d.logger.Warn("Skipping ticket pass: no valid mapping export loaded")
		return time.Time{}
	}
	if !ticketPassWrites(snap.doc) {
		return time.Time{}
	}
	d.ticketMu.Lock()
	defer d.ticketMu.Unlock()
	rep, err := d.recordedTicketPass(ctx, snap.doc, false)
	if err != nil {
		return time.Time{}
	}
	if !rep.SettleAt.IsZero() {
		d.logger.Info("Ticket writes left for policies.settle_time; one more ticket pass runs then", "at", rep.SettleAt)
	}
	return rep.SettleAt
}

// settleTicketsAt has the ticket scheduler run one more pass at at, when
// that comes before the schedule's next time, as after a scheduled pass
// that left writes for policies.settle_time: a pass requested through the
// API (after a restart or a takeover, or right after a write whose answer
// was lost) leaves them so too, and with an hourly or daily schedule they
// would otherwise wait that long.
func (d *Daemon) settleTicketsAt(at time.Time) {
	d.ticketSettleMu.Lock()
	if d.ticketSettle.IsZero() || at.Before(d.ticketSettle) {
		d.ticketSettle = at
	}
	d.ticketSettleMu.Unlock()
	select {
	case d.ticketScheduleChanged <- struct{}{}:
	default:
	}
}

// takeTicketSettle returns the time settleTicketsAt asked for, and forgets
// it.
func (d *Daemon) takeTicketSettle() time.Time {
	d.ticketSettleMu.Lock()
	defer d.ticketSettleMu.Unlock()
	at := d.ticketSettle
	d.ticketSettle = time.Time{}
	return at
}

// whileActive returns ctx, also ended with errLostLeadership once this
// instance loses the state database's leadership lock, as runActive ends
// the scheduled passes' context, and the function that releases it. A
// ticket pass requested through the API runs with the request's context,
// which a lost lock does not end: the pass would go on until the process
// exits, its writes refused by the lease or the database, but a write
// already on its way (a PSA client waiting out a Retry-After of up to 5
// minutes before sending it again) would still be sent, possibly after the
// new active instance settled it (policies.settle_time after the
// takeover), and sent twice. Ended, the client's wait ends unsent.
func (d *Daemon) whileActive(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	lead := d.lead
	if lead == nil {
		return ctx, func() { cancel(nil) }
	}
	stop := make(chan struct{})
	go func() {
		select {
		case <-lead.Lost():
			cancel(errLostLeadership)
		case <-stop:
		}
	}()
	return ctx, func() {
		close(stop)
		cancel(nil)
	}
}

// recordedTicketPass runs a ticket pass that writes, for the customers of
// doc (forgetting their records of another PSA with forgetOther), and
// records its outcome in the metrics, the state database and the log, as
// scheduled passes and POST /api/v1/tickets do. The caller holds
// ticketMu. It returns the pass's report and error; a pass stopped because
// another instance became active (a record refused with
// tickets.ErrNotLeader, or ctx ended with errLostLeadership) is not
// recorded.
func (d *Daemon) recordedTicketPass(ctx context.Context, doc *export.Document, forgetOther bool) (tickets.Report, error) {
	start := d.now()
	rep, err := d.ticketPass(ctx, false, forgetOther)
	if cause := context.Cause(ctx); errors.Is(cause, errLostLeadership) {
		// The lock check stopped the pass (its context) before it met a
		// record the state database refuses, maybe in its last customer,
		// which the pass reports without an error of its own.
		if err == nil {
			err = cause
		} else {
			err = fmt.Errorf("%w: %w", err, cause)
		}
	}
	if errors.Is(err, tickets.ErrNotLeader) || errors.Is(err, errLostLeadership) {
		// The state database refused a ticket record, or the lock check
		// stopped the pass: another instance is active. The pass stopped
		// before sending anything more, and its outcome is not recorded
		// over the active instance's.
		d.logger.Error("Ticket pass stopped: this psa-syncd is no longer the active instance, so it sends no more ticket "+
			"writes; the active instance settles what this pass recorded", "err", err)
		return rep, err
	}
	if err != nil {
		// The pass failed before or while it went through the customers
		// (settling earlier creates, building the engine): the customers it
		// did not reach failed with it.
		reached := map[string]bool{}
		for _, c := range rep.Customers {
			reached[ticketStatusKey(c.Customer.Source, c.Customer.CustomerID)] = true
		}
		for _, c := range ticketCustomers(doc) {
			if !reached[ticketStatusKey(c.Source, c.CustomerID)] {
				rep.Customers = append(rep.Customers, tickets.CustomerReport{Customer: c, Err: err})
			}
		}
	}
	if err := d.recordTicketPass(rep, err, start); err != nil {
		d.logger.Error("Error recording the ticket pass", "err", err)
	}
	if err == nil {
		// Which customers failed and why, as a usage pass logs its
		// customers not synced: the first maxLoggedCustomers at warn, the
		// others at debug; the line below has only the totals. (A pass
		// that failed as a whole says why once.)
		failed := 0
		for _, c := range rep.Customers {
			if c.Err != nil {
				level := slog.LevelWarn
				if failed++; failed > maxLoggedCustomers {
					level = slog.LevelDebug
				}
				d.logger.Log(ctx, level, "Ticket pass failed for a customer", "source", c.Customer.Source, "customer", c.Customer.CustomerID,
					"name", c.Customer.CustomerName, "company", c.Customer.CompanyID, "err", c.Err)
			}
		}
		if failed > maxLoggedCustomers {
			d.logger.Warn("More customers failed the ticket pass; GET /api/v1/customers lists their tickets' errors", "customers", failed,
				"not_logged", failed-maxLoggedCustomers)
		}
	}
	t := rep.Totals()
	switch {
	case err != nil:
		d.logger.Error("Ticket pass failed", "err", err)
	case t.Failed > 0 || slices.ContainsFunc(rep.Customers, func(c tickets.CustomerReport) bool { return c.Err != nil }):
		d.logger.Warn("Ticket pass finished with failures", "created", t.Created, "closed", t.Closed, "failed", t.Failed, "deferred", t.Deferred)
	case rep.BudgetUnknown:
		d.logger.Warn("Ticket pass stopped writing: the PSA's hourly API budget could not be read, so the pass does not know how far "+
			"it is from policies.ticket_budget_reserve; the tickets still to file, close, note or reopen wait for a later pass "+
			"(psa_sync_api_budget_unknown; psa-syncd check tests the PSA)",
			"reserve", d.cfg.Load().Policies.TicketReserve(), "created", t.Created, "adopted", t.Adopted+rep.OtherAdopted, "closed", t.Closed,
			"noted", t.Noted, "reopened", t.Reopened, "deferred", t.Deferred, "settled", rep.Settled)
	case rep.BudgetLimited:
		d.logger.Warn("Ticket pass stopped writing: the PSA's hourly API budget reached policies.ticket_budget_reserve, "+
			"which keeps the rest for the usage passes; the tickets still to file, close, note or reopen wait for a later pass",
			"reserve", d.cfg.Load().Policies.TicketReserve(), "created", t.Created, "adopted", t.Adopted+rep.OtherAdopted, "closed", t.Closed,
			"noted", t.Noted, "reopened", t.Reopened, "deferred", t.Deferred, "settled", rep.Settled)
	case t.Created+t.Adopted+rep.OtherAdopted+t.Closed+t.Noted+t.Reopened > 0:
		d.logger.Info("Ticket pass finished", "created", t.Created, "adopted", t.Adopted+rep.OtherAdopted, "closed", t.Closed, "noted", t.Noted, "reopened", t.Reopened,
			"summarised", t.Summarised, "deferred", t.Deferred, "settled", rep.Settled)
	}
	return rep, err
}

// recordTicketPass updates the ticket metrics and the stored ticket status
// with the outcome of a pass that started at start.
func (d *Daemon) recordTicketPass(rep tickets.Report, passErr error, start time.Time) error {
	var rec ticketRecord
	if _, err := d.db.Snapshot(snapshotTickets, &rec); err != nil {
		return err
	}
	if rec.Totals == nil {
		rec.Totals = map[string]int64{}
	}
	if rec.Customers == nil {
		rec.Customers = map[string]*TicketStatus{}
	}
	if rec.Mappings == nil {
		rec.Mappings = map[string]ticketMapping{}
	}
	now := d.now().UTC()
	ok := passErr == nil
	rec.UnseenCreates = rep.UnseenCreates
	// The open tickets are those of the PSA the pass ran against: the
	// records of another system or instance (after a switch of PSA with
	// the same state database) are ones the pass leaves alone.
	system := d.cfg.Load().PSA.System
	instance := d.clients.Load().backend.Instance()
	for _, c := range rep.Customers {
		key := ticketStatusKey(c.Customer.Source, c.Customer.CustomerID)
		st := rec.Customers[key]
		if st == nil {
			st = &TicketStatus{}
			rec.Customers[key] = st
		}
		rec.Mappings[key] = ticketMapping{CustomerName: c.Customer.CustomerName, CompanyID: c.Customer.CompanyID, ContractID: c.Customer.ContractID}
		st.LastAttempt = now
		// An adopted ticket is one psa-syncd created whose answer was lost
		// (or one made by hand with its reference): created all the same.
		st.Created, st.Updated, st.Closed, st.Failed = c.Created+c.Adopted, c.Noted+c.Reopened, c.Closed, c.Failed
		st.Deferred = c.Deferred
		st.Notices = c.Notices
		st.Result, st.Error = "succeeded", ""
		if c.Err != nil || c.Failed > 0 {
			ok = false
			st.Result = "failed"
			if c.Err != nil {
				// Served without credentials (GET /api/v1/customers,
				// the status page): a failure of the state database
				// names nothing of it; recordedTicketPass logs c.Err.
				st.Error = state.PublicText(c.Err)
			} else {
				st.Error = fmt.Sprintf("%d ticket operations failed; they are retried next pass", c.Failed)
			}
		} else {
			st.LastSuccess = now
		}
		open, err := d.db.CountFollowedTickets(c.Customer.Source, c.Customer.CustomerID, system, instance)
		if err != nil {
			return err
		}
		st.OpenTickets = open
	}
	t := rep.Totals()
	created := t.Created + t.Adopted + rep.OtherAdopted
	for outcome, n := range map[string]int{"created": created, "updated": t.Noted + t.Reopened, "closed": t.Closed, "failed": t.Failed} {
		rec.Totals[outcome] += int64(n)
		d.metrics.TicketsTotal.WithLabelValues(outcome).Add(float64(n))
	}
	rec.LastPass, rec.Finished = start.UTC(), now
	if ok && !rep.RateLimited && !rep.BudgetLimited {
		rec.LastSuccess = now
	}
	if err := d.db.PutSnapshot(snapshotTickets, rec); err != nil {
		return err
	}
	d.setTicketGauges(rec)
	return nil
}

// setTicketGauges sets the ticket gauges from rec. The open tickets and
// the alerts deferred are counted over the loaded export's customers with ticket sync on (over
// every customer of rec before an export is loaded): a customer whose
// ticket sync was turned off, or who left the export, keeps its status in
// rec but leaves the gauge.
func (d *Daemon) setTicketGauges(rec ticketRecord) {
	var on map[string]bool
	if snap := d.exp.Load(); snap != nil {
		on = map[string]bool{}
		for _, c := range ticketCustomers(snap.doc) {
			on[ticketStatusKey(c.Source, c.CustomerID)] = true
		}
	}
	open, deferred := 0, 0
	for key, s := range rec.Customers {
		if on == nil || on[key] {
			open += s.OpenTickets
			deferred += s.Deferred
		}
	}
	d.metrics.OpenTickets.Set(float64(open))
	d.metrics.TicketDeferred.Set(float64(deferred))
	d.metrics.TicketUnseenCreates.Set(float64(rec.UnseenCreates))
	if !rec.Finished.IsZero() {
		d.metrics.TicketLastPassTimestamp.Set(float64(rec.Finished.UnixNano()) / 1e9)
	}
	if !rec.LastSuccess.IsZero() {
		d.metrics.TicketLastSuccessTimestamp.Set(float64(rec.LastSuccess.UnixNano()) / 1e9)
	}
}

// refreshTicketGauges recomputes the ticket gauges from the stored ticket
// record for the loaded export. A running ticket pass sets them when it
// ends, with the export loaded by then: they are recomputed after it, so
// that neither overwrites the other.
func (d *Daemon) refreshTicketGauges() {
	nowOrAfter(&d.ticketMu, func() {
		var rec ticketRecord
		if ok, err := d.db.Snapshot(snapshotTickets, &rec); err != nil {
			d.logger.Warn("Could not read the ticket status to recompute the ticket gauges", "err", err)
		} else if ok {
			d.setTicketGauges(rec)
		}
	})
}

// restoreTicketMetrics sets the ticket metrics from the state database at
// start-up, so that a restart neither resets the counters nor hides a
// failing ticket sync. The counters are restored once per process: a
// standby that takes over (RestoreMetrics again) keeps counting from the
// totals it restored when it started. Adding the stored totals again
// counted the whole history twice, and catching up to them would count
// the previous active instance's tickets twice in a sum of increase()
// over the instances (the dashboard's), once on each instance.
func (d *Daemon) restoreTicketMetrics() error {
	var rec ticketRecord
	ok, err := d.db.Snapshot(snapshotTickets, &rec)
	if err != nil {
		return err
	}
	if !d.ticketTotalsRestored.Swap(true) {
		for _, o := range TicketOutcomes {
			d.metrics.TicketsTotal.WithLabelValues(o).Add(float64(rec.Totals[o]))
		}
	}
	if ok {
		d.setTicketGauges(rec)
	}
	return nil
}
