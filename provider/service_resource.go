package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
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
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Deletion policies of psa_service.
const (
	deletionPolicyDeactivate = "deactivate"
	deletionPolicyDelete     = "delete"
	deletionPolicyAbandon    = "abandon"
)

// serviceSupport is what a PSA's API stores of a service beyond the fields
// every PSA has.
type serviceSupport struct {
	// delete: the API can delete services. Autotask's Services entity has
	// no delete call, only isActive.
	delete bool
	// billingPeriod: the service carries its billing period. ConnectWise
	// bills an agreement addition on its agreement's cycle and does not
	// take one from the catalog item; Kaseya BMS services have none.
	billingPeriod bool
	// invoiceDescription: the service has a text for invoices. Kaseya BMS
	// services have none.
	invoiceDescription bool
}

// serviceSupports holds the serviceSupport of every system in systemBlocks.
// A field a PSA does not store is kept in the Terraform state only, so it
// never shows a diff.
var serviceSupports = map[psa.System]serviceSupport{
	psa.SystemAutotask:    {delete: false, billingPeriod: true, invoiceDescription: true},
	psa.SystemConnectWise: {delete: true, billingPeriod: false, invoiceDescription: true},
	psa.SystemKaseyaBMS:   {delete: true, billingPeriod: false, invoiceDescription: false},
}

// connectWiseProductClasses are the values ConnectWise takes for a catalog
// item's productClass.
var connectWiseProductClasses = []string{"Agreement", "Bundle", "Inventory", "NonInventory", "Service"}

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
	ConnectWise        types.Object  `tfsdk:"connectwise"`
	KaseyaBMS          types.Object  `tfsdk:"kaseya_bms"`
	DeletionPolicy     types.String  `tfsdk:"deletion_policy"`
}

// serviceBlockAttrTypes are the attribute types of the PSAs' own blocks of
// psa_service and the psa_service data source.
var serviceBlockAttrTypes = map[string]map[string]attr.Type{
	string(psa.SystemAutotask):    serviceAutotaskAttrTypes,
	string(psa.SystemConnectWise): serviceConnectWiseAttrTypes,
	string(psa.SystemKaseyaBMS):   serviceKaseyaBMSAttrTypes,
}

// objectAttrTypes gives getFlat and flatValue the attribute types of the
// nested blocks (see flatObjectModel).
func (serviceResourceModel) objectAttrTypes() map[string]map[string]attr.Type {
	return serviceBlockAttrTypes
}

// block returns the model's nested block of the PSA sys.
func (m serviceResourceModel) block(sys psa.System) types.Object {
	switch sys {
	case psa.SystemAutotask:
		return m.Autotask
	case psa.SystemConnectWise:
		return m.ConnectWise
	default:
		return m.KaseyaBMS
	}
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

// serviceConnectWiseModel maps the connectwise block of psa_service.
type serviceConnectWiseModel struct {
	Identifier          types.String `tfsdk:"identifier"`
	TypeID              types.String `tfsdk:"type_id"`
	SubcategoryID       types.String `tfsdk:"subcategory_id"`
	ProductClass        types.String `tfsdk:"product_class"`
	CustomerDescription types.String `tfsdk:"customer_description"`
}

var serviceConnectWiseAttrTypes = map[string]attr.Type{
	"identifier":           types.StringType,
	"type_id":              types.StringType,
	"subcategory_id":       types.StringType,
	"product_class":        types.StringType,
	"customer_description": types.StringType,
}

// serviceKaseyaBMSModel maps the kaseya_bms block of psa_service.
type serviceKaseyaBMSModel struct {
	Category      types.String `tfsdk:"category"`
	Subcategory   types.String `tfsdk:"subcategory"`
	UnitOfMeasure types.String `tfsdk:"unit_of_measure"`
	Taxable       types.Bool   `tfsdk:"taxable"`
}

var serviceKaseyaBMSAttrTypes = map[string]attr.Type{
	"category":        types.StringType,
	"subcategory":     types.StringType,
	"unit_of_measure": types.StringType,
	"taxable":         types.BoolType,
}

func (r *serviceResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_service"
}

func (r *serviceResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A billable service in the PSA: an Autotask Service, a ConnectWise catalog item (product) " +
			"or a Kaseya BMS service. Usage sync sets the quantity of services on customers' contracts, so every " +
			"`psa_product_mapping` points at one.\n\n" +
			"Destroying the resource **deactivates** the service by default, because contracts and invoices may " +
			"still refer to it (and Autotask cannot delete services through its API). `deletion_policy` chooses " +
			"otherwise.\n\n" +
			"A service that a product mapping still refers to is not deactivated or deleted: psa-syncd would keep " +
			"billing the product on it. The plan fails when a `psa_product_mapping` of the configuration that stays " +
			"refers to it (by `psa_service.<name>.id`, a literal id or `data.psa_service`), and the apply checks the " +
			"export again before destroying, for mappings the plan cannot see (another configuration's, a `service_id` " +
			"known only at apply). Remove those mappings, or map them to another service, in the same change: a mapping " +
			"that refers to `psa_service.<name>.id` is destroyed or moved first, but for one that names the service by a " +
			"literal id or `data.psa_service` Terraform may try the destroy first, which then waits up to 20 seconds for that change. To replace a mapped " +
			"service, set `create_before_destroy`; in ConnectWise give the new catalog item a product id of its own " +
			"(`connectwise.identifier`) in the same change, because ConnectWise keeps product ids unique across the " +
			"catalog, inactive items included, and refuses a second item with the one the old item holds; in Autotask, " +
			"and in Kaseya BMS unless the old service is deleted first, give the new service a name of its own, for " +
			"the same reason. With `deletion_policy = \"abandon\"` the service is left in the PSA " +
			"and none of this applies.\n\n" +
			"A service the PSA reports as missing is dropped from the state (and planned again) only when the PSA " +
			"answers a basic read at the configured address; otherwise the refresh fails, naming the settings to " +
			"check, so that a wrong or outdated `base_url` never plans to create every service a second time.\n\n" +
			"Not every PSA stores every field. ConnectWise bills an agreement addition on its agreement's billing cycle, " +
			"and Kaseya BMS services have neither a billing period nor an invoice description: with those PSAs, " +
			"`billing_period` (and, for Kaseya BMS, `invoice_description`) are kept in the Terraform state only, never " +
			"show a diff, and a plan that sets or changes them warns. Fields only one PSA has go in its nested block " +
			"(`autotask`, `connectwise` or `kaseya_bms`); a block for another PSA than the provider's fails the plan.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The PSA's id of the service: the Autotask Service id (e.g. `30000012`), the ConnectWise " +
					"catalog item id or the Kaseya BMS service id.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the service as it appears on contracts and invoices. In ConnectWise it is the " +
					"catalog item's description, at most 60 characters; in Autotask at most as long as the tenant's field " +
					"metadata allows (150). Both count UTF-16 code units, as the PSAs do: an emoji counts two. Both are checked at plan time. Autotask (a unique key on the name) and Kaseya BMS " +
					"refuse a second service of one name, inactive ones included: the plan fails on a name another service " +
					"has (compared without regard to case), naming it for an import. That fails a swap of names between two " +
					"services, and a new service taking the old name of one renamed in the same plan, too: the PSA holds " +
					"the name until the rename is applied, and Terraform may apply the other change first, so apply the " +
					"rename first in an apply of its own (a swap through a temporary name). ConnectWise accepts a second catalog " +
					"item of one name, but the plan of a new one fails on the name of an active item all the same (one left " +
					"behind by a lost state, a `terraform state rm` or a `removed` block would be billed beside the new one), " +
					"unless `connectwise.identifier` is set, which says a second item is meant and only warns. Two " +
					"`psa_service` resources of the configuration that would both create a service of one name, or rename " +
					"one to it (case and surrounding spaces aside), fail the plan as well, on every PSA (on ConnectWise a " +
					"warning when both set `connectwise.identifier`). The apply plans each new service again and reads the " +
					"PSA's names afresh (once per provider process), so a service of the name made after the plan (by " +
					"another workspace's apply, or by hand) fails the apply before the create, with the import hint. Not seen: " +
					"resources of other configurations or workspaces, of another provider configuration (an `alias`) on the " +
					"same PSA, and resources left out with `-target`, until the PSA holds their service (their next plan then " +
					"fails on the name); nor two applies, or two aliases in one apply, that create one name at the same " +
					"moment. Autotask and Kaseya BMS then refuse the second create (a partial apply, no second service), but " +
					"ConnectWise creates a second catalog item of one name when the product ids differ. Run one apply at a " +
					"time per PSA tenant (the CI workflow guide's `concurrency`), and give each PSA one provider configuration.",
				Required:   true,
				Validators: []validator.String{nonEmpty()},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Internal description of the service (the catalog item's notes in ConnectWise). Defaults to empty. " +
					"In Autotask at most as long as the tenant's field metadata allows (400), checked at plan time.",
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(""),
			},
			"invoice_description": schema.StringAttribute{
				MarkdownDescription: "Text printed on invoices for the service. Defaults to empty. In ConnectWise it is the " +
					"catalog item's customer description, which ConnectWise requires: when empty, the name is used. Kaseya " +
					"BMS services have no invoice description; the value is kept in the Terraform state only. Its length is " +
					"checked at plan time: in Autotask at most as long as the tenant's field metadata allows (1000), in " +
					"ConnectWise, as the customer description, 6000 characters.",
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(""),
			},
			"unit_price": schema.Float64Attribute{
				MarkdownDescription: "Price of one unit per billing period, in the PSA's currency. It is the price of the lines added to customers' contracts " +
					"from now on (on Kaseya BMS, of the lines psa-syncd posts from now on): lines already there keep their own price, so a change " +
					"of an existing service's price warns (`" + summaryPriceKeptOnLines + "`) and reaches no invoice until those lines are repriced in the PSA.",
				Required:   true,
				Validators: []validator.Float64{float64validator.AtLeast(0)},
			},
			"unit_cost": schema.Float64Attribute{
				MarkdownDescription: "Cost of one unit per billing period, for margin reporting in the PSA. Defaults to `0`.",
				Optional:            true,
				Computed:            true,
				Default:             float64default.StaticFloat64(0),
				Validators:          []validator.Float64{float64validator.AtLeast(0)},
			},
			"billing_period": schema.StringAttribute{
				MarkdownDescription: "How often one unit is billed: " + quotedList(billingPeriods()) + ". Defaults to `\"monthly\"`. " +
					"Only Autotask stores it on the service. ConnectWise bills additions on their agreement's billing cycle and " +
					"Kaseya BMS on the contract's, so with those PSAs the value is kept in the Terraform state only.",
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString(string(psa.BillingPeriodMonthly)),
				Validators: []validator.String{stringvalidator.OneOf(billingPeriods()...)},
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
					"allows that (ConnectWise and Kaseya BMS do, and refuse to delete a service that agreement additions or " +
					"contract lines still use: the destroy then fails, saying to set `\"deactivate\"` or `\"abandon\"`, or to " +
					"remove those lines in the PSA first; with Kaseya BMS the plan fails, naming the contracts, from one read " +
					"of the service's contract lines per such destroy, or per replacement (`-replace`, `replace_triggered_by`; " +
					"a replacement deletes with the policy in the state, and one of a tainted resource is not checked); " +
					"with ConnectWise the apply does; Autotask " +
					"does not, and the plan fails); `\"abandon\"` only removes it from the Terraform state.",
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
							"several must name one here, and the plan of a new service fails listing them. The plan fails on a " +
							"value that cannot be an Autotask id (whole numbers written in decimal digits alone), and on a code " +
							"that does not exist, is inactive or is of another use type.",
						Optional:      true,
						Computed:      true,
						Validators:    []validator.String{psaID(psa.SystemAutotask, "allocation code")},
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
					"period_type": schema.StringAttribute{
						MarkdownDescription: "Label of the Autotask `periodType` picklist value, e.g. `\"Monthly\"`. " +
							"Set it only when the tenant's labels do not match `billing_period`; by default it is derived " +
							"from `billing_period`. The plan fails on a label the picklist does not have, listing its labels.",
						Optional: true,
						Computed: true,
					},
				},
			},
			string(psa.SystemConnectWise): schema.SingleNestedBlock{
				MarkdownDescription: "Fields only ConnectWise catalog items have. Omit the block to let the provider and " +
					"ConnectWise choose them; set it (it may be empty) to have Terraform track them; an imported service " +
					"starts without it. Only valid with a `connectwise` provider block.",
				Attributes: map[string]schema.Attribute{
					"identifier": schema.StringAttribute{
						MarkdownDescription: "The catalog item's product id (at most 60 characters), which agreement additions " +
							"refer to. When unset it is derived from `name` on create (`Sophos Intercept X Advanced` becomes " +
							"`Sophos_Intercept_X_Advanced`) and kept when the name changes later. ConnectWise keeps product ids unique " +
							"across the catalog, inactive items included: the plan fails on one that another catalog item holds, " +
							"or that two new services of the configuration would both get.",
						Optional:      true,
						Computed:      true,
						Validators:    []validator.String{stringvalidator.LengthBetween(1, 60)},
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
					"type_id": schema.StringAttribute{
						MarkdownDescription: "Id of the product type (Procurement > Setup Tables > Type). Unset leaves ConnectWise's choice " +
							"(its default type); some ConnectWise versions require a type on create and refuse the catalog item " +
							"without one, so set it there. Null when ConnectWise reports no type. The plan of a create, or of a " +
							"change, fails on an id that ConnectWise's `procurement/types` does not list (one of another " +
							"ConnectWise, a sandbox's), naming the ids it has; the list is read once per Terraform command (not checked where the API member may not read it).",
						Optional:      true,
						Computed:      true,
						Validators:    []validator.String{connectWiseIDValidator},
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
					"subcategory_id": schema.StringAttribute{
						MarkdownDescription: "Id of the product subcategory (Procurement > Setup Tables > Category, its " +
							"subcategories). Unset leaves ConnectWise's choice; some ConnectWise versions require a subcategory on " +
							"create and refuse the catalog item without one, so set it there. Null when ConnectWise reports none. " +
							"The plan of a create, or of a change, fails on an id that ConnectWise's `procurement/subcategories` " +
							"does not list, naming the ids it has; the list is read once per Terraform command (not checked where the API member may not read it).",
						Optional:      true,
						Computed:      true,
						Validators:    []validator.String{connectWiseIDValidator},
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
					"product_class": schema.StringAttribute{
						MarkdownDescription: "Product class: " + quotedList(connectWiseProductClasses) + ". Unset leaves " +
							"ConnectWise's default (`\"NonInventory\"`).",
						Optional:      true,
						Computed:      true,
						Validators:    []validator.String{stringvalidator.OneOf(connectWiseProductClasses...)},
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
					"customer_description": schema.StringAttribute{
						MarkdownDescription: "The catalog item's customer description, when it must differ from " +
							"`invoice_description`: set, it wins over `invoice_description`. Unset, it follows " +
							"`invoice_description` (or `name` when that is empty).",
						Optional: true,
						Computed: true,
					},
				},
			},
			string(psa.SystemKaseyaBMS): schema.SingleNestedBlock{
				MarkdownDescription: "Fields only Kaseya BMS services have, by the names BMS shows (Admin > Finance > " +
					"Services). Omit the block to leave them as they are in BMS (none on create); set it to have Terraform " +
					"own all four: an attribute left unset then clears the field. Only valid with a `kaseya_bms` provider block. " +
					"The plan of a new service, or of a change to the block, checks that BMS knows the category, subcategory " +
					"and unit of measure (their lookups read once per Terraform command), so an unknown name fails the plan " +
					"on its attribute, listing the names BMS has.",
				Attributes: map[string]schema.Attribute{
					"category": schema.StringAttribute{
						MarkdownDescription: "Name of the service category, e.g. `\"Managed Services\"`. Defaults to none.",
						Optional:            true,
						Computed:            true,
						Default:             stringdefault.StaticString(""),
					},
					"subcategory": schema.StringAttribute{
						MarkdownDescription: "Name of a subcategory of `category`, e.g. `\"Security\"`. Defaults to none.",
						Optional:            true,
						Computed:            true,
						Default:             stringdefault.StaticString(""),
					},
					"unit_of_measure": schema.StringAttribute{
						MarkdownDescription: "Name of the unit of measure, e.g. `\"User\"`. The BMS v2 API has no unit-of-measure " +
							"lookup, so the name is resolved from an existing service that uses it: set it on one service in BMS " +
							"first. Defaults to none.",
						Optional: true,
						Computed: true,
						Default:  stringdefault.StaticString(""),
					},
					"taxable": schema.BoolAttribute{
						MarkdownDescription: "Whether the service is taxable. Defaults to `false`.",
						Optional:            true,
						Computed:            true,
						Default:             booldefault.StaticBool(false),
					},
				},
			},
		},
	}
}

func (r *serviceResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedResourceConfigure)
}

// ModifyPlan refuses at plan time what the PSA would refuse at apply time:
// a deletion policy the PSA cannot carry out, fields of another PSA and, for
// ConnectWise, a name longer than a catalog description. It warns when a
// field the PSA does not store is set or changed.
func (r *serviceResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	r.planChecks(ctx, req, resp, resp.Private)
}

// planChecks is ModifyPlan with the plan's private data, which the
// framework passes as both req.Private and resp.Private, given apart so
// that the fast path of a refresh plan (see fastPaths) can call it too:
// that plan records the service a replacement would delete
// (recordReplacedService).
func (r *serviceResource) planChecks(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, private privateData) {
	if r.data == nil {
		return
	}
	sys := r.data.system
	support := serviceSupports[sys]
	if req.Plan.Raw.IsNull() {
		var state serviceResourceModel
		resp.Diagnostics.Append(getFlat(ctx, req.State.Raw, &state)...)
		if resp.Diagnostics.HasError() {
			return
		}
		policy := state.DeletionPolicy.ValueString()
		switch {
		case policy == deletionPolicyDelete && !support.delete:
			resp.Diagnostics.AddAttributeError(path.Root("deletion_policy"), "Cannot Delete PSA Service",
				fmt.Sprintf("%s cannot delete services through its API, so service %s cannot be destroyed with "+
					"deletion_policy = \"delete\". Set deletion_policy to \"deactivate\" or \"abandon\" and apply, then destroy.",
					systemTitle(sys), state.ID.ValueString()))
		case policy != deletionPolicyAbandon && known(state.ID):
			// The product mappings planned after this find the destroy in
			// the registry; those planned before are returned.
			if mappings := r.data.services.destroy(state.ID.ValueString(), policy); len(mappings) > 0 {
				resp.Diagnostics.AddError(summaryServiceStillMapped, serviceStillMappedDetail(sys, state.ID.ValueString(), policy,
					"product mappings of this configuration", mappings)+
					" The product mappings' own plans say the same when Terraform plans them after this destroy.")
			}
		}
		if policy == deletionPolicyDelete && support.delete && known(state.ID) {
			r.checkServiceUnused(ctx, &resp.Diagnostics, state.ID.ValueString(), false)
		}
		if policy != deletionPolicyAbandon {
			r.data.checkPSABudget(ctx, &resp.Diagnostics, "psa_service", req.Plan.Raw, req.State.Raw, costServiceDestroy)
		}
		return
	}
	cost := costServiceUpdate
	if req.State.Raw.IsNull() {
		cost = costServiceCreate
	}
	r.data.checkPSABudget(ctx, &resp.Diagnostics, "psa_service", req.Plan.Raw, req.State.Raw, cost)

	var plan, config, state serviceResourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.Plan.Raw, &plan)...)
	resp.Diagnostics.Append(getFlat(ctx, req.Config.Raw, &config)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(getFlat(ctx, req.State.Raw, &state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	// Only a change is recorded: Terraform does not plan an unchanged
	// resource again during the apply, so a mapping planned then must see
	// the PSA's values, as it did at plan time.
	if known(state.ID) && (!plan.Name.Equal(state.Name) || !plan.Active.Equal(state.Active)) {
		r.data.services.record(state.ID.ValueString(), plannedService{name: plan.Name, active: plan.Active})
	}
	if known(state.ID) && state.DeletionPolicy.ValueString() == deletionPolicyDelete {
		r.data.services.deletable(state.ID.ValueString())
	}
	unitPriceChangeWarning(&resp.Diagnostics, sys, state, plan)
	if req.State.Raw.IsNull() {
		if id := replacedService(ctx, private); id != "" && support.delete {
			r.checkServiceUnused(ctx, &resp.Diagnostics, id, true)
		}
	} else {
		recordReplacedService(ctx, &resp.Diagnostics, private, state, support.delete)
	}
	owner, named := r.claimServiceName(ctx, &resp.Diagnostics, private, plan, config, state)
	if plan.DeletionPolicy.ValueString() == deletionPolicyDelete && !support.delete {
		resp.Diagnostics.AddAttributeError(path.Root("deletion_policy"), "Unsupported Deletion Policy",
			fmt.Sprintf("%s cannot delete services through its API, so deletion_policy = \"delete\" could never be carried out. "+
				"Use \"deactivate\" (the default) to keep the service for existing contracts, or \"abandon\" to leave it untouched.",
				systemTitle(sys)))
	}
	for _, other := range systemBlocks {
		if other == sys {
			continue
		}
		if !plan.block(other).IsNull() {
			resp.Diagnostics.AddAttributeError(path.Root(string(other)), systemTitle(other)+" Fields on Another PSA",
				fmt.Sprintf("The %s block only applies to %s, but the provider is configured for %s. Remove the block%s.",
					other, systemTitle(other), systemTitle(sys), blockHint(sys)))
		}
	}
	if sys == psa.SystemConnectWise && !plan.Name.IsUnknown() {
		if n := len([]rune(strings.TrimSpace(plan.Name.ValueString()))); n > backends.ConnectWiseMaxServiceName {
			resp.Diagnostics.AddAttributeError(path.Root("name"), "Service Name Too Long for ConnectWise",
				fmt.Sprintf("The name is %d characters long, but a ConnectWise catalog item's description (its name) holds "+
					"at most %d. Shorten the name; invoice_description may hold the long text.", n, backends.ConnectWiseMaxServiceName))
		}
		r.modifyConnectWisePlan(ctx, req, resp, plan, config, owner, named)
	}
	if !support.billingPeriod {
		stateOnlyWarning(&resp.Diagnostics, sys, "billing_period", config.BillingPeriod, state.BillingPeriod,
			"the billing cycle of the contract or agreement decides how often a line is billed")
	}
	if !support.invoiceDescription {
		stateOnlyWarning(&resp.Diagnostics, sys, "invoice_description", config.InvoiceDescription, state.InvoiceDescription,
			"its services have no invoice description")
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if sys == psa.SystemAutotask {
		r.modifyAutotaskPlan(ctx, req, resp, plan, config, state)
		// The check sends what the apply sends: the period type kept
		// from the state, or derived again.
		resp.Diagnostics.Append(getFlat(ctx, resp.Plan.Raw, &plan)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	r.checkServiceFields(ctx, &resp.Diagnostics, plan, config, state, req.State.Raw.IsNull())
}

// checkServiceFields asks a PSA that can tell before a write whether it
// would refuse a service (Autotask: the lengths of the name and of both
// descriptions, the name's use, the period type and the billing code;
// Kaseya BMS: the category, subcategory and unit of measure by name, and
// the name's use) whether it would refuse the planned one, so that such a
// value fails the plan on its attribute rather than the apply. Only a
// create, or a change of the name, a description, billing period or
// block, is checked;
// when one of those is known only at apply, the name alone is (a second
// service of one name fails the plan all the same). What the check reads
// is read once per provider process. An unreachable PSA adds a warning
// only; refused credentials or a base URL without the PSA's endpoints
// fail the plan (see planCheckFails).
func (r *serviceResource) checkServiceFields(ctx context.Context, diags *diag.Diagnostics, plan, config, state serviceResourceModel, create bool) {
	checker, ok := r.data.backend.(psa.ServiceFieldChecker)
	sys := r.data.system
	if !ok || plan.Name.IsUnknown() {
		return
	}
	if !create && plan.block(sys).Equal(state.block(sys)) && plan.Name.Equal(state.Name) && plan.BillingPeriod.Equal(state.BillingPeriod) &&
		plan.Description.Equal(state.Description) && plan.InvoiceDescription.Equal(state.InvoiceDescription) {
		return
	}
	// Attributes computed when unset are unknown in the plan of a create,
	// and read as unset; a configured one known only at apply is checked
	// by the apply, but for the name (see nameOnlyService).
	nameOnly := plan.block(sys).IsUnknown() || config.block(sys).IsUnknown() || plan.BillingPeriod.IsUnknown()
	if block := config.block(sys); !block.IsNull() && !block.IsUnknown() {
		for _, v := range block.Attributes() {
			nameOnly = nameOnly || v.IsUnknown()
		}
	}
	var svc *psa.Service
	if nameOnly {
		if svc = nameOnlyService(ctx, sys, plan, config); svc == nil {
			return
		}
	} else {
		svc = plan.toService(ctx)
	}
	// Its reads are lists and lookups by name, whose 404 is the address's.
	err := searchError(checker.CheckServiceFields(ctx, svc))
	var ve *psa.ValidationError
	if planCheckFails(err) {
		diags.AddError("Unable to Verify PSA Service Fields",
			psaErrorDetail(sys, "Looking up the values this service names", err))
		return
	}
	if nameOnly && (!errors.As(err, &ve) || (ve.Field != "name" && ve.Field != "identifier")) {
		return // the other fields are checked by the apply
	}
	switch {
	case err == nil:
	case errors.As(err, &ve) && ve.Field != "" && create && ve.Holder != "" && r.data.services.isDeletable(ve.Holder):
		// A replacement (a taint, -replace) is planned as a create after
		// the refresh or plan of the resource in the state, which records
		// its deletion policy. With deletion_policy = "delete" the apply
		// deletes the old service first (unless create_before_destroy),
		// and it then holds the value no longer.
	case errors.As(err, &ve) && ve.Field == "name" && sys == psa.SystemConnectWise:
		// ConnectWise accepts a second catalog item of one name (the
		// product id is its unique key), so the name is a duplicate only
		// when the product id is derived from it: a configured one says a
		// second item is meant. The item this resource replaces is no
		// duplicate of its own.
		switch {
		case ve.Holder != "" && ve.Holder == state.ID.ValueString():
		case connectWiseIdentifierSet(ctx, config):
			diags.AddAttributeWarning(path.Root("name"), "Catalog Item Name Already Used",
				fmt.Sprintf("ConnectWise will create a second catalog item of this name beside the existing one: %s.%s",
					strings.Join(ve.Messages, "; "), heldHint(ve, state.ID.ValueString())))
		default:
			diags.AddAttributeError(path.Root("name"), "Catalog Item Name Already Used",
				fmt.Sprintf("ConnectWise would create a second catalog item of this name: %s.%s",
					strings.Join(ve.Messages, "; "), heldHint(ve, state.ID.ValueString())))
		}
	case errors.As(err, &ve) && ve.Field != "":
		at := path.Root(string(sys)).AtName(ve.Field)
		if _, inBlock := serviceBlockAttrTypes[string(sys)][ve.Field]; !inBlock {
			at = path.Root(ve.Field)
		}
		diags.AddAttributeError(at, "Value Refused by "+systemTitle(sys),
			fmt.Sprintf("%s would refuse this service: %s.%s", systemTitle(sys), strings.Join(ve.Messages, "; "), heldHint(ve, state.ID.ValueString())))
	default:
		diags.AddAttributeWarning(path.Root(string(sys)), "Unable to Verify PSA Service Fields",
			psaErrorDetail(sys, "Looking up the values this service names", err))
	}
}

// modifyConnectWisePlan checks at plan time the fields ConnectWise requires
// when it creates a catalog item (identifier, description, customer
// description; see the reference in psa/connectwise), and the customer
// description's length on an update too, and plans the identifier the
// provider derives from the name, so that the apply cannot fail on them.
func (r *serviceResource) modifyConnectWisePlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse,
	plan, config serviceResourceModel, owner string, named bool) {
	var cw serviceConnectWiseModel
	if !config.ConnectWise.IsNull() && !config.ConnectWise.IsUnknown() {
		objectAs(ctx, config.ConnectWise, &cw)
	}
	name := plan.Name.ValueString()
	// The identifier matters to a create only; the customer description's
	// length to an update too.
	if req.State.Raw.IsNull() && cw.Identifier.IsNull() {
		id := backends.ConnectWiseIdentifier(name)
		if id == "" {
			resp.Diagnostics.AddAttributeError(path.Root("connectwise").AtName("identifier"), "Cannot Derive ConnectWise Identifier",
				fmt.Sprintf("ConnectWise requires a product id (identifier) for a new catalog item, and none can be derived from "+
					"the name %q, which has no letters or digits. Set connectwise { identifier = \"...\" }.", name))
			return
		}
		if !plan.ConnectWise.IsNull() {
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("connectwise").AtName("identifier"), id)...)
		}
		cw.Identifier = types.StringValue(id)
	}
	// Two new catalog items of the configuration with one product id: the
	// second create would fail. The owner is the name claim's (see
	// claimServiceName), so that a resource planned twice claims once, and
	// two of one name that both set one product id are told apart; two
	// resources with one name whose product ids are derived from it have
	// failed on the name already, and are not reported twice.
	if req.State.Raw.IsNull() && !cw.Identifier.IsUnknown() && named {
		id, desc := strings.TrimSpace(cw.Identifier.ValueString()), fmt.Sprintf("service %q", name)
		if other, ok := r.data.productIDs.claim(r.data.system, "product id", strings.ToLower(id), desc+"\x00"+owner); !ok {
			other, _, _ = strings.Cut(other, "\x00")
			resp.Diagnostics.AddAttributeError(path.Root("connectwise").AtName("identifier"), "ConnectWise Product ID Used Twice",
				fmt.Sprintf("The new catalog items of %s and of %s would both have product id %q, and ConnectWise keeps product "+
					"ids unique: the second create would fail. Set connectwise.identifier on one of them to another product id.",
					other, desc, id))
			return
		}
	}
	// The customer description is required too; the provider sends
	// customer_description, else invoice_description, else the name.
	desc, at := strings.TrimSpace(name), path.Root("name")
	switch {
	case cw.CustomerDescription.IsUnknown() || plan.InvoiceDescription.IsUnknown():
		return
	case cw.CustomerDescription.ValueString() != "":
		desc, at = cw.CustomerDescription.ValueString(), path.Root("connectwise").AtName("customer_description")
	case plan.InvoiceDescription.ValueString() != "":
		desc, at = plan.InvoiceDescription.ValueString(), path.Root("invoice_description")
	}
	if n := len([]rune(desc)); n > backends.ConnectWiseMaxCustomerDescription {
		resp.Diagnostics.AddAttributeError(at, "Customer Description Too Long for ConnectWise",
			fmt.Sprintf("ConnectWise sets a catalog item's customer description from this text, which is %d characters long; "+
				"ConnectWise holds at most %d. Shorten it, or set connectwise.customer_description.", n, backends.ConnectWiseMaxCustomerDescription))
	}
}

// privateKeyServiceNameOwner is the private-state key under which
// psa_service's ModifyPlan records the owner of the name a resource in the
// state is renamed to (see serviceNameRegistry): the second plan of a
// replacement, a create, claims the name as the first one did.
const privateKeyServiceNameOwner = "service_name_owner"

// privateKeyReplacedService is the private-state key under which the plan
// of a service in the state records its id when the service's
// deletion_policy is "delete" (and removes it otherwise). Terraform plans a
// replacement (terraform apply -replace, replace_triggered_by) a second
// time, with a null prior state but the first plan's private data, and
// the replacement deletes that service with the state's policy before it
// creates the new one: the second plan checks that the PSA would let it
// (checkServiceUnused). A tainted resource is planned once, as a create
// with no private data, so its replacement is not checked. Create removes
// the key, so that the new service's state does not keep the old id.
const privateKeyReplacedService = "replaced_service"

// recordReplacedService records in the plan's private data of a service
// in the state the service a replacement would delete (see
// privateKeyReplacedService): its id when its policy is "delete" on a PSA
// that deletes services, or nothing.
func recordReplacedService(ctx context.Context, diags *diag.Diagnostics, private privateData, state serviceResourceModel, deletes bool) {
	var v []byte
	if deletes && known(state.ID) && state.DeletionPolicy.ValueString() == deletionPolicyDelete {
		v, _ = json.Marshal(state.ID.ValueString()) // a string always encodes
	}
	if old, _ := private.GetKey(ctx, privateKeyReplacedService); !bytes.Equal(old, v) {
		diags.Append(private.SetKey(ctx, privateKeyReplacedService, v)...)
	}
}

// replacedService returns the service that the replacement planned with
// private would delete (see privateKeyReplacedService), or "".
func replacedService(ctx context.Context, private privateData) string {
	v, diags := private.GetKey(ctx, privateKeyReplacedService)
	var id string
	if diags.HasError() || len(v) == 0 || json.Unmarshal(v, &id) != nil {
		return ""
	}
	return id
}

// claimServiceName claims the name of a new service, or the new name of a
// renamed one, for this resource in the plan being made (see
// serviceNameRegistry), and fails the plan when another psa_service of the
// configuration claimed it: the PSA's own names, which checkServiceFields
// reads, do not hold a name that another resource of the plan is about to
// take. On ConnectWise two catalog items that both set
// connectwise.identifier only warn, as a name in use does. It returns the
// claim's owner ("" when it claims nothing: an unknown name, or a resource
// in the state that keeps its name) and whether the name is this
// resource's alone.
func (r *serviceResource) claimServiceName(ctx context.Context, diags *diag.Diagnostics, private privateData,
	plan, config, state serviceResourceModel) (owner string, ok bool) {
	if plan.Name.IsUnknown() || (known(state.ID) && plan.Name.Equal(state.Name)) {
		return "", true
	}
	c := serviceNameClaim{name: plan.Name.ValueString(), ownIdentifier: connectWiseIdentifierSet(ctx, config)}
	switch v, d := private.GetKey(ctx, privateKeyServiceNameOwner); {
	case known(state.ID):
		c.id = state.ID.ValueString()
		c.owner = "service " + c.id
		v, _ := json.Marshal(c.owner) // a string always encodes
		diags.Append(private.SetKey(ctx, privateKeyServiceNameOwner, v)...)
	case !d.HasError() && len(v) > 0 && json.Unmarshal(v, &c.owner) == nil && c.owner != "":
		// The create of a replacement, whose first plan claimed the name.
	default:
		c.owner = "plan " + newClaimID()
	}
	other, taken := r.data.serviceNames.claim(c)
	if !taken {
		return c.owner, true
	}
	sys := r.data.system
	theirs := fmt.Sprintf("would create a service named %q", other.name)
	if other.id != "" {
		theirs = fmt.Sprintf("renames service %s to %q", other.id, other.name)
	}
	ours := fmt.Sprintf("this one would create a service named %q", c.name)
	if c.id != "" {
		ours = fmt.Sprintf("this one renames service %s to %q", c.id, c.name)
	}
	find := fmt.Sprintf(" Terraform does not tell the provider the other resource's address: look for a psa_service named %q "+
		"(in any case) in the configuration, its modules and the instances of its count and for_each.", other.name)
	if sys == psa.SystemConnectWise && c.ownIdentifier && other.ownIdentifier {
		diags.AddAttributeWarning(path.Root("name"), "Catalog Item Name Used Twice",
			fmt.Sprintf("Another psa_service of this configuration %s, and %s: ConnectWise will hold two catalog items of one "+
				"name (both set connectwise.identifier, which says a second item is meant).%s", theirs, ours, find))
		return c.owner, true
	}
	why := fmt.Sprintf("%s refuses a second service of one name, so the apply would make the first and fail on the "+
		"second, leaving a partial apply", systemTitle(sys))
	if sys == psa.SystemConnectWise {
		why = "ConnectWise would hold two catalog items of one name (unless both set connectwise.identifier, which says a " +
			"second item is meant), which agreements and invoices do not tell apart"
	}
	diags.AddAttributeError(path.Root("name"), "Service Name Used Twice",
		fmt.Sprintf("Another psa_service of this configuration %s, and %s. The names are one but for case or surrounding "+
			"spaces, which %s does not tell apart: %s. Give one of them another name.%s", theirs, ours, systemTitle(sys), why, find))
	return c.owner, false
}

// nameOnlyService is the service to check for a name (or, in ConnectWise,
// a product id) in use when a value the check needs is known only at
// apply (a billing code or period from another resource): the name alone,
// with ConnectWise's configured product id, so that a second service of
// the name fails the plan all the same. It is nil when the product id is
// itself unknown.
func nameOnlyService(ctx context.Context, sys psa.System, plan, config serviceResourceModel) *psa.Service {
	svc := &psa.Service{ID: plan.ID.ValueString(), Name: plan.Name.ValueString(), BillingPeriod: psa.BillingPeriodMonthly}
	if sys != psa.SystemConnectWise || config.ConnectWise.IsNull() {
		return svc
	}
	if config.ConnectWise.IsUnknown() {
		return nil
	}
	var cw serviceConnectWiseModel
	objectAs(ctx, config.ConnectWise, &cw)
	if cw.Identifier.IsUnknown() {
		return nil
	}
	svc.ConnectWise = &psa.ConnectWiseServiceFields{Identifier: cw.Identifier.ValueString()}
	return svc
}

// heldHint tells what to do about the service ve.Holder, which holds the
// value (ve.Field) that this resource's service would take; own is the id
// of this resource's service, "" for a create. For a name, that service
// may be one another resource of the plan renames away from it (two
// services swapping names, or a new service taking the old name of a
// renamed one): the PSA holds the name until that rename is applied, and
// Terraform does not order the two changes, nor tell the provider the
// other's plan (it may be planned after this one), so the rename must be
// applied first, in an apply of its own. The import and moved-block
// advice fits a create only: a resource in the state manages a service
// already.
func heldHint(ve *psa.ValidationError, own string) string {
	if ve.Holder == "" {
		return ""
	}
	if ve.Field != "name" {
		if own != "" {
			return ""
		}
		return importHint(ve.Holder)
	}
	if own == "" {
		return fmt.Sprintf(" If another psa_service of this configuration renames service %[1]s away from this name in this plan, "+
			"the name is free only once that rename is applied, and Terraform may create this service first: apply the rename "+
			"on its own first (without this resource, or with terraform apply -target=<that resource's address>), then this "+
			"resource in a second apply.", ve.Holder) + importHint(ve.Holder)
	}
	return fmt.Sprintf(" If another psa_service of this configuration renames service %[1]s away from this name in this plan "+
		"(the two swap names), the name is free only once that rename is applied, and Terraform may apply this one first: rename "+
		"one at a time, each in an apply of its own, through a temporary name for a swap (first this service to a name no "+
		"service has, then service %[1]s to its new name, then this one to its new name). Otherwise give this resource "+
		"another name, or rename service %[1]s first.", ve.Holder)
}

// importHint tells how to bring the service with id holder, which holds
// the value a new service would take, under this resource instead of
// creating another: the diagnostic names the resource's address.
func importHint(holder string) string {
	if holder == "" {
		return ""
	}
	return fmt.Sprintf(" If this resource is one that manages service %[1]s under a new address (renamed, or moved into a module, "+
		"without a moved block), add a moved block from the old address to this one. If no resource manages service %[1]s "+
		"(it was left by a lost state, a terraform state rm or a removed block, or made by hand), manage it with this resource "+
		"instead: terraform import <this resource's address> %[1]s, or an import block with id = %[1]q (then plan again to see "+
		"what the configuration would change).", holder)
}

// connectWiseIdentifierSet reports whether config sets
// connectwise.identifier itself.
func connectWiseIdentifierSet(ctx context.Context, config serviceResourceModel) bool {
	if config.ConnectWise.IsNull() || config.ConnectWise.IsUnknown() {
		return false
	}
	var cw serviceConnectWiseModel
	objectAs(ctx, config.ConnectWise, &cw)
	return !cw.Identifier.IsNull()
}

// connectWiseIDValidator accepts ConnectWise record ids: positive whole
// numbers, as the API takes them in a reference ({"id": 12}).
var connectWiseIDValidator = stringvalidator.RegexMatches(regexp.MustCompile(`^[1-9][0-9]{0,18}$`),
	"must be a ConnectWise record id, a positive whole number")

// blockHint names the block that holds the configured PSA's own fields.
func blockHint(sys psa.System) string {
	return fmt.Sprintf(", or use a %s block for %s's own fields", sys, systemTitle(sys))
}

// stateOnlyWarning warns when a field the PSA does not store is configured
// on create, or changed, so that nobody expects it to reach the PSA. Plans
// that leave it as it is stay quiet.
func stateOnlyWarning(diags *diag.Diagnostics, sys psa.System, name string, config, state types.String, why string) {
	if config.IsNull() || config.IsUnknown() || config.Equal(state) {
		return
	}
	diags.AddAttributeWarning(path.Root(name), "Value Not Stored in "+systemTitle(sys),
		fmt.Sprintf("%s does not store %s for a service (%s), so the value is kept in the Terraform state only and "+
			"changes nothing in the PSA.", systemTitle(sys), name, why))
}

// modifyAutotaskPlan checks the autotask block against billing_period and
// derives its period type label.
func (r *serviceResource) modifyAutotaskPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, plan, config, state serviceResourceModel) {
	if plan.Autotask.IsNull() || plan.Autotask.IsUnknown() {
		return
	}
	var cfgAT serviceAutotaskModel
	if !config.Autotask.IsNull() && !config.Autotask.IsUnknown() {
		objectAs(ctx, config.Autotask, &cfgAT)
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
	var planAT serviceAutotaskModel
	objectAs(ctx, plan.Autotask, &planAT)
	if cfgAT.PeriodType.IsNull() {
		if plan.BillingPeriod.Equal(state.BillingPeriod) && !state.Autotask.IsNull() {
			var stateAT serviceAutotaskModel
			objectAs(ctx, state.Autotask, &stateAT)
			planAT.PeriodType = stateAT.PeriodType
		} else {
			planAT.PeriodType = types.StringUnknown()
		}
		obj, diags := flatObject(ctx, serviceAutotaskAttrTypes, planAT)
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
	svc := plan.toService(ctx)

	// The name is not checked here again: Terraform plans the resource
	// again in the apply's provider process right before this call, and
	// that plan's checkServiceFields reads the PSA's names afresh (once
	// per process), so a service of the name made since the plan fails
	// that plan (TestAccServiceResource_nameTakenSinceThePlan).
	created, err := r.data.backend.CreateService(ctx, svc)
	if err != nil {
		detail := psaErrorDetail(r.data.system, fmt.Sprintf("Creating service %q", svc.Name), err)
		if errors.Is(err, psa.ErrOutcomeUnknown) {
			detail += r.lostCreateHint(ctx, svc.Name)
		}
		resp.Diagnostics.AddError("Error Creating PSA Service", detail)
		return
	}
	tflog.Info(ctx, "Created PSA service", map[string]any{"id": created.ID, "name": created.Name})
	r.data.reads.services.put(created.ID, created)

	state, diags := newServiceModel(ctx, r.data.system, created, plan)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
	if resp.Private != nil {
		// The plan of a replacement's create holds the replaced service.
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateKeyReplacedService, nil)...)
	}
}

// lostCreateHint names the services called name that the PSA has after a
// create whose outcome is unknown, one of which the create may have made:
// the state does not hold it, so the next apply would create another.
func (r *serviceResource) lostCreateHint(ctx context.Context, name string) string {
	found, err := r.data.backend.FindServices(ctx, name)
	if err != nil || len(found) == 0 {
		return ""
	}
	ids := make([]string, 0, len(found))
	for _, f := range found {
		ids = append(ids, f.ID)
	}
	return fmt.Sprintf("\n\n%s now has %d service(s) named %q: %s. If this apply created one of them, import it "+
		"(terraform import <this resource's address> <id>) before applying again: this resource is not in the state, "+
		"and the next apply would create another.", systemTitle(r.data.system), len(found), name, strings.Join(ids, ", "))
}

func (r *serviceResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = r.data.maskedContext(ctx)
	var state serviceResourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.State.Raw, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}

	// A tainted resource is planned as a create, with no plan of the
	// resource in the state before it (see checkServiceFields).
	if known(state.ID) && state.DeletionPolicy.ValueString() == deletionPolicyDelete {
		r.data.services.deletable(state.ID.ValueString())
	}
	svc, err := r.data.reads.services.get(ctx, state.ID.ValueString())
	if errors.Is(err, psa.ErrNotFound) {
		if perr := r.data.confirmGone(ctx); perr != nil {
			resp.Diagnostics.AddError("Cannot Confirm PSA Service Is Gone", unconfirmedGone(r.data.system, "service "+state.ID.ValueString(), err, perr))
			return
		}
		tflog.Warn(ctx, fmt.Sprintf(logRemovedFromState, "PSA service "+state.ID.ValueString()))
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Error Reading PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Reading service %s", state.ID.ValueString()), err))
		return
	}

	newState, diags := newServiceModel(ctx, r.data.system, svc, state)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(setFlat(ctx, &resp.State, newState)...)
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

	svc := plan.toService(ctx)
	svc.ID = state.ID.ValueString()

	updated, err := r.data.backend.UpdateService(ctx, svc)
	r.data.reads.services.forget(svc.ID)
	if err != nil {
		resp.Diagnostics.AddError("Error Updating PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Updating service %s (%q)", svc.ID, svc.Name), err))
		return
	}
	tflog.Info(ctx, "Updated PSA service", map[string]any{"id": updated.ID, "name": updated.Name})
	r.data.reads.services.put(updated.ID, updated)

	newState, diags := newServiceModel(ctx, r.data.system, updated, plan)
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
	if policy := state.DeletionPolicy.ValueString(); policy != deletionPolicyAbandon && !r.checkUnmapped(ctx, &resp.Diagnostics, id, policy) {
		return
	}

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
		if errors.Is(err, psa.ErrValidation) || errors.Is(err, psa.ErrConflict) {
			resp.Diagnostics.AddAttributeError(path.Root("deletion_policy"), "Cannot Delete PSA Service",
				fmt.Sprintf("%s refused to delete service %s, usually because %s still use it. "+
					"Set deletion_policy to \"deactivate\" (the service stays for existing contracts and invoices) or "+
					"\"abandon\" and apply, then destroy again; or remove the service's lines from %s in %s first, "+
					"if it is meant to be gone from them (psa-syncd does not remove lines), and destroy again.\n\n%s",
					systemTitle(r.data.system), id, serviceUsers(r.data.system), serviceUsers(r.data.system), systemTitle(r.data.system), err))
			return
		}
	default:
		err = r.data.backend.DeactivateService(ctx, id)
	}
	r.data.reads.services.forget(id)
	if errors.Is(err, psa.ErrNotFound) {
		if perr := r.data.confirmGone(ctx); perr != nil {
			resp.Diagnostics.AddError("Cannot Confirm PSA Service Is Gone", unconfirmedGone(r.data.system, "service "+id, err, perr))
			return
		}
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

// checkServiceUnused fails the plan of a destroy with deletion_policy =
// "delete" of a service that contract lines still use, where the PSA
// refuses that delete and can say so in one read (psa.ServiceLineLister:
// Kaseya BMS). The apply would fail at the delete, after the other changes
// of the same apply were made. One request per such destroy, which is
// rare; a read that fails only warns (the apply's own error is clear),
// unless the PSA refuses the credentials or the address (planCheckFails).
func (r *serviceResource) checkServiceUnused(ctx context.Context, diags *diag.Diagnostics, id string, replacing bool) {
	lister, ok := r.data.backend.(psa.ServiceLineLister)
	if !ok {
		return
	}
	sys := r.data.system
	lines, total, err := lister.ServiceLines(ctx, id)
	if err != nil {
		err = searchError(err)
		add := diags.AddAttributeWarning
		if planCheckFails(err) {
			add = diags.AddAttributeError
		}
		add(path.Root("deletion_policy"), "Unable to Verify PSA Service Is Unused",
			psaErrorDetail(sys, fmt.Sprintf("Reading the %s of service %s, which %s refuses to delete while any use it", serviceUsers(sys), id, systemTitle(sys)), err))
		return
	}
	if total == 0 {
		return
	}
	var named []string // a contract once, however many of its lines use the service
	for _, l := range lines {
		if n := fmt.Sprintf("contract %s %q of %q", l.ContractID, l.ContractName, l.CompanyName); !slices.Contains(named, n) {
			named = append(named, n)
		}
	}
	list := strings.Join(named, ", ")
	if more := total - len(lines); more > 0 {
		list += fmt.Sprintf(" and %d more", more)
	}
	if len(named) == 0 {
		list = "none named in its answer"
	}
	what, then := "this destroy", "destroy"
	if replacing {
		// The destroy half of a replacement uses the policy in the state.
		what, then = "this replacement, which deletes it first,", "replace it"
	}
	diags.AddAttributeError(path.Root("deletion_policy"), "PSA Service Still on Contract Lines",
		fmt.Sprintf("%s refuses to delete service %s while %s use it, and %d do (%s), so %s with deletion_policy = "+
			"\"delete\" would fail at apply. Set deletion_policy to \"deactivate\" (the service stays for existing contracts "+
			"and invoices) or \"abandon\" and apply, then %s; or remove the service's lines from those contracts in %s "+
			"first, if it is meant to be gone from them (psa-syncd does not remove lines).",
			systemTitle(sys), id, serviceUsers(sys), total, list, what, then, systemTitle(sys)))
}

// checkUnmapped reports whether the service id may be deactivated or
// deleted (policy) at apply: whether the mapping export, as this command
// last read or wrote it, maps no product to it. The plan refuses a destroy
// of a service that a product mapping of the configuration still refers to
// when it sees both (see serviceRegistry), but not one whose mapping gets
// its service_id only at apply, nor a mapping of another configuration or
// left out with -target. A mapping removed from the export by this apply
// before this destroy is no longer in it; one that names the service
// through psa_service.<name>.id is always removed (or moved) first, since
// Terraform destroys a resource after those that refer to it.
func (r *serviceResource) checkUnmapped(ctx context.Context, diags *diag.Diagnostics, id, policy string) bool {
	if r.data.store == nil {
		return true
	}
	// A mapping that this apply removes or moves to another service, but
	// that names the service by its id, may be written after this destroy
	// starts (nothing orders the two): look again after each of this
	// command's next writes (see retryOnRelease).
	var mappings []string
	var err error
	r.data.retryOnRelease(ctx, func() (blocked bool) {
		var doc *export.Document
		var found bool
		doc, found, err = r.data.readExport(ctx)
		mappings = nil
		if err != nil || !found {
			return false
		}
		for _, m := range doc.ProductMappings {
			if m.ServiceID == id {
				mappings = append(mappings, productMappingImportID.format(m.Source, m.Product))
			}
		}
		return len(mappings) > 0
	})
	switch {
	case err != nil:
		exportReadError(diags, r.data.exportPath, err)
		return false
	case len(mappings) == 0:
		return true
	}
	diags.AddError(summaryServiceStillMapped, serviceStillMappedDetail(r.data.system, id, policy,
		fmt.Sprintf("the mapping export %q", r.data.exportPath), mappings)+
		fmt.Sprintf(" The service was left as it is. If this apply also removes those mappings or moves them to another service, the provider waited %s for that "+
			"change and it did not come: apply again. To replace the service, set "+
			"create_before_destroy on its psa_service, so that the mappings move to the new service before the old one goes.", conflictWait))
	return false
}

// summaryServiceStillMapped is the summary of the error for a destroy of a
// service that product mappings still refer to, at plan and at apply.
const summaryServiceStillMapped = "PSA Service Still Mapped"

// serviceStillMappedDetail says that service id cannot be destroyed with
// policy because where (the configuration or the export) maps mappings
// to it.
func serviceStillMappedDetail(system psa.System, id, policy, where string, mappings []string) string {
	return fmt.Sprintf("Service %s is still mapped by %s: %s. Destroying its psa_service %s it in %s (deletion_policy = %q), "+
		"and psa-syncd would keep billing those products' usage on a service that is %s. "+
		"Remove those product mappings or map the products to another service, in the same change or first; or set "+
		"deletion_policy = \"abandon\" (and apply) to leave the service in the PSA.",
		id, where, strings.Join(mappings, ", "), destroyVerb(policy), systemTitle(system), policy, destroyedState(policy))
}

// destroyVerb is what destroying a psa_service with a deletion_policy
// other than "abandon" does to the service.
func destroyVerb(policy string) string {
	if policy == deletionPolicyDelete {
		return "deletes"
	}
	return "deactivates"
}

// destroyedState is what the service is after destroyVerb.
func destroyedState(policy string) string {
	if policy == deletionPolicyDelete {
		return "gone"
	}
	return "inactive"
}

func (r *serviceResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	// The backends refuse such an id before sending a request, and Read
	// would report that as the PSA refusing the values.
	if r.data != nil {
		if err := psa.CheckID(r.data.system, req.ID); err != nil {
			resp.Diagnostics.AddError(summaryUnexpectedImportID,
				fmt.Sprintf(detailServiceImportID, systemTitle(r.data.system), exampleServiceID(r.data.system), req.ID, err))
			return
		}
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// toService converts the planned values to the neutral service.
func (m serviceResourceModel) toService(ctx context.Context) *psa.Service {
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
	if !m.Autotask.IsNull() && !m.Autotask.IsUnknown() {
		var at serviceAutotaskModel
		objectAs(ctx, m.Autotask, &at)
		svc.Autotask = &psa.AutotaskServiceFields{
			BillingCodeID: at.BillingCodeID.ValueString(),
			PeriodType:    at.PeriodType.ValueString(),
		}
	}
	if !m.ConnectWise.IsNull() && !m.ConnectWise.IsUnknown() {
		var cw serviceConnectWiseModel
		objectAs(ctx, m.ConnectWise, &cw)
		// Unknown values read as "": the backend then derives the
		// identifier from the name and the customer description from
		// invoice_description, as the attributes document.
		svc.ConnectWise = &psa.ConnectWiseServiceFields{
			Identifier:          cw.Identifier.ValueString(),
			TypeID:              cw.TypeID.ValueString(),
			SubcategoryID:       cw.SubcategoryID.ValueString(),
			ProductClass:        cw.ProductClass.ValueString(),
			CustomerDescription: cw.CustomerDescription.ValueString(),
		}
	}
	if !m.KaseyaBMS.IsNull() && !m.KaseyaBMS.IsUnknown() {
		var bms serviceKaseyaBMSModel
		objectAs(ctx, m.KaseyaBMS, &bms)
		svc.KaseyaBMS = &psa.KaseyaBMSServiceFields{
			Category:      bms.Category.ValueString(),
			Subcategory:   bms.Subcategory.ValueString(),
			UnitOfMeasure: bms.UnitOfMeasure.ValueString(),
			Taxable:       bms.Taxable.ValueBool(),
		}
	}
	return svc
}

// newServiceModel converts a service from the PSA to the state. prior
// supplies what the PSA does not hold: deletion_policy, whether a PSA's own
// block is tracked, and the fields the PSA does not store (see
// serviceSupports). An import has none of these; it takes the defaults and
// leaves the blocks untracked, which matches the smallest configuration, so
// importing it plans no change.
func newServiceModel(ctx context.Context, system psa.System, svc *psa.Service, prior serviceResourceModel) (serviceResourceModel, diag.Diagnostics) {
	support := serviceSupports[system]
	m := serviceResourceModel{
		ID:                 types.StringValue(svc.ID),
		Name:               types.StringValue(svc.Name),
		Description:        types.StringValue(svc.Description),
		InvoiceDescription: types.StringValue(svc.InvoiceDescription),
		UnitPrice:          sameFloat(prior.UnitPrice, svc.UnitPrice),
		UnitCost:           sameFloat(prior.UnitCost, svc.UnitCost),
		BillingPeriod:      types.StringValue(string(svc.BillingPeriod)),
		Active:             types.BoolValue(svc.Active),
		DeletionPolicy:     prior.DeletionPolicy,
		Autotask:           types.ObjectNull(serviceAutotaskAttrTypes),
		ConnectWise:        types.ObjectNull(serviceConnectWiseAttrTypes),
		KaseyaBMS:          types.ObjectNull(serviceKaseyaBMSAttrTypes),
	}
	switch {
	case !support.billingPeriod && known(prior.BillingPeriod):
		m.BillingPeriod = prior.BillingPeriod
	case !support.billingPeriod:
		// An import: the PSA's own period (a ConnectWise recurring bill
		// cycle) is not what billing_period sets, so the default, which
		// the smallest configuration plans, is taken.
		m.BillingPeriod = types.StringValue(string(psa.BillingPeriodMonthly))
	case svc.BillingPeriod == "" && known(prior.BillingPeriod):
		// A tenant's own Autotask period type label may match no neutral
		// period; the label is then tracked in autotask.period_type alone.
		m.BillingPeriod = prior.BillingPeriod
	}
	switch {
	case !support.invoiceDescription && known(prior.InvoiceDescription):
		m.InvoiceDescription = prior.InvoiceDescription
	case !support.invoiceDescription:
		m.InvoiceDescription = types.StringValue("")
	case system == psa.SystemConnectWise:
		m.InvoiceDescription = connectWiseInvoiceDescription(ctx, svc, prior)
	}
	if m.DeletionPolicy.IsNull() || m.DeletionPolicy.IsUnknown() {
		m.DeletionPolicy = types.StringValue(deletionPolicyDeactivate)
	}

	var diags diag.Diagnostics
	var d diag.Diagnostics
	if svc.Autotask != nil && !prior.Autotask.IsNull() {
		m.Autotask, d = flatObject(ctx, serviceAutotaskAttrTypes, serviceAutotaskModel{
			BillingCodeID: types.StringValue(svc.Autotask.BillingCodeID),
			PeriodType:    types.StringValue(svc.Autotask.PeriodType),
		})
		diags.Append(d...)
	}
	if svc.ConnectWise != nil && !prior.ConnectWise.IsNull() {
		m.ConnectWise, d = flatObject(ctx, serviceConnectWiseAttrTypes, newServiceConnectWiseModel(svc.ConnectWise))
		diags.Append(d...)
	}
	if svc.KaseyaBMS != nil && !prior.KaseyaBMS.IsNull() {
		var was serviceKaseyaBMSModel
		objectAs(ctx, prior.KaseyaBMS, &was)
		// BMS resolves names case-insensitively and answers with its own
		// spelling; the configured spelling is kept when they match.
		m.KaseyaBMS, d = flatObject(ctx, serviceKaseyaBMSAttrTypes, serviceKaseyaBMSModel{
			Category:      sameName(was.Category, svc.KaseyaBMS.Category),
			Subcategory:   sameName(was.Subcategory, svc.KaseyaBMS.Subcategory),
			UnitOfMeasure: sameName(was.UnitOfMeasure, svc.KaseyaBMS.UnitOfMeasure),
			Taxable:       types.BoolValue(svc.KaseyaBMS.Taxable),
		})
		diags.Append(d...)
	}
	return m, diags
}

// newServiceConnectWiseModel converts a catalog item's fields. A type,
// subcategory or product class that ConnectWise leaves out of its answer
// (strict implementations omit null fields) is null, not "": an empty
// string would contradict a planned null and fail the apply.
func newServiceConnectWiseModel(cw *psa.ConnectWiseServiceFields) serviceConnectWiseModel {
	return serviceConnectWiseModel{
		Identifier:          types.StringValue(cw.Identifier),
		TypeID:              optionalString(cw.TypeID),
		SubcategoryID:       optionalString(cw.SubcategoryID),
		ProductClass:        optionalString(cw.ProductClass),
		CustomerDescription: types.StringValue(cw.CustomerDescription),
	}
}

func newServiceKaseyaBMSModel(bms *psa.KaseyaBMSServiceFields) serviceKaseyaBMSModel {
	return serviceKaseyaBMSModel{
		Category:      types.StringValue(bms.Category),
		Subcategory:   types.StringValue(bms.Subcategory),
		UnitOfMeasure: types.StringValue(bms.UnitOfMeasure),
		Taxable:       types.BoolValue(bms.Taxable),
	}
}

// connectWiseInvoiceDescription maps a catalog item's customerDescription
// back to invoice_description. ConnectWise requires a customer description,
// so the provider sends connectwise.customer_description when set, else
// invoice_description, else the name. When the PSA holds what that rule
// gives for prior, invoice_description stays as it was; an item whose
// customer description is its name (an import, or an empty
// invoice_description) reads as ""; anything else is drift and is shown.
func connectWiseInvoiceDescription(ctx context.Context, svc *psa.Service, prior serviceResourceModel) types.String {
	got := svc.InvoiceDescription
	want := svc.Name
	if known(prior.InvoiceDescription) && prior.InvoiceDescription.ValueString() != "" {
		want = prior.InvoiceDescription.ValueString()
	}
	if !prior.ConnectWise.IsNull() && !prior.ConnectWise.IsUnknown() {
		var cw serviceConnectWiseModel
		objectAs(ctx, prior.ConnectWise, &cw)
		if known(cw.CustomerDescription) && cw.CustomerDescription.ValueString() != "" {
			want = cw.CustomerDescription.ValueString()
		}
	}
	switch {
	case got == want && known(prior.InvoiceDescription):
		return prior.InvoiceDescription
	case got == svc.Name && (!known(prior.InvoiceDescription) || prior.InvoiceDescription.ValueString() == ""):
		return types.StringValue("")
	}
	return types.StringValue(got)
}

// sameFloat returns prior when the PSA's value got equals it as a float64,
// else got. Terraform parses a number in the configuration with 512 bits
// of precision, so a price such as 3.99 or 1.2 in the configuration is not
// the float64 the PSA answers, though it is the same price: a read that
// set the float64 made the next plan see a change (the framework's
// semantic equality of Float64, which keeps the prior value, does not run
// on the fast path of a read, see fastReads), and mark the computed
// attributes unknown, a perpetual update in every plan.
func sameFloat(prior types.Float64, got float64) types.Float64 {
	if known(prior) && prior.ValueFloat64() == got {
		return prior
	}
	return types.Float64Value(got)
}

// sameName returns the prior spelling of a name when the PSA's equals it
// ignoring case, else the PSA's.
func sameName(prior types.String, got string) types.String {
	if known(prior) && strings.EqualFold(prior.ValueString(), got) {
		return prior
	}
	return types.StringValue(got)
}

// known reports whether v has a value.
func known(v attr.Value) bool { return !v.IsNull() && !v.IsUnknown() }

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
		a.ConnectWise.Equal(b.ConnectWise) &&
		a.KaseyaBMS.Equal(b.KaseyaBMS) &&
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

// unconfirmedGone is the error of a not-found answer for what, which the
// PSA's address could not confirm (confirmGone): the object stays in the
// state, and nothing is planned to create it again.
func unconfirmedGone(system psa.System, what string, notFound, ping error) string {
	return fmt.Sprintf("%s answered that %s does not exist, but it does not answer a basic read at the configured "+
		"address either, so the answer may come from a wrong or outdated address rather than from a deleted %s. It stays "+
		"in the Terraform state, and nothing is planned to create it again: %s\n\nNot found: %v\nBasic read: %v",
		systemTitle(system), what, strings.SplitN(what, " ", 2)[0], addressHint(system), notFound, ping)
}

// serviceUsers names, in the PSA's words, what refuses the delete of a
// service that it bills.
func serviceUsers(system psa.System) string {
	switch system {
	case psa.SystemConnectWise:
		return "agreement additions"
	case psa.SystemKaseyaBMS:
		return "contract service lines"
	}
	return "contracts or agreements"
}
