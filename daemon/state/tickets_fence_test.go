package state

import (
	"errors"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// TestTickets_writesFencedByLeadership: on a shared PostgreSQL database,
// ticket record writes are fenced as intents are. An instance that does
// not lead, or whose lock session ended (as a broken connection or
// pg_terminate_backend ends it, while its other connections still work),
// can record no create intent and update no record, even before its watch
// noticed the loss; the error matches both ErrNotLeader and
// tickets.ErrNotLeader, and nothing is stored. The instance that takes
// over writes as usual.
func TestTickets_writesFencedByLeadership(t *testing.T) {
	t.Parallel()
	a, b := openSharedPostgres(t)
	rec := func(key string) tickets.Record {
		return tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: key, Ref: "sc:" + key, Generation: 1,
			State: tickets.StateCreating, Created: t0, Updated: t0}
	}
	refused := func(when string, db *DB, key string, wantNotLeader bool) {
		t.Helper()
		r := rec(key)
		err := db.CreateTicketIntent(r)
		if err == nil || !errors.Is(err, tickets.ErrNotLeader) || (wantNotLeader && !errors.Is(err, ErrNotLeader)) {
			t.Errorf("CreateTicketIntent %s = %v, want an error matching tickets.ErrNotLeader (and ErrNotLeader: %t)", when, err, wantNotLeader)
		}
		r.State, r.Error = tickets.StateFailed, "the create was not applied; it is sent again"
		err = db.PutTicketRecord(r)
		if err == nil || !errors.Is(err, tickets.ErrNotLeader) || (wantNotLeader && !errors.Is(err, ErrNotLeader)) {
			t.Errorf("PutTicketRecord %s = %v, want an error matching tickets.ErrNotLeader (and ErrNotLeader: %t)", when, err, wantNotLeader)
		}
	}

	refused("before any instance leads", a, "a0", true)
	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, time.Hour)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v", la, err)
	}
	refused("by the standby", b, "b0", true)
	if err := a.CreateTicketIntent(rec("a1")); err != nil {
		t.Fatalf("a.CreateTicketIntent while leading = %v", err)
	}
	if err := a.CreateTicketIntent(rec("a1")); !errors.Is(err, tickets.ErrRecordExists) {
		t.Fatalf("second a.CreateTicketIntent = %v, want ErrRecordExists", err)
	}

	// a's lock session ends while its pool still works. Its watch checks
	// once an hour, so a does not know yet: its writes go through the
	// lock's broken connection and fail.
	if _, err := b.sql.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, leaderLockKey&0xffffffff); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, held, err := b.Leader(); err != nil || !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's lock was not freed within 10s of its session ending")
		}
		time.Sleep(20 * time.Millisecond)
	}
	refused("after the lock's session ended, before the loss is noticed", a, "a2", false)
	if _, err := a.OpenIntent(testIntent()); err == nil {
		t.Error("a.OpenIntent after the lock's session ended = nil")
	}

	lb, err := b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, time.Hour)
	if err != nil || lb == nil {
		t.Fatalf("b.TryLead after a lost the lock = %v, %v", lb, err)
	}
	refused("after the takeover", a, "a3", false)
	r := rec("a1")
	r.State, r.Error = tickets.StateFailed, "the create was not applied; it is sent again"
	if err := b.PutTicketRecord(r); err != nil {
		t.Errorf("b.PutTicketRecord after the takeover = %v", err)
	}
	if err := b.CreateTicketIntent(rec("b1")); err != nil {
		t.Errorf("b.CreateTicketIntent after the takeover = %v", err)
	}
	got, err := b.TicketRecords("sophos", "c1")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range got {
		keys = append(keys, r.AlertKey+"="+r.State)
	}
	if len(keys) != 2 || keys[0] != "a1=failed" || keys[1] != "b1=creating" {
		t.Errorf("ticket records = %v, want only a1 (failed, by b) and b1: the refused writes stored nothing", keys)
	}
}

// TestTickets_schema11FieldsAcrossATakeover: on a shared PostgreSQL
// database, the intents of schema version 11 (a summary's note whose
// alerts are in NoteAlerts, a reopen with the PSA's ReopenActivity) are
// read by the instance that takes over as the deposed one recorded them,
// and the deposed instance, whose lock session ended but whose watch has
// not noticed yet, cannot clear them (as after a note it still sent): the
// new instance looks for the note and the reopen rather than taking them
// as done or not applied.
func TestTickets_schema11FieldsAcrossATakeover(t *testing.T) {
	t.Parallel()
	a, b := openSharedPostgres(t)
	la, err := a.TryLead(t.Context(), LeaderInfo{Holder: "a"}, time.Hour)
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v", la, err)
	}
	t.Cleanup(func() { _ = la.Release() })
	activity := t0.Add(-time.Hour).UTC()
	summary := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: tickets.SummaryKey, Ref: "sc:summary", Generation: 1,
		State: tickets.StateOpen, TicketID: "T1", Covered: []string{"x1", "x2"}, NoteAlerts: []string{"x2"}, Created: t0, Updated: t0}
	reopen := tickets.Record{Source: "sophos", CustomerID: "c1", AlertKey: "x3", Ref: "sc:x3", Generation: 2,
		State: tickets.StateReopening, TicketID: "T2", ReopenActivity: activity, Created: t0, Updated: t0}
	for _, r := range []tickets.Record{summary, reopen} {
		if err := a.PutTicketRecord(r); err != nil {
			t.Fatalf("a.PutTicketRecord(%s) = %v", r.AlertKey, err)
		}
	}
	if _, err := b.sql.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, leaderLockKey&0xffffffff); err != nil {
		t.Fatal(err)
	}
	var lb *Leadership
	for deadline := time.Now().Add(10 * time.Second); lb == nil; time.Sleep(20 * time.Millisecond) {
		if lb, err = b.TryLead(t.Context(), LeaderInfo{Holder: "b"}, time.Hour); err != nil || time.Now().After(deadline) {
			t.Fatalf("b.TryLead after a's session ended = %v, %v", lb, err)
		}
	}
	t.Cleanup(func() { _ = lb.Release() })
	sent, done := summary, reopen
	sent.NoteAlerts, sent.Covered = nil, []string{"x1", "x2"}
	done.State, done.ReopenActivity = tickets.StateOpen, time.Time{}
	for _, r := range []tickets.Record{sent, done} {
		if err := a.PutTicketRecord(r); !errors.Is(err, tickets.ErrNotLeader) {
			t.Errorf("deposed a.PutTicketRecord(%s) = %v; want tickets.ErrNotLeader", r.AlertKey, err)
		}
	}
	got, err := b.TicketRecords("sophos", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("b reads %d records, want 2: %+v", len(got), got)
	}
	for _, r := range got {
		switch r.AlertKey {
		case tickets.SummaryKey:
			if r.State != tickets.StateOpen || len(r.NoteAlerts) != 1 || r.NoteAlerts[0] != "x2" || len(r.Covered) != 2 {
				t.Errorf("summary read by b = %+v; want NoteAlerts [x2], Covered [x1 x2], as a recorded them", r)
			}
		case "x3":
			if r.State != tickets.StateReopening || !r.ReopenActivity.Equal(activity) {
				t.Errorf("reopen read by b = state %s, ReopenActivity %v; want reopening, %v", r.State, r.ReopenActivity, activity)
			}
		}
	}
}
