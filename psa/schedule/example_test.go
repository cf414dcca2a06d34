package schedule_test

import (
	"fmt"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

func ExampleParse() {
	s, err := schedule.Parse("Weekly Mon 2:00")
	if err != nil {
		panic(err)
	}
	fmt.Println(s, s.Interval())

	_, err = schedule.Parse("daily 25:00")
	fmt.Println(err)
	// Output:
	// weekly monday 02:00 168h0m0s
	// schedule "daily 25:00": hour must be 00-23
}

func ExampleSchedule_Next() {
	rome, err := schedule.LoadLocation("Europe/Rome")
	if err != nil {
		panic(err)
	}
	s := schedule.MustParse("daily 02:30")
	// On 29 March 2026 Rome's clocks jump from 02:00 to 03:00: 02:30 does
	// not exist, and the run happens at the jump.
	next := s.Next(time.Date(2026, 3, 28, 12, 0, 0, 0, rome), rome)
	fmt.Println(next)
	fmt.Println(s.Next(next, rome))

	last := schedule.MustParse("monthly last-day 18:00")
	fmt.Println(last.Next(time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC), time.UTC))
	// Output:
	// 2026-03-29 03:00:00 +0200 CEST
	// 2026-03-30 02:30:00 +0200 CEST
	// 2028-02-29 18:00:00 +0000 UTC
}
