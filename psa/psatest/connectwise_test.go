package psatest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

var cwNow = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

func newCWServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	return Start(t, append([]Option{WithSystem(psa.SystemConnectWise), WithClock(func() time.Time { return cwNow })}, opts...)...)
}

type cwResp struct {
	status int
	header http.Header
	body   []byte
}

func (r cwResp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// cwSend sends an authenticated request to the API root; hdr entries
// override the defaults ("" deletes one).
func cwSend(t *testing.T, s *Server, method, path, body string, hdr map[string]string) cwResp {
	t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = s.ConnectWiseBaseURL() + strings.TrimPrefix(path, "/")
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	company, pub, priv, clientID := s.ConnectWise().Credentials()
	req.SetBasicAuth(company+"+"+pub, priv)
	req.Header.Set("clientId", clientID)
	req.Header.Set("Accept", "application/vnd.connectwise.com+json; version=2025.16")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return cwResp{resp.StatusCode, resp.Header, b}
}

// cwSeed adds a company, an agreement of it and a catalog item, returning
// the agreement's and the item's ids.
func cwSeed(s *Server) (agreement, product int64) {
	cw := s.ConnectWise()
	company := cw.AddCompany("Acme")
	agreement = cw.AddAgreement(ConnectWiseAgreement{CompanyID: company, Name: "Acme Managed Services"})
	product = cw.AddCatalogItem(ConnectWiseCatalogItem{Identifier: "SOPHOS-IXA", Description: "Sophos Intercept X Advanced", Price: 4.5, Cost: 2})
	return agreement, product
}

func TestConnectWise_companyInfo(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	r := cwSend(t, s, http.MethodGet, s.URL()+"/login/companyinfo/MSP", "", map[string]string{"Authorization": "", "clientId": ""})
	var info map[string]any
	r.decode(t, &info)
	if r.status != 200 || info["Codebase"] != DefaultConnectWiseCodebase || info["CompanyID"] != "msp" {
		t.Errorf("companyinfo = %d %s", r.status, r.body)
	}
	if r := cwSend(t, s, http.MethodGet, s.URL()+"/login/companyinfo/other", "", nil); r.status != http.StatusNotFound {
		t.Errorf("companyinfo of an unknown company = %d", r.status)
	}
}

func TestConnectWise_authAndVersion(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
		text   string
	}{
		{"ok", nil, 200, ""},
		{"no auth", map[string]string{"Authorization": ""}, 401, "Unauthorized"},
		{"wrong key", map[string]string{"Authorization": "Basic " + basic("msp+sim-public-key:nope")}, 401, "Unauthorized"},
		{"no company prefix", map[string]string{"Authorization": "Basic " + basic("sim-public-key:sim-private-key")}, 401, "Unauthorized"},
		{"no clientId", map[string]string{"clientId": ""}, 401, "clientId"},
		{"future version", map[string]string{"Accept": "application/vnd.connectwise.com+json; version=2099.1"}, 400, "does not support the API version '2099.1'"},
		{"garbage version", map[string]string{"Accept": "application/vnd.connectwise.com+json; version=abc"}, 400, "ConnectWiseApi"},
		{"vendor type not first is ignored", map[string]string{"Accept": "application/json, application/vnd.connectwise.com+json; version=2099.1"}, 200, ""},
		{"old version", map[string]string{"Accept": "application/vnd.connectwise.com+json; version=2020.4"}, 200, ""},
	}
	for _, tt := range tests {
		r := cwSend(t, s, http.MethodGet, "company/companies", "", tt.hdr)
		if r.status != tt.status || !strings.Contains(string(r.body), tt.text) {
			t.Errorf("%s: %d %s, want %d containing %q", tt.name, r.status, r.body, tt.status, tt.text)
		}
		if r.header.Get("api-current-version") != ConnectWiseAPIVersion {
			t.Errorf("%s: api-current-version = %q", tt.name, r.header.Get("api-current-version"))
		}
	}
}

// basic returns the Basic credentials for "user:password".
func basic(s string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	u, p, _ := strings.Cut(s, ":")
	req.SetBasicAuth(u, p)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestConnectWise_navigablePaging(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	for i := range 5 {
		s.ConnectWise().AddCompany("Company " + string(rune('A'+i)))
	}
	r := cwSend(t, s, http.MethodGet, "company/companies?pageSize=2&conditions="+url.QueryEscape(`name like "Company%"`), "", nil)
	var page []map[string]any
	r.decode(t, &page)
	if len(page) != 2 || !strings.Contains(r.header.Get("Link"), `rel="next"`) || !strings.Contains(r.header.Get("Link"), "page=3") {
		t.Fatalf("first page: %d records, Link %q", len(page), r.header.Get("Link"))
	}
	next := r.header.Get("Link")
	next = next[strings.Index(next, "<")+1:]
	next = next[:strings.Index(next, ">")]
	if !strings.Contains(next, "conditions=") {
		t.Errorf("next link %q lost the conditions", next)
	}
	total := len(page)
	for next != "" {
		r = cwSend(t, s, http.MethodGet, next, "", nil)
		r.decode(t, &page)
		total += len(page)
		next = ""
		for _, part := range strings.Split(r.header.Get("Link"), ",") {
			if strings.Contains(part, `rel="next"`) {
				next = part[strings.Index(part, "<")+1 : strings.Index(part, ">")]
			}
		}
	}
	if total != 5 {
		t.Errorf("read %d companies over all pages, want 5", total)
	}
	if r := cwSend(t, s, http.MethodGet, "company/companies", "", nil); r.header.Get("Link") != "" {
		t.Errorf("a single page has a Link header: %q", r.header.Get("Link"))
	}
}

func TestConnectWise_forwardOnlyPaging(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	ag, prod := cwSeed(s)
	for range 3 {
		s.ConnectWise().AddCatalogItem(ConnectWiseCatalogItem{Description: "Item"})
	}
	fo := map[string]string{"pagination-type": "forward-only"}
	r := cwSend(t, s, http.MethodGet, "procurement/catalog?pageSize=2", "", fo)
	var page []map[string]any
	r.decode(t, &page)
	if len(page) != 2 || !strings.Contains(r.header.Get("Link"), "pageId=") {
		t.Fatalf("forward-only first page: %d records, Link %q", len(page), r.header.Get("Link"))
	}
	if r := cwSend(t, s, http.MethodGet, "procurement/catalog?orderBy=id%20desc", "", fo); r.status != 400 {
		t.Errorf("forward-only with orderBy = %d, want 400", r.status)
	}
	// The additions endpoint does not support forward-only: no Link.
	for range 3 {
		s.ConnectWise().AddAddition(ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 1})
	}
	if r := cwSend(t, s, http.MethodGet, "finance/agreements/"+itoa(ag)+"/additions?pageSize=2", "", fo); r.header.Get("Link") != "" {
		t.Errorf("additions answered forward-only with Link %q", r.header.Get("Link"))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestConnectWise_conditions(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	cw := s.ConnectWise()
	acme := cw.AddCompany(`Acme "Quoted"`)
	globex := cw.AddCompany("Globex")
	a1 := cw.AddAgreement(ConnectWiseAgreement{CompanyID: acme, Name: "One", StartDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	a2 := cw.AddAgreement(ConnectWiseAgreement{CompanyID: acme, Name: "Two", Status: "Cancelled", StartDate: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)})
	a3 := cw.AddAgreement(ConnectWiseAgreement{CompanyID: globex, Name: "Three", Type: "Backup"})
	tests := []struct {
		cond string
		want []int64
	}{
		{`company/id=` + itoa(acme), []int64{a1, a2}},
		{`company/name="acme \"quoted\""`, []int64{a1, a2}},
		{`company/id=` + itoa(acme) + ` and agreementStatus="Active"`, []int64{a1}},
		{`agreementStatus!='Active'`, []int64{a2}},
		{`id in (` + itoa(a1) + `,` + itoa(a3) + `)`, []int64{a1, a3}},
		{`id not in (` + itoa(a1) + `)`, []int64{a2, a3}},
		{`name contains "o"`, []int64{a1, a2}},
		{`name like "T%"`, []int64{a2, a3}},
		{`type/name="Backup" or (cancelledFlag=true and startDate>=[2026-06-01T00:00:00Z])`, []int64{a2, a3}},
		{`not (company/id=` + itoa(acme) + `)`, []int64{a3}},
		{`endDate=null`, []int64{a1, a2, a3}},
		{`id > ` + itoa(a1) + ` AND id <= ` + itoa(a3), []int64{a2, a3}},
	}
	for _, tt := range tests {
		r := cwSend(t, s, http.MethodGet, "finance/agreements?conditions="+url.QueryEscape(tt.cond), "", nil)
		var got []map[string]any
		r.decode(t, &got)
		var ids []int64
		for _, g := range got {
			ids = append(ids, num(g["id"]))
		}
		if jsonString(ids) != jsonString(tt.want) {
			t.Errorf("conditions %s: ids %v, want %v (%d %s)", tt.cond, ids, tt.want, r.status, r.body)
		}
	}
	for _, bad := range []string{`nosuch=1`, `name=`, `name = "x`, `(id=1`, `id in ()`, `id ~ 1`} {
		if r := cwSend(t, s, http.MethodGet, "finance/agreements?conditions="+url.QueryEscape(bad), "", nil); r.status != 400 {
			t.Errorf("conditions %q: status %d, want 400", bad, r.status)
		}
	}
}

func TestConnectWise_fieldsCountAndGet(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	ag, prod := cwSeed(s)
	add := s.ConnectWise().AddAddition(ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 3})
	r := cwSend(t, s, http.MethodGet, "finance/agreements/"+itoa(ag)+"/additions?fields=id,product/identifier,quantity", "", nil)
	var got []map[string]any
	r.decode(t, &got)
	if len(got) != 1 || len(got[0]) != 3 || lookupPath(got[0], []string{"product", "identifier"}) != "SOPHOS-IXA" || lookupPath(got[0], []string{"product", "id"}) != nil {
		t.Errorf("fields projection = %s", r.body)
	}
	r = cwSend(t, s, http.MethodGet, "finance/agreements/"+itoa(ag)+"/additions/count?conditions="+url.QueryEscape(`agreementStatus="Active"`), "", nil)
	if strings.TrimSpace(string(r.body)) != `{"count":1}` {
		t.Errorf("count = %s", r.body)
	}
	r = cwSend(t, s, http.MethodGet, "finance/agreements/"+itoa(ag)+"/additions/"+itoa(add), "", nil)
	var one map[string]any
	r.decode(t, &one)
	if one["agreementStatus"] != "Active" || one["extPrice"] != 13.5 || one["billCustomer"] != "Billable" {
		t.Errorf("addition = %s", r.body)
	}
	for _, p := range []string{"finance/agreements/999/additions", "finance/agreements/" + itoa(ag) + "/additions/999", "procurement/catalog/1", "no/such/thing"} {
		if r := cwSend(t, s, http.MethodGet, p, "", nil); r.status != 404 || !strings.Contains(string(r.body), `"code":"NotFound"`) {
			t.Errorf("GET %s = %d %s, want 404 NotFound", p, r.status, r.body)
		}
	}
	if r := cwSend(t, s, http.MethodDelete, "company/companies/1", "", nil); r.status != 405 {
		t.Errorf("DELETE company = %d, want 405", r.status)
	}
}

func TestConnectWise_patchDialect(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	ag, prod := cwSeed(s)
	add := s.ConnectWise().AddAddition(ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 3})
	path := "finance/agreements/" + itoa(ag) + "/additions/" + itoa(add)
	tests := []struct {
		body   string
		status int
	}{
		{`[{"op":"replace","path":"quantity","value":42}]`, 200},
		{`{"op":"replace","path":"quantity","value":42}`, 400},
		{`[]`, 400},
		{`[{"op":"move","path":"quantity","value":1}]`, 400},
		{`[{"op":"replace","path":"/quantity","value":1}]`, 400},
		{`[{"op":"replace","path":"agreementStatus","value":"Cancelled"}]`, 400},
		{`[{"op":"replace","path":"quantity","value":"many"}]`, 400},
		{`[{"op":"replace","path":"quantity","value":-1}]`, 400},
		{`[{"op":"replace","path":"billCustomer","value":"Sometimes"}]`, 400},
	}
	for _, tt := range tests {
		if r := cwSend(t, s, http.MethodPatch, path, tt.body, nil); r.status != tt.status {
			t.Errorf("PATCH %s = %d %s, want %d", tt.body, r.status, r.body, tt.status)
		}
	}
	if q, ok := s.ConnectWise().Quantity(ag, prod); !ok || q != 42 {
		t.Errorf("quantity = %v, %v, want 42", q, ok)
	}
	r := cwSend(t, s, http.MethodPatch, path, `[{"op":"replace","path":"cancelledDate","value":"2026-11-01T00:00:00Z"}]`, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"agreementStatus":"Cancelled"`) {
		t.Errorf("cancel = %d %s", r.status, r.body)
	}
	if _, ok := s.ConnectWise().Quantity(ag, prod); ok {
		t.Error("a cancelled addition still counts as active")
	}
}

func TestConnectWise_createValidation(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	ag, prod := cwSeed(s)
	adds := "finance/agreements/" + itoa(ag) + "/additions"
	tests := []struct {
		path, body string
		status     int
		text       string
	}{
		{adds, `{"product":{"id":` + itoa(prod) + `},"quantity":5,"billCustomer":"Billable","effectiveDate":"2026-11-01T00:00:00Z"}`, 201, `"unitPrice":4.5`},
		{adds, `{"product":{"identifier":"sophos-ixa"},"quantity":1,"billCustomer":"DoNotBill"}`, 201, `"effectiveDate":"2026-01-01T00:00:00Z"`},
		{adds, `{"quantity":5,"billCustomer":"Billable"}`, 400, `"field":"product"`},
		{adds, `{"product":{"id":` + itoa(prod) + `},"quantity":5}`, 400, `"field":"billCustomer"`},
		{adds, `{"product":{"id":12345},"billCustomer":"Billable"}`, 400, "Product not found"},
		{adds, `[1]`, 400, "InvalidObject"},
		{"procurement/catalog", `{"identifier":"NEW","description":"New","customerDescription":"New thing","price":1}`, 201, `"productClass":"NonInventory"`},
		{"procurement/catalog", `{"identifier":"sophos-ixa","description":"Dup","customerDescription":"x"}`, 400, "ObjectExists"},
		{"procurement/catalog", `{"identifier":"X","description":"` + strings.Repeat("d", 61) + `","customerDescription":"x"}`, 400, "maximum length of 60"},
		// ConnectWise counts UTF-16 code units: 59 letters and an emoji
		// are 61.
		{"procurement/catalog", `{"identifier":"X2","description":"` + strings.Repeat("d", 59) + "🛡" + `","customerDescription":"x"}`, 400, "maximum length of 60"},
		{"procurement/catalog", `{"identifier":"Y","description":"Y"}`, 400, `"field":"customerDescription"`},
		{"procurement/catalog", `{"identifier":"T1","description":"T1","customerDescription":"x","type":{"id":1},"subcategory":{"id":2}}`, 201, `"type":{"id":1}`},
		{"procurement/catalog", `{"identifier":"T2","description":"T2","customerDescription":"x","type":{"id":99}}`, 400, `"field":"type"`},
		{"procurement/catalog", `{"identifier":"T3","description":"T3","customerDescription":"x","subcategory":{"id":99}}`, 400, `"field":"subcategory"`},
	}
	for _, tt := range tests {
		r := cwSend(t, s, http.MethodPost, tt.path, tt.body, nil)
		if r.status != tt.status || !strings.Contains(string(r.body), tt.text) {
			t.Errorf("POST %s %s = %d %s, want %d containing %s", tt.path, tt.body, r.status, r.body, tt.status, tt.text)
		}
	}
	s.ConnectWise().SetAgreementStatus(ag, "Cancelled")
	if r := cwSend(t, s, http.MethodPost, adds, `{"product":{"id":`+itoa(prod)+`},"billCustomer":"Billable"}`, nil); r.status != 400 {
		t.Errorf("POST to a cancelled agreement = %d", r.status)
	}
	if r := cwSend(t, s, http.MethodDelete, "procurement/catalog/"+itoa(prod), "", nil); r.status != 400 {
		t.Errorf("DELETE of a catalog item in use = %d, want 400", r.status)
	}
}

func TestConnectWise_codebaseChange(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	old := s.ConnectWiseBaseURL()
	s.ConnectWise().ChangeCodebase("v2026_1")
	if r := cwSend(t, s, http.MethodGet, old+"company/companies", "", nil); r.status != 404 {
		t.Errorf("old codebase = %d, want 404", r.status)
	}
	if r := cwSend(t, s, http.MethodGet, "company/companies", "", nil); r.status != 200 || !strings.Contains(s.ConnectWiseBaseURL(), "/v2026_1/apis/3.0/") {
		t.Errorf("new codebase = %d at %s", r.status, s.ConnectWiseBaseURL())
	}
}

func TestConnectWise_rateLimitAndFaults(t *testing.T) {
	t.Parallel()
	s := newCWServer(t, WithConnectWiseRateLimit(2, time.Minute))
	for i, want := range []int{200, 200, 429} {
		r := cwSend(t, s, http.MethodGet, "company/companies", "", nil)
		if r.status != want {
			t.Errorf("request %d = %d, want %d", i, r.status, want)
		}
		if want == 429 && r.header.Get("Retry-After") != "60" {
			t.Errorf("Retry-After = %q, want 60", r.header.Get("Retry-After"))
		}
	}
	s.ConnectWise().SetRateLimit(0, 0)
	s.AddFault(Fault{Method: http.MethodGet, Path: "/v4_6_release/apis/3.0/company/*", Status: 503, Times: 1})
	if r := cwSend(t, s, http.MethodGet, "company/companies", "", nil); r.status != 503 || !strings.Contains(string(r.body), `"code":"ConnectWiseApi"`) {
		t.Errorf("faulted request = %d %s, want 503 in ConnectWise's envelope", r.status, r.body)
	}
	if r := cwSend(t, s, http.MethodGet, "company/companies", "", nil); r.status != 200 {
		t.Errorf("request after the fault = %d", r.status)
	}
}

func TestConnectWise_fixtureAndState(t *testing.T) {
	t.Parallel()
	s := newCWServer(t, WithFixtureFile("testdata/connectwise.json"), WithConnectWiseCredentials("other", "p", "k", "c"))
	cw := s.ConnectWise()
	if company, _, _, _ := cw.Credentials(); company != "other" {
		t.Errorf("credentials option did not win over the fixture: %q", company)
	}
	ags := cw.Agreements()
	if len(ags) != 2 || ags[0].Name != "Acme Managed Services" || ags[0].Status != "Active" {
		t.Fatalf("agreements = %+v", ags)
	}
	items := cw.CatalogItems()
	if len(items) != 2 || items[1].CustomerDescription != "Sophos Intercept X for Server" {
		t.Errorf("catalog = %+v", items)
	}
	if q, ok := cw.Quantity(ags[0].ID, items[0].ID); !ok || q != 25 {
		t.Errorf("Acme quantity = %v, %v", q, ok)
	}
	resp, err := http.Get(s.URL() + "/_sim/connectwise/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st ConnectWiseState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || len(st.Additions) != 2 || st.Codebase != DefaultConnectWiseCodebase {
		t.Errorf("state = %+v, %v", st, err)
	}
	if len(s.Requests()) != 0 {
		t.Errorf("the inspection endpoint was logged")
	}
	if _, err := ParseFixture([]byte(`{"connectwise":{"agreements":[{"name":"x","company":"nope"}]}}`)); err != nil {
		t.Fatal(err)
	}
	f, _ := ParseFixture([]byte(`{"connectwise":{"agreements":[{"name":"x","company":"nope"}]}}`))
	if _, err := NewServerOn("127.0.0.1:0", WithSystem(psa.SystemConnectWise), WithFixture(f)); err == nil || !strings.Contains(err.Error(), `unknown company "nope"`) {
		t.Errorf("bad fixture error = %v", err)
	}
}

// TestConnectWise_additionsByAgreement checks the per-agreement index of
// additions: each agreement lists its own, in id order, after additions
// are created through the API and deleted through it and out of band.
func TestConnectWise_additionsByAgreement(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	cw := s.ConnectWise()
	a1, prod := cwSeed(s)
	a2 := cw.AddAgreement(ConnectWiseAgreement{CompanyID: cw.AddCompany("Beta"), Name: "Beta Managed Services"})
	x1 := cw.AddAddition(ConnectWiseAddition{AgreementID: a1, ProductID: prod, Quantity: 1})
	y1 := cw.AddAddition(ConnectWiseAddition{AgreementID: a2, ProductID: prod, Quantity: 2})
	x2 := cw.AddAddition(ConnectWiseAddition{AgreementID: a1, ProductID: prod, Quantity: 3})
	var created struct{ ID int64 }
	r := cwSend(t, s, http.MethodPost, "finance/agreements/"+itoa(a2)+"/additions", `{"product":{"id":`+itoa(prod)+`},"quantity":4,"billCustomer":"Billable"}`, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("POST addition = %d %s", r.status, r.body)
	}
	r.decode(t, &created)
	if r := cwSend(t, s, http.MethodDelete, "finance/agreements/"+itoa(a1)+"/additions/"+itoa(x1), "", nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE addition = %d %s", r.status, r.body)
	}
	cw.DeleteAddition(y1)
	list := func(ag int64) []int64 {
		var got []struct{ ID int64 }
		cwSend(t, s, http.MethodGet, "finance/agreements/"+itoa(ag)+"/additions", "", nil).decode(t, &got)
		var ids []int64
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		return ids
	}
	if got := list(a1); len(got) != 1 || got[0] != x2 {
		t.Errorf("agreement %d additions = %v, want [%d]", a1, got, x2)
	}
	if got := list(a2); len(got) != 1 || got[0] != created.ID || created.ID == 0 {
		t.Errorf("agreement %d additions = %v, want [%d]", a2, got, created.ID)
	}
	if got := cw.Additions(a2); len(got) != 1 || got[0].ID != created.ID {
		t.Errorf("Additions(%d) = %+v, want the created one", a2, got)
	}
}

// TestConnectWise_productTypesAndSubcategories: procurement/types and
// procurement/subcategories list the ids a catalog item may name, paged
// like the other lists, and a catalog item's PATCH naming another id is
// refused as its POST is (TestConnectWise_createValidation).
func TestConnectWise_productTypesAndSubcategories(t *testing.T) {
	t.Parallel()
	s := newCWServer(t)
	_, prod := cwSeed(s)
	s.ConnectWise().AddProductType(7, "Cloud")
	s.ConnectWise().AddSubcategory(8, "Backup")
	for path, want := range map[string]string{
		"procurement/types?pageSize=2&page=2&fields=id,name": `[{"id":3,"name":"Hardware"},{"id":7,"name":"Cloud"}]`,
		"procurement/types/7":                                `"name":"Cloud"`,
		"procurement/subcategories?conditions=id=8":          `"category":{"id":1,"name":"Services"},"id":8,`,
		"procurement/subcategories/count":                    `{"count":4}`,
		"procurement/types?fields=id,name&pageSize=1":        `[{"id":1,"name":"Service"}]`,
	} {
		if r := cwSend(t, s, http.MethodGet, path, "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), want) {
			t.Errorf("GET %s = %d %s, want 200 containing %s", path, r.status, r.body, want)
		}
	}
	if r := cwSend(t, s, http.MethodPost, "procurement/types", `{"name":"X"}`, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST procurement/types = %d, want 405", r.status)
	}
	path := "procurement/catalog/" + itoa(prod)
	if r := cwSend(t, s, http.MethodPatch, path, `[{"op":"replace","path":"type","value":{"id":99}}]`, nil); r.status != 400 || !strings.Contains(string(r.body), `"field":"type"`) {
		t.Errorf("PATCH of an unknown type = %d %s, want 400 on type", r.status, r.body)
	}
	if r := cwSend(t, s, http.MethodPatch, path, `[{"op":"replace","path":"type","value":{"id":7}}]`, nil); r.status != 200 {
		t.Errorf("PATCH of a known type = %d %s, want 200", r.status, r.body)
	}
}
