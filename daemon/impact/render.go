package impact

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Formats of a report.
const (
	FormatMarkdown = "markdown"
	FormatTable    = "table"
	FormatJSON     = "json"
)

// Formats lists the formats Write accepts.
var Formats = []string{FormatMarkdown, FormatTable, FormatJSON}

// Write renders r in a format: markdown (for a pull-request comment), table
// (aligned text for a terminal) or json.
func Write(w io.Writer, r *Report, format string) error {
	switch format {
	case FormatMarkdown:
		return writeMarkdown(w, r)
	case FormatTable:
		return writeTable(w, r)
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return fmt.Errorf("impact: unknown format %q: want %s", format, strings.Join(Formats, ", "))
}

// NoChange reports whether r shows no billing change at all.
func (r *Report) NoChange() bool {
	return len(r.Lines) == 0 && len(r.UsageSync) == 0 && len(r.Unmapped) == 0 && len(r.NewlyBilled) == 0 && len(r.LeftBilling) == 0 && r.Integration == ""
}

// summary is the one-sentence total at the top of a report.
func (r *Report) summary() string {
	var parts []string
	switch lines := plural(len(r.Lines), "contract line changes", "contract lines change"); {
	case len(r.Lines) == 0:
	case r.Totals.Unknown == len(r.Lines):
		parts = append(parts, lines+" (monthly amounts not computed)")
	default:
		s := fmt.Sprintf("%s per month", signed(r.Totals.MonthlyDelta))
		var n []string
		if r.Totals.Up > 0 {
			n = append(n, fmt.Sprintf("%d up", r.Totals.Up))
		}
		if r.Totals.Down > 0 {
			n = append(n, fmt.Sprintf("%d down", r.Totals.Down))
		}
		if r.Totals.Unknown > 0 {
			n = append(n, fmt.Sprintf("%d not computed", r.Totals.Unknown))
		}
		s += fmt.Sprintf(" on %s", plural(len(r.Lines), "contract line", "contract lines"))
		if len(n) > 0 {
			s += " (" + strings.Join(n, ", ") + ")"
		}
		parts = append(parts, s)
	}
	if r.Totals.Held > 0 {
		s := plural(r.Totals.Held, "line is", "lines are") + " held for review and keep their current units, as the amounts count them, "
		if r.Totals.Held == 1 {
			s = "1 line is held for review and keeps its current units, as the amounts count them, "
		}
		// A hold that could bill twice (Held.PerLine) needs an approval
		// of each line: the summary must not tell the reader that one
		// `sync --approve` releases it.
		release := "`psa-syncd sync --approve`"
		// Lines held for a surge are released all at once by the review
		// code of the pass that holds them, which the report cannot give.
		const surgeRelease = "`psa-syncd sync --approve --surge CODE`, with the review code `psa-syncd plan` gives once applied"
		switch per, surge := r.Totals.HeldPerLine, r.Totals.HeldSurge; {
		case per > 0 && per == r.Totals.HeldApprovable:
			release = "an approval of each line (`psa-syncd sync --approve --customer ID --service ID`)"
		case surge > 0 && surge == r.Totals.HeldApprovable:
			release = "an approval of the surge (" + surgeRelease + ")"
		default:
			var notes []string
			if per > 0 {
				notes = append(notes, fmt.Sprintf("%d of them only by an approval of each line: `psa-syncd sync --approve --customer ID --service ID`", per))
			}
			if surge > 0 {
				notes = append(notes, fmt.Sprintf("%d of them held for a surge: %s", surge, surgeRelease))
			}
			if len(notes) > 0 {
				release += " (" + strings.Join(notes, "; ") + ")"
			}
		}
		switch r.Totals.HeldApprovable {
		case r.Totals.Held:
			s += "until " + release
		case 0:
			s += "and no `psa-syncd sync --approve` releases " + map[bool]string{true: "it", false: "them"}[r.Totals.Held == 1] + " (each line says why)"
		default:
			s += fmt.Sprintf("%d of them until %s; no approval releases the others (each line says why)", r.Totals.HeldApprovable, release)
		}
		// The amounts count the held units: the reader must also see
		// what the lines bill once released, the change the plan is for.
		if d := r.Totals.ReleasedMonthlyDelta; d != nil && *d != r.Totals.MonthlyDelta {
			s += fmt.Sprintf(", then %s per month in all", signed(*d))
			if r.Totals.releasedZeroed {
				s += " once the lines they wait on (on the contract the customer left, or of the service no mapping names any more) are set to 0"
			}
		}
		switch {
		case r.Totals.heldContract && movedReleasedByRead(r.System):
			s += fmt.Sprintf("; on %s, a line held because its customer moved to another contract is written by the next pass by itself once the line on the contract it left is set to 0 or that contract ended before the effective date", r.System.Title())
		case r.Totals.heldContract && r.System == psa.SystemKaseyaBMS:
			s += fmt.Sprintf("; on %s, a line held because its customer moved to another contract is written by the next pass by itself once the contract it left ended before the effective date", r.System.Title())
		}
		// previous_service: the pass holds a line while the customer's
		// line of a service no mapping with sync on names still bills,
		// whatever took that service's mapping away (heldText).
		const heldService = "a line held because psa-syncd's line of the customer's service that no product mapping names any more still bills (a product re-pointed to another service, its mapping removed, or its sync_enabled turned off)"
		switch {
		case r.Totals.heldService && movedReleasedByRead(r.System):
			s += fmt.Sprintf("; on %s, %s is written by the next pass by itself once that line is set to 0 or its contract ended before the effective date", r.System.Title(), heldService)
		case r.Totals.heldService && r.System == psa.SystemKaseyaBMS:
			s += fmt.Sprintf("; on %s, %s is written by the next pass by itself once that line's contract ended before the effective date", r.System.Title(), heldService)
		}
		if r.Totals.HeldMoved {
			s += "; until then, the usage of a product moved to another service bills on both the old and the new line"
		}
		parts = append(parts, s)
	}
	// A customer replacing another on the same contract lines starts,
	// the other stops and its usage reads as newly billed: the counts
	// say how many of them are such, the same usage still billed.
	starts, stops, replacing, replaced := 0, 0, 0, 0
	// What the lines of the customers whose usage sync stops go on
	// billing, no longer synced (SyncChange.KeepsBilling); "at least"
	// the known part when some line's amount is unknown.
	kept, keptPartial := 0.0, false
	for _, sc := range r.UsageSync {
		switch {
		case sc.Starts:
			starts++
			if sc.Replaces != "" {
				replacing++
			}
		default:
			stops++
			if sc.ReplacedBy != "" {
				replaced++
			}
			switch {
			case sc.ReplacedBy != "":
			case sc.KeepsBilling != nil:
				kept += *sc.KeepsBilling
				keptPartial = keptPartial || sc.KeepsBillingPartial
			default:
				keptPartial = true
			}
		}
	}
	of := func(n int, what string) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf(" (%d %s)", n, what)
	}
	if starts > 0 {
		parts = append(parts, "usage sync starts for "+plural(starts, "customer", "customers")+of(replacing, "replacing another customer on the same contract lines"))
	}
	if stops > 0 {
		s := "usage sync stops for " + plural(stops, "customer", "customers") + of(replaced, "replaced by another customer on the same contract lines")
		if kept != 0 {
			s += fmt.Sprintf(" (%s on billing %s per month at the units they keep, no longer synced)",
				map[bool]string{true: "its lines go", false: "their lines go"}[stops-replaced == 1], atLeast(round2(kept), keptPartial))
		}
		parts = append(parts, s)
	}
	if len(r.Unmapped) > 0 {
		parts = append(parts, plural(len(r.Unmapped), "usage item becomes", "usage items become")+" unmapped")
	}
	if len(r.NewlyBilled) > 0 {
		billed := 0
		for _, u := range r.NewlyBilled {
			if u.Replaces != "" {
				billed++
			}
		}
		parts = append(parts, plural(len(r.NewlyBilled), "usage item is", "usage items are")+" newly billed"+of(billed, "replacing another customer on the same contract lines, billed before"))
	}
	if len(r.LeftBilling) > 0 {
		parts = append(parts, plural(len(r.LeftBilling), "line psa-syncd set goes", "lines psa-syncd set go")+
			" on invoicing with no mapping after apply (set each to 0 or end it in the PSA; psa-syncd lists it as an orphaned line until then)")
	}
	switch r.Integration {
	case "off":
		parts = append(parts, "the integration is switched off: psa-syncd stops writing")
	case "on":
		parts = append(parts, "the integration is switched on")
	}
	return strings.Join(parts, "; ")
}

// maxMarkdown bounds the size of a Markdown report, in bytes: it is posted
// as a pull-request comment, and GitHub refuses a comment of more than
// 65,536 characters (the comment step fails and the comment of the last
// push stays). A report that would be larger leaves out the contract lines
// with the smallest monthly delta (markdownLines).
const maxMarkdown = 60000

func writeMarkdown(w io.Writer, r *Report) error {
	body := markdown(r, nil)
	if len(body) > maxMarkdown {
		body = markdown(r, markdownLines(r, len(body)-maxMarkdown))
	}
	_, err := io.WriteString(w, body)
	return err
}

// markdownRow is a contract line's row in the Markdown table.
func markdownRow(l Line) string {
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", md(customerLabel(l)), md(l.ContractID),
		md(serviceLabel(l, true)), quantity(l.Now), heldQuantity(l.Current, l.CurrentHeld), heldQuantity(l.Proposed, l.ProposedHeld), prices(l), deltaText(l.MonthlyDelta), md(l.Why))
}

// linesLeftOut is the note under a Markdown table that leaves out lines
// (at most this long, with the numbers).
const linesLeftOut = "\n*%d of %d contract lines are not shown, those with the smallest monthly Δ, to keep this comment within GitHub's limit; the totals above count them. `psa-syncd plan -terraform-plan` with `-format table` or `-format json` lists every line.*\n"

// markdownLines chooses the contract lines a Markdown report shows when the
// whole report is excess bytes too large: it leaves out the rows of the
// lines with the smallest monthly delta (of those with a known delta and
// no hold) until enough bytes are saved, so that the lines that change the
// invoices most, and those with a ? or a hold, stay.
func markdownLines(r *Report, excess int) []bool {
	order := make([]int, len(r.Lines))
	for i := range order {
		order[i] = i
	}
	weight := func(l Line) float64 {
		if l.MonthlyDelta == nil || l.ProposedHeld != nil || l.CurrentHeld != nil {
			return math.Inf(1)
		}
		return math.Abs(*l.MonthlyDelta)
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(weight(r.Lines[a]), weight(r.Lines[b])) })
	show := make([]bool, len(r.Lines))
	for i := range show {
		show[i] = true
	}
	saved := -len(fmt.Sprintf(linesLeftOut, len(r.Lines), len(r.Lines)))
	for _, i := range order {
		if saved >= excess {
			break
		}
		show[i] = false
		saved += len(markdownRow(r.Lines[i]))
	}
	return show
}

// markdown renders r in Markdown, with the contract lines show says (nil:
// every line).
func markdown(r *Report, show []bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### psa-sync billing impact\n\n%s, period %s, changes effective %s.\n\n", r.System.Title(), r.Period, r.EffectiveDate)
	if r.NoExport != "" {
		fmt.Fprintf(&b, "%s\n\n", md(noExportText(r.NoExport)))
	}
	if len(r.NotComputed) > 0 {
		fmt.Fprintf(&b, "> [!WARNING]\n> %s\n\n", incompleteText)
	}
	if r.NoChange() {
		b.WriteString("**No billing change.**")
		if len(r.NotComputed) > 0 {
			b.WriteString(" Some figures could not be computed (below).")
		} else if r.PlanChanges {
			b.WriteString(" The plan changes psa_* resources, but no contract line, usage sync or billed usage.")
		}
		b.WriteString("\n")
	} else {
		fmt.Fprintf(&b, "**%s.**\n", capitalize(r.summary()))
	}
	if len(r.NotComputed) > 0 {
		b.WriteString("\n**Not computed:**\n\n")
		for _, n := range r.NotComputed {
			fmt.Fprintf(&b, "- %s\n", md(n))
		}
	}
	if len(r.Lines) > 0 {
		b.WriteString("\n| Customer | Contract | Service | Now | Current mappings | Proposed | Unit price | Monthly Δ | Why |\n")
		b.WriteString("|---|---|---|--:|--:|--:|--:|--:|---|\n")
		left := 0
		for i, l := range r.Lines {
			if show != nil && !show[i] {
				left++
				continue
			}
			b.WriteString(markdownRow(l))
		}
		if left > 0 {
			fmt.Fprintf(&b, linesLeftOut, left, len(r.Lines))
		}
	}
	if len(r.UsageSync) > 0 {
		b.WriteString("\n#### Usage sync\n\n")
		for _, sc := range r.UsageSync {
			verb := "Stops"
			if sc.Starts {
				verb = "Starts"
			}
			fmt.Fprintf(&b, "- **%s** for %s: %s\n", verb, md(nameID(sc.CustomerName, sc.CustomerID)), md(sc.Why))
		}
	}
	usage := func(title string, list []UsageChange) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n#### %s\n\n| Kind | Id | Name | Customers | Quantity | Why |\n|---|---|---|--:|--:|---|\n", title)
		for _, u := range list {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %s |\n", u.Kind, md(u.ID), md(u.Name), usageCustomers(u), u.Quantity, md(u.Why))
		}
	}
	usage("Usage that becomes unmapped (reported, not billed)", r.Unmapped)
	usage("Usage newly billed", r.NewlyBilled)
	if len(r.LeftBilling) > 0 {
		b.WriteString("\n#### Lines left billing with no mapping\n\n| Customer | Contract | Service | Units | Since | Why |\n|---|---|---|--:|---|---|\n")
		for _, l := range r.LeftBilling {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s |\n", md(nameID(l.CustomerName, l.CustomerID)), md(l.ContractID), md(l.ServiceID), l.Quantity, l.Since, leftWhy(l))
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n#### Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", md(n))
		}
	}
	return b.String()
}

func writeTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "Billing impact for %s, period %s, changes effective %s\n\n", r.System.Title(), r.Period, r.EffectiveDate)
	if r.NoExport != "" {
		fmt.Fprintf(w, "%s\n\n", plain(noExportText(r.NoExport)))
	}
	if len(r.NotComputed) > 0 {
		fmt.Fprintf(w, "WARNING: %s\n\n", strings.ReplaceAll(incompleteText, "`", ""))
	}
	if r.NoChange() {
		fmt.Fprintln(w, "No billing change.")
		if len(r.NotComputed) > 0 {
			fmt.Fprintln(w, "Some figures could not be computed:")
		}
	} else {
		fmt.Fprintf(w, "%s.\n", strings.ReplaceAll(capitalize(r.summary()), "`", ""))
	}
	for _, n := range r.NotComputed {
		fmt.Fprintf(w, "Not computed: %s\n", plain(n))
	}
	if len(r.Lines) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CUSTOMER\tCONTRACT\tSERVICE\tNOW\tCURRENT\tPROPOSED\tUNIT PRICE\tMONTHLY DELTA\tWHY")
		for _, l := range r.Lines {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", plain(customerLabel(l)), plain(l.ContractID), plain(serviceLabel(l, false)),
				quantity(l.Now), heldQuantity(l.Current, l.CurrentHeld), heldQuantity(l.Proposed, l.ProposedHeld), prices(l), deltaText(l.MonthlyDelta), plain(l.Why))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.UsageSync) > 0 {
		fmt.Fprintln(w, "\nUsage sync:")
		for _, sc := range r.UsageSync {
			verb := "stops"
			if sc.Starts {
				verb = "starts"
			}
			fmt.Fprintf(w, "  %s %s: %s\n", verb, plain(nameID(sc.CustomerName, sc.CustomerID)), plain(sc.Why))
		}
	}
	for _, s := range []struct {
		title string
		list  []UsageChange
	}{{"Usage that becomes unmapped (reported, not billed):", r.Unmapped}, {"Usage newly billed:", r.NewlyBilled}} {
		if len(s.list) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", s.title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tID\tNAME\tCUSTOMERS\tQUANTITY\tWHY")
		for _, u := range s.list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", u.Kind, plain(u.ID), plain(u.Name), usageCustomers(u), u.Quantity, plain(u.Why))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.LeftBilling) > 0 {
		fmt.Fprintln(w, "\nLines left billing with no mapping:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CUSTOMER\tCONTRACT\tSERVICE\tUNITS\tSINCE\tWHY")
		for _, l := range r.LeftBilling {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", plain(nameID(l.CustomerName, l.CustomerID)), plain(l.ContractID), plain(l.ServiceID), l.Quantity, l.Since, leftWhy(l))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note: %s\n", plain(n))
	}
	return nil
}

// incompleteText heads a report with figures it could not compute, so that
// a reviewer does not read a `?` or a missing amount as no change. It does
// not fail the command: a pull request from a fork runs without credentials
// by design, and what the plan and the export tell is still worth posting.
const incompleteText = "Incomplete report: some figures could not be computed (see Not computed). A `?` is a figure this report does not know, not a zero: do not approve billing changes from it alone."

// noExportText says that the report compares the plan with no mappings at
// all, because the store holds no export yet.
func noExportText(store string) string {
	return "No mapping export in " + store + " yet: the current mappings are taken as empty, so everything this plan maps is new. The first apply writes the export."
}

// serviceLabel names a line's service; a service the plan creates is shown
// as such, since its id is known only after apply.
func serviceLabel(l Line, markdown bool) string {
	if l.NewService {
		if markdown {
			return fmt.Sprintf("new service *%s*", l.ServiceName)
		}
		return fmt.Sprintf("new service %q (id known after apply)", l.ServiceName)
	}
	return nameID(l.ServiceName, l.ServiceID)
}

// customerLabel names a line's customer; a line that the proposed mappings
// set through another customer than the current ones names both, the
// current one first.
func customerLabel(l Line) string {
	switch {
	case l.CurrentCustomerID == "":
		return nameID(l.CustomerName, l.CustomerID)
	case l.CurrentCustomerName == l.CustomerName && l.CustomerName != "":
		return fmt.Sprintf("%s (%s → %s)", l.CustomerName, l.CurrentCustomerID, l.CustomerID)
	}
	return nameID(l.CurrentCustomerName, l.CurrentCustomerID) + " → " + nameID(l.CustomerName, l.CustomerID)
}

func nameID(name, id string) string {
	if name == "" || name == id {
		return id
	}
	return name + " (" + id + ")"
}

func quantity(q *int64) string {
	if q == nil {
		return "?"
	}
	return strconv.FormatInt(*q, 10)
}

// heldQuantity shows what a pass leaves on a line, marked when the pass
// holds the line's change for review (it keeps q).
func heldQuantity(q *int64, h *Held) string {
	if h == nil {
		return quantity(q)
	}
	return quantity(q) + " (held)"
}

// prices shows the unit price, or how it changes. The price of a side
// whose quantity is 0 does not matter (a new service has none before).
func prices(l Line) string {
	a, b := priceText(l.UnitPrice), priceText(l.ProposedUnitPrice)
	per := ""
	if l.BillingPeriod != "" {
		per = " per " + periodNames[l.BillingPeriod]
	}
	switch {
	case l.Current != nil && *l.Current == 0:
		return b + per
	case l.Proposed != nil && *l.Proposed == 0:
		return a + per
	case a == b:
		return a + per
	}
	return a + " → " + b + per
}

// periodNames name the billing periods other than a month after "per".
var periodNames = map[psa.BillingPeriod]string{
	psa.BillingPeriodQuarterly:  "quarter",
	psa.BillingPeriodSemiAnnual: "half-year",
	psa.BillingPeriodYearly:     "year",
}

func priceText(p *float64) string {
	if p == nil {
		return "?"
	}
	return money(*p)
}

func money(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

func signed(f float64) string {
	if f > 0 {
		return "+" + money(f)
	}
	return money(f)
}

func deltaText(d *float64) string {
	if d == nil {
		return "?"
	}
	return signed(*d)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// plain replaces the control characters of a name in the table format (a
// tab, a line break, a terminal escape sequence's ESC) with spaces, so that
// it keeps its row and column and never reaches the terminal.
func plain(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// md escapes the characters that would break a Markdown table cell or make
// markup of a name: a line break (a carriage return ends a line too), a
// pipe, HTML, and the brackets of a link or an image. The names come from
// the PSA and the usage source, and the report is posted publicly. A zero
// width space after @ and # keeps GitHub from turning "@team" into a
// mention (which notifies) and "#12" into a reference to an issue (which
// shows in its timeline), as Dependabot does in the notes it quotes.
func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\r\n", " ", "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;",
		`\`, `\\`, "[", `\[`, "]", `\]`, "@", "@&#8203;", "#", "#&#8203;").Replace(s)
}

// leftWhy says why a line is left billing (Report.LeftBilling).
func leftWhy(l usage.OrphanedLine) string {
	if l.Reason == usage.OrphanCustomer {
		return "no customer mapping names its contract after apply"
	}
	return "no product mapping names its service after apply"
}

// usageCustomers is the customers column of a usage table: how many
// customers a product's usage is of (empty for a customer's own usage).
func usageCustomers(u UsageChange) string {
	if u.Kind != "product" {
		return ""
	}
	return strconv.Itoa(u.Customers)
}
