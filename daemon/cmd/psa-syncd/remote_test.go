package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestRun_remoteTickets: psa-syncd tickets -web.url asks the running
// daemon, which holds the state database, for a ticket pass: a dry run
// prints what tickets -dry-run prints without a daemon and sends the PSA
// nothing that writes; the pass creates the ticket once, and the daemon
// records it as its last ticket pass; a customer that fails gives exit
// code 1, as locally. Without the token nothing runs (401), and dry runs
// are rate-limited like plans.
func TestRun_remoteTickets(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, sim, sop := ticketsSetupToken(t)

	code, localDry, stderr := runCmd(t, "tickets", "-config.file", cfg, "-dry-run")
	if code != 0 || !strings.Contains(localDry, "would create 1 tickets") {
		t.Fatalf("tickets -dry-run without a daemon: exit %d\n%s\n%s", code, localDry, stderr)
	}
	base := startDaemon(t, cfg)
	web := "-web.url=" + base

	sim.ResetRequests()
	for _, args := range [][]string{{"-dry-run"}, {}} {
		code, stdout, stderr := runCmd(t, append([]string{"tickets", web}, args...)...)
		if code != 1 || !strings.Contains(stderr, "401") || stdout != "" {
			t.Errorf("tickets -web.url %v without a token: exit %d\n%s\n%s; want 1 and 401", args, code, stdout, stderr)
		}
	}
	if len(sim.Requests()) != 0 {
		t.Errorf("requests without a token reached the PSA: %+v", sim.Requests())
	}

	code, remoteDry, stderr := runCmd(t, "tickets", web, "-web.token-file", tokenFile, "-dry-run")
	if code != 0 || remoteDry != localDry {
		t.Errorf("tickets -web.url -dry-run: exit %d %s\n%s\nwant what tickets -dry-run prints without a daemon:\n%s", code, stderr, remoteDry, localDry)
	}
	if got := sim.Autotask().Tickets(); len(got) != 0 {
		t.Errorf("tickets after the remote dry run = %+v, want none", got)
	}
	// A dry run reads only: GETs, and Autotask's searches, which are POSTs
	// of a query (the search before a create names the ticket it would file).
	for _, r := range sim.Requests() {
		if r.Method != http.MethodGet && !strings.HasSuffix(r.Path, "/query") {
			t.Errorf("the dry run sent %s %s", r.Method, r.Path)
		}
	}
	if code, _, stderr := runCmd(t, "tickets", web, "-web.token-file", tokenFile, "-dry-run"); code != 1 || !strings.Contains(stderr, "429") {
		t.Errorf("a second dry run at once: exit %d, stderr %q; want 1 and 429", code, stderr)
	}

	code, stdout, stderr := runCmd(t, "tickets", web, "-web.token-file", tokenFile)
	if code != 0 || !strings.Contains(stdout, "CREATED  ADOPTED  CLOSED") || !strings.Contains(stdout, "Acme ("+ticketsAcme+")  1") ||
		!strings.Contains(stdout, "\ncreated 1, adopted 0, closed 0,") {
		t.Fatalf("tickets -web.url: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got := sim.Autotask().Tickets(); len(got) != 1 {
		t.Fatalf("tickets after the remote pass = %+v, want one", got)
	}
	// The daemon recorded the pass as its last ticket pass.
	var out struct {
		Customers []struct {
			CustomerID string `json:"customer_id"`
			Tickets    *struct {
				Result      string `json:"result"`
				Created     int    `json:"created"`
				OpenTickets int    `json:"open_tickets"`
			} `json:"tickets"`
		} `json:"customers"`
	}
	if err := json.Unmarshal([]byte(getBody(t, base+"/api/v1/customers")), &out); err != nil {
		t.Fatal(err)
	}
	recorded := false
	for _, c := range out.Customers {
		if c.CustomerID == ticketsAcme && c.Tickets != nil {
			recorded = c.Tickets.Result == "succeeded" && c.Tickets.Created == 1 && c.Tickets.OpenTickets == 1
		}
	}
	if !recorded {
		t.Errorf("GET /api/v1/customers after the remote pass = %+v; want Acme's ticket pass recorded", out.Customers)
	}
	if code, stdout, _ := runCmd(t, "tickets", web, "-web.token-file", tokenFile); code != 0 || !strings.Contains(stdout, "\ncreated 0,") || len(sim.Autotask().Tickets()) != 1 {
		t.Errorf("second tickets -web.url: exit %d\n%s\nwant nothing new", code, stdout)
	}
	sop.DenyAlerts(ticketsAcme, true)
	if code, stdout, stderr := runCmd(t, "tickets", web, "-web.token-file", tokenFile); code != 1 || !strings.Contains(stdout, "Access is denied") ||
		!strings.Contains(stderr, "Ticket pass failed for a customer") {
		t.Errorf("tickets -web.url with alerts denied: exit %d\n%s\n%s; want 1 naming the refusal", code, stdout, stderr)
	}
}

// hintExample is the command line a "database is locked" hint gives.
var hintExample = regexp.MustCompile("e\\.g\\. `psa-syncd ([^`]+)`")

// Each command that finds the state database locked by psa-syncd run
// suggests a command line that works against the running daemon as given:
// its flags exist, and it carries the token (from web.api_token_file) where
// the endpoint needs it.
func TestRun_lockedHintsWork(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, sim, _ := ticketsSetupToken(t)
	base := startDaemon(t, cfg)
	for _, args := range [][]string{
		{"status"}, {"ledger"}, {"plan"}, {"sync"}, {"tickets"}, {"resolve", "-intent", "1", "-posted"},
		{"backup", "-output", filepath.Join(t.TempDir(), "backup.db")},
	} {
		code, _, stderr := runCmd(t, append([]string{args[0], "-config.file", cfg}, args[1:]...)...)
		// The log line names the command, not psa-syncd starting, which
		// reads as the daemon failing.
		if strings.Contains(stderr, `"Error starting psa-syncd"`) {
			t.Errorf("%v on the locked database logs %q, which reads as the daemon failing to start:\n%s", args, "Error starting psa-syncd", stderr)
		}
		m := hintExample.FindStringSubmatch(stderr)
		if code != 1 || m == nil {
			t.Errorf("%v on the locked database: exit %d, stderr %q; want 1 and an example command line", args, code, stderr)
			continue
		}
		// The daemon listens on the port -web.listen-address 127.0.0.1:0
		// gave it, not at the config's (default) web.listen_address.
		example := strings.Fields(m[1])
		if example[0] != args[0] || !strings.Contains(m[1]+" ", "-web.url "+base+" ") {
			t.Errorf("%v: the hint suggests %q", args, m[1])
			continue
		}
		if args[0] != "status" && args[0] != "ledger" && !strings.Contains(m[1], "-web.token-file "+tokenFile) {
			t.Errorf("%v: the hint suggests %q, without the token file %s", args, m[1], tokenFile)
		}
		code, stdout, stderr := runCmd(t, append(example, args[1:]...)...)
		switch {
		case args[0] == "resolve":
			// No intent 1 is open: the daemon's answer, not a refusal
			// of the flags or the token.
			if code != 1 || !strings.Contains(stderr, "409") {
				t.Errorf("%v: exit %d\n%s\n%s; want 1 and the daemon's 409", example, code, stdout, stderr)
			}
		case code != 0:
			t.Errorf("%v: exit %d\n%s\n%s", example, code, stdout, stderr)
		}
	}
	if got := sim.Autotask().Tickets(); len(got) != 1 {
		t.Errorf("tickets after the suggested tickets command = %+v, want one", got)
	}
}

// ticketsSetupToken is ticketsSetup with an SQLite state database and the
// API token in a file the config names (web.api_token_file). It returns
// the config file, the token file and the simulators.
func ticketsSetupToken(t *testing.T) (string, string, *psatest.Server, *sophostest.Server) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	writeFile(t, tokenFile, "test-token\n")
	cfg, sim, sop := ticketsSetup(t, fmt.Sprintf("state_dir: state\nweb: {api_token_file: %q}", tokenFile))
	return cfg, tokenFile, sim, sop
}

// check and validate, while the daemon runs with export_url: self and
// holds the state database (the shipped systemd and Kubernetes setups),
// read the export from its API on this machine instead of failing: the
// alerts' runbooks tell operators to run psa-syncd check. Without a daemon
// answering at web.listen_address they fail, naming both reasons.
func TestRun_checkAndValidateWhileSelfStoreDaemonRuns(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	dir := filepath.Dir(cfg)
	exp := must(os.ReadFile(filepath.Join(dir, "mappings.json")))
	conf := string(must(os.ReadFile(cfg)))
	if !strings.Contains(conf, "export_path: mappings.json") {
		t.Fatalf("ticketsSetup's config changed:\n%s", conf)
	}
	conf = strings.Replace(conf, "export_path: mappings.json", "export_url: self", 1)
	writeFile(t, cfg, conf)
	base := startDaemon(t, cfg)

	putFirstExport(t, base, tokenFile, exp)

	// The daemon listens where the config says (the test started it on a
	// free port).
	u := must(url.Parse(base))
	listening := strings.Replace(conf, "web: {", "web: {listen_address: "+u.Host+", ", 1)
	if listening == conf {
		t.Fatalf("no web block in the config:\n%s", conf)
	}
	writeFile(t, cfg, listening)
	from := "psa-syncd's state database (export_url: self), read through the running psa-syncd that holds it, at " + base + "/api/v1/export"
	code, stdout, stderr := runCmd(t, "check", "-config.file", cfg)
	if code != 0 || !strings.Contains(stdout, "ok   mapping export: "+from+"\n") {
		t.Errorf("check while the daemon runs: exit %d\nstdout: %s\nstderr: %s\nwant the export read from the daemon", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "validate", "-config.file", cfg)
	if code != 0 || !strings.Contains(stdout, "mapping export "+from+": valid (revision") {
		t.Errorf("validate while the daemon runs: exit %d\nstdout: %s\nstderr: %s\nwant the export read from the daemon", code, stdout, stderr)
	}

	// A listen address in the config where no daemon answers: the
	// daemon recorded where it listens (run -web.listen-address), and
	// that is where the export is read.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := l.Addr().String()
	_ = l.Close()
	writeFile(t, cfg, strings.Replace(conf, "web: {", "web: {listen_address: "+nobody+", ", 1))
	code, stdout, stderr = runCmd(t, "validate", "-config.file", cfg)
	if code != 0 || !strings.Contains(stdout, "mapping export "+from+": valid (revision") {
		t.Errorf("validate with another web.listen_address than the daemon's: exit %d\nstdout: %s\nstderr: %s\nwant the export read where the daemon listens", code, stdout, stderr)
	}
	// Without that record, the command fails and says why it could
	// read neither.
	if err := os.Remove(filepath.Join(dir, "state", daemon.URLFileName)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, "validate", "-config.file", cfg)
	if code != 1 || !strings.Contains(stderr, "is locked by another psa-syncd process, and its export could not be read from its API on this machine either") ||
		!strings.Contains(stderr, nobody) {
		t.Errorf("validate with no daemon at web.listen_address: exit %d, stderr %s; want 1 and both reasons", code, stderr)
	}
}

// TestRun_checkThroughDaemon: the alerts' runbooks send operators to
// psa-syncd check, but the daemon's secrets are often readable by the
// daemon only (systemd credentials in /run/credentials/psa-syncd.service/,
// a Secret in the pod's environment or files): run by hand, check cannot
// load the config. check -web.url asks the daemon to run the tests with
// its own config file and environment, and prints what check prints. The
// config file is read as a reload would read it, so a broken file is
// reported with the key at fault, and neither answer shows a secret.
func TestRun_checkThroughDaemon(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, sim, _ := ticketsSetupToken(t)
	_, secret, _ := sim.Autotask().Credentials()
	conf := string(must(os.ReadFile(cfg)))
	// The secret only in the daemon's environment, as a Secret gives it.
	withoutSecret := strings.Replace(conf, fmt.Sprintf("secret: %q, ", secret), "", 1)
	if withoutSecret == conf {
		t.Fatalf("no autotask secret in ticketsSetup's config:\n%s", conf)
	}
	writeFile(t, cfg, withoutSecret)
	base := startDaemonEnv(t, cfg, append(os.Environ(), "PSA_AUTOTASK_SECRET="+secret))

	code, stdout, stderr := runCmd(t, "check", "-config.file", cfg)
	if code != 1 || !strings.Contains(stdout, "FAIL config") {
		t.Fatalf("check by hand without the daemon's secret: exit %d\n%s\n%s; want the config to fail", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "check", "-web.url", base, "-web.token-file", tokenFile)
	if code != 0 || !strings.Contains(stdout, "ok   config: "+cfg+"\n") || !strings.Contains(stdout, "ok   psa autotask: authenticated") ||
		!strings.Contains(stdout, "ok   source sophos") || !strings.Contains(stdout, "ok   mapping export") {
		t.Errorf("check -web.url: exit %d\nstdout: %s\nstderr: %s\nwant every test passed by the daemon", code, stdout, stderr)
	}

	// -json prints the daemon's report as check -json does without one.
	code, stdout, stderr = runCmd(t, "check", "-web.url", base, "-web.token-file", tokenFile, "-json")
	var out checkJSON
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || code != 0 || !out.OK || out.result("psa autotask") != "ok" ||
		out.detail("config") != cfg || out.result("mapping export") != "ok" {
		t.Errorf("check -web.url -json: exit %d, %v\nstdout: %s\nstderr: %s\nwant every item ok", code, err, stdout, stderr)
	}

	// Without the token nothing is checked.
	code, _, stderr = runCmd(t, "check", "-web.url", base)
	if code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("check -web.url without the token: exit %d, stderr %q; want 1 and the daemon's 401", code, stderr)
	}

	// A wrong secret, and a config file a reload would refuse.
	writeFile(t, cfg, strings.Replace(conf, fmt.Sprintf("secret: %q", secret), `secret: "wrong-secret"`, 1))
	code, stdout, stderr = runCmd(t, "check", "-web.url", base, "-web.token-file", tokenFile)
	if code != 1 || !strings.Contains(stdout, "FAIL psa autotask: authentication") || strings.Contains(stdout+stderr, "wrong-secret") {
		t.Errorf("check -web.url with a wrong secret: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	writeFile(t, cfg, withoutSecret+"schedule: every fortnight\n")
	code, stdout, stderr = runCmd(t, "check", "-web.url", base, "-web.token-file", tokenFile)
	if code != 1 || !strings.Contains(stdout, "FAIL config "+cfg+": ") || !strings.Contains(stdout, "schedule") ||
		strings.Contains(stdout+stderr, secret) {
		t.Errorf("check -web.url with a broken config file: exit %d\nstdout: %s\nstderr: %s; want the key at fault", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "check", "-web.url", base, "-web.token-file", tokenFile, "-json")
	out = checkJSON{}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || code != 1 || out.OK || out.result("config") != "fail" ||
		!strings.Contains(out.detail("config"), "schedule") || strings.Contains(stdout+stderr, secret) {
		t.Errorf("check -web.url -json with a broken config file: exit %d, %v\nstdout: %s\nstderr: %s; want the failed item config", code, err, stdout, stderr)
	}
}

// TestRun_checkThroughDaemonSelfStore: with export_url: self the daemon
// that runs check -web.url's tests reads the export from the state
// database it holds, not through its own listener, which a command on
// the host reaches at another address than the daemon (TLS or basic
// authentication in -web.config.file, -web.listen-address).
func TestRun_checkThroughDaemonSelfStore(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	exp := must(os.ReadFile(filepath.Join(filepath.Dir(cfg), "mappings.json")))
	conf := string(must(os.ReadFile(cfg)))
	writeFile(t, cfg, strings.Replace(conf, "export_path: mappings.json", "export_url: self", 1))
	base := startDaemon(t, cfg)
	putFirstExport(t, base, tokenFile, exp)
	code, stdout, stderr := runCmd(t, "check", "-web.url", base, "-web.token-file", tokenFile)
	if code != 0 || !strings.Contains(stdout, "ok   mapping export: psa-syncd's state database (export_url: self)\n") {
		t.Errorf("check -web.url with export_url: self: exit %d\nstdout: %s\nstderr: %s\nwant the export read from the daemon's state database", code, stdout, stderr)
	}
}

// TestRun_tokenCommandsBehindBasicAuth: a listener with basic_auth_users
// takes every request's basic credentials, so a bearer token never gets
// through it. With a user in -web.url (the user whose hash in the web
// config file is the API token's), the commands that need the token send
// it as that user's basic password: check, the alerts' runbook command,
// works against such a daemon.
func TestRun_tokenCommandsBehindBasicAuth(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(strings.TrimSpace(string(must(os.ReadFile(tokenFile))))), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(t.TempDir(), "web-config.yml")
	writeFile(t, web, fmt.Sprintf("basic_auth_users:\n  automation: %q\n", hash))
	base := startDaemonEnv(t, cfg, nil, "-web.config.file", web)
	withUser := strings.Replace(base, "http://", "http://automation@", 1)
	code, stdout, stderr := runCmd(t, "check", "-web.url", withUser, "-web.token-file", tokenFile)
	if code != 0 || !strings.Contains(stdout, "ok   psa autotask") {
		t.Errorf("check -web.url %s behind basic auth: exit %d\nstdout: %s\nstderr: %s", withUser, code, stdout, stderr)
	}
	code, _, stderr = runCmd(t, "check", "-web.url", base, "-web.token-file", tokenFile)
	if code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("check -web.url without a user behind basic auth: exit %d, stderr %q; want the listener's 401", code, stderr)
	}
	// The listener asks every request for the user's password, reads
	// too: status and ledger take the token as well, and sync, which
	// polls its pass's run, gets past the listener for the whole pass.
	for _, args := range [][]string{{"status"}, {"ledger"}, {"sync"}} {
		code, stdout, stderr := runCmd(t, append(args, "-web.url", withUser, "-web.token-file", tokenFile)...)
		if code != 0 {
			t.Errorf("%s -web.url %s -web.token-file behind basic auth: exit %d\nstdout: %s\nstderr: %s", args[0], withUser, code, stdout, stderr)
		}
	}
}

// Every command that can ask a running daemon takes the same flags for
// it: an operator (or a script) copying -web.url, -web.token-file and the
// TLS files from one command to another gets no usage error.
func TestRun_remoteFlagsOnEveryRemoteCommand(t *testing.T) {
	t.Parallel()
	for _, c := range commands {
		code, stdout, _ := runCmd(t, c.name, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d", c.name, code)
		}
		if !strings.Contains(stdout, "\n  -web.url ") {
			continue
		}
		for _, f := range []string{"-web.token-file", "-web.ca-file", "-web.cert-file", "-web.key-file", "-web.server-name"} {
			if !strings.Contains(stdout, "\n  "+f+" ") {
				t.Errorf("psa-syncd %s has -web.url but no %s:\n%s", c.name, f, stdout)
			}
		}
	}
}

// A -config.file given with -web.url is ignored (the daemon uses its own
// config file): every command with -web.url says so on stderr, naming the
// flag, and goes on (scripts pass both); without -config.file it says
// nothing.
func TestRun_configFileWithWebURLWarns(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	extra := map[string][]string{
		"resolve":     {"-intent", "1", "-posted"},
		"backup":      {"-output", filepath.Join(dir, "backup.db")},
		"set-by-hand": {"-period", "2026-11", "-note", "jane"},
	}
	for _, c := range commands {
		if _, help, _ := runCmd(t, c.name, "--help"); !strings.Contains(help, "\n  -web.url ") {
			continue
		}
		args := append([]string{c.name, "-web.url", srv.URL, "-web.token-file", writeTokenFile(t, dir)}, extra[c.name]...)
		code, _, stderr := runCmd(t, append(args, "-config.file", "/srv/other/psa-syncd.yml")...)
		if code == 2 || !strings.Contains(stderr, "warning: -config.file /srv/other/psa-syncd.yml is ignored with -web.url: the daemon at "+srv.URL+" uses its own config file") {
			t.Errorf("%s -web.url -config.file: exit %d, stderr:\n%s\nwant a warning that -config.file is ignored, and no usage error", c.name, code, stderr)
		}
		if _, _, stderr := runCmd(t, args...); strings.Contains(stderr, "-config.file") {
			t.Errorf("%s -web.url without -config.file mentions it:\n%s", c.name, stderr)
		}
	}
}

// writeTokenFile writes an API token file in dir and returns its path.
func writeTokenFile(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "api-token")
	writeFile(t, path, "test-token\n")
	return path
}

// putFirstExport stores exp as the first export of a daemon at base whose
// export_url is self, with the API token in tokenFile.
func putFirstExport(t *testing.T, base, tokenFile string, exp []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/api/v1/export", bytes.NewReader(exp))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(must(os.ReadFile(tokenFile)))))
	req.Header.Set("If-None-Match", "*")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT /api/v1/export: %s", resp.Status)
	}
}

// The writes awaiting review that status -web.url lists (Kaseya BMS posts
// whose answer was lost) come with the resolve command line that works
// against the same daemon, its -web.url and token included: copied as
// given, it settles the intent.
func TestRun_statusThroughDaemonGivesAWorkingResolve(t *testing.T) {
	t.Parallel()
	e := newSystemEnv(t, psa.SystemKaseyaBMS, psatest.WithFault(psatest.Fault{
		Method: http.MethodPost, Path: "/v2/finance/contracts/recurringservices/*", DropAfterHandling: true, Times: 1}))
	tokenFile := filepath.Join(e.dir, "api-token")
	writeFile(t, tokenFile, "test-token\n")
	conf := string(must(os.ReadFile(e.cfgPath)))
	writeFile(t, e.cfgPath, conf+fmt.Sprintf("web: {api_token_file: %q}\n", tokenFile))
	if code, stdout, _ := runCmd(t, "sync", "-config.file", e.cfgPath, "-state.allow-empty"); code != 1 || !strings.Contains(stdout, "partial") {
		t.Fatalf("sync with a lost answer: exit %d, want 1 and partial\n%s", code, stdout)
	}
	base := startDaemon(t, e.cfgPath)
	code, stdout, stderr := runCmd(t, "status", "-web.url", base, "-web.token-file", tokenFile)
	m := regexp.MustCompile("run `psa-syncd (resolve [^`]*) -intent ID -posted`").FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("status -web.url with an intent awaiting review: exit %d\n%s\n%s\nwant a resolve command line", code, stdout, stderr)
	}
	id := regexp.MustCompile(`(?m)^(\d+)\s+kaseya_bms`).FindStringSubmatch(stdout)
	if id == nil {
		t.Fatalf("status -web.url lists no Kaseya BMS intent:\n%s", stdout)
	}
	args := append(strings.Fields(m[1]), "-intent", id[1], "-posted")
	code, stdout, stderr = runCmd(t, args...)
	if code != 0 || !strings.Contains(stdout, "Intent "+id[1]+" resolved as posted") {
		t.Errorf("psa-syncd %s, as status suggests: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
}

// validate has no -web.url: given one (copied from check or status), the
// usage error names the command that validates through the running
// daemon, which reads the secrets a shell often cannot.
func TestRun_validateWebURLPointsAtCheck(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"-web.url=http://127.0.0.1:9810", "--web.token-file"} {
		code, stdout, stderr := runCmd(t, "validate", flag, "x")
		if code != 2 || stdout != "" || !strings.Contains(stderr, "`psa-syncd check -web.url URL -web.token-file FILE`") {
			t.Errorf("validate %s: exit %d\nstdout: %s\nstderr: %s\nwant 2 and a pointer at check -web.url", flag, code, stdout, stderr)
		}
	}
}

// A command whose -web.url daemon does not answer exits 3, not the 1 of a
// failure the daemon reported (a failed pass, a 401): a job tells a daemon
// that is down (try again) from customers that failed (look at them).
func TestRun_unreachableDaemonExit3(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := "-web.url=http://" + l.Addr().String()
	_ = l.Close()
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	writeFile(t, tokenFile, "test-token\n")
	out := filepath.Join(t.TempDir(), "backup.db")
	for _, args := range [][]string{
		{"status"}, {"ledger"}, {"plan"}, {"plan", "-web.token-file", tokenFile}, {"sync", "-web.token-file", tokenFile},
		{"check", "-web.token-file", tokenFile}, {"tickets", "-web.token-file", tokenFile},
		{"resolve", "-intent", "1", "-posted", "-web.token-file", tokenFile}, {"backup", "-output", out, "-web.token-file", tokenFile},
	} {
		code, stdout, stderr := runCmd(t, append([]string{args[0], web}, args[1:]...)...)
		if code != exitUnreachable || stdout != "" || !strings.Contains(stderr, "connection refused") {
			t.Errorf("%v %s with nothing listening: exit %d\nstdout: %s\nstderr: %s\nwant %d", args, web, code, stdout, stderr, exitUnreachable)
		}
	}
}

// tickets prints a table, and with -json the report in the format of
// POST /api/v1/tickets, the same without a daemon and through one, with
// the same exit code, so that a script reads either.
func TestRun_ticketsJSON(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	code, local, stderr := runCmd(t, "tickets", "-config.file", cfg, "-dry-run", "-json")
	var v daemon.TicketPassView
	if err := json.Unmarshal([]byte(local), &v); code != 0 || err != nil || !v.DryRun || len(v.Customers) != 1 || len(v.Customers[0].WouldCreate) != 1 {
		t.Fatalf("tickets -dry-run -json: exit %d, %v\nstdout: %s\nstderr: %s\nwant a dry run creating one ticket", code, err, local, stderr)
	}
	base := startDaemon(t, cfg)
	code, remote, stderr := runCmd(t, "tickets", "-web.url", base, "-web.token-file", tokenFile, "-dry-run", "-json")
	if code != 0 || remote != local {
		t.Errorf("tickets -web.url -dry-run -json: exit %d\n%s\nstderr: %s\nwant what it prints without a daemon:\n%s", code, remote, stderr, local)
	}
}

// sync -json prints the same object through -web.url as without a daemon
// (customers, plan and run; and the request), so that a script reading the
// plan's changes works with either.
func TestRun_syncJSONThroughDaemonHasThePlan(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	type out struct {
		Customers []json.RawMessage `json:"customers"`
		Plan      *struct {
			RunID   int64             `json:"run_id"`
			Changes []json.RawMessage `json:"changes"`
		} `json:"plan"`
		Run struct {
			ID     int64  `json:"id"`
			Result string `json:"result"`
		} `json:"run"`
	}
	var local, remote out
	code, stdout, stderr := runCmd(t, "sync", "-config.file", cfg, "-json")
	if err := json.Unmarshal([]byte(stdout), &local); code != 0 || err != nil || local.Plan == nil {
		t.Fatalf("sync -json: exit %d, %v\nstdout: %s\nstderr: %s\nwant the pass's plan", code, err, stdout, stderr)
	}
	base := startDaemon(t, cfg)
	code, stdout, stderr = runCmd(t, "sync", "-web.url", base, "-web.token-file", tokenFile, "-json")
	if err := json.Unmarshal([]byte(stdout), &remote); code != 0 || err != nil || remote.Plan == nil || remote.Plan.RunID != remote.Run.ID ||
		len(remote.Plan.Changes) != len(local.Plan.Changes) || len(remote.Customers) != len(local.Customers) {
		t.Errorf("sync -web.url -json: exit %d, %v\nstdout: %s\nstderr: %s\nwant the pass's plan, as without a daemon", code, err, stdout, stderr)
	}
}

// Interrupted while it waits for the daemon's pass (SIGINT, a job's
// timeout), sync -web.url says that the pass goes on in the daemon and
// where to see it, not only "context canceled": run again, it would ask
// for a second pass.
func TestRun_remoteSyncInterruptedSaysThePassGoesOn(t *testing.T) {
	t.Parallel()
	srv := newRunningPassDaemon(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	env := apiTokenEnv("test-token")
	code := run(ctx, []string{"sync", "-web.url", strings.Replace(srv.URL, "http://", "http://ops:hunter2@", 1)}, &stdout, &stderr, env)
	if code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "stopped waiting for sync request q1; the daemon runs its pass all the same") ||
		!strings.Contains(stderr.String(), "psa-syncd status -web.url http://ops@127.0.0.1:") || strings.Contains(stderr.String(), "hunter2") {
		t.Errorf("sync -web.url interrupted: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
}

// sync -web.url -timeout stops waiting for a pass that stays queued or
// running (each poll is answered at once, so no poll times out): exit code
// 3, saying that the pass goes on in the daemon. Without -web.url the flag
// would be ignored: a usage error.
func TestRun_remoteSyncTimeout(t *testing.T) {
	t.Parallel()
	srv := newRunningPassDaemon(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	env := apiTokenEnv("test-token")
	start := time.Now()
	code := run(ctx, []string{"sync", "-web.url", srv.URL, "-timeout", "1s"}, &stdout, &stderr, env)
	if code != exitUnreachable || stdout.Len() != 0 || !strings.Contains(stderr.String(), "sync request q1 did not finish within -timeout 1s; the daemon runs its pass all the same") ||
		ctx.Err() != nil {
		t.Errorf("sync -web.url -timeout 1s: exit %d after %s\nstdout: %s\nstderr: %s\nwant exit %d once the second passed", code, time.Since(start), stdout.String(), stderr.String(), exitUnreachable)
	}
	for _, args := range [][]string{{"-timeout", "1m"}, {"-web.url", srv.URL, "-timeout", "-1s"}} {
		code, stdout, stderr := runCmd(t, append([]string{"sync"}, args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "-timeout") {
			t.Errorf("sync %v: exit %d\nstdout: %s\nstderr: %s\nwant a usage error naming -timeout", args, code, stdout, stderr)
		}
	}
}

// The commands whose exit code says more than "it ran" (a pass that failed
// or was partial, a plan that leaves customers out, a failed check) say so
// in their --help, where a CI job's author looks.
func TestRun_helpSaysWhenTheExitCodeIsOne(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"sync", "plan", "check", "validate", "tickets"} {
		code, stdout, _ := runCmd(t, c, "--help")
		if code != 0 || !strings.Contains(strings.Join(strings.Fields(stdout), " "), "exit code is 1") && !strings.Contains(stdout, "Exits non-zero") {
			t.Errorf("psa-syncd %s --help does not say when the exit code is 1:\n%s", c, stdout)
		}
	}
	code, stdout, _ := runCmd(t, "help")
	if code != 0 || !strings.Contains(stdout, "Exit codes:") || !strings.Contains(stdout, "could not be reached") {
		t.Errorf("psa-syncd help does not list the exit codes:\n%s", stdout)
	}
}

// The command list of `psa-syncd help` starts every summary in one column,
// so a name longer than the others (set-by-hand) does not run into its
// summary.
func TestRun_helpListsCommandsInColumns(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runCmd(t, "help")
	if code != 0 {
		t.Fatalf("psa-syncd help: exit %d", code)
	}
	_, list, _ := strings.Cut(stdout, "Commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	column := -1
	for _, line := range strings.Split(list, "\n") {
		name := strings.Fields(line)[0]
		rest := strings.TrimPrefix(line, "  "+name)
		at := len(line) - len(strings.TrimLeft(rest, " "))
		if strings.TrimLeft(rest, " ") == rest || column >= 0 && at != column {
			t.Errorf("psa-syncd help: the summary of %q starts at column %d, not with the others (%d):\n%s", name, at, column, list)
		}
		if column < 0 {
			column = at
		}
	}
	for _, c := range commands {
		if !strings.Contains(list, "  "+c.name+" ") {
			t.Errorf("psa-syncd help does not list %q:\n%s", c.name, list)
		}
	}
}

// newRunningPassDaemon serves the API of a daemon that queues a sync request
// (q1) and then reports its pass running for ever.
func newRunningPassDaemon(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(runningPassHandler())
	t.Cleanup(srv.Close)
	return srv
}

// runningPassHandler is the API of newRunningPassDaemon.
func runningPassHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/sync":
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"run_id":"q1","status":"queued"}`)
		case r.URL.Path == "/api/v1/runs/q1":
			fmt.Fprint(w, `{"request":{"run_id":"q1","status":"running"},"run":null}`)
		default:
			http.NotFound(w, r)
		}
	})
}

// apiTokenEnv is an environment holding only PSA_SYNCD_API_TOKEN.
func apiTokenEnv(token string) func(string) string {
	return func(k string) string {
		if k == "PSA_SYNCD_API_TOKEN" {
			return token
		}
		return ""
	}
}

// TestDoJSON_answerTooLarge: an answer of the API larger than the most a
// command reads (a plan of a very large tenant) fails with an error that
// names the cap, not as JSON cut short ("unexpected end of JSON input").
func TestDoJSON_answerTooLarge(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"changes":[`))
		_, _ = w.Write(bytes.Repeat([]byte(" "), maxAnswer))
		_, _ = w.Write([]byte(`]}`))
	}))
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v1/plan", nil)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := (&apiClient{}).doJSON(req, &v); err == nil || !strings.Contains(err.Error(), "GET "+srv.URL+"/api/v1/plan: the answer is larger than 64 MiB") {
		t.Errorf("doJSON of an answer over 64 MiB = %v; want an error naming the request and the cap", err)
	}
}

// TestRemote_olderDaemon: the commands and the daemon are upgraded apart.
// A daemon older than the command answers a request it does not have with
// its mux's plain 404, and a body field it does not know with 400 "json:
// unknown field"; the command's error says that the daemon may be older
// and to upgrade it, naming the request or the field.
func TestRemote_olderDaemon(t *testing.T) {
	t.Parallel()
	// An older daemon: POST /api/v1/sync without "units", no /api/v1/tickets,
	// its body errors as psa-syncd wrote them then.
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/sync", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Customer string `json:"customer"`
			Approve  bool   `json:"approve"`
			Service  string `json:"service"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		w.Header().Set("Content-Type", "application/json")
		if err := dec.Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid request body: want {...}: " + err.Error()})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"run_id":"q1","status":"queued"}`)
	})
	mux.HandleFunc("GET /api/v1/runs/q1", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"request":{"run_id":"q1","status":"done","result":"succeeded"},"run":null}`)
	})
	mux.HandleFunc("GET /api/v1/customers", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"customers":[{"source":"sophos","customer_id":"cust-1","customer_name":"Acme","usage_sync":true,"status":"succeeded"}]}`)
	})
	mux.HandleFunc("GET /api/v1/intents", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"intents":[]}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	env := apiTokenEnv("test-token")

	// status goes on without GET /api/v1/tickets/intents, saying why no
	// ticket create is listed.
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"status", "-web.url", srv.URL}, &stdout, &stderr, env)
	if code != 0 || !strings.Contains(stdout.String(), "cust-1") ||
		!strings.Contains(stdout.String(), "This daemon does not list ticket creates (GET /api/v1/tickets/intents): it is a psa-syncd older than this one") {
		t.Errorf("status against a daemon without GET /api/v1/tickets/intents: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code = run(t.Context(), []string{"status", "-web.url", srv.URL, "-json"}, &stdout, &stderr, env)
	if code != 0 || !strings.Contains(stdout.String(), `"ticket_creates": null`) || !strings.Contains(stdout.String(), `"customer_id": "cust-1"`) ||
		!strings.Contains(stderr.String(), "this daemon does not list ticket creates") {
		t.Errorf("status -json against a daemon without GET /api/v1/tickets/intents: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code = run(t.Context(), []string{"sync", "-web.url", srv.URL, "-customer", "cust-1", "-approve", "-service", "30000000", "-units", "2"}, &stdout, &stderr, env)
	if code != 1 || !strings.Contains(stderr.String(), `json: unknown field "units" (the daemon does not know the field "units" that this psa-syncd (`) ||
		!strings.Contains(stderr.String(), "it is an older psa-syncd; upgrade it, or leave that flag out)") {
		t.Errorf("sync -units against a daemon without units: exit %d\nstderr: %s", code, stderr.String())
	}
	// What the older daemon has is taken: only set fields are sent.
	stderr.Reset()
	run(t.Context(), []string{"sync", "-web.url", srv.URL, "-customer", "cust-1", "-approve", "-service", "30000000"}, &stdout, &stderr, env)
	if !strings.Contains(stderr.String(), "Sync request q1 queued") || strings.Contains(stderr.String(), "unknown field") {
		t.Errorf("sync -approve -service against the older daemon was not queued:\n%s", stderr.String())
	}

	stderr.Reset()
	code = run(t.Context(), []string{"tickets", "-web.url", srv.URL}, &stdout, &stderr, env)
	if code != 1 || !strings.Contains(stderr.String(), "404 Not Found: 404 page not found (the daemon has no POST /api/v1/tickets: it may be a psa-syncd older than this one (") ||
		!strings.Contains(stderr.String(), "upgrade the daemon, or run a psa-syncd of its version; or -web.url names something else)") {
		t.Errorf("tickets against a daemon without POST /api/v1/tickets: exit %d\nstderr: %s", code, stderr.String())
	}
}

// A -web.url command refuses an API token (PSA_SYNCD_API_TOKEN or
// -web.token-file) or a password in -web.url shorter than 4 characters,
// which redacting would leave in an error page quoting the request, before
// any request and without showing the value.
func TestRun_remoteShortToken(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "echo: "+r.Header.Get("Authorization"), http.StatusBadGateway)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	writeFile(t, tokenFile, "Zq7\n")
	u, _ := url.Parse(srv.URL)
	withPassword := u.Scheme + "://reader:Zq7@" + u.Host
	for _, tt := range []struct {
		args  []string
		env   map[string]string
		names string
	}{
		{[]string{"check", "-web.url", srv.URL}, map[string]string{"PSA_SYNCD_API_TOKEN": "Zq7"}, "PSA_SYNCD_API_TOKEN: the API token is shorter than 4 characters"},
		{[]string{"sync", "-web.url", srv.URL, "-web.token-file", tokenFile}, nil, "-web.token-file " + tokenFile + ": the API token is shorter than 4 characters"},
		{[]string{"status", "-web.url", withPassword}, nil, "the password in the URL is shorter than 4 characters"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tt.args, &stdout, &stderr, func(k string) string { return tt.env[k] })
		if code == 0 || !strings.Contains(stderr.String(), tt.names) || strings.Contains(stderr.String()+stdout.String(), "Zq7") {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s\nwant an error naming %q without the value", tt.args, code, stdout.String(), stderr.String(), tt.names)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent with a token too short to redact", n)
	}
}

// TestRun_webURLQueryRefused: a -web.url with a query or a fragment (a
// token pasted as ?token=) was used as it was: every request's path went
// into the query, and the connection error quoted the URL, token included.
// It is refused before any request, with the value masked.
func TestRun_webURLQueryRefused(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "not here", http.StatusNotFound)
	}))
	defer srv.Close()
	for _, webURL := range []string{
		srv.URL + "/?token=Hunter2SECRETvalue",
		srv.URL + "/?privatekey=Hunter2SECRETvalue",
		srv.URL + "/#access_token=Hunter2SECRETvalue",
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"status", "-web.url", webURL}, &stdout, &stderr, func(string) string { return "" })
		if code != 2 || !strings.Contains(stderr.String(), "without a query or a fragment") || strings.Contains(stdout.String()+stderr.String(), "Hunter2") {
			t.Errorf("status -web.url %s: exit %d\nstdout: %s\nstderr: %s\nwant the URL refused without the token", webURL, code, stdout.String(), stderr.String())
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent to a -web.url with a query or a fragment", n)
	}
}
