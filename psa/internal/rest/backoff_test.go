package rest

import (
	"context"
	"testing"
	"time"
)

func TestNewBackoff(t *testing.T) {
	t.Parallel()
	if b, err := NewBackoff(time.Second, time.Minute); err != nil || b != (Backoff{Base: time.Second, Max: time.Minute}) {
		t.Errorf("NewBackoff(1s, 1m) = %+v, %v, want {1s 1m}, nil", b, err)
	}
	for _, tc := range []struct {
		base, max time.Duration
		want      string
	}{
		{0, time.Second, "invalid backoff 0s..1s"},
		{-time.Second, time.Second, "invalid backoff -1s..1s"},
		{time.Second, time.Millisecond, "invalid backoff 1s..1ms"},
	} {
		if _, err := NewBackoff(tc.base, tc.max); err == nil || err.Error() != tc.want {
			t.Errorf("NewBackoff(%s, %s) error = %v, want %q", tc.base, tc.max, err, tc.want)
		}
	}
}

func TestBackoff_Wait(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for _, tc := range []struct {
		attempt int
		window  time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{4, time.Second},  // capped
		{62, time.Second}, // the shift would overflow
		{1 << 20, time.Second},
	} {
		for range 200 {
			if d := b.Wait(tc.attempt, 0); d < 0 || d > tc.window {
				t.Fatalf("Wait(%d, 0) = %s, want within [0, %s]", tc.attempt, d, tc.window)
			}
		}
	}
	// Retry-After is a floor, even above the cap.
	if d := b.Wait(0, time.Minute); d != time.Minute {
		t.Errorf("Wait(0, 1m) = %s, want 1m", d)
	}
}

func TestBackoff_WaitJitters(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: time.Hour, Max: time.Hour}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[b.Wait(0, 0)] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 waits over an hour's window took %d distinct values, want jitter", len(seen))
	}
}

func TestSleepContext(t *testing.T) {
	t.Parallel()
	if err := SleepContext(t.Context(), 0); err != nil {
		t.Errorf("SleepContext(0) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if err := SleepContext(ctx, time.Hour); err != context.Canceled {
		t.Errorf("SleepContext(canceled, 1h) = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("SleepContext(canceled, 1h) took %s", d)
	}
}
