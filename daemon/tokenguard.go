package daemon

import (
	"net"
	"sync"
	"time"
)

// Wrong API tokens a client address may send within wrongTokenWindow
// before its token checks are refused until the window has passed.
const (
	maxWrongTokens   = 10
	wrongTokenWindow = time.Minute
	// maxTokenClients bounds the addresses tokenGuard remembers: beyond
	// it, the oldest are forgotten first.
	maxTokenClients = 10000
)

// tokenGuard counts wrong API tokens (bearer tokens of the API and the
// status page's sign-in form) per client address, so that a token cannot
// be guessed at the speed of the network: after maxWrongTokens wrong ones
// within wrongTokenWindow, the address's token checks are refused, right
// token or not, until the window that began with its first wrong token has
// passed. A client behind the same proxy as the guesser is refused with
// it; the log names the address. The zero value is ready to use.
type tokenGuard struct {
	mu      sync.Mutex
	clients map[string]wrongTokens
}

// wrongTokens is one address's wrong tokens in the window that began at
// since.
type wrongTokens struct {
	n     int
	since time.Time
}

// clientAddr is the address tokenGuard counts a request's tokens under:
// the IP address of its peer, without the port.
func clientAddr(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// blocked reports whether addr's token checks are refused at now, and
// for how much longer.
func (g *tokenGuard) blocked(addr string, now time.Time) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.clients[addr]
	if !ok || c.n < maxWrongTokens {
		return 0, false
	}
	left := c.since.Add(wrongTokenWindow).Sub(now)
	return left, left > 0
}

// wrong records a wrong token from addr at now. It reports whether addr
// has just reached maxWrongTokens (to be logged once).
func (g *tokenGuard) wrong(addr string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.clients == nil {
		g.clients = make(map[string]wrongTokens)
	}
	c, ok := g.clients[addr]
	if !ok || now.Sub(c.since) >= wrongTokenWindow {
		if !ok && len(g.clients) >= maxTokenClients {
			g.forgetOldest(now)
		}
		c = wrongTokens{since: now}
	}
	c.n++
	g.clients[addr] = c
	return c.n == maxWrongTokens
}

// forgetOldest drops the addresses whose window has passed, or, when none
// has, the one whose window began first. The caller holds mu.
func (g *tokenGuard) forgetOldest(now time.Time) {
	oldest, first := "", time.Time{}
	for addr, c := range g.clients {
		if now.Sub(c.since) >= wrongTokenWindow {
			delete(g.clients, addr)
			continue
		}
		if oldest == "" || c.since.Before(first) {
			oldest, first = addr, c.since
		}
	}
	if len(g.clients) >= maxTokenClients {
		delete(g.clients, oldest)
	}
}
