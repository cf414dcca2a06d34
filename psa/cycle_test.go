package psa_test

import (
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestCycleBillingPeriod(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cycle  string
		want   psa.BillingPeriod
		months int
	}{
		{"Monthly", psa.BillingPeriodMonthly, 1},
		{" monthly ", psa.BillingPeriodMonthly, 1},
		{"Quarterly", psa.BillingPeriodQuarterly, 3},
		{"QUARTERLY", psa.BillingPeriodQuarterly, 3},
		{"SemiAnnually", psa.BillingPeriodSemiAnnual, 6},
		{"Semi-Annually", psa.BillingPeriodSemiAnnual, 6},
		{"semi annual", psa.BillingPeriodSemiAnnual, 6},
		{"Half-Yearly", psa.BillingPeriodSemiAnnual, 6},
		{"Annually", psa.BillingPeriodYearly, 12},
		{"Yearly", psa.BillingPeriodYearly, 12},
		{"annual", psa.BillingPeriodYearly, 12},
		// Names that are not a whole number of months, ambiguous, or
		// unknown: never guessed.
		{"Weekly", "", 0},
		{"Biweekly", "", 0},
		{"One Time", "", 0},
		{"OneTime", "", 0},
		{"Biannually", "", 0},
		{"Every 2 Years", "", 0},
		{"Monthly (arrears)", "", 0},
		{"", "", 0},
	} {
		got, ok := psa.CycleBillingPeriod(tc.cycle)
		if got != tc.want || ok != (tc.want != "") || got.Months() != tc.months {
			t.Errorf("CycleBillingPeriod(%q) = %q, %v (%d months); want %q (%d months)", tc.cycle, got, ok, got.Months(), tc.want, tc.months)
		}
	}
}
