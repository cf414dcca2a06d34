package state

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/psa-sync/terraform-provider-psa/internal/durable"
)

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// fileKind is what inspectFile found at a database path.
type fileKind int

const (
	fileMissing fileKind = iota
	fileSQLite
	fileBolt
)

// sqliteCacheKiB is the size of SQLite's page cache of the state
// database, in KiB (PRAGMA cache_size takes it negative).
const sqliteCacheKiB = 500

// sqliteDSN opens file with durable commits: WAL with synchronous=FULL
// (every commit is fsynced before it returns), and an exclusive lock held
// from the first transaction until Close, so that no second psa-syncd can
// use the file at the same time. Transactions begin IMMEDIATE, taking the
// write lock up front instead of upgrading to it. SQLite's own page cache
// is held to sqliteCacheKiB: the operating system caches the file's pages
// too, and SQLite's default of 2 MB showed as some 2 MiB more peak RSS in
// the passes of `make bench` (1,250 and 10,000 lines), for no difference
// in their time.
func sqliteDSN(file string) string {
	return file + "?_pragma=busy_timeout(" + fmt.Sprint(lockTimeout.Milliseconds()) + ")" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=locking_mode(EXCLUSIVE)" +
		"&_pragma=foreign_keys(1)&_pragma=cache_size(-" + fmt.Sprint(sqliteCacheKiB) + ")&_txlock=immediate"
}

func sqliteFile(path string) string {
	if filepath.Ext(path) != ".db" {
		return filepath.Join(path, FileName)
	}
	return path
}

func openSQLite(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Path == "" {
		return nil, errors.New("state: no state path given")
	}
	file := sqliteFile(cfg.Path)
	if cfg.Existing {
		return openExistingSQLite(ctx, file, cfg)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, notWritableOr(file, fmt.Errorf("state: creating the state directory: %w", err))
	}
	kind, err := inspectFile(file)
	if err != nil {
		return nil, err
	}
	switch kind {
	case fileMissing:
		// Create the database under a temporary name and move it into
		// place once its schema is complete, so that a crash never leaves
		// an empty or half-made file behind, which the next start would
		// refuse.
		if err := createSQLite(ctx, file, cfg, nil); err != nil {
			return nil, err
		}
	case fileBolt:
		if err := importBoltIntoSQLite(ctx, file, cfg); err != nil {
			return nil, err
		}
	}
	return openSQLiteFile(ctx, file, cfg)
}

// openExistingSQLite opens the SQLite state database at file for
// Config.Existing: it must be there and be an SQLite state database; it is
// checked but neither created, imported nor migrated.
func openExistingSQLite(ctx context.Context, file string, cfg Config) (*DB, error) {
	kind, err := inspectFile(file)
	if err != nil {
		return nil, err
	}
	switch kind {
	case fileMissing:
		return nil, &noStateError{fmt.Sprintf("state: there is no state database %q: is the state directory right? "+
			"(psa-syncd creates the database when it first starts; nothing was created)", file)}
	case fileBolt:
		return nil, fmt.Errorf("state: %q is the bbolt state file of an earlier psa-syncd, which this psa-syncd imports "+
			"when it starts; nothing was changed: copy the file as it is (with psa-syncd stopped) to back it up", file)
	}
	return openSQLiteFile(ctx, file, cfg)
}

// openSQLiteFile opens an existing SQLite state database, checks it and
// migrates its schema (not for Config.Existing).
func openSQLiteFile(ctx context.Context, file string, cfg Config) (*DB, error) {
	sdb, err := sql.Open("sqlite", sqliteDSN(file))
	if err != nil {
		return nil, fmt.Errorf("state: opening state database %q: %w", file, err)
	}
	// One connection: the exclusive lock belongs to a connection, and
	// SQLite runs one write at a time anyway.
	sdb.SetMaxOpenConns(1)
	sdb.SetMaxIdleConns(1)
	sdb.SetConnMaxLifetime(0)
	sdb.SetConnMaxIdleTime(0)
	db := &DB{sql: sdb, dialect: dialectSQLite, path: file, timeout: cfg.QueryTimeout, cfg: cfg}
	if err := db.checkSQLite(ctx); err != nil {
		_ = sdb.Close()
		return nil, err
	}
	if cfg.Existing {
		err = db.checkSchema(ctx)
	} else {
		err = db.migrate(ctx)
	}
	if err != nil {
		_ = sdb.Close()
		return nil, err
	}
	return db, nil
}

// checkSQLite takes the file's lock (by writing nothing in an IMMEDIATE
// transaction), within ConnectTimeout, and runs SQLite's quick integrity
// check, within CheckTimeout: it reads the whole file, which takes longer
// the larger the file and the slower the disk.
func (db *DB) checkSQLite(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, db.cfg.ConnectTimeout)
	defer cancel()
	tx, err := db.sql.BeginTx(lctx, nil)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return db.classify(err)
	}
	cctx, cancel := context.WithTimeout(ctx, db.cfg.CheckTimeout)
	defer cancel()
	problems, err := db.quickCheck(cctx)
	if err != nil {
		if ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("state: the integrity check of state database %q (SQLite's PRAGMA quick_check, which reads the "+
				"whole file) did not finish within %v (state.check_timeout); the file was left untouched: check the disk, "+
				"or raise state.check_timeout for a database this large (%s)", db.path, db.cfg.CheckTimeout, fileSize(db.path))
		}
		return db.classify(err)
	}
	if len(problems) > 0 {
		return corrupt(db.path, fmt.Errorf("integrity check: %s", problems[0]))
	}
	return nil
}

// quickCheck runs PRAGMA quick_check and returns the problems it found.
func (db *DB) quickCheck(ctx context.Context) ([]string, error) {
	rows, err := db.sql.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	return problems, rows.Err()
}

// fileSize describes the size of file for an error message.
func fileSize(file string) string {
	fi, err := os.Stat(file)
	if err != nil {
		return "size unknown"
	}
	return fmt.Sprintf("%d MB", fi.Size()>>20)
}

// classify turns an SQLite error at open into the error psa-syncd reports.
func (db *DB) classify(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("state: state database %q is locked by another psa-syncd process", db.path)
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_FORMAT:
			return corrupt(db.path, err)
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return notWritable(db.path, err)
		}
	}
	return fmt.Errorf("state: opening state database %q: %w", db.path, err)
}

// notWritableOr returns notWritable(file, err) when err is a file system's
// refusal to write (permissions, a read-only file system), and otherwise
// err.
func notWritableOr(file string, err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return notWritable(file, err)
	}
	return err
}

// notWritable is the error for a state database that cannot be opened for
// writing: SQLite needs to write the file and to create its -wal and -shm
// files beside it, in the state directory.
func notWritable(file string, err error) error {
	who := fmt.Sprintf("uid %d", os.Getuid())
	if u, uerr := user.Current(); uerr == nil {
		who = fmt.Sprintf("user %s, %s", u.Username, who)
	}
	return fmt.Errorf("state: state database %q cannot be opened for writing (%w): the state directory %q and the files "+
		"in it must be writable by psa-syncd's user (%s), which creates psa-syncd.db and its -wal and -shm files there; "+
		"is the directory on a read-only file system (a read-only volume or container root), or owned by another user?",
		file, err, filepath.Dir(file), who)
}

func corrupt(file string, err error) error {
	return fmt.Errorf("state: state database %q is corrupt or not a psa-syncd database (%w); "+
		"it was left untouched: restore it from a backup or move it aside to start with empty state", file, err)
}

// inspectFile tells what is at file without changing it: nothing, an SQLite
// database whose header is sound, or a bbolt file of an earlier version.
// Everything else (an empty file, a truncated one, another format) is an
// error naming the file and the recovery.
func inspectFile(file string) (fileKind, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return fileMissing, nil
	}
	if err != nil {
		return 0, fmt.Errorf("state: opening state database %q: %w", file, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("state: opening state database %q: %w", file, err)
	}
	if fi.IsDir() {
		return 0, fmt.Errorf("state: state database %q is a directory", file)
	}
	size := fi.Size()
	if size == 0 {
		return 0, fmt.Errorf("state: state database %q is empty (0 bytes): psa-syncd never leaves its database empty, so it was "+
			"truncated or replaced; it was left untouched: restore it from a backup (see psa-syncd backup), or, only if psa-syncd "+
			"has never synced with this state directory, delete the file to start with empty state", file)
	}
	h := make([]byte, 100)
	n, err := io.ReadFull(f, h)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, fmt.Errorf("state: reading state database %q: %w", file, err)
	}
	h = h[:n]
	if isBolt(h) {
		return fileBolt, nil
	}
	if !bytes.HasPrefix(h, sqliteMagic) {
		return 0, corrupt(file, errors.New("not an SQLite database"))
	}
	if len(h) < 100 {
		return 0, corrupt(file, fmt.Errorf("truncated to %d bytes", size))
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	// psa-syncd creates every database in WAL mode (file format versions
	// 2 and 2); anything else was not written by it.
	if h[18] != 2 || h[19] != 2 {
		return 0, corrupt(file, errors.New("not in WAL mode"))
	}
	// The page count in the header is valid when its "version valid for"
	// matches the change counter. A checkpoint interrupted by a crash can
	// leave the file shorter than a header it already wrote, until SQLite
	// replays the WAL, so the count is checked only without a WAL to
	// replay; quick_check finds missing pages either way.
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	wal, err := os.Stat(file + "-wal")
	replay := err == nil && wal.Size() > 0
	if !replay && binary.BigEndian.Uint32(h[92:96]) == binary.BigEndian.Uint32(h[24:28]) && pages*pageSize > size {
		return 0, corrupt(file, fmt.Errorf("truncated: %d bytes, but its header counts %d pages of %d bytes", size, pages, pageSize))
	}
	return fileSQLite, nil
}

// isBolt reports whether h starts with a bbolt meta page.
func isBolt(h []byte) bool {
	const boltMagic = 0xED0CDAED
	return len(h) >= 20 && binary.LittleEndian.Uint32(h[16:20]) == boltMagic
}

// createSQLite creates a new database at file: it is made under a
// temporary name with mode 0600, its schema is migrated and fill (when not
// nil) adds data, and only then is it moved into place. When file exists
// (a bbolt file being imported) it is kept as a hard link named by
// boltBackupName.
func createSQLite(ctx context.Context, file string, cfg Config, fill func(*DB) error) error {
	tmp := file + ".creating"
	for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return notWritableOr(file, fmt.Errorf("state: removing %q: %w", f, err))
		}
	}
	// SQLite gives its -wal file the database file's mode.
	if err := writeEmpty(tmp); err != nil {
		return notWritableOr(file, err)
	}
	sdb, err := sql.Open("sqlite", sqliteDSN(tmp))
	if err != nil {
		return fmt.Errorf("state: creating state database %q: %w", file, err)
	}
	sdb.SetMaxOpenConns(1)
	db := &DB{sql: sdb, dialect: dialectSQLite, path: file, timeout: cfg.QueryTimeout, cfg: cfg}
	err = db.migrate(ctx)
	if err == nil && fill != nil {
		err = fill(db)
	}
	// The schema and the imported state are in the -wal file until a
	// checkpoint copies them into tmp. SQLite checkpoints at Close too,
	// but ignores a checkpoint that fails there (a full disk): the file
	// renamed into place would then lack them, and the -wal holding them
	// would stay behind under tmp's name, where no one reads it.
	if err == nil {
		err = db.checkpoint(ctx, tmp)
	}
	if cerr := sdb.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("state: creating state database %q: %w", file, cerr)
	}
	if err == nil {
		err = checkNoWAL(tmp)
	}
	if err == nil {
		err = syncFile(tmp)
	}
	if err != nil {
		for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"} {
			_ = os.Remove(f)
		}
		if fill != nil {
			return fmt.Errorf("%w; nothing was imported: the bbolt state file %q was left as it was, and "+
				"psa-syncd imports it when it next starts", err, file)
		}
		return fmt.Errorf("%w; no state database was created: psa-syncd creates it when it next starts", err)
	}
	if fill != nil {
		backup := boltBackupName(file)
		if err := os.Remove(backup); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("state: removing %q: %w", backup, err)
		}
		if err := os.Link(file, backup); err != nil {
			return fmt.Errorf("state: keeping the bbolt state file as %q: %w", backup, err)
		}
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("state: creating state database %q: %w", file, err)
	}
	return syncDir(filepath.Dir(file))
}

// checkpoint copies the whole write-ahead log of the database being
// created (tmp) into its file and empties the log, or fails.
func (db *DB) checkpoint(ctx context.Context, tmp string) error {
	ctx, cancel := context.WithTimeout(ctx, db.cfg.ConnectTimeout+db.timeout)
	defer cancel()
	var busy, log, done int
	err := db.sql.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &log, &done)
	if err == nil && (busy != 0 || log != done) {
		err = fmt.Errorf("checkpoint incomplete: busy %d, %d of %d log frames copied", busy, done, log)
	}
	if err != nil {
		return fmt.Errorf("state: creating state database %q: copying its write-ahead log into %q: %w", db.path, tmp, err)
	}
	return nil
}

// checkNoWAL fails when tmp, closed, still has a write-ahead log with
// content: it holds commits that are not in tmp itself.
func checkNoWAL(tmp string) error {
	fi, err := os.Stat(tmp + "-wal")
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("state: creating state database: %w", err)
	case fi.Size() > 0:
		return fmt.Errorf("state: creating state database: its write-ahead log %q (%d bytes) was not copied into %q when it was closed",
			tmp+"-wal", fi.Size(), tmp)
	}
	return nil
}

// syncFile fsyncs file.
func syncFile(file string) error {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("state: syncing %q: %w", file, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("state: syncing %q: %w", file, err)
	}
	return nil
}

func writeEmpty(file string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("state: creating %q: %w", file, err)
	}
	return f.Close()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("state: syncing %q: %w", dir, err)
	}
	return nil
}
