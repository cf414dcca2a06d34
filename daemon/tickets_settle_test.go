package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// The ticket scheduler runs one more pass when a pass left a write for
// policies.settle_time (a resolve note whose answer was lost, held after
// a restart or a takeover), rather than leaving it for the schedule's next
// time, here a day later.
func TestDaemon_ticketLoopSettlesHeldWrites(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, Schedule: "every 24h", QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	d, sim, sop := ttSetupWith(t, routing, true, "policies:\n  settle_time: 1s\n  ticket_resolve_after: 0s\n")
	if err := d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	alert := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
		t.Fatalf("first pass = %+v, %v; want the ticket created", rep.Totals(), err)
	}
	ticket := sim.Autotask().Tickets()[0].ID
	sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d/Notes", ticket), DropAfterHandling: true, Times: 1})
	sop.ResolveAlert(ttAcme, alert.ID)
	if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Noted != 0 {
		t.Fatalf("pass whose note's answer is lost = %+v, %v", rep.Totals(), err)
	}

	// The schedule's last pass was a day ago: the loop runs one at once,
	// which leaves the note for settle_time, and one more once it passed.
	if err := d.db.PutSnapshot(snapshotTickets, ticketRecord{LastPass: time.Now().Add(-25 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.ticketLoop(ctx, ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		st, err := d.TicketStatuses()
		if err != nil {
			t.Fatal(err)
		}
		if s := st[ticketStatusKey("sophos", ttAcme)]; s.Updated == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ticket pass settled the note a minute after settle_time (1s); ticket status %+v", st[ticketStatusKey("sophos", ttAcme)])
		}
	}
	n := 0
	for _, note := range sim.Autotask().TicketNotes(ticket) {
		if strings.Contains(note.Description, "resolved in Sophos Central") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d resolve notes on the ticket, want 1", n)
	}
}

// A ticket pass requested through the API that leaves a write for
// policies.settle_time (a resolve note whose answer was lost just before)
// has the ticket scheduler run one more pass then, as a scheduled pass
// does, rather than leave the note for the schedule's next time, a day
// later.
func TestDaemon_ticketsAPIPassSettlesHeldWrites(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, Schedule: "every 24h", QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	// Appended to the config's web section. settle_time is long enough
	// that the API's pass, right after the lost note, leaves it.
	d, sim, sop := ttSetupWith(t, routing, true, "  api_token: "+ttToken+"\npolicies:\n  settle_time: 5s\n  ticket_resolve_after: 0s\n")
	if err := d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	alert := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
		t.Fatalf("first pass = %+v, %v; want the ticket created", rep.Totals(), err)
	}
	// The schedule's last pass was just now: its next is a day away.
	if err := d.db.PutSnapshot(snapshotTickets, ticketRecord{LastPass: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.ticketLoop(ctx, ctx) }()
	defer func() { cancel(); <-done }()

	ticket := sim.Autotask().Tickets()[0].ID
	sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d/Notes", ticket), DropAfterHandling: true, Times: 1})
	sop.ResolveAlert(ttAcme, alert.ID)
	if code, answer, _ := ttPost(t, srv.URL, ttToken, `{"dry_run": false}`); code != http.StatusOK {
		t.Fatalf("pass whose note's answer is lost = %d %s", code, answer)
	}
	code, answer, v := ttPost(t, srv.URL, ttToken, `{"dry_run": false}`)
	if code != http.StatusOK || len(v.Customers) != 1 || v.Customers[0].Noted != 0 {
		t.Fatalf("pass through the API right after = %d %s; want the note left for settle_time", code, answer)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := d.TicketStatuses()
		if err != nil {
			t.Fatal(err)
		}
		if s := st[ticketStatusKey("sophos", ttAcme)]; s.Updated == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ticket pass settled the note 25 s after settle_time (5s); ticket status %+v", st[ticketStatusKey("sophos", ttAcme)])
		}
	}
	n := 0
	for _, note := range sim.Autotask().TicketNotes(ticket) {
		if strings.Contains(note.Description, "resolved in Sophos Central") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d resolve notes on the ticket, want 1", n)
	}
}
