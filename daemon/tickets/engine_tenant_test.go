package tickets_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// An alert in Acme's listing that names Globex as its tenant fails Acme's
// pass: filed on Acme's company, Globex's alert (its devices and users)
// would be shown to Acme. Globex's own alert gets its ticket, on Globex's
// company.
func TestEngine_alertOfAnotherTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	other := tickets.Customer{Source: "sophos", CustomerID: globex, CustomerName: "Globex", CompanyID: id(e.psaSim.Autotask().AddCompany("Globex"))}
	eng := e.engine(routings[psa.SystemAutotask])
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Acme threat"})
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Globex threat on GLOBEX-PC1",
		Tenant: &sophostest.TenantRef{ID: globex, Name: "Globex"}})
	e.sophos.AddAlert(globex, sophostest.Alert{Severity: "high", Description: "Globex threat on GLOBEX-PC2"})

	rep, err := eng.Pass(t.Context(), append(e.customers(), other), false)
	if err != nil {
		t.Fatal(err)
	}
	acmeRep, globexRep := rep.Customers[0], rep.Customers[1]
	if acmeRep.Err == nil || !strings.Contains(acmeRep.Err.Error(), "is of tenant "+globex) || acmeRep.Created != 0 {
		t.Errorf("acme = %+v, want it failed on the other tenant's alert", acmeRep)
	}
	if globexRep.Err != nil || globexRep.Created != 1 {
		t.Errorf("globex = %+v, want its ticket created", globexRep)
	}
	for _, tk := range e.psaSim.Autotask().Tickets() {
		if strings.Contains(tk.Description, "GLOBEX-PC1") || id(tk.CompanyID) != other.CompanyID {
			t.Errorf("ticket %d %q on company %d, want only Globex's own alert, on company %s", tk.ID, tk.Title, tk.CompanyID, other.CompanyID)
		}
	}
	if n := len(e.psaSim.Autotask().Tickets()); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
}

// An alert with a field of the wrong type gets its ticket, with what could
// be read of it, and the pass reports it: failing the listing on it would
// stop every ticket of the customer from being created or closed.
func TestEngine_alertNotReadInFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	e.sophos.AddFault(sophostest.Fault{Method: http.MethodGet, Path: "/common/v1/alerts", Status: http.StatusOK, Times: 1,
		Body: `{"items":[{"id":"a5ded91c-6575-435c-a6b4-64b94f9048ff","severity":"high","description":"Threat on PC-7",` +
			`"allowedActions":"acknowledge","raisedAt":"2026-11-15T09:00:00.000"}],"pages":{"total":1,"items":1,"size":1000}}`})
	cr := e.pass(eng).Customers[0]
	if cr.Err != nil || cr.Created != 1 {
		t.Fatalf("pass = %+v, want the alert's ticket created", cr)
	}
	if len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "alert a5ded91c-6575-435c-a6b4-64b94f9048ff cannot be read in full") ||
		!strings.Contains(cr.Notices[0], "allowedActions") {
		t.Errorf("notices = %q, want one naming the alert and what could not be read", cr.Notices)
	}
	if tks := e.tickets(); len(tks) != 1 || !strings.Contains(tks[0].title, "Threat on PC-7") {
		t.Errorf("tickets = %+v, want one for the threat", tks)
	}
}
