package daemon

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// Defaults applied by Load to settings the file leaves out.
const (
	DefaultSchedule = "every 24h"
	// DefaultTicketSchedule is how often ticket passes run when neither
	// the config file nor the export's ticket routing says.
	DefaultTicketSchedule = "every 5m"
	DefaultListenAddress  = "127.0.0.1:9810"
)

// Usage source types (SourceConfig.Type).
const (
	SourceSophos = "sophos"
	SourceFile   = "file"
)

// Config is the daemon's configuration file. Load reads and validates it;
// secrets given by file or environment variable are resolved into the
// Secret fields, and relative paths are made absolute against the
// directory of the config file.
type Config struct {
	// ExportPath is the mapping export file written by the Terraform
	// provider. Load fills it in from an export_url that names a file.
	ExportPath string `yaml:"export_path"`
	// ExportURL names the export store when it is not a file: an
	// s3://bucket/key?… URL, the http(s):// URL of another psa-syncd
	// (https://USER@host:port for a listener with basic_auth_users), or
	// ExportSelf. Give export_path or export_url, not both.
	ExportURL string `yaml:"export_url"`
	// ExportToken is sent to the psa-syncd of ExportURL: as the basic
	// password of the user the URL names, else as a bearer token (for a
	// proxy that asks for one). Reads take any user's password there: a
	// reader user's, not the API token. Also from export_token_file or
	// PSA_EXPORT_TOKEN, the provider's variable.
	ExportToken     Secret `yaml:"export_token,omitempty"`
	ExportTokenFile string `yaml:"export_token_file,omitempty"`
	// StateDir holds the SQLite state database (statuses, runs, ledger);
	// with PostgreSQL it is optional, and only looked at for a bbolt state
	// file of an earlier version to import.
	StateDir string       `yaml:"state_dir"`
	State    StateConfig  `yaml:"state"`
	PSA      PSAConfig    `yaml:"psa"`
	Source   SourceConfig `yaml:"source"`
	// Schedule is when passes run (default "every 24h"); the export's
	// integration.schedule wins over it.
	Schedule string `yaml:"schedule"`
	// TicketSchedule is when ticket passes run (default "every 5m"); the
	// export's tickets.schedule (psa_ticket_routing) wins over it.
	TicketSchedule string `yaml:"ticket_schedule"`
	// Timezone is the IANA zone of the schedule and of billing months
	// (default UTC); the export's integration.timezone wins over it.
	Timezone string         `yaml:"timezone"`
	Policies usage.Policies `yaml:"policies"`
	Web      WebConfig      `yaml:"web"`

	schedule schedule.Schedule
	location *time.Location
}

// PSAConfig selects the PSA and holds its connection settings. Exactly the
// block of the selected system may be given.
type PSAConfig struct {
	// System is the PSA to write to: autotask, connectwise or kaseya_bms.
	// It must match the mapping export's psa.system.
	System      psa.System         `yaml:"system"`
	Autotask    *AutotaskConfig    `yaml:"autotask,omitempty"`
	ConnectWise *ConnectWiseConfig `yaml:"connectwise,omitempty"`
	KaseyaBMS   *KaseyaBMSConfig   `yaml:"kaseya_bms,omitempty"`
	// MaxConcurrency caps requests in flight per endpoint; 0 means the
	// PSA's own limit (3 for Autotask).
	MaxConcurrency int `yaml:"max_concurrency,omitempty"`
	// MaxRetries is how often idempotent requests are retried; nil means
	// backends.DefaultMaxRetries and 0 disables retries.
	MaxRetries *int `yaml:"max_retries,omitempty"`
}

// AutotaskConfig holds the Autotask connection settings. Every setting
// except the *_file ones may also come from a PSA_AUTOTASK_* environment
// variable; the file wins over a *_file, which wins over the environment.
type AutotaskConfig struct {
	Username            string `yaml:"username,omitempty"`
	Secret              Secret `yaml:"secret,omitempty"`
	SecretFile          string `yaml:"secret_file,omitempty"`
	IntegrationCode     Secret `yaml:"integration_code,omitempty"`
	IntegrationCodeFile string `yaml:"integration_code_file,omitempty"`
	// BaseURL is the zone root, e.g.
	// https://webservices5.autotask.net/ATServicesRest/; it skips zone
	// discovery.
	BaseURL                 string `yaml:"base_url,omitempty"`
	ImpersonationResourceID string `yaml:"impersonation_resource_id,omitempty"`
	// ZoneLookupURL overrides the zoneInformation endpoint (simulators).
	ZoneLookupURL string `yaml:"zone_lookup_url,omitempty"`
}

// ConnectWiseConfig holds the ConnectWise PSA (Manage) connection
// settings. Every setting except private_key_file may also come from a
// PSA_CONNECTWISE_* environment variable (PSA_CONNECTWISE_SITE,
// PSA_CONNECTWISE_COMPANY_ID, PSA_CONNECTWISE_PUBLIC_KEY,
// PSA_CONNECTWISE_PRIVATE_KEY, PSA_CONNECTWISE_CLIENT_ID,
// PSA_CONNECTWISE_BASE_URL, PSA_CONNECTWISE_CODEBASE); the file wins over
// private_key_file, which wins over the environment.
type ConnectWiseConfig struct {
	// Site is the ConnectWise site host, such as api-na.myconnectwise.net,
	// or an http(s) URL without a path (simulators, on-premises installs).
	// Required unless BaseURL is set.
	Site string `yaml:"site,omitempty"`
	// CompanyID is the company id used to log in, such as "msp".
	CompanyID string `yaml:"company_id,omitempty"`
	// PublicKey and PrivateKey are the API member's keys.
	PublicKey      string `yaml:"public_key,omitempty"`
	PrivateKey     Secret `yaml:"private_key,omitempty"`
	PrivateKeyFile string `yaml:"private_key_file,omitempty"`
	// ClientID is the integration's clientId from the ConnectWise
	// developer portal. It names the integration, not a member, and alone
	// logs nobody in, but it is sent on every call, and the provider and
	// the ConnectWise client treat it as a credential: so does psa-syncd
	// (credentials, String).
	ClientID string `yaml:"client_id,omitempty"`
	// BaseURL pins the API root, such as
	// https://api-na.myconnectwise.net/v2025_1/apis/3.0/; it skips codebase
	// discovery.
	BaseURL string `yaml:"base_url,omitempty"`
	// Codebase pins the codebase, such as "v2025_1/"; it skips discovery
	// through /login/companyinfo.
	Codebase string `yaml:"codebase,omitempty"`
	// APIVersion is the version requested in Accept, such as "2024.1"
	// (default connectwise.DefaultAPIVersion): an on-premises server older
	// than the default refuses it.
	APIVersion string `yaml:"api_version,omitempty"`
}

// KaseyaBMSConfig holds the Kaseya BMS connection settings. Every setting
// except password_file may also come from a PSA_KASEYA_BMS_* environment
// variable (PSA_KASEYA_BMS_HOSTNAME, PSA_KASEYA_BMS_USERNAME,
// PSA_KASEYA_BMS_PASSWORD, PSA_KASEYA_BMS_TENANT, PSA_KASEYA_BMS_BASE_URL);
// the file wins over password_file, which wins over the environment.
type KaseyaBMSConfig struct {
	// Hostname is the host as the BMS console shows it, such as
	// bmsemea.kaseya.com: no protocol, no path. Required unless BaseURL is
	// set.
	Hostname string `yaml:"hostname,omitempty"`
	// Username is the API user's name.
	Username     string `yaml:"username,omitempty"`
	Password     Secret `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	// Tenant is the company (tenant) name shown in BMS.
	Tenant string `yaml:"tenant,omitempty"`
	// BaseURL overrides the API root, such as
	// https://api.bmsemea.kaseya.com/ (simulators, unusual installs).
	BaseURL string `yaml:"base_url,omitempty"`
}

// SourceConfig selects the usage source.
type SourceConfig struct {
	// Type is sophos or file.
	Type   string        `yaml:"type"`
	Sophos *SophosConfig `yaml:"sophos,omitempty"`
	File   *FileConfig   `yaml:"file,omitempty"`
}

// SophosConfig holds the Sophos Central Partner API credentials.
// ClientID and ClientSecret may also come from PSA_SOPHOS_CLIENT_ID and
// PSA_SOPHOS_CLIENT_SECRET.
type SophosConfig struct {
	ClientID         string `yaml:"client_id,omitempty"`
	ClientSecret     Secret `yaml:"client_secret,omitempty"`
	ClientSecretFile string `yaml:"client_secret_file,omitempty"`
	// AuthURL and APIURL override the Sophos endpoints (simulators).
	AuthURL string `yaml:"auth_url,omitempty"`
	APIURL  string `yaml:"api_url,omitempty"`
}

// FileConfig configures a usage file source.
type FileConfig struct {
	// Path is the CSV or JSON usage file.
	Path string `yaml:"path"`
	// Format is csv or json; empty means by the file's extension.
	Format string `yaml:"format,omitempty"`
	// Name is the source name used by the mapping export's entries for this
	// data (for example "passwordboss"); empty means "file".
	Name string `yaml:"name,omitempty"`
	// DuplicateRows is sum (default: several rows of one customer and
	// product add up, a row per site, each sum a notice) or refuse (the
	// customer fails: a file of one row per customer and product).
	DuplicateRows string `yaml:"duplicate_rows,omitempty"`
}

// StateConfig selects the state database: SQLite in state_dir (the
// default) or PostgreSQL, which several psa-syncd may share, one of them
// active. Zero values mean the defaults of package state.
type StateConfig struct {
	// Driver is sqlite (default) or postgres.
	Driver string `yaml:"driver,omitempty"`
	// URL is the PostgreSQL connection URL or keyword/value string; also
	// from url_file or PSA_SYNCD_STATE_URL. It is a secret.
	URL     Secret `yaml:"url,omitempty"`
	URLFile string `yaml:"url_file,omitempty"`
	// MaxOpenConns, MaxIdleConns and ConnMaxLifetime tune the PostgreSQL
	// connection pool (defaults 10, 5, 30m).
	MaxOpenConns    int           `yaml:"max_open_conns,omitempty"`
	MaxIdleConns    int           `yaml:"max_idle_conns,omitempty"`
	ConnMaxLifetime time.Duration `yaml:"conn_max_lifetime,omitempty"`
	// ConnectTimeout bounds connecting (default 10s), QueryTimeout every
	// statement (default 30s).
	ConnectTimeout time.Duration `yaml:"connect_timeout,omitempty"`
	QueryTimeout   time.Duration `yaml:"query_timeout,omitempty"`
	// CheckTimeout bounds SQLite's integrity check at start-up, which
	// reads the whole file (default 10m).
	CheckTimeout time.Duration `yaml:"check_timeout,omitempty"`
	// LockInterval is how often a standby tries to become the active
	// instance and the active one checks its lock (default 2s).
	LockInterval time.Duration `yaml:"lock_interval,omitempty"`
	// AdvertiseURL is this instance's API URL as the others can reach it
	// (also from PSA_SYNCD_ADVERTISE_URL); standbys forward sync and
	// resolve requests there while this instance is active.
	AdvertiseURL string `yaml:"advertise_url,omitempty"`
	// AdvertiseHost is this instance's address as the others reach it, a
	// host name or an IP address (also from PSA_SYNCD_ADVERTISE_HOST),
	// instead of AdvertiseURL: psa-syncd builds the URL from it and its
	// listener (Config.AdvertisedURL). An address known only when the
	// process starts, such as a Kubernetes pod's IP, cannot be put into a
	// URL by the manifest: an IPv6 one needs brackets, a TLS listener
	// https.
	AdvertiseHost string `yaml:"advertise_host,omitempty"`
	// AdvertiseCAFile is a PEM file of the CA certificates a standby
	// checks the active instance's certificate against, when the URL it
	// advertises is https, instead of the system's roots: the instances'
	// certificates, made for pod IPs, come from the operator's own CA,
	// and SSL_CERT_FILE would replace the roots the PSA, vendor and S3
	// connections need too. Read at load, and again when it changes
	// (activeTransports).
	AdvertiseCAFile string `yaml:"advertise_ca_file,omitempty"`
	// AdvertiseClientCertFile and AdvertiseClientKeyFile are the PEM
	// certificate and key a standby presents to the active instance, whose
	// listener may require a client certificate (tls_server_config's
	// client_auth_type); both or neither. Read at load, and again when
	// they change.
	AdvertiseClientCertFile string `yaml:"advertise_client_cert_file,omitempty"`
	AdvertiseClientKeyFile  string `yaml:"advertise_client_key_file,omitempty"`
	// HistoryRetention is how long runs, the intents closed as done or
	// failed and the records of closed tickets and refused ticket creates
	// whose alerts are not open are kept (default 400 days); the ledger is
	// kept for ever.
	HistoryRetention time.Duration `yaml:"history_retention,omitempty"`
	// ExportBodiesKept is how many of the newest stored export versions
	// (export_url: self) keep their body (default 50); older ones keep
	// their record in the history.
	ExportBodiesKept int `yaml:"export_bodies_kept,omitempty"`
}

// Defaults of StateConfig.HistoryRetention and ExportBodiesKept, and the
// shortest retention accepted.
const (
	DefaultHistoryRetention = 400 * 24 * time.Hour
	DefaultExportBodiesKept = 50
	MinHistoryRetention     = 24 * time.Hour
)

// Retention returns what the state database's history keeps, defaults
// applied, as of now.
func (s StateConfig) Retention(now time.Time) state.Retention {
	return state.Retention{
		Before:       now.Add(-cmp.Or(s.HistoryRetention, DefaultHistoryRetention)),
		ExportBodies: cmp.Or(s.ExportBodiesKept, DefaultExportBodiesKept),
	}
}

// DefaultLockInterval is StateConfig.LockInterval's default, and
// MinLockInterval the shortest one accepted.
const (
	DefaultLockInterval = 2 * time.Second
	MinLockInterval     = 100 * time.Millisecond
)

// MaxRetriesLimit is the most retries psa.max_retries accepts.
const MaxRetriesLimit = 20

// Database returns the state package's configuration of the database.
func (s StateConfig) Database(stateDir string) state.Config {
	return state.Config{
		Driver: s.Driver, Path: stateDir, URL: string(s.URL),
		MaxOpenConns: s.MaxOpenConns, MaxIdleConns: s.MaxIdleConns, ConnMaxLifetime: s.ConnMaxLifetime,
		ConnectTimeout: s.ConnectTimeout, QueryTimeout: s.QueryTimeout, CheckTimeout: s.CheckTimeout,
	}
}

func (s *StateConfig) validate(stateDir string, abs func(string) string, getenv func(string) string) error {
	switch s.Driver {
	case "":
		s.Driver = state.DriverSQLite
	case state.DriverSQLite, state.DriverPostgres:
	default:
		return fmt.Errorf("state.driver: unknown driver %q (one of sqlite, postgres)", s.Driver)
	}
	if strings.Contains(s.URLFile, "://") || strings.Contains(s.URLFile, "=") {
		// A connection string here would be read as a file of that
		// name, and the error would quote it, password included.
		return errors.New("state.url_file: the value is a connection string, not the path of a file holding one: give it in state.url (or PSA_SYNCD_STATE_URL)")
	}
	if s.Driver == state.DriverSQLite {
		if stateDir == "" {
			return errors.New("state_dir is required")
		}
		if s.URL != "" || s.URLFile != "" {
			return errors.New("state.url: only for the postgres driver (state.driver)")
		}
	} else {
		url, err := resolveSecret(s.URL, s.URLFile, abs, "PSA_SYNCD_STATE_URL", getenv)
		if err != nil {
			return fmt.Errorf("state.url_file: %w", err)
		}
		if url == "" {
			return errors.New("state.url is required for the postgres driver (or url_file, or PSA_SYNCD_STATE_URL)")
		}
		if err := state.CheckPostgresURL(string(url)); err != nil {
			return err
		}
		s.URL = url
	}
	s.URLFile = abs(s.URLFile)
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_open_conns", int64(s.MaxOpenConns)}, {"max_idle_conns", int64(s.MaxIdleConns)},
		{"conn_max_lifetime", int64(s.ConnMaxLifetime)}, {"connect_timeout", int64(s.ConnectTimeout)},
		{"query_timeout", int64(s.QueryTimeout)}, {"check_timeout", int64(s.CheckTimeout)},
		{"lock_interval", int64(s.LockInterval)}, {"history_retention", int64(s.HistoryRetention)},
		{"export_bodies_kept", int64(s.ExportBodiesKept)},
	} {
		if f.v < 0 {
			return fmt.Errorf("state.%s: must not be negative", f.name)
		}
	}
	if s.LockInterval > 0 && s.LockInterval < MinLockInterval {
		return fmt.Errorf("state.lock_interval: must be at least %s, got %s: a standby would ask for the lock in a tight loop", MinLockInterval, s.LockInterval)
	}
	if s.HistoryRetention > 0 && s.HistoryRetention < MinHistoryRetention {
		return fmt.Errorf("state.history_retention: must be at least %s, got %s: runs and closed intents older than that are deleted", MinHistoryRetention, s.HistoryRetention)
	}
	if s.Driver == state.DriverPostgres && s.MaxOpenConns == 1 {
		return errors.New("state.max_open_conns: must be at least 2 with PostgreSQL, got 1: the active instance keeps a connection for its leadership lock, and every other statement would wait for it")
	}
	if s.AdvertiseURL == "" {
		s.AdvertiseURL = getenv("PSA_SYNCD_ADVERTISE_URL")
	}
	if err := checkAdvertiseURL(s.AdvertiseURL); err != nil {
		return fmt.Errorf("state.advertise_url: %w", err)
	}
	if s.AdvertiseHost == "" {
		s.AdvertiseHost = getenv("PSA_SYNCD_ADVERTISE_HOST")
	}
	if s.AdvertiseHost != "" && s.AdvertiseURL != "" {
		return errors.New("state.advertise_url and state.advertise_host (or PSA_SYNCD_ADVERTISE_URL and PSA_SYNCD_ADVERTISE_HOST): give one, not both")
	}
	host, err := checkAdvertiseHost(s.AdvertiseHost)
	if err != nil {
		return fmt.Errorf("state.advertise_host: %w", err)
	}
	s.AdvertiseHost = host
	if (s.AdvertiseClientCertFile == "") != (s.AdvertiseClientKeyFile == "") {
		return errors.New("state.advertise_client_cert_file and state.advertise_client_key_file: give both (the certificate a standby presents to the active instance, and its key), or neither")
	}
	for _, f := range []*string{&s.AdvertiseCAFile, &s.AdvertiseClientCertFile, &s.AdvertiseClientKeyFile} {
		if *f != "" {
			*f = abs(*f)
		}
	}
	return activeTLSOf(*s).check()
}

// checkAdvertiseHost accepts a host name or an IP address (an IPv6 one
// with or without brackets, as Kubernetes' status.podIP gives it) and
// returns it without brackets.
func checkAdvertiseHost(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("%q has a zone: a link-local address is not reachable from another host; advertise another address or a name", s)
		}
		return a.String(), nil
	}
	if !advertiseHostName.MatchString(s) {
		return "", fmt.Errorf("%q is not a host name or an IP address: give the host only, psa-syncd adds the scheme and the listener's port (or give a whole URL in state.advertise_url)", s)
	}
	return s, nil
}

// advertiseHostName matches a DNS name (letters, digits, hyphens and dots).
var advertiseHostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// AdvertisedURL is the URL this instance advertises to the others while it
// is active: state.advertise_url, or one built from state.advertise_host
// with web.listen_address's port, https when tls (the listener serves TLS,
// see -web.config.file), an IPv6 address in brackets; "" when neither is
// set.
func (c *Config) AdvertisedURL(tls bool) string {
	if c.State.AdvertiseHost == "" {
		return c.State.AdvertiseURL
	}
	port, _ := listenPort(c.Web.ListenAddress) // checked by Load (checkAdvertisePort)
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(c.State.AdvertiseHost, strconv.Itoa(port))
}

// listenPort is the port number of the listen address addr.
func listenPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return net.LookupPort("tcp", port)
}

// checkAdvertisePort checks that the listener of c, whose URL
// state.advertise_host stands for, has a fixed port: one the system picks
// (port 0) is known only once it listens, and not to the others.
func (c *Config) checkAdvertisePort() error {
	if c.State.AdvertiseHost == "" {
		return nil
	}
	if port, err := listenPort(c.Web.ListenAddress); err != nil || port == 0 {
		return fmt.Errorf("state.advertise_host: the listen address %q has no fixed port to advertise: give web.listen_address (or -web.listen-address) a port, or a whole URL in state.advertise_url", c.Web.ListenAddress)
	}
	return nil
}

// checkAdvertiseURL accepts an http(s) URL without user information, query
// or fragment: the URL is shown to whoever asks a standby which instance is
// active (its unauthenticated /-/ready included), and forwarded requests
// carry the API token in their own header.
func checkAdvertiseURL(s string) error {
	if err := checkURL(s); err != nil || s == "" {
		return err
	}
	u, err := url.Parse(s)
	switch {
	case unbracketedIPv6(s):
		// A URL put together from an address (http://$(POD_IP):9810)
		// whose IPv6 address cannot be told from the port.
		return fmt.Errorf("%s has an IPv6 address without brackets (http://[fd00::7]:9810): give the address alone in state.advertise_host "+
			"(PSA_SYNCD_ADVERTISE_HOST), and psa-syncd builds the URL", quoteURL(s))
	case err != nil || u.Host == "":
		return fmt.Errorf("%s is not an http(s) URL with a host", quoteURL(s))
	case u.User != nil:
		return fmt.Errorf("%s must not include credentials: every instance reads the active one's URL, and shows it on /-/ready; standbys forward with the API token", quoteURL(s))
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%s must not have a query or a fragment", redact.URL(s))
	}
	return nil
}

// unbracketedIPv6 reports whether the host of the URL s holds more than
// one colon outside brackets: an IPv6 address written without them.
func unbracketedIPv6(s string) bool {
	_, rest, ok := strings.Cut(s, "://")
	host, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = host[i+1:]
	}
	return ok && strings.Count(host, ":") > 1 && !strings.Contains(host, "[")
}

// WebConfig configures the HTTP listener.
type WebConfig struct {
	// ListenAddress is host:port; default "127.0.0.1:9810" (loopback only:
	// listening on other interfaces is a choice, e.g. ":9810").
	ListenAddress string `yaml:"listen_address"`
	// APIToken is the bearer token for mutating endpoints; also from
	// api_token_file or PSA_SYNCD_API_TOKEN.
	APIToken     Secret `yaml:"api_token,omitempty"`
	APITokenFile string `yaml:"api_token_file,omitempty"`
	// TrustedProxies are the reverse proxies in front of the listener (an
	// Ingress controller, nginx, the other instances of a PostgreSQL
	// pair), as CIDRs or single IP addresses. A request whose peer is one
	// of them is counted under the right-most X-Forwarded-For address that
	// is not one of them (see clientAddr); the header of any other peer
	// is never trusted.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"`
	trustedProxies []netip.Prefix
}

// validateTrustedProxies parses web.trusted_proxies; an error names the
// entry that is not a CIDR or an IP address.
func (w *WebConfig) validateTrustedProxies() error {
	w.trustedProxies = nil
	for i, s := range w.TrustedProxies {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil || a.Zone() != "" {
				return fmt.Errorf("web.trusted_proxies[%d]: %q is not a CIDR (10.0.0.0/8, fd00::/8) or an IP address (10.0.0.5)", i, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		w.trustedProxies = append(w.trustedProxies, p.Masked())
	}
	return nil
}

// Secret is a string that never prints: String and YAML marshalling give
// "<secret>" (or "" when empty), so a Config can be logged or dumped.
type Secret string

// String returns "<secret>" for a non-empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// GoString hides the secret from %#v as well.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// MarshalYAML redacts the secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// checkSecretNodes refuses a secret setting that YAML reads as something
// other than the plain string written. A value that starts with "&" is an
// anchor, one that starts with "!" a tag, and YAML takes the rest of the
// line (often nothing) as the value; one that starts with "*" is an alias.
// A secret of that shape, as PSAs generate them, would load cut short or
// empty and show up only as the PSA's 401, or as an API without a token.
// Errors give the line and the key, never the value.
func checkSecretNodes(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !secretKeys[k.Value] {
				continue
			}
			problem := ""
			switch {
			case v.Kind == yaml.AliasNode:
				problem = `a value that starts with "*" is an alias`
			case v.Anchor != "":
				problem = `a value that starts with "&" is an anchor`
			case v.Style&yaml.TaggedStyle != 0 && v.Tag != "!!str":
				problem = `a value that starts with "!" is a tag`
			}
			if problem != "" {
				return fmt.Errorf("line %d: %s: a secret must be a plain string, but in YAML %s%s", v.Line, k.Value, problem, secretHint)
			}
		}
	}
	for _, c := range n.Content {
		if err := checkSecretNodes(c); err != nil {
			return err
		}
	}
	return nil
}

// secretKeys are the YAML keys of the Secret settings.
var secretKeys = func() map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if f.Type == reflect.TypeFor[Secret]() && name != "" && name != "-" {
				keys[name] = true
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[Config]())
	return keys
}()

// secretHint says how to give a secret that YAML would misread.
const secretHint = "; quote the value ('...', doubling any ' inside) or give it in the key's _file setting"

// Load reads the config file at path, applies defaults, resolves secrets
// (the value in the file, then its *_file, then the environment through
// getenv; nil getenv means no environment) and validates everything. Errors
// name the key and are wrapped as `error parsing config file "path": ...`;
// they never contain a secret.
func Load(path string, getenv func(string) string) (*Config, error) {
	c, err := load(path, getenv, loadAll)
	if err != nil {
		return nil, fmt.Errorf("error parsing config file %q: %w", path, err)
	}
	return c, nil
}

// LoadState is Load for a command that only opens the state database
// (backup, ledger): it decodes the whole file as strictly as Load, but
// checks and resolves only state_dir and the state section (whose url is
// the one secret it reads) and makes web.api_token_file absolute, for the
// hints of a locked database. The other secrets are not read, nor the
// other settings checked: those procedures are run with psa-syncd stopped,
// by hand, where the service's secrets may not be readable (a systemd
// credential exists only while the service runs). The Config it returns
// is for the state database only.
func LoadState(path string, getenv func(string) string) (*Config, error) {
	c, err := load(path, getenv, loadState)
	if err != nil {
		return nil, fmt.Errorf("error parsing config file %q: %w", path, err)
	}
	return c, nil
}

// LoadStateExport is LoadState for a command that reads the mapping export
// too (status, for the customers it maps): it also checks and resolves
// export_path or export_url (export_token, the one secret of another
// psa-syncd as the store, read only for that store) and psa.system, which
// the export must name. The PSA's, the source's and the API's secrets are
// not read.
func LoadStateExport(path string, getenv func(string) string) (*Config, error) {
	c, err := load(path, getenv, loadStateExport)
	if err != nil {
		return nil, fmt.Errorf("error parsing config file %q: %w", path, err)
	}
	return c, nil
}

// LoadStatePSA is LoadState for a command that connects to the PSA and
// records in the state database what it read there (rebind, which learns
// the instance): it also checks and resolves the psa section, whose
// secrets it reads. The source's, the export's and the API's secrets are
// not read.
func LoadStatePSA(path string, getenv func(string) string) (*Config, error) {
	c, err := load(path, getenv, loadStatePSA)
	if err != nil {
		return nil, fmt.Errorf("error parsing config file %q: %w", path, err)
	}
	return c, nil
}

// LoadStateMonth is LoadStateExport for a command that records the month
// that has ended in the state database (set-by-hand): it also checks the
// schedules, the timezone and the policies, which say which month that is.
// The PSA's, the source's and the API's secrets are not read.
func LoadStateMonth(path string, getenv func(string) string) (*Config, error) {
	c, err := load(path, getenv, loadStateMonth)
	if err != nil {
		return nil, fmt.Errorf("error parsing config file %q: %w", path, err)
	}
	return c, nil
}

// loadScope is what of the config file load checks and resolves: all of
// it (Load), or the settings of a command run by hand that only opens the
// state database (LoadState), reads the export (LoadStateExport),
// records the month that has ended (LoadStateMonth) or connects to the PSA
// (LoadStatePSA).
type loadScope int

const (
	loadAll loadScope = iota
	loadState
	loadStateExport
	loadStateMonth
	loadStatePSA
)

// loadData is Load of data as the content of the file at path, which is
// not read: the fuzzers call it so that an execution costs no file system
// work (see FuzzLoadEnv).
func loadData(path string, data []byte, getenv func(string) string) (*Config, error) {
	c, err := parse(path, data, getenv, loadAll)
	if err != nil {
		return nil, fmt.Errorf("error parsing config file %q: %w", path, err)
	}
	return c, nil
}

// MaxConfigFile bounds the config file, read at start-up and at every
// reload: hand-written YAML is some KiB, so that -config.file naming
// another file (a log, /dev/zero) fails at once instead of taking all
// memory.
const MaxConfigFile = 16 << 20

func load(path string, getenv func(string) string, scope loadScope) (*Config, error) {
	data, err := sizecap.ReadFile(path, MaxConfigFile, "")
	var tl *sizecap.TooLargeError
	if errors.As(err, &tl) {
		return nil, fmt.Errorf("the file is larger than %s, the most psa-syncd reads of a config file; is it psa-syncd's config file?", sizecap.Format(MaxConfigFile))
	}
	if err != nil {
		return nil, err
	}
	return parse(path, data, getenv, scope)
}

// parse decodes and checks data, the content of the config file at path
// (relative paths in it are taken from path's directory) as far as scope
// says.
func parse(path string, data []byte, getenv func(string) string, scope loadScope) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	c := &Config{
		Schedule:       DefaultSchedule,
		TicketSchedule: DefaultTicketSchedule,
		Policies:       usage.DefaultPolicies,
		Web:            WebConfig{ListenAddress: DefaultListenAddress},
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, withoutValues(err, data)
	}
	if len(doc.Content) == 0 {
		// Not "export_path or export_url is required", the first check
		// of an empty config: the file is the problem (truncated, or
		// not written yet when a reload read it).
		return nil, errors.New("the file holds no settings: it is empty, or only comments")
	}
	if err := checkSecretNodes(&doc); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, withKeyPaths(withoutValues(err, data), &doc)
	}
	// A file of several documents decodes as its first: whatever a
	// second one sets (settings appended after a "---") would be ignored
	// without a word. A "---" or "..." that only ends the file is fine.
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, withoutValues(err, data)
		}
		if len(next.Content) > 0 && next.Content[0].Tag != "!!null" {
			return nil, fmt.Errorf(`line %d: a second YAML document starts here ("---"), and psa-syncd reads only the first: the settings after it would be ignored; remove the "---"`, next.Line)
		}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	if scope != loadAll {
		abs := absIn(dir)
		if err := c.validateState(abs, getenv); err != nil {
			return nil, err
		}
		c.Web.APITokenFile = abs(c.Web.APITokenFile)
		if scope == loadStateExport || scope == loadStateMonth {
			if err := c.validateExport(); err != nil {
				return nil, err
			}
			c.ExportPath = abs(c.ExportPath)
			if err := c.validateExportToken(abs, getenv); err != nil {
				return nil, err
			}
			if err := c.PSA.validateSystem(); err != nil {
				return nil, err
			}
		}
		if scope == loadStateMonth {
			if err := c.validatePeriod(); err != nil {
				return nil, err
			}
		}
		if scope == loadStatePSA {
			if err := c.validatePSA(abs, getenv); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	if err := c.validate(dir, getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// withoutValues returns a YAML decoding error without the values it quotes:
// yaml's type errors show up to 10 characters of the value that does not
// fit ("cannot unmarshal !!str `pw=hunter2` into ..."), and a value in the
// wrong place is often a secret (a DSN or a token one level too high). The
// line and the type it was meant for still say where and what is wrong.
// An alias of an anchor that is not defined is a value that starts with
// "*", a secret as often as not: yaml names the anchor (the value) and no
// line, so the error says which line of data holds it instead.
func withoutValues(err error, data []byte) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := &yaml.TypeError{Errors: make([]string, len(te.Errors))}
		for i, e := range te.Errors {
			out.Errors[i] = typeErrorValue.ReplaceAllString(e, "$1 $2")
		}
		return out
	}
	msg := err.Error()
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		where := ""
		if line := aliasLine(data, m[1]); line > 0 {
			where = fmt.Sprintf("line %d: ", line)
		}
		return fmt.Errorf(`yaml: %sa value that starts with "*" is read as an alias of an anchor, and no such anchor is defined%s`, where, secretHint)
	}
	if strings.Contains(msg, "anchor '") {
		// "anchor 'name' value contains itself": the name may be a
		// secret's beginning too.
		return errors.New(quotedName.ReplaceAllString(msg, "'...'"))
	}
	return err
}

// withKeyPaths names the setting in each of yaml's decoding errors, which
// give a line only, or the key without the keys above it: "line 6: cannot
// unmarshal !!str into int" becomes "line 6: psa.max_concurrency: cannot
// unmarshal !!str into int", "line 9: field pasword not found in type
// daemon.AutotaskConfig" becomes "line 9: psa.autotask.pasword: unknown
// key", and a repeated key is named with the keys above it too. doc is the
// file's node tree; an error whose setting it cannot tell (two settings of
// the type on its line) is left as it is.
func withKeyPaths(err error, doc *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	keys := configKeys(doc, "", reflect.TypeFor[Config](), nil)
	out := &yaml.TypeError{Errors: make([]string, len(te.Errors))}
	for i, e := range te.Errors {
		out.Errors[i] = e
		m := typeErrorParts.FindStringSubmatch(e)
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[1])
		unknown, repeated, unfit, tag, typ := m[2], m[3], m[5], m[6], m[7]
		var paths []string
		for _, k := range keys {
			var match bool
			switch {
			case unknown != "": // the key is on the line
				match = k.key.Line == line && k.key.Value == unknown
			case repeated != "":
				match = k.key.Line == line && k.key.Value == repeated
			default: // the value is on the line
				match = k.value.Line == line && k.value.ShortTag() == tag && k.typ == typ
			}
			if match && !slices.Contains(paths, k.path) {
				paths = append(paths, k.path)
			}
		}
		if len(paths) != 1 {
			continue
		}
		switch {
		case unknown != "":
			out.Errors[i] = fmt.Sprintf("line %d: %s: unknown key", line, paths[0])
		case repeated != "":
			out.Errors[i] = fmt.Sprintf("line %d: %s: given twice (first at line %s)", line, paths[0], m[4])
		default:
			out.Errors[i] = fmt.Sprintf("line %d: %s: %s", line, paths[0], unfit)
			if typ == "time.Duration" {
				out.Errors[i] += " (want a duration such as 30s, 10m or 1h30m)"
			}
		}
	}
	return out
}

// typeErrorParts matches yaml's decoding errors, once without values (see
// withoutValues): the line, then the unknown field's name, the repeated
// key, or the tag and type of a value that does not fit, and the line a
// repeated key was first given.
var typeErrorParts = regexp.MustCompile(`^line (\d+): (?:field (.+) not found in type \S+|mapping key "(.+)" already defined at line (\d+)|(cannot unmarshal (\S+) into (\S+)))$`)

// keyAt is a key of the config file, with the path of keys to it
// ("psa.autotask.secret") and the type of its setting, as yaml names it
// ("int", "daemon.Secret"), or "" for an unknown key.
type keyAt struct {
	path       string
	typ        string
	key, value *yaml.Node
}

// configKeys appends the keys under n to out, in file order; t is the type
// of the setting n is decoded into (nil when unknown).
func configKeys(n *yaml.Node, path string, t reflect.Type, out []keyAt) []keyAt {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			out = configKeys(c, path, t, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			var ft reflect.Type
			if t != nil && t.Kind() == reflect.Struct {
				for f := range t.Fields() {
					if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == k.Value {
						ft = f.Type
						for ft.Kind() == reflect.Pointer {
							ft = ft.Elem()
						}
					}
				}
			}
			typ := ""
			if ft != nil {
				typ = ft.String()
			}
			out = append(out, keyAt{path: p, typ: typ, key: k, value: v})
			out = configKeys(v, p, ft, out)
		}
	}
	return out
}

// typeErrorValue matches the value in a yaml type error:
// "line 6: cannot unmarshal !!str `three` into int".
var typeErrorValue = regexp.MustCompile("(cannot unmarshal \\S+) `.*` (into )")

// unknownAnchor matches yaml's error for an alias without its anchor;
// quotedName what yaml's other anchor errors quote (the anchor's name).
var (
	unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
	quotedName    = regexp.MustCompile(`'[^']*'`)
)

// aliasLine returns the 1-based line of data holding the alias *name, or
// 0 when none does.
func aliasLine(data []byte, name string) int {
	for i, line := range bytes.Split(data, []byte("\n")) {
		if bytes.Contains(line, []byte("*"+name)) {
			return i + 1
		}
	}
	return 0
}

// absIn returns the function that makes a path of the config file in dir
// absolute.
func absIn(dir string) func(string) string {
	return func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
}

// validateState checks state_dir and the state section, the settings
// LoadState reads.
func (c *Config) validateState(abs func(string) string, getenv func(string) string) error {
	if strings.Contains(c.StateDir, "://") {
		// A PostgreSQL URL here would be a directory of that name, with
		// its password in the path that logs show, holding SQLite.
		return fmt.Errorf("state_dir: %s is a URL, not a directory: for PostgreSQL set state.driver: postgres and give the URL in state.url (or url_file)", quoteURL(c.StateDir))
	}
	c.StateDir = abs(c.StateDir)
	return c.State.validate(c.StateDir, abs, getenv)
}

// validatePSA checks the psa section and resolves its secrets.
func (c *Config) validatePSA(abs func(string) string, getenv func(string) string) error {
	if err := c.PSA.validate(abs, getenv); err != nil {
		return err
	}
	// Building the backend does no I/O; it catches whatever the checks
	// above do not, so that a config that loads can be used.
	if _, err := backends.New(c.BackendConfig(nil, nil)); err != nil {
		return fmt.Errorf("psa.%s: %w", c.PSA.System, err)
	}
	return nil
}

// validatePeriod checks the settings that say when passes run and which
// month a pass, or the month that has ended, is: the schedules, the
// timezone and the policies.
func (c *Config) validatePeriod() error {
	// psa/schedule's errors already start with `schedule "<input>"`, which
	// names the key.
	sc, err := schedule.Parse(c.Schedule)
	if err != nil {
		return err
	}
	c.schedule = sc
	if _, err := schedule.Parse(c.TicketSchedule); err != nil {
		return fmt.Errorf("ticket_%w", err)
	}
	loc, err := schedule.LoadLocation(c.Timezone)
	if err != nil {
		return fmt.Errorf("timezone: %s", strings.TrimPrefix(err.Error(), "schedule: "))
	}
	c.location = loc
	return c.Policies.Validate()
}

func (c *Config) validate(dir string, getenv func(string) string) error {
	abs := absIn(dir)
	if err := c.validateExport(); err != nil {
		return err
	}
	c.ExportPath = abs(c.ExportPath)
	if err := c.validateExportToken(abs, getenv); err != nil {
		return err
	}
	if err := c.validateState(abs, getenv); err != nil {
		return err
	}

	if err := c.validatePSA(abs, getenv); err != nil {
		return err
	}
	if err := c.Source.validate(abs, getenv); err != nil {
		return err
	}

	if err := c.validatePeriod(); err != nil {
		return err
	}

	if c.Web.ListenAddress == "" {
		return errors.New("web.listen_address must not be empty")
	}
	// Checked here, not only when run listens: a reload keeps the running
	// listener, so a bad address would otherwise show at the next restart.
	if err := CheckListenAddress(c.Web.ListenAddress); err != nil {
		return fmt.Errorf("web.listen_address: %w", err)
	}
	if err := c.Web.validateTrustedProxies(); err != nil {
		return err
	}
	if err := c.checkAdvertisePort(); err != nil {
		return err
	}
	tok, err := resolveSecret(c.Web.APIToken, c.Web.APITokenFile, abs, "PSA_SYNCD_API_TOKEN", getenv)
	if err != nil {
		return fmt.Errorf("web.api_token_file: %w", err)
	}
	c.Web.APIToken = tok
	c.Web.APITokenFile = abs(c.Web.APITokenFile)
	return c.checkSecretLengths()
}

// examplePlaceholder is the value of every credential in the Kubernetes
// example's Secret (examples/deploy/kubernetes/secret.yaml), refused as a
// secret by checkSecretLengths.
const examplePlaceholder = "CHANGE-ME"

// shortSecret is one secret setting checked by checkSecretLengths: its key,
// where else it may be given, and the value resolved from them.
type shortSecret struct {
	key, elsewhere, value string
}

// checkSecretLengths refuses a secret that is set but shorter than
// redact.MinSecret: psa-syncd keeps secrets out of the PSA's and the
// vendor's errors (logs, the status page, the API, the state database) by
// searching for their values, which it skips for values that short (they
// would blank out ordinary words). No PSA or vendor issues credentials
// that short; the value is a truncated copy or a placeholder. The error
// names the setting, never the value. It refuses the examples'
// placeholder, examplePlaceholder, as well. Called once every secret is
// resolved, so that values read from a *_file setting or the environment
// are checked as well.
func (c *Config) checkSecretLengths() error {
	var ss []shortSecret
	if a := c.PSA.Autotask; a != nil {
		ss = append(ss,
			shortSecret{"psa.autotask.secret", "secret_file or PSA_AUTOTASK_SECRET", string(a.Secret)},
			shortSecret{"psa.autotask.integration_code", "integration_code_file or PSA_AUTOTASK_INTEGRATION_CODE", string(a.IntegrationCode)})
	}
	if cw := c.PSA.ConnectWise; cw != nil {
		// The public key is half of the Basic credential; the client id
		// is refused as the provider refuses it.
		ss = append(ss,
			shortSecret{"psa.connectwise.public_key", "PSA_CONNECTWISE_PUBLIC_KEY", cw.PublicKey},
			shortSecret{"psa.connectwise.private_key", "private_key_file or PSA_CONNECTWISE_PRIVATE_KEY", string(cw.PrivateKey)},
			shortSecret{"psa.connectwise.client_id", "PSA_CONNECTWISE_CLIENT_ID", cw.ClientID})
	}
	if k := c.PSA.KaseyaBMS; k != nil {
		ss = append(ss, shortSecret{"psa.kaseya_bms.password", "password_file or PSA_KASEYA_BMS_PASSWORD", string(k.Password)})
	}
	if so := c.Source.Sophos; so != nil {
		ss = append(ss, shortSecret{"source.sophos.client_secret", "client_secret_file or PSA_SOPHOS_CLIENT_SECRET", string(so.ClientSecret)})
	}
	ss = append(ss,
		shortSecret{"web.api_token", "api_token_file or PSA_SYNCD_API_TOKEN", string(c.Web.APIToken)},
		shortSecret{"export_token", "export_token_file or PSA_EXPORT_TOKEN", string(c.ExportToken)})
	for _, s := range ss {
		// Checked before the length: CHANGE-ME is long enough, and would
		// otherwise start psa-syncd with an API token anyone can read in
		// this repository (kubectl apply of the Kubernetes example's
		// secret.yaml replaces a Secret created from files with it).
		if strings.EqualFold(s.value, examplePlaceholder) {
			return fmt.Errorf("%s (or %s): the value is %s, the placeholder of the examples' Secret "+
				"(examples/deploy/kubernetes/secret.yaml), not a credential: set the real value "+
				"(kubectl apply of secret.yaml replaces a Secret created from files with its placeholders)", s.key, s.elsewhere, examplePlaceholder)
		}
		if redact.TooShort(s.value) {
			return fmt.Errorf("%s (or %s): the value is shorter than %d characters: psa-syncd keeps secrets out of logs, "+
				"errors, the status page and the API by searching for their values, which it cannot do for a value that short, "+
				"so it refuses it rather than risk showing it; no PSA or vendor issues credentials that short: "+
				"check for a truncated copy or a placeholder, and set the full value", s.key, s.elsewhere, redact.MinSecret)
		}
	}
	return nil
}

// validateSystem checks psa.system, the one PSA setting a mapping export
// is checked against.
func (p *PSAConfig) validateSystem() error {
	switch p.System {
	case "":
		return fmt.Errorf("psa.system is required (one of %s)", systemList())
	case psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS:
		return nil
	}
	return fmt.Errorf("psa.system: unknown system %q (one of %s)", p.System, systemList())
}

func (p *PSAConfig) validate(abs func(string) string, getenv func(string) string) error {
	if err := p.validateSystem(); err != nil {
		return err
	}
	// Exactly the block of the chosen system: a leftover block of another
	// system is a mistake, and its credentials would be ignored silently.
	for _, b := range []struct {
		system psa.System
		given  bool
	}{
		{psa.SystemAutotask, p.Autotask != nil},
		{psa.SystemConnectWise, p.ConnectWise != nil},
		{psa.SystemKaseyaBMS, p.KaseyaBMS != nil},
	} {
		if b.given && b.system != p.System {
			return fmt.Errorf("psa.%s: not allowed when psa.system is %s", b.system, p.System)
		}
	}
	if p.MaxConcurrency < 0 {
		return fmt.Errorf("psa.max_concurrency: must not be negative, got %d", p.MaxConcurrency)
	}
	// A pass left to follow the client (no policies.write_concurrency)
	// starts a sender per request the client keeps in flight.
	if p.MaxConcurrency > usage.MaxWriteConcurrency {
		return fmt.Errorf("psa.max_concurrency: must be at most %d, got %d", usage.MaxWriteConcurrency, p.MaxConcurrency)
	}
	if p.MaxRetries != nil && *p.MaxRetries < 0 {
		return fmt.Errorf("psa.max_retries: must not be negative, got %d", *p.MaxRetries)
	}
	// Each retry waits up to the backoff's maximum: past a few dozen, one
	// request would hold its pass for hours.
	if p.MaxRetries != nil && *p.MaxRetries > MaxRetriesLimit {
		return fmt.Errorf("psa.max_retries: must be at most %d, got %d", MaxRetriesLimit, *p.MaxRetries)
	}
	switch p.System {
	case psa.SystemConnectWise:
		if p.ConnectWise == nil {
			p.ConnectWise = &ConnectWiseConfig{}
		}
		return p.ConnectWise.validate(abs, getenv)
	case psa.SystemKaseyaBMS:
		if p.KaseyaBMS == nil {
			p.KaseyaBMS = &KaseyaBMSConfig{}
		}
		return p.KaseyaBMS.validate(abs, getenv)
	default:
		if p.Autotask == nil {
			p.Autotask = &AutotaskConfig{}
		}
		return p.Autotask.validate(abs, getenv)
	}
}

func (a *AutotaskConfig) validate(abs func(string) string, getenv func(string) string) error {
	if a.Username == "" {
		a.Username = getenv("PSA_AUTOTASK_USERNAME")
	}
	if a.Username == "" {
		return errors.New("psa.autotask.username is required (or set PSA_AUTOTASK_USERNAME)")
	}
	var err error
	if a.Secret, err = resolveSecret(a.Secret, a.SecretFile, abs, "PSA_AUTOTASK_SECRET", getenv); err != nil {
		return fmt.Errorf("psa.autotask.secret_file: %w", err)
	}
	a.SecretFile = abs(a.SecretFile)
	if a.Secret == "" {
		return errors.New("psa.autotask.secret is required (or secret_file, or PSA_AUTOTASK_SECRET)")
	}
	if a.IntegrationCode, err = resolveSecret(a.IntegrationCode, a.IntegrationCodeFile, abs, "PSA_AUTOTASK_INTEGRATION_CODE", getenv); err != nil {
		return fmt.Errorf("psa.autotask.integration_code_file: %w", err)
	}
	a.IntegrationCodeFile = abs(a.IntegrationCodeFile)
	if a.IntegrationCode == "" {
		return errors.New("psa.autotask.integration_code is required (or integration_code_file, or PSA_AUTOTASK_INTEGRATION_CODE)")
	}
	if a.BaseURL == "" {
		a.BaseURL = getenv("PSA_AUTOTASK_BASE_URL")
	}
	if err := checkAPIURL(a.BaseURL, "psa.autotask.username, secret and integration_code"); err != nil {
		return fmt.Errorf("psa.autotask.base_url: %w", err)
	}
	if err := checkAPIURL(a.ZoneLookupURL, "psa.autotask.username, secret and integration_code"); err != nil {
		return fmt.Errorf("psa.autotask.zone_lookup_url: %w", err)
	}
	if id := a.ImpersonationResourceID; id != "" {
		if n, err := strconv.ParseInt(id, 10, 64); err != nil || n <= 0 {
			return fmt.Errorf("psa.autotask.impersonation_resource_id: %q is not a positive integer", id)
		}
	}
	return nil
}

func (c *ConnectWiseConfig) validate(abs func(string) string, getenv func(string) string) error {
	for _, f := range []struct {
		v   *string
		env string
	}{
		{&c.Site, "PSA_CONNECTWISE_SITE"},
		{&c.CompanyID, "PSA_CONNECTWISE_COMPANY_ID"},
		{&c.PublicKey, "PSA_CONNECTWISE_PUBLIC_KEY"},
		{&c.ClientID, "PSA_CONNECTWISE_CLIENT_ID"},
		{&c.BaseURL, "PSA_CONNECTWISE_BASE_URL"},
		{&c.Codebase, "PSA_CONNECTWISE_CODEBASE"},
		{&c.APIVersion, "PSA_CONNECTWISE_API_VERSION"},
	} {
		if *f.v == "" {
			*f.v = getenv(f.env)
		}
	}
	if c.Site == "" && c.BaseURL == "" {
		return errors.New("psa.connectwise.site is required (or set PSA_CONNECTWISE_SITE, or give base_url)")
	}
	if err := checkSite(c.Site); err != nil {
		return fmt.Errorf("psa.connectwise.site: %w", err)
	}
	if c.CompanyID == "" {
		return errors.New("psa.connectwise.company_id is required (or set PSA_CONNECTWISE_COMPANY_ID)")
	}
	if c.PublicKey == "" {
		return errors.New("psa.connectwise.public_key is required (or set PSA_CONNECTWISE_PUBLIC_KEY)")
	}
	var err error
	if c.PrivateKey, err = resolveSecret(c.PrivateKey, c.PrivateKeyFile, abs, "PSA_CONNECTWISE_PRIVATE_KEY", getenv); err != nil {
		return fmt.Errorf("psa.connectwise.private_key_file: %w", err)
	}
	c.PrivateKeyFile = abs(c.PrivateKeyFile)
	if c.PrivateKey == "" {
		return errors.New("psa.connectwise.private_key is required (or private_key_file, or PSA_CONNECTWISE_PRIVATE_KEY)")
	}
	if c.ClientID == "" {
		return errors.New("psa.connectwise.client_id is required (or set PSA_CONNECTWISE_CLIENT_ID): " +
			"the clientId of the integration, from the ConnectWise developer portal")
	}
	if err := checkAPIURL(c.BaseURL, "psa.connectwise.company_id, public_key and private_key"); err != nil {
		return fmt.Errorf("psa.connectwise.base_url: %w", err)
	}
	if cb := strings.Trim(c.Codebase, "/"); c.Codebase != "" && (cb == "" || strings.ContainsAny(cb, "?#:\\ ") || strings.Contains(cb, "..")) {
		return fmt.Errorf("psa.connectwise.codebase: %q is not a codebase (such as v2025_1/)", c.Codebase)
	}
	if c.APIVersion != "" {
		if err := connectwise.CheckAPIVersion(c.APIVersion); err != nil {
			return fmt.Errorf("psa.connectwise.api_version: %w", err)
		}
	}
	return nil
}

func (k *KaseyaBMSConfig) validate(abs func(string) string, getenv func(string) string) error {
	for _, f := range []struct {
		v   *string
		env string
	}{
		{&k.Hostname, "PSA_KASEYA_BMS_HOSTNAME"},
		{&k.Username, "PSA_KASEYA_BMS_USERNAME"},
		{&k.Tenant, "PSA_KASEYA_BMS_TENANT"},
		{&k.BaseURL, "PSA_KASEYA_BMS_BASE_URL"},
	} {
		if *f.v == "" {
			*f.v = getenv(f.env)
		}
	}
	if k.Hostname == "" && k.BaseURL == "" {
		return errors.New("psa.kaseya_bms.hostname is required (or set PSA_KASEYA_BMS_HOSTNAME, or give base_url)")
	}
	if k.Hostname != "" {
		if _, err := backends.KaseyaBMSAPIHost(k.Hostname); err != nil {
			return fmt.Errorf("psa.kaseya_bms.hostname: %s", strings.TrimPrefix(err.Error(), "kaseyabms: hostname "))
		}
	}
	if k.Username == "" {
		return errors.New("psa.kaseya_bms.username is required (or set PSA_KASEYA_BMS_USERNAME)")
	}
	var err error
	if k.Password, err = resolveSecret(k.Password, k.PasswordFile, abs, "PSA_KASEYA_BMS_PASSWORD", getenv); err != nil {
		return fmt.Errorf("psa.kaseya_bms.password_file: %w", err)
	}
	k.PasswordFile = abs(k.PasswordFile)
	if k.Password == "" {
		return errors.New("psa.kaseya_bms.password is required (or password_file, or PSA_KASEYA_BMS_PASSWORD)")
	}
	if k.Tenant == "" {
		return errors.New("psa.kaseya_bms.tenant is required (or set PSA_KASEYA_BMS_TENANT): the company name shown in BMS")
	}
	if err := checkAPIURL(k.BaseURL, "psa.kaseya_bms.username, password and tenant"); err != nil {
		return fmt.Errorf("psa.kaseya_bms.base_url: %w", err)
	}
	return nil
}

func systemList() string {
	names := make([]string, len(psa.Systems))
	for i, s := range psa.Systems {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func (s *SourceConfig) validate(abs func(string) string, getenv func(string) string) error {
	switch s.Type {
	case SourceSophos:
		if s.File != nil {
			return errors.New("source.file: not allowed when source.type is sophos")
		}
		if s.Sophos == nil {
			s.Sophos = &SophosConfig{}
		}
		so := s.Sophos
		if so.ClientID == "" {
			so.ClientID = getenv("PSA_SOPHOS_CLIENT_ID")
		}
		if so.ClientID == "" {
			return errors.New("source.sophos.client_id is required (or set PSA_SOPHOS_CLIENT_ID)")
		}
		var err error
		if so.ClientSecret, err = resolveSecret(so.ClientSecret, so.ClientSecretFile, abs, "PSA_SOPHOS_CLIENT_SECRET", getenv); err != nil {
			return fmt.Errorf("source.sophos.client_secret_file: %w", err)
		}
		so.ClientSecretFile = abs(so.ClientSecretFile)
		if so.ClientSecret == "" {
			return errors.New("source.sophos.client_secret is required (or client_secret_file, or PSA_SOPHOS_CLIENT_SECRET)")
		}
		if err := checkAPIURL(so.AuthURL, "source.sophos.client_id and client_secret"); err != nil {
			return fmt.Errorf("source.sophos.auth_url: %w", err)
		}
		if err := checkAPIURL(so.APIURL, "source.sophos.client_id and client_secret"); err != nil {
			return fmt.Errorf("source.sophos.api_url: %w", err)
		}
	case SourceFile:
		if s.Sophos != nil {
			return errors.New("source.sophos: not allowed when source.type is file")
		}
		if s.File == nil || s.File.Path == "" {
			return errors.New("source.file.path is required")
		}
		switch file.Format(s.File.Format) {
		case file.FormatAuto, file.FormatCSV, file.FormatJSON:
		default:
			return fmt.Errorf("source.file.format: unknown format %q (one of csv, json)", s.File.Format)
		}
		if strings.Contains(s.File.Path, "://") {
			return fmt.Errorf("source.file.path: %s is a URL: the file source reads a local file", quoteURL(s.File.Path))
		}
		s.File.Path = abs(s.File.Path)
		if _, err := s.newFile(); err != nil {
			return fmt.Errorf("source.file: %w", err)
		}
	case "":
		return errors.New("source.type is required (one of sophos, file)")
	default:
		return fmt.Errorf("source.type: unknown type %q (one of sophos, file)", s.Type)
	}
	return nil
}

func (s *SourceConfig) newFile() (*file.Source, error) {
	return file.New(file.Config{Path: s.File.Path, Format: file.Format(s.File.Format), Name: s.File.Name,
		DuplicateRows: file.DuplicateRows(s.File.DuplicateRows)})
}

// resolveSecret returns v when set, else the trimmed content of file (as
// configured; abs makes it absolute) when set, else the environment
// variable env. Errors carry the file's path but never its content, nor a
// file setting that looks like the secret itself (SecretLike).
func resolveSecret(v Secret, file string, abs func(string) string, env string, getenv func(string) string) (Secret, error) {
	if v != "" {
		return v, nil
	}
	if file != "" {
		path := abs(file)
		data, err := readSecretFile(path)
		if err != nil && SecretLike(file) {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("the file it names cannot be read: %w (the value is not shown: it has no \"/\" and is long, "+
				"so it may be the secret itself, which goes in the setting without _file)", err)
		}
		if err != nil && strings.HasPrefix(path, "/run/credentials/") && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
			// psa-syncd run by hand on a host where it runs as a
			// systemd service (examples/deploy/systemd).
			return "", fmt.Errorf("%w: a systemd credential, which only its service can read; run by hand, "+
				"ask the running psa-syncd through its API with -web.url (psa-syncd check -web.url checks its config)", err)
		}
		if err != nil {
			return "", err
		}
		s := strings.TrimSpace(string(data))
		if s == "" {
			return "", fmt.Errorf("%s is empty", path)
		}
		return Secret(s), nil
	}
	// Trimmed as a file is: a Kubernetes secret or a value read with
	// $(cat ...) often ends in a newline, which no PSA takes as part of
	// the secret.
	return Secret(strings.TrimSpace(getenv(env))), nil
}

// maxSecretFile bounds what a *_file setting's file is read of: far above
// any credential or database URL, so that a setting naming another file (a
// log, /dev/zero) fails at once rather than read it into memory.
const maxSecretFile = 64 << 10

// readSecretFile reads a *_file setting's file of at most maxSecretFile
// bytes.
func readSecretFile(path string) ([]byte, error) {
	data, err := sizecap.ReadFile(path, maxSecretFile, "")
	var tl *sizecap.TooLargeError
	if errors.As(err, &tl) {
		return nil, fmt.Errorf("%w, more than any secret: is it the file that holds the secret?", err)
	}
	return data, err
}

// ReadSecretFile reads a file that holds a secret (psa-syncd's
// -web.token-file), of at most 64 KiB like a *_file setting's file.
func ReadSecretFile(path string) ([]byte, error) { return readSecretFile(path) }

// SecretLike reports whether file, a *_file setting (or flag) as given,
// looks like a secret given in the wrong setting rather than the name of
// a file: no directory in it, and at least 16 bytes, longer than the names
// of secret files beside the config file (secret, autotask.key) tend to
// be. An error about the file then does not quote it.
func SecretLike(file string) bool {
	return !strings.ContainsAny(file, `/\`) && len(file) >= 16
}

func checkURL(s string) error {
	if s == "" {
		return nil
	}
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return fmt.Errorf("%s is not an http(s) URL", quoteURL(s))
	}
	return nil
}

// checkAPIURL accepts an http(s) URL of a vendor's API without user
// information, which Go would send as a login of its own, nor a query or
// fragment parameter that redact.URL masks as a secret (?client_secret=,
// #access_token=): the token URL is requested as written, and net/http's
// errors, the retries' log lines and a vendor echoing the request quote
// it whole, which no Redactor of the configured secrets sees into. The
// credentials go in the settings that creds names.
func checkAPIURL(s, creds string) error {
	if err := checkURL(s); err != nil || s == "" {
		return err
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return fmt.Errorf("%s must not include credentials; give them in %s", quoteURL(s), creds)
	}
	if redact.URL(s) != s {
		return fmt.Errorf("%s must not carry a secret in its query or fragment; give the credentials in %s", quoteURL(s), creds)
	}
	return nil
}

// CheckListenAddress accepts a host:port that a TCP listener can use; the
// host may be empty (every interface) and the port a service name.
func CheckListenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return fmt.Errorf("%q is not host:port, such as 127.0.0.1:9810 (or :9810 for every interface): %w", addr, err)
	}
	return nil
}

// checkSite accepts a host name, or an http(s) URL without a path.
func checkSite(s string) error {
	if s == "" {
		return nil
	}
	raw := s
	if !strings.Contains(s, "://") {
		raw = "https://" + s
	}
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.User != nil:
		return fmt.Errorf("%s must not include credentials; give them in psa.connectwise.company_id, public_key and private_key", quoteURL(s))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%s is neither a host name nor an http(s) URL", quoteURL(s))
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%s must not have a path; give the codebase in psa.connectwise.codebase or the API root in psa.connectwise.base_url", quoteURL(s))
	}
	return nil
}

// quoteURL quotes a URL setting for a message, with any user information
// before the host (which would be a credential) replaced by "xxxxx",
// whether or not the setting parses as a URL, and the rest of its secrets
// (a query's or a fragment's, user information one slash short of a host)
// masked as redact.URL masks them.
func quoteURL(s string) string {
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		s = scheme + "xxxxx" + rest[i:]
	}
	return strconv.Quote(redact.URL(s))
}

// ParsedSchedule returns the parsed Schedule setting.
func (c *Config) ParsedSchedule() schedule.Schedule { return c.schedule }

// Warnings returns what in c validates but does not do what it seems to,
// one sentence each naming the settings, or nil: the policies' (see
// usage.Policies.Warnings) and, with PostgreSQL, a policies.settle_time
// shorter than the leadership lease's term plus the PSA clients' request
// timeout (backends.DefaultTimeout). After a takeover the new active
// instance holds the lines of the deposed one's open intents for
// settle_time; the deposed instance sends nothing once its lease ran out,
// but in a rare case up to one term after the takeover, and a write sent
// then may take up to the request timeout to reach the PSA, so a shorter
// settle_time can write the same line twice (an Autotask adjustment is a
// delta), or send a ticket, note or reopen twice. It is a warning, not an error: any value has always been
// accepted, a single instance on PostgreSQL has no takeover, and refusing
// would stop every pass of an upgraded psa-syncd at its next start.
// psa-syncd logs them when it loads the config and check shows them.
func (c *Config) Warnings() []string {
	w := c.Policies.Warnings()
	if c.State.Driver != state.DriverPostgres {
		return w
	}
	interval := cmp.Or(c.State.LockInterval, DefaultLockInterval)
	term := state.LeaseTerm(interval)
	if want := term + backends.DefaultTimeout; c.Policies.SettleTime < want {
		w = append(w, fmt.Sprintf("policies.settle_time: %s is shorter than %s, the leadership lease's term with state.lock_interval %s (%s) plus the PSA request timeout (%s): "+
			"with replicas on PostgreSQL a write a deposed active instance sent may still reach the PSA after a standby took over, "+
			"and the new active instance writes the same lines again once settle_time has passed, which can double them on the invoice "+
			"(and sends the same ticket, ticket note or reopen again); "+
			"set policies.settle_time to %s or more (the default is %s), or shorten state.lock_interval",
			c.Policies.SettleTime, want, interval, term, backends.DefaultTimeout, want, usage.DefaultSettleTime))
	}
	return w
}

// Location returns the loaded Timezone setting (UTC when unset).
func (c *Config) Location() *time.Location {
	if c.location == nil {
		return time.UTC
	}
	return c.location
}

// String returns the configuration as YAML with every secret replaced by
// "<secret>", for logs: the Secret settings, ConnectWise's public key
// (half of its Basic credential) and client id, and the passwords and secret query
// values of URL settings (an S3 endpoint's user information, say).
func (c *Config) String() string {
	shown := *c
	shown.ExportURL = redact.URL(c.ExportURL)
	shown.State.AdvertiseURL = redact.URL(c.State.AdvertiseURL)
	if a := c.PSA.Autotask; a != nil {
		a := *a
		a.BaseURL, a.ZoneLookupURL = redact.URL(a.BaseURL), redact.URL(a.ZoneLookupURL)
		shown.PSA.Autotask = &a
	}
	if cw := c.PSA.ConnectWise; cw != nil {
		cw := *cw
		cw.BaseURL, cw.PublicKey, cw.ClientID = redact.URL(cw.BaseURL), Secret(cw.PublicKey).String(), Secret(cw.ClientID).String()
		shown.PSA.ConnectWise = &cw
	}
	if k := c.PSA.KaseyaBMS; k != nil {
		k := *k
		k.BaseURL = redact.URL(k.BaseURL)
		shown.PSA.KaseyaBMS = &k
	}
	if so := c.Source.Sophos; so != nil {
		so := *so
		so.AuthURL, so.APIURL = redact.URL(so.AuthURL), redact.URL(so.APIURL)
		shown.Source.Sophos = &so
	}
	b, err := yaml.Marshal(&shown)
	if err != nil {
		return fmt.Sprintf("<error marshalling config: %s>", err)
	}
	return string(b)
}

// credentials returns the credentials the configuration holds, for
// redacting a text that came from elsewhere: the PSA's and the Sophos
// source's (with ConnectWise's Basic credential whole) and the API token.
func (c *Config) credentials() []string {
	out := []string{string(c.Web.APIToken), string(c.ExportToken)}
	if a := c.PSA.Autotask; a != nil {
		out = append(out, string(a.Secret), string(a.IntegrationCode))
	}
	if cw := c.PSA.ConnectWise; cw != nil {
		out = append(out, string(cw.PrivateKey), cw.PublicKey, cw.CompanyID+"+"+cw.PublicKey+":"+string(cw.PrivateKey), cw.ClientID)
	}
	if k := c.PSA.KaseyaBMS; k != nil {
		out = append(out, string(k.Password))
	}
	if so := c.Source.Sophos; so != nil {
		out = append(out, string(so.ClientSecret))
	}
	return out
}

// BackendConfig returns the psa/backends configuration for the PSA. hc sends
// every request (the daemon passes one with an instrumented transport);
// logger may be nil.
func (c *Config) BackendConfig(hc *http.Client, logger *slog.Logger) backends.Config {
	retries := backends.DefaultMaxRetries
	if c.PSA.MaxRetries != nil {
		retries = *c.PSA.MaxRetries
	}
	cfg := backends.Config{
		System:         c.PSA.System,
		HTTPClient:     hc,
		MaxConcurrency: c.PSA.MaxConcurrency,
		MaxRetries:     retries,
		UserAgent:      "psa-syncd",
		Logger:         logger,
	}
	if a := c.PSA.Autotask; a != nil && c.PSA.System == psa.SystemAutotask {
		cfg.Autotask = &backends.AutotaskConfig{
			Username:                a.Username,
			Secret:                  string(a.Secret),
			IntegrationCode:         string(a.IntegrationCode),
			BaseURL:                 a.BaseURL,
			ImpersonationResourceID: a.ImpersonationResourceID,
			ZoneLookupURL:           a.ZoneLookupURL,
		}
	}
	if cw := c.PSA.ConnectWise; cw != nil && c.PSA.System == psa.SystemConnectWise {
		cfg.ConnectWise = &backends.ConnectWiseConfig{
			Site:       cw.Site,
			CompanyID:  cw.CompanyID,
			PublicKey:  cw.PublicKey,
			PrivateKey: string(cw.PrivateKey),
			ClientID:   cw.ClientID,
			BaseURL:    cw.BaseURL,
			Codebase:   cw.Codebase,
			APIVersion: cw.APIVersion,
		}
	}
	if k := c.PSA.KaseyaBMS; k != nil && c.PSA.System == psa.SystemKaseyaBMS {
		cfg.KaseyaBMS = &backends.KaseyaBMSConfig{
			Hostname: k.Hostname,
			Username: k.Username,
			Password: string(k.Password),
			Tenant:   k.Tenant,
			BaseURL:  k.BaseURL,
		}
	}
	return cfg
}

// NewSource builds the configured usage source. hc sends the source's
// requests (nil means a default client); logger may be nil.
func (c *Config) NewSource(hc *http.Client, logger *slog.Logger) (source.Source, error) {
	switch c.Source.Type {
	case SourceFile:
		return c.Source.newFile()
	case SourceSophos:
		so := c.Source.Sophos
		return sophos.New(sophos.Config{
			ClientID:     so.ClientID,
			ClientSecret: string(so.ClientSecret),
			AuthURL:      so.AuthURL,
			APIURL:       so.APIURL,
			HTTPClient:   hc,
			MaxRetries:   sophos.DefaultMaxRetries,
			UserAgent:    "psa-syncd",
			Logger:       logger,
		})
	default:
		return nil, fmt.Errorf("daemon: unknown source type %q", c.Source.Type)
	}
}
