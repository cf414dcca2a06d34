package tickets_test

import (
	"fmt"
	"net/http"
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

// createPath is the path of the simulator's ticket create.
func (e *env) createPath() string {
	switch e.system {
	case psa.SystemConnectWise:
		return strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL()) + "service/tickets"
	case psa.SystemKaseyaBMS:
		return "/v2/servicedesk/tickets"
	}
	return "/ATServicesRest/V1.0/Tickets"
}

// moveTicket moves a ticket to a new company (Kaseya BMS: account), as a
// technician would, and returns the company's id.
func (e *env) moveTicket(ticketID int64) string {
	switch e.system {
	case psa.SystemConnectWise:
		c := e.psaSim.ConnectWise().AddCompany("Acme Holding")
		e.psaSim.ConnectWise().SetTicketCompany(ticketID, c)
		return id(c)
	case psa.SystemKaseyaBMS:
		c := e.psaSim.KaseyaBMS().AddAccount("Acme Holding")
		e.psaSim.KaseyaBMS().SetTicketAccount(int(ticketID), c)
		return id(int64(c))
	}
	c := e.psaSim.Autotask().AddCompany("Acme Holding")
	e.psaSim.Autotask().SetTicketCompany(ticketID, c)
	return id(c)
}

// A create whose answer was lost, whose ticket a technician moved to
// another company before the next pass settled it, is found there and
// adopted (with a notice naming the company), not filed a second time in
// the customer's company; it is followed there, and closed when its alert
// is resolved.
func TestEngine_unsettledCreateMovedToAnotherCompany(t *testing.T) {
	t.Parallel()
	forEachSystem(t, func(t *testing.T, e *env) {
		eng := e.engine(routings[e.system])
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.createPath(), DropAfterHandling: true, Times: 1})
		if cr := e.pass(eng).Customers[0]; cr.Err == nil || cr.Created != 0 || len(e.tickets()) != 1 {
			t.Fatalf("pass with the create's answer lost = %+v, %d tickets; want the create unsettled and one ticket", cr, len(e.tickets()))
		}
		moved := e.moveTicket(e.tickets()[0].id)
		rep := e.pass(eng)
		cr := rep.Customers[0]
		if n := len(e.tickets()); n != 1 {
			t.Fatalf("%d tickets after the next pass, want 1: the ticket moved to company %s was filed again (%+v)", n, moved, cr)
		}
		if rep.Settled != 1 || cr.Adopted != 1 || cr.Created != 0 || cr.Err != nil {
			t.Errorf("next pass = settled %d, %+v; want the moved ticket adopted", rep.Settled, cr)
		}
		if !slicesContain(cr.Notices, "found in company "+moved) {
			t.Errorf("notices %q, want one naming company %s", cr.Notices, moved)
		}
		recs, err := e.db.TicketRecords("sophos", acme)
		if err != nil || len(recs) != 1 || recs[0].State != tickets.StateOpen || recs[0].CompanyID != moved {
			t.Errorf("records = %+v, %v; want the ticket followed in company %s", recs, err, moved)
		}
		e.sophos.ResolveAlert(acme, a.ID)
		if cr := e.pass(eng).Customers[0]; cr.Closed != 1 || cr.Err != nil || !e.tickets()[0].closed {
			t.Errorf("pass after the alert was resolved = %+v, ticket %+v; want it closed", cr, e.tickets()[0])
		}
	})
}

func slicesContain(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// setStatus sets a ticket's status out of band, as a technician would:
// the routing's closed status, or its reopen status.
func (e *env) setStatus(ticketID int64, closed bool) {
	r := routings[e.system]
	st := r.ReopenStatusID
	if closed {
		st = r.ClosedStatusID
	}
	n, err := strconv.ParseInt(st, 10, 64)
	if err != nil {
		e.t.Fatal(err)
	}
	switch e.system {
	case psa.SystemConnectWise:
		e.psaSim.ConnectWise().SetTicketStatus(ticketID, n)
	case psa.SystemKaseyaBMS:
		e.psaSim.KaseyaBMS().SetTicketStatus(int(ticketID), int(n))
	default:
		label := "In Progress"
		if closed {
			label = "Complete"
		}
		e.psaSim.Autotask().SetTicketStatus(ticketID, label)
	}
}

// A reopen whose outcome is unknown (psa-syncd died after recording its
// intent, or its answer and the read after it were lost) whose ticket the
// next pass finds closed: unchanged in the PSA since the intent, the
// reopen was not applied and is sent (once, with one note); changed since
// (reopened, then closed again by a technician), it is taken as closed in
// the PSA and not reopened over the technician's close.
func TestEngine_unsettledReopenOfAnUnchangedTicketIsSentAgain(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		// returned files an alert, closes its ticket, raises the alert
		// again an hour later and records the reopen's intent as a
		// psa-syncd that died right after it would have left it.
		returned := func(t *testing.T) (*env, *tickets.Engine, int64) {
			e := newEnv(t, sys)
			eng := e.engineWith(func(r *export.Tickets) { r.OnReturn = export.OnReturnReopen })
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
			e.pass(eng)
			e.sophos.ResolveAlert(acme, a.ID)
			if cr := e.pass(eng).Customers[0]; cr.Closed != 1 || !e.tickets()[0].closed {
				t.Fatalf("pass after the alert was resolved = %+v, want its ticket closed", cr)
			}
			e.raiseAgain(a)
			e.now = e.now.Add(time.Hour)
			recs, err := e.db.TicketRecords("sophos", acme)
			if err != nil || len(recs) != 1 {
				t.Fatalf("records = %+v, %v", recs, err)
			}
			recs[0].State, recs[0].Updated = tickets.StateReopening, e.now
			if err := e.db.PutTicketRecord(recs[0]); err != nil {
				t.Fatal(err)
			}
			return e, eng, e.tickets()[0].id
		}
		t.Run(string(sys)+"/notApplied", func(t *testing.T) {
			t.Parallel()
			e, eng, _ := returned(t)
			e.now = e.now.Add(5 * time.Minute)
			cr := e.pass(eng).Customers[0]
			if cr.Reopened != 1 || cr.Err != nil || !slicesContain(cr.Notices, "was not applied") || e.tickets()[0].closed {
				t.Errorf("pass after the unsettled reopen = %+v, ticket %+v; want the ticket reopened, with a notice", cr, e.tickets()[0])
			}
			e.wantNotes("raised again", 1)
			recs, _ := e.db.TicketRecords("sophos", acme)
			if len(recs) != 1 || recs[0].State != tickets.StateOpen {
				t.Errorf("records = %+v, want the ticket followed (open)", recs)
			}
		})
		t.Run(string(sys)+"/appliedThenClosedByATechnician", func(t *testing.T) {
			t.Parallel()
			e, eng, tk := returned(t)
			// The reopen was applied; a technician closes the ticket again.
			e.setStatus(tk, false)
			e.now = e.now.Add(time.Minute)
			e.setStatus(tk, true)
			e.now = e.now.Add(4 * time.Minute)
			cr := e.pass(eng).Customers[0]
			if cr.Reopened != 0 || cr.Err != nil || !slicesContain(cr.Notices, "unconfirmed") || !e.tickets()[0].closed {
				t.Errorf("pass after the unsettled reopen = %+v, ticket %+v; want nothing reopened and a notice", cr, e.tickets()[0])
			}
			recs, _ := e.db.TicketRecords("sophos", acme)
			if len(recs) != 1 || recs[0].State != tickets.StateClosed || recs[0].ClosedBy != tickets.ClosedByPSA {
				t.Errorf("records = %+v, want the ticket taken as closed in the PSA", recs)
			}
		})
	}
}

// notesPath is the path of the simulator's note create of a ticket.
func (e *env) notesPath(ticketID int64) string {
	switch e.system {
	case psa.SystemConnectWise:
		return strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL()) + "service/tickets/" + id(ticketID) + "/notes"
	case psa.SystemKaseyaBMS:
		return "/v2/servicedesk/tickets/" + id(ticketID) + "/notes"
	}
	return "/ATServicesRest/V1.0/Tickets/" + id(ticketID) + "/Notes"
}

// A resolve note (on_resolve "note") whose answer was lost is looked for
// on the ticket by the next pass: found (it was applied), the ticket is
// done and no second note is sent; not there (the request never reached
// the PSA), it is sent then, once.
func TestEngine_lostResolveNoteIsLookedFor(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		for _, applied := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/applied=%v", sys, applied), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				eng := e.engineWith(func(r *export.Tickets) { r.OnResolve = export.OnResolveNote })
				a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
				e.pass(eng)
				tk := e.tickets()[0].id
				e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), DropAfterHandling: applied, Drop: !applied, Times: 1})
				e.sophos.ResolveAlert(acme, a.ID)
				if cr := e.pass(eng).Customers[0]; cr.Noted != 0 || !slicesContain(cr.Notices, "looks for the note") {
					t.Errorf("pass with the note's answer lost = %+v, want a notice that the next pass looks for it", cr)
				}
				e.now = e.now.Add(5 * time.Minute)
				if cr := e.pass(eng).Customers[0]; cr.Noted != 1 || cr.Err != nil {
					t.Errorf("next pass = %+v, want the note found or sent", cr)
				}
				e.wantNotes("resolved in Sophos Central", 1)
				recs, _ := e.db.TicketRecords("sophos", acme)
				if len(recs) != 1 || recs[0].State != tickets.StateClosed || recs[0].ClosedBy != tickets.ClosedBySync || e.tickets()[0].closed {
					t.Errorf("records = %+v, want the ticket done (noted by psa-syncd) and left open", recs)
				}
				if cr := e.pass(eng).Customers[0]; cr.Noted != 0 || e.countNotes("resolved in Sophos Central") != 1 {
					t.Errorf("third pass = %+v, want nothing more", cr)
				}
			})
		}
	}
}
