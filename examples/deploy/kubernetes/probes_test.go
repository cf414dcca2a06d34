package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/psa-sync/terraform-provider-psa/daemon"
)

// deployments decodes the Deployments of both examples: this directory's
// and the two-replica one (../kubernetes-ha), by file name.
func deployments(t *testing.T) map[string]appsv1.Deployment {
	t.Helper()
	m := load(t)
	const ha = "../kubernetes-ha/psa-syncd.yaml"
	data, err := os.ReadFile(ha)
	if err != nil {
		t.Fatal(err)
	}
	var haDeploy appsv1.Deployment
	doc, _, _ := strings.Cut(string(data), "\n---\n")
	if err := unmarshalStrict([]byte(doc), &haDeploy); err != nil {
		t.Fatalf("%s: %v", ha, err)
	}
	return map[string]appsv1.Deployment{"deployment.yaml": m.deployment, ha: haDeploy}
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
// with every PSA and source request failing (a PSA outage), and asks it what
// the kubelet would ask for every probe of both Deployments: each is an
// HTTP GET on the container's port that the configuration listens on, of a
// path the daemon's mux serves, and answers 200. A liveness probe that
// failed here would restart the pod in a PSA outage; a readiness probe that
// failed would keep the Service, and so the first PUT of the export, away
// from it for ever.
func TestProbes_daemonAnswers(t *testing.T) {
	m := load(t)
	cfg, cfgFile := loadSingleConfig(t, m)
	cfg.StateDir = t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(cfg, cfgFile, daemon.Options{
		HTTPClient:    &http.Client{Transport: refusingTransport{}},
		Listener:      ln,
		WatchInterval: time.Hour,
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
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string, error) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body)), nil
	}
	// Run serves once the export is tried and the state database open.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, _, err := get("/-/healthy"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("psa-syncd did not answer within 10 s: %v", err)
		}
	}

	for file, dep := range deployments(t) {
		for _, c := range dep.Spec.Template.Spec.Containers {
			port := listenPort(t, file, c, cfg.Web.ListenAddress)
			for _, p := range []struct {
				kind  string
				probe *corev1.Probe
			}{{"startupProbe", c.StartupProbe}, {"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
				if p.probe == nil {
					t.Errorf("%s: container %s has no %s", file, c.Name, p.kind)
					continue
				}
				g := p.probe.HTTPGet
				if g == nil {
					t.Errorf("%s: %s is not an HTTP GET: psa-syncd's image has no shell for exec probes", file, p.kind)
					continue
				}
				if s := g.Scheme; s != "" && s != corev1.URISchemeHTTP {
					t.Errorf("%s: %s scheme %s, but the configuration serves plain HTTP", file, p.kind, s)
				}
				if got := containerPort(c, g.Port); got != port {
					t.Errorf("%s: %s port %s is container port %d, but psa-syncd listens on %d", file, p.kind, g.Port.String(), got, port)
				}
				code, body, err := get(g.Path)
				if err != nil || code != http.StatusOK {
					t.Errorf("%s: %s GET %s = %d %q, %v; want 200 before the first export and with the PSA unreachable", file, p.kind, g.Path, code, body, err)
				}
			}
		}
	}
}

// loadSingleConfig loads this directory's ConfigMap's psa-syncd.yml with
// the Secret's values as its credential files (in a temporary directory),
// and returns it and its path.
func loadSingleConfig(t *testing.T, m *manifests) (*daemon.Config, string) {
	t.Helper()
	const credDir = "/etc/psa-syncd/credentials/"
	dir := t.TempDir()
	for k, v := range m.secret.StringData {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
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
	for file, dep := range deployments(t) {
		for _, c := range dep.Spec.Template.Spec.Containers {
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
