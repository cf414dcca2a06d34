package state

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

func TestTickets_intentIsUnique(t *testing.T) {
	t.Parallel()
	db := openTest(t)
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
}

func TestTickets_recordsPerCustomerSurviveReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []tickets.Record{
		{Source: "sophos", CustomerID: "c1", AlertKey: "b", State: tickets.StateOpen, Covered: []string{"x"}},
		{Source: "sophos", CustomerID: "c1", AlertKey: "a", State: tickets.StateClosed, ClosedBy: tickets.ClosedBySync},
		{Source: "sophos", CustomerID: "c10", AlertKey: "a", State: tickets.StateOpen},
	} {
		if err := db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	got, err := db.TicketRecords("sophos", "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := []tickets.Record{
		{Source: "sophos", CustomerID: "c1", AlertKey: "a", State: tickets.StateClosed, ClosedBy: tickets.ClosedBySync},
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
}
