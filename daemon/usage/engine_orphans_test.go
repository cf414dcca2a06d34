package usage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// orphanKeys spells the orphaned lines of p as reason:customer/contract/service=quantity.
func orphanKeys(p *Plan) string {
	var out []string
	for _, l := range p.Unmapped.Orphaned {
		out = append(out, fmt.Sprintf("%s:%s/%s/%s=%d", l.Reason, l.CustomerID, l.ContractID, l.ServiceID, l.Quantity))
	}
	return strings.Join(out, " ")
}

// orphanedGauge reads psa_sync_orphaned_lines of reason.
func (h *sysHarness) orphanedGauge(reason string) float64 {
	h.t.Helper()
	return testutil.ToFloat64(h.m.OrphanedLines.WithLabelValues(reason))
}

// orphanMDR writes usage of MDR for both customers, runs a pass that
// sets their MDR lines (and cust-a's CIXA-MSP line), removes MDR's
// product mapping and runs the pass that finds both MDR lines orphaned;
// it returns the removed mapping.
func (h *sysHarness) orphanMDR() export.ProductMapping {
	h.t.Helper()
	h.firstPass(3, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2")
	mdr, _ := h.doc.Product("file", "MDR")
	h.doc.DeleteProduct("file", "MDR")
	if res := h.sync(PassOptions{}); len(res.Plan.Unmapped.Orphaned) != 2 {
		h.t.Fatalf("pass after MDR's mapping was removed: orphaned %s, want both MDR lines", orphanKeys(res.Plan))
	}
	return mdr
}

// TestEngineSystems_orphanedLines: a product mapping removed outright, or a
// customer mapping removed, leaves the lines psa-syncd set above 0 billing
// while no pass writes them any more. On every PSA the plan and the pass
// list them (Unmapped.Orphaned, by reason), psa_sync_orphaned_lines counts
// them, and a line the operator zeroed by hand leaves the list where the
// PSA's read shows it (Autotask, ConnectWise); mapping the product again
// ends the listing. A product handed to the operator on purpose
// (sync_enabled = false) lists nothing. No PSA request is made for it.
func TestEngineSystems_orphanedLines(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			rows := []string{"cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2"}
			h.writeUsage(rows...)
			if res := h.sync(PassOptions{}); res.Run.Updated != 3 || len(res.Plan.Unmapped.Orphaned) != 0 {
				t.Fatalf("first pass = %+v, orphaned %s; want 3 updated, none orphaned", res.Run, orphanKeys(res.Plan))
			}

			// Handed to the operator on purpose: not orphaned.
			mdr, _ := h.doc.Product("file", "MDR")
			off := mdr
			off.SyncEnabled = false
			h.doc.PutProduct(off)
			if res := h.sync(PassOptions{}); len(res.Plan.Unmapped.Orphaned) != 0 {
				t.Errorf("pass with MDR's sync off: orphaned %s, want none", orphanKeys(res.Plan))
			}

			// MDR's product mapping is removed: both MDR lines still bill.
			h.doc.DeleteProduct("file", "MDR")
			want := fmt.Sprintf("service:cust-a/%s/%s=3 service:cust-b/%s/%s=2", h.contractA, h.svcMDR, h.contractB, h.svcMDR)
			plan := h.plan()
			if got := orphanKeys(plan); got != want {
				t.Errorf("plan's orphaned lines = %q, want %q", got, want)
			}
			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			if got := orphanKeys(res.Plan); got != want {
				t.Errorf("pass's orphaned lines = %q, want %q", got, want)
			}
			if l := res.Plan.Unmapped.Orphaned[0]; l.Since != "2026-11-01" || l.RunID == 0 || l.CustomerName != "Acme" || l.Read == (sys == psa.SystemKaseyaBMS) ||
				!strings.Contains(l.Hint("file"), "no product mapping of usage source file names service "+h.svcMDR) {
				t.Errorf("orphaned line = %+v (hint %q), want since 2026-11-01, its run, Acme, read unless Kaseya BMS, a hint naming the service", l, l.Hint("file"))
			}
			if g := h.orphanedGauge(OrphanService); g != 2 {
				t.Errorf("psa_sync_orphaned_lines{reason=service} = %v, want 2", g)
			}
			if n := h.requestsNaming(h.svcMDR); n != 0 {
				t.Errorf("%d requests named the orphaned service, want none", n)
			}
			h.wantUnits(h.contractA, h.svcMDR, 3)

			// cust-b's customer mapping is removed too.
			h.doc.DeleteCustomer("file", "cust-b")
			res = h.sync(PassOptions{})
			want = fmt.Sprintf("service:cust-a/%s/%s=3 customer:cust-b/%s/%s=2", h.contractA, h.svcMDR, h.contractB, h.svcMDR)
			if got := orphanKeys(res.Plan); got != want {
				t.Errorf("orphaned lines after cust-b's mapping was removed = %q, want %q", got, want)
			}
			if h.orphanedGauge(OrphanService) != 1 || h.orphanedGauge(OrphanCustomer) != 1 {
				t.Errorf("psa_sync_orphaned_lines = service %v, customer %v; want 1 and 1", h.orphanedGauge(OrphanService), h.orphanedGauge(OrphanCustomer))
			}

			// The operator zeroes cust-a's MDR line by hand.
			h.setByHand(h.contractA, h.svcMDR, 0)
			res = h.sync(PassOptions{})
			if sys == psa.SystemKaseyaBMS {
				// Its lines cannot be read: the ledger still says 3.
				want = fmt.Sprintf("service:cust-a/%s/%s=3 customer:cust-b/%s/%s=2", h.contractA, h.svcMDR, h.contractB, h.svcMDR)
			} else {
				want = fmt.Sprintf("customer:cust-b/%s/%s=2", h.contractB, h.svcMDR)
			}
			if got := orphanKeys(res.Plan); got != want {
				t.Errorf("orphaned lines after cust-a's was zeroed by hand = %q, want %q", got, want)
			}

			// MDR mapped again: psa-syncd writes cust-a's line (or holds
			// it), and only cust-b's (whose mapping is gone) is left.
			h.doc.PutProduct(mdr)
			res = h.sync(PassOptions{})
			want = fmt.Sprintf("customer:cust-b/%s/%s=2", h.contractB, h.svcMDR)
			if got := orphanKeys(res.Plan); got != want {
				t.Errorf("orphaned lines after MDR was mapped again = %q, want %q", got, want)
			}
			if h.orphanedGauge(OrphanService) != 0 || h.orphanedGauge(OrphanCustomer) != 1 {
				t.Errorf("psa_sync_orphaned_lines = service %v, customer %v; want 0 and 1", h.orphanedGauge(OrphanService), h.orphanedGauge(OrphanCustomer))
			}
		})
	}
}

// TestEngineSystems_orphanedLinesCustomerPass: a pass for one customer
// lists that customer's orphaned lines and keeps the others' as the last
// pass over all customers found them.
func TestEngineSystems_orphanedLinesCustomerPass(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxDecreasePercent = 0
	h.orphanMDR()
	h.setByHand(h.contractA, h.svcMDR, 0)
	res := h.sync(PassOptions{Customer: "cust-a"})
	if len(res.Plan.Unmapped.Orphaned) != 0 {
		t.Errorf("cust-a's pass: orphaned %s, want none (zeroed by hand)", orphanKeys(res.Plan))
	}
	if g := h.orphanedGauge(OrphanService); g != 1 {
		t.Errorf("psa_sync_orphaned_lines{reason=service} after cust-a's pass = %v, want 1 (cust-b's kept)", g)
	}
	var rep UnmappedReport
	if _, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil || len(rep.Unmapped.Orphaned) != 1 || rep.Unmapped.Orphaned[0].CustomerID != "cust-b" {
		t.Errorf("stored unmapped report = %+v, %v; want cust-b's orphaned line alone", rep.Unmapped.Orphaned, err)
	}
	// A restart restores the gauge.
	restored := NewMetrics(prometheus.NewRegistry(), psa.SystemAutotask)
	if err := NewEngine(EngineOptions{Backend: h.be, State: h.db, Metrics: restored, Now: func() time.Time { return etNow }}).RestoreMetrics(h.doc); err != nil {
		t.Fatal(err)
	}
	if g := testutil.ToFloat64(restored.OrphanedLines.WithLabelValues(OrphanService)); g != 1 {
		t.Errorf("restored psa_sync_orphaned_lines{reason=service} = %v, want 1", g)
	}
}

// TestEngineSystems_orphanedLinesMergedProduct: a product re-pointed onto a
// service psa-syncd already writes for the customer (another product's) is
// not held, and the merged line bills beside the old one: the old
// service's line is listed as orphaned until it is set to 0. A customer
// mapping with usage_sync = false (handed to the operator on purpose) has
// no orphaned line.
func TestEngineSystems_orphanedLinesMergedProduct(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2")
			h.sync(PassOptions{})
			mdr, _ := h.doc.Product("file", "MDR")
			mdr.ServiceID = h.svcIntercept
			h.doc.PutProduct(mdr)
			res := h.sync(PassOptions{})
			want := fmt.Sprintf("service:cust-a/%s/%s=3 service:cust-b/%s/%s=2", h.contractA, h.svcMDR, h.contractB, h.svcMDR)
			if got := orphanKeys(res.Plan); got != want {
				t.Errorf("orphaned lines after MDR merged into Intercept = %q, want %q", got, want)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 45)

			b, _ := h.doc.Customer("file", "cust-b")
			b.UsageSync = false
			h.doc.PutCustomer(b)
			res = h.sync(PassOptions{})
			want = fmt.Sprintf("service:cust-a/%s/%s=3", h.contractA, h.svcMDR)
			if got := orphanKeys(res.Plan); got != want {
				t.Errorf("orphaned lines with cust-b's usage sync off = %q, want %q", got, want)
			}
		})
	}
}

// TestEngineSystems_orphanedLinesRenewedCustomer: a customer mapped to
// another contract (a renewal whose old contract ended, once the mapping
// names the new one alone; or a move, held as previous_contract) lists no
// orphaned line of its old contract, whether or not psa-syncd still keeps
// the old contract's end date: only a customer no mapping names does.
func TestEngineSystems_orphanedLinesRenewedCustomer(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,MDR,2")
			h.sync(PassOptions{})
			h.moveTo("cust-a", "Acme Managed Services 2027")
			if res := h.sync(PassOptions{}); len(res.Plan.Unmapped.Orphaned) != 0 {
				t.Errorf("orphaned lines after cust-a's mapping named another contract = %q, want none", orphanKeys(res.Plan))
			}
		})
	}
}

// TestEngineSystems_orphanedLinesOldContractsNotRead: the contracts a
// renewal or a move left behind, whose customer is mapped to another
// contract, have no orphaned line, and their lines in force are not read
// (they pile up in the ledger, one per customer and year: reading them at
// every pass cost seconds at 2,000 renewed customers, see
// BenchmarkFindOrphans); the contract of a customer whose mapping was
// removed is, and a pass for one customer reads none of another's.
func TestEngineSystems_orphanedLinesOldContractsNotRead(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,MDR,2")
			h.sync(PassOptions{})
			h.moveTo("cust-a", "Acme Managed Services 2027")
			h.doc.DeleteCustomer("file", "cust-b")
			products := map[string]export.ProductMapping{}
			for _, pm := range h.doc.ProductMappings {
				products[pm.Product] = pm
			}
			o := h.engine().findOrphans(t.Context(), h.doc, "file", products, etPeriodDay, "", true)
			if !slices.Equal(o.candidates, []string{h.contractB}) || o.unread {
				t.Errorf("contracts whose lines in force were read = %v (unread %v), want cust-b's %s alone", o.candidates, o.unread, h.contractB)
			}
			want := fmt.Sprintf("customer:cust-b/%s/%s=2", h.contractB, h.svcMDR)
			if got := orphanKeys(&Plan{Unmapped: Unmapped{Orphaned: o.list()}}); got != want {
				t.Errorf("orphaned lines = %q, want %q", got, want)
			}
			if o := h.engine().findOrphans(t.Context(), h.doc, "file", products, etPeriodDay, "cust-a", true); len(o.candidates) != 0 {
				t.Errorf("cust-a's pass read the lines in force of %v, want none", o.candidates)
			}
		})
	}
}

// TestEngineSystems_orphanedLinesClearedMappedAgain: a cleared line whose
// product is mapped again is listed again once that mapping is removed
// again, though psa-syncd did not change the line in between (the usage
// was what it last set: the ledger entry in force is still the one
// cleared). A plan forgets no clear. On Kaseya BMS, whose lines cannot be
// read, the lines mapped again are posted again at the same units (the
// clear, or cust-b's listing, says they may no longer hold them; no change
// where they do).
func TestEngineSystems_orphanedLinesClearedMappedAgain(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			mdr := h.orphanMDR()
			if _, err := h.engine().ClearOrphans(h.contractA, h.svcMDR, "billed on purpose", false); err != nil {
				t.Fatal(err)
			}
			h.doc.PutProduct(mdr)
			h.plan()
			if cleared, err := h.engine().clearedOrphans(); err != nil || len(cleared) != 1 {
				t.Errorf("cleared lines after a plan with MDR mapped again = %v, %v; want cust-a's kept", cleared, err)
			}
			want := 0
			if sys == psa.SystemKaseyaBMS {
				want = 2
			}
			if res := h.sync(PassOptions{}); res.Run.Updated != want || len(res.Plan.Unmapped.Orphaned) != 0 {
				t.Fatalf("pass with MDR mapped again: %d updated, orphaned %q; want %d, none", res.Run.Updated, orphanKeys(res.Plan), want)
			}
			h.wantUnits(h.contractA, h.svcMDR, 3)
			h.doc.DeleteProduct("file", "MDR")
			wantOrphans := fmt.Sprintf("service:cust-a/%s/%s=3 service:cust-b/%s/%s=2", h.contractA, h.svcMDR, h.contractB, h.svcMDR)
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != wantOrphans {
				t.Errorf("pass after MDR was removed again: orphaned %q, want %q", got, wantOrphans)
			}
		})
	}
}

// TestEngineSystems_orphanedLinesClearAllLeavesReadLines: clearing every
// orphaned line leaves those the last pass read above 0 in the PSA
// (Autotask, ConnectWise: a still-mapped contract's lines), which bill and
// leave the list by themselves once zeroed there; the lines psa-syncd
// cannot read (a contract no longer mapped; every line on Kaseya BMS) are
// cleared.
func TestEngineSystems_orphanedLinesClearAllLeavesReadLines(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2")
			h.sync(PassOptions{})
			h.doc.DeleteProduct("file", "MDR")
			h.doc.DeleteCustomer("file", "cust-b")
			h.sync(PassOptions{})
			lineA := fmt.Sprintf("service:cust-a/%s/%s=3", h.contractA, h.svcMDR)
			lineB := fmt.Sprintf("customer:cust-b/%s/%s=2", h.contractB, h.svcMDR)
			done, err := h.engine().ClearOrphans("", "", "", false)
			got := orphanKeys(&Plan{Unmapped: Unmapped{Orphaned: done}})
			want, left := lineA+" "+lineB, ""
			if sys != psa.SystemKaseyaBMS {
				want, left = lineB, lineA
			}
			if err != nil || got != want {
				t.Errorf("ClearOrphans(every line) = %q, %v; want %q", got, err, want)
			}
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != left {
				t.Errorf("pass after every line was cleared: orphaned %q, want %q", got, left)
			}
		})
	}
}

// TestEngineSystems_orphanedLinesLedgerUnread: a pass that cannot read the
// ledger for orphaned lines keeps the list (and psa_sync_orphaned_lines)
// the pass before found, marked unread, whether it is over every customer
// or one: the lines still bill, and the gauge does not drop to 0 for a
// pass. The next pass that reads the ledger lists them afresh.
func TestEngineSystems_orphanedLinesLedgerUnread(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxDecreasePercent = 0
	h.orphanMDR()
	stored := func() UnmappedReport {
		var rep UnmappedReport
		if _, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	want := fmt.Sprintf("service:cust-a/%s/%s=3 service:cust-b/%s/%s=2", h.contractA, h.svcMDR, h.contractB, h.svcMDR)
	for _, o := range []PassOptions{{}, {Customer: "cust-a"}} {
		e := h.engine()
		e.failOrphans = func() error { return fmt.Errorf("disk I/O error") }
		res, err := e.Sync(t.Context(), h.doc, o)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Plan.Unmapped.OrphanedUnread {
			t.Errorf("pass for %q with the ledger unread: OrphanedUnread not set", o.Customer)
		}
		if g := h.orphanedGauge(OrphanService); g != 2 {
			t.Errorf("pass for %q with the ledger unread: psa_sync_orphaned_lines{reason=service} = %v, want 2 (kept)", o.Customer, g)
		}
		if rep := stored(); orphanKeys(&Plan{Unmapped: rep.Unmapped}) != want || !rep.Unmapped.OrphanedUnread {
			t.Errorf("pass for %q with the ledger unread: stored orphaned %q (unread %v), want %q kept, unread", o.Customer, orphanKeys(&Plan{Unmapped: rep.Unmapped}), rep.Unmapped.OrphanedUnread, want)
		}
	}
	h.setByHand(h.contractA, h.svcMDR, 0)
	h.sync(PassOptions{})
	if rep := stored(); h.orphanedGauge(OrphanService) != 1 || rep.Unmapped.OrphanedUnread {
		t.Errorf("pass with the ledger read: gauge %v, unread %v; want 1 (cust-a's zeroed), not unread", h.orphanedGauge(OrphanService), rep.Unmapped.OrphanedUnread)
	}
}

// TestEngineSystems_orphanedLinesCleared: an operator clears an orphaned
// line (Engine.ClearOrphans): it leaves the stored list and the gauge at
// once and later passes do not list it, until psa-syncd changes the line
// again (a newer ledger entry), when it is listed again once orphaned.
// Clearing every line empties the list; a line not listed, or a contract
// without a service, is refused.
func TestEngineSystems_orphanedLinesCleared(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			mdr := h.orphanMDR()
			stored := func() string {
				var rep UnmappedReport
				if _, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
					t.Fatal(err)
				}
				return orphanKeys(&Plan{Unmapped: rep.Unmapped})
			}
			lineB := fmt.Sprintf("service:cust-b/%s/%s=2", h.contractB, h.svcMDR)

			if _, err := h.engine().ClearOrphans(h.contractA, "", "", false); !errors.Is(err, ErrBadOrphanClear) {
				t.Errorf("ClearOrphans(contract only) = %v, want ErrBadOrphanClear", err)
			}
			if _, err := h.engine().ClearOrphans(h.contractA, h.svcIntercept, "", false); !errors.Is(err, ErrNoOrphan) {
				t.Errorf("ClearOrphans(a line not listed) = %v, want ErrNoOrphan", err)
			}
			done, err := h.engine().ClearOrphans(h.contractA, h.svcMDR, "jane: zeroed in the PSA", false)
			if err != nil || len(done) != 1 || done[0].CustomerID != "cust-a" {
				t.Fatalf("ClearOrphans(cust-a's MDR line) = %+v, %v; want that line", done, err)
			}
			if g, s := h.orphanedGauge(OrphanService), stored(); g != 1 || s != lineB {
				t.Errorf("after the clear: gauge %v, stored %q; want 1, %q", g, s, lineB)
			}
			if _, err := h.engine().ClearOrphans(h.contractA, h.svcMDR, "", false); !errors.Is(err, ErrAlreadyCleared) || !strings.Contains(err.Error(), "jane: zeroed in the PSA") {
				t.Errorf("ClearOrphans(cust-a's MDR line) again = %v, want ErrAlreadyCleared with its note", err)
			}
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != lineB {
				t.Errorf("pass after the clear: orphaned %q, want %q (cust-a's cleared)", got, lineB)
			}
			if g := h.orphanedGauge(OrphanService); g != 1 {
				t.Errorf("pass after the clear: gauge %v, want 1", g)
			}

			// MDR mapped again with new usage: psa-syncd sets cust-a's
			// line again; removed again, the line is listed again.
			h.doc.PutProduct(mdr)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,5", "cust-b,Globex,MDR,2")
			h.sync(PassOptions{})
			h.wantUnits(h.contractA, h.svcMDR, 5)
			h.doc.DeleteProduct("file", "MDR")
			want := fmt.Sprintf("service:cust-a/%s/%s=5 %s", h.contractA, h.svcMDR, lineB)
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != want {
				t.Errorf("pass after psa-syncd set the cleared line again: orphaned %q, want %q", got, want)
			}

			if sys == psa.SystemKaseyaBMS {
				if done, err := h.engine().ClearOrphans("", "", "", false); err != nil || len(done) != 2 {
					t.Errorf("ClearOrphans(every line) = %d lines, %v; want 2", len(done), err)
				}
			} else {
				// Both lines were read above 0: clearing every line
				// leaves them, a clear by name bills them on purpose.
				if done, err := h.engine().ClearOrphans("", "", "", false); !errors.Is(err, ErrNoOrphan) || !strings.Contains(err.Error(), "above 0 in the PSA") {
					t.Errorf("ClearOrphans(every line) of lines read above 0 = %d lines, %v; want ErrNoOrphan saying they were read above 0", len(done), err)
				}
				for _, c := range []string{h.contractA, h.contractB} {
					if done, err := h.engine().ClearOrphans(c, h.svcMDR, "billed on purpose", false); err != nil || len(done) != 1 {
						t.Errorf("ClearOrphans(%s) = %d lines, %v; want 1", c, len(done), err)
					}
				}
			}
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != "" || h.orphanedGauge(OrphanService) != 0 {
				t.Errorf("pass after every line was cleared: orphaned %q, gauge %v; want none, 0", got, h.orphanedGauge(OrphanService))
			}
			if _, err := h.engine().ClearOrphans("", "", "", false); !errors.Is(err, ErrNoOrphan) {
				t.Errorf("ClearOrphans(every line) with none listed = %v, want ErrNoOrphan", err)
			}

			// A list stored by an older psa-syncd has no ledger seq: a
			// clear would not hold, and is refused.
			var rep UnmappedReport
			if _, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
				t.Fatal(err)
			}
			rep.Unmapped.Orphaned = []OrphanedLine{{Reason: OrphanService, CustomerID: "cust-a", ContractID: h.contractA, ServiceID: h.svcMDR, Quantity: 5}}
			if err := h.db.PutSnapshot(SnapshotUnmapped, rep); err != nil {
				t.Fatal(err)
			}
			if _, err := h.engine().ClearOrphans("", "", "", false); !errors.Is(err, ErrBadOrphanClear) || !strings.Contains(err.Error(), "older psa-syncd") {
				t.Errorf("ClearOrphans of a line stored without its seq = %v, want ErrBadOrphanClear naming an older psa-syncd", err)
			}
		})
	}
}

// TestEngineSystems_orphanedLinesEarlierPeriod: a re-run of the month that
// has ended (PassOptions.Period) reads the ledger as of that month, where
// the lines psa-syncd set since are not in force: its orphaned lines are
// not what bills now. The list, psa_sync_orphaned_lines and the stored
// report keep what the last pass found, through a second re-run too, and a
// line of it can still be cleared. (ConnectWise PSA refuses such a pass.)
func TestEngineSystems_orphanedLinesEarlierPeriod(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2")
			h.sync(PassOptions{})
			h.doc.DeleteProduct("file", "MDR")
			want := fmt.Sprintf("service:cust-a/%s/%s=3 service:cust-b/%s/%s=2", h.contractA, h.svcMDR, h.contractB, h.svcMDR)
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != want {
				t.Fatalf("pass of November: orphaned %q, want %q", got, want)
			}
			stored := func() string {
				var rep UnmappedReport
				if _, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
					t.Fatal(err)
				}
				return orphanKeys(&Plan{Unmapped: rep.Unmapped})
			}
			for i := range 2 {
				h.sync(PassOptions{Period: periodNov.Prev()})
				if g := h.orphanedGauge(OrphanService); g != 2 {
					t.Errorf("re-run %d of October: psa_sync_orphaned_lines{reason=service} = %v, want 2 (the lines set from November still bill)", i+1, g)
				}
				if got := stored(); got != want {
					t.Errorf("re-run %d of October: stored orphaned %q, want %q", i+1, got, want)
				}
			}
			if done, err := h.engine().ClearOrphans(h.contractA, h.svcMDR, "", false); err != nil || len(done) != 1 {
				t.Errorf("ClearOrphans after the re-runs = %+v, %v; want cust-a's line", done, err)
			}
		})
	}
}

// recordHidden is a backend whose bulk read of contracts' records leaves
// out contract hidden, as for a contract out of the API user's sight.
type recordHidden struct {
	psa.Backend
	bulk   psa.BulkReader
	hidden string
}

func (b recordHidden) GetServices(ctx context.Context, ids []string) (map[string]*psa.Service, error) {
	return b.bulk.GetServices(ctx, ids)
}

func (b recordHidden) GetCompanies(ctx context.Context, ids []string) (map[string]*psa.Company, error) {
	return b.bulk.GetCompanies(ctx, ids)
}

func (b recordHidden) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	got, err := b.bulk.GetContracts(ctx, ids)
	delete(got, b.hidden)
	return got, err
}

// setContractStart sets, out of band, the start date of a contract on
// Autotask or ConnectWise, as an operator who postpones a renewal does.
func (h *sysHarness) setContractStart(contract string, start time.Time) {
	h.t.Helper()
	switch h.system {
	case psa.SystemAutotask:
		h.sim.Autotask().SetContractStartDate(mustParse(h.t, contract), start)
	case psa.SystemConnectWise:
		h.sim.ConnectWise().SetAgreementStartDate(mustParse(h.t, contract), start)
	default:
		h.t.Fatalf("setContractStart: not on %s", h.system)
	}
}

// setContractEnd sets, out of band, the end date of a contract on every
// simulator, as an operator who ends or extends it in the PSA does.
func (h *sysHarness) setContractEnd(contract string, end time.Time) {
	h.t.Helper()
	switch h.system {
	case psa.SystemAutotask:
		h.sim.Autotask().SetContractEndDate(mustParse(h.t, contract), end)
	case psa.SystemConnectWise:
		h.sim.ConnectWise().SetAgreementEndDate(mustParse(h.t, contract), end)
	default:
		h.sim.KaseyaBMS().SetContractEndDate(int(mustParse(h.t, contract)), end)
	}
}

// TestEngineSystems_orphanedLinesEndedContract: the line of a customer
// whose mapping was removed is not listed while its contract has ended, as
// the PSA says it once a day: not when the contract ended after the
// mapping's removal (psa-syncd read it last while it was mapped), not by a
// process started more than contractTermsKept later (the snapshot kept the
// end dates of the mapped contracts 35 days), and listed again once the
// contract's end date is moved later (renewed by extending it). The
// contract is read once a day, not at every pass, by a new process too,
// and the end date as last read stands while the PSA's read leaves the
// contract out, however long ago it was read.
func TestEngineSystems_orphanedLinesEndedContract(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			rows := []string{"cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,MDR,2"}
			h.syncAt(etNow, rows...)
			lineB := fmt.Sprintf("customer:cust-b/%s/%s=2", h.contractB, h.svcMDR)
			h.doc.DeleteCustomer("file", "cust-b")
			if got := orphanKeys(h.syncAt(etNow, rows...).Plan); got != lineB {
				t.Fatalf("pass after cust-b's mapping was removed: orphaned %q, want %q", got, lineB)
			}

			// Globex's contract ended on 31 October in the PSA.
			h.setContractEnd(h.contractB, time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC))
			if got := orphanKeys(h.syncAt(etNow.Add(time.Hour), rows...).Plan); got != lineB {
				t.Errorf("pass within the day of the last read: orphaned %q, want %q (read once a day)", got, lineB)
			}
			if n := h.requestsNaming(h.contractB); n != 0 {
				t.Errorf("pass within the day of the last read: %d requests named contract %s, want none", n, h.contractB)
			}
			day := etNow.Add(25 * time.Hour)
			if got := orphanKeys(h.syncAt(day, rows...).Plan); got != "" {
				t.Errorf("pass a day later: orphaned %q, want none (the contract ended)", got)
			}
			if n := h.requestsNaming(h.contractB); n == 0 {
				t.Errorf("pass a day later: no request named contract %s, want its record read", h.contractB)
			}

			// A process started 36 days later lists what a long-running
			// one does, and reads the contract once that day.
			later := day.Add(36 * 24 * time.Hour)
			restarted := func(at time.Time) *Result {
				t.Helper()
				h.terms = ContractTerms{}
				return h.syncAt(at, rows...)
			}
			// Its first plan reads the contract, and keeps no state: the
			// pass after it keeps what the plan read.
			h.terms = ContractTerms{}
			e := h.engineAt(later, &h.terms)
			plan, err := e.Plan(t.Context(), h.doc, PassOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := orphanKeys(plan); got != "" {
				t.Errorf("plan of a process started 36 days later: orphaned %q, want none", got)
			}
			if got := orphanKeys(h.syncAt(later, rows...).Plan); got != "" {
				t.Errorf("process started 36 days later: orphaned %q, want none", got)
			}
			if got := orphanKeys(restarted(later.Add(time.Hour)).Plan); got != "" || h.requestsNaming(h.contractB) != 0 {
				t.Errorf("process started an hour after that: orphaned %q, %d requests named contract %s; want none, none", got, h.requestsNaming(h.contractB), h.contractB)
			}

			// Weeks in which the contract's record cannot be read (the
			// others' can): the end date as last read stands, in every
			// new process.
			be := h.be
			bulk, ok := be.(psa.BulkReader)
			if !ok {
				t.Fatalf("%s's backend reads no records in bulk", sys)
			}
			h.be = recordHidden{be, bulk, h.contractB}
			for _, d := range []int{40, 41} {
				if got := orphanKeys(restarted(later.Add(time.Duration(d) * 24 * time.Hour)).Plan); got != "" {
					t.Errorf("process started %d days after the last read, in which its record cannot be read: orphaned %q, want none", d, got)
				}
			}
			h.be = be

			// The contract is extended: its line bills again, and is
			// listed from the next day's read.
			h.setContractEnd(h.contractB, time.Date(2027, time.December, 31, 0, 0, 0, 0, time.UTC))
			if got := orphanKeys(h.syncAt(later.Add(42*24*time.Hour), rows...).Plan); got != lineB {
				t.Errorf("pass a day after the contract was extended: orphaned %q, want %q", got, lineB)
			}
		})
	}
}

// TestEngineSystems_orphanedLinesRepeatedService: an orphaned service that
// sits on its contract twice (Autotask: a second contract service of it;
// ConnectWise: a second addition of its product), which the pass's read
// of the mapped services does not manage,
// stays listed while it bills, at the units of its lines added up; it
// leaves the list once every one of them reads 0.
func TestEngineSystems_orphanedLinesRepeatedService(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3")
			h.sync(PassOptions{})
			h.doc.DeleteProduct("file", "MDR")
			want := fmt.Sprintf("service:cust-a/%s/%s=3", h.contractA, h.svcMDR)
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != want {
				t.Fatalf("pass after MDR's mapping was removed: orphaned %q, want %q", got, want)
			}

			// MDR is added to Acme's contract a second time, by hand.
			var zeroFirst, zeroRepeat func()
			switch sys {
			case psa.SystemAutotask:
				at := h.sim.Autotask()
				repeat := at.AddRepeatContractService(mustParse(t, h.contractA), mustParse(t, h.svcMDR), -1)
				at.SetLineUnits(repeat, 2, etPeriodDay)
				zeroFirst = func() { at.SetUnits(mustParse(t, h.contractA), mustParse(t, h.svcMDR), 0, etPeriodDay) }
				zeroRepeat = func() { at.SetLineUnits(repeat, 0, etPeriodDay) }
			default:
				cw := h.sim.ConnectWise()
				first := cw.Additions(mustParse(t, h.contractA))
				repeat := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcMDR), Quantity: 2})
				zeroFirst = func() {
					for _, a := range first {
						if a.ProductID == mustParse(t, h.svcMDR) {
							cw.SetQuantity(a.ID, 0)
						}
					}
				}
				zeroRepeat = func() { cw.SetQuantity(repeat, 0) }
			}
			want = fmt.Sprintf("service:cust-a/%s/%s=5", h.contractA, h.svcMDR)
			res := h.sync(PassOptions{})
			if got := orphanKeys(res.Plan); got != want || !res.Plan.Unmapped.Orphaned[0].Read {
				t.Errorf("pass with MDR on the contract twice: orphaned %q, want %q as read", got, want)
			}
			if res.Run.Failed != 0 {
				t.Errorf("pass with MDR on the contract twice = %+v, want nothing failed (MDR is not written)", res.Run)
			}
			zeroFirst()
			want = fmt.Sprintf("service:cust-a/%s/%s=2", h.contractA, h.svcMDR)
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != want {
				t.Errorf("pass with MDR's first line at 0: orphaned %q, want %q (the second bills)", got, want)
			}
			zeroRepeat()
			if got := orphanKeys(h.sync(PassOptions{}).Plan); got != "" {
				t.Errorf("pass with both MDR lines at 0: orphaned %q, want none", got)
			}
		})
	}
}

// TestEngineSystems_orphanedLinesRenewalPair: the pass reads the lines of
// the contract of a customer's renewal pair (contract_id,
// next_contract_id) in force at the effective date alone; an orphaned
// line on the other one, which psa-syncd set while that one was in force
// (a renewal postponed in the PSA after it took over), is read too
// (Autotask, ConnectWise), so that a line zeroed there by hand leaves the
// list as on the contract read, rather than staying listed until cleared.
func TestEngineSystems_orphanedLinesRenewalPair(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
			// Acme's contract A ended on 31 October; its renewal R
			// bills from 1 November.
			h.setContractEnd(h.contractA, day(time.October, 31))
			a, _ := h.doc.Customer("file", "cust-a")
			renewal := h.moveTo("cust-a", "Acme Managed Services 2027")
			h.setContractStart(renewal, day(time.November, 1))
			a.ContractID, a.NextContractID = h.contractA, renewal
			h.doc.PutCustomer(a)
			rows := []string{"cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2"}
			h.syncAt(etNow, rows...)
			h.wantUnits(renewal, h.svcMDR, 3)

			// The renewal is postponed in the PSA to 1 December, and A
			// extended to 30 November: the next day's pass bills A
			// again, and leaves R's lines as they are.
			h.setContractEnd(h.contractA, day(time.November, 30))
			h.setContractStart(renewal, day(time.December, 1))
			next := etNow.Add(25 * time.Hour)
			h.syncAt(next, rows...)
			h.wantUnits(h.contractA, h.svcMDR, 3)

			h.doc.DeleteProduct("file", "MDR")
			want := fmt.Sprintf("service:cust-a/%s/%s=3 service:cust-a/%s/%s=3 service:cust-b/%s/%s=2", h.contractA, h.svcMDR, renewal, h.svcMDR, h.contractB, h.svcMDR)
			res := h.syncAt(next, rows...)
			if got := orphanKeys(res.Plan); got != want {
				t.Fatalf("pass after MDR's mapping was removed: orphaned %q, want %q", got, want)
			}
			for _, l := range res.Plan.Unmapped.Orphaned {
				if !l.Read {
					t.Errorf("orphaned line %s/%s not read, want every line read", l.ContractID, l.ServiceID)
				}
			}
			h.setByHand(renewal, h.svcMDR, 0)
			want = fmt.Sprintf("service:cust-a/%s/%s=3 service:cust-b/%s/%s=2", h.contractA, h.svcMDR, h.contractB, h.svcMDR)
			if got := orphanKeys(h.syncAt(next, rows...).Plan); got != want {
				t.Errorf("pass after R's MDR line was zeroed by hand: orphaned %q, want %q", got, want)
			}
		})
	}
}

// TestEngineSystems_orphanedLinesCustomerFailed: a customer whose pass
// fails (here its mapping names another company than its contract's) has
// its contract left unread: its orphaned lines keep the last read's
// verdict for that pass. A line zeroed by hand since it was listed
// (Autotask, ConnectWise: as the PSA's read showed it; Kaseya BMS: cleared
// as zeroed) does not come back to the list and the gauge; one still
// listed stays, at the units last read, until the contract reads again.
func TestEngineSystems_orphanedLinesCustomerFailed(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			rows := []string{"cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2"}
			h.syncAt(etNow, rows...)
			stored := func() string {
				t.Helper()
				var rep UnmappedReport
				if _, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
					t.Fatal(err)
				}
				return orphanKeys(&Plan{Unmapped: rep.Unmapped})
			}

			// MDR's product mapping is removed: both MDR lines are
			// listed. The operator zeroes cust-a's.
			h.doc.DeleteProduct("file", "MDR")
			lineA := fmt.Sprintf("service:cust-a/%s/%s=3", h.contractA, h.svcMDR)
			lineB := fmt.Sprintf("service:cust-b/%s/%s=2", h.contractB, h.svcMDR)
			if got := orphanKeys(h.syncAt(etNow, rows...).Plan); got != lineA+" "+lineB {
				t.Fatalf("pass after MDR's mapping was removed: orphaned %q, want %q", got, lineA+" "+lineB)
			}
			if sys == psa.SystemKaseyaBMS {
				if _, err := h.engine().ClearOrphans(h.contractA, h.svcMDR, "set to 0", true); err != nil {
					t.Fatal(err)
				}
			} else {
				h.setByHand(h.contractA, h.svcMDR, 0)
			}
			if got := orphanKeys(h.syncAt(etNow, rows...).Plan); got != lineB {
				t.Fatalf("pass after cust-a's line was zeroed: orphaned %q, want %q", got, lineB)
			}

			// cust-a's pass fails, then cust-b's too: neither list
			// changes.
			a, _ := h.doc.Customer("file", "cust-a")
			b, _ := h.doc.Customer("file", "cust-b")
			failed := a
			failed.CompanyID = b.CompanyID
			h.doc.PutCustomer(failed)
			res := h.syncAt(etNow, rows...)
			if cs := h.status("cust-a"); cs.Result != state.CustomerFailed {
				t.Fatalf("cust-a = %s (%q), want failed", cs.Result, cs.Error)
			}
			if got := orphanKeys(res.Plan); got != lineB || stored() != lineB || h.orphanedGauge(OrphanService) != 1 {
				t.Errorf("pass in which cust-a failed: orphaned %q (stored %q, gauge %v), want %q (stored alike, gauge 1)", got, stored(), h.orphanedGauge(OrphanService), lineB)
			}
			h.doc.PutCustomer(a)
			failedB := b
			failedB.CompanyID = a.CompanyID
			h.doc.PutCustomer(failedB)
			res = h.syncAt(etNow, rows...)
			if cs := h.status("cust-b"); cs.Result != state.CustomerFailed {
				t.Fatalf("cust-b = %s (%q), want failed", cs.Result, cs.Error)
			}
			if got := orphanKeys(res.Plan); got != lineB || h.orphanedGauge(OrphanService) != 1 {
				t.Errorf("pass in which cust-b failed: orphaned %q (gauge %v), want %q (gauge 1)", got, h.orphanedGauge(OrphanService), lineB)
			}
			h.doc.PutCustomer(b)
			if got := orphanKeys(h.syncAt(etNow, rows...).Plan); got != lineB {
				t.Errorf("pass once both succeed: orphaned %q, want %q", got, lineB)
			}
		})
	}
}

// TestEngineSystems_orphanClearKeepsANewerList: an instance that lost the
// leadership before it noticed clears an orphaned line while the instance
// that took over runs a pass, which stores a newer list of unmapped usage
// (a product used for the first time) between the clear's read of the
// list and its write. The clear stored the older list minus the cleared
// line over it: the new unmapped product was hidden from GET
// /api/v1/unmapped, the status page and psa_sync_unmapped until the next
// pass. The newer list is kept, minus the cleared line.
func TestEngineSystems_orphanClearKeepsANewerList(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxDecreasePercent = 0
	h.orphanMDR()
	e := h.engine()
	e.clearRead = func() {
		// The other instance's pass.
		h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2", "cust-a,Acme,NEWPROD,4")
		h.sync(PassOptions{})
	}
	done, err := e.ClearOrphans(h.contractA, h.svcMDR, "jane: zeroed in the PSA", false)
	if err != nil || len(done) != 1 {
		t.Fatalf("ClearOrphans = %+v, %v; want cust-a's MDR line", done, err)
	}
	var rep UnmappedReport
	if _, err := h.db.Snapshot(SnapshotUnmapped, &rep); err != nil {
		t.Fatal(err)
	}
	var products []string
	for _, p := range rep.Unmapped.Products {
		products = append(products, p.Product)
	}
	lineB := fmt.Sprintf("service:cust-b/%s/%s=2", h.contractB, h.svcMDR)
	if got := orphanKeys(&Plan{Unmapped: rep.Unmapped}); got != lineB || !slices.Contains(products, "NEWPROD") {
		t.Errorf("stored after the clear: orphaned %q, unmapped products %q; want %q and NEWPROD (the newer pass's list, minus the cleared line)",
			got, products, lineB)
	}
	if g := testutil.ToFloat64(h.m.Unmapped.WithLabelValues("product")); g != float64(len(products)) {
		t.Errorf("psa_sync_unmapped{kind=product} = %v after the clear, want %d (MDR and NEWPROD)", g, len(products))
	}
}

// TestEngineSystems_orphanClearKeepsAForgottenClear: while an instance
// that lost the leadership before it noticed clears one orphaned line, the
// instance that took over runs a pass that maps another, cleared earlier,
// again, and so forgets its clear. The clear stored the cleared lines it
// had read plus its own over that: the forgotten clear came back, and once
// the mapping was removed again the line, still billing the units
// psa-syncd set, was not listed as orphaned. The pass's forgetting is
// kept.
func TestEngineSystems_orphanClearKeepsAForgottenClear(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxDecreasePercent = 0
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2", "cust-b,Globex,CIXA-MSP,7")
	h.sync(PassOptions{})
	mdr, _ := h.doc.Product("file", "MDR")
	h.doc.DeleteProduct("file", "MDR")
	h.sync(PassOptions{})
	if _, err := h.engine().ClearOrphans(h.contractA, h.svcMDR, "zeroed", false); err != nil {
		t.Fatal(err)
	}
	e := h.engine()
	e.clearRead = func() {
		// The other instance's pass, with MDR mapped again: it plans
		// cust-a's MDR line and forgets its clear.
		h.doc.PutProduct(mdr)
		h.sync(PassOptions{})
	}
	if _, err := e.ClearOrphans(h.contractB, h.svcMDR, "zeroed", false); err != nil {
		t.Fatal(err)
	}
	h.doc.DeleteProduct("file", "MDR")
	lineA := fmt.Sprintf("service:cust-a/%s/%s=3", h.contractA, h.svcMDR)
	if got := orphanKeys(h.sync(PassOptions{}).Plan); !strings.Contains(got, lineA) {
		t.Errorf("pass after MDR was removed again: orphaned %q, want cust-a's MDR line %q listed (its clear was forgotten when MDR was mapped again)", got, lineA)
	}
}
