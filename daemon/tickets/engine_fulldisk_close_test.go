package tickets_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestEngine_fullDiskAtClose fills the state database (SQLite's
// max_page_count, as a full disk does) before the pass that closes the
// tickets of resolved alerts. TestEngine_fullDisk's closes never reach the
// limit: a ticket record is updated in place. The summary ticket of a storm
// covers 600 alerts, so that its record spills onto overflow pages, which
// an update that changes the record's size writes anew before freeing the
// old ones: its close needs free pages, and the free ones are used up
// first. The close must not be sent without its record (StateClosing);
// once there is space again the next pass closes it, once: one ticket
// per alert or storm, each closed with one resolve note.
func TestEngine_fullDiskAtClose(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			routing := routings[sys]
			routing.MaxPerCustomer = 1 // a storm: one ticket, then a summary
			eng := e.engine(routing)
			for i := range 601 {
				e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Type: "Event::Endpoint::Threat::CleanupFailed",
					Description: fmt.Sprintf("Manual cleanup required: 'EICAR-AV-Test' on PC-%03d", i)})
			}
			if tot := e.pass(eng).Totals(); tot.Err != nil || len(e.tickets()) != 2 {
				t.Fatalf("storm pass = %+v, %d tickets; want 2 tickets (one, and a summary)", tot, len(e.tickets()))
			}
			for _, a := range e.sophos.Alerts(acme) {
				e.sophos.ResolveAlert(acme, a.ID)
			}

			// Full: no page beyond those the database has, and none of
			// them free (filler statuses take them).
			if err := e.db.LimitSize(0); err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				err := e.db.PutCustomerStatus(state.CustomerStatus{Source: "filler", CustomerID: fmt.Sprint(i), Error: strings.Repeat("x", 900)})
				if err != nil {
					if !strings.Contains(err.Error(), "database or disk is full") {
						t.Fatalf("filling the database: %v", err)
					}
					break
				}
				if i == 100000 {
					t.Fatal("the database never filled")
				}
			}
			rep, err := eng.Pass(t.Context(), e.customers(), false)
			if err != nil {
				t.Fatalf("Pass on a full disk: %v, want the customer's error", err)
			}
			cerr := rep.Customers[0].Err
			if cerr == nil || !strings.Contains(cerr.Error(), e.db.Path()) || !strings.Contains(cerr.Error(), "database or disk is full") {
				t.Fatalf("customer error on a full disk = %v, want one naming %s and saying it is full", cerr, e.db.Path())
			}
			// The full disk refused the summary's close intent: its close
			// was not sent.
			if recs, err := e.db.TicketRecords("sophos", acme); err != nil {
				t.Fatal(err)
			} else {
				for _, r := range recs {
					if r.AlertKey == tickets.SummaryKey && r.State != tickets.StateOpen {
						t.Fatalf("summary record %s on a full disk, want still open: the test did not reach the limit at its close", r.State)
					}
				}
			}
			for _, tk := range e.tickets() {
				if tk.closed && strings.Contains(tk.title, "storm") {
					t.Errorf("summary ticket %d closed in the PSA although its close intent was not recorded", tk.id)
				}
			}

			if err := e.db.LimitSize(-1); err != nil {
				t.Fatal(err)
			}
			e.pass(eng)
			e.pass(eng)
			got := e.tickets()
			if len(got) != 2 {
				t.Errorf("%d tickets after the disk was freed, want 2", len(got))
			}
			for _, tk := range got {
				resolved := 0
				for _, n := range tk.notes {
					if strings.Contains(n, "resolved in Sophos Central") {
						resolved++
					}
				}
				if !tk.closed || resolved != 1 {
					t.Errorf("ticket %d %q: closed %t with %d resolve notes, want closed with one (%q)", tk.id, tk.title, tk.closed, resolved, tk.notes)
				}
			}
		})
	}
}

// failClosedRecord is a Store whose first write of a summary record in
// StateClosed fails as on a full disk: the close was sent and answered,
// and recording it failed. With SQLite's max_page_count that point is not
// reached: the close intent frees the pages that recording the close
// needs (a concurrent usage pass could take them in a live daemon).
type failClosedRecord struct {
	tickets.Store
	path   string
	failed bool
}

func (s *failClosedRecord) PutTicketRecord(r tickets.Record) error {
	if !s.failed && r.AlertKey == tickets.SummaryKey && r.State == tickets.StateClosed {
		s.failed = true
		return fmt.Errorf("state: storing ticket record %s/%s/%s in %s: database or disk is full (13)", r.Source, r.CustomerID, r.AlertKey, s.path)
	}
	return s.Store.PutTicketRecord(r)
}

// TestEngine_fullDiskAfterClose: the PSA closed the summary ticket, and
// recording that fails (a full disk). The record stays in StateClosing; the
// next pass finds the ticket closed, takes the close as psa-syncd's own
// and sends nothing more: one close, one resolve note.
func TestEngine_fullDiskAfterClose(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			routing := routings[sys]
			routing.MaxPerCustomer = 1
			for i := range 3 {
				e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Type: "Event::Endpoint::Threat::CleanupFailed",
					Description: fmt.Sprintf("Manual cleanup required: 'EICAR-AV-Test' on PC-%03d", i)})
			}
			e.pass(e.engine(routing))
			for _, a := range e.sophos.Alerts(acme) {
				e.sophos.ResolveAlert(acme, a.ID)
			}
			store := &failClosedRecord{Store: e.db, path: e.db.Path()}
			eng, err := tickets.New(tickets.Config{System: e.system, PSA: e.backend, Store: store, Alerts: e.sophosAlerts(),
				Routing: routing, Now: func() time.Time { return e.now }, Budget: e.budget})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := eng.Pass(t.Context(), e.customers(), false)
			if err != nil || !store.failed {
				t.Fatalf("pass = %v (failed the record: %t)", err, store.failed)
			}
			if cerr := rep.Customers[0].Err; cerr == nil || !strings.Contains(cerr.Error(), "database or disk is full") {
				t.Errorf("customer error = %v, want the full disk's", cerr)
			}
			e.pass(eng)
			e.pass(eng)
			for _, tk := range e.tickets() {
				resolved := 0
				for _, n := range tk.notes {
					if strings.Contains(n, "resolved in Sophos Central") {
						resolved++
					}
				}
				if !tk.closed || resolved != 1 {
					t.Errorf("ticket %d %q: closed %t with %d resolve notes, want closed with one (%q)", tk.id, tk.title, tk.closed, resolved, tk.notes)
				}
			}
			recs, err := e.db.TicketRecords("sophos", acme)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.State != tickets.StateClosed || r.ClosedBy != tickets.ClosedBySync {
					t.Errorf("record %s: %s closed by %q, want closed by psa-syncd", r.AlertKey, r.State, r.ClosedBy)
				}
			}
		})
	}
}
