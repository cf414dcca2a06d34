package schedule

import (
	"fmt"
	"time"

	// Embed the IANA time zone database so that LoadLocation works on
	// machines and containers without /usr/share/zoneinfo (about 450 KB).
	_ "time/tzdata"
)

// LoadLocation loads an IANA time zone such as "Europe/Rome". The empty
// string and "UTC" mean UTC. The zone database is embedded in the binary,
// so the result does not depend on the machine's tzdata. "Local" is
// refused: a schedule that follows the host's setting would change meaning
// when the daemon moves.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("schedule: time zone %q is not allowed; name the zone, e.g. \"Europe/Rome\"", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("schedule: unknown time zone %q (want an IANA name such as \"Europe/Rome\" or \"UTC\")", name)
	}
	return loc, nil
}
