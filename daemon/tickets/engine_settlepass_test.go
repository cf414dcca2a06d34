package tickets_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A ticket write whose answer is lost in a pass is left by the passes
// after it until its settle time (policies.settle_time after it was
// recorded): that pass's Report.SettleAt asks for a pass then, so that
// the daemon settles it at once rather than at the next scheduled pass
// (an hour later with an hourly ticket_schedule). Only a pass that found
// such a write left from an earlier pass used to ask for one.
func TestEngine_lostAnswerQueuesASettlePass(t *testing.T) {
	t.Parallel()
	const ticketsPath = "/ATServicesRest/V1.0/Tickets"
	// lost runs the pass whose write's answer is lost, on e, and returns
	// its report.
	type lost func(e *env) tickets.Report
	cases := map[string]struct {
		systems []psa.System
		lost    lost
	}{
		"create": {[]psa.System{psa.SystemAutotask}, func(e *env) tickets.Report {
			eng := e.engine(routings[e.system])
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: ticketsPath, DropAfterHandling: true, Times: 1})
			return e.pass(eng)
		}},
		"close": {[]psa.System{psa.SystemAutotask}, func(e *env) tickets.Report {
			eng := e.engine(routings[e.system])
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
			e.pass(eng)
			e.sophos.ResolveAlert(acme, a.ID)
			e.now = e.now.Add(time.Hour)
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: ticketsPath, DropAfterHandling: true})
			return e.pass(eng)
		}},
		"reopen": {[]psa.System{psa.SystemAutotask}, func(e *env) tickets.Report {
			r := routings[e.system]
			r.OnReturn = export.OnReturnReopen
			eng := e.engine(r)
			a := e.resolvedHealthCheck(eng)
			e.raiseAgain(a)
			e.now = e.now.Add(time.Hour)
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: ticketsPath, DropAfterHandling: true})
			return e.pass(eng)
		}},
		"resolve note": {psa.Systems, func(e *env) tickets.Report {
			r := routings[e.system]
			r.OnResolve = export.OnResolveNote
			eng := e.engine(r)
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
			e.pass(eng)
			e.sophos.ResolveAlert(acme, a.ID)
			e.now = e.now.Add(time.Hour)
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(e.tickets()[0].id), DropAfterHandling: true, Times: 1})
			return e.pass(eng)
		}},
		"summary note": {psa.Systems, func(e *env) tickets.Report {
			eng, summary := e.alertStorm()
			e.now = e.now.Add(time.Hour)
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(summary), DropAfterHandling: true, Times: 1})
			return e.pass(eng)
		}},
	}
	for name, c := range cases {
		for _, sys := range c.systems {
			t.Run(string(sys)+"/"+name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				e.settleTime = 2 * time.Minute
				rep := c.lost(e)
				if n := len(e.psaSim.Requests()); n == 0 {
					t.Fatal("no request reached the PSA")
				}
				dropped := false
				for _, r := range e.psaSim.Requests() {
					dropped = dropped || r.Dropped
				}
				if !dropped {
					t.Fatalf("pass = %+v: no answer was lost", rep.Customers)
				}
				if want := e.now.Add(e.settleTime); !rep.SettleAt.Equal(want) {
					t.Errorf("pass with the answer lost: SettleAt %v, want %v (settle time after the write); customers %+v", rep.SettleAt, want, rep.Customers)
				}
			})
		}
	}
}
