package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure serviceDataSource satisfies the data source interfaces.
var (
	_ datasource.DataSource              = (*serviceDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*serviceDataSource)(nil)
)

// NewServiceDataSource returns the psa_service data source.
func NewServiceDataSource() datasource.DataSource {
	return &serviceDataSource{}
}

// serviceDataSource looks a PSA service up by name.
type serviceDataSource struct {
	data *providerData
}

// serviceDataSourceModel maps the psa_service data source schema data.
type serviceDataSourceModel struct {
	Name               types.String  `tfsdk:"name"`
	ID                 types.String  `tfsdk:"id"`
	Description        types.String  `tfsdk:"description"`
	InvoiceDescription types.String  `tfsdk:"invoice_description"`
	UnitPrice          types.Float64 `tfsdk:"unit_price"`
	UnitCost           types.Float64 `tfsdk:"unit_cost"`
	BillingPeriod      types.String  `tfsdk:"billing_period"`
	Active             types.Bool    `tfsdk:"active"`
	Autotask           types.Object  `tfsdk:"autotask"`
	ConnectWise        types.Object  `tfsdk:"connectwise"`
	KaseyaBMS          types.Object  `tfsdk:"kaseya_bms"`
}

// objectAttrTypes gives getFlat and flatValue the attribute types of the
// PSAs' blocks (see flatObjectModel).
func (serviceDataSourceModel) objectAttrTypes() map[string]map[string]attr.Type {
	return serviceBlockAttrTypes
}

func (d *serviceDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_service"
}

func (d *serviceDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up an existing PSA service (an Autotask Service, a ConnectWise catalog item or a Kaseya BMS " +
			"service) by its exact name, ignoring case, " +
			"active or not, for mapping products to services that Terraform does not manage. The read fails, listing " +
			"every match, when several services have the name, and fails naming the search when none has it.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{
				MarkdownDescription: "Exact name of the service, compared without regard to case.",
				Required:            true,
				Validators:          []validator.String{nonEmpty()},
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "The PSA's id of the service, for `psa_product_mapping.service_id`.",
				Computed:            true,
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Internal description of the service (the catalog item's notes in ConnectWise).",
				Computed:            true,
			},
			"invoice_description": schema.StringAttribute{
				MarkdownDescription: "Text printed on invoices for the service (the customer description in ConnectWise); " +
					"empty for Kaseya BMS, whose services have none.",
				Computed: true,
			},
			"unit_price": schema.Float64Attribute{
				MarkdownDescription: "Price of one unit per billing period.",
				Computed:            true,
			},
			"unit_cost": schema.Float64Attribute{
				MarkdownDescription: "Cost of one unit per billing period.",
				Computed:            true,
			},
			"billing_period": schema.StringAttribute{
				MarkdownDescription: "How often one unit is billed: " + quotedList(billingPeriods()) + ". Empty when the " +
					"PSA does not say: Kaseya BMS services have no billing period, and a ConnectWise catalog item has one " +
					"only when its recurring bill cycle is set.",
				Computed: true,
			},
			"active": schema.BoolAttribute{
				MarkdownDescription: "Whether the service can be added to contracts; product mappings need an active service.",
				Computed:            true,
			},
			string(psa.SystemAutotask): schema.SingleNestedAttribute{
				MarkdownDescription: "Fields only Autotask has; null for other PSAs.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"billing_code_id": schema.StringAttribute{
						MarkdownDescription: "Id of the Autotask allocation (billing) code of the service.",
						Computed:            true,
					},
					"period_type": schema.StringAttribute{
						MarkdownDescription: "Label of the Autotask `periodType` picklist value.",
						Computed:            true,
					},
				},
			},
			string(psa.SystemConnectWise): schema.SingleNestedAttribute{
				MarkdownDescription: "Fields only ConnectWise catalog items have; null for other PSAs.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"identifier": schema.StringAttribute{
						MarkdownDescription: "The catalog item's product id, which agreement additions refer to.",
						Computed:            true,
					},
					"type_id": schema.StringAttribute{
						MarkdownDescription: "Id of the product type; empty when none.",
						Computed:            true,
					},
					"subcategory_id": schema.StringAttribute{
						MarkdownDescription: "Id of the product subcategory; empty when none.",
						Computed:            true,
					},
					"product_class": schema.StringAttribute{
						MarkdownDescription: "Product class, e.g. `\"NonInventory\"`.",
						Computed:            true,
					},
					"customer_description": schema.StringAttribute{
						MarkdownDescription: "The customer description, as in `invoice_description`.",
						Computed:            true,
					},
				},
			},
			string(psa.SystemKaseyaBMS): schema.SingleNestedAttribute{
				MarkdownDescription: "Fields only Kaseya BMS services have; null for other PSAs.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"category": schema.StringAttribute{
						MarkdownDescription: "Name of the service category; empty when none.",
						Computed:            true,
					},
					"subcategory": schema.StringAttribute{
						MarkdownDescription: "Name of the service subcategory; empty when none.",
						Computed:            true,
					},
					"unit_of_measure": schema.StringAttribute{
						MarkdownDescription: "Name of the unit of measure; empty when none.",
						Computed:            true,
					},
					"taxable": schema.BoolAttribute{
						MarkdownDescription: "Whether the service is taxable.",
						Computed:            true,
					},
				},
			},
		},
	}
}

func (d *serviceDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedDataSourceConfigure)
}

func (d *serviceDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = d.data.maskedContext(ctx)
	var config serviceDataSourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.Config.Raw, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := config.Name.ValueString()
	query := fmt.Sprintf("name %q", name)

	services, err := d.data.backend.FindServices(ctx, name)
	err = searchError(err)
	if err != nil {
		resp.Diagnostics.AddError("Error Reading PSA Service", psaErrorDetail(d.data.system, "Looking up the service with "+query, err))
		return
	}
	s, ok := exactlyOne(&resp.Diagnostics, d.data.system, "service", query, services,
		func(s psa.Service) string { return fmt.Sprintf("%q (id %s%s)", s.Name, s.ID, inactiveSuffix(s.Active)) },
		"Check the spelling; the name must match the whole service name. Inactive services are included.",
		"Rename the duplicates in the PSA, or use the id of the right one directly.")
	if !ok {
		return
	}
	config.ID = types.StringValue(s.ID)
	config.Description = types.StringValue(s.Description)
	config.InvoiceDescription = types.StringValue(s.InvoiceDescription)
	config.UnitPrice = types.Float64Value(s.UnitPrice)
	config.UnitCost = types.Float64Value(s.UnitCost)
	config.BillingPeriod = types.StringValue(string(s.BillingPeriod))
	config.Active = types.BoolValue(s.Active)
	config.Autotask = types.ObjectNull(serviceAutotaskAttrTypes)
	if s.Autotask != nil {
		obj, diags := flatObject(ctx, serviceAutotaskAttrTypes, serviceAutotaskModel{
			BillingCodeID: types.StringValue(s.Autotask.BillingCodeID),
			PeriodType:    types.StringValue(s.Autotask.PeriodType),
		})
		resp.Diagnostics.Append(diags...)
		config.Autotask = obj
	}
	config.ConnectWise = types.ObjectNull(serviceConnectWiseAttrTypes)
	if s.ConnectWise != nil {
		obj, diags := flatObject(ctx, serviceConnectWiseAttrTypes, newServiceConnectWiseModel(s.ConnectWise))
		resp.Diagnostics.Append(diags...)
		config.ConnectWise = obj
	}
	config.KaseyaBMS = types.ObjectNull(serviceKaseyaBMSAttrTypes)
	if s.KaseyaBMS != nil {
		obj, diags := flatObject(ctx, serviceKaseyaBMSAttrTypes, newServiceKaseyaBMSModel(s.KaseyaBMS))
		resp.Diagnostics.Append(diags...)
		config.KaseyaBMS = obj
	}
	resp.Diagnostics.Append(setFlat(ctx, &resp.State, config)...)
}
