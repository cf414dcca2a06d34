package impact

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestContractsEnding: the contracts ending within the billing month of the
// effective date or the next, which `psa-syncd plan` lists, are a note of
// the report (the golden reports show one, TestBillingImpact_changes): the
// first 5, then how many more; those ended already are left to the
// figures not computed (the plan fails their customers), and a plan with
// none ending adds no note.
func TestContractsEnding(t *testing.T) {
	t.Parallel()
	end := time.Date(2026, time.December, 31, 0, 0, 0, 0, time.UTC)
	var prop usage.Plan
	prop.ContractsEnding = append(prop.ContractsEnding, usage.ContractEnding{Source: "sophos", CustomerID: "gone", ContractID: "99",
		EndDate: end.AddDate(0, -2, 0), When: usage.EndingEnded})
	for i := range 7 {
		prop.ContractsEnding = append(prop.ContractsEnding, usage.ContractEnding{Source: "sophos", CustomerID: fmt.Sprintf("c%d", i),
			CustomerName: fmt.Sprintf("Customer %d", i), ContractID: fmt.Sprint(100 + i), ContractName: "Managed", EndDate: end, When: usage.EndingNextMonth})
	}
	rep := &Report{}
	contractsEnding(rep, &prop)
	if len(rep.Notes) != 1 {
		t.Fatalf("notes = %q, want one", rep.Notes)
	}
	n := rep.Notes[0]
	for _, want := range []string{"Mapped contracts end within the billing month of the effective date or the next: ",
		"customer Customer 0 (c0) on contract Managed (100) ends 2026-12-31; ", "customer Customer 4 (c4) on contract Managed (104) ends 2026-12-31; and 2 more (see `psa-syncd plan`).",
		"next_contract_id"} {
		if !strings.Contains(n, want) {
			t.Errorf("note = %q, want it to hold %q", n, want)
		}
	}
	if strings.Contains(n, "(c5)") || strings.Contains(n, "gone") {
		t.Errorf("note = %q, want the first 5 ending, not the ended one", n)
	}

	prop.ContractsEnding = prop.ContractsEnding[:1]
	rep = &Report{}
	if contractsEnding(rep, &prop); len(rep.Notes) != 0 {
		t.Errorf("notes with only an ended contract = %q, want none", rep.Notes)
	}
}
