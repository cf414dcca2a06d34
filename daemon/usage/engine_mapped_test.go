package usage

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngine_RecordCustomers_unmappedNowMapped: an export loaded after a
// pass (RecordCustomers) drops from psa_sync_unmapped the customers and
// products it now maps, with sync on or off, so that PsaSyncUnmappedUsage
// resolves once the mapping is applied, not at the next pass over all
// customers (a month later on a monthly schedule); a restart with that
// export restores the same. What still bills, or is still unbilled,
// stays: a product still unmapped, and the unreported customer whose
// mapping was removed (its line bills until a pass lists it as orphaned).
func TestEngine_RecordCustomers_unmappedNowMapped(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractB, h.svcIntercept, 6, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,ZTNA,7", "cust-a,Acme,XDR,2", "cust-x,Initech,CIXA-MSP,3")
	want := func(step string, customers, products, unreported float64) {
		t.Helper()
		c, p := h.metric(h.m.Unmapped.WithLabelValues("customer")), h.metric(h.m.Unmapped.WithLabelValues("product"))
		u := h.metric(h.m.CustomersUnreported.WithLabelValues(VendorUnknown))
		if c != customers || p != products || u != unreported {
			t.Errorf("%s: psa_sync_unmapped customer %v, product %v, psa_sync_customers_unreported %v; want %v, %v, %v",
				step, c, p, u, customers, products, unreported)
		}
	}
	h.sync(PassOptions{})
	want("after the pass", 1, 2, 1)

	h.engine().RecordCustomers(h.doc)
	want("the same export loaded again", 1, 2, 1)

	h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-x", CustomerName: "Initech", CompanyID: "1", ContractID: etID(h.contractA), UsageSync: true})
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "ZTNA", ServiceID: etID(h.svcMDR), ServiceName: "Sophos MDR", SyncEnabled: false})
	h.doc.DeleteCustomer("file", "cust-b")
	h.engine().RecordCustomers(h.doc)
	want("cust-x and ZTNA mapped, cust-b's mapping removed", 0, 1, 1)

	h.m = NewMetrics(prometheus.NewRegistry(), psa.SystemAutotask)
	h.m.Requests = h.rt.requests.Load
	if err := h.engine().RestoreMetrics(h.doc); err != nil {
		t.Fatal(err)
	}
	want("restarted with that export", 0, 1, 1)
}

// TestEngine_RecordCustomers_contractsEndingNowRenewed: an export loaded
// after a pass (RecordCustomers) drops from psa_sync_contracts_ending the
// contracts it no longer maps as the pass counted them: a renewal named in
// next_contract_id, a customer mapping removed. PsaSyncContractEndingSoon
// resolves once the renewal is applied, not at the next pass over all
// customers; a restart with that export restores the same.
func TestEngine_RecordCustomers_contractsEndingNowRenewed(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 15, 10, 0, 0, 0, time.UTC)
	h := newSysHarness(t, psa.SystemAutotask, psatest.WithClock(func() time.Time { return now }))
	a, _ := h.doc.Customer("file", "cust-a")
	b, _ := h.doc.Customer("file", "cust-b")
	a.ContractID = h.addContract(a.CompanyID, "Acme 2026", day(2026, 1, 1), day(2026, 12, 31))
	renewal := h.addContract(a.CompanyID, "Acme 2027", day(2027, 1, 1), day(2027, 12, 31))
	h.doc.PutCustomer(a)
	b.ContractID = h.addContract(b.CompanyID, "Globex", day(2026, 1, 1), day(2027, 1, 20))
	h.doc.PutCustomer(b)
	h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,5")
	engine := func() *Engine {
		src, err := file.New(file.Config{Path: h.usage})
		if err != nil {
			t.Fatal(err)
		}
		return NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
			Location: time.UTC, Now: func() time.Time { return now }, Failing: &h.failing, Terms: &h.terms})
	}
	want := func(step string, thisMonth, nextMonth float64) {
		t.Helper()
		tm := testutil.ToFloat64(h.m.ContractsEnding.WithLabelValues(EndingThisMonth))
		nm := testutil.ToFloat64(h.m.ContractsEnding.WithLabelValues(EndingNextMonth))
		if tm != thisMonth || nm != nextMonth {
			t.Errorf("%s: psa_sync_contracts_ending this_month %v, next_month %v; want %v, %v", step, tm, nm, thisMonth, nextMonth)
		}
	}
	if _, err := engine().Sync(t.Context(), h.doc, PassOptions{}); err != nil {
		t.Fatal(err)
	}
	want("after the pass", 1, 1)

	engine().RecordCustomers(h.doc)
	want("the same export loaded again", 1, 1)

	a.NextContractID = renewal
	h.doc.PutCustomer(a)
	engine().RecordCustomers(h.doc)
	want("cust-a's renewal named", 0, 1)

	h.doc.DeleteCustomer("file", "cust-b")
	engine().RecordCustomers(h.doc)
	want("cust-b's mapping removed", 0, 0)

	h.m = NewMetrics(prometheus.NewRegistry(), psa.SystemAutotask)
	if err := engine().RestoreMetrics(h.doc); err != nil {
		t.Fatal(err)
	}
	want("restarted with that export", 0, 0)
}

// TestEngine_ClearOrphans_keepsUnmappedNowMapped: clearing an orphaned
// line sets psa_sync_orphaned_lines from the stored list, and leaves
// psa_sync_unmapped as the export loaded since the pass set it: a product
// mapped since (here on purpose with sync off) must not count again, and
// fire PsaSyncUnmappedUsage, until the next pass.
func TestEngine_ClearOrphans_keepsUnmappedNowMapped(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxDecreasePercent = 0
	mdr := h.orphanMDR()
	product := func() float64 { return testutil.ToFloat64(h.m.Unmapped.WithLabelValues("product")) }
	if got := product(); got != 1 {
		t.Fatalf("psa_sync_unmapped{kind=\"product\"} after MDR's mapping was removed = %v, want 1", got)
	}
	mdr.SyncEnabled = false
	h.doc.PutProduct(mdr)
	h.engine().RecordCustomers(h.doc)
	if got := product(); got != 0 {
		t.Fatalf("psa_sync_unmapped{kind=\"product\"} with MDR mapped with sync off = %v, want 0", got)
	}
	if _, err := h.engine().ClearOrphans(h.contractA, h.svcMDR, "zeroed in the PSA", false); err != nil {
		t.Fatal(err)
	}
	if got := h.orphanedGauge(OrphanService); got != 1 {
		t.Errorf("psa_sync_orphaned_lines after the clear = %v, want 1 (cust-b's)", got)
	}
	if got := product(); got != 0 {
		t.Errorf("psa_sync_unmapped{kind=\"product\"} after the clear = %v, want 0", got)
	}
}

// TestEngine_StillUnmapped: the unmapped usage of the last pass, as a newly
// loaded export maps it (GET /api/v1/unmapped, psa_sync_unmapped): a
// customer and a product the pass listed as mapped with sync off leave the
// sync-off lists once the export switches their sync on, stay while it is
// off, and move to the unmapped lists (the zero ones at quantity 0) once
// their mappings are removed; unmapped ones that the export maps with sync
// off join the sync-off lists. The other ids stay where the pass put them.
func TestEngine_StillUnmapped(t *testing.T) {
	t.Parallel()
	pass := Unmapped{
		Customers:        []UnmappedCustomer{{CustomerID: "new-co", Products: []string{"P"}, Quantity: 2}},
		Products:         []UnmappedProduct{{Product: "NEW-P", Customers: 1, Quantity: 2}},
		SyncOffCustomers: []UnmappedCustomer{{CustomerID: "off-co", Products: []string{"P"}, Quantity: 3}, {CustomerID: "trial-co", Products: []string{"P"}}},
		SyncOff:          []UnmappedProduct{{Product: "OFF-P", Customers: 1, Quantity: 3}, {Product: "TRIAL-P", Customers: 1}},
	}
	// exportWith returns an export that maps off-co, trial-co, OFF-P and
	// TRIAL-P with sync off, as at the pass, and changes it with more.
	exportWith := func(more ...func(*export.Document)) *export.Document {
		doc := export.New(psa.SystemAutotask, "sim")
		for _, id := range []string{"off-co", "trial-co"} {
			doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: id, CompanyID: "1", ContractID: "1"})
		}
		for _, id := range []string{"OFF-P", "TRIAL-P"} {
			doc.PutProduct(export.ProductMapping{Source: "file", Product: id, ServiceID: "1", ServiceName: "S"})
		}
		for _, f := range more {
			f(doc)
		}
		return doc
	}
	syncOn := func(doc *export.Document) {
		for i := range doc.CustomerMappings {
			doc.CustomerMappings[i].UsageSync = true
		}
		for i := range doc.ProductMappings {
			doc.ProductMappings[i].SyncEnabled = true
		}
	}
	ids := func(u Unmapped) map[string][]string {
		got := map[string][]string{}
		for list, cs := range map[string][]UnmappedCustomer{"customers": u.Customers, "zero_customers": u.ZeroCustomers, "sync_off_customers": u.SyncOffCustomers} {
			for _, c := range cs {
				got[list] = append(got[list], c.CustomerID)
			}
		}
		for list, ps := range map[string][]UnmappedProduct{"products": u.Products, "zero_products": u.ZeroProducts, "sync_off": u.SyncOff} {
			for _, p := range ps {
				got[list] = append(got[list], p.Product)
			}
		}
		return got
	}
	for _, tc := range []struct {
		name string
		doc  *export.Document
		want map[string][]string
	}{
		{"sync still off", exportWith(), map[string][]string{
			"customers": {"new-co"}, "products": {"NEW-P"}, "sync_off_customers": {"off-co", "trial-co"}, "sync_off": {"OFF-P", "TRIAL-P"}}},
		{"sync switched on", exportWith(syncOn), map[string][]string{"customers": {"new-co"}, "products": {"NEW-P"}}},
		{"mappings removed", exportWith(func(doc *export.Document) {
			doc.CustomerMappings, doc.ProductMappings = nil, nil
		}), map[string][]string{
			"customers": {"new-co", "off-co"}, "products": {"NEW-P", "OFF-P"}, "zero_customers": {"trial-co"}, "zero_products": {"TRIAL-P"}}},
		{"unmapped ones mapped with sync off", exportWith(func(doc *export.Document) {
			doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "new-co", CompanyID: "1", ContractID: "2"})
			doc.PutProduct(export.ProductMapping{Source: "file", Product: "NEW-P", ServiceID: "1", ServiceName: "S"})
		}), map[string][]string{"sync_off_customers": {"new-co", "off-co", "trial-co"}, "sync_off": {"NEW-P", "OFF-P", "TRIAL-P"}}},
	} {
		got := (&Engine{}).StillUnmapped(UnmappedReport{Source: "file", Unmapped: pass}, tc.doc)
		if diff := cmp.Diff(tc.want, ids(got.Unmapped)); diff != "" {
			t.Errorf("%s: lists mismatch (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestEngine_StillUnmapped_syncSwitchedOff: a product billed at the last
// pass whose mapping an export loaded since switches sync off joins the
// sync-off list at once, with its customers and quantity as the pass
// counted them (UnmappedReport.Synced), not at the next pass over all
// customers, a month later on a monthly schedule: the pass's report held
// only what it did not bill, so there was nothing to list. One whose
// mapping is removed is unmapped at once. A report kept before Synced
// existed reads as it did: the product waits for the next pass.
func TestEngine_StillUnmapped_syncSwitchedOff(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,6", "cust-x,Initech,CIXA-MSP,3")
	h.sync(PassOptions{})
	var rep UnmappedReport
	if _, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
		t.Fatal(err)
	}
	cixa := []UnmappedProduct{{Product: "CIXA-MSP", Customers: 3, Quantity: 49}}
	if got := h.engine().StillUnmapped(rep, h.doc).Unmapped; len(got.SyncOff) != 0 || len(got.Products) != 0 {
		t.Errorf("the same export: sync_off %+v, products %+v; want none", got.SyncOff, got.Products)
	}
	pm, _ := h.doc.Product("file", "CIXA-MSP")
	pm.SyncEnabled = false
	h.doc.PutProduct(pm)
	if diff := cmp.Diff(cixa, h.engine().StillUnmapped(rep, h.doc).Unmapped.SyncOff); diff != "" {
		t.Errorf("CIXA-MSP switched off: sync_off mismatch (-want +got):\n%s", diff)
	}
	old := rep
	old.Synced = nil
	if got := h.engine().StillUnmapped(old, h.doc).Unmapped.SyncOff; len(got) != 0 {
		t.Errorf("a report kept before Synced: sync_off %+v, want none", got)
	}
	h.doc.DeleteProduct("file", "CIXA-MSP")
	if diff := cmp.Diff(cixa, h.engine().StillUnmapped(rep, h.doc).Unmapped.Products); diff != "" {
		t.Errorf("CIXA-MSP's mapping removed: products mismatch (-want +got):\n%s", diff)
	}
}
