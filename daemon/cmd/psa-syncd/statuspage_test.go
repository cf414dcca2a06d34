package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// chromiumBinary returns the browser to drive: the one on PATH, else
// Debian's (make test installs the chromium package when missing).
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const debian = "/usr/bin/chromium"
	if _, err := os.Stat(debian); err != nil {
		t.Fatalf("no Chromium: install Debian's chromium package (make test does): %v", err)
	}
	return debian
}

// newBrowser starts headless Chromium with a fresh profile and more
// options extra, and returns a context for driving one tab. It is closed
// at the end of the test.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumBinary(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// browse runs browser actions with a generous bound that only stops a broken
// test.
func browse(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// read runs one browser action that returns a value.
func read[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// customerRows returns the customer ids of the customer table on the page.
func customerRows(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return read(t, ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#customers tr')).map(r => r.dataset.customer)`))
}

// requestStatus returns the status of the sync request the page shows, or
// "" (also while the page reloads itself).
func requestStatus(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('#request') || {dataset: {}}).dataset.status || ''`))
	if err != nil {
		return ""
	}
	return s
}

// TestStatusPage drives the status page in headless Chromium against a
// running psa-syncd with simulator data: the customer table and its
// filters, signing in, "sync now" until the run finishes, and approving a
// held decrease. It writes a screenshot to testdata/output/.
func TestStatusPage(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	writeFile(t, e.cfgPath, string(must(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	cfg := "-config.file=" + e.cfgPath
	// A first pass sets the lines; then Acme drops from 11 to 1 seat (held
	// for review), Hooli is mapped to a contract that does not exist
	// (failed), and Newco is mapped but never synced.
	if code, _, stderr := runCmd(t, "sync", cfg); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, stderr)
	}
	writeFile(t, filepath.Join(e.dir, "usage.csv"), strings.Replace(testUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,11", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,1", 1)+
		"cust-hooli,Hooli,CIXA-MSP,Intercept X Advanced,2\n")
	doc := e.doc.Clone()
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-hooli", CustomerName: "Hooli", CompanyID: "1", ContractID: "999999", UsageSync: true})
	e.writeExport(t, doc)
	if code, _, stderr := runCmd(t, "sync", cfg); code != 1 {
		t.Fatalf("second sync: exit %d, want 1 (partial)\n%s", code, stderr)
	}
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-newco", CustomerName: "Newco", CompanyID: "1", ContractID: "424242", UsageSync: false})
	doc.Revision++
	e.writeExport(t, doc)
	// An orphaned line, as the last pass would have listed it: the page
	// shows it with its hint until the next pass.
	db, err := state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	var rep usage.UnmappedReport
	if _, err := db.Snapshot(usage.SnapshotUnmapped, &rep); err != nil {
		t.Fatal(err)
	}
	rep.Unmapped.Orphaned = []usage.OrphanedLine{{Reason: usage.OrphanService, CustomerID: "cust-gone", ContractID: "800", ServiceID: "700", Quantity: 3, Since: "2026-11-01", RunID: 1, Seq: 1}}
	if err := db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	base := startDaemon(t, e.cfgPath)
	ctx := newBrowser(t)

	browse(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#customers`)))
	if got, want := customerRows(t, ctx), []string{"cust-acme", "cust-globex", "cust-hooli", "cust-newco"}; !slices.Equal(got, want) {
		t.Errorf("all customers = %v, want %v", got, want)
	}
	for filter, want := range map[string][]string{
		"Usage sync on":   {"cust-acme", "cust-globex", "cust-hooli"},
		"Succeeded":       {"cust-globex"},
		"Failed":          {"cust-hooli"},
		"Held for review": {"cust-acme"},
		"Never synced":    {"cust-newco"},
	} {
		// Wait for the page the click loads, whose active tab is the
		// filter's: the page before it has an active tab too.
		browse(t, ctx, chromedp.Click(`//nav[@class="tabs"]/a[starts-with(normalize-space(.), "`+filter+`")]`),
			chromedp.WaitVisible(`//nav[@class="tabs"]/a[contains(concat(" ", normalize-space(@class), " "), " active ") and starts-with(normalize-space(.), "`+filter+`")]`))
		active := read(t, ctx, chromedp.Text(chromedp.CSS(`nav.tabs a.active`)))
		if got := customerRows(t, ctx); !strings.HasPrefix(active, filter) || !slices.Equal(got, want) {
			t.Errorf("filter %q (active tab %q) = %v, want %v", filter, active, got, want)
		}
	}
	browse(t, ctx, chromedp.Navigate(base+"/"))
	text := read(t, ctx, chromedp.Text(chromedp.CSS(`body`)))
	for _, want := range []string{"Initech", "XGS Firewall", "Usage with no customer", "is held for review", "not found in autotask",
		"Orphaned lines", "On Kaseya BMS, whose lines cannot be read, a line listed here (cleared or not) and mapped again is posted again at its usage."} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not show %q", want)
		}
	}

	// Sign in with the API token, then "sync now".
	browse(t, ctx,
		chromedp.SendKeys(chromedp.CSS(`#token`), "test-token"),
		chromedp.Click(chromedp.CSS(`#sign-in`)),
		chromedp.WaitVisible(chromedp.CSS(`#sync-all`)),
		// Signed in, the orphaned line has its Clear and Clear as
		// zeroed buttons.
		chromedp.WaitVisible(chromedp.CSS(`#orphaned button[name="zeroed"]`)),
		chromedp.Click(chromedp.CSS(`#sync-all`)),
		chromedp.WaitVisible(chromedp.CSS(`#request`)),
	)
	// The page refreshes itself (no JavaScript) until the pass has run.
	waitUntil(t, "the sync request to finish on the page", func() bool { return requestStatus(ctx) == "done" })
	if result := read(t, ctx, chromedp.AttributeValue(chromedp.CSS(`#request`), "data-result")); result.Value != "partial" {
		t.Errorf("sync now ran a %q pass, want partial (Hooli fails)", result.Value)
	}

	// Approve Acme's held decrease on its page.
	browse(t, ctx, chromedp.Navigate(base+"/customers/file/cust-acme"), chromedp.WaitVisible(chromedp.CSS(`#lines`)),
		chromedp.Click(chromedp.CSS(`#approve-`+itoa(e.services[0]))), chromedp.WaitVisible(chromedp.CSS(`#request`)))
	waitUntil(t, "the approval to finish on the page", func() bool { return requestStatus(ctx) == "done" })
	if got, _ := e.sim.Autotask().Units(e.contracts[0], e.services[0], time.Now()); got != 1 {
		t.Errorf("acme units = %d after approving on the page, want 1", got)
	}

	browse(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#customers`)))
	png := read(t, ctx, chromedp.FullScreenshot(100))
	out := filepath.Join("testdata", "output")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "statuspage.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	browse(t, ctx, chromedp.Navigate(base+"/customers/file/cust-acme"), chromedp.WaitVisible(chromedp.CSS(`#lines`)))
	png = read(t, ctx, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(out, "customerpage.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}

	// A form on another site that posts to the API, as a page the operator
	// visits could hold, is refused: Chromium says where it comes from
	// (Sec-Fetch-Site). The page's own forms above post to /ui/.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<form method="post" enctype="text/plain" action="%s/api/v1/sync"><input name="x" value="y"><button id="go">Go</button></form>`, base)
	}))
	t.Cleanup(other.Close)
	browse(t, ctx, chromedp.Navigate(strings.Replace(other.URL, "127.0.0.1", "localhost", 1)), chromedp.Click(chromedp.CSS(`#go`)))
	waitUntil(t, "the other site's form to reach psa-syncd", func() bool {
		href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
		return err == nil && strings.HasPrefix(href, base+"/api/v1/sync")
	})
	if text := read(t, ctx, chromedp.Text(chromedp.CSS(`body`))); !strings.Contains(text, "cross-origin request refused") {
		t.Errorf("a form on another site posting to POST /api/v1/sync got %q; want it refused as a cross-origin request", text)
	}
}

// An operator reaches the status page over HTTPS through a proxy that ends
// TLS (X-Forwarded-Proto: https) and over plain HTTP on psa-syncd's own
// port, same host: Chromium keeps the first's Secure cookies and refuses
// a cookie of the same name over plain HTTP, and yet the second's sign-in
// works, and the first stays signed in. The host is a name that Chromium
// maps to 127.0.0.1: it takes http://127.0.0.1 for a secure context.
func TestStatusPage_signInOverHTTPSAndHTTP(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	base := startDaemon(t, e.cfgPath)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.SetXForwarded()
	}})
	t.Cleanup(proxy.Close)
	const host = "psa-syncd.test"
	ctx := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true), chromedp.Flag("host-resolver-rules", "MAP "+host+" 127.0.0.1"))
	viaProxy := strings.Replace(proxy.URL, "127.0.0.1", host, 1)
	direct := strings.Replace(base, "127.0.0.1", host, 1)
	signedIn := func(page string) string {
		var outcome string
		waitUntil(t, "the page at "+page, func() bool {
			outcome = read(t, ctx, chromedp.Evaluate[string](`document.querySelector('#sync-all') ? 'signed in' : document.querySelector('#token') ? 'signed out' : `+
				`(document.body && document.body.innerText.includes('Forbidden') ? document.body.innerText : '')`))
			return outcome != ""
		})
		return outcome
	}
	for _, page := range []string{viaProxy, direct} {
		browse(t, ctx, chromedp.Navigate(page+"/"), chromedp.WaitVisible(chromedp.CSS(`#token`)))
		browse(t, ctx, chromedp.SendKeys(chromedp.CSS(`#token`), "test-token"), chromedp.Click(chromedp.CSS(`#sign-in`)),
			chromedp.WaitNotPresent(chromedp.CSS(`#token`)))
		if got := signedIn(page); got != "signed in" {
			t.Fatalf("sign-in at %s: %s", page, got)
		}
	}
	browse(t, ctx, chromedp.Navigate(viaProxy+"/"))
	if got := signedIn(viaProxy); got != "signed in" {
		t.Errorf("back at %s after signing in over plain HTTP: %s", viaProxy, got)
	}
}

// TestStatusPage_recordsTheBrowsersUser: behind basic_auth_users, Chromium
// reaches the page as the operator's own user (ops-anna, whose password is
// not the API token), signs in with the token and presses "Clear as
// zeroed" on an orphaned line. The browser sends its user with the form,
// and the record names it, as a clear through the API names the API's
// user: a second clear through the API, as automation, says who cleared
// the line.
func TestStatusPage_recordsTheBrowsersUser(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cfg := "-config.file=" + e.cfgPath
	if code, _, stderr := runCmd(t, "sync", cfg); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, stderr)
	}
	db, err := state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	var rep usage.UnmappedReport
	if _, err := db.Snapshot(usage.SnapshotUnmapped, &rep); err != nil {
		t.Fatal(err)
	}
	rep.Unmapped.Orphaned = []usage.OrphanedLine{{Reason: usage.OrphanService, CustomerID: "cust-gone", ContractID: "800", ServiceID: "700", Quantity: 3, Since: "2026-11-01", RunID: 1, Seq: 1}}
	if err := db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	hash := func(password string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	web := filepath.Join(t.TempDir(), "web-config.yml")
	writeFile(t, web, fmt.Sprintf("basic_auth_users:\n  ops-anna: %q\n  automation: %q\n", hash("anna-password"), hash("test-token")))
	base := startDaemonEnv(t, e.cfgPath, nil, "-web.config.file", web)

	ctx := newBrowser(t)
	browse(t, ctx, chromedp.Navigate(strings.Replace(base, "http://", "http://ops-anna:anna-password@", 1)+"/"), chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "test-token"), chromedp.Click(chromedp.CSS(`#sign-in`)),
		chromedp.WaitVisible(chromedp.CSS(`#orphaned button[name="zeroed"]`)),
		chromedp.Click(chromedp.CSS(`#orphaned button[name="zeroed"]`)))
	// The page the form's answer redirects to says what was done (the
	// page before it says "Signed in.").
	var msg string
	waitUntil(t, "the page after Clear as zeroed", func() bool {
		msg = read(t, ctx, chromedp.Evaluate[string](`(document.querySelector('#message') || document.querySelector('#error') || {innerText: ''}).innerText`))
		return msg != "" && msg != "Signed in."
	})
	if !strings.Contains(msg, "Cleared the orphaned line of contract 800, service 700 as set to 0 in the PSA") {
		t.Fatalf("Clear as zeroed says %q", msg)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v1/orphans/clear", strings.NewReader(`{"contract_id":"800","service_id":"700"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("automation", "test-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := string(must(io.ReadAll(resp.Body)))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "(user ops-anna: status page)") {
		t.Errorf("the line cleared in Chromium as ops-anna, cleared again through the API: %s %s; want it recorded as cleared by user ops-anna on the status page", resp.Status, body)
	}
}

// TestStatusPage_newlyMappedCustomer: a customer the last pass found
// unmapped, that the reloaded export maps, leaves the page's "Unmapped
// customers" at once, as it leaves psa_sync_unmapped, and the customer
// table shows it, never synced, before any pass runs. Before, the page
// listed it until the next pass: as in Chromium, Initech among the
// customers and under "Unmapped customers" too.
func TestStatusPage_newlyMappedCustomer(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	if code, _, stderr := runCmd(t, "sync", "-config.file="+e.cfgPath); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, stderr)
	}
	tokenFile := filepath.Join(e.dir, "token")
	writeFile(t, tokenFile, "test-token\n")
	base := startDaemon(t, e.cfgPath)
	ctx := newBrowser(t)
	// unmapped returns the ids under "Unmapped customers" and what the
	// section says of the pass that found them.
	unmapped := func() ([]string, string) {
		t.Helper()
		browse(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#customers`)))
		ids := read(t, ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#unmapped-customers tr .sub')).map(d => d.textContent)`))
		found := read(t, ctx, chromedp.Evaluate[string](`document.evaluate('//h2[.="Usage that is not billed"]/following-sibling::p[1]', document).iterateNext().textContent`))
		return ids, found
	}
	ids, found := unmapped()
	if !slices.Equal(ids, []string{"cust-initech"}) || !strings.HasPrefix(found, "Found by run 1 ") {
		t.Fatalf("after the first pass: unmapped customers %v (%q), want cust-initech, found by run 1", ids, found)
	}

	doc := e.doc.Clone()
	doc.Revision++
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-initech", CustomerName: "Initech", CompanyID: "1", ContractID: "424242", UsageSync: true})
	e.writeExport(t, doc)
	if code, stdout, stderr := runCmd(t, "reload", "-web.url", base, "-web.token-file", tokenFile); code != 0 {
		t.Fatalf("reload: exit %d\n%s%s", code, stdout, stderr)
	}
	ids, found = unmapped()
	if len(ids) != 0 || !strings.HasPrefix(found, "Found by run 1 ") {
		t.Errorf("after the reload: unmapped customers %v (%q), want none, still as found by run 1", ids, found)
	}
	if none := read(t, ctx, chromedp.Evaluate[string](`document.evaluate('//h3[.="Unmapped customers"]/following-sibling::*[1]', document).iterateNext().textContent`)); none != "None." {
		t.Errorf(`after the reload, "Unmapped customers" says %q, want "None."`, none)
	}
	if got, want := customerRows(t, ctx), []string{"cust-acme", "cust-globex", "cust-initech"}; !slices.Equal(got, want) {
		t.Errorf("after the reload, the customers = %v, want %v", got, want)
	}
	browse(t, ctx, chromedp.Click(`//nav[@class="tabs"]/a[starts-with(normalize-space(.), "Never synced")]`),
		chromedp.WaitVisible(`//nav[@class="tabs"]/a[contains(concat(" ", normalize-space(@class), " "), " active ") and starts-with(normalize-space(.), "Never synced")]`))
	if got := customerRows(t, ctx); !slices.Equal(got, []string{"cust-initech"}) {
		t.Errorf(`after the reload, "Never synced" = %v, want cust-initech`, got)
	}
}
