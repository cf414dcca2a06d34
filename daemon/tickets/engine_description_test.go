package tickets_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// A description longer than Autotask's 8,000 characters keeps what
// identifies the alert: a long alert description is cut in the middle,
// not the device link and alert id after it, and a large summary lists
// whole alert lines and says how many it left out.
func TestEngine_longDescriptionKeepsIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
	long := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware found: " + strings.Repeat("x", 20000) + " at C:\\evil.exe",
		ManagedAgent: &sophostest.ManagedAgent{ID: "agent-042", Type: "computer"}, RaisedAt: "2026-11-15T09:00:00.000"})
	var storm []sophostest.Alert
	for i := range 150 {
		storm = append(storm, e.sophos.AddAlert(acme, sophostest.Alert{Severity: "medium", Type: "Event::Endpoint::OutOfDate",
			Description: fmt.Sprintf("PC-%03d has not updated its protection for three days; check the device's connectivity", i),
			RaisedAt:    fmt.Sprintf("2026-11-15T09:%02d:00.000", 1+i%59)}))
	}
	if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Summarised != 150 {
		t.Fatalf("pass = %+v, want the long alert's ticket and a summary of 150", tot)
	}
	tks := e.psaSim.Autotask().Tickets()
	if len(tks) != 2 {
		t.Fatalf("%d tickets, want 2", len(tks))
	}
	for _, tk := range tks {
		d := tk.Description
		if n := utf8.RuneCountInString(d); n > psa.MaxTicketDescription {
			t.Errorf("ticket %q: description of %d characters, over %d", tk.Title, n, psa.MaxTicketDescription)
		}
		if !strings.HasSuffix(d, "do not edit the external reference ("+tk.ExternalID+").") &&
			!strings.HasSuffix(d, "do not edit the external reference.") {
			t.Errorf("ticket %q: description ends %q, want the managed-by line", tk.Title, d[max(len(d)-200, 0):])
		}
		if strings.Contains(tk.Title, "Alert storm") {
			if !strings.Contains(d, "(alert "+storm[0].ID+")") || !strings.Contains(d, "more alerts, not listed here") {
				t.Errorf("summary description ends %q, want the first alerts listed and how many more", d[max(len(d)-400, 0):])
			}
			lines := strings.Split(d, "\n")
			for _, l := range lines {
				if strings.HasPrefix(l, "- Medium") && !strings.HasSuffix(l, ")") {
					t.Errorf("summary line cut: %q", l)
				}
			}
			continue
		}
		for _, want := range []string{"Malware found: xxx", "xxx at C:\\evil.exe", "characters left out",
			"Device: https://central.sophos.com/manage/endpoint/devices/computers/agent-042/summary", "Alert id: " + long.ID} {
			if !strings.Contains(d, want) {
				t.Errorf("alert ticket description has no %q", want)
			}
		}
	}
}
