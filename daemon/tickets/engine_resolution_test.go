package tickets_test

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// A technician's resolution on an Autotask ticket survives psa-syncd's
// close: Autotask takes the close's "Alert resolved" note in the ticket's
// resolution, one field that a PATCH replaces whole, so the close wrote
// over what the technician had written there (what was done, often in
// the customer's completion e-mail). The note now follows it, without a
// request more: the ticket is read before it is closed anyway.
func TestEngine_closeKeepsTechnicianResolution(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	a := e.ticketed(eng, sophostest.Alert{Severity: "high", Description: "Ransomware behaviour on PC-042"})
	tk := e.psaSim.Autotask().Tickets()[0]
	const tech = "Reimaged PC-042 and restored the user's files from last night's backup."
	e.psaSim.Autotask().SetTicketResolution(tk.ID, tech)

	e.sophos.ResolveAlert(acme, a.ID)
	gets := len(e.psaSim.Requests())
	if tot := e.pass(eng).Totals(); tot.Closed != 1 || tot.Err != nil {
		t.Fatalf("pass after resolving = %+v, want the ticket closed", tot)
	}
	if n := len(e.psaSim.Requests()) - gets; n != 2 {
		t.Errorf("the close took %d requests, want 2 (the read before it and the PATCH)", n)
	}
	got := e.psaSim.Autotask().Tickets()[0]
	if got.Status != "Complete" || !strings.HasPrefix(got.Resolution, tech+"\n\n") || !strings.Contains(got.Resolution, "resolved in Sophos Central") {
		t.Errorf("ticket after the close: status %q, resolution %q; want Complete, the technician's resolution, then psa-syncd's note", got.Status, got.Resolution)
	}
}
