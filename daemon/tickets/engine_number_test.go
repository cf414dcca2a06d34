package tickets_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// An Autotask create read the new ticket back for its number (its answer
// names only the ticket's id): a third request for every new alert, after
// the search and the create, of the tenant's hourly budget. The number is
// learnt when the ticket is next read (here, before its close), and the
// record holds it from then on.
func TestEngine_autotaskCreateNotReadBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engine(routings[psa.SystemAutotask])
	e.psaSim.ResetRequests()
	a := e.ticketed(eng, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	var sent []string
	for _, r := range e.psaSim.Requests() {
		if strings.Contains(r.Path, "/Tickets") && !strings.Contains(r.Path, "/entityInformation/") { // picklists are kept
			sent = append(sent, r.Method+" "+r.Path)
		}
	}
	if len(sent) != 2 {
		t.Errorf("a new alert cost %d ticket requests %q, want 2 (the search and the create)", len(sent), sent)
	}
	records := func() []string {
		t.Helper()
		recs, err := e.db.TicketRecords("sophos", acme)
		if err != nil || len(recs) != 1 {
			t.Fatalf("ticket records = %+v, %v; want one", recs, err)
		}
		return []string{recs[0].TicketID, recs[0].Number}
	}
	if r := records(); r[0] == "" || r[1] != "" {
		t.Errorf("record after the create: ticket %q, number %q; want the ticket's id, no number yet", r[0], r[1])
	}
	e.sophos.ResolveAlert(acme, a.ID)
	if cr := e.pass(eng).Customers[0]; cr.Closed != 1 || cr.Err != nil {
		t.Fatalf("pass after the alert was resolved = %+v, want its ticket closed", cr)
	}
	if r := records(); !regexp.MustCompile(`^T\d{8}\.\d{4}$`).MatchString(r[1]) {
		t.Errorf("record after the close read the ticket: number %q, want the ticket's number", r[1])
	}
}
