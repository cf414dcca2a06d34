package daemon

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// haDatabase returns the URL of a new database on a PostgreSQL cluster of
// the test's own.
func haDatabase(t *testing.T) string {
	t.Helper()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// haRunActive runs the only instance on the PostgreSQL database url
// (lock_interval 100ms, no export watch) until it is active; done gets
// what its Run returns.
func haRunActive(t *testing.T, url string) (e *dtEnv, done chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e = dtSetup(t, dtOptions{daemonOpts: Options{Listener: ln, WatchInterval: time.Hour},
		state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 100ms\n", url)})
	done = make(chan error, 1)
	go func() { done <- e.d.Run(t.Context()) }()
	deadline := time.Now().Add(30 * time.Second)
	for !e.d.Active() {
		if time.Now().After(deadline) {
			t.Fatal("the only instance did not become active")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e, done
}

// runReturned waits for what Run returned on done, for up to within; the
// test ends with "Run did not return after " and after otherwise.
func runReturned(t *testing.T, done <-chan error, within time.Duration, after string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatal("Run did not return after " + after)
		return nil
	}
}

// TestDaemon_standbyOnSharedPostgres: two psa-syncd on one PostgreSQL
// database; the first is active, the second a standby that serves the
// read-only API, forwards sync and resolve to the active one (refusing them,
// naming it, when forwarding is not possible), and takes over once the
// active one is gone.
func TestDaemon_standbyOnSharedPostgres(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	const token = "s3cret-token"
	// The active instance's API, at the URL it advertises.
	var activeAPI http.Handler
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { activeAPI.ServeHTTP(w, r) }))
	defer srvA.Close()
	e := dtSetup(t, dtOptions{token: token, state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  advertise_url: %s\n", url, srvA.URL)})
	a := e.d
	activeAPI = a.Handler()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatalf("first BecomeActive: %v", err)
	}
	raw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	bPath := filepath.Join(e.dir, "standby.yml")
	dtWrite(t, bPath, strings.Replace(string(raw), srvA.URL, "http://127.0.0.1:1", 1))
	cfg, err := Load(bPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, bPath, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) || !strings.Contains(se.Active, srvA.URL) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError naming the active instance", err)
	}
	if got := testutil.ToFloat64(a.metrics.Leader); got != 1 {
		t.Errorf("psa_sync_leader on the active instance = %v, want 1", got)
	}
	if got := testutil.ToFloat64(b.metrics.Leader); got != 0 {
		t.Errorf("psa_sync_leader on the standby = %v, want 0", got)
	}

	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	do := func(method, path string, header ...string) (int, string) {
		reqBody := `{"posted": true}`
		if strings.HasSuffix(path, "/sync") {
			reqBody = `{"customer": "cust-acme"}`
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(reqBody))
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// Forwarded to the active instance, token and body included: it queues
	// the pass, and it answers for the intent (which is not open).
	code, body := do(http.MethodPost, "/api/v1/sync")
	var ticket SyncTicket
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &ticket) != nil {
		t.Errorf("POST /api/v1/sync on the standby = %d %s; want the active instance's 202", code, body)
	} else if got, ok := a.Ticket(ticket.ID); !ok || got.Customer != "cust-acme" {
		t.Errorf("the forwarded sync request %s on the active instance = %+v, %v; want it queued for cust-acme", ticket.ID, got, ok)
	}
	if code, body := do(http.MethodPost, "/api/v1/intents/1/resolve"); code != http.StatusConflict || !strings.Contains(body, "intent 1 is not open") {
		t.Errorf("POST resolve on the standby = %d %s; want the active instance's 409", code, body)
	}
	// A request that was forwarded already is never forwarded again.
	for _, path := range []string{"/api/v1/sync", "/api/v1/intents/1/resolve"} {
		code, body := do(http.MethodPost, path, forwardedHeader, "other-standby")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "standby") || !strings.Contains(body, srvA.URL) {
			t.Errorf("POST %s forwarded to a standby = %d %s; want 503 naming the active instance", path, code, body)
		}
	}
	if code, body := do(http.MethodGet, "/-/ready"); code != http.StatusOK || !strings.Contains(body, "standby") {
		t.Errorf("GET /-/ready on the standby = %d %s; want 200 saying standby", code, body)
	}
	if code, body := do(http.MethodGet, "/api/v1/customers"); code != http.StatusOK || !strings.Contains(body, "cust-acme") {
		t.Errorf("GET /api/v1/customers on the standby = %d %s; want 200", code, body)
	}
	if _, err := b.SyncOnce(t.Context(), usage.PassOptions{}); !errors.As(err, &se) {
		t.Errorf("SyncOnce on the standby = %v, want a StandbyError", err)
	}

	// The active one syncs; once it is gone the standby takes over.
	if res, err := a.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Updated == 0 {
		t.Fatalf("SyncOnce on the active instance = %v, %v", res, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatalf("BecomeActive after the active instance closed: %v", err)
	}
	res, err := b.SyncOnce(t.Context(), usage.PassOptions{})
	if err != nil || res.Run.Updated != 0 || res.Run.Result != "success" {
		t.Errorf("SyncOnce on the new active instance = %+v, %v; want nothing left to change", res, err)
	}
	if got := testutil.ToFloat64(b.metrics.Leader); got != 1 {
		t.Errorf("psa_sync_leader after the takeover = %v, want 1", got)
	}
}

// TestDaemon_takeoverRestoresTicketCountersOnce: a standby of a PostgreSQL
// pair restores psa_sync_tickets_total from the stored ticket totals when
// it starts, and restores the metrics again when it takes over. The
// counters must not get the stored totals a second time (every outcome
// then counted the whole history twice, and the dashboard's
// increase(psa_sync_tickets_total) showed it as new tickets at the
// failover), nor catch up with the tickets the active instance counted
// meanwhile on its own series: the standby keeps counting from the value
// it restored at start-up.
func TestDaemon_takeoverRestoresTicketCountersOnce(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e := dtSetup(t, dtOptions{state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 100ms\n", url)})
	a := e.d
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	// What the active instance's ticket passes have counted so far.
	rec := ticketRecord{Totals: map[string]int64{"created": 5, "updated": 2, "closed": 3, "failed": 1}}
	if err := a.State().PutSnapshot(snapshotTickets, rec); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, e.cfgPath, Options{Registry: prometheus.NewRegistry(), Listener: ln, WatchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// The standby has restored the counters at start-up.
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(b.metrics.TicketsTotal.WithLabelValues("created")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not restore the ticket counters")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.Active() {
		t.Fatal("the second instance is active while the first holds the lock")
	}
	// The active instance counts two more created tickets, on its own
	// series, before it stops.
	more := ticketRecord{Totals: map[string]int64{"created": 7, "updated": 2, "closed": 3, "failed": 1}}
	if err := a.State().PutSnapshot(snapshotTickets, more); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Once it has taken over (the metrics restored again), the schedule
	// loop sets the next run.
	for testutil.ToFloat64(b.metrics.NextRunTimestamp) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not take over")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, o := range TicketOutcomes {
		if got, want := testutil.ToFloat64(b.metrics.TicketsTotal.WithLabelValues(o)), float64(rec.Totals[o]); got != want {
			t.Errorf("psa_sync_tickets_total{outcome=%q} after the takeover = %v, want %v, the total it restored at start-up", o, got, want)
		}
	}
}

// TestDaemon_takeoverRestoresMetricsBeforeLeader: a standby restored the
// gauges of past passes when it started (nothing had run yet), and the
// active instance has synced since. When the standby takes over, its
// gauges must be the restored ones by the time psa_sync_leader says they
// are the active instance's: set to 1 before, the standby's start-up
// copies counted as the active instance's for a scrape, and the rules
// without a `for` (PsaSyncFailing, PsaSyncNewUnmappedUsage, ...) could
// fire on them.
func TestDaemon_takeoverRestoresMetricsBeforeLeader(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e := dtSetup(t, dtOptions{state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url)})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := dtSecondInstance(t, e, time.Now)
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	// The standby's start-up, as Run does it.
	if err := b.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}

	if _, err := a.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL keeps times to the microsecond: compare them to the
	// millisecond.
	gauges := func(m *Metrics) map[string]float64 {
		g := restorableGauges(m)
		for _, k := range []string{"last_run", "last_success", "held_since"} {
			g[k] = math.Round(g[k] * 1e3)
		}
		return g
	}
	want := gauges(a.metrics)
	if want["unmapped{customer}"] == 0 || want["last_run{success}"] != 1 {
		t.Fatalf("the active instance's gauges after its pass = %v, want unmapped customers and a success (the test would prove nothing)", want)
	}
	if got := gauges(b.metrics); reflect.DeepEqual(got, want) {
		t.Fatalf("the standby's gauges before the takeover = %v, the active instance's (the test would prove nothing)", got)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(b.metrics.Leader); got != 1 {
		t.Fatalf("psa_sync_leader after the takeover = %v, want 1", got)
	}
	if got := gauges(b.metrics); !reflect.DeepEqual(got, want) {
		t.Errorf("gauges once psa_sync_leader is 1 on the new active instance =\n%v\nwant the ones the passes recorded\n%v", got, want)
	}
}

// TestDaemon_takeoverInterruptsRunningRuns: the active instance stops during
// a pass (here it gives the lock up with its run still running), and the
// standby that takes over marks that run as an interrupted failure. A run in
// progress is never marked: not by a standby, whose active instance is
// running it, nor by BecomeActive on an instance already active (the sync
// command's case), whose own pass it may be.
func TestDaemon_takeoverInterruptsRunningRuns(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e := dtSetup(t, dtOptions{state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url)})
	a := e.d
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b := dtSecondInstance(t, e, func() time.Time { return now })
	cut, err := a.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: now.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("BecomeActive on the standby = %v, want a StandbyError", err)
	}
	if got, _, err := b.State().Run(cut.ID); err != nil || got.Result != state.RunRunning {
		t.Errorf("the active instance's run after the standby tried the lock = %+v, %v; want it still running", got, err)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatalf("BecomeActive after the active instance stopped: %v", err)
	}
	got, _, err := b.State().Run(cut.ID)
	if err != nil || got.Result != state.RunFailure || !got.Interrupted() || !got.Finished.Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("the stopped instance's run after the takeover = %+v, %v; want an interrupted failure finished at %v", got, err, now)
	}

	own, err := b.State().BeginRun(state.Run{Trigger: usage.TriggerCLI, Started: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _, err := b.State().Run(own.ID); err != nil || got.Result != state.RunRunning {
		t.Errorf("the active instance's own run after BecomeActive again = %+v, %v; want it still running", got, err)
	}
}

// bmsFileSetup writes, in dir, the export and the config of an instance
// on an SQLite state database that syncs the file source's usage.csv
// (which the test writes) to the contract of one Kaseya BMS customer, Acme,
// whose product CIXA-MSP bills a service of the simulator sim; start
// starts an instance of it with opts and reloads it.
func bmsFileSetup(t *testing.T) (sim *psatest.Server, contract int, dir string, start func(opts Options) *Daemon) {
	t.Helper()
	sim = psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS))
	k := sim.KaseyaBMS()
	svc := k.AddService("Sophos Intercept X Advanced", 4.5)
	account := k.AddAccount("Acme")
	contract = k.AddContract(psatest.KaseyaBMSContract{AccountID: account, Name: "Acme Managed Services"})
	dir = t.TempDir()
	doc := export.New(psa.SystemKaseyaBMS, strings.TrimPrefix(sim.URL(), "http://"))
	doc.Revision = 1
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: fmt.Sprint(svc), SyncEnabled: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-acme", CompanyID: fmt.Sprint(account), ContractID: fmt.Sprint(contract), UsageSync: true})
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, dir+"/mappings.json", string(data))
	user, password, tenant := k.Credentials()
	dtWrite(t, dir+"/psa-syncd.yml", fmt.Sprintf("export_path: mappings.json\nstate_dir: state\npsa:\n  system: kaseya_bms\n  kaseya_bms:\n"+
		"    base_url: %q\n    username: %q\n    password: %q\n    tenant: %q\nsource:\n  type: file\n  file:\n    path: usage.csv\n",
		sim.KaseyaBMSBaseURL(), user, password, tenant))
	start = func(opts Options) *Daemon {
		cfg, err := Load(dir+"/psa-syncd.yml", nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(cfg, dir+"/psa-syncd.yml", opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Reload(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return sim, contract, dir, start
}

// restoreSQLiteBackup does the README's restore of an SQLite state
// database db from backup, psa-syncd stopped: remove the database and its
// -wal and -shm, copy the backup into place.
func restoreSQLiteBackup(t *testing.T, db, backup string) {
	t.Helper()
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// bmsLinePosts counts the Kaseya BMS line posts sim was sent: one per
// line psa-syncd added to a contract.
func bmsLinePosts(sim *psatest.Server) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.Path), "/services") {
			n++
		}
	}
	return n
}

// TestDaemon_kaseyaBMSEmptyStateNeedsFlag: with Kaseya BMS, whose
// quantities only the ledger records, a pass on a state database without a
// ledger is refused unless the operator allows it, once.
func TestDaemon_kaseyaBMSEmptyStateNeedsFlag(t *testing.T) {
	t.Parallel()
	sim, _, dir, start := bmsFileSetup(t)
	dtWrite(t, dir+"/usage.csv", "customer_id,product,quantity\ncust-acme,CIXA-MSP,25\n")
	open := func(allow bool) *Daemon { return start(Options{AllowEmptyState: allow}) }
	posts := func() int { return bmsLinePosts(sim) }

	d := open(false)
	_, err := d.SyncOnce(t.Context(), usage.PassOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds no ledger") || !strings.Contains(err.Error(), "-state.allow-empty") ||
		!strings.Contains(err.Error(), "restore the state database from a backup") {
		t.Errorf("SyncOnce on an empty state database = %v, want a refusal naming the backup and -state.allow-empty", err)
	}
	if res, err := d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil || res.Run.Updated != 1 {
		t.Errorf("a dry run = %v, %v; want it allowed", res, err)
	}
	if n := posts(); n != 0 {
		t.Fatalf("%d lines posted before the operator allowed it", n)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = open(true)
	if res, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Updated != 1 {
		t.Fatalf("SyncOnce with AllowEmptyState = %v, %v; want the line posted", res, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// From then on the ledger is the record: no flag needed, nothing posted again.
	d = open(false)
	defer d.Close()
	if res, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Updated != 0 || res.Run.Unchanged != 1 {
		t.Errorf("SyncOnce after the first pass = %+v, %v; want 1 unchanged", res, err)
	}
	if n := posts(); n != 1 {
		t.Errorf("%d lines posted in all, want 1", n)
	}
	// The calls of both passes are counted against BMS's hourly limit in
	// the state database, so a restart (or another instance) knows what is
	// left: every request of every pass, sign-ins included.
	calls, err := d.db.APICalls().Calls(time.Now(), time.Hour, 1500)
	if err != nil {
		t.Fatal(err)
	}
	total, apiRequests := 0, 0
	for _, n := range calls {
		total += n
	}
	for _, r := range sim.Requests() {
		if strings.Contains(r.Path, "/v2/") {
			apiRequests++
		}
	}
	if total == 0 || total != apiRequests {
		t.Errorf("calls counted in the state database = %d (%v), want the %d API requests of the passes", total, calls, apiRequests)
	}
}

// TestDaemon_kaseyaBMSRestoredBackupPostsNoLineTwice: the README's restore
// procedure for an SQLite state database (stop, put the backup in place,
// start) followed by a pass. With Kaseya BMS the ledger is the only record
// of a line's units, so the changes posted after the backup was taken are
// unknown to the restored database, and a pass would post them again: a
// second line with the same units. The backup is marked as one, and a pass
// on it writes nothing until the operator confirms the restore
// (AllowRestore, -state.allow-restore), once; plans and dry runs say why.
// (audit-state, finding 1.)
func TestDaemon_kaseyaBMSRestoredBackupPostsNoLineTwice(t *testing.T) {
	t.Parallel()
	sim, contract, dir, start := bmsFileSetup(t)
	k := sim.KaseyaBMS()
	usageRow := func(n int) {
		dtWrite(t, dir+"/usage.csv", fmt.Sprintf("customer_id,product,quantity\ncust-acme,CIXA-MSP,%d\n", n))
	}
	open := func(allow, allowRestore bool) *Daemon {
		return start(Options{AllowEmptyState: allow, AllowRestore: allowRestore})
	}
	posts := func() int { return bmsLinePosts(sim) }

	// First start: 25 units posted; the nightly backup is taken.
	usageRow(25)
	d := open(true, false)
	if _, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	if err := d.db.Backup(backup); err != nil {
		t.Fatal(err)
	}
	if _, marked, err := d.db.RestoredBackup(); marked || err != nil {
		t.Fatalf("the live database after a backup: marked = %v, %v; want only the copy marked", marked, err)
	}
	// The next day: usage rose to 30, a second line is posted.
	usageRow(30)
	if _, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := posts(); n != 2 {
		t.Fatalf("%d lines posted before the restore, want 2", n)
	}

	// The disk is lost; the README's restore.
	restoreSQLiteBackup(t, filepath.Join(dir, "state", "psa-syncd.db"), backup)
	d = open(false, false)
	res, err := d.SyncOnce(t.Context(), usage.PassOptions{})
	if n := posts(); n != 2 {
		t.Errorf("the first pass after restoring the backup posted %d more lines (run %+v, err %v); want none: "+
			"the 30 units were posted after the backup was taken, and BMS now has the line twice: %+v",
			n-2, res, err, k.ServiceLines(contract))
	}
	if !errors.Is(err, ErrRestoredBackup) || !strings.Contains(err.Error(), "-state.allow-restore") {
		t.Errorf("SyncOnce on the restored backup = %v; want ErrRestoredBackup naming -state.allow-restore", err)
	}
	if res, err := d.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil || res.Plan == nil ||
		!strings.Contains(res.Plan.WritesHeld, "restored") {
		t.Errorf("a dry run on the restored backup = %+v, %v; want it computed, saying why writes are held", res, err)
	}
	if p, err := d.Plan(t.Context(), usage.PassOptions{}); err != nil || !strings.Contains(p.WritesHeld, "restored") {
		t.Errorf("Plan on the restored backup = %+v, %v; want it computed, saying why writes are held", p, err)
	}
	if n := posts(); n != 2 {
		t.Fatalf("%d lines posted in all, want 2", n)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// The operator confirms once; the mark is gone for good.
	d = open(false, true)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(false, false)
	defer d.Close()
	if _, marked, err := d.db.RestoredBackup(); marked || err != nil {
		t.Errorf("after -state.allow-restore: marked = %v, %v; want the mark removed", marked, err)
	}
}

// TestDaemon_kaseyaBMSRestoredPostgresDumpPostsNoLineTwice: the README's
// restore procedure for a PostgreSQL state database (stop every psa-syncd,
// pg_restore --clean --if-exists a pg_dump, start) followed by a pass. As
// for an SQLite backup, the restored ledger lacks the line posted after
// the dump, and a pass would post it again: the restored database is told
// from the live one (its tables are new, their rows the dump's), and a
// pass writes nothing until the operator confirms the restore
// (AllowRestore, -state.allow-restore), once.
func TestDaemon_kaseyaBMSRestoredPostgresDumpPostsNoLineTwice(t *testing.T) {
	t.Parallel()
	sim, contract, dir, start := bmsFileSetup(t)
	url := haDatabase(t)
	bmsUsePostgres(t, dir, url)
	k := sim.KaseyaBMS()
	usageRow := func(n int) {
		dtWrite(t, dir+"/usage.csv", fmt.Sprintf("customer_id,product,quantity\ncust-acme,CIXA-MSP,%d\n", n))
	}
	open := func(allow, allowRestore bool) *Daemon {
		d := start(Options{AllowEmptyState: allow, AllowRestore: allowRestore})
		if err := d.BecomeActive(t.Context()); err != nil {
			t.Fatal(err)
		}
		return d
	}
	posts := func() int { return bmsLinePosts(sim) }

	// First start: 25 units posted; the nightly pg_dump runs.
	usageRow(25)
	d := open(true, false)
	if _, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	dump := pgtest.Dump(t, url)
	// The next day: usage rose to 30, a second line is posted.
	usageRow(30)
	if _, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// The live database, opened again, is no restored one.
	d = open(false, false)
	if _, marked, err := d.db.RestoredBackup(); marked || err != nil {
		t.Fatalf("the live database: marked = %v, %v; want unmarked", marked, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := posts(); n != 2 {
		t.Fatalf("%d lines posted before the restore, want 2", n)
	}

	// The database is lost or damaged; the README's restore.
	pgtest.Restore(t, dump, url)
	d = open(false, false)
	res, err := d.SyncOnce(t.Context(), usage.PassOptions{})
	if n := posts(); n != 2 {
		t.Errorf("the first pass after restoring the dump posted %d more lines (run %+v, err %v); want none: "+
			"the 30 units were posted after the dump, and BMS now has the line twice: %+v",
			n-2, res, err, k.ServiceLines(contract))
	}
	if !errors.Is(err, ErrRestoredBackup) || !strings.Contains(err.Error(), "restored from a dump (pg_restore) whose last recorded write is at") ||
		!strings.Contains(err.Error(), "-state.allow-restore") {
		t.Errorf("SyncOnce on the restored database = %v; want ErrRestoredBackup naming the dump and -state.allow-restore", err)
	}
	if p, err := d.Plan(t.Context(), usage.PassOptions{}); err != nil || !strings.Contains(p.WritesHeld, "restored") {
		t.Errorf("Plan on the restored database = %+v, %v; want it computed, saying why writes are held", p, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// The operator confirms once; the mark is gone for good.
	d = open(false, true)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(false, false)
	defer d.Close()
	if _, marked, err := d.db.RestoredBackup(); marked || err != nil {
		t.Errorf("after -state.allow-restore: marked = %v, %v; want the mark removed", marked, err)
	}
}

// bmsUsePostgres makes the configuration of bmsFileSetup in dir keep its
// state in the PostgreSQL database url.
func bmsUsePostgres(t *testing.T, dir, url string) {
	t.Helper()
	data, err := os.ReadFile(dir + "/psa-syncd.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, _ := strings.Cut(string(data), "state:\n  driver: postgres\n")
	dtWrite(t, dir+"/psa-syncd.yml", cfg+fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url))
}

// TestDaemon_kaseyaBMSPromotedReplicaPostsNoLineTwice: the PostgreSQL
// server of the state database fails, and its asynchronous replica, which
// missed the last commits, is promoted (or the database is recovered to a
// point in time): a physical copy, which keeps every table's identity,
// lacks the ledger entry of the 30 units posted last. The next pass posts
// nothing: writes are held, naming the new timeline and
// -state.allow-restore, until an operator confirms the copy.
func TestDaemon_kaseyaBMSPromotedReplicaPostsNoLineTwice(t *testing.T) {
	t.Parallel()
	sim, contract, dir, start := bmsFileSetup(t)
	live := pgtest.New(t)
	url, err := live.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bmsUsePostgres(t, dir, url)
	open := func(allowRestore bool) *Daemon {
		d := start(Options{AllowEmptyState: true, AllowRestore: allowRestore})
		if err := d.BecomeActive(t.Context()); err != nil {
			t.Fatal(err)
		}
		return d
	}
	dtWrite(t, dir+"/usage.csv", "customer_id,product,quantity\ncust-acme,CIXA-MSP,25\n")
	d := open(false)
	if _, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	replica := live.PromotedCopy(t)
	// Committed on the failed server only.
	dtWrite(t, dir+"/usage.csv", "customer_id,product,quantity\ncust-acme,CIXA-MSP,30\n")
	if _, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := bmsLinePosts(sim); n != 2 {
		t.Fatalf("%d lines posted before the failover, want 2", n)
	}

	bmsUsePostgres(t, dir, replica.URL(url[strings.LastIndex(url, "/")+1:strings.Index(url, "?")]))
	d = open(false)
	res, err := d.SyncOnce(t.Context(), usage.PassOptions{})
	if n := bmsLinePosts(sim); n != 2 {
		t.Errorf("the first pass on the promoted replica posted %d more lines (run %+v, err %v); want none: BMS now has the 30 units twice: %+v",
			n-2, res, err, sim.KaseyaBMS().ServiceLines(contract))
	}
	if !errors.Is(err, ErrRestoredBackup) || !strings.Contains(err.Error(), "on PostgreSQL timeline 2, not 1 where psa-syncd wrote it") ||
		!strings.Contains(err.Error(), "-state.allow-restore") {
		t.Errorf("SyncOnce on the promoted replica = %v; want ErrRestoredBackup naming the timelines and -state.allow-restore", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// The operator confirms once; the mark is gone for good.
	d = open(true)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(false)
	defer d.Close()
	if _, marked, err := d.db.RestoredBackup(); marked || err != nil {
		t.Errorf("after -state.allow-restore: marked = %v, %v; want the mark removed", marked, err)
	}
}

// TestDaemon_Run_exitsWhenLeadershipLost: when the connection holding the
// leadership lock fails, Run stops and returns an error, so that the
// process exits and a standby takes over.
func TestDaemon_Run_exitsWhenLeadershipLost(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e, done := haRunActive(t, url)
	dtCutLeadership(t, url)
	if err := runReturned(t, done, 30*time.Second, "its leadership lock was lost"); err == nil ||
		!strings.Contains(err.Error(), "lost the state database's leadership lock") {
		t.Errorf("Run returned %v, want the lost leadership", err)
	}
	if got := testutil.ToFloat64(e.d.metrics.Leader); got != 0 {
		t.Errorf("psa_sync_leader after the loss = %v, want 0", got)
	}
}

// TestDaemon_Run_exitsWhenANewerVersionMigratedTheSchema: the active
// instance of a rolling upgrade stops its passes and exits once a newer
// psa-syncd migrated the shared schema past its own, and says so, rather
// than go on writing records the newer one misreads.
func TestDaemon_Run_exitsWhenANewerVersionMigratedTheSchema(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e, done := haRunActive(t, url)
	newer, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	if _, err := newer.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 'now')`,
		state.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("has schema version %d, migrated by a newer psa-syncd while this one ran, but this psa-syncd supports up to %d: "+
		"it is no longer the active instance; upgrade it", state.SchemaVersion+1, state.SchemaVersion)
	if err := runReturned(t, done, 30*time.Second, "a newer psa-syncd migrated the schema"); err == nil ||
		!strings.Contains(err.Error(), "lost the state database's leadership lock") || !strings.Contains(err.Error(), want) {
		t.Errorf("Run returned %v, want the lost leadership and %q", err, want)
	}
	if got := testutil.ToFloat64(e.d.metrics.Leader); got != 0 {
		t.Errorf("psa_sync_leader after the step-down = %v, want 0", got)
	}
}

// TestDaemon_selfExportSharedPostgres: with export_url: self, two psa-syncd
// on one PostgreSQL database share the stored export. An export PUT to the
// active one reaches the standby at its next poll, and one PUT to the
// standby is what the active one uses after its next poll; an instance
// that takes the lock over reloads the export before its first pass, even
// with no poll since the last PUT.
func TestDaemon_selfExportSharedPostgres(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true, state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url)})
	a := e.d
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	put := func(h http.Handler, doc *export.Document, header map[string]string) {
		t.Helper()
		if rec := dtExportRequest(t, h, http.MethodPut, "/api/v1/export", e.encode(t, doc), header); rec.Code/100 != 2 {
			t.Fatalf("PUT of revision %d = %d %s", doc.Revision, rec.Code, rec.Body)
		}
	}
	put(a.Handler(), e.doc, map[string]string{"If-None-Match": "*"})

	b := dtSecondInstance(t, e, nil)
	tickA, tickB := make(chan time.Time), make(chan time.Time)
	a.watchTick, b.watchTick = tickA, tickB
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	<-b.scheduleChanged
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go a.watchLoop(ctx)
	go b.watchLoop(ctx)

	// A PUT to the active instance, then the standby's poll.
	rev2 := e.doc.Clone()
	rev2.Revision = 2
	rev2.DeleteCustomer("file", "cust-globex")
	put(a.Handler(), rev2, map[string]string{"If-Match": `"1"`})
	tickB <- time.Now()
	<-b.scheduleChanged
	if got := b.Export(); got.Revision != 2 || len(got.CustomerMappings) != 1 {
		t.Errorf("the standby's export after a poll: revision %d with %d customers; want revision 2 with 1", got.Revision, len(got.CustomerMappings))
	}
	// An unchanged store is not loaded again.
	loaded := b.exp.Load()
	tickB <- time.Now()
	tickB <- time.Now() // taken once the first poll is done
	if b.exp.Load() != loaded {
		t.Error("a poll of an unchanged store loaded the export again")
	}

	// A PUT to the standby, then the active instance's poll.
	rev3 := rev2.Clone()
	rev3.Revision = 3
	rev3.DeleteProduct("file", "CIXA-SRV")
	put(b.Handler(), rev3, map[string]string{"If-Match": `"2"`})
	<-a.scheduleChanged // the PUT of revision 2
	tickA <- time.Now()
	<-a.scheduleChanged
	if got := a.Export().Revision; got != 3 {
		t.Errorf("the active instance's export after a poll is revision %d, want 3", got)
	}

	// A PUT that no poll of b has seen, then the takeover.
	cancel()
	rev4 := rev3.Clone()
	rev4.Revision = 4
	rev4.DeleteCustomer("file", "cust-acme")
	put(a.Handler(), rev4, map[string]string{"If-Match": `"3"`})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatalf("BecomeActive after the active instance closed: %v", err)
	}
	if got := b.Export(); got.Revision != 4 || len(got.CustomerMappings) != 0 {
		t.Errorf("the export of the instance that took over: revision %d with %d customers; want revision 4 with none", got.Revision, len(got.CustomerMappings))
	}
}

// dtActiveAndStandby starts two psa-syncd on one new PostgreSQL database:
// the first, active, serves its API at the URL it advertises; the second
// is a standby. It returns them and the standby's server.
func dtActiveAndStandby(t *testing.T, token string) (a, b *Daemon, standbyURL string) {
	t.Helper()
	return dtActiveAndStandbyBehind(t, token, "")
}

// dtActiveAndStandbyBehind is dtActiveAndStandby with both instances
// served by their listeners (exporter-toolkit) as the web config file
// webConfig says; "" serves their handlers as they are.
func dtActiveAndStandbyBehind(t *testing.T, token, webConfig string) (a, b *Daemon, standbyURL string) {
	t.Helper()
	pgURL := haDatabase(t)
	var webFile string
	if webConfig != "" {
		webFile = filepath.Join(t.TempDir(), "web-config.yml")
		dtWrite(t, webFile, webConfig)
	}
	listen := func() net.Listener {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	serve := func(d *Daemon, ln net.Listener) string {
		srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: time.Minute}
		go func() { _ = d.serve(srv, ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return "http://" + ln.Addr().String()
	}
	lnA := listen()
	e := dtSetup(t, dtOptions{token: token, daemonOpts: Options{WebConfigFile: webFile},
		state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  advertise_url: http://%s\n", pgURL, lnA.Addr())})
	a = e.d
	serve(a, lnA)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	b = dtSecondInstance(t, e, nil)
	b.webConfigFile = webFile
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError", err)
	}
	return a, b, serve(b, listen())
}

// TestDaemon_standbyForwardsSyncRequestLookup: `psa-syncd sync -web.url`
// through a Service posts the sync request and then polls its id, maybe on
// a standby, over one kept-alive connection. The standby forwards the
// lookup to the active instance, which holds the request, as it forwarded
// the request itself.
func TestDaemon_standbyForwardsSyncRequestLookup(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	a, _, standby := dtActiveAndStandby(t, token)
	do := func(method, path, body string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, standby+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	code, body := do(http.MethodPost, "/api/v1/sync", `{"customer":"cust-acme"}`)
	var ticket SyncTicket
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &ticket) != nil || ticket.ID == "" {
		t.Fatalf("POST /api/v1/sync on the standby = %d %s; want the active instance's 202", code, body)
	}
	poll := func() (int, SyncTicket, string) {
		t.Helper()
		code, body := do(http.MethodGet, "/api/v1/runs/"+ticket.ID, "")
		var out struct {
			Request SyncTicket `json:"request"`
		}
		_ = json.Unmarshal([]byte(body), &out)
		return code, out.Request, body
	}
	if code, got, body := poll(); code != http.StatusOK || got.ID != ticket.ID || got.Customer != "cust-acme" || got.Status != "queued" {
		t.Errorf("GET /api/v1/runs/%s on the standby = %d %s; want the active instance's queued request", ticket.ID, code, body)
	}
	if next, ok := a.queue.next(t.Context()); !ok || next.ID != ticket.ID {
		t.Fatalf("the active instance's queue gave %+v, %v", next, ok)
	}
	a.queue.finish(ticket.ID, state.Run{Result: state.RunSuccess}, nil, time.Now())
	if code, got, body := poll(); code != http.StatusOK || got.Status != "done" {
		t.Errorf("GET /api/v1/runs/%s on the standby after the pass = %d %s; want it done", ticket.ID, code, body)
	}
	// Another instance's, or an earlier process's, id is unknown to the
	// active one: 404, never another request.
	if code, body := do(http.MethodGet, "/api/v1/runs/q0badc0de-1", ""); code != http.StatusNotFound {
		t.Errorf("GET of an unknown sync request on the standby = %d %s; want the active instance's 404", code, body)
	}
	// A lookup forwarded already is not forwarded again.
	if code, body := do(http.MethodGet, "/api/v1/runs/"+ticket.ID, "", forwardedHeader, "other-standby"); code != http.StatusServiceUnavailable || !strings.Contains(body, "standby") {
		t.Errorf("GET of a sync request forwarded to a standby = %d %s; want 503 naming the active instance", code, body)
	}
	// Run ids are in the shared database: the standby answers them itself.
	if code, body := do(http.MethodGet, "/api/v1/runs/999", ""); code != http.StatusNotFound || !strings.Contains(body, `run \"999\" not found`) {
		t.Errorf("GET /api/v1/runs/999 on the standby = %d %s; want its own 404", code, body)
	}
	// The standby refuses what a browser sent on behalf of another site,
	// and forwards what one sent on the standby's own origin: an Origin
	// that names the standby, not the active instance's host.
	if code, body := do(http.MethodPost, "/api/v1/sync", `{"customer":"cust-globex"}`, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("POST /api/v1/sync from another site on the standby = %d %s; want 403", code, body)
	}
	if code, body := do(http.MethodPost, "/api/v1/sync", `{"customer":"cust-globex"}`, "Origin", standby); code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync from the standby's own origin = %d %s; want the active instance's 202", code, body)
	}
}

// TestDaemon_standbyStatusPageSync: the status page of a standby whose
// active instance advertises no URL refuses "Sync now" and "Approve",
// naming the active instance, instead of queueing a request that would run
// only after a takeover.
func TestDaemon_standbyStatusPageSync(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e := dtSetup(t, dtOptions{token: dtToken, state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url)})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := dtSecondInstance(t, e, nil)
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError", err)
	}
	c := newUIClient(t, b)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the status page")
	}
	c.do(http.MethodPost, "/ui/sign-in", neturl.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
	rec := c.do(http.MethodPost, "/ui/sync", neturl.Values{"csrf": {m[1]}, "customer": {"cust-acme"}, "approve": {"true"}, "service": {"1"}, "units": {"1"}, "next": {"/"}})
	loc, err := neturl.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || err != nil {
		t.Fatalf("POST /ui/sync on the standby = %d, Location %q", rec.Code, rec.Header().Get("Location"))
	}
	if msg := loc.Query().Get("msg"); !strings.Contains(msg, "standby") || !strings.Contains(msg, "pid") || !strings.Contains(msg, "advertise_url") {
		t.Errorf("POST /ui/sync on the standby says %q; want it to say this is a standby and name the active instance", msg)
	}
	if got := b.queue.active(); len(got) != 0 {
		t.Errorf("the standby queued %+v", got)
	}
}

// TestDaemon_standbyStatusPageSyncForwarded: with the active instance's
// URL advertised, "Sync now" and "Approve" on a standby's status page
// (session and CSRF checked by the standby) are queued on the active
// instance, and the standby's page shows the request.
func TestDaemon_standbyStatusPageSyncForwarded(t *testing.T) {
	t.Parallel()
	a, b, _ := dtActiveAndStandby(t, dtToken)
	c := newUIClient(t, b)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the status page")
	}
	// Not signed in: refused by the standby itself.
	if rec := c.do(http.MethodPost, "/ui/sync", neturl.Values{"csrf": {m[1]}, "next": {"/"}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST /ui/sync on the standby without a session = %d, want 401", rec.Code)
	}
	c.do(http.MethodPost, "/ui/sign-in", neturl.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
	for _, f := range []neturl.Values{
		{"customer": {"cust-globex"}},
		{"customer": {"cust-acme"}, "approve": {"true"}, "service": {"30000012"}, "units": {"7"}},
	} {
		f.Set("csrf", m[1])
		f.Set("next", "/")
		rec := c.do(http.MethodPost, "/ui/sync", f)
		loc, err := neturl.Parse(rec.Header().Get("Location"))
		if rec.Code != http.StatusSeeOther || err != nil {
			t.Fatalf("POST /ui/sync %v on the standby = %d, Location %q", f, rec.Code, rec.Header().Get("Location"))
		}
		id := loc.Query().Get("request")
		tk, ok := a.Ticket(id)
		if !ok || tk.Customer != f.Get("customer") || tk.Approve != (f.Get("approve") == "true") || tk.Service != f.Get("service") || tk.Trigger != usage.TriggerAPI {
			t.Errorf("POST /ui/sync %v on the standby: %q, the active instance holds request %q: %+v, %v", f, loc.Query().Get("msg"), id, tk, ok)
			continue
		}
		if f.Get("units") != "" && (tk.Units == nil || *tk.Units != 7) {
			t.Errorf("the approval lost its reviewed units: %+v", tk)
		}
		if body := c.do(http.MethodGet, loc.String(), nil).Body.String(); !strings.Contains(body, `id="request" data-status="queued"`) || !strings.Contains(body, id) {
			t.Errorf("the standby's page does not show request %s queued on the active instance:\n%s", id, body)
		}
	}
	if got := b.queue.active(); len(got) != 0 {
		t.Errorf("the standby queued %+v itself", got)
	}
	// What the active instance refuses, the standby's page says.
	rec := c.do(http.MethodPost, "/ui/sync", neturl.Values{"csrf": {m[1]}, "customer": {"cust-nobody"}, "next": {"/"}})
	if loc, _ := neturl.Parse(rec.Header().Get("Location")); loc == nil || !strings.Contains(loc.Query().Get("msg"), "not in the mapping export") {
		t.Errorf("POST /ui/sync for an unknown customer on the standby redirects to %q; want the active instance's reason", rec.Header().Get("Location"))
	}
}

// TestDaemon_standbyStatusPageSaysStandby: a standby runs no pass (its
// schedule loop runs only once it is active), so its status page says it
// is a standby and names the active instance, as /-/ready does, instead
// of "next scheduled pass: never"; and the plan it shows is the one it
// found when it started, not "what the last pass found".
func TestDaemon_standbyStatusPageSaysStandby(t *testing.T) {
	t.Parallel()
	a, b, _ := dtActiveAndStandby(t, dtToken)
	next := time.Now().Add(time.Hour).UTC()
	a.setNextRun(next) // what the active instance's schedule loop does
	body := newUIClient(t, a).do(http.MethodGet, "/", nil).Body.String()
	if !strings.Contains(body, "next scheduled pass: "+fmtWhen(next)) || strings.Contains(body, `id="standby"`) {
		t.Errorf("the active instance's page does not show its next pass %s, or says it is a standby:\n%s", fmtWhen(next), body)
	}
	if _, err := a.SyncOnce(t.Context(), usage.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.RestoreMetrics(); err != nil { // what a standby does at start-up
		t.Fatal(err)
	}
	info, held, err := b.State().Leader()
	if err != nil || !held {
		t.Fatalf("Leader() = %+v, %t, %v", info, held, err)
	}
	c := newUIClient(t, b)
	body = c.do(http.MethodGet, "/", nil).Body.String()
	header := regexp.MustCompile(`(?s)<header.*?</header>`).FindString(body)
	if !strings.Contains(header, `id="standby"`) || !strings.Contains(header, "standby</strong>; active instance: "+html.EscapeString(info.String())) {
		t.Errorf("the standby's page does not say it is a standby and name the active instance %s; its header:\n%s", info, header)
	}
	if strings.Contains(header, "next scheduled pass") {
		t.Errorf("the standby's page shows a next scheduled pass, which the active instance runs:\n%s", header)
	}
	body = c.do(http.MethodGet, "/customers/file/cust-acme", nil).Body.String()
	if src := regexp.MustCompile(`(?s)<p class="sub" id="plan-source">.*?</p>`).FindString(body); !strings.Contains(src, "when this standby started") || !strings.Contains(body, `id="lines"`) {
		t.Errorf("the standby's customer page labels the plan it found at start-up %q; want it said to be from when it started", src)
	}
}

// TestDaemon_standbyStatusPageSyncAsTokenUser: behind a listener with
// basic_auth_users, the browser reaches a standby's page as an operator's
// basic user ("ops"), whose password is not the API token, and signs in
// with the token. Having checked the session, the standby calls the active
// instance with the token itself, not with the browser's credentials,
// which the active instance would take for a wrong token.
func TestDaemon_standbyStatusPageSyncAsTokenUser(t *testing.T) {
	t.Parallel()
	a, b, _ := dtActiveAndStandby(t, dtToken)
	// The listener let the browser through as "ops" (basic_auth_users).
	h := b.Handler()
	c := &uiClient{t: t, cookies: map[string]string{}, h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.SetBasicAuth("ops", "ops-password")
		h.ServeHTTP(w, r)
	})}
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the status page")
	}
	c.do(http.MethodPost, "/ui/sign-in", neturl.Values{"token": {dtToken}, "csrf": {m[1]}, "next": {"/"}})
	rec := c.do(http.MethodPost, "/ui/sync", neturl.Values{"csrf": {m[1]}, "customer": {"cust-globex"}, "next": {"/"}})
	loc, err := neturl.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	id := loc.Query().Get("request")
	if tk, ok := a.Ticket(id); !ok || tk.Customer != "cust-globex" {
		t.Fatalf("Sync now on the standby's page, signed in with the API token as basic user ops, queued %+v, %t on the active instance; the page says %q",
			tk, ok, loc.Query().Get("msg"))
	}
	if body := c.do(http.MethodGet, loc.String(), nil).Body.String(); !strings.Contains(body, `id="request" data-status="queued"`) {
		t.Errorf("the standby's page does not show request %s queued on the active instance:\n%s", id, body)
	}
}

// dtSecondInstance starts a second psa-syncd on e's configuration (and so
// its state database), closed at the end of the test.
// now is its clock (nil: time.Now).
func dtSecondInstance(t *testing.T, e *dtEnv, now func() time.Time) *Daemon {
	t.Helper()
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, e.cfgPath, Options{Registry: prometheus.NewRegistry(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestDaemon_takeoverWaitsForUnconfirmedWrites: the active instance loses
// its lock while its adjustments are in flight; the instance that takes
// over reads the lines before they arrive. It must not post them again
// (an Autotask adjustment is a delta: the late write and the retry would
// add up): the lines wait for policies.settle_time after the takeover, a
// pass is queued for then, and that pass finds the late writes and
// settles their intents without writing.
func TestDaemon_takeoverWaitsForUnconfirmedWrites(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	hold := &dtHoldInstance{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	front := httptest.NewServer(hold)
	t.Cleanup(front.Close)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold.release) }) }
	t.Cleanup(release) // before front.Close, should the test fail while requests are held
	tagged := &http.Client{Timeout: time.Minute, Transport: dtTagTransport{}}
	e := dtSetup(t, dtOptions{daemonOpts: Options{HTTPClient: tagged},
		state:   fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url),
		baseURL: func(s *psatest.Server) string { hold.sim = s; return front.URL + "/ATServicesRest/" }})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The pass runs as runActive runs a's passes: stopped once a's check
	// of its lock finds the lock lost (whileActive ends its context then,
	// as runActive's stopPasses does).
	passCtx, stopWatching := a.whileActive(context.WithoutCancel(t.Context()))
	t.Cleanup(stopWatching)
	type passEnd struct {
		res *usage.Result
		err error
	}
	passDone := make(chan passEnd, 1)
	go func() {
		res, err := a.SyncOnce(passCtx, usage.PassOptions{Trigger: usage.TriggerAPI})
		passDone <- passEnd{res, err}
	}()
	select {
	case <-hold.arrived: // the active instance's adjustments are in flight
	case end := <-passDone:
		t.Fatalf("the active instance's pass ended before writing: %v", end.err)
	}

	// The active instance loses its lock (its connection is cut) without
	// knowing yet; its writes are still on their way.
	dtCutLeadership(t, url)

	now := time.Now()
	b := dtSecondInstance(t, e, func() time.Time { return now })
	var armed func()
	var armedWait time.Duration
	b.afterFunc = func(wait time.Duration, f func()) func() bool {
		armed, armedWait = f, wait
		return func() bool { return true }
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatalf("taking over: %v", err)
	}
	if _, err := b.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI}); err != nil {
		t.Fatal(err)
	}
	if n := hold.untagged.Load(); n != 0 {
		t.Fatalf("the instance that took over posted %d adjustments while the earlier ones were in flight", n)
	}
	cs, _, err := b.State().CustomerStatus("file", "cust-acme")
	if err != nil || cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "may still arrive") {
		t.Errorf("acme's status after the takeover pass = %+v, %v; want failed, saying the earlier write may still arrive", cs, err)
	}
	// The database keeps microseconds of the takeover's time.
	if armed == nil || armedWait > usage.DefaultSettleTime || armedWait < usage.DefaultSettleTime-time.Millisecond {
		t.Fatalf("follow-up pass armed = %t in %v, want in %v", armed != nil, armedWait, usage.DefaultSettleTime)
	}

	// a's next check of its lock finds it lost, and stops its pass, before
	// the late writes arrive. Run without that stop, the pass failed only
	// when it recorded its customer statuses before that check (every
	// state.lock_interval), through the lock's cut connection; after it,
	// they went through the pool and the pass succeeded.
	<-passCtx.Done()
	release() // the late writes arrive
	end := <-passDone
	if end.err == nil && !end.res.Run.Interrupted() {
		t.Errorf("the pass of the instance that lost its lock succeeded: %+v", end.res.Run)
	}
	// a's pass ended after the takeover: it recorded neither its customer
	// statuses nor its run, which went through the pool once a's check of
	// its lock had cleared the fence, over b's.
	if cs, _, err := b.State().CustomerStatus("file", "cust-acme"); err != nil || !strings.Contains(cs.Error, "may still arrive") {
		t.Errorf("acme's status after the deposed instance's pass ended = %+v, %v; want the takeover pass's, saying the earlier write may still arrive", cs, err)
	}
	if end.res == nil {
		t.Fatalf("the deposed instance's pass recorded no run: %v", end.err)
	}
	if run, ok, err := b.State().Run(end.res.Run.ID); err != nil || !ok || !run.Interrupted() || !strings.Contains(run.Error, interruptedRunReason) {
		t.Errorf("the deposed instance's run = %+v, %t, %v; want it as the takeover marked it interrupted (%q)", run, ok, err, interruptedRunReason)
	}
	now = now.Add(usage.DefaultSettleTime)
	armed()
	tk, ok := b.queue.next(t.Context())
	if !ok || tk.Trigger != usage.TriggerSettle {
		t.Fatalf("queued %+v, %t; want the settle pass", tk, ok)
	}
	res, err := b.SyncOnce(t.Context(), usage.PassOptions{Customer: tk.Customer, Trigger: tk.Trigger})
	if err != nil {
		t.Fatal(err)
	}
	if n := hold.untagged.Load(); n != 0 {
		t.Errorf("the settle pass posted %d adjustments, want none: the late ones arrived", n)
	}
	if res.Run.Result != state.RunSuccess {
		t.Errorf("settle pass = %+v, want success", res.Run)
	}
	for _, l := range []struct {
		customer, service int
		want              int64
	}{{0, 0, 11}, {0, 1, 2}, {1, 0, 5}} {
		if u := e.units(l.customer, l.service); u != l.want {
			t.Errorf("units of contract %d service %d = %d, want %d", l.customer, l.service, u, l.want)
		}
	}
	if open, _ := b.OpenIntents(); len(open) != 0 {
		t.Errorf("open intents left: %+v", open)
	}
}

// dtTagTransport marks the requests of the instance that will lose its
// lock.
type dtTagTransport struct{}

func (dtTagTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-Instance", "a")
	return http.DefaultTransport.RoundTrip(r)
}

// dtHoldInstance is a proxy in front of the simulator that holds the
// tagged instance's adjustment POSTs until release is closed, and counts
// the others' adjustment POSTs.
type dtHoldInstance struct {
	sim      *psatest.Server
	arrived  chan struct{}
	release  chan struct{}
	untagged atomic.Int64
}

func (h *dtHoldInstance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments") {
		if r.Header.Get("X-Test-Instance") == "" {
			h.untagged.Add(1)
		} else {
			select {
			case h.arrived <- struct{}{}:
			default:
			}
			<-h.release
		}
	}
	h.sim.Handler().ServeHTTP(w, r)
}

// dtCutLeadership ends the PostgreSQL session that holds the leadership
// lock of the database at url, as a broken connection would.
func dtCutLeadership(t *testing.T, url string) {
	t.Helper()
	conn, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	// pg_terminate_backend only signals the session: its lock is released
	// when its server process has exited, which under load may come after
	// another instance already tried the lock (and found it held).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var held int
		if err := conn.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d advisory locks still held 10s after their sessions were terminated", held)
		}
	}
}

// TestDaemon_freshPlanOnStandbyKeepsActivePlan: a plan computed through a
// standby's POST /api/v1/plan does not replace, in the shared state
// database, the last plan of the active instance's pass.
func TestDaemon_freshPlanOnStandbyKeepsActivePlan(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	a, _, standby := dtActiveAndStandby(t, token)
	res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := dtPostToken(t, standby+"/api/v1/plan", token, ""); code != http.StatusOK {
		t.Fatalf("POST /api/v1/plan on the standby = %d %s, want 200", code, body)
	}
	var s storedPlan
	if _, err := a.db.Snapshot(lastPlanSnapshot, &s); err != nil {
		t.Fatal(err)
	}
	if s.Plan == nil || s.Plan.RunID != res.Run.ID {
		t.Errorf("the stored last plan after the standby's plan is %+v, want the active instance's pass (run %d)", s.Plan, res.Run.ID)
	}
}

// dtPostToken posts body to url with the API token and returns the
// answer's status and body.
func dtPostToken(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestDaemon_standbySaysWhenTheStateDatabaseCannotBeRead: while a standby
// cannot read the shared state database (PostgreSQL restarting, a network
// cut), it cannot know the active instance. Its /-/ready and its 503s
// named "another psa-syncd" as the active instance, sending the operator
// to look for one instead of at the database.
func TestDaemon_standbySaysWhenTheStateDatabaseCannotBeRead(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e := dtSetup(t, dtOptions{token: "s3cret-token", state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url)})
	if err := e.d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewBlackhole(t, u.Host)
	u.Host = proxy.Addr()
	raw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	bPath := filepath.Join(e.dir, "standby.yml")
	dtWrite(t, bPath, strings.Replace(string(raw), fmt.Sprintf("%q", url), fmt.Sprintf("%q", u.String())+"\n  query_timeout: 2s", 1))
	cfg, err := Load(bPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, bPath, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("BecomeActive of the second instance = %v, want a StandbyError", err)
	}
	proxy.Cut() // the standby can no longer reach the database
	rec := dtServe(t, b, http.MethodGet, "/-/ready", "", "")
	if body := rec.Body.String(); strings.Contains(body, "another psa-syncd") || !strings.Contains(body, "state database") {
		t.Errorf("GET /-/ready on a standby that cannot read the state database = %d %q; want it to say the state database cannot be read, not that another psa-syncd is active", rec.Code, body)
	}
}

// TestDaemon_leaseStopsTheWritesOfAnInstanceCutFromTheDatabase: the network
// between the active instance and PostgreSQL starts dropping everything in
// the middle of a pass. Its check of the lock then waits query_timeout
// before it knows, while the server ends its silent session, and a standby
// takes over, after the session's bound (10 s here): meanwhile it kept
// sending the writes whose intents it had committed, and the new active
// instance's writes could meet them. Once the lock's session has not
// answered for half that bound, the pass must send no further write, and
// the run must not be recorded as the active instance's outcome.
func TestDaemon_leaseStopsTheWritesOfAnInstanceCutFromTheDatabase(t *testing.T) {
	t.Parallel()
	writes := &dtCountWrites{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(writes.release) }) }
	c := dtPassCutFromTheDatabase(t, writes, writes.arrived, release, func(s *psatest.Server) { writes.sim = s })
	dbNet, passDone, url, cut := c.dbNet, c.passDone, c.url, c.cut
	release() // the first adjustment arrives; the pass goes on to the next lines
	// Each of the two other lines is refused before it is sent: once both
	// are, the pass sends nothing more.
	for range 2 {
		select {
		case <-c.refused:
		case err := <-passDone:
			t.Fatalf("the pass ended before it reached its other lines: %v", err)
		}
	}
	if n := writes.sent.Load(); n != 1 {
		t.Errorf("%d adjustments reached the PSA, want only the one in flight when the lease ran out: the lock's session had "+
			"not answered for %s, so another instance may have taken over and be writing the same lines", n, time.Since(cut).Round(time.Second))
	}

	dbNet.Cut() // the connections fail: the pass ends without waiting query_timeout for each state write
	select {
	case err := <-passDone:
		if err == nil {
			t.Error("the pass cut from the database succeeded")
		}
	case <-time.After(time.Minute):
		t.Fatal("the pass did not end after its connections to the database failed")
	}
	other, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	runs, err := other.Runs(10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Result != state.RunRunning {
			t.Errorf("run %d recorded as %s (%s); want it left running, for the instance that takes over to mark it interrupted", r.ID, r.Result, r.Error)
		}
	}
}

// dtCountWrites is a proxy in front of the simulator that counts the
// adjustment POSTs that reach it, holding the first until release is
// closed.
type dtCountWrites struct {
	sim     *psatest.Server
	arrived chan struct{}
	release chan struct{}
	sent    atomic.Int64
}

func (h *dtCountWrites) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments") {
		select {
		case h.arrived <- struct{}{}:
		default:
		}
		<-h.release
		h.sent.Add(1)
	}
	h.sim.Handler().ServeHTTP(w, r)
}

// dtPassCut is an active instance on PostgreSQL whose pass
// (dtPassCutFromTheDatabase) holds its first adjustment at the PSA while
// the network to the database drops everything, until the lease ran out.
type dtPassCut struct {
	d        *Daemon
	dbNet    *pgtest.Blackhole
	passDone <-chan error
	url      string    // the database's own URL, not through dbNet
	cut      time.Time // when dbNet started dropping everything
	// refused receives one value per line that the pass did not send
	// because the lease had run out (logged "Not updating contract line:
	// this psa-syncd may no longer be the active instance").
	refused <-chan struct{}
}

// dtNoticeLog is a slog handler that sends on notices each record logged
// with the message msg, without waiting (notices is buffered), and drops
// every record.
type dtNoticeLog struct {
	msg     string
	notices chan<- struct{}
}

func (h dtNoticeLog) Enabled(context.Context, slog.Level) bool { return true }

func (h dtNoticeLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.notices <- struct{}{}:
		default:
		}
	}
	return nil
}

func (h dtNoticeLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h dtNoticeLog) WithGroup(string) slog.Handler      { return h }

// dtPassCutFromTheDatabase starts an active instance on PostgreSQL through
// a pgtest.Blackhole, with the Autotask simulator behind front (setSim
// hands it the simulator), and a pass of three lines written one at a
// time. Once front reports the first adjustment arrived and the pass's
// three intents are committed, it freezes the network to the database and
// waits until the instance's lease ran out. release lets the held
// adjustment go; it is called at the test's end too, before front closes.
func dtPassCutFromTheDatabase(t *testing.T, front http.Handler, arrived <-chan struct{}, release func(), setSim func(*psatest.Server)) dtPassCut {
	t.Helper()
	url := haDatabase(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	dbNet := pgtest.NewBlackhole(t, u.Host)
	viaNet := *u
	viaNet.Host = dbNet.Addr()

	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before srv.Close, should the test fail while a request is held
	// The database never answers again: Close tries to record what the
	// pass knew once, not for the whole default shutdown timeout.
	refused := make(chan struct{}, 8)
	logger := slog.New(dtNoticeLog{msg: "Not updating contract line: this psa-syncd may no longer be the active instance", notices: refused})
	e := dtSetup(t, dtOptions{daemonOpts: Options{ShutdownTimeout: time.Millisecond, Logger: logger},
		state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 100ms\n  query_timeout: 8s\npolicies:\n  write_concurrency: 1\n",
			viaNet.String()),
		baseURL: func(s *psatest.Server) string { setSim(s); return srv.URL + "/ATServicesRest/" }})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	passDone := make(chan error, 1)
	go func() {
		_, err := a.SyncOnce(context.WithoutCancel(t.Context()), usage.PassOptions{Trigger: usage.TriggerAPI})
		passDone <- err
	}()
	select {
	case <-arrived: // the first adjustment is on its way
	case err := <-passDone:
		t.Fatalf("the pass ended before writing: %v", err)
	}
	// The intents of the three lines are committed (the pass opens them
	// ahead of its one sender).
	direct, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var open int
		if err := direct.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM intents WHERE state = $1`, state.IntentOpen).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d intents open, want the pass's 3", open)
		}
		time.Sleep(20 * time.Millisecond)
	}

	dbNet.Freeze() // the network to the database drops everything
	cut := time.Now()
	for a.db.CheckFence() == nil {
		if time.Since(cut) > 8*time.Second {
			t.Fatal("the lease did not run out within 8 s of the cut")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return dtPassCut{d: a, dbNet: dbNet, passDone: passDone, url: url, cut: cut, refused: refused}
}

// TestDaemon_awaitActive_persistentRefusalLoggedOnce: a standby whose
// every try to lead is refused for one reason (here a schema a newer
// psa-syncd migrated the shared database to) logged that error every
// state.lock_interval, hundreds of lines while nothing changed. It logs
// it once, then at debug level until the reason changes or a minute
// passes.
func TestDaemon_awaitActive_persistentRefusalLoggedOnce(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	var logs lockedLog
	e := dtSetup(t, dtOptions{
		state:      fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 100ms\n", url),
		daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
	})
	direct, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 'now')`, state.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	// Four tries or more after the first, however slow the machine.
	count := func() (errorsLogged, again int, out string) {
		logs.mu.Lock()
		out = logs.buf.String()
		logs.mu.Unlock()
		return strings.Count(out, `level=ERROR msg="Error trying to become the active instance"`),
			strings.Count(out, `msg="Error trying to become the active instance, as before"`), out
	}
	ctx, cancel := context.WithCancel(t.Context())
	led := make(chan bool, 1)
	go func() { led <- e.d.awaitActive(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for _, again, _ := count(); again < 4 && time.Now().Before(deadline); _, again, _ = count() {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if <-led {
		t.Fatal("awaitActive led on a database of a newer schema")
	}
	if errorsLogged, again, out := count(); errorsLogged != 1 || again < 4 {
		t.Errorf("tries every 100ms: %d error lines and %d debug lines; want the refusal once at error level and the tries after it at debug level:\n%s",
			errorsLogged, again, out)
	}
}

// TestDaemon_awaitActive_lockErrorGauge: a standby whose tries to take
// the leadership lock over fail with an error (here its database
// connections refused; in production the database unreachable from it, or
// a pooler) showed nothing but a log line while the active instance ran:
// psa_sync_leader is 0 on it as on a healthy standby, and it was found
// only once the active instance died. psa_sync_standby_lock_error is 1
// while its tries fail so, and 0 again once it reaches the database and
// finds the lock held by the active instance.
func TestDaemon_awaitActive_lockErrorGauge(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e := dtSetup(t, dtOptions{state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 100ms\n  connect_timeout: 2s\n", url)})
	if err := e.d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	gate := newDTDBGate(t, u.Host)
	viaGate := *u
	viaGate.Host = gate.addr()
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.State.URL = Secret(viaGate.String())
	b, err := New(cfg, e.cfgPath, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	gauge := func() float64 { return testutil.ToFloat64(b.metrics.StandbyLockError) }
	waitFor := func(step string, want float64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); gauge() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: psa_sync_standby_lock_error = %v, want %v", step, gauge(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	led := make(chan bool, 1)
	go func() { led <- b.awaitActive(ctx) }()
	gate.setOpen(false)
	waitFor("the standby's database connections refused", 1)
	if got := testutil.ToFloat64(e.d.metrics.StandbyLockError); got != 0 {
		t.Errorf("the active instance's psa_sync_standby_lock_error = %v, want 0", got)
	}
	gate.setOpen(true)
	waitFor("the standby reaches the database again", 0)
	cancel()
	if <-led {
		t.Error("the standby led while the active instance held the lock")
	}
}

// dtDBGate is a TCP proxy to a PostgreSQL server that can be shut: shut, it
// closes the connections it forwards and every new one at once, as a
// network that refuses the database does.
type dtDBGate struct {
	ln    net.Listener
	mu    sync.Mutex
	shut  bool
	conns []net.Conn
}

func newDTDBGate(t *testing.T, target string) *dtDBGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &dtDBGate{ln: ln}
	t.Cleanup(func() { _ = ln.Close(); g.setOpen(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			shut := g.shut
			g.mu.Unlock()
			if shut {
				_ = c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, s)
			g.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
	return g
}

func (g *dtDBGate) addr() string { return g.ln.Addr().String() }

// setOpen opens or shuts the gate; shutting it closes the connections
// open through it.
func (g *dtDBGate) setOpen(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = !open
	if !open {
		for _, c := range g.conns {
			_ = c.Close()
		}
		g.conns = nil
	}
}

// TestDaemon_standbyForwardGivesUpOnAHungActiveInstance: a standby
// forwarded sync, resolve, ticket passes and sync request lookups with no
// time limit, so an active instance that accepted the connection and never
// answered (hung, or behind a network that drops its packets) held the
// standby's handler, one of its API slots, and the caller for as long as
// the connection stayed open. The standby now gives up after its forward
// timeout with a 504 that says so. A forwarded ticket pass, which the
// active instance answers once it is done, is relayed after the standby's
// ordinary write timeout too (it was cut at 60 s).
func TestDaemon_standbyForwardGivesUpOnAHungActiveInstance(t *testing.T) {
	t.Parallel()
	pgURL := haDatabase(t)
	const token = "s3cret-token"
	// What answers at the active instance's advertised URL: nothing for
	// a sync, a ticket pass report after a while.
	stop := make(chan struct{})
	active := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/tickets" {
			time.Sleep(1500 * time.Millisecond)
			writeJSON(w, http.StatusOK, TicketPassView{Customers: []TicketCustomerView{}, Settled: 7})
			return
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(active.Close)
	t.Cleanup(func() { close(stop) })
	e := dtSetup(t, dtOptions{token: token, state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  advertise_url: %s\n", pgURL, active.URL)})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := dtSecondInstance(t, e, nil)
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError", err)
	}
	b.forwardTimeout = 300 * time.Millisecond
	b.httpTimeouts = httpTimeouts{readHeader: time.Second, read: time.Second, write: time.Second, idle: time.Second}
	srv := b.newHTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// The test's own bound: on main the standby answered never.
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	do := func(path, body string) (int, string, time.Duration) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+ln.Addr().String()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s on the standby: %v", path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data), time.Since(start)
	}
	code, body, took := do("/api/v1/sync", `{"customer":"cust-acme"}`)
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "did not answer within 300ms") || !strings.Contains(body, active.URL) {
		t.Errorf("POST /api/v1/sync on a standby whose active instance never answers = %d %s; want 504 saying the active instance did not answer", code, body)
	}
	if took > 5*time.Second {
		t.Errorf("the standby answered after %s, want about its forward timeout (300ms)", took)
	}
	code, body, _ = do("/api/v1/tickets", "")
	var rep TicketPassView
	if code != http.StatusOK || json.Unmarshal([]byte(body), &rep) != nil || rep.Settled != 7 {
		t.Errorf("POST /api/v1/tickets on the standby, answered by the active instance after the standby's write timeout = %d %q; want its 200 relayed", code, body)
	}
}

// TestDaemon_standbyLookupsDoNotThrottleTheStandby: a standby forwards the
// lookup of a sync request with the client's credentials. While the active
// instance's open API slots are taken it looks at a read's token, and
// counted a wrong one against the standby's address: ten lookups with a
// wrong token through the standby, from anyone, then had the active
// instance refuse (429) every sync the standby forwarded, the operator's
// right token included. The standby now checks the lookup's token itself,
// counting a wrong one against the client, and forwards only the right one.
func TestDaemon_standbyLookupsDoNotThrottleTheStandby(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	a, _, standby := dtActiveAndStandby(t, token)
	// Clients without the token hold the active instance's open slots.
	for range maxConcurrentAPIRequests - tokenAPISlots {
		a.openAPISlots <- struct{}{}
		a.apiSlots <- struct{}{}
	}
	send := func(client *http.Client, method, path, tok, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, standby+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	// Another client than the operator: 127.0.0.2.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	for range maxWrongTokens {
		send(other, http.MethodGet, "/api/v1/runs/q0badc0de-1", "wrong", "")
	}
	if code, body := send(testClient, http.MethodPost, "/api/v1/sync", token, `{"customer":"cust-acme"}`); code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync with the token through the standby, after another client's lookups with a wrong token = %d %s; want the active instance's 202", code, body)
	}
	// The client that sent them is the one held back, on the standby.
	if code, body := send(other, http.MethodPost, "/api/v1/sync", token, `{"customer":"cust-acme"}`); code != http.StatusTooManyRequests {
		t.Errorf("POST /api/v1/sync from the client that sent %d wrong tokens = %d %s; want the standby's 429", maxWrongTokens, code, body)
	}
}

// TestDaemon_standbyForwardsReadersLookup: behind listeners with
// basic_auth_users, a reader (a Grafana data source, an operator's basic
// user whose password is not the API token) polls a sync request through
// a Service that reaches the standby. The standby stripped the reader's
// credentials before forwarding the lookup, and the active instance's
// listener, which lets nothing through without a user, answered 401. The
// active instance does not take a reader's password for a wrong token, so
// the standby forwards it: the reader gets the request, and the active
// instance, even with its open slots taken, goes on taking the standby's
// requests.
func TestDaemon_standbyForwardsReadersLookup(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	a, _, standby := dtActiveAndStandbyBehind(t, token, fmt.Sprintf("basic_auth_users:\n  grafana: %s\n  automation: %s\n",
		bcryptHash(t, "reader-password"), bcryptHash(t, token)))
	send := func(method, path, auth, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, standby+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	automation, reader := basicAuth("automation", token), basicAuth("grafana", "reader-password")
	code, body := send(http.MethodPost, "/api/v1/sync", automation, `{"customer":"cust-acme"}`)
	var ticket SyncTicket
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &ticket) != nil || ticket.ID == "" {
		t.Fatalf("POST /api/v1/sync on the standby as automation = %d %s; want the active instance's 202", code, body)
	}
	if code, body := send(http.MethodGet, "/api/v1/runs/"+ticket.ID, reader, ""); code != http.StatusOK || !strings.Contains(body, `"status": "queued"`) {
		t.Errorf("GET /api/v1/runs/%s on the standby as reader grafana = %d %s; want the active instance's queued request", ticket.ID, code, body)
	}
	// Clients without the token hold the active instance's open slots: it
	// looks at the reader's password, and does not count it.
	for range maxConcurrentAPIRequests - tokenAPISlots {
		a.openAPISlots <- struct{}{}
		a.apiSlots <- struct{}{}
	}
	for range maxWrongTokens {
		send(http.MethodGet, "/api/v1/runs/"+ticket.ID, reader, "")
	}
	if code, body := send(http.MethodPost, "/api/v1/sync", automation, `{"customer":"cust-globex"}`); code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync as automation through the standby, after %d lookups of a reader = %d %s; want the active instance's 202", maxWrongTokens, code, body)
	}
}

// TestDaemon_tokenRotationDoesNotThrottleTheStandby: while the instances
// of a pair hold different API tokens (web.api_token being rotated), each
// request the standby forwards with its token is a wrong token on the
// active instance. It was counted against the standby's address, so after
// ten of them, once both held the new token, the active instance still
// refused everything the standby forwarded (429) for a minute, and every
// "Sync now" of the standby's status page, which the standby sends itself.
// The standby now sends the client's (the browser's) address in
// X-Forwarded-For: with the standby in web.trusted_proxies, the active
// instance counts them against the client that sent them.
func TestDaemon_tokenRotationDoesNotThrottleTheStandby(t *testing.T) {
	t.Parallel()
	a, b, standby := dtActiveAndStandby(t, "old-token")
	path := a.configPath
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The standby dials the active instance from 127.0.0.1.
	trusted := strings.Replace(string(raw), "web:\n", "web:\n  trusted_proxies: [127.0.0.1]\n", 1)
	dtWrite(t, path, trusted)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	// The standby gets the new token first.
	dtWrite(t, path, strings.Replace(trusted, `"old-token"`, `"new-token"`, 1))
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	send := func(client *http.Client) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, standby+"/api/v1/sync", strings.NewReader(`{"customer":"cust-acme"}`))
		req.Header.Set("Authorization", "Bearer new-token")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	// A job at 127.0.0.2 retries its sync while the active instance still
	// holds the old token.
	job := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	for range maxWrongTokens {
		if code, body := send(job); code != http.StatusUnauthorized {
			t.Fatalf("POST /api/v1/sync through the standby during the rotation = %d %s; want the active instance's 401", code, body)
		}
	}
	// An operator on the standby's status page clicks "Sync now" as
	// often; the standby sends it to the active instance's API itself.
	page := func(remoteAddr string) (click func() string) {
		c := newUIClient(t, b)
		c.remoteAddr = remoteAddr
		m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
		if m == nil {
			t.Fatal("no CSRF field on the standby's page")
		}
		post := func(path string, form neturl.Values) string {
			form.Set("csrf", m[1])
			form.Set("next", "/")
			rec := c.do(http.MethodPost, path, form)
			return flash(c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String())
		}
		if got := post("/ui/sign-in", neturl.Values{"token": {"new-token"}}); got != "Signed in." {
			t.Fatalf("sign-in on the standby's page: %q", got)
		}
		return func() string { return post("/ui/sync", neturl.Values{}) }
	}
	click := page("203.0.113.7:50000")
	for range maxWrongTokens {
		if got := click(); !strings.Contains(got, "401") && !strings.Contains(got, "invalid bearer token") {
			t.Fatalf("Sync now on the standby's page during the rotation: %q; want the active instance's refusal", got)
		}
	}
	// The rotation ends.
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, body := send(testClient); code != http.StatusAccepted {
		t.Errorf("POST /api/v1/sync with the new token through the standby, after the rotation = %d %s; want the active instance's 202", code, body)
	}
	if got := page("198.51.100.7:50000")(); !strings.HasPrefix(got, "Sync requested") {
		t.Errorf("Sync now on the standby's page from another browser, after the rotation: %q; want Sync requested", got)
	}
}

// TestDaemon_selfStoreRefusedLoggedOnce: with export_url: self the state
// database is the export's store. PostgreSQL refusing psa-syncd's role the
// export table (permission denied: its "403") keeps the export in use, is
// logged once however many polls fail, and sets the reload metric and the
// status page's error, as an S3 store's refusal does; the store answering
// again is logged and clears both. Before, the watch left the error to the
// next poll without a word: nothing said that a newer export another
// psa-syncd stored could not be seen.
func TestDaemon_selfStoreRefusedLoggedOnce(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	exec := func(q string) {
		t.Helper()
		if _, err := admin.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	exec(`CREATE ROLE psa_syncd LOGIN`)
	exec(`ALTER DATABASE ` + strings.TrimPrefix(u.Path, "/") + ` OWNER TO psa_syncd`)
	exec(`ALTER SCHEMA public OWNER TO psa_syncd`)
	u.User = neturl.User("psa_syncd")
	var logs strings.Builder
	e := dtSetup(t, dtOptions{exportURL: ExportSelf, noExport: true,
		state:      fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", u.String()),
		daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	if err := e.d.Reload(); err == nil {
		t.Fatal("Reload without a stored export succeeded")
	}
	doc := e.doc.Clone()
	doc.PSA.Instance = ""
	if _, _, err := e.d.putExport(e.encode(t, doc), "", true, "test"); err != nil {
		t.Fatal(err)
	}
	poll := func() error {
		e.d.reloadMu.Lock()
		defer e.d.reloadMu.Unlock()
		return e.d.reloadNewerSelfExportLocked(e.d.cfg.Load())
	}
	gauge := func() float64 { return testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful) }
	logged := func() int { return strings.Count(logs.String(), "Error reloading mapping export") }
	if err := poll(); err != nil || gauge() != 1 {
		t.Fatalf("a poll of the stored export: %v, successful = %v; want nil, 1", err, gauge())
	}

	exec(`REVOKE SELECT ON export_versions FROM psa_syncd`)
	for range 3 {
		if err := poll(); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("a poll of the export table refused to the role = %v, want permission denied", err)
		}
	}
	if got := gauge(); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v while PostgreSQL refuses the export table, want 0", got)
	}
	if f := e.d.exportErr.Load(); f == nil || !strings.Contains(f.err.Error(), "permission denied") {
		t.Errorf("the status's export error = %+v, want the refusal", f)
	}
	if n := logged(); n != 1 {
		t.Errorf("3 polls refused alike logged %d errors, want 1:\n%s", n, logs.String())
	}
	if got := e.d.Export().Revision; got != doc.Revision {
		t.Errorf("export in use has revision %d, want %d", got, doc.Revision)
	}

	exec(`GRANT SELECT ON export_versions TO psa_syncd`)
	if err := poll(); err != nil {
		t.Fatalf("a poll once the role may read again: %v", err)
	}
	if got := gauge(); got != 1 || e.d.exportErr.Load() != nil || !strings.Contains(logs.String(), "Mapping export store reachable again") {
		t.Errorf("after PostgreSQL answers again: successful = %v, status error %v; want 1, none and the recovery logged:\n%s", got, e.d.exportErr.Load(), logs.String())
	}
}

// TestDaemon_standbyProbeWithoutCredentialsNamesNoInstance: with
// basic_auth_users, the probes are served without credentials (see
// webConfigGuardHandler); a standby's /-/ready then says it is a ready
// standby without naming the active instance (its host and advertise URL),
// which its answer to a request the listener authenticated still names.
func TestDaemon_standbyProbeWithoutCredentialsNamesNoInstance(t *testing.T) {
	t.Parallel()
	url := haDatabase(t)
	e := dtSetup(t, dtOptions{token: "s3cret-token", state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  advertise_url: http://active-pod.example:9810\n", url)})
	if err := e.d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, e.cfgPath, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("BecomeActive of the second instance = %v, want a StandbyError", err)
	}
	full := dtServe(t, b, http.MethodGet, "/-/ready", "", "")
	if !strings.Contains(full.Body.String(), "active-pod.example") {
		t.Errorf("GET /-/ready on the standby = %d %q; want it to name the active instance", full.Code, full.Body.String())
	}
	rec := httptest.NewRecorder()
	b.probeHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, "standby") || strings.Contains(body, "active-pod.example") || strings.Contains(body, "active instance") {
		t.Errorf("GET /-/ready on the standby without credentials = %d %q; want 200 saying standby, naming no instance", rec.Code, body)
	}
}
