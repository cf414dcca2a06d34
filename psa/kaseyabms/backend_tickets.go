package kaseyabms

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
)

// Ensure Backend satisfies the psa.Ticketer interface and lists ticket
// notes.
var (
	_ psa.Ticketer         = (*Backend)(nil)
	_ psa.TicketNoteLister = (*Backend)(nil)
)

// TicketNoteTexts returns the details of a ticket's notes (GET
// servicedesk/tickets/{id}/notes).
func (b *Backend) TicketNoteTexts(ctx context.Context, ticketID string) ([]string, error) {
	id, err := parseID("ticket", ticketID)
	if err != nil {
		return nil, err
	}
	notes, _, err := b.client.Tickets.ListNotes(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("kaseyabms: listing the notes of ticket %d: %w", id, err)
	}
	out := make([]string, 0, len(notes))
	for _, n := range notes {
		out = append(out, n.Details)
	}
	return out, nil
}

// maxTitle is the longest title psa-sync writes. BMS declares no limit;
// tickets with very long titles are hard to read in its lists.
const maxTitle = 200

// closedStatusNames are the (folded) status names that complete a ticket.
// BMS's status lookup carries a TypeId whose meaning is not documented, so
// closing is decided by name; a ticket read back is closed when it has a
// completion date.
var closedStatusNames = map[string]bool{"completed": true, "complete": true, "closed": true, "resolved": true}

// TicketLookupKinds returns the kinds BMS has.
func (b *Backend) TicketLookupKinds() []psa.TicketLookupKind {
	return []psa.TicketLookupKind{psa.TicketLookupQueue, psa.TicketLookupStatus, psa.TicketLookupPriority, psa.TicketLookupSource,
		psa.TicketLookupIssueType, psa.TicketLookupSubIssueType, psa.TicketLookupTicketType, psa.TicketLookupNoteType}
}

// TicketLookups reads queues, statuses, priorities and issue types from
// their lookups, sub-issue types of the issue type given as scope, and
// ticket types, sources and note types from the generic lookup tables
// TableTicketType, TableTicketSource and TableNoteType.
func (b *Backend) TicketLookups(ctx context.Context, kind psa.TicketLookupKind, scope string) ([]psa.TicketLookup, error) {
	if scope != "" && kind != psa.TicketLookupSubIssueType {
		return nil, validationError(fmt.Sprintf("ticket lookup %s takes no scope, got %q", kind, scope))
	}
	t := b.client.Tickets
	var list []*Lookup
	var err error
	switch kind {
	case psa.TicketLookupQueue:
		list, _, err = t.Queues(ctx)
	case psa.TicketLookupStatus:
		list, _, err = t.Statuses(ctx)
	case psa.TicketLookupPriority:
		list, _, err = t.Priorities(ctx)
	case psa.TicketLookupIssueType:
		list, _, err = t.IssueTypes(ctx)
	case psa.TicketLookupSubIssueType:
		if strings.TrimSpace(scope) == "" {
			return nil, validationError(fmt.Sprintf("ticket lookup %s needs the issue type id as its scope", kind))
		}
		issue, perr := parseID("issue type", scope)
		if perr != nil {
			return nil, perr
		}
		list, _, err = t.IssueSubTypes(ctx, issue)
	case psa.TicketLookupTicketType:
		list, _, err = t.Table(ctx, TableTicketType)
	case psa.TicketLookupSource:
		list, _, err = t.Table(ctx, TableTicketSource)
	case psa.TicketLookupNoteType:
		list, _, err = t.Table(ctx, TableNoteType)
	default:
		return nil, fmt.Errorf("kaseyabms: ticket lookup %q: %w", kind, psa.ErrNotSupported)
	}
	if err != nil {
		return nil, err
	}
	out := make([]psa.TicketLookup, 0, len(list))
	for _, l := range list {
		out = append(out, psa.TicketLookup{
			ID: strconv.Itoa(l.ID), Name: l.Name, Active: l.Active(), Default: l.IsDefault,
			Closed: kind == psa.TicketLookupStatus && closedStatusNames[strings.ToLower(strings.TrimSpace(l.Name))],
		})
	}
	return out, nil
}

// ticketLookups returns the entries of a ticket lookup without scope
// (statuses, priorities, note types), kept for serviceTTL: a ticket pass
// needs them for each create, close and note.
func (b *Backend) ticketLookups(ctx context.Context, kind psa.TicketLookupKind) ([]psa.TicketLookup, error) {
	return cachedList(b, "ticket/"+string(kind), func() ([]psa.TicketLookup, error) { return b.TicketLookups(ctx, kind, "") })
}

// ticketLookupID returns the entry of a ticket lookup with the id, from
// the kept entries (ticketLookups); an id not among them (an entry added
// since) is looked for in a fresh read, and the kept entries are read
// again next time.
func (b *Backend) ticketLookupID(ctx context.Context, kind psa.TicketLookupKind, id string) (*psa.TicketLookup, error) {
	list, err := b.ticketLookups(ctx, kind)
	if err != nil {
		return nil, err
	}
	for i, l := range list {
		if l.ID == id {
			return &list[i], nil
		}
	}
	b.forget("ticket/" + string(kind))
	return psa.FindTicketLookupID(ctx, b, kind, "", id)
}

// defaultTicketLookup returns the id of the active default entry of a
// ticket lookup (ticketLookups), 0 when there is none; the kept entries
// are then read again next time.
func (b *Backend) defaultTicketLookup(ctx context.Context, kind psa.TicketLookupKind) (int, error) {
	list, err := b.ticketLookups(ctx, kind)
	if err != nil {
		return 0, err
	}
	for _, l := range list {
		if l.Default && l.Active {
			return strconv.Atoi(l.ID)
		}
	}
	b.forget("ticket/" + string(kind))
	return 0, nil
}

// CreateTicket creates a ticket on the account's main location. BMS
// requires a status, a ticket type and a source; the priority defaults to
// the default priority. The title carries psa.RefToken(req.ExternalRef),
// the details the reference itself, because BMS tickets have no searchable
// external-reference field. It fails with an error matching
// psa.ErrNotApplied when the default priority or the account's locations
// could not be read, or BMS throttled every attempt of the create (or the
// hourly limiter refused it): no ticket was made.
func (b *Backend) CreateTicket(ctx context.Context, req psa.CreateTicketRequest) (*psa.Ticket, error) {
	if err := req.Validate(); err != nil {
		return nil, validationError(strings.TrimPrefix(err.Error(), "psa: "))
	}
	account, err := parseID("company", req.CompanyID)
	if err != nil {
		return nil, err
	}
	rt := req.Routing
	var missing []string
	for _, f := range []struct{ name, v string }{{"status", rt.StatusID}, {"ticket type", rt.TicketTypeID}, {"source", rt.SourceID}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, validationError("Kaseya BMS tickets need a " + strings.Join(missing, ", ") + " id")
	}
	token := psa.RefToken(req.ExternalRef)
	in := &TicketInput{
		Title:     psa.TruncateTitle(req.Title, maxTitle-len(token)-1) + " " + token,
		Details:   strings.TrimSpace(req.Description + "\n\nExternal reference: " + req.ExternalRef),
		AccountID: account,
		OpenDate:  Time{req.OpenedAt.UTC()},
	}
	if in.OpenDate.IsZero() {
		in.OpenDate = Time{b.now().UTC()}
	}
	if !req.DueAt.IsZero() {
		in.DueDate = &Time{req.DueAt.UTC()}
	}
	for _, f := range []struct {
		kind, v string
		out     *int
	}{{"status", rt.StatusID, &in.StatusID}, {"ticket type", rt.TicketTypeID, &in.TypeID}, {"source", rt.SourceID, &in.SourceID}} {
		if *f.out, err = parseID(f.kind, f.v); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		kind, v string
		out     **int
	}{{"queue", rt.QueueID, &in.QueueID}, {"issue type", rt.IssueTypeID, &in.IssueTypeID},
		{"sub-issue type", rt.SubIssueTypeID, &in.SubIssueTypeID}, {"contract", req.ContractID, &in.ContractID}} {
		if f.v == "" {
			continue
		}
		n, err := parseID(f.kind, f.v)
		if err != nil {
			return nil, err
		}
		*f.out = &n
	}
	if in.PriorityID, err = b.priority(ctx, rt.PriorityID); err != nil {
		return nil, psa.NotApplied(err)
	}
	if in.LocationID, err = b.mainLocation(ctx, account); err != nil {
		return nil, psa.NotApplied(err)
	}
	t, _, err := b.client.Tickets.Create(ctx, in)
	if err != nil {
		err = fmt.Errorf("kaseyabms: creating ticket %q for account %d: %w", req.ExternalRef, account, err)
		if rest.WasUnprocessed(err) {
			// BMS throttled every attempt, or the hourly limiter
			// refused it before it was sent: no ticket.
			err = psa.NotApplied(err)
		}
		return nil, err
	}
	b.mu.Lock()
	if !b.probe.due && !b.probe.done {
		b.probe = refProbe{due: true, ticketID: t.ID, token: psa.RefToken(req.ExternalRef), account: account, created: b.now()}
	}
	b.mu.Unlock()
	return toTicket(t, req.ExternalRef), nil
}

// refProbe is the one check a process makes that BMS's ticket search
// finds a ticket by the reference token at the end of its title:
// FindTickets relies on Filter.Title matching part of a title, which the
// API does not document (tickets.md 4.3, open question 5). If BMS matched
// whole titles, every search would come back empty, and a create whose
// answer was lost would be sent again: a duplicate ticket. The first
// ticket the process creates is searched for by its token once, by the
// first FindTickets refProbeAfter after the create (a search right after
// it could miss a ticket not searchable yet); not found, an error is
// logged. One request per process, whatever the outcome.
type refProbe struct {
	due, done bool
	ticketID  int
	token     string
	account   int
	created   time.Time
}

// refProbeAfter is how long after the first create the probe waits: well
// beyond policies.settle_time (2 minutes by default), the time psa-syncd
// allows a create to become searchable.
const refProbeAfter = 10 * time.Minute

// checkRefSearch runs the probe (refProbe) when it is due.
func (b *Backend) checkRefSearch(ctx context.Context) {
	b.mu.Lock()
	p := b.probe
	if !p.due || b.now().Sub(p.created) < refProbeAfter {
		b.mu.Unlock()
		return
	}
	b.probe.due, b.probe.done = false, true
	b.mu.Unlock()
	log := b.client.logger
	list, _, err := b.client.Tickets.SearchAll(ctx, &TicketFilter{Title: p.token, AccountIDs: strconv.Itoa(p.account)})
	if err != nil {
		log.Warn("Could not check that Kaseya BMS finds a ticket by the reference token in its title; not checked again until a restart",
			"ticket", p.ticketID, "token", p.token, "err", err)
		return
	}
	for _, t := range list {
		if t.ID == p.ticketID {
			log.Debug("Kaseya BMS finds a ticket by the reference token in its title", "ticket", p.ticketID, "token", p.token)
			return
		}
	}
	log.Error("Kaseya BMS's ticket search did not find the ticket psa-syncd created by the reference token in its title: "+
		"if BMS's title filter does not match part of a title, psa-syncd cannot find a ticket whose create's answer was lost, "+
		"and creates it again (a duplicate ticket); unless this ticket was deleted or the token removed from its title since. "+
		"Search BMS's tickets for the token by hand to tell", "ticket", p.ticketID, "token", p.token, "account", p.account)
}

func (b *Backend) priority(ctx context.Context, id string) (int, error) {
	if id != "" {
		return parseID("priority", id)
	}
	p, err := b.defaultTicketLookup(ctx, psa.TicketLookupPriority)
	if err != nil || p != 0 {
		return p, err
	}
	return 0, validationError("Kaseya BMS has no default priority; set the ticket priority id")
}

// mainLocation returns the account's main location (LocationId is
// required on tickets), or its only one. The account's locations are kept
// for serviceTTL, except when neither is found.
func (b *Backend) mainLocation(ctx context.Context, account int) (int, error) {
	key := "locations/" + strconv.Itoa(account)
	locs, err := cachedList(b, key, func() ([]*Location, error) {
		locs, _, err := b.client.Tickets.Locations(ctx, account)
		return locs, err
	})
	if err != nil {
		return 0, err
	}
	for _, l := range locs {
		if l.IsMain {
			return l.ID, nil
		}
	}
	if len(locs) == 1 {
		return locs[0].ID, nil
	}
	b.forget(key)
	return 0, validationError(fmt.Sprintf("account %d has %d locations and none is the main one", account, len(locs)))
}

// GetTicket returns a ticket. Its ExternalRef is read from the details.
func (b *Backend) GetTicket(ctx context.Context, id string) (*psa.Ticket, error) {
	n, err := parseID("ticket", id)
	if err != nil {
		return nil, err
	}
	t, _, err := b.client.Tickets.Get(ctx, n)
	if err != nil {
		return nil, err
	}
	return toTicket(t, refFromDetails(t.Details)), nil
}

// FindTickets searches the account's tickets (every account's with
// q.AnyCompany: Filter.AccountIds left out) whose title contains the
// reference token (completed ones too), and keeps those whose title holds
// the token exactly.
func (b *Backend) FindTickets(ctx context.Context, q psa.TicketQuery) ([]psa.Ticket, error) {
	if err := psa.CheckExternalRef(q.ExternalRef); err != nil {
		return nil, validationError(err.Error())
	}
	b.checkRefSearch(ctx)
	token := psa.RefToken(q.ExternalRef)
	filter := &TicketFilter{Title: token}
	var account int
	if !q.AnyCompany {
		var err error
		if account, err = parseID("company", q.CompanyID); err != nil {
			return nil, err
		}
		filter.AccountIDs = strconv.Itoa(account)
	}
	list, _, err := b.client.Tickets.SearchAll(ctx, filter)
	if err != nil {
		return nil, err
	}
	var out []psa.Ticket
	for _, t := range list {
		if strings.Contains(t.Title, token) && t.AccountID != nil && (q.AnyCompany || *t.AccountID == account) {
			out = append(out, *toTicket(t, q.ExternalRef))
		}
	}
	return out, nil
}

// SetTicketStatus resolves the ticket (with the note as an internal
// comment) when the status completes it, and otherwise PATCHes the status
// and adds the note with u's note title and type. The statuses are kept
// for serviceTTL (ticketLookupID). It fails with an error matching
// psa.ErrNotApplied when the statuses could not be read, or BMS throttled
// every attempt of the status change: nothing was set.
func (b *Backend) SetTicketStatus(ctx context.Context, u psa.TicketStatusUpdate) (*psa.Ticket, error) {
	id, err := parseID("ticket", u.TicketID)
	if err != nil {
		return nil, err
	}
	status, err := parseID("status", u.StatusID)
	if err != nil {
		return nil, err
	}
	st, err := b.ticketLookupID(ctx, psa.TicketLookupStatus, u.StatusID)
	if err != nil {
		return nil, psa.NotApplied(err)
	}
	var t *Ticket
	if st.Closed {
		comment := u.Note
		if comment == "" {
			comment = "Closed by psa-sync."
		}
		t, _, err = b.client.Tickets.Resolve(ctx, id, &ResolveTicket{Comment: comment, StatusID: status, IsInternal: true})
	} else {
		t, _, err = b.client.Tickets.Patch(ctx, id, []PatchOperation{{Op: "replace", Path: "/StatusId", Value: status}})
	}
	if err != nil {
		err = fmt.Errorf("kaseyabms: setting status of ticket %d: %w", id, err)
		if rest.WasUnprocessed(err) {
			err = psa.NotApplied(err)
		}
		return nil, err
	}
	if !st.Closed && u.Note != "" {
		if err := b.AddTicketNote(ctx, psa.TicketNote{TicketID: u.TicketID, Title: u.NoteTitle, Text: u.Note, NoteTypeID: u.NoteTypeID}); err != nil {
			return nil, psa.StatusSetNoteFailed(err)
		}
	}
	return toTicket(t, refFromDetails(t.Details)), nil
}

// AddTicketNote adds an internal note (public when n.Public is set) of the
// given note type or the default one (the note types kept for serviceTTL),
// mailing nobody.
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
	typeID := 0
	if n.NoteTypeID != "" {
		if typeID, err = parseID("note type", n.NoteTypeID); err != nil {
			return err
		}
	} else {
		if typeID, err = b.defaultTicketLookup(ctx, psa.TicketLookupNoteType); err != nil {
			return err
		}
		if typeID == 0 {
			return validationError("Kaseya BMS has no default note type; set the note type id")
		}
	}
	_, _, err = b.client.Tickets.CreateNote(ctx, id, &TicketNoteInput{Details: text, IsInternal: !n.Public, TypeID: typeID, NoteDate: Time{b.now().UTC()}})
	if err != nil {
		return fmt.Errorf("kaseyabms: adding a note to ticket %d: %w", id, err)
	}
	return nil
}

const refLabel = "External reference: "

// refFromDetails reads the reference CreateTicket wrote into the details.
func refFromDetails(details string) string {
	i := strings.LastIndex(details, refLabel)
	if i < 0 {
		return ""
	}
	ref, _, _ := strings.Cut(details[i+len(refLabel):], "\n")
	return strings.TrimSpace(ref)
}

func toTicket(t *Ticket, ref string) *psa.Ticket {
	out := &psa.Ticket{ID: strconv.Itoa(t.ID), Number: t.TicketNumber, Title: t.Title, ExternalRef: ref,
		StatusID: strconv.Itoa(t.StatusID), Closed: t.Completed()}
	if t.AccountID != nil {
		out.CompanyID = strconv.Itoa(*t.AccountID)
	}
	for _, at := range []ZonedTime{t.ModifiedOn, t.LastActivityUpdate, t.LastStatusUpdate} {
		if at.After(out.LastActivity) {
			out.LastActivity = at.UTC()
		}
	}
	return out
}
