package psa

import (
	"context"
	"time"
)

// System names a PSA. The values are the ones used in the mapping export, the
// provider configuration blocks and the daemon configuration.
type System string

// The PSA systems psa-sync knows.
const (
	SystemAutotask    System = "autotask"
	SystemConnectWise System = "connectwise"
	SystemKaseyaBMS   System = "kaseya_bms"
)

// Systems lists every known system in a stable order.
var Systems = []System{SystemAutotask, SystemConnectWise, SystemKaseyaBMS}

// Valid reports whether s is one of Systems.
func (s System) Valid() bool {
	for _, k := range Systems {
		if s == k {
			return true
		}
	}
	return false
}

// BillingPeriod is the neutral billing period of a service.
type BillingPeriod string

// Billing periods. Each backend maps them to its own vocabulary (Autotask reads
// the period type picklist and matches these by label).
const (
	BillingPeriodMonthly    BillingPeriod = "monthly"
	BillingPeriodQuarterly  BillingPeriod = "quarterly"
	BillingPeriodSemiAnnual BillingPeriod = "semi_annual"
	BillingPeriodYearly     BillingPeriod = "yearly"
)

// BillingPeriods lists every BillingPeriod in a stable order.
var BillingPeriods = []BillingPeriod{BillingPeriodMonthly, BillingPeriodQuarterly, BillingPeriodSemiAnnual, BillingPeriodYearly}

// Service is a billable catalog item in a PSA: an Autotask Service, a
// ConnectWise catalog item or a Kaseya BMS service. IDs are strings in every
// system.
type Service struct {
	ID                 string
	Name               string
	Description        string
	InvoiceDescription string
	UnitPrice          float64
	UnitCost           float64
	BillingPeriod      BillingPeriod
	Active             bool

	// Autotask holds the fields only Autotask has. It is nil for other systems
	// and may be nil on input to Autotask, in which case defaults apply.
	Autotask *AutotaskServiceFields
	// ConnectWise holds the fields only ConnectWise has. It is nil for other
	// systems and may be nil on input to ConnectWise, in which case the
	// identifier is derived from Name and the other fields are left to
	// ConnectWise's defaults.
	ConnectWise *ConnectWiseServiceFields
	// KaseyaBMS holds the fields only Kaseya BMS has. It is nil for other
	// systems and may be nil on input to Kaseya BMS, in which case the
	// service gets no category, subcategory or unit of measure and is not
	// taxable.
	KaseyaBMS *KaseyaBMSServiceFields
}

// AutotaskServiceFields are the Service fields only Autotask has.
type AutotaskServiceFields struct {
	// BillingCodeID is the allocation (billing) code of the service.
	BillingCodeID string
	// PeriodType is the label of the Services.periodType picklist value, for
	// tenants whose labels do not match a neutral BillingPeriod. When empty the
	// backend derives it from Service.BillingPeriod.
	PeriodType string
}

// ConnectWiseServiceFields are the Service (catalog item) fields only
// ConnectWise has. IDs are ConnectWise ids as decimal strings.
type ConnectWiseServiceFields struct {
	// Identifier is the catalog item's product id (max 60 characters), what
	// agreement additions refer to. Empty on input means one derived from
	// the service name.
	Identifier string
	// TypeID is the product type (procurement/types) id; "" leaves it unset.
	TypeID string
	// SubcategoryID is the product subcategory id; "" leaves it unset.
	SubcategoryID string
	// ProductClass is Agreement, Bundle, Inventory, NonInventory or Service;
	// "" leaves ConnectWise's default.
	ProductClass string
	// CustomerDescription is the text customers see on invoices (required
	// by ConnectWise, max 6000). Empty on input means
	// Service.InvoiceDescription, or else Service.Name.
	CustomerDescription string
}

// KaseyaBMSServiceFields are the Service fields only Kaseya BMS has. The
// names are those shown in BMS (Admin > Finance > Services).
type KaseyaBMSServiceFields struct {
	Category      string
	Subcategory   string
	UnitOfMeasure string
	Taxable       bool
}

// Company is a customer organisation in the PSA (Autotask Company,
// ConnectWise company, Kaseya BMS account).
type Company struct {
	ID     string
	Name   string
	Active bool
}

// Contract is the agreement that usage is billed on (Autotask Contract,
// ConnectWise agreement, Kaseya BMS contract).
type Contract struct {
	ID        string
	CompanyID string
	Name      string
	// Type is the PSA's own label for the contract type, e.g. "Recurring Service".
	Type string
	// Status is the PSA's own label for the status, e.g. "Active".
	Status string
	// Active is true when the contract can be billed on now.
	Active bool
	// Recurring is true for recurring-service contracts, the only kind usage
	// sync writes to.
	Recurring bool
	// BillingCycle is the PSA's own name for the cycle the contract bills
	// its recurring lines on, e.g. "Annually" (a ConnectWise agreement's
	// billingCycle, a Kaseya BMS contract's BillingCycle); "" where the
	// contract has none (Autotask bills by service, Service.BillingPeriod).
	// CycleBillingPeriod says which period it stands for.
	BillingCycle string
	StartDate    time.Time
	EndDate      time.Time
	// CompanyInactive is true when the read of the contract found its
	// company deactivated in the PSA (a Kaseya BMS account made inactive:
	// the contract read joins the account lookup). False when the company
	// is active or the read does not say (Autotask and ConnectWise contract
	// reads carry no company status: the usage engine sets it from a read
	// of the companies, GetCompanies, once a day).
	CompanyInactive bool `json:",omitempty"`
}

// ContractQuery selects contracts in FindContracts.
type ContractQuery struct {
	// CompanyID limits the result to one company. Required.
	CompanyID string
	// Name matches the contract name exactly (case-insensitively). Empty
	// matches every contract of the company.
	Name string
	// IncludeInactive also returns contracts that are not active.
	IncludeInactive bool
	// AnyType also returns contracts that are not recurring-service contracts.
	AnyType bool
}

// ContractLine is the quantity of one service on one contract for the billing
// period that contains a given date.
type ContractLine struct {
	ContractID string
	ServiceID  string
	// LineID is the PSA's id of the line (Autotask ContractService id,
	// ConnectWise addition id, Kaseya BMS contract service id).
	LineID      string
	Quantity    int64
	UnitPrice   float64
	PeriodStart time.Time
	PeriodEnd   time.Time
	// LaterChanges lists, in date order, where the line's quantity changes
	// again after the date it was read at. Autotask: up to the end of that
	// date's calendar month (psa-syncd's billing period), a mid-period
	// adjustment dated after the effective date, each entry differing from
	// the quantity before it; a write that adds a delta from the read date
	// on would not give the wanted quantity for the whole period.
	// ConnectWise: every addition of the service that starts after the read
	// date (its effectiveDate is later), with its LineID; such an addition
	// is not the line (it does not bill on the read date), and the line is
	// a zero Quantity without a LineID when no addition bills on that date.
	// Changing that addition would change the periods from its start, not
	// the read date's, and adding another from the read date would bill
	// along with it from its start. Backends that cannot tell leave it nil.
	LaterChanges []QuantityChange
	// Posted is true when the PSA reports the billing period at the date
	// the line was read at (PeriodStart to PeriodEnd) as already approved
	// and posted, that is invoiced (Autotask: the unit row's
	// approveAndPostDate). A change dated in it would alter an invoiced
	// period: Autotask bills it as a proration on a later invoice that
	// cannot be reversed. It is true as well when a later period is posted
	// while that one is not (posted out of order), and PeriodStart and
	// PeriodEnd then name that later period: Autotask carries a change
	// into every later period. Backends that cannot tell leave it false.
	Posted bool
	// Inexact is set on a line that ReadServiceLines returns for a
	// service the caller does not manage (see ServiceLineReader) that is
	// not one line of whole units: the service is on the contract more
	// than once (Autotask: two contract services of it; ConnectWise: two
	// additions of its product in force on the date), or (ConnectWise) in
	// a fractional quantity. Quantity is then the units of its lines on
	// the date added up, rounded up to a whole unit, and LineID is empty:
	// such a line is never written, and tells only whether, and about
	// how much, the service still bills there.
	Inexact bool
}

// QuantityChange is a quantity that applies to a line from a date on.
type QuantityChange struct {
	From     time.Time
	Quantity int64
	// LineID is the PSA's id of a line of its own that starts at From
	// (ConnectWise: a later agreement addition of the service); empty when
	// the line itself changes (Autotask: a unit row of the same service).
	LineID string
}

// Key returns the (contract, service) pair that identifies a line.
func (l ContractLine) Key() LineKey { return LineKey{ContractID: l.ContractID, ServiceID: l.ServiceID} }

// LineKey identifies a contract line by contract and service.
type LineKey struct {
	ContractID string
	ServiceID  string
}

// SetQuantityRequest asks a backend to set a contract line to an absolute
// quantity as of an effective date.
type SetQuantityRequest struct {
	ContractID string
	ServiceID  string
	// Quantity is the absolute quantity wanted from EffectiveDate on.
	Quantity int64
	// Current is the line as the caller last read it (from ReadLines), or nil
	// when the contract has no line for the service. Backends whose write is a
	// delta (Autotask) compute it from Current, so the caller must pass what it
	// read in the same pass.
	Current *ContractLine
	// EffectiveDate is the first day the new quantity applies.
	EffectiveDate time.Time
}

// Budget is a PSA's API request budget for the current time frame.
type Budget struct {
	Limit     int
	Used      int
	Timeframe time.Duration
}

// Remaining returns the number of requests left in the time frame.
func (b Budget) Remaining() int { return b.Limit - b.Used }

// EndpointBudgeter is implemented by a Backend whose PSA limits each
// endpoint on its own (Kaseya BMS: 1,500 calls per hour per endpoint). It
// returns the budget of each endpoint used in the current time frame, by a
// bounded endpoint name, without making a request; nil when it cannot
// count the calls (an endpoint it leaves out has its whole budget).
type EndpointBudgeter interface {
	EndpointBudgets() map[string]Budget
}

// ConcurrencyLimiter is implemented by a Backend whose client bounds the
// requests it keeps in flight (Autotask: per entity endpoint). The daemon
// sends as many writes at once by default. MaxConcurrency returns the
// bound, or 0 when there is none; it makes no request.
type ConcurrencyLimiter interface {
	MaxConcurrency() int
}

// Backend is what the provider and the daemon use to talk to a PSA. Each
// system implements it in its own vocabulary inside its adapter.
//
// A Backend is safe for concurrent use by multiple goroutines; it bounds its
// own concurrency and request rate to stay inside the PSA's limits. Methods
// return errors that match the sentinels in this package with errors.Is.
type Backend interface {
	// System returns the PSA system of the backend.
	System() System
	// Instance returns a non-secret name of the PSA instance, such as the
	// Autotask zone host. It is recorded in the mapping export.
	Instance() string
	// Ping authenticates and makes one cheap read.
	Ping(ctx context.Context) error
	// Budget returns the API request budget; ErrNotSupported when the PSA
	// does not report one.
	Budget(ctx context.Context) (*Budget, error)

	// CreateService creates s (its ID is ignored) and returns the stored service.
	CreateService(ctx context.Context, s *Service) (*Service, error)
	// GetService returns the service with the given id, or ErrNotFound.
	GetService(ctx context.Context, id string) (*Service, error)
	// UpdateService updates the service with s.ID and returns the stored service.
	UpdateService(ctx context.Context, s *Service) (*Service, error)
	// DeactivateService marks the service inactive.
	DeactivateService(ctx context.Context, id string) error
	// DeleteService deletes the service; ErrNotSupported where the PSA does
	// not allow it.
	DeleteService(ctx context.Context, id string) error
	// FindServices returns the services whose name equals name
	// (case-insensitively), active or not.
	FindServices(ctx context.Context, name string) ([]Service, error)

	// GetCompany returns the company with the given id, or ErrNotFound.
	GetCompany(ctx context.Context, id string) (*Company, error)
	// FindCompanies returns the companies whose name equals name (case-insensitively).
	FindCompanies(ctx context.Context, name string) ([]Company, error)
	// GetContract returns the contract with the given id, or ErrNotFound.
	GetContract(ctx context.Context, id string) (*Contract, error)
	// FindContracts returns the contracts matching q.
	FindContracts(ctx context.Context, q ContractQuery) ([]Contract, error)

	// ReadLines returns the current quantity of every service line on the
	// given contracts for the billing period that contains asOf. It makes few
	// requests for many contracts (bulk reads), never one per line.
	ReadLines(ctx context.Context, contractIDs []string, asOf time.Time) ([]ContractLine, error)
	// SetQuantity sets one line to an absolute quantity as of an effective
	// date and returns the line as it is afterwards. A non-idempotent write
	// (such as an Autotask adjustment) is never re-sent blindly: when its
	// outcome is unknown the backend re-reads the line, and returns an error
	// matching ErrOutcomeUnknown only if it still cannot tell.
	SetQuantity(ctx context.Context, req SetQuantityRequest) (*ContractLine, error)
}

// Describer is implemented by backends that can say more about the
// connection than Instance, for operators checking a configuration (for
// example how the ConnectWise codebase was found). Describe may make
// requests; it never returns secrets.
type Describer interface {
	Describe(ctx context.Context) (string, error)
}

// BulkReader is implemented by a Backend that reads many objects by id in a
// few requests (Autotask: an "in" filter of up to 500 ids per query). The
// result holds the objects that exist, keyed by id; an id that does not exist,
// is not a valid id for the PSA, or whose record in the answer cannot be read,
// is absent, and GetService, GetCompany or GetContract tells why. Callers with
// a single id use those.
type BulkReader interface {
	GetServices(ctx context.Context, ids []string) (map[string]*Service, error)
	GetCompanies(ctx context.Context, ids []string) (map[string]*Company, error)
	GetContracts(ctx context.Context, ids []string) (map[string]*Contract, error)
}

// WriteChecker is implemented by a Backend that must verify a contract with
// a read of its own before it writes to it (ConnectWise reads an
// agreement's status, so that it never writes to a cancelled or expired
// one) and can verify many contracts in one request. A caller about to
// write to several contracts calls CheckWrites once, before the first
// write, with every contract it will write to, in the order it will write
// to them: the backend reads them in bulk, and its writes reuse what it
// read while that is fresh instead of reading each contract at its first
// write. CheckWrites does not write.
//
// The result maps each contract that may not be written to to the reason,
// an error matching ErrNotFound (the contract does not exist) or
// ErrConflict (it can no longer be billed on), or another error when the
// PSA's answer about that contract alone could not be read (neither
// missing nor checked); the writes to it would fail the same way. An error
// concerns the call as a whole.
type WriteChecker interface {
	CheckWrites(ctx context.Context, contractIDs []string) (map[string]error, error)
}

// RecordWriteChecker is a WriteChecker whose check reads, in the same
// requests, the records of the contracts (ConnectWise reads each agreement's
// company, type, billing cycle and dates with its status). CheckWriteRecords
// does what CheckWrites does, and returns too the records it read, keyed by
// id, for the caller's own checks of them (the company, the dates), so that
// a caller that would otherwise read them again just before writing
// (psa.BulkReader's GetContracts) need not. A record is absent for a
// contract the read did not find or could not read; refused says why.
type RecordWriteChecker interface {
	WriteChecker
	CheckWriteRecords(ctx context.Context, contractIDs []string) (records map[string]*Contract, refused map[string]error, err error)
}

// ServiceLineReader is implemented by a Backend whose read of a contract's
// lines can fail because of one line that cannot be represented
// (ConnectWise: an addition with a fractional quantity, or two active
// additions of one product; Autotask: two contract services of one
// service). ReadServiceLines reads like ReadLines, but such a problem
// fails a contract only when it concerns one of the services serviceIDs,
// the ones the caller manages; a line of another service with such a
// problem is returned as one Inexact line, so that a caller that looks at
// another service's line (one it no longer writes, which still bills) does
// not take it for a line at 0. A caller that manages only some of the
// services on a contract uses it, so that a line it does not manage
// (labour billed in half hours) does not stop the lines it does.
type ServiceLineReader interface {
	ReadServiceLines(ctx context.Context, contractIDs, serviceIDs []string, asOf time.Time) ([]ContractLine, error)
}

// ServicePreloader is implemented by a Backend whose writes copy details
// of the catalog service they write (Kaseya BMS: a new contract line
// carries the service's name, description, price and cost) and that keeps
// what it read of the catalog for a while, its time to live. A caller about
// to write lines of several services calls PreloadServices once, before
// the first write, with every service it will write and the services it
// kept from earlier processes (see KeptService): the backend takes those
// read within its time to live, never an older one, reads the others in as
// few requests as the PSA allows, and returns what it read (now, or earlier
// within its time to live, as GetServices, and not returned before), for
// the caller to keep. PreloadServices does not write. Its error concerns the read; the
// writes then read what they miss themselves.
type ServicePreloader interface {
	PreloadServices(ctx context.Context, serviceIDs []string, kept []KeptService) ([]KeptService, error)
}

// ServicePriceKeeper is implemented by a BulkReader whose writes of a line
// new on a contract copy its catalog service's price (Autotask's contract
// services, ConnectWise's agreement additions) and that keeps the prices
// its GetServices read, for ServicePricesKept from the read: a new line
// of a service read so recently is written with no further request, and
// one of a service not read in that time reads it alone first. A caller
// about to write new lines of many services reads them in bulk first.
type ServicePriceKeeper interface {
	ServicePricesKept() time.Duration
}

// KeptService is what a write copies of a catalog service (ID, Name,
// Description, UnitPrice and UnitCost), as a backend read it at ReadAt.
type KeptService struct {
	Service
	ReadAt time.Time
}

// ServiceFieldChecker is implemented by a Backend that can tell before a
// write whether it would refuse a service (Autotask: the name's length, the
// period type and the billing code; Kaseya BMS: the category, subcategory
// and unit of measure, which it resolves by name). CheckServiceFields
// tells, before anything is written, whether a create (s.ID empty) or an
// update of s would pass: nil, a *ValidationError whose Field names the
// field that would be refused, or the error of a read that failed.
type ServiceFieldChecker interface {
	CheckServiceFields(ctx context.Context, s *Service) error
}

// ServiceLineLister is implemented by a Backend whose PSA refuses to
// delete a service still on contract lines, and that can read the lines
// using one service in one request (Kaseya BMS: the related services
// search). ServiceLines returns up to some of those lines and how many
// there are in all (at least len(lines)); none for a service that does not
// exist. A caller about to delete a service asks first, to refuse the
// delete before anything is written.
type ServiceLineLister interface {
	ServiceLines(ctx context.Context, serviceID string) (lines []ServiceLine, total int, err error)
}

// ServiceLinePager is a ServiceLineLister that can also read every line
// using one service, a page at a time (Kaseya BMS). A caller that must
// know that a contract has no line of the service, not only that some
// contract has one, reads them all: AllServiceLines returns them, or an
// error rather than some of them.
type ServiceLinePager interface {
	AllServiceLines(ctx context.Context, serviceID string) ([]ServiceLine, error)
}

// ServiceLine is a contract line using a service, as ServiceLines reads it.
type ServiceLine struct {
	ContractID   string
	ContractName string
	CompanyName  string
}

// ContractLister is implemented by a Backend that reads every contract a
// customer mapping can bill on (the tenant's active recurring-service
// contracts) in a few pages. A caller about to check more contracts than
// one bulk read by id holds, without knowing their ids in advance, reads
// them all at once instead. The result is keyed by id; it may hold other
// contracts too, and a contract it leaves out is read with GetContract.
// When the list would take more than maxRequests requests, ListContracts
// lists nothing and returns ok == false, having sent at most one request
// to count the contracts.
type ContractLister interface {
	ListContracts(ctx context.Context, maxRequests int) (contracts map[string]*Contract, ok bool, err error)
}

// ContractReadCoster is implemented by a BulkReader whose GetContracts of a
// few ids costs more than one request (Kaseya BMS reads a handful of
// contracts one by one, three requests each). ContractReadCost returns the
// requests GetContracts sends for n ids, at least. A caller that would read
// n contracts by id and can list them (ContractLister) lists them instead
// when the list costs no more.
type ContractReadCoster interface {
	ContractReadCost(n int) int
}
