package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/psa-sync/terraform-provider-psa/daemon"
)

// pods returns the pod templates of both examples: this directory's
// Deployment and the two-replica example's StatefulSet (haFile), by file
// name.
func pods(t *testing.T) map[string]corev1.PodTemplateSpec {
	t.Helper()
	return map[string]corev1.PodTemplateSpec{"deployment.yaml": load(t).deployment.Spec.Template, haFile: loadHA(t).sts.Spec.Template}
}

// refusingTransport fails every request: the daemon under test reaches
// neither the PSA nor the source, as in a PSA outage, and nothing leaves
// the machine.
type refusingTransport struct{}

func (refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("no network in this test: %s", r.URL.Host)
}

// TestProbes_daemonAnswers serves psa-syncd as this directory's ConfigMap
// configures it, before any mapping export (as after `kubectl apply`) and
// with every PSA and source request failing (a PSA outage), and probes it
// as the kubelet would for every probe of both examples: each is an HTTP
// GET of a path the daemon's mux serves, answered 200, or a TCP connection
// accepted, on the container's port that the configuration listens on. A
// liveness probe that failed here would restart the pod in a PSA outage; a
// readiness probe that failed would keep the Service, and so the first PUT
// of the export, away from it for ever.
func TestProbes_daemonAnswers(t *testing.T) {
	m := load(t)
	cfg, cfgFile := loadSingleConfig(t, m)
	cfg.StateDir = t.TempDir()
	addr := serveProbed(t, cfg, cfgFile, "")
	for file, pod := range pods(t) {
		for _, c := range pod.Spec.Containers {
			checkProbes(t, file, c, cfg.Web.ListenAddress, addr)
		}
	}
}

// TestProbes_clientCertificatesRequired serves psa-syncd with a web config
// file whose listener requires client certificates (client_auth_type:
// RequireAndVerifyClientCert), as the two-replica example's psa-syncd.yml
// shows it, and probes it as the kubelet would: the kubelet presents no
// certificate, so an HTTP GET, even with scheme: HTTPS, fails its
// handshake, and liveness would restart the pod over and over. The
// example's probes must work with that listener as they are.
func TestProbes_clientCertificatesRequired(t *testing.T) {
	m := load(t)
	cfg, cfgFile := loadSingleConfig(t, m)
	cfg.StateDir = t.TempDir()
	dir := t.TempDir()
	writeTestPKI(t, dir)
	webFile := filepath.Join(dir, "web-config.yml")
	web := "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
	if err := os.WriteFile(webFile, []byte(web), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := serveProbed(t, cfg, cfgFile, webFile)
	// The listener does serve TLS and refuse a client without a
	// certificate: an HTTP GET of /-/healthy fails.
	if err := kubeletProbe(t.Context(), &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/-/healthy", Scheme: corev1.URISchemeHTTPS}}}, addr); err == nil {
		t.Fatal("an HTTPS GET without a client certificate succeeded: the listener does not require one")
	}
	pod := loadHA(t).sts.Spec.Template
	for _, c := range pod.Spec.Containers {
		checkProbes(t, haFile, c, cfg.Web.ListenAddress, addr)
	}
}

// serveProbed runs psa-syncd with cfg (read from cfgFile) on a listener of
// its own, its web config file webFile (none when ""), with every PSA and
// source request failing, and returns the listener's address once it
// accepts connections.
func serveProbed(t *testing.T, cfg *daemon.Config, cfgFile, webFile string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(cfg, cfgFile, daemon.Options{
		HTTPClient:    &http.Client{Transport: refusingTransport{}},
		Listener:      ln,
		WatchInterval: time.Hour,
		WebConfigFile: webFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Run serves once the export is tried and the state database open:
	// until then the listener accepts, and nothing answers.
	healthy := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/-/healthy"}}}
	if webFile != "" {
		healthy = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{}}}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := kubeletProbe(t.Context(), healthy, ln.Addr().String())
		if err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("psa-syncd did not answer within 10 s: %v", err)
		}
	}
	return ln.Addr().String()
}

// checkProbes probes psa-syncd at addr as the kubelet would for every
// probe of the container c (manifest file), which listens on the port of
// configured (web.listen_address) unless its arguments say otherwise.
func checkProbes(t *testing.T, file string, c corev1.Container, configured, addr string) {
	t.Helper()
	port := listenPort(t, file, c, configured)
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
	}{{"startupProbe", c.StartupProbe}, {"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
		if p.probe == nil {
			t.Errorf("%s: container %s has no %s", file, c.Name, p.kind)
			continue
		}
		var probePort intstr.IntOrString
		switch h := p.probe.ProbeHandler; {
		case h.HTTPGet != nil:
			probePort = h.HTTPGet.Port
		case h.TCPSocket != nil:
			probePort = h.TCPSocket.Port
		default:
			t.Errorf("%s: %s is neither an HTTP GET nor a TCP probe: psa-syncd's image has no shell for exec probes, and serves no gRPC health", file, p.kind)
			continue
		}
		if got := containerPort(c, probePort); got != port {
			t.Errorf("%s: %s port %s is container port %d, but psa-syncd listens on %d", file, p.kind, probePort.String(), got, port)
		}
		if err := kubeletProbe(t.Context(), p.probe, addr); err != nil {
			t.Errorf("%s: %s: %v; want it to succeed before the first export and with the PSA unreachable", file, p.kind, err)
		}
	}
}

// kubeletProbe probes addr (the container's port) as the kubelet does with
// p: an HTTP GET, with scheme HTTPS without checking the certificate and
// without a client certificate, that succeeds on a status from 200 to 399;
// a TCP connection that succeeds once accepted.
func kubeletProbe(ctx context.Context, p *corev1.Probe, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if p.TCPSocket != nil {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	g := p.HTTPGet
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // as the kubelet probes
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+g.Path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s = %d %q", g.Path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// writeTestPKI writes a throwaway CA (ca.crt) and a certificate for
// 127.0.0.1 for server and client authentication (tls.crt, tls.key) into
// dir, as cert-manager's Secret holds them.
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "probes test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "psa-syncd"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*pem.Block{"ca.crt": {Type: "CERTIFICATE", Bytes: caDER}, "tls.crt": {Type: "CERTIFICATE", Bytes: der}, "tls.key": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// loadSingleConfig loads this directory's ConfigMap's psa-syncd.yml with
// the Secret's keys as its credential files (in a temporary directory),
// their placeholders replaced as an operator replaces them, and returns it
// and its path.
func loadSingleConfig(t *testing.T, m *manifests) (*daemon.Config, string) {
	t.Helper()
	const credDir = "/etc/psa-syncd/credentials/"
	dir := t.TempDir()
	for k := range m.secret.StringData {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(operatorCredential(k)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "psa-syncd.yml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(m.config.Data["psa-syncd.yml"], credDir, dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := daemon.Load(file, func(string) string { return "" })
	if err != nil {
		t.Fatalf("the ConfigMap's psa-syncd.yml: %v", err)
	}
	return cfg, file
}

// listenPort is the port psa-syncd listens on in the container: that of
// its -web.listen-address argument, else of the configuration's
// web.listen_address.
func listenPort(t *testing.T, file string, c corev1.Container, configured string) int {
	t.Helper()
	addr := configured
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "web.listen-address="); ok {
			addr = v
		}
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: listen address %q: %v", file, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: listen address %q: %v", file, addr, err)
	}
	return n
}

// containerPort resolves a probe's port, a name or a number, to the
// container's port number (0 when the name is not the container's).
func containerPort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

// TestArgs_runFlags builds psa-syncd and checks every argument of both
// Deployments' containers against the flags `psa-syncd run -h` lists: the
// image's entrypoint is `psa-syncd run`, and a flag it does not know stops
// the container at once (exit 2), in a crash loop.
func TestArgs_runFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds psa-syncd")
	}
	exe := filepath.Join(t.TempDir(), "psa-syncd")
	if out, err := exec.Command("go", "build", "-o", exe, "../../../daemon/cmd/psa-syncd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(exe, "run", "-h")
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
	}
	var flags []string
	sc := bufio.NewScanner(&stderr)
	flagLine := regexp.MustCompile(`^  -([a-z.-]+)`)
	for sc.Scan() {
		if f := flagLine.FindStringSubmatch(sc.Text()); f != nil {
			flags = append(flags, f[1])
		}
	}
	if !slices.Contains(flags, "config.file") {
		t.Fatalf("psa-syncd run -h lists %v, no -config.file:\n%s", flags, stderr.String())
	}
	for file, pod := range pods(t) {
		for _, c := range pod.Spec.Containers {
			for i := 0; i < len(c.Args); i++ {
				a := c.Args[i]
				name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !strings.HasPrefix(a, "-") || !slices.Contains(flags, name) {
					t.Errorf("%s: container %s: argument %q is not a flag of psa-syncd run (%v)", file, c.Name, a, flags)
				}
				// -flag value, as two arguments.
				if !hasValue && i+1 < len(c.Args) && !strings.HasPrefix(c.Args[i+1], "-") {
					i++
				}
			}
		}
	}
}
