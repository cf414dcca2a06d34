package tickets_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestEngine_fullDisk fills the state database (SQLite's max_page_count,
// as a full disk does) at a range of points of a ticket pass creating 30
// tickets, and again of one closing half of them. The pass that hits it
// never sends a create or a close without its record, and once there is
// space again the next passes end with one ticket per alert, never two,
// and every resolved alert's ticket closed.
func TestEngine_fullDisk(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		for extra := 0; extra < 4; extra++ {
			t.Run(fmt.Sprintf("%s/pages=%d", sys, extra), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				routing := routings[sys]
				routing.MaxPerCustomer = 100 // no storm: one ticket per alert
				eng := e.engine(routing)
				var ids []string
				for i := range 30 {
					a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Type: "Event::Endpoint::Threat::CleanupFailed",
						Description: fmt.Sprintf("Manual cleanup required: 'EICAR-AV-Test' on PC-%03d", i)})
					ids = append(ids, a.ID)
				}
				full := func() {
					t.Helper()
					if err := e.db.LimitSize(extra); err != nil {
						t.Fatal(err)
					}
					// The pass must not send a write without its record (the
					// checks below find a doubled ticket or a missed close),
					// and a customer it stopped says why.
					rep, err := eng.Pass(t.Context(), e.customers(), false)
					if err != nil {
						t.Fatalf("Pass on a full disk: %v, want the customer's error", err)
					}
					if cerr := rep.Customers[0].Err; cerr != nil && (!strings.Contains(cerr.Error(), e.db.Path()) ||
						!strings.Contains(cerr.Error(), "database or disk is full")) {
						t.Errorf("customer error on a full disk = %v, want one naming %s and saying it is full", cerr, e.db.Path())
					}
					if err := e.db.LimitSize(-1); err != nil {
						t.Fatal(err)
					}
					e.pass(eng)
					e.pass(eng)
				}
				full()
				if got := e.tickets(); len(got) != 30 {
					t.Fatalf("%d tickets after the disk was freed, want 30 (one per alert)", len(got))
				}
				for _, id := range ids[:15] {
					e.sophos.ResolveAlert(acme, id)
				}
				full()
				got := e.tickets()
				closed := 0
				for _, tk := range got {
					if tk.closed {
						closed++
					}
				}
				if len(got) != 30 || closed != 15 {
					t.Errorf("after resolving 15 alerts: %d tickets, %d closed; want 30, 15 closed", len(got), closed)
				}
			})
		}
	}
}
