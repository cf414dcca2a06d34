package state

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Ensure DB satisfies the ticket engine's store.
var _ tickets.Store = (*DB)(nil)

// ticketColumns are the columns of the tickets table in the order
// ticketArgs and scanTicket use.
const ticketColumns = `source, customer_id, alert_key, ref, generation, system, instance, company_id, ticket_id, number,
	state, severity, title, covered, routing_hash, error, closed_by, created, updated, closed_at, missing_since,
	note_alerts, reopen_activity, moved_note, held_since`

func checkTicketKey(r tickets.Record) error {
	if err := checkKey("ticket", r.Source, r.CustomerID); err != nil {
		return err
	}
	if r.AlertKey == "" || strings.IndexByte(r.AlertKey, 0) >= 0 {
		return fmt.Errorf("state: ticket key needs an alert key without NUL bytes, got %q", r.AlertKey)
	}
	return nil
}

// ticketArgs returns r's column values in ticketColumns order.
func (db *DB) ticketArgs(r tickets.Record) ([]any, error) {
	covered := r.Covered
	if covered == nil {
		covered = []string{}
	}
	data, err := json.Marshal(covered)
	if err != nil {
		return nil, fmt.Errorf("state: encoding the alerts covered by ticket %s/%s/%s: %w", r.Source, r.CustomerID, r.AlertKey, err)
	}
	// NULL when the record has no note under way (as records written
	// before schema version 11).
	var noteAlerts any
	if len(r.NoteAlerts) > 0 {
		b, err := json.Marshal(r.NoteAlerts)
		if err != nil {
			return nil, fmt.Errorf("state: encoding the alerts of the note under way on ticket %s/%s/%s: %w", r.Source, r.CustomerID, r.AlertKey, err)
		}
		noteAlerts = string(b)
	}
	// NULL when no note is owed, and when the create is not held: only
	// a creating record keeps HeldSince, whichever write settles it.
	var movedNote any
	if r.MovedNote != "" {
		movedNote = r.MovedNote
	}
	held := r.HeldSince
	if r.State != tickets.StateCreating {
		held = time.Time{}
	}
	return []any{r.Source, r.CustomerID, r.AlertKey, r.Ref, r.Generation, r.System, r.Instance, r.CompanyID, r.TicketID, r.Number,
		r.State, r.Severity, r.Title, string(data), r.RoutingHash, r.Error, r.ClosedBy,
		db.tv(r.Created), db.tv(r.Updated), db.tv(r.ClosedAt), db.tv(r.MissingSince), noteAlerts, db.tv(r.ReopenActivity), movedNote, db.tv(held)}, nil
}

// insertTicket is the INSERT of a ticket record; the caller appends what
// happens on a conflict.
const insertTicket = `INSERT INTO tickets (` + ticketColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// Ticket record writes are fenced as intents are (OpenIntent): each is a
// fenced operation of the group committer, which on PostgreSQL commits it
// through the connection that holds the leadership lock, and refuses it
// with ErrNotLeader once this instance lost the lock (or never had it).
// The ticket engine stores a record (a create intent, a close, note or
// reopen in progress, a failed create released for a retry) before it
// sends the PSA call the record stands for, so an instance that lost the
// lock sends none; and one that lost it after a send cannot overwrite the
// record that the new active instance settles or rewrites meanwhile.
// Such a refusal, and a failure of the lock's connection, also match
// tickets.ErrNotLeader, on which the engine stops its pass.

// writeTicket commits run as a fenced operation (see above).
func (db *DB) writeTicket(what string, run func(ctx context.Context, tx *sql.Tx) error) error {
	err := db.group.submit(context.Background(), db, &groupOp{what: what, fenced: true, run: run})
	if errors.Is(err, ErrNotLeader) || errors.Is(err, errFenceFailed) {
		return ticketNotLeader{err}
	}
	return err
}

// ticketNotLeader is a ticket write refused for want of the leadership
// lock: it matches tickets.ErrNotLeader, and through Unwrap ErrNotLeader
// or the failure of the lock's connection.
type ticketNotLeader struct{ err error }

func (e ticketNotLeader) Error() string        { return e.err.Error() }
func (e ticketNotLeader) Unwrap() error        { return e.err }
func (e ticketNotLeader) Is(target error) bool { return target == tickets.ErrNotLeader }

// CreateTicketIntent stores r if no record has its key, and returns
// tickets.ErrRecordExists otherwise. The primary key decides, so two
// workers on one database never both get nil. On PostgreSQL it needs the
// leadership lock (ErrNotLeader).
func (db *DB) CreateTicketIntent(r tickets.Record) error {
	if err := checkTicketKey(r); err != nil {
		return err
	}
	args, err := db.ticketArgs(r)
	if err != nil {
		return err
	}
	what := "recording the intent to create ticket " + r.Ref
	return db.writeTicket(what, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q(insertTicket+` ON CONFLICT (source, customer_id, alert_key) DO NOTHING`), args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			// Wrote nothing: the others of the group commit as usual.
			return refuse(tickets.ErrRecordExists)
		}
		return nil
	})
}

// PutTicketRecord stores r, replacing the record with its key. On
// PostgreSQL it needs the leadership lock (ErrNotLeader).
func (db *DB) PutTicketRecord(r tickets.Record) error {
	if err := checkTicketKey(r); err != nil {
		return err
	}
	args, err := db.ticketArgs(r)
	if err != nil {
		return err
	}
	what := "storing ticket record " + r.Source + "/" + r.CustomerID + "/" + r.AlertKey
	return db.writeTicket(what, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(insertTicket+` ON CONFLICT (source, customer_id, alert_key) DO UPDATE SET
			ref = excluded.ref, generation = excluded.generation, system = excluded.system, instance = excluded.instance, company_id = excluded.company_id,
			ticket_id = excluded.ticket_id, number = excluded.number, state = excluded.state, severity = excluded.severity,
			title = excluded.title, covered = excluded.covered, routing_hash = excluded.routing_hash, error = excluded.error,
			closed_by = excluded.closed_by, created = excluded.created, updated = excluded.updated,
			closed_at = excluded.closed_at, missing_since = excluded.missing_since, note_alerts = excluded.note_alerts,
			reopen_activity = excluded.reopen_activity, moved_note = excluded.moved_note, held_since = excluded.held_since`), args...)
		return err
	})
}

// DeleteTicketRecord removes the record with r's key when it is still
// closed at r.ClosedAt, or, r a failed create, still failed as last
// written at r.Updated, and otherwise nothing. On PostgreSQL it needs the
// leadership lock (ErrNotLeader).
func (db *DB) DeleteTicketRecord(r tickets.Record) error {
	if err := checkTicketKey(r); err != nil {
		return err
	}
	column, at := "closed_at", r.ClosedAt
	switch r.State {
	case tickets.StateClosed:
	case tickets.StateFailed:
		column, at = "updated", r.Updated
	default:
		return nil
	}
	what := "removing ticket record " + r.Source + "/" + r.CustomerID + "/" + r.AlertKey
	return db.writeTicket(what, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`DELETE FROM tickets WHERE source = ? AND customer_id = ? AND alert_key = ?
			AND state = ? AND `+column+` = ?`), r.Source, r.CustomerID, r.AlertKey, r.State, db.tv(db.stored(at)))
		return err
	})
}

// ForgetTicketRecord removes the record with r's key when it is still of
// r's system and instance, in r's state and last written at r.Updated,
// and otherwise nothing. On PostgreSQL it needs the leadership lock
// (ErrNotLeader).
func (db *DB) ForgetTicketRecord(r tickets.Record) error {
	if err := checkTicketKey(r); err != nil {
		return err
	}
	what := "removing ticket record " + r.Source + "/" + r.CustomerID + "/" + r.AlertKey + " of " + r.System
	return db.writeTicket(what, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`DELETE FROM tickets WHERE source = ? AND customer_id = ? AND alert_key = ?
			AND system = ? AND instance = ? AND state = ? AND updated IS NOT DISTINCT FROM ?`),
			r.Source, r.CustomerID, r.AlertKey, r.System, r.Instance, r.State, db.tv(db.stored(r.Updated)))
		return err
	})
}

// TicketRecords returns a customer's ticket records in alert key order.
func (db *DB) TicketRecords(source, customerID string) ([]tickets.Record, error) {
	if err := checkKey("ticket", source, customerID); err != nil {
		return nil, err
	}
	return db.ticketRecords("reading the ticket records of "+source+"/"+customerID,
		`WHERE source = ? AND customer_id = ? ORDER BY alert_key`, source, customerID)
}

// followedStates are the states of the records of tickets psa-syncd
// follows (tickets.Followed).
var followedStates = []string{tickets.StateOpen, tickets.StateClosing, tickets.StateNoting, tickets.StateReopening}

// CountFollowedTickets returns how many of a customer's ticket records
// are tickets psa-syncd follows (tickets.Followed) in the PSA instance
// instance of system (tickets.OfPSA): its open tickets, counted without
// reading every record.
func (db *DB) CountFollowedTickets(source, customerID string, system psa.System, instance string) (int, error) {
	if err := checkKey("ticket", source, customerID); err != nil {
		return 0, err
	}
	what := "counting the open tickets of " + source + "/" + customerID
	ctx, cancel := db.ctx()
	defer cancel()
	// Instances are compared as export.SameInstance does, so the counts
	// are read per instance and the instances compared here.
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT instance, COUNT(*) FROM tickets
		WHERE source = ? AND customer_id = ? AND system = ? AND state IN (?, ?, ?, ?) GROUP BY instance`),
		source, customerID, string(system), followedStates[0], followedStates[1], followedStates[2], followedStates[3])
	if err != nil {
		return 0, db.wrap(what, err)
	}
	defer rows.Close()
	total := 0
	for rows.Next() {
		var (
			inst string
			n    int
		)
		if err := rows.Scan(&inst, &n); err != nil {
			return 0, db.wrap(what, err)
		}
		if tickets.OfPSA(tickets.Record{System: string(system), Instance: inst}, system, instance) {
			total += n
		}
	}
	if err := rows.Err(); err != nil {
		return 0, db.wrap(what, err)
	}
	return total, nil
}

// MoveTicketRecords records the ticket records of system's instance from
// (compared with export.SameInstance, as tickets.OfPSA does) as records of
// instance to, and returns how many it changed: psa-syncd rebind takes the
// tickets of the instance the database was bound to as those of the
// instance it binds it to, which the ticket engine otherwise leaves alone
// as another PSA's. On PostgreSQL it needs the leadership lock
// (ErrNotLeader).
func (db *DB) MoveTicketRecords(system psa.System, from, to string) (int, error) {
	what := "recording the ticket records of " + string(system) + " instance " + from + " as " + to + "'s"
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT DISTINCT instance FROM tickets WHERE system = ? AND instance <> ''`), string(system))
	if err != nil {
		return 0, db.wrap(what, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var inst string
		if err := rows.Scan(&inst); err != nil {
			return 0, db.wrap(what, err)
		}
		if inst != to && tickets.OfPSA(tickets.Record{System: string(system), Instance: inst}, system, from) {
			names = append(names, inst)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, db.wrap(what, err)
	}
	if len(names) == 0 {
		return 0, nil
	}
	var moved int
	err = db.writeTicket(what, func(ctx context.Context, tx *sql.Tx) error {
		moved = 0
		for _, inst := range names {
			res, err := tx.ExecContext(ctx, db.q(`UPDATE tickets SET instance = ? WHERE system = ? AND instance = ?`), to, string(system), inst)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			moved += int(n)
		}
		return nil
	})
	return moved, err
}

// ReleaseTicketCreate records an operator's answer for the ticket create
// with reference ref whose outcome is unknown (tickets.StateCreating) and
// that the search by reference does not find: not posted (the operator
// found no ticket of that reference in the PSA). The record becomes a
// failed create (tickets.StateFailed) with no routing hash, as the ticket
// engine's settle leaves a create that was not applied, so the next ticket
// pass files the alert again; note, who checked what, goes in its error.
// It changes the record only while it is still creating as read: an error
// matching tickets.ErrCreateNotOpen (and ErrRefused) says it is not (its
// ticket was found and adopted meanwhile, or it never existed), and so
// does a reference that two open creates share. It returns the record as
// it was while open. On PostgreSQL it needs the leadership lock
// (ErrNotLeader).
func (db *DB) ReleaseTicketCreate(ref, note string, now time.Time) (tickets.Record, error) {
	open, err := db.ticketRecords("reading the open ticket create "+ref, `WHERE ref = ? AND state = ?`, ref, tickets.StateCreating)
	if err != nil {
		return tickets.Record{}, err
	}
	if len(open) != 1 {
		return tickets.Record{}, refuse(fmt.Errorf("state: ticket create %q %w: its ticket was found and adopted, or it was sent again, "+
			"or no create has that reference (psa-syncd status and the customer's error name the open ones)", ref, tickets.ErrCreateNotOpen))
	}
	r := open[0]
	why := "resolved by an operator: not posted"
	if note = strings.TrimSpace(note); note != "" {
		why += ": " + note
	}
	what := "recording ticket create " + ref + " as not posted"
	err = db.writeTicket(what, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q(`UPDATE tickets SET state = ?, routing_hash = '', error = ?, updated = ?, held_since = NULL
			WHERE source = ? AND customer_id = ? AND alert_key = ? AND state = ? AND updated IS NOT DISTINCT FROM ?`),
			tickets.StateFailed, why, db.tv(now.UTC()), r.Source, r.CustomerID, r.AlertKey, tickets.StateCreating, db.tv(db.stored(r.Updated)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, refuse(fmt.Errorf("state: ticket create %q %w: a ticket pass settled it meanwhile", ref, tickets.ErrCreateNotOpen)))
		}
		return nil
	})
	return r, err
}

// TicketIntents returns every record whose create is unsettled.
func (db *DB) TicketIntents() ([]tickets.Record, error) {
	return db.ticketRecords("reading the open ticket intents",
		`WHERE state = ? ORDER BY source, customer_id, alert_key`, tickets.StateCreating)
}

// ticketMissingSchemaVersion is the schema version that adds the ticket
// records' missing_since; ticketNoteSchemaVersion the one that adds their
// note_alerts and reopen_activity; ticketMovedSchemaVersion the one that
// adds their moved_note and held_since.
const (
	ticketMissingSchemaVersion = 9
	ticketNoteSchemaVersion    = 11
	ticketMovedSchemaVersion   = 14
)

// ticketSelect is the column list of a read of ticket records:
// ticketColumns, or, for a database of an older schema opened without
// migrating it (Config.Existing, ReadOnly), the same with NULL for the
// columns it does not have yet, as runSelect does for the runs' note.
func (db *DB) ticketSelect() string {
	db.ticketVersionOnce.Do(func() {
		db.ticketVersion = SchemaVersion
		if db.cfg.Existing || db.cfg.ReadOnly {
			if v, err := db.Version(); err == nil {
				db.ticketVersion = v
			}
		}
	})
	cols := ticketColumns
	if db.ticketVersion < ticketMovedSchemaVersion {
		cols = strings.TrimSuffix(cols, ", moved_note, held_since") + ", NULL AS moved_note, NULL AS held_since"
	}
	if db.ticketVersion < ticketNoteSchemaVersion {
		cols = strings.Replace(cols, "\n\tnote_alerts, reopen_activity,", "\n\tNULL AS note_alerts, NULL AS reopen_activity,", 1)
	}
	if db.ticketVersion < ticketMissingSchemaVersion {
		cols = strings.Replace(cols, ", missing_since,", ", NULL AS missing_since,", 1)
	}
	return cols
}

func (db *DB) ticketRecords(what, where string, args ...any) ([]tickets.Record, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT `+db.ticketSelect()+` FROM tickets `+where), args...)
	if err != nil {
		return nil, db.wrap(what, err)
	}
	defer rows.Close()
	var out []tickets.Record
	for rows.Next() {
		var (
			r          tickets.Record
			covered    string
			noteAlerts sql.NullString
			movedNote  sql.NullString
		)
		if err := rows.Scan(&r.Source, &r.CustomerID, &r.AlertKey, &r.Ref, &r.Generation, &r.System, &r.Instance, &r.CompanyID,
			&r.TicketID, &r.Number, &r.State, &r.Severity, &r.Title, &covered, &r.RoutingHash, &r.Error, &r.ClosedBy,
			timeDest{&r.Created}, timeDest{&r.Updated}, timeDest{&r.ClosedAt}, timeDest{&r.MissingSince}, &noteAlerts, timeDest{&r.ReopenActivity},
			&movedNote, timeDest{&r.HeldSince}); err != nil {
			return nil, db.wrap(what, err)
		}
		if err := json.Unmarshal([]byte(covered), &r.Covered); err != nil {
			return nil, fmt.Errorf("state: %s: covered alerts of %s: %w", what, r.AlertKey, err)
		}
		if len(r.Covered) == 0 {
			r.Covered = nil
		}
		if noteAlerts.Valid && noteAlerts.String != "" {
			if err := json.Unmarshal([]byte(noteAlerts.String), &r.NoteAlerts); err != nil {
				return nil, fmt.Errorf("state: %s: alerts of the note under way on %s: %w", what, r.AlertKey, err)
			}
		}
		r.MovedNote = movedNote.String
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap(what, err)
	}
	return out, nil
}
