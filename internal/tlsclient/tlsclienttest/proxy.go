// Package tlsclienttest is an http:// or https:// proxy that tunnels
// (CONNECT), for the tests of a client that asks again through the proxy
// of HTTPS_PROXY.
package tlsclienttest

import (
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
)

// Proxy is an http:// or https:// proxy that answers CONNECT only, and
// counts them.
type Proxy struct {
	connects atomic.Int32
	auth     atomic.Value // the last CONNECT's Proxy-Authorization
	url      string
	cert     *x509.Certificate
}

// NewProxy starts an http:// Proxy, closed when the test ends.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	p := &Proxy{}
	srv := httptest.NewServer(p.handler())
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// NewTLSProxy starts an https:// Proxy, with httptest's certificate for
// 127.0.0.1 and example.com (Certificate), closed when the test ends.
func NewTLSProxy(t testing.TB) *Proxy {
	t.Helper()
	p := &Proxy{}
	srv := httptest.NewTLSServer(p.handler())
	t.Cleanup(srv.Close)
	p.url, p.cert = srv.URL, srv.Certificate()
	return p
}

// Certificate returns the certificate of an https:// Proxy, nil for an
// http:// one.
func (p *Proxy) Certificate() *x509.Certificate { return p.cert }

func (p *Proxy) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		p.connects.Add(1)
		p.auth.Store(r.Header.Get("Proxy-Authorization"))
		backend, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		client, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			_ = backend.Close()
			return
		}
		_, _ = io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { _, _ = io.Copy(backend, client); _ = backend.Close() }()
		go func() { _, _ = io.Copy(client, backend); _ = client.Close() }()
	})
}

// URL returns the proxy's URL (http:// or https://), with user and
// password as its credentials.
func (p *Proxy) URL(t testing.TB, user, password string) *url.URL {
	t.Helper()
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u
}

// Connects returns how many CONNECTs the proxy got.
func (p *Proxy) Connects() int { return int(p.connects.Load()) }

// Authorization returns the Proxy-Authorization of the last CONNECT, or
// nil before the first.
func (p *Proxy) Authorization() any { return p.auth.Load() }
