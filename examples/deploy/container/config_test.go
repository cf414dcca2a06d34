package main

import (
	"net"
	"os"
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
