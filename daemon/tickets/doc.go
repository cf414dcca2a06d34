// Package tickets is psa-syncd's ticket engine: it files each customer's
// open vendor alerts (Sophos Central) as PSA tickets, through the neutral
// psa.Ticketer of the PSA backend, for the customers whose mapping has
// ticket sync on, routed as the export's ticket routing says
// (export.Tickets, written by psa_ticket_routing).
//
// One pass, per customer:
//
//   - the customer's complete open alert set is listed (AlertSource); a
//     failed or partial listing fails the customer and closes nothing;
//   - the tickets of alerts no longer listed (resolved) are closed with an
//     internal note, or only annotated, as the routing says; a ticket a
//     technician closed is only recorded; with Config.ResolveAfter, only
//     once the alert has been missing from listings that long (the first
//     listing that leaves it out records when, Record.MissingSince), so
//     that an alert missing from one listing keeps its ticket;
//   - each new alert at or above the severity floor becomes one ticket,
//     most severe first, up to the caps per customer and per pass; the
//     alerts over the customer's cap share one summary ticket per customer,
//     which later passes extend with a note (after reading it: one a
//     technician closed is followed by a new summary ticket) and which
//     closes when all its alerts are resolved; the pass cap counts summary tickets too, and
//     the alerts left when it is reached wait for a later pass (Deferred,
//     with a notice), neither summarised nor recorded;
//   - an alert that comes back after its ticket was closed by psa-syncd
//     reopens it within the reopen window (on_return "reopen") or gets a new
//     ticket, once a read of the old one finds it still closed (open, noted
//     with on_resolve "note" or reopened by hand, it is followed again,
//     with a "raised again" note, rather than joined by a second ticket;
//     so is a summary ticket whose alerts come back);
//     a ticket a technician closed while its alert was open is never
//     reopened for it, and the report's Notices say so every pass the
//     alert is open; one first found closed when its alert was resolved
//     (ClosedByPSAResolved) is treated like one psa-syncd closed, since
//     its alert cleared before coming back, and so is one closed while
//     its alert was open once the alert has been left out of the
//     listings for Config.ResolveAfter.
//
// A ticket deleted in the PSA is noticed when psa-syncd next reads it (to
// close, reopen or extend it, or before a new ticket for an alert back;
// open tickets are not polled, to keep within
// the PSA's API budget): it is recorded as gone (ClosedByDeleted) with a
// notice, and its alert, when open, gets a new ticket.
//
// A close is an intent too: the record is stored in StateClosing before
// the status is sent, so that a ticket found closed after a lost answer is
// known to be psa-syncd's close (reopened when its alert comes back), not a
// technician's. So is a reopen (StateReopening): one found applied after a
// lost answer is not sent again over a technician's close; one found not
// applied (the ticket closed and unchanged in the PSA since the intent, by
// the PSA's own time read just before it, Record.ReopenActivity) is sent
// again. Notes are
// recorded before they are sent as well (a resolve note in StateNoting, a
// summary's new alerts in Covered and, where the PSA lists notes, in
// NoteAlerts), and never sent twice. A resolve note or a summary's "More
// alerts" note whose outcome is unknown is looked for on the ticket by the
// next pass when the PSA lists notes (psa.TicketNoteLister: all three
// backends), by its text (the resolve note and a reopen's "raised again"
// note name the intent's time, the summary's note its first alert), and
// sent only when it is not there (a summary's note for those of its alerts
// still open). Notes on a PSA that lists none, or refuses the listing for
// good, are taken as added and reported in Notices: notes are only for
// changes, and a missing note is milder than the same note twice.
//
// A ticket is never created twice. Each create is an intent first: a record
// in StateCreating, stored durably under a unique (source, customer, alert)
// key before anything is sent. The ticket carries the alert's reference
// ("sc:<alert id>") in a searchable field (Autotask externalID, ConnectWise
// externalXRef, a title token in Kaseya BMS), and the PSA is searched for
// it before the create is sent. A create whose outcome is unknown (a lost
// answer, a crash, a kill -9) leaves the intent open; the next pass settles
// it by searching, adopting the ticket when found: in any company, since a
// technician may have moved it to another one meanwhile (a notice names
// it), and a search of the customer's company alone would file it again. A create that certainly
// made no ticket (psa.ErrNotApplied: the PSA throttled every attempt, or a
// read it needs failed; or psa.ErrUnauthorized: the PSA refused it
// outright, 401 or 403) releases its intent, and the next pass sends it
// again without waiting for Config.SettleTime. A create, close, note or
// reopen the PSA throttles stops the pass's writes (Report.RateLimited),
// and the rest waits for the next pass (Deferred, with a notice), failing
// only the customer whose call was throttled; with Config.Budget, a pass whose
// budget refuses a write (the PSA's hourly budget at the daemon's
// policies.ticket_budget_reserve) sends no more writes, and the alerts still to
// file, close, note or reopen wait for a later pass (Deferred, with a
// notice, Report.BudgetLimited; Report.BudgetUnknown too when the budget
// could not be read) without failing their customer; a create the
// PSA refuses is retried when what it depends on changes (the routing, or the
// customer's company or contract), and otherwise a day after it was refused,
// and fails its customer in every pass's report until then. A create the PSA
// refuses the API user (psa.ErrForbidden) fails only its customer; refused
// credentials stop the pass's creates.
//
// The customers are gone through starting with Config.StartWith, the
// first customer whose writes the pass before left for a later one
// (Report.ResumeAt), so that the pass cap and the budget do not leave out
// the same customers, late in the order, every pass.
//
// Customers that are not passed to Pass (ticket sync off, mapping removed)
// are not touched: their open tickets stay as they are. Nor are records of
// another PSA system or instance (Config.Instance), left by a switch of
// PSA: their ticket ids mean nothing in the PSA the engine is connected
// to, so it never calls the PSA for them, and reports them, until a pass
// with Config.ForgetOtherPSA deletes them.
//
// Usage:
//
//	eng, err := tickets.New(tickets.Config{
//		System: psa.SystemAutotask, Instance: backend.Instance(), PSA: backend.(psa.Ticketer), Store: db,
//		Alerts: tickets.NewSophosAlerts(sophosClient), Routing: *doc.Tickets,
//	})
//	if err != nil { ... }
//	rep, err := eng.Pass(ctx, customers, false)
//	t := rep.Totals()
//	logger.Info("Ticket pass done", "created", t.Created, "closed", t.Closed, "failed", t.Failed)
//
// The engine keeps its records in a Store; daemon/state implements it.
package tickets
