package tickets_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// An alert whose id cannot make a ticket reference (a quote in it: every
// PSA search refuses it) gets a notice and no create intent, which no
// search could ever settle; the customer's other alerts get their tickets
// and the customer does not fail.
func TestEngine_alertIDNotAReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	bad := e.sophos.AddAlert(acme, sophostest.Alert{ID: `5f1c"9e`, Severity: "high", Description: "Malformed id"})
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-3"})
	for i := range 2 {
		cr := e.pass(eng).Customers[0]
		if cr.Err != nil || cr.Created != 1-i {
			t.Errorf("pass %d = %+v, want the other alert's ticket (in the first pass) and no error", i, cr)
		}
		if len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], strconv.Quote(bad.ID)) || !strings.Contains(cr.Notices[0], "gets no ticket") {
			t.Errorf("pass %d notices = %q, want one saying alert %s gets no ticket", i, cr.Notices, bad.ID)
		}
	}
	if intents, err := e.db.TicketIntents(); err != nil || len(intents) != 0 {
		t.Errorf("TicketIntents = %+v, %v; want none", intents, err)
	}
	if n := len(e.tickets()); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
}

// A create intent whose search before the create fails is not left
// "creating": no create was sent for it, and a search refused for good
// would never settle it. It is released, and the next pass that can search
// creates the ticket, once.
func TestEngine_searchBeforeCreateFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-4"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets/query", Status: http.StatusServiceUnavailable})
	cr := e.pass(eng).Customers[0]
	if cr.Err == nil || !strings.Contains(cr.Err.Error(), "searching for") || cr.Created != 0 {
		t.Errorf("pass with the search failing = %+v, want the customer failed by the search and nothing created", cr)
	}
	if intents, err := e.db.TicketIntents(); err != nil || len(intents) != 0 {
		t.Errorf("TicketIntents after the failed search = %+v, %v; want none: no create was sent", intents, err)
	}
	e.psaSim.ClearFaults()
	rep := e.pass(eng)
	if cr := rep.Customers[0]; cr.Err != nil || cr.Created != 1 || rep.Settled != 0 {
		t.Errorf("pass after = settled %d, %+v; want the ticket created", rep.Settled, cr)
	}
	if n := len(e.tickets()); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
}

// An earlier psa-syncd left a create intent for an alert id the PSA
// refuses to search for. While the alert is open the customer fails (the
// ticket may exist); once the alert is resolved, the intent is dropped
// with a notice, and the customer succeeds again.
func TestEngine_unsearchableIntentDroppedOnResolve(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	bad := e.sophos.AddAlert(acme, sophostest.Alert{ID: `5f1c"9e`, Severity: "high", Description: "Malformed id"})
	old := e.now.Add(-48 * time.Hour)
	if err := e.db.CreateTicketIntent(tickets.Record{Source: "sophos", CustomerID: acme, AlertKey: bad.ID, Ref: "sc:" + bad.ID, Generation: 1,
		System: string(psa.SystemAutotask), CompanyID: e.company, State: tickets.StateCreating, Severity: "high", Created: old, Updated: old}); err != nil {
		t.Fatal(err)
	}
	if cr := e.pass(eng).Customers[0]; cr.Err == nil || !strings.Contains(cr.Err.Error(), "unsettled") {
		t.Errorf("pass with the alert open = %+v, want the customer failed by the unsettled create", cr)
	}
	e.sophos.ResolveAlert(acme, bad.ID)
	cr := e.pass(eng).Customers[0]
	if cr.Err != nil || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "is dropped") || !strings.Contains(cr.Notices[0], "sc:"+bad.ID) {
		t.Errorf("pass after the alert was resolved = %+v, want no error and a notice that the create of sc:%s is dropped", cr, bad.ID)
	}
	if intents, err := e.db.TicketIntents(); err != nil || len(intents) != 0 {
		t.Errorf("TicketIntents = %+v, %v; want none", intents, err)
	}
	if cr := e.pass(eng).Customers[0]; cr.Err != nil || len(cr.Notices) != 0 {
		t.Errorf("next pass = %+v, want nothing to report", cr)
	}
}
