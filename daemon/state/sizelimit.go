package state

import (
	"errors"
	"fmt"
)

// LimitSize makes the SQLite state database refuse to grow by more than
// pages pages beyond its size now: a write that needs more fails as on a
// full disk (SQLITE_FULL, "database or disk is full"), and the database is
// left as it was before that write. A negative pages lifts the limit, as
// freeing the disk would. It is for tests of what psa-syncd does when its
// disk fills (SQLite's PRAGMA max_page_count, which needs neither a mount
// nor root); PostgreSQL refuses it.
func (db *DB) LimitSize(pages int) error {
	if db.dialect != dialectSQLite {
		return errors.New("state: LimitSize is for SQLite")
	}
	ctx, cancel := db.ctx()
	defer cancel()
	// The pragma belongs to the connection: the database has one, which
	// it keeps open.
	var count int64
	if err := db.sql.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&count); err != nil {
		return db.wrap("limiting the size", err)
	}
	limit := count + int64(pages)
	if pages < 0 {
		limit = 1 << 30
	}
	var got int64
	if err := db.sql.QueryRowContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, limit)).Scan(&got); err != nil {
		return db.wrap("limiting the size", err)
	}
	if got != limit {
		return fmt.Errorf("state: limiting the size of %s: max_page_count is %d, want %d", db.path, got, limit)
	}
	return nil
}

// LoseCommitAnswer makes the next transaction that opens intents or
// writes ticket records commit, and then fail as if the connection had
// been lost while its COMMIT was under way: with an error matching
// ErrMaybeCommitted, although the records are there. It is for tests of
// what psa-syncd does with a write whose outcome it cannot know (on
// PostgreSQL, a COMMIT cut off by the connection or the query timeout),
// on either database.
func (db *DB) LoseCommitAnswer() {
	db.loseAnswer.Store(true)
}
