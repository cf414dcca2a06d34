package psatest

import (
	"slices"
	"strings"
	"time"
)

// This file holds the business rules of the simulated tenant: validation of
// creates and updates, contract service lines, their ContractServiceUnits
// rows and the adjustments that change them. Every function here runs with
// a.mu held.

// createLocked creates a record of d from the decoded body in and returns
// its id. Read-only fields in the body are ignored, as Autotask does.
func (a *Autotask) createLocked(d *entityDef, in record, resourceID int64) (int64, error) {
	rec := record{}
	for _, f := range d.Fields {
		if v, ok := in[f.Name]; ok && !f.ReadOnly {
			rec[f.Name] = v
		}
	}
	if d.Name == entCompanies || d.Name == entServices {
		if _, ok := rec["isActive"]; !ok {
			rec["isActive"] = true
		}
	}
	if missing := missingRequired(d, rec); len(missing) > 0 {
		return 0, apiErr("The following required fields are missing or empty: %s.", strings.Join(missing, ", "))
	}
	if err := a.validateLocked(d, rec, nil); err != nil {
		return 0, err
	}
	if resourceID == 0 {
		resourceID = autotaskAPIResourceID
	}
	now := a.clock().UTC()
	switch d.Name {
	case entCompanies:
		rec["createDate"] = now
		rec["lastTrackedModifiedDateTime"] = now
	case entContracts:
		rec["startDate"] = day(rec.time("startDate"))
		rec["endDate"] = day(rec.time("endDate"))
		rec["isCompliant"] = true
		rec["lastModifiedDateTime"] = now
	case entServices:
		rec["createDate"] = now
		rec["lastModifiedDate"] = now
		rec["creatorResourceID"] = resourceID
	case entContractServices:
		contract := a.tables[entContracts].get(rec.int("contractID"))
		if _, ok := rec["unitPrice"]; !ok || rec["unitPrice"] == nil {
			rec["unitPrice"] = a.tables[entServices].get(rec.int("serviceID")).float("unitPrice")
		}
		return a.addContractServiceLocked(contract, rec.int("serviceID"), rec.float("unitPrice"), rec).id(), nil
	case entTickets, entTicketNotes:
		a.stampTicketLocked(d, rec, nil, now, resourceID)
	}
	return a.insertLocked(d.Name, 0, rec), nil
}

// updateLocked applies a PATCH (only the fields present) or a PUT (writable
// fields left out become null) to the record whose id is in the body.
func (a *Autotask) updateLocked(d *entityDef, in record, put bool, pid, resourceID int64) (int64, error) {
	id, _ := in["id"].(int64)
	if id == 0 {
		return 0, apiErr("An id is required to update a %s.", d.Singular)
	}
	old := a.tables[d.Name].get(id)
	if old == nil || (pid != 0 && old.int(d.parentField()) != pid) {
		return 0, apiErr("No matching records found. The %s with id %d does not exist.", d.Singular, id)
	}
	rec := old.clone()
	if put {
		rec = record{}
		for _, f := range d.Fields {
			if v, ok := old[f.Name]; ok && (f.ReadOnly || f.CreateOnly) {
				rec[f.Name] = v
			}
		}
	}
	for _, f := range d.Fields {
		if v, ok := in[f.Name]; ok && !f.ReadOnly && !f.CreateOnly {
			rec[f.Name] = v
		}
	}
	if missing := missingRequired(d, rec); len(missing) > 0 {
		return 0, apiErr("The following required fields are missing or empty: %s.", strings.Join(missing, ", "))
	}
	if err := a.validateLocked(d, rec, old); err != nil {
		return 0, err
	}
	if resourceID == 0 {
		resourceID = autotaskAPIResourceID
	}
	now := a.clock().UTC()
	switch d.Name {
	case entCompanies:
		rec["lastTrackedModifiedDateTime"] = now
	case entContracts:
		rec["startDate"] = day(rec.time("startDate"))
		rec["endDate"] = day(rec.time("endDate"))
		rec["lastModifiedDateTime"] = now
	case entServices:
		rec["lastModifiedDate"] = now
		rec["updateResourceID"] = resourceID
	case entTickets, entTicketNotes:
		a.stampTicketLocked(d, rec, old, now, resourceID)
	}
	a.tables[d.Name].put(rec)
	return id, nil
}

// validateLocked checks references and business rules of a record about to
// be stored; old is nil on create.
func (a *Autotask) validateLocked(d *entityDef, rec, old record) error {
	switch d.Name {
	case entTickets, entTicketNotes:
		return a.validateTicketLocked(d, rec, old)
	case entCompanies:
		if p, ok := rec["parentCompanyID"].(int64); ok && a.tables[entCompanies].get(p) == nil {
			return apiErr("The parent company %d does not exist.", p)
		}
	case entContracts:
		if old == nil && a.tables[entCompanies].get(rec.int("companyID")) == nil {
			return apiErr("The company %d does not exist.", rec.int("companyID"))
		}
		if rec.time("endDate").Before(rec.time("startDate")) {
			return apiErr("The contract end date must be on or after its start date.")
		}
		if b, ok := rec["setupFeeBillingCodeID"].(int64); ok && a.tables[entBillingCodes].get(b) == nil {
			return apiErr("The billing code %d does not exist.", b)
		}
	case entServices:
		// Service names are a unique key: Crayon's integration meets
		// "a unique key violation" creating a service named as one made
		// by hand (field notes, CR1). Case is ignored, as SQL Server's
		// default collation does.
		if name := strings.TrimSpace(rec.str("name")); old == nil || !strings.EqualFold(name, strings.TrimSpace(old.str("name"))) {
			for _, other := range a.tables[entServices].all() {
				if other.id() != rec.id() && strings.EqualFold(strings.TrimSpace(other.str("name")), name) {
					return apiErr("Cannot insert duplicate key: the service name '%s' is already used by service %d.", other.str("name"), other.id())
				}
			}
		}
		if old == nil || old.int("billingCodeID") != rec.int("billingCodeID") {
			bc := a.tables[entBillingCodes].get(rec.int("billingCodeID"))
			switch {
			case bc == nil:
				return apiErr("The billing code %d does not exist.", rec.int("billingCodeID"))
			case !bc.active():
				return apiErr("The billing code %d is inactive.", rec.int("billingCodeID"))
			case bc.int("useType") != AutotaskUseTypeRecurringContractService:
				return apiErr("The billing code %d is not a Recurring Contract Service billing code.", rec.int("billingCodeID"))
			}
		}
		if v, ok := rec["vendorCompanyID"].(int64); ok && a.tables[entCompanies].get(v) == nil {
			return apiErr("The vendor company %d does not exist.", v)
		}
		if rec.float("unitPrice") < 0 {
			return apiErr("The unit price of a service cannot be negative.")
		}
	case entContractServices:
		if old != nil {
			return nil
		}
		contract := a.tables[entContracts].get(rec.int("contractID"))
		if contract == nil {
			return apiErr("The contract %d does not exist.", rec.int("contractID"))
		}
		if contract.int("contractType") != AutotaskContractRecurringService {
			return apiErr("Services can only be added to Recurring Service contracts.")
		}
		svc := a.tables[entServices].get(rec.int("serviceID"))
		if svc == nil {
			return apiErr("The service %d does not exist.", rec.int("serviceID"))
		}
		if !svc.active() {
			return apiErr("The service %d is inactive.", rec.int("serviceID"))
		}
		if a.contractServiceLocked(contract.id(), svc.id()) != nil {
			return apiErr("The service %d is already on contract %d.", svc.id(), contract.id())
		}
	}
	return nil
}

// contractServiceLocked returns the line of a service on a contract, or nil.
func (a *Autotask) contractServiceLocked(contractID, serviceID int64) record {
	id, ok := a.lines[[2]int64{contractID, serviceID}]
	if !ok {
		return nil
	}
	return a.tables[entContractServices].get(id)
}

// addContractServiceLocked adds a service line to a contract with one
// zero-unit ContractServiceUnits row per monthly period of the contract.
// A repeat of a service already on the contract is added as another line;
// lines keeps the first.
// extra holds further ContractService fields from an API create.
func (a *Autotask) addContractServiceLocked(contract record, serviceID int64, unitPrice float64, extra record) record {
	cs := record{}
	for k, v := range extra {
		cs[k] = v
	}
	cs["contractID"] = contract.id()
	cs["serviceID"] = serviceID
	cs["unitPrice"] = unitPrice
	cs["adjustedPrice"] = unitPrice
	cs["internalCurrencyUnitPrice"] = unitPrice
	cs["internalCurrencyAdjustedPrice"] = unitPrice
	id := a.insertLocked(entContractServices, 0, cs)
	if _, repeat := a.lines[[2]int64{contract.id(), serviceID}]; !repeat {
		a.lines[[2]int64{contract.id(), serviceID}] = id
	}

	var vendor any
	if svc := a.tables[entServices].get(serviceID); svc != nil {
		vendor = svc["vendorCompanyID"]
	}
	for _, p := range monthlyPeriods(contract.time("startDate"), contract.time("endDate")) {
		row := record{
			"contractID":            contract.id(),
			"contractServiceID":     id,
			"serviceID":             serviceID,
			"startDate":             p[0],
			"endDate":               p[1],
			"units":                 int64(0),
			"price":                 unitPrice,
			"cost":                  float64(0),
			"internalCurrencyPrice": unitPrice,
		}
		if vendor != nil {
			row["vendorCompanyID"] = vendor
		}
		a.insertUnitLocked(row)
	}
	return cs
}

// insertUnitLocked adds a unit row and files it in unitIndex by start date,
// then id (a row's start date never changes), so that unitRowsLocked need
// not sort them on every request.
func (a *Autotask) insertUnitLocked(row record) {
	id := a.insertLocked(entContractUnits, 0, row)
	cs := row.int("contractServiceID")
	ids := a.unitIndex[cs]
	start, units := row.time("startDate"), a.tables[entContractUnits]
	i := len(ids)
	for i > 0 && units.get(ids[i-1]).time("startDate").After(start) {
		i--
	}
	a.unitIndex[cs] = slices.Insert(ids, i, id)
}

// monthlyPeriods splits [start, end] (calendar days) into monthly periods
// counted from start, the last one cut at end.
func monthlyPeriods(start, end time.Time) [][2]time.Time {
	start, end = day(start), day(end)
	var out [][2]time.Time
	for k := 0; ; k++ {
		ps := addMonths(start, k)
		if ps.After(end) {
			return out
		}
		pe := addMonths(start, k+1).AddDate(0, 0, -1)
		if pe.After(end) {
			pe = end
		}
		out = append(out, [2]time.Time{ps, pe})
	}
}

// addMonths adds n months to t, keeping the day of month where it exists
// and clamping it to the month's last day where it does not.
func addMonths(t time.Time, n int) time.Time {
	first := time.Date(t.Year(), t.Month()+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	d := t.Day()
	if d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, 0, 0, 0, 0, time.UTC)
}

// unitRowsLocked returns the unit rows of a contract service by start date,
// then id: unitIndex holds them in that order.
func (a *Autotask) unitRowsLocked(csID int64) []record {
	ids := a.unitIndex[csID]
	rows := make([]record, 0, len(ids))
	units := a.tables[entContractUnits]
	for _, id := range ids {
		if r := units.get(id); r != nil {
			rows = append(rows, r)
		}
	}
	return rows
}

// unitRowAtLocked returns the unit row of a contract service covering day d.
func (a *Autotask) unitRowAtLocked(csID int64, d time.Time) record {
	for _, r := range a.unitRowsLocked(csID) {
		if !r.time("startDate").After(d) && !r.time("endDate").Before(d) {
			return r
		}
	}
	return nil
}

// splitAtLocked applies fn to every unit row of a contract service from day
// from on. The row that contains from is split first: it keeps its units up
// to the day before, and a new row from `from` to its old end gets fn.
func (a *Autotask) splitAtLocked(csID int64, from time.Time, fn func(record)) {
	for _, r := range a.unitRowsLocked(csID) {
		start, end := r.time("startDate"), r.time("endDate")
		switch {
		case end.Before(from):
			continue
		case start.Before(from):
			n := r.clone()
			delete(n, "id")
			delete(n, "approveAndPostDate")
			n["startDate"] = from
			r["endDate"] = from.AddDate(0, 0, -1)
			fn(n)
			a.insertUnitLocked(n)
		default:
			fn(r)
		}
	}
}

// adjustLocked validates and applies a ContractServiceAdjustment: unitChange
// is added to every unit row from effectiveDate on (splitting the row that
// contains it), and the ContractService is created when missing.
func (a *Autotask) adjustLocked(in record) (int64, error) {
	eff, ok := in["effectiveDate"].(time.Time)
	if !ok {
		return 0, apiErr("The following required fields are missing or empty: effectiveDate.")
	}
	eff = day(eff)
	change, ok := in["unitChange"].(int64)
	if !ok {
		return 0, apiErr("The following required fields are missing or empty: unitChange.")
	}
	contractID, _ := in["contractID"].(int64)
	contract := a.tables[entContracts].get(contractID)
	switch {
	case contractID == 0:
		return 0, apiErr("The following required fields are missing or empty: contractID.")
	case contract == nil:
		return 0, apiErr("No matching records found. The Contract with id %d does not exist.", contractID)
	case contract.int("status") != AutotaskContractStatusActive:
		return 0, apiErr("Contract %d is not active; service adjustments can only be made on active contracts.", contractID)
	case contract.int("contractType") != AutotaskContractRecurringService:
		return 0, apiErr("Service adjustments can only be made on Recurring Service contracts.")
	}

	serviceID, _ := in["serviceID"].(int64)
	var cs record
	if csID, ok := in["contractServiceID"].(int64); ok {
		cs = a.tables[entContractServices].get(csID)
		if cs == nil || cs.int("contractID") != contractID {
			return 0, apiErr("No matching records found. The ContractService with id %d does not exist on contract %d.", csID, contractID)
		}
		if serviceID != 0 && serviceID != cs.int("serviceID") {
			return 0, apiErr("The serviceID %d does not match the ContractService %d.", serviceID, csID)
		}
		serviceID = cs.int("serviceID")
	}
	if serviceID == 0 {
		return 0, apiErr("Either serviceID or contractServiceID is required.")
	}
	svc := a.tables[entServices].get(serviceID)
	switch {
	case svc == nil:
		return 0, apiErr("No matching records found. The Service with id %d does not exist.", serviceID)
	case !svc.active():
		return 0, apiErr("The service %d is inactive and cannot be adjusted.", serviceID)
	}
	if eff.Before(contract.time("startDate")) || eff.After(contract.time("endDate")) {
		return 0, apiErr("The effective date %s is outside the contract's dates (%s to %s).",
			eff.Format(time.DateOnly), contract.time("startDate").Format(time.DateOnly), contract.time("endDate").Format(time.DateOnly))
	}
	if cs == nil {
		cs = a.contractServiceLocked(contractID, serviceID)
	}

	// Refuse before changing anything when a row would go below zero.
	if cs == nil {
		if change < 0 {
			return 0, apiErr("The unit change of %d would make the units of service %d on contract %d negative.", change, serviceID, contractID)
		}
	} else {
		for _, r := range a.unitRowsLocked(cs.id()) {
			if !r.time("endDate").Before(eff) && r.int("units")+change < 0 {
				return 0, apiErr("The unit change of %d would make the units of service %d on contract %d negative (%d units from %s).",
					change, serviceID, contractID, r.int("units"), r.time("startDate").Format(time.DateOnly))
			}
		}
	}

	price, hasPrice := in["adjustedUnitPrice"].(float64)
	if cs == nil {
		p := svc.float("unitPrice")
		if hasPrice {
			p = price
		}
		cs = a.addContractServiceLocked(contract, serviceID, p, nil)
	}
	posted := false
	for _, r := range a.unitRowsLocked(cs.id()) {
		if _, ok := r["approveAndPostDate"]; ok && !r.time("endDate").Before(eff) {
			posted = true
		}
	}
	a.splitAtLocked(cs.id(), eff, func(r record) {
		r["units"] = r.int("units") + change
		if hasPrice {
			r["price"] = price
			r["internalCurrencyPrice"] = price
		}
	})

	adj := AutotaskAdjustment{
		ID:                a.newIDLocked(entContractAdjustment),
		ContractID:        contractID,
		ServiceID:         serviceID,
		ContractServiceID: cs.id(),
		UnitChange:        change,
		EffectiveDate:     eff,
		Created:           a.clock().UTC(),
		IntoPostedPeriod:  posted,
	}
	if hasPrice {
		adj.AdjustedUnitPrice = &price
	}
	a.adjustments = append(a.adjustments, adj)
	return adj.ID, nil
}
