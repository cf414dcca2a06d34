package provider

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func productModel(service string, syncEnabled bool) *productMappingResourceModel {
	return &productMappingResourceModel{Source: types.StringValue("sophos"), Product: types.StringValue("MDR"),
		ServiceID: types.StringValue(service), SyncEnabled: types.BoolValue(syncEnabled)}
}

// TestRepointedFrom: only a plan that changes a synced product mapping's
// service_id to another service, known or created in this apply,
// re-points it.
func TestRepointedFrom(t *testing.T) {
	t.Parallel()
	unknown := productModel("", true)
	unknown.ServiceID = types.StringUnknown()
	for _, tc := range []struct {
		name        string
		state, plan *productMappingResourceModel
		want        string
	}{
		{"new mapping", nil, productModel("31", true), ""},
		{"same service", productModel("30", true), productModel("30", true), ""},
		{"sync was off", productModel("30", false), productModel("31", true), ""},
		{"sync turned off", productModel("30", true), productModel("31", false), ""},
		{"re-pointed", productModel("30", true), productModel("31", true), "30"},
		{"re-pointed to a service the apply creates", productModel("30", true), unknown, "30"},
	} {
		if got := repointedFrom(tc.state, tc.plan); got != tc.want {
			t.Errorf("%s: repointedFrom = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRepointWarning: the warning names the mapping, both services, the
// hold and the way out.
func TestRepointWarning(t *testing.T) {
	t.Parallel()
	summary, detail := repointWarning("sophos/MDR", "sophos", "30", "31", psa.SystemAutotask)
	if summary != "Previous Service Still Bills" {
		t.Errorf("summary %q", summary)
	}
	for _, want := range []string{"Product mapping sophos/MDR moves from service 30 to service 31",
		`Unless another product mapping of usage source "sophos" with sync_enabled on still names service 30`, "bill the same usage twice",
		"hold previous_service", "Set the customers' lines of service 30 to 0 in Autotask",
		"psa-syncd sync --approve --customer ID --service ID"} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail lacks %q:\n%s", want, detail)
		}
	}
	if _, detail := repointWarning("sophos/MDR", "sophos", "30", "", psa.SystemConnectWise); !strings.Contains(detail, "to a service this apply creates") {
		t.Errorf("detail for a service the apply creates:\n%s", detail)
	}
}

// TestAccProductMappingResource_repointWarns: through the Terraform CLI, a
// plan that moves a synced product mapping to another service warns
// (Previous Service Still Bills, on service_id, naming both services);
// the plans after the apply, which change nothing, and a plan that moves
// it with sync_enabled turned off do not.
func TestAccProductMappingResource_repointWarns(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	first := e.addService("Sophos MDR", 12)
	second := e.addService("Sophos MDR Complete", 15)
	third := e.addService("Sophos MDR Essentials", 9)
	var w planWarnings
	const summary = "Previous Service Still Bills"
	expect := func(n int, detail ...string) func(*terraform.State) error {
		return func(*terraform.State) error {
			got := w.take(summary)
			if len(got) < n || (n == 0 && len(got) > 0) {
				return fmt.Errorf("plan warnings %q: %v, want %d or more", summary, got, n)
			}
			for _, g := range got {
				if g.typeName != "psa_product_mapping" || g.attribute != tftypes.NewAttributePath().WithAttributeName("service_id").String() {
					return fmt.Errorf("warning %v, want it on psa_product_mapping's service_id", g)
				}
				for _, d := range detail {
					if !strings.Contains(g.detail, d) {
						return fmt.Errorf("warning detail lacks %q: %s", d, g.detail)
					}
				}
			}
			return nil
		}
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: w.factories(),
		Steps: []resource.TestStep{
			{
				Config: testAccProductMappingResourceConfig(e, "MDR", first, ""),
				Check:  expect(0),
			},
			{
				PreConfig: func() { w.take("") },
				Config:    testAccProductMappingResourceConfig(e, "MDR", second, ""),
				Check: expect(1, "Product mapping sophos/MDR moves from service "+first+" to service "+second,
					"Set the customers' lines of service "+first+" to 0 in Autotask"),
			},
			{
				// Sync turned off in the same change: psa-syncd holds
				// nothing, nothing to warn of. The plans after the
				// last apply, which changed nothing, did not warn either.
				PreConfig: func() {
					if got := w.take(summary); len(got) > 0 {
						t.Errorf("plans of an unchanged mapping warned: %v", got)
					}
				},
				Config: testAccProductMappingResourceConfig(e, "MDR", third, "  sync_enabled = false"),
				Check:  expect(0),
			},
		},
	})
}
