package autotask

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
)

const (
	// baseURLPath is a non-empty zone root, so that tests catch requests that
	// lose it (as go-github does).
	baseURLPath = "/zone5/ATServicesRest"
	apiPath     = baseURLPath + "/V1.0"

	testUser   = "api@msp.example"
	testSecret = "s3cr3t-value"
	testCode   = "INTEGRATION-CODE"
)

// setup starts a test server and returns a client pointed at it with the
// zone root as base URL (no discovery), a mux for the API (paths relative to
// V1.0, e.g. "/Companies/1"), and the server URL. Retries do not sleep.
func setup(t *testing.T, opts ...Option) (client *Client, mux *http.ServeMux, serverURL string) {
	t.Helper()
	mux, serverURL = resttest.Mount(t, apiPath)
	base := []Option{
		WithBaseURL(serverURL + baseURLPath + "/"),
		WithCredentials(testUser, testSecret, testCode),
		WithBackoff(time.Millisecond, 2*time.Millisecond),
	}
	client, err := NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	client.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	// The throttles' clock stands still: a wait the sleep skipped is not
	// over.
	stopped := time.Now()
	client.throttleNow = func() time.Time { return stopped }
	return client, mux, serverURL
}

// recordSleeps makes c record the waits between retries instead of sleeping.
func recordSleeps(c *Client) func() []time.Duration {
	sleeps := new(resttest.Sleeps)
	c.sleep = sleeps.Sleep
	return sleeps.Waits
}

var (
	testMethod   = resttest.Method
	testHeader   = resttest.Header
	testJSONBody = resttest.JSONBody
)

// testAuth checks the three authentication headers.
func testAuth(t *testing.T, r *http.Request) {
	t.Helper()
	testHeader(t, r, "ApiIntegrationCode", testCode)
	testHeader(t, r, "UserName", testUser)
	testHeader(t, r, "Secret", testSecret)
}

func TestNewClient_missingCredentials(t *testing.T) {
	t.Parallel()
	_, err := NewClient(WithCredentials("api@msp.example", "", ""))
	if err == nil || !strings.Contains(err.Error(), "secret, integration code") {
		t.Errorf("NewClient error = %v, want one naming secret and integration code", err)
	}
}

func TestNewClient_options(t *testing.T) {
	t.Parallel()
	creds := WithCredentials(testUser, testSecret, testCode)
	for name, opt := range map[string]Option{
		"concurrency": WithMaxConcurrency(0),
		"retries":     WithMaxRetries(-1),
		"base":        WithBaseURL("webservices5.autotask.net"),
		"lookup":      WithZoneLookupURL("/relative"),
		"impersonate": WithImpersonation(0),
		"http":        WithHTTPClient(nil),
		"backoff":     WithBackoff(time.Second, time.Millisecond),
	} {
		if _, err := NewClient(creds, opt); err == nil {
			t.Errorf("NewClient with bad %s option returned no error", name)
		}
	}
	c, err := NewClient(creds, WithMaxConcurrency(10))
	if err != nil {
		t.Fatal(err)
	}
	if c.maxConc != MaxConcurrency {
		t.Errorf("maxConc = %d, want it capped at %d", c.maxConc, MaxConcurrency)
	}
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, testSecret) || strings.Contains(s, testCode) {
			t.Errorf("formatted client leaks credentials: %s", s)
		}
	}
}

func TestClient_headers(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t, WithImpersonation(29682885), WithUserAgent("psa-sync-test"))
	mux.HandleFunc("/Services/7", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "GET")
		testAuth(t, r)
		testHeader(t, r, "User-Agent", "psa-sync-test")
		testHeader(t, r, "ImpersonationResourceId", "") // only on writes
		fmt.Fprint(w, `{"item":{"id":7}}`)
	})
	mux.HandleFunc("/Services", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "PATCH")
		testAuth(t, r)
		testHeader(t, r, "ImpersonationResourceId", "29682885")
		testHeader(t, r, "Content-Type", "application/json")
		fmt.Fprint(w, `{"itemId":7}`)
	})
	ctx := t.Context()
	if _, _, err := client.Services.Get(ctx, 7); err != nil {
		t.Fatalf("Services.Get returned error: %v", err)
	}
	if _, _, err := client.Services.Update(ctx, &UpdateServiceRequest{ID: 7, IsActive: Ptr(false)}); err != nil {
		t.Fatalf("Services.Update returned error: %v", err)
	}
}

// zoneServer serves a zone lookup that answers with zone roots in turn
// (the last one repeatedly) and the API under each root.
type zoneServer struct {
	*httptest.Server
	lookups atomic.Int32
	mux     *http.ServeMux
}

func newZoneServer(t *testing.T, roots ...string) *zoneServer {
	t.Helper()
	zs := &zoneServer{mux: http.NewServeMux()}
	zs.mux.HandleFunc("GET /lookup/atservicesrest/v1.0/zoneInformation", func(w http.ResponseWriter, r *http.Request) {
		n := int(zs.lookups.Add(1)) - 1
		if got := r.URL.Query().Get("user"); got != testUser {
			t.Errorf("zone lookup user = %q, want %q", got, testUser)
		}
		testHeader(t, r, "Secret", "") // the lookup carries no credentials
		root := roots[min(n, len(roots)-1)]
		fmt.Fprintf(w, `{"zoneName":"Test Zone","url":%q,"webUrl":"https://ww5.autotask.net/","ci":1}`, zs.URL+root)
	})
	zs.Server = httptest.NewServer(zs.mux)
	t.Cleanup(zs.Close)
	return zs
}

func (zs *zoneServer) client(t *testing.T, opts ...Option) *Client {
	t.Helper()
	base := []Option{
		WithZoneLookupURL(zs.URL + "/lookup/atservicesrest/v1.0/zoneInformation"),
		WithCredentials(testUser, testSecret, testCode),
		WithBackoff(time.Millisecond, 2*time.Millisecond),
	}
	c, err := NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func TestClient_zoneDiscovery(t *testing.T) {
	t.Parallel()
	zs := newZoneServer(t, "/zone5/ATServicesRest/")
	zs.mux.HandleFunc("GET /zone5/ATServicesRest/V1.0/Companies/{id}", func(w http.ResponseWriter, r *http.Request) {
		testAuth(t, r)
		fmt.Fprintf(w, `{"item":{"id":%s,"companyName":"Acme"}}`, r.PathValue("id"))
	})
	client := zs.client(t)
	if n := zs.lookups.Load(); n != 0 {
		t.Fatalf("NewClient made %d zone lookups, want none (discovery is lazy)", n)
	}
	if h := client.Host(); h != "" {
		t.Errorf("Host before discovery = %q, want empty", h)
	}
	ctx := t.Context()
	for i := range 3 {
		if _, _, err := client.Companies.Get(ctx, int64(i)); err != nil {
			t.Fatalf("Companies.Get returned error: %v", err)
		}
	}
	if n := zs.lookups.Load(); n != 1 {
		t.Errorf("zone lookups = %d, want 1 (cached)", n)
	}
	if got, want := client.Host(), strings.TrimPrefix(zs.URL, "http://"); got != want {
		t.Errorf("Host = %q, want %q", got, want)
	}
}

func TestClient_zoneMovedAfter401(t *testing.T) {
	t.Parallel()
	zs := newZoneServer(t, "/old/ATServicesRest/", "/new/ATServicesRest/")
	zs.mux.HandleFunc("/old/ATServicesRest/V1.0/Companies/1", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":["Unauthorized"]}`)
	})
	zs.mux.HandleFunc("/new/ATServicesRest/V1.0/Companies/1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":1}}`)
	})
	client := zs.client(t)
	if _, _, err := client.Companies.Get(t.Context(), 1); err != nil {
		t.Fatalf("Companies.Get returned error: %v", err)
	}
	if n := zs.lookups.Load(); n != 2 {
		t.Errorf("zone lookups = %d, want 2 (re-fetched once after the 401)", n)
	}
}

func TestClient_unauthorizedWithBaseURL(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	refusal := &resttest.Answer{Status: http.StatusUnauthorized, Body: `{"errors":["User authentication failed"]}`}
	mux.Handle("/Companies/1", refusal)
	_, _, err := client.Companies.Get(t.Context(), 1)
	if !errors.Is(err, psa.ErrUnauthorized) {
		t.Fatalf("Companies.Get error = %v, want psa.ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testCode) {
		t.Errorf("error leaks credentials: %v", err)
	}
	if n := refusal.Calls(); n != 1 {
		t.Errorf("requests = %d, want 1 (no discovery to retry with a base URL override, no retry of a 401)", n)
	}
}

func TestClient_zoneLookupFailure(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/lookup", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"errors":["Zone information could not be determined"]}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := NewClient(WithZoneLookupURL(srv.URL+"/lookup"), WithCredentials(testUser, testSecret, testCode))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = client.Companies.Get(t.Context(), 1)
	if err == nil || !strings.Contains(err.Error(), "zone lookup") || !strings.Contains(err.Error(), "could not be determined") {
		t.Errorf("Companies.Get error = %v, want a zone lookup error with the server's message", err)
	}
	// Autotask answers a blank or unknown user so: the user name is wrong,
	// not the values of the entity read. A validation error would have the
	// daemon blame each customer's contract_id and read every contract alone.
	if !errors.Is(err, psa.ErrUnauthorized) || errors.Is(err, psa.ErrValidation) {
		t.Errorf("Companies.Get error = %v, want one matching psa.ErrUnauthorized and not psa.ErrValidation", err)
	}
}

// A zone lookup that fails without a message (an outage) says nothing about
// the user name, and one whose URL is wrong (404) says nothing about the
// entity read: taken for psa.ErrNotFound, every contract of a pass would be
// reported missing.
func TestClient_zoneLookupOutage(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusNotFound} {
		mux := http.NewServeMux()
		mux.HandleFunc("/lookup", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		client, err := NewClient(WithZoneLookupURL(srv.URL+"/lookup"), WithCredentials(testUser, testSecret, testCode))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = client.Companies.Get(t.Context(), 1)
		if err == nil || errors.Is(err, psa.ErrUnauthorized) || errors.Is(err, psa.ErrNotFound) {
			t.Errorf("zone lookup %d: Companies.Get error = %v, want a zone lookup error matching neither psa.ErrUnauthorized nor psa.ErrNotFound", status, err)
		}
	}
}

// A 200 that is not a read's envelope (no items and pageDetails, no item:
// an errors array, an empty object) is an error. Read as no rows, a unit
// query would make every line look new, and its whole quantity would be
// posted again as a delta; read as a null item, a service would look
// deleted and be planned for creation again.
func TestClient_readAnswerWithoutEnvelope(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{}`, `{"errors":["Something went wrong"]}`} {
		client, mux, _ := setup(t)
		mux.HandleFunc("/ContractServiceUnits/query", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
		mux.HandleFunc("/Services/query", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
		mux.HandleFunc("/Services/7", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
		units, _, err := client.ContractServiceUnits.List(t.Context(), NewQuery(Eq("contractID", 1)))
		if err == nil || !strings.Contains(err.Error(), "items") || (strings.Contains(body, "Something") && !strings.Contains(err.Error(), "Something went wrong")) {
			t.Errorf("answer %s: ContractServiceUnits.List = %d rows, %v; want an error naming items and the answer's messages", body, len(units), err)
		}
		if list, _, err := client.Services.List(t.Context(), NewQuery(All())); err == nil {
			t.Errorf("answer %s: Services.List = %d rows, no error", body, len(list))
		}
		if _, _, err := client.Services.Get(t.Context(), 7); err == nil || errors.Is(err, psa.ErrNotFound) || !strings.Contains(err.Error(), "item") {
			t.Errorf("answer %s: Services.Get error = %v, want one naming item, not psa.ErrNotFound", body, err)
		}
	}
	// An empty page and a null item are answers.
	client, mux, _ := setup(t)
	mux.HandleFunc("/Services/query", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`)
	})
	mux.HandleFunc("/Services/7", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"item":null}`) })
	if list, _, err := client.Services.List(t.Context(), NewQuery(All())); err != nil || len(list) != 0 {
		t.Errorf("empty page: Services.List = %v, %v", list, err)
	}
	if _, _, err := client.Services.Get(t.Context(), 7); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("null item: Services.Get error = %v, want psa.ErrNotFound", err)
	}
}

func TestCompaniesService_Get(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/Companies/174", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "GET")
		testAuth(t, r)
		fmt.Fprint(w, `{"item":{"id":174,"companyName":"Acme","companyType":1,"isActive":true,"userDefinedFields":[]}}`)
	})
	got, _, err := client.Companies.Get(t.Context(), 174)
	if err != nil {
		t.Fatalf("Companies.Get returned error: %v", err)
	}
	want := &Company{ID: 174, CompanyName: "Acme", CompanyType: 1, IsActive: true, UserDefinedFields: []UserDefinedField{}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Companies.Get returned %+v, want %+v", got, want)
	}
}

func TestCompaniesService_Get_notFound(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/Companies/9", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":null}`)
	})
	_, _, err := client.Companies.Get(t.Context(), 9)
	if !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("Companies.Get error = %v, want psa.ErrNotFound", err)
	}
}

func TestCompaniesService_List_paging(t *testing.T) {
	t.Parallel()
	client, mux, serverURL := setup(t)
	const body = `{"filter":[{"op":"eq","field":"isActive","value":true}],"IncludeFields":["id","companyName"],"MaxRecords":2}`
	mux.HandleFunc("/Companies/query", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "POST")
		testAuth(t, r)
		testJSONBody(t, r, body)
		fmt.Fprintf(w, `{"items":[{"id":1},{"id":2}],"pageDetails":{"count":2,"requestCount":2,"prevPageUrl":null,"nextPageUrl":"%s%s/Companies/query/next?paging=%%7B%%22p%%22%%3A2%%7D"}}`, serverURL, apiPath)
	})
	mux.HandleFunc("/Companies/query/next", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "POST") // the same method as the first page
		testAuth(t, r)
		testJSONBody(t, r, body) // and the same body
		if got := r.URL.Query().Get("paging"); got != `{"p":2}` {
			t.Errorf("paging = %q", got)
		}
		fmt.Fprint(w, `{"items":[{"id":3}],"pageDetails":{"count":1,"requestCount":2,"prevPageUrl":"x","nextPageUrl":null}}`)
	})
	q := NewQuery(Eq("isActive", true))
	q.IncludeFields = []string{"id", "companyName"}
	q.MaxRecords = 2
	got, resp, err := client.Companies.List(t.Context(), q)
	if err != nil {
		t.Fatalf("Companies.List returned error: %v", err)
	}
	want := []*Company{{ID: 1}, {ID: 2}, {ID: 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Companies.List returned %+v, want %+v", got, want)
	}
	if resp.PageDetails == nil || resp.PageDetails.Count != 1 || resp.NextPageURL != "" {
		t.Errorf("last Response page details = %+v, next %q", resp.PageDetails, resp.NextPageURL)
	}
}

func TestCompaniesService_List_foreignNextPage(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	var foreign atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreign.Add(1)
		fmt.Fprint(w, `{"items":[]}`)
	}))
	t.Cleanup(other.Close)
	mux.HandleFunc("/Companies/query", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"items":[{"id":1}],"pageDetails":{"count":1,"requestCount":1,"nextPageUrl":"%s/V1.0/Companies/query/next?paging=x"}}`, other.URL)
	})
	_, _, err := client.Companies.List(t.Context(), NewQuery(All()))
	if err == nil || !strings.Contains(err.Error(), "refusing to send credentials") {
		t.Errorf("Companies.List error = %v, want a refusal to follow a foreign nextPageUrl", err)
	}
	if n := foreign.Load(); n != 0 {
		t.Errorf("foreign server got %d requests, want 0", n)
	}
}

func TestCompaniesService_List_invalidQuery(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
	})
	ctx := t.Context()
	for name, q := range map[string]*Query{
		"nil":         nil,
		"no filter":   {},
		"max records": {Filter: []Filter{All()}, MaxRecords: 501},
		"negative":    {Filter: []Filter{All()}, MaxRecords: -1},
		"no field":    {Filter: []Filter{Eq("", 1)}},
		"unknown op":  {Filter: []Filter{{Op: "like", Field: "x", Value: 1}}},
		"empty in":    {Filter: []Filter{In[int64]("id")}},
		"empty group": {Filter: []Filter{Or()}},
		"too many in": {Filter: []Filter{In("id", make([]int, 501)...)}},
	} {
		if _, _, err := client.Companies.List(ctx, q); err == nil {
			t.Errorf("Companies.List(%s) returned no error", name)
		}
	}
}

func TestCompaniesService_Count(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/Companies/query/count", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "POST")
		testJSONBody(t, r, `{"filter":[{"op":"beginsWith","field":"companyName","value":"Ac"}]}`)
		fmt.Fprint(w, `{"queryCount":42}`)
	})
	n, _, err := client.Companies.Count(t.Context(), NewQuery(BeginsWith("companyName", "Ac")))
	if err != nil || n != 42 {
		t.Errorf("Companies.Count returned %d, %v, want 42", n, err)
	}
}

func TestFilter_MarshalJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		f    Filter
		want string
	}{
		{Eq("id", 0), `{"op":"eq","field":"id","value":0}`},
		{NotEq("isActive", false), `{"op":"noteq","field":"isActive","value":false}`},
		{Gt("id", 5), `{"op":"gt","field":"id","value":5}`},
		{Gte("startDate", at), `{"op":"gte","field":"startDate","value":"2026-10-31T23:00:00Z"}`},
		{Lt("units", 3), `{"op":"lt","field":"units","value":3}`},
		{Lte("endDate", "2026-11-30"), `{"op":"lte","field":"endDate","value":"2026-11-30"}`},
		{BeginsWith("name", "A"), `{"op":"beginsWith","field":"name","value":"A"}`},
		{EndsWith("name", "Z"), `{"op":"endsWith","field":"name","value":"Z"}`},
		{Contains("name", "cme"), `{"op":"contains","field":"name","value":"cme"}`},
		{Exist("parentCompanyID"), `{"op":"exist","field":"parentCompanyID"}`},
		{NotExist("parentCompanyID"), `{"op":"notExist","field":"parentCompanyID"}`},
		{In[int64]("contractID", 1, 2), `{"op":"in","field":"contractID","value":[1,2]}`},
		{NotIn("status", 3), `{"op":"notIn","field":"status","value":[3]}`},
		{Eq("Tier", "Gold").AsUDF(), `{"op":"eq","field":"Tier","value":"Gold","udf":true}`},
		{
			Or(Eq("status", 1), And(Eq("a", 1), In("b", "x", "y"))),
			`{"op":"or","items":[{"op":"eq","field":"status","value":1},{"op":"and","items":[{"op":"eq","field":"a","value":1},{"op":"in","field":"b","value":["x","y"]}]}]}`,
		},
	}
	for _, tt := range tests {
		if err := tt.f.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", tt.want, err)
		}
		got, err := json.Marshal(tt.f)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", tt.f, err)
		}
		var g, w any
		_ = json.Unmarshal(got, &g)
		_ = json.Unmarshal([]byte(tt.want), &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("Marshal = %s, want %s", got, tt.want)
		}
	}
}

func TestTimestamp_UnmarshalJSON(t *testing.T) {
	t.Parallel()
	want := time.Date(2020, 2, 23, 13, 0, 0, 0, time.UTC)
	for _, s := range []string{`"2020-02-23T13:00:00Z"`, `"2020-02-23T13:00:00.000Z"`, `"2020-02-23T13:00:00"`, `"2020-02-23T14:00:00+01:00"`, `"2020-02-23T13:00:00.000"`} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(s), &ts); err != nil || !ts.Equal(want) {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", s, ts, err, want)
		}
	}
	var ts Timestamp
	if err := json.Unmarshal([]byte(`null`), &ts); err != nil || !ts.IsZero() {
		t.Errorf("Unmarshal(null) = %v, %v", ts, err)
	}
	if err := json.Unmarshal([]byte(`"yesterday"`), &ts); err == nil {
		t.Error("Unmarshal(yesterday) returned no error")
	}
}

func TestServicesService_Create(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/Services", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "POST")
		testAuth(t, r)
		testJSONBody(t, r, `{"name":"Backup","unitPrice":0,"unitCost":2.5,"periodType":1,"billingCodeID":29682801,"isActive":true}`)
		fmt.Fprint(w, `{"itemId":30000012}`)
	})
	id, _, err := client.Services.Create(t.Context(), &CreateServiceRequest{
		Name: "Backup", UnitCost: Ptr(2.5), PeriodType: 1, BillingCodeID: 29682801, IsActive: Ptr(true),
	})
	if err != nil || id != 30000012 {
		t.Errorf("Services.Create returned %d, %v, want 30000012", id, err)
	}
}

// A create is answered with {"itemId": N}. A 2xx without an id may or may
// not have created the entity, and id 0 must never be taken for the new
// one: psa_service would keep "0" in the Terraform state.
func TestServicesService_Create_noItemID(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `{}`, `{"itemId":0}`, `{"errors":["Something went wrong"]}`} {
		client, mux, _ := setup(t)
		mux.HandleFunc("/Services", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, body)
		})
		id, _, err := client.Services.Create(t.Context(), &CreateServiceRequest{Name: "Backup", PeriodType: 1, BillingCodeID: 29682801})
		if !errors.Is(err, psa.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "itemId") {
			t.Errorf("answer %q: Services.Create returned %d, %v, want an error matching psa.ErrOutcomeUnknown naming itemId", body, id, err)
		}
	}
}

func TestServicesService_Update(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/Services", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "PATCH") // at the collection URL, id in the body
		testJSONBody(t, r, `{"id":5,"description":"","isActive":false}`)
		fmt.Fprint(w, `{"itemId":5}`)
	})
	id, _, err := client.Services.Update(t.Context(), &UpdateServiceRequest{ID: 5, Description: Ptr(""), IsActive: Ptr(false)})
	if err != nil || id != 5 {
		t.Errorf("Services.Update returned %d, %v, want 5", id, err)
	}
}

func TestServicesService_GetListCount(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("GET /Services/5", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":5,"name":"Backup","unitPrice":4.5,"periodType":1,"billingCodeID":9,"isActive":true,"createDate":"2026-01-02T03:04:05Z"}}`)
	})
	mux.HandleFunc("POST /Services/query", func(w http.ResponseWriter, r *http.Request) {
		testJSONBody(t, r, `{"filter":[{"op":"eq","field":"name","value":"Backup"}]}`)
		fmt.Fprint(w, `{"items":[{"id":5,"name":"Backup"}],"pageDetails":{"count":1,"requestCount":500,"nextPageUrl":null}}`)
	})
	mux.HandleFunc("POST /Services/query/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"queryCount":1}`)
	})
	ctx := t.Context()
	s, _, err := client.Services.Get(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := &Service{ID: 5, Name: "Backup", UnitPrice: 4.5, PeriodType: 1, BillingCodeID: 9, IsActive: true, CreateDate: Timestamp{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Services.Get returned %+v, want %+v", s, want)
	}
	list, _, err := client.Services.List(ctx, NewQuery(Eq("name", "Backup")))
	if err != nil || len(list) != 1 || list[0].Name != "Backup" {
		t.Errorf("Services.List returned %+v, %v", list, err)
	}
	if n, _, err := client.Services.Count(ctx, NewQuery(All())); err != nil || n != 1 {
		t.Errorf("Services.Count returned %d, %v", n, err)
	}
}

func TestContractsService(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("GET /Contracts/29684183", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":29684183,"companyID":174,"contractName":"Managed","contractType":7,"status":1,"startDate":"2026-01-01T00:00:00","endDate":"2026-12-31T00:00:00"}}`)
	})
	mux.HandleFunc("POST /Contracts/query", func(w http.ResponseWriter, r *http.Request) {
		testJSONBody(t, r, `{"filter":[{"op":"eq","field":"companyID","value":174}]}`)
		fmt.Fprint(w, `{"items":[{"id":29684183}],"pageDetails":{"count":1,"requestCount":500}}`)
	})
	mux.HandleFunc("POST /Contracts/query/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"queryCount":1}`)
	})
	ctx := t.Context()
	c, _, err := client.Contracts.Get(ctx, 29684183)
	if err != nil {
		t.Fatal(err)
	}
	if c.CompanyID != 174 || c.ContractType != 7 || !c.EndDate.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Contracts.Get returned %+v", c)
	}
	list, _, err := client.Contracts.List(ctx, NewQuery(Eq("companyID", 174)))
	if err != nil || len(list) != 1 {
		t.Errorf("Contracts.List returned %+v, %v", list, err)
	}
	if n, _, err := client.Contracts.Count(ctx, NewQuery(All())); err != nil || n != 1 {
		t.Errorf("Contracts.Count returned %d, %v", n, err)
	}
}

func TestContractServicesService(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t, WithImpersonation(4))
	mux.HandleFunc("/Contracts/12/Services", func(w http.ResponseWriter, r *http.Request) {
		testAuth(t, r)
		switch r.Method {
		case "GET":
			testHeader(t, r, "ImpersonationResourceId", "")
			fmt.Fprint(w, `{"items":[{"id":77,"contractID":12,"serviceID":5,"unitPrice":12.5}],"pageDetails":{"count":1,"requestCount":500}}`)
		case "POST":
			testHeader(t, r, "ImpersonationResourceId", "4")
			testJSONBody(t, r, `{"contractID":12,"serviceID":5,"unitPrice":12.5}`)
			fmt.Fprint(w, `{"itemId":77}`)
		case "PATCH":
			testJSONBody(t, r, `{"id":77,"unitPrice":13}`)
			fmt.Fprint(w, `{"itemId":77}`)
		default:
			t.Errorf("unexpected method %s", r.Method)
		}
	})
	mux.HandleFunc("GET /ContractServices/77", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":77,"contractID":12,"serviceID":5}}`)
	})
	mux.HandleFunc("POST /ContractServices/query", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[{"id":77}]}`)
	})
	mux.HandleFunc("POST /ContractServices/query/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"queryCount":1}`)
	})
	ctx := t.Context()
	list, _, err := client.ContractServices.ListByContract(ctx, 12)
	if want := []*ContractService{{ID: 77, ContractID: 12, ServiceID: 5, UnitPrice: 12.5}}; err != nil || !reflect.DeepEqual(list, want) {
		t.Errorf("ContractServices.ListByContract returned %+v, %v, want %+v", list, err, want)
	}
	if id, _, err := client.ContractServices.Create(ctx, &CreateContractServiceRequest{ContractID: 12, ServiceID: 5, UnitPrice: Ptr(12.5)}); err != nil || id != 77 {
		t.Errorf("ContractServices.Create returned %d, %v", id, err)
	}
	if id, _, err := client.ContractServices.Update(ctx, 12, &UpdateContractServiceRequest{ID: 77, UnitPrice: Ptr(13.0)}); err != nil || id != 77 {
		t.Errorf("ContractServices.Update returned %d, %v", id, err)
	}
	if cs, _, err := client.ContractServices.Get(ctx, 77); err != nil || cs.ServiceID != 5 {
		t.Errorf("ContractServices.Get returned %+v, %v", cs, err)
	}
	if l, _, err := client.ContractServices.List(ctx, NewQuery(Eq("contractID", 12))); err != nil || len(l) != 1 {
		t.Errorf("ContractServices.List returned %+v, %v", l, err)
	}
	if n, _, err := client.ContractServices.Count(ctx, NewQuery(Eq("contractID", 12))); err != nil || n != 1 {
		t.Errorf("ContractServices.Count returned %d, %v", n, err)
	}
}

func TestContractServiceUnitsService(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	asOf := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	mux.HandleFunc("POST /ContractServiceUnits/query", func(w http.ResponseWriter, r *http.Request) {
		testJSONBody(t, r, `{"filter":[{"op":"in","field":"contractID","value":[12,13]},{"op":"lte","field":"startDate","value":"2026-11-15T00:00:00Z"},{"op":"gte","field":"endDate","value":"2026-11-15T00:00:00Z"}],"IncludeFields":["id","units"],"MaxRecords":500}`)
		fmt.Fprint(w, `{"items":[{"id":1,"contractID":12,"contractServiceID":77,"serviceID":5,"startDate":"2026-11-01T00:00:00Z","endDate":"2026-11-30T00:00:00Z","units":10,"price":12.5,"approveAndPostDate":null}],"pageDetails":{"count":1,"requestCount":500,"nextPageUrl":null}}`)
	})
	mux.HandleFunc("GET /Contracts/12/ServiceUnits", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[{"id":1,"units":10}],"pageDetails":{"count":1,"requestCount":500}}`)
	})
	mux.HandleFunc("GET /ContractServiceUnits/1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":1,"units":10}}`)
	})
	mux.HandleFunc("POST /ContractServiceUnits/query/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"queryCount":1}`)
	})
	ctx := t.Context()
	q := NewQuery(In[int64]("contractID", 12, 13), Lte("startDate", asOf), Gte("endDate", asOf))
	q.IncludeFields, q.MaxRecords = []string{"id", "units"}, 500
	units, _, err := client.ContractServiceUnits.List(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	want := []*ContractServiceUnit{{
		ID: 1, ContractID: 12, ContractServiceID: 77, ServiceID: 5, Units: 10, Price: 12.5,
		StartDate: Timestamp{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		EndDate:   Timestamp{time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
	}}
	if !reflect.DeepEqual(units, want) {
		t.Errorf("ContractServiceUnits.List returned %+v, want %+v", units[0], want[0])
	}
	if l, _, err := client.ContractServiceUnits.ListByContract(ctx, 12); err != nil || len(l) != 1 || l[0].Units != 10 {
		t.Errorf("ContractServiceUnits.ListByContract returned %+v, %v", l, err)
	}
	if u, _, err := client.ContractServiceUnits.Get(ctx, 1); err != nil || u.Units != 10 {
		t.Errorf("ContractServiceUnits.Get returned %+v, %v", u, err)
	}
	if n, _, err := client.ContractServiceUnits.Count(ctx, q); err != nil || n != 1 {
		t.Errorf("ContractServiceUnits.Count returned %d, %v", n, err)
	}
}

func TestContractServiceAdjustmentsService_Create(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	const body = `{"contractID":12,"serviceID":5,"unitChange":-3,"effectiveDate":"2026-11-01T00:00:00Z","adjustedUnitPrice":12.5}`
	mux.HandleFunc("/ContractServiceAdjustments", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "POST")
		testAuth(t, r)
		testJSONBody(t, r, body)
		fmt.Fprint(w, `{"itemId":98765}`)
	})
	mux.HandleFunc("/Contracts/12/ServiceAdjustments", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "POST")
		testJSONBody(t, r, body)
		fmt.Fprint(w, `{"itemId":98766}`)
	})
	adj := &CreateContractServiceAdjustmentRequest{
		ContractID: 12, ServiceID: 5, UnitChange: -3,
		EffectiveDate:     Timestamp{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		AdjustedUnitPrice: Ptr(12.5),
	}
	ctx := t.Context()
	if id, _, err := client.ContractServiceAdjustments.Create(ctx, adj); err != nil || id != 98765 {
		t.Errorf("ContractServiceAdjustments.Create returned %d, %v", id, err)
	}
	if id, _, err := client.ContractServiceAdjustments.CreateForContract(ctx, adj); err != nil || id != 98766 {
		t.Errorf("ContractServiceAdjustments.CreateForContract returned %d, %v", id, err)
	}
}

func TestBillingCodesService(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("GET /BillingCodes/9", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":9,"name":"Recurring","isActive":true,"useType":4}}`)
	})
	mux.HandleFunc("POST /BillingCodes/query", func(w http.ResponseWriter, r *http.Request) {
		testJSONBody(t, r, `{"filter":[{"op":"eq","field":"isActive","value":true}]}`)
		fmt.Fprint(w, `{"items":[{"id":9,"name":"Recurring","isActive":true,"useType":4}]}`)
	})
	mux.HandleFunc("POST /BillingCodes/query/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"queryCount":1}`)
	})
	ctx := t.Context()
	want := &BillingCode{ID: 9, Name: "Recurring", IsActive: true, UseType: 4}
	if bc, _, err := client.BillingCodes.Get(ctx, 9); err != nil || !reflect.DeepEqual(bc, want) {
		t.Errorf("BillingCodes.Get returned %+v, %v, want %+v", bc, err, want)
	}
	if l, _, err := client.BillingCodes.List(ctx, NewQuery(Eq("isActive", true))); err != nil || len(l) != 1 || !reflect.DeepEqual(l[0], want) {
		t.Errorf("BillingCodes.List returned %+v, %v", l, err)
	}
	if n, _, err := client.BillingCodes.Count(ctx, NewQuery(All())); err != nil || n != 1 {
		t.Errorf("BillingCodes.Count returned %d, %v", n, err)
	}
}

const contractFields = `{"fields":[
 {"name":"contractType","dataType":"integer","isPickList":true,"picklistValues":[
   {"value":"1","label":"Time and Materials","isActive":true},
   {"value":"7","label":"Recurring Service","isActive":true}]},
 {"name":"status","dataType":"integer","isPickList":true,"picklistValues":[
   {"value":"0","label":"Inactive","isActive":true},
   {"value":"1","label":"Active","isActive":true}]},
 {"name":"contractName","dataType":"string","isPickList":false}]}`

func TestEntityInformationService_Fields(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/Contracts/entityInformation/fields", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "GET")
		testAuth(t, r)
		calls.Add(1)
		fmt.Fprint(w, contractFields)
	})
	ctx := t.Context()
	v, err := client.EntityInformation.PicklistValue(ctx, "Contracts", "contractType", "recurring-service")
	if err != nil || v != 7 {
		t.Errorf("PicklistValue(recurring-service) = %d, %v, want 7", v, err)
	}
	label, err := client.EntityInformation.PicklistLabel(ctx, "Contracts", "status", 1)
	if err != nil || label != "Active" {
		t.Errorf("PicklistLabel(status 1) = %q, %v, want Active", label, err)
	}
	if _, err := client.EntityInformation.PicklistValue(ctx, "Contracts", "status", "Pending"); err == nil || !strings.Contains(err.Error(), `"Inactive", "Active"`) {
		t.Errorf("PicklistValue(Pending) error = %v, want one listing the labels", err)
	}
	if _, err := client.EntityInformation.Picklist(ctx, "Contracts", "contractName"); err == nil {
		t.Error("Picklist(contractName) returned no error for a non-picklist field")
	}
	if _, err := client.EntityInformation.Picklist(ctx, "Contracts", "nope"); err == nil {
		t.Error("Picklist(nope) returned no error for an unknown field")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("entityInformation/fields requests = %d, want 1 (cached per client)", n)
	}
}

func TestClient_ThresholdInformation(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/ThresholdInformation", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, "GET")
		testAuth(t, r)
		fmt.Fprint(w, `{"externalRequestThreshold":10000,"requestThresholdTimeframe":60,"currentTimeframeRequestCount":124}`)
	})
	mux.HandleFunc("/Companies/1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":1}}`)
	})
	ctx := t.Context()
	if _, ok := client.Budget(); ok {
		t.Error("Budget is known before ThresholdInformation was read")
	}
	ti, _, err := client.ThresholdInformation(ctx)
	want := &ThresholdInformation{ExternalRequestThreshold: 10000, RequestThresholdTimeframe: 60, CurrentTimeframeRequestCount: 124}
	if err != nil || !reflect.DeepEqual(ti, want) {
		t.Fatalf("ThresholdInformation returned %+v, %v, want %+v", ti, err, want)
	}
	if ti.Remaining() != 9876 || ti.Timeframe() != time.Hour {
		t.Errorf("Remaining = %d, Timeframe = %s", ti.Remaining(), ti.Timeframe())
	}
	for range 2 {
		if _, _, err := client.Companies.Get(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	b, ok := client.Budget()
	if !ok || b.CurrentTimeframeRequestCount != 126 {
		t.Errorf("Budget = %+v, %v, want 126 requests used (124 + 2 since)", b, ok)
	}
}

func TestCheckResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		validation []string // want a *psa.ValidationError with these messages
		is         error
		rateLimit  *psa.RateLimitError
		message    string // in Error()
	}{
		{name: "validation strings", status: 500, body: `{"errors":["Name is required.","Unit price must be set."]}`, validation: []string{"Name is required.", "Unit price must be set."}, is: psa.ErrValidation},
		{name: "validation objects", status: 500, body: `{"errors":[{"message":"must be positive","field":"unitPrice"},{"message":"bad"}]}`, validation: []string{"unitPrice: must be positive", "bad"}, is: psa.ErrValidation},
		{name: "unauthorized", status: 401, body: `{"errors":["User authentication failed."]}`, is: psa.ErrUnauthorized, message: "User authentication failed."},
		// Autotask documents 403 for a resource without the permission.
		{name: "forbidden", status: 403, body: `{"errors":["The logged in Resource does not have the adequate permissions to query this entity type."]}`, is: psa.ErrUnauthorized, message: "adequate permissions"},
		// ... but often answers it as a 500, which was not applied either.
		{name: "forbidden 500", status: 500, body: `{"errors":["The logged in Resource does not have the adequate permissions to create this entity type."]}`,
			validation: []string{"The logged in Resource does not have the adequate permissions to create this entity type."}, is: psa.ErrForbidden},
		{name: "method not allowed", status: 405, body: `{"Message":"The requested resource does not support http method 'GET'."}`, message: "405: The requested resource does not support http method 'GET'."},
		{name: "not found", status: 404, body: ``, is: psa.ErrNotFound},
		{name: "timeout", status: 500, body: `{"errors":["Execution Timeout Expired."]}`, message: "Execution Timeout Expired."},
		{name: "bad gateway", status: 502, body: `<html>`, message: "502 Bad Gateway"},
		{
			name: "thread threshold 429", status: 429, header: http.Header{"Retry-After": {"3"}},
			body:      `{"errors":["Thread Threshold Exceeded - The Autotask API thread threshold of 3 threads has been exceeded. Itgenatr005"]}`,
			rateLimit: &psa.RateLimitError{System: psa.SystemAutotask, RetryAfter: 3 * time.Second, Message: "Thread Threshold Exceeded - The Autotask API thread threshold of 3 threads has been exceeded. Itgenatr005"},
		},
		{
			name: "thread threshold 500", status: 500,
			body:      `{"errors":["The Autotask API thread threshold of 3 threads has been exceeded."]}`,
			rateLimit: &psa.RateLimitError{System: psa.SystemAutotask, Message: "The Autotask API thread threshold of 3 threads has been exceeded."},
		},
		{
			name: "hourly threshold", status: 500,
			body:      `{"errors":["API request threshold exceeded: 10000 requests per hour."]}`,
			rateLimit: &psa.RateLimitError{System: psa.SystemAutotask, Hourly: true, Message: "API request threshold exceeded: 10000 requests per hour."},
		},
		{
			name: "hourly threshold 429", status: 429,
			body:      `{"errors":["Request threshold of 10000 exceeded; the API is suspended until usage drops."]}`,
			rateLimit: &psa.RateLimitError{System: psa.SystemAutotask, Hourly: true, Message: "Request threshold of 10000 exceeded; the API is suspended until usage drops."},
		},
		{name: "bare 429", status: 429, rateLimit: &psa.RateLimitError{System: psa.SystemAutotask}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest("POST", "https://webservices5.autotask.net/ATServicesRest/V1.0/Services?secret=x", nil)
			req.Header.Set("Secret", testSecret)
			res := &http.Response{StatusCode: tt.status, Header: tt.header, Request: req, Body: io.NopCloser(strings.NewReader(tt.body))}
			if res.Header == nil {
				res.Header = http.Header{}
			}
			err := CheckResponse(res)
			if err == nil {
				t.Fatal("CheckResponse returned nil")
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "secret=x") {
				t.Errorf("error leaks the request's secrets: %v", err)
			}
			if tt.rateLimit != nil {
				var rl *psa.RateLimitError
				if !errors.As(err, &rl) || !errors.Is(err, psa.ErrRateLimited) {
					t.Fatalf("CheckResponse = %v (%T), want a *psa.RateLimitError", err, err)
				}
				if !reflect.DeepEqual(rl, tt.rateLimit) {
					t.Errorf("CheckResponse = %+v, want %+v", rl, tt.rateLimit)
				}
				return
			}
			var er *ErrorResponse
			if !errors.As(err, &er) {
				t.Fatalf("CheckResponse = %T, want *ErrorResponse", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("CheckResponse = %v, want it to match %v", err, tt.is)
			}
			if tt.is == nil && (errors.Is(err, psa.ErrValidation) || errors.Is(err, psa.ErrNotFound) || errors.Is(err, psa.ErrUnauthorized)) {
				t.Errorf("CheckResponse = %v matches a psa sentinel, want none", err)
			}
			if tt.validation != nil {
				var ve *psa.ValidationError
				if !errors.As(err, &ve) || !reflect.DeepEqual(ve.Messages, tt.validation) {
					t.Errorf("ValidationError = %+v, want messages %q", ve, tt.validation)
				}
			}
			if tt.message != "" && !strings.Contains(err.Error(), tt.message) {
				t.Errorf("Error() = %q, want it to contain %q", err.Error(), tt.message)
			}
		})
	}
}

func TestCheckResponse_bodyLimit(t *testing.T) {
	t.Parallel()
	var read atomic.Int64
	body := &countingReader{r: strings.NewReader(`{"errors":["` + strings.Repeat("x", 3<<20) + `"]}`), n: &read}
	res := &http.Response{StatusCode: 500, Header: http.Header{}, Body: io.NopCloser(body)}
	if err := CheckResponse(res); err == nil {
		t.Fatal("CheckResponse returned nil")
	}
	if n := read.Load(); n > maxErrorBody {
		t.Errorf("read %d bytes of the error body, want at most %d", n, maxErrorBody)
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestCompaniesService_Get_rateLimited(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	sleeps := recordSleeps(client)
	var calls atomic.Int32
	mux.HandleFunc("/Companies/1", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"errors":["Thread Threshold Exceeded"]}`)
			return
		}
		fmt.Fprint(w, `{"item":{"id":1}}`)
	})
	if _, _, err := client.Companies.Get(t.Context(), 1); err != nil {
		t.Fatalf("Companies.Get returned error: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("requests = %d, want 2", n)
	}
	if s := sleeps(); len(s) != 1 || s[0] < 2*time.Second {
		t.Errorf("waits = %v, want one of at least the 2s Retry-After", s)
	}
}

// TestCompaniesService_Get_serverFaultRetryAfterOverCap: a 503 whose
// Retry-After is a day ends the retries at once with an error that says so,
// as a 429 over rest.MaxRetryAfter does, instead of waiting it out.
func TestCompaniesService_Get_serverFaultRetryAfterOverCap(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	sleeps := recordSleeps(client)
	// No "errors": Autotask's 5xx with messages is a refusal, not retried.
	refusal := &resttest.Answer{Status: http.StatusServiceUnavailable, RetryAfter: "86400"}
	mux.Handle("/Companies/1", refusal)
	_, _, err := client.Companies.Get(t.Context(), 1)
	var er *ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("Companies.Get error = %v, want the 503", err)
	}
	for _, part := range []string{"24h0m0s", "5m0s"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %s", err, part)
		}
	}
	if n, s := refusal.Calls(), sleeps(); n != 1 || len(s) != 0 {
		t.Errorf("requests = %d, waits = %v; want 1 request and no wait", n, s)
	}
}

func TestServicesService_Update_rateLimited(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	sleeps := recordSleeps(client)
	var calls atomic.Int32
	mux.HandleFunc("/Services", func(w http.ResponseWriter, r *http.Request) {
		testJSONBody(t, r, `{"id":5,"name":"New"}`) // the body is re-sent intact
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, `{"itemId":5}`)
	})
	if _, _, err := client.Services.Update(t.Context(), &UpdateServiceRequest{ID: 5, Name: Ptr("New")}); err != nil {
		t.Fatalf("Services.Update returned error: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
	if s := sleeps(); len(s) != 2 {
		t.Errorf("waits = %v, want 2", s)
	}
}

func TestClient_retryExhausted(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t, WithMaxRetries(2))
	refusal := &resttest.Answer{Status: http.StatusServiceUnavailable}
	mux.Handle("/Companies/query", refusal)
	_, _, err := client.Companies.List(t.Context(), NewQuery(All()))
	var er *ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != 503 {
		t.Errorf("Companies.List error = %v, want the 503", err)
	}
	if n := refusal.Calls(); n != 3 {
		t.Errorf("requests = %d, want 3 (1 + 2 retries)", n)
	}
}

func TestClient_noRetryOfHourlyThreshold(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	refusal := &resttest.Answer{Status: http.StatusTooManyRequests, Body: `{"errors":["API request threshold exceeded for this hour"]}`}
	mux.Handle("/Companies/1", refusal)
	_, _, err := client.Companies.Get(t.Context(), 1)
	var rl *psa.RateLimitError
	if !errors.As(err, &rl) || !rl.Hourly {
		t.Fatalf("Companies.Get error = %v, want an hourly *psa.RateLimitError", err)
	}
	if n := refusal.Calls(); n != 1 {
		t.Errorf("requests = %d, want 1 (waiting cannot help within a pass)", n)
	}
}

func TestClient_noRetryOfValidationOnRead(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	refusal := &resttest.Answer{Status: http.StatusInternalServerError, Body: `{"errors":["Invalid field: nosuchfield"]}`}
	mux.Handle("/Companies/query", refusal)
	_, _, err := client.Companies.List(t.Context(), NewQuery(Eq("nosuchfield", 1)))
	if !errors.Is(err, psa.ErrValidation) {
		t.Errorf("Companies.List error = %v, want psa.ErrValidation", err)
	}
	if n := refusal.Calls(); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestCompaniesService_Get_networkErrorRetried(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/Companies/1", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			resttest.DropConnection(t, w)
			return
		}
		fmt.Fprint(w, `{"item":{"id":1}}`)
	})
	if _, _, err := client.Companies.Get(t.Context(), 1); err != nil {
		t.Fatalf("Companies.Get returned error: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("requests = %d, want 2", n)
	}
}

func TestContractServiceUnitsService_List_networkErrorRetried(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/ContractServiceUnits/query", func(w http.ResponseWriter, r *http.Request) {
		testJSONBody(t, r, `{"filter":[{"op":"eq","field":"contractID","value":1}]}`)
		if calls.Add(1) == 1 {
			resttest.DropConnection(t, w)
			return
		}
		fmt.Fprint(w, `{"items":[{"id":1,"units":3}]}`)
	})
	units, _, err := client.ContractServiceUnits.List(t.Context(), NewQuery(Eq("contractID", 1)))
	if err != nil || len(units) != 1 {
		t.Fatalf("ContractServiceUnits.List returned %v, %v", units, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("requests = %d, want 2 (a query POST is idempotent)", n)
	}
}

func TestContractServiceAdjustmentsService_Create_noRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler func(t *testing.T, w http.ResponseWriter)
		unknown bool // want psa.ErrOutcomeUnknown
		is      error
	}{
		{name: "500 without errors", handler: func(t *testing.T, w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
		}, unknown: true},
		{name: "502", handler: func(t *testing.T, w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadGateway)
		}, unknown: true},
		{name: "timeout", handler: func(t *testing.T, w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":["Timeout expired"]}`)
		}, unknown: true},
		{name: "dropped connection", handler: func(t *testing.T, w http.ResponseWriter) {
			resttest.DropConnection(t, w)
		}, unknown: true},
		{name: "200 with an unreadable body", handler: func(t *testing.T, w http.ResponseWriter) {
			fmt.Fprint(w, `<html>upstream hiccup</html>`)
		}, unknown: true},
		{name: "validation", handler: func(t *testing.T, w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":["effectiveDate is outside the contract period"]}`)
		}, is: psa.ErrValidation},
		{name: "permission", handler: func(t *testing.T, w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":["The logged in Resource does not have the adequate permissions to create this entity type."]}`)
		}, is: psa.ErrForbidden},
		{name: "bad request", handler: func(t *testing.T, w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadRequest)
		}},
		{name: "hourly threshold", handler: func(t *testing.T, w http.ResponseWriter) {
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"errors":["API request threshold exceeded"]}`)
		}, is: psa.ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, mux, _ := setup(t)
			var calls atomic.Int32
			mux.HandleFunc("/ContractServiceAdjustments", func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tt.handler(t, w)
			})
			_, _, err := client.ContractServiceAdjustments.Create(t.Context(), &CreateContractServiceAdjustmentRequest{ContractID: 1, ServiceID: 2, UnitChange: 3, EffectiveDate: Timestamp{time.Now()}})
			if err == nil {
				t.Fatal("Create returned no error")
			}
			if got := errors.Is(err, psa.ErrOutcomeUnknown); got != tt.unknown {
				t.Errorf("errors.Is(%v, psa.ErrOutcomeUnknown) = %v, want %v", err, got, tt.unknown)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Create error = %v, want %v", err, tt.is)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("POST sent %d times, want exactly once", n)
			}
		})
	}
}

// A thread-threshold rejection happens before Autotask does any work, so
// even a create is re-sent.
func TestContractServiceAdjustmentsService_Create_threadThresholdRetried(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/ContractServiceAdjustments", func(w http.ResponseWriter, r *http.Request) {
		testJSONBody(t, r, `{"contractID":1,"serviceID":2,"unitChange":3,"effectiveDate":"2026-11-01T00:00:00Z"}`)
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":["Thread Threshold Exceeded - The Autotask API thread threshold of 3 threads has been exceeded"]}`)
			return
		}
		fmt.Fprint(w, `{"itemId":5}`)
	})
	id, _, err := client.ContractServiceAdjustments.Create(t.Context(), &CreateContractServiceAdjustmentRequest{ContractID: 1, ServiceID: 2, UnitChange: 3, EffectiveDate: Timestamp{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}})
	if err != nil || id != 5 {
		t.Errorf("Create returned %d, %v, want 5", id, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("requests = %d, want 2", n)
	}
}

// A create whose connection could not even be made was never sent, so it is
// retried.
func TestClient_dialErrorRetriedForCreate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	var dials atomic.Int32
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	client, err := NewClient(WithBaseURL(url+"/ATServicesRest/"), WithCredentials(testUser, testSecret, testCode), WithHTTPClient(hc), WithMaxRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	client.sleep = func(context.Context, time.Duration) error { return nil }
	_, _, err = client.Services.Create(t.Context(), &CreateServiceRequest{Name: "x"})
	if err == nil || errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Errorf("Create error = %v, want a plain connection error", err)
	}
	if n := dials.Load(); n != 3 {
		t.Errorf("dials = %d, want 3", n)
	}
}

func TestClient_concurrencyCap(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	var inFlight, maxInFlight atomic.Int32
	arrived := make(chan struct{}, 100)
	release := make(chan struct{})
	mux.HandleFunc("/Companies/{id}", func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		inFlight.Add(-1)
		fmt.Fprint(w, `{"item":{"id":1}}`)
	})
	mux.HandleFunc("/Contracts/1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":1}}`)
	})
	ctx := t.Context()
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, _, err := client.Companies.Get(ctx, int64(i)); err != nil {
				t.Errorf("Companies.Get: %v", err)
			}
		})
	}
	for range MaxConcurrency {
		<-arrived
	}
	// Three Companies requests are blocked in the handler; another entity
	// endpoint is not held up by them.
	if _, _, err := client.Contracts.Get(ctx, 1); err != nil {
		t.Fatalf("Contracts.Get while Companies is saturated: %v", err)
	}
	if got := len(client.semaphore("companies")); got != MaxConcurrency {
		t.Errorf("Companies slots in use = %d, want %d", got, MaxConcurrency)
	}
	// Let them through one at a time.
	for range n {
		release <- struct{}{}
	}
	wg.Wait()
	if m := maxInFlight.Load(); m > MaxConcurrency {
		t.Errorf("max requests in flight on Companies = %d, want at most %d", m, MaxConcurrency)
	}
}

// A parent-scoped request counts against both the parent and the child
// entity endpoint.
func TestClient_concurrencyChildURL(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	mux.HandleFunc("/Contracts/{id}/Services", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, `{"items":[]}`)
	})
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range MaxConcurrency {
		wg.Go(func() {
			if _, _, err := client.ContractServices.ListByContract(ctx, int64(i+1)); err != nil {
				t.Errorf("ListByContract: %v", err)
			}
		})
	}
	for range MaxConcurrency {
		<-arrived
	}
	for _, key := range []string{"contracts", "contractservices"} {
		if got := len(client.semaphore(key)); got != MaxConcurrency {
			t.Errorf("%s slots in use = %d, want %d", key, got, MaxConcurrency)
		}
	}
	close(release)
	wg.Wait()
}

func TestClient_contextCanceledWhileWaiting(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t, WithMaxConcurrency(1))
	arrived := make(chan struct{})
	release := make(chan struct{})
	mux.HandleFunc("/Companies/1", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, `{"item":{"id":1}}`)
	})
	done := make(chan error)
	go func() {
		_, _, err := client.Companies.Get(t.Context(), 1)
		done <- err
	}()
	<-arrived
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := client.Companies.Get(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Companies.Get with a canceled context = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// A create canceled after it was sent may have been applied.
func TestServicesService_Create_canceled(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	mux.HandleFunc("/Services", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client leaving
		cancel()
		<-r.Context().Done()
	})
	_, _, err := client.Services.Create(ctx, &CreateServiceRequest{Name: "x"})
	if !errors.Is(err, psa.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Errorf("Create error = %v, want psa.ErrOutcomeUnknown and context.Canceled", err)
	}
}

func TestCompaniesService_List_repeatedNextPage(t *testing.T) {
	t.Parallel()
	client, mux, serverURL := setup(t)
	mux.HandleFunc("/Companies/query/next", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"items":[{"id":1}],"pageDetails":{"count":1,"nextPageUrl":"%s%s/Companies/query/next"}}`, serverURL, apiPath)
	})
	mux.HandleFunc("/Companies/query", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"items":[{"id":1}],"pageDetails":{"count":1,"nextPageUrl":"%s%s/Companies/query/next"}}`, serverURL, apiPath)
	})
	if _, _, err := client.Companies.List(t.Context(), NewQuery(All())); err == nil || !strings.Contains(err.Error(), "same nextPageUrl") {
		t.Errorf("Companies.List error = %v, want a paging loop error", err)
	}
}

func TestClient_unauthorizedZoneUnchanged(t *testing.T) {
	t.Parallel()
	zs := newZoneServer(t, "/zone5/ATServicesRest/")
	refusal := &resttest.Answer{Status: http.StatusUnauthorized, Body: `{"errors":["User authentication failed"]}`}
	zs.mux.Handle("/zone5/ATServicesRest/V1.0/Companies/1", refusal)
	client := zs.client(t)
	if _, _, err := client.Companies.Get(t.Context(), 1); !errors.Is(err, psa.ErrUnauthorized) {
		t.Fatalf("Companies.Get error = %v, want psa.ErrUnauthorized", err)
	}
	if n := zs.lookups.Load(); n != 2 {
		t.Errorf("zone lookups = %d, want 2 (one re-fetch after the 401)", n)
	}
	if n := refusal.Calls(); n != 1 {
		t.Errorf("requests = %d, want 1 (the zone did not move, so no retry)", n)
	}
}

// TestContractServiceUnitsService_List_unreadableRows: a unit row that
// cannot be read in a page that is otherwise sound is left out and
// reported against its contract in an *UnreadableRowsError, with the
// other rows (of every page) returned, so that a bulk read need not fail
// every contract over one row. A row that names no contract, and a page
// that is not JSON, still fail the list.
func TestContractServiceUnitsService_List_unreadableRows(t *testing.T) {
	t.Parallel()
	const good = `{"id":9,"contractID":3,"serviceID":4,"units":5},{"id":10,"contractID":6,"serviceID":4,"units":7}`
	for _, tc := range []struct {
		name string
		bad  string // a row of contract 3 (or of none)
		want string // what the error says; "" for a list that fails as a whole
	}{
		{"units null", `{"id":8,"contractID":3,"serviceID":4,"units":null}`, "contract service unit 8 (contract 3, service 4) reports no units"},
		{"units left out", `{"id":8,"contractID":3,"serviceID":4}`, "contract service unit 8 (contract 3, service 4) reports no units"},
		{"units of the wrong type", `{"id":8,"contractID":3,"serviceID":4,"units":"lots"}`,
			"contract service unit 8 (contract 3, service 4) cannot be read: field units holds string, not int64"},
		{"price of the wrong type", `{"id":8,"contractID":3,"serviceID":4,"units":1,"price":"cheap"}`,
			"contract service unit 8 (contract 3, service 4) cannot be read: field price holds string, not float64"},
		{"bad date", `{"id":8,"contractID":3,"serviceID":4,"units":1,"startDate":"yesterday"}`,
			"contract service unit 8 (contract 3, service 4) cannot be read: "},
		{"no contract", `{"id":8,"serviceID":4,"units":null}`, ""},
		{"contract of the wrong type", `{"id":8,"contractID":"3","serviceID":4,"units":1}`, ""},
		{"not a row", `"8"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, mux, serverURL := setup(t)
			mux.HandleFunc("/ContractServiceUnits/query", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"items":[%s,%s],"pageDetails":{"count":3,"requestCount":3,"nextPageUrl":"%s%s/ContractServiceUnits/query/next?paging=2"}}`,
					good, tc.bad, serverURL, apiPath)
			})
			mux.HandleFunc("/ContractServiceUnits/query/next", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, `{"items":[{"id":11,"contractID":3,"serviceID":12,"units":2}],"pageDetails":{"count":1,"requestCount":3,"nextPageUrl":null}}`)
			})
			us, _, err := client.ContractServiceUnits.List(t.Context(), NewQuery(In("contractID", 3, 6)))
			if tc.want == "" {
				var ure *UnreadableRowsError
				if err == nil || errors.As(err, &ure) || !strings.Contains(err.Error(), "decoding response") {
					t.Errorf("ContractServiceUnits.List = %+v, %v; want the page refused as a whole", us, err)
				}
				return
			}
			var ure *UnreadableRowsError
			if !errors.As(err, &ure) || len(ure.Contracts) != 1 || ure.Contracts[3] == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ContractServiceUnits.List error = %v, want an UnreadableRowsError for contract 3 saying %q", err, tc.want)
			}
			var ids []int64
			for _, u := range us {
				ids = append(ids, u.ID)
			}
			if want := []int64{9, 10, 11}; !slices.Equal(ids, want) {
				t.Errorf("ContractServiceUnits.List rows = %v, want %v: the readable rows of both pages", ids, want)
			}
		})
	}

	// A page that is not JSON fails the list as an answer that is not
	// Autotask's (psa.ErrNotAPI), not an empty one.
	client, mux, _ := setup(t)
	mux.HandleFunc("/ContractServiceUnits/query", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<html><body>upstream hiccup</body></html>`)
	})
	if us, _, err := client.ContractServiceUnits.List(t.Context(), NewQuery(In("contractID", 3, 6))); !errors.Is(err, psa.ErrNotAPI) || !strings.Contains(err.Error(), "an HTML page") {
		t.Errorf("ContractServiceUnits.List of an HTML page = %+v, %v; want psa.ErrNotAPI", us, err)
	}
}

// TestContractServiceUnitsService_missingUnits: a unit row that leaves out
// its units (or reports null) is refused, not read as 0 units: the next
// adjustment's delta would be computed from that 0.
func TestContractServiceUnitsService_missingUnits(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/ContractServiceUnits/7", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":7,"contractID":3,"serviceID":4}}`)
	})
	mux.HandleFunc("/ContractServiceUnits/8", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":8,"contractID":3,"serviceID":4,"units":null}}`)
	})
	mux.HandleFunc("/ContractServiceUnits/9", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"item":{"id":9,"contractID":3,"serviceID":4,"units":5}}`)
	})
	for _, id := range []int64{7, 8} {
		u, _, err := client.ContractServiceUnits.Get(t.Context(), id)
		if err == nil || !strings.Contains(err.Error(), "reports no units") {
			t.Errorf("ContractServiceUnits.Get(%d) = %+v, %v; want an error saying the row reports no units", id, u, err)
		}
	}
	if u, _, err := client.ContractServiceUnits.Get(t.Context(), 9); err != nil || u.Units != 5 || u.ContractID != 3 {
		t.Errorf("ContractServiceUnits.Get(9) = %+v, %v; want 5 units of contract 3", u, err)
	}

	// Lists decode their rows without UnmarshalJSON (see unitJSON) and
	// refuse them all the same.
	mux.HandleFunc("/ContractServiceUnits/query", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[{"id":9,"contractID":3,"serviceID":4,"units":5},{"id":8,"contractID":3,"serviceID":4,"units":null}],"pageDetails":{"count":2}}`)
	})
	mux.HandleFunc("/Contracts/3/ServiceUnits", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[{"id":7,"contractID":3,"serviceID":4}],"pageDetails":{"count":1}}`)
	})
	if us, _, err := client.ContractServiceUnits.List(t.Context(), NewQuery(Eq("contractID", 3))); err == nil || !strings.Contains(err.Error(), "contract service unit 8 (contract 3, service 4) reports no units") {
		t.Errorf("ContractServiceUnits.List = %+v, %v; want an error saying row 8 reports no units", us, err)
	}
	if us, _, err := client.ContractServiceUnits.ListByContract(t.Context(), 3); err == nil || !strings.Contains(err.Error(), "contract service unit 7 (contract 3, service 4) reports no units") {
		t.Errorf("ContractServiceUnits.ListByContract = %+v, %v; want an error saying row 7 reports no units", us, err)
	}
}

// threadRefusal answers as Autotask does a request over the thread
// threshold: another process of the same integration code holds the
// endpoint's three threads.
func threadRefusal(w http.ResponseWriter, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(http.StatusTooManyRequests)
	fmt.Fprint(w, `{"errors":["Thread Threshold Exceeded - The Autotask API thread threshold of 3 threads has been exceeded. Internal code: Itgenatr005"]}`)
}

// Refusals for the thread threshold, while another process holds the
// threads for longer than a few retries, use up none of the retries: the
// create and the read go through once the threads are free, each sent
// once more than it was refused, with a wait before each retry.
func TestClient_threadThresholdOutlastsMaxRetries(t *testing.T) {
	t.Parallel()
	const refusals = 3 * DefaultMaxRetries
	client, mux, _ := setup(t)
	sleeps := recordSleeps(client)
	var creates, reads atomic.Int32
	mux.HandleFunc("/ContractServiceAdjustments", func(w http.ResponseWriter, r *http.Request) {
		if creates.Add(1) <= refusals {
			threadRefusal(w, "")
			return
		}
		fmt.Fprint(w, `{"itemId":5}`)
	})
	mux.HandleFunc("/Companies/query", func(w http.ResponseWriter, r *http.Request) {
		if reads.Add(1) <= refusals {
			threadRefusal(w, "")
			return
		}
		fmt.Fprint(w, `{"items":[{"id":1,"companyName":"Acme"}],"pageDetails":{"count":1}}`)
	})
	id, _, err := client.ContractServiceAdjustments.Create(t.Context(), &CreateContractServiceAdjustmentRequest{ContractID: 1, ServiceID: 2, UnitChange: 3, EffectiveDate: Timestamp{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}})
	if err != nil || id != 5 {
		t.Errorf("Create returned %d, %v, want 5", id, err)
	}
	if n := creates.Load(); n != refusals+1 {
		t.Errorf("creates sent = %d, want %d", n, refusals+1)
	}
	companies, _, err := client.Companies.List(t.Context(), NewQuery(All()))
	if err != nil || len(companies) != 1 {
		t.Errorf("Companies.List = %v, %v, want the one company", companies, err)
	}
	if n := reads.Load(); n != refusals+1 {
		t.Errorf("queries sent = %d, want %d", n, refusals+1)
	}
	if n := len(sleeps()); n != 2*refusals {
		t.Errorf("waits = %d, want %d, one before each retry", n, 2*refusals)
	}
}

// TestClient_threadRefusalsWaitTogether: three reads of one endpoint,
// refused together for the thread threshold (another process holds its
// threads), wait together while Autotask keeps refusing: one request is
// sent at a time, after a wait, until Autotask takes one, and then the
// other two go. Each read used to back off and probe on its own: three
// requests per wait, each refused, while the other process held the
// threads.
func TestClient_threadRefusalsWaitTogether(t *testing.T) {
	t.Parallel()
	const more = 5 // refusals after the first three
	client, mux, _ := setup(t)
	sleeps := recordSleeps(client)
	var (
		mu                sync.Mutex
		arrived, inFlight int
		peak              int
		together          = make(chan struct{})
	)
	mux.HandleFunc("/Companies/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		n := arrived
		if n == MaxConcurrency {
			close(together)
		}
		inFlight++
		if n > MaxConcurrency && n <= MaxConcurrency+more {
			peak = max(peak, inFlight)
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		<-together
		if n <= MaxConcurrency+more {
			threadRefusal(w, "")
			return
		}
		fmt.Fprintf(w, `{"item":{"id":%s}}`, strings.TrimPrefix(r.URL.Path, "/Companies/"))
	})
	var wg sync.WaitGroup
	for i := range MaxConcurrency {
		wg.Go(func() {
			if _, _, err := client.Companies.Get(t.Context(), int64(i+1)); err != nil {
				t.Errorf("Companies.Get(%d): %v", i+1, err)
			}
		})
	}
	wg.Wait()
	// The three refused together, the five refused one after another, the
	// one Autotask took and the two that waited for it.
	if arrived != MaxConcurrency+more+1+(MaxConcurrency-1) {
		t.Errorf("requests = %d, want %d", arrived, MaxConcurrency+more+1+(MaxConcurrency-1))
	}
	// One wait before each request sent alone while Autotask refused
	// them, where each read waited before each of its own retries (8).
	if n := len(sleeps()); n != more+1 {
		t.Errorf("waits = %d, want %d, one before each request sent alone", n, more+1)
	}
	if peak != 1 {
		t.Errorf("after the first refusals, %d requests were in flight together while Autotask refused them, want 1", peak)
	}
}

// The retries of thread-threshold refusals end once they have waited
// MaxThreadWait (here five Retry-Afters of a minute), with the refusal, as
// a request the server did not process, saying how long it waited; with
// retries disabled, at the first refusal.
func TestClient_threadThresholdWaitBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		maxRetries int
		want       int32
	}{
		{"default retries", DefaultMaxRetries, 6},
		{"retries disabled", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, mux, _ := setup(t, WithMaxRetries(tc.maxRetries))
			sleeps := recordSleeps(client)
			var calls atomic.Int32
			mux.HandleFunc("/ContractServiceAdjustments", func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				threadRefusal(w, "60")
			})
			_, _, err := client.ContractServiceAdjustments.Create(t.Context(), &CreateContractServiceAdjustmentRequest{ContractID: 1, ServiceID: 2, UnitChange: 3, EffectiveDate: Timestamp{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}})
			var rl *psa.RateLimitError
			if !errors.As(err, &rl) || rl.Hourly || !rest.WasUnprocessed(err) {
				t.Errorf("Create error = %v, want the thread refusal, as not processed", err)
			}
			if n := calls.Load(); n != tc.want {
				t.Errorf("creates sent = %d, want %d", n, tc.want)
			}
			var waited time.Duration
			for _, d := range sleeps() {
				waited += d
			}
			if want := time.Duration(tc.want-1) * time.Minute; waited != want {
				t.Errorf("waited %s, want %s", waited, want)
			} else if rl != nil && rl.Waited != want {
				t.Errorf("RateLimitError.Waited = %s, want %s", rl.Waited, want)
			}
		})
	}
}

// TestClient_parentScopedRefusalHoldsBothEndpoints: Autotask does not say
// which entity endpoint a parent-scoped URL (Contracts/1/Services) counts
// against for its thread limit, so a refusal of one holds back the
// requests to the parent's endpoint (Contracts) as well as the child's,
// and a refusal of a Contracts request holds back Contracts/1/Services.
// Keyed on the child alone, the next request was sent at once into an
// endpoint that may still be busy.
func TestClient_parentScopedRefusalHoldsBothEndpoints(t *testing.T) {
	t.Parallel()
	listServices := func(ctx context.Context, c *Client) error {
		_, _, err := c.ContractServices.ListByContract(ctx, 1)
		return err
	}
	getContract := func(ctx context.Context, c *Client) error {
		_, _, err := c.Contracts.Get(ctx, 2)
		return err
	}
	for _, tc := range []struct {
		name           string
		refused        string
		refuse, follow func(context.Context, *Client) error
	}{
		{"child URL refused, then the parent", "/Contracts/1/Services", listServices, getContract},
		{"parent refused, then the child URL", "/Contracts/2", getContract, listServices},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, mux, _ := setup(t, WithMaxRetries(0))
			sleeps := recordSleeps(client)
			var refused atomic.Bool
			mux.HandleFunc("/Contracts/", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == tc.refused && refused.CompareAndSwap(false, true) {
					threadRefusal(w, "10")
					return
				}
				if strings.HasSuffix(r.URL.Path, "/Services") {
					fmt.Fprint(w, `{"items":[],"pageDetails":{"count":0,"nextPageUrl":null}}`)
					return
				}
				fmt.Fprint(w, `{"item":{"id":2}}`)
			})
			if err := tc.refuse(t.Context(), client); !isThreadThreshold(err) {
				t.Fatalf("refused request = %v, want the thread threshold's refusal", err)
			}
			if err := tc.follow(t.Context(), client); err != nil {
				t.Fatalf("next request: %v", err)
			}
			if got := sleeps(); !slices.Equal(got, []time.Duration{10 * time.Second}) {
				t.Errorf("waits before the next request = %v, want [10s]: the refusal's Retry-After, the endpoints it may count against being held", got)
			}
		})
	}
}
