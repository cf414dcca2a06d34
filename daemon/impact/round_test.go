package impact

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
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
		if got := heldText(h, *q, false); !strings.Contains(got, tt.want) || h.Approvable != tt.approvable {
			t.Errorf("hold %q: heldText = %q (approvable %v), want it to say %q (approvable %v)", tt.hold, got, h.Approvable, tt.want, tt.approvable)
		}
	}
	for _, tt := range []struct {
		held, approvable int
		want, not        string
	}{
		{2, 2, "until `psa-syncd sync --approve`", "no approval"},
		{1, 0, "no `psa-syncd sync --approve` releases it", "until `psa-syncd"},
		{3, 1, "1 of them until `psa-syncd sync --approve`; no approval releases the others", ""},
	} {
		r := &Report{Totals: Totals{Held: tt.held, HeldApprovable: tt.approvable}}
		got := r.summary()
		if !strings.Contains(got, tt.want) || (tt.not != "" && strings.Contains(got, tt.not)) {
			t.Errorf("summary with %d held, %d approvable = %q, want %q and not %q", tt.held, tt.approvable, got, tt.want, tt.not)
		}
	}
}
