package tickets_test

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// With backfill_window, alerts raised before it that have no ticket yet
// (ticket sync just turned on, or back on) are named in one summary
// ticket ("N older alerts") rather than filed one ticket each; an alert
// raised within it, or whose raised time is unknown, gets its own. Before
// the setting, months-old alerts all became tickets of their own.
func TestEngine_backfillWindow(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			eng := e.engineWith(func(r *export.Tickets) { r.BackfillWindow = "48h" })
			for _, raised := range []string{"2026-08-02T11:00:00.000", "2026-11-12T09:00:00.000"} {
				e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Outdated definitions on PC-" + raised[5:7], RaisedAt: raised})
			}
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-042", RaisedAt: "2026-11-15T09:00:00.000"})

			cr := e.pass(eng).Customers[0]
			if cr.Created != 1 || cr.Summarised != 2 || cr.Err != nil || len(cr.Notices) != 1 ||
				!strings.HasPrefix(cr.Notices[0], "2 alerts were raised more than 48h0m0s ago (backfill_window)") {
				t.Fatalf("first pass = %+v, want the recent alert's ticket and the 2 older ones summarised, with a notice", cr)
			}
			var titles []string
			for _, tk := range e.tickets() {
				titles = append(titles, tk.title)
			}
			if len(titles) != 2 || !strings.Contains(titles[0], "Malware on PC-042") || !strings.HasPrefix(titles[1], "[Sophos] 2 older alerts for Acme Corporation") {
				t.Errorf("ticket titles = %q, want the recent alert's and one summary of the 2 older alerts", titles)
			}
			if cr := e.pass(eng).Customers[0]; cr.Created != 0 || cr.Summarised != 0 || cr.Err != nil || len(e.tickets()) != 2 {
				t.Errorf("the pass after = %+v, want nothing filed again", cr)
			}
		})
	}
}
