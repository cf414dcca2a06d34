package usage

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// A service made inactive in the PSA while mapped, within the day (after
// the day's read of the services, or on Kaseya BMS, which that read leaves
// out): the PSA refuses each write of it; the service is read after the
// refusal, and the customer's hint says plainly that it is inactive and
// names the product mapping and the service to change, not only the PSA's
// refusal. (ConnectWise takes writes of an inactive catalog item: see
// TestEngineSystems_inactiveServiceLinesFailBeforeWriting.)
func TestEngineSystems_serviceDeactivatedHintNamesTheProductMapping(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.writeUsage("cust-a,Acme,CIXA-MSP,5")
			if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess {
				t.Fatalf("first pass = %+v, want success", res.Run)
			}
			if sys == psa.SystemAutotask {
				h.sim.Autotask().SetServiceActive(mustParse(t, h.svcIntercept), false)
			} else {
				h.sim.KaseyaBMS().SetServiceActive(int(mustParse(t, h.svcIntercept)), false)
			}
			h.writeUsage("cust-a,Acme,CIXA-MSP,6")
			h.sync(PassOptions{})
			cs := h.status("cust-a")
			want := `psa_product_mapping with service_id = "` + h.svcIntercept + `"`
			// Read after the refusal, the service is said to be inactive,
			// not guessed to be.
			inactive := `service ` + h.svcIntercept + ` ("Sophos Intercept X Advanced") is inactive in ` + systemName(sys)
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, want) || !strings.Contains(cs.Hint, inactive) {
				t.Errorf("cust-a = %s (%q, hint %q), want failed with a hint saying %q and naming %s", cs.Result, cs.Error, cs.Hint, inactive, want)
			}
			if sys == psa.SystemAutotask {
				// Kept as read after the refusal, the service's state
				// fails its lines before the next pass writes them.
				h.sim.ResetRequests()
				h.sync(PassOptions{})
				if n := h.writes(); n != 0 {
					t.Errorf("next pass: %d writes of the inactive service, want 0", n)
				}
			}
		})
	}
}
