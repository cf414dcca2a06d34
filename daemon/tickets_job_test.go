package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

const ttAcme = "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b"

// ttSetup is a daemon with the Sophos source and an Autotask simulator,
// and an export with a ticket routing when routing is set.
func ttSetup(t *testing.T, routing *export.Tickets, enabled bool) (*Daemon, *psatest.Server, *sophostest.Server) {
	t.Helper()
	sim := psatest.Start(t)
	sop := sophostest.Start(t, sophostest.WithFixtureFile("source/sophostest/testdata/fixture.json"))
	dir := t.TempDir()
	user, secret, code := sim.Autotask().Credentials()
	dtWrite(t, filepath.Join(dir, "psa-syncd.yml"), fmt.Sprintf(`export_path: mappings.json
state_dir: state
psa:
  system: autotask
  autotask:
    username: %q
    secret: %q
    integration_code: %q
    base_url: %q
source:
  type: sophos
  sophos:
    client_id: %q
    client_secret: %q
    auth_url: %q
    api_url: %q
web:
  listen_address: 127.0.0.1:0
`, user, secret, code, sim.AutotaskBaseURL(), sop.ClientID(), sop.ClientSecret(), sop.AuthURL(), sop.APIURL()))
	company := dtID(sim.Autotask().AddCompany("Acme"))
	contract := dtID(sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: sim.Autotask().Companies()[0].ID, Name: "Managed"}))
	doc := export.New(psa.SystemAutotask, strings.TrimPrefix(sim.URL(), "http://"))
	doc.Revision = 1
	doc.Integration = &export.Integration{Enabled: enabled}
	doc.Tickets = routing
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: ttAcme, CustomerName: "Acme", CompanyID: company, ContractID: contract, TicketSync: true})
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a", CustomerName: "Globex", CompanyID: company, ContractID: contract})
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
	return d, sim, sop
}

func TestDaemon_TicketPass(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, sop := ttSetup(t, routing, true)
	a := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	sop.AddAlert("2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a", sophostest.Alert{Severity: "high", Description: "Globex has ticket sync off"})

	rep, err := d.TicketPass(t.Context(), true)
	if err != nil || len(rep.Totals().WouldCreate) != 1 || len(sim.Autotask().Tickets()) != 0 {
		t.Fatalf("dry run = %+v, %v; tickets %+v", rep.Totals(), err, sim.Autotask().Tickets())
	}
	rep, err = d.TicketPass(t.Context(), false)
	if err != nil || rep.Totals().Created != 1 {
		t.Fatalf("TicketPass = %+v, %v", rep.Customers, err)
	}
	got := sim.Autotask().Tickets()
	if len(got) != 1 || got[0].ExternalID != "sc:"+a.ID {
		t.Fatalf("tickets = %+v, want one for Acme's alert", got)
	}
	sop.ResolveAlert(ttAcme, a.ID)
	if rep, err = d.TicketPass(t.Context(), false); err != nil || rep.Totals().Closed != 1 {
		t.Fatalf("pass after resolving = %+v, %v", rep.Totals(), err)
	}
}

func TestDaemon_TicketPass_off(t *testing.T) {
	t.Parallel()
	d, _, _ := ttSetup(t, nil, true)
	if _, err := d.TicketPass(t.Context(), false); !errors.Is(err, ErrNoTicketRouting) {
		t.Errorf("TicketPass without routing: error = %v", err)
	}
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	d, sim, sop := ttSetup(t, routing, false)
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high"})
	rep, err := d.TicketPass(t.Context(), false)
	if err != nil || len(rep.Totals().WouldCreate) != 1 || len(sim.Autotask().Tickets()) != 0 {
		t.Errorf("pass with the integration off = %+v, %v; want a dry run", rep.Totals(), err)
	}
}
