package usage

import (
	"strings"
	"testing"
	"time"

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

// The hint of a refused line write goes by what psa-syncd read of the
// service: inactive (read at any time) says so; active says so only when
// read after the refusal (a read from the morning says nothing of it);
// otherwise it says that it could not tell.
func TestEngine_refusedLineHint(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	e := h.engine()
	cm, _ := h.doc.Customer("file", "cust-a")
	ve := &psa.ValidationError{System: psa.SystemAutotask, Messages: []string{"The contract period is closed."}}
	sys := e.be.System()
	tests := []struct {
		name    string
		setup   func()
		want    string
		wantNot string
	}{
		{"never read", func() {}, "could not read service 42 to tell whether it is inactive", "is active"},
		{"active, read in the morning", func() {
			e.terms.putService(sys, "42", serviceTerm{name: "MDR", active: true, readAt: etNow.Add(-time.Hour)})
		}, "could not read service 42", "is active"},
		{"active, read after the refusal", func() { e.refusedRead = map[string]bool{"42": true} },
			`service 42 ("MDR") is active in Autotask, so the refusal concerns the line or contract ` + cm.ContractID, "inactive"},
		{"inactive", func() {
			e.terms.putService(sys, "42", serviceTerm{name: "MDR", active: false, readAt: etNow})
		}, `service 42 ("MDR") is inactive in Autotask: if it is still sold, make it active again`, "could not"},
	}
	for _, tt := range tests {
		tt.setup()
		got := e.hint(ve, cm, "42")
		if !strings.Contains(got, tt.want) || strings.Contains(got, tt.wantNot) || !strings.Contains(got, "The contract period is closed.") {
			t.Errorf("%s: hint %q, want it to say %q (with the PSA's message) and not %q", tt.name, got, tt.want, tt.wantNot)
		}
	}
}
