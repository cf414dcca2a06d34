package export

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// Tickets is the ticket routing of psa_ticket_routing: where and how
// psa-syncd's ticket sync files a customer's vendor alerts as PSA tickets.
// Ids are the PSA's own (looked up by name with the psa_ticket_lookup data
// source). Customers take part when their mapping has TicketSync on.
type Tickets struct {
	// Enabled false keeps the routing but stops creating and updating
	// tickets.
	Enabled bool `json:"enabled"`
	// Schedule is when ticket passes run, in the grammar of package
	// schedule; empty means the daemon's configured ticket schedule.
	Schedule string `json:"schedule"`
	// QueueID is the Autotask queue, the ConnectWise service board or the
	// Kaseya BMS queue new tickets go to.
	QueueID string `json:"queue_id"`
	// NewStatusID is the status of new tickets; empty leaves the PSA's
	// default (Autotask picklist default, the ConnectWise board's default).
	NewStatusID string `json:"new_status_id"`
	// ClosedStatusID is the status a ticket gets when its alert is resolved
	// and OnResolve is "close".
	ClosedStatusID string `json:"closed_status_id"`
	// ReopenStatusID is the status a closed ticket gets when its alert
	// comes back and OnReturn is "reopen".
	ReopenStatusID string `json:"reopen_status_id"`
	// Priorities maps each alert severity ("high", "medium", "low") to a
	// priority id; a severity without one gets the PSA's default priority.
	Priorities map[string]string `json:"priorities"`
	// SourceID, IssueTypeID, SubIssueTypeID, TicketTypeID, CategoryID and
	// NoteTypeID are the PSA-specific settings: Autotask source, issue and
	// sub-issue type, ticket type and category, note type; ConnectWise
	// source and type; Kaseya BMS source, issue and sub-issue type, ticket
	// type and note type. Empty means the PSA's default where it has one.
	SourceID       string `json:"source_id"`
	IssueTypeID    string `json:"issue_type_id"`
	SubIssueTypeID string `json:"sub_issue_type_id"`
	TicketTypeID   string `json:"ticket_type_id"`
	CategoryID     string `json:"category_id"`
	NoteTypeID     string `json:"note_type_id"`
	// MinSeverity is the lowest alert severity that becomes a ticket.
	MinSeverity string `json:"min_severity"`
	// TitleFormat is the ticket title with placeholders (see
	// TitlePlaceholders).
	TitleFormat string `json:"title_format"`
	// OnResolve is what happens to a ticket when its alert is resolved:
	// "close" (set ClosedStatusID with a note) or "note" (add a note only).
	OnResolve string `json:"on_resolve"`
	// OnReturn is what happens when the alert of a closed ticket comes
	// back: "reopen" (within ReopenWindow) or "new" (a new ticket).
	OnReturn string `json:"on_return"`
	// ReopenWindow is how long after closing a ticket is reopened rather
	// than replaced, as a Go duration; empty means DefaultReopenWindow.
	ReopenWindow string `json:"reopen_window"`
	// BackfillWindow, a Go duration, is how old an alert with no ticket
	// yet may be and still get a ticket of its own: an older one (raised
	// before ticket sync was turned on, or while it was off) is named in
	// the customer's summary ticket instead. Empty means no window: every
	// alert gets a ticket of its own, as before the setting.
	BackfillWindow string `json:"backfill_window,omitempty"`
	// MaxPerPass and MaxPerCustomer cap the tickets created in one pass, in
	// total (summary tickets included) and for one customer. What is over
	// a customer's cap is summarised in one ticket per customer; what is
	// left when the pass cap is reached waits for a later pass. 0 means
	// the daemon's defaults.
	MaxPerPass     int64 `json:"max_per_pass"`
	MaxPerCustomer int64 `json:"max_per_customer"`
	// Owner is the token of the psa_ticket_routing resource instance that
	// holds the routing, when it took it over from another or wrote it
	// into a document that holds owners (see CustomerMapping.Owner);
	// empty otherwise.
	Owner string `json:"owner,omitempty"`
}

// Ticket routing values.
const (
	OnResolveClose = "close"
	OnResolveNote  = "note"
	OnReturnReopen = "reopen"
	OnReturnNew    = "new"

	// DefaultTitleFormat is the title psa-syncd uses when TitleFormat is
	// empty.
	DefaultTitleFormat = "[Sophos] {Severity}: {description}"
	// DefaultReopenWindow is the reopen window when ReopenWindow is empty.
	DefaultReopenWindow = 24 * time.Hour
)

// Severities are the alert severities, lowest first.
var Severities = []string{"low", "medium", "high"}

// TitlePlaceholders are the placeholders TitleFormat may use.
var TitlePlaceholders = []string{"{severity}", "{Severity}", "{description}", "{type}", "{category}", "{product}", "{customer}"}

// OnResolveValues and OnReturnValues are the allowed OnResolve and OnReturn
// values.
var (
	OnResolveValues = []string{OnResolveClose, OnResolveNote}
	OnReturnValues  = []string{OnReturnReopen, OnReturnNew}
)

var placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)

// requiredTicketFields lists, per PSA, the routing fields a ticket cannot be
// created without (beyond the queue).
var requiredTicketFields = map[psa.System][]string{
	psa.SystemKaseyaBMS: {"new_status_id", "ticket_type_id", "source_id"},
}

// problems validates the ticket routing for the document's system.
func (t *Tickets) problems(system psa.System, add func(entry, field, format string, args ...any)) {
	f := func(name string) string { return "tickets." + name }
	if strings.TrimSpace(t.QueueID) == "" {
		add("", f("queue_id"), "is required")
	}
	values := map[string]string{
		"new_status_id": t.NewStatusID, "ticket_type_id": t.TicketTypeID, "source_id": t.SourceID,
	}
	for _, name := range requiredTicketFields[system] {
		if strings.TrimSpace(values[name]) == "" {
			add("", f(name), "is required for %s tickets", system)
		}
	}
	if t.Schedule != "" {
		if _, err := schedule.Parse(t.Schedule); err != nil {
			add("", f("schedule"), "is invalid: %v", err)
		}
	}
	for _, sev := range sortedKeys(t.Priorities) {
		if !slices.Contains(Severities, sev) {
			add("", f("priorities"), "has %q, which is not a severity (want low, medium or high)", sev)
		} else if strings.TrimSpace(t.Priorities[sev]) == "" {
			add("", f("priorities."+sev), "is empty")
		}
	}
	if t.MinSeverity != "" && !slices.Contains(Severities, t.MinSeverity) {
		add("", f("min_severity"), "%q is not a severity (want low, medium or high)", t.MinSeverity)
	}
	for _, p := range placeholderRE.FindAllString(t.TitleFormat, -1) {
		if !slices.Contains(TitlePlaceholders, p) {
			add("", f("title_format"), "has the unknown placeholder %s (want %s)", p, strings.Join(TitlePlaceholders, ", "))
		}
	}
	switch {
	case t.OnResolve == "":
	case !slices.Contains(OnResolveValues, t.OnResolve):
		add("", f("on_resolve"), "%q is not close or note", t.OnResolve)
	case t.OnResolve == OnResolveClose && strings.TrimSpace(t.ClosedStatusID) == "":
		add("", f("closed_status_id"), "is required when on_resolve is \"close\"")
	}
	switch {
	case t.OnReturn == "":
	case !slices.Contains(OnReturnValues, t.OnReturn):
		add("", f("on_return"), "%q is not reopen or new", t.OnReturn)
	case t.OnReturn == OnReturnReopen && strings.TrimSpace(t.ReopenStatusID) == "":
		add("", f("reopen_status_id"), "is required when on_return is \"reopen\"")
	}
	if t.ReopenWindow != "" {
		if d, err := time.ParseDuration(t.ReopenWindow); err != nil || d <= 0 {
			add("", f("reopen_window"), "%q is not a positive duration such as \"24h\"", t.ReopenWindow)
		}
	}
	if t.BackfillWindow != "" {
		if d, err := time.ParseDuration(t.BackfillWindow); err != nil || d <= 0 {
			add("", f("backfill_window"), "%q is not a positive duration such as \"48h\"", t.BackfillWindow)
		}
	}
	if t.MaxPerPass < 0 {
		add("", f("max_per_pass"), "must not be negative (got %d)", t.MaxPerPass)
	}
	if t.MaxPerCustomer < 0 {
		add("", f("max_per_customer"), "must not be negative (got %d)", t.MaxPerCustomer)
	}
	if p := IDProblem(t.Owner); t.Owner != "" && p != "" {
		add("", f("owner"), "%s", p)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// clone returns a deep copy of t.
func (t *Tickets) clone() *Tickets {
	c := *t
	if t.Priorities != nil {
		c.Priorities = make(map[string]string, len(t.Priorities))
		for k, v := range t.Priorities {
			c.Priorities[k] = v
		}
	}
	return &c
}

// equal reports whether t and u route tickets alike. TestContentEqual
// checks that it compares every field.
func (t *Tickets) equal(u *Tickets) bool {
	return t.Enabled == u.Enabled && t.Schedule == u.Schedule && t.QueueID == u.QueueID &&
		t.NewStatusID == u.NewStatusID && t.ClosedStatusID == u.ClosedStatusID && t.ReopenStatusID == u.ReopenStatusID &&
		maps.Equal(t.Priorities, u.Priorities) &&
		t.SourceID == u.SourceID && t.IssueTypeID == u.IssueTypeID && t.SubIssueTypeID == u.SubIssueTypeID &&
		t.TicketTypeID == u.TicketTypeID && t.CategoryID == u.CategoryID && t.NoteTypeID == u.NoteTypeID &&
		t.MinSeverity == u.MinSeverity && t.TitleFormat == u.TitleFormat &&
		t.OnResolve == u.OnResolve && t.OnReturn == u.OnReturn && t.ReopenWindow == u.ReopenWindow &&
		t.BackfillWindow == u.BackfillWindow &&
		t.MaxPerPass == u.MaxPerPass && t.MaxPerCustomer == u.MaxPerCustomer && t.Owner == u.Owner
}

// decodeTickets decodes the "tickets" object field by field.
func (dc *decoder) tickets(raw json.RawMessage) *Tickets {
	t := &Tickets{}
	var priorities json.RawMessage
	if !dc.object("tickets.", raw, []field{
		{"enabled", &t.Enabled},
		{"schedule", &t.Schedule},
		{"queue_id", &t.QueueID},
		{"new_status_id", &t.NewStatusID},
		{"closed_status_id", &t.ClosedStatusID},
		{"reopen_status_id", &t.ReopenStatusID},
		{"priorities", &priorities},
		{"source_id", &t.SourceID},
		{"issue_type_id", &t.IssueTypeID},
		{"sub_issue_type_id", &t.SubIssueTypeID},
		{"ticket_type_id", &t.TicketTypeID},
		{"category_id", &t.CategoryID},
		{"note_type_id", &t.NoteTypeID},
		{"min_severity", &t.MinSeverity},
		{"title_format", &t.TitleFormat},
		{"on_resolve", &t.OnResolve},
		{"on_return", &t.OnReturn},
		{"reopen_window", &t.ReopenWindow},
		{"backfill_window", &t.BackfillWindow},
		{"max_per_pass", &t.MaxPerPass},
		{"max_per_customer", &t.MaxPerCustomer},
		{"owner", &t.Owner},
	}) {
		dc.add("", "tickets", "must be a JSON object")
		return nil
	}
	if priorities != nil && string(priorities) != "null" {
		if err := json.Unmarshal(priorities, &t.Priorities); err != nil {
			dc.add("", "tickets.priorities", "must be a JSON object of severity to priority id strings")
		}
	}
	return t
}
