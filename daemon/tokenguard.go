package daemon

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
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
// passed. The address is clientAddr's: behind a proxy that is not in
// web.trusted_proxies, a client behind the same proxy as the guesser is
// refused with it; the log names the address. An IPv6 address is counted
// with its /64 (see guardKey): a client is given a /64 at least, and picks
// a new address in it at will. The zero value is ready to use.
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

// clientAddr is the address tokenGuard counts r's tokens under, and the
// logs name: the IP address of its peer, without the port. When the peer
// is one of trusted (web.trusted_proxies), it is the right-most address of
// r's X-Forwarded-For that is not itself trusted: each proxy appends the
// address it was reached from, so the entries left of it are the client's
// own to write and never taken. An entry that is not an IP address (a
// proxy that writes something else) stops the search at the last
// trusted address; when every entry is trusted, the left-most is the
// client. The header of a peer that is not trusted is never looked at.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(peer, trusted) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := forwardedAddr(hops[i])
		if !ok {
			break
		}
		client = hop
		if !isTrusted(hop, trusted) {
			break
		}
	}
	return client.String()
}

// isTrusted reports whether a is in one of trusted.
func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap().WithZone("")
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedAddr reads one X-Forwarded-For entry: an IP address, which
// some proxies write with a port ("203.0.113.9:41000", "[2001:db8::1]:443").
func forwardedAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// clientAddr is clientAddr with the running config's web.trusted_proxies.
func (d *Daemon) clientAddr(r *http.Request) string {
	return clientAddr(r, d.cfg.Load().Web.trustedProxies)
}

// guardKey is what tokenGuard counts addr's wrong tokens under: an IPv4
// address itself, and the /64 of an IPv6 address ("2001:db8:1:2::/64"),
// which one client (a home connection, a cloud VM) holds whole; clients
// that share one (the pods of a node in an IPv6 cluster) are counted
// together. addr that is not an IP address is its own key.
func guardKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// blocked reports whether addr's token checks are refused at now, and
// for how much longer.
func (g *tokenGuard) blocked(addr string, now time.Time) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.clients[guardKey(addr)]
	if !ok || c.n < maxWrongTokens {
		return 0, false
	}
	left := c.since.Add(wrongTokenWindow).Sub(now)
	return left, left > 0
}

// wrong records a wrong token from addr at now. It reports whether addr
// has just reached maxWrongTokens (to be logged once).
func (g *tokenGuard) wrong(addr string, now time.Time) bool {
	addr = guardKey(addr)
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
