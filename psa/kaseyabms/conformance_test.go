package kaseyabms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// specFile is the part of the vendor's OpenAPI document (Kaseya BMS API v2,
// 1.4 MB as published) that the conformance test validates against: the
// paths in clientPaths and the components they reference, as published.
// TestSpecFile derives it from the vendor's document; refresh it with
//
//	go test ./psa/kaseyabms -run TestSpecFile -update -spec /path/to/kaseya-bms-v2-openapi.json
const specFile = "testdata/kaseya-bms-v2-openapi.client.json"

//go:generate go test -run TestSpecFile -update -spec ${KASEYA_BMS_OPENAPI_JSON}

var (
	update = flag.Bool("update", false, "rewrite "+specFile+" from the vendor's OpenAPI document given with -spec")
	spec   = flag.String("spec", "", "the vendor's OpenAPI document (kaseya-bms-v2-openapi.json) to check "+specFile+" against")
)

// The document is loaded once per test binary.
var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// specServer is the server the document declares; recorded requests are
// re-addressed to it before routing.
const specServer = "https://api.bms.kaseya.com"

func loadSpec(t *testing.T) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromFile(specFile)
		if err != nil {
			specErr = fmt.Errorf("loading %s: %w", specFile, err)
			return
		}
		specRouter, specErr = legacy.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	return specRouter
}

// clientSpec derives specFile's content from the vendor's document. The
// document as published is not valid OpenAPI 3.0 (for example
// PUT /v2/admin/companysettings declares no response, and
// GET /v2/admin/finance/chartofaccounts/lookup/{parentAccountCodeId}
// declares query parameters as path parameters), and the router validates
// the whole document. Only the paths the client uses are kept, with every
// schema they reference directly or through other schemas; they are valid
// as published.
func clientSpec(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	paths, _ := doc["paths"].(map[string]any)
	components, _ := doc["components"].(map[string]any)
	kept := map[string]any{}
	for p := range clientPaths {
		item, ok := paths[p]
		if !ok {
			return nil, fmt.Errorf("%s has no path %s", path, p)
		}
		kept[p] = item
	}
	// Follow "#/components/<kind>/<name>" references until no new one
	// turns up.
	keptComponents := map[string]map[string]any{}
	var walk func(v any) error
	walk = func(v any) error {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				kind, name, ok := strings.Cut(strings.TrimPrefix(ref, "#/components/"), "/")
				if !ok || !strings.HasPrefix(ref, "#/components/") {
					return fmt.Errorf("%s: reference %q is not to #/components/<kind>/<name>", path, ref)
				}
				if _, seen := keptComponents[kind][name]; !seen {
					byKind, _ := components[kind].(map[string]any)
					target, ok := byKind[name]
					if !ok {
						return fmt.Errorf("%s: reference %q has no target", path, ref)
					}
					if keptComponents[kind] == nil {
						keptComponents[kind] = map[string]any{}
					}
					keptComponents[kind][name] = target
					if err := walk(target); err != nil {
						return err
					}
				}
			}
			for _, e := range v {
				if err := walk(e); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range v {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(kept); err != nil {
		return nil, err
	}
	// Security schemes are named by security requirements, not referenced.
	if schemes, ok := components["securitySchemes"].(map[string]any); ok {
		keptComponents["securitySchemes"] = schemes
	}
	doc["paths"] = kept
	doc["components"] = keptComponents
	out, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// TestSpecFile checks that specFile is what the vendor's document given
// with -spec yields, and rewrites it with -update. Without -spec it checks
// that specFile covers clientPaths.
func TestSpecFile(t *testing.T) {
	if *spec == "" {
		doc, err := openapi3.NewLoader().LoadFromFile(specFile)
		if err != nil {
			t.Fatal(err)
		}
		for p := range clientPaths {
			if doc.Paths.Find(p) == nil {
				t.Errorf("%s lacks %s, which the client uses (regenerate it with -update -spec)", specFile, p)
			}
		}
		return
	}
	want, err := clientSpec(*spec)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(specFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is stale: run go test -run TestSpecFile -update -spec %s", specFile, *spec)
	}
}

// clientPaths are the document's paths the client uses.
var clientPaths = map[string]bool{
	"/v2/security/authenticate":                                                true,
	"/v2/security/refreshtoken":                                                true,
	"/v2/admin/finance/services/lookup":                                        true,
	"/v2/admin/finance/services/search":                                        true,
	"/v2/admin/finance/services/services":                                      true,
	"/v2/admin/finance/services/{serviceId}":                                   true,
	"/v2/admin/finance/servicecategory/lookup":                                 true,
	"/v2/admin/finance/servicecategory/{categoryId}/servicesubcategory/lookup": true,
	"/v2/crm/accounts/summary":                                                 true,
	"/v2/crm/accounts/summary/{id}":                                            true,
	"/v2/crm/accounts/lookup":                                                  true,
	"/v2/finance/contracts/summary":                                            true,
	"/v2/finance/contracts/lookup":                                             true,
	"/v2/finance/contracts/recurringservices":                                  true,
	"/v2/finance/contracts/recurringservices/{contractId}/services":            true,
	"/v2/finance/contracts/{contractId}/activate":                              true,
	"/v2/finance/contracts/{contractId}/deactivate":                            true,
}

// exchange is one request and its response as they crossed the wire.
type exchange struct {
	req      *http.Request
	reqBody  []byte
	status   int
	header   http.Header
	respBody []byte
}

// recorder is a RoundTripper that keeps every exchange.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	log  []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	r.mu.Lock()
	r.log = append(r.log, exchange{req: req, reqBody: body, status: resp.StatusCode, header: resp.Header.Clone(), respBody: data})
	r.mu.Unlock()
	return resp, nil
}

// TestConformance drives every client method against the simulator and
// validates each request the client sent and each 200 response the
// simulator returned against the vendor's OpenAPI document. See the
// package documentation for the two places the wire is adapted before
// validation (camelCase keys, the urlencoded authenticate form) and why.
func TestConformance(t *testing.T) {
	t.Parallel()
	router := loadSpec(t)
	srv := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS))
	k := srv.KaseyaBMS()
	// Short-lived tokens make the client refresh, so refreshtoken is covered.
	k.SetTokenLifetimes(time.Minute, time.Hour)
	rec := &recorder{next: http.DefaultTransport}
	c, err := kaseyabms.NewClient(
		kaseyabms.WithBaseURL(srv.KaseyaBMSBaseURL()),
		kaseyabms.WithCredentials(psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
		kaseyabms.WithHTTPClient(&http.Client{Transport: rec}),
	)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, c, k)

	covered := map[string]bool{}
	for i, ex := range rec.log {
		what := fmt.Sprintf("#%d %s %s", i, ex.req.Method, ex.req.URL.Path)
		route, params, err := findRoute(router, ex.req)
		if err != nil {
			t.Errorf("%s: not in the vendor's document: %v", what, err)
			continue
		}
		covered[ex.req.Method+" "+route.Path] = true
		in := requestInput(ex, route, params)
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s: request does not conform: %v\nbody: %s", what, err, ex.reqBody)
		}
		if names := undeclaredQuery(route, ex.req.URL); len(names) > 0 {
			t.Errorf("%s: query parameters %q are not in the document", what, names)
		}
		if isForm(ex.req) {
			if err := validateForm(route, ex.reqBody); err != nil {
				t.Errorf("%s: form does not conform: %v\nbody: %s", what, err, ex.reqBody)
			}
		}
		if ex.status != http.StatusOK {
			// The document declares only 200 answers; 401 and 429 are
			// observed/assumed behaviour it does not describe.
			if !bytes.Contains(bytes.ToLower(ex.respBody), []byte(`"success":false`)) {
				t.Errorf("%s: %d answer without a success:false envelope: %s", what, ex.status, ex.respBody)
			}
			continue
		}
		body, err := toSpecCasing(ex.respBody, responseSchema(route))
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 ex.status,
			Header:                 ex.header,
			Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s: response does not conform: %v\nbody: %s", what, err, body)
		}
	}
	for _, op := range []string{
		"POST /v2/security/authenticate", "POST /v2/security/refreshtoken",
		"GET /v2/admin/finance/services/lookup", "POST /v2/admin/finance/services/search",
		"GET /v2/admin/finance/services/{serviceId}", "POST /v2/admin/finance/services/services",
		"PUT /v2/admin/finance/services/{serviceId}", "DELETE /v2/admin/finance/services/{serviceId}",
		"GET /v2/admin/finance/servicecategory/lookup", "GET /v2/admin/finance/servicecategory/{categoryId}/servicesubcategory/lookup",
		"GET /v2/crm/accounts/summary", "GET /v2/crm/accounts/summary/{id}", "GET /v2/crm/accounts/lookup",
		"GET /v2/finance/contracts/summary", "GET /v2/finance/contracts/lookup",
		"POST /v2/finance/contracts/recurringservices", "POST /v2/finance/contracts/recurringservices/{contractId}/services",
		"PUT /v2/finance/contracts/{contractId}/activate", "PUT /v2/finance/contracts/{contractId}/deactivate",
	} {
		if !covered[op] {
			t.Errorf("operation %s was not exercised", op)
		}
	}
}

// exercise calls every client method, and the backend, against the simulator.
func exercise(t *testing.T, c *kaseyabms.Client, k *psatest.KaseyaBMS) {
	t.Helper()
	ctx := t.Context()
	acme := k.AddAccount("Acme")
	k.AddAccount("Acme Labs")
	used := k.AddServiceFull(psatest.KaseyaBMSService{Name: "Seat", UnitOfMeasureID: 2, Active: true})
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := c.Authenticate(ctx)
	check("Authenticate", err)
	_, _, err = c.Services.Categories(ctx) // refreshes the short-lived token
	check("Services.Categories", err)
	k.SetTokenLifetimes(time.Hour, 24*time.Hour)
	b := kaseyabms.NewBackend(c)
	svc, err := b.CreateService(ctx, &psa.Service{Name: "Sophos", Description: "EDR", UnitPrice: 4.5, UnitCost: 2, Active: true,
		KaseyaBMS: &psa.KaseyaBMSServiceFields{Category: "Managed Services", Subcategory: "Security", UnitOfMeasure: "User", Taxable: true}})
	check("CreateService", err)
	svc.UnitPrice = 5
	_, err = b.UpdateService(ctx, svc)
	check("UpdateService", err)
	_, err = b.FindServices(ctx, "Sophos")
	check("FindServices", err)
	_, _, err = c.Services.LookupAll(ctx, "Soph")
	check("Services.LookupAll", err)
	_, err = b.GetService(ctx, "999999")
	if !errors.Is(err, psa.ErrNotFound) {
		t.Fatalf("GetService(unknown) = %v", err)
	}
	_, _, err = c.Accounts.ListSummaryAll(ctx, kaseyabms.AccountSummaryListOptions{AccountName: "Acme", IsActive: new(true)})
	check("Accounts.ListSummaryAll", err)
	_, err = b.FindCompanies(ctx, "Acme")
	check("FindCompanies", err)
	ct, _, err := c.Contracts.CreateRecurringServices(ctx, &kaseyabms.CreateRecurringServicesContractRequest{
		ContractName: "Acme Managed Services", AccountID: acme, BillingCycleID: 1,
		StartDate: kaseyabms.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		EndDate:   kaseyabms.Time{Time: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)},
		Services: []kaseyabms.RecurringService{{ServiceID: used, ServiceName: "Seat", Units: 3, UnitPrice: 1,
			EffectiveDate: kaseyabms.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}},
	})
	check("Contracts.CreateRecurringServices", err)
	contractID := fmt.Sprint(ct.ID)
	_, err = b.GetContract(ctx, contractID)
	check("GetContract", err)
	_, err = b.FindContracts(ctx, psa.ContractQuery{CompanyID: fmt.Sprint(acme)})
	check("FindContracts", err)
	_, err = b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: contractID, ServiceID: svc.ID, Quantity: 12,
		EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	check("SetQuantity", err)
	_, _, err = c.Contracts.Deactivate(ctx, ct.ID)
	check("Contracts.Deactivate", err)
	_, err = b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: contractID, ServiceID: svc.ID, Quantity: 13,
		EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	if !errors.Is(err, psa.ErrValidation) {
		t.Fatalf("SetQuantity on an inactive contract = %v", err)
	}
	_, _, err = c.Contracts.Activate(ctx, ct.ID)
	check("Contracts.Activate", err)
	other, err := b.CreateService(ctx, &psa.Service{Name: "Spare", Active: true})
	check("CreateService(spare)", err)
	check("DeleteService", b.DeleteService(ctx, other.ID))
	check("Ping", b.Ping(ctx))
}

func findRoute(router routers.Router, req *http.Request) (*routers.Route, map[string]string, error) {
	u, _ := url.Parse(specServer)
	r := req.Clone(context.Background())
	r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, u.Host
	return router.FindRoute(r)
}

// requestInput builds the validation input of a recorded request.
func requestInput(ex exchange, route *routers.Route, params map[string]string) *openapi3filter.RequestValidationInput {
	req := ex.req.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(ex.reqBody))
	req.ContentLength = int64(len(ex.reqBody))
	return &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			MultiError:         true,
			ExcludeRequestBody: isForm(req),
			AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
				// The document puts every operation, the security ones
				// included, under its global bearerAuth; authenticate and
				// refreshtoken are how a bearer token is obtained.
				if strings.HasPrefix(strings.ToLower(in.RequestValidationInput.Request.URL.Path), "/v2/security/") {
					return nil
				}
				scheme, tok, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
				if !strings.EqualFold(scheme, "Bearer") || tok == "" {
					return errors.New("no bearer token")
				}
				return nil
			},
		},
	}
}

// undeclaredQuery returns the query parameters of u that the route's
// operation does not declare. The request validation does not report them,
// and BMS ignores a parameter it does not know: a filter sent under
// another name than the document's would list every record, not the
// matching ones.
func undeclaredQuery(route *routers.Route, u *url.URL) []string {
	declared := map[string]bool{}
	for _, ps := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range ps {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = true
			}
		}
	}
	var out []string
	for name := range u.Query() {
		if !declared[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func isForm(req *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	return ct == "application/x-www-form-urlencoded"
}

// validateForm checks an urlencoded security form against the document's
// multipart/form-data schema of the operation. The client posts the form
// urlencoded, as every known BMS client does; the document lists only
// multipart/form-data. The fields are what matters, so they are validated
// as an object against that schema (names in the document's casing,
// required fields present, string types).
func validateForm(route *routers.Route, body []byte) error {
	rb := route.Operation.RequestBody
	if rb == nil || rb.Value == nil {
		return errors.New("the document declares no form for this operation")
	}
	mt := rb.Value.Content.Get("multipart/form-data")
	if mt == nil || mt.Schema == nil {
		return errors.New("the document declares no multipart/form-data body for this operation")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return err
	}
	obj := map[string]any{}
	for key, vs := range form {
		if _, ok := mt.Schema.Value.Properties[key]; !ok {
			return fmt.Errorf("form field %q is not in the document", key)
		}
		obj[key] = vs[0]
	}
	return mt.Schema.Value.VisitJSON(obj)
}

// responseSchema returns the schema of the route's 200 application/json answer.
func responseSchema(route *routers.Route) *openapi3.Schema {
	r := route.Operation.Responses.Status(http.StatusOK)
	if r == nil || r.Value == nil {
		return nil
	}
	mt := r.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// toSpecCasing rewrites a camelCase body to the document's PascalCase by
// matching each key case-insensitively against the schema's properties.
// The envelope's "error": null of a successful answer is dropped: the
// document's ErrorInfo is not nullable, but the wire carries null there.
func toSpecCasing(body []byte, s *openapi3.Schema) ([]byte, error) {
	if s == nil || len(bytes.TrimSpace(body)) == 0 {
		return body, nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("response is not JSON: %w", err)
	}
	return json.Marshal(recase(v, s, true))
}

func recase(v any, s *openapi3.Schema, top bool) any {
	if s == nil {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for key, val := range x {
			name, prop := key, (*openapi3.Schema)(nil)
			for p, ref := range s.Properties {
				if strings.EqualFold(p, key) {
					name, prop = p, ref.Value
				}
			}
			if top && name == "Error" && val == nil {
				continue
			}
			out[name] = recase(val, prop, false)
		}
		return out
	case []any:
		var item *openapi3.Schema
		if s.Items != nil {
			item = s.Items.Value
		}
		for i := range x {
			x[i] = recase(x[i], item, false)
		}
		return x
	}
	return v
}

// TestConformance_detectsDrift makes sure the validation is not vacuous: a
// field the document does not declare fails it, in either direction.
func TestConformance_detectsDrift(t *testing.T) {
	t.Parallel()
	router := loadSpec(t)
	req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1/v2/admin/finance/services/1", strings.NewReader(`{"Name":"x","Bogus":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t")
	ex := exchange{req: req, reqBody: []byte(`{"Name":"x","Bogus":1}`)}
	route, params, err := findRoute(router, req)
	if err != nil {
		t.Fatal(err)
	}
	in := requestInput(ex, route, params)
	if err := openapi3filter.ValidateRequest(context.Background(), in); err == nil || !strings.Contains(err.Error(), "Bogus") {
		t.Errorf("request with an undeclared field: error = %v, want one naming it", err)
	}
	body, err := toSpecCasing([]byte(`{"success":true,"error":null,"result":{"id":1,"name":"x","bogus":2}}`), responseSchema(route))
	if err != nil {
		t.Fatal(err)
	}
	in.Request.Body = io.NopCloser(bytes.NewReader(nil))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: 200,
		Header: http.Header{"Content-Type": {"application/json"}}, Options: &openapi3filter.Options{MultiError: true}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("response with an undeclared field: error = %v, want one naming it", err)
	}
	if err := validateForm(mustRoute(t, router, http.MethodPost, "/v2/security/authenticate"), []byte("GrantType=password&Nickname=x")); err == nil {
		t.Error("form with an undeclared field passed")
	}
	if err := validateForm(mustRoute(t, router, http.MethodPost, "/v2/security/authenticate"), []byte("UserName=x")); err == nil {
		t.Error("form without the required GrantType passed")
	}
}

func mustRoute(t *testing.T, router routers.Router, method, path string) *routers.Route {
	t.Helper()
	req, _ := http.NewRequest(method, specServer+path, nil)
	route, _, err := router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	return route
}
