package connectwise_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// now is the simulator's clock.
var now = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

func date(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }

func id(n int64) string { return strconv.FormatInt(n, 10) }

// newBackend starts a ConnectWise simulator and returns a backend pointed
// at its API root (no discovery) whose retries do not sleep, and whose
// throttle's clock stands still at now.
func newBackend(t *testing.T, opts ...psatest.Option) (*connectwise.Backend, *psatest.Server, *resttest.Sleeps) {
	t.Helper()
	s := psatest.Start(t, append([]psatest.Option{psatest.WithSystem(psa.SystemConnectWise), psatest.WithClock(func() time.Time { return now })}, opts...)...)
	sl := &resttest.Sleeps{}
	c := newClient(t, s, sl, connectwise.WithBaseURL(s.ConnectWiseBaseURL()))
	return connectwise.NewBackend(c), s, sl
}

func newClient(t *testing.T, s *psatest.Server, sl *resttest.Sleeps, opts ...connectwise.Option) *connectwise.Client {
	t.Helper()
	company, pub, priv, clientID := s.ConnectWise().Credentials()
	base := []connectwise.Option{
		connectwise.WithSite(s.ConnectWiseSite()),
		connectwise.WithCompanyID(company),
		connectwise.WithKeys(pub, priv),
		connectwise.WithClientID(clientID),
		connectwise.WithSleep(sl.Sleep),
	}
	c, err := connectwise.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	c.SetThrottleClock(func() time.Time { return now })
	return c
}

func countRequests(s *psatest.Server, method, pathPart string) int {
	n := 0
	for _, r := range s.Requests() {
		if (method == "" || r.Method == method) && strings.Contains(strings.ToLower(r.Path), strings.ToLower(pathPart)) {
			n++
		}
	}
	return n
}

// seed adds a company with one active agreement and returns their ids.
func seed(cw *psatest.ConnectWise, name string) (company, agreement int64) {
	company = cw.AddCompany(name)
	agreement = cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: name + " Managed Services"})
	return company, agreement
}

func TestBackend_ReadLines_bulk(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithClock(func() time.Time { return now }))
	probe := &psatest.ConcurrencyProbe{Want: connectwise.DefaultMaxConcurrency}
	b := connectwise.NewBackend(newClient(t, s, &resttest.Sleeps{}, connectwise.WithBaseURL(s.ConnectWiseBaseURL()),
		connectwise.WithHTTPClient(&http.Client{Transport: probe})))
	cw := s.ConnectWise()
	p1 := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 4.5})
	p2 := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Endpoint", Price: 2})
	const agreements = 40
	var ids []string
	want := map[psa.LineKey]int64{}
	for i := range agreements {
		_, ag := seed(cw, "Customer "+strconv.Itoa(i))
		ids = append(ids, id(ag))
		a1 := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p1, Quantity: float64(i%7 + 1)})
		cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p2, Quantity: float64(i + 10)})
		// A cancelled addition of the same product is history, not a duplicate.
		cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p1, Quantity: 99, CancelledDate: date(6, 30)})
		want[psa.LineKey{ContractID: id(ag), ServiceID: id(p1)}] = int64(i%7 + 1)
		want[psa.LineKey{ContractID: id(ag), ServiceID: id(p2)}] = int64(i + 10)
		_ = a1
	}
	s.ResetRequests()

	lines, err := b.ReadLines(t.Context(), ids, now)
	if err != nil {
		t.Fatalf("ReadLines: %v", err)
	}
	if len(lines) != 2*agreements {
		t.Fatalf("ReadLines returned %d lines, want %d", len(lines), 2*agreements)
	}
	for _, l := range lines {
		if w, ok := want[l.Key()]; !ok || l.Quantity != w || l.LineID == "" {
			t.Fatalf("line %+v: want quantity %d and a line id", l, w)
		}
	}
	// One additions read per agreement and nothing else: the agreements'
	// status is read for the agreements written to (CheckWrites).
	if n, w := len(s.Requests()), agreements; n != w {
		t.Errorf("ReadLines made %d requests, want %d", n, w)
	}
	if p := probe.Peak(); p != connectwise.DefaultMaxConcurrency {
		t.Errorf("ReadLines kept at most %d requests in flight, want the client's %d", p, connectwise.DefaultMaxConcurrency)
	}
	for _, r := range s.Requests() {
		if strings.HasSuffix(r.Path, "/additions") && !strings.Contains(r.RawQuery, "pageSize=1000") {
			t.Errorf("additions read %s without pageSize=1000", r.RawQuery)
		}
	}
}

func TestBackend_ReadLines_pagesOfAThousand(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	_, ag := seed(cw, "Big")
	for i := range 1500 {
		p := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Product " + strconv.Itoa(i)})
		cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p, Quantity: 1})
	}
	s.ResetRequests()
	lines, err := b.ReadLines(t.Context(), []string{id(ag)}, now)
	if err != nil {
		t.Fatalf("ReadLines: %v", err)
	}
	if len(lines) != 1500 {
		t.Errorf("ReadLines returned %d lines, want 1500", len(lines))
	}
	if n := countRequests(s, http.MethodGet, "/additions"); n != 2 {
		t.Errorf("additions requests = %d, want 2 (1,000 per page)", n)
	}
}

func TestBackend_ReadLines_perContractErrors(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "SOPHOS-IXA", Description: "Sophos Intercept X Advanced", Price: 4.5})
	_, good := seed(cw, "Good")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: good, ProductID: prod, Quantity: 12})
	_, dup := seed(cw, "Dup")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: dup, ProductID: prod, Quantity: 3})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: dup, ProductID: prod, Quantity: 4})
	_, frac := seed(cw, "Fraction")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: frac, ProductID: prod, Quantity: 2.5})

	lines, err := b.ReadLines(t.Context(), []string{id(good), id(dup), id(frac), "999999"}, now)
	if len(lines) != 1 || lines[0].ContractID != id(good) || lines[0].Quantity != 12 {
		t.Errorf("ReadLines lines = %+v, want only agreement %d's", lines, good)
	}
	var ce *connectwise.ContractErrors
	if !errors.As(err, &ce) {
		t.Fatalf("ReadLines error = %v, want *ContractErrors", err)
	}
	if len(ce.Errors) != 3 {
		t.Errorf("ContractErrors has %d entries, want 3: %v", len(ce.Errors), err)
	}
	var amb *psa.AmbiguousError
	if e := ce.Errors[id(dup)]; !errors.As(e, &amb) || len(amb.Matches) != 2 || !errors.Is(e, psa.ErrConflict) {
		t.Errorf("duplicate additions: error %v, want an AmbiguousError with 2 matches", e)
	}
	if e := ce.Errors[id(frac)]; !errors.Is(e, psa.ErrValidation) || !strings.Contains(e.Error(), "fractional quantity 2.5") {
		t.Errorf("fractional quantity: error %v, want a validation error naming 2.5", e)
	}
	if e := ce.Errors["999999"]; !errors.Is(e, psa.ErrNotFound) {
		t.Errorf("missing agreement: error %v, want ErrNotFound", e)
	}
	// Callers that do not import this package find the per-contract errors
	// through an interface.
	var hook interface{ ContractErrors() map[string]error }
	if !errors.As(err, &hook) || len(hook.ContractErrors()) != 3 {
		t.Errorf("errors.As to the ContractErrors interface failed: %v", err)
	}
	// The whole error is isolatable: it matches the kinds the daemon bisects on.
	if !errors.Is(err, psa.ErrConflict) || !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("errors.Is on ContractErrors does not see the per-contract errors: %v", err)
	}
}

// TestBackend_ReadLines_quantityBeyondWholeUnitsFailsItsAgreement checks
// that an addition whose quantity no whole number of units can hold (1e20)
// fails its agreement with an error naming the addition, rather than being
// read as some other quantity.
func TestBackend_ReadLines_quantityBeyondWholeUnitsFailsItsAgreement(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "SOPHOS-IXA", Description: "Sophos Intercept X Advanced", Price: 4.5})
	_, good := seed(cw, "Good")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: good, ProductID: prod, Quantity: 12})
	_, big := seed(cw, "Big")
	bigAdd := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: big, ProductID: prod, Quantity: 1e20})
	_, neg := seed(cw, "Negative")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: neg, ProductID: prod, Quantity: -1e20})

	lines, err := b.ReadLines(t.Context(), []string{id(good), id(big), id(neg)}, now)
	if len(lines) != 1 || lines[0].ContractID != id(good) || lines[0].Quantity != 12 {
		t.Errorf("ReadLines lines = %+v, want only agreement %d's", lines, good)
	}
	var ce *connectwise.ContractErrors
	if !errors.As(err, &ce) || len(ce.Errors) != 2 {
		t.Fatalf("ReadLines error = %v, want *ContractErrors of 2 agreements", err)
	}
	e := ce.Errors[id(big)]
	if !errors.Is(e, psa.ErrValidation) || !strings.Contains(e.Error(), "addition "+id(bigAdd)) ||
		!strings.Contains(e.Error(), "agreement "+id(big)) || !strings.Contains(e.Error(), "100000000000000000000") {
		t.Errorf("quantity 1e20: error %v, want a validation error naming the addition, the agreement and the quantity", e)
	}
	if e := ce.Errors[id(neg)]; !errors.Is(e, psa.ErrValidation) {
		t.Errorf("quantity -1e20: error %v, want a validation error", e)
	}
}

// TestBackend_ReadLines_unreadableAnswerFailsOnlyItsAgreement checks that
// an answer about one agreement's additions that cannot be used (a body
// that cannot be decoded, a proxy's page beside ConnectWise's answers to
// the other agreements, a 4xx refusal) is that agreement's problem alone:
// every agreement's additions are a request of their own, so the other
// agreements' lines are returned and only it is in the ContractErrors.
func TestBackend_ReadLines_unreadableAnswerFailsOnlyItsAgreement(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
		is     error
	}{
		{name: "html page", status: http.StatusOK, body: "<html><body>Service temporarily unavailable</body></html>", want: "the answer is an HTML page", is: psa.ErrNotAPI},
		{name: "wrong type", status: http.StatusOK, body: `[{"id": 1, "product": {"id": 1}, "quantity": "lots", "agreementStatus": "Active"}]`,
			want: "decoding response: json: cannot unmarshal string into Go struct field"},
		{name: "cut short", status: http.StatusOK, body: `[{"id": 1, "product": {"id"`, want: "decoding response: unexpected end of JSON input"},
		{name: "bad request", status: http.StatusBadRequest, body: `{"code": "InvalidObject", "message": "agreement is corrupt"}`, want: "agreement is corrupt", is: psa.ErrValidation},
		{name: "forbidden", status: http.StatusForbidden, body: `{"code": "Forbidden", "message": "not in your territory"}`, want: "not in your territory", is: psa.ErrUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, s, _ := newBackend(t)
			cw := s.ConnectWise()
			prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
			_, bad := seed(cw, "Bad")
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: bad, ProductID: prod, Quantity: 3})
			_, good := seed(cw, "Good")
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: good, ProductID: prod, Quantity: 5})
			s.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/v4_6_release/apis/3.0/finance/agreements/" + id(bad) + "/additions", Status: tc.status, Body: tc.body})

			lines, err := b.ReadLines(t.Context(), []string{id(bad), id(good)}, now)
			if len(lines) != 1 || lines[0].ContractID != id(good) || lines[0].Quantity != 5 {
				t.Errorf("ReadLines lines = %+v, want agreement %d's only", lines, good)
			}
			var ce *connectwise.ContractErrors
			if !errors.As(err, &ce) || len(ce.Errors) != 1 {
				t.Fatalf("ReadLines error = %v, want ContractErrors for agreement %d alone", err, bad)
			}
			e := ce.Errors[id(bad)]
			if e == nil || !strings.Contains(e.Error(), fmt.Sprintf("agreement %d", bad)) || !strings.Contains(e.Error(), tc.want) {
				t.Errorf("agreement %d: error %v, want one naming the agreement and %q", bad, e, tc.want)
			}
			if tc.is != nil && !errors.Is(e, tc.is) {
				t.Errorf("agreement %d: error %v, want it to match %v", bad, e, tc.is)
			}
		})
	}
}

// TestBackend_ReadLines_wholeReadFailures checks that what concerns
// ConnectWise as a whole still fails the whole read, though it came from
// one agreement's request: the credentials, the rate limit, an outage (a
// 5xx, after the client's retries) and a lost connection.
func TestBackend_ReadLines_wholeReadFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault psatest.Fault
		is    error
	}{
		{name: "unauthorized", fault: psatest.Fault{Status: http.StatusUnauthorized}, is: psa.ErrUnauthorized},
		{name: "rate limited", fault: psatest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Hour}, is: psa.ErrRateLimited},
		{name: "server error", fault: psatest.Fault{Status: http.StatusServiceUnavailable}},
		{name: "connection lost", fault: psatest.Fault{Drop: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, s, _ := newBackend(t)
			cw := s.ConnectWise()
			prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
			_, bad := seed(cw, "Bad")
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: bad, ProductID: prod, Quantity: 3})
			_, good := seed(cw, "Good")
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: good, ProductID: prod, Quantity: 5})
			f := tc.fault
			f.Method, f.Path = http.MethodGet, "/v4_6_release/apis/3.0/finance/agreements/"+id(bad)+"/additions"
			s.AddFault(f)

			lines, err := b.ReadLines(t.Context(), []string{id(bad), id(good)}, now)
			var ce *connectwise.ContractErrors
			if err == nil || errors.As(err, &ce) || lines != nil {
				t.Fatalf("ReadLines = %+v, %v; want the whole read failed", lines, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("agreement %d", bad)) {
				t.Errorf("ReadLines error = %v, want it to name agreement %d", err, bad)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("ReadLines error = %v, want it to match %v", err, tc.is)
			}
		})
	}
}

// TestBackend_ReadLines_notAPIAnswerFailsTheWholeRead checks that when no
// agreement's read gets ConnectWise's answer and some get one that is not
// ConnectWise's (a proxy's sign-in page, another product's JSON), the
// whole read fails with psa.ErrNotAPI, the address's problem, instead of
// every agreement failing as if for a reason of its own.
func TestBackend_ReadLines_notAPIAnswerFailsTheWholeRead(t *testing.T) {
	t.Parallel()
	for _, f := range []psatest.Fault{
		{Status: http.StatusOK, ContentType: "text/html", Body: psatest.SignInPage},
		{Status: http.StatusOK, Body: `{"status":"ok"}`},
	} {
		b, s, _ := newBackend(t)
		cw := s.ConnectWise()
		prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
		_, one := seed(cw, "One")
		cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: one, ProductID: prod, Quantity: 3})
		_, two := seed(cw, "Two")
		cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: two, ProductID: prod, Quantity: 5})
		f.Method, f.Path = http.MethodGet, "/v4_6_release/apis/3.0/finance/agreements/*"
		s.AddFault(f)

		lines, err := b.ReadLines(t.Context(), []string{id(one), id(two)}, now)
		var ce *connectwise.ContractErrors
		if !errors.Is(err, psa.ErrNotAPI) || errors.As(err, &ce) || lines != nil {
			t.Errorf("%.20s: ReadLines = %+v, %v; want the whole read failed with psa.ErrNotAPI", f.Body, lines, err)
		}
	}
}

// TestBackend_ReadServiceLines_unmanagedProblemsInexact checks that a
// fractional quantity or two additions of a product the caller does not
// manage make that product one inexact line (the quantities added up,
// rounded up) instead of failing the agreement, so that a product the
// caller no longer writes is seen to bill, and that the same problems of
// a managed product still fail it.
func TestBackend_ReadServiceLines_unmanagedProblemsInexact(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	managed := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "SOPHOS-IXA", Description: "Sophos Intercept X Advanced", Price: 4.5})
	labour := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "LABOUR", Description: "Onsite labour", Price: 100})
	kit := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "KIT", Description: "Rack kit", Price: 30})
	other := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Identifier: "OTHER", Description: "Other", Price: 1})
	_, ag := seed(cw, "Acme")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: managed, Quantity: 12})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: labour, Quantity: 1.5})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: kit, Quantity: 1})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: kit, Quantity: 2})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: other, Quantity: 3})

	lines, err := b.ReadServiceLines(t.Context(), []string{id(ag)}, []string{id(managed)}, now)
	if err != nil {
		t.Fatalf("ReadServiceLines: %v", err)
	}
	got := map[string]int64{}
	inexact := map[string]bool{}
	for _, l := range lines {
		got[l.ServiceID] = l.Quantity
		if l.Inexact && l.LineID == "" {
			inexact[l.ServiceID] = true
		}
	}
	if want := map[string]int64{id(managed): 12, id(labour): 2, id(kit): 3, id(other): 3}; len(lines) != len(want) || !maps.Equal(got, want) ||
		!maps.Equal(inexact, map[string]bool{id(labour): true, id(kit): true}) {
		t.Errorf("ReadServiceLines lines = %+v, want %v, the labour and kit lines inexact without a line id", lines, want)
	}

	for _, tc := range []struct {
		service string
		is      error
	}{{id(labour), psa.ErrValidation}, {id(kit), psa.ErrConflict}} {
		_, err := b.ReadServiceLines(t.Context(), []string{id(ag)}, []string{id(managed), tc.service}, now)
		var ce *connectwise.ContractErrors
		if !errors.As(err, &ce) || !errors.Is(ce.Errors[id(ag)], tc.is) {
			t.Errorf("ReadServiceLines managing service %s: error %v, want %v for agreement %d", tc.service, err, tc.is, ag)
		}
	}
	if _, err := b.ReadLines(t.Context(), []string{id(ag)}, now); err == nil {
		t.Error("ReadLines error = nil, want the problems of every product")
	}
}

// TestBackend_ReadLines_contractIDAsGiven checks that lines and
// per-contract errors name the agreement as the caller spelled it, so that
// a caller that asked for "0<id>" finds them.
func TestBackend_ReadLines_contractIDAsGiven(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 4.5})
	_, good := seed(cw, "Good")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: good, ProductID: prod, Quantity: 7})
	_, frac := seed(cw, "Fraction")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: frac, ProductID: prod, Quantity: 2.5})

	lines, err := b.ReadLines(t.Context(), []string{"0" + id(good), " " + id(frac)}, now)
	if len(lines) != 1 || lines[0].ContractID != "0"+id(good) || lines[0].ServiceID != id(prod) || lines[0].Quantity != 7 {
		t.Errorf("ReadLines lines = %+v, want 7 of product %d on agreement %q", lines, prod, "0"+id(good))
	}
	var ce *connectwise.ContractErrors
	if !errors.As(err, &ce) || len(ce.Errors) != 1 || !errors.Is(ce.Errors[" "+id(frac)], psa.ErrValidation) {
		t.Errorf("ReadLines error = %v, want a fractional quantity on agreement %q", err, " "+id(frac))
	}
}

// TestBackend_CheckWrites checks that the agreements a pass will write to
// are checked in one status read, and that the cancelled, expired,
// inactive and missing ones are refused, the first two as stale mappings.
func TestBackend_CheckWrites(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	_, good := seed(cw, "Good")
	_, stale := seed(cw, "Stale")
	cw.SetAgreementStatus(stale, "Cancelled")
	_, expired := seed(cw, "Expired")
	cw.SetAgreementStatus(expired, "Expired")
	_, inactive := seed(cw, "Inactive")
	cw.SetAgreementStatus(inactive, "Inactive")
	add := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: stale, ProductID: prod, Quantity: 3})
	ctx := t.Context()
	s.ResetRequests()

	refused, err := b.CheckWrites(ctx, []string{id(good), id(stale), id(expired), id(inactive), "999999"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("CheckWrites of 5 agreements made %d requests, want 1", n)
	}
	if len(refused) != 4 || refused[id(good)] != nil {
		t.Errorf("CheckWrites refused %v, want every agreement but %d", refused, good)
	}
	for _, ag := range []int64{stale, expired} {
		var se *connectwise.StaleAgreementError
		if e := refused[id(ag)]; !errors.As(e, &se) || !errors.Is(e, psa.ErrConflict) || !strings.Contains(e.Error(), "stale") {
			t.Errorf("agreement %d: %v, want a stale-mapping conflict", ag, e)
		}
	}
	if e := refused[id(inactive)]; !errors.Is(e, psa.ErrConflict) {
		t.Errorf("inactive agreement: %v, want a conflict", e)
	}
	if e := refused["999999"]; !errors.Is(e, psa.ErrNotFound) {
		t.Errorf("missing agreement: %v, want ErrNotFound", e)
	}

	// The writes use what CheckWrites read: no request, nothing written.
	s.ResetRequests()
	l := psa.ContractLine{ContractID: id(stale), ServiceID: id(prod), LineID: id(add), Quantity: 3}
	_, err = b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: l.ContractID, ServiceID: l.ServiceID, Quantity: 9, Current: &l, EffectiveDate: now})
	var se *connectwise.StaleAgreementError
	if !errors.As(err, &se) {
		t.Errorf("SetQuantity on the cancelled agreement: %v, want a StaleAgreementError", err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("SetQuantity after CheckWrites made %d requests, want 0", n)
	}
}

// agreementsPath is the path of the agreement list the status reads use.
const agreementsPath = "/v4_6_release/apis/3.0/finance/agreements"

// TestBackend_CheckWrites_unreadableAgreementFailsOnlyItself checks that an
// agreement that cannot be read in the status read's answer (a field of
// the wrong type) is refused alone, with that reason, neither taken for
// missing nor for checked; the other agreements of the answer are checked
// as usual. Its status is not kept: a write to it reads it again, and is
// refused while the answer stays unreadable, and made once it can be read.
func TestBackend_CheckWrites_unreadableAgreementFailsOnlyItself(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	_, bad := seed(cw, "Bad")
	_, good := seed(cw, "Good")
	_, stale := seed(cw, "Stale")
	cw.SetAgreementStatus(stale, "Cancelled")
	badAdd := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: bad, ProductID: prod, Quantity: 3})
	goodAdd := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: good, ProductID: prod, Quantity: 5})
	body := fmt.Sprintf(`[{"id":%d,"name":"Bad","agreementStatus":"Active","cancelledFlag":"no"},`+
		`{"id":%d,"name":"Good","agreementStatus":"Active","cancelledFlag":false},`+
		`{"id":%d,"name":"Stale","agreementStatus":"Cancelled","cancelledFlag":true}]`, bad, good, stale)
	// The status read of CheckWrites and that of the first write to the
	// bad agreement get the answer with the unreadable agreement.
	s.AddFault(psatest.Fault{Method: http.MethodGet, Path: agreementsPath, Status: http.StatusOK, Body: body, Times: 2})
	ctx := t.Context()

	refused, err := b.CheckWrites(ctx, []string{id(bad), id(good), id(stale)})
	if err != nil {
		t.Fatalf("CheckWrites error = %v, want the agreements checked one by one", err)
	}
	if len(refused) != 2 || refused[id(good)] != nil {
		t.Errorf("CheckWrites refused %v, want agreements %d and %d", refused, bad, stale)
	}
	want := fmt.Sprintf("connectwise: agreement %d cannot be read: field cancelledFlag holds string, not bool", bad)
	if e := refused[id(bad)]; e == nil || e.Error() != want || errors.Is(e, psa.ErrNotFound) || errors.Is(e, psa.ErrConflict) {
		t.Errorf("agreement %d: %v, want %q, neither not found nor a conflict", bad, e, want)
	}
	if e := refused[id(stale)]; !errors.As(e, new(*connectwise.StaleAgreementError)) {
		t.Errorf("agreement %d: %v, want a stale-mapping conflict", stale, e)
	}

	// The good agreement's status was kept: its write reads no agreement.
	s.ResetRequests()
	l := psa.ContractLine{ContractID: id(good), ServiceID: id(prod), LineID: id(goodAdd), Quantity: 5}
	if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: l.ContractID, ServiceID: l.ServiceID, Quantity: 6, Current: &l, EffectiveDate: now}); err != nil {
		t.Errorf("SetQuantity on agreement %d: %v", good, err)
	}
	if lists, singles := agreementReads(s); lists+singles != 0 {
		t.Errorf("the write to agreement %d read agreements %d times, want 0 (CheckWrites read it)", good, lists+singles)
	}

	// The bad agreement's was not: its write reads it again, and is refused
	// while it cannot be read.
	s.ResetRequests()
	l = psa.ContractLine{ContractID: id(bad), ServiceID: id(prod), LineID: id(badAdd), Quantity: 3}
	req := psa.SetQuantityRequest{ContractID: l.ContractID, ServiceID: l.ServiceID, Quantity: 4, Current: &l, EffectiveDate: now}
	if _, err := b.SetQuantity(ctx, req); err == nil || err.Error() != want {
		t.Errorf("SetQuantity on agreement %d = %v, want %q", bad, err, want)
	}
	if lists, _ := agreementReads(s); lists != 1 {
		t.Errorf("the write to agreement %d read agreements in bulk %d times, want 1", bad, lists)
	}
	if a, _ := cw.Addition(badAdd); a.Quantity != 3 {
		t.Errorf("addition on agreement %d = %+v, want it untouched while the agreement cannot be read", bad, a)
	}
	if _, err := b.SetQuantity(ctx, req); err != nil {
		t.Errorf("SetQuantity on agreement %d once it can be read: %v", bad, err)
	}
	if a, _ := cw.Addition(badAdd); a.Quantity != 4 {
		t.Errorf("addition on agreement %d = %+v, want quantity 4", bad, a)
	}
}

// TestBackend_CheckWrites_wholeReadFailures checks that what concerns the
// status read as a whole still fails CheckWrites as a whole: an answer
// that is not a list of agreements, an unreadable agreement that names no
// id, the credentials, the rate limit, an outage and a lost connection.
func TestBackend_CheckWrites_wholeReadFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault psatest.Fault
		is    error
	}{
		{name: "html page", fault: psatest.Fault{Status: http.StatusOK, Body: "<html><body>upstream hiccup</body></html>"}},
		{name: "no id", fault: psatest.Fault{Status: http.StatusOK, Body: `[{"name":"Bad","agreementStatus":"Active","cancelledFlag":"no"}]`}},
		{name: "unauthorized", fault: psatest.Fault{Status: http.StatusUnauthorized}, is: psa.ErrUnauthorized},
		{name: "rate limited", fault: psatest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Hour}, is: psa.ErrRateLimited},
		{name: "server error", fault: psatest.Fault{Status: http.StatusServiceUnavailable}},
		{name: "connection lost", fault: psatest.Fault{Drop: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, s, _ := newBackend(t)
			cw := s.ConnectWise()
			_, one := seed(cw, "One")
			_, two := seed(cw, "Two")
			f := tc.fault
			f.Method, f.Path = http.MethodGet, agreementsPath
			s.AddFault(f)

			refused, err := b.CheckWrites(t.Context(), []string{id(one), id(two)})
			if err == nil || refused != nil || !strings.Contains(err.Error(), "reading the status of the agreements to write to") {
				t.Fatalf("CheckWrites = %v, %v; want the whole check failed", refused, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("CheckWrites error = %v, want it to match %v", err, tc.is)
			}
		})
	}
}

func TestBackend_SetQuantity_patchUpAndDown(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 4.5})
	_, ag := seed(cw, "Acme")
	add := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 10})
	ctx := t.Context()

	for _, want := range []int64{30, 5} {
		lines, err := b.ReadLines(ctx, []string{id(ag)}, now)
		if err != nil || len(lines) != 1 {
			t.Fatalf("ReadLines = %+v, %v", lines, err)
		}
		s.ResetRequests()
		got, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: want, Current: &lines[0], EffectiveDate: date(11, 1)})
		if err != nil {
			t.Fatalf("SetQuantity(%d): %v", want, err)
		}
		if got.Quantity != want || got.LineID != id(add) {
			t.Errorf("SetQuantity returned %+v, want quantity %d on addition %d", got, want, add)
		}
		if q, _ := cw.Quantity(ag, prod); q != float64(want) {
			t.Errorf("simulator quantity = %v, want %d", q, want)
		}
		var patches []psatest.Request
		for _, r := range s.Requests() {
			if r.Method == http.MethodPatch {
				patches = append(patches, r)
			}
		}
		if len(patches) != 1 {
			t.Fatalf("PATCH requests = %d, want 1", len(patches))
		}
		var body []map[string]any
		if err := json.Unmarshal(patches[0].Body, &body); err != nil || len(body) != 1 || body[0]["op"] != "replace" || body[0]["path"] != "quantity" || body[0]["value"] != float64(want) {
			t.Errorf("PATCH body = %s, want [{\"op\":\"replace\",\"path\":\"quantity\",\"value\":%d}]", patches[0].Body, want)
		}
		if n := countRequests(s, http.MethodPost, ""); n != 0 {
			t.Errorf("POST requests = %d, want 0", n)
		}
	}
	if n := len(cw.Additions(ag)); n != 1 {
		t.Errorf("agreement has %d additions, want 1", n)
	}
}

func TestBackend_SetQuantity_unchangedWritesNothing(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 4.5})
	_, ag := seed(cw, "Acme")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 10})
	lines, _ := b.ReadLines(t.Context(), []string{id(ag)}, now)
	s.ResetRequests()
	if _, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 10, Current: &lines[0], EffectiveDate: now}); err != nil {
		t.Fatalf("SetQuantity: %v", err)
	}
	if n := countRequests(s, http.MethodPatch, "") + countRequests(s, http.MethodPost, ""); n != 0 {
		t.Errorf("writes = %d, want 0", n)
	}
}

func TestBackend_SetQuantity_createsMissingAddition(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 4.5, Cost: 2.25})
	_, ag := seed(cw, "Acme")
	got, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 7, EffectiveDate: date(11, 1)})
	if err != nil {
		t.Fatalf("SetQuantity: %v", err)
	}
	adds := cw.Additions(ag)
	if len(adds) != 1 {
		t.Fatalf("agreement has %d additions, want 1", len(adds))
	}
	a := adds[0]
	if a.Quantity != 7 || a.ProductID != prod || a.BillCustomer != "Billable" || *a.UnitPrice != 4.5 || *a.UnitCost != 2.25 || !a.EffectiveDate.Equal(date(11, 1)) {
		t.Errorf("created addition = %+v, want quantity 7, Billable, price 4.5, cost 2.25, effective 2026-11-01", a)
	}
	if got.LineID != id(a.ID) || got.Quantity != 7 || got.UnitPrice != 4.5 {
		t.Errorf("SetQuantity returned %+v", got)
	}
	// Zero wanted and no addition: nothing to create.
	p2 := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Other"})
	s.ResetRequests()
	if _, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(p2), Quantity: 0, EffectiveDate: now}); err != nil {
		t.Fatalf("SetQuantity(0): %v", err)
	}
	if n := countRequests(s, http.MethodPost, ""); n != 0 {
		t.Errorf("POSTs for a zero quantity without an addition = %d, want 0", n)
	}
}

func TestBackend_SetQuantity_ambiguous(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	_, ag := seed(cw, "Acme")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 1})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 2})
	s.ResetRequests()
	_, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 5, EffectiveDate: now})
	var amb *psa.AmbiguousError
	if !errors.As(err, &amb) || !errors.Is(err, psa.ErrConflict) {
		t.Fatalf("SetQuantity error = %v, want an AmbiguousError", err)
	}
	if n := countRequests(s, http.MethodPatch, "") + countRequests(s, http.MethodPost, ""); n != 0 {
		t.Errorf("writes = %d, want 0", n)
	}
}

func TestBackend_SetQuantity_staleAgreement(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	_, ag := seed(cw, "Acme")
	add := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 4})
	lines, _ := b.ReadLines(t.Context(), []string{id(ag)}, now)
	for _, status := range []string{"Cancelled", "Expired", "Inactive"} {
		cw.SetAgreementStatus(ag, status)
		s.ResetRequests()
		_, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 9, Current: &lines[0], EffectiveDate: now})
		if !errors.Is(err, psa.ErrConflict) {
			t.Errorf("%s agreement: error %v, want ErrConflict", status, err)
		}
		if status != "Inactive" && !strings.Contains(err.Error(), "customer mapping is stale") {
			t.Errorf("%s agreement: error %q does not say the mapping is stale", status, err)
		}
		if n := countRequests(s, http.MethodPatch, "") + countRequests(s, http.MethodPost, ""); n != 0 {
			t.Errorf("%s agreement: writes = %d, want 0", status, n)
		}
	}
	if q, _ := cw.Quantity(ag, prod); q != 4 {
		t.Errorf("quantity = %v, want 4 (unchanged)", q)
	}
	_ = add
}

func TestBackend_ReadLines_retriesThrottlingAndServerErrors(t *testing.T) {
	t.Parallel()
	b, s, sl := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	_, ag := seed(cw, "Acme")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 3})
	path := "/v4_6_release/apis/3.0/finance/agreements/" + id(ag) + "/additions"
	s.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second, Times: 1})
	s.AddFault(psatest.Fault{Method: http.MethodGet, Path: path, Status: http.StatusServiceUnavailable, Times: 2})

	lines, err := b.ReadLines(t.Context(), []string{id(ag)}, now)
	if err != nil || len(lines) != 1 || lines[0].Quantity != 3 {
		t.Fatalf("ReadLines = %+v, %v", lines, err)
	}
	if n := countRequests(s, http.MethodGet, "/additions"); n != 4 {
		t.Errorf("additions requests = %d, want 4 (429, 503, 503, 200)", n)
	}
	waits := sl.Waits()
	if len(waits) != 3 || waits[0] < 2*time.Second {
		t.Errorf("waits = %v, want 3 with the first at least the 2s Retry-After", waits)
	}
}

func TestBackend_rateLimitExhausted(t *testing.T) {
	t.Parallel()
	b, _, _ := newBackend(t, psatest.WithConnectWiseRateLimit(1, time.Minute))
	_, err := b.FindCompanies(t.Context(), "Acme") // uses the only request
	if err != nil {
		t.Fatalf("FindCompanies: %v", err)
	}
	_, err = b.FindCompanies(t.Context(), "Acme")
	var rl *psa.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.System != psa.SystemConnectWise {
		t.Errorf("error = %v, want a ConnectWise RateLimitError with Retry-After", err)
	}
}

func TestBackend_SetQuantity_lostCreateResponseNotResent(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 3})
	_, ag := seed(cw, "Acme")
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/v4_6_release/apis/3.0/finance/agreements/" + id(ag) + "/additions", DropAfterHandling: true, Times: 1})

	got, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 8, EffectiveDate: date(11, 1)})
	if err != nil {
		t.Fatalf("SetQuantity: %v", err)
	}
	if got.Quantity != 8 {
		t.Errorf("SetQuantity returned %+v, want quantity 8", got)
	}
	if n := countRequests(s, http.MethodPost, "/additions"); n != 1 {
		t.Errorf("POST requests = %d, want exactly 1 (never re-sent)", n)
	}
	dropped := false
	for _, r := range s.Requests() {
		dropped = dropped || r.Method == http.MethodPost && r.Dropped
	}
	if !dropped {
		t.Errorf("the POST's response was not dropped: the fault did not apply")
	}
	if n := len(cw.Additions(ag)); n != 1 {
		t.Errorf("agreement has %d additions, want 1", n)
	}
}

// TestBackend_SetQuantity_createServerErrorNoAdditionYet: a 500 to the
// create (not applied, as it happens) and a re-read that finds no addition.
// A lagging read could show the same right after an applied create, so the
// outcome stays unknown for the caller to re-read later; the POST is never
// sent again.
func TestBackend_SetQuantity_createServerErrorNoAdditionYet(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 3})
	_, ag := seed(cw, "Acme")
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/v4_6_release/apis/3.0/finance/agreements/" + id(ag) + "/additions", Status: http.StatusInternalServerError, Times: 1})

	_, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 8, EffectiveDate: now})
	if !errors.Is(err, psa.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "no addition for the product right after the lost answer") {
		t.Errorf("error = %v, want an unknown outcome saying the re-read found no addition yet", err)
	}
	if n := countRequests(s, http.MethodPost, "/additions"); n != 1 {
		t.Errorf("POST requests = %d, want 1", n)
	}
}

func TestBackend_codebaseChangeRediscovered(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithClock(func() time.Time { return now }))
	cw := s.ConnectWise()
	company, _ := seed(cw, "Acme")
	b := connectwise.NewBackend(newClient(t, s, &resttest.Sleeps{}))
	ctx := t.Context()
	if _, err := b.GetCompany(ctx, id(company)); err != nil {
		t.Fatalf("GetCompany: %v", err)
	}
	cw.ChangeCodebase("v2026_1/")
	s.ResetRequests()
	c, err := b.GetCompany(ctx, id(company))
	if err != nil {
		t.Fatalf("GetCompany after the codebase changed: %v", err)
	}
	if c.Name != "Acme" {
		t.Errorf("GetCompany = %+v", c)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Status != http.StatusNotFound || !strings.HasPrefix(reqs[1].Path, "/login/companyinfo/") || !strings.HasPrefix(reqs[2].Path, "/v2026_1/apis/3.0/") {
		for _, r := range reqs {
			t.Logf("%s %s -> %d", r.Method, r.Path, r.Status)
		}
		t.Errorf("want 404 on the old codebase, one companyinfo, then the request on v2026_1")
	}
	// A real 404 costs one companyinfo and is reported.
	if _, err := b.GetCompany(ctx, "424242"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetCompany(missing) = %v, want ErrNotFound", err)
	}
}

// TestClient_codebaseChangeWithRequestsInFlight moves the company while
// reads, PATCHes and a POST are in flight: every one of them gets 404 from
// the old codebase, one company info request finds the new codebase, and
// all of them follow it, including those that reach the client after it has
// already moved.
func TestClient_codebaseChangeWithRequestsInFlight(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithClock(func() time.Time { return now }))
	cw := s.ConnectWise()
	company, agreement := seed(cw, "Acme")
	backup := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 4.5})
	endpoint := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Endpoint", Price: 2})
	additions := make([]int64, 3)
	for i := range additions {
		additions[i] = cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreement, ProductID: backup, Quantity: 1})
	}

	// The gate holds requests to the old codebase until all of them are in
	// flight; the test then moves the company and lets them through.
	oldRoot := "/" + strings.ToLower(cw.Codebase()) + "apis/3.0/"
	var holding atomic.Bool
	arrived, release := make(chan struct{}), make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if holding.Load() && strings.HasPrefix(strings.ToLower(r.URL.Path), oldRoot) {
			select {
			case arrived <- struct{}{}:
			case <-r.Context().Done():
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c := newClient(t, s, &resttest.Sleeps{}, connectwise.WithSite(front.URL))
	ctx := t.Context()
	if _, _, err := c.Companies.Get(ctx, company); err != nil {
		t.Fatalf("Companies.Get: %v", err)
	}

	patch := func(i int) func() error {
		return func() error {
			_, _, err := c.AgreementAdditions.SetQuantity(ctx, agreement, additions[i], float64(10+i))
			return err
		}
	}
	requests := []struct {
		name string
		do   func() error
	}{
		{"get company", func() error { _, _, err := c.Companies.Get(ctx, company); return err }},
		{"get agreement", func() error { _, _, err := c.Agreements.Get(ctx, agreement); return err }},
		{"list additions", func() error {
			_, _, err := c.AgreementAdditions.List(ctx, agreement, &connectwise.ListOptions{Conditions: connectwise.Eq("product/id", backup)})
			return err
		}},
		{"patch addition 0", patch(0)},
		{"patch addition 1", patch(1)},
		{"patch addition 2", patch(2)},
		{"create addition", func() error {
			_, _, err := c.AgreementAdditions.Create(ctx, agreement, &connectwise.CreateAdditionRequest{Product: &connectwise.Reference{ID: endpoint}, Quantity: 5, BillCustomer: "Billable"})
			return err
		}},
	}
	if len(requests) > connectwise.DefaultMaxConcurrency {
		t.Fatalf("%d requests cannot all be in flight with %d slots", len(requests), connectwise.DefaultMaxConcurrency)
	}
	s.ResetRequests()
	holding.Store(true)
	errs := make([]error, len(requests))
	var wg sync.WaitGroup
	for i, r := range requests {
		wg.Go(func() { errs[i] = r.do() })
	}
	for range requests {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal("requests did not reach the server")
		}
	}
	holding.Store(false)
	cw.ChangeCodebase("v2026_1/")
	close(release)
	wg.Wait()

	for i, r := range requests {
		if errs[i] != nil {
			t.Errorf("%s after the codebase changed under it: %v", r.name, errs[i])
		}
	}
	var notFound, infos, moved int
	for _, r := range s.Requests() {
		switch p := strings.ToLower(r.Path); {
		case strings.HasPrefix(p, "/login/companyinfo/"):
			infos++
		case strings.HasPrefix(p, oldRoot) && r.Status == http.StatusNotFound:
			notFound++
		case strings.HasPrefix(p, "/v2026_1/apis/3.0/") && r.Status < 300:
			moved++
		default:
			t.Errorf("unexpected request %s %s -> %d", r.Method, r.Path, r.Status)
		}
	}
	if notFound != len(requests) || moved != len(requests) || infos != 1 {
		t.Errorf("%d answered 404 on the old codebase, %d company info requests, %d succeeded on the new one; want %d, 1, %d",
			notFound, infos, moved, len(requests), len(requests))
	}
	for i, id := range additions {
		if a, _ := cw.Addition(id); a.Quantity != float64(10+i) {
			t.Errorf("addition %d = %+v, want quantity %d", id, a, 10+i)
		}
	}
	if q, ok := cw.Quantity(agreement, endpoint); !ok || q != 5 || len(cw.Additions(agreement)) != len(additions)+1 {
		t.Errorf("agreement has %d additions, endpoint quantity %v (%t); want the refused POST created exactly once", len(cw.Additions(agreement)), q, ok)
	}
	if u, err := c.BaseURL(ctx); err != nil || !strings.HasSuffix(u.Path, "/v2026_1/apis/3.0/") {
		t.Errorf("BaseURL = %v, %v; want the new codebase", u, err)
	}
}

func TestBackend_services(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	ctx := t.Context()
	created, err := b.CreateService(ctx, &psa.Service{Name: "Sophos Intercept X Advanced", Description: "mapped from Sophos CIXA", UnitPrice: 4.5, UnitCost: 2.1, Active: true})
	if err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	if created.ConnectWise == nil || created.ConnectWise.Identifier != "Sophos_Intercept_X_Advanced" || created.InvoiceDescription != "Sophos Intercept X Advanced" || created.Description != "mapped from Sophos CIXA" || !created.Active {
		t.Errorf("CreateService = %+v %+v", created, created.ConnectWise)
	}
	got, err := b.GetService(ctx, created.ID)
	if err != nil || got.Name != created.Name || got.UnitPrice != 4.5 || got.UnitCost != 2.1 {
		t.Errorf("GetService = %+v, %v", got, err)
	}
	_, err = b.CreateService(ctx, &psa.Service{Name: "Other", Active: true, ConnectWise: &psa.ConnectWiseServiceFields{Identifier: "sophos_intercept_x_advanced"}})
	var ve *psa.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("CreateService with a taken identifier: %v, want a validation error", err)
	}
	got.Name, got.UnitPrice = "Sophos Intercept X Advanced for Server", 6
	got.ConnectWise = &psa.ConnectWiseServiceFields{Identifier: "SOPHOS-IXA-SRV", ProductClass: "Service", CustomerDescription: "Server protection"}
	upd, err := b.UpdateService(ctx, got)
	if err != nil {
		t.Fatalf("UpdateService: %v", err)
	}
	if upd.Name != got.Name || upd.UnitPrice != 6 || upd.ConnectWise.Identifier != "SOPHOS-IXA-SRV" || upd.InvoiceDescription != "Server protection" || upd.Description != "mapped from Sophos CIXA" || upd.ConnectWise.ProductClass != "Service" {
		t.Errorf("UpdateService = %+v %+v", upd, upd.ConnectWise)
	}
	found, err := b.FindServices(ctx, "sophos intercept x advanced for server")
	if err != nil || len(found) != 1 || found[0].ID != created.ID {
		t.Errorf("FindServices = %+v, %v", found, err)
	}
	if err := b.DeactivateService(ctx, created.ID); err != nil {
		t.Fatalf("DeactivateService: %v", err)
	}
	if it, _ := s.ConnectWise().CatalogItem(mustInt(t, created.ID)); !it.Inactive {
		t.Errorf("catalog item is still active")
	}
	if err := b.DeleteService(ctx, created.ID); err != nil {
		t.Fatalf("DeleteService: %v", err)
	}
	if _, err := b.GetService(ctx, created.ID); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetService after delete = %v, want ErrNotFound", err)
	}
	if _, err := b.CreateService(ctx, &psa.Service{Name: strings.Repeat("x", 61)}); !errors.Is(err, psa.ErrValidation) {
		t.Errorf("CreateService with a 61-character name = %v, want ErrValidation", err)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBackend_companiesAndContracts(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	ctx := t.Context()
	acme := cw.AddCompany("Acme \"Quoted\" Ltd")
	cw.AddCompany("Other")
	active := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Managed"})
	cancelled := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Old", Status: "Cancelled"})
	cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Setup", BillingCycle: "One Time"})
	annual := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Yearly", BillingCycle: "Annually", Status: "Inactive"})

	// A company merged into another stays in the API, with its name and
	// status, as deleted: the merge that ended a duplicate leaves no
	// second match.
	cw.AddCompanyDetails(psatest.ConnectWiseCompany{Name: "Acme \"Quoted\" Ltd", Deleted: true})
	found, err := b.FindCompanies(ctx, "acme \"quoted\" ltd")
	if err != nil || len(found) != 1 || found[0].ID != id(acme) || !found[0].Active {
		t.Errorf("FindCompanies = %+v, %v", found, err)
	}
	c, err := b.GetContract(ctx, id(active))
	if err != nil || !c.Active || !c.Recurring || c.CompanyID != id(acme) || c.Status != "Active" || c.Type != "Managed Services" || c.BillingCycle != "Monthly" {
		t.Errorf("GetContract = %+v, %v", c, err)
	}
	// The billing cycle, which the billing-impact report divides a price
	// per cycle by, also in a bulk read.
	if got, err := b.GetContracts(ctx, []string{id(active), id(annual)}); err != nil || len(got) != 2 || got[id(annual)].BillingCycle != "Annually" || got[id(active)].BillingCycle != "Monthly" {
		t.Errorf("GetContracts = %+v, %v; want the billing cycles Monthly and Annually", got, err)
	}
	list, err := b.FindContracts(ctx, psa.ContractQuery{CompanyID: id(acme)})
	if err != nil || len(list) != 1 || list[0].ID != id(active) {
		t.Errorf("FindContracts(default) = %+v, %v", list, err)
	}
	list, err = b.FindContracts(ctx, psa.ContractQuery{CompanyID: id(acme), IncludeInactive: true, AnyType: true})
	if err != nil || len(list) != 4 {
		t.Errorf("FindContracts(all) = %+v, %v", list, err)
	}
	list, err = b.FindContracts(ctx, psa.ContractQuery{CompanyID: id(acme), Name: "old", IncludeInactive: true})
	if err != nil || len(list) != 1 || list[0].ID != id(cancelled) || list[0].Active {
		t.Errorf("FindContracts(name) = %+v, %v", list, err)
	}
}

func TestBackend_pingAndBudget(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	if err := b.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if _, err := b.Budget(t.Context()); !errors.Is(err, psa.ErrNotSupported) {
		t.Errorf("Budget = %v, want ErrNotSupported", err)
	}
	if b.System() != psa.SystemConnectWise {
		t.Errorf("System = %q", b.System())
	}
	company, pub, _, clientID := s.ConnectWise().Credentials()
	bad, err := connectwise.NewClient(connectwise.WithBaseURL(s.ConnectWiseBaseURL()), connectwise.WithCompanyID(company),
		connectwise.WithKeys(pub, "wrong-private-key"), connectwise.WithClientID(clientID))
	if err != nil {
		t.Fatal(err)
	}
	err = connectwise.NewBackend(bad).Ping(t.Context())
	if !errors.Is(err, psa.ErrUnauthorized) || strings.Contains(err.Error(), "wrong-private-key") {
		t.Errorf("Ping with a wrong key = %v, want ErrUnauthorized without the key", err)
	}
}

// TestBackend_Ping_oneRequest: Ping asks for one company id and must not
// follow the Link header through every company (one GET per company with
// pageSize=1).
func TestBackend_Ping_oneRequest(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	for i := range 40 {
		s.ConnectWise().AddCompany(fmt.Sprintf("Company %d", i))
	}
	before := countRequests(s, http.MethodGet, "company/companies")
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if n := countRequests(s, http.MethodGet, "company/companies") - before; n != 1 {
		t.Errorf("Ping sent %d GET company/companies requests, want 1", n)
	}
}

func TestBackend_SetQuantity_lineChangedSinceRead(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	_, ag := seed(cw, "Acme")
	add := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 4})
	lines, _ := b.ReadLines(t.Context(), []string{id(ag)}, now)

	cw.CancelAddition(add, date(11, 1))
	_, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 9, Current: &lines[0], EffectiveDate: now})
	if !errors.Is(err, psa.ErrConflict) || !strings.Contains(err.Error(), "Cancelled") {
		t.Errorf("PATCH of a cancelled addition: %v, want a conflict", err)
	}

	add2 := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 4})
	lines, _ = b.ReadLines(t.Context(), []string{id(ag)}, now)
	if len(lines) != 1 || lines[0].LineID != id(add2) {
		t.Fatalf("lines = %+v", lines)
	}
	s.ResetRequests()
	cw.DeleteAddition(add2)
	_, err = b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 9, Current: &lines[0], EffectiveDate: now})
	if !errors.Is(err, psa.ErrConflict) || errors.Is(err, psa.ErrNotFound) {
		t.Errorf("PATCH of a deleted addition: %v, want a conflict (not a missing contract)", err)
	}
	if n := countRequests(s, http.MethodPost, ""); n != 0 {
		t.Errorf("POSTs = %d, want 0", n)
	}
}

func TestBackend_CheckWrites_manyAgreementsShortQueries(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	company := cw.AddCompany("Acme")
	var ids []string
	for i := range 250 {
		ids = append(ids, id(cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "A" + strconv.Itoa(i)})))
	}
	s.ResetRequests()
	if refused, err := b.CheckWrites(t.Context(), ids); err != nil || len(refused) != 0 {
		t.Fatalf("CheckWrites = %v, %v", refused, err)
	}
	status := 0
	for _, r := range s.Requests() {
		if strings.HasSuffix(r.Path, "/finance/agreements") {
			status++
			if len(r.RawQuery) > 2048 {
				t.Errorf("status read query is %d characters, more than IIS's default 2,048", len(r.RawQuery))
			}
		}
	}
	if n := len(s.Requests()); status != 3 || n != 3 {
		t.Errorf("status reads = %d of %d requests, want 3 (100 agreements each)", status, n)
	}
}

// TestBackend_laterAddition: an addition that starts after the date read
// or written does not bill on it. ReadLines reports it in the
// LaterChanges of its product's line (a zero line when nothing of the
// product bills on the date), and SetQuantity for the earlier date writes
// nothing: neither a PATCH of the later addition (its quantity bills from
// its start) nor a POST of another (it would bill along with it).
func TestBackend_laterAddition(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	onlyLater := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	both := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Endpoint"})
	_, ag := seed(cw, "Acme")
	nov1, dec1, jan1 := date(11, 1), date(12, 1), time.Date(2027, time.January, 1, 0, 0, 0, 0, time.UTC)
	later := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: onlyLater, Quantity: 10, EffectiveDate: dec1})
	live := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: both, Quantity: 5, EffectiveDate: date(10, 1)})
	next := cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: both, Quantity: 7, EffectiveDate: jan1})

	lines, err := b.ReadLines(t.Context(), []string{id(ag)}, nov1)
	if err != nil {
		t.Fatalf("ReadLines: %v", err)
	}
	want := []psa.ContractLine{
		{ContractID: id(ag), ServiceID: id(onlyLater), LaterChanges: []psa.QuantityChange{{From: dec1, Quantity: 10, LineID: id(later)}}},
		{ContractID: id(ag), ServiceID: id(both), LineID: id(live), Quantity: 5, PeriodStart: date(10, 1),
			LaterChanges: []psa.QuantityChange{{From: jan1, Quantity: 7, LineID: id(next)}}},
	}
	for i := range want {
		var got *psa.ContractLine
		for j := range lines {
			if lines[j].ServiceID == want[i].ServiceID {
				got = &lines[j]
			}
		}
		if got == nil || got.LineID != want[i].LineID || got.Quantity != want[i].Quantity || !got.PeriodStart.Equal(want[i].PeriodStart) ||
			len(got.LaterChanges) != 1 || !got.LaterChanges[0].From.Equal(want[i].LaterChanges[0].From) ||
			got.LaterChanges[0].Quantity != want[i].LaterChanges[0].Quantity || got.LaterChanges[0].LineID != want[i].LaterChanges[0].LineID {
			t.Errorf("line of product %s = %+v, want %+v", want[i].ServiceID, got, want[i])
		}
	}
	if dec, err := b.ReadLines(t.Context(), []string{id(ag)}, dec1); err != nil {
		t.Fatalf("ReadLines at %s: %v", dec1.Format(time.DateOnly), err)
	} else if i := slices.IndexFunc(dec, func(l psa.ContractLine) bool { return l.ServiceID == id(onlyLater) }); i < 0 ||
		dec[i].LineID != id(later) || dec[i].Quantity != 10 || len(dec[i].LaterChanges) != 0 {
		t.Errorf("lines at %s = %+v, want addition %d as the line of product %d", dec1.Format(time.DateOnly), dec, later, onlyLater)
	}

	s.ResetRequests()
	for _, prod := range []int64{onlyLater, both} {
		for _, cur := range []*psa.ContractLine{nil, {ContractID: id(ag), ServiceID: id(prod), LineID: id(later), Quantity: 10, PeriodStart: dec1}} {
			if cur != nil && prod != onlyLater {
				continue
			}
			_, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(ag), ServiceID: id(prod), Quantity: 42, EffectiveDate: nov1, Current: cur})
			if !errors.Is(err, psa.ErrConflict) || !strings.Contains(err.Error(), "after the effective date 2026-11-01") {
				t.Errorf("SetQuantity of product %d from %s (current %+v) error = %v, want a conflict for the later addition", prod, nov1.Format(time.DateOnly), cur, err)
			}
		}
	}
	if n := countRequests(s, http.MethodPatch, "") + countRequests(s, http.MethodPost, ""); n != 0 {
		t.Errorf("writes = %d, want 0", n)
	}
	if a, _ := cw.Addition(later); a.Quantity != 10 || !a.EffectiveDate.Equal(dec1) {
		t.Errorf("addition %d = %+v, want 10 from %s, unchanged", later, a, dec1.Format(time.DateOnly))
	}
}

// TestBackend_Instance: a hosted ConnectWise site (api-na.myconnectwise.net)
// serves many companies, whose agreement and catalog ids overlap, so the
// instance that an export and psa-syncd's state database record names the
// login company as well as the host: another company on the same site is
// another instance, and an export or database that recorded the host alone
// (before companies were recorded) is still this one's.
func TestBackend_Instance(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise))
	b := connectwise.NewBackend(newClient(t, s, &resttest.Sleeps{}, connectwise.WithBaseURL(s.ConnectWiseBaseURL())))
	other := connectwise.NewBackend(newClient(t, s, &resttest.Sleeps{}, connectwise.WithBaseURL(s.ConnectWiseBaseURL()),
		connectwise.WithCompanyID("otherco")))
	host := strings.TrimPrefix(s.URL(), "http://")
	company, _, _, _ := s.ConnectWise().Credentials()
	if got, want := b.Instance(), "company:"+company+"@"+host; got != want {
		t.Errorf("Instance = %q, want %q", got, want)
	}
	if export.SameInstance(b.Instance(), other.Instance()) {
		t.Errorf("companies %q and otherco on one site are the same instance: %q, %q", company, b.Instance(), other.Instance())
	}
	if !export.SameInstance(host, b.Instance()) {
		t.Errorf("the host %q recorded before companies were is not the instance %q", host, b.Instance())
	}
}

// TestBackend_CheckServiceFields_referenceListRefused: an API member whose
// security role may not read procurement/types still creates catalog items
// that name a type; the plan's check of the id failed the plan on the 403.
// It now leaves that id to the create, asks once, and checks the list it
// can read (subcategories) as before.
func TestBackend_CheckServiceFields_referenceListRefused(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	s.AddFault(psatest.Fault{Method: http.MethodGet, Path: "/v4_6_release/apis/3.0/procurement/types", Status: http.StatusForbidden,
		Body: `{"code":"Forbidden","message":"You do not have access to this record"}`})
	ctx := t.Context()
	svc := &psa.Service{Name: "Typed", Active: true, ConnectWise: &psa.ConnectWiseServiceFields{Identifier: "TYPED", TypeID: "999"}}
	for range 2 {
		if err := b.CheckServiceFields(ctx, svc); err != nil {
			t.Fatalf("CheckServiceFields with procurement/types refused = %v, want nil (left to the create)", err)
		}
	}
	if n := countRequests(s, http.MethodGet, "procurement/types"); n != 1 {
		t.Errorf("procurement/types read %d times, want once", n)
	}
	svc.ConnectWise.SubcategoryID = "999"
	var ve *psa.ValidationError
	if err := b.CheckServiceFields(ctx, svc); !errors.As(err, &ve) || ve.Field != "subcategory_id" {
		t.Errorf("CheckServiceFields with an unknown subcategory = %v, want a ValidationError on subcategory_id", err)
	}
}

// TestBackend_serviceLengthsInUTF16: ConnectWise checks a catalog item's
// lengths in UTF-16 code units, as Autotask does, so an emoji counts two.
// A name of 60 characters with an emoji (61 units) is refused by
// psa-syncd's own check, naming the length, not by ConnectWise's 400; and
// an identifier derived from a name is cut without an emoji that does not
// fit whole.
func TestBackend_serviceLengthsInUTF16(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	svc := &psa.Service{Name: strings.Repeat("x", 59) + "🛡", UnitPrice: 1, BillingPeriod: psa.BillingPeriodMonthly, Active: true,
		ConnectWise: &psa.ConnectWiseServiceFields{Identifier: "SOPHOS-XDR"}}
	var ve *psa.ValidationError
	if _, err := b.CreateService(t.Context(), svc); !errors.As(err, &ve) || !strings.Contains(err.Error(), "61 UTF-16 code units") {
		t.Errorf("CreateService(60 characters, 61 UTF-16 code units) = %v, want psa-syncd's own refusal naming the length", err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests sent for a name over the limit, want none", n)
	}
	if got, want := connectwise.Slug(strings.Repeat("a", 59)+"🛡"), strings.Repeat("a", 59); got != want {
		t.Errorf("Slug(59 letters and an emoji) = %q, want %q: the emoji would make it 61 UTF-16 code units", got, want)
	}
}
