package connectwise_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// referenceFile holds the wire examples the ConnectWise reference notes
// mark verified (companyinfo, the Link header, an addition, the PATCH and
// POST bodies, error bodies, a date condition), copied from the notes.
const referenceFile = "testdata/reference-examples.json"

// referenceExamples is referenceFile's content.
type referenceExamples struct {
	AcceptMediaType    string          `json:"accept_media_type"`
	LinkHeader         string          `json:"link_header"`
	CompanyInfo        json.RawMessage `json:"company_info"`
	Count              json.RawMessage `json:"count"`
	Addition           json.RawMessage `json:"addition"`
	PatchQuantity      json.RawMessage `json:"patch_quantity"`
	PostAddition       json.RawMessage `json:"post_addition"`
	ErrorInvalidObject json.RawMessage `json:"error_invalid_object"`
	ErrorVersion       json.RawMessage `json:"error_version"`
	ErrorUnauthorized  json.RawMessage `json:"error_unauthorized"`
	ConditionDate      string          `json:"condition_date"`
}

func loadReference(t *testing.T) referenceExamples {
	t.Helper()
	data, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	var ref referenceExamples
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatalf("%s: %v", referenceFile, err)
	}
	return ref
}

// jsonShape reduces a JSON value to its structure: objects keep their keys
// with the shapes of their values, arrays the shape of their first
// element, scalars become "string", "number", "bool" or "null".
func jsonShape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonShape(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		return []any{jsonShape(x[0])}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

func shapeOf(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, data)
	}
	return jsonShape(v)
}

// missingFrom lists the paths of want's shape that got's lacks or holds
// with another kind. A null in either is taken to match any kind (the
// reference's nulls are unset values).
func missingFrom(want, got any, path string) []string {
	if want == "null" || got == "null" {
		return nil
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %v, want an object", path, got)}
		}
		var out []string
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				out = append(out, path+"."+k+": missing")
				continue
			}
			out = append(out, missingFrom(wv, gv, path+"."+k)...)
		}
		slices.Sort(out)
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %v, want an array", path, got)}
		}
		if len(w) == 0 || len(g) == 0 {
			return nil
		}
		return missingFrom(w[0], g[0], path+"[]")
	}
	if want != got {
		return []string{fmt.Sprintf("%s: %v, want %v", path, got, want)}
	}
	return nil
}

// TestConformance_clientReadsReferenceExamples serves the reference's
// examples and checks the client reads them as the notes describe.
func TestConformance_clientReadsReferenceExamples(t *testing.T) {
	t.Parallel()
	ref := loadReference(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/companyinfo/training", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(ref.CompanyInfo)
	})
	api := "/v4_6_release/apis/3.0/"
	mux.HandleFunc("GET "+api+"company/companies", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", ref.LinkHeader)
		_, _ = io.WriteString(w, `[{"id": 1, "identifier": "Acme", "name": "Acme Inc."}]`)
	})
	mux.HandleFunc("GET "+api+"finance/agreements/871/additions/3589", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(ref.Addition)
	})
	mux.HandleFunc("GET "+api+"finance/agreements/count", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(ref.Count)
	})
	for path, body := range map[string]json.RawMessage{"catalog": ref.ErrorInvalidObject, "catalog/1": ref.ErrorVersion, "catalog/2": ref.ErrorUnauthorized} {
		status := map[string]int{"catalog": http.StatusBadRequest, "catalog/1": http.StatusBadRequest, "catalog/2": http.StatusUnauthorized}[path]
		mux.HandleFunc("/v4_6_release/apis/3.0/procurement/"+path, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := connectwise.NewClient(connectwise.WithSite(srv.URL), connectwise.WithCompanyID("training"),
		connectwise.WithKeys("pub", "priv"), connectwise.WithClientID("client-guid"), connectwise.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}

	root, err := c.BaseURL(t.Context())
	if err != nil || root.Path != api {
		t.Errorf("BaseURL from company info = %v, %v; want the path %s", root, err, api)
	}
	_, resp, err := c.Companies.ListPage(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantNext := "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/company/companies?pageSize=1000&page=2"
	if resp.NextPageURL != wantNext || !strings.HasSuffix(resp.Links["last"], "page=5") {
		t.Errorf("Link header: next %q, links %v; want next %q and last page 5", resp.NextPageURL, resp.Links, wantNext)
	}
	a, _, err := c.AgreementAdditions.Get(t.Context(), 871, 3589)
	if err != nil {
		t.Fatal(err)
	}
	if a.Quantity != 42 || a.Product == nil || a.Product.Identifier != "Sophos_Intercept_X_Advanced" || a.BillCustomer != "Billable" ||
		a.CancelledDate != nil || a.EffectiveDate == nil || !a.EffectiveDate.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) ||
		a.AgreementStatus != connectwise.AgreementActive || a.AgreementID != 871 || a.Info["lastUpdated"] == "" {
		t.Errorf("addition = %+v, want the reference example's values", a)
	}
	if n, _, err := c.Agreements.Count(t.Context(), connectwise.Condition{}); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}

	_, _, err = c.Catalog.Create(t.Context(), &connectwise.CreateCatalogItemRequest{Identifier: "x", Description: "x", CustomerDescription: "x"})
	var ve *psa.ValidationError
	if !errors.As(err, &ve) || !slices.Contains(ve.Messages, "yearEstablished: The field yearEstablished must be between 1900 and 9999.") {
		t.Errorf("InvalidObject error = %v, want a validation error naming the field and its message", err)
	}
	_, _, err = c.Catalog.Get(t.Context(), 1)
	if err == nil || !strings.Contains(err.Error(), "ConnectWiseApi") || !strings.Contains(err.Error(), "does not support the API version") {
		t.Errorf("version error = %v, want its code and message", err)
	}
	_, _, err = c.Catalog.Get(t.Context(), 2)
	if !errors.Is(err, psa.ErrUnauthorized) {
		t.Errorf("Unauthorized error = %v, want psa.ErrUnauthorized", err)
	}
	if got := connectwise.Gt("lastUpdated", time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)).String(); got != ref.ConditionDate {
		t.Errorf("date condition = %s, want %s", got, ref.ConditionDate)
	}
}

// TestConformance_requestsAsReference checks the client's requests against
// the reference: Basic company+publicKey:privateKey, clientId, the vendor
// media type first in Accept with a version, PATCH as an array of bare-path
// operations, POST of an addition with product and billCustomer, and next
// pages that keep the conditions.
func TestConformance_requestsAsReference(t *testing.T) {
	t.Parallel()
	ref := loadReference(t)
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithClock(func() time.Time { return now }))
	cw := s.ConnectWise()
	for i := range 3 {
		cw.AddCompany(fmt.Sprintf("Company %d", i))
	}
	company := cw.AddCompany("Acme")
	ag := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "Managed"})
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "Sophos_Intercept_X_Advanced", Description: "Intercept X Advanced"})
	other := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "Sophos_MDR", Description: "MDR"})
	add := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 1})
	c := newClient(t, s, &resttest.Sleeps{})
	company1, pub, priv, clientID := cw.Credentials()

	if _, _, err := c.Companies.List(t.Context(), &connectwise.ListOptions{Conditions: connectwise.Like("name", "Company%"), PageSize: 2}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AgreementAdditions.SetQuantity(t.Context(), ag, add, 42); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AgreementAdditions.Create(t.Context(), ag, &connectwise.CreateAdditionRequest{
		Product: &connectwise.Reference{ID: other}, Quantity: 1, BillCustomer: connectwise.BillCustomerDoNotBill}); err != nil {
		t.Fatal(err)
	}

	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(company1+"+"+pub+":"+priv))
	var pages []url.Values
	for _, r := range s.Requests() {
		if strings.HasPrefix(r.Path, "/login/companyinfo/") {
			continue
		}
		what := r.Method + " " + r.Path
		if got := r.Header.Get("Authorization"); got != wantAuth {
			t.Errorf("%s: Authorization %q, want Basic company+publicKey:privateKey", what, got)
		}
		if got := r.Header.Get("clientId"); got != clientID {
			t.Errorf("%s: clientId %q, want %q", what, got, clientID)
		}
		if got := r.Header.Get("Accept"); !strings.HasPrefix(got, ref.AcceptMediaType+"; version=") {
			t.Errorf("%s: Accept %q, want %s first, with a version", what, got, ref.AcceptMediaType)
		}
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/company/companies"):
			q, _ := url.ParseQuery(r.RawQuery)
			pages = append(pages, q)
		case r.Method == http.MethodPatch:
			if got, want := shapeOf(t, r.Body), shapeOf(t, ref.PatchQuantity); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: body %s, want the shape of %s", what, r.Body, ref.PatchQuantity)
			}
			var ops []connectwise.PatchOperation
			if err := json.Unmarshal(r.Body, &ops); err != nil || len(ops) != 1 || ops[0].Op != "replace" || ops[0].Path != "quantity" || ops[0].Value != 42.0 {
				t.Errorf("%s: body %s, want %s", what, r.Body, ref.PatchQuantity)
			}
		case r.Method == http.MethodPost:
			if m := missingFrom(shapeOf(t, ref.PostAddition), shapeOf(t, r.Body), "body"); len(m) > 0 {
				t.Errorf("%s: body %s lacks what the reference's minimal create has: %v", what, r.Body, m)
			}
		}
	}
	if len(pages) != 2 {
		t.Fatalf("company list pages = %d, want 2", len(pages))
	}
	for i, q := range pages {
		if q.Get("conditions") != `name like "Company%"` || q.Get("pageSize") != "2" {
			t.Errorf("page %d: query %v, want the conditions and pageSize of the first", i+1, q)
		}
	}
	if pages[1].Get("page") != "2" {
		t.Errorf("second page query %v, want page=2", pages[1])
	}
}

// TestConformance_simulatorAnswersAsReference checks that the simulator
// answers with (at least) the fields of the reference's examples, of the
// same JSON kinds, and pages with a Link header the client follows.
func TestConformance_simulatorAnswersAsReference(t *testing.T) {
	t.Parallel()
	ref := loadReference(t)
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithClock(func() time.Time { return now }))
	cw := s.ConnectWise()
	company := cw.AddCompany("Acme")
	cw.AddCompany("Globex")
	ag := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "Managed"})
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "Sophos_Intercept_X_Advanced", Description: "Intercept X Advanced"})
	add := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 42})
	companyID, pub, priv, clientID := cw.Credentials()
	base := s.ConnectWiseBaseURL()

	call := func(method, path, accept string, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(companyID+"+"+pub, priv)
		req.Header.Set("clientId", clientID)
		req.Header.Set("Accept", accept)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, data
	}
	accept := ref.AcceptMediaType + "; version=" + connectwise.DefaultAPIVersion
	check := func(what string, want json.RawMessage, got []byte) {
		t.Helper()
		if m := missingFrom(shapeOf(t, want), shapeOf(t, got), what); len(m) > 0 {
			t.Errorf("%s differs from the reference example: %v\n%s", what, m, got)
		}
	}

	_, data := call(http.MethodGet, s.ConnectWiseSite()+"/login/companyinfo/"+companyID, "application/json", "")
	check("company info", ref.CompanyInfo, data)
	resp, data := call(http.MethodGet, fmt.Sprintf("%sfinance/agreements/%d/additions/%d", base, ag, add), accept, "")
	check("addition", ref.Addition, data)
	if resp.Header.Get("api-current-version") == "" {
		t.Error("no api-current-version header")
	}
	_, data = call(http.MethodGet, fmt.Sprintf("%sfinance/agreements/%d/additions/count", base, ag), accept, "")
	check("count", ref.Count, data)
	resp, data = call(http.MethodGet, base+"company/companies?pageSize=1", accept, "")
	if shapeOf(t, data) == nil || !strings.HasPrefix(strings.TrimSpace(string(data)), "[") {
		t.Errorf("list = %s, want a bare JSON array", data)
	}
	if link := resp.Header.Get("Link"); !strings.Contains(link, `page=2>; rel="next"`) || !strings.Contains(link, `rel="last"`) {
		t.Errorf("Link = %q, want the reference's form: <...page=2>; rel=\"next\", <...>; rel=\"last\"", link)
	}
	resp, data = call(http.MethodPost, fmt.Sprintf("%sfinance/agreements/%d/additions", base, ag), accept, `{"product": {"id": 999999}, "quantity": 1}`)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("invalid create: status %d, want 400", resp.StatusCode)
	}
	check("validation error", ref.ErrorInvalidObject, data)
	resp, data = call(http.MethodGet, base+"company/companies", ref.AcceptMediaType+"; version=0.0", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown version: status %d, want 400", resp.StatusCode)
	}
	check("version error", ref.ErrorVersion, data)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"company/companies", nil)
	req.Header.Set("clientId", clientID)
	r401, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = io.ReadAll(r401.Body)
	r401.Body.Close()
	if r401.StatusCode != http.StatusUnauthorized {
		t.Errorf("no Authorization: status %d, want 401", r401.StatusCode)
	}
	check("unauthorized error", ref.ErrorUnauthorized, data)
}
