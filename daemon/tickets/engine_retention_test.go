package tickets_test

import (
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestEngine_forgetsOldClosedRecords: a pass deletes the records of tickets
// closed longer ago than the retention (and the reopen window) whose alerts
// are not open, so that the records every pass reads for a customer do not
// grow with every alert ever filed; it keeps the records of open tickets,
// of tickets closed recently, and of those whose alert is open; a dry run
// deletes nothing.
func TestEngine_forgetsOldClosedRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	c, err := sophos.NewClient(sophos.WithCredentials(e.sophos.ClientID(), e.sophos.ClientSecret()), sophos.WithAuthURL(e.sophos.AuthURL()),
		sophos.WithBaseURL(e.sophos.APIURL()), sophos.WithBackoff(time.Millisecond, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tickets.New(tickets.Config{System: e.system, PSA: e.backend, Store: e.db, Alerts: tickets.NewSophosAlerts(c),
		Routing: routings[e.system], Retention: 400 * 24 * time.Hour, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	raise := func(desc string) string {
		return e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: desc}).ID
	}
	old, stillOpen, recent, byTech := raise("Malware on PC-1"), raise("Malware on PC-2"), raise("Malware on PC-3"), raise("Malware on PC-4")
	if tot := e.pass(eng).Totals(); tot.Created != 4 || tot.Err != nil {
		t.Fatalf("first pass = %+v, want 4 tickets", tot)
	}
	// A technician closes PC-4's ticket; its alert clears and comes back:
	// that ticket is never reopened or replaced while the alert is open,
	// however long ago it was closed.
	for _, tk := range e.psaSim.Autotask().Tickets() {
		if strings.Contains(tk.Title, "PC-4") {
			e.psaSim.Autotask().SetTicketStatus(tk.ID, "Complete")
		}
	}
	e.sophos.ResolveAlert(acme, old)
	e.sophos.ResolveAlert(acme, byTech)
	if tot := e.pass(eng).Totals(); tot.Closed != 1 {
		t.Fatalf("pass after resolving two alerts = %+v, want one ticket closed, the other found closed in the PSA", tot)
	}
	if r := e.record(byTech); r.State != tickets.StateClosed || r.ClosedBy != tickets.ClosedByPSA {
		t.Fatalf("record of the ticket a technician closed = %+v, want closed in the PSA", r)
	}
	e.sophos.AddAlert(acme, sophostest.Alert{ID: byTech, Severity: "high", Description: "Malware on PC-4"})
	if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Reopened != 0 {
		t.Fatalf("pass after PC-4's alert came back = %+v, want its ticket neither reopened nor replaced", tot)
	}

	e.now = e.now.AddDate(1, 2, 0)
	e.sophos.ResolveAlert(acme, recent)
	if _, err := eng.Pass(t.Context(), e.customers(), true); err != nil {
		t.Fatal(err)
	}
	if records, err := e.db.TicketRecords("sophos", acme); err != nil || len(records) != 4 {
		t.Fatalf("records after a dry run = %d, %v; want all 4 kept", len(records), err)
	}
	if tot := e.pass(eng).Totals(); tot.Closed != 1 || tot.Err != nil {
		t.Fatalf("pass 14 months later = %+v, want the recent alert's ticket closed", tot)
	}
	records, err := e.db.TicketRecords("sophos", acme)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{}
	for _, r := range records {
		kept[r.AlertKey] = r.State
	}
	if _, ok := kept[old]; ok || kept[stillOpen] != tickets.StateOpen || kept[recent] != tickets.StateClosed || kept[byTech] != tickets.StateClosed || len(kept) != 3 {
		t.Errorf("records after a pass 14 months later = %v; want the ticket closed 14 months ago forgotten, the open one, the one just closed "+
			"and the one closed in the PSA while its alert is open kept", kept)
	}
	if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Adopted != 0 || tot.Reopened != 0 {
		t.Errorf("the pass after = %+v, want nothing filed again", tot)
	}
}
