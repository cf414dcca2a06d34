package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestDaemon_storedStateErrorNamesNoDatabase: a pass whose state write
// fails once (the statement that records its intents runs past the
// server's statement_timeout) stores its errors in the run, the customer
// statuses and the plan, which the API and the status page serve to
// anyone who reaches the listener, without the API token. What they show
// says that the state database failed, and how, but names neither its
// host, port, user nor database; the log has the database's error.
func TestDaemon_storedStateErrorNamesNoDatabase(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	admin := withStatementTimeout(t, url)
	var logs syncBuffer
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url)})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	lock, err := admin.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(t.Context(), `SET LOCAL statement_timeout = 0; LOCK TABLE intents IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI})
	if err != nil || res.Run.Result == state.RunSuccess {
		t.Fatalf("pass with the intents table locked = %+v, %v; want one whose customers failed", res, err)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}

	// What names the database: its host and port, its name, its user, and
	// the words the state package's errors name it with.
	secret := []string{pc.Host + ":" + strconv.Itoa(int(pc.Port)), strconv.Quote(pc.Database), "database=" + pc.Database,
		"user=" + pc.User, "PostgreSQL database", a.State().Path()}
	for _, target := range []string{"/api/v1/runs", fmt.Sprintf("/api/v1/runs/%d", res.Run.ID), "/api/v1/customers",
		"/api/v1/customers?status=failed", "/api/v1/plan", "/", "/customers/file/cust-globex"} {
		rec := dtServe(t, a, http.MethodGet, target, "", "")
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d %s", target, rec.Code, rec.Body)
			continue
		}
		body := rec.Body.String()
		for _, s := range secret {
			if strings.Contains(body, s) {
				t.Errorf("GET %s without the API token shows %q:\n%s", target, s, body)
			}
		}
	}
	rec := dtServe(t, a, http.MethodGet, "/api/v1/customers?status=failed", "", "")
	if !strings.Contains(rec.Body.String(), "the state database did not answer in time") &&
		!strings.Contains(rec.Body.String(), "the state database failed (SQLSTATE 57014)") {
		t.Errorf("failed customers = %s, want Globex's error saying how the state database failed", rec.Body)
	}
	if !strings.Contains(rec.Body.String(), "psa-syncd's log has the error") {
		t.Errorf("failed customers = %s, want Globex's error pointing at the log", rec.Body)
	}
	if !strings.Contains(logs.String(), "state_err=") || !strings.Contains(logs.String(), secret[0]) || !strings.Contains(logs.String(), "statement timeout") {
		t.Errorf("the log does not have the state database's error:\n%s", logs.String())
	}
}

// TestDaemon_syncRequestStateErrorNamesNoFile: a sync request whose pass
// fails on the state database before it records a run (the database is
// closed: as good as a file that cannot be written) keeps the error, which
// GET /api/v1/runs/{id} answers without the API token: it says that the
// state database failed without the SQLite file's path, and the log has
// the error.
func TestDaemon_syncRequestStateErrorNamesNoFile(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	where := e.d.State().Path()
	if err := e.d.State().Close(); err != nil {
		t.Fatal(err)
	}
	tk := e.d.RequestSync("", usage.TriggerAPI)
	ctx, cancel := context.WithCancel(t.Context())
	loop := make(chan struct{})
	go func() { defer close(loop); e.d.workLoop(ctx, ctx) }()
	done, err := e.d.WaitTicket(t.Context(), tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The loop logs the pass's failure after the request is finished.
	cancel()
	<-loop
	if done.Status != "failed" || done.RunID != 0 {
		t.Fatalf("request = %+v, want one that failed before recording a run", done)
	}
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/runs/"+tk.ID, "", "")
	if body := rec.Body.String(); rec.Code != http.StatusOK || strings.Contains(body, where) || strings.Contains(body, filepath.Dir(where)) ||
		!strings.Contains(body, "the state database failed; psa-syncd's log has the error") {
		t.Errorf("GET /api/v1/runs/%s without the API token = %d %s; want the request's error saying the state database failed, without its path", tk.ID, rec.Code, body)
	}
	if !strings.Contains(logs.String(), `msg="Pass failed"`) || !strings.Contains(logs.String(), where) {
		t.Errorf("the log does not have the state database's error:\n%s", logs.String())
	}
}

// TestDaemon_ticketStatusStateErrorNamesNoDatabase: a customer whose ticket
// pass failed on the state database keeps the error in its ticket status,
// which GET /api/v1/customers and the status page serve without the API
// token: it says how the database failed without naming it.
func TestDaemon_ticketStatusStateErrorNamesNoDatabase(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	d, _, _ := ttSetup(t, routing, true)
	const where = `PostgreSQL database "psa" on db.internal:5432`
	rep := tickets.Report{Customers: []tickets.CustomerReport{{
		Customer: tickets.Customer{Source: "sophos", CustomerID: ttAcme, CustomerName: "Acme"},
		Err: fmt.Errorf("recording ticket PSA-1: %w", &state.Error{What: "storing a ticket", Where: where,
			Err: fmt.Errorf("failed to connect to `user=psa_syncd database=psa`: %w", context.DeadlineExceeded)}),
	}}}
	if err := d.recordTicketPass(rep, nil, d.now()); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/v1/customers", "/customers/sophos/" + ttAcme} {
		rec := dtServe(t, d, http.MethodGet, target, "", "")
		body := rec.Body.String()
		if rec.Code != http.StatusOK || !strings.Contains(body, "storing a ticket: the state database did not answer in time") {
			t.Errorf("GET %s = %d %s; want Acme's ticket error saying the state database did not answer in time", target, rec.Code, body)
		}
		for _, s := range []string{"db.internal", "user=psa_syncd", "database=psa", "PostgreSQL database"} {
			if strings.Contains(body, s) {
				t.Errorf("GET %s without the API token shows %q:\n%s", target, s, body)
			}
		}
	}
}

// TestDaemon_olderRunErrorNamesNoDatabase: a run that an older psa-syncd
// recorded keeps the error it stored, which named the state database's
// file; the API and the status page, which serve it without the API
// token, say "the state database" instead.
func TestDaemon_olderRunErrorNamesNoDatabase(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	db := e.d.State()
	run, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: time.Now().UTC(), Period: "2026-11"})
	if err != nil {
		t.Fatal(err)
	}
	run.Result, run.Finished = state.RunFailure, time.Now().UTC()
	run.Error = "daemon: recording customer statuses: state: storing the statuses of 2 customers in " + db.Path() + ": disk I/O error"
	if err := db.SaveRun(run); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/v1/runs", fmt.Sprintf("/api/v1/runs/%d", run.ID), "/"} {
		rec := dtServe(t, e.d, http.MethodGet, target, "", "")
		if body := rec.Body.String(); rec.Code != http.StatusOK || strings.Contains(body, filepath.Dir(db.Path())) ||
			!strings.Contains(body, "storing the statuses of 2 customers in the state database") {
			t.Errorf("GET %s = %d %s; want the run's error saying the state database, without its path", target, rec.Code, body)
		}
	}
}
