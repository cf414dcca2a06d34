package impact_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestWrite_markdownNames: the names in a report come from the mappings,
// the PSA and the usage source (a vendor's customer and product names,
// errors that quote an answer), and the report is posted as a pull-request
// comment. A name with a carriage return, a link or an image must neither
// end a table row early nor turn into markup: every row keeps its cells,
// and no link or image is made.
func TestWrite_markdownNames(t *testing.T) {
	t.Parallel()
	hostile := "Acme\r| injected | row |\r\n[Approve: no billing change](https://evil.example) ![x](https://evil.example/p.png) <b>x</b> \\[y](https://evil.example)"
	q, p := int64(3), 4.5
	rep := &impact.Report{System: psa.SystemAutotask, Period: "2026-11", EffectiveDate: "2026-11-01", PlanChanges: true,
		Lines: []impact.Line{{Source: "sophos", CustomerID: "acme", CustomerName: hostile, ContractID: "1", ServiceID: "2", ServiceName: hostile,
			Now: &q, Current: &q, Proposed: &q, UnitPrice: &p, ProposedUnitPrice: &p, MonthlyDelta: new(float64), Why: "new product mapping: " + hostile}},
		UsageSync: []impact.SyncChange{{Source: "sophos", CustomerID: "acme", CustomerName: hostile, Starts: true, Why: "new customer mapping"}},
		Unmapped:  []impact.UsageChange{{Kind: "customer", ID: "evil", Name: hostile, Quantity: 1, Why: "no customer mapping"}},
		Notes:     []string{"Usage problem: " + hostile},
	}
	var buf bytes.Buffer
	if err := impact.Write(&buf, rep, impact.FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	if strings.Contains(md, "\r") {
		t.Errorf("the Markdown report holds a carriage return, which ends a line (and a table row) in Markdown:\n%q", md)
	}
	cells := regexp.MustCompile(`(^|[^\\])\|`)
	want := 0
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "| Customer |") || strings.HasPrefix(line, "| Kind |"):
			want = len(cells.FindAllString(line, -1))
		case strings.HasPrefix(line, "|"):
			if got := len(cells.FindAllString(line, -1)); got != want {
				t.Errorf("table row with %d cell separators, want %d: %q", got, want, line)
			}
		case want > 0 && line != "" && !strings.HasPrefix(line, "#"):
			t.Errorf("a table row was broken into a line of its own: %q", line)
		}
		if line == "" {
			want = 0
		}
	}
	// An unescaped [ opens a link or an image.
	if m := regexp.MustCompile(`(^|[^\\])(\\\\)*\[`).FindString(md); m != "" {
		t.Errorf("the Markdown report holds an unescaped [ (%q), which makes a link or an image:\n%s", m, md)
	}
}
