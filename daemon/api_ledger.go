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
	// Limit caps the number of entries, newest first; 0 means all.
	Limit int
}

// Match reports whether e passes the filter (Limit aside).
func (f LedgerFilter) Match(e state.LedgerEntry) bool {
	return (f.Customer == "" || e.CustomerID == f.Customer) &&
		(f.Contract == "" || e.ContractID == f.Contract) &&
		(f.Service == "" || e.ServiceID == f.Service) &&
		(f.Period.IsZero() || source.PeriodOf(e.EffectiveDate.UTC()) == f.Period)
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
	q := state.LedgerQuery{CustomerID: f.Customer, ContractID: f.Contract, ServiceID: f.Service, Limit: f.Limit}
	if !f.Period.IsZero() {
		q.EffectiveFrom, q.EffectiveTo = f.Period.Start(time.UTC), f.Period.Next().Start(time.UTC)
	}
	entries, err := db.QueryLedger(q)
	if err != nil {
		return nil, fmt.Errorf("daemon: reading the ledger: %w", err)
	}
	out := make([]LedgerView, 0, len(entries))
	for _, e := range entries {
		out = append(out, NewLedgerView(e))
	}
	return out, nil
}

// ParseLedgerQuery reads a LedgerFilter from GET /api/v1/ledger's query:
// customer, contract, service, period (YYYY-MM) and limit.
func ParseLedgerQuery(get func(string) string) (LedgerFilter, error) {
	f := LedgerFilter{Customer: get("customer"), Contract: get("contract"), Service: get("service")}
	if v := get("period"); v != "" {
		p, err := source.ParsePeriod(v)
		if err != nil {
			return f, fmt.Errorf("invalid period %q: want YYYY-MM", v)
		}
		f.Period = p
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

func (d *Daemon) handleLedger(w http.ResponseWriter, r *http.Request) {
	f, err := ParseLedgerQuery(r.URL.Query().Get)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out, err := FilterLedger(d.db, f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ledger": out})
}

func (d *Daemon) handleUnmapped(w http.ResponseWriter, _ *http.Request) {
	rep, err := d.LastUnmapped()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the last unmapped usage: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
