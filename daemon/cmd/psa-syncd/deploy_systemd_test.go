package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon"
)

const deployDir = "../../../examples/deploy"

// systemdAnalyze returns the path of systemd-analyze; the GNUmakefile
// installs Debian's systemd package for it when it is missing.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to check the unit (make test installs Debian's systemd package): %v", err)
	}
	return p
}

// TestDeploySystemd_unit checks examples/deploy/systemd/psa-syncd.service
// with systemd's own tools: `systemd-analyze verify` (syntax, directives,
// the executable) with ExecStart pointing at a freshly built psa-syncd, and
// `systemd-analyze security --offline`, whose exposure rating must stay
// "OK" (at most 2.0 of 10).
func TestDeploySystemd_unit(t *testing.T) {
	t.Parallel()
	analyze := systemdAnalyze(t)
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/psa-syncd run ") {
		t.Fatal("the unit's ExecStart does not run /usr/local/bin/psa-syncd run")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "psa-syncd.service")
	writeFile(t, path, strings.ReplaceAll(string(unit), "/usr/local/bin/psa-syncd", binary))

	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for psa-syncd\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
}

// TestDeploySystemd_config loads the unit's psa-syncd.yml the way the
// service would: every *_file setting is a credential the unit loads, and
// state_dir is its StateDirectory.
func TestDeploySystemd_config(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const credDir = "/run/credentials/psa-syncd.service/"
	creds := regexp.MustCompile(`(?m)^LoadCredential=([a-z-]+):/etc/psa-syncd/credentials/([a-z-]+)$`).FindAllStringSubmatch(string(unit), -1)
	loaded := map[string]bool{}
	for _, c := range creds {
		if c[1] != c[2] {
			t.Errorf("LoadCredential=%s:.../%s: name the credential after its file", c[1], c[2])
		}
		loaded[c[1]] = true
	}
	used := regexp.MustCompile(`_file: `+regexp.QuoteMeta(credDir)+`([a-z-]+)`).FindAllStringSubmatch(string(cfg), -1)
	if len(used) != 4 {
		t.Errorf("psa-syncd.yml reads %d credentials, want 4 (Autotask secret and integration code, Sophos secret, API token)", len(used))
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "credentials"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, u := range used {
		if !loaded[u[1]] {
			t.Errorf("psa-syncd.yml reads credential %s, which the unit does not load", u[1])
		}
		writeFile(t, filepath.Join(dir, "credentials", u[1]), "secret-"+u[1]+"\n")
	}
	if !strings.Contains(string(unit), "\nStateDirectory=psa-syncd\n") || !strings.Contains(string(cfg), "\nstate_dir: /var/lib/psa-syncd\n") {
		t.Error("state_dir is not the unit's StateDirectory (/var/lib/psa-syncd)")
	}
	local := strings.ReplaceAll(string(cfg), credDir, filepath.Join(dir, "credentials")+"/")
	writeFile(t, filepath.Join(dir, "psa-syncd.yml"), local)
	c, err := daemon.Load(filepath.Join(dir, "psa-syncd.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := string(c.Web.APIToken); got != "secret-api-token" {
		t.Errorf("web.api_token from its credential = %q", got)
	}
}
