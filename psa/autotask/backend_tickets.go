package autotask

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

// TicketNoteTexts returns the descriptions of a ticket's notes (GET
// Tickets/{id}/Notes, every page).
func (b *Backend) TicketNoteTexts(ctx context.Context, ticketID string) ([]string, error) {
	id, err := parseID("ticket", ticketID)
	if err != nil {
		return nil, err
	}
	notes, _, err := b.client.Tickets.ListNotes(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("autotask: listing the notes of ticket %d: %w", id, err)
	}
	out := make([]string, 0, len(notes))
	for _, n := range notes {
		out = append(out, n.Description)
	}
	return out, nil
}

// Autotask limits of ticket fields (REST-generated model; the SOAP
// metadata says 255 for the title, so 250 is the safe one).
const (
	maxTicketTitle       = 250
	maxTicketDescription = psa.MaxTicketDescription
	maxNoteDescription   = psa.MaxTicketNote
)

// Labels of the picklist values the ticket adapter looks up.
const (
	labelComplete     = "Complete"           // Tickets.status, the system status that closes a ticket
	labelInternalOnly = "Internal Only"      // TicketNotes.publish
	labelAllUsers     = "All Autotask Users" // TicketNotes.publish
)

// ticketPicklists maps each lookup kind to the entity and field whose
// picklist holds it.
var ticketPicklists = map[psa.TicketLookupKind][2]string{
	psa.TicketLookupQueue:        {"Tickets", "queueID"},
	psa.TicketLookupStatus:       {"Tickets", "status"},
	psa.TicketLookupPriority:     {"Tickets", "priority"},
	psa.TicketLookupSource:       {"Tickets", "source"},
	psa.TicketLookupIssueType:    {"Tickets", "issueType"},
	psa.TicketLookupSubIssueType: {"Tickets", "subIssueType"},
	psa.TicketLookupTicketType:   {"Tickets", "ticketType"},
	psa.TicketLookupCategory:     {"Tickets", "ticketCategory"},
	psa.TicketLookupNoteType:     {"TicketNotes", "noteType"},
}

// TicketLookupKinds returns every kind: all of them are Autotask picklists.
func (b *Backend) TicketLookupKinds() []psa.TicketLookupKind {
	return append([]psa.TicketLookupKind(nil), psa.TicketLookupKinds...)
}

// TicketLookups reads a picklist of Tickets (or TicketNotes.noteType) from
// entityInformation/fields. Sub-issue types are those whose parent value is
// scope, the issue type id; other kinds take no scope. The status labelled
// "Complete" is the closed one.
func (b *Backend) TicketLookups(ctx context.Context, kind psa.TicketLookupKind, scope string) ([]psa.TicketLookup, error) {
	pl, ok := ticketPicklists[kind]
	if !ok {
		return nil, fmt.Errorf("autotask: ticket lookup %q: %w", kind, psa.ErrNotSupported)
	}
	if scope != "" && kind != psa.TicketLookupSubIssueType {
		return nil, validationError(fmt.Sprintf("ticket lookup %s takes no scope, got %q", kind, scope))
	}
	values, err := b.client.EntityInformation.Picklist(ctx, pl[0], pl[1])
	if err != nil {
		return nil, err
	}
	out := make([]psa.TicketLookup, 0, len(values))
	for _, v := range values {
		if kind == psa.TicketLookupSubIssueType && scope != "" && v.ParentValue != scope {
			continue
		}
		out = append(out, psa.TicketLookup{
			ID: strings.TrimSpace(v.Value), Name: v.Label, Active: v.IsActive, Default: v.IsDefaultValue,
			Closed: kind == psa.TicketLookupStatus && normLabel(v.Label) == normLabel(labelComplete),
		})
	}
	return out, nil
}

// CreateTicket creates a ticket with externalID set to req.ExternalRef.
// Status and priority default to the picklists' default values; a queue is
// required (psa-sync does not assign tickets to resources).
//
// Autotask requires dueDateTime unless the ticket's category defaults both
// the due date and the due time (tickets.md §2.2). Without req.DueAt, a
// ticket without a category is due a day after it opened, or after it is
// filed when it opened earlier (an alert raised while psa-syncd was down,
// or before ticket sync was on): a ticket overdue when it is filed would
// set off the tenant's overdue escalations at once. A ticket with a
// category is sent without a due date, so that the category's defaults set
// it; when Autotask refuses that with "dueDateTime is required." (a 500
// with errors[]: the create was not applied, so sending it again cannot
// make a second ticket), CreateTicket sends it once more, due as above,
// and sends that category's tickets with a due date for the
// next dueCategoryTTL.
//
// Autotask's answer names the ticket (itemId) but not its number, which
// is not read back (a request for every create): the ticket is returned
// without it, and its caller learns it when it next reads the ticket.
// CreateTicket fails with an error matching psa.ErrNotApplied
// when a picklist it reads first could not be read, or Autotask throttled
// every attempt of the create: no ticket was made.
func (b *Backend) CreateTicket(ctx context.Context, req psa.CreateTicketRequest) (*psa.Ticket, error) {
	if err := req.Validate(); err != nil {
		return nil, validationError(strings.TrimPrefix(err.Error(), "psa: "))
	}
	company, err := parseID("company", req.CompanyID)
	if err != nil {
		return nil, err
	}
	r := &CreateTicketRequest{
		CompanyID:   company,
		Title:       psa.TruncateTitle(req.Title, maxTicketTitle),
		Description: psa.TruncateTitle(req.Description, maxTicketDescription),
		ExternalID:  req.ExternalRef,
	}
	rt := req.Routing
	if rt.QueueID == "" {
		return nil, validationError("ticket queue id is required")
	}
	for _, f := range []struct {
		kind string
		in   string
		out  **int64
	}{
		{"contract", req.ContractID, &r.ContractID}, {"queue", rt.QueueID, &r.QueueID},
		{"source", rt.SourceID, &r.Source}, {"issue type", rt.IssueTypeID, &r.IssueType},
		{"sub-issue type", rt.SubIssueTypeID, &r.SubIssueType}, {"ticket type", rt.TicketTypeID, &r.TicketType},
		{"ticket category", rt.CategoryID, &r.TicketCategory},
	} {
		if f.in == "" {
			continue
		}
		id, err := parseID(f.kind, f.in)
		if err != nil {
			return nil, err
		}
		*f.out = &id
	}
	if r.Status, err = b.picklistOrDefault(ctx, "Tickets", "status", "status", rt.StatusID); err != nil {
		return nil, psa.NotApplied(err)
	}
	if r.Priority, err = b.picklistOrDefault(ctx, "Tickets", "priority", "priority", rt.PriorityID); err != nil {
		return nil, psa.NotApplied(err)
	}
	opened := req.OpenedAt
	if opened.IsZero() {
		opened = b.now()
	}
	due := opened
	if now := b.now(); now.After(due) {
		due = now
	}
	defaultDue := NewTimestamp(due.UTC().Add(24 * time.Hour))
	switch {
	case !req.DueAt.IsZero():
		r.DueDateTime = NewTimestamp(req.DueAt.UTC())
	case r.TicketCategory == nil || b.categoryNeedsDue(*r.TicketCategory):
		r.DueDateTime = defaultDue
	}
	id, _, err := b.client.Tickets.Create(ctx, r)
	if err != nil && r.DueDateTime == nil && dueDateRequired(err) {
		// The category does not default the due date and time. The
		// refusal was definite, so the ticket does not exist: send it
		// again, with a due date.
		b.client.logger.Info("Autotask ticket category does not default the due date; sending tickets of it with one", "category", *r.TicketCategory)
		b.setCategoryNeedsDue(*r.TicketCategory)
		r.DueDateTime = defaultDue
		id, _, err = b.client.Tickets.Create(ctx, r)
	}
	if err != nil {
		err = fmt.Errorf("autotask: creating ticket %q for company %d: %w", req.ExternalRef, company, err)
		if rest.WasUnprocessed(err) {
			// Autotask throttled every attempt (after a refusal for the
			// due date, which was not applied either): no ticket.
			err = psa.NotApplied(err)
		}
		return nil, err
	}
	return &psa.Ticket{ID: strconv.FormatInt(id, 10), CompanyID: strconv.FormatInt(company, 10), Title: r.Title,
		ExternalRef: req.ExternalRef, StatusID: strconv.FormatInt(r.Status, 10)}, nil
}

// dueCategoryTTL is how long tickets of a category that Autotask refused a
// ticket without dueDateTime for are sent with a due date, without trying
// the category's defaults first: a category given due-date defaults since
// then is used again after it.
const dueCategoryTTL = 10 * time.Minute

// categoryNeedsDue reports whether Autotask refused a ticket of category
// without dueDateTime in the last dueCategoryTTL.
func (b *Backend) categoryNeedsDue(category int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.dueCategories[category]
	return ok && b.now().Sub(at) < dueCategoryTTL
}

func (b *Backend) setCategoryNeedsDue(category int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dueCategories == nil {
		b.dueCategories = map[int64]time.Time{}
	}
	b.dueCategories[category] = b.now()
}

// dueDateRequired reports whether err is Autotask's definite refusal of a
// ticket for want of dueDateTime: a validation error (a 500 with
// errors[], which was not applied) that names the field, never an outcome
// that is unknown.
func dueDateRequired(err error) bool {
	var ve *psa.ValidationError
	if errors.Is(err, psa.ErrOutcomeUnknown) || !errors.As(err, &ve) {
		return false
	}
	for _, m := range ve.Messages {
		if strings.Contains(strings.ToLower(m), "duedatetime") {
			return true
		}
	}
	return false
}

// picklistOrDefault parses id, or returns the picklist's default value when
// id is empty.
func (b *Backend) picklistOrDefault(ctx context.Context, entity, field, kind, id string) (int64, error) {
	if id != "" {
		return parseID(kind, id)
	}
	values, err := b.client.EntityInformation.Picklist(ctx, entity, field)
	if err != nil {
		return 0, readFailed(err)
	}
	for _, v := range values {
		if v.IsDefaultValue && v.IsActive {
			return v.Int()
		}
	}
	return 0, validationError(fmt.Sprintf("the %s.%s picklist has no default value; set the ticket %s id", entity, field, kind))
}

// readFailed returns err, the failure of a read made before a ticket or
// note is sent, such that it does not match psa.ErrValidation: a 500 with
// errors[] on a read is Autotask failing the read, not refusing the
// ticket, which callers do not send again soon (the ticket engine records
// such a create as refused until its routing changes, or for a day). A
// 500 saying the API user lacks the permission still matches
// psa.ErrForbidden, so that callers say which permission to grant.
func readFailed(err error) error {
	if !errors.Is(err, psa.ErrValidation) {
		return err
	}
	return &readError{err: err}
}

// readError is a read that a ticket or note needs failing (readFailed).
type readError struct{ err error }

func (e *readError) Error() string {
	return "autotask: a read the ticket or note needs failed, so it was not sent: " + e.err.Error()
}

// Unwrap returns psa.ErrForbidden when the read was refused the API user,
// and nil otherwise.
func (e *readError) Unwrap() error {
	if errors.Is(e.err, psa.ErrForbidden) {
		return psa.ErrForbidden
	}
	return nil
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
	return b.toTicket(ctx, t)
}

// GetTickets returns the tickets with the given ids that Autotask
// returns: one query per 500 ids (an "in" filter on id).
func (b *Backend) GetTickets(ctx context.Context, ids []string) (map[string]*psa.Ticket, error) {
	list, err := bulkGet(ctx, ids, b.client.Tickets.List)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*psa.Ticket, len(list))
	for _, t := range list {
		pt, err := b.toTicket(ctx, t)
		if err != nil {
			return nil, err
		}
		out[pt.ID] = pt
	}
	return out, nil
}

// FindTickets queries tickets by externalID and companyID (externalID
// alone with q.AnyCompany).
func (b *Backend) FindTickets(ctx context.Context, q psa.TicketQuery) ([]psa.Ticket, error) {
	if err := psa.CheckExternalRef(q.ExternalRef); err != nil {
		return nil, validationError(err.Error())
	}
	filter := []Filter{Eq("externalID", q.ExternalRef)}
	var company int64
	if !q.AnyCompany {
		var err error
		if company, err = parseID("company", q.CompanyID); err != nil {
			return nil, err
		}
		filter = append(filter, Eq("companyID", company))
	}
	list, _, err := b.client.Tickets.List(ctx, NewQuery(filter...))
	if err != nil {
		return nil, err
	}
	out := make([]psa.Ticket, 0, len(list))
	for _, t := range list {
		// The query's eq may fold case; the reference must match exactly,
		// and the ticket be the company's (as ConnectWise and Kaseya BMS
		// check): another customer's is not this one's to close.
		if t.ExternalID != q.ExternalRef || !q.AnyCompany && t.CompanyID != company {
			continue
		}
		pt, err := b.toTicket(ctx, t)
		if err != nil {
			return nil, err
		}
		out = append(out, *pt)
	}
	return out, nil
}

// SetTicketStatus PATCHes the status. A note that goes with a closing
// status goes into the ticket's resolution, after u.Resolution (what the
// ticket held, which the PATCH replaces whole); with any other status it is
// added as an internal note with u's note title and type. It fails with an
// error matching psa.ErrNotApplied when the status picklist could not be
// read, or Autotask throttled every attempt of the PATCH: nothing was set.
//
// Autotask answers the PATCH with the ticket's id only. The ticket
// returned is not read back: it has the id, the status set and whether
// that status closes it, nothing else. A read back would cost a request
// for every close and reopen, and a read that failed would report a
// status change that was applied as failed.
func (b *Backend) SetTicketStatus(ctx context.Context, u psa.TicketStatusUpdate) (*psa.Ticket, error) {
	id, err := parseID("ticket", u.TicketID)
	if err != nil {
		return nil, err
	}
	status, err := parseID("status", u.StatusID)
	if err != nil {
		return nil, err
	}
	closing, err := b.closedStatus(ctx, status)
	if err != nil {
		return nil, psa.NotApplied(err)
	}
	r := &UpdateTicketRequest{ID: id, Status: &status}
	if closing && u.Note != "" {
		r.Resolution = Ptr(resolutionWith(u.Resolution, u.Note))
	}
	if _, _, err := b.client.Tickets.Update(ctx, r); err != nil {
		err = fmt.Errorf("autotask: setting status of ticket %d: %w", id, err)
		if rest.WasUnprocessed(err) {
			err = psa.NotApplied(err)
		}
		return nil, err
	}
	if !closing && u.Note != "" {
		if err := b.AddTicketNote(ctx, psa.TicketNote{TicketID: u.TicketID, Title: u.NoteTitle, Text: u.Note, NoteTypeID: u.NoteTypeID}); err != nil {
			return nil, psa.StatusSetNoteFailed(err)
		}
	}
	return &psa.Ticket{ID: strconv.FormatInt(id, 10), StatusID: strconv.FormatInt(status, 10), Closed: closing}, nil
}

// resolutionWith is the resolution a close writes: note after the
// ticket's resolution as read, which the PATCH would otherwise replace (a
// technician's account of what was done, often in the customer's
// completion e-mail), cut at its end when both do not fit; the
// resolution alone when it holds the note already.
func resolutionWith(resolution, note string) string {
	resolution, note = strings.TrimSpace(resolution), psa.TruncateTitle(note, maxNoteDescription)
	switch {
	case resolution == "":
		return note
	case strings.Contains(resolution, note):
		return resolution
	}
	room := maxNoteDescription - psa.TextLength(note) - len("\n\n")
	if room < 1 {
		return note
	}
	return psa.TruncateTitle(resolution, room) + "\n\n" + note
}

func (b *Backend) closedStatus(ctx context.Context, status int64) (bool, error) {
	label, err := b.label(ctx, "Tickets", "status", status)
	if err != nil {
		return false, err
	}
	return normLabel(label) == normLabel(labelComplete), nil
}

// AddTicketNote adds a note under the ticket. The note type defaults to
// the picklist's default; publish is "Internal Only" unless the note is
// public ("All Autotask Users"), looked up by label because the values are
// tenant-specific and a wrong one publishes internal notes to customers.
func (b *Backend) AddTicketNote(ctx context.Context, n psa.TicketNote) error {
	id, err := parseID("ticket", n.TicketID)
	if err != nil {
		return err
	}
	if strings.TrimSpace(n.Text) == "" {
		return validationError("ticket note text is required")
	}
	noteType, err := b.picklistOrDefault(ctx, "TicketNotes", "noteType", "note type", n.NoteTypeID)
	if err != nil {
		return err
	}
	label := labelInternalOnly
	if n.Public {
		label = labelAllUsers
	}
	publish, err := b.client.EntityInformation.PicklistValue(ctx, "TicketNotes", "publish", label)
	if err != nil {
		return err
	}
	_, _, err = b.client.Tickets.CreateNote(ctx, &CreateTicketNoteRequest{
		TicketID: id, Title: psa.TruncateTitle(n.Title, maxTicketTitle),
		Description: psa.TruncateTitle(n.Text, maxNoteDescription), NoteType: noteType, Publish: publish,
	})
	if err != nil {
		return fmt.Errorf("autotask: adding a note to ticket %d: %w", id, err)
	}
	return nil
}

func (b *Backend) toTicket(ctx context.Context, t *Ticket) (*psa.Ticket, error) {
	closed, err := b.closedStatus(ctx, t.Status)
	var pe *PicklistError
	if err != nil && !errors.As(err, &pe) {
		return nil, err
	}
	out := &psa.Ticket{
		ID: strconv.FormatInt(t.ID, 10), Number: t.TicketNumber, CompanyID: strconv.FormatInt(t.CompanyID, 10),
		Title: t.Title, ExternalRef: t.ExternalID, StatusID: strconv.FormatInt(t.Status, 10), Closed: closed, Resolution: t.Resolution,
	}
	if t.LastActivityDate != nil {
		out.LastActivity = t.LastActivityDate.UTC()
	}
	return out, nil
}
