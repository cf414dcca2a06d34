package daemon

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
)

// env returns a getenv that answers from m.
func cfgEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad_good(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/good.yml", cfgEnv(map[string]string{
		"PSA_AUTOTASK_INTEGRATION_CODE": "ENVCODE",
		"PSA_AUTOTASK_SECRET":           "env-secret-loses-to-file",
		"PSA_SYNCD_API_TOKEN":           "env-token-loses-to-file",
	}))
	if err != nil {
		t.Fatalf("Load returned error: %v", err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	want := &Config{
		ExportPath: filepath.Join(dir, "psa-mappings.json"),
		StateDir:   filepath.Join(dir, "state"),
		State:      StateConfig{Driver: "sqlite"},
		PSA: PSAConfig{
			System: psa.SystemAutotask,
			Autotask: &AutotaskConfig{
				Username:                "api@msp.example",
				Secret:                  "file-secret",
				SecretFile:              filepath.Join(dir, "secrets/autotask-secret"),
				IntegrationCode:         "ENVCODE",
				BaseURL:                 "https://webservices5.autotask.net/ATServicesRest/",
				ImpersonationResourceID: "29682885",
			},
			MaxConcurrency: 2,
			MaxRetries:     &zero,
		},
		Source:         SourceConfig{Type: "file", File: &FileConfig{Path: filepath.Join(dir, "usage.csv"), Name: "passwordboss"}},
		Schedule:       "daily 02:00",
		TicketSchedule: DefaultTicketSchedule,
		Timezone:       "Europe/Rome",
		Policies: usage.Policies{
			UsagePeriod:        usage.UsagePeriodCurrent,
			EffectiveDate:      usage.EffectiveNextPeriodStart,
			MissingUsage:       usage.MissingUsageKeep,
			MaxDecreasePercent: 0,
			MaxIncreasePercent: 200,
			// Left out of good.yml: the defaults.
			SurgeLinesPercent:    50,
			SurgeIncreasePercent: 50,
			SurgeMinLines:        5,
			UnmappedDecreases:    usage.UnmappedDecreasesHold,
			BudgetReserve:        1000,
			TicketBudgetReserve:  4000,
			WriteConcurrency:     2,
			SettleTime:           usage.DefaultSettleTime,
			TicketResolveAfter:   usage.DefaultTicketResolveAfter,
		},
		Web: WebConfig{ListenAddress: "127.0.0.1:9810", APIToken: "s3cr3t-token"},
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{}, WebConfig{})); diff != "" {
		t.Errorf("Load mismatch (-want +got):\n%s", diff)
	}
	if got := c.ParsedSchedule().String(); got != "daily 02:00" {
		t.Errorf("ParsedSchedule = %q, want %q", got, "daily 02:00")
	}
	if got := c.Location().String(); got != "Europe/Rome" {
		t.Errorf("Location = %q, want Europe/Rome", got)
	}

	bc := c.BackendConfig(http.DefaultClient, nil)
	wantBC := backends.Config{
		System: psa.SystemAutotask,
		Autotask: &backends.AutotaskConfig{
			Username: "api@msp.example", Secret: "file-secret", IntegrationCode: "ENVCODE",
			BaseURL: "https://webservices5.autotask.net/ATServicesRest/", ImpersonationResourceID: "29682885",
		},
		HTTPClient:     http.DefaultClient,
		MaxConcurrency: 2,
		MaxRetries:     0,
		UserAgent:      "psa-syncd",
	}
	if diff := cmp.Diff(wantBC, bc, cmpopts.IgnoreFields(backends.Config{}, "HTTPClient", "Logger")); diff != "" {
		t.Errorf("BackendConfig mismatch (-want +got):\n%s", diff)
	}

	src, err := c.NewSource(nil, nil)
	if err != nil {
		t.Fatalf("NewSource returned error: %v", err)
	}
	if got := src.Name(); got != "passwordboss" {
		t.Errorf("source name = %q, want passwordboss", got)
	}
}

func TestLoad_defaultsAndEnvironment(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/minimal.yml", cfgEnv(map[string]string{
		"PSA_AUTOTASK_USERNAME":         "env-user",
		"PSA_AUTOTASK_SECRET":           "env-secret",
		"PSA_AUTOTASK_INTEGRATION_CODE": "env-code",
		"PSA_AUTOTASK_BASE_URL":         "https://webservices2.autotask.net/ATServicesRest/",
		"PSA_SOPHOS_CLIENT_ID":          "env-client",
		"PSA_SOPHOS_CLIENT_SECRET":      "env-client-secret",
		"PSA_SYNCD_API_TOKEN":           "env-token",
	}))
	if err != nil {
		t.Fatalf("Load returned error: %v", err)
	}
	a := c.PSA.Autotask
	if a.Username != "env-user" || a.Secret != "env-secret" || a.IntegrationCode != "env-code" ||
		a.BaseURL != "https://webservices2.autotask.net/ATServicesRest/" {
		t.Errorf("autotask settings from env = %+v", *a)
	}
	if s := c.Source.Sophos; s.ClientID != "env-client" || s.ClientSecret != "env-client-secret" {
		t.Errorf("sophos settings from env = %+v", *s)
	}
	if c.Web.APIToken != "env-token" || c.Web.ListenAddress != DefaultListenAddress {
		t.Errorf("web = %+v", c.Web)
	}
	if c.Policies != usage.DefaultPolicies {
		t.Errorf("Policies = %+v, want the defaults %+v", c.Policies, usage.DefaultPolicies)
	}
	if got := c.Policies.TicketReserve(); got != 2500 {
		t.Errorf("ticket passes stop at %d requests left, want the default 2500 (budget_reserve 500 + 2000)", got)
	}
	if c.TicketSchedule != DefaultTicketSchedule {
		t.Errorf("TicketSchedule = %q, want %q", c.TicketSchedule, DefaultTicketSchedule)
	}
	if c.Schedule != DefaultSchedule || c.ParsedSchedule().Interval() != 24*time.Hour {
		t.Errorf("Schedule = %q (%s), want %q", c.Schedule, c.ParsedSchedule(), DefaultSchedule)
	}
	if c.Location() != time.UTC {
		t.Errorf("Location = %v, want UTC", c.Location())
	}
	if got := c.BackendConfig(nil, nil).MaxRetries; got != backends.DefaultMaxRetries {
		t.Errorf("BackendConfig MaxRetries = %d, want the default %d", got, backends.DefaultMaxRetries)
	}
}

func TestLoad_bad(t *testing.T) {
	t.Parallel()
	// Every environment variable is set so that each file fails only for
	// the reason its name gives; the missing-secret files prove that the
	// file wins over nothing but is not replaced when it is broken.
	cases := []struct {
		file string
		env  map[string]string
		want string
	}{
		{file: "bad-unknown-field.yml", want: "yaml: unmarshal errors:\n  line 9: psa.autotask.pasword: unknown key"},
		{file: "bad-wrong-type.yml", want: "yaml: unmarshal errors:\n  line 6: psa.max_concurrency: cannot unmarshal !!str into int"},
		{file: "bad-wrong-type-flow.yml", want: "yaml: unmarshal errors:\n  line 3: psa.max_retries: cannot unmarshal !!str into int"},
		{file: "bad-duration-type.yml", want: "yaml: unmarshal errors:\n  line 5: state.query_timeout: cannot unmarshal !!int into time.Duration (want a duration such as 30s, 10m or 1h30m)"},
		{file: "bad-repeated-key.yml", want: "yaml: unmarshal errors:\n  line 15: policies.max_decrease_percent: given twice (first at line 13)"},
		{file: "bad-state-scalar.yml", want: "yaml: unmarshal errors:\n  line 4: state: cannot unmarshal !!str into daemon.StateConfig"},
		{file: "bad-not-yaml.yml", want: "yaml: line 1: did not find expected ',' or ']'"},
		{file: "bad-empty.yml", want: "the file holds no settings: it is empty, or only comments"},
		{file: "bad-second-document.yml", want: `line 9: a second YAML document starts here ("---"), and psa-syncd reads only the first: the settings after it would be ignored; remove the "---"`},
		{file: "bad-system.yml", want: `psa.system: unknown system "halopsa" (one of autotask, connectwise, kaseya_bms)`},
		{file: "bad-impersonation.yml", want: `psa.autotask.impersonation_resource_id: "me" is not a positive integer`},
		{file: "bad-connectwise-missing-private-key.yml", want: "psa.connectwise.private_key is required (or private_key_file, or PSA_CONNECTWISE_PRIVATE_KEY)"},
		{file: "bad-connectwise-missing-client-id.yml", want: "psa.connectwise.client_id is required (or set PSA_CONNECTWISE_CLIENT_ID): the clientId of the integration, from the ConnectWise developer portal"},
		{file: "bad-connectwise-site-path.yml", want: `psa.connectwise.site: "https://api-na.myconnectwise.net/v2025_1/apis/3.0/" must not have a path; give the codebase in psa.connectwise.codebase or the API root in psa.connectwise.base_url`},
		{file: "bad-connectwise-site-credentials.yml", want: `psa.connectwise.site: "https://xxxxx@na.myconnectwise.net" must not include credentials; give them in psa.connectwise.company_id, public_key and private_key`},
		{file: "bad-connectwise-api-version.yml", want: `psa.connectwise.api_version: "2024" is not a ConnectWise API version (a year and a release, such as 2025.16)`},
		{file: "bad-connectwise-codebase.yml", want: `psa.connectwise.codebase: "../v2025_1/" is not a codebase (such as v2025_1/)`},
		{file: "bad-connectwise-other-block.yml", want: "psa.autotask: not allowed when psa.system is connectwise"},
		{file: "bad-kaseya-bms-hostname-protocol.yml", want: `psa.kaseya_bms.hostname: "https://bmsemea.kaseya.com" must not include a protocol; give the host alone as the BMS console shows it, such as bmsemea.kaseya.com`},
		{file: "bad-kaseya-bms-hostname-path.yml", want: `psa.kaseya_bms.hostname: "bmsemea.kaseya.com/api" must not include a path; give the host alone as the BMS console shows it, such as bmsemea.kaseya.com`},
		{file: "bad-kaseya-bms-missing-hostname.yml", want: "psa.kaseya_bms.hostname is required (or set PSA_KASEYA_BMS_HOSTNAME, or give base_url)"},
		{file: "bad-kaseya-bms-missing-tenant.yml", want: "psa.kaseya_bms.tenant is required (or set PSA_KASEYA_BMS_TENANT): the company name shown in BMS"},
		{file: "bad-kaseya-bms-password-file.yml", env: map[string]string{"PSA_KASEYA_BMS_PASSWORD": "not-used"},
			want: "psa.kaseya_bms.password_file: open " + cfgAbs(t, "testdata/secrets/does-not-exist") + ": no such file or directory"},
		{file: "bad-kaseya-bms-base-url.yml", want: `psa.kaseya_bms.base_url: "api.bmsemea.kaseya.com" is not an http(s) URL`},
		{file: "bad-missing-secret.yml", want: "psa.autotask.secret is required (or secret_file, or PSA_AUTOTASK_SECRET)"},
		{file: "bad-missing-secret-file.yml", env: map[string]string{"PSA_AUTOTASK_SECRET": "not-used"},
			want: "psa.autotask.secret_file: open " + cfgAbs(t, "testdata/secrets/does-not-exist") + ": no such file or directory"},
		{file: "bad-schedule.yml", want: `schedule "hourly": unknown kind "hourly"; want ` + cfgScheduleAccepted},
		{file: "bad-ticket-schedule.yml", want: `ticket_schedule "hourly": unknown kind "hourly"; want ` + cfgScheduleAccepted},
		{file: "bad-duration.yml", want: `schedule "every 24x": "24x" is not a duration (want a Go duration such as 24h, 6h or 1h30m)`},
		{file: "bad-timezone.yml", want: `timezone: unknown time zone "Europe/Atlantis" (want an IANA name such as "Europe/Rome" or "UTC")`},
		{file: "bad-effective-date.yml", want: `policies.effective_date: unknown value "yesterday" (one of period_start, today, next_period_start)`},
		{file: "bad-missing-usage.yml", want: `policies.missing_usage: unknown value "guess" (one of zero, keep)`},
		{file: "bad-usage-period.yml", want: `policies.usage_period: unknown value "last" (one of current, previous)`},
		{file: "bad-decrease-percent.yml", want: "policies.max_decrease_percent: must be between 0 and 100, got 150"},
		{file: "bad-decrease-percent-nan.yml", want: "policies.max_decrease_percent: must be between 0 and 100, got NaN"},
		{file: "bad-increase-percent-negative.yml", want: "policies.max_increase_percent: must be 0 (off) or a positive percentage, got -50"},
		{file: "bad-increase-percent-nan.yml", want: "policies.max_increase_percent: must be 0 (off) or a positive percentage, got NaN"},
		{file: "bad-surge-lines-percent.yml", want: "policies.surge_lines_percent: must be between 0 (off) and 100, got 150"},
		{file: "bad-surge-increase-percent.yml", want: "policies.surge_increase_percent: must be a positive percentage (surge_lines_percent: 0 turns the guard off), got 0"},
		{file: "bad-surge-min-lines.yml", want: "policies.surge_min_lines: must be at least 1 (surge_lines_percent: 0 turns the guard off), got 0"},
		{file: "bad-unmapped-decreases.yml", want: `policies.unmapped_decreases: unknown value "write" (one of hold, by_size)`},
		{file: "bad-ticket-budget-reserve.yml", want: "policies.ticket_budget_reserve: must be at least policies.budget_reserve (500), got 100: " +
			"ticket passes would spend the budget kept for the usage passes (0 or left out: 2000 more than budget_reserve)"},
		{file: "bad-ticket-budget-reserve-negative.yml", want: "policies.ticket_budget_reserve: must be at least policies.budget_reserve (0), got -1: " +
			"ticket passes would spend the budget kept for the usage passes (0 or left out: 2000 more than budget_reserve)"},
		{file: "bad-write-concurrency.yml", want: "policies.write_concurrency: must not be negative, got -1"},
		{file: "bad-write-concurrency-large.yml", want: "policies.write_concurrency: must be at most 100, got 1000000"},
		{file: "bad-max-concurrency.yml", want: "psa.max_concurrency: must be at most 100, got 80000000"},
		{file: "bad-max-retries-large.yml", want: "psa.max_retries: must be at most 20, got 1000"},
		{file: "bad-settle-time.yml", want: "policies.settle_time: must be between 0 and 24h0m0s, got 48h0m0s"},
		{file: "bad-settle-time-negative.yml", want: "policies.settle_time: must be between 0 and 24h0m0s, got -1m0s"},
		{file: "bad-ticket-resolve-after.yml", want: "policies.ticket_resolve_after: must be between 0 and 24h0m0s, got 48h0m0s"},
		{file: "bad-source-type.yml", want: `source.type: unknown type "ftp" (one of sophos, file)`},
		{file: "bad-source-file-path.yml", want: "source.file.path is required"},
		{file: "bad-source-file-duplicate-rows.yml", want: `source.file: file: unknown duplicate_rows "add" (want refuse or sum)`},
		{file: "bad-sophos-secret.yml", want: "source.sophos.client_secret is required (or client_secret_file, or PSA_SOPHOS_CLIENT_SECRET)"},
		{file: "bad-export-path.yml", want: "export_path or export_url is required: where the Terraform provider writes the mapping export"},
		{file: "bad-export-path-url.yml", want: `export_path: "s3://msp-psa-sync/psa-mappings.json?region=eu-central-1" is a URL, not a file path: give it as export_url`},
		{file: "bad-state-dir-url.yml", want: `state_dir: "postgres://xxxxx@db:5432/psa_syncd" is a URL, not a directory: for PostgreSQL set state.driver: postgres and give the URL in state.url (or url_file)`},
		{file: "bad-source-file-url.yml", want: `source.file.path: "https://vendor.example/usage.csv" is a URL: the file source reads a local file`},
		{file: "bad-export-url-both.yml", want: "export_path and export_url are mutually exclusive: give the store as export_url only"},
		{file: "bad-export-url-scheme.yml", want: `export_url: export: unsupported export URL scheme "gs" in "gs://psa-sync/psa-mappings.json": use a path, file://, s3:// or the http(s):// URL of psa-syncd`},
		{file: "bad-export-url-s3.yml", want: `export_url: export: S3 URL "s3://psa-sync/psa-mappings.json?endpoint=minio:9000": endpoint must be an http:// or https:// URL, got "minio:9000"`},
		{file: "bad-state-driver.yml", want: `state.driver: unknown driver "mysql" (one of sqlite, postgres)`},
		{file: "bad-state-postgres-no-url.yml", want: "state.url is required for the postgres driver (or url_file, or PSA_SYNCD_STATE_URL)"},
		{file: "bad-state-postgres-one-conn.yml", want: "state.max_open_conns: must be at least 2 with PostgreSQL, got 1: the active instance keeps a connection for its leadership lock, and every other statement would wait for it"},
		{file: "bad-state-lock-interval.yml", want: "state.lock_interval: must be at least 100ms, got 1ms: a standby would ask for the lock in a tight loop"},
		{file: "bad-state-history-retention.yml", want: "state.history_retention: must be at least 24h0m0s, got 1h0m0s: runs and closed intents older than that are deleted"},
		{file: "bad-state-sqlite-url.yml", want: "state.url: only for the postgres driver (state.driver)"},
		{file: "bad-base-url-credentials.yml", want: `psa.autotask.base_url: "xxxxx@webservices5.autotask.net/atservicesrest/" is not an http(s) URL`},
		{file: "bad-base-url.yml", want: `psa.autotask.base_url: "webservices5.autotask.net" is not an http(s) URL`},
		{file: "bad-listen-address.yml", want: `web.listen_address: "9810" is not host:port, such as 127.0.0.1:9810 (or :9810 for every interface): address 9810: missing port in address`},
		{file: "does-not-exist.yml", want: "open testdata/does-not-exist.yml: no such file or directory"},
	}
	// Every bad-*.yml in testdata is in the table.
	files, err := filepath.Glob("testdata/bad-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.file] = true
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no case in TestLoad_bad", f)
		}
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			path := "testdata/" + tc.file
			_, err := Load(path, cfgEnv(tc.env))
			if err == nil {
				t.Fatalf("Load(%q) returned no error", path)
			}
			want := fmt.Sprintf("error parsing config file %q: %s", path, tc.want)
			if err.Error() != want {
				t.Errorf("Load(%q) error\n got: %s\nwant: %s", path, err, want)
			}
		})
	}
}

// TestLoad_documentEnd: a "---" or "..." that only ends the file, with
// nothing but comments after it, is not a second document of settings; a
// second document that does not parse is an error even so.
func TestLoad_documentEnd(t *testing.T) {
	t.Parallel()
	good := string(dtMust(os.ReadFile("testdata/bad-second-document.yml")))
	good = good[:strings.Index(good, "---")]
	dir := t.TempDir()
	for _, end := range []string{"---\n", "---\n# nothing else\n", "...\n"} {
		path := filepath.Join(dir, "c.yml")
		cfgWriteFile(t, path, good+end)
		if _, err := Load(path, nil); err != nil {
			t.Errorf("Load of a config ending in %q: %v", end, err)
		}
	}
	path := filepath.Join(dir, "c.yml")
	cfgWriteFile(t, path, good+"---\npolicies: [\n")
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "line 10") {
		t.Errorf("Load of a config whose second document does not parse: %v, want an error naming line 10", err)
	}
}

// TestLoad_listenAddress: web.listen_address is checked when the file
// loads; a reload keeps the running listener, so an address run cannot
// listen on would otherwise show only at the next restart.
func TestLoad_listenAddress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yml")
	for addr, want := range map[string]string{
		":9810":                          "",
		"127.0.0.1:9810":                 "",
		"[::1]:9810":                     "",
		"localhost:http":                 "",
		"0.0.0.0:0":                      "",
		"localhost":                      "missing port in address",
		"127.0.0.1:98100":                "invalid port",
		"http://127.0.0.1:9810":          "too many colons",
		"127.0.0.1:no-such-service-name": "unknown port",
	} {
		cfgWriteFile(t, path, "export_path: x.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n"+
			"source: {type: file, file: {path: u.csv}}\nweb: {listen_address: '"+addr+"'}\n")
		_, err := Load(path, nil)
		switch {
		case want == "" && err != nil:
			t.Errorf("listen_address %q: %v", addr, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), "web.listen_address: ") || !strings.Contains(err.Error(), want)):
			t.Errorf("listen_address %q: error %v, want one naming web.listen_address and saying %q", addr, err, want)
		}
	}
}

// TestLoad_trustedProxies: web.trusted_proxies takes CIDRs and single IP
// addresses; an entry that is neither is an error at load that names it.
func TestLoad_trustedProxies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yml")
	for list, want := range map[string]string{
		"[]":                                  "",
		"[10.0.0.0/8, 192.0.2.7, 'fd00::/8']": "",
		"[10.0.0.0/8, 10.0.0.0/33]":           `web.trusted_proxies[1]: "10.0.0.0/33" is not a CIDR`,
		"[ingress-nginx]":                     `web.trusted_proxies[0]: "ingress-nginx" is not a CIDR`,
		"['10.0.0.5:443']":                    `web.trusted_proxies[0]: "10.0.0.5:443" is not a CIDR`,
		"['']":                                `web.trusted_proxies[0]: "" is not a CIDR`,
	} {
		cfgWriteFile(t, path, "export_path: x.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n"+
			"source: {type: file, file: {path: u.csv}}\nweb: {trusted_proxies: "+list+"}\n")
		_, err := Load(path, nil)
		switch {
		case want == "" && err != nil:
			t.Errorf("trusted_proxies %s: %v", list, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("trusted_proxies %s: error %v, want one saying %q", list, err, want)
		}
	}
}

func TestLoad_postgresState(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/postgres.yml", cfgEnv(map[string]string{"PSA_SYNCD_STATE_URL": "postgres://env-loses-to-file@db/psa"}))
	if err != nil {
		t.Fatalf("Load returned error: %v", err)
	}
	want := StateConfig{
		Driver: "postgres", URL: "postgres://psa:pg-s3cret@db.internal:5432/psa", URLFile: cfgAbs(t, "testdata/secrets/state-url"),
		MaxOpenConns: 4, QueryTimeout: 5 * time.Second, LockInterval: time.Second, AdvertiseURL: "http://psa-syncd-0.psa-syncd:9810",
	}
	if !cmp.Equal(c.State, want) {
		t.Errorf("State mismatch (-want +got):\n%s", cmp.Diff(want, c.State))
	}
	if c.StateDir != "" {
		t.Errorf("StateDir = %q, want none (optional with postgres)", c.StateDir)
	}
	db := c.State.Database(c.StateDir)
	if db.Driver != "postgres" || db.URL != string(want.URL) || db.MaxOpenConns != 4 || db.QueryTimeout != 5*time.Second {
		t.Errorf("Database() = %+v", db)
	}
	if strings.Contains(c.String(), "pg-s3cret") || strings.Contains(fmt.Sprintf("%v %+v %#v", c, c, c), "pg-s3cret") {
		t.Error("the state URL's password appears in the printed config")
	}
	// From the environment alone.
	c, err = Load("testdata/bad-state-postgres-no-url.yml", cfgEnv(map[string]string{"PSA_SYNCD_STATE_URL": "postgres://psa@db/psa"}))
	if err != nil || c.State.URL != "postgres://psa@db/psa" {
		t.Errorf("Load with PSA_SYNCD_STATE_URL = %v, %v", c, err)
	}
}

// cfgScheduleAccepted is the grammar that psa/schedule's errors end with.
const cfgScheduleAccepted = `"every <duration>", "daily HH:MM", "weekly DAY HH:MM", "monthly last-day HH:MM" or "monthly DD HH:MM"`

func cfgAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoad_secretsNeverPrinted(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/minimal.yml", cfgEnv(map[string]string{
		"PSA_AUTOTASK_USERNAME":         "env-user",
		"PSA_AUTOTASK_SECRET":           "TOPSECRET-1",
		"PSA_AUTOTASK_INTEGRATION_CODE": "TOPSECRET-2",
		"PSA_SOPHOS_CLIENT_ID":          "env-client",
		"PSA_SOPHOS_CLIENT_SECRET":      "TOPSECRET-3",
		"PSA_SYNCD_API_TOKEN":           "TOPSECRET-4",
	}))
	if err != nil {
		t.Fatalf("Load returned error: %v", err)
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", *c.PSA.Autotask), fmt.Sprintf("%#v", *c.Source.Sophos)} {
		if strings.Contains(s, "TOPSECRET") {
			t.Errorf("secret printed:\n%s", s)
		}
	}
	if !strings.Contains(c.String(), "secret: <secret>") {
		t.Errorf("String() does not show the redacted secret:\n%s", c.String())
	}

	// A secret file's content never shows in an error either.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yml")
	cfgWriteFile(t, filepath.Join(dir, "secret"), "  \n")
	cfgWriteFile(t, cfg, "export_path: x.json\nstate_dir: s\npsa:\n  system: autotask\n  autotask: {username: u, secret_file: secret, integration_code: c0de}\nsource: {type: file, file: {path: u.csv}}\n")
	_, err = Load(cfg, nil)
	want := fmt.Sprintf("error parsing config file %q: psa.autotask.secret_file: %s is empty", cfg, filepath.Join(dir, "secret"))
	if err == nil || err.Error() != want {
		t.Errorf("Load with an empty secret file: got %v, want %s", err, want)
	}

	// Nor the secret itself given in a *_file setting, read as a file
	// name beside the config file: each setting is named, its value not.
	// A name that looks like one (short, or with a directory) is shown.
	for key, cfgLine := range map[string]string{
		"psa.autotask.secret_file":           "psa:\n  system: autotask\n  autotask: {username: u, secret_file: %q, integration_code: c0de}\nsource: {type: file, file: {path: u.csv}}\n",
		"psa.autotask.integration_code_file": "psa:\n  system: autotask\n  autotask: {username: u, secret: s3cret, integration_code_file: %q}\nsource: {type: file, file: {path: u.csv}}\n",
		"psa.connectwise.private_key_file":   "psa:\n  system: connectwise\n  connectwise: {site: na.myconnectwise.net, company_id: c, public_key: pubkey, private_key_file: %q, client_id: client-id}\nsource: {type: file, file: {path: u.csv}}\n",
		"psa.kaseya_bms.password_file":       "psa:\n  system: kaseya_bms\n  kaseya_bms: {hostname: bmsemea.kaseya.com, username: u, password_file: %q, tenant: t}\nsource: {type: file, file: {path: u.csv}}\n",
		"source.sophos.client_secret_file":   "psa:\n  system: autotask\n  autotask: {username: u, secret: s3cret, integration_code: c0de}\nsource: {type: sophos, sophos: {client_id: client-id, client_secret_file: %q}}\n",
		"web.api_token_file":                 "psa:\n  system: autotask\n  autotask: {username: u, secret: s3cret, integration_code: c0de}\nsource: {type: file, file: {path: u.csv}}\nweb: {api_token_file: %q}\n",
		"state.url_file":                     "state: {driver: postgres, url_file: %q}\npsa:\n  system: autotask\n  autotask: {username: u, secret: s3cret, integration_code: c0de}\nsource: {type: file, file: {path: u.csv}}\n",
	} {
		const secret = "CANARYs3cretGivenAsItsFile+9q"
		cfgWriteFile(t, cfg, "export_path: x.json\nstate_dir: s\n"+fmt.Sprintf(cfgLine, secret))
		_, err := Load(cfg, nil)
		if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), key+": the file it names cannot be read: no such file or directory") {
			t.Errorf("Load with %s set to the secret itself: %v; want an error naming %s without the value", key, err, key)
		}
		cfgWriteFile(t, cfg, "export_path: x.json\nstate_dir: s\n"+fmt.Sprintf(cfgLine, "secret.key"))
		if _, err := Load(cfg, nil); err == nil || !strings.Contains(err.Error(), key+": open "+filepath.Join(dir, "secret.key")+": no such file or directory") {
			t.Errorf("Load with %s naming a missing file: %v; want the file's path", key, err)
		}
	}
}

func TestLoad_example(t *testing.T) {
	t.Parallel()
	c, err := Load("../examples/daemon/psa-syncd.yml", cfgEnv(map[string]string{
		"PSA_AUTOTASK_SECRET":           "s3cr3t",
		"PSA_AUTOTASK_INTEGRATION_CODE": "c0de",
		"PSA_SOPHOS_CLIENT_SECRET":      "s3cr3t",
		"PSA_SYNCD_API_TOKEN":           "t0ken",
	}))
	if err != nil {
		t.Fatalf("the example configuration does not load: %v", err)
	}
	if c.PSA.System != psa.SystemAutotask || c.Source.Type != SourceSophos || c.Schedule != "daily 02:00" {
		t.Errorf("example config = %s", c)
	}
	if _, err := c.NewSource(nil, nil); err != nil {
		t.Errorf("NewSource for the example: %v", err)
	}
}

// TestLoad_exampleExplainsEverySetting: README says the example
// configurations explain every setting of its table, so each key there
// appears in one of them, set or commented out (a secret as its *_file,
// which the examples prefer to the secret itself).
func TestLoad_exampleExplainsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var examples strings.Builder
	for _, name := range []string{"psa-syncd.yml", "psa-syncd-connectwise.yml", "psa-syncd-kaseya-bms.yml"} {
		b, err := os.ReadFile(filepath.Join("../examples/daemon", name))
		if err != nil {
			t.Fatal(err)
		}
		examples.Write(b)
	}
	_, table, ok := strings.Cut(string(readme), "| Key | Default | Meaning |\n")
	if !ok {
		t.Fatal("README has no configuration table")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	keys := 0
	for row := range strings.Lines(table) {
		cells := strings.Split(row, "|")
		if len(cells) < 3 || strings.HasPrefix(cells[1], "---") {
			continue
		}
		for _, m := range regexp.MustCompile("`([a-z_.]+)`").FindAllStringSubmatch(cells[1], -1) {
			keys++
			leaf := m[1][strings.LastIndex(m[1], ".")+1:]
			if !strings.Contains(examples.String(), leaf+":") && !strings.Contains(examples.String(), leaf+"_file:") {
				t.Errorf("README's configuration table has %s (%q), which no example in examples/daemon shows", m[1], strings.TrimSpace(cells[1]))
			}
		}
	}
	if keys < 50 {
		t.Errorf("read %d keys from README's configuration table, want the whole table", keys)
	}
}

// TestLoad_kubernetesHAExample loads the configuration of the two-replica
// Kubernetes example, its secrets from files as the Deployment mounts them
// (moved from /etc/psa-syncd/credentials to a temporary directory) and the
// advertised address from the environment.
// (examples/deploy/kubernetes checks the files against the Secrets.)
func TestLoad_kubernetesHAExample(t *testing.T) {
	t.Parallel()
	const credDir = "/etc/psa-syncd/credentials/"
	data, err := os.ReadFile("../examples/deploy/kubernetes-ha/psa-syncd.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, m := range regexp.MustCompile(`_file: `+regexp.QuoteMeta(credDir)+`([a-z-]+)`).FindAllSubmatch(data, -1) {
		val := "s3cr3t"
		if string(m[1]) == "state-url" {
			val = "postgres://psa_syncd:pw@postgres:5432/psa_syncd?sslmode=disable"
		}
		if err := os.WriteFile(filepath.Join(dir, string(m[1])), []byte(val), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "psa-syncd.yml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(data), credDir, dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file, cfgEnv(map[string]string{
		"PSA_SYNCD_ADVERTISE_HOST": "fd00:10:244::7",
	}))
	if err != nil {
		t.Fatalf("the Kubernetes HA example configuration does not load: %v", err)
	}
	if c.ExportStore() != StoreSelf {
		t.Errorf("export store %s, want self: the replicas share no volume", c.ExportName())
	}
	if c.State.Driver != "postgres" || c.State.URL == "" || c.AdvertisedURL(false) != "http://[fd00:10:244::7]:9810" || c.StateDir != "" {
		t.Errorf("state = %+v, state_dir %q; want postgres from the state-url file", c.State, c.StateDir)
	}
}

// TestLoad_systems loads the ConnectWise and Kaseya BMS examples (secrets
// from the environment) and a minimal file per system whose every setting
// comes from the environment, and checks the backend configuration each
// one gives.
func TestLoad_systems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file string
		env        map[string]string
		want       backends.Config
	}{
		{
			name: "connectwise example",
			file: "../examples/daemon/psa-syncd-connectwise.yml",
			env: map[string]string{
				"PSA_CONNECTWISE_PRIVATE_KEY": "env-private",
				"PSA_CONNECTWISE_SITE":        "loses-to-the-file.example",
				"PSA_SOPHOS_CLIENT_SECRET":    "s3cr3t",
			},
			want: backends.Config{
				System: psa.SystemConnectWise,
				ConnectWise: &backends.ConnectWiseConfig{
					Site: "api-na.myconnectwise.net", CompanyID: "msp", PublicKey: "3xAmPlEpUbLiCkEy",
					PrivateKey: "env-private", ClientID: "5f8a3c8e-8a8e-4f38-9a3b-2d6c2f2f1e11",
				},
				MaxRetries: 4,
			},
		},
		{
			name: "connectwise from the environment",
			file: "testdata/minimal-connectwise.yml",
			env: map[string]string{
				"PSA_CONNECTWISE_SITE":        "http://127.0.0.1:8089",
				"PSA_CONNECTWISE_COMPANY_ID":  "env-company",
				"PSA_CONNECTWISE_PUBLIC_KEY":  "env-public",
				"PSA_CONNECTWISE_PRIVATE_KEY": "env-private",
				"PSA_CONNECTWISE_CLIENT_ID":   "env-client",
				"PSA_CONNECTWISE_BASE_URL":    "http://127.0.0.1:8089/v2025_1/apis/3.0/",
				"PSA_CONNECTWISE_CODEBASE":    "v2025_1/",
				"PSA_CONNECTWISE_API_VERSION": "2024.1",
			},
			want: backends.Config{
				System: psa.SystemConnectWise,
				ConnectWise: &backends.ConnectWiseConfig{
					Site: "http://127.0.0.1:8089", CompanyID: "env-company", PublicKey: "env-public", PrivateKey: "env-private",
					ClientID: "env-client", BaseURL: "http://127.0.0.1:8089/v2025_1/apis/3.0/", Codebase: "v2025_1/",
					APIVersion: "2024.1",
				},
				MaxRetries: backends.DefaultMaxRetries,
			},
		},
		{
			name: "kaseya bms example",
			file: "../examples/daemon/psa-syncd-kaseya-bms.yml",
			env: map[string]string{
				"PSA_KASEYA_BMS_PASSWORD": "env-password",
				"PSA_KASEYA_BMS_TENANT":   "loses to the file",
			},
			want: backends.Config{
				System: psa.SystemKaseyaBMS,
				KaseyaBMS: &backends.KaseyaBMSConfig{
					Hostname: "bmsemea.kaseya.com", Username: "api-psa-sync@msp.example", Password: "env-password", Tenant: "Acme MSP",
				},
				MaxRetries: 4,
			},
		},
		{
			name: "kaseya bms from the environment",
			file: "testdata/minimal-kaseya-bms.yml",
			env: map[string]string{
				"PSA_KASEYA_BMS_HOSTNAME": "bms.kaseya.com",
				"PSA_KASEYA_BMS_USERNAME": "env-user",
				"PSA_KASEYA_BMS_PASSWORD": "env-password",
				"PSA_KASEYA_BMS_TENANT":   "Env MSP",
				"PSA_KASEYA_BMS_BASE_URL": "http://127.0.0.1:8090/",
			},
			want: backends.Config{
				System: psa.SystemKaseyaBMS,
				KaseyaBMS: &backends.KaseyaBMSConfig{
					Hostname: "bms.kaseya.com", Username: "env-user", Password: "env-password", Tenant: "Env MSP", BaseURL: "http://127.0.0.1:8090/",
				},
				MaxRetries: backends.DefaultMaxRetries,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tc.file, cfgEnv(tc.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tc.want.UserAgent = "psa-syncd"
			got := c.BackendConfig(nil, nil)
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(backends.Config{}, "HTTPClient", "Logger")); diff != "" {
				t.Errorf("BackendConfig mismatch (-want +got):\n%s", diff)
			}
			if _, err := backends.New(got); err != nil {
				t.Errorf("backends.New: %v", err)
			}
			if _, err := c.NewSource(nil, nil); err != nil {
				t.Errorf("NewSource: %v", err)
			}
			for _, secret := range []string{"env-private", "env-password"} {
				if s := c.String(); strings.Contains(s, secret) {
					t.Errorf("String() shows a secret:\n%s", s)
				}
			}
		})
	}
}

// TestLoad_secretFilePrecedence checks, for the ConnectWise private key and
// the BMS password, that the value in the file wins over its *_file, which
// wins over the environment.
func TestLoad_secretFilePrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgWriteFile(t, filepath.Join(dir, "secret"), "from-file\n")
	blocks := map[psa.System]string{
		psa.SystemConnectWise: "connectwise: {site: api-na.myconnectwise.net, company_id: msp, public_key: pubkey, client_id: client-id%s}",
		psa.SystemKaseyaBMS:   "kaseya_bms: {hostname: bms.kaseya.com, username: u, tenant: t%s}",
	}
	// An environment variable's line end is dropped, as a file's is.
	env := cfgEnv(map[string]string{"PSA_CONNECTWISE_PRIVATE_KEY": "from-env\n", "PSA_KASEYA_BMS_PASSWORD": " from-env\r\n"})
	for _, sys := range []psa.System{psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		key := map[psa.System]string{psa.SystemConnectWise: "private_key", psa.SystemKaseyaBMS: "password"}[sys]
		for extra, want := range map[string]string{
			"":                           "from-env",
			", " + key + "_file: secret": "from-file",
			", " + key + "_file: secret, " + key + ": here": "here",
		} {
			cfg := filepath.Join(dir, fmt.Sprintf("%s-%d.yml", sys, len(extra)))
			cfgWriteFile(t, cfg, "export_path: x.json\nstate_dir: s\nsource: {type: file, file: {path: u.csv}}\npsa:\n  system: "+
				string(sys)+"\n  "+fmt.Sprintf(blocks[sys], extra)+"\n")
			c, err := Load(cfg, env)
			if err != nil {
				t.Fatalf("%s %q: %v", sys, extra, err)
			}
			bc := c.BackendConfig(nil, nil)
			got := ""
			if bc.ConnectWise != nil {
				got = bc.ConnectWise.PrivateKey
			} else {
				got = bc.KaseyaBMS.Password
			}
			if got != want {
				t.Errorf("%s %q: %s = %q, want %q", sys, extra, key, got, want)
			}
		}
	}
}

func cfgWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoad_exportURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, store, path, name string
	}{
		{url: "file:///var/lib/psa/psa-mappings.json", store: StoreFile, path: "/var/lib/psa/psa-mappings.json", name: "/var/lib/psa/psa-mappings.json"},
		{url: "psa-mappings.json", store: StoreFile, path: "DIR/psa-mappings.json", name: "DIR/psa-mappings.json"},
		{url: "s3://psa-sync/prod/psa-mappings.json?region=eu-central-1", store: StoreS3, name: "s3://psa-sync/prod/psa-mappings.json?region=eu-central-1"},
		{url: "https://psa-syncd-primary.internal:9810", store: StoreRemote, name: "https://psa-syncd-primary.internal:9810"},
		{url: "self", store: StoreSelf, name: "psa-syncd's state database (export_url: self)"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		path := filepath.Join(dir, "psa-syncd.yml")
		cfg := "export_url: " + strconv.Quote(tt.url) + "\nstate_dir: state\npsa:\n  system: autotask\n" +
			"  autotask: {username: u, secret: s3cr3t, integration_code: c0de}\nsource:\n  type: file\n  file: {path: usage.csv}\n"
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, cfgEnv(nil))
		if err != nil {
			t.Errorf("export_url %q: %v", tt.url, err)
			continue
		}
		wantPath := strings.ReplaceAll(tt.path, "DIR", dir)
		wantName := strings.ReplaceAll(tt.name, "DIR", dir)
		if c.ExportStore() != tt.store || c.ExportPath != wantPath || c.ExportName() != wantName {
			t.Errorf("export_url %q: store %q, path %q, name %q; want %q, %q, %q", tt.url, c.ExportStore(), c.ExportPath, c.ExportName(), tt.store, wantPath, wantName)
		}
	}
}

// TestLoad_exportToken: export_url may name a user of another psa-syncd's
// basic_auth_users, whose password export_token (or its file, or
// PSA_EXPORT_TOKEN) gives; a user without one, a password in the URL, and
// export_token for a store that is not a psa-syncd are refused, without
// showing a secret. PSA_EXPORT_TOKEN set for the provider in the same
// environment does not matter to another store.
func TestLoad_exportToken(t *testing.T) {
	t.Parallel()
	const token = "ci-plan-reader-password"
	tests := []struct {
		name, url, extra string
		env              map[string]string
		wantErr          string
	}{
		{name: "user and PSA_EXPORT_TOKEN", url: "https://ci-plan@psa-syncd.internal:9810", env: map[string]string{"PSA_EXPORT_TOKEN": token}},
		{name: "user and export_token", url: "https://ci-plan@psa-syncd.internal:9810", extra: "export_token: " + token + "\n"},
		{name: "bearer token, no user", url: "https://psa-syncd.internal:9810", extra: "export_token: " + token + "\n"},
		{name: "user without token", url: "https://ci-plan@psa-syncd.internal:9810", wantErr: `export_url names user "ci-plan"`},
		{name: "password in the URL", url: "https://ci-plan:" + token + "@psa-syncd.internal:9810", wantErr: "must not carry a password"},
		{name: "S3 with PSA_EXPORT_TOKEN", url: "s3://psa-sync/psa-mappings.json?region=eu-central-1", env: map[string]string{"PSA_EXPORT_TOKEN": token}},
		{name: "S3 with export_token", url: "s3://psa-sync/psa-mappings.json?region=eu-central-1", extra: "export_token: " + token + "\n", wantErr: "export_token: only for an export_url that is another psa-syncd"},
		{name: "short token", url: "https://ci-plan@psa-syncd.internal:9810", extra: "export_token: abc\n", wantErr: "export_token (or export_token_file or PSA_EXPORT_TOKEN): the value is shorter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "psa-syncd.yml")
			cfg := "export_url: " + strconv.Quote(tt.url) + "\n" + tt.extra + "state_dir: state\npsa:\n  system: autotask\n" +
				"  autotask: {username: u, secret: s3cr3t, integration_code: c0de}\nsource:\n  type: file\n  file: {path: usage.csv}\n"
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path, cfgEnv(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), token) {
					t.Fatalf("Load: %v, want an error with %q that does not show the token", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := token
			if c.ExportStore() != StoreRemote {
				want = ""
			}
			if string(c.ExportToken) != want || strings.Contains(c.String(), token) {
				t.Errorf("export_token = %q, want %q; shown config:\n%s", c.ExportToken, want, c.String())
			}
		})
	}
}

// An API URL with user information is refused, as the provider refuses it,
// naming the setting without the password: Go would send it as a login of
// its own, beside the configured credentials.
func TestLoad_apiURLCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const url = "https://api:hunter2@psa.example/"
	for key, cfgLine := range map[string]string{
		"psa.autotask.base_url":        "psa:\n  system: autotask\n  autotask: {username: u, secret: s3cr3t, integration_code: c0de, base_url: %q}\nsource: {type: file, file: {path: u.csv}}\n",
		"psa.autotask.zone_lookup_url": "psa:\n  system: autotask\n  autotask: {username: u, secret: s3cr3t, integration_code: c0de, zone_lookup_url: %q}\nsource: {type: file, file: {path: u.csv}}\n",
		"psa.connectwise.base_url":     "psa:\n  system: connectwise\n  connectwise: {company_id: c, public_key: pubkey, private_key: privkey, client_id: client-id, base_url: %q}\nsource: {type: file, file: {path: u.csv}}\n",
		"psa.kaseya_bms.base_url":      "psa:\n  system: kaseya_bms\n  kaseya_bms: {username: u, password: p4ss, tenant: t, base_url: %q}\nsource: {type: file, file: {path: u.csv}}\n",
		"source.sophos.auth_url":       "psa:\n  system: autotask\n  autotask: {username: u, secret: s3cr3t, integration_code: c0de}\nsource: {type: sophos, sophos: {client_id: client-id, client_secret: s3cr3t, auth_url: %q}}\n",
		"source.sophos.api_url":        "psa:\n  system: autotask\n  autotask: {username: u, secret: s3cr3t, integration_code: c0de}\nsource: {type: sophos, sophos: {client_id: client-id, client_secret: s3cr3t, api_url: %q}}\n",
	} {
		cfg := filepath.Join(dir, strings.ReplaceAll(key, ".", "-")+".yml")
		cfgWriteFile(t, cfg, "export_path: x.json\nstate_dir: s\n"+fmt.Sprintf(cfgLine, url))
		_, err := Load(cfg, nil)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), key+`: "https://xxxxx@psa.example/" must not include credentials`) {
			t.Errorf("Load with %s = %s: %v; want it refused naming the setting, without the password", key, url, err)
		}
	}
}

// TestLoad_secretFileTooLarge: a *_file setting that names a file far
// larger than any secret (a log, /dev/zero) fails at once with an error
// naming the file and the cap, rather than read it into memory.
func TestLoad_secretFileTooLarge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "big.log")
	cfgWriteFile(t, big, strings.Repeat("x", maxSecretFile+1))
	cfg := filepath.Join(dir, "psa-syncd.yml")
	cfgWriteFile(t, cfg, "export_path: x.json\nstate_dir: s\nsource: {type: file, file: {path: u.csv}}\npsa:\n  system: kaseya_bms\n"+
		"  kaseya_bms: {hostname: bms.kaseya.com, username: u, tenant: t, password_file: big.log}\n")
	_, err := Load(cfg, cfgEnv(nil))
	if err == nil || !strings.Contains(err.Error(), big+" is larger than 64 KiB") || strings.Contains(err.Error(), "xxxx") {
		t.Errorf("Load with password_file naming a file over 64 KiB = %v; want an error naming the file and the cap", err)
	}
}

// TestLoad_configFileTooLarge: a config file larger than MaxConfigFile (a
// -config.file naming a log, a disk image) fails at once with an error
// naming the file and the cap, without being read into memory (the sparse
// file costs no disk).
func TestLoad_configFileTooLarge(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "psa-syncd.yml")
	cfgWriteFile(t, cfg, "export_path: x.json\n")
	if err := os.Truncate(cfg, MaxConfigFile+1); err != nil {
		t.Fatal(err)
	}
	_, err := Load(cfg, cfgEnv(nil))
	want := fmt.Sprintf("error parsing config file %q: the file is larger than 16 MiB, the most psa-syncd reads of a config file; is it psa-syncd's config file?", cfg)
	if err == nil || err.Error() != want {
		t.Errorf("Load of a %d-byte config file = %v\nwant %s", MaxConfigFile+1, err, want)
	}
}

// TestDaemon_warnsOfPoliciesThatDoNotGuard: max_decrease_percent: 100
// validates but holds no decrease (none is larger than 100 percent): the
// guard is off in disguise. psa-syncd logs that when it starts, and at a
// reload that loads a config with a fraction where a percentage belongs
// (0.5 holds nearly every change); a config without either logs nothing.
func TestDaemon_warnsOfPoliciesThatDoNotGuard(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := dtSetup(t, dtOptions{state: "policies:\n  max_decrease_percent: 100\n",
		daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "policies.max_decrease_percent: 100 holds no decrease") {
		t.Errorf("start-up log lacks the warning:\n%s", got)
	}
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.cfgPath, strings.Replace(string(cfg), "max_decrease_percent: 100", "max_decrease_percent: 50\n  max_increase_percent: 0.5", 1))
	before := len(logs.String())
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	got := logs.String()[before:]
	if !strings.Contains(got, "policies.max_increase_percent: 0.5 is a percentage, not a fraction") || strings.Contains(got, "max_decrease_percent") {
		t.Errorf("reload log: want the max_increase_percent warning alone:\n%s", got)
	}
}

// TestConfig_WarningsSettleTimeWithPostgres: with replicas on PostgreSQL a
// settle_time shorter than the lease's term plus the PSA request timeout
// lets a new active instance write a line again while the deposed one's
// write may still arrive. Load accepts it (it always has) and Warnings
// names both settings and the value that is enough; the default
// settle_time with the default lock interval warns of nothing, a long
// lock_interval makes even the default too short, and SQLite (one
// instance, no takeover) never warns.
func TestConfig_WarningsSettleTimeWithPostgres(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/postgres.yml", cfgEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	settleWarning := func(c *Config) string {
		for _, w := range c.Warnings() {
			if strings.HasPrefix(w, "policies.settle_time:") {
				return w
			}
		}
		return ""
	}
	if w := settleWarning(c); w != "" {
		t.Errorf("default settle_time, lock_interval 1s: %s\nwant no warning", w)
	}
	c.Policies.SettleTime = 0
	want := "policies.settle_time: 0s is shorter than 1m5s, the leadership lease's term with state.lock_interval 1s (5s) plus the PSA request timeout (1m0s): "
	if w := settleWarning(c); !strings.HasPrefix(w, want) || !strings.Contains(w, "set policies.settle_time to 1m5s or more (the default is 2m0s), or shorten state.lock_interval") {
		t.Errorf("settle_time 0 with PostgreSQL:\n%s\nwant it to start %q and say what is enough", w, want)
	}
	c.Policies.SettleTime = usage.DefaultSettleTime
	c.State.LockInterval = time.Minute
	if w := settleWarning(c); !strings.HasPrefix(w, "policies.settle_time: 2m0s is shorter than 3m30s, the leadership lease's term with state.lock_interval 1m0s (2m30s)") {
		t.Errorf("default settle_time, lock_interval 1m:\n%s\nwant the warning", w)
	}
	c.State.LockInterval = 0
	c.Policies.SettleTime = 30 * time.Second
	if w := settleWarning(c); !strings.HasPrefix(w, "policies.settle_time: 30s is shorter than 1m5s, the leadership lease's term with state.lock_interval 2s (5s)") {
		t.Errorf("settle_time 30s, default lock_interval:\n%s\nwant the warning with the default interval", w)
	}
	c.State.Driver = state.DriverSQLite
	if w := settleWarning(c); w != "" {
		t.Errorf("settle_time 30s with SQLite: %s\nwant no warning", w)
	}
}
