package state

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// undoMigration takes a database of schema version v back to v-1, as a
// psa-syncd of that version left it. Each new migration needs its undo
// here, so that TestMigrations_fromEveryVersionKeepData covers it.
var undoMigration = map[int]string{
	2:  `DROP TABLE contract_checks`,
	3:  `DROP TABLE catalog_services`,
	4:  `DROP INDEX ledger_effective`,
	5:  `ALTER TABLE tickets DROP COLUMN instance`,
	6:  `DROP TABLE remote_export`,
	7:  `DROP TABLE psa_instance`,
	8:  `ALTER TABLE runs DROP COLUMN note`,
	9:  `ALTER TABLE tickets DROP COLUMN missing_since`,
	10: `DROP INDEX ledger_customer`,
	11: `ALTER TABLE tickets DROP COLUMN reopen_activity; ALTER TABLE tickets DROP COLUMN note_alerts`,
	// 12 and 13 rewrote stored texts and changed no table.
	12: `SELECT 1`,
	13: `SELECT 1`,
	14: `ALTER TABLE tickets DROP COLUMN held_since; ALTER TABLE tickets DROP COLUMN moved_note`,
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
		c.Customers, err = db.CustomerStatuses()
		mustSucceed(t, err)
		c.Runs, err = db.Runs(0)
		mustSucceed(t, err)
		c.Open, err = db.OpenIntents()
		mustSucceed(t, err)
		c.Ledger, err = db.Ledger(0)
		mustSucceed(t, err)
		c.Export, body, err = db.CurrentExport()
		mustSucceed(t, err)
		c.Body = string(body)
		_, err = db.Snapshot("unmapped_new", &c.Snapshot)
		mustSucceed(t, err)
		c.Tickets, err = db.TicketRecords("sophos", "718b")
		mustSucceed(t, err)
		return c
	}
	for version := 1; version < SchemaVersion; version++ {
		t.Run("version "+strconv.Itoa(version), func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, d testDriver) {
				cfg := d.config(t)
				db := openConfig(t, cfg)
				mustSucceed(t, db.PutCustomerStatus(CustomerStatus{Source: "sophos", CustomerID: "718b", Result: CustomerSucceeded, LastAttempt: t0, LastSuccess: t0, Updated: 1}))
				r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0})
				mustSucceed(t, err)
				r.Finished, r.Result, r.Updated = t0.Add(time.Minute), RunSuccess, 1
				mustSucceed(t, db.SaveRun(r))
				done, err := db.OpenIntent(testIntent())
				mustSucceed(t, err)
				mustSucceed(t, db.CompleteIntent(done.ID, IntentDone, "adjustment posted", t0.Add(time.Minute)))
				open := testIntent()
				open.ServiceID = "30000013"
				_, err = db.OpenIntent(open)
				mustSucceed(t, err)
				mustSucceed(t, db.PutExport(ExportVersion{Revision: 1, Digest: "d1", Size: 2, At: t0, Source: "provider"}, []byte("{}")))
				mustSucceed(t, db.PutSnapshot("unmapped_new", map[string]int{"customer": 2}))
				mustSucceed(t, db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: "718b", AlertKey: "a1", Ref: "sc:a1", Generation: 1,
					System: "autotask", TicketID: "7001", State: tickets.StateOpen, Created: t0}))
				want := read(t, db)

				// Back to the given version, as its psa-syncd left it.
				backTo(t, db, version)
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
				mustSucceed(t, db.PutContractChecks([]ContractCheck{{System: "autotask", ContractID: "29684183", Active: true, CheckedAt: t0}}))
				mustSucceed(t, db.PutRemoteExport(RemoteExport{Store: "s", Version: "v", At: t0, Body: []byte("{}")}))
			})
		})
	}
}

// TestMigrations_fromEveryVersionKeepEveryRow: a database of every earlier
// schema version with rows in each of its tables, meta values included
// (the failing contracts, the allowed empty start), keeps every row of
// every table, column for column, when it is migrated. (The leader row is
// each start's own.)
func TestMigrations_fromEveryVersionKeepEveryRow(t *testing.T) {
	for version := 1; version < SchemaVersion; version++ {
		t.Run("version "+strconv.Itoa(version), func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, d testDriver) {
				cfg := d.config(t)
				db := openConfig(t, cfg)
				now := time.Now().UTC()
				// A call is committed with the next commit on SQLite.
				_, _, err := db.APICalls().Take("/api/v2/finance/contracts", now, time.Hour, 1500)
				mustSucceed(t, err)
				mustSucceed(t, db.PutCustomerStatus(CustomerStatus{Source: "sophos", CustomerID: "718b", Result: CustomerSucceeded, LastAttempt: t0, LastSuccess: t0, Updated: 1}))
				r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0})
				mustSucceed(t, err)
				r.Finished, r.Result = t0.Add(time.Minute), RunSuccess
				mustSucceed(t, db.SaveRun(r))
				done, err := db.OpenIntent(testIntent())
				mustSucceed(t, err)
				mustSucceed(t, db.CompleteIntent(done.ID, IntentDone, "adjustment posted", t0.Add(time.Minute)))
				open := testIntent()
				open.ServiceID = "30000013"
				_, err = db.OpenIntent(open)
				mustSucceed(t, err)
				mustSucceed(t, db.PutExport(ExportVersion{Revision: 1, Digest: "d1", Size: 2, At: t0, Source: "provider"}, []byte("{}")))
				mustSucceed(t, db.PutSnapshot("unmapped_new", map[string]int{"customer": 2}))
				// A last plan whose texts name no state database: kept byte
				// for byte, its compressed columns included.
				mustSucceed(t, db.PutSnapshot("last_plan", map[string]any{"customer": "",
					"plan_columns": gzipped(t, planColumns(t, "adjustment posted", "state: reading the ledger in the state database: failed to connect", ""))}))
				mustSucceed(t, db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: "718b", AlertKey: "a1", Ref: "sc:a1", Generation: 1,
					System: "autotask", TicketID: "7001", State: tickets.StateOpen, Created: t0}))
				mustSucceed(t, db.PutFailingContracts("autotask", map[string]bool{"29684183": true}))
				mustSucceed(t, db.AllowEmptyStart(t0))
				mustSucceed(t, db.APICalls().Block("/api/v2/servicedesk/tickets", now.Add(time.Hour)))
				mustSucceed(t, db.PutContractChecks([]ContractCheck{{System: "autotask", ContractID: "29684183", Active: true, CheckedAt: now}}))
				mustSucceed(t, db.PutCatalogServices([]CatalogService{{System: "autotask", ServiceID: "30000012", Name: "MDR", ReadAt: now}}))
				mustSucceed(t, db.PutRemoteExport(RemoteExport{Store: "s", Version: "v", At: t0, Body: []byte("{}")}))
				_, err = db.BindInstance(PSAInstance{System: "autotask", Instance: "webservices5.autotask.net", BoundAt: t0})
				mustSucceed(t, err)

				backTo(t, db, version)
				want, cols := dumpTables(t, db, nil)
				// Each start records itself as the leader.
				delete(want, "leader")
				delete(cols, "leader")
				if len(want["ledger"]) != 1 || len(want["tickets"]) != 1 {
					t.Fatalf("the tables read before the migration = %v; want the ledger's and the tickets' rows among them", want)
				}
				for n, rows := range want {
					if len(rows) == 0 {
						t.Errorf("table %s of schema version %d holds no row to keep: add one above", n, version)
					}
				}
				closeDB(t, db)

				db = openConfig(t, cfg)
				t.Cleanup(func() { closeDB(t, db) })
				got, _ := dumpTables(t, db, cols)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("the rows after migrating from schema version %d (-before +after):\n%s", version, diff)
				}
			})
		})
	}
}

// mustSucceed fails the test at once on err.
func mustSucceed(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dumpTables returns the rows of every table but schema_migrations, each
// row as its columns' values in text, sorted, and the columns of each
// table; with only, just its tables and, of each, its columns (a migration
// may add some).
func dumpTables(t *testing.T, db *DB, only map[string][]string) (tables, columns map[string][]string) {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if db.dialect == dialectPostgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	var names []string
	rows, err := db.sql.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if _, ok := only[n]; n != "schema_migrations" && (only == nil || ok) {
			names = append(names, n)
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	tables, columns = map[string][]string{}, map[string][]string{}
	for _, n := range names {
		rows, err := db.sql.Query(`SELECT * FROM ` + n)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		tables[n] = []string{}
		for _, c := range cols {
			if only == nil || slices.Contains(only[n], c) {
				columns[n] = append(columns[n], c)
			}
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if !slices.Contains(columns[n], cols[i]) {
					continue
				}
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%s=%v ", cols[i], v)
			}
			tables[n] = append(tables[n], b.String())
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(tables[n])
	}
	return tables, columns
}

// pgConnect is pgx's error for a failed connection as an older psa-syncd
// stored it: the user, database and hosts it tried.
const pgConnect = "failed to connect to `user=psa_billing database=psa`:\n\t10.0.0.5:5432 (db.internal): dial error: timeout\n\t10.0.0.6:5432 (db.internal): server error: FATAL: password authentication failed for user \"psa_billing\" (SQLSTATE 28P01)"

// TestMigrations_rewriteRecordedTexts: a database of schema version 11
// whose run, customer status, intent and ticket record hold errors as an
// older psa-syncd recorded them, naming the state database (its path, a
// PostgreSQL database's name, host and port, pgx's user and database of a
// failed connection and the hosts it tried), holds none of those names
// once migrated: they say "the state database" and "failed to connect"
// instead, and the rest of each text is kept (texts that name nothing
// are kept whole: TestMigrations_fromEveryVersionKeepEveryRow).
func TestMigrations_rewriteRecordedTexts(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		where := db.Path()
		texts := map[string]string{
			"runs":      "daemon: recording customer statuses: state: storing the statuses of 2 customers in " + where + ": database or disk is full",
			"customers": `state: reading the ledger in PostgreSQL database "psa_old" on db-old.internal:5433: ` + pgConnect,
			"intents":   "not sent: state: recording an intent in " + where + ": " + pgConnect,
			"tickets":   "tickets: state: recording the ticket of alert a1 in " + where + ": database is locked",
		}
		want := map[string]string{
			"runs":      "daemon: recording customer statuses: state: storing the statuses of 2 customers in the state database: database or disk is full",
			"customers": "state: reading the ledger in the state database: failed to connect",
			"intents":   "not sent: state: recording an intent in the state database: failed to connect",
			"tickets":   "tickets: state: recording the ticket of alert a1 in the state database: database is locked",
		}
		mustSucceed(t, db.PutCustomerStatus(CustomerStatus{Source: "sophos", CustomerID: "718b", Result: CustomerFailed, LastAttempt: t0, Error: texts["customers"]}))
		r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0})
		mustSucceed(t, err)
		r.Finished, r.Result, r.Error = t0.Add(time.Minute), RunFailure, texts["runs"]
		mustSucceed(t, db.SaveRun(r))
		in, err := db.OpenIntent(testIntent())
		mustSucceed(t, err)
		mustSucceed(t, db.CompleteIntent(in.ID, IntentFailed, texts["intents"], t0.Add(time.Minute)))
		mustSucceed(t, db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: "718b", AlertKey: "a1", Ref: "sc:a1", Generation: 1,
			System: "autotask", State: tickets.StateFailed, Error: texts["tickets"], Created: t0}))
		backTo(t, db, 11)
		closeDB(t, db)

		db = openConfig(t, cfg)
		t.Cleanup(func() { closeDB(t, db) })
		got := map[string]string{}
		for table, column := range map[string]string{"runs": "error", "customers": "error", "intents": "note", "tickets": "error"} {
			var text string
			mustSucceed(t, db.sql.QueryRow(`SELECT `+column+` FROM `+table).Scan(&text))
			got[table] = text
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("the stored errors after migrating from schema version 11 (-want +got):\n%s", diff)
		}
	})
}

// backTo takes db back to schema version, as its psa-syncd left it
// (undoMigration).
func backTo(t *testing.T, db *DB, version int) {
	t.Helper()
	for v := SchemaVersion; v > version; v-- {
		if _, err := db.sql.Exec(undoMigration[v]); err != nil {
			t.Fatalf("undoing migration %d: %v", v, err)
		}
	}
	if _, err := db.sql.Exec(db.q(`DELETE FROM schema_migrations WHERE version > ?`), version); err != nil {
		t.Fatal(err)
	}
}

// TestMigrations_rewriteSnapshotTexts: a database of schema version 12
// (migrated by a psa-syncd whose migration 12 rewrote only the recorded
// errors) whose snapshots hold texts as an older psa-syncd stored them,
// naming the state database (the last plan's line reason, failure and
// writes_held in its compressed columns, and another snapshot's error),
// holds none of those names once migrated to 13: they say "the state
// database" and "failed to connect" instead, and the rest is kept. Running
// the migration again changes no snapshot.
func TestMigrations_rewriteSnapshotTexts(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		where := db.Path()
		const held = "daemon: writes are held: the state database is a backup taken at 2026-11-01T02:00:00Z"
		reason := "not sent: state: recording an intent in " + where + ": " + pgConnect
		failure := `state: reading the ledger in PostgreSQL database "psa_old" on db-old.internal:5433: ` + pgConnect
		ticket := "tickets: state: recording the ticket of alert a1 in " + where + ": database is locked"
		mustSucceed(t, db.PutSnapshot("last_plan", map[string]any{"customer": "",
			"plan_columns": gzipped(t, planColumns(t, reason, failure, strings.Replace(held, "the state database", where, 1)))}))
		mustSucceed(t, db.PutSnapshot("ticket_status", map[string]string{"error": ticket}))
		backTo(t, db, 12)
		closeDB(t, db)

		want := map[string]string{
			"plan": planColumns(t, "not sent: state: recording an intent in the state database: failed to connect",
				"state: reading the ledger in the state database: failed to connect", held),
			"ticket_status": "tickets: state: recording the ticket of alert a1 in the state database: database is locked",
		}
		db = openConfig(t, cfg)
		if diff := cmp.Diff(want, storedSnapshotTexts(t, db)); diff != "" {
			t.Errorf("the snapshots after migrating from schema version 12 (-want +got):\n%s", diff)
		}
		migrated, _ := dumpTables(t, db, map[string][]string{"snapshots": {"name", "value"}})

		// Migration 13 once more, on the snapshots it rewrote.
		backTo(t, db, 12)
		closeDB(t, db)
		db = openConfig(t, cfg)
		t.Cleanup(func() { closeDB(t, db) })
		again, _ := dumpTables(t, db, map[string][]string{"snapshots": {"name", "value"}})
		if diff := cmp.Diff(migrated, again); diff != "" {
			t.Errorf("the snapshots after migration 13 ran again (-before +after):\n%s", diff)
		}
	})
}

// TestMigrations_rewriteMovedPaths: a database a build of schema version
// 13 migrated, moved to another state directory before, kept the old path
// of its SQLite file in its recorded errors and snapshots (that build's
// PublicRecordedText replaced only the path it was opened at). Migration
// 14 rewrites them with today's PublicRecordedText, which replaces any
// path of a psa-syncd.db.
func TestMigrations_rewriteMovedPaths(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		const moved = "/var/lib/psa-syncd-old/psa-syncd.db"
		ticket := "tickets: state: recording the ticket of alert a1 in " + moved + ": database is locked"
		mustSucceed(t, db.PutSnapshot("last_plan", map[string]any{"customer": "",
			"plan_columns": gzipped(t, planColumns(t, "not sent: state: recording an intent in "+moved+": database is locked", "", ""))}))
		mustSucceed(t, db.PutSnapshot("ticket_status", map[string]string{"error": ticket}))
		r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0})
		mustSucceed(t, err)
		r.Finished, r.Result, r.Error = t0.Add(time.Minute), RunFailure, "state: recording the run in "+moved+": database is locked"
		mustSucceed(t, db.SaveRun(r))
		backTo(t, db, 13)
		closeDB(t, db)

		db = openConfig(t, cfg)
		t.Cleanup(func() { closeDB(t, db) })
		got := storedSnapshotTexts(t, db)
		var runError string
		mustSucceed(t, db.sql.QueryRow(`SELECT error FROM runs`).Scan(&runError))
		got["runs"] = runError
		want := map[string]string{
			"plan":          planColumns(t, "not sent: state: recording an intent in the state database: database is locked", "", ""),
			"ticket_status": "tickets: state: recording the ticket of alert a1 in the state database: database is locked",
			"runs":          "state: recording the run in the state database: database is locked",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("the texts naming a moved state database after migrating from schema version 13 (-want +got):\n%s", diff)
		}
	})
}

// storedSnapshotTexts returns the JSON of the last plan's decompressed
// columns, as "plan", and the error of the ticket_status snapshot.
func storedSnapshotTexts(t *testing.T, db *DB) map[string]string {
	t.Helper()
	var stored struct {
		PlanColumns []byte `json:"plan_columns"`
	}
	if ok, err := db.Snapshot("last_plan", &stored); err != nil || !ok {
		t.Fatalf("Snapshot(last_plan) = %v, %v", ok, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(stored.PlanColumns))
	mustSucceed(t, err)
	plan, err := io.ReadAll(zr)
	mustSucceed(t, err)
	var status map[string]string
	if ok, err := db.Snapshot("ticket_status", &status); err != nil || !ok {
		t.Fatalf("Snapshot(ticket_status) = %v, %v", ok, err)
	}
	return map[string]string{"plan": string(plan), "ticket_status": status["error"]}
}

// planColumns returns the JSON of a plan in columns (usage.planColumns)
// with one change whose reason is reason, one failure with text failure,
// and writes_held held.
func planColumns(t *testing.T, reason, failure, held string) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{
		"plan":    map[string]any{"failures": []map[string]string{{"customer_id": "718b", "error": failure}}, "writes_held": held},
		"changes": map[string]any{"action": []string{"failed"}, "reason": []string{reason}},
	})
	mustSucceed(t, err)
	return string(data)
}

// gzipped returns data compressed with gzip, as the daemon stores the last
// plan's columns (storedPlanJSON).
func gzipped(t *testing.T, data string) []byte {
	t.Helper()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, err := zw.Write([]byte(data))
	mustSucceed(t, errors.Join(err, zw.Close()))
	return z.Bytes()
}
