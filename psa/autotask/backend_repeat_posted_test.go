package autotask_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A service on a contract twice (a repeat service: two contract service
// lines) is not one line of either line's units: the contract fails with
// an ambiguity naming both lines, the other contracts' lines are read, and
// ReadServiceLines fails it only when the caller manages the service.
func TestBackend_ReadLines_repeatService(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svc := at.AddService("Backup", 4)
	other := at.AddService("Endpoint", 2)
	twice := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Twice"})
	once := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Once"})
	at.SetUnits(twice, svc, 10, date(1, 1))
	repeat := at.AddRepeatContractService(twice, svc, 3)
	at.SetLineUnits(repeat, 5, date(1, 1))
	at.SetUnits(twice, other, 7, date(1, 1))
	at.SetUnits(once, svc, 4, date(1, 1))
	first := at.UnitRows(twice, svc)[0].ContractServiceID

	lines, err := b.ReadLines(ctx, []string{id(twice), id(once)}, date(11, 1))
	var ce *autotask.ContractErrors
	if !errors.As(err, &ce) || !errors.Is(err, psa.ErrConflict) {
		t.Fatalf("ReadLines error = %v, want *ContractErrors matching psa.ErrConflict", err)
	}
	var amb *psa.AmbiguousError
	if cerr := ce.Errors[id(twice)]; len(ce.Errors) != 1 || !errors.As(cerr, &amb) ||
		!strings.Contains(cerr.Error(), id(first)) || !strings.Contains(cerr.Error(), id(repeat)) {
		t.Errorf("contract errors = %v, want contract %d ambiguous, naming lines %d and %d", ce.Errors, twice, first, repeat)
	}
	if len(lines) != 1 || lines[0].ContractID != id(once) || lines[0].Quantity != 4 {
		t.Errorf("lines = %+v, want only contract %d's line of 4", lines, once)
	}

	// A caller that does not manage the repeated service reads the rest,
	// and the repeated service as one inexact line of both lines' units:
	// it bills (a service psa-syncd no longer writes is not taken for a
	// line at 0).
	lines, err = b.ReadServiceLines(ctx, []string{id(twice)}, []string{id(other)}, date(11, 1))
	if err != nil {
		t.Fatalf("ReadServiceLines(other) = %v", err)
	}
	want := []psa.ContractLine{
		{ContractID: id(twice), ServiceID: id(svc), Quantity: 15, Inexact: true},
		{ContractID: id(twice), ServiceID: id(other), Quantity: 7},
	}
	if len(lines) != 2 || !reflect.DeepEqual(lines[0], want[0]) || lines[1].ServiceID != id(other) || lines[1].Quantity != 7 || lines[1].Inexact {
		t.Errorf("lines = %+v, want %+v", lines, want)
	}
	if _, err := b.ReadServiceLines(ctx, []string{id(twice)}, []string{id(svc)}, date(11, 1)); !errors.As(err, &ce) {
		t.Errorf("ReadServiceLines(repeated service) = %v, want *ContractErrors", err)
	}
}

// An adjustment names the line it was computed from (contractServiceID), so
// Autotask never applies the delta to another line of the service: here
// the read line is the repeat, which an adjustment by service alone does
// not reach (the simulator, like Autotask, would pick a line itself).
func TestBackend_SetQuantity_namesTheLine(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svc := at.AddService("Backup", 4)
	contract := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	at.SetUnits(contract, svc, 10, date(1, 1))
	first := at.UnitRows(contract, svc)[0].ContractServiceID
	repeat := at.AddRepeatContractService(contract, svc, -1)
	at.SetLineUnits(repeat, 5, date(1, 1))

	cur := psa.ContractLine{ContractID: id(contract), ServiceID: id(svc), LineID: id(repeat), Quantity: 5}
	if _, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(contract), ServiceID: id(svc), Quantity: 8, Current: &cur, EffectiveDate: date(11, 1)}); err != nil {
		t.Fatal(err)
	}
	if u, _ := at.LineUnits(repeat, date(11, 1)); u != 8 {
		t.Errorf("line %d holds %d units, want 8", repeat, u)
	}
	if u, _ := at.LineUnits(first, date(11, 1)); u != 10 {
		t.Errorf("line %d holds %d units, want 10 (untouched)", first, u)
	}
	if adj := at.Adjustments(); len(adj) != 1 || adj[0].ContractServiceID != repeat {
		t.Errorf("adjustments = %+v, want one of line %d", adj, repeat)
	}
}

// ReadLines asks for approveAndPostDate and reports a line whose period at
// the read date is approved and posted (invoiced); SetQuantity refuses to
// adjust such a line, and the simulator flags an adjustment that lands in
// a posted period.
func TestBackend_postedPeriod(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svc := at.AddService("Backup", 4)
	contract := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	at.SetUnits(contract, svc, 10, date(1, 1))
	at.PostPeriods(contract, date(10, 31))

	oct, err := b.ReadLines(ctx, []string{id(contract)}, date(10, 1))
	if err != nil || len(oct) != 1 {
		t.Fatalf("ReadLines(October) = %+v, %v", oct, err)
	}
	if !oct[0].Posted || !oct[0].PeriodStart.Equal(date(10, 1)) {
		t.Errorf("October line = %+v, want Posted (the period is invoiced)", oct[0])
	}
	nov, err := b.ReadLines(ctx, []string{id(contract)}, date(11, 1))
	if err != nil || len(nov) != 1 || nov[0].Posted {
		t.Fatalf("ReadLines(November) = %+v, %v; want a line not posted", nov, err)
	}

	_, err = b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(contract), ServiceID: id(svc), Quantity: 12, Current: &oct[0], EffectiveDate: date(10, 1)})
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), "posted") {
		t.Errorf("SetQuantity into the posted October = %v, want a validation error saying it is posted", err)
	}
	if n := len(at.Adjustments()); n != 0 {
		t.Errorf("%d adjustments sent, want none", n)
	}

	// The simulator accepts an adjustment into a posted period (the
	// references do not say Autotask refuses one) and flags it.
	unposted := oct[0]
	unposted.Posted = false
	if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(contract), ServiceID: id(svc), Quantity: 12, Current: &unposted, EffectiveDate: date(10, 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(contract), ServiceID: id(svc), Quantity: 11, Current: &nov[0], EffectiveDate: date(11, 1)}); err != nil {
		t.Fatal(err)
	}
	if adj := at.Adjustments(); len(adj) != 2 || !adj[0].IntoPostedPeriod || adj[1].IntoPostedPeriod {
		t.Errorf("adjustments = %+v, want the October one flagged IntoPostedPeriod, the November one not", adj)
	}
}
