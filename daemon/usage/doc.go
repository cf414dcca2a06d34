// Package usage is psa-syncd's usage engine: one usage pass turns a mapping
// export (package psa/export) and a usage source's figures (package
// daemon/source) into the quantities of the mapped PSA contract lines,
// through the neutral psa.Backend of the PSA.
//
// Engine is the pass: Plan computes the changes without writing; Sync
// writes them and records the run, the customer statuses and the metrics;
// Reconcile settles writes whose outcome is unknown; ResolveIntent records
// an operator's answer for one that cannot be settled by reading the PSA.
// Policies decide how usage becomes quantities. Metrics are the collectors
// the engine sets, registered on the caller's registry by NewMetrics. The
// state (runs, customer statuses, intents and the ledger) is a *state.DB.
// The package knows nothing of configuration files, scheduling or HTTP:
// package daemon runs it.
//
// # A pass
//
// The billing period is the calendar month that contains the pass's time in
// the configured time zone, or with policies.usage_period: previous the
// month before it (for vendors that publish a month's usage once it has
// ended); the effective date policies count from it. Usage rows are summed per (customer, product);
// the products mapped to one service add up to that service's quantity.
// Usage of a customer without a customer mapping, of a product without a
// product mapping, and usage that belongs to no customer is reported
// (Plan.Unmapped, psa_sync_unmapped) and never written anywhere, and so
// are the customers and products without a mapping whose only rows cannot
// be read (Unmapped.UnreadableCustomers, UnreadableProducts); those
// whose rows are all quantity 0 (a trial tenant) leave nothing unbilled and
// are listed apart (Unmapped.ZeroCustomers, ZeroProducts, and ZeroUnassigned
// for a product's usage of no customer), not counted. A product
// whose mapping has sync_enabled = false is "sync off", not unmapped: it is
// listed in Unmapped.SyncOff and its usage is ignored on purpose; so is a
// customer with usage whose mapping has usage_sync = false
// (Unmapped.SyncOffCustomers). Unmapped usage under an id that differs
// from a mapped customer's or product's only in case, spaces, invisible
// characters or leading zeros (a spreadsheet's "731" for "00731"), or,
// for an id a source decoded from a code page (source.Record.Codepage),
// only in its letters outside ASCII (a file of another code page), fails
// the mapped customer it most likely belongs to, naming
// both spellings, rather than billing it without that usage. A mapped
// customer (usage sync on) that a report with rows names nowhere while a
// mapped line of its contract is above 0 (a tenant removed or moved to
// another partner, a customer_id that never matches) is listed in
// Unmapped.Unreported and counted in psa_sync_customers_unreported, and
// its lines' reasons say so: with missing_usage: keep they would otherwise
// go on billing with nothing to notice. When the source lists its
// customers (source.Report.CustomersListed: Sophos's tenant list), each
// says whether the vendor still lists it (UnreportedCustomer.Vendor). A
// line psa-syncd set above 0 that no mapping makes it write any more (a
// product mapping removed or re-pointed, a customer mapping removed)
// goes on invoicing: each pass lists it from the ledger in
// Unmapped.Orphaned (Engine.findOrphans) and counts it in
// psa_sync_orphaned_lines.
//
// Usage that the source could not read (source.Problem.Unreadable: a
// quantity that is not a number, a sum past the int64 range) never lowers a
// quantity: the customer it belongs to fails the pass with the file and row
// named, and when the row does not tell whose it is the whole pass fails.
// Rows of products not mapped with sync on are only reported.
//
// For every customer with usage sync on, the current quantities of all
// involved contracts are read in bulk as of the effective date (the policy:
// the first day of the billing month, today, or the first day of the next
// month). A mapped line without usage this period is set to 0 or left alone
// (policies.missing_usage); when the source reports no usage at all, or
// none that feeds a mapped line, lines are left alone for that pass,
// because an empty month usually means the vendor has no data yet, and a
// report of only unknown customers or products is a problem with the
// report, not every customer stopping at once. A decrease larger than
// policies.max_decrease_percent, or an increase larger than
// policies.max_increase_percent of a line above 0 (off by default), is held
// for review until a pass runs with PassOptions.Approve, and so are the
// increases that surge (policies.surge_lines_percent: more than half of
// the lines above 0 rising by more than half at once, in the pass or one
// service, as when a vendor counts twice; HoldSurge). A line held for a surge stays
// held in later passes (of the next month too) while it still surges, however few
// lines surge by then (the state database keeps the lines held), and a
// pass over all customers with PassOptions.ApproveSurge, the review code
// of Plan.Surge, releases every line held for the surge when it holds
// exactly the lines and units reviewed, and none otherwise. An approval of one line may name the units that were
// reviewed (PassOptions.ApproveUnits): the hold is then released only when
// the approving pass computes those units, so a change that grew after the
// review stays held; an approval without units applies whatever the
// approving pass computes. A line whose units change again later in the billing
// month (psa.ContractLine.LaterChanges: a mid-period Autotask adjustment
// after the effective date) is held too, unless it is left alone for lack of
// usage, even when it matches on the effective date, because a delta from
// the effective date would mis-bill the rest of the month; Approve does not
// release it. A ConnectWise line with an addition of the product that
// starts after the effective date (a LaterChanges entry with a LineID) is
// held the same way when it would be written, or when that addition starts
// in the same month: changing the addition bills from its start, and
// another addition from the effective date would bill along with it. A line whose billing period at the effective date is already
// approved and posted, that is invoiced (psa.ContractLine.Posted: the
// Autotask unit row's approveAndPostDate, or that of a later row posted out
// of order, into which an adjustment carries too), is held when it would change, in
// a plan as in a pass, and Approve does not release it either: an
// adjustment into an invoiced period is a proration that cannot be
// reversed. Its reason names the period and suggests
// policies.effective_date: next_period_start. A line the PSA's read does not
// show, which the pass would add, and which psa-syncd's ledger says it set
// above 0 in force at the effective date, is held (HoldVanished), in a plan
// as in a pass: a read that cannot see a line (a ConnectWise security role,
// an Autotask security level, a cache serving an old page) answers without
// it and without an error, and adding it again would double it. Only an
// approval of that one line (PassOptions.ApproveService) adds it again.
// An Autotask line the pass would adjust whose read shows the units from
// before psa-syncd's last write of it, in force at the effective date
// (the ledger's before, not its after), is held (HoldStaleRead) alike: an
// adjustment is a delta computed from the read, and a read that predates
// that write (a cache serving an old page) would apply it twice. A line
// the pass would add to a customer's contract, or raise there, is held
// (HoldMoved) alike when psa-syncd's ledger says it set the customer's
// line of the service above 0 on another contract, not its renewal pair,
// has not set it to 0 since, and (for a raise) set it after it last set
// this one above 0: the customer's mapping moved (or moved back), the
// other contract still bills that line, and this one would bill the usage
// twice. On Autotask and ConnectWise a pass that would hold so reads the
// contracts the customers of the chunk left, in one bulk read of lines
// and one of records per 500 of them, and writes the line instead when
// the other contract ended before the effective date or its line reads 0
// (where psa-syncd's last write of it set it from another quantity than 0,
// or added it). Where the contract the customer left is another
// customer's now (two customers swapped contracts), the pass writes the
// line in a second round of writes, once it has set that customer's line
// there (Engine.writeAwaited); where it did not (failed, no answer, not
// to be written), the line is held, the contract named so and the
// operator told not to set it to 0.
// A line of a service psa-syncd never set above 0 for the customer
// is held (HoldPreviousService) alike when the ledger says psa-syncd set
// the customer's line of a service that no product mapping of the source
// names any more above 0, still in force (and, where the pass read it, the
// PSA shows it above 0): a product mapping was re-pointed to a new
// service, and the old line still bills; and so is a line psa-syncd set
// before that the PSA reads at 0 or no line, while such a line psa-syncd
// set after it bills (the product mapping pointed back). A
// line that products of another usage source (with sync on)
// also feed, on a contract one of that source's customers uses, fails and is
// not written: one psa-syncd per source would each set it to its own usage.
// Only lines that differ are written, as many at once as the PSA client
// keeps in flight (policies.write_concurrency; 0 follows
// psa.ConcurrencyLimiter), and writing stops (the run ends as partial) when
// the PSA's hourly request budget falls to policies.budget_reserve, or when
// the PSA refuses a write for its rate limit once the client has given up
// on it (the hourly limit, a Retry-After longer than a client waits, or
// its retries used up): every further write would be refused too. Writing
// stops as well when writes to write_concurrency + 2 contracts fail in a
// row for a reason that concerns the whole PSA (refused credentials, an
// outage, a timeout, a lost or unusable answer: not a line's own not
// found, refusal or conflict; a contract whose lines all fail counts
// once); the lines not sent then fail, naming that failure, and the next
// pass writes them. The
// budget is read before the first write and then estimated from this
// process's requests (Metrics.Requests); it is read again, by one writer
// while the others go on, only when the estimate nears the reserve or after
// 1,000 writes, because other integrations spend the same budget.
//
// Before anything is written to a contract that has no line the pass could
// read (ReadLines cannot tell an unknown contract from an empty one; Kaseya
// BMS has no read at all, only the ledger), the contract is verified: it
// exists, belongs to the mapping's company, is active and is recurring. The
// contracts are read in bulk (psa.BulkReader), not one by one, and the
// result is kept in the state database (contract_checks): for 24 hours,
// and as long as the mapping names the same company, later passes write to
// the contract without looking it up again. A contract that fails the
// check fails its customer with a hint and is checked again next pass.
//
// Before that, every pass knows the record of every mapped contract, read
// in bulk once a day and kept in memory (ContractTerms, shared by the
// Engines of one process; the contract check reuses what a pass read): a
// contract that fails the same check since it was mapped (made inactive,
// moved to another company; ConnectWise's status is left to its own check
// before the writes), that ended before the pass's effective date, or that
// starts after it, fails its customer as stale before its lines are read,
// and nothing is written to it; contracts ending in the month of the
// effective date or the next are listed in Plan.ContractsEnding and
// counted in psa_sync_contracts_ending, so that the renewal's mapping is
// applied before the end date. A mapping that names a renewal
// (next_contract_id) bills it from its start, or from the day after
// contract_id's end, on (Engine.selectContract): the pass then runs on a
// copy of the mapping that names the renewal, and contract_id is not
// reported as ending; Plan.Renewals says which contract each such
// customer bills to.
//
// A backend whose writes copy details of the catalog service they write
// (psa.ServicePreloader: a Kaseya BMS line carries the service's name,
// description, price and cost) reads the services of the pass's writes
// before the first one, in as few requests as its API allows, and what it
// read is kept in the state database (catalog_services) for the next
// process, which takes it for the backend's time to live (10 minutes for
// Kaseya BMS) and never after: a price changed in the PSA is posted at most
// that late.
//
// # Safety
//
// Every write is recorded as an intent in the state database before it is
// sent and closed after it, and the ledger gets the change in the same
// transaction. A write whose outcome is unknown (a lost answer, a crash, a
// kill) leaves its intent open; Reconcile, which Sync runs first, re-reads
// the line and closes the intent as done, failed or review. A line whose
// intent is still open is never written, so an Autotask adjustment, a
// ConnectWise addition or a Kaseya BMS line is never posted twice. One
// customer's failure never stops the others; each customer's status carries
// the error and a hint for the fix.
//
// The ledger, the intents and the contract checks name contracts and
// services by id, which two tenants of one PSA system may share (an
// Autotask sandbox and its production). The state database records, per
// system, the instance whose usage it holds (state.DB.BindInstance, at the
// first pass that writes; a database from before adopts it), and Sync,
// Plan and Reconcile connected to another instance (export.SameInstance)
// are refused with an *InstanceMismatchError.
//
// The writes of a pass run as a pipeline, so that the PSA never waits for
// the disk: one goroutine records the intents of the next writes in one
// batch of at least one per sender (state.DB.OpenIntentBatch: committed and
// fsynced before any of their writes is sent), and
// policies.write_concurrency senders send them. A sender closes an intent
// with state.DB.CompleteIntentDeferred, which rides with the next batch's
// commit; a close lost in a crash leaves the intent open, to be settled
// like a lost answer. At most 3 × write_concurrency intents wait for a
// sender, which bounds the intents a
// crash leaves open for writes never sent; for Kaseya BMS, where each one
// needs an operator's resolve, at most write_concurrency. When the pass stops writing (cancelled, the
// budget reached the reserve, the PSA refused a write for its rate limit
// or failed the writes in a row), the intents of the writes not sent are
// closed as failed. The contracts whose writes failed for such a reason are
// kept across passes (FailingContracts, and in the state database for the
// passes of a process that starts later) and written last, and those that
// failed while other writes succeeded stop no later pass, so that a few
// contracts that always fail cannot stop the other customers' writes. The statuses of a pass are read in one query and
// stored in batches (state.DB.PutCustomerStatusBatch): a customer whose
// lines are all unchanged is settled as soon as they are decided, and its
// status is stored, with those of the chunk's other settled customers,
// while the next chunks are read; the others' statuses follow in one batch
// at the end of the pass. The statuses stored while reading are the ones
// the pass reports, with the time each was decided as its last attempt.
//
// # PSA systems
//
// The engine talks to every PSA through psa.Backend; what "set a line to a
// quantity" means differs per system:
//
//   - Autotask: the current units are read in bulk (ContractServiceUnits of
//     the period containing the effective date, one query per 500
//     contracts, three at once as Autotask allows) and a change is posted as a
//     ContractServiceAdjustment of desired minus current, naming the line
//     read (contractServiceID). Adjustments are create-only, so an unknown
//     outcome is settled by re-reading the units. A line the read did not
//     show is added only to a contract that does not hold the service yet
//     (one query per new line); one whose unit row the read missed fails
//     the customer, rather than get the whole quantity added to its units. A mapped service on a
//     contract more than once (a repeat service: two contract service
//     lines) fails the customer with a hint naming the lines, and nothing
//     is written to the contract (psa.ServiceLineReader).
//     The tenant's hourly budget (ThresholdInformation) is read before the
//     first write and estimated from there (see above);
//     policies.budget_reserve stops the pass before it runs out.
//   - ConnectWise PSA: the current quantity is the active addition of the
//     service's catalog item on the agreement. A change replaces the
//     addition's quantity in place (an absolute PATCH, safe to retry); a
//     missing addition is created (billable, from the effective date).
//     A pass reads each agreement's additions once (ConnectWise has no read
//     of many agreements' additions), as many agreements at once as the
//     client keeps in flight, and the status of only the agreements it will
//     write to: 100 a request, once, before the first write
//     (psa.WriteChecker), then again only for agreements whose status is
//     older than two minutes when their writes come. A pass that changes
//     nothing reads nothing but the additions (and, once a day, the mapped
//     agreements' records: see above). Problems of one agreement
//     fail only its customer: a cancelled or expired agreement that the
//     pass would write to marks the customer mapping stale ("map the
//     customer to an active agreement in Terraform
//     (psa_customer_mapping.contract_id) and apply"), and nothing is
//     written to it; two active additions of one mapped product are an
//     ambiguity that names both additions and is never resolved by
//     guessing; a fractional quantity of a mapped product must be corrected
//     in ConnectWise. Additions of products the pass does not sync (labour
//     billed in half hours, two additions of a rack kit) are left alone and
//     stop nothing (psa.ServiceLineReader). ConnectWise reports no request
//     budget; 429 answers are retried after Retry-After.
//   - Kaseya BMS: see below. BMS reports no request budget either; its
//     client keeps to 1,500 calls per hour per endpoint by itself, and a
//     pass that reaches the limit stops writing and ends as partial. The
//     contracts of a first pass are verified in a few pages (the contract
//     lookup by ids, the contract summary and the account lookup), and
//     later passes, whose contracts have ledger lines or a recorded check,
//     send only the changed lines.
//
// # Kaseya BMS: the ledger is the record of current units
//
// The Kaseya BMS v2 API has no way to read the units of a contract line
// and no way to change them in place: a new recurring-service line with
// Units and an EffectiveDate can only be added. For operators this means:
//
//   - psa-syncd's own ledger (in the state database) is the only record of
//     what a line holds. A pass compares usage with the quantity psa-syncd
//     set that is in force at the effective date (the latest-dated change on
//     or before it); when they are equal nothing is sent, and when they differ
//     exactly one new line with the new units and the effective date is
//     posted. Back up the state directory: without it psa-syncd no longer
//     knows what it set.
//   - A line psa-syncd has never set has an unknown current quantity. The
//     plan says "current unknown → N", the first pass posts N (nothing when
//     N is 0), and the decrease and increase guards cannot apply to it. Lines typed into
//     BMS by hand are invisible: end them in BMS before the first pass, or
//     the contract may bill both (what BMS does with two lines of one
//     service is not documented).
//   - Changes made by hand in BMS to lines psa-syncd posted are not seen
//     either; the next change is posted as another line regardless.
//   - A line is never posted dated before one psa-syncd posted already
//     (the effective date moved earlier): BMS bills the line with the latest
//     effective date, so the earlier line would bill only until the later
//     one starts, while the ledger would take it as the current quantity.
//     The line is held, as on Autotask (see Engine.laterWrites), until the
//     effective date reaches the later line's.
//
// # Lines awaiting review
//
// A post whose answer is lost (a timeout, a dropped connection), whose
// answer is not the line posted (Kaseya BMS: no line id, or a line of
// another contract, service or number of units), or that was in flight when psa-syncd was killed may or may not have reached the
// PSA. Where the PSA can be read (Autotask, ConnectWise), Reconcile
// settles it by reading. Where it cannot (Kaseya BMS), nothing is guessed
// and nothing is posted again: the intent stays open, the line is blocked
// (plans and passes show it as failed, "awaiting review"), and the
// customer's status is failed with a hint naming the contract, the
// service, the units and the effective date to look for. An operator
// checks the contract in BMS and answers with ResolveIntent (the
// `psa-syncd resolve -intent ID -posted` or `-not-posted` command). So
// does a ConnectWise addition whose answer was lost and whose re-read
// still shows no addition of the product once it settled (unseenCreate):
// that read is the only check before a new addition, and one that cannot
// see the agreement's additions would have it added twice; each Reconcile
// reads it again, and the intent settles by itself once the read shows it.
//
//   - posted: the line is in BMS (delete any duplicate first). The intent
//     is closed as done and the change goes to the ledger, so the next pass
//     takes it as the current quantity.
//   - not posted: the line is not in BMS. The intent is closed as failed,
//     and the next pass posts the line.
//
// Until then the rest of the customer's lines, and every other customer,
// are synced as usual. Where lines cannot be read, the customer's line of
// the intent's service on another contract is not posted either until
// then, when the customer's mapping names the intent's contract no more
// (it moved while the intent waited), nor a line of the customer's when no
// product mapping names the intent's service with sync on any more (a
// product re-pointed): the ledger holds only settled writes, so the line
// cannot be held as moved or re-pointed, and both lines would bill the
// usage if the first post reached the PSA (reviewElsewhere). Where lines
// can be read, so are the intents Reconcile leaves open (a write that may
// still arrive, a ConnectWise addition the read cannot see), until they
// settle; a plan, which settles nothing, re-reads their lines as Reconcile
// would (reconcileElsewhere), so that it blocks, holds or writes the line
// as the pass will.
//
// Dry runs (PassOptions.DryRun, or WritesDisabled when the export switches
// the integration off) compute everything and write nothing: they are
// recorded in the run history but change no customer status and no run
// metric, so a disabled integration never looks like a healthy one.
//
// # Example
//
//	reg := prometheus.NewRegistry()
//	m := usage.NewMetrics(reg, be.System())
//	e := usage.NewEngine(usage.EngineOptions{
//		Backend: be, Source: src, State: db, Policies: usage.DefaultPolicies,
//		Metrics: m, Logger: logger, Location: time.UTC,
//	})
//	res, err := e.Sync(ctx, doc, usage.PassOptions{Trigger: usage.TriggerCLI})
//	if err != nil { ... }
//	fmt.Println(res.Run.Result, res.Run.Updated, "lines updated")
package usage
