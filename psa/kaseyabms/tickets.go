package kaseyabms

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TicketsService handles service desk tickets (/v2/servicedesk/tickets)
// and the lookups tickets refer to (/v2/system/...).
//
// BMS tickets have no searchable external-reference field: the ticket API's
// filters cover title, details, account and dates, and custom fields can
// be stored but not searched. Backend therefore carries a reference token
// in the title (see psa.RefToken) and finds it with the title filter.
type TicketsService service

// TicketInput is TicketInputDto, the body of a create (and of a PUT).
// Title, Details, AccountID, LocationID, StatusID, PriorityID, TypeID,
// SourceID and OpenDate are required.
type TicketInput struct {
	Title              string `json:"Title"`
	Details            string `json:"Details"`
	AccountID          int    `json:"AccountId"`
	LocationID         int    `json:"LocationId"`
	ContactID          *int   `json:"ContactId,omitempty"`
	QueueID            *int   `json:"QueueId,omitempty"`
	StatusID           int    `json:"StatusId"`
	PriorityID         int    `json:"PriorityId"`
	TypeID             int    `json:"TypeId"`
	IssueTypeID        *int   `json:"IssueTypeId,omitempty"`
	SubIssueTypeID     *int   `json:"SubIssueTypeId,omitempty"`
	ContractID         *int   `json:"ContractId,omitempty"`
	SourceID           int    `json:"SourceId"`
	OpenDate           Time   `json:"OpenDate"`
	DueDate            *Time  `json:"DueDate,omitempty"`
	UseDefaultContract bool   `json:"UseDefaultContract"`
}

// Ticket is TicketOutputDto (selected fields).
type Ticket struct {
	ID             int    `json:"Id"`
	TicketNumber   string `json:"TicketNumber"`
	Title          string `json:"Title"`
	Details        string `json:"Details"`
	AccountID      *int   `json:"AccountId"`
	LocationID     *int   `json:"LocationId"`
	StatusID       int    `json:"StatusId"`
	StatusName     string `json:"StatusName"`
	PriorityID     int    `json:"PriorityId"`
	TypeID         *int   `json:"TypeId"`
	IssueTypeID    *int   `json:"IssueTypeId"`
	SubIssueTypeID *int   `json:"SubIssueTypeId"`
	SourceID       *int   `json:"SourceId"`
	QueueID        *int   `json:"QueueId"`
	ContractID     *int   `json:"ContractId"`
	OpenDate       *Time  `json:"OpenDate"`
	CompletedDate  *Time  `json:"CompletedDate"`
	ReOpenedDate   *Time  `json:"ReOpenedDate"`
	CreatedOn      *Time  `json:"CreatedOn"`
	// ModifiedOn, LastActivityUpdate and LastStatusUpdate are when the
	// ticket, its activity and its status last changed.
	ModifiedOn         ZonedTime `json:"ModifiedOn"`
	LastActivityUpdate ZonedTime `json:"LastActivityUpdate"`
	LastStatusUpdate   ZonedTime `json:"LastStatusUpdate"`
}

// ZonedTime is a time BMS gives with its zone (RFC 3339: "Z" or an
// offset). One without a zone, or that does not parse, reads as the zero
// time rather than failing the read: the OAS does not say in which zone
// BMS gives a time without one, and a time taken in the wrong zone is
// hours off.
type ZonedTime struct{ time.Time }

// UnmarshalJSON parses a JSON string with a zone; anything else is zero.
func (t *ZonedTime) UnmarshalJSON(b []byte) error {
	t.Time = time.Time{}
	if v, err := time.Parse(time.RFC3339Nano, strings.Trim(string(b), `"`)); err == nil {
		t.Time = v
	}
	return nil
}

// Completed reports whether the ticket has a completion date.
func (t *Ticket) Completed() bool { return t.CompletedDate != nil && !t.CompletedDate.IsZero() }

// TicketFilter is TicketFilterDto (the filters psa-sync uses). String
// filters match as BMS decides (the document does not say whether exactly
// or by substring); AccountIDs is a comma-separated list.
type TicketFilter struct {
	Title            string `json:"Title,omitempty"`
	AccountIDs       string `json:"AccountIds,omitempty"`
	ExcludeCompleted int    `json:"ExcludeCompleted"`
	CreatedOnFrom    *Time  `json:"CreatedOnFrom,omitempty"`
}

// TicketSearch is GetTicketsInputDto, the body of a search.
type TicketSearch struct {
	PageSize   int           `json:"PageSize"`
	PageNumber int           `json:"PageNumber"`
	Filter     *TicketFilter `json:"Filter,omitempty"`
}

// ResolveTicket is ResolveTicketDto. Comment is required.
type ResolveTicket struct {
	Comment    string `json:"Comment"`
	StatusID   int    `json:"StatusId,omitempty"`
	IsInternal bool   `json:"IsInternal"`
}

// PatchOperation is one JSON-Patch operation of a ticket PATCH, such as
// {"op":"replace","path":"/StatusId","value":2}. The document does not
// fix the path syntax; ASP.NET's JSON Patch form (a leading slash and the
// property name) is used.
type PatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// TicketNoteInput is TicketNotePostInputDto. Details, IsInternal, NoteDate
// and TypeID are required. Without EmailNotification nobody is mailed.
type TicketNoteInput struct {
	Details    string `json:"Details"`
	IsInternal bool   `json:"IsInternal"`
	TypeID     int    `json:"TypeId"`
	StatusID   *int   `json:"StatusId,omitempty"`
	NoteDate   Time   `json:"NoteDate"`
}

// TicketNote is TicketNoteOutputDto (selected fields).
type TicketNote struct {
	ID         int    `json:"Id"`
	Details    string `json:"Details"`
	IsInternal bool   `json:"IsInternal"`
	TypeID     *int   `json:"TypeId"`
}

// Lookup is an entry of a lookup list: QueueLookupOutputDto,
// PriorityLookupOutputDto, StatusLookupOutputDto, IssueTypeLookupOutputDto,
// IssueSubTypeLookupOutputDto and LookupOutputDto share these fields
// (each has some of them).
type Lookup struct {
	ID             int    `json:"Id"`
	Name           string `json:"Name"`
	IsActive       *bool  `json:"IsActive"`
	IsDefault      bool   `json:"IsDefault"`
	StatusOrder    int    `json:"StatusOrder"`
	TypeID         int    `json:"TypeId"`
	IsSystemStatus int    `json:"IsSystemStatus"`
}

// Active reports whether the entry is active; lists without the flag are.
func (l *Lookup) Active() bool { return l.IsActive == nil || *l.IsActive }

// Location is AccountLocationLookupOutputDto.
type Location struct {
	ID        int    `json:"Id"`
	Name      string `json:"Name"`
	AccountID int    `json:"AccountId"`
	IsMain    bool   `json:"IsMain"`
}

// Create creates a ticket (POST /v2/servicedesk/tickets). It is never
// re-sent when its outcome is unknown.
func (s *TicketsService) Create(ctx context.Context, in *TicketInput) (*Ticket, *Response, error) {
	return sendTicket[Ticket](ctx, s.client, http.MethodPost, "v2/servicedesk/tickets", in)
}

// Get returns a ticket (GET /v2/servicedesk/tickets/{ticketId}).
func (s *TicketsService) Get(ctx context.Context, id int) (*Ticket, *Response, error) {
	t, resp, err := sendTicket[Ticket](ctx, s.client, http.MethodGet, fmt.Sprintf("v2/servicedesk/tickets/%d", id), nil)
	if err == nil && t.ID == 0 {
		return nil, resp, notFound(s.client, resp, fmt.Sprintf("ticket %d", id))
	}
	return t, resp, err
}

// Search returns one page of tickets (POST /v2/servicedesk/tickets/search).
func (s *TicketsService) Search(ctx context.Context, body *TicketSearch) ([]*Ticket, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodPost, "v2/servicedesk/tickets/search", body)
	if err != nil {
		return nil, nil, err
	}
	var out []*Ticket
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// SearchAll returns every page of a search.
func (s *TicketsService) SearchAll(ctx context.Context, filter *TicketFilter) ([]*Ticket, *Response, error) {
	return collect(s.client, "/v2/servicedesk/tickets/search", func(page, size int) ([]*Ticket, *Response, error) {
		return s.Search(ctx, &TicketSearch{PageSize: size, PageNumber: page, Filter: filter})
	})
}

// Patch applies JSON-Patch operations (PATCH /v2/servicedesk/tickets/{ticketId}).
func (s *TicketsService) Patch(ctx context.Context, id int, ops []PatchOperation) (*Ticket, *Response, error) {
	return sendTicket[Ticket](ctx, s.client, http.MethodPatch, fmt.Sprintf("v2/servicedesk/tickets/%d", id), ops)
}

// Resolve completes a ticket with a comment
// (POST /v2/servicedesk/tickets/{ticketId}/resolve).
func (s *TicketsService) Resolve(ctx context.Context, id int, body *ResolveTicket) (*Ticket, *Response, error) {
	return sendTicket[Ticket](ctx, s.client, http.MethodPost, fmt.Sprintf("v2/servicedesk/tickets/%d/resolve", id), body)
}

// CreateNote adds a note (POST /v2/servicedesk/tickets/{ticketId}/notes).
func (s *TicketsService) CreateNote(ctx context.Context, ticketID int, in *TicketNoteInput) (*TicketNote, *Response, error) {
	return sendTicket[TicketNote](ctx, s.client, http.MethodPost, fmt.Sprintf("v2/servicedesk/tickets/%d/notes", ticketID), in)
}

// ListNotes returns the notes of a ticket
// (GET /v2/servicedesk/tickets/{ticketId}/notes).
func (s *TicketsService) ListNotes(ctx context.Context, ticketID int) ([]*TicketNote, *Response, error) {
	var out []*TicketNote
	req, err := s.client.NewRequest(ctx, http.MethodGet, fmt.Sprintf("v2/servicedesk/tickets/%d/notes", ticketID), nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// Queues returns the queues (GET /v2/system/queues/lookup).
func (s *TicketsService) Queues(ctx context.Context) ([]*Lookup, *Response, error) {
	return s.lookup(ctx, "v2/system/queues/lookup")
}

// Priorities returns the priorities (GET /v2/system/priorities/lookup).
func (s *TicketsService) Priorities(ctx context.Context) ([]*Lookup, *Response, error) {
	return s.lookup(ctx, "v2/system/priorities/lookup")
}

// Statuses returns the ticket statuses (GET /v2/system/statuses/lookup).
func (s *TicketsService) Statuses(ctx context.Context) ([]*Lookup, *Response, error) {
	return s.lookup(ctx, "v2/system/statuses/lookup")
}

// IssueTypes returns the issue types (GET /v2/system/issuetypes/lookup).
func (s *TicketsService) IssueTypes(ctx context.Context) ([]*Lookup, *Response, error) {
	return s.lookup(ctx, "v2/system/issuetypes/lookup")
}

// IssueSubTypes returns the sub-issue types of an issue type
// (GET /v2/system/issuetypes/{issueTypeId}/issuesubtypes/lookup).
func (s *TicketsService) IssueSubTypes(ctx context.Context, issueTypeID int) ([]*Lookup, *Response, error) {
	return s.lookup(ctx, fmt.Sprintf("v2/system/issuetypes/%d/issuesubtypes/lookup", issueTypeID))
}

// Table returns a generic lookup table (GET /v2/system/lookup/{tableName}).
// BMS has no dedicated lookup for ticket types, sources and note types, and
// does not document the table names; see TableTicketType.
func (s *TicketsService) Table(ctx context.Context, table string) ([]*Lookup, *Response, error) {
	return s.lookup(ctx, "v2/system/lookup/"+url.PathEscape(table))
}

// Locations returns an account's locations
// (GET /v2/crm/accounts/{accountId}/locations/lookup).
func (s *TicketsService) Locations(ctx context.Context, accountID int) ([]*Location, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodGet, "v2/crm/accounts/"+strconv.Itoa(accountID)+"/locations/lookup", nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*Location
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

// The generic lookup tables psa-sync reads. BMS does not document table
// names; these are the entity names BMS uses for the ids TicketInputDto
// (TypeId, SourceId) and TicketNotePostInputDto (TypeId) carry.
const (
	TableTicketType   = "TicketType"
	TableTicketSource = "TicketSource"
	TableNoteType     = "NoteType"
)

func (s *TicketsService) lookup(ctx context.Context, path string) ([]*Lookup, *Response, error) {
	req, err := s.client.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, err
	}
	var out []*Lookup
	resp, err := s.client.Do(ctx, req, &out)
	return out, resp, err
}

func sendTicket[T any](ctx context.Context, c *Client, method, path string, body any) (*T, *Response, error) {
	req, err := c.NewRequest(ctx, method, path, body)
	if err != nil {
		return nil, nil, err
	}
	v := new(T)
	resp, err := c.Do(ctx, req, v)
	if err != nil {
		return nil, resp, err
	}
	return v, resp, nil
}
