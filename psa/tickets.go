package psa

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// TicketLookupKind names a list of ticket settings a PSA keeps by id: the
// queue or board tickets go to, their statuses, priorities, and so on. Each
// PSA needs some of them; see Ticketer.TicketLookupKinds.
type TicketLookupKind string

// The ticket lookup kinds. Each backend documents which PSA list each one
// reads.
const (
	// TicketLookupQueue is the Autotask queue, the ConnectWise service
	// board or the Kaseya BMS queue.
	TicketLookupQueue TicketLookupKind = "queue"
	// TicketLookupStatus is a ticket status. ConnectWise statuses belong to
	// a board: pass the board id as the scope.
	TicketLookupStatus TicketLookupKind = "status"
	// TicketLookupPriority is a ticket priority.
	TicketLookupPriority TicketLookupKind = "priority"
	// TicketLookupSource is where a ticket came from (Autotask source,
	// ConnectWise source, Kaseya BMS source).
	TicketLookupSource TicketLookupKind = "source"
	// TicketLookupIssueType is the Autotask or Kaseya BMS issue type.
	TicketLookupIssueType TicketLookupKind = "issue_type"
	// TicketLookupSubIssueType is the sub-issue type; its scope is the issue
	// type id.
	TicketLookupSubIssueType TicketLookupKind = "sub_issue_type"
	// TicketLookupTicketType is the Autotask ticket type, the ConnectWise
	// board type (scope: the board id) or the Kaseya BMS ticket type.
	TicketLookupTicketType TicketLookupKind = "ticket_type"
	// TicketLookupCategory is the Autotask ticket category.
	TicketLookupCategory TicketLookupKind = "ticket_category"
	// TicketLookupNoteType is the note type of ticket notes (Autotask,
	// Kaseya BMS).
	TicketLookupNoteType TicketLookupKind = "note_type"
)

// TicketLookupKinds lists every TicketLookupKind in a stable order.
var TicketLookupKinds = []TicketLookupKind{
	TicketLookupQueue, TicketLookupStatus, TicketLookupPriority, TicketLookupSource,
	TicketLookupIssueType, TicketLookupSubIssueType, TicketLookupTicketType, TicketLookupCategory, TicketLookupNoteType,
}

// Valid reports whether k is one of TicketLookupKinds.
func (k TicketLookupKind) Valid() bool {
	for _, v := range TicketLookupKinds {
		if k == v {
			return true
		}
	}
	return false
}

// TicketLookup is one entry of a ticket lookup list.
type TicketLookup struct {
	ID   string
	Name string
	// Active is false for entries that can no longer be chosen.
	Active bool
	// Default is true for the PSA's default entry, where it has one.
	Default bool
	// Closed is true for a status that closes a ticket (Autotask
	// "Complete", a ConnectWise closed status, a BMS completed status).
	Closed bool
}

// TicketRouting are the ids, in the PSA's own lists, that a new ticket gets.
// Empty fields are left to the PSA's defaults where it has them; each
// backend names the fields its PSA requires in a validation error.
type TicketRouting struct {
	// QueueID is the Autotask queue, the ConnectWise board or the BMS queue.
	QueueID string
	// StatusID is the status of a new ticket.
	StatusID string
	// PriorityID is the priority of the ticket.
	PriorityID string
	// SourceID is the ticket source.
	SourceID string
	// IssueTypeID and SubIssueTypeID are the Autotask or BMS issue types.
	IssueTypeID    string
	SubIssueTypeID string
	// TicketTypeID is the Autotask ticket type, the ConnectWise board type
	// or the BMS ticket type.
	TicketTypeID string
	// CategoryID is the Autotask ticket category.
	CategoryID string
}

// CreateTicketRequest asks a backend to create a ticket.
type CreateTicketRequest struct {
	// CompanyID is the company the ticket is for. Required.
	CompanyID string
	// ContractID links the ticket to a contract where the PSA allows it;
	// "" links none.
	ContractID string
	// Title is the ticket title; backends truncate it to their PSA's limit.
	Title string
	// Description is the body of the ticket, at most MaxTicketDescription
	// characters: a backend cuts a longer one at its end.
	Description string
	// ExternalRef identifies what the ticket is about (for example
	// "sc:<alert id>") so that FindTickets finds it again after a lost
	// answer. At most 50 characters.
	ExternalRef string
	Routing     TicketRouting
	// OpenedAt is when the issue began; zero means now.
	OpenedAt time.Time
	// DueAt is when the ticket is due; zero leaves it to the PSA.
	DueAt time.Time
}

// Validate checks what every PSA needs of a create: a company, a title
// and a usable external reference.
func (r CreateTicketRequest) Validate() error {
	switch {
	case strings.TrimSpace(r.CompanyID) == "":
		return fmt.Errorf("psa: ticket company id is required")
	case strings.TrimSpace(r.Title) == "":
		return fmt.Errorf("psa: ticket title is required")
	}
	return CheckExternalRef(r.ExternalRef)
}

// Ticket is a PSA ticket (Autotask ticket, ConnectWise service ticket,
// Kaseya BMS ticket).
type Ticket struct {
	ID string
	// Number is the number technicians see, such as T20261203.0001; ""
	// in the ticket CreateTicket returns when the PSA's answer to the
	// create does not give it (Autotask): a read of the ticket gives it.
	Number      string
	CompanyID   string
	Title       string
	ExternalRef string
	StatusID    string
	// Closed is true when the ticket's status closes it.
	Closed bool
	// LastActivity is when the ticket last changed in the PSA, by the
	// PSA's clock (Autotask lastActivityDate, ConnectWise
	// _info.lastUpdated, the latest of Kaseya BMS's ModifiedOn,
	// LastActivityUpdate and LastStatusUpdate): a status set, by
	// psa-syncd or a technician, changes it. Zero when the PSA's answer
	// does not give it (the answer to a create or status change,
	// ConnectWise's FindTickets, a Kaseya BMS time without a zone):
	// callers then cannot tell whether the ticket changed.
	LastActivity time.Time
	// Resolution is the ticket's resolution where the PSA keeps it in a
	// field of its own that a close's note is written to (Autotask), else
	// "". A close keeps it (TicketStatusUpdate.Resolution).
	Resolution string
}

// TicketQuery selects tickets in FindTickets.
type TicketQuery struct {
	// CompanyID limits the result to one company. Required unless
	// AnyCompany is set.
	CompanyID string
	// ExternalRef is the reference the ticket was created with. Required.
	ExternalRef string
	// AnyCompany searches the tickets of every company, CompanyID
	// unused: for a caller settling a create whose answer was lost, whose
	// ticket a technician may have moved to another company since, and
	// whose reference is unique to what it is about (not to a company).
	// Each ticket found carries the company it is in (Ticket.CompanyID).
	// Other callers leave it unset: another customer's ticket is not
	// theirs to close.
	AnyCompany bool
}

// TicketStatusUpdate changes the status of a ticket.
type TicketStatusUpdate struct {
	TicketID string
	StatusID string
	// QueueID is the queue StatusID was chosen for (the routing's queue,
	// a ConnectWise board), or "". ConnectWise keeps statuses per board:
	// when a technician has moved the ticket to another board, the
	// backend sets the status of the same name on that board instead, and
	// says so when there is none. Backends whose statuses are not per
	// queue ignore it.
	QueueID string
	// Note is added as an internal note with the change (the Autotask
	// resolution, a ConnectWise internal note, the BMS resolve comment);
	// "" adds none where the PSA allows it.
	Note string
	// NoteTitle and NoteTypeID are the title and note type of Note where
	// it is added as a note, as in TicketNote: a status that does not
	// close the ticket on Autotask and Kaseya BMS, any status on
	// ConnectWise. "" uses the backend's default. The Autotask resolution
	// and the BMS resolve comment of a closing status have neither.
	NoteTitle  string
	NoteTypeID string
	// Resolution is the ticket's Resolution as last read. Where Note
	// goes into the resolution (a closing status on Autotask, whose
	// PATCH replaces the field whole), it is added after it: a
	// resolution a technician wrote is kept, not replaced.
	Resolution string
}

// TicketNote is a note to add to a ticket.
type TicketNote struct {
	TicketID string
	Title    string
	Text     string
	// Public makes the note visible to the customer; notes are internal
	// unless set.
	Public bool
	// NoteTypeID is the note type where the PSA has one; "" uses the
	// backend's default.
	NoteTypeID string
}

// Ticketer is implemented by backends that can create and maintain tickets.
// A Ticketer is safe for concurrent use, like the Backend it belongs to.
//
// CreateTicket is not idempotent: a caller that does not know whether a
// create was applied (an error matching ErrOutcomeUnknown, a crash) must
// search with FindTickets before creating again.
type Ticketer interface {
	// TicketLookupKinds returns the lookup kinds the PSA has, in the order
	// TicketLookupKinds lists them.
	TicketLookupKinds() []TicketLookupKind
	// TicketLookups returns the entries of a lookup list; scope is the
	// board id (ConnectWise statuses and types) or the issue type id
	// (sub-issue types), else "".
	TicketLookups(ctx context.Context, kind TicketLookupKind, scope string) ([]TicketLookup, error)
	// CreateTicket creates a ticket and returns it. An error matching
	// ErrNotApplied says no ticket was made: the create was never sent (a
	// read it needs failed), or the PSA throttled every attempt of it.
	CreateTicket(ctx context.Context, req CreateTicketRequest) (*Ticket, error)
	// GetTicket returns the ticket with the given id, or ErrNotFound.
	GetTicket(ctx context.Context, id string) (*Ticket, error)
	// FindTickets returns the tickets of q.CompanyID (of any company,
	// with q.AnyCompany) created with q.ExternalRef, open or closed, in id
	// order.
	FindTickets(ctx context.Context, q TicketQuery) ([]Ticket, error)
	// SetTicketStatus changes a ticket's status and returns the ticket.
	// A PSA that answers with the ticket's id only (Autotask) returns its
	// ID, StatusID and Closed, without reading the ticket back.
	// An error matching ErrNotApplied says the status was not set (nor
	// the note added): the status change was never sent, or the PSA
	// throttled every attempt of it. One matching ErrStatusSetNoteFailed
	// says the status was set, but the note, added by a request of its
	// own after it, failed (its outcome may be unknown).
	// Backends that add the note with the status change itself (the
	// Autotask resolution, the Kaseya BMS resolve comment) never return
	// it for that note.
	SetTicketStatus(ctx context.Context, u TicketStatusUpdate) (*Ticket, error)
	// AddTicketNote adds a note to a ticket.
	AddTicketNote(ctx context.Context, n TicketNote) error
}

// TicketBulkReader is implemented by a Ticketer that reads many tickets by
// id in a few requests (Autotask: an "in" filter of up to 500 ids per
// query; ConnectWise: a condition "id in (...)" of up to 100). The result
// holds the tickets the PSA returned, keyed by id; an id that is absent
// may name a ticket deleted in the PSA, and GetTicket tells
// (ErrNotFound). Callers with a single id use GetTicket.
type TicketBulkReader interface {
	GetTickets(ctx context.Context, ids []string) (map[string]*Ticket, error)
}

// TicketCloseNoteSeparate is implemented by a Ticketer whose
// SetTicketStatus adds the note of a status that closes the ticket by a
// request of its own after the status change (ConnectWise), not with it
// (the Autotask resolution, the Kaseya BMS resolve comment): a caller
// that finds such a close applied after its answer was lost, or after
// psa-syncd stopped, cannot tell whether the note was added, and looks
// for it (TicketNoteLister).
type TicketCloseNoteSeparate interface {
	CloseNoteSeparate() bool
}

// TicketNoteLister is implemented by a Ticketer that lists a ticket's
// notes (Autotask GET Tickets/{id}/Notes, ConnectWise GET
// service/tickets/{id}/notes, Kaseya BMS GET servicedesk/tickets/{id}/notes),
// so that a caller whose note's answer was lost can look for the note
// before sending it again, rather than send it twice or not at all.
type TicketNoteLister interface {
	// TicketNoteTexts returns the text of each of the ticket's notes, as
	// the PSA keeps it (a note's title may precede its text), or an error
	// matching ErrNotFound when there is no such ticket.
	TicketNoteTexts(ctx context.Context, ticketID string) ([]string, error)
}

// FindTicketLookup returns the entry of a lookup list whose name equals name
// (case-insensitively), preferring active entries. A name that matches no
// entry is an error matching ErrNotFound that lists the names there are; two
// active matches are an AmbiguousError.
func FindTicketLookup(ctx context.Context, t Ticketer, kind TicketLookupKind, scope, name string) (*TicketLookup, error) {
	list, err := t.TicketLookups(ctx, kind, scope)
	if err != nil {
		return nil, err
	}
	var active, inactive []TicketLookup
	for _, l := range list {
		if !strings.EqualFold(strings.TrimSpace(l.Name), strings.TrimSpace(name)) {
			continue
		}
		if l.Active {
			active = append(active, l)
		} else {
			inactive = append(inactive, l)
		}
	}
	matches := active
	if len(matches) == 0 {
		matches = inactive
	}
	switch len(matches) {
	case 0:
		names := make([]string, 0, len(list))
		for _, l := range list {
			names = append(names, strconv.Quote(l.Name))
		}
		return nil, &LookupNotFoundError{Kind: kind, Name: name, Names: names}
	case 1:
		return &matches[0], nil
	}
	desc := make([]string, len(matches))
	for i, m := range matches {
		desc[i] = fmt.Sprintf("%s (id %s)", m.Name, m.ID)
	}
	return nil, &AmbiguousError{Kind: "ticket " + strings.ReplaceAll(string(kind), "_", " "), Query: fmt.Sprintf("name %q", name), Matches: desc}
}

// FindTicketLookupID returns the entry of a lookup list with the given id,
// or an error matching ErrNotFound that lists the ids there are.
func FindTicketLookupID(ctx context.Context, t Ticketer, kind TicketLookupKind, scope, id string) (*TicketLookup, error) {
	list, err := t.TicketLookups(ctx, kind, scope)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list))
	for i, l := range list {
		if l.ID == id {
			return &list[i], nil
		}
		names = append(names, fmt.Sprintf("%s (id %s)", l.Name, l.ID))
	}
	return nil, &LookupNotFoundError{Kind: kind, ID: id, Names: names}
}

// LookupNotFoundError is returned when a ticket lookup list has no entry
// with a name or id. It matches ErrNotFound.
type LookupNotFoundError struct {
	Kind TicketLookupKind
	// Name or ID is what was looked up.
	Name, ID string
	// Names describes the entries there are.
	Names []string
}

func (e *LookupNotFoundError) Error() string {
	what := fmt.Sprintf("name %q", e.Name)
	if e.ID != "" {
		what = fmt.Sprintf("id %s", e.ID)
	}
	kind := strings.ReplaceAll(string(e.Kind), "_", " ")
	if len(e.Names) == 0 {
		return fmt.Sprintf("no ticket %s with %s: the list is empty", kind, what)
	}
	return fmt.Sprintf("no ticket %s with %s (there are: %s)", kind, what, strings.Join(e.Names, ", "))
}

// Is reports whether target is ErrNotFound.
func (e *LookupNotFoundError) Is(target error) bool { return target == ErrNotFound }

// MaxExternalRefLength is the longest ExternalRef a ticket can carry: the
// length of Autotask's externalID.
const MaxExternalRefLength = 50

// MaxTicketDescription and MaxTicketNote are the longest ticket
// description and note text, in TextLength, that callers send, so that
// they choose what to leave out of a long one (not the PSA, which would
// cut the end or refuse it): Autotask's limits (tickets.md 2.2, 2.3).
// ConnectWise's initialDescription and Kaseya BMS's Details declare no
// length; they are kept to the same, as a longer one might be refused.
const (
	MaxTicketDescription = 8000
	MaxTicketNote        = 32000
)

// CheckExternalRef returns an error when ref cannot be carried by a ticket.
func CheckExternalRef(ref string) error {
	switch {
	case strings.TrimSpace(ref) == "":
		return fmt.Errorf("psa: ticket external reference is required")
	case len(ref) > MaxExternalRefLength:
		return fmt.Errorf("psa: ticket external reference %q is longer than %d characters", ref, MaxExternalRefLength)
	case strings.ContainsAny(ref, "\"\\\r\n"):
		return fmt.Errorf("psa: ticket external reference %q contains a quote, backslash or line break", ref)
	}
	return nil
}

// RefToken returns the short token that stands for ref in a ticket title,
// for PSAs whose tickets have no searchable external-reference field
// (Kaseya BMS): "[ref:" + the first 16 hex digits of sha256(ref) + "]".
func RefToken(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "[ref:" + hex.EncodeToString(sum[:8]) + "]"
}

// TextLength is the length of s as Autotask and ConnectWise check a
// field's maximum length: in UTF-16 code units, as .NET counts a string,
// so that a character outside the Basic Multilingual Plane (an emoji in a
// file or device name) counts two. The ticket limits (title, description,
// note) are kept in these, not in characters: a title of 100 characters
// with one emoji is refused as longer than ConnectWise's 100.
func TextLength(s string) int {
	n := 0
	for _, r := range s {
		n += max(utf16.RuneLen(r), 1)
	}
	return n
}

// TextPrefix returns the longest start of s, in whole characters, whose
// TextLength is at most n.
func TextPrefix(s string, n int) string {
	used := 0
	for i, r := range s {
		if used += max(utf16.RuneLen(r), 1); used > n {
			return s[:i]
		}
	}
	return s
}

// TextSuffix returns the longest end of s, in whole characters, whose
// TextLength is at most n.
func TextSuffix(s string, n int) string {
	used, i := 0, len(s)
	for i > 0 {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		if used += max(utf16.RuneLen(r), 1); used > n {
			break
		}
		i -= size
	}
	return s[i:]
}

// TruncateTitle shortens s to a TextLength of at most n, ending it with
// "…" when it was cut.
func TruncateTitle(s string, n int) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	if TextLength(s) <= n {
		return s
	}
	return TextPrefix(s, n-1) + "…"
}
