package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 that
// expires at notAfter, and its key, as PEM files.
func writeSelfSigned(t *testing.T, certFile, keyFile string, serial int64, usage x509.ExtKeyUsage, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "psa-syncd"},
		NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
}

// TestRun_checkTLSCertificates: check without -web.url lists the
// certificate files of the state section (a standby's advertise_ca_file
// and client certificate) with the expiry of their first certificate, and
// with -web.config.file, the file run is given, checks that run can use it
// and lists the listener's certificate and client CAs too: a note within a
// week of the expiry, a failure once expired, as check -web.url lists the
// running daemon's. With -web.url the daemon checks its own web config
// file, so -web.config.file is a usage error there.
func TestRun_checkTLSCertificates(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	now := time.Now()
	serverFile, serverKey := filepath.Join(e.dir, "server.pem"), filepath.Join(e.dir, "server-key.pem")
	caFile, caKey := filepath.Join(e.dir, "ca.pem"), filepath.Join(e.dir, "ca-key.pem")
	clientFile, clientKey := filepath.Join(e.dir, "client.pem"), filepath.Join(e.dir, "client-key.pem")
	writeSelfSigned(t, serverFile, serverKey, 2, x509.ExtKeyUsageServerAuth, now.Add(3*24*time.Hour))
	writeSelfSigned(t, caFile, caKey, 3, x509.ExtKeyUsageServerAuth, now.Add(60*24*time.Hour))
	writeSelfSigned(t, clientFile, clientKey, 4, x509.ExtKeyUsageClientAuth, now.Add(-time.Hour))
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.cfgPath, string(cfg)+fmt.Sprintf("state:\n  advertise_ca_file: %s\n  advertise_client_cert_file: %s\n  advertise_client_key_file: %s\n", caFile, clientFile, clientKey))

	code, stdout, stderr := runCmd(t, "check", "-config.file", e.cfgPath)
	for _, want := range []string{
		"ok   tls certificate advertise_ca: " + caFile + ": the first certificate expires at ",
		"FAIL tls certificate advertise_client: " + clientFile + ": the first certificate expired at ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check without -web.config.file: exit %d, no line %q in\n%s\n%s", code, want, stdout, stderr)
		}
	}
	if code != 1 || strings.Contains(stdout, "web config") || strings.Contains(stdout, "tls certificate listener") {
		t.Errorf("check without -web.config.file: exit %d, want 1 (an expired client certificate) and no web config items\n%s", code, stdout)
	}

	writeSelfSigned(t, clientFile, clientKey, 5, x509.ExtKeyUsageClientAuth, now.Add(60*24*time.Hour))
	web := filepath.Join(e.dir, "web-config.yml")
	// Relative to the web config file, as run reads it.
	writeFile(t, web, "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n")
	code, stdout, stderr = runCmd(t, "check", "-config.file", e.cfgPath, "-web.config.file", web)
	for _, want := range []string{
		"ok   web config: " + web + "\n",
		"NOTE tls certificate listener:\n   - " + serverFile + ": the first certificate expires at ",
		"ok   tls certificate client_ca: " + caFile + ": the first certificate expires at ",
		"ok   tls certificate advertise_client: " + clientFile + ": ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check -web.config.file: exit %d, no line %q in\n%s\n%s", code, want, stdout, stderr)
		}
	}
	if code != 0 {
		t.Errorf("check -web.config.file with a listener certificate expiring in 3 days: exit %d, want 0 (a note)\n%s", code, stdout)
	}

	// A web config file run would refuse fails the check, naming the file
	// it cannot read.
	writeFile(t, web, "tls_server_config:\n  cert_file: missing.pem\n  key_file: server-key.pem\n")
	code, stdout, _ = runCmd(t, "check", "-config.file", e.cfgPath, "-web.config.file", web)
	if code != 1 || !strings.Contains(stdout, "FAIL web config: web config file \""+web+"\": ") || !strings.Contains(stdout, "missing.pem") {
		t.Errorf("check -web.config.file naming a missing certificate: exit %d, want 1 and a failed web config naming it\n%s", code, stdout)
	}

	code, _, stderr = runCmd(t, "check", "-web.url", "http://127.0.0.1:1", "-web.config.file", web)
	if code != 2 || !strings.Contains(stderr, "-web.config.file applies without -web.url only") {
		t.Errorf("check -web.url -web.config.file: exit %d, stderr %q; want 2 and a usage error", code, stderr)
	}
}
