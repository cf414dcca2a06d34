package usage

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

var (
	periodNov = source.Period{Year: 2026, Month: time.November}
	periodDec = source.Period{Year: 2026, Month: time.December}
	// periodMonthEnd is the month-end pass of November that fails;
	// periodNextDay the morning after, when the operator runs it again.
	periodMonthEnd = time.Date(2026, time.November, 30, 20, 0, 0, 0, time.UTC)
	periodNextDay  = time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
)

// periodUsage writes a usage file with a period column: November's count
// of Acme's Intercept X seats, 12, and December's, 15.
func periodUsage(t *testing.T, path string) {
	t.Helper()
	content := "customer_id,customer_name,product,quantity,period\n" +
		"cust-a,Acme,CIXA-MSP,12,2026-11\n" +
		"cust-a,Acme,CIXA-MSP,15,2026-12\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestEngine_Sync_periodRerunsTheEndedMonth: the month-end pass of 30
// November fails on Autotask (the PSA refuses the adjustment); on 1
// December a plain pass would sync December, while a pass for 2026-11
// writes November's count dated 1 November (period_start), and records the
// period in its run and plan. A plain pass then writes December's, dated 1
// December, and November keeps its count.
func TestEngine_Sync_periodRerunsTheEndedMonth(t *testing.T) {
	t.Parallel()
	var clock atomic.Pointer[time.Time]
	clock.Store(&periodMonthEnd)
	now := func() time.Time { return *clock.Load() }
	h := newETHarness(t, psatest.WithClock(now))
	h.now = now
	h.doc.CustomerMappings = h.doc.CustomerMappings[:1] // Acme only
	h.at.SetUnits(h.contractA, h.svcIntercept, 10, etPeriodDay)
	periodUsage(t, h.usage)

	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Status: http.StatusInternalServerError})
	res := h.sync(PassOptions{Trigger: TriggerSchedule})
	if res.Run.Result == state.RunSuccess || res.Run.Period != "2026-11" {
		t.Fatalf("month-end pass: result %s, period %s; want a failure for 2026-11", res.Run.Result, res.Run.Period)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 10)
	h.sim.ClearFaults()

	clock.Store(&periodNextDay)
	plain := h.plan(PassOptions{DryRun: true})
	if plain.Period != periodDec {
		t.Errorf("plan without a period on 1 December syncs %s, want 2026-12", plain.Period)
	}
	p := h.plan(PassOptions{DryRun: true, Period: periodNov})
	if c := etFindChange(p, "cust-a", h.svcIntercept); p.Period != periodNov || !p.EffectiveDate.Equal(etPeriodDay) ||
		c == nil || c.Current != 10 || c.Desired != 12 || c.Action != ActionUpdate {
		t.Errorf("plan for 2026-11: period %s, effective %s, change %+v; want 2026-11, 2026-11-01 and 10 -> 12",
			p.Period, p.EffectiveDate.Format(time.DateOnly), c)
	}

	res = h.sync(PassOptions{Trigger: TriggerCLI, Period: periodNov})
	if res.Run.Result != state.RunSuccess || res.Run.Period != "2026-11" || res.Plan.Period != periodNov {
		t.Errorf("pass for 2026-11: result %s, run period %s, plan period %s; want success for 2026-11",
			res.Run.Result, res.Run.Period, res.Plan.Period)
	}
	stored, _, err := h.db.Run(res.Run.ID)
	if err != nil || stored.Period != "2026-11" {
		t.Errorf("stored run = %+v, %v; want period 2026-11", stored, err)
	}
	if n, _ := h.at.Units(h.contractA, h.svcIntercept, time.Date(2026, time.November, 15, 0, 0, 0, 0, time.UTC)); n != 12 {
		t.Errorf("November units = %d, want 12", n)
	}
	le, ok, err := h.db.LastSet(etID(h.contractA), etID(h.svcIntercept))
	if err != nil || !ok || le.After != 12 || !le.EffectiveDate.Equal(etPeriodDay) || le.RunID != res.Run.ID {
		t.Errorf("ledger = %+v, %v, %v; want 10 -> 12 dated 2026-11-01 by run %d", le, ok, err, res.Run.ID)
	}

	res = h.sync(PassOptions{Trigger: TriggerCLI})
	if res.Run.Result != state.RunSuccess || res.Run.Period != "2026-12" {
		t.Errorf("plain pass on 1 December: result %s, period %s; want success for 2026-12", res.Run.Result, res.Run.Period)
	}
	dec1 := periodDec.Start(time.UTC)
	if n, _ := h.at.Units(h.contractA, h.svcIntercept, dec1); n != 15 {
		t.Errorf("December units = %d, want 15", n)
	}
	if n, _ := h.at.Units(h.contractA, h.svcIntercept, time.Date(2026, time.November, 30, 0, 0, 0, 0, time.UTC)); n != 12 {
		t.Errorf("November units after December's pass = %d, want 12", n)
	}
}

// TestEngine_Sync_periodEffectiveToday: with effective_date: today, the
// pass for the month that ended dates its changes on that month's last day,
// as its last pass would have.
func TestEngine_Sync_periodEffectiveToday(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.EffectiveDate = EffectiveToday
	h.now = func() time.Time { return periodNextDay }
	periodUsage(t, h.usage)
	p := h.plan(PassOptions{DryRun: true, Period: periodNov})
	if want := time.Date(2026, time.November, 30, 0, 0, 0, 0, time.UTC); p.Period != periodNov || !p.EffectiveDate.Equal(want) {
		t.Errorf("plan for 2026-11 with effective_date: today: period %s, effective %s; want 2026-11 and 2026-11-30",
			p.Period, p.EffectiveDate.Format(time.DateOnly))
	}
}

// TestEngine_Sync_periodRefused: a period older than the month before the
// one a pass syncs now, or after it, is refused with an error that says
// which periods may be synced, before any run is recorded; with
// usage_period: previous the allowed periods are a month earlier.
func TestEngine_Sync_periodRefused(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.now = func() time.Time { return periodNextDay }
	periodUsage(t, h.usage)
	for _, p := range []source.Period{{Year: 2026, Month: time.October}, {Year: 2027, Month: time.January}} {
		_, err := h.engine().Sync(t.Context(), h.doc, PassOptions{Period: p})
		if !errors.Is(err, ErrPeriodRefused) || !strings.Contains(err.Error(), "only the period it syncs now (2026-12) or the one before it (2026-11)") {
			t.Errorf("Sync for %s: err = %v; want a refusal naming 2026-12 and 2026-11", p, err)
		}
		if _, err := h.engine().Plan(t.Context(), h.doc, PassOptions{Period: p}); !errors.Is(err, ErrPeriodRefused) {
			t.Errorf("Plan for %s: err = %v; want a refusal", p, err)
		}
	}
	if runs, err := h.db.Runs(10); err != nil || len(runs) != 0 {
		t.Errorf("runs = %+v, %v; want none recorded", runs, err)
	}
	if h.adjustmentPosts() != 0 {
		t.Error("a refused pass posted adjustments")
	}

	h.pol.UsagePeriod = UsagePeriodPrevious
	if _, err := h.engine().Plan(t.Context(), h.doc, PassOptions{Period: periodNov.Prev()}); err != nil {
		t.Errorf("usage_period: previous, plan for 2026-10 on 1 December: %v; want it allowed", err)
	}
	if _, err := h.engine().Plan(t.Context(), h.doc, PassOptions{Period: periodDec}); !errors.Is(err, ErrPeriodRefused) {
		t.Errorf("usage_period: previous, plan for 2026-12 on 1 December: err = %v; want a refusal", err)
	}
}

// TestEngine_Sync_periodConnectWiseUndated: on ConnectWise PSA an addition
// holds one undated quantity, so a pass that writes the month that ended is
// refused with an error that says why and what to do; its plan and dry run
// are computed (the quantities to set by hand) and the plan says that a
// pass would be refused. The current period is synced as usual.
func TestEngine_Sync_periodConnectWiseUndated(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	periodUsage(t, h.usage)
	e := h.engineAt(periodNextDay, nil)

	_, err := e.Sync(t.Context(), h.doc, PassOptions{Period: periodNov})
	if !errors.Is(err, ErrPeriodRefused) || !strings.Contains(err.Error(), "ConnectWise PSA keeps one quantity per agreement addition") ||
		!strings.Contains(err.Error(), "plan -period 2026-11") {
		t.Errorf("ConnectWise pass for 2026-11: err = %v; want a refusal that explains the undated quantity", err)
	}
	if h.writes() != 0 {
		t.Error("the refused pass wrote to ConnectWise")
	}
	p, err := e.Plan(t.Context(), h.doc, PassOptions{Period: periodNov})
	if err != nil {
		t.Fatal(err)
	}
	if c := sysFindChange(p, h.svcIntercept); p.Period != periodNov || c == nil || c.Desired != 12 ||
		!strings.Contains(p.WritesHeld, "ConnectWise PSA keeps one quantity") {
		t.Errorf("ConnectWise plan for 2026-11: period %s, change %+v, writes held %q; want 12 for 2026-11 and the refusal",
			p.Period, c, p.WritesHeld)
	}
	res, err := e.Sync(t.Context(), h.doc, PassOptions{DryRun: true, Period: periodNov})
	if err != nil || res.Run.Period != "2026-11" {
		t.Errorf("ConnectWise dry run for 2026-11: %v; want it computed", err)
	}
	res, err = e.Sync(t.Context(), h.doc, PassOptions{Period: periodDec})
	if err != nil || res.Run.Result != state.RunSuccess || res.Run.Period != "2026-12" {
		t.Errorf("ConnectWise pass for 2026-12 (the current period): %+v, %v; want success", res, err)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 15)
}

// TestEngine_Sync_caughtUpConnectWiseEndedMonth: psa-syncd was down at
// November's month-end pass (30 November 20:00) and catches it up on 1
// December (PassOptions.At): on ConnectWise PSA it must not write
// November's count to the undated addition, which sync -period 2026-11
// refuses for the same reason. Each line it would write is skipped with
// that reason, the customer's status says what to do, the run is partial
// for 2026-11, so psa_sync_ended_period_last_run_result says partial, and
// a dry run's plan says why a pass that writes would not. The next pass,
// of December, writes December's count.
func TestEngine_Sync_caughtUpConnectWiseEndedMonth(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcIntercept), Quantity: 10})
	h.doc.CustomerMappings = h.doc.CustomerMappings[:1]
	periodUsage(t, h.usage)
	e := h.engineAt(periodNextDay, nil)

	dry, err := e.Sync(t.Context(), h.doc, PassOptions{Trigger: TriggerSchedule, At: periodMonthEnd, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := sysFindChange(dry.Plan, h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Desired != 12 ||
		!strings.Contains(dry.Plan.WritesHeld, "ConnectWise PSA keeps one quantity per agreement addition") {
		t.Errorf("dry run of the caught-up pass: change %+v, writes held %q; want the update to 12 and why a pass that writes would not",
			c, dry.Plan.WritesHeld)
	}

	res, err := e.Sync(t.Context(), h.doc, PassOptions{Trigger: TriggerSchedule, At: periodMonthEnd})
	if err != nil {
		t.Fatal(err)
	}
	if h.writes() != 0 {
		t.Errorf("the caught-up pass of November wrote %d times to ConnectWise; want none", h.writes())
	}
	h.wantUnits(h.contractA, h.svcIntercept, 10)
	if res.Run.Period != "2026-11" || res.Run.Result != state.RunPartial || !strings.Contains(res.Run.Error, "ConnectWise PSA's undated quantities are set by hand") {
		t.Errorf("caught-up pass: period %s, result %s, error %q; want a partial pass of 2026-11 that says why", res.Run.Period, res.Run.Result, res.Run.Error)
	}
	c := sysFindChange(res.Plan, h.svcIntercept)
	if c == nil || c.Action != ActionSkipped || c.Desired != 12 || !strings.Contains(c.Reason, "not written: ConnectWise PSA keeps one quantity per agreement addition") ||
		!strings.Contains(c.Reason, "not 2026-11's") {
		t.Errorf("caught-up pass: change %+v; want 10 -> 12 skipped with the reason sync -period gives", c)
	}
	cs := h.status("cust-a")
	if cs.Result != state.CustomerSkipped || !strings.Contains(cs.Error, "1 lines not written: ConnectWise PSA keeps one quantity") ||
		!strings.Contains(cs.Hint, "plan -period 2026-11") || !strings.Contains(cs.Hint, "set-by-hand -period 2026-11") {
		t.Errorf("Acme's status: %s, %q, hint %q; want skipped, saying why and what to do", cs.Result, cs.Error, cs.Hint)
	}
	_, refused := e.Sync(t.Context(), h.doc, PassOptions{Period: periodNov})
	if refused == nil || !strings.Contains(refused.Error(), undatedSkipReason(periodNov)) || !strings.Contains(refused.Error(), undatedHint(periodNov)) {
		t.Errorf("sync -period 2026-11: %v; want the refusal with the caught-up pass's reason and hint", refused)
	}
	for _, r := range RunResults {
		want := 0.0
		if r == state.RunPartial {
			want = 1
		}
		if got := testutil.ToFloat64(h.m.EndedPeriodLastRunResult[r]); got != want {
			t.Errorf("ended_period_last_run_result{result=%q} = %v, want %v", r, got, want)
		}
	}

	dec, err := e.Sync(t.Context(), h.doc, PassOptions{Trigger: TriggerSchedule})
	if err != nil || dec.Run.Result != state.RunSuccess || dec.Run.Period != "2026-12" {
		t.Fatalf("December's pass: %+v, %v; want success for 2026-12", dec.Run, err)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 15)
}

// TestEngine_RecordSetByHand: on ConnectWise PSA November's quantities
// can only be set by hand; psa-syncd set-by-hand records that, as a run of
// 2026-11 with the operator's note, and psa_sync_ended_period_last_run_result
// turns success (also when restored at start-up), without moving the
// last-run gauges or runs_total. Bad notes, a month that has not ended, an
// older one, and a month with nothing to record are refused.
func TestEngine_RecordSetByHand(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: mustParse(t, h.contractA), ProductID: mustParse(t, h.svcIntercept), Quantity: 10})
	h.doc.CustomerMappings = h.doc.CustomerMappings[:1]
	periodUsage(t, h.usage)
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Pointer[time.Time]
	clock.Store(&periodNextDay)
	engine := func() *Engine {
		return NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
			Location: time.UTC, Now: func() time.Time { return *clock.Load() }, Failing: &h.failing})
	}
	e := engine()
	if _, err := e.RecordSetByHand(periodNov, "jane: set by hand"); !errors.Is(err, ErrNothingSetByHand) || !strings.Contains(err.Error(), "no pass of 2026-11") {
		t.Errorf("before any pass of November: %v; want nothing to record", err)
	}
	caught, err := e.Sync(t.Context(), h.doc, PassOptions{Trigger: TriggerSchedule, At: periodMonthEnd})
	if err != nil || caught.Run.Result != state.RunPartial {
		t.Fatalf("caught-up pass of November: %+v, %v; want partial", caught, err)
	}
	dec, err := e.Sync(t.Context(), h.doc, PassOptions{Trigger: TriggerSchedule})
	if err != nil || dec.Run.Result != state.RunSuccess {
		t.Fatalf("December's pass: %+v, %v; want success", dec, err)
	}
	runsBefore := testutil.ToFloat64(h.m.RunsTotal.WithLabelValues(state.RunSuccess))
	for _, bad := range []struct {
		period source.Period
		note   string
		want   string
	}{
		{periodNov, "  ", "a note is required"},
		{periodNov, "jane\nset", "one line"},
		{periodNov, strings.Repeat("x", 1001), "more than the 1000"},
		{periodDec, "jane", "only the month that has ended (2026-11)"},
		{source.Period{Year: 2026, Month: time.October}, "jane", "only the month that has ended (2026-11)"},
	} {
		if _, err := e.RecordSetByHand(bad.period, bad.note); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("RecordSetByHand(%s, %.20q) = %v; want an error containing %q", bad.period, bad.note, err, bad.want)
		}
	}
	ended := func(when, want string) {
		t.Helper()
		for _, r := range RunResults {
			w := 0.0
			if r == want {
				w = 1
			}
			if got := testutil.ToFloat64(h.m.EndedPeriodLastRunResult[r]); got != w {
				t.Errorf("%s: ended_period_last_run_result{result=%q} = %v, want %v", when, r, got, w)
			}
		}
	}
	ended("before the record", state.RunPartial)

	writes := h.writes()
	run, err := e.RecordSetByHand(periodNov, " jane: additions set in ConnectWise before invoicing ")
	if err != nil {
		t.Fatal(err)
	}
	if run.Trigger != TriggerByHand || run.Result != state.RunSuccess || run.Period != "2026-11" || run.Customer != "" || run.DryRun ||
		run.Note != "jane: additions set in ConnectWise before invoicing" || !run.Started.Equal(periodNextDay) || h.writes() != writes {
		t.Errorf("record: %+v (%d writes); want a by_hand success of 2026-11 with the note, writing nothing", run, h.writes()-writes)
	}
	stored, ok, err := h.db.Run(run.ID)
	if err != nil || !ok || stored.Note != run.Note {
		t.Errorf("stored record: %+v, %v, %v", stored, ok, err)
	}
	ended("after the record", state.RunSuccess)
	if got := testutil.ToFloat64(h.m.LastRunResult.WithLabelValues(state.RunSuccess)); got != 1 {
		t.Errorf("last_run_result{success} = %v; want 1, December's pass", got)
	}
	if got := testutil.ToFloat64(h.m.RunsTotal.WithLabelValues(state.RunSuccess)); got != runsBefore {
		t.Errorf("runs_total{success} = %v after the record, want %v: it is not a pass", got, runsBefore)
	}
	if !e.RanEarlierPeriod(run) {
		t.Error("RanEarlierPeriod(record) = false; the schedule would take it for its pass")
	}
	if _, err := e.RecordSetByHand(periodNov, "bob"); !errors.Is(err, ErrNothingSetByHand) || !strings.Contains(err.Error(), "was recorded as set by hand") ||
		!strings.Contains(err.Error(), "jane: additions") {
		t.Errorf("a second record: %v; want it refused, naming the first", err)
	}
	h.reg = prometheus.NewRegistry()
	h.m = NewMetrics(h.reg, psa.SystemConnectWise)
	if err := engine().RestoreMetrics(nil); err != nil {
		t.Fatal(err)
	}
	ended("restored at start-up", state.RunSuccess)
}

// TestEngine_Sync_periodRerunLeavesTheLastRunGauges: the first pass of
// December fails; a re-run of November that succeeds must not make the
// last-run gauges say that the last pass succeeded (PsaSyncFailing would
// resolve while December's pass is failing), neither when it finishes nor
// when they are restored at start-up. Its result is still counted in
// runs_total.
func TestEngine_Sync_periodRerunLeavesTheLastRunGauges(t *testing.T) {
	t.Parallel()
	var clock atomic.Pointer[time.Time]
	clock.Store(&periodNextDay)
	now := func() time.Time { return *clock.Load() }
	h := newETHarness(t, psatest.WithClock(now))
	h.now = now
	h.doc.CustomerMappings = h.doc.CustomerMappings[:1]
	h.at.SetUnits(h.contractA, h.svcIntercept, 10, etPeriodDay)
	periodUsage(t, h.usage)

	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Status: http.StatusInternalServerError})
	failed := h.sync(PassOptions{Trigger: TriggerSchedule})
	if failed.Run.Result == state.RunSuccess || failed.Run.Period != "2026-12" {
		t.Fatalf("December's pass: result %s, period %s; want a failure for 2026-12", failed.Run.Result, failed.Run.Period)
	}
	h.sim.ClearFaults()
	later := periodNextDay.Add(time.Hour)
	clock.Store(&later)
	rerun := h.sync(PassOptions{Trigger: TriggerCLI, Period: periodNov})
	if rerun.Run.Result != state.RunSuccess || rerun.Run.Period != "2026-11" {
		t.Fatalf("re-run of November: result %s, period %s; want success for 2026-11", rerun.Run.Result, rerun.Run.Period)
	}
	if !h.engine().RanEarlierPeriod(rerun.Run) || h.engine().RanEarlierPeriod(failed.Run) {
		t.Errorf("RanEarlierPeriod: re-run %t, December's pass %t; want true, false",
			h.engine().RanEarlierPeriod(rerun.Run), h.engine().RanEarlierPeriod(failed.Run))
	}
	check := func(when string, m *Metrics) {
		t.Helper()
		if got := testutil.ToFloat64(m.LastRunResult.WithLabelValues(failed.Run.Result)); got != 1 {
			t.Errorf("%s: last_run_result{result=%q} = %v, want 1 (December's pass)", when, failed.Run.Result, got)
		}
		if got := testutil.ToFloat64(m.LastRunResult.WithLabelValues(state.RunSuccess)); got != 0 {
			t.Errorf("%s: last_run_result{result=\"success\"} = %v, want 0", when, got)
		}
		if got, want := testutil.ToFloat64(m.LastRunTimestamp), float64(failed.Run.Finished.UnixNano())/1e9; got != want {
			t.Errorf("%s: last_run_timestamp_seconds = %v, want December's pass's end %v", when, got, want)
		}
		if got := testutil.ToFloat64(m.LastSuccessTimestamp); got != 0 {
			t.Errorf("%s: last_success_timestamp_seconds = %v, want 0 (no pass of the schedule's period succeeded)", when, got)
		}
	}
	check("after the re-run", h.m)
	if got := testutil.ToFloat64(h.m.RunsTotal.WithLabelValues(state.RunSuccess)); got != 1 {
		t.Errorf("runs_total{result=\"success\"} = %v, want 1 (the re-run)", got)
	}

	h.reg = prometheus.NewRegistry()
	h.m = NewMetrics(h.reg, psa.SystemAutotask)
	if err := h.engine().RestoreMetrics(nil); err != nil {
		t.Fatal(err)
	}
	check("restored at start-up", h.m)
}

// TestEngine_Sync_endedPeriodLastRunResult: psa_sync_ended_period_last_run_result
// reports the last pass of the month that has ended. November's month-end
// pass fails: nothing shows while November is the month a pass syncs, the
// failure shows from midnight without a pass, stays after December's first
// pass succeeds (which resolves PsaSyncFailing) and after a restart, and
// gives way to the success of a re-run of November.
func TestEngine_Sync_endedPeriodLastRunResult(t *testing.T) {
	t.Parallel()
	var clock atomic.Pointer[time.Time]
	clock.Store(&periodMonthEnd)
	now := func() time.Time { return *clock.Load() }
	h := newETHarness(t, psatest.WithClock(now))
	h.now = now
	h.doc.CustomerMappings = h.doc.CustomerMappings[:1]
	h.at.SetUnits(h.contractA, h.svcIntercept, 10, etPeriodDay)
	// December's count is the line's: its pass writes nothing, so the
	// re-run of November is not held for a later write.
	content := "customer_id,customer_name,product,quantity,period\n" +
		"cust-a,Acme,CIXA-MSP,12,2026-11\n" +
		"cust-a,Acme,CIXA-MSP,10,2026-12\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	want := func(when, result string) {
		t.Helper()
		for _, r := range RunResults {
			w := 0.0
			if r == result {
				w = 1
			}
			if got := testutil.ToFloat64(h.m.EndedPeriodLastRunResult[r]); got != w {
				t.Errorf("%s: ended_period_last_run_result{result=%q} = %v, want %v", when, r, got, w)
			}
		}
	}

	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Status: http.StatusInternalServerError})
	failed := h.sync(PassOptions{Trigger: TriggerSchedule})
	if failed.Run.Result != state.RunFailure || failed.Run.Period != "2026-11" {
		t.Fatalf("month-end pass: result %s, period %s; want a failure for 2026-11", failed.Run.Result, failed.Run.Period)
	}
	h.sim.ClearFaults()
	want("30 November, after November's failed pass (October has ended)", "")

	clock.Store(&periodNextDay)
	want("1 December, before any pass", state.RunFailure)

	dec := h.sync(PassOptions{Trigger: TriggerSchedule})
	if dec.Run.Result != state.RunSuccess || dec.Run.Period != "2026-12" {
		t.Fatalf("December's pass: result %s, period %s; want success for 2026-12", dec.Run.Result, dec.Run.Period)
	}
	if got := testutil.ToFloat64(h.m.LastRunResult.WithLabelValues(state.RunSuccess)); got != 1 {
		t.Fatalf("last_run_result{result=\"success\"} = %v after December's pass, want 1", got)
	}
	want("after December's pass succeeded", state.RunFailure)

	restart := func() {
		t.Helper()
		h.reg = prometheus.NewRegistry()
		h.m = NewMetrics(h.reg, psa.SystemAutotask)
		if err := h.engine().RestoreMetrics(nil); err != nil {
			t.Fatal(err)
		}
	}
	restart()
	want("restored at start-up after December's pass", state.RunFailure)

	later := periodNextDay.Add(time.Hour)
	clock.Store(&later)
	rerun := h.sync(PassOptions{Trigger: TriggerCLI, Period: periodNov})
	if rerun.Run.Result != state.RunSuccess || rerun.Run.Period != "2026-11" {
		t.Fatalf("re-run of November: result %s, period %s; want success for 2026-11", rerun.Run.Result, rerun.Run.Period)
	}
	want("after the re-run of November", state.RunSuccess)
	restart()
	want("restored at start-up after the re-run", state.RunSuccess)

	// A month on, December is the month that ended: its last pass
	// succeeded.
	jan := time.Date(2027, time.January, 2, 8, 0, 0, 0, time.UTC)
	clock.Store(&jan)
	want("2 January, after December's pass succeeded", state.RunSuccess)
}

// TestEngine_Sync_periodRerunHeldForALaterWrite: November's month-end pass
// failed and December's first pass (1 December 02:00) already wrote
// Acme's line from 1 December; the re-run of November holds that line
// (an adjustment dated 1 November would carry into December), so
// November's invoice keeps the earlier quantity. The re-run must not count
// as November's success: it is partial, says to set the line by hand and
// record it with set-by-hand, and psa_sync_ended_period_last_run_result
// stays partial until that record.
func TestEngine_Sync_periodRerunHeldForALaterWrite(t *testing.T) {
	t.Parallel()
	var clock atomic.Pointer[time.Time]
	clock.Store(&periodMonthEnd)
	now := func() time.Time { return *clock.Load() }
	h := newETHarness(t, psatest.WithClock(now))
	h.now = now
	h.doc.CustomerMappings = h.doc.CustomerMappings[:1]
	h.at.SetUnits(h.contractA, h.svcIntercept, 10, etPeriodDay)
	periodUsage(t, h.usage)

	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Status: http.StatusInternalServerError})
	if res := h.sync(PassOptions{Trigger: TriggerSchedule}); res.Run.Result != state.RunFailure {
		t.Fatalf("month-end pass: %s, want a failure", res.Run.Result)
	}
	h.sim.ClearFaults()
	dec := time.Date(2026, time.December, 1, 2, 0, 0, 0, time.UTC)
	clock.Store(&dec)
	if res := h.sync(PassOptions{Trigger: TriggerSchedule}); res.Run.Result != state.RunSuccess || res.Run.Period != "2026-12" {
		t.Fatalf("December's pass: %s for %s, want success for 2026-12", res.Run.Result, res.Run.Period)
	}
	clock.Store(&periodNextDay)
	rerun := h.sync(PassOptions{Trigger: TriggerCLI, Period: periodNov})
	c := etFindChange(rerun.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Hold() != HoldLaterWrite {
		t.Fatalf("re-run of November: Acme's line %+v, want held for December's write", c)
	}
	if rerun.Run.Result != state.RunPartial || !strings.Contains(rerun.Run.Error, "1 lines held: psa-syncd already changed them from a later date (a pass of 2026-12), so 2026-11 keeps their earlier quantities") ||
		!strings.Contains(rerun.Run.Error, "psa-syncd set-by-hand -period 2026-11") {
		t.Errorf("re-run of November: %s, %q; want partial, saying to set the line by hand and record it", rerun.Run.Result, rerun.Run.Error)
	}
	for _, r := range RunResults {
		want := 0.0
		if r == state.RunPartial {
			want = 1
		}
		if got := testutil.ToFloat64(h.m.EndedPeriodLastRunResult[r]); got != want {
			t.Errorf("ended_period_last_run_result{result=%q} = %v, want %v", r, got, want)
		}
	}
	if _, err := h.engine().RecordSetByHand(periodNov, "jane: Acme's Intercept X set to 12 for November"); err != nil {
		t.Errorf("set-by-hand after the partial re-run: %v", err)
	}
	// December's passes, of the current month, are not affected.
	if res := h.sync(PassOptions{Trigger: TriggerSchedule}); res.Run.Result != state.RunSuccess {
		t.Errorf("December's next pass: %s (%s), want success", res.Run.Result, res.Run.Error)
	}
}

// TestEngine_Sync_endedPeriodHeldLines: November's month-end pass holds
// Acme's drop from 10 to 3 seats for review (max_decrease_percent: 50)
// and succeeds, so psa_sync_ended_period_last_run_result reads success
// when November ends. psa_sync_ended_period_held_lines says that pass
// held a line (November's invoice keeps 10), also after December's first
// pass (which holds the line again, for December) and a restart. The line
// approved for November, a re-run of November that holds nothing clears
// it; so does the month recorded as set by hand, which is no longer
// refused as "succeeded".
func TestEngine_Sync_endedPeriodHeldLines(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) *etHarness {
		var clock atomic.Pointer[time.Time]
		clock.Store(&periodMonthEnd)
		now := func() time.Time { return *clock.Load() }
		h := newETHarness(t, psatest.WithClock(now))
		h.now = now
		h.pol.MaxDecreasePercent = 50
		h.doc.CustomerMappings = h.doc.CustomerMappings[:1]
		h.at.SetUnits(h.contractA, h.svcIntercept, 10, etPeriodDay)
		content := "customer_id,customer_name,product,quantity,period\n" +
			"cust-a,Acme,CIXA-MSP,3,2026-11\n" +
			"cust-a,Acme,CIXA-MSP,3,2026-12\n"
		if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		nov := h.sync(PassOptions{Trigger: TriggerSchedule})
		if nov.Run.Result != state.RunSuccess || nov.Run.Held != 1 || nov.Run.Period != "2026-11" {
			t.Fatalf("month-end pass: result %s, held %d, period %s; want a success of 2026-11 holding 1 line",
				nov.Run.Result, nov.Run.Held, nov.Run.Period)
		}
		if got := testutil.ToFloat64(h.m.EndedPeriodHeldLines); got != 0 {
			t.Errorf("30 November: ended_period_held_lines = %v, want 0 (October has ended)", got)
		}
		clock.Store(&periodNextDay)
		return h
	}
	want := func(t *testing.T, h *etHarness, when, result string, held float64) {
		t.Helper()
		if got := testutil.ToFloat64(h.m.EndedPeriodLastRunResult[result]); got != 1 {
			t.Errorf("%s: ended_period_last_run_result{result=%q} = %v, want 1", when, result, got)
		}
		if got := testutil.ToFloat64(h.m.EndedPeriodHeldLines); got != held {
			t.Errorf("%s: ended_period_held_lines = %v, want %v", when, got, held)
		}
	}
	restart := func(t *testing.T, h *etHarness) {
		t.Helper()
		h.reg = prometheus.NewRegistry()
		h.m = NewMetrics(h.reg, psa.SystemAutotask)
		if err := h.engine().RestoreMetrics(nil); err != nil {
			t.Fatal(err)
		}
	}
	december := func(t *testing.T, h *etHarness) {
		t.Helper()
		want(t, h, "1 December, before any pass", state.RunSuccess, 1)
		dec := h.sync(PassOptions{Trigger: TriggerSchedule})
		if dec.Run.Result != state.RunSuccess || dec.Run.Period != "2026-12" || dec.Run.Held != 1 {
			t.Fatalf("December's pass: result %s, period %s, held %d; want a success of 2026-12 holding the line",
				dec.Run.Result, dec.Run.Period, dec.Run.Held)
		}
		want(t, h, "after December's pass", state.RunSuccess, 1)
		restart(t, h)
		want(t, h, "restored at start-up", state.RunSuccess, 1)
	}

	t.Run("approved and re-run", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		december(t, h)
		units := int64(3)
		one := h.sync(PassOptions{Trigger: TriggerCLI, Period: periodNov, Customer: "cust-a", Approve: true,
			ApproveService: etID(h.svcIntercept), ApproveUnits: &units})
		if one.Run.Updated != 1 {
			t.Fatalf("approval for 2026-11: %+v; want the line written", one.Run)
		}
		if n, _ := h.at.Units(h.contractA, h.svcIntercept, time.Date(2026, time.November, 15, 0, 0, 0, 0, time.UTC)); n != 3 {
			t.Errorf("November units after the approval = %d, want 3", n)
		}
		// A pass for one customer does not speak for the month.
		want(t, h, "after the approval of one line", state.RunSuccess, 1)
		rerun := h.sync(PassOptions{Trigger: TriggerCLI, Period: periodNov})
		if rerun.Run.Result != state.RunSuccess || rerun.Run.Held != 0 {
			t.Fatalf("re-run of November: result %s, held %d; want a success holding nothing", rerun.Run.Result, rerun.Run.Held)
		}
		want(t, h, "after the re-run", state.RunSuccess, 0)
		restart(t, h)
		want(t, h, "restored after the re-run", state.RunSuccess, 0)
	})

	t.Run("set by hand", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		december(t, h)
		run, err := h.engine().RecordSetByHand(periodNov, "jane: Acme's line set to 3 for November by hand")
		if err != nil {
			t.Fatalf("RecordSetByHand after a pass that held a line: %v", err)
		}
		if run.Trigger != TriggerByHand || run.Held != 0 {
			t.Errorf("record = %+v", run)
		}
		want(t, h, "after the record", state.RunSuccess, 0)
		restart(t, h)
		want(t, h, "restored after the record", state.RunSuccess, 0)
	})
}

// psa_sync_month_end_timestamp_seconds is the end of the calendar month in
// the schedule's time zone, not UTC's: a month-end pass at 18:00 in Los
// Angeles runs at 02:00 UTC on the 1st, still in the last day of the
// month there, where the invoicing alerts have to fire.
func TestEngine_monthEndMetric(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	m := h.m
	if got := testutil.ToFloat64(m.MonthEnd); got != 0 {
		t.Errorf("before an engine: %v, want 0", got)
	}
	now := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC) // 30 November, 18:00 in Los Angeles
	for _, c := range []struct {
		loc  *time.Location
		want time.Time
	}{
		{la, time.Date(2026, 12, 1, 0, 0, 0, 0, la)},
		{time.UTC, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		NewEngine(EngineOptions{Backend: h.be, State: h.db, Metrics: m, Location: c.loc, Now: func() time.Time { return now }})
		if got, want := testutil.ToFloat64(m.MonthEnd), float64(c.want.Unix()); got != want {
			t.Errorf("%s: %v (%s), want %v (%s)", c.loc, got, time.Unix(int64(got), 0).UTC(), want, c.want.UTC())
		}
	}
}
