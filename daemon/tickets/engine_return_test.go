package tickets_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngine_returnWhileTicketOpenFollowsIt: an alert that comes back
// after psa-syncd resolved its ticket, whose ticket is open in the PSA
// (on_resolve "note" leaves it to the technician, who has not closed it
// yet), gets no second ticket: the open one is followed again, with a
// notice, and the next resolve notes it again. A ticket still closed is
// followed by a new one, as before.
func TestEngine_returnWhileTicketOpenFollowsIt(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			eng := e.engineWith(func(r *export.Tickets) { r.OnResolve = export.OnResolveNote })
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
			e.pass(eng)
			e.sophos.ResolveAlert(acme, a.ID)
			if tot := e.pass(eng).Totals(); tot.Noted != 1 || tot.Err != nil {
				t.Fatalf("pass after the resolve = %+v, want the ticket noted", tot)
			}
			// The alert is raised again with its id; its ticket, noted as
			// resolved, is still open.
			e.raiseAgain(a)
			dry := e.dryPass(eng)
			if tot := dry.Totals(); len(tot.WouldCreate) != 0 || len(tot.Notices) != 1 || !strings.Contains(tot.Notices[0], "follows it again") {
				t.Errorf("dry run after the return = %+v, want nothing to create and a notice that the open ticket is followed again", tot)
			}
			tot := e.pass(eng).Totals()
			if tot.Created != 0 || tot.Err != nil || len(tot.Notices) != 1 || !strings.Contains(tot.Notices[0], "follows it again") {
				t.Errorf("pass after the return = %+v, want no ticket created and a notice that the open ticket is followed again", tot)
			}
			if got := e.tickets(); len(got) != 1 {
				t.Fatalf("tickets after the return = %+v, want the alert's one ticket", got)
			}
			if rec := e.record(a.ID); rec.State != tickets.StateOpen || rec.Generation != 1 {
				t.Errorf("record after the return = %+v, want the first ticket followed (open)", rec)
			}
			if n := e.countNotes("raised again"); n != 1 {
				t.Errorf("%d 'raised again' notes, want 1 on the ticket followed again", n)
			}
			if tot := e.pass(eng).Totals(); tot.Created != 0 || len(tot.Notices) != 0 {
				t.Errorf("the pass after = %+v, want nothing more", tot)
			}
			e.sophos.ResolveAlert(acme, a.ID)
			if tot := e.pass(eng).Totals(); tot.Noted != 1 || tot.Err != nil {
				t.Errorf("pass after the second resolve = %+v, want the ticket noted again", tot)
			}
			e.wantNotes("resolved in Sophos Central", 2)
			// The technician closes it now; the alert's next return gets
			// a new ticket.
			switch tk := e.tickets()[0].id; sys {
			case psa.SystemAutotask:
				e.psaSim.Autotask().SetTicketStatus(tk, "Complete")
			case psa.SystemConnectWise:
				e.psaSim.ConnectWise().SetTicketStatus(tk, psatest.ConnectWiseStatusClosed)
			case psa.SystemKaseyaBMS:
				e.psaSim.KaseyaBMS().SetTicketStatus(int(tk), psatest.KaseyaBMSStatusCompleted)
			}
			e.raiseAgain(a)
			if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Err != nil {
				t.Errorf("pass after the return with the ticket closed = %+v, want a new ticket", tot)
			}
			if got := e.tickets(); len(got) != 2 {
				t.Errorf("tickets = %+v, want a second one for the return after the close", got)
			}
		})
	}
}

// TestEngine_returnAfterATechnicianReopenedTheTicket: a ticket psa-syncd
// closed that a technician reopened in the PSA is followed again when its
// alert comes back (on_return "new"), not joined by a second ticket.
func TestEngine_returnAfterATechnicianReopenedTheTicket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-7"})
	e.pass(eng)
	e.sophos.ResolveAlert(acme, a.ID)
	if tot := e.pass(eng).Totals(); tot.Closed != 1 {
		t.Fatalf("pass after the resolve = %+v, want the ticket closed", tot)
	}
	tk := e.tickets()[0].id
	e.psaSim.Autotask().SetTicketStatus(tk, "In Progress")
	e.raiseAgain(a)
	if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Err != nil {
		t.Errorf("pass after the return = %+v, want no second ticket", tot)
	}
	if got := e.tickets(); len(got) != 1 {
		t.Errorf("tickets = %+v, want one", got)
	}
	e.sophos.ResolveAlert(acme, a.ID)
	if tot := e.pass(eng).Totals(); tot.Closed != 1 || e.tickets()[0].closed != true {
		t.Errorf("pass after the second resolve = %+v, want the reopened ticket closed", tot)
	}
}

// TestEngine_returnTicketUnread: the read of the resolved ticket of an
// alert raised again decides between following it and a new ticket. When
// it fails for now (a server error), nothing is filed: the customer fails
// and the next pass reads it again. When the PSA refuses the API user the
// ticket (403), a new ticket is filed, with a notice.
func TestEngine_returnTicketUnread(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*env, *tickets.Engine, string, string) {
		e := newEnv(t, psa.SystemAutotask)
		eng := e.engine(routings[psa.SystemAutotask])
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-8"})
		e.pass(eng)
		e.sophos.ResolveAlert(acme, a.ID)
		e.pass(eng)
		tk := e.tickets()[0].id
		e.psaSim.Autotask().SetTicketStatus(tk, "In Progress")
		e.raiseAgain(a)
		return e, eng, a.ID, fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d", tk)
	}
	t.Run("serverError", func(t *testing.T) {
		t.Parallel()
		e, eng, alert, path := setup(t)
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Status: http.StatusServiceUnavailable})
		if cr := e.pass(eng).Customers[0]; cr.Created != 0 || cr.Err == nil || !strings.Contains(cr.Err.Error(), "read again next pass") {
			t.Errorf("pass with the read failing = %+v, want nothing filed and the customer failed", cr)
		}
		if got := e.tickets(); len(got) != 1 {
			t.Errorf("tickets = %+v, want one", got)
		}
		e.psaSim.ClearFaults()
		if cr := e.pass(eng).Customers[0]; cr.Created != 0 || cr.Err != nil || e.record(alert).State != tickets.StateOpen {
			t.Errorf("next pass = %+v, want the open ticket followed again", cr)
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		t.Parallel()
		e, eng, alert, path := setup(t)
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Status: http.StatusForbidden})
		cr := e.pass(eng).Customers[0]
		if cr.Created != 1 || cr.Err != nil || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "cannot be read") {
			t.Errorf("pass with the read refused = %+v, want a new ticket and a notice", cr)
		}
		if rec := e.record(alert); rec.State != tickets.StateOpen || rec.Generation != 2 {
			t.Errorf("record = %+v, want the new ticket followed", rec)
		}
	})
}

// TestEngine_returnNoteAnswerLost: the "raised again" note on a ticket
// followed again whose answer is lost is looked for on the ticket by a
// pass after the settle time, and not sent a second time; a note the PSA
// refused is sent again then. The alert gets no second ticket either way.
func TestEngine_returnNoteAnswerLost(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{true, false} {
		t.Run(fmt.Sprintf("dropped=%v", drop), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, psa.SystemAutotask)
			e.settleTime = 2 * time.Minute
			eng := e.engineWith(func(r *export.Tickets) { r.OnResolve = export.OnResolveNote })
			a := e.resolvedHealthCheck(eng)
			tk := e.tickets()[0].id
			e.raiseAgain(a)
			fault := psatest.Fault{Method: http.MethodPost, Path: fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d/Notes", tk), BodyContains: "raised again", Times: 1}
			if drop {
				fault.DropAfterHandling = true
			} else {
				fault.Status = http.StatusBadRequest
			}
			e.psaSim.AddFault(fault)
			rep := e.pass(eng)
			if cr := rep.Customers[0]; cr.Created != 0 || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "looks for it on the ticket") {
				t.Errorf("pass with the note failing = %+v, want no ticket and a notice that the note is looked for later", cr)
			}
			if want := e.now.Add(e.settleTime); !rep.SettleAt.Equal(want) {
				t.Errorf("SettleAt = %v, want a settle pass at %v", rep.SettleAt, want)
			}
			if rec := e.record(a.ID); rec.State != tickets.StateReopening {
				t.Errorf("record = %+v, want the note unsettled", rec)
			}
			// Within the settle time the note is left alone, and named as
			// the note it is: the ticket was not reopened.
			if cr := e.pass(eng).Customers[0]; cr.Created != 0 || e.countNotes("raised again") != boolCount(drop) || len(cr.Notices) != 1 ||
				!strings.Contains(cr.Notices[0], "(the \"raised again\" note of ticket T") {
				t.Errorf("pass within the settle time = %+v, %d notes; want a notice naming the unsettled \"raised again\" note", cr, e.countNotes("raised again"))
			}
			e.now = e.now.Add(3 * time.Minute)
			if cr := e.pass(eng).Customers[0]; cr.Created != 0 || cr.Reopened != 0 || cr.Err != nil {
				t.Errorf("pass after the settle time = %+v, want the note settled, nothing created or counted as reopened", cr)
			}
			e.wantNotes("raised again", 1)
			if rec := e.record(a.ID); rec.State != tickets.StateOpen || len(e.tickets()) != 1 {
				t.Errorf("record = %+v, tickets %d; want the one ticket followed", rec, len(e.tickets()))
			}
		})
	}
}

// TestEngine_returnNoteUnsettledTicketClosed: the ticket of an alert back,
// followed again while open, whose "raised again" note has an unknown
// outcome and which a technician closes meanwhile, is taken as closed in
// the PSA, and the notice names the note, not a reopen psa-syncd never
// sent.
func TestEngine_returnNoteUnsettledTicketClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.OnResolve = export.OnResolveNote })
	a := e.resolvedHealthCheck(eng)
	tk := e.tickets()[0].id
	e.raiseAgain(a)
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), BodyContains: "raised again", DropAfterHandling: true, Times: 1})
	e.pass(eng)
	if rec := e.record(a.ID); rec.State != tickets.StateReopening {
		t.Fatalf("record = %+v, want the note unsettled", rec)
	}
	e.setStatus(tk, true)
	e.now = e.now.Add(time.Hour)
	cr := e.pass(eng).Customers[0]
	if cr.Created != 0 || cr.Reopened != 0 || cr.Err != nil || len(cr.Notices) == 0 ||
		!strings.HasPrefix(cr.Notices[0], "the \"raised again\" note on ticket T") || !strings.Contains(cr.Notices[0], "taken as closed in the PSA") {
		t.Errorf("pass after the technician closed the ticket = %+v, want a notice naming the unconfirmed note, the ticket taken as closed in the PSA", cr)
	}
	if rec := e.record(a.ID); rec.State != tickets.StateClosed || rec.ClosedBy != tickets.ClosedByPSA {
		t.Errorf("record = %+v, want closed in the PSA", rec)
	}
}

func boolCount(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestEngine_summaryReturnWhileOpenFollowsIt: with on_resolve "note", the
// summary ticket of a storm whose alerts were all resolved stays open;
// when its alerts come back, it is followed again with a "raised again"
// note, and they get no tickets of their own nor a second summary. Once
// a technician closed it, alerts coming back are filed anew, as before.
func TestEngine_summaryReturnWhileOpenFollowsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.OnResolve, r.MaxPerCustomer = export.OnResolveNote, 1 })
	storm := e.raiseSeries("Storm", 0, 3)
	if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Summarised != 2 {
		t.Fatalf("storm pass = %+v, want one ticket and a summary of 2", tot)
	}
	for _, a := range storm {
		e.sophos.ResolveAlert(acme, a.ID)
	}
	if tot := e.pass(eng).Totals(); tot.Noted != 2 || tot.Err != nil {
		t.Fatalf("pass after the resolve = %+v, want the alert's ticket and the summary noted", tot)
	}
	if rec := e.record(tickets.SummaryKey); rec.State != tickets.StateClosed {
		t.Fatalf("summary record = %+v, want it resolved", rec)
	}
	// The summary's two alerts come back with their ids.
	e.stormBack(storm[1:]...)
	dry := e.dryPass(eng)
	if tot := dry.Totals(); len(tot.WouldCreate) != 0 || tot.Summarised != 0 {
		t.Errorf("dry run after the return = %+v, want nothing to create or summarise", tot)
	}
	tot := e.pass(eng).Totals()
	if tot.Created != 0 || tot.Summarised != 0 || tot.Err != nil || len(tot.Notices) != 1 || !strings.Contains(tot.Notices[0], "follows it again") {
		t.Errorf("pass after the return = %+v, want the open summary followed again, nothing created", tot)
	}
	if n := len(e.tickets()); n != 2 {
		t.Errorf("%d tickets, want the alert's and the summary", n)
	}
	if rec := e.record(tickets.SummaryKey); rec.State != tickets.StateOpen || rec.Generation != 1 || len(rec.Covered) != 2 {
		t.Errorf("summary record = %+v, want the first summary followed with its 2 alerts", rec)
	}
	if n := e.countNotes("raised again"); n != 1 {
		t.Errorf("%d 'raised again' notes, want 1 on the summary", n)
	}
	if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Summarised != 0 || len(tot.Notices) != 0 {
		t.Errorf("the pass after = %+v, want nothing more", tot)
	}
	// Resolved again, and closed by a technician: back again, the alerts
	// are filed anew.
	for _, a := range storm[1:] {
		e.sophos.ResolveAlert(acme, a.ID)
	}
	if tot := e.pass(eng).Totals(); tot.Err != nil {
		t.Fatalf("pass after the second resolve = %+v", tot)
	}
	for _, tk := range e.psaSim.Autotask().Tickets() {
		e.psaSim.Autotask().SetTicketStatus(tk.ID, "Complete")
	}
	e.stormBack(storm[1:]...)
	if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Summarised != 1 || tot.Err != nil {
		t.Errorf("pass after the return with the summary closed = %+v, want a ticket and a new summary", tot)
	}
}

// TestEngine_summaryFollowedAgainNoteUnsettled: while the "raised again"
// note of a summary followed again is unsettled (its answer lost, and the
// read that would settle it failing), alerts over the cap wait: they are
// neither noted nor put in a summary that would adopt the same ticket
// and forget the alerts it stands for.
func TestEngine_summaryFollowedAgainNoteUnsettled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	e.settleTime = 2 * time.Minute
	eng := e.engineWith(func(r *export.Tickets) { r.OnResolve, r.MaxPerCustomer = export.OnResolveNote, 1 })
	storm := e.raiseSeries("Storm", 0, 3)
	e.pass(eng)
	summary := e.record(tickets.SummaryKey).TicketID
	for _, a := range storm {
		e.sophos.ResolveAlert(acme, a.ID)
	}
	e.pass(eng)
	e.stormBack(storm[1:]...)
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets/" + summary + "/Notes", BodyContains: "raised again",
		DropAfterHandling: true, Times: 1})
	if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Summarised != 0 {
		t.Fatalf("pass after the return = %+v, want the summary followed again", tot)
	}
	e.now = e.now.Add(3 * time.Minute)
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/ATServicesRest/V1.0/Tickets/" + summary, Status: http.StatusServiceUnavailable})
	for i := 3; i < 5; i++ {
		e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Storm %d", i), RaisedAt: fmt.Sprintf("2026-11-15T10:%02d:00.000", i)})
	}
	cr := e.pass(eng).Customers[0]
	if cr.Summarised != 0 || cr.Deferred != 1 || cr.Adopted != 0 {
		t.Errorf("pass with the note unsettled = %+v, want the alert over the cap deferred", cr)
	}
	if rec := e.record(tickets.SummaryKey); rec.TicketID != summary || len(rec.Covered) != 2 || rec.State != tickets.StateReopening {
		t.Errorf("summary record = %+v, want ticket %s with its 2 alerts and its note unsettled", rec, summary)
	}
	e.psaSim.ClearFaults()
	if cr := e.pass(eng).Customers[0]; cr.Err != nil {
		t.Errorf("pass after = %+v", cr)
	}
	if rec := e.record(tickets.SummaryKey); rec.TicketID != summary || len(rec.Covered) != 2 || rec.State != tickets.StateOpen {
		t.Errorf("summary record = %+v, want ticket %s with its 2 alerts, followed", rec, summary)
	}
	e.wantNotes("raised again", 1)
}

// TestEngine_summaryClosedReadOnceForAlertsBack: alerts back of a summary
// psa-syncd resolved whose ticket is closed are filed anew, and the
// summary is not read again at every later pass while they are open.
func TestEngine_summaryClosedReadOnceForAlertsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	r := routings[psa.SystemAutotask]
	r.MaxPerCustomer = 1
	eng := e.engine(r)
	storm := e.raiseSeries("Storm", 0, 3)
	e.pass(eng)
	summary := e.record(tickets.SummaryKey).TicketID
	for _, a := range storm {
		e.sophos.ResolveAlert(acme, a.ID)
	}
	if tot := e.pass(eng).Totals(); tot.Closed != 2 {
		t.Fatalf("pass after the resolve = %+v, want the ticket and the summary closed", tot)
	}
	back := storm[2]
	e.stormBack(back)
	if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Summarised != 0 || tot.Err != nil {
		t.Fatalf("pass after the return = %+v, want the alert filed anew", tot)
	}
	reads := func() int {
		n := 0
		for _, r := range e.psaSim.Requests() {
			if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/Tickets/"+summary) {
				n++
			}
		}
		return n
	}
	before := reads()
	for range 2 {
		if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Err != nil {
			t.Errorf("later pass = %+v, want nothing", tot)
		}
	}
	if n := reads() - before; n != 0 {
		t.Errorf("summary ticket read %d more times by later passes, want none", n)
	}
}

// TestEngine_reopenOfAnOpenTicketSetsNoStatus: with on_return "reopen",
// an alert back within the reopen window whose ticket is open in the PSA
// (on_resolve "note" left it to the technician) keeps the status the
// technician gave it: the ticket gets the "raised again" note only, and is
// followed again; a ticket closed is reopened as before.
func TestEngine_reopenOfAnOpenTicketSetsNoStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.OnResolve, r.OnReturn = export.OnResolveNote, export.OnReturnReopen })
	a := e.resolvedHealthCheck(eng)
	tk := e.tickets()[0].id
	e.psaSim.Autotask().SetTicketStatus(tk, "Waiting Customer")
	e.raiseAgain(a)
	e.now = e.now.Add(time.Hour)
	dry := e.dryPass(eng)
	if tot := dry.Totals(); len(tot.WouldReopen) != 0 || len(tot.WouldCreate) != 0 || len(tot.Notices) != 1 ||
		!strings.Contains(tot.Notices[0], "next pass follows it again") {
		t.Errorf("dry run after the return = %+v, want the open ticket to be followed again, not reopened", tot)
	}
	tot := e.pass(eng).Totals()
	if tot.Created != 0 || tot.Reopened != 0 || tot.Err != nil || len(tot.Notices) != 1 || !strings.Contains(tot.Notices[0], "follows it again") {
		t.Errorf("pass after the return = %+v, want the open ticket followed again, not reopened", tot)
	}
	status := func() string {
		for _, x := range e.psaSim.Autotask().Tickets() {
			if x.ID == tk {
				return x.Status
			}
		}
		return ""
	}
	if s := status(); s != "Waiting Customer" {
		t.Errorf("ticket status %q, want the technician's Waiting Customer kept", s)
	}
	e.wantNotes("raised again", 1)
	if rec := e.record(a.ID); rec.State != tickets.StateOpen {
		t.Errorf("record = %+v, want the ticket followed", rec)
	}
}

// TestEngine_returnAfterATechnicianClosedTheResolvedTicket: a technician
// closes an alert's ticket (having fixed what raised it), the alert clears,
// and psa-syncd finds the ticket closed when it goes to resolve it; the
// alert comes back with its id (a snoozed health check Sophos raises
// again). It cleared and came back, so it gets a new ticket (on_return
// "new"), as after a close of psa-syncd's; it used to be taken for a
// ticket closed while its alert was open and got none, only a notice.
// So it does when the technician closed the ticket while psa-syncd's
// resolve note (on_resolve "note") had an unknown outcome, and so do the
// alerts of a summary ticket closed so.
func TestEngine_returnAfterATechnicianClosedTheResolvedTicket(t *testing.T) {
	t.Parallel()
	t.Run("summary", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, psa.SystemAutotask)
		r := routings[psa.SystemAutotask]
		r.MaxPerCustomer = 1
		eng := e.engine(r)
		storm := e.raiseSeries("Storm", 0, 3)
		e.pass(eng)
		summary, err := strconv.ParseInt(e.record(tickets.SummaryKey).TicketID, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		e.setStatus(summary, true)
		for _, a := range storm {
			e.sophos.ResolveAlert(acme, a.ID)
		}
		if tot := e.pass(eng).Totals(); tot.Closed != 1 || tot.Err != nil {
			t.Fatalf("pass after the resolve = %+v, want the alert's ticket closed and the summary found closed", tot)
		}
		back := storm[2]
		e.stormBack(back)
		if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Err != nil || len(tot.Notices) != 0 {
			t.Errorf("pass after the summary's alert came back = %+v, want it filed anew", tot)
		}
		if rec := e.record(back.ID); rec.State != tickets.StateOpen {
			t.Errorf("record of the alert back = %+v, want a ticket of its own followed", rec)
		}
	})
	for _, sys := range psa.Systems {
		t.Run(string(sys)+"/closedBeforeTheResolve", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			eng := e.engine(routings[sys])
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
			e.pass(eng)
			e.setStatus(e.tickets()[0].id, true)
			e.sophos.ResolveAlert(acme, a.ID)
			if tot := e.pass(eng).Totals(); tot.Closed != 0 || tot.Err != nil {
				t.Fatalf("pass after the resolve = %+v, want the ticket found closed", tot)
			}
			if rec := e.record(a.ID); rec.State != tickets.StateClosed || rec.ClosedBy != tickets.ClosedByPSAResolved {
				t.Fatalf("record after the resolve = %+v, want closed in the PSA when the alert was resolved", rec)
			}
			e.raiseAgain(a)
			if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Err != nil || len(tot.Notices) != 0 {
				t.Errorf("pass after the return = %+v, want a new ticket", tot)
			}
			if got := e.tickets(); len(got) != 2 || !got[0].closed || got[1].closed {
				t.Errorf("tickets = %+v, want the first closed and a second, open, for the return", got)
			}
			if rec := e.record(a.ID); rec.State != tickets.StateOpen || rec.Generation != 2 {
				t.Errorf("record after the return = %+v, want the second ticket followed", rec)
			}
		})
		t.Run(string(sys)+"/closedWhileTheResolveNoteWasUnsettled", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			eng := e.engineWith(func(r *export.Tickets) { r.OnResolve = export.OnResolveNote })
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
			e.pass(eng)
			tk := e.tickets()[0].id
			e.sophos.ResolveAlert(acme, a.ID)
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), DropAfterHandling: true})
			e.pass(eng)
			e.psaSim.ClearFaults()
			if rec := e.record(a.ID); rec.State != tickets.StateNoting {
				t.Fatalf("record after the note's answer was lost = %+v, want its note unsettled", rec)
			}
			e.setStatus(tk, true)
			e.raiseAgain(a)
			e.now = e.now.Add(time.Hour)
			e.psaSim.ResetRequests()
			if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Err != nil || len(tot.Notices) != 0 {
				t.Errorf("pass after the return = %+v, want a new ticket", tot)
			}
			// The read that settled the note is the one before the new
			// ticket: the ticket is read once (a read sent again after
			// Kaseya BMS's token expired, answered 401, is the same read).
			var reads []string
			for _, req := range e.psaSim.Requests() {
				if req.Method == http.MethodGet && strings.HasSuffix(req.Path, "/"+id(tk)) && req.Status != http.StatusUnauthorized {
					reads = append(reads, req.Path)
				}
			}
			if len(reads) != 1 {
				t.Errorf("reads of the ticket in the pass after the return = %q, want 1", reads)
			}
			if got := e.tickets(); len(got) != 2 || !got[0].closed || got[1].closed {
				t.Errorf("tickets = %+v, want the first closed and a second, open, for the return", got)
			}
		})
	}
}

// TestEngine_returnAfterAnUnsettledResolveNoteReadsOnce: with on_return
// "reopen", the ticket of a resolve note whose answer was lost, closed by
// a technician, is read once in the pass its alert comes back: the read
// that settles the note is the reopen's.
func TestEngine_returnAfterAnUnsettledResolveNoteReadsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.OnResolve, r.OnReturn = export.OnResolveNote, export.OnReturnReopen })
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
	e.pass(eng)
	tk := e.tickets()[0].id
	e.sophos.ResolveAlert(acme, a.ID)
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), DropAfterHandling: true})
	e.pass(eng)
	e.psaSim.ClearFaults()
	e.setStatus(tk, true)
	e.raiseAgain(a)
	e.now = e.now.Add(time.Hour)
	e.psaSim.ResetRequests()
	if tot := e.pass(eng).Totals(); tot.Reopened != 1 || tot.Created != 0 || tot.Err != nil {
		t.Errorf("pass after the return = %+v, want the ticket reopened", tot)
	}
	reads := slices.DeleteFunc(e.requestsNaming(fmt.Sprintf("/Tickets/%d", tk)), func(req string) bool { return !strings.HasPrefix(req, "GET ") })
	if len(reads) != 1 {
		t.Errorf("reads of the ticket in the pass after the return = %q, want 1", reads)
	}
}

// TestEngine_returnAfterTheAlertOfATicketClosedInThePSACleared: a ticket
// psa-syncd found closed in the PSA while its alert was open (here by
// settling a reopen, as in TestEngine_reopenUnsettled/crashTicketClosed) is
// never reopened for that alert while it stays open; but once the alert has
// been left out of the listings for ticket_resolve_after, without a
// notice and with one read of the ticket, its return is reopened within the reopen window,
// and gets a new ticket after it, as after a close of psa-syncd's.
func TestEngine_returnAfterTheAlertOfATicketClosedInThePSACleared(t *testing.T) {
	t.Parallel()
	const resolveAfter = 30 * time.Minute
	// closedInPSA leaves the alert's ticket closed in the PSA (ClosedByPSA)
	// with the alert open, and returns the ticket.
	closedInPSA := func(t *testing.T) (*env, *tickets.Engine, sophostest.Alert, int64) {
		e := newEnv(t, psa.SystemAutotask)
		e.resolveAfter = resolveAfter
		eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
		a := e.resolvedHealthCheck(eng)
		e.now = e.now.Add(resolveAfter)
		if tot := e.pass(eng).Totals(); tot.Closed != 1 || tot.Err != nil {
			t.Fatalf("pass after the resolve = %+v, want the ticket closed", tot)
		}
		e.raiseAgain(a)
		e.now = e.now.Add(time.Hour)
		// A reopen's intent as a psa-syncd that died after it left it:
		// settled as closed in the PSA (the ticket may have changed since).
		rec := e.record(a.ID)
		rec.State = tickets.StateReopening
		if err := e.db.PutTicketRecord(rec); err != nil {
			t.Fatal(err)
		}
		e.pass(eng)
		if rec := e.record(a.ID); rec.State != tickets.StateClosed || rec.ClosedBy != tickets.ClosedByPSA {
			t.Fatalf("record = %+v, want the ticket taken as closed in the PSA", rec)
		}
		return e, eng, a, e.tickets()[0].id
	}
	// cleared resolves the alert and runs passes until it has been left out
	// for resolveAfter, checking that they are quiet and send nothing.
	cleared := func(t *testing.T, e *env, eng *tickets.Engine, a sophostest.Alert) {
		e.sophos.ResolveAlert(acme, a.ID)
		e.psaSim.ResetRequests()
		if tot := e.pass(eng).Totals(); tot.Err != nil || len(tot.Notices) != 0 {
			t.Errorf("first pass without the alert = %+v, want no notice", tot)
		}
		if rec := e.record(a.ID); rec.ClosedBy != tickets.ClosedByPSA || !rec.MissingSince.Equal(e.now) {
			t.Errorf("record = %+v, want still closed in the PSA, missing since now", rec)
		}
		e.now = e.now.Add(resolveAfter)
		if tot := e.pass(eng).Totals(); tot.Err != nil || len(tot.Notices) != 0 {
			t.Errorf("pass %s later = %+v, want no notice", resolveAfter, tot)
		}
		if rec := e.record(a.ID); rec.State != tickets.StateClosed || rec.ClosedBy != tickets.ClosedByPSAResolved || !rec.MissingSince.IsZero() {
			t.Errorf("record = %+v, want closed in the PSA after its alert cleared (psa-resolved)", rec)
		}
		// One read, once the alert cleared: the ticket may have been
		// reopened (TestEngine_closedInPSAReopenedByTechnicianClosedWhenResolved).
		if reqs := e.psaSim.Requests(); len(reqs) != 1 || reqs[0].Method != http.MethodGet {
			t.Errorf("%d requests to the PSA while the alert was gone, want the ticket's read alone: %+v", len(reqs), reqs)
		}
	}
	t.Run("backWithinTheReopenWindow", func(t *testing.T) {
		t.Parallel()
		e, eng, a, tk := closedInPSA(t)
		cleared(t, e, eng, a)
		e.raiseAgain(a)
		e.now = e.now.Add(time.Hour)
		if tot := e.pass(eng).Totals(); tot.Reopened != 1 || tot.Created != 0 || tot.Err != nil || len(tot.Notices) != 0 {
			t.Errorf("pass after the return = %+v, want the ticket reopened", tot)
		}
		if got := e.tickets(); len(got) != 1 || got[0].id != tk || got[0].closed {
			t.Errorf("tickets = %+v, want the one ticket, open", got)
		}
		if rec := e.record(a.ID); rec.State != tickets.StateOpen || rec.Generation != 1 {
			t.Errorf("record after the return = %+v, want the ticket followed", rec)
		}
	})
	t.Run("backAfterTheReopenWindow", func(t *testing.T) {
		t.Parallel()
		e, eng, a, _ := closedInPSA(t)
		cleared(t, e, eng, a)
		e.raiseAgain(a)
		e.now = e.now.Add(export.DefaultReopenWindow)
		if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Reopened != 0 || tot.Err != nil || len(tot.Notices) != 0 {
			t.Errorf("pass after the return = %+v, want a new ticket", tot)
		}
		if got := e.tickets(); len(got) != 2 || !got[0].closed || got[1].closed {
			t.Errorf("tickets = %+v, want the first closed and a second, open, for the return", got)
		}
		if rec := e.record(a.ID); rec.State != tickets.StateOpen || rec.Generation != 2 {
			t.Errorf("record after the return = %+v, want the second ticket followed", rec)
		}
	})
	t.Run("backBeforeItCleared", func(t *testing.T) {
		t.Parallel()
		e, eng, a, _ := closedInPSA(t)
		e.sophos.ResolveAlert(acme, a.ID)
		e.pass(eng)
		e.raiseAgain(a)
		e.now = e.now.Add(resolveAfter - time.Minute)
		tot := e.pass(eng).Totals()
		if tot.Reopened != 0 || tot.Created != 0 || len(tot.Notices) != 1 || !strings.Contains(tot.Notices[0], "closed in the PSA") {
			t.Errorf("pass after the alert was back before %s = %+v, want only the notice that its ticket was closed in the PSA", resolveAfter, tot)
		}
		if rec := e.record(a.ID); rec.ClosedBy != tickets.ClosedByPSA || !rec.MissingSince.IsZero() {
			t.Errorf("record = %+v, want still closed in the PSA, not missing", rec)
		}
		// Left out again: timed afresh.
		e.sophos.ResolveAlert(acme, a.ID)
		e.pass(eng)
		e.now = e.now.Add(resolveAfter - time.Minute)
		e.pass(eng)
		if rec := e.record(a.ID); rec.ClosedBy != tickets.ClosedByPSA {
			t.Errorf("record = %+v, want still closed in the PSA: its alert was gone for less than %s", rec, resolveAfter)
		}
	})
}
