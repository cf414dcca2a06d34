package provider

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// testSystems are the PSAs that the acceptance tests run against. Each test
// that does not depend on one PSA's peculiarities loops over them:
//
//	for _, sys := range testSystems {
//		t.Run(string(sys), func(t *testing.T) {
//			t.Parallel()
//			e := newTestEnv(t, sys)
//			...
//		})
//	}
//
// The testEnv hides how each simulator is seeded and configured, so the
// test bodies are the same for every PSA.
var testSystems = psa.Systems

// contractKind selects the contract addContract seeds.
type contractKind int

const (
	// contractRecurring is an active recurring-service contract, the only
	// kind usage sync writes to.
	contractRecurring contractKind = iota
	// contractInactive is a recurring-service contract that is not active.
	contractInactive
	// contractOther is an active contract of a kind usage sync does not
	// write to.
	contractOther
)

// simService is a service as the simulator holds it, in neutral terms.
type simService struct {
	ID          string
	Name        string
	Description string
	UnitPrice   float64
	UnitCost    float64
	Active      bool
}

// psaBlock returns the PSA block of the provider configuration for the
// simulator, with the simulator's default credentials. The URL goes
// through HCL, never the environment, which parallel tests share.
func (e *testEnv) psaBlock() string {
	switch e.system {
	case psa.SystemConnectWise:
		return fmt.Sprintf(`
  connectwise {
    company_id  = %[2]q
    public_key  = %[3]q
    private_key = %[4]q
    client_id   = %[5]q
    base_url    = %[1]q
  }
`, e.sim.ConnectWiseBaseURL(), psatest.DefaultConnectWiseCompany, psatest.DefaultConnectWisePublicKey,
			psatest.DefaultConnectWisePrivateKey, psatest.DefaultConnectWiseClientID)
	case psa.SystemKaseyaBMS:
		return fmt.Sprintf(`
  kaseya_bms {
    username = %[2]q
    password = %[3]q
    tenant   = %[4]q
    base_url = %[1]q
  }
`, e.sim.KaseyaBMSBaseURL(), psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant)
	}
	return fmt.Sprintf(`
  autotask {
    username         = %[2]q
    secret           = %[3]q
    integration_code = %[4]q
    base_url         = %[1]q
  }
`, e.sim.AutotaskBaseURL(), psatest.DefaultAutotaskUsername, psatest.DefaultAutotaskSecret, psatest.DefaultAutotaskIntegrationCode)
}

// baseURL returns the simulator's API root for the system.
func (e *testEnv) baseURL() string {
	switch e.system {
	case psa.SystemConnectWise:
		return e.sim.ConnectWiseBaseURL()
	case psa.SystemKaseyaBMS:
		return e.sim.KaseyaBMSBaseURL()
	}
	return e.sim.AutotaskBaseURL()
}

// addCompany adds an active company and returns its id.
func (e *testEnv) addCompany(name string) string {
	switch e.system {
	case psa.SystemConnectWise:
		return id(e.sim.ConnectWise().AddCompany(name))
	case psa.SystemKaseyaBMS:
		return strconv.Itoa(e.sim.KaseyaBMS().AddAccount(name))
	}
	return id(e.sim.Autotask().AddCompany(name))
}

// setCompanyActive activates or deactivates a company out of band
// (ConnectWise: its deletedFlag, as for a company merged into another).
func (e *testEnv) setCompanyActive(companyID string, active bool) {
	n := mustID(companyID)
	switch e.system {
	case psa.SystemConnectWise:
		e.sim.ConnectWise().SetCompanyDeleted(n, !active)
	case psa.SystemKaseyaBMS:
		e.sim.KaseyaBMS().SetAccountActive(int(n), active)
	default:
		e.sim.Autotask().SetCompanyActive(n, active)
	}
}

// addContract adds a contract of the given kind to a company and returns
// its id.
func (e *testEnv) addContract(companyID, name string, kind contractKind) string {
	n, err := strconv.ParseInt(companyID, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("company id %q: %v", companyID, err))
	}
	switch e.system {
	case psa.SystemConnectWise:
		a := psatest.ConnectWiseAgreement{CompanyID: n, Name: name}
		switch kind {
		case contractInactive:
			a.Status = "Inactive"
		case contractOther:
			a.BillingCycle = "One Time"
		}
		return id(e.sim.ConnectWise().AddAgreement(a))
	case psa.SystemKaseyaBMS:
		c := psatest.KaseyaBMSContract{AccountID: int(n), Name: name}
		switch kind {
		case contractInactive:
			c.Inactive = true
		case contractOther:
			c.Type = "Fixed Fee"
		}
		return strconv.Itoa(e.sim.KaseyaBMS().AddContract(c))
	}
	c := psatest.AutotaskContract{CompanyID: n, Name: name}
	switch kind {
	case contractInactive:
		c.Status = "Inactive"
	case contractOther:
		c.Type = "Fixed Price"
	}
	return id(e.sim.Autotask().AddContract(c))
}

// recurringContractType is the PSA's label of the type of the contracts
// that addContract adds with contractRecurring.
func (e *testEnv) recurringContractType() string {
	switch e.system {
	case psa.SystemConnectWise:
		return "Managed Services"
	case psa.SystemKaseyaBMS:
		return "Recurring Services"
	}
	return "Recurring Service"
}

// otherContractType is the label that addContract gives contractOther.
func (e *testEnv) otherContractType() string {
	switch e.system {
	case psa.SystemConnectWise:
		// ConnectWise decides by the billing cycle; the type stays.
		return "Managed Services"
	case psa.SystemKaseyaBMS:
		return "Fixed Fee"
	}
	return "Fixed Price"
}

// contractFaultPath matches the requests that read contracts, for faults.
func (e *testEnv) contractFaultPath() string {
	switch e.system {
	case psa.SystemConnectWise:
		return "/" + e.sim.ConnectWise().Codebase() + "apis/3.0/finance/agreements*"
	case psa.SystemKaseyaBMS:
		return "/v2/finance/contracts/*"
	}
	return "/ATServicesRest/V1.0/Contracts*"
}

// isContractRead reports whether a logged request read a contract.
func (e *testEnv) isContractRead(r psatest.Request) bool {
	p := strings.ToLower(r.Path)
	switch e.system {
	case psa.SystemConnectWise:
		return strings.Contains(p, "/finance/agreements")
	case psa.SystemKaseyaBMS:
		return strings.Contains(p, "/v2/finance/contracts/")
	}
	return strings.Contains(p, "/contracts/")
}

// isServiceRequest reports whether a logged request addressed the service
// with the given id.
func (e *testEnv) isServiceRequest(r psatest.Request, serviceID string) bool {
	p := strings.ToLower(r.Path)
	switch e.system {
	case psa.SystemConnectWise:
		return strings.HasSuffix(p, "/procurement/catalog/"+serviceID)
	case psa.SystemKaseyaBMS:
		return strings.HasSuffix(p, "/v2/admin/finance/services/"+serviceID)
	}
	// Autotask reads a service by id and writes it at the collection URL.
	return strings.HasSuffix(p, "/services/"+serviceID) || strings.HasSuffix(p, "/services")
}

// addService adds an active service and returns its id.
func (e *testEnv) addService(name string, price float64) string {
	switch e.system {
	case psa.SystemConnectWise:
		return id(e.sim.ConnectWise().AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: name, Price: price}))
	case psa.SystemKaseyaBMS:
		return strconv.Itoa(e.sim.KaseyaBMS().AddService(name, price))
	}
	return id(e.sim.Autotask().AddService(name, price))
}

// setServiceActive activates or deactivates a service out of band.
func (e *testEnv) setServiceActive(serviceID string, active bool) {
	n := mustID(serviceID)
	switch e.system {
	case psa.SystemConnectWise:
		e.sim.ConnectWise().SetCatalogItemInactive(n, !active)
	case psa.SystemKaseyaBMS:
		e.sim.KaseyaBMS().SetServiceActive(int(n), active)
	default:
		e.sim.Autotask().SetServiceActive(n, active)
	}
}

// deleteService deletes a service out of band, as someone in the PSA would.
func (e *testEnv) deleteService(serviceID string) {
	n := mustID(serviceID)
	switch e.system {
	case psa.SystemConnectWise:
		e.sim.ConnectWise().DeleteCatalogItem(n)
	case psa.SystemKaseyaBMS:
		e.sim.KaseyaBMS().DeleteService(int(n))
	default:
		e.sim.Autotask().DeleteService(n)
	}
}

// renameService renames a service out of band through the PSA's API, as
// someone in the PSA would.
func (e *testEnv) renameService(t *testing.T, serviceID, name string) {
	t.Helper()
	b := e.backend(t)
	svc, err := b.GetService(t.Context(), serviceID)
	if err != nil {
		t.Fatalf("renaming service %s: %v", serviceID, err)
	}
	svc.Name = name
	if _, err := b.UpdateService(t.Context(), svc); err != nil {
		t.Fatalf("renaming service %s: %v", serviceID, err)
	}
}

// backend returns a backend of the simulator with its default credentials.
func (e *testEnv) backend(t *testing.T) psa.Backend {
	t.Helper()
	cfg := backends.Config{System: e.system}
	switch e.system {
	case psa.SystemConnectWise:
		cfg.ConnectWise = &backends.ConnectWiseConfig{CompanyID: psatest.DefaultConnectWiseCompany,
			PublicKey: psatest.DefaultConnectWisePublicKey, PrivateKey: psatest.DefaultConnectWisePrivateKey,
			ClientID: psatest.DefaultConnectWiseClientID, BaseURL: e.baseURL()}
	case psa.SystemKaseyaBMS:
		cfg.KaseyaBMS = &backends.KaseyaBMSConfig{Username: psatest.DefaultKaseyaBMSUsername,
			Password: psatest.DefaultKaseyaBMSPassword, Tenant: psatest.DefaultKaseyaBMSTenant, BaseURL: e.baseURL()}
	default:
		cfg.Autotask = &backends.AutotaskConfig{Username: psatest.DefaultAutotaskUsername, Secret: psatest.DefaultAutotaskSecret,
			IntegrationCode: psatest.DefaultAutotaskIntegrationCode, BaseURL: e.baseURL()}
	}
	b, err := backends.New(cfg)
	if err != nil {
		t.Fatalf("backend of the simulator: %v", err)
	}
	return b
}

// services returns every service of the simulator.
func (e *testEnv) services() []simService {
	var out []simService
	switch e.system {
	case psa.SystemConnectWise:
		for _, s := range e.sim.ConnectWise().CatalogItems() {
			out = append(out, simService{ID: id(s.ID), Name: s.Description, Description: s.Notes,
				UnitPrice: s.Price, UnitCost: s.Cost, Active: !s.Inactive})
		}
	case psa.SystemKaseyaBMS:
		for _, s := range e.sim.KaseyaBMS().Services() {
			out = append(out, simService{ID: strconv.Itoa(s.ID), Name: s.Name, Description: s.Description,
				UnitPrice: s.UnitPrice, UnitCost: s.UnitCost, Active: s.Active})
		}
	default:
		for _, s := range e.sim.Autotask().Services() {
			out = append(out, simService{ID: id(s.ID), Name: s.Name, Description: s.Description,
				UnitPrice: s.UnitPrice, UnitCost: s.UnitCost, Active: s.Active})
		}
	}
	return out
}

// credentialsOption returns the simulator option that makes it accept only
// the given secret (for Autotask the secret, for ConnectWise the private
// key, for Kaseya BMS the password), with the default other credentials.
func credentialsOption(sys psa.System, secret string) psatest.Option {
	switch sys {
	case psa.SystemConnectWise:
		return psatest.WithConnectWiseCredentials(psatest.DefaultConnectWiseCompany, psatest.DefaultConnectWisePublicKey,
			secret, psatest.DefaultConnectWiseClientID)
	case psa.SystemKaseyaBMS:
		return psatest.WithKaseyaBMSCredentials(psatest.DefaultKaseyaBMSUsername, secret, psatest.DefaultKaseyaBMSTenant)
	}
	return psatest.WithAutotaskCredentials(psatest.DefaultAutotaskUsername, secret, psatest.DefaultAutotaskIntegrationCode)
}

// secretAttribute names the attribute of the PSA block that credentialsOption
// sets.
func secretAttribute(sys psa.System) string {
	switch sys {
	case psa.SystemConnectWise:
		return "private_key"
	case psa.SystemKaseyaBMS:
		return "password"
	}
	return "secret"
}

// psaBlockWithout returns the PSA block without the named attributes, so
// that a test can set them another way.
func (e *testEnv) psaBlockWithout(names ...string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(e.psaBlock(), "\n") {
		if f := strings.Fields(line); len(f) > 0 && slices.Contains(names, f[0]) {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

func mustID(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("id %q: %v", s, err))
	}
	return n
}
