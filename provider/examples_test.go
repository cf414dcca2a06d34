package provider

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
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
