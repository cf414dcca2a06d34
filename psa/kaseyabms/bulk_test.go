package kaseyabms_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestBackend_bulkReads checks that the bulk reads return what the single
// reads return, leave out missing and invalid ids, and leave a contract of
// an ambiguous account name to GetContract; few ids are read one by one,
// many through the paged search.
func TestBackend_bulkReads(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	ctx := t.Context()
	k := srv.KaseyaBMS()
	var services []string
	for i := range 150 {
		services = append(services, itoa(k.AddService("Backup "+itoa(i), 5)))
	}
	acme := k.AddAccount("Acme")
	globex := k.AddAccount("Globex")
	dup := k.AddAccount("globex")
	rs := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme Managed Services"})
	tm := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme T&M", Type: "Time & Materials"})
	ambiguous := k.AddContract(psatest.KaseyaBMSContract{AccountID: dup, Name: "Globex Managed Services"})

	srv.ResetRequests()
	all, err := b.GetServices(ctx, append(services, "999999"))
	if err != nil || len(all) != len(services) {
		t.Fatalf("GetServices of %d ids = %d services, %v", len(services), len(all), err)
	}
	n := 0
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/services/search") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("GetServices of 150 ids made %d requests, want 2 (the search, 100 a page)", n)
	}
	got, err := b.GetServices(ctx, []string{services[0], services[149], "999999", "not-an-id"})
	if err != nil || len(got) != 2 {
		t.Fatalf("GetServices = %+v, %v; want 2 services", got, err)
	}
	one, err := b.GetService(ctx, services[149])
	if err != nil || !reflect.DeepEqual(got[services[149]], one) {
		t.Errorf("GetServices[%s] = %+v, GetService = %+v, %v", services[149], got[services[149]], one, err)
	}

	cs, err := b.GetCompanies(ctx, []string{itoa(acme), itoa(globex), "999999"})
	if err != nil || len(cs) != 2 || cs[itoa(globex)].Name != "Globex" {
		t.Errorf("GetCompanies = %+v, %v", cs, err)
	}

	few, err := b.GetContracts(ctx, []string{itoa(rs), itoa(ambiguous), "999999"})
	if err != nil || len(few) != 2 || few[itoa(ambiguous)].CompanyID != itoa(dup) {
		t.Fatalf("GetContracts of 3 ids = %+v, %v; want 2, one read by one", few, err)
	}
	many := []string{itoa(rs), itoa(tm), itoa(ambiguous), "999999"}
	for i := range 30 {
		many = append(many, itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme " + itoa(i)})))
	}
	ks, err := b.GetContracts(ctx, many)
	if err != nil || len(ks) != 32 {
		t.Fatalf("GetContracts = %d contracts, %v; want the 32 contracts of Acme", len(ks), err)
	}
	for _, id := range []int{rs, tm} {
		one, err := b.GetContract(ctx, itoa(id))
		if err != nil || !reflect.DeepEqual(ks[itoa(id)], one) {
			t.Errorf("GetContracts[%d] = %+v, GetContract = %+v, %v", id, ks[itoa(id)], one, err)
		}
	}
	if c, err := b.GetContract(ctx, itoa(ambiguous)); err != nil || c.CompanyID != itoa(dup) {
		t.Errorf("GetContract(%d) = %+v, %v; want company %d", ambiguous, c, err, dup)
	}
	if _, err := b.GetContract(ctx, "999999"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetContract(999999) = %v, want psa.ErrNotFound", err)
	}
}

// TestBackend_ListContracts checks that the tenant's contracts are listed
// with one contract lookup and the paged summary and account lookup, as
// GetContract reads them, that a contract of an ambiguous account name is
// left to GetContract, and that a list that would take more requests than
// allowed stops after the lookup.
func TestBackend_ListContracts(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	ctx := t.Context()
	k := srv.KaseyaBMS()
	var want []string
	for i := range 150 {
		a := k.AddAccount("Customer " + itoa(i))
		want = append(want, itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: "Customer " + itoa(i) + " Managed Services"})))
	}
	k.AddAccount("Globex")
	dup := k.AddAccount("globex")
	ambiguous := itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: dup, Name: "Globex Managed Services"}))
	if got, ok, err := b.ListContracts(ctx, 4); err != nil || ok || got != nil {
		t.Errorf("ListContracts(4) of 151 contracts = %d contracts, %v, %v; want none, false", len(got), ok, err)
	}
	srv.ResetRequests()
	got, ok, err := b.ListContracts(ctx, 5)
	if err != nil || !ok {
		t.Fatalf("ListContracts(5) = %v, %v", ok, err)
	}
	counts := map[string]int{}
	for _, r := range srv.Requests() {
		if p := r.Path[strings.Index(r.Path, "/v2/"):]; p != "/v2/security/authenticate" {
			counts[p]++
		}
	}
	if want := map[string]int{"/v2/finance/contracts/lookup": 1, "/v2/finance/contracts/summary": 2, "/v2/crm/accounts/lookup": 2}; !reflect.DeepEqual(counts, want) {
		t.Errorf("ListContracts of 151 contracts made requests %v, want %v", counts, want)
	}
	if len(got) != len(want) || got[ambiguous] != nil {
		t.Errorf("ListContracts returned %d contracts (ambiguous %v), want %d", len(got), got[ambiguous] != nil, len(want))
	}
	one, err := b.GetContract(ctx, want[149])
	if err != nil || !reflect.DeepEqual(got[want[149]], one) {
		t.Errorf("ListContracts[%s] = %+v, GetContract = %+v, %v", want[149], got[want[149]], one, err)
	}
}

// TestBackend_ContractReadCost checks that GetContracts sends at least the
// requests ContractReadCost says, for few ids read one by one and for many
// read in bulk, so that a caller comparing it with ListContracts never
// lists where reading by id would have cost less.
func TestBackend_ContractReadCost(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	ctx := t.Context()
	k := srv.KaseyaBMS()
	var ids []string
	for i := range 150 {
		a := k.AddAccount("Customer " + itoa(i))
		ids = append(ids, itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: "Customer " + itoa(i) + " Managed Services"})))
	}
	if err := b.Ping(ctx); err != nil { // signs in
		t.Fatal(err)
	}
	for _, n := range []int{1, 4, 30, 150} {
		srv.ResetRequests()
		got, err := b.GetContracts(ctx, ids[:n])
		if err != nil || len(got) != n {
			t.Fatalf("GetContracts of %d ids = %d contracts, %v", n, len(got), err)
		}
		if sent, cost := len(srv.Requests()), b.ContractReadCost(n); sent < cost {
			t.Errorf("GetContracts of %d ids sent %d requests, fewer than ContractReadCost(%d) = %d", n, sent, n, cost)
		}
	}
}
