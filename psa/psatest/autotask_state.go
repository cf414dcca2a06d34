package psatest

import "time"

// AutotaskState is a snapshot of a simulated Autotask tenant, as served by
// the inspection endpoint GET /_sim/autotask/state (which is not part of
// the Autotask API).
type AutotaskState struct {
	Time         time.Time             `json:"time"`
	HourlyCount  int                   `json:"hourlyCount"`
	HourlyLimit  int                   `json:"hourlyLimit"`
	BillingCodes []AutotaskBillingCode `json:"billingCodes"`
	Companies    []AutotaskCompany     `json:"companies"`
	Contracts    []AutotaskContract    `json:"contracts"`
	Services     []AutotaskService     `json:"services"`
	Lines        []AutotaskLineState   `json:"lines"`
	Adjustments  []AutotaskAdjustment  `json:"adjustments"`
	Tickets      []AutotaskTicket      `json:"tickets"`
}

// AutotaskLineState is a contract service line with its units now and its
// unit rows.
type AutotaskLineState struct {
	AutotaskContractService
	// CurrentUnits is the units of the row covering today (by the
	// server's clock); null when no row covers today.
	CurrentUnits *int64         `json:"currentUnits"`
	Rows         []AutotaskUnit `json:"rows"`
}

// State returns a snapshot of the tenant.
func (a *Autotask) State() AutotaskState {
	st := AutotaskState{
		Time:         a.clock().UTC(),
		HourlyCount:  a.HourlyCount(),
		HourlyLimit:  a.hourlyLimit,
		BillingCodes: a.BillingCodes(),
		Companies:    a.Companies(),
		Contracts:    a.Contracts(),
		Services:     a.Services(),
		Adjustments:  a.Adjustments(),
		Tickets:      a.Tickets(),
	}
	today := day(st.Time)
	for _, cs := range a.ContractServices() {
		l := AutotaskLineState{AutotaskContractService: cs, Rows: a.LineRows(cs.ID)}
		for _, r := range l.Rows {
			if !r.StartDate.After(today) && !r.EndDate.Before(today) {
				u := r.Units
				l.CurrentUnits = &u
			}
		}
		st.Lines = append(st.Lines, l)
	}
	return st
}

// ensureBillingCode makes sure the tenant has a billing code services can
// use.
func (a *Autotask) ensureBillingCode() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.defaultBillingCodeLocked()
}
