package tickets_test

import (
	"fmt"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// When the budget stops every pass's writes, the customers late in the
// order are not the ones left out every pass: a pass starts with the
// customer the pass before stopped at (Report.ResumeAt, Config.StartWith),
// and reports its customers in the order given. Without it, Acme, first
// and with new alerts every pass, took the whole budget and Globex's alert
// never got its ticket.
func TestEngine_budgetSpentFairlyAcrossCustomers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	globexCo := id(e.psaSim.Autotask().AddCompany("Globex"))
	customers := []tickets.Customer{e.customers()[0], {Source: "sophos", CustomerID: globex, CustomerName: "Globex", CompanyID: globexCo}}
	r := routings[psa.SystemAutotask]
	r.OnReturn = export.OnReturnNew
	g := e.sophos.AddAlert(globex, sophostest.Alert{Severity: "high", Description: "Globex ransomware"})
	for i := range 3 {
		// Two new Acme alerts every pass, and the budget for two writes.
		for j := range 2 {
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Acme alert %d.%d", i, j)})
		}
		e.budget = &budgetLeft{left: 2}
		rep, err := e.engine(r).Pass(t.Context(), customers, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Customers) != 2 || rep.Customers[0].Customer.CustomerID != acme || rep.Customers[1].Customer.CustomerID != globex {
			t.Fatalf("pass %d reported its customers out of order: %+v", i, rep.Customers)
		}
		e.startWith = rep.ResumeAt
	}
	var filed bool
	for _, tk := range e.tickets() {
		if tk.title == "[Sophos] High: Globex ransomware" {
			filed = true
		}
	}
	if !filed {
		t.Errorf("Globex's alert %s has no ticket after 3 passes whose budget Acme's new alerts could take: tickets %+v", g.ID, e.tickets())
	}
}
