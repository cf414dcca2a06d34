package usage

import (
	"strings"
	"testing"
)

// TestEngine_Sync_zeroQuantityUnmapped: a customer or product without a
// mapping whose rows are all quantity 0 (a Sophos trial tenant) bills
// nothing: it is listed apart (ZeroCustomers, ZeroProducts), not counted in
// psa_sync_unmapped or psa_sync_unmapped_new_total, and not named in a
// decrease's reason; once it has usage it is unmapped, and new. A product
// with usage for one customer and 0 for another is unmapped.
func TestEngine_Sync_zeroQuantityUnmapped(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 42, etPeriodDay)
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP,40",
		"cust-a,Acme,TRIAL-X,0", // mapped customer, unmapped product, 0
		"cust-trial,Trial Co,CIXA-MSP,0",
		"cust-trial,Trial Co,MDR,0",
		"cust-new,New Co,CIXA-MSP,3",
		"cust-new,New Co,NEW-P,0",
		"cust-b,Globex,NEW-P,2",
	)
	gauge := func(kind string) float64 { return h.metric(h.m.Unmapped.WithLabelValues(kind)) }
	newTotal := func(kind string) float64 { return h.metric(h.m.UnmappedNew[kind]) }

	res := h.sync(PassOptions{})
	u := res.Plan.Unmapped
	if len(u.Customers) != 1 || u.Customers[0].CustomerID != "cust-new" {
		t.Errorf("unmapped customers = %+v, want cust-new only", u.Customers)
	}
	if len(u.ZeroCustomers) != 1 || u.ZeroCustomers[0].CustomerID != "cust-trial" || u.ZeroCustomers[0].CustomerName != "Trial Co" {
		t.Errorf("zero customers = %+v, want cust-trial", u.ZeroCustomers)
	}
	if len(u.Products) != 1 || u.Products[0].Product != "NEW-P" || u.Products[0].Quantity != 2 || u.Products[0].Customers != 2 {
		t.Errorf("unmapped products = %+v, want NEW-P (2, of 2 customers)", u.Products)
	}
	if len(u.ZeroProducts) != 1 || u.ZeroProducts[0].Product != "TRIAL-X" {
		t.Errorf("zero products = %+v, want TRIAL-X", u.ZeroProducts)
	}
	if c, p := gauge("customer"), gauge("product"); c != 1 || p != 1 {
		t.Errorf("psa_sync_unmapped = customer %v, product %v; want 1, 1", c, p)
	}
	if c, p := newTotal("customer"), newTotal("product"); c != 1 || p != 1 {
		t.Errorf("psa_sync_unmapped_new_total = customer %v, product %v; want 1, 1", c, p)
	}
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionUpdate || strings.Contains(c.Reason, "TRIAL-X") {
		t.Errorf("change of cust-a = %+v, want an update with no word of TRIAL-X's 0", c)
	}

	// The trial tenant starts using it: unmapped, and new.
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP,40",
		"cust-trial,Trial Co,CIXA-MSP,5",
		"cust-new,New Co,CIXA-MSP,3",
		"cust-b,Globex,NEW-P,2",
	)
	res = h.sync(PassOptions{})
	if u := res.Plan.Unmapped; len(u.Customers) != 2 || len(u.ZeroCustomers) != 0 || len(u.ZeroProducts) != 0 {
		t.Errorf("unmapped = %+v, want cust-new and cust-trial, nothing at 0", u)
	}
	if c := gauge("customer"); c != 2 {
		t.Errorf("psa_sync_unmapped{customer} = %v, want 2", c)
	}
	if c := newTotal("customer"); c != 2 {
		t.Errorf("psa_sync_unmapped_new_total{customer} = %v, want 2", c)
	}
}
