package daemon

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// LedgerFilter selects ledger entries; empty fields match everything.
type LedgerFilter struct {
	Customer string // source customer id
	Contract string // PSA contract id
	Service  string // PSA service id
	// Period matches entries whose effective date falls in the billing
	// month (the zero Period matches all).
	Period source.Period
	// Before and After match entries whose seq is below Before and above
	// After (0: no bound), to page through the ledger.
	Before, After int64
	// Limit caps the number of entries, newest first; 0 means all.
	Limit int
}

// LedgerPageSize is the default and the largest number of entries
// GET /api/v1/ledger answers with at once; its "next" link pages on.
const LedgerPageSize = 1000

// Match reports whether e passes the filter (Limit aside).
func (f LedgerFilter) Match(e state.LedgerEntry) bool {
	return (f.Customer == "" || e.CustomerID == f.Customer) &&
		(f.Contract == "" || e.ContractID == f.Contract) &&
		(f.Service == "" || e.ServiceID == f.Service) &&
		(f.Period.IsZero() || source.PeriodOf(e.EffectiveDate.UTC()) == f.Period) &&
		(f.Before == 0 || e.Seq < f.Before) && (f.After == 0 || e.Seq > f.After)
}

// LedgerView is one quantity change in GET /api/v1/ledger and
// psa-syncd ledger: what psa-syncd set on a contract line, when, and from
// what.
type LedgerView struct {
	Seq           int64     `json:"seq"`
	Time          time.Time `json:"time"`
	RunID         int64     `json:"run_id"`
	System        string    `json:"system"`
	Source        string    `json:"source"`
	CustomerID    string    `json:"customer_id"`
	ContractID    string    `json:"contract_id"`
	ServiceID     string    `json:"service_id"`
	Before        int64     `json:"before"`
	After         int64     `json:"after"`
	EffectiveDate string    `json:"effective_date"`
	IntentID      int64     `json:"intent_id"`
	// Period is the billing month whose usage the run that made the
	// change synced (its run's period): with next_period_start, or a
	// pass for the month that ended (sync -period), not the month of the
	// effective date. Empty once the run is gone from the history.
	Period string `json:"period,omitempty"`
}

// NewLedgerView converts a ledger entry for the API.
func NewLedgerView(e state.LedgerEntry) LedgerView {
	return LedgerView{
		Seq: e.Seq, Time: e.Time, RunID: e.RunID, System: string(e.System), Source: e.Source, CustomerID: e.CustomerID,
		ContractID: e.ContractID, ServiceID: e.ServiceID, Before: e.Before, After: e.After,
		EffectiveDate: e.EffectiveDate.Format(time.DateOnly), IntentID: e.IntentID,
	}
}

// FilterLedger returns the entries of db's ledger that pass f, newest
// first. The state database selects them: only what f selects is read.
func FilterLedger(db *state.DB, f LedgerFilter) ([]LedgerView, error) {
	q := state.LedgerQuery{CustomerID: f.Customer, ContractID: f.Contract, ServiceID: f.Service,
		Before: f.Before, After: f.After, Limit: f.Limit}
	if !f.Period.IsZero() {
		q.EffectiveFrom, q.EffectiveTo = f.Period.Start(time.UTC), f.Period.Next().Start(time.UTC)
	}
	entries, err := db.QueryLedger(q)
	if err != nil {
		return nil, fmt.Errorf("daemon: reading the ledger: %w", err)
	}
	out := make([]LedgerView, 0, len(entries))
	periods := map[int64]string{} // run id -> its period; a page holds the changes of a few runs
	for _, e := range entries {
		v := NewLedgerView(e)
		if e.RunID != 0 {
			p, ok := periods[e.RunID]
			if !ok {
				run, _, err := db.Run(e.RunID)
				if err != nil {
					return nil, fmt.Errorf("daemon: reading the run of ledger entry %d: %w", e.Seq, err)
				}
				p = run.Period
				periods[e.RunID] = p
			}
			v.Period = p
		}
		out = append(out, v)
	}
	return out, nil
}

// ParseLedgerQuery reads a LedgerFilter from GET /api/v1/ledger's query:
// customer, contract, service, period (YYYY-MM), before and after (seq
// cursors) and limit.
func ParseLedgerQuery(get func(string) string) (LedgerFilter, error) {
	f := LedgerFilter{Customer: get("customer"), Contract: get("contract"), Service: get("service")}
	if v := get("period"); v != "" {
		p, err := source.ParsePeriod(v)
		if err != nil {
			return f, fmt.Errorf("invalid period %q: want YYYY-MM", v)
		}
		f.Period = p
	}
	for _, c := range []struct {
		name string
		to   *int64
	}{{"before", &f.Before}, {"after", &f.After}} {
		if v := get(c.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return f, fmt.Errorf("invalid %s %q: want a ledger seq, a positive number", c.name, v)
			}
			*c.to = n
		}
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, fmt.Errorf("invalid limit %q: want a number, 0 for all", v)
		}
		f.Limit = n
	}
	return f, nil
}

// handleLedger answers a page of the ledger: at most LedgerPageSize
// entries (limit=0, once "all", and larger limits included), so that a
// ledger of years is never read into memory at once, and, when there are
// older entries, "next": the path and query of the page after, with the
// same filters and a before cursor.
func (d *Daemon) handleLedger(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "customer", "contract", "service", "period", "before", "after", "limit") {
		return
	}
	f, err := ParseLedgerQuery(r.URL.Query().Get)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if f.Limit == 0 || f.Limit > LedgerPageSize {
		f.Limit = LedgerPageSize
	}
	n := f.Limit
	f.Limit++ // one more tells whether there is a next page
	out, err := FilterLedger(d.db, f)
	if err != nil {
		d.stateFailed(w, "reading the ledger", err)
		return
	}
	resp := map[string]any{"ledger": out}
	if len(out) > n {
		out = out[:n]
		resp["ledger"] = out
		q := r.URL.Query()
		q.Set("before", strconv.FormatInt(out[n-1].Seq, 10))
		resp["next"] = r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, http.StatusOK, resp)
}

func (d *Daemon) handleUnmapped(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r) {
		return
	}
	rep, err := d.LastUnmapped()
	if err != nil {
		d.stateFailed(w, "reading the last unmapped usage", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
