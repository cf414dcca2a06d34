package sophostest_test

import (
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
)

// goldenRequests holds, for each request of the vendor's collection that
// psa-sync sends, its method, path, headers, query parameters and form
// fields, extracted from the Postman collection by TestPostmanRequestsGolden;
// refresh it with
//
//	go test ./daemon/source/sophostest -run TestPostmanRequestsGolden -update -spec /path/to/sophos-central-partner.postman.json
const goldenRequests = "testdata/postman-requests.json"

// vendorRequest is one request of the collection as goldenRequests keeps
// it. Path is the URL path with Postman's :name placeholders.
type vendorRequest struct {
	Method string   `json:"method"`
	Path   string   `json:"path"`
	Header []string `json:"header,omitempty"`
	Query  []string `json:"query,omitempty"`
	Form   []string `json:"form,omitempty"`
}

// sentRequests names the collection's requests the client sends.
var sentRequests = []string{"Authenticate", "Who am I?", "Enumerate tenants", "Get tenant details", "Get usage report", "Query alerts", "Get alert details"}

// requestsFromSpec extracts sentRequests from the collection at path.
func requestsFromSpec(t *testing.T, path string) map[string]vendorRequest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		Name    string `json:"name"`
		Item    []item `json:"item"`
		Request struct {
			Method string `json:"method"`
			Header []struct {
				Key string `json:"key"`
			} `json:"header"`
			URL struct {
				Path  []string `json:"path"`
				Query []struct {
					Key string `json:"key"`
				} `json:"query"`
			} `json:"url"`
			Body struct {
				URLEncoded []struct {
					Key string `json:"key"`
				} `json:"urlencoded"`
			} `json:"body"`
		} `json:"request"`
	}
	var coll struct {
		Item []item `json:"item"`
	}
	if err := json.Unmarshal(data, &coll); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	out := map[string]vendorRequest{}
	var walk func([]item)
	walk = func(items []item) {
		for _, it := range items {
			walk(it.Item)
			if len(it.Item) > 0 || !slices.Contains(sentRequests, it.Name) { // a folder
				continue
			}
			r := vendorRequest{Method: it.Request.Method, Path: "/" + strings.Join(it.Request.URL.Path, "/")}
			for _, h := range it.Request.Header {
				r.Header = append(r.Header, h.Key)
			}
			for _, q := range it.Request.URL.Query {
				r.Query = append(r.Query, q.Key)
			}
			for _, f := range it.Request.Body.URLEncoded {
				r.Form = append(r.Form, f.Key)
			}
			sort.Strings(r.Header)
			sort.Strings(r.Query)
			sort.Strings(r.Form)
			out[it.Name] = r
		}
	}
	walk(coll.Item)
	for _, name := range sentRequests {
		if _, ok := out[name]; !ok {
			t.Fatalf("the Postman collection has no request %q", name)
		}
	}
	return out
}

func loadGoldenRequests(t *testing.T) map[string]vendorRequest {
	t.Helper()
	data, err := os.ReadFile(goldenRequests)
	if err != nil {
		t.Fatalf("%v (run go test -run TestPostmanRequestsGolden -update -spec FILE)", err)
	}
	var out map[string]vendorRequest
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPostmanRequestsGolden checks that goldenRequests is what the
// collection given with -spec yields, and rewrites it with -update.
// Without -spec it checks that goldenRequests holds every sent request.
func TestPostmanRequestsGolden(t *testing.T) {
	if *spec == "" {
		golden := loadGoldenRequests(t)
		for _, name := range sentRequests {
			if _, ok := golden[name]; !ok {
				t.Errorf("%s has no request %q (regenerate it with -update -spec)", goldenRequests, name)
			}
		}
		return
	}
	reqs := requestsFromSpec(t, *spec)
	if *update {
		data, err := json.MarshalIndent(reqs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenRequests, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(reqs, loadGoldenRequests(t)); diff != "" {
		t.Errorf("%s is stale (run go test -run TestPostmanRequestsGolden -update -spec FILE) (-spec +golden):\n%s", goldenRequests, diff)
	}
}

// pathPattern turns a collection path with :name placeholders into a
// regular expression.
func pathPattern(p string) *regexp.Regexp {
	return regexp.MustCompile("^" + regexp.MustCompile(`:[A-Za-z]+`).ReplaceAllString(regexp.QuoteMeta(p), `[^/]+`) + "$")
}

// TestClientRequestsConformance runs what psa-sync reads from Sophos (the
// usage source's Fetch and Describe, a tenant, a tenant's alerts over two
// pages and one alert) against the simulator and checks every request it
// sent against the vendor's collection: a request the collection has, with
// only query parameters and form fields the collection lists, every header
// it names (X-Partner-ID on partner calls, X-Tenant-ID on tenant calls)
// and not the other id header, and a bearer token on every API call.
func TestClientRequestsConformance(t *testing.T) {
	t.Parallel()
	sim := sophostest.Start(t, sophostest.WithFixtureFile("testdata/fixture.json"))
	a1 := sim.AddAlert(acmeTenant, sophostest.Alert{Description: "one"})
	sim.AddAlert(acmeTenant, sophostest.Alert{Description: "two"})
	src, err := sophos.New(sophos.Config{ClientID: sim.ClientID(), ClientSecret: sim.ClientSecret(),
		AuthURL: sim.AuthURL(), APIURL: sim.APIURL(), PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := src.Fetch(ctx, source.Period{Year: 2026, Month: time.October}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	c := src.Client()
	if _, _, err := c.Tenants.Get(ctx, acmeTenant); err != nil {
		t.Fatal(err)
	}
	if alerts, err := c.Alerts.ListAll(ctx, acmeTenant, "", &sophos.AlertListOptions{PageSize: 1, Severity: []string{"high", "medium"}}); err != nil || len(alerts) != 2 {
		t.Fatalf("Alerts.ListAll = %d alerts, %v; want 2", len(alerts), err)
	}
	if _, _, err := c.Alerts.Get(ctx, acmeTenant, "", a1.ID); err != nil {
		t.Fatal(err)
	}

	vendor := loadGoldenRequests(t)
	seen := map[string]bool{}
	for _, r := range sim.Requests() {
		what := r.Method + " " + r.Path
		var name string
		for _, n := range sentRequests {
			if v := vendor[n]; v.Method == r.Method && pathPattern(v.Path).MatchString(r.Path) {
				name = n
			}
		}
		if name == "" {
			t.Errorf("%s is no request of the vendor's collection", what)
			continue
		}
		seen[name] = true
		v := vendor[name]
		q, err := url.ParseQuery(r.RawQuery)
		if err != nil {
			t.Errorf("%s: query %q: %v", what, r.RawQuery, err)
		}
		for k := range q {
			if !slices.Contains(v.Query, k) {
				t.Errorf("%s: query parameter %q is not one of the collection's %v", what, k, v.Query)
			}
		}
		for _, h := range v.Header {
			if r.Header.Get(h) == "" {
				t.Errorf("%s: no %s header", what, h)
			}
		}
		for _, h := range []string{"X-Partner-ID", "X-Tenant-ID"} {
			if r.Header.Get(h) != "" && !slices.Contains(v.Header, h) {
				t.Errorf("%s: sends %s, which the collection's %q does not", what, h, name)
			}
		}
		if name == "Authenticate" {
			if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
				t.Errorf("%s: Content-Type %q, want a form", what, ct)
			}
			form, err := url.ParseQuery(string(r.Body))
			var keys []string
			for k := range form {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if err != nil || !slices.Equal(keys, v.Form) {
				t.Errorf("%s: form fields %v (%v), want the collection's %v", what, keys, err, v.Form)
			}
			continue
		}
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			t.Errorf("%s: no bearer token", what)
		}
	}
	for _, n := range sentRequests {
		if !seen[n] {
			t.Errorf("the client sent no %q request; the test no longer covers it", n)
		}
	}
}
