package autotask_test

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestBackend_bulkReads checks that services, companies and contracts are
// read by id in one query per 500 ids, that what the read returns matches
// the single reads, and that missing and invalid ids are left out.
func TestBackend_bulkReads(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	var services, companies, contracts []string
	for i := range 620 {
		services = append(services, id(at.AddService("Backup "+id(int64(i)), 5)))
	}
	for _, name := range []string{"Acme", "Globex"} {
		c := at.AddCompany(name)
		companies = append(companies, id(c))
		contracts = append(contracts, id(at.AddContract(psatest.AutotaskContract{CompanyID: c, Name: "Managed Services"})))
	}
	// Warm the picklist cache so that only the bulk queries are counted.
	if _, err := b.GetService(ctx, services[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetContract(ctx, contracts[0]); err != nil {
		t.Fatal(err)
	}
	s.ResetRequests()

	got, err := b.GetServices(ctx, append(services, "999999", "not-an-id", services[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(services) {
		t.Errorf("GetServices returned %d services, want %d", len(got), len(services))
	}
	one, err := b.GetService(ctx, services[619])
	if err != nil || !equalService(got[services[619]], one) {
		t.Errorf("GetServices[%s] = %+v, GetService = %+v, %v", services[619], got[services[619]], one, err)
	}
	if n := countRequests(s, http.MethodPost, "/Services/query"); n != 2 {
		t.Errorf("GetServices of 620 ids made %d queries, want 2", n)
	}

	cs, err := b.GetCompanies(ctx, append(companies, "999999"))
	if err != nil || len(cs) != 2 || cs[companies[1]].Name != "Globex" {
		t.Errorf("GetCompanies = %+v, %v", cs, err)
	}
	ks, err := b.GetContracts(ctx, contracts)
	if err != nil || len(ks) != 2 || ks[contracts[1]].CompanyID != companies[1] || !ks[contracts[1]].Recurring {
		t.Errorf("GetContracts = %+v, %v", ks, err)
	}
	if n := countRequests(s, http.MethodPost, "/Companies/query") + countRequests(s, http.MethodPost, "/Contracts/query"); n != 2 {
		t.Errorf("GetCompanies and GetContracts made %d queries, want 2", n)
	}
	if got, err := b.GetServices(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("GetServices(nil) = %+v, %v", got, err)
	}
}

// TestBackend_CreateService_billingCodeLookedUpOnce checks that creating
// many services looks the tenant's default billing code up once.
func TestBackend_CreateService_billingCodeLookedUpOnce(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	for i := range 3 {
		svc := &psa.Service{Name: "Backup " + id(int64(i)), UnitPrice: 1, BillingPeriod: psa.BillingPeriodMonthly, Active: true}
		if _, err := b.CreateService(t.Context(), svc); err != nil {
			t.Fatal(err)
		}
	}
	if n := countRequests(s, http.MethodPost, "/BillingCodes/query"); n != 1 {
		t.Errorf("3 creates made %d billing code queries, want 1", n)
	}
}

// TestBackend_ListContracts checks that the tenant's active Recurring
// Service contracts are counted and then listed in one query per 500, as
// GetContract reads them, that other contracts are left out, and that a
// list that would take more requests than allowed is not made.
func TestBackend_ListContracts(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	var want []string
	for i := range 520 {
		c := at.AddCompany("Customer " + id(int64(i)))
		want = append(want, id(at.AddContract(psatest.AutotaskContract{CompanyID: c, Name: "Managed Services"})))
	}
	acme := at.AddCompany("Acme")
	inactive := id(at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Closed", Status: "Inactive"}))
	fixed := id(at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Project", Type: "Fixed Price"}))
	s.ResetRequests()

	if got, ok, err := b.ListContracts(ctx, 2); err != nil || ok || got != nil {
		t.Errorf("ListContracts(2) of 520 contracts = %d contracts, %v, %v; want none, false", len(got), ok, err)
	}
	if n := countRequests(s, http.MethodPost, "/Contracts/query"); n != 1 {
		t.Errorf("ListContracts(2) made %d queries, want 1 (the count)", n)
	}
	s.ResetRequests()
	got, ok, err := b.ListContracts(ctx, 3)
	if err != nil || !ok {
		t.Fatalf("ListContracts(3) = %v, %v", ok, err)
	}
	if n := countRequests(s, http.MethodPost, "/Contracts/query"); n != 3 {
		t.Errorf("ListContracts of 520 contracts made %d queries, want 3 (the count and 2 pages)", n)
	}
	if len(got) != len(want) || got[inactive] != nil || got[fixed] != nil {
		t.Errorf("ListContracts returned %d contracts (inactive %v, fixed price %v), want the %d active recurring ones",
			len(got), got[inactive] != nil, got[fixed] != nil, len(want))
	}
	one, err := b.GetContract(ctx, want[519])
	if err != nil || !reflect.DeepEqual(got[want[519]], one) {
		t.Errorf("ListContracts[%s] = %+v, GetContract = %+v, %v", want[519], got[want[519]], one, err)
	}
}

// TestBackend_queryNotFoundIsTheEndpoints checks that a 404 to any query
// (a search, a count, the list of every contract, the line read before a
// write) matches psa.ErrEndpointNotFound and says to check base_url, never
// psa.ErrNotFound: a query finds no row of an unknown record, so its 404 is
// of the endpoint (a base URL that is not the tenant's zone, a proxy), and
// read as not found it told the user that the contract, company, service
// or ticket they named did not exist.
func TestBackend_queryNotFoundIsTheEndpoints(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	contract := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed Services"})
	service := at.AddService("Backup", 5)
	// Warm the picklist cache, whose reads are no queries.
	if _, err := b.GetContract(ctx, id(contract)); err != nil {
		t.Fatal(err)
	}
	s.AddFault(psatest.Fault{Method: http.MethodPost, BodyContains: `"filter"`, Status: http.StatusNotFound, Body: "<html><body>404 Not Found</body></html>"})
	calls := map[string]func() error{
		"FindContracts": func() error {
			_, err := b.FindContracts(ctx, psa.ContractQuery{CompanyID: id(company)})
			return err
		},
		"ListContracts": func() error {
			_, _, err := b.ListContracts(ctx, 100)
			return err
		},
		"FindCompanies": func() error {
			_, err := b.FindCompanies(ctx, "Acme")
			return err
		},
		"FindServices": func() error {
			_, err := b.FindServices(ctx, "Backup")
			return err
		},
		"FindTickets": func() error {
			_, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: id(company), ExternalRef: "sophos:alert-1"})
			return err
		},
		"ReadLines": func() error {
			_, err := b.ReadLines(ctx, []string{id(contract)}, now)
			return err
		},
		"SetQuantity": func() error {
			_, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(contract), ServiceID: id(service), Quantity: 3, EffectiveDate: now})
			return err
		},
		"Count": func() error {
			_, _, err := b.Client().Contracts.Count(ctx, autotask.NewQuery(autotask.All()))
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, psa.ErrEndpointNotFound) || errors.Is(err, psa.ErrNotFound) || !strings.Contains(fmt.Sprint(err), "check base_url") {
			t.Errorf("%s with every query answered 404: %v; want psa.ErrEndpointNotFound saying check base_url, not psa.ErrNotFound", name, err)
		}
	}
}

// TestBackend_entityInformationNotFoundIsTheEndpoints checks that a 404 to
// entityInformation/fields, which names an entity type and no record,
// matches psa.ErrEndpointNotFound as a query's does: the plan-time check of
// a new service reads it first, and took a base URL that is not the
// tenant's for a missing record, warning where the plan must fail.
func TestBackend_entityInformationNotFoundIsTheEndpoints(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	// Every GET: the check reads entityInformation/fields first.
	s.AddFault(psatest.Fault{Method: http.MethodGet, Status: http.StatusNotFound,
		Body: "<html><body>404 Not Found</body></html>"})
	err := b.CheckServiceFields(t.Context(), &psa.Service{Name: "Backup", BillingPeriod: psa.BillingPeriodMonthly})
	if !errors.Is(err, psa.ErrEndpointNotFound) || errors.Is(err, psa.ErrNotFound) || !strings.Contains(fmt.Sprint(err), "check base_url") {
		t.Errorf("CheckServiceFields with entityInformation/fields answered 404: %v; want psa.ErrEndpointNotFound saying check base_url, not psa.ErrNotFound", err)
	}
}
