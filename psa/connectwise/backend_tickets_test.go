package connectwise_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func lookupID(t *testing.T, b psa.Ticketer, kind psa.TicketLookupKind, scope, name string) string {
	t.Helper()
	l, err := psa.FindTicketLookup(t.Context(), b, kind, scope, name)
	if err != nil {
		t.Fatalf("FindTicketLookup(%s, %q): %v", kind, name, err)
	}
	return l.ID
}

func TestBackend_tickets(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	cw := s.ConnectWise()
	company := cw.AddCompany("Acme")
	agreement := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "Managed"})

	board := lookupID(t, b, psa.TicketLookupQueue, "", "Alerts")
	req := psa.CreateTicketRequest{
		CompanyID: id(company), ContractID: id(agreement),
		Title:       "[Sophos] High: " + strings.Repeat("Manual cleanup required ", 10),
		Description: "Sophos Central alert\nAlert id: a5ded91c-6575-435c-a6b4-64b94f9048ff",
		ExternalRef: "sc:a5ded91c-6575-435c-a6b4-64b94f9048ff",
		Routing: psa.TicketRouting{
			QueueID:      board,
			PriorityID:   lookupID(t, b, psa.TicketLookupPriority, "", "Priority 2 - High"),
			SourceID:     lookupID(t, b, psa.TicketLookupSource, "", "Alert"),
			TicketTypeID: lookupID(t, b, psa.TicketLookupTicketType, board, "Security"),
		},
	}
	tk, err := b.CreateTicket(ctx, req)
	if err != nil {
		t.Fatalf("CreateTicket: %v", err)
	}
	got := cw.Tickets()
	if len(got) != 1 || got[0].BoardID != psatest.ConnectWiseBoardAlerts || got[0].StatusID != psatest.ConnectWiseStatusNew ||
		got[0].PriorityID != psatest.ConnectWisePriorityHigh || got[0].TypeID != psatest.ConnectWiseTypeSecurity ||
		got[0].AgreementID != agreement || got[0].ExternalXRef != req.ExternalRef || got[0].EmailContact {
		t.Fatalf("simulator tickets = %+v", got)
	}
	if n := len([]rune(got[0].Summary)); n != 100 {
		t.Errorf("summary has %d characters, want it cut to 100", n)
	}
	if notes := cw.TicketNotes(got[0].ID); len(notes) != 1 || !notes[0].Detail || !strings.Contains(notes[0].Text, "Alert id") {
		t.Errorf("initial description notes = %+v", notes)
	}

	found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: id(company), ExternalRef: req.ExternalRef})
	if err != nil || len(found) != 1 || found[0].ID != tk.ID {
		t.Fatalf("FindTickets = %+v, %v; want ticket %s", found, err, tk.ID)
	}
	if n := countRequests(s, http.MethodGet, "/service/tickets"); n == 0 {
		t.Error("FindTickets sent no GET service/tickets")
	}
	for _, r := range s.Requests() {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/service/tickets") && !strings.Contains(r.RawQuery, "externalXRef") {
			t.Errorf("search %s has no externalXRef condition", r.RawQuery)
		}
	}

	resolved := lookupID(t, b, psa.TicketLookupStatus, board, ">Resolved")
	closed, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: resolved, Note: "Alert cleared in Sophos Central.",
		NoteTitle: "Alert resolved"})
	if err != nil {
		t.Fatalf("SetTicketStatus: %v", err)
	}
	if !closed.Closed || !cw.Tickets()[0].Closed {
		t.Errorf("ticket not closed: %+v", closed)
	}
	notes := cw.TicketNotes(got[0].ID)
	if len(notes) != 2 || !notes[1].Internal || notes[1].Text != "Alert resolved\n\nAlert cleared in Sophos Central." {
		t.Errorf("notes = %+v, want an internal note led by its title", notes)
	}

	// A status of another board is refused by ConnectWise.
	_, err = b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: id(psatest.ConnectWiseStatusHDClosed)})
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), "not valid for the ticket's board") {
		t.Errorf("status of another board: error = %v", err)
	}
}

func TestBackend_CreateTicket_lostAnswer(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	company := s.ConnectWise().AddCompany("Acme")
	base, _ := url.Parse(s.ConnectWiseBaseURL())
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: base.Path + "service/tickets", DropAfterHandling: true, Times: 1})
	ref := "sc:0f2a"
	_, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: ref,
		Routing: psa.TicketRouting{QueueID: id(psatest.ConnectWiseBoardAlerts)}})
	if !errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Fatalf("CreateTicket error = %v, want one matching psa.ErrOutcomeUnknown", err)
	}
	if n := countRequests(s, http.MethodPost, "/service/tickets"); n != 1 {
		t.Errorf("%d ticket posts, want 1", n)
	}
	found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: id(company), ExternalRef: ref})
	if err != nil || len(found) != 1 {
		t.Fatalf("FindTickets = %+v, %v; want the one ticket", found, err)
	}
}

func TestBackend_TicketLookups(t *testing.T) {
	t.Parallel()
	b, _, _ := newBackend(t)
	ctx := t.Context()
	if _, err := b.TicketLookups(ctx, psa.TicketLookupStatus, ""); !errors.Is(err, psa.ErrValidation) {
		t.Errorf("statuses without a board: error = %v, want a validation error", err)
	}
	if _, err := b.TicketLookups(ctx, psa.TicketLookupIssueType, ""); !errors.Is(err, psa.ErrNotSupported) {
		t.Errorf("issue types: error = %v, want ErrNotSupported", err)
	}
	statuses, err := b.TicketLookups(ctx, psa.TicketLookupStatus, id(psatest.ConnectWiseBoardAlerts))
	if err != nil || len(statuses) != 4 {
		t.Fatalf("statuses of Alerts = %+v, %v", statuses, err)
	}
	for _, st := range statuses {
		if st.Closed != (st.Name == ">Resolved" || st.Name == "Closed") {
			t.Errorf("status %+v: Closed is %v", st, st.Closed)
		}
	}
	if _, err := b.TicketLookups(ctx, psa.TicketLookupStatus, "999"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("statuses of an unknown board: error = %v, want not found", err)
	}
}

func TestBackend_AddTicketNote_public(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	company := s.ConnectWise().AddCompany("Acme")
	tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: "sc:1",
		Routing: psa.TicketRouting{QueueID: id(psatest.ConnectWiseBoardAlerts)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddTicketNote(ctx, psa.TicketNote{TicketID: tk.ID, Text: "Visible", Public: true}); err != nil {
		t.Fatal(err)
	}
	notes := s.ConnectWise().TicketNotes(parseTicket(t, tk.ID))
	if len(notes) != 1 || !notes[0].Detail || notes[0].Internal {
		t.Errorf("notes = %+v, want one discussion note", notes)
	}
}

func parseTicket(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, r := range s {
		n = n*10 + int64(r-'0')
	}
	return n
}
