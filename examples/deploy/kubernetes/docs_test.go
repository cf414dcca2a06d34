package kubernetes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestDocs_oneCommandPod: README's pod for a command that needs psa-syncd
// stopped (rebind, -state.allow-restore, -state.allow-empty) is the
// Deployment's pod, decoded strictly as the API server would: the same
// image, volumes, mounts and security contexts, restartPolicy Never, and a
// command (the image's entrypoint is `psa-syncd run`) of the image's
// binary with the Deployment's -config.file, which that command and the
// README's variants take. The commands around it scale the Deployment to
// 0 before the pod (its claim is ReadWriteOncePod) and back to 1 after.
func TestDocs_oneCommandPod(t *testing.T) {
	if testing.Short() {
		t.Skip("builds psa-syncd")
	}
	m := load(t)
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(string(readme), "\n### Kubernetes\n"), strings.Index(string(readme), "\n## Development\n")
	if i < 0 || j < i {
		t.Fatal("README.md has no Kubernetes section")
	}
	section := string(readme)[i:j]
	pod, file, commands, variants, takes := oneCommandPod(t, section, "README.md's Kubernetes section", "Deployment", m.deployment.Spec.Template.Spec)
	for _, flag := range []string{"-state.allow-restore", "-state.allow-empty"} {
		v := regexp.MustCompile("`\\[\"/usr/local/bin/psa-syncd\", \"([a-z]+)\"\\]` with `" + regexp.QuoteMeta(flag) + "`|`([a-z]+)` with `" + regexp.QuoteMeta(flag) + "`").FindStringSubmatch(variants)
		if v == nil {
			t.Errorf("README gives no command with %s for the pod", flag)
			continue
		}
		if cmd := v[1] + v[2]; !takes(cmd, flag) {
			t.Errorf("README: psa-syncd %s has no flag %s", cmd, flag)
		}
	}

	// The Deployment is scaled to 0 before the pod is created, and back
	// after it is deleted; the wait is on the Deployment's pods.
	lines := strings.Split(strings.TrimSpace(commands), "\n")
	at := func(prefix string) int {
		return slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	deploy := "deploy/" + m.deployment.Name
	down, apply := at("kubectl scale "+deploy+" --replicas=0"), at("kubectl apply -f "+file)
	del, up := at("kubectl delete pod "+pod.Name), at("kubectl scale "+deploy+" --replicas=1")
	if down < 0 || apply < down || del < apply || up < del {
		t.Errorf("the commands do not scale %s to 0, apply %s, delete pod %s and scale it back to 1, in that order:\n%s", deploy, file, pod.Name, commands)
	}
	sel := waitForPodsGone(t, commands, "kubectl delete pod -l ")
	if sel == nil {
		t.Fatal("the commands do not wait for the Deployment's pod to be gone")
	}
	s, err := labels.Parse(sel[1])
	if err != nil || !s.Matches(labels.Set(m.deployment.Spec.Template.Labels)) || s.Matches(labels.Set(pod.Labels)) {
		t.Errorf("kubectl delete pod -l %s: want a selector of the Deployment's pods (%v): %v", sel[1], m.deployment.Spec.Template.Labels, err)
	}
}

// TestDocs_tokenRotationPatch: README's commands for rotating the API token
// in Kubernetes patch the api-token key of the Secret each example's pods
// mount as files at the directory their -web.token-file names, in the
// example's namespace, with the data of the file the new token was
// written to, through a patch file written before and removed after.
// (README said only "kubectl apply of the Secret", which from a Secret
// created from the token alone drops the other keys, and from secret.yaml
// puts the placeholders back.)
func TestDocs_tokenRotationPatch(t *testing.T) {
	t.Parallel()
	m, ha := load(t), loadHA(t)
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")
	// secretDir is the directory where pod mounts the Secret name with its
	// keys as they are, "" where it does not.
	secretDir := func(pod corev1.PodSpec, name string) string {
		for _, v := range pod.Volumes {
			ok := v.Secret != nil && v.Secret.SecretName == name && len(v.Secret.Items) == 0
			if v.Projected != nil {
				for _, src := range v.Projected.Sources {
					ok = ok || src.Secret != nil && src.Secret.Name == name && len(src.Secret.Items) == 0
				}
			}
			for _, vm := range pod.Containers[0].VolumeMounts {
				if ok && vm.Name == v.Name && vm.SubPath == "" {
					return vm.MountPath
				}
			}
		}
		return ""
	}
	const tokenFile = "/etc/psa-syncd/credentials/api-token" // every -web.token-file of README's kubectl exec
	block := regexp.MustCompile(`\(umask 077; openssl rand -hex 16 > (\S+) printf '\{"data":\{"([\w-]+)":"%s"\}\}' "\$\(base64 -w0 < (\S+)\)" > (\S+)\) ` +
		`kubectl -n (\S+) patch secret (\S+) --type=merge --patch-file=(\S+) rm (\S+) `).FindStringSubmatch(text)
	if block == nil {
		t.Fatal("README.md has no commands that write a new token and patch the HA example's Secret with it")
	}
	if block[1] != block[3] || block[4] != block[7] || block[7] != block[8] {
		t.Errorf("the rotation commands patch with %s (written: %s) from %s (written: %s), and remove %s", block[7], block[4], block[3], block[1], block[8])
	}
	if block[5] != haNamespace(t) {
		t.Errorf("the rotation patches in namespace %s, want the HA example's %s", block[5], haNamespace(t))
	}
	if dir := secretDir(ha.sts.Spec.Template.Spec, block[6]); dir == "" || dir+"/"+block[2] != tokenFile {
		t.Errorf("the HA example's pods read the key %s of Secret %s at %q/%s, want %s", block[2], block[6], dir, block[2], tokenFile)
	}
	single := regexp.MustCompile("`kubectl patch secret (\\S+)` without `-n`").FindStringSubmatch(text)
	if single == nil {
		t.Fatal("README.md does not say which Secret to patch for the single-instance example")
	}
	if dir := secretDir(m.deployment.Spec.Template.Spec, single[1]); dir == "" || dir+"/"+block[2] != tokenFile {
		t.Errorf("the single-instance example's pod reads the key %s of Secret %s at %q/%s, want %s", block[2], single[1], dir, block[2], tokenFile)
	}
}

// TestDocs_oneCommandPodHA: the HA example's README gives the same pod for
// a command that needs psa-syncd stopped (rebind, -state.allow-empty) as
// TestDocs_oneCommandPod checks for the Deployment: the StatefulSet's pod,
// its projected credentials volume included, decoded strictly, with
// restartPolicy Never and a command of the image's binary and the
// StatefulSet's -config.file, in the example's namespace. The commands
// scale the StatefulSet to 0 before the pod and back to its replicas
// after, all in that namespace.
func TestDocs_oneCommandPodHA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds psa-syncd")
	}
	ha, ns := loadHA(t), haNamespace(t)
	readme, err := os.ReadFile("../kubernetes-ha/README.md")
	if err != nil {
		t.Fatal(err)
	}
	pod, file, commands, variants, takes := oneCommandPod(t, string(readme), "the HA README", "StatefulSet", ha.sts.Spec.Template.Spec)
	if pod.Namespace != ns {
		t.Fatalf("the HA README's %s is in namespace %q, want %s", file, pod.Namespace, ns)
	}
	v := regexp.MustCompile("`\\[\"/usr/local/bin/psa-syncd\", \"([a-z]+)\"\\]` with `(-state.allow-empty)`").FindStringSubmatch(variants)
	if v == nil {
		t.Error("the HA README gives no command with -state.allow-empty for the pod")
	} else if !takes(v[1], v[2]) {
		t.Errorf("the HA README: psa-syncd %s has no flag %s", v[1], v[2])
	}

	// Every command is in the namespace; the StatefulSet is scaled to 0
	// before the pod is created, and back to its replicas after it is
	// deleted; the wait is on the StatefulSet's pods.
	lines := strings.Split(strings.TrimSpace(commands), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "kubectl -n "+ns+" ") && l != "kubectl apply -f "+file {
			t.Errorf("%q: not in namespace %s (kubectl -n %s ...)", l, ns, ns)
		}
	}
	at := func(cmd string) int {
		return slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, cmd) })
	}
	sts := "kubectl -n " + ns + " scale sts/" + ha.sts.Name
	down, apply := at(sts+" --replicas=0"), at("kubectl apply -f "+file)
	del, up := at("kubectl -n "+ns+" delete pod "+pod.Name), at(fmt.Sprintf("%s --replicas=%d", sts, *ha.sts.Spec.Replicas))
	if down < 0 || apply < down || del < apply || up < del {
		t.Errorf("the commands do not scale sts/%s to 0, apply %s, delete pod %s and scale it back to %d, in that order:\n%s", ha.sts.Name, file, pod.Name, *ha.sts.Spec.Replicas, commands)
	}
	sel := waitForPodsGone(t, commands, "kubectl -n "+ns+" delete pod -l ")
	if sel == nil {
		t.Fatal("the commands do not wait for the StatefulSet's pods to be gone")
	}
	s, err := labels.Parse(sel[1])
	if err != nil || !s.Matches(labels.Set(ha.sts.Spec.Template.Labels)) || s.Matches(labels.Set(pod.Labels)) {
		t.Errorf("kubectl delete pod -l %s: want a selector of the StatefulSet's pods (%v): %v", sel[1], ha.sts.Spec.Template.Labels, err)
	}
}

// waitForPodsGone returns the selector of the command (prefix, then the
// selector) that waits for the scaled-down pods to be gone, and nil when
// there is none. It must succeed when no pod is left (a second try, the
// workload already at 0): `kubectl wait --for=delete pod -l` exits 1 with
// "no matching resources found" then (kubernetes/kubernetes#83242), which
// stops a script under set -e; `kubectl delete pod -l ... --ignore-not-found
// --wait` waits for the pods to be gone and treats none as success.
func waitForPodsGone(t *testing.T, commands, prefix string) []string {
	t.Helper()
	if strings.Contains(commands, "wait --for=delete pod -l ") {
		t.Error("the commands wait for the pods to be gone with kubectl wait --for=delete pod -l, which fails when no pod is left: use kubectl delete pod -l ... --ignore-not-found --wait")
	}
	return regexp.MustCompile(regexp.QuoteMeta(prefix) + `(\S+) --ignore-not-found --wait --timeout=\S+`).FindStringSubmatch(commands)
}

// oneCommandPod checks the pod manifest of a README (text; where names it
// in messages) for a command that needs psa-syncd stopped, and the
// commands and paragraph that follow it, against the pod spec of the
// workload it stands in for (owner, e.g. "Deployment"): decoded strictly,
// a v1 Pod with restartPolicy Never, the workload's volumes, security
// settings and container image and mounts, a command of the image's
// binary with the workload's -config.file, and only flags the command
// takes. It returns the pod, its file name, the commands, the paragraph
// (its whitespace folded) and whether a command of a psa-syncd built from
// this tree takes a flag.
func oneCommandPod(t *testing.T, text, where, owner string, want corev1.PodSpec) (pod corev1.Pod, file, commands, variants string, takes func(command, flag string) bool) {
	t.Helper()
	blk := regexp.MustCompile("(?s)```yaml\n(# (\\S+\\.yaml):[^\n]*\n.*?)```\n\n```sh\n(.*?)```\n\n(.*?)\n\n").FindStringSubmatch(text)
	if blk == nil {
		t.Fatalf("%s has no pod manifest followed by its commands", where)
	}
	file, commands, variants = blk[2], blk[3], strings.Join(strings.Fields(blk[4]), " ")
	if err := unmarshalStrict([]byte(blk[1]), &pod); err != nil {
		t.Fatalf("%s's %s: %v", where, file, err)
	}
	if pod.APIVersion != "v1" || pod.Kind != "Pod" {
		t.Fatalf("%s's %s is %s %s, want v1 Pod", where, file, pod.APIVersion, pod.Kind)
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q, want Never: the command runs once", file, pod.Spec.RestartPolicy)
	}
	for what, got := range map[string][2]any{
		"volumes":                      {pod.Spec.Volumes, want.Volumes},
		"securityContext":              {pod.Spec.SecurityContext, want.SecurityContext},
		"automountServiceAccountToken": {pod.Spec.AutomountServiceAccountToken, want.AutomountServiceAccountToken},
	} {
		if !reflect.DeepEqual(got[0], got[1]) {
			t.Errorf("%s: %s differs from the %s's pod's", file, what, owner)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", file, len(pod.Spec.Containers))
	}
	c, wc := pod.Spec.Containers[0], want.Containers[0]
	if c.Image != wc.Image || !reflect.DeepEqual(c.SecurityContext, wc.SecurityContext) || !reflect.DeepEqual(c.VolumeMounts, wc.VolumeMounts) {
		t.Errorf("%s: the container's image, securityContext or volumeMounts are not the %s's", file, owner)
	}
	if len(c.Command) != 2 || c.Command[0] != "/usr/local/bin/psa-syncd" {
		t.Fatalf("%s: command %q, want the image's binary /usr/local/bin/psa-syncd and a command", file, c.Command)
	}
	configFlag := slices.IndexFunc(wc.Args, func(a string) bool { return strings.HasPrefix(a, "-config.file=") })
	if configFlag < 0 || !slices.Contains(c.Args, wc.Args[configFlag]) {
		t.Errorf("%s: args %q, want the %s's -config.file", file, c.Args, owner)
	}

	exe := filepath.Join(t.TempDir(), "psa-syncd")
	if out, err := exec.Command("go", "build", "-o", exe, "../../../daemon/cmd/psa-syncd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	takes = func(command, flag string) bool {
		help, _ := exec.Command(exe, command, "-h").CombinedOutput()
		return regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(flag) + `\b`).Match(help)
	}
	for _, a := range c.Args {
		if flag, _, _ := strings.Cut(a, "="); !takes(c.Command[1], flag) {
			t.Errorf("%s: psa-syncd %s has no flag %s", file, c.Command[1], flag)
		}
	}
	return pod, file, commands, variants, takes
}
