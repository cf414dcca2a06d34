package schedule

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		interval time.Duration
	}{
		{"every 24h", "every 24h", 24 * time.Hour},
		{"every 1m", "every 1m", time.Minute},
		{"every 90s", "every 1m30s", 90 * time.Second},
		{"every 1h30m", "every 1h30m", 90 * time.Minute},
		{"every 36h", "every 36h", 36 * time.Hour},
		{"EVERY 6h", "every 6h", 6 * time.Hour},
		{"daily 02:00", "daily 02:00", 24 * time.Hour},
		{"daily 2:05", "daily 02:05", 24 * time.Hour},
		{"  Daily   23:59 ", "daily 23:59", 24 * time.Hour},
		{"weekly monday 02:00", "weekly monday 02:00", 168 * time.Hour},
		{"weekly Sun 23:30", "weekly sunday 23:30", 168 * time.Hour},
		{"weekly SATURDAY 00:00", "weekly saturday 00:00", 168 * time.Hour},
		{"weekly wed 12:00", "weekly wednesday 12:00", 168 * time.Hour},
		{"monthly last-day 18:00", "monthly last-day 18:00", 744 * time.Hour},
		{"monthly LAST-DAY 18:00", "monthly last-day 18:00", 744 * time.Hour},
		{"monthly 1 06:00", "monthly 1 06:00", 744 * time.Hour},
		{"monthly 28 06:00", "monthly 28 06:00", 744 * time.Hour},
		{"monthly 07 06:00", "monthly 7 06:00", 744 * time.Hour},
	}
	for _, tt := range tests {
		s, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q) returned error %v", tt.in, err)
			continue
		}
		if got := s.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		if got := s.Interval(); got != tt.interval {
			t.Errorf("Parse(%q).Interval() = %v, want %v", tt.in, got, tt.interval)
		}
		// The canonical form parses to the same schedule.
		again, err := Parse(s.String())
		if err != nil || again != s {
			t.Errorf("Parse(%q) = %v, %v; want %v", s.String(), again, err, s)
		}
	}
}

func TestParse_errors(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", `schedule "": is empty; want "every <duration>", "daily HH:MM", "weekly DAY HH:MM", "monthly last-day HH:MM" or "monthly DD HH:MM"`},
		{"   ", `schedule "   ": is empty; want "every <duration>", "daily HH:MM", "weekly DAY HH:MM", "monthly last-day HH:MM" or "monthly DD HH:MM"`},
		{"hourly", `schedule "hourly": unknown kind "hourly"; want "every <duration>", "daily HH:MM", "weekly DAY HH:MM", "monthly last-day HH:MM" or "monthly DD HH:MM"`},
		{"24h", `schedule "24h": unknown kind "24h"; want "every <duration>", "daily HH:MM", "weekly DAY HH:MM", "monthly last-day HH:MM" or "monthly DD HH:MM"`},
		{"every", `schedule "every": want "every <duration>", e.g. "every 24h"`},
		{"every 1 day", `schedule "every 1 day": want "every <duration>", e.g. "every 24h"`},
		{"every 1d", `schedule "every 1d": "1d" is not a duration (want a Go duration such as 24h, 6h or 1h30m)`},
		{"every 59s", `schedule "every 59s": interval must be at least 1m`},
		{"every -1h", `schedule "every -1h": interval must be at least 1m`},
		{"every 0s", `schedule "every 0s": interval must be at least 1m`},
		{"daily", `schedule "daily": want "daily HH:MM", e.g. "daily 02:00"`},
		{"daily 25:00", `schedule "daily 25:00": hour must be 00-23`},
		{"daily 24:00", `schedule "daily 24:00": hour must be 00-23`},
		{"daily 12:60", `schedule "daily 12:60": minute must be 00-59`},
		{"daily 2pm", `schedule "daily 2pm": time "2pm" must be HH:MM (24-hour clock)`},
		{"daily 12:5", `schedule "daily 12:5": time "12:5" must be HH:MM (24-hour clock)`},
		{"daily 012:00", `schedule "daily 012:00": time "012:00" must be HH:MM (24-hour clock)`},
		{"daily -1:00", `schedule "daily -1:00": time "-1:00" must be HH:MM (24-hour clock)`},
		{"daily 02:00:00", `schedule "daily 02:00:00": time "02:00:00" must be HH:MM (24-hour clock)`},
		{"weekly 02:00", `schedule "weekly 02:00": want "weekly DAY HH:MM", e.g. "weekly monday 02:00"`},
		{"weekly funday 02:00", `schedule "weekly funday 02:00": unknown day "funday" (want monday..sunday or mon..sun)`},
		{"weekly mo 02:00", `schedule "weekly mo 02:00": unknown day "mo" (want monday..sunday or mon..sun)`},
		{"weekly monday 7", `schedule "weekly monday 7": time "7" must be HH:MM (24-hour clock)`},
		{"monthly 18:00", `schedule "monthly 18:00": want "monthly last-day HH:MM" or "monthly DD HH:MM", e.g. "monthly last-day 18:00"`},
		{"monthly 31 18:00", `schedule "monthly 31 18:00": day "31" must be 1-28 or last-day (days 29-31 do not exist in every month)`},
		{"monthly 0 18:00", `schedule "monthly 0 18:00": day "0" must be 1-28 or last-day (days 29-31 do not exist in every month)`},
		{"monthly last 18:00", `schedule "monthly last 18:00": day "last" must be 1-28 or last-day (days 29-31 do not exist in every month)`},
		{"monthly last-day 18:99", `schedule "monthly last-day 18:99": minute must be 00-59`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) returned no error, want %q", tt.in, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Parse(%q) error\n got: %s\nwant: %s", tt.in, got, tt.want)
		}
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	var zero Schedule
	if zero != Default() || MustParse("every 24h") != Default() {
		t.Errorf("zero Schedule, Default() and Parse(\"every 24h\") differ: %#v %#v %#v", zero, Default(), MustParse("every 24h"))
	}
	if got := zero.String(); got != "every 24h" {
		t.Errorf("Schedule{}.String() = %q, want %q", got, "every 24h")
	}
	if got := zero.Interval(); got != 24*time.Hour {
		t.Errorf("Schedule{}.Interval() = %v, want 24h", got)
	}
	after := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	if got, want := zero.Next(after, nil), after.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("Schedule{}.Next(%v) = %v, want %v", after, got, want)
	}
}

func TestMustParse_panics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("MustParse(\"daily\") did not panic")
		}
	}()
	MustParse("daily")
}

func TestSchedule_textMarshaling(t *testing.T) {
	t.Parallel()
	var cfg struct {
		Schedule Schedule `json:"schedule"`
	}
	if err := json.Unmarshal([]byte(`{"schedule":"Weekly Mon 2:00"}`), &cfg); err != nil {
		t.Fatalf("Unmarshal returned error %v", err)
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("Marshal returned error %v", err)
	}
	if got, want := string(out), `{"schedule":"weekly monday 02:00"}`; got != want {
		t.Errorf("Marshal = %s, want %s", got, want)
	}
	err = json.Unmarshal([]byte(`{"schedule":"daily 25:00"}`), &cfg)
	if err == nil || err.Error() != `schedule "daily 25:00": hour must be 00-23` {
		t.Errorf("Unmarshal of a bad schedule returned %v", err)
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestNext(t *testing.T) {
	t.Parallel()
	rome := mustLoad(t, "Europe/Rome")
	newYork := mustLoad(t, "America/New_York")
	saoPaulo := mustLoad(t, "America/Sao_Paulo")
	kolkata := mustLoad(t, "Asia/Kolkata")
	at := func(loc *time.Location, s string) time.Time {
		t.Helper()
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	utc := func(s string) time.Time {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name     string
		schedule string
		loc      *time.Location
		after    time.Time
		want     time.Time // an instant; compared with Equal
	}{
		// every: anchored on after.
		{"every adds the duration", "every 24h", rome, at(rome, "2026-11-21 10:17"), at(rome, "2026-11-22 10:17")},
		{"every is elapsed time across DST", "every 24h", rome, utc("2026-03-28T12:00:00Z"), utc("2026-03-29T12:00:00Z")},
		{"every 90m", "every 90m", time.UTC, utc("2026-11-21T23:00:00Z"), utc("2026-11-22T00:30:00Z")},

		// daily.
		{"daily later today", "daily 02:00", time.UTC, utc("2026-11-21T01:59:00Z"), utc("2026-11-21T02:00:00Z")},
		{"daily strictly after", "daily 02:00", time.UTC, utc("2026-11-21T02:00:00Z"), utc("2026-11-22T02:00:00Z")},
		{"daily tomorrow", "daily 02:00", time.UTC, utc("2026-11-21T02:00:01Z"), utc("2026-11-22T02:00:00Z")},
		{"daily across year end", "daily 00:00", time.UTC, utc("2026-12-31T00:00:00Z"), utc("2027-01-01T00:00:00Z")},
		{"daily in zone", "daily 02:00", rome, utc("2026-11-21T00:30:00Z"), utc("2026-11-21T01:00:00Z")},
		{"daily zone date differs from UTC date", "daily 02:00", rome, utc("2026-11-21T23:30:00Z"), utc("2026-11-22T01:00:00Z")},
		{"daily half-hour zone", "daily 09:00", kolkata, utc("2026-11-21T03:00:00Z"), utc("2026-11-21T03:30:00Z")},
		{"daily nil location is UTC", "daily 06:00", nil, utc("2026-11-21T07:00:00Z"), utc("2026-11-22T06:00:00Z")},

		// Spring forward in Rome: 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00 UTC).
		{"gap: 02:30 runs when the clocks jump", "daily 02:30", rome, at(rome, "2026-03-28 12:00"), utc("2026-03-29T01:00:00Z")},
		{"gap: next day is normal again", "daily 02:30", rome, utc("2026-03-29T01:00:00Z"), at(rome, "2026-03-30 02:30")},
		{"gap: after the jump the day's run is done", "daily 02:30", rome, at(rome, "2026-03-29 03:10"), at(rome, "2026-03-30 02:30")},
		{"gap: 02:00 itself does not exist", "daily 02:00", rome, at(rome, "2026-03-28 12:00"), utc("2026-03-29T01:00:00Z")},
		{"gap: 03:00 exists", "daily 03:00", rome, at(rome, "2026-03-28 12:00"), utc("2026-03-29T01:00:00Z")},
		{"gap: 01:59 exists", "daily 01:59", rome, at(rome, "2026-03-28 12:00"), utc("2026-03-29T00:59:00Z")},
		{"gap: weekly", "weekly sunday 02:30", rome, at(rome, "2026-03-23 00:00"), utc("2026-03-29T01:00:00Z")},
		{"gap: New York", "daily 02:15", newYork, at(newYork, "2026-03-07 12:00"), utc("2026-03-08T07:00:00Z")},
		{"gap at midnight (Sao Paulo 2018)", "daily 00:00", saoPaulo, utc("2018-11-03T12:00:00Z"), utc("2018-11-04T03:00:00Z")},

		// Fall back in Rome: 2026-10-25 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
		{"repeat: first occurrence", "daily 02:30", rome, at(rome, "2026-10-24 12:00"), utc("2026-10-25T00:30:00Z")},
		{"repeat: runs once", "daily 02:30", rome, utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")},
		{"repeat: between the occurrences", "daily 02:30", rome, utc("2026-10-25T01:00:00Z"), utc("2026-10-26T01:30:00Z")},
		{"repeat: 01:30 is before the change", "daily 01:30", rome, at(rome, "2026-10-24 12:00"), utc("2026-10-24T23:30:00Z")},
		{"repeat: 03:00 is after the change", "daily 03:00", rome, at(rome, "2026-10-24 12:00"), utc("2026-10-25T02:00:00Z")},
		{"repeat: New York", "daily 01:30", newYork, at(newYork, "2026-10-31 12:00"), utc("2026-11-01T05:30:00Z")},

		// weekly. 2026-11-21 is a Saturday.
		{"weekly later this week", "weekly monday 02:00", time.UTC, utc("2026-11-21T12:00:00Z"), utc("2026-11-23T02:00:00Z")},
		{"weekly same day later", "weekly saturday 13:00", time.UTC, utc("2026-11-21T12:00:00Z"), utc("2026-11-21T13:00:00Z")},
		{"weekly same day passed", "weekly saturday 11:00", time.UTC, utc("2026-11-21T12:00:00Z"), utc("2026-11-28T11:00:00Z")},
		{"weekly strictly after", "weekly saturday 12:00", time.UTC, utc("2026-11-21T12:00:00Z"), utc("2026-11-28T12:00:00Z")},
		{"weekly across year end", "weekly friday 08:00", time.UTC, utc("2026-12-31T12:00:00Z"), utc("2027-01-01T08:00:00Z")},
		{"weekly across DST keeps wall time", "weekly sunday 10:00", rome, at(rome, "2026-03-22 10:00"), at(rome, "2026-03-29 10:00")},

		// monthly.
		{"last-day of a 30-day month", "monthly last-day 18:00", time.UTC, utc("2026-11-21T00:00:00Z"), utc("2026-11-30T18:00:00Z")},
		{"last-day of a 31-day month", "monthly last-day 18:00", time.UTC, utc("2026-12-01T00:00:00Z"), utc("2026-12-31T18:00:00Z")},
		{"last-day passed: next month", "monthly last-day 18:00", time.UTC, utc("2026-11-30T18:00:00Z"), utc("2026-12-31T18:00:00Z")},
		{"last-day across year end", "monthly last-day 18:00", time.UTC, utc("2026-12-31T18:30:00Z"), utc("2027-01-31T18:00:00Z")},
		{"last-day of February", "monthly last-day 18:00", time.UTC, utc("2027-01-31T19:00:00Z"), utc("2027-02-28T18:00:00Z")},
		{"last-day of February in a leap year", "monthly last-day 18:00", time.UTC, utc("2028-02-01T00:00:00Z"), utc("2028-02-29T18:00:00Z")},
		{"last-day of February 2100 (not leap)", "monthly last-day 18:00", time.UTC, utc("2100-02-01T00:00:00Z"), utc("2100-02-28T18:00:00Z")},
		{"last-day of February 2000 (leap)", "monthly last-day 18:00", time.UTC, utc("2000-02-01T00:00:00Z"), utc("2000-02-29T18:00:00Z")},
		{"last-day after a leap day", "monthly last-day 18:00", time.UTC, utc("2028-02-29T18:00:00Z"), utc("2028-03-31T18:00:00Z")},
		{"last-day in zone ahead of UTC", "monthly last-day 23:30", rome, at(rome, "2026-11-30 23:00"), at(rome, "2026-11-30 23:30")},
		{"last-day in zone, UTC already next month", "monthly last-day 00:30", rome, utc("2026-11-30T23:00:00Z"), at(rome, "2026-12-31 00:30")},
		{"last-day on a fall-back day", "monthly last-day 02:30", rome, at(rome, "2027-10-01 00:00"), utc("2027-10-31T00:30:00Z")},
		{"last-day on a spring-forward day", "monthly last-day 02:30", rome, at(rome, "2024-03-01 00:00"), utc("2024-03-31T01:00:00Z")},
		{"day of month later this month", "monthly 28 06:00", time.UTC, utc("2026-11-21T00:00:00Z"), utc("2026-11-28T06:00:00Z")},
		{"day of month passed", "monthly 1 06:00", time.UTC, utc("2026-11-21T00:00:00Z"), utc("2026-12-01T06:00:00Z")},
		{"day of month strictly after", "monthly 1 06:00", time.UTC, utc("2026-12-01T06:00:00Z"), utc("2027-01-01T06:00:00Z")},
		{"day 28 in February", "monthly 28 06:00", time.UTC, utc("2027-01-28T07:00:00Z"), utc("2027-02-28T06:00:00Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := MustParse(tt.schedule)
			got := s.Next(tt.after, tt.loc)
			if !got.Equal(tt.want) {
				t.Errorf("%q.Next(%v) = %v (%v), want %v (%v)", tt.schedule, tt.after, got, got.UTC(), tt.want, tt.want.UTC())
			}
			if !got.After(tt.after) {
				t.Errorf("%q.Next(%v) = %v, not after it", tt.schedule, tt.after, got)
			}
			wantLoc := tt.loc
			if wantLoc == nil {
				wantLoc = time.UTC
			}
			if got.Location() != wantLoc {
				t.Errorf("%q.Next returned a time in %v, want %v", tt.schedule, got.Location(), wantLoc)
			}
		})
	}
}

// TestNext_year walks a calendar schedule through whole years in zones with
// and without DST and checks that every run is once per period, on the
// right day, and strictly increasing.
func TestNext_year(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{"UTC", "Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"} {
		loc := mustLoad(t, zone)
		for _, spec := range []string{"daily 02:30", "weekly sun 02:30", "monthly last-day 02:30", "monthly 15 00:00"} {
			s := MustParse(spec)
			start := time.Date(2027, 1, 1, 0, 0, 0, 0, loc)
			end := time.Date(2029, 1, 1, 0, 0, 0, 0, loc)
			runs := 0
			prevDay := ""
			for cur := s.Next(start, loc); cur.Before(end); cur = s.Next(cur, loc) {
				runs++
				day := cur.Format("2006-01-02")
				if day == prevDay {
					t.Fatalf("%s in %s: two runs on %s", spec, zone, day)
				}
				prevDay = day
				switch s.kind {
				case kindWeekly:
					if cur.Weekday() != time.Sunday {
						t.Fatalf("%s in %s: run on %v", spec, zone, cur)
					}
				case kindMonthly:
					want := s.day
					if want == 0 {
						want = daysIn(cur.Year(), cur.Month())
					}
					if cur.Day() != want {
						t.Fatalf("%s in %s: run on %v", spec, zone, cur)
					}
				}
				// The wall time is the scheduled one, except in a DST gap,
				// where it is at most the gap (up to an hour) later.
				wall := time.Date(cur.Year(), cur.Month(), cur.Day(), s.hour, s.minute, 0, 0, time.UTC)
				got := time.Date(cur.Year(), cur.Month(), cur.Day(), cur.Hour(), cur.Minute(), 0, 0, time.UTC)
				if d := got.Sub(wall); d < 0 || d > time.Hour {
					t.Fatalf("%s in %s: run at %v", spec, zone, cur)
				}
			}
			want := map[Schedule]int{
				MustParse("daily 02:30"):            731, // 2028 is a leap year
				MustParse("weekly sun 02:30"):       105,
				MustParse("monthly last-day 02:30"): 24,
				MustParse("monthly 15 00:00"):       24,
			}[s]
			if runs != want {
				t.Errorf("%s in %s: %d runs in 2027-2028, want %d", spec, zone, runs, want)
			}
		}
	}
}

func TestLoadLocation(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "UTC"} {
		loc, err := LoadLocation(name)
		if err != nil || loc != time.UTC {
			t.Errorf("LoadLocation(%q) = %v, %v; want UTC", name, loc, err)
		}
	}
	loc, err := LoadLocation("Europe/Rome")
	if err != nil || loc.String() != "Europe/Rome" {
		t.Errorf("LoadLocation(%q) = %v, %v", "Europe/Rome", loc, err)
	}
	for name, want := range map[string]string{
		"Mars/Olympus_Mons": `schedule: unknown time zone "Mars/Olympus_Mons" (want an IANA name such as "Europe/Rome" or "UTC")`,
		"europe/rome ":      `schedule: unknown time zone "europe/rome " (want an IANA name such as "Europe/Rome" or "UTC")`,
		"../../etc/passwd":  `schedule: unknown time zone "../../etc/passwd" (want an IANA name such as "Europe/Rome" or "UTC")`,
		"Local":             `schedule: time zone "Local" is not allowed; name the zone, e.g. "Europe/Rome"`,
	} {
		_, err := LoadLocation(name)
		if err == nil || err.Error() != want {
			t.Errorf("LoadLocation(%q) error\n got: %v\nwant: %s", name, err, want)
		}
	}
}

// TestLoadLocationSameEverywhere pins that LoadLocation accepts only the
// zones of the embedded database, whatever the machine has in
// /usr/share/zoneinfo: a Debian runner's "posix/" and "right/" copies,
// "localtime" (the host's zone, like "Local") and "posixrules", and the
// wrong case a Mac's case-insensitive disk finds, would pass the
// provider's plan and then be refused by psa-syncd in a container without
// tzdata.
func TestLoadLocationSameEverywhere(t *testing.T) {
	t.Parallel()
	const want = `(want an IANA name such as "Europe/Rome" or "UTC")`
	for name, hint := range map[string]string{
		"posix/Europe/Rome": `; did you mean "Europe/Rome"?`,
		"right/Europe/Rome": `; did you mean "Europe/Rome"?`,
		"right/UTC":         `; did you mean "UTC"?`,
		"europe/rome":       `; did you mean "Europe/Rome"?`,
		"AMERICA/NEW_YORK":  `; did you mean "America/New_York"?`,
		"localtime":         "",
		"posixrules":        "",
		"zone.tab":          "",
		"Europe":            "",
	} {
		_, err := LoadLocation(name)
		if w := `schedule: unknown time zone "` + name + `" ` + want + hint; err == nil || err.Error() != w {
			t.Errorf("LoadLocation(%q) error\n got: %v\nwant: %s", name, err, w)
		}
	}
	// Names that are zones, links (US/Eastern, Europe/Kiev) and the fixed
	// offsets of Etc/ load.
	for _, name := range []string{"Europe/Berlin", "America/New_York", "US/Eastern", "Europe/Kiev", "Europe/Kyiv", "Etc/GMT+5", "Etc/UTC", "CET", "Australia/Lord_Howe"} {
		if loc, err := LoadLocation(name); err != nil || loc.String() != name {
			t.Errorf("LoadLocation(%q) = %v, %v", name, loc, err)
		}
	}
}

// TestZoneNames checks the embedded database: its zones, each loadable.
func TestZoneNames(t *testing.T) {
	t.Parallel()
	names := zoneNames()
	if len(names) < 400 {
		t.Fatalf("the embedded zone database has %d zones; copy zoneinfo.zip again", len(names))
	}
	for _, name := range names {
		if _, err := LoadLocation(name); err != nil {
			t.Errorf("LoadLocation(%q): %v", name, err)
		}
	}
}

// TestLoadLocationRulesEmbedded pins that a zone's rules come from the
// embedded database, not from the machine's: time.LoadLocation reads
// $ZONEINFO (and /usr/share/zoneinfo) first, so a runner, a VM and a
// container with tzdata of different releases would put a month's first
// instant at different times. The test runs itself again with $ZONEINFO
// holding a "Europe/Rome" with UTC's rules (time reads $ZONEINFO once per
// process), as a machine's other release would give.
func TestLoadLocationRulesEmbedded(t *testing.T) {
	if os.Getenv("PSA_SCHEDULE_TEST_ZONEINFO") == "1" {
		loadLocationRulesEmbedded(t)
		return
	}
	files, err := zoneDB()
	if err != nil {
		t.Fatal(err)
	}
	utc, err := readZone(files["Etc/UTC"])
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	// Stored, not compressed: time reads only stored entries.
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "Europe/Rome", Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(utc); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "zoneinfo.zip")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadLocationRulesEmbedded$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PSA_SCHEDULE_TEST_ZONEINFO=1", "ZONEINFO="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("with $ZONEINFO=%s: %v\n%s", path, err, out)
	}
}

func loadLocationRulesEmbedded(t *testing.T) {
	if loc, err := time.LoadLocation("Europe/Rome"); err != nil {
		t.Fatal(err)
	} else if _, off := time.Date(2026, 1, 1, 0, 0, 0, 0, loc).Zone(); off != 0 {
		t.Fatalf("time.LoadLocation did not read $ZONEINFO (offset %d s): the test proves nothing", off)
	}
	loc, err := LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	if _, off := time.Date(2026, 1, 1, 0, 0, 0, 0, loc).Zone(); off != 3600 {
		t.Errorf("LoadLocation(%q) in January: offset %d s, want 3600 (the embedded rules, not $ZONEINFO's)", "Europe/Rome", off)
	}
	if got := loc.String(); got != "Europe/Rome" {
		t.Errorf("LoadLocation(%q).String() = %q", "Europe/Rome", got)
	}
}

func TestOffsetZoneNote(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"Etc/GMT+5":   `"Etc/GMT+5" is UTC-05:00, 5 hours behind UTC`,
		"Etc/GMT-10":  `"Etc/GMT-10" is UTC+10:00, 10 hours ahead of UTC`,
		"Etc/GMT+1":   `"Etc/GMT+1" is UTC-01:00, 1 hour behind UTC`,
		"Etc/GMT+0":   "",
		"Etc/GMT":     "",
		"Etc/UTC":     "",
		"Etc/GMT+99":  "",
		"Europe/Rome": "",
		"GMT+5":       "",
	} {
		got := OffsetZoneNote(name)
		if want == "" {
			if got != "" {
				t.Errorf("OffsetZoneNote(%q) = %q, want none", name, got)
			}
			continue
		}
		if !strings.HasPrefix(got, want+":") {
			t.Errorf("OffsetZoneNote(%q) = %q, want it to start with %q", name, got, want)
		}
	}
	// The note's offset is the zone's.
	loc, err := LoadLocation("Etc/GMT+5")
	if err != nil {
		t.Fatal(err)
	}
	if _, off := time.Date(2026, 7, 1, 0, 0, 0, 0, loc).Zone(); off != -5*3600 {
		t.Errorf("Etc/GMT+5 offset %d s, want -18000", off)
	}
}
