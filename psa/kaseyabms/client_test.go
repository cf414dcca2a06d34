package kaseyabms_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/rest"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// basePath is a non-empty prefix every request must keep.
const basePath = "/bms-root/"

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	client *kaseyabms.Client
	mux    *http.ServeMux
	clock  *testClock
	auths  atomic.Int32 // authenticate calls
	mu     sync.Mutex
	forms  []map[string]string
}

// setup starts a server whose mux lives under basePath, with an
// authenticate endpoint that issues "token-N" valid for an hour, and a
// client pointed at it.
func setup(t *testing.T, opts ...kaseyabms.Option) *fixture {
	t.Helper()
	f := &fixture{clock: &testClock{t: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}}
	var serverURL string
	f.mux, serverURL = resttest.Mount(t, basePath)
	f.mux.HandleFunc("POST /v2/security/authenticate", func(w http.ResponseWriter, r *http.Request) {
		n := f.auths.Add(1)
		if err := r.ParseForm(); err != nil {
			t.Errorf("authenticate: %v", err)
		}
		form := map[string]string{"Content-Type": r.Header.Get("Content-Type")}
		for k, v := range r.PostForm {
			form[k] = v[0]
		}
		f.mu.Lock()
		f.forms = append(f.forms, form)
		f.mu.Unlock()
		if r.PostForm.Get("Password") != "pw" {
			fmt.Fprint(w, `{"success":false,"error":{"code":401,"message":"Invalid username, password or tenant"},"result":null}`)
			return
		}
		fmt.Fprintf(w, `{"success":true,"error":null,"result":{"accessToken":"token-%d","refreshToken":"refresh-%d","accessTokenExpireOn":%q,"refreshTokenExpireOn":%q}}`,
			n, n, f.clock.Now().Add(time.Hour).Format("2006-01-02T15:04:05"), f.clock.Now().Add(24*time.Hour).Format(time.RFC3339))
	})
	base := []kaseyabms.Option{
		kaseyabms.WithBaseURL(serverURL + basePath),
		kaseyabms.WithCredentials("api@msp.example", "pw", "Acme MSP"),
		kaseyabms.WithBackoff(time.Millisecond, 2*time.Millisecond),
		kaseyabms.WithClock(f.clock.Now),
	}
	c, err := kaseyabms.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.client = c
	return f
}

var (
	testHeader   = resttest.Header
	testJSONBody = resttest.JSONBody
)

func TestAPIHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"bms.kaseya.com":         "api.bms.kaseya.com",
		"bmsemea.kaseya.com":     "api.bmsemea.kaseya.com",
		" BMSAPAC.Kaseya.com ":   "api.bmsapac.kaseya.com",
		"vorexlogin.com":         "api.vorexlogin.com",
		"www.vorexlogin.com":     "api.vorexlogin.com",
		"vorexlogin.kaseya.com":  "api.vorexlogin.kaseya.com",
		"api.bmsemea.kaseya.com": "api.bmsemea.kaseya.com",
		"bms.example.local:8443": "api.bms.example.local:8443",
	} {
		got, err := kaseyabms.APIHost(in)
		if err != nil || got != want {
			t.Errorf("APIHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"https://bmsemea.kaseya.com": "must not include a protocol",
		"http://bms.kaseya.com/":     "must not include a protocol",
		"bmsemea.kaseya.com/":        "must not include a path",
		"bmsemea.kaseya.com/v2":      "must not include a path",
		"bms.kaseya.com?tenant=x":    "must not include a path",
		"":                           "hostname is empty",
		"user@bms.kaseya.com":        "is not a host name",
		"bms kaseya.com":             "is not a host name",
		".kaseya.com":                "is not a host name",
	} {
		_, err := kaseyabms.APIHost(in)
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "bmsemea.kaseya.com") {
			t.Errorf("APIHost(%q) error = %v, want it to contain %q and an example", in, err, msg)
		}
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	c, err := kaseyabms.NewClient(kaseyabms.WithHostname("bmsemea.kaseya.com"), kaseyabms.WithCredentials("u", "p", "t"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BaseURL().String(); got != "https://api.bmsemea.kaseya.com/" {
		t.Errorf("BaseURL = %s", got)
	}
	// The base URL wins over the hostname, in any order.
	c, _ = kaseyabms.NewClient(kaseyabms.WithBaseURL("http://127.0.0.1:9/x"), kaseyabms.WithHostname("bms.kaseya.com"), kaseyabms.WithCredentials("u", "p", "t"))
	if got := c.BaseURL().String(); got != "http://127.0.0.1:9/x/" {
		t.Errorf("BaseURL = %s", got)
	}
	for _, tc := range []struct {
		opts []kaseyabms.Option
		want string
	}{
		{[]kaseyabms.Option{kaseyabms.WithCredentials("u", "p", "t")}, "hostname"},
		{[]kaseyabms.Option{kaseyabms.WithHostname("bms.kaseya.com"), kaseyabms.WithCredentials("u", "", "")}, "missing credentials: password, tenant"},
		{[]kaseyabms.Option{kaseyabms.WithBaseURL("bms.kaseya.com")}, "not an absolute http(s) URL"},
		{[]kaseyabms.Option{kaseyabms.WithHostname("https://bms.kaseya.com")}, "must not include a protocol"},
		{[]kaseyabms.Option{kaseyabms.WithHourlyLimit(0)}, "hourly limit"},
	} {
		if _, err := kaseyabms.NewClient(tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewClient error = %v, want %q", err, tc.want)
		}
	}
}

func TestClient_authenticate(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.mux.HandleFunc("GET /v2/crm/accounts/lookup", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Authorization", "Bearer token-1")
		testHeader(t, r, "User-Agent", "psa-sync")
		fmt.Fprint(w, `{"success":true,"result":[{"id":1,"name":"Acme","isActive":true}]}`)
	})
	for range 2 {
		got, _, err := f.client.Accounts.Lookup(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := []*kaseyabms.AccountLookup{{ID: 1, Name: "Acme", IsActive: true}}; !cmp.Equal(got, want) {
			t.Errorf("Accounts.Lookup returned %+v, want %+v", got, want)
		}
	}
	if n := f.auths.Load(); n != 1 {
		t.Errorf("%d authentications, want 1", n)
	}
	want := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "GrantType": "password", "UserName": "api@msp.example", "Password": "pw", "Tenant": "Acme MSP"}
	if !cmp.Equal(f.forms[0], want) {
		t.Errorf("authenticate form = %v, want %v", f.forms[0], want)
	}
}

func TestClient_authenticateRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, kaseyabms.WithCredentials("api@msp.example", "wrong", "Acme MSP"))
	_, _, err := f.client.Services.Get(t.Context(), 1)
	if !errors.Is(err, psa.ErrUnauthorized) {
		t.Fatalf("error = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q leaks the password", err)
	}
	if n := f.auths.Load(); n != 1 {
		t.Errorf("%d authentications, want 1 (refusals are final)", n)
	}
}

// TestClient_authenticateNotFound: an HTTP 404 to the sign-in (an address
// that is not the BMS API: a proxy, a path typed wrong) says to check the
// address first, not that the credentials were refused; an envelope
// saying the user or tenant does not exist stays a refusal of the
// credentials. Both match psa.ErrUnauthorized (nothing else can be done
// with the client) and neither psa.ErrNotFound: callers read that as a
// record that does not exist (a service read by id, an account's
// contracts), hiding the failed sign-in. The 404 matches
// psa.ErrEndpointNotFound.
func TestClient_authenticateNotFound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc
		want     string
		endpoint bool
	}{
		{"http 404", func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) },
			"the sign-in endpoint was not found at the configured address (check base_url or hostname first", true},
		{"envelope", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, `{"success":false,"error":{"code":404,"message":"Tenant does not exist"},"result":null}`)
		}, "the API user, password or tenant was refused", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != basePath+"v2/security/authenticate" {
					t.Errorf("request %s %s, want only the sign-in", r.Method, r.URL.Path)
				}
				tc.handler(w, r)
			}))
			t.Cleanup(srv.Close)
			c, err := kaseyabms.NewClient(kaseyabms.WithBaseURL(srv.URL+basePath), kaseyabms.WithCredentials("api@msp.example", "pw", "Acme MSP"),
				kaseyabms.WithBackoff(time.Millisecond, 2*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = c.Services.Get(t.Context(), 1)
			if !errors.Is(err, psa.ErrUnauthorized) || errors.Is(err, psa.ErrNotFound) {
				t.Fatalf("error = %v, want ErrUnauthorized and not ErrNotFound", err)
			}
			if got := errors.Is(err, psa.ErrEndpointNotFound); got != tc.endpoint {
				t.Errorf("errors.Is(%v, ErrEndpointNotFound) = %v, want %v", err, got, tc.endpoint)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestClient_tokenRefresh(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var refreshForm map[string][]string
	f.mux.HandleFunc("POST /v2/security/refreshtoken", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		refreshForm = r.PostForm
		fmt.Fprintf(w, `{"Success":true,"Result":{"AccessToken":"refreshed","RefreshToken":"r2","AccessTokenExpireOn":%q}}`, f.clock.Now().Add(time.Hour).Format(time.RFC3339))
	})
	var seen []string
	f.mux.HandleFunc("GET /v2/admin/finance/services/7", func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		fmt.Fprint(w, `{"success":true,"result":{"id":7,"name":"Backup"}}`)
	})
	ctx := t.Context()
	if _, _, err := f.client.Services.Get(ctx, 7); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(59 * time.Minute) // within the renewal margin
	if _, _, err := f.client.Services.Get(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Bearer token-1", "Bearer refreshed"}; !cmp.Equal(seen, want) {
		t.Errorf("Authorization headers = %v, want %v", seen, want)
	}
	if refreshForm["AccessToken"][0] != "token-1" || refreshForm["RefreshToken"][0] != "refresh-1" {
		t.Errorf("refresh form = %v", refreshForm)
	}
	if n := f.auths.Load(); n != 1 {
		t.Errorf("%d authentications, want 1", n)
	}
}

// BMS does not document the zone of accessTokenExpireOn, and the client
// reads a zone-less time as UTC. Written in the wall clock of a zone behind
// UTC, a fresh token's expiry is already past: taken at its word, every
// request would renew the token, spending the refresh and authenticate
// endpoints' 1,500 calls an hour. Such a token is used until BMS refuses it.
func TestClient_tokenExpiredOnArrival(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	eastern := time.FixedZone("EST", -5*60*60)
	var renewals atomic.Int32
	issue := func(w http.ResponseWriter, r *http.Request) {
		n := renewals.Add(1)
		// An hour's lifetime, in the server's wall clock, without a zone.
		fmt.Fprintf(w, `{"success":true,"error":null,"result":{"accessToken":"token-%d","refreshToken":"refresh-%d","accessTokenExpireOn":%q,"refreshTokenExpireOn":%q}}`,
			n, n, now.In(eastern).Add(time.Hour).Format("2006-01-02T15:04:05"), now.In(eastern).Add(24*time.Hour).Format("2006-01-02T15:04:05"))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/security/authenticate", issue)
	mux.HandleFunc("POST /v2/security/refreshtoken", issue)
	var seen []string
	mux.HandleFunc("GET /v2/admin/finance/services/7", func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		fmt.Fprint(w, `{"success":true,"result":{"id":7,"name":"Backup"}}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := kaseyabms.NewClient(kaseyabms.WithBaseURL(srv.URL+"/"), kaseyabms.WithCredentials("api@msp.example", "pw", "Acme MSP"),
		kaseyabms.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, _, err := c.Services.Get(t.Context(), 7); err != nil {
			t.Fatal(err)
		}
	}
	if n := renewals.Load(); n != 1 {
		t.Errorf("%d authentications and refreshes for 5 requests, want 1 (Authorization headers %v)", n, seen)
	}
}

func TestClient_refreshFailsThenAuthenticates(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.mux.HandleFunc("POST /v2/security/refreshtoken", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":false,"error":{"code":401,"message":"Invalid refresh token"}}`)
	})
	f.mux.HandleFunc("GET /v2/admin/finance/services/7", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":true,"result":{"id":7}}`)
	})
	_, _, _ = f.client.Services.Get(t.Context(), 7)
	f.clock.Add(2 * time.Hour)
	if _, _, err := f.client.Services.Get(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	if n := f.auths.Load(); n != 2 {
		t.Errorf("%d authentications, want 2", n)
	}
}

func TestClient_reauthenticateOn401(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var creates atomic.Int32
	f.mux.HandleFunc("POST /v2/admin/finance/services/services", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer token-1" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"success":false,"error":{"code":401,"message":"Authorization has been denied for this request."}}`)
			return
		}
		creates.Add(1)
		testJSONBody(t, r, `{"Id":0,"Name":"Backup","Description":"","UnitCost":null,"UnitPrice":2,"CategoryId":null,"SubCategoryId":null,
			"UnitOfMeasureId":null,"IncomeAccountId":null,"ExpenseAccountId":null,"IsActive":true,"IsTaxable":false,"Margin":null,"MarginType":null}`)
		fmt.Fprint(w, `{"success":true,"result":{"id":9,"name":"Backup","unitPrice":2,"isActive":true}}`)
	})
	price := 2.0
	svc, _, err := f.client.Services.Create(t.Context(), &kaseyabms.CreateServiceRequest{Name: "Backup", UnitPrice: &price, IsActive: true})
	if err != nil {
		t.Fatalf("Services.Create: %v", err)
	}
	if svc.ID != 9 || creates.Load() != 1 || f.auths.Load() != 2 {
		t.Errorf("Services.Create = %+v; creates %d, authentications %d; want id 9, 1, 2", svc, creates.Load(), f.auths.Load())
	}
}

func TestClient_401Twice(t *testing.T) {
	t.Parallel()
	f := setup(t)
	refusal := &resttest.Answer{Status: http.StatusUnauthorized}
	f.mux.Handle("GET /v2/admin/finance/services/7", refusal)
	_, _, err := f.client.Services.Get(t.Context(), 7)
	if !errors.Is(err, psa.ErrUnauthorized) {
		t.Fatalf("error = %v, want ErrUnauthorized", err)
	}
	if refusal.Calls() != 2 || f.auths.Load() != 2 {
		t.Errorf("calls %d, authentications %d; want 2 and 2 (re-authenticated once)", refusal.Calls(), f.auths.Load())
	}
}

func TestClient_envelopeFailure(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.mux.HandleFunc("GET /v2/admin/finance/services/1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"Success":false,"Error":{"Code":404,"Message":"Service with id 1 not found","StackStrace":"at Secret.Internals()"},"Result":null}`)
	})
	f.mux.HandleFunc("PUT /v2/admin/finance/services/2", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":false,"error":{"code":0,"message":"Name is required","subErrors":["Name: must not be empty"]}}`)
	})
	f.mux.HandleFunc("GET /v2/admin/finance/services/3", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":true,"error":null,"result":null}`)
	})
	_, _, err := f.client.Services.Get(t.Context(), 1)
	if !errors.Is(err, psa.ErrNotFound) || strings.Contains(err.Error(), "Secret.Internals") {
		t.Errorf("Services.Get error = %v, want ErrNotFound without the stack trace", err)
	}
	_, _, err = f.client.Services.Update(t.Context(), 2, &kaseyabms.UpdateServiceRequest{})
	var ve *psa.ValidationError
	if !errors.As(err, &ve) || !cmp.Equal(ve.Messages, []string{"Name is required", "Name: must not be empty"}) {
		t.Errorf("Services.Update error = %v, want a validation error with both messages", err)
	}
	if ve != nil && ve.Status != 0 {
		t.Errorf("Services.Update error has status %d, want none for code 0", ve.Status)
	}
	if _, _, err = f.client.Services.Get(t.Context(), 3); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("Services.Get(empty result) error = %v, want ErrNotFound", err)
	}
}

// A success:false envelope whose code reads as a server error says so in
// the validation error's Status, which the usage engine's write stop counts
// when the writes to several contracts all get the same.
func TestClient_envelopeServerError(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.mux.HandleFunc("PUT /v2/admin/finance/services/5", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":false,"error":{"code":500,"message":"An unexpected error occurred."}}`)
	})
	_, _, err := f.client.Services.Update(t.Context(), 5, &kaseyabms.UpdateServiceRequest{})
	var ve *psa.ValidationError
	if !errors.As(err, &ve) || ve.Status != http.StatusInternalServerError {
		t.Errorf("Services.Update error = %v (%+v), want a validation error with status 500", err, ve)
	}
}

// An ASP.NET model validation failure answers 400 with problem details,
// whose "errors" object names each field; the title alone says nothing a
// user can fix.
func TestClient_problemDetails(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.mux.HandleFunc("PUT /v2/admin/finance/services/4", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"type":"https://tools.ietf.org/html/rfc7231#section-6.5.1","title":"One or more validation errors occurred.","status":400,"traceId":"00-1",`+
			`"errors":{"UnitPrice":["The JSON value could not be converted to System.Decimal."],"Name":["The field Name must be a string with a maximum length of 100."]}}`)
	})
	_, _, err := f.client.Services.Update(t.Context(), 4, &kaseyabms.UpdateServiceRequest{})
	var ve *psa.ValidationError
	want := []string{"One or more validation errors occurred.", "Name: The field Name must be a string with a maximum length of 100.",
		"UnitPrice: The JSON value could not be converted to System.Decimal."}
	if !errors.As(err, &ve) || !cmp.Equal(ve.Messages, want) {
		t.Errorf("Services.Update error = %v, want a validation error with the title and each field's message", err)
	}
}

func TestClient_bareDTO(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.mux.HandleFunc("GET /v2/crm/accounts/summary/5", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"id":5,"accountName":"Acme","isActive":true}`)
	})
	f.mux.HandleFunc("GET /v2/crm/accounts/summary/6", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":true,"result":{"Id":6,"AccountName":"Globex"}}`)
	})
	a, _, err := f.client.Accounts.GetSummary(t.Context(), 5)
	if err != nil || a.AccountName != "Acme" || !a.IsActive {
		t.Errorf("Accounts.GetSummary(bare) = %+v, %v", a, err)
	}
	a, _, err = f.client.Accounts.GetSummary(t.Context(), 6)
	if err != nil || a.AccountName != "Globex" {
		t.Errorf("Accounts.GetSummary(envelope) = %+v, %v", a, err)
	}
}

func TestClient_paging(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var pages []string
	f.mux.HandleFunc("POST /v2/admin/finance/services/search", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ PageSize, PageNumber int }
		_ = json.NewDecoder(r.Body).Decode(&body)
		pages = append(pages, fmt.Sprint(body.PageNumber))
		// The server caps pages at 2 records; 5 in all.
		var items []string
		for i := (body.PageNumber-1)*2 + 1; i <= min(body.PageNumber*2, 5); i++ {
			items = append(items, fmt.Sprintf(`{"id":%d,"name":"S%d"}`, i, i))
		}
		fmt.Fprintf(w, `{"success":true,"result":[%s],"totalRecords":5}`, strings.Join(items, ","))
	})
	all, resp, err := f.client.Services.SearchAll(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[4].Name != "S5" || resp.TotalRecords != 5 {
		t.Errorf("SearchAll = %d services, total %d", len(all), resp.TotalRecords)
	}
	if want := []string{"1", "2", "3"}; !cmp.Equal(pages, want) {
		t.Errorf("pages = %v, want %v", pages, want)
	}
}

// pageLog records the PageNumber of each request a handler answers.
type pageLog struct {
	mu    sync.Mutex
	pages []string
}

func (l *pageLog) add(page string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pages = append(l.pages, page)
}

// take returns the pages recorded since the last take.
func (l *pageLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pages
	l.pages = nil
	return p
}

// TestClient_pagingShortOfTotal: a listing whose pages run out before
// totalRecords is an error naming the endpoint and the counts, not a
// partial list; page 0 is asked for once on the way, and a page 0 that
// holds nothing new teaches the client that the endpoint counts from 1.
func TestClient_pagingShortOfTotal(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var pages pageLog
	f.mux.HandleFunc("GET /v2/crm/accounts/summary", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("PageSize") != "100" {
			t.Errorf("PageSize = %q", r.URL.Query().Get("PageSize"))
		}
		n := r.URL.Query().Get("PageNumber")
		pages.add(n)
		if n == "1" {
			fmt.Fprint(w, `{"success":true,"result":[{"id":1,"accountName":"Acme"}],"totalRecords":10}`)
			return
		}
		fmt.Fprint(w, `{"success":true,"result":[],"totalRecords":10}`)
	})
	for i, want := range [][]string{{"1", "2", "0"}, {"1", "2"}} {
		all, resp, err := f.client.Accounts.ListSummaryAll(t.Context(), kaseyabms.AccountSummaryListOptions{AccountName: "Acme"})
		var ie *kaseyabms.IncompleteListError
		if !errors.As(err, &ie) || *ie != (kaseyabms.IncompleteListError{Endpoint: "/v2/crm/accounts/summary", Got: 1, Total: 10}) {
			t.Fatalf("listing %d: ListSummaryAll error = %v, want an *IncompleteListError for 1 of 10", i+1, err)
		}
		for _, part := range []string{"/v2/crm/accounts/summary", " 1 ", " 10 "} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not say %q", err, part)
			}
		}
		if len(all) != 1 || resp == nil || resp.TotalRecords != 10 {
			t.Errorf("listing %d: ListSummaryAll = %d accounts, %+v; want the 1 read and the last Response", i+1, len(all), resp)
		}
		if got := pages.take(); !cmp.Equal(got, want) {
			t.Errorf("listing %d: pages = %v, want %v", i+1, got, want)
		}
	}
}

// TestClient_pagingIgnoredWithTotal: a server that answers the first page
// whatever PageNumber says, with totalRecords 250: the repeated page ends
// the listing with an error, not with 100 tickets taken for all of them
// (FindTickets would then open a duplicate).
func TestClient_pagingIgnoredWithTotal(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var calls atomic.Int32
	f.mux.HandleFunc("POST /v2/servicedesk/tickets/search", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		items := make([]string, 100)
		for i := range items {
			items[i] = fmt.Sprintf(`{"Id":%d,"Title":"t%d"}`, i+1, i+1)
		}
		fmt.Fprintf(w, `{"success":true,"result":[%s],"totalRecords":250}`, strings.Join(items, ","))
	})
	list, _, err := f.client.Tickets.SearchAll(t.Context(), &kaseyabms.TicketFilter{Title: "x"})
	var ie *kaseyabms.IncompleteListError
	if !errors.As(err, &ie) || ie.Endpoint != "/v2/servicedesk/tickets/search" || ie.Got != 100 || ie.Total != 250 {
		t.Errorf("SearchAll = %d tickets, %v; want an *IncompleteListError for 100 of 250", len(list), err)
	}
	// Page 1, page 2 (the repeat), page 0 (the same again).
	if n := calls.Load(); n != 3 {
		t.Errorf("%d searches, want 3", n)
	}
}

// TestClient_pagingFromZero: an endpoint whose pages count from 0. Paging
// from 1 misses the first page and ends short of totalRecords; page 0
// fills the gap, in order, and the next listing starts at 0.
func TestClient_pagingFromZero(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var pages pageLog
	f.mux.HandleFunc("POST /v2/servicedesk/tickets/search", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ PageNumber, PageSize int }
		_ = json.NewDecoder(r.Body).Decode(&body)
		pages.add(fmt.Sprint(body.PageNumber))
		var items []string
		for i := body.PageNumber*body.PageSize + 1; i <= min((body.PageNumber+1)*body.PageSize, 150); i++ {
			items = append(items, fmt.Sprintf(`{"Id":%d,"Title":"t%d"}`, i, i))
		}
		fmt.Fprintf(w, `{"success":true,"result":[%s],"totalRecords":150}`, strings.Join(items, ","))
	})
	for i, want := range [][]string{{"1", "2", "0"}, {"0", "1"}} {
		list, _, err := f.client.Tickets.SearchAll(t.Context(), &kaseyabms.TicketFilter{Title: "x"})
		if err != nil {
			t.Fatalf("listing %d: SearchAll: %v", i+1, err)
		}
		ids := make([]int, len(list))
		for j, tk := range list {
			ids[j] = tk.ID
		}
		if len(ids) != 150 || !slices.IsSorted(ids) || ids[0] != 1 || ids[149] != 150 {
			t.Errorf("listing %d: SearchAll returned ids %v, want 1..150 in order", i+1, ids)
		}
		if got := pages.take(); !cmp.Equal(got, want) {
			t.Errorf("listing %d: pages = %v, want %v", i+1, got, want)
		}
	}
}

// TestClient_pagingEmptyLookupProbesOnce: a listing without totalRecords
// whose page 1 is empty may be an endpoint counting from 0 with everything
// on page 0, so page 0 is asked for, once per endpoint: a server that
// refuses page 0 counts from 1, and the empty answer stands.
func TestClient_pagingEmptyLookupProbesOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var pages pageLog
	f.mux.HandleFunc("GET /v2/crm/accounts/lookup", func(w http.ResponseWriter, r *http.Request) {
		n := r.URL.Query().Get("PageNumber")
		pages.add(n)
		if n == "0" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"success":false,"error":{"code":400,"message":"PageNumber must be at least 1"}}`)
			return
		}
		fmt.Fprint(w, `{"success":true,"result":[]}`)
	})
	for i, want := range [][]string{{"1", "0"}, {"1"}} {
		all, _, err := f.client.Accounts.LookupAll(t.Context(), kaseyabms.AccountLookupOptions{Name: "Nobody"})
		if err != nil || len(all) != 0 {
			t.Errorf("lookup %d: LookupAll = %d accounts, %v; want none and no error", i+1, len(all), err)
		}
		if got := pages.take(); !cmp.Equal(got, want) {
			t.Errorf("lookup %d: pages = %v, want %v", i+1, got, want)
		}
	}
}

func TestClient_limiter(t *testing.T) {
	t.Parallel()
	f := setup(t, kaseyabms.WithHourlyLimit(2))
	var calls atomic.Int32
	f.mux.HandleFunc("GET /v2/admin/finance/services/{id}", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprintf(w, `{"success":true,"result":{"id":%s}}`, r.PathValue("id"))
	})
	f.mux.HandleFunc("GET /v2/finance/contracts/lookup", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":true,"result":[]}`)
	})
	ctx := t.Context()
	for _, id := range []int{1, 2} {
		if _, _, err := f.client.Services.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := f.client.Services.Get(ctx, 3) // same endpoint template as 1 and 2
	var rl *psa.RateLimitError
	if !errors.As(err, &rl) || !rl.Hourly || rl.RetryAfter != time.Hour {
		t.Fatalf("third call error = %v, want an hourly rate limit error with RetryAfter 1h", err)
	}
	if calls.Load() != 2 {
		t.Errorf("%d calls reached the server, want 2", calls.Load())
	}
	if _, _, err := f.client.Contracts.Lookup(ctx, nil); err != nil {
		t.Errorf("another endpoint: %v", err)
	}
	if n := f.client.CallsInWindow("/v2/admin/finance/services/99"); n != 2 {
		t.Errorf("CallsInWindow = %d, want 2", n)
	}
	f.clock.Add(time.Hour + time.Second)
	if _, _, err := f.client.Services.Get(ctx, 3); err != nil {
		t.Errorf("after an hour: %v", err)
	}
}

func TestClient_retriesReads(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var calls atomic.Int32
	f.mux.HandleFunc("POST /v2/admin/finance/services/search", func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"success":false,"error":{"code":429,"message":"Too many requests"}}`)
		default:
			fmt.Fprint(w, `{"success":true,"result":[{"id":1}],"totalRecords":1}`)
		}
	})
	got, _, err := f.client.Services.Search(t.Context(), &kaseyabms.ServicesSearchRequest{})
	if err != nil || len(got) != 1 || calls.Load() != 3 {
		t.Errorf("Services.Search = %v, %v after %d calls; want 1 service after 3", got, err, calls.Load())
	}
}

func TestClient_retriesExhausted(t *testing.T) {
	t.Parallel()
	f := setup(t, kaseyabms.WithMaxRetries(1))
	refusal := &resttest.Answer{Status: http.StatusBadGateway}
	f.mux.Handle("GET /v2/crm/accounts/lookup", refusal)
	_, _, err := f.client.Accounts.Lookup(t.Context(), nil)
	var er *kaseyabms.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != http.StatusBadGateway || refusal.Calls() != 2 {
		t.Errorf("error = %v after %d calls, want 502 after 2", err, refusal.Calls())
	}
}

// TestClient_serverFaultRetryAfterOverCap: a 503 whose Retry-After is a
// day ends the retries at once with an error that says so, as a 429 over
// rest.MaxRetryAfter does, instead of waiting it out.
func TestClient_serverFaultRetryAfterOverCap(t *testing.T) {
	t.Parallel()
	f := setup(t)
	sleeps := new(resttest.Sleeps)
	f.client.SetSleep(sleeps.Sleep)
	refusal := &resttest.Answer{Status: http.StatusServiceUnavailable, RetryAfter: "86400"}
	f.mux.Handle("GET /v2/crm/accounts/lookup", refusal)
	_, _, err := f.client.Accounts.Lookup(t.Context(), nil)
	var er *kaseyabms.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("Accounts.Lookup error = %v, want the 503", err)
	}
	for _, part := range []string{"24h0m0s", "5m0s"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %s", err, part)
		}
	}
	if refusal.Calls() != 1 || len(sleeps.Waits()) != 0 {
		t.Errorf("%d calls and waits %v, want 1 call and no wait", refusal.Calls(), sleeps.Waits())
	}
}

func TestClient_postsAreNotRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		handler func(t *testing.T, w http.ResponseWriter)
	}{
		{"5xx", func(_ *testing.T, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }},
		{"dropped", func(t *testing.T, w http.ResponseWriter) { resttest.DropConnection(t, w) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			var calls atomic.Int32
			f.mux.HandleFunc("POST /v2/finance/contracts/recurringservices/{id}/services", func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tc.handler(t, w)
			})
			_, _, err := f.client.Contracts.AddServices(t.Context(), 5, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}})
			if !errors.Is(err, psa.ErrOutcomeUnknown) {
				t.Errorf("error = %v, want ErrOutcomeUnknown", err)
			}
			if calls.Load() != 1 {
				t.Errorf("%d posts, want 1", calls.Load())
			}
		})
	}
}

// TestClient_throttledPostIsResent: a 429 that names a short wait is a
// passing throttle; the post was not processed and is sent again.
func TestClient_throttledPostIsResent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var calls atomic.Int32
	f.mux.HandleFunc("POST /v2/finance/contracts/recurringservices/5/services", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		testJSONBody(t, r, `[{"ServiceId":1,"ServiceName":"Backup","ServiceDescription":"","Units":3,"UnitCost":1,"UnitPrice":2,"EffectiveDate":"2026-11-01T00:00:00Z","SortOrder":0}]`)
		fmt.Fprint(w, `{"success":true,"result":{"id":77,"serviceId":1,"contractId":5,"units":3.0,"unitPrice":2}}`)
	})
	line, _, err := f.client.Contracts.AddServices(t.Context(), 5, []kaseyabms.RecurringService{{ServiceID: 1, ServiceName: "Backup", Units: 3, UnitCost: 1, UnitPrice: 2,
		EffectiveDate: kaseyabms.Time{Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}}})
	if err != nil || line.ID != 77 || line.Units != 3 || calls.Load() != 2 {
		t.Errorf("AddServices = %+v, %v after %d calls", line, err, calls.Load())
	}
}

// TestClient_limitRefusalStopsTheEndpoint: BMS's "API call limit exceeded"
// 429 (no Retry-After) is its hourly limit per endpoint, which another
// process may have used up. The client used to retry each post for
// minutes; now the post fails at once, saying when the budget frees up, no
// further call goes to that endpoint (a second post makes no request), and
// other endpoints still work. EndpointBudgets reports the endpoint spent.
func TestClient_limitRefusalStopsTheEndpoint(t *testing.T) {
	t.Parallel()
	f := setup(t)
	posts := &resttest.Answer{Status: http.StatusTooManyRequests, Body: `{"success":false,"error":{"code":429,"message":"API call limit exceeded"}}`}
	f.mux.Handle("POST /v2/finance/contracts/recurringservices/{id}/services", posts)
	f.mux.HandleFunc("GET /v2/admin/finance/services/3", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":true,"result":{"id":3,"name":"Backup"}}`)
	})
	for i, contract := range []int{5, 6} {
		_, _, err := f.client.Contracts.AddServices(t.Context(), contract, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}})
		var rl *psa.RateLimitError
		if !errors.As(err, &rl) || !rl.Hourly || rl.RetryAfter != time.Hour || !strings.Contains(err.Error(), "until 2026-11-21T11:00:00Z") && !strings.Contains(err.Error(), "frees up at 2026-11-21T11:00:00Z") {
			t.Errorf("post %d: error = %v, want an hourly rate limit saying when the budget frees up", i+1, err)
		}
		if errors.Is(err, psa.ErrOutcomeUnknown) {
			t.Errorf("post %d: a refused post is not of unknown outcome: %v", i+1, err)
		}
	}
	if n := posts.Calls(); n != 1 {
		t.Errorf("%d posts reached BMS, want 1 (no retries, and none after the refusal)", n)
	}
	if _, _, err := f.client.Services.Get(t.Context(), 3); err != nil {
		t.Errorf("another endpoint after the refusal: %v", err)
	}
	b := f.client.EndpointBudgets()
	if got := b["/v2/finance/contracts/recurringservices/{id}/services"]; got.Remaining() != 0 {
		t.Errorf("budget of the refused endpoint = %+v, want none left", got)
	}
	if got := b["/v2/admin/finance/services/{id}"]; got.Remaining() != kaseyabms.HourlyLimit-1 {
		t.Errorf("budget of the services endpoint = %+v, want %d left", got, kaseyabms.HourlyLimit-1)
	}
	f.clock.Add(time.Hour)
	if _, _, err := f.client.Contracts.AddServices(t.Context(), 7, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}}); posts.Calls() != 2 {
		t.Errorf("after the hour: %v with %d posts, want the post sent again", err, posts.Calls())
	}
}

// lockedBuffer is a bytes.Buffer a logger may write from several
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestClient_limitRefusalHeldForTheHourAtMost: a 429 whose Retry-After is
// a day held the endpoint for that day, every billing write to it refused
// though BMS's limit is per rolling hour. Now the hold ends after the
// hour, the error says what BMS asked for, and the server's value is
// logged once for the two posts in flight that both got the 429.
func TestClient_limitRefusalHeldForTheHourAtMost(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	f := setup(t, kaseyabms.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	var posts atomic.Int32
	arrived := make(chan struct{}, 2)
	answer := make(chan struct{})
	f.mux.HandleFunc("POST /v2/finance/contracts/recurringservices/{id}/services", func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) > 2 {
			fmt.Fprint(w, `{"success":true,"result":{"id":77,"serviceId":1,"contractId":7,"units":3.0}}`)
			return
		}
		// Both posts are counted and sent before either is refused.
		arrived <- struct{}{}
		<-answer
		w.Header().Set("Retry-After", "86400")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"success":false,"error":{"code":429,"message":"API call limit exceeded"}}`)
	})
	errs := make(chan error, 2)
	for _, contract := range []int{5, 6} {
		go func() {
			_, _, err := f.client.Contracts.AddServices(t.Context(), contract, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}})
			errs <- err
		}()
	}
	<-arrived
	<-arrived
	close(answer)
	for range 2 {
		err := <-errs
		var rl *psa.RateLimitError
		if !errors.As(err, &rl) || !rl.Hourly || rl.RetryAfter != time.Hour || !strings.Contains(err.Error(), "until 2026-11-21T11:00:00Z") ||
			!strings.Contains(err.Error(), "it asked to wait 24h0m0s") {
			t.Errorf("error = %v, want an hourly rate limit until 11:00 that names the 24h asked for", err)
		}
	}
	if _, _, err := f.client.Contracts.AddServices(t.Context(), 7, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}}); err == nil || posts.Load() != 2 {
		t.Errorf("within the hour: %v with %d posts, want the post refused unsent", err, posts.Load())
	}
	if n := strings.Count(logs.String(), "longer than its hourly limit needs"); n != 1 || !strings.Contains(logs.String(), "retry_after=24h0m0s") {
		t.Errorf("logged %d warnings, want 1 with the server's 24h:\n%s", n, logs.String())
	}
	f.clock.Add(time.Hour)
	if _, _, err := f.client.Contracts.AddServices(t.Context(), 7, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}}); err != nil || posts.Load() != 3 {
		t.Errorf("after the hour: %v with %d posts, want the post sent", err, posts.Load())
	}
}

func TestClient_contracts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.mux.HandleFunc("GET /v2/finance/contracts/lookup", func(w http.ResponseWriter, r *http.Request) {
		if got, want := r.URL.RawQuery, "AccountId=4&ExcludeExpiredContracts=true&Ids=1&Ids=2"; got != want {
			t.Errorf("query = %s, want %s", got, want)
		}
		fmt.Fprint(w, `{"success":true,"result":[{"id":1,"name":"MS","isActive":true,"endDate":"2026-12-31T00:00:00"}]}`)
	})
	f.mux.HandleFunc("PUT /v2/finance/contracts/1/deactivate", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":true,"result":{"id":1,"statusId":2,"statusName":"Inactive"}}`)
	})
	got, _, err := f.client.Contracts.Lookup(t.Context(), &kaseyabms.ContractLookupOptions{AccountID: 4, IDs: []int{1, 2}, ExcludeExpiredContracts: true})
	if err != nil || len(got) != 1 || !got[0].EndDate.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Contracts.Lookup = %+v, %v", got, err)
	}
	st, _, err := f.client.Contracts.Deactivate(t.Context(), 1)
	if err != nil || st.StatusName != "Inactive" {
		t.Errorf("Contracts.Deactivate = %+v, %v", st, err)
	}
}

func TestToken_String(t *testing.T) {
	t.Parallel()
	tok := &kaseyabms.Token{AccessToken: "sekrit", RefreshToken: "sekrit2"}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok)} {
		if strings.Contains(s, "sekrit") {
			t.Errorf("formatted token leaks: %s", s)
		}
	}
}

func TestClient_concurrentRequestsAuthenticateOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, kaseyabms.WithMaxConcurrency(4))
	f.mux.HandleFunc("GET /v2/admin/finance/services/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"success":true,"result":{"id":%s}}`, r.PathValue("id"))
	})
	var wg sync.WaitGroup
	for i := 1; i <= 20; i++ {
		wg.Go(func() {
			if _, _, err := f.client.Services.Get(t.Context(), i); err != nil {
				t.Errorf("Services.Get(%d): %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := f.auths.Load(); n != 1 {
		t.Errorf("%d authentications, want 1", n)
	}
}

func TestClient_pagingIgnoredByServer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var calls atomic.Int32
	f.mux.HandleFunc("GET /v2/crm/accounts/lookup", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		// Always the same full page of 100, whatever PageNumber says.
		items := make([]string, 100)
		for i := range items {
			items[i] = fmt.Sprintf(`{"id":%d,"name":"A%d"}`, i+1, i+1)
		}
		fmt.Fprintf(w, `{"success":true,"result":[%s]}`, strings.Join(items, ","))
	})
	// Page 1, page 2 (the repeat), and page 0 (the same again: the
	// endpoint counts from 1) the first time; pages 1 and 2 after.
	for i, want := range []int32{3, 2} {
		calls.Store(0)
		all, _, err := f.client.Accounts.LookupAll(t.Context(), kaseyabms.AccountLookupOptions{})
		if err != nil || len(all) != 100 || calls.Load() != want {
			t.Errorf("listing %d: LookupAll = %d accounts, %v after %d calls; want 100 after %d", i+1, len(all), err, calls.Load(), want)
		}
	}
}

// TestClient_403SignsInOncePerBurst: BMS refuses the API user one account
// (a 403 that does not speak of the credentials, psa.ErrForbidden), while
// its token is good. Each such 403 signed in again and sent the request
// once more: a token request and a repeat per refused account, against
// BMS's hourly limits. A token a request succeeded with, or that a 403
// answered right after signing in for a 403, is known good: a 403 with it
// is returned at once. A 401, or a 403 about the credentials, still signs
// in again.
func TestClient_403SignsInOncePerBurst(t *testing.T) {
	t.Parallel()
	serve := func(f *fixture) map[int]*atomic.Int32 {
		calls := map[int]*atomic.Int32{}
		for id, answer := range map[int]func(w http.ResponseWriter){
			1: func(w http.ResponseWriter) {
				fmt.Fprint(w, `{"success":true,"result":{"id":1,"name":"Backup","isActive":true}}`)
			},
			2: nil, 3: nil,
			4: func(w http.ResponseWriter) { w.WriteHeader(http.StatusUnauthorized) },
			5: func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"success":false,"error":{"code":403,"message":"The access token has expired"}}`)
			},
		} {
			if answer == nil {
				answer = func(w http.ResponseWriter) {
					w.WriteHeader(http.StatusForbidden)
					fmt.Fprint(w, `{"success":false,"error":{"code":403,"message":"You do not have access to this account"}}`)
				}
			}
			calls[id] = &atomic.Int32{}
			f.mux.HandleFunc(fmt.Sprintf("GET /v2/admin/finance/services/%d", id), func(w http.ResponseWriter, r *http.Request) {
				calls[id].Add(1)
				answer(w)
			})
		}
		return calls
	}
	get := func(t *testing.T, f *fixture, id int, want error) {
		t.Helper()
		if _, _, err := f.client.Services.Get(t.Context(), id); !errors.Is(err, want) {
			t.Fatalf("service %d: error %v, want %v", id, err, want)
		}
	}
	t.Run("afterSuccess", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		calls := serve(f)
		if _, _, err := f.client.Services.Get(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		get(t, f, 2, psa.ErrForbidden)
		get(t, f, 3, psa.ErrForbidden)
		if a, c2, c3 := f.auths.Load(), calls[2].Load(), calls[3].Load(); a != 1 || c2 != 1 || c3 != 1 {
			t.Errorf("sign-ins %d, requests %d and %d; want 1 sign-in and each refused request sent once", a, c2, c3)
		}
		get(t, f, 4, psa.ErrUnauthorized)
		if a := f.auths.Load(); a != 2 {
			t.Errorf("sign-ins after a 401 = %d, want 2 (signed in again)", a)
		}
		get(t, f, 5, psa.ErrUnauthorized)
		if a := f.auths.Load(); a != 3 {
			t.Errorf("sign-ins after a 403 about the token = %d, want 3 (signed in again)", a)
		}
	})
	t.Run("burst", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		calls := serve(f)
		get(t, f, 2, psa.ErrForbidden)
		get(t, f, 3, psa.ErrForbidden)
		get(t, f, 2, psa.ErrForbidden)
		if a, c2, c3 := f.auths.Load(), calls[2].Load(), calls[3].Load(); a != 2 || c2 != 3 || c3 != 1 {
			t.Errorf("sign-ins %d, requests %d and %d; want 2 sign-ins (the first 403 signed in again once) and requests 3 and 1", a, c2, c3)
		}
	})
}

// TestClient_403SignsInOnceForConcurrentRequests: a request refused 403
// signs in again and is sent once more with the new token; another
// request sent with that new token meanwhile, and refused 403 before the
// first one's answer came back, signed in again too: with a client's
// concurrency, each request of a pass that BMS refuses some accounts could
// cost a sign-in. A token signed in for a 403 is taken as good: a 403 with
// it is the request's refusal, whichever request was sent with it.
func TestClient_403SignsInOnceForConcurrentRequests(t *testing.T) {
	t.Parallel()
	f := setup(t)
	held, release := make(chan struct{}), make(chan struct{})
	var calls2, calls3 atomic.Int32
	forbidden := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"success":false,"error":{"code":403,"message":"You do not have access to this account"}}`)
	}
	f.mux.HandleFunc("GET /v2/admin/finance/services/2", func(w http.ResponseWriter, r *http.Request) {
		if calls2.Add(1) == 2 {
			// The first request again, with the token signed in for its
			// 403: its answer waits for the second request's.
			close(held)
			<-release
		}
		forbidden(w)
	})
	f.mux.HandleFunc("GET /v2/admin/finance/services/3", func(w http.ResponseWriter, r *http.Request) {
		calls3.Add(1)
		forbidden(w)
	})
	done := make(chan error, 1)
	go func() {
		_, _, err := f.client.Services.Get(t.Context(), 2)
		done <- err
	}()
	<-held
	if _, _, err := f.client.Services.Get(t.Context(), 3); !errors.Is(err, psa.ErrForbidden) {
		t.Errorf("service 3: error %v, want psa.ErrForbidden", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, psa.ErrForbidden) {
		t.Errorf("service 2: error %v, want psa.ErrForbidden", err)
	}
	if a, c2, c3 := f.auths.Load(), calls2.Load(), calls3.Load(); a != 2 || c2 != 2 || c3 != 1 {
		t.Errorf("sign-ins %d, requests %d and %d; want 2 sign-ins (the first 403 signed in again once), service 2 sent twice and service 3 once", a, c2, c3)
	}
}

// TestClient_signInFailureIsNotTheRequests checks that a create whose
// sign-in failed, with an answer that is not BMS's (a proxy's sign-in
// page) or with a connection lost after the sign-in was sent, fails as a
// create that was not sent (rest.WasUnprocessed), not as one whose outcome
// is unknown: the create itself never left, and psa-syncd would otherwise
// hold its line for review and a ticket as possibly created.
func TestClient_signInFailureIsNotTheRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		signIn http.HandlerFunc
		is     error
	}{
		{"sign-in page", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, psatest.SignInPage)
		}, psa.ErrNotAPI},
		{"connection lost", func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var creates atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == basePath+"v2/security/authenticate" {
					tc.signIn(w, r)
					return
				}
				creates.Add(1)
				http.Error(w, "unexpected", http.StatusTeapot)
			}))
			t.Cleanup(srv.Close)
			c, err := kaseyabms.NewClient(kaseyabms.WithBaseURL(srv.URL+basePath), kaseyabms.WithCredentials("api@msp.example", "pw", "Acme MSP"),
				kaseyabms.WithBackoff(time.Millisecond, 2*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = c.Services.Create(t.Context(), &kaseyabms.CreateServiceRequest{Name: "Backup"})
			if err == nil || errors.Is(err, psa.ErrOutcomeUnknown) || !rest.WasUnprocessed(err) {
				t.Errorf("Create error = %v, want one of a create not sent (not psa.ErrOutcomeUnknown)", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Create error = %v, want it to match %v", err, tc.is)
			}
			if n := creates.Load(); n != 0 {
				t.Errorf("%d creates sent, want none", n)
			}
		})
	}
}

// A write the context's write gate refuses is not sent and costs nothing
// of the endpoint's hourly limit; a read goes through.
func TestClient_writeGateRefusalCostsNoCall(t *testing.T) {
	t.Parallel()
	f := setup(t)
	posts := &resttest.Answer{Body: `{"success":true,"result":[]}`}
	f.mux.Handle("POST /v2/finance/contracts/recurringservices/{id}/services", posts)
	f.mux.HandleFunc("GET /v2/admin/finance/services/3", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"success":true,"result":{"id":3,"name":"Backup"}}`)
	})
	errLease := errors.New("the lease ran out")
	ctx := psa.WithWriteGate(t.Context(), func() error { return errLease })
	_, _, err := f.client.Contracts.AddServices(ctx, 5, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}})
	if !errors.Is(err, errLease) || errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Errorf("AddServices with the gate closed = %v, want the gate's error, not of unknown outcome", err)
	}
	if n := posts.Calls(); n != 0 {
		t.Errorf("%d posts reached BMS, want none", n)
	}
	if got, ok := f.client.EndpointBudgets()["/v2/finance/contracts/recurringservices/{id}/services"]; ok && got.Remaining() != kaseyabms.HourlyLimit {
		t.Errorf("budget of the refused endpoint = %+v, want all %d calls left", got, kaseyabms.HourlyLimit)
	}
	if _, _, err := f.client.Services.Get(ctx, 3); err != nil {
		t.Errorf("a read with the gate closed: %v", err)
	}
}

// A write the gate lets through before it is counted against the
// endpoint's hourly limit, and refuses when asked again after the sign-in
// and the wait for a slot (the lease ran out meanwhile), is not sent, and
// its call is given back: it used to stay counted for the hour.
func TestClient_writeGateRefusalAfterTheSlotGivesTheCallBack(t *testing.T) {
	t.Parallel()
	f := setup(t)
	posts := &resttest.Answer{Body: `{"success":true,"result":{"id":9}}`}
	f.mux.Handle("POST /v2/finance/contracts/recurringservices/{id}/services", posts)
	errLease := errors.New("the lease ran out")
	var asked atomic.Int32
	ctx := psa.WithWriteGate(t.Context(), func() error {
		if asked.Add(1) > 1 {
			return errLease
		}
		return nil
	})
	_, _, err := f.client.Contracts.AddServices(ctx, 5, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}})
	if !errors.Is(err, errLease) || errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Errorf("AddServices with the gate closed after the slot = %v, want the gate's error, not of unknown outcome", err)
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the gate was asked %d times, want 2 (before the call is counted, after the slot)", n)
	}
	if n := posts.Calls(); n != 0 {
		t.Errorf("%d posts reached BMS, want none", n)
	}
	if n := f.client.CallsInWindow("/v2/finance/contracts/recurringservices/5/services"); n != 0 {
		t.Errorf("%d calls counted against the endpoint's hour, want the refused one given back", n)
	}
	if _, _, err := f.client.Contracts.AddServices(t.Context(), 5, []kaseyabms.RecurringService{{ServiceID: 1, Units: 3}}); err != nil {
		t.Fatal(err)
	}
	if n := f.client.CallsInWindow("/v2/finance/contracts/recurringservices/5/services"); n != 1 {
		t.Errorf("%d calls counted after one sent, want 1", n)
	}
}
