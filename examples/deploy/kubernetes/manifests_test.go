// Package kubernetes holds the tests of the Kubernetes manifests in this
// directory; it has no code of its own.
package kubernetes

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/psa-sync/terraform-provider-psa/daemon"
)

var update = flag.Bool("update", false, "rewrite prometheusrule.yaml from examples/prometheus/alerts.yml")

const (
	alertsFile = "../../prometheus/alerts.yml"
	ruleFile   = "prometheusrule.yaml"
	// imageUID is the user the container image runs as
	// (examples/deploy/container).
	imageUID = 65532
)

// decode strictly decodes a manifest into obj: an unknown or misspelled
// field, a duplicate key or a wrong type is an error, as kubectl's
// server-side field validation would report it. It also checks apiVersion
// and kind.
func decode(t *testing.T, file, apiVersion, kind string, obj any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		t.Fatal(err)
	}
	if tm.APIVersion != apiVersion || tm.Kind != kind {
		t.Fatalf("%s is %s %s, want %s %s", file, tm.APIVersion, tm.Kind, apiVersion, kind)
	}
}

// unmarshalStrict decodes YAML as the API server decodes JSON: field names
// match case-sensitively, and unknown or duplicate fields are errors.
func unmarshalStrict(data []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, obj)
	return errors.Join(append([]error{err}, strictErrs...)...)
}

// manifests are the decoded manifests of this directory.
type manifests struct {
	secret         corev1.Secret
	config         corev1.ConfigMap
	statefulSet    appsv1.StatefulSet
	service        corev1.Service
	serviceMonitor monitoringv1.ServiceMonitor
	rule           monitoringv1.PrometheusRule
}

func load(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{}
	decode(t, "secret.yaml", "v1", "Secret", &m.secret)
	decode(t, "configmap.yaml", "v1", "ConfigMap", &m.config)
	decode(t, "statefulset.yaml", "apps/v1", "StatefulSet", &m.statefulSet)
	decode(t, "service.yaml", "v1", "Service", &m.service)
	decode(t, "servicemonitor.yaml", "monitoring.coreos.com/v1", "ServiceMonitor", &m.serviceMonitor)
	decode(t, ruleFile, "monitoring.coreos.com/v1", "PrometheusRule", &m.rule)
	return m
}

// TestManifests_strict decodes every manifest strictly and checks that the
// directory holds no other manifest.
func TestManifests_strict(t *testing.T) {
	load(t)
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"configmap.yaml", "prometheusrule.yaml", "secret.yaml", "service.yaml", "servicemonitor.yaml", "statefulset.yaml"}
	if !slices.Equal(files, want) {
		t.Errorf("manifests = %v, want %v (add a new one to load)", files, want)
	}
}

// TestManifests_fitTogether checks what a cluster would only show at run
// time: the StatefulSet runs one non-root replica of the image's user with
// its state on a claimed volume, the Service and ServiceMonitor find it, and
// the configuration loads with the Secret's files where it expects them.
func TestManifests_fitTogether(t *testing.T) {
	m := load(t)
	sts := m.statefulSet.Spec
	if sts.Replicas == nil || *sts.Replicas != 1 {
		t.Errorf("replicas = %v, want 1 (psa-syncd locks its state database)", sts.Replicas)
	}
	pod := sts.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	checkGracePeriod(t, "statefulset.yaml", pod)
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != imageUID {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot as user %d", psc, imageUID)
	}
	csc := c.SecurityContext
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext = %+v, want a read-only root, no privilege escalation, all capabilities dropped", csc)
	}
	if !reflect.DeepEqual(sts.Selector.MatchLabels, sts.Template.Labels) {
		t.Errorf("selector %v does not match the pod labels %v", sts.Selector.MatchLabels, sts.Template.Labels)
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm
	}
	claimed := false
	for _, pvc := range sts.VolumeClaimTemplates {
		claimed = claimed || pvc.Name == "state"
	}
	if !claimed || mounts["state"].MountPath != "/var/lib/psa-syncd" {
		t.Errorf("the state volume is not a claim mounted at /var/lib/psa-syncd (claimed %v, mounts %v)", claimed, mounts)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	if v := volumes["credentials"]; v.Secret == nil || v.Secret.SecretName != m.secret.Name {
		t.Errorf("credentials volume = %+v, want the Secret %s", v, m.secret.Name)
	}
	if v := volumes["config"]; v.ConfigMap == nil || v.ConfigMap.Name != m.config.Name {
		t.Errorf("config volume = %+v, want the ConfigMap %s", v, m.config.Name)
	}

	// The Service reaches the container's port, and the ServiceMonitor the
	// Service; the Service's name becomes the job label the alerts use.
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 9810 {
		t.Errorf("container ports = %+v, want http 9810", c.Ports)
	}
	if len(m.service.Spec.Ports) != 1 || m.service.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("service ports = %+v, want one targeting http", m.service.Spec.Ports)
	}
	if !reflect.DeepEqual(m.service.Spec.Selector, sts.Template.Labels) {
		t.Errorf("service selector %v does not match the pod labels %v", m.service.Spec.Selector, sts.Template.Labels)
	}
	if !reflect.DeepEqual(m.serviceMonitor.Spec.Selector.MatchLabels, m.service.Labels) {
		t.Errorf("ServiceMonitor selector %v does not match the Service's labels %v", m.serviceMonitor.Spec.Selector.MatchLabels, m.service.Labels)
	}
	if eps := m.serviceMonitor.Spec.Endpoints; len(eps) != 1 || eps[0].Port != m.service.Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor endpoints = %+v, want the Service's port %q", eps, m.service.Spec.Ports[0].Name)
	}
	alerts, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(alerts), `job="`+m.service.Name+`"`) {
		t.Errorf("the alert rules do not select job=%q, the job the ServiceMonitor gives the Service's series", m.service.Name)
	}

	// The configuration, with the Secret's keys as its credential files.
	cfg := m.config.Data["psa-syncd.yml"]
	credDir := mounts["credentials"].MountPath + "/"
	used := regexp.MustCompile(`_file: `+regexp.QuoteMeta(credDir)+`([a-z-]+)`).FindAllStringSubmatch(cfg, -1)
	var keys []string
	for k := range m.secret.StringData {
		keys = append(keys, k)
	}
	var files []string
	for _, u := range used {
		files = append(files, u[1])
	}
	slices.Sort(keys)
	slices.Sort(files)
	if len(files) == 0 || !slices.Equal(keys, files) {
		t.Errorf("the Secret's keys %v are not the credential files the configuration reads %v", keys, files)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "credentials"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := os.WriteFile(filepath.Join(dir, "credentials", k), []byte(m.secret.StringData[k]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	local := strings.ReplaceAll(cfg, credDir, filepath.Join(dir, "credentials")+"/")
	if err := os.WriteFile(filepath.Join(dir, "psa-syncd.yml"), []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := daemon.Load(filepath.Join(dir, "psa-syncd.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatalf("the ConfigMap's psa-syncd.yml: %v", err)
	}
	if loaded.StateDir != mounts["state"].MountPath {
		t.Errorf("state_dir = %s, want the state volume's %s", loaded.StateDir, mounts["state"].MountPath)
	}
	if filepath.Dir(loaded.ExportPath) != mounts["export"].MountPath {
		t.Errorf("export_path = %s, want a file in the export volume %s", loaded.ExportPath, mounts["export"].MountPath)
	}
}

// ruleManifest renders prometheusrule.yaml: a PrometheusRule whose spec is
// alerts.yml's groups, with their comments.
func ruleManifest(alerts []byte) []byte {
	_, groups, _ := strings.Cut(string(alerts), "\ngroups:\n")
	var b strings.Builder
	b.WriteString(`# Generated from examples/prometheus/alerts.yml by
#   go test ./examples/deploy/kubernetes -run TestPrometheusRule -update
# Do not edit: change alerts.yml (and its promtool tests), then regenerate.
# The rules select job="psa-syncd", the job the ServiceMonitor gives the
# series of the Service psa-syncd.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: psa-syncd
  labels:
    app.kubernetes.io/name: psa-syncd
spec:
  groups:
`)
	for _, line := range strings.SplitAfter(groups, "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString("  ")
		}
		b.WriteString(line)
	}
	return []byte(b.String())
}

// TestPrometheusRule checks that prometheusrule.yaml carries exactly the
// rules of alerts.yml (decoded into the operator's types), and that it is
// what ruleManifest renders; -update rewrites it.
func TestPrometheusRule(t *testing.T) {
	alerts, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	want := ruleManifest(alerts)
	if *update {
		if err := os.WriteFile(ruleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var fromAlerts struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := unmarshalStrict(alerts, &fromAlerts); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	if len(fromAlerts.Groups) == 0 || len(fromAlerts.Groups[0].Rules) == 0 {
		t.Fatalf("%s has no rules", alertsFile)
	}
	m := load(t)
	if !reflect.DeepEqual(m.rule.Spec.Groups, fromAlerts.Groups) {
		t.Errorf("%s's groups differ from %s: run go test ./examples/deploy/kubernetes -run TestPrometheusRule -update", ruleFile, alertsFile)
	}
	got, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is stale: run go test ./examples/deploy/kubernetes -run TestPrometheusRule -update", ruleFile)
	}
}

// TestHAManifests_fitTogether checks the two-replica example
// (../kubernetes-ha) as TestManifests_fitTogether checks this directory:
// its Deployment and Service decode strictly, the container's arguments
// follow the image's entrypoint (`psa-syncd run`) as flags, every volume
// the container mounts is one the pod defines, the grace period outlasts
// the shutdown timeout, the Service keeps a client on one pod (status page
// sessions), and no volume is a claim the
// example does not create (the replicas share the export through the
// database, export_url: self).
func TestHAManifests_fitTogether(t *testing.T) {
	const file = "../kubernetes-ha/psa-syncd.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%s holds %d documents, want the Deployment and the Service", file, len(docs))
	}
	var deploy appsv1.Deployment
	var svc corev1.Service
	for i, obj := range []any{&deploy, &svc} {
		if err := unmarshalStrict([]byte(docs[i]), obj); err != nil {
			t.Fatalf("%s, document %d: %v", file, i+1, err)
		}
	}
	if deploy.Spec.Replicas == nil || *deploy.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", deploy.Spec.Replicas)
	}
	pod := deploy.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	checkGracePeriod(t, file, pod)
	if len(c.Args) == 0 || !strings.HasPrefix(c.Args[0], "-") || len(c.Command) != 0 {
		t.Errorf("command %q, args %q: the image runs `psa-syncd run` itself, so the args must be its flags", c.Command, c.Args)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
		if v.PersistentVolumeClaim != nil {
			t.Errorf("volume %s claims %s, which the example does not create", v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	for _, vm := range c.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("the container mounts volume %s, which the pod does not define", vm.Name)
		}
	}
	if !reflect.DeepEqual(svc.Spec.Selector, deploy.Spec.Template.Labels) {
		t.Errorf("service selector %v does not match the pod labels %v", svc.Spec.Selector, deploy.Spec.Template.Labels)
	}
	// Status page sessions live in one pod's memory.
	if svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		t.Errorf("service sessionAffinity = %q, want ClientIP: a status page sign-in is known only to the pod that took it", svc.Spec.SessionAffinity)
	}
}

// shutdownMargin is the least time a pod's termination grace period must
// leave after psa-syncd's shutdown timeout: after the timeout the pass is
// stopped, records how it ended and the state database is closed, which a
// SIGKILL at the same moment would cut short.
const shutdownMargin = 10 * time.Second

// checkGracePeriod checks that Kubernetes waits for psa-syncd's graceful
// shutdown (-web.shutdown-timeout, the default unless the container sets
// it) before it sends SIGKILL: the default grace period, 30 s, is the
// default shutdown timeout, so a running pass would be killed right when
// psa-syncd would stop it cleanly.
func checkGracePeriod(t *testing.T, file string, pod corev1.PodSpec) {
	t.Helper()
	shutdown := daemon.DefaultShutdownTimeout
	for _, c := range pod.Containers {
		for i, a := range c.Args {
			name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if name != "web.shutdown-timeout" {
				continue
			}
			if !hasValue && i+1 < len(c.Args) {
				v = c.Args[i+1]
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s: %s: %v", file, a, err)
			}
			shutdown = d
		}
	}
	grace := 30 * time.Second // Kubernetes' default
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	if grace < shutdown+shutdownMargin {
		t.Errorf("%s: terminationGracePeriodSeconds is %s, want at least the shutdown timeout %s plus %s, so that a running pass is not killed before psa-syncd stops it",
			file, grace, shutdown, shutdownMargin)
	}
}
