package daemon

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Secrets written into the config file, in the right place or the wrong
// one, never show in Load's errors or in the export store's name, which
// logs and the unauthenticated 404 of GET /api/v1/export show. The errors
// still name the setting.
func TestLoad_errorsHideSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct{ yml, secret, names string }{
		{"export_url: \"s3://AKIAXXXX:wJalrSECRET%zz@bucket/key\"\n", "wJalrSECRET", "export_url: export: invalid S3 URL"},
		{"export_url: \"s3://AKIAXXXX:wJalr/SECRET@bucket/key\"\n", "SECRET", "export_url: export: invalid S3 URL"},
		{"export_url: \"s3://bucket/key?endpoint=minio:MINIOSECRET@minio:9000\"\n", "MINIOSECRET", "export_url: export: S3 URL"},
		{"export_path: m.json\nstate_dir: s\nstate: \"pw=hunter2\"\n", "hunter2", "line 3: cannot unmarshal !!str into daemon.StateConfig"},
		{"export_path: m.json\nstate_dir: s\nweb:\n  api_token: [hunter2]\n", "hunter2", "line 4: cannot unmarshal !!seq into daemon.Secret"},
		{"export_path: m.json\nstate_dir: s\nsource: {type: file, file: {path: [abcdefghijklmnop]}}\n", "abcdefg", "cannot unmarshal !!seq into string"},
	} {
		p := filepath.Join(dir, "c.yml")
		if err := os.WriteFile(p, []byte(tt.yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, nil)
		if err == nil {
			t.Fatalf("Load(%q) returned no error", tt.yml)
		}
		if strings.Contains(err.Error(), tt.secret) || !strings.Contains(err.Error(), tt.names) {
			t.Errorf("Load(%q) error\n got: %v\nwant it to contain %q and not %q", tt.yml, err, tt.names, tt.secret)
		}
	}
}

func TestConfig_ExportName_hidesEndpointPassword(t *testing.T) {
	t.Parallel()
	const store = "s3://bucket/key?endpoint=https://minio:MINIOSECRET@minio:9000"
	c := &Config{ExportURL: store}
	if got, want := c.ExportName(), "s3://bucket/key?endpoint=https%3A%2F%2Fminio%3Axxxxx%40minio%3A9000"; got != want {
		t.Errorf("ExportName() = %q, want %q", got, want)
	}
	// The name in the unauthenticated 404 of a daemon that has no export
	// yet.
	e := dtSetup(t, dtOptions{noExport: true})
	cfg := *e.d.cfg.Load()
	cfg.ExportURL, cfg.ExportPath = store, ""
	e.d.cfg.Store(&cfg)
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/export", "", "")
	if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "MINIOSECRET") || !strings.Contains(rec.Body.String(), "minio%3Axxxxx%40") {
		t.Errorf("GET /api/v1/export = %d %s, want 404 naming the store without its password", rec.Code, rec.Body.String())
	}
}
