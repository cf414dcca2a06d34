package usage

import (
	"net/http"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// serviceReads counts an Autotask pass's reads of services: alone (GET
// /Services/{id}) and in bulk (POST /Services/query).
func (h *sysHarness) serviceReads() (alone, queries int) {
	for _, r := range h.sim.Requests() {
		dir, last := path.Split(r.Path)
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(dir, "/Services/") && last != "entityInformation":
			alone++
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/Services/query"):
			queries++
		}
	}
	return alone, queries
}

// A later Autotask pass of the day that adds lines to contracts reads
// their services in bulk, once per chunk of contracts decided (one query),
// instead of each new line's service alone (GET /Services/{id}, one per
// service): the day's read of the services is more than 10 minutes old,
// and the process's backend (a psa-syncd sync of its own) keeps no price.
func TestEngineAutotask_laterNewLinesReadTheirServicesInBulk(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	if res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5"); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want success", res.Run)
	}
	be, err := backends.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.be = be
	res := h.syncAt(etNow.Add(time.Hour), "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,2")
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2 {
		t.Fatalf("later pass = %+v, want success with 2 lines written", res.Run)
	}
	if alone, queries := h.serviceReads(); alone != 0 || queries != 1 {
		t.Errorf("later pass: %d services read alone and %d Services queries, want 0 and 1 (the new lines' services, in bulk)", alone, queries)
	}
	h.wantUnits(h.contractA, h.svcMDR, 3)
	h.wantUnits(h.contractB, h.svcIntercept, 2)

	// Within 10 minutes of that read, a new line takes its price from it.
	res = h.syncAt(etNow.Add(time.Hour+5*time.Minute), "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,2", "cust-b,Globex,MDR,4")
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 1 {
		t.Fatalf("pass 5 minutes later = %+v, want success with 1 line written", res.Run)
	}
	if alone, queries := h.serviceReads(); alone != 0 || queries != 0 {
		t.Errorf("pass 5 minutes later: %d services read alone and %d Services queries, want none", alone, queries)
	}
	h.wantUnits(h.contractB, h.svcMDR, 4)
}

// A line new on its contract, on a later pass of the day, of a service made
// inactive in Autotask since the day's read fails before anything is
// posted for it, naming the service: the bulk read of the new lines'
// services finds it inactive. The customer's other lines are written.
func TestEngineAutotask_newLineOfAServiceMadeInactiveFailsBeforeThePost(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	if res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,2"); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want success", res.Run)
	}
	h.sim.Autotask().SetServiceActive(mustParse(t, h.svcMDR), false)
	res := h.syncAt(etNow.Add(time.Hour), "cust-a,Acme,CIXA-MSP,6", "cust-b,Globex,CIXA-MSP,2", "cust-b,Globex,MDR,4")
	c := sysFindChangeOf(res.Plan, "cust-b", h.svcMDR)
	if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "is inactive in Autotask") {
		t.Fatalf("cust-b's new MDR line = %+v, want failed: inactive", c)
	}
	for _, r := range h.sim.Requests() {
		if h.isWrite(r) && strings.Contains(string(r.Body), `"serviceID":`+h.svcMDR) {
			t.Errorf("a line of the inactive service was posted: %s %s %s", r.Method, r.Path, r.Body)
		}
	}
	h.wantUnits(h.contractA, h.svcIntercept, 6)
	if _, ok := h.units(h.contractB, h.svcMDR); ok {
		t.Error("contract B holds the inactive service")
	}
}

// A pass whose contracts were read this pass hands its customers' updates
// to the writer while it reads the next contracts: those that add a line of
// a service not read (here the day's read of the services failed) wait for
// one bulk read of the chunk's new lines' services, and no service is read
// alone.
func TestEngineAutotask_newLinesOfAChunkWaitForOneReadOfTheirServices(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	// Each contract has a line: its updates go to the early writer.
	h.sim.Autotask().SetUnits(mustParse(t, h.contractA), mustParse(t, h.svcIntercept), 5, etPeriodDay)
	h.sim.Autotask().SetUnits(mustParse(t, h.contractB), mustParse(t, h.svcMDR), 4, etPeriodDay)
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Services/query", Status: http.StatusBadRequest, Times: 1})
	res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,2", "cust-b,Globex,MDR,4")
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2 {
		t.Fatalf("pass = %+v, want success with 2 lines written", res.Run)
	}
	if alone, queries := h.serviceReads(); alone != 0 || queries != 2 {
		t.Errorf("%d services read alone and %d Services queries, want 0 and 2 (the day's read, refused, and the new lines' read)", alone, queries)
	}
	h.wantUnits(h.contractA, h.svcMDR, 3)
	h.wantUnits(h.contractB, h.svcIntercept, 2)
}

// A plan within the day reads the mapped services again (once a day is for
// the passes): a service made inactive since the morning's read shows in
// the plan operators review before invoicing, on every system. A plan
// right after it reads none again.
func TestEngineSystems_planReadsTheServicesAgainWithinTheDay(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			if res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,2"); res.Run.Result != state.RunSuccess {
				t.Fatalf("first pass = %+v, want success", res.Run)
			}
			setActive := func(active bool) {
				switch sys {
				case psa.SystemAutotask:
					h.sim.Autotask().SetServiceActive(mustParse(t, h.svcIntercept), active)
				case psa.SystemConnectWise:
					h.sim.ConnectWise().SetCatalogItemInactive(mustParse(t, h.svcIntercept), !active)
				default:
					h.sim.KaseyaBMS().SetServiceActive(int(mustParse(t, h.svcIntercept)), active)
				}
			}
			setActive(false)
			h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,3")
			plan := func(at time.Time) *Plan {
				t.Helper()
				e := h.engineAt(at, &h.terms)
				p, err := e.Plan(t.Context(), h.doc, PassOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			p := plan(etNow.Add(time.Hour))
			if c := sysFindChangeOf(p, "cust-b", h.svcIntercept); c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "is inactive in") {
				t.Errorf("plan: cust-b's line = %+v, want failed: inactive", c)
			}
			if got := len(p.Unmapped.InactiveServices); got != 2 {
				t.Errorf("plan: %d lines on inactive services, want 2", got)
			}
			// Active again: the next plan reads it (an inactive service is
			// read at every pass), and one a minute later reads none.
			setActive(true)
			if c := sysFindChangeOf(plan(etNow.Add(time.Hour+time.Minute)), "cust-b", h.svcIntercept); c == nil || c.Action != ActionUpdate {
				t.Errorf("plan once the service is active again: cust-b's line = %+v, want an update", c)
			}
			h.sim.ResetRequests()
			plan(etNow.Add(time.Hour + 2*time.Minute))
			for _, r := range h.sim.Requests() {
				if p := strings.ToLower(r.Path); strings.Contains(p, "/services") && !strings.Contains(p, "contractservice") && !strings.Contains(p, "recurringservices") || strings.Contains(p, "/catalog") {
					t.Errorf("plan a minute later read the services again: %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

// A mapped service deleted in the PSA (absent from a bulk read that
// succeeded, and not found when read alone) is gone: its unchanged lines
// are listed with the inactive services' lines, flagged gone, and its
// changed lines fail before anything is written, saying it was not found.
// A bulk answer that leaves services out while they exist (a partial
// answer) marks none gone.
func TestEngineSystems_deletedServiceIsGone(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			if res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2"); res.Run.Result != state.RunSuccess {
				t.Fatalf("first pass = %+v, want success", res.Run)
			}
			h.deleteService(h.svcMDR)
			nextDay := etNow.Add(contractCheckTTL + time.Hour)
			res := h.syncAt(nextDay, "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,4")
			want := []InactiveServiceLine{
				{CustomerID: "cust-a", CustomerName: "Acme", ContractID: h.contractA, ServiceID: h.svcMDR, ServiceName: "Sophos MDR", Quantity: 3, Gone: true},
				{CustomerID: "cust-b", CustomerName: "Globex", ContractID: h.contractB, ServiceID: h.svcMDR, ServiceName: "Sophos MDR", Quantity: 2, Failed: true, Gone: true},
			}
			if got := res.Plan.Unmapped.InactiveServices; !slices.Equal(got, want) {
				t.Errorf("lines on inactive services = %+v, want %+v", got, want)
			}
			if c := sysFindChangeOf(res.Plan, "cust-b", h.svcMDR); c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "was not found in") {
				t.Errorf("cust-b's MDR line = %+v, want failed: not found", c)
			}
			h.wantUnits(h.contractB, h.svcMDR, 2)
		})
	}
}

// A bulk read of the services whose answer leaves the mapped services out
// while they exist (here an empty page) marks none gone: each is read
// alone, found, and its lines are written.
func TestEngineAutotask_partialServiceReadMarksNoneGone(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	if res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,MDR,2"); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want success", res.Run)
	}
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Services/query", Status: http.StatusOK, Times: 1,
		Body: `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`})
	res := h.syncAt(etNow.Add(contractCheckTTL+time.Hour), "cust-a,Acme,CIXA-MSP,6", "cust-b,Globex,MDR,3")
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2 || len(res.Plan.Unmapped.InactiveServices) != 0 {
		t.Fatalf("pass after a partial read = %+v, inactive %+v; want success with 2 lines written and none listed", res.Run, res.Plan.Unmapped.InactiveServices)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 6)
	h.wantUnits(h.contractB, h.svcMDR, 3)
}

// catalogReads counts a ConnectWise pass's reads of catalog items: alone
// (GET /procurement/catalog/{id}) and in bulk (GET /procurement/catalog
// with conditions).
func (h *sysHarness) catalogReads() (alone, lists int) {
	for _, r := range h.sim.Requests() {
		if r.Method != http.MethodGet {
			continue
		}
		dir, last := path.Split(r.Path)
		switch {
		case strings.HasSuffix(dir, "/procurement/catalog/") && last != "count":
			alone++
		case strings.HasSuffix(r.Path, "/procurement/catalog"):
			lists++
		}
	}
	return alone, lists
}

// A later ConnectWise pass of the day that adds products to agreements
// reads their catalog items in bulk, once per chunk of agreements decided
// (one request per 100 items), instead of each new addition's item alone
// (GET /procurement/catalog/{id}, one per item): the additions are posted
// with the catalog's price and cost from that read.
func TestEngineConnectWise_laterNewLinesReadTheirCatalogItemsInBulk(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	if res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,MDR,1"); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want success", res.Run)
	}
	be, err := backends.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.be = be
	h.sim.ResetRequests()
	res := h.syncAt(etNow.Add(time.Hour), "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,1", "cust-b,Globex,CIXA-MSP,2")
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2 {
		t.Fatalf("later pass = %+v, want success with 2 lines written", res.Run)
	}
	if alone, lists := h.catalogReads(); alone != 0 || lists != 1 {
		t.Errorf("later pass: %d catalog items read alone and %d catalog lists, want 0 and 1 (the new additions' items, in bulk)", alone, lists)
	}
	h.wantUnits(h.contractA, h.svcMDR, 3)
	h.wantUnits(h.contractB, h.svcIntercept, 2)
	prices := map[string]string{h.svcMDR: `"unitPrice":9`, h.svcIntercept: `"unitPrice":4.5`}
	posted := 0
	for _, r := range h.sim.Requests() {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.Path, "/additions") {
			continue
		}
		posted++
		for id, price := range prices {
			if strings.Contains(string(r.Body), `"product":{"id":`+id+`}`) && !strings.Contains(string(r.Body), price) {
				t.Errorf("addition of item %s posted without the catalog price (%s): %s", id, price, r.Body)
			}
		}
	}
	if posted != 2 {
		t.Errorf("%d additions posted, want 2", posted)
	}
}

// A later ConnectWise pass adding a product made inactive in the catalog
// since the day's read fails that addition before anything is posted for
// it; the customer's other lines are written.
func TestEngineConnectWise_newLineOfAnItemMadeInactiveFailsBeforeThePost(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	if res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,2"); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want success", res.Run)
	}
	h.sim.ConnectWise().SetCatalogItemInactive(mustParse(t, h.svcMDR), true)
	res := h.syncAt(etNow.Add(time.Hour), "cust-a,Acme,CIXA-MSP,6", "cust-b,Globex,CIXA-MSP,2", "cust-b,Globex,MDR,4")
	c := sysFindChangeOf(res.Plan, "cust-b", h.svcMDR)
	if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "is inactive in ConnectWise") {
		t.Fatalf("cust-b's new MDR line = %+v, want failed: inactive", c)
	}
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/additions") && strings.Contains(string(r.Body), `"product":{"id":`+h.svcMDR+`}`) {
			t.Errorf("an addition of the inactive item was posted: %s %s", r.Path, r.Body)
		}
	}
	h.wantUnits(h.contractA, h.svcIntercept, 6)
	if _, ok := h.units(h.contractB, h.svcMDR); ok {
		t.Error("agreement B holds the inactive item")
	}
}

// On ConnectWise too, the additions of a pass whose day's read of the
// catalog items failed wait for one bulk read of the new additions'
// items: no item is read alone.
func TestEngineConnectWise_newLinesOfAChunkWaitForOneReadOfTheirItems(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcIntercept), Quantity: 5})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractB), ProductID: mustParse(t, h.svcMDR), Quantity: 4})
	h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/v4_6_release/apis/3.0/procurement/catalog", Status: http.StatusBadRequest, Times: 1})
	res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,2", "cust-b,Globex,MDR,4")
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2 {
		t.Fatalf("pass = %+v, want success with 2 lines written", res.Run)
	}
	if alone, lists := h.catalogReads(); alone != 0 || lists != 2 {
		t.Errorf("%d catalog items read alone and %d catalog lists, want 0 and 2 (the day's read, refused, and the new additions' read)", alone, lists)
	}
	h.wantUnits(h.contractA, h.svcMDR, 3)
	h.wantUnits(h.contractB, h.svcIntercept, 2)
}

// serviceCatalogReads counts the requests of a pass that read services
// (catalog items), in bulk or alone, on the harness's PSA.
func (h *sysHarness) serviceCatalogReads() int {
	n := 0
	for _, r := range h.sim.Requests() {
		p := strings.ToLower(r.Path)
		switch h.system {
		case psa.SystemAutotask:
			if strings.Contains(p, "/v1.0/services/") && !strings.Contains(p, "entityinformation") {
				n++
			}
		case psa.SystemConnectWise:
			if strings.Contains(p, "/procurement/catalog") {
				n++
			}
		default:
			if strings.Contains(p, "/admin/finance/services") {
				n++
			}
		}
	}
	return n
}

// A mapped service found deleted in the PSA is not read again at every
// pass of the day (nor by a new process, which restores it from the state
// database): its lines go on failing and being listed, flagged gone. A
// change of the product mappings that name it reads it again at the next
// pass, as does the next day.
func TestEngineSystems_goneServiceIsReadOnceADay(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			if res := h.syncAt(etNow, "cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,2"); res.Run.Result != state.RunSuccess {
				t.Fatalf("first pass = %+v, want success", res.Run)
			}
			h.deleteService(h.svcMDR)
			day := etNow.Add(contractCheckTTL + time.Hour)
			rows := []string{"cust-a,Acme,CIXA-MSP,5", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,4"}
			pass := func(name string, at time.Time, wantReads bool) {
				t.Helper()
				h.sim.ResetRequests()
				res := h.syncAt(at, rows...)
				gone := 0
				for _, l := range res.Plan.Unmapped.InactiveServices {
					if l.Gone && l.ServiceID == h.svcMDR {
						gone++
					}
				}
				if gone != 2 {
					t.Errorf("%s: lines on inactive services = %+v, want the 2 MDR lines, gone", name, res.Plan.Unmapped.InactiveServices)
				}
				if c := sysFindChangeOf(res.Plan, "cust-b", h.svcMDR); c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "was not found in") {
					t.Errorf("%s: cust-b's MDR line = %+v, want failed: not found", name, c)
				}
				if n := h.serviceCatalogReads(); (n > 0) != wantReads {
					t.Errorf("%s: %d requests read services, want reads %v", name, n, wantReads)
				}
			}
			pass("the pass that finds it gone", day, true)
			pass("an hour later", day.Add(time.Hour), false)
			// A new process restores the state from the database.
			h.terms = ContractTerms{}
			be, err := backends.New(h.cfg)
			if err != nil {
				t.Fatal(err)
			}
			h.be = be
			pass("a new process", day.Add(2*time.Hour), false)
			h.doc.PutProduct(export.ProductMapping{Source: "file", Product: "MDR-SRV", ServiceID: h.svcMDR, ServiceName: "Sophos MDR", SyncEnabled: true})
			pass("once its mappings changed", day.Add(3*time.Hour), true)
			pass("an hour after that", day.Add(4*time.Hour), false)
			pass("the next day", day.Add(contractCheckTTL+time.Hour), true)
			h.wantUnits(h.contractB, h.svcMDR, 2)
		})
	}
}
