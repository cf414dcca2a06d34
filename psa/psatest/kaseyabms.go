package psatest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default credentials of the simulated Kaseya BMS API user.
const (
	DefaultKaseyaBMSUsername = "api@msp.example"
	DefaultKaseyaBMSPassword = "sim-password"
	DefaultKaseyaBMSTenant   = "Sim MSP"
)

// Kaseya BMS limits and token lifetimes the simulator uses. BMS documents
// the call limit ("1500 per hour per endpoint") but not the token lifetimes.
const (
	DefaultKaseyaBMSHourlyLimit  = 1500
	DefaultKaseyaBMSTokenTTL     = time.Hour
	DefaultKaseyaBMSRefreshTTL   = 24 * time.Hour
	kaseyaBMSContractTypeDefault = "Recurring Services"
)

// First ids the simulator allocates. Allocation is sequential and
// deterministic, so tests can predict ids.
const (
	kaseyaBMSFirstAccount  = 1001
	kaseyaBMSFirstContract = 2001
	kaseyaBMSFirstService  = 3001
	kaseyaBMSFirstLine     = 4001
)

// KaseyaBMS is the state of a simulated Kaseya BMS tenant. Its methods seed
// and inspect that state out of band (they are not part of the BMS API and
// are not counted against its limits). All methods are safe for concurrent
// use; one mutex guards the whole tenant.
//
// Accessors given an id that does not exist panic: they are test set-up,
// and a mistake there is a bug in the test.
type KaseyaBMS struct {
	srv                        *Server
	username, password, tenant string
	hourlyLimit                int
	clock                      func() time.Time

	// pageMode is how PageNumber is read, a KaseyaBMSPaging; atomic, as
	// handlers read it with and without mu.
	pageMode atomic.Int32

	mu         sync.Mutex
	pascal     bool
	tokenTTL   time.Duration
	refreshTTL time.Duration
	accounts   []*KaseyaBMSAccount
	contracts  []*KaseyaBMSContract
	services   []*KaseyaBMSService
	lines      []*KaseyaBMSLine
	// Indexes of the lists above, as a database would have them: records
	// by id (the first one added, should a fixture repeat an id) and a
	// contract's lines in the order they were posted.
	accountByID   map[int]*KaseyaBMSAccount
	contractByID  map[int]*KaseyaBMSContract
	serviceByID   map[int]*KaseyaBMSService
	contractLines map[int][]*KaseyaBMSLine
	tokens        map[string]time.Time // access token → expiry
	refresh       map[string]bmsRefresh
	tokenSeq      int
	nextID        map[string]int
	hits          map[string][]time.Time // endpoint template → call times
	desk          *bmsServiceDesk        // tickets; see kaseyabms_tickets.go
}

type bmsRefresh struct {
	access  string
	expires time.Time
}

// KaseyaBMSAccount is a CRM account (a company).
type KaseyaBMSAccount struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Code   string `json:"code"`
	Active bool   `json:"active"`
}

// KaseyaBMSContract is a client contract.
type KaseyaBMSContract struct {
	ID        int    `json:"id"`
	AccountID int    `json:"accountId"`
	Name      string `json:"name"`
	Number    string `json:"number"`
	// Type is the contract type name; "" means "Recurring Services".
	Type string `json:"type"`
	// Active is the contract's status (Active or Inactive). AddContract
	// makes contracts active; set Inactive to add an inactive one.
	Active   bool `json:"active"`
	Inactive bool `json:"-"`
	// BillingCycle is "Monthly" unless set.
	BillingCycle string `json:"billingCycle"`
	// StartDate and EndDate are calendar days (UTC); zero means 1 January
	// and 31 December of the clock's current year.
	StartDate time.Time `json:"startDate"`
	EndDate   time.Time `json:"endDate"`
}

// KaseyaBMSService is a catalog service.
type KaseyaBMSService struct {
	ID              int     `json:"id"`
	Name            string  `json:"name"`
	Description     string  `json:"description"`
	UnitPrice       float64 `json:"unitPrice"`
	UnitCost        float64 `json:"unitCost"`
	CategoryID      int     `json:"categoryId,omitempty"`
	SubCategoryID   int     `json:"subCategoryId,omitempty"`
	UnitOfMeasureID int     `json:"unitOfMeasureId,omitempty"`
	Active          bool    `json:"active"`
	Taxable         bool    `json:"taxable"`
}

// KaseyaBMSLine is a recurring-service line on a contract, as posted.
// Posting a service that is already on a contract adds another line (BMS's
// behaviour here is not documented; the simulator keeps every line).
type KaseyaBMSLine struct {
	ID            int       `json:"id"`
	ContractID    int       `json:"contractId"`
	ServiceID     int       `json:"serviceId"`
	ServiceName   string    `json:"serviceName"`
	Description   string    `json:"description"`
	Units         int       `json:"units"`
	UnitPrice     float64   `json:"unitPrice"`
	UnitCost      float64   `json:"unitCost"`
	EffectiveDate time.Time `json:"effectiveDate"`
	SortOrder     int       `json:"sortOrder"`
	Created       time.Time `json:"created"`
}

// kaseyaBMSCategories are the simulated service categories, subcategories
// and units of measure (fixed ids).
var (
	kaseyaBMSCategories = []bmsNamed{{1, "Managed Services"}, {2, "Licensing"}}
	kaseyaBMSSubs       = map[int][]bmsNamed{1: {{11, "Security"}, {12, "Backup"}}, 2: {{21, "Microsoft"}}}
	kaseyaBMSUnits      = []bmsNamed{{1, "Each"}, {2, "User"}, {3, "Device"}}
)

type bmsNamed struct {
	ID   int
	Name string
}

func bmsName(list []bmsNamed, id int) string {
	for _, n := range list {
		if n.ID == id {
			return n.Name
		}
	}
	return ""
}

func bmsSubName(id int) (string, int) {
	for cat, subs := range kaseyaBMSSubs {
		if n := bmsName(subs, id); n != "" {
			return n, cat
		}
	}
	return "", 0
}

func newKaseyaBMS(s *Server, c config) *KaseyaBMS {
	k := &KaseyaBMS{
		srv:         s,
		username:    DefaultKaseyaBMSUsername,
		password:    DefaultKaseyaBMSPassword,
		tenant:      DefaultKaseyaBMSTenant,
		hourlyLimit: DefaultKaseyaBMSHourlyLimit,
		clock:       c.clock,
		tokenTTL:    DefaultKaseyaBMSTokenTTL,
		refreshTTL:  DefaultKaseyaBMSRefreshTTL,
		tokens:      map[string]time.Time{},
		refresh:     map[string]bmsRefresh{},
		nextID: map[string]int{
			"account": kaseyaBMSFirstAccount, "contract": kaseyaBMSFirstContract,
			"service": kaseyaBMSFirstService, "line": kaseyaBMSFirstLine,
		},
		hits:          map[string][]time.Time{},
		accountByID:   map[int]*KaseyaBMSAccount{},
		contractByID:  map[int]*KaseyaBMSContract{},
		serviceByID:   map[int]*KaseyaBMSService{},
		contractLines: map[int][]*KaseyaBMSLine{},
	}
	if c.hourlyLimit != DefaultHourlyLimit {
		k.hourlyLimit = c.hourlyLimit
	}
	if f := c.fixture; f != nil && f.KaseyaBMS != nil {
		if f.KaseyaBMS.Username != "" {
			k.username = f.KaseyaBMS.Username
		}
		if f.KaseyaBMS.Password != "" {
			k.password = f.KaseyaBMS.Password
		}
		if f.KaseyaBMS.Tenant != "" {
			k.tenant = f.KaseyaBMS.Tenant
		}
	}
	if c.bmsCreds != nil {
		k.username, k.password, k.tenant = c.bmsCreds[0], c.bmsCreds[1], c.bmsCreds[2]
	}
	return k
}

// Credentials returns the API user's name, password and tenant.
func (k *KaseyaBMS) Credentials() (username, password, tenant string) {
	return k.username, k.password, k.tenant
}

// SetTokenLifetimes sets how long new access and refresh tokens live. The
// defaults are DefaultKaseyaBMSTokenTTL and DefaultKaseyaBMSRefreshTTL.
func (k *KaseyaBMS) SetTokenLifetimes(access, refresh time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tokenTTL, k.refreshTTL = access, refresh
}

// SetPascalCase makes the API answer with PascalCase keys, as the vendor's
// document declares, instead of the camelCase observed on the wire (the
// default).
func (k *KaseyaBMS) SetPascalCase(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pascal = on
}

// KaseyaBMSPaging is how the simulated Kaseya BMS reads PageNumber. BMS does
// not document whether its pages count from 0 or 1 (community scripts use
// both), so clients are tested against each.
type KaseyaBMSPaging int32

// Ways of reading PageNumber.
const (
	// KaseyaBMSPagesFromOne counts pages from 1 and reads 0 (or no
	// PageNumber) as 1: the default.
	KaseyaBMSPagesFromOne KaseyaBMSPaging = iota
	// KaseyaBMSPagesFromZero counts pages from 0: page 1 is the second.
	KaseyaBMSPagesFromZero
	// KaseyaBMSPageNumberIgnored answers the first page whatever
	// PageNumber says, with the full totalRecords.
	KaseyaBMSPageNumberIgnored
)

// SetPaging sets how the listings read PageNumber. The default is
// KaseyaBMSPagesFromOne.
func (k *KaseyaBMS) SetPaging(p KaseyaBMSPaging) { k.pageMode.Store(int32(p)) }

// pageIndex turns a request's PageNumber (0 when it gives none) into the
// 1-based page to answer, as SetPaging says.
func (k *KaseyaBMS) pageIndex(number int) int {
	switch KaseyaBMSPaging(k.pageMode.Load()) {
	case KaseyaBMSPagesFromZero:
		return max(number, 0) + 1
	case KaseyaBMSPageNumberIgnored:
		return 1
	}
	return max(number, 1)
}

func (k *KaseyaBMS) pascalCase() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pascal
}

// RevokeTokens invalidates every access token issued so far (refresh tokens
// too), as a password change would: the next request gets 401.
func (k *KaseyaBMS) RevokeTokens() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tokens = map[string]time.Time{}
	k.refresh = map[string]bmsRefresh{}
}

func (k *KaseyaBMS) newIDLocked(kind string, want int) int {
	if want != 0 {
		if want >= k.nextID[kind] {
			k.nextID[kind] = want + 1
		}
		return want
	}
	id := k.nextID[kind]
	k.nextID[kind] = id + 1
	return id
}

// AddAccount adds an active account and returns its id.
func (k *KaseyaBMS) AddAccount(name string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.addAccountLocked(KaseyaBMSAccount{Name: name, Active: true})
}

func (k *KaseyaBMS) addAccountLocked(a KaseyaBMSAccount) int {
	a.ID = k.newIDLocked("account", a.ID)
	if a.Code == "" {
		a.Code = fmt.Sprintf("ACC%d", a.ID)
	}
	k.accounts = append(k.accounts, &a)
	if k.accountByID[a.ID] == nil {
		k.accountByID[a.ID] = &a
	}
	return a.ID
}

// SetAccountActive activates or deactivates an account.
func (k *KaseyaBMS) SetAccountActive(id int, active bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mustAccountLocked(id).Active = active
}

// AddContract adds a contract and returns its id. Defaults: type
// "Recurring Services", active (unless Inactive), billing cycle Monthly,
// this calendar year.
func (k *KaseyaBMS) AddContract(c KaseyaBMSContract) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.addContractLocked(c)
}

func (k *KaseyaBMS) addContractLocked(c KaseyaBMSContract) int {
	k.mustAccountLocked(c.AccountID)
	c.ID = k.newIDLocked("contract", c.ID)
	if c.Type == "" {
		c.Type = kaseyaBMSContractTypeDefault
	}
	if c.BillingCycle == "" {
		c.BillingCycle = "Monthly"
	}
	if c.Number == "" {
		c.Number = fmt.Sprintf("CN%06d", c.ID)
	}
	y := k.clock().UTC().Year()
	if c.StartDate.IsZero() {
		c.StartDate = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.EndDate.IsZero() {
		c.EndDate = time.Date(y, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	c.StartDate, c.EndDate = day(c.StartDate), day(c.EndDate)
	c.Active = !c.Inactive
	k.contracts = append(k.contracts, &c)
	if k.contractByID[c.ID] == nil {
		k.contractByID[c.ID] = &c
	}
	return c.ID
}

// SetContractBillingCycle sets the name of a contract's billing cycle
// (Monthly, Quarterly, Semi-Annually, Annually), as the contract summary
// shows it.
func (k *KaseyaBMS) SetContractBillingCycle(id int, cycle string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mustContractLocked(id).BillingCycle = cycle
}

// SetContractEndDate sets the last day of a contract (a calendar day,
// UTC), as the contract lookup and summary show it.
func (k *KaseyaBMS) SetContractEndDate(id int, end time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mustContractLocked(id).EndDate = day(end)
}

// AddService adds an active, non-taxable service and returns its id.
func (k *KaseyaBMS) AddService(name string, unitPrice float64) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.addServiceLocked(KaseyaBMSService{Name: name, UnitPrice: unitPrice, Active: true})
}

// AddServiceFull adds a service as given (Active as given) and returns its id.
func (k *KaseyaBMS) AddServiceFull(s KaseyaBMSService) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.addServiceLocked(s)
}

func (k *KaseyaBMS) addServiceLocked(s KaseyaBMSService) int {
	s.ID = k.newIDLocked("service", s.ID)
	k.services = append(k.services, &s)
	if k.serviceByID[s.ID] == nil {
		k.serviceByID[s.ID] = &s
	}
	return s.ID
}

// DeleteService removes a service from the catalog.
func (k *KaseyaBMS) DeleteService(id int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mustServiceLocked(id)
	k.deleteServiceLocked(id)
}

// deleteServiceLocked removes a service from the catalog and its index.
func (k *KaseyaBMS) deleteServiceLocked(id int) {
	k.services = slices.DeleteFunc(k.services, func(s *KaseyaBMSService) bool { return s.ID == id })
	delete(k.serviceByID, id)
}

// SetServiceActive activates or deactivates a service.
func (k *KaseyaBMS) SetServiceActive(id int, active bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mustServiceLocked(id).Active = active
}

// AddLine adds a service line to a contract out of band and returns its id.
func (k *KaseyaBMS) AddLine(contractID, serviceID, units int, effective time.Time) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.mustContractLocked(contractID)
	s := k.mustServiceLocked(serviceID)
	return k.addLineLocked(c, KaseyaBMSLine{ServiceID: s.ID, ServiceName: s.Name, Description: s.Description,
		Units: units, UnitPrice: s.UnitPrice, UnitCost: s.UnitCost, EffectiveDate: effective})
}

func (k *KaseyaBMS) addLineLocked(c *KaseyaBMSContract, l KaseyaBMSLine) int {
	l.ID = k.newIDLocked("line", l.ID)
	l.ContractID = c.ID
	l.EffectiveDate = day(l.EffectiveDate)
	l.Created = k.clock().UTC()
	k.lines = append(k.lines, &l)
	k.contractLines[c.ID] = append(k.contractLines[c.ID], &l)
	return l.ID
}

// ServiceLines returns the lines of a contract in the order they were
// posted.
func (k *KaseyaBMS) ServiceLines(contractID int) []KaseyaBMSLine {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []KaseyaBMSLine
	for _, l := range k.contractLines[contractID] {
		out = append(out, *l)
	}
	return out
}

// Units returns the units of a service on a contract at a time: those of
// the line with the latest effective date on or before it (the latest
// posted among equals), and false when there is none.
func (k *KaseyaBMS) Units(contractID, serviceID int, at time.Time) (int, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.unitsLocked(contractID, serviceID, at)
}

func (k *KaseyaBMS) unitsLocked(contractID, serviceID int, at time.Time) (int, bool) {
	var best *KaseyaBMSLine
	d := day(at)
	for _, l := range k.contractLines[contractID] {
		if l.ServiceID != serviceID || l.EffectiveDate.After(d) {
			continue
		}
		if best == nil || !l.EffectiveDate.Before(best.EffectiveDate) {
			best = l
		}
	}
	if best == nil {
		return 0, false
	}
	return best.Units, true
}

// Accounts returns every account, by id.
func (k *KaseyaBMS) Accounts() []KaseyaBMSAccount { return copyAll(&k.mu, k.accounts) }

// Contracts returns every contract, by id.
func (k *KaseyaBMS) Contracts() []KaseyaBMSContract { return copyAll(&k.mu, k.contracts) }

// Services returns every service, by id.
func (k *KaseyaBMS) Services() []KaseyaBMSService { return copyAll(&k.mu, k.services) }

func copyAll[T any](mu *sync.Mutex, list []*T) []T {
	mu.Lock()
	defer mu.Unlock()
	out := make([]T, 0, len(list))
	for _, v := range list {
		out = append(out, *v)
	}
	return out
}

// HourlyCount returns the calls to an endpoint template (such as
// "/v2/admin/finance/services/{id}") in the rolling hour.
func (k *KaseyaBMS) HourlyCount(endpoint string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.pruneLocked(strings.ToLower(endpoint)))
}

func (k *KaseyaBMS) pruneLocked(endpoint string) []time.Time {
	cut := k.clock().Add(-time.Hour)
	h := k.hits[endpoint]
	i := 0
	for i < len(h) && !h[i].After(cut) {
		i++
	}
	h = h[i:]
	k.hits[endpoint] = h
	return h
}

func (k *KaseyaBMS) mustAccountLocked(id int) *KaseyaBMSAccount {
	if a := k.accountLocked(id); a != nil {
		return a
	}
	panic(fmt.Sprintf("psatest: no Kaseya BMS account %d", id))
}

func (k *KaseyaBMS) mustContractLocked(id int) *KaseyaBMSContract {
	if c := k.contractLocked(id); c != nil {
		return c
	}
	panic(fmt.Sprintf("psatest: no Kaseya BMS contract %d", id))
}

func (k *KaseyaBMS) mustServiceLocked(id int) *KaseyaBMSService {
	if s := k.serviceLocked(id); s != nil {
		return s
	}
	panic(fmt.Sprintf("psatest: no Kaseya BMS service %d", id))
}

func (k *KaseyaBMS) accountLocked(id int) *KaseyaBMSAccount { return k.accountByID[id] }

func (k *KaseyaBMS) contractLocked(id int) *KaseyaBMSContract { return k.contractByID[id] }

func (k *KaseyaBMS) serviceLocked(id int) *KaseyaBMSService { return k.serviceByID[id] }

// KaseyaBMSState is the tenant as GET /_sim/kaseyabms/state shows it (not
// part of the BMS API).
type KaseyaBMSState struct {
	Time      time.Time            `json:"time"`
	Accounts  []KaseyaBMSAccount   `json:"accounts"`
	Contracts []KaseyaBMSContract  `json:"contracts"`
	Services  []KaseyaBMSService   `json:"services"`
	Lines     []KaseyaBMSLine      `json:"lines"`
	Hourly    map[string]int       `json:"hourly"`
	Units     []KaseyaBMSUnitState `json:"units"`
}

// KaseyaBMSUnitState is the units in force today of a service on a contract.
type KaseyaBMSUnitState struct {
	ContractID int `json:"contractId"`
	ServiceID  int `json:"serviceId"`
	Units      int `json:"units"`
}

// State returns a snapshot of the tenant.
func (k *KaseyaBMS) State() KaseyaBMSState {
	st := KaseyaBMSState{
		Time:      k.clock().UTC(),
		Accounts:  k.Accounts(),
		Contracts: k.Contracts(),
		Services:  k.Services(),
		Hourly:    map[string]int{},
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := map[[2]int]bool{}
	for _, l := range k.lines {
		st.Lines = append(st.Lines, *l)
		key := [2]int{l.ContractID, l.ServiceID}
		if seen[key] {
			continue
		}
		seen[key] = true
		if u, ok := k.unitsLocked(l.ContractID, l.ServiceID, st.Time); ok {
			st.Units = append(st.Units, KaseyaBMSUnitState{ContractID: l.ContractID, ServiceID: l.ServiceID, Units: u})
		}
	}
	for ep := range k.hits {
		if n := len(k.pruneLocked(ep)); n > 0 {
			st.Hourly[ep] = n
		}
	}
	return st
}
