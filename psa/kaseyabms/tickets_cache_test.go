package kaseyabms_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A ticket pass with many alerts reads BMS's ticket statuses, note types,
// default priority and an account's locations once, not for every create,
// close or note: BMS allows each endpoint 1,500 calls an hour.
func TestTickets_lookupsKept(t *testing.T) {
	t.Parallel()
	b, srv := newTicketBackend(t, http.DefaultTransport)
	k := srv.KaseyaBMS()
	ctx := t.Context()
	acme := k.AddAccount("Acme")
	routing := psa.TicketRouting{
		StatusID:     strconv.Itoa(psatest.KaseyaBMSStatusNew),
		SourceID:     strconv.Itoa(psatest.KaseyaBMSSourceMonitoring),
		TicketTypeID: strconv.Itoa(psatest.KaseyaBMSTypeAlert),
	}
	before := len(srv.Requests())
	const n = 5
	for i := range n {
		tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: strconv.Itoa(acme), Title: fmt.Sprintf("Alert %d", i),
			Description: "Sophos Central alert", ExternalRef: fmt.Sprintf("sc:alert-%d", i), Routing: routing})
		if err != nil {
			t.Fatalf("CreateTicket %d: %v", i, err)
		}
		if err := b.AddTicketNote(ctx, psa.TicketNote{TicketID: tk.ID, Text: "More alerts."}); err != nil {
			t.Fatalf("AddTicketNote %d: %v", i, err)
		}
		if _, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: strconv.Itoa(psatest.KaseyaBMSStatusCompleted),
			Note: "Alert resolved."}); err != nil {
			t.Fatalf("SetTicketStatus %d: %v", i, err)
		}
	}
	lookups := map[string]int{}
	for _, r := range srv.Requests()[before:] {
		if r.Method == http.MethodGet && (strings.HasSuffix(r.Path, "/lookup") || strings.Contains(r.Path, "/system/lookup/")) {
			lookups[r.Path]++
		}
	}
	if len(lookups) == 0 {
		t.Fatal("no lookup was read")
	}
	for path, calls := range lookups {
		if calls != 1 {
			t.Errorf("%s read %d times for %d tickets, want once", path, calls, n)
		}
	}
	if tks := k.Tickets(); len(tks) != n || tks[0].PriorityID == 0 || tks[0].LocationID == 0 || tks[0].CompletedDate == nil {
		t.Errorf("tickets = %+v, want %d closed ones with the default priority and the main location", tks, n)
	}

	// A status id not among the kept ones (one added in BMS since) is
	// looked for in the statuses read again.
	before = len(srv.Requests())
	_, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: strconv.Itoa(k.Tickets()[0].ID), StatusID: "999"})
	if !errors.Is(err, psa.ErrNotFound) || !strings.Contains(err.Error(), "999") {
		t.Errorf("SetTicketStatus(unknown status) = %v, want not found naming the id", err)
	}
	reads := 0
	for _, r := range srv.Requests()[before:] {
		if strings.HasSuffix(r.Path, "/statuses/lookup") {
			reads++
		}
	}
	if reads != 1 {
		t.Errorf("statuses read %d times for an unknown status id, want once", reads)
	}
}
