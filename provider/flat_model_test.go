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

	got, raw := flatRoundTrip(t, schema, m)
	if got != m {
		t.Errorf("getFlat read %+v, want %+v", got, m)
	}

	// A value of another resource's schema is an error, not a half-filled model.
	var product productMappingResourceModel
	if diags := getFlat(ctx, raw, &product); !diags.HasError() {
		t.Errorf("getFlat of a customer mapping into a product mapping model = %+v, want an error", product)
	}
}

// TestFlatModel_objects: the psa_service model, whose nested blocks are
// objects, converts as the framework's Get, Set, As and ObjectValueFrom do.
func TestFlatModel_objects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	var schema resource.SchemaResponse
	NewServiceResource().Schema(ctx, resource.SchemaRequest{}, &schema)
	cw := serviceConnectWiseModel{
		Identifier:          types.StringValue("MANAGED-BACKUP"),
		TypeID:              types.StringNull(),
		SubcategoryID:       types.StringUnknown(),
		ProductClass:        types.StringValue("Service"),
		CustomerDescription: types.StringValue("Backup"),
	}
	cwObject, diags := flatObject(ctx, serviceConnectWiseAttrTypes, cw)
	if diags.HasError() {
		t.Fatal(diags)
	}
	want, diags := types.ObjectValueFrom(ctx, serviceConnectWiseAttrTypes, cw)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if !cwObject.Equal(want) {
		t.Errorf("flatObject = %v, want %v as types.ObjectValueFrom gives", cwObject, want)
	}
	var gotCW serviceConnectWiseModel
	objectAs(ctx, cwObject, &gotCW)
	if gotCW != cw {
		t.Errorf("objectAs read %+v, want %+v", gotCW, cw)
	}
	var fromNull serviceConnectWiseModel
	objectAs(ctx, types.ObjectNull(serviceConnectWiseAttrTypes), &fromNull)
	if fromNull != (serviceConnectWiseModel{}) {
		t.Errorf("objectAs of a null object read %+v, want null fields", fromNull)
	}

	m := serviceResourceModel{
		ID:                 types.StringValue("30000012"),
		Name:               types.StringValue("Managed Backup"),
		Description:        types.StringNull(),
		InvoiceDescription: types.StringUnknown(),
		UnitPrice:          types.Float64Value(12.5),
		UnitCost:           types.Float64Unknown(),
		BillingPeriod:      types.StringValue("monthly"),
		Active:             types.BoolValue(true),
		Autotask:           types.ObjectNull(serviceAutotaskAttrTypes),
		ConnectWise:        cwObject,
		KaseyaBMS:          types.ObjectUnknown(serviceKaseyaBMSAttrTypes),
		DeletionPolicy:     types.StringValue(deletionPolicyDeactivate),
	}
	got, _ := flatRoundTrip(t, schema, m)
	if !serviceFieldsEqual(got, m) || !got.ID.Equal(m.ID) {
		t.Errorf("getFlat read %+v, want %+v", got, m)
	}
}

// flatRoundTrip sets m into a state of schema with setFlat and with the
// framework's State.Set, requires the same value from both, and returns
// what getFlat reads back from the framework's value, with that value.
func flatRoundTrip[M any](t *testing.T, schema resource.SchemaResponse, m M) (M, tftypes.Value) {
	t.Helper()
	ctx := t.Context()
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
	var got M
	if diags := getFlat(ctx, framework.Raw, &got); diags.HasError() {
		t.Fatal(diags)
	}
	return got, framework.Raw
}
