package tickets_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// A PSA that refuses to close every ticket of a resolved alert fails each
// of them, but logs at most 20 at warn per pass, the others at debug, and
// says how many there were: one warning per ticket at every ticket pass
// would drown the journal of an MSP with hundreds of open tickets.
func TestEngine_failedUpdatesLogBounded(t *testing.T) {
	t.Parallel()
	const alerts, maxWarned = 60, 20
	e := newEnv(t, psa.SystemAutotask)
	r := routings[psa.SystemAutotask]
	r.MaxPerCustomer, r.MaxPerPass = alerts, alerts
	var logs bytes.Buffer
	eng, err := tickets.New(tickets.Config{System: e.system, PSA: e.backend, Store: e.db, Alerts: e.sophosAlerts(), Routing: r,
		Now: func() time.Time { return e.now }, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range alerts {
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Malware on PC-%03d", i)})
		ids = append(ids, a.ID)
	}
	if tot := e.pass(eng).Totals(); tot.Created != alerts {
		t.Fatalf("first pass created %d tickets, want %d", tot.Created, alerts)
	}
	for _, id := range ids {
		e.sophos.ResolveAlert(acme, id)
	}
	e.psaSim.AddFault(psatest.Fault{Method: http.MethodPatch, Path: "/ATServicesRest/V1.0/Tickets", Status: http.StatusInternalServerError,
		Body: `{"errors":["Simulated: the ticket cannot be completed."]}`})
	logs.Reset()
	if tot := e.pass(eng).Totals(); tot.Closed != 0 {
		t.Fatalf("pass closed %d tickets while the PSA refused every close", tot.Closed)
	}
	var warned, all int
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, `msg="Could not update the ticket of a resolved alert"`) {
			all++
			if strings.Contains(l, "level=WARN") {
				warned++
			}
		}
	}
	if all != alerts {
		t.Fatalf("%d failed tickets logged, want each of the %d; logs:\n%s", all, alerts, logs.String())
	}
	if warned > maxWarned {
		t.Errorf("%d failed tickets logged at warn, want at most %d", warned, maxWarned)
	}
	if !strings.Contains(logs.String(), `msg="More tickets could not be updated`) {
		t.Errorf("no warning says that more tickets failed; logs:\n%s", logs.String())
	}
}
