package tickets_test

import (
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// An alert whose description holds characters outside the Basic
// Multilingual Plane (an emoji in a file or device name) still gets its
// ticket: Autotask and ConnectWise count a field's length in UTF-16 code
// units, in which such a character counts two, so a title or description
// cut to the limit in characters was refused (a create refused every day,
// and the alert never ticketed).
func TestEngine_textLimitsInUTF16(t *testing.T) {
	t.Parallel()
	forEachSystem(t, func(t *testing.T, e *env) {
		eng := e.engine(routings[e.system])
		a := e.ticketed(eng, sophostest.Alert{Severity: "high", Description: "Ransomware found in " + strings.Repeat("📁", 5000) + ` at C:\evil.exe`,
			ManagedAgent: &sophostest.ManagedAgent{ID: "agent-042", Type: "computer"}})
		tks := e.tickets()
		if len(tks) != 1 || !strings.HasPrefix(tks[0].title, "[Sophos] High: Ransomware found in 📁") || !strings.Contains(tks[0].title, "…") {
			t.Fatalf("tickets = %+v, want one, its title cut", tks)
		}
		if e.system != psa.SystemAutotask {
			return
		}
		d := e.psaSim.Autotask().Tickets()[0].Description
		if n := len(utf16.Encode([]rune(d))); n > psa.MaxTicketDescription {
			t.Errorf("description of %d UTF-16 code units, over %d", n, psa.MaxTicketDescription)
		}
		for _, want := range []string{"Ransomware found in 📁", `📁 at C:\evil.exe`, "characters left out", "Alert id: " + a.ID,
			"do not edit the external reference (sc:" + a.ID + ")."} {
			if !strings.Contains(d, want) {
				t.Errorf("description has no %q", want)
			}
		}
	})
}
