package state

import (
	"cmp"
	"errors"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// SourceLinesInForce returns the lines whose ledger entry in force just
// before the time before (as SetBefore picks it: of the line's entries with
// an effective date before before, the one with the latest effective date,
// the newest among equals) is psa-syncd's, configured for system, for the
// usage of source source, with a quantity above 0: the lines that bill what
// psa-syncd last set from that source's usage, on any contract and for any
// customer, mapped today or not. It reads the ledger in one query, not once
// per line or contract: a pass lists from it the lines that no mapping
// writes any more (usage: orphaned lines).
func (db *DB) SourceLinesInForce(system psa.System, source string, before time.Time) ([]LedgerEntry, error) {
	if before.IsZero() {
		return nil, errors.New("state: SourceLinesInForce needs a time")
	}
	db.syncDeferred()
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT `+ledgerColumns+` FROM (SELECT `+ledgerColumns+`,
		ROW_NUMBER() OVER (PARTITION BY contract_id, service_id ORDER BY effective_date DESC, seq DESC) AS rn
		FROM ledger WHERE effective_date < ?) t WHERE rn = 1 AND system = ? AND source = ? AND qty_after > 0
		ORDER BY contract_id, service_id`), db.tv(before), string(system), source)
	if err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	var out []LedgerEntry
	for rows.Next() {
		e, err := scanLedger(rows)
		if err != nil {
			_ = rows.Close()
			return nil, db.wrap("reading the ledger", err)
		}
		out = append(out, e)
	}
	if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
		return nil, db.wrap("reading the ledger", err)
	}
	return out, nil
}
