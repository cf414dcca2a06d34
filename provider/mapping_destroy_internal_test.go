package provider

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestProductMappingDestroyWarning_eitherOrder plans, without Terraform,
// the destroy of synced product mapping sophos/CIXAS and a mapping
// sophos/MDR with sync_enabled on the same service in both orders: the
// destroy planned second warns that MDR takes the lines over (and not
// that they still bill); planned first, it warns that they still bill,
// and the registry gives the mapping planned second the destroy to warn
// of. A mapping of another source or service takes nothing over.
func TestProductMappingDestroyWarning_eitherOrder(t *testing.T) {
	ctx := context.Background()
	var s resource.SchemaResponse
	(&productMappingResource{}).Schema(ctx, resource.SchemaRequest{}, &s)
	typ, ok := s.Schema.Type().TerraformType(ctx).(tftypes.Object)
	if !ok {
		t.Fatalf("schema type %v, want an object", s.Schema.Type())
	}
	attrs := map[string]tftypes.Value{}
	for name, at := range typ.AttributeTypes {
		attrs[name] = tftypes.NewValue(at, nil)
	}
	attrs["source"] = tftypes.NewValue(tftypes.String, "sophos")
	attrs["product"] = tftypes.NewValue(tftypes.String, "CIXAS")
	attrs["service_id"] = tftypes.NewValue(tftypes.String, "30000000")
	attrs["sync_enabled"] = tftypes.NewValue(tftypes.Bool, true)
	destroy := func(data *providerData) diag.Diagnostics {
		req := resource.ModifyPlanRequest{
			State: tfsdk.State{Schema: s.Schema, Raw: tftypes.NewValue(typ, attrs)},
			Plan:  tfsdk.Plan{Schema: s.Schema, Raw: tftypes.NewValue(typ, nil)},
		}
		var resp resource.ModifyPlanResponse
		productMappingDestroyWarning(ctx, req, &resp, data)
		return resp.Diagnostics
	}
	summaries := func(diags diag.Diagnostics) []string {
		var out []string
		for _, d := range diags {
			out = append(out, d.Summary())
		}
		return out
	}

	// MDR planned first.
	data := &providerData{system: psa.SystemAutotask}
	if removed := data.services.syncProduct("30000000", "sophos", "sophos/MDR"); len(removed) > 0 {
		t.Fatalf("syncProduct before the destroy = %v, want none", removed)
	}
	diags := destroy(data)
	if got := summaries(diags); !slices.Equal(got, []string{summaryRemovedMappingTakenOver}) {
		t.Fatalf("destroy planned second warns %q, want only %q", got, summaryRemovedMappingTakenOver)
	}
	if d := diags[0].Detail(); !strings.Contains(d, "the quantity of each customer's line of service 30000000 becomes the usage of the product of sophos/MDR") {
		t.Errorf("warning detail = %s", d)
	}

	// The destroy planned first.
	data = &providerData{system: psa.SystemAutotask}
	if got := summaries(destroy(data)); !slices.Equal(got, []string{summaryRemovedMappingStillBills}) {
		t.Fatalf("destroy planned first warns %q, want only %q", got, summaryRemovedMappingStillBills)
	}
	if removed := data.services.syncProduct("30000000", "usage-file", "usage-file/MDR"); len(removed) > 0 {
		t.Errorf("syncProduct of another source = %v, want none", removed)
	}
	if removed := data.services.syncProduct("30000001", "sophos", "sophos/EDR"); len(removed) > 0 {
		t.Errorf("syncProduct of another service = %v, want none", removed)
	}
	if removed := data.services.syncProduct("30000000", "sophos", "sophos/MDR"); !slices.Equal(removed, []string{"sophos/CIXAS"}) {
		t.Errorf("syncProduct after the destroy = %v, want [sophos/CIXAS]", removed)
	}
}
