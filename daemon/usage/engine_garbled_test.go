package usage

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// garbage is what a proxy in front of a PSA might answer with a 200.
const garbage = "<html><body>upstream hiccup</body></html>"

// A garbled answer to the bulk read fails the customers with a clear error,
// writes nothing and leaves the state usable: once the PSA answers properly
// again, the next pass sets the right quantities.
func TestEngine_Sync_garbledReadAnswer(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etUnitsPath, Status: http.StatusOK, Body: garbage})

	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunFailure {
		t.Errorf("run = %+v, want failure", res.Run)
	}
	for _, id := range []string{"cust-a", "cust-b"} {
		cs := h.status(id)
		if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "not the Autotask API's") || !strings.Contains(cs.Hint, "psa.autotask.base_url") {
			t.Errorf("status of %s = %+v, want failed with an answer that is not the API's, and a hint naming base_url", id, cs)
		}
	}
	if n := h.adjustmentPosts(); n != 0 {
		t.Errorf("%d adjustment posts after a garbled read, want 0", n)
	}

	h.sim.ClearFaults()
	res = h.sync(PassOptions{})
	if res.Run.Result != state.RunSuccess {
		t.Errorf("run after the PSA recovered = %+v, want success", res.Run)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 7)
}

// A 2xx answer to a line post that cannot be decoded means BMS accepted the
// post: the intent stays open for review and the line is never posted again.
func TestEngineKaseyaBMS_garbledPostAnswerIsNotReposted(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.pol.WriteConcurrency = 1
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: bmsServicesPath, Status: http.StatusOK, Body: garbage, Times: 1})

	res := h.sync(PassOptions{})
	if res.Run.Result == state.RunSuccess {
		t.Errorf("run = %+v, want the customer held for review", res.Run)
	}
	open, err := h.db.OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].After != 42 {
		t.Fatalf("open intents = %+v, want the post whose answer was garbled", open)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, "psa-syncd resolve -intent") {
		t.Errorf("status of cust-a = %+v, want failed with the review hint", cs)
	}

	h.sim.ResetRequests()
	h.sync(PassOptions{})
	if n := h.writes(); n != 0 {
		t.Errorf("%d line posts after a garbled answer, want 0 until an operator resolves it", n)
	}
}

// A 200 to a Kaseya BMS post whose body is not the posted line (an empty
// object, a line of another contract) does not show that the line was
// added: BMS cannot be read back, so taking it as posted would put units
// in the ledger that no contract bills, and no later pass would post them.
// The customer is held for review instead, and the other customer is
// synced.
func TestEngineKaseyaBMS_postAnswerOfAnotherLineIsNotTakenAsPosted(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"empty object":    `{}`,
		"another line":    `{"success":true,"result":{"id":9,"serviceId":{service},"contractId":{other},"units":40}}`,
		"another units":   `{"success":true,"result":{"id":9,"serviceId":{service},"contractId":{contract},"units":4}}`,
		"another service": `{"success":true,"result":{"id":9,"serviceId":{other},"contractId":{contract},"units":40}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
			body = strings.NewReplacer("{service}", h.svcIntercept, "{contract}", h.contractA, "{other}", h.contractB).Replace(body)
			h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/v2/finance/contracts/recurringservices/" + h.contractA + "/services",
				Status: http.StatusOK, Body: body, Times: 1})

			res := h.sync(PassOptions{})
			if res.Run.Result != state.RunPartial {
				t.Errorf("run = %+v, want partial", res.Run)
			}
			if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, "psa-syncd resolve -intent") ||
				!strings.Contains(cs.Error, "contract "+h.contractA) {
				t.Errorf("status of cust-a = %+v, want failed with the review hint", cs)
			}
			if _, ok, _ := h.db.LastSet(h.contractA, h.svcIntercept); ok {
				t.Errorf("the ledger holds a line of contract %s that BMS did not confirm", h.contractA)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 1 || open[0].ContractID != h.contractA {
				t.Errorf("open intents = %+v, want the post of contract %s", open, h.contractA)
			}
			h.wantUnits(h.contractB, h.svcIntercept, 10)
			if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
				t.Errorf("status of cust-b = %+v, want succeeded", cs)
			}
		})
	}
}

// One agreement's answer that cannot be used (a proxy's HTML page, a field
// of the wrong type, a body cut short, a 400 or 403 for that agreement)
// fails only the customer on that agreement: ConnectWise reads every
// agreement's additions with a request of its own, so the other customers
// are synced and their lines written. Once the agreement answers properly
// again, its customer is synced too.
func TestEngineConnectWise_Sync_oneAgreementsBadAnswerFailsOnlyItsCustomer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // in cust-a's error, after the agreement
		hint   string // in cust-a's hint
	}{
		{name: "html page", status: http.StatusOK, body: garbage, want: "the answer is an HTML page", hint: "answered the read of contract"},
		{name: "wrong type", status: http.StatusOK, body: `[{"id": 1, "product": {"id": 1}, "quantity": "lots", "agreementStatus": "Active"}]`,
			want: "decoding response: json: cannot unmarshal string"},
		{name: "cut short", status: http.StatusOK, body: `[{"id": 1, "product": {"id"`, want: "decoding response: unexpected end of JSON input"},
		{name: "bad request", status: http.StatusBadRequest, body: `{"code": "InvalidObject", "message": "agreement is corrupt"}`,
			want: "agreement is corrupt", hint: "agreement is corrupt"},
		{name: "forbidden", status: http.StatusForbidden, body: `{"code": "Forbidden", "message": "not in your territory"}`,
			want: "not in your territory", hint: "refused to read contract"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemConnectWise)
			base, err := url.Parse(h.sim.ConnectWiseBaseURL())
			if err != nil {
				t.Fatal(err)
			}
			h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements/" + h.contractA + "/additions", Status: tc.status, Body: tc.body})
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")

			h.sync(PassOptions{})
			a, b := h.status("cust-a"), h.status("cust-b")
			if b.Result != state.CustomerSucceeded {
				t.Errorf("cust-b = %s (%q): another agreement's answer stopped it", b.Result, b.Error)
			}
			h.wantUnits(h.contractB, h.svcIntercept, 10)
			if a.Result != state.CustomerFailed || !strings.Contains(a.Error, "contract "+h.contractA+": connectwise: reading the additions of agreement "+h.contractA+": ") ||
				!strings.Contains(a.Error, tc.want) {
				t.Errorf("cust-a = %s (%q), want failed naming agreement %s and %q", a.Result, a.Error, h.contractA, tc.want)
			}
			if tc.hint != "" && !strings.Contains(a.Hint, tc.hint) {
				t.Errorf("cust-a's hint = %q, want it to say %q", a.Hint, tc.hint)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 0)

			h.sim.ClearFaults()
			h.sync(PassOptions{})
			if a := h.status("cust-a"); a.Result != state.CustomerSucceeded {
				t.Errorf("cust-a after its agreement recovered = %s (%q), want succeeded", a.Result, a.Error)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			h.wantUnits(h.contractB, h.svcIntercept, 10)
		})
	}
}

// A 200 to the read of one agreement's additions that lists another
// agreement's (a proxy or cache that mixed up two answers) is not taken for
// the agreement's own: its own addition of the product would look missing
// and be added again, and the agreement would bill both. Only its customer
// fails, naming the addition of the other agreement.
func TestEngineConnectWise_Sync_answerOfAnotherAgreementIsNotTakenForItsOwn(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcIntercept), Quantity: 40})
	other := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractB), ProductID: mustParse(t, h.svcMDR), Quantity: 3})
	base, err := url.Parse(h.sim.ConnectWiseBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements/" + h.contractA + "/additions", Status: http.StatusOK,
		Body: fmt.Sprintf(`[{"id":%d,"product":{"id":%s},"quantity":3,"effectiveDate":"2026-01-01T00:00:00Z","agreementStatus":"Active","agreementId":%s}]`,
			other, h.svcMDR, h.contractB)})
	h.writeUsage("cust-a,Acme,CIXA-MSP,45", "cust-a,Acme,MDR,3", "cust-b,Globex,MDR,3")

	h.sync(PassOptions{})
	if adds := cw.Additions(mustParse(t, h.contractA)); len(adds) != 1 || adds[0].Quantity != 40 {
		t.Errorf("additions of agreement %s = %+v, want its one addition, unchanged", h.contractA, adds)
	}
	want := fmt.Sprintf("reading the additions of agreement %s: decoding response: the answer lists addition %d of agreement %s", h.contractA, other, h.contractB)
	if a := h.status("cust-a"); a.Result != state.CustomerFailed || !strings.Contains(a.Error, want) {
		t.Errorf("cust-a = %s (%q), want failed with %q", a.Result, a.Error, want)
	}
	if b := h.status("cust-b"); b.Result != state.CustomerSucceeded {
		t.Errorf("cust-b = %s (%q), want succeeded", b.Result, b.Error)
	}
}

// One agreement that cannot be read (a field of the wrong type) in the
// answer to the status read before the writes (CheckWrites) fails only the
// customer on that agreement, with an error naming the agreement and the
// field, and nothing is written to it; the other customers are checked
// and written as usual. Once the agreement can be read again, its
// customer is synced too.
func TestEngineConnectWise_Sync_oneUnreadableAgreementStatusFailsOnlyItsCustomer(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	base, err := url.Parse(h.sim.ConnectWiseBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess {
		t.Fatalf("first pass = %+v, want success", res.Run)
	}

	body := `[{"id": ` + h.contractA + `, "name": "Acme Managed Services", "agreementStatus": "Active", "cancelledFlag": "no"},` +
		`{"id": ` + h.contractB + `, "name": "Globex Managed Services", "agreementStatus": "Active", "cancelledFlag": false}]`
	// The one read of the agreements before the writes (CheckWrites,
	// which returns their records too) answers so.
	h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements", Status: http.StatusOK, Body: body, Times: 1})
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
	h.sim.ResetRequests()

	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}
	if b := h.status("cust-b"); b.Result != state.CustomerSucceeded {
		t.Errorf("cust-b = %s (%q): another agreement's record stopped it", b.Result, b.Error)
	}
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	want := "reading contract " + h.contractA + ": connectwise: agreement " + h.contractA + " cannot be read: field cancelledFlag holds string, not bool"
	if a := h.status("cust-a"); a.Result != state.CustomerFailed || !strings.Contains(a.Error, want) {
		t.Errorf("cust-a = %s (%q), want failed with %q", a.Result, a.Error, want)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	for _, r := range cwRequests(h, h.contractA) {
		if r.Method != http.MethodGet {
			t.Errorf("wrote to agreement %s, whose status could not be read: %s %s", h.contractA, r.Method, r.Path)
		}
	}
	if open, err := h.db.OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents = %+v, %v; want none", open, err)
	}

	h.sync(PassOptions{})
	if a := h.status("cust-a"); a.Result != state.CustomerSucceeded {
		t.Errorf("cust-a once its agreement can be read = %s (%q), want succeeded", a.Result, a.Error)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
}

// The contract check's bulk read of the agreements whose answer holds one
// agreement record that cannot be read (a field of the wrong type) fails
// no customer of the read for it: the others are checked from the answer,
// and that agreement is read alone, which here answers soundly.
func TestEngineConnectWise_Sync_contractCheckReadsAnUnreadableAgreementAlone(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	base, err := url.Parse(h.sim.ConnectWiseBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	body := `[{"id": ` + h.contractA + `, "name": "Acme Managed Services", "agreementStatus": "Active", "cancelledFlag": "no"},` +
		`{"id": ` + h.contractB + `, "name": "Globex Managed Services", "agreementStatus": "Active", "cancelledFlag": false}]`
	// The first read of the agreements is the contract check's.
	h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements", Status: http.StatusOK, Body: body, Times: 1})
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")

	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunSuccess {
		t.Errorf("run = %+v, want success", res.Run)
	}
	for _, c := range []string{"cust-a", "cust-b"} {
		if st := h.status(c); st.Result != state.CustomerSucceeded {
			t.Errorf("%s = %s (%q), want succeeded: one agreement's record failed the contract check's whole read", c, st.Result, st.Error)
		}
	}
	h.wantUnits(h.contractA, h.svcIntercept, 42)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	alone := 0
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodGet && r.Path == base.Path+"finance/agreements/"+h.contractA {
			alone++
		}
	}
	if alone != 1 {
		t.Errorf("agreement %s was read alone %d times, want once", h.contractA, alone)
	}
}

// What concerns ConnectWise as a whole (here the credentials, refused on one
// agreement's request) still fails the whole read, and so every customer
// of it; each customer's error says that the batch read failed, and names
// the agreement whose request failed, rather than reading as if the
// customer's own contract were to blame.
func TestEngineConnectWise_Sync_wholeReadFailureNamesTheBatch(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	base, err := url.Parse(h.sim.ConnectWiseBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	h.sim.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements/" + h.contractA + "/additions", Status: http.StatusUnauthorized})
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")

	h.sync(PassOptions{})
	for _, c := range []struct{ customer, contract string }{{"cust-a", h.contractA}, {"cust-b", h.contractB}} {
		cs := h.status(c.customer)
		want := "contract " + c.contract + ": the batch read of 2 contracts failed: connectwise: reading the additions of agreement " + h.contractA + ": "
		if cs.Result != state.CustomerFailed || !strings.HasPrefix(cs.Error, want) || strings.Contains(cs.Error, "reading contract") {
			t.Errorf("%s = %s (%q), want failed with an error starting %q", c.customer, cs.Result, cs.Error, want)
		}
	}
	if n := h.writes(); n != 0 {
		t.Errorf("%d line writes after a failed read, want 0", n)
	}
}

// One ContractServiceUnits row that cannot be read (units null, a field of
// the wrong type) in an otherwise sound page fails only the customer on
// that row's contract; the other customers are synced and their lines
// written. The contract is not synced from its other rows either: its
// line whose row was dropped would look missing and be added again, a
// doubled line.
func TestEngineAutotask_Sync_oneUnreadableUnitRowFailsOnlyItsContract(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		units any // cust-a's Intercept X row's units
		want  string
	}{
		{name: "units null", units: nil, want: "reports no units"},
		{name: "units of the wrong type", units: "lots", want: "cannot be read: field units holds string, not int64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemAutotask)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,7")
			if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess {
				t.Fatalf("first pass = %+v, want success", res.Run)
			}

			// The page as Autotask would send it for the next pass, with
			// cust-a's Intercept X row spoiled.
			at := h.sim.Autotask()
			var items []map[string]any
			for _, k := range []struct{ contract, service string }{{h.contractA, h.svcIntercept}, {h.contractA, h.svcMDR}, {h.contractB, h.svcIntercept}} {
				for _, r := range at.UnitRows(mustParse(t, k.contract), mustParse(t, k.service)) {
					var item map[string]any
					raw, err := json.Marshal(r)
					if err != nil {
						t.Fatal(err)
					}
					if err := json.Unmarshal(raw, &item); err != nil {
						t.Fatal(err)
					}
					if k.contract == h.contractA && k.service == h.svcIntercept {
						item["units"] = tc.units
					}
					items = append(items, item)
				}
			}
			page, err := json.Marshal(map[string]any{"items": items, "pageDetails": map[string]any{"count": len(items), "requestCount": 500, "nextPageUrl": nil}})
			if err != nil {
				t.Fatal(err)
			}
			h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etUnitsPath, Status: http.StatusOK, Body: string(page), Times: 1})
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,4", "cust-b,Globex,CIXA-MSP,10")

			h.sync(PassOptions{})
			if b := h.status("cust-b"); b.Result != state.CustomerSucceeded {
				t.Errorf("cust-b = %s (%q): a row of another contract stopped it", b.Result, b.Error)
			}
			h.wantUnits(h.contractB, h.svcIntercept, 10)
			a := h.status("cust-a")
			if a.Result != state.CustomerFailed || !strings.Contains(a.Error, "reading contract "+h.contractA+": ") ||
				!strings.Contains(a.Error, "(contract "+h.contractA+", service "+h.svcIntercept+")") || !strings.Contains(a.Error, tc.want) {
				t.Errorf("cust-a = %s (%q), want failed naming contract %s, its row and %q", a.Result, a.Error, h.contractA, tc.want)
			}
			// Neither of cust-a's lines was written: not the one whose row
			// was unreadable (written as missing it would be doubled), nor
			// the other.
			h.wantUnits(h.contractA, h.svcIntercept, 40)
			h.wantUnits(h.contractA, h.svcMDR, 3)

			h.sync(PassOptions{})
			if a := h.status("cust-a"); a.Result != state.CustomerSucceeded {
				t.Errorf("cust-a after the row was readable again = %s (%q), want succeeded", a.Result, a.Error)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			h.wantUnits(h.contractA, h.svcMDR, 4)
		})
	}
}

// An Autotask units read answered with an empty list (a 200 that lost its
// rows, or unit rows that do not reach the period) shows no line for a
// service the contract holds. The pass must not take the line for a new
// one: an adjustment of the whole quantity would add to the units the line
// has (40 + 45 = 85 billed). The customer fails naming the line, the other
// customer is synced, and once the read answers properly the next pass
// sets the quantity once.
func TestEngineAutotask_Sync_lineMissingFromTheReadIsNotAddedAgain(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.at.SetUnits(h.contractA, h.svcIntercept, 40, etPeriodDay)
	h.writeUsage("cust-a,Acme,CIXA-MSP,45", "cust-b,Globex,CIXA-MSP,10")
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceUnits/query", Status: http.StatusOK,
		Body: `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`, Times: 1})

	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "already holds service "+etID(h.svcIntercept)) {
		t.Errorf("status of cust-a = %s (%q), want failed naming the line the read missed", cs.Result, cs.Error)
	}

	h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 45)
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status of cust-a after the read recovered = %s (%q), want succeeded", cs.Result, cs.Error)
	}
}

// An address that answers every request with a proxy's sign-in page (or
// another product's JSON) fails the pass as a problem of the whole PSA,
// on every PSA alike: every customer fails with the same error and a hint
// naming the base URL setting, the run's error says so once, nothing is
// written, and the reads stop at the first such answer instead of
// reading each contract alone (ConnectWise read each agreement's
// additions as that agreement's own problem). Once the address answers
// properly again, the next pass writes the lines.
func TestEngineSystems_notAPIAnswerFailsThePass(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		for _, answer := range []struct{ name, contentType, body string }{
			{"sign-in page", "text/html; charset=utf-8", psatest.SignInPage},
			{"another product's json", "application/json", `{"status":"ok","version":"2.1"}`},
		} {
			t.Run(string(sys)+"/"+answer.name, func(t *testing.T) {
				t.Parallel()
				h := newSysHarness(t, sys)
				h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
				h.sim.AddFault(psatest.Fault{Status: http.StatusOK, ContentType: answer.contentType, Body: answer.body})

				res := h.sync(PassOptions{})
				if res.Run.Result != state.RunFailure || !strings.Contains(res.Run.Error, "not the "+sys.Title()+" API's") {
					t.Errorf("run = %+v, want a failure saying the answer is not the API's", res.Run)
				}
				for _, id := range []string{"cust-a", "cust-b"} {
					cs := h.status(id)
					if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "not the "+sys.Title()+" API's") ||
						!strings.Contains(cs.Hint, "psa."+string(sys)+".base_url") {
						t.Errorf("status of %s = %+v, want failed with an answer that is not the API's and a hint naming base_url", id, cs)
					}
					if strings.Contains(cs.Error, "<form") || strings.Contains(cs.Error, "Password") {
						t.Errorf("status of %s quotes the page: %s", id, cs.Error)
					}
				}
				if n := h.writes(); n != 0 {
					t.Errorf("%d writes, want none", n)
				}
				if n := len(h.sim.Requests()); n > 3 {
					t.Errorf("%d requests to an address that answers no request, want at most 3", n)
					for _, r := range h.sim.Requests() {
						t.Logf("  %s %s", r.Method, r.Path)
					}
				}

				h.sim.ClearFaults()
				if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess {
					t.Errorf("run after the address recovered = %+v, want success", res.Run)
				}
				h.wantUnits(h.contractA, h.svcIntercept, 40)
				h.wantUnits(h.contractB, h.svcIntercept, 7)
			})
		}
	}
}
