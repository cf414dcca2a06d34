package daemon

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// The daemon's ticket passes know which PSA instance psa-syncd is
// connected to: the ticket record of another Autotask tenant is left alone
// when its alert resolves, and reported.
func TestDaemon_TicketPass_recordOfAnotherInstance(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, _ := ttSetup(t, routing, true)
	otherTenantRecordLeftAlone(t, d, sim, "ci:29683541@webservices5.autotask.net")
}

// An Autotask tenant found by zone discovery is known only after a first
// call: a freshly started psa-syncd learns it before its first ticket
// pass, so that a record of another tenant on the same zone host is told
// apart.
func TestDaemon_TicketPass_zoneDiscoveredInstance(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	sim := psatest.Start(t)
	sop := sophostest.Start(t, sophostest.WithFixtureFile("source/sophostest/testdata/fixture.json"))
	dir := t.TempDir()
	user, secret, code := sim.Autotask().Credentials()
	// As ttSetup, with zone discovery instead of a base URL.
	dtWrite(t, filepath.Join(dir, "psa-syncd.yml"), fmt.Sprintf(`export_path: mappings.json
state_dir: state
psa:
  system: autotask
  autotask:
    username: %q
    secret: %q
    integration_code: %q
    zone_lookup_url: %q
source:
  type: sophos
  sophos:
    client_id: %q
    client_secret: %q
    auth_url: %q
    api_url: %q
web:
  listen_address: 127.0.0.1:0
`, user, secret, code, sim.AutotaskZoneLookupURL(), sop.ClientID(), sop.ClientSecret(), sop.AuthURL(), sop.APIURL()))
	host := strings.TrimPrefix(sim.URL(), "http://")
	doc := export.New(psa.SystemAutotask, host)
	doc.Revision = 1
	doc.Tickets = routing
	company := dtID(sim.Autotask().AddCompany("Acme"))
	contract := dtID(sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: sim.Autotask().Companies()[0].ID, Name: "Managed"}))
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: ttAcme, CustomerName: "Acme", CompanyID: company, ContractID: contract,
		TicketSync: true})
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, filepath.Join(dir, "mappings.json"), string(data))
	c, err := Load(filepath.Join(dir, "psa-syncd.yml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(c, filepath.Join(dir, "psa-syncd.yml"), Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	// The simulator's tenant is CI 1; this record is another tenant's on
	// the same zone host.
	otherTenantRecordLeftAlone(t, d, sim, "ci:29683541@"+host)
}

// otherTenantRecordLeftAlone gives d, before its first ticket pass, the
// open ticket record of instance for an alert that is resolved, naming a
// ticket of the simulator's tenant, and checks that the pass leaves the
// ticket and its record alone and reports the record.
func otherTenantRecordLeftAlone(t *testing.T, d *Daemon, sim *psatest.Server, instance string) {
	t.Helper()
	user, secret, code := sim.Autotask().Credentials()
	c, err := autotask.NewClient(autotask.WithBaseURL(sim.AutotaskBaseURL()), autotask.WithCredentials(user, secret, code))
	if err != nil {
		t.Fatal(err)
	}
	tk, err := autotask.NewBackend(c).CreateTicket(t.Context(), psa.CreateTicketRequest{CompanyID: dtID(sim.Autotask().Companies()[0].ID),
		Title: "Printer on floor 2 jammed", ExternalRef: "manual:1", Routing: psa.TicketRouting{QueueID: dtID(psatest.AutotaskQueueMonitoringAlert)}})
	if err != nil {
		t.Fatal(err)
	}
	// As psa-syncd connected to the other tenant wrote it.
	r := tickets.Record{Source: "sophos", CustomerID: ttAcme, AlertKey: "0b6c5a1e-old-alert", Ref: "sc:0b6c5a1e-old-alert", Generation: 1,
		System: string(psa.SystemAutotask), Instance: instance, CompanyID: "174", TicketID: tk.ID, State: tickets.StateOpen}
	if err := d.db.PutTicketRecord(r); err != nil {
		t.Fatal(err)
	}
	rep, err := d.TicketPass(t.Context(), false)
	if err != nil || rep.Totals().Closed != 0 {
		t.Errorf("ticket pass = %+v, %v; want nothing closed", rep.Totals(), err)
	}
	if got := sim.Autotask().Tickets()[0]; got.Status == "Complete" {
		t.Errorf("ticket %d, named by the other tenant's record, was completed", got.ID)
	}
	if n := rep.Totals().Notices; len(n) != 1 || !strings.Contains(n[0], instance) {
		t.Errorf("notices = %q, want one about the record of %s", n, instance)
	}
	if got, _ := d.db.TicketRecords("sophos", ttAcme); len(got) != 1 || got[0].State != tickets.StateOpen {
		t.Errorf("record after the pass = %+v, want it left open", got)
	}
}

// The open tickets of a customer (its ticket status, psa_sync_open_tickets)
// are those of the PSA psa-syncd is connected to: open records of another
// Autotask tenant or another PSA system, which the pass leaves alone, are
// not counted.
func TestDaemon_openTicketsOfThisPSAOnly(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, sop := ttSetup(t, routing, true)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	for i, r := range []tickets.Record{
		{System: string(psa.SystemAutotask), Instance: "ci:29683541@webservices5.autotask.net", TicketID: "7001"},
		{System: string(psa.SystemConnectWise), Instance: "api-na.myconnectwise.net", TicketID: "7002"},
	} {
		r.Source, r.CustomerID, r.Generation, r.State = "sophos", ttAcme, 1, tickets.StateOpen
		r.AlertKey = fmt.Sprintf("old-alert-%d", i)
		r.Ref = "sc:" + r.AlertKey
		if err := d.db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.recordedTicketPass(t.Context(), d.exp.Load().doc, false); err != nil {
		t.Fatal(err)
	}
	st, err := d.TicketStatuses()
	if s := st[ticketStatusKey("sophos", ttAcme)]; err != nil || s.Created != 1 || s.OpenTickets != 1 {
		t.Errorf("Acme's ticket status = %+v, %v; want 1 created and 1 open (not the other PSAs' records)", s, err)
	}
	if got := testutil.ToFloat64(d.metrics.OpenTickets); got != 1 {
		t.Errorf("psa_sync_open_tickets = %v, want 1", got)
	}
}
