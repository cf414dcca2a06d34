package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/float64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Deletion policies of psa_service.
const (
	deletionPolicyDeactivate = "deactivate"
	deletionPolicyDelete     = "delete"
	deletionPolicyAbandon    = "abandon"
)

// servicesDeletable says which PSAs let their API delete services. Autotask
// does not: its Services entity has no delete call, only isActive.
var servicesDeletable = map[psa.System]bool{
	psa.SystemAutotask: false,
}

// Ensure serviceResource satisfies the resource interfaces.
var (
	_ resource.Resource                = (*serviceResource)(nil)
	_ resource.ResourceWithConfigure   = (*serviceResource)(nil)
	_ resource.ResourceWithImportState = (*serviceResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*serviceResource)(nil)
)

// NewServiceResource returns the psa_service resource.
func NewServiceResource() resource.Resource {
	return &serviceResource{}
}

// serviceResource manages a billable service in the PSA.
type serviceResource struct {
	data *providerData
}

// serviceResourceModel maps the psa_service schema data.
type serviceResourceModel struct {
	ID                 types.String  `tfsdk:"id"`
	Name               types.String  `tfsdk:"name"`
	Description        types.String  `tfsdk:"description"`
	InvoiceDescription types.String  `tfsdk:"invoice_description"`
	UnitPrice          types.Float64 `tfsdk:"unit_price"`
	UnitCost           types.Float64 `tfsdk:"unit_cost"`
	BillingPeriod      types.String  `tfsdk:"billing_period"`
	Active             types.Bool    `tfsdk:"active"`
	Autotask           types.Object  `tfsdk:"autotask"`
	DeletionPolicy     types.String  `tfsdk:"deletion_policy"`
}

// serviceAutotaskModel maps the autotask block of psa_service.
type serviceAutotaskModel struct {
	BillingCodeID types.String `tfsdk:"billing_code_id"`
	PeriodType    types.String `tfsdk:"period_type"`
}

var serviceAutotaskAttrTypes = map[string]attr.Type{
	"billing_code_id": types.StringType,
	"period_type":     types.StringType,
}

func (r *serviceResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_service"
}

func (r *serviceResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A billable service in the PSA: an Autotask Service. Usage sync sets the quantity of " +
			"services on customers' contracts, so every `psa_product_mapping` points at one.\n\n" +
			"Destroying the resource **deactivates** the service by default, because contracts and invoices may " +
			"still refer to it and Autotask cannot delete services through its API. `deletion_policy` chooses " +
			"otherwise.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The PSA's id of the service, e.g. the Autotask Service id `30000012`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the service as it appears on contracts and invoices.",
				Required:            true,
				Validators:          []validator.String{nonEmpty()},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Internal description of the service. Defaults to empty.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(""),
			},
			"invoice_description": schema.StringAttribute{
				MarkdownDescription: "Text printed on invoices for the service. Defaults to empty.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(""),
			},
			"unit_price": schema.Float64Attribute{
				MarkdownDescription: "Price of one unit per billing period, in the PSA's currency.",
				Required:            true,
				Validators:          []validator.Float64{float64validator.AtLeast(0)},
			},
			"unit_cost": schema.Float64Attribute{
				MarkdownDescription: "Cost of one unit per billing period, for margin reporting in the PSA. Defaults to `0`.",
				Optional:            true,
				Computed:            true,
				Default:             float64default.StaticFloat64(0),
				Validators:          []validator.Float64{float64validator.AtLeast(0)},
			},
			"billing_period": schema.StringAttribute{
				MarkdownDescription: "How often one unit is billed: " + quotedList(billingPeriods()) + ". Defaults to `\"monthly\"`.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(string(psa.BillingPeriodMonthly)),
				Validators:          []validator.String{stringvalidator.OneOf(billingPeriods()...)},
			},
			"active": schema.BoolAttribute{
				MarkdownDescription: "Whether the service can be added to contracts. Usage sync refuses to map products to " +
					"inactive services. Defaults to `true`.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
			},
			"deletion_policy": schema.StringAttribute{
				MarkdownDescription: "What destroying the resource does in the PSA: `\"deactivate\"` (the default) marks the " +
					"service inactive and keeps it for existing contracts and invoices; `\"delete\"` deletes it where the PSA " +
					"allows that (Autotask does not, and the plan fails); `\"abandon\"` only removes it from the Terraform state.",
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString(deletionPolicyDeactivate),
				Validators: []validator.String{stringvalidator.OneOf(deletionPolicyDeactivate, deletionPolicyDelete, deletionPolicyAbandon)},
			},
		},
		Blocks: map[string]schema.Block{
			string(psa.SystemAutotask): schema.SingleNestedBlock{
				MarkdownDescription: "Fields only Autotask has. Omit the block to let the provider choose them; set it " +
					"(it may be empty) to have Terraform track them; an imported service starts without it. " +
					"Only valid with an `autotask` provider block.",
				Attributes: map[string]schema.Attribute{
					"billing_code_id": schema.StringAttribute{
						MarkdownDescription: "Id of the Autotask allocation (billing) code of the service. When unset, the " +
							"tenant's one active allocation code of use type \"Recurring Contract Service\" is used; a tenant with " +
							"several must name one here, and the apply error lists them.",
						Optional:      true,
						Computed:      true,
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
					"period_type": schema.StringAttribute{
						MarkdownDescription: "Label of the Autotask `periodType` picklist value, e.g. `\"Monthly\"`. " +
							"Set it only when the tenant's labels do not match `billing_period`; by default it is derived " +
							"from `billing_period`.",
						Optional: true,
						Computed: true,
					},
				},
			},
		},
	}
}

func (r *serviceResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	data, ok := req.ProviderData.(*providerData)
	if !ok {
		resp.Diagnostics.AddError(summaryUnexpectedResourceConfigure, fmt.Sprintf(detailUnexpectedConfigure, req.ProviderData))
		return
	}
	r.data = data
}

// ModifyPlan refuses at plan time what the PSA would refuse at apply time:
// a deletion policy the PSA cannot carry out and fields of another PSA.
func (r *serviceResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil {
		return
	}
	if req.Plan.Raw.IsNull() {
		var state serviceResourceModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if resp.Diagnostics.HasError() {
			return
		}
		if state.DeletionPolicy.ValueString() == deletionPolicyDelete && !servicesDeletable[r.data.system] {
			resp.Diagnostics.AddAttributeError(path.Root("deletion_policy"), "Cannot Delete PSA Service",
				fmt.Sprintf("%s cannot delete services through its API, so service %s cannot be destroyed with "+
					"deletion_policy = \"delete\". Set deletion_policy to \"deactivate\" or \"abandon\" and apply, then destroy.",
					systemTitle(r.data.system), state.ID.ValueString()))
		}
		return
	}

	var plan, config serviceResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.DeletionPolicy.ValueString() == deletionPolicyDelete && !servicesDeletable[r.data.system] {
		resp.Diagnostics.AddAttributeError(path.Root("deletion_policy"), "Unsupported Deletion Policy",
			fmt.Sprintf("%s cannot delete services through its API, so deletion_policy = \"delete\" could never be carried out. "+
				"Use \"deactivate\" (the default) to keep the service for existing contracts, or \"abandon\" to leave it untouched.",
				systemTitle(r.data.system)))
	}
	if !plan.Autotask.IsNull() && r.data.system != psa.SystemAutotask {
		resp.Diagnostics.AddAttributeError(path.Root("autotask"), "Autotask Fields on Another PSA",
			fmt.Sprintf("The autotask block only applies to Autotask, but the provider is configured for %s. Remove the block.",
				systemTitle(r.data.system)))
	}
	if resp.Diagnostics.HasError() || plan.Autotask.IsNull() || plan.Autotask.IsUnknown() {
		return
	}

	var cfgAT serviceAutotaskModel
	if !config.Autotask.IsNull() && !config.Autotask.IsUnknown() {
		resp.Diagnostics.Append(config.Autotask.As(ctx, &cfgAT, basetypes.ObjectAsOptions{})...)
	}
	if label := cfgAT.PeriodType; !label.IsNull() && !label.IsUnknown() && !plan.BillingPeriod.IsUnknown() {
		if p, ok := autotaskLabelPeriod(label.ValueString()); ok && string(p) != plan.BillingPeriod.ValueString() {
			resp.Diagnostics.AddAttributeError(path.Root("autotask").AtName("period_type"), "Conflicting Billing Period",
				fmt.Sprintf("The Autotask period type %q bills %s, but billing_period is %q. Set billing_period = %q as well, "+
					"or leave period_type unset to derive it from billing_period.",
					label.ValueString(), p, plan.BillingPeriod.ValueString(), p))
		}
	}
	if resp.Diagnostics.HasError() || req.State.Raw.IsNull() {
		return
	}

	// period_type follows billing_period unless it is configured, so a new
	// billing period makes the derived label unknown until apply.
	var state serviceResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var planAT serviceAutotaskModel
	resp.Diagnostics.Append(plan.Autotask.As(ctx, &planAT, basetypes.ObjectAsOptions{})...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfgAT.PeriodType.IsNull() {
		if plan.BillingPeriod.Equal(state.BillingPeriod) && !state.Autotask.IsNull() {
			var stateAT serviceAutotaskModel
			resp.Diagnostics.Append(state.Autotask.As(ctx, &stateAT, basetypes.ObjectAsOptions{})...)
			planAT.PeriodType = stateAT.PeriodType
		} else {
			planAT.PeriodType = types.StringUnknown()
		}
		obj, diags := types.ObjectValueFrom(ctx, serviceAutotaskAttrTypes, planAT)
		resp.Diagnostics.Append(diags...)
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("autotask"), obj)...)
	}
}

func (r *serviceResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	ctx = r.data.maskedContext(ctx)
	var plan serviceResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	svc, diags := plan.toService(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}

	created, err := r.data.backend.CreateService(ctx, svc)
	if err != nil {
		resp.Diagnostics.AddError("Error Creating PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Creating service %q", svc.Name), err))
		return
	}
	tflog.Info(ctx, "Created PSA service", map[string]any{"id": created.ID, "name": created.Name})

	state, diags := newServiceModel(ctx, created, plan)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
}

func (r *serviceResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = r.data.maskedContext(ctx)
	var state serviceResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}

	svc, err := r.data.backend.GetService(ctx, state.ID.ValueString())
	if errors.Is(err, psa.ErrNotFound) {
		tflog.Warn(ctx, fmt.Sprintf(logRemovedFromState, "PSA service "+state.ID.ValueString()))
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Error Reading PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Reading service %s", state.ID.ValueString()), err))
		return
	}

	newState, diags := newServiceModel(ctx, svc, state)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, newState)...)
}

func (r *serviceResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	ctx = r.data.maskedContext(ctx)
	var plan, state serviceResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}

	// deletion_policy lives only in the Terraform state; changing nothing
	// else needs no request.
	onlyPolicy := state
	onlyPolicy.DeletionPolicy = plan.DeletionPolicy
	if plan.ID.Equal(state.ID) && serviceFieldsEqual(plan, onlyPolicy) {
		resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
		return
	}

	svc, diags := plan.toService(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	svc.ID = state.ID.ValueString()

	updated, err := r.data.backend.UpdateService(ctx, svc)
	if err != nil {
		resp.Diagnostics.AddError("Error Updating PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Updating service %s (%q)", svc.ID, svc.Name), err))
		return
	}
	tflog.Info(ctx, "Updated PSA service", map[string]any{"id": updated.ID, "name": updated.Name})

	newState, diags := newServiceModel(ctx, updated, plan)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, newState)...)
}

func (r *serviceResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	ctx = r.data.maskedContext(ctx)
	var state serviceResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()

	var err error
	switch policy := state.DeletionPolicy.ValueString(); policy {
	case deletionPolicyAbandon:
		tflog.Info(ctx, "Abandoning PSA service: removed from state, left unchanged in the PSA", map[string]any{"id": id})
		return
	case deletionPolicyDelete:
		err = r.data.backend.DeleteService(ctx, id)
		if errors.Is(err, psa.ErrNotSupported) {
			resp.Diagnostics.AddAttributeError(path.Root("deletion_policy"), "Cannot Delete PSA Service",
				fmt.Sprintf("%s cannot delete services through its API, so service %s was not deleted. "+
					"Set deletion_policy to \"deactivate\" or \"abandon\" and apply, then destroy again.\n\n%s",
					systemTitle(r.data.system), id, err))
			return
		}
	default:
		err = r.data.backend.DeactivateService(ctx, id)
	}
	if errors.Is(err, psa.ErrNotFound) {
		tflog.Warn(ctx, "PSA service already gone", map[string]any{"id": id})
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Error Deleting PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Destroying service %s (deletion_policy %q)", id, state.DeletionPolicy.ValueString()), err))
		return
	}
	tflog.Info(ctx, "Destroyed PSA service", map[string]any{"id": id, "deletion_policy": state.DeletionPolicy.ValueString()})
}

func (r *serviceResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// toService converts the planned values to the neutral service.
func (m serviceResourceModel) toService(ctx context.Context) (*psa.Service, diag.Diagnostics) {
	svc := &psa.Service{
		ID:                 m.ID.ValueString(),
		Name:               m.Name.ValueString(),
		Description:        m.Description.ValueString(),
		InvoiceDescription: m.InvoiceDescription.ValueString(),
		UnitPrice:          m.UnitPrice.ValueFloat64(),
		UnitCost:           m.UnitCost.ValueFloat64(),
		BillingPeriod:      psa.BillingPeriod(m.BillingPeriod.ValueString()),
		Active:             m.Active.ValueBool(),
	}
	var diags diag.Diagnostics
	if !m.Autotask.IsNull() && !m.Autotask.IsUnknown() {
		var at serviceAutotaskModel
		diags.Append(m.Autotask.As(ctx, &at, basetypes.ObjectAsOptions{UnhandledUnknownAsEmpty: true})...)
		svc.Autotask = &psa.AutotaskServiceFields{
			BillingCodeID: at.BillingCodeID.ValueString(),
			PeriodType:    at.PeriodType.ValueString(),
		}
	}
	return svc, diags
}

// newServiceModel converts a service from the PSA to the state. prior
// supplies what the PSA does not hold: deletion_policy and whether the
// autotask block is tracked. An import has neither; it takes the default
// policy and leaves the block untracked, which matches the smallest
// configuration, so importing it plans no change.
func newServiceModel(ctx context.Context, svc *psa.Service, prior serviceResourceModel) (serviceResourceModel, diag.Diagnostics) {
	m := serviceResourceModel{
		ID:                 types.StringValue(svc.ID),
		Name:               types.StringValue(svc.Name),
		Description:        types.StringValue(svc.Description),
		InvoiceDescription: types.StringValue(svc.InvoiceDescription),
		UnitPrice:          types.Float64Value(svc.UnitPrice),
		UnitCost:           types.Float64Value(svc.UnitCost),
		BillingPeriod:      types.StringValue(string(svc.BillingPeriod)),
		Active:             types.BoolValue(svc.Active),
		DeletionPolicy:     prior.DeletionPolicy,
		Autotask:           types.ObjectNull(serviceAutotaskAttrTypes),
	}
	// A tenant's own period type label may match no neutral period; the
	// label is then tracked in autotask.period_type alone.
	if svc.BillingPeriod == "" && !prior.BillingPeriod.IsNull() && !prior.BillingPeriod.IsUnknown() {
		m.BillingPeriod = prior.BillingPeriod
	}
	if m.DeletionPolicy.IsNull() || m.DeletionPolicy.IsUnknown() {
		m.DeletionPolicy = types.StringValue(deletionPolicyDeactivate)
	}
	var diags diag.Diagnostics
	if svc.Autotask != nil && !prior.Autotask.IsNull() {
		m.Autotask, diags = types.ObjectValueFrom(ctx, serviceAutotaskAttrTypes, serviceAutotaskModel{
			BillingCodeID: types.StringValue(svc.Autotask.BillingCodeID),
			PeriodType:    types.StringValue(svc.Autotask.PeriodType),
		})
	}
	return m, diags
}

// serviceFieldsEqual reports whether a and b describe the same service in
// the PSA.
func serviceFieldsEqual(a, b serviceResourceModel) bool {
	return a.Name.Equal(b.Name) &&
		a.Description.Equal(b.Description) &&
		a.InvoiceDescription.Equal(b.InvoiceDescription) &&
		a.UnitPrice.Equal(b.UnitPrice) &&
		a.UnitCost.Equal(b.UnitCost) &&
		a.BillingPeriod.Equal(b.BillingPeriod) &&
		a.Active.Equal(b.Active) &&
		a.Autotask.Equal(b.Autotask) &&
		a.DeletionPolicy.Equal(b.DeletionPolicy)
}

// autotaskLabelPeriod reads an Autotask Services.periodType label as a
// billing period the way the Autotask backend does (case, spaces and
// punctuation ignored), so that a period_type contradicting billing_period
// fails the plan rather than the apply.
func autotaskLabelPeriod(label string) (psa.BillingPeriod, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(label) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	switch b.String() {
	case "monthly":
		return psa.BillingPeriodMonthly, true
	case "quarterly":
		return psa.BillingPeriodQuarterly, true
	case "semiannual", "semiannually", "halfyearly":
		return psa.BillingPeriodSemiAnnual, true
	case "yearly", "annual", "annually":
		return psa.BillingPeriodYearly, true
	}
	return "", false
}

func billingPeriods() []string {
	out := make([]string, len(psa.BillingPeriods))
	for i, p := range psa.BillingPeriods {
		out[i] = string(p)
	}
	return out
}

// quotedList formats values for a MarkdownDescription: `"a"`, `"b"` or `"c"`.
func quotedList(values []string) string {
	s := ""
	for i, v := range values {
		switch {
		case i == 0:
		case i == len(values)-1:
			s += " or "
		default:
			s += ", "
		}
		s += "`\"" + v + "\"`"
	}
	return s
}
