package usage

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// addService adds a service (an Autotask service, a ConnectWise catalog
// item, a Kaseya BMS service) to the harness's simulator.
func (h *sysHarness) addService(name string, price float64) string {
	switch h.system {
	case psa.SystemAutotask:
		return etID(h.sim.Autotask().AddService(name, price))
	case psa.SystemConnectWise:
		return etID(h.sim.ConnectWise().AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: name, Price: price}))
	default:
		return strconv.Itoa(h.sim.KaseyaBMS().AddService(name, price))
	}
}

// deleteService deletes a service from the harness's simulator, as an
// operator who removes it from the PSA does.
func (h *sysHarness) deleteService(id string) {
	h.t.Helper()
	switch h.system {
	case psa.SystemAutotask:
		h.sim.Autotask().DeleteService(mustParse(h.t, id))
	case psa.SystemConnectWise:
		h.sim.ConnectWise().DeleteCatalogItem(mustParse(h.t, id))
	default:
		h.sim.KaseyaBMS().DeleteService(int(mustParse(h.t, id)))
	}
}

// repoint adds a new service and points the file source's product
// mapping of product to it, as an apply that changes its service_id does;
// it returns the new service's ID.
func (h *sysHarness) repoint(product, name string, price float64) string {
	svc := h.addService(name, price)
	h.doc.PutProduct(export.ProductMapping{Source: "file", Product: product, ServiceID: svc, ServiceName: name, SyncEnabled: true})
	return svc
}

// TestEngineSystems_repointedProductNotBilledTwice: the product mapping of
// MDR is re-pointed from the PSA service it billed as to a new one
// (service_id changed), while the customers' lines of the old service that
// psa-syncd set above 0 still bill: psa-syncd no longer writes a service no
// product mapping names, so adding the new service's line would put the
// usage on the invoice twice. On every PSA, the plan and the pass hold the
// new lines (HoldPreviousService), naming the old service, its units and
// the way out; a blanket approval does not release them. Where the PSA's
// read shows the old line at 0 (Autotask, ConnectWise: the operator zeroed
// it by hand), the new line is added without an approval; on Kaseya BMS,
// whose lines cannot be read, an approval of the line adds it. Once
// written, the new line's rises are never held again.
func TestEngineSystems_repointedProductNotBilledTwice(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(3, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2")

			// MDR is re-pointed to a new PSA service.
			svcNew := h.repoint("MDR", "Sophos MDR Complete", 11)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2")

			approve := fmt.Sprintf("sync --approve --customer cust-a --service %s --units 3 --period 2026-11", svcNew)
			plan := h.plan()
			c := sysFindChange(plan, svcNew)
			if c == nil || c.Action != ActionHeld || c.Hold() != HoldPreviousService || !c.Approvable() ||
				!strings.Contains(c.Reason, "psa-syncd set service "+h.svcMDR+" to 3 units on contract "+h.contractA+" for this customer from 2026-11-01 (run ") ||
				!strings.Contains(c.Reason, "no product mapping of usage source file names service "+h.svcMDR) ||
				!strings.Contains(c.Reason, "set the line of service "+h.svcMDR+" on contract "+h.contractA+" to 0") || !strings.Contains(c.Reason, approve) {
				t.Errorf("plan's new MDR change = %+v, want held (%s) naming the 3 units of %s on %s and %q", c, HoldPreviousService, h.svcMDR, h.contractA, approve)
			}
			if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionUnchanged {
				t.Errorf("plan's Intercept change = %+v, want unchanged", c)
			}

			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			if res.Run.Held != 2 || res.Run.Updated != 0 || h.writes() != 0 {
				t.Errorf("pass after the re-pointing = %+v (%d writes), want the 2 new lines held", res.Run, h.writes())
			}
			if got, ok := h.units(h.contractA, svcNew); ok && got != 0 {
				t.Errorf("units of the new service on %s = %d, want no line: the old service still bills 3", h.contractA, got)
			}
			h.wantUnits(h.contractA, h.svcMDR, 3)
			if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, "product mapping") || !strings.Contains(cs.Hint, approve) {
				t.Errorf("status = %+v, want held with a hint naming the product mapping and %q", cs, approve)
			}

			h.wantBlanketApprovalRefused()

			// The operator sets cust-a's old line to 0 by hand.
			h.setByHand(h.contractA, h.svcMDR, 0)
			res = h.sync(PassOptions{})
			if sys == psa.SystemKaseyaBMS {
				// Kaseya BMS lines cannot be read: the ledger still says 3.
				if res.Run.Held != 2 || res.Run.Updated != 0 {
					t.Errorf("pass after the old line was zeroed = %+v, want both still held (Kaseya BMS cannot read it)", res.Run)
				}
				if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svcNew}); res.Run.Held != 0 || res.Run.Updated != 1 {
					t.Errorf("approval of the line = %+v, want it added", res.Run)
				}
			} else if res.Run.Held != 1 || res.Run.Updated != 1 {
				t.Errorf("pass after the old line was zeroed = %+v, want cust-a's new line added, cust-b's held", res.Run)
			}
			h.wantUnits(h.contractA, svcNew, 3)
			h.wantUnits(h.contractB, h.svcMDR, 2)

			// A rise of the new line psa-syncd wrote is not held.
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,4", "cust-b,Globex,MDR,2")
			if res := h.sync(PassOptions{}); res.Run.Updated != 1 || res.Run.Held != 1 {
				t.Errorf("pass with cust-a's rise = %+v, want 1 updated (cust-a) and 1 held (cust-b)", res.Run)
			}
			h.wantUnits(h.contractA, svcNew, 4)
		})
	}
}

// TestEngineSystems_repointedProductStillMappedService: a product re-pointed
// to a new service while another product still maps the old one is not
// held: psa-syncd goes on writing the old service's line (from the other
// product's usage), so nothing bills twice.
func TestEngineSystems_repointedProductStillMappedService(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(1, "cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,CIXA-SRV,2")
			svcNew := h.repoint("CIXA-SRV", "Sophos Intercept X for Server", 6)
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 2 {
				t.Errorf("pass after the re-pointing = %+v, want 2 updated (Intercept 42 -> 40, the new line 2)", res.Run)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 40)
			h.wantUnits(h.contractA, svcNew, 2)
		})
	}
}

// TestEngineSystems_removedProductHoldsNoRise: a product mapping removed
// outright leaves its service's line billing, and holds no rise of the
// customer's other lines, which psa-syncd wrote before.
func TestEngineSystems_removedProductHoldsNoRise(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(2, "cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,MDR,3")
			h.doc.DeleteProduct("file", "MDR")
			h.writeUsage("cust-a,Acme,CIXA-MSP,41", "cust-a,Acme,MDR,3")
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("pass after the removal = %+v, want Intercept raised, nothing held", res.Run)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 41)
			h.wantUnits(h.contractA, h.svcMDR, 3)
		})
	}
}

// TestEngineSystems_repointedBackNotBilledTwice: MDR is re-pointed to a new
// service, the operator zeroes the old service's line by hand and approves
// the new one, which psa-syncd adds; then the product mapping is pointed
// back to the old service. The new service's line, which no mapping names
// now, still bills the 3 units psa-syncd set, and raising the old line
// from the 0 the operator set would bill the usage twice: on Autotask and
// ConnectWise, which read the old line at 0, the plan and the pass hold the
// raise (HoldPreviousService) naming the new service's line, and a blanket
// approval does not release it; once that line is zeroed, an approval of
// the line writes it. (Kaseya BMS, whose lines cannot be read: see
// TestEngineKaseyaBMS_repointedBackHeld.)
func TestEngineSystems_repointedBackNotBilledTwice(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(2, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3")
			svcNew := h.repoint("MDR", "Sophos MDR Complete", 11)
			h.setByHand(h.contractA, h.svcMDR, 0)
			if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svcNew}); res.Run.Updated != 1 {
				t.Fatalf("pass after the re-pointing = %+v, want the new line added", res.Run)
			}
			h.wantUnits(h.contractA, svcNew, 3)

			// The product mapping is pointed back to the old service.
			h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "MDR", ServiceID: h.svcMDR, ServiceName: "Sophos MDR", SyncEnabled: true})
			approve := fmt.Sprintf("sync --approve --customer cust-a --service %s --units 3 --period 2026-11", h.svcMDR)
			plan := h.plan()
			c := sysFindChange(plan, h.svcMDR)
			if c == nil || c.Action != ActionHeld || c.Hold() != HoldPreviousService || !c.Approvable() ||
				!strings.Contains(c.Reason, "psa-syncd set service "+svcNew+" to 3 units on contract "+h.contractA+" for this customer from 2026-11-01 (run ") ||
				!strings.Contains(c.Reason, "raising this line from 0") ||
				!strings.Contains(c.Reason, "set the line of service "+svcNew+" on contract "+h.contractA+" to 0") || !strings.Contains(c.Reason, approve) {
				t.Errorf("plan's MDR change after pointing back = %+v, want held (%s) naming the 3 units of %s and %q", c, HoldPreviousService, svcNew, approve)
			}
			h.sim.ResetRequests()
			if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 0 || h.writes() != 0 {
				t.Errorf("pass after pointing back = %+v (%d writes), want the old line held", res.Run, h.writes())
			}
			h.wantUnits(h.contractA, h.svcMDR, 0)
			h.wantUnits(h.contractA, svcNew, 3)
			if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, "product mapping") || !strings.Contains(cs.Hint, approve) {
				t.Errorf("status = %+v, want held with a hint naming the product mapping and %q", cs, approve)
			}
			h.wantBlanketApprovalRefused()

			// The operator zeroes the new service's line and approves.
			h.setByHand(h.contractA, svcNew, 0)
			if res := h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: h.svcMDR}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("approval of the line = %+v, want it written", res.Run)
			}
			h.wantUnits(h.contractA, h.svcMDR, 3)
			// Its rises are not held again.
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,4")
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("rise after the approval = %+v, want 1 updated", res.Run)
			}
			h.wantUnits(h.contractA, h.svcMDR, 4)
		})
	}
}

// TestEngineSystems_repointedAndMovedReleased: one apply maps cust-a to a
// new contract and re-points MDR to a new service. The pass holds the
// Intercept line on the new contract (HoldMoved) and the new service's
// line there (HoldPreviousService, for the MDR line on the old contract).
// Once the old contract ends (Autotask, Kaseya BMS: its record as read
// now) or its lines are set to 0 by hand (ConnectWise), the next pass
// writes both lines, as the reasons say, with no approval: the read of
// the contract the customer left that releases the one releases the
// other, where the terms psa-syncd kept of it still said it runs.
func TestEngineSystems_repointedAndMovedReleased(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(2, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3")
			svcNew := h.repoint("MDR", "Sophos MDR Complete", 11)
			moved := h.moveTo("cust-a", "Acme Other Services")
			plan := h.plan()
			if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Hold() != HoldMoved {
				t.Errorf("plan's Intercept change = %+v, want held (%s)", c, HoldMoved)
			}
			if c := sysFindChange(plan, svcNew); c == nil || c.Hold() != HoldPreviousService ||
				!strings.Contains(c.Reason, "(or let a later pass add it by itself: one that reads contract "+h.contractA+" ended before the effective date") {
				t.Errorf("plan's new MDR change = %+v, want held (%s), saying that a read of contract %s releases it", c, HoldPreviousService, h.contractA)
			}
			if res := h.sync(PassOptions{}); res.Run.Held != 2 || res.Run.Updated != 0 {
				t.Fatalf("pass after the apply = %+v, want both lines held", res.Run)
			}

			ended := time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC)
			switch sys {
			case psa.SystemAutotask:
				h.sim.Autotask().SetContractEndDate(mustParse(t, h.contractA), ended)
			case psa.SystemKaseyaBMS:
				h.sim.KaseyaBMS().SetContractEndDate(int(mustParse(t, h.contractA)), ended)
			default:
				h.setByHand(h.contractA, h.svcIntercept, 0)
				h.setByHand(h.contractA, h.svcMDR, 0)
			}
			if res := h.sync(PassOptions{}); res.Run.Held != 0 || res.Run.Updated != 2 {
				t.Errorf("pass once contract %s no longer bills = %+v, want both lines written", h.contractA, res.Run)
			}
			h.wantUnits(moved, h.svcIntercept, 42)
			h.wantUnits(moved, svcNew, 3)
		})
	}
}

// TestEngineSystems_repointedHeldWhenReadMissesOldLine: MDR is re-pointed
// while the old service's line bills 3 units, and a pass's read of the
// contract answers without any line (a security level or role that cannot
// see them, a cache's old page): that read does not say that the old line
// was zeroed or ended, as it does not for the Intercept line psa-syncd set
// (HoldVanished), so the new line stays held (HoldPreviousService), its
// reason saying why, and is not added beside the 3 units still billed.
func TestEngineSystems_repointedHeldWhenReadMissesOldLine(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(2, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3")
			svcNew := h.repoint("MDR", "Sophos MDR Complete", 11)
			if res := h.sync(PassOptions{}); res.Run.Held != 1 || res.Run.Updated != 0 {
				t.Fatalf("pass after the re-pointing = %+v, want the new line held", res.Run)
			}

			if sys == psa.SystemAutotask {
				h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceUnits/query", Status: http.StatusOK,
					Body: `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`, Times: 1})
			} else {
				h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/v4_6_release/apis/3.0/finance/agreements/" + h.contractA + "/additions",
					Status: http.StatusOK, Body: `[]`, Times: 1})
			}
			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			if res.Run.Updated != 0 || h.writes() != 0 {
				t.Errorf("pass whose read shows no line = %+v (%d writes), want nothing written", res.Run, h.writes())
			}
			if c := sysFindChange(res.Plan, svcNew); c == nil || c.Action != ActionHeld || c.Hold() != HoldPreviousService ||
				!strings.Contains(c.Reason, "read shows no line of service "+h.svcMDR+" on contract "+h.contractA) {
				t.Errorf("new MDR change = %+v, want held (%s), saying that the read shows no line of %s", c, HoldPreviousService, h.svcMDR)
			}
			h.wantUnits(h.contractA, h.svcMDR, 3)
			if got, ok := h.units(h.contractA, svcNew); ok && got != 0 {
				t.Errorf("units of the new service = %d, want no line: the old service still bills 3", got)
			}
		})
	}
}

// TestEngineSystems_repointedAndMovedOtherLineNotHeld: one apply maps
// cust-a to a new contract and re-points MDR to a new service; the
// operator sets the Intercept line on the old contract to 0, as its
// previous_contract hold asks, but not yet MDR's. The Intercept line on
// the new contract, which continues the one on the old contract, is
// written: MDR's old line, which still bills, bills MDR's usage, not
// Intercept's. The new MDR line stays held (HoldPreviousService).
func TestEngineSystems_repointedAndMovedOtherLineNotHeld(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.firstPass(2, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,3")
			svcNew := h.repoint("MDR", "Sophos MDR Complete", 11)
			moved := h.moveTo("cust-a", "Acme Other Services")
			if res := h.sync(PassOptions{}); res.Run.Held != 2 || res.Run.Updated != 0 {
				t.Fatalf("pass after the apply = %+v, want both lines held", res.Run)
			}

			h.setByHand(h.contractA, h.svcIntercept, 0)
			res := h.sync(PassOptions{})
			if res.Run.Held != 1 || res.Run.Updated != 1 {
				t.Errorf("pass once Intercept's old line reads 0 = %+v, want Intercept written, MDR held", res.Run)
			}
			if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionUpdate {
				t.Errorf("Intercept change = %+v, want written", c)
			}
			if c := sysFindChange(res.Plan, svcNew); c == nil || c.Hold() != HoldPreviousService {
				t.Errorf("new MDR change = %+v, want held (%s)", c, HoldPreviousService)
			}
			h.wantUnits(moved, h.svcIntercept, 42)
			if got, ok := h.units(moved, svcNew); ok && got != 0 {
				t.Errorf("units of the new MDR service = %d, want no line: the old line still bills 3", got)
			}
		})
	}
}

// TestEngineSystems_repointedAwayFromSyncOffService: CIXA-MSP and CIXA-SRV
// both map the Intercept service, CIXA-SRV with sync_enabled = false, so
// psa-syncd sets the Intercept line from CIXA-MSP alone. CIXA-MSP is
// re-pointed to a new service: only a mapping with sync off names
// Intercept now, psa-syncd no longer writes its line, which keeps the 42
// units and bills, so the new line is held (HoldPreviousService), its
// reason saying why, until the old line reads 0 (Autotask, ConnectWise) or
// an approval of the line (Kaseya BMS).
func TestEngineSystems_repointedAwayFromSyncOffService(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxDecreasePercent = 0
			h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-SRV", ServiceID: h.svcIntercept, ServiceName: "Sophos Intercept X Advanced", SyncEnabled: false})
			h.firstPass(1, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,CIXA-SRV,2")
			svcNew := h.repoint("CIXA-MSP", "Sophos Intercept X Advanced 2027", 5)
			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			if res.Run.Held != 1 || res.Run.Updated != 0 || h.writes() != 0 {
				t.Errorf("pass after the re-pointing = %+v (%d writes), want the new line held", res.Run, h.writes())
			}
			if c := sysFindChange(res.Plan, svcNew); c == nil || c.Hold() != HoldPreviousService ||
				!strings.Contains(c.Reason, "names service "+h.svcIntercept+" any more with sync_enabled on (only mappings with sync_enabled = false name it") {
				t.Errorf("new line's change = %+v, want held (%s), saying that only a mapping with sync off names %s", c, HoldPreviousService, h.svcIntercept)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			if got, ok := h.units(h.contractA, svcNew); ok && got != 0 {
				t.Errorf("units of the new service = %d, want no line: the old one still bills 42", got)
			}

			if sys == psa.SystemKaseyaBMS {
				res = h.sync(PassOptions{Approve: true, Customer: "cust-a", ApproveService: svcNew})
			} else {
				h.setByHand(h.contractA, h.svcIntercept, 0)
				res = h.sync(PassOptions{})
			}
			if res.Run.Held != 0 || res.Run.Updated != 1 {
				t.Errorf("pass once released = %+v, want the new line written", res.Run)
			}
			h.wantUnits(h.contractA, svcNew, 42)
		})
	}
}

// TestEngineKaseyaBMS_repointedWhileAwaitingReview: a post whose answer was
// lost awaits the operator's review (its intent open, nothing in the
// ledger) when its product mapping is re-pointed to a new service. The
// pass does not post the new service's line: the old post may have
// reached BMS, and once resolved as posted both lines would bill the
// usage. Resolved as posted, the new line is held as any re-pointed line;
// as not posted, the new line is posted.
func TestEngineKaseyaBMS_repointedWhileAwaitingReview(t *testing.T) {
	t.Parallel()
	for _, posted := range []bool{true, false} {
		t.Run(fmt.Sprint("posted=", posted), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS,
				psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: bmsServicesPath, DropAfterHandling: true, Times: 1}))
			h.pol.WriteConcurrency = 1 // the first post (Acme's MDR) loses its answer
			h.writeUsage("cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,10")
			h.sync(PassOptions{})
			open, _ := h.db.OpenIntents()
			if len(open) != 1 || open[0].ContractID != h.contractA || open[0].ServiceID != h.svcMDR {
				t.Fatalf("open intents = %+v, want the one whose answer was lost", open)
			}

			svcNew := h.repoint("MDR", "Sophos MDR Complete", 11)
			res := h.sync(PassOptions{})
			if n := len(bmsLines(h, h.contractA, svcNew)); n != 0 {
				t.Errorf("%d lines of the new service posted on %s while the post of %s awaits review, want none", n, h.contractA, h.svcMDR)
			}
			c := sysFindChange(res.Plan, svcNew)
			if c == nil || c.CustomerID != "cust-a" || c.Action != ActionFailed || !strings.Contains(c.Reason, "awaiting review") ||
				!strings.Contains(c.Reason, fmt.Sprintf("(intent %d)", open[0].ID)) {
				t.Errorf("change after the re-pointing = %+v, want failed, awaiting review of intent %d", c, open[0].ID)
			}
			// The hint names the old service, not with the new one's name.
			if cs := h.status("cust-a"); !strings.Contains(cs.Hint, fmt.Sprintf("check contract %s in Kaseya BMS for a line of service %s with 3 units", h.contractA, h.svcMDR)) {
				t.Errorf("status of cust-a = %+v, want the hint to check the line of service %s", cs, h.svcMDR)
			}

			if _, err := h.engine().ResolveIntent(open[0].ID, posted, "checked in BMS"); err != nil {
				t.Fatal(err)
			}
			res = h.sync(PassOptions{})
			c = sysFindChange(res.Plan, svcNew)
			n := len(bmsLines(h, h.contractA, svcNew))
			switch {
			case posted && (n != 0 || c == nil || c.Hold() != HoldPreviousService):
				t.Errorf("after resolving as posted: change = %+v, %d new lines, want held as re-pointed and none", c, n)
			case !posted && (n != 1 || c == nil || c.Action != ActionUpdate):
				t.Errorf("after resolving as not posted: change = %+v, %d new lines, want the new line posted", c, n)
			}
		})
	}
}
