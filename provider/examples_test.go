package provider

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestExamples_requiredProviders checks that every example configuration
// that declares the provider takes it from the Registry address with a
// version constraint, as README's install section tells users to.
func TestExamples_requiredProviders(t *testing.T) {
	t.Parallel()
	block := regexp.MustCompile(`(?s)psa = \{\s*source\s*=\s*"([^"]*)"\s*(?:version\s*=\s*"([^"]*)")?`)
	found := 0
	err := filepath.WalkDir(filepath.Join("..", "examples"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".tf" {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !regexp.MustCompile(`required_providers`).Match(src) {
			return nil
		}
		found++
		m := block.FindSubmatch(src)
		switch {
		case m == nil:
			t.Errorf("%s: required_providers has no psa = { source = ... } entry", path)
		case string(m[1]) != "psa-sync/psa":
			t.Errorf("%s: source = %q, want \"psa-sync/psa\"", path, m[1])
		case len(m[2]) == 0:
			t.Errorf("%s: the psa provider has no version constraint", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 2 {
		t.Errorf("found %d example configurations with required_providers, want at least examples/provider/provider.tf and examples/demo/main.tf", found)
	}
}

// TestExamples_providerVariablesOptional: the credential variables of the
// provider examples (one per PSA, all shown on the provider's page) default
// to null, so that the environment variables the provider falls back to are
// enough. Without a default, `terraform plan -input=false` (as in CI) fails
// with "No value for required variable" even when PSA_AUTOTASK_SECRET (or
// PSA_CONNECTWISE_PRIVATE_KEY, PSA_KASEYA_BMS_PASSWORD) is set.
func TestExamples_providerVariablesOptional(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "examples", "provider", "*.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d provider examples, want one per PSA: %v", len(files), files)
	}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		vars := regexp.MustCompile(`(?s)variable "([^"]+)" \{(.*?)\n\}`).FindAllSubmatch(src, -1)
		if len(vars) == 0 {
			t.Errorf("no variable blocks in %s", file)
		}
		for _, v := range vars {
			if !regexp.MustCompile(`\bdefault\s*=\s*null\b`).Match(v[2]) {
				t.Errorf("%s: variable %q has no default = null: it is required even when its environment variable is set", file, v[1])
			}
		}
	}
}

// TestExamples_validate runs `terraform validate` (or OpenTofu's, as
// TestInstall_filesystemMirror chooses the CLI) on every resource and data
// source example with the provider built from this checkout, so that an
// attribute renamed or removed from a schema cannot leave the documentation
// generated from these files showing a configuration that fails. Each file
// is validated with the provider example of its PSA (provider.tf, or
// provider_<variant>.tf for a *_<variant>.tf file) and, outside
// psa_service's own examples, with psa_service's resource.tf, which the
// mapping examples refer to (examples/README.md).
func TestExamples_validate(t *testing.T) {
	t.Parallel()
	cli := testCLI(t)
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "terraform-provider-psa"), "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cliConfig := filepath.Join(dir, "cli.tfrc")
	writeTestFile(t, cliConfig, `provider_installation {
  dev_overrides {
    "registry.terraform.io/psa-sync/psa" = "`+filepath.ToSlash(plugins)+`"
    "registry.opentofu.org/psa-sync/psa" = "`+filepath.ToSlash(plugins)+`"
  }
  direct {}
}
`)
	examples := filepath.Join("..", "examples")
	service := filepath.Join(examples, "resources", "psa_service", "resource.tf")
	var files []string
	for _, pattern := range []string{"resources/*/*.tf", "data-sources/*/*.tf"} {
		m, err := filepath.Glob(filepath.Join(examples, filepath.FromSlash(pattern)))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found %d resource and data source examples, want every one: %v", len(files), files)
	}
	for i, file := range files {
		provider := "provider.tf"
		for _, variant := range []string{"connectwise", "kaseya_bms"} {
			if strings.HasSuffix(file, "_"+variant+".tf") {
				provider = "provider_" + variant + ".tf"
			}
		}
		sources := []string{filepath.Join(examples, "provider", provider), file}
		if filepath.Dir(file) != filepath.Dir(service) {
			sources = append(sources, service)
		}
		work := filepath.Join(dir, strconv.Itoa(i))
		for j, src := range sources {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			// One directory per file: two examples may declare the same name.
			writeTestFile(t, filepath.Join(work, strconv.Itoa(j)+"_"+filepath.Base(src)), string(b))
		}
		cmd := exec.Command(cli, "-chdir="+work, "validate", "-no-color")
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_PLUGIN_CACHE_DIR=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s validate of %s (with %s): %v\n%s", filepath.Base(cli), file, strings.Join(sources[:1], ", "), err, out)
		}
	}
}

// TestExamples_exportImportIDs: the import examples of psa_integration and
// psa_ticket_routing, which are imported by the provider's export store,
// give the id that ImportState takes with the provider block they assume
// (examples/provider/provider.tf, as for every resource.tf). They gave
// "psa-mappings.json" while that block names an S3 URL, and the import, run
// as the docs show it, failed with "Unexpected Import Identifier".
func TestExamples_exportImportIDs(t *testing.T) {
	// No real AWS configuration: opening the S3 store reads none.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	examples := filepath.Join("..", "examples")
	providerTF, err := os.ReadFile(filepath.Join(examples, "provider", "provider.tf"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*export_url\s*=\s*"([^"]+)"`).FindSubmatch(providerTF)
	if m == nil {
		t.Fatal("examples/provider/provider.tf sets no export_url")
	}
	store, err := exportClient(t.Context(), string(m[1]), "")
	if err != nil {
		t.Fatalf("export_url %q of examples/provider/provider.tf: %v", m[1], err)
	}
	// The id as the shell passes it on: quotes removed.
	shellID := regexp.MustCompile(`(?m)^terraform import \S+ '?([^'\s]+)'?\s*$`)
	blockID := regexp.MustCompile(`(?m)^\s*id\s*=\s*"([^"]+)"`)
	for _, typ := range []string{"psa_integration", "psa_ticket_routing"} {
		for file, re := range map[string]*regexp.Regexp{"import.sh": shellID, "import-by-string-id.tf": blockID} {
			src, err := os.ReadFile(filepath.Join(examples, "resources", typ, file))
			if err != nil {
				t.Fatal(err)
			}
			id := re.FindSubmatch(src)
			switch {
			case id == nil:
				t.Errorf("%s/%s: no import id found", typ, file)
			case !samePath(string(id[1]), store.String()):
				t.Errorf("%s/%s imports %q; with examples/provider/provider.tf the import takes only %q", typ, file, id[1], store.String())
			}
		}
	}
}

// TestExamples_importAddresses: every import example names a resource of
// the resource.tf beside it, and a mapping's id ("<source>/<key>") the key
// that resource sets, so that the import runs against the docs' example.
func TestExamples_importAddresses(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "examples", "resources", "*", "import*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d import examples, want two per resource: %v", len(files), files)
	}
	address := regexp.MustCompile(`(?m)(?:^terraform import |^\s*to\s*=\s*)(\w+)\.(\w+)`)
	mappingID := regexp.MustCompile(`(?m)(?:^terraform import \S+ |^\s*id\s*=\s*")([^/\s"]+)/([^\s"]+)`)
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		resourceTF, err := os.ReadFile(filepath.Join(filepath.Dir(file), "resource.tf"))
		if err != nil {
			t.Fatal(err)
		}
		m := address.FindSubmatch(src)
		if m == nil {
			t.Errorf("%s: no resource address found", file)
			continue
		}
		block := regexp.MustCompile(`(?s)resource "` + string(m[1]) + `" "` + string(m[2]) + `" \{(.*?)\n\}`).FindSubmatch(resourceTF)
		if block == nil {
			t.Errorf("%s imports %s.%s, which %s does not declare", file, m[1], m[2], filepath.Join(filepath.Dir(file), "resource.tf"))
			continue
		}
		if key := map[string]string{"psa_customer_mapping": "customer_id", "psa_product_mapping": "product"}[string(m[1])]; key != "" {
			id := mappingID.FindSubmatch(src)
			if id == nil || !regexp.MustCompile(`(?m)^\s*`+key+`\s*=\s*"`+regexp.QuoteMeta(string(id[2]))+`"`).Match(block[1]) {
				t.Errorf("%s: the import id does not name the %s of %s.%s", file, key, m[1], m[2])
			}
		}
	}
}

// TestGuide_s3RolesReachEveryObject: the CI workflow guide's S3 roles
// cover every object psa-sync reads or writes beside the export. psa-syncd
// lists the export fields it reads in the export key plus
// export.ReadersSuffix, and every plan that changes the export (the
// pull request's and the apply's) reads that list to fail a plan writing a
// field psa-syncd would refuse. With the guide's roles as they were,
// psa-syncd could not write it (logged at info only) and no plan ever
// checked anything; a plan role without s3:GetObject on it warns at every
// plan instead of checking.
func TestGuide_s3RolesReachEveryObject(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "examples", "templates", "guides", "ci-workflow.md.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	row := func(role string) string {
		m := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(role) + ` \|.*$`).Find(src)
		if m == nil {
			t.Fatalf("the guide's roles table has no row for %s", role)
		}
		return string(m)
	}
	readers := "the export key plus `" + export.ReadersSuffix + "`"
	for role, want := range map[string]string{
		"`psa-sync-plan`":  "`s3:GetObject` on " + readers,
		"`psa-sync-apply`": "`s3:GetObject` on " + readers,
		"psa-syncd":        "`s3:GetObject` and `s3:PutObject` on " + readers,
	} {
		if got := row(role); !strings.Contains(got, want) {
			t.Errorf("the guide's role %s lacks %q:\n%s", role, want, got)
		}
	}
	if got := row("`psa-sync-plan`"); strings.Contains(got, "PutObject") {
		t.Errorf("the guide's plan role may write: %s", got)
	}
}

// TestGuide_ciCredentialsPerJob: the CI workflow guide gives the plan and
// the apply jobs PSA credentials of their own (a read-only API user for
// plans) through the environment. Every job sets the same PSA_AUTOTASK_*
// variables, and the guide's provider block sets none of their attributes:
// a value in the configuration wins over the environment, so with username
// set there the plan signed in as the apply's user with the read-only
// user's secret.
func TestGuide_ciCredentialsPerJob(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "examples", "templates", "guides", "ci-workflow.md.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(src)
	block := func(after, lang string) string {
		_, rest, ok := strings.Cut(guide, after)
		if !ok {
			t.Fatalf("the guide has no %q", after)
		}
		_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
		if !ok {
			t.Fatalf("the guide has no %s block after %q", lang, after)
		}
		code, _, _ := strings.Cut(rest, "\n```")
		return code
	}
	names := func(re, text string) map[string]bool {
		set := map[string]bool{}
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(text, -1) {
			set[m[1]] = true
		}
		return set
	}
	github := block("## GitHub Actions", "yaml")
	ghPlan, ghApply, ok := strings.Cut(github, "\n  apply:\n")
	if !ok {
		t.Fatal("the GitHub Actions workflow has no apply job")
	}
	_, glApply, ok := strings.Cut(block("## GitLab CI", "yaml"), "\napply:\n")
	if !ok {
		t.Fatal("the GitLab CI pipeline has no apply job")
	}
	jobs := map[string]map[string]bool{
		"GitHub plan":  names(`(?m)^\s+(PSA_AUTOTASK_\w+):`, ghPlan),
		"GitHub apply": names(`(?m)^\s+(PSA_AUTOTASK_\w+):`, ghApply),
		"GitLab apply": names(`\b(PSA_AUTOTASK_\w+)=`, glApply),
	}
	want := jobs["GitHub plan"]
	if len(want) < 3 {
		t.Fatalf("the GitHub plan job sets %v, want the Autotask user name, secret and integration code", want)
	}
	for job, got := range jobs {
		for name := range want {
			if !got[name] {
				t.Errorf("the %s job does not set %s, which the other jobs set: it would sign in with a user name or secret not its own", job, name)
			}
		}
	}
	config := block("## The Terraform configuration", "terraform")
	_, autotask, ok := strings.Cut(config, "autotask {")
	if !ok {
		t.Fatal("the guide's provider block has no autotask block")
	}
	autotask, _, _ = strings.Cut(autotask, "}")
	for attr := range names(`(?m)^\s*(\w+)\s*=`, autotask) {
		if env := "PSA_AUTOTASK_" + strings.ToUpper(attr); want[env] {
			t.Errorf("the guide's provider block sets autotask.%s, which wins over the %s each job sets", attr, env)
		}
	}
}
