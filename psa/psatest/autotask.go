package psatest

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// First ids the simulator allocates per entity. Allocation is sequential
// and deterministic, so tests can predict ids.
var autotaskFirstID = map[string]int64{
	entCompanies:          174,
	entContracts:          29684000,
	entServices:           30000000,
	entBillingCodes:       29682800,
	entContractServices:   40000000,
	entContractUnits:      50000000,
	entContractAdjustment: 60000000,
	entTickets:            7000,
	entTicketNotes:        29800000,
}

// autotaskAPIResourceID is the resource id of the simulated API user; it is
// the creator of records unless ImpersonationResourceId says otherwise.
const autotaskAPIResourceID = 29682885

// Autotask is the state of a simulated Autotask tenant. Its methods seed and
// inspect that state out of band (they are not part of the Autotask API and
// are not counted against its limits). All methods are safe for concurrent
// use; one mutex guards the whole tenant.
//
// Accessors that are given an id or label that does not exist panic: they
// are test set-up, and a mistake there is a bug in the test.
type Autotask struct {
	srv                               *Server
	username, secret, integrationCode string
	hourlyLimit, threadLimit          int
	usageDelays                       [2]time.Duration // at 50% and 75% of the hourly limit
	clock                             func() time.Time

	// holdHook, when set, is called by every API request while it holds its
	// thread slot (tests use it to hold requests in flight without sleeps).
	holdHook func(endpoint string)

	mu          sync.RWMutex
	tables      map[string]*table
	nextID      map[string]int64
	adjustments []AutotaskAdjustment
	hits        []time.Time
	threads     map[string]int
	// lines maps (contract, service) to the ContractService id; unitIndex
	// maps a ContractService id to its unit row ids.
	lines     map[[2]int64]int64
	unitIndex map[int64][]int64
	// restricted holds the resources whose impersonated reads see nothing
	// (see RestrictResource).
	restricted map[int64]bool
	// noteTitleCategories holds the ticket categories whose notes need a
	// title (see RequireNoteTitles).
	noteTitleCategories map[int64]bool
}

func newAutotask(s *Server, c config) *Autotask {
	a := &Autotask{
		srv:             s,
		username:        DefaultAutotaskUsername,
		secret:          DefaultAutotaskSecret,
		integrationCode: DefaultAutotaskIntegrationCode,
		hourlyLimit:     c.hourlyLimit,
		threadLimit:     c.threadLimit,
		usageDelays:     c.usageDelays,
		clock:           c.clock,
		tables:          map[string]*table{},
		nextID:          map[string]int64{},
		threads:         map[string]int{},
		lines:           map[[2]int64]int64{},
		unitIndex:       map[int64][]int64{},
		restricted:      map[int64]bool{},
	}
	for name, first := range autotaskFirstID {
		a.tables[name] = newTable(entity(name))
		a.nextID[name] = first
	}
	if c.fixture != nil && c.fixture.Autotask != nil {
		fa := c.fixture.Autotask
		if fa.Username != "" {
			a.username = fa.Username
		}
		if fa.Secret != "" {
			a.secret = fa.Secret
		}
		if fa.IntegrationCode != "" {
			a.integrationCode = fa.IntegrationCode
		}
	}
	if c.creds != nil {
		a.username, a.secret, a.integrationCode = c.creds[0], c.creds[1], c.creds[2]
	}
	return a
}

// Credentials returns the API user's name, secret and integration code.
func (a *Autotask) Credentials() (username, secret, integrationCode string) {
	return a.username, a.secret, a.integrationCode
}

// newIDLocked allocates the next id of an entity.
func (a *Autotask) newIDLocked(entity string) int64 {
	id := a.nextID[entity]
	a.nextID[entity] = id + 1
	return id
}

// reserveIDLocked makes sure a record with an explicit id (from a fixture)
// is not allocated again.
func (a *Autotask) reserveIDLocked(entity string, id int64) {
	if id >= a.nextID[entity] {
		a.nextID[entity] = id + 1
	}
}

// AutotaskCompany is a Company as the accessors see it.
type AutotaskCompany struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Number string `json:"number"`
	// Type is the companyType label; "" means "Customer".
	Type   string `json:"type"`
	Active bool   `json:"active"`
}

// AutotaskContract is a Contract as the accessors see it.
type AutotaskContract struct {
	ID        int64  `json:"id"`
	CompanyID int64  `json:"companyID"`
	Name      string `json:"name"`
	// Type is the contractType label; "" means "Recurring Service".
	Type string `json:"type"`
	// Status is the status label; "" means "Active".
	Status string `json:"status"`
	// StartDate and EndDate are calendar days (UTC); zero means 1 January
	// and 31 December of the clock's current year.
	StartDate time.Time `json:"startDate"`
	EndDate   time.Time `json:"endDate"`
}

// AutotaskService is a Service (catalog item) as the accessors see it.
type AutotaskService struct {
	ID                 int64   `json:"id"`
	Name               string  `json:"name"`
	Description        string  `json:"description"`
	InvoiceDescription string  `json:"invoiceDescription"`
	UnitPrice          float64 `json:"unitPrice"`
	UnitCost           float64 `json:"unitCost"`
	// PeriodType is the periodType label; "" means "Monthly".
	PeriodType string `json:"periodType"`
	// BillingCodeID 0 means the first active Recurring Contract Service
	// billing code (one is created when there is none).
	BillingCodeID int64 `json:"billingCodeID"`
	Active        bool  `json:"active"`
}

// AutotaskBillingCode is a BillingCode (allocation code).
type AutotaskBillingCode struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// UseType is the useType label; "" means "Recurring Contract Service".
	UseType string `json:"useType"`
	Active  bool   `json:"active"`
}

// AutotaskContractService is a service line on a contract.
type AutotaskContractService struct {
	ID         int64   `json:"id"`
	ContractID int64   `json:"contractID"`
	ServiceID  int64   `json:"serviceID"`
	UnitPrice  float64 `json:"unitPrice"`
}

// AutotaskUnit is a ContractServiceUnits row: the units of one contract
// service from StartDate to EndDate, both inclusive calendar days.
type AutotaskUnit struct {
	ID                int64     `json:"id"`
	ContractID        int64     `json:"contractID"`
	ContractServiceID int64     `json:"contractServiceID"`
	ServiceID         int64     `json:"serviceID"`
	StartDate         time.Time `json:"startDate"`
	EndDate           time.Time `json:"endDate"`
	Units             int64     `json:"units"`
	Price             float64   `json:"price"`
	// ApproveAndPostDate is when the row's period was approved and posted
	// (invoiced); nil while it is not (see PostPeriods).
	ApproveAndPostDate *time.Time `json:"approveAndPostDate,omitempty"`
}

// AutotaskAdjustment is a ContractServiceAdjustment that was accepted.
type AutotaskAdjustment struct {
	ID                int64     `json:"id"`
	ContractID        int64     `json:"contractID"`
	ServiceID         int64     `json:"serviceID"`
	ContractServiceID int64     `json:"contractServiceID"`
	UnitChange        int64     `json:"unitChange"`
	EffectiveDate     time.Time `json:"effectiveDate"`
	// AdjustedUnitPrice is nil when the request did not set it.
	AdjustedUnitPrice *float64 `json:"adjustedUnitPrice"`
	// Created is when the simulator accepted it (by its clock).
	Created time.Time `json:"created"`
	// IntoPostedPeriod is true when the adjustment changed units of a row
	// already approved and posted (see PostPeriods). The simulator accepts
	// such an adjustment, as the references do not say that Autotask
	// refuses one (it bills a proration that cannot be reversed), and
	// reports it here so that tests can tell.
	IntoPostedPeriod bool `json:"intoPostedPeriod,omitempty"`
}

func mustPicklist(ent, field, label, def string) int64 {
	v, err := picklistOf(ent, field, label, def)
	if err != nil {
		panic(err.Error())
	}
	return v
}

// picklistOf returns the value of a picklist label (def when label is "").
func picklistOf(ent, field, label, def string) (int64, error) {
	if label == "" {
		label = def
	}
	v, ok := entity(ent).field(field).picklistValue(label)
	if !ok {
		return 0, fmt.Errorf("psatest: %q is not a %s.%s picklist label", label, ent, field)
	}
	return v, nil
}

func picklistLabel(ent, field string, v int64) string {
	l, _ := entity(ent).field(field).picklistLabel(v)
	return l
}

// AddCompany adds an active customer company and returns its id.
func (a *Autotask) AddCompany(name string) int64 {
	return a.AddCompanyDetails(AutotaskCompany{Name: name, Active: true})
}

// AddCompanyDetails adds a company as given (ID 0 allocates one) and returns
// its id.
func (a *Autotask) AddCompanyDetails(c AutotaskCompany) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addCompanyLocked(c)
}

func (a *Autotask) addCompanyLocked(c AutotaskCompany) int64 {
	rec := record{
		"companyName":     c.Name,
		"companyType":     mustPicklist(entCompanies, "companyType", c.Type, "Customer"),
		"ownerResourceID": int64(autotaskAPIResourceID),
		"phone":           "555-0100",
		"isActive":        c.Active,
		"createDate":      a.clock().UTC(),
	}
	if c.Number != "" {
		rec["companyNumber"] = c.Number
	}
	return a.insertLocked(entCompanies, c.ID, rec)
}

// insertLocked stores rec under id (0 allocates one) and returns the id.
func (a *Autotask) insertLocked(entity string, id int64, rec record) int64 {
	if id == 0 {
		id = a.newIDLocked(entity)
	} else {
		a.reserveIDLocked(entity, id)
	}
	rec["id"] = id
	a.tables[entity].put(rec)
	return id
}

// AddContract adds a contract and returns its id. Zero fields take the
// defaults documented on AutotaskContract.
func (a *Autotask) AddContract(c AutotaskContract) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addContractLocked(c)
}

func (a *Autotask) addContractLocked(c AutotaskContract) int64 {
	year := a.clock().UTC().Year()
	if c.StartDate.IsZero() {
		c.StartDate = time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.EndDate.IsZero() {
		c.EndDate = time.Date(year, time.December, 31, 0, 0, 0, 0, time.UTC)
	}
	rec := record{
		"companyID":                              c.CompanyID,
		"contractName":                           c.Name,
		"contractType":                           mustPicklist(entContracts, "contractType", c.Type, "Recurring Service"),
		"status":                                 mustPicklist(entContracts, "status", c.Status, "Active"),
		"startDate":                              day(c.StartDate),
		"endDate":                                day(c.EndDate),
		"timeReportingRequiresStartAndStopTimes": int64(1),
		"billingPreference":                      int64(2),
		"lastModifiedDateTime":                   a.clock().UTC(),
	}
	return a.insertLocked(entContracts, c.ID, rec)
}

// SetContractStatus sets a contract's status by label ("Active",
// "Inactive").
func (a *Autotask) SetContractStatus(id int64, status string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.mustGetLocked(entContracts, id)
	rec["status"] = mustPicklist(entContracts, "status", status, "Active")
}

// SetContractEndDate sets a contract's end date, as an Autotask user who
// ends a contract early does.
func (a *Autotask) SetContractEndDate(id int64, end time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.mustGetLocked(entContracts, id)
	rec["endDate"] = day(end)
}

// SetContractStartDate sets a contract's start date, as an Autotask user
// who postpones a renewal does.
func (a *Autotask) SetContractStartDate(id int64, start time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.mustGetLocked(entContracts, id)
	rec["startDate"] = day(start)
}

// SetContractCompany moves a contract to another company, as an Autotask
// user who corrects a contract's account does.
func (a *Autotask) SetContractCompany(id, companyID int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.mustGetLocked(entContracts, id)
	rec["companyID"] = companyID
}

// SetCompanyActive activates or deactivates a company, as an Autotask
// user who marks a departed customer inactive does.
func (a *Autotask) SetCompanyActive(id int64, active bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mustGetLocked(entCompanies, id)["isActive"] = active
}

// AddBillingCode adds a billing (allocation) code and returns its id.
func (a *Autotask) AddBillingCode(b AutotaskBillingCode) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addBillingCodeLocked(b)
}

func (a *Autotask) addBillingCodeLocked(b AutotaskBillingCode) int64 {
	rec := record{
		"name":     b.Name,
		"isActive": b.Active,
		"useType":  mustPicklist(entBillingCodes, "useType", b.UseType, "Recurring Contract Service"),
	}
	return a.insertLocked(entBillingCodes, b.ID, rec)
}

// defaultBillingCodeLocked returns the first active Recurring Contract
// Service billing code, creating "Recurring Services" when there is none.
func (a *Autotask) defaultBillingCodeLocked() int64 {
	for _, rec := range a.tables[entBillingCodes].all() {
		if rec.active() && rec.int("useType") == AutotaskUseTypeRecurringContractService {
			return rec.id()
		}
	}
	return a.addBillingCodeLocked(AutotaskBillingCode{Name: "Recurring Services", Active: true})
}

// AddService adds an active monthly service with the default billing code
// and returns its id.
func (a *Autotask) AddService(name string, unitPrice float64) int64 {
	return a.AddServiceDetails(AutotaskService{Name: name, UnitPrice: unitPrice, Active: true})
}

// AddServiceDetails adds a service as given (note that Active false adds an
// inactive service) and returns its id.
func (a *Autotask) AddServiceDetails(s AutotaskService) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addServiceLocked(s)
}

func (a *Autotask) addServiceLocked(s AutotaskService) int64 {
	if s.BillingCodeID == 0 {
		s.BillingCodeID = a.defaultBillingCodeLocked()
	}
	now := a.clock().UTC()
	rec := record{
		"name":              s.Name,
		"unitPrice":         s.UnitPrice,
		"unitCost":          s.UnitCost,
		"periodType":        mustPicklist(entServices, "periodType", s.PeriodType, "Monthly"),
		"billingCodeID":     s.BillingCodeID,
		"isActive":          s.Active,
		"createDate":        now,
		"lastModifiedDate":  now,
		"creatorResourceID": int64(autotaskAPIResourceID),
	}
	if s.Description != "" {
		rec["description"] = s.Description
	}
	if s.InvoiceDescription != "" {
		rec["invoiceDescription"] = s.InvoiceDescription
	}
	return a.insertLocked(entServices, s.ID, rec)
}

// DeleteService removes a service out of band (the API cannot delete
// services), as if an administrator had removed it. Contract lines that use
// it are left alone.
func (a *Autotask) DeleteService(id int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tables[entServices].delete(id)
}

// SetServiceActive activates or deactivates a service out of band.
func (a *Autotask) SetServiceActive(id int64, active bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mustGetLocked(entServices, id)["isActive"] = active
}

func (a *Autotask) mustGetLocked(entity string, id int64) record {
	rec := a.tables[entity].get(id)
	if rec == nil {
		panic(fmt.Sprintf("psatest: no %s record with id %d", entity, id))
	}
	return rec
}

// Companies returns every company in id order.
func (a *Autotask) Companies() []AutotaskCompany {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AutotaskCompany
	for _, r := range a.tables[entCompanies].all() {
		out = append(out, AutotaskCompany{
			ID:     r.id(),
			Name:   r.str("companyName"),
			Number: r.str("companyNumber"),
			Type:   picklistLabel(entCompanies, "companyType", r.int("companyType")),
			Active: r.active(),
		})
	}
	return out
}

// Contracts returns every contract in id order.
func (a *Autotask) Contracts() []AutotaskContract {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AutotaskContract
	for _, r := range a.tables[entContracts].all() {
		out = append(out, contractOf(r))
	}
	return out
}

func contractOf(r record) AutotaskContract {
	return AutotaskContract{
		ID:        r.id(),
		CompanyID: r.int("companyID"),
		Name:      r.str("contractName"),
		Type:      picklistLabel(entContracts, "contractType", r.int("contractType")),
		Status:    picklistLabel(entContracts, "status", r.int("status")),
		StartDate: r.time("startDate"),
		EndDate:   r.time("endDate"),
	}
}

// Services returns every service in id order.
func (a *Autotask) Services() []AutotaskService {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AutotaskService
	for _, r := range a.tables[entServices].all() {
		out = append(out, serviceOf(r))
	}
	return out
}

// Service returns the service with the given id.
func (a *Autotask) Service(id int64) (AutotaskService, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.tables[entServices].get(id)
	if r == nil {
		return AutotaskService{}, false
	}
	return serviceOf(r), true
}

func serviceOf(r record) AutotaskService {
	return AutotaskService{
		ID:                 r.id(),
		Name:               r.str("name"),
		Description:        r.str("description"),
		InvoiceDescription: r.str("invoiceDescription"),
		UnitPrice:          r.float("unitPrice"),
		UnitCost:           r.float("unitCost"),
		PeriodType:         picklistLabel(entServices, "periodType", r.int("periodType")),
		BillingCodeID:      r.int("billingCodeID"),
		Active:             r.active(),
	}
}

// BillingCodes returns every billing code in id order.
func (a *Autotask) BillingCodes() []AutotaskBillingCode {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AutotaskBillingCode
	for _, r := range a.tables[entBillingCodes].all() {
		out = append(out, AutotaskBillingCode{
			ID:      r.id(),
			Name:    r.str("name"),
			UseType: picklistLabel(entBillingCodes, "useType", r.int("useType")),
			Active:  r.active(),
		})
	}
	return out
}

// ContractServices returns every contract service line in id order.
func (a *Autotask) ContractServices() []AutotaskContractService {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AutotaskContractService
	for _, r := range a.tables[entContractServices].all() {
		out = append(out, AutotaskContractService{
			ID:         r.id(),
			ContractID: r.int("contractID"),
			ServiceID:  r.int("serviceID"),
			UnitPrice:  r.float("unitPrice"),
		})
	}
	return out
}

// UnitRows returns the ContractServiceUnits rows of one contract and service
// in date order.
func (a *Autotask) UnitRows(contractID, serviceID int64) []AutotaskUnit {
	a.mu.Lock()
	defer a.mu.Unlock()
	cs := a.contractServiceLocked(contractID, serviceID)
	if cs == nil {
		return nil
	}
	var out []AutotaskUnit
	for _, r := range a.unitRowsLocked(cs.id()) {
		out = append(out, unitOf(r))
	}
	return out
}

// LineRows returns the ContractServiceUnits rows of one contract service
// (line) in date order.
func (a *Autotask) LineRows(csID int64) []AutotaskUnit {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AutotaskUnit
	for _, r := range a.unitRowsLocked(csID) {
		out = append(out, unitOf(r))
	}
	return out
}

func unitOf(r record) AutotaskUnit {
	var posted *time.Time
	if t, ok := r["approveAndPostDate"].(time.Time); ok {
		posted = &t
	}
	return AutotaskUnit{
		ApproveAndPostDate: posted,
		ID:                 r.id(),
		ContractID:         r.int("contractID"),
		ContractServiceID:  r.int("contractServiceID"),
		ServiceID:          r.int("serviceID"),
		StartDate:          r.time("startDate"),
		EndDate:            r.time("endDate"),
		Units:              r.int("units"),
		Price:              r.float("price"),
	}
}

// Units returns the units of a contract's service line on the calendar date
// of at (in at's location); false when the contract has no line for the service or no row
// covers that day.
func (a *Autotask) Units(contractID, serviceID int64, at time.Time) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cs := a.contractServiceLocked(contractID, serviceID)
	if cs == nil {
		return 0, false
	}
	if r := a.unitRowAtLocked(cs.id(), day(at)); r != nil {
		return r.int("units"), true
	}
	return 0, false
}

// SetUnits sets a line to an absolute number of units from the calendar date
// of from on, out of band (no adjustment is recorded). It adds the line at the
// service's unit price when the contract has none.
func (a *Autotask) SetUnits(contractID, serviceID int64, units int64, from time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	contract := a.mustGetLocked(entContracts, contractID)
	cs := a.contractServiceLocked(contractID, serviceID)
	if cs == nil {
		svc := a.mustGetLocked(entServices, serviceID)
		cs = a.addContractServiceLocked(contract, serviceID, svc.float("unitPrice"), nil)
	}
	a.splitAtLocked(cs.id(), day(from), func(r record) { r["units"] = units })
}

// AddRepeatContractService adds another line of a service to a contract
// that may hold it already (a repeat service, which Autotask allows, see
// allowRepeatService), with zero units, and returns its id. unitPrice < 0
// means the service's unit price. The accessors and adjustments that name
// the service but not the line (Units, SetUnits, UnitRows, an adjustment
// without contractServiceID) keep using the service's first line; which
// line Autotask picks is not documented. LineUnits and SetLineUnits reach
// any line.
func (a *Autotask) AddRepeatContractService(contractID, serviceID int64, unitPrice float64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	contract := a.mustGetLocked(entContracts, contractID)
	svc := a.mustGetLocked(entServices, serviceID)
	if unitPrice < 0 {
		unitPrice = svc.float("unitPrice")
	}
	return a.addContractServiceLocked(contract, serviceID, unitPrice, nil).id()
}

// LineUnits returns the units of the contract service (line) csID on the
// calendar date of at; false when no row covers that day.
func (a *Autotask) LineUnits(csID int64, at time.Time) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r := a.unitRowAtLocked(csID, day(at)); r != nil {
		return r.int("units"), true
	}
	return 0, false
}

// SetLineUnits sets the contract service (line) csID to an absolute number
// of units from the calendar date of from on, out of band.
func (a *Autotask) SetLineUnits(csID int64, units int64, from time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mustGetLocked(entContractServices, csID)
	a.splitAtLocked(csID, day(from), func(r record) { r["units"] = units })
}

// PostPeriods approves and posts (invoices) the billing periods of a
// contract up to the calendar date of through: every unit row of the
// contract's lines that starts on or before it gets approveAndPostDate,
// the simulator's clock. Adjustments into posted rows are accepted and
// flagged (AutotaskAdjustment.IntoPostedPeriod).
func (a *Autotask) PostPeriods(contractID int64, through time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mustGetLocked(entContracts, contractID)
	a.postPeriodsLocked(contractID, day(through))
}

// PostPeriod marks the unit rows of a contract that contain at (a
// calendar day) as approved and posted, and no other: a period posted out
// of order, while earlier ones are still open.
func (a *Autotask) PostPeriod(contractID int64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mustGetLocked(entContracts, contractID)
	at, now := day(at), a.clock().UTC()
	for _, cs := range a.tables[entContractServices].all() {
		if cs.int("contractID") != contractID {
			continue
		}
		for _, r := range a.unitRowsLocked(cs.id()) {
			if !r.time("startDate").After(at) && !r.time("endDate").Before(at) {
				r["approveAndPostDate"] = now
			}
		}
	}
}

func (a *Autotask) postPeriodsLocked(contractID int64, through time.Time) {
	now := a.clock().UTC()
	for _, cs := range a.tables[entContractServices].all() {
		if cs.int("contractID") != contractID {
			continue
		}
		for _, r := range a.unitRowsLocked(cs.id()) {
			if _, ok := r["approveAndPostDate"]; !ok && !r.time("startDate").After(through) {
				r["approveAndPostDate"] = now
			}
		}
	}
}

// AddContractService adds a service line to a contract (with zero units)
// and returns its id. unitPrice < 0 means the service's unit price.
func (a *Autotask) AddContractService(contractID, serviceID int64, unitPrice float64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	contract := a.mustGetLocked(entContracts, contractID)
	if cs := a.contractServiceLocked(contractID, serviceID); cs != nil {
		return cs.id()
	}
	svc := a.mustGetLocked(entServices, serviceID)
	if unitPrice < 0 {
		unitPrice = svc.float("unitPrice")
	}
	return a.addContractServiceLocked(contract, serviceID, unitPrice, nil).id()
}

// Adjustments returns every accepted ContractServiceAdjustment, oldest
// first.
func (a *Autotask) Adjustments() []AutotaskAdjustment {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AutotaskAdjustment, len(a.adjustments))
	copy(out, a.adjustments)
	return out
}

// RestrictResource gives resource id a security level that sees nothing:
// a read that impersonates it (ImpersonationResourceId) gets no rows from
// a query, a count of 0 and a null item from a GET, without an error, as
// Autotask answers a restricted security level (field-notes.md §4,
// AT-S1). Writes that impersonate it are not affected.
func (a *Autotask) RestrictResource(id int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.restricted[id] = true
}

// hidden reports whether r reads as a restricted resource (see
// RestrictResource).
func (a *Autotask) hidden(r *http.Request) bool {
	id := impersonation(r)
	if id == 0 {
		return false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.restricted[id]
}

// searchHidden reports whether a query of d by r finds nothing: r reads
// as a restricted resource (hidden), or d is Tickets while the server
// hides ticket searches (Server.HideTicketSearches).
func (a *Autotask) searchHidden(r *http.Request, d *entityDef) bool {
	return a.hidden(r) || d.Name == entTickets && a.srv.ticketSearchesHidden.Load()
}

// HourlyCount returns the number of requests counted in the rolling hour,
// as ThresholdInformation reports it.
func (a *Autotask) HourlyCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneHitsLocked(a.clock())
	return len(a.hits)
}

// SetHourlyCount pretends n requests were made just now, e.g. to test a
// client near the hourly limit.
func (a *Autotask) SetHourlyCount(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock()
	a.hits = a.hits[:0]
	for range n {
		a.hits = append(a.hits, now)
	}
}
