package usage

import (
	"net/http"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// The first Autotask pass of a day reads the mapped services in bulk
// (checkServices) before it writes: lines new on their contracts take
// their catalog price from that read, and no service is read alone
// (GET /Services/{id}) for them.
func TestEngineAutotask_newLinesTakeThePricesOfTheDailyServiceRead(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,2")
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess || res.Run.Updated != 3 {
		t.Fatalf("first pass = %+v, want success with 3 lines written", res.Run)
	}
	queries := 0
	for _, r := range h.sim.Requests() {
		dir, last := path.Split(r.Path)
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(dir, "/Services/") && last != "entityInformation":
			t.Errorf("a new line's service was read alone: %s %s", r.Method, r.Path)
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/Services/query"):
			queries++
		}
	}
	if queries != 1 {
		t.Errorf("Services queries = %d, want 1 (the day's read of the mapped services)", queries)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 5)
	h.wantUnits(h.contractB, h.svcIntercept, 2)
	h.wantUnits(h.contractA, h.svcMDR, 3)
}

// A line already at its usage on a service made inactive in the PSA has
// nothing to write, so no write fails for it, yet it goes on invoicing:
// the pass lists it (Unmapped.InactiveServices, with the changed lines of
// the service, which fail), says so in its reason and counts it in
// psa_sync_lines_on_inactive_services, and stops once the service is
// active again.
func TestEngineSystems_unchangedLinesOfAnInactiveServiceAreReported(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			syncAt := func(at time.Time, plan bool) *Result {
				t.Helper()
				e := h.engineAt(at, &h.terms)
				if plan {
					p, err := e.Plan(t.Context(), h.doc, PassOptions{})
					if err != nil {
						t.Fatal(err)
					}
					return &Result{Plan: p}
				}
				res, err := e.Sync(t.Context(), h.doc, PassOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			setActive := func(active bool) {
				switch sys {
				case psa.SystemAutotask:
					h.sim.Autotask().SetServiceActive(mustParse(t, h.svcIntercept), active)
				case psa.SystemConnectWise:
					h.sim.ConnectWise().SetCatalogItemInactive(mustParse(t, h.svcIntercept), !active)
				default:
					h.sim.KaseyaBMS().SetServiceActive(int(mustParse(t, h.svcIntercept)), active)
				}
			}
			gauge := func() float64 { return testutil.ToFloat64(h.m.LinesOnInactiveServices) }

			h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,2")
			if res := syncAt(etNow, false); res.Run.Result != state.RunSuccess || len(res.Plan.Unmapped.InactiveServices) != 0 || gauge() != 0 {
				t.Fatalf("first pass = %+v, inactive %+v, gauge %v; want success and none", res.Run, res.Plan.Unmapped.InactiveServices, gauge())
			}
			setActive(false)
			// cust-a's lines stay as they are; cust-b's Intercept line is
			// to change, and fails.
			h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,4")
			nextDay := etNow.Add(contractCheckTTL + time.Hour)
			want := []InactiveServiceLine{
				{CustomerID: "cust-a", CustomerName: "Acme", ContractID: h.contractA, ServiceID: h.svcIntercept, ServiceName: "Sophos Intercept X Advanced", Quantity: 5},
				{CustomerID: "cust-b", CustomerName: "Globex", ContractID: h.contractB, ServiceID: h.svcIntercept, ServiceName: "Sophos Intercept X Advanced", Quantity: 2, Failed: true},
			}
			wantReason := "is inactive in " + systemName(sys) + ", yet this line goes on invoicing 5 units"
			for _, plan := range []bool{true, false} {
				res := syncAt(nextDay, plan)
				if got := res.Plan.Unmapped.InactiveServices; !slices.Equal(got, want) {
					t.Errorf("plan %v: inactive service lines = %+v, want %+v", plan, got, want)
				}
				if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionUnchanged || !strings.Contains(c.Reason, wantReason) {
					t.Errorf("plan %v: cust-a's line = %+v, want unchanged with %q in its reason", plan, c, wantReason)
				}
			}
			if gauge() != 2 {
				t.Errorf("psa_sync_lines_on_inactive_services = %v, want 2", gauge())
			}
			// A pass for cust-b alone keeps cust-a's line as the last
			// pass found it.
			if _, err := h.engineAt(nextDay, &h.terms).Sync(t.Context(), h.doc, PassOptions{Customer: "cust-b"}); err != nil {
				t.Fatal(err)
			}
			if gauge() != 2 {
				t.Errorf("after a pass for cust-b alone: psa_sync_lines_on_inactive_services = %v, want 2", gauge())
			}
			h.wantUnits(h.contractA, h.svcIntercept, 5)
			h.wantUnits(h.contractB, h.svcIntercept, 2)

			setActive(true)
			if res := syncAt(nextDay.Add(time.Hour), false); len(res.Plan.Unmapped.InactiveServices) != 0 || gauge() != 0 {
				t.Errorf("pass after the service is active again: inactive %+v, gauge %v; want none", res.Plan.Unmapped.InactiveServices, gauge())
			}
			h.wantUnits(h.contractB, h.svcIntercept, 4)
		})
	}
}
