package autotask

import (
	"context"
	"net/http"
	"strconv"
)

// TicketsService handles the Tickets entity and its child TicketNotes.
// Tickets cannot be deleted through the API. The root TicketNotes
// collection is read-only: notes are created under their ticket
// (POST Tickets/{id}/Notes), and a POST to TicketNotes answers 404.
//
// Status, priority, queue, source, issue and sub-issue type, ticket type and
// ticket category are picklists of Tickets (entityInformation/fields); note
// type and publish are picklists of TicketNotes. Their values differ between
// tenants.
type TicketsService service

// Ticket is an Autotask Ticket (selected fields).
type Ticket struct {
	ID                int64              `json:"id"`
	TicketNumber      string             `json:"ticketNumber,omitempty"`
	CompanyID         int64              `json:"companyID"`
	ContractID        *int64             `json:"contractID,omitempty"`
	Title             string             `json:"title"`
	Description       string             `json:"description,omitempty"`
	Status            int64              `json:"status"`
	Priority          int64              `json:"priority"`
	QueueID           *int64             `json:"queueID,omitempty"`
	Source            *int64             `json:"source,omitempty"`
	IssueType         *int64             `json:"issueType,omitempty"`
	SubIssueType      *int64             `json:"subIssueType,omitempty"`
	TicketType        *int64             `json:"ticketType,omitempty"`
	TicketCategory    *int64             `json:"ticketCategory,omitempty"`
	ExternalID        string             `json:"externalID,omitempty"`
	Resolution        string             `json:"resolution,omitempty"`
	DueDateTime       *Timestamp         `json:"dueDateTime,omitempty"`
	CreateDate        *Timestamp         `json:"createDate,omitempty"`
	CompletedDate     *Timestamp         `json:"completedDate,omitempty"`
	LastActivityDate  *Timestamp         `json:"lastActivityDate,omitempty"`
	UserDefinedFields []UserDefinedField `json:"userDefinedFields,omitempty"`
}

// CreateTicketRequest is the body of a ticket create. CompanyID, Title,
// Status, Priority and QueueID (or an assigned resource and role, which
// psa-sync does not use) are required; DueDateTime too unless the ticket
// category defaults it. Title is at most 250 characters, Description 8000
// and ExternalID 50.
type CreateTicketRequest struct {
	CompanyID      int64      `json:"companyID"`
	ContractID     *int64     `json:"contractID,omitempty"`
	Title          string     `json:"title"`
	Description    string     `json:"description,omitempty"`
	Status         int64      `json:"status"`
	Priority       int64      `json:"priority"`
	QueueID        *int64     `json:"queueID,omitempty"`
	Source         *int64     `json:"source,omitempty"`
	IssueType      *int64     `json:"issueType,omitempty"`
	SubIssueType   *int64     `json:"subIssueType,omitempty"`
	TicketType     *int64     `json:"ticketType,omitempty"`
	TicketCategory *int64     `json:"ticketCategory,omitempty"`
	DueDateTime    *Timestamp `json:"dueDateTime,omitempty"`
	ExternalID     string     `json:"externalID,omitempty"`
}

// UpdateTicketRequest is the body of a ticket PATCH: only the non-nil
// fields change.
type UpdateTicketRequest struct {
	ID         int64   `json:"id"`
	Status     *int64  `json:"status,omitempty"`
	Priority   *int64  `json:"priority,omitempty"`
	QueueID    *int64  `json:"queueID,omitempty"`
	Title      *string `json:"title,omitempty"`
	Resolution *string `json:"resolution,omitempty"`
}

// TicketNote is an Autotask TicketNote.
type TicketNote struct {
	ID          int64      `json:"id"`
	TicketID    int64      `json:"ticketID"`
	Title       string     `json:"title,omitempty"`
	Description string     `json:"description"`
	NoteType    int64      `json:"noteType"`
	Publish     int64      `json:"publish"`
	CreateDate  *Timestamp `json:"createDateTime,omitempty"`
}

// CreateTicketNoteRequest is the body of a note create. Description (at
// most 32000 characters), NoteType and Publish are required; Title (at most
// 250) only when the ticket category requires note titles.
type CreateTicketNoteRequest struct {
	TicketID    int64  `json:"ticketID"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description"`
	NoteType    int64  `json:"noteType"`
	Publish     int64  `json:"publish"`
}

// Get returns the ticket with the given id, or an error matching
// psa.ErrNotFound.
func (s *TicketsService) Get(ctx context.Context, id int64) (*Ticket, *Response, error) {
	return getItem[Ticket](ctx, s.client, itemPath("Tickets", id))
}

// List returns every ticket matching q, following all pages.
func (s *TicketsService) List(ctx context.Context, q *Query) ([]*Ticket, *Response, error) {
	return listItems[Ticket](ctx, s.client, "Tickets/query", q)
}

// Create creates a ticket and returns its id. It is never retried when its
// outcome is unknown (see Client.Do): search by externalID instead.
func (s *TicketsService) Create(ctx context.Context, r *CreateTicketRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPost, "Tickets", r)
}

// Update changes the fields set in r with a PATCH to the collection URL and
// returns the ticket id.
func (s *TicketsService) Update(ctx context.Context, r *UpdateTicketRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPatch, "Tickets", r)
}

// CreateNote adds a note to a ticket (POST Tickets/{id}/Notes) and returns
// its id. It is never retried when its outcome is unknown.
func (s *TicketsService) CreateNote(ctx context.Context, r *CreateTicketNoteRequest) (int64, *Response, error) {
	return write(ctx, s.client, http.MethodPost, ticketNotesPath(r.TicketID), r)
}

// ListNotes returns the notes of a ticket (GET Tickets/{id}/Notes).
func (s *TicketsService) ListNotes(ctx context.Context, ticketID int64) ([]*TicketNote, *Response, error) {
	return listChild[TicketNote](ctx, s.client, ticketNotesPath(ticketID))
}

func ticketNotesPath(ticketID int64) string {
	return "Tickets/" + strconv.FormatInt(ticketID, 10) + "/Notes"
}
