package connectwise

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
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
	// baseURLPath is a non-empty codebase, so that tests catch requests that
	// lose it (as go-github does).
	baseURLPath = "/v2025_1/apis/3.0"

	testCompany = "msp"
	testPublic  = "pub-key"
	testPrivate = "s3cr3t-private-key"
	testClient  = "client-guid"
)

// setup starts a test server and returns a client with the codebase pinned
// (no discovery), a mux for the API (paths relative to apis/3.0, e.g.
// "/company/companies/1") and the server URL. Retries do not sleep, and the
// throttle's clock stands still: a wait the sleep skipped is not over.
func setup(t *testing.T, opts ...Option) (*Client, *http.ServeMux, string) {
	t.Helper()
	mux, serverURL := resttest.Mount(t, baseURLPath)
	base := []Option{
		WithSite(serverURL),
		WithCodebase("v2025_1/"),
		WithCompanyID(testCompany),
		WithKeys(testPublic, testPrivate),
		WithClientID(testClient),
		WithSleep(func(ctx context.Context, _ time.Duration) error { return ctx.Err() }),
	}
	c, err := NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	stopped := time.Now()
	c.SetThrottleClock(func() time.Time { return stopped })
	return c, mux, serverURL
}

var (
	testMethod   = resttest.Method
	testHeader   = resttest.Header
	testJSONBody = resttest.JSONBody
)

func TestNewClient_missingSettings(t *testing.T) {
	t.Parallel()
	_, err := NewClient(WithCompanyID("msp"), WithKeys("pub", ""))
	if err == nil || !strings.Contains(err.Error(), "site, private key, client id") {
		t.Errorf("NewClient error = %v, want one naming site, private key and client id", err)
	}
	if _, err := NewClient(WithSite("https://na.myconnectwise.net/v4_6_release/")); err == nil || !strings.Contains(err.Error(), "must not have a path") {
		t.Errorf("WithSite with a path: %v", err)
	}
	if _, err := NewClient(WithCodebase("../x")); err == nil {
		t.Error("WithCodebase(\"../x\") succeeded")
	}
}

func TestClient_headers(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t, WithAPIVersion("2024.1"), WithUserAgent("psa-sync-test"))
	mux.HandleFunc("/company/companies/174", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, http.MethodGet)
		testHeader(t, r, "Accept", "application/vnd.connectwise.com+json; version=2024.1")
		testHeader(t, r, "clientId", testClient)
		testHeader(t, r, "User-Agent", "psa-sync-test")
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(testCompany+"+"+testPublic+":"+testPrivate))
		testHeader(t, r, "Authorization", want)
		w.Header().Set("api-current-version", "2025.16")
		fmt.Fprint(w, `{"id":174,"identifier":"Acme","name":"Acme Ltd","status":{"id":1,"name":"Active"}}`)
	})
	got, resp, err := c.Companies.Get(t.Context(), 174)
	if err != nil {
		t.Fatalf("Companies.Get returned error: %v", err)
	}
	want := &Company{ID: 174, Identifier: "Acme", Name: "Acme Ltd", Status: &Reference{ID: 1, Name: "Active"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Companies.Get returned %+v, want %+v", got, want)
	}
	if resp.APIVersion != "2025.16" {
		t.Errorf("Response.APIVersion = %q", resp.APIVersion)
	}
}

func TestCompaniesService_List_pagingKeepsConditions(t *testing.T) {
	t.Parallel()
	c, mux, serverURL := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/company/companies", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if got, want := q.Get("conditions"), `name="Acme \"Quoted\"" and deletedFlag=false`; got != want {
			t.Errorf("conditions = %q, want %q", got, want)
		}
		if q.Get("fields") != "id,name" || q.Get("pageSize") != "2" {
			t.Errorf("query = %s", r.URL.RawQuery)
		}
		switch calls.Add(1) {
		case 1:
			next := *r.URL
			qq := next.Query()
			qq.Set("page", "2")
			next.RawQuery = qq.Encode()
			w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next", <%s%s?page=2>; rel="last"`, serverURL, baseURLPath+r.URL.Path, qq.Encode(), serverURL, baseURLPath+r.URL.Path))
			fmt.Fprint(w, `[{"id":1,"name":"a"},{"id":2,"name":"b"}]`)
		default:
			if q.Get("page") != "2" {
				t.Errorf("second request page = %q", q.Get("page"))
			}
			fmt.Fprint(w, `[{"id":3,"name":"c"}]`)
		}
	})
	got, _, err := c.Companies.List(t.Context(), &ListOptions{
		Conditions: And(Eq("name", `Acme "Quoted"`), Eq("deletedFlag", false)),
		Fields:     []string{"id", "name"},
		PageSize:   2,
	})
	if err != nil {
		t.Fatalf("Companies.List returned error: %v", err)
	}
	if len(got) != 3 || got[2].ID != 3 || calls.Load() != 2 {
		t.Errorf("Companies.List returned %d companies in %d calls, want 3 in 2", len(got), calls.Load())
	}
}

func TestCompaniesService_ListPage(t *testing.T) {
	t.Parallel()
	c, mux, serverURL := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/company/companies", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if q := r.URL.Query(); q.Get("pageSize") != "2" || q.Get("page") != "3" {
			t.Errorf("query = %s, want pageSize=2 and page=3", r.URL.RawQuery)
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?pageSize=2&page=4>; rel="next"`, serverURL, baseURLPath+r.URL.Path))
		fmt.Fprint(w, `[{"id":5,"name":"e"},{"id":6,"name":"f"}]`)
	})
	got, resp, err := c.Companies.ListPage(t.Context(), &ListOptions{PageSize: 2, Page: 3})
	if err != nil {
		t.Fatalf("Companies.ListPage returned error: %v", err)
	}
	if len(got) != 2 || got[0].ID != 5 || calls.Load() != 1 {
		t.Errorf("Companies.ListPage returned %d companies in %d calls, want 2 in 1", len(got), calls.Load())
	}
	if !strings.HasSuffix(resp.NextPageURL, "page=4") {
		t.Errorf("Companies.ListPage NextPageURL = %q, want the Link header's next page", resp.NextPageURL)
	}
}

func TestCatalogService_List_forwardOnly(t *testing.T) {
	t.Parallel()
	c, mux, serverURL := setup(t)
	mux.HandleFunc("/procurement/catalog", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "pagination-type", "forward-only")
		if r.URL.Query().Get("orderBy") != "" || r.URL.Query().Get("page") != "" {
			t.Errorf("forward-only request with page or orderBy: %s", r.URL.RawQuery)
		}
		if r.URL.Query().Get("pageId") == "" {
			w.Header().Set("Link", fmt.Sprintf(`<%s%s?pageSize=1&pageId=700>; rel="next"`, serverURL, baseURLPath+r.URL.Path))
			fmt.Fprint(w, `[{"id":700,"identifier":"A","description":"A"}]`)
			return
		}
		fmt.Fprint(w, `[]`)
	})
	got, _, err := c.Catalog.List(t.Context(), &ListOptions{PageSize: 1, ForwardOnly: true})
	if err != nil || len(got) != 1 {
		t.Fatalf("Catalog.List = %v, %v", got, err)
	}
	if _, _, err := c.Catalog.List(t.Context(), &ListOptions{ForwardOnly: true, OrderBy: "id asc"}); err == nil {
		t.Error("forward-only with orderBy was accepted")
	}
}

func TestCatalogService_List_forwardOnlyUnsupported(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	mux.HandleFunc("/procurement/catalog", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"id":1},{"id":2}]`) // a full page and no Link
	})
	_, _, err := c.Catalog.List(t.Context(), &ListOptions{PageSize: 2, ForwardOnly: true})
	if err == nil || !strings.Contains(err.Error(), "does not support forward-only") {
		t.Errorf("Catalog.List error = %v, want one saying forward-only is not supported", err)
	}
}

func TestClient_pagingLoopAndForeignOrigin(t *testing.T) {
	t.Parallel()
	c, mux, serverURL := setup(t)
	mux.HandleFunc("/finance/agreements", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?page=2>; rel="next"`, serverURL, baseURLPath+r.URL.Path))
		fmt.Fprint(w, `[{"id":1}]`)
	})
	if _, _, err := c.Agreements.List(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "same next page twice") {
		t.Errorf("Agreements.List error = %v, want a paging loop error", err)
	}
	mux.HandleFunc("/company/companies", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<https://evil.example/steal>; rel="next"`)
		fmt.Fprint(w, `[{"id":1}]`)
	})
	if _, _, err := c.Companies.List(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "refusing to send credentials") {
		t.Errorf("Companies.List error = %v, want a refusal to follow a foreign link", err)
	}
}

func TestAgreementAdditionsService_Create(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	mux.HandleFunc("/finance/agreements/871/additions", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, http.MethodPost)
		testJSONBody(t, r, `{"product":{"id":752},"quantity":42,"billCustomer":"Billable","effectiveDate":"2026-11-01T00:00:00Z","unitPrice":4.5}`)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":3589,"product":{"id":752,"identifier":"SOPHOS"},"quantity":42,"billCustomer":"Billable","agreementId":871,"agreementStatus":"Active","cancelledDate":null}`)
	})
	got, _, err := c.AgreementAdditions.Create(t.Context(), 871, &CreateAdditionRequest{
		Product: &Reference{ID: 752}, Quantity: 42, BillCustomer: BillCustomerBillable,
		EffectiveDate: NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)), UnitPrice: Ptr(4.5),
	})
	if err != nil {
		t.Fatalf("AgreementAdditions.Create returned error: %v", err)
	}
	if got.ID != 3589 || got.Quantity != 42 || got.CancelledDate != nil {
		t.Errorf("AgreementAdditions.Create returned %+v", got)
	}
}

// A 2xx answer to a create that cannot be decoded means ConnectWise
// accepted it: the outcome is unknown, and the POST is not re-sent.
func TestAgreementAdditionsService_Create_unreadableAnswer(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	hiccup := &resttest.Answer{Status: http.StatusCreated, Body: `<html>upstream hiccup</html>`}
	mux.Handle("/finance/agreements/871/additions", hiccup)
	_, _, err := c.AgreementAdditions.Create(t.Context(), 871, &CreateAdditionRequest{
		Product: &Reference{ID: 752}, Quantity: 42, BillCustomer: BillCustomerBillable,
	})
	if !errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Errorf("Create error = %v, want one matching psa.ErrOutcomeUnknown", err)
	}
	if n := hiccup.Calls(); n != 1 {
		t.Errorf("POST sent %d times, want exactly once", n)
	}
}

func TestAgreementAdditionsService_SetQuantityAndCancel(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	var bodies []string
	var mu sync.Mutex
	mux.HandleFunc("/finance/agreements/871/additions/3589", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, http.MethodPatch)
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		fmt.Fprint(w, `{"id":3589,"quantity":7}`)
	})
	if _, _, err := c.AgreementAdditions.SetQuantity(t.Context(), 871, 3589, 7); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AgreementAdditions.Cancel(t.Context(), 871, 3589, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	want := []string{`[{"op":"replace","path":"quantity","value":7}]`, `[{"op":"replace","path":"cancelledDate","value":"2026-11-30T00:00:00Z"}]`}
	if !reflect.DeepEqual(bodies, want) {
		t.Errorf("PATCH bodies = %q, want %q", bodies, want)
	}
	if _, _, err := c.AgreementAdditions.Update(t.Context(), 871, 3589, []PatchOperation{{Op: "replace", Path: "/quantity", Value: 1}}); err == nil {
		t.Error("a patch path with a leading slash was accepted")
	}
}

func TestCheckResponse_errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		body   string
		is     error
		text   string
	}{
		{http.StatusBadRequest, `{"code":"InvalidObject","message":"catalogItem object is invalid","errors":[{"code":"ObjectExists","message":"Product ID already in use.","resource":"catalogItem","field":"identifier"}]}`, psa.ErrValidation, "identifier: Product ID already in use."},
		{http.StatusUnauthorized, `{"code":"Unauthorized","message":"Authentication failed."}`, psa.ErrUnauthorized, "Authentication failed."},
		{http.StatusForbidden, `{"code":"Forbidden","message":"no access"}`, psa.ErrUnauthorized, "no access"},
		{http.StatusNotFound, `{"code":"NotFound","message":"Addition recId 5 not found"}`, psa.ErrNotFound, "recId 5"},
		{http.StatusConflict, `{"code":"Conflict","message":"changed"}`, psa.ErrConflict, "changed"},
		{http.StatusTooManyRequests, `{"code":"TooManyRequests","message":"slow down"}`, psa.ErrRateLimited, "retry after 7s"},
		{http.StatusInternalServerError, `not json`, nil, "500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			r := &http.Response{StatusCode: tt.status, Header: http.Header{"Retry-After": {"7"}}, Body: io.NopCloser(strings.NewReader(tt.body)),
				Request: &http.Request{Method: http.MethodGet, URL: mustURL("https://cw.example/v1/apis/3.0/x?conditions=secret")}}
			err := CheckResponse(r)
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("CheckResponse = %v, want it to contain %q", err, tt.text)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("CheckResponse = %v, want it to match %v", err, tt.is)
			}
			if strings.Contains(err.Error(), "conditions=secret") {
				t.Errorf("error carries the query string: %v", err)
			}
		})
	}
	var ve *psa.ValidationError
	r := &http.Response{StatusCode: 400, Body: io.NopCloser(strings.NewReader(tests[0].body))}
	if !errors.As(CheckResponse(r), &ve) || len(ve.Messages) != 2 || ve.System != psa.SystemConnectWise {
		t.Errorf("validation error = %+v", ve)
	}
}

func TestCheckResponse_bodyLimit(t *testing.T) {
	t.Parallel()
	big := `{"code":"InvalidObject","message":"` + strings.Repeat("x", 2<<20) + `"}`
	r := &http.Response{StatusCode: 400, Body: io.NopCloser(strings.NewReader(big))}
	var er *ErrorResponse
	if !errors.As(CheckResponse(r), &er) || er.Message != "" {
		t.Errorf("a body over 1 MiB was parsed: %d bytes of message", len(er.Message))
	}
}

func TestClient_retriesReadsAndPatches(t *testing.T) {
	t.Parallel()
	c, mux, sleeps := recordSleeps(t)
	var n atomic.Int32
	mux.HandleFunc("/finance/agreements/1", func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		default:
			fmt.Fprint(w, `{"id":1,"agreementStatus":"Active"}`)
		}
	})
	got, _, err := c.Agreements.Get(t.Context(), 1)
	if err != nil || got.AgreementStatus != AgreementActive {
		t.Fatalf("Agreements.Get = %+v, %v", got, err)
	}
	if waits := sleeps(); len(waits) != 2 || waits[0] < 3*time.Second {
		t.Errorf("waits = %v, want 2, the first at least 3s", waits)
	}
	var p atomic.Int32
	mux.HandleFunc("/procurement/catalog/5", func(w http.ResponseWriter, r *http.Request) {
		if p.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"id":5,"inactiveFlag":true}`)
	})
	if it, _, err := c.Catalog.Deactivate(t.Context(), 5); err != nil || !it.InactiveFlag || p.Load() != 2 {
		t.Errorf("Catalog.Deactivate = %+v, %v after %d attempts", it, err, p.Load())
	}
}

// TestClient_serverFaultRetryAfterOverCap: a 503 whose Retry-After is a
// day ends the retries at once with an error that says so, as a 429 over
// rest.MaxRetryAfter does, instead of waiting it out.
func TestClient_serverFaultRetryAfterOverCap(t *testing.T) {
	t.Parallel()
	c, mux, sleeps := recordSleeps(t)
	refusal := &resttest.Answer{Status: http.StatusServiceUnavailable, RetryAfter: "86400"}
	mux.Handle("/company/companies/1", refusal)
	_, _, err := c.Companies.Get(t.Context(), 1)
	var er *ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("Companies.Get error = %v, want the 503", err)
	}
	for _, part := range []string{"24h0m0s", "5m0s"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %s", err, part)
		}
	}
	if refusal.Calls() != 1 || len(sleeps()) != 0 {
		t.Errorf("%d requests and waits %v, want 1 request and no wait", refusal.Calls(), sleeps())
	}
}

func TestClient_createNotRetried(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	refusal := &resttest.Answer{Status: http.StatusInternalServerError, Body: `{"code":"ConnectWiseApi","message":"An error occurred"}`}
	mux.Handle("/procurement/catalog", refusal)
	_, _, err := c.Catalog.Create(t.Context(), &CreateCatalogItemRequest{Identifier: "A", Description: "A", CustomerDescription: "A"})
	if !errors.Is(err, psa.ErrOutcomeUnknown) || refusal.Calls() != 1 {
		t.Errorf("Catalog.Create = %v after %d attempts, want ErrOutcomeUnknown after 1", err, refusal.Calls())
	}
	mux.HandleFunc("/finance/agreements/1/additions", func(w http.ResponseWriter, r *http.Request) {
		resttest.DropConnection(t, w)
	})
	_, _, err = c.AgreementAdditions.Create(t.Context(), 1, &CreateAdditionRequest{Product: &Reference{ID: 1}, BillCustomer: "Billable"})
	if !errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Errorf("AgreementAdditions.Create with a dropped connection = %v, want ErrOutcomeUnknown", err)
	}
	var m atomic.Int32
	mux.HandleFunc("/finance/agreements/2/additions", func(w http.ResponseWriter, r *http.Request) {
		if m.Add(1) == 1 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":9,"quantity":0}`)
	})
	if a, _, err := c.AgreementAdditions.Create(t.Context(), 2, &CreateAdditionRequest{Product: &Reference{ID: 1}, BillCustomer: "Billable"}); err != nil || a.ID != 9 || m.Load() != 2 {
		t.Errorf("a create refused with 429 was not re-sent: %+v, %v, %d attempts", a, err, m.Load())
	}
}

func TestClient_codebaseDiscovery(t *testing.T) {
	t.Parallel()
	var codebase atomic.Value
	codebase.Store("v2025_1/")
	var infos atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/login/companyinfo/msp", func(w http.ResponseWriter, r *http.Request) {
		infos.Add(1)
		if r.Header.Get("Authorization") != "" {
			t.Error("companyinfo was sent credentials")
		}
		fmt.Fprintf(w, `{"CompanyName":"msp","Codebase":%q,"VersionCode":"v2025.1","CompanyID":"msp"}`, codebase.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		cb, _ := codebase.Load().(string) // the test stores only strings
		if !strings.HasPrefix(r.URL.Path, "/"+cb+"apis/3.0/") {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"code":"NotFound","message":"no such codebase"}`)
			return
		}
		fmt.Fprint(w, `{"id":1,"name":"Acme"}`)
	})
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	c, err := NewClient(WithSite(server.URL), WithCompanyID(testCompany), WithKeys(testPublic, testPrivate), WithClientID(testClient))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Companies.Get(t.Context(), 1); err != nil {
		t.Fatalf("Companies.Get: %v", err)
	}
	codebase.Store("v2026_1/")
	if _, _, err := c.Companies.Get(t.Context(), 1); err != nil {
		t.Fatalf("Companies.Get after the codebase moved: %v", err)
	}
	if infos.Load() != 2 {
		t.Errorf("companyinfo requests = %d, want 2", infos.Load())
	}
	u, _ := c.BaseURL(t.Context())
	if !strings.HasSuffix(u.Path, "/v2026_1/apis/3.0/") {
		t.Errorf("BaseURL = %s", u)
	}
}

// TestClient_discoveryAbandoned cancels the request whose discovery is under
// way: it gets its context's error, and a request that needs the codebase
// at the same time discovers it with its own context instead of failing.
func TestClient_discoveryAbandoned(t *testing.T) {
	t.Parallel()
	var infos atomic.Int32
	first := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/login/companyinfo/msp", func(w http.ResponseWriter, r *http.Request) {
		if infos.Add(1) == 1 {
			close(first)
			<-r.Context().Done() // answered only after the caller gave up
			return
		}
		fmt.Fprint(w, `{"CompanyName":"msp","Codebase":"v2025_1/","CompanyID":"msp"}`)
	})
	mux.HandleFunc("/v2025_1/apis/3.0/company/companies/1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"id":1,"name":"Acme"}`)
	})
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	c, err := NewClient(WithSite(server.URL), WithCompanyID(testCompany), WithKeys(testPublic, testPrivate), WithClientID(testClient))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { _, _, err := c.Companies.Get(ctx, 1); errA <- err }()
	<-first
	go func() { _, _, err := c.Companies.Get(t.Context(), 1); errB <- err }()
	cancel()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request = %v, want context.Canceled", err)
	}
	if err := <-errB; err != nil {
		t.Errorf("request that needed the codebase meanwhile = %v", err)
	}
	if _, _, err := c.Companies.Get(t.Context(), 1); err != nil || infos.Load() != 2 {
		t.Errorf("Companies.Get = %v after %d company info requests, want nil after 2", err, infos.Load())
	}
}

func TestSplitAPIRoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, root, rest string
		ok              bool
	}{
		{"https://api-na.myconnectwise.net/v2025_1/apis/3.0/company/companies/7?fields=id,name",
			"https://api-na.myconnectwise.net/v2025_1/apis/3.0/", "company/companies/7?fields=id,name", true},
		{"http://127.0.0.1:8089/V4_6_Release/APIs/3.0/finance/agreements", "http://127.0.0.1:8089/V4_6_Release/APIs/3.0/", "finance/agreements", true},
		{"https://h/v1/apis/3.0/procurement/catalog/a%2Fb?conditions=name%3D%22x%22", "https://h/v1/apis/3.0/", "procurement/catalog/a%2Fb?conditions=name%3D%22x%22", true},
		{"https://h/apis/3.0/system/info", "https://h/apis/3.0/", "system/info", true},
		{"https://h/login/companyinfo/msp", "", "", false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		root, rest, ok := splitAPIRoot(u)
		if root != tt.root || rest != tt.rest || ok != tt.ok {
			t.Errorf("splitAPIRoot(%s) = %q, %q, %t; want %q, %q, %t", tt.url, root, rest, ok, tt.root, tt.rest, tt.ok)
		}
	}
}

func TestParseLinks(t *testing.T) {
	t.Parallel()
	got := parseLinks([]string{`<https://h/a?page=2&x=a,b>; rel="next", <https://h/a?page=5>; rel=last`, `<https://h/a?page=1>; rel="first prev"`})
	want := map[string]string{"next": "https://h/a?page=2&x=a,b", "last": "https://h/a?page=5", "first": "https://h/a?page=1", "prev": "https://h/a?page=1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLinks = %v, want %v", got, want)
	}
}

func TestConditions(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 31, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		c    Condition
		want string
	}{
		{Eq("company/id", 174), "company/id=174"},
		{Eq("name", `a "b" \c`), `name="a \"b\" \\c"`},
		{And(Eq("agreementStatus", "Active"), Eq("cancelledFlag", false)), `agreementStatus="Active" and cancelledFlag=false`},
		{And(Or(Eq("a", 1), Eq("b", 2.5)), Gt("lastUpdated", at)), `(a=1 or b=2.5) and lastUpdated>[2026-01-30T23:00:00Z]`},
		{In("id", int64(1), int64(2), int64(3)), `id in (1,2,3)`},
		{And(Contains("name", "x"), Like("identifier", "SOPH"+EscapeLike("_%")+"%")), `name contains "x" and identifier like "SOPH[_][%]%"`},
		{Not(IsNull("cancelledDate")), `not (cancelledDate=null)`},
		{And(Condition{}, Eq("a", true)), `a=true`},
		{NotEq("x", "y\nz"), `x!="y z"`},
		{Lte("quantity", 3), "quantity<=3"},
	}
	for _, tt := range tests {
		if tt.c.Err() != nil || tt.c.String() != tt.want {
			t.Errorf("condition = %q (err %v), want %q", tt.c, tt.c.Err(), tt.want)
		}
	}
	for _, bad := range []Condition{Eq("name) or (1", 1), Eq("a", struct{}{}), In[int]("id"), And(Eq("ok", 1), Eq("bad field", 2))} {
		if bad.Err() == nil {
			t.Errorf("condition %q has no error", bad)
		}
	}
	if _, err := (&ListOptions{Conditions: Eq("a b", 1)}).query(); err == nil {
		t.Error("a bad condition was sent")
	}
	if _, err := (&ListOptions{PageSize: 1001}).query(); err == nil {
		t.Error("pageSize 1001 was accepted")
	}
}

func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	c, _, _ := setup(t)
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c.creds)} {
		if strings.Contains(s, testPrivate) {
			t.Errorf("formatting the client leaks the private key: %s", s)
		}
	}
}

// TestCheckResponse_credentialsRedacted: a server that quotes the
// clientId header and the Basic credential's member (company+publicKey),
// as is and encoded, in its error. None of them may reach the error text.
func TestCheckResponse_credentialsRedacted(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	mux.HandleFunc("/company/companies/1", func(w http.ResponseWriter, r *http.Request) {
		user, _, _ := r.BasicAuth()
		msg := fmt.Sprintf("clientId %s (%s) is not allowed for member %s (%s, %s)", r.Header.Get("clientId"),
			base64.StdEncoding.EncodeToString([]byte(r.Header.Get("clientId"))), user, url.QueryEscape(user), base64.StdEncoding.EncodeToString([]byte(user)))
		body, _ := json.Marshal(map[string]string{"code": "Unauthorized", "message": msg})
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(body)
	})
	_, _, err := c.Companies.Get(t.Context(), 1)
	if err == nil || !strings.Contains(err.Error(), "is not allowed for member") {
		t.Fatalf("Companies.Get error = %v, want the server's message", err)
	}
	member := testCompany + "+" + testPublic
	for _, secret := range []string{testClient, base64.StdEncoding.EncodeToString([]byte(testClient)), testPublic,
		member, url.QueryEscape(member), base64.StdEncoding.EncodeToString([]byte(member))} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Companies.Get error contains %q: %v", secret, err)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestAdditionsService_missingQuantity: an addition that leaves out its
// quantity (a strict ConnectWise omits nulls) is refused, not read as 0.
func TestAdditionsService_missingQuantity(t *testing.T) {
	t.Parallel()
	var a Addition
	for _, body := range []string{`{"id":5,"product":{"id":1}}`, `{"id":5,"quantity":null}`} {
		if err := json.Unmarshal([]byte(body), &a); err == nil || !strings.Contains(err.Error(), "addition 5 reports no quantity") {
			t.Errorf("decoding %s: %v, want an error saying it reports no quantity", body, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"id":6,"quantity":3,"agreementStatus":"Active"}`), &a); err != nil || a.Quantity != 3 || a.AgreementStatus != "Active" {
		t.Errorf("decoding a full addition = %+v, %v", a, err)
	}
}

// TestAgreementsService_List_unreadableRows: an agreement that cannot be
// read in a page that is otherwise sound is left out and reported by its
// id in an *UnreadableAgreementsError, with the other agreements (of every
// page) returned, so that a read of many agreements need not fail them all
// over one. An agreement whose id cannot be read, a null row, and a page
// that is not a list of agreements still fail the list.
func TestAgreementsService_List_unreadableRows(t *testing.T) {
	t.Parallel()
	const good = `{"id":9,"name":"Good","agreementStatus":"Active","cancelledFlag":false},{"id":10,"name":"Other","agreementStatus":"Cancelled","cancelledFlag":true}`
	for _, tc := range []struct {
		name string
		bad  string // a row of agreement 3 (or of none)
		want string // what the error says; "" for a list that fails as a whole
	}{
		{"flag of the wrong type", `{"id":3,"name":"Bad","agreementStatus":"Active","cancelledFlag":"no"}`,
			"connectwise: agreement 3 cannot be read: field cancelledFlag holds string, not bool"},
		{"status of the wrong type", `{"id":3,"name":"Bad","agreementStatus":1}`,
			"connectwise: agreement 3 cannot be read: field agreementStatus holds number, not string"},
		{"company of the wrong type", `{"id":3,"name":"Bad","agreementStatus":"Active","company":{"id":"174"}}`,
			"connectwise: agreement 3 cannot be read: field company.id holds string, not int64"},
		{"bad date", `{"id":3,"name":"Bad","agreementStatus":"Active","startDate":"yesterday"}`,
			`connectwise: agreement 3 cannot be read: connectwise: unrecognised time "yesterday"`},
		{"no id", `{"name":"Bad","agreementStatus":"Active","cancelledFlag":"no"}`, ""},
		{"id of the wrong type", `{"id":"3","name":"Bad","agreementStatus":"Active"}`, ""},
		{"not an agreement", `"3"`, ""},
		{"null", `null`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, mux, serverURL := setup(t)
			mux.HandleFunc("/finance/agreements", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("page") == "2" {
					fmt.Fprint(w, `[{"id":11,"name":"Third","agreementStatus":"Active"}]`)
					return
				}
				w.Header().Set("Link", fmt.Sprintf(`<%s%s/finance/agreements?page=2>; rel="next"`, serverURL, baseURLPath))
				fmt.Fprintf(w, `[%s,%s]`, good, tc.bad)
			})
			list, _, err := c.Agreements.List(t.Context(), &ListOptions{Conditions: In("id", 3, 9, 10, 11)})
			var ue *UnreadableAgreementsError
			if tc.want == "" {
				if err == nil || errors.As(err, &ue) {
					t.Errorf("Agreements.List = %+v, %v; want the list refused as a whole", list, err)
				}
				return
			}
			if !errors.As(err, &ue) || len(ue.Agreements) != 1 || ue.Agreements[3] == nil || ue.Agreements[3].Error() != tc.want || err.Error() != tc.want {
				t.Fatalf("Agreements.List error = %v, want an UnreadableAgreementsError for agreement 3 alone saying %q", err, tc.want)
			}
			var ids []int64
			for _, a := range list {
				ids = append(ids, a.ID)
			}
			if want := []int64{9, 10, 11}; !reflect.DeepEqual(ids, want) {
				t.Errorf("Agreements.List agreements = %v, want %v: the readable ones of both pages", ids, want)
			}
			if list[1].AgreementStatus != AgreementCancelled || !list[1].CancelledFlag {
				t.Errorf("agreement 10 = %+v, want it read in full", list[1])
			}
		})
	}

	// A page that is not JSON fails the list as an answer that is not
	// ConnectWise's (psa.ErrNotAPI), not an empty one.
	c, mux, _ := setup(t)
	mux.HandleFunc("/finance/agreements", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<html><body>upstream hiccup</body></html>`)
	})
	if list, _, err := c.Agreements.List(t.Context(), nil); !errors.Is(err, psa.ErrNotAPI) || !strings.Contains(err.Error(), "an HTML page") {
		t.Errorf("Agreements.List of an HTML page = %+v, %v; want psa.ErrNotAPI", list, err)
	}
}

// TestAgreementAdditionsService_List_fullPageWithoutLink: a full navigable
// page without a Link header (a proxy or cache that drops it) is not the
// last: the next page is asked for by number, with the same conditions,
// until one comes back short. Read short, the agreement's additions
// would be added again.
func TestAgreementAdditionsService_List_fullPageWithoutLink(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	var pages []string
	mux.HandleFunc("/finance/agreements/871/additions", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		pages = append(pages, q.Get("page"))
		if q.Get("conditions") != `agreementStatus="Active"` {
			t.Errorf("conditions = %q, want the original ones on every page", q.Get("conditions"))
		}
		switch q.Get("page") {
		case "":
			fmt.Fprint(w, `[{"id":1,"quantity":1},{"id":2,"quantity":1}]`)
		case "2":
			fmt.Fprint(w, `[{"id":3,"quantity":1},{"id":4,"quantity":1}]`)
		default:
			fmt.Fprint(w, `[{"id":5,"quantity":1}]`)
		}
	})
	got, _, err := c.AgreementAdditions.List(t.Context(), 871, &ListOptions{Conditions: Eq("agreementStatus", "Active"), PageSize: 2})
	if err != nil || len(got) != 5 || got[4].ID != 5 {
		t.Errorf("AgreementAdditions.List = %d additions, %v; want 5 over 3 pages (asked for %q)", len(got), err, pages)
	}

	// A server that ignores page answers the first page again: an error,
	// never the first page twice, nor a loop.
	mux.HandleFunc("/finance/agreements/872/additions", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"id":1,"quantity":1},{"id":2,"quantity":1}]`)
	})
	if _, _, err := c.AgreementAdditions.List(t.Context(), 872, &ListOptions{PageSize: 2}); err == nil || !strings.Contains(err.Error(), "repeats page 1") {
		t.Errorf("AgreementAdditions.List error = %v, want one saying page 2 repeats page 1", err)
	}
}

func TestCatalogService_ListTypes(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	mux.HandleFunc("/procurement/types", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, http.MethodGet)
		fmt.Fprint(w, `[{"id":1,"name":"Service","inactiveFlag":false,"defaultFlag":true},{"id":4,"name":"Old","inactiveFlag":true}]`)
	})
	got, _, err := c.Catalog.ListTypes(t.Context(), nil)
	want := []*ProductType{{ID: 1, Name: "Service"}, {ID: 4, Name: "Old", InactiveFlag: true}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Catalog.ListTypes returned %+v, %v, want %+v", got, err, want)
	}
}

func TestCatalogService_ListSubcategories(t *testing.T) {
	t.Parallel()
	c, mux, _ := setup(t)
	mux.HandleFunc("/procurement/subcategories", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, http.MethodGet)
		fmt.Fprint(w, `[{"id":2,"name":"Security","category":{"id":1,"name":"Services"}}]`)
	})
	got, _, err := c.Catalog.ListSubcategories(t.Context(), nil)
	want := []*SubCategory{{ID: 2, Name: "Security", Category: &Reference{ID: 1, Name: "Services"}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Catalog.ListSubcategories returned %+v, %v, want %+v", got, err, want)
	}
}

// recordSleeps is setup whose client records its waits between retries,
// which return at once; the function returned lists them.
func recordSleeps(t *testing.T, opts ...Option) (*Client, *http.ServeMux, func() []time.Duration) {
	t.Helper()
	sleeps := new(resttest.Sleeps)
	c, mux, _ := setup(t, append([]Option{WithSleep(sleeps.Sleep)}, opts...)...)
	return c, mux, sleeps.Waits
}

// TestClient_throttledReadOutlastsMaxRetries: a read of an agreement's
// additions answered 429 (without Retry-After) more often than
// WithMaxRetries allows is retried until ConnectWise takes it, where it
// failed after 4 retries and failed every customer of a pass's batch
// read; a write answered 429 still gives up after its retries, so that a
// pass stops writing soon.
func TestClient_throttledReadOutlastsMaxRetries(t *testing.T) {
	t.Parallel()
	const refusals = 3 * DefaultMaxRetries
	c, mux, sleeps := recordSleeps(t)
	var reads, writes atomic.Int32
	mux.HandleFunc("/finance/agreements/1/additions", func(w http.ResponseWriter, r *http.Request) {
		if reads.Add(1) <= refusals {
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"code":"TooManyRequests","message":"Too many requests"}`)
			return
		}
		fmt.Fprint(w, `[{"id":2,"quantity":3}]`)
	})
	mux.HandleFunc("/finance/agreements/1/additions/2", func(w http.ResponseWriter, r *http.Request) {
		writes.Add(1)
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"code":"TooManyRequests","message":"Too many requests"}`)
	})
	adds, _, err := c.AgreementAdditions.List(t.Context(), 1, nil)
	if err != nil || len(adds) != 1 {
		t.Errorf("AgreementAdditions.List = %v, %v, want the one addition", adds, err)
	}
	if n := reads.Load(); n != refusals+1 {
		t.Errorf("reads sent = %d, want %d", n, refusals+1)
	}
	if n := len(sleeps()); n != refusals {
		t.Errorf("waits = %d, want %d, one before each retry", n, refusals)
	}
	_, _, err = c.AgreementAdditions.SetQuantity(t.Context(), 1, 2, 5)
	var rl *psa.RateLimitError
	if !errors.As(err, &rl) || rl.Waited != 0 {
		t.Errorf("SetQuantity error = %v, want the 429 after the retries", err)
	}
	if n := writes.Load(); n != DefaultMaxRetries+1 {
		t.Errorf("writes sent = %d, want %d (the first and its retries)", n, DefaultMaxRetries+1)
	}
}

// TestClient_throttledReadWaitBounded: the retries of a read answered 429
// end once they have waited MaxThrottledReadWait (here five Retry-Afters
// of a minute), with the 429, as a request ConnectWise did not process,
// saying how long it waited; with retries disabled, at the first 429.
func TestClient_throttledReadWaitBounded(t *testing.T) {
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
			c, mux, sleeps := recordSleeps(t, WithMaxRetries(tc.maxRetries))
			refusal := &resttest.Answer{Status: http.StatusTooManyRequests, RetryAfter: "60"}
			mux.Handle("/finance/agreements/1/additions", refusal)
			_, _, err := c.AgreementAdditions.List(t.Context(), 1, nil)
			var rl *psa.RateLimitError
			if !errors.As(err, &rl) || rl.Hourly || !rest.WasUnprocessed(err) {
				t.Errorf("List error = %v, want the 429, as not processed", err)
			}
			if n := refusal.Calls(); n != tc.want {
				t.Errorf("reads sent = %d, want %d", n, tc.want)
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
