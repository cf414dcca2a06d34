package daemon

import (
	"fmt"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// StatusFilters are the values of the status filter of GET /api/v1/customers
// and psa-syncd status -status: a customer's last result, "never" for a
// customer that has not been synced yet, or "removed" for one the export
// no longer maps (StatusRemoved). "failed" includes "partial".
var StatusFilters = []string{"succeeded", "failed", "partial", "held", "skipped", "never", StatusRemoved}

// CheckStatusFilter returns an error naming the valid values when filter is
// not "" or one of StatusFilters.
func CheckStatusFilter(filter string) error {
	if filter == "" {
		return nil
	}
	for _, f := range StatusFilters {
		if f == filter {
			return nil
		}
	}
	return fmt.Errorf("invalid status filter %q: want one of %s", filter, strings.Join(StatusFilters, ", "))
}

// StatusMatches reports whether a customer whose last result is status
// passes the filter ("" passes everything). "failed" includes partial
// results (some lines failed).
func StatusMatches(filter, status string) bool {
	switch filter {
	case "":
		return true
	case "failed":
		return status == "failed" || status == "partial"
	}
	return status == filter
}

// CustomerMatches reports whether c passes the status filter as the
// psa_sync_customers gauge counts it: a customer whose usage sync is off
// keeps the status of its last sync, which no pass will change, so it is
// neither failed (nor partial) nor held, and the alert on that gauge does
// not count it. Listed without a filter, it still shows that status.
func CustomerMatches(filter string, c CustomerView) bool {
	switch filter {
	case "failed", "partial", "held":
		if !c.UsageSync {
			return false
		}
	}
	return StatusMatches(filter, c.Status)
}

// checkApproval returns why a sync request's approval fields do not go
// together, or "".
func checkApproval(r SyncRequest) string {
	switch {
	case r.Surge != "" && !r.Approve:
		return "surge is only used with approve: it is the review code of the lines held for a surge, to approve them all"
	case r.Surge != "" && !usage.IsSurgeReview(r.Surge):
		return fmt.Sprintf("surge %q is not a review code: give the 12 hexadecimal digits the plan, the pass's log or the status page gives", r.Surge)
	case r.Surge != "" && (r.Customer != "" || r.Service != "" || r.Units != nil):
		return "approve with surge approves every line a pass over all customers holds for the surge, at the units its review code names: give no customer, service or units"
	case r.Approve && r.Customer == "" && r.Surge == "":
		return "approve needs a customer: approving every held change at once is not allowed; review and approve them one customer (or line) at a time, or the lines held for a surge with its review code (surge)"
	case r.Service != "" && !r.Approve:
		return "service is only used with approve: it names the one line to approve"
	case r.Units != nil && r.Service == "":
		return "units need approve, a customer and a service: they are the reviewed desired units of the one line to approve"
	case r.Units != nil && *r.Units < 0:
		return fmt.Sprintf("units must not be negative: got %d", *r.Units)
	}
	return ""
}

// unitsValue is approved units as a log line shows them: the number, or
// "any" when the approval names none.
func unitsValue(u *int64) any {
	if u == nil {
		return "any"
	}
	return *u
}

// sameUnits reports whether two requests approve the same units (or both
// any), so that one may be coalesced into the other.
func sameUnits(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// RunProgress is how far the pass in progress is: its line writes done out
// of how many it makes (0 of 0 while it still reads usage and the PSA).
type RunProgress struct {
	LinesDone  int `json:"lines_done"`
	LinesTotal int `json:"lines_total"`
}

// runView is NewRunView with the progress of the pass in progress. The
// API and the status page serve it without credentials: the error of a
// run that an older psa-syncd recorded may name the state database (its
// SQLite file, or its PostgreSQL database, host and port), which it says
// as "the state database" instead (state.PublicRecordedText). The
// migration to schema version 12 rewrote the runs recorded before it; an
// older psa-syncd that still leads a shared database until it steps down
// may record another.
func (d *Daemon) runView(r state.Run) RunView {
	v := NewRunView(r)
	v.Error = state.PublicRecordedText(v.Error, d.db.Path())
	if r.Result == state.RunRunning {
		if run, done, total := d.Progress(); run == r.ID {
			v.Progress = &RunProgress{LinesDone: done, LinesTotal: total}
		}
	}
	return v
}

// CustomerView is one customer as GET /api/v1/customers and psa-syncd status
// show it: the customer's mapping and the status of its last sync.
type CustomerView = apiCustomer

// CustomerViews returns every customer of the running export, and every
// customer with a recorded status (see Customers).
func (d *Daemon) CustomerViews() ([]CustomerView, error) { return d.Customers() }

// NewCustomerView returns the view of a stored customer status, as a pass
// reports it.
func NewCustomerView(cs state.CustomerStatus) CustomerView {
	return CustomerView{
		Source: cs.Source, CustomerID: cs.CustomerID, CustomerName: cs.CustomerName,
		CompanyID: cs.CompanyID, ContractID: cs.ContractID, UsageSync: cs.UsageSync, TicketSync: cs.TicketSync,
		Status: cs.Result, LastAttempt: cs.LastAttempt, LastSuccess: cs.LastSuccess,
		Error: cs.Error, Hint: cs.Hint, RunID: cs.RunID,
		Updated: cs.Updated, Unchanged: cs.Unchanged, Held: cs.Held, Failed: cs.Failed,
	}
}
