// Package kubernetes holds the tests of the Kubernetes manifests in this
// directory; it has no code of its own.
package kubernetes

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
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
	deployment     appsv1.Deployment
	claim          corev1.PersistentVolumeClaim
	service        corev1.Service
	serviceMonitor monitoringv1.ServiceMonitor
	rule           monitoringv1.PrometheusRule
}

func load(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{}
	decode(t, "secret.yaml", "v1", "Secret", &m.secret)
	decode(t, "configmap.yaml", "v1", "ConfigMap", &m.config)
	decode(t, "deployment.yaml", "apps/v1", "Deployment", &m.deployment)
	decode(t, "persistentvolumeclaim.yaml", "v1", "PersistentVolumeClaim", &m.claim)
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
	want := []string{"configmap.yaml", "deployment.yaml", "persistentvolumeclaim.yaml", "prometheusrule.yaml", "secret.yaml", "service.yaml", "servicemonitor.yaml"}
	if !slices.Equal(files, want) {
		t.Errorf("manifests = %v, want %v (add a new one to load)", files, want)
	}
}

// TestManifests_fitTogether checks what a cluster would only show at run
// time: the Deployment runs one non-root replica of the image's user with
// its state on the claimed volume, the Service and ServiceMonitor find it,
// and the configuration loads with the Secret's files where it expects them.
func TestManifests_fitTogether(t *testing.T) {
	m := load(t)
	dep := m.deployment.Spec
	pod := dep.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	checkGracePeriod(t, "deployment.yaml", pod)
	checkPod(t, "deployment.yaml", pod)
	if !reflect.DeepEqual(dep.Selector.MatchLabels, dep.Template.Labels) {
		t.Errorf("selector %v does not match the pod labels %v", dep.Selector.MatchLabels, dep.Template.Labels)
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	if v := volumes["state"]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != m.claim.Name ||
		mounts["state"].MountPath != "/var/lib/psa-syncd" {
		t.Errorf("the state volume %+v is not the claim %s mounted at /var/lib/psa-syncd (mounts %v)", v, m.claim.Name, mounts)
	}
	if v := volumes["credentials"]; v.Secret == nil || v.Secret.SecretName != m.secret.Name {
		t.Errorf("credentials volume = %+v, want the Secret %s", v, m.secret.Name)
	}
	if v := volumes["config"]; v.ConfigMap == nil || v.ConfigMap.Name != m.config.Name {
		t.Errorf("config volume = %+v, want the ConfigMap %s", v, m.config.Name)
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.Name != "config" {
			t.Errorf("volume %s is the ConfigMap %s: the mapping export does not belong in a ConfigMap (a fresh CI runner cannot read it back, kubectl apply is last-writer-wins, and it is limited to 1 MiB)", v.Name, v.ConfigMap.Name)
		}
	}
	checkConfigMount(t, "deployment.yaml", c, mounts)

	// The Service reaches the container's port, and the ServiceMonitor the
	// Service; the Service's name becomes the job label the alerts use.
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 9810 {
		t.Errorf("container ports = %+v, want http 9810", c.Ports)
	}
	if len(m.service.Spec.Ports) != 1 || m.service.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("service ports = %+v, want one targeting http", m.service.Spec.Ports)
	}
	if !reflect.DeepEqual(m.service.Spec.Selector, dep.Template.Labels) {
		t.Errorf("service selector %v does not match the pod labels %v", m.service.Spec.Selector, dep.Template.Labels)
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
	writeCredentials := func(value func(k string) string) {
		for _, k := range keys {
			if err := os.WriteFile(filepath.Join(dir, "credentials", k), []byte(value(k)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	local := strings.ReplaceAll(cfg, credDir, filepath.Join(dir, "credentials")+"/")
	if err := os.WriteFile(filepath.Join(dir, "psa-syncd.yml"), []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	// The Secret as it is, applied unedited or over one created from
	// files (kubectl apply of the directory): psa-syncd refuses to start
	// rather than take its placeholder as the API token.
	for _, k := range keys {
		if v := m.secret.StringData[k]; v != placeholder {
			t.Errorf("secret.yaml's %s is %q, want the placeholder %s, which psa-syncd refuses", k, v, placeholder)
		}
	}
	writeCredentials(func(k string) string { return m.secret.StringData[k] })
	if _, err := daemon.Load(filepath.Join(dir, "psa-syncd.yml"), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "the placeholder of the examples' Secret") {
		t.Errorf("the ConfigMap's psa-syncd.yml with secret.yaml's placeholders: %v, want them refused", err)
	}
	writeCredentials(operatorCredential)
	loaded, err := daemon.Load(filepath.Join(dir, "psa-syncd.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatalf("the ConfigMap's psa-syncd.yml: %v", err)
	}
	if loaded.StateDir != mounts["state"].MountPath {
		t.Errorf("state_dir = %s, want the state volume's %s", loaded.StateDir, mounts["state"].MountPath)
	}
	// The export lives where both a throw-away CI runner and psa-syncd
	// reach it (docs/guides/ci-workflow.md), never in a file of the pod.
	if store := loaded.ExportStore(); store != daemon.StoreSelf && store != daemon.StoreS3 {
		t.Errorf("the configuration reads the mapping export from %s (%s), want a store the CI runner can write: export_url self or s3://", loaded.ExportName(), store)
	}
	if loaded.ExportStore() == daemon.StoreSelf && !slices.Contains(keys, "api-token") {
		t.Error("with export_url: self the provider writes with the API token as export_token, but the Secret has no api-token")
	}
	checkStartupProbe(t, "deployment.yaml", c, loaded.State.CheckTimeout)
}

// placeholder is the value of every key of secret.yaml, which psa-syncd
// refuses as a credential.
const placeholder = "CHANGE-ME"

// operatorCredential is the value an operator puts in the Secret's key k in
// place of the placeholder.
func operatorCredential(k string) string {
	return "operator-set-" + k
}

// TestManifests_singleInstance checks what keeps the example at one
// psa-syncd: a second daemon with its own state database would sync the
// same PSA tenant and write every change again (double billing), and
// psa-syncd's lock only covers one database file. So the state is one named
// claim that a single pod may mount (ReadWriteOncePod; a StatefulSet's
// volumeClaimTemplates would give a second replica a new, empty database),
// the Deployment has one replica, and an update stops the old pod before it
// starts the new one (Recreate; a rolling update's surge pod could not
// mount the claim, or, with ReadWriteOnce on one node, would be a second
// daemon until the lock refused it).
func TestManifests_singleInstance(t *testing.T) {
	m := load(t)
	d := m.deployment.Spec
	if d.Replicas == nil || *d.Replicas != 1 {
		t.Errorf("replicas = %s, want 1: two daemons of one PSA tenant double-bill", replicas(d.Replicas))
	}
	if d.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy = %q, want Recreate: a rolling update starts the new pod while the old one runs", d.Strategy.Type)
	}
	if !slices.Equal(m.claim.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}) {
		t.Errorf("the state claim's accessModes = %v, want [ReadWriteOncePod]: no second pod may mount the state database", m.claim.Spec.AccessModes)
	}
	claims := 0
	for _, v := range d.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claims++
		}
	}
	if claims != 1 {
		t.Errorf("the pod has %d claimed volumes, want 1, the state claim", claims)
	}
}

// replicas formats a Deployment's replicas for a message.
func replicas(n *int32) string {
	if n == nil {
		return "unset (1)"
	}
	return strconv.Itoa(int(*n))
}

// checkStartupProbe checks that the container has a startup probe (an
// HTTP GET of /-/healthy or a TCP connection: psa-syncd listens once
// started) that gives psa-syncd longer than checkTimeout
// (state.check_timeout, its default when 0) to open its listener: psa-syncd opens the state database,
// with SQLite's integrity check and any migration, before it listens, and
// liveness alone (three failures 30 s apart) would kill it in the middle,
// again at every start.
func checkStartupProbe(t *testing.T, file string, c corev1.Container, checkTimeout time.Duration) {
	t.Helper()
	if checkTimeout == 0 {
		checkTimeout = state.DefaultCheckTimeout
	}
	p := c.StartupProbe
	httpGet := p != nil && p.HTTPGet != nil && p.HTTPGet.Path == "/-/healthy" && p.HTTPGet.Port == intstr.FromString("http")
	tcp := p != nil && p.TCPSocket != nil && p.TCPSocket.Port == intstr.FromString("http")
	if !httpGet && !tcp {
		t.Errorf("%s: startupProbe = %+v, want an HTTP GET of /-/healthy, or a TCP connection, on the port http", file, p)
		return
	}
	period, failures := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10 // Kubernetes' defaults
	}
	if failures == 0 {
		failures = 3
	}
	if budget := time.Duration(p.InitialDelaySeconds+period*failures) * time.Second; budget <= checkTimeout {
		t.Errorf("%s: the startup probe gives psa-syncd %s to start, want more than state.check_timeout %s", file, budget, checkTimeout)
	}
	if c.LivenessProbe == nil {
		t.Errorf("%s: no livenessProbe", file)
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

// haManifests are the decoded manifests of the two-replica example's
// psa-syncd.yaml.
type haManifests struct {
	sts   appsv1.StatefulSet
	svc   corev1.Service // the Service clients and the ServiceMonitor use
	peers corev1.Service // the StatefulSet's headless Service
	pdb   policyv1.PodDisruptionBudget
}

const haFile = "../kubernetes-ha/psa-syncd.yaml"

// loadHA decodes ../kubernetes-ha/psa-syncd.yaml strictly.
func loadHA(t *testing.T) *haManifests {
	t.Helper()
	data, err := os.ReadFile(haFile)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	if len(docs) != 4 {
		t.Fatalf("%s holds %d documents, want the StatefulSet, the Service, the headless Service and the PodDisruptionBudget", haFile, len(docs))
	}
	m := &haManifests{}
	for i, obj := range []any{&m.sts, &m.svc, &m.peers, &m.pdb} {
		if err := unmarshalStrict([]byte(docs[i]), obj); err != nil {
			t.Fatalf("%s, document %d: %v", haFile, i+1, err)
		}
	}
	return m
}

// TestHAManifests_fitTogether checks the two-replica example
// (../kubernetes-ha) as TestManifests_fitTogether checks this directory:
// its StatefulSet and Services decode strictly, the container's arguments
// follow the image's entrypoint (`psa-syncd run`) as flags, every volume
// the container mounts is one the pod defines, the grace period outlasts
// the shutdown timeout, the Service keeps a client on one pod (status page
// sessions), and no volume is a claim the
// example does not create (the replicas share the export through the
// database, export_url: self). Each pod advertises its name under the
// headless Service, which resolves it (checkHAConfig).
func TestHAManifests_fitTogether(t *testing.T) {
	m := loadHA(t)
	sts, svc, pdb := m.sts, m.svc, m.pdb
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 2 {
		t.Errorf("replicas = %s, want 2", replicas(sts.Spec.Replicas))
	}
	if len(sts.Spec.VolumeClaimTemplates) != 0 {
		t.Errorf("the StatefulSet claims volumes %v: the state is in PostgreSQL, shared by both replicas", sts.Spec.VolumeClaimTemplates)
	}
	pod := sts.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	checkGracePeriod(t, haFile, pod)
	checkPod(t, haFile, pod)
	// The image make container-image builds, as the single instance
	// example names it, at a version: with latest, a pod restarted after
	// a push runs another psa-syncd than the other pod, and nothing rolls.
	if single := load(t).deployment.Spec.Template.Spec.Containers[0].Image; c.Image != single ||
		!regexp.MustCompile(`:[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(c.Image) {
		t.Errorf("image %q; want the single instance example's %q, a version tag", c.Image, single)
	}
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
	if !reflect.DeepEqual(svc.Spec.Selector, sts.Spec.Template.Labels) {
		t.Errorf("service selector %v does not match the pod labels %v", svc.Spec.Selector, sts.Spec.Template.Labels)
	}
	// Status page sessions live in one pod's memory.
	if svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		t.Errorf("service sessionAffinity = %q, want ClientIP: a status page sign-in is known only to the pod that took it", svc.Spec.SessionAffinity)
	}
	// The headless Service gives each pod its DNS name: the StatefulSet's
	// serviceName, selecting its pods, whether Ready or not (a standby
	// forwards to the active pod whatever its readiness), on the port
	// psa-syncd listens on.
	peers := m.peers
	if sts.Spec.ServiceName != peers.Name || peers.Spec.ClusterIP != corev1.ClusterIPNone ||
		!reflect.DeepEqual(peers.Spec.Selector, sts.Spec.Template.Labels) || !peers.Spec.PublishNotReadyAddresses {
		t.Errorf("StatefulSet serviceName %q, headless Service %s: clusterIP %q, selector %v, publishNotReadyAddresses %t; "+
			"want the StatefulSet's serviceName a headless Service (clusterIP: None) that selects its pods %v and publishes them not Ready too",
			sts.Spec.ServiceName, peers.Name, peers.Spec.ClusterIP, peers.Spec.Selector, peers.Spec.PublishNotReadyAddresses, sts.Spec.Template.Labels)
	}
	if len(peers.Spec.Ports) != 1 || peers.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("headless Service ports %+v, want the container's port http", peers.Spec.Ports)
	}
	// A rolling update replaces one pod at a time, each once the one
	// replaced before is Ready.
	if u := sts.Spec.UpdateStrategy; u.Type != "" && u.Type != appsv1.RollingUpdateStatefulSetStrategyType || u.RollingUpdate != nil {
		t.Errorf("updateStrategy %+v, want RollingUpdate, one pod at a time", u)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm
	}
	checkConfigMount(t, haFile, c, mounts)
	cfg := checkHAConfig(t, m, volumes)
	checkStartupProbe(t, haFile, c, cfg.State.CheckTimeout)
	// A drain (a node pool upgrade drains several nodes at once) evicts
	// one replica at a time: the other stays to be, or become, active.
	if pdb.Spec.Selector == nil || !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, sts.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pod labels %v", pdb.Spec.Selector, sts.Spec.Template.Labels)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget maxUnavailable = %v, minAvailable = %v; want maxUnavailable 1: an eviction leaves a replica to take over", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
}

// TestHAManifests_postgresPasswordFromFile: the try-it PostgreSQL took its
// password from the Secret as an environment variable, which every process
// started in the container (kubectl exec ... psql) inherits; the image reads
// it from POSTGRES_PASSWORD_FILE, a file of the Secret mounted read-only.
func TestHAManifests_postgresPasswordFromFile(t *testing.T) {
	const file = "../kubernetes-ha/postgres.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var sts appsv1.StatefulSet
	if err := unmarshalStrict([]byte(strings.Split(string(data), "\n---\n")[0]), &sts); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	pod := sts.Spec.Template.Spec
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, c := range pod.Containers {
		passwordFile := ""
		for _, ev := range c.Env {
			if ev.ValueFrom != nil && ev.ValueFrom.SecretKeyRef != nil {
				t.Errorf("%s: container %s: %s comes from the Secret %s; mount it as a file (POSTGRES_PASSWORD_FILE)", file, c.Name, ev.Name, ev.ValueFrom.SecretKeyRef.Name)
			}
			if ev.Name == "POSTGRES_PASSWORD" {
				t.Errorf("%s: container %s sets POSTGRES_PASSWORD; use POSTGRES_PASSWORD_FILE", file, c.Name)
			}
			if ev.Name == "POSTGRES_PASSWORD_FILE" {
				passwordFile = ev.Value
			}
		}
		found := false
		for _, vm := range c.VolumeMounts {
			v, ok := volumes[vm.Name]
			if !ok || v.Secret == nil || v.Secret.SecretName != "psa-syncd-state" || !vm.ReadOnly {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Key == "password" && path.Join(vm.MountPath, it.Path) == passwordFile {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s: container %s: POSTGRES_PASSWORD_FILE %q is not the key password of the Secret psa-syncd-state mounted read-only", file, c.Name, passwordFile)
		}
	}
}

// TestHAManifests_scrapedAsJob checks that the two-replica example is
// scraped with job="psa-syncd", the job every alert rule selects
// (PsaSyncNoActiveInstance, the one that matters most with standbys, sums
// psa_sync_leader over it): kustomization.yaml includes a ServiceMonitor of
// the Service psa-syncd, and the pods carry no prometheus.io annotations,
// whose discovery names the job after its scrape config instead.
func TestHAManifests_scrapedAsJob(t *testing.T) {
	const dir = "../kubernetes-ha/"
	var k struct {
		Resources []string `json:"resources"`
	}
	data, err := os.ReadFile(dir + "kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(k.Resources, "servicemonitor.yaml") {
		t.Errorf("kustomization.yaml resources = %v, want servicemonitor.yaml", k.Resources)
	}
	var sm monitoringv1.ServiceMonitor
	decode(t, dir+"servicemonitor.yaml", "monitoring.coreos.com/v1", "ServiceMonitor", &sm)

	ha := loadHA(t)
	deploy, svc := ha.sts, ha.svc
	if svc.Name != "psa-syncd" {
		t.Errorf("the Service is %s: the ServiceMonitor names the job after it, and the alerts select job=\"psa-syncd\"", svc.Name)
	}
	if !reflect.DeepEqual(sm.Spec.Selector.MatchLabels, svc.Labels) {
		t.Errorf("ServiceMonitor selector %v does not match the Service's labels %v", sm.Spec.Selector.MatchLabels, svc.Labels)
	}
	// Not the headless Service too: its endpoints are the same pods,
	// which would be scraped twice, the second time as job="psa-syncd-peers".
	if sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector); err != nil || sel.Matches(labels.Set(ha.peers.Labels)) {
		t.Errorf("ServiceMonitor selector %v matches the headless Service %s too (labels %v, %v): the pods would be scraped twice", sm.Spec.Selector, ha.peers.Name, ha.peers.Labels, err)
	}
	if eps := sm.Spec.Endpoints; len(eps) != 1 || eps[0].Port != svc.Spec.Ports[0].Name || eps[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints = %+v, want /metrics on the Service's port %q", eps, svc.Spec.Ports[0].Name)
	}
	// With TLS, its commented lines scrape over HTTPS: as the Operator
	// reads them, checking the pods' certificate under a name
	// certificate.yaml's holds, with the CA and client certificate of the
	// Secret the Certificate fills.
	smData, err := os.ReadFile(dir + "servicemonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	uncommented := regexp.MustCompile(`(?m)^      # ((?:scheme|tlsConfig|  [a-zA-Z]+):.*)$`).ReplaceAll(smData, []byte("      $1"))
	var tlsSM monitoringv1.ServiceMonitor
	if err := unmarshalStrict(uncommented, &tlsSM); err != nil {
		t.Fatalf("servicemonitor.yaml with its TLS lines: %v", err)
	}
	cert := haCertificate(t, haBuild(t, haNamespace(t)))
	if eps := tlsSM.Spec.Endpoints; len(eps) != 1 || eps[0].Scheme.String() != "https" || eps[0].TLSConfig == nil || eps[0].TLSConfig.ServerName == nil {
		t.Errorf("servicemonitor.yaml with its TLS lines: endpoints %+v, want one scraped over HTTPS with a serverName", eps)
	} else {
		tc := eps[0].TLSConfig
		if err := (&x509.Certificate{DNSNames: cert.Spec.DNSNames}).VerifyHostname(*tc.ServerName); err != nil {
			t.Errorf("servicemonitor.yaml's serverName %q: %v", *tc.ServerName, err)
		}
		for what, sel := range map[string]*corev1.SecretKeySelector{"ca": tc.CA.Secret, "cert": tc.Cert.Secret, "keySecret": tc.KeySecret} {
			if sel == nil || sel.Name != cert.Spec.SecretName || !slices.Contains([]string{"ca.crt", "tls.crt", "tls.key"}, sel.Key) {
				t.Errorf("servicemonitor.yaml's tlsConfig.%s = %+v, want a key of the Certificate's Secret %s", what, sel, cert.Spec.SecretName)
			}
		}
	}
	for a := range deploy.Spec.Template.Annotations {
		if strings.HasPrefix(a, "prometheus.io/") {
			t.Errorf("pod annotation %s: annotation-based scraping gives the series another job than psa-syncd, and scrapes them twice beside the ServiceMonitor", a)
		}
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
	if grace < shutdown+usage.SentWriteGrace+shutdownMargin {
		t.Errorf("%s: terminationGracePeriodSeconds is %s, want at least the shutdown timeout %s plus the %s a Kaseya BMS post already sent is given plus %s, "+
			"so that a running pass is not killed before psa-syncd stops it",
			file, grace, shutdown, usage.SentWriteGrace, shutdownMargin)
	}
}

// peakRSS is the most memory a pass takes, resident: README's Performance
// measures under 100 MiB at 100,000 contract lines.
const peakRSS = 100 << 20

// checkPod checks what every psa-syncd pod of the examples needs: it runs
// as the image's non-root user and group with its files' group, under the
// runtime's seccomp profile, without a service account token (psa-syncd
// never calls the Kubernetes API), with a read-only root, no privilege
// escalation and no capabilities; its memory request covers a pass's peak
// (below it, node memory pressure evicts the pod first, mid-pass) and its
// limit leaves room above it (at the limit the pass is OOM-killed); and no
// secret is an environment variable, which every process started in the
// container inherits (each `kubectl exec`) and /proc/1/environ shows:
// secrets are files read through the *_file settings.
func checkPod(t *testing.T, file string, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		psc.RunAsUser == nil || *psc.RunAsUser != imageUID || psc.RunAsGroup == nil || *psc.RunAsGroup != imageUID ||
		psc.FSGroup == nil || *psc.FSGroup != imageUID ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext = %+v, want runAsNonRoot as user and group %d, fsGroup %d and the RuntimeDefault seccomp profile", file, psc, imageUID, imageUID)
	}
	if a := pod.AutomountServiceAccountToken; a == nil || *a {
		t.Errorf("%s: automountServiceAccountToken is not false: psa-syncd never calls the Kubernetes API, and the token would be one more secret in the pod", file)
	}
	for _, c := range pod.Containers {
		csc := c.SecurityContext
		if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
			csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
			csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: container %s: securityContext = %+v, want a read-only root, no privilege escalation, all capabilities dropped", file, c.Name, csc)
		}
		req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
		if req.Value() < peakRSS {
			t.Errorf("%s: container %s requests %s of memory, want at least %d MiB, a pass's peak (README: Performance): below it, node memory pressure evicts the pod first, in the middle of a pass", file, c.Name, req.String(), peakRSS>>20)
		}
		if lim.Value() < 2*peakRSS {
			t.Errorf("%s: container %s has a memory limit of %s, want at least %d MiB, twice a pass's peak: at the limit the pass is OOM-killed", file, c.Name, lim.String(), 2*peakRSS>>20)
		}
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil {
				t.Errorf("%s: container %s takes the Secret %s as environment variables; mount it as files and read them with *_file settings", file, c.Name, ef.SecretRef.Name)
			}
		}
		for _, ev := range c.Env {
			if ev.ValueFrom != nil && ev.ValueFrom.SecretKeyRef != nil {
				t.Errorf("%s: container %s: %s comes from the Secret %s; mount it as a file and read it with a *_file setting", file, c.Name, ev.Name, ev.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
}

// checkHAConfig loads the two-replica example's configuration as its pods
// would: every *_file setting names a file of the credentials volume (the
// keys of the Secrets that ../kubernetes-ha/README.md has the operator
// create, and the state Secret's url), and the configuration loads with
// those files and the pod's environment (no secret in it).
// checkConfigMount checks that the container c of the manifest file reads
// its -config.file from the ConfigMap mounted as a directory. A ConfigMap
// mounted with subPath is never updated, so POST /-/reload would re-read
// the old file and report success; mounted as a directory, the kubelet
// swaps the file in.
func checkConfigMount(t *testing.T, file string, c corev1.Container, mounts map[string]corev1.VolumeMount) {
	t.Helper()
	configFile := ""
	for _, a := range c.Args {
		if f, ok := strings.CutPrefix(a, "-config.file="); ok {
			configFile = f
		}
	}
	if vm := mounts["config"]; vm.SubPath != "" || vm.SubPathExpr != "" || configFile != vm.MountPath+"/psa-syncd.yml" {
		t.Errorf("%s: config mount %+v with -config.file=%s: want the ConfigMap mounted as a directory, without subPath, and -config.file in it, so that a changed ConfigMap reaches the file a reload reads", file, vm, configFile)
	}
}

func checkHAConfig(t *testing.T, m *haManifests, volumes map[string]corev1.Volume) *daemon.Config {
	t.Helper()
	const dir = "../kubernetes-ha/"
	c := m.sts.Spec.Template.Spec.Containers[0]
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm
	}
	cred, ok := mounts["credentials"]
	v := volumes["credentials"]
	if !ok || !cred.ReadOnly || v.Projected == nil {
		t.Fatalf("the container mounts no read-only credentials volume of the Secrets (mounts %+v, volume %+v)", c.VolumeMounts, v)
	}
	readme, err := os.ReadFile(dir + "README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The keys of the Secrets the README creates, as the volume names
	// their files.
	files := map[string]bool{}
	for _, src := range v.Projected.Sources {
		if src.Secret == nil {
			continue
		}
		if len(src.Secret.Items) > 0 {
			for _, it := range src.Secret.Items {
				files[it.Path] = true
			}
			continue
		}
		cmd := regexp.MustCompile(`create secret generic ` + regexp.QuoteMeta(src.Secret.Name) + `((?:\\\n|[^\n])*)`).FindSubmatch(readme)
		if cmd == nil {
			t.Fatalf("README.md does not create the Secret %s", src.Secret.Name)
		}
		for _, m := range regexp.MustCompile(`--from-(?:file|literal)=([a-z-]+)`).FindAllSubmatch(cmd[1], -1) {
			files[string(m[1])] = true
		}
	}
	cfgData, err := os.ReadFile(dir + "psa-syncd.yml")
	if err != nil {
		t.Fatal(err)
	}
	credDir := cred.MountPath + "/"
	var used []string
	for _, m := range regexp.MustCompile(`_file: `+regexp.QuoteMeta(credDir)+`([a-z-]+)`).FindAllSubmatch(cfgData, -1) {
		used = append(used, string(m[1]))
	}
	var have []string
	for f := range files {
		have = append(have, f)
	}
	slices.Sort(used)
	slices.Sort(have)
	if len(used) == 0 || !slices.Equal(used, have) {
		t.Errorf("the credentials volume holds %v, but psa-syncd.yml reads %v", have, used)
	}
	tmp := t.TempDir()
	for _, f := range have {
		val := "placeholder"
		if f == "state-url" {
			val = "postgres://psa_syncd:pw@postgres:5432/psa_syncd?sslmode=disable"
		}
		if err := os.WriteFile(filepath.Join(tmp, f), []byte(val), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	local := strings.ReplaceAll(string(cfgData), credDir, tmp+"/")
	if err := os.WriteFile(filepath.Join(tmp, "psa-syncd.yml"), []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each pod of the StatefulSet, in the namespace kustomization.yaml
	// puts it in: it advertises its name under the headless Service, at
	// the listener's port, with TLS (tls_server_config) too.
	ns := haNamespace(t)
	var cfg *daemon.Config
	for i := range int(*m.sts.Spec.Replicas) {
		podName := fmt.Sprintf("%s-%d", m.sts.Name, i)
		host := podName + "." + m.sts.Spec.ServiceName + "." + ns + ".svc"
		want := "http://" + host + ":9810"
		env := podEnv(t, c, map[string]string{"metadata.name": podName, "metadata.namespace": ns, "status.podIP": "10.42.0.7"})
		var err error
		cfg, err = daemon.Load(filepath.Join(tmp, "psa-syncd.yml"), func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("psa-syncd.yml with the pod %s's files and environment: %v", podName, err)
		}
		if cfg.State.Driver != state.DriverPostgres || !strings.HasPrefix(string(cfg.State.URL), "postgres://") || cfg.AdvertisedURL(false) != want ||
			cfg.AdvertisedURL(true) != strings.Replace(want, "http:", "https:", 1) {
			t.Errorf("state = %+v, advertised at %q (with TLS %q); want postgres from the state-url file, advertised at the pod's name under the headless Service, %s",
				cfg.State, cfg.AdvertisedURL(false), cfg.AdvertisedURL(true), want)
		}
		checkHACertificate(t, m, volumes, cfgData, host)
	}
	return cfg
}

// haNamespace is the namespace kustomization.yaml puts the two-replica
// example in.
func haNamespace(t *testing.T) string {
	t.Helper()
	var k struct {
		Namespace string `json:"namespace"`
	}
	data, err := os.ReadFile("../kubernetes-ha/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil || k.Namespace == "" {
		t.Fatalf("kustomization.yaml: namespace %q, %v", k.Namespace, err)
	}
	return k.Namespace
}

// haBuild builds the two-replica example as `kubectl apply -k` does
// (kustomize), with the namespace ns instead of kustomization.yaml's and
// with certificate.yaml among its resources (as README.md says to add it
// with TLS), and returns its objects, each as YAML, by kind and name
// ("Certificate/psa-syncd-tls").
func haBuild(t *testing.T, ns string) map[string][]byte {
	t.Helper()
	const dir = "../kubernetes-ha"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs := filesys.MakeFsInMemory()
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "kustomization.yaml" {
			k := string(data)
			for _, r := range []struct{ old, new string }{
				{"\nnamespace: " + haNamespace(t) + "\n", "\nnamespace: " + ns + "\n"},
				{"\n  # - certificate.yaml\n", "\n  - certificate.yaml\n"},
			} {
				if !strings.Contains(k, r.old) {
					t.Fatalf("%s/kustomization.yaml has no %q", dir, r.old)
				}
				k = strings.Replace(k, r.old, r.new, 1)
			}
			data = []byte(k)
		}
		if err := fs.WriteFile(filepath.Join("/ha", e.Name()), data); err != nil {
			t.Fatal(err)
		}
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/ha")
	if err != nil {
		t.Fatalf("kustomize build %s with namespace %s and certificate.yaml: %v", dir, ns, err)
	}
	objs := map[string][]byte{}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		objs[r.GetKind()+"/"+r.GetName()] = y
	}
	return objs
}

// podEnv is the environment Kubernetes gives the container c of a pod
// whose fields (metadata.name, status.podIP, ...) are fields: a variable
// from a fieldRef gets the field, and $(NAME) in a value the variable
// defined before it, as the kubelet expands it.
func podEnv(t *testing.T, c corev1.Container, fields map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, ev := range c.Env {
		if ev.ValueFrom != nil {
			f := ev.ValueFrom.FieldRef
			if f == nil {
				t.Fatalf("container %s: %s is not from a field of the pod", c.Name, ev.Name)
			}
			v, ok := fields[f.FieldPath]
			if !ok {
				t.Fatalf("container %s: %s is from the field %s, which this test does not know", c.Name, ev.Name, f.FieldPath)
			}
			env[ev.Name] = v
			continue
		}
		env[ev.Name] = ref.ReplaceAllStringFunc(ev.Value, func(r string) string {
			name := ref.FindStringSubmatch(r)[1]
			v, ok := env[name]
			if !ok {
				t.Errorf("container %s: %s refers to %s, which no variable before it defines: Kubernetes leaves it as it is", c.Name, ev.Name, r)
				return r
			}
			return v
		})
	}
	return env
}

// certManagerCertificate is what this test reads of a cert-manager
// Certificate (cert-manager.io/v1); its other fields are not decoded.
type certManagerCertificate struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		SecretName string   `json:"secretName"`
		DNSNames   []string `json:"dnsNames"`
		Usages     []string `json:"usages"`
	} `json:"spec"`
}

// checkHACertificate checks that certificate.yaml's Certificate serves a
// pod advertising host with TLS: the standby checks that the active pod's
// certificate holds host (as crypto/x509 does, a wildcard covering one
// label), and presents the same certificate when the listener requires
// client certificates, so it is for both server and client
// authentication; its Secret is the one the pod mounts where psa-syncd.yml
// (cfgData, its commented TLS lines) reads the CA and the certificate.
func checkHACertificate(t *testing.T, m *haManifests, volumes map[string]corev1.Volume, cfgData []byte, host string) {
	t.Helper()
	const file = "../kubernetes-ha/certificate.yaml"
	// As kustomize builds it, in the namespace of kustomization.yaml.
	cert := haCertificate(t, haBuild(t, haNamespace(t)))
	leaf := &x509.Certificate{DNSNames: cert.Spec.DNSNames}
	if err := leaf.VerifyHostname(host); err != nil {
		t.Errorf("%s: a certificate for %v does not hold %s, the host the pod advertises: the standby would refuse it (%v)", file, cert.Spec.DNSNames, host, err)
	}
	for _, u := range []string{"server auth", "client auth"} {
		if !slices.Contains(cert.Spec.Usages, u) {
			t.Errorf("%s: usages %v, want %q: the listener serves it and the standby presents it", file, cert.Spec.Usages, u)
		}
	}
	v := volumes["tls"]
	if v.Secret == nil || v.Secret.SecretName != cert.Spec.SecretName || v.Secret.Optional == nil || !*v.Secret.Optional {
		t.Errorf("volume tls = %+v, want the Certificate's Secret %s, optional (without TLS there is none)", v, cert.Spec.SecretName)
	}
	var mount corev1.VolumeMount
	for _, vm := range m.sts.Spec.Template.Spec.Containers[0].VolumeMounts {
		if vm.Name == "tls" {
			mount = vm
		}
	}
	for _, setting := range []string{"advertise_ca_file", "advertise_client_cert_file", "advertise_client_key_file"} {
		f := regexp.MustCompile(`# ` + setting + `: (\S+)`).FindSubmatch(cfgData)
		if f == nil || mount.MountPath == "" || path.Dir(string(f[1])) != mount.MountPath || mount.SubPath != "" {
			t.Errorf("psa-syncd.yml's %s is %q; want a file of the tls volume's mount %+v", setting, f, mount)
		}
	}
}

// haCertificate is certificate.yaml's Certificate in objs, built by haBuild.
func haCertificate(t *testing.T, objs map[string][]byte) certManagerCertificate {
	t.Helper()
	data, ok := objs["Certificate/psa-syncd-tls"]
	if !ok {
		t.Fatalf("the built example holds no Certificate psa-syncd-tls; it holds %v", slices.Sorted(maps.Keys(objs)))
	}
	var cert certManagerCertificate
	if err := yaml.Unmarshal(data, &cert); err != nil {
		t.Fatalf("certificate.yaml: %v", err)
	}
	if cert.APIVersion != "cert-manager.io/v1" || cert.Kind != "Certificate" {
		t.Fatalf("certificate.yaml is %s %s, want a cert-manager.io/v1 Certificate", cert.APIVersion, cert.Kind)
	}
	return cert
}

// TestHAKustomization_namespace: an operator who puts the two-replica
// example in another namespace changes kustomization.yaml's namespace only.
// Built as kubectl apply -k builds it, every object is in that namespace
// (the Namespace object is that one), and the certificate holds the names
// of the pods and of the Service there: kustomization.yaml's replacements
// take them from the headless Service's namespace, so the standby does not
// refuse a certificate left at psa-sync.
func TestHAKustomization_namespace(t *testing.T) {
	// As it is, without certificate.yaml, it builds too: the
	// replacements select nothing.
	if _, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "../kubernetes-ha"); err != nil {
		t.Errorf("kustomize build ../kubernetes-ha: %v", err)
	}
	const ns = "billing-ops"
	objs := haBuild(t, ns)
	for id, data := range objs {
		var meta metav1.PartialObjectMetadata
		if err := yaml.Unmarshal(data, &meta); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if got := meta.Namespace; id != "Namespace/"+ns && got != ns {
			t.Errorf("%s is in namespace %q, want %q", id, got, ns)
		}
	}
	if _, ok := objs["Namespace/"+ns]; !ok {
		t.Errorf("no Namespace %s among %v", ns, slices.Sorted(maps.Keys(objs)))
	}
	m := loadHA(t)
	cert := haCertificate(t, objs)
	leaf := &x509.Certificate{DNSNames: cert.Spec.DNSNames}
	hosts := []string{m.svc.Name + "." + ns + ".svc"}
	for i := range int(*m.sts.Spec.Replicas) {
		hosts = append(hosts, fmt.Sprintf("%s-%d.%s.%s.svc", m.sts.Name, i, m.sts.Spec.ServiceName, ns))
	}
	for _, host := range hosts {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("in namespace %s, the certificate for %v does not hold %s: %v", ns, cert.Spec.DNSNames, host, err)
		}
	}
}

// TestDocs_haSecretCommands: the commands with which ../kubernetes-ha/README.md
// has the operator create the Secrets run as written: every shell variable
// they use is set by a line before it or on the same line (the database
// password was used unset, which gave the Secret an empty password), and
// every file given to --from-file is written before (only api-token was,
// so kubectl stopped at the first of the PSA's secrets).
func TestDocs_haSecretCommands(t *testing.T) {
	readme, err := os.ReadFile("../kubernetes-ha/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, b := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(b[1], "create secret generic") {
			block = b[1]
			break
		}
	}
	if block == "" {
		t.Fatal("README.md has no sh block creating the Secrets")
	}
	var (
		assign  = regexp.MustCompile(`(?:^|[;(]\s*)([A-Za-z_]\w*)=`)
		read    = regexp.MustCompile(`\bread -\w+ (?:'[^']*'|"[^"]*") (\w+)`)
		loop    = regexp.MustCompile(`\bfor (\w+) in ([^;]+);`)
		use     = regexp.MustCompile(`\$\{?([A-Za-z_]\w*)`)
		written = regexp.MustCompile(`> *"?(\$?[\w.-]+)"?`)
		given   = regexp.MustCompile(`--from-file=([\w.-]+)`)
	)
	set, files := map[string]bool{}, map[string]bool{}
	loopFiles := map[string][]string{} // a loop's words by its variable
	creates := 0
	for line := range strings.SplitSeq(regexp.MustCompile(`\\\n\s*`).ReplaceAllString(block, ""), "\n") {
		for _, m := range assign.FindAllStringSubmatch(line, -1) {
			set[m[1]] = true
		}
		for _, m := range read.FindAllStringSubmatch(line, -1) {
			set[m[1]] = true
		}
		for _, m := range loop.FindAllStringSubmatch(line, -1) {
			set[m[1]] = true
			loopFiles[m[1]] = strings.Fields(m[2])
		}
		for _, m := range use.FindAllStringSubmatch(line, -1) {
			if !set[m[1]] {
				t.Errorf("README.md: %q uses $%s, which no line before it sets", line, m[1])
			}
		}
		for _, m := range given.FindAllStringSubmatch(line, -1) {
			if !files[m[1]] {
				t.Errorf("README.md: %q gives --from-file=%s, which no line before it writes", line, m[1])
			}
		}
		for _, m := range written.FindAllStringSubmatch(line, -1) {
			if v, ok := strings.CutPrefix(m[1], "$"); ok {
				for _, f := range loopFiles[v] {
					files[f] = true
				}
			} else {
				files[m[1]] = true
			}
		}
		if strings.Contains(line, "create secret generic") {
			creates++
		}
	}
	if creates != 2 {
		t.Errorf("README.md's block creates %d Secrets, want 2 (psa-syncd-state and psa-syncd-psa)", creates)
	}
}

// TestDocs_kubectlExecCommands: every `kubectl exec` of a psa-syncd command
// in README.md, docs/ and examples/ (the alert rules' header among them)
// names a workload these examples create, in its namespace, runs the
// image's binary, and gives -web.token-file the file where that pod mounts
// the Secret's api-token. (The alert rules once sent the two-replica
// example's operators to deploy/psa-syncd with the token in an environment
// variable, after it had become a StatefulSet reading its Secrets as
// files.) A command at https:// gives -web.ca-file, -web.cert-file and
// -web.key-file the files where that pod mounts the certificate's Secret,
// and -web.server-name a name the certificate holds: its names are DNS
// names only, so https://127.0.0.1:9810 fails without it.
func TestDocs_kubectlExecCommands(t *testing.T) {
	const root = "../../.."
	m, ha := load(t), loadHA(t)
	// The image's binary (examples/deploy/container).
	const binary = "/usr/local/bin/psa-syncd"
	tokenFile := func(pod corev1.PodSpec) string {
		for _, vm := range pod.Containers[0].VolumeMounts {
			if vm.Name == "credentials" {
				return path.Join(vm.MountPath, "api-token")
			}
		}
		return ""
	}
	// The directory where a pod mounts the certificate's Secret
	// (tls.crt, tls.key, ca.crt), "" where it mounts none.
	tlsDir := func(pod corev1.PodSpec) string {
		for _, vm := range pod.Containers[0].VolumeMounts {
			if vm.Name == "tls" {
				return vm.MountPath
			}
		}
		return ""
	}
	workloads := map[string]struct{ namespace, tokenFile, tlsDir string }{
		"deploy/" + m.deployment.Name: {"", tokenFile(m.deployment.Spec.Template.Spec), tlsDir(m.deployment.Spec.Template.Spec)},
		"sts/" + ha.sts.Name:          {haNamespace(t), tokenFile(ha.sts.Spec.Template.Spec), tlsDir(ha.sts.Spec.Template.Spec)},
	}
	cert := &x509.Certificate{DNSNames: haCertificate(t, haBuild(t, haNamespace(t))).Spec.DNSNames}
	tlsFound := 0
	// And each pod of the StatefulSet by its name.
	for i := range int(*ha.sts.Spec.Replicas) {
		workloads[fmt.Sprintf("%s-%d", ha.sts.Name, i)] = workloads["sts/"+ha.sts.Name]
	}
	// A command runs on across comment lines and backslash continuations.
	join := regexp.MustCompile(`\\?\n[ \t]*(?:#[ \t]*)?`)
	cmd := regexp.MustCompile("kubectl((?: -n \\S+)?) exec((?: -n \\S+)?) ([a-z0-9./-]+)((?: -n \\S+)?) -- (\\S+) ([a-z]+)((?: +-[^ `]+(?: [^-( `][^ `]*)?)*)")
	found := 0
	check := func(file string) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmd.FindAllStringSubmatch(join.ReplaceAllString(string(data), " "), -1) {
			found++
			w, ok := workloads[c[3]]
			if !ok {
				t.Errorf("%s: %q execs in %s, which no example creates (%v)", file, c[0], c[3], slices.Sorted(maps.Keys(workloads)))
				continue
			}
			if ns := strings.TrimPrefix(c[1]+c[2]+c[4], " -n "); ns != w.namespace {
				t.Errorf("%s: %q: namespace %q, want %q, where the example puts %s", file, c[0], ns, w.namespace, c[3])
			}
			if c[5] != binary {
				t.Errorf("%s: %q runs %s; the image's binary is %s", file, c[0], c[5], binary)
			}
			args := strings.Fields(c[7])
			if i := slices.Index(args, "-web.token-file"); i >= 0 && (i+1 >= len(args) || args[i+1] != w.tokenFile) {
				t.Errorf("%s: %q: -web.token-file must be %s, where %s mounts the api-token", file, c[0], w.tokenFile, c[3])
			} else if i < 0 && slices.Contains([]string{"check", "sync", "tickets", "resolve", "backup", "reload"}, c[6]) {
				t.Errorf("%s: %q: %s needs the API token: give -web.token-file %s", file, c[0], c[6], w.tokenFile)
			}
			flag := func(name string) string {
				if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
					return args[i+1]
				}
				return ""
			}
			if !strings.HasPrefix(flag("-web.url"), "https://") {
				continue
			}
			tlsFound++
			if w.tlsDir == "" {
				t.Errorf("%s: %q: %s mounts no certificate to reach its listener at https:// with", file, c[0], c[3])
				continue
			}
			for name, base := range map[string]string{"-web.ca-file": "ca.crt", "-web.cert-file": "tls.crt", "-web.key-file": "tls.key"} {
				if got, want := flag(name), path.Join(w.tlsDir, base); got != want {
					t.Errorf("%s: %q: %s is %q, want %s, where %s mounts the certificate's Secret", file, c[0], name, got, want, c[3])
				}
			}
			if name := flag("-web.server-name"); name == "" || cert.VerifyHostname(name) != nil {
				t.Errorf("%s: %q: -web.server-name %q is not a name the certificate holds (%v)", file, c[0], name, cert.DNSNames)
			}
		}
	}
	check(filepath.Join(root, "README.md"))
	for _, dir := range []string{"examples", "docs"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".json") {
				return err
			}
			check(p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if found < 8 || tlsFound < 1 {
		t.Errorf("found %d kubectl exec commands, %d of them at https://; the pattern no longer matches how they are written", found, tlsFound)
	}
}
