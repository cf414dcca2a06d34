package autotask_test

import (
	"encoding/json"
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
	opened := time.Date(2026, 11, 14, 8, 0, 0, 0, time.UTC)
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
		bodies[0]["dueDateTime"] != nil || bodies[1]["dueDateTime"] != "2026-11-15T08:00:00Z" {
		t.Errorf("creates = %v (statuses %v), want one refused without dueDateTime, then one with 2026-11-15T08:00:00Z", bodies, statuses)
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
