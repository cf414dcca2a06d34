package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLoad_advertiseHost: state.advertise_host (PSA_SYNCD_ADVERTISE_HOST)
// is an address known only when the process starts, a Kubernetes pod's IP
// say, from which psa-syncd builds the URL it advertises: an IPv6 address
// in brackets, the listener's port, https for a TLS listener. A URL built
// by hand around an IPv6 address without brackets parses, but no client
// can dial it: it is refused at load, not at the first forward.
func TestLoad_advertiseHost(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "psa-syncd.yml")
	base := "export_path: x.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n" +
		"source: {type: file, file: {path: u.csv}}\n"
	for _, tc := range []struct {
		name, file  string
		env         map[string]string
		http, https string // AdvertisedURL without and with TLS
		err         string
	}{
		{name: "IPv4 pod IP", file: "web: {listen_address: ':9810'}\n", env: map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "10.42.0.7"},
			http: "http://10.42.0.7:9810", https: "https://10.42.0.7:9810"},
		{name: "IPv6 pod IP", file: "web: {listen_address: ':9810'}\n", env: map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "fd00:10:244::7"},
			http: "http://[fd00:10:244::7]:9810", https: "https://[fd00:10:244::7]:9810"},
		{name: "IPv6 in brackets", file: "state: {advertise_host: '[fd00::7]'}\nweb: {listen_address: '[::]:9443'}\n",
			http: "http://[fd00::7]:9443", https: "https://[fd00::7]:9443"},
		{name: "a name, the default listen address", file: "state: {advertise_host: psa-syncd-0.psa-syncd.psa-sync.svc}\n",
			http: "http://psa-syncd-0.psa-syncd.psa-sync.svc:9810", https: "https://psa-syncd-0.psa-syncd.psa-sync.svc:9810"},
		{name: "the whole URL still", file: "state: {advertise_url: 'https://[fd00::7]:9810'}\n",
			http: "https://[fd00::7]:9810", https: "https://[fd00::7]:9810"},
		{name: "none", file: "web: {listen_address: ':9810'}\n"},
		{name: "URL with an IPv6 address without brackets", env: map[string]string{"PSA_SYNCD_ADVERTISE_URL": "http://fd00:10:244::7:9810"},
			err: `state.advertise_url: "http://fd00:10:244::7:9810" has an IPv6 address without brackets (http://[fd00::7]:9810): give the address alone in state.advertise_host (PSA_SYNCD_ADVERTISE_HOST), and psa-syncd builds the URL`},
		{name: "both", file: "state: {advertise_url: 'http://10.42.0.7:9810'}\n", env: map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "10.42.0.7"},
			err: "state.advertise_url and state.advertise_host (or PSA_SYNCD_ADVERTISE_URL and PSA_SYNCD_ADVERTISE_HOST): give one, not both"},
		{name: "a URL as the host", env: map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "http://10.42.0.7:9810"},
			err: `state.advertise_host: "http://10.42.0.7:9810" is not a host name or an IP address: give the host only, psa-syncd adds the scheme and the listener's port (or give a whole URL in state.advertise_url)`},
		{name: "a host and port", env: map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "10.42.0.7:9810"},
			err: `state.advertise_host: "10.42.0.7:9810" is not a host name or an IP address`},
		{name: "a zone", env: map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "fe80::7%eth0"},
			err: `state.advertise_host: "fe80::7%eth0" has a zone`},
		{name: "port 0", file: "web: {listen_address: '127.0.0.1:0'}\n", env: map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "10.42.0.7"},
			err: `state.advertise_host: the listen address "127.0.0.1:0" has no fixed port to advertise`},
	} {
		cfgWriteFile(t, path, base+tc.file)
		c, err := Load(path, cfgEnv(tc.env))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got, gotTLS := c.AdvertisedURL(false), c.AdvertisedURL(true); got != tc.http || gotTLS != tc.https {
			t.Errorf("%s: advertised %q, with TLS %q; want %q and %q", tc.name, got, gotTLS, tc.http, tc.https)
		}
	}
}

// TestDaemon_advertisesTheURLBuiltFromItsHost: the instance that becomes
// active records, for the standbys to forward to, the URL built from
// state.advertise_host with the listener's port (-web.listen-address
// overrides the file's) and https, since its web config file has it serve
// TLS. A listener on a port the system picks has none to advertise.
func TestDaemon_advertisesTheURLBuiltFromItsHost(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	pki := ltNewPKI(t, e.dir)
	webFile := filepath.Join(e.dir, "web-config.yml")
	dtWrite(t, webFile, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", pki.certFile, pki.keyFile))
	if _, err := Load(e.cfgPath, cfgEnv(map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "fd00:10:244::7"})); err == nil || !strings.Contains(err.Error(), "no fixed port to advertise") {
		t.Fatalf("Load with listen_address 127.0.0.1:0 and an advertise_host = %v; want it refused", err)
	}
	data, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.cfgPath, strings.Replace(string(data), "listen_address: 127.0.0.1:0", "listen_address: 127.0.0.1:9810", 1))
	c, err := Load(e.cfgPath, cfgEnv(map[string]string{"PSA_SYNCD_ADVERTISE_HOST": "fd00:10:244::7"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(c, e.cfgPath, Options{Registry: prometheus.NewRegistry(), ListenAddress: ":0", WebConfigFile: webFile}); err == nil ||
		!strings.Contains(err.Error(), `the listen address ":0" has no fixed port to advertise`) {
		t.Errorf("New with -web.listen-address :0 and an advertise_host = %v; want it refused", err)
	}
	d, err := New(c, e.cfgPath, Options{Registry: prometheus.NewRegistry(), ListenAddress: ":9443", WebConfigFile: webFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	info, held, err := d.db.Leader()
	if err != nil || !held {
		t.Fatalf("Leader() = %+v, %v, %v; want this instance active", info, held, err)
	}
	if want := "https://[fd00:10:244::7]:9443"; info.URL != want {
		t.Errorf("advertised URL %q, want %q", info.URL, want)
	}
}

// TestLoad_advertiseCAFile: state.advertise_ca_file, the CA a standby
// checks the active instance's certificate against, is read at load, so
// that a wrong path or a file of something else stops the start (and
// psa-syncd validate), not the first forward.
func TestLoad_advertiseCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "psa-syncd.yml")
	pki := ltNewPKI(t, dir)
	dtWrite(t, filepath.Join(dir, "key.pem"), "not a certificate\n")
	base := "export_path: x.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n" +
		"source: {type: file, file: {path: u.csv}}\n"
	for _, tc := range []struct{ file, err string }{
		{file: filepath.Base(pki.caFile)},
		{file: "missing.pem", err: "state.advertise_ca_file: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{file: "key.pem", err: "state.advertise_ca_file: " + filepath.Join(dir, "key.pem") + " holds no PEM certificate"},
	} {
		cfgWriteFile(t, path, base+"state: {advertise_ca_file: "+tc.file+"}\n")
		c, err := Load(path, nil)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.file, err)
		case tc.err == "" && c.State.AdvertiseCAFile != pki.caFile:
			t.Errorf("%s: advertise_ca_file %q, want %q", tc.file, c.State.AdvertiseCAFile, pki.caFile)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one saying %q", tc.file, err, tc.err)
		}
	}
}

// TestDaemon_warnsOfACertificateWithoutTheAdvertisedHost: an instance
// whose listener's certificate does not hold the address it advertises
// (made for another pod IP, or for the Service's name only) says so at
// start: the standbys would refuse it only at the first forward, while it
// is active.
func TestDaemon_warnsOfACertificateWithoutTheAdvertisedHost(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	pki := ltNewPKI(t, e.dir) // a certificate for 127.0.0.1
	webFile := filepath.Join(e.dir, "web-config.yml")
	dtWrite(t, webFile, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", filepath.Base(pki.certFile), filepath.Base(pki.keyFile)))
	data, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.cfgPath, strings.Replace(string(data), "listen_address: 127.0.0.1:0", "listen_address: 127.0.0.1:9443", 1))
	for _, tc := range []struct {
		host string
		warn bool
	}{{"10.42.0.7", true}, {"127.0.0.1", false}} {
		c, err := Load(e.cfgPath, cfgEnv(map[string]string{"PSA_SYNCD_ADVERTISE_HOST": tc.host}))
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		d, err := New(c, e.cfgPath, Options{Registry: prometheus.NewRegistry(), ListenAddress: "127.0.0.1:9443", WebConfigFile: webFile,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(logs.String(), "The listener's certificate does not hold the address this instance advertises") &&
			strings.Contains(logs.String(), "x509: certificate is valid for 127.0.0.1, not "+tc.host)
		if warned != tc.warn {
			t.Errorf("advertise_host %s, a certificate for 127.0.0.1: warned %t, want %t; logs:\n%s", tc.host, warned, tc.warn, logs.String())
		}
	}
}
