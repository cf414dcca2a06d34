package usage

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// A service made inactive in the PSA while mapped: the PSA refuses each
// write of it, and the customer's hint names the product mapping and the
// service to change, not only the PSA's refusal. (ConnectWise takes
// writes of an inactive catalog item.)
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
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, want) || !strings.Contains(cs.Hint, "service "+h.svcIntercept+" itself") {
				t.Errorf("cust-a = %s (%q, hint %q), want failed with a hint naming %s", cs.Result, cs.Error, cs.Hint, want)
			}
		})
	}
}
