package tickets_test

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// A ticket psa-syncd found closed in the PSA while its alert was open
// (closed_by "psa"), and which a technician then reopened to work on it,
// is closed when its alert resolves: the record said closed, so the pass
// sent nothing, and the ticket stayed open until someone closed it by
// hand. The pass now reads it once when the alert clears, and finding it
// open, follows it again and closes it.
func TestEngine_closedInPSAReopenedByTechnicianClosedWhenResolved(t *testing.T) {
	t.Parallel()
	forEachSystem(t, func(t *testing.T, e *env) {
		eng := e.engine(routings[e.system])
		a := e.ticketed(eng, sophostest.Alert{Severity: "high", Description: "Malicious behaviour on PC-042"})
		tk := e.tickets()[0].id
		// Closed by a technician while the alert is open, as psa-syncd
		// records it when it reads the ticket then (settleReopen, adopt).
		e.setStatus(tk, true)
		rec := e.record(a.ID)
		rec.State, rec.ClosedBy, rec.ClosedAt = tickets.StateClosed, tickets.ClosedByPSA, e.now
		if err := e.db.PutTicketRecord(rec); err != nil {
			t.Fatal(err)
		}
		if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Closed != 0 || tot.Err != nil {
			t.Fatalf("pass with the ticket closed in the PSA = %+v, want nothing sent", tot)
		}
		e.setStatus(tk, false) // reopened by the technician

		e.sophos.ResolveAlert(acme, a.ID)
		e.psaSim.ResetRequests()
		tot := e.pass(eng).Totals()
		if tot.Closed != 1 || tot.Created != 0 || tot.Err != nil || len(tot.Notices) != 1 || !strings.Contains(tot.Notices[0], "is open again there") {
			t.Fatalf("pass after the alert resolved = %+v, want the reopened ticket closed, with a notice", tot)
		}
		if got := e.tickets(); len(got) != 1 || !got[0].closed || !strings.Contains(strings.Join(got[0].notes, "\n"), "resolved in Sophos Central") {
			t.Errorf("tickets = %+v, want the one ticket closed with psa-syncd's note", got)
		}
		if rec := e.record(a.ID); rec.State != tickets.StateClosed || rec.ClosedBy != tickets.ClosedBySync {
			t.Errorf("record = %+v, want closed by psa-syncd", rec)
		}
		if got := e.pass(eng).Totals(); got.Closed != 0 || got.Err != nil {
			t.Errorf("the pass after = %+v, want nothing more", got)
		}
	})
}
