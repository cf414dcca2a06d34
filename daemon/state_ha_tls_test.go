package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// TestDaemon_standbyForwardsToTheActiveInstanceOverTLS: two instances on
// one PostgreSQL database, as the Kubernetes HA example runs them: each
// listener serves TLS (tls_server_config in its web config file) with a
// certificate of the operator's own CA, and each advertises its address
// (state.advertise_host): its pod IP, which the certificate holds as an IP
// address SAN, or, as the example's StatefulSet does, its pod's name under
// the headless Service, which one wildcard certificate for both pods
// covers. The standby forwards an API call and a status page action to the
// active instance over https, and checks its certificate against the CA
// of state.advertise_ca_file, which the system's roots do not hold.
//
// A certificate that does not hold the advertised host, or that another CA
// signed, is refused, and the error says what to change.
func TestDaemon_standbyForwardsToTheActiveInstanceOverTLS(t *testing.T) {
	t.Parallel()
	const peers = ".psa-syncd-peers.psa-sync.svc"
	for _, tc := range []struct {
		name string
		// hosts are the two pods' advertise_host.
		hosts [2]string
		// cert is the certificate both pods' listeners serve; nil keeps
		// ltNewPKI's, for 127.0.0.1.
		cert func(pki *ltPKI) (certPEM, keyPEM []byte)
		// other is a certificate of pki's CA that does not hold hosts[0].
		other func(pki *ltPKI) (certPEM, keyPEM []byte)
		// otherCA is a certificate for hosts[0] of another CA.
		otherCA func(pki *ltPKI) (certPEM, keyPEM []byte)
		// missing is what the standby says other lacks.
		missing string
	}{
		{
			name: "pod IPs", hosts: [2]string{"127.0.0.1", "127.0.0.1"},
			other: func(pki *ltPKI) ([]byte, []byte) { return pki.issue(10, "psa-syncd", net.IPv4(127, 0, 0, 2)) },
			otherCA: func(*ltPKI) ([]byte, []byte) {
				return ltNewPKI(t, t.TempDir()).issue(11, "psa-syncd", net.IPv4(127, 0, 0, 1))
			},
			missing: "its certificate does not hold 127.0.0.1, the host of the URL it advertises, as an IP address SAN",
		},
		{
			name: "StatefulSet pods under a wildcard certificate", hosts: [2]string{"psa-syncd-0" + peers, "psa-syncd-1" + peers},
			cert: func(pki *ltPKI) ([]byte, []byte) {
				return pki.issueWith(12, func(c *x509.Certificate) { c.DNSNames = []string{"*" + peers} })
			},
			// A certificate made for the Service's name only.
			other: func(pki *ltPKI) ([]byte, []byte) {
				return pki.issueWith(13, func(c *x509.Certificate) { c.DNSNames = []string{"psa-syncd.psa-sync.svc"} })
			},
			otherCA: func(*ltPKI) ([]byte, []byte) {
				return ltNewPKI(t, t.TempDir()).issueWith(14, func(c *x509.Certificate) { c.DNSNames = []string{"*" + peers} })
			},
			missing: "its certificate does not hold psa-syncd-0" + peers + ", the host of the URL it advertises, as a DNS name SAN",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testStandbyForwardsOverTLS(t, tc.hosts, tc.cert, tc.other, tc.otherCA, tc.missing)
		})
	}
}

// testStandbyForwardsOverTLS is TestDaemon_standbyForwardsToTheActiveInstanceOverTLS
// with the pods advertising hosts, their listeners serving cert (nil:
// ltNewPKI's), and then other and otherCA on the active one, which the
// standby refuses, saying missing of other. A host name is dialled on
// 127.0.0.1, as the cluster's DNS would answer it.
func testStandbyForwardsOverTLS(t *testing.T, hosts [2]string, cert, other, otherCA func(*ltPKI) ([]byte, []byte), missing string) {
	const token = "tls-ha-token-0123"
	e, pki := haTLSSetup(t, token)
	if cert != nil {
		certPEM, keyPEM := cert(pki)
		dtWrite(t, pki.certFile, string(certPEM))
		dtWrite(t, pki.keyFile, string(keyPEM))
	}
	webFile := filepath.Join(e.dir, "web-config.yml")
	dtWrite(t, webFile, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", pki.certFile, pki.keyFile))
	listen := func() (net.Listener, string) {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln, ln.Addr().String()
	}
	lnA, addrA := listen()
	lnB, addrB := listen()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	// The cluster's DNS: every name is the pod's on this machine.
	dialer := &net.Dialer{}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	start := func(ln net.Listener, host string) *Daemon {
		t.Helper()
		return haServe(t, e.cfgPath, cfgEnv(map[string]string{"PSA_SYNCD_ADVERTISE_HOST": host}), ln,
			Options{WebConfigFile: webFile, Logger: logger, dialActive: dial})
	}
	a := start(lnA, hosts[0])
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := start(lnB, hosts[1])
	var se *StandbyError
	if err := b.BecomeActive(t.Context()); !errors.As(err, &se) {
		t.Fatalf("second BecomeActive = %v, want a StandbyError", err)
	}
	_, portA, _ := net.SplitHostPort(addrA)
	urlA := "https://" + net.JoinHostPort(hosts[0], portA)
	if info, _, err := b.db.Leader(); err != nil || info.URL != urlA {
		t.Fatalf("the standby reads the active instance's URL as %q (%v); want %s", info.URL, err, urlA)
	}
	// The certificate holds each pod's host: no warning at the start.
	if strings.Contains(logs.String(), "does not hold the address this instance advertises") {
		t.Errorf("a pod warned that its certificate does not hold its advertised host:\n%s", logs.String())
	}

	// A client of the standby, over TLS too, checking its host.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.roots, ServerName: hosts[1], MinVersion: tls.VersionTLS12}}}
	t.Cleanup(client.CloseIdleConnections)
	syncThroughStandby := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+addrB+"/api/v1/sync", strings.NewReader(`{"customer":"cust-acme"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var ticket SyncTicket
	if code, body := syncThroughStandby(); code != http.StatusAccepted || json.Unmarshal([]byte(body), &ticket) != nil || ticket.ID == "" {
		t.Fatalf("POST /api/v1/sync on the standby = %d %s; want the active instance's 202", code, body)
	}
	if _, ok := a.queue.get(ticket.ID); !ok {
		t.Errorf("the sync request %s the standby answered with is not queued on the active instance", ticket.ID)
	}
	c := newUIClient(t, b)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the standby's status page")
	}
	c.do(http.MethodPost, "/ui/sign-in", neturl.Values{"token": {token}, "csrf": {m[1]}, "next": {"/"}})
	syncNow := func() string {
		t.Helper()
		rec := c.do(http.MethodPost, "/ui/sync", neturl.Values{"csrf": {m[1]}, "customer": {"cust-acme"}, "next": {"/"}})
		return flash(c.do(http.MethodGet, rec.Header().Get("Location"), nil).Body.String())
	}
	if msg := syncNow(); !strings.Contains(msg, "Sync requested") {
		t.Errorf("Sync now on the standby's status page says %q; want the active instance's request queued", msg)
	}

	// The active pod's certificate, renewed without its host (a new pod
	// IP, a certificate made for the Service's name only), and then one
	// of another CA: the standby's next connection refuses it.
	for _, tc := range []struct {
		name string
		cert func(*ltPKI) (certPEM, keyPEM []byte)
		want []string
	}{
		{name: "without the pod's host", cert: other, want: []string{"(" + urlA + ")", missing, "tls_server_config"}},
		{name: "of another CA", cert: otherCA,
			want: []string{"(" + urlA + ")", "its certificate is signed by a CA this standby does not trust", "state.advertise_ca_file"}},
	} {
		certPEM, keyPEM := tc.cert(pki)
		dtWrite(t, pki.certFile, string(certPEM))
		dtWrite(t, pki.keyFile, string(keyPEM))
		b.activeTransports.get(b.logger).CloseIdleConnections()
		code, body := syncThroughStandby()
		if code != http.StatusBadGateway {
			t.Errorf("%s: POST /api/v1/sync on the standby = %d %s; want 502", tc.name, code, body)
		}
		msg := syncNow()
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: the standby's API answers %s; want it to say %q", tc.name, body, w)
			}
			if !strings.Contains(msg, w) {
				t.Errorf("%s: Sync now on the standby's status page says %q; want it to say %q", tc.name, msg, w)
			}
		}
	}
}

// haTLSSetup prepares two instances on a new PostgreSQL database whose
// listeners serve TLS, as the Kubernetes HA example runs them: the test
// environment of token (its own daemon closed: the test starts the two),
// listen_address 127.0.0.1:9810 (the port each advertises) and
// state.advertise_ca_file the returned PKI's CA, which the system's roots
// do not hold. The web config file is the test's to write.
func haTLSSetup(t *testing.T, token string) (*dtEnv, *ltPKI) {
	t.Helper()
	pgURL, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e := dtSetup(t, dtOptions{token: token, state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", pgURL)})
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	pki := ltNewPKI(t, e.dir)
	data, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.cfgPath, strings.Replace(string(data), "listen_address: 127.0.0.1:0", "listen_address: 127.0.0.1:9810", 1)+
		fmt.Sprintf("  advertise_ca_file: %s\n", pki.caFile))
	return e, pki
}

// haServe starts an instance of the config file cfgPath, read with env,
// with opts (its own registry, and ln's address to listen on), serves it
// on ln through its listener, and reloads it, as main does; the test's end
// closes both.
func haServe(t *testing.T, cfgPath string, env func(string) string, ln net.Listener, opts Options) *Daemon {
	t.Helper()
	c, err := Load(cfgPath, env)
	if err != nil {
		t.Fatal(err)
	}
	opts.Registry, opts.ListenAddress = prometheus.NewRegistry(), ln.Addr().String()
	d, err := New(c, cfgPath, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: time.Minute}
	go func() { _ = d.serve(srv, ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	return d
}
