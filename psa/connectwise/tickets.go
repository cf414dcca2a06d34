package connectwise

import (
	"context"
	"net/http"
)

// TicketsService handles service/tickets and their notes.
type TicketsService service

// Ticket is a ConnectWise service ticket (selected fields).
type Ticket struct {
	ID                        int64             `json:"id"`
	Summary                   string            `json:"summary"`
	RecordType                string            `json:"recordType,omitempty"`
	Board                     *Reference        `json:"board,omitempty"`
	Status                    *Reference        `json:"status,omitempty"`
	Company                   *Reference        `json:"company,omitempty"`
	Priority                  *Reference        `json:"priority,omitempty"`
	Source                    *Reference        `json:"source,omitempty"`
	Type                      *Reference        `json:"type,omitempty"`
	SubType                   *Reference        `json:"subType,omitempty"`
	Agreement                 *Reference        `json:"agreement,omitempty"`
	ExternalXRef              string            `json:"externalXRef,omitempty"`
	ClosedFlag                bool              `json:"closedFlag"`
	ClosedDate                *Time             `json:"closedDate,omitempty"`
	Severity                  string            `json:"severity,omitempty"`
	Impact                    string            `json:"impact,omitempty"`
	AutomaticEmailContactFlag bool              `json:"automaticEmailContactFlag"`
	Info                      map[string]string `json:"_info,omitempty"`
}

// CreateTicketRequest is the body of a ticket create. Summary (1 to 100
// characters) and Company are required; Board should always be sent, and
// Status must then be one of the board's statuses. ExternalXRef is at most
// 100 characters. InitialDescription becomes the first discussion note.
type CreateTicketRequest struct {
	Summary                   string     `json:"summary"`
	Company                   *Reference `json:"company"`
	Board                     *Reference `json:"board,omitempty"`
	Status                    *Reference `json:"status,omitempty"`
	Priority                  *Reference `json:"priority,omitempty"`
	Source                    *Reference `json:"source,omitempty"`
	Type                      *Reference `json:"type,omitempty"`
	SubType                   *Reference `json:"subType,omitempty"`
	Agreement                 *Reference `json:"agreement,omitempty"`
	InitialDescription        string     `json:"initialDescription,omitempty"`
	ExternalXRef              string     `json:"externalXRef,omitempty"`
	AutomaticEmailContactFlag bool       `json:"automaticEmailContactFlag"`
}

// ServiceNote is a note of a service ticket. At least one of
// DetailDescriptionFlag, InternalAnalysisFlag and ResolutionFlag must be
// true, or ConnectWise refuses the note.
type ServiceNote struct {
	ID                    int64             `json:"id,omitempty"`
	TicketID              int64             `json:"ticketId,omitempty"`
	Text                  string            `json:"text"`
	DetailDescriptionFlag bool              `json:"detailDescriptionFlag"`
	InternalAnalysisFlag  bool              `json:"internalAnalysisFlag"`
	ResolutionFlag        bool              `json:"resolutionFlag"`
	ProcessNotifications  bool              `json:"processNotifications"`
	Info                  map[string]string `json:"_info,omitempty"`
}

// Get returns the ticket with the given id, or an error matching
// psa.ErrNotFound.
func (s *TicketsService) Get(ctx context.Context, id int64) (*Ticket, *Response, error) {
	return getOne[Ticket](ctx, s.client, idPath("service/tickets", id), nil)
}

// List returns every ticket matching opts, following all pages.
func (s *TicketsService) List(ctx context.Context, opts *ListOptions) ([]*Ticket, *Response, error) {
	return listAll[Ticket](ctx, s.client, "service/tickets", opts)
}

// Create creates a ticket. It is never re-sent when its outcome is unknown:
// search by externalXRef instead.
func (s *TicketsService) Create(ctx context.Context, r *CreateTicketRequest) (*Ticket, *Response, error) {
	return send[Ticket](ctx, s.client, http.MethodPost, "service/tickets", r)
}

// Update applies PATCH operations to a ticket.
func (s *TicketsService) Update(ctx context.Context, id int64, ops []PatchOperation) (*Ticket, *Response, error) {
	if err := validatePatch(ops); err != nil {
		return nil, nil, err
	}
	return send[Ticket](ctx, s.client, http.MethodPatch, idPath("service/tickets", id), ops)
}

// CreateNote adds a note to a ticket (POST service/tickets/{id}/notes).
func (s *TicketsService) CreateNote(ctx context.Context, ticketID int64, n *ServiceNote) (*ServiceNote, *Response, error) {
	return send[ServiceNote](ctx, s.client, http.MethodPost, idPath("service/tickets", ticketID, "notes"), n)
}

// ListNotes returns the notes of a ticket.
func (s *TicketsService) ListNotes(ctx context.Context, ticketID int64) ([]*ServiceNote, *Response, error) {
	return listAll[ServiceNote](ctx, s.client, idPath("service/tickets", ticketID, "notes"), nil)
}

// BoardsService reads service boards and the settings that belong to a
// board (statuses, types), and the company-wide priorities and sources.
type BoardsService service

// Board is a service board.
type Board struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	InactiveFlag bool   `json:"inactiveFlag"`
}

// BoardStatus is a status of a board. A ticket is closed by moving it to a
// status whose ClosedStatus is true.
type BoardStatus struct {
	ID           int64      `json:"id"`
	Name         string     `json:"name"`
	Board        *Reference `json:"board,omitempty"`
	SortOrder    int        `json:"sortOrder"`
	Inactive     bool       `json:"inactive"`
	ClosedStatus bool       `json:"closedStatus"`
	DefaultFlag  bool       `json:"defaultFlag"`
}

// BoardType is a ticket type of a board.
type BoardType struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	InactiveFlag bool   `json:"inactiveFlag"`
	DefaultFlag  bool   `json:"defaultFlag"`
}

// Priority is a ticket priority.
type Priority struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	SortOrder   int    `json:"sortOrder"`
	DefaultFlag bool   `json:"defaultFlag"`
}

// Source is a ticket source.
type Source struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	DefaultFlag bool   `json:"defaultFlag"`
}

// List returns every service board (GET service/boards).
func (s *BoardsService) List(ctx context.Context, opts *ListOptions) ([]*Board, *Response, error) {
	return listAll[Board](ctx, s.client, "service/boards", opts)
}

// Statuses returns the statuses of a board (GET service/boards/{id}/statuses).
func (s *BoardsService) Statuses(ctx context.Context, boardID int64) ([]*BoardStatus, *Response, error) {
	return listAll[BoardStatus](ctx, s.client, idPath("service/boards", boardID, "statuses"), nil)
}

// Types returns the ticket types of a board (GET service/boards/{id}/types).
func (s *BoardsService) Types(ctx context.Context, boardID int64) ([]*BoardType, *Response, error) {
	return listAll[BoardType](ctx, s.client, idPath("service/boards", boardID, "types"), nil)
}

// Priorities returns every ticket priority (GET service/priorities).
func (s *BoardsService) Priorities(ctx context.Context) ([]*Priority, *Response, error) {
	return listAll[Priority](ctx, s.client, "service/priorities", nil)
}

// Sources returns every ticket source (GET service/sources).
func (s *BoardsService) Sources(ctx context.Context) ([]*Source, *Response, error) {
	return listAll[Source](ctx, s.client, "service/sources", nil)
}
