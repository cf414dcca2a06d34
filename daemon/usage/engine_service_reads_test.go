package usage

import (
	"net/http"
	"path"
	"strings"
	"testing"

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
