package impact

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestRound2 rounds amounts to cents as a person would, halves away from
// zero, also where the binary product lies just under the half.
func TestRound2(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want float64 }{
		{3 * 0.095, 0.29}, {-3 * 0.095, -0.29}, {1.005, 1.01}, {0.284, 0.28}, {2.675, 2.68},
		{12345.675, 12345.68}, {0, 0}, {-0.001, 0}, {225, 225},
	} {
		if got := round2(tt.in); got != tt.want {
			t.Errorf("round2(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestHeldText_says why a line is held: a line held because its billing
// period is posted, or because psa-syncd wrote it from a later date, is not
// held because its units change later in the month, and the summary does
// not promise that `sync --approve` releases lines no approval releases; a
// line the guard holds names the guard of its direction.
func TestHeldText_saysWhy(t *testing.T) {
	t.Parallel()
	c := &compare{usageKnown: true}
	for _, tt := range []struct {
		hold, want string
		desired    int
		approvable bool
	}{
		{"", "held for review (decrease guard): stays at 28 until `psa-syncd sync --approve`, which sets 3", 3, true},
		{"", "held for review (increase guard): stays at 28 until `psa-syncd sync --approve`, which sets 28000", 28000, true},
		{"stale_approval", "until `psa-syncd sync --approve`, which sets 3", 3, true},
		{"posted", "already approved and posted (invoiced)", 3, false},
		{"later_write", "psa-syncd already changed it from a later date", 3, false},
		{"later_change", "its units change again later in the billing month", 3, false},
		{"previous_service", "no product mapping names any more (a product re-pointed to another service, its mapping removed, or its sync_enabled turned off) still bills", 3, true},
		// A surge's lines are released by the review code of the pass
		// that holds them, which the report cannot give.
		{"surge", "held for review (surge guard: many lines rise sharply at once, as when the vendor counts twice): stays at 28 until an approval of the surge (`psa-syncd sync --approve --surge CODE`, with the review code `psa-syncd plan` gives once applied) or of this line, which sets 56", 56, true},
	} {
		var ch usage.Change
		js := fmt.Sprintf(`{"action":"held","current":28,"desired":%d,"hold":%q}`, tt.desired, tt.hold)
		if err := json.Unmarshal([]byte(js), &ch); err != nil {
			t.Fatal(err)
		}
		now := int64(28)
		q, h := c.quantity(true, ch, &now)
		if q == nil || *q != 28 || h == nil {
			t.Fatalf("quantity(%s) = %v, %+v, want 28 and a hold", js, q, h)
		}
		if got := heldText(h, *q, false, psa.SystemAutotask); !strings.Contains(got, tt.want) || h.Approvable != tt.approvable {
			t.Errorf("hold %q: heldText = %q (approvable %v), want it to say %q (approvable %v)", tt.hold, got, h.Approvable, tt.want, tt.approvable)
		}
	}
	for _, tt := range []struct {
		held, approvable, perLine int
		want, not                 string
		surge                     int
	}{
		{2, 2, 0, "until `psa-syncd sync --approve`", "no approval", 0},
		{1, 0, 0, "no `psa-syncd sync --approve` releases it", "until `psa-syncd", 0},
		{3, 1, 0, "1 of them until `psa-syncd sync --approve`; no approval releases the others", "", 0},
		// Lines that only an approval of each line releases
		// (line_missing, stale_read, previous_contract): the summary
		// does not promise that one `sync --approve` does.
		{2, 2, 2, "until an approval of each line (`psa-syncd sync --approve --customer ID --service ID`)", "until `psa-syncd sync --approve`", 0},
		{3, 3, 1, "until `psa-syncd sync --approve` (1 of them only by an approval of each line: `psa-syncd sync --approve --customer ID --service ID`)", "", 0},
		{3, 2, 1, "2 of them until `psa-syncd sync --approve` (1 of them only by an approval of each line", "", 0},
		// Lines held for a surge (surge in the struct's last field).
		{8, 8, 0, "until an approval of the surge (`psa-syncd sync --approve --surge CODE`, with the review code `psa-syncd plan` gives once applied)", "until `psa-syncd sync --approve`", 8},
		{4, 4, 1, "until `psa-syncd sync --approve` (1 of them only by an approval of each line: `psa-syncd sync --approve --customer ID --service ID`; 2 of them held for a surge: `psa-syncd sync --approve --surge CODE`", "", 2},
	} {
		r := &Report{Totals: Totals{Held: tt.held, HeldApprovable: tt.approvable, HeldPerLine: tt.perLine, HeldSurge: tt.surge}}
		got := r.summary()
		if !strings.Contains(got, tt.want) || (tt.not != "" && strings.Contains(got, tt.not)) {
			t.Errorf("summary with %d held, %d approvable, %d by line = %q, want %q and not %q", tt.held, tt.approvable, tt.perLine, got, tt.want, tt.not)
		}
	}
	// The totals count the lines held for a surge apart (held_surge).
	lines := []Line{{ProposedHeld: &Held{Hold: usage.HoldSurge, Approvable: true}}, {ProposedHeld: &Held{Hold: usage.HoldSurge, Approvable: true}},
		{ProposedHeld: &Held{Hold: usage.HoldMoved, Approvable: true}}, {ProposedHeld: &Held{Hold: usage.HoldApproval, Approvable: true}}}
	if got := total(lines); got.Held != 4 || got.HeldApprovable != 4 || got.HeldPerLine != 1 || got.HeldSurge != 2 {
		t.Errorf("total of 2 surge, 1 previous_contract and 1 approval hold = %+v, want 4 held, 4 approvable, 1 per line, 2 surge", got)
	}
	for _, tt := range []struct {
		hold       string
		approvable bool
		want       bool
	}{
		{usage.HoldMoved, true, true}, {usage.HoldVanished, true, true}, {usage.HoldStaleRead, true, true},
		{usage.HoldApproval, true, false}, {usage.HoldStaleApproval, true, false}, {usage.HoldPosted, false, false},
	} {
		if got := (&Held{Hold: tt.hold, Approvable: tt.approvable}).PerLine(); got != tt.want {
			t.Errorf("Held{%s}.PerLine() = %v, want %v", tt.hold, got, tt.want)
		}
	}
}

// TestHeldText_previousContractByPSA: on Autotask and ConnectWise PSA a
// pass writes a line held as previous_contract by itself once the old
// contract's line reads 0 or the contract ended before the effective date
// (usage.Engine.movedLine reads it): the line's text and the summary say
// so, and do not send the operator to approve each line as the only way.
// On Kaseya BMS, whose lines psa-syncd cannot read, the contract's end
// does, and an approval of the line once the old line is 0.
func TestHeldText_previousContractByPSA(t *testing.T) {
	t.Parallel()
	h := &Held{Hold: usage.HoldMoved, Approvable: true, Units: 27}
	for _, tt := range []struct {
		sys       psa.System
		want, not string
	}{
		{psa.SystemAutotask, "stays at 0 until that line is set to 0 or that contract ended before the effective date in Autotask, after which the next pass writes this one by itself, or until `psa-syncd sync --approve --customer ID --service ID` of this line; either sets 27", "cannot read"},
		{psa.SystemConnectWise, "ended before the effective date in ConnectWise PSA, after which the next pass writes this one by itself", "cannot read"},
		{psa.SystemKaseyaBMS, "stays at 0 until that contract ended before the effective date in Kaseya BMS, after which the next pass writes this one by itself, or until `psa-syncd sync --approve --customer ID --service ID` of this line once that line is set to 0 (psa-syncd cannot read the lines of Kaseya BMS); either sets 27", "set to 0 or that contract"},
	} {
		if got := heldText(h, 0, false, tt.sys); !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
			t.Errorf("%s: heldText = %q, want it to say %q and not %q", tt.sys, got, tt.want, tt.not)
		}
		lines := []Line{{ProposedHeld: h}, {ProposedHeld: &Held{Hold: usage.HoldMoved, Approvable: true, Units: 3}}}
		r := &Report{System: tt.sys, Totals: total(lines)}
		got := r.summary()
		byRead := "on " + tt.sys.Title() + ", a line held because its customer moved to another contract is written by the next pass by itself once the line on the contract it left is set to 0 or that contract ended before the effective date"
		if tt.sys == psa.SystemKaseyaBMS {
			byRead = "on Kaseya BMS, a line held because its customer moved to another contract is written by the next pass by itself once the contract it left ended before the effective date"
		}
		if !strings.Contains(got, byRead) {
			t.Errorf("%s: summary = %q; want it to say %q", tt.sys, got, byRead)
		}
		if !strings.Contains(got, "until an approval of each line") {
			t.Errorf("%s: summary = %q, want it to name the approval of each line too", tt.sys, got)
		}
	}
	// Held lines of another kind only: the summary says nothing of
	// moved customers.
	r := &Report{System: psa.SystemAutotask, Totals: total([]Line{{ProposedHeld: &Held{Hold: usage.HoldStaleRead, Approvable: true}}})}
	if got := r.summary(); strings.Contains(got, "moved to another contract") {
		t.Errorf("summary of a stale_read hold = %q, names moved customers", got)
	}
}

// TestWithMovedHolds_raises: without psa-syncd's ledger, the report
// predicts the previous_contract hold of a line the proposed mappings add
// or raise on the contract a customer moves to while the contract it
// leaves bills the service (the move back to a contract with a line at 0),
// not of a line they lower, nor of a customer that does not move.
func TestWithMovedHolds_raises(t *testing.T) {
	t.Parallel()
	cur, prop := export.New(psa.SystemAutotask, "sim"), export.New(psa.SystemAutotask, "sim")
	for _, id := range []string{"moves", "stays"} {
		cur.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: id, CompanyID: "1", ContractID: "X-" + id, UsageSync: true})
	}
	prop.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "moves", CompanyID: "1", ContractID: "Y", UsageSync: true})
	prop.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "stays", CompanyID: "1", ContractID: "X-stays", UsageSync: true})
	change := func(customer, contract, service string, current int64, known bool, desired int64) usage.Change {
		return usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "sophos", CustomerID: customer, ContractID: contract},
			ChangeService: &usage.ChangeService{ServiceID: service}, Action: usage.ActionUpdate,
			Current: current, CurrentKnown: known, Desired: desired}
	}
	curPlan := &usage.Plan{Changes: []usage.Change{
		change("moves", "X-moves", "add", 42, true, 42), change("moves", "X-moves", "raise", 42, true, 42),
		change("moves", "X-moves", "lower", 42, true, 42), change("stays", "X-stays", "raise", 40, true, 40),
	}}
	propPlan := &usage.Plan{Changes: []usage.Change{
		change("moves", "Y", "add", 0, false, 42), change("moves", "Y", "raise", 0, true, 42),
		change("moves", "Y", "lower", 50, true, 42), change("stays", "X-stays", "raise", 40, true, 45),
	}}
	c := &compare{current: cur, proposed: prop, usageKnown: true}
	got := c.withMovedHolds(curPlan, propPlan)
	for i, want := range []bool{true, true, false, false} {
		ch := got.Changes[i]
		if held := ch.Action == usage.ActionHeld && ch.Hold() == usage.HoldMoved; held != want {
			t.Errorf("%s's %s line on %s: held as moved = %v (%s, %q), want %v", ch.CustomerID, ch.ServiceID, ch.ContractID, held, ch.Action, ch.Reason, want)
		}
	}
	if propPlan.Changes[1].Action != usage.ActionUpdate {
		t.Errorf("withMovedHolds changed the plan it was given: %+v", propPlan.Changes[1])
	}
}

// TestWithMovedHolds_swapped: two customers swap contracts. The line of
// the customer that rises on the other's contract is written, as the pass
// writes it after setting the other customer's line on the contract left
// (its why says so), where the proposed plan updates that line and does
// not hold it; held where that line does not change, and for both where
// both rise.
func TestWithMovedHolds_swapped(t *testing.T) {
	t.Parallel()
	cur, prop := export.New(psa.SystemAutotask, "t"), export.New(psa.SystemAutotask, "t")
	cur.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "X", UsageSync: true})
	cur.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "b", CompanyID: "1", ContractID: "Y", UsageSync: true})
	prop.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "Y", UsageSync: true})
	prop.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "b", CompanyID: "1", ContractID: "X", UsageSync: true})
	change := func(customer, contract string, current, desired int64) usage.Change {
		action := usage.ActionUpdate
		if current == desired {
			action = usage.ActionUnchanged
		}
		return usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "sophos", CustomerID: customer, ContractID: contract},
			ChangeService: &usage.ChangeService{ServiceID: "cixa"}, Action: action, Current: current, CurrentKnown: true, Desired: desired}
	}
	curPlan := &usage.Plan{Changes: []usage.Change{change("a", "X", 42, 42), change("b", "Y", 10, 10)}}
	for _, tc := range []struct {
		name  string
		b     int64 // b's usage, set on X (42 now)
		heldA bool
		heldB bool
	}{
		{"b lowers X", 10, false, false},
		{"b's units stay", 42, true, false},
		{"both rise", 60, true, true},
	} {
		propPlan := &usage.Plan{Changes: []usage.Change{change("a", "Y", 10, 50), change("b", "X", 42, tc.b)}}
		c := &compare{current: cur, proposed: prop, usageKnown: true}
		got := c.withMovedHolds(curPlan, propPlan)
		for i, want := range []bool{tc.heldA, tc.heldB} {
			ch := got.Changes[i]
			if held := ch.Action == usage.ActionHeld && ch.Hold() == usage.HoldMoved; held != want {
				t.Errorf("%s: %s's line on %s: held as moved = %v (%s, %q), want %v", tc.name, ch.CustomerID, ch.ContractID, held, ch.Action, ch.Reason, want)
			}
		}
		note := c.holdNotes[keyOf(propPlan.Changes[0])]
		if want := "contract X, which the customer leaves, still bills 42 units of this service, and is customer b's under the proposed mappings: the pass sets that line for customer b first, then this one"; !tc.heldA && !strings.Contains(note, want) {
			t.Errorf("%s: a's note %q, want it to say %q", tc.name, note, want)
		} else if tc.heldA && note != "" {
			t.Errorf("%s: a's note %q, want none", tc.name, note)
		}
	}
}

// TestWithMovedHolds_noLineRead: the current mappings set a customer's
// line on the contract it moves from (3 units), and the PSA shows no line
// of it there. On Kaseya BMS the new line's proposed units are unknown
// (TestWithRepointHolds_noLineRead's case for previous_contract). On
// Autotask and ConnectWise the read would show a line psa-syncd set: the
// new line is written, and its why says that the pass holds it if
// psa-syncd's ledger says it set the old line (deleted in the PSA, or out
// of sight), and what releases it.
func TestWithMovedHolds_noLineRead(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		cur, prop := export.New(sys, "t"), export.New(sys, "t")
		cur.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "acme", CompanyID: "1", ContractID: "X", UsageSync: true})
		prop.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "acme", CompanyID: "1", ContractID: "Y", UsageSync: true})
		change := func(contract string, desired int64) usage.Change {
			return usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "sophos", CustomerID: "acme", ContractID: contract},
				ChangeService: &usage.ChangeService{ServiceID: "mdr"}, Action: usage.ActionUpdate, Desired: desired}
		}
		curPlan := &usage.Plan{Changes: []usage.Change{change("X", 3)}}
		propPlan := &usage.Plan{Changes: []usage.Change{change("Y", 4)}}
		c := &compare{current: cur, proposed: prop, usageKnown: true}
		got := c.withMovedHolds(curPlan, propPlan)
		k := keyOf(propPlan.Changes[0])
		if got.Changes[0].Action != usage.ActionUpdate {
			t.Errorf("%s: new line %s (%q), want it written as the report predicts", sys, got.Changes[0].Action, got.Changes[0].Reason)
		}
		note := c.holdNotes[k]
		if sys == psa.SystemKaseyaBMS {
			if !c.holdUnknown[k] || !strings.Contains(note, "proposed units unknown without psa-syncd's ledger") {
				t.Errorf("%s: unknown %v, note %q; want the units unknown", sys, c.holdUnknown[k], note)
			}
			continue
		}
		if c.holdUnknown[k] {
			t.Errorf("%s: the new line's units unknown, want them known", sys)
		}
		want := "if psa-syncd set the line of this service on contract X, which the customer leaves (3 units under the current mappings), and " + sys.Title() +
			"'s read does not show it (deleted in " + sys.Title() + ", or out of the API user's sight), the pass holds this line for review (previous_contract) " +
			"until an approval of this line (`psa-syncd sync --approve --customer ID --service ID`) or the end of contract X before the effective date: " +
			"a read that shows no line does not tell that it is 0; if it never did (the usage is new since its last pass), the pass sets 4"
		if note != want {
			t.Errorf("%s: note %q, want %q", sys, note, want)
		}
		l := Line{Source: "sophos", CustomerID: "acme", ContractID: "Y", ServiceID: "mdr", ProposedSynced: true, Proposed: ptr(int64(4))}
		if why := c.why(l, usage.Change{ChangeCustomer: &usage.ChangeCustomer{}, ChangeService: &usage.ChangeService{}}, propPlan.Changes[0], nil, false); !strings.Contains(why, want) {
			t.Errorf("%s: why = %q, want it to say %q", sys, why, want)
		}
		// Without PSA credentials nothing was read: no line is missing
		// from a read.
		c = &compare{current: cur, proposed: prop, usageKnown: true, offline: true}
		c.withMovedHolds(curPlan, propPlan)
		if note, ok := c.holdNotes[k]; ok {
			t.Errorf("%s, no PSA read: note %q, want none", sys, note)
		}
	}
}

// TestWithMovedHolds_swappedNoLineRead: customers a and b swap contracts
// X and Y, and the PSA shows no line of a's service on X while the current
// mappings set it (3 units). If psa-syncd set that line, the pass does not
// wait for it to read 0 or for X's end: X is b's now, and the pass writes
// a's line on Y once it has set b's line on X (in the same pass, after
// that write), else holds it until a pass sets that line; where b's line
// on X rises too and waits for a's, the pass holds both and sets neither,
// and only an approval of one goes on (the Autotask and ConnectWise note
// said "until a pass sets that line" alone). The why says so on Autotask
// (written), ConnectWise (written) and Kaseya BMS (units unknown), and not
// "until ... the end of contract X".
func TestWithMovedHolds_swappedNoLineRead(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		cur, prop := export.New(sys, "t"), export.New(sys, "t")
		cur.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "X", UsageSync: true})
		cur.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "b", CompanyID: "1", ContractID: "Y", UsageSync: true})
		prop.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "Y", UsageSync: true})
		prop.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "b", CompanyID: "1", ContractID: "X", UsageSync: true})
		change := func(customer, contract string, desired int64) usage.Change {
			return usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "sophos", CustomerID: customer, ContractID: contract},
				ChangeService: &usage.ChangeService{ServiceID: "mdr"}, Action: usage.ActionUpdate, Desired: desired}
		}
		curPlan := &usage.Plan{Changes: []usage.Change{change("a", "X", 3), change("b", "Y", 1)}}
		propPlan := &usage.Plan{Changes: []usage.Change{change("a", "Y", 3), change("b", "X", 1)}}
		c := &compare{current: cur, proposed: prop, usageKnown: true}
		got := c.withMovedHolds(curPlan, propPlan)
		k := keyOf(propPlan.Changes[0])
		if got.Changes[0].Action != usage.ActionUpdate {
			t.Errorf("%s: a's line on Y %s (%q), want it written as the report predicts", sys, got.Changes[0].Action, got.Changes[0].Reason)
		}
		if unknown := sys == psa.SystemKaseyaBMS; c.holdUnknown[k] != unknown {
			t.Errorf("%s: a's line on Y units unknown = %v, want %v", sys, c.holdUnknown[k], unknown)
		}
		note := c.holdNotes[k]
		for _, want := range []string{"if psa-syncd set the line of this service on contract X, which the customer leaves",
			"the pass writes this line only once it has set that line for customer b, whose contract X is under the proposed mappings: in the same pass, after that write, where it sets it; " +
				"else it holds this line", "until a pass sets that line or an approval of this line",
			"if it never did (the usage is new since its last pass), the pass sets 3"} {
			if !strings.Contains(note, want) {
				t.Errorf("%s: a's note %q, want it to say %q", sys, note, want)
			}
		}
		if strings.Contains(note, "the end of contract X") {
			t.Errorf("%s: a's note %q names the end of contract X, b's contract after apply", sys, note)
		}
		// Where b's line on X rises too and waits for a's (Kaseya BMS:
		// which the report cannot tell), the pass holds both, and only
		// an approval of one goes on: no pass sets that line by itself.
		both := "where customer b's line there rises too and waits for this one (customer b's line on the contract it leaves still bills, as the read shows or psa-syncd's ledger says), " +
			"the pass holds both and writes neither by itself"
		if sys == psa.SystemKaseyaBMS {
			both = "where customer b's line there rises too (both lines rise, which the report cannot tell without the ledger either), the pass holds both and writes neither by itself"
		}
		approve := "approve one of them (`psa-syncd sync --approve --customer ID --service ID`), and the pass after that approval writes the other"
		if !strings.Contains(note, both) || !strings.Contains(note, approve) {
			t.Errorf("%s: a's note %q does not say that both rising are held until one is approved (%q, %q)", sys, note, both, approve)
		}
	}
}

// TestWithRepointHolds: without psa-syncd's ledger, the report holds a line
// the proposed plan adds or raises for a customer whose line of a service
// no proposed product mapping names shows units in the PSA, and only a
// line of a service the PSA shows no units of for the customer.
func TestWithRepointHolds(t *testing.T) {
	t.Parallel()
	cur, prop := export.New(psa.SystemAutotask, "t"), export.New(psa.SystemAutotask, "t")
	cur.PutProduct(export.ProductMapping{Source: "sophos", Product: "MDR", ServiceID: "old", SyncEnabled: true})
	cur.PutProduct(export.ProductMapping{Source: "sophos", Product: "CIXA", ServiceID: "cixa", SyncEnabled: true})
	prop.PutProduct(export.ProductMapping{Source: "sophos", Product: "MDR", ServiceID: "new", SyncEnabled: true})
	prop.PutProduct(export.ProductMapping{Source: "sophos", Product: "CIXA", ServiceID: "cixa", SyncEnabled: true})
	change := func(customer, service string, current int64, known bool, desired int64) usage.Change {
		return usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "sophos", CustomerID: customer, ContractID: "X-" + customer},
			ChangeService: &usage.ChangeService{ServiceID: service}, Action: usage.ActionUpdate,
			Current: current, CurrentKnown: known, Desired: desired}
	}
	curPlan := &usage.Plan{Changes: []usage.Change{
		change("billed", "old", 3, true, 3), change("billed", "cixa", 40, true, 40),
		change("zeroed", "old", 0, true, 0), change("zeroed", "cixa", 40, true, 40),
	}}
	propPlan := &usage.Plan{Changes: []usage.Change{
		change("billed", "new", 0, false, 3), change("billed", "cixa", 40, true, 41),
		change("zeroed", "new", 0, false, 3), change("zeroed", "cixa", 40, true, 41),
	}}
	c := &compare{current: cur, proposed: prop, usageKnown: true}
	got := c.withRepointHolds(curPlan, propPlan)
	for i, want := range []bool{true, false, false, false} {
		ch := got.Changes[i]
		if held := ch.Action == usage.ActionHeld && ch.Hold() == usage.HoldPreviousService; held != want {
			t.Errorf("%s's %s line: held as re-pointed = %v (%s, %q), want %v", ch.CustomerID, ch.ServiceID, held, ch.Action, ch.Reason, want)
		}
	}
	if !strings.Contains(got.Changes[0].Reason, "service old, which no product mapping with sync on names after apply, still bills 3 units on contract X-billed") {
		t.Errorf("reason %q", got.Changes[0].Reason)
	}
	if propPlan.Changes[0].Action != usage.ActionUpdate {
		t.Errorf("withRepointHolds changed the plan it was given: %+v", propPlan.Changes[0])
	}

	// A service that only a mapping with sync off names after apply is
	// not written either: the pass holds the new line as well.
	prop.PutProduct(export.ProductMapping{Source: "sophos", Product: "MDR-TRIAL", ServiceID: "old", SyncEnabled: false})
	got = c.withRepointHolds(curPlan, propPlan)
	if ch := got.Changes[0]; ch.Action != usage.ActionHeld || ch.Hold() != usage.HoldPreviousService {
		t.Errorf("billed's new line with service old named by a mapping with sync off = %s (%q), want held as re-pointed", ch.Action, ch.Reason)
	}
}

// TestHeldText_previousServiceByPSA: a line held as previous_service is
// written by the pass by itself once the old service's line reads 0 (on
// Autotask and ConnectWise PSA) or its contract ended before the effective
// date (usage.Engine.repointedLine): the line's text and the summary say
// so. On Kaseya BMS, whose lines psa-syncd cannot read, the contract's end
// does, and an approval of the line once the old line is 0.
func TestHeldText_previousServiceByPSA(t *testing.T) {
	t.Parallel()
	h := &Held{Hold: usage.HoldPreviousService, Approvable: true, Units: 3}
	for _, tt := range []struct {
		sys                psa.System
		want, not, summary string
	}{
		{psa.SystemAutotask, "stays at 0 until that line is set to 0 or its contract ended before the effective date in Autotask, after which the next pass writes this one by itself, or until `psa-syncd sync --approve --customer ID --service ID` of this line (also when that line was deleted: a read that shows no line does not release it); either sets 3", "cannot read",
			"on Autotask, a line held because psa-syncd's line of the customer's service that no product mapping names any more still bills (a product re-pointed to another service, its mapping removed, or its sync_enabled turned off) is written by the next pass by itself once that line is set to 0 or its contract ended before the effective date"},
		{psa.SystemConnectWise, "its contract ended before the effective date in ConnectWise PSA, after which the next pass writes this one by itself", "cannot read",
			"on ConnectWise PSA, a line held because psa-syncd's line of the customer's service that no product mapping names any more still bills (a product re-pointed to another service, its mapping removed, or its sync_enabled turned off) is written by the next pass by itself once that line is set to 0 or its contract ended"},
		{psa.SystemKaseyaBMS, "stays at 0 until its contract ended before the effective date in Kaseya BMS, after which the next pass writes this one by itself, or until `psa-syncd sync --approve --customer ID --service ID` of this line once that line is set to 0 (psa-syncd cannot read the lines of Kaseya BMS); either sets 3", "set to 0 or its contract",
			"on Kaseya BMS, a line held because psa-syncd's line of the customer's service that no product mapping names any more still bills (a product re-pointed to another service, its mapping removed, or its sync_enabled turned off) is written by the next pass by itself once that line's contract ended before the effective date"},
	} {
		if got := heldText(h, 0, false, tt.sys); !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
			t.Errorf("%s: heldText = %q, want it to say %q and not %q", tt.sys, got, tt.want, tt.not)
		}
		r := &Report{System: tt.sys, Totals: total([]Line{{ProposedHeld: h}})}
		if got := r.summary(); !strings.Contains(got, tt.summary) || !strings.Contains(got, "until an approval of each line") {
			t.Errorf("%s: summary = %q; want it to say %q and name the approval of each line", tt.sys, got, tt.summary)
		}
	}
	r := &Report{System: psa.SystemAutotask, Totals: total([]Line{{ProposedHeld: &Held{Hold: usage.HoldMoved, Approvable: true}}})}
	if got := r.summary(); strings.Contains(got, "re-pointed") {
		t.Errorf("summary of a previous_contract hold = %q, names re-pointed products", got)
	}
}

// TestWithRepointHolds_noLineRead: the current mappings set a customer's
// line of a service that no proposed product mapping names (3 units), and
// the PSA shows no line of it. On Kaseya BMS, whose lines are never read,
// the report cannot tell whether psa-syncd set it (the pass then holds the
// new line) or the usage is new since its last pass (the pass writes it):
// the new line is not held but its proposed units are unknown, and its
// why says both (TestBillingImpact_systems checks them against the pass
// after apply). On Autotask the read
// would show a line psa-syncd set: the new line is written, and its why
// says that the pass holds it if psa-syncd's ledger says it set the old
// line (deleted in the PSA, or out of sight); without PSA credentials
// (nothing read) it says nothing of a read.
func TestWithRepointHolds_noLineRead(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemKaseyaBMS} {
		cur, prop := export.New(sys, "t"), export.New(sys, "t")
		cur.PutProduct(export.ProductMapping{Source: "sophos", Product: "MDR", ServiceID: "old", SyncEnabled: true})
		cur.PutProduct(export.ProductMapping{Source: "sophos", Product: "CIXA", ServiceID: "cixa", SyncEnabled: true})
		prop.PutProduct(export.ProductMapping{Source: "sophos", Product: "MDR", ServiceID: "new", SyncEnabled: true})
		prop.PutProduct(export.ProductMapping{Source: "sophos", Product: "CIXA", ServiceID: "cixa", SyncEnabled: true})
		change := func(customer, service string, desired int64) usage.Change {
			return usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "sophos", CustomerID: customer, ContractID: "X-" + customer},
				ChangeService: &usage.ChangeService{ServiceID: service}, Action: usage.ActionUpdate, Desired: desired}
		}
		curPlan := &usage.Plan{Changes: []usage.Change{change("acme", "old", 3), change("acme", "cixa", 40)}}
		propPlan := &usage.Plan{Changes: []usage.Change{change("acme", "new", 3), change("acme", "cixa", 41)}}
		c := &compare{current: cur, proposed: prop, usageKnown: true}
		got := c.withRepointHolds(curPlan, propPlan)
		held := func(i int) bool {
			return got.Changes[i].Action == usage.ActionHeld && got.Changes[i].Hold() == usage.HoldPreviousService
		}
		note := c.holdNotes[keyOf(propPlan.Changes[0])]
		switch sys {
		case psa.SystemKaseyaBMS:
			if held(0) || held(1) || !c.holdUnknown[keyOf(propPlan.Changes[0])] || c.holdUnknown[keyOf(propPlan.Changes[1])] {
				t.Errorf("%s: new line held %v, cixa held %v, unknown %v; want neither held, the new line's units unknown", sys, held(0), held(1), c.holdUnknown)
			}
			for _, want := range []string{"proposed units unknown without psa-syncd's ledger",
				"if psa-syncd set the line of service old on contract X-acme at an earlier pass (3 units under the current mappings;",
				"the pass holds this line at its units now for review (previous_service)", "if it never did (the usage is new since its last pass), the pass sets 3"} {
				if !strings.Contains(note, want) {
					t.Errorf("%s: note %q, want it to say %q", sys, note, want)
				}
			}
		default:
			if held(0) || held(1) {
				t.Errorf("%s: new line held %v, cixa held %v; want neither held", sys, held(0), held(1))
			}
			want := "if psa-syncd set the line of service old on contract X-acme (3 units under the current mappings; no product mapping with sync on names that service after apply), which Autotask's read does not show (deleted in Autotask, or out of the API user's sight), the pass holds this line for review (previous_service) until an approval of this line"
			if !strings.Contains(note, want) {
				t.Errorf("%s: note %q, want %q", sys, note, want)
			}
			l := Line{Source: "sophos", CustomerID: "acme", ContractID: "X-acme", ServiceID: "new", ProposedSynced: true, Proposed: ptr(int64(3))}
			if why := c.why(l, usage.Change{ChangeCustomer: &usage.ChangeCustomer{}, ChangeService: &usage.ChangeService{}}, propPlan.Changes[0], nil, false); !strings.Contains(why, want) {
				t.Errorf("%s: why = %q, want it to say %q", sys, why, want)
			}
			// Without PSA credentials nothing was read: no line is
			// missing from a read.
			c = &compare{current: cur, proposed: prop, usageKnown: true, offline: true}
			if got := c.withRepointHolds(curPlan, propPlan); got.Changes[0].Action != usage.ActionUpdate {
				t.Errorf("%s, no PSA read: new line %s (%q), want it written as the report predicts", sys, got.Changes[0].Action, got.Changes[0].Reason)
			}
			if note, ok := c.holdNotes[keyOf(propPlan.Changes[0])]; ok {
				t.Errorf("%s, no PSA read: note %q, want none", sys, note)
			}
		}
	}
}

// TestSummary_releasedTotal: the amounts count a held line at the units it
// keeps, so a plan whose removal the decrease guard holds reads "0.00 per
// month" though an approval then takes 28.50 a month off the invoice. The
// summary gives the total once the held lines an approval releases are
// written, when it differs; not when a held line's amount is unknown, nor
// for a line no approval releases (posted).
func TestSummary_releasedTotal(t *testing.T) {
	t.Parallel()
	amount := func(f float64) *float64 { return &f }
	removed := Line{MonthlyDelta: amount(0), ProposedHeld: &Held{Hold: usage.HoldApproval, Approvable: true, MonthlyDelta: amount(-28.5)}}
	raised := Line{MonthlyDelta: amount(10)}
	// A customer moved to another contract: psa-syncd stops writing its
	// line on the contract it left (27 units at 4.50, kept at 25 now), and
	// holds the new contract's line until that one is set to 0.
	left := Line{Source: "sophos", CustomerID: "acme", ContractID: "1", ServiceID: "30", CurrentSynced: true,
		MonthlyDelta: amount(-9), zeroedDelta: amount(-121.5)}
	moved := Line{Source: "sophos", CustomerID: "acme", ContractID: "2", ServiceID: "30", CurrentSynced: true, ProposedSynced: true,
		MonthlyDelta: amount(0), ProposedHeld: &Held{Hold: usage.HoldMoved, Approvable: true, MonthlyDelta: amount(121.5)}}
	// A product re-pointed from service 30 to 31 on the same contract.
	repointed := Line{Source: "sophos", CustomerID: "acme", ContractID: "1", ServiceID: "31", CurrentSynced: true, ProposedSynced: true,
		MonthlyDelta: amount(0), ProposedHeld: &Held{Hold: usage.HoldPreviousService, Approvable: true, MonthlyDelta: amount(135)}}
	for _, tt := range []struct {
		name      string
		lines     []Line
		want, not string
	}{
		{"held removal", []Line{removed, raised}, "+10.00 per month on 2 contract lines (1 up); 1 line is held for review and keeps its current units, as the amounts count them, until `psa-syncd sync --approve`, then -18.50 per month in all", ""},
		{"unknown once released", []Line{{MonthlyDelta: amount(0), ProposedHeld: &Held{Hold: usage.HoldApproval, Approvable: true}}, raised}, "until `psa-syncd sync --approve`", "per month in all"},
		{"posted", []Line{{MonthlyDelta: amount(0), ProposedHeld: &Held{Hold: usage.HoldPosted, MonthlyDelta: amount(-28.5)}}, raised}, "no `psa-syncd sync --approve` releases it", "per month in all"},
		// Counted once: the line left at 0, not billing next to the new one.
		{"customer moved", []Line{left, moved, raised}, "then +10.00 per month in all once the lines they wait on", "+122.50"},
		{"product re-pointed", []Line{left, repointed}, "then +13.50 per month in all once the lines they wait on", "+126.00"},
		{"another customer's line", []Line{{Source: "sophos", CustomerID: "globex", ContractID: "1", ServiceID: "30", CurrentSynced: true,
			MonthlyDelta: amount(-9), zeroedDelta: amount(-121.5)}, moved}, "then +112.50 per month in all", "once the lines"},
	} {
		r := &Report{Lines: tt.lines, Totals: total(tt.lines)}
		got := r.summary()
		if !strings.Contains(got, tt.want) || (tt.not != "" && strings.Contains(got, tt.not)) {
			t.Errorf("%s: summary = %q, want %q and not %q", tt.name, got, tt.want, tt.not)
		}
	}
}

// TestKeptBilling_partial: a customer whose usage sync stops, one of whose
// lines has an unknown amount (a failed line, a contract whose billing
// cycle is unknown), gives the known lines' amount as a lower bound
// (keeps_billing with keeps_billing_partial, "at least" in the summary),
// not nothing and not a total that reads as the whole; with no line's
// amount known, nothing.
func TestKeptBilling_partial(t *testing.T) {
	t.Parallel()
	amount := func(f float64) *float64 { return &f }
	// 25 units kept at 4.50.
	known := Line{Source: "sophos", CustomerID: "acme", ContractID: "1", ServiceID: "30", CurrentSynced: true,
		MonthlyDelta: amount(-9), zeroedDelta: amount(-121.5)}
	unknown := Line{Source: "sophos", CustomerID: "acme", ContractID: "1", ServiceID: "31", CurrentSynced: true}
	for _, tt := range []struct {
		name    string
		lines   []Line
		want    *float64
		partial bool
		summary string
	}{
		{"known", []Line{known}, amount(112.5), false, "(its lines go on billing 112.50 per month at the units they keep"},
		{"one unknown", []Line{known, unknown}, amount(112.5), true, "(its lines go on billing at least 112.50 per month at the units they keep"},
		{"all unknown", []Line{unknown}, nil, false, ""},
	} {
		got, partial := keptBilling(tt.lines, "sophos", "acme")
		if !samePtr(got, tt.want) || partial != tt.partial {
			t.Errorf("%s: keptBilling = %v, %t; want %v, %t", tt.name, fmtPtr(got), partial, fmtPtr(tt.want), tt.partial)
		}
		r := &Report{Lines: tt.lines, Totals: total(tt.lines),
			UsageSync: []SyncChange{{Source: "sophos", CustomerID: "acme", KeepsBilling: got, KeepsBillingPartial: partial}}}
		if s := r.summary(); !strings.Contains(s, "usage sync stops for 1 customer") || (tt.summary != "" && !strings.Contains(s, tt.summary)) ||
			(tt.summary == "" && strings.Contains(s, "go on billing")) {
			t.Errorf("%s: summary = %q, want %q", tt.name, s, tt.summary)
		}
	}
}

// fmtPtr formats an amount, "nil" for none.
func fmtPtr(f *float64) string {
	if f == nil {
		return "nil"
	}
	return fmt.Sprintf("%.2f", *f)
}
