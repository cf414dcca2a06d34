package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Accepted describes the grammar; parse errors end with it.
const Accepted = `"every <duration>", "daily HH:MM", "weekly DAY HH:MM", "monthly last-day HH:MM" or "monthly DD HH:MM"`

// DefaultInterval is the gap of the default schedule, "every 24h", which is
// also what the zero Schedule does.
const DefaultInterval = 24 * time.Hour

// MinEvery is the shortest interval an "every" schedule accepts.
const MinEvery = time.Minute

type kind uint8

const (
	kindEvery kind = iota
	kindDaily
	kindWeekly
	kindMonthly
)

// Schedule is a parsed sync schedule. Schedules are small values: copy them
// freely and compare them with ==. The zero Schedule is the default,
// "every 24h".
type Schedule struct {
	kind    kind
	every   time.Duration // kindEvery; 0 means DefaultInterval
	hour    int           // calendar kinds
	minute  int           // calendar kinds
	weekday time.Weekday  // kindWeekly
	day     int           // kindMonthly: 1..28, or 0 for the last day of the month
}

// Default returns the default schedule, "every 24h". It equals the zero
// Schedule and Parse("every 24h").
func Default() Schedule { return Schedule{} }

// Parse parses a schedule in one of these forms (keywords are case-insensitive,
// fields are separated by spaces):
//
//	every <duration>        a Go duration of at least 1m, e.g. "every 24h", "every 1h30m"
//	daily HH:MM             e.g. "daily 02:00"
//	weekly DAY HH:MM        DAY is monday..sunday or mon..sun, e.g. "weekly sunday 23:30"
//	monthly last-day HH:MM  the last day of every month, e.g. "monthly last-day 18:00"
//	monthly DD HH:MM        DD is 1..28 so that every month has the day
//
// Errors quote the input, say what is wrong and what is accepted.
func Parse(s string) (Schedule, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Schedule{}, parseError(s, "is empty; want "+Accepted)
	}
	switch strings.ToLower(f[0]) {
	case "every":
		if len(f) != 2 {
			return Schedule{}, parseError(s, `want "every <duration>", e.g. "every 24h"`)
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return Schedule{}, parseError(s, fmt.Sprintf("%q is not a duration (want a Go duration such as 24h, 6h or 1h30m)", f[1]))
		}
		if d < MinEvery {
			return Schedule{}, parseError(s, fmt.Sprintf("interval must be at least %s", formatDuration(MinEvery)))
		}
		if d == DefaultInterval {
			d = 0 // so that Parse("every 24h") == Default() == Schedule{}
		}
		return Schedule{kind: kindEvery, every: d}, nil
	case "daily":
		if len(f) != 2 {
			return Schedule{}, parseError(s, `want "daily HH:MM", e.g. "daily 02:00"`)
		}
		h, m, err := parseClock(f[1])
		if err != nil {
			return Schedule{}, parseError(s, err.Error())
		}
		return Schedule{kind: kindDaily, hour: h, minute: m}, nil
	case "weekly":
		if len(f) != 3 {
			return Schedule{}, parseError(s, `want "weekly DAY HH:MM", e.g. "weekly monday 02:00"`)
		}
		wd, ok := parseWeekday(f[1])
		if !ok {
			return Schedule{}, parseError(s, fmt.Sprintf("unknown day %q (want monday..sunday or mon..sun)", f[1]))
		}
		h, m, err := parseClock(f[2])
		if err != nil {
			return Schedule{}, parseError(s, err.Error())
		}
		return Schedule{kind: kindWeekly, weekday: wd, hour: h, minute: m}, nil
	case "monthly":
		if len(f) != 3 {
			return Schedule{}, parseError(s, `want "monthly last-day HH:MM" or "monthly DD HH:MM", e.g. "monthly last-day 18:00"`)
		}
		day := 0
		if !strings.EqualFold(f[1], "last-day") {
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 1 || n > 28 {
				return Schedule{}, parseError(s, fmt.Sprintf("day %q must be 1-28 or last-day (days 29-31 do not exist in every month)", f[1]))
			}
			day = n
		}
		h, m, err := parseClock(f[2])
		if err != nil {
			return Schedule{}, parseError(s, err.Error())
		}
		return Schedule{kind: kindMonthly, day: day, hour: h, minute: m}, nil
	default:
		return Schedule{}, parseError(s, fmt.Sprintf("unknown kind %q; want %s", f[0], Accepted))
	}
}

// MustParse is like Parse but panics on error. It is meant for constants in
// tests and package-level variables.
func MustParse(s string) Schedule {
	sc, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sc
}

func parseError(input, msg string) error {
	return fmt.Errorf("schedule %q: %s", input, msg)
}

// parseClock parses HH:MM (a single-digit hour is accepted).
func parseClock(s string) (hour, minute int, err error) {
	hs, ms, ok := strings.Cut(s, ":")
	if !ok || len(hs) < 1 || len(hs) > 2 || len(ms) != 2 || !digits(hs) || !digits(ms) {
		return 0, 0, fmt.Errorf("time %q must be HH:MM (24-hour clock)", s)
	}
	hour, _ = strconv.Atoi(hs)
	minute, _ = strconv.Atoi(ms)
	if hour > 23 {
		return 0, 0, fmt.Errorf("hour must be 00-23")
	}
	if minute > 59 {
		return 0, 0, fmt.Errorf("minute must be 00-59")
	}
	return hour, minute, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func parseWeekday(s string) (time.Weekday, bool) {
	s = strings.ToLower(s)
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if s == name || s == name[:3] {
			return d, true
		}
	}
	return 0, false
}

// String returns the canonical form of s, which Parse accepts: lower-case
// keywords, full day names, two-digit HH:MM and a compact duration
// ("every 24h", "daily 02:00", "weekly monday 02:00", "monthly last-day 18:00",
// "monthly 1 06:00").
func (s Schedule) String() string {
	clock := fmt.Sprintf("%02d:%02d", s.hour, s.minute)
	switch s.kind {
	case kindDaily:
		return "daily " + clock
	case kindWeekly:
		return "weekly " + strings.ToLower(s.weekday.String()) + " " + clock
	case kindMonthly:
		if s.day == 0 {
			return "monthly last-day " + clock
		}
		return "monthly " + strconv.Itoa(s.day) + " " + clock
	default:
		return "every " + formatDuration(s.interval())
	}
}

// MarshalText implements encoding.TextMarshaler with the canonical form.
func (s Schedule) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with Parse, so a Schedule
// can be a field of a JSON or YAML configuration.
func (s *Schedule) UnmarshalText(text []byte) error {
	sc, err := Parse(string(text))
	if err != nil {
		return err
	}
	*s = sc
	return nil
}

// formatDuration is time.Duration.String without the zero units it appends
// ("24h0m0s" becomes "24h", "1h30m0s" becomes "1h30m").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func (s Schedule) interval() time.Duration {
	if s.every <= 0 {
		return DefaultInterval
	}
	return s.every
}

// Interval returns the nominal gap between runs: the duration of an "every"
// schedule, 24h for daily, 168h for weekly and 744h (31 days) for monthly
// schedules. Real gaps of calendar schedules differ across DST changes and
// short months; Interval is meant for staleness alerts and metrics
// (psa_sync_schedule_interval_seconds), never for computing run times.
func (s Schedule) Interval() time.Duration {
	switch s.kind {
	case kindDaily:
		return 24 * time.Hour
	case kindWeekly:
		return 7 * 24 * time.Hour
	case kindMonthly:
		return 31 * 24 * time.Hour
	default:
		return s.interval()
	}
}

// Next returns the first run time strictly after after. Calendar schedules
// are evaluated on the wall clock of loc (nil means UTC); the result is in
// loc.
//
// "every" schedules are anchored to the previous run, not to the clock:
// Next returns after plus the duration, so callers pass the time the last
// run started (or the start-up time before the first run).
//
// Daylight-saving changes are handled as cron implementations commonly do:
//   - a wall time that does not exist on a spring-forward day (02:30 in
//     Europe/Rome on the last Sunday of March) runs at the first instant
//     that exists after it, the moment the clocks jump (03:00 CEST), so the
//     day's run is neither skipped nor moved by the full gap;
//   - a wall time that occurs twice on a fall-back day runs once, at its
//     first occurrence (the earlier instant, still in summer time).
//
// "monthly last-day" runs on the 28th, 29th, 30th or 31st as the month has
// it, leap years included.
func (s Schedule) Next(after time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	if s.kind == kindEvery {
		return after.Add(s.interval()).In(loc)
	}
	local := after.In(loc)
	y, m, d := local.Date()
	switch s.kind {
	case kindDaily:
		// At most two days ahead: today's run may have passed, tomorrow's
		// cannot have. The third iteration only guards against zones that
		// skip a whole calendar day.
		for i := 0; i < 3; i++ {
			if t := resolve(y, m, d+i, s.hour, s.minute, loc); t.After(after) {
				return t
			}
		}
	case kindWeekly:
		for i := 0; i < 15; i++ {
			day := time.Date(y, m, d+i, 12, 0, 0, 0, time.UTC)
			if day.Weekday() != s.weekday {
				continue
			}
			if t := resolve(y, m, d+i, s.hour, s.minute, loc); t.After(after) {
				return t
			}
		}
	case kindMonthly:
		for i := 0; i < 3; i++ {
			// time.Date normalises m+i past December into the next year.
			first := time.Date(y, m+time.Month(i), 1, 0, 0, 0, 0, time.UTC)
			day := s.day
			if day == 0 {
				day = daysIn(first.Year(), first.Month())
			}
			if t := resolve(first.Year(), first.Month(), day, s.hour, s.minute, loc); t.After(after) {
				return t
			}
		}
	}
	// Unreachable for the schedules Parse returns and real time zones.
	return after.Add(s.Interval()).In(loc)
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// resolve returns the instant at which the wall clock of loc shows the given
// date and time, with the DST rules documented on Next: the earlier instant
// when the wall time occurs twice, the end of the gap when it does not occur.
// Day may be out of range; it is normalised as time.Date does.
func resolve(year int, month time.Month, day, hour, minute int, loc *time.Location) time.Time {
	// wall is the requested wall time written as if it were UTC; subtracting
	// a zone offset from it yields the instant that shows it in that zone.
	wall := time.Date(year, month, day, hour, minute, 0, 0, time.UTC)
	// Zones change offset at most once within a few days, so the offsets in
	// force two days either side are every offset the wall time can have.
	_, offBefore := wall.Add(-48 * time.Hour).In(loc).Zone()
	_, offAfter := wall.Add(48 * time.Hour).In(loc).Zone()
	var best time.Time
	for _, off := range []int{offBefore, offAfter} {
		t := wall.Add(-time.Duration(off) * time.Second).In(loc)
		if sameWall(t, wall) && (best.IsZero() || t.Before(best)) {
			best = t
		}
	}
	if !best.IsZero() {
		return best
	}
	// The wall time falls in a spring-forward gap. Read with the old offset
	// it names an instant just after the jump; the zone in force there
	// started at the jump, which is the first instant after the gap.
	t := wall.Add(-time.Duration(offBefore) * time.Second).In(loc)
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return t
	}
	return start.In(loc)
}

func sameWall(t, wall time.Time) bool {
	y1, m1, d1 := t.Date()
	y2, m2, d2 := wall.Date()
	return y1 == y2 && m1 == m2 && d1 == d2 && t.Hour() == wall.Hour() && t.Minute() == wall.Minute()
}
