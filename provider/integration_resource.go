package provider

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Ensure integrationResource satisfies the resource interfaces.
var (
	_ resource.Resource                = (*integrationResource)(nil)
	_ resource.ResourceWithConfigure   = (*integrationResource)(nil)
	_ resource.ResourceWithImportState = (*integrationResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*integrationResource)(nil)
)

// integrationEntry names the integration settings as an export entry, in
// messages and in the registries of a command.
const integrationEntry = "the integration settings"

// NewIntegrationResource returns the psa_integration resource.
func NewIntegrationResource() resource.Resource {
	return &integrationResource{}
}

// integrationResource manages the integration-wide settings of the mapping
// export: one per export.
type integrationResource struct {
	data *providerData
}

// integrationResourceModel maps the psa_integration schema data.
type integrationResourceModel struct {
	ID       types.String `tfsdk:"id"`
	Enabled  types.Bool   `tfsdk:"enabled"`
	Schedule types.String `tfsdk:"schedule"`
	Timezone types.String `tfsdk:"timezone"`
}

func (r *integrationResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_integration"
}

func (r *integrationResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The integration-wide settings in the mapping export: whether psa-syncd writes to the PSA at " +
			"all, and when it syncs. There is at most one per export. Without it, psa-syncd uses the schedule and time " +
			"zone of its configuration file; with it, these settings win.\n\n" +
			"While `enabled` is `false` psa-syncd sends nothing to the PSA, but every mapping can still be changed. " +
			"Destroying the resource removes the settings from the export, which psa-syncd takes as switched on: it writes to " +
			"the PSA again from its next pass, on its configuration file's schedule and time zone. The plan that destroys one " +
			"warns once, naming what falls back: with `enabled = false` (Removed Integration Settings Switch psa-syncd On), " +
			"and with only a `schedule` or `timezone` set (Removed Integration Settings Fall Back to psa-syncd's " +
			"Configuration File); a `removed` block with `lifecycle { destroy = false }` takes it out of Terraform and leaves " +
			"the settings in the export.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The provider's `export_url` (or `export_path`), with any password in it replaced by " +
					"`xxxxx` (a `file://` URL as its path): there is one integration per export. An import takes either form of a file.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"enabled": schema.BoolAttribute{
				MarkdownDescription: "Whether psa-syncd writes quantities to the PSA. `false` switches the integration off: " +
					"passes still run and report what they would change. Defaults to `true`.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
			},
			"schedule": schema.StringAttribute{
				MarkdownDescription: "When psa-syncd syncs, in its schedule grammar: `\"every <duration>\"` (at least `1m`, " +
					"e.g. `\"every 24h\"`), `\"daily HH:MM\"`, `\"weekly DAY HH:MM\"` (`monday`..`sunday` or `mon`..`sun`), " +
					"`\"monthly last-day HH:MM\"` or `\"monthly DD HH:MM\"` (`DD` 1..28). A month's user count is taken on its " +
					"last day, so sync before invoices are generated. When unset, psa-syncd uses the `schedule` of its " +
					"configuration file (which defaults to `\"every 24h\"`).",
				Optional:   true,
				Validators: []validator.String{scheduleString()},
			},
			"timezone": schema.StringAttribute{
				MarkdownDescription: "IANA time zone of the calendar schedules, e.g. `\"Europe/Rome\"`. When unset, " +
					"psa-syncd uses the `timezone` of its configuration file (which defaults to `\"UTC\"`). " +
					"A fixed offset `\"Etc/GMT+N\"` plans with a warning: the tz database gives it the opposite sign " +
					"(`\"Etc/GMT+5\"` is UTC-05:00).",
				Optional:   true,
				Validators: []validator.String{timezoneString()},
			},
		},
	}
}

func (r *integrationResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedResourceConfigure)
}

// ModifyPlan fails the plan when the provider has no export or the export
// cannot take new settings, and plans the id, which is known before apply.
func (r *integrationResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	r.data.checkExportWritable(ctx, &resp.Diagnostics, req.Plan.Raw, req.State.Raw)
	if req.Plan.Raw.IsNull() {
		integrationDestroyWarning(ctx, req, resp, r.data)
		return
	}
	if r.data == nil {
		return
	}
	if !r.data.requireStore(&resp.Diagnostics, "psa_integration") {
		return
	}
	var plan integrationResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	owner := fmt.Sprintf("enabled %s, schedule %s", plan.Enabled, plan.Schedule)
	if !req.State.Raw.IsNull() {
		r.data.claimExisting(ctx, &resp.Diagnostics, resp.Private, integrationEntry+" (one psa_integration per export)",
			r.data.exportPath, r.data.exportPath, owner)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if req.State.Raw.IsNull() && !replacesExportKey(ctx, req.Private, r.data.exportPath) {
		r.data.checkCreate(ctx, &resp.Diagnostics, integrationEntry+" (one psa_integration per export)", r.data.exportPath, owner,
			func(doc *export.Document) (bool, bool) {
				if doc.Integration == nil {
					return false, false
				}
				// schedule and timezone are optional: null is psa-syncd's
				// own setting. Whose the settings are does not make them
				// other ones.
				existing := *doc.Integration
				existing.Owner = ""
				return true, known(plan.Enabled) && !plan.Schedule.IsUnknown() && !plan.Timezone.IsUnknown() &&
					existing == plan.toIntegration()
			})
		if resp.Diagnostics.HasError() {
			return
		}
	}
	owner, diags := exportOwner(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	keeps := r.data.planKeepsOwner(ctx, owner, req.State.Raw, func(doc *export.Document) bool { return doc.Integration != nil })
	r.data.checkExportFields(ctx, &resp.Diagnostics, req.Plan.Raw, req.State.Raw, integrationEntry, keeps,
		func(doc *export.Document, owner string) {
			in := plan.toIntegration()
			in.Owner = owner
			doc.Integration = &in
		},
		func(string) (path.Path, bool) { return path.Path{}, false })
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), r.data.exportPath)...)
}

func (r *integrationResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	ctx = r.data.maskedContext(ctx)
	var plan integrationResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_integration") {
		return
	}
	in := plan.toIntegration()

	adopted, owner, err := r.data.createEntry(ctx, r.exportEntry(&in))
	if err != nil {
		exportUpdateError(&resp.Diagnostics, "add", "the integration settings", r.data.exportPath, err)
		return
	}
	if adopted {
		resp.Diagnostics.AddWarning(summaryEntryAdopted, fmt.Sprintf(detailEntryAdopted, "The integration settings", r.data.exportPath))
	}
	tflog.Info(ctx, "Created integration settings", map[string]any{"enabled": in.Enabled, "schedule": in.Schedule, "timezone": in.Timezone})

	plan.ID = types.StringValue(r.data.exportPath)
	resp.Diagnostics.Append(setExportOwner(ctx, resp.Private, owner)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *integrationResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = r.data.maskedContext(ctx)
	var state integrationResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_integration") {
		return
	}

	doc, ok := r.data.readExportForState(ctx, &resp.Diagnostics, "The integration settings")
	if !ok {
		return
	}
	if doc.Integration == nil {
		tflog.Warn(ctx, fmt.Sprintf(logRemovedFromState, "The integration settings in "+r.data.exportPath))
		resp.State.RemoveResource(ctx)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, newIntegrationModel(r.data.exportPath, *doc.Integration))...)
}

func (r *integrationResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	ctx = r.data.maskedContext(ctx)
	var plan integrationResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_integration") {
		return
	}
	in := plan.toIntegration()
	// The settings keep the owner token this instance wrote, if any, so
	// that its Delete still removes them.
	owner, diags := exportOwner(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	in.Owner = owner

	err := r.data.changeExport(ctx, func(doc *export.Document) error {
		doc.Integration = &in
		return nil
	})
	if err != nil {
		exportUpdateError(&resp.Diagnostics, "update", "the integration settings", r.data.exportPath, err)
		return
	}
	tflog.Info(ctx, "Updated integration settings", map[string]any{"enabled": in.Enabled, "schedule": in.Schedule, "timezone": in.Timezone})

	plan.ID = types.StringValue(r.data.exportPath)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *integrationResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	ctx = r.data.maskedContext(ctx)
	if !r.data.requireStore(&resp.Diagnostics, "psa_integration") {
		return
	}
	r.data.deleteExportEntry(ctx, req.Private, r.exportEntry(nil), &resp.Diagnostics,
		"Left integration settings in the export for the resource instance that took them over", "Deleted integration settings")
}

// ImportState takes the export path, which must be the provider's: the
// provider reads and writes only that export.
func (r *integrationResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if r.data == nil || !r.data.requireStore(&resp.Diagnostics, "psa_integration") {
		return
	}
	if !samePath(req.ID, r.data.exportPath) {
		resp.Diagnostics.AddError(summaryUnexpectedImportID, fmt.Sprintf(detailExportImportID, "psa_integration", r.data.exportPath, req.ID))
		return
	}
	doc, ok := r.data.exportForImport(ctx, &resp.Diagnostics, "psa_integration", summaryImportIntegration, integrationEntry)
	if !ok {
		return
	}
	if doc.Integration == nil {
		resp.Diagnostics.AddError(summaryImportIntegration, fmt.Sprintf(detailImportNoEntry, integrationEntry, r.data.exportPath, integrationEntry))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), r.data.exportPath)...)
	// The imported instance holds the settings as their last owner did, so
	// that its Delete removes them.
	resp.Diagnostics.Append(setExportOwner(ctx, resp.Private, doc.Integration.Owner)...)
}

// exportEntry is the integration settings as an export entry, as Create
// writes them with the values of in, or as Delete removes them (in nil).
func (r *integrationResource) exportEntry(in *export.Integration) exportEntry {
	e := exportEntry{
		name:   integrationEntry,
		remove: func(doc *export.Document) { doc.Integration = nil },
		owner: func(doc *export.Document) (string, bool) {
			if doc.Integration == nil {
				return "", false
			}
			return doc.Integration.Owner, true
		},
	}
	if in != nil {
		e.match = func(doc *export.Document) (bool, bool) {
			if doc.Integration == nil {
				return false, false
			}
			existing := *doc.Integration
			existing.Owner = in.Owner
			return true, existing == *in
		}
		e.put = func(doc *export.Document, owner string) {
			owned := *in
			owned.Owner = owner
			doc.Integration = &owned
		}
		e.exists = fmt.Errorf("the export already has other integration settings; there is one psa_integration per export. "+
			"Import them with: terraform import <address> %s", r.data.exportPath)
	}
	return e
}

// samePath reports whether a and b name the same file, comparing absolute
// clean paths so that "./x.json" imports an export configured as "x.json".
// a may be a file:// URL, as export_url gives a file: the import id is the
// provider's export_url as configured, while b, the store as the provider
// names it, is the URL's path.
func samePath(a, b string) bool {
	if kind, err := export.Kind(a); err == nil && kind == export.KindFile && strings.Contains(a, "://") {
		// A file store is opened without any I/O.
		if store, err := export.OpenBackend(context.Background(), a, export.BackendOptions{}); err == nil {
			a = store.String()
		}
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	if err := errors.Join(errA, errB); err != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return absA == absB
}

// toIntegration converts the planned values to the export's settings.
func (m integrationResourceModel) toIntegration() export.Integration {
	return export.Integration{
		Enabled:  m.Enabled.ValueBool(),
		Schedule: m.Schedule.ValueString(),
		Timezone: m.Timezone.ValueString(),
	}
}

// newIntegrationModel converts the export's settings to the state.
func newIntegrationModel(exportPath string, in export.Integration) integrationResourceModel {
	return integrationResourceModel{
		ID:       types.StringValue(exportPath),
		Enabled:  types.BoolValue(in.Enabled),
		Schedule: optionalString(in.Schedule),
		Timezone: optionalString(in.Timezone),
	}
}

// optionalString maps the export's "" (psa-syncd's own setting) to null.
func optionalString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

// summaryRemovedSettingsSwitchOn and summaryRemovedSettingsFallBack are
// the summaries of the warning on the destroy of integration settings:
// ones that switch the integration off, and ones that set only when it
// syncs.
const (
	summaryRemovedSettingsSwitchOn  = "Removed Integration Settings Switch psa-syncd On"
	summaryRemovedSettingsFallBack  = "Removed Integration Settings Fall Back to psa-syncd's Configuration File"
	detailRemovedSettingsKeep       = "a removed block (lifecycle { destroy = false }), which leaves the settings in the export"
	detailRemovedSettingsNewAddress = " When the same apply creates a psa_integration at another address (renamed without a moved " +
		"block), that one writes the settings it configures."
)

// integrationDestroyWarning warns, once, on the plan that destroys a
// psa_integration that psa-syncd would miss, naming everything that falls
// back. psa-syncd takes an export without integration settings as
// switched on (the daemon's writesEnabled): from its next pass it writes
// quantities to the PSA, and files tickets, again, which a destroy does
// not say; a team that switched syncing off for a migration and deletes
// the block as cleanup would find it on the next invoice. A schedule or
// time zone set falls back to psa-syncd's configuration file's (every 24h
// in UTC unless it sets them): a sync moved after the PSA generates the
// month's invoices leaves them with the quantities set before. It reads
// nothing and sends no PSA request.
func integrationDestroyWarning(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, data *providerData) {
	if req.State.Raw.IsNull() {
		return
	}
	var state integrationResourceModel
	if diags := req.State.Get(ctx, &state); diags.HasError() {
		return
	}
	off := known(state.Enabled) && !state.Enabled.ValueBool()
	var fallback []string
	if s := state.Schedule.ValueString(); s != "" {
		fallback = append(fallback, fmt.Sprintf("schedule %q to its schedule (every 24h unless it sets one)", s))
	}
	if tz := state.Timezone.ValueString(); tz != "" {
		fallback = append(fallback, fmt.Sprintf("time zone %q to its timezone (UTC unless it sets one)", tz))
	}
	falls := ""
	if len(fallback) > 0 {
		falls = " Falling back to psa-syncd's configuration file: " + strings.Join(fallback, ", ") + "."
	}
	switch {
	case off:
		resp.Diagnostics.AddWarning(summaryRemovedSettingsSwitchOn,
			fmt.Sprintf("The integration settings are destroyed while they switch the integration off (enabled = false). psa-syncd "+
				"takes an export without integration settings as switched on: from its next pass it writes quantities to %s again "+
				"(and, with ticket routing on, files tickets), on the schedule and time zone of its configuration file.%s To keep "+
				"it off, keep the psa_integration with enabled = false, or take it out of Terraform with %s.%s",
				data.systemName(), falls, detailRemovedSettingsKeep, detailRemovedSettingsNewAddress))
	case len(fallback) > 0:
		resp.Diagnostics.AddWarning(summaryRemovedSettingsFallBack,
			fmt.Sprintf("The integration settings are destroyed, and psa-syncd syncs from its next pass on the schedule and time "+
				"zone of its configuration file.%s A sync at another time may come after the PSA generates the month's invoices, "+
				"which then bill the quantities psa-syncd set before. To keep them, keep the psa_integration, or take it out of "+
				"Terraform with %s.%s", falls, detailRemovedSettingsKeep, detailRemovedSettingsNewAddress))
	}
}
