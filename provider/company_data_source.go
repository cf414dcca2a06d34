package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure companyDataSource satisfies the data source interfaces.
var (
	_ datasource.DataSource              = (*companyDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*companyDataSource)(nil)
)

// NewCompanyDataSource returns the psa_company data source.
func NewCompanyDataSource() datasource.DataSource {
	return &companyDataSource{}
}

// companyDataSource looks a PSA company up by name.
type companyDataSource struct {
	data *providerData
}

// companyDataSourceModel maps the psa_company schema data.
type companyDataSourceModel struct {
	ID     types.String `tfsdk:"id"`
	Name   types.String `tfsdk:"name"`
	Active types.Bool   `tfsdk:"active"`
}

func (d *companyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_company"
}

func (d *companyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a PSA company (an Autotask Company, a ConnectWise company or a Kaseya BMS account) by its exact name, ignoring case, so " +
			"configurations hold names that stay stable across environments rather than ids. The read fails, listing " +
			"every match, when several companies have the name, and fails naming the search when none has it. Inactive " +
			"companies are found too (`active` tells); ConnectWise companies deleted or merged into another are not.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{
				MarkdownDescription: "Exact name of the company, compared without regard to case.",
				Required:            true,
				Validators:          []validator.String{nonEmpty()},
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "The PSA's id of the company, for `psa_customer_mapping.company_id`.",
				Computed:            true,
			},
			"active": schema.BoolAttribute{
				MarkdownDescription: "Whether the company is active in the PSA.",
				Computed:            true,
			},
		},
	}
}

func (d *companyDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedDataSourceConfigure)
}

func (d *companyDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = d.data.maskedContext(ctx)
	var config companyDataSourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.Config.Raw, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := config.Name.ValueString()
	query := fmt.Sprintf("name %q", name)

	companies, err := d.data.backend.FindCompanies(ctx, name)
	err = searchError(err)
	if err != nil {
		resp.Diagnostics.AddError("Error Reading PSA Company", psaErrorDetail(d.data.system, "Looking up the company with "+query, err))
		return
	}
	c, ok := exactlyOne(&resp.Diagnostics, d.data.system, "company", query, companies,
		func(c psa.Company) string { return fmt.Sprintf("%q (id %s%s)", c.Name, c.ID, inactiveSuffix(c.Active)) },
		"Check the spelling; the name must match the whole company name.",
		"Rename or merge the duplicates in the PSA, or use the id of the right one directly.")
	if !ok {
		return
	}
	config.ID = types.StringValue(c.ID)
	config.Active = types.BoolValue(c.Active)
	resp.Diagnostics.Append(setFlat(ctx, &resp.State, config)...)
}

func inactiveSuffix(active bool) string {
	if active {
		return ""
	}
	return ", inactive"
}
