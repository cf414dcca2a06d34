package sophostest_test

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
)

// goldenShapes holds the shapes of the vendor's example responses that the
// simulator must match, extracted from Sophos Central's Partner API Postman
// collection by TestPostmanShapesGolden; refresh it with
//
//	go test ./daemon/source/sophostest -run TestPostmanShapesGolden -update -spec /path/to/sophos-central-partner.postman.json
const goldenShapes = "testdata/postman-shapes.json"

//go:generate go test -run TestPostmanShapesGolden -update -spec ${SOPHOS_POSTMAN_JSON}

var (
	update = flag.Bool("update", false, "rewrite "+goldenShapes+" from the vendor's Postman collection given with -spec")
	spec   = flag.String("spec", "", "the vendor's Postman collection (sophos-central-partner.postman.json) to check "+goldenShapes+" against")
)

// postmanItem is the part of a Postman v2.1 collection item we read.
type postmanItem struct {
	Name     string        `json:"name"`
	Item     []postmanItem `json:"item"`
	Response []struct {
		Code int    `json:"code"`
		Body string `json:"body"`
	} `json:"response"`
}

// shape reduces a JSON value to its structure: objects keep their keys with
// the shapes of their values, arrays the shape of their first element, and
// scalars become "string", "number", "bool" or "null".
func shape(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range v {
			m[k] = shape(e)
		}
		return m
	case []any:
		if len(v) == 0 {
			return []any{}
		}
		return []any{shape(v[0])}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	default:
		return "null"
	}
}

// wanted lists the example responses the simulator must match, by Postman
// request name and status.
var wanted = map[string][]int{
	"Who am I?":          {200},
	"Enumerate tenants":  {200, 500},
	"Get tenant details": {200},
	"Get usage report":   {200, 404, 500},
}

func shapeKey(name string, code int) string {
	return name + " " + http.StatusText(code)
}

// shapesFromSpec extracts the wanted example responses' shapes.
func shapesFromSpec(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var coll struct {
		Item []postmanItem `json:"item"`
	}
	if err := json.Unmarshal(data, &coll); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	out := map[string]any{}
	var walk func([]postmanItem)
	walk = func(items []postmanItem) {
		for _, it := range items {
			walk(it.Item)
			codes, ok := wanted[it.Name]
			if !ok {
				continue
			}
			for _, r := range it.Response {
				for _, c := range codes {
					if r.Code != c {
						continue
					}
					var v any
					if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
						t.Fatalf("%s %d: example body: %v", it.Name, c, err)
					}
					out[shapeKey(it.Name, c)] = shape(v)
				}
			}
		}
	}
	walk(coll.Item)
	for name, codes := range wanted {
		for _, c := range codes {
			if _, ok := out[shapeKey(name, c)]; !ok {
				t.Fatalf("the Postman collection has no %d example for %q", c, name)
			}
		}
	}
	return out
}

// vendorShapes returns the vendor's example shapes from the golden file.
func vendorShapes(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(goldenShapes)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPostmanShapesGolden checks that goldenShapes is what the collection
// given with -spec yields, and rewrites it with -update. Without -spec it
// checks that goldenShapes holds every wanted example.
func TestPostmanShapesGolden(t *testing.T) {
	if *spec == "" {
		shapes := vendorShapes(t)
		for name, codes := range wanted {
			for _, c := range codes {
				if _, ok := shapes[shapeKey(name, c)]; !ok {
					t.Errorf("%s has no %d example for %q (regenerate it with -update -spec)", goldenShapes, c, name)
				}
			}
		}
		return
	}
	shapes := shapesFromSpec(t, *spec)
	if *update {
		data, err := json.MarshalIndent(shapes, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenShapes, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(goldenShapes)
	if err != nil {
		t.Fatalf("%v (run go test -run TestPostmanShapesGolden -update -spec FILE)", err)
	}
	var golden map[string]any
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(shapes, golden); diff != "" {
		t.Errorf("%s is stale (run go test -run TestPostmanShapesGolden -update -spec FILE) (-spec +golden):\n%s", goldenShapes, diff)
	}
}

// missing lists the paths present in want's shape but absent from, or of
// another kind in, got's shape.
func missing(prefix string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{prefix + ": want an object"}
		}
		var out []string
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				out = append(out, prefix+"."+k+": missing")
				continue
			}
			out = append(out, missing(prefix+"."+k, w[k], gv)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{prefix + ": want an array"}
		}
		if len(w) == 0 {
			return nil
		}
		if len(g) == 0 {
			return []string{prefix + ": empty array, cannot compare items"}
		}
		return missing(prefix+"[0]", w[0], g[0])
	default:
		if w != got {
			return []string{prefix + ": want a " + toString(w) + ", got " + toString(got)}
		}
		return nil
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return "composite"
}

// get calls the simulator with a fresh token and returns the body's shape.
func get(t *testing.T, sim *sophostest.Server, token, path string, wantStatus int) any {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", sim.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Partner-ID", sim.PartnerID())
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d: %s", path, resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return shape(v)
}

// TestConformance checks that every field of the vendor's example responses
// is in the simulator's responses, with the same JSON kind.
func TestConformance(t *testing.T) {
	t.Parallel()
	vendor := vendorShapes(t)
	sim := sophostest.Start(t, sophostest.WithFixtureFile("testdata/fixture.json"))
	tok := token(t, sim)
	// The vendor's whoami example is a tenant's, which has a data region.
	tenantSim := sophostest.Start(t, sophostest.WithIDType("tenant"))
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: 500, Times: 1})
	sim.AddFault(sophostest.Fault{Path: "/partner/v1/billing/usage/2026/9", Status: 500, Times: 1})

	got := map[string]any{
		shapeKey("Who am I?", 200):          get(t, tenantSim, token(t, tenantSim), "/whoami/v1", 200),
		shapeKey("Enumerate tenants", 500):  get(t, sim, tok, "/partner/v1/tenants", 500),
		shapeKey("Enumerate tenants", 200):  get(t, sim, tok, "/partner/v1/tenants?page=1&pageSize=2&pageTotal=true", 200),
		shapeKey("Get tenant details", 200): get(t, sim, tok, "/partner/v1/tenants/718b6047-2fbc-b4f4-1a43-45ee42bf5d3b", 200),
		shapeKey("Get usage report", 200):   get(t, sim, tok, "/partner/v1/billing/usage/2026/10?pageSize=2&pageTotal=true", 200),
		shapeKey("Get usage report", 404):   get(t, sim, tok, "/partner/v1/billing/usage/2026/11", 404),
		shapeKey("Get usage report", 500):   get(t, sim, tok, "/partner/v1/billing/usage/2026/9", 500),
	}
	for k, want := range vendor {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: not exercised", k)
			continue
		}
		for _, m := range missing("", want, g) {
			t.Errorf("%s: %s", k, m)
		}
	}
	if len(vendor) != len(got) {
		t.Errorf("compared %d vendor examples, exercised %d", len(vendor), len(got))
	}
}

// token gets an access token from the simulator's token endpoint.
func token(t *testing.T, sim *sophostest.Server) string {
	t.Helper()
	resp, err := http.PostForm(sim.AuthURL(), map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {sim.ClientID()},
		"client_secret": {sim.ClientSecret()}, "scope": {"token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr sophostest.TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	if tr.AccessToken == "" || tr.TokenType != "bearer" || tr.ExpiresIn != 3600 || tr.RefreshToken == "" {
		t.Fatalf("token response %+v", tr)
	}
	return tr.AccessToken
}

func TestMissing(t *testing.T) {
	t.Parallel()
	want := map[string]any{"items": []any{map[string]any{"a": "string", "b": "number"}}, "pages": map[string]any{"nextKey": "string"}}
	got := map[string]any{"items": []any{map[string]any{"a": "number"}}, "pages": map[string]any{}}
	diff := missing("", want, got)
	wantDiff := []string{".items[0].a: want a string, got number", ".items[0].b: missing", ".pages.nextKey: missing"}
	if !cmp.Equal(diff, wantDiff) {
		t.Errorf("missing = %q, want %q", diff, wantDiff)
	}
}
