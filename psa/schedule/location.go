package schedule

import (
	"archive/zip"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// zoneinfoZip is the IANA time zone database, a copy of the Go toolchain's
// lib/time/zoneinfo.zip (the file time/tzdata embeds). After a Go upgrade
// that brings a new tzdata release, copy it again:
//
//	cp "$(go env GOROOT)/lib/time/zoneinfo.zip" psa/schedule/
//
//go:embed zoneinfo.zip
var zoneinfoZip string

// zoneDB is the embedded database's zones by name, read once.
var zoneDB = sync.OnceValues(func() (map[string]*zip.File, error) {
	zr, err := zip.NewReader(strings.NewReader(zoneinfoZip), int64(len(zoneinfoZip)))
	if err != nil {
		return nil, fmt.Errorf("schedule: embedded zone database: %w", err)
	}
	files := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, "/") {
			files[f.Name] = f
		}
	}
	return files, nil
})

// zoneNames are the embedded database's zone names, sorted.
var zoneNames = sync.OnceValue(func() []string {
	files, _ := zoneDB() // an unreadable database has no names: every zone is refused
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
})

// locations caches the zones loaded, by name: a zone's rules are read
// from the database once per process.
var locations struct {
	sync.Mutex
	byName map[string]*time.Location
}

// LoadLocation loads an IANA time zone such as "Europe/Rome". The empty
// string and "UTC" mean UTC. "Local" is refused: a schedule that follows
// the host's setting would change meaning when the daemon moves.
//
// Names and rules both come from the database embedded in the binary, a
// copy of the Go toolchain's, never from the machine's. time.LoadLocation
// reads the machine's /usr/share/zoneinfo (or $ZONEINFO) first: there it
// also loads files that are no zone names ("localtime", the host's own
// zone, as "Local" is; "posixrules"; the "posix/" and "right/" copies, the
// latter counting leap seconds) and, on a case-insensitive file system,
// "europe/rome", so a plan on a CI runner would pass that psa-syncd in a
// container without tzdata refuses; and a runner, a VM and a container
// with tzdata of different releases would put a month's start at
// different instants where a zone's rules changed. With one database,
// the provider and every psa-syncd instance built from one commit accept
// the same names and compute the same billing months.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("schedule: time zone %q is not allowed; name the zone, e.g. \"Europe/Rome\"", name)
	}
	locations.Lock()
	defer locations.Unlock()
	if loc, ok := locations.byName[name]; ok {
		return loc, nil
	}
	files, err := zoneDB()
	if err != nil {
		return nil, err
	}
	f, ok := files[name]
	if !ok {
		return nil, unknownZone(name)
	}
	data, err := readZone(f)
	if err != nil {
		return nil, fmt.Errorf("schedule: time zone %q: embedded zone database: %w", name, err)
	}
	loc, err := time.LoadLocationFromTZData(name, data)
	if err != nil {
		return nil, fmt.Errorf("schedule: time zone %q: embedded zone database: %w", name, err)
	}
	if locations.byName == nil {
		locations.byName = make(map[string]*time.Location)
	}
	locations.byName[name] = loc
	return loc, nil
}

func readZone(f *zip.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }() // read from memory
	return io.ReadAll(rc)
}

// unknownZone is LoadLocation's error for name, with the zone meant when
// name differs from one only in case or by a "posix/" or "right/" prefix.
func unknownZone(name string) error {
	msg := fmt.Sprintf("schedule: unknown time zone %q (want an IANA name such as \"Europe/Rome\" or \"UTC\")", name)
	if z := suggestZone(name); z != "" {
		msg += fmt.Sprintf("; did you mean %q?", z)
	}
	return errors.New(msg)
}

func suggestZone(name string) string {
	for _, p := range []string{"posix/", "right/"} {
		if len(name) > len(p) && strings.EqualFold(name[:len(p)], p) {
			name = name[len(p):]
			break
		}
	}
	for _, z := range zoneNames() {
		if strings.EqualFold(z, name) {
			return z
		}
	}
	return ""
}

// OffsetZoneNote explains the sign of a fixed-offset zone "Etc/GMT+N" or
// "Etc/GMT-N", which is the opposite of what the name suggests (the tz
// database follows POSIX: "Etc/GMT+5" is five hours behind UTC), and that
// such a zone never changes for daylight saving time. It returns "" for
// every other name, "Etc/GMT+0" and "Etc/GMT-0" included.
func OffsetZoneNote(name string) string {
	rest, ok := strings.CutPrefix(name, "Etc/GMT")
	if !ok || len(rest) < 2 || (rest[0] != '+' && rest[0] != '-') || rest[1:] == "0" {
		return ""
	}
	if _, err := LoadLocation(name); err != nil {
		return ""
	}
	n, err := strconv.Atoi(rest[1:])
	if err != nil {
		return ""
	}
	unit := "hours"
	if n == 1 {
		unit = "hour"
	}
	side, sign := "behind", "-"
	if rest[0] == '-' {
		side, sign = "ahead of", "+"
	}
	return fmt.Sprintf("%q is UTC%s%02d:00, %d %s %s UTC: the tz database's Etc/GMT zones carry the opposite sign of the offset (POSIX). "+
		"It never changes for daylight saving time; where billing follows a place's clock, name the place's zone instead (e.g. \"America/New_York\").",
		name, sign, n, n, unit, side)
}
