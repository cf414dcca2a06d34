package main

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestDemo_resolvedAlertClosesItsTicket runs the ticket steps of `make
// demo` (examples/demo/run.sh) with the demo's configuration and fixtures:
// Acme's two open alerts become two tickets, and once the simulator
// resolves one, the next ticket pass closes its ticket, as the demo's
// section "its ticket is closed" and README say. With the default
// policies.ticket_resolve_after (10m) the ticket stayed open, and the demo
// printed an open ticket under that heading.
func TestDemo_resolvedAlertClosesItsTicket(t *testing.T) {
	t.Parallel()
	demo := filepath.Join("..", "..", "..", "examples", "demo")
	vars := startSimulate(t, "-psa.fixture", filepath.Join(demo, "autotask.json"), "-sophos.fixture", filepath.Join(demo, "sophos.json"))
	dir := t.TempDir()
	cfg := string(must(os.ReadFile(filepath.Join(demo, "psa-syncd.yml"))))
	cfg = strings.NewReplacer("@PSA_SYSTEM@", "autotask", "@SOPHOS_AUTH_URL@", vars["unexported SOPHOS_AUTH_URL"],
		"@SOPHOS_API_URL@", vars["unexported SOPHOS_API_URL"]).Replace(cfg)
	writeFile(t, filepath.Join(dir, "psa-syncd.yml"), cfg)
	writeFile(t, filepath.Join(dir, "api-token"), "demo-token\n")
	// The export's part that examples/demo/main.tf and psa/autotask.tf
	// write for tickets: Acme (company 174, contract 29684000) with
	// ticket_sync, and the routing their data sources look up.
	base, err := url.Parse(vars["PSA_AUTOTASK_BASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	doc := export.New(psa.SystemAutotask, base.Host)
	doc.Revision = 1
	doc.Integration = &export.Integration{Enabled: true, Schedule: "daily 02:00", Timezone: "UTC"}
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b", CustomerName: "Acme",
		CompanyID: "174", ContractID: "29684000", UsageSync: true, TicketSync: true})
	doc.Tickets = &export.Tickets{Enabled: true, QueueID: "29683482", ClosedStatusID: "5", Priorities: map[string]string{"high": "1", "medium": "2"},
		MinSeverity: "medium", TitleFormat: "[Sophos] {Severity}: {description}", OnResolve: "close", OnReturn: "new", MaxPerPass: 50, MaxPerCustomer: 10}
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "psa-mappings.json"), string(data))

	tickets := func() string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"tickets", "-config.file", filepath.Join(dir, "psa-syncd.yml"), "-log.level", "warn"}, &stdout, &stderr,
			func(k string) string { return vars[k] }); code != 0 {
			t.Fatalf("psa-syncd tickets: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	if out := tickets(); !strings.Contains(out, "created 2,") {
		t.Fatalf("the demo's first ticket pass:\n%s\nwant Acme's two alerts created as tickets", out)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete,
		strings.TrimSuffix(vars["unexported SOPHOS_API_URL"], "/")+"/_sim/sophos/alerts/718b6047-2fbc-b4f4-1a43-45ee42bf5d3b/3b0f6a52-8d1e-4c7a-9f21-6e5d4c3b2a10", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("resolving the alert in the Sophos simulator: %s", resp.Status)
	}
	if out := tickets(); !strings.Contains(out, "closed 1,") {
		t.Errorf("the demo's ticket pass after the alert was resolved:\n%s\nwant its ticket closed", out)
	}
}
