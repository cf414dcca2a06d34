package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/internal/tlsclient"
)

// activeTLS names the files of a standby's TLS towards the active
// instance: the CAs it checks the active instance's certificate against
// (state.advertise_ca_file) and the client certificate it presents to a
// listener that requires one (state.advertise_client_cert_file and
// advertise_client_key_file). Empty names mean the system's roots and no
// client certificate.
type activeTLS struct {
	caFile, certFile, keyFile string
}

// activeTLSOf returns the files s names.
func activeTLSOf(s StateConfig) activeTLS {
	return activeTLS{caFile: s.AdvertiseCAFile, certFile: s.AdvertiseClientCertFile, keyFile: s.AdvertiseClientKeyFile}
}

// withActiveTLS returns s naming f's files.
func withActiveTLS(s StateConfig, f activeTLS) StateConfig {
	s.AdvertiseCAFile, s.AdvertiseClientCertFile, s.AdvertiseClientKeyFile = f.caFile, f.certFile, f.keyFile
	return s
}

// activeTLSNames are what a standby's errors call its TLS files and the
// active instance.
var activeTLSNames = tlsclient.Names{
	CA: "state.advertise_ca_file", Cert: "state.advertise_client_cert_file", Key: "state.advertise_client_key_file",
	Listener: "the active instance", Obtain: "issue",
}

// maxTLSFile bounds a read of a CA, certificate or key file (a bundle of
// every public root is about 200 KiB): the cap of webConfigCache, which
// reads them again while psa-syncd runs.
const maxTLSFile = MaxWebConfigFile

// readTLSFile reads a CA, certificate or key file, of at most maxTLSFile
// bytes.
func readTLSFile(path string) ([]byte, error) {
	return tlsclient.ReadFile(path, maxTLSFile)
}

// contents returns the contents of f's files (the CA, certificate and key
// file, or nil for one f does not name), read by read, or why one cannot be
// read, naming its setting.
func (f activeTLS) contents(read func(i int, name string) ([]byte, error)) ([3][]byte, error) {
	var data [3][]byte
	for i, file := range []struct{ name, setting string }{
		{f.caFile, activeTLSNames.CA}, {f.certFile, activeTLSNames.Cert}, {f.keyFile, activeTLSNames.Key},
	} {
		if file.name == "" {
			continue
		}
		d, err := read(i, file.name)
		if err != nil {
			return data, fmt.Errorf("%s: %w", file.setting, err)
		}
		data[i] = d
	}
	return data, nil
}

// tlsConfig returns the TLS settings of f's files, whose contents are
// data, or nil when f names none. Its errors name the setting whose file
// is wrong, and never quote a file: a key file's content is a secret.
func (f activeTLS) tlsConfig(data [3][]byte) (*tls.Config, error) {
	if f == (activeTLS{}) {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caFile != "" {
		pool, err := activeTLSNames.CertPool(f.caFile, data[0])
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if f.certFile != "" {
		cert, err := activeTLSNames.ClientCertificate(f.certFile, f.keyFile, data[1], data[2])
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// check reads f's files and checks that they can be used.
func (f activeTLS) check() error {
	data, err := f.contents(func(i int, name string) ([]byte, error) {
		if i == 2 {
			// The key file: its value may be the key itself.
			return tlsclient.ReadKeyFile(name, maxTLSFile)
		}
		return readTLSFile(name)
	})
	if err == nil {
		_, err = f.tlsConfig(data)
	}
	return err
}

// activeDialTimeout bounds the connection, and the TLS handshake, of a
// standby to the active instance: both are on one network, and each
// request has its own bound besides (forwardTimeout, activeCallTimeout).
const activeDialTimeout = 5 * time.Second

// newActiveTransport returns the transport a standby sends requests to the
// active instance with, the API token or a client's credentials included.
// As Go's default transport, it honours HTTP_PROXY, HTTPS_PROXY and
// NO_PROXY, so that an advertise_url reached through a proxy still works;
// unlike it, it bounds the dial and the TLS handshake by
// activeDialTimeout, and uses tlsConfig: the CAs of
// state.advertise_ca_file (else the system's roots) and the client
// certificate. Redirects are never followed with it (see isRedirect).
// dial, when not nil, makes its connections instead of a net.Dialer
// (tests: a host name of the cluster's DNS, dialled on 127.0.0.1). caPEM,
// advertise_ca_file's content, is trusted for an https:// proxy's
// certificate too (proxyTLS).
func newActiveTransport(tlsConfig *tls.Config, caPEM []byte, dial dialFunc) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // net/http's default transport
	t.DialContext = activeDialer(dial)
	t.TLSHandshakeTimeout = activeDialTimeout
	t.TLSClientConfig = tlsConfig
	// An https:// proxy's certificate is the proxy's: checked with its
	// host, not advertise_host.
	tlsclient.SetProxyTLS(t, proxyTLS(caPEM))
	return t
}

// proxyTLS returns the TLS settings of an https:// proxy's own
// certificate: the system's CA roots (or SSL_CERT_FILE) with those of
// caPEM, state.advertise_ca_file's, which may sign the proxy's too, as
// they did when Go's transport checked it with the standby's settings.
func proxyTLS(caPEM []byte) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: tlsclient.ProxyRoots(caPEM)}
}

// dialFunc makes a connection, as net.Dialer.DialContext.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// activeDialer returns dial, or when nil the dialer of a standby's
// connections to the active instance.
func activeDialer(dial dialFunc) dialFunc {
	if dial != nil {
		return dial
	}
	return (&net.Dialer{Timeout: activeDialTimeout, KeepAlive: 30 * time.Second}).DialContext
}

// activeTransports holds the transport of a standby's requests to the
// active instance (newActiveTransport), and builds it again when the
// files of its TLS change: cert-manager renews a certificate, and a
// cluster's CA is rotated, in place in the mounted Secret, and a reload
// may name other files (use). Each request reads the files through a
// webConfigCache, which stats them and reads one again only when it
// changed. A changed file that cannot be used (a certificate and its key
// replaced one after the other, seen in between) leaves the transport
// built from the last good ones in use, and is logged once per change.
type activeTransports struct {
	mu     sync.Mutex
	files  activeTLS
	caches [3]*webConfigCache
	built  [3][]byte // the contents t was built from
	t      *http.Transport
	failed string   // why the files as they are now are not used, as logged
	dial   dialFunc // newActiveTransport's
}

// newActiveTransports returns the transports of the files f names, or why
// they cannot be used; dial is newActiveTransport's.
func newActiveTransports(f activeTLS, dial dialFunc) (*activeTransports, error) {
	a := &activeTransports{dial: dial}
	if err := a.use(f); err != nil {
		return nil, err
	}
	return a, nil
}

// use reads f's files afresh and builds the transport from them, unless
// they are the files in use, unchanged; on an error the transport in use
// stays.
func (a *activeTransports) use(f activeTLS) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	caches := [3]*webConfigCache{{what: "a CA file"}, {what: "a certificate file"}, {what: "a key file"}}
	data, err := f.contents(func(i int, name string) ([]byte, error) { return caches[i].read(name) })
	if err != nil {
		return err
	}
	c, err := f.tlsConfig(data)
	if err != nil {
		return err
	}
	if a.t == nil || f != a.files || !sameContents(data, a.built) {
		// The idle connections of the transport replaced are closed: a
		// connection made with the files read before would go on
		// presenting the old certificate.
		a.replace(newActiveTransport(c, data[0], a.dial))
	}
	a.files, a.caches, a.built, a.failed = f, caches, data, ""
	return nil
}

// get returns the transport to send a request to the active instance
// with, built again first when one of its files changed; logger says why
// a changed file is not used.
func (a *activeTransports) get(logger *slog.Logger) *http.Transport {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.files == (activeTLS{}) {
		return a.t
	}
	data, err := a.files.contents(func(i int, name string) ([]byte, error) { return a.caches[i].read(name) })
	if err == nil && sameContents(data, a.built) {
		if a.failed != "" {
			logger.Info("The files of this standby's TLS towards the active instance are back to the ones in use")
			a.failed = ""
		}
		return a.t
	}
	var c *tls.Config
	if err == nil {
		c, err = a.files.tlsConfig(data)
	}
	if err != nil {
		if msg := err.Error(); msg != a.failed {
			a.failed = msg
			logger.Warn("A file of this standby's TLS towards the active instance changed and cannot be used; the ones read before stay in use", "err", err)
		}
		return a.t
	}
	if a.failed != "" {
		logger.Info("The files of this standby's TLS towards the active instance can be used again")
	}
	a.replace(newActiveTransport(c, data[0], a.dial))
	a.built, a.failed = data, ""
	return a.t
}

// replace makes t the transport in use; the connections of the one it
// replaces that are idle are closed, those in use end with their request.
func (a *activeTransports) replace(t *http.Transport) {
	if a.t != nil {
		a.t.CloseIdleConnections()
	}
	a.t = t
}

// sameContents reports whether a and b hold the same contents.
func sameContents(a, b [3][]byte) bool {
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// refused says what to change when err, from a request of this standby to
// the active instance at target, is a certificate refused: the active
// instance's by this standby (certificateRefused), or this standby's, or
// the lack of one, by the active instance (clientCertificateRefused); ""
// for another error.
//
// A listener that refuses the client certificate (TLS 1.3) does so after
// the standby's handshake ended: the request then ends with the TLS
// alert, or without it: "use of closed network connection" when the
// transport's reader saw the alert before the request was written, "http2:
// client conn could not be established" over HTTP/2. When err
// holds no alert, refused asks again on a connection of its own, writing
// before it reads, within activeDialTimeout, and reads the alert of that
// connection (not after ctx ended: a request that timed out gets no more
// time).
func (a *activeTransports) refused(ctx context.Context, target string, err error) string {
	if msg := certificateRefused(err); msg != "" {
		return msg
	}
	alert, ok := tlsclient.Alert(err)
	if !ok && ctx.Err() == nil {
		alert, ok = a.askAgain(ctx, target)
	}
	if !ok {
		return ""
	}
	return clientCertificateRefused(alert, a.presentsCertificate())
}

// askAgain returns the TLS alert with which the active instance at target
// refuses a new connection of this standby, if it does. Where the
// transport's requests go through an http:// or https:// proxy
// (HTTPS_PROXY), it asks through a tunnel of that proxy (CONNECT), as they
// do; through a SOCKS5 proxy it does not ask.
func (a *activeTransports) askAgain(ctx context.Context, target string) (tls.AlertError, bool) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "https" {
		return 0, false
	}
	a.mu.Lock()
	t, caPEM := a.t, a.built[0]
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, activeDialTimeout)
	defer cancel()
	return tlsclient.AskAgain(ctx, activeDialer(a.dial), t.Proxy, t.TLSClientConfig, proxyTLS(caPEM), u)
}

// certificateRefused says what to change when err, from a request of this
// standby to the active instance, is the active instance's certificate
// refused (Go's x509 message names neither the certificate nor the
// setting), and "" for another error.
func certificateRefused(err error) string {
	var host x509.HostnameError
	var authority x509.UnknownAuthorityError
	var op *net.OpError
	switch {
	case (errors.As(err, &host) || errors.As(err, &authority)) && errors.As(err, &op) && op.Op == "proxyconnect":
		return "the certificate of the https:// proxy of HTTPS_PROXY was refused, not the active instance's: it is checked " +
			"with the system's CA roots (or SSL_CERT_FILE) and the CAs of state.advertise_ca_file, and the proxy's host name, " +
			"not advertise_host: add the proxy's CA to advertise_ca_file or those roots, or give the proxy's http:// URL"
	case errors.As(err, &host):
		san := "a DNS name"
		if net.ParseIP(host.Host) != nil {
			san = "an IP address"
		}
		return fmt.Sprintf("its certificate does not hold %s, the host of the URL it advertises, as %s SAN (%v): "+
			"add it to the certificate of that instance's tls_server_config (cert_file), or advertise a host the certificate holds", host.Host, san, host)
	case errors.As(err, &authority):
		return fmt.Sprintf("its certificate is signed by a CA this standby does not trust (%v): "+
			"give that CA's certificate in state.advertise_ca_file (without it, the system's CA roots are trusted, or SSL_CERT_FILE)", authority)
	}
	return ""
}

// clientCertificateRefused says what to change when the active instance
// sent alert during this standby's handshake, which presented a client
// certificate or not, and "" for an alert that says nothing of it. The
// alert ("bad certificate" and the like) names neither the certificate nor
// the setting.
func clientCertificateRefused(alert tls.AlertError, presented bool) string {
	switch {
	case !presented && (alert == tlsclient.AlertCertificateRequired || alert == tlsclient.AlertHandshakeFailure):
		return fmt.Sprintf("it requires a client certificate (tls_server_config's client_auth_type) and this standby presents none (%v): "+
			"give this standby one that the active instance's client_ca_file trusts, in state.advertise_client_cert_file and state.advertise_client_key_file", alert)
	case presented && alert == tlsclient.AlertUnknownCA:
		return fmt.Sprintf("it refused the client certificate of this standby's state.advertise_client_cert_file, signed by a CA it does not trust (%v): "+
			"give this standby one signed by a CA of the active instance's client_ca_file", alert)
	case presented && alert == tlsclient.AlertCertificateExpired:
		return fmt.Sprintf("it refused the client certificate of this standby's state.advertise_client_cert_file as expired or not yet valid (%v): "+
			"renew it (the standby reads the file again when it changes)", alert)
	case presented && slices.Contains([]tls.AlertError{tlsclient.AlertBadCertificate, tlsclient.AlertCertificateRequired, tlsclient.AlertCertificateUnknown, tlsclient.AlertUnsupportedCertificate, tlsclient.AlertCertificateRevoked}, alert):
		return fmt.Sprintf("it refused the client certificate of this standby's state.advertise_client_cert_file (%v): "+
			"it must be signed by a CA of the active instance's client_ca_file, be for client authentication, and hold one of the SANs of its client_allowed_sans when it has them", alert)
	}
	return ""
}

// presentsCertificate reports whether the transport presents a client
// certificate (state.advertise_client_cert_file).
func (a *activeTransports) presentsCertificate() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.files.certFile != ""
}
