package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// PSAInstance is the instance of a PSA system whose usage a state database
// records. The ledger, the intents and the contract checks of a system name
// contracts and services by id alone, and two tenants of one system (an
// Autotask sandbox and the production tenant it was copied from) share
// those ids: the usage engine records the instance with BindInstance and
// refuses passes connected to another one of that system.
type PSAInstance struct {
	System psa.System
	// Instance is what the backend's Instance reports (psa.instance in
	// the export); export.SameInstance compares two.
	Instance string
	// BoundAt is when it was recorded.
	BoundAt time.Time
}

// String names the instance for errors and logs: `autotask instance
// "ci:29683541@webservices5.autotask.net"`.
func (in PSAInstance) String() string {
	return fmt.Sprintf("%s instance %q", in.System, in.Instance)
}

// BoundInstance returns the instance of system recorded in the database;
// ok is false when none is recorded yet (no pass of system wrote to the
// database, or none since it was migrated from schema version 6 or older).
func (db *DB) BoundInstance(system psa.System) (in PSAInstance, ok bool, err error) {
	ctx, cancel := db.ctx()
	defer cancel()
	err = db.sql.QueryRowContext(ctx, db.q(`SELECT system, instance, bound_at FROM psa_instance WHERE system = ?`), string(system)).
		Scan(&in.System, &in.Instance, timeDest{&in.BoundAt})
	if errors.Is(err, sql.ErrNoRows) {
		return PSAInstance{}, false, nil
	}
	if err != nil {
		return PSAInstance{}, false, db.wrap(fmt.Sprintf("reading the %s instance of the state database", system), err)
	}
	return in, true, nil
}

// BindInstance records in as the instance of its system unless one is
// recorded already, and returns the recorded one: in, or the instance
// recorded before, which may be another (the caller compares them). Of
// several psa-syncd binding one database at once, the first wins. A zero
// BoundAt becomes now.
func (db *DB) BindInstance(in PSAInstance) (PSAInstance, error) {
	if err := in.check(); err != nil {
		return PSAInstance{}, err
	}
	what := fmt.Sprintf("recording the %s instance of the state database", in.System)
	var got PSAInstance
	err := db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO psa_instance (system, instance, bound_at) VALUES (?, ?, ?)
			ON CONFLICT (system) DO NOTHING`), string(in.System), in.Instance, db.tv(in.boundAt())); err != nil {
			return db.wrap(what, err)
		}
		return db.wrap(what, tx.QueryRowContext(ctx, db.q(`SELECT system, instance, bound_at FROM psa_instance WHERE system = ?`), string(in.System)).
			Scan(&got.System, &got.Instance, timeDest{&got.BoundAt}))
	})
	return got, err
}

// PutBoundInstance records in as the instance of its system, replacing the
// one recorded: the same tenant as it is known now (an Autotask tenant
// that moved to another zone), or another one that an operator binds the
// database to. A zero BoundAt becomes now.
func (db *DB) PutBoundInstance(in PSAInstance) error {
	if err := in.check(); err != nil {
		return err
	}
	what := fmt.Sprintf("recording the %s instance of the state database", in.System)
	return db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO psa_instance (system, instance, bound_at) VALUES (?, ?, ?)
			ON CONFLICT (system) DO UPDATE SET instance = excluded.instance, bound_at = excluded.bound_at`),
			string(in.System), in.Instance, db.tv(in.boundAt()))
		return db.wrap(what, err)
	})
}

func (in PSAInstance) check() error {
	if in.System == "" || in.Instance == "" {
		return fmt.Errorf("state: recording the PSA instance of the state database: %s names no system or no instance", in)
	}
	return nil
}

func (in PSAInstance) boundAt() time.Time {
	if in.BoundAt.IsZero() {
		return time.Now()
	}
	return in.BoundAt
}
