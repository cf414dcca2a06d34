package daemon

import (
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// uiClient drives the status page's handler with a cookie jar of its own.
type uiClient struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]string
	// remoteAddr and header, when set, are every request's peer and extra
	// headers (a proxy's address and X-Forwarded-For).
	remoteAddr string
	header     http.Header
}

func newUIClient(t *testing.T, d *Daemon) *uiClient {
	return &uiClient{t: t, h: d.Handler(), cookies: map[string]string{}}
}

func (c *uiClient) do(method, target string, form url.Values) *httptest.ResponseRecorder {
	c.t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequestWithContext(c.t.Context(), method, target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequestWithContext(c.t.Context(), method, target, nil)
	}
	if c.remoteAddr != "" {
		req.RemoteAddr = c.remoteAddr
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	for _, ck := range rec.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return rec
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// The status page lists the mapped customers that the last pass's usage
// report named nowhere while their contracts bill, with what to do.
func TestStatusPage_unreportedCustomers(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		Unreported: []usage.UnreportedCustomer{{CustomerID: "cust-globex", CustomerName: "Globex", ContractID: "29684001", Quantity: 8, Vendor: usage.VendorGone},
			{CustomerID: "cust-initech", ContractID: "29684002", Quantity: 3, Vendor: usage.VendorListed}},
	}}
	if err := e.d.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	body := newUIClient(t, e.d).do(http.MethodGet, "/", nil).Body.String()
	for _, want := range []string{"Mapped customers the vendor no longer reports", `id="unreported"`, "cust-globex", "29684001", "remove the psa_customer_mapping",
		"gone: deleted or moved to another partner", "listed, no usage"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
}

// The status page lists the lines that go on invoicing a service the PSA
// says is inactive, with what to do, and has no such section without them.
func TestStatusPage_linesOnInactiveServices(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	ui := newUIClient(t, e.d)
	if body := ui.do(http.MethodGet, "/", nil).Body.String(); strings.Contains(body, `id="inactive-services"`) {
		t.Error("GET / lists lines on inactive services before any pass found one")
	}
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		InactiveServices: []usage.InactiveServiceLine{
			{CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684001", ServiceID: "30000012", ServiceName: "Sophos Intercept X", Quantity: 5},
			{CustomerID: "cust-globex", ContractID: "29684002", ServiceID: "30000012", Quantity: 2, Failed: true},
			{CustomerID: "cust-initech", ContractID: "29684003", ServiceID: "30000099", ServiceName: "Sophos MDR", Quantity: 4, Failed: true, Gone: true}},
	}}
	if err := e.d.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	body := ui.do(http.MethodGet, "/", nil).Body.String()
	for _, want := range []string{"Lines that go on invoicing an inactive service", `id="inactive-services"`, "cust-acme", "Sophos Intercept X", "service 30000012",
		"29684002", "change failed", "unchanged", "end the line in the PSA"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	// The line of a service deleted in the PSA (gone) says so; the lines
	// of a service that is only inactive do not.
	for row := range strings.SplitSeq(body, "<tr>") {
		row, _, _ = strings.Cut(row, "</tr>")
		if !strings.Contains(row, "service 300000") {
			continue
		}
		gone := strings.Contains(row, "service 30000099")
		if marked := strings.Contains(row, "service deleted in the PSA"); marked != gone {
			t.Errorf("row %q: marked deleted in the PSA = %v, want %v", row, marked, gone)
		}
	}
	if n := strings.Count(body, "service deleted in the PSA"); n != 1 {
		t.Errorf("GET / says %d times that a service was deleted in the PSA, want once (the gone service's line)", n)
	}
}

// TestStatusPage_zeroQuantityUnmapped: unmapped customers and products
// whose rows are all 0 have a section of their own, not the unmapped ones.
func TestStatusPage_zeroQuantityUnmapped(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		ZeroCustomers:  []usage.UnmappedCustomer{{CustomerID: "cust-trial", CustomerName: "Trial Co", Products: []string{"CIXA-MSP"}}},
		ZeroProducts:   []usage.UnmappedProduct{{Product: "TRIAL-X", Customers: 1}},
		ZeroUnassigned: []source.Record{{Product: "FW-MONTHLY"}},
	}}
	if err := e.d.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	body := newUIClient(t, e.d).do(http.MethodGet, "/", nil).Body.String()
	if strings.Contains(body, `id="unassigned"`) {
		t.Errorf("GET / lists the usage of no customer of quantity 0 among the usage with no customer")
	}
	for _, want := range []string{"Unmapped with quantity 0 only", `id="unmapped-zero"`, "customer cust-trial", "product TRIAL-X", "no customer, product FW-MONTHLY"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	if strings.Contains(body, `id="unmapped-customers"`) {
		t.Errorf("GET / lists the customer of quantity 0 among the unmapped customers")
	}
}

// TestStatusPage_unreadableUnmapped: customers and products without a
// mapping whose only rows cannot be read have a section of their own.
func TestStatusPage_unreadableUnmapped(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		UnreadableCustomers: []string{"newco"},
		UnreadableProducts:  []string{"NEWPROD"},
	}}
	if err := e.d.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	body := newUIClient(t, e.d).do(http.MethodGet, "/", nil).Body.String()
	for _, want := range []string{"Unmapped, with rows that cannot be read", `id="unmapped-unreadable"`, "customer newco", "product NEWPROD"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
}

// The status page renders the customers with the consoles' filters, needs
// the token for actions, keeps it in an HttpOnly SameSite=Strict session
// cookie, and refuses posts without the form's CSRF token.
func TestStatusPageHandlers(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	e.reloadAndSync(t)
	c := newUIClient(t, e.d)
	rec := c.do(http.MethodGet, "/", nil)
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, `data-customer="cust-acme"`) || !strings.Contains(body, `data-customer="cust-globex"`) {
		t.Fatalf("GET / = %d\n%s", rec.Code, body)
	}
	for _, want := range []string{"Unmapped customers", "cust-unmapped", "Usage with no customer", "Recent runs", `id="sign-in"`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	if strings.Contains(body, `id="sync-all"`) {
		t.Error("GET / shows sync now before signing in")
	}
	if rec := c.do(http.MethodGet, "/?filter=failed", nil); !strings.Contains(rec.Body.String(), `id="no-customers"`) {
		t.Errorf("GET /?filter=failed lists customers:\n%s", rec.Body)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]

	// Without the CSRF token, or with another one, nothing is accepted.
	if rec := c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}}); rec.Code != http.StatusForbidden {
		t.Errorf("sign-in without CSRF = %d, want 403", rec.Code)
	}
	if rec := c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {strings.Repeat("0", 64)}}); rec.Code != http.StatusForbidden {
		t.Errorf("sign-in with a foreign CSRF token = %d, want 403", rec.Code)
	}
	// Not signed in: sync is refused.
	if rec := c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("sync before sign-in = %d, want 401", rec.Code)
	}
	if rec := c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {"wrong"}, "csrf": {csrf}}); rec.Code != http.StatusSeeOther || c.cookies[sessionCookie] != "" {
		t.Errorf("sign-in with a wrong token = %d, session %q", rec.Code, c.cookies[sessionCookie])
	}
	rec = c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {csrf}, "next": {"/"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in = %d %s", rec.Code, rec.Body)
	}
	var session *http.Cookie
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Value == dtToken || strings.Contains(session.Value, dtToken) {
		t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Strict, not the token itself", session)
	}
	if body := c.do(http.MethodGet, "/", nil).Body.String(); !strings.Contains(body, `id="sync-all"`) || !strings.Contains(body, `id="sign-out"`) {
		t.Errorf("signed in, the page has no sync now or sign out:\n%s", body)
	}
	// Signed in but without the CSRF token: refused.
	if rec := c.do(http.MethodPost, "/ui/sync", url.Values{}); rec.Code != http.StatusForbidden {
		t.Errorf("sync without CSRF = %d, want 403", rec.Code)
	}
	rec = c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "customer": {"cust-globex"}, "next": {"/"}})
	loc := rec.Header().Get("Location")
	queued := e.d.queue.active()
	if rec.Code != http.StatusSeeOther || len(queued) != 1 || !strings.Contains(loc, "request="+queued[0].ID) {
		t.Fatalf("sync now = %d, Location %q, queued %+v", rec.Code, loc, queued)
	}
	if tk, ok := e.d.Ticket(queued[0].ID); !ok || tk.Customer != "cust-globex" || tk.Trigger != usage.TriggerAPI {
		t.Errorf("sync now queued %+v, %t", tk, ok)
	}
	if body := c.do(http.MethodGet, loc, nil).Body.String(); !strings.Contains(body, `id="request" data-status="queued"`) || !strings.Contains(body, `http-equiv="refresh"`) {
		t.Errorf("after sync now the page does not show the queued request and refresh:\n%s", body)
	}
	// Approve needs a customer; a redirect to another site is not followed.
	rec = c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "approve": {"true"}, "next": {"//evil.example/"}})
	if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "/?") || !strings.Contains(loc, "approve+needs+a+customer") {
		t.Errorf("approve without customer redirects to %q", loc)
	}
	// The customer's page shows its lines and ledger.
	rec = c.do(http.MethodGet, "/customers/file/cust-acme", nil)
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, `id="lines"`) || !strings.Contains(body, `id="ledger"`) {
		t.Errorf("customer page = %d\n%s", rec.Code, body)
	}
	if rec := c.do(http.MethodGet, "/customers/file/nobody", nil); rec.Code != http.StatusNotFound {
		t.Errorf("unknown customer page = %d, want 404", rec.Code)
	}
	if rec := c.do(http.MethodGet, "/static/style.css", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "--accent") {
		t.Errorf("GET /static/style.css = %d", rec.Code)
	}
	// Signing out ends the session on the server, not just in the browser.
	old := c.cookies[sessionCookie]
	c.do(http.MethodPost, "/ui/sign-out", url.Values{"csrf": {csrf}})
	c.cookies[sessionCookie] = old
	if rec := c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("sync with a signed-out session = %d, want 401", rec.Code)
	}
}

// TestStatusPage_customerPlanSpendsNoBudget: a customer's page shows an
// anonymous visitor the last pass's plan, with no request to the PSA or the
// usage source, however often it is loaded; a signed-in operator gets a
// fresh plan, at most once per freshPlanInterval.
func TestStatusPage_customerPlanSpendsNoBudget(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	before := len(e.sim.Requests())
	for range 5 {
		rec := c.do(http.MethodGet, "/customers/file/cust-acme", nil)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "no plan yet") {
			t.Fatalf("customer page before any pass = %d\n%s", rec.Code, rec.Body)
		}
	}
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	afterPass := len(e.sim.Requests())
	for range 5 {
		rec := c.do(http.MethodGet, "/customers/file/cust-acme", nil)
		if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, `id="lines"`) || !strings.Contains(body, "What the last pass found") {
			t.Fatalf("customer page after a pass = %d\n%s", rec.Code, body)
		}
	}
	if n := len(e.sim.Requests()) - afterPass; n != 0 || afterPass == before {
		t.Errorf("5 anonymous views of the customer page sent %d requests to the PSA, want 0 (the pass sent %d)", n, afterPass-before)
	}

	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the status page")
	}
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
	signedIn := len(e.sim.Requests())
	if body := c.do(http.MethodGet, "/customers/file/cust-acme", nil).Body.String(); !strings.Contains(body, "What a pass would do now") {
		t.Errorf("signed in, the customer page does not compute a fresh plan:\n%s", body)
	}
	fresh := len(e.sim.Requests())
	if fresh == signedIn {
		t.Error("the fresh plan sent no request to the PSA")
	}
	if body := c.do(http.MethodGet, "/customers/file/cust-acme", nil).Body.String(); !strings.Contains(body, "What the last pass found") || len(e.sim.Requests()) != fresh {
		t.Errorf("a second signed-in view within %s computed another plan", freshPlanInterval)
	}
}

// An approval from the status page is tied to what the page showed: the
// line's Approve button sends the desired units it displays, an approval
// without units (a whole customer) is refused, and the customer list links
// to the customer's page for review instead of approving from the list.
func TestStatusPage_approveSendsShownUnits(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	e.reloadAndSync(t)
	// Acme drops from 11 to 1 Intercept X seat: held.
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1))
	if res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Held != 1 {
		t.Fatalf("second pass: %+v, %v; want 1 held line", res, err)
	}
	c := newUIClient(t, e.d)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {csrf}, "next": {"/"}})

	index := c.do(http.MethodGet, "/", nil).Body.String()
	if !strings.Contains(index, `href="/customers/file/cust-acme">Review</a>`) || strings.Contains(index, `name="approve"`) {
		t.Errorf("the customer list should link held customers to their page and approve nothing itself:\n%s", index)
	}

	svc := dtID(e.services[0])
	page := c.do(http.MethodGet, "/customers/file/cust-acme", nil).Body.String()
	button := strings.Index(page, `id="approve-`+svc+`"`)
	if button < 0 {
		t.Fatalf("no Approve button for service %s:\n%s", svc, page)
	}
	form := page[strings.LastIndex(page[:button], "<form"):button]
	if !strings.Contains(form, `name="units" value="1"`) || !strings.Contains(form, `name="service" value="`+svc+`"`) {
		t.Errorf("the Approve form does not send the units shown (1):\n%s", form)
	}

	// A form without units (an old page, or a hand-made post) is refused.
	rec := c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "customer": {"cust-acme"}, "approve": {"true"}, "next": {"/"}})
	if loc := rec.Header().Get("Location"); !strings.Contains(loc, "one+line+at+a+time") || strings.Contains(loc, "request=") {
		t.Errorf("approve without units redirects to %q, want a refusal", loc)
	}
	if got := e.d.queue.active(); len(got) != 0 {
		t.Errorf("an approval without units was queued: %+v", got)
	}
	rec = c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "customer": {"cust-acme"}, "approve": {"true"}, "service": {svc}, "units": {"x"}, "next": {"/"}})
	if loc := rec.Header().Get("Location"); !strings.Contains(loc, "not+a+whole+number") {
		t.Errorf("approve with units x redirects to %q, want a refusal", loc)
	}

	rec = c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "customer": {"cust-acme"}, "approve": {"true"}, "service": {svc}, "units": {"1"}, "next": {"/customers/file/cust-acme"}})
	loc := rec.Header().Get("Location")
	got := e.d.queue.active()
	if len(got) != 1 || !got[0].Approve || got[0].Service != svc || got[0].Units == nil || *got[0].Units != 1 {
		t.Fatalf("the page's approval queued %+v, want one approving service %s at 1 unit", got, svc)
	}
	if body := c.do(http.MethodGet, loc, nil).Body.String(); !strings.Contains(body, "(approving service "+svc+" at 1 units)") {
		t.Errorf("the page does not show the approval's units:\n%s", body)
	}
}

// TestStatusPage_writesOff: while the mapping export switches the
// integration off, passes write nothing. Every page says so, a held line
// offers no Approve (an operator who approved a decrease would believe it
// is in the PSA), and an approval posted all the same is refused with the
// reason; Sync now, a pass that reports what it would write, stays.
func TestStatusPage_writesOff(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	e.reloadAndSync(t)
	c := newUIClient(t, e.d)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {csrf}, "next": {"/"}})
	if body := c.do(http.MethodGet, "/", nil).Body.String(); strings.Contains(body, `id="writes-off"`) {
		t.Errorf("with the integration on, the page says writes are off:\n%s", body)
	}
	// The integration is switched off, and Acme drops from 11 to 1 seat.
	e.doc.Integration.Enabled = false
	e.writeExport(t, e.doc)
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1))
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Held != 1 {
		t.Fatalf("second pass: %+v, %v; want 1 held line", res, err)
	}
	svc := dtID(e.services[0])
	for _, path := range []string{"/", "/customers/file/cust-acme"} {
		body := c.do(http.MethodGet, path, nil).Body.String()
		if !strings.Contains(body, `id="writes-off"`) || !strings.Contains(body, "Writes are off (integration disabled in the export)") {
			t.Errorf("GET %s while the export switches the integration off does not say that writes are off:\n%s", path, body)
		}
		if strings.Contains(body, `id="approve-`) {
			t.Errorf("GET %s offers Approve while the export switches the integration off", path)
		}
	}
	if body := c.do(http.MethodGet, "/customers/file/cust-acme", nil).Body.String(); !strings.Contains(body, `data-service="`+svc+`" data-action="held"`) || !strings.Contains(body, `id="sync-customer"`) {
		t.Errorf("the customer page should show the held line, and Sync now:\n%s", body)
	}
	rec := c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "customer": {"cust-acme"}, "approve": {"true"}, "service": {svc}, "units": {"1"}, "next": {"/customers/file/cust-acme"}})
	loc := rec.Header().Get("Location")
	if got := e.d.queue.active(); len(got) != 0 {
		t.Errorf("an approval while writes are off was queued: %+v", got)
	}
	if body := c.do(http.MethodGet, loc, nil).Body.String(); !strings.HasPrefix(flash(body), "Not approved: writes are off") {
		t.Errorf("after Approve while writes are off the page at %s says %q; want the refusal and its reason", loc, flash(body))
	}
}

// TestStatusPage_formsReturnToCustomerPage: the forms of a customer's page
// (sign in, sign out, Sync now, Approve) return to the page through their
// "next" field. A customer id with "/", "?" or "#" (the export allows any
// id but "" and NUL) is escaped there as in the page's links: decoded,
// "acme?eu" would return to customer "acme"'s page, showing "Approval
// requested." for a customer that was not approved, and "acme/eu" to a 404.
func TestStatusPage_formsReturnToCustomerPage(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	ids := []string{"cust-acme?eu", "cust-acme/eu", "cust-acme#eu", "cust-acme%2Feu"}
	for _, id := range ids {
		e.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: id, CustomerName: "Acme " + id,
			CompanyID: dtID(e.companies[0]), ContractID: dtID(e.contracts[0]), UsageSync: true})
	}
	e.writeExport(t, e.doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	index := c.do(http.MethodGet, "/", nil).Body.String()
	nextField := regexp.MustCompile(`name="next" value="([^"]*)"`)
	for _, id := range ids {
		page := "/customers/file/" + url.PathEscape(id)
		if !strings.Contains(index, `href="`+page+`"`) {
			t.Fatalf("the customer list has no link to %s", page)
		}
		rec := c.do(http.MethodGet, page, nil)
		body := rec.Body.String()
		m := csrfField.FindStringSubmatch(body)
		next := nextField.FindStringSubmatch(body)
		if rec.Code != http.StatusOK || m == nil || next == nil {
			t.Fatalf("GET %s = %d\n%s", page, rec.Code, body)
		}
		rec = c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {"wrong"}, "csrf": {m[1]}, "next": {html.UnescapeString(next[1])}})
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		if loc.EscapedPath() != page {
			t.Errorf("a form on the page of customer %q returns to %s, not to the customer's page %s", id, rec.Header().Get("Location"), page)
		}
		if rec := c.do(http.MethodGet, loc.String(), nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Acme "+html.EscapeString(id)) {
			t.Errorf("GET %s (the form's return) = %d, not customer %q's page", loc, rec.Code, id)
		}
	}
}

// TestStatusPage_signInKeepsTheFilter: signing in on a filtered list
// returns to that list, not to every customer; a form past the size limit
// is told so (413), not called bad.
func TestStatusPage_signInKeepsTheFilter(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	body := c.do(http.MethodGet, "/?filter=failed&msg=x&sig=y", nil).Body.String()
	m := csrfField.FindStringSubmatch(body)
	next := regexp.MustCompile(`name="next" value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil || next == nil {
		t.Fatalf("no sign-in form on the filtered list:\n%s", body)
	}
	rec := c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {html.UnescapeString(next[1])}})
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in = %d, Location %q", rec.Code, rec.Header().Get("Location"))
	}
	if loc.Path != "/" || loc.Query().Get("filter") != "failed" || loc.Query().Get("sig") == "y" {
		t.Errorf("signing in on /?filter=failed returns to %s, want the same filter (and no stale message)", loc)
	}
	big := url.Values{"csrf": {m[1]}, "next": {"/"}, "pad": {strings.Repeat("x", maxFormBody)}}
	if rec := c.do(http.MethodPost, "/ui/sync", big); rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "at most") {
		t.Errorf("a form over %d bytes = %d %q, want 413 naming the limit", maxFormBody, rec.Code, rec.Body)
	}
}

// TestStatusPage_staticServesOnlyAssets: /static/ serves the page's
// assets, not the page templates embedded next to them (pages of template
// source without the page's Content-Security-Policy), and lists nothing.
func TestStatusPage_staticServesOnlyAssets(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/static/style.css", "", ""); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Fatalf("GET /static/style.css = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, p := range []string{"/static/", "/static/index.html", "/static/header.html", "/static/customer.html", "/static/static/style.css",
		"/static/..%2Findex.html", "/static/%2E%2E", "/static/."} {
		rec := dtServe(t, e.d, http.MethodGet, p, "", "")
		if rec.Code == http.StatusOK || strings.Contains(rec.Body.String(), "{{") {
			t.Errorf("GET %s = %d %s %.80q; want 404", p, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
	}
}

// flash returns the status page's message in body, or "" when it shows none.
func flash(body string) string {
	m := regexp.MustCompile(`<p class="flash" id="message">([^<]*)</p>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TestStatusPage_messages: the page shows the messages of its own
// redirects, and no text a link brings in ?msg=: not a bare one, not one
// with a made-up signature, not one another browser's redirect signed. A
// crafted link could otherwise put phishing text on the operator's console
// ("Session expired: paste your API token at ...").
func TestStatusPage_messages(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]
	const phishing = "Session expired: paste your API token at https://psa-sync.example/sign-in"
	// follow posts a form and returns the message of the page its redirect
	// leads to.
	follow := func(c *uiClient, path string, form url.Values) (string, string) {
		t.Helper()
		rec := c.do(http.MethodPost, path, form)
		loc := rec.Header().Get("Location")
		if rec.Code != http.StatusSeeOther || loc == "" {
			t.Fatalf("POST %s %v = %d, Location %q", path, form, rec.Code, loc)
		}
		return loc, flash(c.do(http.MethodGet, loc, nil).Body.String())
	}

	for _, target := range []string{
		"/?msg=" + url.QueryEscape(phishing),
		"/?msg=" + url.QueryEscape(phishing) + "&sig=" + strings.Repeat("0", 32),
		"/customers/file/cust-acme?msg=" + url.QueryEscape(phishing),
	} {
		rec := c.do(http.MethodGet, target, nil)
		if body := rec.Body.String(); rec.Code != http.StatusOK || strings.Contains(body, "paste your API token") || flash(body) != "" {
			t.Errorf("GET %s = %d, shows message %q; want none", target, rec.Code, flash(body))
		}
	}

	// The page's own redirects show their messages.
	for _, step := range []struct {
		path string
		form url.Values
		want string
	}{
		{"/ui/sign-in", url.Values{"token": {"wrong"}}, "Wrong API token."},
		{"/ui/sign-in", url.Values{"token": {dtToken}}, "Signed in."},
		{"/ui/sync", url.Values{"customer": {"cust-acme"}, "approve": {"true"}, "service": {dtID(e.services[0])}, "units": {"x"}}, `Units "x" are not a whole number.`},
		{"/ui/sync", url.Values{"customer": {"cust-nobody"}}, "Customer cust-nobody is not in the mapping export."},
		{"/ui/sync", url.Values{"customer": {"cust-globex"}}, "Sync requested."},
		{"/ui/sign-out", url.Values{}, "Signed out."},
	} {
		step.form.Set("csrf", csrf)
		step.form.Set("next", "/customers/file/cust-acme?msg="+url.QueryEscape(phishing))
		loc, got := follow(c, step.path, step.form)
		if got != step.want {
			t.Errorf("after POST %s %v the page at %s shows %q, want %q", step.path, step.form, loc, got, step.want)
		}
	}

	// A redirect signed for another browser (the maker of the link signing
	// in with a wrong token, say, and passing its Location on) shows
	// nothing in this one.
	other := newUIClient(t, e.d)
	om := csrfField.FindStringSubmatch(other.do(http.MethodGet, "/", nil).Body.String())
	if om == nil {
		t.Fatal("no CSRF field on the page")
	}
	loc, got := follow(other, "/ui/sign-in", url.Values{"token": {"wrong"}, "csrf": {om[1]}, "next": {"/"}})
	if got != "Wrong API token." {
		t.Fatalf("the other browser's page shows %q after a wrong token", got)
	}
	forged, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := forged.Query()
	q.Set("msg", phishing)
	q.Set("sig", messageSig(om[1], phishing))
	forged.RawQuery = q.Encode()
	for _, target := range []string{loc, forged.String()} {
		if got := flash(c.do(http.MethodGet, target, nil).Body.String()); got != "" {
			t.Errorf("GET %s, signed for another browser, shows %q; want no message", target, got)
		}
	}
	// Without a CSRF cookie (a fresh browser) no message is shown either.
	fresh := newUIClient(t, e.d)
	if got := flash(fresh.do(http.MethodGet, forged.String(), nil).Body.String()); got != "" {
		t.Errorf("GET %s in a fresh browser shows %q; want no message", forged.String(), got)
	}
}

// TestStatusPage_secureCookiesBehindTLSProxy: behind a proxy that ends TLS
// (X-Forwarded-Proto: https) the page's cookies are Secure, as when
// psa-syncd serves TLS itself; over plain HTTP they are not (the browser
// would not send them back).
func TestStatusPage_secureCookiesBehindTLSProxy(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	h := e.d.Handler()
	get := func(header http.Header) *http.Response {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
		maps.Copy(req.Header, header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	for _, c := range []struct {
		header http.Header
		want   bool
	}{
		{http.Header{}, false},
		{http.Header{"X-Forwarded-Proto": {"http"}}, false},
		{http.Header{"X-Forwarded-Proto": {"https"}}, true},
		{http.Header{"X-Forwarded-Proto": {"HTTPS"}}, true},
		// Chained proxies: TLS ended at the outer one, the inner one
		// added its own plain HTTP hop.
		{http.Header{"X-Forwarded-Proto": {"https, http"}}, true},
		{http.Header{"X-Forwarded-Proto": {"https", "http"}}, true},
		{http.Header{"Forwarded": {`for=192.0.2.60;proto=https;by=203.0.113.43`}}, true},
		{http.Header{"Forwarded": {`for="[2001:db8:cafe::17]:4711";proto="HTTPS", for=10.0.0.5;proto=http`}}, true},
		{http.Header{"Forwarded": {`for=192.0.2.60;proto=http`}}, false},
		{http.Header{"Forwarded": {`for=192.0.2.60;host=https`}}, false},
	} {
		cks := get(c.header).Cookies()
		name := csrfCookie
		if c.want {
			name = "__Host-" + csrfCookie
		}
		if len(cks) != 1 || cks[0].Name != name || cks[0].Secure != c.want || cks[0].Path != "/" || cks[0].Domain != "" {
			t.Errorf("%v: cookies %+v, want the CSRF cookie %s with Secure %t", c.header, cks, name, c.want)
		}
	}

	// The session cookie of a sign-in through the proxy is Secure too.
	csrf := get(http.Header{"X-Forwarded-Proto": {"https"}}).Cookies()[0]
	form := url.Values{"token": {dtToken}, "csrf": {csrf.Value}, "next": {"/"}}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/ui/sign-in", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var session *http.Cookie
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == "__Host-"+sessionCookie {
			session = ck
		}
	}
	if rec.Code != http.StatusSeeOther || session == nil || !session.Secure {
		t.Errorf("sign-in through a TLS proxy = %d, session cookie %+v; want a Secure one", rec.Code, session)
	}
}

// browserJar keeps cookies as a browser does for one host, whatever the
// port: a Secure cookie is sent over HTTPS only, and a page reached over
// plain HTTP cannot set a cookie with the name of a Secure one ("Leave
// Secure Cookies Alone", RFC 6265bis).
type browserJar map[string]*http.Cookie

func (j browserJar) do(t *testing.T, h http.Handler, https bool, method, target string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequestWithContext(t.Context(), method, target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequestWithContext(t.Context(), method, target, nil)
	}
	if https {
		req.Header.Set("X-Forwarded-Proto", "https")
	}
	for _, ck := range j {
		if https || !ck.Secure {
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, ck := range rec.Result().Cookies() {
		if old, ok := j[ck.Name]; ok && old.Secure && !https {
			continue
		}
		if ck.MaxAge < 0 {
			delete(j, ck.Name)
		} else {
			j[ck.Name] = ck
		}
	}
	return rec
}

// An operator reaches the status page over HTTPS through an Ingress and
// over plain HTTP on the VM's own port, same host: the page's Secure
// cookies from the first must not stop the second from signing in, in
// either order, and the HTTPS session never goes over plain HTTP.
func TestStatusPage_signInOverHTTPAndHTTPS(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	h := e.d.Handler()
	jar := browserJar{}
	signIn := func(https bool) {
		t.Helper()
		m := csrfField.FindStringSubmatch(jar.do(t, h, https, http.MethodGet, "/", nil).Body.String())
		if m == nil {
			t.Fatalf("https %t: no CSRF field on the page", https)
		}
		rec := jar.do(t, h, https, http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("https %t: sign-in = %d %s, want 303", https, rec.Code, rec.Body)
		}
		if page := jar.do(t, h, https, http.MethodGet, "/", nil).Body.String(); !strings.Contains(page, `id="sign-out"`) {
			t.Errorf("https %t: not signed in after the sign-in; cookies %v", https, jar)
		}
	}
	signIn(true)
	signIn(false)
	signIn(true)
	for _, ck := range jar {
		if strings.HasPrefix(ck.Name, "__Host-") != ck.Secure {
			t.Errorf("cookie %s: Secure %t, want the HTTPS page's cookies (__Host-) Secure and only those", ck.Name, ck.Secure)
		}
	}
}

// Over plain HTTP, a form without the page's CSRF cookie (the browser
// refused it) says why, not only that the token does not match.
func TestStatusPage_missingCSRFCookieSaysWhy(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	h := e.d.Handler()
	for _, c := range []struct {
		proto, want string
	}{
		{"", "clear this site's cookies once"},
		{"https", "have the proxy say http"},
	} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/ui/sign-in", strings.NewReader("token=tok&csrf="+strings.Repeat("a", 64)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.proto != "" {
			req.Header.Set("X-Forwarded-Proto", c.proto)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "without the page's CSRF cookie") || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("X-Forwarded-Proto %q: sign-in without the CSRF cookie = %d %s, want 403 saying %q", c.proto, rec.Code, rec.Body, c.want)
		}
	}
}

// TestStatusPage_exportReloadFailed: while the export in use is the last
// good one because the store's could not be loaded (invalid, unreachable),
// the page says so, with the store and the reason, and not once a good
// export loads. The engineer who merged a mapping change and looks at the
// page sees why psa-syncd does not use it, not only the old revision.
func TestStatusPage_exportReloadFailed(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	if body := c.do(http.MethodGet, "/", nil).Body.String(); strings.Contains(body, `id="export-error"`) {
		t.Fatalf("with a good export the page reports an export error:\n%s", body)
	}
	dtWrite(t, e.exportPath, `{"schema_version": 1, "psa": {"system": "autotask"}, "product_mappings": [`)
	if err := e.d.Reload(); err == nil {
		t.Fatal("Reload of a half-written export succeeded")
	}
	for _, path := range []string{"/", "/customers/file/cust-acme"} {
		body := c.do(http.MethodGet, path, nil).Body.String()
		m := regexp.MustCompile(`<p class="flash bad" id="export-error">([^<]*)</p>`).FindStringSubmatch(body)
		if m == nil || !strings.Contains(html.UnescapeString(m[1]), "The mapping export from "+e.exportPath+" could not be loaded") ||
			!strings.Contains(m[1], "passes use the last good one") || !strings.Contains(m[1], "not valid JSON") {
			t.Errorf("GET %s after a failed reload does not say that the export could not be loaded, where and why:\n%s", path, body)
		}
	}
	e.writeExport(t, e.doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if body := c.do(http.MethodGet, "/", nil).Body.String(); strings.Contains(body, `id="export-error"`) {
		t.Errorf("after a good export loaded the page still reports an export error:\n%s", body)
	}
}

// The status page's writes awaiting an operator's answer say how to give
// it while the daemon runs: resolve with the daemon's -web.url and the API
// token, which the endpoint needs (with -web.url alone it is refused).
func TestStatusPage_resolveHintNamesTheToken(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if _, err := e.d.db.OpenIntentBatch(t.Context(), []state.Intent{{RunID: 1, System: psa.SystemKaseyaBMS, Source: "file",
		CustomerID: "cust-acme", ContractID: "1", ServiceID: "2", After: 3, EffectiveDate: time.Now(), Created: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	body := newUIClient(t, e.d).do(http.MethodGet, "/", nil).Body.String()
	if !strings.Contains(body, `id="intents"`) || !strings.Contains(body, "<code>-web.url</code> and <code>-web.token-file</code>") {
		t.Errorf("GET / with an open intent: the resolve hint does not name -web.url and -web.token-file:\n%s", body)
	}
}

// TestStatusPage_contractsEnding: the page lists the mapped contracts that
// the last pass found ending this month or next, with their end dates, so
// the operator sees the renewals to map; one that has ended is a failed
// customer in the table, not listed again.
func TestStatusPage_contractsEnding(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	end := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	e.d.plans.record(&usage.Plan{ContractsEnding: []usage.ContractEnding{
		{Source: "file", CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684183", ContractName: "Acme 2026", EndDate: end, When: usage.EndingThisMonth},
		{Source: "file", CustomerID: "cust-gone", ContractID: "29684999", EndDate: end, When: usage.EndingEnded},
	}}, "")
	body := newUIClient(t, e.d).do(http.MethodGet, "/", nil).Body.String()
	for _, want := range []string{"Contracts that end soon", `id="contracts-ending"`, "Acme 2026", "file/cust-acme", "2026-12-31"} {
		if !strings.Contains(body, want) {
			t.Errorf("the status page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "29684999") {
		t.Error("the status page lists the ended contract among those ending")
	}
}

// TestStatusPage_renewals: the status page shows, from the last plan, which
// contract a customer with a renewal bills to and when the renewal takes
// over.
func TestStatusPage_renewals(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	e.d.plans.record(&usage.Plan{Renewals: []usage.ContractRenewal{
		{Source: "file", CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684183", NextContractID: "29684190",
			BillsTo: "29684183", TakesOver: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}}, "")
	body := newUIClient(t, e.d).do(http.MethodGet, "/", nil).Body.String()
	for _, want := range []string{"Contract renewals", `id="contract-renewals"`, "file/cust-acme", "contract_id 29684183", "29684190", "2027-01-01"} {
		if !strings.Contains(body, want) {
			t.Errorf("the status page lacks %q:\n%s", want, body)
		}
	}
}

// TestStatusPage_customerRenewal: the customers table and GET
// /api/v1/customers name a customer's renewal (next_contract_id) beside
// its contract.
func TestStatusPage_customerRenewal(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	doc := e.doc.Clone()
	doc.Revision = 2
	acme, _ := doc.Customer("file", "cust-acme")
	acme.NextContractID = "29684190"
	doc.PutCustomer(acme)
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	ui := newUIClient(t, e.d)
	if body := ui.do(http.MethodGet, "/", nil).Body.String(); !strings.Contains(body, "renewal 29684190") {
		t.Errorf("the customers table does not name cust-acme's renewal:\n%s", body)
	}
	body := ui.do(http.MethodGet, "/api/v1/customers", nil).Body.String()
	if !strings.Contains(body, `"next_contract_id": "29684190"`) {
		t.Errorf("GET /api/v1/customers does not name cust-acme's renewal: %s", body)
	}
}

// TestStatusPage_approveNamesReviewedPeriod: a decrease held by November's
// month-end pass and approved on the status page on 1 December approves
// November, the month the page showed, not December. Without the period,
// the approving pass synced December: it wrote December's quantity from
// 1 December, and November's invoice kept the held 11 seats although the
// operator had approved 1.
func TestStatusPage_approveNamesReviewedPeriod(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.November, 30, 20, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: clock}})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	e.reloadAndSync(t)
	// November's month-end pass: Acme drops from 11 to 1 seat, held.
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1))
	res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{})
	if err != nil || res.Run.Held != 1 || res.Run.Period != "2026-11" {
		t.Fatalf("November's month-end pass: %+v, %v; want 1 held line", res.Run, err)
	}
	svc := dtID(e.services[0])
	for _, c := range res.Plan.Changes {
		if c.CustomerID == "cust-acme" && c.ServiceID == svc && !strings.Contains(c.Reason, "--units 1 --period 2026-11") {
			t.Errorf("the held line's reason does not give the command for November: %s", c.Reason)
		}
	}

	// The operator reviews it the next morning, on the last pass's plan.
	mu.Lock()
	now = time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
	mu.Unlock()
	c := newUIClient(t, e.d)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {csrf}, "next": {"/"}})
	c.do(http.MethodGet, "/customers/file/cust-acme", nil) // a fresh plan, of December
	page := c.do(http.MethodGet, "/customers/file/cust-acme", nil).Body.String()
	if !strings.Contains(page, "What the last pass found") {
		t.Fatalf("the second view should show the last pass's plan:\n%s", page)
	}
	button := strings.Index(page, `id="approve-`+svc+`"`)
	if button < 0 {
		t.Fatalf("no Approve button for service %s:\n%s", svc, page)
	}
	form := page[strings.LastIndex(page[:button], "<form"):button]
	values := url.Values{}
	for _, f := range regexp.MustCompile(`name="([a-z]+)" value="([^"]*)"`).FindAllStringSubmatch(form, -1) {
		values.Set(f[1], f[2])
	}
	if values.Get("period") != "2026-11" || values.Get("units") != "1" {
		t.Errorf("the Approve form of November's held line sends %v, want units 1 and period 2026-11:\n%s", values, form)
	}
	rec := c.do(http.MethodPost, "/ui/sync", values)
	queued := e.d.queue.active()
	if rec.Code != http.StatusSeeOther || len(queued) != 1 {
		t.Fatalf("approve = %d, Location %q, queued %+v", rec.Code, rec.Header().Get("Location"), queued)
	}
	res, err = e.d.SyncOnce(t.Context(), queued[0].passOptions())
	if err != nil || res.Run.Period != "2026-11" || res.Run.Updated != 1 {
		t.Fatalf("the approving pass: %+v, %v; want November's line updated", res.Run, err)
	}
	ledger, err := FilterLedger(e.d.State(), LedgerFilter{Customer: "cust-acme", Service: svc, Limit: 1})
	if err != nil || len(ledger) != 1 || ledger[0].After != 1 || ledger[0].EffectiveDate != "2026-11-01" {
		t.Errorf("the approval wrote %+v, %v; want 11 → 1 from 2026-11-01", ledger, err)
	}
	if units, ok := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Date(2026, time.November, 15, 0, 0, 0, 0, time.UTC)); !ok || units != 1 {
		t.Errorf("Acme's Intercept X in November: %d units (%v), want the approved 1", units, ok)
	}
}

// The lines held for a surge (every count doubles) are approved at once on
// the status page: the overview says how many, gives the review code and
// offers Approve, which queues a pass approving that code only; the pass
// writes them. The API refuses a surge approval that names a customer or
// no review code.
func TestStatusPage_approveSurge(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  surge_min_lines: 2\n")
	e.reloadAndSync(t)
	dtWrite(t, e.usagePath, strings.NewReplacer("Advanced,10", "Advanced,20", "Server,2", "Server,4", "Advanced,1\n", "Advanced,2\n", "Advanced,5", "Advanced,10").Replace(dtUsage))
	res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{})
	if err != nil || res.Plan.Surge == nil || res.Plan.Surge.Lines < 2 {
		t.Fatalf("pass of doubled counts: %+v, %v; want lines held for a surge", res, err)
	}
	s := res.Plan.Surge
	if u := e.units(0, 0); u != 11 {
		t.Errorf("acme Intercept X units = %d while held, want 11", u)
	}
	c := newUIClient(t, e.d)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {csrf}, "next": {"/"}})
	index := c.do(http.MethodGet, "/", nil).Body.String()
	button := strings.Index(index, `id="approve-surge"`)
	if !strings.Contains(index, fmt.Sprintf("%d line(s) of %s are held for a surge", s.Lines, s.Period)) || button < 0 {
		t.Fatalf("the overview does not offer the surge's approval:\n%s", index)
	}
	// The overview lists the lines held, for review before the approval.
	if n := strings.Count(index, `<tr data-customer="cust-acme" data-service=`); n != 2 || !strings.Contains(index, `<tr data-customer="cust-globex" data-service="`+strconv.FormatInt(e.services[0], 10)+`"`) {
		t.Errorf("the overview lists %d of Acme's lines held for the surge, want 2, and Globex's:\n%s", n, index)
	}
	form := index[strings.LastIndex(index[:button], "<form"):button]
	if !strings.Contains(form, `name="surge" value="`+s.Review+`"`) || !strings.Contains(form, `name="period" value="`+s.Period+`"`) || strings.Contains(form, `name="customer"`) {
		t.Errorf("the surge's Approve form does not send its review code and period:\n%s", form)
	}

	for _, body := range []string{`{"approve": true, "surge": "zz"}`, `{"approve": true, "surge": "` + s.Review + `", "customer": "cust-acme"}`, `{"surge": "` + s.Review + `"}`} {
		if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, body); rec.Code != http.StatusBadRequest {
			t.Errorf("POST /api/v1/sync %s = %d %s, want 400", body, rec.Code, rec.Body)
		}
	}

	// Globex's line is approved alone (its page's Approve, a pass for one
	// customer): the overview's code follows, so that its Approve of the
	// two lines left is not stale.
	units := int64(10)
	svc := strconv.FormatInt(e.services[0], 10)
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{Customer: "cust-globex", Approve: true, ApproveService: svc, ApproveUnits: &units}); err != nil {
		t.Fatal(err)
	}
	index = c.do(http.MethodGet, "/", nil).Body.String()
	code := regexp.MustCompile(`name="surge" value="([0-9a-f]{12})"`).FindStringSubmatch(index)
	if code == nil || code[1] == s.Review || !strings.Contains(index, fmt.Sprintf("2 line(s) of %s are held for a surge", s.Period)) || strings.Contains(index, `<tr data-customer="cust-globex" data-service=`) {
		t.Fatalf("the overview after Globex's approval does not offer the 2 lines left with a new code (was %s):\n%s", s.Review, index)
	}
	// So does the last plan's (GET /api/v1/plan, psa-syncd plan -web.url
	// without the token), into which Globex's pass merged its line.
	var last usage.Plan
	if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/plan", "", ""); rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &last) != nil ||
		last.Surge == nil || last.Surge.Review != code[1] || last.Surge.Lines != 2 {
		t.Errorf("GET /api/v1/plan after Globex's approval: surge %+v, want 2 lines with review code %s", last.Surge, code[1])
	}
	c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "approve": {"true"}, "surge": {code[1]}, "period": {s.Period}, "next": {"/"}})
	got := e.d.queue.active()
	if len(got) != 1 || got[0].Surge != code[1] || got[0].Customer != "" {
		t.Fatalf("the surge's Approve queued %+v, want one approving review code %s", got, code[1])
	}
	res, err = e.d.SyncOnce(t.Context(), got[0].passOptions())
	if err != nil || res.Plan.Surge == nil || res.Plan.Surge.Approval != "applied" {
		t.Fatalf("approving pass: %+v, %v", res, err)
	}
	if u := e.units(0, 0); u != 22 {
		t.Errorf("acme Intercept X units = %d after approving the surge, want 22", u)
	}
	if body := c.do(http.MethodGet, "/", nil).Body.String(); strings.Contains(body, `id="approve-surge"`) {
		t.Errorf("the overview offers the surge's approval once it is approved:\n%s", body)
	}
}

// TestStatusPage_nameNotUTF8: an unmapped customer's name in a usage file
// that mixes UTF-8 and the Windows code page (read as neither) is shown on
// the status page as the API gives it, U+FFFD for the bytes that are not
// UTF-8, not as bytes a browser decodes its own way.
func TestStatusPage_nameNotUTF8(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-unmapped,Initech", "cust-unmapped,Caf\xe9 M\xfc\xfcller", 1)+"cust-acme,Acm\u00e9,CIXA-SRV,Intercept X Server,0\n")
	e.reloadAndSync(t)
	c := newUIClient(t, e.d)
	var rep usage.UnmappedReport
	if err := json.Unmarshal(c.do(http.MethodGet, "/api/v1/unmapped", nil).Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	const want = "Caf\ufffd M\ufffdller"
	if len(rep.Unmapped.Customers) != 1 || rep.Unmapped.Customers[0].CustomerName != want {
		t.Fatalf("GET /api/v1/unmapped: customers %+v, want cust-unmapped named %q", rep.Unmapped.Customers, want)
	}
	body := c.do(http.MethodGet, "/", nil).Body.String()
	if !strings.Contains(body, "<td>"+want+`<div class="sub">cust-unmapped</div>`) {
		t.Errorf("GET / does not name cust-unmapped %q, as the API does:\n%s", want, body)
	}
}
