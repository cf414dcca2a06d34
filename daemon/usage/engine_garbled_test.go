package usage

import (
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// garbage is what a proxy in front of a PSA might answer with a 200.
const garbage = "<html><body>upstream hiccup</body></html>"

// A garbled answer to the bulk read fails the customers with a clear error,
// writes nothing and leaves the state usable: once the PSA answers properly
// again, the next pass sets the right quantities.
func TestEngine_Sync_garbledReadAnswer(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etUnitsPath, Status: http.StatusOK, Body: garbage})

	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunFailure {
		t.Errorf("run = %+v, want failure", res.Run)
	}
	for _, id := range []string{"cust-a", "cust-b"} {
		cs := h.status(id)
		if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "decoding response") {
			t.Errorf("status of %s = %+v, want failed with a decoding error", id, cs)
		}
	}
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("%d adjustment posts after a garbled read, want 0", n)
	}

	h.sim.ClearFaults()
	res = h.sync(PassOptions{})
	if res.Run.Result != state.RunSuccess {
		t.Errorf("run after the PSA recovered = %+v, want success", res.Run)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 7)
}

// A 2xx answer to a line post that cannot be decoded means BMS accepted the
// post: the intent stays open for review and the line is never posted again.
func TestEngineKaseyaBMS_garbledPostAnswerIsNotReposted(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.pol.WriteConcurrency = 1
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: bmsServicesPath, Status: http.StatusOK, Body: garbage, Times: 1})

	res := h.sync(PassOptions{})
	if res.Run.Result == state.RunSuccess {
		t.Errorf("run = %+v, want the customer held for review", res.Run)
	}
	open, err := h.db.OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].After != 42 {
		t.Fatalf("open intents = %+v, want the post whose answer was garbled", open)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, "psa-syncd resolve -intent") {
		t.Errorf("status of cust-a = %+v, want failed with the review hint", cs)
	}

	h.sim.ResetRequests()
	h.sync(PassOptions{})
	if n := h.writes(); n != 0 {
		t.Errorf("%d line posts after a garbled answer, want 0 until an operator resolves it", n)
	}
}
