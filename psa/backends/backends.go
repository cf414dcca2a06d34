package backends

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
)

// DefaultMaxRetries is the number of retries of idempotent requests callers
// pass when the user did not choose one.
const DefaultMaxRetries = 4

// DefaultTimeout bounds each request when Config.HTTPClient is nil: a
// write sent may still reach the PSA up to this long after it was sent.
const DefaultTimeout = 60 * time.Second

// Config selects and configures a PSA backend.
type Config struct {
	System   psa.System
	Autotask *AutotaskConfig // set when System == psa.SystemAutotask
	// KaseyaBMS is set when System == psa.SystemKaseyaBMS.
	KaseyaBMS *KaseyaBMSConfig
	// ConnectWise is set when System == psa.SystemConnectWise.
	ConnectWise *ConnectWiseConfig

	// HTTPClient sends every request; nil means a client with a 60s timeout.
	// The daemon passes one whose Transport is instrumented with Prometheus
	// metrics.
	HTTPClient *http.Client
	// MaxConcurrency is the maximum number of requests in flight per
	// endpoint; 0 means the system's limit (3 for Autotask), and larger
	// values are capped at it.
	MaxConcurrency int
	// MaxRetries is how often idempotent requests are retried; 0 disables
	// retries. Callers pass DefaultMaxRetries when the user said nothing.
	MaxRetries int
	// UserAgent is sent with every request; "" means "psa-sync".
	UserAgent string
	// Logger receives retry and discovery messages; nil discards them.
	Logger *slog.Logger
	// RateLimited, when set, is called with every answer the client reads
	// as a refusal for the PSA's rate limit, whatever its HTTP status
	// (Autotask's thread threshold may come as a 500, Kaseya BMS's limit
	// inside a 200): the daemon counts them in psa_sync_rate_limited_total.
	// It may be called from several requests at once.
	RateLimited func(*psa.RateLimitError)
}

// AutotaskConfig holds the Autotask connection settings.
type AutotaskConfig struct {
	// Username is the API-only user's name (an email address). Required.
	Username string
	// Secret is the API user's secret. Required.
	Secret string
	// IntegrationCode is the API tracking identifier. Required.
	IntegrationCode string
	// BaseURL is the zone root, such as
	// https://webservices5.autotask.net/ATServicesRest/; it skips zone
	// discovery.
	BaseURL string
	// ImpersonationResourceID optionally names the resource to act as.
	ImpersonationResourceID string
	// ZoneLookupURL optionally overrides the zoneInformation endpoint
	// (tests and simulators).
	ZoneLookupURL string
}

// String describes the configuration without its secrets.
func (c *AutotaskConfig) String() string {
	return fmt.Sprintf("autotask user %q (base URL %q)", c.Username, c.BaseURL)
}

// GoString describes the configuration without its secrets.
func (c *AutotaskConfig) GoString() string { return c.String() }

// KaseyaBMSConfig holds the Kaseya BMS connection settings.
type KaseyaBMSConfig struct {
	// Hostname is the tenant's host as the BMS console shows it, such as
	// bmsemea.kaseya.com: no protocol, no path. The API host is derived
	// from it (api.bmsemea.kaseya.com). Required unless BaseURL is set.
	Hostname string
	// Username is the API user's name. Required.
	Username string
	// Password is the API user's password. Required.
	Password string
	// Tenant is the company (tenant) name shown in BMS. Required.
	Tenant string
	// BaseURL optionally overrides the API root, such as
	// https://api.bmsemea.kaseya.com/ (simulators, unusual installs).
	BaseURL string
	// Calls, when set, counts the calls per endpoint against BMS's hourly
	// limit in a store that outlives the client (psa-syncd's state
	// database), so that the limit holds across passes and processes. Nil
	// counts in memory, for this client only.
	Calls kaseyabms.CallStore
}

// String describes the configuration without its secrets.
func (c *KaseyaBMSConfig) String() string {
	return fmt.Sprintf("kaseya bms user %q, tenant %q (hostname %q, base URL %q)", c.Username, c.Tenant, c.Hostname, c.BaseURL)
}

// GoString describes the configuration without its secrets.
func (c *KaseyaBMSConfig) GoString() string { return c.String() }

// constructors maps each system to the function that builds its backend.
// It is the one place that knows every system; there is no init-time
// registration.
var constructors = map[psa.System]func(Config) (psa.Backend, error){
	psa.SystemAutotask:    newAutotask,
	psa.SystemConnectWise: newConnectWise,
	psa.SystemKaseyaBMS:   newKaseyaBMS,
}

// ErrUnknownSystem is returned for a System that psa-sync does not know.
var ErrUnknownSystem = errors.New("backends: unknown PSA system")

// New builds a backend. It does no network I/O (zone discovery is lazy, on
// first use). Missing credentials are reported by attribute name, never with
// their values.
func New(cfg Config) (psa.Backend, error) {
	newBackend, ok := constructors[cfg.System]
	if !ok {
		known := make([]string, 0, len(psa.Systems))
		for _, s := range psa.Systems {
			known = append(known, string(s))
		}
		return nil, fmt.Errorf("%w %q (want one of %s)", ErrUnknownSystem, cfg.System, strings.Join(known, ", "))
	}
	if cfg.MaxConcurrency < 0 {
		return nil, fmt.Errorf("backends: max concurrency must not be negative, got %d", cfg.MaxConcurrency)
	}
	if cfg.MaxRetries < 0 {
		return nil, fmt.Errorf("backends: max retries must not be negative, got %d", cfg.MaxRetries)
	}
	return newBackend(cfg)
}

// ConnectWiseConfig holds the ConnectWise PSA (Manage) connection settings.
type ConnectWiseConfig struct {
	// Site is the ConnectWise site host, such as api-na.myconnectwise.net
	// (https implied), or a URL with a scheme for simulators and
	// on-premises installs. Required unless BaseURL is set.
	Site string
	// CompanyID is the login company id, such as "training". Required.
	CompanyID string
	// PublicKey and PrivateKey are the API member's keys. Required.
	PublicKey  string
	PrivateKey string
	// ClientID is the integration's clientId from the ConnectWise developer
	// portal. Required.
	ClientID string
	// BaseURL optionally pins the API root, such as
	// https://api-na.myconnectwise.net/v2025_1/apis/3.0/; it skips codebase
	// discovery.
	BaseURL string
	// Codebase optionally pins the codebase, such as "v2025_1/"; it skips
	// discovery through /login/companyinfo.
	Codebase string
	// APIVersion optionally overrides the version requested in Accept
	// (default connectwise.DefaultAPIVersion).
	APIVersion string
}

// String describes the configuration without its secrets.
func (c *ConnectWiseConfig) String() string {
	return fmt.Sprintf("connectwise company %q, public key %q (site %q, base URL %q, codebase %q)", c.CompanyID, c.PublicKey, c.Site, c.BaseURL, c.Codebase)
}

// GoString describes the configuration without its secrets.
func (c *ConnectWiseConfig) GoString() string { return c.String() }

// newConnectWise builds a ConnectWise backend. ConnectWise documents no
// concurrency limit; MaxConcurrency 0 means connectwise.DefaultMaxConcurrency.
func newConnectWise(cfg Config) (psa.Backend, error) {
	cc := cfg.ConnectWise
	if cc == nil {
		return nil, errors.New("backends: connectwise configuration is missing")
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"company_id", cc.CompanyID},
		{"public_key", cc.PublicKey},
		{"private_key", cc.PrivateKey},
		{"client_id", cc.ClientID},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if strings.TrimSpace(cc.Site) == "" && strings.TrimSpace(cc.BaseURL) == "" {
		missing = append([]string{"site"}, missing...)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("backends: connectwise: missing required attribute %s", strings.Join(missing, ", "))
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	conc := cfg.MaxConcurrency
	if conc == 0 {
		conc = connectwise.DefaultMaxConcurrency
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []connectwise.Option{
		connectwise.WithCompanyID(cc.CompanyID),
		connectwise.WithKeys(cc.PublicKey, cc.PrivateKey),
		connectwise.WithClientID(cc.ClientID),
		connectwise.WithHTTPClient(hc),
		connectwise.WithMaxConcurrency(conc),
		connectwise.WithMaxRetries(cfg.MaxRetries),
		connectwise.WithUserAgent(cfg.UserAgent),
		connectwise.WithLogger(logger.With("system", string(psa.SystemConnectWise))),
		connectwise.WithRateLimitHook(cfg.RateLimited),
	}
	if strings.TrimSpace(cc.Site) != "" {
		opts = append(opts, connectwise.WithSite(cc.Site))
	}
	if cc.BaseURL != "" {
		opts = append(opts, connectwise.WithBaseURL(cc.BaseURL))
	}
	if cc.Codebase != "" {
		opts = append(opts, connectwise.WithCodebase(cc.Codebase))
	}
	if cc.APIVersion != "" {
		opts = append(opts, connectwise.WithAPIVersion(cc.APIVersion))
	}
	c, err := connectwise.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	return connectwise.NewBackend(c), nil
}

// newKaseyaBMS builds a Kaseya BMS backend. BMS documents no concurrency
// limit, so MaxConcurrency 0 means no bound; the client keeps to the
// documented 1,500 calls per hour per endpoint by itself.
func newKaseyaBMS(cfg Config) (psa.Backend, error) {
	kc := cfg.KaseyaBMS
	if kc == nil {
		return nil, errors.New("backends: kaseya_bms configuration is missing")
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"username", kc.Username},
		{"password", kc.Password},
		{"tenant", kc.Tenant},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if strings.TrimSpace(kc.Hostname) == "" && strings.TrimSpace(kc.BaseURL) == "" {
		missing = append(missing, "hostname")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("backends: kaseya_bms: missing required attribute %s", strings.Join(missing, ", "))
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []kaseyabms.Option{
		kaseyabms.WithCredentials(kc.Username, kc.Password, kc.Tenant),
		kaseyabms.WithHTTPClient(hc),
		kaseyabms.WithMaxConcurrency(cfg.MaxConcurrency),
		kaseyabms.WithMaxRetries(cfg.MaxRetries),
		kaseyabms.WithUserAgent(cfg.UserAgent),
		kaseyabms.WithLogger(logger.With("system", string(psa.SystemKaseyaBMS))),
		kaseyabms.WithRateLimitHook(cfg.RateLimited),
	}
	if kc.Hostname != "" {
		opts = append(opts, kaseyabms.WithHostname(kc.Hostname))
	}
	if kc.BaseURL != "" {
		opts = append(opts, kaseyabms.WithBaseURL(kc.BaseURL))
	}
	if kc.Calls != nil {
		opts = append(opts, kaseyabms.WithCallStore(kc.Calls))
	}
	c, err := kaseyabms.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	return kaseyabms.NewBackend(c), nil
}

func newAutotask(cfg Config) (psa.Backend, error) {
	ac := cfg.Autotask
	if ac == nil {
		return nil, errors.New("backends: autotask configuration is missing")
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"username", ac.Username},
		{"secret", ac.Secret},
		{"integration_code", ac.IntegrationCode},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("backends: autotask: missing required attribute %s", strings.Join(missing, ", "))
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	conc := cfg.MaxConcurrency
	if conc == 0 {
		conc = autotask.MaxConcurrency
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []autotask.Option{
		autotask.WithCredentials(ac.Username, ac.Secret, ac.IntegrationCode),
		autotask.WithHTTPClient(hc),
		autotask.WithMaxConcurrency(conc),
		autotask.WithMaxRetries(cfg.MaxRetries),
		autotask.WithUserAgent(cfg.UserAgent),
		autotask.WithLogger(logger.With("system", string(psa.SystemAutotask))),
		autotask.WithRateLimitHook(cfg.RateLimited),
	}
	if ac.BaseURL != "" {
		opts = append(opts, autotask.WithBaseURL(ac.BaseURL))
	}
	if ac.ZoneLookupURL != "" {
		opts = append(opts, autotask.WithZoneLookupURL(ac.ZoneLookupURL))
	}
	if ac.ImpersonationResourceID != "" {
		id, err := strconv.ParseInt(strings.TrimSpace(ac.ImpersonationResourceID), 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("backends: autotask: impersonation_resource_id %q is not a positive integer", ac.ImpersonationResourceID)
		}
		opts = append(opts, autotask.WithImpersonation(id))
	}
	c, err := autotask.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	return autotask.NewBackend(c), nil
}

// ConnectWiseDefaultMaxConcurrency is how many requests per endpoint a
// ConnectWise backend keeps in flight when Config.MaxConcurrency is 0.
const ConnectWiseDefaultMaxConcurrency = connectwise.DefaultMaxConcurrency

// ConnectWiseMaxServiceName is the longest service name ConnectWise accepts
// (a catalog item's description).
const ConnectWiseMaxServiceName = connectwise.MaxDescription

// ConnectWiseMaxCustomerDescription is the longest customer description a
// ConnectWise catalog item holds.
const ConnectWiseMaxCustomerDescription = connectwise.MaxCustomerDescription

// ConnectWiseIdentifier returns the catalog identifier ConnectWise's
// backend derives from a service name when none is given, or "" when the
// name has nothing to derive one from.
func ConnectWiseIdentifier(name string) string { return connectwise.Slug(name) }

// KaseyaBMSAPIHost checks a Kaseya BMS hostname as a user types it in the
// vendor's console (no protocol, no path) and returns the API host it maps
// to, such as api.bmsemea.kaseya.com for bmsemea.kaseya.com. Callers that
// validate configuration use it so that their messages match the client's.
func KaseyaBMSAPIHost(hostname string) (string, error) { return kaseyabms.APIHost(hostname) }
