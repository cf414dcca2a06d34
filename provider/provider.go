package provider

import (
	"context"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/providervalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Environment variables read by Configure when an attribute is not set in
// the provider block. Configuration always wins.
const (
	envExportPath                      = "PSA_EXPORT_PATH"
	envAutotaskUsername                = "PSA_AUTOTASK_USERNAME"
	envAutotaskSecret                  = "PSA_AUTOTASK_SECRET"
	envAutotaskIntegrationCode         = "PSA_AUTOTASK_INTEGRATION_CODE"
	envAutotaskBaseURL                 = "PSA_AUTOTASK_BASE_URL"
	envAutotaskImpersonationResourceID = "PSA_AUTOTASK_IMPERSONATION_RESOURCE_ID"
)

// systemBlocks lists the provider blocks that select a PSA, one per system,
// named after psa.System. Exactly one must be set. Supporting another PSA is
// a schema block, a configure function in Configure and one entry here.
var systemBlocks = []psa.System{
	psa.SystemAutotask,
}

// Ensure psaProvider satisfies the provider interfaces.
var (
	_ provider.Provider                     = (*psaProvider)(nil)
	_ provider.ProviderWithConfigValidators = (*psaProvider)(nil)
)

// psaProvider is the psa provider.
type psaProvider struct {
	version string
}

// psaProviderModel maps the provider schema data.
type psaProviderModel struct {
	ExportPath     types.String `tfsdk:"export_path"`
	MaxConcurrency types.Int64  `tfsdk:"max_concurrency"`
	MaxRetries     types.Int64  `tfsdk:"max_retries"`
	Autotask       types.Object `tfsdk:"autotask"`
}

// autotaskProviderModel maps the autotask block of the provider schema.
type autotaskProviderModel struct {
	Username                types.String `tfsdk:"username"`
	Secret                  types.String `tfsdk:"secret"`
	IntegrationCode         types.String `tfsdk:"integration_code"`
	BaseURL                 types.String `tfsdk:"base_url"`
	ImpersonationResourceID types.String `tfsdk:"impersonation_resource_id"`
}

// New returns a function that builds the provider for the given version.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &psaProvider{version: version}
	}
}

func (p *psaProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "psa"
	resp.Version = p.version
}

func (p *psaProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The psa provider manages billable services in a PSA (professional services automation) " +
			"system and the mapping of vendor products and customers to them.\n\n" +
			"`psa_service` creates and edits services in the PSA itself. `psa_product_mapping`, " +
			"`psa_customer_mapping` and `psa_integration` are written to the **mapping export**, a versioned JSON " +
			"document at `export_path` that the psa-syncd daemon reads to set contract quantities from vendor usage. " +
			"The export never contains credentials.\n\n" +
			"Exactly one PSA block configures the connection. Autotask PSA is supported now; every Autotask " +
			"credential may also come from a `PSA_AUTOTASK_*` environment variable, and a value in the " +
			"configuration wins over the environment.\n\n" +
			"Plans check what they can against the PSA before anything is written: that a mapped contract " +
			"belongs to the mapped company, that a mapped service exists and is active, and that no contract is " +
			"mapped by two customers in one configuration.",
		Attributes: map[string]schema.Attribute{
			"export_path": schema.StringAttribute{
				MarkdownDescription: "Path of the mapping export file that `psa_product_mapping`, `psa_customer_mapping` " +
					"and `psa_integration` write, relative to the working directory. The file and a `.lock` file beside it " +
					"are created on first write. Required when any of those resources is used. " +
					"May also be provided via the `" + envExportPath + "` environment variable.",
				Optional: true,
			},
			"max_concurrency": schema.Int64Attribute{
				MarkdownDescription: "Maximum number of requests in flight per PSA API endpoint. Defaults to the PSA's own " +
					"limit (3 for Autotask) and is capped at it, so several Terraform runs against one tenant can share it.",
				Optional:   true,
				Validators: []validator.Int64{int64validator.AtLeast(1)},
			},
			"max_retries": schema.Int64Attribute{
				MarkdownDescription: "How many times an idempotent request is retried after a rate limit (429), a server error or " +
					"a network error, with backoff that honours `Retry-After`. `0` disables retries. Defaults to `" +
					itoa(backends.DefaultMaxRetries) + "`.",
				Optional:   true,
				Validators: []validator.Int64{int64validator.AtLeast(0)},
			},
		},
		Blocks: map[string]schema.Block{
			string(psa.SystemAutotask): schema.SingleNestedBlock{
				MarkdownDescription: "Connects to Autotask PSA through its REST API with an API-only user. " +
					"Set this block (it may be empty when every value comes from the environment) to use Autotask.",
				Attributes: map[string]schema.Attribute{
					"username": schema.StringAttribute{
						MarkdownDescription: "User name of the Autotask API-only user, e.g. `api@msp.example`. " +
							"May also be provided via the `" + envAutotaskUsername + "` environment variable.",
						Optional: true,
					},
					"secret": schema.StringAttribute{
						MarkdownDescription: "Secret (password) of the API-only user. " +
							"May also be provided via the `" + envAutotaskSecret + "` environment variable.",
						Optional:  true,
						Sensitive: true,
					},
					"integration_code": schema.StringAttribute{
						MarkdownDescription: "API tracking identifier (integration code) of the API user. " +
							"May also be provided via the `" + envAutotaskIntegrationCode + "` environment variable.",
						Optional:  true,
						Sensitive: true,
					},
					"base_url": schema.StringAttribute{
						MarkdownDescription: "Zone root of the tenant's REST API, e.g. `https://webservices5.autotask.net/ATServicesRest/`. " +
							"Skips zone discovery; when unset the zone is looked up from the user name on first use. " +
							"May also be provided via the `" + envAutotaskBaseURL + "` environment variable.",
						Optional:   true,
						Validators: []validator.String{httpURL()},
					},
					"impersonation_resource_id": schema.StringAttribute{
						MarkdownDescription: "Id of an Autotask resource to impersonate, so that objects the provider creates " +
							"are attributed to that resource. " +
							"May also be provided via the `" + envAutotaskImpersonationResourceID + "` environment variable.",
						Optional: true,
					},
				},
			},
		},
	}
}

func (p *psaProvider) ConfigValidators(context.Context) []provider.ConfigValidator {
	blocks := make([]path.Expression, len(systemBlocks))
	for i, s := range systemBlocks {
		blocks[i] = path.MatchRoot(string(s))
	}
	return []provider.ConfigValidator{providervalidator.ExactlyOneOf(blocks...)}
}

func (p *psaProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	tflog.Info(ctx, "Configuring PSA provider")

	var config psaProviderModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}

	// Unknown values come from configuration that depends on resources not
	// yet created. Refuse them one by one, so the user sees every culprit.
	unknownAttributeErrors(&resp.Diagnostics, path.Empty(), "", []unknownCheck{
		{"export_path", config.ExportPath, envExportPath},
		{"max_concurrency", config.MaxConcurrency, ""},
		{"max_retries", config.MaxRetries, ""},
	})
	if config.Autotask.IsUnknown() {
		resp.Diagnostics.AddAttributeError(path.Root("autotask"), "Unknown Autotask Configuration", unknownDetail("the autotask block", "", ""))
	}
	if resp.Diagnostics.HasError() {
		return
	}

	exportPath := stringFromEnv(config.ExportPath, envExportPath)
	maxRetries := backends.DefaultMaxRetries
	if !config.MaxRetries.IsNull() {
		maxRetries = int(config.MaxRetries.ValueInt64())
	}
	cfg := backends.Config{
		MaxConcurrency: int(config.MaxConcurrency.ValueInt64()),
		MaxRetries:     maxRetries,
		UserAgent:      "terraform-provider-psa/" + p.version,
	}

	var secrets []string
	switch {
	case !config.Autotask.IsNull():
		cfg.System = psa.SystemAutotask
		cfg.Autotask, secrets = configureAutotask(ctx, config.Autotask, &resp.Diagnostics)
	default:
		// The ExactlyOneOf validator has already refused this configuration;
		// this keeps Configure safe when it is called without validation.
		resp.Diagnostics.AddError("Missing PSA Configuration", "Set exactly one PSA block in the provider configuration: "+
			strings.Join(systemNames(), ", ")+".")
	}
	if resp.Diagnostics.HasError() {
		return
	}

	ctx = maskSecrets(ctx, secrets)
	cfg.Logger = newBackendLogger(ctx)
	tflog.Debug(ctx, "Creating PSA backend", map[string]any{
		"system":          string(cfg.System),
		"export_path":     exportPath,
		"max_concurrency": cfg.MaxConcurrency,
		"max_retries":     cfg.MaxRetries,
	})

	backend, err := backends.New(cfg)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Create "+systemTitle(cfg.System)+" API Client",
			"The provider could not create a client for "+systemTitle(cfg.System)+" from its configuration. "+
				"Check the values in the provider block.\n\n"+err.Error())
		return
	}

	data := &providerData{
		backend:   backend,
		system:    backend.System(),
		secrets:   secrets,
		contracts: newContractRegistry(),
	}
	if exportPath != "" {
		data.exportPath = exportPath
		data.store = export.NewStore(exportPath)
	}
	resp.DataSourceData = data
	resp.ResourceData = data

	tflog.Info(ctx, "Configured PSA provider", map[string]any{"system": string(data.system)})
}

// configureAutotask reads the autotask block, fills unset values from the
// environment and reports unknown and missing values. It returns the backend
// configuration and the strings to mask in logs.
func configureAutotask(ctx context.Context, block types.Object, diags *diag.Diagnostics) (*backends.AutotaskConfig, []string) {
	var m autotaskProviderModel
	diags.Append(block.As(ctx, &m, basetypes.ObjectAsOptions{})...)
	if diags.HasError() {
		return nil, nil
	}
	base := path.Root("autotask")
	unknownAttributeErrors(diags, base, "Autotask", []unknownCheck{
		{"base_url", m.BaseURL, envAutotaskBaseURL},
		{"impersonation_resource_id", m.ImpersonationResourceID, envAutotaskImpersonationResourceID},
		{"integration_code", m.IntegrationCode, envAutotaskIntegrationCode},
		{"secret", m.Secret, envAutotaskSecret},
		{"username", m.Username, envAutotaskUsername},
	})
	if diags.HasError() {
		return nil, nil
	}

	cfg := &backends.AutotaskConfig{
		Username:                stringFromEnv(m.Username, envAutotaskUsername),
		Secret:                  stringFromEnv(m.Secret, envAutotaskSecret),
		IntegrationCode:         stringFromEnv(m.IntegrationCode, envAutotaskIntegrationCode),
		BaseURL:                 stringFromEnv(m.BaseURL, envAutotaskBaseURL),
		ImpersonationResourceID: stringFromEnv(m.ImpersonationResourceID, envAutotaskImpersonationResourceID),
	}
	for _, req := range []struct {
		name, title, env, value string
	}{
		{"username", "Username", envAutotaskUsername, cfg.Username},
		{"secret", "Secret", envAutotaskSecret, cfg.Secret},
		{"integration_code", "Integration Code", envAutotaskIntegrationCode, cfg.IntegrationCode},
	} {
		if req.value == "" {
			diags.AddAttributeError(base.AtName(req.name), "Missing Autotask "+req.title, missingDetail("autotask", req.name, req.env))
		}
	}
	return cfg, []string{cfg.Secret, cfg.IntegrationCode}
}

func (p *psaProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewServiceResource,
		NewProductMappingResource,
		NewCustomerMappingResource,
		NewIntegrationResource,
	}
}

func (p *psaProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewCompanyDataSource,
		NewContractDataSource,
		NewServiceDataSource,
	}
}

// unknownCheck is a provider attribute that must be known in Configure.
type unknownCheck struct {
	name  string
	value interface{ IsUnknown() bool }
	env   string // environment variable that may provide it instead, if any
}

// unknownAttributeErrors adds one attribute error per unknown value, so that
// the user sees every culprit at once.
func unknownAttributeErrors(diags *diag.Diagnostics, base path.Path, system string, checks []unknownCheck) {
	for _, c := range checks {
		if !c.value.IsUnknown() {
			continue
		}
		p := path.Root(c.name)
		if len(base.Steps()) > 0 {
			p = base.AtName(c.name)
		}
		summary := "Unknown " + strings.TrimSpace(system+" "+titleCase(c.name))
		diags.AddAttributeError(p, summary, unknownDetail(c.name, system, c.env))
	}
}

// stringFromEnv returns the configured value, or the environment variable
// when the attribute is not set.
func stringFromEnv(v types.String, env string) string {
	if !v.IsNull() {
		return v.ValueString()
	}
	return os.Getenv(env)
}

// maskSecrets returns a context whose log lines mask the secret attributes
// and any field value containing one of the secret strings.
func maskSecrets(ctx context.Context, secrets []string) context.Context {
	ctx = tflog.MaskFieldValuesWithFieldKeys(ctx, "secret", "integration_code", "password", "private_key", "authorization")
	var nonEmpty []string
	for _, s := range secrets {
		if s != "" {
			nonEmpty = append(nonEmpty, s)
		}
	}
	if len(nonEmpty) > 0 {
		ctx = tflog.MaskAllFieldValuesStrings(ctx, nonEmpty...)
		ctx = tflog.MaskMessageStrings(ctx, nonEmpty...)
	}
	return ctx
}

func systemNames() []string {
	names := make([]string, len(systemBlocks))
	for i, s := range systemBlocks {
		names[i] = string(s)
	}
	return names
}
