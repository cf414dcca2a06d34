package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure contractDataSource satisfies the data source interfaces.
var (
	_ datasource.DataSource              = (*contractDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*contractDataSource)(nil)
)

// NewContractDataSource returns the psa_contract data source.
func NewContractDataSource() datasource.DataSource {
	return &contractDataSource{}
}

// contractDataSource looks a company's contract up by name.
type contractDataSource struct {
	data *providerData
}

// contractDataSourceModel maps the psa_contract schema data.
type contractDataSourceModel struct {
	CompanyID       types.String `tfsdk:"company_id"`
	Name            types.String `tfsdk:"name"`
	IncludeInactive types.Bool   `tfsdk:"include_inactive"`
	AnyType         types.Bool   `tfsdk:"any_type"`
	ID              types.String `tfsdk:"id"`
	Type            types.String `tfsdk:"type"`
	Status          types.String `tfsdk:"status"`
	Active          types.Bool   `tfsdk:"active"`
	Recurring       types.Bool   `tfsdk:"recurring"`
	StartDate       types.String `tfsdk:"start_date"`
	EndDate         types.String `tfsdk:"end_date"`
}

func (d *contractDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_contract"
}

func (d *contractDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up one of a company's contracts (an Autotask Contract, a ConnectWise agreement or a Kaseya BMS " +
			"contract) by its exact name, ignoring " +
			"case. Only active recurring-service contracts are considered, because those are the only ones usage sync " +
			"writes to; `include_inactive` and `any_type` widen the search. The read fails, listing every match, when " +
			"several contracts have the name, and fails naming the search when none has it.",
		Attributes: map[string]schema.Attribute{
			"company_id": schema.StringAttribute{
				MarkdownDescription: "Id of the company whose contracts are searched, usually `data.psa_company.<name>.id`.",
				Required:            true,
				Validators:          []validator.String{nonEmpty()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Exact name of the contract, compared without regard to case.",
				Required:            true,
				Validators:          []validator.String{nonEmpty()},
			},
			"include_inactive": schema.BoolAttribute{
				MarkdownDescription: "Also consider contracts that are not active (ended, not yet started or cancelled). Defaults to `false`.",
				Optional:            true,
			},
			"any_type": schema.BoolAttribute{
				MarkdownDescription: "Also consider contracts that are not recurring-service contracts. Defaults to `false`.",
				Optional:            true,
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "The PSA's id of the contract, for `psa_customer_mapping.contract_id`.",
				Computed:            true,
			},
			"type": schema.StringAttribute{
				MarkdownDescription: "The PSA's label of the contract type, e.g. `\"Recurring Service\"`.",
				Computed:            true,
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "The PSA's label of the contract status, e.g. `\"Active\"`.",
				Computed:            true,
			},
			"active": schema.BoolAttribute{
				MarkdownDescription: "Whether the contract can be billed on now.",
				Computed:            true,
			},
			"recurring": schema.BoolAttribute{
				MarkdownDescription: "Whether it is a recurring-service contract, the only kind usage sync writes to: an Autotask Recurring " +
					"Service contract, a ConnectWise agreement whose billing cycle is not One Time, or a Kaseya BMS recurring " +
					"services contract.",
				Computed: true,
			},
			"start_date": schema.StringAttribute{
				MarkdownDescription: "First day of the contract, as `YYYY-MM-DD`.",
				Computed:            true,
			},
			"end_date": schema.StringAttribute{
				MarkdownDescription: "Last day of the contract, as `YYYY-MM-DD`; empty when it has none.",
				Computed:            true,
			},
		},
	}
}

func (d *contractDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedDataSourceConfigure)
}

func (d *contractDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = d.data.maskedContext(ctx)
	var config contractDataSourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.Config.Raw, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	q := psa.ContractQuery{
		CompanyID:       config.CompanyID.ValueString(),
		Name:            config.Name.ValueString(),
		IncludeInactive: config.IncludeInactive.ValueBool(),
		AnyType:         config.AnyType.ValueBool(),
	}
	query := fmt.Sprintf("name %q of company %s", q.Name, q.CompanyID)

	contracts, err := d.data.backend.FindContracts(ctx, q)
	err = searchError(err)
	if err != nil {
		resp.Diagnostics.AddError("Error Reading PSA Contract", psaErrorDetail(d.data.system, "Looking up the contract with "+query, err))
		return
	}
	var searched string
	switch {
	case !q.IncludeInactive && !q.AnyType:
		searched = "Only active recurring-service contracts were searched; set include_inactive or any_type to widen the search."
	case !q.IncludeInactive:
		searched = "Only active contracts were searched; set include_inactive to widen the search."
	case !q.AnyType:
		searched = "Only recurring-service contracts were searched; set any_type to widen the search."
	}
	c, ok := exactlyOne(&resp.Diagnostics, d.data.system, "contract", query, contracts,
		func(c psa.Contract) string { return fmt.Sprintf("%q (id %s, %s, %s)", c.Name, c.ID, c.Type, c.Status) },
		searched,
		"Rename the contracts in the PSA so that names are unique per company, or use the id of the right one directly.")
	if !ok {
		return
	}
	config.ID = types.StringValue(c.ID)
	config.Type = types.StringValue(c.Type)
	config.Status = types.StringValue(c.Status)
	config.Active = types.BoolValue(c.Active)
	config.Recurring = types.BoolValue(c.Recurring)
	config.StartDate = types.StringValue(formatDate(c.StartDate))
	config.EndDate = types.StringValue(formatDate(c.EndDate))
	resp.Diagnostics.Append(setFlat(ctx, &resp.State, config)...)
}

// formatDate formats a calendar date; the zero time is empty.
func formatDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}
