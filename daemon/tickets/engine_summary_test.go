package tickets_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A technician completes the summary ticket of a storm while its alerts
// are still open. New alerts over the cap must not be noted on that
// closed ticket, where no one sees them: they go into a new summary
// ticket. The closed summary's alerts get no tickets of their own (it is
// neither reopened nor replaced for them); the new summary names them.
func TestEngine_summaryClosedInPSANewStorm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	add := func(desc, raised string) sophostest.Alert {
		return e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: desc, RaisedAt: raised})
	}
	add("storm 0", "2026-11-15T09:00:00.000")
	first := []sophostest.Alert{add("storm 1", "2026-11-15T09:01:00.000"), add("storm 2", "2026-11-15T09:02:00.000")}
	if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Summarised != 2 {
		t.Fatalf("storm pass = %+v, want one ticket and a summary of 2 alerts", tot)
	}
	at := e.psaSim.Autotask()
	var summary psatest.AutotaskTicket
	for _, tk := range at.Tickets() {
		if strings.Contains(tk.Title, "Alert storm") {
			summary = tk
		}
	}
	if summary.ID == 0 {
		t.Fatalf("no summary ticket among %+v", at.Tickets())
	}
	at.SetTicketStatus(summary.ID, "Complete")
	notes := len(at.TicketNotes(summary.ID))

	e.now = e.now.Add(time.Hour)
	add("second storm x", "2026-11-15T10:30:00.000")
	y := add("second storm y", "2026-11-15T10:31:00.000")
	rep := e.pass(eng)
	cr := rep.Customers[0]
	if cr.Err != nil || cr.Created != 1 || cr.Summarised != 1 {
		t.Errorf("second storm pass = %+v, want x's ticket and y summarised", cr)
	}
	if n := len(at.TicketNotes(summary.ID)); n != notes {
		t.Errorf("the completed summary ticket %d got %d more notes, want none", summary.ID, n-notes)
	}
	var newSummary psatest.AutotaskTicket
	for _, tk := range at.Tickets() {
		if strings.Contains(tk.Title, "Alert storm") && tk.ID != summary.ID {
			newSummary = tk
		}
		for _, a := range first {
			if strings.Contains(tk.Description, "Alert id: "+a.ID) {
				t.Errorf("alert %s of the completed summary got a ticket of its own: %d %q", a.ID, tk.ID, tk.Title)
			}
		}
	}
	if newSummary.ID == 0 || newSummary.Status == "Complete" || !strings.Contains(newSummary.Description, y.ID) ||
		!strings.Contains(newSummary.Description, "2 alerts of the earlier summary ticket") {
		t.Fatalf("new summary ticket = %+v, want an open one naming alert %s and the 2 alerts of the completed one", newSummary, y.ID)
	}
	if !strings.Contains(strings.Join(cr.Notices, "\n"), "was closed in the PSA") {
		t.Errorf("notices = %q, want one saying the summary was closed in the PSA", cr.Notices)
	}

	// Nothing more to do: no ticket, no note, no error.
	tickets := len(at.Tickets())
	if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Summarised != 0 || tot.Err != nil || len(at.Tickets()) != tickets {
		t.Errorf("pass after = %+v, %d tickets; want nothing new (%d tickets)", tot, len(at.Tickets()), tickets)
	}
	// The new summary stands for the alerts of the completed one too: it
	// closes when they are all resolved.
	for _, a := range e.sophos.Alerts(acme) {
		e.sophos.ResolveAlert(acme, a.ID)
	}
	if tot := e.pass(eng).Totals(); tot.Closed != 3 || tot.Err != nil {
		t.Errorf("pass after every alert resolved = %+v, want storm 0's, x's and the new summary's tickets closed", tot)
	}
}

// When the search before the new summary's create fails, no create was
// sent: the closed summary's record is put back, so that its alerts stay
// covered (they get no tickets of their own) and the next pass creates
// the new summary.
func TestEngine_summaryClosedInPSASearchFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	for i := range 3 {
		e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "storm " + strconv.Itoa(i), RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)})
	}
	e.pass(eng)
	at := e.psaSim.Autotask()
	for _, tk := range at.Tickets() {
		if strings.Contains(tk.Title, "Alert storm") {
			at.SetTicketStatus(tk.ID, "Complete")
		}
	}
	e.now = e.now.Add(time.Hour)
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "second storm x", RaisedAt: "2026-11-15T10:30:00.000"})
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "second storm y", RaisedAt: "2026-11-15T10:31:00.000"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets/query", BodyContains: `"scs:`,
		Status: http.StatusServiceUnavailable})
	if cr := e.pass(eng).Customers[0]; cr.Err == nil || cr.Created != 1 {
		t.Errorf("pass with the summary search failing = %+v, want x's ticket and the customer failed", cr)
	}
	if intents, err := e.db.TicketIntents(); err != nil || len(intents) != 0 {
		t.Errorf("TicketIntents = %+v, %v; want none: no create was sent", intents, err)
	}
	e.psaSim.ClearFaults()
	// y, alone over nothing now, gets its own ticket; storm 1 and 2 stay
	// with the completed summary.
	for range 2 {
		if cr := e.pass(eng).Customers[0]; cr.Err != nil {
			t.Errorf("pass after the fault cleared = %+v", cr)
		}
	}
	var titles []string
	for _, tk := range at.Tickets() {
		titles = append(titles, tk.Title)
	}
	want := []string{"[Sophos] High: storm 0", "[Sophos] Alert storm: 2 alerts for Acme Corporation", "[Sophos] High: second storm x",
		"[Sophos] High: second storm y"}
	if !slices.Equal(titles, want) {
		t.Errorf("tickets = %q, want %q", titles, want)
	}
}
