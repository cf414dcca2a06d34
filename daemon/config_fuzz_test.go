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
	path := filepath.Join(f.TempDir(), "psa-syncd.yml")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := loadData(path, data, func(string) string { return "" })
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
		out = append(out, string(cw.PrivateKey), cw.PublicKey, cw.ClientID)
	}
	if k := c.PSA.KaseyaBMS; k != nil {
		out = append(out, string(k.Password))
	}
	if s := c.Source.Sophos; s != nil {
		out = append(out, string(s.ClientSecret))
	}
	return append(out, string(c.Web.APIToken))
}

// FuzzLoadEnv checks the environment overrides on any value: with the
// config files of testdata and every PSA_* variable set to the fuzzed
// value (a base URL, a user name, an advertise URL; a secret ends in
// "-s3cr3t"), Load never panics,
// every error says which file it is about, and a loaded config prints
// without any of its secrets.
func FuzzLoadEnv(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yml"))
	if err != nil {
		f.Fatal(err)
	}
	// Every file of testdata with each value: the first six files alone
	// (all bad-*.yml, refused before most variables are read) left the
	// baseline coverage so small that nearly every mutation was new
	// coverage to minimize.
	values := []string{"", "https://webservices2.autotask.net/ATServicesRest/", "env-secret-value", "http://user:pass@[::1", " \t\n", "12"}
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, values[i%len(values)])
		if !strings.HasPrefix(filepath.Base(file), "bad-") {
			for _, value := range values {
				f.Add(data, value)
			}
		}
	}
	// One path for every execution, and loadData rather than a file
	// written for each: a new temporary directory and file per
	// execution made one take milliseconds, and the fuzzer's
	// minimization of each new input (up to -fuzzminimizetime, 60 s)
	// showed as a fuzzer stalled after ten executions.
	path := filepath.Join(f.TempDir(), "psa-syncd.yml")
	f.Fuzz(func(t *testing.T, data []byte, value string) {
		c, err := loadData(path, data, func(name string) string {
			switch {
			case strings.HasSuffix(name, "_SECRET") || strings.HasSuffix(name, "_CODE") || strings.HasSuffix(name, "_KEY") && !strings.HasSuffix(name, "_PUBLIC_KEY") ||
				strings.HasSuffix(name, "_PASSWORD") || strings.HasSuffix(name, "_TOKEN"):
				// Longer than value, so that a setting printed
				// with value is not taken for the secret.
				return value + "-s3cr3t"
			case strings.HasPrefix(name, "PSA_"):
				return value
			}
			return ""
		})
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
