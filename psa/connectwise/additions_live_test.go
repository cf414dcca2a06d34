package connectwise_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// additionModes are the two ways ConnectWise may serve an addition whose
// cancelledDate has passed (connectwise-and-sophos.md §6 leaves it open):
// Cancelled (the simulator's default) or still Active.
var additionModes = []struct {
	name string
	opts []psatest.Option
}{
	{"status follows cancelledDate", nil},
	{"status stays Active", []psatest.Option{psatest.WithConnectWiseAdditionsStayActive()}},
}

// TestBackend_SetQuantity_additionEndingBeforeEffectiveDate: an addition
// cancelled on or before the effective date is not the product's line. The
// read leaves it out, and the write must agree: it adds the product from
// the effective date and leaves the ending addition, which bills its own
// last period, untouched. Before, the write PATCHed the ending addition
// (under-billing its period, billing nothing from the effective date) and
// reported success, pass after pass.
//
// Both effective-date policies, under both ways ConnectWise may serve the
// ending addition: next_period_start (the clock is 15 November, the
// addition ends 30 November, still Active either way, the pass writes for
// 1 December) and period_start (the addition ended 31 October, the pass
// writes for 1 November; still Active only if ConnectWise does not derive
// the status).
func TestBackend_SetQuantity_additionEndingBeforeEffectiveDate(t *testing.T) {
	t.Parallel()
	policies := []struct {
		name           string
		cancelled, eff time.Time
	}{
		{"next_period_start", date(11, 30), date(12, 1)},
		{"period_start", date(10, 31), date(11, 1)},
		{"cancelled on the effective date", date(11, 1), date(11, 1)},
		// A cancelledDate with a time of day is on its calendar date, as
		// an effectiveDate is (startsAfter): compared as an instant, it
		// fell after midnight of the effective date and the addition
		// looked live on it.
		{"cancelled on the effective date at a time of day", date(11, 1).Add(17 * time.Hour), date(11, 1)},
	}
	for _, mode := range additionModes {
		for _, pol := range policies {
			t.Run(mode.name+"/"+pol.name, func(t *testing.T) {
				t.Parallel()
				b, s, _ := newBackend(t, mode.opts...)
				cw := s.ConnectWise()
				ctx := t.Context()
				prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Intercept X", Price: 4})
				_, ag := seed(cw, "Acme")
				old := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 100, CancelledDate: pol.cancelled})

				lines, err := b.ReadLines(ctx, []string{id(ag)}, pol.eff)
				if err != nil || len(lines) != 0 {
					t.Fatalf("ReadLines as of %s = %+v, %v; want no line", pol.eff.Format(time.DateOnly), lines, err)
				}
				got, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 40, EffectiveDate: pol.eff})
				if err != nil {
					t.Fatalf("SetQuantity: %v", err)
				}
				if got.LineID == id(old) || got.Quantity != 40 || !got.PeriodStart.Equal(pol.eff) {
					t.Errorf("SetQuantity returned %+v, want a new addition with quantity 40 from %s", got, pol.eff.Format(time.DateOnly))
				}
				if n := countRequests(s, http.MethodPatch, ""); n != 0 {
					t.Errorf("PATCH requests = %d, want 0 (the ending addition is not written)", n)
				}
				a, _ := cw.Addition(old)
				if a.Quantity != 100 || !a.CancelledDate.Equal(pol.cancelled) {
					t.Errorf("ending addition = quantity %v, cancelled %s; want 100, %s (untouched)", a.Quantity, a.CancelledDate.Format(time.DateOnly), pol.cancelled.Format(time.DateOnly))
				}

				// The next pass reads the new addition and writes nothing.
				lines, err = b.ReadLines(ctx, []string{id(ag)}, pol.eff)
				if err != nil || len(lines) != 1 || lines[0].LineID != got.LineID || lines[0].Quantity != 40 {
					t.Fatalf("ReadLines after the write = %+v, %v; want the new addition with 40", lines, err)
				}
				s.ResetRequests()
				if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 40, Current: &lines[0], EffectiveDate: pol.eff}); err != nil {
					t.Fatalf("SetQuantity again: %v", err)
				}
				if n := countRequests(s, http.MethodPatch, "") + countRequests(s, http.MethodPost, ""); n != 0 {
					t.Errorf("writes on the next pass = %d, want 0", n)
				}
			})
		}
	}
}

// TestBackend_SetQuantity_endingAdditionSameQuantity: the ending addition
// already holds the quantity wanted. Taking it for the line would write
// nothing and report the product in sync while nothing bills from the
// effective date.
func TestBackend_SetQuantity_endingAdditionSameQuantity(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t, psatest.WithConnectWiseAdditionsStayActive())
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Intercept X", Price: 4})
	_, ag := seed(cw, "Acme")
	old := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 40, CancelledDate: date(10, 31)})
	got, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 40, EffectiveDate: date(11, 1)})
	if err != nil || got.LineID == id(old) {
		t.Fatalf("SetQuantity = %+v, %v; want a new addition", got, err)
	}
	if n := countRequests(s, http.MethodPost, "/additions"); n != 1 {
		t.Errorf("POSTs = %d, want 1", n)
	}
	if q, ok := cw.Quantity(ag, prod); !ok || q != 40 {
		t.Errorf("quantity billing now = %v, %v; want 40 on one addition", q, ok)
	}
}

// TestBackend_SetQuantity_currentEndsBeforeEffectiveDate: a Current read at
// another date than the one written names an addition that ends before the
// effective date. It is not PATCHed: the additions are read again and the
// product is added from the effective date.
func TestBackend_SetQuantity_currentEndsBeforeEffectiveDate(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t, psatest.WithConnectWiseAdditionsStayActive())
	cw := s.ConnectWise()
	ctx := t.Context()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Intercept X", Price: 4})
	_, ag := seed(cw, "Acme")
	old := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 100, CancelledDate: date(11, 30)})
	lines, err := b.ReadLines(ctx, []string{id(ag)}, date(11, 1))
	if err != nil || len(lines) != 1 || lines[0].LineID != id(old) {
		t.Fatalf("ReadLines as of 1 November = %+v, %v; want the ending addition", lines, err)
	}
	s.ResetRequests()
	got, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 40, Current: &lines[0], EffectiveDate: date(12, 1)})
	if err != nil || got.LineID == id(old) || got.Quantity != 40 {
		t.Fatalf("SetQuantity = %+v, %v; want a new addition with 40", got, err)
	}
	if n := countRequests(s, http.MethodPatch, ""); n != 0 {
		t.Errorf("PATCH requests = %d, want 0", n)
	}
	if a, _ := cw.Addition(old); a.Quantity != 100 {
		t.Errorf("ending addition quantity = %v, want 100", a.Quantity)
	}
}

// TestBackend_SetQuantity_patchAnsweredWithEndingAddition: the addition was
// live when read, but someone set its cancelled date before the effective
// date since. The PATCH's answer shows it: a conflict, not a success, so
// that the next pass reads again and adds the product.
func TestBackend_SetQuantity_patchAnsweredWithEndingAddition(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t, psatest.WithConnectWiseAdditionsStayActive())
	cw := s.ConnectWise()
	ctx := t.Context()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Intercept X", Price: 4})
	_, ag := seed(cw, "Acme")
	add := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 100})
	lines, err := b.ReadLines(ctx, []string{id(ag)}, date(12, 1))
	if err != nil || len(lines) != 1 {
		t.Fatalf("ReadLines = %+v, %v", lines, err)
	}
	cw.CancelAddition(add, date(11, 30))
	_, err = b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 40, Current: &lines[0], EffectiveDate: date(12, 1)})
	if !errors.Is(err, psa.ErrConflict) || !strings.Contains(err.Error(), "ends on 2026-11-30, before the effective date 2026-12-01") {
		t.Fatalf("SetQuantity error = %v, want a conflict naming the cancelled and effective dates", err)
	}
	// The next pass: no line, and the product is added from 1 December.
	lines, err = b.ReadLines(ctx, []string{id(ag)}, date(12, 1))
	if err != nil || len(lines) != 0 {
		t.Fatalf("ReadLines = %+v, %v; want no line", lines, err)
	}
	got, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 40, EffectiveDate: date(12, 1)})
	if err != nil || got.LineID == id(add) {
		t.Fatalf("SetQuantity on the next pass = %+v, %v; want a new addition", got, err)
	}
}

// TestBackend_SetQuantity_lostCreateBesideEndingAddition: the answer to
// the create is lost and the re-read finds the new addition beside the
// ending one, still Active. The ending one is not counted: the write is
// known to be done, not an unknown outcome over two additions.
func TestBackend_SetQuantity_lostCreateBesideEndingAddition(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t, psatest.WithConnectWiseAdditionsStayActive())
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Intercept X", Price: 4})
	_, ag := seed(cw, "Acme")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 100, CancelledDate: date(11, 30)})
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/v4_6_release/apis/3.0/finance/agreements/" + id(ag) + "/additions", DropAfterHandling: true, Times: 1})
	got, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 40, EffectiveDate: date(12, 1)})
	if err != nil || got.Quantity != 40 {
		t.Fatalf("SetQuantity = %+v, %v; want the created addition with 40", got, err)
	}
	if n := countRequests(s, http.MethodPost, "/additions"); n != 1 {
		t.Errorf("POSTs = %d, want 1 (never re-sent)", n)
	}
	if n := len(cw.Additions(ag)); n != 2 {
		t.Errorf("agreement has %d additions, want 2 (the ending one and the new one)", n)
	}
}
