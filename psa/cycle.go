package psa

import (
	"strings"
	"unicode"
)

// cycleLabels are the folded (see foldCycle) billing-cycle names of
// ConnectWise agreements and Kaseya BMS contracts that each neutral billing
// period matches. Names that bill on other than whole months (Weekly,
// Biweekly, One Time) match none, nor do ambiguous ones ("Biannually" is
// twice a year to some and every two years to others).
var cycleLabels = map[BillingPeriod][]string{
	BillingPeriodMonthly:    {"monthly", "month"},
	BillingPeriodQuarterly:  {"quarterly", "quarter"},
	BillingPeriodSemiAnnual: {"semiannually", "semiannual", "halfyearly", "halfyear", "semiyearly"},
	BillingPeriodYearly:     {"annually", "annual", "yearly", "year"},
}

// CycleBillingPeriod returns the billing period that a contract's billing
// cycle (Contract.BillingCycle, the PSA's own name, such as "Annually" or
// "Semi-Annually") stands for, matched ignoring case, spaces and
// punctuation. ok is false for a name it does not know, and for "": such a
// cycle is not to be guessed.
func CycleBillingPeriod(cycle string) (p BillingPeriod, ok bool) {
	f := foldCycle(cycle)
	for _, p := range BillingPeriods {
		for _, l := range cycleLabels[p] {
			if f == l {
				return p, true
			}
		}
	}
	return "", false
}

// Months is how many months a unit price billed per p pays for; 0 for a
// period it does not know.
func (p BillingPeriod) Months() int {
	switch p {
	case BillingPeriodMonthly:
		return 1
	case BillingPeriodQuarterly:
		return 3
	case BillingPeriodSemiAnnual:
		return 6
	case BillingPeriodYearly:
		return 12
	}
	return 0
}

// foldCycle lower-cases s and keeps only its letters and digits, so that
// "Semi-Annually", "semi annually" and "SemiAnnually" are equal.
func foldCycle(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
