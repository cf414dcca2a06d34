package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad checks the YAML config loader on any input: it never panics,
// every error says which file it is about, and a loaded config prints
// without any of its secrets.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "psa-syncd.yml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, func(string) string { return "" })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "error parsing config file ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		printed := c.String()
		for _, s := range c.secrets() {
			if len(s) >= 4 && strings.Contains(printed, s) {
				t.Fatalf("Config.String contains the secret %q:\n%s", s, printed)
			}
		}
	})
}

// secrets returns every secret value of c.
func (c *Config) secrets() []string {
	var out []string
	if a := c.PSA.Autotask; a != nil {
		out = append(out, string(a.Secret), string(a.IntegrationCode))
	}
	if cw := c.PSA.ConnectWise; cw != nil {
		out = append(out, string(cw.PrivateKey))
	}
	if k := c.PSA.KaseyaBMS; k != nil {
		out = append(out, string(k.Password))
	}
	if s := c.Source.Sophos; s != nil {
		out = append(out, string(s.ClientSecret))
	}
	return append(out, string(c.Web.APIToken))
}
