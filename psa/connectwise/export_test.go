package connectwise

import "time"

// SetNow replaces the backend's clock, for tests of its caches.
func (b *Backend) SetNow(now func() time.Time) { b.now = now }

// StatusTTL is statusTTL, for tests that let agreement statuses expire.
const StatusTTL = statusTTL

// SetThrottleClock replaces the clock of the client's throttle, for tests
// of how long a request waits after a refusal.
func (c *Client) SetThrottleClock(now func() time.Time) { c.throttle.Now = now }
