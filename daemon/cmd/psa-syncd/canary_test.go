package main

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestRun_canarySecretsStayOut is TestRun_echoedSecretsStayOut for
// ConnectWise and Kaseya BMS, with every credential a distinct canary:
// against a PSA that quotes each request (headers and body) in its errors,
// when authenticating, on reads and then on writes, no command output (debug logs and -json
// included) and nothing in the state database shows a credential, as is
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
			state := stateFiles(t, filepath.Join(e.dir, "state"))
			for _, s := range append(tt.secrets, apiToken) {
				for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s), base64.StdEncoding.EncodeToString([]byte(s))} {
					if i := strings.Index(all.String(), form); i >= 0 {
						t.Errorf("command output contains %q: …%s…", form, all.String()[max(0, i-200):min(all.Len(), i+len(form)+50)])
					}
					if strings.Contains(string(state), form) {
						t.Errorf("the state database contains %q", form)
					}
				}
			}
		})
	}
}
