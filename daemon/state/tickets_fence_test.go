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
