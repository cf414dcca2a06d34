package psatest

import (
	"fmt"
	"strings"
)

// KaseyaBMSFixture seeds a simulated Kaseya BMS tenant. Records refer to
// each other by name (or by id where a record gives one).
type KaseyaBMSFixture struct {
	// Username, Password and Tenant replace the default credentials when
	// set; WithKaseyaBMSCredentials wins over them.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Tenant   string `json:"tenant,omitempty"`
	// PascalCase makes the API answer in PascalCase (see
	// KaseyaBMS.SetPascalCase).
	PascalCase bool `json:"pascalCase,omitempty"`

	Accounts  []KaseyaBMSFixtureAccount  `json:"accounts,omitempty"`
	Contracts []KaseyaBMSFixtureContract `json:"contracts,omitempty"`
	Services  []KaseyaBMSFixtureService  `json:"services,omitempty"`
	Lines     []KaseyaBMSFixtureLine     `json:"lines,omitempty"`
}

// KaseyaBMSFixtureAccount is an account in a fixture.
type KaseyaBMSFixtureAccount struct {
	ID   int    `json:"id,omitempty"`
	Name string `json:"name"`
	Code string `json:"code,omitempty"`
	// Active defaults to true.
	Active *bool `json:"active,omitempty"`
}

// KaseyaBMSFixtureContract is a contract in a fixture.
type KaseyaBMSFixtureContract struct {
	ID   int    `json:"id,omitempty"`
	Name string `json:"name"`
	// Account is the account's name; AccountID may be given instead.
	Account   string `json:"account,omitempty"`
	AccountID int    `json:"accountId,omitempty"`
	// Type defaults to "Recurring Services".
	Type string `json:"type,omitempty"`
	// Active defaults to true.
	Active *bool `json:"active,omitempty"`
	// StartDate and EndDate are "YYYY-MM-DD"; empty means this calendar year.
	StartDate string `json:"startDate,omitempty"`
	EndDate   string `json:"endDate,omitempty"`
}

// KaseyaBMSFixtureService is a catalog service in a fixture. Category,
// SubCategory and UnitOfMeasure are names of the simulator's fixed lists.
type KaseyaBMSFixtureService struct {
	ID            int     `json:"id,omitempty"`
	Name          string  `json:"name"`
	Description   string  `json:"description,omitempty"`
	UnitPrice     float64 `json:"unitPrice"`
	UnitCost      float64 `json:"unitCost,omitempty"`
	Category      string  `json:"category,omitempty"`
	SubCategory   string  `json:"subCategory,omitempty"`
	UnitOfMeasure string  `json:"unitOfMeasure,omitempty"`
	Taxable       bool    `json:"taxable,omitempty"`
	// Active defaults to true.
	Active *bool `json:"active,omitempty"`
}

// KaseyaBMSFixtureLine is a recurring-service line on a contract.
type KaseyaBMSFixtureLine struct {
	Contract   string `json:"contract,omitempty"`
	ContractID int    `json:"contractId,omitempty"`
	Service    string `json:"service,omitempty"`
	ServiceID  int    `json:"serviceId,omitempty"`
	Units      int    `json:"units"`
	// EffectiveDate defaults to the contract's start date.
	EffectiveDate string `json:"effectiveDate,omitempty"`
}

// mergeKaseyaBMS adds the BMS records of o to f.
func (f *Fixture) mergeKaseyaBMS(o *Fixture) {
	if o.KaseyaBMS == nil {
		return
	}
	if f.KaseyaBMS == nil {
		f.KaseyaBMS = &KaseyaBMSFixture{}
	}
	a, b := f.KaseyaBMS, o.KaseyaBMS
	if b.Username != "" {
		a.Username = b.Username
	}
	if b.Password != "" {
		a.Password = b.Password
	}
	if b.Tenant != "" {
		a.Tenant = b.Tenant
	}
	a.PascalCase = a.PascalCase || b.PascalCase
	a.Accounts = append(a.Accounts, b.Accounts...)
	a.Contracts = append(a.Contracts, b.Contracts...)
	a.Services = append(a.Services, b.Services...)
	a.Lines = append(a.Lines, b.Lines...)
}

func namedID(kind string, list []bmsNamed, name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	for _, n := range list {
		if strings.EqualFold(n.Name, name) {
			return n.ID, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", kind, name)
}

// load seeds the tenant from a fixture.
func (k *KaseyaBMS) load(f *KaseyaBMSFixture) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pascal = f.PascalCase
	accounts := map[string]int{}
	for _, a := range f.Accounts {
		accounts[strings.ToLower(a.Name)] = k.addAccountLocked(KaseyaBMSAccount{ID: a.ID, Name: a.Name, Code: a.Code, Active: defaultTrue(a.Active)})
	}
	contracts := map[string]int{}
	for _, c := range f.Contracts {
		where := fmt.Sprintf("psatest: fixture: kaseyabms contract %q", c.Name)
		account := c.AccountID
		if c.Account != "" {
			id, ok := accounts[strings.ToLower(c.Account)]
			if !ok {
				return fmt.Errorf("%s: unknown account %q", where, c.Account)
			}
			account = id
		}
		if k.accountLocked(account) == nil {
			return fmt.Errorf("%s: no account given", where)
		}
		start, err := fixtureDate(c.StartDate)
		if err != nil {
			return fmt.Errorf("%s: startDate: %w", where, err)
		}
		end, err := fixtureDate(c.EndDate)
		if err != nil {
			return fmt.Errorf("%s: endDate: %w", where, err)
		}
		contracts[strings.ToLower(c.Name)] = k.addContractLocked(KaseyaBMSContract{ID: c.ID, AccountID: account, Name: c.Name,
			Type: c.Type, Inactive: !defaultTrue(c.Active), StartDate: start, EndDate: end})
	}
	services := map[string]int{}
	for _, s := range f.Services {
		where := fmt.Sprintf("psatest: fixture: kaseyabms service %q", s.Name)
		cat, err := namedID("category", kaseyaBMSCategories, s.Category)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		sub, err := namedID("subcategory", kaseyaBMSSubs[cat], s.SubCategory)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		uom, err := namedID("unit of measure", kaseyaBMSUnits, s.UnitOfMeasure)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		services[strings.ToLower(s.Name)] = k.addServiceLocked(KaseyaBMSService{ID: s.ID, Name: s.Name, Description: s.Description,
			UnitPrice: s.UnitPrice, UnitCost: s.UnitCost, CategoryID: cat, SubCategoryID: sub, UnitOfMeasureID: uom,
			Taxable: s.Taxable, Active: defaultTrue(s.Active)})
	}
	for i, l := range f.Lines {
		where := fmt.Sprintf("psatest: fixture: kaseyabms lines[%d]", i)
		contractID, serviceID := l.ContractID, l.ServiceID
		if l.Contract != "" {
			contractID = contracts[strings.ToLower(l.Contract)]
		}
		if l.Service != "" {
			serviceID = services[strings.ToLower(l.Service)]
		}
		c, s := k.contractLocked(contractID), k.serviceLocked(serviceID)
		if c == nil || s == nil {
			return fmt.Errorf("%s: a known contract and service are required", where)
		}
		if l.Units < 0 {
			return fmt.Errorf("%s: units cannot be negative", where)
		}
		eff, err := fixtureDate(l.EffectiveDate)
		if err != nil {
			return fmt.Errorf("%s: effectiveDate: %w", where, err)
		}
		if eff.IsZero() {
			eff = c.StartDate
		}
		k.addLineLocked(c, KaseyaBMSLine{ServiceID: s.ID, ServiceName: s.Name, Description: s.Description, Units: l.Units,
			UnitPrice: s.UnitPrice, UnitCost: s.UnitCost, EffectiveDate: eff})
	}
	return nil
}
