package state

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestTickets_intentIsUnique(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		r := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a1", Ref: "sc:a1", State: tickets.StateCreating,
			Created: time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)}
		if err := db.CreateTicketIntent(r); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateTicketIntent(r); !errors.Is(err, tickets.ErrRecordExists) {
			t.Fatalf("second CreateTicketIntent = %v, want ErrRecordExists", err)
		}
		intents, err := db.TicketIntents()
		if err != nil || len(intents) != 1 || intents[0].Ref != "sc:a1" {
			t.Fatalf("TicketIntents = %+v, %v", intents, err)
		}
		r.State, r.TicketID = tickets.StateOpen, "7000"
		if err := db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
		if intents, _ := db.TicketIntents(); len(intents) != 0 {
			t.Errorf("TicketIntents after settling = %+v, want none", intents)
		}
	})
}

// A record's MissingSince (schema version 9) is stored, read back and
// cleared.
func TestTickets_missingSince(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		missing := time.Date(2026, 11, 15, 10, 5, 0, 0, time.UTC)
		r := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a1", Ref: "sc:a1", TicketID: "7000", State: tickets.StateOpen,
			MissingSince: missing}
		if err := db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
		if got, err := db.TicketRecords("sophos", "c1"); err != nil || len(got) != 1 || !got[0].MissingSince.Equal(missing) {
			t.Fatalf("TicketRecords = %+v, %v; want missing since %s", got, err, missing)
		}
		r.MissingSince = time.Time{}
		if err := db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
		if got, err := db.TicketRecords("sophos", "c1"); err != nil || len(got) != 1 || !got[0].MissingSince.IsZero() {
			t.Errorf("TicketRecords after clearing = %+v, %v; want no missing since", got, err)
		}
	})
}

// DeleteTicketRecord removes a record only while it is closed as it was
// read: not one reopened (or closed again) meanwhile, nor an open one.
func TestTickets_deleteClosedRecord(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		closedAt := time.Date(2025, 9, 1, 10, 0, 0, 123456000, time.UTC)
		closed := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a1", Ref: "sc:a1", TicketID: "7000",
			State: tickets.StateClosed, ClosedBy: tickets.ClosedBySync, ClosedAt: closedAt}
		open := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a2", Ref: "sc:a2", TicketID: "7001", State: tickets.StateOpen}
		for _, r := range []tickets.Record{closed, open} {
			if err := db.PutTicketRecord(r); err != nil {
				t.Fatal(err)
			}
		}
		stale := closed
		stale.ClosedAt = closedAt.Add(-time.Hour)
		if err := db.DeleteTicketRecord(stale); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTicketRecord(open); err != nil {
			t.Fatal(err)
		}
		if records, err := db.TicketRecords("sophos", "c1"); err != nil || len(records) != 2 {
			t.Fatalf("records after deleting one closed at another time and an open one = %+v, %v; want both kept", records, err)
		}
		records, _ := db.TicketRecords("sophos", "c1")
		if err := db.DeleteTicketRecord(records[0]); err != nil {
			t.Fatal(err)
		}
		if records, err := db.TicketRecords("sophos", "c1"); err != nil || len(records) != 1 || records[0].AlertKey != "a2" {
			t.Errorf("records after deleting the closed one as read = %+v, %v; want only the open one", records, err)
		}
	})
}

// DeleteTicketRecord removes the record of a refused create only while it
// is failed as it was read: not one refused again, or sent again,
// meanwhile.
func TestTickets_deleteFailedRecord(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		refused := time.Date(2025, 9, 1, 10, 0, 0, 123456000, time.UTC)
		failed := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a1", Ref: "sc:a1", State: tickets.StateFailed,
			Error: "The queue is inactive.", Created: refused, Updated: refused}
		if err := db.PutTicketRecord(failed); err != nil {
			t.Fatal(err)
		}
		stale := failed
		stale.Updated = refused.Add(-time.Hour)
		if err := db.DeleteTicketRecord(stale); err != nil {
			t.Fatal(err)
		}
		sent := failed
		sent.State = tickets.StateCreating
		if err := db.DeleteTicketRecord(sent); err != nil {
			t.Fatal(err)
		}
		records, err := db.TicketRecords("sophos", "c1")
		if err != nil || len(records) != 1 {
			t.Fatalf("records after deleting one refused at another time and one being created = %+v, %v; want it kept", records, err)
		}
		if err := db.DeleteTicketRecord(records[0]); err != nil {
			t.Fatal(err)
		}
		if records, err := db.TicketRecords("sophos", "c1"); err != nil || len(records) != 0 {
			t.Errorf("records after deleting the refused one as read = %+v, %v; want none", records, err)
		}
	})
}

// ForgetTicketRecord removes a record only while it is as it was read:
// of the same PSA system and instance, in the same state, written at the
// same time (or never, for a record without one).
func TestTickets_forgetTicketRecord(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		written := time.Date(2025, 9, 1, 10, 0, 0, 123456000, time.UTC)
		open := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a1", Ref: "sc:a1", TicketID: "7000", State: tickets.StateOpen,
			System: "autotask", Instance: "ci:29683541@webservices5.autotask.net", Updated: written}
		undated := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a2", Ref: "sc:a2", State: tickets.StateCreating, System: "autotask"}
		for _, r := range []tickets.Record{open, undated} {
			if err := db.PutTicketRecord(r); err != nil {
				t.Fatal(err)
			}
		}
		for _, changed := range []func(r *tickets.Record){
			func(r *tickets.Record) { r.Updated = written.Add(time.Second) },
			func(r *tickets.Record) { r.State = tickets.StateClosing },
			func(r *tickets.Record) { r.System = "connectwise" },
			func(r *tickets.Record) { r.Instance = "" },
		} {
			stale := open
			changed(&stale)
			if err := db.ForgetTicketRecord(stale); err != nil {
				t.Fatal(err)
			}
		}
		if records, err := db.TicketRecords("sophos", "c1"); err != nil || len(records) != 2 {
			t.Fatalf("records after forgetting records read otherwise = %+v, %v; want both kept", records, err)
		}
		records, _ := db.TicketRecords("sophos", "c1")
		for _, r := range records {
			if err := db.ForgetTicketRecord(r); err != nil {
				t.Fatal(err)
			}
		}
		if records, err := db.TicketRecords("sophos", "c1"); err != nil || len(records) != 0 {
			t.Errorf("records after forgetting them as read = %+v, %v; want none", records, err)
		}
	})
}

// MoveTicketRecords records the ticket records of the instance (as
// tickets.OfPSA compares instances) as another's, and no others.
func TestTickets_moveTicketRecords(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		for i, p := range []struct{ system, instance string }{
			{"connectwise", "company:acme@na.myconnectwise.net"}, {"connectwise", "COMPANY:Acme@NA.myconnectwise.net"},
			{"connectwise", "company:acme@eu.myconnectwise.net"}, {"connectwise", ""}, {"autotask", "company:acme@na.myconnectwise.net"},
		} {
			r := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: fmt.Sprintf("a%d", i), State: tickets.StateOpen, System: p.system, Instance: p.instance}
			if err := db.PutTicketRecord(r); err != nil {
				t.Fatal(err)
			}
		}
		const to = "company:acme@acme.myconnectwise.net"
		n, err := db.MoveTicketRecords(psa.SystemConnectWise, "company:acme@na.myconnectwise.net", to)
		if err != nil || n != 2 {
			t.Fatalf("MoveTicketRecords = %d, %v; want 2", n, err)
		}
		records, err := db.TicketRecords("sophos", "c1")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range records {
			got = append(got, r.System+"|"+r.Instance)
		}
		want := []string{"connectwise|" + to, "connectwise|" + to, "connectwise|company:acme@eu.myconnectwise.net", "connectwise|",
			"autotask|company:acme@na.myconnectwise.net"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("records after the move (-want +got):\n%s", diff)
		}
	})
}

// CountFollowedTickets counts the records that tickets.Followed and
// tickets.OfPSA take, of the customer only, as reading them all would.
func TestTickets_countFollowedTickets(t *testing.T) {
	states := []string{tickets.StateCreating, tickets.StateOpen, tickets.StateClosing, tickets.StateNoting, tickets.StateReopening,
		tickets.StateClosed, tickets.StateFailed}
	psas := []struct{ system, instance string }{
		{"autotask", ""}, {"autotask", "ci:29683541@webservices5.autotask.net"}, {"autotask", "CI:29683541@WebServices5.Autotask.net"},
		{"autotask", "ci:111@webservices2.autotask.net"}, {"connectwise", ""},
	}
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		for _, customer := range []string{"c1", "c2"} {
			for i, s := range states {
				for j, p := range psas {
					r := tickets.Record{Source: "sophos", CustomerID: customer, AlertKey: fmt.Sprintf("a%d-%d", i, j), State: s,
						System: p.system, Instance: p.instance}
					if err := db.PutTicketRecord(r); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: "c2", AlertKey: "more", State: tickets.StateOpen,
			System: "autotask"}); err != nil {
			t.Fatal(err)
		}
		for _, customer := range []string{"c1", "c2"} {
			records, err := db.TicketRecords("sophos", customer)
			if err != nil {
				t.Fatal(err)
			}
			for _, at := range []struct {
				system   psa.System
				instance string
			}{
				{psa.SystemAutotask, "ci:29683541@webservices5.autotask.net"}, {psa.SystemAutotask, ""}, {psa.SystemConnectWise, "https://na.myconnectwise.net|acme"},
				{psa.SystemKaseyaBMS, ""},
			} {
				want := 0
				for _, r := range records {
					if tickets.Followed(r.State) && tickets.OfPSA(r, at.system, at.instance) {
						want++
					}
				}
				got, err := db.CountFollowedTickets("sophos", customer, at.system, at.instance)
				if err != nil || got != want {
					t.Errorf("CountFollowedTickets(%s, %s, %q) = %d, %v; want %d", customer, at.system, at.instance, got, err, want)
				}
			}
		}
	})
	for _, s := range states {
		if tickets.Followed(s) != slices.Contains(followedStates, s) {
			t.Errorf("state %q: tickets.Followed = %t, but followedStates disagrees", s, tickets.Followed(s))
		}
	}
}

// Two workers racing for one alert: exactly one may create its ticket.
func TestTickets_concurrentIntentsOneWins(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		const workers = 8
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			won  int
			errs []error
		)
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := db.CreateTicketIntent(tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a1",
					Ref: "sc:a1", State: tickets.StateCreating, Generation: i})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case !errors.Is(err, tickets.ErrRecordExists):
					errs = append(errs, err)
				}
			}()
		}
		wg.Wait()
		if won != 1 || len(errs) != 0 {
			t.Errorf("%d of %d workers got the intent (errors %v), want exactly 1", won, workers, errs)
		}
	})
}

func TestTickets_recordsPerCustomerSurviveReopen(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		closed := time.Date(2026, 11, 15, 11, 30, 0, 123456000, time.UTC)
		for _, r := range []tickets.Record{
			{Source: "sophos", CustomerID: "c1", AlertKey: "b", State: tickets.StateOpen, Covered: []string{"x"}},
			{Source: "sophos", CustomerID: "c1", AlertKey: "a", State: tickets.StateClosed, ClosedBy: tickets.ClosedBySync,
				Ref: "sc:a#2", Generation: 2, System: "autotask", Instance: "ci:29683541@webservices5.autotask.net", CompanyID: "29683",
				TicketID: "7001", Number: "T2026.0001",
				Severity: "high", Title: "Malware", RoutingHash: "h1", Created: t0, Updated: closed, ClosedAt: closed},
			{Source: "sophos", CustomerID: "c10", AlertKey: "a", State: tickets.StateOpen},
		} {
			if err := db.PutTicketRecord(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openConfig(t, cfg)
		t.Cleanup(func() { closeDB(t, db) })
		got, err := db.TicketRecords("sophos", "c1")
		if err != nil {
			t.Fatal(err)
		}
		want := []tickets.Record{
			{Source: "sophos", CustomerID: "c1", AlertKey: "a", State: tickets.StateClosed, ClosedBy: tickets.ClosedBySync,
				Ref: "sc:a#2", Generation: 2, System: "autotask", Instance: "ci:29683541@webservices5.autotask.net", CompanyID: "29683",
				TicketID: "7001", Number: "T2026.0001",
				Severity: "high", Title: "Malware", RoutingHash: "h1", Created: t0, Updated: closed, ClosedAt: closed},
			{Source: "sophos", CustomerID: "c1", AlertKey: "b", State: tickets.StateOpen, Covered: []string{"x"}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("TicketRecords(c1) (-want +got):\n%s", diff)
		}
		if _, err := db.TicketRecords("", "c1"); err == nil {
			t.Error("TicketRecords without a source succeeded")
		}
		if err := db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: "c\x001", AlertKey: "a"}); err == nil {
			t.Error("a key with a NUL byte was stored")
		}
		if err := db.PutTicketRecord(tickets.Record{Source: "sophos", CustomerID: "c1"}); err == nil {
			t.Error("a record without an alert key was stored")
		}
	})
}

// Schema version 5 adds the PSA instance of ticket records: a record of a
// version 4 database (without the tables of versions 6 and 7, nor the
// columns of versions 8 and 9, either) reads back without one, and keeps the rest.
func TestTickets_instanceMigration(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		// Back to version 4, as a database the previous psa-syncd wrote.
		for _, q := range []string{`ALTER TABLE tickets DROP COLUMN held_since`, `ALTER TABLE tickets DROP COLUMN moved_note`, `ALTER TABLE tickets DROP COLUMN reopen_activity`, `ALTER TABLE tickets DROP COLUMN note_alerts`, `DROP INDEX ledger_customer`, `ALTER TABLE tickets DROP COLUMN missing_since`, `ALTER TABLE runs DROP COLUMN note`, `DROP TABLE psa_instance`, `DROP TABLE remote_export`, `ALTER TABLE tickets DROP COLUMN instance`, `DELETE FROM schema_migrations WHERE version >= 5`,
			`INSERT INTO tickets (source, customer_id, alert_key, ref, generation, system, ticket_id, state)
				VALUES ('sophos', 'c1', 'a', 'sc:a', 1, 'autotask', '7001', 'open')`} {
			if _, err := db.sql.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if v, err := db.Version(); err != nil || v != 4 {
			t.Fatalf("Version = %d, %v; want 4 before the migration", v, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openConfig(t, cfg)
		t.Cleanup(func() { closeDB(t, db) })
		if v, err := db.Version(); err != nil || v != SchemaVersion {
			t.Errorf("Version = %d, %v; want %d", v, err, SchemaVersion)
		}
		got, err := db.TicketRecords("sophos", "c1")
		want := []tickets.Record{{Source: "sophos", CustomerID: "c1", AlertKey: "a", Ref: "sc:a", Generation: 1, System: "autotask",
			TicketID: "7001", State: tickets.StateOpen}}
		if diff := cmp.Diff(want, got); err != nil || diff != "" {
			t.Errorf("TicketRecords after the migration = %v (-want +got):\n%s", err, diff)
		}
		want[0].Instance = "ci:1@webservices5.autotask.net"
		if err := db.PutTicketRecord(want[0]); err != nil {
			t.Fatal(err)
		}
		if got, err := db.TicketRecords("sophos", "c1"); err != nil || len(got) != 1 || got[0].Instance != want[0].Instance {
			t.Errorf("TicketRecords after recording the instance = %+v, %v; want instance %q", got, err, want[0].Instance)
		}
	})
}

// A record's MovedNote and HeldSince (schema version 14) are stored, read
// back and cleared; HeldSince only while the record is creating, and the
// operator's answer clears it.
func TestTickets_movedNoteAndHeldSince(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		held := time.Date(2026, 11, 15, 10, 5, 7, 0, time.UTC)
		moved := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: tickets.SummaryKey + "@29683/1", Ref: "scs:x/1", TicketID: "7000",
			State: tickets.StateOpen, MovedNote: "scs:x/2"}
		create := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "a", Ref: "sc:a", State: tickets.StateCreating, Created: held,
			Updated: held, HeldSince: held}
		for _, r := range []tickets.Record{moved, create} {
			if err := db.PutTicketRecord(r); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.TicketRecords("sophos", "c1")
		if err != nil || len(got) != 2 || !got[0].HeldSince.Equal(held) || got[1].MovedNote != "scs:x/2" {
			t.Fatalf("TicketRecords = %+v, %v; want the create held since %s and the moved summary owing a note naming scs:x/2", got, err, held)
		}
		if open, err := db.TicketIntents(); err != nil || len(open) != 1 || !open[0].HeldSince.Equal(held) {
			t.Errorf("TicketIntents = %+v, %v; want the create held since %s", open, err, held)
		}
		moved.MovedNote = ""
		if err := db.PutTicketRecord(moved); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ReleaseTicketCreate("sc:a", "", held.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err = db.TicketRecords("sophos", "c1")
		if err != nil || len(got) != 2 || !got[0].HeldSince.IsZero() || got[1].MovedNote != "" {
			t.Errorf("TicketRecords after the note and the answer = %+v, %v; want neither", got, err)
		}
		// A record that is no longer creating keeps no HeldSince.
		create.State = tickets.StateOpen
		if err := db.PutTicketRecord(create); err != nil {
			t.Fatal(err)
		}
		if got, err := db.TicketRecords("sophos", "c1"); err != nil || !got[0].HeldSince.IsZero() {
			t.Errorf("TicketRecords of the create adopted = %+v, %v; want no HeldSince", got, err)
		}
	})
}

// A record's NoteAlerts and ReopenActivity (schema version 11) are stored,
// read back and cleared.
func TestTickets_noteAlertsAndReopenActivity(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		seen := time.Date(2026, 11, 15, 10, 5, 7, 0, time.UTC)
		r := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: tickets.SummaryKey, Ref: "scs:x/1", TicketID: "7000", State: tickets.StateOpen,
			Covered: []string{"a", "b", "c"}, NoteAlerts: []string{"b", "c"}, ReopenActivity: seen}
		if err := db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
		got, err := db.TicketRecords("sophos", "c1")
		if err != nil || len(got) != 1 || !slices.Equal(got[0].NoteAlerts, []string{"b", "c"}) || !got[0].ReopenActivity.Equal(seen) {
			t.Fatalf("TicketRecords = %+v, %v; want the note's alerts b, c and the activity %s", got, err, seen)
		}
		r.NoteAlerts, r.ReopenActivity = nil, time.Time{}
		if err := db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
		if got, err := db.TicketRecords("sophos", "c1"); err != nil || len(got) != 1 || got[0].NoteAlerts != nil || !got[0].ReopenActivity.IsZero() {
			t.Errorf("TicketRecords after clearing = %+v, %v; want neither", got, err)
		}
	})
}
