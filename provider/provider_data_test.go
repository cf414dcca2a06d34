package provider

import (
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestContractRegistry_claim(t *testing.T) {
	t.Parallel()

	r := newContractRegistry()
	if _, ok := r.claim(psa.SystemAutotask, "29684183", "sophos/a"); !ok {
		t.Fatal("first claim refused")
	}
	// Terraform may plan one resource more than once.
	if _, ok := r.claim(psa.SystemAutotask, "29684183", "sophos/a"); !ok {
		t.Error("second claim by the same customer refused")
	}
	if other, ok := r.claim(psa.SystemAutotask, "29684183", "sophos/b"); ok || other != "sophos/a" {
		t.Errorf("claim by another customer = %q, %v; want sophos/a, false", other, ok)
	}
	// Contract ids are per system.
	if _, ok := r.claim(psa.SystemConnectWise, "29684183", "sophos/b"); !ok {
		t.Error("claim of the same id in another system refused")
	}
}
