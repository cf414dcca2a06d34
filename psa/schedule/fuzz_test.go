package schedule

import (
	"testing"
	"time"
)

// FuzzParse checks Parse on any input: it never panics; a schedule it
// accepts prints as a spec that parses to the same schedule, and its next
// run is after the given time.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"every 24h", "every 90m", "daily 02:00", "weekly mon 06:30", "weekly Sunday 23:59",
		"monthly last-day 22:00", "daily 25:00", "every 0s", "every -1h", "", "weekly xyz 01:00"} {
		f.Add(s)
	}
	rome, err := LoadLocation("Europe/Rome")
	if err != nil {
		f.Fatal(err)
	}
	base := time.Date(2026, 3, 29, 1, 30, 0, 0, rome) // a DST change in Rome
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec)
		if err != nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil || again != s {
			t.Fatalf("Parse(%q).String() = %q parses to %v, %v; want the same schedule", spec, s.String(), again, err)
		}
		if next := s.Next(base, rome); !next.After(base) {
			t.Fatalf("Parse(%q).Next(%v) = %v, want a later time", spec, base, next)
		}
	})
}
