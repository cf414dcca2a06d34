package daemon

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestDaemon_standbyStatusPageRecordsTheBrowsersUser: behind
// basic_auth_users, an operator (ops-anna) clears an orphaned line and
// records the month that ended as set by hand on a standby's status page.
// The standby sends them to the active instance with the API token, as
// the token's user (automation): the records name ops-anna alone, as the
// same actions on the active instance's page do, not automation, which
// did not act.
func TestDaemon_standbyStatusPageRecordsTheBrowsersUser(t *testing.T) {
	t.Parallel()
	a, b, _ := dtActiveAndStandbyBehind(t, dtToken, fmt.Sprintf("basic_auth_users:\n  ops-anna: %s\n  automation: %s\n",
		bcryptHash(t, "anna-password"), bcryptHash(t, dtToken)))
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		Orphaned: []usage.OrphanedLine{
			{Reason: usage.OrphanService, CustomerID: "cust-acme", ContractID: "29684001", ServiceID: "30000012", Quantity: 5, Since: "2026-10-01", RunID: 2, Seq: 4},
			{Reason: usage.OrphanCustomer, CustomerID: "cust-globex", ContractID: "29684002", ServiceID: "30000013", Quantity: 2, Since: "2026-09-01", RunID: 1, Seq: 3}},
	}}
	if err := a.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	// The listener let the browser through as ops-anna.
	h := b.Handler()
	c := &uiClient{t: t, cookies: map[string]string{}, h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.SetBasicAuth("ops-anna", "anna-password")
		h.ServeHTTP(w, r)
	})}
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the status page")
	}
	c.do(http.MethodPost, "/ui/sign-in", neturl.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
	form := neturl.Values{"csrf": {m[1]}, "contract": {"29684001"}, "service": {"30000012"}, "zeroed": {"1"}, "next": {"/"}}
	rec := c.do(http.MethodPost, "/ui/orphans/clear", form)
	if msg := flash(c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String()); !strings.Contains(msg, "as set to 0 in the PSA") {
		t.Fatalf("Clear as zeroed on the standby's page says %q", msg)
	}
	// The active instance's record, as a second clear through its API
	// shows it.
	clearLine := func(h http.Handler, contract, service, pageUser string) string {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/orphans/clear", strings.NewReader(fmt.Sprintf(`{"contract_id":%q,"service_id":%q,"note":"api"}`, contract, service)))
		req.SetBasicAuth("automation", dtToken)
		if pageUser != "" {
			req.Header.Set(statusPageUserHeader, pageUser)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Body.String()
	}
	if body := clearLine(a.Handler(), "29684001", "30000012", ""); !strings.Contains(body, "(user ops-anna: status page)") {
		t.Errorf("the line cleared on the standby's page by ops-anna is recorded on the active instance as %s; want it named after ops-anna alone", body)
	}
	// A client of the standby's API cannot name a user of its choosing:
	// only the standby's own page does.
	if body := clearLine(b.Handler(), "29684002", "30000013", "ops-anna"); !strings.Contains(body, `"cleared"`) {
		t.Fatalf("clear through the standby's API: %s", body)
	}
	if body := clearLine(a.Handler(), "29684002", "30000013", ""); !strings.Contains(body, "(user automation: api)") {
		t.Errorf("the line cleared through the standby's API as automation, naming ops-anna in %s, is recorded as %s; want automation's", statusPageUserHeader, body)
	}
}
