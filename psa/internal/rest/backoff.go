package rest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultBackoff is the backoff the clients use when none is configured:
// windows of 500ms, 1s, 2s, ... up to 30s.
var DefaultBackoff = Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second}

// Backoff is an exponential backoff with full jitter: the n-th retry
// (0-based) waits a random time up to min(Max, Base·2ⁿ). Full jitter spreads
// the retries of many clients throttled at the same moment, instead of
// sending them back in step.
type Backoff struct {
	// Base is the first window; it must be positive.
	Base time.Duration
	// Max caps the window; it must not be less than Base.
	Max time.Duration
}

// NewBackoff returns the backoff from base up to maxWait, or an error
// (without a package prefix) when base is not positive or maxWait is less
// than base.
func NewBackoff(base, maxWait time.Duration) (Backoff, error) {
	if base <= 0 || maxWait < base {
		return Backoff{}, fmt.Errorf("invalid backoff %s..%s", base, maxWait)
	}
	return Backoff{Base: base, Max: maxWait}, nil
}

// Wait returns the wait before retry number attempt (0-based): a random
// time within the attempt's window, and at least retryAfter, what the
// server asked for.
func (b Backoff) Wait(attempt int, retryAfter time.Duration) time.Duration {
	window := b.Base << min(attempt, 30)
	if window <= 0 || window > b.Max {
		window = b.Max
	}
	d := time.Duration(rand.Int64N(int64(window) + 1))
	return max(d, retryAfter)
}

// SleepContext waits for d, or returns ctx's error as soon as ctx ends.
func SleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
