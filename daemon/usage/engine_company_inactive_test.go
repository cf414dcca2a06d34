package usage

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A Kaseya BMS account deactivated while mapped (the customer left): at
// the next read of its contracts' records (a day later) its customer
// fails, nothing more is posted to its contract, and the hint names the
// Terraform change; the other customers are synced. Before, the passes
// went on posting its usage. Whether the records are read one by one (a
// few customers) or in bulk (many).
func TestEngineKaseyaBMS_deactivatedAccountIsNotBilled(t *testing.T) {
	t.Parallel()
	for _, others := range []int{0, 30} {
		t.Run(fmt.Sprintf("%d other customers", others), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS)
			a, _ := h.doc.Customer("file", "cust-a")
			b, _ := h.doc.Customer("file", "cust-b")
			customers := []usageCustomer{{a.CustomerID, a.CustomerName}, {b.CustomerID, b.CustomerName}}
			for i := range others {
				company, contract := addSysContract(h, i)
				cm := a
				cm.CustomerID, cm.CustomerName, cm.CompanyID, cm.ContractID = fmt.Sprintf("cust-%04d", i), fmt.Sprintf("Customer %04d", i), company, contract
				h.doc.PutCustomer(cm)
				customers = append(customers, usageCustomer{cm.CustomerID, cm.CustomerName})
			}
			pass := func(at time.Time, units int) {
				t.Helper()
				rows := make([]string, 0, len(customers))
				for _, c := range customers {
					rows = append(rows, c.id+","+c.name+",CIXA-MSP,"+strconv.Itoa(units))
				}
				h.writeUsage(rows...)
				e := h.engineAt(at, &ContractTerms{})
				if _, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			pass(etNow, 5)
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Fatalf("first pass: cust-a = %s (%q), want a success", cs.Result, cs.Error)
			}
			h.sim.KaseyaBMS().SetAccountActive(int(mustParse(t, a.CompanyID)), false)
			pass(etNow.Add(contractCheckTTL+time.Hour), 6)
			cs := h.status("cust-a")
			want := fmt.Sprintf("contract %s belongs to company %s, which is inactive in kaseya_bms: nothing was written to it", a.ContractID, a.CompanyID)
			if cs.Result != state.CustomerFailed || cs.Error != want || !strings.Contains(cs.Hint, "usage_sync = false") {
				t.Errorf("cust-a = %s (%q, hint %q), want failed with %q and a hint naming usage_sync", cs.Result, cs.Error, cs.Hint, want)
			}
			if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
				t.Errorf("cust-b = %s (%q), want a success", cs.Result, cs.Error)
			}
			h.wantUnits(a.ContractID, h.svcIntercept, 5)
			h.wantUnits(b.ContractID, h.svcIntercept, 6)
		})
	}
}

type usageCustomer struct{ id, name string }

// An Autotask company made inactive, or a ConnectWise company deleted (as
// a merge leaves it, its status still Active), while mapped: at the next
// day's read of the contracts' records, which reads their companies too
// (one request), its customer fails, nothing more is written to its
// contract, and the hint names the Terraform change; the other customer
// is synced. A pass within the day reads no company. Before, the passes
// went on billing the departed customer.
func TestEngineSystems_deactivatedCompanyIsNotBilled(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			a, _ := h.doc.Customer("file", "cust-a")
			b, _ := h.doc.Customer("file", "cust-b")
			companyRead := func(r psatest.Request) bool {
				p := strings.ToLower(r.Path)
				if sys == psa.SystemAutotask {
					return strings.Contains(p, "/companies/query")
				}
				return r.Method == http.MethodGet && strings.HasSuffix(p, "/company/companies")
			}
			pass := func(at time.Time, units int) int {
				t.Helper()
				h.writeUsage("cust-a,Acme,CIXA-MSP,"+strconv.Itoa(units), "cust-b,Globex,CIXA-MSP,"+strconv.Itoa(units))
				h.sim.ResetRequests()
				e := h.engineAt(at, &ContractTerms{})
				if _, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, r := range h.sim.Requests() {
					if companyRead(r) {
						n++
					}
				}
				return n
			}
			if n := pass(etNow, 5); n != 1 {
				t.Errorf("the day's first pass read companies %d times, want once", n)
			}
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Fatalf("first pass: cust-a = %s (%q), want a success", cs.Result, cs.Error)
			}
			if sys == psa.SystemAutotask {
				h.sim.Autotask().SetCompanyActive(mustParse(t, a.CompanyID), false)
			} else {
				h.sim.ConnectWise().SetCompanyDeleted(mustParse(t, a.CompanyID), true)
			}
			if n := pass(etNow.Add(time.Hour), 6); n != 0 {
				t.Errorf("a pass within the day read companies %d times, want none", n)
			}
			h.wantUnits(a.ContractID, h.svcIntercept, 6)
			if n := pass(etNow.Add(contractCheckTTL+time.Hour), 7); n != 1 {
				t.Errorf("the next day's first pass read companies %d times, want once", n)
			}
			cs := h.status("cust-a")
			want := fmt.Sprintf("contract %s belongs to company %s, which is inactive in %s: nothing was written to it", a.ContractID, a.CompanyID, sys)
			if cs.Result != state.CustomerFailed || cs.Error != want || !strings.Contains(cs.Hint, "usage_sync = false") {
				t.Errorf("cust-a = %s (%q, hint %q), want failed with %q and a hint naming usage_sync", cs.Result, cs.Error, cs.Hint, want)
			}
			if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
				t.Errorf("cust-b = %s (%q), want a success", cs.Result, cs.Error)
			}
			h.wantUnits(a.ContractID, h.svcIntercept, 6)
			h.wantUnits(b.ContractID, h.svcIntercept, 7)
			// A pass an hour later: the customer still fails (its record
			// is read again, company too, as one that fails a check is).
			pass(etNow.Add(contractCheckTTL+2*time.Hour), 8)
			if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || cs.Error != want {
				t.Errorf("an hour later: cust-a = %s (%q), want failed with %q", cs.Result, cs.Error, want)
			}
			h.wantUnits(a.ContractID, h.svcIntercept, 6)
		})
	}
}

// A Kaseya BMS account deactivated within the day, after the day's read
// of the contracts' records: a pass that writes to enough contracts that
// reading them again costs at most a tenth of its posts reads them again
// and fails the customer, nothing posted to its contract; a pass that
// writes to a few goes by the day's records (three requests per contract
// would triple it).
func TestEngineKaseyaBMS_contractsWrittenToAreReadAgainWhenCheap(t *testing.T) {
	t.Parallel()
	for _, others := range []int{0, 40} {
		t.Run(fmt.Sprintf("%d other customers", others), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS)
			a, _ := h.doc.Customer("file", "cust-a")
			customers := []usageCustomer{{a.CustomerID, a.CustomerName}}
			for i := range others {
				company, contract := addSysContract(h, i)
				cm := a
				cm.CustomerID, cm.CustomerName, cm.CompanyID, cm.ContractID = fmt.Sprintf("cust-%04d", i), fmt.Sprintf("Customer %04d", i), company, contract
				h.doc.PutCustomer(cm)
				customers = append(customers, usageCustomer{cm.CustomerID, cm.CustomerName})
			}
			pass := func(at time.Time, units int) {
				t.Helper()
				rows := make([]string, 0, 2*len(customers))
				for _, c := range customers {
					rows = append(rows, c.id+","+c.name+",CIXA-MSP,"+strconv.Itoa(units), c.id+","+c.name+",MDR,"+strconv.Itoa(units))
				}
				h.writeUsage(rows...)
				e := h.engineAt(at, &h.terms)
				if _, err := e.Sync(t.Context(), h.doc, PassOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			pass(etNow, 5)
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Fatalf("first pass: cust-a = %s (%q), want a success", cs.Result, cs.Error)
			}
			h.sim.KaseyaBMS().SetAccountActive(int(mustParse(t, a.CompanyID)), false)
			pass(etNow.Add(time.Hour), 6)
			cs := h.status("cust-a")
			if others == 0 {
				if cs.Result != state.CustomerSucceeded {
					t.Errorf("cust-a alone = %s (%q), want a success (the day's records stand)", cs.Result, cs.Error)
				}
				return
			}
			want := fmt.Sprintf("contract %s belongs to company %s, which is inactive in kaseya_bms: nothing was written to it", a.ContractID, a.CompanyID)
			if cs.Result != state.CustomerFailed || cs.Error != want {
				t.Errorf("cust-a = %s (%q), want failed with %q", cs.Result, cs.Error, want)
			}
			h.wantUnits(a.ContractID, h.svcIntercept, 5)
			if cs := h.status("cust-0000"); cs.Result != state.CustomerSucceeded {
				t.Errorf("cust-0000 = %s (%q), want a success", cs.Result, cs.Error)
			}
		})
	}
}
