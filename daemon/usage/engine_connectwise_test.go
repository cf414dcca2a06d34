package usage

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// cwRequests returns the method and path of every logged request to the
// additions of agreement id, e.g. "PATCH .../finance/agreements/800/additions/3500".
func cwRequests(h *sysHarness, agreement string) []psatest.Request {
	var out []psatest.Request
	for _, r := range h.sim.Requests() {
		if strings.Contains(strings.ToLower(r.Path), "/finance/agreements/"+agreement+"/additions") {
			out = append(out, r)
		}
	}
	return out
}

func TestEngineConnectWise_patchesExistingAndCreatesMissingAdditions(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	existing := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcIntercept), Quantity: 30})
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,5")

	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2 {
		t.Fatalf("run = %+v, want success with 2 updated", res.Run)
	}
	var patches, posts []string
	for _, r := range cwRequests(h, h.contractA) {
		switch r.Method {
		case http.MethodPatch:
			patches = append(patches, r.Path+" "+string(r.Body))
		case http.MethodPost:
			posts = append(posts, r.Path)
		}
	}
	if len(patches) != 1 || !strings.HasSuffix(strings.Fields(patches[0])[0], "/additions/"+etID(existing)) ||
		!strings.Contains(patches[0], `"op":"replace"`) || !strings.Contains(patches[0], `"path":"quantity"`) || !strings.Contains(patches[0], `"value":42`) {
		t.Errorf("PATCHes = %q, want one replace of quantity 42 on addition %d", patches, existing)
	}
	if len(posts) != 1 {
		t.Errorf("POSTs = %q, want one (the missing MDR addition)", posts)
	}
	adds := cw.Additions(mustParse(t, h.contractA))
	if len(adds) != 2 {
		t.Fatalf("additions = %+v, want the patched one and the created one", adds)
	}
	if a, _ := cw.Addition(existing); a.Quantity != 42 {
		t.Errorf("existing addition = %+v, want quantity 42", a)
	}
	created := adds[1]
	if created.ProductID != mustParse(t, h.svcMDR) || created.Quantity != 5 || created.BillCustomer != "Billable" || !created.EffectiveDate.Equal(etPeriodDay) {
		t.Errorf("created addition = %+v, want 5 of MDR, billable, effective %s", created, etPeriodDay)
	}
	ledger, _ := h.db.Ledger(0)
	if len(ledger) != 2 {
		t.Errorf("ledger = %+v, want 2 entries", ledger)
	}
	for _, le := range ledger {
		if le.ServiceID == h.svcIntercept && (le.Before != 30 || le.After != 42) {
			t.Errorf("ledger entry %+v, want 30 -> 42", le)
		}
	}
}

func TestEngineConnectWise_ambiguousAdditionsFailOnlyThatCustomer(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	agreementA, product := mustParse(t, h.contractA), mustParse(t, h.svcIntercept)
	first := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreementA, ProductID: product, Quantity: 3})
	second := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreementA, ProductID: product, Quantity: 5})
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,10")

	res := h.sync(PassOptions{})
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}
	for _, r := range cwRequests(h, h.contractA) {
		if r.Method != http.MethodGet {
			t.Errorf("wrote to the ambiguous agreement: %s %s", r.Method, r.Path)
		}
	}
	for _, id := range []int64{first, second} {
		if a, _ := cw.Addition(id); a.Quantity != 3 && a.Quantity != 5 {
			t.Errorf("addition %d changed: %+v", id, a)
		}
	}
	cs := h.status("cust-a")
	item, _ := cw.CatalogItem(product)
	wantHint := "more than one active line for product " + h.svcIntercept + " (" + item.Identifier + ") on agreement " + h.contractA +
		" (addition " + etID(first) + " (quantity 3), addition " + etID(second) + " (quantity 5)): cancel all but one in ConnectWise, then run the pass again; psa-syncd never guesses which one to change"
	if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "is ambiguous") {
		t.Errorf("status of cust-a = %+v, want failed as ambiguous", cs)
	}
	if cs.Hint != wantHint {
		t.Errorf("hint = %q\nwant %q", cs.Hint, wantHint)
	}
	if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status of cust-b = %+v, want succeeded", cs)
	}
	for _, c := range res.Plan.Changes {
		if c.CustomerID == "cust-a" && c.Action != ActionFailed {
			t.Errorf("change %+v, want failed", c)
		}
	}
}

// TestEngineConnectWise_unmanagedAdditionProblemsDoNotFailTheCustomer
// checks that an addition of a product psa-syncd does not sync (labour
// billed in half hours, or two additions of one such item) on the
// customer's agreement does not stop the customer's mapped lines, as it
// did when every addition of the agreement was checked.
func TestEngineConnectWise_unmanagedAdditionProblemsDoNotFailTheCustomer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		add  func(cw *psatest.ConnectWise, agreement, labour int64)
	}{
		{"fractional", func(cw *psatest.ConnectWise, agreement, labour int64) {
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: labour, Quantity: 1.5})
		}},
		{"duplicate", func(cw *psatest.ConnectWise, agreement, labour int64) {
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: labour, Quantity: 1})
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: labour, Quantity: 2})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemConnectWise)
			cw := h.sim.ConnectWise()
			agreementA := mustParse(t, h.contractA)
			labour := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Onsite labour", Price: 100})
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreementA, ProductID: mustParse(t, h.svcIntercept), Quantity: 30})
			tc.add(cw, agreementA, labour)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42")
			before := cw.Additions(agreementA)

			res := h.sync(PassOptions{})
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
				t.Errorf("cust-a = %s: %s (run %s)", cs.Result, cs.Error, res.Run.Result)
			}
			if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || !c.CurrentKnown || c.Current != 30 {
				t.Errorf("change = %+v, want one from the 30 units read", c)
			}
			after := cw.Additions(agreementA)
			if len(after) != len(before) {
				t.Fatalf("additions = %+v, want the %d there were", after, len(before))
			}
			for i, a := range after {
				if a.ProductID == labour && a.Quantity != before[i].Quantity {
					t.Errorf("labour addition changed: %+v, was %+v", a, before[i])
				}
			}
		})
	}
}

func TestEngineConnectWise_cancelledAgreementMarksTheMappingStale(t *testing.T) {
	t.Parallel()
	for _, status := range []string{"Cancelled", "Expired"} {
		t.Run(status, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemConnectWise)
			cw := h.sim.ConnectWise()
			add := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcIntercept), Quantity: 30})
			cw.SetAgreementStatus(mustParse(t, h.contractA), status)
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")

			res := h.sync(PassOptions{})
			h.wantUnits(h.contractB, h.svcIntercept, 10)
			if a, _ := cw.Addition(add); a.Quantity != 30 {
				t.Errorf("addition on the %s agreement = %+v, want it untouched", status, a)
			}
			for _, r := range cwRequests(h, h.contractA) {
				if r.Method != http.MethodGet {
					t.Errorf("wrote to the %s agreement: %s %s", status, r.Method, r.Path)
				}
			}
			cs := h.status("cust-a")
			wantHint := "contract " + h.contractA + " can no longer be billed on: map the customer to an active agreement in Terraform (psa_customer_mapping.contract_id) and apply"
			if cs.Result != state.CustomerFailed || cs.Hint != wantHint || !strings.Contains(cs.Error, "customer mapping is stale") ||
				!strings.Contains(cs.Error, strings.ToLower(status)) {
				t.Errorf("status of cust-a = %+v\nwant failed, stale, with hint %q", cs, wantHint)
			}
			if res.Run.Result != state.RunPartial {
				t.Errorf("run = %+v, want partial", res.Run)
			}
		})
	}
}

func TestEngineConnectWise_readsRetried(t *testing.T) {
	t.Parallel()
	additions := "/" + psatest.DefaultConnectWiseCodebase + "apis/3.0/finance/agreements/*"
	h := newSysHarness(t, psa.SystemConnectWise,
		psatest.WithFault(psatest.Fault{Method: http.MethodGet, Path: additions, Status: http.StatusTooManyRequests, Times: 1}),
		psatest.WithFault(psatest.Fault{Method: http.MethodGet, Path: additions, Status: http.StatusServiceUnavailable, Times: 1}),
	)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	if res.Run.Result != state.RunSuccess {
		t.Errorf("run = %+v, want success after retries", res.Run)
	}
	statuses := map[int]int{}
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodGet && strings.Contains(strings.ToLower(r.Path), "/finance/agreements") {
			statuses[r.Status]++
		}
	}
	if statuses[429] != 1 || statuses[503] != 1 || statuses[200] < 1 {
		t.Errorf("agreement reads answered %v, want one 429, one 503, then 200s", statuses)
	}
	if got := h.rt.rateLimited.Load(); got != 1 {
		t.Errorf("429 answers seen by the client's transport = %v, want 1", got)
	}
}

// codebaseMover moves the simulated company to another codebase before the
// first write, as hosted ConnectWise does during an upgrade.
type codebaseMover struct {
	psa.Backend
	once sync.Once
	move func()
}

func (b *codebaseMover) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	b.once.Do(b.move)
	return b.Backend.SetQuantity(ctx, req)
}

func TestEngineConnectWise_codebaseChangeMidPass(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	existing := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcIntercept), Quantity: 30})
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
	h.be = &codebaseMover{Backend: h.be, move: func() { cw.ChangeCodebase("v2025_1/") }}

	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2 {
		t.Fatalf("run = %+v, want success with 2 updated", res.Run)
	}
	if a, _ := cw.Addition(existing); a.Quantity != 42 {
		t.Errorf("addition = %+v, want 42", a)
	}
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	var notFound, discoveries, moved int
	for _, r := range h.sim.Requests() {
		p := strings.ToLower(r.Path)
		switch {
		case r.Status == http.StatusNotFound:
			notFound++
		case strings.HasPrefix(p, "/login/companyinfo/"):
			discoveries++
		case strings.HasPrefix(p, "/v2025_1/"):
			moved++
		}
	}
	if notFound == 0 || discoveries < 2 || moved == 0 {
		t.Errorf("requests: %d answered 404, %d codebase discoveries, %d on the new codebase; want the move noticed and followed", notFound, discoveries, moved)
	}
	if n := len(cw.Additions(mustParse(t, h.contractB))); n != 1 {
		t.Errorf("agreement B has %d additions, want exactly 1 (a POST refused with 404 is sent again once, never twice)", n)
	}
}

// TestEngineConnectWise_laterAdditionHeld: the agreement's only addition of
// the product starts on 1 December (pre-added for next month, or created by
// psa-syncd under next_period_start before the effective date moved
// earlier). It does not bill November: it is not the current line, and a
// November plan and pass hold the line (also with --approve), neither
// PATCHing it (its quantity bills from December) nor creating another from
// 1 November (which would bill along with it from December). In December
// it is the line and is PATCHed.
func TestEngineConnectWise_laterAdditionHeld(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	dec1 := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)
	ag := mustParse(t, h.contractA)
	future := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: mustParse(t, h.svcIntercept), Quantity: 10, EffectiveDate: dec1})
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	now := etNow
	engine := func() *Engine {
		e := h.engine()
		e.now = func() time.Time { return now }
		return e
	}

	plan, err := engine().Plan(t.Context(), h.doc, PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.sim.ResetRequests()
	for name, opts := range map[string]PassOptions{"pass": {}, "approving pass": {Approve: true, Customer: "cust-a"}} {
		res, err := engine().Sync(t.Context(), h.doc, opts)
		if err != nil {
			t.Fatal(err)
		}
		for what, p := range map[string]*Plan{name: res.Plan, "plan": plan} {
			c := sysFindChange(p, h.svcIntercept)
			if c == nil || c.Action != ActionHeld || c.Approvable() || c.Current != 0 || c.Desired != 42 ||
				!strings.Contains(c.Reason, fmt.Sprintf("an addition of this product starts on 2026-12-01 (addition %d, quantity 10), after the effective date 2026-11-01", future)) ||
				!strings.Contains(c.Reason, "written again once the effective date reaches 2026-12-01") {
				t.Errorf("%s: Acme Intercept X = %+v, want held 0 -> 42 for the addition from December", what, c)
			}
		}
		if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, "an addition of a product starts after the effective date") {
			t.Errorf("%s: status of cust-a = %+v, want held with the later-addition hint", name, cs)
		}
	}
	if reqs := cwRequests(h, h.contractA); slices.ContainsFunc(reqs, func(r psatest.Request) bool { return r.Method != http.MethodGet }) {
		t.Errorf("the November passes sent %+v, want only reads", reqs)
	}
	adds := cw.Additions(ag)
	if len(adds) != 1 || adds[0].ID != future || adds[0].Quantity != 10 || !adds[0].EffectiveDate.Equal(dec1) {
		t.Errorf("after the November passes additions = %+v, want addition %d unchanged (10 from %s)", adds, future, dec1.Format(time.DateOnly))
	}

	// Without usage nothing is to be written, and November is billed at 0
	// as wanted: unchanged, not held, and the December addition is kept.
	h.writeUsage("cust-a,Acme,MDR,0")
	if p, err := engine().Plan(t.Context(), h.doc, PassOptions{}); err != nil {
		t.Fatal(err)
	} else if c := sysFindChange(p, h.svcIntercept); c == nil || c.Action != ActionUnchanged || c.Desired != 0 {
		t.Errorf("plan without usage: Acme Intercept X = %+v, want unchanged at 0", c)
	}

	// In December the addition is the line.
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	now = time.Date(2026, time.December, 2, 10, 0, 0, 0, time.UTC)
	res, err := engine().Sync(t.Context(), h.doc, PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Current != 10 || c.Desired != 42 {
		t.Errorf("December pass: Acme Intercept X = %+v, want 10 -> 42", c)
	}
	if a, _ := cw.Addition(future); a.Quantity != 42 {
		t.Errorf("after the December pass addition %d = %+v, want quantity 42", future, a)
	}
	if n := len(cw.Additions(ag)); n != 1 {
		t.Errorf("after the December pass the agreement has %d additions, want 1", n)
	}
}

// TestEngineConnectWise_singleAgreementChecksFailingAlikeStop: the bulk
// check of new agreements leaves them all out (an answer that lists none
// of them), and ConnectWise answers every read of one agreement 503 (an
// outage of that endpoint, a proxy). Each agreement left out was read
// alone, each read retried into the outage, at every pass: a PSA failing
// every single read was not bounded as the lines' reads are. Once the
// reads of a few agreements in a row failed alike, the others fail with
// that error without a request.
func TestEngineConnectWise_singleAgreementChecksFailingAlikeStop(t *testing.T) {
	t.Parallel()
	const n = 40
	h := newSysHarness(t, psa.SystemConnectWise)
	customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
	h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
	agreements := "/" + psatest.DefaultConnectWiseCodebase + "apis/3.0/finance/agreements"
	h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: agreements, Status: http.StatusOK, Body: "[]"})
	for _, c := range customers {
		h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: agreements + "/" + c.ContractID, Status: http.StatusServiceUnavailable})
	}
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	single := 0
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodGet && strings.Count(strings.TrimPrefix(strings.ToLower(r.Path), agreements+"/"), "/") == 0 && strings.HasPrefix(strings.ToLower(r.Path), agreements+"/") {
			single++
		}
	}
	// The reads in a row that stop them, and those in flight then, each
	// with its retries.
	if most := (checksFailedToStop + contractCheckConcurrency) * (1 + backends.DefaultMaxRetries); single > most {
		t.Errorf("%d single agreement reads answered 503 for %d agreements, want at most %d", single, n, most)
	}
	if res.Run.Result != state.RunFailure {
		t.Errorf("run = %+v, want failure", res.Run)
	}
	cs := h.status(customers[n-1].CustomerID)
	if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "503") || !strings.Contains(cs.Error, "failed alike") {
		t.Errorf("last customer = %s %q, want failed with the 503, not read", cs.Result, cs.Error)
	}
}
