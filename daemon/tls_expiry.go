package daemon

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v3"
)

// The use label of psa_sync_tls_certificate_expiry_timestamp_seconds:
// what psa-syncd does with a certificate file.
const (
	// TLSUseListener is the listener's certificate, tls_server_config's
	// cert_file (or cert) in the web config file.
	TLSUseListener = "listener"
	// TLSUseClientCA is the CAs the listener checks client certificates
	// against, tls_server_config's client_ca_file (or client_ca).
	TLSUseClientCA = "client_ca"
	// TLSUseAdvertiseCA is the CAs a standby checks the active instance's
	// certificate against, state.advertise_ca_file.
	TLSUseAdvertiseCA = "advertise_ca"
	// TLSUseAdvertiseClient is the client certificate a standby presents
	// to the active instance, state.advertise_client_cert_file.
	TLSUseAdvertiseClient = "advertise_client"
)

// TLSExpiryWarning is how long before a certificate psa-syncd uses
// expires that it warns of it at start and reload, as the example alert
// PsaSyncTLSCertificateExpiresSoon does.
const TLSExpiryWarning = 7 * 24 * time.Hour

// tlsCertFile is a file of certificates psa-syncd uses.
type tlsCertFile struct {
	use  string // one of the TLSUse* values
	file string // its path; the web config file's for a certificate given inline
	// setting is where it is set, as check names it when the file cannot
	// be read: the operator's way to the file, which the error may not
	// quote (a value that looks like PEM).
	setting string
	// inline is the certificate given in the web config file itself
	// (tls_server_config's cert or client_ca); nil: read file.
	inline []byte
}

// tlsCertFiles lists the certificate files of the web config file at path
// (read through wc; "" for none) and of cfg's state section (nil: none).
// A web config file that cannot be read or parsed names none: the
// listener's own checks report it.
func tlsCertFiles(wc *webConfigCache, path string, cfg *Config) []tlsCertFile {
	var files []tlsCertFile
	if path != "" {
		if data, err := wc.read(path); err == nil {
			var c web.Config
			if yaml.Unmarshal(data, &c) == nil && c.TLSConfig.IsEnabled() {
				// As exporter-toolkit reads them: relative to the file.
				c.TLSConfig.SetDirectory(filepath.Dir(path))
				t := c.TLSConfig
				switch {
				case t.TLSCertPath != "":
					files = append(files, tlsCertFile{use: TLSUseListener, file: t.TLSCertPath, setting: "tls_server_config.cert_file"})
				case t.TLSCert != "":
					files = append(files, tlsCertFile{use: TLSUseListener, file: path, inline: []byte(t.TLSCert), setting: "tls_server_config.cert"})
				}
				switch {
				case t.ClientCAs != "":
					files = append(files, tlsCertFile{use: TLSUseClientCA, file: t.ClientCAs, setting: "tls_server_config.client_ca_file"})
				case t.ClientCAsText != "":
					files = append(files, tlsCertFile{use: TLSUseClientCA, file: path, inline: []byte(t.ClientCAsText), setting: "tls_server_config.client_ca"})
				}
			}
		}
	}
	if cfg != nil {
		if f := cfg.State.AdvertiseCAFile; f != "" {
			files = append(files, tlsCertFile{use: TLSUseAdvertiseCA, file: f, setting: "state.advertise_ca_file"})
		}
		if f := cfg.State.AdvertiseClientCertFile; f != "" {
			files = append(files, tlsCertFile{use: TLSUseAdvertiseClient, file: f, setting: "state.advertise_client_cert_file"})
		}
	}
	return files
}

// notAfter returns when the first of the certificates in f expires (a
// certificate file with its chain stops working with the first of them, a
// CA file is as good as its CAs), or why it cannot tell. The error names
// the file, never its content.
func (f tlsCertFile) notAfter() (time.Time, error) {
	data := f.inline
	if data == nil {
		var err error
		if data, err = readTLSFile(f.file); err != nil {
			return time.Time{}, err
		}
	}
	var first time.Time
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: a certificate cannot be parsed: %w", f.file, err)
		}
		if first.IsZero() || c.NotAfter.Before(first) {
			first = c.NotAfter
		}
	}
	if first.IsZero() {
		return time.Time{}, fmt.Errorf("%s holds no PEM certificate", f.file)
	}
	return first, nil
}

// tlsCertificates returns when the first certificate of each certificate
// file in use expires, read now; a file that cannot be read is marked
// Unreadable (the start, the reload and the standby's requests say why).
func (d *Daemon) tlsCertificates() []TLSCertificate {
	var certs []TLSCertificate
	for _, f := range tlsCertFiles(&d.webConfig, d.webConfigFile, d.cfg.Load()) {
		t, err := f.notAfter()
		certs = append(certs, TLSCertificate{File: f.file, Use: f.use, NotAfter: t, Unreadable: err != nil})
	}
	return certs
}

// warnTLSExpiry logs a warning for each certificate file of cfg and the
// web config file whose first certificate expires within TLSExpiryWarning
// of now, or has expired: it is found before a handshake fails.
func (d *Daemon) warnTLSExpiry(cfg *Config) {
	now := d.now()
	for _, f := range tlsCertFiles(&d.webConfig, d.webConfigFile, cfg) {
		t, err := f.notAfter()
		if err != nil || t.Sub(now) > TLSExpiryWarning {
			continue
		}
		msg := "A TLS certificate psa-syncd uses expires soon: renew it (psa-syncd reads a renewed file without a restart)"
		if !t.After(now) {
			msg = "A TLS certificate psa-syncd uses has expired: renew it (psa-syncd reads a renewed file without a restart)"
		}
		d.logger.Warn(msg, "file", f.file, "use", f.use, "not_after", t.UTC().Format(time.RFC3339))
	}
}

// tlsCheckItems are psa-syncd check's items (POST /api/v1/check) for the
// certificate files of the web config file and cfg, each written to w as
// a line of check's report: ok with its expiry, a note when it expires
// within TLSExpiryWarning, a failure once it has expired or when it cannot
// be read (or holds no certificate): a file a renewal broke or removed
// since the start, as psa_sync_tls_certificate_readable 0 says.
func (d *Daemon) tlsCheckItems(cfg *Config, w io.Writer) []CheckItem {
	return tlsCheckItems(&d.webConfig, d.webConfigFile, cfg, d.now(), "", w)
}

// CheckTLS is psa-syncd check's test of the web config file at path ("":
// none) without a running daemon: an item "web config" that fails, in the
// words with which run refuses to start, when the file or a certificate
// or key it names cannot be used, then, as a running daemon's check lists
// them, an item per certificate file of the web config file and of cfg's
// state section with the expiry of its first certificate, each written to
// w as a line of check's report. A check that knows the web config file
// lists the listener's certificates as the daemon started with it would.
// A certificate file that cannot be read, which is also why the web config
// file cannot be used, is one failure, not two: the web config's, naming
// the setting and the file.
func CheckTLS(path string, cfg *Config, now time.Time, w io.Writer) []CheckItem {
	var items []CheckItem
	var skip string
	if path != "" {
		if err := validateWebConfig(path); err != nil {
			detail := strings.TrimPrefix(err.Error(), "daemon: ")
			if f, ferr := unusableWebCertFile(path, err); ferr != nil {
				detail = fmt.Sprintf("web config file %q: %s: %v: fix or renew it", path, f.setting, ferr)
				skip = f.setting
			}
			fmt.Fprintf(w, "FAIL web config: %s\n", detail)
			items = append(items, CheckItem{Result: CheckFail, Item: "web config", Detail: detail})
		} else {
			detail := path
			if !servesTLS(&webConfigCache{}, path) {
				detail += " (plain HTTP: no tls_server_config)"
			}
			fmt.Fprintf(w, "ok   web config: %s\n", detail)
			items = append(items, CheckItem{Result: CheckOK, Item: "web config", Detail: detail})
		}
	}
	return append(items, tlsCheckItems(&webConfigCache{}, path, cfg, now, skip, w)...)
}

// unusableWebCertFile returns the certificate file of the web config file
// at path that cannot be read (or holds no certificate), with why (nil:
// none), when that is what validateWebConfig's err says too: exporter-toolkit's error
// quotes the file it could not read, and says "certificate input" of a
// listener's certificate that holds no PEM.
func unusableWebCertFile(path string, err error) (tlsCertFile, error) {
	for _, f := range tlsCertFiles(&webConfigCache{}, path, nil) {
		_, ferr := f.notAfter()
		if ferr == nil {
			continue
		}
		if (f.inline == nil && strings.Contains(err.Error(), f.file)) ||
			(f.use == TLSUseListener && strings.Contains(err.Error(), "certificate input")) {
			return f, ferr
		}
	}
	return tlsCertFile{}, nil
}

// tlsCheckItems is tlsCheckItems of the web config file at path, read
// through wc, at now, less the file of the setting skip (CheckTLS reports
// it as the web config's failure).
func tlsCheckItems(wc *webConfigCache, path string, cfg *Config, now time.Time, skip string, w io.Writer) []CheckItem {
	var items []CheckItem
	for _, f := range tlsCertFiles(wc, path, cfg) {
		if f.setting == skip && skip != "" {
			continue
		}
		what := "tls certificate " + f.use
		t, err := f.notAfter()
		if err != nil {
			// notAfter's error names the file (or says why it does
			// not: a value that looks like PEM), never its content.
			detail := fmt.Sprintf("%s: %v: fix or renew it", f.setting, err)
			fmt.Fprintf(w, "FAIL %s: %s\n", what, detail)
			items = append(items, CheckItem{Result: CheckFail, Item: what, Detail: detail})
			continue
		}
		left := t.Sub(now).Round(time.Minute)
		switch {
		case !t.After(now):
			detail := fmt.Sprintf("%s: the first certificate expired at %s: renew it", f.file, t.UTC().Format(time.RFC3339))
			fmt.Fprintf(w, "FAIL %s: %s\n", what, detail)
			items = append(items, CheckItem{Result: CheckFail, Item: what, Detail: detail})
		case left <= TLSExpiryWarning:
			note := fmt.Sprintf("%s: the first certificate expires at %s, in %s: renew it (psa-syncd reads a renewed file without a restart).", f.file, t.UTC().Format(time.RFC3339), left)
			fmt.Fprintf(w, "NOTE %s:\n   - %s\n", what, note)
			items = append(items, CheckItem{Result: CheckNote, Item: what, Notes: []string{note}})
		default:
			detail := fmt.Sprintf("%s: the first certificate expires at %s", f.file, t.UTC().Format(time.RFC3339))
			fmt.Fprintf(w, "ok   %s: %s\n", what, detail)
			items = append(items, CheckItem{Result: CheckOK, Item: what, Detail: detail})
		}
	}
	return items
}
