package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestRun_syncPeriod: plan -period and sync -period sync the month that
// has just ended, dated as the policies say for it (period_start: its first
// day), and say which period in the plan, the run and -json; an older
// month is refused with the reason, and a malformed one is a usage error.
// On ConnectWise PSA a sync of the ended month is refused and writes
// nothing, while its plan is shown. The tests use the clock: the month
// that ended is the one before today's (UTC, the config's timezone).
func TestRun_syncPeriod(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cfg := "-config.file=" + e.cfgPath
	ended := source.PeriodOf(time.Now().UTC()).Prev()

	if code, _, stderr := runCmd(t, "sync", cfg, "-period", "2026-13"); code != 2 || !strings.Contains(stderr, `-period "2026-13": want a billing month, YYYY-MM`) {
		t.Errorf("sync -period 2026-13: exit %d, stderr %s; want 2 and the usage error", code, stderr)
	}
	if code, _, stderr := runCmd(t, "plan", cfg, "-period", "november"); code != 2 || !strings.Contains(stderr, "want a billing month") {
		t.Errorf("plan -period november: exit %d, stderr %s; want 2 and the usage error", code, stderr)
	}
	if code, _, stderr := runCmd(t, "sync", cfg, "-period", ended.Prev().String()); code != 1 ||
		!strings.Contains(stderr, "or the one before it ("+ended.String()+")") {
		t.Errorf("sync -period %s: exit %d, stderr %s; want 1 and the refusal", ended.Prev(), code, stderr)
	}
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("a refused pass sent %d requests", n)
	}

	code, stdout, stderr := runCmd(t, "plan", cfg, "-period", ended.String())
	if code != 0 || !strings.Contains(stdout, "Plan for period "+ended.String()+" (effective "+ended.Start(time.UTC).Format(time.DateOnly)+")") {
		t.Fatalf("plan -period %s: exit %d\n%s\n%s", ended, code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "sync", cfg, "-period", ended.String(), "-json")
	var out struct {
		Run struct {
			Period string `json:"period"`
			Result string `json:"result"`
		} `json:"run"`
		Plan struct {
			Period        string    `json:"period"`
			EffectiveDate time.Time `json:"effective_date"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); code != 0 || err != nil || out.Run.Period != ended.String() || out.Run.Result != "success" ||
		out.Plan.Period != ended.String() || !out.Plan.EffectiveDate.Equal(ended.Start(time.UTC)) {
		t.Fatalf("sync -period %s -json: exit %d, %v, %+v\n%s", ended, code, err, out, stderr)
	}
	for _, w := range wantUnits {
		if got, _ := e.sim.Autotask().Units(e.contracts[w[0]], e.services[w[1]], ended.Start(time.UTC).AddDate(0, 0, 14)); got != w[2] {
			t.Errorf("%s: units of contract %d service %d = %d, want %d", ended, e.contracts[w[0]], e.services[w[1]], got, w[2])
		}
	}
	// The ledger says which month's usage each change is.
	code, stdout, stderr = runCmd(t, "ledger", cfg, "-json")
	var ledger struct {
		Ledger []struct {
			Period        string `json:"period"`
			EffectiveDate string `json:"effective_date"`
		} `json:"ledger"`
	}
	if err := json.Unmarshal([]byte(stdout), &ledger); code != 0 || err != nil || len(ledger.Ledger) != len(wantUnits) {
		t.Fatalf("ledger -json: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	for _, le := range ledger.Ledger {
		if le.Period != ended.String() || le.EffectiveDate != ended.Start(time.UTC).Format(time.DateOnly) {
			t.Errorf("ledger entry %+v, want period %s dated %s", le, ended, ended.Start(time.UTC).Format(time.DateOnly))
		}
	}
	// So do the table and the CSV (a column of its own, the CSV's last).
	code, stdout, stderr = runCmd(t, "ledger", cfg, "-format", "csv")
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if code != 0 || err != nil || len(rows) != len(wantUnits)+1 || rows[0][len(rows[0])-1] != "period" {
		t.Fatalf("ledger -format csv: exit %d, %v, %q\n%s; want a header ending in period and %d rows", code, err, rows, stderr, len(wantUnits))
	}
	for _, row := range rows[1:] {
		if row[len(row)-1] != ended.String() {
			t.Errorf("ledger -format csv: row %q, want the period %s last", row, ended)
		}
	}
	code, stdout, stderr = runCmd(t, "ledger", cfg)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != len(wantUnits)+1 || !strings.HasSuffix(strings.Join(strings.Fields(lines[0]), " "), "EFFECTIVE PERIOD") {
		t.Fatalf("ledger: exit %d\n%s\n%s; want a table with a PERIOD column", code, stdout, stderr)
	}
	for _, l := range lines[1:] {
		if !strings.HasSuffix(strings.Join(strings.Fields(l), " "), ended.Start(time.UTC).Format(time.DateOnly)+" "+ended.String()) {
			t.Errorf("ledger: row %q, want the effective date then the period %s", l, ended)
		}
	}
}

// TestRun_syncPeriodConnectWise: ConnectWise PSA's addition quantities are
// undated, so sync -period of the month that ended is refused, says why
// and what to do, and writes nothing; plan -period shows the quantities
// and that a pass would be refused.
func TestRun_syncPeriodConnectWise(t *testing.T) {
	t.Parallel()
	e := newSystemEnv(t, psa.SystemConnectWise)
	cfg := "-config.file=" + e.cfgPath
	ended := source.PeriodOf(time.Now().UTC()).Prev().String()
	code, stdout, stderr := runCmd(t, "sync", cfg, "-period", ended)
	if code != 1 || !strings.Contains(stderr, "ConnectWise PSA keeps one quantity per agreement addition") {
		t.Errorf("sync -period %s on ConnectWise: exit %d\n%s\n%s; want 1 and the refusal", ended, code, stdout, stderr)
	}
	for _, w := range wantUnits {
		if got, ok := e.units(e.contracts[w[0]], e.services[w[1]]); ok && got != 0 {
			t.Errorf("the refused pass set contract %s service %s to %d", e.contracts[w[0]], e.services[w[1]], got)
		}
	}
	code, stdout, stderr = runCmd(t, "plan", cfg, "-period", ended)
	if code != 0 || !strings.Contains(stdout, "Plan for period "+ended) || !strings.Contains(stdout, "A pass that writes is refused: daemon: period "+ended+": ConnectWise PSA") ||
		!strings.Contains(stdout, "3 to update") {
		t.Errorf("plan -period %s on ConnectWise: exit %d\n%s\n%s", ended, code, stdout, stderr)
	}
}

// TestRun_planPeriodRemoteNeedsToken: plan -period through -web.url is
// computed by the daemon, which takes the API token; without it the
// command would show the last pass's plan, of whatever period, so it is a
// usage error.
func TestRun_planPeriodRemoteNeedsToken(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCmd(t, "plan", "-period", "2026-11", "-web.url", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, "-period with -web.url needs the API token") {
		t.Errorf("plan -period -web.url without a token: exit %d, stderr %s; want 2 and the reason", code, stderr)
	}
}

// TestRun_syncPeriodRemote: plan -period and sync -period through
// -web.url ask the running daemon for that period ("period" in POST
// /api/v1/plan and /api/v1/sync), whose pass syncs it; an older period is
// refused by the daemon with the reason.
func TestRun_syncPeriodRemote(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	tokenFile := filepath.Join(e.dir, "api-token")
	writeFile(t, tokenFile, "test-token\n")
	base := startDaemon(t, e.cfgPath)
	ended := source.PeriodOf(time.Now().UTC()).Prev().String()
	remote := []string{"-web.url", base, "-web.token-file", tokenFile}

	code, stdout, stderr := runCmd(t, append([]string{"plan", "-period", ended}, remote...)...)
	if code != 0 || !strings.Contains(stdout, "Plan for period "+ended) {
		t.Fatalf("plan -period %s -web.url: exit %d\n%s\n%s", ended, code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, append([]string{"sync", "-period", ended, "-json"}, remote...)...)
	var out struct {
		Request struct {
			Period string `json:"period"`
		} `json:"request"`
		Run struct {
			Period string `json:"period"`
		} `json:"run"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); code != 0 || err != nil || out.Request.Period != ended || out.Run.Period != ended {
		t.Fatalf("sync -period %s -web.url -json: exit %d, %v, %+v\n%s\n%s", ended, code, err, out, stdout, stderr)
	}
	older := source.PeriodOf(time.Now().UTC()).Prev().Prev().String()
	if code, _, stderr := runCmd(t, append([]string{"sync", "-period", older}, remote...)...); code != 1 || !strings.Contains(stderr, "400") ||
		!strings.Contains(stderr, "or the one before it ("+ended+")") {
		t.Errorf("sync -period %s -web.url: exit %d, stderr %s; want 1 and the daemon's refusal", older, code, stderr)
	}
}

// TestRun_syncPeriodMetricsFile: sync -period -metrics.file writes the
// last-run gauges of the passes before it (a re-run of the month that
// ended moves none of them), not zeros that would resolve PsaSyncFailing
// or silence PsaSyncStale through a textfile collector.
func TestRun_syncPeriodMetricsFile(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	cfg := "-config.file=" + e.cfgPath
	ended := source.PeriodOf(time.Now().UTC()).Prev()
	if code, stdout, stderr := runCmd(t, "sync", cfg); code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	metrics := filepath.Join(e.dir, "metrics.prom")
	// The pass of the current month wrote every line from its first day:
	// the re-run holds them (later_write) and is partial, exit 1.
	if code, stdout, stderr := runCmd(t, "sync", cfg, "-period", ended.String(), "-metrics.file", metrics); code != 1 || !strings.Contains(stdout, "partial") {
		t.Fatalf("sync -period %s: exit %d\n%s\n%s; want 1, a partial pass", ended, code, stdout, stderr)
	}
	prom, err := os.ReadFile(metrics)
	if err != nil || !strings.Contains(string(prom), `psa_sync_last_run_result{result="success",system="autotask"} 1`) ||
		strings.Contains(string(prom), `psa_sync_last_success_timestamp_seconds{system="autotask"} 0`) {
		t.Errorf("metrics file after sync -period: %v; want the last pass's success restored:\n%s", err, prom)
	}
}

// TestRun_setByHand: on ConnectWise PSA the month that ended cannot be
// written, so its quantities are set by hand and set-by-hand records that:
// -period and -note are required (usage errors), a month with nothing to
// record is refused, and the record of the month whose last pass was
// partial is a by_hand run with the note; a second one is refused. The
// tests use the clock, as TestRun_syncPeriod does.
func TestRun_setByHand(t *testing.T) {
	t.Parallel()
	e := newSystemEnv(t, psa.SystemConnectWise)
	cfg := "-config.file=" + e.cfgPath
	now := time.Now().UTC()
	ended := source.PeriodOf(now).Prev().String()
	if code, _, stderr := runCmd(t, "sync", cfg); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-note", "jane"}, "-period is required"},
		{[]string{"-period", ended}, "-note is required"},
		{[]string{"-period", "2026-13", "-note", "jane"}, `-period "2026-13": want a billing month`},
	} {
		if code, _, stderr := runCmd(t, append([]string{"set-by-hand", cfg}, c.args...)...); code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("set-by-hand %v: exit %d, stderr %s; want 2 saying %q", c.args, code, stderr, c.want)
		}
	}
	if code, _, stderr := runCmd(t, "set-by-hand", cfg, "-period", ended, "-note", "jane"); code != 1 || !strings.Contains(stderr, "no pass of "+ended+" over all customers") {
		t.Errorf("set-by-hand without a pass of %s: exit %d, stderr %s; want 1, nothing to record", ended, code, stderr)
	}

	db, err := state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	partial, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Period: ended, Started: now.Add(-time.Minute), Finished: now.Add(-time.Minute),
		Result: state.RunPartial})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "set-by-hand", cfg, "-period", ended, "-note", "jane: additions set in ConnectWise before invoicing")
	if code != 0 || !strings.Contains(stdout, "records the quantities of "+ended+" as set by hand: jane: additions set in ConnectWise before invoicing") {
		t.Fatalf("set-by-hand: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(t, "set-by-hand", cfg, "-period", ended, "-note", "bob"); code != 1 || !strings.Contains(stderr, "was recorded as set by hand") {
		t.Errorf("a second set-by-hand: exit %d, stderr %s; want 1 naming the first", code, stderr)
	}
	db, err = state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs, err := db.Runs(1)
	if err != nil || len(runs) != 1 || runs[0].ID <= partial.ID || runs[0].Trigger != usage.TriggerByHand || runs[0].Period != ended ||
		runs[0].Note != "jane: additions set in ConnectWise before invoicing" {
		t.Errorf("newest run = %+v, %v; want the by_hand record of %s with the note", runs, err, ended)
	}
}
