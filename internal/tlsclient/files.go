package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
)

// ReadFile reads a CA, certificate or key file of at most limit bytes: a
// flag or a setting naming another file (a log, /dev/zero) is an error
// naming the file and the cap instead of taking all memory.
func ReadFile(path string, limit int64) ([]byte, error) {
	return sizecap.ReadFile(path, limit, "a CA, certificate or key file")
}

// Names are what a client's errors call its TLS files and the listener:
// the settings (or flags) that name the CA, certificate and key file, and
// the listener ("the daemon"); Obtain is the verb of the advice to get
// another certificate ("give", "issue").
type Names struct {
	CA, Cert, Key    string
	Listener, Obtain string
}

// CertPool returns the CA certificates of data, the contents of file, the
// file of n.CA.
func (n Names) CertPool(file string, data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", n.CA, file)
	}
	return pool, nil
}

// ClientCertificate returns the client certificate of certPEM and keyPEM,
// the contents of certFile (of n.Cert) and keyFile (of n.Key). Its errors
// name the setting and the file, and never quote a file: a key file's
// content is a secret.
func (n Names) ClientCertificate(certFile, keyFile string, certPEM, keyPEM []byte) (tls.Certificate, error) {
	if !HoldsPEM(certPEM, func(t string) bool { return t == "CERTIFICATE" }) {
		return tls.Certificate{}, fmt.Errorf("%s: %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", n.Cert, certFile)
	}
	if !HoldsPEM(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return tls.Certificate{}, fmt.Errorf("%s: %s holds no PEM private key (-----BEGIN PRIVATE KEY-----)", n.Key, keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's errors say what is wrong without quoting either.
		return tls.Certificate{}, fmt.Errorf("%s: the key in %s cannot be used with the certificate in %s (%s): %w", n.Key, keyFile, certFile, n.Cert, err)
	}
	// The listener's handshake checks the certificate for client
	// authentication: one made for a server only (a listener's
	// certificate reused) would be refused at the first request.
	if eku := cert.Leaf.ExtKeyUsage; len(eku) > 0 && !slices.Contains(eku, x509.ExtKeyUsageClientAuth) && !slices.Contains(eku, x509.ExtKeyUsageAny) {
		return tls.Certificate{}, fmt.Errorf("%s: the certificate in %s is not for client authentication (its extended key usage has no clientAuth), "+
			"so %s would refuse it: %s one with that usage (cert-manager: usages: [client auth])", n.Cert, certFile, n.Listener, n.Obtain)
	}
	return cert, nil
}
