package kaseyabms

import (
	"context"
	"time"
)

// SetSleep replaces the function that waits between retries.
func (c *Client) SetSleep(sleep func(ctx context.Context, d time.Duration) error) { c.sleep = sleep }

// SetNow replaces the backend's clock.
func (b *Backend) SetNow(now func() time.Time) { b.now = now }
