package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// defaultSource is the usage source of mappings that do not name one.
const defaultSource = "sophos"

// summaryServiceTwoSources is the summary of the error for products of two
// usage sources feeding one service, at plan and at apply.
const summaryServiceTwoSources = "Service Fed by Two Usage Sources"

// Ensure productMappingResource satisfies the resource interfaces.
var (
	_ resource.Resource                = (*productMappingResource)(nil)
	_ resource.ResourceWithConfigure   = (*productMappingResource)(nil)
	_ resource.ResourceWithImportState = (*productMappingResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*productMappingResource)(nil)
)

// NewProductMappingResource returns the psa_product_mapping resource.
func NewProductMappingResource() resource.Resource {
	return &productMappingResource{}
}

// productMappingResource maps a vendor product to a PSA service in the
// mapping export.
type productMappingResource struct {
	data *providerData
}

// productMappingResourceModel maps the psa_product_mapping schema data.
type productMappingResourceModel struct {
	ID          types.String `tfsdk:"id"`
	Source      types.String `tfsdk:"source"`
	Product     types.String `tfsdk:"product"`
	ServiceID   types.String `tfsdk:"service_id"`
	ServiceName types.String `tfsdk:"service_name"`
	SyncEnabled types.Bool   `tfsdk:"sync_enabled"`
}

func (r *productMappingResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_product_mapping"
}

func (r *productMappingResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Maps a vendor product to a PSA service in the mapping export. psa-syncd bills the usage " +
			"of the product as quantities of the service on each mapped customer's contract; usage of several " +
			"products mapped to one service adds up. Products without a mapping are reported as unmapped and never " +
			"billed.\n\n" +
			"The plan checks that the service exists and is active (a mapping the plan does not change, whose service was " +
			"made inactive in the PSA since it was applied, gets a warning instead: psa-syncd fails that service's lines " +
			"already, and an error would hold up the configuration's other changes; so does a mapping with `sync_enabled = false`, " +
			"which bills nothing, until a plan turns `sync_enabled` on), and that no products of another usage source " +
			"with `sync_enabled` feed the same service in the same configuration (psa-syncd sets a line to one " +
			"source's usage, so two sources would overwrite each other). What the plan cannot see (a `service_id` or " +
			"`sync_enabled` unknown until the apply, mappings of other configurations or left out with `-target`), the apply " +
			"checks against the export: it refuses to write a product with `sync_enabled` on a service that products of another " +
			"source feed. A new or changed mapping that the export read by the plan shows to be refused so warns at plan time " +
			"(Service Fed by Two Usage Sources, on `service_id`): a warning only, since those products' mappings may be ones " +
			"this plan removes or moves. When the same apply removes those or moves them to another service, Terraform may run this change " +
			"first, which then waits up to 20 seconds for that change. Destroying the mapping removes it from the " +
			"export, which stops usage sync for the product; it never changes contracts in the PSA: the lines psa-syncd set " +
			"for it keep the quantities it last set and go on invoicing (psa-syncd lists them as orphaned lines). The plan " +
			"that destroys a mapping with `sync_enabled` on warns (Removed Mapping's Lines Still Bill): set those lines to 0 " +
			"in the PSA after the apply. When another product mapping of the same source names the service with `sync_enabled` " +
			"on in the same plan, the warning is Removed Mapping's Lines Taken Over instead, naming that mapping: psa-syncd goes " +
			"on writing those lines, at that product's usage, so leave them (Terraform plans the two in either order; if the " +
			"destroy comes first, it also gives the first warning, which the second one sets aside).\n\n" +
			"Changing `service_id` to another service (a new SKU) moves the billing of the product: psa-syncd no longer " +
			"writes the lines of the old service (unless another product mapping of the source names it with `sync_enabled` on), which keep the " +
			"quantities it last set and go on invoicing, and it holds each customer's line of the new service that it would " +
			"add while its ledger says that the customer's line of the old service still bills (hold `previous_service`). " +
			"The plan warns (Previous Service Still Bills): set the old service's lines to 0 in the PSA (on Autotask and " +
			"ConnectWise PSA the next pass then adds the new lines), or approve each held line " +
			"(`psa-syncd sync --approve --customer ID --service ID`, or the status page).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "`<source>/<product>`, the key of the mapping in the export.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"source": schema.StringAttribute{
				MarkdownDescription: "Usage source the product comes from, as named in the psa-syncd configuration. " +
					"Defaults to `\"sophos\"`. Changing it replaces the mapping.",
				Optional:      true,
				Computed:      true,
				Default:       stringdefault.StaticString(defaultSource),
				Validators:    []validator.String{keyPart()},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"product": schema.StringAttribute{
				MarkdownDescription: "The vendor's product code, e.g. the Sophos licence code `\"CIXA-MSP\"`. " +
					"Changing it replaces the mapping.",
				Required:      true,
				Validators:    []validator.String{keyLastPart()},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"service_id": schema.StringAttribute{
				MarkdownDescription: "Id of the PSA service the product is billed as, usually `psa_service.<name>.id` or " +
					"`data.psa_service.<name>.id`. The service must exist and be active." + psaIDDescription,
				Required:   true,
				Validators: []validator.String{nonEmpty()},
			},
			"service_name": schema.StringAttribute{
				MarkdownDescription: "Name of the service, written to the export for people reading it. It is read from the " +
					"PSA when the plan is made; when `service_id` refers to a `psa_service` whose name the same plan changes, " +
					"the plan shows the new name.",
				Computed: true,
			},
			"sync_enabled": schema.BoolAttribute{
				MarkdownDescription: "Whether psa-syncd sets quantities for the product. `false` keeps the mapping but stops " +
					"usage sync for it. Defaults to `true`.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
			},
		},
	}
}

func (r *productMappingResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedResourceConfigure)
}

// ModifyPlan checks that the service exists and is active and plans its
// current name, so that the export records what the PSA calls it.
func (r *productMappingResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	r.data.checkExportWritable(ctx, &resp.Diagnostics, req.Plan.Raw, req.State.Raw)
	if !req.Plan.Raw.IsNull() {
		// Its apply may read its service again (see planChecks).
		r.data.checkPSABudget(ctx, &resp.Diagnostics, "psa_product_mapping", req.Plan.Raw, req.State.Raw, costProductMapping)
	}
	r.planChecks(ctx, req, resp, resp.Private)
	if !resp.Diagnostics.HasError() {
		r.checkExportFields(ctx, req, resp)
	}
}

// checkExportFields fails the plan when psa-syncd, as the export store,
// does not read a field the mapping's entry would hold (see
// providerData.checkExportFields): an owner token.
func (r *productMappingResource) checkExportFields(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan productMappingResourceModel
	if getFlat(ctx, req.Plan.Raw, &plan).HasError() {
		return
	}
	m := plan.toMapping()
	r.data.checkMappingFields(ctx, &resp.Diagnostics, req.Private, req.Plan.Raw, req.State.Raw,
		"product mapping "+productMappingImportID.format(m.Source, m.Product),
		func(doc *export.Document) bool {
			_, ok := doc.Product(m.Source, m.Product)
			return ok
		},
		func(doc *export.Document, owner string) {
			m.Owner = owner
			doc.PutProduct(m)
		},
		func(string) (path.Path, bool) { return path.Path{}, false })
}

// planChecks is ModifyPlan with the plan's private data, which the
// framework passes as both req.Private and resp.Private, given apart so
// that the fast path of a refresh plan (see fastPaths) can call it too.
func (r *productMappingResource) planChecks(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, private privateData) {
	if req.Plan.Raw.IsNull() {
		productMappingDestroyWarning(ctx, req, resp, r.data)
		return
	}
	if r.data == nil {
		return
	}
	if !r.data.requireStore(&resp.Diagnostics, "psa_product_mapping") {
		return
	}
	ctx = r.data.maskedContext(ctx)

	var plan productMappingResourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.Plan.Raw, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var state *productMappingResourceModel
	if !req.State.Raw.IsNull() {
		state = new(productMappingResourceModel)
		resp.Diagnostics.Append(getFlat(ctx, req.State.Raw, state)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if !psaIDsValid(&resp.Diagnostics, r.data.system, plan.psaIDs()) {
		return
	}

	var planKey string // unknown until the apply: ""
	if !plan.Source.IsUnknown() && !plan.Product.IsUnknown() {
		planKey = productMappingImportID.format(plan.Source.ValueString(), plan.Product.ValueString())
	}
	owner := fmt.Sprintf("service_id %s", plan.ServiceID)
	if state != nil {
		id := productMappingImportID.format(state.Source.ValueString(), state.Product.ValueString())
		r.data.claimExisting(ctx, &resp.Diagnostics, private, "product mapping "+id, id, planKey, owner)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if state == nil && planKey != "" && !replacesExportKey(ctx, private, planKey) {
		source, product := plan.Source.ValueString(), plan.Product.ValueString()
		id := planKey
		r.data.checkCreate(ctx, &resp.Diagnostics, "product mapping "+id, id, owner, func(doc *export.Document) (bool, bool) {
			m, ok := doc.Product(source, product)
			// service_name is planned below from the PSA; the entry's is
			// what an earlier apply read.
			return ok, ok && known(plan.ServiceID) && known(plan.SyncEnabled) &&
				m.ServiceID == plan.ServiceID.ValueString() && m.SyncEnabled == plan.SyncEnabled.ValueBool()
		})
		if resp.Diagnostics.HasError() {
			return
		}
	}

	if oldID := repointedFrom(state, &plan); oldID != "" {
		id := productMappingImportID.format(state.Source.ValueString(), state.Product.ValueString())
		newID := ""
		if known(plan.ServiceID) {
			newID = plan.ServiceID.ValueString()
		}
		summary, detail := repointWarning(id, state.Source.ValueString(), oldID, newID, r.data.system)
		resp.Diagnostics.AddAttributeWarning(path.Root("service_id"), summary, detail)
	}

	// The service is created in this apply: its id and name are unknown, and
	// Create checks it instead.
	if plan.ServiceID.IsUnknown() {
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("service_name"), types.StringUnknown())...)
		return
	}

	serviceID := plan.ServiceID.ValueString()
	if !plan.Source.IsUnknown() && !plan.SyncEnabled.IsUnknown() && plan.SyncEnabled.ValueBool() {
		source := plan.Source.ValueString()
		if other, ok := r.data.serviceSources.claim(r.data.system, "service", serviceID, source); !ok {
			resp.Diagnostics.AddAttributeError(path.Root("service_id"), summaryServiceTwoSources,
				fmt.Sprintf("Service %s is mapped by products of usage source %q and of usage source %q in this configuration, "+
					"both with sync_enabled on. psa-syncd syncs one source at a time and sets a line to that source's usage, so "+
					"two sources on one service would overwrite each other's quantity on every contract both bill. "+
					"Map each source's products to its own service, or set sync_enabled = false on one of them.",
					serviceID, other, source))
			return
		}
		// An unchanged mapping writes nothing, so the apply refuses nothing.
		if state == nil || !state.ServiceID.Equal(plan.ServiceID) || !state.SyncEnabled.Equal(plan.SyncEnabled) {
			r.exportSourceWarning(ctx, &resp.Diagnostics, &plan)
		}
		if planKey != "" {
			if removed := r.data.services.syncProduct(serviceID, source, planKey); len(removed) > 0 {
				resp.Diagnostics.AddAttributeWarning(path.Root("service_id"), summaryRemovedMappingTakenOver,
					takenOverDetail(removed, []string{planKey}, serviceID))
			}
		}
	}
	mapping := planKey
	if mapping == "" {
		mapping = fmt.Sprintf("product %s", plan.Product)
	}
	svc, err := r.data.reads.services.get(ctx, serviceID)
	planned, changed := r.data.services.mapProduct(serviceID, mapping)
	// deactivates: a psa_service of this plan makes the service inactive.
	// An active value unknown until the apply is checked when Terraform
	// plans the mapping again during the apply, with the value known.
	deactivates := changed && known(planned.active) && !planned.active.ValueBool()
	syncOff := known(plan.SyncEnabled) && !plan.SyncEnabled.ValueBool()
	switch {
	case changed && planned.destroyed != "":
		resp.Diagnostics.AddAttributeError(path.Root("service_id"), summaryServiceStillMapped,
			fmt.Sprintf("This plan destroys the psa_service of service %s, which %s it in %s (deletion_policy = %q), but product "+
				"mapping %s stays and refers to it: psa-syncd would keep billing the product's usage on a service that is %s. "+
				"Remove the mapping or map the product to another service in the same change, or set deletion_policy = \"abandon\" "+
				"on the psa_service (and apply) to leave the service in the PSA.",
				serviceID, destroyVerb(planned.destroyed), systemTitle(r.data.system), planned.destroyed, mapping, destroyedState(planned.destroyed)))
		return
	case errors.Is(err, psa.ErrNotFound):
		if detail := r.data.notFoundUnconfirmed(ctx, "service "+serviceID, err); detail != "" {
			resp.Diagnostics.AddAttributeError(path.Root("service_id"), "Unable to Verify PSA Service", detail)
			return
		}
		resp.Diagnostics.AddAttributeError(path.Root("service_id"), "PSA Service Not Found",
			fmt.Sprintf("Service %s does not exist in %s, so product %q cannot be mapped to it. "+
				"Check service_id, or create the service with a psa_service resource.",
				serviceID, systemTitle(r.data.system), plan.Product.ValueString()))
		return
	case planCheckFails(err):
		resp.Diagnostics.AddAttributeError(path.Root("service_id"), "Unable to Verify PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Looking up service %s", serviceID), err))
		return
	case err != nil:
		// The check is a courtesy; an unreachable PSA must not block a plan
		// that only changes the export. A malformed id never gets here
		// (psaIDsValid), so a validation error is the PSA's own refusal,
		// which Autotask also gives for some server errors.
		resp.Diagnostics.AddAttributeWarning(path.Root("service_id"), "Unable to Verify PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Looking up service %s", serviceID), err))
		name := types.StringUnknown()
		switch {
		case changed:
			name = planned.name
		case state != nil && state.ServiceID.Equal(plan.ServiceID):
			name = state.ServiceName
		}
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("service_name"), name)...)
		return
	case deactivates && !syncOff:
		resp.Diagnostics.AddAttributeError(path.Root("service_id"), "Inactive PSA Service",
			fmt.Sprintf("This plan deactivates service %s (%q) in %s (active = false on its psa_service), and usage cannot be "+
				"billed on an inactive service. Map product %q to another service, or remove the mapping, in the same change.",
				svc.ID, svc.Name, systemTitle(r.data.system), plan.Product.ValueString()))
		return
	case !svc.Active && (!changed || deactivates) && unchangedMapping(state, &plan):
		// Deactivated in the PSA since the mapping was applied. psa-syncd
		// already fails the service's lines; failing the plan would not
		// stop that, but would stop every other change of the
		// configuration (other products, other customers) until this one
		// is fixed.
		resp.Diagnostics.AddAttributeWarning(path.Root("service_id"), "Inactive PSA Service",
			fmt.Sprintf("Service %s (%q) is inactive in %s, and product %q is mapped to it since an earlier apply. psa-syncd writes "+
				"nothing to an inactive service's lines: it fails them at each pass, and the product's usage is not billed, while the "+
				"lines it set before keep their quantities and go on invoicing (psa_sync_lines_on_inactive_services). If the service "+
				"is still sold, make it active again (active = true on its psa_service, or in %s); if it was retired, map product %q "+
				"to an active service. This is a warning so that the plan's other changes can be applied; a new or changed mapping "+
				"to an inactive service fails the plan.",
				svc.ID, svc.Name, systemTitle(r.data.system), plan.Product.ValueString(), systemTitle(r.data.system), plan.Product.ValueString()))
	case syncOff && (deactivates || (!svc.Active && !changed)):
		// A mapping that bills nothing: a product kept on a retired
		// service (so that it is not reported as unmapped) changes no
		// invoice. Turning sync_enabled on is what fails (below).
		resp.Diagnostics.AddAttributeWarning(path.Root("service_id"), "Inactive PSA Service",
			inactiveSyncOffDetail(svc, plan.Product.ValueString(), r.data.system, deactivates))
	case !svc.Active && (!changed || deactivates):
		// Inactive, and this plan does not activate it.
		resp.Diagnostics.AddAttributeError(path.Root("service_id"), "Inactive PSA Service",
			fmt.Sprintf("Service %s (%q) is inactive in %s, and usage cannot be billed on an inactive service. "+
				"Activate it (active = true on its psa_service, with service_id = psa_service.<name>.id so that the plan sees "+
				"the change), or map product %q to another service.",
				svc.ID, svc.Name, systemTitle(r.data.system), plan.Product.ValueString()))
		return
	}
	// A psa_service changed in this plan gets its planned name, which may be
	// unknown until the apply: the export entry then follows the rename in
	// the same apply.
	name := types.StringValue(svc.Name)
	if changed {
		name = planned.name
	}
	if !plan.ServiceName.Equal(name) { // as planned already when neither the mapping nor the service changes
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("service_name"), name)...)
	}
}

// inactiveSyncOffDetail is the detail of the plan warning on a product
// mapping with sync_enabled = false to service svc, inactive in the PSA
// or made inactive by this plan (deactivates): it bills nothing, so the
// inactive service harms no invoice, but sync_enabled cannot be turned on
// while the service is inactive.
func inactiveSyncOffDetail(svc *psa.Service, product string, system psa.System, deactivates bool) string {
	is := fmt.Sprintf("Service %s (%q) is inactive in %s", svc.ID, svc.Name, systemTitle(system))
	if deactivates {
		is = fmt.Sprintf("This plan deactivates service %s (%q) in %s (active = false on its psa_service)", svc.ID, svc.Name, systemTitle(system))
	}
	return fmt.Sprintf("%s, and product %q is mapped to it with sync_enabled = false: psa-syncd bills nothing for the product "+
		"(its usage is listed as sync off, not as unmapped), so this is only a warning. A plan that sets sync_enabled = true fails "+
		"while the service is inactive: make it active again (active = true on its psa_service, or in %s), or map product %q to "+
		"an active service first.", is, product, systemTitle(system), product)
}

// unchangedMapping reports whether plan maps the product of state, a
// mapping already applied (or imported), to the same service with the same
// sync_enabled: a plan that does not change what psa-syncd bills the
// product as.
func unchangedMapping(state, plan *productMappingResourceModel) bool {
	return state != nil && state.Source.Equal(plan.Source) && state.Product.Equal(plan.Product) &&
		state.ServiceID.Equal(plan.ServiceID) && state.SyncEnabled.Equal(plan.SyncEnabled)
}

func (r *productMappingResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	ctx = r.data.maskedContext(ctx)
	var plan productMappingResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_product_mapping") {
		return
	}
	if !r.resolveServiceName(ctx, &plan, &resp.Diagnostics) {
		return
	}
	m := plan.toMapping()
	id := productMappingImportID.format(m.Source, m.Product)

	adopted, owner, err := r.data.createEntry(ctx, r.exportEntry(m.Source, m.Product, &m))
	if err != nil {
		exportWriteError(&resp.Diagnostics, "add", "product mapping "+id, r.data.exportPath, err)
		return
	}
	if adopted {
		resp.Diagnostics.AddWarning(summaryEntryAdopted, fmt.Sprintf(detailEntryAdopted, "Product mapping "+id, r.data.exportPath))
	}
	tflog.Info(ctx, "Created product mapping", map[string]any{"id": id, "service_id": m.ServiceID})

	plan.ID = types.StringValue(id)
	resp.Diagnostics.Append(setExportOwner(ctx, resp.Private, owner)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *productMappingResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = r.data.maskedContext(ctx)
	var state productMappingResourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.State.Raw, &state)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_product_mapping") {
		return
	}
	id := productMappingImportID.format(state.Source.ValueString(), state.Product.ValueString())

	doc, ok := r.data.readExportForState(ctx, &resp.Diagnostics, "Product mapping "+id)
	if !ok {
		return
	}
	m, found := doc.Product(state.Source.ValueString(), state.Product.ValueString())
	if !found {
		tflog.Warn(ctx, fmt.Sprintf(logRemovedFromState, "Product mapping "+id+" in "+r.data.exportPath))
		resp.State.RemoveResource(ctx)
		return
	}
	resp.Diagnostics.Append(setFlat(ctx, &resp.State, newProductMappingModel(m))...)
}

func (r *productMappingResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	ctx = r.data.maskedContext(ctx)
	var plan productMappingResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_product_mapping") {
		return
	}
	if !r.resolveServiceName(ctx, &plan, &resp.Diagnostics) {
		return
	}
	m := plan.toMapping()
	id := productMappingImportID.format(m.Source, m.Product)

	// The entry keeps the owner token this instance wrote, if any, so that
	// its Delete still removes it.
	owner, diags := exportOwner(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	m.Owner = owner

	// Put also restores a mapping removed from the export since the plan
	// (but not a lost export: see changeExport).
	err := r.data.changeExport(ctx, func(doc *export.Document) error {
		if err := r.sourceConflict(doc, m); err != nil {
			return err
		}
		doc.PutProduct(m)
		return nil
	})
	if err != nil {
		exportWriteError(&resp.Diagnostics, "update", "product mapping "+id, r.data.exportPath, err)
		return
	}
	tflog.Info(ctx, "Updated product mapping", map[string]any{"id": id, "service_id": m.ServiceID})

	plan.ID = types.StringValue(id)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *productMappingResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	ctx = r.data.maskedContext(ctx)
	var state productMappingResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_product_mapping") {
		return
	}
	source, product := state.Source.ValueString(), state.Product.ValueString()
	id := productMappingImportID.format(source, product)
	r.data.deleteExportEntry(ctx, req.Private, r.exportEntry(source, product, nil), &resp.Diagnostics,
		"Left product mapping in the export for the resource instance that took it over", "Deleted product mapping", map[string]any{"id": id})
}

func (r *productMappingResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	parts, ok := productMappingImportID.parseOrDiagnose(req.ID, &resp.Diagnostics)
	if !ok || r.data == nil {
		return
	}
	doc, ok := r.data.exportForImport(ctx, &resp.Diagnostics, "psa_product_mapping", summaryImportProductMapping, "product mapping "+req.ID)
	if !ok {
		return
	}
	existing, ok := doc.Product(parts[0], parts[1])
	if !ok {
		keys := make([]string, len(doc.ProductMappings))
		for i, m := range doc.ProductMappings {
			keys[i] = productMappingImportID.format(m.Source, m.Product)
		}
		resp.Diagnostics.AddError(summaryImportProductMapping, notInExportDetail("product mapping", req.ID, r.data.exportPath, keys))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("source"), parts[0])...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("product"), parts[1])...)
	// The imported instance holds the entry as its last owner did, so that
	// its Delete removes it.
	resp.Diagnostics.Append(setExportOwner(ctx, resp.Private, existing.Owner)...)
}

// exportEntry is the export entry of the product mapping of source and
// product, as Create writes it with the values of m, or as Delete removes
// it (m nil).
func (r *productMappingResource) exportEntry(source, product string, m *export.ProductMapping) exportEntry {
	id := productMappingImportID.format(source, product)
	e := exportEntry{
		name:   "product mapping " + id,
		remove: func(doc *export.Document) { doc.DeleteProduct(source, product) },
		owner: func(doc *export.Document) (string, bool) {
			existing, ok := doc.Product(source, product)
			return existing.Owner, ok
		},
	}
	if m != nil {
		e.match = func(doc *export.Document) (bool, bool) {
			existing, ok := doc.Product(source, product)
			existing.Owner = m.Owner
			return ok, ok && existing == *m
		}
		e.put = func(doc *export.Document, owner string) {
			owned := *m
			owned.Owner = owner
			doc.PutProduct(owned)
		}
		e.exists = fmt.Errorf("product mapping %s already exists with other values; import it with: terraform import <address> %s", id, id)
		e.check = func(doc *export.Document) error { return r.sourceConflict(doc, *m) }
	}
	return e
}

// sourceConflict returns the error of a Create or Update that writes m to
// doc while doc maps a product of another usage source to m's service,
// both with sync enabled: the two sources would overwrite each other's
// quantity. Like contractConflict, it catches inside the write what the
// plan cannot see or only warns of (exportSourceWarning): a service_id or
// sync_enabled unknown until the apply, and mappings the plan does not
// plan with this one.
func (r *productMappingResource) sourceConflict(doc *export.Document, m export.ProductMapping) error {
	if o, ok := sourceHolder(doc, m); ok {
		other := productMappingImportID.format(o.Source, o.Product)
		product := productMappingImportID.format(m.Source, m.Product)
		return &conflictError{attribute: "service_id", summary: summaryServiceTwoSources,
			detail: fmt.Sprintf("Service %s is fed by product %s of usage source %q in the mapping export %q and would be fed by "+
				"product %s of usage source %q, both with sync_enabled on. psa-syncd syncs one source at a time and sets a line to "+
				"that source's usage, so two sources on one service would overwrite each other's quantity on every contract both "+
				"bill; product %s was not written. Map each source's products to its own service, or set sync_enabled = false on "+
				"one of them. The plan does not see this when the service or sync_enabled is unknown until the apply, and only warns of it when "+
				"product %s's mapping is not part of this configuration's plan (another configuration, -target). If this apply "+
				"also removes product %s's mapping or moves it to another service, the provider waited %s for that change and it did not come: apply again.",
				m.ServiceID, other, o.Source, r.data.exportPath, product, m.Source, product, other, other, conflictWait)}
	}
	return nil
}

// sourceHolder returns the mapping of doc, of a product of another usage
// source, that feeds m's service with sync enabled while m has sync
// enabled: the mapping that sourceConflict refuses m for.
func sourceHolder(doc *export.Document, m export.ProductMapping) (export.ProductMapping, bool) {
	if !m.SyncEnabled {
		return export.ProductMapping{}, false
	}
	for _, o := range doc.ProductMappings {
		if o.SyncEnabled && o.ServiceID == m.ServiceID && o.Source != m.Source {
			return o, true
		}
	}
	return export.ProductMapping{}, false
}

// exportSourceWarning warns at plan time of a new or changed product
// mapping that the apply's sourceConflict would refuse against the export
// as the plan read it: a product of another usage source feeds the service
// with sync enabled, in an entry of another configuration, of a resource
// left out with -target, or written by hand, which the configuration's
// own claims (serviceSources) cannot see. It is a warning: the entry may be
// this configuration's, removed or moved to another service by this plan
// in a resource that Terraform plans apart from this one, and the apply
// then waits for that change. It reads the export the command reads
// anyway, once.
func (r *productMappingResource) exportSourceWarning(ctx context.Context, diags *diag.Diagnostics, plan *productMappingResourceModel) {
	if !known(plan.Product) {
		return
	}
	doc, found, err := r.data.readExport(ctx)
	if err != nil || !found {
		return // the read's error is the refresh's, or checkCreate's, to report
	}
	o, ok := sourceHolder(doc, export.ProductMapping{Source: plan.Source.ValueString(), Product: plan.Product.ValueString(),
		ServiceID: plan.ServiceID.ValueString(), SyncEnabled: plan.SyncEnabled.ValueBool()})
	if !ok {
		return
	}
	other := productMappingImportID.format(o.Source, o.Product)
	product := productMappingImportID.format(plan.Source.ValueString(), plan.Product.ValueString())
	diags.AddAttributeWarning(path.Root("service_id"), summaryServiceTwoSources,
		fmt.Sprintf("Service %s is fed by product %s of usage source %q in the mapping export %q, with sync_enabled on, and this "+
			"plan maps product %s of usage source %q to it with sync_enabled on too. psa-syncd syncs one source at a time and sets "+
			"a line to that source's usage, so the two would overwrite each other's quantity on every contract both bill, and the "+
			"apply refuses to write product %s while the export holds that mapping. If this plan also removes product %s's mapping "+
			"or moves it to another service, the apply waits for that change and this warning can be ignored. Otherwise that mapping "+
			"is another configuration's, left out with -target or written by hand: map each source's products to its own service, "+
			"or set sync_enabled = false on one of them, before applying.",
			plan.ServiceID.ValueString(), other, o.Source, r.data.exportPath, product, plan.Source.ValueString(), product, other))
}

// resolveServiceName fills a service name that was unknown at plan time
// (the service was created in the same apply) and checks the service.
func (r *productMappingResource) resolveServiceName(ctx context.Context, plan *productMappingResourceModel, diags *diag.Diagnostics) bool {
	if !plan.ServiceName.IsUnknown() {
		return true
	}
	svc, err := r.data.reads.services.get(ctx, plan.ServiceID.ValueString())
	if err != nil {
		diags.AddAttributeError(path.Root("service_id"), "Error Reading PSA Service",
			psaErrorDetail(r.data.system, fmt.Sprintf("Looking up service %s for product %q", plan.ServiceID.ValueString(), plan.Product.ValueString()), err))
		return false
	}
	if !svc.Active && plan.SyncEnabled.ValueBool() {
		diags.AddAttributeError(path.Root("service_id"), "Inactive PSA Service",
			fmt.Sprintf("Service %s (%q) is inactive in %s, and usage cannot be billed on an inactive service. "+
				"Activate it or map product %q to another service.", svc.ID, svc.Name, systemTitle(r.data.system), plan.Product.ValueString()))
		return false
	}
	plan.ServiceName = types.StringValue(svc.Name)
	return true
}

// psaIDs are the attributes that hold PSA ids.
func (m productMappingResourceModel) psaIDs() []psaIDAttribute {
	return []psaIDAttribute{
		{name: "service_id", value: m.ServiceID, kind: "service", hint: "psa_service.<name>.id or data.psa_service.<name>.id"},
	}
}

// toMapping converts the planned values to an export entry.
func (m productMappingResourceModel) toMapping() export.ProductMapping {
	return export.ProductMapping{
		Source:      m.Source.ValueString(),
		Product:     m.Product.ValueString(),
		ServiceID:   m.ServiceID.ValueString(),
		ServiceName: m.ServiceName.ValueString(),
		SyncEnabled: m.SyncEnabled.ValueBool(),
	}
}

// newProductMappingModel converts an export entry to the state.
func newProductMappingModel(m export.ProductMapping) productMappingResourceModel {
	return productMappingResourceModel{
		ID:          types.StringValue(productMappingImportID.format(m.Source, m.Product)),
		Source:      types.StringValue(m.Source),
		Product:     types.StringValue(m.Product),
		ServiceID:   types.StringValue(m.ServiceID),
		ServiceName: types.StringValue(m.ServiceName),
		SyncEnabled: types.BoolValue(m.SyncEnabled),
	}
}
