package sophos_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
)

// A row without billableQuantity, or with null, is usage that cannot be
// read, for its tenant: not 0.
func TestSource_FetchMissingQuantity(t *testing.T) {
	t.Parallel()
	f := &fakeSophos{usage: func(*http.Request, int) string {
		return `{"items":[
			{"accountId":"t1","productCode":"CIXA","billableQuantity":40},
			{"accountId":"t1","productCode":"CIXA","orderLineItemNumber":"OL-2"},
			{"accountId":"t2","productCode":"CIXA","billableQuantity":null},
			{"accountId":"t3","productCode":"CIXA","billableQuantity":5}],
			"pages":{"size":4,"total":1,"items":4}}`
	}}
	rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	want := []source.Problem{
		{Where: "sophos usage 2026-10 item 2 (account t1, order line OL-2)", Unreadable: true, CustomerID: "t1", Product: "CIXA"},
		{Where: "sophos usage 2026-10 item 3 (account t2)", Unreadable: true, CustomerID: "t2", Product: "CIXA"},
	}
	checkProblems(t, rep.Problems, want, "billableQuantity is missing or null")
	var got []string
	for _, r := range rep.Records {
		got = append(got, fmt.Sprintf("%s|%s|%d", r.CustomerID, r.Product, r.Quantity))
	}
	if diff := cmp.Diff([]string{"t1|CIXA|40", "t3|CIXA|5"}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestSource_FetchRepeatedOrderLine: a row that repeats an earlier row's
// order line of the same product and billing dates is the same usage
// listed twice: it holds its tenant instead of doubling its quantity. An
// order line split by billing dates, and rows without an order line
// number, add up as before.
func TestSource_FetchRepeatedOrderLine(t *testing.T) {
	t.Parallel()
	f := &fakeSophos{usage: func(*http.Request, int) string {
		return `{"items":[
			{"accountId":"t1","productCode":"CIXA","orderLineItemNumber":"OL-1","billingStartDate":"2026-10-01","billingEndDate":"2026-10-31","billableQuantity":40},
			{"accountId":"t1","productCode":"CIXA","orderLineItemNumber":"OL-1","billingStartDate":"2026-10-01","billingEndDate":"2026-10-31","billableQuantity":40},
			{"accountId":"t2","productCode":"CIXA","orderLineItemNumber":"OL-7","billingStartDate":"2026-10-01","billingEndDate":"2026-10-14","billableQuantity":10},
			{"accountId":"t2","productCode":"CIXA","orderLineItemNumber":"OL-7","billingStartDate":"2026-10-15","billingEndDate":"2026-10-31","billableQuantity":12},
			{"accountId":"t3","productCode":"CIXA","billableQuantity":5},
			{"accountId":"t3","productCode":"CIXA","billableQuantity":5}],
			"pages":{"size":6,"total":1,"items":6}}`
	}}
	rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	want := []source.Problem{
		{Where: "sophos usage 2026-10 item 2 (account t1, order line OL-1)", Unreadable: true, CustomerID: "t1", Product: "CIXA"},
	}
	checkProblems(t, rep.Problems, want, "repeats item 1")
	var got []string
	for _, r := range rep.Records {
		got = append(got, fmt.Sprintf("%s|%s|%d", r.CustomerID, r.Product, r.Quantity))
	}
	if diff := cmp.Diff([]string{"t1|CIXA|40", "t2|CIXA|22", "t3|CIXA|10"}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// checkProblems compares problems with want, ignoring Err, and checks that
// every error says errPart.
func checkProblems(t *testing.T, got, want []source.Problem, errPart string) {
	t.Helper()
	for _, p := range got {
		if p.Err == nil || !strings.Contains(p.Err.Error(), errPart) {
			t.Errorf("problem %q does not say %q", p, errPart)
		}
	}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Err" }, cmp.Ignore())); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// One row that does not decode holds its own tenant only (or every
// customer, when whose it is cannot be read), not the whole fetch.
func TestSource_FetchMalformedRows(t *testing.T) {
	t.Parallel()
	f := &fakeSophos{usage: func(*http.Request, int) string {
		return `{"items":[
			{"accountId":"t1","productCode":"CIXA","billableQuantity":"40","orderLineItemNumber":"OL-1"},
			{"accountId":"t2","productCode":"CIXA","billableQuantity":5},
			{"accountId":"` + fakePartner + `","productCode":"XGS","billableQuantity":{}},
			{"accountId":7,"productCode":"CIXA","billableQuantity":1},
			42],
			"pages":{"size":5,"total":1,"items":5}}`
	}}
	rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(rep.Records) != 1 || rep.Records[0].CustomerID != "t2" || rep.Records[0].Quantity != 5 {
		t.Errorf("records = %+v, want t2's 5 only", rep.Records)
	}
	want := []source.Problem{
		{Where: "sophos usage 2026-10 item 1 (account t1, order line OL-1)", Unreadable: true, CustomerID: "t1", Product: "CIXA"},
		// The partner's own usage is never billed: only reported.
		{Where: "sophos usage 2026-10 item 3 (account " + fakePartner + ")", Product: "XGS"},
		// Whose usage these are cannot be read: any customer's.
		{Where: "sophos usage 2026-10 item 4", Unreadable: true, Product: "CIXA"},
		{Where: "sophos usage 2026-10 item 5", Unreadable: true},
	}
	checkProblems(t, rep.Problems, want, "the row cannot be decoded: json: cannot unmarshal")
}

// A null item of the report is a row that cannot be read, like an item
// that is not an object: whose usage it was cannot be told, so it is any
// customer's (the engine then writes no line this pass). Decoded as an
// empty row, it was usage of no customer, only reported, and a tenant's
// row that a server failed to write would have lowered its quantity.
func TestSource_FetchNullRow(t *testing.T) {
	t.Parallel()
	f := &fakeSophos{usage: func(*http.Request, int) string {
		return `{"items":[{"accountId":"t1","productCode":"CIXA","billableQuantity":40},null],"pages":{"size":2,"total":1,"items":2}}`
	}}
	rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := []source.Problem{{Where: "sophos usage 2026-10 item 2", Unreadable: true}}
	checkProblems(t, rep.Problems, want, "the row cannot be decoded: the item is null, not an object")
}

// The tenant list only names customers: a tenant that does not decode, or
// a list that cannot be read, does not fail the usage fetch.
func TestSource_FetchTenantNamesOptional(t *testing.T) {
	t.Parallel()
	usage := func(*http.Request, int) string {
		return `{"items":[
			{"accountId":"t1","productCode":"CIXA","billableQuantity":40,"assignedAccountIdentifier":"Acme (usage)"},
			{"accountId":"t2","productCode":"CIXA","billableQuantity":2}],
			"pages":{"size":2,"total":1,"items":2}}`
	}
	t.Run("a tenant that does not decode", func(t *testing.T) {
		t.Parallel()
		var logs strings.Builder
		f := &fakeSophos{usage: usage, tenants: func(*http.Request, int) string {
			return `{"items":[{"id":"t1","name":{"first":"Acme"}},{"id":"t2","name":"Globex","partner":"p"}],"pages":{"current":1,"size":100,"total":1,"items":2}}`
		}}
		rep, err := sophos.NewSource(f.start(t, slog.New(slog.NewTextHandler(&logs, nil)))).Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		var got []string
		for _, r := range rep.Records {
			got = append(got, r.CustomerID+"|"+r.CustomerName)
		}
		if diff := cmp.Diff([]string{"t1|Acme (usage)", "t2|Globex"}, got); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
		if len(rep.Problems) != 0 {
			t.Errorf("problems = %v, want none", rep.Problems)
		}
		if !strings.Contains(logs.String(), "tenant=t1") || !strings.Contains(logs.String(), "tenant=t2") {
			t.Errorf("the tenants that do not decode are not logged: %s", logs.String())
		}
		// Under err, the key of every other error psa-syncd logs.
		if strings.Count(logs.String(), " err=") != 2 {
			t.Errorf("the tenants' errors are not logged under err: %s", logs.String())
		}
	})
	t.Run("a list that cannot be read", func(t *testing.T) {
		t.Parallel()
		var logs strings.Builder
		f := &fakeSophos{usage: usage, tenants: func(*http.Request, int) string {
			return `{"items":{"id":"t1"},"pages":{"current":1,"size":100,"total":1,"items":1}}`
		}}
		rep, err := sophos.NewSource(f.start(t, slog.New(slog.NewTextHandler(&logs, nil)))).Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(rep.Records) != 2 || rep.Records[0].CustomerName != "Acme (usage)" {
			t.Errorf("records = %+v", rep.Records)
		}
		if len(rep.Problems) != 1 || rep.Problems[0].Unreadable || !strings.Contains(rep.Problems[0].String(), "sophos tenants: tenant names cannot be read") {
			t.Errorf("problems = %v, want one notice about the tenant names", rep.Problems)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), " err=") {
			t.Errorf("the tenant list's error is not logged under err: %s", logs.String())
		}
	})
}

// A tenants listing from a server that does not follow page does not keep
// the usage fetch from ending: the tenants only name the customers.
func TestSource_FetchTenantsIgnorePage(t *testing.T) {
	t.Parallel()
	f := &fakeSophos{
		tenants: func(*http.Request, int) string {
			return `{"items":[{"id":"t1","name":"Acme"}],"pages":{"current":1,"size":1}}`
		},
		usage: func(*http.Request, int) string {
			return `{"items":[{"accountId":"t1","productCode":"CIXA","billableQuantity":40}],"pages":{"size":1}}`
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rep, err := sophos.NewSource(f.start(t, nil)).Fetch(ctx, oct2026)
	if err != nil || len(rep.Records) != 1 || rep.Records[0].Quantity != 40 {
		t.Errorf("Fetch = %+v, %v; want t1's 40", rep, err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].String(), "asked for page 2, the answer is page 1") {
		t.Errorf("problems = %v, want the tenant listing's error as a notice", rep.Problems)
	}
}

// The tenant list the usage fetch reads for names also lists the partner's
// tenants, so that a mapped tenant without a row can be told apart: still
// the partner's with no usage, or gone. No further request is made, and a
// list that misses an id, or cannot be read, tells nothing.
func TestSource_FetchListsTenants(t *testing.T) {
	t.Parallel()
	usage := func(*http.Request, int) string {
		return `{"items":[{"accountId":"t1","productCode":"CIXA","billableQuantity":40}],"pages":{"size":1,"total":1,"items":1}}`
	}
	for _, tc := range []struct {
		name, tenants string
		want          []string
		listed        bool
	}{
		{"every id read", `{"items":[{"id":"t1","name":"Acme"},{"id":" T2 ","name":{"x":1}},{"id":"t3"}],"pages":{"current":1,"size":100,"total":1,"items":3}}`,
			[]string{"t1", "T2", "t3"}, true},
		{"a tenant without an id", `{"items":[{"id":"t1","name":"Acme"},{"name":"Globex"}],"pages":{"current":1,"size":100,"total":1,"items":2}}`, nil, false},
		{"a list that cannot be read", `{"items":{"id":"t1"},"pages":{"current":1,"size":100,"total":1,"items":1}}`, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSophos{usage: usage, tenants: func(*http.Request, int) string { return tc.tenants }}
			rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if rep.CustomersListed != tc.listed || !slices.Equal(rep.Customers, tc.want) {
				t.Errorf("Customers = %q, listed %v; want %q, %v", rep.Customers, rep.CustomersListed, tc.want, tc.listed)
			}
			if listed, known := rep.Listed("t2"); known != tc.listed || listed != tc.listed {
				t.Errorf("Listed(t2) = %v, %v; want %v, %v", listed, known, tc.listed, tc.listed)
			}
			if listed, known := rep.Listed("t9"); listed || known != tc.listed {
				t.Errorf("Listed(t9) = %v, %v; want false, %v", listed, known, tc.listed)
			}
			if n, _ := f.requests(); n != 1 {
				t.Errorf("%d tenant requests, want 1", n)
			}
		})
	}
}
