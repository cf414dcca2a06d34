package state

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestLedger_orphanCandidates: LedgerContracts names every contract of the
// ledger once, whatever the system, source or quantity; LedgerLinesOutside
// the lines of services other than those given, once each (all of them
// when none is given, and as many services as a pass names, past the
// database's limit of bind parameters); and both read the ledger's line
// index alone.
func TestLedger_orphanCandidates(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		for i, s := range []struct {
			source, customer, contract, service string
			system                              psa.System
			after                               int64
		}{
			{"sophos", "718b", "800", "700", psa.SystemAutotask, 40},
			{"sophos", "718b", "800", "700", psa.SystemAutotask, 44},
			{"sophos", "718b", "800", "701", psa.SystemAutotask, 0},
			{"huntress", "h-9", "801", "702", psa.SystemAutotask, 9},
			{"sophos", "c4", "802", "700", psa.SystemConnectWise, 6},
			{"sophos", "c4", "803", "700", psa.SystemConnectWise, 0},
		} {
			req := testIntent()
			req.Source, req.System, req.CustomerID, req.ContractID, req.ServiceID, req.After = s.source, s.system, s.customer, s.contract, s.service, s.after
			in, err := db.OpenIntent(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CompleteIntent(in.ID, IntentDone, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		cs, err := db.LedgerContracts()
		slices.Sort(cs)
		if err != nil || !slices.Equal(cs, []string{"800", "801", "802", "803"}) {
			t.Errorf("LedgerContracts = %v, %v; want 800 to 803", cs, err)
		}
		custs, err := db.LedgerCustomers()
		slices.Sort(custs)
		if err != nil || !slices.Equal(custs, []string{"718b", "c4", "h-9"}) {
			t.Errorf("LedgerCustomers = %v, %v; want 718b, c4, h-9", custs, err)
		}
		cs, err = db.LedgerContractsOf([]string{"c4", "h-9", "gone"})
		slices.Sort(cs)
		if err != nil || !slices.Equal(cs, []string{"801", "802", "803"}) {
			t.Errorf("LedgerContractsOf(c4, h-9, gone) = %v, %v; want 801, 802, 803", cs, err)
		}
		if cs, err := db.LedgerContractsOf(nil); err != nil || len(cs) != 0 {
			t.Errorf("LedgerContractsOf() = %v, %v; want none", cs, err)
		}
		spell := func(ks []psa.LineKey) string {
			var out []string
			for _, k := range ks {
				out = append(out, k.ContractID+"/"+k.ServiceID)
			}
			slices.Sort(out)
			return fmt.Sprint(out)
		}
		ks, err := db.LedgerLinesOutside([]string{"700"})
		if got := spell(ks); err != nil || got != "[800/701 801/702]" {
			t.Errorf("LedgerLinesOutside(700) = %s, %v; want 800/701 and 801/702", got, err)
		}
		ks, err = db.LedgerLinesOutside(nil)
		if got := spell(ks); err != nil || got != "[800/700 800/701 801/702 802/700 803/700]" {
			t.Errorf("LedgerLinesOutside() = %s, %v; want every line once", got, err)
		}
		// Past any database's limit of bind parameters (SQLite: 32,766;
		// PostgreSQL: 65,535): the read still leaves the services out.
		many := []string{"700"}
		for i := range 70000 {
			many = append(many, fmt.Sprint("s", i))
		}
		ks, err = db.LedgerLinesOutside(many)
		if got := spell(ks); err != nil || got != "[800/701 801/702]" {
			t.Errorf("LedgerLinesOutside(700 and 70,000 others) = %s, %v; want 800/701 and 801/702", got, err)
		}
		if db.dialect == dialectSQLite {
			for _, q := range []string{`SELECT DISTINCT contract_id FROM ledger`, `SELECT DISTINCT contract_id, service_id FROM ledger WHERE service_id NOT IN ('700')`} {
				plan := explainPlan(t, db, q)
				if !slices.ContainsFunc(plan, func(s string) bool { return s == "SCAN ledger USING COVERING INDEX ledger_line" }) {
					t.Errorf("query plan of %q = %q, want a scan of the covering index ledger_line", q, plan)
				}
			}
			if plan := explainPlan(t, db, `SELECT DISTINCT customer_id FROM ledger`); !slices.Contains(plan, "SCAN ledger USING COVERING INDEX ledger_customer") {
				t.Errorf("query plan of LedgerCustomers = %q, want a scan of the covering index ledger_customer", plan)
			}
			if plan := explainPlan(t, db, `SELECT DISTINCT contract_id FROM ledger WHERE customer_id IN ('c4', 'h-9')`); !slices.ContainsFunc(plan, func(s string) bool { return strings.HasPrefix(s, "SEARCH ledger USING INDEX ledger_customer") }) {
				t.Errorf("query plan of LedgerContractsOf = %q, want a search of the index ledger_customer", plan)
			}
		}
	})
}

// explainPlan returns the details of SQLite's query plan of q.
func explainPlan(t *testing.T, db *DB, q string) []string {
	t.Helper()
	rows, err := db.sql.Query(`EXPLAIN QUERY PLAN ` + q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
