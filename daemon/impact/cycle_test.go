package impact

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestCompare_period checks the months a line's price pays for on each
// PSA, and that a ConnectWise or Kaseya BMS cycle that is unknown (not
// read, not returned, a name that is not whole months) gives none rather
// than a month, and says why in Not computed.
func TestCompare_period(t *testing.T) {
	t.Parallel()
	contracts := map[string]*psa.Contract{
		"1": {ID: "1", BillingCycle: "Annually"},
		"2": {ID: "2", BillingCycle: "Semi-Annually"},
		"3": {ID: "3", BillingCycle: "Weekly"},
		"4": {ID: "4"},
	}
	for _, tc := range []struct {
		sys       psa.System
		contract  string
		cyclesErr string
		want      psa.BillingPeriod
		months    int
		why       string
	}{
		{psa.SystemConnectWise, "1", "", psa.BillingPeriodYearly, 12, ""},
		{psa.SystemKaseyaBMS, "2", "", psa.BillingPeriodSemiAnnual, 6, ""},
		{psa.SystemConnectWise, "3", "", "", 0, `agreement 3: its billing cycle "Weekly" is not monthly`},
		{psa.SystemKaseyaBMS, "4", "", "", 0, "contract 4: the contract has no billing cycle"},
		{psa.SystemConnectWise, "5", "", "", 0, "agreement 5: ConnectWise PSA did not return the agreement"},
		{psa.SystemKaseyaBMS, unknownPrefix + "c", "", "", 0, "the contract known only after apply"},
		{psa.SystemConnectWise, "1", "PSA_CONNECTWISE_PRIVATE_KEY is not set", "", 0, "agreements 1: the billing cycles could not be read (PSA_CONNECTWISE_PRIVATE_KEY is not set)"},
		// Autotask bills by service: no cycle, a month.
		{psa.SystemAutotask, "1", "", psa.BillingPeriodMonthly, 1, ""},
	} {
		c := &compare{current: &export.Document{PSA: export.PSA{System: tc.sys}}, tp: &TerraformPlan{}, cyclesErr: tc.cyclesErr}
		if tc.cyclesErr == "" {
			c.contracts = contracts
		}
		if tc.sys == psa.SystemAutotask {
			c.be = newReadOnly(offline{system: tc.sys})
		}
		k := lineKey{contract: tc.contract, service: "9"}
		p, months := c.period(k, true)
		if p != tc.want || months != tc.months {
			t.Errorf("%s contract %s: period = %q, %d months; want %q, %d", tc.sys, tc.contract, p, months, tc.want, tc.months)
		}
		if tc.why == "" {
			continue
		}
		got := c.cycleProblems(map[string]bool{tc.contract: true})
		if len(got) != 1 || !strings.Contains(got[0], tc.why) {
			t.Errorf("%s contract %s: not computed = %q; want one entry with %q", tc.sys, tc.contract, got, tc.why)
		}
	}
}
