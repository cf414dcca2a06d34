package usage

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestEngine_Sync_unreportedCustomer: a mapped customer whose contract
// bills a line above 0 and of which the usage report has no row at all (a
// tenant removed or moved to another partner, a customer_id that never
// matches) is listed in Unmapped.Unreported and counted in
// psa_sync_customers_unreported, with either missing_usage policy: with
// keep its line would otherwise go on billing, unchanged and "succeeded",
// with nothing to notice. A customer with no line above 0, or with rows of
// unmapped products only (reported as unmapped), is not; a pass for
// another customer keeps it; a restart restores it; an empty report
// reports nobody (it is a problem of its own).
func TestEngine_Sync_unreportedCustomer(t *testing.T) {
	t.Parallel()
	for _, missing := range []string{MissingUsageZero, MissingUsageKeep} {
		t.Run(missing, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.pol.MissingUsage = missing
			h.at.SetUnits(h.contractB, h.svcIntercept, 6, etPeriodDay)
			h.at.SetUnits(h.contractB, h.svcMDR, 2, etPeriodDay)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40")
			gauge := func() float64 { return h.metric(h.m.CustomersUnreported.WithLabelValues(VendorUnknown)) }

			res := h.sync(PassOptions{})
			h.wantUnits(h.contractB, h.svcIntercept, 6) // held (zero) or kept (keep)
			u := res.Plan.Unmapped.Unreported
			if len(u) != 1 || u[0].CustomerID != "cust-b" || u[0].CustomerName != "Globex" || u[0].ContractID != etID(h.contractB) || u[0].Quantity != 8 {
				t.Fatalf("unreported = %+v, want cust-b on contract %d billing 8", u, h.contractB)
			}
			if c := etFindChange(res.Plan, "cust-b", h.svcIntercept); c == nil || !strings.Contains(c.Reason, "the usage report has no row of this customer at all") {
				t.Errorf("change = %+v, want its reason to say the report has no row of cust-b", c)
			}
			if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || strings.Contains(c.Reason, "no row of this customer") {
				t.Errorf("change of cust-a = %+v", c)
			}
			if got := gauge(); got != 1 {
				t.Errorf("psa_sync_customers_unreported = %v, want 1", got)
			}
			var rep UnmappedReport
			if ok, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil || !ok || len(rep.Unmapped.Unreported) != 1 {
				t.Errorf("stored unmapped usage = %+v, %v, %v; want cust-b unreported", rep.Unmapped, ok, err)
			}

			// A pass for cust-a alone does not see cust-b: it stays.
			h.sync(PassOptions{Customer: "cust-a"})
			if got := gauge(); got != 1 {
				t.Errorf("after a pass for cust-a: psa_sync_customers_unreported = %v, want 1", got)
			}

			// A restart restores it.
			h.m = NewMetrics(prometheus.NewRegistry(), psa.SystemAutotask)
			h.m.Requests = h.rt.requests.Load
			if err := h.engine().RestoreMetrics(h.doc); err != nil {
				t.Fatal(err)
			}
			if got := gauge(); got != 1 {
				t.Errorf("restored psa_sync_customers_unreported = %v, want 1", got)
			}

			// Rows of an unmapped product only: cust-b is reported, its
			// product is unmapped.
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-NEW,6")
			res = h.sync(PassOptions{})
			if u := res.Plan.Unmapped; len(u.Unreported) != 0 || len(u.Products) != 1 {
				t.Errorf("unmapped = %+v, want CIXA-NEW unmapped and nobody unreported", u)
			}
			if got := gauge(); got != 0 {
				t.Errorf("psa_sync_customers_unreported = %v, want 0", got)
			}

			// An empty report is a problem of its own: nobody is listed.
			h.writeUsage()
			if res = h.sync(PassOptions{}); len(res.Plan.Unmapped.Unreported) != 0 {
				t.Errorf("unreported of an empty report = %+v", res.Plan.Unmapped.Unreported)
			}
		})
	}
}

// TestEngine_Sync_unreportedNeedsABilledLine: a mapped customer with no
// usage and no line above 0 bills nothing: it is not listed.
func TestEngine_Sync_unreportedNeedsABilledLine(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractB, h.svcIntercept, 0, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40")
	if res := h.sync(PassOptions{}); len(res.Plan.Unmapped.Unreported) != 0 {
		t.Errorf("unreported = %+v, want none", res.Plan.Unmapped.Unreported)
	}
}

// TestEngine_Sync_decreaseNamesUnmappedUsage: a vendor that re-codes a
// mapped product turns its usage unmapped and the line it fed drops. Such
// a decrease is held for review even below max_decrease_percent (an
// approval at its units writes it), and its reason names the customer's
// usage of products without a mapping, so that the operator sees the
// renamed code; a decrease of a customer without unmapped usage does not.
func TestEngine_Sync_decreaseNamesUnmappedUsage(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 40, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcIntercept, 42, etPeriodDay)
	h.at.SetUnits(h.contractB, h.svcMDR, 10, etPeriodDay)
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP2,40", // CIXA-MSP re-coded: Intercept drops to 0, held
		"cust-b,Globex,CIXA-MSP,40",
		"cust-b,Globex,CIXA-SRV2,2", // CIXA-SRV re-coded: 42 to 40, written
		"cust-b,Globex,MDR,9",
	)
	res := h.sync(PassOptions{})
	const why = "this customer has usage of products without a product mapping ("
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || c.Action != ActionHeld ||
		!strings.Contains(c.Reason, why+"CIXA-MSP2 40): if the vendor renamed or re-coded a mapped product, map the new code (psa_product_mapping)") {
		t.Errorf("change of cust-a = %+v, want held naming CIXA-MSP2", c)
	}
	// Below max_decrease_percent, but held too: the new code bills
	// nothing while the line drops.
	if c := etFindChange(res.Plan, "cust-b", h.svcIntercept); c == nil || c.Action != ActionHeld || c.Hold() != HoldApproval ||
		!strings.Contains(c.Reason, "decrease from 42 to 40 held for review: the customer's usage includes products without a product mapping") ||
		!strings.Contains(c.Reason, "sync --approve --customer cust-b --service "+etID(h.svcIntercept)+" --units 40") ||
		!strings.Contains(c.Reason, why+"CIXA-SRV2 2)") {
		t.Errorf("change of cust-b = %+v, want held naming CIXA-SRV2", c)
	}
	h.wantUnits(h.contractB, h.svcIntercept, 42)
	if c := etFindChange(res.Plan, "cust-b", h.svcMDR); c == nil || !strings.Contains(c.Reason, why) {
		t.Errorf("MDR change of cust-b = %+v, want its decrease to name the unmapped usage too", c)
	}

	// Approved at the reviewed units, it is written.
	units := int64(40)
	res = h.sync(PassOptions{Customer: "cust-b", Approve: true, ApproveService: etID(h.svcIntercept), ApproveUnits: &units})
	if c := etFindChange(res.Plan, "cust-b", h.svcIntercept); c == nil || c.Action != ActionUpdate {
		t.Errorf("approved change of cust-b = %+v, want an update", c)
	}
	h.wantUnits(h.contractB, h.svcIntercept, 40)

	h.writeUsage("cust-a,Acme,CIXA-MSP,38", "cust-b,Globex,CIXA-MSP,42")
	res = h.sync(PassOptions{})
	if c := etFindChange(res.Plan, "cust-a", h.svcIntercept); c == nil || strings.Contains(c.Reason, why) {
		t.Errorf("change of cust-a without unmapped usage = %+v", c)
	}
}

// listingSource is a usage source whose reports list the vendor's
// customers, as the Sophos source's tenant list does.
type listingSource struct {
	source.Source
	customers []string
}

func (s listingSource) Fetch(ctx context.Context, p source.Period) (*source.Report, error) {
	rep, err := s.Source.Fetch(ctx, p)
	if rep != nil {
		rep.Customers, rep.CustomersListed = s.customers, true
	}
	return rep, err
}

// TestEngine_Sync_unreportedVendorListing: when the source lists the
// vendor's customers (Sophos's tenants), an unreported customer says
// whether the vendor still lists it (no usage this period) or not (the
// tenant was deleted or moved to another partner), in the plan and in its
// lines' reasons; a source without a list says neither.
func TestEngine_Sync_unreportedVendorListing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		customers []string
		listed    bool
		vendor    string
		reason    string
	}{
		{"gone", []string{"cust-a"}, true, VendorGone, "the vendor no longer lists it (the tenant was deleted or moved to another partner"},
		{"listed", []string{"cust-a", "CUST-B"}, true, VendorListed, "though the vendor still lists it: it has no usage this period"},
		{"no list", nil, false, "", "if the vendor removed the tenant or it moved to another partner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.at.SetUnits(h.contractB, h.svcIntercept, 6, etPeriodDay)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40")
			var src source.Source
			src, err := file.New(file.Config{Path: h.usage})
			if err != nil {
				t.Fatal(err)
			}
			if tc.listed {
				src = listingSource{Source: src, customers: tc.customers}
			}
			e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
				Location: time.UTC, Now: h.clock, Unsaved: &h.unsaved})
			res, err := e.Sync(t.Context(), h.doc, PassOptions{})
			if err != nil {
				t.Fatal(err)
			}
			u := res.Plan.Unmapped.Unreported
			if len(u) != 1 || u[0].CustomerID != "cust-b" || u[0].Vendor != tc.vendor {
				t.Fatalf("unreported = %+v, want cust-b with vendor %q", u, tc.vendor)
			}
			if c := etFindChange(res.Plan, "cust-b", h.svcIntercept); c == nil || !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("change = %+v, want its reason to say %q", c, tc.reason)
			}
			// psa_sync_customers_unreported counts it under its vendor
			// label, 0 under the others, so that the alert says which.
			label := tc.vendor
			if label == "" {
				label = VendorUnknown
			}
			for _, v := range UnreportedVendors {
				want := 0.0
				if v == label {
					want = 1
				}
				if got := h.metric(h.m.CustomersUnreported.WithLabelValues(v)); got != want {
					t.Errorf("psa_sync_customers_unreported{vendor=%q} = %v, want %v", v, got, want)
				}
			}
		})
	}
}

// TestEngine_Sync_unmappedDecreaseGuardOff: max_decrease_percent 0 turns
// the decrease guard off, the hold of a decrease beside unmapped usage too.
func TestEngine_Sync_unmappedDecreaseGuardOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pol  func(*Policies)
	}{
		{"max_decrease_percent 0", func(p *Policies) { p.MaxDecreasePercent = 0 }},
		// The decrease guard stays on for decreases larger than 50 %.
		{"unmapped_decreases by_size", func(p *Policies) { p.UnmappedDecreases = UnmappedDecreasesBySize }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			tc.pol(&h.pol)
			h.at.SetUnits(h.contractB, h.svcIntercept, 42, etPeriodDay)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,40", "cust-b,Globex,CIXA-SRV2,2")
			res := h.sync(PassOptions{})
			if c := etFindChange(res.Plan, "cust-b", h.svcIntercept); c == nil || c.Action != ActionUpdate || !strings.Contains(c.Reason, "CIXA-SRV2 2") {
				t.Errorf("change of cust-b = %+v, want an update naming CIXA-SRV2", c)
			}
			h.wantUnits(h.contractB, h.svcIntercept, 40)
		})
	}
}
