package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ExportVersion is one stored version of the mapping export, for the export
// store that psa-syncd serves. Its body is kept beside it, until
// PruneHistory empties the bodies of old versions.
type ExportVersion struct {
	// Revision is the export's revision; each new version is the previous
	// one's plus one.
	Revision int64
	// Digest identifies the body (the store's ETag).
	Digest string
	// Size is the body's length in bytes.
	Size int64
	// At is when the version was stored.
	At time.Time
	// Source says who wrote it (for example the Terraform provider).
	Source string
}

// PutExport stores a new version of the export with its body. The caller
// assigns Revision as the current revision plus one; a Revision that is not
// newer than every stored one fails with an error matching ErrConflict, so
// two writers that raced for the same revision cannot both succeed, and one
// that skips revisions fails with another error. A zero
// At becomes now and a zero Size the body's length.
func (db *DB) PutExport(v ExportVersion, body []byte) error {
	if v.Revision <= 0 {
		return fmt.Errorf("state: storing export revision %d: revisions start at 1", v.Revision)
	}
	if v.Size == 0 {
		v.Size = int64(len(body))
	}
	if v.Size != int64(len(body)) {
		return fmt.Errorf("state: storing export revision %d: size %d but the body has %d bytes", v.Revision, v.Size, len(body))
	}
	if v.At.IsZero() {
		v.At = time.Now()
	}
	if body == nil {
		body = []byte{}
	}
	what := fmt.Sprintf("storing export revision %d", v.Revision)
	return db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		var cur int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(revision), 0) FROM export_versions`).Scan(&cur); err != nil {
			return db.wrap(what, err)
		}
		if v.Revision <= cur {
			return fmt.Errorf("state: %s: the current revision is %d: %w", what, cur, ErrConflict)
		}
		if v.Revision != cur+1 {
			return fmt.Errorf("state: %s: the current revision is %d, so the next one must be %d", what, cur, cur+1)
		}
		res, err := tx.ExecContext(ctx, db.q(`INSERT INTO export_versions (revision, digest, size, at, source, body)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (revision) DO NOTHING`),
			v.Revision, v.Digest, v.Size, db.tv(v.At), v.Source, body)
		if err != nil {
			return db.wrap(what, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("state: %s: stored meanwhile by another writer: %w", what, ErrConflict)
		}
		return nil
	})
}

const exportColumns = `revision, digest, size, at, source`

func scanExport(row interface{ Scan(...any) error }) (ExportVersion, error) {
	var v ExportVersion
	err := row.Scan(&v.Revision, &v.Digest, &v.Size, timeDest{&v.At}, &v.Source)
	return v, err
}

// ErrNoExport is returned by CurrentExport when no export is stored; it
// matches ErrNotFound too.
var ErrNoExport = fmt.Errorf("state: no mapping export stored: %w", ErrNotFound)

// CurrentExport returns the newest stored version of the export and its
// body, or ErrNoExport when none is stored.
func (db *DB) CurrentExport() (ExportVersion, []byte, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var (
		v    ExportVersion
		body []byte
	)
	err := db.sql.QueryRowContext(ctx, `SELECT `+exportColumns+`, body FROM export_versions ORDER BY revision DESC LIMIT 1`).
		Scan(&v.Revision, &v.Digest, &v.Size, timeDest{&v.At}, &v.Source, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return ExportVersion{}, nil, ErrNoExport
	}
	if err != nil {
		return ExportVersion{}, nil, db.wrap("reading the current export", err)
	}
	return v, body, nil
}

// ExportHistory returns up to limit stored versions of the export, newest
// first, without their bodies. A limit of 0 or less means all of them.
func (db *DB) ExportHistory(limit int) ([]ExportVersion, error) {
	return queryAll(db, "reading the export history",
		`SELECT `+exportColumns+` FROM export_versions ORDER BY revision DESC`+limitClause(limit), scanExport)
}

// PreviousExport returns the newest stored version of the export older
// than revision that still has its body (PruneHistory empties the bodies
// of old versions), or ErrNoExport when there is none.
func (db *DB) PreviousExport(revision int64) (ExportVersion, []byte, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var (
		v    ExportVersion
		body []byte
	)
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT `+exportColumns+`, body FROM export_versions
		WHERE revision < ? AND length(body) > 0 ORDER BY revision DESC LIMIT 1`), revision).
		Scan(&v.Revision, &v.Digest, &v.Size, timeDest{&v.At}, &v.Source, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return ExportVersion{}, nil, ErrNoExport
	}
	if err != nil {
		return ExportVersion{}, nil, db.wrap(fmt.Sprintf("reading the export before revision %d", revision), err)
	}
	return v, body, nil
}

// RemoteExport is the last good export psa-syncd read from a remote store,
// kept for a restart while the store cannot be read.
type RemoteExport struct {
	// Store identifies the store: a digest of its URL, never the URL,
	// which may hold credentials.
	Store string
	// Version is the store's version of Body (its ETag).
	Version string
	// At is when it was read.
	At   time.Time
	Body []byte
}

// PutRemoteExport keeps e as the last good export of its store, replacing
// the one kept before.
func (db *DB) PutRemoteExport(e RemoteExport) error {
	if e.Store == "" {
		return errors.New("state: storing the last good remote export: no store")
	}
	if e.Body == nil {
		e.Body = []byte{}
	}
	what := "storing the last good export of the remote store"
	return db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO remote_export (store, version, at, body) VALUES (?, ?, ?, ?)
			ON CONFLICT (store) DO UPDATE SET version = excluded.version, at = excluded.at, body = excluded.body`),
			e.Store, e.Version, db.tv(e.At), e.Body)
		return db.wrap(what, err)
	})
}

// LastRemoteExport returns the last good export kept for store, or
// ErrNoExport when none is kept.
func (db *DB) LastRemoteExport(store string) (RemoteExport, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	e := RemoteExport{Store: store}
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT version, at, body FROM remote_export WHERE store = ?`), store).
		Scan(&e.Version, timeDest{&e.At}, &e.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return RemoteExport{}, ErrNoExport
	}
	if err != nil {
		return RemoteExport{}, db.wrap("reading the last good export of the remote store", err)
	}
	return e, nil
}
