package kaseyabms

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// CallStore keeps the calls made to each BMS endpoint, and the endpoints BMS
// has refused (429) until a given time, so that the limit of HourlyLimit
// calls per endpoint per rolling hour can hold across passes and processes
// when the store is shared. The default keeps them in memory, for one
// process; a store in the daemon's state database can replace it
// (WithCallStore). Implementations must be safe for concurrent use, and
// Take must be atomic: two callers must never both get the last call.
type CallStore interface {
	// Take records a call to endpoint at now unless limit calls were
	// recorded in (now-window, now] or the endpoint is blocked at now. When
	// it refuses, free is when a call will be allowed again.
	Take(endpoint string, now time.Time, window time.Duration, limit int) (free time.Time, ok bool, err error)
	// Block refuses calls to endpoint until the given time.
	Block(endpoint string, until time.Time) error
	// Calls returns the number of calls recorded to each endpoint in
	// (now-window, now]; a blocked endpoint counts as limit calls.
	Calls(now time.Time, window time.Duration, limit int) (map[string]int, error)
}

// CallReturner is a CallStore that can give back a call it counted: the
// client gives back a call it counted (Take) and then did not send, since
// the sign-in before it failed, its wait for a concurrency slot ended, or
// ctx's write gate (psa.WithWriteGate) refused it, so that BMS's hourly
// budget is not spent on a call BMS never got. A store without it keeps
// such a call counted until it leaves the window, which errs on the safe
// side.
type CallReturner interface {
	// Return removes one call to endpoint recorded at at (Take's now), if
	// there is one.
	Return(endpoint string, at time.Time) error
}

// NewCallStore returns the in-memory CallStore that a client uses without
// WithCallStore, for a caller that reads what its clients counted (Calls)
// once they are done: a psa-syncd command that runs beside the daemon and
// may not write the daemon's count.
func NewCallStore() CallStore { return newMemoryCallStore() }

// memoryCallStore is the in-process CallStore.
type memoryCallStore struct {
	mu      sync.Mutex
	hits    map[string][]time.Time // oldest first
	blocked map[string]time.Time
}

func newMemoryCallStore() *memoryCallStore {
	return &memoryCallStore{hits: map[string][]time.Time{}, blocked: map[string]time.Time{}}
}

// prune drops the calls at or before now-window; the caller holds mu.
func (m *memoryCallStore) prune(endpoint string, now time.Time, window time.Duration) []time.Time {
	h := m.hits[endpoint]
	i := 0
	for i < len(h) && !h[i].After(now.Add(-window)) {
		i++
	}
	h = h[i:]
	m.hits[endpoint] = h
	return h
}

func (m *memoryCallStore) Take(endpoint string, now time.Time, window time.Duration, limit int) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until, ok := m.blocked[endpoint]; ok {
		if now.Before(until) {
			return until, false, nil
		}
		delete(m.blocked, endpoint)
	}
	h := m.prune(endpoint, now, window)
	if len(h) >= limit {
		return h[len(h)-limit].Add(window), false, nil
	}
	m.hits[endpoint] = append(h, now)
	return time.Time{}, true, nil
}

func (m *memoryCallStore) Return(endpoint string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hits[endpoint]
	if i := slices.IndexFunc(h, at.Equal); i >= 0 {
		m.hits[endpoint] = slices.Delete(h, i, i+1)
	}
	return nil
}

func (m *memoryCallStore) Block(endpoint string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until.After(m.blocked[endpoint]) {
		m.blocked[endpoint] = until
	}
	return nil
}

func (m *memoryCallStore) Calls(now time.Time, window time.Duration, limit int) (map[string]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for ep := range m.hits {
		out[ep] = len(m.prune(ep, now, window))
	}
	for ep, until := range m.blocked {
		if now.Before(until) {
			out[ep] = limit
		}
	}
	return out, nil
}

// limiter keeps to BMS's call limit per endpoint in a rolling window. It
// refuses a call instead of waiting, because a free slot can be up to an
// hour away; the caller gets a *psa.RateLimitError with Hourly set.
type limiter struct {
	limit  int
	window time.Duration
	now    func() time.Time
	store  CallStore

	mu sync.Mutex
	// warned is, per endpoint, the end of the last hold whose longer
	// Retry-After was logged: the calls already in flight when BMS refused
	// the first get 429 too, and one warning per hold is enough.
	warned map[string]time.Time
}

func newLimiter(limit int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{limit: limit, window: window, now: now, store: newMemoryCallStore(), warned: map[string]time.Time{}}
}

// take records a call to endpoint, and returns the time it is recorded
// at, for giveBack; or refuses it when the window is full or BMS refused
// the endpoint until later.
func (l *limiter) take(endpoint string) (time.Time, error) {
	now := l.now()
	free, ok, err := l.store.Take(endpoint, now, l.window, l.limit)
	if err != nil {
		return time.Time{}, fmt.Errorf("kaseyabms: counting calls to %s: %w", endpoint, err)
	}
	if ok {
		return now, nil
	}
	return time.Time{}, &psa.RateLimitError{
		System:     psa.SystemKaseyaBMS,
		RetryAfter: free.Sub(now),
		Hourly:     true,
		Message: fmt.Sprintf("limit of %d calls per hour to %s reached; the budget frees up at %s",
			l.limit, endpoint, free.UTC().Format(time.RFC3339)),
	}
}

// giveBack gives back the call to endpoint that take recorded at at and
// that was not sent, where the store can (CallReturner). A store that
// fails to keeps the call counted: safe, and no reason to fail the call.
func (l *limiter) giveBack(endpoint string, at time.Time) {
	if r, ok := l.store.(CallReturner); ok {
		_ = r.Return(endpoint, at)
	}
}

// refused records that BMS answered 429 for endpoint: no further call goes
// there until the time the answer gave or, when it gave none, for a whole
// window (the calls that used the budget up may have been made by another
// process, so no earlier time is known). It returns that time.
//
// A Retry-After longer than the window is held for the window only: BMS's
// only documented limit is per endpoint per rolling hour, which a window
// without calls frees whatever the answer said, and the hold stops every
// billing write to the endpoint (up to a day for the longest Retry-After
// read). warn is set for the first such refusal of a hold, for the caller
// to log the server's value once.
func (l *limiter) refused(endpoint string, retryAfter time.Duration) (until time.Time, warn bool) {
	now := l.now()
	until = now.Add(retryAfter)
	if retryAfter <= 0 || retryAfter > l.window {
		until = now.Add(l.window)
	}
	if retryAfter > l.window {
		l.mu.Lock()
		warn = !now.Before(l.warned[endpoint])
		if until.After(l.warned[endpoint]) {
			l.warned[endpoint] = until
		}
		l.mu.Unlock()
	}
	_ = l.store.Block(endpoint, until) // the 429 itself is reported either way
	return until, warn
}

// count returns the calls to endpoint in the current window.
func (l *limiter) count(endpoint string) int {
	calls, err := l.store.Calls(l.now(), l.window, l.limit)
	if err != nil {
		return 0
	}
	return calls[endpoint]
}

// budgets returns the calls left per endpoint used in the window; nil when
// the store cannot count them.
func (l *limiter) budgets() map[string]psa.Budget {
	calls, err := l.store.Calls(l.now(), l.window, l.limit)
	if err != nil {
		return nil
	}
	out := make(map[string]psa.Budget, len(calls))
	for ep, n := range calls {
		out[ep] = psa.Budget{Limit: l.limit, Used: min(n, l.limit), Timeframe: l.window}
	}
	return out
}

var numericSegment = regexp.MustCompile(`/\d+(/|$)`)

// endpointKey returns the endpoint template a path counts against: the
// path below the API root, lower-cased, with numeric segments replaced by
// "{id}" (so /v2/admin/finance/services/7 and /services/8 share a budget).
func endpointKey(path, root string) string {
	p := strings.ToLower(path)
	if r := strings.ToLower(strings.TrimSuffix(root, "/")); r != "" && strings.HasPrefix(p, r) {
		p = p[len(r):]
	}
	for {
		q := numericSegment.ReplaceAllString(p, "/{id}$1")
		if q == p {
			break
		}
		p = q
	}
	return strings.TrimSuffix(p, "/")
}

// CallsInWindow returns how many calls to the endpoint of path (such as
// "/v2/admin/finance/services/7") the client made in the rolling hour.
func (c *Client) CallsInWindow(path string) int {
	return c.limiter.count(endpointKey("/"+strings.TrimPrefix(path, "/"), ""))
}
