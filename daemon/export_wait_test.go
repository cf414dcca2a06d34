package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDaemon_selfStoreWaitsForTheFirstExportWithoutAnError: with
// export_url: self, a new installation has no export until its first
// terraform apply, and is Ready to receive it: the log says it waits, at
// info level, not "Error loading mapping export" at error level on every
// start before it. The metric and the reload's error still say that no
// export is loaded.
func TestDaemon_selfStoreWaitsForTheFirstExportWithoutAnError(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true, daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	if err := e.d.Reload(); err == nil || !strings.Contains(err.Error(), "no export has been written to PUT /api/v1/export yet") {
		t.Errorf("Reload before the first export = %v, want it to say none was written yet", err)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v before the first export, want 0", got)
	}
	if out := logs.String(); strings.Contains(out, "level=ERROR") || !strings.Contains(out, `level=INFO msg="Waiting for the first mapping export: terraform apply writes it to PUT /api/v1/export"`) {
		t.Errorf("the log before the first export:\n%s\nwant it to say psa-syncd waits for it, at info level, and no error", out)
	}
}
