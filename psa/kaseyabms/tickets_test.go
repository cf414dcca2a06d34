package kaseyabms_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// ticketSpecFile is the vendor's OpenAPI document, kept in testdata.
const ticketSpecFile = "testdata/kaseya-bms-v2-openapi.json"

// ticketPaths are the document's paths the ticket client uses.
var ticketPaths = map[string]bool{
	"/v2/security/authenticate":                                true,
	"/v2/servicedesk/tickets":                                  true,
	"/v2/servicedesk/tickets/{ticketId}":                       true,
	"/v2/servicedesk/tickets/search":                           true,
	"/v2/servicedesk/tickets/{ticketId}/resolve":               true,
	"/v2/servicedesk/tickets/{ticketId}/notes":                 true,
	"/v2/system/queues/lookup":                                 true,
	"/v2/system/priorities/lookup":                             true,
	"/v2/system/statuses/lookup":                               true,
	"/v2/system/issuetypes/lookup":                             true,
	"/v2/system/issuetypes/{issueTypeId}/issuesubtypes/lookup": true,
	"/v2/system/lookup/{tableName}":                            true,
	"/v2/crm/accounts/{accountId}/locations/lookup":            true,
}

var (
	ticketSpecOnce   sync.Once
	ticketSpecRouter routers.Router
	ticketSpecErr    error
)

func loadTicketSpec(t *testing.T) routers.Router {
	t.Helper()
	ticketSpecOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromFile(ticketSpecFile)
		if err != nil {
			ticketSpecErr = err
			return
		}
		// As in TestConformance, only the paths used are kept: the
		// document as a whole is not valid OpenAPI 3.0.
		for path := range doc.Paths.Map() {
			if !ticketPaths[path] {
				doc.Paths.Delete(path)
			}
		}
		ticketSpecRouter, ticketSpecErr = legacy.NewRouter(doc)
	})
	if ticketSpecErr != nil {
		t.Fatal(ticketSpecErr)
	}
	return ticketSpecRouter
}

func newTicketBackend(t *testing.T, rt http.RoundTripper) (*kaseyabms.Backend, *psatest.Server) {
	t.Helper()
	srv := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS))
	c, err := kaseyabms.NewClient(
		kaseyabms.WithBaseURL(srv.KaseyaBMSBaseURL()),
		kaseyabms.WithCredentials(psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
		kaseyabms.WithBackoff(time.Millisecond, 2*time.Millisecond),
		kaseyabms.WithHTTPClient(&http.Client{Transport: rt}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return kaseyabms.NewBackend(c), srv
}

func lookupID(t *testing.T, b psa.Ticketer, kind psa.TicketLookupKind, scope, name string) string {
	t.Helper()
	l, err := psa.FindTicketLookup(t.Context(), b, kind, scope, name)
	if err != nil {
		t.Fatalf("FindTicketLookup(%s, %q): %v", kind, name, err)
	}
	return l.ID
}

// TestTickets_conformance runs a ticket's life through the backend and
// validates every request and every 200 answer against the vendor's
// document.
func TestTickets_conformance(t *testing.T) {
	t.Parallel()
	router := loadTicketSpec(t)
	rec := &recorder{next: http.DefaultTransport}
	b, srv := newTicketBackend(t, rec)
	k := srv.KaseyaBMS()
	ctx := t.Context()
	acme := k.AddAccount("Acme")
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Managed"})

	ref := "sc:a5ded91c-6575-435c-a6b4-64b94f9048ff"
	security := lookupID(t, b, psa.TicketLookupIssueType, "", "Security")
	req := psa.CreateTicketRequest{
		CompanyID: strconv.Itoa(acme), ContractID: strconv.Itoa(contract),
		Title: "[Sophos] High: Manual cleanup required on PC-042", Description: "Sophos Central alert",
		ExternalRef: ref,
		Routing: psa.TicketRouting{
			QueueID:        lookupID(t, b, psa.TicketLookupQueue, "", "Security Alerts"),
			StatusID:       lookupID(t, b, psa.TicketLookupStatus, "", "New"),
			PriorityID:     lookupID(t, b, psa.TicketLookupPriority, "", "High"),
			SourceID:       lookupID(t, b, psa.TicketLookupSource, "", "Monitoring"),
			TicketTypeID:   lookupID(t, b, psa.TicketLookupTicketType, "", "Alert"),
			IssueTypeID:    security,
			SubIssueTypeID: lookupID(t, b, psa.TicketLookupSubIssueType, security, "Malware"),
		},
	}
	tk, err := b.CreateTicket(ctx, req)
	if err != nil {
		t.Fatalf("CreateTicket: %v", err)
	}
	got := k.Tickets()
	if len(got) != 1 || got[0].LocationID == 0 || got[0].ContractID != contract || got[0].PriorityID != psatest.KaseyaBMSPriorityHigh ||
		got[0].SubIssueTypeID != psatest.KaseyaBMSSubIssueTypeMalware || !strings.HasSuffix(got[0].Title, " "+psa.RefToken(ref)) ||
		!strings.Contains(got[0].Details, "External reference: "+ref) {
		t.Fatalf("simulator tickets = %+v", got)
	}
	if g, err := b.GetTicket(ctx, tk.ID); err != nil || g.ExternalRef != ref || g.Closed {
		t.Fatalf("GetTicket = %+v, %v", g, err)
	}
	found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: strconv.Itoa(acme), ExternalRef: ref})
	if err != nil || len(found) != 1 || found[0].ID != tk.ID || found[0].ExternalRef != ref {
		t.Fatalf("FindTickets = %+v, %v", found, err)
	}
	if found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: strconv.Itoa(acme), ExternalRef: "sc:other"}); err != nil || len(found) != 0 {
		t.Fatalf("FindTickets(other ref) = %+v, %v; want none", found, err)
	}
	if err := b.AddTicketNote(ctx, psa.TicketNote{TicketID: tk.ID, Text: "Seen again."}); err != nil {
		t.Fatalf("AddTicketNote: %v", err)
	}
	inProgress := lookupID(t, b, psa.TicketLookupStatus, "", "In Progress")
	if _, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: inProgress, Note: "Alert raised again.",
		NoteTitle: "Raised again", NoteTypeID: "2"}); err != nil {
		t.Fatalf("SetTicketStatus(in progress): %v", err)
	}
	completed := lookupID(t, b, psa.TicketLookupStatus, "", "Completed")
	closed, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: completed, Note: "Alert cleared in Sophos Central."})
	if err != nil || !closed.Closed {
		t.Fatalf("SetTicketStatus(completed) = %+v, %v", closed, err)
	}
	notes := k.TicketNotes(got[0].ID)
	if len(notes) != 3 || !notes[0].IsInternal || notes[0].Emailed || notes[2].Details != "Alert cleared in Sophos Central." || !notes[2].IsInternal {
		t.Errorf("notes = %+v, want three internal notes, nobody mailed", notes)
	}
	if len(notes) == 3 && (notes[1].Details != "Raised again\n\nAlert raised again." || notes[1].TypeID != 2) {
		t.Errorf("note with the status = %+v, want the update's title, text and note type 2", notes[1])
	}
	if _, _, err := b.Client().Tickets.ListNotes(ctx, got[0].ID); err != nil {
		t.Fatalf("ListNotes: %v", err)
	}
	if _, err := b.TicketLookups(ctx, psa.TicketLookupNoteType, ""); err != nil {
		t.Fatal(err)
	}

	covered := map[string]bool{}
	for i, ex := range rec.log {
		what := fmt.Sprintf("#%d %s %s", i, ex.req.Method, ex.req.URL.Path)
		route, params, err := findRoute(router, ex.req)
		if err != nil {
			t.Errorf("%s: not in the vendor's document: %v", what, err)
			continue
		}
		covered[ex.req.Method+" "+route.Path] = true
		in := requestInput(ex, route, params)
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s: request does not conform: %v\nbody: %s", what, err, ex.reqBody)
		}
		if names := undeclaredQuery(route, ex.req.URL); len(names) > 0 {
			t.Errorf("%s: query parameters %q are not in the document", what, names)
		}
		if ex.status != http.StatusOK {
			t.Errorf("%s: status %d: %s", what, ex.status, ex.respBody)
			continue
		}
		body, err := toSpecCasing(ex.respBody, responseSchema(route))
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.status, Header: ex.header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s: response does not conform: %v\nbody: %s", what, err, body)
		}
	}
	for _, op := range []string{
		"POST /v2/servicedesk/tickets", "GET /v2/servicedesk/tickets/{ticketId}", "PATCH /v2/servicedesk/tickets/{ticketId}",
		"POST /v2/servicedesk/tickets/search", "POST /v2/servicedesk/tickets/{ticketId}/resolve",
		"GET /v2/servicedesk/tickets/{ticketId}/notes", "POST /v2/servicedesk/tickets/{ticketId}/notes",
		"GET /v2/system/queues/lookup", "GET /v2/system/priorities/lookup", "GET /v2/system/statuses/lookup",
		"GET /v2/system/issuetypes/lookup", "GET /v2/system/issuetypes/{issueTypeId}/issuesubtypes/lookup",
		"GET /v2/system/lookup/{tableName}", "GET /v2/crm/accounts/{accountId}/locations/lookup",
	} {
		if !covered[op] {
			t.Errorf("operation %s was not exercised", op)
		}
	}
}

func TestTickets_lostAnswer(t *testing.T) {
	t.Parallel()
	b, srv := newTicketBackend(t, http.DefaultTransport)
	ctx := t.Context()
	acme := srv.KaseyaBMS().AddAccount("Acme")
	srv.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/v2/servicedesk/tickets", DropAfterHandling: true, Times: 1})
	ref := "sc:1"
	_, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: strconv.Itoa(acme), Title: "t", ExternalRef: ref,
		Routing: psa.TicketRouting{StatusID: "1", TicketTypeID: "2", SourceID: "9"}})
	if !errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Fatalf("CreateTicket error = %v, want one matching psa.ErrOutcomeUnknown", err)
	}
	found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: strconv.Itoa(acme), ExternalRef: ref})
	if err != nil || len(found) != 1 {
		t.Fatalf("FindTickets = %+v, %v; want the one ticket", found, err)
	}
	if n := len(srv.KaseyaBMS().Tickets()); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
}

// TestTickets_FindTickets_pagesFromZero: on a tenant whose ticket search
// counts pages from 0, the one ticket with the reference is on page 0 and
// page 1 is empty. FindTickets must still find it: an empty answer would
// make the caller open the ticket a second time.
func TestTickets_FindTickets_pagesFromZero(t *testing.T) {
	t.Parallel()
	b, srv := newTicketBackend(t, http.DefaultTransport)
	ctx := t.Context()
	acme := strconv.Itoa(srv.KaseyaBMS().AddAccount("Acme"))
	ref := "sc:7"
	created, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: acme, Title: "t", ExternalRef: ref,
		Routing: psa.TicketRouting{StatusID: "1", TicketTypeID: "2", SourceID: "9"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.KaseyaBMS().SetPaging(psatest.KaseyaBMSPagesFromZero)
	found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: acme, ExternalRef: ref})
	if err != nil || len(found) != 1 || found[0].ID != created.ID {
		t.Errorf("FindTickets = %+v, %v; want ticket %s", found, err, created.ID)
	}
}

func TestTickets_invalid(t *testing.T) {
	t.Parallel()
	b, srv := newTicketBackend(t, http.DefaultTransport)
	ctx := t.Context()
	acme := strconv.Itoa(srv.KaseyaBMS().AddAccount("Acme"))
	tests := []struct {
		name string
		req  psa.CreateTicketRequest
		want string
	}{
		{"no type or source", psa.CreateTicketRequest{CompanyID: acme, Title: "t", ExternalRef: "sc:1",
			Routing: psa.TicketRouting{StatusID: "1"}}, "need a ticket type, source id"},
		{"unknown status", psa.CreateTicketRequest{CompanyID: acme, Title: "t", ExternalRef: "sc:1",
			Routing: psa.TicketRouting{StatusID: "99", TicketTypeID: "2", SourceID: "9"}}, "StatusId 99 is not a valid status"},
		{"sub-issue of another issue type", psa.CreateTicketRequest{CompanyID: acme, Title: "t", ExternalRef: "sc:1",
			Routing: psa.TicketRouting{StatusID: "1", TicketTypeID: "2", SourceID: "9", IssueTypeID: "13", SubIssueTypeID: "55"}}, "not a sub-issue type"},
	}
	// Sub-issue types are listed per issue type: without one the lookup
	// says so, as ConnectWise's does for a status without its board.
	if _, err := b.TicketLookups(ctx, psa.TicketLookupSubIssueType, ""); !errors.Is(err, psa.ErrValidation) ||
		!strings.Contains(err.Error(), "needs the issue type id as its scope") {
		t.Errorf("TicketLookups(sub_issue_type, no scope) = %v, want a validation error asking for the issue type id", err)
	}
	for _, tt := range tests {
		_, err := b.CreateTicket(ctx, tt.req)
		if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want a validation error containing %q", tt.name, err, tt.want)
		}
	}
}
