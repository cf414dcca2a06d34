package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// lockedLog is a log destination that goroutines may share, and that a
// test may search.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *lockedLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

// scheduledTickets returns the sync requests the scheduler queued, oldest
// first.
func scheduledTickets(d *Daemon) []SyncTicket {
	d.queue.mu.Lock()
	defer d.queue.mu.Unlock()
	var out []SyncTicket
	for _, id := range d.queue.order {
		if t := d.queue.tickets[id]; t.Trigger == usage.TriggerSchedule {
			out = append(out, *t)
		}
	}
	return out
}

// waitScheduleInterval waits until the scheduler has computed the next run
// with a schedule of the given interval: it orders the test after the
// scheduler's handling of what came before the reload that set it.
func waitScheduleInterval(t *testing.T, d *Daemon, interval time.Duration) {
	t.Helper()
	waitFor(t, "the scheduler to use the new schedule", func() bool {
		return testutil.ToFloat64(d.metrics.ScheduleInterval) == interval.Seconds()
	})
}

// A scheduled pass refused before it records a run (here Kaseya BMS's
// refusal of a state database without a ledger) did not run: the next-run
// metric stays at its due time, so that PsaSyncScheduledRunMissed fires,
// and the last-run metrics say it failed, so that PsaSyncFailing does. It
// is not queued again before the next scheduled time. Once a pass over all
// customers has run after it, the next run moves on.
func TestDaemon_refusedScheduledPassStaysDue(t *testing.T) {
	t.Parallel()
	now := time.Now()
	sim := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS))
	k := sim.KaseyaBMS()
	svc := k.AddService("Sophos Intercept X Advanced", 4.5)
	account := k.AddAccount("Acme")
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: account, Name: "Acme Managed Services"})
	dir := t.TempDir()
	doc := export.New(psa.SystemKaseyaBMS, strings.TrimPrefix(sim.URL(), "http://"))
	doc.Revision = 1
	doc.Integration = &export.Integration{Enabled: true, Schedule: "every 1h", Timezone: "UTC"}
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: fmt.Sprint(svc), SyncEnabled: true})
	doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-acme", CompanyID: fmt.Sprint(account), ContractID: fmt.Sprint(contract), UsageSync: true})
	writeDoc := func(doc *export.Document) {
		data, err := doc.Encode()
		if err != nil {
			t.Fatal(err)
		}
		dtWrite(t, dir+"/mappings.json", string(data))
	}
	writeDoc(doc)
	dtWrite(t, dir+"/usage.csv", "customer_id,product,quantity\ncust-acme,CIXA-MSP,25\n")
	user, password, tenant := k.Credentials()
	dtWrite(t, dir+"/psa-syncd.yml", fmt.Sprintf("export_path: mappings.json\nstate_dir: state\npsa:\n  system: kaseya_bms\n  kaseya_bms:\n"+
		"    base_url: %q\n    username: %q\n    password: %q\n    tenant: %q\nsource:\n  type: file\n  file:\n    path: usage.csv\n",
		sim.KaseyaBMSBaseURL(), user, password, tenant))
	cfg, err := Load(dir+"/psa-syncd.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, dir+"/psa-syncd.yml", Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	// The last full pass started 3h ago (a run is no ledger): the pass due
	// 2h ago is queued at once.
	started := now.Add(-3 * time.Hour)
	if _, err := d.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: started, Result: "success"}); err != nil {
		t.Fatal(err)
	}
	due := started.Add(time.Hour)

	ctx, cancel := context.WithCancel(t.Context())
	var loops sync.WaitGroup
	defer func() { cancel(); loops.Wait() }()
	loops.Add(2)
	go func() { defer loops.Done(); d.scheduleLoop(ctx) }()
	go func() { defer loops.Done(); d.workLoop(ctx, ctx) }()

	waitFor(t, "the scheduled pass to be refused", func() bool {
		tks := scheduledTickets(d)
		return len(tks) > 0 && tks[0].Status == "failed"
	})
	if tk := scheduledTickets(d)[0]; tk.RunID != 0 || !strings.Contains(tk.Error, "holds no ledger") {
		t.Fatalf("scheduled pass = %+v, want it refused for want of a ledger, with no run", tk)
	}
	m := d.metrics.Usage
	for result, want := range map[string]float64{"success": 0, "partial": 0, "failure": 1} {
		if got := testutil.ToFloat64(m.LastRunResult.WithLabelValues(result)); got != want {
			t.Errorf("psa_sync_last_run_result{result=%q} after the refused pass = %v, want %v", result, got, want)
		}
	}
	if got, want := testutil.ToFloat64(m.LastRunTimestamp), unixSeconds(now); got != want {
		t.Errorf("psa_sync_last_run_timestamp_seconds after the refused pass = %v, want %v", got, want)
	}

	// A new schedule orders the test after the scheduler has seen the
	// refusal: the pass is still due, and was queued once.
	doc.Integration.Schedule = "every 2h"
	writeDoc(doc)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	waitScheduleInterval(t, d, 2*time.Hour)
	if got := d.NextRun(); !got.Equal(due) {
		t.Errorf("NextRun after the refused pass = %v, want it still due at %v", got, due)
	}
	if got := testutil.ToFloat64(d.metrics.NextRunTimestamp); got != unixSeconds(due) {
		t.Errorf("psa_sync_next_run_timestamp_seconds = %v, want the due time %v", got, unixSeconds(due))
	}
	if n := len(scheduledTickets(d)); n != 1 {
		t.Errorf("%d scheduled passes queued, want 1: a refused pass waits for the next scheduled time", n)
	}

	// The operator lets the first pass write (as -state.allow-empty does)
	// and runs one: it records a run, and the next run moves on. (The
	// queue's lock orders this write before the pass reads it.)
	d.allowEmptyState = true
	tk := d.RequestSync("", usage.TriggerManual)
	got, err := d.WaitTicket(t.Context(), tk.ID)
	if err != nil || got.Status != "done" || got.RunID == 0 {
		t.Fatalf("manual pass = %+v, %v; want it done", got, err)
	}
	waitFor(t, "the next run to move on after a pass ran", func() bool { return d.NextRun().After(now) })
	if got := testutil.ToFloat64(m.LastRunResult.WithLabelValues("success")); got != 1 {
		t.Errorf("psa_sync_last_run_result{result=\"success\"} after the manual pass = %v, want 1", got)
	}
}

// A scheduled pass skipped because no valid mapping export is loaded (a
// restart with a missing or invalid export) did not run: the next-run
// metric stays at its due time, so that PsaSyncScheduledRunMissed fires,
// and psa_sync_integration_enabled is absent rather than 0, so that it
// silences no alert. Once an export loads, the skipped pass runs at once
// and the next run moves on.
func TestDaemon_skippedScheduledPassStaysDue(t *testing.T) {
	t.Parallel()
	now := time.Now()
	logs := &lockedLog{}
	e := dtSetup(t, dtOptions{noExport: true, daemonOpts: Options{Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(logs, nil))}})
	cfgText := string(dtMust(os.ReadFile(e.cfgPath)))
	dtWrite(t, e.cfgPath, cfgText+"schedule: every 1h\n")
	if err := e.d.Reload(); err == nil {
		t.Fatal("Reload without an export succeeded")
	}
	if body := dtServe(t, e.d, http.MethodGet, "/metrics", "", "").Body.String(); strings.Contains(body, "psa_sync_integration_enabled{") {
		t.Errorf("/metrics reports psa_sync_integration_enabled before any export has loaded:\n%s", body)
	}
	started := now.Add(-3 * time.Hour)
	if _, err := e.d.State().BeginRun(state.Run{Trigger: usage.TriggerSchedule, Started: started, Result: "success"}); err != nil {
		t.Fatal(err)
	}
	due := started.Add(time.Hour)

	ctx, cancel := context.WithCancel(t.Context())
	var loops sync.WaitGroup
	defer func() { cancel(); loops.Wait() }()
	loops.Add(2)
	go func() { defer loops.Done(); e.d.scheduleLoop(ctx) }()
	go func() { defer loops.Done(); e.d.workLoop(ctx, ctx) }()

	waitFor(t, "the scheduled pass to be skipped", func() bool { return logs.contains("Skipping scheduled pass") })
	dtWrite(t, e.cfgPath, cfgText+"schedule: every 2h\n")
	_ = e.d.Reload() // the export is still missing
	waitScheduleInterval(t, e.d, 2*time.Hour)
	if got := e.d.NextRun(); !got.Equal(due) {
		t.Errorf("NextRun after the skipped pass = %v, want it still due at %v", got, due)
	}
	if n := len(scheduledTickets(e.d)); n != 0 {
		t.Errorf("%d scheduled passes queued without an export, want none", n)
	}

	doc := e.doc.Clone()
	doc.Integration.Schedule = "every 2h"
	e.writeExport(t, doc)
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the skipped pass to run", func() bool {
		tks := scheduledTickets(e.d)
		return len(tks) == 1 && tks[0].Status == "done"
	})
	if tk := scheduledTickets(e.d)[0]; tk.RunID == 0 || tk.Result != state.RunSuccess {
		t.Errorf("the skipped pass, run once the export loaded = %+v, want a successful run", tk)
	}
	waitFor(t, "the next run to move on", func() bool { return e.d.NextRun().After(now) })
	if body := dtServe(t, e.d, http.MethodGet, "/metrics", "", "").Body.String(); !strings.Contains(body, `psa_sync_integration_enabled{system="autotask"} 1`) {
		t.Errorf("/metrics lacks psa_sync_integration_enabled 1 once the export loaded:\n%s", body)
	}
}

// TestDaemon_scheduleWarnsOfAnOffsetZone: the provider warns at plan time of
// an "Etc/GMT+N" zone in the export, but psa-syncd's own timezone key is
// read only by psa-syncd: the schedule loop warns of its inverted sign, once,
// and not for a place's zone.
func TestDaemon_scheduleWarnsOfAnOffsetZone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		exportZone string
		want       bool
	}{
		{"", true},             // the config file's Etc/GMT+5 is in force
		{"Europe/Rome", false}, // the export's zone wins over it
	} {
		var logs syncBuffer
		e := dtSetup(t, dtOptions{
			state:      "timezone: Etc/GMT+5\n",
			daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		})
		doc := e.doc.Clone()
		doc.Integration.Timezone = tc.exportZone
		e.writeExport(t, doc)
		if err := e.d.Reload(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); e.d.scheduleLoop(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), "Next scheduled pass") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		out := logs.String()
		if !strings.Contains(out, "Next scheduled pass") {
			t.Fatalf("export zone %q: the schedule loop logged no next pass:\n%s", tc.exportZone, out)
		}
		warned := strings.Contains(out, "opposite sign") && strings.Contains(out, "UTC-05:00")
		if warned != tc.want {
			t.Errorf("export zone %q: warned of Etc/GMT+5's sign = %t, want %t:\n%s", tc.exportZone, warned, tc.want, out)
		}
		if n := strings.Count(out, "The time zone in force"); n > 1 {
			t.Errorf("export zone %q: warned %d times, want once", tc.exportZone, n)
		}
	}
}
