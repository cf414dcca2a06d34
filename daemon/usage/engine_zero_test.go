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

// TestEngine_Sync_zeroQuantityUnassigned: usage of no customer whose rows
// of a product are all 0 (a file that lists the partner's unassigned
// licences at 0) bills nothing: it is listed apart (ZeroUnassigned), not
// counted in psa_sync_unmapped{kind="unassigned"} or its new total; once
// above 0 it is unassigned usage, and new. A product with rows of 0 and
// of 2 is unassigned.
func TestEngine_Sync_zeroQuantityUnassigned(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP,40",
		",,FW-MONTHLY,0",
		",,MDR,0",
		",,MDR,2",
	)
	gauge := func() float64 { return h.metric(h.m.Unmapped.WithLabelValues("unassigned")) }
	newTotal := func() float64 { return h.metric(h.m.UnmappedNew["unassigned"]) }

	u := h.sync(PassOptions{}).Plan.Unmapped
	if len(u.Unassigned) != 1 || u.Unassigned[0].Product != "MDR" || u.Unassigned[0].Quantity != 2 {
		t.Errorf("unassigned = %+v, want MDR 2 only", u.Unassigned)
	}
	if len(u.ZeroUnassigned) != 1 || u.ZeroUnassigned[0].Product != "FW-MONTHLY" {
		t.Errorf("zero unassigned = %+v, want FW-MONTHLY", u.ZeroUnassigned)
	}
	if g, n := gauge(), newTotal(); g != 1 || n != 1 {
		t.Errorf("psa_sync_unmapped{unassigned} = %v, new_total %v; want 1, 1", g, n)
	}

	// The firewall licence is used, and assigned to no customer.
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP,40",
		",,FW-MONTHLY,1",
		",,MDR,2",
	)
	u = h.sync(PassOptions{}).Plan.Unmapped
	if len(u.Unassigned) != 2 || len(u.ZeroUnassigned) != 0 {
		t.Errorf("unassigned = %+v, zero %+v; want FW-MONTHLY and MDR, nothing at 0", u.Unassigned, u.ZeroUnassigned)
	}
	if g, n := gauge(), newTotal(); g != 2 || n != 2 {
		t.Errorf("psa_sync_unmapped{unassigned} = %v, new_total %v; want 2, 2", g, n)
	}
}
