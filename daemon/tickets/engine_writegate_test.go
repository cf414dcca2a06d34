package tickets_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngine_leaseAskedBeforeEachAttempt: the PSA throttles a ticket
// create (429 with a short Retry-After), and while the client waits it out
// the lease (Config.Fence) runs out: another instance may take over and
// settle the create. The client asks the lease again before it sends the
// create once more, and does not: no ticket, one POST, and the pass stops
// as at a refused record. On every PSA. Before, the lease was asked once
// per call, and the retry created the ticket after the lease ran out.
func TestEngine_leaseAskedBeforeEachAttempt(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
			path := map[psa.System]string{
				psa.SystemAutotask:    "/ATServicesRest/V1.0/Tickets",
				psa.SystemConnectWise: strings.TrimPrefix(e.psaSim.ConnectWiseBaseURL(), e.psaSim.URL()) + "service/tickets",
				psa.SystemKaseyaBMS:   "/v2/servicedesk/tickets",
			}[sys]
			// A short wait (whole seconds): without one, Kaseya BMS takes a 429
			// as its hourly limit, which is not retried.
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 1})
			creates := func() (all, throttled int) {
				for _, r := range e.psaSim.Requests() {
					if r.Method == http.MethodPost && strings.EqualFold(r.Path, path) {
						all++
						if r.Status == http.StatusTooManyRequests {
							throttled++
						}
					}
				}
				return all, throttled
			}
			// The lease runs out once the PSA throttled the create.
			lease := func() error {
				if _, throttled := creates(); throttled > 0 {
					return fmt.Errorf("the lease ran out: %w", tickets.ErrNotLeader)
				}
				return nil
			}
			eng, err := tickets.New(tickets.Config{System: e.system, PSA: e.backend, Store: e.db, Alerts: e.sophosAlerts(),
				Routing: routings[sys], Now: func() time.Time { return e.now }, Fence: lease})
			if err != nil {
				t.Fatal(err)
			}
			_, err = eng.Pass(t.Context(), e.customers(), false)
			if !errors.Is(err, tickets.ErrNotLeader) {
				t.Errorf("Pass error = %v, want the lease's ErrNotLeader", err)
			}
			if all, _ := creates(); all != 1 {
				t.Errorf("%d creates sent, want 1 (the throttled one; none after the lease ran out)", all)
			}
			if got := e.tickets(); len(got) != 0 {
				t.Errorf("tickets = %+v, want none", got)
			}
		})
	}
}
