package pgtest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Blackhole is a TCP proxy to a PostgreSQL server. Once frozen it forwards
// nothing more in either direction and keeps every connection open: what
// the server sees of a client whose host died (power loss, a kernel panic,
// a lost Kubernetes node), and a client of a network that drops
// everything. No FIN or RST reaches either side until Cut.
type Blackhole struct {
	ln     net.Listener
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

// NewBlackhole starts a Blackhole to target (host:port) on a loopback
// port; the test's end cuts it.
func NewBlackhole(t testing.TB, target string) *Blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Blackhole{ln: ln}
	t.Cleanup(p.Cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

// Addr is the proxy's host:port, to put in the database URL in place of
// the server's.
func (p *Blackhole) Addr() string { return p.ln.Addr().String() }

// Freeze stops forwarding, keeping the connections open.
func (p *Blackhole) Freeze() { p.frozen.Store(true) }

// Cut closes every connection, and the listener.
func (p *Blackhole) Cut() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// pipe copies from src to dst until frozen; then it drops what it reads,
// and never closes the other side.
func (p *Blackhole) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !p.frozen.Load() {
				_ = dst.Close()
			}
			return
		}
	}
}
