package tickets

import (
	"errors"
	"time"
)

// Record states.
const (
	// StateCreating is an intent: the ticket may or may not exist in the
	// PSA. It is recorded (durably) before the create is sent, and settled
	// by searching the PSA for the record's Ref, never by creating again
	// blindly.
	StateCreating = "creating"
	// StateOpen is a ticket psa-syncd created (or adopted) and follows.
	StateOpen = "open"
	// StateClosing is a close psa-syncd is sending: recorded before the
	// status is sent, so that a pass that finds the ticket closed knows
	// psa-syncd closed it even when the answer was lost. A ticket still
	// open is closed again (setting a status is absolute).
	StateClosing = "closing"
	// StateNoting is a resolve note psa-syncd is sending (on_resolve
	// "note"), recorded before the note is sent (ClosedAt is when, and the
	// note's text names it). A pass that finds it looks for the note on the
	// ticket (psa.TicketNoteLister) and sends it only when it is not there,
	// recording first when it sends it again (Updated), from which a lost
	// answer again is left for the settle time;
	// where notes cannot be listed, it takes the note as added: the same
	// note twice is worse than a missing one.
	StateNoting = "noting"
	// StateReopening is a reopen psa-syncd is sending (on_return
	// "reopen"), recorded before the status and its "raised again" note are
	// sent (Updated is when, and the note's text names it). A pass that
	// finds it reads the ticket: open, the reopen was applied, and its
	// note is looked for on the ticket and sent only when it is not there
	// (taken as added where notes cannot be listed), naming the time it is
	// sent again, recorded first in Updated; ClosedAt cleared says
	// an earlier pass saw it open already;
	// closed and unchanged in the PSA since the intent (its
	// psa.Ticket.LastActivity no later than ReopenActivity, read before the
	// intent; for older records, well before Updated), it was not applied,
	// and is sent again; closed and changed since, it
	// is taken as closed in the PSA, since a technician may have closed the
	// reopened ticket, and reopening it again would be the reopen loop
	// tickets.md 5.6 forbids.
	StateReopening = "reopening"
	// StateClosed is a ticket whose alert was resolved: psa-syncd closed it
	// or added a note (ClosedBy "sync"), found it closed in the PSA while
	// its alert was open (ClosedBy "psa") or when it resolved the alert
	// (ClosedBy "psa-resolved"), or found it deleted there (ClosedBy
	// "deleted").
	StateClosed = "closed"
	// StateFailed is a create the PSA certainly refused. It is retried
	// when what it depends on changes (RoutingHash): the routing, or the
	// customer's company or contract; and otherwise a day after it was
	// refused (Updated). Its alert resolved, it is forgotten after the
	// retention (Config.Retention).
	StateFailed = "failed"
)

// Who closed a ticket.
const (
	ClosedBySync = "sync"
	// ClosedByPSA is a ticket psa-syncd found closed in the PSA while its
	// alert was open: it is never reopened or replaced for that alert
	// (no reopen loops, tickets.md 5.6) while the alert stays open. Once
	// the alert has been left out of the listings for
	// Config.ResolveAfter, the record becomes ClosedByPSAResolved.
	ClosedByPSA = "psa"
	// ClosedByPSAResolved is a ticket psa-syncd found closed in the PSA
	// when it went to resolve its alert: a technician closed it, most
	// often after fixing what raised the alert, and psa-syncd saw the
	// alert clear. Its alert coming back is the "cleared and came back"
	// that tickets.md 5.6 reopens or files anew for: it is treated like a
	// ticket psa-syncd resolved (ClosedBySync). Psa-syncd cannot tell
	// when the technician closed it, since open tickets are not polled.
	ClosedByPSAResolved = "psa-resolved"
	// ClosedByDeleted is a ticket deleted in the PSA (GetTicket found
	// none): it is no longer followed, and its alert, when open, gets a new
	// ticket.
	ClosedByDeleted = "deleted"
)

// Record is what psa-syncd knows about one ticket: the alert it is for,
// the PSA ticket, and where it is in its life. Records are keyed by
// (Source, CustomerID, AlertKey).
type Record struct {
	Source     string `json:"source"`
	CustomerID string `json:"customer_id"`
	// AlertKey is the alert id, or SummaryKey for a customer's summary
	// ticket.
	AlertKey string `json:"alert_key"`
	// Ref is the external reference the ticket carries, by which it is
	// found again in the PSA.
	Ref string `json:"ref"`
	// Generation counts the tickets made for the alert: a resolved alert
	// that comes back gets a new ticket (and Ref) when it is not reopened.
	Generation int `json:"generation"`
	// System and Instance name the PSA the ticket is in: its system and
	// its instance as the backend reports it (psa.Backend.Instance, the
	// export's psa.instance), compared with export.SameInstance. The
	// engine calls the PSA only for records of the system and instance it
	// is connected to. Records written before instances were recorded
	// have none; see Engine.
	System    string `json:"system"`
	Instance  string `json:"instance,omitempty"`
	CompanyID string `json:"company_id"`
	TicketID  string `json:"ticket_id,omitempty"`
	Number    string `json:"number,omitempty"`
	State     string `json:"state"`
	Severity  string `json:"severity,omitempty"`
	Title     string `json:"title,omitempty"`
	// Covered lists the alert ids a summary ticket stands for.
	Covered []string `json:"covered,omitempty"`
	// RoutingHash identifies what the create depended on: the routing,
	// the title format and the customer's company and contract (the name
	// predates the last three). A refused create is sent again when it
	// changes, or a day after it was refused.
	RoutingHash string    `json:"routing_hash,omitempty"`
	Error       string    `json:"error,omitempty"`
	ClosedBy    string    `json:"closed_by,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	ClosedAt    time.Time `json:"closed_at,omitzero"`
	// MissingSince is when a complete listing of the customer's open
	// alerts first left out the alert of this followed ticket, or of this
	// ticket closed in the PSA (ClosedByPSA) (for a summary: every alert
	// it covers), zero while it is listed. The ticket
	// is resolved only when a listing at least Config.ResolveAfter later
	// still leaves it out: an alert missing from one listing (a listing
	// glitch) that is back in the next keeps its ticket, rather than
	// having it closed and getting a second one.
	MissingSince time.Time `json:"missing_since,omitzero"`
	// NoteAlerts are the alerts of a "More alerts" note on a summary
	// ticket whose outcome is unknown (its answer was lost, or psa-syncd
	// died before recording it), in the note's order; they are in Covered
	// too. Recorded before the note is sent: the next pass looks for the
	// note on the ticket (by the first alert it names) and sends it again,
	// for those still open, only when it is not there. Empty when no note
	// is under way.
	NoteAlerts []string `json:"note_alerts,omitempty"`
	// ReopenActivity is the ticket's last change in the PSA
	// (psa.Ticket.LastActivity, on the PSA's clock), read just before a
	// reopen's intent (StateReopening) was recorded: a pass that finds the
	// reopen unsettled and the ticket closed with no change since knows the
	// reopen was not applied, without comparing two clocks. Zero when the
	// PSA gave none (or an older psa-syncd recorded the intent).
	ReopenActivity time.Time `json:"reopen_activity,omitzero"`
	// MovedNote is, on the record of a summary ticket a customer's
	// mapping moved away from (movedSummaryKey), the reference of the new
	// summary ticket its "Customer moved" note names: set when the move is
	// recorded, before the new summary's create, and cleared once the note
	// is added (or taken as added). A crash before the note, or a lost
	// answer, leaves the next pass to look for the note on the ticket and
	// send it only when it is not there. Empty when no note is owed.
	MovedNote string `json:"moved_note,omitempty"`
	// HeldSince is when the ticket create of this record, whose outcome is
	// unknown (StateCreating), was first held for an operator: its search
	// by reference found nothing and could not be checked (unseenError),
	// so it is not sent again until the search finds it or an operator
	// answers (psa-syncd resolve -ticket REF -not-posted). Zero while the
	// create is within the settle time or settled; only a creating record
	// keeps one.
	HeldSince time.Time `json:"held_since,omitzero"`
}

// SummaryKey is the AlertKey of a customer's summary ticket, which stands
// for the alerts over the customer's cap in a pass.
const SummaryKey = "summary"

// ErrRecordExists is returned by Store.CreateTicketIntent when a record
// with the key exists: another pass or replica is creating the ticket.
var ErrRecordExists = errors.New("tickets: a ticket record with this key exists")

// ErrCreateNotOpen matches the error of an operator's answer for a ticket
// create that is not open (StateCreating) any more, or never was.
var ErrCreateNotOpen = errors.New("is not an open ticket create")

// Store keeps the ticket records. Implementations are safe for concurrent
// use, and every write is durable when the method returns: the engine sends
// a create only after CreateTicketIntent returned nil.
type Store interface {
	// CreateTicketIntent stores r (State StateCreating) if no record has
	// its key, and returns ErrRecordExists otherwise. Implementations
	// enforce the key's uniqueness (a unique constraint), so that two
	// workers never both create.
	CreateTicketIntent(r Record) error
	// PutTicketRecord stores r, replacing the record with its key.
	PutTicketRecord(r Record) error
	// TicketRecords returns a customer's records, in AlertKey order.
	TicketRecords(source, customerID string) ([]Record, error)
	// TicketIntents returns every record in StateCreating.
	TicketIntents() ([]Record, error)
	// DeleteTicketRecord removes the record with r's key when it is still
	// closed as r is (the same ClosedAt), or, r a failed create, still
	// failed as r is (the same Updated); otherwise it removes nothing and
	// returns nil.
	DeleteTicketRecord(r Record) error
	// ForgetTicketRecord removes the record with r's key, a record of
	// another PSA (Config.ForgetOtherPSA), when it is still as r is: of
	// r's system and instance, in r's state, last written at r.Updated;
	// otherwise it removes nothing and returns nil.
	ForgetTicketRecord(r Record) error
}
