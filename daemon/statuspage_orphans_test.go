package daemon

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// The status page lists the orphaned lines (psa-syncd set them, no mapping
// makes it write them any more), with why and what to do, and has no such
// section without them; GET /api/v1/unmapped has them under orphaned.
func TestStatusPage_orphanedLines(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	ui := newUIClient(t, e.d)
	if body := ui.do(http.MethodGet, "/", nil).Body.String(); strings.Contains(body, `id="orphaned"`) {
		t.Error("GET / lists orphaned lines before any pass found one")
	}
	rep := usage.UnmappedReport{Time: time.Now().UTC(), RunID: 3, Unmapped: usage.Unmapped{
		Orphaned: []usage.OrphanedLine{
			{Reason: usage.OrphanService, CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684001", ServiceID: "30000012", Quantity: 5, Read: true, Since: "2026-10-01", RunID: 2},
			{Reason: usage.OrphanCustomer, CustomerID: "cust-globex", ContractID: "29684002", ServiceID: "30000013", Quantity: 2, Since: "2026-09-01", RunID: 1}},
	}}
	if err := e.d.db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	body := ui.do(http.MethodGet, "/", nil).Body.String()
	for _, want := range []string{"Orphaned lines", `id="orphaned"`, "cust-acme", "30000012", "as read", "2026-10-01", "no product mapping names the service",
		"29684002", "psa-syncd's ledger", "no customer mapping names the contract", "Set each to 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	got, err := e.d.LastUnmapped()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	if !strings.Contains(string(b), `"orphaned":[{"reason":"service","customer_id":"cust-acme"`) {
		t.Errorf("unmapped report = %s, want orphaned lines", b)
	}
}
