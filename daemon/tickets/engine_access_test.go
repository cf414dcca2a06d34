package tickets_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A create the PSA answers 403 for one customer (the API user's security
// role or permissions leave out its company, queue, board or location)
// fails that customer only, with an error that names the company and what
// the API user may lack; the next customer's ticket is filed. A 401, or a
// 403 that speaks of the credentials, concerns the whole PSA: no create is
// sent for the customers after it. So does a 200 with a page that is not
// the PSA's API (a proxy's sign-in page): every create would get it.
func TestEngine_forbiddenCreateFailsOneCustomer(t *testing.T) {
	t.Parallel()
	type answer struct {
		status int
		body   string
	}
	for _, tc := range []struct {
		system    psa.System
		forbidden answer
		// whole is a 403 that names the API user as a whole.
		whole answer
	}{
		{psa.SystemAutotask, answer{http.StatusForbidden, `{"errors":["The logged in Resource does not have the adequate permissions to create this entity."]}`},
			answer{http.StatusForbidden, `{"errors":["The API user is inactive."]}`}},
		{psa.SystemConnectWise, answer{http.StatusForbidden, `{"code":"Forbidden","message":"You do not have access to this company."}`},
			answer{http.StatusForbidden, `{"code":"ConnectWiseApi","message":"UserNotAuthenticated"}`}},
		{psa.SystemKaseyaBMS, answer{http.StatusForbidden, `{"Message":"Access to this account is denied."}`},
			answer{http.StatusForbidden, `{"Message":"The access token is not valid for this tenant."}`}},
	} {
		t.Run(string(tc.system), func(t *testing.T) {
			t.Parallel()
			for _, step := range []struct {
				name    string
				answer  answer
				perUser bool
			}{
				{"403", tc.forbidden, true},
				{"403 of the user", tc.whole, false},
				{"401", answer{http.StatusUnauthorized, ""}, false},
				{"sign-in page", answer{http.StatusOK, psatest.SignInPage}, false},
			} {
				e := newEnv(t, tc.system)
				other := tickets.Customer{Source: "sophos", CustomerID: globex, CustomerName: "Globex"}
				var path string
				switch tc.system {
				case psa.SystemAutotask:
					other.CompanyID = id(e.psaSim.Autotask().AddCompany("Globex"))
					path = "/ATServicesRest/V1.0/Tickets"
				case psa.SystemConnectWise:
					other.CompanyID = id(e.psaSim.ConnectWise().AddCompany("Globex"))
					path = strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL()) + "service/tickets"
				case psa.SystemKaseyaBMS:
					other.CompanyID = id(int64(e.psaSim.KaseyaBMS().AddAccount("Globex")))
					path = "/v2/servicedesk/tickets"
				}
				eng := e.engine(routings[tc.system])
				a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Acme threat"})
				e.sophos.AddAlert(globex, sophostest.Alert{Severity: "high", Description: "Globex threat"})
				e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: path, BodyContains: "sc:" + a.ID, Status: step.answer.status, Body: step.answer.body})

				rep, err := eng.Pass(t.Context(), append(e.customers(), other), false)
				if err != nil {
					t.Fatal(err)
				}
				acmeRep, globexRep := rep.Customers[0], rep.Customers[1]
				if acmeRep.Err == nil || acmeRep.Created != 0 {
					t.Errorf("%s: acme = %+v, want its create failed", step.name, acmeRep)
				}
				if !step.perUser {
					if globexRep.Created != 0 || globexRep.Err == nil || len(e.tickets()) != 0 {
						t.Errorf("%s: globex = %+v, %d tickets; want no create sent after the PSA refused the API user", step.name, globexRep, len(e.tickets()))
					}
					continue
				}
				if msg := acmeRep.Err.Error(); !strings.Contains(msg, "company "+e.company) || !strings.Contains(msg, "not its credentials") {
					t.Errorf("%s: acme's error = %v, want it to name company %s and say the credentials were taken", step.name, msg, e.company)
				}
				if globexRep.Created != 1 || globexRep.Err != nil || len(e.tickets()) != 1 {
					t.Errorf("%s: globex = %+v, %d tickets; want its ticket filed", step.name, globexRep, len(e.tickets()))
				}

				// The permission granted, the next pass files Acme's ticket,
				// once.
				e.psaSim.ClearFaults()
				rep, err = eng.Pass(t.Context(), append(e.customers(), other), false)
				if err != nil {
					t.Fatal(err)
				}
				if tot := rep.Totals(); tot.Created != 1 || len(e.tickets()) != 2 || tot.Failed != 0 {
					t.Errorf("%s: pass after the permission was granted = %+v, %d tickets; want Acme's ticket filed", step.name, tot, len(e.tickets()))
				}
			}
		})
	}
}

// Autotask often answers a missing permission with a 500 rather than a
// 403. The create was not applied: it is refused (sent again a day later)
// and fails its customer only, with an error that says what the API user
// may lack, not that the credentials were refused.
func TestEngine_autotaskPermission500FailsOneCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	other := tickets.Customer{Source: "sophos", CustomerID: globex, CustomerName: "Globex",
		CompanyID: id(e.psaSim.Autotask().AddCompany("Globex"))}
	eng := e.engine(routings[psa.SystemAutotask])
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Acme threat"})
	e.sophos.AddAlert(globex, sophostest.Alert{Severity: "high", Description: "Globex threat"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", BodyContains: "sc:" + a.ID,
		Status: http.StatusInternalServerError, Body: `{"errors":["The logged in Resource does not have the adequate permissions to create this entity."]}`})

	rep, err := eng.Pass(t.Context(), append(e.customers(), other), false)
	if err != nil {
		t.Fatal(err)
	}
	acmeRep, globexRep := rep.Customers[0], rep.Customers[1]
	if acmeRep.Err == nil || acmeRep.Created != 0 || acmeRep.Failed != 1 {
		t.Fatalf("acme = %+v, want its create refused", acmeRep)
	}
	if msg := acmeRep.Err.Error(); !strings.Contains(msg, "company "+e.company) || !strings.Contains(msg, "security level") {
		t.Errorf("acme's error = %v, want it to name company %s and the API user's security level", msg, e.company)
	}
	if globexRep.Created != 1 || globexRep.Err != nil || len(e.tickets()) != 1 {
		t.Errorf("globex = %+v, %d tickets; want its ticket filed", globexRep, len(e.tickets()))
	}
}

// A read the create needs before it is sent (here the status picklist,
// read for its default value) that Autotask answers with its permission
// 500 fails the customer with the same hint as a refused create: the API
// user lacks a permission, which the operator grants. Nothing was sent:
// once it is granted, the ticket is filed, once.
func TestEngine_autotaskPermission500OnReadBeforeCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Acme threat"})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/ATServicesRest/V1.0/Tickets/entityInformation/fields", Times: 1,
		Status: http.StatusInternalServerError, Body: `{"errors":["The logged in Resource does not have the adequate permissions to view this entity."]}`})

	rep := e.pass(eng)
	acmeRep := rep.Customers[0]
	if acmeRep.Err == nil || acmeRep.Created != 0 || len(e.tickets()) != 0 {
		t.Fatalf("acme = %+v, %d tickets; want its create failed", acmeRep, len(e.tickets()))
	}
	if msg := acmeRep.Err.Error(); !strings.Contains(msg, "company "+e.company) || !strings.Contains(msg, "security level") ||
		!strings.Contains(msg, "adequate permissions") {
		t.Errorf("acme's error = %v, want Autotask's message, company %s and the API user's security level", msg, e.company)
	}

	e.now = e.now.Add(time.Hour)
	rep = e.pass(eng)
	if tot := rep.Totals(); tot.Created != 1 || tot.Err != nil || len(e.tickets()) != 1 {
		t.Errorf("pass after the permission was granted = %+v, %d tickets; want the ticket filed", rep.Customers, len(e.tickets()))
	}
}

// A create the PSA refuses outright (a 403 for what it names) made no
// ticket: the next pass sends it again at once, without waiting for the
// settle time as for a create whose answer was lost, on every PSA.
func TestEngine_refusedCreateDoesNotWaitTheSettleTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		system psa.System
		body   string
	}{
		{psa.SystemAutotask, `{"errors":["The logged in Resource does not have the adequate permissions to create this entity."]}`},
		{psa.SystemConnectWise, `{"code":"Forbidden","message":"You do not have access to this company."}`},
		{psa.SystemKaseyaBMS, `{"Message":"Access to this account is denied."}`},
	} {
		t.Run(string(tc.system), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.system)
			var path string
			switch tc.system {
			case psa.SystemAutotask:
				path = "/ATServicesRest/V1.0/Tickets"
			case psa.SystemConnectWise:
				path = strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL()) + "service/tickets"
			case psa.SystemKaseyaBMS:
				path = "/v2/servicedesk/tickets"
			}
			e.settleTime = time.Hour
			eng := e.engine(routings[tc.system])
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Acme threat"})
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusForbidden, Body: tc.body, Times: 1})
			if cr := e.pass(eng).Customers[0]; cr.Err == nil || cr.Created != 0 {
				t.Fatalf("pass whose create was refused = %+v, want it failed", cr)
			}
			e.now = e.now.Add(5 * time.Minute)
			if cr := e.pass(eng).Customers[0]; cr.Created != 1 || cr.Err != nil || len(e.tickets()) != 1 {
				t.Errorf("next pass, 5m later with a settle time of 1h = %+v, %d tickets; want the ticket filed", cr, len(e.tickets()))
			}
		})
	}
}
