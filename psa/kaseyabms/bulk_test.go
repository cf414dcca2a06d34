package kaseyabms_test

import (
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
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
	// Two pages each of the summary and the account lookup, and page 0 of
	// the lookup, which has no totalRecords: the client has yet to learn
	// where its pages start.
	if got, ok, err := b.ListContracts(ctx, 5); err != nil || ok || got != nil {
		t.Errorf("ListContracts(5) of 151 contracts = %d contracts, %v, %v; want none, false", len(got), ok, err)
	}
	srv.ResetRequests()
	got, ok, err := b.ListContracts(ctx, 6)
	if err != nil || !ok {
		t.Fatalf("ListContracts(6) = %v, %v", ok, err)
	}
	counts := map[string]int{}
	for _, r := range srv.Requests() {
		if p := r.Path[strings.Index(r.Path, "/v2/"):]; p != "/v2/security/authenticate" {
			counts[p]++
		}
	}
	if want := map[string]int{"/v2/finance/contracts/lookup": 1, "/v2/finance/contracts/summary": 2, "/v2/crm/accounts/lookup": 3}; !reflect.DeepEqual(counts, want) {
		t.Errorf("ListContracts of 151 contracts made requests %v, want %v", counts, want)
	}
	if len(got) != len(want) || got[ambiguous] != nil {
		t.Errorf("ListContracts returned %d contracts (ambiguous %v), want %d", len(got), got[ambiguous] != nil, len(want))
	}
	one, err := b.GetContract(ctx, want[149])
	if err != nil || !reflect.DeepEqual(got[want[149]], one) {
		t.Errorf("ListContracts[%s] = %+v, GetContract = %+v, %v", want[149], got[want[149]], one, err)
	}

	// GetContracts of more ids than one lookup names looks up all the
	// contracts at once, as ListContracts does.
	srv.ResetRequests()
	byID, err := b.GetContracts(ctx, want)
	if err != nil || !reflect.DeepEqual(byID, got) {
		t.Fatalf("GetContracts of the %d listed contracts = %d contracts, %v; want what ListContracts returned", len(want), len(byID), err)
	}
	if n := len(srv.Requests()); n != 5 {
		t.Errorf("GetContracts of %d ids made %d requests, want 5 (one lookup, two pages each of the summary and accounts)", len(want), n)
	}
	// Now that the client knows where the pages start, the list costs 5.
	if _, ok, err := b.ListContracts(ctx, 5); err != nil || !ok {
		t.Errorf("ListContracts(5) once the page base is known = %v, %v; want the list", ok, err)
	}
}

// TestBackend_PreloadServices checks that the services a pass writes are
// read in one search page from a small catalog and one by one where the
// pages would be more, that the writes then read none, that kept services
// are taken within serviceTTL (10 minutes) and never after it, so that a
// price changed since is picked up, and what is read is returned to keep.
func TestBackend_PreloadServices(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	var ids []string
	for i := range 5 {
		ids = append(ids, itoa(k.AddService("Backup "+itoa(i), float64(i)+0.5)))
	}
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: k.AddAccount("Acme"), Name: "Acme Managed Services"})
	count := func() (searches, gets int) {
		for _, r := range srv.Requests() {
			switch {
			case strings.HasSuffix(r.Path, "/services/search"):
				searches++
			case r.Method == http.MethodGet && strings.Contains(r.Path, "/admin/finance/services/"):
				gets++
			}
		}
		return searches, gets
	}

	before := time.Now()
	srv.ResetRequests()
	read, err := b.PreloadServices(ctx, append(slices.Clone(ids), ids[0], "999999"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, g := count(); s != 1 || g != 0 {
		t.Errorf("PreloadServices of 5 services of a catalog of 5 made %d searches and %d reads, want 1 search", s, g)
	}
	if len(read) != len(ids) || read[0].ID != ids[0] || read[0].Name != "Backup 0" || read[0].UnitPrice != 0.5 || read[0].ReadAt.Before(before) {
		t.Errorf("PreloadServices returned %+v, want the 5 services read now", read)
	}
	srv.ResetRequests()
	set := func(b *kaseyabms.Backend, service string, qty int64) *psa.ContractLine {
		t.Helper()
		l, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: itoa(contract), ServiceID: service, Quantity: qty,
			EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, id := range ids {
		set(b, id, 2)
	}
	if s, g := count(); s != 0 || g != 0 {
		t.Errorf("writes of preloaded services made %d searches and %d service reads, want none", s, g)
	}
	if again, err := b.PreloadServices(ctx, ids, nil); err != nil || len(again) != 0 {
		t.Errorf("PreloadServices of cached services = %+v, %v; want nothing read", again, err)
	}

	// Another process, with the services kept by the first: fresh ones
	// are taken as kept, even at a price changed since; stale ones are
	// read again, at the new price.
	price := 9.25
	cur, _, err := b.Client().Services.Get(ctx, atoi(ids[1]))
	if err != nil {
		t.Fatal(err)
	}
	cur.UnitPrice = price
	if _, _, err := b.Client().Services.Update(ctx, cur.ID, &kaseyabms.UpdateServiceRequest{Name: cur.Name, UnitPrice: &price, UnitCost: &cur.UnitCost, IsActive: true}); err != nil {
		t.Fatal(err)
	}
	fresh, stale := read, slices.Clone(read)
	for i := range stale {
		stale[i].ReadAt = time.Now().Add(-10*time.Minute - time.Second)
	}
	b2, _ := newSimBackendOn(t, srv)
	srv.ResetRequests()
	if got, err := b2.PreloadServices(ctx, ids, fresh); err != nil || len(got) != 0 {
		t.Errorf("PreloadServices with fresh kept services = %+v, %v; want nothing read", got, err)
	}
	if s, g := count(); s != 0 || g != 0 {
		t.Errorf("PreloadServices with fresh kept services made %d searches and %d reads, want none", s, g)
	}
	if l := set(b2, ids[1], 3); l.UnitPrice != 1.5 {
		t.Errorf("a write within the time to live of the kept service posted at %v, want the kept price 1.5", l.UnitPrice)
	}
	b3, _ := newSimBackendOn(t, srv)
	got, err := b3.PreloadServices(ctx, ids, stale)
	if err != nil || len(got) != len(ids) {
		t.Fatalf("PreloadServices with stale kept services = %+v, %v; want the 5 read again", got, err)
	}
	if l := set(b3, ids[1], 4); l.UnitPrice != price {
		t.Errorf("a write after the time to live of the kept service posted at %v, want the new price %v", l.UnitPrice, price)
	}
	if lines := k.ServiceLines(contract); lines[len(lines)-1].UnitPrice != price {
		t.Errorf("BMS holds the last line at %v, want %v", lines[len(lines)-1].UnitPrice, price)
	}

	// In a catalog of more pages than services missing, they are read
	// one by one after the first page.
	for i := range 2 * kaseyabms.DefaultPageSize {
		k.AddService("Filler "+itoa(i), 1)
	}
	late := []string{itoa(k.AddService("Late 1", 1)), itoa(k.AddService("Late 2", 1))}
	b4, _ := newSimBackendOn(t, srv)
	srv.ResetRequests()
	if got, err := b4.PreloadServices(ctx, late, nil); err != nil || len(got) != 2 {
		t.Fatalf("PreloadServices of 2 services on the last page = %+v, %v", got, err)
	}
	if s, g := count(); s != 1 || g != 2 {
		t.Errorf("PreloadServices of 2 services on page 3 of 3 made %d searches and %d reads, want 1 and 2", s, g)
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
	// A client that has yet to learn where the account lookup's pages
	// start lists a tenant of one page for what reading one contract by id
	// costs: both ask for page 0 of the account lookup once.
	fresh, freshSrv := newSimBackend(t)
	a := freshSrv.KaseyaBMS().AddAccount("Initech")
	freshSrv.KaseyaBMS().AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: "Initech Managed Services"})
	small := fresh.ContractReadCost(1)
	if _, ok, err := fresh.ListContracts(ctx, small); err != nil || !ok {
		t.Errorf("ListContracts(ContractReadCost(1) = %d) of a tenant of one page = %v, %v; want the list", small, ok, err)
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

// TestBackend_GetServicesFew checks that a few services (a provider's
// refresh of a small configuration, fewer than the contracts' bulkMin)
// are read as a pass reads them: one search page from a catalog that fits
// in one, whatever the number of ids, and from a larger catalog at most
// one request more than reading each by itself. Reading each by itself
// cost a request per service on every plan and apply, where README
// promises a refresh plan of two or three requests.
func TestBackend_GetServicesFew(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	var ids []string
	for i := range 250 {
		ids = append(ids, itoa(k.AddService("Backup "+itoa(i), 5)))
	}
	count := func() (searches, gets int) {
		for _, r := range srv.Requests() {
			switch {
			case strings.HasSuffix(r.Path, "/services/search"):
				searches++
			case r.Method == http.MethodGet && strings.Contains(r.Path, "/admin/finance/services/"):
				gets++
			}
		}
		return searches, gets
	}
	for _, tc := range []struct {
		name           string
		ids            []string
		searches, gets int
	}{
		// Every id on the first page: that page alone.
		{"eight on the first page", ids[:8], 1, 0},
		// Ids on the last page, two pages after the first: the first page,
		// then each alone once the pages left are not fewer than they.
		{"two on the last page", []string{ids[10], ids[210], ids[240]}, 1, 2},
		// More ids than pages left: the pages.
		{"twelve on the last pages", append(slices.Clone(ids[:2]), ids[200:210]...), 3, 0},
		// An id no service has is looked for, and left out.
		{"one that does not exist", []string{ids[1], ids[2], "999999"}, 1, 1},
	} {
		srv.ResetRequests()
		got, err := b.GetServices(ctx, tc.ids)
		if err != nil {
			t.Fatalf("%s: GetServices = %v", tc.name, err)
		}
		want := 0
		for _, id := range tc.ids {
			if id != "999999" {
				want++
				one, err := b.GetService(ctx, id)
				if err != nil || !reflect.DeepEqual(got[id], one) {
					t.Errorf("%s: GetServices[%s] = %+v, GetService = %+v, %v", tc.name, id, got[id], one, err)
				}
			}
		}
		if len(got) != want {
			t.Errorf("%s: GetServices = %d services, want %d", tc.name, len(got), want)
		}
		srv.ResetRequests()
		if _, err := b.GetServices(ctx, tc.ids); err != nil {
			t.Fatal(err)
		}
		if s, g := count(); s != tc.searches || g != tc.gets {
			t.Errorf("%s: GetServices of %d ids made %d search pages and %d single reads, want %d and %d", tc.name, len(tc.ids), s, g, tc.searches, tc.gets)
		}
	}
}

// PreloadServices takes the services a GetServices of the same backend
// read within the time to live (the engine's daily read of the mapped
// services comes before the writes): no request, and it returns them
// once, for the caller to keep.
func TestBackend_PreloadServicesTakesTheServicesGetServicesRead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	var ids []string
	for i := range 3 {
		ids = append(ids, itoa(k.AddService("Backup "+itoa(i), float64(i)+0.5)))
	}
	if _, err := b.GetServices(ctx, ids); err != nil {
		t.Fatal(err)
	}
	srv.ResetRequests()
	got, err := b.PreloadServices(ctx, ids, nil)
	if err != nil || len(got) != len(ids) || got[1].ID != ids[1] || got[1].UnitPrice != 1.5 {
		t.Errorf("PreloadServices after GetServices = %+v, %v; want the 3 services it read", got, err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("PreloadServices after GetServices made %d requests, want none", n)
	}
	if again, err := b.PreloadServices(ctx, ids, nil); err != nil || len(again) != 0 {
		t.Errorf("PreloadServices again = %+v, %v; want nothing (handed already)", again, err)
	}
}
