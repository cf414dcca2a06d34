package kaseyabms

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// limiter keeps to BMS's call limit per endpoint in a rolling window. It
// refuses a call instead of waiting, because a free slot can be up to an
// hour away; the caller gets a *psa.RateLimitError with Hourly set.
type limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	now    func() time.Time
	hits   map[string][]time.Time
}

func newLimiter(limit int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{limit: limit, window: window, now: now, hits: map[string][]time.Time{}}
}

// take records a call to endpoint, or refuses it when the window is full.
func (l *limiter) take(endpoint string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	h := l.hits[endpoint]
	i := 0
	for i < len(h) && !h[i].After(now.Add(-l.window)) {
		i++
	}
	h = h[i:]
	if len(h) >= l.limit {
		l.hits[endpoint] = h
		return &psa.RateLimitError{
			System:     psa.SystemKaseyaBMS,
			RetryAfter: h[0].Add(l.window).Sub(now),
			Hourly:     true,
			Message:    fmt.Sprintf("client-side limit of %d calls per hour to %s reached", l.limit, endpoint),
		}
	}
	l.hits[endpoint] = append(h, now)
	return nil
}

// count returns the calls to endpoint in the current window.
func (l *limiter) count(endpoint string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, t := range l.hits[endpoint] {
		if t.After(l.now().Add(-l.window)) {
			n++
		}
	}
	return n
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
