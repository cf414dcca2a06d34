package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// TestFlatModel: getFlat and setFlat convert the mapping models exactly as
// the framework's Get and Set do, null and unknown values included.
func TestFlatModel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	var schema resource.SchemaResponse
	NewCustomerMappingResource().Schema(ctx, resource.SchemaRequest{}, &schema)
	m := customerMappingResourceModel{
		ID:           types.StringValue("sophos/cust-1"),
		Source:       types.StringValue("sophos"),
		CustomerID:   types.StringValue("cust-1"),
		CustomerName: types.StringNull(),
		CompanyID:    types.StringValue("174"),
		ContractID:   types.StringUnknown(),
		UsageSync:    types.BoolValue(true),
		TicketSync:   types.BoolUnknown(),
	}

	framework := tfsdk.State{Schema: schema.Schema}
	if diags := framework.Set(ctx, m); diags.HasError() {
		t.Fatal(diags)
	}
	flat := tfsdk.State{Schema: schema.Schema, Raw: tftypes.NewValue(schema.Schema.Type().TerraformType(ctx), nil)}
	if diags := setFlat(ctx, &flat, m); diags.HasError() {
		t.Fatal(diags)
	}
	if !flat.Raw.Equal(framework.Raw) {
		t.Errorf("setFlat wrote %v, want %v as State.Set does", flat.Raw, framework.Raw)
	}

	var got customerMappingResourceModel
	if diags := getFlat(ctx, framework.Raw, &got); diags.HasError() {
		t.Fatal(diags)
	}
	if got != m {
		t.Errorf("getFlat read %+v, want %+v", got, m)
	}

	// A value of another resource's schema is an error, not a half-filled model.
	var product productMappingResourceModel
	if diags := getFlat(ctx, framework.Raw, &product); !diags.HasError() {
		t.Errorf("getFlat of a customer mapping into a product mapping model = %+v, want an error", product)
	}
}
