// Package schedule parses psa-sync's sync schedules and computes when the
// next run is due.
//
// The grammar is shared by the daemon configuration, the mapping export's
// integration.schedule and the provider's psa_integration resource:
//
//	every 24h                 a Go duration of at least 1m, anchored to the previous run
//	daily 02:00               every day at 02:00
//	weekly monday 02:00       every week (monday..sunday, or mon..sun)
//	monthly last-day 18:00    on the last day of every month
//	monthly 1 06:00           on a fixed day of every month (1..28)
//
// Calendar schedules are evaluated on the wall clock of a time zone, loaded
// with LoadLocation, which embeds the zone database (a copy of the Go
// toolchain's) and takes zone names and rules only from it, so that every
// machine accepts the same names and computes the same months. Next
// documents how daylight-saving gaps and repeats are handled.
//
// Usage:
//
//	s, err := schedule.Parse("daily 02:30")
//	if err != nil {
//		return err // schedule "daily 25:00": hour must be 00-23
//	}
//	loc, err := schedule.LoadLocation("Europe/Rome")
//	if err != nil {
//		return err
//	}
//	next := s.Next(time.Now(), loc)
//	timer := time.NewTimer(time.Until(next))
package schedule
