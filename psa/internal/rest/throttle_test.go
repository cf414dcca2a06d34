package rest

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// sleeps records the waits of a Throttle's Enter in place of sleeping them.
type sleeps []time.Duration

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	*s = append(*s, d)
	return nil
}

// TestThrottle_heldTooLongNotSent: a request refused when the throttle
// began (one of those in flight), and held back while other requests were
// refused for th.MaxHeld, gives up without being sent, with the
// last refusal saying how long it waited, rather than taking its turn as
// the probe after five minutes.
func TestThrottle_heldTooLongNotSent(t *testing.T) {
	t.Parallel()
	// The clock stands still, as the sleep function returns at once.
	stopped := time.Date(2026, time.November, 16, 8, 0, 0, 0, time.UTC)
	th := Throttle{MaxHeld: 5 * time.Minute, Now: func() time.Time { return stopped }}
	var waits sleeps
	next := func(int) time.Duration { return time.Second }
	rl := &psa.RateLimitError{System: psa.SystemConnectWise, RetryAfter: time.Minute}
	var a, b Ticket
	for _, tk := range []*Ticket{&a, &b} {
		if err := th.Enter(t.Context(), tk, waits.sleep); err != nil {
			t.Fatalf("enter before any refusal: %v", err)
		}
	}
	th.Answered(&a, http.StatusTooManyRequests, rl, next)
	th.Answered(&b, http.StatusTooManyRequests, rl, next)
	// a is sent again after each minute and refused, five times.
	for range 5 {
		if err := th.Enter(t.Context(), &a, waits.sleep); err != nil || !a.probe {
			t.Fatalf("enter of the probe = %v (probe %v), want its turn", err, a.probe)
		}
		th.Answered(&a, http.StatusTooManyRequests, rl, next)
	}
	err := th.Enter(t.Context(), &b, waits.sleep)
	var held *HeldTooLongError
	var got *psa.RateLimitError
	if !errors.As(err, &held) || !errors.As(err, &got) || got.Waited != th.MaxHeld {
		t.Fatalf("enter after five minutes held = %v, want the last refusal, waited %s", err, th.MaxHeld)
	}
	if b.probe || len(waits) != 5 {
		t.Errorf("probe %v, waits %v: want the held request not sent, and one wait per probe (5)", b.probe, waits)
	}
	if th.probing {
		t.Error("the throttle is left with a probe that gave up")
	}
}

// TestThrottle_heldFromWhenTheRequestCame: a request that comes 4 s into
// a 10 s wait is sent after the 6 s left (limits4), and is held for those
// 6 s, not the whole wait: it counted the 4 s before it came too, and so
// reached MaxHeld, and failed unsent, up to one wait early. The request
// refused when the wait began is held the whole wait.
func TestThrottle_heldFromWhenTheRequestCame(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.November, 16, 8, 0, 0, 0, time.UTC)
	th := Throttle{MaxHeld: 5 * time.Minute, Now: func() time.Time { return now }}
	var waits sleeps
	next := func(int) time.Duration { return time.Second }
	var refused, came Ticket
	if err := th.Enter(t.Context(), &refused, waits.sleep); err != nil {
		t.Fatal(err)
	}
	th.Answered(&refused, http.StatusTooManyRequests, &psa.RateLimitError{System: psa.SystemConnectWise, RetryAfter: 10 * time.Second}, next)
	now = now.Add(4 * time.Second)
	if err := th.Enter(t.Context(), &came, waits.sleep); err != nil || !came.probe {
		t.Fatalf("enter 4 s into the wait = %v (probe %v), want the probe", err, came.probe)
	}
	if len(waits) != 1 || waits[0] != 6*time.Second {
		t.Fatalf("waits %v, want [6s]", waits)
	}
	if got := th.Held(&came); got != 6*time.Second {
		t.Errorf("the request that came 4 s into the wait was held %s, want 6s", got)
	}
	if got := th.Held(&refused); got != 10*time.Second {
		t.Errorf("the refused request was held %s, want 10s", got)
	}
}

// TestThrottle_retryAfterOverCapHoldsNothing: a 429 whose Retry-After is
// over rest.MaxRetryAfter fails its own request (Client.classify) and
// holds back no other request: the next one is sent at once, where it
// would wait five minutes first, and a ticket pass minutes later with it.
func TestThrottle_retryAfterOverCapHoldsNothing(t *testing.T) {
	t.Parallel()
	th := Throttle{MaxHeld: 5 * time.Minute}
	var waits sleeps
	var a, b Ticket
	if err := th.Enter(t.Context(), &a, waits.sleep); err != nil {
		t.Fatal(err)
	}
	if th.Answered(&a, http.StatusTooManyRequests, &psa.RateLimitError{System: psa.SystemConnectWise, RetryAfter: time.Hour}, func(int) time.Duration { return time.Second }) {
		t.Error("a Retry-After of an hour started the throttle")
	}
	if err := th.Enter(t.Context(), &b, waits.sleep); err != nil || b.probe || len(waits) != 0 {
		t.Errorf("next request: %v, probe %v, waits %v; want it sent at once", err, b.probe, waits)
	}
}

// TestThrottle_internalServerErrorToProbe: a 500 to the probe ends the
// throttle only for a PSA whose 500 is its answer to a request it took
// (Autotask's validation errors); for one whose 500 is a fault of its own
// (ConnectWise's timeouts, FaultNoAnswer), the throttle goes on and the
// next request is sent alone, where every held request used to go at once.
func TestThrottle_internalServerErrorToProbe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		faultNoAnswer bool
		wantProbe     bool
	}{
		{"autotask: the PSA took it", false, false},
		{"connectwise: no answer", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			th := Throttle{MaxHeld: 5 * time.Minute, FaultNoAnswer: tc.faultNoAnswer}
			sleep := func(context.Context, time.Duration) error { return nil }
			next := func(int) time.Duration { return time.Second }
			var a, b Ticket
			if err := th.Enter(t.Context(), &a, sleep); err != nil {
				t.Fatal(err)
			}
			th.Answered(&a, http.StatusTooManyRequests, &psa.RateLimitError{RetryAfter: time.Second}, next)
			if err := th.Enter(t.Context(), &a, sleep); err != nil || !a.probe {
				t.Fatalf("enter after the refusal = %v (probe %v), want the probe", err, a.probe)
			}
			th.Answered(&a, http.StatusInternalServerError, nil, next)
			if err := th.Enter(t.Context(), &b, sleep); err != nil || b.probe != tc.wantProbe {
				t.Errorf("next request after a 500 to the probe: %v, probe %v; want probe %v", err, b.probe, tc.wantProbe)
			}
		})
	}
}
