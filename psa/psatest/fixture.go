package psatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// Fixture is the JSON document that seeds a simulator (see the package
// documentation for the format). Each simulated PSA has its own section.
type Fixture struct {
	Autotask *AutotaskFixture `json:"autotask,omitempty"`
	// KaseyaBMS seeds the simulated Kaseya BMS tenant (see kaseyabms_fixture.go).
	KaseyaBMS *KaseyaBMSFixture `json:"kaseyabms,omitempty"`
	// ConnectWise seeds the simulated ConnectWise company (see connectwise.go).
	ConnectWise *ConnectWiseFixture `json:"connectwise,omitempty"`
}

// AutotaskFixture seeds a simulated Autotask tenant. Records refer to each
// other by name (or by id where a record gives one).
type AutotaskFixture struct {
	// Username, Secret and IntegrationCode replace the default credentials
	// when set; WithAutotaskCredentials wins over them.
	Username        string `json:"username,omitempty"`
	Secret          string `json:"secret,omitempty"`
	IntegrationCode string `json:"integrationCode,omitempty"`

	BillingCodes     []FixtureBillingCode     `json:"billingCodes,omitempty"`
	Companies        []FixtureCompany         `json:"companies,omitempty"`
	Contracts        []FixtureContract        `json:"contracts,omitempty"`
	Services         []FixtureService         `json:"services,omitempty"`
	ContractServices []FixtureContractService `json:"contractServices,omitempty"`
}

// FixtureBillingCode is a billing (allocation) code in a fixture.
type FixtureBillingCode struct {
	ID   int64  `json:"id,omitempty"`
	Name string `json:"name"`
	// UseType is a useType label; "" means "Recurring Contract Service".
	UseType string `json:"useType,omitempty"`
	// Active defaults to true.
	Active *bool `json:"active,omitempty"`
}

// FixtureCompany is a company in a fixture.
type FixtureCompany struct {
	ID     int64  `json:"id,omitempty"`
	Name   string `json:"name"`
	Number string `json:"number,omitempty"`
	// Type is a companyType label; "" means "Customer".
	Type string `json:"type,omitempty"`
	// Active defaults to true.
	Active *bool `json:"active,omitempty"`
}

// FixtureContract is a contract in a fixture.
type FixtureContract struct {
	ID   int64  `json:"id,omitempty"`
	Name string `json:"name"`
	// Company is the company's name; CompanyID may be given instead.
	Company   string `json:"company,omitempty"`
	CompanyID int64  `json:"companyID,omitempty"`
	// Type is a contractType label; "" means "Recurring Service".
	Type string `json:"type,omitempty"`
	// Status is a status label; "" means "Active".
	Status string `json:"status,omitempty"`
	// StartDate and EndDate are "YYYY-MM-DD" (or RFC 3339); empty means
	// 1 January and 31 December of the current year.
	StartDate string `json:"startDate,omitempty"`
	EndDate   string `json:"endDate,omitempty"`
	// PostedThrough ("YYYY-MM-DD"), when set, approves and posts
	// (invoices) the contract's billing periods up to that day once its
	// contract services are seeded (see Autotask.PostPeriods).
	PostedThrough string `json:"postedThrough,omitempty"`
}

// FixtureService is a service (catalog item) in a fixture.
type FixtureService struct {
	ID                 int64   `json:"id,omitempty"`
	Name               string  `json:"name"`
	Description        string  `json:"description,omitempty"`
	InvoiceDescription string  `json:"invoiceDescription,omitempty"`
	UnitPrice          float64 `json:"unitPrice"`
	UnitCost           float64 `json:"unitCost,omitempty"`
	// PeriodType is a periodType label; "" means "Monthly".
	PeriodType string `json:"periodType,omitempty"`
	// BillingCode is a billing code's name; "" means the default one.
	BillingCode string `json:"billingCode,omitempty"`
	// Active defaults to true.
	Active *bool `json:"active,omitempty"`
}

// FixtureContractService is a service line on a contract with its units.
type FixtureContractService struct {
	// Contract is the contract's name; ContractID may be given instead.
	Contract   string `json:"contract,omitempty"`
	ContractID int64  `json:"contractID,omitempty"`
	// Service is the service's name; ServiceID may be given instead.
	Service   string `json:"service,omitempty"`
	ServiceID int64  `json:"serviceID,omitempty"`
	// UnitPrice defaults to the service's unit price.
	UnitPrice *float64 `json:"unitPrice,omitempty"`
	// Units is the number of units from From (default: the contract's start
	// date) on.
	Units int64  `json:"units"`
	From  string `json:"from,omitempty"`
	// Repeat adds the service again when the contract already holds it:
	// a second line of the service (a repeat service, which Autotask
	// allows). Without it a service given twice is an error.
	Repeat bool `json:"repeat,omitempty"`
}

// LoadFixture reads a JSON fixture. Unknown fields are errors, so typos do
// not silently seed nothing.
func LoadFixture(path string) (*Fixture, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("psatest: reading fixture: %w", err)
	}
	f, err := ParseFixture(data)
	if err != nil {
		return nil, fmt.Errorf("psatest: fixture %s: %w", path, err)
	}
	return f, nil
}

// ParseFixture decodes a JSON fixture strictly.
func ParseFixture(data []byte) (*Fixture, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f Fixture
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	return &f, nil
}

// merge adds the records of o to f.
func (f *Fixture) merge(o *Fixture) {
	f.mergeKaseyaBMS(o)
	f.mergeConnectWise(o)
	if o.Autotask == nil {
		return
	}
	if f.Autotask == nil {
		f.Autotask = &AutotaskFixture{}
	}
	a, b := f.Autotask, o.Autotask
	if b.Username != "" {
		a.Username = b.Username
	}
	if b.Secret != "" {
		a.Secret = b.Secret
	}
	if b.IntegrationCode != "" {
		a.IntegrationCode = b.IntegrationCode
	}
	a.BillingCodes = append(a.BillingCodes, b.BillingCodes...)
	a.Companies = append(a.Companies, b.Companies...)
	a.Contracts = append(a.Contracts, b.Contracts...)
	a.Services = append(a.Services, b.Services...)
	a.ContractServices = append(a.ContractServices, b.ContractServices...)
}

// defaultTrue reads an optional fixture flag that is true when absent, such
// as active.
func defaultTrue(p *bool) bool {
	if p == nil {
		return true
	}
	return *p
}

func fixtureDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, err
	}
	return day(t), nil
}

// load seeds the tenant from a fixture.
func (a *Autotask) load(f *AutotaskFixture) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// The accessors panic on bad labels; a fixture reports them instead.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("psatest: fixture: %v", r)
		}
	}()

	codes := map[string]int64{}
	for _, b := range f.BillingCodes {
		if _, err := picklistOf(entBillingCodes, "useType", b.UseType, "Recurring Contract Service"); err != nil {
			return fmt.Errorf("psatest: fixture: billing code %q: %w", b.Name, err)
		}
		codes[strings.ToLower(b.Name)] = a.addBillingCodeLocked(AutotaskBillingCode{
			ID: b.ID, Name: b.Name, UseType: b.UseType, Active: defaultTrue(b.Active),
		})
	}

	companies := map[string]int64{}
	for _, c := range f.Companies {
		if _, err := picklistOf(entCompanies, "companyType", c.Type, "Customer"); err != nil {
			return fmt.Errorf("psatest: fixture: company %q: %w", c.Name, err)
		}
		companies[strings.ToLower(c.Name)] = a.addCompanyLocked(AutotaskCompany{
			ID: c.ID, Name: c.Name, Number: c.Number, Type: c.Type, Active: defaultTrue(c.Active),
		})
	}

	contracts := map[string]int64{}
	for _, c := range f.Contracts {
		where := fmt.Sprintf("contract %q", c.Name)
		companyID := c.CompanyID
		if c.Company != "" {
			id, ok := companies[strings.ToLower(c.Company)]
			if !ok {
				return fmt.Errorf("psatest: fixture: %s: unknown company %q", where, c.Company)
			}
			companyID = id
		}
		if a.tables[entCompanies].get(companyID) == nil {
			return fmt.Errorf("psatest: fixture: %s: no company given", where)
		}
		start, err := fixtureDate(c.StartDate)
		if err != nil {
			return fmt.Errorf("psatest: fixture: %s: startDate: %w", where, err)
		}
		end, err := fixtureDate(c.EndDate)
		if err != nil {
			return fmt.Errorf("psatest: fixture: %s: endDate: %w", where, err)
		}
		if _, err := picklistOf(entContracts, "contractType", c.Type, "Recurring Service"); err != nil {
			return fmt.Errorf("psatest: fixture: %s: %w", where, err)
		}
		if _, err := picklistOf(entContracts, "status", c.Status, "Active"); err != nil {
			return fmt.Errorf("psatest: fixture: %s: %w", where, err)
		}
		contracts[strings.ToLower(c.Name)] = a.addContractLocked(AutotaskContract{
			ID: c.ID, CompanyID: companyID, Name: c.Name, Type: c.Type, Status: c.Status, StartDate: start, EndDate: end,
		})
	}

	services := map[string]int64{}
	for _, s := range f.Services {
		where := fmt.Sprintf("service %q", s.Name)
		if _, err := picklistOf(entServices, "periodType", s.PeriodType, "Monthly"); err != nil {
			return fmt.Errorf("psatest: fixture: %s: %w", where, err)
		}
		var code int64
		if s.BillingCode != "" {
			id, ok := codes[strings.ToLower(s.BillingCode)]
			if !ok {
				return fmt.Errorf("psatest: fixture: %s: unknown billing code %q", where, s.BillingCode)
			}
			code = id
		}
		services[strings.ToLower(s.Name)] = a.addServiceLocked(AutotaskService{
			ID: s.ID, Name: s.Name, Description: s.Description, InvoiceDescription: s.InvoiceDescription,
			UnitPrice: s.UnitPrice, UnitCost: s.UnitCost, PeriodType: s.PeriodType, BillingCodeID: code,
			Active: defaultTrue(s.Active),
		})
	}

	for i, l := range f.ContractServices {
		where := fmt.Sprintf("contractServices[%d]", i)
		contractID, serviceID := l.ContractID, l.ServiceID
		if l.Contract != "" {
			id, ok := contracts[strings.ToLower(l.Contract)]
			if !ok {
				return fmt.Errorf("psatest: fixture: %s: unknown contract %q", where, l.Contract)
			}
			contractID = id
		}
		if l.Service != "" {
			id, ok := services[strings.ToLower(l.Service)]
			if !ok {
				return fmt.Errorf("psatest: fixture: %s: unknown service %q", where, l.Service)
			}
			serviceID = id
		}
		contract := a.tables[entContracts].get(contractID)
		svc := a.tables[entServices].get(serviceID)
		if contract == nil || svc == nil {
			return fmt.Errorf("psatest: fixture: %s: contract and service are required", where)
		}
		if a.contractServiceLocked(contractID, serviceID) != nil && !l.Repeat {
			return fmt.Errorf("psatest: fixture: %s: the service is already on the contract (set repeat to add it again)", where)
		}
		if l.Units < 0 {
			return fmt.Errorf("psatest: fixture: %s: units cannot be negative", where)
		}
		from, err := fixtureDate(l.From)
		if err != nil {
			return fmt.Errorf("psatest: fixture: %s: from: %w", where, err)
		}
		if from.IsZero() {
			from = contract.time("startDate")
		}
		price := svc.float("unitPrice")
		if l.UnitPrice != nil {
			price = *l.UnitPrice
		}
		cs := a.addContractServiceLocked(contract, serviceID, price, nil)
		units := l.Units
		a.splitAtLocked(cs.id(), from, func(r record) { r["units"] = units })
	}

	for _, c := range f.Contracts {
		if c.PostedThrough == "" {
			continue
		}
		through, err := fixtureDate(c.PostedThrough)
		if err != nil {
			return fmt.Errorf("psatest: fixture: contract %q: postedThrough: %w", c.Name, err)
		}
		a.postPeriodsLocked(contracts[strings.ToLower(c.Name)], through)
	}
	return nil
}
