package connectwise_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestBackend_SetTicketStatus_ticketOnAnotherBoard: a technician moved the
// ticket from the routing's board (Alerts) to Help Desk. ConnectWise
// refuses a status of another board, so closing or reopening with the
// routing's status failed with 400 every pass. The status of the same
// name on the ticket's board is set instead; the board statuses read for
// it are kept, so the reopen after it reads none again.
func TestBackend_SetTicketStatus_ticketOnAnotherBoard(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	cw := s.ConnectWise()
	company := cw.AddCompany("Acme")
	alerts := id(psatest.ConnectWiseBoardAlerts)
	tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "alert", ExternalRef: "sc:1",
		Routing: psa.TicketRouting{QueueID: alerts}})
	if err != nil {
		t.Fatal(err)
	}
	n := mustInt(t, tk.ID)
	cw.MoveTicket(n, psatest.ConnectWiseBoardHelpDesk, psatest.ConnectWiseStatusHDNew)

	got, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: id(psatest.ConnectWiseStatusClosed), QueueID: alerts, Note: "cleared"})
	if err != nil {
		t.Fatalf("close after the board move: %v", err)
	}
	ct := cw.Tickets()[0]
	if !got.Closed || ct.BoardID != psatest.ConnectWiseBoardHelpDesk || ct.StatusID != psatest.ConnectWiseStatusHDClosed || !ct.Closed {
		t.Errorf("after the close: returned %+v, simulator %+v; want Help Desk's Closed (%d)", got, ct, psatest.ConnectWiseStatusHDClosed)
	}
	if notes := cw.TicketNotes(n); len(notes) != 1 || notes[0].Text != "cleared" {
		t.Errorf("notes = %+v, want the one note", notes)
	}

	s.ResetRequests()
	got, err = b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: id(psatest.ConnectWiseStatusNew), QueueID: alerts})
	if err != nil || got.Closed || cw.Tickets()[0].StatusID != psatest.ConnectWiseStatusHDNew {
		t.Fatalf("reopen after the board move = %+v, %v; want Help Desk's New (%d)", got, err, psatest.ConnectWiseStatusHDNew)
	}
	if n := countRequests(s, http.MethodGet, "/statuses"); n != 0 {
		t.Errorf("status reads for the reopen = %d, want 0 (both boards' statuses were kept from the close)", n)
	}
}

// TestBackend_SetTicketStatus_noSuchStatusOnTheTicketsBoard: the ticket's
// board has no status of the routing's name (">Resolved"), or one that
// does not close tickets. The error says so, naming the boards and the
// statuses there are, and nothing is changed.
func TestBackend_SetTicketStatus_noSuchStatusOnTheTicketsBoard(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	cw := s.ConnectWise()
	company := cw.AddCompany("Acme")
	alerts := id(psatest.ConnectWiseBoardAlerts)
	tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "alert", ExternalRef: "sc:1",
		Routing: psa.TicketRouting{QueueID: alerts}})
	if err != nil {
		t.Fatal(err)
	}
	n := mustInt(t, tk.ID)
	cw.MoveTicket(n, psatest.ConnectWiseBoardHelpDesk, psatest.ConnectWiseStatusHDNew)
	closing := psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: id(psatest.ConnectWiseStatusResolved), QueueID: alerts, Note: "cleared"}

	_, err = b.SetTicketStatus(ctx, closing)
	if !errors.Is(err, psa.ErrValidation) {
		t.Fatalf("close to a status Help Desk lacks: %v, want a validation error", err)
	}
	for _, part := range []string{`board "Help Desk"`, `no status named ">Resolved"`, `"New", "Closed"`, "routing's board 35"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %q", err, part)
		}
	}
	if ct := cw.Tickets()[0]; ct.StatusID != psatest.ConnectWiseStatusHDNew || ct.Closed || len(cw.TicketNotes(n)) != 0 {
		t.Errorf("ticket changed: %+v, notes %+v", ct, cw.TicketNotes(n))
	}

	// A status of that name that does not close tickets is no match.
	cw.AddBoardStatus(psatest.ConnectWiseBoardStatus{BoardID: psatest.ConnectWiseBoardHelpDesk, Name: ">resolved"})
	_, err = b.SetTicketStatus(ctx, closing)
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), "does not close tickets") {
		t.Errorf("close to a Help Desk status that does not close: %v, want a validation error saying so", err)
	}
	if ct := cw.Tickets()[0]; ct.StatusID != psatest.ConnectWiseStatusHDNew {
		t.Errorf("ticket status = %d, want %d (unchanged)", ct.StatusID, psatest.ConnectWiseStatusHDNew)
	}

	// Without the routing's board, the refusal is ConnectWise's own.
	_, err = b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: id(psatest.ConnectWiseStatusResolved)})
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), "not valid for the ticket's board") {
		t.Errorf("without QueueID: %v, want ConnectWise's refusal", err)
	}
}

// TestBackend_SetTicketStatus_refusedOnItsOwnBoard: a ticket still on the
// routing's board whose status is refused keeps ConnectWise's refusal; no
// board status is read.
func TestBackend_SetTicketStatus_refusedOnItsOwnBoard(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	cw := s.ConnectWise()
	company := cw.AddCompany("Acme")
	alerts := id(psatest.ConnectWiseBoardAlerts)
	tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "alert", ExternalRef: "sc:1",
		Routing: psa.TicketRouting{QueueID: alerts}})
	if err != nil {
		t.Fatal(err)
	}
	s.ResetRequests()
	_, err = b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: id(psatest.ConnectWiseStatusHDClosed), QueueID: alerts})
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), "not valid for the ticket's board") {
		t.Errorf("error = %v, want ConnectWise's refusal", err)
	}
	if n := countRequests(s, http.MethodGet, "/statuses"); n != 0 {
		t.Errorf("status reads = %d, want 0", n)
	}
}

// TestBackend_SetTicketStatus_anotherBoardNotApplied: when ConnectWise
// refused the routing's status (the ticket is on another board), the
// status set in its place was never reported as not applied, so a reopen
// it throttled, with the read after it throttled too, was taken as
// unsettled and never sent again. A failed read for the ticket's board, or
// a status of that board throttled at every attempt, sets nothing:
// psa.ErrNotApplied. A server error before the throttling may have set it.
// Throttled, the error says so (psa.ErrRateLimited), wherever it was.
func TestBackend_SetTicketStatus_anotherBoardNotApplied(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		faults     func(ticket string) []psatest.Fault
		notApplied bool
	}{
		{"statusThrottled", func(ticket string) []psatest.Fault {
			return []psatest.Fault{{Method: http.MethodPatch, Path: ticket, BodyContains: fmt.Sprintf(`"id":%d`, psatest.ConnectWiseStatusHDNew),
				Status: http.StatusTooManyRequests}}
		}, true},
		{"ticketReadThrottled", func(ticket string) []psatest.Fault {
			return []psatest.Fault{{Method: http.MethodGet, Path: ticket, Status: http.StatusTooManyRequests}}
		}, true},
		{"statusServerErrorThenThrottled", func(ticket string) []psatest.Fault {
			body := fmt.Sprintf(`"id":%d`, psatest.ConnectWiseStatusHDNew)
			return []psatest.Fault{{Method: http.MethodPatch, Path: ticket, BodyContains: body, Status: http.StatusServiceUnavailable, Times: 1},
				{Method: http.MethodPatch, Path: ticket, BodyContains: body, Status: http.StatusTooManyRequests}}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, s, _ := newBackend(t)
			ctx := t.Context()
			cw := s.ConnectWise()
			company := cw.AddCompany("Acme")
			alerts := id(psatest.ConnectWiseBoardAlerts)
			tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "alert", ExternalRef: "sc:1",
				Routing: psa.TicketRouting{QueueID: alerts}})
			if err != nil {
				t.Fatal(err)
			}
			n := mustInt(t, tk.ID)
			cw.MoveTicket(n, psatest.ConnectWiseBoardHelpDesk, psatest.ConnectWiseStatusHDClosed)
			for _, f := range tc.faults(strings.TrimPrefix(s.ConnectWiseBaseURL(), s.URL()) + "service/tickets/" + tk.ID) {
				s.AddFault(f)
			}

			_, err = b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: id(psatest.ConnectWiseStatusNew), QueueID: alerts,
				Note: "raised again", NoteTitle: "Alert raised again"})
			switch {
			case err == nil:
				t.Fatal("reopen succeeded, want it failed")
			case errors.Is(err, psa.ErrNotApplied) != tc.notApplied:
				t.Errorf("reopen error = %v; taken as not applied: %t, want %t", err, errors.Is(err, psa.ErrNotApplied), tc.notApplied)
			case !errors.Is(err, psa.ErrRateLimited):
				// The ticket engine stops the pass's writes on it.
				t.Errorf("reopen error = %v, want it to say ConnectWise throttled it (psa.ErrRateLimited)", err)
			}
			if !tc.notApplied {
				return
			}
			if ct := cw.Tickets()[0]; ct.StatusID != psatest.ConnectWiseStatusHDClosed || len(cw.TicketNotes(n)) != 0 {
				t.Errorf("ticket changed: %+v, notes %+v", ct, cw.TicketNotes(n))
			}
		})
	}
}
