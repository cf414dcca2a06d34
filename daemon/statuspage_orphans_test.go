package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// The status page lists the orphaned lines (psa-syncd set them, no mapping
// makes it write them any more), with why and what to do, and has no such
// section without them; GET /api/v1/unmapped has them under orphaned.
func TestStatusPage_orphanedLines(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	ui := newUIClient(t, e.d)
	if body := ui.do(http.MethodGet, "/", nil).Body.String(); strings.Contains(body, `id="orphaned"`) {
		t.Error("GET / lists orphaned lines before any pass found one")
	}
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		Orphaned: []usage.OrphanedLine{
			{Reason: usage.OrphanService, CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684001", ServiceID: "30000012", Quantity: 5, Read: true, Since: "2026-10-01", RunID: 2},
			{Reason: usage.OrphanCustomer, CustomerID: "cust-globex", ContractID: "29684002", ServiceID: "30000013", Quantity: 2, Since: "2026-09-01", RunID: 1}},
	}}
	if err := e.d.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	body := ui.do(http.MethodGet, "/", nil).Body.String()
	for _, want := range []string{"Orphaned lines", `id="orphaned"`, "cust-acme", "30000012", "as read", "2026-10-01", "no product mapping names the service",
		"29684002", "psa-syncd's ledger", "no customer mapping names the contract", "Set each to 0",
		"On Kaseya BMS, whose lines cannot be read, a line listed here (cleared or not) and mapped again is posted again at its usage."} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	got, err := e.d.LastUnmapped()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	if !strings.Contains(string(b), `"orphaned":[{"reason":"service","customer_id":"cust-acme"`) {
		t.Errorf("unmapped report = %s, want orphaned lines", b)
	}
}

// TestStatusPage_clearOrphan: signed in, each orphaned line has a Clear
// form (POST /ui/orphans/clear with the page's CSRF token); it clears that
// line alone, which leaves the page. Signed out, there is no form.
func TestStatusPage_clearOrphan(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		Orphaned: []usage.OrphanedLine{
			{Reason: usage.OrphanService, CustomerID: "cust-acme", ContractID: "29684001", ServiceID: "30000012", Quantity: 5, Since: "2026-10-01", RunID: 2, Seq: 4},
			{Reason: usage.OrphanCustomer, CustomerID: "cust-globex", ContractID: "29684002", ServiceID: "30000013", Quantity: 2, Since: "2026-09-01", RunID: 1, Seq: 3}},
	}}
	if err := e.d.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	page := c.do(http.MethodGet, "/", nil).Body.String()
	if strings.Contains(page, `action="/ui/orphans/clear"`) {
		t.Errorf("signed out, the page offers to clear orphaned lines")
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {csrf}, "next": {"/"}})
	page = c.do(http.MethodGet, "/", nil).Body.String()
	if n := strings.Count(page, `action="/ui/orphans/clear"`); n != 2 {
		t.Fatalf("signed in, %d Clear forms, want one per orphaned line", n)
	}
	if n := strings.Count(page, `name="zeroed" value="1"`); n != 2 {
		t.Errorf("signed in, %d Clear as zeroed buttons, want one per orphaned line", n)
	}
	if rec := c.do(http.MethodPost, "/ui/orphans/clear", url.Values{"csrf": {"wrong"}, "contract": {"29684002"}, "service": {"30000013"}, "next": {"/"}}); rec.Code != http.StatusForbidden {
		t.Errorf("a form with another CSRF token = %d, want 403", rec.Code)
	}
	rec := c.do(http.MethodPost, "/ui/orphans/clear", url.Values{"csrf": {csrf}, "contract": {"29684002"}, "service": {"30000013"}, "next": {"/"}})
	page = c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String()
	if got := flash(page); !strings.Contains(got, "Cleared the orphaned line of contract 29684002, service 30000013") {
		t.Errorf("message after the clear = %q", got)
	}
	i := strings.Index(page, `id="orphaned"`)
	if i < 0 {
		t.Fatal("after the clear the page lists no orphaned line, want cust-acme's")
	}
	if table := page[i:][:strings.Index(page[i:], "</tbody>")]; strings.Contains(table, "29684002") || !strings.Contains(table, "29684001") {
		t.Errorf("after the clear the orphaned lines are %s; want cust-acme's alone", table)
	}
	// Clear as zeroed: the line was set to 0 in the PSA.
	rec = c.do(http.MethodPost, "/ui/orphans/clear", url.Values{"csrf": {csrf}, "contract": {"29684001"}, "service": {"30000012"}, "zeroed": {"1"}, "next": {"/"}})
	page = c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String()
	if got := flash(page); !strings.Contains(got, "Cleared the orphaned line of contract 29684001, service 30000012 as set to 0 in the PSA") {
		t.Errorf("message after the clear as zeroed = %q", got)
	}
	if strings.Contains(page, `id="orphaned"`) {
		t.Error("after both clears the page still lists orphaned lines")
	}
}

// TestStatusPage_clearOrphanNamesTheUser: behind basic_auth_users the
// browser sends its user with every request, and a line cleared on the
// status page is recorded with that user's name, as through the API
// (POST /api/v1/orphans/clear): the second clear of the line says who
// cleared it. A name the listener did not check (no basic_auth_users) is
// not taken.
func TestStatusPage_clearOrphanNamesTheUser(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		Orphaned: []usage.OrphanedLine{
			{Reason: usage.OrphanService, CustomerID: "cust-acme", ContractID: "29684001", ServiceID: "30000012", Quantity: 5, Since: "2026-10-01", RunID: 2, Seq: 4},
			{Reason: usage.OrphanCustomer, CustomerID: "cust-globex", ContractID: "29684002", ServiceID: "30000013", Quantity: 2, Since: "2026-09-01", RunID: 1, Seq: 3}},
	}}
	if err := e.d.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	c.header = http.Header{}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth("ops-anna", "reader-password")
	c.header.Set("Authorization", req.Header.Get("Authorization"))
	clearTwice := func(contract, service string) string {
		t.Helper()
		m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
		if m == nil {
			t.Fatal("no CSRF field on the page")
		}
		c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
		form := url.Values{"csrf": {m[1]}, "contract": {contract}, "service": {service}, "next": {"/"}}
		c.do(http.MethodPost, "/ui/orphans/clear", form)
		rec := c.do(http.MethodPost, "/ui/orphans/clear", form)
		return flash(c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String())
	}
	if got := clearTwice("29684002", "30000013"); !strings.Contains(got, "Nothing to do") || strings.Contains(got, "ops-anna") {
		t.Errorf("second clear without basic_auth_users = %q; want it cleared already, with no user taken from an unchecked header", got)
	}
	e.d.webConfigFile = filepath.Join(t.TempDir(), "web-config.yml")
	dtWrite(t, e.d.webConfigFile, fmt.Sprintf("basic_auth_users:\n  ops-anna: %s\n", bcryptHash(t, "reader-password")))
	if got := clearTwice("29684001", "30000012"); !strings.Contains(got, "Nothing to do") || !strings.Contains(got, "(user ops-anna: status page)") {
		t.Errorf("second clear behind basic_auth_users = %q; want it cleared already by user ops-anna on the status page", got)
	}
}
