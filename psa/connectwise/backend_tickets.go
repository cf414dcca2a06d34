package connectwise

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
)

// Ensure Backend satisfies the psa.Ticketer interface, reads tickets in
// bulk and lists their notes.
var (
	_ psa.Ticketer         = (*Backend)(nil)
	_ psa.TicketBulkReader = (*Backend)(nil)
	_ psa.TicketNoteLister = (*Backend)(nil)
)

// TicketNoteTexts returns the text of a ticket's notes (GET
// service/tickets/{id}/notes, every page).
func (b *Backend) TicketNoteTexts(ctx context.Context, ticketID string) ([]string, error) {
	id, err := parseID("ticket", ticketID)
	if err != nil {
		return nil, err
	}
	notes, _, err := b.client.Tickets.ListNotes(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("connectwise: listing the notes of ticket %d: %w", id, err)
	}
	out := make([]string, 0, len(notes))
	for _, n := range notes {
		out = append(out, n.Text)
	}
	return out, nil
}

// maxSummary is the longest ticket summary ConnectWise accepts.
const maxSummary = 100

// ticketFields are the fields FindTickets reads. Not _info/lastUpdated
// (psa.Ticket.LastActivity), which only GetTicket's full read gives: the
// references do not say that ConnectWise takes _info paths in fields, and
// FindTickets' callers do not need it.
var ticketFields = []string{"id", "summary", "company/id", "status/id", "closedFlag", "externalXRef"}

// TicketLookupKinds returns the kinds ConnectWise has: boards (as queues),
// their statuses and types, priorities and sources.
func (b *Backend) TicketLookupKinds() []psa.TicketLookupKind {
	return []psa.TicketLookupKind{psa.TicketLookupQueue, psa.TicketLookupStatus, psa.TicketLookupPriority, psa.TicketLookupSource, psa.TicketLookupTicketType}
}

// TicketLookups reads service boards (queue), a board's statuses and types
// (scope: the board id), priorities and sources.
func (b *Backend) TicketLookups(ctx context.Context, kind psa.TicketLookupKind, scope string) ([]psa.TicketLookup, error) {
	boardScoped := kind == psa.TicketLookupStatus || kind == psa.TicketLookupTicketType
	var board int64
	switch {
	case boardScoped && scope == "":
		return nil, validationError(fmt.Sprintf("ticket lookup %s needs the board id as its scope", kind))
	case boardScoped:
		n, err := parseID("board", scope)
		if err != nil {
			return nil, err
		}
		board = n
	case scope != "":
		return nil, validationError(fmt.Sprintf("ticket lookup %s takes no scope, got %q", kind, scope))
	}
	id := func(n int64) string { return strconv.FormatInt(n, 10) }
	var out []psa.TicketLookup
	switch kind {
	case psa.TicketLookupQueue:
		list, _, err := b.client.Boards.List(ctx, nil)
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			out = append(out, psa.TicketLookup{ID: id(x.ID), Name: x.Name, Active: !x.InactiveFlag})
		}
	case psa.TicketLookupStatus:
		list, _, err := b.client.Boards.Statuses(ctx, board)
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			out = append(out, psa.TicketLookup{ID: id(x.ID), Name: x.Name, Active: !x.Inactive, Default: x.DefaultFlag, Closed: x.ClosedStatus})
		}
	case psa.TicketLookupTicketType:
		list, _, err := b.client.Boards.Types(ctx, board)
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			out = append(out, psa.TicketLookup{ID: id(x.ID), Name: x.Name, Active: !x.InactiveFlag, Default: x.DefaultFlag})
		}
	case psa.TicketLookupPriority:
		list, _, err := b.client.Boards.Priorities(ctx)
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			out = append(out, psa.TicketLookup{ID: id(x.ID), Name: x.Name, Active: true, Default: x.DefaultFlag})
		}
	case psa.TicketLookupSource:
		list, _, err := b.client.Boards.Sources(ctx)
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			out = append(out, psa.TicketLookup{ID: id(x.ID), Name: x.Name, Active: true, Default: x.DefaultFlag})
		}
	default:
		return nil, fmt.Errorf("connectwise: ticket lookup %q: %w", kind, psa.ErrNotSupported)
	}
	return out, nil
}

// CreateTicket creates a service ticket on the board req.Routing.QueueID
// with externalXRef set to req.ExternalRef, linked to the agreement
// req.ContractID when given, and without e-mailing the customer contact.
// An empty status leaves the board's default. It fails with an error
// matching psa.ErrNotApplied when ConnectWise throttled every attempt of
// the create: no ticket was made.
func (b *Backend) CreateTicket(ctx context.Context, req psa.CreateTicketRequest) (*psa.Ticket, error) {
	if err := req.Validate(); err != nil {
		return nil, validationError(strings.TrimPrefix(err.Error(), "psa: "))
	}
	if req.Routing.QueueID == "" {
		return nil, validationError("ticket board id is required")
	}
	company, err := reference("company", req.CompanyID)
	if err != nil {
		return nil, err
	}
	if company == nil {
		return nil, validationError("ticket company id is required")
	}
	r := &CreateTicketRequest{
		Summary: psa.TruncateTitle(req.Title, maxSummary), Company: company,
		InitialDescription: req.Description, ExternalXRef: req.ExternalRef,
	}
	rt := req.Routing
	for _, f := range []struct {
		kind, in string
		out      **Reference
	}{
		{"board", rt.QueueID, &r.Board}, {"status", rt.StatusID, &r.Status}, {"priority", rt.PriorityID, &r.Priority},
		{"source", rt.SourceID, &r.Source}, {"type", rt.TicketTypeID, &r.Type}, {"agreement", req.ContractID, &r.Agreement},
	} {
		if *f.out, err = reference(f.kind, f.in); err != nil {
			return nil, err
		}
	}
	t, _, err := b.client.Tickets.Create(ctx, r)
	if err != nil {
		err = fmt.Errorf("connectwise: creating ticket %q for company %s: %w", req.ExternalRef, req.CompanyID, err)
		if rest.WasUnprocessed(err) {
			// ConnectWise throttled every attempt: no ticket.
			err = psa.NotApplied(err)
		}
		return nil, err
	}
	return toTicket(t), nil
}

// GetTicket returns a ticket.
func (b *Backend) GetTicket(ctx context.Context, id string) (*psa.Ticket, error) {
	n, err := parseID("ticket", id)
	if err != nil {
		return nil, err
	}
	t, _, err := b.client.Tickets.Get(ctx, n)
	if err != nil {
		return nil, err
	}
	return toTicket(t), nil
}

// GetTickets returns the tickets with the given ids that ConnectWise
// returns: one list per 100 ids (a condition "id in (...)").
func (b *Backend) GetTickets(ctx context.Context, ids []string) (map[string]*psa.Ticket, error) {
	list, err := bulkGet(ctx, ids, b.client.Tickets.List)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*psa.Ticket, len(list))
	for _, t := range list {
		out[strconv.FormatInt(t.ID, 10)] = toTicket(t)
	}
	return out, nil
}

// FindTickets lists tickets by externalXRef and company (externalXRef
// alone with q.AnyCompany). externalXRef is a free-text field technicians
// can edit, so matches are checked exactly.
func (b *Backend) FindTickets(ctx context.Context, q psa.TicketQuery) ([]psa.Ticket, error) {
	if err := psa.CheckExternalRef(q.ExternalRef); err != nil {
		return nil, validationError(err.Error())
	}
	cond := Eq("externalXRef", q.ExternalRef)
	var company int64
	if !q.AnyCompany {
		var err error
		if company, err = parseID("company", q.CompanyID); err != nil {
			return nil, err
		}
		cond = And(cond, Eq("company/id", company))
	}
	list, _, err := b.client.Tickets.List(ctx, &ListOptions{
		Conditions: cond,
		Fields:     ticketFields,
		OrderBy:    "id asc",
	})
	if err != nil {
		return nil, err
	}
	out := make([]psa.Ticket, 0, len(list))
	for _, t := range list {
		if t.ExternalXRef == q.ExternalRef && t.Company != nil && (q.AnyCompany || t.Company.ID == company) {
			out = append(out, *toTicket(t))
		}
	}
	return out, nil
}

// SetTicketStatus moves the ticket to a status of its board (a status whose
// closedStatus is true closes it) and adds the note as an internal one,
// led by its title as AddTicketNote does (ConnectWise notes have no type).
//
// A status belongs to one board, and ConnectWise refuses another board's
// (tickets.md §3.1). u.StatusID is a status of the routing's board,
// u.QueueID; a technician may have moved the ticket to another board
// since. When ConnectWise refuses the status as invalid and u.QueueID is
// set, SetTicketStatus reads the ticket: on another board, it sets that
// board's status of the same name (case-insensitive, active, as
// psa.FindTicketLookup matches the names the configuration is written
// with), which must close tickets when u.StatusID does and not otherwise.
// A board without such a status is an error naming the ticket, both boards
// and the status, and listing the board's statuses; nothing is set then.
// The boards' statuses are kept for boardStatusTTL (10 minutes), except
// those of a board that had no match, read again next time. The usual
// case, a ticket still on its board, costs the one PATCH as before.
//
// It fails with an error matching psa.ErrNotApplied when ConnectWise
// throttled every attempt of the status change, or, after it refused the
// routing's status, a read for the ticket's board failed or it throttled
// every attempt of that board's status: nothing was set. The note is a
// request of its own after the status change: when it fails, the error
// matches psa.ErrStatusSetNoteFailed, the status being set.
func (b *Backend) SetTicketStatus(ctx context.Context, u psa.TicketStatusUpdate) (*psa.Ticket, error) {
	id, err := parseID("ticket", u.TicketID)
	if err != nil {
		return nil, err
	}
	status, err := parseID("status", u.StatusID)
	if err != nil {
		return nil, err
	}
	t, _, err := b.client.Tickets.Update(ctx, id, []PatchOperation{Replace("status", Reference{ID: status})})
	if err != nil {
		err = fmt.Errorf("connectwise: setting status of ticket %d: %w", id, err)
		if rest.WasUnprocessed(err) {
			// ConnectWise throttled every attempt: nothing was set.
			return nil, psa.NotApplied(err)
		}
	}
	if errors.Is(err, psa.ErrValidation) && strings.TrimSpace(u.QueueID) != "" {
		t, err = b.setStatusOnTicketBoard(ctx, id, status, u.QueueID, err)
	}
	if err != nil {
		return nil, err
	}
	if u.Note != "" {
		if err := b.AddTicketNote(ctx, psa.TicketNote{TicketID: u.TicketID, Title: u.NoteTitle, Text: u.Note}); err != nil {
			return nil, psa.StatusSetNoteFailed(err)
		}
	}
	return toTicket(t), nil
}

// CloseNoteSeparate reports that SetTicketStatus adds a closing status's
// note by a request of its own after the status change
// (psa.TicketCloseNoteSeparate).
func (b *Backend) CloseNoteSeparate() bool { return true }

// AddTicketNote adds an internal analysis note, or a discussion
// (detail description) note when n.Public is set. Notifications are off.
func (b *Backend) AddTicketNote(ctx context.Context, n psa.TicketNote) error {
	id, err := parseID("ticket", n.TicketID)
	if err != nil {
		return err
	}
	text := strings.TrimSpace(n.Text)
	if text == "" {
		return validationError("ticket note text is required")
	}
	if n.Title != "" {
		text = n.Title + "\n\n" + text
	}
	note := &ServiceNote{Text: text, InternalAnalysisFlag: !n.Public, DetailDescriptionFlag: n.Public}
	if _, _, err := b.client.Tickets.CreateNote(ctx, id, note); err != nil {
		return fmt.Errorf("connectwise: adding a note to ticket %d: %w", id, err)
	}
	return nil
}

func toTicket(t *Ticket) *psa.Ticket {
	out := &psa.Ticket{ID: strconv.FormatInt(t.ID, 10), Number: strconv.FormatInt(t.ID, 10), Title: t.Summary, ExternalRef: t.ExternalXRef, Closed: t.ClosedFlag}
	if t.Company != nil {
		out.CompanyID = strconv.FormatInt(t.Company.ID, 10)
	}
	if t.Status != nil {
		out.StatusID = strconv.FormatInt(t.Status.ID, 10)
	}
	// _info.lastUpdated is UTC ("2025-06-30T23:01:12Z"); one that does
	// not parse leaves LastActivity unknown.
	if at, err := time.Parse(time.RFC3339, t.Info["lastUpdated"]); err == nil {
		out.LastActivity = at.UTC()
	}
	return out
}

// boardStatusTTL bounds how long SetTicketStatus keeps a board's statuses.
const boardStatusTTL = 10 * time.Minute

type cachedStatuses struct {
	list []*BoardStatus
	at   time.Time
}

// boardStatuses returns the statuses of a board, kept for boardStatusTTL.
func (b *Backend) boardStatuses(ctx context.Context, board int64) ([]*BoardStatus, error) {
	b.mu.Lock()
	c, ok := b.boardStatus[board]
	b.mu.Unlock()
	if ok && b.now().Sub(c.at) < boardStatusTTL {
		return c.list, nil
	}
	list, _, err := b.client.Boards.Statuses(ctx, board)
	if err != nil {
		return nil, fmt.Errorf("reading the statuses of board %d: %w", board, err)
	}
	b.mu.Lock()
	b.boardStatus[board] = cachedStatuses{list: list, at: b.now()}
	b.mu.Unlock()
	return list, nil
}

func (b *Backend) forgetBoardStatuses(board int64) {
	b.mu.Lock()
	delete(b.boardStatus, board)
	b.mu.Unlock()
}

// setStatusOnTicketBoard handles a status refused as invalid (refused,
// which names the ticket): when the ticket is on another board than
// queue, the board status was chosen for, it sets the status of the same
// name on the ticket's board; otherwise refused stands. Its errors name
// the ticket; they match psa.ErrNotApplied when a read failed or
// ConnectWise throttled every attempt of the status change, since refused
// set nothing either. See SetTicketStatus.
func (b *Backend) setStatusOnTicketBoard(ctx context.Context, ticketID, statusID int64, queue string, refused error) (*Ticket, error) {
	routing, err := parseID("board", queue)
	if err != nil {
		return nil, refused
	}
	t, _, err := b.client.Tickets.Get(ctx, ticketID)
	if err != nil {
		return nil, psa.NotApplied(fmt.Errorf("%w; reading the ticket's board to find out why failed: %w", refused, err))
	}
	if t.Board == nil || t.Board.ID == 0 || t.Board.ID == routing {
		return nil, refused
	}
	board := t.Board.ID
	boardName := t.Board.Name
	if boardName == "" {
		boardName = strconv.FormatInt(board, 10)
	}
	statuses, err := b.boardStatuses(ctx, routing)
	if err != nil {
		return nil, psa.NotApplied(fmt.Errorf("%w; the ticket is on board %q now, and %w", refused, boardName, err))
	}
	var want *BoardStatus
	for _, st := range statuses {
		if st.ID == statusID {
			want = st
		}
	}
	if want == nil {
		return nil, fmt.Errorf("%w; the ticket is on board %q now, and status %d is not one of board %d's either: check the ticket routing's statuses", refused, boardName, statusID, routing)
	}
	there, err := b.boardStatuses(ctx, board)
	if err != nil {
		return nil, psa.NotApplied(fmt.Errorf("%w; the ticket is on board %q now, and %w", refused, boardName, err))
	}
	var active, inactive []*BoardStatus
	for _, st := range there {
		if !strings.EqualFold(strings.TrimSpace(st.Name), strings.TrimSpace(want.Name)) {
			continue
		}
		if st.Inactive {
			inactive = append(inactive, st)
		} else {
			active = append(active, st)
		}
	}
	what := "status"
	if want.ClosedStatus {
		what = "closed status"
	}
	moved := fmt.Sprintf("ticket %d is on board %q (id %d) now, not on the routing's board %d, whose %s %q (id %d) it cannot take", ticketID, boardName, board, routing, what, want.Name, statusID)
	switch {
	case len(active) == 1 && active[0].ClosedStatus == want.ClosedStatus:
	case len(active) == 1:
		b.forgetBoardStatuses(board)
		closes := "closes tickets"
		if !active[0].ClosedStatus {
			closes = "does not close tickets"
		}
		return nil, &psa.ValidationError{System: psa.SystemConnectWise, Messages: []string{fmt.Sprintf(
			"%s, and its status %q (id %d) %s, unlike the routing's: rename one of them, or set the ticket's status by hand", moved, active[0].Name, active[0].ID, closes)}}
	case len(active) > 1:
		matches := make([]string, len(active))
		for i, st := range active {
			matches[i] = fmt.Sprintf("%s (id %d)", st.Name, st.ID)
		}
		return nil, fmt.Errorf("connectwise: %s: %w", moved, &psa.AmbiguousError{Kind: "ticket status", Query: fmt.Sprintf("name %q on board %q", want.Name, boardName), Matches: matches})
	default:
		b.forgetBoardStatuses(board)
		names := make([]string, 0, len(there))
		for _, st := range there {
			if !st.Inactive {
				names = append(names, strconv.Quote(st.Name))
			}
		}
		why := "no status"
		if len(inactive) > 0 {
			why = "only an inactive status"
		}
		return nil, &psa.ValidationError{System: psa.SystemConnectWise, Messages: []string{fmt.Sprintf(
			"%s, and that board has %s named %q (its active statuses: %s): add one there, or set the ticket's status by hand",
			moved, why, want.Name, strings.Join(names, ", "))}}
	}
	st := active[0]
	b.client.logger.Info("ConnectWise ticket is on another board than the routing's; setting the status of the same name there",
		"ticket", ticketID, "board", board, "routing_board", routing, "status", st.ID, "routing_status", statusID)
	t, _, err = b.client.Tickets.Update(ctx, ticketID, []PatchOperation{Replace("status", Reference{ID: st.ID})})
	if err != nil {
		err = fmt.Errorf("connectwise: %s; setting its status %q (id %d) there: %w", moved, st.Name, st.ID, err)
		if rest.WasUnprocessed(err) {
			return nil, psa.NotApplied(err)
		}
		return nil, err
	}
	return t, nil
}
