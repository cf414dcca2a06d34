package daemon

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestDaemon_tlsCertificateExpiry: every certificate file psa-syncd uses
// (the listener's certificate and client CAs, state.advertise_ca_file,
// state.advertise_client_cert_file) has its first certificate's expiry in
// psa_sync_tls_certificate_expiry_timestamp_seconds, read at each scrape:
// a certificate renewed in place shows its new expiry without a reload, and
// a file a reload no longer names is no longer exported. A certificate that
// expires within a week, or has expired, is logged at start (Run reloads)
// and at each reload, with the file and its use, never its content, and
// psa-syncd check through the daemon (POST /api/v1/check) lists each one:
// a note within a week, a failure once expired.
func TestDaemon_tlsCertificateExpiry(t *testing.T) {
	t.Parallel()
	const token = "tls-expiry-token-0123"
	e := dtSetup(t, dtOptions{token: token})
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	pki := ltNewPKI(t, e.dir) // its CA expires in an hour
	caExpiry := certExpiry(t, pki.caFile)
	issue := func(serial int64, usage x509.ExtKeyUsage, notAfter time.Time) (string, string) {
		certPEM, keyPEM := pki.issueWith(serial, func(c *x509.Certificate) {
			c.ExtKeyUsage, c.IPAddresses, c.NotAfter = []x509.ExtKeyUsage{usage}, []net.IP{net.IPv4(127, 0, 0, 1)}, notAfter
		})
		return string(certPEM), string(keyPEM)
	}
	// Whole seconds: the metric is a float of Unix seconds.
	now := time.Now().Truncate(time.Second)
	certPEM, keyPEM := issue(20, x509.ExtKeyUsageServerAuth, now.Add(3*24*time.Hour))
	dtWrite(t, pki.certFile, certPEM)
	dtWrite(t, pki.keyFile, keyPEM)
	clientFile, clientKeyFile := filepath.Join(e.dir, "client.pem"), filepath.Join(e.dir, "client-key.pem")
	certPEM, keyPEM = issue(21, x509.ExtKeyUsageClientAuth, now.Add(60*24*time.Hour))
	dtWrite(t, clientFile, certPEM)
	dtWrite(t, clientKeyFile, keyPEM)
	webFile := filepath.Join(e.dir, "web-config.yml")
	// The listener's files relative to the web config file, as
	// exporter-toolkit reads them.
	dtWrite(t, webFile, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: %s\n",
		filepath.Base(pki.certFile), filepath.Base(pki.keyFile), filepath.Base(pki.caFile)))
	data, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.Replace(string(data), "listen_address: 127.0.0.1:0", "listen_address: 127.0.0.1:9443", 1)
	withState := base + fmt.Sprintf("state:\n  advertise_ca_file: %s\n  advertise_client_cert_file: %s\n  advertise_client_key_file: %s\n", pki.caFile, clientFile, clientKeyFile)
	dtWrite(t, e.cfgPath, withState)
	c, err := Load(e.cfgPath, cfgEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	reg := prometheus.NewRegistry()
	d, err := New(c, e.cfgPath, Options{Registry: reg, ListenAddress: "127.0.0.1:9443", WebConfigFile: webFile,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return *clock.Load() },
		Check: func(context.Context, *Config, func() ([]byte, error), func(*Config) (psa.Backend, error), io.Writer) []CheckItem {
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })

	type series struct{ file, use string }
	// gauge returns the TLS gauge name by series.
	gauge := func(name string) map[series]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[series]float64{}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				var s series
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "file":
						s.file = l.GetValue()
					case "use":
						s.use = l.GetValue()
					}
				}
				got[s] = m.GetGauge().GetValue()
			}
		}
		return got
	}
	scrape := func() map[series]time.Time {
		t.Helper()
		got := map[series]time.Time{}
		for s, v := range gauge("psa_sync_tls_certificate_expiry_timestamp_seconds") {
			got[s] = time.Unix(int64(v), 0)
		}
		return got
	}
	// readable returns psa_sync_tls_certificate_readable by series.
	readable := func() map[series]float64 {
		t.Helper()
		return gauge("psa_sync_tls_certificate_readable")
	}
	// check checks the expiries; every file in use is readable but those
	// of unreadable, which have no expiry.
	check := func(step string, want map[series]time.Time, unreadable ...series) {
		t.Helper()
		got := scrape()
		if !maps.EqualFunc(got, want, time.Time.Equal) {
			t.Errorf("%s: psa_sync_tls_certificate_expiry_timestamp_seconds = %v, want %v", step, got, want)
		}
		wantReadable := map[series]float64{}
		for s := range want {
			wantReadable[s] = 1
		}
		for _, s := range unreadable {
			wantReadable[s] = 0
		}
		if got := readable(); !maps.Equal(got, wantReadable) {
			t.Errorf("%s: psa_sync_tls_certificate_readable = %v, want %v", step, got, wantReadable)
		}
	}
	listener, clientCA := series{pki.certFile, TLSUseListener}, series{pki.caFile, TLSUseClientCA}
	advertiseCA, advertiseClient := series{pki.caFile, TLSUseAdvertiseCA}, series{clientFile, TLSUseAdvertiseClient}
	check("at start", map[series]time.Time{
		listener: now.Add(3 * 24 * time.Hour), clientCA: caExpiry, advertiseCA: caExpiry, advertiseClient: now.Add(60 * 24 * time.Hour),
	})
	// warned returns the expiry warnings logged since the last call, as
	// "use file".
	seen := 0
	warned := func() []string {
		t.Helper()
		all := logs.String()
		out := all[seen:]
		seen = len(all)
		var w []string
		for _, line := range strings.Split(out, "\n") {
			if !strings.Contains(line, "A TLS certificate psa-syncd uses") {
				continue
			}
			if strings.Contains(line, "BEGIN") {
				t.Errorf("a warning holds PEM content: %s", line)
			}
			kind := "soon"
			if strings.Contains(line, "has expired") {
				kind = "expired"
			}
			var use, file string
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "use="); ok {
					use = v
				}
				if v, ok := strings.CutPrefix(f, "file="); ok {
					file = v
				}
			}
			w = append(w, kind+" "+use+" "+file)
		}
		slices.Sort(w)
		return w
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	want := []string{"soon advertise_ca " + pki.caFile, "soon client_ca " + pki.caFile, "soon listener " + pki.certFile}
	if got := warned(); !slices.Equal(got, want) {
		t.Errorf("the start's reload warned of %q; want %q (the listener's certificate expires in 3 days, the CA in an hour, the client certificate in 60 days)\n%s", got, want, logs.String())
	}
	// checked returns psa-syncd check's report through the daemon, and its
	// TLS items as "result item".
	checked := func() (CheckReport, []string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/check", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		d.Handler().ServeHTTP(rec, req)
		var r CheckReport
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &r) != nil {
			t.Fatalf("POST /api/v1/check = %d %s", rec.Code, rec.Body.String())
		}
		var items []string
		for _, it := range r.Items {
			items = append(items, it.Result+" "+it.Item)
		}
		slices.Sort(items)
		return r, items
	}
	report, items := checked()
	if want := []string{"note tls certificate advertise_ca", "note tls certificate client_ca", "note tls certificate listener", "ok tls certificate advertise_client"}; !report.OK || !slices.Equal(items, want) {
		t.Errorf("check = ok %t, items %q; want ok, items %q\n%s", report.OK, items, want, report.Report)
	}
	if !strings.Contains(report.Report, "NOTE tls certificate listener:\n   - "+pki.certFile+": the first certificate expires at ") {
		t.Errorf("check's report says\n%s\nwant a note naming the listener's certificate file", report.Report)
	}

	// cert-manager renews the listener's certificate in place: the next
	// scrape says so, no reload needed; a reload no longer warns of it.
	certPEM, keyPEM = issue(22, x509.ExtKeyUsageServerAuth, now.Add(90*24*time.Hour))
	dtWrite(t, pki.certFile, certPEM)
	dtWrite(t, pki.keyFile, keyPEM)
	check("after the listener's renewal", map[series]time.Time{
		listener: now.Add(90 * 24 * time.Hour), clientCA: caExpiry, advertiseCA: caExpiry, advertiseClient: now.Add(60 * 24 * time.Hour),
	})
	later := now.Add(2 * time.Hour) // the CA has expired
	clock.Store(&later)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	want = []string{"expired advertise_ca " + pki.caFile, "expired client_ca " + pki.caFile}
	if got := warned(); !slices.Equal(got, want) {
		t.Errorf("a reload after the CA expired warned of %q; want %q", got, want)
	}
	report, items = checked()
	if want := []string{"fail tls certificate advertise_ca", "fail tls certificate client_ca", "ok tls certificate advertise_client", "ok tls certificate listener"}; report.OK || !slices.Equal(items, want) {
		t.Errorf("check after the CA expired = ok %t, items %q; want not ok, items %q\n%s", report.OK, items, want, report.Report)
	}

	// A reload without the standby's files: they are no longer exported.
	dtWrite(t, e.cfgPath, base)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	check("after a reload without the state section's files", map[series]time.Time{listener: now.Add(90 * 24 * time.Hour), clientCA: caExpiry})
	// A listener's certificate file that holds no certificate (being
	// replaced, or a renewal that broke it) has no expiry, rather than a
	// wrong one, and is unreadable: PsaSyncTLSCertificateUnreadable fires
	// where PsaSyncTLSCertificateExpiresSoon resolved.
	dtWrite(t, pki.certFile, "")
	check("with an empty certificate file", map[series]time.Time{clientCA: caExpiry}, listener)
	dtWrite(t, pki.certFile, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	check("with a corrupt certificate file", map[series]time.Time{clientCA: caExpiry}, listener)
	if err := os.Remove(pki.certFile); err != nil {
		t.Fatal(err)
	}
	check("with the certificate file gone", map[series]time.Time{clientCA: caExpiry}, listener)
	// check fails it too, naming the setting and the file, rather than
	// leaving it out as if the listener served no TLS.
	report, items = checked()
	if want := []string{"fail tls certificate client_ca", "fail tls certificate listener"}; report.OK || !slices.Equal(items, want) {
		t.Errorf("check with the certificate file gone = ok %t, items %q; want not ok, items %q\n%s", report.OK, items, want, report.Report)
	}
	if want := "FAIL tls certificate listener: tls_server_config.cert_file: open " + pki.certFile + ": no such file or directory"; !strings.Contains(report.Report, want) {
		t.Errorf("check's report says\n%s\nwant %q", report.Report, want)
	}
	dtWrite(t, pki.certFile, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	report, _ = checked()
	if want := "FAIL tls certificate listener: tls_server_config.cert_file: " + pki.certFile + ": a certificate cannot be parsed: "; !strings.Contains(report.Report, want) || strings.Contains(report.Report, "bm90IGEgY2VydGlmaWNhdGU") {
		t.Errorf("check's report with a corrupt certificate file says\n%s\nwant %q and not the file's content", report.Report, want)
	}
}

// certExpiry returns the NotAfter of the first certificate in file.
func certExpiry(t *testing.T, file string) time.Time {
	t.Helper()
	n, err := (tlsCertFile{file: file}).notAfter()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
