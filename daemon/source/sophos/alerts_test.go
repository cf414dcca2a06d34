package sophos_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestAlertsService_ListAll_paging(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	var want []string
	for i := range 5 {
		a := sim.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat %d on PC-%d", i, i),
			RaisedAt: fmt.Sprintf("2026-11-1%dT10:00:00.000", i), ManagedAgent: &sophostest.ManagedAgent{ID: fmt.Sprintf("dev-%d", i), Type: "computer"}})
		want = append(want, a.ID)
	}
	sim.AddAlert(globex, sophostest.Alert{Description: "Other tenant"})

	alerts, err := c.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 2})
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	var got []string
	for _, a := range alerts {
		got = append(got, a.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListAll ids = %v, want %v", got, want)
	}
	first := alerts[0]
	if first.Severity != "high" || first.Tenant == nil || first.Tenant.ID != acme || !first.RaisedAt.Equal(time.Date(2026, 11, 10, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("alert = %+v", first)
	}
	if u := first.DeviceURL(); u != "https://central.sophos.com/manage/endpoint/devices/computers/dev-0/summary" {
		t.Errorf("DeviceURL = %q", u)
	}
	var calls int
	for _, r := range sim.Requests() {
		if r.Path != "/common/v1/alerts" {
			continue
		}
		calls++
		if r.Header.Get("X-Tenant-ID") != acme || r.Header.Get("X-Partner-ID") != "" || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			t.Errorf("alerts request headers %v: want X-Tenant-ID %s, a bearer token and no X-Partner-ID", r.Header, acme)
		}
	}
	if calls != 6 {
		t.Errorf("%d alerts requests, want 3 pages of 2, read twice (see TestAlertsService_ListAll_readAgain)", calls)
	}
}

// An alert resolved between two pages shifts the pages after it, so that
// an alert still open is on none of them. The listing is then not a
// complete one: it fails, rather than have the ticket pass close the
// ticket of the alert it skipped. The first page's announced count
// (pageTotal) tells.
func TestAlertsService_ListAll_changedWhileRead(t *testing.T) {
	t.Parallel()
	sim, _, w := setup(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, sim.AddAlert(acme, sophostest.Alert{Description: fmt.Sprintf("Threat %d", i)}).ID)
	}
	front := newTestServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		sim.Handler().ServeHTTP(rw, r)
		if r.URL.Path == "/common/v1/alerts" && r.URL.Query().Get("pageFromKey") == "" {
			sim.ResolveAlert(acme, ids[0]) // cleared while the client reads on
		}
	}))
	c, err := sophos.NewClient(sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()), sophos.WithAuthURL(sim.AuthURL()),
		sophos.WithBaseURL(front+"/"), sophos.WithSleep(w.sleep))
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := c.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 1})
	if err == nil || !strings.Contains(err.Error(), "announced 3 alerts") {
		var got []string
		for _, a := range alerts {
			got = append(got, a.Description)
		}
		t.Errorf("ListAll while an alert is resolved = %v, %v; want an error, not a listing without %q", got, err, "Threat 1")
	}
	if alerts, err := c.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 1}); err != nil || len(alerts) != 2 {
		t.Errorf("ListAll afterwards = %d alerts, %v; want the 2 still open", len(alerts), err)
	}
}

// The vendor's example answer names a nextKey on its only page ("total":
// 1). The pages stop after the announced number, as for the usage report:
// following that key could only fail the listing or repeat the page.
func TestAlertsService_ListAll_stopsAtAnnouncedPages(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var pages []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
	})
	mux.HandleFunc("GET /common/v1/alerts", func(rw http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("pageFromKey")
		mu.Lock()
		pages = append(pages, key)
		mu.Unlock()
		if key != "" {
			rw.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(rw, `{"error":"badRequest","message":"Invalid value for query parameter pageFromKey"}`)
			return
		}
		// The shape and pages block of the collection's "Query alerts"
		// example.
		fmt.Fprint(rw, `{"items":[{"id":"a5ded91c-6575-435c-a6b4-64b94f9048ff","severity":"medium","type":"Event::Endpoint::OutOfDate"},
			{"id":"b2c1d3e4-0000-4000-8000-000000000001","severity":"high","type":"Event::Endpoint::Threat::CleanupFailed"}],
			"pages":{"nextKey":"2000818931339","total":1,"items":2,"size":50,"maxSize":1000}}`)
	})
	ts := newTestServer(t, mux)
	c, err := sophos.NewClient(sophos.WithCredentials("id", "top-secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts))
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := c.Alerts.ListAll(t.Context(), acme, "", nil)
	if err != nil || len(alerts) != 2 {
		t.Errorf("ListAll = %d alerts, %v; want the 2 of the one announced page", len(alerts), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(pages, []string{""}) {
		t.Errorf("pages asked = %q, want only the first", pages)
	}
}

// A page whose items hold a null fails the listing with an error that says
// so, like any page that cannot be read whole; it was returned as a nil
// alert, on which the ticket pass crashed psa-syncd.
func TestAlertsService_ListAll_nullItem(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
	})
	mux.HandleFunc("GET /common/v1/alerts", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, `{"items":[{"id":"a5ded91c-6575-435c-a6b4-64b94f9048ff","severity":"medium"},null],"pages":{"total":1,"items":2,"size":50,"maxSize":1000}}`)
	})
	ts := newTestServer(t, mux)
	c, err := sophos.NewClient(sophos.WithCredentials("id", "top-secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts))
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := c.Alerts.ListAll(t.Context(), acme, "", nil)
	if err == nil || !strings.Contains(err.Error(), "item 1 is null") || alerts != nil {
		t.Errorf("ListAll = %v, %v; want an error naming the null item", alerts, err)
	}
}

// A list answer without an items list (a gateway's "{}", an error object
// with status 200) fails the listing: read as an empty list, it would
// tell the ticket pass that every alert of the tenant was resolved, and
// the usage pass that the month has no usage.
func TestList_noItems(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{}`, `{"items":null,"pages":{}}`, `{"error":"forbidden","message":"no access"}`} {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprint(rw, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
		})
		mux.HandleFunc("GET /whoami/v1", func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprint(rw, `{"id":"5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a","idType":"partner","apiHosts":{"global":"https://api.central.sophos.com"}}`)
		})
		mux.HandleFunc("GET /", func(rw http.ResponseWriter, r *http.Request) { fmt.Fprint(rw, body) })
		ts := newTestServer(t, mux)
		c, err := sophos.NewClient(sophos.WithCredentials("id", "top-secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts))
		if err != nil {
			t.Fatal(err)
		}
		alerts, err := c.Alerts.ListAll(t.Context(), acme, "", nil)
		if err == nil || !strings.Contains(err.Error(), "GET /common/v1/alerts") || !strings.Contains(err.Error(), "no items list") {
			t.Errorf("Alerts.ListAll on %s = %d alerts, %v; want an error naming the endpoint and the missing items", body, len(alerts), err)
		}
		usage, err := c.Billing.ListAllUsage(t.Context(), 2026, time.October, nil)
		if err == nil || !strings.Contains(err.Error(), "GET /partner/v1/billing/usage/2026/10") || !strings.Contains(err.Error(), "no items list") {
			t.Errorf("Billing.ListAllUsage on %s = %d rows, %v; want an error naming the endpoint and the missing items", body, len(usage), err)
		}
		tenants, err := c.Tenants.ListAll(t.Context())
		if err == nil || !strings.Contains(err.Error(), "GET /partner/v1/tenants") || !strings.Contains(err.Error(), "no items list") {
			t.Errorf("Tenants.ListAll on %s = %d tenants, %v; want an error naming the endpoint and the missing items", body, len(tenants), err)
		}
	}
}

// A server that hands out a new nextKey on every page and announces no
// number of pages is read up to the bound, then fails the listing, rather
// than hold the ticket pass (and the memory of every page) for ever.
func TestAlertsService_ListAll_newKeysForEver(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var requests int
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
	})
	mux.HandleFunc("GET /common/v1/alerts", func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		fmt.Fprintf(rw, `{"items":[{"id":"alert-%d","severity":"high"}],"pages":{"nextKey":"key-%d","size":1,"maxSize":1000}}`, n, n)
	})
	ts := newTestServer(t, mux)
	c, err := sophos.NewClient(sophos.WithCredentials("id", "top-secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts))
	if err != nil {
		t.Fatal(err)
	}
	sophos.SetMaxAlertPages(c, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	alerts, err := c.Alerts.ListAll(ctx, acme, "", nil)
	if want := "sophos: GET /common/v1/alerts (tenant " + acme + "): more than 5 pages; stopping rather than reading on"; err == nil || err.Error() != want || alerts != nil {
		t.Errorf("ListAll = %d alerts, %v; want error %q", len(alerts), err, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 5 {
		t.Errorf("alerts requests = %d, want 5", requests)
	}
}

func TestAlertsService_List_filters(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	sim.AddAlert(acme, sophostest.Alert{Severity: "low", RaisedAt: "2026-11-01T00:00:00.000"})
	high := sim.AddAlert(acme, sophostest.Alert{Severity: "high", RaisedAt: "2026-11-02T00:00:00.000"})
	alerts, resp, err := c.Alerts.List(t.Context(), acme, "", &sophos.AlertListOptions{Severity: []string{"high", "medium"}, From: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].ID != high.ID || resp.NextKey != "" {
		t.Errorf("List = %+v (next %q), want only the high alert", alerts, resp.NextKey)
	}
	if _, _, err := c.Alerts.List(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 1001}); err == nil || !strings.Contains(err.Error(), "between 1 and 1000") {
		t.Errorf("page size 1001: error = %v", err)
	}
}

// A resolved alert is no longer listed, and its GET answers 404.
func TestAlertsService_resolved(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	a := sim.AddAlert(acme, sophostest.Alert{Description: "Out of date"})
	if got, _, err := c.Alerts.Get(t.Context(), acme, "", a.ID); err != nil || got.ID != a.ID {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if !sim.ResolveAlert(acme, a.ID) {
		t.Fatal("ResolveAlert: not open")
	}
	if alerts, err := c.Alerts.ListAll(t.Context(), acme, "", nil); err != nil || len(alerts) != 0 {
		t.Errorf("ListAll after resolving = %+v, %v; want none", alerts, err)
	}
	if _, _, err := c.Alerts.Get(t.Context(), acme, "", a.ID); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("Get of a resolved alert: error = %v, want not found", err)
	}
}

func TestAlertsService_accessDenied(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	sim.DenyAlerts(acme, true)
	_, err := c.Alerts.ListAll(t.Context(), acme, "", nil)
	if !sophos.IsAccessDenied(err) || !errors.Is(err, psa.ErrUnauthorized) || !strings.Contains(err.Error(), "Access is denied") {
		t.Errorf("error = %v, want access denied", err)
	}
	if _, err := c.Alerts.ListAll(t.Context(), globex, "", nil); err != nil {
		t.Errorf("another tenant: %v", err)
	}
	if _, err := c.Alerts.ListAll(t.Context(), "00000000-0000-4000-8000-000000000000", "", nil); !sophos.IsAccessDenied(err) {
		t.Errorf("a tenant that is not the partner's: error = %v, want access denied", err)
	}
}

// A throttled page is retried; a failing later page fails the whole list,
// never returning a partial one.
func TestAlertsService_ListAll_faults(t *testing.T) {
	t.Parallel()
	sim, c, w := setup(t)
	for range 3 {
		sim.AddAlert(acme, sophostest.Alert{})
	}
	sim.AddFault(sophostest.Fault{Path: "/common/v1/alerts", Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second, Times: 1})
	alerts, err := c.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 2})
	if err != nil || len(alerts) != 3 {
		t.Fatalf("ListAll after a 429 = %d alerts, %v", len(alerts), err)
	}
	if got := w.get(); len(got) != 1 || got[0] != 2*time.Second {
		t.Errorf("waits = %v, want the 2s Retry-After", got)
	}

	// A server that fails every page after the first.
	front := newTestServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("pageFromKey") != "" {
			http.Error(rw, `{"error":"badRequest","message":"Invalid value for query parameter pageFromKey"}`, http.StatusBadRequest)
			return
		}
		sim.Handler().ServeHTTP(rw, r)
	}))
	c2, err := sophos.NewClient(sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()), sophos.WithAuthURL(sim.AuthURL()),
		sophos.WithBaseURL(front+"/"), sophos.WithSleep(w.sleep))
	if err != nil {
		t.Fatal(err)
	}
	alerts, err = c2.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 2})
	if err == nil || alerts != nil || !strings.Contains(err.Error(), "pageFromKey") {
		t.Errorf("ListAll with a failing second page = %d alerts, %v; want an error and no alerts", len(alerts), err)
	}
}

// Without a pinned base URL, alerts go to the tenant's apiHost, which must
// be https.
func TestAlertsService_apiHost(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t, sophostest.WithFixtureFile("../sophostest/testdata/fixture.json"))
	c, err := sophos.NewClient(sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()), sophos.WithAuthURL(sim.AuthURL()))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Alerts.List(t.Context(), acme, sim.URL(), nil)
	if err == nil || !strings.Contains(err.Error(), "is not https") {
		t.Errorf("http apiHost: error = %v, want a refusal", err)
	}
	if _, _, err := c.Alerts.List(t.Context(), acme, "", nil); err == nil || !strings.Contains(err.Error(), "has no apiHost") {
		t.Errorf("no apiHost: error = %v", err)
	}
}

func TestAlert_DeviceURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a    sophos.Alert
		want string
	}{
		{sophos.Alert{Product: "server", ManagedAgent: &sophos.ManagedAgent{ID: "s1", Type: "server"}}, "https://central.sophos.com/manage/server/devices/servers/s1/summary"},
		{sophos.Alert{Product: "endpoint", ManagedAgent: &sophos.ManagedAgent{ID: "c1", Type: "computer"}}, "https://central.sophos.com/manage/endpoint/devices/computers/c1/summary"},
		{sophos.Alert{Product: "wireless", ManagedAgent: &sophos.ManagedAgent{ID: "w1"}}, ""},
		{sophos.Alert{Product: "endpoint"}, ""},
	}
	for _, tt := range tests {
		if got := tt.a.DeviceURL(); got != tt.want {
			t.Errorf("%+v: DeviceURL = %q, want %q", tt.a, got, tt.want)
		}
	}
}

// Central's API declares no format for raisedAt: every ISO 8601 form of a
// date and time is read, and a value in no known form keeps its text with
// the zero time instead of failing the decode (and with it the tenant's
// listing).
func TestAlertTime_UnmarshalJSON(t *testing.T) {
	t.Parallel()
	at := func(h, m, s, ns int) time.Time { return time.Date(2026, 11, 15, h, m, s, ns, time.UTC) }
	for _, tc := range []struct {
		raw      string
		want     time.Time
		unparsed string
	}{
		{`"2026-11-15T09:00:00.780"`, at(9, 0, 0, 780e6), ""},
		{`"2026-11-15T09:00:00.780Z"`, at(9, 0, 0, 780e6), ""},
		{`"2026-11-15T10:00:00+01:00"`, at(9, 0, 0, 0), ""},
		{`"2026-11-15T09:00:00.000+0000"`, at(9, 0, 0, 0), ""},
		{`"2026-11-15T10:30:00-0130"`, at(12, 0, 0, 0), ""},
		{`"2026-11-15T11:00:00+02"`, at(9, 0, 0, 0), ""},
		{`"2026-11-15T09:00:00.123456789123Z"`, at(9, 0, 0, 123456789), ""},
		{`"2026-11-15T09:00:00,5Z"`, at(9, 0, 0, 500e6), ""},
		{`"2026-11-15 09:00:00Z"`, at(9, 0, 0, 0), ""},
		{`"2026-11-15t09:00:00z"`, at(9, 0, 0, 0), ""},
		{`""`, time.Time{}, ""},
		{`null`, time.Time{}, ""},
		{`"yesterday"`, time.Time{}, "yesterday"},
		{`"2026-11-15"`, time.Time{}, "2026-11-15"},
		{`1763197200`, time.Time{}, "1763197200"},
	} {
		var a sophos.Alert
		if err := json.Unmarshal([]byte(`{"id":"a1","raisedAt":`+tc.raw+`}`), &a); err != nil {
			t.Errorf("raisedAt %s: decoding failed: %v", tc.raw, err)
			continue
		}
		if !a.RaisedAt.Equal(tc.want) || a.RaisedAt.Unparsed != tc.unparsed || a.ID != "a1" {
			t.Errorf("raisedAt %s = %v (unparsed %q), want %v (unparsed %q)", tc.raw, a.RaisedAt.Time, a.RaisedAt.Unparsed, tc.want, tc.unparsed)
		}
	}
}

// One alert whose raisedAt cannot be read does not fail the listing: it is
// listed with the others, with the zero time and its text.
func TestAlertsService_ListAll_unparsedRaisedAt(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	good := sim.AddAlert(acme, sophostest.Alert{Severity: "high", RaisedAt: "2026-11-15T09:00:00.000"})
	odd := sim.AddAlert(acme, sophostest.Alert{Severity: "medium", RaisedAt: "15/11/2026 09:00"})
	alerts, err := c.Alerts.ListAll(t.Context(), acme, "", nil)
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	if len(alerts) != 2 || alerts[0].ID != good.ID || alerts[1].ID != odd.ID {
		t.Fatalf("ListAll = %+v, want alerts %s and %s", alerts, good.ID, odd.ID)
	}
	if !alerts[1].RaisedAt.IsZero() || alerts[1].RaisedAt.Unparsed != "15/11/2026 09:00" || alerts[1].Severity != "medium" {
		t.Errorf("odd alert = %+v, want severity medium, the zero time and raisedAt kept as text", alerts[1])
	}
}

// An alert in a tenant's listing that names another tenant fails the
// listing: as the asked tenant's, it would become a ticket on another
// customer's company, showing that customer its devices and users. An
// alert that names its own tenant in another case, or no tenant, is the
// asked tenant's.
func TestAlertsService_ListAll_otherTenant(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	sim.AddAlert(acme, sophostest.Alert{Description: "Acme threat"})
	sim.AddAlert(acme, sophostest.Alert{Description: "Acme threat, tenant in upper case", Tenant: &sophostest.TenantRef{ID: strings.ToUpper(acme)}})
	other := sim.AddAlert(acme, sophostest.Alert{Description: "Globex threat", Tenant: &sophostest.TenantRef{ID: globex, Name: "Globex"}})
	alerts, err := c.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 2})
	want := fmt.Sprintf("alert %s is of tenant %s, not of tenant %s that was asked for", other.ID, globex, acme)
	if err == nil || !strings.Contains(err.Error(), want) || alerts != nil {
		t.Errorf("ListAll = %d alerts, %v; want an error containing %q", len(alerts), err, want)
	}
	sim.ResolveAlert(acme, other.ID)
	if alerts, err := c.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 2}); err != nil || len(alerts) != 2 {
		t.Errorf("ListAll without the other tenant's alert = %d alerts, %v; want 2", len(alerts), err)
	}
}

// An alert with a field of the wrong type is kept, by its id, with the
// fields that could be read (Err says what could not), and logged at
// debug: failing the listing would stop
// every ticket of the tenant from being created or closed. An item whose
// id or tenant cannot be read fails the listing, since its ticket, or
// whose alert it is, cannot be told.
func TestAlertsService_ListAll_alertNotReadInFull(t *testing.T) {
	t.Parallel()
	const odd = `{"id":"a2","severity":"high","description":"Threat on PC-2","allowedActions":"acknowledge",` +
		`"managedAgent":{"id":"dev-2","type":"computer"},"product":"endpoint","raisedAt":"2026-11-12T10:00:00.000","person":"p"}`
	for _, tc := range []struct {
		name, item, wantErr string
	}{
		{"odd field", odd, ""},
		{"id not a string", `{"id":7,"severity":"high"}`, "item 1 cannot be decoded and its id cannot be read"},
		{"tenant not an object", `{"id":"a2","severity":"high","tenant":"` + globex + `","person":"p"}`, "item 1 (alert a2) cannot be decoded and its tenant cannot be read"},
		{"not an object", `"a2"`, "item 1 is not an alert"},
		{"null", `null`, "item 1 is null, not an alert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
				fmt.Fprint(rw, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
			})
			mux.HandleFunc("GET /common/v1/alerts", func(rw http.ResponseWriter, r *http.Request) {
				fmt.Fprint(rw, `{"items":[{"id":"a1","severity":"medium"},`+tc.item+`],"pages":{"total":1,"items":2}}`)
			})
			ts := newTestServer(t, mux)
			var logs strings.Builder // the client logs in the test's goroutine
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, err := sophos.NewClient(sophos.WithCredentials("id", "top-secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts), sophos.WithLogger(logger))
			if err != nil {
				t.Fatal(err)
			}
			alerts, err := c.Alerts.ListAll(t.Context(), acme, "", nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || alerts != nil {
					t.Errorf("ListAll = %d alerts, %v; want an error containing %q", len(alerts), err, tc.wantErr)
				}
				return
			}
			if err != nil || len(alerts) != 2 {
				t.Fatalf("ListAll = %d alerts, %v; want 2", len(alerts), err)
			}
			a := alerts[1]
			if a.ID != "a2" || a.Severity != "high" || a.Description != "Threat on PC-2" || a.Err == nil ||
				!a.RaisedAt.Equal(time.Date(2026, 11, 12, 10, 0, 0, 0, time.UTC)) ||
				a.DeviceURL() != "https://central.sophos.com/manage/endpoint/devices/computers/dev-2/summary" {
				t.Errorf("alert = %+v, want a2 with what could be read of it", a)
			}
			if !strings.Contains(logs.String(), "Sophos alert cannot be read in full") || !strings.Contains(logs.String(), "alert=a2") {
				t.Errorf("logs = %q, want a warning naming alert a2", logs.String())
			}
		})
	}
}

// An alert raised before the key of the next page (the sort puts it
// there) shifts the pages after it: the next page repeats the last alert
// of the page before, and with one alert cleared meanwhile the count is
// still as announced, while an alert still open is on no page. An alert
// on two pages fails the listing: the ticket pass would otherwise take the
// alert it skipped for resolved.
func TestAlertsService_ListAll_alertOnTwoPages(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
	})
	mux.HandleFunc("GET /common/v1/alerts", func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("pageFromKey") == "" {
			fmt.Fprint(rw, `{"items":[{"id":"a1","severity":"high"},{"id":"a2","severity":"high"}],"pages":{"nextKey":"2","total":2,"items":4,"size":2}}`)
			return
		}
		// a0 was raised before a1 and a4 cleared: a3 is now on the third
		// page, which the first page did not announce.
		fmt.Fprint(rw, `{"items":[{"id":"a2","severity":"high"},{"id":"a3","severity":"high"}],"pages":{"nextKey":"4","size":2}}`)
	})
	ts := newTestServer(t, mux)
	c, err := sophos.NewClient(sophos.WithCredentials("id", "top-secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts))
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := c.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 2})
	if want := "alert a2 is on page 1 and on page 2"; err == nil || !strings.Contains(err.Error(), want) || alerts != nil {
		t.Errorf("ListAll = %d alerts, %v; want an error containing %q", len(alerts), err, want)
	}
}

// offsetAlerts serves a tenant's open alerts with offset-like keys (the
// key is the index of the page's first alert), as a listing whose alerts
// change between requests shifts them. change, unless nil, runs after
// each answer with the number of requests so far, under the lock.
type offsetAlerts struct {
	mu       sync.Mutex
	ids      []string
	requests int
	change   func(o *offsetAlerts, requests int)
}

func (o *offsetAlerts) serve(rw http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := r.URL.Query()
	size, _ := strconv.Atoi(q.Get("pageSize"))
	from, _ := strconv.Atoi(q.Get("pageFromKey"))
	end := min(from+size, len(o.ids))
	var items []string
	for _, id := range o.ids[min(from, end):end] {
		items = append(items, fmt.Sprintf(`{"id":%q,"severity":"high"}`, id))
	}
	pages := fmt.Sprintf(`"size":%d`, size)
	if end < len(o.ids) {
		pages += fmt.Sprintf(`,"nextKey":"%d"`, end)
	}
	if q.Get("pageTotal") == "true" {
		pages += fmt.Sprintf(`,"total":%d,"items":%d`, (len(o.ids)+size-1)/size, len(o.ids))
	}
	fmt.Fprintf(rw, `{"items":[%s],"pages":{%s}}`, strings.Join(items, ","), pages)
	o.requests++
	if o.change != nil {
		o.change(o, o.requests)
	}
}

// TestAlertsService_ListAll_readAgain: with offset-like keys, an alert
// cleared on a page already read and one raised after the last page leave
// the count as announced and no repeat, while the alert the clear shifted
// onto that page is on none: that reading alone keeps the cleared alert's
// ticket open and takes the one on no page, still open, for resolved. A
// listing of more than one page is read until two readings agree.
func TestAlertsService_ListAll_readAgain(t *testing.T) {
	t.Parallel()
	ids := func(alerts []*sophos.Alert) string {
		var s []string
		for _, a := range alerts {
			s = append(s, a.ID)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name   string
		ids    []string
		change func(o *offsetAlerts, requests int)
		// want is the alerts listed, or "" for an error containing wantErr.
		want, wantErr string
		requests      int
	}{
		{name: "one page is read once", ids: []string{"a1", "a2"}, want: "a1,a2", requests: 1},
		{name: "pages that do not change are read twice", ids: []string{"a1", "a2", "a3", "a4", "a5"}, want: "a1,a2,a3,a4,a5", requests: 6},
		{
			name: "a clear on a page read and a raise after the last", ids: []string{"a1", "a2", "a3", "a4", "a5"},
			change: func(o *offsetAlerts, requests int) {
				if requests == 1 { // after the first page of the first reading
					o.ids = append(o.ids[1:], "a6")
				}
			},
			// The first reading is a1,a2,a4,a5,a6: five alerts as
			// announced, a3 on no page and a1, cleared, kept.
			want: "a2,a3,a4,a5,a6", requests: 9,
		},
		{
			name: "alerts that change at every reading", ids: []string{"a1", "a2", "a3"},
			change: func(o *offsetAlerts, requests int) {
				if requests%2 == 0 { // after each reading's last page
					o.ids = append(o.ids[1:], fmt.Sprintf("b%d", requests))
				}
			},
			wantErr: "changed between each of 3 readings", requests: 6,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := &offsetAlerts{ids: tc.ids, change: tc.change}
			mux := http.NewServeMux()
			mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
				fmt.Fprint(rw, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
			})
			mux.HandleFunc("GET /common/v1/alerts", o.serve)
			ts := newTestServer(t, mux)
			c, err := sophos.NewClient(sophos.WithCredentials("id", "top-secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts))
			if err != nil {
				t.Fatal(err)
			}
			alerts, err := c.Alerts.ListAll(t.Context(), acme, "", &sophos.AlertListOptions{PageSize: 2})
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || alerts != nil {
					t.Errorf("ListAll = %s, %v; want an error containing %q", ids(alerts), err, tc.wantErr)
				}
			case err != nil || ids(alerts) != tc.want:
				t.Errorf("ListAll = %s, %v; want %s", ids(alerts), err, tc.want)
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.requests != tc.requests {
				t.Errorf("requests = %d, want %d", o.requests, tc.requests)
			}
		})
	}
}
