package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestRun_canarySecretsStayOut is TestRun_echoedSecretsStayOut for
// ConnectWise and Kaseya BMS, with every credential a distinct canary:
// against a PSA that quotes each request (headers and body) in its errors,
// when authenticating, on reads and then on writes, no command output (debug logs, -json
// and the billing-impact report of a Terraform plan included) and nothing in the state database shows a credential, as is
// or URL- or base64-encoded.
func TestRun_canarySecretsStayOut(t *testing.T) {
	t.Parallel()
	const (
		cwPublic  = "CANARY-cw-public-3k8d"
		cwPrivate = "CANARY-cw-private/+&9v2m"
		cwClient  = "CANARY-cw-client-6h1q"
		bmsPass   = "CANARY bms pass/+&=4t7w"
		apiToken  = "CANARY-api-token-8c5n"
	)
	for _, tt := range []struct {
		system  psa.System
		opt     psatest.Option
		auth    string // the path that authenticates, if any
		reads   []string
		writes  string
		secrets []string
	}{
		{system: psa.SystemConnectWise, opt: psatest.WithConnectWiseCredentials("acme", cwPublic, cwPrivate, cwClient),
			reads: []string{"/v4_6_release/apis/3.0/*"}, writes: "/v4_6_release/apis/3.0/*",
			secrets: []string{cwPublic, cwPrivate, cwClient, "acme+" + cwPublic + ":" + cwPrivate}},
		{system: psa.SystemKaseyaBMS, opt: psatest.WithKaseyaBMSCredentials("api@msp.example", bmsPass, "tenant1"),
			auth: "/v2/security/*", reads: []string{"/v2/crm/*", "/v2/finance/*"}, writes: "/v2/finance/contracts/recurringservices/*",
			secrets: []string{bmsPass}},
	} {
		t.Run(string(tt.system), func(t *testing.T) {
			t.Parallel()
			e := newSystemEnv(t, tt.system, tt.opt)
			cfgData, err := os.ReadFile(e.cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, e.cfgPath, string(cfgData)+"web:\n  api_token: "+`"`+apiToken+`"`+"\n")
			cfg := "-config.file=" + e.cfgPath
			var all strings.Builder
			run := func(args ...string) {
				_, stdout, stderr := runCmd(t, append(args, cfg)...)
				all.WriteString(stdout + stderr)
			}
			// The first pass writes the lines, so that the ledger knows
			// them (Kaseya BMS) and the reads below have lines to read.
			run("sync", "-state.allow-empty")
			if tt.auth != "" {
				e.sim.AddFault(psatest.Fault{Path: tt.auth, Status: http.StatusUnauthorized, EchoRequest: true})
				run("check")
				e.sim.ClearFaults()
			}
			for _, path := range tt.reads {
				e.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Status: http.StatusBadRequest, EchoRequest: true})
			}
			run("check")
			run("plan", "-json")
			run("sync", "-json", "-log.level=debug")
			// The billing-impact report of a Terraform plan that maps
			// one more product: the PSA reads it makes fail the same way.
			planFile := filepath.Join(e.dir, "plan.json")
			writeFile(t, planFile, `{"format_version": "1.2", "terraform_version": "1.11.4", "errored": false, "resource_changes": [
				{"address": "psa_product_mapping.fw", "mode": "managed", "type": "psa_product_mapping", "name": "fw",
				 "provider_name": "registry.terraform.io/psa-sync/psa",
				 "change": {"actions": ["create"], "before": null,
					"after": {"source": "file", "product": "XGS-FW", "service_id": "`+e.services[1]+`", "service_name": "Sophos Intercept X Server", "sync_enabled": true},
					"after_unknown": {"id": true}}}]}`)
			for _, format := range []string{"markdown", "table", "json"} {
				run("plan", "-terraform-plan", planFile, "-format", format, "-log.level=debug")
			}
			e.sim.ClearFaults()
			// Changed usage, and every write answered with the echo.
			writeFile(t, filepath.Join(e.dir, "usage.csv"), strings.ReplaceAll(testUsage, ",11\n", ",12\n"))
			for _, method := range []string{http.MethodPost, http.MethodPatch, http.MethodPut} {
				e.sim.AddFault(psatest.Fault{Method: method, Path: tt.writes, Status: http.StatusBadRequest, EchoRequest: true})
			}
			run("sync", "-log.level=debug")
			run("status", "-json")
			run("ledger", "-json")
			if !strings.Contains(all.String(), "[REDACTED]") {
				t.Errorf("no command output shows an echoed request redacted:\n%s", all.String())
			}
			checkCanaries(t, all.String(), filepath.Join(e.dir, "state"), append(tt.secrets, apiToken))
		})
	}
	// The usage source: Sophos ID and the Central API quoting each
	// request (the client secret in the token form, the access token in
	// the header), on the usage pass and the ticket pass (alerts).
	t.Run("sophos", func(t *testing.T) {
		t.Parallel()
		const sophosSecret = "CANARY sophos secret/+&=8z1y"
		cfg, sim, sop := ticketsSetup(t, "state_dir: state", sophostest.WithCredentials("sophos-client", sophosSecret))
		cfgData, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, cfg, string(cfgData)+"web:\n  api_token: "+`"`+apiToken+`"`+"\n")
		var all strings.Builder
		run := func(args ...string) {
			_, stdout, stderr := runCmd(t, append(args, "-config.file="+cfg)...)
			all.WriteString(stdout + stderr)
		}
		passes := func() {
			run("check")
			run("plan", "-json")
			run("sync", "-json", "-log.level=debug")
			run("tickets", "-dry-run")
			run("tickets", "-log.level=debug")
		}
		for _, f := range []sophostest.Fault{
			{Path: "/api/v2/oauth2/token", Status: http.StatusUnauthorized, EchoRequest: true},
			{Path: "/whoami/*", Status: http.StatusBadRequest, EchoRequest: true},
			{Path: "/partner/*", Status: http.StatusBadRequest, EchoRequest: true},
			{Path: "/common/*", Status: http.StatusBadRequest, EchoRequest: true},
		} {
			sop.ClearFaults()
			sop.AddFault(f)
			passes()
		}
		sop.ClearFaults()
		// The ticket pass's writes to the PSA, quoted back.
		for _, method := range []string{http.MethodPost, http.MethodPatch, http.MethodPut} {
			sim.AddFault(psatest.Fault{Method: method, Status: http.StatusBadRequest, EchoRequest: true})
		}
		run("tickets", "-log.level=debug")
		run("status", "-json")
		run("ledger", "-json")
		if !strings.Contains(all.String(), "[REDACTED]") {
			t.Errorf("no command output shows an echoed request redacted:\n%s", all.String())
		}
		_, atSecret, atCode := sim.Autotask().Credentials()
		secrets := []string{sophosSecret, apiToken, atSecret, atCode}
		for _, r := range sop.Requests() {
			if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && !slices.Contains(secrets, tok) {
				secrets = append(secrets, tok)
			}
		}
		if len(secrets) == 4 {
			t.Fatal("no request to Sophos carried an access token")
		}
		checkCanaries(t, all.String(), filepath.Join(filepath.Dir(cfg), "state"), secrets)
	})
}

// checkCanaries fails t when out, the command output, or a file of the
// state database in stateDir holds a secret, as is or URL- or
// base64-encoded.
func checkCanaries(t *testing.T, out, stateDir string, secrets []string) {
	t.Helper()
	state := stateFiles(t, stateDir)
	for _, s := range secrets {
		quoted, _ := json.Marshal(s) // & is \u0026 in -json output
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s), base64.StdEncoding.EncodeToString([]byte(s)), string(quoted[1 : len(quoted)-1])} {
			if i := strings.Index(out, form); i >= 0 {
				t.Errorf("command output contains %q: …%s…", form, out[max(0, i-200):min(len(out), i+len(form)+50)])
			}
			if strings.Contains(string(state), form) {
				t.Errorf("the state database contains %q", form)
			}
		}
	}
}

// TestRun_canaryPostgresPasswordStaysOut: a PostgreSQL state that cannot
// be reached, its password a canary in state.url (URL, keyword/value, or
// a URL whose unencoded "/" the parser cannot mask) or in the file
// state.url_file names: no command output, debug logs included, shows it.
func TestRun_canaryPostgresPasswordStaysOut(t *testing.T) {
	t.Parallel()
	const pw = "CANARY-pg-pw/+&3x"
	e := newSystemEnv(t, psa.SystemKaseyaBMS)
	cfgData, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	pgURL := "postgres://psa:" + url.QueryEscape(pw) + "@127.0.0.1:1/psa?connect_timeout=1"
	urlFile := filepath.Join(e.dir, "state-url")
	writeFile(t, urlFile, pgURL+"\n")
	var all strings.Builder
	for _, state := range []string{
		"url: " + strconv.Quote(pgURL),
		"url: " + strconv.Quote("host=127.0.0.1 port=1 dbname=psa password='"+pw+"' connect_timeout=1"),
		"url: " + strconv.Quote("postgres://psa:"+pw+"@127.0.0.1:1/psa"),
		"url_file: " + strconv.Quote(urlFile),
	} {
		writeFile(t, e.cfgPath, string(cfgData)+"state:\n  driver: postgres\n  "+state+"\n")
		for _, cmd := range []string{"check", "sync", "status", "ledger"} {
			_, stdout, stderr := runCmd(t, cmd, "-log.level=debug", "-config.file="+e.cfgPath)
			all.WriteString(stdout + stderr)
		}
	}
	out := all.String()
	if !strings.Contains(out, "connection refused") {
		t.Errorf("no command reports the unreachable database:\n%s", out)
	}
	quoted, _ := json.Marshal(pw)
	for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw), base64.StdEncoding.EncodeToString([]byte(pw)), string(quoted[1 : len(quoted)-1])} {
		if i := strings.Index(out, form); i >= 0 {
			t.Errorf("command output contains %q: …%s…", form, out[max(0, i-200):min(len(out), i+len(form)+50)])
		}
	}
}

// TestRun_echoedSecretsStayOutOfTheRecentReads is TestRun_echoedSecretsStayOut
// for the reads and texts the recent passes added on Autotask: the daily
// read of the mapped services and of the customers' companies, the re-read
// of the contracts written to, and the hint of a refused write (which reads
// the service again), each answered by a PSA that quotes the request. No
// command output (-json, debug logs, status, ledger) and nothing in the
// state database shows the secret, the integration code or the API token.
func TestRun_echoedSecretsStayOutOfTheRecentReads(t *testing.T) {
	t.Parallel()
	const apiToken = "CANARY-api-token-2r7v"
	for _, tt := range []struct {
		name string
		// faults are echoed from the first pass (daily reads) and on the
		// pass after a good one (re-reads, refused writes).
		faults []psatest.Fault
	}{
		{"services", []psatest.Fault{{Path: "/ATServicesRest/V1.0/Services*"}}},
		{"companies", []psatest.Fault{{Path: "/ATServicesRest/V1.0/Companies*"}}},
		{"contracts", []psatest.Fault{{Path: "/ATServicesRest/V1.0/Contracts/*"}, {Path: "/ATServicesRest/V1.0/ContractServices/*"}}},
		{"writes", []psatest.Fault{{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceAdjustments*"},
			{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServices"}, {Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/ContractServices*"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, nil)
			cfgData, err := os.ReadFile(e.cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, e.cfgPath, strings.Replace(string(cfgData), "api_token: test-token", "api_token: "+apiToken, 1))
			cfg := "-config.file=" + e.cfgPath
			var all strings.Builder
			run := func(args ...string) {
				_, stdout, stderr := runCmd(t, append(args, cfg)...)
				all.WriteString(stdout + stderr)
			}
			fault := func() {
				for _, f := range tt.faults {
					f.Status, f.EchoRequest = http.StatusBadRequest, true
					e.sim.AddFault(f)
				}
			}
			usage := func(n int) {
				writeFile(t, filepath.Join(e.dir, "usage.csv"), strings.ReplaceAll(testUsage, ",11\n", ","+strconv.Itoa(n)+"\n"))
			}
			fault()
			run("plan", "-json", "-log.level=debug")
			run("sync", "-json", "-log.level=debug", "-state.allow-empty")
			e.sim.ClearFaults()
			usage(12)
			run("sync", "-state.allow-empty")
			fault()
			usage(30)
			run("plan", "-json", "-log.level=debug")
			run("sync", "-json", "-log.level=debug")
			run("sync", "-log.level=debug")
			run("status", "-json")
			run("ledger", "-json")
			echoed := 0
			for _, r := range e.sim.Requests() {
				if r.Status == http.StatusBadRequest {
					echoed++
				}
			}
			if echoed == 0 || !strings.Contains(all.String(), "[REDACTED]") {
				t.Errorf("%d requests answered with the echo; no command output shows one redacted:\n%s", echoed, all.String())
			}
			_, secret, code := e.sim.Autotask().Credentials()
			checkCanaries(t, all.String(), filepath.Join(e.dir, "state"), []string{secret, code, apiToken})
		})
	}
}
