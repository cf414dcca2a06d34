package usage

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// A mapped service made inactive in the PSA (ConnectWise takes a change
// of an addition of an inactive catalog item; Autotask refuses the write
// only when it is sent): at the next day's read of the mapped services,
// its lines fail before anything is written, in the plan too, with an
// error and a hint naming the service and the product mappings to change;
// the customer's other lines and the other customers are written. Made
// active again, the service is read again at the next pass (not a day
// later), which writes its lines.
func TestEngineSystems_inactiveServiceLinesFailBeforeWriting(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			// A process of its own per pass: what it knows of the
			// services comes from the state database.
			engineAt := func(at time.Time) *Engine { return h.engineAt(at, &ContractTerms{}) }
			setActive := func(active bool) {
				if sys == psa.SystemAutotask {
					h.sim.Autotask().SetServiceActive(mustParse(t, h.svcIntercept), active)
				} else {
					h.sim.ConnectWise().SetCatalogItemInactive(mustParse(t, h.svcIntercept), !active)
				}
			}
			syncAt := func(at time.Time) *Result {
				t.Helper()
				res, err := engineAt(at).Sync(t.Context(), h.doc, PassOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,2")
			if res := syncAt(etNow); res.Run.Result != state.RunSuccess {
				t.Fatalf("first pass = %+v, want success", res.Run)
			}
			setActive(false)
			h.writeUsage("cust-a,Acme,CIXA-MSP,6", "cust-a,Acme,MDR,4", "cust-b,Globex,CIXA-MSP,2")
			nextDay := etNow.Add(contractCheckTTL + time.Hour)

			wantErr := fmt.Sprintf("service %s (\"Sophos Intercept X Advanced\") is inactive in %s, so nothing was written to its line on contract %s",
				h.svcIntercept, systemName(sys), h.contractA)
			wantHint := fmt.Sprintf(`psa_product_mapping with service_id = %q: products CIXA-MSP, CIXA-SRV`, h.svcIntercept)
			plan, err := engineAt(nextDay).Plan(t.Context(), h.doc, PassOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionFailed || !strings.HasPrefix(c.Reason, wantErr) {
				t.Errorf("plan: cust-a's line of the inactive service = %+v, want failed with %q", c, wantErr)
			}

			h.sim.ResetRequests()
			syncAt(nextDay)
			if h.writes() != 1 {
				t.Errorf("pass after the deactivation: %d writes, want 1 (cust-a's MDR line)", h.writes())
			}
			h.wantUnits(h.contractA, h.svcIntercept, 5)
			h.wantUnits(h.contractA, h.svcMDR, 4)
			cs := h.status("cust-a")
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, wantErr) || !strings.Contains(cs.Hint, wantHint) ||
				!strings.Contains(cs.Hint, "make it active again") {
				t.Errorf("cust-a = %s (%q, hint %q), want failed with %q and a hint naming %s", cs.Result, cs.Error, cs.Hint, wantErr, wantHint)
			}
			if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
				t.Errorf("cust-b (its line unchanged) = %s (%q), want a success", cs.Result, cs.Error)
			}

			// Active again: the next pass, the same day, writes the line.
			setActive(true)
			if res := syncAt(nextDay.Add(time.Hour)); res.Run.Result != state.RunSuccess {
				t.Errorf("pass after the reactivation = %+v, want success", res.Run)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 6)
		})
	}
}

// A ConnectWise catalog item made inactive an hour after the day's read of
// the mapped services: ConnectWise would take the change of its addition,
// so a pass that writes reads the services it writes again before the
// writes, and the line fails, nothing written; a pass that changes
// nothing reads none.
func TestEngineConnectWise_serviceMadeInactiveWithinTheDayIsNotWritten(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,2")
	if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want success", res.Run)
	}
	h.sim.ConnectWise().SetCatalogItemInactive(mustParse(t, h.svcIntercept), true)
	h.sim.ResetRequests()
	h.sync(PassOptions{})
	if n := len(h.sim.Requests()); n != 2 {
		t.Errorf("pass without changes: %d requests, want 2 (the two agreements' additions)", n)
	}
	h.writeUsage("cust-a,Acme,CIXA-MSP,6", "cust-a,Acme,MDR,4", "cust-b,Globex,CIXA-MSP,2")
	h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 5)
	h.wantUnits(h.contractA, h.svcMDR, 4)
	cs := h.status("cust-a")
	wantErr := fmt.Sprintf("service %s (\"Sophos Intercept X Advanced\") is inactive in ConnectWise, so nothing was written to its line on contract %s",
		h.svcIntercept, h.contractA)
	if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, wantErr) {
		t.Errorf("cust-a = %s (%q), want failed with %q", cs.Result, cs.Error, wantErr)
	}
}
