package state

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestFailureKind: the kinds of failure that an answer without credentials
// and a stored error name.
func TestFailureKind(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("state: reading the current export in PostgreSQL database \"psa\" on db.internal:5432: %w", context.DeadlineExceeded), "did not answer in time"},
		{fmt.Errorf("state: ...: %w", &pgconn.PgError{Code: "28P01", Message: `password authentication failed for user "psa_syncd"`}), "refused psa-syncd's role"},
		{fmt.Errorf("state: ...: %w", &pgconn.PgError{Code: "42501", Message: "permission denied for table export_versions"}), "refused psa-syncd's role"},
		{fmt.Errorf("state: ...: %w", &pgconn.PgError{Code: "57P01"}), "failed (SQLSTATE 57P01)"},
		{fmt.Errorf("state: ...: %w", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}),
			"did not answer in time (SQLSTATE 57014: the statement was cancelled)"},
		{fmt.Errorf("state: ...: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), "could not be reached"},
		{fmt.Errorf("state: ...: %w", ErrNotLeader), "is led by another psa-syncd (this one lost the leadership lock or its connection)"},
		{errors.New("state: ...: sql: database is closed"), "failed"},
	} {
		if got := FailureKind(tt.err); got != tt.want {
			t.Errorf("FailureKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestPublicText: a failure of the state database anywhere in an error is
// replaced by words that name neither the database nor its host, user or
// file, however it was wrapped; the rest of the error is kept.
func TestPublicText(t *testing.T) {
	t.Parallel()
	const where = `PostgreSQL database "psa" on db.internal:5432`
	timeout := &Error{What: "recording 3 intents", Where: where,
		Err: &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}}
	refused := &Error{What: "beginning a transaction", Where: where,
		Err: fmt.Errorf("failed to connect to `user=psa_syncd database=psa`: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})}
	file := &Error{What: "recording the run", Where: "/var/lib/psa-syncd/state.db", Err: errors.New("open /var/lib/psa-syncd/state.db-wal: permission denied")}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("recording the intent failed, nothing was written: %w", timeout),
			"recording the intent failed, nothing was written: state: recording 3 intents: the state database did not answer in time " +
				"(SQLSTATE 57014: the statement was cancelled); psa-syncd's log has the error"},
		{errors.Join(errors.New("reading usage: 502 Bad Gateway"), fmt.Errorf("recording the run: %w", refused)),
			"reading usage: 502 Bad Gateway\nrecording the run: state: beginning a transaction: the state database could not be reached; psa-syncd's log has the error"},
		{fmt.Errorf("a: %w; b: %w", file, timeout),
			"a: state: recording the run: the state database failed; b: state: recording 3 intents: the state database did not answer in time " +
				"(SQLSTATE 57014: the statement was cancelled); psa-syncd's log has the error"},
		// A wrapper whose text is not its cause's verbatim keeps none.
		{fmt.Errorf("reading the ledger: %w", &quoted{refused}),
			"beginning a transaction: the state database could not be reached; psa-syncd's log has the error"},
		{&leaseExpiredError{path: where, silent: 31 * time.Second, term: 30 * time.Second},
			"state: the session holding the leadership lock on the state database has not answered for 31s (more than 30s), " +
				"so this psa-syncd may no longer be the active instance: it sends no more writes; psa-syncd's log has the error"},
		{errors.New("reading usage: 502 Bad Gateway"), "reading usage: 502 Bad Gateway"},
		{nil, ""},
	} {
		got := PublicText(tt.err)
		if got != tt.want {
			t.Errorf("PublicText(%v)\n = %q\nwant %q", tt.err, got, tt.want)
		}
		for _, s := range []string{"db.internal", "5432", `"psa"`, "user=", "database=", "/var/lib"} {
			if strings.Contains(got, s) {
				t.Errorf("PublicText(%v) = %q names %q", tt.err, got, s)
			}
		}
	}
}

// quoted wraps an error with a text that is not its cause's verbatim.
type quoted struct{ err error }

func (q *quoted) Error() string { return fmt.Sprintf("%q", q.err.Error()) }
func (q *quoted) Unwrap() error { return q.err }

// TestPublicRecordedText_movedDatabase: a text recorded while the SQLite
// database was at another path (moved, or restored into another state
// directory, before the upgrade) named that path after the migrations
// and in the API, which replaced only the path it is opened at now. Any
// path of the database's file name is now the state database; the file's
// name alone, and other paths, stay.
func TestPublicRecordedText_movedDatabase(t *testing.T) {
	t.Parallel()
	const now = "/srv/psa/state/psa-syncd.db"
	for _, tt := range []struct{ text, want string }{
		{"state: recording the run in /var/lib/psa-syncd/psa-syncd.db: database is locked",
			"state: recording the run in the state database: database is locked"},
		{"open /old dir/state/psa-syncd.db-wal: permission denied; " + now + ": disk I/O error",
			// A space ends the path that can be told: the part before it stays.
			"open /old the state database: permission denied; the state database: disk I/O error"},
		{`state database "state/psa-syncd.db" is read-only`, `state database "the state database" is read-only`},
		{"psa-syncd creates psa-syncd.db in /var/lib/psa-syncd/psa-syncd.dbx", "psa-syncd creates psa-syncd.db in /var/lib/psa-syncd/psa-syncd.dbx"},
	} {
		if got := PublicRecordedText(tt.text, now); got != tt.want {
			t.Errorf("PublicRecordedText(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}
