package sophostest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
)

// alertsCollection is the "Common API / Alerts" folder of the vendor's
// Postman collection (sophos-central-partner.postman.json), kept verbatim.
const alertsCollection = "testdata/postman-alerts.json"

const acmeTenant = "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b"

// alertsRequest is the part of a collection request the test reads.
type alertsRequest struct {
	Name    string          `json:"name"`
	Item    []alertsRequest `json:"item"`
	Request struct {
		Method string `json:"method"`
		Header []struct {
			Key string `json:"key"`
		} `json:"header"`
		URL struct {
			Query []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"query"`
		} `json:"url"`
	} `json:"request"`
	Response []struct {
		Code int    `json:"code"`
		Body string `json:"body"`
	} `json:"response"`
}

func loadAlertsCollection(t *testing.T) map[string]alertsRequest {
	t.Helper()
	data, err := os.ReadFile(alertsCollection)
	if err != nil {
		t.Fatal(err)
	}
	var coll struct {
		Item []alertsRequest `json:"item"`
	}
	if err := json.Unmarshal(data, &coll); err != nil {
		t.Fatal(err)
	}
	out := map[string]alertsRequest{}
	var walk func([]alertsRequest)
	walk = func(items []alertsRequest) {
		for _, it := range items {
			walk(it.Item)
			out[it.Name] = it
		}
	}
	walk(coll.Item)
	return out
}

func exampleShape(t *testing.T, it alertsRequest, code int) any {
	t.Helper()
	for _, r := range it.Response {
		if r.Code == code {
			var v any
			if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
				t.Fatalf("%s %d: %v", it.Name, code, err)
			}
			return shape(v)
		}
	}
	t.Fatalf("the collection has no %d example for %q", code, it.Name)
	return nil
}

// getTenant calls a tenant-level endpoint with X-Tenant-ID.
func getTenant(t *testing.T, sim *sophostest.Server, token, tenant, path string) (int, any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, sim.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if tenant != "" {
		req.Header.Set("X-Tenant-ID", tenant)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return resp.StatusCode, shape(v)
}

// TestAlertsConformance compares the simulator's alert answers with the
// vendor's examples (every field, with the same JSON kind), and checks
// that it accepts every query parameter the vendor's request lists.
func TestAlertsConformance(t *testing.T) {
	t.Parallel()
	coll := loadAlertsCollection(t)
	sim := sophostest.Start(t, sophostest.WithFixtureFile("testdata/fixture.json"))
	tok := token(t, sim)
	for range 3 {
		sim.AddAlert(acmeTenant, sophostest.Alert{
			AllowedActions: []string{"acknowledge", "cleanPua"}, Category: "updating", Severity: "medium", Product: "endpoint",
			Description: "John-PC is out of date.", Type: "Event::Endpoint::OutOfDate", RaisedAt: "2026-11-12T15:04:53.780",
			ManagedAgent: &sophostest.ManagedAgent{ID: "bb90527d-73a8-4e6e-85c6-20c2e0c5bc6f", Type: "computer"},
			Person:       &sophostest.IDRef{ID: "17dd896f-ee9f-4f7d-a2a2-6a8c0b48ff15"},
		})
	}
	first := sim.Alerts(acmeTenant)[0].ID

	query := coll["Query alerts"]
	if query.Request.Method != http.MethodGet || len(query.Request.Header) == 0 || query.Request.Header[0].Key != "X-Tenant-ID" {
		t.Fatalf("unexpected vendor request %+v", query.Request)
	}
	checks := []struct {
		what string
		want any
		path string
	}{
		{"Query alerts 200", exampleShape(t, query, 200), "/common/v1/alerts?pageSize=2&pageTotal=true"},
		{"Get alert details 200", exampleShape(t, coll["Get alert details"], 200), "/common/v1/alerts/" + first},
	}
	for _, c := range checks {
		status, got := getTenant(t, sim, tok, acmeTenant, c.path)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d", c.what, status)
		}
		for _, m := range missing("", c.want, got) {
			t.Errorf("%s: %s", c.what, m)
		}
	}
	sim.AddFault(sophostest.Fault{Path: "/common/v1/alerts", Status: 500, Times: 1})
	status, got := getTenant(t, sim, tok, acmeTenant, "/common/v1/alerts")
	if status != 500 {
		t.Fatalf("faulted list: status %d", status)
	}
	for _, m := range missing("", exampleShape(t, query, 500), got) {
		t.Errorf("Query alerts 500: %s", m)
	}

	// Every query parameter of the vendor's request is accepted with the
	// example's value (empty ones left out, as a client would).
	q := url.Values{}
	for _, p := range query.Request.URL.Query {
		if p.Value != "" {
			q.Set(p.Key, p.Value)
		}
	}
	if status, _ := getTenant(t, sim, tok, acmeTenant, "/common/v1/alerts?"+q.Encode()); status != http.StatusOK {
		t.Errorf("the vendor's example query %s: status %d", q.Encode(), status)
	}
	for _, tc := range []struct {
		what, tenant, path string
		want               int
	}{
		{"unknown parameter", acmeTenant, "/common/v1/alerts?tenantId=x", http.StatusBadRequest},
		{"no X-Tenant-ID", "", "/common/v1/alerts", http.StatusBadRequest},
		{"resolved alert", acmeTenant, "/common/v1/alerts/00000000-0000-4000-8000-000000000000", http.StatusNotFound},
		{"page size over maxSize", acmeTenant, "/common/v1/alerts?pageSize=1001", http.StatusBadRequest},
	} {
		if status, _ := getTenant(t, sim, tok, tc.tenant, tc.path); status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.what, status, tc.want)
		}
	}
}

func TestFixture_alerts(t *testing.T) {
	t.Parallel()
	good := `{"tenants":[{"id":"` + acmeTenant + `","name":"Acme"}],
		"alerts":{"` + acmeTenant + `":[{"id":"a1","severity":"high","description":"Malware on PC-1"}]}}`
	f, err := sophostest.ParseFixture([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	sim := sophostest.Start(t, sophostest.WithFixture(f))
	if got := sim.Alerts(acmeTenant); len(got) != 1 || got[0].ID != "a1" {
		t.Fatalf("Alerts = %+v", got)
	}
	if got := sim.Fixture().Alerts[acmeTenant]; len(got) != 1 {
		t.Errorf("Fixture().Alerts = %+v, want the alert back", got)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"alerts":{"` + acmeTenant + `":[{"id":"a1"}]}}`, "tenant " + acmeTenant + " is not in tenants"},
		{`{"tenants":[{"id":"t","name":"T"}],"alerts":{"t":[{"id":"a1"},{"id":"a1"}]}}`, "id a1 appears twice"},
		{`{"tenants":[{"id":"t","name":"T"}],"alerts":{"t":[{"id":"a1","severity":"urgent"}]}}`, "severity \"urgent\" is not high, medium or low"},
	} {
		if _, err := sophostest.ParseFixture([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %q", tc.body, err, tc.want)
		}
	}
}
