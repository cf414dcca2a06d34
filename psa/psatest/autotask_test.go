package psatest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// seed adds a company (174), a 2026 recurring contract and a service,
// returning the contract's and the service's ids (29684000, 30000000).
func seed(t *testing.T, s *Server) (contract, service int64) {
	t.Helper()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	contract = at.AddContract(AutotaskContract{CompanyID: company, Name: "Acme Managed Services"})
	service = at.AddService("Sophos Intercept X", 4.5)
	return contract, service
}

func TestAutotask_zoneInformation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := send(t, s, http.MethodGet, "/atservicesrest/v1.0/zoneInformation?user="+url.QueryEscape(DefaultAutotaskUsername), "", nil)
	var zone struct {
		ZoneName, URL, WebURL string
		CI                    int
	}
	r.decode(t, &zone)
	if r.status != http.StatusOK || zone.URL != s.AutotaskBaseURL() || zone.ZoneName == "" || zone.CI != 1 {
		t.Errorf("zoneInformation = %d %s, want url %q", r.status, r, s.AutotaskBaseURL())
	}
	// The path is case-insensitive, as on the real hosts.
	if r := send(t, s, http.MethodGet, "/ATServicesRest/V1.0/ZoneInformation?user=API@msp.example", "", nil); r.status != http.StatusOK {
		t.Errorf("ZoneInformation (other case) = %d %s", r.status, r)
	}
	for _, user := range []string{"", "someone@else.example"} {
		r := send(t, s, http.MethodGet, "/atservicesrest/v1.0/zoneInformation?user="+url.QueryEscape(user), "", nil)
		if r.status != http.StatusInternalServerError {
			t.Errorf("zoneInformation?user=%q = %d, want 500", user, r.status)
		}
		r.errors(t)
	}
	r = send(t, s, http.MethodGet, "/atservicesrest/versioninformation", "", nil)
	if r.status != http.StatusOK || string(r.body) != `{"apiVersions":["1.0"]}` {
		t.Errorf("versioninformation = %d %s", r.status, r)
	}
	if n := s.Autotask().HourlyCount(); n != 0 {
		t.Errorf("zone lookups counted against the hourly budget: %d", n)
	}
	if r := send(t, s, http.MethodGet, "/ATServicesRest/V2.0/Companies/1", "", authHeaders()); r.status != http.StatusNotFound {
		t.Errorf("V2.0 = %d, want 404", r.status)
	}
}

func TestAutotask_auth(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name   string
		header string
		value  string
		status int
	}{
		{"ok", "", "", http.StatusOK},
		{"header names are case-insensitive", "lowercase", "", http.StatusOK},
		{"wrong secret", "Secret", "nope", http.StatusUnauthorized},
		{"missing secret", "Secret", "", http.StatusUnauthorized},
		{"unknown user", "UserName", "who@msp.example", http.StatusInternalServerError},
		{"missing user", "UserName", "", http.StatusInternalServerError},
		{"invalid integration code", "ApiIntegrationCode", "WRONG", http.StatusInternalServerError},
		{"missing integration code", "ApiIntegrationCode", "", http.StatusInternalServerError},
		{"impersonation", "ImpersonationResourceId", "29682999", http.StatusOK},
		{"bad impersonation", "ImpersonationResourceId", "bob", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := authHeaders()
			if tt.header == "lowercase" {
				// Sent exactly as written, as Anteris' "Username" and
				// "APIIntegrationcode" are.
				h = http.Header{"username": {DefaultAutotaskUsername}, "secret": {DefaultAutotaskSecret}, "APIIntegrationcode": {DefaultAutotaskIntegrationCode}}
			} else if tt.header != "" {
				if tt.value == "" {
					h.Del(tt.header)
				} else {
					h.Set(tt.header, tt.value)
				}
			}
			r := send(t, s, http.MethodGet, "/ATServicesRest/V1.0/Companies/174", "", h)
			if r.status != tt.status {
				t.Fatalf("status = %d %s, want %d", r.status, r, tt.status)
			}
			if r.status != http.StatusOK {
				for _, e := range r.errors(t) {
					if strings.Contains(e, DefaultAutotaskSecret) || strings.Contains(e, DefaultAutotaskIntegrationCode) {
						t.Errorf("error %q leaks a credential", e)
					}
				}
			}
		})
	}
	if n := s.Autotask().HourlyCount(); n != 3 {
		t.Errorf("HourlyCount() = %d, want only the 3 authenticated requests counted", n)
	}

	// The impersonated resource becomes the creator.
	h := authHeaders()
	h.Set("ImpersonationResourceId", "29682999")
	r := send(t, s, http.MethodPost, "/ATServicesRest/V1.0/Services", `{"name":"X","unitPrice":1,"periodType":1,"billingCodeID":29682800}`, h)
	if r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r)
	}
	if r := api(t, s, http.MethodGet, "Services/30000000", ""); !strings.Contains(r.String(), `"creatorResourceID":29682999`) {
		t.Errorf("creatorResourceID not the impersonated resource: %s", r)
	}
}

func TestAutotask_routes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	k, _ := seed(t, s)
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "Companies/174", 200},
		{"get", "companies/174", 200},
		{"GET", "Companies/entityInformation", 200},
		{"GET", "Companies/entityInformation/fields", 200},
		{"GET", "Companies/entityInformation/userDefinedFields", 200},
		{"PATCH", "Companies/174", 405},
		{"PUT", "Companies/174", 405},
		{"DELETE", "Companies/174", 405},
		{"PATCH", "Contracts/29684000", 405},
		{"DELETE", "Contracts/29684000", 405},
		{"PATCH", "Services/30000000", 405},
		{"PUT", "Services/30000000", 405},
		{"DELETE", "Services/30000000", 405},
		{"GET", "Services", 405},
		{"DELETE", "Services", 405},
		{"POST", "Services/30000000", 405},
		{"PUT", "Services/query", 405},
		{"GET", "BillingCodes/29682800", 200},
		{"POST", "BillingCodes", 405},
		{"PATCH", "BillingCodes", 405},
		{"PUT", "BillingCodes", 405},
		{"GET", "ContractServices/40000000", 200},
		{"POST", "ContractServices", 405},
		{"PATCH", "ContractServices", 405},
		{"PUT", "ContractServices", 405},
		{"POST", "ContractServiceUnits", 405},
		{"PATCH", "ContractServiceUnits", 405},
		{"GET", "ContractServiceUnits/50000000", 200},
		{"GET", "ContractServiceAdjustments/1", 405},
		{"POST", "ContractServiceAdjustments/query", 405},
		{"GET", "ContractServiceAdjustments/query", 405},
		{"PATCH", "ContractServiceAdjustments", 405},
		{"GET", "ContractServiceAdjustments/entityInformation/fields", 200},
		{"GET", fmt.Sprintf("Contracts/%d/Services", k), 200},
		{"GET", fmt.Sprintf("Contracts/%d/Services/40000000", k), 200},
		{"DELETE", fmt.Sprintf("Contracts/%d/Services/40000000", k), 405},
		{"PATCH", fmt.Sprintf("Contracts/%d/Services/40000000", k), 405},
		{"GET", fmt.Sprintf("Contracts/%d/Services/entityInformation/fields", k), 200},
		{"GET", fmt.Sprintf("Contracts/%d/ServiceUnits", k), 200},
		{"GET", fmt.Sprintf("Contracts/%d/ServiceUnits/50000000", k), 200},
		{"POST", fmt.Sprintf("Contracts/%d/ServiceUnits", k), 405},
		{"GET", fmt.Sprintf("Contracts/%d/ServiceAdjustments", k), 405},
		{"GET", fmt.Sprintf("Contracts/%d/Charges", k), 404},
		{"GET", "ThresholdInformation", 200},
		{"POST", "ThresholdInformation", 405},
		{"GET", "Version", 200},
		{"GET", "Projects/1", 404},
		{"POST", "Widgets/query", 404},
	}
	s.Autotask().SetUnits(k, 30000000, 1, date(2026, 1, 1))
	for _, tt := range tests {
		r := api(t, s, strings.ToUpper(tt.method), tt.path, "")
		if r.status != tt.status {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, r.status, r, tt.status)
			continue
		}
		switch r.status {
		case 405:
			if m := r.message(t); m != fmt.Sprintf("The requested resource does not support http method '%s'.", strings.ToUpper(tt.method)) {
				t.Errorf("%s %s: Message %q", tt.method, tt.path, m)
			}
		case 404:
			r.message(t)
		}
	}
}

func TestAutotask_getItem(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	k, svc := seed(t, s)
	other := s.Autotask().AddContract(AutotaskContract{CompanyID: 174, Name: "Other"})
	s.Autotask().SetUnits(k, svc, 3, date(2026, 1, 1))

	r := api(t, s, http.MethodGet, "Contracts/29684000", "")
	var got struct {
		Item map[string]any `json:"item"`
	}
	r.decode(t, &got)
	if got.Item["contractName"] != "Acme Managed Services" || got.Item["contractType"] != float64(7) ||
		got.Item["status"] != float64(1) || got.Item["startDate"] != "2026-01-01T00:00:00Z" || got.Item["endDate"] != "2026-12-31T00:00:00Z" {
		t.Errorf("Contracts/29684000 = %s", r)
	}
	if _, ok := got.Item["userDefinedFields"]; !ok {
		t.Errorf("item has no userDefinedFields: %s", r)
	}
	for _, path := range []string{"Contracts/1", "Services/99", fmt.Sprintf("Contracts/%d/Services/40000000", other), fmt.Sprintf("Contracts/%d/ServiceUnits/50000000", other)} {
		if r := api(t, s, http.MethodGet, path, ""); r.status != http.StatusOK || string(r.body) != `{"item":null}` {
			t.Errorf("GET %s = %d %s, want 200 {\"item\":null}", path, r.status, r)
		}
	}
}

func TestAutotask_entityInformation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var info struct {
		Info struct {
			Name                                      string
			CanCreate, CanUpdate, CanQuery, CanDelete bool
		}
	}
	api(t, s, http.MethodGet, "ContractServiceAdjustments/entityInformation", "").decode(t, &info)
	if !info.Info.CanCreate || info.Info.CanQuery || info.Info.CanUpdate || info.Info.CanDelete {
		t.Errorf("ContractServiceAdjustments info = %+v", info.Info)
	}

	type picklist struct{ Value, Label string }
	type field struct {
		Name           string
		IsPickList     bool
		IsRequired     bool
		PicklistValues []picklist
	}
	labels := func(entity, name string) map[string]string {
		var fields struct{ Fields []field }
		api(t, s, http.MethodGet, entity+"/entityInformation/fields", "").decode(t, &fields)
		for _, f := range fields.Fields {
			if f.Name == name {
				if !f.IsPickList {
					t.Errorf("%s.%s is not a picklist", entity, name)
				}
				m := map[string]string{}
				for _, p := range f.PicklistValues {
					m[p.Label] = p.Value
				}
				return m
			}
		}
		t.Fatalf("%s has no field %s", entity, name)
		return nil
	}
	period := labels("Services", "periodType")
	for _, l := range []string{"Monthly", "Quarterly", "Semi-Annual", "Yearly"} {
		if period[l] == "" {
			t.Errorf("Services.periodType lacks %q: %v", l, period)
		}
	}
	if v := labels("Contracts", "contractType")["Recurring Service"]; v != "7" {
		t.Errorf("contractType Recurring Service = %q, want \"7\"", v)
	}
	status := labels("Contracts", "status")
	if status["Active"] != "1" || status["Inactive"] != "0" {
		t.Errorf("Contracts.status = %v", status)
	}
}

func TestAutotask_queryRules(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	seed(t, s)
	tests := []struct {
		name, body string
		status     int
		count      int
	}{
		{"missing filter", `{}`, 500, 0},
		{"no body", ``, 500, 0},
		{"null filter", `{"filter":null}`, 500, 0},
		{"filter not an array", `{"filter":{"op":"eq"}}`, 500, 0},
		{"empty filter returns nothing", `{"filter":[]}`, 200, 0},
		{"all rows", `{"filter":[{"op":"gte","field":"id","value":0}]}`, 200, 1},
		{"capitalised keys", `{"Filter":[{"Op":"EQ","Field":"COMPANYNAME","Value":"acme"}],"MAXRECORDS":1}`, 200, 1},
		{"MaxRecords 0", `{"filter":[{"op":"gte","field":"id","value":0}],"MaxRecords":0}`, 500, 0},
		{"MaxRecords 501", `{"filter":[{"op":"gte","field":"id","value":0}],"MaxRecords":501}`, 500, 0},
		{"MaxRecords string", `{"filter":[{"op":"gte","field":"id","value":0}],"MaxRecords":"10"}`, 500, 0},
		{"MaxRecords 500", `{"filter":[{"op":"gte","field":"id","value":0}],"MaxRecords":500}`, 200, 1},
		{"unknown field", `{"filter":[{"op":"eq","field":"colour","value":1}]}`, 500, 0},
		{"unknown operator", `{"filter":[{"op":"like","field":"companyName","value":"a"}]}`, 500, 0},
		{"in without array", `{"filter":[{"op":"in","field":"id","value":174}]}`, 500, 0},
		{"or without items", `{"filter":[{"op":"or","items":[]}]}`, 500, 0},
		{"number for a number field", `{"filter":[{"op":"eq","field":"id","value":"abc"}]}`, 500, 0},
		{"boolean must be a JSON boolean", `{"filter":[{"op":"eq","field":"isActive","value":"true"}]}`, 500, 0},
		{"bad IncludeFields", `{"filter":[{"op":"gte","field":"id","value":0}],"IncludeFields":["nope"]}`, 500, 0},
		{"invalid JSON", `{"filter":[`, 500, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := api(t, s, http.MethodPost, "Companies/query", tt.body)
			if r.status != tt.status {
				t.Fatalf("POST query = %d %s, want %d", r.status, r, tt.status)
			}
			if r.status != 200 {
				r.errors(t)
				return
			}
			var page struct {
				Items       []map[string]any
				PageDetails struct {
					Count       int
					NextPageURL *string `json:"nextPageUrl"`
				}
			}
			r.decode(t, &page)
			if len(page.Items) != tt.count || page.PageDetails.Count != tt.count || page.PageDetails.NextPageURL != nil {
				t.Errorf("POST query = %s, want %d rows", r, tt.count)
			}
			// The same query as a GET and as counts.
			g := api(t, s, http.MethodGet, "Companies/query?search="+url.QueryEscape(tt.body), "")
			if g.status != 200 || string(g.body) != string(r.body) {
				t.Errorf("GET query = %d %s, want the POST answer %s", g.status, g, r)
			}
			for _, c := range []response{
				api(t, s, http.MethodPost, "Companies/query/count", tt.body),
				api(t, s, http.MethodGet, "Companies/query/count?search="+url.QueryEscape(tt.body), ""),
			} {
				if c.status != 200 || string(c.body) != fmt.Sprintf(`{"queryCount":%d}`, tt.count) {
					t.Errorf("count = %d %s, want %d", c.status, c, tt.count)
				}
			}
		})
	}
	if r := api(t, s, http.MethodGet, "Companies/query", ""); r.status != 500 {
		t.Errorf("GET query without search = %d, want 500", r.status)
	}
	if r := api(t, s, http.MethodPost, "Companies/query/count", `{}`); r.status != 500 {
		t.Errorf("count without filter = %d, want 500", r.status)
	}
}

func TestAutotask_includeFields(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	seed(t, s)
	r := api(t, s, http.MethodPost, "Services/query", `{"filter":[{"op":"exist","field":"name"}],"IncludeFields":["Name","unitPrice"]}`)
	if want := `{"items":[{"id":30000000,"name":"Sophos Intercept X","unitPrice":4.5}],"pageDetails":{"count":1,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`; string(r.body) != want {
		t.Errorf("projection = %s\nwant %s", r, want)
	}
}

// Autotask requires id among IncludeFields when a query returns more than
// one page: a projection without it is refused rather than paged.
func TestAutotask_includeFieldsWithoutIDPaging(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	at := s.Autotask()
	for i := range 3 {
		at.AddCompany(fmt.Sprintf("Company %d", i))
	}
	if r := api(t, s, http.MethodPost, "Companies/query", `{"filter":[{"op":"gte","field":"id","value":0}],"IncludeFields":["companyName"],"MaxRecords":2}`); r.status != 500 || !strings.Contains(r.String(), "id") {
		t.Errorf("two pages without id in IncludeFields = %d %s, want 500 naming id", r.status, r)
	}
	for _, body := range []string{
		`{"filter":[{"op":"gte","field":"id","value":0}],"IncludeFields":["companyName"],"MaxRecords":3}`,
		`{"filter":[{"op":"gte","field":"id","value":0}],"IncludeFields":["ID","companyName"],"MaxRecords":2}`,
	} {
		if r := api(t, s, http.MethodPost, "Companies/query", body); r.status != 200 {
			t.Errorf("%s = %d %s, want 200", body, r.status, r)
		}
	}
}

func TestAutotask_operators(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	at := s.Autotask()
	a := at.AddServiceDetails(AutotaskService{Name: "Alpha Backup", UnitPrice: 10, Description: "daily", Active: true})
	b := at.AddServiceDetails(AutotaskService{Name: "Beta AV", UnitPrice: 20, Active: false})
	c := at.AddServiceDetails(AutotaskService{Name: "Gamma Backup Plus", UnitPrice: 30, Active: true, PeriodType: "Yearly"})
	ids := func(ns ...int64) string {
		var parts []string
		for _, n := range ns {
			parts = append(parts, fmt.Sprint(n))
		}
		return strings.Join(parts, ",")
	}
	tests := []struct {
		filter string
		want   string
	}{
		{`{"op":"eq","field":"unitPrice","value":20}`, ids(b)},
		{`{"op":"eq","field":"name","value":"BETA av"}`, ids(b)},
		{`{"op":"noteq","field":"unitPrice","value":20}`, ids(a, c)},
		{`{"op":"gt","field":"unitPrice","value":10}`, ids(b, c)},
		{`{"op":"gte","field":"unitPrice","value":"20"}`, ids(b, c)},
		{`{"op":"lt","field":"unitPrice","value":20.5}`, ids(a, b)},
		{`{"op":"lte","field":"unitPrice","value":10}`, ids(a)},
		{`{"op":"beginsWith","field":"name","value":"gamma"}`, ids(c)},
		{`{"op":"endsWith","field":"name","value":"BACKUP"}`, ids(a)},
		{`{"op":"contains","field":"name","value":"backup"}`, ids(a, c)},
		{`{"op":"exist","field":"description"}`, ids(a)},
		{`{"op":"notExist","field":"description"}`, ids(b, c)},
		{`{"op":"in","field":"id","value":[30000000,30000002,1]}`, ids(a, c)},
		{`{"op":"notIn","field":"id","value":[30000000]}`, ids(b, c)},
		{`{"op":"in","field":"name","value":["alpha backup","Beta AV"]}`, ids(a, b)},
		{`{"op":"eq","field":"isActive","value":false}`, ids(b)},
		{`{"op":"eq","field":"isActive","value":true}`, ids(a, c)},
		{`{"op":"eq","field":"periodType","value":4}`, ids(c)},
		{`{"op":"gte","field":"createDate","value":"2026-11-15T10:30:00Z"}`, ids(a, b, c)},
		{`{"op":"gt","field":"createDate","value":"2026-11-15T10:30:00.000Z"}`, ""},
		{`{"op":"lt","field":"createDate","value":"2026-11-16"}`, ids(a, b, c)},
		{`{"op":"eq","field":"description","value":null}`, ids(b, c)},
		{`{"op":"or","items":[{"op":"eq","field":"id","value":30000000},{"op":"and","items":[{"op":"gt","field":"unitPrice","value":15},{"op":"eq","field":"isActive","value":true}]}]}`, ids(a, c)},
		{`{"op":"and","items":[{"op":"contains","field":"name","value":"a"},{"op":"lt","field":"unitPrice","value":25}]}`, ids(a, b)},
		{`{"op":"eq","field":"MyUdf","udf":true,"value":"Gold"}`, ""},
		{`{"op":"notExist","field":"MyUdf","udf":true}`, ids(a, b, c)},
	}
	for _, tt := range tests {
		r := api(t, s, http.MethodPost, "Services/query", `{"filter":[`+tt.filter+`],"IncludeFields":["id"]}`)
		var page struct{ Items []struct{ ID int64 } }
		r.decode(t, &page)
		var got []int64
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		if r.status != 200 || ids(got...) != tt.want {
			t.Errorf("filter %s = %d %v, want [%s]", tt.filter, r.status, got, tt.want)
		}
	}
	// Top-level conditions are ANDed.
	r := api(t, s, http.MethodPost, "Services/query/count", `{"filter":[{"op":"contains","field":"name","value":"backup"},{"op":"gt","field":"unitPrice","value":10}]}`)
	if string(r.body) != `{"queryCount":1}` {
		t.Errorf("ANDed filter count = %s, want 1", r)
	}
}

func TestAutotask_paging(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	at := s.Autotask()
	for i := range 1203 {
		at.AddCompany(fmt.Sprintf("Company %04d", i))
	}
	type page struct {
		Items       []struct{ ID int64 }
		PageDetails struct {
			Count        int
			RequestCount int
			PrevPageURL  *string `json:"prevPageUrl"`
			NextPageURL  *string `json:"nextPageUrl"`
		}
	}
	body := `{"filter":[{"op":"gte","field":"id","value":0}],"IncludeFields":["id"]}`
	var p page
	api(t, s, http.MethodPost, "Companies/query", body).decode(t, &p)
	var all []int64
	pages := 0
	for {
		pages++
		if p.PageDetails.Count != len(p.Items) || p.PageDetails.RequestCount != 500 {
			t.Fatalf("page %d details = %+v with %d items", pages, p.PageDetails, len(p.Items))
		}
		for _, it := range p.Items {
			all = append(all, it.ID)
		}
		if p.PageDetails.NextPageURL == nil {
			break
		}
		next := *p.PageDetails.NextPageURL
		if !strings.HasPrefix(next, s.AutotaskBaseURL()+"V1.0/Companies/query/next?paging=") {
			t.Fatalf("nextPageUrl %q is not absolute under the zone root", next)
		}
		// A GET to the nextPageUrl of a POST query is refused, ASP.NET style.
		if r := send(t, s, http.MethodGet, next, "", authHeaders()); r.status != http.StatusMethodNotAllowed || r.message(t) == "" {
			t.Fatalf("GET nextPageUrl after POST = %d %s, want 405", r.status, r)
		}
		// The body must come along, unchanged.
		if r := send(t, s, http.MethodPost, next, "", authHeaders()); r.status != 500 {
			t.Fatalf("POST nextPageUrl without body = %d %s, want 500", r.status, r)
		}
		if r := send(t, s, http.MethodPost, next, `{"filter":[{"op":"gte","field":"id","value":1}],"IncludeFields":["id"]}`, authHeaders()); r.status != 500 {
			t.Fatalf("POST nextPageUrl with another query = %d %s, want 500", r.status, r)
		}
		p = page{}
		send(t, s, http.MethodPost, next, body, authHeaders()).decode(t, &p)
	}
	if pages != 3 || len(all) != 1203 || all[0] != 174 || all[1202] != 174+1202 {
		t.Fatalf("paged %d pages, %d ids (%v..), want 3 pages of 1203 ids", pages, len(all), all[:1])
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("ids not ascending at %d: %d after %d", i, all[i], all[i-1])
		}
	}

	// A GET query pages with GET; its nextPageUrl carries the search.
	search := `{"filter":[{"op":"beginsWith","field":"companyName","value":"Company 1"}],"MaxRecords":150}`
	p = page{}
	api(t, s, http.MethodGet, "Companies/query?search="+url.QueryEscape(search), "").decode(t, &p)
	got := len(p.Items)
	for p.PageDetails.NextPageURL != nil {
		next := *p.PageDetails.NextPageURL
		if !strings.Contains(next, "&search=") {
			t.Fatalf("GET nextPageUrl %q has no search", next)
		}
		if r := send(t, s, http.MethodPost, next, search, authHeaders()); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("POST to a GET query's nextPageUrl = %d, want 405", r.status)
		}
		p = page{}
		send(t, s, http.MethodGet, next, "", authHeaders()).decode(t, &p)
		got += len(p.Items)
	}
	if got != 203 {
		t.Errorf("GET paging returned %d rows, want 203", got)
	}

	if r := api(t, s, http.MethodPost, "Companies/query/next?paging=garbage", body); r.status != 500 {
		t.Errorf("bad paging token = %d, want 500", r.status)
	}
	tok := pageToken{Entity: entServices, Method: http.MethodPost, Hash: "x"}.encode()
	if r := api(t, s, http.MethodPost, "Companies/query/next?paging="+tok, body); r.status != 500 {
		t.Errorf("another entity's paging token = %d, want 500", r.status)
	}
}

func TestAutotask_childListPaging(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	k, _ := seed(t, s)
	at := s.Autotask()
	for i := range 45 { // 45 services × 12 months = 540 unit rows
		at.SetUnits(k, at.AddService(fmt.Sprintf("S%d", i), 1), int64(i), date(2026, 1, 1))
	}
	var p struct {
		Items       []struct{ ID, ContractID int64 }
		PageDetails struct {
			NextPageURL *string `json:"nextPageUrl"`
		}
	}
	api(t, s, http.MethodGet, fmt.Sprintf("Contracts/%d/ServiceUnits", k), "").decode(t, &p)
	n := len(p.Items)
	if n != 500 || p.PageDetails.NextPageURL == nil {
		t.Fatalf("first child page: %d rows, next %v", n, p.PageDetails.NextPageURL)
	}
	next := *p.PageDetails.NextPageURL
	p.Items, p.PageDetails.NextPageURL = nil, nil
	send(t, s, http.MethodGet, next, "", authHeaders()).decode(t, &p)
	if n += len(p.Items); n != 540 || p.PageDetails.NextPageURL != nil {
		t.Errorf("child list paged %d rows, want 540", n)
	}
	var svcs struct{ Items []struct{ ContractID int64 } }
	api(t, s, http.MethodGet, fmt.Sprintf("Contracts/%d/Services", k), "").decode(t, &svcs)
	if len(svcs.Items) != 45 || svcs.Items[0].ContractID != k {
		t.Errorf("Contracts/%d/Services returned %d lines", k, len(svcs.Items))
	}
}

func TestAutotask_servicesCreateUpdate(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	at := s.Autotask()
	inactive := at.AddBillingCode(AutotaskBillingCode{Name: "Old", Active: false})
	material := at.AddBillingCode(AutotaskBillingCode{Name: "Hardware", UseType: "Material", Active: true})
	fails := []struct{ name, body, want string }{
		{"missing fields", `{"description":"x"}`, "name, unitPrice, periodType, billingCodeID"},
		{"unknown billing code", `{"name":"S","unitPrice":1,"periodType":1,"billingCodeID":1}`, "billing code 1 does not exist"},
		{"inactive billing code", fmt.Sprintf(`{"name":"S","unitPrice":1,"periodType":1,"billingCodeID":%d}`, inactive), "inactive"},
		{"material billing code", fmt.Sprintf(`{"name":"S","unitPrice":1,"periodType":1,"billingCodeID":%d}`, material), "Recurring Contract Service"},
		{"bad period type", `{"name":"S","unitPrice":1,"periodType":9,"billingCodeID":29682800}`, "picklist"},
		{"bad unit price", `{"name":"S","unitPrice":"cheap","periodType":1,"billingCodeID":29682800}`, "unitPrice"},
		{"blank name", `{"name":"  ","unitPrice":1,"periodType":1,"billingCodeID":29682800}`, "name"},
		{"too long name", `{"name":"` + strings.Repeat("x", 151) + `","unitPrice":1,"periodType":1,"billingCodeID":29682800}`, "maximum length"},
		{"not an object", `[1]`, "JSON"},
	}
	for _, tt := range fails {
		r := api(t, s, http.MethodPost, "Services", tt.body)
		if r.status != 500 || !strings.Contains(strings.Join(r.errors(t), " "), tt.want) {
			t.Errorf("%s: %d %s, want 500 mentioning %q", tt.name, r.status, r, tt.want)
		}
	}

	// Keys are case-insensitive; read-only and unknown fields are ignored.
	r := api(t, s, http.MethodPost, "Services", `{"id":0,"Name":"Backup","UNITPRICE":"12.5","periodtype":2,"billingCodeId":29682800,"createDate":"2001-01-01","colour":"red","description":"nightly"}`)
	if r.status != 200 || string(r.body) != `{"itemId":30000000}` {
		t.Fatalf("create = %d %s", r.status, r)
	}
	svc, _ := at.Service(30000000)
	if svc.Name != "Backup" || svc.UnitPrice != 12.5 || svc.PeriodType != "Quarterly" || !svc.Active || svc.Description != "nightly" {
		t.Errorf("created service = %+v", svc)
	}
	if g := api(t, s, http.MethodGet, "Services/30000000", ""); !strings.Contains(g.String(), `"createDate":"2026-11-15T10:30:00Z"`) {
		t.Errorf("createDate not the server's: %s", g)
	}

	// PATCH changes only what it names.
	if r := api(t, s, http.MethodPatch, "Services", `{"id":30000000,"unitPrice":14,"isActive":false}`); r.status != 200 || string(r.body) != `{"itemId":30000000}` {
		t.Fatalf("PATCH = %d %s", r.status, r)
	}
	if svc, _ := at.Service(30000000); svc.UnitPrice != 14 || svc.Active || svc.Description != "nightly" || svc.PeriodType != "Quarterly" {
		t.Errorf("after PATCH: %+v", svc)
	}
	// PUT nulls the writable fields it leaves out, so required ones must be sent.
	if r := api(t, s, http.MethodPut, "Services", `{"id":30000000,"name":"Backup"}`); r.status != 500 {
		t.Errorf("PUT without required fields = %d %s, want 500", r.status, r)
	}
	if r := api(t, s, http.MethodPut, "Services", `{"id":30000000,"name":"Backup 2","unitPrice":15,"periodType":1,"billingCodeID":29682800}`); r.status != 200 {
		t.Fatalf("PUT = %d %s", r.status, r)
	}
	if svc, _ := at.Service(30000000); svc.Name != "Backup 2" || svc.Description != "" || svc.Active || svc.PeriodType != "Monthly" {
		t.Errorf("after PUT: %+v", svc)
	}
	if g := api(t, s, http.MethodGet, "Services/30000000", ""); !strings.Contains(g.String(), `"description":null`) || !strings.Contains(g.String(), `"createDate":"2026-11-15T10:30:00Z"`) {
		t.Errorf("after PUT the item is %s", g)
	}
	for _, body := range []string{`{"unitPrice":1}`, `{"id":1,"unitPrice":1}`} {
		if r := api(t, s, http.MethodPatch, "Services", body); r.status != 500 {
			t.Errorf("PATCH %s = %d, want 500", body, r.status)
		}
	}

	// The name is a unique key, case ignored, inactive services included.
	dup := `{"name":"backup 2","unitPrice":1,"periodType":1,"billingCodeID":29682800}`
	if r := api(t, s, http.MethodPost, "Services", dup); r.status != 500 || !strings.Contains(r.String(), "duplicate key") {
		t.Errorf("create of a name in use = %d %s, want 500 duplicate key", r.status, r)
	}
	r = api(t, s, http.MethodPost, "Services", strings.Replace(dup, "backup 2", "Other", 1))
	if r.status != 200 {
		t.Fatalf("create = %d %s", r.status, r)
	}
	if r := api(t, s, http.MethodPatch, "Services", `{"id":30000001,"name":"BACKUP 2"}`); r.status != 500 || !strings.Contains(r.String(), "30000000") {
		t.Errorf("rename to a name in use = %d %s, want 500 naming service 30000000", r.status, r)
	}
	if r := api(t, s, http.MethodPatch, "Services", `{"id":30000000,"name":"BACKUP 2","unitPrice":2}`); r.status != 200 {
		t.Errorf("a service's own name in other case = %d %s, want 200", r.status, r)
	}
}

func TestAutotask_companiesAndContractsCreate(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := api(t, s, http.MethodPost, "Companies", `{"companyName":"Acme","companyType":1,"ownerResourceID":29682885,"phone":"555"}`)
	if r.status != 200 || string(r.body) != `{"itemId":174}` {
		t.Fatalf("create company = %d %s", r.status, r)
	}
	if r := api(t, s, http.MethodPost, "Companies", `{"companyName":"Acme"}`); r.status != 500 {
		t.Errorf("company without required fields = %d", r.status)
	}
	good := `{"companyID":174,"contractName":"K","contractType":7,"status":1,"startDate":"2026-01-01T00:00:00Z","endDate":"2026-12-31T00:00:00Z","timeReportingRequiresStartAndStopTimes":1}`
	if r := api(t, s, http.MethodPost, "Contracts", good); r.status != 200 || string(r.body) != `{"itemId":29684000}` {
		t.Fatalf("create contract = %d %s", r.status, r)
	}
	for name, body := range map[string]string{
		"unknown company": strings.Replace(good, `"companyID":174`, `"companyID":9`, 1),
		"bad type":        strings.Replace(good, `"contractType":7`, `"contractType":2`, 1),
		"ends early":      strings.Replace(good, `2026-12-31`, `2025-12-31`, 1),
		"no start":        strings.Replace(good, `"startDate":"2026-01-01T00:00:00Z",`, ``, 1),
	} {
		if r := api(t, s, http.MethodPost, "Contracts", body); r.status != 500 {
			t.Errorf("contract %s = %d %s, want 500", name, r.status, r)
		}
	}
	// contractType and companyID are read-only after create.
	if r := api(t, s, http.MethodPatch, "Contracts", `{"id":29684000,"contractType":1,"companyID":1,"status":0}`); r.status != 200 {
		t.Fatalf("PATCH contract = %d %s", r.status, r)
	}
	k := s.Autotask().Contracts()[0]
	if k.Type != "Recurring Service" || k.CompanyID != 174 || k.Status != "Inactive" {
		t.Errorf("after PATCH: %+v", k)
	}
}

func TestAutotask_contractServices(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	k, svc := seed(t, s)
	at := s.Autotask()
	tm := at.AddContract(AutotaskContract{CompanyID: 174, Name: "T&M", Type: "Time & Materials"})
	off := at.AddService("Retired", 1)
	at.SetServiceActive(off, false)
	path := fmt.Sprintf("Contracts/%d/Services", k)

	r := api(t, s, http.MethodPost, path, fmt.Sprintf(`{"serviceID":%d}`, svc))
	if r.status != 200 || string(r.body) != `{"itemId":40000000}` {
		t.Fatalf("create line = %d %s", r.status, r)
	}
	if lines := at.ContractServices(); len(lines) != 1 || lines[0].UnitPrice != 4.5 || lines[0].ContractID != k {
		t.Errorf("lines = %+v, want one at the service's price", lines)
	}
	rows := at.UnitRows(k, svc)
	if len(rows) != 12 || !rows[0].StartDate.Equal(date(2026, 1, 1)) || !rows[0].EndDate.Equal(date(2026, 1, 31)) ||
		!rows[11].StartDate.Equal(date(2026, 12, 1)) || !rows[11].EndDate.Equal(date(2026, 12, 31)) || rows[5].Units != 0 {
		t.Errorf("unit rows = %+v, want 12 monthly rows with 0 units", rows)
	}
	fails := map[string]struct{ path, body string }{
		"duplicate":          {path, fmt.Sprintf(`{"serviceID":%d}`, svc)},
		"inactive service":   {path, fmt.Sprintf(`{"serviceID":%d}`, off)},
		"unknown service":    {path, `{"serviceID":1}`},
		"missing service":    {path, `{"unitPrice":1}`},
		"contract mismatch":  {path, fmt.Sprintf(`{"contractID":1,"serviceID":%d}`, off)},
		"not recurring":      {fmt.Sprintf("Contracts/%d/Services", tm), fmt.Sprintf(`{"serviceID":%d}`, svc)},
		"unknown contract":   {"Contracts/1/Services", fmt.Sprintf(`{"serviceID":%d}`, svc)},
		"update other's row": {fmt.Sprintf("Contracts/%d/Services", tm), `{"id":40000000,"unitPrice":2}`},
	}
	for name, f := range fails {
		method := http.MethodPost
		if strings.Contains(f.body, `"id"`) {
			method = http.MethodPatch
		}
		if r := api(t, s, method, f.path, f.body); r.status != 500 {
			t.Errorf("%s: %d %s, want 500", name, r.status, r)
		}
	}
	if r := api(t, s, http.MethodPatch, path, `{"id":40000000,"unitPrice":3.75,"serviceID":1}`); r.status != 200 {
		t.Fatalf("PATCH line = %d %s", r.status, r)
	}
	if lines := at.ContractServices(); lines[0].UnitPrice != 3.75 || lines[0].ServiceID != svc {
		t.Errorf("after PATCH: %+v", lines)
	}
	var q struct {
		Items []struct{ ID, ServiceID int64 }
	}
	api(t, s, http.MethodPost, "ContractServices/query", fmt.Sprintf(`{"filter":[{"op":"eq","field":"contractID","value":%d},{"op":"eq","field":"serviceID","value":%d}]}`, k, svc)).decode(t, &q)
	if len(q.Items) != 1 || q.Items[0].ID != 40000000 {
		t.Errorf("ContractServices query = %+v", q.Items)
	}
}

func unitsOf(t *testing.T, at *Autotask, contract, service int64) string {
	t.Helper()
	var parts []string
	for _, r := range at.UnitRows(contract, service) {
		parts = append(parts, fmt.Sprintf("%s..%s=%d", r.StartDate.Format("01-02"), r.EndDate.Format("01-02"), r.Units))
	}
	return strings.Join(parts, " ")
}

func TestAutotask_adjustments(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	at := s.Autotask()
	k := at.AddContract(AutotaskContract{CompanyID: at.AddCompany("Acme"), Name: "Q1", StartDate: date(2026, 1, 1), EndDate: date(2026, 3, 31)})
	svc := at.AddService("AV", 4.5)

	// The first adjustment creates the line (at adjustedUnitPrice) and splits February.
	r := api(t, s, http.MethodPost, "ContractServiceAdjustments",
		fmt.Sprintf(`{"ContractID":%d,"serviceId":%d,"unitChange":10,"effectiveDate":"2026-02-15T00:00:00Z","adjustedUnitPrice":4}`, k, svc))
	if r.status != 200 || string(r.body) != `{"itemId":60000000}` {
		t.Fatalf("adjustment = %d %s", r.status, r)
	}
	if got, want := unitsOf(t, at, k, svc), "01-01..01-31=0 02-01..02-14=0 02-15..02-28=10 03-01..03-31=10"; got != want {
		t.Errorf("after +10 from 02-15: %s\nwant %s", got, want)
	}
	lines := at.ContractServices()
	if len(lines) != 1 || lines[0].UnitPrice != 4 {
		t.Errorf("auto-created line = %+v, want price 4", lines)
	}

	// Through the child URL and by contractServiceID: -4 from 03-10 splits March.
	r = api(t, s, http.MethodPost, fmt.Sprintf("Contracts/%d/ServiceAdjustments", k),
		fmt.Sprintf(`{"contractServiceID":%d,"unitChange":-4,"effectiveDate":"2026-03-10"}`, lines[0].ID))
	if r.status != 200 {
		t.Fatalf("child adjustment = %d %s", r.status, r)
	}
	if got, want := unitsOf(t, at, k, svc), "01-01..01-31=0 02-01..02-14=0 02-15..02-28=10 03-01..03-09=10 03-10..03-31=6"; got != want {
		t.Errorf("after -4 from 03-10: %s\nwant %s", got, want)
	}
	// An adjustment on a period start needs no split.
	api(t, s, http.MethodPost, "ContractServiceAdjustments", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1,"effectiveDate":"2026-01-01"}`, k, svc))
	if got, want := unitsOf(t, at, k, svc), "01-01..01-31=1 02-01..02-14=1 02-15..02-28=11 03-01..03-09=11 03-10..03-31=7"; got != want {
		t.Errorf("after +1 from 01-01: %s\nwant %s", got, want)
	}
	if u, ok := at.Units(k, svc, time.Date(2026, 3, 10, 23, 59, 0, 0, time.UTC)); !ok || u != 7 {
		t.Errorf("Units(03-10 23:59) = %d %v, want 7", u, ok)
	}
	var q struct {
		Items []struct {
			Units              int64
			StartDate, EndDate string
		}
	}
	api(t, s, http.MethodPost, "ContractServiceUnits/query", fmt.Sprintf(
		`{"filter":[{"op":"eq","field":"contractID","value":%d},{"op":"lte","field":"startDate","value":"2026-02-20T00:00:00Z"},{"op":"gte","field":"endDate","value":"2026-02-20T00:00:00Z"}]}`, k)).decode(t, &q)
	if len(q.Items) != 1 || q.Items[0].Units != 11 || q.Items[0].StartDate != "2026-02-15T00:00:00Z" || q.Items[0].EndDate != "2026-02-28T00:00:00Z" {
		t.Errorf("units query for 02-20 = %+v", q.Items)
	}

	before := unitsOf(t, at, k, svc)
	tm := at.AddContract(AutotaskContract{CompanyID: 174, Name: "T&M", Type: "Time & Materials"})
	closed := at.AddContract(AutotaskContract{CompanyID: 174, Name: "Closed", Status: "Inactive"})
	off := at.AddService("Off", 1)
	at.SetServiceActive(off, false)
	other := at.AddService("Other", 1)
	fails := []struct{ name, body, want string }{
		{"below zero", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":-2,"effectiveDate":"2026-01-15"}`, k, svc), "negative"},
		{"below zero on a new line", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":-1,"effectiveDate":"2026-01-15"}`, k, other), "negative"},
		{"missing effectiveDate", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1}`, k, svc), "effectiveDate"},
		{"missing unitChange", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"effectiveDate":"2026-01-15"}`, k, svc), "unitChange"},
		{"missing contract", fmt.Sprintf(`{"serviceID":%d,"unitChange":1,"effectiveDate":"2026-01-15"}`, svc), "contractID"},
		{"unknown contract", fmt.Sprintf(`{"contractID":1,"serviceID":%d,"unitChange":1,"effectiveDate":"2026-01-15"}`, svc), "Contract with id 1"},
		{"inactive contract", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1,"effectiveDate":"2026-01-15"}`, closed, svc), "not active"},
		{"not recurring", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1,"effectiveDate":"2026-01-15"}`, tm, svc), "Recurring Service"},
		{"no service", fmt.Sprintf(`{"contractID":%d,"unitChange":1,"effectiveDate":"2026-01-15"}`, k), "serviceID"},
		{"unknown service", fmt.Sprintf(`{"contractID":%d,"serviceID":1,"unitChange":1,"effectiveDate":"2026-01-15"}`, k), "Service with id 1"},
		{"inactive service", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1,"effectiveDate":"2026-01-15"}`, k, off), "inactive"},
		{"unknown contract service", fmt.Sprintf(`{"contractID":%d,"contractServiceID":1,"unitChange":1,"effectiveDate":"2026-01-15"}`, k), "ContractService with id 1"},
		{"service mismatch", fmt.Sprintf(`{"contractID":%d,"contractServiceID":40000000,"serviceID":%d,"unitChange":1,"effectiveDate":"2026-01-15"}`, k, other), "does not match"},
		{"before the contract", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1,"effectiveDate":"2025-12-31"}`, k, svc), "outside"},
		{"after the contract", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1,"effectiveDate":"2026-04-01"}`, k, svc), "outside"},
		{"bad date", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1,"effectiveDate":"tomorrow"}`, k, svc), "date"},
	}
	for _, tt := range fails {
		r := api(t, s, http.MethodPost, "ContractServiceAdjustments", tt.body)
		if r.status != 500 || !strings.Contains(strings.Join(r.errors(t), " "), tt.want) {
			t.Errorf("%s: %d %s, want 500 mentioning %q", tt.name, r.status, r, tt.want)
		}
	}
	if r := api(t, s, http.MethodPost, fmt.Sprintf("Contracts/%d/ServiceAdjustments", tm), fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":1,"effectiveDate":"2026-01-15"}`, k, svc)); r.status != 500 {
		t.Errorf("child URL with another contract in the body = %d, want 500", r.status)
	}
	if got := unitsOf(t, at, k, svc); got != before {
		t.Errorf("refused adjustments changed units: %s\nwas %s", got, before)
	}
	if n := len(at.ContractServices()); n != 1 {
		t.Errorf("refused adjustments created lines: %d", n)
	}
	// Down to exactly zero is allowed.
	if r := api(t, s, http.MethodPost, "ContractServiceAdjustments", fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":-1,"effectiveDate":"2026-01-01"}`, k, svc)); r.status != 200 {
		t.Errorf("adjust to zero = %d %s", r.status, r)
	}

	adjs := at.Adjustments()
	if len(adjs) != 4 {
		t.Fatalf("Adjustments() = %+v, want 4", adjs)
	}
	if a := adjs[0]; a.ID != 60000000 || a.ContractID != k || a.ServiceID != svc || a.UnitChange != 10 ||
		!a.EffectiveDate.Equal(date(2026, 2, 15)) || a.AdjustedUnitPrice == nil || *a.AdjustedUnitPrice != 4 || a.Created != testNow {
		t.Errorf("Adjustments()[0] = %+v", a)
	}
	if a := adjs[1]; a.ContractServiceID != 40000000 || a.ServiceID != svc || a.AdjustedUnitPrice != nil {
		t.Errorf("Adjustments()[1] = %+v", a)
	}
}

func TestAutotask_adjustmentDateAsWritten(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	k, svc := seed(t, s)
	r := api(t, s, http.MethodPost, "ContractServiceAdjustments",
		fmt.Sprintf(`{"contractID":%d,"serviceID":%d,"unitChange":2,"effectiveDate":"2026-11-01T00:00:00+01:00"}`, k, svc))
	if r.status != http.StatusOK {
		t.Fatalf("adjustment = %d %s", r.status, r)
	}
	at := s.Autotask()
	if u, _ := at.Units(k, svc, date(2026, 10, 31)); u != 0 {
		t.Errorf("units on 31 October = %d, want 0", u)
	}
	if u, _ := at.Units(k, svc, date(2026, 11, 1)); u != 2 {
		t.Errorf("units on 1 November = %d, want 2", u)
	}
	if e := at.Adjustments()[0].EffectiveDate; !e.Equal(date(2026, 11, 1)) {
		t.Errorf("EffectiveDate = %v, want 2026-11-01", e)
	}
}

func TestAutotask_unitAccessors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	k, svc := seed(t, s)
	at := s.Autotask()
	if _, ok := at.Units(k, svc, testNow); ok {
		t.Error("Units reported for a missing line")
	}
	at.SetUnits(k, svc, 5, date(2026, 11, 10))
	at.SetUnits(k, svc, 8, date(2026, 12, 1))
	for _, c := range []struct {
		at   time.Time
		want int64
	}{{date(2026, 11, 9), 0}, {date(2026, 11, 10), 5}, {date(2026, 11, 30), 5}, {date(2026, 12, 31), 8}} {
		if u, ok := at.Units(k, svc, c.at); !ok || u != c.want {
			t.Errorf("Units(%s) = %d %v, want %d", c.at.Format(time.DateOnly), u, ok, c.want)
		}
	}
	if _, ok := at.Units(k, svc, date(2027, 1, 1)); ok {
		t.Error("Units reported after the contract's end")
	}
	if n := len(at.UnitRows(k, svc)); n != 13 {
		t.Errorf("UnitRows has %d rows, want 13 (November split)", n)
	}
	if len(at.Adjustments()) != 0 {
		t.Error("SetUnits recorded adjustments")
	}
	if id := at.AddContractService(k, svc, 9); id != 40000000 {
		t.Errorf("AddContractService on an existing line = %d, want the line", id)
	}
	at.DeleteService(svc)
	if _, ok := at.Service(svc); ok || len(at.Services()) != 0 {
		t.Error("DeleteService left the service")
	}
	if r := api(t, s, http.MethodGet, fmt.Sprintf("Services/%d", svc), ""); string(r.body) != `{"item":null}` {
		t.Errorf("deleted service reads as %s", r)
	}
	at.SetContractStatus(k, "Inactive")
	if at.Contracts()[0].Status != "Inactive" {
		t.Error("SetContractStatus had no effect")
	}
}

func TestAutotask_monthlyPeriods(t *testing.T) {
	t.Parallel()
	got := monthlyPeriods(date(2026, 1, 31), date(2026, 5, 15))
	want := [][2]time.Time{
		{date(2026, 1, 31), date(2026, 2, 27)},
		{date(2026, 2, 28), date(2026, 3, 30)},
		{date(2026, 3, 31), date(2026, 4, 29)},
		{date(2026, 4, 30), date(2026, 5, 15)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("monthlyPeriods = %v\nwant %v", got, want)
	}
}

func TestAutotask_threadLimit(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	seed(t, s)
	entered := make(chan struct{})
	release := make(chan struct{})
	s.autotask.holdHook = func(endpoint string) {
		if endpoint != entCompanies {
			return
		}
		select {
		case <-release: // released: no more holding
		case entered <- struct{}{}:
			<-release
		}
	}
	var wg sync.WaitGroup
	statuses := make(chan int, 3)
	for range 3 {
		wg.Go(func() {
			r, err := trySend(s, http.MethodGet, "/ATServicesRest/V1.0/Companies/174", "", authHeaders())
			if err != nil {
				t.Error(err)
			}
			statuses <- r.status
		})
	}
	for range 3 {
		<-entered
	}
	// Three Companies requests are in flight: the fourth is refused...
	r := api(t, s, http.MethodPost, "Companies/query", `{"filter":[]}`)
	if r.status != http.StatusTooManyRequests {
		t.Errorf("4th concurrent request = %d %s, want 429", r.status, r)
	} else if e := r.errors(t)[0]; !strings.HasPrefix(e, "Thread Threshold Exceeded") || !strings.Contains(e, "thread threshold of 3 threads") {
		t.Errorf("thread error = %q", e)
	}
	// ...while other endpoints have their own slots.
	if r := api(t, s, http.MethodGet, "Contracts/29684000", ""); r.status != http.StatusOK {
		t.Errorf("Contracts while Companies is saturated = %d, want 200", r.status)
	}
	// Another integration code has its own slots too; with the default
	// credentials only one code exists, so check the limiter directly.
	if rel, ok := s.autotask.acquire("OTHER", entCompanies); !ok {
		t.Error("another integration code shares the slots")
	} else {
		rel()
	}
	close(release)
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusOK {
			t.Errorf("held request = %d, want 200", st)
		}
	}
	if r := api(t, s, http.MethodGet, "Companies/174", ""); r.status != http.StatusOK {
		t.Errorf("after release = %d, want 200", r.status)
	}
}

func TestAutotask_hourlyLimit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	s := Start(t, WithClock(clock), WithHourlyLimit(5))
	for i := range 3 {
		api(t, s, http.MethodGet, "Companies/174", "")
		if i == 0 {
			advance(30 * time.Minute)
		}
	}
	var ti struct {
		ExternalRequestThreshold, RequestThresholdTimeframe, CurrentTimeframeRequestCount int
	}
	api(t, s, http.MethodGet, "ThresholdInformation", "").decode(t, &ti)
	if ti.ExternalRequestThreshold != 5 || ti.RequestThresholdTimeframe != 60 || ti.CurrentTimeframeRequestCount != 4 {
		t.Errorf("ThresholdInformation = %+v, want 4 of 5 used", ti)
	}
	api(t, s, http.MethodGet, "Companies/174", "")
	r := api(t, s, http.MethodGet, "Companies/174", "")
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("6th request in the hour = %d %s, want 429", r.status, r)
	}
	if e := r.errors(t)[0]; !strings.Contains(e, "request threshold of 5 requests per hour exceeded") || strings.Contains(e, "Thread") {
		t.Errorf("hourly error = %q", e)
	}
	if r := api(t, s, http.MethodGet, "ThresholdInformation", ""); r.status != http.StatusTooManyRequests {
		t.Errorf("ThresholdInformation over the limit = %d, want 429", r.status)
	}
	if r := send(t, s, http.MethodGet, "/atservicesrest/v1.0/zoneInformation?user=api@msp.example", "", nil); r.status != http.StatusOK {
		t.Errorf("zone lookup over the limit = %d, want 200 (exempt)", r.status)
	}
	// The first request falls out of the rolling hour.
	advance(31 * time.Minute)
	if n := s.Autotask().HourlyCount(); n != 4 {
		t.Errorf("HourlyCount() after the first request aged out = %d, want 4", n)
	}
	if r := api(t, s, http.MethodGet, "Companies/174", ""); r.status != http.StatusOK {
		t.Errorf("after the window rolled = %d, want 200", r.status)
	}
	s.Autotask().SetHourlyCount(5)
	if r := api(t, s, http.MethodGet, "Companies/174", ""); r.status != http.StatusTooManyRequests {
		t.Errorf("after SetHourlyCount(5) = %d, want 429", r.status)
	}
}

func TestAutotask_usageLatency(t *testing.T) {
	t.Parallel()
	const half, threeQuarters = 30 * time.Millisecond, 60 * time.Millisecond
	s := newTestServer(t, WithHourlyLimit(100), WithUsageLatency(half, threeQuarters))
	for used, want := range map[int]time.Duration{1: 0, 49: 0, 50: half, 74: half, 75: threeQuarters, 100: threeQuarters} {
		if got := s.autotask.usageLatency(used); got != want {
			t.Errorf("usageLatency(%d) = %v, want %v", used, got, want)
		}
	}
	for _, c := range []struct {
		before int
		want   time.Duration
	}{{49, half}, {74, threeQuarters}} {
		s.Autotask().SetHourlyCount(c.before)
		start := time.Now()
		if r := api(t, s, http.MethodGet, "ThresholdInformation", ""); r.status != http.StatusOK {
			t.Fatalf("ThresholdInformation = %d", r.status)
		}
		if el := time.Since(start); el < c.want {
			t.Errorf("request number %d took %v, want at least %v", c.before+1, el, c.want)
		}
	}
}

// TestAutotask_usageSyncRecipe walks the usage-sync recipe of the wire
// reference (§1.10) against the example fixture with plain HTTP.
func TestAutotask_usageSyncRecipe(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, WithFixtureFile("testdata/autotask.json"))

	var zone struct{ URL string }
	send(t, s, http.MethodGet, "/atservicesrest/v1.0/zoneInformation?user="+url.QueryEscape(DefaultAutotaskUsername), "", nil).decode(t, &zone)
	root := zone.URL + "V1.0/"
	post := func(path, body string, v any) {
		t.Helper()
		r := send(t, s, http.MethodPost, root+path, body, authHeaders())
		if r.status != http.StatusOK {
			t.Fatalf("POST %s = %d %s", path, r.status, r)
		}
		r.decode(t, v)
	}
	type items[T any] struct{ Items []T }

	var companies items[struct{ ID int64 }]
	post("Companies/query", `{"filter":[{"op":"eq","field":"companyName","value":"Acme Corporation"}]}`, &companies)
	if len(companies.Items) != 1 {
		t.Fatalf("companies = %+v", companies)
	}
	var contracts items[struct{ ID int64 }]
	post("Contracts/query", fmt.Sprintf(`{"filter":[{"op":"eq","field":"companyID","value":%d},{"op":"eq","field":"contractType","value":7},{"op":"eq","field":"status","value":1}]}`, companies.Items[0].ID), &contracts)
	if len(contracts.Items) != 1 || contracts.Items[0].ID != 29684000 {
		t.Fatalf("recurring contracts = %+v", contracts)
	}
	unitsQuery := fmt.Sprintf(`{"filter":[{"op":"in","field":"contractID","value":[%d]},{"op":"lte","field":"startDate","value":"2026-11-15T00:00:00Z"},{"op":"gte","field":"endDate","value":"2026-11-15T00:00:00Z"}],"IncludeFields":["contractID","serviceID","units"]}`, contracts.Items[0].ID)
	type unit struct{ ContractID, ServiceID, Units int64 }
	var units items[unit]
	post("ContractServiceUnits/query", unitsQuery, &units)
	want := []unit{{29684000, 30000000, 25}, {29684000, 30000001, 1}}
	if fmt.Sprint(units.Items) != fmt.Sprint(want) {
		t.Fatalf("current units = %+v, want %+v", units.Items, want)
	}
	// Set the AV line to 31 from 1 November: a +6 adjustment.
	var created struct{ ItemID int64 }
	post("ContractServiceAdjustments", `{"contractID":29684000,"serviceID":30000000,"unitChange":6,"effectiveDate":"2026-11-01T00:00:00Z"}`, &created)
	if created.ItemID == 0 {
		t.Fatal("no itemId")
	}
	units = items[unit]{}
	post("ContractServiceUnits/query", unitsQuery, &units)
	if units.Items[0].Units != 31 {
		t.Errorf("after the adjustment = %+v, want 31 AV units", units.Items)
	}
	if u, _ := s.Autotask().Units(29684000, 30000000, date(2026, 10, 31)); u != 25 {
		t.Errorf("October units = %d, want 25 unchanged", u)
	}
}
