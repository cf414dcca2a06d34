package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

const ttToken = "t1ckets-token"

// ttPost posts body to base's POST /api/v1/tickets with token (none when
// empty) and the header pairs, and returns the status, the answer and its
// report when it has one.
func ttPost(t *testing.T, base, token, body string, header ...string) (int, string, TicketPassView) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v1/tickets", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var v TicketPassView
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &v); err != nil {
			t.Errorf("decoding %s: %v", data, err)
		}
	}
	return resp.StatusCode, string(data), v
}

// POST /api/v1/tickets runs a ticket pass, or a dry run, and answers with
// its report: only with the token; never beside another ticket pass (a
// scheduled one holds ticketMu); dry runs write nothing and are
// rate-limited; a pass that writes is recorded like a scheduled one.
func TestDaemon_ticketsAPI(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	// Appended to the config's web section.
	d, sim, sop := ttSetupWith(t, routing, true, "  api_token: "+ttToken+"\n")
	if err := d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()

	for _, body := range []string{`{"dry_run": true}`, ""} {
		if code, answer, _ := ttPost(t, srv.URL, "", body); code != http.StatusUnauthorized {
			t.Errorf("POST /api/v1/tickets %q without a token = %d %s; want 401", body, code, answer)
		}
		if code, answer, _ := ttPost(t, srv.URL, "wrong", body); code != http.StatusUnauthorized {
			t.Errorf("POST /api/v1/tickets %q with a wrong token = %d %s; want 401", body, code, answer)
		}
	}
	if code, answer, _ := ttPost(t, srv.URL, ttToken, `{"dry_run": "yes"}`); code != http.StatusBadRequest || !strings.Contains(answer, `{\"dry_run\": true|false, \"forget_other_psa\": true|false}`) {
		t.Errorf("POST /api/v1/tickets with a bad body = %d %s; want 400 naming the body", code, answer)
	}

	// A ticket pass is running: neither a dry run nor a pass starts.
	d.ticketMu.Lock()
	for _, body := range []string{`{"dry_run": true}`, `{"dry_run": false}`} {
		if code, answer, _ := ttPost(t, srv.URL, ttToken, body); code != http.StatusConflict || !strings.Contains(answer, "a ticket pass is running") {
			t.Errorf("POST /api/v1/tickets %s during another ticket pass = %d %s; want 409", body, code, answer)
		}
	}
	d.ticketMu.Unlock()
	if got := sim.Autotask().Tickets(); len(got) != 0 {
		t.Fatalf("tickets = %+v after refused requests, want none", got)
	}

	sim.ResetRequests()
	code, answer, v := ttPost(t, srv.URL, ttToken, `{"dry_run": true}`)
	if code != http.StatusOK || !v.DryRun || len(v.Customers) != 1 || v.Customers[0].CustomerID != ttAcme || len(v.Customers[0].WouldCreate) != 1 {
		t.Errorf("dry run = %d %s; want Acme's one ticket to create", code, answer)
	}
	for _, r := range sim.Requests() {
		// An Autotask query (the search before a create, which the dry
		// run makes as the pass does) is a POST that reads.
		if r.Method != http.MethodGet && !strings.HasSuffix(r.Path, "/query") {
			t.Errorf("the dry run sent %s %s", r.Method, r.Path)
		}
	}
	if got := sim.Autotask().Tickets(); len(got) != 0 {
		t.Errorf("tickets after the dry run = %+v, want none", got)
	}
	if st, err := d.TicketStatuses(); err != nil || len(st) != 0 {
		t.Errorf("ticket statuses after the dry run = %+v, %v; want none recorded", st, err)
	}
	if code, answer, _ := ttPost(t, srv.URL, ttToken, `{"dry_run": true}`); code != http.StatusTooManyRequests {
		t.Errorf("a second dry run at once = %d %s; want 429", code, answer)
	}

	code, answer, v = ttPost(t, srv.URL, ttToken, "")
	if code != http.StatusOK || v.DryRun || len(v.Customers) != 1 || v.Customers[0].Created != 1 || v.Customers[0].Error != "" {
		t.Fatalf("ticket pass = %d %s; want Acme's ticket created", code, answer)
	}
	if got := sim.Autotask().Tickets(); len(got) != 1 {
		t.Errorf("tickets after the pass = %+v, want one", got)
	}
	st, err := d.TicketStatuses()
	if s := st[ticketStatusKey("sophos", ttAcme)]; err != nil || s.Result != "succeeded" || s.Created != 1 || s.OpenTickets != 1 {
		t.Errorf("Acme's ticket status after the pass = %+v, %v; want the pass recorded", s, err)
	}
	if got := testutil.ToFloat64(d.metrics.TicketsTotal.WithLabelValues("created")); got != 1 {
		t.Errorf("psa_sync_tickets_total{outcome=created} = %v, want 1", got)
	}
	// Another pass, not rate-limited, finds nothing to do.
	if code, answer, v := ttPost(t, srv.URL, ttToken, `{"dry_run": false}`); code != http.StatusOK || v.Customers[0].Created != 0 || len(sim.Autotask().Tickets()) != 1 {
		t.Errorf("second ticket pass = %d %s; want nothing new", code, answer)
	}
}

// On a shared PostgreSQL database a standby forwards a ticket pass that
// writes to the active instance (or refuses it, naming that instance, when
// it cannot), and runs a dry run itself: it writes nothing.
func TestDaemon_ticketsAPIStandby(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var activeAPI http.Handler
	var reachedActive atomic.Int64
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reachedActive.Add(1)
		activeAPI.ServeHTTP(w, r)
	}))
	defer srvA.Close()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	a, sim, sop := ttSetupWith(t, routing, true, fmt.Sprintf("  api_token: %s\nstate:\n  driver: postgres\n  url: %q\n  advertise_url: %s\n", ttToken, url, srvA.URL))
	activeAPI = a.Handler()
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(a.configPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, a.configPath, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError", err)
	}
	srvB := httptest.NewServer(b.Handler())
	defer srvB.Close()
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})

	code, answer, v := ttPost(t, srvB.URL, ttToken, `{"dry_run": true}`)
	if code != http.StatusOK || len(v.Customers) != 1 || len(v.Customers[0].WouldCreate) != 1 || reachedActive.Load() != 0 || len(sim.Autotask().Tickets()) != 0 {
		t.Errorf("dry run on the standby = %d %s (%d requests reached the active instance, %d tickets); want the standby's own report",
			code, answer, reachedActive.Load(), len(sim.Autotask().Tickets()))
	}
	// A pass that was forwarded already is never forwarded again.
	if code, answer, _ := ttPost(t, srvB.URL, ttToken, "", forwardedHeader, "other-standby"); code != http.StatusServiceUnavailable ||
		!strings.Contains(answer, "standby") || !strings.Contains(answer, srvA.URL) || len(sim.Autotask().Tickets()) != 0 {
		t.Errorf("ticket pass forwarded to a standby = %d %s; want 503 naming the active instance and no ticket", code, answer)
	}
	code, answer, v = ttPost(t, srvB.URL, ttToken, `{"dry_run": false}`)
	if code != http.StatusOK || len(v.Customers) != 1 || v.Customers[0].Created != 1 || reachedActive.Load() != 1 {
		t.Fatalf("ticket pass on the standby = %d %s (%d requests reached the active instance); want the active instance's pass", code, answer, reachedActive.Load())
	}
	if got := sim.Autotask().Tickets(); len(got) != 1 {
		t.Errorf("tickets = %+v, want one", got)
	}
	if st, err := a.TicketStatuses(); err != nil || st[ticketStatusKey("sophos", ttAcme)].Created != 1 {
		t.Errorf("ticket statuses = %+v, %v; want the active instance's pass recorded", st, err)
	}
}

// A pass while the export switches the integration off writes nothing: its
// answer says it was a dry run although none was asked for.
func TestDaemon_ticketsAPI_integrationOff(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	d, sim, sop := ttSetupWith(t, routing, false, "  api_token: "+ttToken+"\n")
	if err := d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	code, answer, v := ttPost(t, srv.URL, ttToken, "")
	if code != http.StatusOK || !v.DryRun || len(v.Customers) != 1 || len(v.Customers[0].WouldCreate) != 1 || len(sim.Autotask().Tickets()) != 0 {
		t.Errorf("ticket pass with the integration off = %d %s; want a dry run that would create Acme's ticket", code, answer)
	}
}

// The view of a dry run with on_resolve = "note" lists the tickets it would
// note under would_note, apart from would_close, and those it would reopen
// under would_reopen, and reads back the same.
func TestNewTicketPassView_wouldNote(t *testing.T) {
	t.Parallel()
	rep := tickets.Report{DryRun: true, Customers: []tickets.CustomerReport{{
		Customer: tickets.Customer{Source: "sophos", CustomerID: ttAcme}, WouldClose: []string{"7001"}, WouldNote: []string{"7000"},
		WouldReopen: []string{"7002"},
	}}}
	v := NewTicketPassView(rep, false)
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"dry_run":true`, `"would_close":["7001"]`, `"would_note":["7000"]`, `"would_reopen":["7002"]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("view = %s, want %s in it", data, want)
		}
	}
	var back TicketPassView
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Report(); !got.DryRun || !slices.Equal(got.Customers[0].WouldNote, []string{"7000"}) || !slices.Equal(got.Customers[0].WouldClose, []string{"7001"}) ||
		!slices.Equal(got.Customers[0].WouldReopen, []string{"7002"}) {
		t.Errorf("report read back = %+v, want the dry run's would_close, would_note and would_reopen", got)
	}
}
