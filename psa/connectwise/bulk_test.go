package connectwise_test

import (
	"net/http"
	"reflect"
	"strconv"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestBackend_bulkReads checks that catalog items, companies and agreements
// are read by id with "id in (...)" conditions of 100 ids, that what the
// read returns matches the single reads, and that missing and invalid ids
// are left out.
func TestBackend_bulkReads(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	cw := s.ConnectWise()
	var services, companies, contracts []string
	for i := range 150 {
		services = append(services, strconv.FormatInt(cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup " + strconv.Itoa(i), Price: 5}), 10))
	}
	for _, name := range []string{"Acme", "Globex"} {
		company, agreement := seed(cw, name)
		companies = append(companies, strconv.FormatInt(company, 10))
		contracts = append(contracts, strconv.FormatInt(agreement, 10))
	}
	s.ResetRequests()

	got, err := b.GetServices(ctx, append(services, "999999", "not-an-id"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(services) {
		t.Errorf("GetServices returned %d services, want %d", len(got), len(services))
	}
	if n := countRequests(s, http.MethodGet, "/procurement/catalog"); n != 2 {
		t.Errorf("GetServices of 150 ids made %d requests, want 2", n)
	}
	one, err := b.GetService(ctx, services[149])
	if err != nil || !reflect.DeepEqual(got[services[149]], one) {
		t.Errorf("GetServices[%s] = %+v, GetService = %+v, %v", services[149], got[services[149]], one, err)
	}

	cs, err := b.GetCompanies(ctx, append(companies, "999999"))
	if err != nil || len(cs) != 2 || cs[companies[1]].Name != "Globex" {
		t.Errorf("GetCompanies = %+v, %v", cs, err)
	}
	ks, err := b.GetContracts(ctx, contracts)
	if err != nil || len(ks) != 2 {
		t.Fatalf("GetContracts = %+v, %v", ks, err)
	}
	k, err := b.GetContract(ctx, contracts[1])
	if err != nil || !reflect.DeepEqual(ks[contracts[1]], k) {
		t.Errorf("GetContracts[%s] = %+v, GetContract = %+v, %v", contracts[1], ks[contracts[1]], k, err)
	}
}

// TestBackend_ListContracts checks that the tenant's active agreements are
// counted and then listed 1,000 a page, as GetContract reads them, that
// agreements that are not active are left out, and that a list that would
// take more requests than allowed is not made.
func TestBackend_ListContracts(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	cw := s.ConnectWise()
	var want []string
	for i := range 1020 {
		_, agreement := seed(cw, "Customer "+strconv.Itoa(i))
		want = append(want, strconv.FormatInt(agreement, 10))
	}
	acme := cw.AddCompany("Acme")
	cancelled := strconv.FormatInt(cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Old", Status: "Cancelled"}), 10)
	s.ResetRequests()

	if got, ok, err := b.ListContracts(ctx, 2); err != nil || ok || got != nil {
		t.Errorf("ListContracts(2) of 1,020 agreements = %d agreements, %v, %v; want none, false", len(got), ok, err)
	}
	if n := countRequests(s, http.MethodGet, "/finance/agreements"); n != 1 {
		t.Errorf("ListContracts(2) made %d requests, want 1 (the count)", n)
	}
	s.ResetRequests()
	got, ok, err := b.ListContracts(ctx, 3)
	if err != nil || !ok {
		t.Fatalf("ListContracts(3) = %v, %v", ok, err)
	}
	if n := countRequests(s, http.MethodGet, "/finance/agreements"); n != 3 {
		t.Errorf("ListContracts of 1,020 agreements made %d requests, want 3 (the count and 2 pages)", n)
	}
	if len(got) != len(want) || got[cancelled] != nil {
		t.Errorf("ListContracts returned %d agreements (cancelled %v), want the %d active ones", len(got), got[cancelled] != nil, len(want))
	}
	one, err := b.GetContract(ctx, want[1019])
	if err != nil || !reflect.DeepEqual(got[want[1019]], one) {
		t.Errorf("ListContracts[%s] = %+v, GetContract = %+v, %v", want[1019], got[want[1019]], one, err)
	}
}
