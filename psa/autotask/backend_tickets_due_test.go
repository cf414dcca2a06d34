package autotask_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// ticketCreates returns the bodies and statuses of the ticket create POSTs
// the simulator logged.
func ticketCreates(s *psatest.Server) (bodies []map[string]any, statuses []int) {
	for _, r := range s.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.Path), "/v1.0/tickets") {
			var m map[string]any
			_ = json.Unmarshal(r.Body, &m)
			bodies = append(bodies, m)
			statuses = append(statuses, r.Status)
		}
	}
	return bodies, statuses
}

// A ticket routed to a category is sent without dueDateTime, so that the
// category's defaults set it. Autotask refuses that with 500
// "dueDateTime is required." when the category does not default the due
// date and time (tickets.md §2.2): the refused create was not applied, so
// CreateTicket sends it once more, due a day after it opened, and makes
// exactly one ticket; the category's next tickets carry a due date at once.
// A category that does default it gets no due date from psa-sync.
func TestBackend_CreateTicket_dueDate(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	// An hour ahead of the clock, so that it is the later of the two.
	opened := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	create := func(ref string, category int64) *psa.Ticket {
		t.Helper()
		tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{
			CompanyID: id(company), Title: "alert " + ref, ExternalRef: ref, OpenedAt: opened,
			Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert), CategoryID: id(category)},
		})
		if err != nil {
			t.Fatalf("CreateTicket(%s, category %d): %v", ref, category, err)
		}
		return tk
	}

	create("sc:1", psatest.AutotaskTicketCategoryStandard)
	bodies, statuses := ticketCreates(s)
	if len(bodies) != 2 || statuses[0] != http.StatusInternalServerError || statuses[1] != http.StatusOK ||
		bodies[0]["dueDateTime"] != nil || bodies[1]["dueDateTime"] != opened.Add(24*time.Hour).Format(time.RFC3339) {
		t.Errorf("creates = %v (statuses %v), want one refused without dueDateTime, then one due a day after %s", bodies, statuses, opened)
	}
	if tks := at.Tickets(); len(tks) != 1 || !tks[0].DueDateTime.Equal(opened.Add(24*time.Hour)) {
		t.Errorf("tickets = %+v, want one, due a day after it opened", tks)
	}

	s.ResetRequests()
	create("sc:2", psatest.AutotaskTicketCategoryStandard)
	if bodies, statuses := ticketCreates(s); len(bodies) != 1 || statuses[0] != http.StatusOK || bodies[0]["dueDateTime"] == nil {
		t.Errorf("second create of the category = %v (statuses %v), want one with a due date", bodies, statuses)
	}

	s.ResetRequests()
	create("sc:3", psatest.AutotaskTicketCategorySophosCentral)
	if bodies, statuses := ticketCreates(s); len(bodies) != 1 || statuses[0] != http.StatusOK || bodies[0]["dueDateTime"] != nil {
		t.Errorf("create with a category that defaults the due date = %v (statuses %v), want one without dueDateTime", bodies, statuses)
	}
	tks := at.Tickets()
	if len(tks) != 3 || tks[2].DueDateTime.IsZero() || tks[2].Category != psatest.AutotaskTicketCategorySophosCentral {
		t.Errorf("tickets = %+v, want three, the last due by its category's defaults", tks)
	}
}

// A ticket for an alert raised days before it is filed (psa-syncd was
// down, or ticket sync was just turned on) is due a day after it is filed,
// not overdue from the start.
func TestBackend_CreateTicket_dueDateOfOldAlert(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	company := s.Autotask().AddCompany("Acme")
	before := time.Now().UTC().Truncate(time.Second)
	if _, err := b.CreateTicket(t.Context(), psa.CreateTicketRequest{
		CompanyID: id(company), Title: "old alert", ExternalRef: "sc:old", OpenedAt: before.Add(-72 * time.Hour),
		Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert)},
	}); err != nil {
		t.Fatal(err)
	}
	bodies, _ := ticketCreates(s)
	if len(bodies) != 1 {
		t.Fatalf("creates = %v, want one", bodies)
	}
	due, err := time.Parse(time.RFC3339, fmt.Sprint(bodies[0]["dueDateTime"]))
	if err != nil || due.Before(before.Add(24*time.Hour)) || due.After(time.Now().Add(24*time.Hour)) {
		t.Errorf("dueDateTime = %v (%v), want a day after the create, not after the alert was raised", bodies[0]["dueDateTime"], err)
	}
}
