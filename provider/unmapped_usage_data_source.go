package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Ensure unmappedUsageDataSource satisfies the data source interfaces.
var (
	_ datasource.DataSource              = (*unmappedUsageDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*unmappedUsageDataSource)(nil)
)

// NewUnmappedUsageDataSource returns the psa_unmapped_usage data source.
func NewUnmappedUsageDataSource() datasource.DataSource {
	return &unmappedUsageDataSource{}
}

// unmappedUsageDataSource reads the usage psa-syncd's last pass could not
// bill (GET /api/v1/unmapped) from the psa-syncd that is the provider's
// export store, so that a plan can show it and a check or a condition can
// fail on it in the pull request that should map it.
type unmappedUsageDataSource struct {
	data *providerData
}

// unmappedUsageDataSourceModel maps the psa_unmapped_usage schema data.
type unmappedUsageDataSourceModel struct {
	Source      types.String              `tfsdk:"source"`
	URL         types.String              `tfsdk:"url"`
	ComputedAt  types.String              `tfsdk:"computed_at"`
	RunID       types.Int64               `tfsdk:"run_id"`
	Period      types.String              `tfsdk:"period"`
	HasUnmapped types.Bool                `tfsdk:"has_unmapped"`
	Customers   []unmappedCustomerModel   `tfsdk:"customers"`
	Products    []unmappedProductModel    `tfsdk:"products"`
	Unassigned  []unassignedUsageModel    `tfsdk:"unassigned"`
	Unreported  []unreportedCustomerModel `tfsdk:"unreported"`
}

type unmappedCustomerModel struct {
	CustomerID   types.String `tfsdk:"customer_id"`
	CustomerName types.String `tfsdk:"customer_name"`
	Products     []string     `tfsdk:"products"`
	Quantity     types.Int64  `tfsdk:"quantity"`
}

type unmappedProductModel struct {
	Product     types.String `tfsdk:"product"`
	ProductName types.String `tfsdk:"product_name"`
	Customers   types.Int64  `tfsdk:"customers"`
	Quantity    types.Int64  `tfsdk:"quantity"`
}

type unassignedUsageModel struct {
	Product     types.String `tfsdk:"product"`
	ProductName types.String `tfsdk:"product_name"`
	Quantity    types.Int64  `tfsdk:"quantity"`
}

type unreportedCustomerModel struct {
	CustomerID   types.String `tfsdk:"customer_id"`
	CustomerName types.String `tfsdk:"customer_name"`
	ContractID   types.String `tfsdk:"contract_id"`
	Quantity     types.Int64  `tfsdk:"quantity"`
	Vendor       types.String `tfsdk:"vendor"`
}

func (d *unmappedUsageDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_unmapped_usage"
}

func (d *unmappedUsageDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	str := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	num := func(desc string) schema.Int64Attribute {
		return schema.Int64Attribute{MarkdownDescription: desc, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "The usage that psa-syncd's last pass could not bill: vendor customers without a " +
			"`psa_customer_mapping`, products without a `psa_product_mapping` and usage that belongs to no customer, " +
			"as psa-syncd's `GET /api/v1/unmapped` (and `psa-syncd plan`) report them, with the mapped customers the " +
			"vendor no longer reports. A `check` block, or a `postcondition` of this data source, can then warn or fail " +
			"the plan of a pull request while usage is unmapped, and name what to map.\n\n" +
			"It reads, at plan time, the psa-syncd of the provider's `psa_syncd_url` (with `psa_syncd_api_token` when a " +
			"proxy asks for one, or as the basic password of the user `psa_syncd_url` names for a listener with " +
			"`basic_auth_users`), or else the psa-syncd that is the provider's mapping export store (`export_url` is " +
			"psa-syncd's `https://` URL, with `export_token`). With a file or S3 store and no `psa_syncd_url` the read " +
			"fails and says so. Set `source` to the usage source whose mappings the configuration holds, so that a " +
			"URL of the psa-syncd of another source fails the plan instead of showing another source's ids. " +
			"It shows psa-syncd's **last pass**, so mappings that the plan being " +
			"made adds are not applied yet: filter them out by id in the condition, as the example does. Before " +
			"psa-syncd's first pass the lists are empty, `computed_at` is null and the read warns. Usage of quantity 0 " +
			"and usage mapped with `sync_enabled = false` or `usage_sync = false` are not unmapped and are not listed.",
		Attributes: map[string]schema.Attribute{
			"source": schema.StringAttribute{
				MarkdownDescription: "The usage source psa-syncd's last pass read (`sophos`, or a file source's `name`): " +
					"the `source` of the mappings that would bill the ids listed. When set, the read fails unless psa-syncd's " +
					"last pass read that source, so that a plan cannot pass on the (empty) lists of the psa-syncd of another " +
					"source; the check is skipped, with a warning, before psa-syncd's first pass and with a psa-syncd too old " +
					"to report its source. When not set, it is what psa-syncd reports, null in those two cases.",
				Optional:   true,
				Computed:   true,
				Validators: []validator.String{keyPart()},
			},
			"url": str("The psa-syncd read (`psa_syncd_url`, or else `export_url`; without credentials)."),
			"computed_at": str("When psa-syncd's last pass computed this (RFC 3339, UTC); null before its first pass. " +
				"Compare it with `plantimestamp()` to fail on a psa-syncd that has stopped passing."),
			"run_id": num("psa-syncd's run id of that pass (`psa-syncd status`, `GET /api/v1/runs/{id}`); 0 before its first pass."),
			"period": str("The billing month of that pass, `YYYY-MM`; null before its first pass."),
			"has_unmapped": schema.BoolAttribute{
				MarkdownDescription: "Whether any of `customers`, `products` or `unassigned` is not empty: usage above 0 " +
					"that no contract bills. `unreported` does not count.",
				Computed: true,
			},
			"customers": schema.ListNestedAttribute{
				MarkdownDescription: "Vendor customers with usage above 0 and no customer mapping, as psa-syncd lists them.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"customer_id":   str("The vendor's customer id: the `customer_id` of the `psa_customer_mapping` to add."),
					"customer_name": str("The vendor's name of the customer, when the source gives one."),
					"products": schema.ListAttribute{
						MarkdownDescription: "The products the customer used.",
						ElementType:         types.StringType,
						Computed:            true,
					},
					"quantity": num("The customer's usage, all products summed."),
				}},
			},
			"products": schema.ListNestedAttribute{
				MarkdownDescription: "Products with usage above 0 and no product mapping.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"product":      str("The vendor's product code: the `product` of the `psa_product_mapping` to add."),
					"product_name": str("The vendor's name of the product, when the source gives one."),
					"customers":    num("How many customers used it."),
					"quantity":     num("Its usage, all customers summed."),
				}},
			},
			"unassigned": schema.ListNestedAttribute{
				MarkdownDescription: "Usage above 0 that belongs to no customer (a licence the vendor has not assigned), " +
					"per product. No mapping bills it: assign it to a customer at the vendor.",
				Computed: true,
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"product":      str("The vendor's product code."),
					"product_name": str("The vendor's name of the product, when the source gives one."),
					"quantity":     num("The usage that belongs to no customer."),
				}},
			},
			"unreported": schema.ListNestedAttribute{
				MarkdownDescription: "Mapped customers with usage sync on that the vendor's usage report named nowhere " +
					"while a mapped line of their contract is above 0: a tenant removed or moved to another partner, or " +
					"a `customer_id` that never matches.",
				Computed: true,
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"customer_id":   str("The mapping's `customer_id`."),
					"customer_name": str("The mapping's `customer_name`, if any."),
					"contract_id":   str("The mapped contract."),
					"quantity":      num("The current quantity of its mapped lines, summed."),
					"vendor": str("What the vendor's customer list says of it: `gone` (not listed: removed, moved, " +
						"or a misspelled id), `listed` (listed, with no usage this period), or null when the source keeps " +
						"no such list."),
				}},
			},
		},
	}
}

func (d *unmappedUsageDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedDataSourceConfigure)
}

func (d *unmappedUsageDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = d.data.maskedContext(ctx)
	var config unmappedUsageDataSourceModel
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("source"), &config.Source)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s, ok := d.data.psaSyncd(&resp.Diagnostics, "psa_unmapped_usage")
	if !ok {
		return
	}
	b := s.api
	raw, err := b.ReadAPI(ctx, export.UnmappedAPIPath)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Read Unmapped Usage",
			fmt.Sprintf("The provider could not read the unmapped usage from psa-syncd at %s (GET %s). Check that psa-syncd "+
				"runs and that this machine reaches it at that URL (%s), and %s.\n\n%v",
				b.String(), export.UnmappedAPIPath, s.urlSetting, s.tokenSetting, err))
		return
	}
	model, err := decodeUnmappedUsage(raw)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Read Unmapped Usage",
			fmt.Sprintf("psa-syncd at %s answered GET %s with a document the provider cannot read: is the URL psa-syncd's, "+
				"and is psa-syncd as new as the provider?\n\n%v", b.String(), export.UnmappedAPIPath, err))
		return
	}
	model.URL = types.StringValue(b.String())
	if model.ComputedAt.IsNull() {
		resp.Diagnostics.AddWarning("psa-syncd Has Not Run a Pass Yet",
			fmt.Sprintf("psa-syncd at %s has not run a usage pass yet (or its state database is new), so it knows of no "+
				"unmapped usage: the lists of psa_unmapped_usage are empty, and a condition on them passes. Run "+
				"psa-syncd sync (or wait for its schedule) and plan again.", b.String()))
	}
	if want := config.Source; !want.IsNull() && !want.IsUnknown() {
		switch got := model.Source; {
		case !got.IsNull() && got.ValueString() != want.ValueString():
			resp.Diagnostics.AddAttributeError(path.Root("source"), "psa-syncd Reads Another Usage Source",
				fmt.Sprintf("psa-syncd at %s (%s) reads the usage source %q, not %q: the usage it could not bill is of %q's "+
					"customers and products, and says nothing of %q's. Set %s to the URL of the psa-syncd that reads %q, "+
					"or source to %q.", b.String(), s.urlSetting, got.ValueString(), want.ValueString(), got.ValueString(),
					want.ValueString(), s.urlSetting, want.ValueString(), got.ValueString()))
			return
		case got.IsNull() && !model.ComputedAt.IsNull():
			resp.Diagnostics.AddAttributeWarning(path.Root("source"), "psa-syncd Does Not Report Its Usage Source",
				fmt.Sprintf("psa-syncd at %s does not say which usage source its last pass read (a psa-syncd older than the "+
					"provider, or a report kept from before its upgrade, which its next pass replaces), so the provider cannot "+
					"check that it reads %q. Upgrade psa-syncd, or run a pass, and plan again.", b.String(), want.ValueString()))
		}
		// A source that is set stays as configured (Terraform requires it).
		model.Source = want
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &model)...)
}

// psaSyncdTarget is the psa-syncd whose read-only API a data source reads,
// and the provider settings that name its URL and token, for messages.
type psaSyncdTarget struct {
	api                      *export.HTTPBackend
	urlSetting, tokenSetting string
}

// psaSyncd returns the psa-syncd of psa_syncd_url, or else the export
// store's when it is psa-syncd, or adds an error naming what (a data
// source type) and the settings that would name one.
func (d *providerData) psaSyncd(diags *diag.Diagnostics, what string) (psaSyncdTarget, bool) {
	if d.psaSyncdAPI != nil {
		return psaSyncdTarget{d.psaSyncdAPI, "psa_syncd_url", "psa_syncd_api_token"}, true
	}
	set := "Set psa_syncd_url to psa-syncd's URL (e.g. https://psa-syncd.example:9810), in the provider block or the " +
		envPSASyncdURL + " environment variable, with psa_syncd_api_token (" + envPSASyncdAPIToken + ") only if a proxy in " +
		"front of psa-syncd asks for its API token"
	if d.store == nil {
		diags.AddError("psa-syncd Not Configured",
			what+" reads psa-syncd's API, but the provider has no psa_syncd_url and no export store. "+set+"; or make psa-syncd "+
				"the export store: export_url set to its URL (psa-syncd configured with export_url: self) and export_token "+
				"to its API token.")
		return psaSyncdTarget{}, false
	}
	b, ok := d.store.Backend().(*export.HTTPBackend)
	if !ok {
		diags.AddError("psa-syncd Not Configured",
			fmt.Sprintf("%s reads psa-syncd's API, but the provider has no psa_syncd_url and its mapping export store is %q, "+
				"not psa-syncd. %s. Without it, review unmapped usage with psa-syncd plan, its status page or GET %s.",
				what, d.exportPath, set, export.UnmappedAPIPath))
		return psaSyncdTarget{}, false
	}
	return psaSyncdTarget{b, "export_url", "export_token"}, true
}

// unmappedReport is the JSON of psa-syncd's GET /api/v1/unmapped (see
// daemon/usage.UnmappedReport): the fields the data source shows.
type unmappedReport struct {
	Time     time.Time `json:"time"`
	RunID    int64     `json:"run_id"`
	Period   string    `json:"period"`
	Source   string    `json:"source"`
	Unmapped struct {
		Customers []struct {
			CustomerID   string   `json:"customer_id"`
			CustomerName string   `json:"customer_name"`
			Products     []string `json:"products"`
			Quantity     int64    `json:"quantity"`
		} `json:"customers"`
		Products []struct {
			Product     string `json:"product"`
			ProductName string `json:"product_name"`
			Customers   int64  `json:"customers"`
			Quantity    int64  `json:"quantity"`
		} `json:"products"`
		Unassigned []struct {
			Product     string `json:"product"`
			ProductName string `json:"product_name"`
			Quantity    int64  `json:"quantity"`
		} `json:"unassigned"`
		Unreported []struct {
			CustomerID   string `json:"customer_id"`
			CustomerName string `json:"customer_name"`
			ContractID   string `json:"contract_id"`
			Quantity     int64  `json:"quantity"`
			Vendor       string `json:"vendor"`
		} `json:"unreported"`
	} `json:"unmapped"`
}

// decodeUnmappedUsage turns psa-syncd's answer into the data source's
// model. Unassigned rows of quantity 0, which a psa-syncd older than
// zero_unassigned still lists, are left out: they leave nothing unbilled.
// Unknown fields are ignored, so that a newer psa-syncd's additions
// do not break an older provider; a document without "unmapped" is not
// psa-syncd's answer and is refused.
func decodeUnmappedUsage(raw []byte) (unmappedUsageDataSourceModel, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return unmappedUsageDataSourceModel{}, fmt.Errorf("not JSON: %w", err)
	}
	if _, ok := probe["unmapped"]; !ok {
		return unmappedUsageDataSourceModel{}, fmt.Errorf(`the answer has no "unmapped" object: %.200s`, bytes.TrimSpace(raw))
	}
	var rep unmappedReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return unmappedUsageDataSourceModel{}, err
	}
	optional := func(s string) types.String {
		if s == "" {
			return types.StringNull()
		}
		return types.StringValue(s)
	}
	m := unmappedUsageDataSourceModel{
		Source:     optional(rep.Source),
		ComputedAt: types.StringNull(),
		RunID:      types.Int64Value(rep.RunID),
		Period:     optional(rep.Period),
		Customers:  []unmappedCustomerModel{},
		Products:   []unmappedProductModel{},
		Unassigned: []unassignedUsageModel{},
		Unreported: []unreportedCustomerModel{},
	}
	if !rep.Time.IsZero() {
		m.ComputedAt = types.StringValue(rep.Time.UTC().Format(time.RFC3339))
	}
	u := rep.Unmapped
	for _, c := range u.Customers {
		products := c.Products
		if products == nil {
			products = []string{}
		}
		m.Customers = append(m.Customers, unmappedCustomerModel{
			CustomerID: types.StringValue(c.CustomerID), CustomerName: optional(c.CustomerName),
			Products: products, Quantity: types.Int64Value(c.Quantity),
		})
	}
	for _, p := range u.Products {
		m.Products = append(m.Products, unmappedProductModel{
			Product: types.StringValue(p.Product), ProductName: optional(p.ProductName),
			Customers: types.Int64Value(p.Customers), Quantity: types.Int64Value(p.Quantity),
		})
	}
	for _, r := range u.Unassigned {
		if r.Quantity == 0 {
			continue
		}
		m.Unassigned = append(m.Unassigned, unassignedUsageModel{
			Product: types.StringValue(r.Product), ProductName: optional(r.ProductName), Quantity: types.Int64Value(r.Quantity),
		})
	}
	for _, c := range u.Unreported {
		m.Unreported = append(m.Unreported, unreportedCustomerModel{
			CustomerID: types.StringValue(c.CustomerID), CustomerName: optional(c.CustomerName),
			ContractID: types.StringValue(c.ContractID), Quantity: types.Int64Value(c.Quantity), Vendor: optional(c.Vendor),
		})
	}
	m.HasUnmapped = types.BoolValue(len(m.Customers)+len(m.Products)+len(m.Unassigned) > 0)
	return m, nil
}
