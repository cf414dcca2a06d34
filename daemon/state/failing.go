package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// metaFailingContracts prefixes the meta key of a PSA system's failing
// contracts (see FailingContracts): "failing_contracts/autotask", and
// metaFailingReads that of the contracts whose reads fail (see
// FailingReads): "failing_reads/autotask".
const (
	metaFailingContracts = "failing_contracts/"
	metaFailingReads     = "failing_reads/"
)

// FailingContracts returns the contracts of system whose writes the usage
// passes last saw fail as if the whole PSA did, each with whether it failed
// while other writes of its pass succeeded, as PutFailingContracts stored
// them; none when none were stored. They are kept so that a process that
// starts (a restarted daemon, each `psa-syncd sync`) writes them last, as
// the process before it would have.
func (db *DB) FailingContracts(system psa.System) (map[string]bool, error) {
	return db.failing("reading the failing contracts of "+string(system), metaFailingContracts+string(system))
}

// PutFailingContracts replaces the failing contracts of system (see
// FailingContracts) with contracts.
func (db *DB) PutFailingContracts(system psa.System, contracts map[string]bool) error {
	return db.putFailing("recording the failing contracts of "+string(system), metaFailingContracts+string(system), contracts)
}

// FailingReads returns the contracts of system whose reads the usage
// passes last saw the PSA refuse with a server error, each with whether
// it was refused while other reads of its pass succeeded, as
// PutFailingReads stored them; none when none were stored. They are kept
// so that their refusals stop no pass's reads, whichever process makes it.
func (db *DB) FailingReads(system psa.System) (map[string]bool, error) {
	return db.failing("reading the contracts whose reads fail of "+string(system), metaFailingReads+string(system))
}

// PutFailingReads replaces the contracts of system whose reads fail (see
// FailingReads) with contracts.
func (db *DB) PutFailingReads(system psa.System, contracts map[string]bool) error {
	return db.putFailing("recording the contracts whose reads fail of "+string(system), metaFailingReads+string(system), contracts)
}

// failing reads the contracts stored under the meta key key.
func (db *DB) failing(what, key string) (map[string]bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var v string
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT value FROM meta WHERE key = ?`), key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, db.wrap(what, err)
	}
	out := map[string]bool{}
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, db.wrap(what, fmt.Errorf("meta %s: %w", key, err))
	}
	return out, nil
}

// putFailing replaces the contracts stored under the meta key key.
func (db *DB) putFailing(what, key string, contracts map[string]bool) error {
	return db.tx(what, func(ctx context.Context, tx *sql.Tx) error {
		if len(contracts) == 0 {
			_, err := tx.ExecContext(ctx, db.q(`DELETE FROM meta WHERE key = ?`), key)
			return db.wrap(what, err)
		}
		v, err := json.Marshal(contracts)
		if err != nil {
			return db.wrap(what, err)
		}
		_, err = tx.ExecContext(ctx, db.q(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`), key, string(v))
		return db.wrap(what, err)
	})
}
