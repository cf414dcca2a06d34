package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure ticketLookupDataSource satisfies the data source interfaces.
var (
	_ datasource.DataSource              = (*ticketLookupDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*ticketLookupDataSource)(nil)
)

// NewTicketLookupDataSource returns the psa_ticket_lookup data source.
func NewTicketLookupDataSource() datasource.DataSource {
	return &ticketLookupDataSource{}
}

// ticketLookupDataSource looks up a ticket setting (queue, status, priority,
// ...) by name in the PSA's own lists.
type ticketLookupDataSource struct {
	data *providerData
}

// ticketLookupDataSourceModel maps the psa_ticket_lookup schema data.
type ticketLookupDataSourceModel struct {
	Kind    types.String `tfsdk:"kind"`
	Name    types.String `tfsdk:"name"`
	Scope   types.String `tfsdk:"scope"`
	ID      types.String `tfsdk:"id"`
	Active  types.Bool   `tfsdk:"active"`
	Closed  types.Bool   `tfsdk:"closed"`
	Default types.Bool   `tfsdk:"default"`
}

func (d *ticketLookupDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_ticket_lookup"
}

func ticketKindNames() []string {
	out := make([]string, len(psa.TicketLookupKinds))
	for i, k := range psa.TicketLookupKinds {
		out[i] = string(k)
	}
	return out
}

func (d *ticketLookupDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a ticket setting of the PSA by its exact name, ignoring case, for `psa_ticket_routing`: " +
			"a queue (Autotask queue, ConnectWise service board, Kaseya BMS queue), a status, a priority, a source, an issue or " +
			"sub-issue type, a ticket type, an Autotask ticket category or a note type. Configurations then hold names that " +
			"stay stable across PSA instances rather than ids. The read fails, listing the names there are, when none matches, " +
			"and lists every match when several do.\n\n" +
			"Which kinds exist depends on the PSA: Autotask has all of them (as picklists of Tickets and TicketNotes); " +
			"ConnectWise has `queue` (boards), `status` and `ticket_type` (both per board: set `scope` to the board id), " +
			"`priority` and `source`; Kaseya BMS has all but `ticket_category`.",
		Attributes: map[string]schema.Attribute{
			"kind": schema.StringAttribute{
				MarkdownDescription: "What to look up: one of `" + strings.Join(ticketKindNames(), "`, `") + "`.",
				Required:            true,
				Validators:          []validator.String{stringvalidator.OneOf(ticketKindNames()...)},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Exact name of the entry, compared without regard to case, e.g. `\"Monitoring Alert\"`.",
				Required:            true,
				Validators:          []validator.String{nonEmpty()},
			},
			"scope": schema.StringAttribute{
				MarkdownDescription: "The list the entry belongs to, where the PSA keeps several: the board id for ConnectWise " +
					"`status` and `ticket_type`, the issue type id for `sub_issue_type`. Leave it unset otherwise.",
				Optional: true,
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "The PSA's id of the entry, for the matching `psa_ticket_routing` attribute.",
				Computed:            true,
			},
			"active": schema.BoolAttribute{
				MarkdownDescription: "Whether the entry can still be chosen in the PSA.",
				Computed:            true,
			},
			"closed": schema.BoolAttribute{
				MarkdownDescription: "For a status: whether it closes the ticket (Autotask *Complete*, a ConnectWise closed " +
					"status, a Kaseya BMS completed status).",
				Computed: true,
			},
			"default": schema.BoolAttribute{
				MarkdownDescription: "Whether the entry is the PSA's default of its list.",
				Computed:            true,
			},
		},
	}
}

func (d *ticketLookupDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedDataSourceConfigure)
}

func (d *ticketLookupDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = d.data.maskedContext(ctx)
	var config ticketLookupDataSourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.Config.Raw, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	kind := psa.TicketLookupKind(config.Kind.ValueString())
	name := config.Name.ValueString()
	t, ok := d.data.ticketer(&resp.Diagnostics)
	if !ok {
		return
	}
	list, ok := d.data.ticketLookups(ctx, &resp.Diagnostics, t, kind, config.Scope.ValueString(), path.Root("kind"), path.Root("scope"))
	if !ok {
		return
	}
	var matches []psa.TicketLookup
	for _, l := range list {
		if strings.EqualFold(strings.TrimSpace(l.Name), strings.TrimSpace(name)) {
			matches = append(matches, l)
		}
	}
	what := "ticket " + strings.ReplaceAll(string(kind), "_", " ")
	l, ok := exactlyOne(&resp.Diagnostics, d.data.system, what, fmt.Sprintf("name %q", name), matches,
		func(l psa.TicketLookup) string {
			return fmt.Sprintf("%q (id %s%s)", l.Name, l.ID, inactiveSuffix(l.Active))
		},
		"The names there are: "+lookupNames(list)+".",
		"Rename the duplicates in the PSA, or use the id of the right one directly.")
	if !ok {
		return
	}
	config.ID = types.StringValue(l.ID)
	config.Active = types.BoolValue(l.Active)
	config.Closed = types.BoolValue(l.Closed)
	config.Default = types.BoolValue(l.Default)
	resp.Diagnostics.Append(setFlat(ctx, &resp.State, config)...)
}

// ticketer returns the backend's ticket side, or adds an error when the PSA
// has none.
func (d *providerData) ticketer(diags *diag.Diagnostics) (psa.Ticketer, bool) {
	t, ok := d.backend.(psa.Ticketer)
	if !ok {
		diags.AddError("Tickets Not Supported", fmt.Sprintf("The %s backend cannot create tickets. Please report this issue to the provider developers.", systemTitle(d.system)))
	}
	return t, ok
}

// ticketLookups reads a lookup list, with errors that name the kinds the
// PSA has when kind is not one of them, and, on a not-found answer, the
// scope (scopeAttr) that does not exist or the address settings to check.
func (d *providerData) ticketLookups(ctx context.Context, diags *diag.Diagnostics, t psa.Ticketer, kind psa.TicketLookupKind,
	scope string, attr, scopeAttr path.Path) ([]psa.TicketLookup, bool) {
	system := d.system
	list, err := t.TicketLookups(ctx, kind, scope)
	if errors.Is(err, psa.ErrNotFound) {
		// A list of the whole PSA is a search: its 404 is the address's.
		// A list of one board or issue type answers 404 when that one
		// does not exist, or when the address is wrong.
		if scope == "" {
			err = searchError(err)
		} else {
			owner := scopeName(kind)
			if detail := d.notFoundUnconfirmed(ctx, fmt.Sprintf("%s %s", owner, scope), err); detail != "" {
				diags.AddAttributeError(scopeAttr, "Unable to Verify PSA Ticket Settings", detail)
				return nil, false
			}
			diags.AddAttributeError(scopeAttr, "Ticket Setting Scope Not Found",
				fmt.Sprintf("%s has no %s with id %s, whose ticket %s list this reads. Check the id; the psa_ticket_lookup "+
					"data source looks the %s up by name (kind = %q).\n\n%v", systemTitle(system), owner, scope,
					strings.ReplaceAll(string(kind), "_", " "), owner, scopeKind(kind), err))
			return nil, false
		}
	}
	switch {
	case errors.Is(err, psa.ErrNotSupported):
		kinds := make([]string, 0, len(t.TicketLookupKinds()))
		for _, k := range t.TicketLookupKinds() {
			kinds = append(kinds, string(k))
		}
		diags.AddAttributeError(attr, "Unsupported Ticket Setting",
			fmt.Sprintf("%s tickets have no %s. The ticket settings %s has are: %s.", systemTitle(system),
				strings.ReplaceAll(string(kind), "_", " "), systemTitle(system), strings.Join(kinds, ", ")))
		return nil, false
	case err != nil:
		diags.AddError("Error Reading PSA Ticket Settings",
			psaErrorDetail(system, "Reading the ticket "+strings.ReplaceAll(string(kind), "_", " ")+" list", err))
		return nil, false
	}
	return list, true
}

// scopeName names what the scope of a lookup list of kind is: the
// ConnectWise board of statuses and ticket types, the issue type of
// sub-issue types.
func scopeName(kind psa.TicketLookupKind) string {
	if kind == psa.TicketLookupSubIssueType {
		return "issue type"
	}
	return "board"
}

// scopeKind is the lookup kind that finds the scope of kind by name.
func scopeKind(kind psa.TicketLookupKind) psa.TicketLookupKind {
	if kind == psa.TicketLookupSubIssueType {
		return psa.TicketLookupIssueType
	}
	return psa.TicketLookupQueue
}

func lookupNames(list []psa.TicketLookup) string {
	if len(list) == 0 {
		return "none (the list is empty)"
	}
	names := make([]string, len(list))
	for i, l := range list {
		names[i] = fmt.Sprintf("%q (id %s)", l.Name, l.ID)
	}
	return strings.Join(names, ", ")
}
