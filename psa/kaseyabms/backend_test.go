package kaseyabms_test

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// newSimBackend starts a BMS simulator and a backend pointed at it.
func newSimBackend(t *testing.T) (*kaseyabms.Backend, *psatest.Server) {
	t.Helper()
	return newSimBackendOn(t, psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS)))
}

// newSimBackendOn returns a Backend of its own (as of another process) on
// the simulator srv.
func newSimBackendOn(t *testing.T, srv *psatest.Server) (*kaseyabms.Backend, *psatest.Server) {
	t.Helper()
	c, err := kaseyabms.NewClient(
		kaseyabms.WithBaseURL(srv.KaseyaBMSBaseURL()),
		kaseyabms.WithCredentials(psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
		kaseyabms.WithBackoff(time.Millisecond, 2*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	return kaseyabms.NewBackend(c), srv
}

func TestBackend_Ping(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	host := strings.TrimPrefix(strings.TrimSuffix(srv.KaseyaBMSBaseURL(), "/"), "http://")
	if got, want := b.Instance(), "tenant:"+psatest.DefaultKaseyaBMSTenant+"@"+host; got != want {
		t.Errorf("Instance = %q, want %q", got, want)
	}
	// A BMS API host serves many tenants, whose ids overlap: another
	// tenant on the same host is another instance, and an export or state
	// database that recorded the host alone (before tenants were recorded)
	// is still this one's. A tenant name may hold an "@".
	c, err := kaseyabms.NewClient(kaseyabms.WithBaseURL(srv.KaseyaBMSBaseURL()), kaseyabms.WithCredentials("u", "p", "Other MSP @ Home"))
	if err != nil {
		t.Fatal(err)
	}
	other := kaseyabms.NewBackend(c)
	if export.SameInstance(b.Instance(), other.Instance()) {
		t.Errorf("two tenants on one host are the same instance: %q, %q", b.Instance(), other.Instance())
	}
	if !export.SameInstance(host, b.Instance()) || !export.SameInstance(host, other.Instance()) {
		t.Errorf("the host %q recorded before tenants were is not the instance %q or %q", host, b.Instance(), other.Instance())
	}
	if b.System() != psa.SystemKaseyaBMS {
		t.Errorf("System = %q", b.System())
	}
	if _, err := b.Budget(t.Context()); !errors.Is(err, psa.ErrNotSupported) {
		t.Errorf("Budget error = %v, want ErrNotSupported", err)
	}
}

func TestBackend_PingWrongPassword(t *testing.T) {
	t.Parallel()
	srv := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS))
	c, err := kaseyabms.NewClient(kaseyabms.WithBaseURL(srv.KaseyaBMSBaseURL()),
		kaseyabms.WithCredentials(psatest.DefaultKaseyaBMSUsername, "wrong-password", psatest.DefaultKaseyaBMSTenant))
	if err != nil {
		t.Fatal(err)
	}
	err = kaseyabms.NewBackend(c).Ping(t.Context())
	if !errors.Is(err, psa.ErrUnauthorized) {
		t.Fatalf("Ping error = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error %q contains the password", err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("%d requests, want 1 (refused credentials are not retried)", n)
	}
}

func TestBackend_ServiceCRUD(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	ctx := t.Context()
	created, err := b.CreateService(ctx, &psa.Service{
		Name: "Sophos Intercept X Advanced", Description: "Endpoint", UnitPrice: 4.5, UnitCost: 2.1, Active: true,
		KaseyaBMS: &psa.KaseyaBMSServiceFields{Category: "managed services", Subcategory: "Security", Taxable: true},
	})
	if err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	want := psa.Service{ID: created.ID, Name: "Sophos Intercept X Advanced", Description: "Endpoint", UnitPrice: 4.5, UnitCost: 2.1, Active: true,
		KaseyaBMS: &psa.KaseyaBMSServiceFields{Category: "Managed Services", Subcategory: "Security", Taxable: true}}
	if created.ID == "" || created.Name != want.Name || *created.KaseyaBMS != *want.KaseyaBMS || created.UnitPrice != 4.5 {
		t.Fatalf("CreateService = %+v (%+v), want %+v", created, created.KaseyaBMS, want)
	}
	got, err := b.GetService(ctx, created.ID)
	if err != nil || got.Name != want.Name || !got.Active {
		t.Fatalf("GetService = %+v, %v", got, err)
	}
	got.UnitPrice, got.Description = 5, "Endpoint protection"
	got.KaseyaBMS = nil // keeps the stored BMS fields
	upd, err := b.UpdateService(ctx, got)
	if err != nil {
		t.Fatalf("UpdateService: %v", err)
	}
	if upd.UnitPrice != 5 || upd.Description != "Endpoint protection" || upd.KaseyaBMS.Category != "Managed Services" || !upd.KaseyaBMS.Taxable {
		t.Errorf("UpdateService = %+v %+v", upd, upd.KaseyaBMS)
	}
	found, err := b.FindServices(ctx, "SOPHOS intercept x advanced")
	if err != nil || len(found) != 1 || found[0].ID != created.ID {
		t.Errorf("FindServices = %+v, %v", found, err)
	}
	if found, _ := b.FindServices(ctx, "Sophos"); len(found) != 0 {
		t.Errorf("FindServices(partial) = %+v, want none (exact names only)", found)
	}
	if err := b.DeactivateService(ctx, created.ID); err != nil {
		t.Fatalf("DeactivateService: %v", err)
	}
	if s := srv.KaseyaBMS().Services()[0]; s.Active {
		t.Errorf("service still active after DeactivateService")
	}
	srv.ResetRequests()
	if err := b.DeactivateService(ctx, created.ID); err != nil {
		t.Fatalf("DeactivateService again: %v", err)
	}
	for _, r := range srv.Requests() {
		if r.Method != http.MethodGet {
			t.Errorf("deactivating an inactive service sent %s %s", r.Method, r.Path)
		}
	}
	if err := b.DeleteService(ctx, created.ID); err != nil {
		t.Fatalf("DeleteService: %v", err)
	}
	if _, err := b.GetService(ctx, created.ID); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetService after delete = %v, want ErrNotFound", err)
	}
}

func TestBackend_CreateServiceUnknownCategory(t *testing.T) {
	t.Parallel()
	b, _ := newSimBackend(t)
	_, err := b.CreateService(t.Context(), &psa.Service{Name: "X", KaseyaBMS: &psa.KaseyaBMSServiceFields{Category: "Nope"}})
	var ve *psa.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `"Managed Services"`) {
		t.Fatalf("error = %v, want a validation error listing the categories", err)
	}
}

// TestBackend_CheckServiceFields: a name BMS does not know is refused
// before anything is written, naming the field; the lookups are read once
// for the check and every create after it.
func TestBackend_CheckServiceFields(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	srv.KaseyaBMS().AddServiceFull(psatest.KaseyaBMSService{Name: "Per-user service", UnitPrice: 1, UnitOfMeasureID: 2, Active: true})
	ctx := t.Context()
	for _, tt := range []struct {
		fields psa.KaseyaBMSServiceFields
		field  string
	}{
		{psa.KaseyaBMSServiceFields{Category: "Nope"}, "category"},
		{psa.KaseyaBMSServiceFields{Subcategory: "Security"}, "subcategory"},
		{psa.KaseyaBMSServiceFields{Category: "Managed Services", Subcategory: "Nope"}, "subcategory"},
		{psa.KaseyaBMSServiceFields{UnitOfMeasure: "Fortnight"}, "unit_of_measure"},
		{psa.KaseyaBMSServiceFields{Category: "managed services", Subcategory: "security", UnitOfMeasure: "user"}, ""},
	} {
		err := b.CheckServiceFields(ctx, &psa.Service{Name: "X", KaseyaBMS: &tt.fields})
		var ve *psa.ValidationError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("CheckServiceFields(%+v) = %v, want nil", tt.fields, err)
		case tt.field != "" && (!errors.As(err, &ve) || ve.Field != tt.field):
			t.Errorf("CheckServiceFields(%+v) = %v, want a validation error of field %s", tt.fields, err, tt.field)
		}
	}
	srv.ResetRequests()
	for i := range 5 {
		f := &psa.KaseyaBMSServiceFields{Category: "Managed Services", Subcategory: "Security", UnitOfMeasure: "User"}
		if _, err := b.CreateService(ctx, &psa.Service{Name: fmt.Sprintf("Service %d", i), Active: true, KaseyaBMS: f}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet || strings.HasSuffix(r.Path, "/search") {
			t.Errorf("a create after the check read %s %s again", r.Method, r.Path)
		}
	}
}

func TestBackend_CreateServiceDuplicateName(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	srv.KaseyaBMS().AddService("Backup", 1)
	_, err := b.CreateService(t.Context(), &psa.Service{Name: "Backup", Active: true})
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("error = %v, want the simulator's validation message", err)
	}
}

func TestBackend_UnitOfMeasureFromExistingService(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	srv.KaseyaBMS().AddServiceFull(psatest.KaseyaBMSService{Name: "Seat", UnitOfMeasureID: 2, Active: true})
	s, err := b.CreateService(t.Context(), &psa.Service{Name: "M365", Active: true, KaseyaBMS: &psa.KaseyaBMSServiceFields{UnitOfMeasure: "user"}})
	if err != nil || s.KaseyaBMS.UnitOfMeasure != "User" {
		t.Fatalf("CreateService = %+v, %v", s, err)
	}
	_, err = b.CreateService(t.Context(), &psa.Service{Name: "Other", KaseyaBMS: &psa.KaseyaBMSServiceFields{UnitOfMeasure: "Device"}})
	if !errors.Is(err, psa.ErrValidation) {
		t.Fatalf("unused unit of measure: error = %v, want validation", err)
	}
}

func TestBackend_CompaniesAndContracts(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	ctx := t.Context()
	k := srv.KaseyaBMS()
	acme := k.AddAccount("Acme")
	acme2 := k.AddAccount("Acme Labs")
	dup := k.AddAccount("acme") // same name, other account
	rs := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme Managed Services"})
	k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme T&M", Type: "Time & Materials"})
	old := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme 2020", Inactive: true,
		StartDate: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), EndDate: time.Date(2020, 12, 31, 0, 0, 0, 0, time.UTC)})
	dupContract := k.AddContract(psatest.KaseyaBMSContract{AccountID: dup, Name: "Acme Managed Services"})
	labs := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme2, Name: "Labs", BillingCycle: "Quarterly"})

	c, err := b.GetCompany(ctx, itoa(acme))
	if err != nil || c.Name != "Acme" || !c.Active {
		t.Fatalf("GetCompany = %+v, %v", c, err)
	}
	if _, err := b.GetCompany(ctx, "999999"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetCompany(unknown) = %v, want ErrNotFound", err)
	}
	found, err := b.FindCompanies(ctx, "ACME")
	if err != nil || len(found) != 2 {
		t.Fatalf("FindCompanies = %+v, %v; want Acme and acme", found, err)
	}

	ct, err := b.GetContract(ctx, itoa(rs))
	if err != nil {
		t.Fatalf("GetContract: %v", err)
	}
	if ct.CompanyID != itoa(acme) || !ct.Recurring || !ct.Active || ct.Name != "Acme Managed Services" || ct.Type != "Recurring Services" || ct.StartDate.IsZero() || ct.BillingCycle != "Monthly" {
		t.Errorf("GetContract = %+v", ct)
	}
	// The billing cycle, which the billing-impact report divides a price
	// per cycle by.
	if ct, err := b.GetContract(ctx, itoa(labs)); err != nil || ct.BillingCycle != "Quarterly" {
		t.Errorf("GetContract(quarterly) = %+v, %v; want billing cycle Quarterly", ct, err)
	}
	ct, err = b.GetContract(ctx, itoa(dupContract))
	if err != nil || ct.CompanyID != itoa(dup) {
		t.Errorf("GetContract(same names) = %+v, %v; want company %d", ct, err, dup)
	}
	if _, err := b.GetContract(ctx, "9999"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetContract(unknown) = %v, want ErrNotFound", err)
	}

	// An account that does not exist has no contracts, as in Autotask and
	// ConnectWise: psa_contract then says that none was found for it.
	if list, err := b.FindContracts(ctx, psa.ContractQuery{CompanyID: "999999", Name: "Acme Managed Services"}); err != nil || len(list) != 0 {
		t.Errorf("FindContracts(unknown account) = %+v, %v; want none, no error", list, err)
	}

	list, err := b.FindContracts(ctx, psa.ContractQuery{CompanyID: itoa(acme)})
	if err != nil || len(list) != 1 || list[0].ID != itoa(rs) {
		t.Fatalf("FindContracts(default) = %+v, %v", list, err)
	}
	list, err = b.FindContracts(ctx, psa.ContractQuery{CompanyID: itoa(acme), AnyType: true, IncludeInactive: true})
	if err != nil || len(list) != 3 {
		t.Fatalf("FindContracts(all) = %+v, %v", list, err)
	}
	list, _ = b.FindContracts(ctx, psa.ContractQuery{CompanyID: itoa(acme), Name: "acme 2020", IncludeInactive: true})
	if len(list) != 1 || list[0].ID != itoa(old) || list[0].Active {
		t.Errorf("FindContracts(name, inactive) = %+v", list)
	}
}

func TestBackend_ReadLinesNotSupported(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	_, err := b.ReadLines(t.Context(), []string{"1"}, time.Now())
	if !errors.Is(err, psa.ErrNotSupported) || !errors.Is(err, kaseyabms.ErrUnitsNotReadable) {
		t.Fatalf("ReadLines error = %v, want ErrUnitsNotReadable", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("ReadLines sent %d requests, want 0", n)
	}
}

func TestBackend_SetQuantity(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	ctx := t.Context()
	k := srv.KaseyaBMS()
	acme := k.AddAccount("Acme")
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme MS",
		StartDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), EndDate: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)})
	svc := k.AddService("Sophos", 4.5)
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))

	line, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: itoa(contract), ServiceID: itoa(svc), Quantity: 42, EffectiveDate: nov})
	if err != nil {
		t.Fatalf("SetQuantity: %v", err)
	}
	if line.Quantity != 42 || line.LineID == "" || line.UnitPrice != 4.5 || !line.PeriodStart.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("SetQuantity = %+v", line)
	}
	lines := k.ServiceLines(contract)
	if len(lines) != 1 || lines[0].Units != 42 || lines[0].ServiceName != "Sophos" || lines[0].UnitPrice != 4.5 ||
		!lines[0].EffectiveDate.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("ServiceLines = %+v", lines)
	}
	// A second change posts a second line; the same quantity as Current posts nothing.
	dec := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: itoa(contract), ServiceID: itoa(svc), Quantity: 40, Current: line, EffectiveDate: dec}); err != nil {
		t.Fatal(err)
	}
	srv.ResetRequests()
	same := &psa.ContractLine{ContractID: itoa(contract), ServiceID: itoa(svc), Quantity: 40}
	if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: itoa(contract), ServiceID: itoa(svc), Quantity: 40, Current: same, EffectiveDate: dec}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("unchanged quantity sent %d requests", n)
	}
	if u, ok := k.Units(contract, svc, dec); !ok || u != 40 {
		t.Errorf("Units(dec) = %d, %v; want 40", u, ok)
	}
	if u, _ := k.Units(contract, svc, nov); u != 42 {
		t.Errorf("Units(nov) = %d; want 42", u)
	}
}

func TestBackend_SetQuantityLostResponse(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: k.AddAccount("Acme"), Name: "MS"})
	svc := k.AddService("Sophos", 4.5)
	srv.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/v2/finance/contracts/recurringservices/*", DropAfterHandling: true, Times: 1})
	_, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: itoa(contract), ServiceID: itoa(svc), Quantity: 7, EffectiveDate: time.Now()})
	if !errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Fatalf("error = %v, want ErrOutcomeUnknown", err)
	}
	if n := len(k.ServiceLines(contract)); n != 1 {
		t.Errorf("%d lines, want exactly 1 (posted once, never re-sent)", n)
	}
	posts := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/services") {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("%d posts of the line, want 1", posts)
	}
}

func TestBackend_SetQuantityRefused(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: k.AddAccount("Acme"), Name: "MS", Inactive: true})
	svc := k.AddService("Sophos", 4.5)
	_, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: itoa(contract), ServiceID: itoa(svc), Quantity: 7, EffectiveDate: time.Now()})
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), "not active") {
		t.Fatalf("error = %v, want the validation message", err)
	}
	for _, bad := range []psa.SetQuantityRequest{
		{ContractID: "x", ServiceID: "1", Quantity: 1, EffectiveDate: time.Now()},
		{ContractID: "1", ServiceID: "1", Quantity: -1, EffectiveDate: time.Now()},
		{ContractID: "1", ServiceID: "1", Quantity: 1},
	} {
		if _, err := b.SetQuantity(t.Context(), bad); !errors.Is(err, psa.ErrValidation) {
			t.Errorf("SetQuantity(%+v) = %v, want validation error", bad, err)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestBackend_pascalCaseWire runs the backend against answers in the
// vendor document's PascalCase instead of the observed camelCase.
func TestBackend_pascalCaseWire(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	k.SetPascalCase(true)
	ctx := t.Context()
	acme := k.AddAccount("Acme")
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme MS"})
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	svc, err := b.CreateService(ctx, &psa.Service{Name: "Backup", UnitPrice: 2, Active: true})
	if err != nil || svc.Name != "Backup" || svc.UnitPrice != 2 {
		t.Fatalf("CreateService = %+v, %v", svc, err)
	}
	ct, err := b.GetContract(ctx, itoa(contract))
	if err != nil || ct.CompanyID != itoa(acme) || !ct.Recurring {
		t.Fatalf("GetContract = %+v, %v", ct, err)
	}
	if _, err := b.GetCompany(ctx, "999"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetCompany(unknown) = %v, want ErrNotFound", err)
	}
	line, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: itoa(contract), ServiceID: svc.ID, Quantity: 3, EffectiveDate: time.Now()})
	if err != nil || line.LineID == "" {
		t.Fatalf("SetQuantity = %+v, %v", line, err)
	}
	if !strings.Contains(srv.Requests()[len(srv.Requests())-1].Path, "/services") {
		t.Errorf("last request %+v", srv.Requests()[len(srv.Requests())-1])
	}
}

// TestBackend_SetQuantityConcurrentReadsServiceOnce: writes of one service
// to several contracts at once share one read of the service (its price and
// names for the new lines), not one read per write in flight.
func TestBackend_SetQuantityConcurrentReadsServiceOnce(t *testing.T) {
	t.Parallel()
	srv := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS), psatest.WithLatency(20*time.Millisecond))
	c, err := kaseyabms.NewClient(
		kaseyabms.WithBaseURL(srv.KaseyaBMSBaseURL()),
		kaseyabms.WithCredentials(psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
	)
	if err != nil {
		t.Fatal(err)
	}
	b := kaseyabms.NewBackend(c)
	if err := b.Ping(t.Context()); err != nil { // sign in before the writes
		t.Fatal(err)
	}
	k := srv.KaseyaBMS()
	svc := k.AddService("Sophos", 4.5)
	var contracts []int
	for i := range 6 {
		acct := k.AddAccount(fmt.Sprintf("Customer %d", i))
		contracts = append(contracts, k.AddContract(psatest.KaseyaBMSContract{AccountID: acct, Name: fmt.Sprintf("MS %d", i),
			StartDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), EndDate: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}))
	}
	srv.ResetRequests()
	var wg sync.WaitGroup
	for _, id := range contracts {
		wg.Go(func() {
			if _, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: itoa(id), ServiceID: itoa(svc), Quantity: 3,
				EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
				t.Errorf("SetQuantity(contract %d): %v", id, err)
			}
		})
	}
	wg.Wait()
	reads := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, fmt.Sprintf("/services/%d", svc)) {
			reads++
		}
	}
	if reads != 1 {
		t.Errorf("6 concurrent writes of one service read it %d times, want 1", reads)
	}
}

// TestBackend_ServiceLines: the contract lines using a service, which BMS
// refuses to delete, come from one related services search, named by
// contract and account, with their count; on a tenant whose pages count
// from 0 the page asked is past the lines, and the count still says they
// are there. A service on no line, or one that does not exist, has none.
func TestBackend_ServiceLines(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	acme := k.AddAccount("Acme")
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme Managed"})
	used, unused := k.AddService("Sophos MDR", 10), k.AddService("Backup", 5)
	k.AddLine(contract, used, 10, time.Now())
	k.AddLine(contract, used, 12, time.Now())
	ctx := t.Context()

	srv.ResetRequests()
	lines, total, err := b.ServiceLines(ctx, strconv.Itoa(used))
	if err != nil {
		t.Fatal(err)
	}
	want := psa.ServiceLine{ContractID: strconv.Itoa(contract), ContractName: "Acme Managed", CompanyName: "Acme"}
	if total != 2 || len(lines) != 2 || lines[0] != want || lines[1] != want {
		t.Errorf("ServiceLines = %+v, %d; want two lines of %+v", lines, total, want)
	}
	var requests []string
	for _, r := range srv.Requests() {
		if !strings.Contains(r.Path, "/security/") {
			requests = append(requests, r.Method+" "+r.Path)
		}
	}
	if wantReq := fmt.Sprintf("POST /v2/admin/finance/services/%d/relatedservices/search", used); len(requests) != 1 || requests[0] != wantReq {
		t.Errorf("requests = %q, want one %s", requests, wantReq)
	}

	k.SetPaging(psatest.KaseyaBMSPagesFromZero)
	if _, total, err := b.ServiceLines(ctx, strconv.Itoa(used)); err != nil || total != 2 {
		t.Errorf("ServiceLines with pages from 0 = %d lines, %v; want a count of 2", total, err)
	}
	k.SetPaging(psatest.KaseyaBMSPagesFromOne)

	for _, id := range []int{unused, 999} {
		if lines, total, err := b.ServiceLines(ctx, strconv.Itoa(id)); err != nil || total != 0 || len(lines) != 0 {
			t.Errorf("ServiceLines(%d) = %+v, %d, %v; want none", id, lines, total, err)
		}
	}
}

// TestBackend_AllServiceLines: every contract line using a service, more
// than one page of them, comes from the related services search read page
// by page (two requests for 130 lines), whether the tenant's pages count
// from 1 or from 0; a server that answers the first page whatever page is
// asked gives an *IncompleteListError, not the first page for the whole.
// A service on no line, or one that does not exist, has none.
func TestBackend_AllServiceLines(t *testing.T) {
	t.Parallel()
	for _, paging := range []psatest.KaseyaBMSPaging{psatest.KaseyaBMSPagesFromOne, psatest.KaseyaBMSPagesFromZero, psatest.KaseyaBMSPageNumberIgnored} {
		t.Run(strconv.Itoa(int(paging)), func(t *testing.T) {
			t.Parallel()
			b, srv := newSimBackend(t)
			k := srv.KaseyaBMS()
			used, unused := k.AddService("Sophos MDR", 10), k.AddService("Backup", 5)
			want := map[string]bool{}
			for i := range 130 {
				c := k.AddContract(psatest.KaseyaBMSContract{AccountID: k.AddAccount(fmt.Sprint("Customer ", i)), Name: fmt.Sprint("Managed ", i)})
				k.AddLine(c, used, 1, time.Now())
				want[strconv.Itoa(c)] = true
			}
			k.SetPaging(paging)
			ctx := t.Context()

			srv.ResetRequests()
			lines, err := b.AllServiceLines(ctx, strconv.Itoa(used))
			if paging == psatest.KaseyaBMSPageNumberIgnored {
				var incomplete *kaseyabms.IncompleteListError
				if !errors.As(err, &incomplete) || incomplete.Total != 130 {
					t.Errorf("AllServiceLines with PageNumber ignored = %d lines, %v; want an IncompleteListError of 130", len(lines), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, l := range lines {
				got[l.ContractID] = true
			}
			if len(lines) != 130 || !maps.Equal(got, want) {
				t.Errorf("AllServiceLines = %d lines on %d contracts; want one on each of the 130 contracts", len(lines), len(got))
			}
			searches := 0
			for _, r := range srv.Requests() {
				if r.Path == fmt.Sprintf("/v2/admin/finance/services/%d/relatedservices/search", used) {
					searches++
				}
			}
			// Pages from 0: page 1 is the second, so page 0 is asked too.
			if wantSearches := map[psatest.KaseyaBMSPaging]int{psatest.KaseyaBMSPagesFromOne: 2, psatest.KaseyaBMSPagesFromZero: 3}[paging]; searches != wantSearches {
				t.Errorf("%d related services searches, want %d", searches, wantSearches)
			}

			for _, id := range []int{unused, 999} {
				if lines, err := b.AllServiceLines(ctx, strconv.Itoa(id)); err != nil || len(lines) != 0 {
					t.Errorf("AllServiceLines(%d) = %+v, %v; want none", id, lines, err)
				}
			}
		})
	}
}
