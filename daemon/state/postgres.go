package state

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// CheckPostgresURL checks the form of a PostgreSQL connection URL or
// keyword/value string, as the postgres driver reads it, without
// connecting; the error says what is wrong and never quotes the password.
func CheckPostgresURL(url string) error {
	_, err := parsePostgresURL(url)
	return err
}

func parsePostgresURL(url string) (*pgx.ConnConfig, error) {
	pc, err := pgx.ParseConfig(url)
	if err == nil {
		return pc, nil
	}
	// The parser quotes the connection string with its password masked
	// ("cannot parse `postgres://psa:xxxxx@db/psa`: invalid port"), but
	// masks only what it could split off: a password with a "/" is cut
	// elsewhere. Only the reason after the quote is kept.
	reason := ""
	if i := strings.LastIndex(err.Error(), "`: "); i >= 0 {
		reason = ": " + err.Error()[i+3:]
	}
	return nil, fmt.Errorf("state: state.url is neither a PostgreSQL URL (postgres://user@host:5432/database) nor a keyword/value connection string%s "+
		"(in a URL, a password with /, @, : or %% must be percent-encoded)", reason)
}

func openPostgres(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.URL == "" {
		return nil, errors.New("state: the postgres driver needs a connection URL (state.url)")
	}
	pc, err := parsePostgresURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = cfg.ConnectTimeout
	}
	if cfg.ReadOnly {
		pc.RuntimeParams["default_transaction_read_only"] = "on"
	}
	sdb := sql.OpenDB(storableConnector{stdlib.GetConnector(*pc)})
	sdb.SetMaxOpenConns(cfg.MaxOpenConns)
	sdb.SetMaxIdleConns(cfg.MaxIdleConns)
	sdb.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db := &DB{
		sql: sdb, dialect: dialectPostgres, timeout: cfg.QueryTimeout, cfg: cfg,
		path:   fmt.Sprintf("PostgreSQL database %q on %s:%d", pc.Database, pc.Host, pc.Port),
		fenced: true,
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := sdb.PingContext(pctx); err != nil {
		_ = sdb.Close()
		return nil, fmt.Errorf("state: connecting to the %s: %w", db.path, err)
	}
	if cfg.ReadOnly || cfg.Existing {
		check := db.CheckVersion
		if !cfg.ReadOnly {
			check = func() error { return db.checkSchema(ctx) }
		}
		if err := check(); err != nil {
			_ = sdb.Close()
			return nil, err
		}
		return db, nil
	}
	if err := db.migrate(ctx); err != nil {
		_ = sdb.Close()
		return nil, err
	}
	if err := db.recordTableOID(ctx); err != nil {
		_ = sdb.Close()
		return nil, err
	}
	if cfg.Path != "" {
		bolt := sqliteFile(cfg.Path)
		if kind, err := inspectFile(bolt); err == nil && kind == fileBolt {
			if err := db.importBoltIntoPostgres(ctx, bolt); err != nil {
				_ = sdb.Close()
				return nil, err
			}
		}
	}
	return db, nil
}

// importBoltIntoPostgres imports a bbolt state file found in the state
// directory into an empty PostgreSQL database, then renames the file to
// its backup name. The file's digest is recorded in the same transaction,
// so that a crash before the rename does not import it twice.
func (db *DB) importBoltIntoPostgres(ctx context.Context, file string) error {
	data, digest, err := readBolt(file)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, db.cfg.ConnectTimeout+db.timeout)
	defer cancel()
	done, err := db.importedDigest(ctx)
	if err != nil {
		return err
	}
	if done != digest {
		empty, err := db.empty(ctx)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("state: the state directory holds a bbolt state file of an earlier psa-syncd (%q), but the %s "+
				"already holds state: move the file aside if its state is already in the database, or use an empty database to import it",
				file, db.path)
		}
		if err := db.load(data, digest); err != nil {
			return err
		}
	}
	backup := boltBackupName(file)
	if err := os.Rename(file, backup); err != nil {
		return fmt.Errorf("state: imported %q, but renaming it to %q failed: %w", file, backup, err)
	}
	return syncDir(filepath.Dir(file))
}

// storableConnector is pgx's connector whose connections store text as
// storableText returns it. PostgreSQL refuses a NUL byte or invalid UTF-8
// in text, which SQLite stores; an error message quoting a PSA's answer or
// a name from the export can hold either, and one refused value would fail
// the whole group commit it is in, with the other customers' writes.
type storableConnector struct{ driver.Connector }

func (c storableConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		// The error keeps the configuration it was tried with, password
		// included, where a deep print of the error (a debugger, a
		// test's failure message) shows it: only what its message names
		// is kept.
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) && ce.Config != nil {
			ce.Config = &pgconn.Config{User: ce.Config.User, Database: ce.Config.Database}
		}
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("state: pgx returned a %T, not a *stdlib.Conn", conn)
	}
	return storableConn{sc}, nil
}

// storableConn is a pgx connection whose arguments of a string kind are
// passed through storableText. database/sql asks the connection to check
// every argument (its statements leave it to the connection).
type storableConn struct{ *stdlib.Conn }

func (c storableConn) CheckNamedValue(nv *driver.NamedValue) error {
	if v := reflect.ValueOf(nv.Value); v.Kind() == reflect.String {
		if s := v.String(); !isStorableText(s) {
			nv.Value = storableText(s)
		}
	}
	return c.Conn.CheckNamedValue(nv)
}

func isStorableText(s string) bool { return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) }

// storableText returns s with each NUL byte and each invalid UTF-8
// sequence replaced by U+FFFD, the replacement character.
func storableText(s string) string {
	if isStorableText(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
