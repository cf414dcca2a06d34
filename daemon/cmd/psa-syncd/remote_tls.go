package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/internal/tlsclient"
)

// remoteTLS names the files of a command's TLS towards the daemon of an
// https:// -web.url, as state.advertise_ca_file and
// advertise_client_cert_file/_key_file name a standby's towards the active
// instance: in a pod (kubectl exec) no shell can point SSL_CERT_FILE at the
// cluster's CA for one command, and a listener with client_auth_type
// RequireAndVerifyClientCert refuses every request without a certificate.
type remoteTLS struct {
	caFile, certFile, keyFile, serverName string
}

func (r *remoteTLS) register(fs *flag.FlagSet) {
	r.registerFor(fs, "an https:// -web.url")
}

// localDaemon is what validate's TLS flags, and check's without
// -web.url, are for: the daemon on this machine that holds the SQLite
// state database of export_url: self, whose API they read the export from.
const localDaemon = "the psa-syncd on this machine that\nholds the export of export_url: self"

// registerFor registers r's flags for the TLS towards daemon, as the help
// text names it.
func (r *remoteTLS) registerFor(fs *flag.FlagSet, daemon string) {
	fs.StringVar(&r.caFile, "web.ca-file", "", "A PEM `file` of the CA certificates to check the certificate of "+daemon+" against, as\n"+
		"state.advertise_ca_file does for a standby; default: the system's CA roots (or SSL_CERT_FILE).")
	fs.StringVar(&r.certFile, "web.cert-file", "", "A PEM `file` of the client certificate to present to "+daemon+" whose web config file\n"+
		"has a client_auth_type that asks for one (RequireAndVerifyClientCert): one its client_ca_file trusts,\n"+
		"for client authentication; with -web.key-file.")
	fs.StringVar(&r.keyFile, "web.key-file", "", "A PEM `file` of the private key of -web.cert-file.")
	fs.StringVar(&r.serverName, "web.server-name", "", "The `name` the certificate of "+daemon+" must hold, instead of its host: for\n"+
		"https://127.0.0.1:9810 in a pod (kubectl exec) whose certificate holds DNS names only.")
}

// localRead returns a usage error when r's flags, given for the read of
// the export from localDaemon, are given where the command reads nothing
// over TLS: cfg's export store is not export_url: self, or its state
// database is PostgreSQL's, which the command reads itself while the
// daemon runs. Ignored, they would have the operator believe the TLS
// towards the daemon was tested.
func (r remoteTLS) localRead(cfg *daemon.Config) error {
	switch {
	case !r.given():
		return nil
	case cfg.ExportStore() != daemon.StoreSelf:
		return fmt.Errorf("%s: for the export of export_url: self read from the psa-syncd on this machine; the config file's export is in %s, "+
			"read without them", r.flags(), cfg.ExportName())
	case cfg.State.Driver == state.DriverPostgres:
		return fmt.Errorf("%s: for the export of export_url: self read from the psa-syncd on this machine that holds an SQLite state database; "+
			"this one is in PostgreSQL, read without them", r.flags())
	}
	return nil
}

// remoteTLSNames are what a command's errors call its TLS files and the
// daemon.
var remoteTLSNames = tlsclient.Names{CA: "-web.ca-file", Cert: "-web.cert-file", Key: "-web.key-file", Listener: "the daemon", Obtain: "give"}

// given reports whether a flag of r was given.
func (r remoteTLS) given() bool { return r != remoteTLS{} }

// flags is r's flags as given, for a command line to run.
func (r remoteTLS) flags() string {
	var s []string
	for _, f := range []struct{ name, value string }{
		{"-web.ca-file", r.caFile}, {"-web.cert-file", r.certFile}, {"-web.key-file", r.keyFile}, {"-web.server-name", r.serverName},
	} {
		switch {
		case f.value == "":
		case f.name == "-web.key-file" && tlsclient.KeyLike(f.value):
			s = append(s, f.name+" [not shown: it may be the key itself, not its file's name]")
		default:
			s = append(s, f.name+" "+f.value)
		}
	}
	return strings.Join(s, " ")
}

// transport returns the transport of requests to the daemon, or nil (Go's
// default) when r names nothing. Its errors name the flag and its file,
// and never quote a file: a key file's content is a secret.
func (r remoteTLS) transport() (*http.Transport, error) {
	if !r.given() {
		return nil, nil
	}
	if (r.certFile == "") != (r.keyFile == "") {
		return nil, errors.New("-web.cert-file and -web.key-file: give both (the client certificate and its key), or neither")
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.serverName}
	if r.caFile != "" {
		data, err := readRemoteTLSFile(remoteTLSNames.CA, r.caFile)
		if err != nil {
			return nil, err
		}
		pool, err := remoteTLSNames.CertPool(r.caFile, data)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if r.certFile != "" {
		cert, err := r.clientCertificate()
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	t := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // net/http's default transport
	t.TLSClientConfig = c
	// An https:// proxy's certificate is the proxy's: checked with its
	// host, not -web.server-name.
	tlsclient.SetProxyTLS(t, r.proxyTLS())
	return t, nil
}

// proxyTLS returns the TLS settings of an https:// proxy's own
// certificate: the system's CA roots (or SSL_CERT_FILE) with those of
// -web.ca-file, which may sign the proxy's too, as they did when Go's
// transport checked it with the daemon's settings.
func (r remoteTLS) proxyTLS() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.caFile != "" {
		// transport has read it already: an error there ends the command.
		if data, err := readRemoteTLSFile(remoteTLSNames.CA, r.caFile); err == nil {
			c.RootCAs = tlsclient.ProxyRoots(data)
		}
	}
	return c
}

// clientCertificate returns the certificate of -web.cert-file with the key
// of -web.key-file.
func (r remoteTLS) clientCertificate() (tls.Certificate, error) {
	certPEM, err := readRemoteTLSFile(remoteTLSNames.Cert, r.certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	// Its value may be the key itself, which the error must not quote.
	keyPEM, err := tlsclient.ReadKeyFile(r.keyFile, daemon.MaxWebConfigFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", remoteTLSNames.Key, err)
	}
	return remoteTLSNames.ClientCertificate(r.certFile, r.keyFile, certPEM, keyPEM)
}

// readRemoteTLSFile reads the file of flag name, of at most the size the
// daemon reads of its own certificate files.
func readRemoteTLSFile(name, path string) ([]byte, error) {
	data, err := tlsclient.ReadFile(path, daemon.MaxWebConfigFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// certificateRefused says what to set when err, of a request to the
// daemon, is the daemon's certificate refused by this command, and "" for
// another error. Go's messages ("x509: certificate signed by unknown
// authority") name neither the file nor the flag. The words are those of
// a standby refusing the active instance's (daemon/active_transport.go).
// local says the URL is the one the daemon on this machine recorded, not
// -web.url.
func (r remoteTLS) certificateRefused(err error, local bool) string {
	var host x509.HostnameError
	var authority x509.UnknownAuthorityError
	var op *net.OpError
	switch {
	case (errors.As(err, &host) || errors.As(err, &authority)) && errors.As(err, &op) && op.Op == "proxyconnect":
		// The proxy's certificate is checked with its own settings
		// (tlsclient.SetProxyTLS), not the TLS flags.
		return "the certificate of the https:// proxy of HTTPS_PROXY was refused, not the daemon's: it is checked with the system's " +
			"CA roots (or SSL_CERT_FILE) and the CAs of -web.ca-file, and the proxy's host name, not -web.server-name: add the proxy's CA " +
			"to -web.ca-file or those roots, or give the proxy's http:// URL (the connection to the daemon is TLS through its tunnel all the same)"
	case errors.As(err, &host) && r.serverName != "":
		return fmt.Sprintf("the daemon's certificate does not hold %s, the name of -web.server-name: give one it holds", host.Host)
	case errors.As(err, &host):
		if local {
			return fmt.Sprintf("the daemon's certificate does not hold %s, the host of the URL it recorded: give -web.server-name a name it holds "+
				"(e.g. the name its clients use)", host.Host)
		}
		return fmt.Sprintf("the daemon's certificate does not hold %s, the host of -web.url: give -web.server-name a name it holds "+
			"(e.g. the name its clients use), or a -web.url with such a host", host.Host)
	case errors.As(err, &authority):
		from := "the system's CA roots (or SSL_CERT_FILE)"
		if r.caFile != "" {
			from = "the CAs of -web.ca-file " + r.caFile
		}
		return fmt.Sprintf("the daemon's certificate is signed by a CA not among %s: give that CA's certificate in -web.ca-file", from)
	}
	return ""
}

// refused says what to set when err, of req to the daemon, is a
// certificate refused: the daemon's by this command, or this command's,
// or the lack of one, by the daemon; "" for another error.
//
// A listener that refuses the client certificate (TLS 1.3) does so after
// the command's handshake ended: the request then ends with the TLS alert,
// or without it ("http2: client conn could not be established", "use of
// closed network connection"), as the standby's do. When err holds no
// alert, refused asks again on a connection of its own (askAgain), through
// the proxy of the requests where they go through one.
func (c *apiClient) refused(req *http.Request, err error) string {
	if msg := c.tls.certificateRefused(err, c.local); msg != "" {
		return msg
	}
	alert, ok := tlsclient.Alert(err)
	// A request that timed out gets no more time.
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	if !ok && !timedOut && req.URL.Scheme == "https" && req.Context().Err() == nil {
		alert, ok = c.askAgain(req.Context(), req.URL)
	}
	if !ok {
		return ""
	}
	return c.tls.alertSays(alert)
}

// askAgainTimeout bounds askAgain's connection, handshake and read.
const askAgainTimeout = 5 * time.Second

// askAgain returns the TLS alert with which the daemon at u refuses a new
// connection made with this command's TLS settings, if it does
// (tlsclient.AskAgain). Where the command's requests go through an
// http:// or https:// proxy (HTTPS_PROXY), it asks through a tunnel of
// that proxy, as they do, and as a standby does.
func (c *apiClient) askAgain(ctx context.Context, u *url.URL) (tls.AlertError, bool) {
	t := http.DefaultTransport.(*http.Transport) //nolint:forcetypeassert // net/http's default transport
	if c.transport != nil {
		t = c.transport
	}
	ctx, cancel := context.WithTimeout(ctx, askAgainTimeout)
	defer cancel()
	proxyTLS := c.proxyTLS
	if proxyTLS == nil {
		proxyTLS = c.tls.proxyTLS()
	}
	return tlsclient.AskAgain(ctx, (&net.Dialer{}).DialContext, t.Proxy, t.TLSClientConfig, proxyTLS, u)
}

// alertSays says what to set when the daemon refused this command's
// handshake with alert, and "" for an alert that says nothing of a client
// certificate.
func (r remoteTLS) alertSays(alert tls.AlertError) string {
	switch {
	case r.certFile == "" && (alert == tlsclient.AlertCertificateRequired || alert == tlsclient.AlertHandshakeFailure):
		return "the daemon requires a client certificate (its web config file's client_auth_type) and this command presents none: " +
			"give one that its client_ca_file trusts in -web.cert-file and -web.key-file"
	case r.certFile != "" && alert == tlsclient.AlertCertificateRequired:
		// A Go client presents a certificate only when it is signed by a
		// CA the listener names in its handshake: else it presents none.
		return fmt.Sprintf("the daemon requires a client certificate signed by a CA of its client_ca_file, and the one of -web.cert-file %s "+
			"is not, so this command presented none: give one signed by such a CA", r.certFile)
	case r.certFile != "" && alert == tlsclient.AlertUnknownCA:
		return fmt.Sprintf("the daemon refused the client certificate of -web.cert-file %s, signed by a CA it does not trust: "+
			"give one signed by a CA of its client_ca_file", r.certFile)
	case r.certFile != "" && alert == tlsclient.AlertCertificateExpired:
		return fmt.Sprintf("the daemon refused the client certificate of -web.cert-file %s as expired or not yet valid: renew it", r.certFile)
	case r.certFile != "":
		return fmt.Sprintf("the daemon refused the client certificate of -web.cert-file %s: it must be signed by a CA of its client_ca_file, "+
			"be for client authentication, and hold one of the SANs of its client_allowed_sans when it has them", r.certFile)
	}
	return ""
}
