package usage

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// BenchmarkFindOrphans measures the ledger reads a pass makes for its
// orphaned lines (Engine.findOrphans) over a ledger of 20,000 lines (2,000
// customers × 10 services) with a year of monthly changes each (240,000
// entries), on SQLite: with every customer mapped to the contract its lines
// are on (nothing orphaned), and with every customer mapped to another
// contract (a year's renewals: 2,000 old contracts that no mapping names),
// and so with 20 customers' mappings removed (200 orphaned lines).
// Run it with
//
//	go test -run '^$' -bench 'BenchmarkFindOrphans' -benchtime 5x ./daemon/usage/
func BenchmarkFindOrphans(b *testing.B) {
	const customers, services, months = 2000, 10, 12
	dir := b.TempDir()
	db, err := state.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	raw, err := sql.Open("sqlite", filepath.Join(dir, state.FileName))
	if err != nil {
		b.Fatal(err)
	}
	tx, err := raw.Begin()
	if err != nil {
		b.Fatal(err)
	}
	ins, err := tx.Prepare(`INSERT INTO ledger (run_id, system, source, customer_id, contract_id, service_id, qty_before, qty_after, effective_date, at, intent_id)
		VALUES (?, ?, 'file', ?, ?, ?, ?, ?, ?, ?, 0)`)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2025, time.December, 1, 0, 0, 0, 0, time.UTC)
	for m := range months {
		eff := start.AddDate(0, m, 0).Format("2006-01-02T15:04:05.000000000Z")
		for c := range customers {
			for s := range services {
				if _, err := ins.Exec(m+1, string(psa.SystemAutotask), fmt.Sprint("cust-", c), fmt.Sprint(10000+c), fmt.Sprint(500+s), m+c+s, m+c+s+1, eff, eff); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		b.Fatal(err)
	}
	db, err = state.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })

	h := newSysHarness(b, psa.SystemAutotask)
	products := map[string]export.ProductMapping{}
	doc := export.New(psa.SystemAutotask, "sim")
	for s := range services {
		pm := export.ProductMapping{Source: "file", Product: fmt.Sprint("P", s), ServiceID: fmt.Sprint(500 + s), SyncEnabled: true}
		doc.PutProduct(pm)
		products[pm.Product] = pm
	}
	eff := time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		contract func(c int) string
		// removed customers have no mapping: their lines are orphaned.
		removed int
	}{
		{"mapped", func(c int) string { return fmt.Sprint(10000 + c) }, 0},
		{"renewed", func(c int) string { return fmt.Sprint(20000 + c) }, 0},
		{"renewed-20-removed", func(c int) string { return fmt.Sprint(20000 + c) }, 20},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := doc.Clone()
			for c := tc.removed; c < customers; c++ {
				d.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: fmt.Sprint("cust-", c), ContractID: tc.contract(c), UsageSync: true})
			}
			e := NewEngine(EngineOptions{Backend: h.be, State: db, Policies: h.pol, Location: time.UTC, Now: func() time.Time { return etNow }})
			for b.Loop() {
				if o := e.findOrphans(b.Context(), d, "file", products, eff, "", true); o.unread || len(o.lines) != tc.removed*services {
					b.Fatalf("findOrphans = %d lines, unread %v; want %d", len(o.lines), o.unread, tc.removed*services)
				}
			}
		})
	}
}
