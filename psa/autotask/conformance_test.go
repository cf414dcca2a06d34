package autotask

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// routesFile is the list of routes the conformance test accepts: one
// "method /v1.0/path" key per line, lower-cased, with placeholders written
// {id} and {parentId}. It is derived from the route list harvested from
// Autotask's swagger collection (autotask-rest-v1.0-routes.tsv, columns
// method, path and operation) by TestRoutesFile; refresh it with
//
//	go test ./psa/autotask -run TestRoutesFile -update -spec /path/to/autotask-rest-v1.0-routes.tsv
const routesFile = "testdata/routes.txt"

//go:generate go test -run TestRoutesFile -update -spec ${AUTOTASK_ROUTES_TSV}

var (
	update = flag.Bool("update", false, "rewrite "+routesFile+" from the vendor's route list given with -spec")
	spec   = flag.String("spec", "", "the vendor's route list (autotask-rest-v1.0-routes.tsv) to check "+routesFile+" against")
)

// loadRoutes reads routesFile as a set of route keys.
func loadRoutes(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(routesFile)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, k := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		routes[k] = true
	}
	return routes
}

// routesFromSpec derives routesFile's content from the vendor's route list:
// a tab-separated file whose header starts with "method" and "path" and
// whose paths write placeholders as :name.
func routesFromSpec(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	placeholder := regexp.MustCompile(`:([A-Za-z]+)`)
	for line := 1; sc.Scan(); line++ {
		f := strings.Split(sc.Text(), "\t")
		if line == 1 {
			if len(f) < 2 || f[0] != "method" || f[1] != "path" {
				return nil, fmt.Errorf("%s:1: header is %q, want it to start with method and path", path, sc.Text())
			}
			continue
		}
		if len(f) < 2 {
			continue
		}
		p := placeholder.ReplaceAllString(f[1], "{$1}")
		keys[strings.ToLower(f[0]+" "+p)] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no routes", path)
	}
	sorted := slices.Sorted(maps.Keys(keys))
	return []byte(strings.Join(sorted, "\n") + "\n"), nil
}

// TestRoutesFile checks that routesFile is what the vendor's route list
// given with -spec yields, and rewrites it with -update. Without -spec it
// checks that routesFile is well-formed.
func TestRoutesFile(t *testing.T) {
	if *spec == "" {
		routes := loadRoutes(t)
		if len(routes) < 100 || !routes["get /v1.0/companies/{id}"] {
			t.Fatalf("%s holds %d routes and lacks get /v1.0/companies/{id}; regenerate it with -update -spec", routesFile, len(routes))
		}
		return
	}
	want, err := routesFromSpec(*spec)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(routesFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(routesFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s is stale (run go test -run TestRoutesFile -update -spec %s) (-spec +file):\n%s", routesFile, *spec, diff)
	}
}

// routeKey turns a request into a route key: the path after the zone root,
// numeric segments replaced by {id} (last) or {parentId} (inner).
func routeKey(method string, u *url.URL) string {
	p := u.Path
	if i := strings.Index(strings.ToLower(p), "/atservicesrest/"); i >= 0 {
		p = p[i+len("/atservicesrest"):]
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if isID(s) {
			if i == len(segs)-1 {
				segs[i] = "{id}"
			} else {
				segs[i] = "{parentId}"
			}
		}
	}
	return strings.ToLower(method + " " + strings.Join(segs, "/"))
}

// recordingTransport records every request the client sends.
type recordingTransport struct {
	mu   sync.Mutex
	keys []string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.keys = append(rt.keys, routeKey(r.Method, r.URL))
	rt.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (rt *recordingTransport) take() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	k := rt.keys
	rt.keys = nil
	return k
}

// TestConformance_routes calls every method of every service (the test
// fails when a service gains a method that is not in the table below) and
// checks that every request goes to a method and path in the route list.
// The zone lookup uses the default lookup URL's path. Following a
// nextPageUrl (query/next) is not in the list because that URL comes from
// the server; the client only follows it on the zone's origin.
func TestConformance_routes(t *testing.T) {
	t.Parallel()
	routes := loadRoutes(t)

	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One body that satisfies every decoder.
		fmt.Fprintf(w, `{"item":{"id":1,"units":0},"items":[],"itemId":1,"queryCount":0,
			"fields":[{"name":"f","isPickList":true,"picklistValues":[{"value":"1","label":"L","isActive":true}]}],
			"url":%q,"externalRequestThreshold":10000,"requestThresholdTimeframe":60}`, srv.URL+"/ATServicesRest/")
	}))
	t.Cleanup(srv.Close)
	lookup, _ := url.Parse(DefaultZoneLookupURL)
	rt := &recordingTransport{}
	c, err := NewClient(
		WithCredentials(testUser, testSecret, testCode),
		WithZoneLookupURL(srv.URL+lookup.Path),
		WithHTTPClient(&http.Client{Transport: rt, Timeout: 10 * time.Second}),
		WithImpersonation(1),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	q := NewQuery(All())
	ts := Timestamp{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	calls := map[string]func(context.Context) error{
		"Client.BaseURL":              func(ctx context.Context) error { _, err := c.BaseURL(ctx); return err },
		"Client.ThresholdInformation": func(ctx context.Context) error { _, _, err := c.ThresholdInformation(ctx); return err },

		"Companies.Get":   func(ctx context.Context) error { _, _, err := c.Companies.Get(ctx, 1); return err },
		"Companies.List":  func(ctx context.Context) error { _, _, err := c.Companies.List(ctx, q); return err },
		"Companies.Count": func(ctx context.Context) error { _, _, err := c.Companies.Count(ctx, q); return err },

		"Contracts.Get":   func(ctx context.Context) error { _, _, err := c.Contracts.Get(ctx, 1); return err },
		"Contracts.List":  func(ctx context.Context) error { _, _, err := c.Contracts.List(ctx, q); return err },
		"Contracts.Count": func(ctx context.Context) error { _, _, err := c.Contracts.Count(ctx, q); return err },

		"Services.Get":   func(ctx context.Context) error { _, _, err := c.Services.Get(ctx, 1); return err },
		"Services.List":  func(ctx context.Context) error { _, _, err := c.Services.List(ctx, q); return err },
		"Services.Count": func(ctx context.Context) error { _, _, err := c.Services.Count(ctx, q); return err },
		"Services.Create": func(ctx context.Context) error {
			_, _, err := c.Services.Create(ctx, &CreateServiceRequest{Name: "x"})
			return err
		},
		"Services.Update": func(ctx context.Context) error {
			_, _, err := c.Services.Update(ctx, &UpdateServiceRequest{ID: 1})
			return err
		},

		"ContractServices.Get":   func(ctx context.Context) error { _, _, err := c.ContractServices.Get(ctx, 1); return err },
		"ContractServices.List":  func(ctx context.Context) error { _, _, err := c.ContractServices.List(ctx, q); return err },
		"ContractServices.Count": func(ctx context.Context) error { _, _, err := c.ContractServices.Count(ctx, q); return err },
		"ContractServices.ListByContract": func(ctx context.Context) error {
			_, _, err := c.ContractServices.ListByContract(ctx, 12)
			return err
		},
		"ContractServices.Create": func(ctx context.Context) error {
			_, _, err := c.ContractServices.Create(ctx, &CreateContractServiceRequest{ContractID: 12, ServiceID: 1})
			return err
		},
		"ContractServices.Update": func(ctx context.Context) error {
			_, _, err := c.ContractServices.Update(ctx, 12, &UpdateContractServiceRequest{ID: 1})
			return err
		},

		"ContractServiceUnits.Get":   func(ctx context.Context) error { _, _, err := c.ContractServiceUnits.Get(ctx, 1); return err },
		"ContractServiceUnits.List":  func(ctx context.Context) error { _, _, err := c.ContractServiceUnits.List(ctx, q); return err },
		"ContractServiceUnits.Count": func(ctx context.Context) error { _, _, err := c.ContractServiceUnits.Count(ctx, q); return err },
		"ContractServiceUnits.ListByContract": func(ctx context.Context) error {
			_, _, err := c.ContractServiceUnits.ListByContract(ctx, 12)
			return err
		},

		"ContractServiceAdjustments.Create": func(ctx context.Context) error {
			_, _, err := c.ContractServiceAdjustments.Create(ctx, &CreateContractServiceAdjustmentRequest{ContractID: 12, ServiceID: 1, UnitChange: 1, EffectiveDate: ts})
			return err
		},
		"ContractServiceAdjustments.CreateForContract": func(ctx context.Context) error {
			_, _, err := c.ContractServiceAdjustments.CreateForContract(ctx, &CreateContractServiceAdjustmentRequest{ContractID: 12, ServiceID: 1, UnitChange: 1, EffectiveDate: ts})
			return err
		},

		"BillingCodes.Get":   func(ctx context.Context) error { _, _, err := c.BillingCodes.Get(ctx, 1); return err },
		"BillingCodes.List":  func(ctx context.Context) error { _, _, err := c.BillingCodes.List(ctx, q); return err },
		"BillingCodes.Count": func(ctx context.Context) error { _, _, err := c.BillingCodes.Count(ctx, q); return err },

		"Tickets.Get":  func(ctx context.Context) error { _, _, err := c.Tickets.Get(ctx, 1); return err },
		"Tickets.List": func(ctx context.Context) error { _, _, err := c.Tickets.List(ctx, q); return err },
		"Tickets.Create": func(ctx context.Context) error {
			_, _, err := c.Tickets.Create(ctx, &CreateTicketRequest{CompanyID: 1, Title: "x", Status: 1, Priority: 1})
			return err
		},
		"Tickets.Update": func(ctx context.Context) error {
			_, _, err := c.Tickets.Update(ctx, &UpdateTicketRequest{ID: 1, Status: Ptr[int64](5)})
			return err
		},
		"Tickets.CreateNote": func(ctx context.Context) error {
			_, _, err := c.Tickets.CreateNote(ctx, &CreateTicketNoteRequest{TicketID: 12, Description: "x", NoteType: 1, Publish: 1})
			return err
		},
		"Tickets.ListNotes": func(ctx context.Context) error { _, _, err := c.Tickets.ListNotes(ctx, 12); return err },

		// The picklist helpers all go through Fields, which is cached per
		// entity, so each uses its own entity here.
		"EntityInformation.Fields": func(ctx context.Context) error {
			var err error
			for _, e := range []string{"Companies", "Contracts", "Services", "ContractServices", "ContractServiceUnits", "ContractServiceAdjustments", "BillingCodes"} {
				if _, _, ferr := c.EntityInformation.Fields(ctx, e); ferr != nil {
					err = ferr
				}
			}
			return err
		},
		"EntityInformation.Picklist": func(ctx context.Context) error {
			_, err := c.EntityInformation.Picklist(ctx, "Contracts", "f")
			return err
		},
		"EntityInformation.PicklistValue": func(ctx context.Context) error {
			_, err := c.EntityInformation.PicklistValue(ctx, "Services", "f", "L")
			return err
		},
		"EntityInformation.PicklistLabel": func(ctx context.Context) error {
			_, err := c.EntityInformation.PicklistLabel(ctx, "BillingCodes", "f", 1)
			return err
		},
	}

	// Every method of every service must be in the table.
	cv := reflect.ValueOf(c).Elem()
	for i := range cv.NumField() {
		f := cv.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.Pointer || !strings.HasSuffix(f.Type.Elem().Name(), "Service") {
			continue
		}
		for j := range f.Type.NumMethod() {
			name := f.Name + "." + f.Type.Method(j).Name
			if _, ok := calls[name]; !ok {
				t.Errorf("%s is not covered by the conformance test", name)
			}
		}
	}
	// Of the Client's own methods, these are the ones that send requests.
	for _, name := range []string{"BaseURL", "ThresholdInformation"} {
		if _, ok := calls["Client."+name]; !ok {
			t.Errorf("Client.%s is not covered", name)
		}
	}

	names := make([]string, 0, len(calls))
	for name := range calls {
		names = append(names, name)
	}
	slices.Sort(names)
	seen := map[string]bool{}
	for _, name := range names {
		if err := calls[name](ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		keys := rt.take()
		if len(keys) == 0 && name != "Client.BaseURL" && !strings.HasPrefix(name, "EntityInformation.Picklist") {
			t.Errorf("%s sent no request", name)
		}
		for _, k := range keys {
			seen[k] = true
			if k == "get /v1.0/zoneinformation" {
				continue // checked below
			}
			if !routes[k] {
				t.Errorf("%s sent %q, which is not in %s", name, k, routesFile)
			}
		}
	}
	if !seen["get /v1.0/zoneinformation"] {
		t.Error("the zone lookup was not exercised")
	} else if !routes["get /v1.0/zoneinformation"] {
		t.Errorf("the zone lookup path is not in %s", routesFile)
	}
	t.Logf("%d distinct routes exercised", len(seen))
}
