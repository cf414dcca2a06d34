package main

import (
	"runtime/debug"
)

// defaultMemoryLimit is the soft memory limit psa-syncd gives the Go
// runtime unless GOMEMLIMIT sets one. Go collects garbage when the heap has
// grown to twice what was live after the last collection; the limit makes
// it collect sooner once the process's Go memory nears 60 MiB, so that a
// pass over 100,000 contract lines (some 30 MB live) stays under 100 MiB
// resident. A process whose live heap is well below the limit never
// collects more often for it; one whose live heap exceeds it (a larger
// tenant) collects often, up to the half of its CPU the runtime allows for
// it, and should be given a higher limit. GOMEMLIMIT (for example
// GOMEMLIMIT=200MiB, or off for none) overrides it.
const defaultMemoryLimit = 60 << 20

// setMemoryLimit sets defaultMemoryLimit unless GOMEMLIMIT is set, in which
// case the runtime has already applied it. It returns the limit in effect.
func setMemoryLimit(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	return defaultMemoryLimit
}
