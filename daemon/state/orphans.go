package state

import (
	"database/sql"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// LedgerContracts returns every contract the ledger has an entry of, of
// any system and source, once each: read from the ledger's line index
// alone (no row is read), so that a pass can tell, at the cost of one
// index scan, the contracts psa-syncd wrote that no mapping names any more
// (usage: orphaned lines), and look up only those (LinesInForce).
func (db *DB) LedgerContracts() ([]string, error) {
	return db.ledgerDistinct(`SELECT DISTINCT contract_id FROM ledger`)
}

// ledgerDistinct runs query, which selects one text column of the ledger,
// and returns its values.
func (db *DB) ledgerDistinct(query string) ([]string, error) {
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.sql.QueryContext(ctx, query)
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

// maxOutsideParams is the most services LedgerLinesOutside leaves out in
// its query's NOT IN, far below any database's limit of bind parameters.
const maxOutsideParams = 1000

// LedgerLinesOutside returns the lines the ledger has an entry of, of any
// system and source, whose service is none of services, once each: read
// from the ledger's line index alone, so that a pass can find, at the cost
// of one index scan, the lines of services no product mapping names any
// more and look up only their contracts (LinesInForce). Up to
// maxOutsideParams services are left out by the query (one bind parameter
// each); more, and every line is read and those of services are left out
// here: a single NOT IN of them would pass the database's limit of bind
// parameters (SQLite: 32,766; PostgreSQL: 65,535) and fail the read.
func (db *DB) LedgerLinesOutside(services []string) ([]psa.LineKey, error) {
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	q := `SELECT DISTINCT contract_id, service_id FROM ledger`
	args := make([]any, 0, min(len(services), maxOutsideParams))
	var skip map[string]bool
	if len(services) > maxOutsideParams {
		skip = make(map[string]bool, len(services))
		for _, s := range services {
			skip[s] = true
		}
	} else if len(services) > 0 {
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
		if skip[k.ServiceID] {
			continue
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	return out, nil
}

// LedgerCustomers returns every customer the ledger has an entry of, of
// any system and source, once each: read from the ledger's customer index
// alone (schema version 10), so that a pass can tell, at the cost of one
// index scan, whether psa-syncd set a line for a customer no mapping names
// any more (usage: orphaned lines), and look up only that customer's
// contracts (LedgerContractsOf).
func (db *DB) LedgerCustomers() ([]string, error) {
	return db.ledgerDistinct(`SELECT DISTINCT customer_id FROM ledger`)
}

// LedgerContractsOf returns the contracts the ledger has an entry of for
// the customers customerIDs, of any system and source, once each, in one
// query per 500 customers through the ledger's customer index: only those
// customers' entries are read.
func (db *DB) LedgerContractsOf(customerIDs []string) ([]string, error) {
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	seen := map[string]bool{}
	var out []string
	err := db.eachInArgs(ctx, `SELECT DISTINCT contract_id FROM ledger WHERE customer_id`, nil, customerIDs, func(rows *sql.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	return out, nil
}
