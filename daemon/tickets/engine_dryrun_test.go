package tickets_test

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A dry run reports the creates of earlier passes whose outcome is
// unknown, as the next pass would settle them, and writes nothing: one
// applied is adopted (and its ticket closed when its alert is resolved),
// one not in the PSA waits for the settle time, and is then sent again.
func TestEngine_dryRunReportsOpenCreates(t *testing.T) {
	t.Parallel()
	const create = "/ATServicesRest/V1.0/Tickets"
	e := newEnv(t, psa.SystemAutotask)
	e.settleTime = 2 * time.Minute
	eng := e.engine(routings[psa.SystemAutotask])
	applied := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
	lost := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware detected"})
	// One create is applied and its answer lost; the other's connection
	// drops before it is handled.
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: create, BodyContains: "sc:" + applied.ID, DropAfterHandling: true, Times: 1})
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: create, BodyContains: "sc:" + lost.ID, Drop: true, Times: 1})
	e.pass(eng)
	if n := len(e.tickets()); n != 1 {
		t.Fatalf("%d tickets after the lost answers, want 1", n)
	}
	ticket := id(e.tickets()[0].id)
	e.sophos.ResolveAlert(acme, applied.ID)
	before, _ := e.db.TicketRecords("sophos", acme)
	writes := func() int {
		n := 0
		for _, r := range e.psaSim.Requests() {
			if r.Method != http.MethodGet && !strings.HasSuffix(r.Path, "/query") {
				n++
			}
		}
		return n
	}
	sent := writes()

	dryRun := func() tickets.CustomerReport {
		t.Helper()
		rep := e.dryPass(eng)
		if after, _ := e.db.TicketRecords("sophos", acme); !reflect.DeepEqual(before, after) || writes() != sent || rep.Settled != 0 {
			t.Errorf("the dry run wrote: records %+v, were %+v; %d writes sent; settled %d", after, before, writes()-sent, rep.Settled)
		}
		return rep.Customers[0]
	}
	notice := func(cr tickets.CustomerReport, words ...string) bool {
		return slices.ContainsFunc(cr.Notices, func(n string) bool {
			for _, w := range words {
				if !strings.Contains(n, w) {
					return false
				}
			}
			return true
		})
	}

	e.now = e.now.Add(time.Minute)
	cr := dryRun()
	if !notice(cr, "sc:"+applied.ID, "adopts") || !slices.Equal(cr.WouldClose, []string{ticket}) {
		t.Errorf("dry run: notices %q, would close %q; want the applied create's ticket %s adopted and closed", cr.Notices, cr.WouldClose, ticket)
	}
	if !notice(cr, "sc:"+lost.ID, "not in the PSA yet") || len(cr.WouldCreate) != 0 || cr.Adopted != 0 || cr.Err != nil {
		t.Errorf("dry run within the settle time = %+v; want the lost create reported as waiting, nothing created", cr)
	}

	e.now = e.now.Add(2 * time.Minute)
	cr = dryRun()
	if !notice(cr, "sc:"+lost.ID, "sends them again") || !slices.Equal(cr.WouldCreate, []string{"sc:" + lost.ID}) {
		t.Errorf("dry run after the settle time: notices %q, would create %q; want the lost create sent again", cr.Notices, cr.WouldCreate)
	}

	rep := e.pass(eng)
	if cr := rep.Customers[0]; rep.Settled != 1 || cr.Adopted != 1 || cr.Closed != 1 || cr.Created != 1 || len(e.tickets()) != 2 {
		t.Errorf("the pass = settled %d, %+v, %d tickets; want what the dry run said", rep.Settled, cr, len(e.tickets()))
	}
}
