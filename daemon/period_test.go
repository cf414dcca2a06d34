package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestHandler_syncPeriod: POST /api/v1/sync takes a "period", the month a
// pass syncs now or the one before it, queues it with the request (never
// coalesced with a request of another period), and the pass syncs that
// month and records it in its run; a malformed or older period is refused
// with 400 and a message saying why, before anything is queued. POST
// /api/v1/plan takes it too.
func TestHandler_syncPeriod(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]string{
		`{"period":"2026-13"}`: `invalid period \"2026-13\": want a billing month, YYYY-MM`,
		`{"period":"2026-10"}`: "only the period it syncs now (2026-12) or the one before it (2026-11)",
	} {
		if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, body); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("POST /api/v1/sync %s = %d %s, want 400 saying %q", body, rec.Code, rec.Body, want)
		}
		if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/plan", dtToken, body); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("POST /api/v1/plan %s = %d %s, want 400 saying %q", body, rec.Code, rec.Body, want)
		}
	}
	if n := len(e.d.queue.pending); n != 0 {
		t.Fatalf("%d requests queued by refused ones", n)
	}

	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/plan", dtToken, `{"period":"2026-11"}`)
	var p usage.Plan
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Period.String() != "2026-11" {
		t.Errorf("POST /api/v1/plan for 2026-11 = %d %s, want a plan for 2026-11", rec.Code, rec.Body)
	}

	plain := dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, "")
	rec = dtServe(t, e.d, http.MethodPost, "/api/v1/sync", dtToken, `{"period":"2026-11"}`)
	var tk, plainTk SyncTicket
	if rec.Code != http.StatusAccepted || json.Unmarshal(rec.Body.Bytes(), &tk) != nil || tk.Period.String() != "2026-11" {
		t.Fatalf("POST /api/v1/sync for 2026-11 = %d %s, want 202 naming the period", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(plain.Body.Bytes(), &plainTk); err != nil || plainTk.ID == tk.ID {
		t.Errorf("the request for 2026-11 was coalesced into the plain one queued before it (%s, %v)", plainTk.ID, err)
	}
	queued, ok := e.d.Ticket(tk.ID)
	if !ok {
		t.Fatal("the request is not queued")
	}
	o := queued.passOptions()
	if o.Period != (source.Period{Year: 2026, Month: time.November}) {
		t.Fatalf("pass options %+v, want period 2026-11", o)
	}
	o.DryRun = true
	res, err := e.d.SyncOnce(t.Context(), o)
	if err != nil || res.Run.Period != "2026-11" || res.Plan.Period.String() != "2026-11" {
		t.Errorf("the requested pass: %+v, %v; want its run and plan for 2026-11", res, err)
	}
}

// TestSyncRequest_APIBodyPeriod: the CLI sends -period as "period", and
// only when it is given.
func TestSyncRequest_APIBodyPeriod(t *testing.T) {
	t.Parallel()
	got, err := json.Marshal(SyncRequest{Period: source.Period{Year: 2026, Month: time.November}}.APIBody())
	if err != nil || string(got) != `{"period":"2026-11"}` {
		t.Errorf("APIBody = %s, %v; want {\"period\":\"2026-11\"}", got, err)
	}
}

// TestDaemon_periodRerunIsNotTheScheduledPass: the "monthly last-day
// 20:00" pass of 31 December was missed (psa-syncd was down); at 21:00 the
// operator re-ran November with sync -period 2026-11. At the restart that
// re-run must not count as the last full pass: December's pass is still
// caught up at once, and syncs December. Before, the schedule started from
// the re-run and waited for 31 January, leaving December's usage unsynced.
func TestDaemon_periodRerunIsNotTheScheduledPass(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 31, 21, 30, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{daemonOpts: Options{Now: func() time.Time { return now }}})
	doc := e.doc.Clone()
	doc.Integration.Schedule = "monthly last-day 20:00"
	doc.Integration.Timezone = "UTC"
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	db := e.d.State()
	nov := time.Date(2026, time.November, 30, 20, 0, 0, 0, time.UTC)
	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: nov, Finished: nov.Add(time.Minute),
		Result: state.RunFailure, Period: "2026-11"}); err != nil {
		t.Fatal(err)
	}
	rerun := time.Date(2026, time.December, 31, 21, 0, 0, 0, time.UTC)
	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerCLI, Started: rerun, Finished: rerun.Add(time.Minute),
		Result: state.RunSuccess, Period: "2026-11"}); err != nil {
		t.Fatal(err)
	}
	if last, interrupted := e.d.lastFullRun(); !last.Equal(nov) || interrupted {
		t.Errorf("lastFullRun = %v, %t; want November's scheduled pass %v (the re-run of November is not the schedule's), false", last, interrupted, nov)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	go e.d.scheduleLoop(ctx)
	tk, ok := e.d.queue.next(ctx)
	if !ok || tk.Trigger != usage.TriggerSchedule || tk.Customer != "" {
		t.Fatalf("queued %+v, %t; want December's scheduled pass caught up at once (next run %v)", tk, ok, e.d.NextRun())
	}
	if want := time.Date(2026, time.December, 31, 20, 0, 0, 0, time.UTC); !tk.At.Equal(want) {
		t.Errorf("the caught-up pass is due at %v, want %v", tk.At, want)
	}
}

// TestStatusPage_syncEndedPeriod: on 1 December, when November's last pass
// was partial, the signed-in status page offers "Sync November 2026" beside
// Sync now, a form of /ui/sync with the period and the page's CSRF token;
// it queues a pass for 2026-11. A period the pass may not sync is refused
// before anything is queued. Signed out, or once a pass for November has
// succeeded, the page offers none.
func TestStatusPage_syncEndedPeriod(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }}})
	doc := e.doc.Clone()
	doc.Integration.Timezone = "UTC"
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	db := e.d.State()
	monthEnd := time.Date(2026, time.November, 30, 20, 0, 0, 0, time.UTC)
	partial, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: monthEnd, Finished: monthEnd.Add(time.Minute),
		Result: state.RunPartial, Period: "2026-11"})
	if err != nil {
		t.Fatal(err)
	}
	// A pass of December has run since: the offer is November's.
	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-time.Hour), Finished: now.Add(-time.Hour),
		Result: state.RunSuccess, Period: "2026-12"}); err != nil {
		t.Fatal(err)
	}

	c := newUIClient(t, e.d)
	page := c.do(http.MethodGet, "/", nil).Body.String()
	if strings.Contains(page, `id="sync-ended"`) {
		t.Errorf("signed out, the page offers a sync of the month that ended:\n%s", page)
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {csrf}, "next": {"/"}})
	page = c.do(http.MethodGet, "/", nil).Body.String()
	button := strings.Index(page, `id="sync-ended"`)
	if button < 0 {
		t.Fatalf("signed in, with November's last pass partial, the page offers no sync of November:\n%s", page)
	}
	form := page[strings.LastIndex(page[:button], "<form"):button] + page[button:][:strings.Index(page[button:], "</form>")]
	for _, want := range []string{`action="/ui/sync"`, `name="csrf" value="` + csrf + `"`, `name="period" value="2026-11"`, `>Sync November 2026</button>`} {
		if !strings.Contains(form, want) {
			t.Errorf("the form of the sync of November lacks %s:\n%s", want, form)
		}
	}
	if hint := `(2026-11, run ` + strconv.FormatInt(partial.ID, 10) + `) was partial`; !strings.Contains(page, hint) {
		t.Errorf("the page does not say %q:\n%s", hint, page)
	}

	rec := c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "period": {"2026-10"}, "next": {"/"}})
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || strings.Contains(loc, "request=") ||
		!strings.Contains(loc, "Not+requested") || len(e.d.queue.active()) != 0 {
		t.Errorf("sync of 2026-10 = %d, Location %q, queued %+v; want a refusal, nothing queued", rec.Code, loc, e.d.queue.active())
	}
	rec = c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "period": {"2026-11"}, "next": {"/"}})
	loc := rec.Header().Get("Location")
	queued := e.d.queue.active()
	if rec.Code != http.StatusSeeOther || len(queued) != 1 || !strings.Contains(loc, "request="+queued[0].ID) {
		t.Fatalf("sync of November = %d, Location %q, queued %+v", rec.Code, loc, queued)
	}
	if tk := queued[0]; tk.Period.String() != "2026-11" || tk.Customer != "" || tk.Trigger != usage.TriggerAPI {
		t.Errorf("sync of November queued %+v, want a pass for all customers of 2026-11", tk)
	}
	if got := flash(c.do(http.MethodGet, loc, nil).Body.String()); !strings.Contains(got, "Sync of November 2026 requested.") {
		t.Errorf("message after the sync of November = %q", got)
	}

	// November's re-run succeeded: nothing more to offer.
	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerAPI, Started: now, Finished: now, Result: state.RunSuccess, Period: "2026-11"}); err != nil {
		t.Fatal(err)
	}
	if page := c.do(http.MethodGet, "/", nil).Body.String(); strings.Contains(page, `id="sync-ended"`) {
		t.Errorf("after November's re-run succeeded, the page still offers it:\n%s", page)
	}
}

// TestHandler_setByHand: on 1 December, November's last pass was partial
// (on ConnectWise PSA its quantities can only be set by hand). POST
// /api/v1/periods/2026-11/set-by-hand records that, with the note and the
// user the request named, as a run of 2026-11 (GET /api/v1/runs shows it);
// psa_sync_ended_period_last_run_result turns success and the status page
// no longer offers to sync November. It takes the token; a bad period or
// note is a 400, a month with nothing to record a 409, and nothing is
// recorded for any of them.
func TestHandler_setByHand(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	db := e.d.State()
	nov, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Period: "2026-11", Started: now.Add(-12 * time.Hour),
		Finished: now.Add(-11 * time.Hour), Result: state.RunPartial})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	const target = "/api/v1/periods/2026-11/set-by-hand"
	if rec := dtServe(t, e.d, http.MethodPost, target, "", `{"note":"jane"}`); rec.Code != http.StatusUnauthorized {
		t.Errorf("without the token: %d %s, want 401", rec.Code, rec.Body)
	}
	for _, c := range []struct {
		target, body string
		code         int
		want         string
	}{
		{"/api/v1/periods/2026-13/set-by-hand", `{"note":"jane"}`, http.StatusBadRequest, `invalid period \"2026-13\"`},
		{"/api/v1/periods/2026-12/set-by-hand", `{"note":"jane"}`, http.StatusBadRequest, "only the month that has ended (2026-11)"},
		{target, `{}`, http.StatusBadRequest, "a note is required"},
		{target, `{"note":"a\nb"}`, http.StatusBadRequest, "one line"},
		{target, `{"note":"jane","period":"2026-11"}`, http.StatusBadRequest, "unknown field"},
	} {
		if rec := dtServe(t, e.d, http.MethodPost, c.target, dtToken, c.body); rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("POST %s %s = %d %s; want %d saying %q", c.target, c.body, rec.Code, rec.Body, c.code, c.want)
		}
	}
	if runs, _ := db.Runs(0); len(runs) != 1 {
		t.Fatalf("%d runs after the refused requests, want November's pass alone", len(runs))
	}
	if offer := e.d.endedPeriodOffer(); offer == nil || offer.RunID != nov.ID {
		t.Fatalf("status page offer before = %+v; want Sync November 2026", offer)
	}

	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(`{"note":"additions set in ConnectWise before invoicing"}`))
	req.SetBasicAuth("jane", dtToken)
	rec := httptest.NewRecorder()
	e.d.Handler().ServeHTTP(rec, req)
	var out struct {
		Run RunView `json:"run"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.Run.Trigger != usage.TriggerByHand ||
		out.Run.Period != "2026-11" || out.Run.Result != state.RunSuccess || out.Run.Note != "user jane: additions set in ConnectWise before invoicing" {
		t.Fatalf("POST %s = %d %s; want 200 with the by_hand run of 2026-11 and the note", target, rec.Code, rec.Body)
	}
	for result, want := range map[string]float64{"success": 1, "partial": 0, "failure": 0} {
		if got := testutil.ToFloat64(e.d.metrics.Usage.EndedPeriodLastRunResult[result]); got != want {
			t.Errorf("psa_sync_ended_period_last_run_result{result=%q} = %v, want %v", result, got, want)
		}
	}
	if offer := e.d.endedPeriodOffer(); offer != nil {
		t.Errorf("status page offer after = %+v; want none", offer)
	}
	runs := dtServe(t, e.d, http.MethodGet, "/api/v1/runs", "", "")
	if !strings.Contains(runs.Body.String(), `"note": "user jane: additions set in ConnectWise before invoicing"`) {
		t.Errorf("GET /api/v1/runs = %s; want the record with its note", runs.Body)
	}
	if page := dtServe(t, e.d, http.MethodGet, "/", "", ""); !strings.Contains(page.Body.String(), "set by hand: user jane: additions set in ConnectWise before invoicing") {
		t.Errorf("the status page's runs do not show the record's note:\n%s", page.Body)
	}
	if rec := dtServe(t, e.d, http.MethodPost, target, dtToken, `{"note":"bob"}`); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "was recorded as set by hand") {
		t.Errorf("a second record = %d %s; want 409 naming the first", rec.Code, rec.Body)
	}
	if last, _ := e.d.lastFullRun(); !last.Equal(nov.Started) {
		t.Errorf("lastFullRun = %v; want November's pass %v: the record is not the schedule's pass", last, nov.Started)
	}
}

// TestDaemon_RestoreMetrics_endedPeriodWithoutExport: started without a
// valid mapping export, psa-syncd restores
// psa_sync_ended_period_last_run_result in the config's timezone, not
// UTC: at 01:00 on 1 December in Auckland (30 November in UTC) November
// has ended and its failed last pass shows.
func TestDaemon_RestoreMetrics_endedPeriodWithoutExport(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) // 1 Dec 01:00 in Auckland
	e := dtSetup(t, dtOptions{noExport: true, state: "timezone: Pacific/Auckland\n", daemonOpts: Options{Now: func() time.Time { return now }}})
	if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Period: "2026-11", Started: now.Add(-6 * time.Hour),
		Finished: now.Add(-5 * time.Hour), Result: state.RunFailure}); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	for result, want := range map[string]float64{"success": 0, "partial": 0, "failure": 1} {
		if got := testutil.ToFloat64(e.d.metrics.Usage.EndedPeriodLastRunResult[result]); got != want {
			t.Errorf("psa_sync_ended_period_last_run_result{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// TestStatusPage_setByHand: signed in, while November's last pass is
// partial, the status page offers to record November's quantities as set
// by hand: a form of /ui/set-by-hand with the period, a required note and
// the page's CSRF token. Without a note nothing is recorded and the page
// says why; with one the record is made (the run and its note show in the
// runs table) and neither offer is shown any more. Signed out, there is no
// form.
func TestStatusPage_setByHand(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	db := e.d.State()
	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-12 * time.Hour), Finished: now.Add(-12 * time.Hour),
		Result: state.RunPartial, Period: "2026-11"}); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, e.d)
	page := c.do(http.MethodGet, "/", nil).Body.String()
	if strings.Contains(page, `action="/ui/set-by-hand"`) {
		t.Errorf("signed out, the page offers the record:\n%s", page)
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	csrf := m[1]
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {csrf}, "next": {"/"}})
	page = c.do(http.MethodGet, "/", nil).Body.String()
	i := strings.Index(page, `action="/ui/set-by-hand"`)
	if i < 0 {
		t.Fatalf("signed in, the page offers no record of November as set by hand:\n%s", page)
	}
	form := page[i:][:strings.Index(page[i:], "</form>")]
	for _, want := range []string{`name="csrf" value="` + csrf + `"`, `name="period" value="2026-11"`, `name="note" required`, `>Record November 2026 as set by hand</button>`} {
		if !strings.Contains(form, want) {
			t.Errorf("the form lacks %s:\n%s", want, form)
		}
	}
	if rec := c.do(http.MethodPost, "/ui/set-by-hand", url.Values{"csrf": {"wrong"}, "period": {"2026-11"}, "note": {"jane"}, "next": {"/"}}); rec.Code != http.StatusForbidden {
		t.Errorf("a form with another CSRF token = %d, want 403", rec.Code)
	}
	rec := c.do(http.MethodPost, "/ui/set-by-hand", url.Values{"csrf": {csrf}, "period": {"2026-11"}, "next": {"/"}})
	if got := flash(c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String()); !strings.Contains(got, "Not recorded: a note is required") {
		t.Errorf("message after a form without a note = %q", got)
	}
	if runs, _ := db.Runs(0); len(runs) != 1 {
		t.Fatalf("%d runs after the form without a note, want 1", len(runs))
	}
	// Behind basic_auth_users the record names the browser's user, as
	// the API's does.
	e.d.webConfigFile = filepath.Join(t.TempDir(), "web-config.yml")
	dtWrite(t, e.d.webConfigFile, fmt.Sprintf("basic_auth_users:\n  ops-anna: %s\n", bcryptHash(t, "reader-password")))
	basic := httptest.NewRequest(http.MethodGet, "/", nil)
	basic.SetBasicAuth("ops-anna", "reader-password")
	c.header = http.Header{"Authorization": basic.Header["Authorization"]}
	rec = c.do(http.MethodPost, "/ui/set-by-hand", url.Values{"csrf": {csrf}, "period": {"2026-11"}, "note": {"jane: additions set before invoicing"}, "next": {"/"}})
	page = c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String()
	if got := flash(page); !strings.Contains(got, "Recorded November 2026 as set by hand (run ") {
		t.Errorf("message after the record = %q", got)
	}
	if !strings.Contains(page, "set by hand: user ops-anna: jane: additions set before invoicing") || strings.Contains(page, `action="/ui/set-by-hand"`) ||
		strings.Contains(page, `id="sync-ended"`) {
		t.Errorf("after the record, the page should show it in the runs and offer nothing for November:\n%s", page)
	}
}

// TestStatusPage_endedOfferAfterManyPasses: on an hourly schedule more than
// 100 passes of December run in its first days; the status page must still
// find November's partial last pass (it read only the newest 100 full
// runs, so its offers vanished while PsaSyncEndedMonthNotSynced fired),
// and so must set-by-hand.
func TestStatusPage_endedOfferAfterManyPasses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 6, 8, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	db := e.d.State()
	nov, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: time.Date(2026, time.November, 30, 23, 0, 0, 0, time.UTC),
		Finished: time.Date(2026, time.November, 30, 23, 5, 0, 0, time.UTC), Result: state.RunPartial, Period: "2026-11"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		at := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: at, Finished: at.Add(time.Minute), Result: state.RunSuccess,
			Period: "2026-12"}); err != nil {
			t.Fatal(err)
		}
	}
	if offer := e.d.endedPeriodOffer(); offer == nil || offer.RunID != nov.ID || offer.Result != state.RunPartial {
		t.Errorf("offer after 120 passes of December = %+v; want November's partial run %d", offer, nov.ID)
	}
	if _, err := e.d.RecordSetByHand(t.Context(), periodNov(), "jane: set by hand", ""); err != nil {
		t.Errorf("set-by-hand after 120 passes of December: %v", err)
	}
	if offer := e.d.endedPeriodOffer(); offer != nil {
		t.Errorf("offer after the record = %+v; want none", offer)
	}
}

func periodNov() source.Period { return source.Period{Year: 2026, Month: time.November} }

// TestStatusPage_endedOfferForHeldLines: November's last pass succeeded
// but held two lines for review, so November's invoices keep their
// earlier quantities. Signed in, the status page offers Sync November 2026
// and the record as set by hand, says how many lines were held and where
// they are listed with the command that approves them for November, and
// psa_sync_ended_period_held_lines, restored at start-up, reads 2. A pass
// of November that held nothing offers nothing.
func TestStatusPage_endedOfferForHeldLines(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	db := e.d.State()
	nov, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-12 * time.Hour), Finished: now.Add(-12 * time.Hour),
		Result: state.RunSuccess, Held: 2, Updated: 5, Period: "2026-11"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.d.metrics.Usage.EndedPeriodHeldLines); got != 2 {
		t.Errorf("psa_sync_ended_period_held_lines = %v, want 2", got)
	}
	if offer := e.d.endedPeriodOffer(); offer == nil || offer.RunID != nov.ID || offer.Held != 2 {
		t.Fatalf("offer = %+v; want November's run %d with its 2 held lines", offer, nov.ID)
	}
	c := newUIClient(t, e.d)
	page := c.do(http.MethodGet, "/", nil).Body.String()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
	page = c.do(http.MethodGet, "/", nil).Body.String()
	for _, want := range []string{`id="sync-ended"`, `action="/ui/set-by-hand"`,
		"(2026-11, run " + strconv.FormatInt(nov.ID, 10) + ") held 2 line(s), which keep their earlier quantities",
		"psa-syncd plan -period 2026-11 lists them", "names -period 2026-11"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}

	if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerCLI, Started: now, Finished: now, Result: state.RunSuccess, Period: "2026-11"}); err != nil {
		t.Fatal(err)
	}
	if offer := e.d.endedPeriodOffer(); offer != nil {
		t.Errorf("offer after a pass of November that held nothing = %+v; want none", offer)
	}
}
