package state

import (
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// LedgerContracts returns every contract the ledger has an entry of, of
// any system and source, once each: read from the ledger's line index
// alone (no row is read), so that a pass can tell, at the cost of one
// index scan, the contracts psa-syncd wrote that no mapping names any more
// (usage: orphaned lines), and look up only those (LinesInForce).
func (db *DB) LedgerContracts() ([]string, error) {
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.sql.QueryContext(ctx, `SELECT DISTINCT contract_id FROM ledger`)
	if err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, db.wrap("reading the ledger", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	return out, nil
}

// LedgerLinesOutside returns the lines the ledger has an entry of, of any
// system and source, whose service is none of services, once each: read
// from the ledger's line index alone, so that a pass can find, at the cost
// of one index scan, the lines of services no product mapping names any
// more and look up only their contracts (LinesInForce).
func (db *DB) LedgerLinesOutside(services []string) ([]psa.LineKey, error) {
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	q := `SELECT DISTINCT contract_id, service_id FROM ledger`
	args := make([]any, 0, len(services))
	if len(services) > 0 {
		q += ` WHERE service_id NOT IN (?` + strings.Repeat(", ?", len(services)-1) + `)`
		for _, s := range services {
			args = append(args, s)
		}
	}
	rows, err := db.sql.QueryContext(ctx, db.q(q), args...)
	if err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	defer rows.Close()
	var out []psa.LineKey
	for rows.Next() {
		var k psa.LineKey
		if err := rows.Scan(&k.ContractID, &k.ServiceID); err != nil {
			return nil, db.wrap("reading the ledger", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	return out, nil
}
