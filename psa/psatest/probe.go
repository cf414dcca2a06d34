package psatest

import (
	"net/http"
	"sync"
	"time"
)

// ConcurrencyProbe is an http.RoundTripper for tests of how many requests a
// client keeps in flight, without timing anything: every request waits
// until Want requests are in flight at once (from then on none waits), or
// until MaxWait has passed, which only happens to a client that never gets
// there. Peak then says how many were in flight at most. Wrap the client's
// transport with it: &http.Client{Transport: &ConcurrencyProbe{Want: 8}}.
type ConcurrencyProbe struct {
	// Want is the number of requests in flight that opens the gate.
	Want int
	// MaxWait bounds the wait of each request; 0 means 10 seconds.
	MaxWait time.Duration
	// Next sends the requests; nil means http.DefaultTransport.
	Next http.RoundTripper

	mu       sync.Mutex
	inFlight int
	peak     int
	open     chan struct{}
}

// RoundTrip waits at the gate, then sends req with Next.
func (p *ConcurrencyProbe) RoundTrip(req *http.Request) (*http.Response, error) {
	p.mu.Lock()
	if p.open == nil {
		p.open = make(chan struct{})
	}
	p.inFlight++
	p.peak = max(p.peak, p.inFlight)
	open := p.open
	if p.inFlight >= p.Want {
		select {
		case <-open:
		default:
			close(open)
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	wait := p.MaxWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	t := time.NewTimer(wait)
	select {
	case <-open:
	case <-t.C:
	case <-req.Context().Done():
	}
	t.Stop()
	next := p.Next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(req)
}

// Peak returns the most requests that were in flight at once.
func (p *ConcurrencyProbe) Peak() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}
