package daemon

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestDaemon_syncApproveAndResolveRecordTheUser: behind basic_auth_users,
// an approval (which releases a guard hold: an invoice change), a sync
// asked for through the API and the answer to an open intent name who
// gave them, where the records already hold a note: the run's note, the
// intent's. On a standby's status page the browser's user (ops-anna) is
// named, not the API token's user the standby calls the active instance
// as; through the standby's API the client's own user, whatever header
// it sends.
func TestDaemon_syncApproveAndResolveRecordTheUser(t *testing.T) {
	t.Parallel()
	a, b, _ := dtActiveAndStandbyBehind(t, dtToken, fmt.Sprintf("basic_auth_users:\n  ops-anna: %s\n  automation: %s\n",
		bcryptHash(t, "anna-password"), bcryptHash(t, dtToken)))
	page := func(d *Daemon) (c *uiClient, csrf string) {
		t.Helper()
		h := d.Handler()
		c = &uiClient{t: t, cookies: map[string]string{}, h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.SetBasicAuth("ops-anna", "anna-password")
			h.ServeHTTP(w, r)
		})}
		m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
		if m == nil {
			t.Fatal("no CSRF token on the status page")
		}
		c.do(http.MethodPost, "/ui/sign-in", neturl.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
		return c, m[1]
	}
	api := func(h http.Handler, method, path, body string) string {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.SetBasicAuth("automation", dtToken)
		req.Header.Set(statusPageUserHeader, "ops-anna")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Body.String()
	}
	// Each asks for a pass of its own; the active instance runs them as
	// its work loop would, and the runs' notes say who asked.
	approve := neturl.Values{"customer": {"cust-acme"}, "approve": {"1"}, "service": {"30000012"}, "units": {"10"}, "next": {"/"}}
	for _, tc := range []struct {
		name string
		ask  func() string
		want string
	}{
		{"Approve on the standby's page", func() string {
			c, csrf := page(b)
			approve.Set("csrf", csrf)
			return flash(c.do(http.MethodGet, c.do(http.MethodPost, "/ui/sync", approve).Header().Get("Location"), nil).Body.String())
		}, "approved by user ops-anna on the status page"},
		{"Approve on the active instance's page", func() string {
			c, csrf := page(a)
			approve.Set("csrf", csrf)
			return flash(c.do(http.MethodGet, c.do(http.MethodPost, "/ui/sync", approve).Header().Get("Location"), nil).Body.String())
		}, "approved by user ops-anna on the status page"},
		{"sync through the standby's API", func() string {
			return api(b.Handler(), http.MethodPost, "/api/v1/sync", `{"customer":"cust-globex"}`)
		}, "requested by user automation through the API"},
	} {
		if out := tc.ask(); !strings.Contains(out, "requested") && !strings.Contains(out, `"queued"`) {
			t.Fatalf("%s: %s", tc.name, out)
		}
		tk, ok := a.queue.next(t.Context())
		if !ok {
			t.Fatalf("%s: nothing queued on the active instance", tc.name)
		}
		res, err := a.SyncOnce(t.Context(), tk.passOptions())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		a.queue.finish(tk.ID, res.Run, nil, time.Now())
		runs, err := a.db.RunsBefore(0, 1)
		if err != nil || len(runs) != 1 || runs[0].ID != res.Run.ID {
			t.Fatalf("%s: runs %+v, %v", tc.name, runs, err)
		}
		if runs[0].Note != tc.want {
			t.Errorf("%s: the run's note is %q, want %q", tc.name, runs[0].Note, tc.want)
		}
	}
	if body := api(a.Handler(), http.MethodGet, "/api/v1/runs?limit=1", ""); !strings.Contains(body, `"note": "requested by user automation through the API"`) {
		t.Errorf("GET /api/v1/runs: %s; want the run's note", body)
	}
	c, _ := page(a)
	if body := c.do(http.MethodGet, "/", nil).Body.String(); !strings.Contains(body, `<span class="sub">approved by user ops-anna on the status page</span>`) {
		t.Errorf("the status page's runs table does not show who approved:\n%s", body)
	}

	in, err := a.db.OpenIntent(state.Intent{System: psa.SystemAutotask, Source: "file", CustomerID: "cust-acme", ContractID: "29684001", ServiceID: "30000012",
		Before: 10, After: 12, EffectiveDate: time.Now().UTC(), Created: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if body := api(b.Handler(), http.MethodPost, fmt.Sprintf("/api/v1/intents/%d/resolve", in.ID), `{"posted":false,"note":"not in Autotask"}`); !strings.Contains(body, `"posted": false`) {
		t.Fatalf("resolve through the standby: %s", body)
	}
	got, _, err := a.db.IntentByID(in.ID)
	if want := "resolved by an operator: not posted: user automation: not in Autotask"; err != nil || got.Note != want {
		t.Errorf("the resolved intent's note is %q (%v), want %q", got.Note, err, want)
	}
}

// TestSyncQueue_coalescedRequestsKeepWhoAsked: two users approving the same
// line before the pass starts get one pass, whose note names both.
func TestSyncQueue_coalescedRequestsKeepWhoAsked(t *testing.T) {
	t.Parallel()
	q := newSyncQueue()
	units := int64(10)
	r := SyncRequest{Customer: "cust-acme", Approve: true, Service: "30000012", Units: &units, Trigger: "api"}
	for _, who := range []string{"approved by user ops-anna on the status page", "approved by user ops-bob through the API", "approved by user ops-anna on the status page", ""} {
		r.Who = who
		q.add(r, time.Now())
	}
	tk, ok := q.next(t.Context())
	if want := "approved by user ops-anna on the status page; approved by user ops-bob through the API"; !ok || tk.passOptions().Note != want {
		t.Errorf("the pass's note is %q, want %q", tk.passOptions().Note, want)
	}
}

// TestDaemon_tokenAsUserNameNotRecorded: the API token sent as the basic
// user name as well as its password (curl -u "$TOKEN:$TOKEN"), which a
// listener without basic_auth_users lets through under any name, was
// recorded as the user who asked ("requested by user <token> through the
// API"), which GET /api/v1/runs and the status page show without the
// token. Such a request names no user; another user is still named.
func TestDaemon_tokenAsUserNameNotRecorded(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodPost, "/api/v1/sync", nil)
	req.SetBasicAuth(dtToken, dtToken)
	if who, user := askedBy(req, false), recordingUser(req); strings.Contains(who+user, dtToken) {
		t.Errorf("askedBy = %q, recordingUser = %q; want neither to hold the token", who, user)
	}
	req.SetBasicAuth("automation", dtToken)
	if who, user := askedBy(req, false), recordingUser(req); who != "requested by user automation through the API" || user != "automation" {
		t.Errorf("askedBy = %q, recordingUser = %q; want the user automation named", who, user)
	}
}
