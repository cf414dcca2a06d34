// Package tlsclient holds what psa-syncd's two clients of its own TLS
// listener share: a standby's towards the active instance (the
// state.advertise_* settings) and the -web.url commands' (the -web.*
// flags). The checks of their PEM files, the TLS alerts of a refused
// client certificate and the connection that asks again for that alert
// are one code; the words of their errors, which name each one's settings,
// stay with each.
package tlsclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// HoldsPEM reports whether data holds a PEM block of a type that is.
func HoldsPEM(data []byte, is func(string) bool) bool {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return false
		}
		if is(block.Type) {
			return true
		}
	}
}

// The TLS alerts a listener refusing a client certificate sends (RFC 8446,
// section 6.2).
const (
	AlertHandshakeFailure       tls.AlertError = 40
	AlertBadCertificate         tls.AlertError = 42
	AlertUnsupportedCertificate tls.AlertError = 43
	AlertCertificateRevoked     tls.AlertError = 44
	AlertCertificateExpired     tls.AlertError = 45
	AlertCertificateUnknown     tls.AlertError = 46
	AlertUnknownCA              tls.AlertError = 48
	AlertCertificateRequired    tls.AlertError = 116
)

// Alert returns the TLS alert of those above that the listener sent, when
// err is one. crypto/tls returns it as a *net.OpError "remote error" whose
// Err is of an unexported type that prints as the tls.AlertError of the
// same code does, and converts to no exported type.
func Alert(err error) (tls.AlertError, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	for _, a := range []tls.AlertError{AlertHandshakeFailure, AlertBadCertificate, AlertUnsupportedCertificate, AlertCertificateRevoked,
		AlertCertificateExpired, AlertCertificateUnknown, AlertUnknownCA, AlertCertificateRequired} {
		if op.Err.Error() == a.Error() {
			return a, true
		}
	}
	return 0, false
}

// AskAgain returns the TLS alert with which the listener at u (https://)
// refuses a new connection made with conf (nil: Go's defaults), if it
// does. A listener refusing a client certificate with TLS 1.3 does so
// after the handshake ended, so that a request often ends without the
// alert; this connection writes a probe's request (HEAD /-/healthy, which
// needs no credentials) before it reads, and reads the alert sent before
// it arrived. dial makes the connections; proxy (a transport's Proxy, nil
// for none) chooses the proxy of u: through an http:// or https:// one it
// asks through a tunnel (CONNECT, Tunnel), as the requests go; through a
// SOCKS5 proxy it does not ask. proxyConf is the TLS of an https:// proxy
// (see Tunnel). ctx bounds it all.
func AskAgain(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	proxy func(*http.Request) (*url.URL, error), conf, proxyConf *tls.Config, u *url.URL,
) (tls.AlertError, bool) {
	var through *url.URL
	if proxy != nil {
		var err error
		if through, err = proxy(&http.Request{URL: u}); err != nil || through != nil && through.Scheme != "http" && through.Scheme != "https" {
			return 0, false
		}
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if conf != nil {
		c = conf.Clone()
	}
	c.NextProtos = []string{"http/1.1"}
	if c.ServerName == "" {
		c.ServerName = u.Hostname()
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	var raw net.Conn
	var err error
	if through != nil {
		raw, err = Tunnel(ctx, dial, through, addr, proxyConf)
	} else {
		raw, err = dial(ctx, "tcp", addr)
	}
	if err != nil {
		return 0, false
	}
	conn := tls.Client(raw, c)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		// TLS 1.2: the refusal ends the handshake.
		return Alert(err)
	}
	defer func() { _ = conn.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	_, _ = io.WriteString(conn, "HEAD /-/healthy HTTP/1.1\r\nHost: "+u.Host+"\r\nConnection: close\r\n\r\n")
	_, err = conn.Read(make([]byte, 1))
	return Alert(err)
}

// Tunnel returns a connection to addr through the http:// or https://
// proxy (CONNECT), with the proxy's credentials of its URL, as net/http's
// transport opens one for an https:// request; dial makes the connection
// to the proxy, ctx bounds it. With an https:// proxy the connection to it
// is TLS with conf, the proxy's own TLS settings (see ProxyConfig), not
// those of addr's listener.
func Tunnel(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), proxy *url.URL, addr string, conf *tls.Config) (net.Conn, error) {
	port := "80"
	if proxy.Scheme == "https" {
		port = "443"
	}
	proxyAddr := proxy.Host
	if proxy.Port() == "" {
		proxyAddr = net.JoinHostPort(proxy.Hostname(), port)
	}
	raw, err := dial(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(deadline)
	}
	if proxy.Scheme == "https" {
		tc := tls.Client(raw, ProxyConfig(conf, proxy.Hostname()))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
		}
		raw = tc
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if proxy.User != nil {
		password, _ := proxy.User.Password()
		req.SetBasicAuth(proxy.User.Username(), password)
		req.Header["Proxy-Authorization"] = req.Header["Authorization"]
		delete(req.Header, "Authorization")
	}
	br := bufio.NewReader(raw)
	if err := req.Write(raw); err != nil {
		_ = raw.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	_ = resp.Body.Close()
	// Nothing may follow the proxy's answer before the TLS handshake: the
	// listener speaks only once the client has.
	if resp.StatusCode != http.StatusOK || br.Buffered() > 0 {
		_ = raw.Close()
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %s", proxy.Redacted(), addr, resp.Status)
	}
	_ = raw.SetDeadline(time.Time{})
	return raw, nil
}

// ProxyConfig returns the TLS config of a connection to the https://
// proxy on host: conf (nil: Go's defaults, the system's CA roots or
// SSL_CERT_FILE) with host as the server name where conf names none, and
// no ALPN: the CONNECT is HTTP/1.1's.
func ProxyConfig(conf *tls.Config, host string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if conf != nil {
		c = conf.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	c.NextProtos = nil
	return c
}

// ProxyRoots returns the CA roots against which to check the certificate
// of an https:// proxy: the system's (or SSL_CERT_FILE's) with those of
// caPEM, the listener's CA file, added (a private CA may sign the proxy's
// certificate too); nil, the system's, for no caPEM.
func ProxyRoots(caPEM []byte) *x509.CertPool {
	if len(caPEM) == 0 {
		return nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(caPEM)
	return pool
}

// SetProxyTLS has t check the certificate of an https:// proxy (t.Proxy)
// with proxyConf (see ProxyConfig: nil, the system's CA roots, and the
// proxy's host name), not with t.TLSClientConfig: net/http's transport
// uses that for the proxy too, so that the CA and the server name of a
// listener behind the proxy (a private CA, -web.server-name,
// state.advertise_ca_file) refused the proxy's certificate. It sets
// t.DialTLSContext, which the transport calls for the first TLS
// connection of a request: to such a proxy, or, without a proxy, to the
// https:// host itself, which it reaches as the transport would (TLS with
// t.TLSClientConfig and the host's name, within t.TLSHandshakeTimeout).
// Through the proxy, the transport then makes the TLS of the host with
// t.TLSClientConfig itself. The transport tells neither which it is: addr
// is the proxy's when t.Proxy sends an https:// request to it through
// itself, as the environment's (HTTPS_PROXY) and a fixed proxy do; one
// that NO_PROXY or a loopback address exempts from itself, or an https://
// HTTP_PROXY of http:// requests other than HTTPS_PROXY, is reached as
// before, with t.TLSClientConfig.
func SetProxyTLS(t *http.Transport, proxyConf *tls.Config) {
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var conf *tls.Config
		if isHTTPSProxy(t.Proxy, addr) {
			conf = ProxyConfig(proxyConf, host)
		} else {
			conf = &tls.Config{MinVersion: tls.VersionTLS12}
			if t.TLSClientConfig != nil {
				conf = t.TLSClientConfig.Clone()
			}
			if conf.ServerName == "" {
				conf.ServerName = host
			}
		}
		dial := t.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if t.TLSHandshakeTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, t.TLSHandshakeTimeout)
			defer cancel()
		}
		tc := tls.Client(raw, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return tc, nil
	}
}

// isHTTPSProxy reports whether addr is that of the https:// proxy through
// which proxy sends an https:// request to addr: a proxy's own address.
func isHTTPSProxy(proxy func(*http.Request) (*url.URL, error), addr string) bool {
	if proxy == nil {
		return false
	}
	p, err := proxy(&http.Request{URL: &url.URL{Scheme: "https", Host: addr}, Header: http.Header{}})
	if err != nil || p == nil || p.Scheme != "https" {
		return false
	}
	port := p.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(p.Hostname(), port) == addr
}
