package state

import (
	"context"
	"database/sql"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// ContractCheck is what a usage pass found when it verified a contract
// before writing to it: the contract as the PSA described it, and when.
type ContractCheck struct {
	System     psa.System `json:"system"`
	ContractID string     `json:"contract_id"`
	// CompanyID is the contract's company in the PSA ("" when the PSA did
	// not say).
	CompanyID string    `json:"company_id"`
	Status    string    `json:"status"`
	Type      string    `json:"type"`
	Active    bool      `json:"active"`
	Recurring bool      `json:"recurring"`
	CheckedAt time.Time `json:"checked_at"`
}

// contractCheckChunk bounds the ids one ContractChecks or CatalogServices
// query names (see eachIn), well under SQLite's limit of bound parameters.
const contractCheckChunk = 500

// ContractChecks returns the recorded checks of the given contracts of a
// system, by contract id; contracts never checked are absent.
func (db *DB) ContractChecks(system psa.System, contractIDs []string) (map[string]ContractCheck, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	out := make(map[string]ContractCheck, len(contractIDs))
	err := db.eachIn(ctx, `SELECT system, contract_id, company_id, status, type, active, recurring, checked_at
		FROM contract_checks WHERE system = ? AND contract_id`, string(system), contractIDs, func(rows *sql.Rows) error {
		var c ContractCheck
		if err := rows.Scan(&c.System, &c.ContractID, &c.CompanyID, &c.Status, &c.Type, &c.Active, &c.Recurring, timeDest{&c.CheckedAt}); err != nil {
			return err
		}
		out[c.ContractID] = c
		return nil
	})
	if err != nil {
		return nil, db.wrap("reading contract checks", err)
	}
	return out, nil
}

// PutContractChecks records checks, each replacing the one before of its
// contract, in one transaction.
func (db *DB) PutContractChecks(checks []ContractCheck) error {
	if len(checks) == 0 {
		return nil
	}
	return db.tx("recording contract checks", func(ctx context.Context, tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, db.q(`INSERT INTO contract_checks (system, contract_id, company_id, status, type, active, recurring, checked_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (system, contract_id) DO UPDATE SET company_id = excluded.company_id, status = excluded.status,
			type = excluded.type, active = excluded.active, recurring = excluded.recurring, checked_at = excluded.checked_at`))
		if err != nil {
			return db.wrap("recording contract checks", err)
		}
		defer stmt.Close()
		for _, c := range checks {
			if _, err := stmt.ExecContext(ctx, string(c.System), c.ContractID, c.CompanyID, c.Status, c.Type, c.Active, c.Recurring, db.tv(c.CheckedAt)); err != nil {
				return db.wrap("recording the check of contract "+c.ContractID, err)
			}
		}
		return nil
	})
}
