package state

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// CatalogService is what the writes of a usage pass copy of a catalog
// service of a system (see psa.ServicePreloader), as read at ReadAt. The
// backend that read it decides how long it stays fresh.
type CatalogService struct {
	System      psa.System `json:"system"`
	ServiceID   string     `json:"service_id"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	UnitPrice   float64    `json:"unit_price"`
	UnitCost    float64    `json:"unit_cost"`
	ReadAt      time.Time  `json:"read_at"`
}

// CatalogServices returns the recorded services of a system among
// serviceIDs, by service id; services never recorded are absent.
func (db *DB) CatalogServices(system psa.System, serviceIDs []string) (map[string]CatalogService, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	out := make(map[string]CatalogService, len(serviceIDs))
	err := db.eachIn(ctx, `SELECT system, service_id, name, description, unit_price, unit_cost, read_at
		FROM catalog_services WHERE system = ? AND service_id`, string(system), serviceIDs, func(rows *sql.Rows) error {
		var s CatalogService
		if err := rows.Scan(&s.System, &s.ServiceID, &s.Name, &s.Description, &s.UnitPrice, &s.UnitCost, timeDest{&s.ReadAt}); err != nil {
			return err
		}
		out[s.ServiceID] = s
		return nil
	})
	if err != nil {
		return nil, db.wrap("reading catalog services", err)
	}
	return out, nil
}

// eachIn runs query, whose last condition is completed with " IN (...)"
// of ids, with arg before the ids, for contractCheckChunk ids at a time,
// and calls scan for each row.
func (db *DB) eachIn(ctx context.Context, query string, arg any, ids []string, scan func(*sql.Rows) error) error {
	return db.eachInArgs(ctx, query, []any{arg}, ids, scan)
}

// eachInArgs is eachIn with the arguments lead before the ids.
func (db *DB) eachInArgs(ctx context.Context, query string, lead []any, ids []string, scan func(*sql.Rows) error) error {
	for chunk := range slices.Chunk(ids, contractCheckChunk) {
		args := make([]any, 0, len(chunk)+len(lead))
		args = append(args, lead...)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := db.sql.QueryContext(ctx, db.q(query+` IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				_ = rows.Close()
				return err
			}
		}
		if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
			return err
		}
	}
	return nil
}

// PutCatalogServices records services, each replacing the one before of
// its service, in one transaction.
func (db *DB) PutCatalogServices(services []CatalogService) error {
	if len(services) == 0 {
		return nil
	}
	return db.tx("recording catalog services", func(ctx context.Context, tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, db.q(`INSERT INTO catalog_services (system, service_id, name, description, unit_price, unit_cost, read_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (system, service_id) DO UPDATE SET name = excluded.name, description = excluded.description,
			unit_price = excluded.unit_price, unit_cost = excluded.unit_cost, read_at = excluded.read_at`))
		if err != nil {
			return db.wrap("recording catalog services", err)
		}
		defer stmt.Close()
		for _, s := range services {
			if _, err := stmt.ExecContext(ctx, string(s.System), s.ServiceID, s.Name, s.Description, s.UnitPrice, s.UnitCost, db.tv(s.ReadAt)); err != nil {
				return db.wrap("recording catalog service "+s.ServiceID, err)
			}
		}
		return nil
	})
}
