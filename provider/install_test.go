package provider

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// testCLI returns the Terraform (or OpenTofu) CLI the tests run: the one
// the GNUmakefile chose (TF_ACC_TERRAFORM_PATH), else terraform on PATH, as
// the test framework does for the acceptance tests.
func testCLI(t *testing.T) string {
	t.Helper()
	if cli := os.Getenv("TF_ACC_TERRAFORM_PATH"); cli != "" {
		return cli
	}
	p, err := exec.LookPath("terraform")
	if err != nil {
		t.Fatalf("no CLI to run: set TF_ACC_TERRAFORM_PATH or run the tests through the GNUmakefile (make test), which builds Terraform when it is missing: %v", err)
	}
	return p
}

// TestInstall_filesystemMirror follows README's air-gapped install: it builds
// the provider with a release version, lays it out in a filesystem mirror
// under both Terraform's and OpenTofu's registry hosts, and runs `init` with
// a CLI configuration that takes psa-sync/psa from the mirror only, for a
// configuration that requires it with a version constraint. It runs the CLI
// the GNUmakefile chose (TF_ACC_TERRAFORM_PATH: Terraform, or OpenTofu with
// `make testacc-tofu`; terraform on PATH without it), with no network:
// anything not in the mirror fails.
func TestInstall_filesystemMirror(t *testing.T) {
	t.Parallel()
	cli := testCLI(t)
	dir := t.TempDir()
	const version = "0.1.0"
	platform := runtime.GOOS + "_" + runtime.GOARCH
	mirror := filepath.Join(dir, "mirror")
	binary := filepath.Join(dir, "terraform-provider-psa_v"+version)
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", binary, "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	// The unpacked layout: HOSTNAME/NAMESPACE/TYPE/VERSION/TARGET/binary.
	for _, host := range []string{"registry.terraform.io", "registry.opentofu.org"} {
		p := filepath.Join(mirror, host, "psa-sync", "psa", version, platform, "terraform-provider-psa_v"+version)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cliConfig := filepath.Join(dir, "cli.tfrc")
	writeTestFile(t, cliConfig, `provider_installation {
  filesystem_mirror {
    path    = "`+filepath.ToSlash(mirror)+`"
    include = ["registry.terraform.io/psa-sync/psa", "registry.opentofu.org/psa-sync/psa"]
  }
  direct {
    exclude = ["registry.terraform.io/psa-sync/psa", "registry.opentofu.org/psa-sync/psa"]
  }
}
`)
	work := filepath.Join(dir, "work")
	writeTestFile(t, filepath.Join(work, "main.tf"), `terraform {
  required_providers {
    psa = {
      source  = "psa-sync/psa"
      version = "~> 0.1"
    }
  }
}

provider "psa" {
  export_path = "psa-mappings.json"
  autotask {
    username         = "api@msp.example"
    secret           = "not-used-by-validate"
    integration_code = "not-used-by-validate"
  }
}

resource "psa_product_mapping" "cixa" {
  product    = "CIXA-MSP"
  service_id = "1"
}
`)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cli, append([]string{"-chdir=" + work}, args...)...)
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_PLUGIN_CACHE_DIR=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(cli), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("init", "-input=false", "-no-color")
	if !strings.Contains(out, "Installing psa-sync/psa v"+version) {
		t.Errorf("init did not install psa-sync/psa v%s from the mirror:\n%s", version, out)
	}
	lock, err := os.ReadFile(filepath.Join(work, ".terraform.lock.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lock), `/psa-sync/psa"`) || !strings.Contains(string(lock), `version     = "`+version+`"`) {
		t.Errorf("the dependency lock file does not pin psa-sync/psa %s:\n%s", version, lock)
	}
	// The installed provider starts and serves its schema.
	if out := run("validate", "-no-color"); !strings.Contains(out, "Success") {
		t.Errorf("validate:\n%s", out)
	}

	// README's providers lock for other platforms, with the mirror laid out
	// as its commands lay it out: each platform directory the section
	// creates. A platform the command names that the mirror lacks fails it
	// ("is not available for darwin_arm64"). Only hashed, never run, so
	// this platform's build stands in for the others.
	section := readmeSection(t, "### The provider without a registry (air-gapped)")
	for _, m := range regexp.MustCompile(`mkdir -p /opt/terraform/providers/\$host/psa-sync/psa/`+regexp.QuoteMeta(version)+`/(\w+)`).FindAllStringSubmatch(section, -1) {
		for _, host := range []string{"registry.terraform.io", "registry.opentofu.org"} {
			p := filepath.Join(mirror, host, "psa-sync", "psa", version, m[1], "terraform-provider-psa_v"+version)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	lockCmd := regexp.MustCompile(`terraform providers lock (-fs-mirror=/opt/terraform/providers(?:\s+-platform=\w+)+)`).FindStringSubmatch(section)
	if lockCmd == nil {
		t.Fatal("README's air-gapped section has no `terraform providers lock -fs-mirror=/opt/terraform/providers -platform=...` command")
	}
	args := strings.Fields(strings.Replace(lockCmd[1], "/opt/terraform/providers", filepath.ToSlash(mirror), 1))
	run(append([]string{"providers", "lock", "-no-color"}, args...)...)
}

// readmeSection returns README.md's section under heading, up to the next
// heading of any level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no heading %q", heading)
	}
	if i := regexp.MustCompile(`(?m)^#+ `).FindStringIndex(after); i != nil {
		after = after[:i[0]]
	}
	return after
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
