package tickets_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
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
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			eng := e.engine(routings[sys])
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
}

func slicesContain(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
