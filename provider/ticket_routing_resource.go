package provider

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Ensure ticketRoutingResource satisfies the resource interfaces.
var (
	_ resource.Resource                = (*ticketRoutingResource)(nil)
	_ resource.ResourceWithConfigure   = (*ticketRoutingResource)(nil)
	_ resource.ResourceWithImportState = (*ticketRoutingResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*ticketRoutingResource)(nil)
)

// Defaults of psa_ticket_routing.
const (
	defaultMinSeverity    = "medium"
	defaultMaxPerPass     = 50
	defaultMaxPerCustomer = 10
)

// ticketRoutingEntry names the ticket routing as an export entry, in
// messages and in the registries of a command.
const ticketRoutingEntry = "the ticket routing"

// NewTicketRoutingResource returns the psa_ticket_routing resource.
//
// Ticket routing is a resource of its own rather than a block of
// psa_integration: it has its own lifecycle (destroying it stops ticket
// sync and leaves usage sync alone), its ids are checked against the PSA at
// plan time while psa_integration only writes the export, and its
// attributes differ per PSA.
func NewTicketRoutingResource() resource.Resource {
	return &ticketRoutingResource{}
}

// ticketRoutingResource manages the ticket routing of the mapping export:
// one per export.
type ticketRoutingResource struct {
	data *providerData
}

// ticketRoutingResourceModel maps the psa_ticket_routing schema data.
type ticketRoutingResourceModel struct {
	ID             types.String `tfsdk:"id"`
	Enabled        types.Bool   `tfsdk:"enabled"`
	Schedule       types.String `tfsdk:"schedule"`
	QueueID        types.String `tfsdk:"queue_id"`
	NewStatusID    types.String `tfsdk:"new_status_id"`
	ClosedStatusID types.String `tfsdk:"closed_status_id"`
	ReopenStatusID types.String `tfsdk:"reopen_status_id"`
	Priorities     types.Map    `tfsdk:"priorities"`
	SourceID       types.String `tfsdk:"source_id"`
	IssueTypeID    types.String `tfsdk:"issue_type_id"`
	SubIssueTypeID types.String `tfsdk:"sub_issue_type_id"`
	TicketTypeID   types.String `tfsdk:"ticket_type_id"`
	CategoryID     types.String `tfsdk:"category_id"`
	NoteTypeID     types.String `tfsdk:"note_type_id"`
	MinSeverity    types.String `tfsdk:"min_severity"`
	TitleFormat    types.String `tfsdk:"title_format"`
	OnResolve      types.String `tfsdk:"on_resolve"`
	OnReturn       types.String `tfsdk:"on_return"`
	ReopenWindow   types.String `tfsdk:"reopen_window"`
	BackfillWindow types.String `tfsdk:"backfill_window"`
	MaxPerPass     types.Int64  `tfsdk:"max_per_pass"`
	MaxPerCustomer types.Int64  `tfsdk:"max_per_customer"`
}

func (r *ticketRoutingResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_ticket_routing"
}

func idAttribute(description string) schema.StringAttribute {
	return schema.StringAttribute{MarkdownDescription: description, Optional: true, Validators: []validator.String{nonEmpty()}}
}

func (r *ticketRoutingResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Ticket routing as code: where psa-syncd's ticket sync files the vendor alerts of the customers whose " +
			"`psa_customer_mapping` has `ticket_sync = true`, and how. There is at most one per export; without it psa-syncd " +
			"creates no tickets.\n\n" +
			"Ids are the PSA's own; look them up by name with the `psa_ticket_lookup` data source. The plan fails when an id " +
			"does not exist in the PSA, when a setting the PSA does not have is set, or when one it requires is missing " +
			"(Kaseya BMS tickets need `new_status_id`, `ticket_type_id` and `source_id`). A plan that changes an applied " +
			"routing's ids warns (Ticket Routing Changes), naming each old and new setting as the PSA names it " +
			"(`queue_id: \"Monitoring Alert\" (id 29683482) → \"Post Sale\" (id 29683481)`), from the lists the plan reads " +
			"to check the ids.\n\n" +
			"It is a resource of its own rather than a block of `psa_integration`, so that destroying it stops ticket sync " +
			"without touching usage sync, and because its ids are checked against the PSA at plan time.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The provider's `export_url` (or `export_path`), with any password in it replaced by " +
					"`xxxxx` (a `file://` URL as its path): there is one ticket routing per export. An import takes either form of a file.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"enabled": schema.BoolAttribute{
				MarkdownDescription: "Whether psa-syncd creates and updates tickets. `false` keeps the routing and stops ticket " +
					"sync; open tickets are left as they are. Defaults to `true`.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(true),
			},
			"schedule": schema.StringAttribute{
				MarkdownDescription: "When ticket passes run, in psa-syncd's schedule grammar (e.g. `\"every 5m\"`). When unset, " +
					"psa-syncd uses the ticket schedule of its configuration file (which defaults to `\"every 5m\"`).",
				Optional:   true,
				Validators: []validator.String{scheduleString()},
			},
			"queue_id": schema.StringAttribute{
				MarkdownDescription: "Where new tickets go: the Autotask queue, the ConnectWise service board or the Kaseya BMS queue.",
				Required:            true,
				Validators:          []validator.String{nonEmpty()},
			},
			"new_status_id": idAttribute("Status of new tickets. When unset, the PSA's default status (Autotask's default " +
				"status, the ConnectWise board's default). Required for Kaseya BMS."),
			"closed_status_id": idAttribute("Status a ticket gets when its alert is resolved and `on_resolve` is `\"close\"` " +
				"(Autotask *Complete*, a ConnectWise closed status of the board, a Kaseya BMS completed status). A ConnectWise " +
				"ticket moved to another board gets that board's status of the same name."),
			"reopen_status_id": idAttribute("Status a closed ticket gets when its alert comes back within `reopen_window` and " +
				"`on_return` is `\"reopen\"`. A ConnectWise ticket moved to another board gets that board's status of the same name."),
			"priorities": schema.MapAttribute{
				MarkdownDescription: "Priority id for each alert severity: keys `high`, `medium` and `low`. A severity without " +
					"one gets the PSA's default priority.",
				ElementType: types.StringType,
				Optional:    true,
				Validators: []validator.Map{
					mapvalidator.KeysAre(stringvalidator.OneOf(export.Severities...)),
					mapvalidator.ValueStringsAre(nonEmpty()),
				},
			},
			"source_id":         idAttribute("Ticket source (Autotask, ConnectWise, Kaseya BMS; e.g. *Monitoring Alert*). Required for Kaseya BMS."),
			"issue_type_id":     idAttribute("Issue type (Autotask, Kaseya BMS)."),
			"sub_issue_type_id": idAttribute("Sub-issue type (Autotask, Kaseya BMS); it must belong to `issue_type_id`."),
			"ticket_type_id": idAttribute("Ticket type: the Autotask ticket type, the ConnectWise type (of the board in " +
				"`queue_id`) or the Kaseya BMS ticket type. Required for Kaseya BMS."),
			"category_id": idAttribute("Autotask ticket category. An API-only category that defaults the due date and " +
				"time is a good choice: its defaults then set when tickets are due. Without a category, tickets are due a " +
				"day after the alert (a day after they are filed, for an alert raised earlier than that); with one that " +
				"sets no due date and time, Autotask refuses the ticket (\"dueDateTime is required.\"), and psa-syncd " +
				"sends it once more, due the same way, as it then does for the category's tickets for ten minutes."),
			"note_type_id": idAttribute("Note type of the notes psa-syncd adds (Autotask, Kaseya BMS). When unset, the PSA's default."),
			"min_severity": schema.StringAttribute{
				MarkdownDescription: "The lowest alert severity that becomes a ticket: `low`, `medium` or `high`. Defaults to `\"" + defaultMinSeverity + "\"`.",
				Optional:            true, Computed: true, Default: stringdefault.StaticString(defaultMinSeverity),
				Validators: []validator.String{stringvalidator.OneOf(export.Severities...)},
			},
			"title_format": schema.StringAttribute{
				MarkdownDescription: "Ticket title, with the placeholders `" + strings.Join(export.TitlePlaceholders, "`, `") +
					"` (`{Severity}` is capitalised). A title is one line (line breaks become spaces); one that comes out empty, " +
					"such as `\"{description}\"` for an alert without a description, is the default format's. " +
					"Titles are cut to the PSA's limit (Autotask 250, ConnectWise 100 " +
					"characters). Defaults to `\"" + export.DefaultTitleFormat + "\"`.",
				Optional: true, Computed: true, Default: stringdefault.StaticString(export.DefaultTitleFormat),
				Validators: []validator.String{titleFormatString()},
			},
			"on_resolve": schema.StringAttribute{
				MarkdownDescription: "What happens to a ticket when its alert is resolved in the vendor console: `\"close\"` " +
					"(set `closed_status_id`, with an internal note) or `\"note\"` (add an internal note and leave the ticket " +
					"to the technician). Defaults to `\"close\"`.",
				Optional: true, Computed: true, Default: stringdefault.StaticString(export.OnResolveClose),
				Validators: []validator.String{stringvalidator.OneOf(export.OnResolveValues...)},
			},
			"on_return": schema.StringAttribute{
				MarkdownDescription: "What happens when the alert of a closed ticket comes back: `\"reopen\"` (within " +
					"`reopen_window`, set `reopen_status_id`) or `\"new\"` (a new ticket). A ticket a technician closed while " +
					"its alert was still open is never reopened for that alert. Defaults to `\"new\"`.",
				Optional: true, Computed: true, Default: stringdefault.StaticString(export.OnReturnNew),
				Validators: []validator.String{stringvalidator.OneOf(export.OnReturnValues...)},
			},
			"reopen_window": schema.StringAttribute{
				MarkdownDescription: "How long after closing a ticket is reopened rather than replaced, as a duration such as `\"24h\"`. " +
					"When unset, 24 hours.",
				Optional:   true,
				Validators: []validator.String{durationString()},
			},
			"backfill_window": schema.StringAttribute{
				MarkdownDescription: "How old an alert without a ticket may be and still get a ticket of its own, as a duration " +
					"such as `\"48h\"`. Alerts raised earlier (open since before ticket sync was turned on, or while it was off) " +
					"are named in the customer's summary ticket (\"N older alerts\") instead, so that turning ticket sync on does " +
					"not file months-old alerts one ticket each. Alerts that have a ticket already are not affected. When unset, " +
					"every alert gets a ticket of its own, whatever its age.",
				Optional:   true,
				Validators: []validator.String{durationString()},
			},
			"max_per_pass": schema.Int64Attribute{
				MarkdownDescription: "The most tickets one pass creates in total, summary tickets included, so that ticket sync stays " +
					"within the PSA's API budget; the alerts still without a ticket when the cap is reached are neither summarised " +
					"nor dropped: they wait, with a notice, for a later pass, which files them. Defaults to `" + fmt.Sprint(defaultMaxPerPass) + "`.",
				Optional: true, Computed: true, Default: int64default.StaticInt64(defaultMaxPerPass),
				Validators: []validator.Int64{int64validator.AtLeast(1)},
			},
			"max_per_customer": schema.Int64Attribute{
				MarkdownDescription: "The most tickets one pass creates for one customer; the rest of its new alerts are summarised " +
					"in one ticket (which counts against `max_per_pass`). " +
					"Defaults to `" + fmt.Sprint(defaultMaxPerCustomer) + "`.",
				Optional: true, Computed: true, Default: int64default.StaticInt64(defaultMaxPerCustomer),
				Validators: []validator.Int64{int64validator.AtLeast(1)},
			},
		},
	}
}

func (r *ticketRoutingResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedResourceConfigure)
}

// ModifyPlan fails the plan when the export cannot take the routing, when
// the PSA lacks or requires a setting, or when an id does not exist in the
// PSA, and plans the id.
func (r *ticketRoutingResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	r.data.checkExportWritable(ctx, &resp.Diagnostics, req.Plan.Raw, req.State.Raw)
	if r.data == nil || req.Plan.Raw.IsNull() {
		return
	}
	ctx = r.data.maskedContext(ctx)
	if !r.data.requireStore(&resp.Diagnostics, "psa_ticket_routing") {
		return
	}
	var plan ticketRoutingResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	owner := fmt.Sprintf("queue %s, enabled %s", plan.QueueID, plan.Enabled)
	if !req.State.Raw.IsNull() {
		r.data.claimExisting(ctx, &resp.Diagnostics, resp.Private, ticketRoutingEntry+" (one psa_ticket_routing per export)",
			r.data.exportPath, r.data.exportPath, owner)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if req.State.Raw.IsNull() && !replacesExportKey(ctx, req.Private, r.data.exportPath) {
		r.data.checkCreate(ctx, &resp.Diagnostics, ticketRoutingEntry+" (one psa_ticket_routing per export)", r.data.exportPath, owner,
			func(doc *export.Document) (bool, bool) {
				if doc.Tickets == nil || !knownBesidesID(req.Plan.Raw) {
					return doc.Tickets != nil, false
				}
				tk, d := plan.toTickets(ctx)
				existing := *doc.Tickets
				existing.Owner = "" // whose the routing is does not make it another one
				return true, !d.HasError() && reflect.DeepEqual(existing, tk)
			})
		if resp.Diagnostics.HasError() {
			return
		}
	}
	var state *ticketRoutingResourceModel
	if !req.State.Raw.IsNull() {
		state = new(ticketRoutingResourceModel)
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	r.checkIDs(ctx, &resp.Diagnostics, plan, state)
	if resp.Diagnostics.HasError() {
		return
	}
	// The routing is the export's tickets object, which psa-syncd before
	// ticket sync does not read.
	owner, diags := exportOwner(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	keeps := r.data.planKeepsOwner(ctx, owner, req.State.Raw, func(doc *export.Document) bool { return doc.Tickets != nil })
	r.data.checkExportFields(ctx, &resp.Diagnostics, req.Plan.Raw, req.State.Raw, ticketRoutingEntry, keeps,
		func(doc *export.Document, owner string) {
			tk, _ := plan.toTickets(ctx) // its errors are the apply's to report; the fields it sets are known
			tk.Owner = owner
			doc.Tickets = &tk
		},
		func(string) (path.Path, bool) { return path.Path{}, false })
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), r.data.exportPath)...)
}

// routingID is one id attribute of the routing and the lookup list it must
// be in.
type routingID struct {
	attr  path.Path
	kind  psa.TicketLookupKind
	value types.String
	scope types.String
}

// checkIDs checks every known id of the plan against the PSA, and the
// settings the PSA requires or lacks. With state, the routing applied
// before, it warns of the ids the plan changes, naming the old and the new
// setting as the PSA names them (see changedIDsWarning).
func (r *ticketRoutingResource) checkIDs(ctx context.Context, diags *diag.Diagnostics, m ticketRoutingResourceModel, state *ticketRoutingResourceModel) {
	sys := r.data.system
	t, ok := r.data.ticketer(diags)
	if !ok {
		return
	}
	ids := r.routingIDs(ctx, diags, m)
	var old []routingID
	if state != nil {
		old = r.routingIDs(ctx, diags, *state)
	}
	var changes []string
	kinds := t.TicketLookupKinds()
	lists := map[string][]psa.TicketLookup{}
	for _, id := range ids {
		if id.value.IsNull() || id.value.IsUnknown() || id.scope.IsUnknown() {
			continue
		}
		if !slices.Contains(kinds, id.kind) {
			diags.AddAttributeError(id.attr, "Unsupported Ticket Setting",
				fmt.Sprintf("%s tickets have no %s; remove the attribute.", systemTitle(sys), strings.ReplaceAll(string(id.kind), "_", " ")))
			continue
		}
		if id.kind == psa.TicketLookupSubIssueType && sys == psa.SystemKaseyaBMS && id.scope.IsNull() {
			diags.AddAttributeError(id.attr, "Missing Ticket Setting",
				"Kaseya BMS lists sub-issue types per issue type, and the sub-issue type must belong to the ticket's issue type: "+
					"set issue_type_id to the issue type of sub_issue_type_id (psa_ticket_lookup finds a sub_issue_type with that "+
					"issue type's id as its scope), or remove sub_issue_type_id.")
			continue
		}
		key := string(id.kind) + "\x00" + id.scope.ValueString()
		list, seen := lists[key]
		if !seen {
			var ok bool
			scopeAttr := path.Root("queue_id") // ConnectWise's board
			if id.kind == psa.TicketLookupSubIssueType {
				scopeAttr = path.Root("issue_type_id")
			}
			if list, ok = r.data.ticketLookups(ctx, diags, t, id.kind, id.scope.ValueString(), id.attr, scopeAttr); !ok {
				return
			}
			lists[key] = list
		}
		r.checkID(diags, id, list)
		if i := slices.IndexFunc(old, func(o routingID) bool { return o.attr.Equal(id.attr) }); state != nil && (i < 0 || !old[i].value.Equal(id.value)) {
			before := types.StringNull()
			if i >= 0 {
				before = old[i].value
			}
			changes = append(changes, fmt.Sprintf("%s: %s → %s", id.attr, lookupName(before, list), lookupName(id.value, list)))
		}
	}
	// A setting the plan removes (a severity's priority left out).
	for _, o := range old {
		if i := slices.IndexFunc(ids, func(id routingID) bool { return id.attr.Equal(o.attr) }); known(o.value) && (i < 0 || ids[i].value.IsNull()) {
			changes = append(changes, fmt.Sprintf("%s: %s → none", o.attr, lookupName(o.value, lists[string(o.kind)+"\x00"+o.scope.ValueString()])))
		}
	}
	if len(changes) > 0 {
		diags.AddWarning(summaryTicketRoutingChanges,
			fmt.Sprintf("This plan changes how psa-syncd opens tickets in %s for vendor alerts, from its next pass: %s.",
				systemTitle(sys), strings.Join(changes, "; ")))
	}
	r.checkRequired(diags, m)
}

// summaryTicketRoutingChanges is the summary of the warning that names
// the ticket settings a plan changes (see checkIDs).
const summaryTicketRoutingChanges = "Ticket Routing Changes"

// lookupName names the ticket setting id as list, the PSA's list of its
// kind, names it: "\"High\" (id 1)", "id 9" when the list lacks it
// (an id of another board, or one the plan leaves), "none" for null.
func lookupName(id types.String, list []psa.TicketLookup) string {
	if id.IsNull() || id.IsUnknown() {
		return "none"
	}
	if i := slices.IndexFunc(list, func(l psa.TicketLookup) bool { return l.ID == id.ValueString() }); i >= 0 {
		return fmt.Sprintf("%q (id %s)", list[i].Name, list[i].ID)
	}
	return "id " + id.ValueString()
}

// routingIDs lists the id attributes of m with the lookup list each must be
// in.
func (r *ticketRoutingResource) routingIDs(ctx context.Context, diags *diag.Diagnostics, m ticketRoutingResourceModel) []routingID {
	// ConnectWise keeps statuses and types per board.
	boardScope := types.StringNull()
	if r.data.system == psa.SystemConnectWise {
		boardScope = m.QueueID
	}
	ids := []routingID{
		{path.Root("queue_id"), psa.TicketLookupQueue, m.QueueID, types.StringNull()},
		{path.Root("new_status_id"), psa.TicketLookupStatus, m.NewStatusID, boardScope},
		{path.Root("closed_status_id"), psa.TicketLookupStatus, m.ClosedStatusID, boardScope},
		{path.Root("reopen_status_id"), psa.TicketLookupStatus, m.ReopenStatusID, boardScope},
		{path.Root("source_id"), psa.TicketLookupSource, m.SourceID, types.StringNull()},
		{path.Root("issue_type_id"), psa.TicketLookupIssueType, m.IssueTypeID, types.StringNull()},
		{path.Root("sub_issue_type_id"), psa.TicketLookupSubIssueType, m.SubIssueTypeID, m.IssueTypeID},
		{path.Root("ticket_type_id"), psa.TicketLookupTicketType, m.TicketTypeID, boardScope},
		{path.Root("category_id"), psa.TicketLookupCategory, m.CategoryID, types.StringNull()},
		{path.Root("note_type_id"), psa.TicketLookupNoteType, m.NoteTypeID, types.StringNull()},
	}
	if !m.Priorities.IsNull() && !m.Priorities.IsUnknown() {
		prios := map[string]types.String{}
		diags.Append(m.Priorities.ElementsAs(ctx, &prios, false)...)
		for _, sev := range export.Severities {
			if v, ok := prios[sev]; ok {
				ids = append(ids, routingID{path.Root("priorities").AtMapKey(sev), psa.TicketLookupPriority, v, types.StringNull()})
			}
		}
	}
	return ids
}

// checkRequired checks the settings the PSA requires.
func (r *ticketRoutingResource) checkRequired(diags *diag.Diagnostics, m ticketRoutingResourceModel) {
	sys := r.data.system
	if m.OnResolve.ValueString() == export.OnResolveClose && m.ClosedStatusID.IsNull() {
		diags.AddAttributeError(path.Root("closed_status_id"), "Missing Ticket Setting",
			`on_resolve = "close" closes tickets with closed_status_id; set it, or set on_resolve = "note".`)
	}
	if m.OnReturn.ValueString() == export.OnReturnReopen && m.ReopenStatusID.IsNull() {
		diags.AddAttributeError(path.Root("reopen_status_id"), "Missing Ticket Setting",
			`on_return = "reopen" reopens tickets with reopen_status_id; set it, or set on_return = "new".`)
	}
	if sys == psa.SystemKaseyaBMS {
		for _, a := range []struct {
			name string
			v    types.String
		}{{"new_status_id", m.NewStatusID}, {"ticket_type_id", m.TicketTypeID}, {"source_id", m.SourceID}} {
			if a.v.IsNull() {
				diags.AddAttributeError(path.Root(a.name), "Missing Ticket Setting",
					fmt.Sprintf("Kaseya BMS tickets cannot be created without %s; look it up with the psa_ticket_lookup data source.", a.name))
			}
		}
	}
}

// checkID adds an error when id is not in list, and a warning when a
// closing status does not close tickets.
func (r *ticketRoutingResource) checkID(diags *diag.Diagnostics, id routingID, list []psa.TicketLookup) {
	v := id.value.ValueString()
	what := strings.ReplaceAll(string(id.kind), "_", " ")
	i := slices.IndexFunc(list, func(l psa.TicketLookup) bool { return l.ID == v })
	if i < 0 {
		in := ""
		if s := id.scope.ValueString(); s != "" {
			in = fmt.Sprintf(" (of %s)", s)
		}
		diags.AddAttributeError(id.attr, "Ticket Setting Not Found",
			fmt.Sprintf("%s has no ticket %s with id %s%s. The ids there are: %s. Look the id up by name with the "+
				"psa_ticket_lookup data source.", systemTitle(r.data.system), what, v, in, lookupNames(list)))
		return
	}
	l := list[i]
	if !l.Active {
		diags.AddAttributeWarning(id.attr, "Inactive Ticket Setting",
			fmt.Sprintf("The ticket %s %q (id %s) is inactive in %s; tickets may be refused.", what, l.Name, l.ID, systemTitle(r.data.system)))
	}
	if id.attr.Equal(path.Root("closed_status_id")) && !l.Closed {
		diags.AddAttributeWarning(id.attr, "Status Does Not Close Tickets",
			fmt.Sprintf("The status %q (id %s) does not close tickets in %s; resolved alerts will leave their tickets open in it.",
				l.Name, l.ID, systemTitle(r.data.system)))
	}
}

func (r *ticketRoutingResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan ticketRoutingResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	r.write(ctx, plan, true, resp.Private, &resp.State, &resp.Diagnostics)
}

// write stores the planned routing in the export (refusing to replace one
// on create) and sets the state. A create keeps the owner token it wrote
// in private; an update writes back the one private holds.
func (r *ticketRoutingResource) write(ctx context.Context, plan ticketRoutingResourceModel, create bool, private privateData, st *tfsdk.State,
	diags *diag.Diagnostics) {
	ctx = r.data.maskedContext(ctx)
	if diags.HasError() || !r.data.requireStore(diags, "psa_ticket_routing") {
		return
	}
	tk, d := plan.toTickets(ctx)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	action, logged := "update", "Updated ticket routing"
	if create {
		action, logged = "add", "Created ticket routing"
	}
	var adopted bool
	var err error
	if create {
		var owner string
		adopted, owner, err = r.data.createEntry(ctx, r.exportEntry(&tk))
		if err == nil {
			diags.Append(setExportOwner(ctx, private, owner)...)
		}
	} else {
		// The routing keeps the owner token this instance wrote, if any, so
		// that its Delete still removes it.
		owner, d := exportOwner(ctx, private)
		diags.Append(d...)
		if diags.HasError() {
			return
		}
		tk.Owner = owner
		err = r.data.changeExport(ctx, func(doc *export.Document) error {
			doc.Tickets = &tk
			return nil
		})
	}
	if err != nil {
		exportUpdateError(diags, action, "the ticket routing", r.data.exportPath, err)
		return
	}
	if adopted {
		diags.AddWarning(summaryEntryAdopted, fmt.Sprintf(detailEntryAdopted, "The ticket routing", r.data.exportPath))
	}
	tflog.Info(ctx, logged, map[string]any{"queue_id": tk.QueueID, "enabled": tk.Enabled})
	plan.ID = types.StringValue(r.data.exportPath)
	diags.Append(st.Set(ctx, plan)...)
}

func (r *ticketRoutingResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = r.data.maskedContext(ctx)
	if !r.data.requireStore(&resp.Diagnostics, "psa_ticket_routing") {
		return
	}
	doc, ok := r.data.readExportForState(ctx, &resp.Diagnostics, "The ticket routing")
	if !ok {
		return
	}
	if doc.Tickets == nil {
		tflog.Warn(ctx, fmt.Sprintf(logRemovedFromState, "The ticket routing in "+r.data.exportPath))
		resp.State.RemoveResource(ctx)
		return
	}
	m, diags := newTicketRoutingModel(ctx, r.data.exportPath, *doc.Tickets)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (r *ticketRoutingResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan ticketRoutingResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	r.write(ctx, plan, false, req.Private, &resp.State, &resp.Diagnostics)
}

func (r *ticketRoutingResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	ctx = r.data.maskedContext(ctx)
	if !r.data.requireStore(&resp.Diagnostics, "psa_ticket_routing") {
		return
	}
	r.data.deleteExportEntry(ctx, req.Private, r.exportEntry(nil), &resp.Diagnostics,
		"Left ticket routing in the export for the resource instance that took it over", "Deleted ticket routing")
}

// ImportState takes the export path, which must be the provider's.
func (r *ticketRoutingResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if r.data == nil || !r.data.requireStore(&resp.Diagnostics, "psa_ticket_routing") {
		return
	}
	if !samePath(req.ID, r.data.exportPath) {
		resp.Diagnostics.AddError(summaryUnexpectedImportID, fmt.Sprintf(detailExportImportID, "psa_ticket_routing", r.data.exportPath, req.ID))
		return
	}
	doc, ok := r.data.exportForImport(ctx, &resp.Diagnostics, "psa_ticket_routing", summaryImportTicketRouting, ticketRoutingEntry)
	if !ok {
		return
	}
	if doc.Tickets == nil {
		resp.Diagnostics.AddError(summaryImportTicketRouting, fmt.Sprintf(detailImportNoEntry, ticketRoutingEntry, r.data.exportPath, ticketRoutingEntry))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), r.data.exportPath)...)
	// The imported instance holds the routing as its last owner did, so
	// that its Delete removes it.
	resp.Diagnostics.Append(setExportOwner(ctx, resp.Private, doc.Tickets.Owner)...)
}

// exportEntry is the ticket routing as an export entry, as Create writes
// it with the values of tk, or as Delete removes it (tk nil).
func (r *ticketRoutingResource) exportEntry(tk *export.Tickets) exportEntry {
	e := exportEntry{
		name:   ticketRoutingEntry,
		remove: func(doc *export.Document) { doc.Tickets = nil },
		owner: func(doc *export.Document) (string, bool) {
			if doc.Tickets == nil {
				return "", false
			}
			return doc.Tickets.Owner, true
		},
	}
	if tk != nil {
		e.match = func(doc *export.Document) (bool, bool) {
			if doc.Tickets == nil {
				return false, false
			}
			existing := *doc.Tickets
			existing.Owner = tk.Owner
			return true, reflect.DeepEqual(existing, *tk)
		}
		e.put = func(doc *export.Document, owner string) {
			owned := *tk
			owned.Owner = owner
			doc.Tickets = &owned
		}
		e.exists = fmt.Errorf("the export already has a ticket routing; there is one psa_ticket_routing per export. "+
			"Import it with: terraform import <address> %s", r.data.exportPath)
	}
	return e
}

// toTickets converts the planned values to the export's routing.
func (m ticketRoutingResourceModel) toTickets(ctx context.Context) (export.Tickets, diag.Diagnostics) {
	var diags diag.Diagnostics
	t := export.Tickets{
		Enabled: m.Enabled.ValueBool(), Schedule: m.Schedule.ValueString(), QueueID: m.QueueID.ValueString(),
		NewStatusID: m.NewStatusID.ValueString(), ClosedStatusID: m.ClosedStatusID.ValueString(), ReopenStatusID: m.ReopenStatusID.ValueString(),
		SourceID: m.SourceID.ValueString(), IssueTypeID: m.IssueTypeID.ValueString(), SubIssueTypeID: m.SubIssueTypeID.ValueString(),
		TicketTypeID: m.TicketTypeID.ValueString(), CategoryID: m.CategoryID.ValueString(), NoteTypeID: m.NoteTypeID.ValueString(),
		MinSeverity: m.MinSeverity.ValueString(), TitleFormat: m.TitleFormat.ValueString(), OnResolve: m.OnResolve.ValueString(),
		OnReturn: m.OnReturn.ValueString(), ReopenWindow: m.ReopenWindow.ValueString(), BackfillWindow: m.BackfillWindow.ValueString(),
		MaxPerPass: m.MaxPerPass.ValueInt64(), MaxPerCustomer: m.MaxPerCustomer.ValueInt64(),
	}
	if !m.Priorities.IsNull() {
		t.Priorities = map[string]string{}
		diags.Append(m.Priorities.ElementsAs(ctx, &t.Priorities, false)...)
	}
	return t, diags
}

// newTicketRoutingModel converts the export's routing to the state.
func newTicketRoutingModel(ctx context.Context, exportPath string, t export.Tickets) (ticketRoutingResourceModel, diag.Diagnostics) {
	prios := types.MapNull(types.StringType)
	var diags diag.Diagnostics
	if t.Priorities != nil {
		prios, diags = types.MapValueFrom(ctx, types.StringType, t.Priorities)
	}
	return ticketRoutingResourceModel{
		ID: types.StringValue(exportPath), Enabled: types.BoolValue(t.Enabled), Schedule: optionalString(t.Schedule),
		QueueID: types.StringValue(t.QueueID), NewStatusID: optionalString(t.NewStatusID), ClosedStatusID: optionalString(t.ClosedStatusID),
		ReopenStatusID: optionalString(t.ReopenStatusID), Priorities: prios, SourceID: optionalString(t.SourceID),
		IssueTypeID: optionalString(t.IssueTypeID), SubIssueTypeID: optionalString(t.SubIssueTypeID), TicketTypeID: optionalString(t.TicketTypeID),
		CategoryID: optionalString(t.CategoryID), NoteTypeID: optionalString(t.NoteTypeID), MinSeverity: types.StringValue(t.MinSeverity),
		TitleFormat: types.StringValue(t.TitleFormat), OnResolve: types.StringValue(t.OnResolve), OnReturn: types.StringValue(t.OnReturn),
		ReopenWindow: optionalString(t.ReopenWindow), BackfillWindow: optionalString(t.BackfillWindow), MaxPerPass: types.Int64Value(t.MaxPerPass), MaxPerCustomer: types.Int64Value(t.MaxPerCustomer),
	}, diags
}

// titleFormatString validates the placeholders of a ticket title format.
func titleFormatString() validator.String {
	return stringCheck{
		description: "value must use only the placeholders " + strings.Join(export.TitlePlaceholders, ", "),
		summary:     "Invalid Ticket Title Format",
		detail:      "psa-syncd could not fill in this title.",
		check: func(s string) error {
			var problems []string
			tk := export.Tickets{QueueID: "-", TitleFormat: s}
			doc := export.New(psa.SystemAutotask, "")
			doc.Tickets = &tk
			var ve *export.ValidationError
			if err := doc.Validate(); errors.As(err, &ve) {
				for _, p := range ve.Problems {
					problems = append(problems, p.Message)
				}
				return errors.New(strings.Join(problems, "; "))
			}
			return nil
		},
	}
}

// durationString validates a positive Go duration such as "24h".
func durationString() validator.String {
	return stringCheck{
		description: `value must be a positive duration such as "24h" or "90m"`,
		summary:     "Invalid Duration",
		detail:      `Use a duration such as "24h" or "90m".`,
		check: func(s string) error {
			d, err := time.ParseDuration(s)
			if err == nil && d <= 0 {
				err = fmt.Errorf("%q is not positive", s)
			}
			return err
		},
	}
}

// knownBesidesID reports whether every value of a planned resource but its
// id (known only once the plan is complete) is known.
func knownBesidesID(plan tftypes.Value) bool {
	id := tftypes.NewAttributePath().WithAttributeName("id")
	known := true
	_ = tftypes.Walk(plan, func(p *tftypes.AttributePath, v tftypes.Value) (bool, error) {
		if !v.IsKnown() && !p.Equal(id) {
			known = false
		}
		return known, nil
	})
	return known
}
