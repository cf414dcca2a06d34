package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
)

// ReadFile reads a CA, certificate or key file of at most limit bytes: a
// flag or a setting naming another file (a log, /dev/zero) is an error
// naming the file and the cap instead of taking all memory. A path that is
// a file's content instead (see pemLike: a key pasted where its file's
// name belongs, -web.key-file="$(cat client.key)") cannot be read, and
// the error does not quote it: a key is a secret.
func ReadFile(path string, limit int64) ([]byte, error) {
	data, err := sizecap.ReadFile(path, limit, "a CA, certificate or key file")
	if err != nil && pemLike(path) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("the file it names cannot be read: %w (the value is not shown: it holds PEM, "+
			"so it may be the file's content, a key's among them, rather than its name)", err)
	}
	return data, err
}

// ReadKeyFile is ReadFile for a key file: besides PEM, the error quotes
// no value that may be the key's base64 without its PEM lines (KeyLike: a
// Secret's tls.key decoded once, the lines between BEGIN and END copied),
// which ReadFile would quote as a missing file's name. Only for a key: a
// CA or certificate file's value is no secret, and quoting it helps.
func ReadKeyFile(path string, limit int64) ([]byte, error) {
	data, err := ReadFile(path, limit)
	if err != nil && !pemLike(path) && KeyLike(path) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("the file it names cannot be read: %w (the value is not shown: it looks like base64, "+
			"so it may be a key's content rather than its file's name)", err)
	}
	return data, err
}

// base64Key matches a key's DER in base64 at the end of a path (a value
// made absolute by the config's directory, /etc/psa-syncd/MIGH...): a DER
// key is a SEQUENCE (0x30), whose base64 starts with "M"; the shortest,
// an Ed25519 PKCS #8 key, is 64 characters. base64's "/" makes the key
// look like a path of its own, so any "/" may be within it. A file's name
// of 64 or more characters of the base64 alphabet only (no ".", "_" or "-")
// that starts with "M" is taken for a key too: it is then only not
// quoted, the error still names the setting.
var base64Key = regexp.MustCompile(`(?:^|/)M[A-Za-z0-9+/]{63,}={0,2}$`)

// KeyLike reports whether value, given as a key file's name, may be the
// key itself: PEM (see ReadFile) or the base64 of a DER key (base64Key).
func KeyLike(value string) bool {
	return pemLike(value) || base64Key.MatchString(value)
}

// pemLike reports whether path holds a PEM block rather than a file's name:
// its "-----BEGIN" line, a line break, or the base64 of "-----BEGIN" (a
// Kubernetes Secret's data field copied as it is).
func pemLike(path string) bool {
	return strings.Contains(path, "-----BEGIN") || strings.ContainsAny(path, "\r\n") || strings.Contains(path, "LS0tLS1CRUdJT")
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
