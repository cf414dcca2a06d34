package daemon

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// ticketPassWriteTimeout replaces the write timeout for POST
// /api/v1/tickets, which answers once the pass has gone through every
// customer with ticket sync on.
const ticketPassWriteTimeout = 10 * time.Minute

// ticketsBodyShape is the body POST /api/v1/tickets takes, as its errors
// spell it.
const ticketsBodyShape = `{"dry_run": true|false, "forget_other_psa": true|false} or no body`

// TicketPassView is the answer of POST /api/v1/tickets: a ticket pass's
// report, what psa-syncd tickets prints.
type TicketPassView struct {
	// DryRun is true when the pass wrote nothing: the request asked for a
	// dry run, or the export switches the integration off (its customers'
	// would_create, would_close, would_note and would_reopen say what it
	// would do).
	DryRun    bool                 `json:"dry_run"`
	Customers []TicketCustomerView `json:"customers"`
	// Settled counts the creates of earlier passes whose outcome this
	// pass found in the PSA.
	Settled int `json:"settled"`
	// RateLimited is true when the PSA throttled the pass: it stopped
	// writing, and the rest (each customer's deferred, with a notice) is
	// done next pass.
	RateLimited bool `json:"rate_limited"`
	// BudgetLimited is true when the PSA's hourly request budget reached
	// policies.ticket_budget_reserve: the pass stopped writing, and the rest
	// (each customer's deferred, with a notice) is done by a later pass.
	BudgetLimited bool `json:"budget_limited"`
	// BudgetUnknown is true, with BudgetLimited, when the pass stopped
	// writing because the PSA's hourly budget could not be read, not
	// because it reached policies.ticket_budget_reserve.
	BudgetUnknown bool `json:"budget_unknown,omitempty"`
	// WritesHeld, on a dry run, says why a ticket pass that writes is
	// refused: the state database is a restored backup not confirmed with
	// -state.allow-restore.
	WritesHeld string `json:"writes_held,omitempty"`
}

// TicketCustomerView is one customer of a ticket pass (see
// tickets.CustomerReport).
type TicketCustomerView struct {
	Source       string   `json:"source"`
	CustomerID   string   `json:"customer_id"`
	CustomerName string   `json:"customer_name,omitempty"`
	CompanyID    string   `json:"company_id,omitempty"`
	ContractID   string   `json:"contract_id,omitempty"`
	Created      int      `json:"created"`
	Adopted      int      `json:"adopted"`
	Closed       int      `json:"closed"`
	Noted        int      `json:"noted"`
	Reopened     int      `json:"reopened"`
	Summarised   int      `json:"summarised"`
	Deferred     int      `json:"deferred"`
	Failed       int      `json:"failed"`
	WouldCreate  []string `json:"would_create,omitempty"`
	WouldClose   []string `json:"would_close,omitempty"`
	// WouldNote lists the tickets a dry run would add a resolve note to
	// and leave open (on_resolve = "note"); they are not in WouldClose.
	WouldNote []string `json:"would_note,omitempty"`
	// WouldReopen lists the tickets a dry run would reopen (on_return =
	// "reopen": their alerts were raised again within the reopen window).
	WouldReopen []string `json:"would_reopen,omitempty"`
	Notices     []string `json:"notices,omitempty"`
	// Error is why the customer's pass failed or stopped early.
	Error string `json:"error,omitempty"`
}

// NewTicketPassView returns the API view of a ticket pass's report;
// dryRun is whether a dry run was asked for. The view is a dry run when
// the report is one too (the export switched the integration off).
func NewTicketPassView(rep tickets.Report, dryRun bool) TicketPassView {
	v := TicketPassView{DryRun: dryRun || rep.DryRun, Customers: make([]TicketCustomerView, 0, len(rep.Customers)), Settled: rep.Settled, RateLimited: rep.RateLimited,
		BudgetLimited: rep.BudgetLimited, BudgetUnknown: rep.BudgetUnknown, WritesHeld: rep.WritesHeld}
	for _, c := range rep.Customers {
		cv := TicketCustomerView{
			Source: c.Customer.Source, CustomerID: c.Customer.CustomerID, CustomerName: c.Customer.CustomerName,
			CompanyID: c.Customer.CompanyID, ContractID: c.Customer.ContractID,
			Created: c.Created, Adopted: c.Adopted, Closed: c.Closed, Noted: c.Noted, Reopened: c.Reopened,
			Summarised: c.Summarised, Deferred: c.Deferred, Failed: c.Failed,
			WouldCreate: c.WouldCreate, WouldClose: c.WouldClose, WouldNote: c.WouldNote, WouldReopen: c.WouldReopen, Notices: c.Notices,
		}
		if c.Err != nil {
			cv.Error = c.Err.Error()
		}
		v.Customers = append(v.Customers, cv)
	}
	return v
}

// Report returns the report v shows, each customer's error as an error
// with its text.
func (v TicketPassView) Report() tickets.Report {
	rep := tickets.Report{DryRun: v.DryRun, Settled: v.Settled, RateLimited: v.RateLimited, BudgetLimited: v.BudgetLimited,
		BudgetUnknown: v.BudgetUnknown, WritesHeld: v.WritesHeld}
	for _, c := range v.Customers {
		cr := tickets.CustomerReport{
			Customer: tickets.Customer{Source: c.Source, CustomerID: c.CustomerID, CustomerName: c.CustomerName, CompanyID: c.CompanyID, ContractID: c.ContractID},
			Created:  c.Created, Adopted: c.Adopted, Closed: c.Closed, Noted: c.Noted, Reopened: c.Reopened,
			Summarised: c.Summarised, Deferred: c.Deferred, Failed: c.Failed,
			WouldCreate: c.WouldCreate, WouldClose: c.WouldClose, WouldNote: c.WouldNote, WouldReopen: c.WouldReopen, Notices: c.Notices,
		}
		if c.Error != "" {
			cr.Err = errors.New(c.Error)
		}
		rep.Customers = append(rep.Customers, cr)
	}
	return rep
}

// handleTickets runs a ticket pass now, or a dry run of it, and answers
// with its report once it is done. Ticket passes run one at a time,
// scheduled ones included: while one runs, the request gets 409. A pass
// that writes runs on the active instance only (a standby forwards it, or
// refuses it naming the active instance) and is recorded like a scheduled
// one; a dry run reads the PSA and the alerts only, so a standby runs it
// itself, and dry runs are rate-limited like POST /api/v1/plan.
func (d *Daemon) handleTickets(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeBodyError(w, ticketsBodyShape, err)
		return
	}
	var body struct {
		DryRun         bool `json:"dry_run"`
		ForgetOtherPSA bool `json:"forget_other_psa"`
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	if err := decodeBody(r, &body); err != nil && !errors.Is(err, errEmptyBody) {
		writeBodyError(w, ticketsBodyShape, err)
		return
	}
	if !body.DryRun && !d.Active() {
		// Forwarded as it came, body included; the active instance answers
		// once the pass is done, and so does this one.
		r.Body = io.NopCloser(bytes.NewReader(data))
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(ticketPassWriteTimeout + d.forwardTimeout))
		d.forwardToActive(w, r, ticketPassWriteTimeout)
		return
	}
	doc := d.Export()
	if doc == nil || !d.Ready() {
		writeError(w, http.StatusServiceUnavailable, "no valid mapping export loaded yet")
		return
	}
	if !d.ticketMu.TryLock() {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusConflict, "a ticket pass is running (a scheduled one, or another request's): try again when it has finished; "+
			"GET /api/v1/customers shows each customer's last ticket pass")
		return
	}
	defer d.ticketMu.Unlock()
	if body.DryRun {
		if !d.ticketDryRuns.admit(w, d.now(), "a ticket dry run is made", "") {
			return
		}
		defer d.ticketDryRuns.done()
	}
	// Going through every customer's alerts and tickets can take longer
	// than an ordinary answer.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(ticketPassWriteTimeout))
	var rep tickets.Report
	if body.DryRun || !ticketPassWrites(doc) {
		// A dry run, or a pass that writes nothing (no routing, routing
		// or integration off), as psa-syncd tickets runs it: not recorded.
		rep, err = d.ticketPass(r.Context(), body.DryRun, body.ForgetOtherPSA)
	} else {
		d.logger.Info("Running a ticket pass requested through the API")
		ctx, stop := d.whileActive(r.Context())
		rep, err = d.recordedTicketPass(ctx, doc, body.ForgetOtherPSA)
		stop()
		if err == nil && !rep.SettleAt.IsZero() {
			d.logger.Info("Ticket writes left for policies.settle_time; one more ticket pass runs then", "at", rep.SettleAt)
			d.settleTicketsAt(rep.SettleAt)
		}
	}
	switch {
	case errors.Is(err, ErrNoTicketRouting):
		writeError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), "daemon: "))
		return
	case errors.Is(err, tickets.ErrNotLeader) || errors.Is(err, errLostLeadership):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "ticket pass stopped: this psa-syncd is no longer the active instance; the active instance settles what it recorded: "+err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadGateway, "ticket pass: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, NewTicketPassView(rep, body.DryRun))
}
