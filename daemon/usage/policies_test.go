package usage

import (
	"strings"
	"testing"
)

// TestPolicies_Warnings: max_decrease_percent: 100 validates but turns the
// decrease guard off (no decrease is larger than 100 percent), and a
// fraction where a percentage belongs holds nearly every change: both are
// warned of, naming the setting; the defaults, 0 and 99 are not.
func TestPolicies_Warnings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		dec, inc float64
		want     []string
	}{
		{50, 0, nil},
		{0, 0, nil},
		{99, 200, nil},
		{100, 0, []string{"policies.max_decrease_percent: 100 holds no decrease"}},
		{0.5, 0, []string{"policies.max_decrease_percent: 0.5 is a percentage, not a fraction", "for 50 percent write 50"}},
		{50, 0.25, []string{"policies.max_increase_percent: 0.25 is a percentage", "for 25 percent write 25"}},
	} {
		p := DefaultPolicies
		p.MaxDecreasePercent, p.MaxIncreasePercent = c.dec, c.inc
		if err := p.Validate(); err != nil {
			t.Fatalf("%g/%g: %v", c.dec, c.inc, err)
		}
		w := strings.Join(p.Warnings(), "\n")
		if (c.want == nil) != (w == "") {
			t.Errorf("max_decrease_percent %g, max_increase_percent %g: warnings %q, want %q", c.dec, c.inc, w, c.want)
		}
		for _, s := range c.want {
			if !strings.Contains(w, s) {
				t.Errorf("max_decrease_percent %g, max_increase_percent %g: warnings %q lack %q", c.dec, c.inc, w, s)
			}
		}
	}
}

// TestPolicies_WarningsSurge: surge_lines_percent: 100 validates but holds
// no surge, and a fraction in either surge percentage holds nearly every
// increase; the defaults and 0 (off) are not warned of.
func TestPolicies_WarningsSurge(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		lines, inc float64
		want       string
	}{
		{50, 50, ""},
		{0, 50, ""},
		{99, 200, ""},
		{100, 50, "policies.surge_lines_percent: 100 holds no surge"},
		{0.5, 50, "policies.surge_lines_percent: 0.5 is a percentage, not a fraction"},
		{50, 0.5, "policies.surge_increase_percent: 0.5 is a percentage, not a fraction"},
	} {
		p := DefaultPolicies
		p.SurgeLinesPercent, p.SurgeIncreasePercent = c.lines, c.inc
		if err := p.Validate(); err != nil {
			t.Fatalf("%g/%g: %v", c.lines, c.inc, err)
		}
		w := strings.Join(p.Warnings(), "\n")
		if (c.want == "") != (w == "") || !strings.Contains(w, c.want) {
			t.Errorf("surge_lines_percent %g, surge_increase_percent %g: warnings %q, want %q", c.lines, c.inc, w, c.want)
		}
	}
}
