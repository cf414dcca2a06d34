package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestRun_exportStoreLogsInTheLogFormat: validate, check and plan
// -terraform-plan open the export store with the command's logger, so what
// the AWS SDK says while an S3 store is read (such as "falling back to
// IMDSv1" on a host without credentials) comes out in -log.format like
// every other message, not as a plain line among JSON ones. Not parallel:
// it replaces openExportBackend.
func TestRun_exportStoreLogsInTheLogFormat(t *testing.T) {
	e := newTestEnv(t, nil)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.cfgPath, strings.Replace(string(cfg), "export_path: mappings.json", "export_url: s3://bucket/psa-mappings.json?region=eu-west-1", 1))
	open := openExportBackend
	t.Cleanup(func() { openExportBackend = open })
	openExportBackend = func(_ context.Context, _ *daemon.Config, _ *http.Client, logger *slog.Logger) (export.Backend, error) {
		if logger == nil {
			return nil, errors.New("opened without a logger")
		}
		logger.Warn("AWS SDK: falling back to IMDSv1")
		return nil, errors.New("store unreachable")
	}
	for _, args := range [][]string{
		{"validate", "-config.file", e.cfgPath, "-log.format", "json"},
		{"check", "-config.file", e.cfgPath, "-log.format", "json"},
	} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 1 || !strings.Contains(stdout+stderr, "store unreachable") ||
			!strings.Contains(stderr, `{"time":`) || !strings.Contains(stderr, `"level":"WARN","msg":"AWS SDK: falling back to IMDSv1"`) {
			t.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1, the store's error and the SDK's warning as a JSON log line", args[0], code, stdout, stderr)
		}
	}
}
