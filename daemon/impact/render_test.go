package impact_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// namedReport returns a report whose every name, reason and note holds
// name, as names from the mappings, the PSA and the usage source do.
func namedReport(name string) *impact.Report {
	q, p := int64(3), 4.5
	return &impact.Report{System: psa.SystemAutotask, Period: "2026-11", EffectiveDate: "2026-11-01", PlanChanges: true,
		Lines: []impact.Line{{Source: "sophos", CustomerID: "acme", CustomerName: name, ContractID: "1", ServiceID: "2", ServiceName: name,
			Now: &q, Current: &q, Proposed: &q, UnitPrice: &p, ProposedUnitPrice: &p, MonthlyDelta: new(float64), Why: "new product mapping: " + name}},
		UsageSync: []impact.SyncChange{{Source: "sophos", CustomerID: "acme", CustomerName: name, Starts: true, Why: "new customer mapping"}},
		Unmapped:  []impact.UsageChange{{Kind: "customer", ID: "evil", Name: name, Quantity: 1, Why: "no customer mapping"}},
		Notes:     []string{"Usage problem: " + name},
	}
}

// TestWrite_markdownNames: the names in a report come from the mappings,
// the PSA and the usage source (a vendor's customer and product names,
// errors that quote an answer), and the report is posted as a pull-request
// comment. A name with a carriage return, a link or an image must neither
// end a table row early nor turn into markup: every row keeps its cells,
// and no link or image is made.
func TestWrite_markdownNames(t *testing.T) {
	t.Parallel()
	hostile := "Acme\r| injected | row |\r\n[Approve: no billing change](https://evil.example) ![x](https://evil.example/p.png) <b>x</b> \\[y](https://evil.example) (@acme-corp/billing, store #42)"
	rep := namedReport(hostile)
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
	// GitHub notifies @user and @org/team and links #12 to an issue or a
	// pull request of the repository.
	if m := regexp.MustCompile(`(^|[^\w&])(@[0-9A-Za-z]|#[0-9])`).FindString(md); m != "" {
		t.Errorf("the Markdown report holds %q, which GitHub turns into a mention or an issue reference:\n%s", m, md)
	}
	// An unescaped [ opens a link or an image.
	if m := regexp.MustCompile(`(^|[^\\])(\\\\)*\[`).FindString(md); m != "" {
		t.Errorf("the Markdown report holds an unescaped [ (%q), which makes a link or an image:\n%s", m, md)
	}
}

// TestWrite_markdownFitsComment: a plan that touches every customer (a
// price change of the main service, for an MSP with a thousand customers)
// gives a line per customer. GitHub refuses a comment of more than 65,536
// characters, so the comment step would fail and leave the report of the
// previous push in the pull request. The Markdown report stays within the
// limit: it leaves out the lines with the smallest monthly delta, keeps
// those with a ? and the largest deltas, and says how many it left out.
func TestWrite_markdownFitsComment(t *testing.T) {
	t.Parallel()
	q, p := int64(40), 4.5
	rep := &impact.Report{System: psa.SystemAutotask, Period: "2026-11", EffectiveDate: "2026-11-01", PlanChanges: true}
	for i := range 1000 {
		d := 0.0
		l := impact.Line{Source: "sophos", CustomerID: fmt.Sprintf("customer-%04d", i), CustomerName: fmt.Sprintf("Customer %04d Ltd", i),
			ContractID: strconv.Itoa(29684000 + i), ServiceID: "30000000", ServiceName: "Sophos Intercept X Advanced",
			Now: &q, Current: &q, Proposed: &q, UnitPrice: &p, ProposedUnitPrice: &p, PriceFrom: impact.PriceFromLine, MonthlyDelta: &d,
			Why: "service price 4.50 → 5.00 applies to new lines only; this line keeps its own price"}
		switch i {
		case 500:
			removed := -1800.0
			l.MonthlyDelta, l.Why = &removed, "customer mapping removed"
		case 700:
			l.MonthlyDelta, l.Why = nil, "cannot be computed"
		}
		rep.Lines = append(rep.Lines, l)
	}
	rep.Totals = impact.Totals{MonthlyDelta: -1800, Down: 1, Unknown: 1}
	var buf bytes.Buffer
	if err := impact.Write(&buf, rep, impact.FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	if n := utf8.RuneCountInString(md); n > 65536 {
		t.Fatalf("the Markdown report has %d characters; GitHub refuses a comment of more than 65,536", n)
	}
	for _, want := range []string{"Customer 0500 Ltd (customer-0500) | 29684500 |", "Customer 0700 Ltd (customer-0700) | 29684700 |", "-1800.00 per month on 1000 contract lines",
		"contract lines are not shown, those with the smallest monthly Δ"} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown report lacks %q", want)
		}
	}
}

// TestWrite_tableNames: the table format is for a terminal or a job log. A
// name with a tab, a line break or a terminal escape sequence must neither
// shift the columns, split a row, nor reach the terminal.
func TestWrite_tableNames(t *testing.T) {
	t.Parallel()
	hostile := "Acme\tLtd\r\nsecond line\x1b[2K\x1b[1A"
	rep := namedReport(hostile)
	var buf bytes.Buffer
	if err := impact.Write(&buf, rep, impact.FormatTable); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.ContainsAny(out, "\t\r\x1b") || strings.Contains(out, "\nsecond line") {
		t.Errorf("the table report passes a tab, a line break or an escape sequence of a name on:\n%q", out)
	}
}

// TestWrite_tableUsageCustomers: the text report's usage tables give a
// product's customer count, as the Markdown's Customers column does: the
// "Why" of a newly billed product counts the customers that stay unbilled,
// which reads only next to the total's.
func TestWrite_tableUsageCustomers(t *testing.T) {
	t.Parallel()
	rep := namedReport("Acme")
	rep.NewlyBilled = []impact.UsageChange{{Kind: "product", ID: "MDR-MSP", Name: "MDR", Customers: 3, Quantity: 21, Why: "mapped by this plan"}}
	var buf bytes.Buffer
	if err := impact.Write(&buf, rep, impact.FormatTable); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []*regexp.Regexp{regexp.MustCompile(`KIND +ID +NAME +CUSTOMERS +QUANTITY +WHY`), regexp.MustCompile(`product +MDR-MSP +MDR +3 +21 +mapped by this plan`),
		regexp.MustCompile(`customer +evil +Acme +1 +no customer mapping`)} {
		if !want.MatchString(out) {
			t.Errorf("table report does not match %s:\n%s", want, out)
		}
	}
}
