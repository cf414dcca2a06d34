package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

const ticketsAcme = "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b"

// ticketsSetup writes a config file (with stateYAML for the state
// database) and an export with a ticket routing for Acme, whose Sophos
// tenant has one open alert, and returns the config file's path. opts
// configure the Sophos simulator.
func ticketsSetup(t *testing.T, stateYAML string, opts ...sophostest.Option) (string, *psatest.Server, *sophostest.Server) {
	t.Helper()
	const acme = ticketsAcme
	sim := psatest.Start(t)
	sop := sophostest.Start(t, append([]sophostest.Option{sophostest.WithFixtureFile("../../source/sophostest/testdata/fixture.json")}, opts...)...)
	dir := t.TempDir()
	user, secret, code := sim.Autotask().Credentials()
	cfg := filepath.Join(dir, "psa-syncd.yml")
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg, fmt.Sprintf(`export_path: mappings.json
%s
psa:
  system: autotask
  autotask: {username: %q, secret: %q, integration_code: %q, base_url: %q}
source:
  type: sophos
  sophos: {client_id: %q, client_secret: %q, auth_url: %q, api_url: %q}
`, stateYAML, user, secret, code, sim.AutotaskBaseURL(), sop.ClientID(), sop.ClientSecret(), sop.AuthURL(), sop.APIURL()))
	company := sim.Autotask().AddCompany("Acme")
	contract := sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	doc := export.New(psa.SystemAutotask, strings.TrimPrefix(sim.URL(), "http://"))
	doc.Tickets = &export.Tickets{Enabled: true, QueueID: fmt.Sprint(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: acme, CustomerName: "Acme", CompanyID: fmt.Sprint(company),
		ContractID: fmt.Sprint(contract), TicketSync: true})
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "mappings.json"), string(data))
	sop.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	return cfg, sim, sop
}

func TestRun_tickets(t *testing.T) {
	t.Parallel()
	const acme = ticketsAcme
	// A resolved alert's ticket is noted at the first listing that leaves
	// the alert out.
	cfg, sim, sop := ticketsSetup(t, "state_dir: state\npolicies:\n  ticket_resolve_after: 0s")

	rc, stdout, stderr := runCmd(t, "tickets", "-config.file", cfg, "-dry-run")
	if rc != 0 || !strings.Contains(stdout, "would create 1 tickets and close 0") || len(sim.Autotask().Tickets()) != 0 {
		t.Fatalf("tickets -dry-run: exit %d\nstdout: %s\nstderr: %s", rc, stdout, stderr)
	}
	rc, stdout, stderr = runCmd(t, "tickets", "-config.file", cfg)
	if rc != 0 || !strings.Contains(stdout, "created 1,") || len(sim.Autotask().Tickets()) != 1 {
		t.Fatalf("tickets: exit %d\nstdout: %s\nstderr: %s", rc, stdout, stderr)
	}
	if rc, stdout, _ = runCmd(t, "tickets", "-config.file", cfg); rc != 0 || !strings.Contains(stdout, "created 0,") || len(sim.Autotask().Tickets()) != 1 {
		t.Errorf("second tickets run: exit %d, stdout %s; want nothing new", rc, stdout)
	}
	// The export's on_resolve is "note": a dry run says the resolved
	// alert's ticket would get a note and stay open, not that it would
	// close.
	ticket := sim.Autotask().Tickets()[0]
	sop.ResolveAlert(acme, sop.Alerts(acme)[0].ID)
	rc, stdout, stderr = runCmd(t, "tickets", "-config.file", cfg, "-dry-run")
	noted := regexp.MustCompile(fmt.Sprintf(`\n +note +ticket %d \(resolved; left open\)`, ticket.ID))
	if rc != 0 || !noted.MatchString(stdout) || regexp.MustCompile(`close +ticket`).MatchString(stdout) ||
		!strings.Contains(stdout, "would create 0 tickets and close 0; would add a resolve note to 1 and leave them open") {
		t.Errorf("tickets -dry-run after the alert was resolved: exit %d\nstdout: %s\nstderr: %s; want ticket %d to be noted, not closed", rc, stdout, stderr, ticket.ID)
	}
	sop.DenyAlerts(acme, true)
	// The customer fails without a refused create: the totals say so.
	if rc, stdout, stderr = runCmd(t, "tickets", "-config.file", cfg); rc != 1 || !strings.Contains(stderr, "Access is denied") ||
		!strings.Contains(stdout, "refused 0 creates") || !strings.Contains(stdout, "1 of 1 customers failed: see ERROR above") {
		t.Errorf("tickets with alerts denied: exit %d\nstdout: %s\nstderr: %s; want 1 naming the refusal, and the totals saying a customer failed", rc, stdout, stderr)
	}
}

// On a shared PostgreSQL database, a ticket pass that writes needs the
// leadership: while another psa-syncd is active, tickets refuses and
// creates nothing (a dry run still works).
func TestRun_ticketsStandby(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	cfg, sim, _ := ticketsSetup(t, fmt.Sprintf("state: {driver: postgres, url: %q}", url))
	active, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = active.Close() })
	if l, err := active.TryLead(t.Context(), state.LeaderInfo{Holder: "active.example"}, time.Second); err != nil || l == nil {
		t.Fatalf("TryLead = %v, %v", l, err)
	}
	rc, stdout, stderr := runCmd(t, "tickets", "-config.file", cfg)
	if rc != 1 || !strings.Contains(stderr, "active.example") || len(sim.Autotask().Tickets()) != 0 {
		t.Errorf("tickets beside an active instance: exit %d, %d tickets\nstdout: %s\nstderr: %s; want 1 naming the active one and no ticket",
			rc, len(sim.Autotask().Tickets()), stdout, stderr)
	}
	if rc, stdout, _ := runCmd(t, "tickets", "-config.file", cfg, "-dry-run"); rc != 0 || !strings.Contains(stdout, "would create 1 tickets") {
		t.Errorf("tickets -dry-run beside an active instance: exit %d, stdout %s", rc, stdout)
	}
}

// A pass while the export switches the integration off writes nothing:
// tickets without -dry-run prints it as the dry run it is, and says why.
func TestRun_ticketsIntegrationOff(t *testing.T) {
	t.Parallel()
	cfg, sim, _ := ticketsSetup(t, "state_dir: state")
	path := filepath.Join(filepath.Dir(cfg), "mappings.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := export.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	doc.Integration = &export.Integration{Enabled: false}
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rc, stdout, stderr := runCmd(t, "tickets", "-config.file", cfg)
	if rc != 0 || !strings.HasPrefix(stdout, "dry run: the export switches the integration off") || !strings.Contains(stdout, "WOULD CREATE") ||
		!strings.Contains(stdout, "would create 1 tickets and close 0") || len(sim.Autotask().Tickets()) != 0 {
		t.Errorf("tickets with the integration off: exit %d, %d tickets\nstdout: %s\nstderr: %s; want the dry run's table, saying why",
			rc, len(sim.Autotask().Tickets()), stdout, stderr)
	}
}

// A dry run's table lists the tickets it would reopen, one line each, and
// the totals count them.
func TestPrintTickets_wouldReopen(t *testing.T) {
	t.Parallel()
	rep := tickets.Report{DryRun: true, Customers: []tickets.CustomerReport{{
		Customer:    tickets.Customer{Source: "sophos", CustomerID: ticketsAcme, CustomerName: "Acme"},
		WouldCreate: []string{"sc:alert-1"}, WouldReopen: []string{"7002"},
	}}, WritesHeld: "the state database is a restored backup: confirm with -state.allow-restore"}
	var b strings.Builder
	printTickets(&b, rep, true)
	out := b.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`CUSTOMER +WOULD CREATE +WOULD CLOSE +WOULD NOTE +WOULD REOPEN +ERROR\n`),
		regexp.MustCompile(`\nAcme \(` + ticketsAcme + `\) +1 +0 +0 +1 +-\n`),
		regexp.MustCompile(`\n +reopen +ticket 7002 \(alert raised again\)`),
		regexp.MustCompile(`would create 1 tickets and close 0; would reopen 1 \(alerts raised again\)\n`),
		regexp.MustCompile(`\nA pass that writes is refused: the state database is a restored backup: confirm with -state.allow-restore\n`),
	} {
		if !want.MatchString(out) {
			t.Errorf("dry run table does not match %s:\n%s", want, out)
		}
	}
}

// A pass that stopped writing because the PSA's budget could not be read
// says so, not that the budget reached policies.ticket_budget_reserve.
func TestPrintTickets_budgetUnknown(t *testing.T) {
	t.Parallel()
	rep := tickets.Report{BudgetLimited: true, BudgetUnknown: true, Customers: []tickets.CustomerReport{{
		Customer: tickets.Customer{Source: "sophos", CustomerID: ticketsAcme, CustomerName: "Acme"}, Created: 100, Deferred: 20,
	}}}
	var b strings.Builder
	printTickets(&b, rep, false)
	if out := b.String(); !strings.Contains(out, "the PSA's hourly API budget could not be read") || strings.Contains(out, "budget reached") {
		t.Errorf("a pass whose budget could not be read prints:\n%s\nwant it to say the budget could not be read, not that it reached the reserve", out)
	}
}

// After a switch of PSA, tickets -forget-other-psa deletes the records of
// the other PSA, which every pass otherwise reports: -dry-run lists them
// and keeps them, and the pass (here through the running daemon, with
// -web.url) lists the tickets it forgot; the passes after it report them
// no more.
func TestRun_ticketsForgetOtherPSA(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	dir := filepath.Join(filepath.Dir(cfg), "state")
	db, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := tickets.Record{Source: "sophos", CustomerID: ticketsAcme, AlertKey: "0b6c5a1e-old-alert", Ref: "sc:0b6c5a1e-old-alert", Generation: 1,
		System: string(psa.SystemConnectWise), Instance: "company:acme@na.myconnectwise.net", CompanyID: "250", TicketID: "4711",
		State: tickets.StateOpen, Created: time.Now().Add(-48 * time.Hour), Updated: time.Now().Add(-48 * time.Hour)}
	if err := db.PutTicketRecord(old); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	rc, stdout, stderr := runCmd(t, "tickets", "-config.file", cfg, "-dry-run")
	if rc != 0 || !strings.Contains(stdout, "left alone") || !strings.Contains(stdout, "psa-syncd tickets -forget-other-psa") {
		t.Errorf("tickets -dry-run: exit %d\nstdout: %s\nstderr: %s; want the ConnectWise record reported, naming -forget-other-psa", rc, stdout, stderr)
	}
	rc, stdout, stderr = runCmd(t, "tickets", "-config.file", cfg, "-dry-run", "-forget-other-psa")
	if rc != 0 || !strings.Contains(stdout, "1 ticket records of connectwise") || !strings.Contains(stdout, "would be forgotten") ||
		!strings.Contains(stdout, "ticket 4711 (sc:0b6c5a1e-old-alert)") || strings.Contains(stdout, "left alone") {
		t.Errorf("tickets -dry-run -forget-other-psa: exit %d\nstdout: %s\nstderr: %s; want the ConnectWise ticket it would forget", rc, stdout, stderr)
	}

	web := "-web.url=" + startDaemon(t, cfg)
	rc, stdout, stderr = runCmd(t, "tickets", web, "-web.token-file", tokenFile, "-forget-other-psa")
	if rc != 0 || !strings.Contains(stdout, "1 ticket records of connectwise") || !strings.Contains(stdout, "were forgotten") ||
		!strings.Contains(stdout, "ticket 4711") {
		t.Errorf("tickets -web.url -forget-other-psa: exit %d\nstdout: %s\nstderr: %s; want the ConnectWise ticket forgotten", rc, stdout, stderr)
	}
	rc, stdout, stderr = runCmd(t, "tickets", web, "-web.token-file", tokenFile)
	if rc != 0 || strings.Contains(stdout, "connectwise") {
		t.Errorf("tickets -web.url after forgetting: exit %d\nstdout: %s\nstderr: %s; want the ConnectWise record no longer reported", rc, stdout, stderr)
	}
}

// A ticket create kept open because its search could not be checked on
// another ticket of the customer waits for an operator's answer: resolve
// -ticket REF -not-posted records it, by hand on the state database or
// through the running daemon's API, only while the create is still open;
// -posted is refused, naming why. (audit-doubles5, not fixed 1.)
func TestRun_resolveTicketNotPosted(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	db, err := state.Open(filepath.Join(filepath.Dir(cfg), "state"))
	if err != nil {
		t.Fatal(err)
	}
	open := func(key string) tickets.Record {
		return tickets.Record{Source: "sophos", CustomerID: ticketsAcme, AlertKey: key, Ref: "sc:" + key, Generation: 1,
			System: string(psa.SystemAutotask), CompanyID: "174", State: tickets.StateCreating, Created: time.Now(), Updated: time.Now()}
	}
	held := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for _, key := range []string{"byhand-alert", "api-alert", "settling-alert"} {
		r := open(key)
		if key != "settling-alert" {
			r.HeldSince = held
		}
		if err := db.CreateTicketIntent(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// status lists the open creates; the held ones are marked HELD, each
	// with the command that answers it; the one within settle_time has
	// none, as it settles by itself.
	rc, stdout, stderr := runCmd(t, "status", "-config.file", cfg)
	for _, want := range []string{"Ticket creates whose outcome is not settled", "sc:byhand-alert", ticketsAcme, "HELD since " + fmtTime(held),
		"psa-syncd resolve -ticket sc:byhand-alert -not-posted", "psa-syncd resolve -ticket sc:api-alert -not-posted", "sc:settling-alert", "SETTLING"} {
		if rc != 0 || !strings.Contains(stdout, want) {
			t.Errorf("status: exit %d, want %q\nstdout: %s\nstderr: %s", rc, want, stdout, stderr)
		}
	}
	if strings.Contains(stdout, "-ticket sc:settling-alert") || strings.Count(stdout, "HELD since") != 2 {
		t.Errorf("status: want the create within settle_time neither HELD nor with a command\nstdout: %s", stdout)
	}
	if rc, stdout, _ := runCmd(t, "status", "-config.file", cfg, "-json"); rc != 0 || !strings.Contains(stdout, `"ref": "sc:api-alert"`) ||
		strings.Count(stdout, `"held_since": "`+held.Format(time.RFC3339)+`"`) != 2 {
		t.Errorf("status -json: exit %d, want the ticket creates, two with held_since\n%s", rc, stdout)
	}
	if rc, _, stderr := runCmd(t, "resolve", "-config.file", cfg, "-ticket", "sc:byhand-alert", "-posted"); rc != 2 || !strings.Contains(stderr, "-not-posted only") {
		t.Errorf("resolve -ticket -posted: exit %d, stderr %q; want 2, naming -not-posted", rc, stderr)
	}
	rc, stdout, stderr = runCmd(t, "resolve", "-config.file", cfg, "-ticket", "sc:byhand-alert", "-not-posted", "-note", "jane: not in Autotask")
	if rc != 0 || !strings.Contains(stdout, "Ticket create sc:byhand-alert resolved as not posted") {
		t.Errorf("resolve -ticket -not-posted: exit %d\nstdout: %s\nstderr: %s", rc, stdout, stderr)
	}
	if rc, _, stderr := runCmd(t, "resolve", "-config.file", cfg, "-ticket", "sc:byhand-alert", "-not-posted"); rc != 1 || !strings.Contains(stderr, "is not an open ticket create") {
		t.Errorf("resolving it again: exit %d, stderr %q; want 1, not open", rc, stderr)
	}
	if db, err = state.Open(filepath.Join(filepath.Dir(cfg), "state")); err != nil {
		t.Fatal(err)
	}
	recs, err := db.TicketRecords("sophos", ticketsAcme)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.AlertKey == "byhand-alert" && (r.State != tickets.StateFailed || r.RoutingHash != "" || !strings.Contains(r.Error, "jane: not in Autotask")) {
			t.Errorf("record after resolve = %+v, want failed, to be filed again, with the note", r)
		}
	}

	base := startDaemon(t, cfg)
	web := "-web.url=" + base
	rc, stdout, stderr = runCmd(t, "status", web, "-web.token-file", tokenFile)
	if want := "psa-syncd resolve -web.url " + base + " -web.token-file " + tokenFile + " -ticket sc:api-alert -not-posted"; rc != 0 ||
		!strings.Contains(stdout, want) || strings.Contains(stdout, "sc:byhand-alert") {
		t.Errorf("status -web.url: exit %d, want only the open create, with %q\nstdout: %s\nstderr: %s", rc, want, stdout, stderr)
	}
	if strings.Contains(stdout, "-ticket sc:settling-alert") || strings.Count(stdout, "HELD since") != 1 {
		t.Errorf("status -web.url: want only sc:api-alert HELD, with a command\nstdout: %s", stdout)
	}
	rc, stdout, stderr = runCmd(t, "resolve", web, "-web.token-file", tokenFile, "-ticket", "sc:api-alert", "-not-posted")
	if rc != 0 || !strings.Contains(stdout, "Ticket create sc:api-alert resolved as not posted") {
		t.Errorf("resolve -web.url -ticket -not-posted: exit %d\nstdout: %s\nstderr: %s", rc, stdout, stderr)
	}
	if rc, _, stderr := runCmd(t, "resolve", web, "-web.token-file", tokenFile, "-ticket", "sc:api-alert", "-not-posted"); rc != 1 ||
		!strings.Contains(stderr, "409 Conflict") || !strings.Contains(stderr, "is not an open ticket create") {
		t.Errorf("resolve -web.url again: exit %d, stderr %q; want 1 and the daemon's 409", rc, stderr)
	}
}
