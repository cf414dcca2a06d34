package usage

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// TestEngine_Sync_duplicateRows: a usage file's row pasted twice was added
// up with itself, and the customer billed twice its usage. By default the
// customer now fails, naming the rows, its line left as it was; the other
// customers are synced.
func TestEngine_Sync_duplicateRows(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractB, h.svcIntercept, 6, etPeriodDay)
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP,40",
		"cust-b,Globex,CIXA-MSP,6",
		"cust-b,Globex,CIXA-MSP,6", // pasted again
	)
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 6) // not 12
	if cs := h.status("cust-b"); cs.Result != state.CustomerFailed ||
		!strings.Contains(cs.Error, `customer "cust-b" has 2 rows of product "CIXA-MSP" (usage.csv:3, usage.csv:4), which would add up to 12`) {
		t.Errorf("status of cust-b = %+v, want failed naming its two rows", cs)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status of cust-a = %+v, want succeeded", cs)
	}
	if res.Run.Updated != 1 || res.Run.Failed != 1 {
		t.Errorf("run = %+v, want 1 updated and 1 failed", res.Run)
	}
}
