package psatest

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults of the simulated ConnectWise PSA company and API member.
const (
	DefaultConnectWiseCompany    = "msp"
	DefaultConnectWisePublicKey  = "sim-public-key"
	DefaultConnectWisePrivateKey = "sim-private-key"
	DefaultConnectWiseClientID   = "00000000-0000-4000-8000-00000000c11d"
	DefaultConnectWiseCodebase   = "v4_6_release/"
	// ConnectWiseAPIVersion is the version the simulator reports in
	// api-current-version and the newest it accepts in Accept, unless
	// WithConnectWiseAPIVersion sets another.
	ConnectWiseAPIVersion = "2025.16"
)

// First ids the ConnectWise simulator allocates, per kind.
const (
	cwFirstCompany   = 250
	cwFirstCatalog   = 700
	cwFirstAgreement = 800
	cwFirstAddition  = 3500
)

// ConnectWise is the state of a simulated ConnectWise PSA company. Its
// methods seed and inspect that state out of band (they are not part of the
// ConnectWise API and are not counted against its limits). All methods are
// safe for concurrent use; one mutex guards the whole company.
//
// Accessors given an id that does not exist panic: they are test set-up.
type ConnectWise struct {
	srv                                  *Server
	company, publicKey, privateKey, clID string
	version                              string // the server's API version
	clock                                func() time.Time

	mu         sync.Mutex
	codebase   string
	rateLimit  int
	ratePer    time.Duration
	hits       []time.Time
	companies  map[int64]map[string]any
	catalog    map[int64]map[string]any
	agreements map[int64]map[string]any
	additions  map[int64]map[string]any
	// types and subcategories are the product types and subcategories a
	// catalog item may name (procurement/types, procurement/subcategories).
	types         map[int64]map[string]any
	subcategories map[int64]map[string]any
	// byAgreement indexes additions by agreement id (their ids in order),
	// so that an agreement's additions are found without a scan.
	byAgreement map[int64][]int64
	nextID      map[string]int64
	service     *cwServiceDesk // tickets and their settings; see connectwise_tickets.go
	// additionsStayActive keeps an addition's agreementStatus Active after
	// its cancelledDate passes (see WithConnectWiseAdditionsStayActive).
	additionsStayActive bool
	// additionsHidden holds the agreements whose additions the API
	// member's security role cannot see (see HideAdditions).
	additionsHidden map[int64]bool
}

// ConnectWiseOption configures the simulated ConnectWise company; pass it
// with WithConnectWise.
type ConnectWiseOption func(*ConnectWise)

// WithConnectWise applies ConnectWise options to the server's ConnectWise
// company, after its fixture (if any) is loaded.
func WithConnectWise(opts ...ConnectWiseOption) Option {
	return func(c *config) { c.connectwise = append(c.connectwise, opts...) }
}

// WithConnectWiseCredentials sets the login company id, the API member's
// keys and the integration's clientId. They win over a fixture's. The
// defaults are DefaultConnectWiseCompany, DefaultConnectWisePublicKey,
// DefaultConnectWisePrivateKey and DefaultConnectWiseClientID.
func WithConnectWiseCredentials(company, publicKey, privateKey, clientID string) Option {
	return WithConnectWise(func(cw *ConnectWise) {
		cw.company, cw.publicKey, cw.privateKey, cw.clID = company, publicKey, privateKey, clientID
	})
}

// WithConnectWiseRateLimit makes the simulator answer 429 with Retry-After
// once more than n requests arrive within per. The default is no limit
// (ConnectWise documents none).
func WithConnectWiseRateLimit(n int, per time.Duration) Option {
	return WithConnectWise(func(cw *ConnectWise) { cw.rateLimit, cw.ratePer = n, per })
}

// WithConnectWiseAPIVersion makes the simulator the given version of
// ConnectWise, such as "2024.1" for an on-premises server not yet updated:
// it reports it in api-current-version and refuses a newer one in Accept.
func WithConnectWiseAPIVersion(v string) Option {
	return WithConnectWise(func(cw *ConnectWise) { cw.version = v })
}

// WithConnectWiseAdditionsStayActive makes the simulator serve every
// addition with agreementStatus "Active", also after its cancelledDate has
// passed. By default an addition turns "Cancelled" once its cancelledDate
// is not after the clock. The references do not say which ConnectWise
// does (connectwise-and-sophos.md §6: whether an addition's
// agreementStatus is derived from cancelledDate is unknown), so a client
// must be right under both; this option is the stricter of the two, where
// agreementStatus tells nothing about cancellation.
func WithConnectWiseAdditionsStayActive() Option {
	return WithConnectWise(func(cw *ConnectWise) { cw.additionsStayActive = true })
}

// SetAdditionsStayActive switches what WithConnectWiseAdditionsStayActive
// sets, at any time.
func (cw *ConnectWise) SetAdditionsStayActive(on bool) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.additionsStayActive = on
}

// HideAdditions makes the list (and count) of agreement id's additions
// answer as if the API member's security role could not see them: 200 with
// `[]` (a count of 0), not an error, while the additions stay on the
// agreement and a POST still adds one. A cache or proxy that serves an
// old, empty page answers alike. hide false shows them again.
func (cw *ConnectWise) HideAdditions(id int64, hide bool) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.additionsHidden == nil {
		cw.additionsHidden = map[int64]bool{}
	}
	cw.additionsHidden[id] = hide
}

func newConnectWise(s *Server, c config) *ConnectWise {
	cw := &ConnectWise{
		srv:           s,
		company:       DefaultConnectWiseCompany,
		publicKey:     DefaultConnectWisePublicKey,
		privateKey:    DefaultConnectWisePrivateKey,
		clID:          DefaultConnectWiseClientID,
		version:       ConnectWiseAPIVersion,
		clock:         c.clock,
		codebase:      DefaultConnectWiseCodebase,
		companies:     map[int64]map[string]any{},
		catalog:       map[int64]map[string]any{},
		agreements:    map[int64]map[string]any{},
		additions:     map[int64]map[string]any{},
		byAgreement:   map[int64][]int64{},
		types:         map[int64]map[string]any{},
		subcategories: map[int64]map[string]any{},
		nextID: map[string]int64{
			"company": cwFirstCompany, "catalog": cwFirstCatalog,
			"agreement": cwFirstAgreement, "addition": cwFirstAddition,
		},
	}
	if f := c.fixture; f != nil && f.ConnectWise != nil {
		fc := f.ConnectWise
		for _, p := range []struct {
			dst *string
			v   string
		}{{&cw.company, fc.Company}, {&cw.publicKey, fc.PublicKey}, {&cw.privateKey, fc.PrivateKey}, {&cw.clID, fc.ClientID}} {
			if p.v != "" {
				*p.dst = p.v
			}
		}
		if fc.Codebase != "" {
			cw.codebase = normCodebase(fc.Codebase)
		}
	}
	for id, name := range ConnectWiseProductTypes {
		cw.addTypeLocked(id, name)
	}
	for id, name := range ConnectWiseSubcategories {
		cw.addSubcategoryLocked(id, name)
	}
	return cw
}

func normCodebase(cb string) string { return strings.Trim(cb, "/") + "/" }

// Credentials returns the login company id, the public and private keys and
// the clientId.
func (cw *ConnectWise) Credentials() (company, publicKey, privateKey, clientID string) {
	return cw.company, cw.publicKey, cw.privateKey, cw.clID
}

// Codebase returns the current codebase, such as "v4_6_release/".
func (cw *ConnectWise) Codebase() string {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.codebase
}

// ChangeCodebase moves the company to another codebase, as a hosted
// ConnectWise upgrade does: /login/companyinfo reports the new one and
// requests under the old one get 404 until the client discovers it again.
func (cw *ConnectWise) ChangeCodebase(codebase string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.codebase = normCodebase(codebase)
}

// SetRateLimit changes the simulated request limit (see
// WithConnectWiseRateLimit); n 0 removes it.
func (cw *ConnectWise) SetRateLimit(n int, per time.Duration) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.rateLimit, cw.ratePer, cw.hits = n, per, nil
}

func (cw *ConnectWise) newIDLocked(kind string, want int64) int64 {
	if want != 0 {
		if want >= cw.nextID[kind] {
			cw.nextID[kind] = want + 1
		}
		return want
	}
	id := cw.nextID[kind]
	cw.nextID[kind] = id + 1
	return id
}

func (cw *ConnectWise) info() map[string]any {
	return map[string]any{"lastUpdated": formatCWTime(cw.clock()), "updatedBy": "ApiMember"}
}

// ConnectWiseCompany is a company as the accessors see it.
type ConnectWiseCompany struct {
	ID         int64  `json:"id"`
	Identifier string `json:"identifier"`
	Name       string `json:"name"`
	// Status is the status name; "" means "Active".
	Status  string `json:"status"`
	Deleted bool   `json:"deleted"`
}

// ConnectWiseAgreement is an agreement as the accessors see it.
type ConnectWiseAgreement struct {
	ID        int64  `json:"id"`
	CompanyID int64  `json:"companyId"`
	Name      string `json:"name"`
	// Type is the agreement type name; "" means "Managed Services".
	Type string `json:"type"`
	// Status is Active (the default when ""), Cancelled, Expired or Inactive.
	Status string `json:"status"`
	// StartDate zero means 1 January of the clock's year; EndDate zero
	// means no end date.
	StartDate time.Time `json:"startDate"`
	EndDate   time.Time `json:"endDate"`
	// BillingCycle is the billing cycle name; "" means "Monthly".
	BillingCycle string `json:"billingCycle"`
}

// ConnectWiseCatalogItem is a catalog item (product) as the accessors see it.
type ConnectWiseCatalogItem struct {
	ID int64 `json:"id"`
	// Identifier is the product id; "" derives one from Description.
	Identifier  string `json:"identifier"`
	Description string `json:"description"`
	// CustomerDescription "" means Description.
	CustomerDescription string `json:"customerDescription"`
	// Notes are the internal notes.
	Notes string  `json:"notes"`
	Price float64 `json:"price"`
	Cost  float64 `json:"cost"`
	// ProductClass "" means "NonInventory".
	ProductClass string `json:"productClass"`
	Inactive     bool   `json:"inactive"`
}

// ConnectWiseAddition is an agreement addition as the accessors see it.
type ConnectWiseAddition struct {
	ID          int64   `json:"id"`
	AgreementID int64   `json:"agreementId"`
	ProductID   int64   `json:"productId"`
	Quantity    float64 `json:"quantity"`
	// UnitPrice and UnitCost nil mean the catalog item's price and cost.
	UnitPrice *float64 `json:"unitPrice"`
	UnitCost  *float64 `json:"unitCost"`
	// BillCustomer "" means "Billable".
	BillCustomer string `json:"billCustomer"`
	// EffectiveDate zero means the agreement's start date.
	EffectiveDate time.Time `json:"effectiveDate"`
	CancelledDate time.Time `json:"cancelledDate"`
	// Status is the addition's agreementStatus as served (read-only):
	// Cancelled once CancelledDate has passed, else Active; always Active
	// with WithConnectWiseAdditionsStayActive.
	Status string `json:"status"`
}

// AddCompany adds an active company and returns its id.
func (cw *ConnectWise) AddCompany(name string) int64 {
	return cw.AddCompanyDetails(ConnectWiseCompany{Name: name})
}

// AddCompanyDetails adds a company as given and returns its id.
func (cw *ConnectWise) AddCompanyDetails(c ConnectWiseCompany) int64 {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.addCompanyLocked(c)
}

func (cw *ConnectWise) addCompanyLocked(c ConnectWiseCompany) int64 {
	id := cw.newIDLocked("company", c.ID)
	if c.Identifier == "" {
		c.Identifier = slugCW(c.Name, 30)
	}
	if c.Status == "" {
		c.Status = "Active"
	}
	cw.companies[id] = map[string]any{
		"id": float64(id), "identifier": c.Identifier, "name": c.Name,
		"status":      map[string]any{"id": float64(1), "name": c.Status},
		"deletedFlag": c.Deleted,
		"types":       []any{map[string]any{"id": float64(1), "name": "Client"}},
		"_info":       cw.info(),
	}
	return id
}

// AddAgreement adds an agreement and returns its id; zero fields take the
// defaults documented on ConnectWiseAgreement.
func (cw *ConnectWise) AddAgreement(a ConnectWiseAgreement) int64 {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.addAgreementLocked(a)
}

func (cw *ConnectWise) addAgreementLocked(a ConnectWiseAgreement) int64 {
	if cw.companies[a.CompanyID] == nil {
		panic(fmt.Sprintf("psatest: no ConnectWise company with id %d", a.CompanyID))
	}
	id := cw.newIDLocked("agreement", a.ID)
	if a.Type == "" {
		a.Type = "Managed Services"
	}
	if a.Status == "" {
		a.Status = "Active"
	}
	if a.BillingCycle == "" {
		a.BillingCycle = "Monthly"
	}
	if a.StartDate.IsZero() {
		a.StartDate = time.Date(cw.clock().UTC().Year(), time.January, 1, 0, 0, 0, 0, time.UTC)
	}
	rec := map[string]any{
		"id": float64(id), "name": a.Name,
		"type":             map[string]any{"id": float64(1), "name": a.Type},
		"company":          map[string]any{"id": float64(a.CompanyID)},
		"agreementStatus":  a.Status,
		"cancelledFlag":    a.Status == "Cancelled",
		"startDate":        formatCWTime(a.StartDate),
		"noEndingDateFlag": a.EndDate.IsZero(),
		"billingCycle":     map[string]any{"id": float64(1), "name": a.BillingCycle},
		"_info":            cw.info(),
	}
	if !a.EndDate.IsZero() {
		rec["endDate"] = formatCWTime(a.EndDate)
	}
	cw.agreements[id] = rec
	return id
}

// SetAgreementStatus sets an agreement's agreementStatus (Active,
// Cancelled, Expired, Inactive), and cancelledFlag with it.
func (cw *ConnectWise) SetAgreementStatus(id int64, status string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	rec := cw.mustLocked(cw.agreements, "agreement", id)
	rec["agreementStatus"] = status
	rec["cancelledFlag"] = status == "Cancelled"
	if status == "Cancelled" {
		rec["dateCancelled"] = formatCWTime(cw.clock())
	}
}

// SetAgreementEndDate sets an agreement's endDate (and noEndingDateFlag:
// a zero end is none), as a ConnectWise user who ends an agreement early
// or extends it does.
func (cw *ConnectWise) SetAgreementEndDate(id int64, end time.Time) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	rec := cw.mustLocked(cw.agreements, "agreement", id)
	rec["noEndingDateFlag"] = end.IsZero()
	delete(rec, "endDate")
	if !end.IsZero() {
		rec["endDate"] = formatCWTime(end)
	}
}

// SetAgreementStartDate sets an agreement's startDate, as a ConnectWise
// user who postpones a renewal does.
func (cw *ConnectWise) SetAgreementStartDate(id int64, start time.Time) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.mustLocked(cw.agreements, "agreement", id)["startDate"] = formatCWTime(start)
}

// SetCompanyDeleted sets a company's deletedFlag, as ConnectWise does to
// the company merged into another (its status stays Active).
func (cw *ConnectWise) SetCompanyDeleted(id int64, deleted bool) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.mustLocked(cw.companies, "company", id)["deletedFlag"] = deleted
}

// SetAgreementCompany moves an agreement to another company, as a
// ConnectWise user who corrects an agreement's company does.
func (cw *ConnectWise) SetAgreementCompany(id, companyID int64) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.mustLocked(cw.agreements, "agreement", id)["company"] = map[string]any{"id": float64(companyID)}
}

// SetAgreementBillingCycle sets the name of an agreement's billingCycle
// (Monthly, Quarterly, Annually, One Time...).
func (cw *ConnectWise) SetAgreementBillingCycle(id int64, cycle string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.mustLocked(cw.agreements, "agreement", id)["billingCycle"] = map[string]any{"id": float64(1), "name": cycle}
}

// AddCatalogItem adds a catalog item and returns its id; zero fields take
// the defaults documented on ConnectWiseCatalogItem.
func (cw *ConnectWise) AddCatalogItem(it ConnectWiseCatalogItem) int64 {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.addCatalogLocked(it)
}

func (cw *ConnectWise) addCatalogLocked(it ConnectWiseCatalogItem) int64 {
	id := cw.newIDLocked("catalog", it.ID)
	if it.Identifier == "" {
		it.Identifier = slugCW(it.Description, 60)
	}
	if it.CustomerDescription == "" {
		it.CustomerDescription = it.Description
	}
	if it.ProductClass == "" {
		it.ProductClass = "NonInventory"
	}
	cw.catalog[id] = map[string]any{
		"id": float64(id), "identifier": it.Identifier, "description": it.Description,
		"customerDescription": it.CustomerDescription, "notes": it.Notes, "price": it.Price, "cost": it.Cost,
		"productClass": it.ProductClass, "inactiveFlag": it.Inactive,
		"billableOption": "Billable", "recurringFlag": false,
		"_info": cw.info(),
	}
	return id
}

// ConnectWiseProductTypes and ConnectWiseSubcategories are the product
// types and subcategories a new simulator holds, by id; AddProductType and
// AddSubcategory add more.
var (
	ConnectWiseProductTypes  = map[int64]string{1: "Service", 2: "Software", 3: "Hardware"}
	ConnectWiseSubcategories = map[int64]string{1: "Managed Services", 2: "Security", 3: "Licensing"}
)

// AddProductType adds a product type (procurement/types) of the given id
// and name.
func (cw *ConnectWise) AddProductType(id int64, name string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.addTypeLocked(id, name)
}

func (cw *ConnectWise) addTypeLocked(id int64, name string) {
	cw.types[id] = map[string]any{"id": float64(id), "name": name, "inactiveFlag": false, "defaultFlag": false, "_info": cw.info()}
}

// AddSubcategory adds a product subcategory (procurement/subcategories) of
// the given id and name, in category 1.
func (cw *ConnectWise) AddSubcategory(id int64, name string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.addSubcategoryLocked(id, name)
}

func (cw *ConnectWise) addSubcategoryLocked(id int64, name string) {
	cw.subcategories[id] = map[string]any{"id": float64(id), "name": name, "inactiveFlag": false,
		"category": map[string]any{"id": float64(1), "name": "Services"}, "_info": cw.info()}
}

// DeleteCatalogItem removes a catalog item out of band; additions that use
// it are left alone.
func (cw *ConnectWise) DeleteCatalogItem(id int64) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	delete(cw.catalog, id)
}

// SetCatalogItemInactive sets or clears a catalog item's inactiveFlag.
func (cw *ConnectWise) SetCatalogItemInactive(id int64, inactive bool) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.mustLocked(cw.catalog, "catalog item", id)["inactiveFlag"] = inactive
}

// AddAddition adds a product to an agreement and returns the addition id.
// Nothing stops two active additions of one product: ConnectWise allows it.
func (cw *ConnectWise) AddAddition(a ConnectWiseAddition) int64 {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.addAdditionLocked(a)
}

func (cw *ConnectWise) addAdditionLocked(a ConnectWiseAddition) int64 {
	ag := cw.mustLocked(cw.agreements, "agreement", a.AgreementID)
	prod := cw.mustLocked(cw.catalog, "catalog item", a.ProductID)
	id := cw.newIDLocked("addition", a.ID)
	if a.BillCustomer == "" {
		a.BillCustomer = "Billable"
	}
	price, cost := prod["price"], prod["cost"]
	if a.UnitPrice != nil {
		price = *a.UnitPrice
	}
	if a.UnitCost != nil {
		cost = *a.UnitCost
	}
	eff := ag["startDate"]
	if !a.EffectiveDate.IsZero() {
		eff = formatCWTime(a.EffectiveDate)
	}
	rec := map[string]any{
		"id": float64(id), "product": map[string]any{"id": float64(a.ProductID)},
		"quantity": a.Quantity, "lessIncluded": float64(0), "unitPrice": price, "unitCost": cost,
		"billCustomer": a.BillCustomer, "effectiveDate": eff, "cancelledDate": nil,
		"agreementId": float64(a.AgreementID), "taxableFlag": false, "_info": cw.info(),
	}
	if !a.CancelledDate.IsZero() {
		rec["cancelledDate"] = formatCWTime(a.CancelledDate)
	}
	cw.putAdditionLocked(id, rec)
	return id
}

// putAdditionLocked stores a new addition and indexes it by agreement.
func (cw *ConnectWise) putAdditionLocked(id int64, rec map[string]any) {
	cw.additions[id] = rec
	ag := num(rec["agreementId"])
	cw.byAgreement[ag] = insertSorted(cw.byAgreement[ag], id)
}

// deleteLocked removes a record of kind (from its index too).
func (cw *ConnectWise) deleteLocked(kind string, id int64) {
	if rec := cw.additions[id]; kind == "addition" && rec != nil {
		ag := num(rec["agreementId"])
		cw.byAgreement[ag] = removeSorted(cw.byAgreement[ag], id)
	}
	delete(cw.tableLocked(kind), id)
}

// SetQuantity sets an addition's quantity out of band.
func (cw *ConnectWise) SetQuantity(additionID int64, quantity float64) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.mustLocked(cw.additions, "addition", additionID)["quantity"] = quantity
}

// CancelAddition sets an addition's cancelledDate out of band.
func (cw *ConnectWise) CancelAddition(additionID int64, at time.Time) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.mustLocked(cw.additions, "addition", additionID)["cancelledDate"] = formatCWTime(at)
}

// Additions returns an agreement's additions (cancelled ones too) in id order.
func (cw *ConnectWise) Additions(agreementID int64) []ConnectWiseAddition {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	var out []ConnectWiseAddition
	for _, id := range cw.byAgreement[agreementID] {
		out = append(out, additionOf(cw.renderAdditionLocked(cw.additions[id])))
	}
	return out
}

// Addition returns the addition with the given id.
func (cw *ConnectWise) Addition(id int64) (ConnectWiseAddition, bool) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	r := cw.additions[id]
	if r == nil {
		return ConnectWiseAddition{}, false
	}
	return additionOf(cw.renderAdditionLocked(r)), true
}

func (cw *ConnectWise) additionsLocked() []ConnectWiseAddition {
	out := []ConnectWiseAddition{}
	for _, id := range sortedIDs(cw.additions) {
		out = append(out, additionOf(cw.renderAdditionLocked(cw.additions[id])))
	}
	return out
}

// Quantity returns the quantity of the only active addition of a product on
// an agreement whose cancelledDate, if any, is after the clock; false when
// there is none or more than one.
func (cw *ConnectWise) Quantity(agreementID, productID int64) (float64, bool) {
	var found []ConnectWiseAddition
	now := cw.clock()
	for _, a := range cw.Additions(agreementID) {
		if a.ProductID == productID && a.Status == "Active" && (a.CancelledDate.IsZero() || a.CancelledDate.After(now)) {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0].Quantity, true
}

func additionOf(r map[string]any) ConnectWiseAddition {
	q, _ := r["quantity"].(float64)
	a := ConnectWiseAddition{
		ID: num(r["id"]), AgreementID: num(r["agreementId"]), ProductID: num(lookupPath(r, []string{"product", "id"})),
		Quantity: q, BillCustomer: str(r["billCustomer"]), Status: str(r["agreementStatus"]),
	}
	if p, ok := r["unitPrice"].(float64); ok {
		a.UnitPrice = &p
	}
	if c, ok := r["unitCost"].(float64); ok {
		a.UnitCost = &c
	}
	a.EffectiveDate, _ = parseCWTime(str(r["effectiveDate"]))
	a.CancelledDate, _ = parseCWTime(str(r["cancelledDate"]))
	return a
}

// Companies returns every company in id order.
func (cw *ConnectWise) Companies() []ConnectWiseCompany {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.companiesLocked()
}

func (cw *ConnectWise) companiesLocked() []ConnectWiseCompany {
	out := []ConnectWiseCompany{}
	for _, id := range sortedIDs(cw.companies) {
		r := cw.companies[id]
		out = append(out, ConnectWiseCompany{ID: id, Identifier: str(r["identifier"]), Name: str(r["name"]),
			Status: str(lookupPath(r, []string{"status", "name"})), Deleted: r["deletedFlag"] == true})
	}
	return out
}

// Agreements returns every agreement in id order.
func (cw *ConnectWise) Agreements() []ConnectWiseAgreement {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.agreementsLocked()
}

func (cw *ConnectWise) agreementsLocked() []ConnectWiseAgreement {
	out := []ConnectWiseAgreement{}
	for _, id := range sortedIDs(cw.agreements) {
		r := cw.agreements[id]
		a := ConnectWiseAgreement{ID: id, CompanyID: num(lookupPath(r, []string{"company", "id"})), Name: str(r["name"]),
			Type: str(lookupPath(r, []string{"type", "name"})), Status: str(r["agreementStatus"]),
			BillingCycle: str(lookupPath(r, []string{"billingCycle", "name"}))}
		a.StartDate, _ = parseCWTime(str(r["startDate"]))
		a.EndDate, _ = parseCWTime(str(r["endDate"]))
		out = append(out, a)
	}
	return out
}

// CatalogItems returns every catalog item in id order.
func (cw *ConnectWise) CatalogItems() []ConnectWiseCatalogItem {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.catalogLocked()
}

func (cw *ConnectWise) catalogLocked() []ConnectWiseCatalogItem {
	out := []ConnectWiseCatalogItem{}
	for _, id := range sortedIDs(cw.catalog) {
		out = append(out, catalogOf(cw.catalog[id]))
	}
	return out
}

// CatalogItem returns the catalog item with the given id.
func (cw *ConnectWise) CatalogItem(id int64) (ConnectWiseCatalogItem, bool) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	r := cw.catalog[id]
	if r == nil {
		return ConnectWiseCatalogItem{}, false
	}
	return catalogOf(r), true
}

func catalogOf(r map[string]any) ConnectWiseCatalogItem {
	p, _ := r["price"].(float64)
	c, _ := r["cost"].(float64)
	return ConnectWiseCatalogItem{ID: num(r["id"]), Identifier: str(r["identifier"]), Description: str(r["description"]),
		CustomerDescription: str(r["customerDescription"]), Notes: str(r["notes"]), Price: p, Cost: c,
		ProductClass: str(r["productClass"]), Inactive: r["inactiveFlag"] == true}
}

// ConnectWiseState is the simulated company as GET /_sim/connectwise/state
// shows it (the accessors' view, not ConnectWise's wire format).
type ConnectWiseState struct {
	Codebase   string                   `json:"codebase"`
	Companies  []ConnectWiseCompany     `json:"companies"`
	Catalog    []ConnectWiseCatalogItem `json:"catalog"`
	Agreements []ConnectWiseAgreement   `json:"agreements"`
	Additions  []ConnectWiseAddition    `json:"additions"`
}

// State returns a consistent snapshot of the company.
func (cw *ConnectWise) State() ConnectWiseState {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return ConnectWiseState{
		Codebase:   cw.codebase,
		Companies:  cw.companiesLocked(),
		Catalog:    cw.catalogLocked(),
		Agreements: cw.agreementsLocked(),
		Additions:  cw.additionsLocked(),
	}
}

func (cw *ConnectWise) mustLocked(table map[int64]map[string]any, kind string, id int64) map[string]any {
	r := table[id]
	if r == nil {
		panic(fmt.Sprintf("psatest: no ConnectWise %s with id %d", kind, id))
	}
	return r
}

func sortedIDs(t map[int64]map[string]any) []int64 {
	ids := make([]int64, 0, len(t))
	for id := range t {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// slugCW derives an identifier from a name: letters, digits, '-', '_' and
// '.' kept, runs of anything else become '_'.
func slugCW(name string, limit int) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.TrimSpace(name) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			if sep && b.Len() > 0 {
				b.WriteByte('_')
			}
			sep = false
			b.WriteRune(r)
			continue
		}
		sep = true
	}
	s := b.String()
	if len(s) > limit {
		s = s[:limit]
	}
	return s
}

// ConnectWiseFixture seeds a simulated ConnectWise company. Records refer
// to each other by name (companies, agreements) or identifier (catalog
// items), or by id.
type ConnectWiseFixture struct {
	// Company, PublicKey, PrivateKey and ClientID replace the default
	// credentials when set; WithConnectWiseCredentials wins over them.
	Company    string `json:"company,omitempty"`
	PublicKey  string `json:"publicKey,omitempty"`
	PrivateKey string `json:"privateKey,omitempty"`
	ClientID   string `json:"clientId,omitempty"`
	// Codebase replaces DefaultConnectWiseCodebase when set.
	Codebase string `json:"codebase,omitempty"`

	Companies  []FixtureCWCompany   `json:"companies,omitempty"`
	Catalog    []FixtureCWCatalog   `json:"catalog,omitempty"`
	Agreements []FixtureCWAgreement `json:"agreements,omitempty"`
	Additions  []FixtureCWAddition  `json:"additions,omitempty"`
}

// FixtureCWCompany is a ConnectWise company in a fixture.
type FixtureCWCompany struct {
	ID         int64  `json:"id,omitempty"`
	Identifier string `json:"identifier,omitempty"`
	Name       string `json:"name"`
	Status     string `json:"status,omitempty"`
	Deleted    bool   `json:"deleted,omitempty"`
}

// FixtureCWCatalog is a ConnectWise catalog item in a fixture.
type FixtureCWCatalog struct {
	ID                  int64   `json:"id,omitempty"`
	Identifier          string  `json:"identifier,omitempty"`
	Description         string  `json:"description"`
	CustomerDescription string  `json:"customerDescription,omitempty"`
	Notes               string  `json:"notes,omitempty"`
	Price               float64 `json:"price"`
	Cost                float64 `json:"cost,omitempty"`
	ProductClass        string  `json:"productClass,omitempty"`
	Inactive            bool    `json:"inactive,omitempty"`
}

// FixtureCWAgreement is a ConnectWise agreement in a fixture.
type FixtureCWAgreement struct {
	ID   int64  `json:"id,omitempty"`
	Name string `json:"name"`
	// Company is the company's name or identifier; CompanyID may be given
	// instead.
	Company      string `json:"company,omitempty"`
	CompanyID    int64  `json:"companyId,omitempty"`
	Type         string `json:"type,omitempty"`
	Status       string `json:"status,omitempty"`
	StartDate    string `json:"startDate,omitempty"`
	EndDate      string `json:"endDate,omitempty"`
	BillingCycle string `json:"billingCycle,omitempty"`
}

// FixtureCWAddition is an agreement addition in a fixture.
type FixtureCWAddition struct {
	ID int64 `json:"id,omitempty"`
	// Agreement is the agreement's name; AgreementID may be given instead.
	Agreement   string `json:"agreement,omitempty"`
	AgreementID int64  `json:"agreementId,omitempty"`
	// Product is the catalog item's identifier; ProductID may be given
	// instead.
	Product       string   `json:"product,omitempty"`
	ProductID     int64    `json:"productId,omitempty"`
	Quantity      float64  `json:"quantity"`
	UnitPrice     *float64 `json:"unitPrice,omitempty"`
	BillCustomer  string   `json:"billCustomer,omitempty"`
	EffectiveDate string   `json:"effectiveDate,omitempty"`
	CancelledDate string   `json:"cancelledDate,omitempty"`
}

// mergeConnectWise adds o's ConnectWise records to f.
func (f *Fixture) mergeConnectWise(o *Fixture) {
	if o.ConnectWise == nil {
		return
	}
	if f.ConnectWise == nil {
		f.ConnectWise = &ConnectWiseFixture{}
	}
	a, b := f.ConnectWise, o.ConnectWise
	for _, p := range []struct {
		dst *string
		v   string
	}{{&a.Company, b.Company}, {&a.PublicKey, b.PublicKey}, {&a.PrivateKey, b.PrivateKey}, {&a.ClientID, b.ClientID}, {&a.Codebase, b.Codebase}} {
		if p.v != "" {
			*p.dst = p.v
		}
	}
	a.Companies = append(a.Companies, b.Companies...)
	a.Catalog = append(a.Catalog, b.Catalog...)
	a.Agreements = append(a.Agreements, b.Agreements...)
	a.Additions = append(a.Additions, b.Additions...)
}

// load seeds the company from a fixture.
func (cw *ConnectWise) load(f *ConnectWiseFixture) (err error) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("psatest: connectwise fixture: %v", r)
		}
	}()
	companies := map[string]int64{}
	for _, c := range f.Companies {
		id := cw.addCompanyLocked(ConnectWiseCompany(c))
		companies[strings.ToLower(c.Name)] = id
		companies[strings.ToLower(str(cw.companies[id]["identifier"]))] = id
	}
	products := map[string]int64{}
	for _, c := range f.Catalog {
		id := cw.addCatalogLocked(ConnectWiseCatalogItem(c))
		products[strings.ToLower(str(cw.catalog[id]["identifier"]))] = id
	}
	agreements := map[string]int64{}
	for _, a := range f.Agreements {
		company := a.CompanyID
		if a.Company != "" {
			id, ok := companies[strings.ToLower(a.Company)]
			if !ok {
				return fmt.Errorf("psatest: connectwise fixture: agreement %q: unknown company %q", a.Name, a.Company)
			}
			company = id
		}
		start, err := fixtureDate(a.StartDate)
		if err != nil {
			return fmt.Errorf("psatest: connectwise fixture: agreement %q: startDate: %w", a.Name, err)
		}
		end, err := fixtureDate(a.EndDate)
		if err != nil {
			return fmt.Errorf("psatest: connectwise fixture: agreement %q: endDate: %w", a.Name, err)
		}
		switch a.Status {
		case "", "Active", "Cancelled", "Expired", "Inactive":
		default:
			return fmt.Errorf("psatest: connectwise fixture: agreement %q: status %q is not Active, Cancelled, Expired or Inactive", a.Name, a.Status)
		}
		agreements[strings.ToLower(a.Name)] = cw.addAgreementLocked(ConnectWiseAgreement{ID: a.ID, CompanyID: company, Name: a.Name,
			Type: a.Type, Status: a.Status, StartDate: start, EndDate: end, BillingCycle: a.BillingCycle})
	}
	for i, a := range f.Additions {
		where := fmt.Sprintf("additions[%d]", i)
		ag, prod := a.AgreementID, a.ProductID
		if a.Agreement != "" {
			id, ok := agreements[strings.ToLower(a.Agreement)]
			if !ok {
				return fmt.Errorf("psatest: connectwise fixture: %s: unknown agreement %q", where, a.Agreement)
			}
			ag = id
		}
		if a.Product != "" {
			id, ok := products[strings.ToLower(a.Product)]
			if !ok {
				return fmt.Errorf("psatest: connectwise fixture: %s: unknown product %q", where, a.Product)
			}
			prod = id
		}
		eff, err := fixtureDate(a.EffectiveDate)
		if err != nil {
			return fmt.Errorf("psatest: connectwise fixture: %s: effectiveDate: %w", where, err)
		}
		cancelled, err := fixtureDate(a.CancelledDate)
		if err != nil {
			return fmt.Errorf("psatest: connectwise fixture: %s: cancelledDate: %w", where, err)
		}
		cw.addAdditionLocked(ConnectWiseAddition{ID: a.ID, AgreementID: ag, ProductID: prod, Quantity: a.Quantity,
			UnitPrice: a.UnitPrice, BillCustomer: a.BillCustomer, EffectiveDate: eff, CancelledDate: cancelled})
	}
	return nil
}

// ConnectWise returns the simulated ConnectWise company, for seeding and
// inspecting its state. It is served when the server was started with
// WithSystem(psa.SystemConnectWise).
func (s *Server) ConnectWise() *ConnectWise { return s.connectwise }

// ConnectWiseSite returns the site to configure clients with for codebase
// discovery: the server's URL, such as http://127.0.0.1:41234.
func (s *Server) ConnectWiseSite() string { return s.URL() }

// ConnectWiseBaseURL returns the API root under the current codebase, such
// as http://127.0.0.1:41234/v4_6_release/apis/3.0/; it skips discovery.
func (s *Server) ConnectWiseBaseURL() string {
	return s.URL() + "/" + s.connectwise.Codebase() + "apis/3.0/"
}

// DeleteAddition removes an addition out of band.
func (cw *ConnectWise) DeleteAddition(id int64) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.deleteLocked("addition", id)
}
