package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	// Embed the IANA time zone database so that LoadLocation works on
	// machines and containers without /usr/share/zoneinfo (about 450 KB).
	_ "time/tzdata"
)

// LoadLocation loads an IANA time zone such as "Europe/Rome". The empty
// string and "UTC" mean UTC. "Local" is refused: a schedule that follows
// the host's setting would change meaning when the daemon moves.
//
// A name is accepted only when it is a zone of the database embedded in
// the binary (time/tzdata), spelled as the database spells it, so that the
// provider on a CI runner or a Mac and psa-syncd in a container without
// tzdata accept the same names. time.LoadLocation alone reads the
// machine's /usr/share/zoneinfo first: there it also loads the files that
// are no zone names ("localtime", the host's own zone, as "Local" is;
// "posixrules"; the "posix/" and "right/" copies, the latter counting leap
// seconds) and, on a case-insensitive file system, "europe/rome"; the
// embedded database knows none of them, so a plan would pass that
// psa-syncd then refuses.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("schedule: time zone %q is not allowed; name the zone, e.g. \"Europe/Rome\"", name)
	}
	if _, ok := slices.BinarySearch(zoneNames[:], name); !ok {
		return nil, unknownZone(name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, unknownZone(name)
	}
	return loc, nil
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
	for _, z := range zoneNames {
		if strings.EqualFold(z, name) {
			return z
		}
	}
	return ""
}
