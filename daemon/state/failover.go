package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// walPosition is a position in a PostgreSQL server's write-ahead log: the
// WAL insert position right after one of psa-syncd's commits, and the
// timeline it was on.
type walPosition struct {
	timeline uint64
	lsn      uint64
}

// positionFile, in the state directory of a psa-syncd on PostgreSQL, holds
// the WAL position after the last commit of the process that stopped last
// (DB.Close), so that the next one started there can tell a failover that
// lost nothing (lostNothing). It is read and removed at open: a process
// that crashes leaves none, and the next start on a new timeline holds as
// a restore does.
const positionFile = "postgres-last-write"

// afterCommit records, on PostgreSQL, the server's WAL insert position
// after a commit that succeeded: it is at or after the commit's record, so
// a timeline that branched off at or after it holds the commit. After a
// commit that failed (its answer lost, it may have been made), or when the
// position cannot be read, none is known until the next commit's.
func (db *DB) afterCommit(committed bool) {
	if db.dialect != dialectPostgres {
		return
	}
	var (
		name, lsn string
		err       = errors.New("the commit failed")
	)
	if committed {
		ctx, cancel := db.ctx()
		defer cancel()
		err = db.sql.QueryRowContext(ctx, `SELECT pg_walfile_name(pg_current_wal_insert_lsn()), pg_current_wal_insert_lsn()::text`).Scan(&name, &lsn)
	}
	pos, perr := parseWALPosition(name, lsn)
	db.posMu.Lock()
	defer db.posMu.Unlock()
	db.pos, db.posKnown = pos, err == nil && perr == nil
}

// parseWALPosition parses a WAL file name's timeline and an LSN (X/Y).
func parseWALPosition(walfile, lsn string) (walPosition, error) {
	if len(walfile) != 24 {
		return walPosition{}, fmt.Errorf("the WAL file name %q holds no timeline", walfile)
	}
	tl, err := strconv.ParseUint(walfile[:8], 16, 32)
	if err != nil {
		return walPosition{}, fmt.Errorf("the WAL file name %q holds no timeline", walfile)
	}
	n, err := parseLSN(lsn)
	return walPosition{timeline: tl, lsn: n}, err
}

// parseLSN parses an LSN as PostgreSQL writes it (X/Y, in hexadecimal).
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	h, herr := strconv.ParseUint(hi, 16, 32)
	l, lerr := strconv.ParseUint(lo, 16, 32)
	if !ok || herr != nil || lerr != nil {
		return 0, fmt.Errorf("%q is not an LSN", s)
	}
	return h<<32 | l, nil
}

// positionPath is the file of positionFile, "" where the database has no
// state directory (Config.Path not given, or a file).
func (db *DB) positionPath() string {
	if db.cfg.Path == "" || filepath.Ext(db.cfg.Path) == ".db" {
		return ""
	}
	return filepath.Join(db.cfg.Path, positionFile)
}

// loadPosition, at open, takes the WAL position the last process left
// (positionFile) for its own, and removes the file.
func (db *DB) loadPosition() error {
	file := db.positionPath()
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: reading the last write's WAL position: %w", err)
	}
	var tl uint64
	tlText, lsn, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	tl, err = strconv.ParseUint(tlText, 10, 32)
	n, lerr := parseLSN(lsn)
	if err == nil && lerr == nil {
		db.posMu.Lock()
		db.pos, db.posKnown = walPosition{timeline: tl, lsn: n}, true
		db.posMu.Unlock()
	}
	if err := os.Remove(file); err != nil {
		return fmt.Errorf("state: removing the last write's WAL position: %w", err)
	}
	return nil
}

// savePosition, at close, writes the WAL position after the last commit
// (positionFile) for the next process, when this one was the active
// instance: a standby sharing the state directory must not replace the
// active instance's position with an older one of its own. An unknown
// position writes none. A file that cannot be written (a read-only state
// directory) is logged: the next start on a new timeline holds, as
// without the file.
func (db *DB) savePosition() {
	file := db.positionPath()
	db.posMu.Lock()
	pos, ok := db.pos, db.posKnown
	db.posMu.Unlock()
	if file == "" || !ok || db.cfg.ReadOnly || db.leaseTerm.Load() == 0 {
		return
	}
	err := os.WriteFile(file, fmt.Appendf(nil, "%d %X/%X\n", pos.timeline, pos.lsn>>32, pos.lsn&0xffffffff), 0o600)
	if err == nil {
		err = syncFile(file)
	}
	if err != nil {
		db.logger().Warn("Cannot keep the WAL position of psa-syncd's last commit: after a PostgreSQL failover, the next start holds writes until -state.allow-restore",
			"file", file, "err", err)
	}
}

// lostNothing reports whether the server, on timeline current, not
// recorded where psa-syncd wrote the database, holds every commit that
// psa-syncd made: a failover to a standby that had received them all. It
// is when the position after psa-syncd's last commit is on the recorded
// timeline, and the current timeline's history file
// (pg_wal/<current>.history, which pg_read_file gives a superuser or a
// member of pg_read_server_files) says that the recorded timeline ended at
// or after it. Without that position (a process that crashed, a commit
// whose position could not be read) or that privilege, it is false, and
// the server is held as a restored copy. sw is where the recorded timeline
// ended.
func (db *DB) lostNothing(ctx context.Context, recorded, current string) (sw string, ok bool, err error) {
	db.posMu.Lock()
	pos, known := db.pos, db.posKnown
	db.posMu.Unlock()
	rec, rerr := strconv.ParseUint(recorded, 10, 32)
	cur, cerr := strconv.ParseUint(current, 10, 32)
	if !known || rerr != nil || cerr != nil || pos.timeline != rec {
		return "", false, nil
	}
	var history string
	err = db.sql.QueryRowContext(ctx, `SELECT pg_read_file($1)`, fmt.Sprintf("pg_wal/%08X.history", cur)).Scan(&history)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "58P01" || pgErr.Code == "42883") {
		// Not allowed, no such file, no such function.
		return "", false, nil
	}
	if err != nil {
		return "", false, db.wrap("reading the timeline's history", err)
	}
	// Each line: the parent timeline, where it ended, and why.
	for line := range strings.Lines(history) {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != recorded {
			continue
		}
		end, err := parseLSN(f[1])
		if err != nil {
			return "", false, nil
		}
		return f[1], end >= pos.lsn, nil
	}
	return "", false, nil
}
