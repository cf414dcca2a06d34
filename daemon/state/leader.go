package state

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// Several psa-syncd may run against one PostgreSQL database; exactly one of
// them, the active instance, syncs. Leadership is a PostgreSQL session-level
// advisory lock held on a connection of its own, chosen over a lease row
// because the server itself ends it: when the holder's process dies or its
// connection breaks, PostgreSQL ends the session and frees the lock at
// once, with no lease duration to wait out and no clocks to trust. A holder
// whose host dies, or whose network drops everything, sends no FIN: the
// server sees the session idle, not ended, and would keep it (and the lock)
// until its TCP keepalive gave up, 2 h 11 min with Linux defaults. The
// lock's session therefore gets limits of its own (leaderSessionLimits):
// the server ends it once it has been idle for a few check intervals, which
// a live holder, checking the lock every interval, never is. The
// fencing that a lease's token would give comes from committing every
// usage intent and every ticket record through that same session (see
// OpenIntent, CreateTicketIntent, PutTicketRecord): a deposed instance can
// no longer commit one, so it sends no write that one must precede. One
// committed before the loss is sent only while the lease of CheckFence
// lasts, which runs out before another instance can take over (a write
// already sent may still arrive). On SQLite the file lock taken by Open
// already makes the process the only one.

// leaderLockKey is the advisory lock key of the active instance.
const leaderLockKey int64 = 0x7073612d73796e63 // "psa-sync"

// ErrNotLeader is returned by OpenIntent and the ticket record writes on a
// PostgreSQL database when this process does not hold the leadership lock.
var ErrNotLeader = errors.New("state: this psa-syncd is not the active instance (another one holds the leadership lock), so it writes nothing")

// LeaderInfo describes the active instance. It is recorded in the database
// when an instance becomes active, so that standbys can say which one is.
type LeaderInfo struct {
	// Holder names the instance, such as its host name and process id.
	Holder string
	// URL is where its HTTP API can be reached, when known.
	URL   string
	Since time.Time
}

// Leadership is held by the active instance until Release, Close or the
// loss of its connection.
type Leadership struct {
	db   *DB
	lost chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// err is why the leadership was lost, set before lost is closed.
	err error
}

// Lost is closed when the leadership is lost without Release: the
// connection that held the lock failed, or a newer psa-syncd migrated the
// schema past this one's (a rolling upgrade), which it would misread. The
// process must stop writing; the other instance takes over and settles
// whatever intents it left open.
func (l *Leadership) Lost() <-chan struct{} { return l.lost }

// Err returns why the leadership was lost once Lost is closed, else nil.
func (l *Leadership) Err() error {
	select {
	case <-l.lost:
		return l.err
	default:
		return nil
	}
}

// TryLead tries once to make this process the active instance and returns
// its Leadership, or nil (and no error) when another instance holds it.
// While held, the lock's connection is checked every check interval.
func (db *DB) TryLead(ctx context.Context, info LeaderInfo, check time.Duration) (*Leadership, error) {
	if info.Since.IsZero() {
		info.Since = time.Now()
	}
	l := &Leadership{db: db, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if db.dialect == dialectSQLite {
		close(l.done)
		return l, db.recordLeader(ctx, db.sql, info)
	}
	db.fenceMu.Lock()
	defer db.fenceMu.Unlock()
	if db.fence != nil {
		return nil, errors.New("state: this process is already the active instance")
	}
	ctx, cancel := context.WithTimeout(ctx, db.cfg.ConnectTimeout)
	defer cancel()
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, db.wrap("connecting for the leadership lock", err)
	}
	// A session that holds the lock already is granted it again: the
	// lock is tried only in a session that does not hold it, in one
	// statement, which even a pooler keeps on one server session (NULL:
	// this session holds it).
	var ok sql.NullBool
	sent := monoNow()
	if err := conn.QueryRowContext(ctx, `SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
		AND pid = pg_backend_pid() AND classid::bigint = $2 AND objid::bigint = $3 AND objsubid = 1 AND granted)
		THEN NULL ELSE pg_try_advisory_lock($1) END`, leaderLockKey, leaderLockKey>>32, leaderLockKey&0xffffffff).Scan(&ok); err != nil {
		// The server may have granted the lock before the error (a
		// timeout that came while its answer was on the way).
		discard(conn)
		return nil, db.wrap("trying the leadership lock", err)
	}
	if !ok.Valid {
		// Not this process's lock (it leads only with db.fence set): the
		// server session is shared with other clients, whose lock it is.
		_ = conn.Close()
		return nil, fmt.Errorf("state: the PostgreSQL session psa-syncd got for the leadership lock of %s holds that lock already, for another client: "+
			"state.url reaches PostgreSQL through a connection pooler that hands one server session to several clients (transaction or statement "+
			"mode, or session mode without resetting sessions, DISCARD ALL), so that two psa-syncd could both become active and write every "+
			"change twice; connect psa-syncd to PostgreSQL directly or through a pooler in session mode", db.quotedPath())
	}
	if !ok.Bool {
		return nil, conn.Close()
	}
	if check <= 0 {
		check = time.Second
	}
	if err := db.refuseNewerSchema(ctx, conn); err != nil {
		unlock(conn)
		discard(conn)
		return nil, err
	}
	if err := db.limitSession(ctx, conn, leaderSessionLimits(check)); err != nil {
		unlock(conn)
		discard(conn)
		return nil, err
	}
	if err := db.boundStatements(ctx, conn); err != nil {
		unlock(conn)
		discard(conn)
		return nil, err
	}
	id, err := sessionOf(ctx, conn)
	if err != nil {
		unlock(conn)
		discard(conn)
		return nil, db.wrap("reading the leadership lock's session", err)
	}
	if err := db.recordLeader(ctx, conn, info); err != nil {
		// An ERROR (a full disk, a statement timeout) leaves the session
		// usable, and holding the lock: it must end, not go back to the
		// pool, where it would keep the lock from every instance.
		unlock(conn)
		discard(conn)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %s", err, recordTimedOut(db.cfg.ConnectTimeout))
		}
		return nil, err
	}
	db.fence = conn
	db.fenceSession = id
	db.fenceCancel = cancelRequestOf(conn)
	db.leaseTerm.Store(int64(leaseTermFor(check)))
	db.leaseAnswered.Store(sent)
	go l.watch(check, id)
	return l, nil
}

// backendID names a PostgreSQL server session: its process id, and when it
// started, since the id of a process that ended may be given to another.
type backendID struct {
	pid   int64
	start time.Time
}

// sessionOf returns the server session of conn.
func sessionOf(ctx context.Context, conn *sql.Conn) (backendID, error) {
	var id backendID
	err := conn.QueryRowContext(ctx, `SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&id.pid, &id.start)
	return id, err
}

// busyLeaderSQL reports, through a pooled connection, whether the session
// $1 (started at $2) holds the leadership lock and is running a statement.
const busyLeaderSQL = `SELECT EXISTS (SELECT 1 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
	WHERE a.pid = $1 AND a.backend_start = $2 AND a.state = 'active'
	AND l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND l.classid::bigint = $3 AND l.objid::bigint = $4 AND l.objsubid = 1 AND l.granted)`

// vouch keeps the lease while a statement holds the lock's session, so
// that the watch cannot check the lock through it: typically a commit
// that waits for a lock maintenance holds on intents or another table
// (statementBound bounds each statement, transactionBound their sum).
// Every check interval, until stop, it asks the server through a pooled
// connection whether session id still holds the leadership lock and is
// running that statement; if so, the lease runs from when it asked. Without it the lease ran out after 2.5 intervals,
// and every write of the pass whose intent was recorded before was
// refused, though this instance led all along.
//
// This keeps what the lease promises: no other instance holds the lock
// while the server shows this session holding it, and the server does not
// end a session that runs a statement for idleness (idle_session_timeout,
// idle_in_transaction_session_timeout), only when it is ended on purpose
// (a restart, pg_terminate_backend), which the statement then fails with
// at once, as a check of the lock would; or when its TCP connection dies,
// which the pooled connection then most likely shares. When it does not
// (a NAT entry dropped for that one connection), the session may end as
// its wait ends, and a standby take over, while this lease still runs: for
// at most a term after the last answer, this instance may then still send
// writes whose intents or ticket records it committed before: the new
// instance leaves such a line, and such a ticket create, close, reopen or
// note, alone for policies.settle_time (default 2 min) after the takeover
// (and the ticket write after its record too), so that they never meet a
// retry (audit-ha4, finding 2; audit-tickets4). An answer that
// does not show the session so (it is between two statements, it ended),
// or no answer, leaves the lease as it is.
func (db *DB) vouch(id backendID, check time.Duration, stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, qcancel := context.WithTimeout(ctx, max(check, time.Second))
		sent := monoNow()
		var held bool
		err := db.sql.QueryRowContext(qctx, busyLeaderSQL, id.pid, id.start, leaderLockKey>>32, leaderLockKey&0xffffffff).Scan(&held)
		qcancel()
		if err == nil && held && ctx.Err() == nil {
			db.leaseAnswered.Store(sent)
		}
	}
}

// transactionBound is how long a transaction through the lock's session
// may take before the server is asked to cancel it (cancelAfter), for a
// state.query_timeout of q: a tenth below q, after statementBound, so
// that one statement that waits is cancelled by its statement_timeout
// first, and the cancel reaches the server before the client gives up.
// The cancel needs no pooled connection (cancelAfter), but comes from a
// process that may be short of CPU: it has the last tenth of q (3 s with
// the default 30 s). With a twentieth (1.5 s, 150 ms at a query_timeout of
// 3 s) a loaded machine's cancel came after the client's deadline, which
// closed the lock's connection and lost the leadership (audit-tickets6,
// finding 3).
func transactionBound(q time.Duration) time.Duration {
	return max(q-q/10, time.Millisecond)
}

// cancelRequestOf returns the cancel request of conn's server session
// (pgconn's CancelRequest, which may be sent while conn runs a
// statement), or nil for a connection that is not pgx's.
func cancelRequestOf(conn *sql.Conn) func(context.Context) error {
	var pc *pgconn.PgConn
	_ = conn.Raw(func(dc any) error {
		if sc, ok := dc.(storableConn); ok {
			pc = sc.Conn.Conn().PgConn()
		}
		return nil
	})
	if pc == nil {
		return nil
	}
	return pc.CancelRequest
}

// cancelAfter asks the server to cancel the statement that the lock's
// session runs once bound has passed, and again every 100 ms, until stop
// is called: a transaction through the lock's session whose statements
// each wait for a lock held by maintenance (a VACUUM FULL goes table by
// table) is then cancelled by the server, which keeps the session, before
// the client gives it up at state.query_timeout, which ends the session
// and with it the leadership (statement_timeout bounds each statement, not
// their sum). cancelled reports whether a cancel was sent. The committer
// stops them before the transaction's ROLLBACK (once a statement failed)
// or COMMIT: a cancel that reached the ROLLBACK failed it, one that reached
// the COMMIT before it committed left the session in a failed transaction,
// and pgx closes the connection in both cases, which ended the lock's
// session and the leadership (audit-fence6, not fixed 1).
//
// The cancel is pgconn's cancel request on the session's own key
// (request), a connection of its own that needs neither a pooled
// connection nor start-up and authentication: sent through the pool, it
// waited for a free connection (max_open_conns in use by a pass) or for
// a new connection's TLS handshake, and on a starved machine arrived after
// the client's deadline, losing the leadership (audit-fence5, finding 1).
// A cancel request names no statement: stop waits for one under way to be
// answered, so that none arrives after the transaction ended except while
// the session is idle, where PostgreSQL ignores it (the next statement,
// a check of the lock, would otherwise give the leadership up). Without
// request (not pgx's connection) the statement of session id is cancelled
// through a pooled connection as before.
//
// A request is sent under txCtx, the transaction's own context (its
// deadline is state.query_timeout), not a deadline of its own: given up
// after 1 s, a request that a postmaster short of CPU had not answered yet
// was still on its way when stop returned, and could reach the ROLLBACK or
// COMMIT that follows stop, or the session's next statement (audit-fence7,
// not fixed 1). stop now waits for it until the transaction's deadline at
// most; past that the client closes the lock's connection anyway, so no
// statement of the session follows a request still on its way.
func (db *DB) cancelAfter(txCtx context.Context, id backendID, request func(context.Context) error, bound time.Duration) (stop func(), cancelled func() bool) {
	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Bool
	finished := make(chan struct{})
	t := time.AfterFunc(bound, func() {
		defer close(finished)
		for ctx.Err() == nil {
			sent.Store(true)
			if request != nil {
				// txCtx, not ctx: stop waits for the request to be
				// answered rather than leave it on its way.
				_ = request(txCtx)
			} else {
				qctx, qcancel := context.WithTimeout(ctx, time.Second)
				// Only a transaction that has run for half the bound by
				// the server's clock: once this one ended, the cancel
				// would otherwise hit the next statement through the
				// session.
				_, _ = db.sql.ExecContext(qctx, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity
					WHERE pid = $1 AND backend_start = $2 AND state = 'active'
					AND clock_timestamp() - xact_start >= make_interval(secs => $3)`, id.pid, id.start, (bound / 2).Seconds())
				qcancel()
			}
			if db.cancelPause != nil {
				db.cancelPause(ctx)
				continue
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	// Once: a second call would find the timer stopped and wait for a
	// loop that never ran.
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if !t.Stop() {
				<-finished
			}
		})
	}
	return stop, sent.Load
}

// recordTimedOut says why recording the active instance, a write that
// commits at once, may not finish within state.connect_timeout (bound).
// With synchronous replication and no synchronous standby connected every
// write waits, each instance's in turn, and none becomes active: the error
// names that cause, which the active instance's last commits named too
// (commitTimedOut). pgx's close then commits the row locally.
func recordTimedOut(bound time.Duration) string {
	return fmt.Sprintf("the write did not finish within state.connect_timeout (%s); it waits for no other instance, only for the server's disk, "+
		"maintenance's lock on the table (a VACUUM FULL) or, with synchronous replication (synchronous_standby_names), for a synchronous standby "+
		"to confirm it (see pg_stat_replication)", bound)
}

// refuseNewerSchema refuses the leadership, on the session that holds its
// lock, when a newer psa-syncd sharing the database has migrated the
// schema past SchemaVersion since this one opened it (a rolling upgrade):
// Open would refuse the database now, and an instance that took over would
// sync on records it does not understand.
func (db *DB) refuseNewerSchema(ctx context.Context, conn *sql.Conn) error {
	var cur int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return db.wrap("reading the schema version", err)
	}
	return db.schemaMigratedPast(cur, "it does not become the active instance")
}

// schemaMigratedPast returns, for a database of schema version cur, the
// error of an instance that a newer psa-syncd sharing the database left
// behind (cur > SchemaVersion), which says what became of it; else nil.
func (db *DB) schemaMigratedPast(cur int, outcome string) error {
	if cur > SchemaVersion {
		return fmt.Errorf("state: %s has schema version %d, migrated by a newer psa-syncd while this one ran, but this psa-syncd supports up to %d: "+
			"%s; upgrade it", db.quotedPath(), cur, SchemaVersion, outcome)
	}
	return nil
}

// sessionSetting is a server setting of one session.
type sessionSetting struct{ name, value string }

// leaderSessionLimits returns the settings that bound how long the server
// keeps the lock's session, and with it the lock, once its holder is gone
// without a word (a dead host, a network that drops everything):
//   - idle_session_timeout (PostgreSQL 14 and later) ends the session
//     when no statement came for five check intervals, at least 10 s. The
//     watch runs a statement every interval, and the intents and ticket
//     records committed through the session only add to them, so a live
//     holder's session is never idle that long;
//   - idle_in_transaction_session_timeout ends it in the same time when
//     the holder died in the middle of one of those commits, which
//     idle_session_timeout does not count as idle. A live holder sends a
//     transaction's statements one after the other;
//   - the TCP keepalives and tcp_user_timeout end it, on every version,
//     when the holder's host no longer answers at all, within about the
//     same time. They do not apply to a Unix-domain socket.
func leaderSessionLimits(check time.Duration) []sessionSetting {
	bound := leaderSessionBound(check)
	secs := func(d time.Duration) string { return strconv.Itoa(max(1, int(d/time.Second))) }
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	return []sessionSetting{
		{"idle_session_timeout", ms(bound)},
		{"idle_in_transaction_session_timeout", ms(bound)},
		{"tcp_keepalives_idle", secs(bound / 2)},
		{"tcp_keepalives_interval", secs(bound / 10)},
		{"tcp_keepalives_count", "3"},
		{"tcp_user_timeout", ms(bound)},
	}
}

// leaderSessionBound is how long the server keeps the lock's session once
// its holder stopped sending statements (leaderSessionLimits): five check
// intervals, at least 10 s.
func leaderSessionBound(check time.Duration) time.Duration {
	return max(5*check, 10*time.Second)
}

// LeaseTerm is how long an active instance may still send PSA writes
// after its lock's session last answered, with the lock checked every
// check (state.lock_interval): a deposed instance can send for up to this
// long after a standby took over (see vouch).
func LeaseTerm(check time.Duration) time.Duration { return leaseTermFor(check) }

// leaseTermFor is how long after the lock's session last answered this
// instance still sends PSA writes (CheckFence): half of
// leaderSessionBound, so the server cannot have ended the session, nor a
// standby taken over, before the term runs out.
func leaseTermFor(check time.Duration) time.Duration {
	return leaderSessionBound(check) / 2
}

// limitSession applies settings to conn's session. A setting the server
// refuses (one an older version does not know, such as
// idle_session_timeout before PostgreSQL 14, or a tcp_ setting its
// platform lacks) is logged at debug and skipped; the others still apply.
// Any other failure is returned.
func (db *DB) limitSession(ctx context.Context, conn *sql.Conn, settings []sessionSetting) error {
	for _, s := range settings {
		var v string
		err := conn.QueryRowContext(ctx, `SELECT set_config($1, $2, false)`, s.name, s.value).Scan(&v)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Severity == "ERROR" {
			db.logger().Debug("The PostgreSQL server refused a setting of the leadership lock's session; the others apply",
				"setting", s.name, "value", s.value, "err", pgErr.Message)
			continue
		}
		if err != nil {
			return db.wrap("setting "+s.name+" on the leadership lock's session", err)
		}
	}
	return nil
}

// statementBound is the statement_timeout of the lock's session for a
// state.query_timeout of q: a fifth below it, so that the server cancels a
// statement that waits (for a lock on intents that maintenance holds: a
// VACUUM FULL, an ALTER TABLE, LOCK TABLE) before the client gives it up,
// and before transactionBound, a tenth below it, asks the server to
// cancel the transaction.
// A statement the server cancels fails with an ERROR and the session, and
// with it the leadership, lives on; one the client gives up at
// query_timeout ends the session (pgx closes the connection), and so the
// leadership, and the standby that takes over then meets the same lock.
func statementBound(q time.Duration) time.Duration {
	return max(q-q/5, time.Millisecond)
}

// boundStatements sets the statement_timeout of the lock's session to
// statementBound of state.query_timeout, unless the server already gives the
// session a shorter one (ALTER DATABASE or ROLE ... SET statement_timeout,
// or options in state.url), which is kept.
func (db *DB) boundStatements(ctx context.Context, conn *sql.Conn) error {
	bound := statementBound(db.timeout).Milliseconds()
	var cur int64
	if err := conn.QueryRowContext(ctx, `SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'`).Scan(&cur); err != nil {
		return db.wrap("reading statement_timeout of the leadership lock's session", err)
	}
	if cur > 0 && cur <= bound {
		return nil
	}
	var v string
	err := conn.QueryRowContext(ctx, `SELECT set_config('statement_timeout', $1, false)`, strconv.FormatInt(bound, 10)).Scan(&v)
	return db.wrap("setting statement_timeout on the leadership lock's session", err)
}

// watch checks the lock's connection until it fails or Release. Each check
// reads the schema version, and the leadership is given up once a newer
// psa-syncd migrated the schema past this one's: during a rolling upgrade
// the old active instance would otherwise go on writing records the new
// ones misread, until it is stopped.
func (l *Leadership) watch(check time.Duration, id backendID) {
	defer close(l.done)
	t := time.NewTicker(check)
	defer t.Stop()
	// locked is since when schema_migrations has been found locked
	// (zero: it was read at the last check).
	var locked time.Time
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		db := l.db
		if !db.fenceMu.TryLock() {
			// A statement holds the lock's session: vouch for the lease
			// meanwhile, through the pool.
			stop, vouched := make(chan struct{}), make(chan struct{})
			go func() { defer close(vouched); db.vouch(id, check, stop) }()
			db.fenceMu.Lock()
			close(stop)
			<-vouched
		}
		if db.fence == nil {
			db.fenceMu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(check, db.timeout))
		sent := monoNow()
		cur, err := db.schemaVersionOn(ctx, db.fence, min(check/2, time.Second))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "25P02" {
			// in_failed_sql_transaction: an earlier transaction through
			// the session failed and was not rolled back. The session,
			// and its lock, are alive: roll back and check again rather
			// than give the leadership up (audit-fence5, finding 2).
			db.logger().Warn("The leadership lock's session was inside a failed transaction; rolling it back and checking the lock again",
				"database", db.path)
			if _, rerr := db.fence.ExecContext(ctx, `ROLLBACK`); rerr == nil {
				cur, err = db.schemaVersionOn(ctx, db.fence, min(check/2, time.Second))
			}
		}
		cancel()
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "55P03":
			// lock_not_available: maintenance holds, or waits for, a lock
			// on schema_migrations. The session answered, and holds the
			// lock; the version is read again at the next check. A newer
			// psa-syncd cannot record a migration while the table is
			// locked either. It records its version in the table's
			// comment as well, which the catalog gives without the
			// table's lock: a migration committed just before the
			// lock is not missed (its endOlderLeader, ending this
			// session, may have been refused).
			bctx, bcancel := context.WithTimeout(context.Background(), max(check, time.Second))
			byComment, cerr := schemaVersionByComment(bctx, db.fence, min(check/2, time.Second))
			bcancel()
			if cerr == nil && byComment > SchemaVersion {
				err, cur = nil, byComment
				break
			}
			if locked.IsZero() {
				locked = time.Now()
				db.logger().Warn("schema_migrations is locked (maintenance: a VACUUM FULL, an ALTER TABLE, a LOCK TABLE, or one waiting behind a long pg_dump); "+
					"this psa-syncd stays the active instance and reads its schema version again at each check of the leadership lock",
					"database", db.path, "err", pgErr.Message)
			}
			err = nil
			cur = 0
		case err == nil && !locked.IsZero():
			db.logger().Info("schema_migrations is no longer locked", "database", db.path, "locked_for", time.Since(locked).Round(time.Second))
			locked = time.Time{}
		}
		if err != nil {
			err = db.wrap("checking the leadership lock", err)
			// A newer psa-syncd that migrated the schema ends this
			// session (endOlderLeader): say so rather than only that
			// the connection failed.
			if newer := db.migratedPastThroughPool(check); newer != nil {
				err = newer
			}
		} else if err = db.schemaMigratedPast(cur, "it is no longer the active instance"); err != nil {
			unlock(db.fence)
		}
		if err != nil {
			// A timed-out check may leave the session, and the lock,
			// alive: end it.
			discard(db.fence)
			db.fence = nil
			db.leaseAnswered.Store(0)
			db.fenceMu.Unlock()
			l.once.Do(func() { l.err = err; close(l.lost) })
			return
		}
		db.leaseAnswered.Store(sent)
		db.fenceMu.Unlock()
	}
}

// migratedPastThroughPool returns, after a failed check of the lock, the
// error of an instance that a newer psa-syncd left behind when the schema
// version read through the pool is past SchemaVersion, else nil (also when
// the read fails or waits for a lock on schema_migrations).
func (db *DB) migratedPastThroughPool(check time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), max(check, time.Second))
	defer cancel()
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil
	}
	defer func() { _ = conn.Close() }()
	cur, err := db.schemaVersionOn(ctx, conn, min(check/2, time.Second))
	if err != nil {
		return nil
	}
	return db.schemaMigratedPast(cur, "it is no longer the active instance")
}

// schemaVersionOn reads the schema version on conn, in a transaction that
// waits at most wait for a lock on schema_migrations: a lock that
// maintenance holds fails the read with lock_not_available (55P03) at
// once, rather than with the statement timeout, while the session goes on.
func (db *DB) schemaVersionOn(ctx context.Context, conn *sql.Conn, wait time.Duration) (int, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	var v string
	if err := tx.QueryRowContext(ctx, `SELECT set_config('lock_timeout', $1, true)`, strconv.FormatInt(max(wait.Milliseconds(), 1), 10)).Scan(&v); err != nil {
		return 0, err
	}
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return 0, err
	}
	return cur, tx.Commit()
}

// Release gives the leadership up: the lock is released and another
// instance may take over. It is safe to call more than once.
func (l *Leadership) Release() error {
	select {
	case <-l.stop:
		return nil
	default:
		close(l.stop)
	}
	<-l.done
	db := l.db
	db.fenceMu.Lock()
	defer db.fenceMu.Unlock()
	if db.fence == nil {
		return nil
	}
	ctx, cancel := db.ctx()
	defer cancel()
	// Unlocking frees the lock at once for another instance; ending the
	// session then frees it in any case (also when the unlock failed, or
	// the session held it more than once), and keeps a session that held
	// it out of the pool.
	db.leaseAnswered.Store(0)
	_, err := db.fence.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, leaderLockKey)
	discard(db.fence)
	db.fence = nil
	return db.wrap("releasing the leadership lock", err)
}

// unlock tries to release the leadership lock on conn at once, as far as
// the session still answers; discard ends the session in any case.
func unlock(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	_, _ = conn.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`)
}

// discard closes conn's database connection instead of returning it to
// the pool: the PostgreSQL session ends, and with it every advisory lock
// it holds. (*sql.Conn).Close alone would put the session, and its locks,
// back in the pool, to be handed to any later query.
func discard(conn *sql.Conn) {
	// database/sql closes a connection whose Raw function reports it bad.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (db *DB) recordLeader(ctx context.Context, x execer, info LeaderInfo) error {
	_, err := x.ExecContext(ctx, db.q(`INSERT INTO leader (id, holder, url, since) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, url = excluded.url, since = excluded.since`),
		info.Holder, info.URL, db.tv(info.Since))
	return db.wrap("recording the active instance", err)
}

// Leader returns the instance recorded as active, and whether it still
// holds the leadership lock (always true on SQLite, where the recorded
// instance is this process or the last one to run).
func (db *DB) Leader() (LeaderInfo, bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var info LeaderInfo
	err := db.sql.QueryRowContext(ctx, `SELECT holder, url, since FROM leader WHERE id = 1`).
		Scan(&info.Holder, &info.URL, timeDest{&info.Since})
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	if err != nil || db.dialect == dialectSQLite {
		return info, err == nil, db.wrap("reading the active instance", err)
	}
	var held bool
	// Advisory locks belong to a database, and pg_locks shows those of
	// every database of the cluster: only this database's lock counts.
	err = db.sql.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1 AND granted)`,
		leaderLockKey>>32, leaderLockKey&0xffffffff).Scan(&held)
	return info, held, db.wrap("reading the leadership lock", err)
}

// monoStart is the origin of monoNow.
var monoStart = time.Now()

// monoNow is the time on the monotonic clock, which no change of the wall
// clock moves, in nanoseconds since the package was loaded, and never 0.
func monoNow() int64 { return int64(time.Since(monoStart)) + 1 }

// CheckFence returns nil when this process may send a PSA write whose
// intent or ticket record it has committed, and otherwise an error matching
// ErrNotLeader (and tickets.ErrNotLeader). The usage and ticket engines call
// it right before each write they send.
//
// The lock's session proves the leadership only as long as it answers: when
// the database no longer does (a network cut), the check of the lock waits
// state.query_timeout before this instance knows it lost the lock, while the
// server ends the silent session, and a standby takes over, after the
// session's bound (leaderSessionBound: five check intervals, at least 10 s).
// So this process leads on a lease: from the time the last statement that
// the session answered (a check of the lock, or a commit through it) was
// sent, for half that bound, after which CheckFence refuses until the
// session answers again. The server ends a silent session only once that
// bound has run out, so a deposed instance stops sending before another
// can take over; what it still sends is at most the writes in flight when
// the lease ran out. (A session the server ends at once, at a restart or
// by pg_terminate_backend, fails the next check, within a check interval.)
// CheckFence makes no query, and does not wait for a check in progress.
//
// On SQLite, and on PostgreSQL before this process first led, it returns
// nil: the file lock, or the fenced intents and ticket records, keep it
// apart. Once the leadership is lost or released, it refuses.
func (db *DB) CheckFence() error {
	term := time.Duration(db.leaseTerm.Load())
	if db.dialect == dialectSQLite || term == 0 {
		return nil
	}
	answered := db.leaseAnswered.Load()
	if answered == 0 {
		return ticketNotLeader{db.wrap("sending a write", ErrNotLeader)}
	}
	if silent := time.Duration(monoNow() - answered); silent > term {
		return &leaseExpiredError{path: db.path, silent: silent, term: term}
	}
	return nil
}

// leaseExpiredError is CheckFence's refusal once the lock's session has
// not answered for the lease's term. It matches ErrNotLeader and
// tickets.ErrNotLeader, on which the engines stop sending.
type leaseExpiredError struct {
	path         string
	silent, term time.Duration
}

func (e *leaseExpiredError) Error() string { return e.text(e.path) }

// publicText is the error without the database's name (see PublicText).
func (e *leaseExpiredError) publicText() string { return e.text("the state database") }

func (e *leaseExpiredError) text(database string) string {
	return fmt.Sprintf("state: the session holding the leadership lock on %s has not answered for %s (more than %s), "+
		"so this psa-syncd may no longer be the active instance: it sends no more writes",
		database, e.silent.Round(time.Millisecond), e.term)
}

func (e *leaseExpiredError) Is(target error) bool {
	return target == ErrNotLeader || target == tickets.ErrNotLeader
}

// IsLeader reports whether this process holds the leadership lock (on
// SQLite: always).
func (db *DB) IsLeader() bool {
	if db.dialect == dialectSQLite {
		return true
	}
	db.fenceMu.Lock()
	defer db.fenceMu.Unlock()
	return db.fence != nil
}

// String describes the instance for logs and for whoever asks a standby
// (its /-/ready, the API's 503s), without a password in the URL: a record
// written by a version that accepted one in advertise_url still shows
// none.
func (i LeaderInfo) String() string {
	if i.URL == "" {
		return i.Holder
	}
	return fmt.Sprintf("%s (%s)", i.Holder, redact.URL(i.URL))
}
