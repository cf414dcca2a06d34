package state

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// undoMigration takes a database of schema version v back to v-1, as a
// psa-syncd of that version left it. Each new migration needs its undo
// here, so that TestMigrations_fromEveryVersionKeepData covers it.
var undoMigration = map[int]string{
	2: `DROP TABLE contract_checks`,
	3: `DROP TABLE catalog_services`,
	4: `DROP INDEX ledger_effective`,
	5: `ALTER TABLE tickets DROP COLUMN instance`,
	6: `DROP TABLE remote_export`,
	7: `DROP TABLE psa_instance`,
}

// TestMigrations_fromEveryVersionKeepData: a database of every earlier
// schema version, holding statuses, runs, an open intent, the ledger, an
// export version, a snapshot and a ticket record, is migrated to
// SchemaVersion at open and reads back the same.
func TestMigrations_fromEveryVersionKeepData(t *testing.T) {
	if len(undoMigration) != SchemaVersion-1 {
		t.Fatalf("undoMigration undoes %d migrations, want %d: add the undo of the new migration", len(undoMigration), SchemaVersion-1)
	}
	type content struct {
		Customers []CustomerStatus
		Runs      []Run
		Open      []Intent
		Ledger    []LedgerEntry
		Export    ExportVersion
		Body      string
		Snapshot  map[string]int
		Tickets   []tickets.Record
	}
	read := func(t *testing.T, db *DB) content {
		t.Helper()
		var c content
		var err error
		var body []byte
		must := func(e error) {
			t.Helper()
			if e != nil {
				t.Fatal(e)
			}
		}
		c.Customers, err = db.CustomerStatuses()
		must(err)
		c.Runs, err = db.Runs(0)
		must(err)
		c.Open, err = db.OpenIntents()
		must(err)
		c.Ledger, err = db.Ledger(0)
		must(err)
		c.Export, body, err = db.CurrentExport()
		must(err)
		c.Body = string(body)
		_, err = db.Snapshot("unmapped_new", &c.Snapshot)
		must(err)
		c.Tickets, err = db.TicketRecords("sophos", "718b")
		must(err)
		return c
	}
	for version := 1; version < SchemaVersion; version++ {
		t.Run("version "+strconv.Itoa(version), func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, d testDriver) {
				cfg := d.config(t)
				db := openConfig(t, cfg)
				must := func(err error) {
					t.Helper()
					if err != nil {
						t.Fatal(err)
					}
				}
				must(db.PutCustomerStatus(CustomerStatus{Source: "sophos", CustomerID: "718b", Result: CustomerSucceeded, LastAttempt: t0, LastSuccess: t0, Updated: 1}))
				r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0})
				must(err)
				r.Finished, r.Result, r.Updated = t0.Add(time.Minute), RunSuccess, 1
				must(db.SaveRun(r))
				done, err := db.OpenIntent(testIntent())
				must(err)
				must(db.CompleteIntent(done.ID, IntentDone, "adjustment posted", t0.Add(time.Minute)))
				open := testIntent()
				open.ServiceID = "30000013"
				_, err = db.OpenIntent(open)
				must(err)
				must(db.PutExport(ExportVersion{Revision: 1, Digest: "d1", Size: 2, At: t0, Source: "provider"}, []byte("{}")))
				must(db.PutSnapshot("unmapped_new", map[string]int{"customer": 2}))
				must(db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: "718b", AlertKey: "a1", Ref: "sc:a1", Generation: 1,
					System: "autotask", TicketID: "7001", State: tickets.StateOpen, Created: t0}))
				want := read(t, db)

				// Back to the given version, as its psa-syncd left it.
				for v := SchemaVersion; v > version; v-- {
					if _, err := db.sql.Exec(undoMigration[v]); err != nil {
						t.Fatalf("undoing migration %d: %v", v, err)
					}
				}
				if _, err := db.sql.Exec(db.q(`DELETE FROM schema_migrations WHERE version > ?`), version); err != nil {
					t.Fatal(err)
				}
				if v, err := db.Version(); err != nil || v != version {
					t.Fatalf("Version = %d, %v; want %d before the migration", v, err, version)
				}
				closeDB(t, db)

				db = openConfig(t, cfg)
				t.Cleanup(func() { closeDB(t, db) })
				if v, err := db.Version(); err != nil || v != SchemaVersion {
					t.Errorf("Version after the migration = %d, %v; want %d", v, err, SchemaVersion)
				}
				if diff := cmp.Diff(want, read(t, db)); diff != "" {
					t.Errorf("the state after migrating from schema version %d (-before +after):\n%s", version, diff)
				}
				// The tables of the later versions are there and work.
				must(db.PutContractChecks([]ContractCheck{{System: "autotask", ContractID: "29684183", Active: true, CheckedAt: t0}}))
				must(db.PutRemoteExport(RemoteExport{Store: "s", Version: "v", At: t0, Body: []byte("{}")}))
			})
		})
	}
}
