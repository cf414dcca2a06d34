package provider

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

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
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// Environment variables read by Configure when an attribute is not set in
// the provider block. Configuration always wins.
const (
	envExportPath  = "PSA_EXPORT_PATH"
	envExportURL   = "PSA_EXPORT_URL"
	envExportToken = "PSA_EXPORT_TOKEN"
	// psa-syncd's own names for its URL and API token, as its -web.url
	// commands read the token: one name for one value on a runner.
	envPSASyncdURL                     = "PSA_SYNCD_URL"
	envPSASyncdAPIToken                = "PSA_SYNCD_API_TOKEN"
	envAutotaskUsername                = "PSA_AUTOTASK_USERNAME"
	envAutotaskSecret                  = "PSA_AUTOTASK_SECRET"
	envAutotaskIntegrationCode         = "PSA_AUTOTASK_INTEGRATION_CODE"
	envAutotaskBaseURL                 = "PSA_AUTOTASK_BASE_URL"
	envAutotaskImpersonationResourceID = "PSA_AUTOTASK_IMPERSONATION_RESOURCE_ID"

	envConnectWiseSite       = "PSA_CONNECTWISE_SITE"
	envConnectWiseCompanyID  = "PSA_CONNECTWISE_COMPANY_ID"
	envConnectWisePublicKey  = "PSA_CONNECTWISE_PUBLIC_KEY"
	envConnectWisePrivateKey = "PSA_CONNECTWISE_PRIVATE_KEY"
	envConnectWiseClientID   = "PSA_CONNECTWISE_CLIENT_ID"
	envConnectWiseBaseURL    = "PSA_CONNECTWISE_BASE_URL"
	envConnectWiseCodebase   = "PSA_CONNECTWISE_CODEBASE"
	envConnectWiseAPIVersion = "PSA_CONNECTWISE_API_VERSION"

	envKaseyaBMSHostname = "PSA_KASEYA_BMS_HOSTNAME"
	envKaseyaBMSUsername = "PSA_KASEYA_BMS_USERNAME"
	envKaseyaBMSPassword = "PSA_KASEYA_BMS_PASSWORD"
	envKaseyaBMSTenant   = "PSA_KASEYA_BMS_TENANT"
	envKaseyaBMSBaseURL  = "PSA_KASEYA_BMS_BASE_URL"
)

// systemBlocks lists the provider blocks that select a PSA, one per system,
// named after psa.System. Exactly one must be set. Supporting another PSA is
// a schema block, a configure function in Configure and one entry here.
var systemBlocks = []psa.System{
	psa.SystemAutotask,
	psa.SystemConnectWise,
	psa.SystemKaseyaBMS,
}

// Ensure psaProvider satisfies the provider interfaces.
var (
	_ provider.Provider                     = (*psaProvider)(nil)
	_ provider.ProviderWithConfigValidators = (*psaProvider)(nil)
)

// psaProvider is the psa provider.
type psaProvider struct {
	version string
	// access is access(2) for the plan's check of a file store's
	// directory (see checkExportWritable); nil means export.SystemAccess.
	// Tests, which run as root, give one that refuses.
	access func(path string, mode uint32) error
	// configured is what Configure gave the resources as ResourceData, for
	// the fast paths of NewProtocol6; nil until then.
	configured atomic.Pointer[providerData]
}

// psaProviderModel maps the provider schema data.
type psaProviderModel struct {
	ExportPath  types.String `tfsdk:"export_path"`
	ExportURL   types.String `tfsdk:"export_url"`
	ExportToken types.String `tfsdk:"export_token"`
	// PSASyncdURL and PSASyncdAPIToken name the psa-syncd whose read-only
	// API the data sources read (psa_unmapped_usage), whatever the store.
	PSASyncdURL      types.String `tfsdk:"psa_syncd_url"`
	PSASyncdAPIToken types.String `tfsdk:"psa_syncd_api_token"`
	MaxConcurrency   types.Int64  `tfsdk:"max_concurrency"`
	MaxRetries       types.Int64  `tfsdk:"max_retries"`
	// RecheckContracts is whether every plan checks every customer
	// mapping's contract (see customerMappingResource.planChecks).
	RecheckContracts types.Bool `tfsdk:"recheck_contracts"`
	// ExportOwnerTokens is whether every entry written anew holds an
	// owner token (see providerData.exportOwnerTokens).
	ExportOwnerTokens types.Bool   `tfsdk:"export_owner_tokens"`
	Autotask          types.Object `tfsdk:"autotask"`
	ConnectWise       types.Object `tfsdk:"connectwise"`
	KaseyaBMS         types.Object `tfsdk:"kaseya_bms"`
}

// autotaskProviderModel maps the autotask block of the provider schema.
type autotaskProviderModel struct {
	Username                types.String `tfsdk:"username"`
	Secret                  types.String `tfsdk:"secret"`
	IntegrationCode         types.String `tfsdk:"integration_code"`
	BaseURL                 types.String `tfsdk:"base_url"`
	ImpersonationResourceID types.String `tfsdk:"impersonation_resource_id"`
	BudgetReserve           types.Int64  `tfsdk:"budget_reserve"`
}

// connectwiseProviderModel maps the connectwise block of the provider schema.
type connectwiseProviderModel struct {
	Site       types.String `tfsdk:"site"`
	CompanyID  types.String `tfsdk:"company_id"`
	PublicKey  types.String `tfsdk:"public_key"`
	PrivateKey types.String `tfsdk:"private_key"`
	ClientID   types.String `tfsdk:"client_id"`
	BaseURL    types.String `tfsdk:"base_url"`
	Codebase   types.String `tfsdk:"codebase"`
	APIVersion types.String `tfsdk:"api_version"`
}

// kaseyaBMSProviderModel maps the kaseya_bms block of the provider schema.
type kaseyaBMSProviderModel struct {
	Hostname types.String `tfsdk:"hostname"`
	Username types.String `tfsdk:"username"`
	Password types.String `tfsdk:"password"`
	Tenant   types.String `tfsdk:"tenant"`
	BaseURL  types.String `tfsdk:"base_url"`
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
			"`psa_customer_mapping`, `psa_integration` and `psa_ticket_routing` are written to the **mapping export**, a versioned JSON " +
			"document in the store named by `export_url` (a file, an S3-compatible bucket, or psa-syncd itself) that the " +
			"psa-syncd daemon reads to set contract quantities from vendor usage. The export never contains credentials. " +
			"Every write is a compare-and-swap on the version read, so resources applied in parallel and overlapping " +
			"applies never lose each other's changes. The [CI workflow guide](guides/ci-workflow) shows how to apply from " +
			"GitHub Actions or GitLab CI with psa-syncd picking the export up.\n\n" +
			"Exactly one PSA block configures the connection: `autotask` (Autotask PSA), `connectwise` " +
			"(ConnectWise PSA, also called Manage) or `kaseya_bms` (Kaseya BMS). Every credential may also come " +
			"from a `PSA_<SYSTEM>_<ATTRIBUTE>` environment variable (`PSA_AUTOTASK_SECRET`, " +
			"`PSA_CONNECTWISE_PRIVATE_KEY`, `PSA_KASEYA_BMS_PASSWORD`, ...), and a value in the configuration wins " +
			"over the environment. A value from the environment gets the checks a configured one gets, and an invalid " +
			"one fails the plan with an error naming the variable. Secrets are marked sensitive and masked in Terraform's logs and in the PSA's errors; a secret shorter than 4 characters, which no PSA issues and which could not be masked without blanking out ordinary words, fails the plan. The examples below " +
			"show one provider block per PSA.\n\n" +
			"Plans check what they can against the PSA before anything is written: that a mapped contract " +
			"belongs to the mapped company, that a mapped service exists and is active, and that no contract is " +
			"mapped by two customers of one usage source that both sync usage, in one configuration.",
		Attributes: map[string]schema.Attribute{
			"export_url": schema.StringAttribute{
				MarkdownDescription: "Where `psa_product_mapping`, `psa_customer_mapping`, `psa_integration` and " +
					"`psa_ticket_routing` keep the mapping export, and where psa-syncd reads it. A store without an export is only written by an apply whose " +
					"state holds no mappings yet: a wrong URL fails the plan instead of starting a new, empty export, and so does " +
					"one that holds the export of another PSA system or instance, also when the plan is made with `-refresh=false`. " +
					"Conflicts with `export_path`. May also be provided via the `" + envExportURL + "` environment variable. " +
					"One of:\n" +
					"  - a path or `file:///path`: a local file, written atomically beside a `.lock` file (one machine);\n" +
					"  - `s3://bucket/key`: an object in AWS S3 or an S3-compatible store (Cloudflare R2, Ceph, Wasabi, " +
					"Backblaze B2, MinIO, Google Cloud Storage's interoperability API). Credentials come from the standard " +
					"AWS chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` and the shared config files, or a " +
					"web identity token (`AWS_ROLE_ARN` with `AWS_WEB_IDENTITY_TOKEN_FILE`, as CI OIDC sets them), never the URL " +
					"(`s3://KEY:SECRET@bucket/key` is refused). Query " +
					"parameters: `region`, `endpoint` (the store's URL, for anything but AWS), `use_path_style=true` " +
					"(most self-hosted stores), `profile` and `conditional_writes=unchecked` (below). Writes use `If-Match`/`If-None-Match`, which the store must " +
					"support (AWS S3 and R2 do): the first write of an apply to a store other than AWS S3 (an `endpoint`) checks both, by two writes of " +
					"the object beside the export named by the key plus `.conditional-check` (written once, by the first check of the store, and kept), " +
					"one with `If-None-Match: *` and one with an `If-Match` that names no version, which the store must refuse, and fails the apply " +
					"naming the endpoint and the condition when the store takes either instead (the credentials need `s3:PutObject` on that key; " +
					"a plan writes nothing and checks nothing). `conditional_writes=unchecked` skips the check, for a store that ignores them where CI runs " +
					"one apply at a time. An `http://` endpoint (the parameter's, or the AWS configuration's " +
					"`AWS_ENDPOINT_URL_S3`) to a host other than this machine warns on every command: the export and the " +
					"session token of temporary credentials travel in clear text;\n" +
					"  - `https://host:port`: psa-syncd itself (configured with `export_url: self`, which is psa-syncd's " +
					"setting: the provider gives psa-syncd's URL), through its " +
					"`/api/v1/export`; it keeps every version and uses a new one at once. Needs `export_token`. For a listener with " +
					"`basic_auth_users`, name the user in the URL (`https://USER@host:port`, no password): `export_token` is then " +
					"sent as that user's basic password. Over plain `http://` " +
					"to a host other than this machine (not `localhost` or a loopback address) the token is sent in clear text, and " +
					"every command warns.",
				Optional: true,
			},
			"export_token": schema.StringAttribute{
				MarkdownDescription: "psa-syncd's API token (`web.api_token`), sent as a bearer token when `export_url` is a " +
					"psa-syncd (as the basic password of the user `export_url` names, if any). Sent as a bearer token, it is checked at " +
					"plan time by a plan that changes the export: a token psa-syncd would refuse to write with fails the plan. " +
					"May also be provided via the `" + envExportToken + "` environment variable.",
				Optional:  true,
				Sensitive: true,
			},
			"psa_syncd_url": schema.StringAttribute{
				MarkdownDescription: "The URL of psa-syncd's listener (`https://host:port`, a reverse proxy's path prefix " +
					"kept; `https://USER@host:port` for a listener with `basic_auth_users`: `psa_syncd_api_token` is then sent as " +
					"that user's basic password, as psa-syncd's `-web.url` commands send it, and must be set), for the data sources that read what psa-syncd found, such as `psa_unmapped_usage`, through its " +
					"read-only API. Set it when the mapping export is kept in a file or S3; without it they read the psa-syncd " +
					"that is the export store (`export_url` set to psa-syncd's URL), and with it this URL wins. The provider only reads from it: it never writes the " +
					"export there, and does not send `export_token` to it. Redirects are not followed. With `psa_syncd_api_token`, " +
					"plain `http://` to a host other than this machine (not `localhost` or a loopback address) warns: the token " +
					"would be sent in clear text. " +
					"May also be provided via the `" + envPSASyncdURL + "` environment variable.",
				Optional:   true,
				Validators: []validator.String{psaSyncdURL()},
			},
			"psa_syncd_api_token": schema.StringAttribute{
				MarkdownDescription: "psa-syncd's API token (`web.api_token`), sent as a bearer token to `psa_syncd_url` " +
					"only (as the basic password of the user `psa_syncd_url` names, if any), and ignored without it. psa-syncd's " +
					"read-only API needs none; set it when a reverse proxy in front of psa-syncd asks for it, or with a user in " +
					"`psa_syncd_url` for a listener with `basic_auth_users` (whose hash for that user is of the token). Kept out of plan output, errors and logs; a value shorter than 4 characters fails the plan. " +
					"May also be provided via the `" + envPSASyncdAPIToken + "` environment variable, which psa-syncd's " +
					"`-web.url` commands read too.",
				Optional:  true,
				Sensitive: true,
			},
			"export_path": schema.StringAttribute{
				MarkdownDescription: "Path of the mapping export file, relative to the working directory: the same as an " +
					"`export_url` that is a path, kept for existing configurations. Conflicts with `export_url`. " +
					"May also be provided via the `" + envExportPath + "` environment variable.",
				Optional: true,
			},
			"max_concurrency": schema.Int64Attribute{
				MarkdownDescription: "Maximum number of requests in flight per PSA API endpoint. Defaults to the PSA's own " +
					"limit and is capped at it where the PSA has one (3 for Autotask), so several Terraform runs against one " +
					"tenant can share it. ConnectWise documents no limit (default " + itoa(backends.ConnectWiseDefaultMaxConcurrency) +
					"); Kaseya BMS documents none either (default unbounded), and its client keeps to BMS's 1,500 calls per " +
					"hour per endpoint by itself.",
				Optional:   true,
				Validators: []validator.Int64{int64validator.AtLeast(1)},
			},
			"max_retries": schema.Int64Attribute{
				MarkdownDescription: "How many times an idempotent request is retried after a rate limit (429), a server error or " +
					"a network error, with backoff that honours `Retry-After`. `0` disables retries. Defaults to `" +
					itoa(backends.DefaultMaxRetries) + "`. Autotask's refusals for its thread limit (three requests per " +
					"endpoint and integration code, shared with psa-syncd and any other process of the same code) use " +
					"up none of them: such a request waits for a free thread, up to five minutes of backoff, unless " +
					"retries are disabled. Nor do ConnectWise PSA's 429s to a read: the read is sent again for up to five " +
					"minutes of backoff; a write answered 429 uses them up.",
				Optional:   true,
				Validators: []validator.Int64{int64validator.AtLeast(0)},
			},
			"recheck_contracts": schema.BoolAttribute{
				MarkdownDescription: "Whether every plan checks the contract of every `psa_customer_mapping`, not only of " +
					"those whose `company_id`, `contract_id` or `next_contract_id` change (and once after an import). A contract " +
					"that has ended, ends soon, was deactivated or moved to another company since the mapping was applied, or " +
					"whose company was deactivated, is then reported at the next plan, as a warning on the mapping: " +
					"psa-syncd fails that customer until it is fixed, and the plan of other changes goes on. Costs one bulk read " +
					"of the mapped contracts per plan (Autotask: one request per 500 contracts; ConnectWise: one per page of " +
					"agreements; Kaseya BMS: the contract list, a few requests), and on Autotask and ConnectWise one of their " +
					"companies (one request per 500 Autotask companies, per 100 ConnectWise ones), where a plan that changes no " +
					"mapping otherwise reads none. Defaults to `false`: psa-syncd reports the same problems at its next pass, and ending " +
					"contracts ahead of time (`PsaSyncContractEndingSoon`).",
				Optional: true,
			},
			"export_owner_tokens": schema.BoolAttribute{
				MarkdownDescription: "Whether every export entry that a product or customer mapping, `psa_integration` or " +
					"`psa_ticket_routing` writes holds an `owner` token, not only one it takes over from the instance it replaces, " +
					"even while the export holds no token yet (once it holds one, every entry written holds one anyway). " +
					"The destroy of an old instance removes an entry only when it holds that instance's token (or none, from an " +
					"instance that wrote it without one): so with this setting, a `create_before_destroy` replacement whose old " +
					"entry was gone (removed by hand, or the apply planned with `-refresh=false`) and whose apply stopped before " +
					"the destroy keeps the new entry at the next apply, which destroys the old, deposed instance alone. Set it " +
					"once every psa-syncd reading the export, and every configuration writing it, is of a version that reads " +
					"owner tokens (this one): an older one refuses the export naming `product_mappings[N].owner` and keeps the " +
					"export it has. Entries keep the tokens they were written with when it is switched off again. " +
					"Defaults to `false`.",
				Optional: true,
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
							baseURLCredentials + "May also be provided via the `" + envAutotaskBaseURL + "` environment variable.",
						Optional:   true,
						Validators: []validator.String{httpURL(exampleAutotaskBaseURL)},
					},
					"impersonation_resource_id": schema.StringAttribute{
						MarkdownDescription: "Id of an Autotask resource to impersonate, so that objects the provider creates " +
							"are attributed to that resource. " +
							"May also be provided via the `" + envAutotaskImpersonationResourceID + "` environment variable.",
						Optional: true,
					},
					"budget_reserve": schema.Int64Attribute{
						MarkdownDescription: "Requests of Autotask's hourly request budget (10,000 per database, shared by every " +
							"integration: psa-syncd, this provider, any other tool) that an apply leaves for psa-syncd. A plan " +
							"that changes a `psa_service`, or creates or changes a product or customer mapping, reads the " +
							"budget (one request) and fails when the requests its apply would send (one or two per service " +
							"written, and up to " + itoa(autotaskApplyReadTotal()) + " reads, once) do not fit in what is left above " +
							"this reserve; the apply checks again before its first write. Set it to at least psa-syncd's " +
							"`policies.budget_reserve`, where its passes stop writing usage. Defaults to `" +
							itoa(defaultBudgetReserve) + "`, psa-syncd's default.",
						Optional:   true,
						Validators: []validator.Int64{int64validator.Between(0, 10_000)},
					},
				},
			},
			string(psa.SystemConnectWise): schema.SingleNestedBlock{
				MarkdownDescription: "Connects to ConnectWise PSA (Manage) through its REST API with an API member's keys. " +
					"Set this block (it may be empty when every value comes from the environment) to use ConnectWise. " +
					"The codebase (API version path) is discovered through `/login/companyinfo` on first use, and again " +
					"once if the hosted codebase moves; `codebase` or `base_url` pin it instead.",
				Attributes: map[string]schema.Attribute{
					"site": schema.StringAttribute{
						MarkdownDescription: "ConnectWise site host, e.g. `api-na.myconnectwise.net` (`https://` is implied), or " +
							"the URL of an on-premises server. Required unless `base_url` is set. " +
							"May also be provided via the `" + envConnectWiseSite + "` environment variable.",
						Optional:   true,
						Validators: []validator.String{connectWiseSite()},
					},
					"company_id": schema.StringAttribute{
						MarkdownDescription: "Company id used to log in to ConnectWise, e.g. `msp`. " +
							"May also be provided via the `" + envConnectWiseCompanyID + "` environment variable.",
						Optional: true,
					},
					"public_key": schema.StringAttribute{
						MarkdownDescription: "Public key of the API member. It is half of the credential, so it is treated as a secret. " +
							"May also be provided via the `" + envConnectWisePublicKey + "` environment variable.",
						Optional:  true,
						Sensitive: true,
					},
					"private_key": schema.StringAttribute{
						MarkdownDescription: "Private key of the API member. " +
							"May also be provided via the `" + envConnectWisePrivateKey + "` environment variable.",
						Optional:  true,
						Sensitive: true,
					},
					"client_id": schema.StringAttribute{
						MarkdownDescription: "The integration's `clientId` (a GUID) from the ConnectWise developer portal. It " +
							"identifies the integration, not the member; like Autotask's `integration_code` it is sent on " +
							"every call and treated as a credential: sensitive, and kept out of error messages. " +
							"May also be provided via the `" + envConnectWiseClientID + "` environment variable.",
						Optional:  true,
						Sensitive: true,
					},
					"base_url": schema.StringAttribute{
						MarkdownDescription: "API root, e.g. `https://api-na.myconnectwise.net/v2025_1/apis/3.0/`, for on-premises " +
							"installs and tests. Skips codebase discovery; `apis/3.0/` is appended when missing. " +
							baseURLCredentials + "May also be provided via the `" + envConnectWiseBaseURL + "` environment variable.",
						Optional:   true,
						Validators: []validator.String{httpURL(exampleConnectWiseBaseURL)},
					},
					"codebase": schema.StringAttribute{
						MarkdownDescription: "Codebase to use with `site`, e.g. `v2025_1/`, instead of discovering it. Pin it only " +
							"when discovery is blocked: hosted ConnectWise moves companies between codebases. " +
							"May also be provided via the `" + envConnectWiseCodebase + "` environment variable.",
						Optional: true,
					},
					"api_version": schema.StringAttribute{
						MarkdownDescription: "API version requested in the `Accept` header, e.g. `2024.1`. Defaults to `" +
							connectwise.DefaultAPIVersion + "`. An on-premises server older than that refuses it; set " +
							"its own version (its `api-current-version`, which the refusal names). " +
							"May also be provided via the `" + envConnectWiseAPIVersion + "` environment variable.",
						Optional:   true,
						Validators: []validator.String{connectWiseAPIVersion()},
					},
				},
			},
			string(psa.SystemKaseyaBMS): schema.SingleNestedBlock{
				MarkdownDescription: "Connects to Kaseya BMS through its REST API (version 2) with an API user. " +
					"Set this block (it may be empty when every value comes from the environment) to use Kaseya BMS. " +
					"BMS cannot report the units on a contract line; see `psa_customer_mapping` for what that means.",
				Attributes: map[string]schema.Attribute{
					"hostname": schema.StringAttribute{
						MarkdownDescription: "The tenant's host as the BMS console shows it, e.g. `bmsemea.kaseya.com`, without " +
							"`https://` and without a path; the API host (`api.bmsemea.kaseya.com`) is derived from it. The plan " +
							"fails when it has a protocol or a path. Required unless `base_url` is set. " +
							"May also be provided via the `" + envKaseyaBMSHostname + "` environment variable.",
						Optional:   true,
						Validators: []validator.String{bmsHostname()},
					},
					"username": schema.StringAttribute{
						MarkdownDescription: "User name of the BMS API user. " +
							"May also be provided via the `" + envKaseyaBMSUsername + "` environment variable.",
						Optional: true,
					},
					"password": schema.StringAttribute{
						MarkdownDescription: "Password of the BMS API user. " +
							"May also be provided via the `" + envKaseyaBMSPassword + "` environment variable.",
						Optional:  true,
						Sensitive: true,
					},
					"tenant": schema.StringAttribute{
						MarkdownDescription: "Company (tenant) name the user signs in to, as shown in BMS. " +
							"May also be provided via the `" + envKaseyaBMSTenant + "` environment variable.",
						Optional: true,
					},
					"base_url": schema.StringAttribute{
						MarkdownDescription: "API root, e.g. `https://api.bmsemea.kaseya.com/`, for unusual installs and tests. " +
							"Wins over `hostname`. " +
							baseURLCredentials + "May also be provided via the `" + envKaseyaBMSBaseURL + "` environment variable.",
						Optional:   true,
						Validators: []validator.String{httpURL(exampleKaseyaBMSBaseURL)},
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
		{"export_url", config.ExportURL, envExportURL},
		{"export_token", config.ExportToken, envExportToken},
		{"psa_syncd_url", config.PSASyncdURL, envPSASyncdURL},
		{"psa_syncd_api_token", config.PSASyncdAPIToken, envPSASyncdAPIToken},
		{"max_concurrency", config.MaxConcurrency, ""},
		{"max_retries", config.MaxRetries, ""},
		{"recheck_contracts", config.RecheckContracts, ""},
	})
	for _, sys := range systemBlocks {
		if block, _ := config.block(sys); block.IsUnknown() {
			resp.Diagnostics.AddAttributeError(path.Root(string(sys)), "Unknown "+systemTitle(sys)+" Configuration",
				unknownDetail("the "+string(sys)+" block", "", ""))
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}

	exportURL, exportToken := exportSettings(config, &resp.Diagnostics)
	syncdURL, syncdToken := psaSyncdSettings(config, &resp.Diagnostics)
	exportUserToken(&resp.Diagnostics, exportURL, exportToken)
	if resp.Diagnostics.HasError() {
		return
	}
	plainHTTPTokenWarning(&resp.Diagnostics, "export_url", envExportURL, "export_token", exportURL, exportToken)
	plainHTTPTokenWarning(&resp.Diagnostics, "psa_syncd_url", envPSASyncdURL, "psa_syncd_api_token", syncdURL, syncdToken)
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
	budgetReserve := defaultBudgetReserve
	switch {
	case !config.Autotask.IsNull():
		cfg.System = psa.SystemAutotask
		cfg.Autotask, secrets = configureAutotask(ctx, config.Autotask, &resp.Diagnostics)
		budgetReserve = autotaskBudgetReserve(ctx, config.Autotask)
	case !config.ConnectWise.IsNull():
		cfg.System = psa.SystemConnectWise
		cfg.ConnectWise, secrets = configureConnectWise(ctx, config.ConnectWise, &resp.Diagnostics)
	case !config.KaseyaBMS.IsNull():
		cfg.System = psa.SystemKaseyaBMS
		cfg.KaseyaBMS, secrets = configureKaseyaBMS(ctx, config.KaseyaBMS, &resp.Diagnostics)
	default:
		// The ExactlyOneOf validator has already refused this configuration;
		// this keeps Configure safe when it is called without validation.
		resp.Diagnostics.AddError("Missing PSA Configuration", "Set exactly one PSA block in the provider configuration: "+
			strings.Join(systemNames(), ", ")+".")
	}
	if resp.Diagnostics.HasError() {
		return
	}

	if exportToken != "" {
		secrets = append(secrets, exportToken)
	}
	if syncdToken != "" {
		secrets = append(secrets, syncdToken)
	}
	ctx = maskSecrets(ctx, secrets)
	cfg.Logger = newBackendLogger(ctx)
	var sent *requestCounter
	if cfg.System == psa.SystemAutotask {
		sent = &requestCounter{base: http.DefaultTransport}
		cfg.HTTPClient = &http.Client{Timeout: backends.DefaultTimeout, Transport: sent}
	}
	tflog.Debug(ctx, "Creating PSA backend", map[string]any{
		"system":          string(cfg.System),
		"export_url":      export.Redact(exportURL),
		"psa_syncd_url":   export.Redact(syncdURL),
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
		backend:        backend,
		system:         backend.System(),
		secrets:        secrets,
		contracts:      newClaimRegistry(),
		exportKeys:     newClaimRegistry(),
		serviceSources: newClaimRegistry(),
		productIDs:     newClaimRegistry(),

		budgetReserve:     budgetReserve,
		recheckContracts:  config.RecheckContracts.ValueBool(),
		exportOwnerTokens: config.ExportOwnerTokens.ValueBool(),
		access:            p.access,
	}
	data.budget.sent = sent
	if data.access == nil {
		data.access = export.SystemAccess
	}
	if exportURL != "" {
		c, err := exportClient(ctx, exportURL, exportToken)
		if err != nil {
			setting := "export_url (or export_path)"
			if config.ExportURL.IsNull() && config.ExportPath.IsNull() {
				setting = "the " + envExportPath + " environment variable"
				if os.Getenv(envExportURL) != "" {
					setting = "the " + envExportURL + " environment variable"
				}
			}
			resp.Diagnostics.AddAttributeError(path.Root("export_url"), "Invalid Mapping Export Store",
				"The provider cannot use the mapping export store "+strconv.Quote(export.Redact(exportURL))+". "+
					"Check "+setting+" and, for S3, the AWS configuration.\n\n"+err.Error())
			return
		}
		data.exportPath = c.String()
		data.store = c
		if s3, ok := c.Backend().(*export.S3Backend); ok {
			plainHTTPExportWarning(&resp.Diagnostics, envExportURL, exportURL, s3.Endpoint())
		}
	}
	if syncdURL != "" {
		b, err := newPSASyncdReader(syncdURL, syncdToken)
		if err != nil {
			// psaSyncdSettings has checked the URL as NewHTTPBackend does.
			resp.Diagnostics.AddAttributeError(path.Root("psa_syncd_url"), "Invalid psa-syncd URL", err.Error())
			return
		}
		data.psaSyncdAPI = b
	}
	data.reads = providerReads(data.system, backend, data.exportForReads, data.recheckContracts)
	resp.DataSourceData = data
	resp.ResourceData = data
	p.configured.Store(data)

	tflog.Info(ctx, "Configured PSA provider", map[string]any{"system": string(data.system)})
}

// configureAutotask reads the autotask block, fills unset values from the
// environment and reports unknown, missing and invalid values (those from
// the environment get the checks the attributes' validators give
// configured ones). It returns the backend
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
		{"budget_reserve", m.BudgetReserve, ""},
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
	missingAttributeErrors(diags, psa.SystemAutotask, []requiredValue{
		{"username", "Username", envAutotaskUsername, cfg.Username},
		{"secret", "Secret", envAutotaskSecret, cfg.Secret},
		{"integration_code", "Integration Code", envAutotaskIntegrationCode, cfg.IntegrationCode},
	})
	shortSecretErrors(diags, psa.SystemAutotask, []requiredValue{
		{"secret", "Secret", envAutotaskSecret, cfg.Secret},
		{"integration_code", "Integration Code", envAutotaskIntegrationCode, cfg.IntegrationCode},
	})
	envValueErrors(diags, base, []envCheck{
		{"base_url", m.BaseURL, envAutotaskBaseURL, httpURL(exampleAutotaskBaseURL)},
	})
	return cfg, []string{cfg.Secret, cfg.IntegrationCode}
}

// autotaskBudgetReserve returns the autotask block's budget_reserve, or its
// default when unset (configureAutotask refuses an unknown one).
func autotaskBudgetReserve(ctx context.Context, block types.Object) int {
	var m autotaskProviderModel
	if block.As(ctx, &m, basetypes.ObjectAsOptions{}).HasError() || m.BudgetReserve.IsNull() || m.BudgetReserve.IsUnknown() {
		return defaultBudgetReserve
	}
	return int(m.BudgetReserve.ValueInt64())
}

// configureConnectWise reads the connectwise block like configureAutotask.
func configureConnectWise(ctx context.Context, block types.Object, diags *diag.Diagnostics) (*backends.ConnectWiseConfig, []string) {
	var m connectwiseProviderModel
	diags.Append(block.As(ctx, &m, basetypes.ObjectAsOptions{})...)
	if diags.HasError() {
		return nil, nil
	}
	base := path.Root(string(psa.SystemConnectWise))
	unknownAttributeErrors(diags, base, "ConnectWise", []unknownCheck{
		{"api_version", m.APIVersion, envConnectWiseAPIVersion},
		{"base_url", m.BaseURL, envConnectWiseBaseURL},
		{"client_id", m.ClientID, envConnectWiseClientID},
		{"codebase", m.Codebase, envConnectWiseCodebase},
		{"company_id", m.CompanyID, envConnectWiseCompanyID},
		{"private_key", m.PrivateKey, envConnectWisePrivateKey},
		{"public_key", m.PublicKey, envConnectWisePublicKey},
		{"site", m.Site, envConnectWiseSite},
	})
	if diags.HasError() {
		return nil, nil
	}

	cfg := &backends.ConnectWiseConfig{
		Site:       stringFromEnv(m.Site, envConnectWiseSite),
		CompanyID:  stringFromEnv(m.CompanyID, envConnectWiseCompanyID),
		PublicKey:  stringFromEnv(m.PublicKey, envConnectWisePublicKey),
		PrivateKey: stringFromEnv(m.PrivateKey, envConnectWisePrivateKey),
		ClientID:   stringFromEnv(m.ClientID, envConnectWiseClientID),
		BaseURL:    stringFromEnv(m.BaseURL, envConnectWiseBaseURL),
		Codebase:   stringFromEnv(m.Codebase, envConnectWiseCodebase),
		APIVersion: stringFromEnv(m.APIVersion, envConnectWiseAPIVersion),
	}
	required := []requiredValue{
		{"company_id", "Company ID", envConnectWiseCompanyID, cfg.CompanyID},
		{"public_key", "Public Key", envConnectWisePublicKey, cfg.PublicKey},
		{"private_key", "Private Key", envConnectWisePrivateKey, cfg.PrivateKey},
		{"client_id", "Client ID", envConnectWiseClientID, cfg.ClientID},
	}
	if cfg.BaseURL == "" {
		required = append([]requiredValue{{"site", "Site", envConnectWiseSite, cfg.Site}}, required...)
	}
	missingAttributeErrors(diags, psa.SystemConnectWise, required)
	shortSecretErrors(diags, psa.SystemConnectWise, []requiredValue{
		{"public_key", "Public Key", envConnectWisePublicKey, cfg.PublicKey},
		{"private_key", "Private Key", envConnectWisePrivateKey, cfg.PrivateKey},
		{"client_id", "Client ID", envConnectWiseClientID, cfg.ClientID},
	})
	envValueErrors(diags, base, []envCheck{
		{"site", m.Site, envConnectWiseSite, connectWiseSite()},
		{"base_url", m.BaseURL, envConnectWiseBaseURL, httpURL(exampleConnectWiseBaseURL)},
		{"api_version", m.APIVersion, envConnectWiseAPIVersion, connectWiseAPIVersion()},
	})
	return cfg, []string{cfg.PublicKey, cfg.PrivateKey, cfg.ClientID}
}

// configureKaseyaBMS reads the kaseya_bms block like configureAutotask.
func configureKaseyaBMS(ctx context.Context, block types.Object, diags *diag.Diagnostics) (*backends.KaseyaBMSConfig, []string) {
	var m kaseyaBMSProviderModel
	diags.Append(block.As(ctx, &m, basetypes.ObjectAsOptions{})...)
	if diags.HasError() {
		return nil, nil
	}
	base := path.Root(string(psa.SystemKaseyaBMS))
	unknownAttributeErrors(diags, base, "Kaseya BMS", []unknownCheck{
		{"base_url", m.BaseURL, envKaseyaBMSBaseURL},
		{"hostname", m.Hostname, envKaseyaBMSHostname},
		{"password", m.Password, envKaseyaBMSPassword},
		{"tenant", m.Tenant, envKaseyaBMSTenant},
		{"username", m.Username, envKaseyaBMSUsername},
	})
	if diags.HasError() {
		return nil, nil
	}

	cfg := &backends.KaseyaBMSConfig{
		Hostname: stringFromEnv(m.Hostname, envKaseyaBMSHostname),
		Username: stringFromEnv(m.Username, envKaseyaBMSUsername),
		Password: stringFromEnv(m.Password, envKaseyaBMSPassword),
		Tenant:   stringFromEnv(m.Tenant, envKaseyaBMSTenant),
		BaseURL:  stringFromEnv(m.BaseURL, envKaseyaBMSBaseURL),
	}
	required := []requiredValue{
		{"username", "Username", envKaseyaBMSUsername, cfg.Username},
		{"password", "Password", envKaseyaBMSPassword, cfg.Password},
		{"tenant", "Tenant", envKaseyaBMSTenant, cfg.Tenant},
	}
	if cfg.BaseURL == "" {
		required = append([]requiredValue{{"hostname", "Hostname", envKaseyaBMSHostname, cfg.Hostname}}, required...)
	}
	missingAttributeErrors(diags, psa.SystemKaseyaBMS, required)
	shortSecretErrors(diags, psa.SystemKaseyaBMS, []requiredValue{{"password", "Password", envKaseyaBMSPassword, cfg.Password}})
	envValueErrors(diags, base, []envCheck{
		{"hostname", m.Hostname, envKaseyaBMSHostname, bmsHostname()},
		{"base_url", m.BaseURL, envKaseyaBMSBaseURL, httpURL(exampleKaseyaBMSBaseURL)},
	})
	return cfg, []string{cfg.Password}
}

// requiredValue is a provider attribute that must have a value, from the
// configuration or the environment, once both have been read.
type requiredValue struct {
	name, title, env, value string
}

// missingAttributeErrors adds one attribute error per empty required value.
func missingAttributeErrors(diags *diag.Diagnostics, system psa.System, values []requiredValue) {
	for _, v := range values {
		if v.value == "" {
			diags.AddAttributeError(path.Root(string(system)).AtName(v.name), "Missing "+systemTitle(system)+" "+v.title,
				missingDetail(string(system), v.name, v.env))
		}
	}
}

// shortSecretErrors adds one attribute error per credential that is set but
// shorter than redact.MinSecret. The clients keep credentials out of the
// PSA's answers, errors and logs by searching for their values, which they
// skip for values that short (they would blank out ordinary words), so a
// PSA error quoting one would show it in the plan's output. No PSA issues
// credentials that short: the value is a truncated copy or a placeholder.
func shortSecretErrors(diags *diag.Diagnostics, system psa.System, values []requiredValue) {
	for _, v := range values {
		if redact.TooShort(v.value) {
			diags.AddAttributeError(path.Root(string(system)).AtName(v.name), systemTitle(system)+" "+v.title+" Too Short",
				shortSecretDetail(systemTitle(system)+" API", v.name, v.env))
		}
	}
}

// block returns the provider block that selects sys.
func (m psaProviderModel) block(sys psa.System) (types.Object, bool) {
	switch sys {
	case psa.SystemAutotask:
		return m.Autotask, true
	case psa.SystemConnectWise:
		return m.ConnectWise, true
	case psa.SystemKaseyaBMS:
		return m.KaseyaBMS, true
	}
	return types.ObjectNull(nil), false
}

func (p *psaProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewServiceResource,
		NewProductMappingResource,
		NewCustomerMappingResource,
		NewIntegrationResource,
		NewTicketRoutingResource,
	}
}

func (p *psaProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewCompanyDataSource,
		NewContractDataSource,
		NewServiceDataSource,
		NewTicketLookupDataSource,
		NewUnmappedUsageDataSource,
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

// baseURLCredentials is what the base_url descriptions say of credentials
// in the URL, which httpURL refuses.
const baseURLCredentials = "A user name or password in it, or a query or fragment parameter named like a secret " +
	"(`access_token`, `secret`, `password`, ...), fails the plan: give credentials in their attributes. "

// Examples of base_url that the URL check quotes.
const (
	exampleAutotaskBaseURL    = "https://webservices5.autotask.net/ATServicesRest/"
	exampleConnectWiseBaseURL = "https://api-na.myconnectwise.net/v2025_1/apis/3.0/"
	exampleKaseyaBMSBaseURL   = "https://api.bmsemea.kaseya.com/"
)

// envCheck is an attribute with a validator whose value may come from the
// environment variable env instead: the configured value, and the check
// its validator makes.
type envCheck struct {
	name  string
	value types.String
	env   string
	check stringCheck
}

// envValueErrors checks the values that come from the environment (the
// attribute is not set) as the attributes' validators check configured
// values, so that a bad URL in PSA_CONNECTWISE_BASE_URL fails as early and
// as clearly as one in the provider block, naming the variable.
func envValueErrors(diags *diag.Diagnostics, base path.Path, checks []envCheck) {
	for _, c := range checks {
		v := os.Getenv(c.env)
		if !c.value.IsNull() || v == "" {
			continue
		}
		if err := c.check.check(v); err != nil {
			diags.AddAttributeError(base.AtName(c.name), c.check.summary,
				"The "+c.env+" environment variable, which sets "+c.name+" when the provider block does not, holds an invalid value. "+
					c.check.detail+"\n\n"+shownError(c.check.check, v, err))
		}
	}
}

// shownError is what a diagnostic says of err, the error of check for v,
// without a secret that v may hold: the check's error for v with its URL
// password masked, or none of v when v has user information but is no URL
// that can be masked.
func shownError(check func(string) error, v string, err error) string {
	if !strings.Contains(v, "@") {
		return err.Error()
	}
	if u, perr := url.Parse(v); perr == nil && u.User != nil {
		if err := check(u.Redacted()); err != nil {
			return err.Error()
		}
	}
	return "The value is not shown: it may hold credentials."
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
	ctx = tflog.MaskFieldValuesWithFieldKeys(ctx, "secret", "integration_code", "password", "public_key", "private_key", "client_id", "authorization")
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
