//go:build !race

// The race detector's instrumentation allocates too.

package provider

import "testing"

// refreshCallAllocs is, by resource type and call, how many allocations
// the provider's server may make for one call of a refresh plan that
// changes nothing (BenchmarkProviderCalls measured 313, 1181, 378 and 601
// for psa_service, 179, 81, 210 and 239 for psa_product_mapping and 252,
// 123, 277 and 322 for psa_customer_mapping; 581, 1180, 534 and 1002, 332,
// 81, 291 and 459, and 469, 123, 399 and 641 before stateFromJSON,
// sameValue and encodeChanged), with some room. A refresh plan of
// 1,200 resources makes 4,800 of these calls, and the provider's
// processor time in it follows their allocations.
var refreshCallAllocs = map[string]map[string]float64{
	"psa_service":          {"UpgradeResourceState": 380, "ValidateResourceConfig": 1400, "ReadResource": 450, "PlanResourceChange": 720},
	"psa_product_mapping":  {"UpgradeResourceState": 220, "ValidateResourceConfig": 100, "ReadResource": 250, "PlanResourceChange": 285},
	"psa_customer_mapping": {"UpgradeResourceState": 300, "ValidateResourceConfig": 150, "ReadResource": 330, "PlanResourceChange": 385},
}

// TestRefreshCallAllocs holds the calls of a refresh plan to
// refreshCallAllocs, a measure of their cost that the machine's load does
// not move.
func TestRefreshCallAllocs(t *testing.T) {
	e := newRefreshEnv(t)
	for _, c := range e.calls(t, NewProtocol6(New("test")())()) {
		allocs := testing.AllocsPerRun(20, func() { c.run(t) })
		if limit := refreshCallAllocs[c.typeName][c.name]; allocs > limit {
			t.Errorf("%s %s: %.0f allocations, want at most %.0f", c.typeName, c.name, allocs, limit)
		} else {
			t.Logf("%s %s: %.0f allocations (at most %.0f)", c.typeName, c.name, allocs, limit)
		}
	}
}
