package state

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// Error is a failure of the state database: what psa-syncd was doing in it
// (What), the database (Where: the SQLite file's path, or the PostgreSQL
// database's name, host and port) and the database's error (Err), which
// may name them too (pgx's errors name the host, the user and the
// database). Its text is for the log; PublicText gives the words that a
// run, a customer's status or an intent stores in its place, since the
// API and the status page serve those without credentials.
type Error struct {
	What  string
	Where string
	Err   error
}

func (e *Error) Error() string { return "state: " + e.What + " in " + e.Where + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) publicText() string {
	return "state: " + e.What + ": the state database " + FailureKind(e.Err)
}

// publicTexter is an error of the state database that can say what failed
// without naming the database (see PublicText).
type publicTexter interface {
	error
	publicText() string
}

// PublicText returns err's text for what is stored and served without
// credentials (a run's or a customer's error, an intent's outcome, a
// ticket's error): the text of each failure of the state database in err
// (an *Error) is replaced by what was being done and how the database
// failed, in words that name nothing of it, and "; psa-syncd's log has the
// error" follows. Errors that hold no failure of the state database keep
// their text. The caller logs err itself.
func PublicText(err error) string {
	if err == nil {
		return ""
	}
	text := err.Error()
	var found []publicTexter
	collectPublic(err, &found)
	if len(found) == 0 {
		return text
	}
	for _, f := range found {
		if full := f.Error(); strings.Contains(text, full) {
			text = strings.ReplaceAll(text, full, f.publicText())
			continue
		}
		// An error whose text is not its cause's, verbatim: none of its
		// text can be kept.
		var e *Error
		if errors.As(f, &e) {
			return e.What + ": the state database " + FailureKind(e.Err) + "; psa-syncd's log has the error"
		}
		return "the state database failed; psa-syncd's log has the error"
	}
	return text + "; psa-syncd's log has the error"
}

// recordedPostgres and recordedConnect match what a psa-syncd before
// PublicText recorded of a failure of the state database: the description
// of a PostgreSQL database (its name, host and port, as *Error's Where
// says it, whatever the URL was then) and pgx's text of a failed
// connection, which names the user, the database and each host tried, one
// a line. recordedSQLite matches the path of a SQLite state database,
// always FileName in its state directory (its -wal, -shm or -journal file
// too): the path it had before it was moved or restored elsewhere is not
// the one it is opened at now.
var (
	recordedPostgres = regexp.MustCompile(`PostgreSQL database "(?:[^"\\]|\\.)*" on \S+:\d+`)
	recordedConnect  = regexp.MustCompile("failed to connect to `[^`]*`:[^\n]*(?:\n\t[^\n]*)*")
	recordedSQLite   = regexp.MustCompile("[^\\s\"'`]*/" + regexp.QuoteMeta(FileName) + `(?:-wal|-shm|-journal)?\b`)
)

// PublicRecordedText returns text, an error that an older psa-syncd
// recorded with a run, a customer's status, an intent or a ticket record,
// without the names PublicText now keeps out of them: where (the state
// database's Path: the SQLite file, or the PostgreSQL database, host and
// port) and the description of any PostgreSQL database become "the state
// database", and pgx's details of a failed connection "failed to connect".
// So does any path of a file named FileName, the SQLite database's name in
// every state directory: where the file was before it was moved or
// restored elsewhere. Texts that name none of them are returned as they
// are. The migrations to schema versions 12 (recorded errors) and 13
// (snapshots) rewrite the stored texts with it, and the API with it what
// a psa-syncd of an older version writes into a shared database.
func PublicRecordedText(text, where string) string {
	if where != "" {
		text = strings.ReplaceAll(text, where, "the state database")
	}
	text = recordedPostgres.ReplaceAllLiteralString(text, "the state database")
	text = recordedSQLite.ReplaceAllLiteralString(text, "the state database")
	return recordedConnect.ReplaceAllLiteralString(text, "failed to connect")
}

// collectPublic appends the publicTexters in err's tree to found, the
// outermost of each branch only: their text holds their causes'.
func collectPublic(err error, found *[]publicTexter) {
	if err == nil {
		return
	}
	if p, ok := err.(publicTexter); ok {
		*found = append(*found, p)
		return
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		collectPublic(u.Unwrap(), found)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			collectPublic(e, found)
		}
	}
}

// FailureKind says how an operation on the state database failed (err is
// its error), in words that name nothing of it: "did not answer in time",
// "refused psa-syncd's role", "failed (SQLSTATE 57014)", "could not be
// reached" or "failed".
func FailureKind(err error) string {
	var pgErr *pgconn.PgError
	var netErr net.Error
	var sqliteErr *sqlite.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "did not answer in time"
	case errors.As(err, &pgErr) && pgErr.Code == "57014":
		// query_canceled: the server's statement_timeout, or psa-syncd's
		// cancel at state.query_timeout.
		return "did not answer in time (SQLSTATE 57014: the statement was cancelled)"
	case errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "42501"):
		// invalid_authorization_specification, insufficient_privilege
		return "refused psa-syncd's role"
	case errors.As(err, &pgErr):
		return "failed (SQLSTATE " + pgErr.Code + ")"
	case netErr != nil:
		return "could not be reached"
	case errors.As(err, &sqliteErr):
		// SQLite's words ("database or disk is full", "database is locked")
		// name no file.
		return "failed: " + sqliteReason(sqliteErr)
	case errors.Is(err, ErrNotLeader):
		return "is led by another psa-syncd (this one lost the leadership lock or its connection)"
	}
	return "failed"
}
