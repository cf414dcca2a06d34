package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

func openPostgres(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.URL == "" {
		return nil, errors.New("state: the postgres driver needs a connection URL (state.url)")
	}
	pc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		// The parser's message can quote the URL, and with it a password.
		return nil, errors.New("state: state.url is neither a PostgreSQL URL (postgres://user@host:5432/database) nor a keyword/value connection string")
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = cfg.ConnectTimeout
	}
	if cfg.ReadOnly {
		pc.RuntimeParams["default_transaction_read_only"] = "on"
	}
	sdb := stdlib.OpenDB(*pc)
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
	if cfg.ReadOnly {
		if err := db.checkVersion(); err != nil {
			_ = sdb.Close()
			return nil, err
		}
		return db, nil
	}
	if err := db.migrate(ctx); err != nil {
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
