package rest

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// A Throttle holds back every request of a client, or of one of its
// endpoints, while the PSA refuses them for a limit (a RateLimitError).
// After a refusal, one request at a time is sent, each after a wait: the
// Retry-After of the last refusal when it gave one, else the backoff,
// which grows with every refusal in a row. The other requests, retries and
// new ones alike, wait for that request's answer, and all go once the PSA
// takes it. Each request in flight used to retry on its own backoff: eight
// of them sent about two requests a second into a ConnectWise that was
// throttling, and a ninth request sent at once; three Autotask requests
// refused for the thread threshold kept probing it each on its own.
//
// A refusal with a Retry-After over MaxRetryAfter holds nothing back: its
// request fails at once (the client's classify), and so does each other
// request the PSA refuses so, rather than the client holding them for
// minutes.
//
// The time a request was held is the sum of the probes' waits (they follow
// one another, from each refusal to the next probe), not read off a clock,
// which keeps it exact with a test's sleep function; less, for a request
// that came while a wait ran, the part of it that had run (see position).
//
// The zero Throttle holds a request back for ever while the PSA refuses
// it; MaxHeld bounds that. A Throttle is safe for concurrent use.
type Throttle struct {
	// MaxHeld is how long Enter holds a request back, without sending it,
	// before it gives up with a *HeldTooLongError; 0 is for ever.
	MaxHeld time.Duration
	// Now is the clock the waits run on from each refusal; nil is
	// time.Now. Tests replace it before the first request.
	Now func() time.Time
	// FaultNoAnswer is set for a PSA whose 500 is a fault of its own that
	// says nothing of its limit (ConnectWise: a timeout or an overload;
	// it answers a bad request 400): to the probe it is no answer, as a
	// gateway's 502, 503 or 504, and the throttle goes on. Unset, a 500 is
	// the PSA's answer to a request it took (Autotask answers validation
	// and business-rule errors 500, past its thread limit), which ends
	// the throttle.
	FaultNoAnswer bool

	mu sync.Mutex
	// refusals counts the refusals in a row; 0 when the PSA is not
	// refusing requests.
	refusals int
	// wait is what the next request waits before it is sent, from
	// refusedAt: a probe that comes once it has passed (the next pass's
	// first request) is sent at once.
	wait      time.Duration
	refusedAt time.Time
	// served is set once a probe has waited the wait: a probe after it
	// without a refusal between (the last one got no answer of the PSA's,
	// or was not sent) is sent at once, alone.
	served bool
	// last is the latest refusal, returned to a request that gives up
	// waiting without being sent.
	last *psa.RateLimitError
	// probing is set while one request waits and is sent; the others wait
	// for its answer.
	probing bool
	// changed is closed, and replaced, when the probe is answered or gives
	// up.
	changed chan struct{}
	// slept is the waits of every probe so far, over the client's life;
	// counted is set once it holds the current wait.
	slept   time.Duration
	counted bool
	// epoch counts the ends of a throttle: a refusal of a request sent in
	// an earlier epoch is stale, and does not start a new throttle.
	epoch uint64
}

// A Ticket is one request's standing with its throttle, over all its
// attempts. Its zero value is a request not yet sent.
type Ticket struct {
	// met is set once the request was refused or held back; from is
	// throttle.slept then, or its position for a request that came while
	// a wait ran.
	met  bool
	from time.Duration
	// probe is set while the request's attempt is the throttle's probe.
	probe bool
	// epoch is the throttle's epoch when the attempt was let through.
	epoch uint64
}

// HeldTooLongError is returned by Throttle.Enter to a request that the
// throttle held back for its MaxHeld without sending it. Err is the last
// refusal, saying how long the request waited (psa.RateLimitError.Waited).
type HeldTooLongError struct{ Err error }

func (e *HeldTooLongError) Error() string { return e.Err.Error() }
func (e *HeldTooLongError) Unwrap() error { return e.Err }

// Enter returns once tk's request may be sent: at once when the PSA is
// not refusing requests; else when its turn came to be the probe, after the
// wait, or when the request has been held back for MaxHeld (with a
// *HeldTooLongError) or ctx ends (with ctx's error).
func (t *Throttle) Enter(ctx context.Context, tk *Ticket, sleep func(context.Context, time.Duration) error) error {
	tk.probe = false
	t.mu.Lock()
	for {
		if t.refusals == 0 {
			tk.epoch = t.epoch
			t.mu.Unlock()
			return nil
		}
		if !tk.met {
			tk.met, tk.from = true, t.position()
		}
		if held := t.held(tk); t.MaxHeld > 0 && held >= t.MaxHeld && t.last != nil {
			err := WaitedFor(t.last, held)
			t.mu.Unlock()
			return &HeldTooLongError{Err: err}
		}
		if !t.probing {
			t.probing = true
			// The wait runs from the refusal: a request that comes while
			// it runs waits what is left of it, not the whole wait again.
			var d time.Duration
			if !t.served {
				d = max(t.wait-t.clock().Sub(t.refusedAt), 0)
				if !t.counted {
					t.slept, t.counted = t.slept+t.wait, true
				}
			}
			t.mu.Unlock()
			if d > 0 {
				if err := sleep(ctx, d); err != nil {
					t.mu.Lock()
					t.endProbe()
					t.mu.Unlock()
					return err
				}
			}
			t.mu.Lock()
			tk.probe, tk.epoch = true, t.epoch
			t.served = true
			t.mu.Unlock()
			return nil
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		changed := t.changed
		t.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		t.mu.Lock()
	}
}

// Answered records the answer to tk's attempt, of HTTP status status: rl
// is the refusal, nil for any other answer (an attempt without an answer
// is Abandon's). next gives the backoff after n refusals in a row
// (0-based) when the PSA gave no Retry-After, capped at MaxRetryAfter.
// started is whether this refusal began a throttle.
//
// A 502, 503 or 504 is a gateway's answer (a proxy or load balancer that
// could not reach the PSA, or an overloaded PSA) that says nothing of the
// PSA's limit: to the probe it is taken as no answer (Abandon), not as the
// PSA taking the request, which let every held request go at once. So is a
// 500 when FaultNoAnswer is set.
func (t *Throttle) Answered(tk *Ticket, status int, rl *psa.RateLimitError, next func(n int) time.Duration) (started bool) {
	if rl == nil && t.noAnswer(status) {
		t.Abandon(tk)
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rl != nil && rl.RetryAfter > MaxRetryAfter {
		// Its request fails with it; it holds nothing back.
		if tk.probe {
			t.endProbe()
		}
		return false
	}
	if rl != nil && !tk.met {
		tk.met, tk.from = true, t.slept
	}
	switch {
	case tk.probe && rl == nil:
		// The PSA took the probe: every request goes again.
		t.refusals, t.wait, t.last = 0, 0, nil
		t.epoch++
		t.endProbe()
	case tk.probe:
		t.refusals++
		t.wait, t.refusedAt, t.last, t.served, t.counted = waitAfter(rl, t.refusals, next), t.clock(), rl, false, false
		t.endProbe()
	case rl == nil, tk.epoch != t.epoch:
		// A request sent before the throttle, or before it ended, says
		// nothing of the PSA now.
	case t.refusals == 0:
		t.refusals = 1
		t.wait, t.refusedAt, t.last, t.served, t.counted = waitAfter(rl, 1, next), t.clock(), rl, false, false
		return true
	default:
		// One of the requests in flight when the throttle began: its
		// Retry-After may only lengthen the wait.
		now := t.clock()
		if d := waitAfter(rl, 0, next); now.Add(d).After(t.refusedAt.Add(t.wait)) {
			t.wait, t.refusedAt, t.served, t.counted = d, now, false, false
		}
		t.last = rl
	}
	return false
}

// Abandon releases the probe role of tk's attempt, which was not sent (its
// context ended, or the write gate refused it) or got no answer of the
// PSA's (its connection was lost). That says nothing of the PSA's limit:
// the throttle goes on, and the next request is sent alone, at once, since
// the probe waited the wait. Ending the throttle on a lost connection let
// every held request go at once, the burst the throttle exists to prevent.
func (t *Throttle) Abandon(tk *Ticket) {
	if !tk.probe {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tk.probe = false
	t.endProbe()
}

// Held returns how long tk's request has been held back or refused by the
// throttle; 0 before it was.
func (t *Throttle) Held(tk *Ticket) time.Duration {
	if !tk.met {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.held(tk)
}

// held is how long tk's request has been held back or refused. t.mu is
// held.
func (t *Throttle) held(tk *Ticket) time.Duration {
	return max(t.position()-tk.from, 0)
}

// position is the time held that the throttle has counted now: slept, and
// the part of the current wait that has run on its clock until a probe
// counts the whole wait. A request that comes while a wait runs starts
// from it: it is held only for what is left of the wait, which is what
// its probe sleeps, where it counted the whole wait and reached MaxHeld
// early. t.mu is held.
func (t *Throttle) position() time.Duration {
	if t.refusals == 0 || t.counted {
		return t.slept
	}
	return t.slept + min(max(t.clock().Sub(t.refusedAt), 0), t.wait)
}

// noAnswer reports whether an answer of HTTP status status, not a
// refusal, says nothing of the PSA's limit.
func (t *Throttle) noAnswer(status int) bool {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusInternalServerError:
		return t.FaultNoAnswer
	}
	return false
}

// clock returns the time on t's clock.
func (t *Throttle) clock() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

// endProbe lets the waiting requests look again. t.mu is held.
func (t *Throttle) endProbe() {
	t.probing = false
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

// waitAfter is the wait after refusal rl, the n-th in a row (1-based; 0
// for a request in flight when the throttle began, which waits at least
// its Retry-After): the Retry-After the PSA gave, else the backoff.
// The backoff is at most MaxRetryAfter, a Retry-After too (a longer
// one does not reach the throttle).
func waitAfter(rl *psa.RateLimitError, n int, next func(n int) time.Duration) time.Duration {
	switch {
	case rl.RetryAfter > 0:
		return min(rl.RetryAfter, MaxRetryAfter)
	case n == 0:
		return 0
	}
	return min(next(n-1), MaxRetryAfter)
}

// WaitedFor returns err, a refusal for a limit, saying that the client
// waited d for the PSA to take the request (psa.RateLimitError.Waited).
func WaitedFor(err error, d time.Duration) error {
	var rl *psa.RateLimitError
	if !errors.As(err, &rl) {
		return err
	}
	w := *rl
	w.Waited = d
	return &w
}
