package daemon

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestDaemon_passPrunesHistory: a pass over all customers removes the runs
// older than state.history_retention and empties the bodies of export
// versions beyond state.export_bodies_kept, so that the state database of
// a psa-syncd that runs for a year (a pass every 15 minutes, several
// applies a day storing a 300 KB export each) does not grow without bound.
// A pass limited to one customer leaves that to the next full pass.
func TestDaemon_passPrunesHistory(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{state: "state:\n  history_retention: 720h\n  export_bodies_kept: 2\n"})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	db := e.d.db
	old := time.Now().AddDate(0, -2, 0)
	var oldRuns []int64
	for i := range 3 {
		r, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: old.Add(time.Duration(i) * time.Hour),
			Finished: old.Add(time.Duration(i) * time.Hour), Result: state.RunSuccess})
		if err != nil {
			t.Fatal(err)
		}
		oldRuns = append(oldRuns, r.ID)
	}
	for i := range 5 {
		if err := db.PutExport(state.ExportVersion{Revision: int64(i + 1), At: old}, fmt.Appendf(nil, "export %d", i+1)); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual, Customer: "cust-acme"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.Run(oldRuns[0]); err != nil || !ok {
		t.Fatalf("run %d after a pass limited to one customer: found %v, %v; want it kept until a full pass", oldRuns[0], ok, err)
	}

	res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range oldRuns {
		if _, ok, err := db.Run(id); err != nil || ok {
			t.Errorf("run %d, two months old, after a full pass with history_retention 720h: found %v, %v; want it removed", id, ok, err)
		}
	}
	if _, ok, err := db.Run(res.Run.ID); err != nil || !ok {
		t.Errorf("the pass's own run %d: found %v, %v; want it kept", res.Run.ID, ok, err)
	}
	h, err := db.ExportHistory(0)
	if err != nil || len(h) != 5 {
		t.Fatalf("export history after the pass = %d versions, %v; want all 5 records kept", len(h), err)
	}
	bodies, err := db.PruneHistory(t.Context(), state.Retention{ExportBodies: 2})
	if err != nil || bodies.ExportBodies != 0 {
		t.Errorf("export bodies left beyond the newest 2 after the pass: %+v, %v; want none", bodies, err)
	}
	if _, body, err := db.CurrentExport(); err != nil || string(body) != "export 5" {
		t.Errorf("current export after the pass = %q, %v; want export 5", body, err)
	}
}

// TestDaemon_ticketPassForgetsOldClosedTickets: ticket passes remove the
// records of tickets closed longer ago than state.history_retention whose
// alerts are not open, so that what each pass reads does not grow with
// every alert ever filed at an MSP.
func TestDaemon_ticketPassForgetsOldClosedTickets(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, _, sop := ttSetupOptions(t, routing, true, "state:\n  history_retention: 720h\npolicies:\n  ticket_resolve_after: 0s\n", Options{Now: clock})
	a := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
		t.Fatalf("TicketPass = %+v, %v", rep.Customers, err)
	}
	sop.ResolveAlert(ttAcme, a.ID)
	if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Closed != 1 {
		t.Fatalf("pass after resolving = %+v, %v", rep.Totals(), err)
	}
	mu.Lock()
	now = now.AddDate(0, 2, 0)
	mu.Unlock()
	if _, err := d.TicketPass(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if records, err := d.db.TicketRecords("sophos", ttAcme); err != nil || len(records) != 0 {
		t.Errorf("ticket records two months after the ticket closed, with history_retention 720h = %+v, %v; want none", records, err)
	}
}
