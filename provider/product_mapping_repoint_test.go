package provider

import (
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"

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
		`Unless another product mapping of usage source "sophos" still names service 30`, "bill the same usage twice",
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
