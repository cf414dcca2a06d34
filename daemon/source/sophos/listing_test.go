package sophos_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
)

const fakePartner = "5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a"

// fakeSophos is a Sophos partner API whose tenant and usage answers the
// test writes, for answers the simulator does not give (a server that
// ignores paging, rows of the wrong shape). It counts the requests.
type fakeSophos struct {
	// tenants and usage answer GET /partner/v1/tenants and the October
	// 2026 usage report; n is the request's number, from 1. nil tenants
	// answers one page with tenant t1, "Acme".
	tenants func(r *http.Request, n int) string
	usage   func(r *http.Request, n int) string

	mu               sync.Mutex
	nTenants, nUsage int
}

// noDataAnswer is Sophos's answer for a month without a usage report: a
// fakeSophos usage answer of it is sent with status 404.
const noDataAnswer = `{"error":"NotFound","message":"No data for requested year or month","requestId":"r-404"}`

func (f *fakeSophos) start(t *testing.T, logger *slog.Logger) *sophos.Client {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, `{"access_token":"tok-abcdef","token_type":"bearer","expires_in":3600}`)
	})
	mux.HandleFunc("GET /whoami/v1", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, `{"id":"`+fakePartner+`","idType":"partner"}`)
	})
	mux.HandleFunc("GET /partner/v1/tenants", func(rw http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.nTenants++
		n := f.nTenants
		f.mu.Unlock()
		if f.tenants == nil {
			fmt.Fprint(rw, `{"items":[{"id":"t1","name":"Acme"}],"pages":{"current":1,"size":100,"total":1,"items":1}}`)
			return
		}
		fmt.Fprint(rw, f.tenants(r, n))
	})
	mux.HandleFunc("GET /partner/v1/billing/usage/2026/10", func(rw http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.nUsage++
		n := f.nUsage
		f.mu.Unlock()
		body := f.usage(r, n)
		if body == noDataAnswer {
			rw.WriteHeader(http.StatusNotFound)
		}
		fmt.Fprint(rw, body)
	})
	ts := newTestServer(t, mux)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := sophos.NewClient(sophos.WithCredentials("id", "top-secret"), sophos.WithAuthURL(ts+"/token"),
		sophos.WithBaseURL(ts), sophos.WithMaxRetries(0), sophos.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeSophos) requests() (tenants, usage int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nTenants, f.nUsage
}

// usageRow is a usage row of tenant t1 for order line n.
func usageRow(n int) string {
	return fmt.Sprintf(`{"accountId":"t1","productCode":"CIXA","billableQuantity":10,"orderLineItemNumber":"OL-%d"}`, n)
}

// A usage listing is the whole report or an error: the first page's
// announcement (pages.items, pages.total) is checked against what the pages
// held, the pages stop after the announced number, and a server that does
// not follow pageFromKey is stopped.
func TestBillingService_ListAllUsage_announcement(t *testing.T) {
	t.Parallel()
	page := func(next string, pages string, rows ...int) string {
		var items []string
		for _, r := range rows {
			items = append(items, usageRow(r))
		}
		if next != "" {
			next = `"nextKey":"` + next + `",`
		}
		return `{"items":[` + strings.Join(items, ",") + `],"pages":{` + next + `"size":1` + pages + `}}`
	}
	// byKey answers the pages by their pageFromKey ("" for the first).
	byKey := func(pages map[string]string) func(*http.Request, int) string {
		return func(r *http.Request, _ int) string { return pages[r.URL.Query().Get("pageFromKey")] }
	}
	for _, tc := range []struct {
		name     string
		usage    func(*http.Request, int) string
		maxPages int
		maxRows  int
		wantRows int
		wantErr  string // a part of the error; "" for none
		wantReqs int
	}{{
		name: "complete",
		usage: byKey(map[string]string{
			"":   page("k1", `,"total":2,"items":2`, 1),
			"k1": page("", "", 2)}),
		wantRows: 2, wantReqs: 4, // read twice: two readings that agree
	}, {
		name:     "ends short of the announced rows",
		usage:    byKey(map[string]string{"": page("", `,"total":3,"items":3`, 1)}),
		wantErr:  "sophos: GET /partner/v1/billing/usage/2026/10 (usage of 2026-10): the report announced 3 rows and its 1 pages held 1; not using a partial or repeated listing",
		wantReqs: 1,
	}, {
		name: "more rows than announced",
		usage: byKey(map[string]string{
			"":   page("k1", `,"total":2,"items":2`, 1),
			"k1": page("", "", 2, 3)}),
		wantErr: "the report announced 2 rows and its 2 pages held 3", wantReqs: 2,
	}, {
		name:    "an announced 0 is an announcement",
		usage:   byKey(map[string]string{"": page("", `,"total":0,"items":0`, 1)}),
		wantErr: "the report announced 0 rows and its 1 pages held 1", wantReqs: 1,
	}, {
		// The server answers page 1 again under a new key: reading it
		// would double the usage; the pages stop at the announced one.
		name: "page repeated after the announced pages",
		usage: byKey(map[string]string{
			"":   page("k1", `,"total":1,"items":1`, 1),
			"k1": page("", "", 1)}),
		wantRows: 1, wantReqs: 1,
	}, {
		name: "new keys for ever, pages announced",
		usage: func(r *http.Request, n int) string {
			if r.URL.Query().Get("pageFromKey") == "" {
				return page("k1", `,"total":2,"items":2`, 1)
			}
			return page(fmt.Sprintf("k%d", n), "", 2)
		},
		wantRows: 2, wantReqs: 4, // read twice
	}, {
		name: "new keys for ever, nothing announced",
		usage: func(_ *http.Request, n int) string {
			return page(fmt.Sprintf("k%d", n), "", n)
		},
		maxPages: 5,
		wantErr:  "sophos: GET /partner/v1/billing/usage/2026/10 (usage of 2026-10): more than 5 pages; stopping rather than reading on",
		wantReqs: 5,
	}, {
		name: "pageFromKey ignored, nothing announced",
		usage: func(_ *http.Request, n int) string {
			return page(fmt.Sprintf("k%d", n), "", 1)
		},
		wantErr:  `page 2 (key "k1") repeats the rows of page 1`,
		wantReqs: 2,
	}, {
		name:     "ends short of the announced pages",
		usage:    byKey(map[string]string{"": page("", `,"total":3`, 1)}),
		wantErr:  "the report announced 3 pages and the listing ended after 1; not using a partial listing",
		wantReqs: 1,
	}, {
		name: "points past the announced pages",
		usage: byKey(map[string]string{
			"":   page("k1", `,"total":1`, 1),
			"k1": page("", "", 2)}),
		wantErr:  "the report announced 1 pages and page 1 still points to another",
		wantReqs: 1,
	}, {
		name: "as many rows as psa-syncd reads",
		usage: byKey(map[string]string{
			"":   page("k1", `,"total":2,"items":2`, 1),
			"k1": page("", "", 2)}),
		maxRows:  2,
		wantRows: 2, wantReqs: 4, // read twice
	}, {
		// A report (or a server) announcing more rows than psa-syncd
		// holds fails before its pages take the memory.
		name:     "more rows announced than psa-syncd reads",
		usage:    byKey(map[string]string{"": page("k1", `,"total":3,"items":3`, 1)}),
		maxRows:  2,
		wantErr:  "sophos: GET /partner/v1/billing/usage/2026/10 (usage of 2026-10): the report announces 3 rows, more than the 2 psa-syncd reads of one month's usage; not reading it",
		wantReqs: 1,
	}, {
		name: "more rows than psa-syncd reads, nothing announced",
		usage: func(_ *http.Request, n int) string {
			return page(fmt.Sprintf("k%d", n), "", n)
		},
		maxRows:  2,
		wantErr:  "the report's first 3 pages hold more than the 2 rows psa-syncd reads of one month's usage; stopping rather than reading on",
		wantReqs: 3,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSophos{usage: tc.usage}
			c := f.start(t, nil)
			if tc.maxPages > 0 {
				sophos.SetMaxPages(c, tc.maxPages, 1000)
			}
			if tc.maxRows > 0 {
				sophos.SetMaxUsageRows(c, tc.maxRows)
			}
			// A client that pages for ever fails at the deadline.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			items, err := c.Billing.ListAllUsage(ctx, 2026, time.October, nil)
			if _, n := f.requests(); n != tc.wantReqs {
				t.Errorf("usage requests = %d, want %d", n, tc.wantReqs)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ListAllUsage = %d rows, error %v; want an error with %q", len(items), err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "top-secret") || strings.Contains(err.Error(), "tok-abcdef") {
					t.Errorf("error %q shows a secret", err)
				}
				return
			}
			if err != nil || len(items) != tc.wantRows {
				t.Fatalf("ListAllUsage = %d rows, %v; want %d rows", len(items), err, tc.wantRows)
			}
		})
	}
}

// The audit's case through Fetch: a page repeated under a new key after the
// only announced page is not summed twice.
func TestSource_FetchRepeatedPageNotDoubled(t *testing.T) {
	t.Parallel()
	item := `{"accountId":"t1","productCode":"CIXA","billableQuantity":40,"orderLineItemNumber":"OL-1"}`
	f := &fakeSophos{usage: func(r *http.Request, _ int) string {
		if r.URL.Query().Get("pageFromKey") == "" {
			return `{"items":[` + item + `],"pages":{"fromKey":"k0","nextKey":"k1","size":1,"total":1,"items":1}}`
		}
		return `{"items":[` + item + `],"pages":{"fromKey":"k1","size":1}}`
	}}
	rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != 1 || rep.Records[0].Quantity != 40 || len(rep.Problems) != 0 {
		t.Errorf("records %+v, problems %v; want t1 CIXA 40 and no problem", rep.Records, rep.Problems)
	}
}

// A tenants listing without pages.total from a server that does not follow
// page ends, and a listing with new tenants on every page stops at the cap.
func TestTenantsService_ListAll_serverIgnoresPage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		tenants  func(*http.Request, int) string
		wantErr  string
		wantReqs int
	}{{
		name: "answers page 1 to every page",
		tenants: func(*http.Request, int) string {
			return `{"items":[{"id":"t1","name":"Acme"}],"pages":{"current":1,"size":1}}`
		},
		wantErr:  "sophos: GET /partner/v1/tenants: asked for page 2, the answer is page 1; the server does not follow page",
		wantReqs: 2,
	}, {
		name: "repeats the tenants without pages.current",
		tenants: func(*http.Request, int) string {
			return `{"items":[{"id":"t1","name":"Acme"}],"pages":{"size":1}}`
		},
		wantErr:  "sophos: GET /partner/v1/tenants: page 2 holds the same tenants as page 1; the server does not follow page",
		wantReqs: 2,
	}, {
		name: "new tenants for ever",
		tenants: func(r *http.Request, n int) string {
			return fmt.Sprintf(`{"items":[{"id":"t%d"}],"pages":{"current":%s,"size":1}}`, n, r.URL.Query().Get("page"))
		},
		wantErr:  "sophos: GET /partner/v1/tenants: more than 4 pages; stopping rather than reading on",
		wantReqs: 4,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSophos{tenants: tc.tenants}
			c := f.start(t, nil)
			sophos.SetMaxPages(c, 1000, 4)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			ts, err := c.Tenants.ListAll(ctx)
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ListAll = %d tenants, %v; want error %q", len(ts), err, tc.wantErr)
			}
			if n, _ := f.requests(); n != tc.wantReqs {
				t.Errorf("tenant requests = %d, want %d", n, tc.wantReqs)
			}
		})
	}
}

// A tenant list whose answers count their pages (pages.total) but do not
// say which page they are (no pages.current) is read to the count: the
// first page is not the whole list. A partial list would tell the usage
// pass that the tenants past it are gone, and the ticket pass that they
// are not the partner's.
func TestTenantsService_ListAll_totalWithoutCurrent(t *testing.T) {
	t.Parallel()
	f := &fakeSophos{tenants: func(r *http.Request, n int) string {
		p := r.URL.Query().Get("page")
		return fmt.Sprintf(`{"items":[{"id":"t%s","name":"Tenant %s"}],"pages":{"size":1,"total":3,"items":3,"maxSize":100}}`, p, p)
	}}
	ts, err := f.start(t, nil).Tenants.ListAll(t.Context())
	var ids []string
	for _, tn := range ts {
		ids = append(ids, tn.ID)
	}
	if err != nil || strings.Join(ids, ",") != "t1,t2,t3" {
		t.Errorf("ListAll = %v, %v; want t1,t2,t3", ids, err)
	}
	if n, _ := f.requests(); n != 3 {
		t.Errorf("%d tenant requests, want 3", n)
	}
}

// A tenant added or removed while the list is read shifts its pages: page
// 2 repeats page 1's last tenant (with one removed meanwhile, the count is
// still as announced and t3 is on no page), or holds one tenant fewer than
// announced. The first list was taken whole: t3, on no page, was "gone"
// for the usage pass's vendor label and failed a ticket pass ("not one of
// the partner's tenants"). The list is read again once now, and a second
// listing that moved too is an error.
func TestTenantsService_ListAll_shiftedWhileRead(t *testing.T) {
	t.Parallel()
	whole := map[string]string{
		"1": `{"items":[{"id":"t1","name":"One"},{"id":"t2","name":"Two"}],"pages":{"current":1,"size":2,"total":2,"items":4}}`,
		"2": `{"items":[{"id":"t3","name":"Three"},{"id":"t4","name":"Four"}],"pages":{"current":2,"size":2,"total":2,"items":4}}`,
	}
	repeated := `{"items":[{"id":"t2","name":"Two"},{"id":"t4","name":"Four"}],"pages":{"current":2,"size":2,"total":2,"items":4}}`
	short := `{"items":[{"id":"t4","name":"Four"}],"pages":{"current":2,"size":2,"total":2,"items":3}}`
	for _, tc := range []struct {
		name   string
		page2  func(n int) string // the n-th tenant request, from 1
		want   string
		errors bool
	}{
		{"a tenant on two pages", func(n int) string {
			if n == 2 {
				return repeated
			}
			return whole["2"]
		}, "t1,t2,t3,t4", false},
		{"fewer tenants than announced", func(n int) string {
			if n == 2 {
				return short
			}
			return whole["2"]
		}, "t1,t2,t3,t4", false},
		{"shifted twice", func(int) string { return repeated }, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSophos{tenants: func(r *http.Request, n int) string {
				if r.URL.Query().Get("page") == "2" {
					return tc.page2(n)
				}
				return whole["1"]
			}}
			ts, err := f.start(t, nil).Tenants.ListAll(t.Context())
			var ids []string
			for _, tn := range ts {
				ids = append(ids, tn.ID)
			}
			switch {
			case tc.errors && (err == nil || !strings.Contains(err.Error(), "pages shifted while it was read, twice")):
				t.Errorf("ListAll = %v, %v; want an error saying the pages shifted twice", ids, err)
			case !tc.errors && (err != nil || strings.Join(ids, ",") != tc.want):
				t.Errorf("ListAll = %v, %v; want %s", ids, err, tc.want)
			}
			if n, _ := f.requests(); n != 4 {
				t.Errorf("%d tenant requests, want 4 (read twice)", n)
			}
		})
	}
}

// Rows inserted before the next page's key while the report is read shift
// the pages: page 2 repeats an order line of page 1, and with a row removed
// meanwhile the count is still as announced while t2's OL-4 is on no page.
// The report is read again until two readings in a row agree: t2 is not
// billed 10 for its 20, nor t1 failed for a repeat that was the paging's.
// A repeat in two readings that agree is the report's own: t1 fails for it
// (the engine writes none of its lines). A second reading shifted
// otherwise (t2's OL-3 on no page) is not, and three readings that differ
// fail the report.
func TestSource_FetchOrderLineOnTwoPages(t *testing.T) {
	t.Parallel()
	row := func(tenant string, n int) string {
		return fmt.Sprintf(`{"accountId":%q,"productCode":"CIXA","billableQuantity":10,"orderLineItemNumber":"OL-%d"}`, tenant, n)
	}
	// The report holds t1's OL-1 and OL-2 and t2's OL-3 and OL-4, 20 each.
	// A shifted page 2 starts with page 1's last row again: with a row
	// removed meanwhile the count is still as announced, and one of t2's
	// rows is on no page (OL-4 in shift a, OL-3 in shift b).
	const (
		clean = iota
		shiftA
		shiftB
	)
	page := func(r *http.Request, shift int) string {
		if r.URL.Query().Get("pageFromKey") == "" {
			return `{"items":[` + row("t1", 1) + `,` + row("t1", 2) + `],"pages":{"nextKey":"k2","size":2,"total":2,"items":4}}`
		}
		switch shift {
		case shiftA:
			return `{"items":[` + row("t1", 2) + `,` + row("t2", 3) + `],"pages":{"size":2}}`
		case shiftB:
			return `{"items":[` + row("t1", 2) + `,` + row("t2", 4) + `],"pages":{"size":2}}`
		}
		return `{"items":[` + row("t2", 3) + `,` + row("t2", 4) + `],"pages":{"size":2}}`
	}
	for _, tc := range []struct {
		name     string
		shift    func(reading int) int // from 1
		want     []string
		problem  bool
		err      string
		readings int
	}{
		// The second reading, without the repeat, differs from the
		// first: a third that agrees with it counts.
		{"shifted while read", func(n int) int { return map[bool]int{true: shiftA}[n == 1] }, []string{"t1|20", "t2|20"}, false, "", 3},
		{"repeated in the report", func(int) int { return shiftA }, []string{"t1|20", "t2|10"}, true, "", 2},
		// A second reading shifted otherwise is not the report's own
		// repeat: it took t2 at 10 while it has 20. Three readings
		// that differ fail the report.
		{"shifted otherwise when read again", func(n int) int { return map[int]int{1: shiftA, 2: shiftB}[n] }, nil, false,
			"the rows of its 2 pages changed between each of 3 readings, and no two readings in a row held the same rows", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSophos{usage: func(r *http.Request, n int) string { return page(r, tc.shift((n+1)/2)) }}
			rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
			if _, n := f.requests(); n != 2*tc.readings {
				t.Errorf("%d usage requests, want %d: the report read %d times", n, 2*tc.readings, tc.readings)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Fetch error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rep.Records {
				got = append(got, fmt.Sprintf("%s|%d", r.CustomerID, r.Quantity))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("records = %v, want %v", got, tc.want)
			}
			var unreadable []string
			for _, p := range rep.Problems {
				if p.Unreadable {
					unreadable = append(unreadable, p.String())
				}
			}
			if (len(unreadable) > 0) != tc.problem {
				t.Errorf("unreadable problems = %q, want some: %v", unreadable, tc.problem)
			}
		})
	}
}

// A row removed before the next page's key while the report is read
// shifts the next page back: its first row is on no page. With a row added
// after the last page meanwhile, the listing has no repeat and the count
// its first page announced, so that only another reading shows the row it
// missed. Reports of more than one page are read until two readings in a
// row agree: t2 is not billed 10 for its 20.
// TestSource_FetchNoDataAtTheSecondReading: a report of two pages is read
// twice; a "no data" 404 at the second reading was returned as is, and
// read as a month without a report: nothing billed, a warning only. The
// report was there a moment before, so it changed while read: an error.
func TestSource_FetchNoDataAtTheSecondReading(t *testing.T) {
	t.Parallel()
	f := &fakeSophos{usage: func(r *http.Request, n int) string {
		switch {
		case n > 2:
			return noDataAnswer
		case r.URL.Query().Get("pageFromKey") == "":
			return `{"items":[` + usageRow(1) + `],"pages":{"nextKey":"k2","size":1,"total":2,"items":2}}`
		default:
			return `{"items":[` + usageRow(2) + `],"pages":{"size":1}}`
		}
	}}
	rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
	const want = "sophos: GET /partner/v1/billing/usage/2026/10 (usage of 2026-10): read once, then answered: " +
		"sophos: GET /partner/v1/billing/usage/2026/10: 404 Not Found: No data for requested year or month (requestId r-404); the report changed while it was read, so not using it"
	if err == nil || err.Error() != want {
		t.Fatalf("Fetch = %+v, %v; want the error %q", rep, err, want)
	}
	if _, n := f.requests(); n != 3 {
		t.Errorf("%d usage requests, want 3", n)
	}
}

func TestSource_FetchRowOnNoPage(t *testing.T) {
	t.Parallel()
	row := func(tenant string, n int) string {
		return fmt.Sprintf(`{"accountId":%q,"productCode":"CIXA","billableQuantity":10,"orderLineItemNumber":"OL-%d"}`, tenant, n)
	}
	a, b, c, d, e := row("t1", 1), row("t1", 2), row("t2", 3), row("t2", 4), row("t3", 5)
	pages := func(rows ...string) [2]string {
		return [2]string{
			`{"items":[` + rows[0] + `,` + rows[1] + `],"pages":{"nextKey":"k2","size":2,"total":2,"items":4}}`,
			`{"items":[` + rows[2] + `,` + rows[3] + `],"pages":{"size":2}}`,
		}
	}
	before, after := pages(a, b, c, d), pages(b, c, d, e) // a removed, e added
	// The same rows sent otherwise: keys in another order, a field that
	// psa-syncd does not read with another value; or in another order.
	sentOtherwise := pages(a, b, c, `{"orderLineItemNumber":"OL-4","netPrice":99.5,"billableQuantity":10,"productCode":"CIXA","accountId":"t2"}`)
	for _, tc := range []struct {
		name     string
		reading  func(n int) [2]string // from 1
		want     []string
		err      string
		readings int
	}{
		{"unchanged", func(int) [2]string { return before }, []string{"t1|20", "t2|20"}, "", 2},
		{"the same rows sent otherwise", func(n int) [2]string { return map[bool][2]string{true: before, false: sentOtherwise}[n == 1] },
			[]string{"t1|20", "t2|20"}, "", 2},
		{"the same rows in another order", func(n int) [2]string { return map[bool][2]string{true: before, false: pages(b, a, d, c)}[n == 1] },
			[]string{"t1|20", "t2|20"}, "", 2},
		{"changed while read", func(n int) [2]string {
			if n == 1 {
				return [2]string{before[0], after[1]}
			}
			return after
		}, []string{"t1|10", "t2|20", "t3|10"}, "", 3},
		{"changed at every reading", func(n int) [2]string {
			if n%2 == 1 {
				return [2]string{before[0], after[1]}
			}
			return before
		}, nil, "no two readings in a row held the same rows", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSophos{usage: func(r *http.Request, n int) string {
				p := tc.reading((n + 1) / 2)
				if r.URL.Query().Get("pageFromKey") == "" {
					return p[0]
				}
				return p[1]
			}}
			rep, err := sophos.NewSource(f.start(t, nil)).Fetch(t.Context(), oct2026)
			if _, n := f.requests(); n != 2*tc.readings {
				t.Errorf("%d usage requests, want %d: the report read %d times", n, 2*tc.readings, tc.readings)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Fetch error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rep.Records {
				got = append(got, fmt.Sprintf("%s|%d", r.CustomerID, r.Quantity))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("records = %v, want %v", got, tc.want)
			}
			for _, p := range rep.Problems {
				t.Errorf("problem %s", p)
			}
		})
	}
}
