package autotask_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// ticketRoutes reads the vendor route list kept in testdata as a set of
// "METHOD /v1.0/path" keys with placeholders written {id} or {parentId}.
func ticketRoutes(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("testdata/autotask-rest-v1.0-routes.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	placeholder := regexp.MustCompile(`:([A-Za-z]+)`)
	routes := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) >= 2 {
			routes[strings.ToLower(cols[0]+" "+placeholder.ReplaceAllString(cols[1], "{$1}"))] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return routes
}

var numericSeg = regexp.MustCompile(`/\d+(/|$)`)

// routeOf turns a logged request into a route key: numeric segments become
// {parentId}, the last one {id}.
func routeOf(r psatest.Request) string {
	p := strings.ToLower(r.Path)
	p = p[len("/atservicesrest"):]
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if numericSeg.MatchString("/" + s) {
			segs[i] = "{parentid}"
			if i == len(segs)-1 {
				segs[i] = "{id}"
			}
		}
	}
	return strings.ToLower(r.Method) + " " + strings.Join(segs, "/")
}

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
	b, s := newBackend(t)
	ctx := t.Context()
	company := s.Autotask().AddCompany("Acme")

	req := psa.CreateTicketRequest{
		CompanyID:   id(company),
		Title:       "[Sophos] High: Manual cleanup required: 'EICAR-AV-Test' on PC-042",
		Description: "Sophos Central alert\nAlert id: a5ded91c-6575-435c-a6b4-64b94f9048ff",
		ExternalRef: "sc:a5ded91c-6575-435c-a6b4-64b94f9048ff",
		Routing: psa.TicketRouting{
			QueueID:        lookupID(t, b, psa.TicketLookupQueue, "", "Monitoring Alert"),
			PriorityID:     lookupID(t, b, psa.TicketLookupPriority, "", "high"),
			SourceID:       lookupID(t, b, psa.TicketLookupSource, "", "Sophos Central"),
			IssueTypeID:    lookupID(t, b, psa.TicketLookupIssueType, "", "Security"),
			SubIssueTypeID: lookupID(t, b, psa.TicketLookupSubIssueType, id(psatest.AutotaskIssueTypeSecurity), "Malware"),
		},
	}
	tk, err := b.CreateTicket(ctx, req)
	if err != nil {
		t.Fatalf("CreateTicket: %v", err)
	}
	// The create's answer names the ticket, not its number: a read gives it.
	if tk.ExternalRef != req.ExternalRef || tk.Closed || tk.Number != "" || tk.CompanyID != id(company) {
		t.Errorf("CreateTicket returned %+v", tk)
	}
	if read, err := b.GetTicket(ctx, tk.ID); err != nil || read.Number == "" {
		t.Errorf("GetTicket(%s) = %+v, %v; want the ticket with its number", tk.ID, read, err)
	}
	got := s.Autotask().Tickets()
	if len(got) != 1 || got[0].Status != "New" || got[0].Priority != "High" || got[0].QueueID != psatest.AutotaskQueueMonitoringAlert ||
		got[0].Source != psatest.AutotaskSourceSophosCentral || got[0].ExternalID != req.ExternalRef {
		t.Fatalf("simulator tickets = %+v", got)
	}

	found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: id(company), ExternalRef: req.ExternalRef})
	if err != nil || len(found) != 1 || found[0].ID != tk.ID {
		t.Fatalf("FindTickets = %+v, %v; want ticket %s", found, err, tk.ID)
	}
	other := s.Autotask().AddCompany("Other")
	if found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: id(other), ExternalRef: req.ExternalRef}); err != nil || len(found) != 0 {
		t.Errorf("FindTickets for another company = %+v, %v; want none", found, err)
	}

	if err := b.AddTicketNote(ctx, psa.TicketNote{TicketID: tk.ID, Title: "Alert still open", Text: "Seen again."}); err != nil {
		t.Fatalf("AddTicketNote: %v", err)
	}
	notes := s.Autotask().TicketNotes(parse(t, tk.ID))
	if len(notes) != 1 || notes[0].Publish != "Internal Only" || notes[0].Description != "Seen again." {
		t.Errorf("notes = %+v, want one internal note", notes)
	}

	complete := lookupID(t, b, psa.TicketLookupStatus, "", "Complete")
	closed, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: complete, Note: "Alert cleared in Sophos Central."})
	if err != nil {
		t.Fatalf("SetTicketStatus: %v", err)
	}
	if !closed.Closed || closed.StatusID != complete {
		t.Errorf("SetTicketStatus returned %+v, want closed", closed)
	}
	if got := s.Autotask().Tickets()[0]; got.Status != "Complete" || got.Resolution != "Alert cleared in Sophos Central." {
		t.Errorf("closed ticket = %+v", got)
	}
	reopen := lookupID(t, b, psa.TicketLookupStatus, "", "In Progress")
	if _, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: reopen, Note: "Alert raised again.",
		NoteTitle: "Alert raised again", NoteTypeID: "2"}); err != nil {
		t.Fatalf("SetTicketStatus(reopen): %v", err)
	}
	if notes := s.Autotask().TicketNotes(parse(t, tk.ID)); len(notes) != 2 || notes[1].Description != "Alert raised again." ||
		notes[1].Title != "Alert raised again" || notes[1].NoteType != 2 || notes[1].Publish != "Internal Only" {
		t.Errorf("a reopening note went to %+v, want a second internal note with the update's title and note type 2", notes)
	}

	// Every request went to a route of the vendor's route list.
	routes := ticketRoutes(t)
	for _, r := range s.Requests() {
		if k := routeOf(r); !routes[k] {
			t.Errorf("%s %s (%s) is not in the Autotask route list", r.Method, r.Path, k)
		}
	}
	if n := countRequests(s, http.MethodPost, "/Tickets/"+tk.ID+"/Notes"); n != 2 {
		t.Errorf("%d note posts to the child URL, want 2", n)
	}
}

func parse(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("id %q is not numeric", s)
		}
		n = n*10 + int64(r-'0')
	}
	return n
}

// A create whose answer is lost is not re-sent; searching by the external
// reference finds the one ticket it made.
func TestBackend_CreateTicket_lostAnswer(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	company := s.Autotask().AddCompany("Acme")
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", DropAfterHandling: true, Times: 1})
	ref := "sc:0f2a"
	_, err := b.CreateTicket(ctx, psa.CreateTicketRequest{
		CompanyID: id(company), Title: "t", ExternalRef: ref,
		Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert)},
	})
	if !errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Fatalf("CreateTicket error = %v, want one matching psa.ErrOutcomeUnknown", err)
	}
	if n := countRequests(s, http.MethodPost, "/V1.0/Tickets"); n != 1 {
		t.Errorf("%d ticket posts, want 1 (never re-sent)", n)
	}
	found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: id(company), ExternalRef: ref})
	if err != nil || len(found) != 1 {
		t.Fatalf("FindTickets = %+v, %v; want the one ticket", found, err)
	}
}

// A read the create needs (the status picklist, for its default value)
// that Autotask fails with a 500 is not the ticket's refusal
// (psa.ErrValidation), which callers would not send again soon; one that
// says the API user lacks the permission matches psa.ErrForbidden, so that
// callers name the permission to grant.
func TestBackend_CreateTicket_readBeforeFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg       string
		forbidden bool
	}{
		{"The logged in Resource does not have the adequate permissions to view this entity.", true},
		{"Object reference not set to an instance of an object.", false},
	} {
		b, s := newBackend(t)
		company := s.Autotask().AddCompany("Acme")
		s.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/ATServicesRest/V1.0/Tickets/entityInformation/fields", Times: 1,
			Status: http.StatusInternalServerError, Body: `{"errors":["` + tc.msg + `"]}`})
		_, err := b.CreateTicket(t.Context(), psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: "sc:1",
			Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert)}})
		if err == nil || errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: CreateTicket error = %v, want Autotask's message, not a validation error", tc.msg, err)
		}
		if errors.Is(err, psa.ErrForbidden) != tc.forbidden || errors.Is(err, psa.ErrUnauthorized) != tc.forbidden {
			t.Errorf("%s: CreateTicket error = %v matches psa.ErrForbidden: %t, psa.ErrUnauthorized: %t; want %t", tc.msg, err,
				errors.Is(err, psa.ErrForbidden), errors.Is(err, psa.ErrUnauthorized), tc.forbidden)
		}
		if got := s.Autotask().Tickets(); len(got) != 0 {
			t.Errorf("%s: tickets created: %+v", tc.msg, got)
		}
	}
}

func TestBackend_CreateTicket_invalid(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	company := s.Autotask().AddCompany("Acme")
	tests := []struct {
		name string
		req  psa.CreateTicketRequest
		want string
	}{
		{"no queue", psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: "sc:1"}, "ticket queue id is required"},
		{"long ref", psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: strings.Repeat("x", 51),
			Routing: psa.TicketRouting{QueueID: "29683482"}}, "longer than 50 characters"},
		{"unknown company", psa.CreateTicketRequest{CompanyID: "999", Title: "t", ExternalRef: "sc:1",
			Routing: psa.TicketRouting{QueueID: "29683482"}}, "The company 999 does not exist."},
		{"sub-issue of another issue type", psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: "sc:1",
			Routing: psa.TicketRouting{QueueID: "29683482", IssueTypeID: "15", SubIssueTypeID: "201"}}, "does not belong to the issueType"},
	}
	for _, tt := range tests {
		_, err := b.CreateTicket(ctx, tt.req)
		if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: CreateTicket error = %v, want a validation error containing %q", tt.name, err, tt.want)
		}
	}
	if got := s.Autotask().Tickets(); len(got) != 0 {
		t.Errorf("tickets created: %+v", got)
	}
}

// A ticket category can require titles on ticket notes (tickets.md §2.5):
// the simulator refuses an untitled note on its tickets, and Autotask's
// refusal is a validation error.
func TestBackend_AddTicketNote_titleRequired(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	company := s.Autotask().AddCompany("Acme")
	tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "Alert", ExternalRef: "sc:1",
		Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert)}})
	if err != nil {
		t.Fatalf("CreateTicket: %v", err)
	}
	s.Autotask().RequireNoteTitles(psatest.AutotaskTicketCategoryStandard)
	err = b.AddTicketNote(ctx, psa.TicketNote{TicketID: tk.ID, Text: "Seen again."})
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), "requires titles on ticket notes") {
		t.Errorf("AddTicketNote without a title: error = %v, want a validation error saying the category requires titles", err)
	}
	inProgress := id(psatest.AutotaskTicketStatusInProgress)
	if _, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: inProgress, Note: "Raised again."}); !errors.Is(err, psa.ErrValidation) {
		t.Errorf("SetTicketStatus with an untitled note: error = %v, want a validation error", err)
	}
	if err := b.AddTicketNote(ctx, psa.TicketNote{TicketID: tk.ID, Title: "Alert still open", Text: "Seen again."}); err != nil {
		t.Errorf("AddTicketNote with a title: %v", err)
	}
	if _, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: inProgress, Note: "Raised again.", NoteTitle: "Alert raised again"}); err != nil {
		t.Errorf("SetTicketStatus with a titled note: %v", err)
	}
	if notes := s.Autotask().TicketNotes(parse(t, tk.ID)); len(notes) != 2 {
		t.Errorf("notes = %+v, want the two titled ones", notes)
	}
}

func TestBackend_TicketLookups(t *testing.T) {
	t.Parallel()
	b, _ := newBackend(t)
	ctx := t.Context()
	subs, err := b.TicketLookups(ctx, psa.TicketLookupSubIssueType, id(psatest.AutotaskIssueTypeSecurity))
	if err != nil || len(subs) != 2 {
		t.Fatalf("sub-issue types of Security = %+v, %v; want Malware and Policy", subs, err)
	}
	statuses, err := b.TicketLookups(ctx, psa.TicketLookupStatus, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range statuses {
		if st.Closed != (st.Name == "Complete") {
			t.Errorf("status %+v: Closed is %v", st, st.Closed)
		}
	}
	_, err = psa.FindTicketLookup(ctx, b, psa.TicketLookupQueue, "", "Nope")
	if !errors.Is(err, psa.ErrNotFound) || !strings.Contains(err.Error(), `"Monitoring Alert"`) {
		t.Errorf("FindTicketLookup(Nope) error = %v, want not found listing the queues", err)
	}
}

// A throttled search is retried after Retry-After.
func TestBackend_FindTickets_rateLimited(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	company := s.Autotask().AddCompany("Acme")
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets/query", Status: http.StatusTooManyRequests, Times: 1})
	found, err := b.FindTickets(t.Context(), psa.TicketQuery{CompanyID: id(company), ExternalRef: "sc:1"})
	if err != nil || len(found) != 0 {
		t.Fatalf("FindTickets = %+v, %v", found, err)
	}
	if n := countRequests(s, http.MethodPost, "/Tickets/query"); n != 2 {
		t.Errorf("%d queries, want 2 (one throttled, one retried)", n)
	}
}

// FindTickets returns only tickets of the company searched, as the
// ConnectWise and Kaseya BMS backends do: a ticket of another company with
// the same reference in the answer is not the one ticket sync made for
// this customer, and adopting it would have the pass close or note
// another customer's ticket.
func TestBackend_FindTickets_otherCompany(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	acme, globex := s.Autotask().AddCompany("Acme"), s.Autotask().AddCompany("Globex")
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets/query", Status: http.StatusOK,
		Body: fmt.Sprintf(`{"items":[{"id":99,"companyID":%d,"title":"t","status":1,"externalID":"sc:1"}],"pageDetails":{"count":1,"requestCount":500,"nextPageUrl":null}}`, globex)})
	found, err := b.FindTickets(t.Context(), psa.TicketQuery{CompanyID: id(acme), ExternalRef: "sc:1"})
	if err != nil || len(found) != 0 {
		t.Errorf("FindTickets(company %d) = %+v, %v; want no ticket (the answer's is company %d's)", acme, found, err, globex)
	}
}

// A status change costs one PATCH (with a note for a status that does not
// close, one more request): the ticket is not read back, which cost a
// request for every close and reopen of a ticket pass, and a read back
// that failed reported the applied change as failed.
func TestBackend_SetTicketStatus_noReadBack(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	company := s.Autotask().AddCompany("Acme")
	tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: "sc:1",
		Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert)}})
	if err != nil {
		t.Fatal(err)
	}
	complete := lookupID(t, b, psa.TicketLookupStatus, "", "Complete")
	s.ResetRequests()
	s.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/ATServicesRest/V1.0/Tickets/" + tk.ID, Status: http.StatusInternalServerError,
		Body: `{"errors":["Object reference not set to an instance of an object."]}`})
	closed, err := b.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: tk.ID, StatusID: complete, Note: "Alert cleared in Sophos Central."})
	if err != nil || closed.ID != tk.ID || !closed.Closed || closed.StatusID != complete {
		t.Fatalf("SetTicketStatus = %+v, %v; want the ticket closed, without reading it", closed, err)
	}
	if got := s.Autotask().Tickets()[0]; got.Status != "Complete" {
		t.Errorf("ticket status = %q, want Complete", got.Status)
	}
	if reqs := s.Requests(); len(reqs) != 1 || reqs[0].Method != http.MethodPatch {
		t.Errorf("closing sent %d requests (%v), want one PATCH", len(reqs), routesOf(reqs))
	}
}

func routesOf(reqs []psatest.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, routeOf(r))
	}
	return out
}

// GetTickets reads tickets by id in one query; an id with no ticket, or
// that is not an Autotask id, is absent from the result.
func TestBackend_GetTickets(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	company := s.Autotask().AddCompany("Acme")
	var ids []string
	for _, ref := range []string{"sc:1", "sc:2"} {
		tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: ref,
			Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	s.ResetRequests()
	got, err := b.GetTickets(ctx, append(ids, "999999", "x"))
	if err != nil || len(got) != 2 || got[ids[0]].ExternalRef != "sc:1" || got[ids[1]].ExternalRef != "sc:2" || got[ids[0]].Closed {
		t.Fatalf("GetTickets = %+v, %v; want the two tickets, open", got, err)
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("GetTickets sent %d requests, want one query", n)
	}
}
