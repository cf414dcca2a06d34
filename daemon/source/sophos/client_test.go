package sophos_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

const (
	acme   = "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b"
	globex = "2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a"
)

var oct2026 = source.Period{Year: 2026, Month: time.October}

// waits records the retry delays a client asked for, without waiting.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(_ context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	return nil
}

func (w *waits) get() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// setup starts a simulator from the example fixture and a client pointed at
// it, with retries on and no real waiting.
func setup(t *testing.T, simOpts ...sophostest.Option) (*sophostest.Server, *sophos.Client, *waits) {
	t.Helper()
	simOpts = append([]sophostest.Option{sophostest.WithFixtureFile("../sophostest/testdata/fixture.json")}, simOpts...)
	sim := sophostest.Start(t, simOpts...)
	w := &waits{}
	c, err := sophos.NewClient(
		sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()),
		sophos.WithAuthURL(sim.AuthURL()),
		sophos.WithBaseURL(sim.APIURL()),
		sophos.WithMaxRetries(sophos.DefaultMaxRetries),
		sophos.WithBackoff(time.Millisecond, 10*time.Millisecond),
		sophos.WithSleep(w.sleep),
	)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return sim, c, w
}

func TestNewClient_errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opts []sophos.Option
		want string
	}{
		{nil, "sophos: client id and client secret are required"},
		{[]sophos.Option{sophos.WithCredentials("id", "s"), sophos.WithBaseURL("api.central.sophos.com")}, `sophos: base URL: "api.central.sophos.com" is not an absolute http(s) URL`},
		{[]sophos.Option{sophos.WithCredentials("id", "s"), sophos.WithAuthURL("ftp://x/")}, `sophos: auth URL: "ftp://x/" is not an absolute http(s) URL`},
		{[]sophos.Option{sophos.WithCredentials("id", "s"), sophos.WithMaxRetries(-1)}, "sophos: max retries -1 is negative"},
	}
	for _, tc := range tests {
		if _, err := sophos.NewClient(tc.opts...); err == nil || err.Error() != tc.want {
			t.Errorf("NewClient error = %v, want %s", err, tc.want)
		}
	}
}

func TestWhoAmIService_Get(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	who, _, err := c.WhoAmI.Get(t.Context())
	if err != nil {
		t.Fatalf("WhoAmI.Get: %v", err)
	}
	want := &sophos.WhoAmI{ID: sim.PartnerID(), IDType: "partner", APIHosts: sophos.APIHosts{Global: sim.URL()}}
	if !cmp.Equal(who, want) {
		t.Errorf("WhoAmI.Get returned %+v, want %+v", who, want)
	}
	id, err := c.PartnerID(t.Context())
	if err != nil || id != "5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a" {
		t.Errorf("PartnerID = %q, %v", id, err)
	}
}

func TestClient_partnerIDNotPartner(t *testing.T) {
	t.Parallel()
	_, c, _ := setup(t, sophostest.WithIDType("tenant"))
	_, err := c.PartnerID(t.Context())
	want := "sophos: the API credential belongs to a tenant (id 5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a), not a partner; create the credential in Sophos Central Partner"
	if err == nil || err.Error() != want {
		t.Errorf("PartnerID error = %v, want %s", err, want)
	}
	if _, err := c.Tenants.ListAll(t.Context()); err == nil || err.Error() != want {
		t.Errorf("Tenants.ListAll error = %v, want %s", err, want)
	}
}

func TestClient_tokenCached(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	ctx := t.Context()
	for range 3 {
		if _, err := c.Tenants.ListAll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Billing.ListAllUsage(ctx, 2026, time.October, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := sim.CountRequests("POST", "/api/v2/oauth2/token"); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
	if n := sim.CountRequests("GET", "/whoami/v1"); n != 1 {
		t.Errorf("whoami requests = %d, want 1", n)
	}
	// The token request is a form post with the client-credentials grant.
	for _, r := range sim.Requests() {
		if r.Path != "/api/v2/oauth2/token" {
			if got := r.Header.Get("Authorization"); !strings.HasPrefix(got, "Bearer sim-access-") {
				t.Errorf("%s %s: Authorization = %q", r.Method, r.Path, got)
			}
			if strings.HasPrefix(r.Path, "/partner/") && r.Header.Get("X-Partner-ID") != sim.PartnerID() {
				t.Errorf("%s %s: X-Partner-ID = %q", r.Method, r.Path, r.Header.Get("X-Partner-ID"))
			}
			continue
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("token request Content-Type = %q", ct)
		}
		for _, kv := range []string{"grant_type=client_credentials", "scope=token", "client_id=sim-client-id", "client_secret=sim-client-secret"} {
			if !strings.Contains(string(r.Body), kv) {
				t.Errorf("token request body %q lacks %q", r.Body, kv)
			}
		}
	}
}

func TestClient_tokenRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sim := sophostest.Start(t, sophostest.WithFixtureFile("../sophostest/testdata/fixture.json"), sophostest.WithClock(clock))
	c, err := sophos.NewClient(sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()),
		sophos.WithAuthURL(sim.AuthURL()), sophos.WithBaseURL(sim.APIURL()), sophos.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tenants.ListAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Hour - 30*time.Second) // inside the one-minute margin
	mu.Unlock()
	if _, err := c.Tenants.ListAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := sim.CountRequests("POST", "/api/v2/oauth2/token"); n != 2 {
		t.Errorf("token requests = %d, want 2", n)
	}
	if n := sim.CountRequests("", "/partner/*"); n != 2 {
		t.Errorf("partner requests = %d, want 2 (no 401 round trip)", n)
	}
}

func TestClient_reauthOn401(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	ctx := t.Context()
	if _, err := c.Tenants.ListAll(ctx); err != nil {
		t.Fatal(err)
	}
	sim.RevokeTokens()
	ts, err := c.Tenants.ListAll(ctx)
	if err != nil {
		t.Fatalf("Tenants.ListAll after revocation: %v", err)
	}
	if len(ts) != 3 {
		t.Errorf("got %d tenants, want 3", len(ts))
	}
	if n := sim.CountRequests("POST", "/api/v2/oauth2/token"); n != 2 {
		t.Errorf("token requests = %d, want 2", n)
	}
	// A 401 that persists is reported after one new token, not looped on.
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: http.StatusUnauthorized})
	sim.ResetRequests()
	_, err = c.Tenants.ListAll(ctx)
	if !errors.Is(err, psa.ErrUnauthorized) {
		t.Fatalf("error = %v, want psa.ErrUnauthorized", err)
	}
	if n := sim.CountRequests("GET", "/partner/v1/tenants"); n != 2 {
		t.Errorf("tenant requests = %d, want 2", n)
	}
	if n := sim.CountRequests("POST", "/api/v2/oauth2/token"); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
}

// TestClient_newTokenRefusedFailsFast: a host that refuses a token fetched
// for the call (the credential deleted or its role taken away while
// Sophos ID still issues tokens) made every later call fetch a new token
// and be refused again: a ticket pass, one call per customer, fetched a
// token per customer. For a minute the calls to that host now fail
// without being sent, saying why; then they try again.
func TestClient_newTokenRefusedFailsFast(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sim := sophostest.Start(t, sophostest.WithFixtureFile("../sophostest/testdata/fixture.json"))
	c, err := sophos.NewClient(sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()),
		sophos.WithAuthURL(sim.AuthURL()), sophos.WithBaseURL(sim.APIURL()), sophos.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.Tenants.ListAll(ctx); err != nil {
		t.Fatal(err)
	}
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: http.StatusUnauthorized})
	sim.ResetRequests()
	if _, err := c.Tenants.ListAll(ctx); !errors.Is(err, psa.ErrUnauthorized) {
		t.Fatalf("first call: error = %v, want psa.ErrUnauthorized", err)
	}
	for i := range 3 {
		_, err := c.Tenants.ListAll(ctx)
		if !errors.Is(err, psa.ErrUnauthorized) || !strings.Contains(err.Error(), "not sent: ") ||
			!strings.Contains(err.Error(), "refused a new access token at 2026-11-01T08:00:00Z, so calls to it fail until 2026-11-01T08:01:00Z") {
			t.Errorf("call %d after the refusal: error = %v, want psa.ErrUnauthorized saying it was not sent, since when and until when", i+2, err)
		}
	}
	if n := sim.CountRequests("POST", "/api/v2/oauth2/token"); n != 1 {
		t.Errorf("token requests = %d, want 1 (the first call's)", n)
	}
	if n := sim.CountRequests("GET", "/partner/v1/tenants"); n != 2 {
		t.Errorf("tenant requests = %d, want 2 (the first call's)", n)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	sim.ClearFaults()
	if _, err := c.Tenants.ListAll(ctx); err != nil {
		t.Errorf("a minute later: %v, want the call sent again", err)
	}
}

// TestClient_forgetRefusals: a caller that learned the credential works
// again (psa-syncd check through the daemon passed) drops the hold of a
// host that refused a new token: the next call is sent at once.
func TestClient_forgetRefusals(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	sim := sophostest.Start(t, sophostest.WithFixtureFile("../sophostest/testdata/fixture.json"))
	c, err := sophos.NewClient(sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()),
		sophos.WithAuthURL(sim.AuthURL()), sophos.WithBaseURL(sim.APIURL()), sophos.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if n := c.ForgetRefusals(); n != 0 {
		t.Errorf("ForgetRefusals with no refusal = %d, want 0", n)
	}
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: http.StatusUnauthorized})
	if _, err := c.Tenants.ListAll(ctx); !errors.Is(err, psa.ErrUnauthorized) {
		t.Fatalf("first call: error = %v, want psa.ErrUnauthorized", err)
	}
	sim.ClearFaults()
	if _, err := c.Tenants.ListAll(ctx); err == nil || !strings.Contains(err.Error(), "not sent: ") {
		t.Fatalf("call after the refusal: %v, want it held back", err)
	}
	if n := c.ForgetRefusals(); n != 1 {
		t.Errorf("ForgetRefusals = %d, want 1 (the partner host's hold)", n)
	}
	sim.ResetRequests()
	if _, err := c.Tenants.ListAll(ctx); err != nil {
		t.Errorf("call after ForgetRefusals: %v, want it sent at once", err)
	}
	if n := sim.CountRequests("GET", "/partner/v1/tenants"); n == 0 {
		t.Error("no tenants request after ForgetRefusals")
	}
}

func TestClient_badCredentials(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t)
	for _, tc := range []struct {
		id, secret, want string
	}{
		{"sim-client-id", "wrong-secret", "sophos: token request refused: 401 Unauthorized: Unauthorized (oauth.invalid_client_secret); check the API credential's client id and secret (trackingId "},
		{"nobody", "wrong-secret", "sophos: token request refused: 401 Unauthorized: Unauthorized (oauth.client_app_does_not_exist); check the API credential's client id and secret (trackingId "},
	} {
		c, err := sophos.NewClient(sophos.WithCredentials(tc.id, tc.secret), sophos.WithAuthURL(sim.AuthURL()), sophos.WithBaseURL(sim.APIURL()), sophos.WithMaxRetries(3))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PartnerID(t.Context())
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("error = %v, want prefix %s", err, tc.want)
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("error %q contains the secret", err)
		}
		var ae *sophos.AuthError
		if !errors.As(err, &ae) || !errors.Is(err, psa.ErrUnauthorized) {
			t.Errorf("error %T does not match *AuthError and psa.ErrUnauthorized", err)
		}
	}
	if n := sim.CountRequests("POST", "/api/v2/oauth2/token"); n != 2 {
		t.Errorf("token requests = %d, want 2 (401 is not retried)", n)
	}
}

func TestTenantsService_ListAll(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	for i := range 230 {
		sim.AddTenant(sophostest.Tenant{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Name: fmt.Sprintf("Tenant %03d", i)})
	}
	ts, err := c.Tenants.ListAll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 233 {
		t.Fatalf("got %d tenants, want 233", len(ts))
	}
	if ts[0].ID != acme || ts[0].Name != "Acme Corporation" || ts[0].Partner == nil || ts[0].Partner.ID != sim.PartnerID() {
		t.Errorf("first tenant = %+v", ts[0])
	}
	if ts[232].Name != "Tenant 229" {
		t.Errorf("last tenant = %+v", ts[232])
	}
	var queries []string
	for _, r := range sim.Requests() {
		if r.Path == "/partner/v1/tenants" {
			queries = append(queries, r.RawQuery)
		}
	}
	want := []string{"page=1&pageSize=100&pageTotal=true", "page=2&pageSize=100&pageTotal=true", "page=3&pageSize=100&pageTotal=true"}
	if !cmp.Equal(queries, want) {
		t.Errorf("tenant queries = %q, want %q", queries, want)
	}
}

func TestTenantsService_Get(t *testing.T) {
	t.Parallel()
	_, c, _ := setup(t)
	tn, _, err := c.Tenants.Get(t.Context(), globex)
	if err != nil {
		t.Fatal(err)
	}
	if tn.DisplayName() != "Globex" || tn.DataRegion != "eu01" || tn.Organization == nil {
		t.Errorf("Tenants.Get returned %+v", tn)
	}
	_, _, err = c.Tenants.Get(t.Context(), "00000000-0000-4000-8000-000000000000")
	if !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("Tenants.Get unknown error = %v, want psa.ErrNotFound", err)
	}
}

// TestBillingService_ListAllUsagePaging: the report is read page by page,
// each page reported to the pass (source.PageRead), whose progress it is
// while a large partner's report is read.
func TestBillingService_ListAllUsagePaging(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	var pages int
	ctx := source.WithProgress(t.Context(), func() { pages++ })
	items, err := c.Billing.ListAllUsage(ctx, 2026, time.October, &sophos.UsageListOptions{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if pages != 6 {
		t.Errorf("pages reported read = %d, want 6 (three pages, read twice)", pages)
	}
	if len(items) != 6 {
		t.Fatalf("got %d items, want 6", len(items))
	}
	var queries []string
	for _, r := range sim.Requests() {
		if strings.HasPrefix(r.Path, "/partner/v1/billing/usage/") {
			if r.Path != "/partner/v1/billing/usage/2026/10" {
				t.Errorf("usage path = %q", r.Path)
			}
			queries = append(queries, r.RawQuery)
		}
	}
	// A report of more than one page is read twice (see ListAllUsage).
	if len(queries) != 6 || queries[0] != "pageSize=2&pageTotal=true" ||
		!strings.HasPrefix(queries[1], "pageFromKey=") || !strings.HasPrefix(queries[2], "pageFromKey=") || queries[1] == queries[2] ||
		!slices.Equal(queries[:3], queries[3:]) {
		t.Errorf("usage queries = %q, want a first page with pageTotal then two pageFromKey pages, twice", queries)
	}
	one, resp, err := c.Billing.GetUsage(t.Context(), 2026, time.October, &sophos.UsageListOptions{AccountID: globex})
	if err != nil || len(one) != 2 || resp.NextKey != "" {
		t.Errorf("GetUsage(accountId) = %d items, next %q, %v", len(one), resp.NextKey, err)
	}
}

func TestSource_Fetch(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	s := sophos.NewSource(c)
	if s.Name() != "sophos" {
		t.Errorf("Name = %q", s.Name())
	}
	rep, err := s.Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := []source.Record{
		{Product: "XGS-FW-MSP", ProductName: "XGS Firewall Xstream Protection - MSP Monthly", Quantity: 1, Period: "2026-10", Where: "sophos unassigned usage (serial C01234ABC1CDEF2)"},
		{CustomerID: globex, CustomerName: "Globex", Product: "CIXA-MSP", ProductName: "Central Intercept X Advanced - MSP Monthly", Quantity: 42, Period: "2026-10", Where: "sophos tenant " + globex},
		{CustomerID: globex, CustomerName: "Globex", Product: "MDR-MSP", ProductName: "Managed Detection and Response - MSP Monthly", Quantity: 42, Period: "2026-10", Where: "sophos tenant " + globex},
		{CustomerID: acme, CustomerName: "Acme Corporation", Product: "CIXA-MSP", ProductName: "Central Intercept X Advanced - MSP Monthly", Quantity: 25, Period: "2026-10", Where: "sophos tenant " + acme + " (+1 more)"},
		{CustomerID: acme, CustomerName: "Acme Corporation", Product: "CIXAS-MSP", ProductName: "Central Intercept X Advanced for Server - MSP Monthly", Quantity: 3, Period: "2026-10", Where: "sophos tenant " + acme},
	}
	if diff := cmp.Diff(want, rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("Problems = %v", rep.Problems)
	}
	if n := sim.CountRequests("GET", "/partner/v1/billing/usage/2026/10"); n != 1 {
		t.Errorf("usage requests = %d, want 1 (page size 1000)", n)
	}
}

func TestSource_FetchPartnerLevelAndBadRows(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	nov := source.Period{Year: 2026, Month: time.November}
	sim.SetUsage(nov, []sophostest.UsageItem{
		{AccountID: acme, ProductCode: "CIXA-MSP", BillableQuantity: 7, OrderLineItemNumber: "L1"},
		{AccountID: acme, ProductCode: "CIXA-MSP", BillableQuantity: 2.5, OrderLineItemNumber: "L2"},
		{AccountID: acme, ProductCode: "", BillableQuantity: 1, OrderLineItemNumber: "L3"},
		{AccountID: acme, ProductCode: "CIXA-MSP", BillableQuantity: -1, OrderLineItemNumber: "L4"},
		{AccountID: sim.PartnerID(), ProductCode: "XGS-FW-MSP", BillableQuantity: 2},
		{AccountID: "11111111-2222-4333-8444-555555555555", AccountType: "partner", ProductCode: "XGS-FW-MSP", BillableQuantity: 1},
		{AccountID: "99999999-0000-4000-8000-000000000000", AssignedAccountIdentifier: "Unknown Co", ProductCode: "CIXA-MSP", BillableQuantity: 4},
	})
	rep, err := sophos.NewSource(c).Fetch(t.Context(), nov)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Records {
		got = append(got, fmt.Sprintf("%s|%s|%s|%d", r.CustomerID, r.CustomerName, r.Product, r.Quantity))
	}
	want := []string{
		"||XGS-FW-MSP|3",
		"718b6047-2fbc-b4f4-1a43-45ee42bf5d3b|Acme Corporation|CIXA-MSP|7",
		"99999999-0000-4000-8000-000000000000|Unknown Co|CIXA-MSP|4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records mismatch (-want +got):\n%s", diff)
	}
	var problems []string
	for _, p := range rep.Problems {
		problems = append(problems, p.String())
	}
	wantProblems := []string{
		"sophos usage 2026-11 item 2 (account 718b6047-2fbc-b4f4-1a43-45ee42bf5d3b, order line L2): billableQuantity 2.5 is not a whole number",
		"sophos usage 2026-11 item 3 (account 718b6047-2fbc-b4f4-1a43-45ee42bf5d3b, order line L3): productCode is missing",
		"sophos usage 2026-11 item 4 (account 718b6047-2fbc-b4f4-1a43-45ee42bf5d3b, order line L4): billableQuantity -1 is negative",
	}
	if diff := cmp.Diff(wantProblems, problems); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
}

func TestSource_FetchNoDataMonth(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	rep, err := sophos.NewSource(c).Fetch(t.Context(), source.Period{Year: 2026, Month: time.December})
	if err != nil {
		t.Fatalf("Fetch of a month without data: %v", err)
	}
	if len(rep.Records) != 0 || len(rep.Problems) != 1 || !errors.Is(rep.Problems[0].Err, sophos.ErrNoData) {
		t.Fatalf("report = %+v, want no records and one ErrNoData problem", rep)
	}
	if got, want := rep.Problems[0].String(), "sophos usage 2026-12: sophos: no usage data for this month yet"; got != want {
		t.Errorf("problem = %q, want %q", got, want)
	}
	if n := sim.CountRequests("GET", "/partner/v1/billing/usage/2026/12"); n != 1 {
		t.Errorf("usage requests = %d, want 1 (404 is not retried)", n)
	}
}

// TestSource_FetchNotFoundOtherThanNoData: every 404 of the usage report's
// first page read as a month without a report yet, so a proxy's 404 page,
// or a partner not on monthly billing, left the usage unread at every pass
// with a warning only. Only Sophos's envelope saying there is no data is
// such a month now; any other 404 is an error naming the answer.
func TestSource_FetchNotFoundOtherThanNoData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"a proxy's page", "<html><body>404 Not Found</body></html>",
			"sophos: GET /partner/v1/billing/usage/2026/10: 404 Not Found: <html><body>404 Not Found</body></html>; not Sophos's answer for a month without a report"},
		{"the API's envelope of another 404", "",
			"sophos: GET /partner/v1/billing/usage/2026/10: 404 Not Found: Not Found (requestId "},
		{"an envelope without a message", `{"error":"NotFound"}`,
			"sophos: GET /partner/v1/billing/usage/2026/10: 404 Not Found; not Sophos's answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, c, _ := setup(t)
			sim.AddFault(sophostest.Fault{Method: "GET", Path: "/partner/v1/billing/usage/*", Status: http.StatusNotFound, Body: tc.body})
			rep, err := sophos.NewSource(c).Fetch(t.Context(), oct2026)
			if err == nil {
				t.Fatalf("Fetch = %+v, nil; want an error", rep)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not on monthly (MSP Flex) billing") {
				t.Errorf("Fetch error = %q, want it to hold %q and the causes", err, tc.want)
			}
		})
	}
	// Sophos's own answer, whatever the case of its message, is a month
	// without a report.
	sim, c, _ := setup(t)
	sim.AddFault(sophostest.Fault{Method: "GET", Path: "/partner/v1/billing/usage/*", Status: http.StatusNotFound,
		Body: `{"error":"NotFound","message":"No Data for requested year or month","requestId":"r1"}`})
	rep, err := sophos.NewSource(c).Fetch(t.Context(), oct2026)
	if err != nil || len(rep.Records) != 0 || len(rep.Problems) != 1 || !errors.Is(rep.Problems[0].Err, sophos.ErrNoData) {
		t.Errorf("Fetch = %+v, %v; want no records and one ErrNoData problem", rep, err)
	}
}

func TestSource_rateLimitedRetried(t *testing.T) {
	t.Parallel()
	sim, c, w := setup(t)
	sim.AddFault(sophostest.Fault{Method: "GET", Path: "/partner/v1/billing/usage/*", Status: http.StatusTooManyRequests, RetryAfter: 7 * time.Second, Times: 2})
	sim.AddFault(sophostest.Fault{Method: "GET", Path: "/partner/v1/tenants", Status: http.StatusServiceUnavailable, Times: 1})
	rep, err := sophos.NewSource(c).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(rep.Records) != 5 {
		t.Errorf("got %d records, want 5", len(rep.Records))
	}
	got := w.get()
	if len(got) != 3 || got[0] != 7*time.Second || got[1] != 7*time.Second || got[2] > 10*time.Millisecond {
		t.Errorf("waits = %v, want 7s, 7s (Retry-After) then a backoff of at most 10ms", got)
	}
}

func TestClient_rateLimitExhausted(t *testing.T) {
	t.Parallel()
	sim, c, w := setup(t)
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	_, err := c.Tenants.ListAll(t.Context())
	var rl *sophos.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, psa.ErrRateLimited) || rl.RetryAfter != time.Second {
		t.Fatalf("error = %v (%T), want *RateLimitError with RetryAfter 1s", err, err)
	}
	if n := sim.CountRequests("GET", "/partner/v1/tenants"); n != 1+sophos.DefaultMaxRetries {
		t.Errorf("requests = %d, want %d", n, 1+sophos.DefaultMaxRetries)
	}
	if len(w.get()) != sophos.DefaultMaxRetries {
		t.Errorf("waits = %v", w.get())
	}
}

func TestClient_serverErrorAndDropRetried(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	sim.AddFault(sophostest.Fault{Path: "/whoami/v1", Drop: true, Times: 1})
	sim.AddFault(sophostest.Fault{Path: "/api/v2/oauth2/token", Status: http.StatusBadGateway, Times: 1})
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: http.StatusInternalServerError, Times: 2})
	ts, err := c.Tenants.ListAll(t.Context())
	if err != nil || len(ts) != 3 {
		t.Fatalf("ListAll = %d tenants, %v", len(ts), err)
	}
	// Without retries the 500 is an error naming the endpoint.
	c0, _ := sophos.NewClient(sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()), sophos.WithAuthURL(sim.AuthURL()), sophos.WithBaseURL(sim.APIURL()))
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: http.StatusInternalServerError, Times: 1})
	_, err = c0.Tenants.ListAll(t.Context())
	var er *sophos.ErrorResponse
	if !errors.As(err, &er) || !strings.HasPrefix(err.Error(), "sophos: GET /partner/v1/tenants: 500 Internal Server Error: Internal Server Error (requestId ") {
		t.Errorf("error = %v", err)
	}
}

func TestClient_garbledAnswer(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/billing/usage/2026/10", Status: http.StatusOK, Body: `{"items": [{"accountId": `})
	_, err := sophos.NewSource(c).Fetch(t.Context(), oct2026)
	want := "sophos: GET /partner/v1/billing/usage/2026/10: decoding response: unexpected end of JSON input"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	sim.ClearFaults()
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: http.StatusOK, Body: `{"items": {"id": "x"}}`})
	_, err = c.Tenants.ListAll(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "sophos: GET /partner/v1/tenants: decoding items: json: cannot unmarshal object") {
		t.Errorf("error = %v", err)
	}
}

func TestClient_partnerHeaderChecked(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	// The simulator refuses a partner id that is not the caller's.
	req, err := http.NewRequestWithContext(t.Context(), "GET", sim.APIURL()+"partner/v1/tenants", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Partner-ID", "00000000-0000-4000-8000-000000000001")
	_, err = c.Do(req, nil)
	if !errors.Is(err, psa.ErrUnauthorized) || !strings.Contains(err.Error(), "403 Forbidden") {
		t.Errorf("Do with a foreign partner id: %v, want 403", err)
	}
}

func TestSource_CheckAndNew(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t, sophostest.WithFixtureFile("../sophostest/testdata/fixture.json"))
	s, err := sophos.New(sophos.Config{ClientID: sim.ClientID(), ClientSecret: sim.ClientSecret(), AuthURL: sim.AuthURL(), APIURL: sim.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(t.Context()); err != nil {
		t.Errorf("Check: %v", err)
	}
	got, err := s.Describe(t.Context())
	if want := "partner 5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a with 3 tenants"; err != nil || got != want {
		t.Errorf("Describe = %q, %v; want %q", got, err, want)
	}
	s2, err := sophos.New(sophos.Config{ClientID: sim.ClientID(), ClientSecret: "nope", AuthURL: sim.AuthURL(), APIURL: sim.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Check(t.Context()); !errors.Is(err, psa.ErrUnauthorized) || strings.Contains(err.Error(), "nope") {
		t.Errorf("Check with a bad secret = %v", err)
	}
	if _, err := sophos.New(sophos.Config{}); err == nil {
		t.Error("New with no credentials succeeded")
	}
}

func TestConfig_String(t *testing.T) {
	t.Parallel()
	cfg := sophos.Config{ClientID: "id-1", ClientSecret: "top-secret", MaxRetries: 4}
	for _, got := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(got, "top-secret") || !strings.Contains(got, "[redacted]") {
			t.Errorf("formatted config %q shows the secret", got)
		}
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "sophos", cfg)
	if strings.Contains(b.String(), "top-secret") {
		t.Errorf("logged config %q shows the secret", b.String())
	}
}

func TestTenantsService_ListAllWithoutTotals(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	// An answer without pages.total: the client keeps asking until a short page.
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: 200, Times: 1,
		Body: `{"items": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}], "pages": {"current": 1, "size": 2, "maxSize": 100}}`})
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: 200, Times: 1,
		Body: `{"items": [{"id": "c", "name": "C"}], "pages": {"current": 2, "size": 2, "maxSize": 100}}`})
	ts, err := c.Tenants.ListAll(t.Context())
	if err != nil || len(ts) != 3 || ts[2].ID != "c" {
		t.Fatalf("ListAll = %v, %v", ts, err)
	}
	if n := sim.CountRequests("GET", "/partner/v1/tenants"); n != 2 {
		t.Errorf("requests = %d, want 2", n)
	}
}

func TestClient_retryAfterLimits(t *testing.T) {
	t.Parallel()
	sim, _, _ := setup(t)
	w := &waits{}
	c, err := sophos.NewClient(sophos.WithCredentials(sim.ClientID(), sim.ClientSecret()),
		sophos.WithAuthURL(sim.AuthURL()), sophos.WithBaseURL(sim.APIURL()),
		sophos.WithMaxRetries(2), sophos.WithSleep(w.sleep), sophos.WithMaxRetryAfter(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// A Retry-After longer than the client will wait ends the call at once.
	sim.AddFault(sophostest.Fault{Path: "/whoami/v1", Status: 429, RetryAfter: 2 * time.Minute, Times: 1})
	_, _, err = c.WhoAmI.Get(t.Context())
	if err == nil || err.Error() != "sophos: GET /whoami/v1: rate limited, retry after 2m0s: Too Many Requests" {
		t.Errorf("error = %v", err)
	}
	if len(w.get()) != 0 {
		t.Errorf("waited %v", w.get())
	}
	// A 503 without Retry-After is retried after a backoff.
	sim.AddFault(sophostest.Fault{Path: "/whoami/v1", Status: 503, Times: 1, Body: `{"error":"ServiceUnavailable","message":"busy"}`})
	if _, _, err := c.WhoAmI.Get(t.Context()); err != nil {
		t.Errorf("after a 503: %v", err)
	}
	if got := w.get(); len(got) != 1 || got[0] > 500*time.Millisecond || got[0] < 250*time.Millisecond {
		t.Errorf("waits = %v, want one default backoff in [250ms, 500ms]", got)
	}
}

// TestClient_retryAfterHuge: a Retry-After past what time.Duration holds
// gave an arbitrary wait in the message (or a negative one, retried after
// a backoff), and one past int64 read as none and was retried. Both are
// capped at a day now: longer than the client waits, so the call ends
// with the rate limit error at once.
func TestClient_retryAfterHuge(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"10000000000000", "99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"} {
		w := &waits{}
		srv := http.NewServeMux()
		srv.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "application/json")
			fmt.Fprint(rw, `{"access_token":"t","token_type":"bearer","expires_in":3600}`)
		})
		srv.HandleFunc("GET /whoami/v1", func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Retry-After", h)
			rw.WriteHeader(429)
		})
		ts := newTestServer(t, srv)
		c, err := sophos.NewClient(sophos.WithCredentials("id", "secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts),
			sophos.WithMaxRetries(2), sophos.WithSleep(w.sleep))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PartnerID(t.Context())
		if err == nil || !strings.Contains(err.Error(), "rate limited, retry after 24h0m0s") {
			t.Errorf("Retry-After %q: error = %v, want the rate limit, retry after 24h0m0s", h, err)
		}
		if len(w.get()) != 0 {
			t.Errorf("Retry-After %q: waited %v, want no retry", h, w.get())
		}
	}
}

func TestClient_retryAfterHTTPDate(t *testing.T) {
	t.Parallel()
	w := &waits{}
	now := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	calls := 0
	srv := http.NewServeMux()
	srv.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprint(rw, `{"access_token":"t","token_type":"bearer","expires_in":3600}`)
	})
	srv.HandleFunc("GET /whoami/v1", func(rw http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			rw.Header().Set("Retry-After", now.Add(20*time.Second).Format(http.TimeFormat))
			rw.WriteHeader(429)
			return
		}
		fmt.Fprint(rw, `{"id":"p","idType":"partner","apiHosts":{"global":"http://example.invalid"}}`)
	})
	ts := newTestServer(t, srv)
	c, err := sophos.NewClient(sophos.WithCredentials("id", "secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts),
		sophos.WithMaxRetries(1), sophos.WithSleep(w.sleep), sophos.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PartnerID(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := w.get(); len(got) != 1 || got[0] != 20*time.Second {
		t.Errorf("waits = %v, want [20s]", got)
	}
}

func TestClient_transportErrors(t *testing.T) {
	t.Parallel()
	sim := sophostest.NewServer()
	authURL, apiURL := sim.AuthURL(), sim.APIURL()
	sim.Close()
	w := &waits{}
	c, err := sophos.NewClient(sophos.WithCredentials("id", "very-secret"), sophos.WithAuthURL(authURL), sophos.WithBaseURL(apiURL),
		sophos.WithMaxRetries(2), sophos.WithSleep(w.sleep))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PartnerID(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "sophos: token request to 127.0.0.1:") || strings.Contains(err.Error(), "very-secret") {
		t.Errorf("error = %v", err)
	}
	if len(w.get()) != 2 {
		t.Errorf("waits = %v, want 2 retries", w.get())
	}
	// A cancelled context stops the wait between retries.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c2, _ := sophos.NewClient(sophos.WithCredentials("id", "s"), sophos.WithAuthURL(authURL), sophos.WithMaxRetries(3))
	if _, err := c2.PartnerID(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestClient_badTokenAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `<html>`, "sophos: POST token endpoint: decoding response: invalid character '<' looking for beginning of value"},
		{200, `{"token_type":"bearer"}`, "sophos: POST token endpoint: response has no access_token"},
		{200, `{"access_token":"x","token_type":"mac"}`, `sophos: POST token endpoint: token type "mac" is not bearer`},
		{503, "<html>\n<body>Service   Unavailable</body></html>", "sophos: token request refused: 503 Service Unavailable: <html> <body>Service Unavailable</body></html>"},
		{429, `{"errorCode":"too_many","message":"slow down"}`, "sophos: POST token endpoint: rate limited: slow down"},
	} {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
			rw.WriteHeader(tc.status)
			fmt.Fprint(rw, tc.body)
		})
		ts := newTestServer(t, mux)
		c, err := sophos.NewClient(sophos.WithCredentials("id", "secret"), sophos.WithAuthURL(ts+"/token"), sophos.WithBaseURL(ts))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PartnerID(t.Context()); err == nil || err.Error() != tc.want {
			t.Errorf("%d %s: error = %v, want %s", tc.status, tc.body, err, tc.want)
		}
	}
}

func TestClient_errorBodyNotJSON(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	long := strings.Repeat("x", 300)
	sim.AddFault(sophostest.Fault{Path: "/whoami/v1", Status: 418, Body: long})
	_, _, err := c.WhoAmI.Get(t.Context())
	var er *sophos.ErrorResponse
	if !errors.As(err, &er) || er.Body != long || err.Error() != "sophos: GET /whoami/v1: 418 I'm a teapot: "+strings.Repeat("x", 200)+"..." {
		t.Errorf("error = %v", err)
	}
	if errors.Is(err, psa.ErrNotFound) || errors.Is(err, psa.ErrUnauthorized) {
		t.Error("418 matches a sentinel")
	}
}

func TestClient_concurrentCallersShareToken(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	s := sophos.NewSource(c)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := s.Fetch(t.Context(), oct2026); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := sim.CountRequests("POST", "/api/v2/oauth2/token"); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
	if n := sim.CountRequests("GET", "/whoami/v1"); n != 1 {
		t.Errorf("whoami requests = %d, want 1", n)
	}
}

// TestSource_FetchTenantRemoved: the report lists the partner's tenants as
// the simulator serves them, so a tenant removed from the partner (deleted
// or moved to another partner) is no longer listed, while one with no
// usage still is.
func TestSource_FetchTenantRemoved(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t)
	const globex, initech = "2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	nov := source.Period{Year: 2026, Month: time.November}
	sim.SetUsage(nov, []sophostest.UsageItem{{AccountID: acme, ProductCode: "CIXA-MSP", BillableQuantity: 7}})
	sim.RemoveTenant(globex)
	rep, err := sophos.NewSource(c).Fetch(t.Context(), nov)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{acme: true, initech: true, globex: false} {
		if listed, known := rep.Listed(id); !known || listed != want {
			t.Errorf("Listed(%s) = %v, %v; want %v, true", id, listed, known, want)
		}
	}
}
