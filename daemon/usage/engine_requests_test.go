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
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// The tests in this file count the requests of whole passes against the
// lower bound of each PSA's protocol: ConnectWise needs one read per
// agreement plus one write per changed line; Kaseya BMS, which cannot
// report units, needs one write per changed line. A pass may spend at most
// 1% more.

// manyCustomers replaces the harness's customers with n new ones named
// cust-0000..., each mapped to a contract that add creates for it.
func (h *sysHarness) manyCustomers(n int, add func(i int) (company, contract string)) []export.CustomerMapping {
	h.t.Helper()
	doc := export.New(h.system, "sim")
	for _, pm := range h.doc.ProductMappings {
		doc.PutProduct(pm)
	}
	var out []export.CustomerMapping
	for i := range n {
		company, contract := add(i)
		cm := export.CustomerMapping{Source: "file", CustomerID: fmt.Sprintf("cust-%04d", i), CustomerName: fmt.Sprintf("Customer %04d", i),
			CompanyID: company, ContractID: contract, UsageSync: true}
		doc.PutCustomer(cm)
		out = append(out, cm)
	}
	h.doc = doc
	return out
}

// usageRows returns a usage row per customer for CIXA-MSP and MDR, where
// bump(i) is added to customer i's quantities.
func usageRows(customers []export.CustomerMapping, bump func(i int) int) []string {
	rows := make([]string, 0, 2*len(customers))
	for i, cm := range customers {
		rows = append(rows, fmt.Sprintf("%s,%s,CIXA-MSP,%d", cm.CustomerID, cm.CustomerName, 2+i%7+bump(i)),
			fmt.Sprintf("%s,%s,MDR,%d", cm.CustomerID, cm.CustomerName, 3+bump(i)))
	}
	return rows
}

// wantWithinBound fails the test when requests exceed bound by more than
// 1%.
func wantWithinBound(t *testing.T, pass string, requests, bound int) {
	t.Helper()
	if float64(requests) > float64(bound)*1.01 {
		t.Errorf("%s: %d requests, more than 1%% over the lower bound of %d", pass, requests, bound)
	}
}

// TestEngineRequests_connectWise checks that a ConnectWise pass reads each
// agreement's additions once and the status of only the agreements it
// writes to, 100 a request, whether every line changes, none or 1%.
func TestEngineRequests_connectWise(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	// The first pass changes every line at once, which the surge guard
	// holds for review: this test counts the requests of the writes.
	h.pol.SurgeLinesPercent = 0
	cw := h.sim.ConnectWise()
	const n = 300
	customers := h.manyCustomers(n, func(i int) (string, string) {
		company := cw.AddCompany(fmt.Sprintf("Customer %04d", i))
		ag := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "Managed Services"})
		for _, svc := range []string{h.svcIntercept, h.svcMDR} {
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: mustParse(t, svc), Quantity: 1})
		}
		return etID(company), etID(ag)
	})
	type counts struct{ additions, statuses, writes, discovery, other int }
	count := func() counts {
		var c counts
		for _, r := range h.sim.Requests() {
			p := strings.ToLower(r.Path)
			switch {
			case r.Method != http.MethodGet:
				c.writes++
			case strings.HasSuffix(p, "/additions"):
				c.additions++
			case strings.HasSuffix(p, "/finance/agreements"):
				c.statuses++
			case strings.HasPrefix(p, "/login/companyinfo/"):
				c.discovery++
			default:
				c.other++
			}
		}
		return c
	}
	pass := func(name string, bump func(i int) int, updated int, want counts) {
		t.Helper()
		h.writeUsage(usageRows(customers, bump)...)
		h.sim.ResetRequests()
		res := h.sync(PassOptions{})
		if res.Run.Result != state.RunSuccess || res.Run.Updated != updated {
			t.Fatalf("%s: run = %+v, want success with %d updated", name, res.Run, updated)
		}
		got := count()
		if got != want {
			t.Errorf("%s: requests %+v, want %+v", name, got, want)
		}
		wantWithinBound(t, name, len(h.sim.Requests())-want.statuses, n+updated)
	}
	// The first pass also reads the agreements' end dates and their
	// companies' states (100 a request each, once a day:
	// checkContractEnds, readCompanyStates), and the mapped catalog
	// items' states (one request for the two: checkServices).
	pass("every line changes", func(int) int { return 0 }, 2*n, counts{additions: n, statuses: 3 + 3, writes: 2 * n, discovery: 1, other: 3 + 1})
	pass("nothing changes", func(int) int { return 0 }, 0, counts{additions: n})
	// 1% of the lines: one on every 50th agreement. The agreements
	// written to are read once, 100 a request: their status
	// (CheckWrites) with their records (company, end date: checked again
	// since the day's were read by the first pass), and the catalog items
	// written, one request (recheckServices: ConnectWise takes the writes
	// of an inactive one).
	pass("1% change", func(i int) int {
		if i%50 == 0 {
			return 1
		}
		return 0
	}, 2*n/100*2, counts{additions: n, statuses: 1, writes: 2 * n / 100 * 2, other: 1})
}

// TestEngineRequests_kaseyaBMS checks that Kaseya BMS contracts are
// verified in bulk (a few pages, not lookups per customer) on the first
// pass, that later passes send only the changed lines, and that the
// verification is kept in the state database: a pass whose writes did not
// happen (a dry run) leaves the contracts verified for the next one, until
// the check is a day old or the mapping names another company.
func TestEngineRequests_kaseyaBMS(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	k := h.sim.KaseyaBMS()
	const n = 120
	accounts := make([]int, n)
	customers := h.manyCustomers(n, func(i int) (string, string) {
		accounts[i] = k.AddAccount(fmt.Sprintf("Customer %04d", i))
		c := k.AddContract(psatest.KaseyaBMSContract{AccountID: accounts[i], Name: fmt.Sprintf("Managed Services %04d", i)})
		return strconv.Itoa(accounts[i]), strconv.Itoa(c)
	})
	// requests counts the requests since the last ResetRequests but the
	// sign-ins: the simulator's clock is frozen in the past, so the client
	// finds every token expired and signs in before each request.
	requests := func() int {
		n := 0
		for _, r := range h.sim.Requests() {
			if !strings.HasSuffix(r.Path, "/security/authenticate") {
				n++
			}
		}
		return n
	}
	lookups := func() map[string]int {
		out := map[string]int{}
		for _, r := range h.sim.Requests() {
			if r.Method == http.MethodGet && !strings.Contains(r.Path, "/admin/finance/services/") {
				out[r.Path[strings.Index(r.Path, "/v2/"):]]++
			}
		}
		return out
	}
	engineAt := func(at time.Time) *Engine {
		e := h.engine()
		e.now = func() time.Time { return at }
		return e
	}
	syncAt := func(at time.Time, o PassOptions) *Result {
		t.Helper()
		h.sim.ResetRequests()
		res, err := engineAt(at).Sync(t.Context(), h.doc, o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	h.writeUsage(usageRows(customers, func(int) int { return 0 })...)

	// A dry run verifies every contract: the contract lookup (of every
	// contract in one request, since more than 100 ids would take one
	// request per 100), the contract summary and the account lookup (100
	// a page), and page 0 of the account lookup: it has no totalRecords,
	// so the client's first listing learns where its pages start.
	syncAt(etNow, PassOptions{DryRun: true})
	want := map[string]int{"/v2/finance/contracts/lookup": 1, "/v2/finance/contracts/summary": 2, "/v2/crm/accounts/lookup": 3}
	if got := lookups(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dry run looked up %v, want %v", got, want)
	}
	// It reads the mapped services' states too, the first pass of the
	// day: one search page for both (checkServices).
	if got := requests(); got != 1+2+3+1 {
		t.Errorf("dry run: %d requests besides the sign-ins, want the 6 lookups and one service search", got)
	}

	// The first real pass an hour later: every line is posted, and no
	// contract is looked up one by one (verified an hour ago); the
	// records of the contracts written to, read by the dry run, are read
	// again in bulk (recheckContracts), since the read (5 requests: the
	// contract lookup, two summary pages and two account lookup pages)
	// costs at most a tenth of the 240 posts.
	const reread = 5
	res := syncAt(etNow.Add(time.Hour), PassOptions{})
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2*n {
		t.Fatalf("first pass: run = %+v, want success with %d updated", res.Run, 2*n)
	}
	want = map[string]int{"/v2/finance/contracts/lookup": 1, "/v2/finance/contracts/summary": 2, "/v2/crm/accounts/lookup": 2}
	if got := lookups(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first pass after the dry run looked up %v, want %v (the bulk read of the contracts written to)", got, want)
	}
	writes := h.writes()
	if writes != 2*n {
		t.Errorf("first pass: %d line posts, want %d", writes, 2*n)
	}
	// No service search: the dry run's daily read of the mapped services
	// (one search page for both) is within the backend's time to live,
	// and the writes take the services' prices from it.
	if got := requests(); got != writes+reread {
		t.Errorf("first pass: %d requests besides the sign-ins, want the %d line posts and the %d of the records' read", got, writes, reread)
	}

	// Nothing changes: nothing is sent at all.
	if res := syncAt(etNow.Add(2*time.Hour), PassOptions{}); res.Run.Updated != 0 || len(h.sim.Requests()) != 0 {
		t.Errorf("pass without changes: run %+v and %d requests, want none", res.Run, len(h.sim.Requests()))
	}
	// Every line changes: one post per line and the records' read again
	// (1.021 of the bound; the contracts have ledger lines now).
	h.writeUsage(usageRows(customers, func(int) int { return 1 })...)
	if res := syncAt(etNow.Add(3*time.Hour), PassOptions{}); res.Run.Updated != 2*n || requests() != 2*n+reread {
		t.Errorf("pass changing every line: run %+v and %d requests, want %d updated and %d requests", res.Run, requests(), 2*n, 2*n+reread)
	}

	// A new customer, verified in a dry run, is verified again once the
	// check is a day old.
	acct := k.AddAccount("Newcomer")
	contract := strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: acct, Name: "Newcomer Managed Services"}))
	newcomer := export.CustomerMapping{Source: "file", CustomerID: "cust-new", CustomerName: "Newcomer", CompanyID: strconv.Itoa(acct),
		ContractID: contract, UsageSync: true}
	h.doc.PutCustomer(newcomer)
	h.writeUsage(append(usageRows(customers, func(int) int { return 1 }), "cust-new,Newcomer,MDR,4")...)
	syncAt(etNow.Add(4*time.Hour), PassOptions{DryRun: true})
	if got := lookups(); got["/v2/finance/contracts/lookup"] != 1 {
		t.Errorf("dry run with a new customer looked up %v, want its contract", got)
	}
	syncAt(etNow.Add(4*time.Hour+contractCheckTTL), PassOptions{DryRun: true})
	if got := lookups(); got["/v2/finance/contracts/lookup"] != 1 {
		t.Errorf("dry run a day later looked up %v, want the contract again", got)
	}
	// The mapping moves to another company: verified again, and refused.
	newcomer.CompanyID = strconv.Itoa(accounts[0])
	h.doc.PutCustomer(newcomer)
	syncAt(etNow.Add(5*time.Hour+contractCheckTTL), PassOptions{})
	if got := lookups(); got["/v2/finance/contracts/lookup"] != 1 {
		t.Errorf("pass after the company changed looked up %v, want the contract again", got)
	}
	if cs := h.status("cust-new"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "belongs to company "+strconv.Itoa(acct)) {
		t.Errorf("status of cust-new = %+v, want failed: the contract belongs to another company", cs)
	}
}

// TestEngineKaseyaBMS_badContractsFailTheirCustomers checks that a contract
// that is missing, belongs to another company, is inactive or is not a
// recurring-services contract fails its customer, with the same error and
// hint whether the contracts are read one by one (a few customers) or in
// bulk (many), and that nothing is posted to it or recorded as verified.
func TestEngineKaseyaBMS_badContractsFailTheirCustomers(t *testing.T) {
	t.Parallel()
	for _, others := range []int{0, 30} {
		t.Run(fmt.Sprintf("%d other customers", others), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS)
			k := h.sim.KaseyaBMS()
			customers := h.manyCustomers(others, func(i int) (string, string) { return addSysContract(h, i) })
			acme, globex := k.AddAccount("Acme Corp"), k.AddAccount("Globex Corp")
			globexContract := strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: globex, Name: "Globex Managed Services"}))
			inactive := strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme Old", Inactive: true}))
			timeAndMaterials := strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme T&M", Type: "Time and Materials"}))
			remap := func(c string) string {
				return "map customer file/" + c + " to an active recurring service contract of its company and re-run terraform apply"
			}
			bad := []struct {
				customer, contract, err, hint string
			}{
				{"bad-missing", "999999", "contract 999999 not found in kaseya_bms",
					"contract 999999 not found in kaseya_bms: check contract_id of customer mapping file/bad-missing or re-run terraform apply"},
				{"bad-company", globexContract, "contract " + globexContract + " belongs to company " + strconv.Itoa(globex) + ", not " + strconv.Itoa(acme),
					remap("bad-company")},
				{"bad-inactive", inactive, "contract " + inactive + " is not active in kaseya_bms", remap("bad-inactive")},
				{"bad-type", timeAndMaterials, "contract " + timeAndMaterials + ` is not a recurring service contract (type "Time and Materials")`, remap("bad-type")},
			}
			rows := usageRows(customers, func(int) int { return 0 })
			for _, b := range bad {
				h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: b.customer, CustomerName: b.customer, CompanyID: strconv.Itoa(acme),
					ContractID: b.contract, UsageSync: true})
				rows = append(rows, b.customer+","+b.customer+",MDR,4")
			}
			h.writeUsage(rows...)

			res := h.sync(PassOptions{})
			want := map[bool]string{true: state.RunPartial, false: state.RunFailure}[others > 0]
			if res.Run.Result != want || res.Run.Updated != 2*others {
				t.Errorf("run = %+v, want %s with %d updated", res.Run, want, 2*others)
			}
			for _, b := range bad {
				cs := h.status(b.customer)
				if cs.Result != state.CustomerFailed || !strings.HasPrefix(cs.Error, b.err) || cs.Hint != b.hint {
					t.Errorf("status of %s = %+v\nwant failed with error %q... and hint %q", b.customer, cs, b.err, b.hint)
				}
				if n := len(bmsLines(h, b.contract, h.svcMDR)); b.contract != "999999" && n != 0 {
					t.Errorf("%s: %d lines posted to contract %s, want none", b.customer, n, b.contract)
				}
			}
			var ids []string
			for _, b := range bad {
				ids = append(ids, b.contract)
			}
			checks, err := h.db.ContractChecks(psa.SystemKaseyaBMS, ids)
			if err != nil {
				t.Fatal(err)
			}
			for id, c := range checks {
				if stillVerified(c, export.CustomerMapping{CompanyID: strconv.Itoa(acme)}, etNow) {
					t.Errorf("contract %s is recorded as verified: %+v", id, c)
				}
			}
		})
	}
}
