package daemon

import (
	"database/sql"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestDaemon_unsavedRunSettlesAcrossPasses: a pass whose adjustment's
// answer is lost and whose end the state database refuses to record stays
// "running" in the database. psa-syncd builds a new Engine for every pass;
// the next pass must still know that run ended, so that the lost write
// settles after policies.settle_time and its line is written then, not
// held until a restart.
func TestDaemon_unsavedRunSettlesAcrossPasses(t *testing.T) {
	t.Parallel()
	wall := time.Now().UTC()
	now := time.Date(wall.Year(), wall.Month(), 15, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	e := dtSetup(t, dtOptions{
		simOptions: []psatest.Option{psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceAdjustments",
			Drop: true, Times: 1})},
		daemonOpts: Options{Now: clock},
	})

	// The database refuses the final record of run 1, as a failing disk
	// would; the other runs are recorded.
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(e.dir, "state", state.FileName)
	raw, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TRIGGER refuse_run_1 BEFORE UPDATE ON runs WHEN OLD.id = 1
		BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(c, e.cfgPath, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}

	res, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual})
	if err == nil || !strings.Contains(err.Error(), "recording the end of run 1") {
		t.Fatalf("first pass: err = %v, want its record refused", err)
	}
	if res.Run.Updated != 2 || res.Run.Failed != 1 {
		t.Fatalf("first pass: %d updated, %d failed; want 2, 1 (one answer lost)", res.Run.Updated, res.Run.Failed)
	}
	units := func() []int64 {
		a := e.sim.Autotask()
		var got []int64
		for _, l := range []struct{ c, s int }{{0, 0}, {0, 1}, {1, 0}} {
			n, _ := a.Units(e.contracts[l.c], e.services[l.s], now)
			got = append(got, n)
		}
		return got
	}
	want := []int64{11, 2, 5}
	if got := units(); slices.Equal(got, want) {
		t.Fatalf("units after the first pass = %v, want one line not written yet", got)
	}

	// After the settle time, a new pass (a new Engine) writes the line,
	// although the database still records run 1 as running.
	now = now.Add(usage.DefaultSettleTime + time.Minute)
	res, err = d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual})
	if err != nil {
		t.Fatalf("second pass: %v", err)
	}
	if got := units(); !slices.Equal(got, want) {
		t.Errorf("units after the second pass = %v, want %v (run %d: %d updated, %d failed)", got, want, res.Run.ID, res.Run.Updated, res.Run.Failed)
	}
	if n := len(e.sim.Autotask().Adjustments()); n != 3 {
		t.Errorf("simulator has %d adjustments, want 3 (one per line, none twice)", n)
	}
}
