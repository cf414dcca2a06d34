package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon"
)

// TestREADME_containerConfiguration: README's container commands copy
// psa-syncd.yml of this directory, create one credential file per secret
// and mount both where the image and the configuration expect them. The
// configuration reads exactly the files the commands create, from the
// mounted directory, keeps the state in the image's volume, listens where
// the image's port is published, and loads with those files and an empty
// environment (the container's): psa-syncd starts with it. Before, README
// had the operator start from examples/daemon/psa-syncd.yml, whose secrets
// come from environment variables the container does not have.
func TestREADME_containerConfiguration(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "\nmake container-image VERSION=")
	if !ok {
		t.Fatal("README.md has no container commands (make container-image VERSION=...)")
	}
	block, _, _ = strings.Cut(block, "\n```")
	if !strings.Contains(block, "\ncp examples/deploy/container/psa-syncd.yml psa-syncd.yml\n") {
		t.Errorf("README's container commands do not copy examples/deploy/container/psa-syncd.yml to psa-syncd.yml:\n%s", block)
	}
	const credDir = "/etc/psa-syncd/credentials/"
	for _, mount := range []string{"-v ./psa-syncd.yml:" + configPath + ":", "-v ./credentials:" + strings.TrimSuffix(credDir, "/") + ":"} {
		if !strings.Contains(block, mount) {
			t.Errorf("README's podman run does not mount %q", mount)
		}
	}
	loop := regexp.MustCompile(`for f in ([a-z -]+); do`).FindStringSubmatch(block)
	if loop == nil {
		t.Fatalf("README's container commands create no credential files (for f in ...; do):\n%s", block)
	}
	created := strings.Fields(loop[1])

	data, err := os.ReadFile("psa-syncd.yml")
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for _, m := range regexp.MustCompile(`(?m)^\s*[a-z_]+_file: (\S+)`).FindAllStringSubmatch(string(data), -1) {
		name, ok := strings.CutPrefix(m[1], credDir)
		if !ok {
			t.Errorf("psa-syncd.yml reads %s, outside the mounted %s", m[1], credDir)
			continue
		}
		read = append(read, name)
	}
	slices.Sort(created)
	slices.Sort(read)
	if len(read) == 0 || !slices.Equal(created, read) {
		t.Errorf("README creates the credential files %v, but psa-syncd.yml reads %v", created, read)
	}

	dir := t.TempDir()
	for _, f := range created {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("s3cr3t-"+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "psa-syncd.yml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(data), credDir, dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := daemon.Load(file, func(string) string { return "" })
	if err != nil {
		t.Fatalf("psa-syncd.yml with the credential files README creates and no environment: %v", err)
	}
	if cfg.StateDir != stateDir {
		t.Errorf("state_dir = %s, want the image's volume %s", cfg.StateDir, stateDir)
	}
	if host, p, err := net.SplitHostPort(cfg.Web.ListenAddress); err != nil || host != "" || p+"/tcp" != port {
		t.Errorf("web.listen_address = %q, want :%s, every interface of the container at the image's port", cfg.Web.ListenAddress, strings.TrimSuffix(port, "/tcp"))
	}
	if string(cfg.Web.APIToken) != "s3cr3t-api-token" {
		t.Errorf("the API token is %q, want the content of credentials/api-token", cfg.Web.APIToken)
	}
}

// TestREADME_containerOneCommand: README's way to run a command that needs
// psa-syncd stopped (rebind, -state.allow-restore, -state.allow-empty) in
// the container deployment stops the container, runs the image with the
// binary as entrypoint (the image's is `psa-syncd run`) and the mounts and
// image of README's `podman run -d`, giving a command and flags the built
// binary takes (the README's variants too), and starts it again.
func TestREADME_containerOneCommand(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	join := regexp.MustCompile(`\\\n\s*`)
	text := join.ReplaceAllString(string(readme), "")
	daemonRun := regexp.MustCompile(`(?m)^podman run -d --name psa-syncd (.*)$`).FindStringSubmatch(text)
	once := regexp.MustCompile("(?s)```sh\npodman stop psa-syncd\npodman run --rm --entrypoint (\\S+) (.*?)\npodman start psa-syncd\n```\n\n(.*?)\n\n").FindStringSubmatch(text)
	if daemonRun == nil || once == nil {
		t.Fatal("README.md has no podman run -d --name psa-syncd, or no one-command run between podman stop and podman start")
	}
	if once[1] != binaryPath {
		t.Errorf("the one-command run's entrypoint is %s, want the image's binary %s", once[1], binaryPath)
	}
	mounts := func(args string) []string {
		var ms []string
		for _, m := range regexp.MustCompile(`-v (\S+)`).FindAllStringSubmatch(args, -1) {
			ms = append(ms, m[1])
		}
		return ms
	}
	if got, want := mounts(once[2]), mounts(daemonRun[1]); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("the one-command run mounts %v, want the daemon's %v", got, want)
	}
	image := regexp.MustCompile(`(?:^| )(psa-syncd:\S+)(.*)$`)
	di, oi := image.FindStringSubmatch(daemonRun[1]), image.FindStringSubmatch(once[2])
	if di == nil || oi == nil || di[1] != oi[1] {
		t.Fatalf("the one-command run's image is %v, want the daemon's %v", oi, di)
	}
	args := strings.Fields(oi[2])
	if len(args) < 2 || !slices.Contains(args[1:], "-config.file="+configPath) {
		t.Errorf("the one-command run gives %q, want a command and -config.file=%s", args, configPath)
	}

	exe := filepath.Join(t.TempDir(), "psa-syncd")
	if out, err := exec.Command("go", "build", "-o", exe, "../../../daemon/cmd/psa-syncd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	takes := func(command, flag string) bool {
		help, _ := exec.Command(exe, command, "-h").CombinedOutput()
		return regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(flag) + `\b`).Match(help)
	}
	for _, a := range args[1:] {
		if flag, _, _ := strings.Cut(a, "="); !takes(args[0], flag) {
			t.Errorf("psa-syncd %s has no flag %s", args[0], flag)
		}
	}
	variants := strings.Join(strings.Fields(once[3]), " ")
	for _, flag := range []string{"-state.allow-restore", "-state.allow-empty"} {
		v := regexp.MustCompile("`([a-z]+)` with `" + regexp.QuoteMeta(flag) + "`").FindStringSubmatch(variants)
		if v == nil {
			t.Errorf("README gives no command with %s for the container", flag)
		} else if !takes(v[1], flag) {
			t.Errorf("psa-syncd %s has no flag %s", v[1], flag)
		}
	}
}
