package usage

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngineSystems_planAgreesWithPassOnAnIntentElsewhere: an intent of a
// pass that was killed an hour ago (longer than policies.settle_time) is
// open on the line of cust-a that its mappings name no more: the customer
// moved to another contract (which may be cust-b's now: swapped), or MDR's
// product mapping was re-pointed to a new service. Where the PSA reads
// lines, the pass's Reconcile settles it before the line that replaces it
// is decided: as done when the old line shows the write (the pass then
// holds the new line, since the old one still bills), as failed when it
// does not (the pass writes the new line); swapped, once it has set
// cust-b's line there. A plan, which reconciles
// nothing, says line by line what that pass does, and writes nothing.
func TestEngineSystems_planAgreesWithPassOnAnIntentElsewhere(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		for _, how := range []string{"moved", "swapped", "repointed"} {
			for _, applied := range []bool{true, false} {
				name := fmt.Sprintf("%s/%s/applied=%v", sys, how, applied)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					h := newSysHarness(t, sys)
					h.pol.MaxDecreasePercent = 0
					svc, product := h.svcIntercept, "CIXA-MSP"
					if how == "repointed" {
						svc, product = h.svcMDR, "MDR"
					}
					// psa-syncd set the line to 5, then to 0: the line
					// exists, and its ledger says 0.
					h.firstPass(1, "cust-a,Acme,"+product+",5")
					h.firstPass(1, "cust-a,Acme,"+product+",0")
					in, err := h.db.OpenIntent(state.Intent{RunID: 99, System: sys, Source: "file", CustomerID: "cust-a",
						ContractID: h.contractA, ServiceID: svc, Before: 0, After: 42, BeforeKnown: true, EffectiveDate: etPeriodDay,
						Created: etNow.Add(-time.Hour)})
					if err != nil {
						t.Fatal(err)
					}
					if applied {
						h.setByHand(h.contractA, svc, 42)
					}
					contract := h.contractA
					rows := []string{"cust-a,Acme," + product + ",42"}
					switch how {
					case "repointed":
						svc = h.repoint("MDR", "Managed Detection and Response 2", 9)
					default:
						contract = h.moveTo("cust-a", "Acme Other Services")
					}
					if how == "swapped" {
						// cust-b took cust-a's old contract over.
						a, _ := h.doc.Customer("file", "cust-a")
						b, _ := h.doc.Customer("file", "cust-b")
						b.CompanyID, b.ContractID = a.CompanyID, h.contractA
						h.doc.PutCustomer(b)
						rows = append(rows, "cust-b,Globex,CIXA-MSP,10")
					}
					h.writeUsage(rows...)

					h.sim.ResetRequests()
					plan := h.plan()
					if n := h.writes(); n != 0 {
						t.Fatalf("the plan wrote %d times", n)
					}
					if open, _ := h.db.OpenIntents(); len(open) != 1 || open[0].ID != in.ID {
						t.Fatalf("open intents after the plan = %+v, want intent %d still open", open, in.ID)
					}
					res := h.sync(PassOptions{})
					if open, _ := h.db.OpenIntents(); len(open) != 0 {
						t.Fatalf("open intents after the pass = %+v, want none", open)
					}
					// Swapped, the line is written once the pass has set
					// cust-b's line on the old contract (movedLine).
					want := ActionUpdate
					if applied && how != "swapped" {
						want = ActionHeld
					}
					if c := sysFindChange(res.Plan, svc); c == nil || c.ContractID != contract || c.Action != want {
						t.Fatalf("pass's change = %+v, want %s on %s", c, want, contract)
					}
					for _, pc := range res.Plan.Changes {
						got := sysFindChangeOf(plan, pc.CustomerID, pc.ServiceID)
						if got == nil || got.ContractID != pc.ContractID || got.Action != pc.Action || got.Hold() != pc.Hold() || got.Desired != pc.Desired {
							t.Errorf("plan's change = %+v,\nwant what the pass did: %+v", got, pc)
						}
					}
				})
			}
		}
	}
}

// TestEngineAutotask_planAgreesWithPassOnItsLineSettled: psa-syncd set the
// line to 42, then to 30; a pass killed an hour ago opened an intent to set
// it back to 42, and Autotask shows 42. The pass's Reconcile closes the
// intent as done, its ledger then says 30 -> 42, and the pass adjusts the
// line to the usage. A plan, which reconciles nothing, reads the same
// ledger as that pass: not "42 -> 30", which would hold the line as a read
// from before psa-syncd's last write (stale_read).
func TestEngineAutotask_planAgreesWithPassOnItsLineSettled(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxDecreasePercent = 0
	h.firstPass(1, "cust-a,Acme,CIXA-MSP,42")
	h.firstPass(1, "cust-a,Acme,CIXA-MSP,30")
	if _, err := h.db.OpenIntent(state.Intent{RunID: 99, System: h.system, Source: "file", CustomerID: "cust-a",
		ContractID: h.contractA, ServiceID: h.svcIntercept, Before: 30, After: 42, BeforeKnown: true, EffectiveDate: etPeriodDay,
		Created: etNow.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	h.setByHand(h.contractA, h.svcIntercept, 42)
	h.writeUsage("cust-a,Acme,CIXA-MSP,50")

	plan := h.plan()
	res := h.sync(PassOptions{})
	if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Desired != 50 {
		t.Fatalf("pass's change = %+v, want an update to 50", c)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 50)
	if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Desired != 50 {
		t.Errorf("plan's change = %+v, want an update to 50, as the pass did", c)
	}
}

// TestEngineSystems_hiddenLineSetToZeroNotAddedAgain: psa-syncd set
// cust-a's line to 5; a pass killed an hour ago opened an intent to set it
// to 0, and that write never arrived. The read cannot see the line (an
// Autotask security level, a ConnectWise security role, a cache serving an
// empty page). A line not shown is no proof of a write to 0: both PSAs
// keep a line set to 0. The pass's Reconcile does not close the intent as
// done, so the ledger still says 5, and the pass holds the line for an
// operator (line_missing) rather than add 42 next to the 5 that still
// bills (5 + 42). A plan, which reconciles nothing, says the same.
func TestEngineSystems_hiddenLineSetToZeroNotAddedAgain(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.firstPass(1, "cust-a,Acme,CIXA-MSP,5")
			in, err := h.db.OpenIntent(state.Intent{RunID: 99, System: h.system, Source: "file", CustomerID: "cust-a",
				ContractID: h.contractA, ServiceID: h.svcIntercept, Before: 5, After: 0, BeforeKnown: true, EffectiveDate: etPeriodDay,
				Created: etNow.Add(-time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if sys == psa.SystemConnectWise {
				h.sim.ConnectWise().HideAdditions(mustParse(t, h.contractA), true)
			} else {
				empty := `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`
				for _, path := range []string{"/ATServicesRest/V1.0/ContractServiceUnits/query", "/ATServicesRest/V1.0/ContractServices/query"} {
					h.sim.AddFault(psatest.Fault{Path: path, Status: http.StatusOK, Body: empty})
				}
			}
			h.writeUsage("cust-a,Acme,CIXA-MSP,42")

			plan := h.plan()
			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			if n := h.writes(); n != 0 {
				t.Errorf("the pass wrote %d times, want nothing written", n)
			}
			if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionHeld || c.Hold() != HoldVanished {
				t.Errorf("pass's change = %+v, want held (%s)", c, HoldVanished)
			}
			if got, _, _ := h.db.IntentByID(in.ID); got.State != state.IntentReview {
				t.Errorf("intent after the pass = %+v, want closed for review", got)
			}
			if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionHeld || c.Hold() != HoldVanished {
				t.Errorf("plan's change = %+v, want held (%s), as the pass did", c, HoldVanished)
			}
			if sys == psa.SystemConnectWise {
				h.sim.ConnectWise().HideAdditions(mustParse(t, h.contractA), false)
			} else {
				h.sim.ClearFaults()
			}
			h.wantUnits(h.contractA, h.svcIntercept, 5)
		})
	}
}

// TestEngineConnectWise_planAgreesWithPassOnItsLineSetToZeroLastMonth:
// psa-syncd added cust-a's addition of 5 last month; a pass killed an hour
// ago opened an intent, dated last month, to set it to 0, and the addition
// reads 0 at that date; someone then ended it at the end of that month, so
// this month's read shows no addition. The pass's Reconcile, reading at
// the intent's date, closes it as done, its ledger then says 5 -> 0, and
// the pass adds the line the usage wants: psa-syncd's last write left
// nothing to double. A plan, which reconciles nothing, reads the same
// ledger as that pass: not "0 -> 5", which would hold the line as one the
// read cannot see (line_missing).
func TestEngineConnectWise_planAgreesWithPassOnItsLineSetToZeroLastMonth(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	day := etPeriodDay.AddDate(0, -1, 0)
	if res := h.syncAt(etNow.AddDate(0, -1, 0), "cust-a,Acme,CIXA-MSP,5"); res.Run.Updated != 1 {
		t.Fatalf("first pass = %+v, want 1 updated", res.Run)
	}
	if _, err := h.db.OpenIntent(state.Intent{RunID: 99, System: h.system, Source: "file", CustomerID: "cust-a",
		ContractID: h.contractA, ServiceID: h.svcIntercept, Before: 5, After: 0, BeforeKnown: true, EffectiveDate: day,
		Created: etNow.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cw.SetAdditionsStayActive(true)
	for _, a := range cw.Additions(mustParse(t, h.contractA)) {
		cw.SetQuantity(a.ID, 0)
		cw.CancelAddition(a.ID, etPeriodDay.AddDate(0, 0, -1))
	}
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")

	plan := h.plan()
	res := h.sync(PassOptions{})
	if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Desired != 42 {
		t.Fatalf("pass's change = %+v, want the line added at 42", c)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Desired != 42 || c.Hold() != "" {
		t.Errorf("plan's change = %+v, want the line added at 42, as the pass did", c)
	}
}
